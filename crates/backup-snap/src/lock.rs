//! Repository locks: one JSON file per holder under `locks/`. Writers (create,
//! forget, prune) hold an exclusive lock, readers (verify, restore) a shared one.
//! A lock whose process is gone (same host, and no process with that pid and start
//! time) is stale and removed; a lock from another host is never guessed stale.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use homelab_core::run::Shutdown;
use homelab_core::{Error, Exit, Result};
use serde::{Deserialize, Serialize};

use crate::repo::Repo;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInfo {
    pub host: String,
    pub pid: u32,
    /// The process's start time in clock ticks since boot (/proc/PID/stat field 22):
    /// with the pid, it tells a live holder from a reused pid.
    pub start_ticks: Option<u64>,
    pub exclusive: bool,
    pub command: String,
    pub time: String,
}

/// A held lock, released when dropped.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

pub fn host() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Field 22 of /proc/PID/stat (after the command name, which may hold spaces).
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_ticks(&stat)
}

pub fn parse_start_ticks(stat: &str) -> Option<u64> {
    // A zombie (killed, not yet reaped) or dead process holds nothing.
    homelab_core::proc::parse_stat(stat)
        .filter(|s| !s.is_gone())
        .and_then(|s| s.start_ticks)
}

/// How far apart two start times of one process may be read. The kernel's is exact,
/// but qemu-user (which runs the aarch64 build in our tests) answers a process's
/// own `/proc/self/stat` with the time qemu itself started, a few ticks later. A
/// pid reused within seconds of the dead holder's start is not a real risk.
const START_SLACK_SECONDS: u64 = 5;

/// USER_HZ, the unit of /proc/PID/stat's start time: 100 on every Linux architecture.
const TICKS_PER_SECOND: u64 = 100;

/// Whether the holder of `info` is certainly gone.
pub fn is_stale(info: &LockInfo, this_host: &str) -> bool {
    if info.host != this_host {
        return false;
    }
    match fs::read_to_string(format!("/proc/{}/stat", info.pid)) {
        Err(_) => !Path::new(&format!("/proc/{}", info.pid)).exists(),
        Ok(stat) => match parse_start_ticks(&stat) {
            None => true,
            Some(t) => info
                .start_ticks
                .is_some_and(|s| s.abs_diff(t) > START_SLACK_SECONDS * TICKS_PER_SECOND),
        },
    }
}

/// A live lock that conflicts with the one asked for.
struct Conflict {
    other: LockInfo,
    path: PathBuf,
}

impl Conflict {
    fn holder(&self) -> String {
        let o = &self.other;
        format!(
            "backup-snap {} (pid {} on {}, since {})",
            o.command, o.pid, o.host, o.time
        )
    }
}

/// The first pause between two attempts while waiting for a lock, and the longest
/// (restic's --retry-lock tries every 10 seconds too).
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LONGEST_RETRY: Duration = Duration::from_secs(10);

/// Takes the lock; while a live conflicting lock is held, waits up to `retry` for it
/// (`--retry-lock`): one line on stderr names the holder, then attempts follow with a
/// pause growing from half a second to 10 seconds. Nothing of ours stays in `locks/`
/// while waiting, so two waiters never block each other. Exit 75 when the lock is
/// still held after `retry` (at once when `retry` is zero).
pub fn acquire(repo: &Repo, exclusive: bool, command: &str, retry: Duration) -> Result<Lock> {
    let deadline = Instant::now() + retry;
    let mut pause = FIRST_RETRY;
    let mut shutdown: Option<Shutdown> = None;
    let mut announced: Option<PathBuf> = None;
    loop {
        let conflict = match try_acquire(repo, exclusive, command)? {
            Ok(lock) => return Ok(lock),
            Err(c) => c,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let waited = if retry.is_zero() {
                String::new()
            } else {
                format!(" after waiting {}", humantime::format_duration(retry))
            };
            return Err(Error::new(
                Exit::TempFail,
                format!("the repository is locked by {}{waited}", conflict.holder()),
            )
            .hint(format!(
                "try again when it has finished, or remove {} if that process is gone",
                conflict.path.display()
            )));
        }
        if announced.as_ref() != Some(&conflict.path) {
            eprintln!(
                "{}: the repository is locked by {}: waiting up to {} for it (--retry-lock)",
                crate::TOOL,
                conflict.holder(),
                humantime::format_duration(retry)
            );
            announced = Some(conflict.path);
        }
        let stop = match &mut shutdown {
            Some(s) => s,
            None => shutdown.insert(Shutdown::install()?),
        };
        if stop.sleep(pause.min(left)) {
            return Err(Error::new(
                Exit::TempFail,
                "interrupted by a signal while waiting for the repository's lock",
            )
            .hint("run it again"));
        }
        pause = (pause * 2).min(LONGEST_RETRY);
    }
}

/// One attempt: our lock file is written, then every other is read; on a live
/// conflicting one ours is removed again.
fn try_acquire(repo: &Repo, exclusive: bool, command: &str) -> Result<std::result::Result<Lock, Conflict>> {
    let dir = repo.path.join("locks");
    let me = LockInfo {
        host: host(),
        pid: std::process::id(),
        start_ticks: start_ticks(std::process::id()),
        exclusive,
        command: command.into(),
        time: chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
    };
    let mut r = [0u8; 4];
    crate::crypto::random(&mut r);
    let name = format!("{}-{}-{}.json", me.host, me.pid, crate::crypto::hex(&r));
    let path = dir.join(&name);
    let json = serde_json::to_vec(&me).map_err(|e| Error::bug(format!("lock: {e}")))?;
    repo.write_atomic(&path, &json)?;
    let lock = Lock { path };
    let entries = fs::read_dir(&dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
    for e in entries.flatten() {
        if e.file_name().to_string_lossy() == name {
            continue;
        }
        let other_path = e.path();
        let Ok(raw) = fs::read(&other_path) else {
            continue; // removed meanwhile
        };
        let Ok(other) = serde_json::from_slice::<LockInfo>(&raw) else {
            return Err(Error::new(
                Exit::TempFail,
                format!(
                    "the repository has an unreadable lock file {}",
                    other_path.display()
                ),
            )
            .hint("remove it if no backup-snap is running on the repository"));
        };
        if is_stale(&other, &me.host) {
            let _ = fs::remove_file(&other_path);
            continue;
        }
        if exclusive || other.exclusive {
            drop(lock);
            return Ok(Err(Conflict {
                other,
                path: other_path,
            }));
        }
    }
    Ok(Ok(lock))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_ticks_parse_past_a_spacey_name() {
        let stat = "123 (a b) c) S 1 123 123 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(parse_start_ticks(stat), Some(98765));
        assert_eq!(parse_start_ticks("garbage"), None);
        assert_eq!(parse_start_ticks(&stat.replace(") S ", ") Z ")), None, "a zombie");
        assert!(start_ticks(std::process::id()).is_some());
    }

    #[test]
    fn dead_and_reused_pids_are_stale_other_hosts_never() {
        let me = std::process::id();
        let mut info = LockInfo {
            host: "h".into(),
            pid: me,
            start_ticks: start_ticks(me),
            exclusive: true,
            command: "create".into(),
            time: String::new(),
        };
        assert!(!is_stale(&info, "h"));
        let t = info.start_ticks.unwrap();
        info.start_ticks = Some(t + 2);
        assert!(!is_stale(&info, "h"), "read a tick off, as under qemu-user");
        info.start_ticks = Some(t + 6 * TICKS_PER_SECOND);
        assert!(is_stale(&info, "h"), "a reused pid");
        assert!(!is_stale(&info, "other"), "another host's lock");
        info.pid = u32::MAX - 1;
        assert!(is_stale(&info, "h"), "no such process");
    }
}
