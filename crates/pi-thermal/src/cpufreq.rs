//! CPU frequency per core as the kernel requested it:
//! /sys/devices/system/cpu/cpuN/cpufreq/{scaling_cur_freq,cpuinfo_max_freq} (kHz).

use homelab_core::Root;

use crate::sample::CpuFrequency;

const DIR: &str = "/sys/devices/system/cpu";

pub fn read(root: &Root, errors: &mut Vec<String>) -> Vec<CpuFrequency> {
    let mut out = Vec::new();
    for name in root.list(DIR) {
        let Some(cpu) = name.strip_prefix("cpu").and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let dir = format!("{DIR}/{name}/cpufreq");
        if !root.exists(&dir) {
            continue; // no cpufreq driver (VMs, some boards): nothing to report
        }
        let mut khz = |file: &str| match root.read_value::<u64>(format!("{dir}/{file}")) {
            Ok(v) => Some(v as f64 * 1000.0),
            Err(e) if e.is_not_found() => None,
            Err(e) => {
                errors.push(e.to_string());
                None
            }
        };
        let frequency_hertz = khz("scaling_cur_freq");
        let max_frequency_hertz = khz("cpuinfo_max_freq").or_else(|| khz("scaling_max_freq"));
        out.push(CpuFrequency {
            cpu,
            frequency_hertz,
            max_frequency_hertz,
        });
    }
    out
}
