//! Pack files: blobs followed by a trailer listing them, named by the BLAKE3 of the
//! whole file. [`PackWriter`] writes one (temporary file, fsync, rename),
//! [`PackReader`] reads and checks chunks, and `Repo::read_trailer` reads the list.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use homelab_core::{Error, Result};
use serde::{Deserialize, Serialize};

use super::{Index, Loc, PACK_MAGIC, Repo, fsync_dir, write_error};
use crate::crypto::{self, Id};

/// One entry of a pack's trailer: chunk id, offset and length of its stored blob,
/// and the chunk's plaintext size.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrailerEntry(
    #[serde(with = "serde_bytes")] pub [u8; 32],
    pub u64,
    pub u32,
    pub u32,
);

impl Repo {
    /// Lists every pack file as (id, size). Names that are not pack ids are skipped.
    pub fn list_packs(&self) -> Result<Vec<(Id, u64)>> {
        let dir = self.path.join("packs");
        let mut out = Vec::new();
        let top = fs::read_dir(&dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        for sub in top {
            let sub = sub.map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
            if !sub.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let files = fs::read_dir(sub.path())
                .map_err(|e| Error::io(format!("reading {}", sub.path().display()), e))?;
            for f in files {
                let f = f.map_err(|e| Error::io(format!("reading {}", sub.path().display()), e))?;
                let Some(id) = f.file_name().to_str().and_then(crypto::parse_id) else {
                    continue;
                };
                let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((id, size));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Reads a pack's trailer. Errors are short descriptions for verify's records.
    pub fn read_trailer(&self, id: &Id) -> std::result::Result<Vec<TrailerEntry>, String> {
        let path = self.pack_path(id);
        let mut f = File::open(&path).map_err(|e| homelab_core::exit::describe_io(&e))?;
        let size = f
            .metadata()
            .map_err(|e| homelab_core::exit::describe_io(&e))?
            .len();
        if size < 12 {
            return Err(format!("truncated ({size} bytes)"));
        }
        let mut tail = [0u8; 12];
        f.seek(SeekFrom::Start(size - 12))
            .and_then(|_| f.read_exact(&mut tail))
            .map_err(|e| homelab_core::exit::describe_io(&e))?;
        if &tail[4..] != PACK_MAGIC {
            return Err("no pack trailer (truncated or damaged)".into());
        }
        let tlen = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
        if tlen + 12 > size {
            return Err("trailer length beyond the file (truncated or damaged)".into());
        }
        let mut stored = vec![0u8; tlen as usize];
        f.read_exact_at(&mut stored, size - 12 - tlen)
            .map_err(|e| homelab_core::exit::describe_io(&e))?;
        let plain = self
            .decode_metadata(&stored)
            .map_err(|e| format!("trailer: {e}"))?;
        let entries: Vec<TrailerEntry> =
            ciborium::from_reader(&plain[..]).map_err(|e| format!("trailer: {e}"))?;
        let data_end = size - 12 - tlen;
        for e in &entries {
            if e.1.checked_add(u64::from(e.2)).is_none_or(|end| end > data_end) {
                return Err("trailer points beyond the pack's data".into());
            }
        }
        Ok(entries)
    }
}

/// Writes one pack file: blobs streamed to a temporary file, then the trailer, then
/// fsync and a rename to the name its content hashes to.
pub struct PackWriter {
    file: BufWriter<File>,
    tmp: PathBuf,
    hasher: blake3::Hasher,
    entries: Vec<TrailerEntry>,
    offset: u64,
    /// The pack's number in the index while it is being written.
    pub number: u32,
}

impl PackWriter {
    pub fn create(repo: &Repo, number: u32) -> Result<PackWriter> {
        let tmp = repo.tmp_path("pack");
        let file =
            super::create_file(&tmp).map_err(|e| write_error(format!("creating {}", tmp.display()), e))?;
        Ok(PackWriter {
            file: BufWriter::with_capacity(1 << 20, file),
            tmp,
            hasher: blake3::Hasher::new(),
            entries: Vec::new(),
            offset: 0,
            number,
        })
    }

    /// Appends a stored blob; returns its location.
    pub fn add(&mut self, id: Id, stored: &[u8], size: u32) -> Result<Loc> {
        self.file
            .write_all(stored)
            .map_err(|e| write_error(format!("writing {}", self.tmp.display()), e))?;
        self.hasher.update(stored);
        let loc = Loc {
            pack: self.number,
            offset: self.offset,
            length: stored.len() as u32,
            size,
        };
        self.entries
            .push(TrailerEntry(id, self.offset, stored.len() as u32, size));
        self.offset += stored.len() as u64;
        Ok(loc)
    }

    pub fn len(&self) -> u64 {
        self.offset
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the trailer, fsyncs and renames the pack into place: (id, size).
    pub fn finish(mut self, repo: &Repo) -> Result<(Id, u64)> {
        let tmp = self.tmp.clone();
        let result = (|| -> Result<(Id, u64)> {
            let mut cbor = Vec::with_capacity(self.entries.len() * 48);
            ciborium::into_writer(&self.entries, &mut cbor)
                .map_err(|e| Error::bug(format!("encoding a pack trailer: {e}")))?;
            let trailer = repo.encode_metadata(&cbor)?;
            let mut tail = Vec::with_capacity(trailer.len() + 12);
            tail.extend_from_slice(&trailer);
            tail.extend_from_slice(&(trailer.len() as u32).to_le_bytes());
            tail.extend_from_slice(PACK_MAGIC);
            let werr = |e| write_error(format!("writing {}", tmp.display()), e);
            self.file.write_all(&tail).map_err(werr)?;
            self.hasher.update(&tail);
            self.file.flush().map_err(werr)?;
            self.file.get_ref().sync_all().map_err(werr)?;
            let id = *self.hasher.finalize().as_bytes();
            let size = self.offset + tail.len() as u64;
            let dest = repo.pack_path(&id);
            let dir = dest.parent().expect("a pack path has a parent");
            if !dir.is_dir() {
                super::create_dir_all(dir)
                    .map_err(|e| write_error(format!("creating {}", dir.display()), e))?;
                fsync_dir(&repo.path.join("packs"));
            }
            fs::rename(&tmp, &dest)
                .map_err(|e| write_error(format!("renaming {} into place", tmp.display()), e))?;
            fsync_dir(dir);
            Ok((id, size))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Throws the unfinished pack away.
    pub fn abandon(self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Reads stored blobs from pack files, keeping a few open.
pub struct PackReader<'a> {
    repo: &'a Repo,
    open: HashMap<Id, File>,
}

impl<'a> PackReader<'a> {
    pub fn new(repo: &'a Repo) -> Self {
        PackReader {
            repo,
            open: HashMap::new(),
        }
    }

    /// Reads and decodes one chunk, checking its id.
    pub fn chunk(&mut self, index: &Index, id: &Id) -> std::result::Result<Vec<u8>, String> {
        self.chunk_and_blob(index, id).map(|(data, _)| data)
    }

    /// Reads one chunk, checking its id: the plaintext and the blob as stored.
    pub fn chunk_and_blob(
        &mut self,
        index: &Index,
        id: &Id,
    ) -> std::result::Result<(Vec<u8>, Vec<u8>), String> {
        let locs = index.all(id);
        if locs.is_empty() {
            return Err(format!(
                "chunk {} is missing from the repository",
                crypto::hex(id)
            ));
        }
        let mut last = String::new();
        for loc in locs {
            match self.read_loc(index, id, loc) {
                Ok(d) => return Ok(d),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn read_loc(
        &mut self,
        index: &Index,
        id: &Id,
        loc: Loc,
    ) -> std::result::Result<(Vec<u8>, Vec<u8>), String> {
        let pack = index.packs[loc.pack as usize];
        if !self.open.contains_key(&pack) {
            if self.open.len() >= 16 {
                self.open.clear();
            }
            let f = File::open(self.repo.pack_path(&pack)).map_err(|e| {
                format!(
                    "pack {}: {}",
                    crypto::hex(&pack),
                    homelab_core::exit::describe_io(&e)
                )
            })?;
            self.open.insert(pack, f);
        }
        let f = &self.open[&pack];
        let mut stored = vec![0u8; loc.length as usize];
        f.read_exact_at(&mut stored, loc.offset).map_err(|e| {
            format!(
                "pack {}: {}",
                crypto::hex(&pack),
                homelab_core::exit::describe_io(&e)
            )
        })?;
        let data = self
            .repo
            .decode_blob(&stored, self.repo.max_chunk())
            .map_err(|e| format!("chunk {} in pack {}: {e}", crypto::hex(id), crypto::hex(&pack)))?;
        if self.repo.chunk_id(&data) != *id {
            return Err(format!(
                "chunk {} in pack {}: content does not match its id",
                crypto::hex(id),
                crypto::hex(&pack)
            ));
        }
        Ok((data, stored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trailer entry whose offset is near u64::MAX: offset + length overflowed in
    /// the bounds check (a panic with overflow checks; without them, a wrapped sum
    /// that passed, and a read of up to 4 GiB allocated for it).
    #[test]
    fn trailer_offset_near_the_end_of_u64_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::init(&dir.path().join("r"), None, super::super::DEFAULT_PACK_SIZE).unwrap();
        let mut trailer = vec![0u8]; // stored, not compressed
        let entries = vec![TrailerEntry([1; 32], u64::MAX - 7, 0xffff_fff0, 16)];
        ciborium::into_writer(&entries, &mut trailer).unwrap();
        let mut raw = b"some data".to_vec();
        raw.extend_from_slice(&trailer);
        raw.extend_from_slice(&(trailer.len() as u32).to_le_bytes());
        raw.extend_from_slice(PACK_MAGIC);
        let id: Id = *blake3::hash(&raw).as_bytes();
        let path = repo.pack_path(&id);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &raw).unwrap();
        assert_eq!(
            repo.read_trailer(&id),
            Err("trailer points beyond the pack's data".to_string())
        );
    }
}
