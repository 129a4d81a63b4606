//! Plans: drift made by hand is reported by `check` (exit 1) and fixed by `apply`,
//! which touches only what drifted; a second `apply` writes nothing. Cgroup v2 and
//! v1 cpusets on fixture trees, the metrics against golden files and promtool, and
//! malformed plans.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::common::*;

/// A rule that finds nothing says so in the text view (it said nothing at all).
#[test]
fn a_rule_that_finds_nothing_is_named_in_the_text_view() {
    let (_d, plan) = plan_file("ghost comm=hltnosuchproc cpus=0\n");
    let out = cpu_pin()
        .args(["check", &plan, "--format", "text"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Problems\n  ! ghost: found nothing to pin (comm=hltnosuchproc)"),
        "{text}"
    );
}

fn taskset_one_thread(tid: u32, cpu: &str) {
    let out = std::process::Command::new("taskset")
        .args(["-p", "-c", cpu, &tid.to_string()])
        .output()
        .expect("taskset (util-linux) is needed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn drift_is_reported_then_apply_fixes_only_that_and_a_second_apply_writes_nothing() {
    let llm = Threaded::start(3, 0, &[]);
    let mon = Threaded::start(1, 0, &[]);
    let (last, first) = (last_cpu(), first_cpu());
    let (_d, plan) = plan_file(&format!(
        "# test plan\nllm comm={} cpus={last}\nmon comm={} cpus={first} nice=5  # monitoring\n",
        llm.comm(),
        mon.comm()
    ));

    let r = run(&["apply", &plan]).expect(0);
    assert_eq!(r.pins.len(), 2);
    assert_eq!(r.rules.len(), 2);
    let l = r.rule("llm");
    assert_eq!((l.targets, l.threads, l.threads_changed), (1, 4, 4));
    assert!(l.changed && !l.drift);
    assert_eq!(r.pins_of("mon")[0].nice_after, Some(5));
    let ltids = tids(llm.pid());
    assert!(ltids.iter().all(|&t| affinity(t) == last));
    assert_eq!(affinity(mon.pid()), first);

    // Idempotent: nothing differs, nothing is written.
    let r = run(&["apply", &plan]).expect(0);
    for p in &r.pins {
        assert!(!p.changed, "{p:?}");
        assert_eq!((p.threads_changed, p.threads_drifted), (0, Some(0)), "{p:?}");
    }
    assert!(r.rules.iter().all(|x| !x.changed && !x.drift));
    run(&["check", &plan]).expect(0);

    // One thread moved from outside.
    taskset_one_thread(ltids[2], &first);
    let r = run(&["check", &plan]).expect(1);
    let p = r.pins_of("llm")[0];
    assert_eq!(p.drift, Some(true));
    assert_eq!(p.threads_drifted, Some(1));
    assert_eq!(p.threads_changed, 0);
    assert!(!p.changed);
    assert_eq!(p.cpus_after.as_deref(), Some(all_cpus().as_str()));
    assert!(r.rule("llm").drift);
    assert!(!r.rule("mon").drift);
    assert!(
        r.stderr().is_empty(),
        "drift is data, not an error: {}",
        r.stderr()
    );
    assert_eq!(affinity(ltids[2]), first, "check changed something");

    let prom = cpu_pin()
        .args(["check", &plan, "--format", "prom"])
        .output()
        .unwrap();
    assert_eq!(prom.status.code(), Some(1));
    let page = String::from_utf8(prom.stdout).unwrap();
    promtool_check_metrics(&page);
    assert_eq!(series(&page, "cpupin_drift{rule=\"llm\"}"), Some(1.0));
    assert_eq!(series(&page, "cpupin_drift{rule=\"mon\"}"), Some(0.0));
    assert_eq!(series(&page, "cpupin_threads{rule=\"llm\"}"), Some(4.0));
    assert_eq!(series(&page, "cpupin_rule_cpus{rule=\"llm\"}"), Some(1.0));
    assert_eq!(series(&page, "cpupin_last_apply_timestamp_seconds"), None);

    // The text view says it in words and marks the drifted rule.
    let out = cpu_pin()
        .args(["check", &plan, "--format", "text"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let row = |rule: &str| {
        text.lines()
            .find(|l| l.starts_with(rule))
            .unwrap_or_else(|| panic!("no row for {rule}: {text}"))
            .to_string()
    };
    assert!(row("llm").contains("drifted !"), "{text}");
    assert!(
        row("llm").contains("(3 threads)") && row("llm").contains("(1 thread)"),
        "{text}"
    );
    assert!(row("mon").contains("as planned"), "{text}");
    assert!(!text.contains('\x1b'), "no colour off a terminal: {text:?}");

    // apply writes that one thread and nothing else.
    let r = run(&["apply", &plan]).expect(0);
    let p = r.pins_of("llm")[0];
    assert_eq!((p.threads_drifted, p.threads_changed), (Some(1), 1));
    assert!(p.changed);
    assert_eq!(p.drift, Some(false));
    assert!(!r.pins_of("mon")[0].changed);
    assert_eq!(affinity(ltids[2]), last);
    run(&["check", &plan]).expect(0);
}

#[test]
fn a_process_belongs_to_the_first_rule_that_selects_it() {
    let p = Threaded::start(1, 0, &[]);
    let (last, first) = (last_cpu(), first_cpu());
    let (_d, plan) = plan_file(&format!(
        "by-pid pid={} cpus={last}\nby-name comm={} cpus={first}\n",
        p.pid(),
        p.comm()
    ));
    for _ in 0..2 {
        let r = run(&["apply", &plan]).expect(0);
        assert_eq!(r.rule("by-pid").targets, 1);
        assert_eq!(r.rule("by-name").targets, 0);
        assert_eq!(affinity(p.pid()), last);
    }
    run(&["check", &plan]).expect(0);
}

#[test]
fn loop_mode_reapplies_every_interval() {
    let p = Threaded::start(1, 0, &[]);
    let (_d, plan) = plan_file(&format!("one comm={} cpus={}\n", p.comm(), last_cpu()));
    let r = run(&["apply", &plan, "--interval", "50ms", "--count", "3"]).expect(0);
    assert_eq!(r.rules.len(), 3);
    assert!(r.rules[0].changed);
    assert!(!r.rules[1].changed && !r.rules[2].changed);
}

/// The page with the two timestamps replaced, for golden files.
fn normalise(page: &str) -> String {
    page.lines()
        .map(|l| {
            for m in [
                "cpupin_last_run_timestamp_seconds ",
                "cpupin_last_apply_timestamp_seconds ",
            ] {
                if let Some(v) = l.strip_prefix(m) {
                    assert!(v.parse::<f64>().unwrap() > 1.7e9, "{l}");
                    return format!("{m}TIMESTAMP\n");
                }
            }
            format!("{l}\n")
        })
        .collect()
}

fn golden(name: &str, page: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    homelab_testkit::assert_golden(&path, &normalise(page));
    promtool_check_metrics(page);
}

const PI5_PLAN: &str = "\
# the Pi 5 layout, as cgroups
ollama     cgroup=/sys/fs/cgroup/ollama.slice  cpus=0-2
monitoring cgroup=monitoring.slice             cpus=3
legacy     cgroup=legacy                       cpus=0-1   # cgroup v1
";

fn mtime(p: &Path) -> SystemTime {
    fs::metadata(p).unwrap().modified().unwrap()
}

#[test]
fn cgroup_cpusets_v2_and_v1_on_a_fixture_tree() {
    let tree = copy_fixture("pi5");
    let root = tree.path().to_str().unwrap();
    let (_d, plan) = plan_file(PI5_PLAN);
    let ollama = tree.path().join("sys/fs/cgroup/ollama.slice/cpuset.cpus");
    let monitoring = tree.path().join("sys/fs/cgroup/monitoring.slice/cpuset.cpus");
    let legacy = tree.path().join("sys/fs/cgroup/cpuset/legacy/cpuset.cpus");
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    for f in [&ollama, &monitoring, &legacy] {
        fs::File::options()
            .write(true)
            .open(f)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    let r = run(&["check", &plan, "--root", root]).expect(1);
    let o = r.pins_of("ollama")[0];
    assert_eq!(o.cgroup.as_deref(), Some("/sys/fs/cgroup/ollama.slice"));
    assert_eq!(
        o.cpuset_before.as_deref(),
        Some(""),
        "an empty v2 cpuset inherits"
    );
    assert_eq!(o.cpus_before.as_deref(), Some("0-3"));
    assert_eq!((o.threads, o.threads_drifted, o.drift), (5, Some(5), Some(true)));
    let m = r.pins_of("monitoring")[0];
    assert_eq!(m.cgroup.as_deref(), Some("/sys/fs/cgroup/monitoring.slice"));
    assert_eq!((m.threads, m.drift), (2, Some(false)));
    let l = r.pins_of("legacy")[0];
    assert_eq!(l.cgroup.as_deref(), Some("/sys/fs/cgroup/cpuset/legacy"));
    assert_eq!((l.threads, l.drift), (2, Some(true)));
    assert_eq!(mtime(&ollama), old, "check wrote a file");
    let page = cpu_pin()
        .args(["check", &plan, "--root", root, "--format", "prom"])
        .output()
        .unwrap();
    golden("pi5-check.prom", &String::from_utf8(page.stdout).unwrap());

    let r = run(&["apply", &plan, "--root", root]).expect(0);
    assert_eq!(fs::read_to_string(&ollama).unwrap(), "0-2\n");
    assert_eq!(fs::read_to_string(&legacy).unwrap(), "0-1\n");
    assert_eq!(mtime(&monitoring), old, "monitoring was right and was written");
    let o = r.pins_of("ollama")[0];
    assert_eq!(
        (o.cpuset_after.as_deref(), o.changed, o.drift),
        (Some("0-2"), true, Some(false))
    );
    assert_eq!(o.threads_changed, 5);
    assert!(!r.rule("monitoring").changed);

    // Nothing differs now: nothing is written.
    for f in [&ollama, &legacy] {
        fs::File::options()
            .write(true)
            .open(f)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let out = cpu_pin()
        .args(["apply", &plan, "--root", root, "--format", "prom"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    golden("pi5-apply.prom", &String::from_utf8(out.stdout).unwrap());
    for f in [&ollama, &monitoring, &legacy] {
        assert_eq!(mtime(f), old, "{} was written again", f.display());
    }
    run(&["check", &plan, "--root", root]).expect(0);
}

#[test]
fn check_keeps_the_last_apply_time_in_the_textfile() {
    let tree = copy_fixture("pi5");
    let root = tree.path().to_str().unwrap();
    let (_d, plan) = plan_file(PI5_PLAN);
    let dir = tempfile::tempdir().unwrap();
    let tf = dir.path().to_str().unwrap();
    let r = run(&["apply", &plan, "--root", root, "--textfile-dir", tf, "--quiet"]).expect(0);
    assert!(r.stdout().is_empty());
    let file = dir.path().join("cpu-pin.prom");
    let page = fs::read_to_string(&file).unwrap();
    let applied = series(&page, "cpupin_last_apply_timestamp_seconds").unwrap();
    run(&["check", &plan, "--root", root, "--textfile-dir", tf]).expect(0);
    let page = fs::read_to_string(&file).unwrap();
    promtool_check_metrics(&page);
    assert_eq!(
        series(&page, "cpupin_last_apply_timestamp_seconds"),
        Some(applied)
    );
    assert!(series(&page, "cpupin_last_run_timestamp_seconds").unwrap() >= applied);
}

#[test]
fn cgroup_problems_are_clear() {
    let tree = copy_fixture("pi5");
    let root = tree.path().to_str().unwrap();

    let r = run(&[
        "set",
        "--cpus",
        "0-2",
        "--cgroup",
        "nocpuset.slice",
        "--root",
        root,
    ])
    .expect(78);
    assert!(
        r.stderr()
            .contains("echo +cpuset > PARENT/cgroup.subtree_control"),
        "{}",
        r.stderr()
    );

    let r = run(&[
        "set",
        "--cpus",
        "0-2",
        "--cgroup",
        "/sys/fs/cgroup/nope.slice",
        "--root",
        root,
    ])
    .expect(66);
    assert!(
        r.stderr().contains("no cgroup /sys/fs/cgroup/nope.slice"),
        "{}",
        r.stderr()
    );

    // The parent grants only CPU 3: the write succeeds but the kernel would not use 0-2.
    let r = run(&["set", "--cpus", "0-2", "--cgroup", "narrow.slice", "--root", root]).expect(78);
    let p = r.pin();
    assert_eq!(p.drift, Some(true));
    assert!(
        p.errors[0].contains("the kernel grants only CPUs 3: the parent cgroup lacks 0-2"),
        "{:?}",
        p.errors
    );
}

#[test]
fn malformed_plans_name_the_line_and_exit_78() {
    let cases = [
        ("a comm=x cpus=1\nb comm=y\n", ":2: rule \"b\" has no cpus="),
        ("# x\n\nbad cpu=1 comm=x\n", ":3: unknown key \"cpu\""),
        (
            "a comm=x cpus=1-0\n",
            ":1: cpus=\"1-0\": the range 1-0 runs backwards",
        ),
        ("a comm=x cpus=5000\n", ":1: cpus=\"5000\": CPU 5000 is beyond"),
        ("a match=\"( cpus=0\n", ":1: a quote \" is not closed"),
        ("a pid=1 cpus=0\n", ":1: pid=1 is init"),
        (
            "a comm=x cpus=0\na comm=y cpus=0\n",
            ":2: the rule name \"a\" is used twice",
        ),
        ("", ": no rules"),
    ];
    for (text, want) in cases {
        let (_d, plan) = plan_file(text);
        for cmd in ["apply", "check"] {
            let r = run(&[cmd, &plan]).expect(78);
            assert!(r.stdout().is_empty());
            let e = r.stderr();
            assert!(e.starts_with(&format!("cpu-pin: {plan}{want}")), "{text:?}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }
    // An offline CPU, checked against --root's online list (CPU 1 is offline there).
    let (_d, plan) = plan_file("a comm=x cpus=0\nb comm=y cpus=0-2\n");
    let r = run(&["check", &plan, "--root", fixture("offline").to_str().unwrap()]).expect(78);
    assert!(
        r.stderr().contains(&format!(
            "{plan}:2: cpus=0-2: CPU 1 of 0-2 is not online (online: 0,2-3)"
        )),
        "{}",
        r.stderr()
    );

    // Not text, missing, a directory.
    let (d, plan) = plan_file("");
    fs::write(&plan, [0xff, 0xfe, b'a']).unwrap();
    assert!(run(&["apply", &plan]).expect(78).stderr().contains("not UTF-8"));
    let missing = d.path().join("missing.conf");
    let r = run(&["apply", missing.to_str().unwrap()]).expect(66);
    assert!(r.stderr().contains("no such file or directory"), "{}", r.stderr());
    run(&["apply", d.path().to_str().unwrap()]).expect(74);
    let huge = d.path().join("huge.conf");
    fs::write(&huge, "#".repeat(2 << 20)).unwrap();
    assert!(
        run(&["apply", huge.to_str().unwrap()])
            .expect(78)
            .stderr()
            .contains("not a plan file")
    );
}

#[test]
fn a_rule_that_finds_nothing_is_not_an_error() {
    // A service that is down: the rule reports 0 targets, no drift, exit 0.
    let (_d, plan) = plan_file(&format!("gone comm={} cpus={}\n", unique_name(), first_cpu()));
    let r = run(&["check", &plan]).expect(0);
    let g = r.rule("gone");
    assert_eq!((g.targets, g.threads, g.drift), (0, 0, false));
    assert!(r.pins.is_empty());
}
