//! File identity and rotation, as one state machine without I/O: it is told what the
//! driver ([`crate::files`]) saw (the files at the followed paths and beside them, with
//! device, inode, size, time and first bytes; a followed file's size and first bytes at
//! a check; a restart from the positions file) and decides which files to follow, from
//! which offset, what a shrunk file means, and what goes into the positions file. The
//! driver opens, reads and closes; the agent pushes and acknowledges.
//!
//! Files are known by identity (device, inode, first bytes), never by path alone:
//! - a file renamed by rotation (`app.log` → `app.log.1`) keeps its place and is read
//!   to its end before its successor;
//! - a deleted file is drained through the open handle (Docker with max-file=1);
//! - a copytruncate copy is a rotated sibling whose first bytes are those of a followed
//!   file: it is never read on its own account, half made or whole; when the followed
//!   file is seen truncated, the copy is read from where the original was, and the
//!   original again from 0;
//! - a reused inode with other first bytes is a new file, not the old one.
//!
//! Rotated siblings are the files beside a followed one whose name continues it with
//! `.` or `-` (`app.log.1`, `app.log-20260101`), compressed ones excepted (the driver
//! leaves those out). They are read only as a followed file renamed, as the copy of a
//! truncated one, or when they changed since the last look and hold content never seen
//! (a rotation the driver did not see happen: two in a row between looks, or while
//! log-tail-ship was down).
//!
//! Every line of a file and of its rotated siblings carries one `filename` label: the
//! followed path (the `label` of a [`Seen`]), so a copy, a renamed file and a file found
//! again after a restart are the same stream, and a line sent again after a crash is
//! the same entry.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use crate::positions::{self, Entry};

pub use crate::positions::FINGERPRINT_MAX;

/// A file no longer in the watched set (or deleted) is closed after it has been at its
/// end this long: a writer may still append for a moment after a rename.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

#[cfg(test)]
#[path = "rotation_model.rs"]
mod model;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
}

/// A file's first bytes (at most [`FINGERPRINT_MAX`]): what tells contents apart.
#[derive(Clone, PartialEq, Eq)]
pub struct Fingerprint {
    len: u16,
    bytes: [u8; FINGERPRINT_MAX],
}

impl Default for Fingerprint {
    fn default() -> Fingerprint {
        Fingerprint {
            len: 0,
            bytes: [0; FINGERPRINT_MAX],
        }
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({:?})", String::from_utf8_lossy(self.bytes()))
    }
}

impl Fingerprint {
    /// The fingerprint of content starting with `first` (only its first
    /// [`FINGERPRINT_MAX`] bytes count).
    pub fn new(first: &[u8]) -> Fingerprint {
        let n = first.len().min(FINGERPRINT_MAX);
        let mut f = Fingerprint {
            len: n as u16,
            ..Fingerprint::default()
        };
        f.bytes[..n].copy_from_slice(&first[..n]);
        f
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    pub fn len(&self) -> u32 {
        u32::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn crc(&self) -> u32 {
        crc32fast::hash(self.bytes())
    }

    /// Whether this content begins with all of `other`'s bytes.
    pub fn starts_with(&self, other: &Fingerprint) -> bool {
        self.bytes().starts_with(other.bytes())
    }

    /// Whether one of the two is the beginning of the other (a copy being made).
    pub fn agrees(&self, other: &Fingerprint) -> bool {
        self.starts_with(other) || other.starts_with(self)
    }

    /// Whether this content begins with the bytes a positions file entry knew.
    fn matches_saved(&self, e: &Entry) -> bool {
        let n = e.fingerprint_bytes as usize;
        n <= self.bytes().len() && crc32fast::hash(&self.bytes()[..n]) == e.fingerprint_crc32
    }
}

/// A file at a followed path or beside one, as the driver found it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The driver's own reference (where to open it, how to read it).
    pub tag: usize,
    /// The path as the system sees it.
    pub display: String,
    /// The followed path it belongs to (itself, or the one it is a rotated sibling of):
    /// the `filename` label.
    pub label: String,
    /// At a followed path (not a rotated name).
    pub live: bool,
    pub id: Identity,
    pub size: u64,
    pub mtime: SystemTime,
    /// Its first bytes, when the driver read them (see [`Rotation::wants_fingerprint`]).
    pub fp: Option<Fingerprint>,
}

/// One followed file: identity, where it is, and the offsets that matter.
#[derive(Debug, Clone)]
pub struct Track {
    pub id: Identity,
    /// The first bytes of the content being read (grows with the file up to the max).
    pub fp: Fingerprint,
    /// Where it was last seen.
    pub display: String,
    /// Its `filename` label (see [`Seen::label`]).
    pub label: String,
    pub live: bool,
    /// Has been at a followed path: a writer may copytruncate it (rotated files are
    /// never copied but by compression, which makes another name).
    pub was_live: bool,
    /// Lines are stamped from anchors (plain files; Docker's carry their own time).
    pub anchored: bool,
    /// Size at the last check.
    pub size: u64,
    /// Every line before it has been handed to the pipeline (or dropped there).
    pub processed: u64,
    /// Every line before it has been acknowledged by the sink.
    pub acked: u64,
    /// Timestamp anchors (see positions.rs), and whether the positions file has the
    /// newest of them and the current fingerprint.
    pub anchors: Vec<(u64, u64)>,
    pub anchors_saved: bool,
    /// Lines before this offset may have been sent before a restart: their anchors
    /// must not change (the file size when it was found again at start).
    pub safe: u64,
    /// No longer in the watched set, or deleted: drained to its end, then closed.
    pub gone_since: Option<Instant>,
}

impl AsRef<Track> for Track {
    fn as_ref(&self) -> &Track {
        self
    }
}

impl AsMut<Track> for Track {
    fn as_mut(&mut self) -> &mut Track {
        self
    }
}

impl Track {
    fn from_seen(s: &Seen, fp: Fingerprint, offset: u64) -> Track {
        Track {
            id: s.id,
            fp,
            display: s.display.clone(),
            label: s.label.clone(),
            live: s.live,
            was_live: s.live,
            anchored: true,
            size: s.size,
            processed: offset,
            acked: offset,
            anchors: Vec::new(),
            anchors_saved: false,
            safe: 0,
            gone_since: None,
        }
    }

    /// Bytes in the file after the acknowledged offset.
    pub fn lag(&self) -> u64 {
        self.size.saturating_sub(self.acked)
    }

    /// Whether it can be closed: gone long enough, read to its end (`drained`, the
    /// reader says) and acknowledged.
    pub fn closable(&self, now: Instant, drained: bool) -> bool {
        self.gone_since
            .is_some_and(|g| now.saturating_duration_since(g) >= CLOSE_GRACE)
            && drained
            && self.processed == self.acked
    }
}

/// What a check of a followed file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing new or more data: read on.
    Same,
    /// Shorter than what was read, or its first bytes changed: copytruncate or a
    /// rewrite. The caller calls [`Rotation::truncated`] before anything more is read
    /// from it, or a look for files made.
    Truncated,
}

/// A file to open: the driver's `tag`, the track to follow it with, from
/// `track.processed`.
#[derive(Debug, Clone)]
pub struct Open {
    pub tag: usize,
    pub track: Track,
}

/// What a followed file held when it was found truncated with no copy in sight: the
/// copy is followed from where the file was if a later look finds it.
///
/// A look for the copy made while the next rotation renames the numbered copies
/// (`.1` → `.2`) can miss it: a directory listed during a rename may show the file
/// under neither name. On a machine slow enough that the truncation is found that late,
/// the copy was then taken for a new file at the next look and read from 0 (what had
/// been read shipped twice), or, not changed since the last look, never read (what
/// had not been read lost).
///
/// It is kept in the positions file too, as an entry with `dev` and `ino` 0 (no file
/// has inode 0) found again by its first bytes: a crash before the copy is found must
/// not lose it, or read it again from 0.
#[derive(Debug, Clone)]
struct Awaited {
    /// Where the truncated file was seen.
    display: String,
    label: String,
    /// The first bytes of the content copied away.
    fp: Fingerprint,
    processed: u64,
    acked: u64,
    anchored: bool,
    anchors: Vec<(u64, u64)>,
    /// When the truncation was found.
    since: Instant,
}

/// Copies awaited at most (the oldest is given up first), and for how long: a
/// truncation with no copy at all (`> app.log`) leaves one that is never found. A copy
/// missed is found by the next look for files, which the rotation's own renames ask for.
const AWAITED_MAX: usize = 8;
const AWAITED_FOR: Duration = Duration::from_secs(120);

/// The decisions that span files and time: what the positions file knew, and since
/// when files were looked at.
#[derive(Debug)]
pub struct Rotation {
    /// Entries of the positions file not found again yet.
    restored: Vec<Entry>,
    /// Paths the positions file knew: a different file there now is a successor.
    known_paths: HashSet<String>,
    had_positions: bool,
    from_beginning: bool,
    started: bool,
    /// Unknown rotated siblings changed after this hold content never seen: a second
    /// before the last look began (or, at start, the positions file's time).
    new_since: Option<SystemTime>,
    /// Truncated files whose copy was not found yet (see [`Awaited`]).
    awaited: Vec<Awaited>,
    /// Warnings for stderr, taken by the caller.
    pub notes: Vec<String>,
}

impl Rotation {
    pub fn new(restored: Option<(Vec<Entry>, SystemTime)>, from_beginning: bool) -> Rotation {
        let had_positions = restored.is_some();
        let (restored, new_since) = match restored {
            Some((e, t)) => (e, Some(t)),
            None => (Vec::new(), None),
        };
        Rotation {
            known_paths: restored.iter().map(|e| e.path.clone()).collect(),
            restored,
            had_positions,
            from_beginning,
            started: false,
            new_since,
            awaited: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The time to save in the positions file: files changed since then may be
    /// unknown to the entries, and are looked at after a restart.
    ///
    /// Not the time of saving: a copytruncate copy made after the last look but before
    /// the positions are written holds lines never read, and is only found because it
    /// changed after this time.
    pub fn seen_until(&self, now: SystemTime) -> SystemTime {
        self.new_since.unwrap_or(now)
    }

    /// Whether the next look is the first since a restart that found a positions file
    /// with files in it: the one that gives up those it does not find.
    pub fn restoring(&self) -> bool {
        !self.started && !self.restored.is_empty()
    }

    /// Whether a file the positions file knew by inode is not among `found`.
    pub fn restored_missing(&self, found: &HashSet<Identity>) -> bool {
        self.restored.iter().any(|e| {
            e.ino != 0
                && !found.contains(&Identity {
                    dev: e.dev,
                    ino: e.ino,
                })
        })
    }

    /// Whether the first bytes of `s`, a file not followed, are needed to decide about
    /// it (reading them costs an open and a read).
    pub fn wants_fingerprint(&self, s: &Seen) -> bool {
        s.live
            || !self.restored.is_empty()
            || !self.awaited.is_empty()
            || self.new_since.is_none_or(|t| s.mtime > t)
    }

    /// A look at the files: `seen` holds every file at a followed path or beside one
    /// (`scan_start`: when the look began). Updates the tracks (renamed, gone) and
    /// returns the files to open.
    ///
    /// `whole`: the files did not move while the driver looked. A look made while a
    /// rotation renames files may have missed some, so it does not move the time after
    /// which an unknown file holds content never seen: the next look considers them
    /// again. Otherwise a file missed, unchanged for a second before the look, would
    /// never be read.
    pub fn scan<T: AsRef<Track> + AsMut<Track>>(
        &mut self,
        tracks: &mut [T],
        seen: Vec<Seen>,
        now: Instant,
        scan_start: SystemTime,
        whole: bool,
    ) -> Vec<Open> {
        let by_id: HashMap<Identity, usize> = tracks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_ref().id, i))
            .collect();
        let mut was_seen = vec![false; tracks.len()];
        let mut unknown = Vec::new();
        let mut replaced = HashSet::new();
        let mut opens: Vec<Open> = Vec::new();
        // Pass 1: files known by identity.
        for c in seen {
            if let Some(&i) = by_id.get(&c.id) {
                let t = tracks[i].as_mut();
                if c.live || !was_seen[i] {
                    t.display = c.display;
                    t.live = c.live;
                    t.was_live |= c.live;
                }
                was_seen[i] = true;
                continue;
            }
            if let Some(k) = self
                .restored
                .iter()
                .position(|e| e.dev == c.id.dev && e.ino == c.id.ino)
            {
                let e = &self.restored[k];
                match &c.fp {
                    Some(fp) if fp.matches_saved(e) && e.offset <= c.size => {
                        let e = self.restored.remove(k);
                        opens.push(Open {
                            tag: c.tag,
                            track: resumed(&c, fp.clone(), e),
                        });
                        continue;
                    }
                    // Same inode, other content: rewritten, or the inode reused.
                    Some(_) => {
                        replaced.insert(c.id);
                    }
                    None => {}
                }
            }
            unknown.push(c);
        }
        // Pass 2: copies of files whose content moved (copytruncate while we were
        // away), copies being made or waiting for their original's truncation, then
        // new files.
        for c in unknown {
            let Some(fp) = c.fp.clone() else {
                continue; // not readable, or nothing new: looked at again next time
            };
            if let Some(k) = self
                .restored
                .iter()
                .position(|e| e.fingerprint_bytes > 0 && fp.matches_saved(e))
            {
                let e = self.restored.remove(k);
                opens.push(Open {
                    tag: c.tag,
                    track: resumed(&c, fp, e),
                });
                continue;
            }
            let copy_of_followed = tracks
                .iter()
                .map(|t| t.as_ref())
                .chain(opens.iter().map(|o| &o.track))
                .any(|t| t.was_live && !t.fp.is_empty() && fp.agrees(&t.fp));
            if !c.live && copy_of_followed {
                continue; // adopted when the original's truncation is seen
            }
            if !c.live {
                // The copy of a file found truncated, missed then: followed from where
                // the file was (the most specific, if several could be it).
                let of = |a: &Awaited| a.label == c.label && !a.fp.is_empty();
                let best = (0..self.awaited.len())
                    .filter(|&k| of(&self.awaited[k]) && fp.starts_with(&self.awaited[k].fp))
                    .max_by_key(|&k| (self.awaited[k].fp.len(), k));
                if let Some(k) = best {
                    let a = self.awaited.remove(k);
                    let track = copy_track(&c, fp, a.processed, a.acked, &a.label, a.anchored, a.anchors);
                    opens.push(Open { tag: c.tag, track });
                    continue;
                }
                // Shorter than the first bytes known: being made.
                if self.awaited.iter().any(|a| of(a) && a.fp.starts_with(&fp)) {
                    continue;
                }
            }
            let changed_since = self.new_since.is_some_and(|t| c.mtime > t);
            let start_at_end = if c.live {
                if !self.started {
                    let successor = replaced.contains(&c.id)
                        || (self.had_positions && (self.known_paths.contains(&c.display) || changed_since));
                    !(successor || self.from_beginning)
                } else {
                    false
                }
            } else if replaced.contains(&c.id) || changed_since {
                false
            } else {
                continue;
            };
            let offset = if start_at_end { c.size } else { 0 };
            opens.push(Open {
                tag: c.tag,
                track: Track::from_seen(&c, fp, offset),
            });
        }
        self.awaited
            .retain(|a| now.saturating_duration_since(a.since) < AWAITED_FOR);
        if !self.started {
            for e in self.restored.drain(..) {
                if e.ino == 0 {
                    self.notes.push(format!(
                        "{} was truncated and no copy of what it held was found again; \
                         if there was one, it was rotated away while log-tail-ship was not running, \
                         and what it held after byte {} could not be read",
                        e.path, e.offset
                    ));
                    continue;
                }
                self.notes.push(format!(
                    "{} (inode {}) was rotated away or deleted while log-tail-ship was not running; \
                     what it held after byte {} could not be read",
                    e.path, e.ino, e.offset
                ));
            }
        }
        for (i, was) in was_seen.into_iter().enumerate() {
            let t = tracks[i].as_mut();
            if was {
                t.gone_since = None;
            } else if t.gone_since.is_none() {
                t.live = false;
                t.gone_since = Some(now);
            }
        }
        self.started = true;
        if whole || self.new_since.is_none() {
            self.new_since = Some(scan_start - Duration::from_secs(1));
        }
        opens
    }

    /// A look at followed file `t`: its size now, its first bytes now (as many as it
    /// has, up to the max), where reading got to, and whether a read saw its first
    /// bytes change. Extends a short fingerprint as the file grows.
    pub fn check(t: &mut Track, size: u64, fp_now: &Fingerprint, read_pos: u64, rewritten: bool) -> Change {
        t.size = size;
        // The fingerprint is compared even when the size did not change: a file
        // truncated and written again up to exactly the read offset is another file.
        if rewritten || size < read_pos || !fp_now.starts_with(&t.fp) {
            return Change::Truncated;
        }
        if fp_now.len() > t.fp.len() {
            t.fp = fp_now.clone();
            // The positions file must know the content by this fingerprint before
            // lines stamped from its anchors are shipped: with the shorter (say empty)
            // one, a restart after a copytruncate could not tell the copy is this
            // file, and would read it again under new timestamps.
            t.anchors_saved = false;
        }
        Change::Same
    }

    /// Track `i` was found truncated (copytruncate). `seen` is every file at a
    /// followed path or beside one, with the first bytes of those not followed.
    /// `fp_now` and `size` are its content now.
    ///
    /// If a file not followed starts with the old first bytes, that is the copy: it is
    /// returned, to be followed from there, and `i` starts again at 0. Lines read and
    /// not acknowledged yet stay so: the copy takes them over (acknowledged when the
    /// sink accepts them, as any other), so the caller need not push first. The copy is looked for among all the siblings, not only under the name
    /// beside `i`'s: while reading was paused (a push retried), `i` may have been
    /// renamed by the next rotation, which also shifted the copy.
    ///
    /// Without a copy, a file that still starts with whole lines it had (cut at a line,
    /// `truncate -s`, perhaps written again since) goes on after them (what was cut and
    /// not read is gone); any other starts again at 0.
    ///
    /// Without a copy, a file whose content was replaced leaves what it held awaited
    /// (see [`Awaited`]): a later look that finds the copy follows it from there.
    pub fn truncated<T: AsRef<Track> + AsMut<Track>>(
        &mut self,
        tracks: &mut [T],
        i: usize,
        seen: &[Seen],
        fp_now: Fingerprint,
        size: u64,
        now: Instant,
    ) -> Option<Open> {
        let followed: HashSet<Identity> = tracks.iter().map(|t| t.as_ref().id).collect();
        let t = tracks[i].as_mut();
        let mut copy = None;
        if !t.fp.is_empty() {
            // The newest such file: with `copy` and `copytruncate` mixed, older copies
            // of the same start may remain; the last one made is this truncation's.
            copy = seen
                .iter()
                .filter(|c| !followed.contains(&c.id))
                .filter(|c| c.fp.as_ref().is_some_and(|f| f.starts_with(&t.fp)))
                .max_by_key(|c| c.mtime)
                .map(|c| {
                    let fp = c.fp.clone().unwrap_or_default();
                    let anchors = std::mem::take(&mut t.anchors);
                    let mut track = copy_track(c, fp, t.processed, t.acked, &t.label, t.anchored, anchors);
                    track.anchors_saved = t.anchors_saved;
                    Open { tag: c.tag, track }
                });
        }
        let kept = if copy.is_some() {
            0
        } else if fp_now.starts_with(&t.fp) && !fp_now.is_empty() {
            size
        } else {
            kept_lines(&t.fp, &fp_now)
        };
        if copy.is_none() && kept == 0 && t.was_live && !t.fp.is_empty() {
            if self.awaited.len() >= AWAITED_MAX {
                self.awaited.remove(0);
            }
            self.awaited.push(Awaited {
                display: t.display.clone(),
                label: t.label.clone(),
                fp: t.fp.clone(),
                processed: t.processed,
                acked: t.acked,
                anchored: t.anchored,
                anchors: t.anchors.clone(),
                since: now,
            });
        }
        t.processed = t.processed.min(kept);
        t.acked = t.acked.min(kept);
        t.safe = if kept == 0 { 0 } else { t.safe.min(kept) };
        t.size = size;
        t.fp = fp_now;
        // The lines kept keep their anchors (sent again after a crash, they must carry
        // the same stamps); the ones after them were cut (or copied away).
        t.anchors.retain(|(o, _)| *o < kept);
        t.anchors_saved = false;
        copy
    }

    /// What to write to the positions file, setting new timestamp anchors where lines
    /// went on (`now_ns`; an anchor older than `stale_ns` is renewed): every followed
    /// file's acknowledged offset, identity and anchors.
    pub fn save<T: AsRef<Track> + AsMut<Track>>(tracks: &mut [T], now_ns: u64, stale_ns: u64) -> Vec<Entry> {
        for t in tracks.iter_mut() {
            let t = t.as_mut();
            if !t.anchored {
                continue;
            }
            match t.anchors.last().copied() {
                None => t.anchors.push((t.processed, now_ns)),
                Some((o, ns)) if t.processed >= t.safe && now_ns.saturating_sub(ns) >= stale_ns => {
                    if o == t.processed {
                        t.anchors.pop();
                    }
                    t.anchors.push((t.processed, now_ns));
                }
                Some((o, _)) if t.processed >= t.safe && o < t.processed => {
                    t.anchors.push((t.processed, now_ns));
                }
                _ => {}
            }
            positions::prune(&mut t.anchors, t.acked);
        }
        tracks
            .iter_mut()
            .map(|t| {
                let t = t.as_mut();
                t.anchors_saved = true;
                Entry {
                    path: t.display.clone(),
                    dev: t.id.dev,
                    ino: t.id.ino,
                    fingerprint_bytes: t.fp.len(),
                    fingerprint_crc32: t.fp.crc(),
                    offset: t.acked,
                    anchors: t.anchors.clone(),
                }
            })
            .collect()
    }

    /// The sink accepted every line read: those read from a truncated file whose copy
    /// is awaited too. Otherwise a crash before the copy is found would send them
    /// again, though accepted. Whether any offset moved.
    pub fn ack_awaited(&mut self) -> bool {
        let mut moved = false;
        for a in &mut self.awaited {
            moved |= a.acked != a.processed;
            a.acked = a.processed;
        }
        moved
    }

    /// The positions file's entries for the copies awaited (see [`Awaited`]), to write
    /// with those [`Rotation::save`] returns.
    pub fn save_awaited(&self) -> Vec<Entry> {
        self.awaited
            .iter()
            .map(|a| {
                let mut anchors = a.anchors.clone();
                positions::prune(&mut anchors, a.acked);
                Entry {
                    path: a.display.clone(),
                    dev: 0,
                    ino: 0,
                    fingerprint_bytes: a.fp.len(),
                    fingerprint_crc32: a.fp.crc(),
                    offset: a.acked,
                    anchors,
                }
            })
            .collect()
    }

    /// The order to read in: rotated and gone files first, oldest first (`mtime` per
    /// track), so a file is read to its end before its successor.
    pub fn read_order<T: AsRef<Track>>(tracks: &[T], mtime: impl Fn(usize) -> SystemTime) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..tracks.len()).collect();
        idx.sort_by_cached_key(|&i| (tracks[i].as_ref().live, mtime(i)));
        idx
    }
}

/// The track of `c`, the copy of a followed file truncated (labelled `label`, with its
/// timestamp anchors), from where that file was.
fn copy_track(
    c: &Seen,
    fp: Fingerprint,
    processed: u64,
    acked: u64,
    label: &str,
    anchored: bool,
    anchors: Vec<(u64, u64)>,
) -> Track {
    // Shorter than what was read when the writer went on between the copy and the
    // truncation (copytruncate's own race): nothing of it is left to read, but it is
    // followed, not taken for new.
    let at = processed.min(c.size);
    let mut track = Track::from_seen(c, fp, at);
    track.acked = acked.min(at);
    track.label = label.to_string();
    track.live = false;
    track.anchored = anchored;
    track.anchors = anchors;
    track.anchors_saved = false;
    track.safe = c.size;
    track
}

/// How many bytes of whole lines two contents start with alike.
fn kept_lines(a: &Fingerprint, b: &Fingerprint) -> u64 {
    let same = a
        .bytes()
        .iter()
        .zip(b.bytes())
        .take_while(|(x, y)| x == y)
        .count();
    a.bytes()[..same]
        .iter()
        .rposition(|c| *c == b'\n')
        .map_or(0, |p| p as u64 + 1)
}

/// A file the positions file knew, found again (by inode or as a copy): from its
/// acknowledged offset, with its anchors.
fn resumed(c: &Seen, fp: Fingerprint, mut e: Entry) -> Track {
    // A copy shorter than what was acknowledged (copytruncate's race): from its end.
    e.offset = e.offset.min(c.size);
    // Grown since: the positions file must learn the longer fingerprint before more
    // is shipped (see [`Rotation::check`]).
    let saved = fp.len() == e.fingerprint_bytes;
    let mut t = Track::from_seen(c, fp, e.offset);
    t.anchors = e.anchors;
    t.anchors_saved = saved;
    t.safe = c.size;
    t
}
