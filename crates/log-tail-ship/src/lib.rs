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

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use homelab_core::args::{OutputArgs, RootArgs, examples_help, parse_duration, parse_interval};
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
While Loki is unreachable or answers 429/5xx, the batch is retried with backoff for as long as it takes and \
reading pauses: memory stays bounded and nothing is dropped.\n\n\
It runs until SIGINT or SIGTERM (then pushes what it holds and saves the positions), or with --once until every \
source is read to its current end. With only --stdin it ends at the end of its input.",
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

    /// Only containers matching this Docker API filter (repeatable), e.g.
    /// label=com.docker.compose.project=homelab, name=web
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_pair, help_heading = "Sources")]
    pub docker_filter: Vec<(String, String)>,

    /// Docker engine address
    #[arg(
        long,
        value_name = "URL",
        env = "DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock",
        help_heading = "Sources"
    )]
    pub docker_host: String,

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

    /// Write JSON lines (kind: line) to standard output instead
    #[arg(long, conflicts_with = "loki", help_heading = "Sinks")]
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

/// Reads a secret from a file (first line, trimmed).
fn read_secret(path: &std::path::Path, what: &str) -> Result<String> {
    let s = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {what} {}", path.display()), e))?;
    let s = s.lines().next().unwrap_or("").trim().to_string();
    if s.is_empty() {
        return Err(Error::config(format!("{what} {} is empty", path.display())));
    }
    Ok(s)
}

/// The checks clap cannot make.
pub fn validate(cli: &Cli) -> Result<()> {
    if cli.files.is_empty() && !cli.docker && !cli.stdin && !cli.journal && cli.journal_dir.is_none() {
        return Err(Error::usage("no source").hint("give --file GLOB, --docker, --journal or --stdin"));
    }
    if cli.loki.is_none() && !cli.stdout {
        return Err(Error::usage("no sink").hint("give --loki URL or --stdout"));
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
    if let Some(url) = &cli.loki
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(Error::usage(format!(
            "--loki {url:?}: expected an http:// or https:// URL"
        )));
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

/// The credentials for Loki, from files or the environment.
pub fn auth(cli: &Cli) -> Result<sink::Auth> {
    if let Some(user) = &cli.basic_auth_user {
        let password = match &cli.basic_auth_password_file {
            Some(p) => read_secret(p, "--basic-auth-password-file")?,
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
        return Ok(sink::Auth::Bearer(read_secret(p, "--bearer-token-file")?));
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

pub fn run(cli: Cli) -> Result<Exit> {
    let cli = legacy_env(cli);
    validate(&cli)?;
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
        assert!(Cli::try_parse_from(["l", "--stdin", "--stdout", "--loki", "http://x"]).is_err());
        assert!(Cli::try_parse_from(["l", "--label", "novalue"]).is_err());
    }
}
