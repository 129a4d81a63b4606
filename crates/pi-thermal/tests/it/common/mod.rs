//! Shared by pi-thermal's integration tests: the output schema, parsed strictly (a
//! field added or renamed without updating the tests and the man page fails here),
//! and helpers to run the binary on fixture trees.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;

#[allow(unused_imports)]
pub use homelab_testkit::{promtool_check_metrics as promtool_check, series};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleRec {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
    pub model: Option<String>,
    pub temperatures: Vec<Temperature>,
    pub cpus: Vec<Cpu>,
    pub arm_clock_hertz: Option<f64>,
    pub throttled: Option<Throttled>,
    pub under_voltage_alarm: Option<bool>,
    pub fan: Option<Fan>,
    pub cooling_devices: Vec<Cooling>,
    pub power: Option<Power>,
    pub memory: Option<Memory>,
    pub filesystems: Vec<Filesystem>,
    pub load1: Option<f64>,
    pub load5: Option<f64>,
    pub load15: Option<f64>,
    pub pressure: Vec<Pressure>,
    pub uptime_seconds: Option<f64>,
    pub errors: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Temperature {
    pub sensor: String,
    pub input: String,
    pub label: Option<String>,
    pub temperature_celsius: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cpu {
    pub cpu: u32,
    pub frequency_hertz: Option<f64>,
    pub max_frequency_hertz: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throttled {
    pub source: String,
    pub bits: u32,
    pub under_voltage: bool,
    pub arm_frequency_capped: bool,
    pub throttled: bool,
    pub soft_temp_limit: bool,
    pub under_voltage_occurred: bool,
    pub arm_frequency_capped_occurred: bool,
    pub throttled_occurred: bool,
    pub soft_temp_limit_occurred: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fan {
    pub speed_rpm: Option<f64>,
    pub pwm_ratio: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cooling {
    pub device: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state: Option<u64>,
    pub max_state: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Power {
    pub total_watts: f64,
    pub input_voltage_volts: Option<f64>,
    pub rails: Vec<Rail>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rail {
    pub rail: String,
    pub volts: f64,
    pub amps: f64,
    pub watts: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    pub total_bytes: u64,
    pub available_bytes: Option<u64>,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filesystem {
    pub mountpoint: String,
    pub device: String,
    pub fstype: String,
    pub size_bytes: u64,
    pub avail_bytes: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pressure {
    pub resource: String,
    pub some_avg10_percent: f64,
    pub some_avg60_percent: f64,
    pub some_avg300_percent: f64,
    pub some_stall_seconds_total: f64,
    pub full_avg10_percent: Option<f64>,
    pub full_avg60_percent: Option<f64>,
    pub full_avg300_percent: Option<f64>,
    pub full_stall_seconds_total: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRec {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
    pub severity: String,
    pub check: String,
    pub subject: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub message: String,
}

/// What one run printed, parsed.
pub struct Run {
    pub output: Output,
    pub samples: Vec<SampleRec>,
    pub alerts: Vec<AlertRec>,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn sample(&self) -> &SampleRec {
        assert_eq!(
            self.samples.len(),
            1,
            "expected one sample; stderr: {}",
            self.stderr()
        );
        &self.samples[0]
    }
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

pub fn vcgencmd(name: &str) -> PathBuf {
    fixtures().join("vcgencmd").join(name)
}

/// A copy of a fixture tree in a temporary directory, to break files in.
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    homelab_testkit::copy_tree(&fixture(name))
}

/// The binary with an empty PATH (so a real vcgencmd on the test machine is never
/// used by accident) and no HOMELAB_* variables from the environment.
pub fn pi_thermal() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pi-thermal"));
    let empty = std::env::temp_dir().join("pi-thermal-tests-empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    c.env("PATH", empty);
    for (k, _) in std::env::vars() {
        if k.starts_with("HOMELAB_") || k == "PI_THERMAL_VCGENCMD" {
            c.env_remove(k);
        }
    }
    c
}

/// Runs pi-thermal and parses every JSON line strictly by its kind.
pub fn run(args: &[&str]) -> Run {
    parse(pi_thermal().args(args).output().unwrap())
}

pub fn parse(output: Output) -> Run {
    let stdout = String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8");
    let mut samples = Vec::new();
    let mut alerts = Vec::new();
    for line in stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        match v["kind"].as_str() {
            Some("sample") => samples
                .push(serde_json::from_value(v).unwrap_or_else(|e| panic!("sample schema: {e}: {line}"))),
            Some("alert") => {
                alerts.push(serde_json::from_value(v).unwrap_or_else(|e| panic!("alert schema: {e}: {line}")))
            }
            other => panic!("unknown kind {other:?}: {line}"),
        }
    }
    Run {
        output,
        samples,
        alerts,
    }
}

/// The Prometheus page of the Pi 5 fixture with its fake vcgencmd.
pub fn pi5_page() -> String {
    let out = pi_thermal()
        .args([
            "--root",
            fixture("pi5").to_str().unwrap(),
            "--vcgencmd",
            vcgencmd("pi5").to_str().unwrap(),
        ])
        .args(["--format", "prom"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}
