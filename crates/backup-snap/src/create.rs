//! `create`: walk the paths (one filesystem, no symlinks followed), cut files into
//! chunks with FastCDC, store the chunks the repository does not have yet in pack
//! files, and write the manifest last.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use fastcdc::v2020::{Normalization, StreamCDC};
use homelab_core::{Error, Exit, Result};

use crate::crypto::Id;
use crate::docker::{Engine, Paused};
use crate::progress::Progress;
use crate::repo::{Index, PackWriter, Repo};
use crate::snapshot::{self, Entry, Header, Kind};
use crate::sqlite;

#[derive(Debug, Clone)]
pub struct PgDump {
    pub container: String,
    pub database: String,
}

impl std::str::FromStr for PgDump {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.split_once(':') {
            Some((c, d)) if !c.is_empty() && !d.is_empty() => Ok(PgDump {
                container: c.into(),
                database: d.into(),
            }),
            _ => Err("expected CONTAINER:DATABASE, e.g. postgres:n8n".into()),
        }
    }
}

impl PgDump {
    /// Where the dump is stored in the snapshot.
    pub fn path(&self) -> Vec<u8> {
        let clean = |s: &str| s.replace('/', "_");
        format!(
            "/pg-dump/{}/{}.dump",
            clean(&self.container),
            clean(&self.database)
        )
        .into_bytes()
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub job: String,
    pub time: chrono::DateTime<chrono::FixedOffset>,
    pub excludes: Vec<glob::Pattern>,
    pub paths: Vec<PathBuf>,
    pub sqlite: Vec<PathBuf>,
    pub pg_dumps: Vec<PgDump>,
    pub pg_user: String,
    pub pause: Vec<String>,
    pub tmp_dir: PathBuf,
    /// The Docker engine for --pg-dump and --pause (`--docker-host`, `--docker-timeout`).
    pub docker: homelab_core::docker::DockerArgs,
}

/// What create hands back: the id and header of the new snapshot.
#[derive(Debug)]
pub struct Created {
    pub id: Id,
    pub header: Header,
    /// Files that changed while being read, twice (their warnings are in the header).
    pub changed: usize,
    /// The most tree entries and directory entry names held in memory at once: the
    /// bound the man page states (one tree piece, and the names of the directories
    /// being walked), whatever the size of the whole tree.
    pub held_peak: usize,
    /// Files found unchanged since the job's last snapshot, whose chunk lists were
    /// taken from it without reading them.
    pub reused_files: u64,
}

/// The last snapshot of the job, read along with the walk: both are in the same
/// order (the paths' components compared in turn), so one entry is held at a time.
struct Parent<'a> {
    entries: snapshot::TreeEntries<'a>,
    next: Option<Entry>,
}

impl Parent<'_> {
    /// The parent's file at `path`, to be asked for in walk order. Entries that can
    /// never be reused (not a file, or made afresh each time: ino 0) are skipped.
    fn find(&mut self, path: &Path) -> Option<Entry> {
        loop {
            if self.next.is_none() {
                self.next = loop {
                    match self.entries.next()? {
                        Ok(e) if e.kind == Kind::File && e.ino != 0 => break Some(e),
                        Ok(_) => {}
                        // A damaged parent: its files are read again.
                        Err(_) => return None,
                    }
                };
            }
            let next = self.next.as_ref()?;
            match Path::new(OsStr::from_bytes(&next.path)).cmp(path) {
                std::cmp::Ordering::Less => self.next = None,
                std::cmp::Ordering::Equal => return self.next.take(),
                std::cmp::Ordering::Greater => return None,
            }
        }
    }
}

struct Creator<'a> {
    repo: &'a Repo,
    index: Index,
    pack: Option<PackWriter>,
    encoders: Encoders,
    /// Chunks handed to the encoders and not yet written.
    pending: HashSet<Id>,
    /// The new snapshot's tree, written out a piece at a time.
    tree: snapshot::TreeWriter<'a>,
    /// The few entries the n8n check needs (database.sqlite, config, n8nEventLog*).
    n8n: Vec<Entry>,
    /// Names of directory entries held by the walk now, and at most.
    names_held: usize,
    names_peak: usize,
    errors: Vec<String>,
    /// Files that changed while being read, twice (warnings).
    changed: Vec<String>,
    parent: Option<Parent<'a>>,
    hardlinks: HashMap<(u64, u64), Vec<u8>>,
    sqlite: HashSet<Vec<u8>>,
    skip: HashSet<Vec<u8>>,
    excludes: Vec<glob::Pattern>,
    stop: &'a AtomicBool,
    progress: Progress,
    tmp_dir: PathBuf,
    files: u64,
    reused_files: u64,
    bytes: u64,
    bytes_added: u64,
    chunks_new: u64,
    chunks_reused: u64,
}

fn interrupted() -> Error {
    Error::new(Exit::TempFail, "interrupted by a signal: no snapshot was written")
        .hint("run create again; the repository is valid and the next run reuses what was stored")
}

fn describe(e: &io::Error) -> String {
    homelab_core::exit::describe_io(e)
}

/// Makes a path absolute without resolving symlinks, and drops `.` and `..`
/// lexically.
pub fn absolute(p: &Path) -> io::Result<PathBuf> {
    let abs = std::path::absolute(p)?;
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}

pub fn run(repo: &Repo, opts: &Options, stop: &AtomicBool) -> Result<Created> {
    let started = Instant::now();
    let mut index = Index::load(repo)?;
    // A pack whose trailer is unreadable is skipped: its chunks are stored again.
    index.bad_packs.clear();
    let (listed, _) = snapshot::list(repo)?;
    let parent = listed
        .iter()
        .rev()
        .find(|l| l.header.job == opts.job)
        .and_then(|l| snapshot::TreeEntries::open(repo, &l.id).ok())
        .map(|entries| Parent { entries, next: None });

    let mut paths: Vec<PathBuf> = Vec::new();
    for p in &opts.paths {
        let a = absolute(p).map_err(|e| Error::io(format!("{}", p.display()), e))?;
        paths.push(a);
    }
    let mut sqlite = HashSet::new();
    let mut skip = HashSet::new();
    for p in &opts.sqlite {
        let a = absolute(p).map_err(|e| Error::io(format!("{}", p.display()), e))?;
        if !a.is_file() {
            return Err(Error::new(
                Exit::NoInput,
                format!("--sqlite {}: no such database file", a.display()),
            ));
        }
        let bytes = a.as_os_str().as_bytes().to_vec();
        for c in sqlite::companions(&bytes) {
            skip.insert(c);
        }
        sqlite.insert(bytes);
        if !paths.iter().any(|r| a.starts_with(r)) {
            paths.push(a);
        }
    }
    paths.sort();
    paths.dedup();
    // A path inside another one is walked with it.
    let roots: Vec<PathBuf> = paths
        .iter()
        .filter(|p| !paths.iter().any(|q| q != *p && p.starts_with(q)))
        .cloned()
        .collect();

    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    std::thread::scope(|scope| {
        let encoders = Encoders::start(scope, repo, workers)?;
        let mut c = Creator {
            repo,
            index,
            pack: None,
            encoders,
            pending: HashSet::new(),
            tree: snapshot::TreeWriter::create(repo)?,
            n8n: Vec::new(),
            names_held: 0,
            names_peak: 0,
            errors: Vec::new(),
            changed: Vec::new(),
            parent,
            hardlinks: HashMap::new(),
            sqlite,
            skip,
            excludes: opts.excludes.clone(),
            stop,
            progress: Progress::new("create"),
            tmp_dir: opts.tmp_dir.clone(),
            files: 0,
            reused_files: 0,
            bytes: 0,
            bytes_added: 0,
            chunks_new: 0,
            chunks_reused: 0,
        };
        let result = c.collect(opts, &roots).and_then(|()| c.drain(true));
        c.encoders.stop();
        if let Err(e) = result {
            if let Some(p) = c.pack.take() {
                p.abandon();
            }
            c.progress.finish();
            return Err(e);
        }
        c.flush_pack()?;
        c.progress.finish();
        if c.tree.is_empty() && !c.errors.is_empty() {
            // restic refuses too: an empty snapshot would become `latest`.
            return Err(Error::new(
                Exit::NoInput,
                format!(
                    "nothing could be read ({}): no snapshot was written",
                    c.errors.join("; ")
                ),
            )
            .hint("check the paths given to create"));
        }

        let changed_count = c.changed.len();
        let mut warnings = n8n_warnings(&c.n8n);
        warnings.append(&mut c.changed);
        for w in &warnings {
            eprintln!("backup-snap: warning: {w}");
        }
        let finished = homelab_core::unix_now();
        let mut header = Header {
            version: 1,
            job: opts.job.clone(),
            time: opts.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
            host: crate::lock::host(),
            tree_hash: Vec::new(),
            paths: roots
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .chain(
                    opts.pg_dumps
                        .iter()
                        .map(|d| String::from_utf8_lossy(&d.path()).into_owned()),
                )
                .collect(),
            files: c.files,
            bytes: c.bytes,
            bytes_added: c.bytes_added,
            chunks_new: c.chunks_new,
            chunks_reused: c.chunks_reused,
            duration_seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            finished,
            errors: c.errors,
            warnings,
            original: None,
        };
        if stop.load(Ordering::SeqCst) {
            return Err(interrupted());
        }
        let held_peak = c.names_peak + c.tree.held_peak;
        let id = c.tree.finish(&mut header)?;
        Ok(Created {
            id,
            header,
            changed: changed_count,
            held_peak,
            reused_files: c.reused_files,
        })
    })
}

type Encoded = Result<(Id, Vec<u8>, u32)>;

/// Worker threads that compress (and seal) new chunks while the main thread reads,
/// cuts and hashes: zstd is the slow part of a backup.
struct Encoders {
    work: Option<std::sync::mpsc::SyncSender<(Id, Vec<u8>)>>,
    done: std::sync::mpsc::Receiver<Encoded>,
    in_flight: usize,
    limit: usize,
}

impl Encoders {
    fn start<'scope, 'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        repo: &'env Repo,
        workers: usize,
    ) -> Result<Encoders> {
        let (work_tx, work_rx) = std::sync::mpsc::sync_channel::<(Id, Vec<u8>)>(workers * 2);
        let (done_tx, done_rx) = std::sync::mpsc::channel::<Encoded>();
        let work_rx = std::sync::Arc::new(std::sync::Mutex::new(work_rx));
        for _ in 0..workers {
            let rx = std::sync::Arc::clone(&work_rx);
            let tx = done_tx.clone();
            let mut zc = zstd::bulk::Compressor::new(repo.config.compression_level)
                .map_err(|e| Error::bug(format!("zstd: {e}")))?;
            scope.spawn(move || {
                loop {
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok((id, data)) = job else { return };
                    let out = repo
                        .encode_blob(&data, &mut zc)
                        .map(|s| (id, s, data.len() as u32));
                    if tx.send(out).is_err() {
                        return;
                    }
                }
            });
        }
        Ok(Encoders {
            work: Some(work_tx),
            done: done_rx,
            in_flight: 0,
            limit: workers * 4,
        })
    }

    fn submit(&mut self, id: Id, data: Vec<u8>) -> Result<()> {
        self.in_flight += 1;
        self.work
            .as_ref()
            .ok_or_else(|| Error::bug("encoders stopped"))?
            .send((id, data))
            .map_err(|_| Error::bug("the encoder threads ended"))
    }

    /// Ends the workers (they finish the chunk in hand).
    fn stop(&mut self) {
        self.work = None;
    }
}

impl Creator<'_> {
    fn collect(&mut self, opts: &Options, roots: &[PathBuf]) -> Result<()> {
        let engine = if opts.pg_dumps.is_empty() && opts.pause.is_empty() {
            None
        } else {
            Some(Engine::connect(&opts.docker)?)
        };
        // Dumps first: pg_dump cannot run in a paused container.
        for d in &opts.pg_dumps {
            let engine = engine.as_ref().expect("connected above");
            self.pg_dump(engine, d, &opts.pg_user)?;
        }
        let paused = match &engine {
            Some(e) if !opts.pause.is_empty() => Some(Paused::pause_all(e, &opts.pause)?),
            _ => None,
        };
        for root in roots {
            let dev = match fs::symlink_metadata(root) {
                Ok(m) => m.dev(),
                Err(e) => {
                    self.errors.push(format!("{}: {}", root.display(), describe(&e)));
                    continue;
                }
            };
            self.walk(root, dev)?;
        }
        if let Some(p) = paused {
            p.release()?;
        }
        Ok(())
    }

    fn check_stop(&self) -> Result<()> {
        if self.stop.load(Ordering::SeqCst) {
            Err(interrupted())
        } else {
            Ok(())
        }
    }

    fn excluded(&self, path: &Path) -> bool {
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let full = path.to_string_lossy();
        self.excludes.iter().any(|p| {
            if p.as_str().contains('/') {
                p.matches_with(&full, opts)
            } else {
                p.matches_with(&name, opts)
            }
        })
    }

    fn base_entry(path: &Path, m: &Metadata, kind: Kind) -> Entry {
        Entry {
            path: path.as_os_str().as_bytes().to_vec(),
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec() as u32,
            size: 0,
            target: None,
            chunks: Vec::new(),
            rdev: None,
            ino: m.ino(),
            ctime: m.ctime(),
            ctime_nsec: m.ctime_nsec() as u32,
        }
    }

    fn walk(&mut self, path: &Path, root_dev: u64) -> Result<()> {
        self.check_stop()?;
        if self.excluded(path) || self.skip.contains(path.as_os_str().as_bytes()) {
            return Ok(());
        }
        let m = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.errors.push(format!("{}: {}", path.display(), describe(&e)));
                return Ok(());
            }
        };
        let ft = m.file_type();
        if ft.is_dir() {
            self.emit(Self::base_entry(path, &m, Kind::Dir))?;
            if m.dev() != root_dev {
                return Ok(()); // another filesystem: its mount point only
            }
            let mut names: Vec<std::ffi::OsString> = match fs::read_dir(path) {
                Ok(rd) => {
                    let mut v = Vec::new();
                    for e in rd {
                        match e {
                            Ok(e) => v.push(e.file_name()),
                            Err(e) => {
                                self.errors.push(format!("{}: {}", path.display(), describe(&e)));
                                break;
                            }
                        }
                    }
                    v
                }
                Err(e) => {
                    self.errors.push(format!("{}: {}", path.display(), describe(&e)));
                    return Ok(());
                }
            };
            names.sort();
            // Held until this directory is done: the walk's memory is the names of
            // the directories it is in, not the tree.
            let held = names.len();
            self.names_held += held;
            self.names_peak = self.names_peak.max(self.names_held);
            let walked = names
                .into_iter()
                .try_for_each(|n| self.walk(&path.join(n), root_dev));
            self.names_held -= held;
            walked?;
        } else if ft.is_file() {
            if self.sqlite.contains(path.as_os_str().as_bytes()) {
                return self.sqlite_file(path, &m);
            }
            self.file(path, &m)?;
        } else if ft.is_symlink() {
            match fs::read_link(path) {
                Ok(t) => {
                    let mut e = Self::base_entry(path, &m, Kind::Symlink);
                    e.target = Some(t.as_os_str().as_bytes().to_vec());
                    self.emit(e)?;
                }
                Err(e) => self.errors.push(format!("{}: {}", path.display(), describe(&e))),
            }
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_fifo() {
                Kind::Fifo
            } else if ft.is_char_device() {
                Kind::Char
            } else {
                Kind::Block
            };
            let mut e = Self::base_entry(path, &m, kind);
            e.rdev = (kind != Kind::Fifo).then_some(m.rdev());
            self.emit(e)?;
        }
        // Sockets are left out, as tar does: a program makes them when it starts.
        Ok(())
    }

    fn file(&mut self, path: &Path, m: &Metadata) -> Result<()> {
        if m.nlink() > 1
            && let Some(first) = self.hardlinks.get(&(m.dev(), m.ino()))
        {
            let mut e = Self::base_entry(path, m, Kind::Hardlink);
            e.target = Some(first.clone());
            e.size = m.size();
            self.emit(e)?;
            self.files += 1;
            return Ok(());
        }
        // Unchanged since the last snapshot of this job: reuse its chunk list.
        if let Some(p) = self.parent.as_mut().and_then(|p| p.find(path))
            && p.size == m.size()
            && p.mtime == m.mtime()
            && p.mtime_nsec == m.mtime_nsec() as u32
            && p.ctime == m.ctime()
            && p.ctime_nsec == m.ctime_nsec() as u32
            && p.ino == m.ino()
            && p.chunk_ids().all(|id| self.index.contains(&id))
        {
            let mut e = Self::base_entry(path, m, Kind::File);
            e.size = p.size;
            e.chunks = p.chunks.clone();
            self.chunks_reused += (e.chunks.len() / 32) as u64;
            self.reused_files += 1;
            return self.finish_file(e, m);
        }
        // Read, then check that the file stayed as it was: a file written to (or
        // truncated) while being read is read once more, and flagged if it changes
        // again.
        let mut seen = m.clone();
        for attempt in 0..2 {
            let file = match fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
            {
                Ok(f) => f,
                Err(e) => {
                    self.errors.push(format!("{}: {}", path.display(), describe(&e)));
                    return Ok(());
                }
            };
            let m2 = match file.metadata() {
                Ok(m2) if m2.ino() == seen.ino() && m2.dev() == seen.dev() => m2,
                Ok(_) => {
                    self.errors
                        .push(format!("{}: replaced while being backed up", path.display()));
                    return Ok(());
                }
                Err(e) => {
                    self.errors.push(format!("{}: {}", path.display(), describe(&e)));
                    return Ok(());
                }
            };
            let (chunks, size) = match self.store(&file)? {
                Ok(stored) => stored,
                Err(err) => {
                    self.errors
                        .push(format!("{}: {}", path.display(), describe(&err)));
                    return Ok(());
                }
            };
            let change = match file.metadata() {
                Ok(after) => change_while_read(Seen::of(&m2), size, Seen::of(&after)),
                Err(e) => Some(describe(&e)),
            };
            let mut e = Self::base_entry(path, &m2, Kind::File);
            e.size = size;
            e.chunks = chunks;
            match change {
                None => {}
                Some(_) if attempt == 0 => {
                    seen = match fs::symlink_metadata(path) {
                        Ok(again) if again.file_type().is_file() => again,
                        Ok(_) => {
                            self.errors
                                .push(format!("{}: replaced while being backed up", path.display()));
                            return Ok(());
                        }
                        Err(err) => {
                            self.errors.push(format!("{}: {}", path.display(), describe(&err)));
                            return Ok(());
                        }
                    };
                    continue;
                }
                Some(what) => self.changed.push(format!(
                    "{}: {what} while being read, twice: stored as read the second time, which may be inconsistent (stop what writes it, or back up a copy)",
                    path.display()
                )),
            }
            return self.finish_file(e, &m2);
        }
        Ok(())
    }

    fn finish_file(&mut self, e: Entry, m: &Metadata) -> Result<()> {
        if m.nlink() > 1 {
            self.hardlinks.insert((m.dev(), m.ino()), e.path.clone());
        }
        self.files += 1;
        self.bytes += e.size;
        self.progress.update(self.files, self.bytes, self.bytes_added);
        self.emit(e)
    }

    /// Adds an entry to the tree being written (and, if the n8n check needs it, to
    /// the few it keeps).
    fn emit(&mut self, e: Entry) -> Result<()> {
        let p = Path::new(OsStr::from_bytes(&e.path));
        if let Some(name) = p.file_name()
            && (name == "database.sqlite" || name == "config" || name.as_bytes().starts_with(b"n8nEventLog"))
        {
            self.n8n.push(Entry {
                chunks: Vec::new(),
                ..e.clone()
            });
        }
        self.tree.push(e)
    }

    fn sqlite_file(&mut self, path: &Path, m: &Metadata) -> Result<()> {
        let tmp = tempfile::Builder::new()
            .prefix(".backup-snap-sqlite-")
            .tempdir_in(&self.tmp_dir)
            .map_err(|e| {
                Error::io(
                    format!("creating a temporary directory in {}", self.tmp_dir.display()),
                    e,
                )
                .hint("set TMPDIR to a directory with room for a copy of the database")
            })?;
        let copy = tmp.path().join("copy.sqlite");
        if let Err(e) = sqlite::copy(path, &copy, self.stop) {
            self.check_stop()?;
            self.errors.push(format!("{} (SQLite): {e}", path.display()));
            return Ok(());
        }
        let f = File::open(&copy).map_err(|e| Error::io(format!("reading {}", copy.display()), e))?;
        match self.store(f)? {
            Ok((chunks, size)) => {
                let mut e = Self::base_entry(path, m, Kind::File);
                e.size = size;
                e.chunks = chunks;
                // Never "unchanged" next time: the copy is always made afresh.
                e.ino = 0;
                self.finish_file(e, m)?;
            }
            Err(err) => self
                .errors
                .push(format!("{} (SQLite copy): {}", path.display(), describe(&err))),
        }
        Ok(())
    }

    fn pg_dump(&mut self, engine: &Engine, d: &PgDump, user: &str) -> Result<()> {
        let (reader, mut writer) = io::pipe().map_err(|e| Error::io("creating a pipe", e))?;
        let this = &mut *self;
        let outcome = std::thread::scope(|s| {
            let store = s.spawn(move || -> Result<io::Result<(Vec<u8>, u64)>> { this.store(reader) });
            let dumped = engine.pg_dump(&d.container, &d.database, user, &mut writer);
            drop(writer);
            let stored = store
                .join()
                .map_err(|_| Error::bug("the storing thread panicked"))?;
            Ok::<_, Error>((dumped, stored))
        })?;
        let (dumped, stored) = outcome;
        let stored = stored?;
        if let Err(e) = dumped {
            if e.code() == Exit::Unavailable && e.what().starts_with("cannot reach") {
                return Err(e);
            }
            self.errors.push(e.to_string());
            return Ok(());
        }
        match stored {
            Ok((chunks, size)) => {
                let now = chrono::Utc::now();
                self.emit(Entry {
                    path: d.path(),
                    kind: Kind::File,
                    mode: 0o600,
                    uid: nix::unistd::getuid().as_raw(),
                    gid: nix::unistd::getgid().as_raw(),
                    mtime: now.timestamp(),
                    mtime_nsec: now.timestamp_subsec_nanos(),
                    size,
                    target: None,
                    chunks,
                    rdev: None,
                    ino: 0,
                    ctime: 0,
                    ctime_nsec: 0,
                })?;
                self.files += 1;
                self.bytes += size;
            }
            Err(e) => self.errors.push(format!(
                "pg_dump {}:{}: {}",
                d.container,
                d.database,
                describe(&e)
            )),
        }
        Ok(())
    }

    /// Chunks `source` and stores new chunks. The outer error is fatal (the
    /// repository cannot be written); the inner one is the source's read error.
    fn store(&mut self, source: impl Read) -> Result<io::Result<(Vec<u8>, u64)>> {
        let cfg = &self.repo.config.chunker;
        let level = match cfg.normalization {
            0 => Normalization::Level0,
            1 => Normalization::Level1,
            2 => Normalization::Level2,
            _ => Normalization::Level3,
        };
        let cdc = StreamCDC::with_level_and_seed(
            source,
            cfg.min_size as usize,
            cfg.avg_size as usize,
            cfg.max_size as usize,
            level,
            self.repo.chunker_seed(),
        );
        let mut chunks = Vec::new();
        let mut size = 0u64;
        for chunk in cdc {
            self.check_stop()?;
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => return Ok(Err(io::Error::from(e))),
            };
            let id = self.repo.chunk_id(&chunk.data);
            size += chunk.data.len() as u64;
            chunks.extend_from_slice(&id);
            if self.index.contains(&id) || self.pending.contains(&id) {
                self.chunks_reused += 1;
                continue;
            }
            self.pending.insert(id);
            self.chunks_new += 1;
            self.encoders.submit(id, chunk.data)?;
            self.drain(false)?;
            self.progress
                .update(self.files, self.bytes + size, self.bytes_added);
        }
        Ok(Ok((chunks, size)))
    }

    /// Writes encoded chunks into the pack: those ready, or (with `all`) every one
    /// in flight. Waits while too many are in flight, so memory stays bounded.
    fn drain(&mut self, all: bool) -> Result<()> {
        loop {
            let must_wait = all || self.encoders.in_flight > self.encoders.limit;
            if self.encoders.in_flight == 0 {
                return Ok(());
            }
            let next = if must_wait {
                match self.encoders.done.recv() {
                    Ok(r) => r,
                    Err(_) => return Err(Error::bug("the encoder threads ended")),
                }
            } else {
                match self.encoders.done.try_recv() {
                    Ok(r) => r,
                    Err(_) => return Ok(()),
                }
            };
            self.encoders.in_flight -= 1;
            let (id, stored, len) = next?;
            if self.pack.is_none() {
                let n = self.index.add_pack([0u8; 32], 0);
                self.pack = Some(PackWriter::create(self.repo, n)?);
            }
            let pack = self.pack.as_mut().expect("created above");
            let loc = pack.add(id, &stored, len)?;
            self.index.insert(id, loc);
            self.pending.remove(&id);
            self.bytes_added += stored.len() as u64;
            if pack.len() >= self.repo.config.pack_size {
                self.flush_pack()?;
            }
        }
    }

    fn flush_pack(&mut self) -> Result<()> {
        if let Some(p) = self.pack.take() {
            if p.is_empty() {
                p.abandon();
                return Ok(());
            }
            let n = p.number as usize;
            let (id, size) = p.finish(self.repo)?;
            self.index.packs[n] = id;
            self.index.pack_sizes[n] = size;
        }
        Ok(())
    }
}

/// What a file looked like: enough to tell that it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl Seen {
    pub fn of(m: &Metadata) -> Seen {
        Seen {
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// How a file changed while `read` bytes of it were read, between `before` (its
/// metadata once open) and `after` (once read to the end); `None` if it did not.
pub fn change_while_read(before: Seen, read: u64, after: Seen) -> Option<String> {
    if read < before.size {
        Some(format!("shrank from {} to {read} bytes", before.size))
    } else if read > before.size {
        Some(format!("grew from {} to {read} bytes", before.size))
    } else if after.size != before.size {
        Some(format!(
            "changed size from {} to {} bytes",
            before.size, after.size
        ))
    } else if after.mtime != before.mtime || after.ctime != before.ctime {
        Some("was written to".into())
    } else {
        None
    }
}

/// An n8n data folder (named `.n8n`, or holding n8n's event log) whose
/// `database.sqlite` is in the snapshot but whose `config` (the key that encrypts
/// the stored credentials) is not.
pub fn n8n_warnings(tree: &[Entry]) -> Vec<String> {
    let paths: HashSet<&[u8]> = tree.iter().map(|e| e.path.as_slice()).collect();
    let mut out = Vec::new();
    for e in tree {
        let p = Path::new(OsStr::from_bytes(&e.path));
        if p.file_name() != Some(OsStr::new("database.sqlite")) {
            continue;
        }
        let Some(dir) = p.parent() else { continue };
        let dirb = dir.as_os_str().as_bytes();
        let named = dir.file_name() == Some(OsStr::new(".n8n"));
        let event_log = paths.iter().any(|q| {
            q.starts_with(dirb)
                && q.get(dirb.len()..)
                    .is_some_and(|rest| rest.starts_with(b"/n8nEventLog"))
        });
        if !(named || event_log) {
            continue;
        }
        let config = [dirb, b"/config"].concat();
        if !paths.contains(config.as_slice()) {
            out.push(format!(
                "{} looks like an n8n data folder, but its config file (the key that encrypts n8n's stored credentials) is not in this snapshot: without it the restored credentials cannot be decrypted",
                dir.display()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(p: &str) -> Entry {
        Entry {
            path: p.as_bytes().to_vec(),
            kind: Kind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            mtime_nsec: 0,
            size: 0,
            target: None,
            chunks: Vec::new(),
            rdev: None,
            ino: 0,
            ctime: 0,
            ctime_nsec: 0,
        }
    }

    #[test]
    fn n8n_folder_without_config_warns() {
        let t = [entry("/data/.n8n/database.sqlite")];
        assert_eq!(n8n_warnings(&t).len(), 1);
        let t = [entry("/data/.n8n/database.sqlite"), entry("/data/.n8n/config")];
        assert!(n8n_warnings(&t).is_empty());
        let t = [
            entry("/srv/n8n/database.sqlite"),
            entry("/srv/n8n/n8nEventLog.log"),
        ];
        assert_eq!(n8n_warnings(&t).len(), 1);
        let t = [entry("/srv/app/database.sqlite")];
        assert!(n8n_warnings(&t).is_empty(), "not every database.sqlite is n8n's");
    }

    #[test]
    fn changes_while_reading() {
        let seen = |size, mtime| Seen {
            size,
            mtime: (mtime, 0),
            ctime: (mtime, 0),
        };
        let before = seen(500_000_000, 10);
        // The case: truncated 0.15 s into the read, 65 MB stored.
        assert_eq!(
            change_while_read(before, 65_000_000, seen(65_000_000, 11)).as_deref(),
            Some("shrank from 500000000 to 65000000 bytes")
        );
        assert!(change_while_read(before, 500_000_001, seen(500_000_001, 11)).is_some());
        // Same size read, then it was truncated and written back.
        assert!(change_while_read(before, 500_000_000, seen(7, 11)).is_some());
        // Rewritten in place: only the times tell.
        assert!(change_while_read(before, 500_000_000, seen(500_000_000, 11)).is_some());
        assert_eq!(change_while_read(before, 500_000_000, before), None);
    }

    #[test]
    fn pg_dump_spec() {
        let d: PgDump = "pg:n8n".parse().unwrap();
        assert_eq!(d.path(), b"/pg-dump/pg/n8n.dump");
        assert!("pg".parse::<PgDump>().is_err());
        assert!(":db".parse::<PgDump>().is_err());
    }

    #[test]
    fn absolute_is_lexical() {
        assert_eq!(absolute(Path::new("/a/./b/../c")).unwrap(), PathBuf::from("/a/c"));
    }
}
