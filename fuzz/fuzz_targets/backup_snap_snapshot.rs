//! backup-snap: a snapshot file as it may come back from an off-site copy (damaged,
//! truncated, or written by someone else): both formats, `BSNSNAP2` (the tree in
//! pieces, the header last) and `BSNSNAP1` (header first, the tree in one blob). The
//! file is named by its hash, so the content check passes and the parsing behind it
//! runs: the header alone, the whole file, and the tree read piece by piece.
#![no_main]

use libfuzzer_sys::fuzz_target;

use backup_snap::snapshot::{self, TreeEntries};

include!("../backup_snap_common.rs");

fuzz_target!(|data: &[u8]| {
    let repo = repo();
    let id: [u8; 32] = *blake3::hash(data).as_bytes();
    let _file = Placed::new(snapshot::snapshot_path(repo, &id), data);
    let _ = snapshot::read_header(repo, &id);
    // What `list`, `restore` and `forget` start from: every header, listed.
    if let Ok((listed, _)) = snapshot::list(repo) {
        for l in &listed {
            let _ = l.time();
            let _ = l.original();
            let _ = l.header.is_partial();
        }
        let _ = snapshot::resolve(&listed, "latest", true);
    }
    if let Ok((_, tree)) = snapshot::read_full(repo, &id) {
        for e in &tree {
            let _ = e.path_lossy();
            let _ = e.chunk_ids().count();
        }
    }
    if let Ok(entries) = TreeEntries::open(repo, &id) {
        for e in entries.take(1 << 16) {
            match e {
                Ok(e) => {
                    let _ = e.path_lossy();
                    let _ = e.chunk_ids().count();
                }
                Err(_) => break,
            }
        }
    }
});
