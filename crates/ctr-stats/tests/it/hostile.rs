//! Engines that misbehave (issue 24 findings 8 and 9), on unix sockets of the test's
//! own: an endless container list, inspect requests that never answer, an engine that
//! goes away in the middle of a loop, and DOCKER_HOST set but empty.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

const VERSION: &str =
    r#"{"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.12","Os":"linux","Arch":"amd64"}"#;

/// An engine on a unix socket that answers each connection in a thread of its own
/// with `answer(path, stream)`; `path` is without the `/v1.xx` prefix and query.
struct Engine {
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Engine {
    fn start(answer: fn(&str, &mut UnixStream)) -> Engine {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut request = String::new();
                    if reader.read_line(&mut request).is_err() {
                        return;
                    }
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim_end() != "" {
                        line.clear();
                    }
                    let path = request.split_whitespace().nth(1).unwrap_or("/");
                    let path = path.split('?').next().unwrap_or(path);
                    let path = match path.strip_prefix("/v1.") {
                        Some(rest) => &rest[rest.find('/').unwrap_or(0)..],
                        None => path,
                    };
                    answer(path, &mut conn);
                });
            }
        });
        Engine { _dir: dir, socket }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

fn json(conn: &mut UnixStream, body: &str) {
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nApi-Version: 1.41\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Runs ctr-stats and returns its exit code, stderr and wall time.
fn timed(args: &[&str]) -> (Option<i32>, String, Duration) {
    let t = Instant::now();
    let out = ctr_stats().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.stdout.is_empty(), "no data on a failure");
    (out.status.code(), err, t.elapsed())
}

/// Finding 8: an engine streaming an endless /containers/json drove ctr-stats to
/// 1.5 GB in a second, then "did not answer within". The answer is cut at 16 MiB
/// and the message says so, at once: the memory is bounded because the read stops.
/// (This engine stops after 64 MiB, so that an unbounded tool fails the test by its
/// message and time without taking the machine's memory.)
#[test]
fn an_endless_container_list_is_cut_at_16_mib() {
    let engine = Engine::start(|path, conn| match path {
        "/version" | "/_ping" => json(conn, VERSION),
        _ => {
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n[",
            );
            let item = br#"{"Id":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","Names":["/x"],"State":"running"},"#;
            let chunk: Vec<u8> = item.iter().copied().cycle().take(item.len() * 600).collect();
            let mut sent = 0;
            while sent < 64 << 20 && conn.write_all(&chunk).is_ok() {
                sent += chunk.len();
            }
            std::thread::sleep(Duration::from_secs(20));
        }
    });
    let (code, err, took) = timed(&[
        "--docker-host",
        &engine.host(),
        "--timeout",
        "20s",
        "--window",
        "0",
    ]);
    assert_eq!(code, Some(69), "{err}");
    assert!(
        err.contains("sent more than 16 MiB for /containers/json while listing containers"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    drop(engine);
}

/// Finding 9: with 20 inspect requests that never answer, ctr-stats took 10 s to
/// fail (four at a time, 2 s each) while saying "within 2s". One deadline now covers
/// the round's requests together.
#[test]
fn twenty_hanging_inspects_cost_one_timeout() {
    let engine = Engine::start(|path, conn| match path {
        "/version" | "/_ping" => json(conn, VERSION),
        "/containers/json" => {
            let list: Vec<String> = (0..20)
                .map(|i| format!(r#"{{"Id":"{i:064x}","Names":["/c{i}"],"State":"running","Labels":{{}}}}"#))
                .collect();
            json(conn, &format!("[{}]", list.join(",")));
        }
        // inspect: read, never answer.
        _ => std::thread::sleep(Duration::from_secs(30)),
    });
    let (code, err, took) = timed(&[
        "--docker-host",
        &engine.host(),
        "--timeout",
        "2s",
        "--window",
        "0",
    ]);
    assert_eq!(code, Some(69), "{err}");
    assert!(
        err.contains("did not answer within 2s while inspecting containers"),
        "{err}"
    );
    assert!(took < Duration::from_secs(6), "took {took:?} for a 2s timeout");
    drop(engine);
}

/// Finding 9: in a loop, an engine that is not there is a failed round, reported as
/// a `kind: engine` record and `container_engine_up 0`, and the loop goes on; when
/// the engine comes back, so do the containers.
#[test]
fn an_engine_failure_in_a_loop_is_a_failed_round_and_the_loop_goes_on() {
    let fake = FakeEngine::start(&fixture("engine"));
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("docker.sock");
    let tree = fixture("v2-pi5");
    let mut child = ctr_stats()
        .args([
            "--root",
            tree.to_str().unwrap(),
            "--window",
            "0",
            "--format",
            "jsonl",
        ])
        .args(["--interval", "300ms", "--count", "3"])
        .arg("--docker-host")
        .arg(format!("unix://{}", link.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["kind"], "engine", "{first}");
    assert_eq!(first["up"], false, "{first}");
    assert_eq!(first["docker_host"], format!("unix://{}", link.display()));
    let why = first["errors"][0].as_str().unwrap();
    assert!(why.contains("no socket at"), "{why}");
    // The engine comes back.
    std::os::unix::fs::symlink(&fake.socket, &link).unwrap();
    let rest: Vec<serde_json::Value> = lines
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(0), "the last round succeeded: {err}");
    assert!(rest.iter().any(|r| r["kind"] == "container"), "{rest:?}");
    assert_eq!(
        err.lines().count(),
        1,
        "one line when the engine went away: {err}"
    );

    // With only a page to write, the page says the engine is down; the last round
    // failed, so the exit status says so too.
    let out = ctr_stats()
        .args(["--format", "prom", "--interval", "100ms", "--count", "2"])
        .args(["--docker-host", "unix:///nonexistent/docker.sock"])
        .output()
        .unwrap();
    let page = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(series(&page, "container_engine_up"), Some(0.0), "{page}");
    assert_eq!(
        page.matches("# TYPE container_engine_up gauge").count(),
        2,
        "{page}"
    );
    drop(fake);
}

/// Finding 9: `DOCKER_HOST=""` is unset, as for the docker CLI (it was exit 78, "not
/// a Docker address").
#[test]
fn an_empty_docker_host_means_the_default_socket() {
    let out = ctr_stats()
        .env("DOCKER_HOST", "")
        .arg("--window")
        .arg("0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(78), "{err}");
    assert!(!err.contains("not a Docker address"), "{err}");
    if !std::path::Path::new("/var/run/docker.sock").exists() {
        assert_eq!(out.status.code(), Some(69), "{err}");
        assert!(err.contains("unix:///var/run/docker.sock"), "{err}");
    }
}
