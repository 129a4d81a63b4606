//! A one-line progress display on stderr, only when stderr is a terminal (cron and
//! pipes get nothing extra).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Progress {
    what: &'static str,
    on: bool,
    last: Option<Instant>,
    start: Instant,
}

pub use homelab_core::text::human_bytes;

impl Progress {
    pub fn new(what: &'static str) -> Progress {
        Progress {
            what,
            on: std::io::stderr().is_terminal(),
            last: None,
            start: Instant::now(),
        }
    }

    /// Redraws at most five times a second.
    pub fn update(&mut self, files: u64, bytes: u64, added: u64) {
        if !self.on
            || self
                .last
                .is_some_and(|l| l.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.last = Some(Instant::now());
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[Kbackup-snap {}: {files} files, {} read ({}/s), {} added",
            self.what,
            human_bytes(bytes),
            human_bytes((bytes as f64 / secs) as u64),
            human_bytes(added)
        );
        let _ = err.flush();
    }

    pub fn finish(&mut self) {
        if self.on && self.last.is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}
