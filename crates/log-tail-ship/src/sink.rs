//! Where lines go: Loki's push API (JSON, gzip, batches by size and time) or JSON
//! lines on stdout. A sink says when a batch was accepted; only then do the files'
//! acknowledged offsets move.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use homelab_core::{Output, Result};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

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

/// Lines waiting to be pushed, grouped by stream.
#[derive(Debug, Default)]
pub struct Batch {
    streams: Vec<(StreamId, Vec<(u64, String)>)>,
    index: HashMap<StreamId, usize>,
    pub bytes: usize,
    pub lines: u64,
    pub first_at: Option<Instant>,
}

impl Batch {
    pub fn add(&mut self, stream: StreamId, ts_ns: u64, line: String) {
        let i = *self.index.entry(stream).or_insert_with(|| {
            self.streams.push((stream, Vec::new()));
            self.streams.len() - 1
        });
        // Rough JSON size: the line, its timestamp and the punctuation.
        self.bytes += line.len() + 26;
        self.lines += 1;
        self.first_at.get_or_insert_with(Instant::now);
        self.streams[i].1.push((ts_ns, line));
    }

    pub fn clear(&mut self) {
        self.streams.clear();
        self.index.clear();
        self.bytes = 0;
        self.lines = 0;
        self.first_at = None;
    }

    /// The push body: `{"streams":[{"stream":{labels},"values":[["ns","line"],...]}]}`.
    pub fn to_json(&self, streams: &Streams, out: &mut impl Write) -> io::Result<()> {
        let body = PushBody {
            streams: self
                .streams
                .iter()
                .map(|(id, values)| PushStream {
                    stream: LabelMap(streams.labels(*id)),
                    values,
                })
                .collect(),
        };
        serde_json::to_writer(out, &body).map_err(io::Error::other)
    }
}

#[derive(Serialize)]
struct PushBody<'a> {
    streams: Vec<PushStream<'a>>,
}

#[derive(Serialize)]
struct PushStream<'a> {
    stream: LabelMap<'a>,
    #[serde(serialize_with = "values")]
    values: &'a Vec<(u64, String)>,
}

fn values<S: Serializer>(v: &&Vec<(u64, String)>, s: S) -> Result<S::Ok, S::Error> {
    struct Value<'a>(u64, &'a str);
    impl Serialize for Value<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(2))?;
            // Loki wants the nanoseconds as a string.
            seq.serialize_element(&NsString(self.0))?;
            seq.serialize_element(self.1)?;
            seq.end()
        }
    }
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for (ts, line) in v.iter() {
        seq.serialize_element(&Value(*ts, line))?;
    }
    seq.end()
}

struct NsString(u64);

impl Serialize for NsString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
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
    /// The gzipped body of the batch being pushed (kept across retries).
    body: Option<Vec<u8>>,
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
            body: None,
            batch_bytes,
            batch_wait,
        }
    }

    /// One attempt to push the current batch.
    pub fn push(&mut self, streams: &Streams) -> Outcome {
        if self.body.is_none() {
            // JSON first, then one gzip pass: small writes into the encoder are slow.
            let mut json = Vec::with_capacity(self.batch.bytes + 64);
            if let Err(e) = self.batch.to_json(streams, &mut json) {
                return Outcome::Retry(format!("building the push body: {e}"));
            }
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(json.len() / 4),
                flate2::Compression::fast(),
            );
            match gz.write_all(&json).and_then(|_| gz.finish()) {
                Ok(b) => self.body = Some(b),
                Err(e) => return Outcome::Retry(format!("compressing the push body: {e}")),
            }
        }
        let body = self.body.as_deref().unwrap_or_default();
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
        match req.send(body) {
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
        self.body = None;
    }
}

/// A `kind: line` record on stdout.
#[derive(Serialize)]
pub struct LineRecord<'a> {
    pub labels: LabelMap<'a>,
    /// RFC 3339 UTC with nanoseconds.
    pub timestamp: String,
    pub line: &'a str,
}

/// RFC 3339 UTC with nanoseconds from Unix ns.
pub fn rfc3339_nanos(ns: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_nanos(ns);
    humantime::format_rfc3339_nanos(t).to_string()
}

/// [`rfc3339_nanos`] for a stream of close timestamps: the date and time of day are
/// formatted once per second.
#[derive(Debug, Default)]
pub struct StampCache {
    secs: u64,
    prefix: String,
}

impl StampCache {
    pub fn format(&mut self, ns: u64) -> String {
        let secs = ns / 1_000_000_000;
        if self.prefix.is_empty() || secs != self.secs {
            let full = rfc3339_nanos(secs * 1_000_000_000);
            // "2026-11-26T06:00:00.000000000Z" → "2026-11-26T06:00:00"
            self.prefix = full.get(..19).unwrap_or(&full).to_string();
            self.secs = secs;
        }
        format!("{}.{:09}Z", self.prefix, ns % 1_000_000_000)
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
    Stdout {
        out: Box<Output<BufWriter<io::Stdout>>>,
        stamps: StampCache,
        pending: u64,
        /// Bytes of the pending lines, and a rough size of their records.
        line_bytes: u64,
        bytes: usize,
    },
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sink::Loki(l) => l.fmt(f),
            Sink::Stdout { pending, .. } => f.debug_struct("Stdout").field("pending", pending).finish(),
        }
    }
}

impl Sink {
    pub fn add(&mut self, streams: &Streams, stream: StreamId, ts_ns: u64, line: Cow<'_, str>) -> Result<()> {
        match self {
            Sink::Loki(l) => {
                l.batch.add(stream, ts_ns, line.into_owned());
                Ok(())
            }
            Sink::Stdout {
                out,
                stamps,
                pending,
                line_bytes,
                bytes,
            } => {
                if *pending == 0 {
                    // One envelope time per batch: the records are written together.
                    out.set_time(Some(SystemTime::now()));
                }
                *pending += 1;
                *line_bytes += line.len() as u64;
                *bytes += line.len() + 100;
                out.write_record_unflushed(
                    "line",
                    &LineRecord {
                        labels: LabelMap(streams.labels(stream)),
                        timestamp: stamps.format(ts_ns),
                        line: &line,
                    },
                )
            }
        }
    }

    /// Lines added and not yet accepted.
    pub fn pending(&self) -> u64 {
        match self {
            Sink::Loki(l) => l.batch.lines,
            Sink::Stdout { pending, .. } => *pending,
        }
    }

    /// Whether the batch is as big as it may get.
    pub fn full(&self) -> bool {
        match self {
            Sink::Loki(l) => l.batch.bytes >= l.batch_bytes,
            Sink::Stdout { bytes, .. } => *bytes >= 256 * 1024,
        }
    }

    /// When the batch must go out even if more lines could come.
    pub fn deadline(&self) -> Option<Instant> {
        match self {
            Sink::Loki(l) => l.batch.first_at.map(|t| t + l.batch_wait),
            Sink::Stdout { pending, .. } => (*pending > 0).then(Instant::now),
        }
    }

    /// One attempt to deliver what is pending. Returns the outcome and the bytes shipped.
    pub fn push(&mut self, streams: &Streams) -> Result<(Outcome, u64)> {
        match self {
            Sink::Loki(l) => {
                let bytes: u64 = l
                    .batch
                    .streams
                    .iter()
                    .flat_map(|s| &s.1)
                    .map(|v| v.1.len() as u64)
                    .sum();
                let o = l.push(streams);
                if o != Outcome::Accepted {
                    return Ok((o, 0));
                }
                Ok((o, bytes))
            }
            Sink::Stdout { out, line_bytes, .. } => {
                out.flush()?;
                Ok((Outcome::Accepted, *line_bytes))
            }
        }
    }

    /// Forgets the pending batch (after it was accepted or rejected).
    pub fn done(&mut self) {
        match self {
            Sink::Loki(l) => l.done(),
            Sink::Stdout {
                pending,
                line_bytes,
                bytes,
                ..
            } => {
                *pending = 0;
                *line_bytes = 0;
                *bytes = 0;
            }
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
        b.add(a, 1_570_818_238_000_000_000, "fizz \"buzz\"".into());
        b.add(a, 1_570_818_238_000_000_001, "\u{0}nul".into());
        let mut out = Vec::new();
        b.to_json(&s, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"streams":[{"stream":{"host":"pi","job":"x"},"values":[["1570818238000000000","fizz \"buzz\""],["1570818238000000001","\u0000nul"]]}]}"#
        );
        assert_eq!(b.lines, 2);
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
    fn nanosecond_timestamps() {
        assert_eq!(
            rfc3339_nanos(1_546_341_071_111_111_111),
            "2019-01-01T11:11:11.111111111Z"
        );
    }
}
