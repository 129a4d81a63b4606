//! Shared by backup-snap's integration tests: running the binary, parsing its records
//! strictly, making trees and comparing them by a full metadata and checksum walk.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_backup-snap"))
}

/// `backup-snap --repo REPO ARGS...`.
pub fn bs(repo: &Path, args: &[&str]) -> Output {
    bin()
        .arg("--repo")
        .arg(repo)
        .args(args)
        .output()
        .expect("running backup-snap")
}

pub fn ok(repo: &Path, args: &[&str]) -> Output {
    let out = bs(repo, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "backup-snap {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRec {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
    pub id: String,
    pub job: String,
    pub time: String,
    pub paths: Vec<String>,
    pub files: u64,
    pub bytes: u64,
    pub bytes_added: u64,
    pub chunks_new: u64,
    pub chunks_reused: u64,
    pub duration_seconds: f64,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryRec {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
    pub repository: String,
    pub format_version: u32,
    pub encrypted: bool,
    pub chunker: String,
    pub chunk_min_bytes: u32,
    pub chunk_avg_bytes: u32,
    pub chunk_max_bytes: u32,
    pub pack_size_bytes: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRec {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
    pub snapshot: String,
    pub target: String,
    pub path: Option<String>,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub special: u64,
    pub skipped: u64,
    pub bytes: u64,
    pub errors: Vec<String>,
    pub duration_seconds: f64,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct DamageRec {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
    pub object: String,
    pub id: Option<String>,
    pub snapshot: Option<String>,
    pub job: Option<String>,
    pub path: Option<String>,
    pub problem: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRec {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
    pub read_data: String,
    pub snapshots: u64,
    pub packs: u64,
    pub chunks: u64,
    pub packs_read: u64,
    pub bytes_read: u64,
    pub damaged_packs: u64,
    pub damaged_chunks: u64,
    pub damaged_snapshots: u64,
    pub affected_snapshots: u64,
    pub affected_files: u64,
    pub errors: u64,
    pub ok: bool,
    pub duration_seconds: f64,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ForgetRec {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
    pub id: String,
    pub job: String,
    pub time: String,
    pub action: String,
    pub reasons: Vec<String>,
    pub dry_run: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneRec {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
    pub snapshots: u64,
    pub packs_before: u64,
    pub packs_deleted: u64,
    pub packs_rewritten: u64,
    pub packs_written: u64,
    pub chunks_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub bytes_freed: u64,
    pub tmp_files_removed: u64,
    pub dry_run: bool,
    pub duration_seconds: f64,
}

/// Parses every line of stdout strictly: the envelope, then the kind's own struct.
pub fn records<T: serde::de::DeserializeOwned>(out: &Output, kind: &str) -> Vec<T> {
    let text = String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8");
    let mut v = Vec::new();
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(value["v"], 1);
        assert_eq!(value["tool"], "backup-snap");
        if value["kind"] == kind {
            v.push(serde_json::from_value(value).unwrap_or_else(|e| panic!("{kind}: {e}: {line}")));
        }
    }
    v
}

pub fn init(repo: &Path) {
    ok(repo, &["init"]);
}

pub fn create(repo: &Path, job: &str, paths: &[&Path], extra: &[&str]) -> SnapshotRec {
    let mut args = vec!["create", "--job", job];
    args.extend_from_slice(extra);
    let ps: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    args.extend(ps.iter().map(String::as_str));
    let out = ok(repo, &args);
    let mut r: Vec<SnapshotRec> = records(&out, "snapshot");
    assert_eq!(r.len(), 1);
    r.remove(0)
}

/// Fast deterministic bytes (xorshift64*).
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545F4914F6CDD1D).to_le_bytes());
    }
    v.truncate(len);
    v
}

/// One item of a tree walk: everything restore must reproduce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub kind: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub size: u64,
    pub content: Option<String>,
    pub link: Option<Vec<u8>>,
    /// For hard-linked files: the other paths sharing the inode.
    pub links: Vec<Vec<u8>>,
    pub rdev: u64,
}

/// Walks `root` without following symlinks: relative path -> item.
pub fn digest(root: &Path) -> BTreeMap<Vec<u8>, Item> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<Vec<u8>>> = BTreeMap::new();
    walk(root, root, &mut out, &mut inodes);
    for paths in inodes.values() {
        if paths.len() > 1 {
            for p in paths {
                let others: Vec<Vec<u8>> = paths.iter().filter(|q| *q != p).cloned().collect();
                out.get_mut(p).unwrap().links = others;
            }
        }
    }
    out
}

fn walk(
    root: &Path,
    p: &Path,
    out: &mut BTreeMap<Vec<u8>, Item>,
    inodes: &mut BTreeMap<(u64, u64), Vec<Vec<u8>>>,
) {
    let m = fs::symlink_metadata(p).unwrap();
    let rel = p.strip_prefix(root).unwrap().as_os_str().as_bytes().to_vec();
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else {
        "special"
    };
    let content = ft
        .is_file()
        .then(|| blake3::hash(&fs::read(p).unwrap()).to_hex().to_string());
    let link = ft
        .is_symlink()
        .then(|| fs::read_link(p).unwrap().as_os_str().as_bytes().to_vec());
    if ft.is_file() && m.nlink() > 1 {
        inodes.entry((m.dev(), m.ino())).or_default().push(rel.clone());
    }
    out.insert(
        rel,
        Item {
            kind: kind.into(),
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            mtime: (m.mtime(), m.mtime_nsec()),
            size: if ft.is_dir() { 0 } else { m.size() },
            content,
            link,
            links: Vec::new(),
            rdev: m.rdev(),
        },
    );
    if ft.is_dir() {
        let mut names: Vec<_> = fs::read_dir(p).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        for n in names {
            walk(root, &p.join(n), out, inodes);
        }
    }
}

/// Asserts two trees are identical, naming the first difference.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let da = digest(a);
    let db = digest(b);
    for (k, va) in &da {
        match db.get(k) {
            None => panic!("{} is missing from {}", String::from_utf8_lossy(k), b.display()),
            Some(vb) => assert_eq!(va, vb, "{} differs", String::from_utf8_lossy(k)),
        }
    }
    assert_eq!(da.len(), db.len(), "{} has extra items", b.display());
}

/// Where restore puts an absolute source path under a target.
pub fn restored(target: &Path, source: &Path) -> PathBuf {
    target.join(source.strip_prefix("/").unwrap())
}

/// Pack files of a repository.
pub fn packs(repo: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for d in fs::read_dir(repo.join("packs")).unwrap() {
        for f in fs::read_dir(d.unwrap().path()).unwrap() {
            v.push(f.unwrap().path());
        }
    }
    v.sort();
    v
}
