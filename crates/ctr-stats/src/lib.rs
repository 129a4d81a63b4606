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
pub mod ollama;
pub mod probe;
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
        "Also Ollama's loaded models and, at most once an hour, its generation speed",
        "ctr-stats --ollama http://127.0.0.1:11434 --ollama-probe homelab --textfile-dir /var/lib/prometheus/node-exporter --quiet",
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

    /// Also watch Ollama's API at URL (http://127.0.0.1:11434, or its https address
    /// through the proxy): a kind: model record per loaded model, a kind: ollama record,
    /// and ollama_* metrics. A failing Ollama is an error in its record, not a failed run
    #[arg(
        long,
        value_name = "URL",
        env = "CTR_STATS_OLLAMA",
        value_parser = parse_ollama_url,
        help_heading = "Ollama options"
    )]
    pub ollama: Option<String>,

    /// Give up on Ollama's API after DURATION (/api/ps and /api/version together)
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "5s",
        value_parser = parse_interval,
        help_heading = "Ollama options"
    )]
    pub ollama_timeout: Duration,

    /// The container Ollama runs in (its compose service or its name), whose cpuset
    /// becomes ollama_container_cpuset_cpus
    #[arg(
        long,
        value_name = "NAME",
        default_value = "ollama",
        env = "CTR_STATS_OLLAMA_CONTAINER",
        help_heading = "Ollama options"
    )]
    pub ollama_container: String,

    /// Measure MODEL's generation speed: a short generation (a fixed prompt, 32
    /// tokens) at most once per --ollama-probe-every; it keeps the CPUs of Ollama's
    /// cpuset busy for seconds (see the man page)
    #[arg(
        long,
        value_name = "MODEL",
        env = "CTR_STATS_OLLAMA_PROBE",
        requires = "ollama",
        help_heading = "Ollama options"
    )]
    pub ollama_probe: Option<String>,

    /// Run the probe at most once per DURATION, across runs (the time of the last
    /// one is kept in --ollama-probe-state)
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "1h",
        value_parser = parse_interval,
        help_heading = "Ollama options"
    )]
    pub ollama_probe_every: Duration,

    /// Give up on the probe's generation after DURATION (loading the model counts)
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "20s",
        value_parser = parse_interval,
        help_heading = "Ollama options"
    )]
    pub ollama_probe_timeout: Duration,

    /// num_thread for the probe's generation [default: the model's own setting]
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=1024),
        help_heading = "Ollama options"
    )]
    pub ollama_probe_threads: Option<u32>,

    /// The probe's state file: when it last ran and its last result, so that a
    /// ctr-stats run from a timer probes at most once per period and still exports
    /// the last result
    #[arg(
        long,
        value_name = "PATH",
        default_value = probe::DEFAULT_STATE,
        env = "CTR_STATS_OLLAMA_PROBE_STATE",
        help_heading = "Ollama options"
    )]
    pub ollama_probe_state: std::path::PathBuf,
}

pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Checks `--ollama`: an http or https URL with a host.
pub fn parse_ollama_url(s: &str) -> std::result::Result<String, String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or("expected an http:// or https:// URL, e.g. http://127.0.0.1:11434")?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains('@') || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(
            "expected http://HOST:PORT, e.g. http://127.0.0.1:11434 (no credentials, no spaces)".into(),
        );
    }
    Ok(s.trim_end_matches('/').to_string())
}

impl Cli {
    /// The probe's settings, when --ollama-probe is given.
    pub fn probe(&self) -> Option<probe::Settings> {
        self.ollama_probe.as_ref().map(|m| probe::Settings {
            model: m.clone(),
            every: self.ollama_probe_every,
            timeout: self.ollama_probe_timeout,
            threads: self.ollama_probe_threads,
            state: self.ollama_probe_state.clone(),
        })
    }

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
    let paint = homelab_core::text::Paint::for_stdout();
    let watch = cli.ollama.as_ref().map(|url| ollama::Watch {
        client: ollama::Client::new(url, cli.ollama_timeout),
        container: cli.ollama_container.clone(),
        probe: cli.probe(),
    });
    // Ollama's records, page and text: after the containers', whatever the engine did.
    let ollama_out = |out: &mut Output,
                      records: &[ContainerRecord],
                      page: Option<&mut homelab_core::Page>|
     -> Result<()> {
        let Some(w) = &watch else { return Ok(()) };
        let watched = w.round(records, std::time::SystemTime::now());
        out.record("ollama", &watched.round.ollama)?;
        for m in &watched.round.models {
            out.record("model", m)?;
        }
        if let Some((p, _)) = &watched.probe {
            out.record("probe", p)?;
        }
        if let Some(page) = page {
            watched.add_to_page(page);
        }
        if out.format() == Format::Text {
            out.raw("\n")?;
            out.raw(&table::ollama_text(
                &watched,
                homelab_core::text::Paint::for_stdout(),
            ))?;
        }
        Ok(())
    };
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
                if text {
                    out.raw(&format!("{}\n", paint.bad(&format!("! Docker engine down: {e}"))))?;
                }
                let secs = (unix_now() * 1000.0).round() / 1000.0;
                let mut page = metrics::page(&[], secs, false);
                let wants_page = out.wants_page();
                ollama_out(&mut out, &[], wants_page.then_some(&mut page))?;
                if wants_page {
                    out.page(&page)?;
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
        if text {
            out.raw(&table::text(&records, paint, homelab_core::text::screen_width()))?;
        }
        let secs = (unix_now() * 1000.0).round() / 1000.0;
        let mut page = metrics::page(&records, secs, true);
        let wants_page = out.wants_page();
        ollama_out(&mut out, &records, wants_page.then_some(&mut page))?;
        if wants_page {
            out.page(&page)?;
        }
        Ok(())
    })?;
    match failed {
        Some(e) => Err(e),
        None => Ok(Exit::Ok),
    }
}
