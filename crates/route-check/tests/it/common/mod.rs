//! Shared by route-check's integration tests: the output schema parsed strictly (a
//! field added or renamed without updating the tests and the man page fails here),
//! certificates made with rcgen, a real nginx as the TLS reverse proxy on loopback,
//! and a stand-in for Traefik's API that serves fixtures with its documented shapes.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde::Deserialize;
use time::OffsetDateTime;

#[allow(unused_imports)]
pub use homelab_testkit::{promtool_check_metrics as promtool_check, series, wait_until};

// ---- the output schema ------------------------------------------------------------

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RouteRec {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
    pub router: String,
    pub source: String,
    pub rule: Option<String>,
    pub server_name: Option<String>,
    pub path: String,
    pub url: Option<String>,
    pub entry_points: Vec<String>,
    pub router_tls: Option<bool>,
    pub router_status: Option<String>,
    pub service: Option<String>,
    pub service_status: Option<String>,
    pub servers_down: Vec<String>,
    pub address: Option<String>,
    pub up: bool,
    pub severity: String,
    pub status_code: Option<u16>,
    pub status_expected: Option<bool>,
    pub expected_status: String,
    pub resolve_seconds: Option<f64>,
    pub connect_seconds: Option<f64>,
    pub tls_seconds: Option<f64>,
    pub request_seconds: Option<f64>,
    pub tls_version: Option<String>,
    pub tls_cipher: Option<String>,
    pub cert_subject: Option<String>,
    pub cert_issuer: Option<String>,
    pub cert_sans: Vec<String>,
    pub cert_expiry_timestamp_seconds: Option<i64>,
    pub cert_expiry_subject: Option<String>,
    pub cert_days_left: Option<f64>,
    pub renewal_overdue: Option<bool>,
    pub cert_verified: Option<bool>,
    pub cert_error: Option<String>,
    pub name_matches: Option<bool>,
    pub default_cert: Option<bool>,
    pub redirect_status_code: Option<u16>,
    pub redirect_location: Option<String>,
    pub redirect_ok: Option<bool>,
    pub errors: Vec<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct BypassRec {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
    pub container: String,
    pub container_id: String,
    pub image: String,
    pub reason: String,
    pub address: String,
    pub port: Option<u16>,
    pub container_port: Option<u16>,
    pub protocol: Option<String>,
    pub allowed: bool,
    pub severity: String,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct AlertRec {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
    pub severity: String,
    pub check: String,
    pub subject: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub message: String,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct SourceRec {
    pub source: String,
    pub target: Option<String>,
    pub ok: bool,
    pub routes: usize,
    pub error: Option<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct SummaryRec {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
    pub routes: usize,
    pub routes_up: usize,
    pub routes_warning: usize,
    pub routes_critical: usize,
    pub bypasses: usize,
    pub containers: Option<usize>,
    pub sources: Vec<SourceRec>,
    pub duration_seconds: f64,
    pub severity: String,
}

/// What one run printed, parsed by kind.
pub struct Run {
    pub output: Output,
    pub routes: Vec<RouteRec>,
    pub bypasses: Vec<BypassRec>,
    pub alerts: Vec<AlertRec>,
    pub summaries: Vec<SummaryRec>,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    /// The route record for `host` (exactly one).
    pub fn route(&self, host: &str) -> &RouteRec {
        let found: Vec<&RouteRec> = self
            .routes
            .iter()
            .filter(|r| r.server_name.as_deref() == Some(host))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one route for {host}; stderr: {}\n{}",
            self.stderr(),
            self.stdout()
        );
        found[0]
    }
    pub fn summary(&self) -> &SummaryRec {
        assert_eq!(self.summaries.len(), 1, "one summary; stderr: {}", self.stderr());
        &self.summaries[0]
    }
    pub fn alerts_for(&self, needle: &str) -> Vec<&AlertRec> {
        self.alerts
            .iter()
            .filter(|a| a.subject.contains(needle))
            .collect()
    }
}

/// The binary with no HOMELAB_*, ROUTE_CHECK_* or DOCKER_HOST from the environment.
pub fn route_check() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_route-check"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HOMELAB_") || k.starts_with("ROUTE_CHECK_") || k == "DOCKER_HOST" {
            c.env_remove(k);
        }
    }
    c
}

/// How long starting and stopping the binary takes here (much longer under qemu-user,
/// the aarch64 test run): time bounds in tests are this plus the work's own bound.
pub fn startup_time() -> Duration {
    let t = std::time::Instant::now();
    let out = route_check().arg("--version").output().unwrap();
    assert!(out.status.success());
    t.elapsed()
}

pub fn run(args: &[&str]) -> Run {
    parse(route_check().args(args).output().unwrap())
}

pub fn parse(output: Output) -> Run {
    let stdout = String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8");
    let mut r = Run {
        output,
        routes: vec![],
        bypasses: vec![],
        alerts: vec![],
        summaries: vec![],
    };
    for line in stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let kind = v["kind"].as_str().map(str::to_string);
        assert_eq!(
            line.matches("\"host\":").count(),
            1,
            "one host key per object: {line}"
        );
        fn strict<T: serde::de::DeserializeOwned>(v: serde_json::Value, line: &str) -> T {
            serde_json::from_value(v).unwrap_or_else(|e| panic!("schema: {e}: {line}"))
        }
        match kind.as_deref() {
            Some("route") => r.routes.push(strict(v, line)),
            Some("bypass") => r.bypasses.push(strict(v, line)),
            Some("alert") => r.alerts.push(strict(v, line)),
            Some("summary") => r.summaries.push(strict(v, line)),
            other => panic!("unknown kind {other:?}: {line}"),
        }
    }
    r
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A free port on 127.0.0.1 (bound, then released for the service to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---- certificates -------------------------------------------------------------------

fn days(n: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::days(n)
}

/// A certificate (PEM) and its key (PEM).
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// A test root, an intermediate, and leaves signed by the intermediate.
pub struct Pki {
    pub root_pem: String,
    inter: Issuer<'static, KeyPair>,
    inter_pem: String,
    /// A second intermediate that expires in 10 days.
    short: Issuer<'static, KeyPair>,
    short_pem: String,
}

fn ca_params(cn: &str, not_after: OffsetDateTime) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name
        .push(DnType::OrganizationName, "route-check tests");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = days(-30);
    p.not_after = not_after;
    p
}

impl Pki {
    pub fn new() -> Pki {
        let root_key = KeyPair::generate().unwrap();
        let root_params = ca_params("route-check Test Root", days(3650));
        let root_cert = root_params.self_signed(&root_key).unwrap();
        let root = Issuer::new(root_params, root_key);
        let mk = |cn: &str, not_after| {
            let key = KeyPair::generate().unwrap();
            let params = ca_params(cn, not_after);
            let cert = params.signed_by(&key, &root).unwrap();
            (Issuer::new(params, key), cert.pem())
        };
        let (inter, inter_pem) = mk("route-check Test Intermediate", days(1800));
        let (short, short_pem) = mk("route-check Short Intermediate", days(10));
        Pki {
            root_pem: root_cert.pem(),
            inter,
            inter_pem,
            short,
            short_pem,
        }
    }

    /// A leaf for `names`, valid from `from` to `to` days from now, with the chain
    /// (leaf then intermediate) as nginx wants it.
    pub fn leaf(&self, names: &[&str], from: i64, to: i64) -> Pem {
        self.leaf_by(names, from, to, false)
    }

    /// A leaf with exactly these SANs (a DNS name that looks like an IP address, a
    /// trailing dot, ...), valid until `to` days from now, with its chain.
    pub fn leaf_sans(&self, sans: Vec<rcgen::SanType>, to: i64) -> Pem {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names = sans;
        p.distinguished_name.push(DnType::CommonName, "odd names");
        p.not_before = days(-1);
        p.not_after = days(to);
        let cert = p.signed_by(&key, &self.inter).unwrap();
        Pem {
            cert: format!("{}{}", cert.pem(), self.inter_pem),
            key: key.serialize_pem(),
        }
    }

    /// A leaf signed by the intermediate that expires in 10 days.
    pub fn leaf_short_chain(&self, names: &[&str], to: i64) -> Pem {
        self.leaf_by(names, -1, to, true)
    }

    fn leaf_by(&self, names: &[&str], from: i64, to: i64, short: bool) -> Pem {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name.push(DnType::CommonName, names[0]);
        p.not_before = days(from);
        p.not_after = days(to);
        let (issuer, inter_pem) = if short {
            (&self.short, &self.short_pem)
        } else {
            (&self.inter, &self.inter_pem)
        };
        let cert = p.signed_by(&key, issuer).unwrap();
        Pem {
            cert: format!("{}{}", cert.pem(), inter_pem),
            key: key.serialize_pem(),
        }
    }

    /// What Traefik serves when no certificate matches: self-signed, CN
    /// `TRAEFIK DEFAULT CERT`, one SAN under `traefik.default`.
    pub fn traefik_default() -> Pem {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["9b6a0a3c.a1b2c3d4.traefik.default".to_string()]).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(DnType::CommonName, "TRAEFIK DEFAULT CERT");
        p.not_before = days(-1);
        p.not_after = days(365);
        let cert = p.self_signed(&key).unwrap();
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

// ---- nginx, the real TLS reverse proxy ------------------------------------------------

/// How a TLS virtual host answers.
pub enum Upstream {
    /// proxy_pass to a backend that answers 200.
    Ok,
    /// proxy_pass to a backend that answers 502.
    BadGateway,
    /// proxy_pass to a port where nothing listens.
    Nothing,
}

pub struct Site {
    pub name: String,
    pub pem: Pem,
    pub upstream: Upstream,
    /// Whether plain HTTP for this name redirects to HTTPS.
    pub redirect: bool,
}

impl Site {
    pub fn new(name: &str, pem: Pem) -> Site {
        Site {
            name: name.into(),
            pem,
            upstream: Upstream::Ok,
            redirect: true,
        }
    }
}

/// nginx on loopback: one TLS port with a virtual host per site (and Traefik's
/// default certificate for unknown names), one plain-HTTP port, two backends.
/// Stopped by its pid when dropped.
pub struct Nginx {
    child: Child,
    pub dir: tempfile::TempDir,
    pub tls_port: u16,
    pub http_port: u16,
    pub ca_file: PathBuf,
}

impl Nginx {
    pub fn start(pki: &Pki, sites: Vec<Site>) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (tls_port, http_port, ok_port, bad_port, nothing_port) =
            (free_port(), free_port(), free_port(), free_port(), free_port());
        let ca_file = d.join("root.pem");
        std::fs::write(&ca_file, &pki.root_pem).unwrap();
        let default = Pki::traefik_default();
        std::fs::write(d.join("default.crt"), &default.cert).unwrap();
        std::fs::write(d.join("default.key"), &default.key).unwrap();
        let mut servers = String::new();
        for (i, s) in sites.iter().enumerate() {
            std::fs::write(d.join(format!("site{i}.crt")), &s.pem.cert).unwrap();
            std::fs::write(d.join(format!("site{i}.key")), &s.pem.key).unwrap();
            let upstream = match s.upstream {
                Upstream::Ok => ok_port,
                Upstream::BadGateway => bad_port,
                Upstream::Nothing => nothing_port,
            };
            servers.push_str(&format!(
                "  server {{ listen 127.0.0.1:{tls_port} ssl; server_name {name};\n    \
                 ssl_certificate {d}/site{i}.crt; ssl_certificate_key {d}/site{i}.key;\n    \
                 location / {{ proxy_pass http://127.0.0.1:{upstream}; }} }}\n",
                name = s.name,
                d = d.display()
            ));
            if !s.redirect {
                servers.push_str(&format!(
                    "  server {{ listen 127.0.0.1:{http_port}; server_name {}; return 200 \"plain\\n\"; }}\n",
                    s.name
                ));
            }
        }
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy;\n  \
             fastcgi_temp_path {d}/tmp/fastcgi; uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;\n  \
             proxy_connect_timeout 2s; proxy_read_timeout 2s; ssl_protocols TLSv1.2 TLSv1.3;\n  \
             server {{ listen 127.0.0.1:{ok_port}; return 200 \"ok\\n\"; }}\n  \
             server {{ listen 127.0.0.1:{bad_port}; return 502; }}\n  \
             server {{ listen 127.0.0.1:{tls_port} ssl default_server;\n    \
             ssl_certificate {d}/default.crt; ssl_certificate_key {d}/default.key; return 404; }}\n  \
             server {{ listen 127.0.0.1:{http_port} default_server; return 301 https://$host$request_uri; }}\n\
             {servers}}}\n",
            d = d.display()
        );
        std::fs::create_dir_all(d.join("tmp")).unwrap();
        std::fs::write(d.join("nginx.conf"), conf).unwrap();
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("nginx");
        let child = Command::new(nginx)
            .args([
                "-p",
                &d.display().to_string(),
                "-e",
                &d.join("error.log").display().to_string(),
            ])
            .args(["-c", &d.join("nginx.conf").display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx is needed (Debian package nginx-light; scripts/test installs it)");
        let mut n = Nginx {
            child,
            dir,
            tls_port,
            http_port,
            ca_file,
        };
        let ports = [tls_port, http_port, ok_port, bad_port];
        let mut exited = None;
        wait_until(Duration::from_secs(20), "nginx to listen", || {
            if let Ok(Some(st)) = n.child.try_wait() {
                exited = Some(st);
                return true;
            }
            ports
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
        });
        if let Some(st) = exited {
            let mut err = String::new();
            if let Some(mut e) = n.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let log = std::fs::read_to_string(n.dir.path().join("error.log")).unwrap_or_default();
            panic!("nginx exited ({st}): {err}\n{log}");
        }
        n
    }

    pub fn connect(&self) -> String {
        format!("127.0.0.1:{}", self.tls_port)
    }

    pub fn connect_http(&self) -> String {
        format!("127.0.0.1:{}", self.http_port)
    }

    pub fn ca(&self) -> String {
        self.ca_file.display().to_string()
    }

    /// The arguments that point route-check at this proxy and trust its root.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--connect".into(),
            self.connect(),
            "--connect-http".into(),
            self.connect_http(),
            "--ca".into(),
            self.ca(),
        ]
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master (our child, by pid): it stops its workers.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// The usual set of sites of the proxy tests.
pub fn standard_sites(pki: &Pki) -> Vec<Site> {
    let mut v = vec![
        Site::new("valid.test", pki.leaf(&["valid.test"], -10, 80)),
        Site::new("expired.test", pki.leaf(&["expired.test"], -100, -1)),
        Site::new("soon.test", pki.leaf(&["soon.test"], -85, 5)),
        Site::new("wrong.test", pki.leaf(&["other.test"], -10, 80)),
        Site::new("shortchain.test", pki.leaf_short_chain(&["shortchain.test"], 80)),
    ];
    let mut bad = Site::new("bad.test", pki.leaf(&["bad.test"], -10, 80));
    bad.upstream = Upstream::BadGateway;
    let mut down = Site::new("down.test", pki.leaf(&["down.test"], -10, 80));
    down.upstream = Upstream::Nothing;
    let mut plain = Site::new("plain.test", pki.leaf(&["plain.test"], -10, 80));
    plain.redirect = false;
    v.extend([bad, down, plain]);
    v
}

// ---- a stand-in for Traefik's API ---------------------------------------------------

/// How the fake API behaves.
#[derive(Clone)]
pub enum ApiMode {
    /// Serves `routers` and `services` pages (path → list of pages), with
    /// `X-Next-Page` as Traefik sets it.
    Pages(BTreeMap<String, Vec<String>>),
    /// Answers 200 with this body to everything.
    Body(String),
    /// Accepts connections and never answers.
    Hang,
    /// Wants this Authorization header, else 401.
    Auth(String, BTreeMap<String, Vec<String>>),
}

/// A tiny HTTP server on loopback serving fixtures. Stops when dropped.
pub struct FakeApi {
    pub url: String,
    stop: Arc<AtomicBool>,
    port: u16,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeApi {
    pub fn start(mode: ApiMode) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut s) = conn else { continue };
                if matches!(mode, ApiMode::Hang) {
                    held.push(s);
                    continue;
                }
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let req = String::from_utf8_lossy(&buf).to_string();
                let resp = answer(&mode, &req);
                let _ = s.write_all(resp.as_bytes());
            }
        });
        FakeApi {
            url: format!("http://127.0.0.1:{port}"),
            stop,
            port,
            thread: Some(thread),
        }
    }
}

fn answer(mode: &ApiMode, req: &str) -> String {
    let target = req.split_whitespace().nth(1).unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let page: usize = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("page="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    let respond = |status: &str, body: &str, next: Option<usize>| {
        let next = next.map(|n| format!("X-Next-Page: {n}\r\n")).unwrap_or_default();
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{next}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let pages = |p: &BTreeMap<String, Vec<String>>| match p.get(path) {
        Some(pages) if page >= 1 && page <= pages.len() => {
            let next = if page < pages.len() { page + 1 } else { 1 };
            respond("200 OK", &pages[page - 1], Some(next))
        }
        _ => respond("404 Not Found", "404 page not found\n", None),
    };
    match mode {
        ApiMode::Pages(p) => pages(p),
        ApiMode::Body(b) => respond("200 OK", b, None),
        ApiMode::Hang => unreachable!(),
        ApiMode::Auth(want, p) => {
            let ok = req
                .lines()
                .any(|l| l.to_ascii_lowercase().starts_with("authorization:") && l[14..].trim() == want);
            if ok {
                pages(p)
            } else {
                respond("401 Unauthorized", "401 Unauthorized\n", None)
            }
        }
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The fixture pages of Traefik's API, under tests/fixtures/traefik/.
pub fn api_fixture_pages() -> BTreeMap<String, Vec<String>> {
    let read = |n: &str| std::fs::read_to_string(fixtures().join("traefik").join(n)).unwrap();
    BTreeMap::from([
        (
            "/api/http/routers".to_string(),
            vec![read("routers-page1.json"), read("routers-page2.json")],
        ),
        ("/api/http/services".to_string(), vec![read("services.json")]),
    ])
}
