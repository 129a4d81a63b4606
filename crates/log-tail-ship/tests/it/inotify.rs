//! inotify exhausted: out of watches (fs.inotify.max_user_watches) or of instances
//! (max_user_instances), provoked in a user namespace of its own whose limit is 0, so
//! the machine's limits are left alone. log-tail-ship says so once, on stderr and in
//! the summary, counts the files it polls in its metrics, and goes on following them:
//! lines written and a rotation by rename are still picked up, within a second or so.

use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use homelab_testkit::{series, wait_until};

use crate::common::*;

const USERNS: &[&str] = &["unshare", "--user", "--map-root-user"];

/// Whether a user namespace can be made here and its inotify limits set.
fn userns_available() -> bool {
    Command::new(USERNS[0])
        .args(&USERNS[1..])
        .args(["sh", "-c", "echo 0 > /proc/sys/user/max_inotify_watches"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn out_of(limit: &str, said: &str) {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("app.log");
    fs::write(&log, "first\n").unwrap();
    let tf = d.path().join("textfile");
    fs::create_dir(&tf).unwrap();
    let (out_path, err_path) = (d.path().join("out.jsonl"), d.path().join("err.txt"));
    let child = ship_after(USERNS, &format!("echo 0 > /proc/sys/user/{limit}"))
        .args(["--file", log.to_str().unwrap(), "--from-beginning", "--stdout"])
        .args(["--textfile-dir", tf.to_str().unwrap(), "--sync-interval", "1s"])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let output = |p: &std::path::Path| fs::read_to_string(p).unwrap_or_default();
    wait_until(Duration::from_secs(20), "the first line", || {
        output(&out_path).contains("first")
    });
    // A rotation by rename, a late line in the renamed file, and the new file: no
    // event tells of any of it.
    fs::rename(&log, d.path().join("app.log.1")).unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(d.path().join("app.log.1"))
        .and_then(|mut f| f.write_all(b"second\n"))
        .unwrap();
    fs::write(&log, "third\n").unwrap();
    let rotated = Instant::now();
    wait_until(Duration::from_secs(20), "the new file's line", || {
        output(&out_path).contains("third")
    });
    // The safety net alone looks for new files every 10 s (here about 9 s after the
    // rotation).
    let took = rotated.elapsed();
    assert!(
        took < Duration::from_secs(7),
        "the new file was found after {took:?}"
    );
    let page = tf.join("log-tail-ship.prom");
    wait_until(
        Duration::from_secs(20),
        "logship_files_polled on the page",
        || series(&output(&page), "logship_files_polled").is_some_and(|n| n >= 1.0),
    );
    let end = terminate(child);
    let r = parse(Output {
        status: std::process::ExitStatus::from_raw(end.status.into_raw()),
        stdout: fs::read(&out_path).unwrap(),
        stderr: fs::read(&err_path).unwrap(),
    });
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let mut texts = r.texts();
    texts.sort();
    assert_eq!(texts, ["first", "second", "third"]);
    assert_eq!(r.stderr().matches(said).count(), 1, "said once: {}", r.stderr());
    assert!(
        r.summary().errors.iter().any(|e| e.contains(said)),
        "{:?}",
        r.summary().errors
    );
}

#[test]
fn out_of_inotify_watches_or_instances_it_says_so_once_and_polls() {
    let _shared = homelab_testkit::shared();
    if !userns_available() {
        eprintln!("skipped: no user namespace with its own inotify limits can be made here");
        return;
    }
    out_of("max_inotify_watches", "raise fs.inotify.max_user_watches");
    out_of("max_inotify_instances", "raise fs.inotify.max_user_instances");
}
