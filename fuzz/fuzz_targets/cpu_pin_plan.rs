//! cpu-pin: plan files (`NAME SELECTOR cpus=LIST [nice=N] [children]`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(plan) = cpu_pin::plan::parse(&text, "plan.conf") {
        let _ = format!("{plan:?}");
    }
});
