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

/// Header lines parsed on the stack; more are parsed again with room for
/// [`MAX_HEADERS`].
const FEW_HEADERS: usize = 64;
/// More header lines than this is not an answer worth reading.
pub const MAX_HEADERS: usize = 1024;
/// Interim (1xx) responses skipped before the final one, at most.
pub const MAX_INTERIM: usize = 16;

/// A parsed head and how many bytes of the buffer it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub head: Head,
    pub len: usize,
}

fn parse_with<'a>(
    buf: &'a [u8],
    headers: &mut [httparse::Header<'a>],
) -> Result<Option<Parsed>, httparse::Error> {
    let mut resp = httparse::Response::new(headers);
    match resp.parse(buf)? {
        httparse::Status::Complete(len) => {
            let status = resp.code.unwrap_or(0);
            let location = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("location"))
                .map(|h| String::from_utf8_lossy(h.value).into_owned());
            Ok(Some(Parsed {
                head: Head { status, location },
                len,
            }))
        }
        httparse::Status::Partial => Ok(None),
    }
}

/// Parses one response head (interim or final); `Ok(None)` while it is incomplete.
/// Up to [`MAX_HEADERS`] header lines.
pub fn parse_one(buf: &[u8]) -> Result<Option<Parsed>, String> {
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    let r = match parse_with(buf, &mut few) {
        Err(httparse::Error::TooManyHeaders) => {
            let mut many = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
            match parse_with(buf, &mut many) {
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(format!("the answer has more than {MAX_HEADERS} header lines"));
                }
                other => other,
            }
        }
        other => other,
    };
    r.map_err(|e| format!("not an HTTP response ({e})"))
}

/// Parses a response head, skipping interim responses (`100 Continue`, `103 Early
/// Hints`, ...) up to the final one; `Ok(None)` while it is incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut at = 0;
    for _ in 0..=MAX_INTERIM {
        match parse_one(&buf[at..])? {
            None => return Ok(None),
            Some(p) if is_interim(p.head.status) => at += p.len,
            Some(p) => return Ok(Some(p.head)),
        }
    }
    Err(format!(
        "the server sent more than {MAX_INTERIM} interim (1xx) responses and no final one"
    ))
}

/// 1xx responses other than 101 Switching Protocols come before the real answer
/// (RFC 9110, section 15.2).
fn is_interim(status: u16) -> bool {
    (100..200).contains(&status) && status != 101
}

/// Reads from `r` until a whole final response head has arrived (interim 1xx
/// responses are skipped), at most [`MAX_HEAD_BYTES`] in all.
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
    fn interim_responses_are_skipped() {
        let h = parse_head(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(h.unwrap().unwrap().status, 200);
        // The interim answer alone is not the answer yet.
        assert_eq!(
            parse_head(b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 2"),
            Ok(None)
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
                .unwrap()
                .unwrap()
                .status,
            101
        );
        let endless = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_INTERIM + 1);
        assert!(parse_head(&endless).unwrap_err().contains("interim"));
    }

    #[test]
    fn many_headers_are_read_up_to_a_bound() {
        let head = |n: usize| {
            let mut h = b"HTTP/1.1 204 No Content\r\n".to_vec();
            for i in 0..n {
                h.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
            }
            h.extend_from_slice(b"\r\n");
            h
        };
        assert_eq!(parse_head(&head(65)).unwrap().unwrap().status, 204);
        assert_eq!(parse_head(&head(MAX_HEADERS)).unwrap().unwrap().status, 204);
        assert!(
            parse_head(&head(MAX_HEADERS + 1))
                .unwrap_err()
                .contains("more than 1024 header lines")
        );
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
