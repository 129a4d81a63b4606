//! Processes, from procfs under the root: ids, names, command lines, parents, the
//! kernel-thread flag, threads (`/proc/N/task`) and cgroup membership. Parsers are
//! pure; a process that vanishes while it is read is simply not there.

use std::collections::{HashMap, HashSet};

use homelab_core::Root;

pub use homelab_core::proc::{Stat, parse_stat};

/// The process ids in `/proc`, ascending.
pub fn pids(root: &Root) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir(root.path("/proc")) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids
}

/// Masks are set by thread id, so the processes read under the root must be the
/// ones cpu-pin's own PID namespace sees: `<root>/proc/self` must name this very
/// process. An error says what to do otherwise; a root without /proc (a fixture
/// tree) holds no process to mistake.
pub fn check_namespace(root: &Root) -> Result<(), String> {
    if root.is_host() || !root.exists("/proc") {
        return Ok(());
    }
    let me = std::process::id().to_string();
    match std::fs::read_link(root.path("/proc/self")) {
        Ok(p) if p.as_os_str() == me.as_str() => Ok(()),
        _ => Err(format!(
            "{} is not the /proc of cpu-pin's PID namespace, so its process ids are not the ones cpu-pin \
would pin: run cpu-pin's container with --pid host (or leave --root out)",
            root.path("/proc").display()
        )),
    }
}

pub fn exists(root: &Root, pid: u32) -> bool {
    root.exists(format!("/proc/{pid}/task"))
}

pub fn comm(root: &Root, pid: u32) -> Option<String> {
    let bytes = root.read(format!("/proc/{pid}/comm")).ok()?;
    let s = String::from_utf8_lossy(&bytes);
    Some(s.strip_suffix('\n').unwrap_or(&s).to_string())
}

/// The command line with its arguments joined by spaces (empty for kernel threads
/// and zombies).
pub fn cmdline(root: &Root, pid: u32) -> Option<String> {
    let bytes = root.read_limited(format!("/proc/{pid}/cmdline"), 1 << 20).ok()?;
    Some(join_cmdline(&bytes))
}

/// `/proc/N/cmdline` (NUL-separated, usually NUL-terminated) as one line.
pub fn join_cmdline(bytes: &[u8]) -> String {
    let trimmed = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    String::from_utf8_lossy(trimmed).replace('\0', " ")
}

pub fn stat(root: &Root, pid: u32) -> Option<Stat> {
    parse_stat(&root.read_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The thread ids of a process, or None when the process is gone.
pub fn tasks(root: &Root, pid: u32) -> Option<Vec<u32>> {
    let rd = std::fs::read_dir(root.path(format!("/proc/{pid}/task"))).ok()?;
    let mut tids: Vec<u32> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Some(tids)
}

/// Every descendant of `parents` (children, grandchildren, ...), from one pass over
/// every process's parent id. Parents themselves are not included.
pub fn descendants(root: &Root, parents: &[u32]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for pid in pids(root) {
        if let Some(st) = stat(root, pid) {
            children.entry(st.ppid).or_default().push(pid);
        }
    }
    let mut seen: HashSet<u32> = parents.iter().copied().collect();
    let mut out = Vec::new();
    let mut stack: Vec<u32> = parents.to_vec();
    while let Some(p) = stack.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            if seen.insert(c) {
                out.push(c);
                stack.push(c);
            }
        }
    }
    out.sort_unstable();
    out
}

/// The processes whose `/proc/N/cgroup` names one of the container ids (any driver
/// puts the full id in the path: `/docker/<id>`, `docker-<id>.scope`), by id.
pub fn cgroup_members(root: &Root, ids: &[&str]) -> HashMap<String, Vec<u32>> {
    let mut out: HashMap<String, Vec<u32>> = HashMap::new();
    if ids.is_empty() {
        return out;
    }
    for pid in pids(root) {
        let Ok(text) = root.read_string(format!("/proc/{pid}/cgroup")) else {
            continue;
        };
        if let Some(id) = ids.iter().find(|id| text.contains(*id)) {
            out.entry(id.to_string()).or_default().push(pid);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_a_hostile_name() {
        let s = parse_stat("4242 (a) b (c) S 17 4242 4242 0 -1 4194560 120 0 0 0").unwrap();
        assert_eq!(s.ppid, 17);
        assert_eq!(s.flags, 4194560);
        assert!(!s.is_kernel_thread());
        let k = parse_stat("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0").unwrap();
        assert!(k.is_kernel_thread());
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn cmdline_is_joined() {
        assert_eq!(join_cmdline(b"python3\0-u\0bot.py\0"), "python3 -u bot.py");
        assert_eq!(join_cmdline(b""), "");
        assert_eq!(join_cmdline(b"sh -c x"), "sh -c x");
    }

    #[test]
    fn another_namespaces_proc_is_refused() {
        assert!(check_namespace(&Root::default()).is_ok());
        let d = tempfile::tempdir().unwrap();
        assert!(
            check_namespace(&Root::new(d.path())).is_ok(),
            "no /proc: nothing to mistake"
        );
        std::fs::create_dir(d.path().join("proc")).unwrap();
        std::os::unix::fs::symlink("1", d.path().join("proc/self")).unwrap();
        let e = check_namespace(&Root::new(d.path())).unwrap_err();
        assert!(e.contains("--pid host"), "{e}");
        std::fs::remove_file(d.path().join("proc/self")).unwrap();
        std::os::unix::fs::symlink(std::process::id().to_string(), d.path().join("proc/self")).unwrap();
        assert!(check_namespace(&Root::new(d.path())).is_ok());
    }

    #[test]
    fn this_process_is_found_with_its_threads() {
        let root = Root::default();
        let me = std::process::id();
        assert!(pids(&root).contains(&me));
        assert!(tasks(&root, me).unwrap().contains(&me));
        assert_eq!(
            stat(&root, me).unwrap().ppid,
            nix::unistd::getppid().as_raw() as u32
        );
        assert!(tasks(&root, u32::MAX).is_none());
    }
}
