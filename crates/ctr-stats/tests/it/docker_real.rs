//! Against the real Docker engine that scripts/test starts (or reuses): memory
//! limits, restarts, OOM kills, health checks, stopped, created and paused
//! containers, network counters, containers vanishing mid-round, and the cgroup and
//! API sources agreeing. Every container carries `hlt.test=<group>` and every run
//! filters on it, so tests sharing the engine never see each other's containers.

use std::collections::HashMap;
use std::sync::RwLockReadGuard;
use std::time::{Duration, Instant};

use crate::common::*;
use homelab_testkit::{Container, Docker, docker};

/// A test's own set of containers: all carry `hlt.test=<group>`. While it lives, the
/// CPU burner test (cpu_real.rs, `alone()`) waits: containers would compete with it.
struct Group {
    d: Docker,
    name: String,
    _machine: RwLockReadGuard<'static, ()>,
}

impl Group {
    fn new(prefix: &str) -> Group {
        let d = docker();
        let name = d.unique_name(prefix);
        Group {
            d,
            name,
            _machine: homelab_testkit::shared(),
        }
    }

    /// Starts a container in the group (the later --label overrides testkit's own).
    fn start(&self, prefix: &str, options: &[&str], cmd: &[&str]) -> Container {
        let label = format!("hlt.test={}", self.name);
        let mut opts = vec!["--label", &label];
        opts.extend_from_slice(options);
        self.d.start(prefix, &opts, cmd)
    }

    fn filter(&self) -> String {
        format!("label=hlt.test={}", self.name)
    }

    /// ctr-stats on this group's containers.
    fn run(&self, args: &[&str]) -> Run {
        let f = self.filter();
        let mut all = vec!["--filter", f.as_str()];
        all.extend_from_slice(args);
        run(&all).ok()
    }

    fn page(&self, args: &[&str]) -> String {
        let out = ctr_stats()
            .args(["--filter", &self.filter(), "--format", "prom"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let page = String::from_utf8(out.stdout).unwrap();
        promtool_check(&page);
        page
    }
}

/// The labels of a container's series.
fn labels(c: &Container) -> String {
    format!(
        "id=\"/docker/{}\",name=\"{}\",image=\"{}\",compose_project=\"\",compose_service=\"\"",
        c.id, c.name, c.docker.image
    )
}

fn wait_for_state(c: &Container, state: &str) {
    wait_until(
        Duration::from_secs(30),
        &format!("{} to be {state}", c.name),
        || c.inspect("{{.State.Status}}") == state,
    );
}

const MIB: u64 = 1024 * 1024;

#[test]
fn memory_limit_working_set_and_cache() {
    let g = Group::new("ctrs-mem");
    // 20 MiB of shared memory (anonymous, never inactive_file) and 16 MiB of file cache.
    let c = g.start(
        "ctrs-mem",
        &["--memory", "64m"],
        &[
            "sh",
            "-c",
            "dd if=/dev/zero of=/dev/shm/a bs=1M count=20 2>/dev/null && \
             dd if=/dev/zero of=/tmp/f bs=1M count=16 2>/dev/null && touch /tmp/ready && exec sleep 600",
        ],
    );
    wait_until(
        Duration::from_secs(30),
        "the container to fill its memory",
        || {
            c.docker
                .output(&["exec", &c.id, "test", "-f", "/tmp/ready"])
                .status
                .success()
        },
    );
    for source in ["cgroup", "api"] {
        let r = g.run(&["--window", "0", "--source", source]);
        let m = r.get(&c.name);
        assert_eq!(m.source.as_deref(), Some(source));
        assert_eq!(m.mem_limit_bytes, Some(64 * MIB), "{source}: the limit set");
        let usage = m.mem_usage_bytes.unwrap();
        let ws = m.mem_working_set_bytes.unwrap();
        assert!(
            ws <= usage && usage <= 64 * MIB,
            "{source}: ws {ws} usage {usage}"
        );
        assert!(usage >= 30 * MIB, "{source}: usage {usage}");
        assert!(
            ws >= 20 * MIB,
            "{source}: shared memory is in the working set: {ws}"
        );
        assert!(
            ws < usage,
            "{source}: the inactive file cache is not: ws {ws} usage {usage}"
        );
        assert!(
            m.mem_cache_bytes.unwrap() >= 30 * MIB,
            "{source}: {:?}",
            m.mem_cache_bytes
        );
        assert!(
            m.mem_rss_bytes.unwrap() < 8 * MIB,
            "{source}: {:?}",
            m.mem_rss_bytes
        );
        let pct = ws as f64 / (64 * MIB) as f64 * 100.0;
        assert!(
            (m.mem_percent.unwrap() - pct).abs() < 2.0,
            "{source}: {:?} vs {pct}",
            m.mem_percent
        );
        assert!(m.errors.is_empty(), "{source}: {:?}", m.errors);
        assert_eq!(m.pids, Some(1), "{source}: only sleep runs");
        assert_eq!((m.net_rx_bytes, m.net_tx_bytes), (None, None), "--network none");
    }
    let p = g.page(&[]);
    assert_eq!(
        series(
            &p,
            &format!("container_spec_memory_limit_bytes{{{}}}", labels(&c))
        ),
        Some((64 * MIB) as f64)
    );
}

#[test]
fn restart_count_matches_docker() {
    let g = Group::new("ctrs-rst");
    let c = g.start(
        "ctrs-rst",
        &["--restart", "always"],
        &["sh", "-c", "sleep 0.3; exit 3"],
    );
    wait_until(Duration::from_secs(60), "two restarts", || {
        c.inspect("{{.RestartCount}}").parse::<u64>().unwrap_or(0) >= 2
    });
    let before: u64 = c.inspect("{{.RestartCount}}").parse().unwrap();
    let r = g.run(&["--window", "0"]);
    let after: u64 = c.inspect("{{.RestartCount}}").parse().unwrap();
    let rec = r.get(&c.name);
    let n = rec.restart_count.unwrap();
    assert!(before <= n && n <= after, "{before} <= {n} <= {after}");
    assert!(
        ["running", "restarting", "exited"].contains(&rec.state.as_str()),
        "{}",
        rec.state
    );
    assert_eq!(rec.oom_killed, Some(false));
}

#[test]
fn oom_killed_container() {
    let g = Group::new("ctrs-oom");
    let fine = g.start("ctrs-ok", &[], &["true"]);
    // tail keeps the endless line in memory until the OOM killer ends it. Docker sets
    // OOMKilled from an event that it can miss when the process is gone first (Docker
    // 20.10 on cgroup v1, under load): the container is then killed (137) but not
    // marked, and ctr-stats, which reports Docker's flag, has nothing to show. Such a
    // run is repeated, at most three times in all.
    let mut attempts = 0;
    let c = loop {
        attempts += 1;
        let c = g.start(
            "ctrs-oom",
            &["--memory", "16m", "--memory-swap", "16m"],
            &["tail", "/dev/zero"],
        );
        wait_for_state(&c, "exited");
        assert_eq!(c.inspect("{{.State.ExitCode}}"), "137", "killed by SIGKILL");
        if c.inspect("{{.State.OOMKilled}}") == "true" {
            break c;
        }
        assert!(attempts < 3, "docker never marked the container OOM-killed");
        eprintln!("attempt {attempts}: docker missed the OOM kill; again");
    };
    wait_for_state(&fine, "exited");
    let r = g.run(&["--window", "0"]);
    let rec = r.get(&c.name);
    assert_eq!(rec.state, "exited");
    assert_eq!(rec.oom_killed, Some(true));
    assert_eq!(r.get(&fine.name).oom_killed, Some(false));
    assert_eq!(
        (rec.source.clone(), rec.mem_usage_bytes, rec.uptime_seconds),
        (None, None, None)
    );
    let p = g.page(&[]);
    assert_eq!(
        series(&p, &format!("container_oom_killed{{{}}}", labels(&c))),
        Some(1.0)
    );
    assert_eq!(
        series(&p, &format!("container_oom_killed{{{}}}", labels(&fine))),
        Some(0.0)
    );
    assert_eq!(
        series(&p, &format!("container_running{{{}}}", labels(&c))),
        Some(0.0)
    );
}

#[test]
fn health_matches_docker() {
    let g = Group::new("ctrs-hc");
    let healthy = g.start(
        "ctrs-healthy",
        &["--health-cmd", "true", "--health-interval", "1s"],
        &["sleep", "600"],
    );
    let unhealthy = g.start(
        "ctrs-unhealthy",
        &[
            "--health-cmd",
            "false",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
        ],
        &["sleep", "600"],
    );
    // The first check comes after an hour: starting until then.
    let starting = g.start(
        "ctrs-starting",
        &["--health-cmd", "true", "--health-interval", "1h"],
        &["sleep", "600"],
    );
    let none = g.start("ctrs-nohc", &[], &["sleep", "600"]);
    for (c, want) in [(&healthy, "healthy"), (&unhealthy, "unhealthy")] {
        wait_until(
            Duration::from_secs(30),
            &format!("{} to be {want}", c.name),
            || c.inspect("{{.State.Health.Status}}") == want,
        );
    }
    let r = g.run(&["--window", "0"]);
    let p = g.page(&[]);
    for (c, want) in [
        (&healthy, Some("healthy")),
        (&unhealthy, Some("unhealthy")),
        (&starting, Some("starting")),
        (&none, None),
    ] {
        assert_eq!(r.get(&c.name).health.as_deref(), want, "{}", c.name);
        let status = want.unwrap_or("none");
        for s in ["healthy", "unhealthy", "starting", "none"] {
            let v = series(
                &p,
                &format!("container_health_status{{{},status=\"{s}\"}}", labels(c)),
            );
            assert_eq!(v, Some(f64::from(u8::from(s == status))), "{} {s}", c.name);
        }
    }
}

#[test]
fn stopped_created_and_paused_containers() {
    let g = Group::new("ctrs-stop");
    let running = g.start("ctrs-run", &[], &["sleep", "600"]);
    let stopped = g.start("ctrs-stopped", &[], &["sleep", "600"]);
    g.d.run(&["stop", "-t", "0", &stopped.id]);
    let paused = g.start("ctrs-paused", &[], &["sleep", "600"]);
    g.d.run(&["pause", &paused.id]);
    let label = format!("hlt.test={}", g.name);
    let created_name = g.d.unique_name("ctrs-created");
    let created_id = g.d.run(&[
        "create",
        "--network",
        "none",
        "--label",
        &label,
        "--name",
        &created_name,
        &g.d.image,
        "true",
    ]);
    let created = Container {
        docker: g.d.clone(),
        id: created_id,
        name: created_name,
    };

    let r = g.run(&[]);
    assert_eq!(r.records.len(), 4, "{:?}", r.records);
    let run_rec = r.get(&running.name);
    assert_eq!(run_rec.state, "running");
    assert!(
        run_rec.cpu_percent.is_some(),
        "the default window measures CPU use"
    );
    assert!(run_rec.cpu_seconds_total.is_some() && run_rec.uptime_seconds.is_some());
    for (c, state) in [(&stopped, "exited"), (&created, "created")] {
        let rec = r.get(&c.name);
        assert_eq!(rec.state, state);
        assert_eq!(rec.source, None);
        for v in [
            rec.cpu_seconds_total,
            rec.cpu_percent,
            rec.mem_percent,
            rec.uptime_seconds,
        ] {
            assert_eq!(v, None, "{state}: unknown is null");
        }
        for v in [
            rec.mem_usage_bytes,
            rec.net_rx_bytes,
            rec.blk_read_bytes,
            rec.pids,
        ] {
            assert_eq!(v, None, "{state}: unknown is null");
        }
        assert!(rec.errors.is_empty(), "{:?}", rec.errors);
    }
    assert_eq!(r.get(&created.name).started_at, None, "never started");
    assert!(r.get(&stopped.name).started_at.is_some());
    let p_rec = r.get(&paused.name);
    assert_eq!(p_rec.state, "paused");
    assert!(p_rec.pids.is_some(), "a paused container still has its processes");

    let p = g.page(&[]);
    for (c, v) in [(&running, 1.0), (&stopped, 0.0), (&created, 0.0), (&paused, 0.0)] {
        assert_eq!(
            series(&p, &format!("container_running{{{}}}", labels(c))),
            Some(v),
            "{}",
            c.name
        );
    }
    assert!(series(&p, &format!("container_last_seen{{{}}}", labels(&stopped))).is_none());
    assert!(series(&p, &format!("container_last_seen{{{}}}", labels(&running))).is_some());

    // --running: only what docker ps shows without -a (running and paused).
    let r = g.run(&["--running", "--window", "0"]);
    let mut names: Vec<&str> = r.records.iter().map(|r| r.name.as_str()).collect();
    names.sort();
    let mut want = vec![running.name.as_str(), paused.name.as_str()];
    want.sort();
    assert_eq!(names, want);
    g.d.run(&["unpause", &paused.id]);
}

/// The sum of rx and tx bytes over the interfaces ctr-stats counts, from inside.
fn inside_net(c: &Container) -> (u64, u64) {
    let text = c.docker.run(&["exec", &c.id, "cat", "/proc/net/dev"]);
    let (mut rx, mut tx) = (0, 0);
    for line in text.lines().skip(2) {
        let (name, rest) = line.split_once(':').unwrap();
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest.split_whitespace().map(|v| v.parse().unwrap()).collect();
        rx += f[0];
        tx += f[8];
    }
    (rx, tx)
}

#[test]
fn network_counters_from_the_containers_namespace() {
    let g = Group::new("ctrs-net");
    let c = g.start("ctrs-net", &["--cap-add", "NET_ADMIN"], &["sleep", "600"]);
    c.add_veth_pair();
    let before = inside_net(&c);
    assert!(
        before.0 > 0 && before.1 > 0,
        "traffic on the veth pair: {before:?}"
    );
    let r = g.run(&["--window", "0", "--source", "cgroup"]);
    let after = inside_net(&c);
    let rec = r.get(&c.name);
    let (rx, tx) = (rec.net_rx_bytes.unwrap(), rec.net_tx_bytes.unwrap());
    assert!(
        before.0 <= rx && rx <= after.0,
        "rx {before:?} <= {rx} <= {after:?}"
    );
    assert!(
        before.1 <= tx && tx <= after.1,
        "tx {before:?} <= {tx} <= {after:?}"
    );
    let p = g.page(&["--source", "cgroup"]);
    for ifname in ["eth1", "eth2"] {
        let s = format!(
            "container_network_receive_bytes_total{{{},interface=\"{ifname}\"}}",
            labels(&c)
        );
        assert!(series(&p, &s).is_some(), "{s} in\n{p}");
    }
    // The engine knows no interface of a --network none container: null, not 0.
    let r = g.run(&["--window", "0", "--source", "api"]);
    assert_eq!(r.get(&c.name).net_rx_bytes, None);
}

/// Tolerances for the two sources (stated in the man page): memory within 1 MiB,
/// CPU time within 0.05 s for an idle container, counts and limits exact.
#[test]
fn cgroup_and_api_sources_agree() {
    let g = Group::new("ctrs-agree");
    let limited = g.start(
        "ctrs-limited",
        &["--memory", "48m"],
        &[
            "sh",
            "-c",
            "dd if=/dev/zero of=/dev/shm/a bs=1M count=8 2>/dev/null; exec sleep 600",
        ],
    );
    let pinned = g.start("ctrs-pinned", &["--cpuset-cpus", "0"], &["sleep", "600"]);
    let plain = g.start("ctrs-plain", &[], &["sh", "-c", "sleep 600 & sleep 600 & wait"]);
    wait_until(Duration::from_secs(30), "the shared memory to be written", || {
        limited
            .docker
            .output(&["exec", &limited.id, "test", "-s", "/dev/shm/a"])
            .status
            .success()
    });
    // Let start-up CPU settle so that idle means idle.
    std::thread::sleep(Duration::from_millis(300));
    let cg = g.run(&["--window", "0", "--source", "cgroup"]);
    let api = g.run(&["--window", "0", "--source", "api"]);
    for c in [&limited, &pinned, &plain] {
        let (a, b) = (cg.get(&c.name), api.get(&c.name));
        assert_eq!(a.source.as_deref(), Some("cgroup"));
        assert_eq!(b.source.as_deref(), Some("api"));
        let close_mem = |x: Option<u64>, y: Option<u64>, what: &str| {
            let (x, y) = (x.unwrap(), y.unwrap());
            assert!(x.abs_diff(y) <= MIB, "{} {what}: cgroup {x} api {y}", c.name);
        };
        close_mem(a.mem_usage_bytes, b.mem_usage_bytes, "usage");
        close_mem(a.mem_working_set_bytes, b.mem_working_set_bytes, "working set");
        close_mem(a.mem_rss_bytes, b.mem_rss_bytes, "rss");
        close_mem(a.mem_cache_bytes, b.mem_cache_bytes, "cache");
        let close_cpu = |x: Option<f64>, y: Option<f64>, what: &str| {
            let (x, y) = (x.unwrap(), y.unwrap());
            assert!((x - y).abs() <= 0.05, "{} {what}: cgroup {x} api {y}", c.name);
        };
        close_cpu(a.cpu_seconds_total, b.cpu_seconds_total, "cpu");
        close_cpu(a.cpu_user_seconds_total, b.cpu_user_seconds_total, "user");
        close_cpu(a.cpu_system_seconds_total, b.cpu_system_seconds_total, "system");
        assert_eq!(a.mem_limit_bytes, b.mem_limit_bytes, "{}", c.name);
        assert_eq!(a.pids, b.pids, "{}", c.name);
        assert_eq!(
            (a.blk_read_bytes, a.blk_write_bytes),
            (b.blk_read_bytes, b.blk_write_bytes)
        );
        assert_eq!((a.net_rx_bytes, a.net_tx_bytes), (b.net_rx_bytes, b.net_tx_bytes));
        assert_eq!(a.cpuset_cpus, b.cpuset_cpus, "{}", c.name);
        assert!(
            a.errors.is_empty() && b.errors.is_empty(),
            "{:?} {:?}",
            a.errors,
            b.errors
        );
    }
    assert_eq!(cg.get(&limited.name).mem_limit_bytes, Some(48 * MIB));
    assert_eq!(cg.get(&plain.name).mem_limit_bytes, None);
    assert_eq!(cg.get(&pinned.name).cpuset_cpus.as_deref(), Some("0"));
    assert_eq!(cg.get(&plain.name).pids, Some(3));
}

#[test]
fn containers_vanishing_mid_round_are_skipped_quietly() {
    let g = Group::new("ctrs-churn");
    let keep = g.start("ctrs-keep", &[], &["sleep", "600"]);
    let label = format!("hlt.test={}", g.name);
    let d = g.d.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let churn = std::thread::spawn(move || {
        let mut n = 0;
        while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
            let name = d.unique_name("ctrs-brief");
            let _ = d.output(&[
                "run",
                "-d",
                "--rm",
                "--network",
                "none",
                "--label",
                &label,
                "--name",
                &name,
                &d.image,
                "sleep",
                // Some vanish within a round, some outlive one (so runs do see them;
                // a round of the emulated aarch64 build on a busy machine can take
                // longer than 1.5 s).
                ["0.1", "0.5", "3"][n % 3],
            ]);
            n += 1;
        }
        n
    });
    let start = Instant::now();
    let mut runs = 0;
    let mut seen_brief = 0;
    while start.elapsed() < Duration::from_secs(4) || runs < 6 {
        let source = if runs % 2 == 0 { "cgroup" } else { "api" };
        let out = ctr_stats()
            .args(["--filter", &g.filter(), "--window", "300ms", "--source", source])
            .output()
            .unwrap();
        let r = parse(out);
        assert_eq!(r.code(), Some(0), "{}", r.stderr());
        assert!(r.stderr().is_empty(), "no noise on stderr: {}", r.stderr());
        for rec in &r.records {
            assert!(rec.errors.is_empty(), "{source}: {}: {:?}", rec.name, rec.errors);
        }
        assert!(r.get(&keep.name).cpu_seconds_total.is_some());
        seen_brief += r.records.len() - 1;
        runs += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let started = churn.join().unwrap();
    assert!(started >= 3, "the churn started {started} containers");
    assert!(
        seen_brief > 0,
        "no run saw a brief container: the test did not test"
    );
    // --rm containers still being removed.
    let _ = g.d.output(&["rm", "-f", &keep.id]);
    let leftovers = g.d.run(&["ps", "-aq", "--filter", &g.filter()]);
    for id in leftovers.lines() {
        let _ = g.d.output(&["rm", "-f", id]);
    }
}

#[test]
fn textfile_dir_and_quiet() {
    let g = Group::new("ctrs-tf");
    let c = g.start("ctrs-tf", &[], &["sleep", "600"]);
    let dir = tempfile::tempdir().unwrap();
    let out = ctr_stats()
        .args([
            "--filter",
            &g.filter(),
            "--textfile-dir",
            dir.path().to_str().unwrap(),
            "--quiet",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "--quiet");
    let page = std::fs::read_to_string(dir.path().join("ctr-stats.prom")).unwrap();
    promtool_check(&page);
    assert_eq!(
        series(&page, &format!("container_running{{{}}}", labels(&c))),
        Some(1.0)
    );
    assert!(series(&page, "container_last_run_timestamp_seconds").is_some());
    // JSON lines still go to stdout beside the textfile.
    let r = parse(
        ctr_stats()
            .args([
                "--filter",
                &g.filter(),
                "--textfile-dir",
                dir.path().to_str().unwrap(),
                "--window",
                "0",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(r.records.len(), 1);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["ctr-stats.prom"], "no temporary file left behind");
}

#[test]
fn pinned_metric_names_on_the_real_engine() {
    let g = Group::new("ctrs-names");
    let c = g.start("ctrs-names", &["--memory", "32m"], &["sleep", "600"]);
    let p = g.page(&[]);
    let l = labels(&c);
    let mut types = HashMap::new();
    for line in p.lines().filter(|l| l.starts_with("# TYPE ")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        types.insert(f[2].to_string(), f[3].to_string());
    }
    for (name, kind) in [
        ("container_cpu_usage_seconds_total", "counter"),
        ("container_cpu_user_seconds_total", "counter"),
        ("container_cpu_system_seconds_total", "counter"),
        ("container_memory_usage_bytes", "gauge"),
        ("container_memory_working_set_bytes", "gauge"),
        ("container_memory_rss", "gauge"),
        ("container_memory_cache", "gauge"),
        ("container_spec_memory_limit_bytes", "gauge"),
        ("container_fs_reads_bytes_total", "counter"),
        ("container_fs_writes_bytes_total", "counter"),
        ("container_pids", "gauge"),
        ("container_start_time_seconds", "gauge"),
        ("container_last_seen", "gauge"),
        ("container_running", "gauge"),
        ("container_restarts", "gauge"),
        ("container_oom_killed", "gauge"),
        ("container_health_status", "gauge"),
        ("container_last_run_timestamp_seconds", "gauge"),
    ] {
        assert_eq!(types.get(name).map(String::as_str), Some(kind), "{name}");
    }
    assert!(
        series(
            &p,
            &format!("container_cpu_usage_seconds_total{{{l},cpu=\"total\"}}")
        )
        .is_some()
    );
    let started = c.inspect("{{.State.StartedAt}}");
    let t = ctr_stats::engine::parse_time(&started).unwrap();
    let unix = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let got = series(&p, &format!("container_start_time_seconds{{{l}}}")).unwrap();
    assert!((got - unix).abs() < 0.002, "{got} vs docker's {started}");
}

#[test]
fn filter_by_name() {
    let g = Group::new("ctrs-names");
    let a = g.start("ctrs-alpha", &[], &["sleep", "600"]);
    let _b = g.start("ctrs-beta", &[], &["sleep", "600"]);
    let by_name = format!("name={}", a.name);
    let r = g.run(&["--window", "0", "--filter", &by_name]);
    let names: Vec<&str> = r.records.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, [a.name.as_str()]);
    assert_eq!(g.run(&["--window", "0"]).records.len(), 2);
}
