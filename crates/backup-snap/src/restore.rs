//! `restore`: contents and metadata of a snapshot under a target directory.
//!
//! The manifest is treated as hostile input: every path is checked to stay inside
//! the target (no `..`, no empty or `.` components, no NUL), and nothing is written
//! through a symlink: every parent is checked to be a real directory before
//! anything is created in it, files are created with O_EXCL|O_NOFOLLOW, and
//! metadata is set on the open file or without following links.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use homelab_core::{Error, Exit, Result};
use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

use crate::progress::Progress;
use crate::repo::{Index, PackReader, Repo};
use crate::snapshot::{Entry, Kind};

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Counts {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub special: u64,
    /// Items already in the target that --overwrite left as they were.
    pub skipped: u64,
    pub bytes: u64,
    pub errors: Vec<String>,
    /// The most directories and hard link paths held at once besides the piece of
    /// the tree being read (not in the record: the test of the memory bound reads it).
    #[serde(skip)]
    pub held_peak: usize,
}

/// What to do with what is already in the target (restic's `--overwrite`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Overwrite {
    /// Replace every file in the way
    Always,
    /// Leave a file whose size and modification time match the snapshot's
    IfChanged,
    /// Replace a file only when the snapshot's copy is newer (by mtime)
    IfNewer,
    /// Never replace anything; restore only what is missing
    Never,
}

pub struct Options<'a> {
    /// The snapshot's id, for messages.
    pub snapshot: String,
    /// Restore only this path and what is below it.
    pub subpath: Option<&'a [u8]>,
    /// `None`: refuse to start when anything of the snapshot is already in the
    /// target (other than directories), and never replace anything.
    pub overwrite: Option<Overwrite>,
}

/// What to do at one destination.
#[derive(Debug, PartialEq, Eq)]
enum Room {
    /// Nothing is there (or it was cleared): write.
    Free,
    /// A directory is there and a directory goes there.
    Dir,
    /// Leave what is there.
    Skip,
}

/// Checks that every parent of a destination is a real directory, creating the
/// missing ones, and remembers the chain of directories it is in (each checked
/// once while the restore is inside it): restore's work grows with the number of
/// entries, not with their depth, and its memory with the depth, not the tree.
pub struct Parents {
    target: PathBuf,
    /// Relative paths known to be real directories made or checked by this
    /// restore, each inside the one before it (the manifest's order is the walk's,
    /// so the next entry is inside one of them).
    known: Vec<PathBuf>,
    /// lstat calls made (the test of linear work counts them).
    pub checks: u64,
}

impl Parents {
    pub fn new(target: PathBuf) -> Parents {
        Parents {
            target,
            known: Vec::new(),
            checks: 0,
        }
    }

    /// Directories remembered now.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// Forgets the known directories `rel` is not inside (or is).
    fn leave_to(&mut self, rel: &Path) {
        while self
            .known
            .last()
            .is_some_and(|k| !rel.starts_with(k) || rel == k.as_path())
        {
            self.known.pop();
        }
    }

    /// `rel` is a real directory (just made or checked).
    pub fn add(&mut self, rel: &Path) {
        self.leave_to(rel);
        self.known.push(rel.to_path_buf());
    }

    /// `rel` was removed: neither it nor anything below it is known any more.
    pub fn forget(&mut self, rel: &Path) {
        self.known.retain(|k| !k.starts_with(rel));
    }

    /// Creates missing parents of `rel` and checks that every existing one is a
    /// real directory (not a symlink someone, or the manifest, put there).
    pub fn prepare(&mut self, rel: &Path) -> std::result::Result<(), String> {
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        while self.known.last().is_some_and(|k| !parent.starts_with(k)) {
            self.known.pop();
        }
        let deepest_known = self.known.last().map(PathBuf::as_path);
        // The unknown ancestors, deepest first, up to the deepest known one.
        let todo: Vec<&Path> = parent
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && Some(*a) != deepest_known)
            .collect();
        for a in todo.into_iter().rev() {
            let cur = self.target.join(a);
            self.checks += 1;
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(format!(
                        "{}: refused: a parent is not a directory (a symlink?), nothing is written through it",
                        cur.display()
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::DirBuilder::new()
                        .mode(0o700)
                        .create(&cur)
                        .map_err(|e| format!("{}: {}", cur.display(), describe(&e)))?;
                }
                Err(e) => return Err(format!("{}: {}", cur.display(), describe(&e))),
            }
            self.known.push(a.to_path_buf());
        }
        Ok(())
    }
}

/// The path of an entry under the target, or why it is refused.
pub fn safe_relative(path: &[u8]) -> std::result::Result<PathBuf, String> {
    let shown = String::from_utf8_lossy(path);
    if path.contains(&0) {
        return Err(format!("{shown}: refused: a NUL byte in the path"));
    }
    let trimmed = path.strip_prefix(b"/").unwrap_or(path);
    let mut rel = PathBuf::new();
    for comp in trimmed.split(|b| *b == b'/') {
        if comp.is_empty() || comp == b"." || comp == b".." {
            return Err(format!("{shown}: refused: the path would leave the target"));
        }
        rel.push(OsStr::from_bytes(comp));
    }
    if rel.as_os_str().is_empty() {
        return Err(format!("{shown}: refused: an empty path"));
    }
    Ok(rel)
}

/// Whether `path` (bytes) is `sub` or inside it.
pub fn within(path: &[u8], sub: &[u8]) -> bool {
    let sub = sub.strip_suffix(b"/").unwrap_or(sub);
    sub.is_empty() || path == sub || (path.starts_with(sub) && path.get(sub.len()) == Some(&b'/'))
}

struct Restorer<'a> {
    repo: &'a Repo,
    index: &'a Index,
    reader: PackReader<'a>,
    target: PathBuf,
    root: bool,
    overwrite: Option<Overwrite>,
    parents: Parents,
    counts: Counts,
    /// Paths that hard links of the selection point to: only their destinations
    /// are remembered, not every file's.
    link_targets: HashSet<Vec<u8>>,
    /// Entry path -> where its data was restored (for hard links; only paths in
    /// `link_targets`).
    restored_files: HashMap<Vec<u8>, PathBuf>,
    /// The file entries of `link_targets` (for a link whose first path is not
    /// restored: the data is restored at the link).
    link_entries: HashMap<Vec<u8>, Entry>,
    progress: Progress,
}

/// What of the snapshot is already at one destination in the target, in words.
fn conflict(target: &Path, e: &Entry) -> Option<String> {
    let rel = safe_relative(&e.path).ok()?;
    let dest = target.join(&rel);
    let what = match fs::symlink_metadata(&dest) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return None,
        Ok(m) if m.is_dir() && e.kind == Kind::Dir => return None,
        Ok(m) if m.is_dir() => "a directory stands where the snapshot has a file",
        Ok(_) if e.kind == Kind::Dir => "a file stands where the snapshot has a directory",
        Ok(_) => "already exists",
        Err(err) if err.raw_os_error() == Some(libc::ENOTDIR) => "a parent is not a directory",
        Err(_) => "cannot be checked",
    };
    Some(format!("{}: {what}", dest.display()))
}

/// A snapshot's tree, read again for each pass of a restore: a piece at a time,
/// so a restore holds one piece of the tree, not all of it.
pub trait Tree {
    /// The entries from the start.
    fn entries(
        &self,
    ) -> std::result::Result<Box<dyn Iterator<Item = std::result::Result<Entry, String>> + '_>, String>;
}

/// A tree in memory (tests, and callers that have one).
impl Tree for [Entry] {
    fn entries(
        &self,
    ) -> std::result::Result<Box<dyn Iterator<Item = std::result::Result<Entry, String>> + '_>, String> {
        Ok(Box::new(self.iter().cloned().map(Ok)))
    }
}

/// A snapshot in the repository, read a piece at a time.
pub struct Stored<'a> {
    pub repo: &'a Repo,
    pub id: crate::crypto::Id,
    /// The largest piece read so far (for the bound `man backup-snap` states).
    pub piece_peak: std::cell::Cell<usize>,
}

impl<'a> Stored<'a> {
    pub fn new(repo: &'a Repo, id: crate::crypto::Id) -> Stored<'a> {
        Stored {
            repo,
            id,
            piece_peak: std::cell::Cell::new(0),
        }
    }
}

impl Tree for Stored<'_> {
    fn entries(
        &self,
    ) -> std::result::Result<Box<dyn Iterator<Item = std::result::Result<Entry, String>> + '_>, String> {
        let t = crate::snapshot::TreeEntries::open(self.repo, &self.id)?;
        Ok(Box::new(PeakTracking {
            inner: t,
            peak: &self.piece_peak,
        }))
    }
}

struct PeakTracking<'a, 'r> {
    inner: crate::snapshot::TreeEntries<'r>,
    peak: &'a std::cell::Cell<usize>,
}

impl Iterator for PeakTracking<'_, '_> {
    type Item = std::result::Result<Entry, String>;
    fn next(&mut self) -> Option<Self::Item> {
        let e = self.inner.next();
        self.peak.set(self.peak.get().max(self.inner.piece_len()));
        e
    }
}

fn unreadable(snapshot: &str, problem: String) -> Error {
    Error::data(format!("snapshot {snapshot} is unreadable: {problem}"))
        .hint("run verify; restore another snapshot")
}

/// Restores the entries of `tree` (under `opts.subpath`) into `target`. The tree is
/// read in passes, a piece at a time: one to find what is selected, what is in the
/// way and which paths hard links point to, one more when there are hard links (to
/// find their data's entries), and the restore itself. Memory holds one piece, the
/// directories the restore is in (their metadata is set when it leaves them) and
/// the hard links' first paths.
pub fn run(
    repo: &Repo,
    index: &Index,
    tree: &(impl Tree + ?Sized),
    target: &Path,
    opts: &Options,
) -> Result<Counts> {
    let subpath = opts.subpath;
    let bad = |p: String| unreadable(&opts.snapshot, p);
    let selects = |e: &Entry| subpath.is_none_or(|s| within(&e.path, s));
    let fresh = match fs::read_dir(target) {
        Ok(mut d) => d.next().is_none(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(e) => return Err(Error::io(format!("reading the target {}", target.display()), e)),
    };
    let check_conflicts = opts.overwrite.is_none() && !fresh;
    // Pass 1: what is selected, what is in the way, which paths links point to.
    const SHOWN: usize = 50;
    let mut selected = 0u64;
    let mut conflicts = 0usize;
    let mut link_targets: HashSet<Vec<u8>> = HashSet::new();
    for e in tree.entries().map_err(bad)? {
        let e = e.map_err(bad)?;
        if !selects(&e) {
            continue;
        }
        selected += 1;
        if e.kind == Kind::Hardlink
            && let Some(t) = &e.target
        {
            link_targets.insert(t.clone());
        }
        if check_conflicts && let Some(c) = conflict(target, &e) {
            if conflicts < SHOWN {
                eprintln!("backup-snap: restore: conflict: {c}");
            }
            conflicts += 1;
        }
    }
    if selected == 0 {
        return Err(match subpath {
            Some(sub) => Error::new(
                Exit::NoInput,
                format!(
                    "nothing in snapshot {} under {}",
                    opts.snapshot,
                    String::from_utf8_lossy(sub)
                ),
            )
            .hint("give --path an absolute path as `list` and the snapshot show it"),
            None => Error::new(
                Exit::NoInput,
                format!("snapshot {} is empty: there is nothing to restore", opts.snapshot),
            )
            .hint("restore another snapshot (list shows them)"),
        });
    }
    if conflicts > 0 {
        if conflicts > SHOWN {
            eprintln!("backup-snap: restore: and {} more conflicts", conflicts - SHOWN);
        }
        return Err(Error::new(
            Exit::CantCreate,
            format!(
                "the target {} already holds {conflicts} of the snapshot's paths (listed above): nothing was restored",
                target.display(),
            ),
        )
        .hint("restore into an empty directory, or give --overwrite always, if-changed, if-newer or never"));
    }
    // Pass 2, only with hard links: the entries holding their data.
    let mut link_entries: HashMap<Vec<u8>, Entry> = HashMap::new();
    if !link_targets.is_empty() {
        for e in tree.entries().map_err(bad)? {
            let e = e.map_err(bad)?;
            if e.kind == Kind::File && link_targets.contains(&e.path) {
                link_entries.insert(e.path.clone(), e);
            }
        }
    }
    fs::create_dir_all(target)
        .map_err(|e| Error::io(format!("creating the target {}", target.display()), e))?;
    let target = fs::canonicalize(target)
        .map_err(|e| Error::io(format!("resolving the target {}", target.display()), e))?;
    let mut r = Restorer {
        repo,
        index,
        reader: PackReader::new(repo),
        parents: Parents::new(target.clone()),
        target,
        root: nix::unistd::geteuid().is_root(),
        overwrite: opts.overwrite,
        counts: Counts::default(),
        link_targets,
        restored_files: HashMap::new(),
        link_entries,
        progress: Progress::new("restore"),
    };
    // Directories whose metadata is set when the restore leaves them, deepest last:
    // writing into a directory changes its mtime, and a read-only mode would stop
    // the restore of its contents.
    let mut open_dirs: Vec<(PathBuf, Entry)> = Vec::new();
    let mut held_peak = 0;
    for e in tree.entries().map_err(bad)? {
        let e = match e {
            Ok(e) => e,
            Err(p) => {
                // Stopped midway: what was restored keeps its directories' metadata.
                r.close_dirs(&mut open_dirs, None);
                return Err(bad(p));
            }
        };
        if !selects(&e) {
            continue;
        }
        let rel = match safe_relative(&e.path) {
            Ok(r) => r,
            Err(msg) => {
                r.counts.errors.push(msg);
                continue;
            }
        };
        r.close_dirs(&mut open_dirs, Some(&rel));
        held_peak =
            held_peak.max(open_dirs.len() + r.parents.len() + r.restored_files.len() + r.link_entries.len());
        r.one(e, rel, &mut open_dirs);
    }
    r.close_dirs(&mut open_dirs, None);
    r.progress.finish();
    r.counts.held_peak = held_peak;
    Ok(r.counts)
}

impl Restorer<'_> {
    /// Sets the metadata of the open directories that `next` (None: the end) is not
    /// inside, deepest first.
    fn close_dirs(&mut self, open: &mut Vec<(PathBuf, Entry)>, next: Option<&Path>) {
        while let Some((rel, _)) = open.last() {
            if next.is_some_and(|n| n.starts_with(rel) && n != rel.as_path()) {
                break;
            }
            let (rel, e) = open.pop().expect("not empty");
            let dest = self.target.join(&rel);
            if let Err(msg) = self.metadata_path(&e, &dest, true) {
                self.counts.errors.push(msg);
            }
        }
    }

    /// Restores one entry at `rel`.
    fn one(&mut self, e: Entry, rel: PathBuf, open_dirs: &mut Vec<(PathBuf, Entry)>) {
        let dest = self.target.join(&rel);
        if let Err(msg) = self.parents.prepare(&rel) {
            self.counts.errors.push(msg);
            return;
        }
        let room = match self.make_room(&e, &rel, &dest) {
            Ok(room) => room,
            Err(msg) => {
                self.counts.errors.push(msg);
                return;
            }
        };
        if room == Room::Skip {
            self.counts.skipped += 1;
            return;
        }
        let outcome = match e.kind {
            Kind::Dir => {
                // `never` leaves even the metadata of a directory that was there.
                let keep_as_is = room == Room::Dir && self.overwrite == Some(Overwrite::Never);
                self.dir(&dest, room).map(|()| {
                    self.parents.add(&rel);
                    if !keep_as_is {
                        open_dirs.push((rel, e));
                    }
                })
            }
            Kind::File => self.file(&e, &dest),
            Kind::Hardlink => {
                let first = e.target.as_deref().unwrap_or_default();
                match self.restored_files.get(first).cloned() {
                    Some(src) => self.hardlink(&src, &dest),
                    // The data's first path is not restored: restore the data here.
                    None => match self.link_entries.get(first) {
                        Some(orig) => {
                            let mut copy = orig.clone();
                            copy.path = e.path.clone();
                            copy.mode = e.mode;
                            self.file(&copy, &dest)
                        }
                        None => Err(format!(
                            "{}: its hard link target is not in the snapshot",
                            e.path_lossy()
                        )),
                    },
                }
            }
            Kind::Symlink => self.symlink(&e, &dest),
            Kind::Fifo | Kind::Char | Kind::Block => self.special(&e, &dest),
        };
        if let Err(msg) = outcome {
            self.counts.errors.push(msg);
        }
    }

    /// Decides what to do with what stands at `dest` for entry `e`, and clears it
    /// when the overwrite policy says so. Never removes a non-empty directory, and
    /// without --overwrite never removes anything.
    fn make_room(&mut self, e: &Entry, rel: &Path, dest: &Path) -> std::result::Result<Room, String> {
        let err = |what: &str| format!("{}: {what}", dest.display());
        let m = match fs::symlink_metadata(dest) {
            Ok(m) => m,
            Err(x) if x.kind() == io::ErrorKind::NotFound => return Ok(Room::Free),
            Err(x) => return Err(err(&describe(&x))),
        };
        if m.is_dir() && e.kind == Kind::Dir {
            return Ok(Room::Dir);
        }
        let Some(policy) = self.overwrite else {
            return Err(err(
                "already exists: left as it is (give --overwrite to replace it)",
            ));
        };
        let replace = match policy {
            Overwrite::Always => true,
            Overwrite::Never => false,
            Overwrite::IfChanged => {
                !(e.kind == Kind::File
                    && m.is_file()
                    && m.size() == e.size
                    && m.mtime() == e.mtime
                    && m.mtime_nsec() == e.mtime_nsec as i64)
            }
            Overwrite::IfNewer => (e.mtime, e.mtime_nsec as i64) > (m.mtime(), m.mtime_nsec()),
        };
        if !replace {
            return Ok(Room::Skip);
        }
        if m.is_dir() {
            // Only an empty directory is replaced: rmdir fails on any other.
            fs::remove_dir(dest).map_err(|x| {
                if x.raw_os_error() == Some(libc::ENOTEMPTY) || x.raw_os_error() == Some(libc::EEXIST) {
                    err("a directory that is not empty stands where the snapshot has a file: nothing in it was removed (move it away)")
                } else {
                    err(&describe(&x))
                }
            })?;
            self.parents.forget(rel);
        } else {
            fs::remove_file(dest).map_err(|x| err(&describe(&x)))?;
        }
        Ok(Room::Free)
    }

    fn dir(&mut self, dest: &Path, room: Room) -> std::result::Result<(), String> {
        if room != Room::Dir {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(dest)
                .map_err(|e| format!("{}: {}", dest.display(), describe(&e)))?;
        }
        self.counts.dirs += 1;
        Ok(())
    }

    fn file(&mut self, e: &Entry, dest: &Path) -> std::result::Result<(), String> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(dest)
            .map_err(|err| format!("{}: {}", dest.display(), describe(&err)))?;
        let mut written = 0u64;
        let mut hole_at_end = false;
        for id in e.chunk_ids() {
            let data = self
                .reader
                .chunk(self.index, &id)
                .map_err(|err| format!("{}: {err}", e.path_lossy()))?;
            // All-zero chunks become holes: sparse files stay sparse.
            hole_at_end = data.iter().all(|b| *b == 0);
            if hole_at_end {
                f.seek(SeekFrom::Current(data.len() as i64))
                    .map_err(|err| format!("{}: {}", dest.display(), describe(&err)))?;
            } else {
                f.write_all(&data)
                    .map_err(|err| format!("{}: {}", dest.display(), describe(&err)))?;
            }
            written += data.len() as u64;
            self.counts.bytes += data.len() as u64;
            self.progress.update(self.counts.files, self.counts.bytes, 0);
        }
        // A new file is as long as what was written, unless it ends in a hole.
        if hole_at_end {
            f.set_len(written)
                .map_err(|err| format!("{}: {}", dest.display(), describe(&err)))?;
        }
        if written != e.size {
            return Err(format!(
                "{}: restored {written} bytes, the snapshot says {}",
                e.path_lossy(),
                e.size
            ));
        }
        self.metadata_file(e, &f, dest)?;
        let _ = self.repo; // the reader holds the repository
        self.counts.files += 1;
        if self.link_targets.contains(&e.path) {
            self.restored_files.insert(e.path.clone(), dest.to_path_buf());
        }
        Ok(())
    }

    fn hardlink(&mut self, src: &Path, dest: &Path) -> std::result::Result<(), String> {
        fs::hard_link(src, dest).map_err(|err| format!("{}: {}", dest.display(), describe(&err)))?;
        self.counts.hardlinks += 1;
        Ok(())
    }

    fn symlink(&mut self, e: &Entry, dest: &Path) -> std::result::Result<(), String> {
        let t = e.target.as_deref().unwrap_or_default();
        std::os::unix::fs::symlink(OsStr::from_bytes(t), dest)
            .map_err(|err| format!("{}: {}", dest.display(), describe(&err)))?;
        self.metadata_path(e, dest, false)?;
        self.counts.symlinks += 1;
        Ok(())
    }

    fn special(&mut self, e: &Entry, dest: &Path) -> std::result::Result<(), String> {
        let kind = match e.kind {
            Kind::Fifo => SFlag::S_IFIFO,
            Kind::Char => SFlag::S_IFCHR,
            _ => SFlag::S_IFBLK,
        };
        nix::sys::stat::mknod(dest, kind, Mode::from_bits_truncate(0o600), e.rdev.unwrap_or(0))
            .map_err(|err| format!("{}: {}", dest.display(), err.desc().to_lowercase()))?;
        self.metadata_path(e, dest, true)?;
        self.counts.special += 1;
        Ok(())
    }

    fn metadata_file(&self, e: &Entry, f: &File, dest: &Path) -> std::result::Result<(), String> {
        if self.root {
            std::os::unix::fs::fchown(f, Some(e.uid), Some(e.gid))
                .map_err(|err| format!("{}: owner: {}", dest.display(), describe(&err)))?;
        }
        // After chown, which clears setuid and setgid.
        f.set_permissions(fs::Permissions::from_mode(e.mode))
            .map_err(|err| format!("{}: mode: {}", dest.display(), describe(&err)))?;
        let t = mtime(e);
        f.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
            .map_err(|err| format!("{}: times: {}", dest.display(), describe(&err)))
    }

    /// Owner, mode and times by path, never following a symlink at `dest`.
    fn metadata_path(&self, e: &Entry, dest: &Path, chmod: bool) -> std::result::Result<(), String> {
        if self.root {
            std::os::unix::fs::lchown(dest, Some(e.uid), Some(e.gid))
                .map_err(|err| format!("{}: owner: {}", dest.display(), describe(&err)))?;
        }
        if chmod {
            // The entry is a directory or special file we created (not a symlink).
            fs::set_permissions(dest, fs::Permissions::from_mode(e.mode))
                .map_err(|err| format!("{}: mode: {}", dest.display(), describe(&err)))?;
        }
        let ts = TimeSpec::new(e.mtime, e.mtime_nsec as i64);
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            dest,
            &ts,
            &ts,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|err| format!("{}: times: {}", dest.display(), err.desc().to_lowercase()))
    }
}

fn mtime(e: &Entry) -> SystemTime {
    if e.mtime >= 0 {
        UNIX_EPOCH + Duration::new(e.mtime as u64, e.mtime_nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(e.mtime.unsigned_abs()) + Duration::from_nanos(e.mtime_nsec as u64)
    }
}

fn describe(e: &io::Error) -> String {
    homelab_core::exit::describe_io(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths_are_refused() {
        for bad in [
            &b"/../etc/passwd"[..],
            b"/a/../../x",
            b"/a//b",
            b"/",
            b"",
            b"/a/./b",
            b"/a\0b",
            b"..",
        ] {
            assert!(safe_relative(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(safe_relative(b"/srv/app/x").unwrap(), PathBuf::from("srv/app/x"));
        assert_eq!(
            safe_relative(b"/a/\xff\xfe").unwrap().as_os_str().as_bytes(),
            b"a/\xff\xfe"
        );
    }

    /// Restore's parent checks grow with the number of entries, not with their
    /// depth (1,900 levels took 39 s when every entry checked every ancestor).
    #[test]
    fn parent_checks_are_linear_in_a_deep_tree() {
        let d = tempfile::tempdir().unwrap();
        let target = fs::canonicalize(d.path()).unwrap();
        let mut p = Parents::new(target.clone());
        const LEVELS: u64 = 1_200;
        // Directories as a manifest lists them: each one, then what is in it.
        let mut rel = PathBuf::new();
        for _ in 0..LEVELS {
            rel.push("d");
            p.prepare(&rel).unwrap();
            fs::create_dir(target.join(&rel)).unwrap();
            p.add(&rel);
        }
        p.prepare(&rel.join("leaf")).unwrap();
        assert!(p.checks <= LEVELS, "{} checks for {LEVELS} levels", p.checks);
        // A --path restore lists no parents: each is made and checked once.
        let mut p = Parents::new(target.join("d"));
        let deep: PathBuf = std::iter::repeat_n("e", LEVELS as usize).collect();
        p.prepare(&deep.join("one")).unwrap();
        p.prepare(&deep.join("two")).unwrap();
        assert_eq!(p.checks, LEVELS);
        assert!(target.join("d").join(&deep).is_dir());
    }

    #[test]
    fn a_parent_that_is_not_a_directory_is_refused_also_when_replaced() {
        let d = tempfile::tempdir().unwrap();
        let target = fs::canonicalize(d.path()).unwrap();
        let mut p = Parents::new(target.clone());
        fs::create_dir(target.join("a")).unwrap();
        p.prepare(Path::new("a/x")).unwrap();
        // The directory is replaced by a symlink (as --overwrite always may do with
        // an empty one): forgotten, so it is checked again and refused.
        fs::remove_dir(target.join("a")).unwrap();
        p.forget(Path::new("a"));
        std::os::unix::fs::symlink("/", target.join("a")).unwrap();
        assert!(
            p.prepare(Path::new("a/x"))
                .unwrap_err()
                .contains("not a directory")
        );
    }

    #[test]
    fn subpaths() {
        assert!(within(b"/srv/app", b"/srv"));
        assert!(within(b"/srv", b"/srv/"));
        assert!(!within(b"/srv2", b"/srv"));
        assert!(within(b"/anything", b"/"));
    }
}
