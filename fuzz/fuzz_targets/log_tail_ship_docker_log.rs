//! log-tail-ship: a container's json-file log (one JSON entry per line, lines Docker
//! split at 16 KiB rejoined per stream).
#![no_main]

use libfuzzer_sys::fuzz_target;
use log_tail_ship::docker::{Joiner, parse};

fuzz_target!(|data: &[u8]| {
    let mut joiner = Joiner::default();
    for line in data.split(|&b| b == b'\n') {
        if let Some(entry) = parse(line)
            && let Some(joined) = joiner.feed(&entry, 64)
        {
            assert!(joined.line.len() <= 64 || !joined.cut);
        }
    }
    let _ = joiner.idle();
});
