//! Damage: one flipped byte in a pack, a truncated pack, a missing pack, a corrupt
//! manifest. verify names exactly the affected snapshots and files and exits 65.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use backup_snap::crypto::{hex, parse_id};
use backup_snap::repo::Repo;
use backup_snap::snapshot;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    repo: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let repo = root.join("repo");
    ok(&repo, &["init", "--pack-size", "256KiB"]);
    for job in ["alpha", "beta"] {
        let src = root.join(job);
        fs::create_dir_all(src.join("docs")).unwrap();
        for i in 0..6u64 {
            let seed = i + if job == "alpha" { 0 } else { 100 };
            fs::write(src.join(format!("file-{i}.bin")), pseudo_random(seed, 700_000)).unwrap();
        }
        fs::write(src.join("docs/readme"), format!("{job} readme\n")).unwrap();
        create(&repo, job, &[&src], &[]);
    }
    Fixture {
        _dir: dir,
        root,
        repo,
    }
}

/// (snapshot id, path) of every file that needs one of `chunks`, from the manifests.
fn files_needing(repo: &Path, chunks: &BTreeSet<[u8; 32]>) -> BTreeSet<(String, String)> {
    let r = Repo::open(repo, None).unwrap();
    let mut out = BTreeSet::new();
    for id in snapshot::list_ids(&r).unwrap() {
        let (_, tree) = snapshot::read_full(&r, &id).unwrap();
        for e in tree {
            if e.chunk_ids().any(|c| chunks.contains(&c)) {
                out.insert((hex(&id), e.path_lossy()));
            }
        }
    }
    out
}

fn pack_chunks(repo: &Path, pack: &Path) -> Vec<([u8; 32], u64, u32)> {
    let r = Repo::open(repo, None).unwrap();
    let id = parse_id(pack.file_name().unwrap().to_str().unwrap()).unwrap();
    r.read_trailer(&id)
        .unwrap()
        .into_iter()
        .map(|e| (e.0, e.1, e.2))
        .collect()
}

fn verify(repo: &Path, read_data: bool) -> (Option<i32>, Vec<DamageRec>, VerifyRec) {
    let args: &[&str] = if read_data {
        &["verify", "--read-data"]
    } else {
        &["verify"]
    };
    let o = bs(repo, args);
    let d: Vec<DamageRec> = records(&o, "damage");
    let mut s: Vec<VerifyRec> = records(&o, "verify");
    (o.status.code(), d, s.remove(0))
}

fn reported_files(d: &[DamageRec]) -> BTreeSet<(String, String)> {
    d.iter()
        .filter(|r| r.object == "file")
        .map(|r| (r.snapshot.clone().unwrap(), r.path.clone().unwrap()))
        .collect()
}

#[test]
fn a_clean_repository_verifies() {
    let f = fixture();
    let (code, d, s) = verify(&f.repo, true);
    assert_eq!(code, Some(0), "{d:#?}");
    assert!(s.ok && s.errors == 0 && s.snapshots == 2 && s.packs_read == s.packs);
    let (code, _, s) = verify(&f.repo, false);
    assert_eq!(code, Some(0));
    assert_eq!((s.read_data.as_str(), s.packs_read), ("none", 0));
}

#[test]
fn one_flipped_byte_names_the_snapshot_and_file() {
    let f = fixture();
    let pack = packs(&f.repo)[0].clone();
    let chunks = pack_chunks(&f.repo, &pack);
    let (victim, offset, _) = chunks[chunks.len() / 2];
    let mut raw = fs::read(&pack).unwrap();
    raw[(offset + 40) as usize] ^= 0x01;
    fs::write(&pack, raw).unwrap();

    let expected = files_needing(&f.repo, &BTreeSet::from([victim]));
    assert!(!expected.is_empty());
    let (code, d, s) = verify(&f.repo, true);
    assert_eq!(code, Some(65));
    assert!(!s.ok);
    assert_eq!(reported_files(&d), expected, "{d:#?}");
    assert!(
        d.iter()
            .any(|r| r.object == "chunk" && r.id.as_deref() == Some(&hex(&victim)))
    );
    assert!(
        d.iter()
            .any(|r| r.object == "pack" && r.problem.contains("does not match its name"))
    );
    assert_eq!(s.damaged_chunks, 1);
    // The file named is the one whose restore fails.
    let (snap, path) = expected.iter().next().unwrap();
    let o = bs(
        &f.repo,
        &[
            "restore",
            snap,
            f.root.join("out").to_str().unwrap(),
            "--path",
            path,
        ],
    );
    assert_eq!(o.status.code(), Some(74), "{}", stderr(&o));
    assert!(stderr(&o).contains(&hex(&victim)));
}

#[test]
fn a_truncated_pack_is_found_even_without_read_data() {
    let f = fixture();
    let pack = packs(&f.repo)[1].clone();
    let chunks: BTreeSet<[u8; 32]> = pack_chunks(&f.repo, &pack).into_iter().map(|c| c.0).collect();
    let expected = files_needing(&f.repo, &chunks);
    let len = fs::metadata(&pack).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&pack)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    for read_data in [false, true] {
        let (code, d, s) = verify(&f.repo, read_data);
        assert_eq!(code, Some(65));
        assert_eq!(reported_files(&d), expected, "{d:#?}");
        assert_eq!(s.damaged_packs, 1);
        assert!(
            d.iter()
                .any(|r| r.object == "pack" && r.problem.contains("truncated")),
            "{d:#?}"
        );
    }
}

#[test]
fn a_missing_pack_names_what_it_held() {
    let f = fixture();
    let all = packs(&f.repo);
    let pack = all.last().unwrap().clone();
    let chunks: BTreeSet<[u8; 32]> = pack_chunks(&f.repo, &pack).into_iter().map(|c| c.0).collect();
    let expected = files_needing(&f.repo, &chunks);
    fs::remove_file(&pack).unwrap();
    let (code, d, s) = verify(&f.repo, true);
    assert_eq!(code, Some(65));
    assert_eq!(reported_files(&d), expected);
    assert!(
        d.iter()
            .filter(|r| r.object == "file")
            .all(|r| r.problem.contains("missing"))
    );
    assert_eq!(s.affected_files as usize, expected.len());
}

#[test]
fn a_corrupt_manifest_is_named_and_the_other_snapshot_is_fine() {
    let f = fixture();
    let r = Repo::open(&f.repo, None).unwrap();
    let ids = snapshot::list_ids(&r).unwrap();
    let path = snapshot::snapshot_path(&r, &ids[0]);
    let mut raw = fs::read(&path).unwrap();
    let n = raw.len();
    raw[n - 10] ^= 0x80;
    fs::write(&path, raw).unwrap();
    let (code, d, s) = verify(&f.repo, false);
    assert_eq!(code, Some(65));
    assert_eq!(s.damaged_snapshots, 1);
    let snaps: Vec<&DamageRec> = d.iter().filter(|r| r.object == "snapshot").collect();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].id.as_deref(), Some(hex(&ids[0]).as_str()));
    assert!(
        reported_files(&d).is_empty(),
        "the other snapshot is whole: {d:#?}"
    );
    // A manifest that is garbage from the start.
    fs::write(&path, b"garbage").unwrap();
    let (code, d, _) = verify(&f.repo, false);
    assert_eq!(code, Some(65));
    assert!(d.iter().any(|r| r.object == "snapshot"));
    // Prune refuses to guess what a damaged snapshot needs.
    let o = bs(&f.repo, &["prune"]);
    assert_eq!(o.status.code(), Some(65));
    assert!(stderr(&o).contains("prune changed nothing"), "{}", stderr(&o));
    let _ = Command::new("true").status();
}

#[test]
fn a_damaged_config_is_a_clear_error() {
    let f = fixture();
    fs::write(f.repo.join("config"), b"{not json").unwrap();
    let o = bs(&f.repo, &["list"]);
    assert_eq!(o.status.code(), Some(65));
    assert!(stderr(&o).starts_with("backup-snap: "), "{}", stderr(&o));
    assert!(stderr(&o).contains("config"), "{}", stderr(&o));
    let o = bs(&f.root.join("nothing-here"), &["list"]);
    assert_eq!(o.status.code(), Some(66));
    assert!(
        stderr(&o).contains("not a backup-snap repository"),
        "{}",
        stderr(&o)
    );
}
