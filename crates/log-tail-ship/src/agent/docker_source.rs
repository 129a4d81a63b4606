//! The Docker source: the discovery thread's channel and the byte that wakes the main
//! loop, the containers it last listed, and each one's split-line joiner. The files
//! themselves are followed with the others ([`crate::files`]).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Duration;

use homelab_core::{Error, Exit, Result, Root};

use super::bookkeeping::{Bookkeeping, warn};
use crate::Cli;
use crate::docker::{self, ContainerInfo, Joiner, Update};

#[derive(Default)]
pub(super) struct DockerSource {
    rx: Option<Receiver<Update>>,
    wake: Option<UnixStream>,
    containers: HashMap<String, ContainerInfo>,
    joiners: HashMap<String, Joiner>,
    /// Lists of containers received from the discovery thread (the first included).
    pub lists: u64,
}

impl DockerSource {
    /// Starts the discovery thread and waits for its first answer, the containers: an
    /// engine that cannot be reached at start is an error (69); later it is retried.
    pub fn start(&mut self, cli: &Cli) -> Result<Vec<ContainerInfo>> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (wake_r, wake_w) = UnixStream::pair().map_err(|e| Error::io("creating a pipe", e))?;
        wake_r
            .set_nonblocking(true)
            .map_err(|e| Error::io("creating a pipe", e))?;
        let timeout = cli.docker_args.timeout_or(homelab_core::docker::DEFAULT_TIMEOUT);
        docker::spawn(cli.docker_args.clone(), cli.docker_filter.clone(), tx, wake_w);
        // The thread gives up on the engine after the timeout itself; this is a
        // backstop for a thread that never answers at all.
        let list = match rx.recv_timeout(timeout + Duration::from_secs(5)) {
            Ok(Update::Containers(list)) => list,
            Ok(Update::Unavailable(e)) => return Err(e),
            Err(_) => {
                return Err(Error::new(
                    Exit::Unavailable,
                    format!(
                        "no answer from the Docker engine at {} within {}",
                        cli.docker_args.host(),
                        humantime::format_duration(timeout)
                    ),
                ));
            }
        };
        self.rx = Some(rx);
        self.wake = Some(wake_r);
        self.lists = 1;
        Ok(list)
    }

    /// Whether the source runs (--docker).
    pub fn running(&self) -> bool {
        self.rx.is_some()
    }

    /// What wakes the main loop when the thread has news.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.wake.as_ref().map(AsFd::as_fd)
    }

    /// Takes the containers listed: returns their json-file log paths (real path →
    /// container id); those with another log driver are said once each.
    pub fn apply(
        &mut self,
        list: Vec<ContainerInfo>,
        root: &Root,
        book: &mut Bookkeeping,
    ) -> HashMap<PathBuf, String> {
        let mut paths = HashMap::new();
        for c in &list {
            match (&c.log_path, c.driver.as_str()) {
                (Some(p), "json-file" | "") => {
                    paths.insert(root.path(p), c.id.clone());
                }
                (_, driver) => {
                    if book.first_time(&c.id) {
                        let why = if driver == "local" {
                            "the local log driver, whose files are private to dockerd and unreadable by design".to_string()
                        } else {
                            format!("the {driver} log driver, which leaves no json-file to read")
                        };
                        book.error(format!(
                            "container {} uses {why}: its logs are not shipped; run it with --log-driver json-file \
                             --log-opt max-size=10m --log-opt max-file=3",
                            c.name
                        ));
                    }
                }
            }
        }
        self.containers = list.into_iter().map(|c| (c.id.clone(), c)).collect();
        paths
    }

    /// What the thread sent since: the latest list of containers, if any (the engine
    /// going away is said every so often).
    pub fn drain(&mut self, book: &mut Bookkeeping) -> Option<Vec<ContainerInfo>> {
        if let Some(w) = &mut self.wake {
            let mut b = [0u8; 64];
            while matches!(io::Read::read(w, &mut b), Ok(n) if n > 0) {}
        }
        let mut latest = None;
        let mut failure = None;
        if let Some(rx) = &self.rx {
            loop {
                match rx.try_recv() {
                    Ok(Update::Containers(l)) => {
                        self.lists += 1;
                        latest = Some(l);
                    }
                    Ok(Update::Unavailable(e)) => failure = Some(e),
                    Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
                }
            }
        }
        if let Some(e) = failure
            && book.warn_due("docker")
        {
            warn(&format!("{e}; retrying (files already known are still followed)"));
        }
        latest
    }

    /// A container's name and Compose service (empty if none), for its labels.
    pub fn names(&self, container: &str) -> (String, String) {
        match self.containers.get(container) {
            Some(c) => (c.name.clone(), c.compose_service.clone().unwrap_or_default()),
            None => (container.chars().take(12).collect(), String::new()),
        }
    }

    /// The joiner of a container's lines split by Docker.
    pub fn joiner(&mut self, container: &str) -> &mut Joiner {
        self.joiners.entry(container.to_string()).or_default()
    }
}
