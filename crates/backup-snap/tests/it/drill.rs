//! `drill`: restores the newest snapshot of each job into a temporary directory
//! and checks it; passes on a good repository, fails on a flipped byte in a pack and
//! on a broken SQLite copy; a dump pg_restore rejects fails it, and without
//! pg_restore that check is reported as skipped, not passed.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Output;

use serde::Deserialize;

use crate::common::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DrillRec {
    v: u32,
    ts: String,
    host: String,
    tool: String,
    kind: String,
    job: String,
    snapshot: Option<String>,
    time: Option<String>,
    files_checked: u64,
    bytes_checked: u64,
    sqlite_checked: u64,
    pg_dumps_checked: u64,
    skipped: Vec<String>,
    failures: Vec<String>,
    ok: bool,
    duration_seconds: f64,
}

fn drill(repo: &Path, tmp: &Path, path: Option<&str>, args: &[&str]) -> Output {
    let mut c = bin();
    c.env("TMPDIR", tmp)
        .arg("--repo")
        .arg(repo)
        .arg("drill")
        .args(args);
    if let Some(p) = path {
        c.env("PATH", p);
    }
    c.output().unwrap()
}

fn sqlite_db(path: &Path) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX tv ON t(v);")
        .unwrap();
    for i in 0..2000 {
        c.execute(
            "INSERT INTO t(v) VALUES (?1)",
            [format!("row {i} {}", "x".repeat(40))],
        )
        .unwrap();
    }
}

fn setup(t: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let (repo, data, tmp) = (t.join("repo"), t.join("data"), t.join("tmp"));
    fs::create_dir_all(data.join("n8n")).unwrap();
    fs::create_dir_all(&tmp).unwrap();
    fs::write(data.join("big"), pseudo_random(7, 700 << 10)).unwrap();
    fs::write(data.join("n8n/config"), b"{\"encryptionKey\":\"k\"}").unwrap();
    std::os::unix::fs::symlink("big", data.join("link")).unwrap();
    sqlite_db(&data.join("n8n/database.sqlite"));
    ok(&repo, &["init"]);
    (repo, data, tmp)
}

#[test]
fn a_good_repository_passes_and_the_temporary_copy_is_removed() {
    let t = tempfile::tempdir().unwrap();
    let (repo, data, tmp) = setup(t.path());
    let db = data.join("n8n/database.sqlite");
    let snap = create(&repo, "n8n", &[&data], &["--sqlite", db.to_str().unwrap()]);
    create(&repo, "other", &[&data.join("n8n")], &[]);
    let o = drill(&repo, &tmp, None, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: Vec<DrillRec> = records(&o, "drill");
    assert_eq!(r.len(), 2, "one per job");
    assert!(r.iter().all(|r| r.ok && r.failures.is_empty()), "{r:?}");
    let n8n = r.iter().find(|r| r.job == "n8n").unwrap();
    assert_eq!((n8n.files_checked, n8n.sqlite_checked), (3, 1), "{n8n:?}");
    assert_eq!(
        n8n.bytes_checked, snap.bytes,
        "every byte of the snapshot was checked"
    );
    assert_eq!(
        fs::read_dir(&tmp).unwrap().count(),
        0,
        "the restored copy is removed"
    );
    let o = ok(&repo, &["--format", "prom", "drill", "--job", "other"]);
    let page = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        page.contains("backup_drill_last_success_timestamp_seconds{job=\"n8n\"}"),
        "{page}"
    );
    assert!(page.contains("backup_drill_failures{job=\"other\"} 0"), "{page}");
}

#[test]
fn a_flipped_byte_in_a_pack_fails_the_drill() {
    let t = tempfile::tempdir().unwrap();
    let (repo, data, tmp) = setup(t.path());
    create(&repo, "j", &[&data], &[]);
    for p in packs(&repo) {
        let f = fs::OpenOptions::new().read(true).write(true).open(&p).unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, 100).unwrap();
        f.write_all_at(&[b[0] ^ 0x40], 100).unwrap();
    }
    let o = drill(&repo, &tmp, None, &[]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    let r: Vec<DrillRec> = records(&o, "drill");
    assert!(!r[0].ok && !r[0].failures.is_empty(), "{r:?}");
    assert!(
        stderr(&o).contains("backup-snap: drill: job j: "),
        "{}",
        stderr(&o)
    );
    let page = String::from_utf8_lossy(&ok(&repo, &["--format", "prom", "list"]).stdout).into_owned();
    assert!(
        !page.contains("backup_drill_last_success_timestamp_seconds{job=\"j\"}"),
        "{page}"
    );
    assert!(
        page.contains("backup_drill_last_run_timestamp_seconds{job=\"j\"}"),
        "{page}"
    );
    assert!(!page.contains("backup_drill_failures{job=\"j\"} 0"), "{page}");
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
}

#[test]
fn a_broken_sqlite_copy_fails_the_drill() {
    let t = tempfile::tempdir().unwrap();
    let (repo, data, tmp) = setup(t.path());
    // Backed up as a plain file (not through --sqlite, which would refuse it): a
    // b-tree page overwritten, the header intact.
    let db = data.join("n8n/database.sqlite");
    let f = fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.write_all_at(&[0x0du8; 512], 4096 * 3 + 8).unwrap();
    drop(f);
    create(&repo, "n8n", &[&data], &[]);
    let o = drill(&repo, &tmp, None, &[]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    let r: Vec<DrillRec> = records(&o, "drill");
    assert_eq!(r[0].sqlite_checked, 1);
    assert!(
        r[0].failures.iter().any(|f| f.contains("database.sqlite")),
        "{r:?}"
    );
}

#[test]
fn pg_dumps_are_listed_by_pg_restore_or_reported_skipped() {
    let t = tempfile::tempdir().unwrap();
    let (repo, data, tmp) = setup(t.path());
    fs::write(data.join("n8n.dump"), b"PGDMP\x01\x0e\x00 not really a dump").unwrap();
    create(&repo, "pg", &[&data], &[]);
    // No pg_restore on PATH: the check is skipped and said so, and the drill is
    // not a success (exit 69, no new success timestamp), though nothing failed.
    let empty = t.path().join("empty-bin");
    fs::create_dir(&empty).unwrap();
    let o = drill(&repo, &tmp, Some(empty.to_str().unwrap()), &[]);
    assert_eq!(o.status.code(), Some(69), "{}", stderr(&o));
    let r: Vec<DrillRec> = records(&o, "drill");
    assert!(!r[0].ok && r[0].failures.is_empty(), "{r:?}");
    assert_eq!(r[0].pg_dumps_checked, 0);
    assert_eq!(r[0].skipped.len(), 1, "{r:?}");
    assert!(r[0].skipped[0].contains("pg_restore is not installed"));
    assert!(stderr(&o).contains("skipped"), "{}", stderr(&o));
    // With pg_restore (installed by scripts/test), a broken dump fails the drill.
    if Path::new("/usr/bin/pg_restore").exists() {
        let o = drill(&repo, &tmp, Some("/usr/bin:/bin"), &[]);
        assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
        let r: Vec<DrillRec> = records(&o, "drill");
        assert_eq!(r[0].pg_dumps_checked, 1);
        assert!(
            r[0].failures
                .iter()
                .any(|f| f.contains("pg_restore --list failed")),
            "{r:?}"
        );
    }
}
