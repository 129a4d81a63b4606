//! Shared by cpu-pin's integration tests: the output schema, parsed strictly (a field
//! added or renamed without updating the tests and the man page fails here), the
//! binary, and multi-threaded processes the tests start themselves (so no test ever
//! pins a process it did not start).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sched::sched_getaffinity;
use nix::unistd::Pid;
use serde::Deserialize;

#[allow(unused_imports)]
pub use homelab_testkit::{promtool_check_metrics, series, wait_until};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinRec {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
    pub rule: Option<String>,
    pub target: String,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub container: Option<String>,
    pub container_id: Option<String>,
    pub cgroup: Option<String>,
    pub threads: usize,
    pub cpus: Option<String>,
    pub cpus_before: Option<String>,
    pub cpus_after: Option<String>,
    pub cpuset_before: Option<String>,
    pub cpuset_after: Option<String>,
    pub nice: Option<i32>,
    pub nice_before: Option<i32>,
    pub nice_after: Option<i32>,
    pub affinity: Vec<Group>,
    pub threads_drifted: Option<usize>,
    pub threads_changed: usize,
    pub changed: bool,
    pub drift: Option<bool>,
    pub errors: Vec<String>,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub cpus: String,
    pub tids: Vec<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleRec {
    pub v: u32,
    pub ts: String,
    pub host: String,
    pub tool: String,
    pub kind: String,
    pub rule: String,
    pub target: String,
    pub cpus: String,
    pub nice: Option<i32>,
    pub targets: usize,
    pub threads: usize,
    pub threads_drifted: usize,
    pub threads_changed: usize,
    pub changed: bool,
    pub drift: bool,
    pub errors: Vec<String>,
}

/// What one run printed, parsed by kind.
#[derive(Debug)]
pub struct Run {
    pub output: Output,
    pub pins: Vec<PinRec>,
    pub rules: Vec<RuleRec>,
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
    /// The one pin record of a run that should have exactly one.
    pub fn pin(&self) -> &PinRec {
        assert_eq!(self.pins.len(), 1, "expected one pin record: {self:#?}");
        &self.pins[0]
    }
    pub fn rule(&self, name: &str) -> &RuleRec {
        self.rules
            .iter()
            .find(|r| r.rule == name)
            .unwrap_or_else(|| panic!("no rule record {name}: {self:#?}"))
    }
    pub fn pins_of(&self, rule: &str) -> Vec<&PinRec> {
        self.pins
            .iter()
            .filter(|p| p.rule.as_deref() == Some(rule))
            .collect()
    }
    /// Asserts the exit status, showing everything when it is not.
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code(),
            Some(code),
            "exit status\nstdout: {}\nstderr: {}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// The binary, with no HOMELAB_*, DOCKER_HOST or CPU_PIN_* from the environment.
pub fn cpu_pin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cpu-pin"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HOMELAB_") || k.starts_with("CPU_PIN_") || k == "DOCKER_HOST" {
            c.env_remove(k);
        }
    }
    c
}

pub fn run(args: &[&str]) -> Run {
    parse(cpu_pin().args(args).output().expect("running cpu-pin"))
}

/// Runs cpu-pin and returns what it printed, unparsed (text and prom formats).
pub fn run_raw(args: &[&str]) -> (Option<i32>, String, String) {
    let o = cpu_pin().args(args).output().expect("running cpu-pin");
    (
        o.status.code(),
        String::from_utf8(o.stdout).expect("stdout is UTF-8"),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

pub fn parse(output: Output) -> Run {
    let stdout = String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8");
    let mut pins = Vec::new();
    let mut rules = Vec::new();
    for line in stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(v["v"], 1, "{line}");
        assert_eq!(v["tool"], "cpu-pin", "{line}");
        match v["kind"].as_str() {
            Some("pin") => {
                pins.push(serde_json::from_value(v).unwrap_or_else(|e| panic!("pin schema: {e}: {line}")))
            }
            Some("rule") => {
                rules.push(serde_json::from_value(v).unwrap_or_else(|e| panic!("rule schema: {e}: {line}")))
            }
            other => panic!("unknown kind {other:?}: {line}"),
        }
    }
    Run { output, pins, rules }
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A copy of a fixture tree in a temporary directory (cpu-pin writes cgroup files).
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    homelab_testkit::copy_tree(&fixture(name))
}

/// A plan file in a temporary directory.
pub fn plan_file(text: &str) -> (tempfile::TempDir, String) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("cpu-pin.conf");
    std::fs::write(&p, text).unwrap();
    (d, p.display().to_string())
}

/// This machine's online CPUs, from sysfs (not from cpu-pin).
pub fn online_cpus() -> Vec<usize> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let mut cpus = Vec::new();
    for item in text.trim().split(',') {
        match item.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().unwrap()..=b.parse().unwrap()),
            None => cpus.push(item.parse().unwrap()),
        }
    }
    assert!(
        cpus.len() >= 2,
        "these tests need two online CPUs or more, not {cpus:?}"
    );
    cpus
}

/// The last online CPU and every online CPU, as lists for --cpus.
pub fn last_cpu() -> String {
    online_cpus().last().unwrap().to_string()
}

pub fn first_cpu() -> String {
    online_cpus()[0].to_string()
}

pub fn all_cpus() -> String {
    let c = online_cpus();
    format!("{}-{}", c[0], c[c.len() - 1])
}

/// Every online CPU as [`affinity`] writes it: `0,1`.
pub fn all_cpus_listed() -> String {
    online_cpus()
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The CPUs a thread may run on, straight from sched_getaffinity(2), as a list
/// such as `1` or `0,1`.
pub fn affinity(tid: u32) -> String {
    let set = sched_getaffinity(Pid::from_raw(tid as i32))
        .unwrap_or_else(|e| panic!("sched_getaffinity({tid}): {e}"));
    (0..1024)
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The thread ids of a process.
pub fn tids(pid: u32) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// A thread's nice value, from /proc/PID/task/TID/stat (field 19).
pub fn nice(pid: u32, tid: u32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(16).unwrap().parse().unwrap()
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A name no other process on the machine has: `cpt<pid><n>`, at most 15 bytes so
/// it is a whole process name.
pub fn unique_name() -> String {
    format!(
        "cpt{}x{}",
        std::process::id() % 1_000_000,
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

/// Python run under a unique name: a symlink to python3 named `comm`, so the
/// process's name is ours alone and `--comm` can never reach someone else's.
pub struct Interpreter {
    _dir: tempfile::TempDir,
    pub exe: PathBuf,
    pub comm: String,
}

impl Interpreter {
    pub fn new() -> Interpreter {
        let dir = tempfile::tempdir().unwrap();
        let comm = unique_name();
        let exe = dir.path().join(&comm);
        std::os::unix::fs::symlink(python(), &exe).unwrap();
        Interpreter { _dir: dir, exe, comm }
    }
}

/// The real python3 binary (not a pyenv-style shim, which goes by its own name):
/// the system's (Debian package python3, which scripts/test installs), so that a
/// container can use it through a read-only mount of /usr.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let system = Path::new("/usr/bin/python3");
        let python = if system.exists() {
            system
        } else {
            Path::new("python3")
        };
        let out = Command::new(python)
            .args(["-c", "import os, sys; print(os.path.realpath(sys.executable))"])
            .output()
            .expect("python3 is needed by these tests (Debian package python3)");
        assert!(
            out.status.success(),
            "python3: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

pub fn helper_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/threads.py")
}

/// A tree of multi-threaded test processes (tests/helpers/threads.py), killed when
/// dropped.
pub struct Threaded {
    pub interp: Interpreter,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// Every process of the tree, the first one first.
    pub pids: Vec<u32>,
}

impl Threaded {
    /// `threads` extra threads in each process, `depth` generations of descendants.
    pub fn start(threads: usize, depth: usize, flags: &[&str]) -> Threaded {
        let interp = Interpreter::new();
        let mut child = Command::new(&interp.exe)
            .arg(helper_script())
            .arg(threads.to_string())
            .arg(depth.to_string())
            .args(flags)
            .env("CPT_EXE", &interp.exe)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the python helper");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut t = Threaded {
            interp,
            child,
            stdin,
            stdout,
            pids: Vec::new(),
        };
        for _ in 0..=depth {
            let line = t.line();
            let pid = line
                .strip_prefix("ready ")
                .unwrap_or_else(|| panic!("helper said {line:?}"))
                .parse()
                .unwrap();
            t.pids.push(pid);
        }
        // Parent and child print in any order: the first process goes first.
        let first = t.child.id();
        assert!(t.pids.contains(&first), "{:?} lacks {first}", t.pids);
        t.pids.retain(|&p| p != first);
        t.pids.insert(0, first);
        t
    }

    pub fn pid(&self) -> u32 {
        self.pids[0]
    }

    pub fn comm(&self) -> &str {
        &self.interp.comm
    }

    fn line(&mut self) -> String {
        let mut s = String::new();
        self.stdout.read_line(&mut s).expect("reading the helper");
        assert!(!s.is_empty(), "the helper exited");
        s.trim().to_string()
    }

    /// Starts one more thread in the first process; returns its id.
    pub fn spawn_thread(&mut self) -> u32 {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(b"spawn\n").unwrap();
        stdin.flush().unwrap();
        let line = self.line();
        line.strip_prefix("thread ")
            .unwrap_or_else(|| panic!("helper said {line:?}"))
            .parse()
            .unwrap()
    }

    /// Every thread of every process of the tree.
    pub fn all_tids(&self) -> Vec<u32> {
        self.pids.iter().flat_map(|&p| tids(p)).collect()
    }
}

impl Drop for Threaded {
    fn drop(&mut self) {
        drop(self.stdin.take());
        for &pid in self.pids.iter().rev() {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), nix::sys::signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// Waits until `pid` has `n` threads (a started thread shows in /proc a moment later).
pub fn wait_threads(pid: u32, n: usize) {
    wait_until(Duration::from_secs(10), &format!("{n} threads in {pid}"), || {
        tids(pid).len() >= n
    });
}
