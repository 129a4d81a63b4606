//! Helpers for integration tests, shared by every tool so none writes them again.
//!
//! Services are started by `scripts/test`, which exports where they listen. A test
//! that needs one and runs outside `scripts/test` fails with a message saying so:
//! it never passes by skipping.

pub mod ollama;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// The value of a variable `scripts/test` exports for a service.
pub fn service_env(var: &str, what: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: this test needs {what}; run it through scripts/test, which starts it")
    })
}

/// Polls `ready` every 20 ms until it is true; panics after `limit` naming `what`.
pub fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Copies an executable (mode 0755) with install(1), in a child process. A copy
/// written by the test process itself would be open for writing while another test
/// thread forks; the forked child keeps that descriptor until it execs, and running
/// the copy meanwhile fails with ETXTBSY, "Text file busy" (rust-lang/rust#114554).
pub fn copy_executable(src: &std::path::Path, dest: &std::path::Path) {
    let out = Command::new("install")
        .args(["-m", "0755"])
        .arg(src)
        .arg(dest)
        .output()
        .expect("install(1) from coreutils");
    assert!(
        out.status.success(),
        "install {} {}: {}",
        src.display(),
        dest.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes a script or other executable (mode 0755) that a test then runs. The text
/// goes to a file beside it first, which [`copy_executable`] installs from a child
/// process, for the same reason: no descriptor of this process ever has `dest` open
/// for writing, so a fork in another test thread cannot make exec fail with ETXTBSY.
pub fn write_executable(dest: &Path, text: &str) {
    let mut draft = dest.as_os_str().to_owned();
    draft.push(".draft");
    let draft = PathBuf::from(draft);
    std::fs::write(&draft, text).unwrap_or_else(|e| panic!("writing {}: {e}", draft.display()));
    copy_executable(&draft, dest);
    std::fs::remove_file(&draft).unwrap_or_else(|e| panic!("removing {}: {e}", draft.display()));
}

/// Each crate's integration tests are one test binary, so tests of different files run
/// side by side on the test threads. A test that changes or measures what the whole
/// machine shows (a package installed into /usr/bin, a CPU burner measured against
/// everything else) holds [`alone`]; the tests it would disturb, or be disturbed by,
/// hold [`shared`]: they still run beside each other, never beside it.
static MACHINE: RwLock<()> = RwLock::new(());

/// Waits until no test holding [`shared`] runs, and keeps them waiting while held.
pub fn alone() -> RwLockWriteGuard<'static, ()> {
    // A test that failed while holding the lock leaves nothing to repair.
    MACHINE.write().unwrap_or_else(PoisonError::into_inner)
}

/// Waits while a test holding [`alone`] runs.
pub fn shared() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(PoisonError::into_inner)
}

/// GET a URL over plain HTTP and return the body.
pub fn http_get(url: &str) -> String {
    ureq::get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .body_mut()
        .read_to_string()
        .unwrap_or_else(|e| panic!("GET {url}: reading the body: {e}"))
}

/// Runs `promtool check metrics` on a page; panics with its report when it fails.
pub fn promtool_check_metrics(page: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is needed (Debian package prometheus; scripts/test installs it)");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(page.as_bytes())
        .expect("writing to promtool");
    let out = child.wait_with_output().expect("waiting for promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- page ---\n{page}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A sample's value from a Prometheus page, by the exact series text before the
/// value: `pi_load1` or `pi_temperature_celsius{sensor="nvme",input="temp1"}`.
pub fn series(page: &str, name_and_labels: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' ')?.parse().ok())
}

/// A Prometheus page with the value of every series that starts with one of
/// `prefixes` replaced by `<varies>`: values that depend on the machine or the time
/// of the run, not on the fixture, before comparing with a golden file.
pub fn mask_values(page: &str, prefixes: &[&str]) -> String {
    page.lines()
        .map(|l| match l.rsplit_once(' ') {
            Some((series, _)) if prefixes.iter().any(|p| l.starts_with(p)) => {
                format!("{series} <varies>\n")
            }
            _ => format!("{l}\n"),
        })
        .collect()
}

#[cfg(test)]
mod mask_values_tests {
    #[test]
    fn masks_only_the_named_series() {
        let page = "# TYPE a gauge\na{x=\"1 2\"} 5\nb 7\nab 3\n";
        assert_eq!(
            super::mask_values(page, &["a{", "ab "]),
            "# TYPE a gauge\na{x=\"1 2\"} <varies>\nb 7\nab <varies>\n"
        );
    }
}

/// A copy of a directory tree in a new temporary directory (fixtures to break).
pub fn copy_tree(from: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(dir.path())
        .status()
        .expect("running cp");
    assert!(status.success(), "cp -a {} failed", from.display());
    dir
}

/// The Docker engine `scripts/test` started (or found): `DOCKER_HOST` and the
/// tiny local image `HLT_DOCKER_IMAGE` (busybox, imported; no registry here).
#[derive(Debug, Clone)]
pub struct Docker {
    pub host: String,
    pub image: String,
}

/// Label on every container a test starts, so tests sharing one engine can tell
/// theirs apart and stale ones can be removed.
pub const TEST_LABEL: &str = "hlt.test";

static SEQ: AtomicUsize = AtomicUsize::new(0);

pub fn docker() -> Docker {
    Docker {
        host: service_env("DOCKER_HOST", "the Docker engine"),
        image: service_env("HLT_DOCKER_IMAGE", "the local busybox image"),
    }
}

impl Docker {
    /// `docker` talking to this engine.
    pub fn command(&self) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", &self.host);
        c
    }

    /// Runs `docker args...`; panics with its stderr when it fails; returns stdout trimmed.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs `docker args...` and returns whatever happened.
    pub fn output(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("running docker")
    }

    /// A unique container name for this test process: `<prefix>-<pid>-<n>`.
    pub fn unique_name(&self, prefix: &str) -> String {
        format!(
            "{prefix}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        )
    }

    /// `docker run -d --network none --label hlt.test=<name> --name <unique> OPTIONS IMAGE CMD...`.
    /// `options` go before the image (e.g. `["--memory", "64m"]`), `cmd` after it. The
    /// container is removed when the returned guard is dropped.
    pub fn start(&self, prefix: &str, options: &[&str], cmd: &[&str]) -> Container {
        self.start_on_network(prefix, "none", options, cmd)
    }

    /// Like [`Docker::start`] on another network mode: `host` is the only other one
    /// this engine has (no bridge), for tests of host networking. Docker refuses a
    /// second `--network`, so it cannot go in `options`.
    pub fn start_on_network(&self, prefix: &str, network: &str, options: &[&str], cmd: &[&str]) -> Container {
        let name = self.unique_name(prefix);
        let label = format!("{TEST_LABEL}={name}");
        let mut args = vec![
            "run",
            "-d",
            "--network",
            network,
            "--label",
            &label,
            "--name",
            &name,
        ];
        args.extend_from_slice(options);
        args.push(&self.image);
        args.extend_from_slice(cmd);
        let id = self.run(&args);
        Container {
            docker: self.clone(),
            id,
            name,
        }
    }

    /// `docker inspect --format FORMAT target`.
    pub fn inspect(&self, target: &str, format: &str) -> String {
        self.run(&["inspect", "--format", format, target])
    }
}

/// A container that is removed (`docker rm -f`) when dropped.
#[derive(Debug)]
pub struct Container {
    pub docker: Docker,
    /// The full 64-hex id.
    pub id: String,
    pub name: String,
}

impl Container {
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }

    pub fn inspect(&self, format: &str) -> String {
        self.docker.inspect(&self.id, format)
    }

    /// The container's main process id on the host (0 when it is not running).
    pub fn pid(&self) -> u32 {
        self.inspect("{{.State.Pid}}").parse().unwrap_or(0)
    }

    /// Gives a `--network none` container network traffic of its own: a veth pair
    /// (eth1, eth2) inside its namespace, with ARP probes sent on eth1 arriving on
    /// eth2, none of it leaving the namespace. Needs `--cap-add NET_ADMIN` and the
    /// busybox image's `ip` and `arping`.
    pub fn add_veth_pair(&self) {
        self.docker.run(&[
            "exec",
            &self.id,
            "sh",
            "-c",
            "ip link add eth1 type veth peer name veth0 && ip link set veth0 name eth2 && \
             ip link set eth1 up && ip link set eth2 up && ip addr add 169.254.77.1/30 dev eth1 && \
             arping -c 3 -w 3 -I eth1 169.254.77.2 >/dev/null; true",
        ]);
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.docker.output(&["rm", "-f", &self.id]);
    }
}

/// Every key of a JSON value, nested objects and lists included (to check that a man
/// page documents every field a tool writes).
pub fn json_keys(v: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                out.insert(k.clone());
                json_keys(v, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| json_keys(v, out)),
        _ => {}
    }
}

/// The names a man page (roff) does not document in bold (`\fBname\fR`).
pub fn undocumented<'a>(man: &str, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    names
        .into_iter()
        .filter(|n| !man.contains(&format!("\\fB{}\\fR", n.replace('-', "\\-"))))
        .map(str::to_string)
        .collect()
}

/// Compares `actual` with the golden file `path`; `UPDATE_GOLDEN=1` rewrites it.
pub fn assert_golden(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("a golden file has a directory"))
            .expect("creating golden/");
        std::fs::write(path, actual).expect("writing the golden file");
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        actual == expected,
        "output differs from {} (UPDATE_GOLDEN=1 to accept):\n--- actual ---\n{actual}",
        path.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_documentation() {
        let mut keys = std::collections::BTreeSet::new();
        json_keys(
            &serde_json::json!({"a": 1, "b": [{"c": null}], "d": {"e-f": 2}}),
            &mut keys,
        );
        assert_eq!(keys.into_iter().collect::<Vec<_>>(), ["a", "b", "c", "d", "e-f"]);
        let man = ".TP\n\\fBa\\fR\n\\fBe\\-f\\fR and c";
        assert_eq!(undocumented(man, ["a", "c", "e-f"]), ["c"]);
    }
}

/// Runs `program args...` on a pseudo-terminal (script(1)), its standard error off
/// the terminal, with `NO_COLOR` unset or set to `no_color`: its exit status and
/// what the terminal showed of its standard output (`\r\n` line ends). For "colour
/// on a terminal, never with NO_COLOR" tests of a text view.
pub fn on_terminal(program: &Path, args: &[&str], no_color: Option<&str>) -> (Option<i32>, String) {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let cmd = std::iter::once(quote(&program.to_string_lossy()))
        .chain(args.iter().map(|a| quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
        + " 2>/dev/null";
    let mut c = std::process::Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"]).env_remove("NO_COLOR");
    if let Some(v) = no_color {
        c.env("NO_COLOR", v);
    }
    let out = c.output().expect("running script(1) (util-linux)");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}
