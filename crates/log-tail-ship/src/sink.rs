//! Where lines go: Loki's push API (JSON, gzip, batches by size and time) or JSON
//! lines on stdout. A sink says when a batch was accepted; only then do the files'
//! acknowledged offsets move.

use std::io::{self, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use homelab_core::{Error, Output, OutputArgs, Result};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::TOOL;
use crate::json::{self, StampCache};
use crate::pipeline::{Labels, StreamId, Streams};

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

/// A label set serialised as a JSON object.
pub struct LabelMap<'a>(pub &'a Labels);

impl Serialize for LabelMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
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
            Err(e) => Outcome::Retry(format!("{}: {e}", self.url)),
        }
    }

    pub fn done(&mut self) {
        self.batch.clear();
        self.body_ready = false;
    }
}

/// A `kind: line` record on stdout.
#[derive(Serialize)]
pub struct LineRecord<'a> {
    pub labels: LabelMap<'a>,
    /// RFC 3339 UTC with nanoseconds.
    pub timestamp: &'a str,
    pub line: &'a str,
}

/// The end of a [`LineRecord`] with an empty timestamp and line, as the envelope
/// renders it; what comes before it is the same for every line of a stream in a batch.
const EMPTY_TAIL: &[u8] = b"\",\"line\":\"\"}\n";

/// `--stdout`: `kind: line` records, written and flushed a batch at a time.
///
/// The envelope and labels of a stream's records are rendered once per batch by
/// [`Output`] (the record up to the value of `timestamp`); each line then only adds
/// its timestamp and its escaped text to the batch.
pub struct StdoutSink {
    /// The summary at the end; the line records' envelope comes from it too.
    out: Output<io::Stdout>,
    args: OutputArgs,
    host: String,
    /// The line records of the pending batch.
    records: Vec<u8>,
    /// Per stream id: the batch its head was rendered for, and the head.
    heads: Vec<(u64, Vec<u8>)>,
    /// Number of the pending batch (0: none yet), and its envelope time.
    batch: u64,
    batch_time: SystemTime,
    stamps: StampCache,
    pending: u64,
    /// Bytes of the pending lines themselves.
    line_bytes: u64,
}

impl StdoutSink {
    /// Records go out in batches of about this size.
    const BATCH_BYTES: usize = 256 * 1024;

    pub fn new(args: &OutputArgs, host: String) -> StdoutSink {
        StdoutSink {
            out: Output::new(TOOL, args, host.clone(), io::stdout()),
            args: args.clone(),
            host,
            records: Vec::with_capacity(Self::BATCH_BYTES + 64 * 1024),
            heads: Vec::new(),
            batch: 0,
            batch_time: UNIX_EPOCH,
            stamps: StampCache::default(),
            pending: 0,
            line_bytes: 0,
        }
    }

    /// Appends one record to the batch.
    pub fn add(&mut self, labels: &Labels, stream: StreamId, ts_ns: u64, line: &[u8]) -> Result<()> {
        if self.pending == 0 {
            // One envelope time per batch: the records are written together.
            self.batch += 1;
            self.batch_time = SystemTime::now();
        }
        if self.heads.len() <= stream {
            self.heads.resize_with(stream + 1, || (0, Vec::new()));
        }
        if self.heads[stream].0 != self.batch {
            self.heads[stream] = (self.batch, self.render_head(labels)?);
        }
        let r = &mut self.records;
        r.extend_from_slice(&self.heads[stream].1);
        self.stamps.push(r, ts_ns);
        r.extend_from_slice(b"\",\"line\":");
        let text_len = json::push_lossy(r, line);
        r.extend_from_slice(b"}\n");
        self.pending += 1;
        self.line_bytes += text_len as u64;
        Ok(())
    }

    /// A stream's record of this batch up to the opening quote of the timestamp's value.
    fn render_head(&self, labels: &Labels) -> Result<Vec<u8>> {
        let mut head = Vec::with_capacity(256);
        let mut o = Output::new(TOOL, &self.args, self.host.clone(), &mut head);
        o.set_time(Some(self.batch_time));
        o.write_record_unflushed(
            "line",
            &LineRecord {
                labels: LabelMap(labels),
                timestamp: "",
                line: "",
            },
        )?;
        if !head.ends_with(EMPTY_TAIL) {
            return Err(Error::bug(format!(
                "a line record ends unexpectedly: {}",
                String::from_utf8_lossy(&head)
            )));
        }
        head.truncate(head.len() - EMPTY_TAIL.len());
        Ok(head)
    }

    /// Writes and flushes the batch.
    fn write(&mut self) -> Result<()> {
        let mut w = io::stdout().lock();
        w.write_all(&self.records)
            .and_then(|_| w.flush())
            .map_err(Error::stdout)
    }

    fn clear(&mut self) {
        self.records.clear();
        self.pending = 0;
        self.line_bytes = 0;
    }

    /// The summary record at the end.
    pub fn summary<T: Serialize>(&mut self, summary: &T) -> Result<()> {
        self.out.write_record("summary", summary)
    }
}

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Where lines go.
pub enum Sink {
    Loki(Box<Loki>),
    Stdout(Box<StdoutSink>),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sink::Loki(l) => l.fmt(f),
            Sink::Stdout(s) => f.debug_struct("Stdout").field("pending", &s.pending).finish(),
        }
    }
}

impl Sink {
    /// Adds a line: bytes that should be UTF-8 (each invalid sequence becomes U+FFFD).
    pub fn add(&mut self, streams: &Streams, stream: StreamId, ts_ns: u64, line: &[u8]) -> Result<()> {
        match self {
            Sink::Loki(l) => {
                l.batch.add(stream, ts_ns, line);
                Ok(())
            }
            Sink::Stdout(s) => s.add(streams.labels(stream), stream, ts_ns, line),
        }
    }

    /// Lines added and not yet accepted.
    pub fn pending(&self) -> u64 {
        match self {
            Sink::Loki(l) => l.batch.lines,
            Sink::Stdout(s) => s.pending,
        }
    }

    /// Whether the batch is as big as it may get.
    pub fn full(&self) -> bool {
        match self {
            Sink::Loki(l) => l.batch.bytes >= l.batch_bytes,
            Sink::Stdout(s) => s.records.len() >= StdoutSink::BATCH_BYTES,
        }
    }

    /// When the batch must go out even if more lines could come.
    pub fn deadline(&self) -> Option<Instant> {
        match self {
            Sink::Loki(l) => l.batch.first_at.map(|t| t + l.batch_wait),
            Sink::Stdout(s) => (s.pending > 0).then(Instant::now),
        }
    }

    /// One attempt to deliver what is pending. Returns the outcome and the bytes shipped.
    pub fn push(&mut self, streams: &Streams) -> Result<(Outcome, u64)> {
        match self {
            Sink::Loki(l) => {
                let bytes = l.batch.line_bytes;
                let o = l.push(streams);
                if o != Outcome::Accepted {
                    return Ok((o, 0));
                }
                Ok((o, bytes))
            }
            Sink::Stdout(s) => {
                s.write()?;
                Ok((Outcome::Accepted, s.line_bytes))
            }
        }
    }

    /// Forgets the pending batch (after it was accepted or rejected).
    pub fn done(&mut self) {
        match self {
            Sink::Loki(l) => l.done(),
            Sink::Stdout(s) => s.clear(),
        }
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

    #[test]
    fn stdout_records_are_what_the_envelope_renders() {
        let mut streams = Streams::default();
        let a = streams.id(&[("filename", "/var/log/\"odd\".log"), ("host", "pi")]);
        let b = streams.id(&[("job", "journal"), ("host", "ü\u{1}")]);
        let args = OutputArgs::default();
        let mut sink = StdoutSink::new(&args, "pi\"5".into());
        let lines: &[(StreamId, u64, &[u8])] = &[
            (a, 1_546_341_071_111_111_111, b"plain"),
            (
                b,
                1_546_341_071_111_111_112,
                br#"192.168.1.1 - "GET /x HTTP/1.1" 200 "-""#,
            ),
            (
                a,
                1_546_341_072_000_000_001,
                "tab\tnul\0 \\ ünï ✓ \u{1f}".as_bytes(),
            ),
            (b, 0, b""),
            (a, 5, b"invalid \xff\xfe \"utf-8\""),
        ];
        for &(s, ts, l) in lines {
            sink.add(streams.labels(s), s, ts, l).unwrap();
        }
        let mut want = Vec::new();
        let mut o = Output::new(TOOL, &args, "pi\"5".into(), &mut want);
        o.set_time(Some(sink.batch_time));
        for &(s, ts, l) in lines {
            let stamp = json::rfc3339_nanos(ts);
            o.write_record_unflushed(
                "line",
                &LineRecord {
                    labels: LabelMap(streams.labels(s)),
                    timestamp: &stamp,
                    line: &String::from_utf8_lossy(l),
                },
            )
            .unwrap();
        }
        drop(o);
        assert_eq!(
            String::from_utf8(sink.records.clone()).unwrap(),
            String::from_utf8(want).unwrap()
        );
        let text_bytes = lines
            .iter()
            .map(|l| String::from_utf8_lossy(l.2).len() as u64)
            .sum();
        assert_eq!((sink.pending, sink.line_bytes), (5, text_bytes));
        // The next batch gets its own envelope time and heads.
        sink.clear();
        let before = sink.batch;
        sink.add(streams.labels(a), a, 1, b"x").unwrap();
        assert_eq!(sink.batch, before + 1);
        assert_eq!(sink.heads[a].0, sink.batch);
    }
}
