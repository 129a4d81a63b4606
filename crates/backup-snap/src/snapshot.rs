//! Snapshot manifests: `snapshots/<id>`, written last and atomically by create.
//!
//! Layout (version 2, written since the tree is streamed): the magic `BSNSNAP2`; the
//! tree as pieces, each a u32 (little endian) length L > 0 and a tree blob of L bytes
//! (at most [`PIECE_ENTRIES`] entries); a u32 zero; the header blob (H bytes); then H
//! as a u32. The header comes last because its figures are known only at the end; a
//! listing reads just the file's tail. Version 1 (still read): the magic `BSNSNAP1`,
//! H as a u32, the header blob, then one tree blob. Blobs are CBOR, zstd-compressed
//! and sealed when the repository is encrypted (the blob encoding of packs). The
//! header carries the BLAKE3 of the stored tree (v1: the tree blob; v2: the bytes
//! from the first piece's length to the zero), so a header and a tree cannot be
//! mixed up; the snapshot id is the BLAKE3 of the whole file, so bit rot shows as a
//! name mismatch.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use homelab_core::{Error, Exit, Result};
use serde::{Deserialize, Serialize};

use crate::crypto::{self, Id};
use crate::repo::{self, Repo, SNAPSHOT_MAGIC, SNAPSHOT_MAGIC_V1};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
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

/// Entries per tree piece: what a [`TreeWriter`] holds before it writes them out.
pub const PIECE_ENTRIES: usize = 1000;

/// Writes a snapshot's tree as it is walked, piece by piece, into a file under `tmp/`,
/// then the header, and renames the file into `snapshots/`: memory holds one piece,
/// whatever the size of the tree. Dropped unfinished, it removes its file.
pub struct TreeWriter<'a> {
    repo: &'a Repo,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
    file_hash: blake3::Hasher,
    tree_hash: blake3::Hasher,
    piece: Vec<Entry>,
    piece_entries: usize,
    entries: u64,
    /// The most entries held at once (for the bound the man page states).
    pub held_peak: usize,
}

impl<'a> TreeWriter<'a> {
    pub fn create(repo: &'a Repo) -> Result<TreeWriter<'a>> {
        Self::with_piece_size(repo, PIECE_ENTRIES)
    }

    pub fn with_piece_size(repo: &'a Repo, piece_entries: usize) -> Result<TreeWriter<'a>> {
        let tmp = repo.tmp_path("snapshot");
        let f = repo::create_file(&tmp)
            .map_err(|e| repo::write_error(format!("creating {}", tmp.display()), e))?;
        let mut w = TreeWriter {
            repo,
            tmp,
            out: Some(BufWriter::with_capacity(1 << 16, f)),
            file_hash: blake3::Hasher::new(),
            tree_hash: blake3::Hasher::new(),
            piece: Vec::new(),
            piece_entries: piece_entries.max(1),
            entries: 0,
            held_peak: 0,
        };
        w.write_raw(SNAPSHOT_MAGIC, false)?;
        Ok(w)
    }

    /// Entries pushed so far.
    pub fn len(&self) -> u64 {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    fn write_raw(&mut self, bytes: &[u8], tree: bool) -> Result<()> {
        self.file_hash.update(bytes);
        if tree {
            self.tree_hash.update(bytes);
        }
        let out = self
            .out
            .as_mut()
            .ok_or_else(|| Error::bug("snapshot file closed"))?;
        out.write_all(bytes)
            .map_err(|e| repo::write_error(format!("writing {}", self.tmp.display()), e))
    }

    pub fn push(&mut self, e: Entry) -> Result<()> {
        self.piece.push(e);
        self.entries += 1;
        self.held_peak = self.held_peak.max(self.piece.len());
        if self.piece.len() >= self.piece_entries {
            self.flush_piece()?;
        }
        Ok(())
    }

    fn flush_piece(&mut self) -> Result<()> {
        if self.piece.is_empty() {
            return Ok(());
        }
        let mut cbor = Vec::new();
        ciborium::into_writer(&self.piece, &mut cbor)
            .map_err(|e| Error::bug(format!("encoding a tree: {e}")))?;
        self.piece.clear();
        let blob = self.repo.encode_metadata(&cbor)?;
        self.write_raw(&(blob.len() as u32).to_le_bytes(), true)?;
        self.write_raw(&blob, true)
    }

    /// Writes the rest of the tree and the header (its `tree_hash` set here), and
    /// puts the file in place; returns the snapshot's id.
    pub fn finish(mut self, header: &mut Header) -> Result<Id> {
        self.flush_piece()?;
        self.write_raw(&0u32.to_le_bytes(), true)?;
        header.tree_hash = self.tree_hash.finalize().as_bytes().to_vec();
        let mut hcbor = Vec::new();
        ciborium::into_writer(&header, &mut hcbor)
            .map_err(|e| Error::bug(format!("encoding a header: {e}")))?;
        let header_blob = self.repo.encode_metadata(&hcbor)?;
        self.write_raw(&header_blob, false)?;
        self.write_raw(&(header_blob.len() as u32).to_le_bytes(), false)?;
        let out = self
            .out
            .take()
            .ok_or_else(|| Error::bug("snapshot file closed"))?;
        let f = out
            .into_inner()
            .map_err(|e| repo::write_error(format!("writing {}", self.tmp.display()), e.into_error()))?;
        f.sync_all()
            .map_err(|e| repo::write_error(format!("writing {}", self.tmp.display()), e))?;
        drop(f);
        let id = *self.file_hash.finalize().as_bytes();
        let dest = snapshot_path(self.repo, &id);
        fs::rename(&self.tmp, &dest)
            .map_err(|e| repo::write_error(format!("renaming into {}", dest.display()), e))?;
        repo::fsync_dir(&self.repo.path.join("snapshots"));
        // Renamed: nothing for Drop to remove.
        self.tmp = PathBuf::new();
        Ok(id)
    }
}

impl Drop for TreeWriter<'_> {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            self.out = None;
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes a snapshot from a tree in memory (copy); returns its id.
pub fn write(repo: &Repo, header: &mut Header, tree: &[Entry]) -> Result<Id> {
    let mut w = TreeWriter::create(repo)?;
    for e in tree {
        w.push(e.clone())?;
    }
    w.finish(header)
}

/// Splits a version 1 snapshot file into header and tree blobs.
fn split_v1(raw: &[u8]) -> std::result::Result<(&[u8], &[u8]), String> {
    let h = u32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]) as usize;
    if 12 + h > raw.len() {
        return Err("header length beyond the file (truncated)".into());
    }
    Ok((&raw[12..12 + h], &raw[12 + h..]))
}

/// Which version a snapshot file is, from its first 12 bytes or more.
fn version(raw: &[u8]) -> std::result::Result<u32, String> {
    if raw.len() >= 12 && &raw[..8] == SNAPSHOT_MAGIC_V1 {
        Ok(1)
    } else if raw.len() >= 16 && &raw[..8] == SNAPSHOT_MAGIC {
        Ok(2)
    } else {
        Err("not a snapshot file (bad magic)".into())
    }
}

fn u32_at(raw: &[u8], at: usize) -> Option<usize> {
    raw.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// The parts of a version 2 file: the tree's bytes, each piece's blob, the header blob.
struct PartsV2<'r> {
    tree: &'r [u8],
    pieces: Vec<&'r [u8]>,
    header: &'r [u8],
}

fn split_v2(raw: &[u8]) -> std::result::Result<PartsV2<'_>, String> {
    let truncated = || "truncated".to_string();
    let h = u32_at(raw, raw.len() - 4).ok_or_else(truncated)?;
    let header_start = (raw.len() - 4)
        .checked_sub(h)
        .filter(|&s| s >= 12)
        .ok_or_else(truncated)?;
    let mut pos = 8;
    let mut pieces = Vec::new();
    loop {
        let l = u32_at(raw, pos)
            .filter(|_| pos + 4 <= header_start)
            .ok_or_else(truncated)?;
        pos += 4;
        if l == 0 {
            break;
        }
        if pos + l > header_start {
            return Err("tree piece beyond the tree (truncated)".into());
        }
        pieces.push(&raw[pos..pos + l]);
        pos += l;
    }
    if pos != header_start {
        return Err("tree and header lengths do not add up (damaged)".into());
    }
    Ok(PartsV2 {
        tree: &raw[8..pos],
        pieces,
        header: &raw[header_start..raw.len() - 4],
    })
}

fn decode_header(repo: &Repo, blob: &[u8]) -> std::result::Result<Header, String> {
    let plain = repo.decode_metadata(blob).map_err(|e| format!("header: {e}"))?;
    ciborium::from_reader(&plain[..]).map_err(|e| format!("header: {e}"))
}

fn decode_piece(repo: &Repo, blob: &[u8]) -> std::result::Result<Vec<Entry>, String> {
    let plain = repo.decode_metadata(blob).map_err(|e| format!("tree: {e}"))?;
    ciborium::from_reader(&plain[..]).map_err(|e| format!("tree: {e}"))
}

/// Reads only the header: the file's start and (version 2) its tail; checks the
/// magic, not the hash.
pub fn read_header(repo: &Repo, id: &Id) -> std::result::Result<Header, String> {
    let io = |e: std::io::Error| homelab_core::exit::describe_io(&e);
    let mut f = File::open(snapshot_path(repo, id)).map_err(io)?;
    let mut start = [0u8; 16];
    let n = read_up_to(&mut f, &mut start).map_err(io)?;
    if version(&start[..n])? == 1 {
        let mut raw = start[..n].to_vec();
        f.read_to_end(&mut raw).map_err(io)?;
        let (h, _) = split_v1(&raw)?;
        return decode_header(repo, h);
    }
    let len = f.seek(SeekFrom::End(0)).map_err(io)?;
    f.seek(SeekFrom::End(-4)).map_err(io)?;
    let mut hl = [0u8; 4];
    f.read_exact(&mut hl).map_err(io)?;
    let h = u64::from(u32::from_le_bytes(hl));
    if h + 4 + 12 > len {
        return Err("header length beyond the file (truncated)".into());
    }
    f.seek(SeekFrom::Start(len - 4 - h)).map_err(io)?;
    let mut blob = vec![0u8; h as usize];
    f.read_exact(&mut blob).map_err(io)?;
    decode_header(repo, &blob)
}

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reads and fully checks a snapshot: file hash, header, tree hash, tree.
pub fn read_full(repo: &Repo, id: &Id) -> std::result::Result<(Header, Vec<Entry>), String> {
    let raw = fs::read(snapshot_path(repo, id)).map_err(|e| homelab_core::exit::describe_io(&e))?;
    if blake3::hash(&raw).as_bytes() != id {
        return Err("content does not match its id (damaged)".into());
    }
    if version(&raw)? == 1 {
        let (h, t) = split_v1(&raw)?;
        let header = decode_header(repo, h)?;
        if blake3::hash(t).as_bytes()[..] != header.tree_hash[..] {
            return Err("tree does not match its header (damaged)".into());
        }
        return Ok((header, decode_piece(repo, t)?));
    }
    let parts = split_v2(&raw)?;
    let header = decode_header(repo, parts.header)?;
    if blake3::hash(parts.tree).as_bytes()[..] != header.tree_hash[..] {
        return Err("tree does not match its header (damaged)".into());
    }
    let mut tree = Vec::new();
    for p in parts.pieces {
        tree.extend(decode_piece(repo, p)?);
    }
    Ok((header, tree))
}

/// A snapshot's tree entries in order, read a piece at a time (a version 1 tree,
/// one blob, at once). The whole file's hash is checked before the first entry.
pub struct TreeEntries<'a> {
    repo: &'a Repo,
    /// Version 2: the file, at the next piece's length.
    file: Option<BufReader<File>>,
    /// Version 2: bytes of the tree not read yet (up to the header), so a damaged
    /// piece length is refused before it is allocated.
    tree_left: u64,
    piece: std::vec::IntoIter<Entry>,
    /// Entries in the piece being read (held in memory until the next one).
    piece_len: usize,
}

impl<'a> TreeEntries<'a> {
    /// Entries of the piece being read: what is held of the tree now.
    pub fn piece_len(&self) -> usize {
        self.piece_len
    }

    pub fn open(repo: &'a Repo, id: &Id) -> std::result::Result<TreeEntries<'a>, String> {
        let io = |e: std::io::Error| homelab_core::exit::describe_io(&e);
        let path = snapshot_path(repo, id);
        let mut f = BufReader::with_capacity(1 << 16, File::open(&path).map_err(io)?);
        let mut hasher = blake3::Hasher::new();
        std::io::copy(&mut f, &mut hasher).map_err(io)?;
        if hasher.finalize().as_bytes() != id {
            return Err("content does not match its id (damaged)".into());
        }
        f.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut start = [0u8; 16];
        let n = read_up_to(&mut f, &mut start).map_err(io)?;
        if version(&start[..n])? == 1 {
            let (_, tree) = read_full(repo, id)?;
            return Ok(TreeEntries {
                repo,
                file: None,
                tree_left: 0,
                piece_len: tree.len(),
                piece: tree.into_iter(),
            });
        }
        // The tree ends where the header (its length in the last 4 bytes) begins.
        let len = f.seek(SeekFrom::End(0)).map_err(io)?;
        f.seek(SeekFrom::End(-4)).map_err(io)?;
        let mut hl = [0u8; 4];
        f.read_exact(&mut hl).map_err(io)?;
        let header_start = (len - 4)
            .checked_sub(u64::from(u32::from_le_bytes(hl)))
            .filter(|&s| s >= 12)
            .ok_or("truncated")?;
        f.seek(SeekFrom::Start(8)).map_err(io)?;
        Ok(TreeEntries {
            repo,
            file: Some(f),
            tree_left: header_start - 8,
            piece: Vec::new().into_iter(),
            piece_len: 0,
        })
    }

    fn next_piece(&mut self) -> std::result::Result<bool, String> {
        let Some(f) = self.file.as_mut() else {
            return Ok(false);
        };
        let io = |e: std::io::Error| homelab_core::exit::describe_io(&e);
        if self.tree_left < 4 {
            return Err("truncated".into());
        }
        let mut l = [0u8; 4];
        f.read_exact(&mut l).map_err(io)?;
        self.tree_left -= 4;
        let l = u32::from_le_bytes(l);
        if l == 0 {
            self.file = None;
            return Ok(false);
        }
        if u64::from(l) > self.tree_left {
            return Err("tree piece beyond the tree (truncated)".into());
        }
        self.tree_left -= u64::from(l);
        let mut blob = vec![0u8; l as usize];
        f.read_exact(&mut blob).map_err(io)?;
        let piece = decode_piece(self.repo, &blob)?;
        self.piece_len = piece.len();
        self.piece = piece.into_iter();
        Ok(true)
    }
}

impl Iterator for TreeEntries<'_> {
    type Item = std::result::Result<Entry, String>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.piece.next() {
                return Some(Ok(e));
            }
            match self.next_piece() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.file = None;
                    return Some(Err(e));
                }
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the backup_snap_snapshot fuzz target: a 16-byte version 2 file whose
    /// first piece length is near 4 GiB made the piece-by-piece reader allocate that
    /// much before reading; it is now refused against the tree's length.
    #[test]
    fn piece_length_beyond_the_tree_is_refused_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::init(&dir.path().join("r"), None, repo::DEFAULT_PACK_SIZE).unwrap();
        let mut raw = SNAPSHOT_MAGIC.to_vec();
        raw.extend_from_slice(&0xffff_fff0u32.to_le_bytes());
        raw.extend_from_slice(&0u32.to_le_bytes());
        let id: Id = *blake3::hash(&raw).as_bytes();
        fs::write(snapshot_path(&repo, &id), &raw).unwrap();
        let got: Vec<_> = TreeEntries::open(&repo, &id).unwrap().collect();
        assert_eq!(
            got,
            vec![Err("tree piece beyond the tree (truncated)".to_string())]
        );
        assert!(read_full(&repo, &id).is_err());
    }
}
