//! The compose stack (scripts/stack/) checked without running it: `docker-compose
//! config` validates the compose file, and the resolved file is held to the stack's
//! rules (memory limits within the 1.5 GB budget, health checks, log limits, no host
//! port but Traefik's, Ollama's cores and threads, n8n's task runners); Prometheus's,
//! Alertmanager's and Loki's configurations; the Grafana provisioning and dashboards
//! (structure, every PromQL expression parsed by promtool, every LogQL expression
//! parsed by the grammar below); Ollama's entrypoint, init-secrets and the image build
//! run for real. What only a running stack proves is in stack_e2e.rs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use homelab_e2e::stack::*;
use homelab_e2e::workspace;
use homelab_testkit::wait_until;
use serde_yaml_ng::Value as Yaml;

/// The services that do the work; everything else counts in the monitoring budget.
const APP_SERVICES: &[&str] = &["n8n", "n8n-runners", "ollama"];
/// What the issue lists for monitoring and logging, plus Traefik.
const MONITORING: &[&str] = &[
    "traefik",
    "prometheus",
    "node-exporter",
    "alertmanager",
    "loki",
    "grafana",
    "log-tail-ship",
];
const BUDGET_BYTES: u64 = 1_500_000_000;

fn empty_env() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("empty.env");
    std::fs::write(&p, "").unwrap();
    (d, p)
}

fn config() -> Yaml {
    let (_d, p) = empty_env();
    compose_config(&p)
}

fn service(config: &Yaml, name: &str) -> Yaml {
    config["services"][name].clone()
}

fn mem_limit(s: &Yaml) -> u64 {
    parse_size(&s["mem_limit"]).expect("mem_limit is a size")
}

fn strings(v: &Yaml) -> Vec<String> {
    v.as_sequence().into_iter().flatten().filter_map(text).collect()
}

// ---- the compose file --------------------------------------------------------------

#[test]
fn docker_compose_validates_the_file_with_defaults_and_with_the_example_settings() {
    let _machine = homelab_testkit::shared();
    let defaults = config();
    let names: BTreeSet<String> = services(&defaults).into_iter().map(|(n, _)| n).collect();
    for want in MONITORING.iter().chain(APP_SERVICES) {
        assert!(names.contains(*want), "no service {want}: {names:?}");
    }
    let example = compose_config(&stack_dir().join("env.example"));
    // env.example writes the defaults down: both resolve to the same stack, with the
    // Tailscale override file as well.
    assert_eq!(defaults["services"], example["services"]);
    let files = ["docker-compose.yml", "docker-compose.tailscale.yml"];
    let (_d, empty) = empty_env();
    assert_eq!(
        compose_config_of(&stack_dir(), &files, &empty)["services"],
        compose_config_of(&stack_dir(), &files, &stack_dir().join("env.example"))["services"]
    );

    // Every variable the compose files read is documented in env.example.
    let compose = read(&stack_dir().join("docker-compose.yml")) + &read(&stack_dir().join(files[1]));
    let documented = read(&stack_dir().join("env.example"));
    let var = regex::Regex::new(r"\$\{([A-Z0-9_]+)(:-[^}]*)?\}").unwrap();
    for c in var.captures_iter(&compose) {
        let name = &c[1];
        assert!(
            documented.lines().any(|l| l.starts_with(&format!("{name}="))),
            "{name} is not in env.example"
        );
    }
}

#[test]
fn docker_compose_rejects_a_broken_file() {
    let _machine = homelab_testkit::shared();
    // The validation above can fail: an unknown key in a service.
    let dir = tempfile::tempdir().unwrap();
    let broken = read(&stack_dir().join("docker-compose.yml")).replacen(
        "    mem_limit: 64m\n",
        "    mem_limit: 64m\n    memory_limit_typo: 64m\n",
        1,
    );
    std::fs::write(dir.path().join("docker-compose.yml"), broken).unwrap();
    let out = Command::new("docker-compose")
        .arg("--file")
        .arg(dir.path().join("docker-compose.yml"))
        .arg("config")
        .output()
        .unwrap();
    assert!(!out.status.success(), "docker-compose accepted an unknown key");
}

#[test]
fn every_service_has_a_memory_limit_a_health_check_and_log_limits() {
    let c = config();
    for (name, s) in services(&c) {
        assert!(
            parse_size(&s["mem_limit"]).is_some_and(|b| b > 0),
            "{name}: no mem_limit"
        );
        let test = strings(&s["healthcheck"]["test"]);
        assert!(
            !test.is_empty() && test[0] != "NONE" && s["healthcheck"]["disable"].as_bool() != Some(true),
            "{name}: no health check"
        );
        assert!(
            ["CMD", "CMD-SHELL"].contains(&test[0].as_str()),
            "{name}: health check {test:?}"
        );
        assert_eq!(s["logging"]["driver"].as_str(), Some("json-file"), "{name}");
        let max_size = parse_size(&s["logging"]["options"]["max-size"]);
        assert!(
            max_size.is_some_and(|b| b <= 50 << 20),
            "{name}: max-size {max_size:?}"
        );
        let max_file: u32 = text(&s["logging"]["options"]["max-file"])
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!((1..=5).contains(&max_file), "{name}: max-file {max_file}");
        assert!(
            s["restart"].as_str().is_some_and(|r| r != "no"),
            "{name}: no restart policy"
        );
    }
}

#[test]
fn only_traefik_publishes_ports_and_its_api_only_on_loopback() {
    let c = config();
    for (name, s) in services(&c) {
        assert_ne!(
            s["network_mode"].as_str(),
            Some("host"),
            "{name}: host networking"
        );
        let ports = published_ports(&s);
        if name != "traefik" {
            assert!(ports.is_empty(), "{name} publishes {ports:?}");
            continue;
        }
        let mut public: Vec<String> = ports
            .iter()
            .filter(|p| p.host_ip.is_empty() || p.host_ip == "0.0.0.0")
            .map(|p| format!("{}:{}", p.host_port, p.target))
            .collect();
        public.sort();
        assert_eq!(public, ["443:443", "80:80"], "{ports:?}");
        let local: Vec<&Published> = ports
            .iter()
            .filter(|p| !(p.host_ip.is_empty() || p.host_ip == "0.0.0.0"))
            .collect();
        assert_eq!(local.len(), 1, "{ports:?}");
        assert_eq!(
            (
                local[0].host_ip.as_str(),
                local[0].host_port.as_str(),
                local[0].target.as_str()
            ),
            ("127.0.0.1", "8080", "8080")
        );
    }
    // n8n's broker and the runners' health port are never published.
    for name in ["n8n", "n8n-runners"] {
        assert!(published_ports(&service(&c, name)).is_empty());
    }
}

#[test]
fn monitoring_and_logging_fit_in_one_and_a_half_gigabytes() {
    let c = config();
    let mut total = 0;
    let mut counted = Vec::new();
    for (name, s) in services(&c) {
        if APP_SERVICES.contains(&name.as_str()) {
            continue;
        }
        total += mem_limit(&s);
        counted.push(format!("{name} {} MiB", mem_limit(&s) >> 20));
    }
    for want in MONITORING {
        assert!(
            counted.iter().any(|c| c.starts_with(&format!("{want} "))),
            "{want} is not counted: {counted:?}"
        );
    }
    assert!(
        total <= BUDGET_BYTES,
        "monitoring and logging limits add up to {total} bytes (> 1.5 GB): {counted:?}"
    );
    assert!(
        mem_limit(&service(&c, "grafana")) <= 350_000_000,
        "Grafana's limit is at most 350 MB"
    );
    // A Go heap limit, where set, sits under the container's limit.
    for (name, s) in services(&c) {
        if let Some(g) = env(&s, "GOMEMLIMIT") {
            let g = parse_size(&Yaml::String(g.trim_end_matches("iB").to_string())).unwrap();
            assert!(g < mem_limit(&s), "{name}: GOMEMLIMIT {g} >= mem_limit");
        }
    }
}

#[test]
fn the_budget_test_counts_every_monitoring_service() {
    // A monitoring service given 400 MB more goes over the budget and is caught.
    let c = config();
    let total: u64 = services(&c)
        .iter()
        .filter(|(n, _)| !APP_SERVICES.contains(&n.as_str()))
        .map(|(_, s)| mem_limit(s))
        .sum();
    assert!(
        total + 400_000_000 > BUDGET_BYTES,
        "the budget leaves {total}: the test would not notice a 400 MB mistake"
    );
}

#[test]
fn ollama_has_cores_of_its_own_and_as_many_threads_as_cores() {
    let c = config();
    let ollama = parse_cpus(
        service(&c, "ollama")["cpuset"]
            .as_str()
            .expect("ollama has a cpuset"),
    )
    .unwrap();
    for (name, s) in services(&c) {
        if name == "ollama" {
            continue;
        }
        let cpus = parse_cpus(
            s["cpuset"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} has no cpuset: it could run on Ollama's cores")),
        )
        .unwrap();
        assert!(
            ollama.is_disjoint(&cpus),
            "{name} shares Ollama's cores: {cpus:?}"
        );
    }
    // The Modelfile's num_thread is the cpuset's size (entrypoint.sh keeps it so when
    // OLLAMA_CPUS changes; ollama_entrypoint_* below runs it).
    let modelfile = read(&stack_dir().join("config/ollama/homelab.Modelfile"));
    let threads: Vec<usize> = modelfile
        .lines()
        .filter_map(|l| l.strip_prefix("PARAMETER num_thread "))
        .map(|n| n.trim().parse().unwrap())
        .collect();
    assert_eq!(threads, [ollama.len()], "num_thread in homelab.Modelfile");
    let o = service(&c, "ollama");
    assert_eq!(
        strings(&o["entrypoint"]),
        ["/bin/sh", "/etc/ollama/homelab/entrypoint.sh"]
    );
    assert_eq!(
        env(&o, "OLLAMA_MODELFILES").as_deref(),
        Some("/etc/ollama/homelab")
    );
    assert!(
        strings(&o["volumes"])
            .iter()
            .any(|v| v.ends_with("/config/ollama:/etc/ollama/homelab:ro")),
        "{:?}",
        o["volumes"]
    );
    assert_eq!(env(&o, "OLLAMA_NUM_PARALLEL").as_deref(), Some("1"));
    assert_eq!(o["init"].as_bool(), Some(true));
}

/// Runs config/ollama/entrypoint.sh under `taskset -c CPUS` with a stand-in `ollama`
/// that records what it is asked; returns the log once a model was created, and the
/// entrypoint's exit status after SIGTERM.
fn run_entrypoint(cpus: &str) -> (String, Option<i32>) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let fake = dir.path().join("ollama");
    homelab_testkit::write_executable(
        &fake,
        "#!/bin/sh\n\
         case \"$1\" in\n\
           serve) echo serve >>\"$FAKE_LOG\"; trap 'echo stopped >>\"$FAKE_LOG\"; exit 0' TERM\n\
                  while :; do sleep 0.05; done ;;\n\
           list) exit 0 ;;\n\
           show) exit 1 ;;\n\
           pull) echo \"pull $2\" >>\"$FAKE_LOG\" ;;\n\
           create) echo \"create $2\" >>\"$FAKE_LOG\"; cat \"$4\" >>\"$FAKE_LOG\"; echo end >>\"$FAKE_LOG\" ;;\n\
         esac\n",
    );
    let mut child = Command::new("taskset")
        .args(["-c", cpus, "sh"])
        .arg(stack_dir().join("config/ollama/entrypoint.sh"))
        .env("OLLAMA_BIN", &fake)
        .env("OLLAMA_MODELFILES", stack_dir().join("config/ollama"))
        .env("FAKE_LOG", &log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(20),
        "the entrypoint to create the model",
        || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("\nend\n")),
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut status = None;
    wait_until(
        Duration::from_secs(10),
        "the entrypoint to stop on SIGTERM",
        || {
            status = child.try_wait().unwrap();
            status.is_some()
        },
    );
    (std::fs::read_to_string(&log).unwrap(), status.unwrap().code())
}

#[test]
fn ollama_entrypoint_sets_num_thread_to_the_cpus_it_may_use() {
    let cases: &[(&str, usize)] = if std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) >= 2 {
        &[("0", 1), ("0-1", 2)]
    } else {
        &[("0", 1)]
    };
    for (cpus, threads) in cases {
        let (log, code) = run_entrypoint(cpus);
        assert!(log.starts_with("serve\n"), "{log}");
        assert!(
            log.contains("pull llama3.2:3b\n"),
            "the missing base model is pulled first: {log}"
        );
        let created = log
            .split("create homelab\n")
            .nth(1)
            .expect("model homelab created");
        let num_thread: Vec<&str> = created
            .lines()
            .filter(|l| l.starts_with("PARAMETER num_thread"))
            .collect();
        assert_eq!(
            num_thread,
            [format!("PARAMETER num_thread {threads}")],
            "cpus {cpus}: {log}"
        );
        assert!(created.contains("FROM llama3.2:3b\n"));
        assert!(created.contains("PARAMETER num_ctx 4096\n"));
        assert!(log.ends_with("stopped\n"), "SIGTERM reached the server: {log}");
        assert_eq!(code, Some(0));
    }
}

#[test]
fn n8n_runs_code_in_external_task_runners_with_a_token_from_a_secret() {
    let c = config();
    let n8n = service(&c, "n8n");
    let runners = service(&c, "n8n-runners");
    assert_eq!(env(&n8n, "N8N_RUNNERS_MODE").as_deref(), Some("external"));
    assert_eq!(env(&n8n, "N8N_RUNNERS_BROKER_PORT").as_deref(), Some("5679"));
    assert_eq!(
        env(&n8n, "N8N_RUNNERS_BROKER_LISTEN_ADDRESS").as_deref(),
        Some("0.0.0.0")
    );
    assert_eq!(
        env(&n8n, "N8N_RUNNERS_AUTH_TOKEN"),
        None,
        "no token in the environment"
    );
    assert_eq!(
        env(&runners, "N8N_RUNNERS_AUTH_TOKEN"),
        None,
        "no token in the environment"
    );
    let secret = "n8n_runners_auth_token";
    assert_eq!(
        env(&n8n, "N8N_RUNNERS_AUTH_TOKEN_FILE").as_deref(),
        Some(format!("/run/secrets/{secret}").as_str())
    );
    for s in [&n8n, &runners] {
        let attached: Vec<String> = s["secrets"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|x| text(&x["source"]).or_else(|| text(x)).unwrap())
            .collect();
        assert!(attached.contains(&secret.to_string()), "{attached:?}");
    }
    assert!(
        c["secrets"][secret]["file"]
            .as_str()
            .unwrap()
            .ends_with("/secrets/n8n_runners_auth_token")
    );
    // The runners image is n8nio/runners at exactly n8n's tag.
    let (n8n_image, n8n_tag) = n8n["image"].as_str().unwrap().rsplit_once(':').unwrap();
    let (r_image, r_tag) = runners["image"].as_str().unwrap().rsplit_once(':').unwrap();
    assert_eq!((n8n_image, r_image), ("n8nio/n8n", "n8nio/runners"));
    assert_eq!(n8n_tag, r_tag, "n8nio/runners must carry n8n's version");
    assert_eq!(
        env(&runners, "N8N_RUNNERS_TASK_BROKER_URI").as_deref(),
        Some("http://n8n:5679")
    );
    // The launcher cannot read *_FILE: the entrypoint reads the secret, then execs it.
    let entry = strings(&runners["entrypoint"]).join(" ");
    assert!(entry.contains(&format!("cat /run/secrets/{secret}")), "{entry}");
    assert!(
        entry.contains("exec /usr/local/bin/task-runner-launcher"),
        "{entry}"
    );
    assert_eq!(strings(&runners["command"]), ["javascript", "python"]);
    assert!(
        strings(&runners["healthcheck"]["test"])
            .join(" ")
            .contains(":5680/healthz")
    );
    // The database: SQLite in WAL mode (pool size above 0), pruned.
    assert_eq!(env(&n8n, "DB_TYPE").as_deref(), Some("sqlite"));
    let pool: u32 = env(&n8n, "DB_SQLITE_POOL_SIZE").unwrap().parse().unwrap();
    assert!(pool >= 1, "a pool size of 0 would be the rollback journal");
    assert_eq!(env(&n8n, "EXECUTIONS_DATA_PRUNE").as_deref(), Some("true"));
    let compose = read(&stack_dir().join("docker-compose.yml"));
    assert!(
        compose.contains("WAL mode"),
        "the tuning is explained in the file"
    );
}

/// The labels of each label block in the Traefik README, by router name.
fn readme_labels() -> BTreeMap<String, BTreeSet<String>> {
    let readme = read(&stack_dir().join("traefik/README.md"));
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<(String, BTreeSet<String>)> = None;
    for l in readme.lines().map(str::trim) {
        if let Some(label) = l.strip_prefix("- traefik.") {
            let c = current.get_or_insert_with(|| {
                let router = label
                    .strip_prefix("http.routers.")
                    .and_then(|r| r.split('.').next())
                    .unwrap_or_default()
                    .to_string();
                (router, BTreeSet::new())
            });
            if c.0.is_empty() {
                c.0 = label
                    .strip_prefix("http.routers.")
                    .and_then(|r| r.split('.').next())
                    .unwrap_or_default()
                    .to_string();
            }
            c.1.insert(format!("traefik.{label}"));
        } else if l == "```"
            && let Some((name, labels)) = current.take()
        {
            out.insert(name, labels);
        }
    }
    out
}

#[test]
fn web_services_carry_the_labels_of_the_traefik_readme() {
    let c = config();
    let readme = readme_labels();
    for (service_name, router) in [
        ("grafana", "grafana"),
        ("n8n", "n8n"),
        ("prometheus", "prometheus"),
        ("ollama", "ollama"),
    ] {
        let s = service(&c, service_name);
        let labels: BTreeSet<String> = s["labels"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{service_name} has no labels"))
            .iter()
            .map(|(k, v)| format!("{}={}", k.as_str().unwrap(), text(v).unwrap()))
            .collect();
        let want = readme
            .get(router)
            .unwrap_or_else(|| panic!("no README block for {router}"));
        assert_eq!(
            &labels, want,
            "{service_name}'s labels differ from traefik/README.md"
        );
    }
    // Nothing else is routed but Traefik's own dashboard (api@internal, behind
    // private@file: the_dashboard_router_is_at_the_users_domain).
    let t = service(&c, "traefik");
    assert_eq!(
        t["labels"]["traefik.http.routers.dashboard.service"].as_str(),
        Some("api@internal")
    );
    assert_eq!(
        t["labels"]["traefik.http.routers.dashboard.middlewares"].as_str(),
        Some("private@file")
    );
    for (name, s) in services(&c) {
        if !["grafana", "n8n", "prometheus", "ollama", "traefik"].contains(&name.as_str()) {
            assert!(
                s["labels"]["traefik.enable"].as_str() != Some("true"),
                "{name} is routed"
            );
        }
    }
    // Traefik itself as its README shows it: the configuration and the memory limit.
    let t = service(&c, "traefik");
    assert_eq!(mem_limit(&t), 64 << 20);
    let vols = strings(&t["volumes"]);
    for want in ["/etc/traefik/traefik.yml:ro", "/etc/traefik/dynamic:ro"] {
        assert!(vols.iter().any(|v| v.ends_with(want)), "{want} not in {vols:?}");
    }
    // The Docker provider reads through the socket proxy (stack_front_door.rs).
    assert!(!vols.iter().any(|v| v.contains("docker.sock")), "{vols:?}");
}

#[test]
fn log_tail_ship_is_the_log_agent_and_shares_the_textfile_directory() {
    let c = config();
    let lts = service(&c, "log-tail-ship");
    assert_eq!(lts["image"].as_str(), Some("homelab-tools:local"));
    let cmd = strings(&lts["command"]);
    assert_eq!(cmd[0], "log-tail-ship");
    // Every flag the compose file gives must be one the real binary takes.
    let help = Command::new(homelab_e2e::tool("log-tail-ship"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for arg in &cmd[1..] {
        let flag = arg.split('=').next().unwrap();
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
            "log-tail-ship has no flag {arg}"
        );
    }
    assert!(cmd.contains(&"--docker".to_string()));
    assert!(cmd.contains(&"--loki=http://loki:3100".to_string()));
    // The host's logs come from the journal (Raspberry Pi OS bookworm has no
    // /var/log/syslog), mounted read-only where journalctl looks for it.
    assert!(cmd.contains(&"--journal".to_string()), "{cmd:?}");
    assert!(!cmd.iter().any(|a| a.contains("syslog")), "{cmd:?}");
    let vols = strings(&lts["volumes"]);
    for want in [
        "/var/log/journal:/var/log/journal:ro",
        "/run/log/journal:/run/log/journal:ro",
    ] {
        assert!(vols.iter().any(|v| v == want), "{want} not in {vols:?}");
    }
    assert!(
        cmd.iter()
            .any(|a| a.starts_with("--positions=/var/lib/log-tail-ship/"))
    );
    // No Promtail (nor Alloy) anywhere.
    for (name, s) in services(&c) {
        let image = s["image"].as_str().unwrap_or_default();
        assert!(
            !image.contains("promtail") && !image.contains("alloy"),
            "{name} runs {image}"
        );
    }
    // The textfile directory: the host timers' (homelab-tools.env), read by
    // node_exporter, written by log-tail-ship.
    let settings = read(&workspace().join("scripts/homelab-tools.env"));
    let host_dir = settings
        .lines()
        .find_map(|l| l.strip_prefix("HOMELAB_TEXTFILE_DIR="))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let ne = service(&c, "node-exporter");
    assert!(strings(&ne["volumes"]).contains(&format!("{host_dir}:/textfile:ro")));
    assert!(strings(&ne["command"]).contains(&"--collector.textfile.directory=/textfile".to_string()));
    assert!(strings(&lts["volumes"]).contains(&format!("{host_dir}:/textfile:rw")));
    assert!(cmd.contains(&"--textfile-dir=/textfile".to_string()));
    // Only the cheap collectors: the defaults off, textfile and cpu on.
    let flags = strings(&ne["command"]);
    assert!(flags.contains(&"--collector.disable-defaults".to_string()));
    let enabled: Vec<&String> = flags
        .iter()
        .filter(|f| f.starts_with("--collector.") && !f.contains('=') && *f != "--collector.disable-defaults")
        .collect();
    assert_eq!(enabled, ["--collector.textfile", "--collector.cpu"]);
}

// ---- Prometheus, Alertmanager, Loki ------------------------------------------------

#[test]
fn prometheus_scrapes_every_30s_keeps_15_days_and_caps_its_size() {
    let out = Command::new("promtool")
        .args(["check", "config"])
        .arg(stack_dir().join("config/prometheus/prometheus.yml"))
        .output()
        .expect("promtool");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let p = yaml_file(&stack_dir().join("config/prometheus/prometheus.yml"));
    assert_eq!(p["global"]["scrape_interval"].as_str(), Some("30s"));
    assert_eq!(p["global"]["evaluation_interval"].as_str(), Some("30s"));
    let c = config();
    let cmd = strings(&service(&c, "prometheus")["command"]);
    assert!(
        cmd.contains(&"--storage.tsdb.retention.time=15d".to_string()),
        "{cmd:?}"
    );
    assert!(
        cmd.iter()
            .any(|a| a.starts_with("--storage.tsdb.retention.size=")),
        "{cmd:?}"
    );
    // Every target is a service of the stack, on a port it listens on.
    let names: BTreeSet<String> = services(&c).into_iter().map(|(n, _)| n).collect();
    for job in p["scrape_configs"].as_sequence().unwrap() {
        for sc in job["static_configs"].as_sequence().unwrap() {
            for t in strings(&sc["targets"]) {
                let host = t.split(':').next().unwrap();
                assert!(
                    host == "localhost" || names.contains(host),
                    "target {t} is no service"
                );
            }
        }
    }
    let am = strings(&p["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]);
    assert_eq!(am, ["alertmanager:9093"]);
    assert_eq!(strings(&p["rule_files"]), ["/etc/prometheus/rules/*.yml"]);
    assert!(
        strings(&service(&c, "prometheus")["volumes"])
            .iter()
            .any(|v| v.ends_with("/prometheus/rules:/etc/prometheus/rules:ro"))
    );
}

/// amtool's status, stdout, and stdout with stderr (for messages).
fn amtool(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("amtool")
        .args(args)
        .output()
        .expect("amtool is needed (Debian package prometheus-alertmanager; scripts/test installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let all = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), stdout, all)
}

#[test]
fn alertmanager_sends_everything_to_ntfy_and_critical_alerts_also_by_email() {
    let file = stack_dir().join("config/alertmanager/alertmanager.yml");
    let f = file.to_str().unwrap();
    let (ok, _, report) = amtool(&["check-config", f]);
    assert!(ok, "{report}");
    let route = |labels: &[&str]| {
        let mut args = vec!["config", "routes", "test", "--config.file", f];
        args.extend_from_slice(labels);
        let (ok, out, report) = amtool(&args);
        assert!(ok, "{report}");
        out
    };
    assert_eq!(route(&["alertname=RouteDown", "severity=critical"]), "email,ntfy");
    assert_eq!(route(&["alertname=TextfileStale", "severity=warning"]), "ntfy");
    let a = yaml_file(&file);
    let receivers: BTreeMap<String, Yaml> = a["receivers"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_string(), r.clone()))
        .collect();
    assert!(
        receivers["ntfy"]["webhook_configs"][0]["url"]
            .as_str()
            .unwrap()
            .contains("ntfy")
    );
    assert!(receivers["email"]["email_configs"][0]["to"].as_str().is_some());
    // The SMTP password is a compose secret, never in the file.
    assert!(a["global"]["smtp_auth_password"].is_null());
    let pw = a["global"]["smtp_auth_password_file"].as_str().unwrap();
    let am = service(&config(), "alertmanager");
    assert!(pw.starts_with("/run/secrets/"));
    assert_eq!(
        text(&am["secrets"][0]["source"])
            .or_else(|| text(&am["secrets"][0]))
            .as_deref(),
        pw.strip_prefix("/run/secrets/")
    );
    // A critical alert silences the warning of the same name on the same instance.
    let inhibit = &a["inhibit_rules"][0];
    assert_eq!(strings(&inhibit["source_matchers"]), ["severity=\"critical\""]);
    assert_eq!(strings(&inhibit["target_matchers"]), ["severity=\"warning\""]);
    assert_eq!(strings(&inhibit["equal"]), ["alertname", "instance"]);
}

#[test]
fn traefik_gets_the_dns_resolver_token_as_a_secret() {
    // traefik.yml's le-dns resolver (DNS-01, Cloudflare) needs an API token; lego reads
    // it from the file CF_DNS_API_TOKEN_FILE names, a compose secret.
    let t = yaml_file(&stack_dir().join("traefik/traefik.yml"));
    assert_eq!(
        t["certificatesResolvers"]["le-dns"]["acme"]["dnsChallenge"]["provider"].as_str(),
        Some("cloudflare")
    );
    let c = config();
    let traefik = service(&c, "traefik");
    let file = traefik["environment"]["CF_DNS_API_TOKEN_FILE"]
        .as_str()
        .expect("CF_DNS_API_TOKEN_FILE in the Traefik service's environment");
    let secret = file.strip_prefix("/run/secrets/").expect("a compose secret");
    let attached: Vec<String> = traefik["secrets"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|s| text(&s["source"]).or_else(|| text(s)))
        .collect();
    assert!(attached.contains(&secret.to_string()), "{attached:?}");
    assert!(
        c["secrets"][secret]["file"]
            .as_str()
            .is_some_and(|f| f.ends_with(&format!("/secrets/{secret}"))),
        "{:?}",
        c["secrets"][secret]
    );
}

#[test]
fn the_dashboard_router_is_at_the_users_domain() {
    // dynamic/dashboard.yml hard-coded traefik.example.com; the router is now the Traefik
    // service's labels, which compose resolves from .env.
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("user.env");
    std::fs::write(&env, "DOMAIN=pi.example.net\n").unwrap();
    let c = compose_config(&env);
    let labels = &service(&c, "traefik")["labels"];
    let rule = labels["traefik.http.routers.dashboard.rule"]
        .as_str()
        .expect("a dashboard router on the Traefik service");
    assert!(rule.contains("Host(`traefik.pi.example.net`)"), "{rule}");
    assert_eq!(
        labels["traefik.http.routers.dashboard.service"].as_str(),
        Some("api@internal")
    );
    let rendered = serde_yaml_ng::to_string(&c["services"]).unwrap();
    assert!(
        !rendered.contains("example.com"),
        "a host of example.com is left with DOMAIN set"
    );
}

#[test]
fn loki_keeps_14_days_on_the_filesystem_with_limits_for_one_small_host() {
    // Loki cannot be installed here: its configuration is checked against the keys
    // and values its documentation gives for this setup, not run.
    let l = yaml_file(&stack_dir().join("config/loki/loki.yml"));
    assert_eq!(l["auth_enabled"].as_bool(), Some(false));
    assert!(
        l["common"]["storage"]["filesystem"]["chunks_directory"]
            .as_str()
            .is_some()
    );
    let schema = &l["schema_config"]["configs"][0];
    assert_eq!(schema["store"].as_str(), Some("tsdb"));
    assert_eq!(schema["object_store"].as_str(), Some("filesystem"));
    assert_eq!(schema["schema"].as_str(), Some("v13"));
    assert_eq!(schema["index"]["period"].as_str(), Some("24h"));
    assert_eq!(l["compactor"]["retention_enabled"].as_bool(), Some(true));
    assert_eq!(
        l["compactor"]["delete_request_store"].as_str(),
        Some("filesystem")
    );
    assert_eq!(l["limits_config"]["retention_period"].as_str(), Some("336h"));
    let lim = &l["limits_config"];
    assert!(lim["ingestion_rate_mb"].as_u64().is_some_and(|v| v <= 8));
    assert!(lim["max_query_parallelism"].as_u64().is_some_and(|v| v <= 4));
    assert_eq!(
        lim["max_line_size"].as_str(),
        Some("256KB"),
        "log-tail-ship's default --max-line-bytes"
    );
    assert!(l["querier"]["max_concurrent"].as_u64().is_some_and(|v| v <= 4));
    assert_eq!(l["analytics"]["reporting_enabled"].as_bool(), Some(false));
    // Every top-level block is one Loki 3 knows.
    let known = [
        "auth_enabled",
        "server",
        "common",
        "schema_config",
        "storage_config",
        "ingester",
        "compactor",
        "limits_config",
        "querier",
        "query_range",
        "frontend",
        "pattern_ingester",
        "ruler",
        "analytics",
        "query_scheduler",
        "distributor",
        "memberlist",
        "table_manager",
        "chunk_store_config",
        "tracing",
    ];
    for (k, _) in l.as_mapping().unwrap() {
        assert!(known.contains(&k.as_str().unwrap()), "unknown Loki block {k:?}");
    }
    let c = config();
    let loki = service(&c, "loki");
    assert_eq!(strings(&loki["command"]), ["-config.file=/etc/loki/loki.yml"]);
    assert!(
        strings(&loki["volumes"])
            .iter()
            .any(|v| v.ends_with("/config/loki/loki.yml:/etc/loki/loki.yml:ro"))
    );
}

// ---- Grafana -----------------------------------------------------------------------

fn datasources() -> BTreeMap<String, Yaml> {
    let d = yaml_file(&stack_dir().join("grafana/provisioning/datasources/homelab.yml"));
    d["datasources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| (s["uid"].as_str().unwrap().to_string(), s.clone()))
        .collect()
}

#[test]
fn grafana_is_provisioned_with_the_stack_s_data_sources_and_dashboards() {
    let c = config();
    let ds = datasources();
    assert_eq!(
        ds.keys().collect::<Vec<_>>(),
        ["alertmanager", "loki", "prometheus"]
    );
    for (uid, service_name, port) in [
        ("prometheus", "prometheus", 9090),
        ("loki", "loki", 3100),
        ("alertmanager", "alertmanager", 9093),
    ] {
        assert_eq!(ds[uid]["type"].as_str(), Some(uid));
        assert_eq!(
            ds[uid]["url"].as_str(),
            Some(format!("http://{service_name}:{port}").as_str())
        );
    }
    assert_eq!(ds["prometheus"]["jsonData"]["timeInterval"].as_str(), Some("30s"));
    let p = yaml_file(&stack_dir().join("grafana/provisioning/dashboards/homelab.yml"));
    let path = p["providers"][0]["options"]["path"].as_str().unwrap();
    let g = service(&c, "grafana");
    let vols = strings(&g["volumes"]);
    assert!(
        vols.iter()
            .any(|v| v.ends_with(&format!("/grafana/dashboards:{path}:ro"))),
        "{vols:?}"
    );
    assert!(
        vols.iter()
            .any(|v| v.ends_with("/grafana/provisioning:/etc/grafana/provisioning:ro"))
    );
    assert_eq!(
        env(&g, "GF_DASHBOARDS_MIN_REFRESH_INTERVAL").as_deref(),
        Some("30s")
    );
    assert_eq!(
        env(&g, "GF_SECURITY_ADMIN_PASSWORD__FILE").as_deref(),
        Some("/run/secrets/grafana_admin_password")
    );
}

fn seconds(d: &str) -> Option<u64> {
    let (n, unit) = d.split_at(d.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = n.parse().ok()?;
    Some(
        n * match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86400,
            _ => return None,
        },
    )
}

#[test]
fn dashboards_are_well_formed_and_refresh_no_faster_than_30s() {
    let ds = datasources();
    let all = dashboards();
    let titles: BTreeSet<&str> = all.iter().map(|(_, d)| d["title"].as_str().unwrap()).collect();
    for want in ["Pi health", "Containers", "Logs", "Backups", "Routes"] {
        assert!(titles.contains(want), "no dashboard {want}: {titles:?}");
    }
    let mut uids = BTreeSet::new();
    for (file, d) in &all {
        assert!(
            uids.insert(d["uid"].as_str().unwrap().to_string()),
            "{file}: uid used twice"
        );
        assert!(
            d["uid"].as_str().unwrap().len() <= 40,
            "{file}: Grafana uids are at most 40 characters"
        );
        assert!(d["schemaVersion"].as_u64().is_some(), "{file}");
        let refresh = seconds(d["refresh"].as_str().expect("a refresh")).unwrap();
        assert!(refresh >= 30, "{file}: refresh {refresh}s");
        for r in d["timepicker"]["refresh_intervals"]
            .as_array()
            .expect("refresh_intervals")
        {
            assert!(
                seconds(r.as_str().unwrap()).unwrap() >= 30,
                "{file}: refresh option {r}"
            );
        }
        let vars: BTreeSet<&str> = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        for v in &vars {
            assert!(
                DASHBOARD_VARIABLES.contains(v),
                "{file}: variable {v} unknown to the tests"
            );
        }
        for v in d["templating"]["list"].as_array().unwrap() {
            if v["type"] == "query" {
                assert!(
                    ds.contains_key(v["datasource"]["uid"].as_str().unwrap()),
                    "{file}: {v}"
                );
            }
        }
        // Panels: unique ids, inside the 24-column grid, not overlapping.
        let mut ids = BTreeSet::new();
        let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
        for p in d["panels"].as_array().unwrap() {
            let title = p["title"].as_str().unwrap_or_default().to_string();
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "{file}: id of {title} used twice"
            );
            let g = &p["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_u64().unwrap(),
                g["y"].as_u64().unwrap(),
                g["w"].as_u64().unwrap(),
                g["h"].as_u64().unwrap(),
            );
            assert!(w > 0 && h > 0 && x + w <= 24, "{file}: {title} {g}");
            for cx in x..x + w {
                for cy in y..y + h {
                    if let Some(other) = cells.insert((cx, cy), title.clone()) {
                        panic!("{file}: {title} overlaps {other}");
                    }
                }
            }
            let kind = p["type"].as_str().unwrap();
            assert!(
                ["row", "timeseries", "stat", "table", "bargauge", "gauge", "logs"].contains(&kind),
                "{file}: {title} is a {kind}"
            );
            if kind == "row" {
                continue;
            }
            assert!(
                p["description"].as_str().is_some_and(|s| !s.is_empty()),
                "{file}: {title} has no description"
            );
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{file}: {title} has no query");
            let mut refs = BTreeSet::new();
            for t in targets {
                assert!(
                    refs.insert(t["refId"].as_str().unwrap()),
                    "{file}: {title}: refId twice"
                );
                let uid = t["datasource"]["uid"].as_str().unwrap();
                assert!(ds.contains_key(uid), "{file}: {title}: data source {uid}");
                assert!(
                    !t["expr"].as_str().unwrap_or_default().is_empty(),
                    "{file}: {title}: empty query"
                );
            }
            if kind == "logs" {
                assert_eq!(p["datasource"]["uid"].as_str(), Some("loki"), "{file}: {title}");
            }
        }
    }
}

/// Runs `promtool check rules` on one recording rule per expression; returns its report.
fn promtool_parses(exprs: &[String]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(e).unwrap()
        ));
    }
    let file = dir.path().join("dashboards.rules.yml");
    std::fs::write(&file, rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn every_promql_expression_of_the_dashboards_parses() {
    let queries: Vec<Query> = queries()
        .into_iter()
        .filter(|q| q.datasource == "prometheus")
        .collect();
    assert!(queries.len() >= 40, "{} PromQL queries", queries.len());
    let exprs: Vec<String> = queries.iter().map(|q| expand(&q.expr, "2m", "30s", "")).collect();
    let (ok, report) = promtool_parses(&exprs);
    let listing: String = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| format!("query{i}: {e}\n"))
        .collect();
    assert!(ok, "{report}\n{listing}");
    // Variable queries too: label_values(METRIC, LABEL) names a metric and a label.
    for (file, d) in dashboards() {
        for v in d["templating"]["list"].as_array().unwrap() {
            if v["datasource"]["uid"] == "prometheus" {
                let q = v["query"]["query"].as_str().unwrap();
                let inner = q
                    .strip_prefix("label_values(")
                    .and_then(|q| q.strip_suffix(')'))
                    .unwrap();
                let (metric, _label) = inner.split_once(", ").unwrap();
                let (ok, report) = promtool_parses(&[metric.to_string()]);
                assert!(ok, "{file}: {q}: {report}");
            }
        }
    }
    // And the check can fail.
    let (ok, _) = promtool_parses(&["sum by (name (up)".to_string()]);
    assert!(!ok);
}

// ---- LogQL ---------------------------------------------------------------------------

/// The labels log-tail-ship puts on its streams (issue 4): never one per line.
const LOKI_LABELS: &[&str] = &[
    "host",
    "job",
    "container",
    "compose_service",
    "stream",
    "filename",
    "unit",
    "syslog_identifier",
    "priority",
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Dur(String),
    Punct(&'static str),
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let puncts = ["|=", "!=", "|~", "!~", "=~", "{", "}", "(", ")", ",", "="];
    'outer: while i < b.len() {
        let c = b[i] as char;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '"' || c == '`' {
            let mut j = i + 1;
            let mut v = String::new();
            while j < b.len() && b[j] as char != c {
                if c == '"' && b[j] == b'\\' && j + 1 < b.len() {
                    v.push(b[j + 1] as char);
                    j += 2;
                    continue;
                }
                v.push(b[j] as char);
                j += 1;
            }
            if j >= b.len() {
                return Err(format!("unterminated string at {i}"));
            }
            out.push(Tok::Str(v));
            i = j + 1;
            continue;
        }
        if c == '[' {
            let j = s[i..].find(']').ok_or("unterminated range")? + i;
            let d = s[i + 1..j].trim();
            seconds(d).ok_or(format!("bad range [{d}]"))?;
            out.push(Tok::Dur(d.to_string()));
            i = j + 1;
            continue;
        }
        for p in puncts {
            if s[i..].starts_with(p) {
                out.push(Tok::Punct(p));
                i += p.len();
                continue 'outer;
            }
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let j = s[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(s.len(), |j| j + i);
            out.push(Tok::Ident(s[i..j].to_string()));
            i = j;
            continue;
        }
        return Err(format!("unexpected {c:?} at {i}"));
    }
    Ok(out)
}

struct LogQl {
    toks: Vec<Tok>,
    pos: usize,
}

impl LogQl {
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn expect(&mut self, p: &'static str) -> Result<(), String> {
        match self.next() {
            Some(Tok::Punct(q)) if q == p => Ok(()),
            other => Err(format!("expected {p}, found {other:?}")),
        }
    }
    /// expr := AGG [by|without (labels)] ( expr ) | RANGEFN ( log RANGE ) | log
    fn expr(&mut self, metric_allowed: bool) -> Result<bool, String> {
        match self.peek().cloned() {
            Some(Tok::Ident(f)) if ["sum", "count", "max", "min", "avg"].contains(&f.as_str()) => {
                self.next();
                if let Some(Tok::Ident(k)) = self.peek().cloned()
                    && (k == "by" || k == "without")
                {
                    self.next();
                    self.expect("(")?;
                    loop {
                        match self.next() {
                            Some(Tok::Ident(l)) if LOKI_LABELS.contains(&l.as_str()) => {}
                            other => {
                                return Err(format!("grouping by {other:?}, not a label of log-tail-ship"));
                            }
                        }
                        match self.next() {
                            Some(Tok::Punct(",")) => continue,
                            Some(Tok::Punct(")")) => break,
                            other => return Err(format!("in grouping: {other:?}")),
                        }
                    }
                }
                self.expect("(")?;
                if !self.expr(true)? {
                    return Err(format!("{f} needs a metric query inside"));
                }
                self.expect(")")?;
                Ok(true)
            }
            Some(Tok::Ident(f))
                if ["count_over_time", "rate", "bytes_over_time", "bytes_rate"].contains(&f.as_str()) =>
            {
                if !metric_allowed {
                    return Err(format!("{f} where a log query belongs"));
                }
                self.next();
                self.expect("(")?;
                self.log()?;
                match self.next() {
                    Some(Tok::Dur(_)) => {}
                    other => return Err(format!("{f} needs a [range], found {other:?}")),
                }
                self.expect(")")?;
                Ok(true)
            }
            _ => {
                self.log()?;
                Ok(false)
            }
        }
    }
    /// log := { matcher, ... } (filter STRING)*
    fn log(&mut self) -> Result<(), String> {
        self.expect("{")?;
        let mut non_empty = false;
        loop {
            let label = match self.next() {
                Some(Tok::Ident(l)) => l,
                other => return Err(format!("expected a label, found {other:?}")),
            };
            if !LOKI_LABELS.contains(&label.as_str()) {
                return Err(format!("{label} is not a label log-tail-ship sets"));
            }
            let op = match self.next() {
                Some(Tok::Punct(p)) if ["=", "!=", "=~", "!~"].contains(&p) => p,
                other => return Err(format!("expected a matcher operator, found {other:?}")),
            };
            let value = match self.next() {
                Some(Tok::Str(v)) => v,
                other => return Err(format!("expected a string, found {other:?}")),
            };
            if op.contains('~') {
                let re = regex::Regex::new(&format!("^(?:{value})$")).map_err(|e| format!("{value}: {e}"))?;
                if op == "=~" && !re.is_match("") {
                    non_empty = true;
                }
            } else if op == "=" && !value.is_empty() {
                non_empty = true;
            }
            match self.next() {
                Some(Tok::Punct(",")) => continue,
                Some(Tok::Punct("}")) => break,
                other => return Err(format!("in the selector: {other:?}")),
            }
        }
        if !non_empty {
            return Err("Loki needs one matcher that does not match the empty string".into());
        }
        while let Some(Tok::Punct(p)) = self.peek().cloned() {
            if !["|=", "!=", "|~", "!~"].contains(&p) {
                break;
            }
            self.next();
            match self.next() {
                Some(Tok::Str(v)) => {
                    if p.contains('~') {
                        regex::Regex::new(&v).map_err(|e| format!("{v}: {e}"))?;
                    }
                }
                other => return Err(format!("line filter {p} needs a string, found {other:?}")),
            }
        }
        Ok(())
    }
}

/// Parses a LogQL query of the subset the dashboards use: a stream selector on
/// log-tail-ship's labels with line filters, or counts over it summed by labels.
fn parse_logql(q: &str) -> Result<bool, String> {
    let mut p = LogQl {
        toks: lex(q)?,
        pos: 0,
    };
    let metric = p.expr(true)?;
    if p.pos != p.toks.len() {
        return Err(format!("left over: {:?}", &p.toks[p.pos..]));
    }
    Ok(metric)
}

#[test]
fn every_logql_expression_of_the_dashboards_parses_and_uses_log_tail_ship_s_labels() {
    let loki: Vec<Query> = queries().into_iter().filter(|q| q.datasource == "loki").collect();
    assert!(loki.len() >= 4, "{loki:?}");
    for q in &loki {
        for search in ["", "(?i)timeout"] {
            let e = expand(&q.expr, "2m", "30s", search);
            parse_logql(&e).unwrap_or_else(|err| panic!("{} / {}: {e}: {err}", q.dashboard, q.panel));
        }
    }
    // Log panels show lines; graphs count them.
    for (_, d) in dashboards() {
        for p in d["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if t["datasource"]["uid"] == "loki" {
                    let metric = parse_logql(&expand(t["expr"].as_str().unwrap(), "2m", "30s", "")).unwrap();
                    assert_eq!(metric, p["type"] != "logs", "{}", p["title"]);
                }
            }
        }
    }
    // The variable query names a label log-tail-ship sets.
    for (_, d) in dashboards() {
        for v in d["templating"]["list"].as_array().unwrap() {
            if v["datasource"]["uid"] == "loki" {
                let q = v["query"].as_str().unwrap();
                let label = q
                    .strip_prefix("label_values(")
                    .and_then(|q| q.strip_suffix(')'))
                    .unwrap();
                assert!(LOKI_LABELS.contains(&label), "{q}");
            }
        }
    }
    // The grammar rejects what Loki rejects.
    for bad in [
        r#"{compose_service=~".*"}"#,
        r#"{level="error"}"#,
        r#"sum(count_over_time({job="x"}))"#,
        r#"{job="x"} |= error"#,
        r#"sum by (line) (count_over_time({job="x"} [1m]))"#,
        r#"{job="x""#,
    ] {
        assert!(parse_logql(bad).is_err(), "accepted {bad}");
    }
}

#[test]
fn the_host_s_logs_come_from_the_journal_and_its_panels_read_its_labels() {
    let (_, logs) = dashboards()
        .into_iter()
        .find(|(f, _)| f == "logs.json")
        .expect("logs.json");
    let host: Vec<&serde_json::Value> = logs["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["title"].as_str().unwrap_or_default().starts_with("Host"))
        .collect();
    assert!(host.len() >= 2, "a host log panel and a host errors panel");
    for p in host {
        for t in p["targets"].as_array().unwrap() {
            let e = t["expr"].as_str().unwrap();
            assert!(
                e.contains(r#"job="journal""#) && e.contains("unit=~"),
                "{}: {e}",
                p["title"]
            );
            assert!(!e.contains("filename"), "{}: {e}", p["title"]);
        }
    }
    // The host settings for the systemd unit follow the journal as well.
    let settings = read(&workspace().join("scripts/homelab-tools.env"));
    let args = settings
        .lines()
        .find_map(|l| l.strip_prefix("LOG_TAIL_SHIP_ARGS="))
        .expect("LOG_TAIL_SHIP_ARGS");
    assert!(args.contains("--journal") && !args.contains("syslog"), "{args}");
}

// ---- scripts: init-secrets, the image ----------------------------------------------

#[test]
fn init_secrets_creates_each_secret_once_readable_by_the_services() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    let run = || {
        let out = Command::new(stack_dir().join("init-secrets"))
            .arg(&secrets)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&secrets), 0o700);
    let c = config();
    let mut wanted: Vec<String> = c["secrets"]
        .as_mapping()
        .unwrap()
        .values()
        .map(|s| {
            Path::new(s["file"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    wanted.push("users.htpasswd".into());
    let mut before = BTreeMap::new();
    for name in &wanted {
        let p = secrets.join(name);
        let content = std::fs::read_to_string(&p).unwrap_or_else(|_| panic!("{name} was not created"));
        assert_eq!(mode(&p), 0o644, "{name}");
        before.insert(name.clone(), content);
    }
    let token = &before["n8n_runners_auth_token"];
    assert_eq!(token.len(), 64, "{token:?}");
    assert!(
        token.chars().all(|c| c.is_ascii_hexdigit()),
        "no newline: n8n reads the file verbatim"
    );
    assert!(before["users.htpasswd"].starts_with("admin:$apr1$"));
    // No made-up password the user may never replace ("change-me" was one): the
    // secrets only the user knows start empty.
    assert_eq!(before["alertmanager_smtp_password"], "", "the SMTP password");
    assert_eq!(before["cf_dns_api_token"], "", "the DNS API token");
    run();
    for name in &wanted {
        assert_eq!(
            std::fs::read_to_string(secrets.join(name)).unwrap(),
            before[name],
            "{name} changed"
        );
    }
}

/// A base image made from this machine's glibc and busybox (no registry here to
/// pull debian:bookworm-slim from), removed when dropped.
struct Image {
    docker: homelab_testkit::Docker,
    tag: String,
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = self.docker.output(&["rmi", "-f", &self.tag]);
    }
}

/// The ELF machine of a binary (bytes 18-19 of its header).
fn elf_machine(path: &Path) -> [u8; 2] {
    let head = std::fs::read(path).unwrap();
    [head[18], head[19]]
}

/// The shared libraries and loader a binary needs, as (file on this machine, path in
/// the image). A binary of this machine's architecture: what ldd finds. One built for
/// the Pi (tests run under qemu-user): its NEEDED libraries and interpreter from
/// Debian's cross libc under QEMU_LD_PREFIX, which the kernel's binfmt qemu (flag F)
/// runs inside a container too.
fn runtime_files(binary: &Path) -> Vec<(PathBuf, PathBuf)> {
    if elf_machine(binary) == elf_machine(Path::new("/bin/busybox")) {
        let ldd = Command::new("ldd").arg(binary).output().unwrap();
        return String::from_utf8_lossy(&ldd.stdout)
            .split_whitespace()
            .filter(|w| w.starts_with('/'))
            .map(|w| (PathBuf::from(w), PathBuf::from(w)))
            .collect();
    }
    let prefix = PathBuf::from(std::env::var("QEMU_LD_PREFIX").unwrap_or("/usr/aarch64-linux-gnu".into()));
    let readelf = |flag: &str| {
        let out = Command::new("readelf")
            .arg(flag)
            .arg(binary)
            .output()
            .expect("readelf (binutils)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut files = Vec::new();
    for l in readelf("-d").lines() {
        if let Some(name) = l
            .split("Shared library: [")
            .nth(1)
            .and_then(|n| n.strip_suffix(']'))
        {
            files.push((prefix.join("lib").join(name), PathBuf::from("/lib").join(name)));
        }
    }
    for l in readelf("-l").lines() {
        if let Some(interp) = l
            .split("program interpreter: ")
            .nth(1)
            .and_then(|n| n.strip_suffix(']'))
        {
            files.push((prefix.join(interp.trim_start_matches('/')), PathBuf::from(interp)));
        }
    }
    assert!(files.len() >= 2, "no libraries found for {}", binary.display());
    files
}

fn glibc_base(docker: &homelab_testkit::Docker, binary: &Path) -> Image {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let mut files = runtime_files(binary);
    files.push((PathBuf::from("/bin/busybox"), PathBuf::from("/bin/busybox")));
    for (src, dest) in files {
        let dest = r.join(dest.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&src, &dest).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    }
    for applet in ["sh", "find", "test"] {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(applet)).unwrap();
    }
    std::fs::create_dir_all(r.join("usr/bin")).unwrap();
    std::fs::create_dir_all(r.join("tmp")).unwrap();
    let tag = format!("hlt-stack-base:{}", std::process::id());
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(r)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = docker
        .command()
        .args(["import", "--change", "ENV PATH=/usr/bin:/bin", "-", &tag])
        .stdin(tar.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(tar.wait().unwrap().success(), "tar of the base image");
    assert!(
        out.status.success(),
        "docker import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Image {
        docker: docker.clone(),
        tag,
    }
}

#[test]
fn the_homelab_tools_image_builds_from_the_binaries_and_runs_them() {
    let _machine = homelab_testkit::shared();
    let docker = homelab_testkit::docker();
    let base = glibc_base(&docker, &homelab_e2e::tool("pi-thermal"));
    // Only pi-thermal goes in (debug binaries are large and this engine copies every
    // layer): the script picks whichever tools it finds.
    let only = tempfile::tempdir().unwrap();
    homelab_testkit::copy_executable(&homelab_e2e::tool("pi-thermal"), &only.path().join("pi-thermal"));
    let image = Image {
        docker: docker.clone(),
        tag: format!("hlt-homelab-tools:{}", std::process::id()),
    };
    let out = Command::new(stack_dir().join("build-image"))
        .env("DOCKER_HOST", &docker.host)
        .args([
            "--bin-dir",
            only.path().to_str().unwrap(),
            "--tag",
            &image.tag,
            "--base",
            &base.tag,
        ])
        .args([
            "--",
            "--network",
            "none",
            "--label",
            &format!("hlt.test=build-{}", std::process::id()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build-image: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("log-tail-ship is not in"),
        "warns about the missing agent"
    );
    // The tool runs inside, reading the Pi 5 fixture through --root as it would /host.
    let fixture = workspace().join("crates/pi-thermal/tests/fixtures/pi5");
    let name = docker.unique_name("stack-image");
    let out = docker.output(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--label",
        &format!("hlt.test={name}"),
        "--name",
        &name,
        "-v",
        &format!("{}:/host:ro", fixture.display()),
        &image.tag,
        "pi-thermal",
        "--root",
        "/host",
        "--format",
        "prom",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.contains("pi_info{model=\"Raspberry Pi 5 Model B Rev 1.0\"} 1"),
        "{page}"
    );
    // An empty --bin-dir is refused with 66.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(stack_dir().join("build-image"))
        .env("DOCKER_HOST", &docker.host)
        .args(["--bin-dir", empty.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(66));
}

#[test]
fn log_tail_ship_s_health_check_passes_on_a_fresh_textfile_and_fails_on_a_stale_one() {
    // The compose health check, run by the same busybox sh and find the image has.
    let c = config();
    let test = strings(&service(&c, "log-tail-ship")["healthcheck"]["test"]);
    assert_eq!(test[0], "CMD-SHELL");
    // docker-compose prints $$ (compose's escape for $) as it was written.
    let script = test[1].replace("$$", "$");
    let dir = tempfile::tempdir().unwrap();
    let script = script.replace("/textfile/", &format!("{}/", dir.path().display()));
    let check = || {
        Command::new("busybox")
            .args(["sh", "-c", &script])
            .status()
            .unwrap()
            .success()
    };
    assert!(!check(), "no file yet: unhealthy");
    let f = dir.path().join("log-tail-ship.prom");
    std::fs::write(&f, "logship_last_run_timestamp_seconds 1\n").unwrap();
    assert!(check(), "fresh file: healthy");
    let old = nix::sys::time::TimeSpec::new(1_000_000_000, 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &f,
        &old,
        &old,
        nix::sys::stat::UtimensatFlags::FollowSymlink,
    )
    .unwrap();
    assert!(!check(), "stale file: unhealthy");
}

#[test]
fn the_overview_man_page_names_every_unit_and_service() {
    let page = read(&workspace().join("man/homelab-tools.7"));
    let mut names: Vec<String> = services(&config()).into_iter().map(|(n, _)| n).collect();
    for e in std::fs::read_dir(workspace().join("scripts/systemd")).unwrap() {
        let p = e.unwrap().path();
        let file = p.file_name().unwrap().to_string_lossy().into_owned();
        // A timer's service is named by its timer; log-tail-ship's is a service.
        if file.ends_with(".timer") || file == "log-tail-ship.service" {
            names.push(file);
        }
    }
    let missing = homelab_testkit::undocumented(&page, names.iter().map(String::as_str));
    assert!(
        missing.is_empty(),
        "man/homelab-tools.7 does not name {missing:?}"
    );
}

/// An HTTP server on loopback answering every request with `status`; records the
/// request lines it got.
fn status_server(status: u16) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l).unwrap_or(0) == 0 || l.trim().is_empty() {
                    break;
                }
            }
            log.lock().unwrap().push(first.trim().to_string());
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
        }
    });
    (port, seen)
}

#[test]
fn http_health_checks_pass_on_200_and_fail_otherwise() {
    // Each HTTP health check of the compose file, run here with the same kind of
    // client the image has (busybox wget, curl, node) against a server that answers
    // 200, then 503, then a port where nothing listens.
    let c = config();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox (Debian package busybox-static; scripts/test installs it)");
    let tools = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(busybox, tools.path().join("wget")).unwrap();
    let path_env = format!("{}:/usr/bin:/bin", tools.path().display());
    let url = regex::Regex::new(r"http://127\.0\.0\.1:(\d+)(/[^ '\x22]*)").unwrap();
    let mut checked = Vec::new();
    for (name, s) in services(&c) {
        let test = strings(&s["healthcheck"]["test"]);
        let joined = test.join(" ");
        let Some(m) = url.captures(&joined) else { continue };
        let (port, path) = (m[1].to_string(), m[2].to_string());
        let run = |target: u16| -> bool {
            let rewrite =
                |a: &String| a.replace(&format!("127.0.0.1:{port}"), &format!("127.0.0.1:{target}"));
            let mut cmd = match test[0].as_str() {
                "CMD" => {
                    let mut c = Command::new(if test[1] == "wget" {
                        busybox
                    } else {
                        test[1].as_str()
                    });
                    if test[1] == "wget" {
                        c.arg("wget");
                    }
                    c.args(test[2..].iter().map(rewrite));
                    c
                }
                "CMD-SHELL" => {
                    let mut c = Command::new(busybox);
                    c.args(["sh", "-c", &rewrite(&test[1])]);
                    c
                }
                other => panic!("{name}: {other}"),
            };
            cmd.env("PATH", &path_env)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap_or_else(|e| panic!("{name}: {:?}: {e} (node: Debian package nodejs)", test))
                .success()
        };
        let (ok_port, seen) = status_server(200);
        assert!(run(ok_port), "{name}: {joined} fails against a 200");
        assert_eq!(
            seen.lock().unwrap().first().map(String::as_str),
            Some(format!("GET {path} HTTP/1.1").as_str()),
            "{name}"
        );
        let (bad_port, _) = status_server(503);
        assert!(!run(bad_port), "{name}: {joined} passes against a 503");
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(!run(closed), "{name}: {joined} passes with nothing listening");
        checked.push(name);
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "alertmanager",
            "grafana",
            "loki",
            "n8n",
            "n8n-runners",
            "node-exporter",
            "prometheus",
            "socket-proxy"
        ],
        "the HTTP health checks"
    );
}
