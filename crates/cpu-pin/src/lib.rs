//! cpu-pin: dedicate CPU cores to processes (every thread), Docker containers and
//! cgroups; verify the layout and re-apply it.
//!
//! `set` pins one target now, `show` reads, `apply` makes a plan file true (writing
//! only what differs) and `check` reports drift from it. Each process, container or
//! cgroup is one `kind: pin` record ([`record::PinRecord`]); each plan rule ends
//! with a `kind: rule` record and its `cpupin_*` metrics.

pub mod cgroup;
pub mod cpulist;
pub mod docker;
pub mod metrics;
pub mod pin;
pub mod plan;
pub mod procs;
pub mod record;
pub mod threads;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};
use homelab_core::args::{RootArgs, examples_help};
use homelab_core::docker::DockerArgs;
use homelab_core::run::run_rounds;
use homelab_core::text::{Paint, Table, screen_width};
use homelab_core::{Error, Exit, Format, LoopArgs, Output, OutputArgs, Result, Root};

use cpulist::CpuList;
use pin::{Engine, Outcome};
use plan::{Plan, Selector, Target};
use record::{PinRecord, RuleRecord};
use threads::{Mode, Want};

pub const TOOL: &str = "cpu-pin";

/// Examples shown by `--help` and in the man page.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "Every thread of a process, and its children, on CPUs 0-2",
        "cpu-pin set --cpus 0-2 --pid 4242 --children",
    ),
    (
        "A container: its cpuset through the Docker API, then its threads",
        "cpu-pin set --cpus 0-2 --container ollama",
    ),
    (
        "What the monitoring processes may run on, every thread, as a table",
        "cpu-pin show --comm 'prometheus|loki|node_exporter' --format text",
    ),
    (
        "Make the plan true now (idempotent: writes only what differs)",
        "cpu-pin apply /etc/homelab-tools/cpu-pin.plan",
    ),
    (
        "Keep it true as containers are recreated and threads start, with metrics for node_exporter",
        "cpu-pin apply /etc/homelab-tools/cpu-pin.plan --interval 30s --textfile-dir /var/lib/prometheus/node-exporter --quiet",
    ),
    (
        "From cron: mail when the layout has drifted (exit 1)",
        "cpu-pin check /etc/homelab-tools/cpu-pin.plan --quiet || cpu-pin check /etc/homelab-tools/cpu-pin.plan --format text | mail -s 'cpu-pin drift' root",
    ),
];

/// The hand-written man page sections (OUTPUT, METRICS, PLAN FILE, ...), in roff.
pub const MAN_SECTIONS: &str = include_str!("../man.roff");

#[derive(Debug, Parser)]
#[command(
    name = "cpu-pin",
    version,
    about = "Dedicate CPU cores to processes (every thread), containers and cgroups; verify the layout and re-apply it",
    long_about = "Dedicate CPU cores to processes (every thread), Docker containers and cgroups, from the command line or \
a plan file; verify the layout and re-apply it.\n\n\
A thread's CPU mask is its own: taskset -p sets one thread, and taskset -a misses threads started later. cpu-pin sets every \
thread in /proc/PID/task and reads the list again until no new thread appears. For a container it sets the cpuset through \
the Docker API (which covers every future process and thread), inspects the container again to confirm it took, and sets \
the threads already running. For a cgroup it writes cpuset.cpus (cgroup v2 or v1).\n\n\
apply writes only what differs, so it can run every few seconds (--interval) to undo drift: a container recreated by \
compose, a process restarted, a thread moved by hand. check changes nothing and exits 1 on drift.\n\n\
Pinning does not change how many threads a program starts: give Ollama num_thread equal to its cores (see the man page).",
    after_long_help = examples_help(EXAMPLES),
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// The shared flags, global: before or after the subcommand.
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub root: RootArgs,
    #[command(flatten)]
    pub docker: DockerArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pin one target now: every thread of its processes, a container's cpuset and
    /// threads, or a cgroup's cpuset
    #[command(after_long_help = examples_help(&EXAMPLES[..2]))]
    Set(SetArgs),
    /// Show the CPUs of matching processes (every thread) and containers; without a
    /// target, every process (kernel threads aside) and running container
    #[command(after_long_help = examples_help(&EXAMPLES[2..3]))]
    Show(ShowArgs),
    /// Make the plan file's layout true; idempotent (only what differs is written)
    #[command(after_long_help = examples_help(&EXAMPLES[3..5]))]
    Apply(PlanArgs),
    /// Report drift from the plan file without changing anything; exit 1 on drift
    #[command(after_long_help = examples_help(&EXAMPLES[5..]))]
    Check(PlanArgs),
}

/// Which processes, containers or cgroup (one of them).
#[derive(Debug, Clone, Args, Default)]
#[group(skip)]
pub struct TargetArgs {
    /// Every thread of process N
    #[arg(long, value_name = "N", group = "target", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Target")]
    pub pid: Option<u32>,

    /// Processes whose name (/proc/N/comm, at most 15 bytes) is NAME; several
    /// names separated by |
    #[arg(long, value_name = "NAME", group = "target", value_parser = plan::parse_comm, help_heading = "Target")]
    pub comm: Option<Selector>,

    /// Processes whose command line (arguments joined by spaces) matches REGEX
    #[arg(long = "match", value_name = "REGEX", group = "target", value_parser = plan::parse_match, help_heading = "Target")]
    pub match_: Option<Selector>,

    /// A Docker container by name or id: its cpuset, then its threads
    #[arg(long, value_name = "NAME", group = "target", help_heading = "Target")]
    pub container: Option<String>,

    /// Running Docker containers with this label (KEY or KEY=VALUE, as in docker ps
    /// --filter label=...)
    #[arg(long, value_name = "KEY[=VALUE]", group = "target", value_parser = plan::parse_label, help_heading = "Target")]
    pub label: Option<Selector>,

    /// A cgroup directory: its cpuset.cpus is written (v2 or v1; a relative PATH is
    /// looked up under /sys/fs/cgroup, then /sys/fs/cgroup/cpuset)
    #[arg(long, value_name = "PATH", group = "target", help_heading = "Target")]
    pub cgroup: Option<String>,

    /// With --pid, --comm or --match: their descendants too (children,
    /// grandchildren, ...)
    #[arg(long, conflicts_with_all = ["container", "label", "cgroup"], help_heading = "Target")]
    pub children: bool,
}

impl TargetArgs {
    pub fn target(&self) -> Option<Target> {
        let selector = if let Some(p) = self.pid {
            Selector::Pid(p)
        } else if let Some(s) = self.comm.clone().or(self.match_.clone()).or(self.label.clone()) {
            s
        } else if let Some(c) = &self.container {
            Selector::Container(c.clone())
        } else if let Some(c) = &self.cgroup {
            Selector::Cgroup(c.clone())
        } else {
            return None;
        };
        Some(Target {
            selector,
            children: self.children,
        })
    }
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// CPUs in the kernel's list syntax: 0-2, 0,3, 1-3,5 (every one must be online)
    #[arg(long, value_name = "LIST", value_parser = parse_cpus)]
    pub cpus: CpuList,

    /// Also set the nice value of every thread (-20 to 19)
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = plan::parse_nice, conflicts_with = "cgroup")]
    pub nice: Option<i32>,

    /// Also pin PID 1 and kernel threads (refused otherwise)
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub on: ShowArgs,
}

/// The target: `show`'s flags, and `set`'s besides --cpus, --nice and --force.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The plan file: one rule per line, NAME SELECTOR cpus=LIST [nice=N] [children]
    /// (see PLAN FILE in the man page)
    #[arg(value_name = "PLAN", env = "CPU_PIN_PLAN")]
    pub plan: PathBuf,

    /// Also pin PID 1 and kernel threads when a rule selects them (left alone
    /// otherwise)
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub looping: LoopArgs,
}

fn parse_cpus(s: &str) -> std::result::Result<CpuList, String> {
    let l = CpuList::parse(s)?;
    if l.is_empty() {
        return Err("the CPU list is empty: a target needs at least one CPU".into());
    }
    Ok(l)
}

pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

pub fn run(cli: Cli) -> Result<Exit> {
    let shared = Shared {
        output: cli.output,
        root: cli.root,
        docker: cli.docker,
    };
    match cli.command {
        Command::Set(a) => set(a, shared),
        Command::Show(a) => show(a, shared),
        Command::Apply(a) => plan_run(a, shared, Mode::Apply),
        Command::Check(a) => plan_run(a, shared, Mode::Check),
    }
}

/// The flags every subcommand shares.
struct Shared {
    output: OutputArgs,
    root: RootArgs,
    docker: DockerArgs,
}

/// The online CPUs under the root, as a fatal error when they cannot be read.
fn online(root: &Root) -> Result<CpuList> {
    cpulist::online(root).map_err(|e| {
        Error::new(Exit::NoInput, format!("cannot tell which CPUs are online: {e}"))
            .hint("--root must hold sys/devices/system/cpu/online")
    })
}

/// Metrics describe plan rules: `set` and `show` have none to give.
fn records_only(output: &OutputArgs, what: &str) -> Result<()> {
    if output.format() == Format::Prom || output.textfile_dir.is_some() {
        return Err(Error::usage(format!(
            "{what} writes records only: metrics (--format prom, --textfile-dir) come from apply and check, per plan rule"
        )));
    }
    Ok(())
}

fn set(a: SetArgs, sh: Shared) -> Result<Exit> {
    records_only(&sh.output, "set")?;
    let target = a.on.target.target().ok_or_else(|| {
        Error::usage("set needs a target: --pid, --comm, --match, --container, --label or --cgroup")
    })?;
    let root = Root::open(&sh.root.root)?;
    let online = online(&root)?;
    cpulist::check_wanted(&a.cpus, &online).map_err(|e| Error::usage(format!("--cpus {}: {e}", a.cpus)))?;
    let want = Want::new(a.cpus, a.nice);
    let mut engine = Engine::new(&root, Mode::Apply, a.force, sh.docker);
    let outcome = engine.run(&target, Some(&want), None, &mut HashSet::new(), true);
    let mut out = Output::stdout(TOOL, &sh.output, &root);
    write_records(&mut out, &outcome.records, Mode::Apply)?;
    finish(&outcome.codes, false)
}

fn show(a: ShowArgs, sh: Shared) -> Result<Exit> {
    records_only(&sh.output, "show")?;
    let root = Root::open(&sh.root.root)?;
    let mut engine = Engine::new(&root, Mode::Show, true, sh.docker);
    let outcome = match a.target.target() {
        Some(t) => engine.run(&t, None, None, &mut HashSet::new(), true),
        None => {
            let mut notes = Vec::new();
            let o = engine.show_all(&mut notes);
            for n in notes {
                eprintln!("{TOOL}: {n}");
            }
            o
        }
    };
    let mut out = Output::stdout(TOOL, &sh.output, &root);
    write_records(&mut out, &outcome.records, Mode::Show)?;
    finish(&outcome.codes, false)
}

/// The exit status of a run: the worst problem (highest code) as the fatal error,
/// else 1 when `check` found drift, else 0.
fn finish(codes: &[(Exit, String)], drift: bool) -> Result<Exit> {
    if let Some((code, text)) = codes.iter().max_by_key(|(c, _)| *c) {
        return Err(Error::new(*code, text.clone()));
    }
    Ok(if drift { Exit::Warning } else { Exit::Ok })
}

/// Reads and checks a plan: syntax, CPUs online, PID 1 only with --force.
pub fn load_plan(path: &Path, online: &CpuList, force: bool) -> Result<Plan> {
    let shown = path.display().to_string();
    let bytes = read_plan_file(path)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::config(format!("{shown}: not UTF-8 text")).hint("a plan is a small text file"))?;
    let plan = plan::parse(&text, &shown).map_err(Error::config)?;
    for r in &plan.rules {
        cpulist::check_wanted(&r.cpus, online)
            .map_err(|e| Error::config(format!("{shown}:{}: cpus={}: {e}", r.line, r.cpus)))?;
        if matches!(r.target.selector, Selector::Pid(1)) && !force {
            return Err(Error::config(format!(
                "{shown}:{}: pid=1 is init: cpu-pin leaves PID 1 alone unless --force",
                r.line
            )));
        }
    }
    Ok(plan)
}

fn read_plan_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    const LIMIT: u64 = 1 << 20;
    let f =
        std::fs::File::open(path).map_err(|e| Error::io(format!("reading plan {}", path.display()), e))?;
    let mut bytes = Vec::new();
    f.take(LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(format!("reading plan {}", path.display()), e))?;
    if bytes.len() as u64 > LIMIT {
        return Err(Error::config(format!(
            "{}: larger than {LIMIT} bytes, not a plan file",
            path.display()
        )));
    }
    Ok(bytes)
}

fn plan_run(a: PlanArgs, sh: Shared, mode: Mode) -> Result<Exit> {
    let root = Root::open(&sh.root.root)?;
    let online = online(&root)?;
    let plan = load_plan(&a.plan, &online, a.force)?;
    let wants: Vec<Want> = plan
        .rules
        .iter()
        .map(|r| Want::new(r.cpus.clone(), r.nice))
        .collect();
    let mut out = Output::stdout(TOOL, &sh.output, &root);
    out.set_repeating(a.looping.interval.is_some());
    let mut engine = Engine::new(&root, mode, a.force, sh.docker.clone());
    let mut last_apply = match (&sh.output.textfile_dir, mode) {
        (Some(dir), Mode::Check) => std::fs::read_to_string(dir.join(format!("{TOOL}.prom")))
            .ok()
            .and_then(|t| metrics::last_apply_in(&t)),
        _ => None,
    };
    let mut status: Result<Exit> = Ok(Exit::Ok);
    run_rounds(&a.looping, |_| {
        let now = SystemTime::now();
        out.begin_round(now)?;
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0)
            .unwrap_or(0.0);
        let mut claimed = HashSet::new();
        let mut rules = Vec::new();
        let mut pins = Vec::new();
        let mut codes = Vec::new();
        for (rule, want) in plan.rules.iter().zip(&wants) {
            let o = engine.run(&rule.target, Some(want), Some(&rule.name), &mut claimed, false);
            rules.push(rule_record(rule, &o));
            codes.extend(o.codes);
            pins.push(o.records);
        }
        if out.wants_records() {
            for (recs, rule) in pins.iter().zip(&rules) {
                for r in recs {
                    out.record("pin", r)?;
                }
                out.record("rule", rule)?;
            }
        }
        if mode == Mode::Apply {
            last_apply = Some(secs);
        }
        if out.wants_page() {
            out.page(&metrics::page(&rules, secs, last_apply))?;
        }
        if out.format() == Format::Text {
            let all: Vec<PinRecord> = pins.into_iter().flatten().collect();
            out.raw(&text(&all, &rules, mode, Paint::for_stdout(), screen_width()))?;
        }
        let drift = mode == Mode::Check && rules.iter().any(|r| r.drift);
        status = finish(&codes, drift);
        Ok(())
    })?;
    status
}

fn rule_record(rule: &plan::Rule, o: &Outcome) -> RuleRecord {
    let mut errors: Vec<String> = o.problems.iter().map(|p| p.text.clone()).collect();
    errors.extend(o.records.iter().flat_map(|r| r.errors.iter().cloned()));
    RuleRecord {
        rule: rule.name.clone(),
        target: rule.target.to_string(),
        cpus: rule.cpus.clone(),
        nice: rule.nice,
        targets: o.records.len(),
        threads: o.records.iter().map(|r| r.threads).sum(),
        threads_drifted: o.records.iter().filter_map(|r| r.threads_drifted).sum(),
        threads_changed: o.records.iter().map(|r| r.threads_changed).sum(),
        changed: o.records.iter().any(|r| r.changed),
        drift: o.records.iter().any(|r| r.drift == Some(true)) || !o.problems.is_empty(),
        errors,
    }
}

fn write_records(out: &mut Output, records: &[PinRecord], mode: Mode) -> Result<()> {
    for r in records {
        out.record("pin", r)?;
    }
    if out.format() == Format::Text {
        out.raw(&text(records, &[], mode, Paint::for_stdout(), screen_width()))?;
    }
    Ok(())
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), |v| v.to_string())
}

/// The text view: one row per process, container or cgroup, in words (the CPUs each
/// may run on, whether it is as the plan says); a row with a problem is marked `!`
/// (red on a terminal, never with `NO_COLOR`), and the problems follow one per line,
/// with the rules' own (a container that is not there) that have no row.
pub fn text(
    records: &[PinRecord],
    rules: &[RuleRecord],
    mode: Mode,
    paint: Paint,
    width: Option<usize>,
) -> String {
    let what = |r: &PinRecord| {
        if let Some(c) = &r.container {
            format!("container {c}")
        } else if let Some(c) = &r.cgroup {
            format!("cgroup {c}")
        } else {
            format!("{} {}", opt(&r.pid), r.comm.as_deref().unwrap_or("?"))
        }
    };
    let mut marked = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let t = if mode == Mode::Show {
        let mut t = Table::new(&["TARGET", "WHAT", "THREADS", "MAY RUN ON", "CPUSET", "NICE"]);
        for r in records {
            t.row([
                r.target.clone(),
                what(r),
                r.threads.to_string(),
                affinity_text(r),
                cpuset_text(&r.cpuset_after),
                opt(&r.nice_after),
            ]);
            marked.push(!r.errors.is_empty());
            problems.extend(r.errors.iter().map(|e| format!("{}: {e}", what(r))));
        }
        t
    } else {
        let mut t = Table::new(&[
            "RULE", "TARGET", "WHAT", "THREADS", "WANTED", "BEFORE", "NOW", "STATE",
        ]);
        for r in records {
            let state = match (r.drift, r.changed, mode) {
                (Some(true), _, Mode::Check) => "drifted !",
                (Some(true), _, _) => "not as planned !",
                (_, true, _) => "moved as planned",
                (Some(false), false, _) => "as planned",
                (None, _, _) => "-",
            };
            let bad = r.drift == Some(true) || !r.errors.is_empty();
            t.row([
                r.rule.clone().unwrap_or_default(),
                r.target.clone(),
                what(r),
                r.threads.to_string(),
                opt(&r.cpus),
                opt(&r.cpus_before),
                affinity_text(r),
                state.to_string(),
            ]);
            marked.push(bad);
            let who = match &r.rule {
                Some(rule) => format!("{rule}, {}", what(r)),
                None => what(r),
            };
            problems.extend(r.errors.iter().map(|e| format!("{who}: {e}")));
        }
        t
    };
    // The rules' own problems: those no target's row carries.
    for rule in rules {
        let of_rows: Vec<&String> = records
            .iter()
            .filter(|r| r.rule.as_deref() == Some(rule.rule.as_str()))
            .flat_map(|r| r.errors.iter())
            .collect();
        for e in rule.errors.iter().filter(|e| !of_rows.contains(e)) {
            problems.push(format!("{}: {e}", rule.rule));
        }
        if rule.targets == 0 && rule.errors.is_empty() {
            problems.push(format!("{}: found nothing to pin ({})", rule.rule, rule.target));
        }
    }
    homelab_core::text::marked_table(&t, &marked, &problems, paint, width)
}

/// A cpuset in words: an empty one lets the target run on every CPU.
fn cpuset_text(c: &Option<CpuList>) -> String {
    match c {
        None => "-".into(),
        Some(c) if c.to_string().is_empty() => "every CPU".into(),
        Some(c) => c.to_string(),
    }
}

/// `0-1` when every thread agrees, else `0-1 (3 threads), 1 (1 thread)`.
fn affinity_text(r: &PinRecord) -> String {
    match r.affinity.as_slice() {
        [] => opt(&r.cpuset_after.as_ref().or(r.cpus_after.as_ref())),
        [one] => one.cpus.to_string(),
        many => many
            .iter()
            .map(|g| {
                let n = g.tids.len();
                format!("{} ({n} thread{})", g.cpus, if n == 1 { "" } else { "s" })
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_well_formed() {
        command().debug_assert();
    }

    #[test]
    fn targets_are_exclusive_and_children_goes_with_processes() {
        let p = |args: &[&str]| Cli::try_parse_from(args);
        assert!(p(&["cpu-pin", "set", "--cpus", "0", "--pid", "3", "--comm", "x"]).is_err());
        assert!(p(&["cpu-pin", "set", "--cpus", "0", "--container", "x", "--children"]).is_err());
        assert!(p(&["cpu-pin", "set", "--cpus", "", "--pid", "3"]).is_err());
        assert!(p(&["cpu-pin", "set", "--cpus", "2-1", "--pid", "3"]).is_err());
        assert!(p(&["cpu-pin", "set", "--cpus", "0", "--pid", "0"]).is_err());
        assert!(p(&["cpu-pin", "set", "--cpus", "0", "--nice", "-21", "--pid", "3"]).is_err());
        let c = p(&[
            "cpu-pin",
            "set",
            "--cpus",
            "0",
            "--nice",
            "-5",
            "--pid",
            "3",
            "--children",
        ])
        .unwrap();
        let Command::Set(s) = c.command else { panic!() };
        assert_eq!(s.nice, Some(-5));
        assert_eq!(s.on.target.target().unwrap().to_string(), "pid=3 children");
        let c = p(&["cpu-pin", "show", "--comm", "a|b"]).unwrap();
        let Command::Show(s) = c.command else { panic!() };
        assert_eq!(s.target.target().unwrap().to_string(), "comm=a|b");
    }
}
