//! Every thread of one process: read each thread's CPU mask and nice value, and
//! (when applying) set them thread by thread, because the affinity mask is a
//! per-thread attribute (sched_setaffinity(2)). The task list is read again after
//! each pass until no new thread shows up, so threads started meanwhile are covered
//! too. A thread or process that exits mid-way is skipped.

use std::collections::{BTreeMap, HashSet};

use homelab_core::{Exit, Root};
use nix::errno::Errno;
use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

use crate::cpulist::CpuList;
use crate::procs;

/// How many times the task list is re-read while threads keep appearing.
const MAX_PASSES: usize = 8;

/// What a target should look like.
#[derive(Debug, Clone)]
pub struct Want {
    pub cpus: CpuList,
    pub mask: CpuSet,
    pub nice: Option<i32>,
}

impl Want {
    pub fn new(cpus: CpuList, nice: Option<i32>) -> Want {
        let mask = cpus.to_cpuset();
        Want { cpus, mask, nice }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read only, no rule.
    Show,
    /// Read only, compared with the rule.
    Check,
    /// Compared with the rule and changed where it differs.
    Apply,
}

/// One thread, before and after.
#[derive(Debug, Clone)]
pub struct TaskState {
    pub tid: u32,
    pub before: CpuSet,
    pub after: CpuSet,
    pub nice_before: Option<i32>,
    pub nice_after: Option<i32>,
    /// Whether anything was written to this thread.
    pub wrote: bool,
}

impl TaskState {
    /// Whether the thread differs from `want` (before or after the change).
    pub fn drifted(&self, want: &Want, after: bool) -> bool {
        let (mask, nice) = if after {
            (&self.after, self.nice_after)
        } else {
            (&self.before, self.nice_before)
        };
        *mask != want.mask || want.nice.is_some_and(|n| nice != Some(n))
    }
}

/// A problem with one target, with the exit code it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: Exit,
    pub text: String,
}

impl Problem {
    pub fn new(code: Exit, text: impl Into<String>) -> Problem {
        Problem {
            code,
            text: text.into(),
        }
    }
}

/// Problems of one kind are told once, with how many more threads had them.
#[derive(Debug, Default)]
pub struct Problems {
    seen: BTreeMap<&'static str, (Problem, usize)>,
}

impl Problems {
    fn add(&mut self, kind: &'static str, code: Exit, text: impl FnOnce() -> String) {
        self.seen
            .entry(kind)
            .and_modify(|(_, n)| *n += 1)
            .or_insert_with(|| (Problem::new(code, text()), 0));
    }

    pub fn into_vec(self) -> Vec<Problem> {
        self.seen
            .into_values()
            .map(|(mut p, more)| {
                if more > 0 {
                    p.text = format!(
                        "{} (and {more} more thread{})",
                        p.text,
                        if more == 1 { "" } else { "s" }
                    );
                }
                p
            })
            .collect()
    }
}

/// The threads of one process.
#[derive(Debug, Default)]
pub struct Threads {
    pub tasks: Vec<TaskState>,
    pub problems: Vec<Problem>,
}

fn errno_text(e: Errno) -> String {
    e.desc().to_lowercase()
}

/// Reads (and in [`Mode::Apply`] sets) every thread of `pid`. None when the
/// process is gone before a single thread could be read.
pub fn pin(root: &Root, pid: u32, want: Option<&Want>, mode: Mode) -> Option<Threads> {
    let mut seen = HashSet::new();
    let mut tasks = Vec::new();
    let mut problems = Problems::default();
    let read_nice = want.is_some_and(|w| w.nice.is_some());
    for pass in 0..MAX_PASSES {
        let Some(tids) = procs::tasks(root, pid) else {
            if pass == 0 {
                return None;
            }
            break;
        };
        let fresh: Vec<u32> = tids.into_iter().filter(|t| seen.insert(*t)).collect();
        if fresh.is_empty() {
            break;
        }
        for tid in fresh {
            let task = Pid::from_raw(tid as i32);
            let before = match sched_getaffinity(task) {
                Ok(m) => m,
                Err(Errno::ESRCH) => continue,
                Err(e) => {
                    problems.add("read", Exit::IoErr, || {
                        format!(
                            "reading the CPUs of thread {tid} of process {pid}: {}",
                            errno_text(e)
                        )
                    });
                    continue;
                }
            };
            let nice_before = if read_nice || tid == pid {
                get_nice(tid)
            } else {
                None
            };
            let mut state = TaskState {
                tid,
                before,
                after: before,
                nice_before,
                nice_after: nice_before,
                wrote: false,
            };
            if mode == Mode::Apply
                && let Some(want) = want
                && !apply(pid, &mut state, want, &mut problems)
            {
                continue; // the thread exited
            }
            tasks.push(state);
        }
        if mode != Mode::Apply {
            break;
        }
    }
    let problems = problems.into_vec();
    if tasks.is_empty() && problems.is_empty() {
        return None; // every thread exited while it was read: the process is gone
    }
    Some(Threads { tasks, problems })
}

/// Sets one thread's mask and nice value where they differ, then reads them back.
/// Returns false when the thread exited meanwhile.
fn apply(pid: u32, s: &mut TaskState, want: &Want, problems: &mut Problems) -> bool {
    let tid = s.tid;
    let task = Pid::from_raw(tid as i32);
    if s.before != want.mask {
        match sched_setaffinity(task, &want.mask) {
            Ok(()) => {
                s.wrote = true;
                match sched_getaffinity(task) {
                    Ok(m) => s.after = m,
                    Err(Errno::ESRCH) => return false,
                    Err(_) => s.after = want.mask,
                }
                if s.after != want.mask {
                    let got = CpuList::from_cpuset(&s.after);
                    problems.add("narrowed", Exit::Config, || {
                        format!(
                            "thread {tid} of process {pid} runs on CPUs {got}, not {}: its cpuset cgroup does not \
allow the rest (pin its container or cgroup instead)",
                            want.cpus
                        )
                    });
                }
            }
            Err(Errno::ESRCH) => return false,
            Err(Errno::EPERM) => problems.add("perm", Exit::NoPerm, || {
                format!(
                    "setting the CPUs of thread {tid} of process {pid}: operation not permitted: run cpu-pin as \
root, or give it CAP_SYS_NICE (setcap cap_sys_nice+ep)"
                )
            }),
            Err(Errno::EINVAL) => problems.add("invalid", Exit::Config, || {
                format!(
                    "setting the CPUs of thread {tid} of process {pid} to {}: the kernel refused: its cpuset \
cgroup allows none of them (pin its container or cgroup instead), or it is a per-CPU kernel thread",
                    want.cpus
                )
            }),
            Err(e) => problems.add("set", Exit::IoErr, || {
                format!(
                    "setting the CPUs of thread {tid} of process {pid}: {}",
                    errno_text(e)
                )
            }),
        }
    }
    if let Some(n) = want.nice
        && s.nice_before != Some(n)
    {
        match set_nice(tid, n) {
            Ok(()) => {
                s.wrote = true;
                s.nice_after = get_nice(tid).or(Some(n));
            }
            Err(Errno::ESRCH) => return false,
            Err(Errno::EACCES | Errno::EPERM) => problems.add("nice-perm", Exit::NoPerm, || {
                format!(
                    "setting the nice value of thread {tid} of process {pid} to {n}: permission denied: \
lowering it needs root or CAP_SYS_NICE"
                )
            }),
            Err(e) => problems.add("nice", Exit::IoErr, || {
                format!(
                    "setting the nice value of thread {tid} of process {pid}: {}",
                    errno_text(e)
                )
            }),
        }
    }
    true
}

/// A thread's nice value (setpriority(2) with PRIO_PROCESS acts on one thread).
pub fn get_nice(tid: u32) -> Option<i32> {
    let pid = rustix::process::Pid::from_raw(tid as i32)?;
    rustix::process::getpriority_process(Some(pid)).ok()
}

fn set_nice(tid: u32, nice: i32) -> Result<(), Errno> {
    let pid = rustix::process::Pid::from_raw(tid as i32).ok_or(Errno::ESRCH)?;
    rustix::process::setpriority_process(Some(pid), nice).map_err(|e| Errno::from_raw(e.raw_os_error()))
}

/// Threads grouped by CPU mask, ascending: `[(0-1, [tids...]), (1, [tid])]`.
pub fn groups<'a>(tasks: impl IntoIterator<Item = &'a TaskState>, after: bool) -> Vec<(CpuList, Vec<u32>)> {
    let mut by_mask: Vec<(CpuSet, Vec<u32>)> = Vec::new();
    for t in tasks {
        let mask = if after { t.after } else { t.before };
        match by_mask.iter_mut().find(|(m, _)| *m == mask) {
            Some((_, tids)) => tids.push(t.tid),
            None => by_mask.push((mask, vec![t.tid])),
        }
    }
    let mut out: Vec<(CpuList, Vec<u32>)> = by_mask
        .into_iter()
        .map(|(m, mut tids)| {
            tids.sort_unstable();
            (CpuList::from_cpuset(&m), tids)
        })
        .collect();
    out.sort();
    out
}

/// The union of the groups' CPUs (None when there are no threads).
pub fn union(groups: &[(CpuList, Vec<u32>)]) -> Option<CpuList> {
    let mut it = groups.iter();
    let mut all = it.next()?.0.clone();
    for (l, _) in it {
        all.union_with(l);
    }
    Some(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_told_once_with_a_count() {
        let mut p = Problems::default();
        for tid in [10, 11, 12] {
            p.add("perm", Exit::NoPerm, || format!("thread {tid}: denied"));
        }
        p.add("read", Exit::IoErr, || "thread 13: io".into());
        let v = p.into_vec();
        assert_eq!(v[0].text, "thread 10: denied (and 2 more threads)");
        assert_eq!(v[0].code, Exit::NoPerm);
        assert_eq!(v[1].text, "thread 13: io");
    }

    #[test]
    fn reads_this_process_without_changing_it() {
        let me = std::process::id();
        let t = pin(&Root::default(), me, None, Mode::Show).unwrap();
        assert!(t.tasks.iter().any(|s| s.tid == me));
        assert!(t.tasks.iter().all(|s| !s.wrote && s.before == s.after));
        let g = groups(&t.tasks, true);
        assert_eq!(g.iter().map(|(_, t)| t.len()).sum::<usize>(), t.tasks.len());
        assert!(union(&g).is_some());
        assert!(pin(&Root::default(), u32::MAX, None, Mode::Show).is_none());
    }
}
