//! An engine that is not there, a socket the user may not open, an address of the
//! wrong kind, bad flags and filters: one clear line on stderr, a documented exit
//! code, nothing on stdout.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;

use crate::common::*;

fn assert_fails(args: &[&str], env: &[(&str, &str)], code: i32, needle: &str) -> String {
    let out = ctr_stats().args(args).envs(env.iter().copied()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(code), "{args:?} {env:?}: {stderr}");
    assert!(out.stdout.is_empty(), "no data on a failure");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    stderr
}

#[test]
fn a_missing_socket_is_unavailable_69() {
    let e = assert_fails(
        &[],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
        69,
        "no socket at /nonexistent/docker.sock",
    );
    assert!(
        e.starts_with("ctr-stats: cannot connect to the Docker engine"),
        "{e}"
    );
    assert!(e.contains("is dockerd running?"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    // The flag wins over the environment.
    assert_fails(
        &["--docker-host", "unix:///nonexistent/other.sock"],
        &[("DOCKER_HOST", "unix:///run/hlt-docker.sock")],
        69,
        "other.sock",
    );
}

#[test]
fn a_closed_tcp_port_is_unavailable_69() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let host = format!("tcp://127.0.0.1:{port}");
    assert_fails(
        &["--docker-host", &host],
        &[],
        69,
        "cannot connect to the Docker engine",
    );
}

#[test]
fn a_socket_without_permission_is_77() {
    assert!(
        nix_is_root(),
        "this test runs ctr-stats as nobody and must start as root (scripts/test runs as root)"
    );
    // A socket only root may open, and a copy of the binary nobody may run.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.path().join("docker.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).unwrap();
    let bin = dir.path().join("ctr-stats");
    homelab_testkit::copy_executable(env!("CARGO_BIN_EXE_ctr-stats").as_ref(), &bin);
    let out = std::process::Command::new(&bin)
        .args(["--docker-host", &format!("unix://{}", sock.display())])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert!(stderr.contains("docker group"), "{stderr}");
    assert!(out.stdout.is_empty());
}

fn nix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

#[test]
fn an_address_of_the_wrong_kind_is_a_configuration_error_78() {
    assert_fails(
        &["--docker-host", "ftp://example"],
        &[],
        78,
        "is not a Docker address",
    );
}

#[test]
fn a_filter_docker_does_not_know_is_a_usage_error_64() {
    homelab_testkit::docker();
    assert_fails(
        &["--filter", "colour=blue"],
        &[],
        64,
        "the Docker engine rejected the filter",
    );
}

#[test]
fn bad_flags_are_usage_errors_64() {
    assert_fails(&["--filter", "nonsense"], &[], 64, "expected KEY=VALUE");
    assert_fails(&["--source", "telepathy"], &[], 64, "telepathy");
    assert_fails(&["--window", "soon"], &[], 64, "expected a duration");
    assert_fails(&["--concurrency", "0"], &[], 64, "--concurrency");
    assert_fails(&["--timeout", "0s"], &[], 64, "longer than zero");
    assert_fails(&["--count", "2"], &[], 64, "--interval");
}

#[test]
fn a_missing_root_is_66() {
    assert_fails(
        &["--root", "/nonexistent-root"],
        &[],
        66,
        "--root /nonexistent-root",
    );
}

#[test]
fn help_teaches_and_the_command_is_sound() {
    ctr_stats::command().debug_assert();
    let out = ctr_stats().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "Examples:",
        "--filter",
        "--source",
        "--window",
        "DOCKER_HOST",
        "label=com.docker.compose.project",
    ] {
        assert!(help.contains(needle), "{needle} not in --help");
    }
}

#[test]
fn an_engine_that_never_answers_times_out_69() {
    // Accepts connections (the kernel's backlog) and never answers.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let host = format!("unix://{}", sock.display());
    let t = std::time::Instant::now();
    assert_fails(
        &["--docker-host", &host, "--timeout", "500ms"],
        &[],
        69,
        "did not answer within 500ms",
    );
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
}

/// Issue 24 finding 10: `--timeout 300000000000y` and `--interval 300000000000y`
/// panicked adding the duration to the clock (exit 70). Durations now have an upper
/// bound, checked before the engine is asked anything.
#[test]
fn huge_durations_are_usage_errors_not_panics() {
    for flag in ["--timeout", "--interval", "--window"] {
        for huge in ["300000000000y", "18446744073709551615s", "10y 1s"] {
            let e = assert_fails(
                &[flag, huge],
                &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
                64,
                "at most 10y",
            );
            assert!(!e.contains("panicked"), "{flag} {huge}: {e}");
        }
    }
}
