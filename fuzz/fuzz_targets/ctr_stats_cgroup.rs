//! ctr-stats: cgroup and /proc files of a container (/proc/PID/cgroup, memory.stat,
//! memory.max, io.stat, blkio, /proc/PID/net/dev, /proc/meminfo, cpuset lists).
#![no_main]

use ctr_stats::cgroup::{keyed, parse_blkio_v1, parse_io_stat, parse_limit, parse_proc_cgroup};
use ctr_stats::collect::parse_mem_total;
use ctr_stats::usage::{Usage, canonical_cpu_list, parse_cpu_list};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_proc_cgroup(&text);
    for key in ["inactive_file", "total_inactive_file", "usage_usec", "anon"] {
        let _ = keyed(&text, key);
    }
    let _ = parse_limit(&text, "max");
    let _ = parse_limit(&text, "9223372036854771712");
    let _ = parse_io_stat(&text);
    let _ = parse_blkio_v1(&text);
    if let Some(interfaces) = ctr_stats::netdev::parse(&text) {
        // As the collector reports them: summed over interfaces.
        let u = Usage {
            interfaces: Some(interfaces),
            ..Usage::default()
        };
        let _ = (u.net_rx(), u.net_tx());
    }
    let _ = parse_mem_total(&text);
    let _ = parse_cpu_list(&text);
    let _ = canonical_cpu_list(&text);
});
