//! route-check: a certificate as a server sends it (DER), its names read out and
//! matched against a route's host.
#![no_main]

use libfuzzer_sys::fuzz_target;
use route_check::tls::{cert_info, name_matches};

fuzz_target!(|data: &[u8]| {
    if let Some(info) = cert_info(data) {
        let host = info.common_name.clone().unwrap_or_default();
        let _ = name_matches(&info.sans, &host);
        let _ = name_matches(&info.sans, "probe.test");
    }
});
