//! cgroup v2 as a Raspberry Pi 5 runs it (systemd driver, and cgroupfs for one
//! container), with and without the memory controller: fixture trees under --root,
//! and a stand-in engine answering from captured-shape JSON for the containers in
//! them. Golden Prometheus pages, checked by promtool; both sources give the same
//! page; broken files become errors, never a panic.

use std::fs;
use std::path::Path;

use crate::common::*;

const WEB: &str = "4f2b9c0d1e3a5b6c7d8e9f0a5b6c7d8e9f0a5b6c7d8e9f0a5b6c7d8e9f0a1234";
const OLLAMA: &str = "9e8d7c6b5a401f2e3d4c5b6a1f2e3d4c5b6a1f2e3d4c5b6a1f2e3d4c5b6a5678";
const BACKUP: &str = "c0ffee00000100aa11bb22cc00aa11bb22cc00aa11bb22cc00aa11bb22cc9abc";

fn engine() -> FakeEngine {
    FakeEngine::start(&fixture("engine"))
}

fn page(tree: &str, source: &str) -> String {
    let e = engine();
    let out = ctr_stats()
        .args([
            "--root",
            fixture(tree).to_str().unwrap(),
            "--docker-host",
            &e.host(),
        ])
        .args(["--format", "prom", "--source", source])
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

/// Compares with `tests/golden/<name>.prom`; `UPDATE_GOLDEN=1` rewrites it.
fn check_golden(name: &str, page: &str) {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{name}.prom"));
    let actual = normalise(page);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&golden, &actual).unwrap();
    }
    let expected = fs::read_to_string(&golden).unwrap_or_default();
    assert!(
        actual == expected,
        "{name}: output differs from {} (UPDATE_GOLDEN=1 to accept):\n--- actual ---\n{actual}",
        golden.display()
    );
}

#[test]
fn golden_v2_with_memory() {
    check_golden("v2-pi5", &page("v2-pi5", "cgroup"));
}

#[test]
fn golden_v2_without_memory_controller() {
    let p = page("v2-pi5-nomem", "cgroup");
    check_golden("v2-pi5-nomem", &p);
    for absent in [
        "container_memory_usage_bytes",
        "container_memory_working_set_bytes",
        "container_memory_rss",
        "container_memory_cache",
        "container_spec_memory_limit_bytes",
    ] {
        assert!(!p.contains(absent), "{absent} must be left out, never 0:\n{p}");
    }
    assert!(p.contains("container_cpu_usage_seconds_total{"));
}

#[test]
fn the_api_source_gives_the_same_page_as_the_cgroup_files() {
    let cgroup = normalise(&page("v2-pi5", "cgroup"));
    let api = normalise(&page("v2-pi5", "api"));
    assert_eq!(cgroup, api);
}

#[test]
fn v2_records_carry_the_files_figures() {
    let e = engine();
    let r = run_fixture(&fixture("v2-pi5"), &e, &["--window", "0"]).ok();
    assert!(r.stderr().is_empty(), "{}", r.stderr());
    assert_eq!(r.records.len(), 3);
    let names: Vec<&str> = r.records.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["backup", "ollama", "web"], "sorted by name");

    let web = r.get("web");
    assert_eq!(
        (web.v, web.tool.as_str(), web.host.as_str()),
        (1, "ctr-stats", "pi5")
    );
    assert_eq!(web.id, &WEB[..12]);
    assert_eq!(web.image, "nginx:1.27");
    assert_eq!(web.compose_project.as_deref(), Some("homelab"));
    assert_eq!(web.compose_service.as_deref(), Some("web"));
    assert_eq!(web.state, "running");
    assert_eq!(web.health.as_deref(), Some("healthy"));
    assert_eq!(web.restart_count, Some(2));
    assert_eq!(web.oom_killed, Some(false));
    assert_eq!(web.started_at.as_deref(), Some("2026-11-26T06:00:00.123Z"));
    assert!(web.uptime_seconds.unwrap() > 0.0);
    assert_eq!(web.source.as_deref(), Some("cgroup"));
    assert_eq!(web.cpu_seconds_total, Some(98.765432));
    assert_eq!(web.cpu_user_seconds_total, Some(80.0));
    assert_eq!(web.cpu_system_seconds_total, Some(18.765432));
    assert_eq!(web.cpu_percent, None, "--window 0 measures nothing");
    assert_eq!(web.cpuset_cpus.as_deref(), Some("2-3"));
    assert_eq!(web.mem_usage_bytes, Some(104_857_600));
    assert_eq!(web.mem_working_set_bytes, Some(104_857_600 - 20_971_520));
    assert_eq!(web.mem_rss_bytes, Some(73_400_320));
    assert_eq!(web.mem_cache_bytes, Some(29_360_128));
    assert_eq!(web.mem_limit_bytes, Some(268_435_456));
    assert_eq!(web.mem_percent, Some(31.25));
    assert_eq!(
        (web.net_rx_bytes, web.net_tx_bytes),
        (Some(1_234_567), Some(765_432))
    );
    assert_eq!(
        (web.blk_read_bytes, web.blk_write_bytes),
        (Some(52_428_800 + 4096), Some(10_485_760))
    );
    assert_eq!(web.pids, Some(12));
    assert!(web.errors.is_empty(), "{:?}", web.errors);

    let ollama = r.get("ollama");
    assert_eq!(ollama.id, &OLLAMA[..12]);
    assert_eq!(ollama.health, None);
    assert_eq!(ollama.mem_limit_bytes, None, "unlimited is null");
    // Of the host's 8245360 kB, as docker stats.
    assert_eq!(ollama.mem_percent, Some(24.16));
    assert_eq!(
        (ollama.net_rx_bytes, ollama.net_tx_bytes),
        (None, None),
        "host network: the host's traffic is not the container's"
    );
    assert_eq!(
        (ollama.blk_read_bytes, ollama.blk_write_bytes),
        (Some(0), Some(0))
    );
    assert_eq!(ollama.cpuset_cpus.as_deref(), Some("0-3"));

    let backup = r.get("backup");
    assert_eq!(backup.id, &BACKUP[..12]);
    assert_eq!(backup.state, "exited");
    assert_eq!(backup.oom_killed, Some(true));
    assert_eq!(backup.source, None);
    assert_eq!(backup.uptime_seconds, None);
    for v in [backup.cpu_seconds_total, backup.mem_percent, backup.cpu_percent] {
        assert_eq!(v, None);
    }
    assert_eq!(backup.mem_usage_bytes, None);
    assert_eq!(backup.pids, None);
}

#[test]
fn without_the_memory_controller_memory_is_null_with_one_note() {
    let e = engine();
    let r = run_fixture(&fixture("v2-pi5-nomem"), &e, &["--window", "0"]).ok();
    for name in ["web", "ollama"] {
        let c = r.get(name);
        assert_eq!(c.mem_usage_bytes, None);
        assert_eq!(c.mem_working_set_bytes, None);
        assert_eq!(c.mem_rss_bytes, None);
        assert_eq!(c.mem_cache_bytes, None);
        assert_eq!(c.mem_limit_bytes, None);
        assert_eq!(c.mem_percent, None);
        assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
        assert!(c.errors[0].contains("cgroup_enable=memory"), "{}", c.errors[0]);
        assert!(
            c.errors[0].contains("/boot/firmware/cmdline.txt"),
            "{}",
            c.errors[0]
        );
        assert!(c.cpu_seconds_total.is_some() && c.pids.is_some());
    }
    // The stopped container has nothing to read, so nothing to note.
    assert!(r.get("backup").errors.is_empty());
}

#[test]
fn prom_state_series_for_stopped_containers_and_health() {
    let p = page("v2-pi5", "cgroup");
    let labels = |id: &str, name: &str, image: &str, project: &str, service: &str| {
        format!(
            "id=\"/docker/{id}\",name=\"{name}\",image=\"{image}\",compose_project=\"{project}\",compose_service=\"{service}\""
        )
    };
    let backup = labels(BACKUP, "backup", "restic/restic:0.17", "", "");
    assert_eq!(series(&p, &format!("container_running{{{backup}}}")), Some(0.0));
    assert_eq!(
        series(&p, &format!("container_oom_killed{{{backup}}}")),
        Some(1.0)
    );
    assert_eq!(
        series(
            &p,
            &format!("container_health_status{{{backup},status=\"none\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        series(
            &p,
            &format!("container_cpu_usage_seconds_total{{{backup},cpu=\"total\"}}")
        ),
        None,
        "no usage series for a stopped container"
    );
    let web = labels(WEB, "web", "nginx:1.27", "homelab", "web");
    assert_eq!(series(&p, &format!("container_running{{{web}}}")), Some(1.0));
    assert_eq!(series(&p, &format!("container_restarts{{{web}}}")), Some(2.0));
    assert_eq!(
        series(
            &p,
            &format!("container_health_status{{{web},status=\"healthy\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        series(
            &p,
            &format!("container_health_status{{{web},status=\"unhealthy\"}}")
        ),
        Some(0.0)
    );
    assert_eq!(
        series(&p, &format!("container_start_time_seconds{{{web}}}")),
        Some(1_795_672_800.123)
    );
    assert_eq!(
        series(
            &p,
            &format!("container_network_receive_bytes_total{{{web},interface=\"eth0\"}}")
        ),
        Some(1_234_567.0)
    );
    let ollama = labels(OLLAMA, "ollama", "ollama/ollama:0.5", "", "");
    assert_eq!(
        series(&p, &format!("container_spec_memory_limit_bytes{{{ollama}}}")),
        Some(0.0),
        "unlimited is 0, as cAdvisor"
    );
    assert!(!p.contains("node_"), "never node_ names");
}

#[test]
fn broken_files_become_errors_and_the_rest_is_reported() {
    let d = copy_fixture("v2-pi5");
    let root = d.path();
    let web = root.join(format!("sys/fs/cgroup/system.slice/docker-{WEB}.scope"));
    let ollama = root.join(format!("sys/fs/cgroup/docker/{OLLAMA}"));
    fs::write(web.join("memory.stat"), [0xff, 0xfe, b'a', b'\n']).unwrap();
    fs::write(web.join("io.stat"), "garbage\n").unwrap();
    fs::write(web.join("memory.max"), "").unwrap();
    fs::remove_file(web.join("pids.current")).unwrap();
    fs::create_dir(web.join("pids.current")).unwrap();
    fs::write(root.join("proc/1234/net/dev"), "not a table\n").unwrap();
    fs::write(ollama.join("memory.current"), vec![b'9'; 1 << 20]).unwrap();
    fs::write(ollama.join("cpu.stat"), "usage_usec lots\n").unwrap();
    // A garbage /proc/<pid>/cgroup: the usual places are tried instead.
    fs::write(root.join("proc/2345/cgroup"), "\u{0}\u{0}garbage").unwrap();

    let e = engine();
    let r = run_fixture(root, &e, &["--window", "0", "--source", "cgroup"]).ok();
    assert!(r.stderr().is_empty(), "stderr: {}", r.stderr());
    let w = r.get("web");
    let has = |rec: &Rec, needle: &str| rec.errors.iter().any(|e| e.contains(needle));
    for (needle, why) in [
        ("memory.stat: not UTF-8 text", "non-UTF-8"),
        ("io.stat: not the kernel's format", "garbage"),
        ("memory.max: unexpected content \"\"", "empty"),
        ("pids.current: is a directory", "unreadable"),
        ("/proc/1234/net/dev: not the kernel's format", "garbage net/dev"),
    ] {
        assert!(has(w, needle), "no error for {why} ({needle}) in {:#?}", w.errors);
    }
    assert_eq!(w.errors.len(), 5, "{:#?}", w.errors);
    assert_eq!(w.mem_rss_bytes, None);
    assert_eq!(w.mem_limit_bytes, None);
    assert_eq!(w.pids, None);
    assert_eq!(w.net_rx_bytes, None);
    assert_eq!(
        w.mem_usage_bytes,
        Some(104_857_600),
        "what was readable is still there"
    );
    assert_eq!(w.cpu_seconds_total, Some(98.765432));
    // The error names the file as the system sees it, not the fixture path.
    assert!(
        w.errors.iter().all(|e| !e.contains(root.to_str().unwrap())),
        "{:#?}",
        w.errors
    );

    let o = r.get("ollama");
    assert!(has(o, "memory.current: larger than"), "{:#?}", o.errors);
    assert!(has(o, "cpu.stat: no usage_usec"), "{:#?}", o.errors);
    assert_eq!(o.cpu_seconds_total, None);
    assert_eq!(o.pids, Some(37));

    // auto reads a container whose cgroup CPU figures are unreadable from the API.
    let r = run_fixture(root, &e, &["--window", "0"]).ok();
    let o = r.get("ollama");
    assert_eq!(o.source.as_deref(), Some("api"));
    assert_eq!(o.cpu_seconds_total, Some(3600.0));
    assert!(o.errors.is_empty(), "{:#?}", o.errors);
    assert_eq!(r.get("web").source.as_deref(), Some("cgroup"));

    let out = ctr_stats()
        .args(["--root", root.to_str().unwrap(), "--docker-host", &e.host()])
        .args(["--format", "prom", "--source", "cgroup"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    promtool_check(&String::from_utf8(out.stdout).unwrap());
}

#[test]
fn source_cgroup_without_a_cgroup_is_an_error_in_the_record() {
    let d = copy_fixture("v2-pi5");
    fs::remove_dir_all(d.path().join(format!("sys/fs/cgroup/docker/{OLLAMA}"))).unwrap();
    let e = engine();
    let r = run_fixture(d.path(), &e, &["--window", "0", "--source", "cgroup"]).ok();
    let o = r.get("ollama");
    assert_eq!(o.cpu_seconds_total, None);
    assert_eq!(o.errors.len(), 1, "{:?}", o.errors);
    assert!(o.errors[0].contains("--source api"), "{}", o.errors[0]);
    // auto reads it from the API instead.
    let r = run_fixture(d.path(), &e, &["--window", "0"]).ok();
    let o = r.get("ollama");
    assert_eq!(o.source.as_deref(), Some("api"));
    assert_eq!(o.cpu_seconds_total, Some(3600.0));
    assert!(o.errors.is_empty(), "{:?}", o.errors);
}

#[test]
fn no_cgroup_filesystem_with_source_cgroup_exits_66() {
    let d = tempfile::tempdir().unwrap();
    let e = engine();
    let r = run_fixture(d.path(), &e, &["--source", "cgroup"]);
    assert_eq!(r.code(), Some(66), "{}", r.stderr());
    assert!(
        r.stderr().starts_with("ctr-stats: no cgroup filesystem"),
        "{}",
        r.stderr()
    );
    assert!(r.stdout().is_empty());
}

#[test]
fn a_container_removed_between_list_and_inspect_is_left_out_quietly() {
    let answers = homelab_testkit::copy_tree(&fixture("engine"));
    fs::remove_file(answers.path().join(format!("inspect/{BACKUP}.json"))).unwrap();
    // ... and one whose stats answer 404 because it went while being read.
    fs::remove_file(answers.path().join(format!("stats/{OLLAMA}.json"))).unwrap();
    let e = FakeEngine::start(answers.path());
    let r = run_fixture(&fixture("v2-pi5"), &e, &["--window", "0", "--source", "api"]).ok();
    assert!(r.stderr().is_empty(), "{}", r.stderr());
    let names: Vec<&str> = r.records.iter().map(|r| r.name.as_str()).collect();
    // ollama's inspect still answers (it is running), so it stays, with its error.
    assert_eq!(names, ["ollama", "web"]);
    assert!(r.get("web").errors.is_empty());
}

/// A container whose main process exits after the listing: its cgroup may still be
/// there for a moment, but /proc no longer has the process. That is a container that
/// stopped (reported as Docker sees it, without an error), unless /proc is another
/// PID namespace's and the cgroup's processes are hidden too: then it is an error.
#[test]
fn a_main_process_gone_from_proc_is_a_stop_unless_proc_is_foreign() {
    for (procs, stopped) in [("", true), ("2345\n", true), ("1234\n", false)] {
        let d = copy_fixture("v2-pi5");
        let root = d.path();
        let web = root.join(format!("sys/fs/cgroup/system.slice/docker-{WEB}.scope"));
        fs::remove_dir_all(root.join("proc/1234")).unwrap();
        fs::write(web.join("cgroup.procs"), procs).unwrap();
        let e = engine();
        let r = run_fixture(root, &e, &["--window", "0", "--source", "cgroup"]).ok();
        assert!(r.stderr().is_empty(), "{}", r.stderr());
        let w = r.get("web");
        assert_eq!(w.state, "running", "as Docker still sees it");
        if stopped {
            assert!(w.errors.is_empty(), "cgroup.procs {procs:?}: {:?}", w.errors);
            assert_eq!(w.cpu_seconds_total, None, "cgroup.procs {procs:?}");
        } else {
            assert_eq!(w.errors, ["/proc/1234/net/dev: no such file or directory"]);
            assert_eq!(w.cpu_seconds_total, Some(98.765432), "the cgroup was read");
            assert_eq!(w.net_rx_bytes, None);
        }
        assert!(r.get("ollama").errors.is_empty(), "{:?}", r.get("ollama").errors);
    }
}

#[test]
fn an_engine_answering_garbage_is_unavailable_not_a_panic() {
    let answers = homelab_testkit::copy_tree(&fixture("engine"));
    fs::write(answers.path().join("containers.json"), "<html>proxy error</html>").unwrap();
    let e = FakeEngine::start(answers.path());
    let r = run_fixture(&fixture("v2-pi5"), &e, &[]);
    assert_eq!(r.code(), Some(69), "{}", r.stderr());
    assert!(
        r.stderr().starts_with("ctr-stats: the Docker engine at unix://"),
        "{}",
        r.stderr()
    );
    assert_eq!(r.stderr().lines().count(), 1, "{}", r.stderr());
}

#[test]
fn text_table_for_a_person() {
    let e = engine();
    let out = ctr_stats()
        .env_remove("COLUMNS")
        .args([
            "--root",
            fixture("v2-pi5-nomem").to_str().unwrap(),
            "--docker-host",
            &e.host(),
        ])
        .args(["--format", "text", "--window", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("CONTAINER ID  NAME"), "{text}");
    // States in words, problems marked; sizes in binary units, never raw counts.
    assert!(
        lines[1].starts_with("c0ffee000001  backup  exited, killed for lack of memory !"),
        "{text}"
    );
    assert!(text.contains("running, healthy"), "{text}");
    assert!(text.contains("1.2 MiB / 747.5 KiB"), "{text}");
    assert!(
        text.contains("12 days") || text.contains(" days "),
        "uptime in days: {text}"
    );
    assert!(
        text.contains("\nProblems\n  ! backup: its last exit was an out-of-memory kill"),
        "the problems follow:\n{text}"
    );
    assert!(text.contains("cgroup_enable=memory"), "{text}");
    assert!(!text.contains('\x1b'), "no colour off a terminal: {text:?}");
}

/// Every JSON field and every metric is documented in the man page.
#[test]
fn the_man_page_documents_every_field_and_metric() {
    let man = ctr_stats::MAN_SECTIONS.replace("\\-", "-");
    let e = engine();
    let r = run_fixture(&fixture("v2-pi5"), &e, &[]).ok();
    let line = r.stdout().lines().next().unwrap().to_string();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    for key in v.as_object().unwrap().keys() {
        assert!(
            man.contains(&format!("\\fB{key}\\fR")),
            "JSON field {key} is not documented in man.roff"
        );
    }
    let p = page("v2-pi5", "cgroup");
    for l in p.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = l.split_whitespace().nth(2).unwrap();
        assert!(
            man.contains(&format!("\\fB{name}\\fR")),
            "metric {name} is not documented in man.roff"
        );
    }
    for label in ["id", "name", "image", "compose_project", "compose_service"] {
        assert!(man.contains(&format!("\\fB{label}\\fR")), "label {label}");
    }
}
