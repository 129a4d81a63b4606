//! Lines from the sources to the sink: filter, rate limit, cut, count.

use std::sync::Arc;
use std::time::Instant;

use homelab_core::Result;

use crate::pipeline::{Filter, RateLimit, SourceId, Stats, StreamId, Streams, truncate};
use crate::sink::{Shipped, Sink};

pub(super) struct Pipe {
    pub streams: Streams,
    pub stats: Stats,
    pub filter: Arc<Filter>,
    pub rate: Option<RateLimit>,
    pub max_line: usize,
    pub sink: Sink,
}

impl Pipe {
    /// One line: filter, rate limit, cut, into the sink.
    pub fn line(
        &mut self,
        stream: StreamId,
        source: SourceId,
        ts: u64,
        bytes: &[u8],
        cut: bool,
    ) -> Result<()> {
        let pass = self.filter.pass(bytes);
        self.admit(pass, stream, source, ts, bytes, cut)
    }

    /// [`Pipe::line`] for a line whose filter verdict is known.
    pub fn admit(
        &mut self,
        pass: bool,
        stream: StreamId,
        source: SourceId,
        ts: u64,
        bytes: &[u8],
        cut: bool,
    ) -> Result<()> {
        self.stats.sources[source].read += 1;
        if !pass {
            self.stats.dropped_filter += 1;
            return Ok(());
        }
        if self.rate.is_none() && !cut && bytes.len() <= self.max_line {
            return self.sink.add(&self.streams, stream, ts, bytes);
        }
        if let Some(r) = &mut self.rate
            && !r.allow(stream, Instant::now())
        {
            self.stats.dropped_rate_limit += 1;
            return Ok(());
        }
        let (bytes, was_cut) = truncate(bytes, self.max_line);
        let bytes: std::borrow::Cow<[u8]> = if cut && !was_cut {
            // The head of an over-long line: mark it like any cut line.
            let (b, _) = truncate(&bytes, bytes.len().saturating_sub(1).max(1));
            std::borrow::Cow::Owned(b.into_owned())
        } else {
            bytes
        };
        if cut || was_cut {
            self.stats.truncated += 1;
        }
        self.sink.add(&self.streams, stream, ts, &bytes)
    }

    /// Whether plain files' lines go to the sink in blocks, split and filtered by the
    /// stdout formatters: nothing is needed of each line on the way (no rate limit).
    pub fn blocks(&self) -> bool {
        matches!(self.sink, Sink::Stdout(_)) && self.rate.is_none()
    }

    /// A push went through: its lines are shipped, and the blocks' counts are in.
    pub fn shipped(&mut self, shipped: Shipped) {
        self.stats.shipped += shipped.lines;
        self.stats.bytes_shipped += shipped.bytes;
        self.stats.last_push_unix = Some(homelab_core::unix_now());
        if let Sink::Stdout(s) = &mut self.sink {
            let c = s.take_counts();
            for (source, n) in c.read {
                self.stats.sources[source].read += n;
            }
            self.stats.dropped_filter += c.dropped;
            self.stats.truncated += c.truncated;
        }
    }
}
