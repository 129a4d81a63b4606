//! `--retry-lock`: a command that meets a live conflicting lock waits for it (one
//! line on stderr naming the holder), and runs once it is released; after the
//! duration, or at once without the flag, it exits 75.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::*;

/// A live exclusive lock held by a `sleep` child of the test, as a running
/// `backup-snap COMMAND` would leave it; killed and reaped when dropped.
struct Holder {
    child: Child,
    file: PathBuf,
}

impl Holder {
    fn new(repo: &Path, command: &str) -> Holder {
        let child = Command::new("sleep").arg("600").spawn().unwrap();
        let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        let file = repo.join(format!("locks/{}-{}-0000abcd.json", host.trim(), child.id()));
        let info = serde_json::json!({
            "host": host.trim(), "pid": child.id(), "start_ticks": null, "exclusive": true,
            "command": command, "time": "2026-12-01T03:30:00+00:00",
        });
        fs::write(&file, info.to_string()).unwrap();
        Holder { child, file }
    }

    /// The holder finished: its lock file is gone.
    fn release(&self) {
        fs::remove_file(&self.file).unwrap();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn source(d: &Path) -> PathBuf {
    let src = d.join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a.txt"), b"hello").unwrap();
    src
}

#[test]
fn create_waits_for_a_held_lock_and_runs_when_it_is_released() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("repo");
    init(&repo);
    let src = source(d.path());
    let holder = Holder::new(&repo, "drill");
    let mut child = bin()
        .arg("--repo")
        .arg(&repo)
        .args(["create", "--job", "daily", "--retry-lock", "30s"])
        .arg(&src)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Readiness: its waiting line (before the fix it exits 75 at once: EOF here).
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    assert!(
        first.contains("is locked by backup-snap drill")
            && first.contains(&format!("pid {}", holder.child.id()))
            && first.contains("since 2026-12-01T03:30:00+00:00")
            && first.contains("waiting up to"),
        "the waiting line: {first:?}"
    );
    holder.release();
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {first}{rest}");
    assert!(!rest.contains("waiting"), "one waiting line: {rest}");
    let made: Vec<SnapshotRec> = records(&out, "snapshot");
    assert_eq!(made.len(), 1);
    let listed: Vec<SnapshotRec> = records(&ok(&repo, &["list"]), "snapshot");
    assert_eq!(listed.iter().map(|s| &s.id).collect::<Vec<_>>(), [&made[0].id]);
    assert_eq!(fs::read_dir(repo.join("locks")).unwrap().count(), 0, "lock left");
}

#[test]
fn a_lock_that_stays_ends_the_wait_with_75() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("repo");
    init(&repo);
    let src = source(d.path());
    let holder = Holder::new(&repo, "create");
    let t = std::time::Instant::now();
    let o = bs(
        &repo,
        &[
            "create",
            "--job",
            "drill",
            "--retry-lock",
            "1s",
            src.to_str().unwrap(),
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(75), "{err}");
    assert!(t.elapsed() >= std::time::Duration::from_secs(1), "it waited");
    assert!(err.contains("waiting up to 1s"), "{err}");
    assert!(
        err.contains(&format!(
            "backup-snap: the repository is locked by backup-snap create (pid {} on ",
            holder.child.id()
        )) && err.contains("after waiting 1s: try again when it has finished, or remove"),
        "{err}"
    );
    assert!(records::<SnapshotRec>(&o, "snapshot").is_empty());
    assert_eq!(
        fs::read_dir(repo.join("locks")).unwrap().count(),
        1,
        "only the holder's"
    );
    // The same from the environment, for a reader (shared lock) against the writer.
    let o = bin()
        .arg("--repo")
        .arg(&repo)
        .arg("verify")
        .env("BACKUP_SNAP_RETRY_LOCK", "1s")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    assert!(stderr(&o).contains("after waiting 1s"), "{}", stderr(&o));
}

#[test]
fn without_retry_lock_a_held_lock_is_75_at_once() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("repo");
    init(&repo);
    let src = source(d.path());
    let _holder = Holder::new(&repo, "prune");
    let o = bs(&repo, &["create", "--job", "a", src.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(75), "{err}");
    assert_eq!(err.lines().count(), 1, "one line, no waiting: {err}");
    assert!(
        err.contains("is locked by backup-snap prune") && !err.contains("waiting"),
        "{err}"
    );
    // A duration that is not one is a usage error.
    let o = bs(&repo, &["--retry-lock", "soon", "verify"]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
}
