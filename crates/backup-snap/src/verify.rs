//! `verify`: the structure always (config, every pack trailer, every manifest
//! against its id, every chunk a snapshot needs present in a pack); with
//! `--read-data` every pack is read whole, its hash checked against its name, and
//! every chunk decrypted, decompressed and re-hashed. Damage is traced to the
//! snapshots and files it affects.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read};

use homelab_core::Result;
use serde::Serialize;

use crate::crypto::{self, Id};
use crate::progress::Progress;
use crate::repo::{ChunkSet, Index, Repo};
use crate::snapshot;

/// Which packs `--read-data` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadData {
    None,
    All,
    /// Packs whose id, read as a number, is N-1 modulo T (restic's n/t).
    Subset(u32, u32),
}

impl ReadData {
    pub fn selects(&self, pack: &Id) -> bool {
        match *self {
            ReadData::None => false,
            ReadData::All => true,
            ReadData::Subset(n, t) => u32::from_be_bytes([pack[0], pack[1], pack[2], pack[3]]) % t == n - 1,
        }
    }

    pub fn label(&self) -> String {
        match self {
            ReadData::None => "none".into(),
            ReadData::All => "all".into(),
            ReadData::Subset(n, t) => format!("{n}/{t}"),
        }
    }
}

pub fn parse_subset(s: &str) -> std::result::Result<(u32, u32), String> {
    let err = || format!("{s:?}: expected N/T with 1 <= N <= T, e.g. 1/7");
    let (n, t) = s.split_once('/').ok_or_else(err)?;
    let n: u32 = n.trim().parse().map_err(|_| err())?;
    let t: u32 = t.trim().parse().map_err(|_| err())?;
    if n == 0 || t == 0 || n > t {
        return Err(err());
    }
    Ok((n, t))
}

/// `kind: damage`: one damaged object, or one file a damaged object affects.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Damage {
    /// pack, chunk, snapshot or file.
    pub object: String,
    /// Hex id of the pack, chunk or snapshot (null for a file).
    pub id: Option<String>,
    /// The affected snapshot (for a file).
    pub snapshot: Option<String>,
    pub job: Option<String>,
    pub path: Option<String>,
    pub problem: String,
}

/// `kind: verify`: the summary.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
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

fn damage(object: &str, id: Option<&[u8]>, problem: impl Into<String>) -> Damage {
    Damage {
        object: object.into(),
        id: id.map(crypto::hex),
        snapshot: None,
        job: None,
        path: None,
        problem: problem.into(),
    }
}

pub fn run(repo: &Repo, read: ReadData) -> Result<(Vec<Damage>, Summary)> {
    let start = std::time::Instant::now();
    let index = Index::load(repo)?;
    let mut out = Vec::new();
    for (id, problem) in &index.bad_packs {
        out.push(damage("pack", Some(id), problem.clone()));
    }
    // Chunks with a copy that failed, and chunks proven good by reading (one bit
    // per chunk of the index, not a set of ids beside it).
    let mut bad: HashMap<Id, String> = HashMap::new();
    let mut good = ChunkSet::new(index.len());
    let mut packs_read = 0u64;
    let mut bytes_read = 0u64;
    let mut damaged_packs = index.bad_packs.len() as u64;
    let mut progress = Progress::new("verify");
    for (n, pack) in index.packs.iter().enumerate() {
        if !read.selects(pack) {
            continue;
        }
        packs_read += 1;
        let (read_bytes, problems) = read_pack(repo, &index, pack, &mut bad, &mut good);
        bytes_read += read_bytes;
        if !problems.is_empty() {
            damaged_packs += 1;
        }
        for p in problems {
            out.push(p);
        }
        progress.update(n as u64, bytes_read, 0);
    }
    progress.finish();
    // Snapshots: each one checked whole, then every chunk it needs.
    let ids = snapshot::list_ids(repo)?;
    let mut damaged_snapshots = 0u64;
    let mut affected_snapshots = HashSet::new();
    let mut affected_files = 0u64;
    for sid in &ids {
        // The tree a piece at a time (the file's hash checked first): memory holds
        // one piece, not the snapshot's whole tree.
        let opened = snapshot::TreeEntries::open(repo, sid)
            .and_then(|t| snapshot::read_header(repo, sid).map(|h| (h, t)));
        let (header, tree) = match opened {
            Ok(x) => x,
            Err(problem) => {
                damaged_snapshots += 1;
                affected_snapshots.insert(*sid);
                out.push(damage("snapshot", Some(sid), problem));
                continue;
            }
        };
        for e in tree {
            let e = match e {
                Ok(e) => e,
                Err(problem) => {
                    damaged_snapshots += 1;
                    affected_snapshots.insert(*sid);
                    out.push(damage("snapshot", Some(sid), problem));
                    break;
                }
            };
            let mut missing = 0u64;
            let mut damaged = 0u64;
            let mut first_problem = String::new();
            for cid in e.chunk_ids() {
                if index.position(&cid).is_some_and(|pos| good.contains(pos)) {
                    continue;
                }
                if !index.contains(&cid) {
                    missing += 1;
                    if first_problem.is_empty() {
                        first_problem = format!("chunk {} is missing", crypto::hex(&cid));
                    }
                } else if let Some(p) = bad.get(&cid) {
                    damaged += 1;
                    if first_problem.is_empty() {
                        first_problem = format!("chunk {} is damaged: {p}", crypto::hex(&cid));
                    }
                }
            }
            if missing + damaged > 0 {
                affected_files += 1;
                affected_snapshots.insert(*sid);
                let n = missing + damaged;
                out.push(Damage {
                    object: "file".into(),
                    id: None,
                    snapshot: Some(crypto::hex(sid)),
                    job: Some(header.job.clone()),
                    path: Some(e.path_lossy()),
                    problem: if n > 1 {
                        format!("{first_problem} (and {} more)", n - 1)
                    } else {
                        first_problem
                    },
                });
            }
        }
    }
    let damaged_chunks = bad
        .keys()
        .filter(|k| !index.position(k).is_some_and(|pos| good.contains(pos)))
        .count() as u64;
    let errors = out.len() as u64;
    let summary = Summary {
        read_data: read.label(),
        snapshots: ids.len() as u64,
        packs: (index.packs.len() + index.bad_packs.len()) as u64,
        chunks: index.len() as u64,
        packs_read,
        bytes_read,
        damaged_packs,
        damaged_chunks,
        damaged_snapshots,
        affected_snapshots: affected_snapshots.len() as u64,
        affected_files,
        errors,
        ok: errors == 0,
        duration_seconds: (start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    };
    Ok((out, summary))
}

/// Reads one pack whole: its hash against its name, every chunk against its id.
fn read_pack(
    repo: &Repo,
    index: &Index,
    pack: &Id,
    bad: &mut HashMap<Id, String>,
    good: &mut ChunkSet,
) -> (u64, Vec<Damage>) {
    let mut problems = Vec::new();
    let mut entries = match repo.read_trailer(pack) {
        Ok(e) => e,
        Err(p) => return (0, vec![damage("pack", Some(pack), p)]),
    };
    entries.sort_by_key(|e| e.1);
    let path = repo.pack_path(pack);
    let f = match File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            return (
                0,
                vec![damage("pack", Some(pack), homelab_core::exit::describe_io(&e))],
            );
        }
    };
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut hasher = blake3::Hasher::new();
    let mut pos = 0u64;
    let mut buf = Vec::new();
    let mut io_problem = None;
    for e in &entries {
        if e.1 < pos {
            problems.push(damage("pack", Some(pack), "overlapping chunks in the trailer"));
            break;
        }
        // Bytes between blobs (none in packs we write) still count for the hash.
        let gap = e.1 - pos;
        if gap > 0 && std::io::copy(&mut (&mut r).take(gap), &mut HashWriter(&mut hasher)).is_err() {
            io_problem = Some("read error".to_string());
            break;
        }
        buf.resize(e.2 as usize, 0);
        if let Err(err) = r.read_exact(&mut buf) {
            io_problem = Some(homelab_core::exit::describe_io(&err));
            break;
        }
        hasher.update(&buf);
        pos = e.1 + e.2 as u64;
        let ok = match repo.decode_blob(&buf, repo.max_chunk()) {
            Ok(data) if repo.chunk_id(&data) == e.0 => Ok(()),
            Ok(_) => Err("content does not match its id".to_string()),
            Err(p) => Err(p),
        };
        match ok {
            Ok(()) => {
                // A chunk of a trailer is in the index (loaded from the same trailers).
                if let Some(pos) = index.position(&e.0) {
                    good.insert(pos);
                }
            }
            Err(p) => {
                problems.push(damage(
                    "chunk",
                    Some(&e.0),
                    format!("in pack {}: {p}", crypto::hex(pack)),
                ));
                bad.insert(e.0, p);
            }
        }
    }
    if io_problem.is_none() {
        let _ = std::io::copy(&mut r, &mut HashWriter(&mut hasher));
    }
    if let Some(p) = io_problem {
        problems.push(damage("pack", Some(pack), p));
    } else if hasher.finalize().as_bytes() != pack {
        problems.push(damage(
            "pack",
            Some(pack),
            "content does not match its name (damaged)",
        ));
    }
    (pos, problems)
}

struct HashWriter<'a>(&'a mut blake3::Hasher);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_partition_the_packs() {
        assert_eq!(parse_subset("2/5"), Ok((2, 5)));
        for bad in ["0/5", "6/5", "x/5", "1", "1/0"] {
            assert!(parse_subset(bad).is_err(), "{bad}");
        }
        let ids: Vec<Id> = (0..50u8).map(|i| *blake3::hash(&[i]).as_bytes()).collect();
        for id in &ids {
            let n = (1..=5).filter(|n| ReadData::Subset(*n, 5).selects(id)).count();
            assert_eq!(n, 1);
        }
    }
}
