//! ctr-stats: the Docker API's answers (the container list, inspect, one-shot stats),
//! deserialised with bollard's models and turned into what ctr-stats reports.
#![no_main]

use std::time::{Duration, Instant};

use bollard::models::{ContainerInspectResponse, ContainerStatsResponse, ContainerSummary};
use ctr_stats::api::{self, Config};
use ctr_stats::engine::Meta;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The same bytes as each of the three answers: each decoder sees every shape.
    if let Ok(list) = serde_json::from_slice::<Vec<ContainerSummary>>(data) {
        for s in &list {
            let _ = Meta::from_summary(s).live();
        }
    }
    if let Ok(i) = serde_json::from_slice::<ContainerInspectResponse>(data) {
        let mut meta = Meta::default();
        meta.add_inspect(&i);
        let _ = meta.live();
    }
    if let Ok(s) = serde_json::from_slice::<ContainerStatsResponse>(data) {
        for network_mode in ["bridge", "host"] {
            let cfg = Config {
                memory_limit: 1,
                network_mode,
                cpuset: Some("0-3"),
            };
            let _ = api::is_empty(&s);
            if let Some(u) = api::usage(&s, cfg) {
                let _ = (u.net_rx(), u.net_tx());
                let now = Instant::now();
                if let Some(p) = u.cpu_point(now) {
                    let earlier = ctr_stats::usage::CpuPoint {
                        total_ns: 0,
                        at: now.checked_sub(Duration::from_secs(1)).unwrap_or(now),
                        system: Some((0, 1)),
                    };
                    let _ = p.percent_since(&earlier);
                }
            }
        }
    }
});
