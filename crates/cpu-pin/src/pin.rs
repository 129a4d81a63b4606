//! From a target to records: find the processes, containers or cgroup a selector
//! names, read (and when applying, set) each, and describe the result as
//! `kind: pin` records. Shared by `set`, `show`, `apply` and `check`.

use std::collections::{HashMap, HashSet};

use homelab_core::docker::DockerArgs;
use homelab_core::{Exit, Root};

use crate::cgroup::Cgroup;
use crate::cpulist::CpuList;
use crate::docker::{self, ContainerInfo};
use crate::plan::{Selector, Target};
use crate::procs;
use crate::record::{AffinityGroup, PinRecord};
use crate::threads::{self, Mode, Problem, TaskState, Want};

/// What one selector (a plan rule, or the target of `set`/`show`) came to.
#[derive(Debug, Default)]
pub struct Outcome {
    pub records: Vec<PinRecord>,
    /// Problems with the selector itself (no such container, Docker unreachable,
    /// nothing matched where something must).
    pub problems: Vec<Problem>,
    /// Every problem's exit code, the records' included.
    pub codes: Vec<(Exit, String)>,
}

impl Outcome {
    fn problem(&mut self, p: Problem) {
        self.codes.push((p.code, p.text.clone()));
        self.problems.push(p);
    }

    fn push(&mut self, rec: PinRecord, problems: Vec<Problem>) -> &mut PinRecord {
        let mut rec = rec;
        for p in problems {
            self.codes.push((p.code, p.text.clone()));
            rec.errors.push(p.text);
        }
        self.records.push(rec);
        self.records.last_mut().expect("just pushed")
    }
}

/// One selector's work: what to find, what it should look like, under which rule,
/// and whether finding nothing is an error (for `set` and `show`).
#[derive(Debug, Clone, Copy)]
struct Job<'j> {
    target: &'j Target,
    want: Option<&'j Want>,
    rule: Option<&'j str>,
    strict: bool,
}

/// The state one run shares across selectors: the root, the mode, the lazily
/// opened Docker connection.
#[derive(Debug)]
pub struct Engine<'a> {
    pub root: &'a Root,
    pub mode: Mode,
    /// Also pin PID 1 and kernel threads.
    pub force: bool,
    pub docker_args: DockerArgs,
    docker: Option<docker::Client>,
    self_pid: u32,
}

impl<'a> Engine<'a> {
    pub fn new(root: &'a Root, mode: Mode, force: bool, docker_args: DockerArgs) -> Self {
        Engine {
            root,
            mode,
            force,
            docker_args,
            docker: None,
            self_pid: std::process::id(),
        }
    }

    fn docker(&mut self) -> Result<&docker::Client, Problem> {
        if self.docker.is_none() {
            self.docker = Some(docker::Client::connect(&self.docker_args)?);
        }
        Ok(self.docker.as_ref().expect("connected above"))
    }

    /// Runs one selector. `claimed` holds the processes earlier rules took (a
    /// process belongs to the first rule that selects it); `strict` makes "nothing
    /// found" an error (for `set` and `show`).
    pub fn run(
        &mut self,
        target: &Target,
        want: Option<&Want>,
        rule: Option<&str>,
        claimed: &mut HashSet<u32>,
        strict: bool,
    ) -> Outcome {
        let mut out = Outcome::default();
        let job = Job {
            target,
            want,
            rule,
            strict,
        };
        if !matches!(target.selector, Selector::Cgroup(_))
            && let Err(e) = procs::check_namespace(self.root)
        {
            out.problem(Problem::new(Exit::Config, e));
            return out;
        }
        match &target.selector {
            Selector::Container(_) | Selector::Label { .. } => self.containers(job, claimed, &mut out),
            Selector::Cgroup(path) => self.cgroup(job, path, &mut out),
            _ => self.processes(job, claimed, &mut out),
        }
        out
    }

    /// `show` without a target: every process (kernel threads aside) and, when the
    /// engine answers, every running container. An unreachable engine is a note.
    pub fn show_all(&mut self, note: &mut Vec<String>) -> Outcome {
        let mut out = Outcome::default();
        if let Err(e) = procs::check_namespace(self.root) {
            out.problem(Problem::new(Exit::Config, e));
            return out;
        }
        for pid in procs::pids(self.root) {
            if procs::stat(self.root, pid).is_none_or(|s| s.is_kernel_thread()) {
                continue;
            }
            let target = format!("pid={pid}");
            self.one_process(&target, pid, None, None, &mut out);
        }
        let ids = match self.docker().and_then(|d| d.running(None)) {
            Ok(ids) => ids,
            Err(p) => {
                note.push(format!("containers left out: {}", p.text));
                return out;
            }
        };
        let infos = self.inspect_all(&ids, &mut out);
        let mut none = HashSet::new();
        self.pin_containers(None, &infos, None, None, &mut none, &mut out);
        out
    }

    fn processes(&mut self, job: Job, claimed: &mut HashSet<u32>, out: &mut Outcome) {
        let Job {
            target,
            want,
            rule,
            strict,
        } = job;
        let root = self.root;
        let protect = self.mode != Mode::Show && !self.force;
        let mut excluded = 0usize;
        let mut found: Vec<u32> = match &target.selector {
            Selector::Pid(pid) => {
                let pid = *pid;
                if !procs::exists(root, pid) {
                    out.problem(Problem::new(
                        Exit::NoInput,
                        format!("no process {pid}: it is not running (or not in this PID namespace)"),
                    ));
                    return;
                }
                if protect && let Some(why) = self.protected(pid) {
                    out.problem(Problem::new(
                        Exit::Usage,
                        format!("refusing to pin {why}: pass --force if you really mean it"),
                    ));
                    return;
                }
                vec![pid]
            }
            sel => {
                let mut v = Vec::new();
                for pid in procs::pids(root) {
                    if pid == self.self_pid || !self.selects(sel, pid) {
                        continue;
                    }
                    if protect && self.protected(pid).is_some() {
                        excluded += 1;
                        continue;
                    }
                    v.push(pid);
                }
                v
            }
        };
        if target.children && !found.is_empty() {
            let kids = procs::descendants(root, &found);
            found.extend(kids.into_iter().filter(|&p| p != self.self_pid));
        }
        found.retain(|p| !claimed.contains(p));
        if found.is_empty() {
            if strict {
                let why = if excluded > 0 {
                    " (PID 1 and kernel threads are left alone unless --force)"
                } else {
                    ""
                };
                out.problem(Problem::new(
                    Exit::NoInput,
                    format!("no process matches {target}{why}"),
                ));
            }
            return;
        }
        let text = target.to_string();
        for pid in found {
            claimed.insert(pid);
            self.one_process(&text, pid, want, rule, out);
        }
    }

    fn one_process(
        &self,
        target: &str,
        pid: u32,
        want: Option<&Want>,
        rule: Option<&str>,
        out: &mut Outcome,
    ) {
        let Some(t) = threads::pin(self.root, pid, want, self.mode) else {
            return; // exited meanwhile
        };
        let mut rec = describe_threads(&t.tasks, pid, want);
        rec.rule = rule.map(str::to_string);
        rec.target = target.to_string();
        rec.pid = Some(pid);
        rec.comm = procs::comm(self.root, pid);
        out.push(rec, t.problems);
    }

    /// Why a process must be left alone (PID 1, a kernel thread), if it must.
    fn protected(&self, pid: u32) -> Option<String> {
        if pid == 1 {
            return Some("PID 1 (init)".into());
        }
        let st = procs::stat(self.root, pid)?;
        st.is_kernel_thread().then(|| {
            let name = procs::comm(self.root, pid).unwrap_or_default();
            format!("kernel thread {pid} ({name})")
        })
    }

    fn selects(&self, sel: &Selector, pid: u32) -> bool {
        match sel {
            Selector::Comm(names) => procs::comm(self.root, pid).is_some_and(|c| names.contains(&c)),
            Selector::Match(re) => {
                procs::cmdline(self.root, pid).is_some_and(|c| !c.is_empty() && re.is_match(&c))
            }
            Selector::Pid(p) => *p == pid,
            _ => false,
        }
    }

    fn inspect_all(&mut self, ids: &[String], out: &mut Outcome) -> Vec<ContainerInfo> {
        let mut infos = Vec::new();
        for id in ids {
            let r = match self.docker() {
                Ok(d) => d.inspect(id),
                Err(p) => Err(p),
            };
            match r {
                Ok(Some(info)) => infos.push(info),
                Ok(None) => {} // removed since it was listed
                Err(p) => out.problem(p),
            }
        }
        infos
    }

    fn containers(&mut self, job: Job, claimed: &mut HashSet<u32>, out: &mut Outcome) {
        let Job {
            target,
            want,
            rule,
            strict,
        } = job;
        let infos = match &target.selector {
            Selector::Container(name) => match self.docker().and_then(|d| d.inspect(name)) {
                Ok(Some(info)) => vec![info],
                Ok(None) => {
                    out.problem(Problem::new(
                        Exit::NoInput,
                        format!("no container {name}: `docker ps -a` lists the containers there are"),
                    ));
                    return;
                }
                Err(p) => {
                    out.problem(p);
                    return;
                }
            },
            Selector::Label { key, value } => {
                let filter = match value {
                    Some(v) => format!("{key}={v}"),
                    None => key.clone(),
                };
                let ids = match self.docker().and_then(|d| d.running(Some(&filter))) {
                    Ok(ids) => ids,
                    Err(p) => {
                        out.problem(p);
                        return;
                    }
                };
                let infos = self.inspect_all(&ids, out);
                if infos.is_empty() && strict {
                    out.problem(Problem::new(
                        Exit::NoInput,
                        format!("no running container has the label {filter}"),
                    ));
                }
                infos
            }
            _ => return,
        };
        let text = target.to_string();
        self.pin_containers(Some(&text), &infos, want, rule, claimed, out);
    }

    /// Sets each container's cpuset (then inspects it again to confirm), then the
    /// affinity of every thread of every process in it.
    fn pin_containers(
        &mut self,
        target: Option<&str>,
        infos: &[ContainerInfo],
        want: Option<&Want>,
        rule: Option<&str>,
        claimed: &mut HashSet<u32>,
        out: &mut Outcome,
    ) {
        let ids: Vec<&str> = infos.iter().map(|c| c.id.as_str()).collect();
        let mut members = procs::cgroup_members(self.root, &ids);
        for info in infos {
            let mut problems = Vec::new();
            let before = parse_cpuset(&info.cpuset, &info.name, &mut problems);
            let mut after = before.clone();
            let mut wrote_cpuset = false;
            let mut pids = members.remove(&info.id).unwrap_or_default();
            pids.extend(info.pid);
            pids.sort_unstable();
            pids.dedup();
            pids.retain(|p| !claimed.contains(p));
            // The threads as they were, before the new cpuset re-masks them.
            let mut earlier: HashMap<u32, TaskState> = HashMap::new();
            if self.mode == Mode::Apply
                && let Some(w) = want
                && before.as_ref() != Some(&w.cpus)
            {
                for &pid in &pids {
                    if let Some(t) = threads::pin(self.root, pid, want, Mode::Check) {
                        earlier.extend(t.tasks.into_iter().map(|s| (s.tid, s)));
                    }
                }
                match self.set_and_confirm(info, &w.cpus) {
                    Ok(now) => {
                        wrote_cpuset = true;
                        after = parse_cpuset(&now, &info.name, &mut problems);
                        if after.as_ref() != Some(&w.cpus) {
                            problems.push(Problem::new(
                                Exit::Unavailable,
                                format!(
                                    "container {}: the engine accepted cpuset {} but reports {now:?}",
                                    info.name, w.cpus
                                ),
                            ));
                        }
                    }
                    Err(p) => problems.push(p),
                }
            }
            let mut tasks: Vec<TaskState> = Vec::new();
            let mut main_nice = (None, None);
            for &pid in &pids {
                claimed.insert(pid);
                if let Some(mut t) = threads::pin(self.root, pid, want, self.mode) {
                    for s in &mut t.tasks {
                        if let Some(e) = earlier.get(&s.tid) {
                            s.before = e.before;
                            s.nice_before = e.nice_before;
                        }
                    }
                    if Some(pid) == info.pid
                        && let Some(m) = t.tasks.iter().find(|s| s.tid == pid)
                    {
                        main_nice = (m.nice_before, m.nice_after);
                    }
                    tasks.extend(t.tasks);
                    problems.extend(t.problems);
                }
            }
            let mut rec = describe_threads(&tasks, 0, want);
            rec.rule = rule.map(str::to_string);
            rec.target = target.map_or_else(|| format!("container={}", info.name), str::to_string);
            rec.pid = info.pid;
            rec.container = Some(info.name.clone());
            rec.container_id = Some(info.id.clone());
            rec.nice_before = main_nice.0;
            rec.nice_after = main_nice.1;
            rec.cpuset_before = before;
            rec.cpuset_after = after.clone();
            rec.changed |= wrote_cpuset;
            if let Some(w) = want {
                let cpuset_drift = after.as_ref() != Some(&w.cpus);
                rec.drift = Some(rec.drift.unwrap_or(false) || cpuset_drift);
            }
            out.push(rec, problems);
        }
    }

    fn set_and_confirm(&mut self, info: &ContainerInfo, cpus: &CpuList) -> Result<String, Problem> {
        let d = self.docker()?;
        d.set_cpuset(&info.id, &info.name, cpus)?;
        match d.inspect(&info.id)? {
            Some(now) => Ok(now.cpuset),
            None => Err(Problem::new(
                Exit::NoInput,
                format!("container {} was removed while it was being pinned", info.name),
            )),
        }
    }

    fn cgroup(&mut self, job: Job, path: &str, out: &mut Outcome) {
        let Job {
            target, want, rule, ..
        } = job;
        let root = self.root;
        let cg = match Cgroup::open(root, path) {
            Ok(cg) => cg,
            Err(p) => {
                out.problem(p);
                return;
            }
        };
        let before = match cg.cpus(root) {
            Ok(c) => c,
            Err(p) => {
                out.problem(p);
                return;
            }
        };
        let mut problems = Vec::new();
        let effective_before = cg.effective(root);
        let mut after = before.clone();
        let mut wrote = false;
        if self.mode == Mode::Apply
            && let Some(w) = want
            && before != w.cpus
        {
            match cg.write(root, &w.cpus) {
                Ok(()) => {
                    wrote = true;
                    match cg.cpus(root) {
                        Ok(now) => after = now,
                        Err(p) => problems.push(p),
                    }
                    if after != w.cpus {
                        problems.push(Problem::new(
                            Exit::Config,
                            format!("{}: the kernel kept CPUs {after}, not {}", cg.shown, w.cpus),
                        ));
                    }
                }
                Err(p) => problems.push(p),
            }
        }
        let effective_after = cg.effective(root);
        let mut short = false;
        if let (Some(w), Some(eff)) = (want, &effective_after) {
            let missing = w.cpus.difference(eff);
            if !missing.is_empty() && after == w.cpus {
                short = true;
                problems.push(Problem::new(
                    Exit::Config,
                    format!(
                        "{}: the kernel grants only CPUs {eff}: the parent cgroup lacks {missing}",
                        cg.shown
                    ),
                ));
            }
        }
        let threads = cg.threads(root).unwrap_or(0);
        let drifted_before = want.is_some_and(|w| before != w.cpus);
        let rec = PinRecord {
            rule: rule.map(str::to_string),
            target: target.to_string(),
            cgroup: Some(cg.shown.clone()),
            threads,
            cpus: want.map(|w| w.cpus.clone()),
            cpus_before: effective_before,
            cpus_after: effective_after,
            cpuset_before: Some(before),
            cpuset_after: Some(after.clone()),
            nice: None,
            threads_drifted: want.map(|_| if drifted_before { threads } else { 0 }),
            threads_changed: if wrote { threads } else { 0 },
            changed: wrote,
            drift: want.map(|w| after != w.cpus || short),
            ..Default::default()
        };
        out.push(rec, problems);
    }
}

fn parse_cpuset(s: &str, name: &str, problems: &mut Vec<Problem>) -> Option<CpuList> {
    match CpuList::parse(s) {
        Ok(l) => Some(l),
        Err(e) => {
            problems.push(Problem::new(
                Exit::DataErr,
                format!("container {name}: the engine reports a cpuset cpu-pin cannot read: {e}"),
            ));
            None
        }
    }
}

/// The thread part of a record: groups, unions, counts, drift. `main` is the
/// thread whose nice value is shown (0: none).
fn describe_threads(tasks: &[TaskState], main: u32, want: Option<&Want>) -> PinRecord {
    let after = threads::groups(tasks, true);
    let before = threads::groups(tasks, false);
    let main_task = tasks.iter().find(|t| t.tid == main);
    PinRecord {
        threads: tasks.len(),
        cpus: want.map(|w| w.cpus.clone()),
        cpus_before: threads::union(&before),
        cpus_after: threads::union(&after),
        nice: want.and_then(|w| w.nice),
        nice_before: main_task.and_then(|t| t.nice_before),
        nice_after: main_task.and_then(|t| t.nice_after),
        affinity: after
            .into_iter()
            .map(|(cpus, tids)| AffinityGroup { cpus, tids })
            .collect(),
        threads_drifted: want.map(|w| tasks.iter().filter(|t| t.drifted(w, false)).count()),
        threads_changed: tasks.iter().filter(|t| t.wrote).count(),
        changed: tasks.iter().any(|t| t.wrote),
        drift: want.map(|w| tasks.iter().any(|t| t.drifted(w, true))),
        ..Default::default()
    }
}
