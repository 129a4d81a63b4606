//! Docker containers through the Engine API (bollard, API version negotiated, so
//! Docker 20.10's API 1.41 works): inspect, list by label, and update the cpuset
//! (`docker update --cpuset-cpus`). The runtime is tokio's current-thread one: the
//! calls are few and in sequence.

use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::ContainerUpdateBody;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};
use homelab_core::Exit;

use crate::cpulist::CpuList;
use crate::threads::Problem;

/// Where the engine listens when neither --docker-host nor DOCKER_HOST says.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// How long one API call may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What cpu-pin needs to know of a container.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub id: String,
    /// The name without Docker's leading `/`.
    pub name: String,
    /// The main process on the host (None when the container is not running).
    pub pid: Option<u32>,
    /// `HostConfig.CpusetCpus`; empty when the container may use every CPU.
    pub cpuset: String,
}

pub struct Client {
    rt: tokio::runtime::Runtime,
    docker: Docker,
    host: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("host", &self.host).finish()
    }
}

impl Client {
    /// Connects and negotiates the API version (which also checks the engine answers).
    pub fn connect(host: &str) -> Result<Client, Problem> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Problem::new(Exit::Software, format!("starting the async runtime: {e}")))?;
        let unavailable = |what: String| {
            Problem::new(
                Exit::Unavailable,
                format!(
                    "cannot reach the Docker engine at {host}: {what}: start dockerd, or point --docker-host \
(DOCKER_HOST) at its socket"
                ),
            )
        };
        let docker = rt
            .block_on(async {
                let d = Docker::connect_with_host(host)?.with_timeout(TIMEOUT);
                d.negotiate_version().await
            })
            .map_err(|e| match classify(&e) {
                Exit::NoPerm => Problem::new(
                    Exit::NoPerm,
                    format!(
                        "connecting to the Docker engine at {host}: permission denied: run cpu-pin as root or \
as a member of the docker group"
                    ),
                ),
                _ => unavailable(describe(&e)),
            })?;
        Ok(Client {
            rt,
            docker,
            host: host.to_string(),
        })
    }

    /// Inspects a container by name or id; None when there is no such container.
    pub fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>, Problem> {
        let r = self.rt.block_on(
            self.docker
                .inspect_container(name, None::<InspectContainerOptions>),
        );
        match r {
            Ok(c) => Ok(Some(ContainerInfo {
                id: c.id.unwrap_or_default(),
                name: c
                    .name
                    .as_deref()
                    .unwrap_or(name)
                    .trim_start_matches('/')
                    .to_string(),
                pid: c
                    .state
                    .as_ref()
                    .filter(|s| s.running == Some(true))
                    .and_then(|s| s.pid)
                    .and_then(|p| u32::try_from(p).ok())
                    .filter(|&p| p > 0),
                cpuset: c.host_config.and_then(|h| h.cpuset_cpus).unwrap_or_default(),
            })),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(self.failed(&format!("inspecting container {name}"), &e)),
        }
    }

    /// The ids of the running containers, all of them or those with a label
    /// (`key` or `key=value`, as `docker ps --filter label=...`).
    pub fn running(&self, label: Option<&str>) -> Result<Vec<String>, Problem> {
        let filters =
            label.map(|l| std::collections::HashMap::from([("label".to_string(), vec![l.to_string()])]));
        let opts = ListContainersOptions {
            all: false,
            filters,
            ..Default::default()
        };
        let list = self
            .rt
            .block_on(self.docker.list_containers(Some(opts)))
            .map_err(|e| self.failed("listing containers", &e))?;
        let mut ids: Vec<String> = list.into_iter().filter_map(|c| c.id).collect();
        ids.sort();
        Ok(ids)
    }

    /// Sets the container's cpuset (`docker update --cpuset-cpus`).
    pub fn set_cpuset(&self, id: &str, name: &str, cpus: &CpuList) -> Result<(), Problem> {
        let body = ContainerUpdateBody {
            cpuset_cpus: Some(cpus.to_string()),
            ..Default::default()
        };
        self.rt
            .block_on(self.docker.update_container(id, body))
            .map_err(|e| self.failed(&format!("updating the cpuset of container {name}"), &e))
    }

    fn failed(&self, doing: &str, e: &BollardError) -> Problem {
        let code = classify(e);
        let hint = match code {
            Exit::NoInput => "the container is gone",
            Exit::NoPerm => "run cpu-pin as root or as a member of the docker group",
            Exit::Unavailable => "is dockerd running?",
            _ => "see the engine's log",
        };
        Problem::new(code, format!("{doing} at {}: {}: {hint}", self.host, describe(e)))
    }
}

/// The exit code an API error stands for.
fn classify(e: &BollardError) -> Exit {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => match status_code {
            404 => Exit::NoInput,
            401 | 403 => Exit::NoPerm,
            400 | 409 => Exit::DataErr,
            _ => Exit::Unavailable,
        },
        _ => {
            let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
            while let Some(s) = src {
                if let Some(io) = s.downcast_ref::<std::io::Error>()
                    && io.kind() == std::io::ErrorKind::PermissionDenied
                {
                    return Exit::NoPerm;
                }
                src = s.source();
            }
            Exit::Unavailable
        }
    }
}

/// An API error in one line, with its causes.
fn describe(e: &BollardError) -> String {
    let mut parts = vec![e.to_string()];
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        src = s.source();
    }
    parts.join(": ").replace('\n', " ")
}
