//! backup-snap: a pack file's blobs, read the way `restore` and `verify` read them:
//! the trailer gives each chunk's place, each blob is decoded (type byte, stored or
//! zstd within the chunk size limit) and its id checked. Then the input as a single
//! blob and as metadata, in the unencrypted repository and sealed with a fixed key
//! (the AEAD open comes first there).
#![no_main]

use libfuzzer_sys::fuzz_target;

use backup_snap::crypto::Keys;
use backup_snap::repo::Index;
use backup_snap::repo::pack::PackReader;

include!("../backup_snap_common.rs");

fn keyed() -> &'static Repo {
    static REPO: OnceLock<Repo> = OnceLock::new();
    REPO.get_or_init(|| {
        let plain = repo();
        Repo {
            path: plain.path.clone(),
            config: plain.config.clone(),
            keys: Some(Keys::derive(b"fuzz key", &[7u8; 16])),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let repo = repo();
    {
        let id: [u8; 32] = *blake3::hash(data).as_bytes();
        let _file = Placed::new(repo.pack_path(&id), data);
        if let Ok(entries) = repo.read_trailer(&id) {
            let mut index = Index::default();
            let n = index.add_pack(id, data.len() as u64);
            for e in entries.iter().take(256) {
                index.insert(
                    e.0,
                    backup_snap::repo::Loc {
                        pack: n,
                        offset: e.1,
                        length: e.2,
                        size: e.3,
                    },
                );
            }
            let mut reader = PackReader::new(repo);
            for e in entries.iter().take(256) {
                let _ = reader.chunk_and_blob(&index, &e.0);
            }
        }
    }
    let _ = repo.decode_blob(data, repo.max_chunk());
    let _ = repo.decode_metadata(data);
    let keyed = keyed();
    let _ = keyed.decode_blob(data, keyed.max_chunk());
    let _ = keyed.decode_metadata(data);
});
