//! ctr-stats: per-container Docker metrics as JSON lines and cAdvisor-compatible
//! Prometheus text, for a fraction of cAdvisor's cost.
//!
//! One `kind: container` record per container per round (see
//! [`record::ContainerRecord`]). Containers are found through the Docker API
//! ([`engine`]); a running one is read from its cgroup files ([`cgroup`], with
//! [`netdev`] for its network) or from the stats API ([`api`]), both giving the same
//! [`usage::Usage`]. [`collect`] runs a round, [`metrics`] builds the page and
//! [`table`] the text view.

pub mod api;
pub mod cgroup;
pub mod collect;
pub mod engine;
pub mod metrics;
pub mod netdev;
pub mod record;
pub mod table;
pub mod usage;

use std::time::Duration;

use clap::Parser;
use homelab_core::args::{examples_help, parse_duration, parse_interval};
use homelab_core::docker::{DEFAULT_TIMEOUT, DockerArgs, FilterArgs};
use homelab_core::run::run_rounds;
use homelab_core::{CommonArgs, Error, Exit, Format, Output, Result, Root, unix_now};

pub use collect::{Collector, Selection, Source};
pub use record::ContainerRecord;

pub const TOOL: &str = "ctr-stats";

/// Examples shown by `--help` and in the man page.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "Every container, one JSON line each (CPU measured over 1 s)",
        "ctr-stats",
    ),
    (
        "A docker stats-like table of the running containers",
        "ctr-stats --format text --running",
    ),
    (
        "Every 30 s into node_exporter's textfile directory, nothing on stdout",
        "ctr-stats --interval 30s --textfile-dir /var/lib/prometheus/node-exporter --quiet",
    ),
    (
        "The containers of one compose project that use more than half a core",
        "ctr-stats --docker-filter label=com.docker.compose.project=homelab | jq -r 'select(.cpu_percent > 50) | .name'",
    ),
    (
        "Containers that are not running, or were killed for lack of memory",
        "ctr-stats --window 0 | jq -c 'select(.state != \"running\" or .oom_killed) | {name, state, oom_killed}'",
    ),
    (
        "Inside a container, reading the host's cgroups and /proc",
        "ctr-stats --root /host --docker-host unix:///var/run/docker.sock --format prom",
    ),
];

/// The hand-written man page sections (OUTPUT, METRICS, ...), in roff.
pub const MAN_SECTIONS: &str = include_str!("../man.roff");

#[derive(Debug, Parser)]
#[command(
    name = "ctr-stats",
    version,
    about = "Per-container Docker metrics (CPU, memory, network, block I/O, restarts, health, OOM kills), cAdvisor-compatible",
    long_about = "Per-container Docker metrics: CPU, memory, network, block I/O, pids, restarts, health and OOM kills, \
as one JSON line per container per round (kind: container), cAdvisor-compatible Prometheus metrics (container_*) \
for node_exporter's textfile collector, or a docker stats-like table.\n\n\
Containers are found through the Docker API (stopped ones too, unless --running). The figures of a running container \
come from its cgroup files (no work for the daemon) or from the Docker stats API (--source). cpu_percent is measured \
over --window in a single run and over the interval in a loop; 100 is one full core. A figure that cannot be known \
is null, never 0; problems with one container go into its record's errors and the run goes on.",
    after_long_help = examples_help(EXAMPLES),
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Where a running container's figures come from: auto (its cgroup files where
    /// readable, else the stats API), api, or cgroup
    #[arg(
        long,
        value_enum,
        default_value_t,
        env = "CTR_STATS_SOURCE",
        help_heading = "Measuring options"
    )]
    pub source: Source,

    /// Measure cpu_percent over DURATION in a single run (0: do not measure, leave it
    /// null; at most 10y) [default: 1s, or 0 when only Prometheus text is written]
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = parse_duration,
        env = "CTR_STATS_WINDOW",
        help_heading = "Measuring options"
    )]
    pub window: Option<Duration>,

    #[command(flatten)]
    pub filter: FilterArgs,

    /// Only running containers (by default stopped ones are listed too, with null
    /// figures and container_running 0)
    #[arg(long, help_heading = "Selection options")]
    pub running: bool,

    #[command(flatten)]
    pub docker: DockerArgs,

    /// The old name of --docker-timeout
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = parse_interval,
        hide = true
    )]
    pub timeout: Option<Duration>,

    /// Docker API requests in flight at once [default: 4; 32 stats requests against a
    /// daemon older than Docker 25, whose one-shot stats wait for its next 1 s
    /// collection tick]
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..=64),
        help_heading = "Docker options"
    )]
    pub concurrency: Option<u16>,
}

pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

impl Cli {
    pub fn selection(&self) -> Selection {
        Selection {
            all: !self.running,
            filters: self.filter.by_key(),
        }
    }
}

pub fn run(cli: Cli) -> Result<Exit> {
    let root = Root::open(&cli.common.root.root)?;
    let mut out = Output::stdout(TOOL, &cli.common.output, &root);
    out.set_repeating(cli.common.looping.interval.is_some());
    let text = out.format() == Format::Text;
    // Prometheus computes rates from the counters: a page alone needs no window.
    let window = cli
        .window
        .unwrap_or(if out.wants_records() || (text && !cli.common.output.quiet) {
            Duration::from_secs(1)
        } else {
            Duration::ZERO
        });
    let timeout = cli.docker.timeout_or(cli.timeout.unwrap_or(DEFAULT_TIMEOUT));
    let engine = engine::Engine::connect(cli.docker.host(), timeout, cli.concurrency.map(usize::from))?;
    let mut collector = Collector::new(engine, root, cli.source, cli.selection());
    if cli.source == Source::Cgroup && *collector.hierarchy() == cgroup::Hierarchy::Missing {
        return Err(Error::new(
            Exit::NoInput,
            format!(
                "no cgroup filesystem under {}/sys/fs/cgroup",
                cli.common.root.root.display()
            ),
        )
        .hint("mount the host's / (with /proc and /sys) and give --root, or use --source api"));
    }
    let looping = cli.common.looping.interval.is_some();
    // In a loop, a round the engine fails is reported and the loop goes on; the exit
    // status is that of the last round.
    let mut failed: Option<Error> = None;
    run_rounds(&cli.common.looping, |info| {
        // In a loop, CPU use after the first round is measured across the interval.
        let w = (info.index == 0).then_some(window);
        let (records, now) = match collector.round(w) {
            Ok(r) => r,
            Err(e) if looping && e.code() != Exit::Usage => {
                if failed.is_none() {
                    eprintln!("{TOOL}: {e} (reported as kind: engine; trying again every interval)");
                }
                let rec = record::EngineRecord {
                    docker_host: collector.engine.host().to_string(),
                    up: false,
                    errors: vec![e.to_string()],
                };
                out.begin_round(std::time::SystemTime::now())?;
                out.record("engine", &rec)?;
                if out.wants_page() {
                    let secs = (unix_now() * 1000.0).round() / 1000.0;
                    out.page(&metrics::page(&[], secs, false))?;
                }
                if text {
                    out.raw(&format!("Docker engine down: {e}\n"))?;
                }
                failed = Some(e);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        failed = None;
        out.begin_round(now)?;
        for r in &records {
            out.record("container", r)?;
        }
        if out.wants_page() {
            let secs = (unix_now() * 1000.0).round() / 1000.0;
            out.page(&metrics::page(&records, secs, true))?;
        }
        if text {
            let (containers, problems) = table::tables(&records);
            out.table(&containers)?;
            if let Some(p) = problems {
                out.raw("\n")?;
                out.table(&p)?;
            }
        }
        Ok(())
    })?;
    match failed {
        Some(e) => Err(e),
        None => Ok(Exit::Ok),
    }
}
