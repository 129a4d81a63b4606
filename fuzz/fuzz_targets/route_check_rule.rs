//! route-check: Traefik router rules (from the API or container labels).
#![no_main]

use libfuzzer_sys::fuzz_target;
use route_check::rule;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = rule::parse(text) {
        let _ = format!("{parsed:?}");
        let _ = rule::alternatives(&parsed);
        let _ = rule::analyse(&parsed);
    }
});
