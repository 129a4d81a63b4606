//! The flags every tool shares. A tool flattens [`CommonArgs`] (or the parts it needs)
//! into its own clap parser, so the names, defaults, help and environment twins are
//! the same everywhere.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// How records are written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// One JSON object per line (the default off a terminal; for pipes, cron, jq and log shippers).
    #[default]
    Jsonl,
    /// Prometheus text exposition format 0.0.4 (what node_exporter's textfile collector reads).
    Prom,
    /// A view for a person (the default when stdout is a terminal).
    Text,
}

impl Format {
    /// The format when none is given: the text view for a person at a terminal, JSON
    /// lines for everything else (pipes, cron, files).
    pub fn for_stdout() -> Format {
        if std::io::stdout().is_terminal() {
            Format::Text
        } else {
            Format::Jsonl
        }
    }
}

/// Output flags: format, textfile directory, quiet. They are global: a tool with
/// subcommands takes them before or after the subcommand.
#[derive(Debug, Clone, Args, Default)]
pub struct OutputArgs {
    /// Output format on stdout: jsonl, prom or text [default: text on a terminal,
    /// jsonl otherwise]
    #[arg(
        long,
        value_enum,
        env = "HOMELAB_FORMAT",
        global = true,
        help_heading = "Output options"
    )]
    pub format: Option<Format>,

    /// Also write Prometheus metrics atomically to DIR/<tool>.prom, for node_exporter's
    /// textfile collector (written to a temporary file, fsynced, renamed; mode 0644)
    #[arg(
        long,
        value_name = "DIR",
        env = "HOMELAB_TEXTFILE_DIR",
        global = true,
        help_heading = "Output options"
    )]
    pub textfile_dir: Option<PathBuf>,

    /// Print nothing on stdout (use with --textfile-dir)
    #[arg(long, short, global = true, help_heading = "Output options")]
    pub quiet: bool,
}

impl OutputArgs {
    /// The format asked for, or the one for this stdout ([`Format::for_stdout`]).
    pub fn format(&self) -> Format {
        self.format.unwrap_or_else(Format::for_stdout)
    }
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
        global = true,
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
/// `--help` teaches with the same examples the man page shows. Long commands are
/// broken into lines that fit 80 columns with `\` continuations, so they paste as is.
pub fn examples_help(examples: &[(&str, &str)]) -> String {
    let mut s = String::from("Examples:\n");
    for (what, cmd) in examples {
        s.push_str(&format!("  # {what}\n"));
        for line in wrap_command(cmd, EXAMPLE_WIDTH) {
            s.push_str(&format!("  {line}\n"));
        }
        s.push('\n');
    }
    s.truncate(s.trim_end().len());
    s
}

/// Columns an example command may take, its indent of two aside.
pub const EXAMPLE_WIDTH: usize = 76;

/// Breaks a shell command into lines of at most `width` columns (when its words
/// allow), each but the last ending in ` \`, the following ones indented by four
/// spaces. It breaks only between words outside quotes, and keeps an option with
/// its value (`--interval 30s`), so the lines pasted into a shell run the command.
pub fn wrap_command(cmd: &str, width: usize) -> Vec<String> {
    let words = shell_words(cmd);
    // Units that stay on one line: an option and the value after it.
    let mut units: Vec<String> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let takes_value = w.starts_with('-')
            && !w.contains('=')
            && words
                .get(i + 1)
                .is_some_and(|n| !n.starts_with('-') && !is_operator(n));
        if takes_value {
            units.push(format!("{w} {}", words[i + 1]));
            i += 2;
        } else {
            units.push(w.clone());
            i += 1;
        }
    }
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for u in units {
        let indent = if lines.is_empty() { 0 } else { 4 };
        // Room for the unit and, if more follow, the ` \` that ends the line.
        if !line.is_empty() && indent + line.len() + 1 + u.len() + 2 > width {
            lines.push(line);
            line = String::new();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&u);
    }
    lines.push(line);
    let n = lines.len();
    lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let indent = if i == 0 { "" } else { "    " };
            let cont = if i + 1 < n { " \\" } else { "" };
            format!("{indent}{l}{cont}")
        })
        .collect()
}

fn is_operator(w: &str) -> bool {
    matches!(w, "|" | "||" | "&&" | ";" | ">" | ">>" | "<" | "2>" | "2>&1")
}

/// Splits on spaces outside single and double quotes; quotes stay in the words.
fn shell_words(cmd: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    for c in cmd.chars() {
        match (quote, c) {
            (None, ' ') => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                word.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                word.push(c);
            }
            (_, c) => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
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
        assert_eq!(t.common.output.format, None);
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
    fn long_examples_wrap_into_pasteable_lines() {
        let cmd = "cpu-pin apply /etc/homelab-tools/cpu-pin.plan --interval 30s --textfile-dir /var/lib/prometheus/node-exporter --quiet || echo 'it failed | badly'";
        let lines = wrap_command(cmd, 60);
        assert!(lines.len() > 2, "{lines:?}");
        for (i, l) in lines.iter().enumerate() {
            assert!(l.len() <= 60, "{l:?} is too long");
            assert_eq!(l.ends_with(" \\"), i + 1 < lines.len(), "{l:?}");
        }
        assert!(
            lines.iter().any(|l| l.contains("--interval 30s")),
            "an option keeps its value: {lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.contains("'it failed | badly'")),
            "quotes are not split: {lines:?}"
        );
        // Joined as the shell joins them, the lines give the command back.
        let joined = lines
            .iter()
            .map(|l| l.trim_end_matches(" \\").trim())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(joined, cmd);
        assert_eq!(wrap_command("pi-thermal --check", 76), ["pi-thermal --check"]);
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
        assert_eq!(t.common.output.format, Some(Format::Prom));
        assert!(T::try_parse_from(["t", "--format", "xml"]).is_err());
    }
}
