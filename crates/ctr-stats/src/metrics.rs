//! The Prometheus page: cAdvisor's names (pinned; existing dashboards query them),
//! and ours beside them. Every container series carries the labels `id`
//! (`/docker/<full id>`, cAdvisor's name for it under the cgroupfs driver), `name`,
//! `image`, `compose_project` and `compose_service` (empty when not in a compose
//! project). A figure that is unknown is left out, never written as 0. Usage
//! series exist for running containers only, as with cAdvisor; the state series
//! (`container_running`, restarts, OOM kills, health) for every listed container.

use homelab_core::Page;
use homelab_core::prom::Family;

use crate::record::ContainerRecord;
use crate::usage::Limit;

/// The health states of `container_health_status`; `none` is a container without
/// a health check.
pub const HEALTH_STATES: [&str; 4] = ["healthy", "unhealthy", "starting", "none"];

/// The container's labels plus one more.
fn with<'a>(base: &[(&'a str, &'a str)], extra: (&'a str, &'a str)) -> Vec<(&'a str, &'a str)> {
    let mut l = base.to_vec();
    l.push(extra);
    l
}

/// Every family, in the order of the page: (name, help, counter?).
pub const FAMILIES: &[(&str, &str, bool)] = &[
    (
        "container_cpu_usage_seconds_total",
        "Cumulative CPU time consumed, in seconds (cpu=\"total\": all CPUs together).",
        true,
    ),
    (
        "container_cpu_user_seconds_total",
        "Cumulative CPU time spent in user mode, in seconds.",
        true,
    ),
    (
        "container_cpu_system_seconds_total",
        "Cumulative CPU time spent in kernel mode, in seconds.",
        true,
    ),
    (
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed.",
        false,
    ),
    (
        "container_memory_working_set_bytes",
        "Current working set in bytes: usage minus inactive file cache.",
        false,
    ),
    (
        "container_memory_rss",
        "Size of RSS (anonymous memory) in bytes.",
        false,
    ),
    (
        "container_memory_cache",
        "Number of bytes of page cache memory.",
        false,
    ),
    (
        "container_spec_memory_limit_bytes",
        "Memory limit for the container in bytes; 0 when unlimited.",
        false,
    ),
    (
        "container_network_receive_bytes_total",
        "Cumulative count of bytes received.",
        true,
    ),
    (
        "container_network_transmit_bytes_total",
        "Cumulative count of bytes transmitted.",
        true,
    ),
    (
        "container_fs_reads_bytes_total",
        "Cumulative count of bytes read from block devices.",
        true,
    ),
    (
        "container_fs_writes_bytes_total",
        "Cumulative count of bytes written to block devices.",
        true,
    ),
    (
        "container_pids",
        "Number of processes and threads in the container.",
        false,
    ),
    (
        "container_start_time_seconds",
        "Start time of the container since the Unix epoch, in seconds.",
        false,
    ),
    (
        "container_last_seen",
        "Last time the container was seen running by the exporter, in seconds since the Unix epoch.",
        false,
    ),
    (
        "container_running",
        "1 when Docker reports the container running, 0 when it is stopped, paused, restarting or created.",
        false,
    ),
    (
        "container_restarts",
        "How many times Docker has restarted the container (RestartCount).",
        false,
    ),
    (
        "container_oom_killed",
        "1 when the container's last exit was an out-of-memory kill (State.OOMKilled).",
        false,
    ),
    (
        "container_health_status",
        "1 for the container's current health status (healthy, unhealthy, starting, or none without a health check), 0 for the others.",
        false,
    ),
    (
        "container_engine_up",
        "1 when the Docker engine answered ctr-stats' last round, 0 when it did not (not there, no answer within --timeout, an answer too long).",
        false,
    ),
    (
        "container_last_run_timestamp_seconds",
        "Unix time of ctr-stats' last run.",
        false,
    ),
];

/// The family `name` of [`FAMILIES`].
fn fam<'p>(p: &'p mut Page, name: &str) -> &'p mut Family {
    let (name, help, counter) = FAMILIES
        .iter()
        .find(|f| f.0 == name)
        .copied()
        .unwrap_or((name, "", false));
    if counter {
        p.counter(name, help)
    } else {
        p.gauge(name, help)
    }
}

/// The page of a round: its containers, whether the engine answered (`engine_up`),
/// and the time of the run.
pub fn page(records: &[ContainerRecord], now: f64, engine_up: bool) -> Page {
    let mut p = Page::new();
    // Families in a fixed order, whatever the first container is; empty ones are left out.
    for (name, _, _) in FAMILIES {
        fam(&mut p, name);
    }
    for r in records {
        let id = format!("/docker/{}", r.full_id);
        let base: [(&str, &str); 5] = [
            ("id", &id),
            ("name", &r.name),
            ("image", &r.image),
            ("compose_project", r.compose_project.as_deref().unwrap_or("")),
            ("compose_service", r.compose_service.as_deref().unwrap_or("")),
        ];
        let u64f = |v: Option<u64>| v.map(|v| v as f64);

        if r.has_reading() {
            fam(&mut p, "container_cpu_usage_seconds_total")
                .maybe(&with(&base, ("cpu", "total")), r.cpu_seconds_total);
            fam(&mut p, "container_cpu_user_seconds_total").maybe(&base, r.cpu_user_seconds_total);
            fam(&mut p, "container_cpu_system_seconds_total").maybe(&base, r.cpu_system_seconds_total);
            fam(&mut p, "container_memory_usage_bytes").maybe(&base, u64f(r.mem_usage_bytes));
            fam(&mut p, "container_memory_working_set_bytes").maybe(&base, u64f(r.mem_working_set_bytes));
            fam(&mut p, "container_memory_rss").maybe(&base, u64f(r.mem_rss_bytes));
            fam(&mut p, "container_memory_cache").maybe(&base, u64f(r.mem_cache_bytes));
            let limit = match r.mem_limit {
                Limit::Bytes(b) => Some(b as f64),
                Limit::Unlimited => Some(0.0),
                Limit::Unknown => None,
            };
            fam(&mut p, "container_spec_memory_limit_bytes").maybe(&base, limit);
            for i in &r.interfaces {
                fam(&mut p, "container_network_receive_bytes_total")
                    .sample(&with(&base, ("interface", &i.name)), i.rx_bytes as f64);
                fam(&mut p, "container_network_transmit_bytes_total")
                    .sample(&with(&base, ("interface", &i.name)), i.tx_bytes as f64);
            }
            fam(&mut p, "container_fs_reads_bytes_total").maybe(&base, u64f(r.blk_read_bytes));
            fam(&mut p, "container_fs_writes_bytes_total").maybe(&base, u64f(r.blk_write_bytes));
            fam(&mut p, "container_pids").maybe(&base, u64f(r.pids));
            fam(&mut p, "container_start_time_seconds").maybe(&base, r.started_unix);
            fam(&mut p, "container_last_seen").sample(&base, now);
        }

        fam(&mut p, "container_running").sample(&base, f64::from(u8::from(r.running())));
        fam(&mut p, "container_restarts").maybe(&base, r.restart_count.map(|n| n as f64));
        fam(&mut p, "container_oom_killed").maybe(&base, r.oom_killed.map(|b| f64::from(u8::from(b))));
        let health = r.health.as_deref().unwrap_or("none");
        for state in HEALTH_STATES {
            fam(&mut p, "container_health_status").sample(
                &with(&base, ("status", state)),
                f64::from(u8::from(health == state)),
            );
        }
    }
    fam(&mut p, "container_engine_up").sample(&[], f64::from(u8::from(engine_up)));
    fam(&mut p, "container_last_run_timestamp_seconds").sample(&[], now);
    p
}
