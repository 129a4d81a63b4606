//! What a wake-up costs: a write to one of many followed files is looked at alone
//! (the file inotify named), not with every other followed file; all of them are looked
//! at together (a sweep) only at the start, after a look for files, and on the safety
//! net's timer. Counted by the summary's `file_looks_total` and `file_sweeps_total`.

use std::fs;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use homelab_testkit::wait_until;

use crate::common::*;

const FILES: u64 = 200;
const WRITES: u64 = 20;

#[test]
fn a_write_to_one_of_200_followed_files_looks_at_that_file_alone() {
    let _shared = homelab_testkit::shared();
    let logs = tempfile::tempdir().unwrap();
    for i in 0..FILES {
        fs::write(logs.path().join(format!("f{i:03}.log")), "before\n").unwrap();
    }
    let d = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (d.path().join("out.jsonl"), d.path().join("err.txt"));
    let pattern = format!("{}/*.log", logs.path().display());
    let child = ship()
        .args(["--file", &pattern, "--from-beginning", "--stdout"])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let output = || fs::read_to_string(&out_path).unwrap_or_default();
    wait_until(Duration::from_secs(20), "every file read", || {
        output().matches("\"before\"").count() as u64 == FILES
    });
    let one = logs.path().join("f123.log");
    // Each line waited for: each is its own wake-up (a sweep at each would be 200
    // looks apiece).
    for k in 0..WRITES {
        fs::OpenOptions::new()
            .append(true)
            .open(&one)
            .and_then(|mut f| f.write_all(format!("line {k}\n").as_bytes()))
            .unwrap();
        wait_until(Duration::from_secs(20), &format!("line {k}"), || {
            output().contains(&format!("line {k}\""))
        });
    }
    let end = terminate(child);
    let r = parse(std::process::Output {
        status: end.status,
        stdout: fs::read(&out_path).unwrap(),
        stderr: fs::read(&err_path).unwrap(),
    });
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert_eq!(r.lines.len() as u64, FILES + WRITES, "every line once");
    let s = r.summary();
    assert_eq!(s.files_open, FILES);
    // The start's sweep, and one more per 10 s at most (the safety net).
    assert!(
        (1..=5).contains(&s.file_sweeps_total),
        "{} sweeps for {WRITES} writes",
        s.file_sweeps_total
    );
    // Outside sweeps: a few looks per write (one per wake-up it caused), never all
    // 200 files.
    let outside = s.file_looks_total - FILES * s.file_sweeps_total;
    assert!(
        (WRITES..=5 * WRITES).contains(&outside),
        "{outside} looks outside sweeps for {WRITES} writes ({} in all)",
        s.file_looks_total
    );
}

#[test]
fn a_gather_longer_than_a_second_is_a_usage_error() {
    let _shared = homelab_testkit::shared();
    let r = run(&["--stdin", "--gather", "2s"]);
    assert_eq!(r.code(), Some(64), "{}", r.stderr());
    let err = r.stderr();
    assert!(
        err.contains("--gather") && err.contains("longer than 1s"),
        "{err}"
    );
    assert!(r.lines.is_empty());
}
