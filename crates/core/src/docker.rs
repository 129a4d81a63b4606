//! Talking to the Docker engine, the same way in every tool that does (feature
//! `docker`): where it is (`DOCKER_HOST`, empty meaning unset as for the docker CLI),
//! a connection whose every response is capped in size, and one classification of
//! failures into exit codes and words ([`engine_error`]: 77 with the docker-group fix
//! for a socket the user may not open, 69 with "is dockerd running?" for one that is
//! not there, ...).
//!
//! bollard reads a whole response body into memory before decoding it, and its own
//! timeout covers only the response headers: an engine (or something pretending to
//! be one) that streams an endless `/containers/json` grew a tool to gigabytes. Here
//! each request gets a connection of its own whose reads are counted, and a response
//! longer than [`MAX_RESPONSE_BYTES`] fails with [`TooLarge`], which names the
//! endpoint. Time is bounded by the caller's deadline around the whole exchange
//! ([`within`]).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bollard::Docker;
use bollard::errors::Error as BollardError;
use hyper::header::{HOST, HeaderValue};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::exit::{Error, Exit};

/// Where the engine listens when neither the flag nor `DOCKER_HOST` says.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// The most any one response from the engine may be, headers and body: far above a
/// real answer (a list of a thousand containers is a few MiB), far below trouble.
pub const MAX_RESPONSE_BYTES: u64 = 16 << 20;

/// How [`MAX_RESPONSE_BYTES`] is written in messages and man pages.
pub const MAX_RESPONSE_TEXT: &str = "16 MiB";

/// The fix for a socket the user may not open, in the words every tool uses.
pub const PERMISSION_HINT: &str =
    "run as root or as a member of the docker group (sudo usermod -aG docker $USER, then log in again)";

/// The fix for an engine that is not there.
pub const START_HINT: &str = "is dockerd running? Point DOCKER_HOST (or --docker-host) at its socket";

/// How long the Docker requests of one round may take together when a tool's
/// `--docker-timeout` is not given (route-check takes its `--timeout` instead).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the engine is and how long to wait for it: the same flags in every tool
/// that talks to Docker (global, so a tool with subcommands takes them on either
/// side).
#[derive(Debug, Clone, clap::Args)]
pub struct DockerArgs {
    /// The Docker engine's address: unix:///path/to/docker.sock or tcp://host:port
    /// (empty means the default socket; not looked up under --root)
    #[arg(
        long,
        value_name = "URL",
        env = "DOCKER_HOST",
        default_value = DEFAULT_HOST,
        global = true,
        help_heading = "Docker options"
    )]
    pub docker_host: String,

    /// Give up on the Docker engine after DURATION (whether that bounds a round of
    /// requests or each call is in the tool's man page); at most 10y [default: 10s;
    /// route-check: its --timeout]
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = crate::args::parse_interval,
        global = true,
        help_heading = "Docker options"
    )]
    pub docker_timeout: Option<Duration>,
}

impl Default for DockerArgs {
    fn default() -> Self {
        DockerArgs {
            docker_host: DEFAULT_HOST.to_string(),
            docker_timeout: None,
        }
    }
}

impl DockerArgs {
    /// The address to connect to ([`host_or_default`]).
    pub fn host(&self) -> &str {
        host_or_default(Some(&self.docker_host))
    }

    /// `--docker-timeout`, else `fallback`.
    pub fn timeout_or(&self, fallback: Duration) -> Duration {
        self.docker_timeout.unwrap_or(fallback)
    }
}

/// Which containers: `--docker-filter KEY=VALUE`, as `docker ps --filter`
/// (`--filter` is its old name, kept as an alias).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Only containers matching KEY=VALUE, as docker ps --filter (label=KEY,
    /// label=KEY=VALUE, name=REGEX, id=PREFIX, status=STATUS, ...); repeatable, with
    /// docker's rules: different keys must all match, repeated label filters too,
    /// repeated name, id or status filters match any of their values
    #[arg(
        long = "docker-filter",
        alias = "filter",
        value_name = "KEY=VALUE",
        value_parser = parse_filter,
        help_heading = "Docker options"
    )]
    pub docker_filter: Vec<(String, String)>,
}

impl FilterArgs {
    /// The filters as the API wants them: each key with all its values.
    pub fn by_key(&self) -> HashMap<String, Vec<String>> {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in &self.docker_filter {
            m.entry(k.clone()).or_default().push(v.clone());
        }
        m
    }
}

/// Parses `KEY=VALUE` for `--docker-filter`: a key and a value, both non-empty.
pub fn parse_filter(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !v.is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!(
            "expected KEY=VALUE, e.g. label=com.docker.compose.project=homelab or name=web (not {s:?})"
        )),
    }
}

/// Docker's timestamps, RFC 3339 with up to nine fraction digits
/// (`2026-11-26T07:15:01.481318904Z`).
pub fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()
}

/// The runtime a tool runs its Docker requests on: current-thread, with I/O and
/// time, as a command-line tool needs no more.
pub fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))
}

/// The engine's address as given (`--docker-host` or `DOCKER_HOST`): empty means
/// unset, as the docker CLI reads it.
pub fn host_or_default(host: Option<&str>) -> &str {
    match host.map(str::trim) {
        Some(h) if !h.is_empty() => h,
        _ => DEFAULT_HOST,
    }
}

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
}

/// Parses `unix:///path` or `tcp://host:port` (`http://` too); anything else is a
/// configuration error (78).
pub fn parse_host(host: &str) -> Result<Address, Error> {
    let bad = || {
        Error::config(format!(
            "DOCKER_HOST {host:?} is not a Docker address this tool supports"
        ))
        .hint("use unix:///path/to/docker.sock or tcp://host:port")
    };
    if let Some(path) = host.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return Err(bad());
        }
        return Ok(Address::Unix(PathBuf::from(path)));
    }
    let rest = host
        .strip_prefix("tcp://")
        .or_else(|| host.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '@', ' ']) {
        return Err(bad());
    }
    // Docker's default plain-TCP port when none is given.
    let with_port = match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.ends_with(':') && p.parse::<u16>().is_ok() => {
            authority.to_string()
        }
        _ if authority.starts_with('[') && authority.ends_with(']') => format!("{authority}:2375"),
        _ if !authority.contains(':') => format!("{authority}:2375"),
        _ => return Err(bad()),
    };
    Ok(Address::Tcp(with_port))
}

/// A response that went past [`MAX_RESPONSE_BYTES`]; found in the error chain of
/// the request by [`engine_error`].
#[derive(Debug, Clone)]
pub struct TooLarge {
    /// The endpoint, without the API version (`/containers/json`).
    pub endpoint: String,
    pub limit: u64,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "more than {} for {}", MAX_RESPONSE_TEXT, self.endpoint)
    }
}

impl std::error::Error for TooLarge {}

/// A stream whose reads fail once more than `limit` bytes came in.
struct Capped<S> {
    inner: S,
    read: u64,
    too_large: Arc<TooLarge>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Capped<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.read = this.read.saturating_add((buf.filled().len() - before) as u64);
                if this.read > this.too_large.limit {
                    return Poll::Ready(Err(io::Error::other(TooLarge::clone(&this.too_large))));
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Capped<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The endpoint of a request path, without bollard's `/v1.41` prefix.
fn endpoint(path: &str) -> String {
    let rest = path.strip_prefix("/v").and_then(|r| {
        let end = r.find('/')?;
        r[..end]
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
            .then(|| &r[end..])
    });
    rest.unwrap_or(path).to_string()
}

/// One request on a connection of its own, its response capped at `limit` bytes.
async fn exchange(
    address: Arc<Address>,
    limit: u64,
    mut req: bollard::BollardRequest,
) -> Result<hyper::Response<hyper::body::Incoming>, BollardError> {
    let too_large = Arc::new(TooLarge {
        endpoint: endpoint(req.uri().path()),
        limit,
    });
    // The request line carries the path only; the engine wants a Host header.
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    *req.uri_mut() = target
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| BollardError::IOError {
            err: io::Error::new(io::ErrorKind::InvalidInput, e.to_string()),
        })?;
    let host = match &*address {
        Address::Unix(_) => HeaderValue::from_static("docker"),
        Address::Tcp(a) => HeaderValue::from_str(a).unwrap_or_else(|_| HeaderValue::from_static("docker")),
    };
    req.headers_mut().insert(HOST, host);
    let io: Box<dyn Stream> = match &*address {
        Address::Unix(p) => match tokio::net::UnixStream::connect(p).await {
            Ok(s) => Box::new(s),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BollardError::SocketNotFoundError(p.display().to_string()));
            }
            Err(e) => return Err(e.into()),
        },
        Address::Tcp(a) => Box::new(tokio::net::TcpStream::connect(a.as_str()).await?),
    };
    let io = hyper_util::rt::TokioIo::new(Capped {
        inner: io,
        read: 0,
        too_large,
    });
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    // The connection is driven until the response body is read or dropped, or,
    // for exec's attached stream, handed over as an upgraded connection.
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender.send_request(req).await?)
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A client for the engine at `host` (see [`host_or_default`]) whose responses are
/// capped at `limit` bytes ([`MAX_RESPONSE_BYTES`] unless a test says otherwise;
/// `u64::MAX` for streams as long as their source, such as an event stream or an
/// exec's output, which arrives on the upgraded connection).
/// Nothing is sent yet; call `negotiate_version` within a deadline next. Requests
/// need a tokio runtime with I/O and time enabled.
pub fn connect(host: &str, limit: u64) -> Result<Docker, Error> {
    let address = Arc::new(parse_host(host)?);
    let transport = move |req: bollard::BollardRequest| exchange(Arc::clone(&address), limit, req);
    Docker::connect_with_custom_transport(
        transport,
        Some("http://docker"),
        // bollard's own timeout (response headers only); callers bound the whole
        // exchange with their own deadline.
        crate::args::MAX_DURATION.as_secs(),
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(|e| engine_error(host, "connecting", None, &e))
}

/// A few plain `GET`s from synchronous code, for a tool that reads the answers
/// itself (route-check's lenient structs; unversioned paths, so any engine answers in
/// its own API version): the same capped connection as [`connect`], and one deadline
/// for all the requests together, set when the client is made.
pub struct Getter {
    rt: tokio::runtime::Runtime,
    address: Arc<Address>,
    host: String,
    limit: u64,
    timeout: Duration,
    deadline: tokio::time::Instant,
}

impl Getter {
    /// A client for the engine at `host` ([`host_or_default`]) whose answers are
    /// capped at `limit` bytes and which gives up `timeout` from now.
    pub fn new(host: &str, timeout: Duration, limit: u64) -> Result<Getter, Error> {
        let host = host_or_default(Some(host)).to_string();
        let address = Arc::new(parse_host(&host)?);
        Ok(Getter {
            rt: runtime()?,
            address,
            host,
            limit,
            timeout,
            deadline: tokio::time::Instant::now() + timeout,
        })
    }

    /// The engine's address, as used.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `GET path` while `doing` (for the words of an error): the status and the body.
    pub fn get(&self, path: &str, doing: &str) -> Result<(u16, Vec<u8>), Error> {
        let req = hyper::Request::get(path)
            .header(hyper::header::ACCEPT, "application/json")
            .body(bollard::body_full(hyper::body::Bytes::new()))
            .map_err(|e| Error::bug(format!("building GET {path}: {e}")))?;
        let address = Arc::clone(&self.address);
        let limit = self.limit;
        let r = self.rt.block_on(within(self.deadline, async move {
            let resp = exchange(address, limit, req).await?;
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            let mut out = Vec::new();
            while let Some(frame) =
                std::future::poll_fn(|cx| hyper::body::Body::poll_frame(Pin::new(&mut body), cx)).await
            {
                if let Ok(data) = frame?.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Ok((status, out))
        }));
        r.map_err(|e| engine_error(&self.host, doing, Some(self.timeout), &e))
    }
}

/// Runs a request future until `deadline`; past it, bollard's timeout error.
pub async fn within<T>(
    deadline: tokio::time::Instant,
    f: impl Future<Output = Result<T, BollardError>>,
) -> Result<T, BollardError> {
    tokio::time::timeout_at(deadline, f)
        .await
        .unwrap_or(Err(BollardError::RequestTimeoutError))
}

/// What a failed request was about, for the exit code and the words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The socket may not be opened (77).
    PermissionDenied,
    /// Nothing listens there (69).
    NotThere(String),
    /// No answer before the deadline (69).
    TimedOut,
    /// An answer longer than the cap (69).
    TooLarge(TooLarge),
    /// The engine answered with an error status (69 unless the caller knows better).
    Status(u16, String),
    /// An address of a kind no tool supports (78).
    BadAddress(String),
    /// Anything else: the connection broke, the answer was not Docker's (69).
    Other(String),
}

impl PartialEq for TooLarge {
    fn eq(&self, other: &Self) -> bool {
        self.endpoint == other.endpoint && self.limit == other.limit
    }
}
impl Eq for TooLarge {}

/// Classifies any error from the Docker API: by bollard's variant where it says
/// enough, else by the `io::Error` (and its kind) in the chain of causes.
pub fn classify(e: &BollardError) -> Failure {
    use io::ErrorKind;
    match e {
        BollardError::SocketNotFoundError(path) => return Failure::NotThere(format!("no socket at {path}")),
        BollardError::UnsupportedURISchemeError { uri } => return Failure::BadAddress(uri.clone()),
        BollardError::RequestTimeoutError => return Failure::TimedOut,
        BollardError::DockerResponseServerError { status_code, message } => {
            return Failure::Status(*status_code, message.trim().to_string());
        }
        _ => {}
    }
    // bollard's I/O and hyper variants are `transparent`: their source() skips the
    // wrapped error itself, so start from it.
    let mut cur: Option<&(dyn std::error::Error + 'static)> = match e {
        BollardError::IOError { err } => Some(err),
        BollardError::HyperResponseError { err } => Some(err),
        _ => Some(e),
    };
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<TooLarge>() {
            return Failure::TooLarge(t.clone());
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if let Some(t) = io.get_ref().and_then(|i| i.downcast_ref::<TooLarge>()) {
                return Failure::TooLarge(t.clone());
            }
            match io.kind() {
                ErrorKind::PermissionDenied => return Failure::PermissionDenied,
                ErrorKind::NotFound | ErrorKind::ConnectionRefused => {
                    return Failure::NotThere(crate::exit::describe_io(io));
                }
                ErrorKind::TimedOut => return Failure::TimedOut,
                _ => {}
            }
        }
        cur = err.source();
    }
    Failure::Other(describe(e))
}

/// An error and its causes in one line, without repeats.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![];
    let mut cur = Some(e);
    while let Some(err) = cur {
        let t = match err.downcast_ref::<io::Error>() {
            Some(io) => crate::exit::describe_io(io),
            None => err.to_string(),
        };
        if !t.is_empty() && !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = err.source();
    }
    parts.join(": ").replace(['\n', '\r'], " ")
}

/// A fatal error about the engine at `host` while `doing` (e.g. "listing
/// containers"), with its exit code and what to do: 77 and the docker-group fix for
/// permission denied, 69 for an engine that is not there, does not answer within
/// `timeout`, answers too much or fails, 78 for an address no tool supports.
pub fn engine_error(host: &str, doing: &str, timeout: Option<Duration>, e: &BollardError) -> Error {
    failure_error(host, doing, timeout, &classify(e))
}

/// [`engine_error`] for an already classified failure.
pub fn failure_error(host: &str, doing: &str, timeout: Option<Duration>, f: &Failure) -> Error {
    let at = format!("the Docker engine at {host}");
    match f {
        Failure::PermissionDenied => {
            Error::new(Exit::NoPerm, format!("permission denied connecting to {at}")).hint(PERMISSION_HINT)
        }
        Failure::NotThere(why) => {
            Error::new(Exit::Unavailable, format!("cannot connect to {at}: {why}")).hint(START_HINT)
        }
        Failure::TimedOut => {
            let within = timeout
                .map(|t| format!(" within {}", humantime::format_duration(t)))
                .unwrap_or_default();
            Error::new(
                Exit::Unavailable,
                format!("{at} did not answer{within} while {doing}"),
            )
            .hint("check that dockerd is healthy, or raise --docker-timeout")
        }
        Failure::TooLarge(t) => Error::new(Exit::Unavailable, format!("{at} sent {t} while {doing}"))
            .hint("check that DOCKER_HOST points at a Docker engine, and dockerd's log"),
        Failure::Status(code, message) => Error::new(
            Exit::Unavailable,
            format!("{at} answered {code} while {doing}: {message}"),
        )
        .hint("check dockerd's log"),
        Failure::BadAddress(uri) => Error::config(format!(
            "DOCKER_HOST {uri:?} is not a Docker address this tool supports"
        ))
        .hint("use unix:///path/to/docker.sock or tcp://host:port"),
        Failure::Other(why) => {
            Error::new(Exit::Unavailable, format!("{at} failed while {doing}: {why}")).hint(START_HINT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_docker_host_is_unset() {
        assert_eq!(host_or_default(None), DEFAULT_HOST);
        assert_eq!(host_or_default(Some("")), DEFAULT_HOST);
        assert_eq!(host_or_default(Some("  ")), DEFAULT_HOST);
        assert_eq!(host_or_default(Some("tcp://h:1")), "tcp://h:1");
    }

    #[test]
    fn filters_and_times() {
        assert_eq!(
            parse_filter("label=a=b").unwrap(),
            ("label".to_string(), "a=b".to_string())
        );
        for bad in ["nonsense", "=x", "label=", " =x"] {
            assert!(
                parse_filter(bad).unwrap_err().contains("expected KEY=VALUE"),
                "{bad}"
            );
        }
        let f = FilterArgs {
            docker_filter: vec![("name".into(), "a".into()), ("name".into(), "b".into())],
        };
        assert_eq!(f.by_key()["name"], ["a", "b"]);
        let t = parse_time("2019-01-01T11:11:11.111111111Z").unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos(),
            1_546_341_071_111_111_111
        );
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_host("unix:///run/d.sock").unwrap(),
            Address::Unix("/run/d.sock".into())
        );
        assert_eq!(
            parse_host("tcp://127.0.0.1:2375").unwrap(),
            Address::Tcp("127.0.0.1:2375".into())
        );
        assert_eq!(
            parse_host("tcp://docker").unwrap(),
            Address::Tcp("docker:2375".into())
        );
        assert_eq!(
            parse_host("tcp://[::1]:5").unwrap(),
            Address::Tcp("[::1]:5".into())
        );
        for bad in [
            "",
            "ftp://x",
            "unix://relative",
            "tcp://",
            "tcp://u:p@h:1",
            "ssh://h",
        ] {
            assert_eq!(parse_host(bad).unwrap_err().code(), Exit::Config, "{bad}");
        }
    }

    #[test]
    fn endpoints_lose_the_api_version() {
        assert_eq!(endpoint("/v1.41/containers/json"), "/containers/json");
        assert_eq!(endpoint("/version"), "/version");
        assert_eq!(endpoint("/v1.53/containers/abc/json"), "/containers/abc/json");
    }

    #[test]
    fn failures_map_to_exit_codes_and_words() {
        let io = |k| BollardError::IOError {
            err: io::Error::from(k),
        };
        let e = engine_error("unix:///s", "x", None, &io(io::ErrorKind::PermissionDenied));
        assert_eq!(e.code(), Exit::NoPerm);
        assert!(e.to_string().contains("usermod -aG docker"), "{e}");
        let e = engine_error("unix:///s", "x", None, &io(io::ErrorKind::NotFound));
        assert_eq!(e.code(), Exit::Unavailable);
        assert!(e.to_string().contains("is dockerd running?"), "{e}");
        let e = engine_error(
            "unix:///s",
            "listing containers",
            Some(Duration::from_secs(2)),
            &BollardError::RequestTimeoutError,
        );
        assert_eq!(
            e.what(),
            "the Docker engine at unix:///s did not answer within 2s while listing containers"
        );
        let big = io::Error::other(TooLarge {
            endpoint: "/containers/json".into(),
            limit: MAX_RESPONSE_BYTES,
        });
        let e = engine_error(
            "unix:///s",
            "listing containers",
            None,
            &BollardError::IOError { err: big },
        );
        assert_eq!(
            e.what(),
            "the Docker engine at unix:///s sent more than 16 MiB for /containers/json while listing containers"
        );
        let e = engine_error(
            "ftp://x",
            "x",
            None,
            &BollardError::UnsupportedURISchemeError {
                uri: "ftp://x".into(),
            },
        );
        assert_eq!(e.code(), Exit::Config);
    }
}
