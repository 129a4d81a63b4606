//! Shared by ctr-stats' integration tests: the output schema, parsed strictly (a
//! field added or renamed without updating the tests and the man page fails here),
//! the binary, and a stand-in engine that answers from fixture files.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;

#[allow(unused_imports)]
pub use homelab_testkit::{promtool_check_metrics as promtool_check, series, wait_until};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rec {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
    pub id: String,
    pub name: String,
    pub image: String,
    pub compose_project: Option<String>,
    pub compose_service: Option<String>,
    pub state: String,
    pub health: Option<String>,
    pub restart_count: Option<u64>,
    pub oom_killed: Option<bool>,
    pub started_at: Option<String>,
    pub uptime_seconds: Option<f64>,
    pub source: Option<String>,
    pub cpu_seconds_total: Option<f64>,
    pub cpu_user_seconds_total: Option<f64>,
    pub cpu_system_seconds_total: Option<f64>,
    pub cpu_percent: Option<f64>,
    pub cpuset_cpus: Option<String>,
    pub mem_usage_bytes: Option<u64>,
    pub mem_working_set_bytes: Option<u64>,
    pub mem_rss_bytes: Option<u64>,
    pub mem_cache_bytes: Option<u64>,
    pub mem_limit_bytes: Option<u64>,
    pub mem_percent: Option<f64>,
    pub net_rx_bytes: Option<u64>,
    pub net_tx_bytes: Option<u64>,
    pub blk_read_bytes: Option<u64>,
    pub blk_write_bytes: Option<u64>,
    pub pids: Option<u64>,
    pub errors: Vec<String>,
}

/// `kind: ollama` (with --ollama).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OllamaRec {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
    pub url: String,
    pub up: bool,
    pub version: Option<String>,
    pub models_loaded: Option<u64>,
    pub container: Option<String>,
    pub container_cpuset_cpus: Option<String>,
    pub errors: Vec<String>,
}

/// `kind: model`: a model Ollama holds in memory.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelRec {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
    pub name: String,
    pub digest: Option<String>,
    pub family: Option<String>,
    pub parameter_size: Option<String>,
    pub quantization_level: Option<String>,
    pub size_bytes: Option<u64>,
    pub size_vram_bytes: Option<u64>,
    pub context_length_tokens: Option<u64>,
    pub expires_at: Option<String>,
    pub expires_in_seconds: Option<f64>,
    pub errors: Vec<String>,
}

/// `kind: probe` (with --ollama-probe).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProbeRec {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
    pub model: String,
    pub ran: bool,
    pub ok: Option<bool>,
    pub last_attempt_at: Option<String>,
    pub next_attempt_at: Option<String>,
    pub last_success_at: Option<String>,
    pub tokens_per_second: Option<f64>,
    pub eval_tokens: Option<u64>,
    pub eval_seconds: Option<f64>,
    pub prompt_tokens: Option<u64>,
    pub prompt_seconds: Option<f64>,
    pub load_seconds: Option<f64>,
    pub total_seconds: Option<f64>,
    pub num_thread: Option<u32>,
    pub errors: Vec<String>,
}

/// What one run printed, parsed.
#[derive(Debug)]
pub struct Run {
    pub output: Output,
    pub records: Vec<Rec>,
    pub ollama: Vec<OllamaRec>,
    pub models: Vec<ModelRec>,
    pub probes: Vec<ProbeRec>,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    /// The record of the container called `name`; panics when there is not exactly one.
    pub fn get(&self, name: &str) -> &Rec {
        let found: Vec<&Rec> = self.records.iter().filter(|r| r.name == name).collect();
        assert_eq!(
            found.len(),
            1,
            "expected one record for {name}; stderr: {}\nstdout: {}",
            self.stderr(),
            self.stdout()
        );
        found[0]
    }
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code(),
            Some(0),
            "ctr-stats failed: {}\nstdout: {}",
            self.stderr(),
            self.stdout()
        );
        self
    }
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// A copy of a fixture tree in a temporary directory, to break files in.
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    homelab_testkit::copy_tree(&fixture(name))
}

/// The binary without HOMELAB_* or CTR_STATS_* settings from the environment.
pub fn ctr_stats() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ctr-stats"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HOMELAB_") || k.starts_with("CTR_STATS_") {
            c.env_remove(k);
        }
    }
    c
}

pub fn parse(output: Output) -> Run {
    let stdout = String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8");
    let mut run = Run {
        output,
        records: Vec::new(),
        ollama: Vec::new(),
        models: Vec::new(),
        probes: Vec::new(),
    };
    for line in stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let kind = v["kind"].as_str().unwrap_or("").to_string();
        let bad = |e: serde_json::Error| -> ! { panic!("{kind} schema: {e}: {line}") };
        match kind.as_str() {
            "container" => run
                .records
                .push(serde_json::from_value(v).unwrap_or_else(|e| bad(e))),
            "ollama" => run
                .ollama
                .push(serde_json::from_value(v).unwrap_or_else(|e| bad(e))),
            "model" => run
                .models
                .push(serde_json::from_value(v).unwrap_or_else(|e| bad(e))),
            "probe" => run
                .probes
                .push(serde_json::from_value(v).unwrap_or_else(|e| bad(e))),
            other => panic!("unknown kind {other:?}: {line}"),
        }
    }
    run
}

/// Runs ctr-stats with `args` and parses what it printed.
pub fn run(args: &[&str]) -> Run {
    parse(ctr_stats().args(args).output().unwrap())
}

/// A stand-in for the Docker engine on a unix socket, answering from fixture files:
/// `version.json`, `containers.json`, `inspect/<id>.json`, `stats/<id>.json` (404 for
/// an id without a file, as the engine does for a removed container). Used with the
/// fixture trees, whose pids and cgroups belong to containers no real engine has.
pub struct FakeEngine {
    _dir: tempfile::TempDir,
    pub socket: PathBuf,
}

impl FakeEngine {
    pub fn start(answers: &Path) -> FakeEngine {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let answers = answers.to_path_buf();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                // The headers; no request here has a body.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok() && line.trim_end() != "" {
                    line.clear();
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let path = path.split('?').next().unwrap_or(path);
                // Strip the /v1.xx version prefix.
                let path = match path.strip_prefix("/v1.") {
                    Some(rest) => &rest[rest.find('/').unwrap_or(0)..],
                    None => path,
                };
                let file = match path.split('/').collect::<Vec<_>>().as_slice() {
                    ["", "version"] => answers.join("version.json"),
                    ["", "containers", "json"] => answers.join("containers.json"),
                    ["", "containers", id, "json"] => answers.join(format!("inspect/{id}.json")),
                    ["", "containers", id, "stats"] => answers.join(format!("stats/{id}.json")),
                    _ => answers.join("no-such-route"),
                };
                let (status, body) = match std::fs::read(&file) {
                    Ok(b) => ("200 OK", b),
                    Err(_) => ("404 Not Found", br#"{"message":"No such container"}"#.to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nApi-Version: 1.41\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            }
        });
        FakeEngine { _dir: dir, socket }
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

/// Runs ctr-stats on a fixture tree against the stand-in engine.
pub fn run_fixture(tree: &Path, engine: &FakeEngine, args: &[&str]) -> Run {
    let mut all = vec![
        "--root".to_string(),
        tree.display().to_string(),
        "--docker-host".to_string(),
        engine.host(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    parse(ctr_stats().args(&all).output().unwrap())
}

/// Values that depend on the time of the run, not on the fixture.
pub fn normalise(page: &str) -> String {
    homelab_testkit::mask_values(
        page,
        &["container_last_seen{", "container_last_run_timestamp_seconds "],
    )
}
