//! Reading the followed files (plain and Docker's) into the pipe: the agent's own
//! methods, not a type apart, because a full batch is pushed in the middle of a read
//! (back-pressure) and a truncation found is acknowledged at once.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use homelab_core::{Error, Result};

use super::Agent;
use super::bookkeeping::warn;
use crate::docker::{self, Stream};
use crate::metrics;
use crate::pipeline::merge_labels;
use crate::positions;
use crate::sink::{Block, Sink, Stamps, now_ns};
use crate::tail::{Change, Format as TailFormat, Next};

impl Agent {
    /// Labels and counters for tails the last scan opened.
    pub(super) fn setup_tails(&mut self, new: &[usize]) {
        for &i in new {
            let t = &mut self.files.tails[i];
            match &t.format {
                TailFormat::Plain => {
                    // The followed path, also for its rotated siblings: one stream.
                    let labels = merge_labels(&self.static_labels, &[("filename", t.label.as_str())]);
                    t.streams = vec![self.pipe.streams.id(&labels)];
                    t.source = self.pipe.stats.source(&t.label);
                }
                TailFormat::Docker { container } => {
                    let (name, service) = self.docker.names(container);
                    t.streams = [Stream::Stdout, Stream::Stderr, Stream::Other]
                        .iter()
                        .map(|s| {
                            let own = [
                                ("container", name.as_str()),
                                ("compose_service", service.as_str()),
                                ("stream", s.label()),
                            ];
                            self.pipe.streams.id(&merge_labels(&self.static_labels, &own))
                        })
                        .collect();
                    t.source = self.pipe.stats.source(&name);
                }
            }
        }
        if !new.is_empty() {
            self.book.dirty = true;
        }
    }

    /// Reads the files until they are at their end (pushing full batches on the way):
    /// with `sweep`, every followed file; otherwise those inotify named (`touched`)
    /// and those with something left to do (see [`crate::files::Files::read_order_of`]).
    /// A truncation found makes the next pass a sweep. Returns false when a stop was
    /// asked for.
    pub(super) fn read_files(&mut self, mut sweep: bool, touched: &HashSet<PathBuf>) -> Result<bool> {
        loop {
            let mut again = false;
            let order = if sweep {
                self.book.sweeps += 1;
                self.files.read_order()
            } else {
                self.files.read_order_of(touched)
            };
            self.book.looks += order.len() as u64;
            for i in order {
                if self.wake.stop_requested() {
                    return Ok(false);
                }
                match self.files.tails[i].check() {
                    Ok(Change::Same) => {}
                    Ok(Change::Truncated) => {
                        if !self.flush()? {
                            return Ok(false);
                        }
                        // copytruncate: the copy (if any) is read from where this was.
                        if let Err(e) = self.files.truncated(i) {
                            warn(&format!("{}: {e}", self.files.tails[i].display));
                        }
                        // At once: a crash before the next write would find the file
                        // changed under its old identity, and send again with new
                        // timestamps what was just acknowledged.
                        self.book.dirty = true;
                        self.write_positions()?;
                        again = true;
                        continue;
                    }
                    Err(e) => {
                        if self.book.warn_due("read") {
                            warn(&format!("{}: {}", self.files.tails[i].display, e));
                        }
                        continue;
                    }
                }
                if !self.read_tail(i)? {
                    return Ok(false);
                }
                // Rewritten under the read: truncated, handled on the next pass.
                again |= self.files.tails[i].rewritten();
            }
            if !again {
                return Ok(true);
            }
            // A copy may have been opened: it is read in the next pass, with all.
            sweep = true;
        }
    }

    /// Whether a line of plain file `i` needs a new timestamp anchor on disk first.
    fn needs_anchor(&self, i: usize) -> bool {
        let t = &self.files.tails[i];
        if self.positions.is_none() || t.format != TailFormat::Plain {
            return false;
        }
        if !t.anchors_saved || t.anchors.is_empty() {
            return true;
        }
        let stale = self.sync_interval.as_nanos() as u64;
        t.processed >= t.safe
            && t.anchors
                .last()
                .is_some_and(|(_, ns)| now_ns().saturating_sub(*ns) >= stale)
    }

    /// Reads tail `i` to its end. Returns false when a stop was asked for.
    fn read_tail(&mut self, i: usize) -> Result<bool> {
        let t = &self.files.tails[i];
        if t.at_end() && t.drained() {
            return self.close_if_gone(i);
        }
        if self.needs_anchor(i) {
            self.write_positions()?;
        }
        let max = self.pipe.max_line;
        let blocks = self.pipe.blocks() && self.files.tails[i].format == TailFormat::Plain;
        // Read time, once per pass: every line read now was there now.
        let pass_ns = now_ns();
        loop {
            if self.pipe.sink.full() {
                match &mut self.pipe.sink {
                    // Written while the next batch is read; acknowledged at the next
                    // push (when the files are at their end, or a few batches on).
                    Sink::Stdout(s) if s.may_hand_off() => s.hand_off()?,
                    _ => {
                        if !self.flush()? {
                            return Ok(false);
                        }
                    }
                }
                if self.needs_anchor(i) {
                    self.write_positions()?;
                }
            }
            let t = &mut self.files.tails[i];
            if blocks {
                match t.next_block(max) {
                    Ok(Next::Block { start, range }) => {
                        if !self.hand_block(i, start, range, pass_ns)? {
                            return Ok(false);
                        }
                        continue;
                    }
                    // A line to cut: on its own, below.
                    Ok(Next::Line) => {}
                    Ok(Next::End) => break,
                    Err(e) => {
                        warn(&format!("reading {}: {e}", t.display));
                        break;
                    }
                }
            }
            let l = match t.next_line(max) {
                Ok(Some(l)) => l,
                Ok(None) => break,
                Err(e) => {
                    warn(&format!("reading {}: {e}", t.display));
                    break;
                }
            };
            let bytes = &t.buf[l.range.clone()];
            match &t.format {
                TailFormat::Plain => {
                    let ts = if self.positions.is_some() {
                        positions::stamp(&t.anchors, l.start).unwrap_or_else(now_ns)
                    } else {
                        pass_ns.max(t.last_ns + 1)
                    };
                    // A nanosecond per byte, as anchors and blocks have it: the next
                    // line's stamp is this one's + the distance between them.
                    let len = l.end.map_or(l.range.len() as u64, |e| e - l.start);
                    t.last_ns = ts + len.max(1) - 1;
                    // A cut line's filters see only what is kept of it: on its own.
                    let pass = if l.cut {
                        self.pipe.filter.pass(bytes)
                    } else {
                        self.pipe
                            .filter
                            .pass_in(&mut t.scan, &t.buf, t.buf_version, l.range.clone())
                    };
                    self.pipe.admit(pass, t.streams[0], t.source, ts, bytes, l.cut)?;
                    if let Some(end) = l.end {
                        t.processed = end;
                    }
                }
                TailFormat::Docker { container } => {
                    let joiner = self.docker.joiner(container);
                    match docker::parse(bytes) {
                        Some(e) => {
                            if let Some(j) = joiner.feed(&e, max) {
                                let ts = e.time_ns.unwrap_or_else(now_ns);
                                let stream = t.streams[e.stream as usize];
                                self.pipe.line(stream, t.source, ts, &j.line, j.cut || l.cut)?;
                            }
                        }
                        None => {
                            self.pipe.stats.docker_invalid += 1;
                            self.pipe.line(t.streams[2], t.source, now_ns(), bytes, l.cut)?;
                        }
                    }
                    if let Some(end) = l.end
                        && joiner.idle()
                    {
                        t.processed = end;
                    }
                }
            }
        }
        self.close_if_gone(i)
    }

    /// Hands a block of plain file `i`'s lines, `buf[range]` from file offset `start`,
    /// to the stdout formatters. Returns false when a stop was asked for.
    fn hand_block(
        &mut self,
        i: usize,
        start: u64,
        range: std::ops::Range<usize>,
        pass_ns: u64,
    ) -> Result<bool> {
        if let Sink::Stdout(s) = &self.pipe.sink
            && !s.may_hand_off()
            && !self.flush()?
        {
            return Ok(false);
        }
        if self.needs_anchor(i) {
            self.write_positions()?;
        }
        let Sink::Stdout(s) = &mut self.pipe.sink else {
            return Err(Error::bug("a block of lines for a sink other than stdout"));
        };
        let t = &mut self.files.tails[i];
        let len = range.len() as u64;
        let stamps = if self.positions.is_some() {
            Stamps::Anchors(t.anchors.clone())
        } else {
            // As line by line: read time, kept increasing by a nanosecond per byte.
            let ns = pass_ns.max(t.last_ns + 1);
            t.last_ns = ns + (len - 1);
            Stamps::From(ns)
        };
        t.processed = start + len;
        let bytes = t.take_buf(s.spare_buf());
        let block = Block {
            bytes,
            range,
            start,
            stamps,
            source: t.source,
            filter: Arc::clone(&self.pipe.filter),
            max_line: self.pipe.max_line,
        };
        s.add_block(self.pipe.streams.labels(t.streams[0]), block)?;
        Ok(true)
    }

    /// A file gone from the watched set (or deleted) and drained: its unterminated last
    /// line is shipped; it is closed by `reap` once acknowledged.
    fn close_if_gone(&mut self, i: usize) -> Result<bool> {
        let t = &mut self.files.tails[i];
        if t.gone_since
            .is_none_or(|g| g.elapsed() < crate::files::CLOSE_GRACE)
            || !t.at_end()
        {
            return Ok(true);
        }
        if t.format == TailFormat::Plain
            && let Some(l) = t.remainder()
        {
            let ts = positions::stamp(&t.anchors, l.start).unwrap_or_else(now_ns);
            let bytes = t.buf[l.range.clone()].to_vec();
            let (stream, source) = (t.streams[0], t.source);
            t.processed = l.end.unwrap_or(t.processed);
            self.pipe.line(stream, source, ts, &bytes, false)?;
        }
        Ok(true)
    }

    pub(super) fn file_metrics(&self) -> metrics::Files {
        let mut lag: BTreeMap<String, u64> = BTreeMap::new();
        for t in &self.files.tails {
            let name = self
                .pipe
                .stats
                .sources
                .get(t.source)
                .map(|s| s.name.clone())
                .unwrap_or_default();
            *lag.entry(name).or_default() += t.lag();
        }
        metrics::Files {
            lag,
            open: self.files.tails.len(),
            unreadable: self.files.unopened.len(),
            polled: self
                .files
                .tails
                .iter()
                .filter(|t| self.wake.polled(&t.path))
                .count(),
            looks: self.book.looks,
            sweeps: self.book.sweeps,
        }
    }
}
