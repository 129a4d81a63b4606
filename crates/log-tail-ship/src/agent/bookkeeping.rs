//! What the run keeps about itself: when the positions were last written and whether
//! they changed since, when each kind of repeated warning was last printed, which
//! one-time warnings were printed, and the errors for the summary.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::TOOL;

/// How often a repeated warning (Loki down, Docker away) is printed again.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// A warning on stderr.
pub(super) fn warn(msg: &str) {
    eprintln!("{TOOL}: {msg}");
}

#[derive(Default)]
pub(super) struct Bookkeeping {
    pub last_write: Option<Instant>,
    /// Something the positions file holds changed since it was written.
    pub dirty: bool,
    last_warn: HashMap<&'static str, Instant>,
    /// Warnings printed once for the run (by what they are about).
    warned: HashSet<String>,
    pub errors: Vec<String>,
    /// Looks at a followed file (an fstat, and a read when it changed), and looks at
    /// every followed file at once (sweeps): for the summary.
    pub looks: u64,
    pub sweeps: u64,
}

impl Bookkeeping {
    /// Whether a warning of this kind is due (none printed for [`WARN_EVERY`]); if so,
    /// it counts as printed now.
    pub fn warn_due(&mut self, what: &'static str) -> bool {
        self.warn_due_or(what, false)
    }

    /// [`Bookkeeping::warn_due`], or `now` regardless.
    pub fn warn_due_or(&mut self, what: &'static str, now: bool) -> bool {
        let at = Instant::now();
        if !now
            && self
                .last_warn
                .get(what)
                .is_some_and(|t| at.duration_since(*t) < WARN_EVERY)
        {
            return false;
        }
        self.last_warn.insert(what, at);
        true
    }

    /// Whether a warning of this kind was printed (it is forgotten): the trouble is over.
    pub fn recovered(&mut self, what: &'static str) -> bool {
        self.last_warn.remove(what).is_some()
    }

    /// Whether this is the first time about `key` (a container, a message).
    pub fn first_time(&mut self, key: &str) -> bool {
        self.warned.insert(key.to_string())
    }

    /// A warning on stderr that is also an error of the summary.
    pub fn error(&mut self, msg: String) {
        warn(&msg);
        self.errors.push(msg);
    }
}
