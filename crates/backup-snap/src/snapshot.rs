//! Snapshot manifests: `snapshots/<id>`, written last and atomically by create.
//!
//! Layout: the magic `BSNSNAP1`, a u32 (little endian) length H, the header blob (H
//! bytes), then the tree blob. Both are CBOR, zstd-compressed and sealed when the
//! repository is encrypted (the blob encoding of packs). The header carries the
//! BLAKE3 of the stored tree blob, so a header and a tree cannot be mixed up; the
//! snapshot id is the BLAKE3 of the whole file, so bit rot shows as a name mismatch.

use std::fs;
use std::path::PathBuf;

use homelab_core::{Error, Exit, Result};
use serde::{Deserialize, Serialize};

use crate::crypto::{self, Id};
use crate::repo::{Repo, SNAPSHOT_MAGIC};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Header {
    pub version: u32,
    pub job: String,
    /// RFC 3339 with the UTC offset of the machine that made it (or --time).
    pub time: String,
    pub host: String,
    #[serde(with = "serde_bytes")]
    pub tree_hash: Vec<u8>,
    pub paths: Vec<String>,
    pub files: u64,
    pub bytes: u64,
    pub bytes_added: u64,
    pub chunks_new: u64,
    pub chunks_reused: u64,
    pub duration_seconds: f64,
    /// Unix time when the snapshot was complete.
    pub finished: f64,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    /// Set by copy: the id of the snapshot this one copies (the first original when
    /// a copy is copied again), so a later copy knows it is already there.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub original: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Fifo,
    Char,
    Block,
}

/// One item of the tree. Paths are absolute and raw bytes (any name a Linux
/// filesystem allows, UTF-8 or not).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    #[serde(with = "serde_bytes")]
    pub path: Vec<u8>,
    pub kind: Kind,
    /// Permission bits with setuid, setgid and sticky (mode & 07777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_nsec: u32,
    pub size: u64,
    /// Symlink: the link's target. Hard link: the path of the entry holding the data.
    #[serde(with = "serde_bytes", default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Vec<u8>>,
    /// The chunk ids of a file's content, 32 bytes each, in order.
    #[serde(with = "serde_bytes", default)]
    pub chunks: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdev: Option<u64>,
    /// For the next create's "unchanged file" test: inode and ctime.
    #[serde(default)]
    pub ino: u64,
    #[serde(default)]
    pub ctime: i64,
    #[serde(default)]
    pub ctime_nsec: u32,
}

impl Entry {
    pub fn chunk_ids(&self) -> impl Iterator<Item = Id> + '_ {
        self.chunks.chunks_exact(32).map(|c| {
            let mut id = [0u8; 32];
            id.copy_from_slice(c);
            id
        })
    }

    pub fn path_lossy(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

/// A snapshot's header with its id.
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: Id,
    pub header: Header,
}

impl Listed {
    pub fn id_hex(&self) -> String {
        crypto::hex(&self.id)
    }

    /// The id of the snapshot this one is, or is a copy of.
    pub fn original(&self) -> Id {
        self.header
            .original
            .as_deref()
            .and_then(|o| o.try_into().ok())
            .unwrap_or(self.id)
    }

    pub fn time(&self) -> Option<chrono::DateTime<chrono::FixedOffset>> {
        chrono::DateTime::parse_from_rfc3339(&self.header.time).ok()
    }
}

pub fn snapshot_path(repo: &Repo, id: &Id) -> PathBuf {
    repo.path.join("snapshots").join(crypto::hex(id))
}

/// Writes a snapshot; returns its id.
pub fn write(repo: &Repo, header: &mut Header, tree: &[Entry]) -> Result<Id> {
    let mut cbor = Vec::new();
    ciborium::into_writer(&tree, &mut cbor).map_err(|e| Error::bug(format!("encoding a tree: {e}")))?;
    let tree_blob = repo.encode_metadata(&cbor)?;
    header.tree_hash = blake3::hash(&tree_blob).as_bytes().to_vec();
    let mut hcbor = Vec::new();
    ciborium::into_writer(&header, &mut hcbor).map_err(|e| Error::bug(format!("encoding a header: {e}")))?;
    let header_blob = repo.encode_metadata(&hcbor)?;
    let mut file = Vec::with_capacity(12 + header_blob.len() + tree_blob.len());
    file.extend_from_slice(SNAPSHOT_MAGIC);
    file.extend_from_slice(&(header_blob.len() as u32).to_le_bytes());
    file.extend_from_slice(&header_blob);
    file.extend_from_slice(&tree_blob);
    let id = *blake3::hash(&file).as_bytes();
    repo.write_atomic(&snapshot_path(repo, &id), &file)?;
    Ok(id)
}

/// Splits a snapshot file into header and tree blobs.
fn split(raw: &[u8]) -> std::result::Result<(&[u8], &[u8]), String> {
    if raw.len() < 12 || &raw[..8] != SNAPSHOT_MAGIC {
        return Err("not a snapshot file (bad magic)".into());
    }
    let h = u32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]) as usize;
    if 12 + h > raw.len() {
        return Err("header length beyond the file (truncated)".into());
    }
    Ok((&raw[12..12 + h], &raw[12 + h..]))
}

fn decode_header(repo: &Repo, blob: &[u8]) -> std::result::Result<Header, String> {
    let plain = repo.decode_metadata(blob).map_err(|e| format!("header: {e}"))?;
    ciborium::from_reader(&plain[..]).map_err(|e| format!("header: {e}"))
}

/// Reads only the header (reads the file; checks the magic, not the hash).
pub fn read_header(repo: &Repo, id: &Id) -> std::result::Result<Header, String> {
    let raw = fs::read(snapshot_path(repo, id)).map_err(|e| homelab_core::exit::describe_io(&e))?;
    let (h, _) = split(&raw)?;
    decode_header(repo, h)
}

/// Reads and fully checks a snapshot: file hash, header, tree hash, tree.
pub fn read_full(repo: &Repo, id: &Id) -> std::result::Result<(Header, Vec<Entry>), String> {
    let raw = fs::read(snapshot_path(repo, id)).map_err(|e| homelab_core::exit::describe_io(&e))?;
    if blake3::hash(&raw).as_bytes() != id {
        return Err("content does not match its id (damaged)".into());
    }
    let (h, t) = split(&raw)?;
    let header = decode_header(repo, h)?;
    if blake3::hash(t).as_bytes()[..] != header.tree_hash[..] {
        return Err("tree does not match its header (damaged)".into());
    }
    let plain = repo.decode_metadata(t).map_err(|e| format!("tree: {e}"))?;
    let tree: Vec<Entry> = ciborium::from_reader(&plain[..]).map_err(|e| format!("tree: {e}"))?;
    Ok((header, tree))
}

/// Ids of every snapshot file, sorted.
pub fn list_ids(repo: &Repo) -> Result<Vec<Id>> {
    let dir = repo.path.join("snapshots");
    let mut ids: Vec<Id> = fs::read_dir(&dir)
        .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(crypto::parse_id))
        .collect();
    ids.sort();
    Ok(ids)
}

/// Snapshots that could not be read: (id, problem).
pub type Unreadable = Vec<(Id, String)>;

/// Every readable snapshot header, oldest first, and the problems of unreadable ones.
pub fn list(repo: &Repo) -> Result<(Vec<Listed>, Unreadable)> {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for id in list_ids(repo)? {
        match read_header(repo, &id) {
            Ok(header) => ok.push(Listed { id, header }),
            // Removed by a forget between the listing and the read: not a problem.
            Err(e) if e.contains("no such file") => {}
            Err(e) => bad.push((id, e)),
        }
    }
    ok.sort_by(|a, b| {
        let ta = a.time().map(|t| t.timestamp_nanos_opt().unwrap_or(0));
        let tb = b.time().map(|t| t.timestamp_nanos_opt().unwrap_or(0));
        ta.cmp(&tb).then(a.id.cmp(&b.id))
    });
    Ok((ok, bad))
}

impl Header {
    /// A snapshot that could not read everything it was given (its `errors`).
    pub fn is_partial(&self) -> bool {
        !self.errors.is_empty()
    }
}

/// Finds a snapshot by full id, unique id prefix (at least 4 hex digits), `latest`
/// or `latest:JOB`. `latest` is the newest complete snapshot; a partial one (with
/// errors) only with `allow_partial`. An id names any snapshot.
pub fn resolve(list: &[Listed], reference: &str, allow_partial: bool) -> Result<Listed> {
    let not_found = |what: String| {
        Error::new(Exit::NoInput, what).hint("list the snapshots with: backup-snap --repo PATH list")
    };
    if reference == "latest" || reference.starts_with("latest:") {
        let job = reference.strip_prefix("latest:");
        let mut of_job = list
            .iter()
            .rev()
            .filter(|l| job.is_none_or(|j| l.header.job == j));
        let Some(newest) = of_job.clone().next() else {
            return Err(not_found(format!("no snapshot matches {reference}")));
        };
        if allow_partial {
            return Ok(newest.clone());
        }
        return of_job.find(|l| !l.header.is_partial()).cloned().ok_or_else(|| {
            Error::new(
                Exit::NoInput,
                format!(
                    "no complete snapshot matches {reference}: the newest, {}, is partial ({} errors)",
                    newest.id_hex(),
                    newest.header.errors.len()
                ),
            )
            .hint("give --allow-partial to take it anyway, or its id")
        });
    }
    let r = reference.to_ascii_lowercase();
    if r.len() < 4 || !r.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::usage(format!(
            "{reference:?} is not a snapshot id (at least 4 hex digits), latest or latest:JOB"
        )));
    }
    let matches: Vec<&Listed> = list.iter().filter(|l| l.id_hex().starts_with(&r)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(not_found(format!("no snapshot {reference} in the repository"))),
        _ => Err(Error::usage(format!(
            "{reference} matches {} snapshots: give more digits",
            matches.len()
        ))),
    }
}
