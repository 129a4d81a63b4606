//! The stack's monitoring end to end, with real services: this test starts its own
//! node_exporter (with the collectors the compose file enables), Prometheus (the
//! repository's configuration and rules, with a 2 s scrape and 1 s evaluation interval)
//! and Alertmanager (the repository's routes, with the ntfy webhook pointed at a
//! receiver in this test), each on a free loopback port and stopped by pid. Their
//! textfile directory holds real tool output: pi-thermal on the Pi 5 fixture tree,
//! ctr-stats on two containers on the real Docker engine (a web service, and one in
//! Ollama's place with a cpuset) and on a stand-in for Ollama's API (Ollama cannot be
//! installed here: homelab_testkit::ollama answers as its API documentation shows,
//! and ctr-stats' probe measures it), cpu-pin on a process of this
//! test, route-check on that container's Traefik labels through a real TLS proxy
//! (nginx), log-tail-ship shipping a file to a receiver that answers like Loki, and
//! backup-snap backing up a small tree into a new repository and verifying it.
//!
//! Every Prometheus query of every dashboard must return data; a cool Pi fires no
//! alert, and a hot one fires PiSocTemperatureHigh, which Alertmanager delivers to
//! the webhook (the critical alert, with the warning inhibited). The dead man's
//! switch: Alertmanager's configuration is rendered by the compose file's own
//! entrypoint script with HEARTBEAT_URL pointed at a second receiver, where the
//! Watchdog heartbeat arrives again and again (every 2 s here), and stops once
//! Prometheus is stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use homelab_e2e::stack::{compose_config, expand, queries, stack_dir, text, yaml_file};
use homelab_e2e::{tool, workspace};
use homelab_testkit::ollama::{FakeOllama, Mode as OllamaMode};
use homelab_testkit::{Container, Docker, copy_tree, docker, promtool_check_metrics, wait_until};
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A service this test started, stopped (SIGTERM, then waited for) when dropped.
struct Service {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Service {
    fn start(name: &'static str, dir: &Path, cmd: &mut Command) -> Service {
        let log = dir.join(format!("{name}.log"));
        let f = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e} (scripts/test installs it)"));
        Service { name, child, log }
    }

    /// Polls `url` until it answers 200; panics with the service's log if it exits.
    fn wait_ready(&mut self, url: &str) {
        let mut exited = None;
        wait_until(
            Duration::from_secs(60),
            &format!("{} at {url}", self.name),
            || {
                if let Ok(Some(st)) = self.child.try_wait() {
                    exited = Some(st);
                    return true;
                }
                ureq::get(url).call().is_ok()
            },
        );
        if let Some(st) = exited {
            panic!(
                "{} exited ({st}):\n{}",
                self.name,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---- the tools' output -------------------------------------------------------------

fn pi5() -> PathBuf {
    workspace().join("crates/pi-thermal/tests/fixtures/pi5")
}

fn pi_thermal(root: &Path, textfile: &Path) {
    run(Command::new(tool("pi-thermal"))
        .arg("--root")
        .arg(root)
        .arg("--vcgencmd")
        .arg(workspace().join("crates/pi-thermal/tests/fixtures/vcgencmd/pi5"))
        .arg("--textfile-dir")
        .arg(textfile)
        .arg("--quiet"));
}

/// Writes the SoC temperature (millidegrees) into every SoC sensor of a Pi fixture tree.
fn set_soc_temperature(root: &Path, millidegrees: u32) {
    let mut written = 0;
    std::fs::write(
        root.join("sys/class/thermal/thermal_zone0/temp"),
        format!("{millidegrees}\n"),
    )
    .unwrap();
    written += 1;
    for hwmon in std::fs::read_dir(root.join("sys/class/hwmon")).unwrap() {
        let dir = hwmon.unwrap().path();
        let name = std::fs::read_to_string(dir.join("name")).unwrap_or_default();
        if name.trim() == "cpu_thermal" {
            std::fs::write(dir.join("temp1_input"), format!("{millidegrees}\n")).unwrap();
            written += 1;
        }
    }
    assert_eq!(
        written, 2,
        "the Pi 5 fixture has a thermal zone and a cpu_thermal hwmon"
    );
}

/// The metric names a tool wrote to the textfile directory must include every name
/// its issue pins (the dashboards and alert rules are written against them).
fn assert_pinned(textfile: &Path, tool_name: &str, pinned: &[&str]) {
    let page = std::fs::read_to_string(textfile.join(format!("{tool_name}.prom")))
        .unwrap_or_else(|e| panic!("{tool_name}.prom: {e}"));
    promtool_check_metrics(&page);
    let names: BTreeSet<&str> = page
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();
    let missing: Vec<&str> = pinned.iter().copied().filter(|n| !names.contains(n)).collect();
    assert!(missing.is_empty(), "{tool_name}.prom lacks {missing:?}:\n{page}");
}

/// log-tail-ship ships a log file once (a health-check line dropped) to a receiver
/// that answers like Loki's push API, and writes its metrics.
fn log_tail_ship(w: &Path, textfile: &Path) {
    let log = w.join("app.log");
    std::fs::write(&log, "GET / 200\nGET /health 200\nPOST /api/login 401\n").unwrap();
    let loki = webhook();
    run(Command::new(tool("log-tail-ship"))
        .arg("--file")
        .arg(&log)
        .args(["--from-beginning", "--once", "--drop", "GET /health"])
        .args(["--loki", &format!("http://127.0.0.1:{}", loki.port)])
        .arg("--positions")
        .arg(w.join("positions.json"))
        .arg("--textfile-dir")
        .arg(textfile)
        .arg("--quiet"));
    assert!(
        !loki.bodies.lock().unwrap().is_empty(),
        "log-tail-ship pushed nothing"
    );
    assert_pinned(textfile, "log-tail-ship", LOGSHIP_PINNED);
}

/// backup-snap backs up a small tree into a new repository, verifies it, and writes
/// its metrics.
fn backup_snap(w: &Path, textfile: &Path) {
    let src = w.join("n8n-data");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("config"), "{\"encryptionKey\": \"e2e\"}\n").unwrap();
    let repo = w.join("backups");
    let bs = |args: &[&str]| {
        run(Command::new(tool("backup-snap"))
            .arg("--repo")
            .arg(&repo)
            .arg("--textfile-dir")
            .arg(textfile)
            .arg("--quiet")
            .args(args));
    };
    bs(&["init"]);
    bs(&["create", "--job", "homelab", src.to_str().unwrap()]);
    bs(&["verify"]);
    assert_pinned(textfile, "backup-snap", BACKUP_PINNED);
}

const LOGSHIP_PINNED: &[&str] = &[
    "logship_lines_read_total",
    "logship_lines_shipped_total",
    "logship_lines_dropped_total",
    "logship_batches_rejected_total",
    "logship_push_retries_total",
    "logship_bytes_shipped_total",
    "logship_lag_bytes",
    "logship_last_push_timestamp_seconds",
    "logship_last_run_timestamp_seconds",
];

const BACKUP_PINNED: &[&str] = &[
    "backup_last_success_timestamp_seconds",
    "backup_last_duration_seconds",
    "backup_last_size_bytes",
    "backup_last_added_bytes",
    "backup_snapshots",
    "backup_repository_size_bytes",
    "backup_verify_last_success_timestamp_seconds",
    "backup_verify_errors",
    "backup_last_run_timestamp_seconds",
];

/// A container the way the stack runs one: a compose service with Traefik's labels,
/// a memory limit and a health check, plus what the dashboards show of it: a veth
/// pair in its network namespace (network counters) and a published port (a back
/// door for route-check).
fn web_container(d: &Docker, bypass_port: u16, run_label: &str) -> Container {
    let publish = format!("{bypass_port}:80");
    let c = d.start(
        "stack-e2e-web",
        &[
            "--label",
            run_label,
            "--memory",
            "64m",
            "--cap-add",
            "NET_ADMIN",
            "--health-cmd",
            "true",
            "--health-interval",
            "1s",
            "--label",
            "com.docker.compose.project=homelab",
            "--label",
            "com.docker.compose.service=web",
            "--label",
            "traefik.enable=true",
            "--label",
            "traefik.http.routers.e2e.rule=Host(`e2e.test`)",
            "--label",
            "traefik.http.routers.e2e.entrypoints=websecure",
            "--label",
            "traefik.http.routers.e2e.tls.certresolver=le",
            "--label",
            "traefik.http.services.e2e.loadbalancer.server.port=80",
            "-p",
            &publish,
        ],
        &["sleep", "600"],
    );
    c.add_veth_pair();
    wait_until(Duration::from_secs(30), "the container to be healthy", || {
        c.inspect("{{.State.Health.Status}}") == "healthy"
    });
    c
}

/// nginx on loopback serving `e2e.test` over TLS (a certificate of a test CA) and
/// redirecting plain HTTP to HTTPS: the front door route-check probes.
struct Proxy {
    _nginx: Service,
    _dir: tempfile::TempDir,
    tls_port: u16,
    http_port: u16,
    ca: PathBuf,
}

fn proxy() -> Proxy {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let days = |n: i64| time::OffsetDateTime::now_utc() + time::Duration::days(n);
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "stack e2e test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.not_before = days(-1);
    ca.not_after = days(3650);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["e2e.test".to_string()]).unwrap();
    leaf.not_before = days(-1);
    leaf.not_after = days(60);
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    std::fs::write(d.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(d.join("site.crt"), cert.pem()).unwrap();
    std::fs::write(d.join("site.key"), key.serialize_pem()).unwrap();
    let (tls_port, http_port) = (free_port(), free_port());
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy;\n  \
         fastcgi_temp_path {d}/tmp/fastcgi; uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;\n  \
         server {{ listen 127.0.0.1:{tls_port} ssl; server_name e2e.test;\n    \
         ssl_certificate {d}/site.crt; ssl_certificate_key {d}/site.key; return 200 \"ok\\n\"; }}\n  \
         server {{ listen 127.0.0.1:{http_port}; return 301 https://$host$request_uri; }}\n}}\n",
        d = d.display()
    );
    std::fs::create_dir_all(d.join("tmp")).unwrap();
    std::fs::write(d.join("nginx.conf"), conf).unwrap();
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("nginx");
    let svc = Service::start(
        "nginx",
        d,
        Command::new(nginx)
            .arg("-p")
            .arg(d)
            .arg("-e")
            .arg(d.join("error.log"))
            .arg("-c")
            .arg(d.join("nginx.conf")),
    );
    wait_until(Duration::from_secs(20), "nginx to listen", || {
        TcpStream::connect(("127.0.0.1", tls_port)).is_ok()
            && TcpStream::connect(("127.0.0.1", http_port)).is_ok()
    });
    Proxy {
        _nginx: svc,
        ca: d.join("ca.pem"),
        _dir: dir,
        tls_port,
        http_port,
    }
}

// ---- the webhook receiver ----------------------------------------------------------

/// An HTTP server on loopback that stores every POSTed body (Alertmanager's webhook).
struct Webhook {
    port: u16,
    bodies: Arc<Mutex<Vec<String>>>,
}

fn webhook() -> Webhook {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let store = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_ok() {
                store
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    Webhook { port, bodies }
}

impl Webhook {
    /// Every alert delivered so far: (status, labels, annotations).
    fn alerts(&self) -> Vec<Json> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| {
                let v: Json = serde_json::from_str(b).expect("Alertmanager posts JSON");
                v["alerts"].as_array().cloned().unwrap_or_default()
            })
            .collect()
    }
}

// ---- Prometheus --------------------------------------------------------------------

fn query(prom: &str, q: &str) -> Vec<Json> {
    let mut resp = ureq::get(&format!("{prom}/api/v1/query"))
        .query("query", q)
        .call()
        .unwrap_or_else(|e| panic!("query {q}: {e}"));
    let v: Json = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(v["status"], "success", "{q}: {v}");
    match &v["data"]["result"] {
        Json::Array(a) => a.clone(),
        scalar => vec![scalar.clone()],
    }
}

fn firing(prom: &str) -> BTreeSet<String> {
    query(prom, "ALERTS{alertstate=\"firing\"}")
        .iter()
        .map(|s| {
            format!(
                "{}/{}",
                s["metric"]["alertname"].as_str().unwrap(),
                s["metric"]["severity"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// The repository's rules with every `for:` held 60 times shorter (minutes become
/// seconds), to match the test's 1 s evaluation interval.
fn scaled_rules(dir: &Path) -> PathBuf {
    let rules = std::fs::read_to_string(stack_dir().join("prometheus/rules/homelab.rules.yml")).unwrap();
    let re = regex::Regex::new(r"(?m)^(\s+for: )(\d+)([mh])$").unwrap();
    let scaled = re.replace_all(&rules, |c: &regex::Captures| {
        format!("{}{}{}", &c[1], &c[2], if &c[3] == "m" { "s" } else { "m" })
    });
    assert!(
        scaled.contains("for: 2s"),
        "the temperature alert's hold time was scaled"
    );
    let out = dir.join("rules");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("homelab.rules.yml"), scaled.as_ref()).unwrap();
    out
}

fn set(map: &mut Yaml, path: &[&str], value: Yaml) {
    let mut v = map;
    for k in &path[..path.len() - 1] {
        v = v
            .get_mut(*k)
            .unwrap_or_else(|| panic!("no {k} in the configuration"));
    }
    v[path[path.len() - 1]] = value;
}

#[test]
fn dashboards_return_data_and_a_hot_pi_reaches_the_webhook() {
    // Scrapes, rule evaluations and hold times are timed: no image build or compose
    // run of the other tests beside it.
    let _alone = homelab_testkit::alone();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let textfile = w.join("textfile");
    std::fs::create_dir_all(&textfile).unwrap();

    // --- real tool output ---------------------------------------------------------
    let pi = copy_tree(&pi5());
    pi_thermal(pi.path(), &textfile);

    let d = docker();
    let bypass_port = free_port();
    // The containers of this run, for ctr-stats: the web service and Ollama's.
    let run_label = format!("hlt.e2e={}", std::process::id());
    let web = web_container(&d, bypass_port, &run_label);
    let label = format!("label=hlt.test={}", web.name);
    let ollama_container = d.start(
        "stack-e2e-ollama",
        &[
            "--label",
            &run_label,
            "--label",
            "com.docker.compose.project=homelab",
            "--label",
            "com.docker.compose.service=ollama",
            "--cpuset-cpus",
            "0",
        ],
        &["sleep", "600"],
    );
    let ollama = FakeOllama::start(OllamaMode::Normal);
    run(Command::new(tool("ctr-stats"))
        .env("DOCKER_HOST", &d.host)
        .args(["--filter", &format!("label={run_label}")])
        .args(["--ollama", &ollama.url()])
        .args([
            "--ollama-probe",
            homelab_testkit::ollama::MODEL,
            "--ollama-probe-state",
        ])
        .arg(w.join("ollama-probe.json"))
        .arg("--textfile-dir")
        .arg(&textfile)
        .arg("--quiet"));
    assert_eq!(ollama.generates(), 1, "the probe ran");

    // cpu-pin: a process of this test, under a name no other process has.
    let comm = format!("hlte2e{}", std::process::id() % 100_000);
    let sleeper_bin = w.join(&comm);
    homelab_testkit::copy_executable("/bin/sleep".as_ref(), &sleeper_bin);
    let mut sleeper = Command::new(&sleeper_bin).arg("600").spawn().unwrap();
    let plan = w.join("cpu-pin.plan");
    std::fs::write(&plan, format!("e2e comm={comm} cpus=0\n")).unwrap();
    run(Command::new(tool("cpu-pin"))
        .arg("apply")
        .arg(&plan)
        .arg("--textfile-dir")
        .arg(&textfile)
        .arg("--quiet"));

    let front = proxy();
    run(Command::new(tool("route-check"))
        .args(["--docker", "--docker-host", &d.host, "--filter", &label])
        .args(["--connect", &format!("127.0.0.1:{}", front.tls_port)])
        .args(["--connect-http", &format!("127.0.0.1:{}", front.http_port)])
        .arg("--ca")
        .arg(&front.ca)
        .arg("--textfile-dir")
        .arg(&textfile)
        .arg("--quiet"));

    log_tail_ship(w, &textfile);
    backup_snap(w, &textfile);
    for f in [
        "pi-thermal",
        "ctr-stats",
        "cpu-pin",
        "route-check",
        "log-tail-ship",
        "backup-snap",
    ] {
        assert!(
            textfile.join(format!("{f}.prom")).is_file(),
            "{f}.prom was not written"
        );
    }

    // --- node_exporter with the compose file's collectors -------------------------
    let (_e, empty) = {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("empty.env");
        std::fs::write(&p, "").unwrap();
        (d, p)
    };
    let compose = compose_config(&empty);
    let ne_port = free_port();
    let mut ne_args: Vec<String> = compose["services"]["node-exporter"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(text)
        // The container's view of the host (/host) is this machine's own root here.
        .filter(|a| !a.starts_with("--path."))
        .map(|a| {
            if a.starts_with("--collector.textfile.directory=") {
                format!("--collector.textfile.directory={}", textfile.display())
            } else {
                a
            }
        })
        .collect();
    ne_args.push(format!("--web.listen-address=127.0.0.1:{ne_port}"));
    let mut node_exporter = Service::start(
        "node_exporter",
        w,
        Command::new("prometheus-node-exporter").args(&ne_args),
    );
    node_exporter.wait_ready(&format!("http://127.0.0.1:{ne_port}/metrics"));

    // --- Alertmanager: the repository's routes, the webhook pointed at this test ---
    let hook = webhook();
    let beat = webhook();
    let beat_url = format!("http://127.0.0.1:{}/ping/e2e", beat.port);
    // The configuration as the container's entrypoint writes it, with HEARTBEAT_URL.
    let placeholder = render_alertmanager_config(&compose, w, "");
    assert!(
        placeholder.contains("http://127.0.0.1:9/set-HEARTBEAT_URL-in-.env"),
        "an empty HEARTBEAT_URL keeps the placeholder"
    );
    let rendered = render_alertmanager_config(&compose, w, &beat_url);
    let mut am_conf: Yaml = serde_yaml_ng::from_str(&rendered).unwrap();
    let heartbeat = am_conf["receivers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "heartbeat")
        .expect("a heartbeat receiver");
    assert_eq!(
        heartbeat["webhook_configs"][0]["url"].as_str(),
        Some(beat_url.as_str())
    );
    // The heartbeat's route, with seconds for minutes: repeated every 2 s.
    let routes = am_conf["route"]["routes"].as_sequence_mut().unwrap();
    let hb_route = routes
        .iter_mut()
        .find(|r| r["receiver"] == "heartbeat")
        .expect("a route to the heartbeat");
    assert_eq!(hb_route["repeat_interval"].as_str(), Some("5m"));
    hb_route["group_interval"] = Yaml::from("1s");
    hb_route["repeat_interval"] = Yaml::from("2s");
    let smtp_pw = w.join("smtp_password");
    std::fs::write(&smtp_pw, "unused").unwrap();
    // Mail goes nowhere (a closed loopback port): only the webhook is observed.
    set(
        &mut am_conf,
        &["global", "smtp_smarthost"],
        Yaml::from(format!("127.0.0.1:{}", free_port())),
    );
    set(
        &mut am_conf,
        &["global", "smtp_auth_password_file"],
        Yaml::from(smtp_pw.display().to_string()),
    );
    set(&mut am_conf, &["route", "group_wait"], Yaml::from("1s"));
    set(&mut am_conf, &["route", "group_interval"], Yaml::from("1s"));
    let receivers = am_conf["receivers"].as_sequence_mut().unwrap();
    let ntfy = receivers
        .iter_mut()
        .find(|r| r["name"] == "ntfy")
        .expect("an ntfy receiver");
    ntfy["webhook_configs"][0]["url"] = Yaml::from(format!("http://127.0.0.1:{}/ntfy", hook.port));
    let am_file = w.join("alertmanager.yml");
    std::fs::write(&am_file, serde_yaml_ng::to_string(&am_conf).unwrap()).unwrap();
    let am_port = free_port();
    std::fs::create_dir_all(w.join("am-data")).unwrap();
    let mut alertmanager = Service::start(
        "alertmanager",
        w,
        Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", am_file.display()))
            .arg(format!("--storage.path={}", w.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address="),
    );
    alertmanager.wait_ready(&format!("http://127.0.0.1:{am_port}/-/ready"));

    // --- Prometheus: the repository's configuration, short intervals ----------------
    let mut prom_conf = yaml_file(&stack_dir().join("config/prometheus/prometheus.yml"));
    // Scrapes every 2 s (a loaded machine must not miss one), rules every second.
    set(&mut prom_conf, &["global", "scrape_interval"], Yaml::from("2s"));
    set(&mut prom_conf, &["global", "scrape_timeout"], Yaml::from("2s"));
    set(
        &mut prom_conf,
        &["global", "evaluation_interval"],
        Yaml::from("1s"),
    );
    let rules = scaled_rules(w);
    prom_conf["rule_files"] = serde_yaml_ng::from_str(&format!("[\"{}/*.yml\"]", rules.display())).unwrap();
    prom_conf["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] =
        serde_yaml_ng::from_str(&format!("[\"127.0.0.1:{am_port}\"]")).unwrap();
    // Only the node job runs here (the other services of the stack do not).
    let jobs = prom_conf["scrape_configs"].as_sequence_mut().unwrap();
    jobs.retain(|j| j["job_name"] == "node");
    assert_eq!(jobs.len(), 1, "the configuration has a node job");
    jobs[0]["static_configs"][0]["targets"] =
        serde_yaml_ng::from_str(&format!("[\"127.0.0.1:{ne_port}\"]")).unwrap();
    let prom_file = w.join("prometheus.yml");
    std::fs::write(&prom_file, serde_yaml_ng::to_string(&prom_conf).unwrap()).unwrap();
    run(Command::new("promtool")
        .arg("check")
        .arg("config")
        .arg(&prom_file));
    let prom_port = free_port();
    let mut prometheus = Service::start(
        "prometheus",
        w,
        Command::new("prometheus")
            .arg(format!("--config.file={}", prom_file.display()))
            // Alerts it stops sending expire 4 resend delays later (4 s, not 4 min).
            .arg("--rules.alert.resend-delay=1s")
            .arg(format!("--storage.tsdb.path={}", w.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}")),
    );
    let prom = format!("http://127.0.0.1:{prom_port}");
    prometheus.wait_ready(&format!("{prom}/-/ready"));
    wait_until(
        Duration::from_secs(30),
        "Prometheus to scrape node_exporter",
        || query(&prom, "up{job=\"node\"} == 1").len() == 1,
    );
    assert_eq!(query(&prom, "node_textfile_scrape_error")[0]["value"][1], "0");

    // --- every Prometheus query of every dashboard returns data ---------------------
    // $__rate_interval is at least four scrape intervals (2 s here).
    let prom_queries: Vec<(String, String)> = queries()
        .into_iter()
        .filter(|q| q.datasource == "prometheus")
        .map(|q| {
            (
                format!("{} / {}", q.dashboard, q.panel),
                expand(&q.expr, "10s", "1s", ""),
            )
        })
        .collect();
    let start = Instant::now();
    let mut empty: Vec<&(String, String)> = prom_queries.iter().collect();
    while !empty.is_empty() && start.elapsed() < Duration::from_secs(60) {
        empty.retain(|(_, q)| query(&prom, q).is_empty());
        if !empty.is_empty() {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    assert!(
        empty.is_empty(),
        "dashboard queries without data after {:?}:\n{}",
        start.elapsed(),
        empty
            .iter()
            .map(|(p, q)| format!("{p}: {q}\n"))
            .collect::<String>()
    );
    // The variable's values come from the same scrape.
    let hosts = query(&prom, "count by (instance) (node_textfile_scrape_error)");
    assert_eq!(hosts.len(), 1);

    // --- a cool Pi: no alert about the SoC; nothing fires from real data -----------
    let relevant = |set: BTreeSet<String>| -> BTreeSet<String> {
        // Filesystem alerts watch this machine's own disks (the fixture's mount table
        // points at its directories): they may rightly fire on a full build machine.
        // The Watchdog heartbeat always fires (checked below).
        set.into_iter()
            .filter(|a| !a.starts_with("Filesystem") && !a.starts_with("Watchdog/"))
            .collect()
    };
    // Ten evaluations with the alerts' (scaled) hold times passed.
    let evaluated = now() + 10;
    wait_until(Duration::from_secs(30), "ten more evaluations", || {
        now() > evaluated
    });
    assert_eq!(
        relevant(firing(&prom)),
        BTreeSet::new(),
        "alerts fired on a healthy stack"
    );
    let delivered: Vec<Json> = hook
        .alerts()
        .into_iter()
        .filter(|a| {
            !a["labels"]["alertname"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Filesystem")
        })
        .collect();
    assert!(
        delivered.is_empty(),
        "deliveries for a healthy stack: {delivered:?}"
    );

    // --- a hot Pi: PiSocTemperatureHigh fires and reaches the webhook ---------------
    set_soc_temperature(pi.path(), 85_000);
    pi_thermal(pi.path(), &textfile);
    wait_until(
        Duration::from_secs(60),
        "PiSocTemperatureHigh at the webhook",
        || {
            hook.alerts()
                .iter()
                .any(|a| a["labels"]["alertname"] == "PiSocTemperatureHigh" && a["status"] == "firing")
        },
    );
    let delivered: Vec<Json> = hook
        .alerts()
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == "PiSocTemperatureHigh")
        .collect();
    let critical = delivered
        .iter()
        .find(|a| a["labels"]["severity"] == "critical")
        .unwrap_or_else(|| panic!("the critical alert was not delivered: {delivered:?}"));
    assert_eq!(critical["status"], "firing");
    assert_eq!(critical["labels"]["instance"], format!("127.0.0.1:{ne_port}"));
    let summary = critical["annotations"]["summary"].as_str().unwrap();
    assert!(summary.starts_with("SoC at 85.0 °C"), "{summary}");
    assert!(
        critical["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("docker compose stop ollama")
    );
    assert!(
        delivered.iter().all(|a| a["labels"]["severity"] != "warning"),
        "the warning is inhibited by the critical alert: {delivered:?}"
    );
    let now_firing = relevant(firing(&prom));
    assert_eq!(
        now_firing,
        ["PiSocTemperatureHigh/critical", "PiSocTemperatureHigh/warning"]
            .into_iter()
            .map(String::from)
            .collect::<BTreeSet<_>>()
    );
    // Alertmanager knows both, and shows the warning as suppressed.
    let mut resp = ureq::get(&format!("http://127.0.0.1:{am_port}/api/v2/alerts"))
        .call()
        .unwrap();
    let am_alerts: Json = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    let states: BTreeMap<String, String> = am_alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["alertname"] == "PiSocTemperatureHigh")
        .map(|a| {
            (
                a["labels"]["severity"].as_str().unwrap().to_string(),
                a["status"]["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        states.get("critical").map(String::as_str),
        Some("active"),
        "{states:?}"
    );
    assert_eq!(
        states.get("warning").map(String::as_str),
        Some("suppressed"),
        "{states:?}"
    );

    // --- the dead man's switch ------------------------------------------------------
    assert!(firing(&prom).contains("Watchdog/none"), "{:?}", firing(&prom));
    wait_until(
        Duration::from_secs(30),
        "three Watchdog heartbeats at the heartbeat URL",
        || beat.bodies.lock().unwrap().len() >= 3,
    );
    for a in beat.alerts() {
        assert_eq!(a["labels"]["alertname"], "Watchdog", "only the heartbeat: {a}");
        assert_eq!(a["status"], "firing");
    }
    assert!(
        !hook
            .alerts()
            .iter()
            .any(|a| a["labels"]["alertname"] == "Watchdog"),
        "the heartbeat never goes to ntfy"
    );
    // Prometheus stops: Alertmanager lets the alert expire (4 s) and the heartbeats
    // stop; a quiet spell of three repeat intervals (6 s) shows it, within 30 s.
    drop(prometheus);
    let stopped = Instant::now();
    let mut last = (beat.bodies.lock().unwrap().len(), Instant::now());
    wait_until(Duration::from_secs(30), "the heartbeats to stop", || {
        let n = beat.bodies.lock().unwrap().len();
        if n != last.0 {
            last = (n, Instant::now());
        }
        last.1.elapsed() >= Duration::from_secs(6)
    });
    let quiet_since = last.1.duration_since(stopped);
    assert!(
        quiet_since < Duration::from_secs(20),
        "heartbeats went on for {quiet_since:?} after Prometheus stopped"
    );

    let _ = sleeper.kill();
    let _ = sleeper.wait();
    drop(web);
    drop(ollama_container);
}

/// Alertmanager's configuration as the compose file's entrypoint writes it at start:
/// its own script, run by busybox's sh and awk (the image's), on the repository's file,
/// with HEARTBEAT_URL set to `url`; returns the written file.
fn render_alertmanager_config(compose: &Yaml, w: &Path, url: &str) -> String {
    let entrypoint: Vec<String> = compose["services"]["alertmanager"]["entrypoint"]
        .as_sequence()
        .expect("alertmanager has an entrypoint")
        .iter()
        .filter_map(text)
        .collect();
    assert_eq!(entrypoint[..2], ["/bin/sh", "-c"]);
    let out = w.join("alertmanager.rendered.yml");
    let _ = std::fs::remove_file(&out);
    // Compose's $$ is a dollar; the container's paths are this test's.
    let script = entrypoint[2]
        .replace("$$", "$")
        .replace(
            "/etc/alertmanager/alertmanager.yml",
            &stack_dir()
                .join("config/alertmanager/alertmanager.yml")
                .display()
                .to_string(),
        )
        .replace("/tmp/alertmanager.yml", &out.display().to_string())
        .replace("exec /bin/alertmanager", "exec true");
    let bin = w.join("busybox-bin");
    if !bin.exists() {
        std::fs::create_dir_all(&bin).unwrap();
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox (Debian package busybox-static; scripts/test installs it)");
        for applet in ["sh", "awk", "true"] {
            std::os::unix::fs::symlink(busybox, bin.join(applet)).unwrap();
        }
    }
    let status = Command::new(bin.join("sh"))
        .arg("-c")
        .arg(&script)
        .args(&entrypoint[3..])
        .env_clear()
        .env("PATH", &bin)
        .env("HEARTBEAT_URL", url)
        .status()
        .unwrap();
    assert!(status.success(), "the entrypoint script failed: {script}");
    std::fs::read_to_string(&out).unwrap()
}
