//! Shared by log-tail-ship's integration tests: the output schema (parsed strictly),
//! a stand-in for Loki's push API, and helpers to run the binary.
//!
//! No Loki server can be installed here, so [`Receiver`] follows Loki's documented
//! push contract: `POST /loki/api/v1/push` with `Content-Type: application/json`,
//! optionally `Content-Encoding: gzip`; body `{"streams":[{"stream":{..},"values":
//! [["<ns as string>","<line>"(,{metadata})],..]}]}` (a JSON number as timestamp is
//! an error); answers 204, 400 for a malformed body (and, like Loki, for entries it
//! refuses while still storing the valid ones), 429 and 5xx when told to.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineRec {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
    pub labels: BTreeMap<String, String>,
    pub timestamp: String,
    pub line: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryRec {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
    pub lines_read_total: u64,
    pub lines_shipped_total: u64,
    pub lines_dropped_filter_total: u64,
    pub lines_dropped_rate_limit_total: u64,
    pub lines_dropped_rejected_total: u64,
    pub lines_truncated_total: u64,
    pub batches_rejected_total: u64,
    pub push_retries_total: u64,
    pub bytes_shipped_total: u64,
    pub lines_pending: u64,
    pub files_open: u64,
    pub files_unreadable: u64,
    pub lag_bytes: u64,
    pub file_looks_total: u64,
    pub file_sweeps_total: u64,
    pub docker_lists_total: u64,
    pub errors: Vec<String>,
}

/// What a run printed, parsed strictly by kind.
#[derive(Debug)]
pub struct Run {
    pub output: Output,
    pub lines: Vec<LineRec>,
    pub summaries: Vec<SummaryRec>,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn texts(&self) -> Vec<&str> {
        self.lines.iter().map(|l| l.line.as_str()).collect()
    }
    pub fn summary(&self) -> &SummaryRec {
        assert_eq!(self.summaries.len(), 1, "one summary; stderr: {}", self.stderr());
        &self.summaries[0]
    }
}

pub fn parse(output: Output) -> Run {
    let stdout = String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8");
    let mut lines = Vec::new();
    let mut summaries = Vec::new();
    for l in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert_eq!(v["v"], 1);
        assert_eq!(v["tool"], "log-tail-ship");
        match v["kind"].as_str() {
            Some("line") => {
                lines.push(serde_json::from_value(v).unwrap_or_else(|e| panic!("line schema: {e}: {l}")))
            }
            Some("summary") => summaries
                .push(serde_json::from_value(v).unwrap_or_else(|e| panic!("summary schema: {e}: {l}"))),
            other => panic!("unknown kind {other:?}: {l}"),
        }
    }
    Run {
        output,
        lines,
        summaries,
    }
}

/// The binary, without LOG_TAIL_SHIP_*, LOGSHIP_* or HOMELAB_* variables from the
/// environment.
pub fn ship() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_log-tail-ship"));
    clean_env(&mut c);
    c
}

/// The binary started by `sh -c` once `setup` (shell commands) succeeded, the shell
/// itself run by `wrapper` (`unshare --user ...`; nothing if empty); its arguments
/// are added to the returned command. The environment is cleaned as by [`ship`].
pub fn ship_after(wrapper: &[&str], setup: &str) -> Command {
    let mut c = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg("sh");
            c
        }
        None => Command::new("sh"),
    };
    c.arg("-c")
        .arg(format!("{setup} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_log-tail-ship"));
    clean_env(&mut c);
    c
}

fn clean_env(c: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("HOMELAB_") || k.starts_with("LOGSHIP_") || k.starts_with("LOG_TAIL_SHIP_") {
            c.env_remove(k);
        }
    }
}

/// Runs with `stdin` as input and parses the output.
pub fn run_with_input(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = ship()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    parse(out)
}

pub fn run(args: &[&str]) -> Run {
    parse(ship().args(args).stdin(Stdio::null()).output().unwrap())
}

/// One entry as the receiver stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub labels: Arc<BTreeMap<String, String>>,
    pub ts: i64,
    pub line: String,
}

/// What the receiver answers to the next pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accept,
    Status(u16),
}

#[derive(Debug, Default)]
pub struct State {
    pub entries: Vec<Received>,
    /// Answers for the next pushes, in order (then 204).
    pub script: Vec<Answer>,
    pub pushes: u64,
    pub refused: u64,
    pub headers: Vec<BTreeMap<String, String>>,
    /// Like Loki's max_line_size: longer lines are refused with 400, the rest stored.
    pub max_line: Option<usize>,
}

/// A stand-in for Loki's push endpoint on 127.0.0.1.
pub struct Receiver {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
    up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let r = Receiver {
            port,
            state: Arc::default(),
            up: Arc::new(AtomicBool::new(true)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        r.serve(listener);
        r
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn serve(&self, listener: TcpListener) {
        let state = Arc::clone(&self.state);
        let up = Arc::clone(&self.up);
        let stop = Arc::clone(&self.stop);
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            loop {
                if stop.load(Ordering::SeqCst) || !up.load(Ordering::SeqCst) {
                    return; // dropping the listener: connections are refused
                }
                match listener.accept() {
                    Ok((s, _)) => {
                        let state = Arc::clone(&state);
                        let up = Arc::clone(&up);
                        std::thread::spawn(move || handle(s, &state, &up));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
    }

    /// Goes away (connections refused) until [`Receiver::come_back`].
    pub fn go_away(&self) {
        self.up.store(false, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
    }

    pub fn come_back(&self) {
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => break l,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        self.up.store(true, Ordering::SeqCst);
        self.serve(listener);
    }

    pub fn script(&self, answers: &[Answer]) {
        self.state.lock().unwrap().script.extend_from_slice(answers);
    }

    pub fn entries(&self) -> Vec<Received> {
        self.state.lock().unwrap().entries.clone()
    }

    pub fn lines(&self) -> Vec<String> {
        self.entries().into_iter().map(|e| e.line).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn respond(s: &mut TcpStream, status: u16, body: &str) {
    let reason = match status {
        204 => "No Content",
        400 => "Bad Request",
        429 => "Too Many Requests",
        _ => "Error",
    };
    // One write, no Nagle: a response in pieces waits for delayed ACKs.
    let _ = s.set_nodelay(true);
    let msg = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(msg.as_bytes());
    let _ = s.flush();
}

fn handle(s: TcpStream, state: &Mutex<State>, up: &AtomicBool) {
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    loop {
        let mut request = String::new();
        if r.read_line(&mut request).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        if !up.load(Ordering::SeqCst) {
            return; // gone away: the connection just drops
        }
        if !request.starts_with("POST /loki/api/v1/push ") {
            respond(&mut w, 404, "404 page not found\n");
            continue;
        }
        let (status, msg) = push(state, &headers, &body);
        respond(&mut w, status, &msg);
    }
}

fn push(state: &Mutex<State>, headers: &BTreeMap<String, String>, body: &[u8]) -> (u16, String) {
    let mut st = state.lock().unwrap();
    st.pushes += 1;
    st.headers.push(headers.clone());
    if !st.script.is_empty()
        && let Answer::Status(code) = st.script.remove(0)
    {
        st.refused += 1;
        return (code, format!("scripted {code}\n"));
    }
    if headers.get("content-type").map(String::as_str) != Some("application/json") {
        return (400, "only JSON bodies here\n".into());
    }
    let json = match headers.get("content-encoding").map(String::as_str) {
        None | Some("") => body.to_vec(),
        Some("gzip") => {
            let mut out = Vec::new();
            if flate2::read::GzDecoder::new(body).read_to_end(&mut out).is_err() {
                return (400, "bad gzip\n".into());
            }
            out
        }
        Some(other) => return (400, format!("Content-Encoding {other:?} not supported\n")),
    };
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        streams: Vec<PushStream>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PushStream {
        stream: BTreeMap<String, String>,
        values: Vec<Vec<serde_json::Value>>,
    }
    let parsed: Body = match serde_json::from_slice(&json) {
        Ok(b) => b,
        Err(e) => return (400, format!("invalid JSON: {e}\n")),
    };
    let mut refused = Vec::new();
    for s in parsed.streams {
        let labels = Arc::new(s.stream);
        if labels.is_empty() {
            return (
                400,
                "error at least one label pair is required per stream\n".into(),
            );
        }
        for v in s.values {
            if !(2..=3).contains(&v.len()) {
                return (400, "array must have at least 2 and up to 3 values\n".into());
            }
            let Some(ts) = v[0].as_str().and_then(|t| t.parse::<i64>().ok()) else {
                return (
                    400,
                    format!("timestamp must be a string of nanoseconds: {}\n", v[0]),
                );
            };
            let Some(line) = v[1].as_str() else {
                return (400, "line must be a string\n".into());
            };
            if st.max_line.is_some_and(|m| line.len() > m) {
                refused.push(line.len());
                continue;
            }
            st.entries.push(Received {
                labels: Arc::clone(&labels),
                ts,
                line: line.to_string(),
            });
        }
    }
    if !refused.is_empty() {
        return (400, format!("{} entries line_too_long\n", refused.len()));
    }
    (204, String::new())
}

/// Polls a file (a textfile .prom page) until it exists.
pub fn read_when_there(p: &Path) -> String {
    homelab_testkit::wait_until(Duration::from_secs(20), &format!("{}", p.display()), || {
        p.exists()
    });
    std::fs::read_to_string(p).unwrap()
}

/// Stops a follower with SIGTERM and waits for it.
pub fn terminate(mut child: Child) -> Output {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    let _ = &mut child;
    child.wait_with_output().unwrap()
}

/// A small deterministic generator (xorshift), so a failing run can be repeated.
pub struct Rng(pub u64);

impl Rng {
    /// Seeded from the variable `var` when set (to repeat a run), else from the clock;
    /// the seed is printed so that a failure can be repeated.
    pub fn from_env(var: &str) -> Rng {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        println!("seed: {var}={seed}");
        eprintln!("seed: {var}={seed}");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A child's stderr appended to `path` (kept across its restarts, read on failure).
pub fn append_to(path: &Path) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .into()
}

/// SIGKILL, and reaped.
pub fn kill9(c: &mut Child) {
    let _ = c.kill();
    let _ = c.wait();
}
