//! Defects found by trying backup-snap as a new user would (issues 23 and 25): a
//! create that reads nothing, partial snapshots as `latest` or as keepers, a failed
//! init that leaves a mess, `--keep-within` overflows, a key file an unencrypted
//! repository ignores, restore removing what stands in its way, files that change
//! while being read, and deep trees.

use std::fs;
use std::path::Path;

use crate::common::*;

fn src_tree(root: &Path) -> std::path::PathBuf {
    let src = root.join("src");
    fs::create_dir_all(src.join("a")).unwrap();
    fs::write(src.join("a/x"), b"from the snapshot").unwrap();
    fs::write(src.join("b"), b"bbbb").unwrap();
    src
}

fn snapshot_ids(repo: &Path) -> Vec<String> {
    let out = ok(repo, &["list"]);
    records::<SnapshotRec>(&out, "snapshot")
        .into_iter()
        .map(|s| s.id)
        .collect()
}

#[test]
fn a_create_that_reads_nothing_writes_no_snapshot() {
    let d = tempfile::tempdir().unwrap();
    let src = src_tree(d.path());
    let repo = d.path().join("repo");
    init(&repo);
    let good = create(&repo, "docs", &[&src], &[]);
    let o = bs(&repo, &["create", "--job", "docs", "/nonexistent/path"]);
    assert_eq!(o.status.code(), Some(66), "{}", stderr(&o));
    assert!(stderr(&o).contains("/nonexistent/path"), "{}", stderr(&o));
    assert!(stderr(&o).contains("no snapshot was written"), "{}", stderr(&o));
    assert!(records::<SnapshotRec>(&o, "snapshot").is_empty());
    assert_eq!(snapshot_ids(&repo), vec![good.id.clone()]);
    // `latest` is still the good one, and forget keeps it.
    let out = ok(&repo, &["forget", "--keep-last", "1"]);
    let f: Vec<ForgetRec> = records(&out, "forget");
    assert_eq!(
        (f.len(), f[0].id.as_str(), f[0].action.as_str()),
        (1, good.id.as_str(), "keep")
    );
}

#[test]
fn partial_snapshots_are_neither_latest_nor_keepers_unless_asked() {
    let d = tempfile::tempdir().unwrap();
    let src = src_tree(d.path());
    let repo = d.path().join("repo");
    init(&repo);
    let missing = d.path().join("missing");
    let partial_args = |time: &'static str| {
        let o = bs(
            &repo,
            &[
                "create",
                "--job",
                "docs",
                "--time",
                time,
                src.to_str().unwrap(),
                missing.to_str().unwrap(),
            ],
        );
        assert_eq!(o.status.code(), Some(74), "{}", stderr(&o));
        let s: Vec<SnapshotRec> = records(&o, "snapshot");
        assert_eq!(s[0].errors.len(), 1, "{:?}", s[0].errors);
        s[0].id.clone()
    };
    let old_partial = partial_args("2026-11-01T03:00:00Z");
    let good = create(&repo, "docs", &[&src], &["--time", "2026-11-02T03:00:00Z"]).id;
    let new_partial = partial_args("2026-11-03T03:00:00Z");

    // restore latest takes the newest complete snapshot; --allow-partial the newest.
    let restored_id = |extra: &[&str]| {
        let out = tempfile::tempdir().unwrap();
        let mut args = vec!["restore", "latest", out.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = ok(&repo, &args);
        records::<RestoreRec>(&o, "restore")[0].snapshot.clone()
    };
    assert_eq!(restored_id(&[]), good);
    assert_eq!(restored_id(&["--allow-partial"]), new_partial);

    // forget: the rules count complete snapshots only.
    let out = ok(&repo, &["forget", "--keep-last", "1", "--dry-run"]);
    let f: Vec<(String, String, Vec<String>)> = records::<ForgetRec>(&out, "forget")
        .into_iter()
        .map(|r| (r.id, r.action, r.reasons))
        .collect();
    assert_eq!(
        f,
        vec![
            (
                new_partial.clone(),
                "keep".into(),
                vec!["partial, newer than every complete snapshot".to_string()]
            ),
            (good.clone(), "keep".into(), vec!["last snapshot".to_string()]),
            (old_partial.clone(), "remove".into(), vec![]),
        ]
    );
    let out = ok(
        &repo,
        &["forget", "--keep-last", "1", "--allow-partial", "--dry-run"],
    );
    let kept: Vec<String> = records::<ForgetRec>(&out, "forget")
        .into_iter()
        .filter(|r| r.action == "keep")
        .map(|r| r.id)
        .collect();
    assert_eq!(kept, vec![new_partial.clone()]);

    // Only partial snapshots: latest names the way out.
    let repo2 = d.path().join("repo2");
    init(&repo2);
    let o = bs(
        &repo2,
        &[
            "create",
            "--job",
            "j",
            src.to_str().unwrap(),
            missing.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(74));
    let o = bs(
        &repo2,
        &["restore", "latest", d.path().join("o2").to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(66), "{}", stderr(&o));
    assert!(stderr(&o).contains("--allow-partial"), "{}", stderr(&o));
    assert!(!d.path().join("o2").exists(), "nothing created");
    // ... and a partial snapshot is not a success for BackupTooOld.
    let page = String::from_utf8(ok(&repo2, &["--format", "prom", "list"]).stdout).unwrap();
    assert!(page.contains("backup_last_errors{job=\"j\"} 1"), "{page}");
    assert!(!page.contains("backup_last_success_timestamp_seconds{"), "{page}");
    let page = String::from_utf8(ok(&repo, &["--format", "prom", "list"]).stdout).unwrap();
    assert!(
        page.contains("backup_last_success_timestamp_seconds{job=\"docs\"}"),
        "{page}"
    );
}

#[test]
fn restore_of_an_empty_selection_says_what_is_wrong() {
    let d = tempfile::tempdir().unwrap();
    let src = src_tree(d.path());
    let repo = d.path().join("repo");
    init(&repo);
    // Everything excluded and nothing failed: an empty snapshot, as restic allows.
    let empty = create(&repo, "e", &[&src], &["--exclude", "*"]);
    assert_eq!(empty.files, 0);
    let o = bs(
        &repo,
        &["restore", &empty.id, d.path().join("o").to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(66), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&empty.id) && err.contains("is empty"), "{err}");
    assert!(!err.contains("under :"), "{err}");
    let full = create(&repo, "f", &[&src], &[]);
    let o = bs(
        &repo,
        &[
            "restore",
            &full.id,
            d.path().join("o").to_str().unwrap(),
            "--path",
            "/nope",
        ],
    );
    assert_eq!(o.status.code(), Some(66));
    assert!(stderr(&o).contains("under /nope"), "{}", stderr(&o));
}

#[test]
fn a_failed_init_leaves_nothing_behind_and_a_retry_works() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("new/repo");
    let short = d.path().join("short.key");
    fs::write(&short, b"short").unwrap();
    let missing = d.path().join("missing.key");
    let o = bs(&repo, &["--key-file", missing.to_str().unwrap(), "init"]);
    assert_eq!(o.status.code(), Some(66), "{}", stderr(&o));
    assert!(!d.path().join("new").exists(), "init left a directory behind");
    let o = bs(&repo, &["--key-file", short.to_str().unwrap(), "init"]);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert!(!d.path().join("new").exists(), "init left a directory behind");
    // An existing empty directory stays empty.
    let empty = d.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let o = bs(&empty, &["--key-file", short.to_str().unwrap(), "init"]);
    assert_eq!(o.status.code(), Some(78));
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0, "init wrote into it");
    // The retry with a good key works, and the repository is usable.
    let key = d.path().join("good.key");
    fs::write(&key, pseudo_random(5, 32)).unwrap();
    for r in [&repo, &empty] {
        ok(r, &["--key-file", key.to_str().unwrap(), "init"]);
        ok(r, &["--key-file", key.to_str().unwrap(), "list"]);
    }
}

#[test]
fn keep_within_beyond_the_calendar_keeps_everything() {
    let d = tempfile::tempdir().unwrap();
    let src = src_tree(d.path());
    let repo = d.path().join("repo");
    init(&repo);
    for t in [
        "2020-01-01T00:00:00Z",
        "2024-06-01T00:00:00Z",
        "2026-11-01T00:00:00Z",
    ] {
        create(&repo, "j", &[&src], &["--time", t]);
    }
    for within in [
        "300000y",
        "99999999999h",
        "99999999999999999999999d",
        "9223372036854775807m",
    ] {
        let o = bs(&repo, &["forget", "--keep-within", within, "--dry-run"]);
        assert_eq!(o.status.code(), Some(0), "{within}: {}", stderr(&o));
        let f: Vec<ForgetRec> = records(&o, "forget");
        assert_eq!(f.len(), 3);
        assert!(f.iter().all(|r| r.action == "keep"), "{within}: {f:?}");
    }
    let o = ok(&repo, &["forget", "--keep-within", "300000y"]);
    assert!(
        records::<ForgetRec>(&o, "forget")
            .iter()
            .all(|r| r.action == "keep")
    );
    assert_eq!(snapshot_ids(&repo).len(), 3, "forget removed snapshots");
    // 5m is five months, as in restic: the help and the error say so.
    let o = ok(&repo, &["forget", "--keep-within", "5m", "--dry-run"]);
    let kept: Vec<ForgetRec> = records(&o, "forget");
    assert_eq!(kept.iter().filter(|r| r.action == "keep").count(), 1);
    assert_eq!(kept[0].reasons, vec!["within 5m".to_string()]);
    let help = String::from_utf8(ok(&repo, &["forget", "--help"]).stdout).unwrap();
    // As one line: clap wraps help to the terminal's width.
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("m months (not minutes)"), "{help}");
    let o = bs(&repo, &["forget", "--keep-within", "5min"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("m months (not minutes)"), "{}", stderr(&o));
}

#[test]
fn a_key_file_for_an_unencrypted_repository_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let src = src_tree(d.path());
    let repo = d.path().join("repo");
    init(&repo);
    let key = d.path().join("k");
    fs::write(&key, pseudo_random(3, 32)).unwrap();
    let kf = key.to_str().unwrap();
    for args in [
        &["--key-file", kf, "list"][..],
        &["--key-file", kf, "create", "--job", "j", src.to_str().unwrap()],
    ] {
        let o = bs(&repo, args);
        assert_eq!(o.status.code(), Some(78), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("not encrypted"), "{}", stderr(&o));
        assert!(o.stdout.is_empty());
    }
    let o = bin()
        .env("BACKUP_SNAP_KEY_FILE", &key)
        .args(["--repo", repo.to_str().unwrap(), "list"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(78), "the environment's key file too");
    assert!(snapshot_ids(&repo).is_empty(), "no snapshot was written");
}

/// A snapshot of `src` (a/x, b, c), and a target that holds a user's directory where
/// a/x goes (with a file in it) and a user's file where b goes.
fn conflicting_target(d: &Path) -> (std::path::PathBuf, String, std::path::PathBuf, std::path::PathBuf) {
    let src = src_tree(d);
    fs::write(src.join("c"), b"new").unwrap();
    let repo = d.join("repo");
    init(&repo);
    let snap = create(&repo, "j", &[&src], &[]);
    let target = d.join("target");
    let back = restored(&target, &src);
    fs::create_dir_all(back.join("a/x")).unwrap();
    fs::write(back.join("a/x/mine"), b"the user's").unwrap();
    fs::write(back.join("b"), b"the user's b").unwrap();
    (repo, snap.id, target, back)
}

#[test]
fn restore_never_removes_what_stands_in_its_way_unless_told() {
    let d = tempfile::tempdir().unwrap();
    let (repo, id, target, back) = conflicting_target(d.path());
    let t = target.to_str().unwrap();
    // Default: refuse before writing anything, and list the conflicts.
    let o = bs(&repo, &["restore", &id, t]);
    assert_eq!(o.status.code(), Some(73), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("a/x: a directory stands where the snapshot has a file"),
        "{err}"
    );
    assert!(err.contains("/b: already exists"), "{err}");
    assert!(err.contains("--overwrite"), "{err}");
    assert_eq!(fs::read(back.join("a/x/mine")).unwrap(), b"the user's");
    assert_eq!(fs::read(back.join("b")).unwrap(), b"the user's b");
    assert!(!back.join("c").exists(), "nothing is written when it refuses");

    // never: restores what is missing, leaves the rest.
    let o = ok(&repo, &["restore", &id, t, "--overwrite", "never"]);
    let r = &records::<RestoreRec>(&o, "restore")[0];
    assert_eq!((r.skipped, r.errors.len()), (2, 0), "{r:?}");
    assert_eq!(fs::read(back.join("c")).unwrap(), b"new");
    assert_eq!(fs::read(back.join("b")).unwrap(), b"the user's b");

    // always: replaces files, but never removes a directory that is not empty.
    let o = bs(&repo, &["restore", &id, t, "--overwrite", "always"]);
    assert_eq!(o.status.code(), Some(74), "{}", stderr(&o));
    assert!(stderr(&o).contains("not empty"), "{}", stderr(&o));
    assert_eq!(fs::read(back.join("a/x/mine")).unwrap(), b"the user's");
    assert_eq!(fs::read(back.join("b")).unwrap(), b"bbbb");
    // An empty directory in the way is replaced.
    fs::remove_file(back.join("a/x/mine")).unwrap();
    ok(&repo, &["restore", &id, t, "--overwrite", "always"]);
    assert_eq!(fs::read(back.join("a/x")).unwrap(), b"from the snapshot");
}

#[test]
fn restore_overwrite_if_changed_and_if_newer() {
    let d = tempfile::tempdir().unwrap();
    let (repo, id, target, back) = conflicting_target(d.path());
    let t = target.to_str().unwrap();
    fs::remove_dir_all(back.join("a/x")).unwrap();
    let snap_mtime = fs::metadata(d.path().join("src/b")).unwrap().modified().unwrap();
    let set = |p: &Path, t: std::time::SystemTime| {
        fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(t)
            .unwrap()
    };
    let hour = std::time::Duration::from_secs(3600);
    // if-newer: the target's b is newer than the snapshot's: left.
    set(&back.join("b"), snap_mtime + hour);
    ok(&repo, &["restore", &id, t, "--overwrite", "if-newer"]);
    assert_eq!(fs::read(back.join("b")).unwrap(), b"the user's b");
    // ... older: replaced.
    fs::write(back.join("b"), b"the user's b").unwrap();
    set(&back.join("b"), snap_mtime - hour);
    ok(&repo, &["restore", &id, t, "--overwrite", "if-newer"]);
    assert_eq!(fs::read(back.join("b")).unwrap(), b"bbbb");
    // if-changed: same size and mtime count as unchanged (not read), others replaced.
    fs::write(back.join("b"), b"BBBB").unwrap();
    set(&back.join("b"), snap_mtime);
    fs::write(back.join("c"), b"longer than new").unwrap();
    let o = ok(&repo, &["restore", &id, t, "--overwrite", "if-changed"]);
    assert_eq!(fs::read(back.join("b")).unwrap(), b"BBBB");
    assert_eq!(fs::read(back.join("c")).unwrap(), b"new");
    assert!(records::<RestoreRec>(&o, "restore")[0].skipped >= 1);
}

/// A file whose bytes read differ from the size it showed, on both readings, is
/// flagged. /proc/uptime does that every time (its size is 0, a read returns a
/// line): a deterministic stand-in for a log written while it is read; the sizes
/// and times compared are unit-tested in create.rs.
#[test]
fn a_file_that_keeps_changing_while_read_is_flagged() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("quiet"), b"still").unwrap();
    let repo = d.path().join("repo");
    init(&repo);
    let o = bs(
        &repo,
        &["create", "--job", "j", src.to_str().unwrap(), "/proc/uptime"],
    );
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    let s: Vec<SnapshotRec> = records(&o, "snapshot");
    assert!(s[0].errors.is_empty(), "{:?}", s[0].errors);
    assert_eq!(s[0].warnings.len(), 1, "{:?}", s[0].warnings);
    let w = &s[0].warnings[0];
    assert!(
        w.starts_with("/proc/uptime: grew from 0 to ") && w.contains("while being read, twice"),
        "{w}"
    );
    assert!(stderr(&o).contains("/proc/uptime: grew"), "{}", stderr(&o));
    assert_eq!(s[0].files, 2, "the file is still stored");
    // Complete (only a warning): it is `latest`.
    let out = d.path().join("out");
    let o = ok(&repo, &["restore", "latest", out.to_str().unwrap()]);
    assert_eq!(records::<RestoreRec>(&o, "restore")[0].snapshot, s[0].id);
}

/// A deep tree restores whole (restore.rs's unit test proves the work is linear
/// with 1,200 levels; here fewer, as every path syscall is slow under qemu-user).
#[test]
fn a_deep_tree_round_trips() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    let mut p = src.clone();
    for _ in 0..400 {
        p.push("d");
    }
    fs::create_dir_all(&p).unwrap();
    fs::write(p.join("leaf"), b"deep").unwrap();
    let repo = d.path().join("repo");
    init(&repo);
    let s = create(&repo, "deep", &[&src], &[]);
    let out = d.path().join("out");
    let o = ok(&repo, &["restore", &s.id, out.to_str().unwrap()]);
    let r = &records::<RestoreRec>(&o, "restore")[0];
    assert_eq!((r.dirs, r.files), (401, 1));
    assert_same_tree(&src, &restored(&out, &src));
}
