//! cpu-pin: /proc/PID/stat, /proc/PID/cmdline, and the CPU lists of /sys
//! (devices/system/cpu/online, cpuset.cpus, cpuset.cpus.effective).
#![no_main]

use cpu_pin::cpulist::{CpuList, check_wanted};
use cpu_pin::procs::{join_cmdline, parse_stat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(stat) = parse_stat(&text) {
        let _ = stat.is_kernel_thread();
    }
    let _ = join_cmdline(data);
    if let Ok(list) = CpuList::parse(&text) {
        let online = CpuList::from_cpus(0..4);
        let _ = check_wanted(&list, &online);
        let _ = (list.to_string(), list.len(), list.is_subset(&online));
        let _ = list.difference(&online);
    }
});
