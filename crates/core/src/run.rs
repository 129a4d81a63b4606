//! The run loop: one round, or a round every `--interval` until SIGINT or SIGTERM
//! (the round in hand is finished first) or `--count` rounds. Waiting is a blocking
//! read on a self-pipe with a timeout, so an idle tool uses no CPU at all.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::args::LoopArgs;
use crate::exit::{Error, Result};

/// SIGINT/SIGTERM, caught: a flag to poll and a pipe to wait on.
#[derive(Debug)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    wake: UnixStream,
    ids: Vec<signal_hook::SigId>,
}

impl Shutdown {
    /// Catches SIGINT and SIGTERM from now on (until dropped).
    pub fn install() -> Result<Self> {
        let fail = |e: io::Error| Error::io("installing the SIGINT/SIGTERM handlers", e);
        let (wake, writer) = UnixStream::pair().map_err(fail)?;
        writer.set_nonblocking(true).map_err(fail)?;
        let flag = Arc::new(AtomicBool::new(false));
        let mut ids = Vec::new();
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            ids.push(signal_hook::flag::register(sig, Arc::clone(&flag)).map_err(fail)?);
            let w = writer.try_clone().map_err(fail)?;
            ids.push(signal_hook::low_level::pipe::register(sig, w).map_err(fail)?);
        }
        Ok(Shutdown { flag, wake, ids })
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// The read end of the signal pipe, readable when SIGINT/SIGTERM arrived: for a tool
    /// that waits on several descriptors with poll(2) (a log follower). Call
    /// [`Shutdown::requested`] after it wakes.
    pub fn wake_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.wake.as_fd()
    }

    /// A handle to the flag, for threads that poll it.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.flag)
    }

    /// Sleeps for `d`, or less when a signal arrives; returns true when a stop was asked.
    pub fn sleep(&mut self, d: Duration) -> bool {
        // A deadline past what the clock can hold is never reached: wait for a signal.
        let deadline = Instant::now().checked_add(d);
        while !self.requested() {
            let left = match deadline {
                Some(t) => t.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(86_400),
            };
            if left.is_zero() {
                break;
            }
            if self.wake.set_read_timeout(Some(left)).is_err() {
                std::thread::sleep(left.min(Duration::from_millis(100)));
                continue;
            }
            let mut b = [0u8; 16];
            match self.wake.read(&mut b) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {} // timed out (WouldBlock/TimedOut): loop checks the deadline
            }
        }
        self.requested()
    }
}

impl Drop for Shutdown {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// What a round knows about its place in the run.
#[derive(Debug, Clone, Copy)]
pub struct RoundInfo {
    /// 0 for the first round.
    pub index: u64,
    /// Whether more rounds may follow (loop mode and not the last counted round).
    pub looping: bool,
    /// The interval, in loop mode.
    pub interval: Option<Duration>,
}

/// Runs `round` once, or every `--interval` (on a fixed cadence, not drifting by the
/// round's own duration) until SIGINT/SIGTERM or `--count` rounds.
pub fn run_rounds(args: &LoopArgs, mut round: impl FnMut(RoundInfo) -> Result<()>) -> Result<()> {
    let Some(interval) = args.interval else {
        return round(RoundInfo {
            index: 0,
            looping: false,
            interval: None,
        });
    };
    let mut shutdown = Shutdown::install()?;
    let start = Instant::now();
    let mut index = 0u64;
    loop {
        let last = args.count.is_some_and(|c| index + 1 >= c);
        round(RoundInfo {
            index,
            looping: !last,
            interval: Some(interval),
        })?;
        index += 1;
        if last || shutdown.requested() {
            return Ok(());
        }
        // Next tick on the cadence; skip ticks a slow round overran.
        let elapsed = start.elapsed();
        if shutdown.sleep(until_next_tick(elapsed, interval)) {
            return Ok(());
        }
    }
}

/// How long from `elapsed` (since the first round began) to the next tick of the
/// `interval` cadence, in saturating arithmetic: no interval or clock reading overflows.
pub fn until_next_tick(elapsed: Duration, interval: Duration) -> Duration {
    let every = interval.as_nanos().max(1);
    let next = (elapsed.as_nanos() / every)
        .saturating_add(1)
        .saturating_mul(every);
    let left = next.saturating_sub(elapsed.as_nanos());
    Duration::from_nanos(u64::try_from(left).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_never_overflow() {
        let s = Duration::from_secs;
        assert_eq!(until_next_tick(s(0), s(30)), s(30));
        assert_eq!(until_next_tick(s(31), s(30)), s(29));
        assert_eq!(until_next_tick(s(95), s(30)), s(25));
        // A nanosecond interval after a long run: the old u32 tick count wrapped.
        assert_eq!(
            until_next_tick(s(10), Duration::from_nanos(1)),
            Duration::from_nanos(1)
        );
        assert_eq!(
            until_next_tick(s(1), Duration::MAX),
            Duration::from_nanos(u64::MAX)
        );
    }

    #[test]
    fn one_round_without_interval() {
        let mut n = 0;
        run_rounds(&LoopArgs::default(), |r| {
            assert!(!r.looping);
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn count_rounds_on_a_cadence() {
        let args = LoopArgs {
            interval: Some(Duration::from_millis(20)),
            count: Some(3),
        };
        let t = Instant::now();
        let mut seen = Vec::new();
        run_rounds(&args, |r| {
            seen.push((r.index, r.looping));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [(0, true), (1, true), (2, false)]);
        assert!(t.elapsed() >= Duration::from_millis(40));
    }

    #[test]
    fn an_error_ends_the_loop() {
        let args = LoopArgs {
            interval: Some(Duration::from_millis(1)),
            count: None,
        };
        let e = run_rounds(&args, |r| {
            if r.index == 2 {
                Err(Error::data("boom"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(e.what(), "boom");
    }
}
