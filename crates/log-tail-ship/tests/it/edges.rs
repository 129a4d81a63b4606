//! Edge cases that cost CPU or data, or ended in a quiet exit 0: an idle follower
//! without --positions, descriptors running out, unreadable and unmatched files,
//! relative paths, bad Loki URLs, a sink that never accepts, a corrupt positions file,
//! environment defaults against explicit flags.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use homelab_testkit::{series, wait_until};

/// CPU time (user + system, in clock ticks) a process has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Whether process `pid` holds `path` open.
fn holds_open(pid: u32, path: &Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten()
                .any(|f| std::fs::read_link(f.path()).is_ok_and(|p| p == path))
        })
        .unwrap_or(false)
}

/// Waits for a child to exit, at most `limit`; kills it and fails otherwise.
fn wait_at_most(mut child: std::process::Child, limit: Duration, what: &str) -> Run {
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what}: still running after {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    parse(child.wait_with_output().unwrap())
}

#[test]
fn an_idle_follower_without_positions_sleeps() {
    let _shared = homelab_testkit::shared();
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("a.log");
    std::fs::write(&log, "x\n").unwrap();
    let out_path = d.path().join("out.jsonl");
    let child = ship()
        .args(["--file", log.to_str().unwrap(), "--stdout"])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_until(Duration::from_secs(20), "the file open", || holds_open(pid, &log));
    // A second for its start to settle, then a second and a half of nothing to do.
    std::thread::sleep(Duration::from_secs(1));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(1500));
    let used = cpu_ticks(pid) - before;
    // Clock ticks are 1/100 s: 1.5 s of a spinning core is ~150; asleep, 0 or 1.
    assert!(used <= 5, "{used} ticks of CPU in 1.5 s with nothing to do");
    // Still following.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"new line\n")
        .unwrap();
    wait_until(Duration::from_secs(10), "the new line on stdout", || {
        std::fs::read_to_string(&out_path).is_ok_and(|s| s.contains("new line"))
    });
    let out = terminate(child);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_corrupt_but_parsable_positions_file_is_bad_data() {
    let _shared = homelab_testkit::shared();
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("app.log");
    std::fs::write(&log, "one\ntwo\n").unwrap();
    let pos = d.path().join("positions.json");
    let args = [
        "--file",
        log.to_str().unwrap(),
        "--once",
        "--stdout",
        "--positions",
        pos.to_str().unwrap(),
    ];
    let r = run(&args);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let good = std::fs::read_to_string(&pos).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v["saved_unix_seconds"] = serde_json::json!(1e300);
    std::fs::write(&pos, v.to_string()).unwrap();
    let r = run(&args);
    assert_eq!(r.code(), Some(65), "{}", r.stderr());
    assert!(
        r.stderr().starts_with("log-tail-ship: --positions") && r.stderr().contains("saved_unix_seconds"),
        "{}",
        r.stderr()
    );
    // An anchor at the end of time: no line stamped in 1970.
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v["files"][0]["anchors"] = serde_json::json!([[0, u64::MAX]]);
    std::fs::write(&pos, v.to_string()).unwrap();
    std::fs::write(&log, "one\ntwo\nthree\n").unwrap();
    let r = run(&args);
    assert_eq!(r.code(), Some(65), "{}", r.stderr());
    assert!(r.lines.is_empty(), "{:?}", r.texts());
    assert!(r.stderr().contains("anchor"), "{}", r.stderr());
}

#[test]
fn a_relative_file_is_in_the_working_directory_and_a_pattern_matching_nothing_is_said() {
    let _shared = homelab_testkit::shared();
    let d = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("small.log"), "hello\n").unwrap();
    let r = parse(
        ship()
            .current_dir(d.path())
            .args(["--file", "small.log", "--file", "./nothing-*.log"])
            .args(["--from-beginning", "--once", "--stdout"])
            .args(["--root", root.path().to_str().unwrap()])
            .stdin(Stdio::null())
            .output()
            .unwrap(),
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert_eq!(r.texts(), ["hello"]);
    let real = d.path().canonicalize().unwrap().join("small.log");
    assert_eq!(
        r.lines[0].labels.get("filename").map(String::as_str),
        Some(real.to_str().unwrap()),
        "relative to the working directory, not to --root"
    );
    let s = r.summary();
    assert_eq!(s.files_open, 1);
    let said = |text: &str| text.matches("\"./nothing-*.log\"").count();
    assert_eq!(said(&r.stderr()), 1, "warned once: {}", r.stderr());
    assert!(r.stderr().contains("matches no file"), "{}", r.stderr());
    assert_eq!(
        s.errors.iter().filter(|e| said(e) == 1).count(),
        1,
        "{:?}",
        s.errors
    );
}

/// A command that runs the binary as an unprivileged user when the tests run as root
/// (root reads any file, so a denied read needs another user).
fn unprivileged() -> Command {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        c.arg(env!("CARGO_BIN_EXE_log-tail-ship"));
        for (k, _) in std::env::vars() {
            if k.starts_with("HOMELAB_") || k.starts_with("LOGSHIP_") || k.starts_with("LOG_TAIL_SHIP_") {
                c.env_remove(k);
            }
        }
        c
    } else {
        ship()
    }
}

#[test]
fn an_unreadable_file_is_an_error_in_the_summary_and_the_metrics() {
    use std::os::unix::fs::PermissionsExt;
    let _shared = homelab_testkit::shared();
    let d = tempfile::tempdir().unwrap();
    let open = |p: &Path, mode| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    open(d.path(), 0o755);
    let tf = d.path().join("textfile");
    std::fs::create_dir(&tf).unwrap();
    open(&tf, 0o777);
    std::fs::write(d.path().join("ok.log"), "fine\n").unwrap();
    open(&d.path().join("ok.log"), 0o644);
    let secret = d.path().join("secret.log");
    std::fs::write(&secret, "hidden\n").unwrap();
    open(&secret, 0o600);
    let glob = format!("{}/*.log", d.path().display());
    let r = parse(
        unprivileged()
            .args(["--file", &glob, "--from-beginning", "--once", "--stdout"])
            .args(["--textfile-dir", tf.to_str().unwrap()])
            .stdin(Stdio::null())
            .output()
            .unwrap(),
    );
    assert_eq!(r.code(), Some(77), "{}", r.stderr());
    assert_eq!(r.texts(), ["fine"]);
    let s = r.summary();
    assert_eq!((s.files_open, s.files_unreadable), (1, 1));
    assert!(
        s.errors
            .iter()
            .any(|e| e.contains("secret.log") && e.contains("permission denied")),
        "{:?}",
        s.errors
    );
    let last = r.stderr().lines().last().unwrap_or_default().to_string();
    assert!(
        last.contains("could not be opened") && last.contains("secret.log: permission denied"),
        "{}",
        r.stderr()
    );
    let page = std::fs::read_to_string(tf.join("log-tail-ship.prom")).unwrap();
    assert_eq!(series(&page, "logship_files_unreadable"), Some(1.0), "{page}");
}

/// Runs the binary under `ulimit` settings (a shell's), e.g. `-S -n 40`.
fn with_ulimit(limit: &str, args: &[&str]) -> Run {
    let mut c = ship_after(&[], &format!("ulimit {limit}"));
    parse(c.args(args).stdin(Stdio::null()).output().unwrap())
}

#[test]
fn the_open_file_limit_is_raised_and_files_it_still_leaves_out_are_errors() {
    let _shared = homelab_testkit::shared();
    let hard: u64 = String::from_utf8(
        Command::new("sh")
            .args(["-c", "ulimit -H -n"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap_or(u64::MAX); // "unlimited"
    assert!(
        hard >= 256,
        "the hard open-file limit here ({hard}) is too low for this test"
    );
    let d = tempfile::tempdir().unwrap();
    for i in 0..100 {
        std::fs::write(d.path().join(format!("f{i:03}.log")), format!("line of {i}\n")).unwrap();
    }
    let glob = format!("{}/*.log", d.path().display());
    let args = ["--file", &glob, "--from-beginning", "--once", "--stdout"];
    // A soft limit of 40 under a higher hard one: raised, every file read.
    let r = with_ulimit("-S -n 40", &args);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert_eq!(r.lines.len(), 100);
    assert_eq!(r.summary().files_unreadable, 0);
    // A hard limit of 40: files left out are errors, and --once does not pass.
    let r = with_ulimit("-n 40", &args);
    assert_eq!(r.code(), Some(74), "{}", r.stderr());
    let s = r.summary();
    assert!(
        s.files_unreadable > 0 && s.files_open + s.files_unreadable == 100,
        "{s:?}"
    );
    assert_eq!(r.lines.len() as u64, s.files_open);
    let last = r.stderr().lines().last().unwrap_or_default().to_string();
    assert!(
        last.contains("files could not be opened")
            && last.contains("too many open files")
            && last.contains("ulimit -n"),
        "{}",
        r.stderr()
    );
}

#[test]
fn an_explicit_stdout_is_not_refused_for_environment_defaults() {
    let _shared = homelab_testkit::shared();
    for (k, v) in [
        ("HOMELAB_FORMAT", "text"),
        ("LOGSHIP_LOKI_URL", "http://127.0.0.1:9"),
    ] {
        let mut child = ship()
            .env(k, v)
            .args(["--stdin", "--stdout"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
        let r = wait_at_most(child, Duration::from_secs(20), k);
        assert_eq!(r.code(), Some(0), "{k}: {}", r.stderr());
        assert_eq!(r.texts(), ["hello"], "{k}");
    }
}

#[test]
fn bad_loki_urls_are_refused_at_start() {
    let _shared = homelab_testkit::shared();
    for url in ["http://[::1", "https://", "loki:3100", "http://user:secret@[::1"] {
        let r = run(&["--stdin", "--loki", url]);
        assert_eq!(r.code(), Some(64), "{url}: {}", r.stderr());
        assert!(r.stderr().starts_with("log-tail-ship: --loki"), "{}", r.stderr());
        assert!(!r.stderr().contains("secret"), "{}", r.stderr());
    }
}

#[test]
fn credentials_in_the_url_are_used_never_printed_and_once_gives_up_in_time() {
    let _shared = homelab_testkit::shared();
    let rx = Receiver::start();
    let url = format!("http://pi:s3cret@127.0.0.1:{}", rx.port);
    let r = run_with_input(&["--stdin", "--loki", &url], b"one\n");
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert_eq!(rx.lines(), ["one"]);
    // base64("pi:s3cret")
    assert_eq!(
        rx.state.lock().unwrap().headers[0]
            .get("authorization")
            .map(String::as_str),
        Some("Basic cGk6czNjcmV0")
    );
    // Nobody listening: retried, then --once gives up with 75 after --once-timeout.
    rx.go_away();
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("app.log");
    std::fs::write(&log, "two\n").unwrap();
    let t = Instant::now();
    let child = ship()
        .args(["--file", log.to_str().unwrap(), "--from-beginning", "--once"])
        .args(["--loki", &url, "--once-timeout", "2s", "--max-backoff", "500ms"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let r = wait_at_most(child, Duration::from_secs(30), "--once with Loki away");
    assert_eq!(r.code(), Some(75), "{}", r.stderr());
    assert!(
        t.elapsed() >= Duration::from_secs(2),
        "gave up early: {:?}",
        t.elapsed()
    );
    assert!(r.stderr().contains("--once-timeout"), "{}", r.stderr());
    assert!(r.stderr().contains("1 lines were not shipped"), "{}", r.stderr());
    assert!(!r.stderr().contains("s3cret"), "{}", r.stderr());
    assert!(
        r.stderr().contains("127.0.0.1"),
        "the URL is named: {}",
        r.stderr()
    );
    assert_eq!(r.summary().lines_pending, 1);
}

#[test]
fn https_to_a_plain_http_server_is_a_permanent_error() {
    let _shared = homelab_testkit::shared();
    // Answers every connection as a plain HTTP server answers a TLS ClientHello.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            let mut b = [0u8; 512];
            let _ = s.read(&mut b);
            let _ =
                s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let child = ship()
        .args(["--stdin", "--loki", &format!("https://127.0.0.1:{port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = child;
    child.stdin.take().unwrap().write_all(b"a line\n").unwrap();
    let r = wait_at_most(child, Duration::from_secs(30), "https:// to a plain server");
    assert_eq!(r.code(), Some(69), "{}", r.stderr());
    assert!(r.stderr().contains("http://"), "says what to do: {}", r.stderr());
    assert!(r.stderr().contains("standard input are lost"), "{}", r.stderr());
    assert_eq!(r.summary().lines_pending, 1);
}

#[test]
fn a_stop_with_lines_not_acknowledged_is_no_success() {
    let _shared = homelab_testkit::shared();
    let rx = Receiver::start();
    rx.script(&[Answer::Status(500); 10_000]);
    let mut child = ship()
        .args(["--stdin", "--loki", &rx.url(), "--batch-wait", "50ms"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"kept back\n").unwrap();
    wait_until(Duration::from_secs(20), "a push", || {
        rx.state.lock().unwrap().pushes >= 1
    });
    let out = parse(terminate(child));
    drop(input);
    assert_eq!(out.code(), Some(75), "{}", out.stderr());
    assert!(
        out.stderr().contains("1 lines not acknowledged") && out.stderr().contains("standard input are lost"),
        "{}",
        out.stderr()
    );
    assert_eq!(out.summary().lines_pending, 1);
}
