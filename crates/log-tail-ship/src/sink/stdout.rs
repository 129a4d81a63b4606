//! JSON lines on standard output (`--stdout`): blocks of lines formatted on worker
//! threads and written in order, the write being the acknowledgement.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{SystemTime, UNIX_EPOCH};

use homelab_core::{Error, Output, OutputArgs, Result};
use serde::Serialize;

use crate::TOOL;
use crate::json::{self, StampCache};
use crate::pipeline::{Filter, Labels, Scan, SourceId, StreamId, truncate};
use crate::positions;

use super::{LabelMap, Shipped, now_ns};

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
/// [`Output`] (the record up to the value of `timestamp`). A full batch goes to the
/// next idle one of [`FORMATTERS`] threads, which adds each line's timestamp and
/// escaped text (most of the work per line) while the next batch is read; the
/// records are written in the batches' order (see [`format_batches`]). A plain file's
/// lines come as a [`Block`] instead: the read buffer itself, which the formatter also
/// splits, filters and stamps, so the reading thread does little more than read. A
/// push hands over what is left and waits until everything is written and flushed;
/// only then are the lines acknowledged. At most two batches per formatter are in
/// flight (back-pressure from a slow reader of stdout).
pub struct StdoutSink {
    /// The summary at the end; the line records' envelope comes from it too.
    out: Output<io::Stdout>,
    args: OutputArgs,
    host: String,
    /// The batch being filled.
    raw: RawBatch,
    /// Written batches' buffers, back from the formatters for reuse.
    spare: Vec<RawBatch>,
    /// Per stream id: the batch its head was rendered for, and its index in `raw.heads`.
    heads: Vec<(u64, usize)>,
    /// Number of the batch being filled (0: none yet), and its envelope time.
    batch: u64,
    batch_time: SystemTime,
    /// Batches handed to the formatters since the last push, the lines and blocks among
    /// them, and what was written of those back.
    batches_handed: u32,
    handed: u64,
    blocks: u64,
    done: Shipped,
    /// The blocks' counts, until the agent takes them.
    counts: BlockCounts,
    /// Read buffers of written blocks, for reuse.
    spare_bufs: Vec<Vec<u8>>,
    /// Batches handed over and not yet back.
    in_flight: usize,
    writer: Option<Writer>,
    /// Where the formatters write: stdout (something else in tests).
    open: Open,
}

/// Opens the formatters' output, once per batch.
type Open = fn() -> Box<dyn Write>;

fn open_stdout() -> Box<dyn Write> {
    Box::new(io::stdout().lock())
}

/// Threads that render and write the records of full batches.
const FORMATTERS: usize = 2;

/// The formatters' ends: the queue of batches (numbered; the next idle formatter takes
/// the next one), and the batches back, in the order they were written.
struct Writer {
    to: mpsc::Sender<(u64, RawBatch)>,
    /// The number of the next batch.
    seq: u64,
    back: mpsc::Receiver<(RawBatch, io::Result<Written>)>,
}

/// What the formatters share.
struct Formatters {
    batches: Mutex<mpsc::Receiver<(u64, RawBatch)>>,
    order: Mutex<Order>,
    open: Open,
}

/// Rendered batches waiting to be written in their order.
#[derive(Default)]
struct Order {
    /// The number of the batch to write next.
    next: u64,
    /// A formatter is writing: it writes every rendered batch whose turn comes.
    writing: bool,
    /// Rendered batches, with their records, by number.
    ready: BTreeMap<u64, (RawBatch, Vec<u8>, Written)>,
    /// Records buffers written, for reuse.
    spare: Vec<Vec<u8>>,
}

/// A lock that a panicking thread held is still good here: nothing is left half done
/// under these locks.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The lines of one batch as they came, with the heads of their streams; or a block
/// of one file's lines.
#[derive(Debug, Default)]
struct RawBatch {
    /// The lines' bytes, one after another.
    text: Vec<u8>,
    /// Per line: the index of its head in `heads`, its timestamp (Unix ns) and where
    /// its bytes end in `text`.
    lines: Vec<(usize, u64, usize)>,
    /// A stream's record up to the opening quote of the timestamp's value.
    heads: Vec<Vec<u8>>,
    /// Instead of lines: a block, its stream's head being `heads[0]`.
    block: Option<Block>,
}

/// Whole lines of a plain file as they were read (each ending in a newline), handed
/// to a formatter as they are: the formatter splits, filters, stamps and cuts them,
/// which is most of the work per line, so the reading thread only reads.
#[derive(Debug)]
pub struct Block {
    /// The read buffer the lines are in, at `range`.
    pub bytes: Vec<u8>,
    pub range: Range<usize>,
    /// File offset of the first line.
    pub start: u64,
    pub stamps: Stamps,
    pub source: SourceId,
    pub filter: Arc<Filter>,
    /// Longer lines are cut (`--max-line-bytes`).
    pub max_line: usize,
}

/// How a block's lines get their timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stamps {
    /// From the positions file's anchors (see [`positions::stamp`]).
    Anchors(Vec<(u64, u64)>),
    /// Read time: the block's first byte has this one, each byte after it a
    /// nanosecond more (so a line's stamp follows from its offset alone).
    From(u64),
}

impl Stamps {
    fn at(&self, start: u64, offset: u64) -> u64 {
        match self {
            Stamps::Anchors(a) => positions::stamp(a, offset).unwrap_or_else(now_ns),
            Stamps::From(ns) => ns + (offset - start),
        }
    }
}

/// What a formatter wrote of one batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Written {
    /// The lines' text bytes (after invalid UTF-8 was replaced).
    text: u64,
    /// Records written.
    lines: u64,
    /// Of a block: lines in it, dropped by the filters, and cut.
    read: u64,
    dropped: u64,
    truncated: u64,
}

/// What the formatters counted of the blocks written since the last look: lines read
/// per source, dropped by the filters, and cut.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BlockCounts {
    pub read: Vec<(SourceId, u64)>,
    pub dropped: u64,
    pub truncated: u64,
}

impl RawBatch {
    pub(super) fn clear(&mut self) {
        self.text.clear();
        self.lines.clear();
        self.heads.clear();
        self.block = None;
    }

    /// Renders the records into `records` (emptied first).
    fn render(&self, stamps: &mut StampCache, records: &mut Vec<u8>) -> Written {
        records.clear();
        if let Some(b) = &self.block {
            return b.render(&self.heads[0], stamps, records);
        }
        let mut text = 0;
        let mut start = 0;
        for &(head, ts, end) in &self.lines {
            records.extend_from_slice(&self.heads[head]);
            stamps.push(records, ts);
            records.extend_from_slice(b"\",\"line\":");
            text += json::push_lossy(records, &self.text[start..end]) as u64;
            records.extend_from_slice(b"}\n");
            start = end;
        }
        Written {
            text,
            lines: self.lines.len() as u64,
            ..Written::default()
        }
    }
}

impl Block {
    /// Appends the records of the lines that pass the filters, as
    /// [`StdoutSink::add`] would have them.
    fn render(&self, head: &[u8], stamps: &mut StampCache, records: &mut Vec<u8>) -> Written {
        let mut w = Written::default();
        let buf = &self.bytes[..self.range.end];
        // UTF-8 is checked once for the whole block; a line of a block that is not
        // UTF-8 is checked on its own.
        let text = std::str::from_utf8(&buf[self.range.clone()]).ok();
        // A literal is searched once per block (as grep does), not once per line:
        // the one literal --drop directly, other filters through their scan. The direct
        // way is Scan's for one needle, without its generality, which costs
        // instructions on every line.
        let literal = self.filter.drop_literal();
        let mut next_match: Option<usize> = None;
        let mut scan = Scan::default();
        let mut from = self.range.start;
        while from < self.range.end {
            let nl = memchr::memchr(b'\n', &buf[from..]).map_or(buf.len(), |p| from + p);
            let line = from..nl;
            let offset = self.start + (from - self.range.start) as u64;
            from = nl + 1;
            w.read += 1;
            let pass = match literal {
                Some(f) => {
                    let at = match next_match {
                        Some(at) if at >= line.start => at,
                        _ => *next_match
                            .insert(f.find(&buf[line.start..]).map_or(usize::MAX, |p| line.start + p)),
                    };
                    // The needle has no newline: a match that starts in the line is in it.
                    at >= line.end
                }
                None => self.filter.pass_in(&mut scan, buf, 0, line.clone()),
            };
            if !pass {
                w.dropped += 1;
                continue;
            }
            records.extend_from_slice(head);
            stamps.push(records, self.stamps.at(self.start, offset));
            records.extend_from_slice(b"\",\"line\":");
            // Lines start and end at newlines, which are character boundaries.
            let valid = text.and_then(|t| t.get(line.start - self.range.start..line.end - self.range.start));
            w.text += match valid {
                Some(t) if t.len() <= self.max_line => {
                    json::push_str(records, t);
                    t.len() as u64
                }
                _ => {
                    let (cut, was_cut) = truncate(&buf[line], self.max_line);
                    w.truncated += u64::from(was_cut);
                    json::push_lossy(records, &cut) as u64
                }
            };
            records.extend_from_slice(b"}\n");
            w.lines += 1;
        }
        w
    }
}

/// A formatter thread: takes the next batch and renders it; then, unless another
/// formatter is writing (which then writes this one in its turn), writes and flushes
/// every rendered batch whose turn it is, and sends each back with the outcome. No
/// formatter waits for another to write before it renders the next batch.
fn format_batches(f: Arc<Formatters>, back: mpsc::Sender<(RawBatch, io::Result<Written>)>) {
    let mut stamps = StampCache::default();
    loop {
        let job = lock(&f.batches).recv();
        let Ok((seq, batch)) = job else { break };
        let mut records = lock(&f.order).spare.pop().unwrap_or_default();
        let written = batch.render(&mut stamps, &mut records);
        let mut order = lock(&f.order);
        order.ready.insert(seq, (batch, records, written));
        if order.writing {
            continue;
        }
        order.writing = true;
        loop {
            let next = order.next;
            let Some((batch, records, written)) = order.ready.remove(&next) else {
                break;
            };
            drop(order);
            let mut out = (f.open)();
            // After a failed write too the next batches are tried: they fail the same way.
            let result = out.write_all(&records).and_then(|_| out.flush()).map(|_| written);
            drop(out);
            let gone = back.send((batch, result)).is_err();
            order = lock(&f.order);
            order.next += 1;
            order.spare.push(records);
            if gone {
                order.writing = false;
                return;
            }
        }
        order.writing = false;
    }
}

impl StdoutSink {
    /// A batch is full at this many bytes of lines.
    const BATCH_BYTES: usize = 512 * 1024;
    /// Full batches handed to the formatters between two pushes, at most: bounds what is
    /// written but not yet acknowledged (sent again after a crash) while a file grows
    /// faster than stdout is read, to 16 MiB of lines (pushing more often slows
    /// catching up). After a crash, lines
    /// acknowledged since the last positions write (up to `--sync-interval` of them)
    /// are sent again anyway.
    const AHEAD_BATCHES: u32 = 32;

    pub fn new(args: &OutputArgs, host: String) -> StdoutSink {
        StdoutSink {
            out: Output::new(TOOL, args, host.clone(), io::stdout()),
            args: args.clone(),
            host,
            raw: RawBatch::default(),
            spare: Vec::new(),
            heads: Vec::new(),
            batch: 0,
            batch_time: UNIX_EPOCH,
            batches_handed: 0,
            handed: 0,
            blocks: 0,
            done: Shipped::default(),
            counts: BlockCounts::default(),
            spare_bufs: Vec::new(),
            in_flight: 0,
            writer: None,
            open: open_stdout,
        }
    }

    /// Appends one line to the batch.
    pub fn add(&mut self, labels: &Labels, stream: StreamId, ts_ns: u64, line: &[u8]) -> Result<()> {
        if self.raw.lines.is_empty() {
            // One envelope time per batch: the records are written together.
            self.batch += 1;
            self.batch_time = SystemTime::now();
        }
        if self.heads.len() <= stream {
            self.heads.resize(stream + 1, (0, 0));
        }
        if self.heads[stream].0 != self.batch {
            let head = self.render_head(labels)?;
            self.raw.heads.push(head);
            self.heads[stream] = (self.batch, self.raw.heads.len() - 1);
        }
        self.raw.text.extend_from_slice(line);
        self.raw
            .lines
            .push((self.heads[stream].1, ts_ns, self.raw.text.len()));
        Ok(())
    }

    /// Lines added since the last push (written or not), blocks counted as one: zero
    /// when nothing was added.
    pub fn pending(&self) -> u64 {
        self.handed + self.blocks + self.raw.lines.len() as u64
    }

    /// Whether the batch being filled should go to a formatter.
    pub fn full(&self) -> bool {
        self.raw.text.len() >= Self::BATCH_BYTES
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

    /// Whether a full batch may go to a formatter without a push (see
    /// [`StdoutSink::AHEAD_BATCHES`]).
    pub fn may_hand_off(&self) -> bool {
        self.batches_handed < Self::AHEAD_BATCHES
    }

    /// Hands the batch being filled (if any) to the next formatter, once it has
    /// written its previous one. Its lines are acknowledged at the next push.
    pub fn hand_off(&mut self) -> Result<()> {
        if self.raw.lines.is_empty() {
            return Ok(());
        }
        let next = self.spare.pop().unwrap_or_default();
        let batch = std::mem::replace(&mut self.raw, next);
        self.handed += batch.lines.len() as u64;
        self.send(batch)
    }

    /// A buffer to read into in the place of one given away with a block.
    pub fn spare_buf(&mut self) -> Vec<u8> {
        self.spare_bufs.pop().unwrap_or_default()
    }

    /// Hands a block of lines of `stream` to the next formatter (after the lines added
    /// before it). Its lines are acknowledged at the next push, like those of a batch.
    pub fn add_block(&mut self, labels: &Labels, block: Block) -> Result<()> {
        self.hand_off()?;
        self.batch += 1;
        self.batch_time = SystemTime::now();
        let mut batch = self.spare.pop().unwrap_or_default();
        batch.heads.push(self.render_head(labels)?);
        batch.block = Some(block);
        self.blocks += 1;
        self.send(batch)
    }

    fn send(&mut self, batch: RawBatch) -> Result<()> {
        while self.in_flight >= 2 * FORMATTERS {
            self.wait_one()?;
        }
        let writer = match &mut self.writer {
            Some(w) => w,
            None => self.writer.insert(Self::start_formatters(self.open)?),
        };
        writer
            .to
            .send((writer.seq, batch))
            .map_err(|_| Error::bug("the stdout formatter threads are gone"))?;
        writer.seq += 1;
        self.batches_handed += 1;
        self.in_flight += 1;
        Ok(())
    }

    fn start_formatters(open: Open) -> Result<Writer> {
        let (to_main, back) = mpsc::channel();
        let (to, batches) = mpsc::channel();
        let shared = Arc::new(Formatters {
            batches: Mutex::new(batches),
            order: Mutex::new(Order::default()),
            open,
        });
        for i in 0..FORMATTERS {
            let shared = Arc::clone(&shared);
            let back = to_main.clone();
            std::thread::Builder::new()
                .name(format!("stdout-{i}"))
                .spawn(move || format_batches(shared, back))
                .map_err(|e| Error::io("starting a stdout formatter thread", e))?;
        }
        Ok(Writer { to, seq: 0, back })
    }

    /// Waits until one more batch in flight is written and flushed.
    fn wait_one(&mut self) -> Result<()> {
        let Some(w) = &self.writer else {
            return Err(Error::bug("a batch in flight without formatters"));
        };
        let (mut batch, written) = w
            .back
            .recv()
            .map_err(|_| Error::bug("a stdout formatter thread ended"))?;
        self.in_flight -= 1;
        let written = written.map_err(Error::stdout)?;
        if let Some(b) = batch.block.take() {
            match self.counts.read.iter_mut().find(|(s, _)| *s == b.source) {
                Some((_, n)) => *n += written.read,
                None => self.counts.read.push((b.source, written.read)),
            }
            self.counts.dropped += written.dropped;
            self.counts.truncated += written.truncated;
            self.spare_bufs.push(b.bytes);
        }
        batch.clear();
        self.spare.push(batch);
        self.done.bytes += written.text;
        self.done.lines += written.lines;
        Ok(())
    }

    /// Writes and flushes every line added; returns what was shipped.
    pub(super) fn write(&mut self) -> Result<Shipped> {
        self.hand_off()?;
        while self.in_flight > 0 {
            self.wait_one()?;
        }
        Ok(self.done)
    }

    /// The counts of the blocks written since the last call.
    pub fn take_counts(&mut self) -> BlockCounts {
        std::mem::take(&mut self.counts)
    }

    pub(super) fn clear(&mut self) {
        self.batches_handed = 0;
        self.handed = 0;
        self.blocks = 0;
        self.done = Shipped::default();
    }

    /// The summary record at the end.
    pub fn summary<T: Serialize>(&mut self, summary: &T) -> Result<()> {
        self.out.write_record("summary", summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Streams;

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
        let mut got = Vec::new();
        let text = sink.raw.render(&mut StampCache::default(), &mut got).text;
        assert_eq!(String::from_utf8(got).unwrap(), String::from_utf8(want).unwrap());
        let text_bytes = lines
            .iter()
            .map(|l| String::from_utf8_lossy(l.2).len() as u64)
            .sum();
        assert_eq!((sink.pending(), text), (5, text_bytes));
        assert_eq!(sink.raw.heads.len(), 2, "a head per stream and batch");
        // The next batch gets its own envelope time and heads.
        sink.raw.clear();
        let before = sink.batch;
        sink.add(streams.labels(a), a, 1, b"x").unwrap();
        assert_eq!(sink.batch, before + 1);
        assert_eq!(sink.heads[a], (sink.batch, 0));
    }

    #[test]
    fn a_block_renders_what_its_lines_would_one_by_one() {
        let mut streams = Streams::default();
        let a = streams.id(&[("filename", "/var/log/app.log"), ("host", "pi")]);
        let max_line = 64;
        let lines: Vec<Vec<u8>> = vec![
            b"GET /health 200".to_vec(),
            br#"10.0.0.1 - "GET /api HTTP/1.1" 200 "-" "curl""#.to_vec(),
            b"".to_vec(),
            b"error: GET /healt".to_vec(),
            b"h then GET /health twice GET /health".to_vec(),
            "tab\tnul\0 \\ ünï ✓ \u{1f} error".as_bytes().to_vec(),
            b"invalid \xff\xfe \"utf-8\" GET /health".to_vec(),
            b"invalid \xc3 error".to_vec(),
            "é".repeat(40).into_bytes(), // 80 bytes: cut on a character boundary
            [&b"warn "[..], &[b'x'; 200]].concat(),
            b"abc".to_vec(),
            b"last".to_vec(),
        ];
        // Stamps from the read time go up a nanosecond per byte; anchors as ever.
        assert_eq!(Stamps::From(100).at(10, 15), 105);
        let anchors = vec![(0, 7), (20, 1_000)];
        assert_eq!(Stamps::Anchors(anchors.clone()).at(0, 25), 1_005);
        assert_eq!(Stamps::Anchors(anchors).at(0, 3), 10);
        // A block that is UTF-8 as a whole, and one that is not.
        let utf8: Vec<Vec<u8>> = lines
            .iter()
            .filter(|l| std::str::from_utf8(l).is_ok())
            .cloned()
            .collect();
        assert!(utf8.len() < lines.len());
        for lines in [lines, utf8] {
            a_block_renders_its_lines(&streams, a, &lines, max_line);
        }
    }

    fn a_block_renders_its_lines(streams: &Streams, a: StreamId, lines: &[Vec<u8>], max_line: usize) {
        let mut bytes = b"the end of an earlier line\n".to_vec();
        let start = 1_000_000u64;
        let first = bytes.len();
        let mut offsets = Vec::new();
        for l in lines {
            offsets.push(start + (bytes.len() - first) as u64);
            bytes.extend_from_slice(l);
            bytes.push(b'\n');
        }
        let range = first..bytes.len();
        bytes.extend_from_slice(b"the start of a later line");
        let filters = [
            Filter::new(&[], &[]).unwrap(),
            Filter::new(&[], &["GET /health".into()]).unwrap(),
            Filter::new(&[], &["a.c|nul".into()]).unwrap(),
            Filter::new(&["error|warn".into()], &[]).unwrap(),
            Filter::new(&["error|warn".into()], &["GET /health".into()]).unwrap(),
            Filter::new(&[], &["h\nh".into()]).unwrap(),
        ];
        let stamps = [
            Stamps::From(1_700_000_000_999_999_990),
            Stamps::Anchors(vec![
                (start, 1_700_000_000_000_000_000),
                (start + 50, 1_700_000_005_000_000_000),
            ]),
        ];
        for filter in filters {
            let filter = Arc::new(filter);
            for stamps in &stamps {
                // One by one, as lines read from the file are added.
                let mut sink = StdoutSink::new(&OutputArgs::default(), "pi".into());
                let mut want = Written::default();
                for (l, &offset) in lines.iter().zip(&offsets) {
                    want.read += 1;
                    if !filter.pass(l) {
                        want.dropped += 1;
                        continue;
                    }
                    let (l, cut) = truncate(l, max_line);
                    want.truncated += u64::from(cut);
                    sink.add(streams.labels(a), a, stamps.at(start, offset), &l)
                        .unwrap();
                }
                let mut want_records = Vec::new();
                let one_by_one = sink.raw.render(&mut StampCache::default(), &mut want_records);
                want.text = one_by_one.text;
                want.lines = one_by_one.lines;
                // As a block, with the head of the same batch.
                let head = match sink.raw.heads.first() {
                    Some(h) => h.clone(),
                    None => sink.render_head(streams.labels(a)).unwrap(),
                };
                let block = Block {
                    bytes: bytes.clone(),
                    range: range.clone(),
                    start,
                    stamps: stamps.clone(),
                    source: 0,
                    filter: Arc::clone(&filter),
                    max_line,
                };
                let mut records = Vec::new();
                let got = block.render(&head, &mut StampCache::default(), &mut records);
                assert_eq!(
                    String::from_utf8_lossy(&records),
                    String::from_utf8_lossy(&want_records),
                    "{filter:?} {stamps:?}"
                );
                assert_eq!(got, want, "{filter:?} {stamps:?}");
            }
        }
    }

    /// What the formatters of the test below wrote, and whether writing fails.
    static WRITTEN: std::sync::Mutex<(Vec<u8>, usize, bool)> = std::sync::Mutex::new((Vec::new(), 0, false));

    struct Probe;
    impl Write for Probe {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let mut w = WRITTEN.lock().unwrap();
            if w.2 {
                return Err(io::Error::from(io::ErrorKind::BrokenPipe));
            }
            w.0.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            WRITTEN.lock().unwrap().1 += 1;
            Ok(())
        }
    }

    #[test]
    fn formatters_write_the_batches_in_order_and_report_a_failed_write() {
        let mut streams = Streams::default();
        let a = streams.id(&[("host", "pi")]);
        let b = streams.id(&[("host", "pi"), ("job", "b")]);
        let mut sink = StdoutSink::new(&OutputArgs::default(), "pi".into());
        sink.open = || Box::new(Probe);
        // Batches of very different sizes, so a later one is often rendered first, and
        // now and then a block of a file's lines after lines not yet handed over.
        let mut want = Vec::new();
        let mut batches = 0;
        let mut blocks = 0;
        let filter = Arc::new(Filter::new(&[], &["drop me".into()]).unwrap());
        for i in 0..40_000u64 {
            let long = if (i / 1000) % 3 == 0 { 300 } else { 1 };
            let line = format!("{i} {}", "\"".repeat(long));
            let s = if i % 2 == 0 { a } else { b };
            sink.add(streams.labels(s), s, i, line.as_bytes()).unwrap();
            want.push(line);
            if sink.full() && sink.may_hand_off() {
                sink.hand_off().unwrap();
                batches += 1;
            }
            if i % 9001 == 7 {
                let mut bytes = sink.spare_buf();
                bytes.clear();
                bytes.extend_from_slice(b"partial line before\n");
                let start = bytes.len();
                for k in 0..1000 {
                    let line = format!("block {i} line {k} \"{}\"", "x".repeat(k % 40));
                    bytes.extend_from_slice(line.as_bytes());
                    bytes.push(b'\n');
                    want.push(line);
                    bytes.extend_from_slice(b"drop me\n");
                }
                let range = start..bytes.len();
                bytes.extend_from_slice(b"after the block");
                let block = Block {
                    bytes,
                    range,
                    start: 0,
                    stamps: Stamps::From(i),
                    source: 1,
                    filter: Arc::clone(&filter),
                    max_line: 1024,
                };
                sink.add_block(streams.labels(b), block).unwrap();
                blocks += 1;
            }
        }
        assert!(batches > 2 * FORMATTERS, "{batches} batches");
        assert_eq!(sink.pending(), 40_000 + blocks);
        let block_lines = 1000 * blocks;
        let shipped = sink.write().unwrap();
        assert_eq!(
            shipped,
            Shipped {
                lines: 40_000 + block_lines,
                bytes: want.iter().map(|l| l.len() as u64).sum::<u64>()
            }
        );
        assert_eq!(
            sink.take_counts(),
            BlockCounts {
                read: vec![(1, 2 * block_lines)],
                dropped: block_lines,
                truncated: 0
            }
        );
        assert_eq!(sink.take_counts(), BlockCounts::default(), "taken once");
        assert_eq!(
            sink.spare_bufs.len(),
            FORMATTERS.min(blocks as usize),
            "read buffers back for reuse"
        );
        assert_eq!((sink.in_flight, sink.raw.lines.len()), (0, 0));
        let (out, flushes, _) = std::mem::take(&mut *WRITTEN.lock().unwrap());
        assert_eq!(
            flushes, sink.batches_handed as usize,
            "one flush per batch or block"
        );
        assert!(flushes > batches + blocks as usize, "{flushes}");
        let got: Vec<String> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|r| {
                serde_json::from_str::<serde_json::Value>(r).unwrap()["line"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "records out of order");
        sink.clear();
        // A reader gone: the push fails with a broken pipe, reported as such.
        // It shows when a formatter is needed again, or at the push.
        WRITTEN.lock().unwrap().2 = true;
        let mut failed = None;
        for i in 0..10 * 1024 {
            sink.add(streams.labels(a), a, i, &[b'x'; 256]).unwrap();
            if sink.full()
                && let Err(e) = sink.hand_off()
            {
                failed = Some(e);
                break;
            }
        }
        let e = failed.unwrap_or_else(|| sink.write().unwrap_err());
        assert!(e.is_broken_pipe(), "{e}");
    }
}
