//! The cgroup source: a container's figures read straight from its cgroup files,
//! which costs the Docker daemon nothing.
//!
//! cgroup v2 (Raspberry Pi OS bookworm, current Debian): one directory,
//! `/sys/fs/cgroup/system.slice/docker-<id>.scope` with the systemd driver or
//! `/sys/fs/cgroup/docker/<id>` with cgroupfs. cgroup v1 (older systems, this
//! project's CI): one directory per controller, `/sys/fs/cgroup/<controller>/docker/<id>`.
//! Either way the path is taken from the container's main process in
//! `/proc/<pid>/cgroup`, with the usual places as a fallback (a tool in a container
//! sees its own cgroup namespace there).

use std::str::FromStr;

use homelab_core::Root;
use homelab_core::root::ReadError;

use crate::usage::{Limit, Usage, canonical_cpu_list};

/// The fix for a kernel without the memory controller, as Raspberry Pi kernels ship.
pub const MEMORY_CONTROLLER_NOTE: &str = "the memory cgroup controller is disabled, so memory figures are unknown: \
add cgroup_enable=memory to the kernel command line (/boot/firmware/cmdline.txt on Raspberry Pi OS) and reboot";

/// The kernel's user-visible clock tick (USER_HZ), fixed at 100 on Linux: the unit of
/// `cpuacct.stat`.
const USER_HZ_NS: u64 = 10_000_000;

/// v1 values at or above this mean "no limit" (the kernel prints PAGE_COUNTER_MAX
/// in bytes, 9223372036854771712 with 4 KiB pages).
const V1_UNLIMITED: u64 = 1 << 62;

/// Which cgroup hierarchy the machine runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// Unified: `cgroup.controllers` at the top lists what is enabled.
    V2 { memory: bool, io: bool },
    /// Legacy: one mount per controller.
    V1 { memory: bool },
    /// No cgroup filesystem under the root.
    Missing,
}

impl Hierarchy {
    pub fn detect(root: &Root) -> Hierarchy {
        if let Ok(c) = root.read_string("/sys/fs/cgroup/cgroup.controllers") {
            let has = |name: &str| c.split_whitespace().any(|w| w == name);
            return Hierarchy::V2 {
                memory: has("memory"),
                io: has("io"),
            };
        }
        let v1 = ["cpuacct", "cpu,cpuacct", "memory", "pids"]
            .iter()
            .any(|c| root.exists(format!("/sys/fs/cgroup/{c}")));
        if v1 {
            Hierarchy::V1 {
                memory: root.exists("/sys/fs/cgroup/memory/memory.stat")
                    || root.exists("/sys/fs/cgroup/memory"),
            }
        } else {
            Hierarchy::Missing
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Hierarchy::V2 { .. } => "v2",
            Hierarchy::V1 { .. } => "v1",
            Hierarchy::Missing => "none",
        }
    }
}

/// One line of `/proc/<pid>/cgroup`: hierarchy id, controllers, path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcCgroup {
    pub id: u32,
    pub controllers: Vec<String>,
    pub path: String,
}

/// Parses `/proc/<pid>/cgroup`. `None` when it is not that file.
pub fn parse_proc_cgroup(text: &str) -> Option<Vec<ProcCgroup>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.splitn(3, ':');
        let id = parts.next()?.parse().ok()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        if !path.starts_with('/') {
            return None;
        }
        out.push(ProcCgroup {
            id,
            controllers: controllers
                .split(',')
                .filter(|c| !c.is_empty())
                .map(|c| c.strip_prefix("name=").unwrap_or(c).to_string())
                .collect(),
            path: path.to_string(),
        });
    }
    (!out.is_empty()).then_some(out)
}

/// Where a container's cgroup files are, as absolute paths under the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    V2 {
        dir: String,
    },
    /// Per controller: cpuacct, memory, blkio, pids, cpuset (those found).
    V1 {
        dirs: Vec<(&'static str, String)>,
    },
}

impl Location {
    /// The directory of a v1 controller.
    fn v1(&self, controller: &str) -> Option<&str> {
        match self {
            Location::V1 { dirs } => dirs
                .iter()
                .find(|(c, _)| *c == controller)
                .map(|(_, d)| d.as_str()),
            Location::V2 { .. } => None,
        }
    }

    /// The directory whose disappearance means the container is gone.
    pub fn main_dir(&self) -> Option<&str> {
        match self {
            Location::V2 { dir } => Some(dir),
            Location::V1 { dirs } => dirs.first().map(|(_, d)| d.as_str()),
        }
    }
}

const V1_CONTROLLERS: [&str; 5] = ["cpuacct", "memory", "blkio", "pids", "cpuset"];

/// Finds a container's cgroup from its main process (`pid`, 0 when unknown) and its
/// full id. `None` when no directory for it is found.
pub fn locate(root: &Root, hierarchy: &Hierarchy, pid: u32, full_id: &str) -> Option<Location> {
    let proc_lines = (pid > 0)
        .then(|| root.read_string(format!("/proc/{pid}/cgroup")).ok())
        .flatten()
        .and_then(|t| parse_proc_cgroup(&t))
        .unwrap_or_default();
    // A path that does not name the container is a cgroup namespace's view: ignore it.
    let own = |p: &str| !full_id.is_empty() && p.contains(full_id);
    let fallbacks = [
        format!("/system.slice/docker-{full_id}.scope"),
        format!("/docker/{full_id}"),
    ];
    match hierarchy {
        Hierarchy::V2 { .. } => {
            let from_proc = proc_lines
                .iter()
                .find(|l| l.id == 0 && l.controllers.is_empty() && own(&l.path))
                .map(|l| l.path.clone());
            from_proc
                .into_iter()
                .chain(fallbacks.iter().cloned())
                .map(|p| format!("/sys/fs/cgroup{p}"))
                .find(|d| root.exists(format!("{d}/cgroup.controllers")))
                .map(|dir| Location::V2 { dir })
        }
        Hierarchy::V1 { .. } => {
            let mut dirs = Vec::new();
            for c in V1_CONTROLLERS {
                let line = proc_lines
                    .iter()
                    .find(|l| l.controllers.iter().any(|x| x == c) && own(&l.path));
                let mut candidates = Vec::new();
                if let Some(l) = line {
                    candidates.push(format!("/sys/fs/cgroup/{c}{}", l.path));
                    candidates.push(format!("/sys/fs/cgroup/{}{}", l.controllers.join(","), l.path));
                }
                for f in &fallbacks {
                    candidates.push(format!("/sys/fs/cgroup/{c}{f}"));
                }
                if let Some(d) = candidates.into_iter().find(|d| root.exists(d)) {
                    dirs.push((c, d));
                }
            }
            // Without the CPU accounting directory there is nothing worth reading.
            dirs.iter()
                .any(|(c, _)| *c == "cpuacct")
                .then_some(Location::V1 { dirs })
        }
        Hierarchy::Missing => None,
    }
}

/// The container stopped or was removed while it was being read (its cgroup, or its
/// main process, went away): the caller looks again at what Docker says.
#[derive(Debug)]
pub struct Gone;

/// Reads everything ctr-stats reports from a container's cgroup.
pub fn read(root: &Root, hierarchy: &Hierarchy, loc: &Location) -> Result<Usage, Gone> {
    let mut u = Usage::default();
    match (hierarchy, loc) {
        (Hierarchy::V2 { memory, io }, Location::V2 { dir }) => read_v2(root, dir, *memory, *io, &mut u),
        (Hierarchy::V1 { memory }, Location::V1 { .. }) => read_v1(root, loc, *memory, &mut u),
        _ => u.errors.push("the cgroup hierarchy changed while running".into()),
    }
    // Files missing because the whole directory went away: the container stopped.
    if (u.cpu_total_ns.is_none() || !u.errors.is_empty())
        && let Some(d) = loc.main_dir()
        && !root.exists(d)
    {
        return Err(Gone);
    }
    Ok(u)
}

/// Whether a container's main process, missing from /proc, has exited rather than
/// being hidden (a `--root` whose /proc is another PID namespace's). It has exited
/// when the cgroup is gone, holds no process, or holds one that /proc does show.
/// A cgroup whose process list cannot be read says nothing: `false`.
pub fn main_process_exited(root: &Root, loc: &Location) -> bool {
    let Some(dir) = loc.main_dir() else {
        return false;
    };
    if !root.exists(dir) {
        return true;
    }
    match root.read_string(format!("{dir}/cgroup.procs")) {
        Ok(text) => {
            let mut pids = text.split_whitespace().peekable();
            pids.peek().is_none() || pids.any(|p| root.exists(format!("/proc/{p}")))
        }
        Err(_) => false,
    }
}

/// Reads only the CPU counter (the first reading of a `--window`).
pub fn read_cpu(root: &Root, loc: &Location) -> Option<u64> {
    match loc {
        Location::V2 { dir } => {
            let text = root.read_string(format!("{dir}/cpu.stat")).ok()?;
            Some(keyed(&text, "usage_usec")?.saturating_mul(1000))
        }
        Location::V1 { .. } => root
            .read_value(format!("{}/cpuacct.usage", loc.v1("cpuacct")?))
            .ok(),
    }
}

fn read_v2(root: &Root, dir: &str, memory: bool, io: bool, u: &mut Usage) {
    let mut errors = Vec::new();
    let e = &mut errors;
    if let Some(cpu) = text(root, &format!("{dir}/cpu.stat"), e) {
        let us = |k| keyed(&cpu, k).map(|v| v.saturating_mul(1000));
        u.cpu_total_ns = us("usage_usec");
        u.cpu_user_ns = us("user_usec");
        u.cpu_system_ns = us("system_usec");
        if u.cpu_total_ns.is_none() {
            e.push(format!("{dir}/cpu.stat: no usage_usec"));
        }
    }
    if memory {
        u.mem_usage = value(root, &format!("{dir}/memory.current"), e);
        if let Some(max) = text(root, &format!("{dir}/memory.max"), e) {
            u.mem_limit = parse_limit(&max, "max").unwrap_or_else(|| {
                e.push(format!("{dir}/memory.max: unexpected content {:?}", max.trim()));
                Limit::Unknown
            });
        }
        if let Some(stat) = text(root, &format!("{dir}/memory.stat"), e) {
            u.mem_rss = keyed(&stat, "anon");
            u.mem_cache = keyed(&stat, "file");
            let inactive = keyed(&stat, "inactive_file");
            u.set_working_set(inactive);
        }
    } else {
        e.push(MEMORY_CONTROLLER_NOTE.into());
    }
    if io && let Some(t) = text(root, &format!("{dir}/io.stat"), e) {
        match parse_io_stat(&t) {
            Some((r, w)) => (u.blk_read, u.blk_write) = (Some(r), Some(w)),
            None => e.push(format!("{dir}/io.stat: not the kernel's format")),
        }
    }
    u.pids = value(root, &format!("{dir}/pids.current"), e);
    u.cpuset = root
        .read_string(format!("{dir}/cpuset.cpus.effective"))
        .ok()
        .and_then(|s| canonical_cpu_list(&s));
    u.errors.append(&mut errors);
}

fn read_v1(root: &Root, loc: &Location, memory: bool, u: &mut Usage) {
    let mut errors = Vec::new();
    let e = &mut errors;
    if let Some(d) = loc.v1("cpuacct") {
        u.cpu_total_ns = value(root, &format!("{d}/cpuacct.usage"), e);
        if let Some(stat) = text(root, &format!("{d}/cpuacct.stat"), e) {
            u.cpu_user_ns = keyed(&stat, "user").map(|t| t.saturating_mul(USER_HZ_NS));
            u.cpu_system_ns = keyed(&stat, "system").map(|t| t.saturating_mul(USER_HZ_NS));
        }
    }
    match loc.v1("memory") {
        Some(d) => {
            u.mem_usage = value(root, &format!("{d}/memory.usage_in_bytes"), e);
            if let Some(lim) = value::<u64>(root, &format!("{d}/memory.limit_in_bytes"), e) {
                u.mem_limit = if lim >= V1_UNLIMITED {
                    Limit::Unlimited
                } else {
                    Limit::Bytes(lim)
                };
            }
            if let Some(stat) = text(root, &format!("{d}/memory.stat"), e) {
                u.mem_rss = keyed(&stat, "total_rss");
                u.mem_cache = keyed(&stat, "total_cache");
                u.set_working_set(keyed(&stat, "total_inactive_file"));
            }
        }
        None if !memory => e.push(MEMORY_CONTROLLER_NOTE.into()),
        None => e.push("no memory cgroup directory found for the container".into()),
    }
    if let Some(d) = loc.v1("blkio") {
        // The files docker's runc reads, in its order: the first with entries wins.
        let files = [
            "blkio.bfq.io_service_bytes_recursive",
            "blkio.io_service_bytes_recursive",
            "blkio.throttle.io_service_bytes_recursive",
            "blkio.throttle.io_service_bytes",
        ];
        let mut seen_a_file = false;
        for f in files {
            let Ok(t) = root.read_string(format!("{d}/{f}")) else {
                continue;
            };
            seen_a_file = true;
            match parse_blkio_v1(&t) {
                Some(Some((r, w))) => {
                    (u.blk_read, u.blk_write) = (Some(r), Some(w));
                    break;
                }
                Some(None) => (u.blk_read, u.blk_write) = (Some(0), Some(0)),
                None => {
                    e.push(format!("{d}/{f}: not the kernel's format"));
                    break;
                }
            }
        }
        if !seen_a_file {
            e.push(format!("{d}: no blkio statistics files"));
        }
    }
    if let Some(d) = loc.v1("pids") {
        u.pids = value(root, &format!("{d}/pids.current"), e);
    }
    if let Some(d) = loc.v1("cpuset") {
        u.cpuset = root
            .read_string(format!("{d}/cpuset.effective_cpus"))
            .or_else(|_| root.read_string(format!("{d}/cpuset.cpus")))
            .ok()
            .and_then(|s| canonical_cpu_list(&s));
    }
    u.errors.append(&mut errors);
}

/// Reads a file, or notes why not.
fn text(root: &Root, path: &str, errors: &mut Vec<String>) -> Option<String> {
    root.read_string(path).map_err(|e| note(errors, e)).ok()
}

/// Reads a one-value file, or notes why not.
fn value<T: FromStr>(root: &Root, path: &str, errors: &mut Vec<String>) -> Option<T> {
    root.read_value(path).map_err(|e| note(errors, e)).ok()
}

fn note(errors: &mut Vec<String>, e: ReadError) {
    errors.push(e.to_string());
}

/// A value of a flat keyed file (`cpu.stat`, `memory.stat`, `cpuacct.stat`).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// `memory.max` (v2: a number or `max`). `None` when it is neither.
pub fn parse_limit(text: &str, unlimited_word: &str) -> Option<Limit> {
    let t = text.trim();
    if t == unlimited_word {
        return Some(Limit::Unlimited);
    }
    t.parse().ok().map(Limit::Bytes)
}

/// Sums `rbytes` and `wbytes` over the devices of a v2 `io.stat`
/// (`8:0 rbytes=1 wbytes=2 rios=...`). An empty file is zero; `None` when it is not
/// that format.
pub fn parse_io_stat(text: &str) -> Option<(u64, u64)> {
    let (mut r, mut w) = (0u64, 0u64);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split_whitespace();
        let dev = fields.next()?;
        dev.split_once(':')?;
        for f in fields {
            let (k, v) = f.split_once('=')?;
            let v: u64 = v.parse().ok()?;
            match k {
                "rbytes" => r = r.saturating_add(v),
                "wbytes" => w = w.saturating_add(v),
                _ => {}
            }
        }
    }
    Some((r, w))
}

/// Sums Read and Write over the devices of a v1 blkio `*io_service_bytes*` file
/// (`8:0 Read 4096`, ..., `Total 0`). `Some(None)` when it has no device entries,
/// `None` when it is not that format.
pub fn parse_blkio_v1(text: &str) -> Option<Option<(u64, u64)>> {
    let (mut r, mut w, mut entries) = (0u64, 0u64, 0);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["Total", n] => {
                n.parse::<u64>().ok()?;
            }
            [dev, op, n] => {
                dev.split_once(':')?;
                let n: u64 = n.parse().ok()?;
                entries += 1;
                match *op {
                    "Read" => r = r.saturating_add(n),
                    "Write" => w = w.saturating_add(n),
                    _ => {}
                }
            }
            _ => return None,
        }
    }
    Some((entries > 0).then_some((r, w)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_cgroup_v1_and_v2() {
        let v1 =
            "9:name=systemd:/docker/abc\n4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/docker/abc\n";
        let l = parse_proc_cgroup(v1).unwrap();
        assert_eq!(l.len(), 4);
        assert_eq!(l[0].controllers, ["systemd"]);
        assert_eq!(l[2].controllers, ["cpu", "cpuacct"]);
        assert_eq!(l[3].controllers, Vec::<String>::new());
        assert_eq!(l[3].path, "/docker/abc");
        let v2 = "0::/system.slice/docker-abc.scope\n";
        assert_eq!(
            parse_proc_cgroup(v2).unwrap()[0].path,
            "/system.slice/docker-abc.scope"
        );
        assert_eq!(parse_proc_cgroup(""), None);
        assert_eq!(parse_proc_cgroup("garbage"), None);
        assert_eq!(parse_proc_cgroup("x::/a"), None);
        assert_eq!(parse_proc_cgroup("0::relative"), None);
    }

    #[test]
    fn flat_keyed_files() {
        let cpu = "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\nnr_periods 0\n";
        assert_eq!(keyed(cpu, "usage_usec"), Some(1_500_000));
        assert_eq!(keyed(cpu, "system_usec"), Some(500_000));
        assert_eq!(keyed(cpu, "usage"), None);
        assert_eq!(keyed("anon x\n", "anon"), None);
        // A key that is a prefix of another is not confused with it.
        assert_eq!(keyed("file_mapped 5\nfile 7\n", "file"), Some(7));
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit("max\n", "max"), Some(Limit::Unlimited));
        assert_eq!(parse_limit("67108864\n", "max"), Some(Limit::Bytes(67_108_864)));
        assert_eq!(parse_limit("lots", "max"), None);
    }

    #[test]
    fn io_stat_sums_devices() {
        let t = "8:0 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n\
                 259:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n";
        assert_eq!(parse_io_stat(t), Some((1_459_300, 314_773_704)));
        assert_eq!(parse_io_stat(""), Some((0, 0)));
        assert_eq!(parse_io_stat("8:0 rbytes=x"), None);
        assert_eq!(parse_io_stat("garbage rbytes=1"), None);
    }

    #[test]
    fn blkio_v1_sums_read_and_write() {
        let t = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Discard 0\n8:0 Total 12288\n\
                 8:16 Read 1\n8:16 Write 2\nTotal 12291\n";
        assert_eq!(parse_blkio_v1(t), Some(Some((4097, 8194))));
        assert_eq!(parse_blkio_v1("Total 0\n"), Some(None));
        assert_eq!(parse_blkio_v1(""), Some(None));
        assert_eq!(parse_blkio_v1("8:0 Read many\n"), None);
        assert_eq!(parse_blkio_v1("what is this\nreally now\n"), None);
    }
}
