//! The real logrotate (Debian's `logrotate`, installed by scripts/test) rotating a file
//! written at a steady rate, with configurations in the shapes users write, `-f` many
//! times while log-tail-ship ships to the Loki stand-in, with and without SIGKILLs
//! (restarted with the same --positions): every line arrives, a line arrives twice
//! only as a resend with the same labels and timestamp (which Loki drops), and nothing
//! but written lines arrives (no compressed copy read as text).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::rotation::{arrivals, twice};

struct Setup {
    /// The logrotate stanza's directives.
    directives: &'static str,
    /// The writer keeps its descriptor (copytruncate) or opens the file for every
    /// burst (an application that reopens after `create`).
    keeps_descriptor: bool,
    /// What --file follows, relative to the directory.
    glob: &'static str,
    rotations: u32,
    rotate_every: Duration,
    kills: bool,
}

const TEXT: &str = "the quick brown fox jumps over the lazy dog";

fn start(dir: &Path, glob: &str, url: &str) -> Child {
    ship()
        .args([
            "--file",
            dir.join(glob).to_str().unwrap(),
            "--from-beginning",
            "--loki",
            url,
            "--positions",
            dir.join("positions.json").to_str().unwrap(),
            "--sync-interval",
            "500ms",
            "--batch-wait",
            "100ms",
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(append_to(&dir.join("shipper.stderr")))
        .spawn()
        .unwrap()
}

/// The inode of the positions file (rewritten by rename), if there is one.
fn positions_inode(dir: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(dir.join("positions.json")).ok().map(|m| m.ino())
}

/// Waits until a shipper started after the positions file was `before` has looked at
/// the files (it writes the positions file after its first look). Rotations before the
/// first look of the very first start are outside the contract (rotated files found
/// then are not read), and a slow machine (qemu-user under load) can take longer to
/// start than the test takes to rotate.
fn wait_started(dir: &Path, before: Option<u64>) {
    homelab_testkit::wait_until(Duration::from_secs(60), "the shipper's first look", || {
        positions_inode(dir).is_some_and(|i| Some(i) != before)
    });
}

fn logrotate(conf: &Path, state: &Path) {
    let out = Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(state)
        .arg(conf)
        .output()
        .expect("logrotate is installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "logrotate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run(s: Setup) {
    let _shared = homelab_testkit::shared();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    let log = dir.join("app.log");
    fs::write(&log, "").unwrap();
    let conf = dir.join("logrotate.conf");
    fs::write(&conf, format!("{} {{\n{}\n}}\n", log.display(), s.directives)).unwrap();
    let state = dir.join("logrotate.state");
    let rx = Receiver::start();
    let mut shipper = start(&dir, s.glob, &rx.url());
    wait_started(&dir, None);

    // The writer: 250 lines every 20 ms (12,500 lines/s) until told to stop. With
    // copytruncate it waits while logrotate runs: what it would write between the copy
    // and the truncation is lost by design ("some logging data might be lost",
    // logrotate(8)), whoever reads the file.
    let stop = Arc::new(AtomicBool::new(false));
    let rotating = Arc::new(std::sync::Mutex::new(()));
    let writer = {
        let (log, stop, keep) = (log.clone(), Arc::clone(&stop), s.keeps_descriptor);
        let rotating = Arc::clone(&rotating);
        std::thread::spawn(move || {
            let open = || {
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap()
            };
            let mut f = open();
            let mut n = 0u64;
            let t0 = Instant::now();
            let mut buf = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                buf.clear();
                for i in n..n + 250 {
                    writeln!(buf, "{i:07} {TEXT}").unwrap();
                }
                if !keep {
                    f = open();
                }
                let quiet = rotating.lock().unwrap();
                f.write_all(&buf).unwrap();
                drop(quiet);
                n += 250;
                let due = Duration::from_millis(20) * (n / 250) as u32;
                if let Some(w) = due.checked_sub(t0.elapsed()) {
                    std::thread::sleep(w);
                }
            }
            n
        })
    };
    for r in 0..s.rotations {
        std::thread::sleep(s.rotate_every);
        let quiet = s.keeps_descriptor.then(|| rotating.lock().unwrap());
        logrotate(&conf, &state);
        drop(quiet);
        if s.kills && r % 2 == 1 {
            let _ = shipper.kill(); // SIGKILL
            let _ = shipper.wait();
            let before = positions_inode(&dir);
            shipper = start(&dir, s.glob, &rx.url());
            // Killed again only once it is up: a shipper killed before every first
            // look, rotation after rotation, is one that never ran.
            wait_started(&dir, before);
        }
    }
    std::thread::sleep(s.rotate_every / 2);
    stop.store(true, Ordering::SeqCst);
    let lines = writer.join().unwrap();

    let distinct = |rx: &Receiver| {
        let st = rx.state.lock().unwrap();
        st.entries
            .iter()
            .filter_map(|e| e.line.get(..7))
            .collect::<std::collections::HashSet<_>>()
            .len() as u64
    };
    let limit = Instant::now() + Duration::from_secs(30);
    while distinct(&rx) < lines && Instant::now() < limit {
        std::thread::sleep(Duration::from_millis(100));
    }
    // A copy read a second time would come now.
    std::thread::sleep(Duration::from_millis(800));
    let out = terminate(shipper);
    let stderr = fs::read_to_string(dir.join("shipper.stderr")).unwrap_or_default();
    assert_eq!(out.status.code(), Some(0), "{stderr}");

    let entries = rx.entries();
    let foreign: Vec<&str> = entries
        .iter()
        .map(|e| e.line.as_str())
        .filter(|l| l.len() != 8 + TEXT.len() || !l.ends_with(TEXT) || l[..7].parse::<u64>().is_err())
        .take(3)
        .collect();
    assert!(foreign.is_empty(), "not a written line: {foreign:?}");
    let by = arrivals(&entries);
    let missing: Vec<u64> = (0..lines).filter(|n| !by.contains_key(n)).collect();
    let (dup, differing) = twice(&by);
    let names: std::collections::BTreeSet<&str> = by.values().flatten().map(|(f, _)| f.as_str()).collect();
    let files: Vec<PathBuf> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    println!(
        "logrotate ({}), {} rotations{}: {lines} lines, {} missing, {} received twice ({} under other labels or timestamps); files {:?}",
        s.directives.split_whitespace().collect::<Vec<_>>().join(" "),
        s.rotations,
        if s.kills { ", SIGKILL every other one" } else { "" },
        missing.len(),
        dup.len(),
        differing.len(),
        files.iter().filter_map(|f| f.file_name()).collect::<Vec<_>>()
    );
    assert!(
        missing.is_empty(),
        "{} lines lost, first {:?}; stderr: {stderr}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        differing.is_empty(),
        "{} lines received twice under other labels or timestamps, first {:?}",
        differing.len(),
        differing.first().map(|n| &by[n])
    );
    if !s.kills {
        assert!(dup.is_empty(), "{} lines received twice with no fault", dup.len());
    }
    assert_eq!(names.into_iter().collect::<Vec<_>>(), [log.to_str().unwrap()]);
}

#[test]
fn logrotate_copytruncate_rotate_4() {
    run(Setup {
        directives: "rotate 4\ncopytruncate\nmissingok\nnotifempty",
        keeps_descriptor: true,
        glob: "app.log",
        rotations: 10,
        rotate_every: Duration::from_millis(250),
        kills: false,
    });
}

#[test]
fn logrotate_copytruncate_rotate_4_with_sigkills() {
    run(Setup {
        directives: "rotate 4\ncopytruncate",
        keeps_descriptor: true,
        glob: "app.log",
        rotations: 10,
        rotate_every: Duration::from_millis(400),
        kills: true,
    });
}

#[test]
fn logrotate_create_compress_delaycompress_with_sigkills_and_a_glob_over_the_rotated_files() {
    run(Setup {
        directives: "rotate 4\ncreate\ncompress\ndelaycompress\nmissingok\nnotifempty",
        keeps_descriptor: false,
        glob: "*.log*",
        rotations: 10,
        rotate_every: Duration::from_millis(400),
        kills: true,
    });
}

#[test]
fn logrotate_dateext() {
    // One rotation a second at most: the date names have seconds.
    run(Setup {
        directives: "rotate 4\ncreate\ndateext\ndateformat -%s\nmissingok\nnotifempty",
        keeps_descriptor: false,
        glob: "app.log",
        rotations: 4,
        rotate_every: Duration::from_millis(1050),
        kills: false,
    });
}
