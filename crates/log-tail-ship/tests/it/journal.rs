//! The journal as a source, on real journal files: systemd-journal-remote writes them
//! from the Journal Export Format into a directory (no journald needed), and
//! log-tail-ship reads them with `--journal-dir` through the real journalctl.
//!
//! `JOURNAL_SEED=<n>` repeats a kill test's moments (the seed is printed).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;

const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";
/// The first entry's time: 2023-11-14T22:13:20Z, in microseconds.
const BASE_US: u64 = 1_700_000_000_000_000;
const UNITS: [&str; 3] = ["nginx.service", "session-42.scope", "cron.service"];
const IDENTS: [&str; 3] = ["nginx", "sshd", "CRON"];
const PRIORITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// Entry `n` in the Journal Export Format; every 50th has a binary MESSAGE (not UTF-8,
/// with a newline), which journalctl writes as an array of bytes.
fn export(n: u64, out: &mut Vec<u8>) {
    write!(
        out,
        "__REALTIME_TIMESTAMP={}\n_SYSTEMD_UNIT={}\nSYSLOG_IDENTIFIER={}\nPRIORITY={}\n_PID={}\n",
        BASE_US + n,
        UNITS[(n % 3) as usize],
        IDENTS[(n % 3) as usize],
        n % 8,
        1000 + n
    )
    .unwrap();
    if n % 50 == 7 {
        let mut bytes = format!("entry {n:06} \x01bin").into_bytes();
        bytes.push(0xff);
        bytes.extend_from_slice(b"\nsecond line");
        out.extend_from_slice(b"MESSAGE\n");
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(&bytes);
        out.push(b'\n');
    } else {
        writeln!(out, "MESSAGE=entry {n:06}").unwrap();
    }
    out.push(b'\n');
}

/// The line log-tail-ship ships for entry `n` (invalid UTF-8 replaced).
fn expected_line(n: u64) -> String {
    if n % 50 == 7 {
        format!("entry {n:06} \x01bin\u{fffd}\nsecond line")
    } else {
        format!("entry {n:06}")
    }
}

fn expected_labels(n: u64) -> Vec<(&'static str, String)> {
    vec![
        ("host", "test".to_string()),
        ("job", "journal".to_string()),
        ("priority", PRIORITIES[(n % 8) as usize].to_string()),
        ("syslog_identifier", IDENTS[(n % 3) as usize].to_string()),
        // One label value for every session: session-42.scope → session.scope.
        (
            "unit",
            ["nginx.service", "session.scope", "cron.service"][(n % 3) as usize].to_string(),
        ),
    ]
}

/// The entry number of a shipped line.
fn number(line: &str) -> u64 {
    line.strip_prefix("entry ")
        .and_then(|l| l.get(..6))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not an entry: {line:?}"))
}

/// Appends entries `range` to `dir/test.journal` with systemd-journal-remote.
fn append(dir: &Path, range: std::ops::Range<u64>) {
    assert!(
        Path::new(JOURNAL_REMOTE).exists(),
        "{JOURNAL_REMOTE} is missing: install the Debian package systemd-journal-remote (scripts/test does)"
    );
    let mut input = Vec::new();
    for n in range {
        export(n, &mut input);
    }
    let mut c = Command::new(JOURNAL_REMOTE)
        .arg(format!("--output={}", dir.join("test.journal").display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(&input).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "systemd-journal-remote: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check_entry(e: &Received) -> u64 {
    let n = number(&e.line);
    assert_eq!(e.line, expected_line(n));
    assert_eq!(
        e.ts,
        ((BASE_US + n) * 1000) as i64,
        "the journal's own time, entry {n}"
    );
    let labels: Vec<(&str, String)> = e.labels.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    assert_eq!(labels, expected_labels(n), "entry {n}");
    n
}

fn once(dir: &Path, rx: &Receiver, extra: &[&str]) -> Run {
    let run = run(&[
        &[
            "--journal-dir",
            dir.to_str().unwrap(),
            "--once",
            "--loki",
            &rx.url(),
        ],
        &["--label", "host=test", "--quiet"][..],
        extra,
    ]
    .concat());
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    run
}

#[test]
fn once_reads_the_directory_and_resumes_after_the_acknowledged_cursor() {
    let _shared = homelab_testkit::shared();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("journal");
    std::fs::create_dir(&dir).unwrap();
    let positions = d.path().join("positions.json");
    let pos = positions.to_str().unwrap();
    append(&dir, 0..20);
    // A first run without --from-beginning starts at the journal's end, and saves it.
    let rx = Receiver::start();
    once(&dir, &rx, &["--positions", pos]);
    assert!(rx.entries().is_empty(), "{:?}", rx.lines());
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&positions).unwrap()).unwrap();
    assert!(saved["journal"]["cursor"].is_string(), "{saved}");
    // Then only what came since, with the journal's timestamps and labels.
    append(&dir, 20..60);
    once(&dir, &rx, &["--positions", pos]);
    // A push groups the entries by stream: sorted, they are the new ones, once each.
    let mut got: Vec<u64> = rx.entries().iter().map(check_entry).collect();
    got.sort_unstable();
    assert_eq!(got, (20..60).collect::<Vec<_>>());
    assert!(got.contains(&57), "a binary MESSAGE among them");
    // Nothing new: nothing shipped.
    let rx = Receiver::start();
    once(&dir, &rx, &["--positions", pos]);
    assert!(rx.entries().is_empty(), "{:?}", rx.lines());
    // --from-beginning without positions: everything.
    once(&dir, &rx, &["--from-beginning"]);
    let mut got: Vec<u64> = rx.entries().iter().map(check_entry).collect();
    got.sort_unstable();
    assert_eq!(got, (0..60).collect::<Vec<_>>());
    // A cursor saved for another directory is not used for this one.
    let other = d.path().join("other");
    std::fs::create_dir(&other).unwrap();
    append(&other, 0..5);
    let rx = Receiver::start();
    let run = once(&other, &rx, &["--positions", pos, "--from-beginning"]);
    assert_eq!(rx.entries().len(), 5);
    assert!(run.stderr().contains("is for"), "{}", run.stderr());
}

/// A stand-in for journalctl: a shell script (copied so that no test thread holds it
/// open for writing when it runs).
fn fake_journalctl(dir: &Path, script: &str) -> PathBuf {
    let src = dir.join("fake.src");
    std::fs::write(&src, format!("#!/bin/sh\n{script}\n")).unwrap();
    let dest = dir.join("journalctl");
    homelab_testkit::copy_executable(&src, &dest);
    dest
}

#[test]
fn journalctl_missing_failing_or_writing_garbage_is_a_clear_error() {
    let _shared = homelab_testkit::shared();
    let d = tempfile::tempdir().unwrap();
    let base = ["--journal", "--once", "--stdout", "--from-beginning"];
    // Not installed: 69, and what to do.
    let r = run(&[&base[..], &["--journalctl", "/nonexistent/journalctl"]].concat());
    assert_eq!(r.code(), Some(69), "{}", r.stderr());
    assert!(
        r.stderr().starts_with(
            "log-tail-ship: --journal needs /nonexistent/journalctl, which is not installed: install"
        ),
        "{}",
        r.stderr()
    );
    // Failing at the start: 69 with what it said.
    let fails = fake_journalctl(
        d.path(),
        "echo 'Failed to open journal: Permission denied' >&2; exit 1",
    );
    let r = run(&[&base[..], &["--journalctl", fails.to_str().unwrap()]].concat());
    assert_eq!(r.code(), Some(69), "{}", r.stderr());
    assert!(
        r.stderr().contains(
            "ended with status 1 reading the system journal (Failed to open journal: Permission denied)"
        ),
        "{}",
        r.stderr()
    );
    // Garbage among entries: skipped with a warning, the entries around it shipped.
    let entry = |n: u64| {
        format!(
            r#"{{"__CURSOR":"s=1;i={n}","__REALTIME_TIMESTAMP":"{}","MESSAGE":"entry {n:06}","PRIORITY":"6"}}"#,
            BASE_US + n
        )
    };
    let script = format!(
        "printf '%s\\n' '{}' 'garbage' '{{\"MESSAGE\":\"no cursor\"}}' '{}'",
        entry(1),
        entry(2)
    );
    let d2 = tempfile::tempdir().unwrap();
    let garbage = fake_journalctl(d2.path(), &script);
    let r = run(&[&base[..], &["--journalctl", garbage.to_str().unwrap()]].concat());
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert_eq!(r.texts(), ["entry 000001", "entry 000002"]);
    assert!(
        r.stderr().contains("wrote not a journal entry in JSON"),
        "{}",
        r.stderr()
    );
    assert_eq!(r.summary().errors.len(), 1, "{:?}", r.summary().errors);
    assert_eq!(
        r.lines[0].labels.get("priority").map(String::as_str),
        Some("info")
    );
    // A --journal-dir that does not exist: 66.
    let r = run(&["--journal-dir", "/nonexistent/journal", "--once", "--stdout"]);
    assert_eq!(r.code(), Some(66), "{}", r.stderr());
}

#[test]
fn journalctl_ending_while_following_is_started_again_after_the_last_entry_read() {
    let _shared = homelab_testkit::shared();
    let d = tempfile::tempdir().unwrap();
    let entry = |n: u64| {
        format!(
            r#"{{"__CURSOR":"s=1;i={n}","__REALTIME_TIMESTAMP":"{}","MESSAGE":"entry {n:06}"}}"#,
            BASE_US + n
        )
    };
    // The first one writes an entry and ends; the second writes the next and stays.
    let script = format!(
        "args=\"$(dirname \"$0\")/args\"\necho \"$*\" >> \"$args\"\n\
         if [ \"$(wc -l < \"$args\")\" = 1 ]; then printf '%s\\n' '{}'; exit 0; fi\n\
         printf '%s\\n' '{}'\nexec sleep 60",
        entry(1),
        entry(2)
    );
    let fake = fake_journalctl(d.path(), &script);
    let rx = Receiver::start();
    let child = ship()
        .args([
            "--journal",
            "--from-beginning",
            "--journalctl",
            fake.to_str().unwrap(),
        ])
        .args(["--loki", &rx.url(), "--batch-wait", "50ms", "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    homelab_testkit::wait_until(Duration::from_secs(20), "two entries", || rx.entries().len() >= 2);
    let out = terminate(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(rx.lines(), ["entry 000001", "entry 000002"]);
    assert!(
        stderr.contains("ended with status 0 reading the system journal; starting it again in 1 s"),
        "{stderr}"
    );
    let args = std::fs::read_to_string(d.path().join("args")).unwrap();
    let runs: Vec<&str> = args.lines().collect();
    assert_eq!(runs.len(), 2, "{args}");
    for r in &runs {
        assert!(
            r.contains("--merge") && r.contains("--follow") && r.contains("--output=json"),
            "{r}"
        );
    }
    assert!(!runs[0].contains("--after-cursor"), "{}", runs[0]);
    assert!(runs[1].ends_with("--after-cursor=s=1;i=1"), "{}", runs[1]);
}

fn start_shipper(dir: &Path, positions: &Path, url: &str, stderr: &Path) -> Child {
    ship()
        .args(["--journal-dir", dir.to_str().unwrap(), "--from-beginning"])
        .args(["--loki", url, "--positions", positions.to_str().unwrap()])
        // Positions saved often, batches held long: much is read and not yet
        // acknowledged at any moment, so a cursor saved too early would lose entries.
        .args(["--sync-interval", "100ms", "--batch-wait", "400ms"])
        .args(["--label", "host=test", "--quiet"])
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(stderr)
                .unwrap(),
        )
        .spawn()
        .unwrap()
}

/// The saved cursor's sequence number: systemd-journal-remote numbers the entries of
/// one file from 1 (`i=` in the cursor), so entry `n` has `i=n+1`.
fn acked_entry(positions: &Path) -> Option<u64> {
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(positions).ok()?).unwrap();
    let cursor = saved["journal"]["cursor"].as_str()?;
    let i = cursor
        .split(';')
        .find_map(|p| p.strip_prefix("i="))
        .unwrap_or_else(|| panic!("no i= in {cursor}"));
    Some(u64::from_str_radix(i, 16).unwrap() - 1)
}

#[test]
fn sigkill_and_restart_neither_lose_nor_repeat_entries_outside_the_unacknowledged_window() {
    const PER_BATCH: u64 = 50;
    /// A bound on the writer, should the kills take far longer than they should.
    const MAX_BATCHES: u64 = 2_000;
    const KILLS: usize = 8;
    let _shared = homelab_testkit::shared();
    let mut rng = Rng::from_env("JOURNAL_SEED");
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("journal");
    std::fs::create_dir(&dir).unwrap();
    let positions = d.path().join("positions.json");
    let stderr = d.path().join("shipper.stderr");
    let rx = Receiver::start();
    append(&dir, 0..PER_BATCH);
    // The writer appends a batch every 25 ms (2,000 entries/s) until the kills are over.
    let written = Arc::new(AtomicU64::new(PER_BATCH));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (dir, written, stop) = (dir.clone(), Arc::clone(&written), Arc::clone(&stop));
        std::thread::spawn(move || {
            let start = Instant::now();
            for b in 1..MAX_BATCHES {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                append(&dir, b * PER_BATCH..(b + 1) * PER_BATCH);
                written.store((b + 1) * PER_BATCH, Ordering::SeqCst);
                let due = Duration::from_millis(25 * b);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        })
    };
    // (entries received before the kill, last entry acknowledged in the positions file)
    let mut kills: Vec<(usize, Option<u64>)> = Vec::new();
    let mut shipper = start_shipper(&dir, &positions, &rx.url(), &stderr);
    for _ in 0..KILLS {
        // Each run gets to push (however slow its start, as under qemu), then is
        // killed at a random moment of what follows.
        let before = rx.entries().len();
        homelab_testkit::wait_until(Duration::from_secs(30), "a push of the restarted shipper", || {
            rx.entries().len() > before
        });
        std::thread::sleep(Duration::from_millis(rng.next() % 500));
        let _ = shipper.kill(); // SIGKILL
        let _ = shipper.wait();
        kills.push((rx.entries().len(), acked_entry(&positions)));
        shipper = start_shipper(&dir, &positions, &rx.url(), &stderr);
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let total = written.load(Ordering::SeqCst);
    let distinct = || {
        let mut seen: Vec<u64> = rx.entries().iter().map(|e| number(&e.line)).collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len() as u64
    };
    homelab_testkit::wait_until(Duration::from_secs(60), "every entry received", || {
        distinct() >= total
    });
    let out = terminate(shipper);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    let entries = rx.entries();
    // Every entry, each copy identical (the journal's time, the same labels).
    let mut first: HashMap<u64, &Received> = HashMap::new();
    let mut copies = 0;
    for e in &entries {
        let n = check_entry(e);
        match first.get(&n) {
            Some(f) => {
                copies += 1;
                assert_eq!(
                    (f.ts, &f.labels),
                    (e.ts, &e.labels),
                    "entry {n} sent again differently"
                );
            }
            None => {
                first.insert(n, e);
            }
        }
    }
    assert_eq!(first.len() as u64, total, "every entry arrives");
    let resumed = kills.iter().filter(|k| k.1.is_some()).count();
    assert!(
        resumed >= KILLS / 2,
        "only {resumed} restarts had a saved cursor: {kills:?}"
    );
    // Sent again only from the unacknowledged window: after a restart, nothing at or
    // before the cursor saved when it was killed.
    for (i, &(before, acked)) in kills.iter().enumerate() {
        if let Some(k) = acked
            && let Some(e) = entries[before..].iter().find(|e| number(&e.line) <= k)
        {
            panic!(
                "restart {}: entry {} sent again though the saved cursor was at entry {k}",
                i + 1,
                number(&e.line)
            );
        }
    }
    eprintln!(
        "journal kill test: {total} entries, {KILLS} SIGKILLs, {copies} sent again (each within its unacknowledged window)"
    );
}
