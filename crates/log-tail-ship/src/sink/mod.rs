//! Where lines go: Loki's push API (JSON, gzip, batches by size and time) or JSON
//! lines on stdout. A sink says when a batch was accepted; only then do the files'
//! acknowledged offsets move.

mod loki;
mod stdout;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use homelab_core::Result;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::pipeline::{Labels, StreamId, Streams};

pub use loki::{Auth, Batch, Loki, Outcome, classify, transport_outcome};
pub use stdout::{Block, BlockCounts, LineRecord, Stamps, StdoutSink};

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

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// What a push delivered: lines, and their text bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shipped {
    pub lines: u64,
    pub bytes: u64,
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
            Sink::Stdout(s) => f.debug_struct("Stdout").field("pending", &s.pending()).finish(),
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
            Sink::Stdout(s) => s.pending(),
        }
    }

    /// Whether the batch is as big as it may get.
    pub fn full(&self) -> bool {
        match self {
            Sink::Loki(l) => l.batch.bytes >= l.batch_bytes,
            Sink::Stdout(s) => s.full(),
        }
    }

    /// When the batch must go out even if more lines could come.
    pub fn deadline(&self) -> Option<Instant> {
        match self {
            Sink::Loki(l) => l.batch.first_at.map(|t| t + l.batch_wait),
            Sink::Stdout(s) => (s.pending() > 0).then(Instant::now),
        }
    }

    /// One attempt to deliver what is pending. Returns the outcome and, when accepted,
    /// what was shipped.
    pub fn push(&mut self, streams: &Streams) -> Result<(Outcome, Shipped)> {
        match self {
            Sink::Loki(l) => {
                let shipped = Shipped {
                    lines: l.batch.lines,
                    bytes: l.batch.line_bytes,
                };
                let o = l.push(streams);
                if o != Outcome::Accepted {
                    return Ok((o, Shipped::default()));
                }
                Ok((o, shipped))
            }
            Sink::Stdout(s) => Ok((Outcome::Accepted, s.write()?)),
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
