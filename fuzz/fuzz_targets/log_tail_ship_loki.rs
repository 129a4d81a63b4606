//! log-tail-ship: Loki's answer to a push (status code and body).
#![no_main]

use libfuzzer_sys::fuzz_target;
use log_tail_ship::sink::{Outcome, classify};

fuzz_target!(|data: &[u8]| {
    let Some((status, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let status = u16::from_be_bytes(*status);
    let body = String::from_utf8_lossy(body);
    match classify(status, &body) {
        Outcome::Accepted => {}
        Outcome::Rejected(why) | Outcome::Retry(why) | Outcome::Failed(why) => {
            assert!(why.chars().count() <= 320)
        }
    }
});
