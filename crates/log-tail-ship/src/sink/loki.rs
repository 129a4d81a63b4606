//! Loki's push API: batches of lines as JSON (nanoseconds as strings), gzipped, and
//! what each answer means for the batch (accepted, rejected for good, retried).

use std::io::{self, Write};
use std::time::{Duration, Instant};

use crate::json;
use crate::pipeline::{StreamId, Streams};

use super::LabelMap;

/// What one push attempt came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored (any 2xx; for stdout: written and flushed).
    Accepted,
    /// Refused for good (400, 413): Loki stored the valid entries of the batch
    /// already, so it is not sent again.
    Rejected(String),
    /// Worth retrying after a pause (connection error, 429, 5xx, auth or URL errors).
    Retry(String),
    /// Can never work as configured (https:// to a server that speaks plain HTTP): the
    /// run ends, nothing acknowledged.
    Failed(String),
}

/// How a Loki answer is treated (pure, for tests).
pub fn classify(status: u16, body: &str) -> Outcome {
    let reason = || {
        let b: String = body.trim().chars().take(300).collect();
        if b.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {b}")
        }
    };
    match status {
        200..=299 => Outcome::Accepted,
        400 | 413 => Outcome::Rejected(reason()),
        _ => Outcome::Retry(reason()),
    }
}

/// A request that got no HTTP answer: worth retrying (connection refused, timeouts,
/// names that do not resolve yet), or never going to work as configured. `url` holds
/// no credentials (see [`crate::LokiUrl`]).
pub fn transport_outcome(url: &str, e: &ureq::Error) -> Outcome {
    // rustls reports its errors through the stream, as InvalidData carrying them.
    let tls = match e {
        ureq::Error::Rustls(r) => Some(r),
        ureq::Error::Io(io) => io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    match (e, tls) {
        // The first bytes back were no TLS record: a plain HTTP server, most likely.
        (_, Some(rustls::Error::InvalidMessage(_))) => Outcome::Failed(format!(
            "{url}: the server does not speak TLS ({e}): if it serves plain HTTP, give an http:// URL"
        )),
        (
            ureq::Error::BadUri(_)
            | ureq::Error::Http(_)
            | ureq::Error::RequireHttpsOnly(_)
            | ureq::Error::TlsRequired,
            _,
        ) => Outcome::Failed(format!("{url}: {e}")),
        _ => Outcome::Retry(format!("{url}: {e}")),
    }
}

/// Lines waiting to be pushed, grouped by stream, each stream's entries kept already
/// encoded (`["<ns>","<line>"],...`): no allocation per line, and the push body is a
/// few large writes into the compressor.
#[derive(Debug, Default)]
pub struct Batch {
    /// Per stream in the batch (or kept from earlier ones, then empty): its entries.
    streams: Vec<(StreamId, Vec<u8>)>,
    /// Stream id → its place in `streams`.
    index: Vec<Option<usize>>,
    /// Size of the encoded entries.
    pub bytes: usize,
    /// Size of the lines themselves (`logship_bytes_shipped_total`).
    pub line_bytes: u64,
    pub lines: u64,
    pub first_at: Option<Instant>,
}

impl Batch {
    /// Entry buffers are kept from batch to batch (no fresh pages to fault in for
    /// every batch) while they hold at most this much together.
    const KEEP_BYTES: usize = 4 * 1024 * 1024;

    /// Adds a line (bytes that should be UTF-8; see [`json::push_lossy`]).
    pub fn add(&mut self, stream: StreamId, ts_ns: u64, line: &[u8]) {
        if self.index.len() <= stream {
            self.index.resize(stream + 1, None);
        }
        let i = *self.index[stream].get_or_insert_with(|| {
            self.streams.push((stream, Vec::new()));
            self.streams.len() - 1
        });
        let values = &mut self.streams[i].1;
        let before = values.len();
        if before > 0 {
            values.push(b',');
        }
        // Loki wants the nanoseconds as a string.
        values.extend_from_slice(b"[\"");
        json::push_u64(values, ts_ns);
        values.extend_from_slice(b"\",");
        let text_len = json::push_lossy(values, line);
        values.push(b']');
        self.bytes += values.len() - before;
        self.line_bytes += text_len as u64;
        self.lines += 1;
        self.first_at.get_or_insert_with(Instant::now);
    }

    pub fn clear(&mut self) {
        let held: usize = self.streams.iter().map(|s| s.1.capacity()).sum();
        if held <= Self::KEEP_BYTES {
            self.streams.iter_mut().for_each(|s| s.1.clear());
        } else {
            self.streams.clear();
            self.index.clear();
        }
        self.bytes = 0;
        self.line_bytes = 0;
        self.lines = 0;
        self.first_at = None;
    }

    /// The push body: `{"streams":[{"stream":{labels},"values":[["ns","line"],...]}]}`.
    pub fn to_json(&self, streams: &Streams, out: &mut impl Write) -> io::Result<()> {
        out.write_all(b"{\"streams\":[")?;
        let mut head = Vec::new();
        let in_batch = self.streams.iter().filter(|s| !s.1.is_empty());
        for (n, (id, values)) in in_batch.enumerate() {
            head.clear();
            if n > 0 {
                head.push(b',');
            }
            head.extend_from_slice(b"{\"stream\":");
            serde_json::to_writer(&mut head, &LabelMap(streams.labels(*id))).map_err(io::Error::other)?;
            head.extend_from_slice(b",\"values\":[");
            out.write_all(&head)?;
            out.write_all(values)?;
            out.write_all(b"]}")?;
        }
        out.write_all(b"]}")
    }
}

/// How to authenticate to Loki (read from a file or the environment, never argv).
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    Basic { user: String, password: String },
    Bearer(String),
}

impl Auth {
    fn header(&self) -> Option<String> {
        use base64::Engine;
        match self {
            Auth::None => None,
            Auth::Basic { user, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            Auth::Bearer(t) => Some(format!("Bearer {t}")),
        }
    }
}

/// The Loki push client.
pub struct Loki {
    url: String,
    tenant: Option<String>,
    auth: Option<String>,
    agent: ureq::Agent,
    pub batch: Batch,
    /// The gzipped body of the batch being pushed (kept across retries), once built.
    body: Vec<u8>,
    body_ready: bool,
    pub batch_bytes: usize,
    pub batch_wait: Duration,
}

impl std::fmt::Debug for Loki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loki")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Loki {
    pub fn new(
        base: &str,
        tenant: Option<String>,
        auth: &Auth,
        timeout: Duration,
        batch_bytes: usize,
        batch_wait: Duration,
    ) -> Loki {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(concat!("log-tail-ship/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Loki {
            url: format!("{}/loki/api/v1/push", base.trim_end_matches('/')),
            tenant,
            auth: auth.header(),
            agent,
            batch: Batch::default(),
            body: Vec::new(),
            body_ready: false,
            batch_bytes,
            batch_wait,
        }
    }

    /// One attempt to push the current batch.
    pub fn push(&mut self, streams: &Streams) -> Outcome {
        if !self.body_ready {
            // The JSON goes straight into the compressor in a few large writes (the
            // entries of each stream are one buffer); the body's buffer is reused.
            let mut buf = std::mem::take(&mut self.body);
            buf.clear();
            let mut gz = flate2::write::GzEncoder::new(buf, flate2::Compression::fast());
            if let Err(e) = self.batch.to_json(streams, &mut gz) {
                return Outcome::Retry(format!("building the push body: {e}"));
            }
            match gz.finish() {
                Ok(b) => self.body = b,
                Err(e) => return Outcome::Retry(format!("compressing the push body: {e}")),
            }
            self.body_ready = true;
        }
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "gzip");
        if let Some(t) = &self.tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        match req.send(&self.body[..]) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let text = resp
                    .body_mut()
                    .with_config()
                    .limit(64 * 1024)
                    .read_to_string()
                    .unwrap_or_default();
                classify(status, &text)
            }
            Err(e) => transport_outcome(&self.url, &e),
        }
    }

    pub fn done(&mut self) {
        self.batch.clear();
        self.body_ready = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_body_has_string_nanoseconds_and_label_objects() {
        let mut s = Streams::default();
        let a = s.id(&[("job", "x"), ("host", "pi")]);
        let mut b = Batch::default();
        b.add(a, 1_570_818_238_000_000_000, b"fizz \"buzz\"");
        b.add(a, 1_570_818_238_000_000_001, b"\0nul");
        let c = s.id(&[("job", "y")]);
        b.add(c, 1, b"other \xffstream");
        let mut out = Vec::new();
        b.to_json(&s, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"streams":[{"stream":{"host":"pi","job":"x"},"values":[["1570818238000000000","fizz \"buzz\""],["1570818238000000001","\u0000nul"]]},{"stream":{"job":"y"},"values":[["1","other �stream"]]}]}"#
        );
        assert_eq!((b.lines, b.line_bytes), (3, 11 + 4 + 15));
        // The next batch: only the streams it has lines of.
        b.clear();
        assert_eq!((b.lines, b.line_bytes, b.bytes), (0, 0, 0));
        b.add(c, 2, b"again");
        let mut out = Vec::new();
        b.to_json(&s, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"streams":[{"stream":{"job":"y"},"values":[["2","again"]]}]}"#
        );
        assert_eq!(b.bytes, r#"["2","again"]"#.len());
    }

    #[test]
    fn loki_answers() {
        assert_eq!(classify(204, ""), Outcome::Accepted);
        assert_eq!(classify(200, "ok"), Outcome::Accepted);
        assert!(
            matches!(classify(400, "line too long"), Outcome::Rejected(r) if r == "HTTP 400: line too long")
        );
        assert!(matches!(classify(413, ""), Outcome::Rejected(_)));
        for s in [429, 500, 502, 503, 401, 403, 404] {
            assert!(matches!(classify(s, ""), Outcome::Retry(_)), "{s}");
        }
    }
}
