//! backup-snap: the chunk index, which is not a file of its own but is built from
//! every pack's trailer (`Index::load` reads each pack's tail: length, `BSNPACK1`,
//! and the trailer blob, zstd-compressed CBOR). The input is one pack file, named by
//! its hash in the repository as a copied-back pack would be.
#![no_main]

use libfuzzer_sys::fuzz_target;

use backup_snap::repo::Index;

include!("../backup_snap_common.rs");

fuzz_target!(|data: &[u8]| {
    let repo = repo();
    let id: [u8; 32] = *blake3::hash(data).as_bytes();
    let _file = Placed::new(repo.pack_path(&id), data);
    let Ok(index) = Index::load(repo) else {
        return;
    };
    // The one pack is either indexed or reported as bad (verify's records).
    assert_eq!(index.packs.len() + index.bad_packs.len(), 1);
    let _ = index.len();
    let _ = index.contains(&id);
});
