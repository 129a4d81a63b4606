//! route-check: the hosts it is handed (--route, routes files, Traefik rules, container
//! labels), checked before they reach a request line: newline-separated hosts and
//! route arguments. A host that passes never carries a control character or a space.
#![no_main]

use libfuzzer_sys::fuzz_target;
use route_check::routes::{Source, check_host, parse_route, valid_host};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        if let Ok(h) = check_host(line) {
            assert!(!h.chars().any(|c| c.is_control() || c == ' '), "{h:?}");
        }
        if valid_host(line) {
            assert!(!line.chars().any(|c| c.is_control() || c == ' '), "{line:?}");
        }
        if let Ok(r) = parse_route(line, Source::Flag) {
            let host = r.host.unwrap_or_default();
            assert!(!host.chars().any(|c| c.is_control() || c == ' '), "{host:?}");
        }
    }
});
