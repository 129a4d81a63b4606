//! The Docker source: containers discovered through the Docker API (a thread with a
//! current-thread tokio runtime, since bollard is async), their json-file logs read
//! directly from `LogPath`, and the parser for json-file entries, which rejoins lines
//! Docker split at 16 KiB.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::Sender;
use std::time::{Duration, UNIX_EPOCH};

use homelab_core::docker::{DockerArgs, FilterArgs};
use serde::Deserialize;

/// What the discovery thread knows about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub compose_service: Option<String>,
    /// `LogPath` as the engine reports it (empty for drivers other than json-file).
    pub log_path: Option<String>,
    pub driver: String,
}

/// From the discovery thread to the main loop.
#[derive(Debug)]
pub enum Update {
    /// Every matching container, running or stopped, after each change.
    Containers(Vec<ContainerInfo>),
    /// The engine cannot be reached (the thread keeps trying), with core's exit code
    /// and words (77 and the docker-group fix for a socket the user may not open).
    Unavailable(homelab_core::Error),
}

/// One json-file entry: `{"log":"...","stream":"stdout","time":"2026-...Z"}`.
#[derive(Debug, Deserialize)]
struct RawEntry<'a> {
    #[serde(borrow, default)]
    log: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stream: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    time: Option<Cow<'a, str>>,
}

/// A parsed json-file entry.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub log: Cow<'a, str>,
    pub stream: Stream,
    /// Docker's `time` in Unix nanoseconds.
    pub time_ns: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout = 0,
    Stderr = 1,
    Other = 2,
}

impl Stream {
    pub fn label(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::Other => "",
        }
    }
}

/// Parses one line of a json-file log; None when it is not such an entry.
pub fn parse(line: &[u8]) -> Option<Entry<'_>> {
    let raw: RawEntry = serde_json::from_slice(line).ok()?;
    let stream = match raw.stream.as_deref() {
        Some("stdout") => Stream::Stdout,
        Some("stderr") => Stream::Stderr,
        _ => Stream::Other,
    };
    Some(Entry {
        log: raw.log.unwrap_or(Cow::Borrowed("")),
        stream,
        time_ns: raw.time.as_deref().and_then(parse_time),
    })
}

/// Docker's timestamp ([`homelab_core::docker::parse_time`]) in Unix ns.
pub fn parse_time(s: &str) -> Option<u64> {
    let t = homelab_core::docker::parse_time(s)?;
    u64::try_from(t.duration_since(UNIX_EPOCH).ok()?.as_nanos()).ok()
}

/// Rejoins split entries per stream: a `log` without a trailing newline continues in
/// the next entry of the same stream. Keeps at most `max` bytes of a joined line.
#[derive(Debug, Default)]
pub struct Joiner {
    parts: [Vec<u8>; 3],
    cut: [bool; 3],
}

/// A complete line out of the joiner.
#[derive(Debug, PartialEq, Eq)]
pub struct Joined<'a> {
    pub line: Cow<'a, [u8]>,
    /// Longer than `max`: the rest was dropped.
    pub cut: bool,
}

impl Joiner {
    /// Feeds one entry; returns the line it completes, if any.
    pub fn feed<'a>(&mut self, e: &'a Entry<'a>, max: usize) -> Option<Joined<'a>> {
        let s = e.stream as usize;
        let text = e.log.as_bytes();
        let (body, complete) = match text.strip_suffix(b"\n") {
            Some(b) => (b, true),
            None => (text, false),
        };
        if complete && self.parts[s].is_empty() && !self.cut[s] {
            return Some(Joined {
                line: Cow::Borrowed(body),
                cut: false,
            });
        }
        let room = max.saturating_sub(self.parts[s].len());
        if body.len() > room {
            self.cut[s] = true;
        }
        self.parts[s].extend_from_slice(&body[..body.len().min(room)]);
        if !complete {
            return None;
        }
        let line = std::mem::take(&mut self.parts[s]);
        let cut = std::mem::take(&mut self.cut[s]);
        Some(Joined {
            line: Cow::Owned(line),
            cut,
        })
    }

    /// Whether no stream has a line in progress.
    pub fn idle(&self) -> bool {
        self.parts.iter().all(Vec::is_empty) && !self.cut.iter().any(|c| *c)
    }
}

/// Starts the discovery thread: lists the containers (all, with the filters), then
/// lists again after each container event; reconnects with a pause when the engine
/// goes away. Each result goes to `tx`, and a byte to `wake` wakes the main loop.
pub fn spawn(engine: DockerArgs, filter: FilterArgs, tx: Sender<Update>, mut wake: UnixStream) {
    std::thread::spawn(move || {
        let rt = match homelab_core::docker::runtime() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = tx.send(Update::Unavailable(e));
                let _ = wake.write_all(b"d");
                return;
            }
        };
        rt.block_on(async move {
            let mut pause = Duration::from_millis(500);
            loop {
                match follow(&engine, &filter, &tx, &mut wake).await {
                    Ok(()) => pause = Duration::from_millis(500),
                    Err(e) => {
                        if tx.send(Update::Unavailable(e)).is_err() {
                            return;
                        }
                        let _ = wake.write_all(b"d");
                        pause = (pause * 2).min(Duration::from_secs(30));
                    }
                }
                tokio::time::sleep(pause).await;
            }
        });
    });
}

/// The container events after which the containers are listed again.
const LIST_AGAIN_ON: &[&str] = &["create", "start", "restart", "die", "destroy", "rename"];

async fn follow(
    engine: &DockerArgs,
    filter: &FilterArgs,
    tx: &Sender<Update>,
    wake: &mut UnixStream,
) -> Result<(), homelab_core::Error> {
    use futures_util::StreamExt;
    use homelab_core::docker::{DEFAULT_TIMEOUT, MAX_RESPONSE_BYTES, connect, engine_error, within};
    let host = engine.host();
    let timeout = engine.timeout_or(DEFAULT_TIMEOUT);
    let fail = |doing: &str, e: bollard::errors::Error| engine_error(host, doing, Some(timeout), &e);
    let deadline = || tokio::time::Instant::now() + timeout;
    let pairs = &filter.docker_filter;
    // Lists and inspects are capped in size and time; the event stream is long by
    // nature.
    let docker = within(deadline(), connect(host, MAX_RESPONSE_BYTES)?.negotiate_version())
        .await
        .map_err(|e| fail("connecting", e))?;
    let stream = within(deadline(), connect(host, u64::MAX)?.negotiate_version())
        .await
        .map_err(|e| fail("connecting", e))?;
    // Only the events that change which containers there are, their names or their
    // logs: a health check is an exec (exec_create, exec_start, exec_die) and a
    // health_status, every interval of every container with a HEALTHCHECK, and each
    // would otherwise cost a list and an inspect of every container.
    let mut event_filters = HashMap::new();
    event_filters.insert("type".to_string(), vec!["container".to_string()]);
    event_filters.insert(
        "event".to_string(),
        LIST_AGAIN_ON.iter().map(|e| e.to_string()).collect(),
    );
    for (k, v) in pairs.iter().filter(|(k, _)| k == "label") {
        event_filters
            .entry(k.clone())
            .or_insert_with(Vec::new)
            .push(v.clone());
    }
    let mut events = stream.events(Some(bollard::query_parameters::EventsOptions {
        filters: Some(event_filters),
        ..Default::default()
    }));
    let send = |list: Vec<ContainerInfo>, wake: &mut UnixStream| -> Result<(), homelab_core::Error> {
        tx.send(Update::Containers(list))
            .map_err(|_| homelab_core::Error::bug("the main loop is gone"))?;
        let _ = wake.write_all(b"d");
        Ok(())
    };
    send(
        within(deadline(), list(&docker, filter))
            .await
            .map_err(|e| fail("listing containers", e))?,
        wake,
    )?;
    while let Some(ev) = events.next().await {
        ev.map_err(|e| fail("following container events", e))?;
        send(
            within(deadline(), list(&docker, filter))
                .await
                .map_err(|e| fail("listing containers", e))?,
            wake,
        )?;
    }
    Ok(())
}

async fn list(
    docker: &bollard::Docker,
    filter: &FilterArgs,
) -> Result<Vec<ContainerInfo>, bollard::errors::Error> {
    let summaries = docker
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filter.by_key()),
            ..Default::default()
        }))
        .await?;
    let mut out = Vec::new();
    for s in summaries {
        let Some(id) = s.id else { continue };
        // A container removed between the list and the inspect is simply skipped.
        let Ok(c) = docker.inspect_container(&id, None).await else {
            continue;
        };
        let labels = c
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        out.push(ContainerInfo {
            name: c
                .name
                .as_deref()
                .unwrap_or(&id)
                .trim_start_matches('/')
                .to_string(),
            compose_service: labels.get("com.docker.compose.service").cloned(),
            log_path: c.log_path.filter(|p| !p.is_empty()),
            driver: c
                .host_config
                .and_then(|h| h.log_config)
                .and_then(|l| l.typ)
                .unwrap_or_default(),
            id,
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_and_times() {
        let e = parse(br#"{"log":"hello \u003cworld\u003e\n","stream":"stderr","time":"2019-01-01T11:11:11.111111111Z"}"#)
            .unwrap();
        assert_eq!(e.log, "hello <world>\n");
        assert_eq!(e.stream, Stream::Stderr);
        assert_eq!(e.time_ns, Some(1_546_341_071_111_111_111));
        let e = parse(br#"{"log":"x\n","stream":"stdout","time":"2026-11-26T06:00:00.8443515Z"}"#).unwrap();
        assert_eq!(e.time_ns, Some(1_795_672_800_844_351_500));
        let e = parse(br#"{"stream":"stdout","attrs":{"tag":"a"},"time":"garbage"}"#).unwrap();
        assert_eq!((e.log.as_ref(), e.time_ns), ("", None));
        assert!(parse(b"not json").is_none());
        assert!(parse(br#"{"log":"unterminated"#).is_none());
        assert!(parse(b"\xff\xfe").is_none());
    }

    #[test]
    fn joins_split_lines_per_stream_and_caps_them() {
        let mut j = Joiner::default();
        let a = parse(br#"{"log":"aaaa","stream":"stdout"}"#).unwrap();
        let e = parse(br#"{"log":"err\n","stream":"stderr"}"#).unwrap();
        let b = parse(br#"{"log":"bb\n","stream":"stdout"}"#).unwrap();
        assert_eq!(j.feed(&a, 100), None);
        assert!(!j.idle());
        assert_eq!(j.feed(&e, 100).unwrap().line.as_ref(), b"err");
        let got = j.feed(&b, 100).unwrap();
        assert_eq!((got.line.as_ref(), got.cut), (&b"aaaabb"[..], false));
        assert!(j.idle());
        assert_eq!(j.feed(&a, 3), None);
        let got = j.feed(&b, 3).unwrap();
        assert_eq!((got.line.as_ref(), got.cut), (&b"aaa"[..], true));
    }
}
