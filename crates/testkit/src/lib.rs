//! Helpers for integration tests, shared by every tool so none writes them again.
//!
//! Services are started by `scripts/test`, which exports where they listen. A test
//! that needs one and runs outside `scripts/test` fails with a message saying so:
//! it never passes by skipping.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Every key of a JSON value, nested objects and lists included: the fields a man
/// page must document.
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

/// Whether a rendered man page names `name` in bold, as its OUTPUT and METRICS
/// sections do (`\fBname\fR`, hyphens written as roff minus signs).
pub fn man_documents(man: &str, name: &str) -> bool {
    man.contains(&format!("\\fB{}\\fR", name.replace('-', "\\-")))
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
        self.start_named(&self.unique_name(prefix), options, cmd)
    }

    /// [`Docker::start`] under a given name, e.g. to recreate a removed container
    /// under its old name as `docker compose` does. The label is `hlt.test=<name>`.
    pub fn start_named(&self, name: &str, options: &[&str], cmd: &[&str]) -> Container {
        let name = name.to_string();
        let label = format!("{TEST_LABEL}={name}");
        let mut args = vec![
            "run",
            "-d",
            "--network",
            "none",
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
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.docker.output(&["rm", "-f", &self.id]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keys_reach_nested_objects_and_lists() {
        let v = serde_json::json!({"a": 1, "b": [{"c": null}, {"d": {"e": true}}]});
        let mut keys = std::collections::BTreeSet::new();
        json_keys(&v, &mut keys);
        assert_eq!(keys.into_iter().collect::<Vec<_>>(), ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn man_documents_bold_names_with_roff_hyphens() {
        let man = ".TP\n\\fBcpus_before\\fR\n\\fB\\-\\-docker\\-host\\fR\n";
        assert!(man_documents(man, "cpus_before"));
        assert!(man_documents(man, "--docker-host"));
        assert!(!man_documents(man, "cpus"));
    }
}
