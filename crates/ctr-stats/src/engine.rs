//! The Docker engine through bollard: finding containers (list), what Docker knows
//! about each (inspect: state, health, restarts, OOM kills, main pid, limits), and
//! one-shot stats. The API version is negotiated, so Debian's Docker 20.10 (API
//! 1.41) and current Docker both answer. Requests run concurrently on a
//! current-thread runtime, a few at a time, each with a timeout.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, SystemTime};

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerInspectResponse, ContainerStatsResponse, ContainerSummary};
use bollard::query_parameters::{ListContainersOptions, StatsOptions};
use futures_util::{StreamExt, stream};
use homelab_core::{Error, Exit, Result};

/// Where the engine listens when DOCKER_HOST is not set.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

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
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
        .ok()
        .filter(|t| *t > SystemTime::UNIX_EPOCH)
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
    /// Requests in flight for list and inspect.
    concurrency: usize,
    /// Requests in flight for stats (more against a daemon that answers on a tick).
    stats_concurrency: usize,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("host", &self.host).finish()
    }
}

impl Engine {
    /// Connects to `host` and negotiates the API version. `concurrency` is how many
    /// requests may be in flight; `None` chooses by the daemon (see
    /// [`DEFAULT_CONCURRENCY`] and [`OLD_DAEMON_CONCURRENCY`]).
    pub fn connect(host: &str, timeout: Duration, concurrency: Option<usize>) -> Result<Engine> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the async runtime", e))?;
        let docker = {
            let _guard = rt.enter();
            Docker::connect_with_host(host)
                .map_err(|e| engine_error(host, timeout, "connecting", &e))?
                .with_timeout(timeout)
        };
        let docker = rt
            .block_on(with_timeout(timeout, docker.negotiate_version()))
            .map_err(|e| engine_error(host, timeout, "asking for its API version", &e))?;
        let v = docker.client_version();
        let waits_for_tick = (v.major_version, v.minor_version) < ONE_SHOT_AT_ONCE;
        let stats_concurrency = concurrency.unwrap_or(if waits_for_tick {
            OLD_DAEMON_CONCURRENCY
        } else {
            DEFAULT_CONCURRENCY
        });
        Ok(Engine {
            rt,
            docker,
            host: host.to_string(),
            timeout,
            concurrency: concurrency.unwrap_or(DEFAULT_CONCURRENCY).max(1),
            stats_concurrency: stats_concurrency.max(1),
        })
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
            .block_on(with_timeout(
                self.timeout,
                self.docker.list_containers(Some(opts)),
            ))
            .map_err(|e| match &e {
                BollardError::DockerResponseServerError {
                    status_code: 400,
                    message,
                } => Error::usage(format!("the Docker engine rejected the filter: {message}"))
                    .hint("use --filter KEY=VALUE with a key docker ps knows (label, name, id, status, ...)"),
                _ => engine_error(&self.host, self.timeout, "listing containers", &e),
            })
    }

    /// Inspects each listed container, concurrently. A container that vanished
    /// since the list (404) is left out; other failures are noted in its record.
    /// A failure to reach the engine at all is fatal.
    pub fn inspect_all(&self, summaries: &[ContainerSummary]) -> Result<Vec<Meta>> {
        let docker = &self.docker;
        let timeout = self.timeout;
        let results: Vec<_> = self.rt.block_on(
            stream::iter(summaries.iter().map(|s| async move {
                let id = s.id.clone().unwrap_or_default();
                let r = with_timeout(timeout, docker.inspect_container(&id, None)).await;
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
                Err(e) if is_unreachable(&e) => {
                    return Err(engine_error(
                        &self.host,
                        self.timeout,
                        "inspecting containers",
                        &e,
                    ));
                }
                Err(e) => meta.errors.push(format!("inspecting the container: {e}")),
            }
            metas.push(meta);
        }
        Ok(metas)
    }

    /// Inspects one container again; `None` when it is gone.
    pub fn inspect(&self, meta: &Meta) -> Option<Meta> {
        let r = self.rt.block_on(with_timeout(
            self.timeout,
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
        self.rt.block_on(
            stream::iter(ids.iter().map(|id| async move {
                let opts = StatsOptions {
                    stream: false,
                    one_shot: true,
                };
                let mut s = docker.stats(id, Some(opts));
                match tokio::time::timeout(timeout, s.next()).await {
                    Err(_) => Stats::Failed(format!(
                        "stats: no answer within {}",
                        humantime::format_duration(timeout)
                    )),
                    Ok(None) => Stats::Gone,
                    Ok(Some(Ok(r))) if crate::api::is_empty(&r) => Stats::Gone,
                    Ok(Some(Ok(r))) => Stats::Reading(Box::new(r)),
                    Ok(Some(Err(e))) if is_not_found(&e) => Stats::Gone,
                    Ok(Some(Err(e))) => Stats::Failed(format!("stats: {e}")),
                }
            }))
            .buffered(self.stats_concurrency)
            .collect(),
        )
    }
}

/// Runs a request future with a timeout (bollard's own covers only the headers).
async fn with_timeout<T>(
    timeout: Duration,
    f: impl Future<Output = std::result::Result<T, BollardError>>,
) -> std::result::Result<T, BollardError> {
    tokio::time::timeout(timeout, f)
        .await
        .unwrap_or(Err(BollardError::RequestTimeoutError))
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

/// The `io::Error` somewhere in an error's chain of causes.
fn io_cause(e: &BollardError) -> Option<&std::io::Error> {
    if let BollardError::IOError { err } = e {
        return Some(err);
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}

/// A fatal engine error with its exit code (69 unreachable, 77 permission denied)
/// and what to do.
pub fn engine_error(host: &str, timeout: Duration, doing: &str, e: &BollardError) -> Error {
    use std::io::ErrorKind;
    let at = format!("the Docker engine at {host}");
    let start_it = "is dockerd running? Point DOCKER_HOST (or --docker-host) at its socket";
    match e {
        BollardError::SocketNotFoundError(path) => {
            Error::new(Exit::Unavailable, format!("cannot connect to {at}: no socket at {path}")).hint(start_it)
        }
        BollardError::UnsupportedURISchemeError { uri } => Error::config(format!(
            "DOCKER_HOST {uri:?} is not a Docker address this tool supports"
        ))
        .hint("use unix:///path/to/docker.sock or tcp://host:port"),
        BollardError::RequestTimeoutError => Error::new(
            Exit::Unavailable,
            format!("{at} did not answer within {} while {doing}", humantime::format_duration(timeout)),
        )
        .hint("check that dockerd is healthy, or raise --timeout"),
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => Error::new(
            Exit::Unavailable,
            format!("{at} answered {status_code} while {doing}: {}", message.trim()),
        )
        .hint("check dockerd's log"),
        _ => match io_cause(e).map(|io| io.kind()) {
            Some(ErrorKind::PermissionDenied) => Error::new(
                Exit::NoPerm,
                format!("permission denied connecting to {at}"),
            )
            .hint("run as root or as a member of the docker group (sudo usermod -aG docker $USER, then log in again)"),
            Some(ErrorKind::NotFound) | Some(ErrorKind::ConnectionRefused) => {
                Error::new(Exit::Unavailable, format!("cannot connect to {at}: {e}")).hint(start_it)
            }
            _ => Error::new(Exit::Unavailable, format!("{at} failed while {doing}: {e}")).hint(start_it),
        },
    }
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

    #[test]
    fn errors_map_to_exit_codes() {
        let t = Duration::from_secs(1);
        let e = engine_error(
            "unix:///nope",
            t,
            "x",
            &BollardError::SocketNotFoundError("/nope".into()),
        );
        assert_eq!(e.code(), Exit::Unavailable);
        assert!(e.to_string().contains("DOCKER_HOST"), "{e}");
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = engine_error("unix:///s", t, "x", &BollardError::IOError { err: io });
        assert_eq!(e.code(), Exit::NoPerm);
        assert!(e.to_string().contains("docker group"), "{e}");
        let e = engine_error(
            "ftp://x",
            t,
            "x",
            &BollardError::UnsupportedURISchemeError {
                uri: "ftp://x".into(),
            },
        );
        assert_eq!(e.code(), Exit::Config);
        let e = engine_error("unix:///s", t, "listing", &BollardError::RequestTimeoutError);
        assert_eq!(e.code(), Exit::Unavailable);
    }
}
