//! The records cpu-pin writes (the man page's OUTPUT section lists every field).

use serde::Serialize;

use crate::cpulist::CpuList;

/// `kind: pin`: one process, container or cgroup, before and after.
#[derive(Debug, Clone, Serialize, Default)]
pub struct PinRecord {
    /// The plan rule's name; null for `set` and `show`.
    pub rule: Option<String>,
    /// The selector that found it: `pid=4242`, `comm=prometheus|loki`, `container=ollama`, ...
    pub target: String,
    /// The process id (a container's main process); null for a cgroup.
    pub pid: Option<u32>,
    /// The process name; null for containers and cgroups.
    pub comm: Option<String>,
    pub container: Option<String>,
    pub container_id: Option<String>,
    pub cgroup: Option<String>,
    /// Threads covered (every thread of every process; for a cgroup, its threads).
    pub threads: usize,
    /// The CPUs the rule or --cpus asks for; null for `show`.
    pub cpus: Option<CpuList>,
    /// The CPUs the threads could run on (the union over threads); for a cgroup,
    /// the CPUs the kernel grants it. Null when there is no thread to read.
    pub cpus_before: Option<CpuList>,
    pub cpus_after: Option<CpuList>,
    /// A container's Docker cpuset or a cgroup's `cpuset.cpus` (empty: every
    /// CPU); null for processes.
    pub cpuset_before: Option<CpuList>,
    pub cpuset_after: Option<CpuList>,
    /// The nice value the rule asks for (null: left alone).
    pub nice: Option<i32>,
    /// The main thread's nice value; null for cgroups.
    pub nice_before: Option<i32>,
    pub nice_after: Option<i32>,
    /// Threads grouped by the CPUs they may run on now.
    pub affinity: Vec<AffinityGroup>,
    /// Threads (or the cpuset) that differed from the rule before this run; null for `show`.
    pub threads_drifted: Option<usize>,
    /// Threads written by this run.
    pub threads_changed: usize,
    /// Whether anything was written (thread masks, nice values, a cpuset).
    pub changed: bool,
    /// Whether the target differs from the rule after this run; null for `show`.
    pub drift: Option<bool>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AffinityGroup {
    pub cpus: CpuList,
    pub tids: Vec<u32>,
}

/// `kind: rule`: one plan rule after `apply` or `check`, what its metrics say.
#[derive(Debug, Clone, Serialize)]
pub struct RuleRecord {
    pub rule: String,
    pub target: String,
    pub cpus: CpuList,
    pub nice: Option<i32>,
    /// Processes, containers or cgroups the rule found.
    pub targets: usize,
    pub threads: usize,
    pub threads_drifted: usize,
    pub threads_changed: usize,
    pub changed: bool,
    pub drift: bool,
    pub errors: Vec<String>,
}
