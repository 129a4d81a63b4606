//! The one HTTP/1.1 exchange a probe needs: a GET with the route's Host header, and
//! the status line and headers of the answer (the body is not read). Parsing is
//! httparse's; this module only builds the request and reads up to the end of the
//! head, with a size limit.

use std::io::{self, Read};

/// A response head larger than this is not an answer worth reading.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// What a response head says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub location: Option<String>,
}

/// `GET path HTTP/1.1` with Host, a User-Agent and `Connection: close`.
pub fn request(host_header: &str, path: &str) -> String {
    format!(
        "GET {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: route-check/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        request_target(path),
        env!("CARGO_PKG_VERSION")
    )
}

/// The path as a request target: starts with `/`, and bytes that may not appear in
/// a request line (spaces, controls, non-ASCII) percent-encoded.
pub fn request_target(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 1);
    if !path.starts_with('/') {
        out.push('/');
    }
    for b in path.bytes() {
        if b.is_ascii_graphic() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parses a response head; `Ok(None)` while it is incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {
            let status = resp.code.ok_or("no status code")?;
            let location = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("location"))
                .map(|h| String::from_utf8_lossy(h.value).into_owned());
            Ok(Some(Head { status, location }))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(format!("not an HTTP response ({e})")),
    }
}

/// Reads from `r` until a whole response head has arrived.
pub fn read_head(r: &mut impl Read) -> Result<Head, String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = match r.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_words(&e)),
        };
        if n == 0 {
            return Err(if buf.is_empty() {
                "the connection closed without an answer".into()
            } else {
                "the connection closed in the middle of the answer".into()
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(head) = parse_head(&buf)? {
            return Ok(head);
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(format!("the answer's head is larger than {MAX_HEAD_BYTES} bytes"));
        }
    }
}

/// An I/O error in words, with timeouts named as such.
pub fn io_words(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "no answer before the timeout".into(),
        _ => homelab_core::exit::describe_io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_and_partial_heads_wait() {
        let h = parse_head(b"HTTP/1.1 301 Moved\r\nlocation: https://a.x/\r\n\r\nbody").unwrap();
        assert_eq!(
            h,
            Some(Head {
                status: 301,
                location: Some("https://a.x/".into())
            })
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-"), Ok(None));
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
    }

    #[test]
    fn reading_stops_at_the_head_and_at_limits() {
        let mut r: &[u8] = b"HTTP/1.1 502 Bad Gateway\r\nServer: x\r\n\r\n<html>";
        assert_eq!(read_head(&mut r).unwrap().status, 502);
        let mut r: &[u8] = b"";
        assert!(read_head(&mut r).unwrap_err().contains("without an answer"));
        let big = [b"HTTP/1.1 200 OK\r\nX: ".as_slice(), &vec![b'a'; 100_000]].concat();
        assert!(
            read_head(&mut big.as_slice())
                .unwrap_err()
                .contains("larger than")
        );
    }

    #[test]
    fn request_targets_are_safe() {
        assert_eq!(request_target("/a b\r\n"), "/a%20b%0D%0A");
        assert_eq!(request_target("x"), "/x");
        assert!(request("a.x", "/").starts_with("GET / HTTP/1.1\r\nHost: a.x\r\n"));
    }
}
