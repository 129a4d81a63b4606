//! The loop: wait (inotify, stdin, the Docker thread, signals) → read every source →
//! lines through the pipeline into the sink → push when a batch is full or due →
//! acknowledge → save positions and metrics. Pushing is synchronous: while a push is
//! retried, no line is read (back-pressure, bounded memory), but new files are still
//! opened so a rotation during an outage loses nothing.
//!
//! The agent composes the sources (files in [`crate::files`]; Docker, stdin and the
//! journal here), the pipe to the sink, the wake-up and its bookkeeping, each of its
//! own type and file, and runs the loop.

mod bookkeeping;
mod docker_source;
mod file_reading;
mod journal_source;
mod pipe;
mod stdin_source;
mod wake;

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use homelab_core::output::host_name;
use homelab_core::prom::write_textfile;
use homelab_core::{Error, Exit, Format, Output, Result, Root};

use self::bookkeeping::{Bookkeeping, warn};
use self::docker_source::DockerSource;
use self::journal_source::JournalSource;
use self::pipe::Pipe;
use self::stdin_source::StdinSource;
use self::wake::{RESCAN, Wake};
use crate::docker::ContainerInfo;
use crate::files::Files;
use crate::pipeline::{Filter, RateLimit, Stats, Streams};
use crate::positions::{self, PositionsFile};
use crate::sink::{Loki, Outcome, Sink, StdoutSink, now_ns};
use crate::{Cli, TOOL, metrics};

const MIN_BACKOFF: Duration = Duration::from_millis(500);

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
    stdin: Option<StdinSource>,
    /// Only stdin: the run ends with its input.
    stdin_only: bool,
    journal: JournalSource,
    wake: Wake,
    book: Bookkeeping,
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
        let mut book = Bookkeeping::default();
        let wake = Wake::new(&mut book, cli.gather)?;
        let mut pipe = Pipe {
            streams: Streams::default(),
            stats: Stats::default(),
            filter: Arc::new(filter),
            rate,
            max_line: cli.max_line_bytes as usize,
            sink,
        };
        let stdin = cli.stdin.then(|| StdinSource::new(&mut pipe, &static_labels));
        let journal = JournalSource::open(cli, restored_journal, &mut pipe, &mut book)?;
        let mut agent = Agent {
            root,
            host,
            static_labels,
            files,
            pipe,
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
            stdin,
            stdin_only: cli.stdin && cli.files.is_empty() && !cli.docker && !journal_source::wanted(cli),
            journal,
            wake,
            book,
        };
        if cli.docker {
            let list = agent.docker.start(cli)?;
            agent.apply_containers(list);
        }
        Ok(agent)
    }

    /// The Docker source listed containers: their log files are followed.
    fn apply_containers(&mut self, list: Vec<ContainerInfo>) {
        let paths = self.docker.apply(list, &self.root, &mut self.book);
        self.files.set_docker(paths);
        self.wake.rescan_needed = true;
    }

    fn rescan(&mut self) -> Result<()> {
        let start = wake::cpu_time();
        let new = self.files.scan();
        self.setup_tails(&new);
        if self.files.truncations > 0 {
            // At once, as after a truncation found by the read pass.
            self.files.truncations = 0;
            self.book.dirty = true;
            self.write_positions()?;
        }
        for n in self.files.notes.drain(..) {
            // Once each: a file that cannot be opened is tried again at every scan.
            if self.book.first_time(&n) {
                self.book.error(n);
            }
        }
        if let Some(msg) = self.wake.watch(self.files.dirs()) {
            self.book.error(msg);
        }
        self.wake.rescanned(start);
        Ok(())
    }

    /// Sleeps until something happens or `timeout` passes; reads stdin and the journal
    /// only when asked (not while a push is retried). Returns true when a stop was
    /// asked for.
    fn wait(&mut self, timeout: Duration, with_stdin: bool) -> Result<bool> {
        #[derive(Clone, Copy)]
        enum Ready {
            Docker,
            Stdin,
            Journal,
        }
        let stdin = io::stdin();
        let mut which = Vec::new();
        let ready = {
            let mut fds = Vec::new();
            if let Some(fd) = self.docker.fd() {
                fds.push(fd);
                which.push(Ready::Docker);
            }
            if with_stdin && let Some(fd) = self.stdin.as_ref().and_then(|s| s.fd(&stdin)) {
                fds.push(fd);
                which.push(Ready::Stdin);
            }
            if with_stdin && let Some(fd) = self.journal.fd() {
                fds.push(fd);
                which.push(Ready::Journal);
            }
            self.wake.wait(timeout, &fds)?
        };
        for (w, r) in which.into_iter().zip(ready) {
            if !r {
                continue;
            }
            match w {
                Ready::Docker => {
                    if let Some(list) = self.docker.drain(&mut self.book) {
                        self.apply_containers(list);
                    }
                }
                Ready::Stdin => {
                    if let Some(s) = &mut self.stdin {
                        s.read(&mut self.pipe)?;
                    }
                }
                Ready::Journal => self
                    .journal
                    .read(&mut self.pipe, &self.static_labels, &mut self.book)?,
            }
        }
        Ok(self.wake.stop_requested())
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
            journal: self.journal.position(),
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
        if self.files.ack_awaited() {
            self.book.dirty = true;
        }
        if self.journal.ack() {
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
                    if self.book.recovered("push") {
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
                    if self.book.warn_due("push") {
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
                        if self.wake.rescan_needed {
                            self.rescan()?;
                        }
                    }
                    backoff = (backoff * 2).min(self.max_backoff);
                }
            }
        }
    }

    fn write_textfile(&self) -> Result<()> {
        if let Some(dir) = &self.textfile_dir {
            let page = metrics::page(&self.pipe.stats, &self.file_metrics(), homelab_core::unix_now());
            write_textfile(dir, TOOL, &page.render())?;
        }
        Ok(())
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
                self.book.error(msg);
            }
        }
    }

    pub fn run(&mut self) -> Result<()> {
        self.rescan()?;
        self.warn_unmatched();
        let mut last_textfile = Instant::now();
        self.write_textfile()?;
        loop {
            if self.wake.rescan_due() {
                self.rescan()?;
            }
            let sweep = self.wake.take_sweep();
            let touched = self.wake.take_touched();
            if !self.read_files(sweep, &touched)? {
                break;
            }
            self.journal.restart_if_due(&mut self.book);
            let stdin_done = self.stdin.as_ref().is_none_or(StdinSource::eof) && self.journal.done();
            let caught_up = true;
            // Push when full, due, or when there is nothing more to wait for.
            let finishing = (self.once && caught_up && stdin_done) || (self.stdin_only && stdin_done);
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
            let mut timeout = self.wake.until_rescan();
            if let Some(d) = self.pipe.sink.deadline() {
                timeout = timeout.min(d.saturating_duration_since(Instant::now()));
            }
            if let Some(t) = self.journal.restart_at() {
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
        if !self.patterns.is_empty() || self.docker.running() {
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
        let tally = metrics::Tally {
            docker_lists: self.docker.lists,
            lines_pending: pending,
            errors: self.book.errors.clone(),
        };
        let summary = metrics::Summary::new(&self.pipe.stats, &self.file_metrics(), tally);
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
