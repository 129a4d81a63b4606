//! Real processes with several threads, started by the tests: every thread is
//! pinned, later threads inherit it, descendants are reached, and a second run
//! writes nothing.

use crate::common::*;

#[test]
fn set_pins_every_thread_and_later_threads_inherit() {
    let mut p = Threaded::start(4, 0, &[]);
    let pid = p.pid();
    let tids = tids(pid);
    assert_eq!(tids.len(), 5, "main thread and 4 more");
    let all = all_cpus();
    assert!(tids.iter().all(|&t| affinity(t) == affinity(pid)));
    let cpu = last_cpu();

    let r = run(&["set", "--cpus", &cpu, "--pid", &pid.to_string()]).expect(0);
    let rec = r.pin();
    assert_eq!(rec.pid, Some(pid));
    assert_eq!(rec.comm.as_deref(), Some(p.comm()));
    assert_eq!(rec.target, format!("pid={pid}"));
    assert_eq!(rec.rule, None);
    assert_eq!(rec.threads, 5);
    assert_eq!(rec.cpus.as_deref(), Some(cpu.as_str()));
    assert_eq!(rec.cpus_before.as_deref(), Some(all.as_str()));
    assert_eq!(rec.cpus_after.as_deref(), Some(cpu.as_str()));
    assert_eq!(rec.threads_drifted, Some(5));
    assert_eq!(rec.threads_changed, 5);
    assert!(rec.changed);
    assert_eq!(rec.drift, Some(false));
    assert!(rec.errors.is_empty(), "{:?}", rec.errors);
    assert_eq!(
        rec.affinity,
        [Group {
            cpus: cpu.clone(),
            tids: tids.clone()
        }]
    );
    for t in &tids {
        assert_eq!(affinity(*t), cpu, "thread {t} after set");
    }

    // A thread started afterwards inherits the mask of the thread that starts it.
    let late = p.spawn_thread();
    assert!(!tids.contains(&late));
    assert_eq!(affinity(late), cpu, "a thread created after set");

    // Again: nothing to write, and the new thread is counted.
    let r = run(&["set", "--cpus", &cpu, "--pid", &pid.to_string()]).expect(0);
    let rec = r.pin();
    assert_eq!(rec.threads, 6);
    assert_eq!(rec.threads_changed, 0);
    assert_eq!(rec.threads_drifted, Some(0));
    assert!(!rec.changed);
}

#[test]
fn children_reaches_a_grandchild() {
    let p = Threaded::start(2, 2, &[]);
    assert_eq!(p.pids.len(), 3);
    let cpu = last_cpu();
    // Without --children only the first process moves.
    let r = run(&["set", "--cpus", &cpu, "--pid", &p.pid().to_string()]).expect(0);
    assert_eq!(r.pins.len(), 1);
    for &pid in &p.pids[1..] {
        assert_ne!(affinity(pid), cpu, "process {pid} moved without --children");
    }

    let r = run(&["set", "--cpus", &cpu, "--pid", &p.pid().to_string(), "--children"]).expect(0);
    let mut pids: Vec<u32> = r.pins.iter().map(|x| x.pid.unwrap()).collect();
    pids.sort_unstable();
    let mut want = p.pids.clone();
    want.sort_unstable();
    assert_eq!(pids, want, "the process, its child and its grandchild");
    assert!(
        r.pins
            .iter()
            .all(|x| x.target == format!("pid={} children", p.pid()))
    );
    for tid in p.all_tids() {
        assert_eq!(affinity(tid), cpu, "thread {tid}");
    }
    assert_eq!(p.all_tids().len(), 9);
}

#[test]
fn comm_and_match_select_only_their_processes() {
    let a = Threaded::start(1, 0, &[]);
    let b = Threaded::start(1, 0, &[]);
    let cpu = last_cpu();
    let r = run(&["set", "--cpus", &cpu, "--comm", a.comm()]).expect(0);
    assert_eq!(r.pin().pid, Some(a.pid()));
    assert_eq!(r.pin().target, format!("comm={}", a.comm()));
    assert_eq!(affinity(a.pid()), cpu);
    assert_ne!(affinity(b.pid()), cpu);

    // Several names, as in comm=prometheus|loki.
    let names = format!("{}|{}", a.comm(), b.comm());
    let r = run(&["show", "--comm", &names]).expect(0);
    assert_eq!(r.pins.len(), 2);

    // The command line holds the interpreter's path, which names b alone.
    let re = format!("{}.*threads\\.py", regex_escape(b.comm()));
    let r = run(&["set", "--cpus", &cpu, "--match", &re]).expect(0);
    assert_eq!(r.pin().pid, Some(b.pid()));
    assert_eq!(affinity(b.pid()), cpu);
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

#[test]
fn show_lists_every_thread_and_changes_nothing() {
    let p = Threaded::start(3, 0, &[]);
    let pid = p.pid();
    let tids = tids(pid);
    let first = first_cpu();
    // One thread moved by hand: show reports both groups.
    let out = std::process::Command::new("taskset")
        .args(["-p", "-c", &first, &tids[2].to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let r = run(&["show", "--pid", &pid.to_string()]).expect(0);
    let rec = r.pin();
    assert_eq!(rec.threads, 4);
    assert_eq!(rec.cpus, None);
    assert_eq!(rec.drift, None);
    assert_eq!(rec.threads_drifted, None);
    assert!(!rec.changed);
    assert_eq!(rec.nice_before, Some(0));
    assert_eq!(rec.affinity.len(), 2, "{:?}", rec.affinity);
    let lone = rec.affinity.iter().find(|g| g.cpus == first).unwrap();
    assert_eq!(lone.tids, [tids[2]]);
    assert_eq!(affinity(tids[2]), first);
    assert_eq!(affinity(tids[0]), all_cpus_listed());

    let (code, out, _) = run_raw(&["show", "--pid", &pid.to_string(), "--format", "text"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("TARGET"), "{out}");
    // The threads' CPUs in words: how many threads may run where.
    assert!(out.contains(&format!("{first} (1 thread)")), "{out}");
    assert!(out.contains("MAY RUN ON"), "{out}");
    assert!(!out.contains('\x1b'), "no colour off a terminal: {out:?}");
}

#[test]
fn nice_is_set_on_every_thread() {
    let p = Threaded::start(2, 0, &[]);
    let pid = p.pid();
    let r = run(&[
        "set",
        "--cpus",
        &all_cpus(),
        "--nice",
        "7",
        "--pid",
        &pid.to_string(),
    ])
    .expect(0);
    let rec = r.pin();
    assert_eq!(rec.nice, Some(7));
    assert_eq!(rec.nice_before, Some(0));
    assert_eq!(rec.nice_after, Some(7));
    assert_eq!(
        rec.threads_changed, 3,
        "the masks were right, the nice values were not"
    );
    for t in tids(pid) {
        assert_eq!(nice(pid, t), 7, "thread {t}");
    }
}

#[test]
fn threads_and_processes_that_come_and_go_are_skipped() {
    // Threads start and end all the time in one process; a shell starts a child
    // process after another. Neither may make a run fail.
    let p = Threaded::start(1, 0, &["churn"]);
    let interp = Interpreter::new();
    let shell = tempfile::tempdir().unwrap();
    let sh = shell.path().join(&interp.comm);
    std::os::unix::fs::symlink("/bin/sh", &sh).unwrap();
    let mut churn = std::process::Command::new(&sh)
        .args(["-c", "while :; do /bin/true; done"])
        .spawn()
        .unwrap();
    let cpus = [last_cpu(), first_cpu()];
    for i in 0..12 {
        let cpu = &cpus[i % 2];
        let r = run(&["set", "--cpus", cpu, "--pid", &p.pid().to_string()]);
        let r2 = run(&["set", "--cpus", cpu, "--comm", &interp.comm, "--children"]);
        for r in [r, r2] {
            let r = r.expect(0);
            assert!(r.pins.iter().all(|x| x.errors.is_empty()), "{r:#?}");
        }
        assert_eq!(affinity(p.pid()), *cpu);
    }
    let _ = churn.kill();
    let _ = churn.wait();
}

#[test]
fn cpu_pin_never_selects_itself() {
    // The regex matches cpu-pin's own command line too; only the helper is pinned.
    let p = Threaded::start(1, 0, &[]);
    let re = format!("{}|this-very-regex", p.comm());
    let r = run(&["set", "--cpus", &last_cpu(), "--match", &re]).expect(0);
    assert_eq!(r.pin().pid, Some(p.pid()));
}
