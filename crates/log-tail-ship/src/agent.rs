//! The loop: wait (inotify, stdin, the Docker thread, signals) → read every source →
//! lines through the pipeline into the sink → push when a batch is full or due →
//! acknowledge → save positions and metrics. Pushing is synchronous: while a push is
//! retried, no line is read (back-pressure, bounded memory), but new files are still
//! opened so a rotation during an outage loses nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use homelab_core::output::host_name;
use homelab_core::prom::write_textfile;
use homelab_core::run::Shutdown;
use homelab_core::{Error, Exit, Format, Output, Result, Root};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::docker::{self, ContainerInfo, Joiner, Stream, Update};
use crate::files::Files;
use crate::journal::{self, Journal};
use crate::pipeline::{Filter, RateLimit, SourceId, Stats, StreamId, Streams, merge_labels, truncate};
use crate::positions::{self, JournalCursor, PositionsFile};
use crate::sink::{Block, Loki, Outcome, Shipped, Sink, Stamps, StdoutSink, now_ns};
use crate::stdin::StdinLines;
use crate::tail::{Change, Format as TailFormat, Next};
use crate::{Cli, TOOL, metrics};

/// Safety net: look for new files this often even without an inotify event.
const RESCAN: Duration = Duration::from_secs(10);
/// ... and at most this rarely: the pause after a look is [`RESCAN_COST`] times what
/// the look took, so that an idle follower of thousands of files (a look stats each
/// of them and its rotated siblings) spends well under 0.1 % of a core on them.
/// inotify still reports new and changed files at once.
const RESCAN_MAX: Duration = Duration::from_secs(60);
const RESCAN_COST: u32 = 2000;
/// Without inotify: look at the files this often.
const POLL_FALLBACK: Duration = Duration::from_millis(250);
const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// How often a repeated warning (Loki down, Docker away) is printed again.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// Lines from the sources to the sink.
struct Pipe {
    streams: Streams,
    stats: Stats,
    filter: Arc<Filter>,
    rate: Option<RateLimit>,
    max_line: usize,
    sink: Sink,
}

impl Pipe {
    /// One line: filter, rate limit, cut, into the sink.
    fn line(&mut self, stream: StreamId, source: SourceId, ts: u64, bytes: &[u8], cut: bool) -> Result<()> {
        let pass = self.filter.pass(bytes);
        self.admit(pass, stream, source, ts, bytes, cut)
    }

    /// [`Pipe::line`] for a line whose filter verdict is known.
    fn admit(
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
    fn blocks(&self) -> bool {
        matches!(self.sink, Sink::Stdout(_)) && self.rate.is_none()
    }

    /// A push went through: its lines are shipped, and the blocks' counts are in.
    fn shipped(&mut self, shipped: Shipped) {
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

pub struct Agent {
    root: Root,
    host: String,
    static_labels: Vec<(String, String)>,
    files: Files,
    pipe: Pipe,
    positions: Option<PathBuf>,
    sync_interval: Duration,
    once: bool,
    once_timeout: Duration,
    /// A permanent sink failure or --once's timeout: the run ends with it after saving
    /// what was acknowledged.
    /// (exit code, what went wrong, what to do)
    failure: Option<(Exit, String, &'static str)>,
    /// The `--file` patterns as given, and as looked for (see [`crate::file_pattern`]).
    patterns: Vec<(String, String)>,
    max_backoff: Duration,
    textfile_dir: Option<PathBuf>,
    format: Format,
    quiet: bool,
    docker: DockerSource,
    // Waking up.
    shutdown: Shutdown,
    inotify: Option<Inotify>,
    watches: HashMap<PathBuf, WatchDescriptor>,
    rescan_needed: bool,
    next_rescan: Instant,
    // Stdin.
    stdin: Option<StdinLines>,
    stdin_source: Option<(StreamId, SourceId)>,
    stdin_last_ns: u64,
    /// Only stdin: the run ends with its input.
    stdin_only: bool,
    // The journal.
    journal: Option<Journal>,
    /// A journal cursor read from the positions file and kept when this run has no
    /// journal source.
    kept_journal: Option<JournalCursor>,
    book: Bookkeeping,
}

/// The Docker source: the discovery thread's channel and the byte that wakes the main
/// loop, the containers it last listed, each one's split-line joiner, and the
/// containers already warned about.
#[derive(Default)]
struct DockerSource {
    rx: Option<Receiver<Update>>,
    wake: Option<UnixStream>,
    containers: HashMap<String, ContainerInfo>,
    joiners: HashMap<String, Joiner>,
    warned: HashSet<String>,
}

/// What the run keeps about itself: when the positions were last written and
/// whether they changed since, when each kind of warning was last printed, and the
/// errors for the summary.
#[derive(Default)]
struct Bookkeeping {
    last_write: Option<Instant>,
    dirty: bool,
    last_warn: HashMap<&'static str, Instant>,
    errors: Vec<String>,
}

fn warn(msg: &str) {
    eprintln!("{TOOL}: {msg}");
}

impl Agent {
    pub fn new(cli: &Cli) -> Result<Agent> {
        let root = Root::open(&cli.root.root)?;
        let host = host_name(&root);
        let mut static_labels: Vec<(String, String)> = vec![("host".into(), host.clone())];
        for (k, v) in &cli.label {
            static_labels.retain(|(sk, _)| sk != k);
            static_labels.push((k.clone(), v.clone()));
        }
        let filter = Filter::new(&cli.keep, &cli.drop).map_err(Error::usage)?;
        let rate = cli.rate.map(|r| RateLimit::new(r, cli.burst.unwrap_or(r)));
        let sink = match &cli.loki {
            Some(url) => Sink::Loki(Box::new(Loki::new(
                &crate::LokiUrl::parse(url)?.base,
                cli.tenant.clone(),
                &crate::auth(cli)?,
                cli.timeout,
                cli.batch_bytes as usize,
                cli.batch_wait,
            ))),
            None => Sink::Stdout(Box::new(StdoutSink::new(&cli.output, host.clone()))),
        };
        let mut loaded = match &cli.positions {
            Some(p) => positions::load(p)?,
            None => None,
        };
        let restored_journal = loaded.as_mut().and_then(|f| f.journal.take());
        let restored = loaded.map(|f| {
            let saved = f.saved_at().unwrap_or(UNIX_EPOCH);
            (f.files, saved)
        });
        let mut patterns = Vec::new();
        for g in &cli.files {
            patterns.push((g.clone(), crate::file_pattern(&root, g)?));
        }
        let globs = patterns.iter().map(|(_, real)| real.clone()).collect();
        let files = Files::new(root.clone(), globs, restored, cli.from_beginning);
        let inotify = match Inotify::init() {
            Ok(i) => Some(i),
            Err(e) => {
                warn(&format!(
                    "inotify is unavailable ({}): looking at the files every {} ms instead",
                    homelab_core::exit::describe_io(&e),
                    POLL_FALLBACK.as_millis()
                ));
                None
            }
        };
        let mut agent = Agent {
            root,
            host,
            static_labels,
            files,
            pipe: Pipe {
                streams: Streams::default(),
                stats: Stats::default(),
                filter: Arc::new(filter),
                rate,
                max_line: cli.max_line_bytes as usize,
                sink,
            },
            positions: cli.positions.clone(),
            sync_interval: cli.sync_interval,
            once: cli.once,
            once_timeout: cli.once_timeout,
            failure: None,
            patterns,
            max_backoff: cli.max_backoff.max(MIN_BACKOFF),
            textfile_dir: cli.output.textfile_dir.clone(),
            format: cli.output.format(),
            quiet: cli.output.quiet,
            docker: DockerSource::default(),
            shutdown: Shutdown::install()?,
            inotify,
            watches: HashMap::new(),
            rescan_needed: true,
            next_rescan: Instant::now(),
            stdin: cli.stdin.then(StdinLines::default),
            stdin_source: None,
            stdin_last_ns: 0,
            stdin_only: cli.stdin && cli.files.is_empty() && !cli.docker && !journal_wanted(cli),
            journal: None,
            kept_journal: None,
            book: Bookkeeping::default(),
        };
        if cli.stdin {
            let labels = merge_labels(&agent.static_labels, &[]);
            let stream = agent.pipe.streams.id(&labels);
            let source = agent.pipe.stats.source("stdin");
            agent.stdin_source = Some((stream, source));
        }
        if journal_wanted(cli) {
            let place = match &cli.journal_dir {
                Some(d) => journal::Where::Directory(d.clone()),
                None => journal::Where::System {
                    root: (cli.root.root != std::path::Path::new("/")).then(|| cli.root.root.clone()),
                },
            };
            let source = agent.pipe.stats.source("journal");
            let j = Journal::open(
                cli.journalctl.clone(),
                place,
                restored_journal,
                cli.from_beginning,
                cli.once,
                agent.pipe.max_line,
                source,
            )?;
            // A cursor found at the start is saved at once.
            agent.book.dirty |= j.acked.is_some();
            agent.journal = Some(j);
            agent.journal_notes();
        } else {
            agent.kept_journal = restored_journal;
        }
        if cli.docker {
            agent.start_docker(cli)?;
        }
        Ok(agent)
    }

    /// Starts the discovery thread and waits for its first answer: an engine that
    /// cannot be reached at start is an error (69); later it is retried.
    fn start_docker(&mut self, cli: &Cli) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (wake_r, wake_w) = UnixStream::pair().map_err(|e| Error::io("creating a pipe", e))?;
        wake_r
            .set_nonblocking(true)
            .map_err(|e| Error::io("creating a pipe", e))?;
        let timeout = cli.docker_args.timeout_or(homelab_core::docker::DEFAULT_TIMEOUT);
        docker::spawn(cli.docker_args.clone(), cli.docker_filter.clone(), tx, wake_w);
        // The thread gives up on the engine after the timeout itself; this is a
        // backstop for a thread that never answers at all.
        match rx.recv_timeout(timeout + Duration::from_secs(5)) {
            Ok(Update::Containers(list)) => self.apply_containers(list),
            Ok(Update::Unavailable(e)) => return Err(e),
            Err(_) => {
                return Err(Error::new(
                    Exit::Unavailable,
                    format!(
                        "no answer from the Docker engine at {} within {}",
                        cli.docker_args.host(),
                        humantime::format_duration(timeout)
                    ),
                ));
            }
        }
        self.docker.rx = Some(rx);
        self.docker.wake = Some(wake_r);
        Ok(())
    }

    fn apply_containers(&mut self, list: Vec<ContainerInfo>) {
        let mut paths = HashMap::new();
        for c in &list {
            match (&c.log_path, c.driver.as_str()) {
                (Some(p), "json-file" | "") => {
                    paths.insert(self.root.path(p), c.id.clone());
                }
                (_, driver) => {
                    if self.docker.warned.insert(c.id.clone()) {
                        let why = if driver == "local" {
                            "the local log driver, whose files are private to dockerd and unreadable by design".to_string()
                        } else {
                            format!("the {driver} log driver, which leaves no json-file to read")
                        };
                        let msg = format!(
                            "container {} uses {why}: its logs are not shipped; run it with --log-driver json-file \
                             --log-opt max-size=10m --log-opt max-file=3",
                            c.name
                        );
                        warn(&msg);
                        self.book.errors.push(msg);
                    }
                }
            }
        }
        self.docker.containers = list.into_iter().map(|c| (c.id.clone(), c)).collect();
        self.files.set_docker(paths);
        self.rescan_needed = true;
    }

    /// Labels and counters for tails the last scan opened.
    fn setup_tails(&mut self, new: &[usize]) {
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
                    let (name, service) = match self.docker.containers.get(container) {
                        Some(c) => (c.name.clone(), c.compose_service.clone().unwrap_or_default()),
                        None => (container.chars().take(12).collect(), String::new()),
                    };
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

    fn rescan(&mut self) {
        let start = Instant::now();
        let new = self.files.scan();
        self.setup_tails(&new);
        for n in self.files.notes.drain(..) {
            // Once each: a file that cannot be opened is tried again at every scan.
            if self.docker.warned.insert(n.clone()) {
                warn(&n);
                self.book.errors.push(n);
            }
        }
        self.update_watches();
        self.rescan_needed = false;
        let pause = start
            .elapsed()
            .saturating_mul(RESCAN_COST)
            .clamp(RESCAN, RESCAN_MAX);
        self.next_rescan = Instant::now() + pause;
    }

    fn update_watches(&mut self) {
        let Some(ino) = &mut self.inotify else { return };
        let mask = WatchMask::MODIFY
            | WatchMask::CREATE
            | WatchMask::MOVED_FROM
            | WatchMask::MOVED_TO
            | WatchMask::DELETE
            | WatchMask::CLOSE_WRITE
            | WatchMask::ATTRIB
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF;
        for d in self.files.dirs() {
            if self.watches.contains_key(&d) {
                continue;
            }
            match ino.watches().add(&d, mask) {
                Ok(wd) => {
                    self.watches.insert(d, wd);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    if self.book.last_warn.insert("watch", Instant::now()).is_none() {
                        warn(&format!(
                            "cannot watch {} ({}): looking at the files every {} ms (raise fs.inotify.max_user_watches)",
                            d.display(),
                            homelab_core::exit::describe_io(&e),
                            POLL_FALLBACK.as_millis()
                        ));
                    }
                }
            }
        }
    }

    /// Whether files must be looked at on a timer (no inotify, or a watch failed).
    fn polling(&self) -> bool {
        self.inotify.is_none() || self.book.last_warn.contains_key("watch")
    }

    /// Handles inotify events: any change to a watched name or to the set of files.
    fn drain_inotify(&mut self) {
        let Some(ino) = &mut self.inotify else { return };
        let mut buf = [0u8; 8192];
        loop {
            match ino.read_events(&mut buf) {
                Ok(events) => {
                    let mut any = false;
                    for ev in events {
                        any = true;
                        if ev.mask.contains(EventMask::Q_OVERFLOW)
                            || !(ev.mask - EventMask::MODIFY - EventMask::CLOSE_WRITE).is_empty()
                        {
                            self.rescan_needed = true;
                        }
                        if ev.mask.contains(EventMask::IGNORED) {
                            self.watches.retain(|_, wd| *wd != ev.wd);
                        }
                    }
                    if !any {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }

    fn drain_docker(&mut self) {
        if let Some(w) = &mut self.docker.wake {
            let mut b = [0u8; 64];
            while matches!(io::Read::read(w, &mut b), Ok(n) if n > 0) {}
        }
        let mut latest = None;
        let mut failure = None;
        if let Some(rx) = &self.docker.rx {
            loop {
                match rx.try_recv() {
                    Ok(Update::Containers(l)) => latest = Some(l),
                    Ok(Update::Unavailable(e)) => failure = Some(e),
                    Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
                }
            }
        }
        if let Some(e) = failure
            && self.warn_due("docker")
        {
            warn(&format!("{e}; retrying (files already known are still followed)"));
        }
        if let Some(l) = latest {
            self.apply_containers(l);
        }
    }

    fn warn_due(&mut self, what: &'static str) -> bool {
        let now = Instant::now();
        match self.book.last_warn.get(what) {
            Some(t) if now.duration_since(*t) < WARN_EVERY => false,
            _ => {
                self.book.last_warn.insert(what, now);
                true
            }
        }
    }

    /// Sleeps until something happens or `timeout` passes; reads stdin only when asked
    /// (not while a push is retried). Returns true when a stop was asked for.
    fn wait(&mut self, timeout: Duration, with_stdin: bool) -> Result<bool> {
        let timeout = if self.polling() {
            timeout.min(POLL_FALLBACK)
        } else {
            timeout
        };
        let stdin = io::stdin();
        let stdin_fd = stdin.as_fd();
        let mut which: Vec<u8> = Vec::new();
        let ready = {
            let mut fds: Vec<PollFd> = Vec::new();
            fds.push(PollFd::new(self.shutdown.wake_fd(), PollFlags::POLLIN));
            which.push(b's');
            if let Some(i) = &self.inotify {
                // SAFETY-free: the descriptor lives as long as `self.inotify`.
                fds.push(PollFd::new(borrow(i), PollFlags::POLLIN));
                which.push(b'i');
            }
            if let Some(w) = &self.docker.wake {
                fds.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
                which.push(b'd');
            }
            if with_stdin && self.stdin.as_ref().is_some_and(|s| !s.eof) {
                fds.push(PollFd::new(stdin_fd, PollFlags::POLLIN));
                which.push(b'0');
            }
            if with_stdin && let Some(fd) = self.journal.as_ref().and_then(Journal::fd) {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
                which.push(b'j');
            }
            let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
            match poll(&mut fds, PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)) {
                Ok(_) => fds
                    .iter()
                    .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                    .collect::<Vec<bool>>(),
                Err(nix::errno::Errno::EINTR) => vec![false; which.len()],
                Err(e) => return Err(Error::io("waiting for events", io::Error::from(e))),
            }
        };
        for (w, r) in which.iter().zip(ready) {
            if !r {
                continue;
            }
            match w {
                b'i' => self.drain_inotify(),
                b'd' => self.drain_docker(),
                b'0' => self.read_stdin()?,
                b'j' => self.read_journal()?,
                _ => {}
            }
        }
        Ok(self.shutdown.requested())
    }

    fn read_stdin(&mut self) -> Result<()> {
        let (Some(s), Some((stream, source))) = (&mut self.stdin, self.stdin_source) else {
            return Ok(());
        };
        s.fill(&mut io::stdin().lock())
            .map_err(|e| Error::io("reading standard input", e))?;
        // Read time, once per read: every line in it was there now.
        let read_ns = now_ns();
        while let Some((line, cut)) = s.next_line(self.pipe.max_line) {
            let ts = read_ns.max(self.stdin_last_ns + 1);
            self.stdin_last_ns = ts;
            self.pipe.line(stream, source, ts, line, cut)?;
        }
        Ok(())
    }

    /// Takes what journalctl wrote (one read) into the sink, entry by entry.
    fn read_journal(&mut self) -> Result<()> {
        let Some(j) = &mut self.journal else {
            return Ok(());
        };
        j.fill()?;
        while let Some(next) = j.next_entry() {
            match next {
                Ok(e) => {
                    let stream = j.stream(&mut self.pipe.streams, &self.static_labels, &e);
                    self.pipe.line(stream, j.source, e.time_ns, &e.message, false)?;
                    j.processed = Some(e.cursor);
                }
                Err(why) => {
                    if j.invalid == 1
                        || self
                            .book
                            .last_warn
                            .get("journal")
                            .is_none_or(|t| t.elapsed() >= WARN_EVERY)
                    {
                        self.book.last_warn.insert("journal", Instant::now());
                        warn(&format!("{why} (skipped; {} so far)", j.invalid));
                    }
                    if j.invalid == 1 {
                        self.book.errors.push(why);
                    }
                }
            }
        }
        self.journal_notes();
        Ok(())
    }

    fn journal_notes(&mut self) {
        if let Some(j) = &mut self.journal {
            for n in j.notes.drain(..) {
                warn(&n);
                self.book.errors.push(n);
            }
        }
    }

    /// Writes the positions file (when asked for): acknowledged offsets, and fresh
    /// timestamp anchors for files that moved on.
    fn write_positions(&mut self) -> Result<()> {
        let Some(path) = self.positions.clone() else {
            return Ok(());
        };
        let stale = self.sync_interval.as_nanos() as u64;
        let file = PositionsFile {
            version: positions::VERSION,
            saved_unix_seconds: self
                .files
                .seen_until()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            files: self.files.save(now_ns(), stale),
            journal: match &self.journal {
                Some(j) => j.position(),
                None => self.kept_journal.clone(),
            },
        };
        positions::save(&path, &file)?;
        self.book.last_write = Some(Instant::now());
        self.book.dirty = false;
        Ok(())
    }

    /// Every line read so far is accepted (or dropped): move the acknowledged offsets.
    fn ack_all(&mut self) {
        for t in &mut self.files.tails {
            if t.acked != t.processed {
                t.acked = t.processed;
                self.book.dirty = true;
            }
        }
        if let Some(j) = &mut self.journal
            && j.acked != j.processed
        {
            j.acked.clone_from(&j.processed);
            self.book.dirty = true;
        }
    }

    /// Pushes what the sink holds until it is accepted or rejected (retrying with
    /// backoff and jitter meanwhile), then acknowledges. Returns false when a stop was
    /// asked for before the push succeeded (nothing is acknowledged then).
    fn flush(&mut self) -> Result<bool> {
        if self.pipe.sink.pending() == 0 {
            self.ack_all();
            return Ok(true);
        }
        let mut backoff = MIN_BACKOFF;
        let first_attempt = Instant::now();
        loop {
            let (outcome, shipped) = self.pipe.sink.push(&self.pipe.streams)?;
            let pending = self.pipe.sink.pending();
            match outcome {
                Outcome::Accepted => {
                    self.pipe.shipped(shipped);
                    self.pipe.sink.done();
                    self.ack_all();
                    if self.book.last_warn.remove("push").is_some() {
                        warn("pushing works again");
                    }
                    return Ok(true);
                }
                Outcome::Rejected(reason) => {
                    warn(&format!(
                        "Loki refused a batch of {pending} lines for good ({reason}); not sending it again \
                         (Loki kept its valid lines)"
                    ));
                    self.pipe.stats.batches_rejected += 1;
                    self.pipe.stats.dropped_rejected += pending;
                    self.pipe.sink.done();
                    self.ack_all();
                    return Ok(true);
                }
                Outcome::Failed(reason) => {
                    self.failure = Some((
                        Exit::Unavailable,
                        format!("pushing to Loki cannot work: {reason}"),
                        "fix --loki and start again",
                    ));
                    return Ok(false);
                }
                Outcome::Retry(reason) => {
                    self.pipe.stats.push_retries += 1;
                    let waited = first_attempt.elapsed();
                    if self.once && waited >= self.once_timeout {
                        self.failure = Some((
                            Exit::TempFail,
                            format!(
                                "--once: no batch was accepted within --once-timeout {} (last: {reason})",
                                humantime::format_duration(self.once_timeout)
                            ),
                            "run again later",
                        ));
                        return Ok(false);
                    }
                    let jitter = 0.75 + 0.5 * pseudo_random();
                    let mut pause = backoff.mul_f64(jitter);
                    if self.once {
                        pause = pause.min(self.once_timeout - waited);
                    }
                    if self.warn_due("push") {
                        warn(&format!(
                            "pushing {pending} lines failed ({reason}); retrying in {:.1} s and until it works, \
                             reading paused, nothing dropped",
                            pause.as_secs_f64()
                        ));
                    }
                    let until = Instant::now() + pause;
                    loop {
                        let left = until.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        if self.wait(left, false)? {
                            return Ok(false);
                        }
                        // New files are opened now, so a rotation during the outage
                        // keeps their content reachable.
                        if self.rescan_needed {
                            self.rescan();
                        }
                    }
                    backoff = (backoff * 2).min(self.max_backoff);
                }
            }
        }
    }

    /// Reads every file until all are at their end (pushing full batches on the way).
    /// Returns false when a stop was asked for.
    fn read_files(&mut self) -> Result<bool> {
        loop {
            let mut again = false;
            for i in self.files.read_order() {
                if self.shutdown.requested() {
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
                        if self.warn_due("read") {
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
                    let joiner = self.docker.joiners.entry(container.clone()).or_default();
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

    fn file_metrics(&self) -> metrics::Files {
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
        }
    }

    fn write_textfile(&self) -> Result<()> {
        if let Some(dir) = &self.textfile_dir {
            let page = metrics::page(&self.pipe.stats, &self.file_metrics(), homelab_core::unix_now());
            write_textfile(dir, TOOL, &page.render())?;
        }
        Ok(())
    }

    fn stdin_only(&self) -> bool {
        self.stdin_only
    }

    /// Warns once about each `--file` pattern that matches no file at the start.
    fn warn_unmatched(&mut self) {
        for (given, real) in &self.patterns {
            let any = glob::glob(real)
                .map(|mut paths| paths.any(|p| p.is_ok_and(|p| p.is_file())))
                .unwrap_or(false);
            if !any {
                let shown = self.root.display(std::path::Path::new(real));
                let msg = if shown == *given {
                    format!("--file {given:?} matches no file")
                } else {
                    format!("--file {given:?} ({shown}) matches no file")
                };
                let msg = if self.once {
                    msg
                } else {
                    format!("{msg} yet; looking again every {} s", RESCAN.as_secs())
                };
                warn(&msg);
                self.book.errors.push(msg);
            }
        }
    }

    pub fn run(&mut self) -> Result<()> {
        self.rescan();
        self.warn_unmatched();
        let mut last_textfile = Instant::now();
        self.write_textfile()?;
        loop {
            if self.rescan_needed || Instant::now() >= self.next_rescan {
                self.rescan();
            }
            if !self.read_files()? {
                break;
            }
            if let Some(j) = &mut self.journal {
                j.restart_if_due();
                self.journal_notes();
            }
            let stdin_done =
                self.stdin.as_ref().is_none_or(|s| s.eof) && self.journal.as_ref().is_none_or(|j| j.finished);
            let caught_up = true;
            // Push when full, due, or when there is nothing more to wait for.
            let finishing = (self.once && caught_up && stdin_done) || (self.stdin_only() && stdin_done);
            let due = self.pipe.sink.deadline().is_some_and(|d| d <= Instant::now());
            if self.pipe.sink.full() || due || finishing || self.pipe.sink.pending() == 0 {
                if !self.flush()? {
                    break;
                }
                let closed = self.files.reap();
                if closed > 0 {
                    self.book.dirty = true;
                }
            }
            let sync_due = self
                .book
                .last_write
                .is_none_or(|t| t.elapsed() >= self.sync_interval);
            if self.book.dirty && sync_due {
                self.write_positions()?;
            }
            if last_textfile.elapsed() >= self.sync_interval {
                self.write_textfile()?;
                last_textfile = Instant::now();
            }
            if finishing {
                break;
            }
            let mut timeout = self.next_rescan.saturating_duration_since(Instant::now());
            if let Some(d) = self.pipe.sink.deadline() {
                timeout = timeout.min(d.saturating_duration_since(Instant::now()));
            }
            if let Some(t) = self.journal.as_ref().and_then(|j| j.restart_at) {
                timeout = timeout.min(t.saturating_duration_since(Instant::now()));
            }
            // Dirty only matters with a positions file to write (without one, a zero
            // wait here spun a core).
            if self.book.dirty && self.positions.is_some() {
                let next = self
                    .book
                    .last_write
                    .map_or(Duration::ZERO, |t| self.sync_interval.saturating_sub(t.elapsed()));
                timeout = timeout.min(next);
            }
            if self.textfile_dir.is_some() {
                timeout = timeout.min(self.sync_interval.saturating_sub(last_textfile.elapsed()));
            }
            // Gone files are closed after a grace period: come back for them.
            if self.files.tails.iter().any(|t| t.gone_since.is_some()) {
                timeout = timeout.min(Duration::from_millis(500));
            }
            if self.wait(timeout, true)? {
                break;
            }
        }
        self.finish()
    }

    /// On the way out: one last push attempt of what is held, positions, metrics, summary.
    /// Lines not acknowledged (75), a sink that cannot work (69) and, with --once, files
    /// that could not be opened (77, 74) end the run with an error after that.
    fn finish(&mut self) -> Result<()> {
        if self.pipe.sink.pending() > 0 {
            if self.failure.is_none() {
                self.last_push()?;
            }
        } else {
            self.ack_all();
        }
        self.write_positions()?;
        self.write_textfile()?;
        let pending = self.pipe.sink.pending();
        self.summary(pending)?;
        if let Some((code, what, hint)) = self.failure.take() {
            let what = if pending > 0 {
                format!("{what}; {pending} lines were not shipped{}", self.fate())
            } else {
                what
            };
            return Err(Error::new(code, what).hint(hint));
        }
        if pending > 0 {
            return Err(Error::new(
                Exit::TempFail,
                format!(
                    "stopped with {pending} lines not acknowledged by Loki{}",
                    self.fate()
                ),
            )
            .hint("see above why pushing failed"));
        }
        if self.once && !self.files.unopened.is_empty() {
            let n = self.files.unopened.len();
            let (first, e) = &self.files.unopened[0];
            let denied = self
                .files
                .unopened
                .iter()
                .all(|(_, e)| e.kind() == io::ErrorKind::PermissionDenied);
            let what = format!(
                "{n} files could not be opened and were not read (the first: {first}: {})",
                homelab_core::exit::describe_io(e)
            );
            return Err(if denied {
                Error::new(Exit::NoPerm, what).hint("run as a user who may read them (e.g. in group adm)")
            } else {
                Error::new(Exit::IoErr, what).hint(
                    "raise the open-file limit (ulimit -n, LimitNOFILE= in the unit) or follow fewer files",
                )
            });
        }
        Ok(())
    }

    /// What becomes of lines not shipped, for the message at the end.
    fn fate(&self) -> String {
        let mut parts = Vec::new();
        if !self.patterns.is_empty() || self.docker.rx.is_some() {
            parts.push(if self.positions.is_some() {
                "those of files are read again at the next start (--positions)"
            } else {
                "those of files are not read again (no --positions)"
            });
        }
        if self.stdin.is_some() {
            parts.push("those from standard input are lost");
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(": {}", parts.join("; "))
        }
    }

    /// The last push attempt of [`Agent::finish`].
    fn last_push(&mut self) -> Result<()> {
        let (outcome, shipped) = self.pipe.sink.push(&self.pipe.streams)?;
        if outcome == Outcome::Accepted {
            self.pipe.shipped(shipped);
            self.pipe.sink.done();
            self.ack_all();
        }
        Ok(())
    }

    /// The summary record (or page) on stdout, unless --quiet.
    fn summary(&mut self, pending: u64) -> Result<()> {
        let summary = metrics::Summary::new(
            &self.pipe.stats,
            &self.file_metrics(),
            pending,
            self.book.errors.clone(),
        );
        if self.quiet {
            return Ok(());
        }
        match &mut self.pipe.sink {
            Sink::Stdout(s) => s.summary(&summary)?,
            Sink::Loki(_) => {
                let args = homelab_core::OutputArgs {
                    format: Some(self.format),
                    textfile_dir: None,
                    quiet: false,
                };
                let mut out = Output::new(TOOL, &args, self.host.clone(), io::stdout());
                match self.format {
                    Format::Jsonl => out.record("summary", &summary)?,
                    Format::Prom => {
                        let page =
                            metrics::page(&self.pipe.stats, &self.file_metrics(), homelab_core::unix_now());
                        out.page(&page)?;
                    }
                    Format::Text => out.raw(&crate::text::view(
                        &summary,
                        &self.pipe.stats,
                        &self.file_metrics(),
                        homelab_core::text::Paint::for_stdout(),
                        homelab_core::text::screen_width(),
                    ))?,
                }
            }
        }
        let _ = io::stdout().flush();
        Ok(())
    }
}

/// Whether the journal is a source (--journal, or --journal-dir alone).
fn journal_wanted(cli: &Cli) -> bool {
    cli.journal || cli.journal_dir.is_some()
}

fn borrow(i: &Inotify) -> BorrowedFd<'_> {
    i.as_fd()
}

/// A number in [0, 1) for jitter (no need for a cryptographic generator).
fn pseudo_random() -> f64 {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().rotate_left(16);
    let x = n.wrapping_mul(2_654_435_761);
    f64::from(x) / f64::from(u32::MAX)
}
