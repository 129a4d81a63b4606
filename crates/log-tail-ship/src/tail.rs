//! One open file being followed: its identity (device, inode, fingerprint of the first
//! bytes), a read buffer, and the offsets that matter (read, processed, acknowledged).
//! Reading only; deciding which files to follow is in [`crate::files`].

use std::fs::File;
use std::io;
use std::ops::{Deref, DerefMut, Range};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::pipeline::Scan;
pub use crate::rotation::{Change, FINGERPRINT_MAX, Fingerprint, Identity};
use crate::rotation::{Rotation, Track};

/// One read() asks for this much.
const CHUNK: usize = 256 * 1024;

/// How long the first bytes read by [`Tail::check`] are trusted while the file's size
/// and times stay the same. Any write changes them, but file times advance by clock
/// ticks: a truncate-and-rewrite to the same size within one tick of a look keeps
/// them, and is seen at the latest this long after (when nothing else changed the
/// file first). Without it an idle follower reads the first bytes of every file at
/// every wake-up, which is most of its idle cost with hundreds of files.
const TRUST_LOOK: Duration = Duration::from_secs(60);

/// What a look at the open file saw: size and change times, and its first bytes.
#[derive(Debug)]
struct Look {
    stat: (u64, i64, i64, i64, i64),
    fp: Fingerprint,
    at: Instant,
}

/// The first bytes of `file` (as many as it has, up to [`FINGERPRINT_MAX`]).
pub fn read_fingerprint(file: &File) -> io::Result<Fingerprint> {
    read_first(file, FINGERPRINT_MAX)
}

fn read_first(file: &File, len: usize) -> io::Result<Fingerprint> {
    let mut buf = [0u8; FINGERPRINT_MAX];
    let len = len.min(FINGERPRINT_MAX);
    let mut got = 0;
    while got < len {
        match file.read_at(&mut buf[got..len], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Fingerprint::new(&buf[..got]))
}

/// Whether `file` still starts with the bytes of `fp`.
fn still_starts_with(file: &File, fp: &Fingerprint) -> io::Result<bool> {
    Ok(read_first(file, fp.len() as usize)? == *fp)
}

/// What the file holds: plain lines, or Docker's json-file entries of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Plain,
    Docker { container: String },
}

/// A line found in the buffer.
#[derive(Debug, Clone)]
pub struct LineRef {
    /// Offset of its first byte in the file.
    pub start: u64,
    /// Offset after its newline, or None for the head of an over-long line whose
    /// end has not been read yet (the rest is skipped up to the newline).
    pub end: Option<u64>,
    /// Where its bytes are in [`Tail::buf`], without the newline.
    pub range: Range<usize>,
    /// Cut at the line limit.
    pub cut: bool,
}

/// What [`Tail::next_block`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Whole lines, each with its newline: `buf[range]`, starting at file offset `start`.
    Block { start: u64, range: Range<usize> },
    /// No whole line, but a line to cut (or the rest of one being skipped): take it
    /// with [`Tail::next_line`].
    Line,
    /// Nothing more now.
    End,
}

/// One open file being read. Its identity and offsets are its [`Track`] (which it
/// dereferences to); the rest is the reading.
#[derive(Debug)]
pub struct Tail {
    pub track: Track,
    /// The real path (under --root) where it was last seen.
    pub path: PathBuf,
    pub file: File,
    pub format: Format,
    /// Every byte before it has been read into the buffer.
    read_pos: u64,
    pub(crate) buf: ChunkBuf,
    /// Unconsumed bytes are `buf[head..]`; they start at file offset `read_pos - (len - head)`.
    head: usize,
    /// Changes whenever `buf` does (a read, a restart): positions in it found before
    /// are valid while this stays the same.
    pub(crate) buf_version: u64,
    /// Where the literal filters were last found in `buf`.
    pub(crate) scan: Scan,
    /// Skipping the rest of an over-long line up to its newline.
    skipping: bool,
    /// A read found the first bytes changed (copytruncate between two looks): what it
    /// got was discarded, and [`Tail::check`] reports the truncation.
    rewritten: bool,
    /// Without a positions file: the last timestamp given, plus the length of its
    /// line less one (stamps are read time, going up a nanosecond per byte).
    pub last_ns: u64,
    /// Stream ids (plain: one; Docker: stdout, stderr, and unknown) and source id.
    pub streams: Vec<usize>,
    pub source: usize,
    /// The last [`Tail::check`]'s look, reused while the file has not changed.
    look: Option<Look>,
    /// A [`Tail::check`] was made (and no restart since): reading stops at the size it
    /// saw, without a read that finds the end (what is written later is told of by
    /// its own event, and read at the next look).
    bounded: bool,
}

impl Deref for Tail {
    type Target = Track;

    fn deref(&self) -> &Track {
        &self.track
    }
}

impl DerefMut for Tail {
    fn deref_mut(&mut self) -> &mut Track {
        &mut self.track
    }
}

impl AsRef<Track> for Tail {
    fn as_ref(&self) -> &Track {
        &self.track
    }
}

impl AsMut<Track> for Tail {
    fn as_mut(&mut self) -> &mut Track {
        &mut self.track
    }
}

impl Tail {
    /// Follows the file at `path` (or `file`, that file opened already) with `track`,
    /// from `track.processed`; fails if it is not the one the track is for.
    pub fn open(path: PathBuf, mut track: Track, format: Format, file: Option<File>) -> io::Result<Tail> {
        let file = match file {
            Some(f) => f,
            None => File::open(&path)?,
        };
        let md = file.metadata()?;
        if !md.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        let id = Identity {
            dev: md.dev(),
            ino: md.ino(),
        };
        if id != track.id {
            return Err(io::Error::other("replaced while being opened"));
        }
        track.size = md.len();
        track.anchored = format == Format::Plain;
        Ok(Tail {
            read_pos: track.processed,
            track,
            path,
            file,
            format,
            buf: ChunkBuf::default(),
            buf_version: 0,
            scan: Scan::default(),
            head: 0,
            skipping: false,
            rewritten: false,
            last_ns: 0,
            streams: Vec::new(),
            source: 0,
            look: None,
            bounded: false,
        })
    }

    /// Looks at the open file (size, links, first bytes) and lets the state machine
    /// tell: truncated or rewritten (copytruncate), or more to read.
    pub fn check(&mut self) -> io::Result<Change> {
        let md = self.file.metadata()?;
        if md.nlink() == 0 && self.track.gone_since.is_none() {
            self.track.gone_since = Some(Instant::now());
        }
        let stat = (md.len(), md.mtime(), md.mtime_nsec(), md.ctime(), md.ctime_nsec());
        self.bounded = true;
        let fp = match &self.look {
            Some(l) if l.stat == stat && !self.rewritten && l.at.elapsed() < TRUST_LOOK => l.fp.clone(),
            _ => {
                let fp = read_fingerprint(&self.file)?;
                self.look = Some(Look {
                    stat,
                    fp: fp.clone(),
                    at: Instant::now(),
                });
                fp
            }
        };
        Ok(Rotation::check(
            &mut self.track,
            md.len(),
            &fp,
            self.read_pos,
            self.rewritten,
        ))
    }

    /// Whether a read saw the file rewritten: it is to be checked (and restarted)
    /// before anything more is read from it.
    pub fn rewritten(&self) -> bool {
        self.rewritten
    }

    /// The file's first bytes and size now (for [`Rotation::truncated`]).
    pub fn look(&self) -> io::Result<(Fingerprint, u64)> {
        Ok((read_fingerprint(&self.file)?, self.file.metadata()?.len()))
    }

    /// Starts reading over at `track.processed` (after a truncation, as the state
    /// machine decided).
    pub fn restart(&mut self) {
        self.read_pos = self.track.processed;
        self.buf.clear();
        self.buf_version += 1;
        self.head = 0;
        self.skipping = false;
        self.rewritten = false;
        self.look = None;
        self.bounded = false;
    }

    /// Whether everything in the file has been read (an unterminated last line may
    /// still wait in the buffer: see [`Tail::remainder`]).
    pub fn at_end(&self) -> bool {
        self.read_pos >= self.size
    }

    /// Whether nothing read is left unprocessed in the buffer.
    pub fn drained(&self) -> bool {
        self.head >= self.buf.len() || self.skipping
    }

    pub fn bytes(&self, r: &Range<usize>) -> &[u8] {
        &self.buf[r.clone()]
    }

    /// An unterminated last line, handed over when the file is closed for good.
    pub fn remainder(&mut self) -> Option<LineRef> {
        // Rewritten: the line goes on in the copy, where it is read whole.
        if self.skipping || self.rewritten || self.head >= self.buf.len() {
            return None;
        }
        let start = self.read_pos - (self.buf.len() - self.head) as u64;
        let r = LineRef {
            start,
            end: Some(self.read_pos),
            range: self.head..self.buf.len(),
            cut: false,
        };
        self.head = self.buf.len();
        Some(r)
    }

    /// The next complete line (at most `max` bytes: longer ones come as their head,
    /// `cut`, and the rest is skipped), or None when the file has nothing more now.
    pub fn next_line(&mut self, max: usize) -> io::Result<Option<LineRef>> {
        loop {
            let pending = &self.buf[self.head..];
            let start = self.read_pos - pending.len() as u64;
            if let Some(nl) = memchr(pending) {
                let range = self.head..self.head + nl;
                self.head += nl + 1;
                let end = start + nl as u64 + 1;
                if self.skipping {
                    // The tail of a line already shipped cut: it ends here.
                    self.skipping = false;
                    self.processed = end;
                    continue;
                }
                return Ok(Some(LineRef {
                    start,
                    end: Some(end),
                    cut: false,
                    range,
                }));
            }
            if self.skipping {
                self.head = self.buf.len();
            } else if pending.len() >= max {
                self.skipping = true;
                let range = self.head..self.head + max;
                self.head = self.buf.len();
                return Ok(Some(LineRef {
                    start,
                    end: None,
                    cut: true,
                    range,
                }));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Every whole line read and not yet consumed, as one block (reading a chunk first
    /// when there is none): the lines are consumed, and their bytes stay where they are
    /// until [`Tail::take_buf`] or the next read.
    pub fn next_block(&mut self, max: usize) -> io::Result<Next> {
        loop {
            if self.skipping {
                return Ok(Next::Line);
            }
            let pending = &self.buf[self.head..];
            if let Some(last) = memchr::memrchr(b'\n', pending) {
                let start = self.read_pos - pending.len() as u64;
                let range = self.head..self.head + last + 1;
                self.head = range.end;
                return Ok(Next::Block { start, range });
            }
            if pending.len() >= max {
                return Ok(Next::Line);
            }
            if !self.fill()? {
                return Ok(Next::End);
            }
        }
    }

    /// Gives the read buffer away (with the block [`Tail::next_block`] returned in it)
    /// and goes on with `spare`, into which what is left unconsumed is copied.
    pub fn take_buf(&mut self, spare: Vec<u8>) -> Vec<u8> {
        self.buf_version += 1;
        self.buf.swap(&mut self.head, spare)
    }

    /// Reads one more chunk; false at the end of the file, or when the file turned
    /// out to be rewritten.
    ///
    /// The file may have been truncated and written again past `read_pos` at any time
    /// since the last [`Tail::check`] (a push retried for seconds in between, say):
    /// the chunk would then be the new content's, taken for the rest of the old one,
    /// and the old lines after `read_pos` (still in the copy) skipped. The writer
    /// rewrote the first bytes before the ones just read, so comparing the
    /// fingerprint after the read tells; such a chunk is dropped.
    fn fill(&mut self) -> io::Result<bool> {
        if self.rewritten {
            return Ok(false);
        }
        if self.bounded && self.read_pos >= self.track.size {
            // At the end the last look saw: as after a read that found it.
            if self.head >= self.buf.len() {
                self.head = 0;
                self.buf.park();
            }
            return Ok(false);
        }
        let pos = self.read_pos;
        let file = &self.file;
        self.buf_version += 1;
        let n = append_chunk(&mut self.buf, &mut self.head, |b| file.read_at(b, pos))?;
        if n == 0 && self.head >= self.buf.len() {
            // At the end with nothing left over: the buffer goes back to the pool
            // until there is more (a thousand idle files hold no 256 KiB each).
            self.head = 0;
            self.buf.park();
        }
        let same = if n > 0 {
            still_starts_with(&self.file, &self.track.fp)
        } else {
            Ok(true)
        };
        if !matches!(same, Ok(true)) {
            self.buf.truncate(self.buf.len() - n);
            self.rewritten = same.is_ok();
            return same;
        }
        self.read_pos += n as u64;
        if self.read_pos > self.track.size {
            self.track.size = self.read_pos;
        }
        Ok(n > 0)
    }
}

/// Bytes read and not yet consumed. The vector is kept at the largest size it had
/// (a chunk past what is kept), so reads go into room zeroed once, not zeroed again
/// for every read (256 KiB each).
#[derive(Debug, Default)]
pub(crate) struct ChunkBuf {
    bytes: Vec<u8>,
    len: usize,
}

impl std::ops::Deref for ChunkBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Read buffers of files at their end, for the next file that has something to read:
/// buffers are held only while reading.
const POOL: usize = 2;

thread_local! {
    static PARKED: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl ChunkBuf {
    /// Gives the (empty) buffer's room back to the pool.
    fn park(&mut self) {
        self.len = 0;
        let bytes = std::mem::take(&mut self.bytes);
        if bytes.capacity() > 0 {
            PARKED.with(|p| {
                let mut p = p.borrow_mut();
                if p.len() < POOL {
                    p.push(bytes);
                }
            });
        }
    }

    /// Whether it holds room (for tests).
    #[cfg(test)]
    fn has_room(&self) -> bool {
        self.bytes.capacity() > 0
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Puts `spare` in the place of the bytes, with the unconsumed ones (from `head`)
    /// copied to its start; returns the old bytes (whole, as they were).
    fn swap(&mut self, head: &mut usize, mut spare: Vec<u8>) -> Vec<u8> {
        let left = self.len - *head;
        if spare.len() < left {
            spare.resize(left, 0);
        }
        spare[..left].copy_from_slice(&self.bytes[*head..self.len]);
        self.len = left;
        *head = 0;
        std::mem::replace(&mut self.bytes, spare)
    }
}

/// Drops the consumed head of `buf` and appends one read of up to 256 KiB (retried on
/// EINTR); returns how many bytes came (0 at the end). Shared with stdin.
pub(crate) fn append_chunk(
    buf: &mut ChunkBuf,
    head: &mut usize,
    mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
) -> io::Result<usize> {
    if *head > 0 {
        buf.bytes.copy_within(*head..buf.len, 0);
        buf.len -= *head;
        *head = 0;
    }
    let have = buf.len;
    if buf.bytes.is_empty()
        && let Some(room) = PARKED.with(|p| p.borrow_mut().pop())
    {
        buf.bytes = room;
    }
    if buf.bytes.len() < have + CHUNK {
        buf.bytes.resize(have + CHUNK, 0);
    }
    let n = loop {
        match read(&mut buf.bytes[have..have + CHUNK]) {
            Ok(n) => break n.min(CHUNK),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    buf.len = have + n;
    Ok(n)
}

fn memchr(b: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Opens `p` at `offset` as a file never seen before.
    pub(crate) fn open_at(p: &std::path::Path, offset: u64) -> Tail {
        let f = File::open(p).unwrap();
        let md = f.metadata().unwrap();
        let track = Track {
            id: Identity {
                dev: md.dev(),
                ino: md.ino(),
            },
            fp: read_fingerprint(&f).unwrap(),
            display: p.display().to_string(),
            label: p.display().to_string(),
            live: true,
            was_live: true,
            anchored: true,
            size: md.len(),
            processed: offset,
            acked: offset,
            anchors: Vec::new(),
            anchors_saved: false,
            safe: 0,
            gone_since: None,
        };
        Tail::open(p.to_path_buf(), track, Format::Plain, None).unwrap()
    }

    /// Starts `t` over after a truncation, as the driver does.
    fn restart(t: &mut Tail) {
        let (fp, size) = t.look().unwrap();
        Rotation::new(None, false).truncated(std::slice::from_mut(t), 0, &[], fp, size, Instant::now());
        t.restart();
    }

    fn lines(t: &mut Tail, max: usize) -> Vec<(String, Option<u64>, bool)> {
        let mut out = Vec::new();
        while let Some(l) = t.next_line(max).unwrap() {
            out.push((
                String::from_utf8_lossy(t.bytes(&l.range)).into_owned(),
                l.end,
                l.cut,
            ));
            if let Some(e) = l.end {
                t.processed = e;
            }
        }
        out
    }

    #[test]
    fn reads_lines_waits_for_the_newline_and_cuts_long_ones() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(b"one\ntwo\nthr").unwrap();
        let mut t = open_at(&p, 0);
        assert_eq!(t.check().unwrap(), Change::Same);
        assert_eq!(
            lines(&mut t, 100),
            [("one".into(), Some(4), false), ("two".into(), Some(8), false)]
        );
        f.write_all(b"ee\n").unwrap();
        t.check().unwrap();
        assert_eq!(lines(&mut t, 100), [("three".into(), Some(14), false)]);
        f.write_all(&[b'x'; 300]).unwrap();
        t.check().unwrap();
        let mut got = lines(&mut t, 100);
        f.write_all(b"\nafter\n").unwrap();
        t.check().unwrap();
        got.extend(lines(&mut t, 100));
        assert_eq!(got[0].0.len(), 100);
        assert_eq!(got[0].1, None);
        assert!(got[0].2);
        assert_eq!(got[1], ("after".into(), Some(321), false));
        assert_eq!(t.processed, 321);
        assert!(t.at_end());
    }

    #[test]
    fn truncation_and_rewrite_are_seen() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        std::fs::write(&p, b"first line\nsecond\n").unwrap();
        let mut t = open_at(&p, 0);
        lines(&mut t, 100);
        // copytruncate then new content, longer than before: only the fingerprint tells.
        std::fs::write(&p, b"other line\nsecond\nthird line\n").unwrap();
        assert_eq!(t.check().unwrap(), Change::Truncated);
        restart(&mut t);
        assert_eq!(lines(&mut t, 100).len(), 3);
        // Written again up to exactly where reading stopped (longer than the
        // fingerprint): the size alone says nothing.
        std::fs::write(&p, "a".repeat(299) + "\n").unwrap();
        assert_eq!(t.check().unwrap(), Change::Truncated);
        restart(&mut t);
        assert_eq!(lines(&mut t, 1000).len(), 1);
        assert_eq!(t.check().unwrap(), Change::Same);
        std::fs::write(&p, "b".repeat(299) + "\n").unwrap();
        assert_eq!(t.check().unwrap(), Change::Truncated);
        std::fs::write(&p, b"").unwrap();
        assert_eq!(t.check().unwrap(), Change::Truncated);
    }

    #[test]
    fn a_rewrite_longer_than_what_was_read_is_found_with_whole_first_bytes_known() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        let old: String = (0..40).map(|i| format!("old line {i:02}\n")).collect();
        std::fs::write(&p, &old).unwrap();
        let mut t = open_at(&p, 0);
        assert_eq!(t.check().unwrap(), Change::Same);
        assert_eq!(lines(&mut t, 100).len(), 40);
        assert_eq!(t.fp.len() as usize, FINGERPRINT_MAX);
        // copytruncate and more written than was read, between two looks.
        let new: String = (0..60).map(|i| format!("new line {i:02}\n")).collect();
        std::fs::write(&p, &new).unwrap();
        // Found at this look or by the read after it: never read as the old file's rest.
        let mut found = false;
        for _ in 0..2 {
            if t.check().unwrap() == Change::Truncated {
                found = true;
                break;
            }
            assert!(lines(&mut t, 100).is_empty(), "nothing of the new content");
        }
        assert!(found, "the rewrite was not found");
        restart(&mut t);
        let got = lines(&mut t, 100);
        assert_eq!(got.len(), 60);
        assert_eq!(got[0].0, "new line 00");
    }

    #[test]
    fn reading_stops_where_the_look_saw_the_end() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(b"one\n").unwrap();
        let mut t = open_at(&p, 0);
        assert_eq!(t.check().unwrap(), Change::Same);
        f.write_all(b"two\n").unwrap();
        // A read goes as far as there is.
        assert_eq!(
            lines(&mut t, 100),
            [("one".into(), Some(4), false), ("two".into(), Some(8), false)]
        );
        assert!(!t.buf.has_room(), "at the end, nothing left over");
        // Past what was read then, no read looks for more: what is written now is
        // for the next look (its event comes).
        f.write_all(b"three\n").unwrap();
        assert!(lines(&mut t, 100).is_empty());
        assert_eq!(t.check().unwrap(), Change::Same);
        assert_eq!(lines(&mut t, 100), [("three".into(), Some(14), false)]);
    }

    #[test]
    fn a_chunk_read_after_a_rewrite_is_dropped_and_the_rewrite_reported() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        let old = "o".repeat(CHUNK - 1) + "\n" + "old tail\n";
        std::fs::write(&p, &old).unwrap();
        let mut t = open_at(&p, 0);
        assert_eq!(t.check().unwrap(), Change::Same);
        assert_eq!(t.next_line(CHUNK).unwrap().unwrap().end, Some(CHUNK as u64));
        // copytruncate and more written than was read, before the next read.
        std::fs::write(&p, "n".repeat(CHUNK) + "\nnew tail\n").unwrap();
        assert!(
            t.next_line(CHUNK).unwrap().is_none(),
            "nothing of the new content"
        );
        assert!(t.rewritten() && t.remainder().is_none());
        assert_eq!(t.check().unwrap(), Change::Truncated);
        restart(&mut t);
        assert!(!t.rewritten());
        assert_eq!(lines(&mut t, 2 * CHUNK).len(), 2);
    }

    #[test]
    fn a_chunk_buffer_holds_exactly_what_is_left_and_what_came() {
        let mut buf = ChunkBuf::default();
        let mut head = 0;
        // A full chunk, then short reads: the room past the data is stale bytes of
        // earlier reads, which must never show.
        let first = vec![b'x'; CHUNK];
        assert_eq!(
            append_chunk(&mut buf, &mut head, |b| {
                b.copy_from_slice(&first);
                Ok(b.len())
            })
            .unwrap(),
            CHUNK
        );
        assert_eq!(&buf[..], &first[..]);
        head = CHUNK - 3; // all but "xxx" consumed
        let n = append_chunk(&mut buf, &mut head, |b| {
            b[..4].copy_from_slice(b"yy\nz");
            Ok(4)
        })
        .unwrap();
        assert_eq!((n, head, &buf[..]), (4, 0, &b"xxxyy\nz"[..]));
        // A failed read keeps what was there; the end of input adds nothing.
        head = 6;
        let err = append_chunk(&mut buf, &mut head, |_| Err(io::Error::other("gone")));
        assert!(err.is_err());
        assert_eq!(&buf[..], b"z");
        assert_eq!(append_chunk(&mut buf, &mut head, |_| Ok(0)).unwrap(), 0);
        assert_eq!(&buf[..], b"z");
        buf.truncate(0);
        assert!(buf.is_empty());
    }

    #[test]
    fn blocks_hold_whole_lines_and_what_is_left_moves_to_the_next_buffer() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        let mut f = std::fs::File::create(&p).unwrap();
        // More than a chunk of lines, ending in an unterminated one.
        let mut content = Vec::new();
        for i in 0..40_000 {
            content.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        content.extend_from_slice(b"unterminated");
        f.write_all(&content).unwrap();
        let mut t = open_at(&p, 0);
        let mut got = Vec::new();
        let mut offset = 0;
        let mut blocks = 0;
        loop {
            match t.next_block(100).unwrap() {
                Next::Block { start, range } => {
                    assert_eq!(start, offset, "blocks follow each other");
                    offset += range.len() as u64;
                    let old = t.take_buf(vec![b'?'; 3]);
                    let block = &old[range];
                    assert!(block.ends_with(b"\n") && !block.is_empty());
                    got.extend_from_slice(block);
                    blocks += 1;
                }
                Next::Line => panic!("no line is too long"),
                Next::End => break,
            }
        }
        assert!(blocks >= 2, "{blocks}");
        assert_eq!(got, &content[..content.len() - 12]);
        // The unterminated line waits; once it ends, it is a block of its own.
        f.write_all(b" now\n").unwrap();
        t.check().unwrap();
        match t.next_block(100).unwrap() {
            Next::Block { start, range } => {
                assert_eq!(start, offset);
                assert_eq!(&t.buf[range], b"unterminated now\n");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(t.next_block(100).unwrap(), Next::End);
        // A line longer than the limit without its end yet: taken line by line.
        f.write_all(&[b'x'; 150]).unwrap();
        t.check().unwrap();
        assert_eq!(t.next_block(100).unwrap(), Next::Line);
        let l = t.next_line(100).unwrap().unwrap();
        assert!(l.cut && l.end.is_none());
        assert_eq!(
            t.next_block(100).unwrap(),
            Next::Line,
            "its rest is skipped line by line"
        );
        f.write_all(b"xx\nnext\n").unwrap();
        t.check().unwrap();
        // The rest of the long line is skipped; the next line comes as it is.
        let l = t.next_line(100).unwrap().unwrap();
        assert_eq!(t.bytes(&l.range), b"next");
    }

    #[test]
    fn a_file_at_its_end_holds_no_read_buffer() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(b"one\ntwo\nthr").unwrap();
        let mut t = open_at(&p, 0);
        assert_eq!(lines(&mut t, 100).len(), 2);
        assert!(t.buf.has_room(), "an unterminated line waits in the buffer");
        f.write_all(b"ee\n").unwrap();
        assert_eq!(lines(&mut t, 100).len(), 1);
        assert!(!t.buf.has_room(), "read to the end, nothing left over");
        f.write_all(b"four\n").unwrap();
        assert_eq!(lines(&mut t, 100), [("four".into(), Some(19), false)]);
    }

    #[test]
    fn a_fingerprint_that_grows_must_be_saved_before_more_is_shipped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        std::fs::write(&p, "").unwrap();
        let mut t = open_at(&p, 0);
        t.anchors_saved = true;
        assert_eq!(t.check().unwrap(), Change::Same);
        assert!(t.anchors_saved, "nothing new to fingerprint");
        std::fs::write(&p, "first line\n").unwrap();
        assert_eq!(t.check().unwrap(), Change::Same);
        assert_eq!(t.fp.len(), 11);
        assert!(
            !t.anchors_saved,
            "the positions file still has the empty fingerprint"
        );
    }
}
