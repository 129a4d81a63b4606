//! scripts/hygiene, run against a fixture root with stub fstrim, journalctl and
//! logrotate on PATH that record how they were called: nothing on this machine is
//! trimmed, vacuumed or rotated.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    v: u32,
    ts: String,
    host: String,
    tool: String,
    kind: String,
    step: String,
    target: String,
    status: String,
    detail: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/hygiene")
}

fn stub(dir: &Path, name: &str, body: &str) {
    homelab_testkit::write_executable(
        &dir.join(name),
        &format!("#!/bin/sh\necho \"{name} $*\" >> \"$HYGIENE_CALLS\"\n{body}\n"),
    );
}

struct Setup {
    _d: tempfile::TempDir,
    root: PathBuf,
    bin: PathBuf,
    calls: PathBuf,
}

fn setup(daemon_json: Option<&str>) -> Setup {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    let w = |p: &str, s: &str| {
        let p = root.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, s).unwrap();
    };
    w("etc/hostname", "pi5\n");
    w(
        "proc/self/mounts",
        "/dev/nvme0n1p2 / ext4 rw,noatime 0 0\n\
         /dev/mmcblk0p1 /boot/firmware vfat rw 0 0\n\
         /dev/sda1 /mnt/usb ext4 rw 0 0\n\
         /dev/nvme0n1p2 /var/lib/docker ext4 rw 0 0\n\
         proc /proc proc rw 0 0\n\
         tmpfs /run tmpfs rw 0 0\n",
    );
    w("sys/block/nvme0n1/queue/discard_max_hw_bytes", "2199023255040\n");
    w("sys/block/mmcblk0/queue/discard_max_hw_bytes", "0\n");
    // A USB bridge that hides TRIM: no value at all.
    fs::create_dir_all(root.join("sys/block/sda/queue")).unwrap();
    w("etc/logrotate.conf", "weekly\n");
    if let Some(j) = daemon_json {
        w("etc/docker/daemon.json", j);
    }
    let bin = d.path().join("bin");
    fs::create_dir(&bin).unwrap();
    stub(&bin, "fstrim", "echo \"$2: 1.2 GiB (1288490188 bytes) trimmed\"");
    stub(
        &bin,
        "journalctl",
        "case \"$1\" in --disk-usage) echo 'Archived and active journals take up 180.0M in the file system.';; esac",
    );
    stub(
        &bin,
        "logrotate",
        "[ \"$1\" = -d ] && echo 'rotating pattern: /var/log/syslog  weekly (4 rotations)'; exit 0",
    );
    let calls = d.path().join("calls");
    Setup {
        _d: d,
        root,
        bin,
        calls,
    }
}

fn run(s: &Setup, args: &[&str]) -> (Option<i32>, Vec<Step>, Vec<String>) {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .env("HYGIENE_ROOT", &s.root)
        .env("HYGIENE_CALLS", &s.calls)
        .env("PATH", format!("{}:/usr/bin:/bin", s.bin.display()))
        .output()
        .unwrap();
    let steps = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let calls = fs::read_to_string(&s.calls)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    (out.status.code(), steps, calls)
}

#[test]
fn each_step_is_a_json_line_and_the_tools_are_called() {
    let s = setup(Some(
        r#"{"log-driver":"json-file","log-opts":{"max-size":"10m","max-file":"3"}}"#,
    ));
    let (code, steps, calls) = run(&s, &["--journal-max-size", "200M"]);
    assert_eq!(code, Some(0), "{steps:#?}");
    for st in &steps {
        assert_eq!(
            (st.v, st.tool.as_str(), st.kind.as_str(), st.host.as_str()),
            (1, "hygiene", "step", "pi5")
        );
        assert!(st.ts.ends_with('Z') && st.ts.len() == 24, "{}", st.ts);
    }
    let fstrim: Vec<(&str, &str)> = steps
        .iter()
        .filter(|s| s.step == "fstrim")
        .map(|s| (s.target.as_str(), s.status.as_str()))
        .collect();
    assert_eq!(
        fstrim,
        [
            ("/", "ok"),
            ("/boot/firmware", "skipped"),
            ("/mnt/usb", "skipped")
        ],
        "one line per filesystem; the bind of the same device once"
    );
    assert!(steps[0].detail.contains("trimmed"));
    assert_eq!(
        calls,
        [
            "fstrim -v /",
            "journalctl --rotate",
            "journalctl --vacuum-size=200M",
            "journalctl --disk-usage",
            &format!("logrotate {}", s.root.join("etc/logrotate.conf").display()),
        ]
    );
    let docker = steps.iter().find(|s| s.step == "docker").unwrap();
    assert_eq!(docker.status, "ok");
    assert!(docker.detail.contains("max-size 10m"));
}

#[test]
fn dry_run_changes_nothing() {
    let s = setup(None);
    let (code, steps, calls) = run(&s, &["--dry-run"]);
    assert_eq!(code, Some(0));
    assert!(
        calls
            .iter()
            .all(|c| c == "journalctl --disk-usage" || c.starts_with("logrotate -d ")),
        "{calls:?}"
    );
    assert_eq!(steps.iter().find(|s| s.target == "/").unwrap().status, "dry-run");
    let docker = steps.iter().find(|s| s.step == "docker").unwrap();
    assert_eq!(docker.status, "warning");
    assert!(
        docker.detail.contains("max-size"),
        "says what to add: {}",
        docker.detail
    );
}

#[test]
fn unlimited_docker_logs_warn_and_a_failing_tool_fails_the_run() {
    let s = setup(Some(
        r#"{"log-driver":"json-file","log-opts":{"max-size":"10m"}}"#,
    ));
    stub(
        &s.bin,
        "fstrim",
        "echo 'fstrim: /: FITRIM ioctl failed: Operation not supported' >&2; exit 1",
    );
    let (code, steps, _) = run(&s, &[]);
    assert_eq!(code, Some(74));
    let root = steps.iter().find(|s| s.target == "/").unwrap();
    assert_eq!(root.status, "failed");
    assert!(root.detail.contains("FITRIM"));
    let docker = steps.iter().find(|s| s.step == "docker").unwrap();
    assert_eq!(docker.status, "warning");
    assert!(docker.detail.contains("without max-file"), "{}", docker.detail);
    // Garbage daemon.json and odd characters stay valid JSON lines.
    let s = setup(Some("{not json \"\\\t"));
    let (_, steps, _) = run(&s, &[]);
    assert_eq!(
        steps.iter().find(|s| s.step == "docker").unwrap().status,
        "failed"
    );
    // A bad flag.
    assert_eq!(run(&s, &["--bogus"]).0, Some(64));
}
