//! Restore drills: the newest complete snapshot of a job restored into a temporary
//! directory and checked as a person would check it: every file against the
//! snapshot's chunk ids and metadata, every SQLite database with
//! `PRAGMA integrity_check`, every Postgres dump with `pg_restore --list`. The
//! temporary copy is removed afterwards.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use homelab_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::repo::{Index, Repo};
use crate::restore;
use crate::snapshot::{self, Entry, Kind, Listed};

/// `kind: drill`, one per job.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub job: String,
    pub snapshot: Option<String>,
    pub time: Option<String>,
    pub files_checked: u64,
    pub bytes_checked: u64,
    pub sqlite_checked: u64,
    pub pg_dumps_checked: u64,
    /// Checks that could not run (e.g. pg_restore is not installed): not a success.
    pub skipped: Vec<String>,
    pub failures: Vec<String>,
    pub ok: bool,
    pub duration_seconds: f64,
}

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
const PGDUMP_MAGIC: &[u8; 5] = b"PGDMP";

/// Restores `snap` under a temporary directory in `tmp_dir` and checks it.
pub fn run(repo: &Repo, index: &Index, snap: &Listed, tmp_dir: &Path) -> Result<Report> {
    let start = Instant::now();
    let mut r = Report {
        job: snap.header.job.clone(),
        snapshot: Some(snap.id_hex()),
        time: Some(snap.header.time.clone()),
        ..Default::default()
    };
    let (_, tree) = match snapshot::read_full(repo, &snap.id) {
        Ok(x) => x,
        Err(p) => {
            r.failures.push(format!("snapshot {}: {p}", snap.id_hex()));
            return Ok(finish(r, start));
        }
    };
    let tmp = tempfile::Builder::new()
        .prefix("backup-snap-drill-")
        .tempdir_in(tmp_dir)
        .map_err(|e| {
            Error::io(
                format!("creating a temporary directory in {}", tmp_dir.display()),
                e,
            )
            .hint("set TMPDIR to a directory with room for the largest snapshot")
        })?;
    let counts = restore::run(
        repo,
        index,
        tree.as_slice(),
        tmp.path(),
        &restore::Options {
            snapshot: snap.id_hex(),
            subpath: None,
            overwrite: None,
        },
    )?;
    for e in counts.errors {
        r.failures.push(format!("restore: {e}"));
    }
    let pg_restore = which("pg_restore");
    for e in &tree {
        let Ok(rel) = restore::safe_relative(&e.path) else {
            continue;
        };
        let dest = tmp.path().join(rel);
        if let Err(p) = check_entry(repo, index, e, &dest, &mut r) {
            r.failures.push(format!("{}: {p}", e.path_lossy()));
            continue;
        }
        if e.kind != Kind::File {
            continue;
        }
        let mut magic = [0u8; 16];
        let n = fs::File::open(&dest)
            .and_then(|mut f| f.read(&mut magic))
            .unwrap_or(0);
        if n == 16 && &magic == SQLITE_MAGIC {
            r.sqlite_checked += 1;
            if let Err(p) = check_sqlite(&dest) {
                r.failures.push(format!("{}: {p}", e.path_lossy()));
            }
        } else if n >= 5 && &magic[..5] == PGDUMP_MAGIC {
            match &pg_restore {
                None => r.skipped.push(format!(
                    "{}: pg_restore --list not run: pg_restore is not installed",
                    e.path_lossy()
                )),
                Some(prog) => {
                    r.pg_dumps_checked += 1;
                    if let Err(p) = check_pg_dump(prog, &dest) {
                        r.failures.push(format!("{}: {p}", e.path_lossy()));
                    }
                }
            }
        }
    }
    tmp.close()
        .map_err(|e| Error::io("removing the drill's temporary copy", e))?;
    Ok(finish(r, start))
}

fn finish(mut r: Report, start: Instant) -> Report {
    // A check that could not run is not a pass.
    r.ok = r.failures.is_empty() && r.skipped.is_empty();
    r.duration_seconds = (start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    r
}

/// Compares one restored item with its entry.
fn check_entry(
    repo: &Repo,
    index: &Index,
    e: &Entry,
    dest: &Path,
    r: &mut Report,
) -> std::result::Result<(), String> {
    let m = fs::symlink_metadata(dest).map_err(|err| format!("not restored: {err}"))?;
    let root = nix::unistd::geteuid().is_root();
    match e.kind {
        Kind::Dir => {
            if !m.is_dir() {
                return Err("not restored as a directory".into());
            }
        }
        Kind::Symlink => {
            let t = fs::read_link(dest).map_err(|err| format!("not restored as a symlink: {err}"))?;
            if Some(std::os::unix::ffi::OsStrExt::as_bytes(t.as_os_str())) != e.target.as_deref() {
                return Err("symlink target differs from the snapshot's".into());
            }
            return Ok(());
        }
        Kind::File => {
            if !m.is_file() {
                return Err("not restored as a file".into());
            }
            if m.len() != e.size {
                return Err(format!("size {} differs from the snapshot's {}", m.len(), e.size));
            }
            let mut f = fs::File::open(dest).map_err(|err| err.to_string())?;
            for (n, cid) in e.chunk_ids().enumerate() {
                let size = index
                    .get(&cid)
                    .ok_or_else(|| format!("chunk {n} is missing from the repository"))?
                    .size as usize;
                let mut buf = vec![0u8; size];
                f.read_exact(&mut buf)
                    .map_err(|err| format!("chunk {n}: {err}"))?;
                if repo.chunk_id(&buf) != cid {
                    return Err(format!("content differs from the snapshot's (chunk {n})"));
                }
            }
            r.files_checked += 1;
            r.bytes_checked += e.size;
            if (m.mtime(), m.mtime_nsec() as u32) != (e.mtime, e.mtime_nsec) {
                return Err("modification time differs from the snapshot's".into());
            }
        }
        // Hard links share the checked file; devices and FIFOs have no content.
        _ => return Ok(()),
    }
    if m.mode() & 0o7777 != e.mode {
        return Err(format!(
            "mode {:o} differs from the snapshot's {:o}",
            m.mode() & 0o7777,
            e.mode
        ));
    }
    if root && (m.uid(), m.gid()) != (e.uid, e.gid) {
        return Err("owner differs from the snapshot's".into());
    }
    Ok(())
}

fn check_sqlite(path: &Path) -> std::result::Result<(), String> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("SQLite: {e}"))?;
    crate::sqlite::check(&conn).map_err(|e| e.replace(" of the copy", ""))
}

fn check_pg_dump(prog: &Path, path: &Path) -> std::result::Result<(), String> {
    let out = std::process::Command::new(prog)
        .arg("--list")
        .arg(path)
        .stdout(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("running pg_restore: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "pg_restore --list failed: {}",
            err.lines().next().unwrap_or("(no message)")
        ))
    }
}

/// A program on PATH.
fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0))
}

/// The last drill of each job, kept in `state/drill.json` for the metrics.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct JobState {
    pub last_run: f64,
    pub last_success: Option<f64>,
    pub failures: u64,
}

pub type DrillState = std::collections::BTreeMap<String, JobState>;

pub fn read_state(repo: &Repo) -> DrillState {
    fs::read(repo.path.join("state").join("drill.json"))
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .unwrap_or_default()
}

pub fn write_state(repo: &Repo, state: &DrillState) -> Result<()> {
    let json = serde_json::to_vec(state).map_err(|e| Error::bug(format!("drill state: {e}")))?;
    repo.write_atomic(&repo.path.join("state").join("drill.json"), &json)
}
