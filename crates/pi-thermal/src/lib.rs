//! pi-thermal: Raspberry Pi health as JSON lines and node_exporter textfile metrics.
//!
//! One `kind: sample` record per round (see [`sample::Sample`]), a `kind: alert`
//! record per crossed threshold, and the `pi_*` Prometheus page. Each source has its
//! own module; [`collect`] asks them all and never stops at one that fails.

pub mod alerts;
pub mod cpufreq;
pub mod filesystems;
pub mod hwmon;
pub mod metrics;
pub mod sample;
pub mod system;
pub mod text;
pub mod thermal;
pub mod throttle;
pub mod vcgencmd;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use homelab_core::args::examples_help;
use homelab_core::check::worst;
use homelab_core::run::run_rounds;
use homelab_core::text::{Paint, screen_width};
use homelab_core::{CommonArgs, Error, Exit, Format, Output, Result, Root, Severity};

pub use alerts::Thresholds;
pub use sample::Sample;
use vcgencmd::Vcgencmd;

pub const TOOL: &str = "pi-thermal";

/// Examples shown by `--help` and in the man page.
pub const EXAMPLES: &[(&str, &str)] = &[
    ("One sample as a JSON line", "pi-thermal"),
    (
        "The SoC temperature, with jq",
        "pi-thermal | jq '.temperatures[] | select(.sensor == \"cpu-thermal\") | .temperature_celsius'",
    ),
    (
        "Every 30 s into node_exporter's textfile directory, nothing on stdout",
        "pi-thermal --interval 30s --textfile-dir /var/lib/prometheus/node-exporter --quiet",
    ),
    ("A status panel for a person", "pi-thermal --format text"),
    (
        "From cron: mail only when a threshold is crossed (exit 1 warning, 2 critical)",
        "pi-thermal --check --quiet || pi-thermal --format text | mail -s 'Pi trouble' root",
    ),
    (
        "Inside a container, reading the host's /proc and /sys",
        "pi-thermal --root /host --vcgencmd /host/usr/bin/vcgencmd",
    ),
];

/// The hand-written man page sections (OUTPUT, METRICS, ...), in roff.
pub const MAN_SECTIONS: &str = include_str!("../man.roff");

#[derive(Debug, Parser)]
#[command(
    name = "pi-thermal",
    version,
    about = "Raspberry Pi health: temperatures, throttling, fan, board power, ARM clock, memory, disks, load, pressure",
    long_about = "Raspberry Pi health: temperatures, throttling and under-voltage, fan, board power, the real ARM clock, \
memory, disks, load and pressure, as one JSON line per round (kind: sample) and Prometheus metrics (pi_*) for \
node_exporter's textfile collector.\n\n\
Runs on any Linux: on a machine that is not a Pi, the Pi-only fields are null and the rest is still reported. \
Problems with one source (an unreadable sensor, vcgencmd without permission) go into the record's errors array; \
the run goes on. Thresholds print kind: alert records; with --check the exit status is 0, 1 (warning) or 2 (critical).",
    after_long_help = examples_help(EXAMPLES),
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,

    /// vcgencmd to run (default: vcgencmd on PATH; when there is none, the firmware
    /// fields are null, which is normal off a Pi)
    #[arg(
        long,
        value_name = "PATH",
        env = "PI_THERMAL_VCGENCMD",
        help_heading = "Sources"
    )]
    pub vcgencmd: Option<PathBuf>,

    /// Warn when a thermal zone reaches this many °C
    #[arg(
        long,
        value_name = "CELSIUS",
        default_value_t = 75.0,
        help_heading = "Thresholds"
    )]
    pub warn_temp: f64,

    /// Critical when a thermal zone reaches this many °C (the firmware throttles from 80)
    #[arg(
        long,
        value_name = "CELSIUS",
        default_value_t = 80.0,
        help_heading = "Thresholds"
    )]
    pub crit_temp: f64,

    /// Warn when available memory falls below this percentage of the total
    #[arg(
        long,
        value_name = "PERCENT",
        default_value_t = 10.0,
        help_heading = "Thresholds"
    )]
    pub warn_mem: f64,

    /// Critical when available memory falls below this percentage
    #[arg(
        long,
        value_name = "PERCENT",
        default_value_t = 5.0,
        help_heading = "Thresholds"
    )]
    pub crit_mem: f64,

    /// Warn when a filesystem's free space falls below this percentage
    #[arg(
        long,
        value_name = "PERCENT",
        default_value_t = 10.0,
        help_heading = "Thresholds"
    )]
    pub warn_disk: f64,

    /// Critical when a filesystem's free space falls below this percentage
    #[arg(
        long,
        value_name = "PERCENT",
        default_value_t = 5.0,
        help_heading = "Thresholds"
    )]
    pub crit_disk: f64,

    /// Exit 1 when a warning threshold is crossed and 2 when a critical one is
    /// (throttling or under-voltage now is critical), as Nagios plugins do
    #[arg(long, help_heading = "Thresholds")]
    pub check: bool,
}

impl Cli {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            warn_temp: self.warn_temp,
            crit_temp: self.crit_temp,
            warn_mem: self.warn_mem,
            crit_mem: self.crit_mem,
            warn_disk: self.warn_disk,
            crit_disk: self.crit_disk,
        }
    }
}

pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// One sample of every source. A failing source leaves its fields null and a note in
/// `errors`; nothing here returns early.
pub fn collect(root: &Root, vc: Option<&Vcgencmd>) -> Sample {
    let mut errors = Vec::new();
    let e = &mut errors;
    let model = system::read_model(root, e);
    let mut temperatures = thermal::read_zones(root, e);
    let cooling_devices = thermal::read_cooling_devices(root, e);
    let hw = hwmon::read(root, e);
    temperatures.extend(hw.temperatures);
    let cpus = cpufreq::read(root, e);
    let fw = match vc {
        Some(vc) => vcgencmd::read(vc, e),
        None => vcgencmd::Firmware::default(),
    };
    // The sysfs throttle file logs a kernel warning when read: only without vcgencmd.
    let throttled = match (fw.throttled, vc) {
        (Some(t), _) => Some(t),
        (None, None) => throttle::read_sysfs(root, e),
        (None, Some(_)) => None,
    };
    let memory = system::read_memory(root, e);
    let filesystems = filesystems::read(root, e);
    let load = system::read_load(root, e);
    let pressure = system::read_pressure(root, e);
    let uptime_seconds = system::read_uptime(root, e);
    Sample {
        model,
        temperatures,
        cpus,
        arm_clock_hertz: fw.arm_clock_hertz,
        throttled,
        under_voltage_alarm: hw.under_voltage_alarm,
        fan: hw.fan,
        cooling_devices,
        power: fw.power,
        memory,
        filesystems,
        load1: load.map(|l| l[0]),
        load5: load.map(|l| l[1]),
        load15: load.map(|l| l[2]),
        pressure,
        uptime_seconds,
        errors,
    }
}

pub fn run(cli: Cli) -> Result<Exit> {
    let thresholds = cli.thresholds();
    thresholds.validate().map_err(Error::usage)?;
    let root = Root::open(&cli.common.root.root)?;
    let mut out = Output::stdout(TOOL, &cli.common.output, &root);
    out.set_repeating(cli.common.looping.interval.is_some());
    let mut notes = Vec::new();
    let vc = Vcgencmd::locate(cli.vcgencmd.as_deref(), &mut notes);
    let mut worst_seen = Severity::Ok;
    let paint = Paint::for_stdout();
    run_rounds(&cli.common.looping, |_| {
        let now = SystemTime::now();
        out.begin_round(now)?;
        let mut sample = collect(&root, vc.as_ref());
        sample.errors.splice(0..0, notes.iter().cloned());
        let alerts = alerts::evaluate(&sample, &thresholds);
        worst_seen = worst_seen.max(worst(&alerts));
        out.record("sample", &sample)?;
        for a in &alerts {
            out.record("alert", a)?;
        }
        if out.format() == Format::Text && !cli.common.output.quiet {
            out.raw(&text::panel(&sample, &alerts, paint, screen_width()))?;
        }
        if !out.wants_page() {
            return Ok(());
        }
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let page = metrics::page(&sample, (secs * 1000.0).round() / 1000.0);
        out.page(&page)?;
        Ok(())
    })?;
    Ok(if cli.check { worst_seen.exit() } else { Exit::Ok })
}
