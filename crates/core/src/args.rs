//! The flags every tool shares. A tool flattens [`CommonArgs`] (or the parts it needs)
//! into its own clap parser, so the names, defaults, help and environment twins are
//! the same everywhere.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// How records are written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// One JSON object per line (the default; for pipes, jq and log shippers).
    #[default]
    Jsonl,
    /// Prometheus text exposition format 0.0.4 (what node_exporter's textfile collector reads).
    Prom,
    /// Aligned columns for a person at a terminal.
    Text,
}

/// Output flags: format, textfile directory, quiet.
#[derive(Debug, Clone, Args, Default)]
pub struct OutputArgs {
    /// Output format on stdout: jsonl, prom or text
    #[arg(
        long,
        value_enum,
        default_value_t,
        env = "HOMELAB_FORMAT",
        help_heading = "Output options"
    )]
    pub format: Format,

    /// Also write Prometheus metrics atomically to DIR/<tool>.prom, for node_exporter's
    /// textfile collector (written to a temporary file, fsynced, renamed; mode 0644)
    #[arg(
        long,
        value_name = "DIR",
        env = "HOMELAB_TEXTFILE_DIR",
        help_heading = "Output options"
    )]
    pub textfile_dir: Option<PathBuf>,

    /// Print nothing on stdout (use with --textfile-dir)
    #[arg(long, short, help_heading = "Output options")]
    pub quiet: bool,
}

/// Loop flags: one round by default, or every --interval until SIGINT/SIGTERM.
#[derive(Debug, Clone, Args, Default)]
pub struct LoopArgs {
    /// Repeat every DURATION (e.g. 30s, 5m; at most 10y) until SIGINT or SIGTERM; without
    /// it, run once
    #[arg(long, value_name = "DURATION", value_parser = parse_interval, help_heading = "Running options")]
    pub interval: Option<Duration>,

    /// Stop after N rounds (needs --interval)
    #[arg(long, value_name = "N", requires = "interval", value_parser = clap::value_parser!(u64).range(1..), help_heading = "Running options")]
    pub count: Option<u64>,
}

/// Where the system's files are: every read of /proc, /sys, /dev, /run, /etc and
/// /var/lib/docker happens under this directory.
#[derive(Debug, Clone, Args)]
pub struct RootArgs {
    /// Read /proc, /sys, /dev, /run, /etc and /var/lib/docker under DIR (e.g. /host in a
    /// container, or a fixture tree in tests)
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/",
        env = "HOMELAB_ROOT",
        help_heading = "Running options"
    )]
    pub root: PathBuf,
}

impl Default for RootArgs {
    fn default() -> Self {
        RootArgs {
            root: PathBuf::from("/"),
        }
    }
}

/// All the shared flags: --format, --textfile-dir, --quiet, --interval, --count, --root.
#[derive(Debug, Clone, Args, Default)]
pub struct CommonArgs {
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub looping: LoopArgs,
    #[command(flatten)]
    pub root: RootArgs,
}

/// Parses a humantime duration (`30s`, `1m 30s`, `500ms`) that must not be zero.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("the interval must be longer than zero".into());
    }
    Ok(d)
}

/// The longest duration any flag takes: ten years (humantime's `10y`). Far beyond any
/// sensible interval or timeout, and far below what a clock can add without overflowing
/// (`--timeout 300000000000y` used to panic with "overflow when adding duration to
/// instant").
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 31_557_600);

/// How [`MAX_DURATION`] is written in messages and man pages.
pub const MAX_DURATION_TEXT: &str = "10y (ten years)";

/// Parses a humantime duration (`30s`, `1m 30s`, `500ms`, `0`) of at most
/// [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e} (expected a duration such as 30s, 5m or 1h30m)"))?;
    if d > MAX_DURATION {
        return Err(format!(
            "{} is too long: a duration may be at most {MAX_DURATION_TEXT}",
            s.trim()
        ));
    }
    Ok(d)
}

/// Renders a list of `(description, command)` examples for `after_long_help`, so that
/// `--help` teaches with the same examples the man page shows.
pub fn examples_help(examples: &[(&str, &str)]) -> String {
    let mut s = String::from("Examples:\n");
    for (what, cmd) in examples {
        s.push_str(&format!("  # {what}\n  {cmd}\n\n"));
    }
    s.truncate(s.trim_end().len());
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct T {
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn defaults() {
        let t = T::try_parse_from(["t"]).unwrap();
        assert_eq!(t.common.output.format, Format::Jsonl);
        assert_eq!(t.common.root.root, PathBuf::from("/"));
        assert!(t.common.looping.interval.is_none());
    }

    #[test]
    fn count_needs_interval_and_interval_is_humantime() {
        assert!(T::try_parse_from(["t", "--count", "3"]).is_err());
        let t = T::try_parse_from(["t", "--interval", "1m30s", "--count", "3"]).unwrap();
        assert_eq!(t.common.looping.interval, Some(Duration::from_secs(90)));
        assert!(T::try_parse_from(["t", "--interval", "0s"]).is_err());
        assert!(T::try_parse_from(["t", "--interval", "soon"]).is_err());
        assert!(T::try_parse_from(["t", "--interval", "1s", "--count", "0"]).is_err());
    }

    #[test]
    fn durations_have_an_upper_bound() {
        assert_eq!(parse_duration("10y"), Ok(MAX_DURATION));
        for huge in ["10y 1s", "300000000000y", "18446744073709551615s"] {
            let e = parse_duration(huge).unwrap_err();
            assert!(e.contains("at most 10y"), "{huge}: {e}");
        }
        let e = T::try_parse_from(["t", "--interval", "300000000000y"]).unwrap_err();
        assert!(e.to_string().contains("at most 10y"), "{e}");
    }

    #[test]
    fn format_values() {
        let t = T::try_parse_from(["t", "--format", "prom"]).unwrap();
        assert_eq!(t.common.output.format, Format::Prom);
        assert!(T::try_parse_from(["t", "--format", "xml"]).is_err());
    }
}
