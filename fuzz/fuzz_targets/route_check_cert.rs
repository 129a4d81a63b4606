//! route-check: a certificate as a server sends it (DER), its names read out, and
//! rustls's check of it against the route's host (what decides up or down).
#![no_main]

use libfuzzer_sys::fuzz_target;
use route_check::tls::{cert_info, name_valid};
use rustls::pki_types::{CertificateDer, ServerName};

fuzz_target!(|data: &[u8]| {
    if let Some(info) = cert_info(data) {
        let der = CertificateDer::from(data.to_vec());
        let host = info.common_name.clone().unwrap_or_default();
        for h in [host.as_str(), "probe.test"] {
            if let Ok(name) = ServerName::try_from(h.to_string()) {
                let _ = name_valid(&der, &name);
            }
        }
    }
});
