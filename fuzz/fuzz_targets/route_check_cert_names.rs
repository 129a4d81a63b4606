//! route-check: matching a certificate's names (SANs, wildcards, IP addresses,
//! trailing dots) against a host: newline-separated names, the last line the host.
#![no_main]

use libfuzzer_sys::fuzz_target;
use route_check::tls::name_matches;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let host = lines.pop().unwrap_or_default();
    let _ = name_matches(&lines, &host);
});
