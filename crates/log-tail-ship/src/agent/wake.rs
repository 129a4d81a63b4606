//! Waking up: signals, inotify on the followed files' directories (with polling where
//! it is unavailable or a watch could not be added), the other sources' descriptors,
//! and when to look for new files next.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use homelab_core::run::Shutdown;
use homelab_core::{Error, Result};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::bookkeeping::Bookkeeping;

/// Safety net: look for new files this often even without an inotify event.
pub(super) const RESCAN: Duration = Duration::from_secs(10);
/// ... and at most this rarely: the pause after a look is [`RESCAN_COST`] times the CPU
/// time the look took (not its wall time, which a busy machine stretches), so that an idle follower of thousands of files (a look stats each
/// of them and its rotated siblings) spends well under 0.1 % of a core on them.
/// inotify still reports new and changed files at once.
const RESCAN_MAX: Duration = Duration::from_secs(60);
const RESCAN_COST: u32 = 2000;
/// While polling, looks are the only way to see new files: they may cost up to 0.5 %
/// of a core.
const POLL_RESCAN_COST: u32 = 200;
/// Without inotify (or for directories it cannot watch): look at the files this often,
/// and for new files as often as their cost allows.
const POLL_FALLBACK: Duration = Duration::from_millis(250);

/// The CPU time this thread has used so far: what a look costs is measured in it.
pub(super) fn cpu_time() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(Duration::ZERO, Duration::from)
}

pub(super) struct Wake {
    pub shutdown: Shutdown,
    inotify: Option<Inotify>,
    watches: HashMap<PathBuf, WatchDescriptor>,
    /// The other way round: the directories (as watched) a watch descriptor is for
    /// (more than one when two spellings name the same directory).
    dirs_of: HashMap<WatchDescriptor, Vec<PathBuf>>,
    /// Paths inotify named (a write to a file in a watched directory) since the last
    /// [`Wake::take_touched`]: the files to look at.
    touched: HashSet<PathBuf>,
    /// Every followed file is to be looked at (a look for files was made, or events
    /// were lost), not only those named by events.
    sweep_needed: bool,
    /// When the inotify events were last read.
    last_drain: Option<Instant>,
    /// While inotify events come one after another (`--gather`), the files they name
    /// are looked at at most this often: the events of the meantime are gathered, so
    /// that one look reads many lines. An event after a quiet spell is handled at once.
    gather: Duration,
    /// Directories that could not be watched at the last try (out of watches): their
    /// files are polled. Said once.
    unwatched: HashSet<PathBuf>,
    said_unwatched: bool,
    /// An event says the set of files may have changed.
    pub rescan_needed: bool,
    next_rescan: Instant,
}

impl Wake {
    /// Sets up inotify; without it (out of instances: fs.inotify.max_user_instances)
    /// the files are polled, which is said once (on stderr and in the summary).
    pub fn new(book: &mut Bookkeeping, gather: Duration) -> Result<Wake> {
        let inotify = match Inotify::init() {
            Ok(i) => Some(i),
            Err(e) => {
                book.error(format!(
                    "inotify is unavailable ({}): looking at the files every {} ms instead \
                     (raise fs.inotify.max_user_instances if it ran out)",
                    homelab_core::exit::describe_io(&e),
                    POLL_FALLBACK.as_millis()
                ));
                None
            }
        };
        Ok(Wake {
            shutdown: Shutdown::install()?,
            inotify,
            watches: HashMap::new(),
            dirs_of: HashMap::new(),
            touched: HashSet::new(),
            sweep_needed: true,
            last_drain: None,
            gather,
            unwatched: HashSet::new(),
            said_unwatched: false,
            rescan_needed: true,
            next_rescan: Instant::now(),
        })
    }

    /// Whether it is time to look for files (an event, or the safety net).
    pub fn rescan_due(&self) -> bool {
        self.rescan_needed || Instant::now() >= self.next_rescan
    }

    /// A look for files that began at `start` (see [`cpu_time`]) is done: the next
    /// one is due after a pause that grows with what it cost (from [`POLL_FALLBACK`],
    /// and costing more, when polling: no event tells of new files then).
    pub fn rescanned(&mut self, start: Duration) {
        self.rescan_needed = false;
        // The files found are looked at whole, and any change inotify did not tell of
        // (a file it cannot see written: through a hard link elsewhere, on a network
        // filesystem) is found now.
        self.sweep_needed = true;
        let (least, cost) = if self.polling() {
            (POLL_FALLBACK, POLL_RESCAN_COST)
        } else {
            (RESCAN, RESCAN_COST)
        };
        let pause = cpu_time()
            .saturating_sub(start)
            .saturating_mul(cost)
            .clamp(least, RESCAN_MAX);
        self.next_rescan = Instant::now() + pause;
    }

    /// How long until the next look for files is due.
    pub fn until_rescan(&self) -> Duration {
        self.next_rescan.saturating_duration_since(Instant::now())
    }

    /// Watches the directories not watched yet (those that could not be, again).
    /// Returns what to say the first time one cannot be watched.
    pub fn watch(&mut self, dirs: HashSet<PathBuf>) -> Option<String> {
        let Some(ino) = &mut self.inotify else {
            return None;
        };
        self.unwatched.clear();
        let mut say = None;
        let mask = WatchMask::MODIFY
            | WatchMask::CREATE
            | WatchMask::MOVED_FROM
            | WatchMask::MOVED_TO
            | WatchMask::DELETE
            | WatchMask::CLOSE_WRITE
            | WatchMask::ATTRIB
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF;
        for d in dirs {
            if self.watches.contains_key(&d) {
                continue;
            }
            match ino.watches().add(&d, mask) {
                Ok(wd) => {
                    self.dirs_of.entry(wd.clone()).or_default().push(d.clone());
                    self.watches.insert(d, wd);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    if !self.said_unwatched {
                        self.said_unwatched = true;
                        say = Some(format!(
                            "cannot watch {} ({}): looking at its files every {} ms instead \
                             (raise fs.inotify.max_user_watches)",
                            d.display(),
                            homelab_core::exit::describe_io(&e),
                            POLL_FALLBACK.as_millis()
                        ));
                    }
                    self.unwatched.insert(d);
                }
            }
        }
        say
    }

    /// Whether files must be looked at on a timer (no inotify, or a directory could
    /// not be watched).
    fn polling(&self) -> bool {
        self.inotify.is_none() || !self.unwatched.is_empty()
    }

    /// Whether every followed file is to be looked at now (not only those named by
    /// inotify): after a look for files, after lost events, and always while polling.
    /// Clears the request.
    pub fn take_sweep(&mut self) -> bool {
        std::mem::take(&mut self.sweep_needed) || self.polling()
    }

    /// The paths inotify named since the last call.
    pub fn take_touched(&mut self) -> HashSet<PathBuf> {
        std::mem::take(&mut self.touched)
    }

    /// Whether the file at `path` is polled (inotify does not watch its directory).
    pub fn polled(&self, path: &Path) -> bool {
        self.inotify.is_none() || path.parent().is_some_and(|d| self.unwatched.contains(d))
    }

    /// Sleeps until a signal, an inotify event or one of `fds` is ready, or `timeout`
    /// passes. Handles the inotify events; returns which of `fds` are ready.
    pub fn wait(&mut self, timeout: Duration, fds: &[BorrowedFd<'_>]) -> Result<Vec<bool>> {
        let timeout = if self.polling() {
            timeout.min(POLL_FALLBACK)
        } else {
            timeout
        };
        // Events read less than `gather` ago: the next ones wait for the rest of it
        // (signals and the other descriptors do not).
        let hold = self
            .last_drain
            .map_or(Duration::ZERO, |t| self.gather.saturating_sub(t.elapsed()));
        if !hold.is_zero() && self.inotify.is_some() {
            let ready = self.poll(hold.min(timeout), fds, false)?;
            if hold >= timeout || ready.iter().any(|r| *r) || self.stop_requested() {
                return Ok(ready);
            }
            return self.poll(timeout - hold, fds, true);
        }
        self.poll(timeout, fds, true)
    }

    /// One poll of the shutdown descriptor, inotify's (with `inotify`) and `fds`;
    /// handles the inotify events and returns which of `fds` are ready.
    fn poll(&mut self, timeout: Duration, fds: &[BorrowedFd<'_>], inotify: bool) -> Result<Vec<bool>> {
        let (inotify_ready, ready) = {
            let mut all: Vec<PollFd> = Vec::with_capacity(fds.len() + 2);
            all.push(PollFd::new(self.shutdown.wake_fd(), PollFlags::POLLIN));
            let own = if let Some(i) = self.inotify.as_ref().filter(|_| inotify) {
                all.push(PollFd::new(i.as_fd(), PollFlags::POLLIN));
                2
            } else {
                1
            };
            all.extend(fds.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)));
            let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
            match poll(&mut all, PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)) {
                Ok(_) => {
                    let r: Vec<bool> = all
                        .iter()
                        .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                        .collect();
                    (own == 2 && r[1], r[own..].to_vec())
                }
                Err(nix::errno::Errno::EINTR) => (false, vec![false; fds.len()]),
                Err(e) => return Err(Error::io("waiting for events", io::Error::from(e))),
            }
        };
        if inotify_ready {
            self.drain_inotify();
        }
        Ok(ready)
    }

    /// Whether a stop was asked for (SIGINT, SIGTERM).
    pub fn stop_requested(&self) -> bool {
        self.shutdown.requested()
    }

    /// Handles inotify events: a write names the file to look at; any other change to
    /// a watched name or to the set of files asks for a look for files (and then at
    /// every file); lost events (the queue overflowed) too.
    fn drain_inotify(&mut self) {
        let Some(ino) = &mut self.inotify else { return };
        self.last_drain = Some(Instant::now());
        let mut buf = vec![0u8; 64 * 1024];
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
                        if ev.mask.contains(EventMask::Q_OVERFLOW) {
                            self.sweep_needed = true;
                        }
                        if let (Some(name), Some(dirs)) = (ev.name, self.dirs_of.get(&ev.wd)) {
                            for d in dirs {
                                self.touched.insert(d.join(name));
                            }
                        }
                        if ev.mask.contains(EventMask::IGNORED) {
                            self.watches.retain(|_, wd| *wd != ev.wd);
                            self.dirs_of.remove(&ev.wd);
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
}
