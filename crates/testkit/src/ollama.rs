//! A stand-in for Ollama's HTTP API (Ollama cannot be installed here), answering as
//! its API documentation shows (docs.ollama.com/api: `GET /api/ps`, `GET
//! /api/version`, `POST /api/generate` with `"stream": false`, durations in
//! nanoseconds, errors as `{"error": "..."}`), or misbehaving on purpose.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How the stand-in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As documented.
    Normal,
    /// `200 OK` with a body that is not JSON.
    Garbage,
    /// Accepts the connection and never answers.
    Hang,
    /// An endless body (stopped after 64 MiB).
    Huge,
}

/// The loaded model the stand-in reports.
pub const MODEL: &str = "homelab:latest";
/// Its size in memory (bytes), context length, and the probe's figures.
pub const MODEL_SIZE: u64 = 2_836_738_048;
pub const CONTEXT_LENGTH: u64 = 4096;
pub const EVAL_COUNT: u64 = 32;
/// 32 tokens in 6.4 s: 5 tokens per second.
pub const EVAL_DURATION_NS: u64 = 6_400_000_000;
pub const VERSION: &str = "0.12.6";
/// Seconds until the model is unloaded, from the time of the answer.
pub const EXPIRES_IN: u64 = 300;

#[derive(Debug)]
pub struct FakeOllama {
    pub port: u16,
    mode: Arc<Mutex<Mode>>,
    generates: Arc<AtomicUsize>,
    last_generate: Arc<Mutex<Option<serde_json::Value>>>,
    stop: Arc<AtomicBool>,
}

impl FakeOllama {
    pub fn start(mode: Mode) -> FakeOllama {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let me = FakeOllama {
            port,
            mode: Arc::new(Mutex::new(mode)),
            generates: Arc::default(),
            last_generate: Arc::default(),
            stop: Arc::default(),
        };
        let (mode, generates, last, stop) = (
            me.mode.clone(),
            me.generates.clone(),
            me.last_generate.clone(),
            me.stop.clone(),
        );
        std::thread::spawn(move || {
            // Hanging connections are held here until the stand-in is dropped.
            let mut held: Vec<TcpStream> = Vec::new();
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let m = *mode.lock().unwrap();
                if m == Mode::Hang {
                    held.push(conn);
                    continue;
                }
                let (generates, last) = (generates.clone(), last.clone());
                std::thread::spawn(move || answer(conn, m, &generates, &last));
            }
        });
        me
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// How many generations were asked for.
    pub fn generates(&self) -> usize {
        self.generates.load(Ordering::SeqCst)
    }

    /// The body of the last `/api/generate` request.
    pub fn last_generate(&self) -> Option<serde_json::Value> {
        self.last_generate.lock().unwrap().clone()
    }
}

impl Drop for FakeOllama {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag and drops held connections.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A port nothing listens on: a refused connection.
pub fn refused_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

/// `t` as RFC 3339 in the zone UTC-07:00, with nanoseconds, as Go writes it.
fn go_time_minus_7(t: SystemTime) -> String {
    let local = t - Duration::from_secs(7 * 3600);
    let s = humantime::format_rfc3339_nanos(local).to_string();
    format!("{}-07:00", s.trim_end_matches('Z'))
}

fn answer(mut conn: TcpStream, mode: Mode, generates: &AtomicUsize, last: &Mutex<Option<serde_json::Value>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    let mut length = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length.min(1 << 20)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let send = |conn: &mut TcpStream, status: &str, body: &str| {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(body.as_bytes());
    };
    match mode {
        Mode::Garbage => return send(&mut conn, "200 OK", "<html><body>It works!</body></html>"),
        Mode::Huge => {
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"models\":[");
            let chunk = vec![b' '; 64 * 1024];
            for _ in 0..1024 {
                if conn.write_all(&chunk).is_err() {
                    return;
                }
            }
            return;
        }
        Mode::Hang | Mode::Normal => {}
    }
    match (method, path) {
        ("GET", "/api/version") => send(&mut conn, "200 OK", &format!("{{\"version\":\"{VERSION}\"}}")),
        ("GET", "/api/ps") => {
            let expires = go_time_minus_7(SystemTime::now() + Duration::from_secs(EXPIRES_IN));
            let ps = serde_json::json!({"models": [{
                "name": MODEL,
                "model": MODEL,
                "size": MODEL_SIZE,
                "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
                "details": {
                    "parent_model": "",
                    "format": "gguf",
                    "family": "llama",
                    "families": ["llama"],
                    "parameter_size": "3.2B",
                    "quantization_level": "Q4_K_M"
                },
                "expires_at": expires,
                "size_vram": 0,
                "context_length": CONTEXT_LENGTH
            }]});
            send(&mut conn, "200 OK", &ps.to_string())
        }
        ("POST", "/api/generate") => {
            generates.fetch_add(1, Ordering::SeqCst);
            let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            *last.lock().unwrap() = Some(req.clone());
            if req["model"] != MODEL {
                let e = format!(
                    "{{\"error\":\"model '{}' not found\"}}",
                    req["model"].as_str().unwrap_or("")
                );
                return send(&mut conn, "404 Not Found", &e);
            }
            let g = serde_json::json!({
                "model": MODEL,
                "created_at": humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
                "response": "One, two, three, four, five, six, seven, eight, nine, ten, eleven, twelve",
                "done": true,
                "done_reason": "length",
                "total_duration": 7_100_000_000u64,
                "load_duration": 120_000_000u64,
                "prompt_eval_count": 18,
                "prompt_eval_duration": 560_000_000u64,
                "eval_count": EVAL_COUNT,
                "eval_duration": EVAL_DURATION_NS
            });
            send(&mut conn, "200 OK", &g.to_string())
        }
        _ => send(&mut conn, "404 Not Found", "404 page not found"),
    }
}
