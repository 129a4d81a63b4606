//! `copy --to`: SIGKILLed at random moments the target stays valid and a rerun
//! finishes; the target then passes `verify --read-data` and restores what the
//! source holds; a second copy copies nothing; a wrong target key is a clear
//! configuration error (78).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::common::*;

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
struct CopyRec {
    v: u32,
    ts: String,
    host: String,
    tool: String,
    kind: String,
    target: String,
    snapshots_selected: u64,
    snapshots_copied: u64,
    snapshots_present: u64,
    chunks_copied: u64,
    chunks_present: u64,
    bytes_copied: u64,
    snapshots_behind: u64,
    errors: Vec<String>,
    duration_seconds: f64,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
struct CopiedRec {
    v: u32,
    ts: String,
    host: String,
    tool: String,
    kind: String,
    id: String,
    job: String,
    time: String,
    target_id: String,
    chunks_copied: u64,
    bytes_copied: u64,
}

fn key(dir: &Path, name: &str, seed: u64) -> String {
    let p = dir.join(name);
    fs::write(&p, pseudo_random(seed, 32)).unwrap();
    p.display().to_string()
}

fn run(repo: &Path, key: &str, args: &[&str]) -> std::process::Output {
    let mut a = vec!["--key-file", key];
    a.extend_from_slice(args);
    bs(repo, &a)
}

fn seed() -> u64 {
    std::env::var("BACKUP_SNAP_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

#[test]
fn copy_survives_sigkill_then_verifies_restores_and_is_incremental() {
    let _g = homelab_testkit::shared();
    let t = tempfile::tempdir().unwrap();
    let (src, dst, data) = (t.path().join("src"), t.path().join("dst"), t.path().join("data"));
    let (ka, kb) = (key(t.path(), "a.key", 1), key(t.path(), "b.key", 2));
    fs::create_dir_all(data.join("d")).unwrap();
    for i in 0..6u64 {
        fs::write(data.join(format!("f{i}")), pseudo_random(i, 400 << 10)).unwrap();
    }
    fs::write(data.join("d/small"), b"small file").unwrap();
    std::os::unix::fs::symlink("f1", data.join("link")).unwrap();
    for (r, k) in [(&src, &ka), (&dst, &kb)] {
        let o = run(r, k, &["init", "--pack-size", "64KiB"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let d = data.display().to_string();
    assert_eq!(
        run(&src, &ka, &["create", "--job", "a", &d]).status.code(),
        Some(0)
    );
    fs::write(data.join("f0"), pseudo_random(99, 300 << 10)).unwrap();
    assert_eq!(
        run(&src, &ka, &["create", "--job", "a", &d]).status.code(),
        Some(0)
    );
    let expected = digest(&data);

    let to = dst.display().to_string();
    let copy_args = ["--key-file", &ka, "copy", "--to", &to, "--to-key-file", &kb];
    // How long an uninterrupted copy takes, measured on a throwaway target.
    let probe = t.path().join("probe");
    assert_eq!(
        run(&probe, &kb, &["init", "--pack-size", "64KiB"]).status.code(),
        Some(0)
    );
    let start = Instant::now();
    let probe_to = probe.display().to_string();
    let o = run(&src, &ka, &["copy", "--to", &probe_to, "--to-key-file", &kb]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let full = start.elapsed();

    let s = seed();
    eprintln!("copy: BACKUP_SNAP_CRASH_SEED={s}");
    let mut x = s | 1;
    let mut killed = 0;
    for round in 0..6 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let after = Duration::from_micros(x % (full.as_micros() as u64).max(1));
        let mut child = bin()
            .arg("--repo")
            .arg(&src)
            .args(copy_args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while t0.elapsed() < after && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if finished {
            // Nothing left to interrupt: start the next round from an empty target.
            fs::remove_dir_all(&dst).unwrap();
            assert_eq!(
                run(&dst, &kb, &["init", "--pack-size", "64KiB"]).status.code(),
                Some(0)
            );
            continue;
        }
        killed += 1;
        // Whatever the moment, the target is a valid repository.
        let v = run(&dst, &kb, &["verify", "--read-data"]);
        assert_eq!(
            v.status.code(),
            Some(0),
            "round {round} (seed {s}): target damaged after the kill: {}{}",
            String::from_utf8_lossy(&v.stdout),
            stderr(&v)
        );
    }
    eprintln!("copy: {killed} of 6 runs were killed before they finished");
    assert!(killed > 0, "no run was interrupted (seed {s})");

    // A rerun finishes the job.
    let o = bs(&src, &copy_args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let c: Vec<CopyRec> = records(&o, "copy");
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].snapshots_behind, 0);
    assert!(c[0].errors.is_empty());
    let v = run(&dst, &kb, &["verify", "--read-data"]);
    assert_eq!(v.status.code(), Some(0), "{}", stderr(&v));
    let listed: Vec<SnapshotRec> = records(&run(&dst, &kb, &["list"]), "snapshot");
    assert_eq!(listed.len(), 2, "each source snapshot is in the target once");
    let out = t.path().join("restored");
    let o = run(&dst, &kb, &["restore", "latest:a", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        digest(&restored(&out, &data)) == expected,
        "the copy restores what was backed up"
    );

    // Incremental: nothing new, nothing copied.
    let o = bs(&src, &copy_args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let c: Vec<CopyRec> = records(&o, "copy");
    assert_eq!((c[0].snapshots_copied, c[0].snapshots_present), (0, 2));
    assert_eq!((c[0].chunks_copied, c[0].bytes_copied), (0, 0));

    // One changed file: only its chunks travel, the rest is known.
    fs::write(data.join("d/small"), b"changed").unwrap();
    assert_eq!(
        run(&src, &ka, &["create", "--job", "a", &d]).status.code(),
        Some(0)
    );
    let prom = run(&src, &ka, &["--format", "prom", "list"]);
    let page = String::from_utf8_lossy(&prom.stdout).into_owned();
    assert!(
        page.contains(&format!("backup_copy_snapshots_behind{{target=\"{to}\"}} 1")),
        "{page}"
    );
    let o = bs(&src, &copy_args);
    let c: Vec<CopyRec> = records(&o, "copy");
    let copied: Vec<CopiedRec> = records(&o, "copied");
    assert_eq!((c[0].snapshots_copied, copied.len()), (1, 1));
    assert_eq!(c[0].chunks_copied, 1, "{c:?}");
    assert!(c[0].chunks_present > 5);
    let prom = run(&src, &ka, &["--format", "prom", "list"]);
    let page = String::from_utf8_lossy(&prom.stdout).into_owned();
    assert!(
        page.contains(&format!("backup_copy_snapshots_behind{{target=\"{to}\"}} 0")),
        "{page}"
    );
    assert!(
        page.contains("backup_copy_last_success_timestamp_seconds{"),
        "{page}"
    );
}

#[test]
fn unencrypted_copy_by_job_and_snapshot() {
    let _g = homelab_testkit::shared();
    let t = tempfile::tempdir().unwrap();
    let (src, dst, data) = (t.path().join("src"), t.path().join("dst"), t.path().join("data"));
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("f"), pseudo_random(5, 200 << 10)).unwrap();
    init(&src);
    init(&dst);
    let a = create(&src, "a", &[&data], &[]);
    create(&src, "b", &[&data], &[]);
    let to = dst.display().to_string();
    let o = ok(&src, &["copy", "--to", &to, "--job", "b"]);
    let c: Vec<CopyRec> = records(&o, "copy");
    assert_eq!((c[0].snapshots_copied, c[0].snapshots_behind), (1, 0));
    let o = ok(&src, &["copy", "--to", &to, "--snapshot", &a.id[..8]]);
    let c: Vec<CopyRec> = records(&o, "copy");
    // Same ids in both unencrypted repositories: the chunks of a are those of b.
    assert_eq!((c[0].snapshots_copied, c[0].chunks_copied), (1, 0));
    let listed: Vec<SnapshotRec> = records(&ok(&dst, &["list"]), "snapshot");
    assert_eq!(listed.len(), 2);
    ok(&dst, &["verify", "--read-data"]);
}

#[test]
fn wrong_or_missing_target_key_is_a_configuration_error() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    let (ka, kb) = (key(t.path(), "a.key", 1), key(t.path(), "b.key", 2));
    init(&src);
    assert_eq!(run(&dst, &kb, &["init"]).status.code(), Some(0));
    let to = dst.display().to_string();
    for extra in [&["--to-key-file", ka.as_str()][..], &[][..]] {
        let mut args = vec!["copy", "--to", &to];
        args.extend_from_slice(extra);
        let o = bs(&src, &args);
        assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
        let e = stderr(&o);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(
            e.starts_with("backup-snap: target: ") && e.contains("--to-key-file"),
            "{e}"
        );
    }
    let o = bs(&src, &["copy", "--to", t.path().join("none").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(66), "{}", stderr(&o));
    let o = bs(&src, &["copy", "--to", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
}
