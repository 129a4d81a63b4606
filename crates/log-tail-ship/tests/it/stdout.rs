//! Lines to stdout: the record schema, filters, truncation, hostile input, and the
//! documented exit codes for bad flags and bad files.

use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn stdin_lines_become_line_records_with_labels_and_a_summary() {
    let _shared = homelab_testkit::shared();
    let r = run_with_input(
        &[
            "--stdin",
            "--stdout",
            "--label",
            "job=journal",
            "--label",
            "host=pi5",
        ],
        b"first\nsecond\nlast without newline",
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert_eq!(r.texts(), ["first", "second", "last without newline"]);
    let l = &r.lines[0];
    assert_eq!(l.kind, "line");
    assert_eq!(l.labels.get("job").map(String::as_str), Some("journal"));
    assert_eq!(l.labels.get("host").map(String::as_str), Some("pi5"));
    assert_eq!(l.labels.len(), 2, "{:?}", l.labels);
    assert!(
        l.timestamp.ends_with('Z') && l.timestamp.len() == 30,
        "{}",
        l.timestamp
    );
    let ts: Vec<&str> = r.lines.iter().map(|l| l.timestamp.as_str()).collect();
    assert!(ts.windows(2).all(|w| w[0] < w[1]), "timestamps increase: {ts:?}");
    let s = r.summary();
    assert_eq!((s.lines_read_total, s.lines_shipped_total), (3, 3));
    assert_eq!(s.bytes_shipped_total, 5 + 6 + 20);
}

#[test]
fn keep_and_drop_filters_and_counts() {
    let _shared = homelab_testkit::shared();
    let input = b"GET /health 200\nerror: disk full\nwarn: slow\ninfo: fine\nerror: GET /health\n";
    let r = run_with_input(
        &[
            "--stdin",
            "--stdout",
            "--keep",
            "^(error|warn)",
            "--drop",
            "/health",
        ],
        input,
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert_eq!(r.texts(), ["error: disk full", "warn: slow"]);
    let s = r.summary();
    assert_eq!((s.lines_read_total, s.lines_dropped_filter_total), (5, 3));
}

#[test]
fn rate_limit_drops_and_counts_the_excess() {
    let _shared = homelab_testkit::shared();
    let input: String = (0..100).map(|i| format!("line {i}\n")).collect();
    let r = run_with_input(
        &["--stdin", "--stdout", "--rate", "1", "--burst", "10"],
        input.as_bytes(),
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let s = r.summary();
    // 10 at once, perhaps one more if the run took over a second.
    assert!((10..=12).contains(&s.lines_shipped_total), "{s:?}");
    assert_eq!(s.lines_dropped_rate_limit_total + s.lines_shipped_total, 100);
}

#[test]
fn hostile_input_is_shipped_or_counted_never_a_crash_or_a_stall() {
    let _shared = homelab_testkit::shared();
    let mut input = Vec::new();
    input.extend_from_slice(b"invalid \xff\xfe utf-8\n");
    input.extend_from_slice(b"nul \0 byte\n");
    input.extend_from_slice(&vec![b'x'; 10 * 1024 * 1024]); // 10 MB, then a newline later
    input.extend_from_slice(b"\nafter the long one\n");
    input.extend_from_slice(&vec![b'y'; 10 * 1024 * 1024]); // 10 MB, never terminated
    let t = Instant::now();
    let r = run_with_input(&["--stdin", "--stdout", "--max-line-bytes", "1024"], &input);
    assert!(t.elapsed() < Duration::from_secs(20), "took {:?}", t.elapsed());
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let texts = r.texts();
    assert_eq!(
        texts.len(),
        5,
        "{:?}",
        texts.iter().map(|t| t.len()).collect::<Vec<_>>()
    );
    assert_eq!(texts[0], "invalid \u{fffd}\u{fffd} utf-8");
    assert_eq!(texts[1], "nul \0 byte");
    assert!(
        texts[2].len() <= 1024 && texts[2].ends_with("…[truncated]"),
        "{}",
        texts[2].len()
    );
    assert_eq!(texts[3], "after the long one");
    assert!(texts[4].starts_with("yyyy") && texts[4].ends_with("…[truncated]"));
    assert_eq!(r.summary().lines_truncated_total, 2);
}

#[test]
fn a_file_once_from_the_beginning_then_only_what_is_new() {
    let _shared = homelab_testkit::shared();
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("app.log");
    let pos = d.path().join("positions.json");
    std::fs::write(&log, "one\ntwo\n").unwrap();
    let glob = format!("{}/*.log", d.path().display());
    let args = [
        "--file",
        &glob,
        "--stdout",
        "--once",
        "--positions",
        pos.to_str().unwrap(),
    ];
    // First run without --from-beginning: a new file is read from its end.
    let r = run(&args);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert!(r.lines.is_empty(), "{:?}", r.texts());
    std::fs::write(&log, "one\ntwo\nthree\n").unwrap();
    let r = run(&args);
    assert_eq!(r.texts(), ["three"]);
    assert_eq!(
        r.lines[0].labels.get("filename").map(String::as_str),
        Some(log.to_str().unwrap())
    );
    let r = run(&args);
    assert!(r.lines.is_empty(), "nothing new: {:?}", r.texts());
    let mut fb = args.to_vec();
    fb.push("--from-beginning");
    let r = run(&fb);
    assert!(
        r.lines.is_empty(),
        "a known file resumes where it was, even with --from-beginning"
    );
}

#[test]
fn bad_flags_and_bad_files_have_documented_exit_codes() {
    let _shared = homelab_testkit::shared();
    let d = tempfile::tempdir().unwrap();
    let r = run(&["--stdout"]);
    assert_eq!(r.code(), Some(64));
    assert!(r.stderr().contains("no source"), "{}", r.stderr());
    let r = run(&["--stdin", "--stdout", "--drop", "("]);
    assert_eq!(r.code(), Some(64), "{}", r.stderr());
    assert!(r.stderr().contains("--drop \"(\""), "{}", r.stderr());
    let r = run(&["--stdin"]);
    assert_eq!(r.code(), Some(64));
    let pos = d.path().join("positions.json");
    std::fs::write(&pos, b"\xff garbage").unwrap();
    let r = run(&["--stdin", "--stdout", "--positions", pos.to_str().unwrap()]);
    assert_eq!(r.code(), Some(65), "{}", r.stderr());
    assert!(
        r.stderr().starts_with("log-tail-ship: --positions"),
        "{}",
        r.stderr()
    );
    let r = run(&[
        "--docker",
        "--stdout",
        "--docker-host",
        &format!("unix://{}/no.sock", d.path().display()),
    ]);
    assert_eq!(r.code(), Some(69), "{}", r.stderr());
    assert!(r.stderr().contains("--docker-host"), "{}", r.stderr());
    let r = run(&[
        "--stdin",
        "--loki",
        "http://127.0.0.1:9",
        "--basic-auth-user",
        "u",
        "--basic-auth-password-file",
        d.path().join("missing").to_str().unwrap(),
    ]);
    assert_eq!(r.code(), Some(66), "{}", r.stderr());
    let r = run(&["--stdin", "--stdout", "--format", "prom"]);
    assert_eq!(r.code(), Some(64));
    assert!(r.output.stdout.is_empty());
}

#[test]
fn many_batches_arrive_whole_in_order_once_and_are_acknowledged() {
    let _shared = homelab_testkit::shared();
    // Far more than one batch (the formatter threads take full ones while the next is
    // read), with the dropped needle at every place relative to the 256 KiB reads, lines
    // that need escaping, and a line that is not UTF-8.
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("access.log");
    let pos = d.path().join("positions.json");
    let mut data = Vec::new();
    let mut want = Vec::new();
    let mut offsets = Vec::new();
    for i in 0..120_000u32 {
        let line = match i % 7 {
            0 => format!("{i} \"GET /health HTTP/1.1\" 200"),
            1 => format!("{i} \"GET /api/{} HTTP/1.1\" 200 \"-\" \\ back", i % 977),
            2 => format!("{i}\ttab GET /healt"),
            3 => format!("{i} {}", "x".repeat((i % 300) as usize)),
            4 => format!("{i} GET /health"),
            5 => format!("GET /health {i}"),
            _ => format!("{i} ünïcödé"),
        };
        if !line.contains("GET /health") {
            offsets.push(data.len() as u64);
            want.push(line.clone());
        }
        data.extend_from_slice(line.as_bytes());
        data.push(b'\n');
    }
    offsets.push(data.len() as u64);
    data.extend_from_slice(b"bad \xff utf-8\n");
    want.push("bad \u{fffd} utf-8".into());
    std::fs::write(&log, &data).unwrap();
    let r = run(&[
        "--file",
        log.to_str().unwrap(),
        "--from-beginning",
        "--once",
        "--stdout",
        "--drop",
        "GET /health",
        "--positions",
        pos.to_str().unwrap(),
        // One timestamp anchor for the whole run.
        "--sync-interval",
        "1h",
    ]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let texts = r.texts();
    assert_eq!(texts.len(), want.len());
    if let Some(i) = (0..want.len()).find(|&i| texts[i] != want[i]) {
        panic!("line {i}: {:?} instead of {:?}", texts[i], want[i]);
    }
    let s = r.summary();
    assert_eq!(s.lines_read_total, 120_001);
    assert_eq!(s.lines_shipped_total, want.len() as u64);
    assert_eq!(s.lines_dropped_filter_total, 120_001 - want.len() as u64);
    assert_eq!(
        s.bytes_shipped_total,
        want.iter().map(|l| l.len() as u64).sum::<u64>()
    );
    assert_eq!((s.lines_pending, s.lag_bytes), (0, 0));
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&pos).unwrap()).unwrap();
    assert_eq!(saved["files"][0]["offset"], data.len() as u64, "{saved}");
    // Each line is stamped from the anchor written before it was shipped (at offset 0:
    // one anchor for the whole run) as its time plus the line's offset in nanoseconds,
    // as it would be again after a crash. The file keeps the anchor set at the end.
    let anchors = saved["files"][0]["anchors"].as_array().unwrap();
    let last_ns = anchors.last().and_then(|a| a[1].as_u64()).unwrap();
    let mut anchor_ns = None;
    for (l, offset) in r.lines.iter().zip(&offsets) {
        let t = humantime::parse_rfc3339(&l.timestamp).unwrap();
        let ns = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        let first = *anchor_ns.get_or_insert(ns - offset);
        assert_eq!(ns - offset, first, "{} {}", l.timestamp, l.line);
    }
    let first = anchor_ns.unwrap();
    assert!(
        first <= last_ns && last_ns - first < 120_000_000_000,
        "{first} {saved}"
    );
}

#[test]
fn a_reader_that_goes_away_ends_the_run_quietly_and_nothing_is_acknowledged() {
    let _shared = homelab_testkit::shared();
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("app.log");
    let pos = d.path().join("positions.json");
    let line = "a line long enough to fill a few batches quickly\n";
    std::fs::write(&log, line.repeat(200_000)).unwrap();
    let mut child = ship()
        .args(["--file", log.to_str().unwrap(), "--from-beginning", "--stdout"])
        .args(["--positions", pos.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `log-tail-ship | head -1`: one record read, then the pipe is closed.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("\"kind\":\"line\""), "{first}");
    let t = Instant::now();
    let out = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "still running after its reader went away"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(out.code(), Some(0), "a broken pipe is success: {err}");
    assert!(err.is_empty(), "{err}");
    // Whatever the positions file says, it is not past what could have been read.
    if let Ok(p) = std::fs::read_to_string(&pos) {
        let saved: serde_json::Value = serde_json::from_str(&p).unwrap();
        let acked = saved["files"][0]["offset"].as_u64().unwrap_or(0);
        assert!(acked < (line.len() * 200_000) as u64, "{saved}");
    }
}
