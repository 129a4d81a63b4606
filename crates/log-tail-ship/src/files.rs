//! Which files are followed, and from where: the `--file` globs and Docker's log
//! paths, their rotated siblings, and the positions of the last run.
//!
//! Files are known by identity (device, inode, fingerprint of the first bytes), never
//! by path alone, so:
//! - a file renamed by rotation (`app.log` → `app.log.1`) keeps its place and is read
//!   to its end before its successor (tails of rotated files are read first);
//! - a deleted file is drained through the open handle (Docker with max-file=1);
//! - a copytruncate copy is found by the old fingerprint and read from where the
//!   original was when it was truncated, and the original restarts at 0;
//! - a reused inode with other first bytes is a new file, not the old one.
//!
//! Rotated siblings are the files next to a followed one whose name continues it with
//! `.` or `-` (`app.log.1`, `app.log-20260101`, `<id>-json.log.1`), compressed ones
//! excepted. They are never read on their own account: only when they are a followed
//! file renamed, a copy of a truncated one, or (after a restart) written since the
//! positions were saved, i.e. a successor rotated away while log-tail-ship was down.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use homelab_core::Root;

use crate::positions::Entry;
use crate::tail::{Fingerprint, Format, Identity, Tail};

/// A file no longer in the watched set (or deleted) is closed after it has been at its
/// end this long: a writer may still append for a moment after a rename.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

const COMPRESSED: &[&str] = &[".gz", ".xz", ".bz2", ".zst", ".lz4", ".zip", ".Z"];

#[derive(Debug)]
struct Candidate {
    path: PathBuf,
    display: String,
    format: Format,
    live: bool,
    id: Identity,
    mtime: SystemTime,
}

#[derive(Debug)]
pub struct Files {
    root: Root,
    /// The `--file` patterns as real paths (under --root, or in the working directory:
    /// see [`crate::file_pattern`]).
    globs: Vec<String>,
    /// Docker log paths (real path → container id), set by the Docker source.
    docker: HashMap<PathBuf, String>,
    pub tails: Vec<Tail>,
    /// Entries of the positions file not found again yet.
    restored: Vec<Entry>,
    /// Paths the positions file knew: a different file there now is a successor.
    known_paths: HashSet<String>,
    had_positions: bool,
    from_beginning: bool,
    started: bool,
    /// Unknown rotated siblings changed after this are successors, read from 0: a
    /// second before the last scan began (or, at start, the positions file's time).
    new_since: Option<SystemTime>,
    /// Warnings for stderr, taken by the caller.
    pub notes: Vec<String>,
    /// Files the last scan found but could not open (permission denied, descriptors
    /// exhausted), with why: errors in the summary and the metrics.
    pub unopened: Vec<(String, std::io::Error)>,
}

impl Files {
    pub fn new(
        root: Root,
        globs: Vec<String>,
        restored: Option<(Vec<Entry>, SystemTime)>,
        from_beginning: bool,
    ) -> Files {
        let had_positions = restored.is_some();
        let (restored, new_since) = match restored {
            Some((e, t)) => (e, Some(t)),
            None => (Vec::new(), None),
        };
        Files {
            root,
            globs,
            docker: HashMap::new(),
            tails: Vec::new(),
            known_paths: restored.iter().map(|e| e.path.clone()).collect(),
            restored,
            had_positions,
            from_beginning,
            started: false,
            new_since,
            notes: Vec::new(),
            unopened: Vec::new(),
        }
    }

    /// The time to save in the positions file: files changed since then may be
    /// unknown to [`Files::entries`], and are looked at after a restart.
    ///
    /// Not the time of saving: a copytruncate copy made after the last scan but before
    /// the positions are written (the scan waits while files are caught up with) holds
    /// lines never read, and is only found because it changed after this time. Its
    /// original (opened empty, so with no fingerprint to find the copy by) resumes at
    /// its new content.
    pub fn seen_until(&self) -> SystemTime {
        self.new_since.unwrap_or_else(SystemTime::now)
    }

    pub fn set_docker(&mut self, paths: HashMap<PathBuf, String>) {
        self.docker = paths;
    }

    /// Directories to watch: those of the followed files and of the globs.
    pub fn dirs(&self) -> HashSet<PathBuf> {
        let mut d: HashSet<PathBuf> = self
            .tails
            .iter()
            .filter_map(|t| t.path.parent().map(Path::to_path_buf))
            .collect();
        for g in &self.globs {
            let real = PathBuf::from(g);
            let mut lit = PathBuf::new();
            for c in real.components() {
                if c.as_os_str().to_string_lossy().contains(['*', '?', '[']) {
                    break;
                }
                lit.push(c);
            }
            if lit == real {
                lit.pop();
            }
            d.insert(lit);
        }
        for p in self.docker.keys() {
            if let Some(parent) = p.parent() {
                d.insert(parent.to_path_buf());
            }
        }
        d
    }

    fn live_paths(&self) -> Vec<(PathBuf, Format)> {
        let mut out = Vec::new();
        for g in &self.globs {
            let real = PathBuf::from(g);
            match glob::glob(&real.to_string_lossy()) {
                Ok(paths) => out.extend(paths.filter_map(Result::ok).map(|p| (p, Format::Plain))),
                Err(_) => out.push((real, Format::Plain)),
            }
        }
        for (p, c) in &self.docker {
            out.push((p.clone(), Format::Docker { container: c.clone() }));
        }
        out
    }

    /// Rotated siblings of `path`: same directory, name continued by `.` or `-`.
    fn siblings(path: &Path) -> Vec<PathBuf> {
        let (Some(dir), Some(base)) = (path.parent(), path.file_name()) else {
            return Vec::new();
        };
        let base = base.to_string_lossy().into_owned();
        let Ok(rd) = fs::read_dir(dir) else {
            return Vec::new();
        };
        rd.filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                let rest = n.strip_prefix(&base)?;
                let ok = (rest.starts_with('.') || rest.starts_with('-'))
                    && !COMPRESSED.iter().any(|c| n.ends_with(c));
                ok.then(|| e.path())
            })
            .collect()
    }

    fn candidates(&self) -> Vec<Candidate> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut add = |path: PathBuf, format: Format, live: bool, out: &mut Vec<Candidate>| {
            let Ok(md) = fs::metadata(&path) else { return };
            if !md.is_file() {
                return;
            }
            let id = Identity {
                dev: md.dev(),
                ino: md.ino(),
            };
            if !seen.insert(id) {
                return;
            }
            out.push(Candidate {
                display: self.root.display(&path),
                path,
                format,
                live,
                id,
                mtime: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        };
        let live = self.live_paths();
        for (p, f) in &live {
            add(p.clone(), f.clone(), true, &mut out);
        }
        for (p, f) in &live {
            for s in Files::siblings(p) {
                add(s, f.clone(), false, &mut out);
            }
        }
        out
    }

    /// Finds files that appeared, moved or went away; returns the indices of tails
    /// opened by this scan (the caller gives them labels and anchors).
    pub fn scan(&mut self) -> Vec<usize> {
        let scan_start = SystemTime::now();
        self.unopened.clear();
        let cands = self.candidates();
        let mut seen = vec![false; self.tails.len()];
        let mut unknown = Vec::new();
        let mut replaced = HashSet::new();
        let first = self.tails.len();
        // Pass 1: files known by identity.
        for c in cands {
            if let Some(i) = self.tails.iter().position(|t| t.id == c.id) {
                let t = &mut self.tails[i];
                if c.live || !seen[i] {
                    t.path = c.path;
                    t.display = c.display;
                    t.live = c.live;
                }
                seen[i] = true;
                continue;
            }
            if let Some(k) = self
                .restored
                .iter()
                .position(|e| e.dev == c.id.dev && e.ino == c.id.ino)
            {
                let e = &self.restored[k];
                match self.resume(&c, e) {
                    Some(t) => {
                        self.restored.remove(k);
                        self.tails.push(t);
                        continue;
                    }
                    None => {
                        // Same inode, other content: rewritten, or the inode reused.
                        replaced.insert(c.id);
                    }
                }
            }
            unknown.push(c);
        }
        // Pass 2: copies of files whose content moved (copytruncate while we were
        // away), then new files.
        for c in unknown {
            if let Some(t) = self.adopt_copy(&c) {
                self.tails.push(t);
                continue;
            }
            if !c.live && self.is_copy_of_followed(&c) {
                continue; // adopted when the original's truncation is seen
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
            match Tail::open(c.path.clone(), c.display.clone(), c.format.clone(), 0) {
                Ok(mut t) => {
                    if start_at_end {
                        let end = t.size;
                        t = Tail::open(c.path, c.display, c.format, end).unwrap_or(t);
                        t.safe = 0;
                    }
                    t.live = c.live;
                    self.tails.push(t);
                }
                Err(e) => {
                    self.notes.push(format!(
                        "cannot open {}: {}",
                        c.display,
                        homelab_core::exit::describe_io(&e)
                    ));
                    self.unopened.push((c.display.clone(), e));
                }
            }
        }
        if !self.started {
            for e in self.restored.drain(..) {
                self.notes.push(format!(
                    "{} (inode {}) was rotated away or deleted while log-tail-ship was not running; \
                     what it held after byte {} could not be read",
                    e.path, e.ino, e.offset
                ));
            }
        }
        for (i, was_seen) in seen.iter().enumerate() {
            let t = &mut self.tails[i];
            if *was_seen {
                if t.gone_since.is_some() && t.file.metadata().is_ok_and(|m| m.nlink() > 0) {
                    t.gone_since = None;
                }
            } else if t.gone_since.is_none() {
                t.live = false;
                t.gone_since = Some(Instant::now());
            }
        }
        self.started = true;
        self.new_since = Some(scan_start - Duration::from_secs(1));
        (first..self.tails.len()).collect()
    }

    /// A tail for a file the positions file knew, if it still holds the same bytes.
    fn resume(&self, c: &Candidate, e: &Entry) -> Option<Tail> {
        let mut t = Tail::open(c.path.clone(), c.display.clone(), c.format.clone(), 0).ok()?;
        let fp = Fingerprint::of(&t.file, e.fingerprint_bytes).ok()?;
        if fp.crc != e.fingerprint_crc32 || fp.len != e.fingerprint_bytes || e.offset > t.size {
            return None;
        }
        t = Tail::open(c.path.clone(), c.display.clone(), c.format.clone(), e.offset).ok()?;
        t.anchors = e.anchors.clone();
        t.anchors_saved = true;
        t.safe = t.size;
        t.live = c.live;
        Some(t)
    }

    /// A tail for `c` when it is the copy of a file the positions file knew whose
    /// inode is gone or holds other bytes now.
    fn adopt_copy(&mut self, c: &Candidate) -> Option<Tail> {
        let file = fs::File::open(&c.path).ok()?;
        let k = self.restored.iter().position(|e| {
            e.fingerprint_bytes > 0
                && Fingerprint::of(&file, e.fingerprint_bytes)
                    .is_ok_and(|fp| fp.len == e.fingerprint_bytes && fp.crc == e.fingerprint_crc32)
        })?;
        let e = self.restored.remove(k);
        let mut t = Tail::open(c.path.clone(), c.display.clone(), c.format.clone(), e.offset).ok()?;
        t.anchors = e.anchors;
        t.anchors_saved = true;
        t.safe = t.size;
        t.live = c.live;
        Some(t)
    }

    fn is_copy_of_followed(&self, c: &Candidate) -> bool {
        let Ok(file) = fs::File::open(&c.path) else {
            return false;
        };
        self.tails
            .iter()
            .any(|t| t.fp.len > 0 && Fingerprint::of(&file, t.fp.len).is_ok_and(|fp| fp == t.fp))
    }

    /// Tail `i` was truncated (copytruncate): every line it had read is acknowledged
    /// (the caller flushed first). Adopts the copy, if a file not followed yet holds
    /// the old bytes, from the same offset, and restarts `i` at 0. Returns the copy's
    /// index.
    ///
    /// The copy is looked for among all the watched files and their rotated siblings,
    /// not only beside `i`'s name: while reading was paused (a push retried), `i` may
    /// have been renamed by the next rotation, which also shifted the copy.
    pub fn truncated(&mut self, i: usize) -> std::io::Result<Option<usize>> {
        let (old_fp, offset) = {
            let t = &self.tails[i];
            (t.fp, t.processed)
        };
        let mut adopted = None;
        if old_fp.len > 0 {
            for c in self.candidates() {
                if self.tails.iter().any(|t| t.id == c.id) {
                    continue;
                }
                let Ok(file) = fs::File::open(&c.path) else {
                    continue;
                };
                if file.metadata().is_ok_and(|m| m.len() >= offset)
                    && Fingerprint::of(&file, old_fp.len).is_ok_and(|fp| fp == old_fp)
                {
                    let mut t = Tail::open(c.path, c.display, self.tails[i].format.clone(), offset)?;
                    t.anchors = self.tails[i].anchors.clone();
                    t.anchors_saved = self.tails[i].anchors_saved;
                    t.safe = t.size;
                    t.live = false;
                    t.streams = self.tails[i].streams.clone();
                    t.source = self.tails[i].source;
                    self.tails.push(t);
                    adopted = Some(self.tails.len() - 1);
                    break;
                }
            }
        }
        let t = &mut self.tails[i];
        t.restart()?;
        t.anchors.clear();
        t.anchors_saved = false;
        Ok(adopted)
    }

    /// Removes the tails that are gone, drained and acknowledged.
    pub fn reap(&mut self) -> usize {
        let before = self.tails.len();
        self.tails.retain(|t| {
            let done = t.gone_since.is_some_and(|g| g.elapsed() >= CLOSE_GRACE)
                && t.at_end()
                && t.drained()
                && t.processed == t.acked;
            !done
        });
        before - self.tails.len()
    }

    /// The order to read in: rotated and gone files first (oldest first), so a file
    /// is read to its end before its successor.
    pub fn read_order(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.tails.len()).collect();
        let mtime = |t: &Tail| {
            t.file
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH)
        };
        idx.sort_by_cached_key(|&i| (self.tails[i].live, mtime(&self.tails[i])));
        idx
    }

    /// The positions file's entries: every open file's acknowledged offset.
    pub fn entries(&self) -> Vec<Entry> {
        self.tails
            .iter()
            .map(|t| Entry {
                path: t.display.clone(),
                dev: t.id.dev,
                ino: t.id.ino,
                fingerprint_bytes: t.fp.len,
                fingerprint_crc32: t.fp.crc,
                offset: t.acked,
                anchors: t.anchors.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path, restored: Option<(Vec<Entry>, SystemTime)>) -> Files {
        Files::new(
            Root::new("/"),
            vec![format!("{}/app.log", dir.display())],
            restored,
            false,
        )
    }

    #[test]
    fn first_run_starts_at_the_end_and_new_files_at_zero() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("app.log"), "old\n").unwrap();
        let mut f = files(d.path(), None);
        assert_eq!(f.scan(), [0]);
        assert_eq!(f.tails[0].processed, 4);
        // Rotation by rename: the old one keeps its place, the new one starts at 0.
        fs::rename(d.path().join("app.log"), d.path().join("app.log.1")).unwrap();
        fs::write(d.path().join("app.log"), "new\n").unwrap();
        assert_eq!(f.scan(), [1]);
        assert!(!f.tails[0].live && f.tails[0].gone_since.is_none());
        assert_eq!(f.tails[0].display, format!("{}/app.log.1", d.path().display()));
        assert_eq!(f.tails[1].processed, 0);
        assert_eq!(f.read_order()[0], 0, "the rotated file is read first");
    }

    #[test]
    fn restart_resumes_by_identity_and_finds_rotated_and_copied_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        fs::write(&p, "line 1\nline 2\n").unwrap();
        let mut f = files(d.path(), None);
        f.scan();
        f.tails[0].acked = 7;
        let entries = f.entries();
        let saved = SystemTime::now() - Duration::from_secs(5);
        // Rotated by rename while down, and a successor written.
        fs::rename(&p, d.path().join("app.log.1")).unwrap();
        fs::write(&p, "line 3\n").unwrap();
        let mut f = files(d.path(), Some((entries.clone(), saved)));
        f.scan();
        let by_name = |f: &Files, n: &str| {
            f.tails
                .iter()
                .find(|t| t.display.ends_with(n))
                .map(|t| t.processed)
        };
        assert_eq!(by_name(&f, "app.log.1"), Some(7));
        assert_eq!(by_name(&f, "app.log"), Some(0));
        assert!(f.notes.is_empty(), "{:?}", f.notes);

        // copytruncate while down: the copy is found by fingerprint.
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        fs::write(&p, "line 1\nline 2\n").unwrap();
        let mut f = files(d.path(), None);
        f.scan();
        f.tails[0].acked = 7;
        let entries = f.entries();
        fs::copy(&p, d.path().join("app.log.1")).unwrap();
        fs::write(&p, "line 3\n").unwrap();
        let mut f = files(d.path(), Some((entries, saved)));
        f.scan();
        assert_eq!(by_name(&f, "app.log.1"), Some(7));
        assert_eq!(by_name(&f, "app.log"), Some(0));
    }

    #[test]
    fn copytruncate_while_running_adopts_the_copy_at_the_old_offset() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        fs::write(&p, "").unwrap();
        let mut f = files(d.path(), None);
        f.scan();
        fs::write(&p, "a\nb\nc\n").unwrap();
        f.tails[0].check().unwrap();
        let l = f.tails[0].next_line(100).unwrap().unwrap();
        f.tails[0].processed = l.end.unwrap();
        f.tails[0].acked = 2;
        fs::copy(&p, d.path().join("app.log.1")).unwrap();
        assert!(f.scan().is_empty(), "a copy is not read on its own");
        fs::write(&p, "").unwrap();
        assert_eq!(f.tails[0].check().unwrap(), crate::tail::Change::Truncated);
        let c = f.truncated(0).unwrap().unwrap();
        assert_eq!(f.tails[c].processed, 2);
        assert_eq!(f.tails[0].processed, 0);
    }

    #[test]
    fn a_copytruncated_file_renamed_before_the_truncation_is_seen_still_finds_its_copy() {
        // The fault test's other loss: reading paused for seconds (pushes retried),
        // the file was copytruncated, then renamed by the next rotation, which also
        // shifted the copy. The copy is no sibling of the renamed file's name.
        let d = tempfile::tempdir().unwrap();
        let (p, p1, p2) = (
            d.path().join("app.log"),
            d.path().join("app.log.1"),
            d.path().join("app.log.2"),
        );
        fs::write(&p, "").unwrap();
        let mut f = files(d.path(), None);
        f.scan();
        fs::write(&p, "a\nb\nc\n").unwrap();
        f.tails[0].check().unwrap();
        let mut got = Vec::new();
        read_lines(&mut f, 0, 1, &mut got);
        // copytruncate: the copy waits for the truncation to be seen.
        fs::copy(&p, &p1).unwrap();
        fs::write(&p, "d\n").unwrap();
        assert!(f.scan().is_empty(), "a copy is not read on its own");
        // The next rotation, by rename, before anything was read again.
        fs::rename(&p1, &p2).unwrap();
        fs::rename(&p, &p1).unwrap();
        fs::write(&p, "e\n").unwrap();
        assert_eq!(f.scan(), [1]);
        assert!(f.tails[0].display.ends_with("app.log.1"));
        assert_eq!(f.tails[0].check().unwrap(), crate::tail::Change::Truncated);
        let copy = f.truncated(0).unwrap().expect("the copy is adopted");
        assert!(f.tails[copy].display.ends_with("app.log.2"));
        for i in [copy, 0, 1] {
            read_lines(&mut f, i, usize::MAX, &mut got);
        }
        assert_eq!(got, ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn a_copy_made_after_the_last_scan_is_read_after_a_restart() {
        // The fault test's loss under load: a file opened empty (no fingerprint to find
        // its copy by) was filled and copytruncated while the agent caught up with other
        // files; the positions were written before the next scan, then the agent was
        // killed. The copy is older than the positions file, yet never seen.
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        fs::write(&p, "").unwrap();
        let mut f = files(d.path(), None);
        f.scan();
        assert_eq!(f.tails[0].fp.len, 0);
        fs::write(&p, "a\nb\n").unwrap();
        fs::copy(&p, d.path().join("app.log.1")).unwrap();
        fs::write(&p, "c\n").unwrap();
        // What the agent saves: the entries, and the time of the last scan.
        let (entries, saved) = (f.entries(), f.seen_until());
        let mut f = files(d.path(), Some((entries, saved)));
        f.scan();
        let mut got = Vec::new();
        for i in f.read_order() {
            read_lines(&mut f, i, usize::MAX, &mut got);
        }
        assert_eq!(got, ["a", "b", "c"]);
    }

    /// Reads up to `n` lines of tail `i` as the agent does (processed moves with
    /// each line).
    fn read_lines(f: &mut Files, i: usize, n: usize, out: &mut Vec<String>) {
        let t = &mut f.tails[i];
        for _ in 0..n {
            let Some(l) = t.next_line(1 << 20).unwrap() else {
                return;
            };
            out.push(String::from_utf8_lossy(t.bytes(&l.range)).into_owned());
            t.processed = l.end.unwrap();
        }
    }

    #[test]
    fn copytruncate_between_the_check_and_the_read_loses_nothing() {
        // The fault test's loss: the agent looked at the file, then a push was retried
        // for seconds; meanwhile the file was copied, truncated and written past the
        // read offset. Reading on at that offset took the new lines for the rest of the
        // old ones, and the copy was then adopted from far beyond the last old line.
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        fs::write(&p, "").unwrap();
        let mut f = files(d.path(), None);
        f.scan();
        let old: Vec<String> = (0..20_000).map(|n| format!("{n:07} old generation")).collect();
        let mut new: Vec<String> = (0..9_000).map(|n| format!("{n:07} new generation")).collect();
        let text = |l: &[String]| l.iter().map(|s| format!("{s}\n")).collect::<String>();
        fs::write(&p, text(&old)).unwrap();
        assert_eq!(f.tails[0].check().unwrap(), crate::tail::Change::Same);
        let mut got = Vec::new();
        read_lines(&mut f, 0, 10, &mut got);
        assert_eq!(got.len(), 10);
        // copytruncate, and the writer goes on past the old read offset.
        fs::copy(&p, d.path().join("app.log.1")).unwrap();
        fs::write(&p, text(&new)).unwrap();
        read_lines(&mut f, 0, usize::MAX, &mut got);
        new.push("9000000 new generation".into());
        fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .and_then(|mut w| std::io::Write::write_all(&mut w, b"9000000 new generation\n"))
            .unwrap();
        assert_eq!(f.tails[0].check().unwrap(), crate::tail::Change::Truncated);
        let copy = f.truncated(0).unwrap().expect("the copy is adopted");
        read_lines(&mut f, copy, usize::MAX, &mut got);
        read_lines(&mut f, 0, usize::MAX, &mut got);
        let (got_old, got_new): (Vec<String>, Vec<String>) =
            got.into_iter().partition(|l| l.ends_with("old generation"));
        assert_eq!(got_old, old, "every old line once, in order");
        assert_eq!(got_new, new, "every new line once, read from the restarted file");
    }
}
