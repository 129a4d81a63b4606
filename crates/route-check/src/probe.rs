//! One probe of one route: resolve (or use `--connect`), TCP connect, TLS handshake
//! with the route's host as SNI, one GET with the route's Host header; then the same
//! host over plain HTTP, which must redirect to HTTPS. Every step runs against a
//! deadline, so a silent server costs `--timeout` and no more.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, Stream};

use crate::http::{self, io_words};
use crate::routes::RouteSpec;
use crate::tls::{self, CertInfo, Tls};

/// How to probe.
#[derive(Debug, Clone)]
pub struct Settings {
    pub tls: Tls,
    /// `--connect`: every HTTPS probe goes here instead of the route's address.
    pub connect: Option<Vec<SocketAddr>>,
    /// Where the plain-HTTP redirect check goes (`--connect-http`); by default the
    /// `--connect` address on port 80, or the route's own address on port 80.
    pub connect_http: Option<Vec<SocketAddr>>,
    pub http_port: u16,
    /// For each of the two exchanges (HTTPS, then plain HTTP).
    pub timeout: Duration,
    pub redirect_check: bool,
}

/// What the redirect check saw on the plain-HTTP port.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Redirect {
    pub status_code: Option<u16>,
    pub location: Option<String>,
    pub ok: bool,
    pub error: Option<String>,
}

/// What a probe saw. Phases that did not complete have no duration.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    pub address: Option<String>,
    pub resolve_seconds: Option<f64>,
    pub connect_seconds: Option<f64>,
    pub tls_seconds: Option<f64>,
    pub request_seconds: Option<f64>,
    pub tls_version: Option<String>,
    pub tls_cipher: Option<String>,
    /// The chain as the server sent it, leaf first (certificates that are not
    /// X.509 are left out and noted in `errors`).
    pub chain: Vec<CertInfo>,
    /// The verdict of verification against the roots, once there was a handshake.
    pub verified: Option<Result<(), tls::VerifyFailure>>,
    /// Whether the leaf certificate names the route's host, as rustls decides.
    pub name_ok: Option<bool>,
    pub status_code: Option<u16>,
    pub redirect: Option<Redirect>,
    /// What failed, in order: `connect 127.0.0.1:443: connection refused`.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
struct Deadline(Instant);

impl Deadline {
    fn left(&self) -> io::Result<Duration> {
        let left = self.0.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
        } else {
            Ok(left)
        }
    }
}

/// A socket whose every read and write is bounded by what is left of the deadline.
struct Bounded {
    sock: TcpStream,
    deadline: Deadline,
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.set_read_timeout(Some(self.deadline.left()?))?;
        self.sock.read(buf)
    }
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sock.set_write_timeout(Some(self.deadline.left()?))?;
        self.sock.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

fn secs(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1e6).round() / 1e6
}

/// Resolves in a helper thread so that a resolver that hangs costs the deadline and
/// no more (the thread is left to finish on its own).
fn resolve(host: &str, port: u16, deadline: Deadline) -> Result<Vec<SocketAddr>, String> {
    let left = deadline.left().map_err(|e| io_words(&e))?;
    let (tx, rx) = mpsc::channel();
    let name = host.to_string();
    std::thread::Builder::new()
        .name("resolve".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = tx.send(
                (name.as_str(), port)
                    .to_socket_addrs()
                    .map(|a| a.collect::<Vec<_>>()),
            );
        })
        .map_err(|e| format!("starting the resolver: {e}"))?;
    match rx.recv_timeout(left) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err("no address".into()),
        Ok(Err(e)) => Err(resolver_words(&e)),
        Err(_) => Err("no answer before the timeout".into()),
    }
}

fn resolver_words(e: &io::Error) -> String {
    let s = e.to_string();
    if s.contains("failed to lookup address information") {
        s.rsplit(": ").next().unwrap_or(&s).to_lowercase()
    } else {
        s
    }
}

/// Connects to the first address that answers.
fn connect(addrs: &[SocketAddr], deadline: Deadline) -> Result<(TcpStream, SocketAddr), String> {
    let mut last = String::from("no address");
    for a in addrs {
        let left = deadline
            .left()
            .map_err(|e| format!("connect {a}: {}", io_words(&e)))?;
        match TcpStream::connect_timeout(a, left) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok((s, *a));
            }
            Err(e) => last = format!("connect {a}: {}", io_words(&e)),
        }
    }
    Err(last)
}

/// The Host header for a route: the host, with the port when it is not the default.
fn host_header(host: &str, port: u16, default: u16) -> String {
    let h = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    if port == default { h } else { format!("{h}:{port}") }
}

/// Probes one route. Never panics on what the network sends; problems go to `errors`.
pub fn probe(route: &RouteSpec, s: &Settings) -> Probe {
    let mut p = Probe::default();
    let Some(host) = route.host.as_deref() else {
        return p;
    };
    let deadline = Deadline(Instant::now() + s.timeout);

    // Resolve, unless every probe goes to --connect.
    let addrs = match &s.connect {
        Some(a) => a.clone(),
        None => {
            let t = Instant::now();
            match resolve(host, route.port, deadline) {
                Ok(a) => {
                    p.resolve_seconds = Some(secs(t));
                    a
                }
                Err(e) => {
                    p.errors.push(format!("resolve {host}: {e}"));
                    return p;
                }
            }
        }
    };

    let name_accepted = https_exchange(&mut p, route, host, &addrs, s, deadline);

    // A host TLS refuses as a server name is not sent anywhere else either.
    if s.redirect_check && name_accepted {
        let http_addrs: Vec<SocketAddr> = match &s.connect_http {
            Some(a) => a.clone(),
            None => addrs
                .iter()
                .map(|a| SocketAddr::new(a.ip(), s.http_port))
                .collect(),
        };
        let deadline = Deadline(Instant::now() + s.timeout);
        p.redirect = Some(redirect_check(route, host, &http_addrs, s.http_port, deadline));
    }
    p
}

fn https_exchange(
    p: &mut Probe,
    route: &RouteSpec,
    host: &str,
    addrs: &[SocketAddr],
    s: &Settings,
    deadline: Deadline,
) -> bool {
    let name = match ServerName::try_from(host.to_string()) {
        Ok(n) => n,
        Err(_) => {
            p.errors.push(format!("TLS: {host:?} is not a valid server name"));
            return false;
        }
    };
    let t = Instant::now();
    let (sock, addr) = match connect(addrs, deadline) {
        Ok(c) => c,
        Err(e) => {
            p.errors.push(e);
            return true;
        }
    };
    p.connect_seconds = Some(secs(t));
    p.address = Some(addr.to_string());

    let mut conn = match ClientConnection::new(s.tls.config.clone(), name.clone()) {
        Ok(c) => c,
        Err(e) => {
            p.errors.push(format!("TLS: {e}"));
            return true;
        }
    };
    let mut io = Bounded { sock, deadline };
    let t = Instant::now();
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut io) {
            p.errors
                .push(format!("TLS handshake with {addr}: {}", handshake_words(&e)));
            return true;
        }
    }
    p.tls_seconds = Some(secs(t));
    p.tls_version = conn.protocol_version().map(tls::version_name);
    p.tls_cipher = conn
        .negotiated_cipher_suite()
        .map(|c| tls::cipher_name(c.suite()));
    let chain: Vec<_> = conn
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect();
    for (i, der) in chain.iter().enumerate() {
        match tls::cert_info(der) {
            Some(info) => p.chain.push(info),
            None => p
                .errors
                .push(format!("certificate {i} of the chain is not X.509")),
        }
    }
    p.verified = Some(s.tls.verify(&chain, &name));
    p.name_ok = chain.first().map(|leaf| tls::name_valid(leaf, &name));

    let t = Instant::now();
    let req = http::request(&host_header(host, route.port, 443), &route.path);
    let mut stream = Stream::new(&mut conn, &mut io);
    let head = stream
        .write_all(req.as_bytes())
        .and_then(|_| stream.flush())
        .map_err(|e| io_words(&e))
        .and_then(|_| http::read_head(&mut stream));
    match head {
        Ok(h) => {
            p.request_seconds = Some(secs(t));
            p.status_code = Some(h.status);
        }
        Err(e) => p.errors.push(format!(
            "request https://{}{}: {e}",
            host_header(host, route.port, 443),
            route.path
        )),
    }
    conn.send_close_notify();
    let _ = conn.write_tls(&mut io);
    true
}

fn handshake_words(e: &io::Error) -> String {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return match inner {
            rustls::Error::AlertReceived(a) => format!("the server refused the handshake ({a:?} alert)"),
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                format!("the server does not speak TLS ({inner})")
            }
            other => other.to_string(),
        };
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "the server closed the connection during the handshake".into(),
        _ => io_words(e),
    }
}

/// GET over plain HTTP: a 301, 302, 303, 307 or 308 whose Location is `https://`
/// on the same host is a redirect to HTTPS.
fn redirect_check(
    route: &RouteSpec,
    host: &str,
    addrs: &[SocketAddr],
    port: u16,
    deadline: Deadline,
) -> Redirect {
    let mut r = Redirect::default();
    let (sock, addr) = match connect(addrs, deadline) {
        Ok(c) => c,
        Err(e) => {
            r.error = Some(format!("plain HTTP: {e}"));
            return r;
        }
    };
    let mut io = Bounded { sock, deadline };
    let req = http::request(&host_header(host, port, 80), &route.path);
    let head = io
        .write_all(req.as_bytes())
        .map_err(|e| io_words(&e))
        .and_then(|_| http::read_head(&mut io));
    match head {
        Ok(h) => {
            r.status_code = Some(h.status);
            r.ok = matches!(h.status, 301 | 302 | 303 | 307 | 308)
                && h.location.as_deref().is_some_and(|l| redirects_to_https(l, host));
            if !r.ok {
                r.error = Some(match &h.location {
                    Some(l) => format!(
                        "plain HTTP on {addr} answers {} with Location {l:?}, not a redirect to https://{host}",
                        h.status
                    ),
                    None => format!(
                        "plain HTTP on {addr} answers {} instead of redirecting to HTTPS",
                        h.status
                    ),
                });
            }
            r.location = h.location;
        }
        Err(e) => r.error = Some(format!("plain HTTP on {addr}: {e}")),
    }
    r
}

/// Whether a Location sends the client to HTTPS on the same host (any port).
pub fn redirects_to_https(location: &str, host: &str) -> bool {
    let Some(rest) = location
        .get(..8)
        .filter(|s| s.eq_ignore_ascii_case("https://"))
        .map(|_| &location[8..])
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let h = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    h.trim_end_matches('.')
        .eq_ignore_ascii_case(host.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_redirects_are_recognised() {
        assert!(redirects_to_https("https://a.x/", "a.x"));
        assert!(redirects_to_https("HTTPS://A.x:8443/p?q", "a.x"));
        assert!(!redirects_to_https("http://a.x/", "a.x"));
        assert!(!redirects_to_https("https://evil.x/a.x", "a.x"));
        assert!(!redirects_to_https("/login", "a.x"));
        assert!(!redirects_to_https("https://a.x.evil/", "a.x"));
        assert!(redirects_to_https("https://[::1]/", "::1"));
    }

    #[test]
    fn host_headers_carry_odd_ports() {
        assert_eq!(host_header("a.x", 443, 443), "a.x");
        assert_eq!(host_header("a.x", 8443, 443), "a.x:8443");
        assert_eq!(host_header("::1", 80, 80), "[::1]");
    }
}
