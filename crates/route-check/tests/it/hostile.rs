//! Hostile input, from small servers on loopback written for each case: certificates
//! whose names only a loose match accepts, hosts that would smuggle a header into a
//! request, interim 1xx answers, answers with many headers, a Traefik API and a
//! Docker engine that never stop talking or talk too slowly, and odd flags.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixListener;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::SanType;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::common::*;

// ---- small servers ------------------------------------------------------------------

/// What a server does with one connection, after reading the request head (given).
type Handler = Arc<dyn Fn(&str, &mut dyn Write) + Send + Sync>;

/// A server on 127.0.0.1 (TLS or plain) that records every request head and answers
/// with `handler`, one thread per connection. Stops when dropped.
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(tls: Option<Arc<rustls::ServerConfig>>, handler: Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop2, requests2) = (Arc::clone(&stop), Arc::clone(&requests));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(sock) = conn else { continue };
                let (tls, handler, requests) = (tls.clone(), Arc::clone(&handler), Arc::clone(&requests2));
                std::thread::spawn(move || {
                    let _ = sock.set_read_timeout(Some(Duration::from_secs(10)));
                    match tls {
                        Some(cfg) => {
                            let Ok(conn) = rustls::ServerConnection::new(cfg) else {
                                return;
                            };
                            let mut s = rustls::StreamOwned::new(conn, sock);
                            serve(&mut s, &handler, &requests);
                            s.conn.send_close_notify();
                            let _ = s.flush();
                        }
                        None => {
                            let mut s = sock;
                            serve(&mut s, &handler, &requests);
                        }
                    }
                });
            }
        });
        Server { port, stop, requests }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve<S: Read + Write>(s: &mut S, handler: &Handler, requests: &Mutex<Vec<String>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    requests.lock().unwrap().push(head.clone());
    handler(&head, s);
    let _ = s.flush();
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn canned(answer: &'static [u8]) -> Handler {
    Arc::new(move |_req: &str, w: &mut dyn Write| {
        let _ = w.write_all(answer);
    })
}

fn tls_config(pem: &Pem) -> Arc<rustls::ServerConfig> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.cert.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    Arc::new(cfg)
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// A run whose peak memory is measured (VmHWM, polled while it runs).
fn run_measured(cmd: &mut Command) -> (Output, u64) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    };
    (output, peak_kib)
}

/// Far above route-check's own bounds (16 MiB per answer), far below what the
/// unbounded reads reached (gigabytes within seconds); qemu-user's own memory fits.
const PEAK_LIMIT_KIB: u64 = 200 * 1024;

// ---- 1. names: rustls decides ---------------------------------------------------------

#[test]
fn a_name_rustls_rejects_never_passes_the_check() {
    let pki = Pki::new();
    // Each SAN looks right to a loose match; rustls (RFC 6125 as webpki applies it)
    // refuses all three.
    let cases: [(&str, Vec<SanType>); 3] = [
        ("x.test", vec![SanType::DnsName("*.test".try_into().unwrap())]),
        (
            "probe.test",
            vec![SanType::DnsName("probe.test.".try_into().unwrap())],
        ),
        (
            "127.0.0.1",
            vec![SanType::DnsName("127.0.0.1".try_into().unwrap())],
        ),
    ];
    for (host, sans) in cases {
        let server = Server::start(Some(tls_config(&pki.leaf_sans(sans, 80))), canned(OK));
        let ca = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(ca.path(), &pki.root_pem).unwrap();
        let r = run(&[
            "--connect",
            &server.addr(),
            "--ca",
            &ca.path().display().to_string(),
            "--no-redirect-check",
            "--check",
            "--route",
            host,
        ]);
        let rec = r.route(host);
        assert_eq!(
            rec.status_code,
            Some(200),
            "{host}: the server answered: {rec:#?}"
        );
        assert_eq!(
            (rec.up, rec.name_matches, rec.severity.as_str()),
            (false, Some(false), "critical"),
            "{host}: {rec:#?}"
        );
        assert_eq!(r.code(), Some(2), "{host}: a route that is down fails --check");
        assert!(
            r.alerts_for(host).iter().any(|a| a.severity == "critical"),
            "{host}: {:#?}",
            r.alerts
        );
    }
}

// ---- 2. hosts that would add a header -------------------------------------------------

#[test]
fn hosts_from_the_command_line_are_host_names_or_bracketed_addresses() {
    for (route, says) in [
        ("x\r\nEvil: 1:z:443", "control characters"),
        ("x\r\nEvil:443", "control characters"),
        ("::1", "brackets"),
        ("2001:db8::1", "[2001:db8::1]"),
        ("a b.test", "control characters"),
    ] {
        let r = run(&["--route", route]);
        assert_eq!(r.code(), Some(64), "{route:?}: {}", r.stderr());
        assert!(r.stderr().contains(says), "{route:?}: {}", r.stderr());
        assert!(r.output.stdout.is_empty());
    }
    // A bracketed IPv6 address is a route like any other (probed at ::1, where
    // nothing listens on this port).
    let port = free_port();
    let r = run(&[
        "--route",
        &format!("[::1]:{port}"),
        "--no-redirect-check",
        "--timeout",
        "2s",
    ]);
    let rec = r.route("::1");
    assert_eq!(
        rec.url.as_deref(),
        Some(format!("https://[::1]:{port}/").as_str())
    );
    assert_eq!(rec.severity, "critical");
}

#[test]
fn a_host_from_a_rule_never_reaches_a_request() {
    let pki = Pki::new();
    let tls = Server::start(Some(tls_config(&pki.leaf(&["probe.test"], -1, 80))), canned(OK));
    let plain = Server::start(
        None,
        canned(b"HTTP/1.1 301 Moved\r\nLocation: https://probe.test/\r\n\r\n"),
    );
    let routers = r#"[
        {"name":"inject@file","provider":"file","status":"enabled","tls":{},
         "rule":"Host(`probe.test\r\nX-Injected: yes`)"},
        {"name":"quoted@file","provider":"file","status":"enabled","tls":{},
         "rule":"Host(\"probe.test\\r\\nX-Injected: yes\")"}
    ]"#;
    let api = FakeApi::start(ApiMode::Pages(pages(routers)));
    let r = run(&[
        "--traefik-api",
        &api.url,
        "--connect",
        &tls.addr(),
        "--connect-http",
        &plain.addr(),
    ]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let all: Vec<String> = tls.requests().into_iter().chain(plain.requests()).collect();
    assert!(
        !all.iter().any(|q| q.to_ascii_lowercase().contains("x-injected")),
        "a header was injected: {all:?}"
    );
    assert_eq!(r.routes.len(), 2);
    for rec in &r.routes {
        assert_eq!(rec.server_name, None, "{rec:#?}");
        assert_eq!(rec.severity, "warning");
        assert!(
            rec.errors.iter().any(|e| e.contains("cannot be probed")),
            "{:?}",
            rec.errors
        );
    }
}

// ---- 3 and 4. interim answers and many headers ----------------------------------------

#[test]
fn interim_answers_are_skipped_to_the_final_status() {
    let pki = Pki::new();
    let tls = Server::start(
        Some(tls_config(&pki.leaf(&["hints.test"], -1, 80))),
        canned(
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n\
              HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        ),
    );
    let plain = Server::start(
        None,
        canned(b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 308 Permanent Redirect\r\nLocation: https://hints.test/\r\n\r\n"),
    );
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), &pki.root_pem).unwrap();
    let r = run(&[
        "--connect",
        &tls.addr(),
        "--connect-http",
        &plain.addr(),
        "--ca",
        &ca.path().display().to_string(),
        "--route",
        "hints.test",
        "--check",
    ]);
    let rec = r.route("hints.test");
    assert_eq!(rec.status_code, Some(200), "{rec:#?}");
    assert_eq!(rec.redirect_status_code, Some(308));
    assert!(rec.up && rec.redirect_ok == Some(true), "{rec:#?}");
    assert_eq!(r.code(), Some(0), "{:#?}", r.alerts);
}

fn many_headers(n: usize) -> &'static [u8] {
    let mut h = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..n {
        h.extend_from_slice(format!("X-Header-{i}: value\r\n").as_bytes());
    }
    h.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Box::leak(h.into_boxed_slice())
}

#[test]
fn many_headers_are_read_up_to_a_stated_bound() {
    let pki = Pki::new();
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), &pki.root_pem).unwrap();
    for (n, ok) in [(100, true), (1100, false)] {
        let tls = Server::start(
            Some(tls_config(&pki.leaf(&["headers.test"], -1, 80))),
            canned(many_headers(n)),
        );
        let r = run(&[
            "--connect",
            &tls.addr(),
            "--ca",
            &ca.path().display().to_string(),
            "--no-redirect-check",
            "--route",
            "headers.test",
        ]);
        let rec = r.route("headers.test");
        if ok {
            assert_eq!((rec.status_code, rec.up), (Some(200), true), "{n}: {rec:#?}");
        } else {
            assert_eq!(rec.status_code, None);
            assert!(
                rec.errors
                    .iter()
                    .any(|e| e.contains("more than 1024 header lines")),
                "{n}: {:?}",
                rec.errors
            );
        }
    }
}

// ---- 5. the Traefik API: bytes, pages and time ----------------------------------------

fn pages(routers: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    std::collections::BTreeMap::from([
        ("/api/http/routers".to_string(), vec![routers.to_string()]),
        ("/api/http/services".to_string(), vec!["[]".to_string()]),
    ])
}

/// An API that serves page after page, forever: `body(page)` and X-Next-Page page+1,
/// each after `delay`.
fn endless_api(
    delay: Duration,
    next: fn(usize) -> String,
    body: fn(usize) -> String,
) -> (Server, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    let handler: Handler = Arc::new(move |req: &str, w: &mut dyn Write| {
        c.fetch_add(1, Ordering::SeqCst);
        let page: usize = req
            .split_whitespace()
            .nth(1)
            .and_then(|t| t.split("&page=").nth(1))
            .and_then(|p| p.split('&').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        std::thread::sleep(delay);
        let b = body(page);
        let _ = write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Next-Page: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            next(page),
            b.len()
        );
        let _ = w.write_all(b.as_bytes());
    });
    (Server::start(None, handler), count)
}

#[test]
fn a_slow_endless_api_gets_one_timeout_in_all() {
    let _machine = homelab_testkit::shared();
    let (api, count) = endless_api(
        Duration::from_millis(600),
        |p| (p + 1).to_string(),
        |_| "[]".into(),
    );
    let startup = startup_time();
    let t = Instant::now();
    let r = run(&[
        "--traefik-api",
        &format!("http://{}", api.addr()),
        "--timeout",
        "2s",
    ]);
    let took = t.elapsed();
    let startup = startup.max(startup_time());
    // Without one deadline for all pages this runs for 1000 pages of 0.6 s.
    let pages = count.load(Ordering::SeqCst);
    assert!(
        took < startup * 2 + Duration::from_secs(8) && pages <= 8,
        "took {took:?} for --timeout 2s ({pages} pages)"
    );
    assert_eq!(r.code(), Some(69), "{}", r.stderr());
    let src = &r.summary().sources[0];
    assert!(
        src.error
            .as_deref()
            .unwrap()
            .contains("within --timeout 2s in all"),
        "{:?}",
        src.error
    );
}

#[test]
fn huge_pages_stop_at_a_total_and_memory_stays_bounded() {
    let _machine = homelab_testkit::alone();
    let (api, count) = endless_api(
        Duration::ZERO,
        |p| (p + 1).to_string(),
        |p| {
            // ~5 MB of one router each page, most of it a field route-check skips.
            format!(
                r#"[{{"name":"r{p}@file","provider":"file","rule":"Host(`r{p}.test`)","tls":{{}},"padding":"{}"}}]"#,
                "x".repeat(5_000_000)
            )
        },
    );
    let (out, peak_kib) = run_measured(route_check().args([
        "--traefik-api",
        &format!("http://{}", api.addr()),
        "--timeout",
        "20s",
    ]));
    let r = parse(out);
    assert_eq!(r.code(), Some(69), "{}", r.stderr());
    let err = r.summary().sources[0].error.clone().unwrap();
    assert!(err.contains("add up to more than 16 MiB"), "{err}");
    assert!(
        count.load(Ordering::SeqCst) <= 4,
        "{} pages read",
        count.load(Ordering::SeqCst)
    );
    eprintln!("peak RSS {peak_kib} KiB");
    assert!(peak_kib < PEAK_LIMIT_KIB, "peak RSS {peak_kib} KiB");
}

#[test]
fn a_next_page_that_jumps_is_named() {
    let (api, count) = endless_api(Duration::ZERO, |_| "4294967295".into(), |_| "[]".into());
    let r = run(&["--traefik-api", &format!("http://{}", api.addr())]);
    assert_eq!(r.code(), Some(69));
    let err = r.summary().sources[0].error.clone().unwrap();
    assert!(err.contains("X-Next-Page \"4294967295\" after page 1"), "{err}");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

// ---- 6. rules that match nothing ------------------------------------------------------

#[test]
fn a_rule_that_matches_nothing_is_a_warning() {
    let routers = r#"[
        {"name":"both@file","provider":"file","status":"enabled","tls":{},
         "rule":"Host(`a.test`) && Host(`b.test`)"},
        {"name":"empty@file","provider":"file","status":"enabled","tls":{},"rule":"Host(``)"}
    ]"#;
    let api = FakeApi::start(ApiMode::Pages(pages(routers)));
    let r = run(&["--traefik-api", &api.url, "--check"]);
    assert_eq!(r.code(), Some(1), "a warning: {:#?}", r.alerts);
    for (router, says) in [
        ("both@file", "can never match"),
        ("empty@file", "empty host name"),
    ] {
        let rec = r.routes.iter().find(|x| x.router == router).unwrap();
        assert_eq!(
            (rec.server_name.as_deref(), rec.severity.as_str()),
            (None, "warning")
        );
        let a = r.alerts_for(router);
        assert!(
            a.len() == 1 && a[0].severity == "warning" && a[0].message.contains(says),
            "{router}: {a:#?}"
        );
    }
}

// ---- 7. flags and what is printed -----------------------------------------------------

#[test]
fn credentials_in_the_api_url_are_used_and_never_printed() {
    use base64::Engine as _;
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("admin:s3cr3t-pw")
    );
    let api = FakeApi::start(ApiMode::Auth(want, pages("[]")));
    let port = api.url.rsplit(':').next().unwrap().to_string();
    let r = run(&[
        "--traefik-api",
        &format!("HTTP://admin:s3cr3t-pw@127.0.0.1:{port}"),
    ]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert!(r.summary().sources[0].ok, "the URL's credentials are used");
    let refused = free_port();
    for url in [
        format!("http://admin:s3cr3t-pw@127.0.0.1:{port}"),
        format!("http://admin:s3cr3t-pw@127.0.0.1:{refused}"),
        "ftp://admin:s3cr3t-pw@127.0.0.1".to_string(),
    ] {
        let out = route_check()
            .args(["--traefik-api", &url, "--format", "text"])
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains("s3cr3t"), "{url}: {all}");
        let help = route_check()
            .env("ROUTE_CHECK_TRAEFIK_API", &url)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&help.stdout).contains("s3cr3t"),
            "--help"
        );
        let json = run(&["--traefik-api", &url]);
        assert!(
            !json.stdout().contains("s3cr3t") && !json.stderr().contains("s3cr3t"),
            "{url}: {}{}",
            json.stdout(),
            json.stderr()
        );
    }
}

#[test]
fn an_upper_case_scheme_is_a_scheme() {
    let refused = free_port();
    let r = run(&["--traefik-api", &format!("HTTPS://127.0.0.1:{refused}")]);
    assert_eq!(r.code(), Some(69), "{}", r.stderr());
    let err = r.summary().sources[0].error.clone().unwrap();
    assert!(!err.contains("is not a port"), "{err}");
    assert!(err.contains(&format!("https://127.0.0.1:{refused}")), "{err}");
}

#[test]
fn days_must_be_numbers() {
    for (flag, v) in [
        ("--warn-days", "NaN"),
        ("--warn-days", "inf"),
        ("--crit-days", "nan"),
        ("--crit-days", "-1"),
    ] {
        let r = run(&["--route", "a.test", &format!("{flag}={v}")]);
        assert_eq!(r.code(), Some(64), "{flag} {v}: {}", r.stderr());
        assert!(r.stderr().contains("number of days"), "{}", r.stderr());
    }
}

#[test]
fn control_characters_never_reach_the_terminal() {
    let routers = "[{\"name\":\"evil\\u001b[2J\\u0007@file\",\"provider\":\"file\",\"status\":\"enabled\",\
                   \"rule\":\"Host(`a\\u001b[31m.test`)\"}]";
    let api = FakeApi::start(ApiMode::Pages(pages(routers)));
    let out = route_check()
        .args(["--traefik-api", &api.url, "--format", "text"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
    assert!(text.contains("evil\\u{1b}[2J\\u{7}@file"), "{text}");
}

// ---- 8 and 9. a Docker engine that misbehaves -----------------------------------------

/// A Docker engine on a unix socket: `/version` and `/_ping` as an engine answers
/// them, everything else through `handler`.
struct FakeEngine {
    _dir: tempfile::TempDir,
    host: String,
    stop: Arc<AtomicBool>,
    path: std::path::PathBuf,
}

impl FakeEngine {
    fn start(handler: Handler) -> FakeEngine {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut s) = conn else { continue };
                let handler = Arc::clone(&handler);
                std::thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        match r.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => head.push_str(&line),
                        }
                    }
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let json = |s: &mut dyn Write, body: &str| {
                        let _ = write!(
                            s,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nApi-Version: 1.43\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                    };
                    if path.ends_with("/version") {
                        json(
                            &mut s,
                            r#"{"Version":"24.0.0","ApiVersion":"1.43","MinAPIVersion":"1.12","Os":"linux","Arch":"amd64"}"#,
                        );
                    } else if path.ends_with("/_ping") {
                        json(&mut s, "OK");
                    } else {
                        handler(&head, &mut s);
                    }
                });
            }
        });
        let host = format!("unix://{}", path.display());
        FakeEngine {
            _dir: dir,
            host,
            stop,
            path,
        }
    }
}

impl Drop for FakeEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::os::unix::net::UnixStream::connect(&self.path);
    }
}

#[test]
fn an_endless_container_list_is_cut_off_with_memory_bounded() {
    let _machine = homelab_testkit::alone();
    let engine = FakeEngine::start(Arc::new(|_req: &str, w: &mut dyn Write| {
        let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n[\r\n");
        let item =
            br#"{"Id":"0123456789ab","Names":["/x"],"Image":"busybox","Labels":{},"Ports":[]},"#.repeat(500);
        let chunk = [format!("{:x}\r\n", item.len()).as_bytes(), &item, b"\r\n"].concat();
        // Until route-check hangs up (bounded: a minute at most).
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if w.write_all(&chunk).is_err() {
                break;
            }
        }
    }));
    let startup = startup_time();
    let t = Instant::now();
    let (out, peak_kib) =
        run_measured(route_check().args(["--docker", "--docker-host", &engine.host, "--timeout", "5s"]));
    let took = t.elapsed();
    let startup = startup.max(startup_time());
    let r = parse(out);
    eprintln!("peak RSS {peak_kib} KiB");
    assert!(peak_kib < PEAK_LIMIT_KIB, "peak RSS {peak_kib} KiB");
    assert_eq!(r.code(), Some(69), "{}", r.stderr());
    let err = r.summary().sources[0].error.clone().unwrap();
    assert!(err.contains("more than 16 MiB"), "{err}");
    assert!(took < startup * 2 + Duration::from_secs(10), "{took:?}");
}

#[test]
fn a_slow_engine_gets_one_timeout_for_the_whole_exchange() {
    let _machine = homelab_testkit::shared();
    let engine = FakeEngine::start(Arc::new(|req: &str, w: &mut dyn Write| {
        let body = if req.contains("/containers/json ") || req.contains("/containers/json?") {
            let list: Vec<String> = (0..20)
                .map(|i| {
                    format!(
                        r#"{{"Id":"{i:012}","Names":["/c{i}"],"Image":"busybox","Labels":{{}},"Ports":[]}}"#
                    )
                })
                .collect();
            format!("[{}]", list.join(","))
        } else {
            std::thread::sleep(Duration::from_millis(900));
            r#"{"HostConfig":{"NetworkMode":"none","PortBindings":{}}}"#.to_string()
        };
        let _ = write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    }));
    let startup = startup_time();
    let t = Instant::now();
    let r = run(&["--docker", "--docker-host", &engine.host, "--timeout", "2s"]);
    let took = t.elapsed();
    let startup = startup.max(startup_time());
    assert_eq!(r.code(), Some(69), "{}", r.stderr());
    let err = r.summary().sources[0].error.clone().unwrap();
    assert!(err.contains("within 2s"), "{err}");
    // One deadline per request would take 20 x 0.9 s.
    assert!(
        took < startup * 2 + Duration::from_secs(8),
        "{took:?} for twenty 0.9 s inspects"
    );
}

#[test]
fn labels_from_the_engine_are_read_and_checked() {
    let plain = Server::start(
        None,
        canned(b"HTTP/1.1 301 Moved\r\nLocation: https://probe.test/\r\n\r\n"),
    );
    let engine = FakeEngine::start(Arc::new(|req: &str, w: &mut dyn Write| {
        let body = if req.contains("/containers/json") && !req.contains("/containers/0") {
            r#"[{"Id":"0123456789abcdef","Names":["/web"],"Image":"nginx",
                 "Labels":{"traefik.enable":"true","traefik.http.routers.web.rule":"Host(`probe.test\r\nX-Injected: yes`)","traefik.http.routers.web.tls":"true"},
                 "Ports":[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8081,"Type":"tcp"}],"HostConfig":{"NetworkMode":"bridge"}}]"#
                .to_string()
        } else {
            r#"{"HostConfig":{"NetworkMode":"bridge","PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8081"}]}}}"#.to_string()
        };
        let _ = write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    }));
    let r = run(&[
        "--docker",
        "--docker-host",
        &engine.host,
        "--connect",
        &plain.addr(),
        "--connect-http",
        &plain.addr(),
    ]);
    assert!(r.summary().sources[0].ok, "{:?}", r.summary().sources);
    assert_eq!(r.routes.len(), 1);
    assert_eq!(r.routes[0].server_name, None);
    assert!(
        r.routes[0].errors.iter().any(|e| e.contains("cannot be probed")),
        "{:?}",
        r.routes[0].errors
    );
    assert!(plain.requests().is_empty(), "{:?}", plain.requests());
    assert_eq!(r.bypasses.len(), 1);
    assert_eq!(
        (r.bypasses[0].port, r.bypasses[0].address.as_str()),
        (Some(8081), "0.0.0.0")
    );
}

#[test]
fn an_empty_docker_host_is_the_default_socket() {
    let out = route_check()
        .env("DOCKER_HOST", "")
        .args(["--docker", "--timeout", "2s"])
        .output()
        .unwrap();
    let r = parse(out);
    assert_ne!(r.code(), Some(78), "{}", r.stderr());
    assert_eq!(
        r.summary().sources[0].target.as_deref(),
        Some("unix:///var/run/docker.sock")
    );
}
