//! A cgroup's cpuset, cgroup v2 or v1: `cpuset.cpus` (v1 mounted with `noprefix`:
//! `cpus`), what the kernel grants (`cpuset.cpus.effective`, v1
//! `cpuset.effective_cpus`), and the threads in it (`cgroup.threads`, v1 `tasks`).
//! The cpuset covers every process and thread in the cgroup, present and future.

use std::io;
use std::path::PathBuf;

use homelab_core::exit::describe_io;
use homelab_core::{Exit, Root};

use crate::cpulist::CpuList;
use crate::threads::Problem;

/// One cgroup directory with a cpuset.
#[derive(Debug, Clone)]
pub struct Cgroup {
    /// The directory as the system names it (`/sys/fs/cgroup/ollama.slice`).
    pub shown: String,
    dir: String,
    /// The cpuset file name in it.
    file: &'static str,
    pub v2: bool,
}

const V2_MOUNT: &str = "/sys/fs/cgroup";
const V1_MOUNT: &str = "/sys/fs/cgroup/cpuset";

impl Cgroup {
    /// Finds the cgroup: an absolute directory, or a path relative to the cgroup v2
    /// mount or, failing that, the v1 cpuset mount.
    pub fn open(root: &Root, path: &str) -> Result<Cgroup, Problem> {
        let candidates: Vec<String> = if path.starts_with('/') {
            vec![path.trim_end_matches('/').to_string()]
        } else {
            let rel = path.trim_end_matches('/');
            vec![format!("{V2_MOUNT}/{rel}"), format!("{V1_MOUNT}/{rel}")]
        };
        let dir = candidates
            .iter()
            .find(|d| root.path(d).is_dir())
            .ok_or_else(|| {
                Problem::new(
                    Exit::NoInput,
                    format!(
                        "no cgroup {}: give the cgroup's directory, e.g. /sys/fs/cgroup/ollama.slice (v2) or \
/sys/fs/cgroup/cpuset/ollama (v1)",
                        candidates.join(" or ")
                    ),
                )
            })?
            .clone();
        let v2 = root.exists(format!("{dir}/cgroup.controllers"));
        let file = ["cpuset.cpus", "cpus"]
            .into_iter()
            .find(|f| root.exists(format!("{dir}/{f}")))
            .ok_or_else(|| {
                let hint = if v2 {
                    "the cpuset controller is not enabled for it: echo +cpuset > PARENT/cgroup.subtree_control \
(for systemd units, set AllowedCPUs= instead)"
                } else {
                    "it is not in the cpuset hierarchy (cgroup v1: use a directory under /sys/fs/cgroup/cpuset)"
                };
                Problem::new(Exit::Config, format!("{dir} has no cpuset.cpus: {hint}"))
            })?;
        Ok(Cgroup {
            shown: dir.clone(),
            dir,
            file,
            v2,
        })
    }

    fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }

    /// The configured CPUs (empty on v2 means "the parent's").
    pub fn cpus(&self, root: &Root) -> Result<CpuList, Problem> {
        let p = self.path(self.file);
        let text = root
            .read_string(&p)
            .map_err(|e| Problem::new(Exit::IoErr, e.to_string()))?;
        CpuList::parse(&text).map_err(|e| Problem::new(Exit::DataErr, format!("{p}: {e}")))
    }

    /// The CPUs the kernel grants (None when the file is absent or unreadable).
    pub fn effective(&self, root: &Root) -> Option<CpuList> {
        let name = match (self.v2, self.file) {
            (true, _) => "cpuset.cpus.effective",
            (false, "cpus") => "effective_cpus",
            (false, _) => "cpuset.effective_cpus",
        };
        CpuList::parse(&root.read_string(self.path(name)).ok()?).ok()
    }

    /// How many threads are in the cgroup itself (not its children).
    pub fn threads(&self, root: &Root) -> Option<usize> {
        let name = if self.v2 { "cgroup.threads" } else { "tasks" };
        let text = root.read_limited(self.path(name), 64 << 20).ok()?;
        Some(text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count())
    }

    /// cgroup v1 answers EACCES, even to root, when a cpuset is not a subset of its
    /// parent's (the kernel's `validate_change`): that is a configuration error naming
    /// the parent's CPUs, not a permission problem. None for any other failure.
    fn not_within_parent(&self, root: &Root, cpus: &CpuList, e: &io::Error) -> Option<Problem> {
        if e.kind() != io::ErrorKind::PermissionDenied {
            return None;
        }
        let (parent, _) = self.dir.rsplit_once('/').filter(|(p, _)| !p.is_empty())?;
        let parent_file = format!("{parent}/{}", self.file);
        let allowed = CpuList::parse(&root.read_string(&parent_file).ok()?).ok()?;
        if cpus.is_subset(&allowed) {
            return None;
        }
        let grants = if allowed.is_empty() {
            "no CPUs".to_string()
        } else {
            format!("only CPUs {allowed}")
        };
        Some(Problem::new(
            Exit::Config,
            format!(
                "writing {cpus} to {}: the parent cgroup {parent} allows {grants}, and a cgroup v1 cpuset must be \
a subset of its parent's: widen {parent_file} first, or choose CPUs within it",
                self.path(self.file)
            ),
        ))
    }

    /// Writes the cpuset.
    pub fn write(&self, root: &Root, cpus: &CpuList) -> Result<(), Problem> {
        let p = self.path(self.file);
        let real: PathBuf = root.path(&p);
        // The file exists (open checked it): never create one in a fixture by mistake.
        let result = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&real)
            .and_then(|mut f| io::Write::write_all(&mut f, format!("{cpus}\n").as_bytes()));
        result.map_err(|e| {
            if let Some(problem) = self.not_within_parent(root, cpus, &e) {
                return problem;
            }
            let (code, hint) = match (e.kind(), e.raw_os_error()) {
                (io::ErrorKind::PermissionDenied, _) => (
                    Exit::NoPerm,
                    "run cpu-pin as root (cgroup files belong to root or the cgroup's delegate)",
                ),
                (_, Some(libc_einval)) if libc_einval == nix::errno::Errno::EINVAL as i32 => (
                    Exit::Config,
                    "the parent cgroup does not grant these CPUs (widen the parent's cpuset first)",
                ),
                (_, Some(busy)) if busy == nix::errno::Errno::EBUSY as i32 => (
                    Exit::TempFail,
                    "the kernel refused the change while the cgroup is in use (a child cgroup uses CPUs \
this list drops); change the children first",
                ),
                _ => (Exit::IoErr, "check the cgroup directory"),
            };
            Problem::new(
                code,
                format!("writing {cpus} to {p}: {}: {hint}", describe_io(&e)),
            )
        })
    }
}
