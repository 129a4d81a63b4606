//! log-tail-ship: the positions file it reads back at start (anything may be left
//! there: a truncated write of another version, a hand edit).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use log_tail_ship::positions::{self, load};

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hlt-fuzz-positions-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        dir.join("positions.json")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = path();
    std::fs::write(path, data).expect("writing the temporary positions file");
    let Ok(Some(file)) = load(path) else { return };
    for mut e in file.files {
        let _ = positions::stamp(&e.anchors, e.offset);
        let _ = positions::stamp(&e.anchors, e.offset.saturating_add(1 << 20));
        positions::prune(&mut e.anchors, e.offset);
    }
});
