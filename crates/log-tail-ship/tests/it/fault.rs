//! The fault test: 1,000,000 numbered lines written while the writer rotates by rename
//! and by copytruncate; log-tail-ship killed with SIGKILL at 10 random moments and
//! restarted; the Loki stand-in answering 429 and 500 in bursts and going away for
//! 10 seconds. The rotations go rename, copytruncate, copytruncate, ... (two
//! copytruncates in a row, with the numbered copies shifting, as `rotate N` makes
//! them). Every line must arrive; a line received more than once must carry the same
//! labels and timestamp each time (a resend of the unacknowledged window after a kill,
//! which Loki drops as a duplicate). The duplicates are counted and printed.
//!
//! `FAULT_SEED=<n>` repeats a run's kill moments (the seed is printed).
//!
//! Its sibling restarts log-tail-ship again and again while logrotate's renames shift
//! the numbered files, with the same checks (see its own comment).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;

const LINES: u64 = 1_000_000;
const ROTATE_EVERY: u64 = 80_000;
const KILLS: usize = 10;
/// What follows each line's 7-digit number.
const LINE_TEXT: &str = " the quick brown fox jumps over";

/// Shifts `app.log.N` to `app.log.N+1` (the files are kept: every line must stay
/// readable, as with logrotate's `rotate 20`).
fn shift(dir: &Path, generation: usize) {
    for n in (1..=generation).rev() {
        let from = dir.join(format!("app.log.{n}"));
        if from.exists() {
            fs::rename(&from, dir.join(format!("app.log.{}", n + 1))).unwrap();
        }
    }
}

/// Writes the numbered lines at a steady pace, rotating by rename, then copytruncate
/// twice, in turn. Returns the number of rotations.
fn writer(dir: PathBuf, done: Arc<AtomicBool>) -> usize {
    let log = dir.join("app.log");
    let open = || {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap()
    };
    let mut f = open();
    let mut rotations = 0;
    let start = Instant::now();
    let per_burst = 2_000u64;
    // About 40,000 lines/s: the run takes ~25 s, so kills and the outage overlap it.
    let burst_every = Duration::from_millis(50);
    let mut buf = Vec::with_capacity(per_burst as usize * 48);
    let mut n = 0u64;
    while n < LINES {
        buf.clear();
        for i in n..(n + per_burst).min(LINES) {
            writeln!(buf, "{i:07}{LINE_TEXT}").unwrap();
        }
        f.write_all(&buf).unwrap();
        let before = n;
        n = (n + per_burst).min(LINES);
        if n / ROTATE_EVERY != before / ROTATE_EVERY && n < LINES {
            rotations += 1;
            shift(&dir, rotations);
            if rotations % 3 == 1 {
                // rename + create (logrotate's default, Docker's json-file)
                fs::rename(&log, dir.join("app.log.1")).unwrap();
                f = open();
            } else {
                // copytruncate: the writer keeps its descriptor (O_APPEND)
                fs::copy(&log, dir.join("app.log.1")).unwrap();
                f.set_len(0).unwrap();
            }
        }
        let due = burst_every * (n / per_burst) as u32;
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    f.sync_all().unwrap();
    done.store(true, Ordering::SeqCst);
    rotations
}

fn start_shipper(dir: &Path, url: &str) -> Child {
    ship()
        .args([
            "--file",
            dir.join("app.log").to_str().unwrap(),
            "--from-beginning",
            "--loki",
            url,
            "--positions",
            dir.join("positions.json").to_str().unwrap(),
            "--sync-interval",
            "1s",
            "--batch-wait",
            "200ms",
            "--batch-bytes",
            "262144",
            "--max-backoff",
            "1s",
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(append_to(&dir.join("shipper.stderr")))
        .spawn()
        .unwrap()
}

#[test]
fn every_line_arrives_through_rotations_kills_and_an_unreliable_loki() {
    let _alone = homelab_testkit::alone();
    let mut rng = Rng::from_env("FAULT_SEED");
    let seed = rng.0;
    let test_start = Instant::now();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    fs::write(dir.join("app.log"), "").unwrap();
    let rx = Arc::new(Receiver::start());

    // Kill moments, spread over the ~25 s of writing plus the outage.
    let mut kills: Vec<Duration> = (0..KILLS)
        .map(|_| Duration::from_millis(500 + rng.below(26_000)))
        .collect();
    kills.sort();
    println!("kill moments: {kills:?}");

    let mut shipper = start_shipper(&dir, &rx.url());
    let done = Arc::new(AtomicBool::new(false));
    let w = {
        let (dir, done) = (dir.clone(), Arc::clone(&done));
        std::thread::spawn(move || writer(dir, done))
    };
    // The receiver's troubles: bursts of 429 and 500, and 10 s away.
    let troubles = {
        let rx = Arc::clone(&rx);
        let done = Arc::clone(&done);
        let mut rng = Rng(seed.rotate_left(17) | 1);
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut away_done = false;
            while !done.load(Ordering::SeqCst) || !away_done {
                std::thread::sleep(Duration::from_millis(1500 + rng.below(1000)));
                if !away_done && t0.elapsed() > Duration::from_secs(8) {
                    rx.go_away();
                    std::thread::sleep(Duration::from_secs(10));
                    rx.come_back();
                    away_done = true;
                    continue;
                }
                let code = if rng.below(2) == 0 { 429 } else { 500 };
                let n = 2 + rng.below(4) as usize;
                rx.script(&vec![Answer::Status(code); n]);
            }
        })
    };

    for k in &kills {
        if let Some(wait) = k.checked_sub(test_start.elapsed()) {
            std::thread::sleep(wait);
        }
        kill9(&mut shipper);
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        shipper = start_shipper(&dir, &rx.url());
    }
    let rotations = w.join().unwrap();
    println!("writer done at {:.1} s", test_start.elapsed().as_secs_f64());
    troubles.join().unwrap();

    let what = format!("{rotations} rotations (rename and copytruncate), {KILLS} SIGKILLs");
    Run {
        dir: &dir,
        seed,
        test_start,
    }
    .finish(shipper, &rx, LINES, &what);
    assert!(rotations >= 10);
}

/// Waits (at most two minutes) until the receiver holds all of lines `0..lines`.
/// Progress is printed every three seconds.
fn wait_for_every_line(rx: &Receiver, lines: u64, test_start: Instant) {
    let deadline = Duration::from_secs(120);
    let wait_start = Instant::now();
    // Counted incrementally: the receiver's lock is held only for the new entries.
    let mut seen = vec![false; lines as usize];
    let (mut counted, mut n_distinct) = (0usize, 0usize);
    let mut last_print = Instant::now();
    loop {
        {
            let st = rx.state.lock().unwrap();
            for e in &st.entries[counted..] {
                if let Some(i) = e.line.get(..7).and_then(|s| s.parse::<usize>().ok())
                    && i < seen.len()
                    && !seen[i]
                {
                    seen[i] = true;
                    n_distinct += 1;
                }
            }
            counted = st.entries.len();
        }
        if n_distinct >= lines as usize || wait_start.elapsed() >= deadline {
            break;
        }
        if last_print.elapsed() >= Duration::from_secs(3) {
            println!(
                "{:6.1} s: {n_distinct} distinct lines received",
                test_start.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A run's directory (the followed file and the shipper's stderr), seed and start.
struct Run<'a> {
    dir: &'a Path,
    seed: u64,
    test_start: Instant,
}

impl Run<'_> {
    /// Once every line arrived, stops the shipper (it must exit 0) and checks what the
    /// receiver got (see [`verify`]). `what` says what the run did, for the line printed
    /// to stderr.
    fn finish(&self, shipper: Child, rx: &Receiver, lines: u64, what: &str) {
        wait_for_every_line(rx, lines, self.test_start);
        let out = terminate(shipper);
        assert_eq!(out.status.code(), Some(0));
        verify(self, rx, lines, what);
    }
}

/// Every numbered line `0..lines` arrived intact under a `filename` label in the run's
/// directory, and a line received more than once carries the same timestamp and labels
/// each time.
fn verify(run: &Run, rx: &Receiver, lines: u64, what: &str) {
    let (dir, seed, test_start) = (run.dir, run.seed, run.test_start);
    let entries = rx.entries();
    type Labels = std::collections::BTreeMap<String, String>;
    let mut by_number: HashMap<u64, Vec<(i64, &str)>> = HashMap::with_capacity(lines as usize);
    let mut labels_of: HashMap<u64, Vec<&Labels>> = HashMap::new();
    for e in &entries {
        let n: u64 = e.line[..7]
            .parse()
            .unwrap_or_else(|_| panic!("garbled line {:?}", e.line));
        assert_eq!(&e.line[7..], LINE_TEXT, "line text intact: {:?}", e.line);
        assert_eq!(
            e.labels
                .get("filename")
                .map(|f| f.starts_with(dir.to_str().unwrap())),
            Some(true)
        );
        by_number.entry(n).or_default().push((e.ts, &e.line));
        labels_of.entry(n).or_default().push(&e.labels);
    }
    let missing: Vec<u64> = (0..lines).filter(|n| !by_number.contains_key(n)).collect();
    let duplicates: usize = by_number.values().map(|v| v.len() - 1).sum();
    let differing: Vec<(&u64, &Vec<(i64, &str)>)> = by_number
        .iter()
        .filter(|(_, v)| v.iter().any(|(ts, _)| *ts != v[0].0))
        .take(5)
        .collect();
    let n_differing = by_number
        .values()
        .filter(|v| v.iter().any(|(ts, _)| *ts != v[0].0))
        .count();
    let relabelled: Vec<(&u64, &Vec<&Labels>)> = labels_of
        .iter()
        .filter(|(_, v)| v.iter().any(|l| *l != v[0]))
        .take(5)
        .collect();
    let st = rx.state.lock().unwrap();
    // Straight to stderr (not captured by the test harness), so CI logs show it.
    let _ = writeln!(
        std::io::stderr(),
        "fault test: {lines} lines, {what}, {} pushes ({} answered 429/500), {} entries received, \
         {} missing, {duplicates} duplicates ({n_differing} lines with another timestamp, \
         labels all the same: {}), {:.1} s",
        st.pushes,
        st.refused,
        entries.len(),
        missing.len(),
        relabelled.is_empty(),
        test_start.elapsed().as_secs_f64()
    );
    drop(st);
    if !missing.is_empty() || !differing.is_empty() || !relabelled.is_empty() {
        let log = fs::read_to_string(dir.join("shipper.stderr")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        println!(
            "log-tail-ship's stderr, last lines:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    assert!(
        missing.is_empty(),
        "{} lines never arrived, first {:?} (seed {seed})",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        differing.is_empty(),
        "lines received twice with different timestamps: {differing:?} (seed {seed})"
    );
    assert!(
        relabelled.is_empty(),
        "lines received twice under different labels: {relabelled:?} (seed {seed})"
    );
}

/// logrotate's `rotate N` with `create`, often (`size` a few kB, or hourly on a busy
/// service), while log-tail-ship is restarted again and again (a crash loop, or
/// systemd's restarts): each rotation renames every numbered file up by one
/// (`.2` → `.3`, then `.1` → `.2`) before the live file becomes `.1`. A directory read
/// during those renames can miss a file, or name one that is another file by the time
/// it is opened; a restart that looks then must neither give up a file it knew nor
/// take one file for another. Every line must arrive, and a line sent twice (the
/// unacknowledged window after a kill) must carry the same timestamp both times.
///
/// `SHIFT_SEED=<n>` repeats a run's kill moments.
#[test]
fn restarts_while_the_numbered_files_shift_lose_nothing_and_restamp_nothing() {
    const GENERATIONS: u64 = 400;
    const PER_GENERATION: u64 = 250;
    let lines = GENERATIONS * PER_GENERATION;
    let _alone = homelab_testkit::alone();
    let mut rng = Rng::from_env("SHIFT_SEED");
    let seed = rng.0;
    let test_start = Instant::now();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    fs::write(dir.join("app.log"), "").unwrap();
    let rx = Receiver::start();
    let mut shipper = start_shipper(&dir, &rx.url());
    let done = Arc::new(AtomicBool::new(false));
    let w = {
        let (dir, done) = (dir.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let log = dir.join("app.log");
            let mut buf = Vec::new();
            for g in 0..GENERATIONS {
                buf.clear();
                for n in g * PER_GENERATION..(g + 1) * PER_GENERATION {
                    writeln!(buf, "{n:07}{LINE_TEXT}").unwrap();
                }
                let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
                f.write_all(&buf).unwrap();
                drop(f);
                std::thread::sleep(Duration::from_millis(10));
                // The numbered files are kept (`rotate` larger than the run makes), so
                // every line stays readable however far behind a restart is.
                shift(&dir, g as usize + 1);
                fs::rename(&log, dir.join("app.log.1")).unwrap();
                fs::File::create(&log).unwrap();
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut kills = 0;
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100 + rng.below(500)));
        kill9(&mut shipper);
        kills += 1;
        std::thread::sleep(Duration::from_millis(rng.below(50)));
        shipper = start_shipper(&dir, &rx.url());
    }
    w.join().unwrap();
    println!("writer done at {:.1} s", test_start.elapsed().as_secs_f64());
    let what = format!("{GENERATIONS} rotations shifting the numbered files, {kills} SIGKILLs");
    Run {
        dir: &dir,
        seed,
        test_start,
    }
    .finish(shipper, &rx, lines, &what);
    assert!(kills >= 5, "only {kills} restarts while the files shifted");
}
