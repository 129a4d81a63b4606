//! The few Docker Engine API calls route-check makes (`GET /containers/json`, `GET
//! /containers/{id}/json`), over the unix socket or TCP, as plain blocking HTTP/1.1.
//!
//! Every answer is read against two bounds, so that an engine that misbehaves (or
//! something that is not an engine) costs neither unbounded memory nor unbounded
//! time: at most [`MAX_RESPONSE_BYTES`] per answer, and one deadline for the whole
//! exchange (the list and every inspect), not one per request. Paths are unversioned:
//! the engine answers them with its own API version, so old engines work.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The engine's socket when `DOCKER_HOST` is unset or empty (as the docker CLI).
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// An answer larger than this is not an engine's list of a homelab's containers.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// A chunk-size line or trailer line longer than this is not HTTP.
const MAX_LINE: usize = 4096;

/// Where the engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
}

/// `unix:///path`, `tcp://host:port` (or `http://`); empty means the default socket.
pub fn endpoint(host: &str) -> Result<Endpoint, String> {
    let host = host.trim();
    let host = if host.is_empty() { DEFAULT_HOST } else { host };
    let lower = host.to_ascii_lowercase();
    if lower.starts_with("unix://") {
        let path = &host["unix://".len()..];
        if path.is_empty() {
            return Err(format!(
                "{host:?} names no socket: give unix:///var/run/docker.sock"
            ));
        }
        return Ok(Endpoint::Unix(PathBuf::from(path)));
    }
    for scheme in ["tcp://", "http://"] {
        if lower.starts_with(scheme) {
            let rest = host[scheme.len()..].trim_end_matches('/');
            if rest.is_empty()
                || rest.contains('/')
                || rest.bytes().any(|b| b.is_ascii_control() || b == b' ')
            {
                return Err(format!("{host:?} is not tcp://HOST:PORT"));
            }
            let addr = if rest
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                rest.to_string()
            } else {
                format!("{rest}:2375")
            };
            return Ok(Endpoint::Tcp(addr));
        }
    }
    Err(format!(
        "{host:?} is not supported: give unix:///PATH or tcp://HOST:PORT (TLS and ssh:// are not)"
    ))
}

/// One exchange with the engine, bounded by one deadline.
pub struct Engine {
    endpoint: Endpoint,
    /// As given, for messages.
    name: String,
    started: Instant,
    timeout: Duration,
}

/// A socket whose reads and writes stop at the exchange's deadline.
enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

struct Bounded {
    conn: Conn,
    deadline: Instant,
}

impl Bounded {
    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
        } else {
            Ok(left)
        }
    }
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = Some(self.left()?);
        match &mut self.conn {
            Conn::Unix(s) => {
                s.set_read_timeout(left)?;
                s.read(buf)
            }
            Conn::Tcp(s) => {
                s.set_read_timeout(left)?;
                s.read(buf)
            }
        }
    }
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = Some(self.left()?);
        match &mut self.conn {
            Conn::Unix(s) => {
                s.set_write_timeout(left)?;
                s.write(buf)
            }
            Conn::Tcp(s) => {
                s.set_write_timeout(left)?;
                s.write(buf)
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why a request failed: the deadline is told apart from the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Deadline,
    Other(String),
}

fn io_failure(e: &io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Failure::Deadline,
        _ => Failure::Other(homelab_core::exit::describe_io(e)),
    }
}

impl Engine {
    pub fn new(host: &str, timeout: Duration) -> Result<Engine, String> {
        let endpoint = endpoint(host)?;
        Ok(Engine {
            endpoint,
            name: if host.trim().is_empty() {
                DEFAULT_HOST.to_string()
            } else {
                host.trim().to_string()
            },
            started: Instant::now(),
            timeout,
        })
    }

    fn deadline(&self) -> Instant {
        self.started + self.timeout
    }

    /// `GET path`: the status and the body (at most [`MAX_RESPONSE_BYTES`]), or
    /// the error in words a person acts on.
    pub fn get(&self, path: &str) -> Result<(u16, Vec<u8>), String> {
        self.get_raw(path).map_err(|f| match f {
            Failure::Deadline => format!(
                "Docker at {}: no complete answer to GET {} within {} (the whole exchange gets --timeout)",
                self.name,
                path_only(path),
                secs(self.timeout)
            ),
            Failure::Other(m) => format!("Docker at {}: GET {}: {m}", self.name, path_only(path)),
        })
    }

    fn connect(&self) -> Result<Bounded, Failure> {
        let deadline = self.deadline();
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::Deadline);
        }
        let conn = match &self.endpoint {
            Endpoint::Unix(p) => match UnixStream::connect(p) {
                Ok(s) => Conn::Unix(s),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(Failure::Other(format!(
                        "no socket at {}: is dockerd running? Point DOCKER_HOST (or --docker-host) at its socket",
                        p.display()
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    return Err(Failure::Other(format!(
                        "permission denied on {}: run as root or as a member of the docker group (sudo usermod -aG docker $USER, then log in again)",
                        p.display()
                    )));
                }
                Err(e) => {
                    return Err(Failure::Other(format!(
                        "socket {}: {}",
                        p.display(),
                        homelab_core::exit::describe_io(&e)
                    )));
                }
            },
            Endpoint::Tcp(a) => {
                use std::net::ToSocketAddrs;
                let addrs: Vec<_> = a
                    .to_socket_addrs()
                    .map_err(|e| Failure::Other(format!("{a}: {e}")))?
                    .collect();
                let mut last = Failure::Other(format!("{a}: no address"));
                let mut found = None;
                for addr in addrs {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Failure::Deadline);
                    }
                    match TcpStream::connect_timeout(&addr, left) {
                        Ok(s) => {
                            found = Some(s);
                            break;
                        }
                        Err(e) => last = io_failure(&e),
                    }
                }
                Conn::Tcp(found.ok_or(last)?)
            }
        };
        Ok(Bounded { conn, deadline })
    }

    fn get_raw(&self, path: &str) -> Result<(u16, Vec<u8>), Failure> {
        let mut io = self.connect()?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: route-check/{}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        io.write_all(req.as_bytes()).map_err(|e| io_failure(&e))?;
        read_response(&mut BufReader::new(io), MAX_RESPONSE_BYTES)
    }
}

fn path_only(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// Reads one response: its head, then a body framed by Content-Length, chunked
/// encoding or the end of the connection, stopping past `max` body bytes.
pub fn read_response(r: &mut impl BufRead, max: usize) -> Result<(u16, Vec<u8>), Failure> {
    let too_big = || {
        Failure::Other(format!(
            "the answer is larger than {} MiB: not read further",
            max / (1024 * 1024)
        ))
    };
    // The head, byte-bounded.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let line = read_line(r, &mut head)?;
        if line == 0 {
            return Err(Failure::Other("the connection closed without an answer".into()));
        }
        if head.len() > crate::http::MAX_HEAD_BYTES {
            return Err(Failure::Other(format!(
                "the answer's head is larger than {} bytes",
                crate::http::MAX_HEAD_BYTES
            )));
        }
    }
    let mut headers = vec![httparse::EMPTY_HEADER; crate::http::MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(Failure::Other("not an HTTP response (incomplete head)".into()));
        }
        Err(e) => return Err(Failure::Other(format!("not an HTTP response ({e})"))),
    }
    let status = resp.code.unwrap_or(0);
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length = header("content-length");
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut line = Vec::new();
            if read_line(r, &mut line)? == 0 {
                return Err(Failure::Other(
                    "the connection closed in the middle of the answer".into(),
                ));
            }
            let text = String::from_utf8_lossy(&line);
            let size_text = text.trim().split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| Failure::Other(format!("bad chunk size {size_text:?}: not HTTP")))?;
            if size == 0 {
                break; // trailers are not read: the connection closes anyway
            }
            if size > max.saturating_sub(body.len()) {
                return Err(too_big());
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..]).map_err(|e| eof_or(&e))?;
            let mut crlf = Vec::new();
            read_line(r, &mut crlf)?;
        }
    } else if let Some(len) = length {
        let len: usize = len
            .parse()
            .map_err(|_| Failure::Other(format!("bad Content-Length {len:?}")))?;
        if len > max {
            return Err(too_big());
        }
        body.resize(len, 0);
        r.read_exact(&mut body).map_err(|e| eof_or(&e))?;
    } else {
        r.take(max as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| io_failure(&e))?;
        if body.len() > max {
            return Err(too_big());
        }
    }
    Ok((status, body))
}

fn eof_or(e: &io::Error) -> Failure {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        Failure::Other("the connection closed in the middle of the answer".into())
    } else {
        io_failure(e)
    }
}

/// Appends one line (up to and with its `\n`) to `out`, at most [`MAX_LINE`] bytes.
fn read_line(r: &mut impl BufRead, out: &mut Vec<u8>) -> Result<usize, Failure> {
    let n = (&mut *r)
        .take(MAX_LINE as u64)
        .read_until(b'\n', out)
        .map_err(|e| io_failure(&e))?;
    if n == MAX_LINE && !out.ends_with(b"\n") {
        return Err(Failure::Other(format!(
            "a line of the answer is longer than {MAX_LINE} bytes: not HTTP"
        )));
    }
    Ok(n)
}

/// Percent-encodes a query value or path segment (everything but unreserved bytes).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `message` of an engine's error answer, or the start of the body.
pub fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Msg {
        message: String,
    }
    match serde_json::from_slice::<Msg>(body) {
        Ok(m) => m.message.chars().filter(|c| !c.is_control()).take(200).collect(),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)])
            .chars()
            .filter(|c| !c.is_control())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_like_the_docker_cli() {
        assert_eq!(
            endpoint("").unwrap(),
            Endpoint::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(
            endpoint("unix:///run/d.sock").unwrap(),
            Endpoint::Unix("/run/d.sock".into())
        );
        assert_eq!(
            endpoint("tcp://127.0.0.1:2375").unwrap(),
            Endpoint::Tcp("127.0.0.1:2375".into())
        );
        assert_eq!(endpoint("TCP://dock").unwrap(), Endpoint::Tcp("dock:2375".into()));
        for bad in [
            "ssh://u@h",
            "unix://",
            "npipe:////./pipe/docker_engine",
            "tcp://",
            "tcp://a b:1",
        ] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
    }

    fn read(bytes: &[u8], max: usize) -> Result<(u16, Vec<u8>), Failure> {
        read_response(&mut BufReader::new(bytes), max)
    }

    #[test]
    fn bodies_in_every_framing_and_bounded() {
        assert_eq!(
            read(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]", 10).unwrap(),
            (200, b"[]".to_vec())
        );
        assert_eq!(
            read(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n[\r\n1;x=y\r\n]\r\n0\r\n\r\n",
                10
            )
            .unwrap(),
            (200, b"[]".to_vec())
        );
        assert_eq!(
            read(b"HTTP/1.0 404 NF\r\n\r\n{}", 10).unwrap(),
            (404, b"{}".to_vec())
        );
        let big = |r: Result<_, Failure>| matches!(r, Err(Failure::Other(m)) if m.contains("larger than"));
        assert!(big(read(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", 10)));
        assert!(big(read(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n",
            10
        )));
        assert!(big(read(
            &[b"HTTP/1.1 200 OK\r\n\r\n".as_slice(), &[b'x'; 11]].concat(),
            10
        )));
        assert!(read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 10).is_err());
        assert!(read(b"", 10).is_err());
        assert!(read(&vec![b'a'; 10_000], 10).is_err());
    }

    #[test]
    fn encoding() {
        assert_eq!(
            encode("{\"label\":[\"a=b\"]}"),
            "%7B%22label%22%3A%5B%22a%3Db%22%5D%7D"
        );
        assert_eq!(
            error_message(br#"{"message":"No such container: x"}"#),
            "No such container: x"
        );
    }
}
