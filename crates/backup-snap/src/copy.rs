//! Copying snapshots into a second repository, as `restic copy` does: a snapshot
//! the target already holds (a copy of it, found by its original id) is skipped;
//! of the others only the chunks the target lacks are written, each one read and
//! checked against its id first. Chunks are re-encoded with the target's keys; when
//! both repositories are unencrypted a chunk's id is the same in both and its
//! stored blob is copied as it is.
//!
//! Crash safety is create's: packs go through `tmp/` and a rename, a snapshot's
//! manifest is written after every pack it needs, so a copy killed at any moment
//! leaves a valid target (at worst with packs no snapshot uses yet) and running it
//! again finishes the work, reusing the packs already there.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use homelab_core::{Error, Exit, Result};
use serde::{Deserialize, Serialize};

use crate::crypto::{self, Id};
use crate::repo::{Index, PackReader, PackWriter, Repo};
use crate::snapshot::{self, Entry, Listed};

/// What to copy.
#[derive(Debug, Default)]
pub struct Options {
    pub job: Option<String>,
    /// Snapshot references (ids, prefixes, latest, latest:JOB); empty means all.
    pub snapshots: Vec<String>,
}

/// `kind: copy`, one per run.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub target: String,
    pub snapshots_selected: u64,
    pub snapshots_copied: u64,
    pub snapshots_present: u64,
    pub chunks_copied: u64,
    pub chunks_present: u64,
    pub bytes_copied: u64,
    pub snapshots_behind: u64,
    pub errors: Vec<String>,
    pub duration_seconds: f64,
}

/// One copied snapshot: `kind: copied`.
#[derive(Debug, Serialize)]
pub struct Copied {
    pub id: String,
    pub job: String,
    pub time: String,
    pub target_id: String,
    pub chunks_copied: u64,
    pub bytes_copied: u64,
}

fn interrupted() -> Error {
    Error::new(Exit::TempFail, "copy interrupted")
        .hint("run the same copy again: it keeps what is already in the target and finishes the rest")
}

struct Writer<'a> {
    dst: &'a Repo,
    index: Index,
    pack: Option<PackWriter>,
    zc: zstd::bulk::Compressor<'static>,
}

impl Writer<'_> {
    fn add(&mut self, id: crate::crypto::Id, stored: &[u8], size: u32) -> Result<()> {
        if self.pack.is_none() {
            let n = self.index.add_pack([0u8; 32], 0);
            self.pack = Some(PackWriter::create(self.dst, n)?);
        }
        let pack = self.pack.as_mut().expect("created above");
        let loc = pack.add(id, stored, size)?;
        self.index.insert(id, loc);
        if pack.len() >= self.dst.config.pack_size {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if let Some(p) = self.pack.take() {
            if p.is_empty() {
                p.abandon();
                return Ok(());
            }
            let n = p.number as usize;
            let (id, size) = p.finish(self.dst)?;
            self.index.packs[n] = id;
            self.index.pack_sizes[n] = size;
        }
        Ok(())
    }
}

/// The source snapshots `opts` selects, oldest first.
pub fn select(listed: &[Listed], opts: &Options) -> Result<Vec<Listed>> {
    let mut chosen: Vec<Listed> = if opts.snapshots.is_empty() {
        listed.to_vec()
    } else {
        let mut ids = HashSet::new();
        for r in &opts.snapshots {
            ids.insert(snapshot::resolve(listed, r, true)?.id);
        }
        listed.iter().filter(|l| ids.contains(&l.id)).cloned().collect()
    };
    if let Some(j) = &opts.job {
        chosen.retain(|l| l.header.job == *j);
    }
    Ok(chosen)
}

/// Source snapshots (of `job`, if given) whose original is not among `held`.
pub fn behind(listed: &[Listed], held: &HashSet<Id>, job: Option<&str>) -> u64 {
    listed
        .iter()
        .filter(|l| job.is_none_or(|j| l.header.job == j))
        .filter(|l| !held.contains(&l.original()))
        .count() as u64
}

/// Copies the selected snapshots of `src` into `dst`. `on_copied` gets each one
/// as soon as its manifest is written.
pub fn run(
    src: &Repo,
    dst: &Repo,
    opts: &Options,
    stop: &AtomicBool,
    on_copied: &mut dyn FnMut(&Copied) -> Result<()>,
) -> Result<(Summary, HashSet<Id>)> {
    let start = Instant::now();
    let (src_list, _) = snapshot::list(src)?;
    let chosen = select(&src_list, opts)?;
    let (dst_list, _) = snapshot::list(dst)?;
    let mut held: HashSet<Id> = dst_list.iter().map(Listed::original).collect();
    let same_ids = src.keys.is_none() && dst.keys.is_none();

    let src_index = Index::load(src)?;
    let mut dst_index = Index::load(dst)?;
    // A pack whose trailer is unreadable is skipped: its chunks are stored again.
    dst_index.bad_packs.clear();

    let mut summary = Summary {
        target: dst.path.display().to_string(),
        snapshots_selected: chosen.len() as u64,
        ..Default::default()
    };
    let todo: Vec<&Listed> = chosen.iter().filter(|l| !held.contains(&l.original())).collect();
    summary.snapshots_present = summary.snapshots_selected - todo.len() as u64;

    // With different ids, the pairs already copied say which target chunk each
    // source chunk became, so an unchanged chunk is not read again.
    let mut map: HashMap<Id, Id> = HashMap::new();
    if !same_ids && !todo.is_empty() {
        let by_original: HashMap<Id, &Listed> = dst_list.iter().map(|l| (l.original(), l)).collect();
        for s in &src_list {
            let Some(t) = by_original.get(&s.original()) else {
                continue;
            };
            let (Ok((_, st)), Ok((_, tt))) =
                (snapshot::read_full(src, &s.id), snapshot::read_full(dst, &t.id))
            else {
                continue;
            };
            if st.len() != tt.len() {
                continue;
            }
            for (a, b) in st.iter().zip(&tt) {
                if a.path == b.path && a.chunks.len() == b.chunks.len() {
                    for (x, y) in a.chunk_ids().zip(b.chunk_ids()) {
                        map.insert(x, y);
                    }
                }
            }
        }
    }

    let mut reader = PackReader::new(src);
    let mut w = Writer {
        dst,
        index: dst_index,
        pack: None,
        zc: zstd::bulk::Compressor::new(crate::repo::ZSTD_LEVEL)
            .map_err(|e| Error::bug(format!("zstd: {e}")))?,
    };
    for l in todo {
        if stop.load(Ordering::SeqCst) {
            if let Some(p) = w.pack.take() {
                p.abandon();
            }
            return Err(interrupted());
        }
        let (mut header, tree) = match snapshot::read_full(src, &l.id) {
            Ok(x) => x,
            Err(p) => {
                summary
                    .errors
                    .push(format!("snapshot {}: {p}: not copied", l.id_hex()));
                continue;
            }
        };
        let mut new_tree: Vec<Entry> = Vec::with_capacity(tree.len());
        let mut chunks_copied = 0u64;
        let mut bytes_copied = 0u64;
        let mut failed = None;
        'entries: for e in &tree {
            let mut e2 = e.clone();
            if !e.chunks.is_empty() {
                let mut ids = Vec::with_capacity(e.chunks.len());
                for cid in e.chunk_ids() {
                    if stop.load(Ordering::SeqCst) {
                        if let Some(p) = w.pack.take() {
                            p.abandon();
                        }
                        return Err(interrupted());
                    }
                    let known = if same_ids {
                        Some(cid)
                    } else {
                        map.get(&cid).copied()
                    };
                    if let Some(t) = known
                        && w.index.contains(&t)
                    {
                        summary.chunks_present += 1;
                        ids.extend_from_slice(&t);
                        continue;
                    }
                    let (data, stored) = match reader.chunk_and_blob(&src_index, &cid) {
                        Ok(x) => x,
                        Err(p) => {
                            failed = Some(format!("{}: {p}", e.path_lossy()));
                            break 'entries;
                        }
                    };
                    let tid = if same_ids { cid } else { dst.chunk_id(&data) };
                    map.insert(cid, tid);
                    if w.index.contains(&tid) {
                        summary.chunks_present += 1;
                    } else {
                        let blob = if same_ids {
                            stored
                        } else {
                            dst.encode_blob(&data, &mut w.zc)?
                        };
                        w.add(tid, &blob, data.len() as u32)?;
                        chunks_copied += 1;
                        bytes_copied += blob.len() as u64;
                    }
                    ids.extend_from_slice(&tid);
                }
                e2.chunks = ids;
            }
            new_tree.push(e2);
        }
        if let Some(p) = failed {
            summary
                .errors
                .push(format!("snapshot {}: {p}: not copied", l.id_hex()));
            continue;
        }
        // Every pack the snapshot needs is in place before its manifest.
        w.flush()?;
        let original = l.original();
        header.original = Some(original.to_vec());
        let tid = snapshot::write(dst, &mut header, &new_tree)?;
        held.insert(original);
        summary.snapshots_copied += 1;
        summary.chunks_copied += chunks_copied;
        summary.bytes_copied += bytes_copied;
        on_copied(&Copied {
            id: l.id_hex(),
            job: header.job.clone(),
            time: header.time.clone(),
            target_id: crypto::hex(&tid),
            chunks_copied,
            bytes_copied,
        })?;
    }
    w.flush()?;
    summary.snapshots_behind = behind(&src_list, &held, opts.job.as_deref());
    summary.duration_seconds = (start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    Ok((summary, held))
}

/// What the last copy to one target left, kept in the source's `state/copy.json`
/// so the metrics page can say how far behind each target is.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TargetState {
    pub last_run: f64,
    pub last_success: Option<f64>,
    pub bytes_copied: u64,
    pub job: Option<String>,
    /// Original ids (hex) of the source snapshots the target held after the run.
    pub held: Vec<String>,
}

pub type CopyState = std::collections::BTreeMap<String, TargetState>;

pub fn read_state(repo: &Repo) -> CopyState {
    std::fs::read(repo.path.join("state").join("copy.json"))
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .unwrap_or_default()
}

pub fn write_state(repo: &Repo, state: &CopyState) -> Result<()> {
    let json = serde_json::to_vec(state).map_err(|e| Error::bug(format!("copy state: {e}")))?;
    repo.write_atomic(&repo.path.join("state").join("copy.json"), &json)
}
