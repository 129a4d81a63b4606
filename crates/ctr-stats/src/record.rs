//! The `kind: container` record: one per container per round. Every figure a source
//! could not give is `null`, never a made-up 0; what went wrong is in `errors`.

use std::time::SystemTime;

use serde::Serialize;

use crate::engine::Meta;
use crate::usage::{Interface, Limit, Usage, round2};

/// Where a record's figures came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum From {
    Cgroup,
    Api,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ContainerRecord {
    /// The short id: the first 12 hex digits, as `docker ps` shows it.
    pub id: String,
    pub name: String,
    pub image: String,
    pub compose_project: Option<String>,
    pub compose_service: Option<String>,
    pub state: String,
    pub health: Option<String>,
    pub restart_count: Option<u64>,
    pub oom_killed: Option<bool>,
    pub started_at: Option<String>,
    pub uptime_seconds: Option<f64>,
    /// `cgroup` or `api`; null when the container is not running.
    pub source: Option<From>,
    pub cpu_seconds_total: Option<f64>,
    pub cpu_user_seconds_total: Option<f64>,
    pub cpu_system_seconds_total: Option<f64>,
    pub cpu_percent: Option<f64>,
    pub cpuset_cpus: Option<String>,
    pub mem_usage_bytes: Option<u64>,
    pub mem_working_set_bytes: Option<u64>,
    pub mem_rss_bytes: Option<u64>,
    pub mem_cache_bytes: Option<u64>,
    pub mem_limit_bytes: Option<u64>,
    pub mem_percent: Option<f64>,
    pub net_rx_bytes: Option<u64>,
    pub net_tx_bytes: Option<u64>,
    pub blk_read_bytes: Option<u64>,
    pub blk_write_bytes: Option<u64>,
    pub pids: Option<u64>,
    pub errors: Vec<String>,

    /// The full id, for the Prometheus `id` label.
    #[serde(skip)]
    pub full_id: String,
    /// Per-interface counters, for the Prometheus `interface` label.
    #[serde(skip)]
    pub interfaces: Vec<Interface>,
    /// Unlimited and unknown apart, for `container_spec_memory_limit_bytes`.
    #[serde(skip)]
    pub mem_limit: Limit,
    #[serde(skip)]
    pub started_unix: Option<f64>,
}

fn unix(t: SystemTime) -> Option<f64> {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0)
}

fn seconds(ns: Option<u64>) -> Option<f64> {
    ns.map(|n| n as f64 / 1e9)
}

impl ContainerRecord {
    /// A record from what Docker says and, for a running container, one reading.
    /// `mem_total` (the host's memory) is what docker stats divides by when there
    /// is no limit.
    pub fn new(
        meta: Meta,
        reading: Option<(From, Usage)>,
        cpu_percent: Option<f64>,
        now: SystemTime,
        mem_total: Option<u64>,
    ) -> ContainerRecord {
        let live = meta.live();
        let mut errors = meta.errors;
        let (source, u) = match reading {
            Some((src, u)) => (Some(src), u),
            None => (None, Usage::default()),
        };
        errors.extend(u.errors.iter().cloned());
        let started_unix = meta.started_at.and_then(unix);
        let uptime_seconds = match (live, meta.started_at) {
            (true, Some(t)) => now
                .duration_since(t)
                .ok()
                .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0),
            _ => None,
        };
        let mem_percent = match (u.mem_working_set, u.mem_limit.bytes().or(mem_total)) {
            (Some(ws), Some(d)) if d > 0 && u.mem_limit != Limit::Unknown => {
                Some(round2(ws as f64 / d as f64 * 100.0))
            }
            _ => None,
        };
        // A stopped container still shows the CPUs it was given.
        let cpuset_cpus = if source.is_some() {
            u.cpuset.clone()
        } else {
            meta.cpuset.as_deref().and_then(crate::usage::canonical_cpu_list)
        };
        ContainerRecord {
            id: meta.full_id.chars().take(12).collect(),
            name: meta.name,
            image: meta.image,
            compose_project: meta.compose_project,
            compose_service: meta.compose_service,
            state: meta.state,
            health: meta.health,
            restart_count: meta.restart_count,
            oom_killed: meta.oom_killed,
            started_at: meta.started_at.map(homelab_core::output::rfc3339_millis),
            uptime_seconds,
            source,
            cpu_seconds_total: seconds(u.cpu_total_ns),
            cpu_user_seconds_total: seconds(u.cpu_user_ns),
            cpu_system_seconds_total: seconds(u.cpu_system_ns),
            cpu_percent,
            cpuset_cpus,
            mem_usage_bytes: u.mem_usage,
            mem_working_set_bytes: u.mem_working_set,
            mem_rss_bytes: u.mem_rss,
            mem_cache_bytes: u.mem_cache,
            mem_limit_bytes: u.mem_limit.bytes(),
            mem_percent,
            net_rx_bytes: u.net_rx(),
            net_tx_bytes: u.net_tx(),
            blk_read_bytes: u.blk_read,
            blk_write_bytes: u.blk_write,
            pids: u.pids,
            errors,
            full_id: meta.full_id,
            interfaces: u.interfaces.unwrap_or_default(),
            mem_limit: u.mem_limit,
            started_unix,
        }
    }

    /// Docker's state is `running` (a paused container is not).
    pub fn running(&self) -> bool {
        self.state == "running"
    }

    /// Whether the record carries a reading (the container was running or paused).
    pub fn has_reading(&self) -> bool {
        self.source.is_some()
    }
}

/// The `kind: engine` record: written for a round in a loop (`--interval`) that the
/// Docker engine failed (not there, no answer within `--timeout`, an answer too
/// long); the loop goes on and tries again next round.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EngineRecord {
    /// The engine's address.
    pub docker_host: String,
    /// Always false: a round the engine answers gives container records instead.
    pub up: bool,
    /// What went wrong, as the one-line message of a fatal error.
    pub errors: Vec<String>,
}
