//! The shell glue: the collector runner (scripts/collect, installed as
//! homelab-collect) and scripts/install.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use homelab_e2e::{tool, workspace};
use homelab_testkit::{series, wait_until};

/// A directory to put on PATH holding only the named tools (links to the built
/// binaries) and any fake tools a test writes.
fn bin_dir_with(tools: &[&str]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for t in tools {
        std::os::unix::fs::symlink(tool(t), d.path().join(t)).unwrap();
    }
    d
}

fn fake_tool(dir: &Path, name: &str, script: &str) {
    let p = dir.join(name);
    fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

fn collect(bin: &Path, textfile: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(workspace().join("scripts/collect"));
    c.args(args)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOMELAB_TEXTFILE_DIR", textfile)
        .env("HOMELAB_LOCK_DIR", textfile.join("locks"))
        .env_remove("PI_THERMAL_ARGS");
    c
}

fn reports(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn pi5() -> PathBuf {
    workspace().join("crates/pi-thermal/tests/fixtures/pi5")
}

#[test]
fn collect_runs_a_tool_into_the_textfile_dir_and_reports_it() {
    let bin = bin_dir_with(&["pi-thermal"]);
    let textfile = tempfile::tempdir().unwrap();
    let out = collect(bin.path(), textfile.path(), &["pi-thermal"])
        .env("PI_THERMAL_ARGS", format!("--root {}", pi5().display()))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = reports(&out);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["tool"], "homelab-collect");
    assert_eq!(r[0]["kind"], "run");
    assert_eq!(r[0]["collector"], "pi-thermal");
    assert_eq!(r[0]["status"], "ok");
    assert_eq!(r[0]["exit_code"], 0);
    assert!(r[0]["duration_seconds"].as_f64().unwrap() >= 0.0);
    assert!(r[0]["ts"].as_str().unwrap().ends_with('Z'));
    let page = fs::read_to_string(textfile.path().join("pi-thermal.prom")).unwrap();
    assert_eq!(
        series(&page, "pi_load1"),
        Some(0.42),
        "PI_THERMAL_ARGS reached the tool"
    );

    // Explicit arguments win over PI_THERMAL_ARGS.
    let out = collect(
        bin.path(),
        textfile.path(),
        &["pi-thermal", "--root", "/nonexistent"],
    )
    .env("PI_THERMAL_ARGS", format!("--root {}", pi5().display()))
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(66));
    assert_eq!(reports(&out)[0]["status"], "failed");
}

#[test]
fn collect_never_overlaps_runs_of_one_tool() {
    let bin = tempfile::tempdir().unwrap();
    let textfile = tempfile::tempdir().unwrap();
    let started = textfile.path().join("started");
    fake_tool(
        bin.path(),
        "slowtool",
        &format!("touch {}; sleep 20", started.display()),
    );
    let mut first = collect(bin.path(), textfile.path(), &["slowtool"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(10), "the first run to start", || {
        started.exists()
    });
    let out = collect(bin.path(), textfile.path(), &["slowtool"])
        .output()
        .unwrap();
    first.kill().unwrap();
    let _ = first.wait();
    assert_eq!(out.status.code(), Some(75));
    let r = reports(&out);
    assert_eq!(
        (r[0]["status"].as_str(), r[0]["collector"].as_str()),
        (Some("skipped"), Some("slowtool"))
    );
}

#[test]
fn collect_kills_a_run_at_its_time_limit() {
    let bin = tempfile::tempdir().unwrap();
    let textfile = tempfile::tempdir().unwrap();
    fake_tool(bin.path(), "hangs", "sleep 60");
    let t = std::time::Instant::now();
    let out = collect(bin.path(), textfile.path(), &["--timeout", "1s", "hangs"])
        .output()
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(75));
    let r = reports(&out);
    assert_eq!(r[0]["status"], "timed_out");
    assert_eq!(r[0]["error"], "killed after 1s");
}

#[test]
fn collect_removes_files_of_tools_that_are_gone_and_nothing_else() {
    let bin = bin_dir_with(&["pi-thermal"]);
    let textfile = tempfile::tempdir().unwrap();
    fs::write(textfile.path().join("ctr-stats.prom"), "old 1\n").unwrap();
    fs::write(textfile.path().join("pi-thermal.prom"), "old 1\n").unwrap();
    fs::write(textfile.path().join("someone-else.prom"), "theirs 1\n").unwrap();
    let out = collect(
        bin.path(),
        textfile.path(),
        &["pi-thermal", "--root", pi5().to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let r = reports(&out);
    assert_eq!(r[0]["kind"], "removed");
    assert!(r[0]["file"].as_str().unwrap().ends_with("/ctr-stats.prom"));
    assert!(!textfile.path().join("ctr-stats.prom").exists());
    assert!(textfile.path().join("someone-else.prom").exists());
    let page = fs::read_to_string(textfile.path().join("pi-thermal.prom")).unwrap();
    assert!(
        page.contains("pi_load1"),
        "pi-thermal's own file was rewritten, not removed"
    );
}

#[test]
fn collect_usage_and_missing_directory() {
    let bin = tempfile::tempdir().unwrap();
    let textfile = tempfile::tempdir().unwrap();
    let out = collect(bin.path(), textfile.path(), &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = collect(bin.path(), textfile.path(), &["../../bin/sh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = collect(bin.path(), &textfile.path().join("nope"), &["pi-thermal"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(73));
    let r = reports(&out);
    assert!(
        r[0]["error"].as_str().unwrap().contains("does not exist"),
        "{r:?}"
    );
    let out = collect(bin.path(), textfile.path(), &["no-such-tool"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(reports(&out)[0]["error"], "no-such-tool: command not found");
}

/// Every regular file under `root` with what identifies its content and inode change.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u64, i64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    (m.ino(), m.ctime(), m.ctime_nsec()),
                );
            }
        }
    }
    out
}

fn install(dest: &Path, extra: &[&str]) -> Output {
    let out = Command::new(workspace().join("scripts/install"))
        .args([
            "--destdir",
            dest.to_str().unwrap(),
            "--bin-dir",
            homelab_e2e::bin_dir().to_str().unwrap(),
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/install {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn install_is_idempotent_and_uninstall_removes_what_it_installed() {
    let dest = tempfile::tempdir().unwrap();
    install(dest.path(), &["--cron"]);
    let d = dest.path();
    for name in homelab_e2e::tool_names() {
        let bin = d.join("usr/local/bin").join(&name);
        assert_eq!(
            fs::metadata(&bin).unwrap().permissions().mode() & 0o777,
            0o755,
            "{name}"
        );
        assert!(d.join(format!("usr/local/share/man/man1/{name}.1")).is_file());
        assert!(
            d.join(format!("usr/local/share/bash-completion/completions/{name}"))
                .is_file()
        );
    }
    assert!(d.join("usr/local/bin/homelab-collect").is_file());
    assert!(d.join("etc/cron.d/homelab-tools").is_file());
    let unit = fs::read_to_string(d.join("etc/systemd/system/pi-thermal.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/homelab-collect pi-thermal"),
        "{unit}"
    );
    assert!(d.join("etc/default/homelab-tools").is_file());

    // A changed settings file is the user's: never overwritten.
    fs::write(
        d.join("etc/default/homelab-tools"),
        "PI_THERMAL_ARGS=\"--warn-temp 70\"\n",
    )
    .unwrap();
    let before = snapshot(d);
    install(dest.path(), &["--cron"]);
    assert_eq!(snapshot(d), before, "a second install changed files");
    assert_eq!(
        fs::read_to_string(d.join("etc/default/homelab-tools")).unwrap(),
        "PI_THERMAL_ARGS=\"--warn-temp 70\"\n"
    );

    install(dest.path(), &["--uninstall"]);
    let left: Vec<PathBuf> = snapshot(d).into_keys().collect();
    assert_eq!(
        left,
        [PathBuf::from("etc/default/homelab-tools")],
        "only the settings stay"
    );
    install(dest.path(), &["--purge"]);
    assert!(snapshot(d).is_empty());
}
