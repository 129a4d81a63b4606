//! Which files are followed, and from where: the I/O half of [`crate::rotation`]. It
//! lists the `--file` globs' matches and Docker's log paths, and their rotated
//! siblings (reading each directory once per look), reads the first bytes of files
//! not followed yet, and opens, restarts and closes what the state machine decides.
//!
//! A glob match that continues another match's name with `.` or `-` (`app.log.1`
//! beside `app.log`, as `--file '/var/log/app/*.log*'` matches them) is that file's
//! rotated sibling, not a file of its own: each line is shipped once, under the
//! followed file's name; compressed siblings (`.gz`, ...) are never read.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use homelab_core::Root;

use crate::positions::Entry;
pub use crate::rotation::CLOSE_GRACE;
use crate::rotation::{Change, Identity, Open, Rotation, Seen};
use crate::tail::{Format, Tail, read_fingerprint};

const COMPRESSED: &[&str] = &[".gz", ".xz", ".bz2", ".zst", ".lz4", ".zip", ".Z"];

/// How often a look is taken again while files are being renamed under it (see
/// [`Files::settled_look`] and [`Files::open`]), and the pause between two tries.
const SETTLE_TRIES: usize = 20;
const SETTLE_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

/// Files a look keeps open at most (the others are opened again by name, if at all):
/// a restart beside hundreds of old rotated files must not spend the descriptors
/// the followed ones need.
const KEEP_OPEN: usize = 256;

#[derive(Debug)]
pub struct Files {
    root: Root,
    globs: Vec<String>,
    /// Docker log paths (real path → container id), set by the Docker source.
    docker: HashMap<PathBuf, String>,
    pub tails: Vec<Tail>,
    rotation: Rotation,
    /// Warnings for stderr, taken by the caller.
    pub notes: Vec<String>,
    /// Files the last scan found but could not open (permission denied, descriptors
    /// exhausted), with why: errors in the summary and the metrics.
    pub unopened: Vec<(String, std::io::Error)>,
    /// Followed files found truncated, and restarted, by looks: the caller writes the
    /// positions at once (see [`Files::truncated`]) and sets this back to 0.
    pub truncations: usize,
    /// The tails at each path (where each was last seen), for the paths inotify names;
    /// None when the tails changed since it was made.
    at: Option<HashMap<PathBuf, Vec<usize>>>,
    /// Tails whose path is a symbolic link: a write to the file it points to is told
    /// of (if at all) under another name, so they are looked at at every wake-up.
    linked: Vec<usize>,
}

fn compressed(name: &str) -> bool {
    COMPRESSED.iter().any(|c| name.ends_with(c))
}

/// Where a [`Seen`] is (its `tag` indexes these), how it is read, and the file itself
/// if the look opened it (see [`Files::look`]).
#[derive(Debug)]
struct Place {
    path: PathBuf,
    format: Format,
    file: Option<fs::File>,
    /// The file at `path` when the directory was listed.
    listed: Identity,
}

impl Place {
    fn new(path: PathBuf, format: Format, listed: Identity) -> Place {
        Place {
            path,
            format,
            file: None,
            listed,
        }
    }
}

/// Whether every name in `places` (a look's listing) is still the file it was.
fn unmoved(places: &Places, now: &Places) -> bool {
    fn key(v: &Places) -> Vec<(&Path, Identity)> {
        let mut k: Vec<(&Path, Identity)> = v
            .iter()
            .filter(|p| !p.path.as_os_str().is_empty())
            .map(|p| (p.path.as_path(), p.listed))
            .collect();
        k.sort_unstable_by(|a, b| a.0.cmp(b.0));
        k
    }
    key(places) == key(now)
}

type Places = Vec<Place>;

/// The shortest name in `names` (not itself a rotated one) that `name` continues with
/// `.` or `-`.
fn base_of<'a>(name: &str, names: &'a HashMap<String, (usize, bool)>) -> Option<&'a (usize, bool)> {
    name.char_indices()
        .filter(|(_, c)| *c == '.' || *c == '-')
        .filter(|(i, _)| *i > 0)
        .find_map(|(i, _)| names.get(&name[..i]).filter(|(_, rotated)| !rotated))
}

impl Files {
    pub fn new(
        root: Root,
        globs: Vec<String>,
        restored: Option<(Vec<Entry>, SystemTime)>,
        from_beginning: bool,
    ) -> Files {
        Files {
            root,
            globs,
            docker: HashMap::new(),
            tails: Vec::new(),
            rotation: Rotation::new(restored, from_beginning),
            notes: Vec::new(),
            unopened: Vec::new(),
            truncations: 0,
            at: None,
            linked: Vec::new(),
        }
    }

    /// The time to save in the positions file (see [`Rotation::seen_until`]).
    pub fn seen_until(&self) -> SystemTime {
        self.rotation.seen_until(SystemTime::now())
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
                // Compressed files are never read (a glob over rotated files matches
                // them, and for a moment during a rotation its base may be missing).
                Ok(paths) => out.extend(
                    paths
                        .filter_map(Result::ok)
                        .filter(|p| !compressed(&p.to_string_lossy()))
                        .map(|p| (p, Format::Plain)),
                ),
                Err(_) => out.push((real, Format::Plain)),
            }
        }
        for (p, c) in &self.docker {
            out.push((p.clone(), Format::Docker { container: c.clone() }));
        }
        out
    }

    /// Every file at a followed path and every rotated sibling beside one, once each
    /// (by identity), followed paths first. Each directory is read once.
    fn candidates(&self) -> (Vec<Seen>, Places) {
        let live = self.live_paths();
        // Per directory: name → (index in `live`, is a rotated sibling of another match).
        let mut dirs: HashMap<&Path, HashMap<String, (usize, bool)>> = HashMap::new();
        for (k, (p, _)) in live.iter().enumerate() {
            if let (Some(d), Some(n)) = (p.parent(), p.file_name()) {
                dirs.entry(d)
                    .or_default()
                    .insert(n.to_string_lossy().into_owned(), (k, false));
            }
        }
        for names in dirs.values_mut() {
            let rotated: Vec<String> = names
                .keys()
                .filter(|n| base_of(n, names).is_some())
                .cloned()
                .collect();
            for n in rotated {
                if let Some(e) = names.get_mut(&n) {
                    e.1 = true;
                }
            }
        }
        let mut ids = HashSet::new();
        let mut seen = Vec::new();
        let mut places = Vec::new();
        let mut add = |path: PathBuf, format: &Format, live: bool, label: String| {
            let Ok(md) = fs::metadata(&path) else { return };
            if !md.is_file() {
                return;
            }
            let id = Identity {
                dev: md.dev(),
                ino: md.ino(),
            };
            if !ids.insert(id) {
                return;
            }
            seen.push(Seen {
                tag: places.len(),
                display: self.root.display(&path),
                label,
                live,
                id,
                size: md.len(),
                mtime: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                fp: None,
            });
            places.push(Place::new(path, format.clone(), id));
        };
        let rotated: HashSet<usize> = dirs
            .values()
            .flat_map(|names| names.values().filter(|(_, r)| *r).map(|(k, _)| *k))
            .collect();
        for (k, (p, f)) in live.iter().enumerate() {
            if !rotated.contains(&k) {
                add(p.clone(), f, true, self.root.display(p));
            }
        }
        for (dir, names) in &dirs {
            let Ok(rd) = fs::read_dir(dir) else { continue };
            for e in rd.filter_map(|e| e.ok()) {
                let n = e.file_name().to_string_lossy().into_owned();
                if names.get(&n).is_some_and(|(_, r)| !r) || compressed(&n) {
                    continue;
                }
                if let Some(&(b, _)) = base_of(&n, names) {
                    let (bp, bf) = &live[b];
                    add(e.path(), bf, false, self.root.display(bp));
                }
            }
        }
        (seen, places)
    }

    /// [`Files::candidates`] with the first bytes of files not followed, where wanted.
    ///
    /// A file whose first bytes are read is opened here, and known from then on by
    /// what the open file is (identity, size, time), not by what its name was when
    /// the directory was listed: while a rotation renames the numbered files (`.2` →
    /// `.3`, then `.1` → `.2`), a name listed may be the next file by the time it is
    /// opened, and one file's identity paired with another's first bytes takes a file
    /// for another, to be read again from 0 under new timestamps. The open file is
    /// kept in its place (up to [`KEEP_OPEN`] of them), to be followed through it if
    /// the state machine says so.
    fn look(&mut self, all: bool) -> (Vec<Seen>, Places) {
        let (mut seen, mut places) = self.candidates();
        let followed: HashSet<Identity> = self.tails.iter().map(|t| t.id).collect();
        let mut kept = 0;
        for s in &mut seen {
            if followed.contains(&s.id) || !(all || self.rotation.wants_fingerprint(s)) {
                continue;
            }
            let opened = fs::File::open(&places[s.tag].path).and_then(|f| {
                let md = f.metadata()?;
                let fp = read_fingerprint(&f)?;
                Ok((f, md, fp))
            });
            match opened {
                Ok((f, md, fp)) if md.is_file() => {
                    s.id = Identity {
                        dev: md.dev(),
                        ino: md.ino(),
                    };
                    s.size = md.len();
                    s.mtime = md.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    s.fp = Some(fp);
                    if kept < KEEP_OPEN {
                        places[s.tag].file = Some(f);
                        kept += 1;
                    }
                }
                Ok(_) => {}
                Err(e) if s.live => {
                    self.notes.push(format!(
                        "cannot open {}: {}",
                        s.display,
                        homelab_core::exit::describe_io(&e)
                    ));
                    self.unopened.push((s.display.clone(), e));
                }
                Err(_) => {}
            }
        }
        // Two names may have turned out to be one file (renamed between them).
        let mut ids = HashSet::new();
        seen.retain(|s| ids.insert(s.id));
        (seen, places)
    }

    /// The first look after a restart, when the positions file knew files: the one
    /// that gives up those it does not find (what they held after their acknowledged
    /// offset is lost). A directory read while a rotation renames the numbered files
    /// may show a file under neither name, so the look is taken again, up to
    /// [`SETTLE_TRIES`] times, while files known by inode are missing, and the files
    /// each look found are kept (open, so what is known of them stays true).
    fn settled_look(&mut self) -> (Vec<Seen>, Places) {
        let notes = self.notes.len();
        let (mut seen, mut places) = self.look(false);
        for _ in 1..SETTLE_TRIES {
            let ids: HashSet<Identity> = seen.iter().map(|s| s.id).collect();
            if !self.rotation.restored_missing(&ids) {
                break;
            }
            // A rotation is under way: its renames take a moment.
            std::thread::sleep(SETTLE_PAUSE);
            self.notes.truncate(notes);
            self.unopened.clear();
            let (now, mut now_places) = self.look(false);
            let again: HashSet<Identity> = now.iter().map(|s| s.id).collect();
            let mut earlier: Vec<Seen> = seen.into_iter().filter(|s| !again.contains(&s.id)).collect();
            for s in &mut earlier {
                // Not at its name any more: renamed by the rotation under way.
                let empty = Place::new(PathBuf::new(), Format::Plain, s.id);
                let place = std::mem::replace(&mut places[s.tag], empty);
                s.tag = now_places.len();
                s.live = false;
                now_places.push(place);
            }
            seen = now;
            seen.append(&mut earlier);
            places = now_places;
        }
        (seen, places)
    }

    fn open(&mut self, mut o: Open, places: &mut Places) -> Option<usize> {
        let place = &mut places[o.tag];
        let (mut path, format, file) = (place.path.clone(), place.format.clone(), place.file.take());
        // Renamed since the look (the next rotation shifting the numbered copies while
        // a slow machine got here): followed where it is now, found by its identity.
        let moved = |p: &Path| {
            fs::metadata(p).map_or(true, |md| {
                md.dev() != o.track.id.dev || md.ino() != o.track.id.ino
            })
        };
        // Without the file opened by the look, it is opened by name: looked for again
        // while a listing made during the renames misses it.
        let tries = if file.is_some() { 1 } else { SETTLE_TRIES };
        for k in 0..tries {
            if !moved(&path) {
                break;
            }
            if k > 0 {
                std::thread::sleep(SETTLE_PAUSE);
            }
            let (seen, now_at) = self.candidates();
            if let Some(s) = seen.iter().find(|s| s.id == o.track.id) {
                path = now_at[s.tag].path.clone();
                o.track.display = s.display.clone();
            }
        }
        let display = o.track.display.clone();
        match Tail::open(path, o.track, format, file) {
            Ok(t) => {
                self.tails.push(t);
                self.at = None;
                Some(self.tails.len() - 1)
            }
            Err(e) => {
                self.notes.push(format!(
                    "cannot open {display}: {}",
                    homelab_core::exit::describe_io(&e)
                ));
                if !self.unopened.iter().any(|(d, _)| *d == display) {
                    self.unopened.push((display, e));
                }
                None
            }
        }
    }

    /// Finds files that appeared, moved or went away; returns the indices of tails
    /// opened by this look (the caller gives them labels and anchors).
    pub fn scan(&mut self) -> Vec<usize> {
        let scan_start = SystemTime::now();
        self.unopened.clear();
        // Every followed file is checked first, as the read pass does: one followed
        // since it was short (or empty) has its first bytes brought up to date, and one
        // truncated (or copytruncated and written again) since it was last read
        // restarts, its copy adopted. Otherwise the first bytes known are those of a
        // content gone, and a copy of the content there now, being made, would be taken
        // for a new file and its lines read twice.
        for i in 0..self.tails.len() {
            if let Ok(Change::Truncated) = self.tails[i].check() {
                self.truncations += 1;
                if let Err(e) = self.truncated(i) {
                    self.notes.push(format!(
                        "{}: {}",
                        self.tails[i].display,
                        homelab_core::exit::describe_io(&e)
                    ));
                }
            }
        }
        let (seen, mut places) = if self.rotation.restoring() {
            self.settled_look()
        } else {
            self.look(false)
        };
        // Where each file is now (a rotated one under its new name): events name it there.
        let now_at: HashMap<Identity, usize> = seen.iter().map(|s| (s.id, s.tag)).collect();
        for t in &mut self.tails {
            if let Some(&tag) = now_at.get(&t.id)
                && t.path != places[tag].path
            {
                t.path = places[tag].path.clone();
                self.at = None;
            }
        }
        let first = self.tails.len();
        // Listed again: a look made while files were renamed may have missed some.
        let whole = unmoved(&places, &self.candidates().1);
        let opens = self
            .rotation
            .scan(&mut self.tails, seen, Instant::now(), scan_start, whole);
        for o in opens {
            self.open(o, &mut places);
        }
        self.notes.append(&mut self.rotation.notes);
        (first..self.tails.len()).collect()
    }

    /// Tail `i` was truncated (copytruncate) or shrunk. Restarts it where the state
    /// machine says and follows the copy, if a file not followed yet holds the old
    /// bytes, from where `i` was (lines not acknowledged yet are the copy's to
    /// acknowledge). Returns the copy's index. The caller writes the positions at
    /// once: a crash before that would find the file changed under its old identity,
    /// and send again with new timestamps what was acknowledged.
    pub fn truncated(&mut self, i: usize) -> io::Result<Option<usize>> {
        let (fp, size) = self.tails[i].look()?;
        let (seen, mut places) = self.look(true);
        let copy = self
            .rotation
            .truncated(&mut self.tails, i, &seen, fp, size, Instant::now());
        self.tails[i].restart();
        let Some(o) = copy else {
            return Ok(None);
        };
        let Some(c) = self.open(o, &mut places) else {
            return Ok(None);
        };
        self.tails[c].streams = self.tails[i].streams.clone();
        self.tails[c].source = self.tails[i].source;
        Ok(Some(c))
    }

    /// The tails to look at after inotify named `touched` (and nothing else changed):
    /// those at these paths, those behind a symbolic link, and those with something
    /// left to do (not read to their end, rewritten, or gone and waiting to be
    /// closed), in the order to read them in (see [`Files::read_order`]).
    pub fn read_order_of(&mut self, touched: &HashSet<PathBuf>) -> Vec<usize> {
        let at = match self.at.take() {
            Some(at) => at,
            None => {
                let mut at: HashMap<PathBuf, Vec<usize>> = HashMap::new();
                self.linked.clear();
                for (i, t) in self.tails.iter().enumerate() {
                    at.entry(t.path.clone()).or_default().push(i);
                    if fs::symlink_metadata(&t.path).is_ok_and(|m| m.file_type().is_symlink()) {
                        self.linked.push(i);
                    }
                }
                at
            }
        };
        let mut want: Vec<usize> = touched
            .iter()
            .filter_map(|p| at.get(p))
            .flatten()
            .copied()
            .chain(self.linked.iter().copied())
            .collect();
        self.at = Some(at);
        want.extend(
            self.tails
                .iter()
                .enumerate()
                .filter(|(_, t)| !t.at_end() || t.rewritten() || t.gone_since.is_some())
                .map(|(i, _)| i),
        );
        want.sort_unstable();
        want.dedup();
        // Only the rotated ones need their age (read oldest first, before the live
        // ones); the order among live ones does not matter.
        let tails: Vec<&Tail> = want.iter().map(|&i| &self.tails[i]).collect();
        let order = Rotation::read_order(&tails, |k| {
            if tails[k].live {
                SystemTime::UNIX_EPOCH
            } else {
                self.mtime(want[k])
            }
        });
        order.into_iter().map(|k| want[k]).collect()
    }

    fn mtime(&self, i: usize) -> SystemTime {
        self.tails[i]
            .file
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// Removes the tails that are gone, drained and acknowledged.
    pub fn reap(&mut self) -> usize {
        let before = self.tails.len();
        let now = Instant::now();
        self.tails.retain_mut(|t| {
            if !t.closable(now, t.at_end() && t.drained()) {
                return true;
            }
            // A last look: written or rewritten since it was read, it stays.
            match t.check() {
                Ok(Change::Same) => !(t.at_end() && t.drained()),
                Ok(Change::Truncated) => true,
                Err(_) => false,
            }
        });
        if self.tails.len() != before {
            self.at = None;
        }
        before - self.tails.len()
    }

    /// The order to read in: rotated and gone files first (oldest first), so a file
    /// is read to its end before its successor.
    pub fn read_order(&self) -> Vec<usize> {
        Rotation::read_order(&self.tails, |i| self.mtime(i))
    }

    /// Every line read is acknowledged: also those of truncated files whose copy was
    /// not found yet (see [`Rotation::ack_awaited`]). Whether any offset moved.
    pub fn ack_awaited(&mut self) -> bool {
        self.rotation.ack_awaited()
    }

    /// The positions file's entries (setting new anchors: see [`Rotation::save`]).
    pub fn save(&mut self, now_ns: u64, stale_ns: u64) -> Vec<Entry> {
        let mut entries = Rotation::save(&mut self.tails, now_ns, stale_ns);
        entries.extend(self.rotation.save_awaited());
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        let entries = f.save(0, u64::MAX);
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
        let entries = f.save(0, u64::MAX);
        fs::copy(&p, d.path().join("app.log.1")).unwrap();
        fs::write(&p, "line 3\n").unwrap();
        let mut f = files(d.path(), Some((entries, saved)));
        f.scan();
        assert_eq!(by_name(&f, "app.log.1"), Some(7));
        assert_eq!(by_name(&f, "app.log"), Some(0));
    }

    #[test]
    fn a_copy_renamed_between_the_look_and_its_opening_is_opened_where_it_is_now() {
        // Issue 22: on a slow machine the next rotation shifted the copy (`.1` to
        // `.2`, a new `.1` made) between the look that found it and its opening:
        // "replaced while being opened", and its lines were never read.
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        fs::write(&p, "live\n").unwrap();
        let one = d.path().join("app.log.1");
        fs::write(&one, "copied line\n").unwrap();
        let mut f = files(d.path(), None);
        f.scan();
        let (seen, mut places) = f.look(true);
        let s = seen.iter().find(|s| s.display.ends_with("app.log.1")).unwrap();
        let track = crate::rotation::Track {
            id: s.id,
            fp: s.fp.clone().unwrap(),
            display: s.display.clone(),
            label: s.label.clone(),
            live: false,
            was_live: false,
            anchored: true,
            size: s.size,
            processed: 7,
            acked: 7,
            anchors: Vec::new(),
            anchors_saved: false,
            safe: 0,
            gone_since: None,
        };
        fs::rename(&one, d.path().join("app.log.2")).unwrap();
        fs::write(&one, "the next copy\n").unwrap();
        let i = f
            .open(Open { tag: s.tag, track }, &mut places)
            .expect("the copy is opened");
        assert!(f.tails[i].path.ends_with("app.log.2"), "{:?}", f.tails[i].path);
        assert!(f.tails[i].display.ends_with("app.log.2"));
        assert_eq!(f.tails[i].check().unwrap(), Change::Same);
        let l = f.tails[i].next_line(100).unwrap().unwrap();
        assert_eq!(f.tails[i].bytes(&l.range), b"line");
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
        assert!(f.scan().is_empty(), "a copy is not read on its own");
        fs::write(&p, "d\n").unwrap();
        // The next rotation, by rename, before anything was read or looked at again.
        fs::rename(&p1, &p2).unwrap();
        fs::rename(&p, &p1).unwrap();
        fs::write(&p, "e\n").unwrap();
        // The look finds the truncation first, and the copy under its new name.
        assert_eq!(f.scan(), [2]);
        assert_eq!(f.truncations, 1);
        assert!(f.tails[0].display.ends_with("app.log.1"));
        let copy = 1;
        assert!(f.tails[copy].display.ends_with("app.log.2"));
        assert_eq!(f.tails[copy].processed, 2, "the copy from where its original was");
        for i in [copy, 0, 2] {
            read_lines(&mut f, i, usize::MAX, &mut got);
        }
        assert_eq!(got, ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn a_half_copy_of_content_never_read_is_not_taken_for_a_new_file() {
        // The rotation model's find: a copytruncate nobody read between (the first
        // bytes known are those of the content copied away, now deleted), the file
        // written again, then a second copytruncate looked at while its copy was half
        // made. The half copy was followed as a new file: its lines went twice.
        let d = tempfile::tempdir().unwrap();
        let (p, p1) = (d.path().join("app.log"), d.path().join("app.log.1"));
        fs::write(&p, "").unwrap();
        let mut f = files(d.path(), None);
        f.scan();
        fs::write(&p, "a\n").unwrap();
        f.tails[0].check().unwrap();
        fs::copy(&p, &p1).unwrap();
        fs::write(&p, "").unwrap();
        let new: Vec<String> = (0..40).map(|n| format!("line {n:02}")).collect();
        let text: String = new.iter().map(|l| format!("{l}\n")).collect();
        fs::write(&p, &text).unwrap();
        // The second copytruncate (rotate 1: the first copy goes), looked at midway.
        fs::remove_file(&p1).unwrap();
        fs::write(&p1, &text[..text.len() / 2]).unwrap();
        assert!(f.scan().is_empty(), "a half-made copy is not read on its own");
        assert_eq!(f.tails.len(), 1);
        fs::write(&p1, &text).unwrap();
        let mut got = Vec::new();
        for i in f.read_order() {
            assert_eq!(f.tails[i].check().unwrap(), crate::tail::Change::Same);
            read_lines(&mut f, i, usize::MAX, &mut got);
        }
        fs::write(&p, "").unwrap();
        assert_eq!(f.tails[0].check().unwrap(), crate::tail::Change::Truncated);
        if let Some(c) = f.truncated(0).unwrap() {
            read_lines(&mut f, c, usize::MAX, &mut got);
        }
        assert_eq!(got, new, "every line of the second content once");
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
        assert_eq!(f.tails[0].fp.len(), 0);
        fs::write(&p, "a\nb\n").unwrap();
        fs::copy(&p, d.path().join("app.log.1")).unwrap();
        fs::write(&p, "c\n").unwrap();
        // What the agent saves: the entries, and the time of the last scan.
        let (entries, saved) = (f.save(0, u64::MAX), f.seen_until());
        let mut f = files(d.path(), Some((entries, saved)));
        f.scan();
        let mut got = Vec::new();
        for i in f.read_order() {
            read_lines(&mut f, i, usize::MAX, &mut got);
        }
        assert_eq!(got, ["a", "b", "c"]);
    }

    #[test]
    fn a_glob_over_rotated_files_follows_each_content_once_under_its_base_name() {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("app.log", "live\n"),
            ("app.log.1", "rotated\n"),
            ("app.log.2.gz", "\u{1f}binary\n"),
            ("app.log-20261206", "dated\n"),
            ("other.log", "other\n"),
        ] {
            fs::write(d.path().join(name), text).unwrap();
            // Written before log-tail-ship started (not just now: see `new_since`).
            let old = SystemTime::now() - Duration::from_secs(60);
            fs::File::options()
                .write(true)
                .open(d.path().join(name))
                .and_then(|f| f.set_modified(old))
                .unwrap();
        }
        let mut f = Files::new(
            Root::new("/"),
            vec![format!("{}/*.log*", d.path().display())],
            None,
            true,
        );
        f.scan();
        let mut got: Vec<(String, String)> = f
            .tails
            .iter()
            .map(|t| {
                let name = |p: &str| Path::new(p).file_name().unwrap().to_string_lossy().into_owned();
                (name(&t.display), name(&t.label))
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("app.log".into(), "app.log".into()),
                ("other.log".into(), "other.log".into())
            ],
            "rotated siblings are not files of their own, compressed ones never read"
        );
        // A rotation: the renamed file keeps its base name as label, the new one too.
        fs::rename(d.path().join("app.log"), d.path().join("app.log.1")).unwrap();
        fs::write(d.path().join("app.log"), "new\n").unwrap();
        f.scan();
        let labels: HashSet<String> = f.tails.iter().map(|t| t.label.clone()).collect();
        assert_eq!(labels.len(), 2, "{labels:?}");
        assert_eq!(f.tails.len(), 3);
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
