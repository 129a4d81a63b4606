//! log-tail-ship: rotation-safe log tailing with noise filters, shipped to Loki (or
//! stdout) without losing a line.
//!
//! Sources: files (`--file`, [`files`] and [`tail`]), Docker json-file logs
//! ([`docker`]) and stdin ([`stdin`]). Each line goes through [`pipeline`] (filters,
//! rate limit, truncation) into a [`sink`]. The [`agent`] runs the loop: it sleeps on
//! inotify, stdin, the Docker thread and the signal pipe, and moves the
//! acknowledged offsets in the [`positions`] file only when the sink accepted a batch.

pub mod agent;
pub mod docker;
pub mod files;
pub mod journal;
pub mod json;
pub mod metrics;
pub mod pipeline;
pub mod positions;
pub mod rotation;
pub mod sink;
pub mod stdin;
pub mod tail;
pub mod text;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use homelab_core::args::{OutputArgs, RootArgs, examples_help, parse_duration, parse_interval};
use homelab_core::docker::{DockerArgs, FilterArgs};
use homelab_core::{Error, Exit, Format, Result};

pub const TOOL: &str = "log-tail-ship";

/// Examples shown by `--help` and in the man page.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "Ship the journal and every app log to Loki, remembering positions, with metrics for node_exporter",
        "log-tail-ship --journal --file '/var/log/app/*.log' --loki http://loki:3100 --positions /var/lib/log-tail-ship/positions.json --textfile-dir /var/lib/prometheus/node-exporter --label job=varlogs",
    ),
    (
        "Every Docker container's logs, without health-check noise",
        "log-tail-ship --docker --loki http://loki:3100 --positions /var/lib/log-tail-ship/docker.json --drop 'GET /health'",
    ),
    (
        "Only the containers of one compose project",
        "log-tail-ship --docker --docker-filter label=com.docker.compose.project=homelab --loki http://loki:3100",
    ),
    (
        "The systemd journal, resuming after the last entry Loki acknowledged",
        "log-tail-ship --journal --loki http://loki:3100 --positions /var/lib/log-tail-ship/journal.json",
    ),
    (
        "Look at what would be shipped, as JSON lines",
        "log-tail-ship --file '/var/log/app/*.log' --from-beginning --once --stdout | jq -r .line",
    ),
    (
        "From cron: ship what is new since the last run, then exit",
        "log-tail-ship --journal --file '/var/log/app/*.log' --positions /var/lib/log-tail-ship/cron.json --once --quiet --loki http://loki:3100",
    ),
    (
        "Grafana Cloud style: tenant and basic auth, the password from a file",
        "log-tail-ship --journal --loki https://logs.example.net --tenant homelab --basic-auth-user 12345 --basic-auth-password-file /etc/log-tail-ship/password",
    ),
];

/// The hand-written man page sections (OUTPUT, METRICS, ...), in roff.
pub const MAN_SECTIONS: &str = include_str!("../man.roff");

#[derive(Debug, Parser)]
#[command(
    name = "log-tail-ship",
    version,
    about = "Follow log files, Docker json-file logs, the systemd journal and stdin through rotations and restarts, drop noise, ship to Loki without losing a line",
    long_about = "Follows log files (--file), Docker containers' json-file logs (--docker), the systemd journal (--journal) \
and standard input (--stdin), through rename and copytruncate rotation, deletion and restarts; filters and rate-limits lines; and ships them to \
Loki's push API (--loki) or as JSON lines to standard output (--stdout).\n\n\
With --positions, the offset of each file (and the journal's cursor) that the sink has acknowledged is kept on disk, so a crash or restart \
sends again at most the unacknowledged window, with identical timestamps (which Loki drops as duplicates). \
While Loki is unreachable or answers 429/5xx, the batch is retried with backoff for as long as it takes (with \
--once, up to --once-timeout, then exit 75) and reading pauses: memory stays bounded and nothing is dropped.\n\n\
It runs until SIGINT or SIGTERM (then pushes what it holds and saves the positions; exit 75 if Loki has not \
acknowledged every line), or with --once until every source is read to its current end. With only --stdin it ends \
at the end of its input.",
    after_long_help = examples_help(EXAMPLES),
)]
pub struct Cli {
    /// Follow files matching GLOB (repeatable); re-scanned, so files that appear later
    /// are picked up. Label `filename`
    #[arg(long = "file", value_name = "GLOB", help_heading = "Sources")]
    pub files: Vec<String>,

    /// Follow Docker containers' json-file logs (running and stopped ones, as they come
    /// and go). Labels `container`, `compose_service`, `stream`
    #[arg(long, help_heading = "Sources")]
    pub docker: bool,

    #[command(flatten)]
    pub docker_filter: FilterArgs,

    #[command(flatten)]
    pub docker_args: DockerArgs,

    /// Read lines from standard input (a pipe: no position is kept)
    #[arg(long, help_heading = "Sources")]
    pub stdin: bool,

    /// Follow the systemd journal through journalctl, resuming after the last entry
    /// Loki acknowledged. Labels `unit`, `syslog_identifier`, `priority`, `job=journal`
    #[arg(long, help_heading = "Sources")]
    pub journal: bool,

    /// Read the journal files in DIR instead of the system journal (implies --journal)
    #[arg(long, value_name = "DIR", help_heading = "Sources")]
    pub journal_dir: Option<PathBuf>,

    /// The journalctl to run for --journal
    #[arg(
        long,
        value_name = "PATH",
        env = "LOG_TAIL_SHIP_JOURNALCTL",
        default_value = "journalctl",
        help_heading = "Sources"
    )]
    pub journalctl: PathBuf,

    /// Read files found at the first start from their beginning, not their end
    #[arg(long, help_heading = "Sources")]
    pub from_beginning: bool,

    /// Read every source to its current end, ship, save the positions and exit (for cron)
    #[arg(long, help_heading = "Sources")]
    pub once: bool,

    /// With --once: give up (exit 75) when a batch has not been accepted after retrying
    /// this long; the positions keep what was not shipped for the next run
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_interval, help_heading = "Sources")]
    pub once_timeout: Duration,

    /// Keep the acknowledged offset of every file in PATH (written atomically)
    #[arg(
        long,
        value_name = "PATH",
        env = "LOG_TAIL_SHIP_POSITIONS",
        help_heading = "Positions"
    )]
    pub positions: Option<PathBuf>,

    /// Write the positions file at most this often (and on shutdown, and at once when a
    /// file appears or is truncated)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_interval, help_heading = "Positions")]
    pub sync_interval: Duration,

    /// While writes come one after another, gather their events this long before a
    /// look at the files written (at most 1s): fewer, larger reads, each line up to this
    /// much later; a write after a quiet spell is read at once
    #[arg(long, value_name = "DURATION", default_value = "50ms", value_parser = parse_gather, help_heading = "Sources")]
    pub gather: Duration,

    /// Ship only lines matching REGEX (repeatable: any of them)
    #[arg(long, value_name = "REGEX", help_heading = "Processing")]
    pub keep: Vec<String>,

    /// Drop lines matching REGEX (repeatable: any of them)
    #[arg(long, value_name = "REGEX", help_heading = "Processing")]
    pub drop: Vec<String>,

    /// Cut longer lines to this many bytes, with a marker (Loki's default limit is 256 KiB)
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024, value_parser = clap::value_parser!(u64).range(64..=64 * 1024 * 1024), help_heading = "Processing")]
    pub max_line_bytes: u64,

    /// Ship at most this many lines per second per stream; the rest are dropped and counted
    #[arg(long, value_name = "LINES_PER_S", help_heading = "Processing")]
    pub rate: Option<f64>,

    /// Lines a stream may send at once above --rate (default: one second's worth)
    #[arg(long, value_name = "N", requires = "rate", help_heading = "Processing")]
    pub burst: Option<f64>,

    /// Add a static label to every stream (repeatable). `host` is set from the host
    /// name unless given here; an empty value removes a label
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_pair, help_heading = "Processing")]
    pub label: Vec<(String, String)>,

    /// Ship to Loki at this base URL (pushes to /loki/api/v1/push)
    #[arg(
        long,
        value_name = "URL",
        env = "LOG_TAIL_SHIP_LOKI_URL",
        help_heading = "Sinks"
    )]
    pub loki: Option<String>,

    /// Write JSON lines (kind: line) to standard output instead (wins over
    /// LOG_TAIL_SHIP_LOKI_URL and HOMELAB_FORMAT from the environment)
    #[arg(long, help_heading = "Sinks")]
    pub stdout: bool,

    /// Push a batch when it holds this many bytes
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..=64 * 1024 * 1024), help_heading = "Sinks")]
    pub batch_bytes: u64,

    /// Push a batch at the latest this long after its first line
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration, help_heading = "Sinks")]
    pub batch_wait: Duration,

    /// Loki tenant (X-Scope-OrgID header)
    #[arg(long, value_name = "ID", env = "LOG_TAIL_SHIP_TENANT", help_heading = "Sinks")]
    pub tenant: Option<String>,

    /// Basic auth user; the password comes from --basic-auth-password-file or the
    /// environment variable LOG_TAIL_SHIP_LOKI_PASSWORD
    #[arg(
        long,
        value_name = "USER",
        env = "LOG_TAIL_SHIP_LOKI_USER",
        help_heading = "Sinks"
    )]
    pub basic_auth_user: Option<String>,

    /// File holding the basic auth password
    #[arg(long, value_name = "PATH", help_heading = "Sinks")]
    pub basic_auth_password_file: Option<PathBuf>,

    /// File holding a bearer token (or set LOG_TAIL_SHIP_LOKI_BEARER_TOKEN)
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "basic_auth_user",
        help_heading = "Sinks"
    )]
    pub bearer_token_file: Option<PathBuf>,

    /// Time limit of one push request
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_interval, help_heading = "Sinks")]
    pub timeout: Duration,

    /// Longest pause between two push attempts (backoff starts at 500ms and doubles)
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_interval, help_heading = "Sinks")]
    pub max_backoff: Duration,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub root: RootArgs,
}

pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// A `--gather` duration: at most a second (a line may wait that much longer).
fn parse_gather(s: &str) -> std::result::Result<Duration, String> {
    let d = parse_duration(s)?;
    if d > Duration::from_secs(1) {
        return Err(format!(
            "{s} is longer than 1s (lines would wait that long to be read)"
        ));
    }
    Ok(d)
}

/// `KEY=VALUE`.
fn parse_pair(s: &str) -> std::result::Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
    if k.is_empty() {
        return Err(format!("{s:?} has an empty key"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// A Loki label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn valid_label(k: &str) -> bool {
    let mut c = k.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// The checks clap cannot make.
pub fn validate(cli: &Cli) -> Result<()> {
    if cli.files.is_empty() && !cli.docker && !cli.stdin && !cli.journal && cli.journal_dir.is_none() {
        return Err(Error::usage("no source").hint("give --file GLOB, --docker, --journal or --stdin"));
    }
    if cli.loki.is_none() && !cli.stdout {
        return Err(Error::usage("no sink").hint("give --loki URL or --stdout"));
    }
    if cli.loki.is_some() && cli.stdout {
        return Err(Error::usage("--loki and --stdout are two sinks").hint("give one of them"));
    }
    if cli.stdout && cli.output.quiet {
        return Err(Error::usage("--stdout and --quiet contradict each other"));
    }
    if cli.stdout && cli.output.format.is_some_and(|f| f != Format::Jsonl) {
        return Err(Error::usage(
            "--stdout writes JSON lines: leave --format at jsonl",
        ));
    }
    for (k, _) in &cli.label {
        if !valid_label(k) {
            return Err(Error::usage(format!(
                "--label {k:?}: a label name is letters, digits and _, not starting with a digit"
            )));
        }
    }
    if let Some(url) = &cli.loki {
        LokiUrl::parse(url)?;
    }
    if let Some(r) = cli.rate
        && !(r.is_finite() && r > 0.0)
    {
        return Err(Error::usage(
            "--rate must be a positive number of lines per second",
        ));
    }
    Ok(())
}

/// The `--loki` URL, checked: http or https, a host, and no `user:password@` left in
/// it (taken out as basic auth), so it can be printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LokiUrl {
    /// The base URL without credentials and without a trailing `/`.
    pub base: String,
    /// `user:password@` from the URL, percent-decoded.
    pub credentials: Option<(String, String)>,
}

impl LokiUrl {
    pub fn parse(raw: &str) -> Result<LokiUrl> {
        // The URL is never echoed: it may hold a password.
        let bad = |why: String| {
            Error::usage(format!("--loki: {why}"))
                .hint("give Loki's base URL, e.g. http://loki:3100 or https://logs.example.net")
        };
        let mut url = url::Url::parse(raw.trim()).map_err(|e| bad(format!("not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad(format!(
                "expected http:// or https://, not {}://",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("the URL has no host".into()));
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let credentials = (!url.username().is_empty() || url.password().is_some())
            .then(|| (decode(url.username()), decode(url.password().unwrap_or(""))));
        let _ = url.set_username("");
        let _ = url.set_password(None);
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad(format!(
                "{} has a query or a fragment; the push path is added to the base URL",
                url.as_str()
            )));
        }
        Ok(LokiUrl {
            base: url.as_str().trim_end_matches('/').to_string(),
            credentials,
        })
    }
}

/// Where a `--file` pattern is looked for: an absolute one under --root, a relative one
/// in the working directory (never under --root), as a glob pattern.
pub fn file_pattern(root: &homelab_core::Root, given: &str) -> Result<String> {
    use std::path::{Component, Path};
    if Path::new(given).is_absolute() {
        return Ok(root.path(given).to_string_lossy().into_owned());
    }
    let cwd = std::env::current_dir()
        .map_err(|e| Error::io(format!("--file {given:?}: finding the working directory"), e))?;
    let rel: PathBuf = Path::new(given)
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect();
    Ok(format!(
        "{}/{}",
        glob::Pattern::escape(cwd.to_string_lossy().trim_end_matches('/')),
        rel.to_string_lossy()
    ))
}

/// The credentials for Loki, from files, the environment or the URL.
pub fn auth(cli: &Cli) -> Result<sink::Auth> {
    let from_url = match &cli.loki {
        Some(u) => LokiUrl::parse(u)?.credentials,
        None => None,
    };
    if let Some((user, password)) = from_url {
        if cli.basic_auth_user.is_some()
            || cli.basic_auth_password_file.is_some()
            || cli.bearer_token_file.is_some()
        {
            return Err(
                Error::config("--loki has user:password@ and a credentials flag is given too")
                    .hint("give the credentials one way"),
            );
        }
        return Ok(sink::Auth::Basic { user, password });
    }
    if let Some(user) = &cli.basic_auth_user {
        let password = match &cli.basic_auth_password_file {
            Some(p) => homelab_core::fs::read_secret(p, "--basic-auth-password-file")?,
            None => env_var("LOKI_PASSWORD").ok_or_else(|| {
                Error::config("--basic-auth-user needs a password")
                    .hint("give --basic-auth-password-file or set LOG_TAIL_SHIP_LOKI_PASSWORD")
            })?,
        };
        return Ok(sink::Auth::Basic {
            user: user.clone(),
            password,
        });
    }
    if cli.basic_auth_password_file.is_some() {
        return Err(Error::usage("--basic-auth-password-file needs --basic-auth-user"));
    }
    if let Some(p) = &cli.bearer_token_file {
        return Ok(sink::Auth::Bearer(homelab_core::fs::read_secret(
            p,
            "--bearer-token-file",
        )?));
    }
    if let Some(t) = env_var("LOKI_BEARER_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok(sink::Auth::Bearer(t.trim().to_string()));
    }
    Ok(sink::Auth::None)
}

/// `LOG_TAIL_SHIP_<name>`, or its older spelling `LOGSHIP_<name>` (still read, so
/// unit files and compose files written for earlier versions keep working).
fn env_var(name: &str) -> Option<String> {
    std::env::var(format!("LOG_TAIL_SHIP_{name}"))
        .or_else(|_| std::env::var(format!("LOGSHIP_{name}")))
        .ok()
}

/// Fills flags left unset from the older `LOGSHIP_` variables (clap reads only the
/// `LOG_TAIL_SHIP_` ones).
fn legacy_env(mut cli: Cli) -> Cli {
    let old = |name: &str| std::env::var(format!("LOGSHIP_{name}")).ok();
    cli.positions = cli.positions.or_else(|| old("POSITIONS").map(PathBuf::from));
    cli.loki = cli.loki.or_else(|| old("LOKI_URL"));
    cli.tenant = cli.tenant.or_else(|| old("TENANT"));
    cli.basic_auth_user = cli.basic_auth_user.or_else(|| old("LOKI_USER"));
    cli
}

/// An explicit `--stdout` wins over defaults from the environment that do not fit it
/// (`HOMELAB_FORMAT=text`, `LOG_TAIL_SHIP_LOKI_URL`): only flags typed together conflict.
/// `matches` are the command line's, to tell typed values from the environment's.
pub fn settle_env_defaults(cli: &mut Cli, matches: Option<&clap::ArgMatches>) {
    use clap::parser::ValueSource;
    let typed = |id: &str| matches.is_none_or(|m| m.value_source(id) == Some(ValueSource::CommandLine));
    if cli.stdout && typed("stdout") {
        if !typed("format") {
            cli.output.format = Some(Format::Jsonl);
        }
        if !typed("loki") {
            cli.loki = None;
        }
    }
}

/// Raises the soft limit of open files to the hard one: each followed file holds a
/// descriptor, and the usual soft limit (1024) is far below what the system allows.
pub fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

pub fn run(cli: Cli) -> Result<Exit> {
    let mut cli = legacy_env(cli);
    // Only a --stdout that meets a format or a Loki URL needs to know where each came
    // from: the second parse is skipped otherwise (it costs a start under qemu).
    if cli.stdout && (cli.output.format.is_some_and(|f| f != Format::Jsonl) || cli.loki.is_some()) {
        let matches = command().try_get_matches_from(std::env::args_os()).ok();
        settle_env_defaults(&mut cli, matches.as_ref());
    }
    validate(&cli)?;
    raise_open_file_limit();
    let mut agent = agent::Agent::new(&cli)?;
    agent.run()?;
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn needs_a_source_and_a_sink() {
        let p = |a: &[&str]| Cli::try_parse_from(a).unwrap();
        let e = validate(&p(&["l", "--stdout"])).unwrap_err();
        assert_eq!((e.code(), e.what()), (Exit::Usage, "no source"));
        let e = validate(&p(&["l", "--stdin"])).unwrap_err();
        assert_eq!(e.what(), "no sink");
        assert!(validate(&p(&["l", "--stdin", "--stdout"])).is_ok());
        assert!(validate(&p(&["l", "--journal", "--stdout"])).is_ok());
        assert!(validate(&p(&["l", "--journal-dir", "/j", "--stdout"])).is_ok());
        assert!(validate(&p(&["l", "--stdin", "--stdout", "--quiet"])).is_err());
        assert!(validate(&p(&["l", "--stdin", "--loki", "loki:3100"])).is_err());
        assert!(validate(&p(&["l", "--stdin", "--stdout", "--label", "1x=y"])).is_err());
        let both = p(&["l", "--stdin", "--stdout", "--loki", "http://x"]);
        assert_eq!(validate(&both).unwrap_err().code(), Exit::Usage);
        assert!(Cli::try_parse_from(["l", "--label", "novalue"]).is_err());
    }

    #[test]
    fn loki_urls_are_checked_and_their_credentials_taken_out() {
        let u = LokiUrl::parse("https://12345:p%40ss@logs.example.net/").unwrap();
        assert_eq!(u.base, "https://logs.example.net");
        assert_eq!(u.credentials, Some(("12345".into(), "p@ss".into())));
        let u = LokiUrl::parse("http://[::1]:3100").unwrap();
        assert_eq!((u.base.as_str(), u.credentials), ("http://[::1]:3100", None));
        for bad in [
            "http://[::1",
            "https://",
            "http://",
            "loki:3100",
            "ftp://x",
            "http://u:secret@x/?a=1",
        ] {
            let e = LokiUrl::parse(bad).unwrap_err();
            assert_eq!(e.code(), Exit::Usage, "{bad}");
            assert!(!e.to_string().contains("secret"), "{e}");
        }
    }

    #[test]
    fn an_explicit_stdout_wins_over_environment_defaults() {
        let args = ["l", "--stdin", "--stdout"];
        let m = command().try_get_matches_from(args).unwrap();
        let mut cli = Cli::try_parse_from(args).unwrap();
        // As if HOMELAB_FORMAT=text and LOGSHIP_LOKI_URL were set.
        cli.output.format = Some(Format::Text);
        cli.loki = Some("http://loki:3100".into());
        settle_env_defaults(&mut cli, Some(&m));
        assert_eq!(
            (cli.output.format, cli.loki.as_deref()),
            (Some(Format::Jsonl), None)
        );
        assert!(validate(&cli).is_ok());
        // Typed together, they still conflict.
        let args = ["l", "--stdin", "--stdout", "--format", "text"];
        let m = command().try_get_matches_from(args).unwrap();
        let mut cli = Cli::try_parse_from(args).unwrap();
        settle_env_defaults(&mut cli, Some(&m));
        assert_eq!(validate(&cli).unwrap_err().code(), Exit::Usage);
    }
}
