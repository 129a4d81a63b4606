//! Rotation from the user's side: a file written at a steady rate and rotated the way
//! logrotate's `copytruncate` with `rotate 4` does it, again and again (the numbered
//! copies shift `.3` → `.4`, `.2` → `.3`, `.1` → `.2`, the live file is copied to `.1`
//! in pieces, then truncated), shipped to the Loki stand-in with no fault at all: every
//! line must arrive exactly once, under the live file's name.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

/// `rotate N` with `copytruncate`: drop `.N`, shift the others up, copy the live file
/// to `.1` as logrotate does (create, then write in pieces), then truncate it through
/// the writer's own descriptor (opened with O_APPEND, so it goes on at the new end).
pub fn copytruncate(dir: &Path, name: &str, keep: usize, writer: &fs::File) {
    let n = |i: usize| dir.join(format!("{name}.{i}"));
    let _ = fs::remove_file(n(keep));
    for i in (1..keep).rev() {
        if n(i).exists() {
            fs::rename(n(i), n(i + 1)).unwrap();
        }
    }
    let mut from = fs::File::open(dir.join(name)).unwrap();
    let mut to = fs::File::create(n(1)).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let got = from.read(&mut buf).unwrap();
        if got == 0 {
            break;
        }
        to.write_all(&buf[..got]).unwrap();
        // logrotate copies with read/write: the copy is visible half-made meanwhile.
        std::thread::yield_now();
    }
    writer.set_len(0).unwrap();
}

/// What arrived, by line number: (labels' filename, timestamp) per time received.
pub type Arrivals = HashMap<u64, Vec<(String, i64)>>;

pub fn arrivals(entries: &[Received]) -> Arrivals {
    let mut by: Arrivals = HashMap::new();
    for e in entries {
        let n: u64 = e.line[..7]
            .parse()
            .unwrap_or_else(|_| panic!("garbled line {:?}", e.line));
        let f = e.labels.get("filename").cloned().unwrap_or_default();
        by.entry(n).or_default().push((f, e.ts));
    }
    by
}

/// Lines received more than once, and those among them received under other labels
/// or timestamps (which Loki keeps as different entries).
pub fn twice(by: &Arrivals) -> (Vec<u64>, Vec<u64>) {
    let mut dup: Vec<u64> = by.iter().filter(|(_, v)| v.len() > 1).map(|(n, _)| *n).collect();
    dup.sort();
    let differing = dup
        .iter()
        .copied()
        .filter(|n| by[n].iter().any(|x| *x != by[n][0]))
        .collect();
    (dup, differing)
}

#[test]
fn consecutive_copytruncate_rotations_ship_every_line_once_under_the_live_name() {
    let _shared = homelab_testkit::shared();
    const LINES: u64 = 120_000;
    const ROTATE_EVERY: u64 = 10_000;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let log = dir.join("app.log");
    let rx = Receiver::start();
    let mut w = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let shipper = ship()
        .args([
            "--file",
            log.to_str().unwrap(),
            "--from-beginning",
            "--loki",
            &rx.url(),
            "--positions",
            dir.join("positions.json").to_str().unwrap(),
            "--sync-interval",
            "1s",
            "--batch-wait",
            "100ms",
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    homelab_testkit::wait_until(Duration::from_secs(20), "the positions file", || {
        dir.join("positions.json").exists()
    });
    // About 40,000 lines/s, in bursts of 1,000.
    let start = Instant::now();
    let mut buf = Vec::new();
    let mut rotations = 0;
    for burst in 0..LINES / 1_000 {
        buf.clear();
        for i in burst * 1_000..(burst + 1) * 1_000 {
            writeln!(buf, "{i:07} the quick brown fox jumps over").unwrap();
        }
        w.write_all(&buf).unwrap();
        let n = (burst + 1) * 1_000;
        if n % ROTATE_EVERY == 0 && n < LINES {
            copytruncate(dir, "app.log", 4, &w);
            rotations += 1;
        }
        if let Some(wait) = (Duration::from_millis(25) * (burst as u32 + 1)).checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    let got = |rx: &Receiver| {
        let st = rx.state.lock().unwrap();
        let mut seen = std::collections::HashSet::new();
        for e in &st.entries {
            seen.insert(e.line[..7].to_string());
        }
        seen.len() as u64
    };
    let limit = Instant::now() + Duration::from_secs(30);
    while got(&rx) < LINES && Instant::now() < limit {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Give a copy shipped a second time the chance to arrive.
    std::thread::sleep(Duration::from_millis(1500));
    let out = terminate(shipper);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let by = arrivals(&rx.entries());
    let missing: Vec<u64> = (0..LINES).filter(|n| !by.contains_key(n)).collect();
    let (dup, differing) = twice(&by);
    let names: std::collections::BTreeSet<&str> = by.values().flatten().map(|(f, _)| f.as_str()).collect();
    println!(
        "{LINES} lines, {rotations} copytruncate rotations: {} missing, {} received twice ({} under other labels or timestamps), filename labels {names:?}",
        missing.len(),
        dup.len(),
        differing.len()
    );
    assert!(
        missing.is_empty(),
        "lines lost: {:?}…; {stderr}",
        &missing[..missing.len().min(5)]
    );
    assert!(
        dup.is_empty(),
        "{} lines received twice with no fault at all ({} under other labels or timestamps), first {:?}",
        dup.len(),
        differing.len(),
        dup.first().map(|n| &by[n])
    );
    assert_eq!(names.into_iter().collect::<Vec<_>>(), [log.to_str().unwrap()]);
}
