//! The Docker source against the real engine `scripts/test` runs: containers found
//! through the API (only ours, by label), json-file logs read directly, lines Docker
//! split at 16 KiB joined again, the `local` driver reported, containers that start
//! later picked up, and the lines of a container that exited still shipped.

use std::process::Stdio;
use std::time::Duration;

use crate::common::*;
use homelab_testkit::{Docker, docker, wait_until};

/// log-tail-ship on the containers labelled `ours`, from their first line, to `rx`,
/// its positions in `dir`; stdout and stderr piped.
fn ship_ours(dk: &Docker, ours: &str, rx: &Receiver, dir: &std::path::Path) -> std::process::Command {
    let mut c = ship();
    c.args([
        "--docker",
        "--docker-filter",
        &format!("label={ours}"),
        "--docker-host",
        &dk.host,
    ])
    .args(["--from-beginning", "--loki", &rx.url(), "--batch-wait", "100ms"])
    .args(["--positions", dir.join("pos.json").to_str().unwrap()])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c
}

#[test]
fn ships_our_containers_json_logs_with_their_labels() {
    let _shared = homelab_testkit::shared();
    let dk = docker();
    let tag = dk.unique_name("logship");
    let ours = format!("hlt.logship={tag}");
    // A 20,000-byte line: Docker writes it as two json-file entries (16 KiB + rest).
    let script = "echo hello-out; echo hello-err >&2; head -c 20000 /dev/zero | tr '\\0' x; echo; echo after-long; sleep 600";
    let a = dk.start("logship-a", &["--label", &ours], &["sh", "-c", script]);
    // Not ours: another label value; must never be shipped.
    let other = dk.start(
        "logship-other",
        &["--label", &format!("hlt.logship={tag}-other")],
        &["sh", "-c", "echo not-for-us; sleep 600"],
    );
    let local = dk.start(
        "logship-local",
        &["--label", &ours, "--log-driver", "local"],
        &["sh", "-c", "echo in-local; sleep 600"],
    );
    let rx = Receiver::start();
    let d = tempfile::tempdir().unwrap();
    let child = ship_ours(&dk, &ours, &rx, d.path())
        .args([
            "--textfile-dir",
            d.path().to_str().unwrap(),
            "--sync-interval",
            "200ms",
        ])
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "container a's lines", || {
        rx.lines().iter().any(|l| l == "after-long")
    });
    // Broken entries in a container's log (root may write there): shipped as they
    // are and counted, and what follows still flows.
    {
        use std::io::Write;
        let path = a.inspect("{{.LogPath}}");
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"log\":\"broken\n\xff\xfe\0\n").unwrap();
        f.write_all(
            b"{\"log\":\"appended-ok\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-26T06:00:00.5Z\"}\n",
        )
        .unwrap();
    }
    wait_until(Duration::from_secs(30), "the line after the broken ones", || {
        rx.lines().iter().any(|l| l == "appended-ok")
    });
    wait_until(
        Duration::from_secs(10),
        "logship_docker_invalid_lines_total 2",
        || {
            let page = std::fs::read_to_string(d.path().join("log-tail-ship.prom")).unwrap_or_default();
            homelab_testkit::series(&page, "logship_docker_invalid_lines_total") == Some(2.0)
        },
    );
    // A container that starts later, prints and exits.
    let b = dk.start(
        "logship-b",
        &["--label", &ours],
        &["sh", "-c", "echo from-b; echo bye-b"],
    );
    wait_until(Duration::from_secs(30), "container b's lines", || {
        rx.lines().iter().any(|l| l == "bye-b")
    });
    let out = terminate(child);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");

    let entries = rx.entries();
    let of = |name: &str| -> Vec<&Received> {
        entries
            .iter()
            .filter(|e| e.labels.get("container").map(String::as_str) == Some(name))
            .collect()
    };
    let ea = of(&a.name);
    let texts: Vec<&str> = ea.iter().map(|e| e.line.as_str()).collect();
    assert_eq!(
        texts.len(),
        7,
        "{:?}",
        texts.iter().map(|t| t.len()).collect::<Vec<_>>()
    );
    assert!(texts.contains(&"{\"log\":\"broken") && texts.contains(&"\u{fffd}\u{fffd}\0"));
    let ok = ea.iter().find(|e| e.line == "appended-ok").unwrap();
    assert_eq!(ok.ts, 1_795_672_800_500_000_000);
    assert!(texts.contains(&"hello-out") && texts.contains(&"hello-err") && texts.contains(&"after-long"));
    let joined = texts.iter().find(|t| t.len() > 100).expect("the long line");
    assert_eq!(joined.len(), 20000, "split at 16 KiB by Docker, joined again");
    assert!(joined.bytes().all(|c| c == b'x'));
    let err = ea.iter().find(|e| e.line == "hello-err").unwrap();
    assert_eq!(err.labels.get("stream").map(String::as_str), Some("stderr"));
    let out_line = ea.iter().find(|e| e.line == "hello-out").unwrap();
    assert_eq!(out_line.labels.get("stream").map(String::as_str), Some("stdout"));
    assert!(out_line.labels.contains_key("host"));
    // Docker's own time is the timestamp: it matches `docker logs -t`.
    let logs = dk.output(&["logs", "-t", &a.id]);
    let first = String::from_utf8_lossy(&logs.stdout);
    let stamp = first
        .lines()
        .find(|l| l.ends_with(" hello-out"))
        .and_then(|l| l.split(' ').next())
        .expect("docker logs -t shows hello-out")
        .to_string();
    let expected = log_tail_ship::docker::parse_time(&stamp).unwrap() as i64;
    assert_eq!(out_line.ts, expected);

    let eb: Vec<&str> = of(&b.name).iter().map(|e| e.line.as_str()).collect();
    assert_eq!(
        eb,
        ["from-b", "bye-b"],
        "a container started later, read from its start"
    );
    assert!(of(&other.name).is_empty(), "another test's container was shipped");
    assert!(!entries.iter().any(|e| e.line == "not-for-us"));
    assert!(of(&local.name).is_empty());
    let said = stderr
        .matches(&format!("container {} uses the local log driver", local.name))
        .count();
    assert_eq!(said, 1, "the local driver is reported once: {stderr}");
}

/// Health checks are execs: every interval of every container with a HEALTHCHECK the
/// engine sends exec_create, exec_start and exec_die. They change no container and no
/// log, so they must not make log-tail-ship list and inspect every container again
/// (on a Pi running the stack that was most of its CPU); a container that starts
/// still is found.
#[test]
fn execs_do_not_list_the_containers_again() {
    let _shared = homelab_testkit::shared();
    let dk = docker();
    let ours = format!("hlt.logship={}", dk.unique_name("logship-exec"));
    let a = dk.start(
        "logship-exec",
        &["--label", &ours],
        &["sh", "-c", "echo one; sleep 600"],
    );
    let rx = Receiver::start();
    let d = tempfile::tempdir().unwrap();
    let child = ship_ours(&dk, &ours, &rx, d.path()).spawn().unwrap();
    wait_until(Duration::from_secs(30), "container a's line", || {
        rx.lines().iter().any(|l| l == "one")
    });
    for _ in 0..10 {
        dk.run(&["exec", &a.id, "true"]);
    }
    // A container that starts, prints and exits: create, start and die.
    let _b = dk.start("logship-exec", &["--label", &ours], &["sh", "-c", "echo from-b"]);
    wait_until(Duration::from_secs(30), "container b's line", || {
        rx.lines().iter().any(|l| l == "from-b")
    });
    let run = parse(terminate(child));
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let lists = run.summary().docker_lists_total;
    // The first list, then at most one per event of b (before: one per exec event too,
    // 30 more).
    assert!((2..=4).contains(&lists), "{lists} lists of the containers");
}

/// An engine that is not there, or a socket the user may not open: the same exit
/// codes and words as every other tool (69 with "is dockerd running?", 77 with the
/// docker-group fix), not the Docker library's text.
#[test]
fn a_missing_or_forbidden_engine_says_what_to_do() {
    use std::os::unix::fs::PermissionsExt;
    let _guard = homelab_testkit::shared();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let missing = format!("unix://{}/none.sock", dir.path().display());
    let out = crate::common::ship()
        .args(["--docker", "--docker-host", &missing, "--once", "--stdout"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(err.contains("is dockerd running?"), "{err}");

    // A socket only root may open, and a copy of the binary nobody may run.
    let sock = dir.path().join("root-only.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).unwrap();
    let bin = dir.path().join("log-tail-ship");
    homelab_testkit::copy_executable(env!("CARGO_BIN_EXE_log-tail-ship").as_ref(), &bin);
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&bin)
        .args([
            "--docker",
            "--docker-host",
            &format!("unix://{}", sock.display()),
            "--once",
            "--stdout",
        ])
        .env_remove("DOCKER_HOST")
        .output()
        .expect("setpriv (util-linux) is needed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{err}");
    assert!(err.contains("usermod -aG docker"), "{err}");
}
