//! The Docker engine, through its API (bollard on a current-thread tokio runtime):
//! `pg_dump -Fc` run in a container without a TTY (a TTY would turn `\n` into
//! `\r\n` and corrupt the binary dump) and streamed in, and pausing containers for
//! the time of a snapshot.

use std::io::Write;

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures_util::StreamExt;
use homelab_core::docker::DockerArgs;
use homelab_core::{Error, Exit, Result, docker};

pub struct Engine {
    rt: tokio::runtime::Runtime,
    docker: Docker,
    host: String,
    /// `--docker-timeout`: for each request, not for pg_dump's whole output.
    timeout: std::time::Duration,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Engine")
    }
}

fn api_error(
    host: &str,
    what: &str,
    container: &str,
    timeout: Option<std::time::Duration>,
    e: bollard::errors::Error,
) -> Error {
    match &e {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message,
        } => Error::new(Exit::NoInput, format!("{what} {container}: {message}"))
            .hint("check the container's name with: docker ps"),
        bollard::errors::Error::DockerResponseServerError { message, .. } => {
            Error::new(Exit::Unavailable, format!("{what} {container}: {message}"))
        }
        _ => docker::engine_error(host, &format!("{what} {container}"), timeout, &e),
    }
}

impl Engine {
    /// Connects to the engine `--docker-host` names (empty means the default); each
    /// request but pg_dump's stream has `--docker-timeout` (default 10 s).
    pub fn connect(args: &DockerArgs) -> Result<Engine> {
        let host = args.host().to_string();
        let timeout = args.timeout_or(docker::DEFAULT_TIMEOUT);
        let rt = docker::runtime()?;
        // Uncapped: pg_dump's output through exec is as long as the database.
        let client = docker::connect(&host, u64::MAX)?;
        let client = rt
            .block_on(async {
                let deadline = tokio::time::Instant::now() + timeout;
                docker::within(deadline, client.negotiate_version()).await
            })
            .map_err(|e| docker::engine_error(&host, "connecting", Some(timeout), &e))?;
        Ok(Engine {
            rt,
            docker: client,
            host,
            timeout,
        })
    }

    fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.timeout
    }

    pub fn pause(&self, container: &str) -> Result<()> {
        self.rt
            .block_on(docker::within(
                self.deadline(),
                self.docker.pause_container(container),
            ))
            .map_err(|e| api_error(&self.host, "pausing", container, Some(self.timeout), e))
    }

    pub fn unpause(&self, container: &str) -> Result<()> {
        self.rt
            .block_on(docker::within(
                self.deadline(),
                self.docker.unpause_container(container),
            ))
            .map_err(|e| api_error(&self.host, "unpausing", container, Some(self.timeout), e))
    }

    /// Runs `pg_dump -Fc -U USER DATABASE` in `container` and writes its standard
    /// output to `out` as it arrives. Fails when pg_dump exits non-zero (with its
    /// standard error in the message).
    pub fn pg_dump(&self, container: &str, database: &str, user: &str, out: &mut dyn Write) -> Result<()> {
        self.rt.block_on(async {
            let exec = self
                .docker
                .create_exec(
                    container,
                    CreateExecOptions {
                        cmd: Some(vec!["pg_dump", "-Fc", "-U", user, "--", database]),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        attach_stdin: Some(false),
                        tty: Some(false),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| api_error(&self.host, "running pg_dump in", container, None, e))?;
            let started = self
                .docker
                .start_exec(
                    &exec.id,
                    Some(StartExecOptions {
                        detach: false,
                        tty: false,
                        output_capacity: Some(1 << 20),
                    }),
                )
                .await
                .map_err(|e| api_error(&self.host, "running pg_dump in", container, None, e))?;
            let StartExecResults::Attached { mut output, .. } = started else {
                return Err(Error::bug("pg_dump started detached"));
            };
            let mut stderr = Vec::new();
            while let Some(item) = output.next().await {
                match item
                    .map_err(|e| api_error(&self.host, "reading pg_dump's output from", container, None, e))?
                {
                    bollard::container::LogOutput::StdOut { message } => {
                        out.write_all(&message).map_err(|e| {
                            Error::io(format!("storing pg_dump's output from {container}"), e)
                        })?;
                    }
                    bollard::container::LogOutput::StdErr { message } if stderr.len() < 64 * 1024 => {
                        stderr.extend_from_slice(&message);
                    }
                    _ => {}
                }
            }
            let inspect = self
                .docker
                .inspect_exec(&exec.id)
                .await
                .map_err(|e| api_error(&self.host, "inspecting pg_dump in", container, None, e))?;
            match inspect.exit_code {
                Some(0) => Ok(()),
                code => Err(Error::new(
                    Exit::Unavailable,
                    format!(
                        "pg_dump {database} in {container} failed (exit {}): {}",
                        code.map_or("unknown".into(), |c| c.to_string()),
                        String::from_utf8_lossy(&stderr).trim()
                    ),
                )),
            }
        })
    }
}

/// Containers paused for a snapshot; unpaused when dropped, on every path out
/// (success, error, SIGTERM/SIGINT handled by create).
pub struct Paused<'a> {
    engine: &'a Engine,
    containers: Vec<String>,
}

impl<'a> Paused<'a> {
    pub fn pause_all(engine: &'a Engine, names: &[String]) -> Result<Paused<'a>> {
        let mut p = Paused {
            engine,
            containers: Vec::new(),
        };
        for n in names {
            engine.pause(n)?;
            p.containers.push(n.clone());
        }
        Ok(p)
    }

    /// Unpauses now; errors are returned (the drop cannot return them).
    pub fn release(mut self) -> Result<()> {
        let mut first = None;
        for c in std::mem::take(&mut self.containers) {
            if let Err(e) = self.engine.unpause(&c) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        for c in std::mem::take(&mut self.containers) {
            if let Err(e) = self.engine.unpause(&c) {
                eprintln!("backup-snap: could not unpause {c}: {e}: run docker unpause {c}");
            }
        }
    }
}
