//! pi-thermal: the /proc and /sys files it parses beyond single numbers
//! (pressure, mountinfo, the device-tree model, get_throttled).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pi_thermal::filesystems::{parse_mountinfo, real_mounts, unescape};
use pi_thermal::system::{parse_model, parse_pressure};
use pi_thermal::throttle::parse_hex;

fuzz_target!(|data: &[u8]| {
    let _ = parse_model(data);
    let text = String::from_utf8_lossy(data);
    for resource in ["cpu", "memory", "io"] {
        let _ = parse_pressure(resource, &text);
    }
    let _ = parse_hex(&text);
    let _ = unescape(&text);
    if let Ok(mounts) = parse_mountinfo(data) {
        let _ = real_mounts(mounts);
    }
});
