//! log-tail-ship: the positions file it reads back at start (anything may be left
//! there: a truncated write, another version's file, a hand edit), and the timestamps
//! its anchors give.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use log_tail_ship::positions::{self, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(file) = parse(data, Path::new("positions.json")) else {
        return;
    };
    for mut e in file.files {
        let _ = positions::stamp(&e.anchors, e.offset);
        let _ = positions::stamp(&e.anchors, e.offset.saturating_add(1 << 20));
        positions::prune(&mut e.anchors, e.offset);
    }
});
