//! Docker containers through the Engine API (bollard, API version negotiated, so
//! Docker 20.10's API 1.41 works): inspect, list by label, and update the cpuset
//! (`docker update --cpuset-cpus`). The runtime is tokio's current-thread one: the
//! calls are few and in sequence. The connection and the words for its failures are
//! homelab-core's (every answer capped at 16 MiB, each call bounded in time).

use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::ContainerUpdateBody;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};
use homelab_core::Exit;
use homelab_core::docker::{self as core_docker, DockerArgs, Failure, within};

use crate::cpulist::CpuList;
use crate::threads::Problem;

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
    /// How long one call may take (`--docker-timeout`).
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("host", &self.host).finish()
    }
}

impl Client {
    /// Connects and negotiates the API version (which also checks the engine answers).
    /// An empty `host` is the default socket, as for the docker CLI.
    pub fn connect(args: &DockerArgs) -> Result<Client, Problem> {
        let host = args.host().to_string();
        let timeout = args.timeout_or(core_docker::DEFAULT_TIMEOUT);
        let rt = core_docker::runtime().map_err(|e| Problem::new(e.code(), e.to_string()))?;
        let docker = core_docker::connect(&host, core_docker::MAX_RESPONSE_BYTES)
            .map_err(|e| Problem::new(e.code(), e.to_string()))?;
        let docker = rt
            .block_on(within(deadline(timeout), docker.negotiate_version()))
            .map_err(|e| problem(&host, "connecting", timeout, &e))?;
        Ok(Client {
            rt,
            docker,
            host,
            timeout,
        })
    }

    /// Inspects a container by name or id; None when there is no such container.
    pub fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>, Problem> {
        let r = self.rt.block_on(within(
            deadline(self.timeout),
            self.docker
                .inspect_container(name, None::<InspectContainerOptions>),
        ));
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
            .block_on(within(
                deadline(self.timeout),
                self.docker.list_containers(Some(opts)),
            ))
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
            .block_on(within(
                deadline(self.timeout),
                self.docker.update_container(id, body),
            ))
            .map_err(|e| self.failed(&format!("updating the cpuset of container {name}"), &e))
    }

    fn failed(&self, doing: &str, e: &BollardError) -> Problem {
        problem(&self.host, doing, self.timeout, e)
    }
}

/// When a call must have been answered.
fn deadline(timeout: Duration) -> tokio::time::Instant {
    tokio::time::Instant::now() + timeout
}

/// A failed call while `doing`: the engine's status codes where they say something
/// about the request (404 no such container, 400/409 refused), otherwise
/// homelab-core's words and exit code for an engine that cannot be used (77 with the
/// docker-group fix, 69 not there or no answer).
fn problem(host: &str, doing: &str, timeout: Duration, e: &BollardError) -> Problem {
    let failure = core_docker::classify(e);
    if let Failure::Status(status, message) = &failure {
        let code = match status {
            404 => Some((Exit::NoInput, "the container is gone")),
            401 | 403 => Some((Exit::NoPerm, core_docker::PERMISSION_HINT)),
            400 | 409 => Some((Exit::DataErr, "see the engine's log")),
            _ => None,
        };
        if let Some((code, hint)) = code {
            return Problem::new(
                code,
                format!("{doing} at {host}: the engine answered {status}: {message}: {hint}"),
            );
        }
    }
    let e = core_docker::failure_error(host, doing, Some(timeout), &failure);
    Problem::new(e.code(), e.to_string())
}
