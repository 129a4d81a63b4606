//! pi-thermal: the output of `vcgencmd get_throttled`, `measure_clock` and
//! `pmic_read_adc`, as the firmware (or a broken one) prints it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pi_thermal::throttle::Throttle;
use pi_thermal::vcgencmd::{parse_clock, parse_pmic, parse_throttled};

fuzz_target!(|data: &[u8]| {
    let out = String::from_utf8_lossy(data);
    if let Some(bits) = parse_throttled(&out) {
        let t = Throttle::decode(bits, "vcgencmd");
        let _ = (t.conditions(), t.any_now());
    }
    let _ = parse_clock(&out);
    if let Some(p) = parse_pmic(&out) {
        let _ = format!("{p:?}");
    }
});
