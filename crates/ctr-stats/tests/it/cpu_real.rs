//! A CPU burner on the real engine: 60-100 % of one core from both sources, over
//! --window and across the interval in a loop, and a restart between two rounds
//! giving no figure rather than a negative or huge one. It holds
//! `homelab_testkit::alone()`, so that none of our containers competes for the two
//! cores meanwhile (every Docker test holds `shared()`).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use homelab_testkit::docker;

/// The container's CPU counter in nanoseconds, read by the test itself from its
/// cgroup (v1 cpuacct, or v2 cpu.stat under either driver's path).
fn cgroup_cpu_ns(id: &str) -> u64 {
    let v1 = format!("/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage");
    if let Ok(s) = std::fs::read_to_string(&v1) {
        return s.trim().parse().unwrap();
    }
    for dir in [format!("system.slice/docker-{id}.scope"), format!("docker/{id}")] {
        if let Ok(s) = std::fs::read_to_string(format!("/sys/fs/cgroup/{dir}/cpu.stat")) {
            let usec: u64 = s
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            return usec * 1000;
        }
    }
    panic!("no cgroup CPU counter found for container {id}");
}

/// Busy time of the whole machine (all CPUs) from /proc/stat, in nanoseconds.
fn machine_busy_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    let ticks: u64 = f.iter().take(8).sum::<u64>() - f[3] - f[4]; // minus idle and iowait
    ticks * 10_000_000
}

/// What the test itself saw while `f` ran: the burner's CPU use and everything
/// else's, both in percent of one core.
fn observe<T>(id: &str, f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (c0, m0, t0) = (cgroup_cpu_ns(id), machine_busy_ns(), Instant::now());
    let out = f();
    let (c1, m1, wall) = (
        cgroup_cpu_ns(id),
        machine_busy_ns(),
        t0.elapsed().as_nanos() as f64,
    );
    let burner = (c1 - c0) as f64 / wall * 100.0;
    let others = (m1.saturating_sub(m0) as f64 / wall * 100.0 - burner).max(0.0);
    (out, burner, others)
}

/// The bound of the issue (60-100 % for a busy loop) holds when the machine gives the
/// burner a core: when others on this shared machine used most of both cores, the
/// scheduler's fair share is all it can get, and only the agreement with the test's
/// own reading is checked.
fn check_burner(what: &str, pct: f64, seen_by_test: f64, others: f64) {
    assert!(
        pct <= 102.0,
        "{what}: more than one core from one busy loop: {pct}"
    );
    assert!(
        (pct - seen_by_test).abs() <= 15.0,
        "{what}: ctr-stats says {pct} %, the test saw {seen_by_test:.1} % over the same run"
    );
    if others < 80.0 {
        assert!(
            pct >= 60.0,
            "{what}: burner at {pct} % while others used {others:.0} %"
        );
    } else {
        eprintln!(
            "{what}: the machine is busy (others used {others:.0} % of a core): 60 % not expected, saw {pct} %"
        );
    }
}

#[test]
fn cpu_burner() {
    let _alone = homelab_testkit::alone();
    let d = docker();
    let group = d.unique_name("ctrs-cpu");
    let label = format!("hlt.test={group}");
    let filter = format!("label={label}");
    let burner = d.start(
        "ctrs-burn",
        &["--label", &label],
        &["sh", "-c", "while :; do :; done"],
    );
    let idle = d.start("ctrs-idle", &["--label", &label], &["sleep", "600"]);

    // One-shot, across --window, from each source.
    for source in ["cgroup", "api"] {
        let (r, seen, others) = observe(&burner.id, || {
            run(&["--filter", &filter, "--window", "2s", "--source", source]).ok()
        });
        let pct = r.get(&burner.name).cpu_percent.expect("cpu_percent measured");
        check_burner(source, pct, seen, others);
        let i = r.get(&idle.name).cpu_percent.unwrap();
        assert!((0.0..5.0).contains(&i), "{source}: idle container at {i} %");
    }

    // The two sources' counters agree within the time between the two readings.
    let t = Instant::now();
    let a = run(&["--filter", &filter, "--window", "0", "--source", "cgroup"]).ok();
    let b = run(&["--filter", &filter, "--window", "0", "--source", "api"]).ok();
    let between = t.elapsed().as_secs_f64();
    let (x, y) = (
        a.get(&burner.name).cpu_seconds_total.unwrap(),
        b.get(&burner.name).cpu_seconds_total.unwrap(),
    );
    assert!(
        y >= x - 0.05 && y - x <= between + 0.05,
        "cgroup {x} api {y} within {between}s"
    );

    // In a loop, without a window, CPU use is measured across the interval: nothing
    // in the first round, the burner's share in the next ones.
    let (out, seen, others) = observe(&burner.id, || {
        ctr_stats()
            .args([
                "--filter",
                &filter,
                "--window",
                "0",
                "--interval",
                "2s",
                "--count",
                "3",
            ])
            .output()
            .unwrap()
    });
    let r = parse(out).ok();
    let rounds: Vec<Option<f64>> = r
        .records
        .iter()
        .filter(|x| x.name == burner.name)
        .map(|x| x.cpu_percent)
        .collect();
    assert_eq!(rounds.len(), 3, "{rounds:?}");
    assert_eq!(rounds[0], None, "no earlier reading in the first round");
    let measured: Vec<f64> = rounds[1..]
        .iter()
        .map(|p| p.expect("measured across the interval"))
        .collect();
    let mean = measured.iter().sum::<f64>() / measured.len() as f64;
    check_burner("loop", mean, seen, others);

    // A restart between two rounds resets the counter: no figure, never a negative
    // or huge one.
    let mut child = ctr_stats()
        .args([
            "--filter",
            &filter,
            "--window",
            "0",
            "--interval",
            "3s",
            "--count",
            "2",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Vec<String> = (0..2).map(|_| lines.next().unwrap().unwrap()).collect();
    assert!(first.iter().any(|l| l.contains(&burner.name)));
    d.run(&["restart", "-t", "0", &burner.id]);
    let second: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(child.wait().unwrap().success());
    let recs: Vec<Rec> = second.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let after = recs
        .iter()
        .find(|x| x.name == burner.name)
        .expect("the burner in round two");
    assert_eq!(after.state, "running");
    assert_eq!(after.cpu_percent, None, "restarted between the rounds: {after:?}");
    let idle_after = recs.iter().find(|x| x.name == idle.name).unwrap();
    assert!(
        idle_after.cpu_percent.is_some(),
        "the idle container was not restarted"
    );
    wait_until(Duration::from_secs(10), "the burner to run again", || {
        burner.inspect("{{.State.Status}}") == "running"
    });
}
