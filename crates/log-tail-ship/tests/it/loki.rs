//! Pushing to the Loki stand-in: body, headers, retries, rejections, metrics.

use std::process::Stdio;
use std::time::Duration;

use crate::common::*;
use homelab_testkit::{promtool_check_metrics, series, wait_until};

#[test]
fn pushes_gzipped_json_with_tenant_auth_and_labels() {
    let _shared = homelab_testkit::shared();
    let rx = Receiver::start();
    let d = tempfile::tempdir().unwrap();
    let pw = d.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let r = run_with_input(
        &[
            "--stdin",
            "--loki",
            &rx.url(),
            "--tenant",
            "homelab",
            "--basic-auth-user",
            "pi",
            "--basic-auth-password-file",
            pw.to_str().unwrap(),
            "--label",
            "job=t",
        ],
        b"hello\nworld\n",
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let e = rx.entries();
    assert_eq!(rx.lines(), ["hello", "world"]);
    assert_eq!(e[0].labels.get("job").map(String::as_str), Some("t"));
    assert!(e[0].labels.contains_key("host"));
    assert!(e[0].ts < e[1].ts);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    assert!((now - e[0].ts).abs() < 60_000_000_000, "nanoseconds, near now");
    let st = rx.state.lock().unwrap();
    let h = &st.headers[0];
    assert_eq!(h.get("content-encoding").map(String::as_str), Some("gzip"));
    assert_eq!(h.get("x-scope-orgid").map(String::as_str), Some("homelab"));
    // base64("pi:s3cret")
    assert_eq!(
        h.get("authorization").map(String::as_str),
        Some("Basic cGk6czNjcmV0")
    );
    drop(st);
    assert_eq!(r.summary().lines_shipped_total, 2);
    assert!(!r.stderr().contains("s3cret"));
}

#[test]
fn retries_429_and_500_and_a_missing_server_without_dropping() {
    let _shared = homelab_testkit::shared();
    let rx = Receiver::start();
    rx.script(&[Answer::Status(429), Answer::Status(500), Answer::Status(503)]);
    let r = run_with_input(
        &["--stdin", "--loki", &rx.url(), "--max-backoff", "1s"],
        b"a\nb\nc\n",
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert_eq!(rx.lines(), ["a", "b", "c"]);
    let s = r.summary();
    assert_eq!((s.push_retries_total, s.lines_shipped_total), (3, 3));
    assert!(r.stderr().contains("429"), "{}", r.stderr());

    // Nobody listening for a while: the same batch goes out once it is back.
    rx.go_away();
    let mut child = ship()
        .args(["--stdin", "--loki", &rx.url(), "--max-backoff", "1s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut i = child.stdin.take().unwrap();
        i.write_all(b"d\ne\n").unwrap();
    }
    // Ready when the agent says its push failed: the batch is then held, not dropped.
    let (tx, failed) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("failed") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    failed
        .recv_timeout(Duration::from_secs(60))
        .expect("the agent reports the failed push");
    assert_eq!(rx.lines().len(), 3);
    rx.come_back();
    let out = parse(child.wait_with_output().unwrap());
    let stderr = reader.join().unwrap();
    assert_eq!(out.code(), Some(0), "{stderr}");
    assert_eq!(rx.lines(), ["a", "b", "c", "d", "e"]);
    assert!(out.summary().push_retries_total >= 1, "{stderr}");
}

#[test]
fn a_400_batch_is_counted_as_rejected_and_not_sent_again() {
    let _shared = homelab_testkit::shared();
    let rx = Receiver::start();
    rx.state.lock().unwrap().max_line = Some(10);
    let d = tempfile::tempdir().unwrap();
    let r = run_with_input(
        &[
            "--stdin",
            "--loki",
            &rx.url(),
            "--textfile-dir",
            d.path().to_str().unwrap(),
        ],
        b"short\nthis one is far too long for the server\nok\n",
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    // Loki keeps the valid entries of a 400 batch; they must not come twice.
    assert_eq!(rx.lines(), ["short", "ok"]);
    assert_eq!(rx.state.lock().unwrap().pushes, 1);
    let s = r.summary();
    assert_eq!((s.batches_rejected_total, s.lines_dropped_rejected_total), (1, 3));
    assert!(r.stderr().contains("line_too_long"), "{}", r.stderr());
    let page = std::fs::read_to_string(d.path().join("log-tail-ship.prom")).unwrap();
    promtool_check_metrics(&page);
    assert_eq!(series(&page, "logship_batches_rejected_total"), Some(1.0));
    assert_eq!(
        series(&page, r#"logship_lines_dropped_total{reason="rejected"}"#),
        Some(3.0)
    );
    assert_eq!(
        series(&page, r#"logship_lines_read_total{source="stdin"}"#),
        Some(3.0)
    );
}

#[test]
fn follows_a_file_and_keeps_metrics_fresh() {
    let _shared = homelab_testkit::shared();
    let rx = Receiver::start();
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("app.log");
    std::fs::write(&log, "before start\n").unwrap();
    let tf = d.path().join("textfile");
    std::fs::create_dir(&tf).unwrap();
    let child = ship()
        .args([
            "--file",
            log.to_str().unwrap(),
            "--loki",
            &rx.url(),
            "--batch-wait",
            "100ms",
            "--sync-interval",
            "200ms",
            "--positions",
            d.path().join("pos.json").to_str().unwrap(),
            "--textfile-dir",
            tf.to_str().unwrap(),
            "--drop",
            "noise",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    read_when_there(&tf.join("log-tail-ship.prom"));
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"one\nnoise\ntwo\n").unwrap();
    }
    wait_until(Duration::from_secs(10), "two lines at the receiver", || {
        rx.lines().len() >= 2
    });
    wait_until(Duration::from_secs(10), "the metrics", || {
        let page = std::fs::read_to_string(tf.join("log-tail-ship.prom")).unwrap_or_default();
        series(&page, "logship_lines_shipped_total") == Some(2.0)
    });
    let page = std::fs::read_to_string(tf.join("log-tail-ship.prom")).unwrap();
    promtool_check_metrics(&page);
    let src = log.to_str().unwrap();
    assert_eq!(
        series(&page, &format!("logship_lines_read_total{{source=\"{src}\"}}")),
        Some(3.0)
    );
    assert_eq!(
        series(&page, &format!("logship_lag_bytes{{source=\"{src}\"}}")),
        Some(0.0)
    );
    assert_eq!(
        series(&page, r#"logship_lines_dropped_total{reason="filter"}"#),
        Some(1.0)
    );
    assert!(series(&page, "logship_last_push_timestamp_seconds").is_some());
    let out = parse(terminate(child));
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    assert_eq!(rx.lines(), ["one", "two"], "read from its end on the first start");
    assert_eq!(
        rx.entries()[0].labels.get("filename").map(String::as_str),
        Some(src)
    );
}

#[test]
fn delete_and_recreate_drains_the_old_handle_first() {
    let _shared = homelab_testkit::shared();
    use std::io::Write;
    let rx = Receiver::start();
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("c-json.log");
    std::fs::write(&log, "").unwrap();
    let child = ship()
        .args([
            "--file",
            log.to_str().unwrap(),
            "--from-beginning",
            "--loki",
            &rx.url(),
            "--batch-wait",
            "50ms",
            "--positions",
            d.path().join("pos.json").to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut old = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    old.write_all(b"old 1\n").unwrap();
    wait_until(Duration::from_secs(10), "old 1", || rx.lines().len() == 1);
    // Docker with max-file=1: unlink, keep writing the old handle a moment, recreate.
    std::fs::remove_file(&log).unwrap();
    old.write_all(b"old 2\nold 3\n").unwrap();
    drop(old);
    std::fs::write(&log, "new 1\n").unwrap();
    wait_until(Duration::from_secs(10), "four lines", || rx.lines().len() == 4);
    let out = terminate(child);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(rx.lines(), ["old 1", "old 2", "old 3", "new 1"]);
}

#[test]
fn a_file_opened_empty_during_an_outage_then_copytruncated_loses_nothing() {
    let _shared = homelab_testkit::shared();
    // A file created while pushes are retried is opened empty (nothing to fingerprint
    // yet), filled, then copytruncated before any of it was read: its first lines are
    // in the copy only, which must still be found and read.
    let rx = Receiver::start();
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("app.log");
    let first = d.path().join("first.log");
    std::fs::write(&first, "").unwrap();
    let glob = format!("{}/*.log", d.path().display());
    rx.script(&[Answer::Status(500); 10_000]);
    let child = ship()
        .args(["--file", &glob, "--from-beginning", "--loki", &rx.url()])
        .args(["--batch-wait", "50ms", "--max-backoff", "200ms", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pushes = || rx.state.lock().unwrap().pushes;
    // A line to push: from now on the push is retried and reading paused.
    std::fs::write(&first, "before\n").unwrap();
    wait_until(Duration::from_secs(20), "a first push", || pushes() >= 1);
    // A new file, empty when the shipper opens it.
    std::fs::write(&log, "").unwrap();
    let fds = format!("/proc/{}/fd", child.id());
    wait_until(Duration::from_secs(20), "app.log opened", || {
        std::fs::read_dir(&fds)
            .map(|fds| {
                fds.flatten()
                    .any(|f| std::fs::read_link(f.path()).is_ok_and(|p| p == log))
            })
            .unwrap_or(false)
    });
    // Its lines come while the push is still being retried ...
    let old: Vec<String> = (0..200)
        .map(|i| format!("old {i:03} written before the copytruncate"))
        .collect();
    std::fs::write(&log, old.join("\n") + "\n").unwrap();
    let p = pushes();
    wait_until(Duration::from_secs(20), "two more attempts", || pushes() >= p + 2);
    // ... then it is copied, truncated and written again, all before it was read.
    std::fs::copy(&log, d.path().join("app.log.1")).unwrap();
    let new: Vec<String> = (0..300).map(|i| format!("new {i:03} after")).collect();
    std::fs::write(&log, new.join("\n") + "\n").unwrap();
    rx.state.lock().unwrap().script.clear();
    let want = 1 + old.len() + new.len();
    wait_until(Duration::from_secs(30), "every line", || {
        rx.entries().len() >= want
    });
    let out = terminate(child);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got = rx.lines();
    got.sort();
    let mut all: Vec<String> = old.into_iter().chain(new).collect();
    all.push("before".into());
    all.sort();
    assert_eq!(got, all);
}

/// Issue 21 part 5: `--format text` with Loki is a summary a person reads, in words
/// and units, not the Prometheus names and raw counts of the metrics page.
#[test]
fn the_text_summary_is_words_and_units() {
    let rx = Receiver::start();
    let mut child = crate::common::ship()
        .args(["--stdin", "--loki", &rx.url(), "--format", "text"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"a\nbb\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("logship_"), "{text}");
    assert!(text.contains("shipped"), "{text}");
    assert!(text.contains("2 lines (3 B)"), "{text}");
    assert!(text.contains("stdin"), "{text}");
    assert_eq!(rx.lines(), ["a", "bb"]);
}
