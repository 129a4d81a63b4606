//! The API source: a container's figures from the Docker stats API (`one-shot`),
//! turned into the same [`Usage`] the cgroup source gives, with docker stats' own
//! formulas (docker/cli `stats_helpers.go`).

use bollard::models::ContainerStatsResponse;

use crate::usage::{Interface, Limit, Usage, canonical_cpu_list};

/// What the engine says about the container besides its stats, needed to read them.
#[derive(Debug, Clone, Copy)]
pub struct Config<'a> {
    /// `HostConfig.Memory`: 0 when no limit was set (the API then reports the host's
    /// memory as the limit).
    pub memory_limit: i64,
    /// `HostConfig.NetworkMode`.
    pub network_mode: &'a str,
    /// `HostConfig.CpusetCpus`, or the host's online CPUs when that is empty.
    pub cpuset: Option<&'a str>,
}

/// The daemon's answer for a container that is not running: no reading at all.
pub fn is_empty(s: &ContainerStatsResponse) -> bool {
    let zero_time = s
        .read
        .as_deref()
        .is_none_or(|r| r.is_empty() || r.starts_with("0001-01-01"));
    zero_time
        && s.cpu_stats
            .as_ref()
            .and_then(|c| c.cpu_usage.as_ref())
            .and_then(|u| u.total_usage)
            .unwrap_or(0)
            == 0
}

/// One stats answer as a [`Usage`]. `None` when the answer is empty (the container
/// stopped in the meantime).
pub fn usage(s: &ContainerStatsResponse, cfg: Config) -> Option<Usage> {
    if is_empty(s) {
        return None;
    }
    let mut u = Usage::default();
    if let Some(cpu) = &s.cpu_stats {
        if let Some(c) = &cpu.cpu_usage {
            u.cpu_total_ns = c.total_usage;
            u.cpu_user_ns = c.usage_in_usermode;
            u.cpu_system_ns = c.usage_in_kernelmode;
        }
        let online = cpu.online_cpus.filter(|&n| n > 0).or_else(|| {
            cpu.cpu_usage
                .as_ref()
                .and_then(|c| c.percpu_usage.as_ref())
                .map(|p| p.len() as u32)
                .filter(|&n| n > 0)
        });
        if let (Some(sys), Some(n)) = (cpu.system_cpu_usage, online) {
            u.cpu_system_clock = Some((sys, n));
        }
    }
    if u.cpu_total_ns.is_none() {
        u.errors.push("the stats API gave no CPU usage".into());
    }

    match s.memory_stats.as_ref().filter(|m| m.usage.is_some()) {
        Some(m) => {
            u.mem_usage = m.usage;
            let stat = |k: &str| m.stats.as_ref().and_then(|s| s.get(k).copied());
            // cgroup v1 daemons report total_*, v2 daemons the v2 names.
            let v1 = stat("total_inactive_file").is_some() || stat("total_rss").is_some();
            let (rss, cache, inactive) = if v1 {
                ("total_rss", "total_cache", "total_inactive_file")
            } else {
                ("anon", "file", "inactive_file")
            };
            u.mem_rss = stat(rss);
            u.mem_cache = stat(cache);
            u.set_working_set(stat(inactive));
            u.mem_limit = if cfg.memory_limit > 0 {
                m.limit.map_or(Limit::Unknown, Limit::Bytes)
            } else {
                Limit::Unlimited
            };
        }
        None => u.errors.push(
            "the stats API gave no memory figures (on a Raspberry Pi: the memory cgroup controller is disabled; \
             add cgroup_enable=memory to /boot/firmware/cmdline.txt and reboot)"
                .into(),
        ),
    }

    // The engine only knows the interfaces of its own networks; a container on the
    // host's network has no figures of its own.
    u.interfaces = match (&s.networks, cfg.network_mode) {
        (_, "host") => None,
        (Some(nets), _) => {
            let mut ifs: Vec<Interface> = nets
                .iter()
                .map(|(name, n)| Interface {
                    name: name.clone(),
                    rx_bytes: n.rx_bytes.unwrap_or(0),
                    tx_bytes: n.tx_bytes.unwrap_or(0),
                })
                .collect();
            ifs.sort_by(|a, b| a.name.cmp(&b.name));
            Some(ifs)
        }
        (None, _) => Some(Vec::new()),
    };

    if let Some(entries) = s
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref())
    {
        let (mut r, mut w) = (0u64, 0u64);
        for e in entries {
            let op = e.op.as_deref().unwrap_or("");
            let v = e.value.unwrap_or(0);
            if op.starts_with(['r', 'R']) {
                r = r.saturating_add(v);
            } else if op.starts_with(['w', 'W']) {
                w = w.saturating_add(v);
            }
        }
        (u.blk_read, u.blk_write) = (Some(r), Some(w));
    } else {
        (u.blk_read, u.blk_write) = (Some(0), Some(0));
    }

    u.pids = s.pids_stats.as_ref().and_then(|p| p.current);
    u.cpuset = cfg.cpuset.and_then(canonical_cpu_list);
    Some(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from Docker 20.10.24 on cgroup v1 (`one-shot=true`), trimmed.
    const V1: &str = r#"{"read":"2026-11-26T07:15:01.481318904Z","preread":"0001-01-01T00:00:00Z","pids_stats":{"current":2},
"blkio_stats":{"io_service_bytes_recursive":[{"major":254,"minor":0,"op":"Read","value":4096},{"major":254,"minor":0,"op":"Write","value":8192},{"major":254,"minor":0,"op":"Total","value":12288}]},
"cpu_stats":{"cpu_usage":{"total_usage":161893539,"percpu_usage":[86170269,75723270],"usage_in_kernelmode":120000000,"usage_in_usermode":30000000},"system_cpu_usage":5777600000000,"online_cpus":2,"throttling_data":{"periods":0,"throttled_periods":0,"throttled_time":0}},
"precpu_stats":{"cpu_usage":{"total_usage":0,"usage_in_kernelmode":0,"usage_in_usermode":0},"throttling_data":{"periods":0,"throttled_periods":0,"throttled_time":0}},
"memory_stats":{"usage":524288,"max_usage":3551232,"stats":{"cache":4096,"rss":118784,"total_cache":8192,"total_inactive_file":4096,"total_rss":118784},"limit":67108864},
"name":"/zen_benz","id":"81e4b933a09c5247e3e2b8d1a1047c0690f0114aa24e7c270452ef6a79255313"}"#;

    /// The shape a cgroup v2 daemon without the memory controller answers (Pi OS).
    const V2_NO_MEMORY: &str = r#"{"read":"2026-11-26T07:15:01Z","pids_stats":{"current":5},
"blkio_stats":{"io_service_bytes_recursive":[{"major":259,"minor":0,"op":"read","value":100},{"major":259,"minor":0,"op":"write","value":200}]},
"cpu_stats":{"cpu_usage":{"total_usage":2000000000,"usage_in_kernelmode":500000000,"usage_in_usermode":1500000000},"system_cpu_usage":100000000000,"online_cpus":4},
"memory_stats":{},"networks":{"eth0":{"rx_bytes":10,"tx_bytes":20},"eth1":{"rx_bytes":1,"tx_bytes":2}},
"name":"/n8n","id":"abc"}"#;

    const STOPPED: &str = r#"{"read":"0001-01-01T00:00:00Z","preread":"0001-01-01T00:00:00Z","pids_stats":{},"blkio_stats":{"io_service_bytes_recursive":null},
"cpu_stats":{"cpu_usage":{"total_usage":0,"usage_in_kernelmode":0,"usage_in_usermode":0},"throttling_data":{"periods":0,"throttled_periods":0,"throttled_time":0}},
"memory_stats":{},"name":"/gone","id":"abc"}"#;

    fn parse(s: &str) -> ContainerStatsResponse {
        serde_json::from_str(s).unwrap()
    }

    const LIMITED: Config = Config {
        memory_limit: 67108864,
        network_mode: "none",
        cpuset: Some("0,1"),
    };

    #[test]
    fn v1_answer() {
        let u = usage(&parse(V1), LIMITED).unwrap();
        assert_eq!(u.cpu_total_ns, Some(161_893_539));
        assert_eq!(u.cpu_user_ns, Some(30_000_000));
        assert_eq!(u.cpu_system_ns, Some(120_000_000));
        assert_eq!(u.cpu_system_clock, Some((5_777_600_000_000, 2)));
        assert_eq!(u.mem_usage, Some(524_288));
        assert_eq!(u.mem_working_set, Some(520_192));
        assert_eq!((u.mem_rss, u.mem_cache), (Some(118_784), Some(8192)));
        assert_eq!(u.mem_limit, Limit::Bytes(67_108_864));
        assert_eq!((u.blk_read, u.blk_write), (Some(4096), Some(8192)));
        assert_eq!(u.pids, Some(2));
        assert_eq!(u.interfaces, Some(vec![]));
        assert_eq!(u.net_rx(), None);
        assert_eq!(u.cpuset.as_deref(), Some("0-1"));
        assert!(u.errors.is_empty(), "{:?}", u.errors);
        // No limit set: the API's limit is the host's memory, not a container limit.
        let u = usage(
            &parse(V1),
            Config {
                memory_limit: 0,
                ..LIMITED
            },
        )
        .unwrap();
        assert_eq!(u.mem_limit, Limit::Unlimited);
    }

    #[test]
    fn v2_without_memory_controller_is_null_with_a_note() {
        let u = usage(&parse(V2_NO_MEMORY), LIMITED).unwrap();
        assert_eq!(u.mem_usage, None);
        assert_eq!(u.mem_working_set, None);
        assert_eq!(u.mem_limit, Limit::Unknown);
        assert_eq!(u.errors.len(), 1);
        assert!(u.errors[0].contains("cgroup_enable=memory"), "{}", u.errors[0]);
        assert_eq!((u.net_rx(), u.net_tx()), (Some(11), Some(22)));
        assert_eq!((u.blk_read, u.blk_write), (Some(100), Some(200)));
        assert_eq!(u.cpu_system_clock, Some((100_000_000_000, 4)));
    }

    #[test]
    fn host_network_has_no_figures_of_its_own() {
        let u = usage(
            &parse(V2_NO_MEMORY),
            Config {
                network_mode: "host",
                ..LIMITED
            },
        )
        .unwrap();
        assert_eq!(u.interfaces, None);
    }

    #[test]
    fn a_stopped_containers_answer_is_no_reading() {
        assert!(usage(&parse(STOPPED), LIMITED).is_none());
    }
}
