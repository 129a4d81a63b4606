//! `prune`: removes chunks no snapshot needs, crash-safe at every moment.
//!
//! Order of work: (1) read every snapshot (an unreadable one stops prune: it cannot
//! know what that snapshot needs); (2) classify every pack as fully used, unused or
//! partly used; (3) copy the used chunks of partly used packs into new packs
//! (checked on the way, written with fsync and rename); (4) only then delete the
//! old and unused packs. Killed anywhere, every chunk a snapshot needs is still in
//! a complete pack: at worst some chunks are stored twice, which the next prune
//! cleans up.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::FileExt;

use homelab_core::{Error, Exit, Result};
use serde::Serialize;

use crate::crypto::{self, Id};
use crate::repo::{ChunkSet, Index, PackWriter, Repo, fsync_dir};
use crate::snapshot;

/// `kind: prune`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
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

pub fn run(repo: &Repo, max_unused_percent: f64, dry_run: bool) -> Result<Summary> {
    let start = std::time::Instant::now();
    // Leftovers of interrupted runs: no writer holds the lock, so none is in use.
    let mut tmp_files_removed = 0;
    if !dry_run && let Ok(rd) = fs::read_dir(repo.path.join("tmp")) {
        for e in rd.flatten() {
            if fs::remove_file(e.path()).is_ok() {
                tmp_files_removed += 1;
            }
        }
    }
    let index = Index::load(repo)?;
    if let Some((id, problem)) = index.bad_packs.first() {
        return Err(Error::data(format!(
            "pack {} is unreadable ({problem}): prune changed nothing",
            crypto::hex(id)
        ))
        .hint("run verify to see what it affects, then remove or restore that pack file"));
    }
    let ids = snapshot::list_ids(repo)?;
    // The chunks snapshots need, one bit per chunk of the index (a chunk that is in
    // no pack has nothing to keep).
    let mut used = ChunkSet::new(index.len());
    for sid in &ids {
        let unreadable = |p: String| {
            Error::new(
                Exit::DataErr,
                format!(
                    "snapshot {} is unreadable ({p}): prune changed nothing",
                    crypto::hex(sid)
                ),
            )
            .hint("run verify; forget the damaged snapshot if it cannot be restored from a copy")
        };
        // A piece of the tree at a time: memory holds the chunk bits, not the trees.
        for e in snapshot::TreeEntries::open(repo, sid).map_err(unreadable)? {
            for c in e.map_err(unreadable)?.chunk_ids() {
                if let Some(pos) = index.position(&c) {
                    used.insert(pos);
                }
            }
        }
    }
    let bytes_before: u64 = index.pack_sizes.iter().sum();
    // Used and unused bytes per pack, from the index (the trailers were read once,
    // by Index::load): a chunk is used only at its canonical location, other copies
    // are duplicates.
    let packs = index.packs.len();
    let (mut used_bytes, mut unused_bytes, mut unused_chunks) =
        (vec![0u64; packs], vec![0u64; packs], vec![0u64; packs]);
    for (pos, (_, loc)) in index.canonical().enumerate() {
        let p = loc.pack as usize;
        if used.contains(pos) {
            used_bytes[p] += u64::from(loc.length);
        } else {
            unused_bytes[p] += u64::from(loc.length);
            unused_chunks[p] += 1;
        }
    }
    for (_, loc) in index.duplicates() {
        let p = loc.pack as usize;
        unused_bytes[p] += u64::from(loc.length);
        unused_chunks[p] += 1;
    }
    let mut delete: Vec<Id> = Vec::new();
    let mut rewrite: Vec<(u32, Id)> = Vec::new();
    let mut chunks_removed = 0u64;
    let mut freed = 0u64;
    for (n, pack) in index.packs.iter().enumerate() {
        if used_bytes[n] == 0 {
            delete.push(*pack);
            chunks_removed += unused_chunks[n];
            freed += index.pack_sizes[n];
        } else if unused_bytes[n] > 0 {
            let pct = unused_bytes[n] as f64 * 100.0 / (used_bytes[n] + unused_bytes[n]) as f64;
            if pct > max_unused_percent {
                rewrite.push((n as u32, *pack));
                chunks_removed += unused_chunks[n];
                freed += index.pack_sizes[n];
            }
        }
    }
    let mut packs_written = 0u64;
    let mut written_bytes = 0u64;
    if !dry_run {
        let mut writer: Option<PackWriter> = None;
        let mut copied: HashSet<Id> = HashSet::new();
        let mut new_packs: Vec<Id> = Vec::new();
        for (n, pack) in &rewrite {
            let entries = repo
                .read_trailer(pack)
                .map_err(|p| Error::data(format!("pack {} became unreadable ({p})", crypto::hex(pack))))?;
            let path = repo.pack_path(pack);
            let f = fs::File::open(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            for e in entries {
                let canonical = index.get(&e.0).is_some_and(|l| l.pack == *n && l.offset == e.1);
                let needed = index.position(&e.0).is_some_and(|pos| used.contains(pos));
                if !canonical || !needed || !copied.insert(e.0) {
                    continue;
                }
                let mut stored = vec![0u8; e.2 as usize];
                f.read_exact_at(&mut stored, e.1)
                    .map_err(|err| Error::io(format!("reading {}", path.display()), err))?;
                // Never copy a damaged chunk as if it were good.
                match repo.decode_blob(&stored, repo.max_chunk()) {
                    Ok(data) if repo.chunk_id(&data) == e.0 => {}
                    _ => {
                        if let Some(w) = writer.take() {
                            w.abandon();
                        }
                        return Err(Error::data(format!(
                            "chunk {} in pack {} is damaged: prune stopped before deleting anything",
                            crypto::hex(&e.0),
                            crypto::hex(pack)
                        ))
                        .hint("run verify --read-data to see which snapshots and files it affects"));
                    }
                }
                if writer.is_none() {
                    writer = Some(PackWriter::create(repo, 0)?);
                }
                let w = writer.as_mut().expect("created above");
                w.add(e.0, &stored, e.3)?;
                if w.len() >= repo.config.pack_size {
                    let (nid, size) = writer.take().expect("present").finish(repo)?;
                    new_packs.push(nid);
                    packs_written += 1;
                    written_bytes += size;
                }
            }
        }
        if let Some(w) = writer.take() {
            if w.is_empty() {
                w.abandon();
            } else {
                let (nid, size) = w.finish(repo)?;
                new_packs.push(nid);
                packs_written += 1;
                written_bytes += size;
            }
        }
        // Read back what was written: every chunk copied must be in a new pack on
        // disk before any old pack is deleted.
        let mut on_disk: HashSet<Id> = HashSet::new();
        for id in &new_packs {
            let entries = repo.read_trailer(id).map_err(|p| {
                Error::new(
                    Exit::IoErr,
                    format!(
                        "the new pack {} cannot be read back ({p}): prune deleted nothing",
                        crypto::hex(id)
                    ),
                )
            })?;
            on_disk.extend(entries.into_iter().map(|e| e.0));
        }
        if let Some(lost) = copied.iter().find(|c| !on_disk.contains(*c)) {
            return Err(Error::new(
                Exit::Software,
                format!(
                    "chunk {} was copied but is not in the new packs: prune deleted nothing",
                    crypto::hex(lost)
                ),
            ));
        }
        // Every needed chunk is now in a complete pack: the old ones can go.
        let new_set: HashSet<&Id> = new_packs.iter().collect();
        let mut dirs = HashSet::new();
        for pack in delete.iter().chain(rewrite.iter().map(|(_, p)| p)) {
            // A repacked pack can come out byte for byte like an old copy of itself
            // that an interrupted prune left (same content, same name): it was just
            // rewritten in place and must stay.
            if new_set.contains(pack) {
                continue;
            }
            let p = repo.pack_path(pack);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("deleting {}", p.display()), e)),
            }
            if let Some(d) = p.parent() {
                dirs.insert(d.to_path_buf());
            }
        }
        for d in dirs {
            fsync_dir(&d);
        }
    }
    let bytes_after = if dry_run {
        bytes_before
    } else {
        bytes_before - freed + written_bytes
    };
    Ok(Summary {
        snapshots: ids.len() as u64,
        packs_before: index.packs.len() as u64,
        packs_deleted: delete.len() as u64,
        packs_rewritten: rewrite.len() as u64,
        packs_written,
        chunks_removed,
        bytes_before,
        bytes_after,
        bytes_freed: bytes_before.saturating_sub(bytes_after),
        tmp_files_removed,
        dry_run,
        duration_seconds: (start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    })
}
