//! The Docker engine through bollard: finding containers (list), what Docker knows
//! about each (inspect: state, health, restarts, OOM kills, main pid, limits), and
//! one-shot stats. The API version is negotiated, so Debian's Docker 20.10 (API
//! 1.41) and current Docker both answer. Requests run concurrently on a
//! current-thread runtime, a few at a time. The connection is homelab-core's (every
//! response capped at 16 MiB), and every request of a round shares one deadline
//! (`--timeout`), so twenty hanging requests cost the timeout once, not twenty times.

use std::cell::Cell;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerInspectResponse, ContainerStatsResponse, ContainerSummary};
use bollard::query_parameters::{ListContainersOptions, StatsOptions};
use futures_util::{StreamExt, stream};
use homelab_core::docker::{self as core_docker, within};
use homelab_core::{Error, Result};
use tokio::time::Instant as Deadline;

/// Requests in flight at once against a current daemon, whose one-shot stats answer
/// at once: a few, so that a Pi's dockerd is never flooded.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// Requests in flight at once against a daemon older than Docker 25 (API 1.44), whose
/// one-shot stats wait for its next 1 s collection tick (moby#46448 changed that).
/// Requests in flight together wait for the same tick and cost the daemon one
/// collection pass, so with a few at a time 20 containers would take 5 s.
pub const OLD_DAEMON_CONCURRENCY: usize = 32;

/// The first API version whose one-shot stats answer at once (Docker 25.0).
const ONE_SHOT_AT_ONCE: (usize, usize) = (1, 44);

pub const COMPOSE_PROJECT: &str = "com.docker.compose.project";
pub const COMPOSE_SERVICE: &str = "com.docker.compose.service";

/// What Docker says about one container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meta {
    /// The full 64-hex id.
    pub full_id: String,
    pub name: String,
    /// The image reference the container was created from (`Config.Image`).
    pub image: String,
    pub compose_project: Option<String>,
    pub compose_service: Option<String>,
    /// created, running, paused, restarting, removing, exited or dead.
    pub state: String,
    /// starting, healthy or unhealthy; `None` without a health check.
    pub health: Option<String>,
    pub restart_count: Option<u64>,
    pub oom_killed: Option<bool>,
    pub started_at: Option<SystemTime>,
    /// The main process on the host, 0 when not running.
    pub pid: u32,
    pub network_mode: String,
    /// `HostConfig.Memory`, 0 when unlimited.
    pub memory_limit: i64,
    /// `HostConfig.CpusetCpus`, `None` when not restricted.
    pub cpuset: Option<String>,
    /// Problems asking Docker about it.
    pub errors: Vec<String>,
}

impl Meta {
    /// Whether the container has processes whose use can be read (running or paused).
    pub fn live(&self) -> bool {
        matches!(self.state.as_str(), "running" | "paused")
    }

    /// What the list call tells, before inspect adds the rest.
    pub fn from_summary(s: &ContainerSummary) -> Meta {
        let labels = s.labels.clone().unwrap_or_default();
        Meta {
            full_id: s.id.clone().unwrap_or_default(),
            name: s
                .names
                .as_ref()
                .and_then(|n| n.first())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default(),
            image: s.image.clone().unwrap_or_default(),
            compose_project: labels.get(COMPOSE_PROJECT).cloned(),
            compose_service: labels.get(COMPOSE_SERVICE).cloned(),
            state: s.state.map(|s| s.to_string()).unwrap_or_default(),
            ..Meta::default()
        }
    }

    /// Adds what inspect tells.
    pub fn add_inspect(&mut self, i: &ContainerInspectResponse) {
        if let Some(id) = &i.id {
            self.full_id = id.clone();
        }
        if let Some(n) = &i.name {
            self.name = n.trim_start_matches('/').to_string();
        }
        if let Some(c) = &i.config {
            if let Some(img) = c.image.as_ref().filter(|s| !s.is_empty()) {
                self.image = img.clone();
            }
            if let Some(l) = &c.labels {
                self.compose_project = l.get(COMPOSE_PROJECT).cloned();
                self.compose_service = l.get(COMPOSE_SERVICE).cloned();
            }
        }
        self.restart_count = i.restart_count.map(|n| n.max(0) as u64);
        if let Some(st) = &i.state {
            if let Some(s) = st.status {
                self.state = s.to_string();
            }
            self.oom_killed = st.oom_killed;
            self.pid = st.pid.filter(|&p| p > 0 && p <= i64::from(u32::MAX)).unwrap_or(0) as u32;
            self.started_at = st.started_at.as_deref().and_then(parse_time);
            self.health = st
                .health
                .as_ref()
                .and_then(|h| h.status)
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty() && s != "none");
        }
        if let Some(h) = &i.host_config {
            self.network_mode = h.network_mode.clone().unwrap_or_default();
            self.memory_limit = h.memory.unwrap_or(0);
            self.cpuset = h.cpuset_cpus.clone().filter(|s| !s.trim().is_empty());
        }
    }
}

/// Docker's timestamps (`2026-11-26T07:15:01.481318904Z`); the zero time
/// (`0001-01-01T00:00:00Z`, never started) is `None`.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    core_docker::parse_time(s).filter(|t| *t > SystemTime::UNIX_EPOCH)
}

/// A stats request's outcome for one container.
#[derive(Debug)]
pub enum Stats {
    Reading(Box<ContainerStatsResponse>),
    /// The container is gone (404) or stopped (an empty answer).
    Gone,
    Failed(String),
}

/// The engine connection and the runtime that drives it.
pub struct Engine {
    rt: tokio::runtime::Runtime,
    docker: Docker,
    host: String,
    timeout: Duration,
    /// Whether the API version has been agreed with the engine yet.
    negotiated: bool,
    /// The concurrency asked for (`--concurrency`), `None` to choose by the daemon.
    wanted_concurrency: Option<usize>,
    /// Requests in flight for list and inspect.
    concurrency: usize,
    /// Requests in flight for stats (more against a daemon that answers on a tick).
    stats_concurrency: usize,
    /// When this round's requests must all have been answered.
    deadline: Cell<Deadline>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("host", &self.host).finish()
    }
}

/// `now + d`, or far in the future when that cannot be held.
fn deadline_after(d: Duration) -> Deadline {
    let now = Deadline::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + homelab_core::args::MAX_DURATION)
}

impl Engine {
    /// A client for the engine at `host` (empty: the default, as for the docker
    /// CLI). Nothing is asked yet: the API version is negotiated by the first round
    /// ([`Engine::begin_round`]), so a loop started before dockerd keeps trying.
    /// `concurrency` is how many requests may be in flight; `None` chooses by the
    /// daemon (see [`DEFAULT_CONCURRENCY`] and [`OLD_DAEMON_CONCURRENCY`]).
    pub fn connect(host: &str, timeout: Duration, concurrency: Option<usize>) -> Result<Engine> {
        let host = core_docker::host_or_default(Some(host)).to_string();
        let rt = core_docker::runtime()?;
        let docker = core_docker::connect(&host, core_docker::MAX_RESPONSE_BYTES)?;
        let concurrency = concurrency.map(|c| c.max(1));
        Ok(Engine {
            rt,
            docker,
            host,
            timeout,
            negotiated: false,
            wanted_concurrency: concurrency,
            concurrency: concurrency.unwrap_or(DEFAULT_CONCURRENCY),
            stats_concurrency: concurrency.unwrap_or(DEFAULT_CONCURRENCY),
            deadline: Cell::new(deadline_after(timeout)),
        })
    }

    /// The engine's address, as used.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Starts a round: its requests share one deadline, `--timeout` from now. The
    /// first round also agrees the API version with the engine.
    pub fn begin_round(&mut self) -> Result<()> {
        self.deadline.set(deadline_after(self.timeout));
        if self.negotiated {
            return Ok(());
        }
        let docker = self
            .rt
            .block_on(within(
                self.deadline.get(),
                self.docker.clone().negotiate_version(),
            ))
            .map_err(|e| self.error("asking for its API version", &e))?;
        let v = docker.client_version();
        let waits_for_tick = (v.major_version, v.minor_version) < ONE_SHOT_AT_ONCE;
        self.stats_concurrency = self.wanted_concurrency.unwrap_or(if waits_for_tick {
            OLD_DAEMON_CONCURRENCY
        } else {
            DEFAULT_CONCURRENCY
        });
        self.docker = docker;
        self.negotiated = true;
        Ok(())
    }

    /// Moves the round's deadline `d` later: time spent waiting on our side (the CPU
    /// window) is not the engine's.
    pub fn extend_round(&self, d: Duration) {
        let t = self.deadline.get();
        self.deadline.set(t.checked_add(d).unwrap_or(t));
    }

    /// The fatal error for a failed request while `doing`.
    fn error(&self, doing: &str, e: &BollardError) -> Error {
        core_docker::engine_error(&self.host, doing, Some(self.timeout), e)
    }

    /// The API version in use after negotiation, e.g. `1.41`.
    pub fn api_version(&self) -> String {
        self.docker.client_version().to_string()
    }

    /// How many inspect and stats requests may be in flight at once.
    pub fn concurrency(&self) -> (usize, usize) {
        (self.concurrency, self.stats_concurrency)
    }

    /// Lists containers (`all`: stopped ones too) matching docker's `filters`.
    pub fn list(&self, all: bool, filters: &HashMap<String, Vec<String>>) -> Result<Vec<ContainerSummary>> {
        let opts = ListContainersOptions {
            all,
            filters: (!filters.is_empty()).then(|| filters.clone()),
            ..Default::default()
        };
        self.rt
            .block_on(within(
                self.deadline.get(),
                self.docker.list_containers(Some(opts)),
            ))
            .map_err(|e| match &e {
                BollardError::DockerResponseServerError {
                    status_code: 400,
                    message,
                } => Error::usage(format!("the Docker engine rejected the filter: {message}")).hint(
                    "use --docker-filter KEY=VALUE with a key docker ps knows (label, name, id, status, ...)",
                ),
                _ => self.error("listing containers", &e),
            })
    }

    /// Inspects each listed container, concurrently. A container that vanished
    /// since the list (404) is left out; other failures are noted in its record.
    /// A failure to reach the engine at all is fatal.
    pub fn inspect_all(&self, summaries: &[ContainerSummary]) -> Result<Vec<Meta>> {
        let docker = &self.docker;
        let deadline = self.deadline.get();
        let results: Vec<_> = self.rt.block_on(
            stream::iter(summaries.iter().map(|s| async move {
                let id = s.id.clone().unwrap_or_default();
                let r = within(deadline, docker.inspect_container(&id, None)).await;
                (s, r)
            }))
            .buffered(self.concurrency)
            .collect(),
        );
        let mut metas = Vec::with_capacity(results.len());
        for (s, r) in results {
            let mut meta = Meta::from_summary(s);
            match r {
                Ok(i) => meta.add_inspect(&i),
                Err(e) if is_not_found(&e) => continue,
                Err(e) if is_unreachable(&e) => return Err(self.error("inspecting containers", &e)),
                Err(e) => meta.errors.push(format!("inspecting the container: {e}")),
            }
            metas.push(meta);
        }
        Ok(metas)
    }

    /// Inspects one container again; `None` when it is gone.
    pub fn inspect(&self, meta: &Meta) -> Option<Meta> {
        let r = self.rt.block_on(within(
            self.deadline.get(),
            self.docker.inspect_container(&meta.full_id, None),
        ));
        match r {
            Ok(i) => {
                let mut m = meta.clone();
                m.add_inspect(&i);
                Some(m)
            }
            Err(e) if is_not_found(&e) => None,
            Err(_) => Some(meta.clone()),
        }
    }

    /// One-shot stats of each container, concurrently.
    pub fn stats_all(&self, ids: &[&str]) -> Vec<Stats> {
        let docker = &self.docker;
        let timeout = self.timeout;
        let deadline = self.deadline.get();
        self.rt.block_on(
            stream::iter(ids.iter().map(|id| async move {
                let opts = StatsOptions {
                    stream: false,
                    one_shot: true,
                };
                let mut s = docker.stats(id, Some(opts));
                match tokio::time::timeout_at(deadline, s.next()).await {
                    Err(_) => Stats::Failed(format!(
                        "stats: no answer within the round's {} (--timeout)",
                        humantime::format_duration(timeout)
                    )),
                    Ok(None) => Stats::Gone,
                    Ok(Some(Ok(r))) if crate::api::is_empty(&r) => Stats::Gone,
                    Ok(Some(Ok(r))) => Stats::Reading(Box::new(r)),
                    Ok(Some(Err(e))) if is_not_found(&e) => Stats::Gone,
                    Ok(Some(Err(e))) => Stats::Failed(format!("stats: {}", core_docker::describe(&e))),
                }
            }))
            .buffered(self.stats_concurrency)
            .collect(),
        )
    }
}

fn is_not_found(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError { status_code: 404, .. }
    )
}

/// Whether the error means the engine cannot be reached at all (as opposed to an
/// answer about one container).
fn is_unreachable(e: &BollardError) -> bool {
    !matches!(
        e,
        BollardError::DockerResponseServerError { .. } | BollardError::JsonDataError { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_times() {
        let t = parse_time("2026-11-26T07:15:01.481318904Z").unwrap();
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64();
        assert!((secs - 1_795_677_301.481).abs() < 0.001, "{secs}");
        assert_eq!(parse_time("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_time(""), None);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn inspect_fills_what_list_cannot() {
        let summary: ContainerSummary = serde_json::from_str(
            r#"{"Id":"81e4b933a09c5247e3e2b8d1a1047c0690f0114aa24e7c270452ef6a79255313","Names":["/web"],
                "Image":"sha256:abc","State":"running","Labels":{"com.docker.compose.project":"homelab"}}"#,
        )
        .unwrap();
        let mut m = Meta::from_summary(&summary);
        assert_eq!((m.name.as_str(), m.state.as_str()), ("web", "running"));
        assert_eq!(m.compose_project.as_deref(), Some("homelab"));
        let inspect: ContainerInspectResponse = serde_json::from_str(
            r#"{"Id":"81e4b933a09c5247e3e2b8d1a1047c0690f0114aa24e7c270452ef6a79255313","Name":"/web",
                "RestartCount":3,
                "State":{"Status":"running","Running":true,"OOMKilled":false,"Pid":4242,
                         "StartedAt":"2026-11-26T07:15:01.481318904Z","Health":{"Status":"healthy","FailingStreak":0}},
                "Config":{"Image":"nginx:1.27","Labels":{"com.docker.compose.project":"homelab","com.docker.compose.service":"web"}},
                "HostConfig":{"Memory":67108864,"CpusetCpus":"","NetworkMode":"none"}}"#,
        )
        .unwrap();
        m.add_inspect(&inspect);
        assert_eq!(m.image, "nginx:1.27");
        assert_eq!(m.compose_service.as_deref(), Some("web"));
        assert_eq!(m.restart_count, Some(3));
        assert_eq!(m.oom_killed, Some(false));
        assert_eq!(m.pid, 4242);
        assert_eq!(m.health.as_deref(), Some("healthy"));
        assert_eq!(m.memory_limit, 67_108_864);
        assert_eq!(m.cpuset, None);
        assert!(m.live());
    }
}
