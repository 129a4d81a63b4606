//! The stack's Docker socket proxy (scripts/stack/config/socket-proxy/haproxy.cfg) for
//! real: Debian's haproxy runs that exact file (the compose file mounts it over the
//! tecnativa/docker-socket-proxy image), in front of the Docker engine scripts/test
//! started. The tools read through it with DOCKER_HOST=tcp://127.0.0.1:PORT
//! (ctr-stats with either source, route-check --docker, cpu-pin show, log-tail-ship's
//! container list, inspect and event stream), and so do the requests Traefik's docker
//! provider makes; every write (create, exec, update, kill, DELETE) and every other
//! read (logs, archive, export, images, volumes, secrets) is refused with HAProxy's 403.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use homelab_e2e::stack::stack_dir;
use homelab_e2e::tool;
use homelab_testkit::{docker, wait_until};
use serde_json::Value as Json;

/// HAProxy with the stack's configuration, stopped (SIGTERM, waited for) when dropped.
struct HaProxy {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl HaProxy {
    fn start(socket: &str) -> HaProxy {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("haproxy");
        let mut child = Command::new(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(stack_dir().join("config/socket-proxy/haproxy.cfg"))
            // What the compose file sets, with this machine's socket and a free port.
            .env("SOCKET_PATH", socket)
            .env("SOCKET_PROXY_LISTEN", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("haproxy is needed (Debian package haproxy; scripts/test installs it)");
        let mut exited = None;
        wait_until(Duration::from_secs(20), "haproxy to listen", || {
            if let Ok(Some(st)) = child.try_wait() {
                exited = Some(st);
                return true;
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if let Some(st) = exited {
            panic!(
                "haproxy exited ({st}):\n{}",
                std::fs::read_to_string(log.path()).unwrap_or_default()
            );
        }
        HaProxy { child, port, log }
    }

    fn host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on its own connection: the status and the raw rest (headers
/// and body, chunked or not).
fn request(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: homelab-e2e\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no HTTP answer: {text:?}"));
    (status, text)
}

/// Runs a tool against the proxy; panics with its output unless it exits 0; returns
/// its JSON lines.
fn tool_through(proxy: &HaProxy, name: &str, args: &[&str]) -> Vec<Json> {
    let out = Command::new(tool(name))
        .env("DOCKER_HOST", proxy.host())
        .args(args)
        .args(["--format", "jsonl"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} {args:?} through the proxy: {}{}\nhaproxy:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        proxy.log()
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}")))
        .collect()
}

#[test]
fn the_socket_proxy_lets_the_tools_read_and_refuses_every_write() {
    let _machine = homelab_testkit::shared();
    let d = docker();
    let socket = d
        .host
        .strip_prefix("unix://")
        .expect("scripts/test's Docker engine listens on a unix socket");
    let proxy = HaProxy::start(socket);
    let c = d.start(
        "socket-proxy",
        &[
            "--label",
            "traefik.enable=true",
            "--label",
            "traefik.http.routers.sp.rule=Host(`sp.test`)",
            "--label",
            "traefik.http.services.sp.loadbalancer.server.port=80",
        ],
        &["sh", "-c", "echo through-the-proxy; sleep 600"],
    );
    let filter = format!("label=hlt.test={}", c.name);

    // --- the tools ------------------------------------------------------------------
    for source in ["cgroup", "api"] {
        let recs = tool_through(&proxy, "ctr-stats", &["--filter", &filter, "--source", source]);
        let rec = recs
            .iter()
            .find(|r| r["kind"] == "container" && r["name"] == c.name.as_str())
            .unwrap_or_else(|| panic!("ctr-stats --source {source}: no record of {}: {recs:?}", c.name));
        assert_eq!(rec["state"], "running");
        assert_eq!(rec["errors"], serde_json::json!([]), "--source {source}: {rec}");
        assert!(rec["cpu_seconds_total"].is_number(), "--source {source}: {rec}");
    }

    let recs = tool_through(&proxy, "route-check", &["--docker", "--filter", &filter]);
    let route = recs
        .iter()
        .find(|r| r["kind"] == "route")
        .unwrap_or_else(|| panic!("route-check found no route in the labels: {recs:?}"));
    assert_eq!(route["rule"], "Host(`sp.test`)");
    assert_eq!(route["source"], "docker");

    let recs = tool_through(&proxy, "cpu-pin", &["show", "--container", &c.name]);
    assert!(
        recs.iter()
            .any(|r| r["kind"] == "pin" && r["container_id"] == c.id.as_str() && r["threads"] == 1),
        "cpu-pin show: {recs:?}"
    );

    let recs = tool_through(
        &proxy,
        "log-tail-ship",
        &[
            "--docker",
            "--docker-filter",
            &filter,
            "--from-beginning",
            "--once",
            "--stdout",
        ],
    );
    assert!(
        recs.iter()
            .any(|r| r["kind"] == "line" && r["line"] == "through-the-proxy"),
        "log-tail-ship --once: {recs:?}"
    );

    // Following: a container started while it runs.
    let marker = format!("proxy-follow-{}", c.name);
    let follow_filter = format!("label={marker}");
    let mut follower = Command::new(tool("log-tail-ship"))
        .env("DOCKER_HOST", proxy.host())
        .args(["--docker", "--docker-filter", &follow_filter, "--stdout"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    // Whether log-tail-ship meets it in its first list (then from the end of its log:
    // the container keeps writing) or in the event stream, both go through the proxy
    // (the event stream on its own is checked below).
    let late = d.start(
        "socket-proxy-late",
        &["--label", &marker],
        &["sh", "-c", "while true; do echo arrived-later; sleep 0.2; done"],
    );
    let got = rx
        .recv_timeout(Duration::from_secs(30))
        .map(|l| serde_json::from_str::<Json>(&l).unwrap());
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(follower.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = follower.wait();
    let got = got.unwrap_or_else(|_| {
        panic!(
            "log-tail-ship did not follow the new container\nhaproxy:\n{}",
            proxy.log()
        )
    });
    assert_eq!(got["line"], "arrived-later", "{got}");
    drop(late);

    // --- what Traefik's docker provider asks (moby's client) -------------------------
    let (status, _) = request(proxy.port, "HEAD", "/_ping", "");
    assert_eq!(status, 200, "HEAD /_ping");
    let (status, version) = request(proxy.port, "GET", "/version", "");
    assert_eq!(status, 200, "{version}");
    let api = regex::Regex::new(r#""ApiVersion":"([0-9.]+)""#)
        .unwrap()
        .captures(&version)
        .expect("/version names the API version")[1]
        .to_string();
    let v = format!("/v{api}");
    let (status, list) = request(
        proxy.port,
        "GET",
        &format!(
            "{v}/containers/json?all=1&filters=%7B%22label%22%3A%5B%22hlt.test%3D{}%22%5D%7D",
            c.name
        ),
        "",
    );
    assert_eq!(status, 200, "{list}");
    assert!(list.contains(&c.id), "{list}");
    let (status, inspect) = request(proxy.port, "GET", &format!("{v}/containers/{}/json", c.id), "");
    assert_eq!(status, 200, "{inspect}");
    assert!(inspect.contains("traefik.http.routers.sp.rule"), "{inspect}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (status, events) = request(
        proxy.port,
        "GET",
        &format!("{v}/events?since={}&until={now}", now - 600),
        "",
    );
    assert_eq!(status, 200, "{events}");
    assert!(
        events.contains(&c.id),
        "the event stream names the container: {events}"
    );
    let (status, nets) = request(proxy.port, "GET", &format!("{v}/networks"), "");
    assert_eq!(status, 200, "{nets}");

    // --- refused: every write, and the reads no client needs -------------------------
    let probe = d.unique_name("socket-proxy-created");
    let create = format!(
        r#"{{"Image":"{}","Cmd":["true"],"Labels":{{"hlt.test":"{probe}"}}}}"#,
        d.image
    );
    let id = &c.id;
    let refused: Vec<(&str, String, String)> = vec![
        ("POST", format!("{v}/containers/create"), create.clone()),
        ("POST", "/containers/create".into(), create),
        (
            "POST",
            format!("{v}/containers/{id}/exec"),
            r#"{"Cmd":["true"]}"#.into(),
        ),
        ("DELETE", format!("{v}/containers/{id}?force=1"), String::new()),
        ("DELETE", format!("/containers/{id}?force=1"), String::new()),
        (
            "POST",
            format!("{v}/containers/{id}/update"),
            r#"{"CpusetCpus":"0"}"#.into(),
        ),
        ("POST", format!("{v}/containers/{id}/kill"), String::new()),
        ("POST", format!("{v}/containers/{id}/stop"), String::new()),
        (
            "PUT",
            format!("{v}/containers/{id}/archive?path=/tmp"),
            String::new(),
        ),
        // Paths a read may use, with a method that writes.
        (
            "POST",
            format!("{v}/networks/create"),
            format!(r#"{{"Name":"{probe}"}}"#),
        ),
        ("DELETE", format!("{v}/networks/{probe}"), String::new()),
        ("POST", format!("{v}/containers/{id}/json"), String::new()),
        (
            "GET",
            format!("{v}/containers/{id}/archive?path=/etc"),
            String::new(),
        ),
        ("GET", format!("{v}/containers/{id}/export"), String::new()),
        ("GET", format!("{v}/containers/{id}/logs?stdout=1"), String::new()),
        ("GET", format!("{v}/containers/%2e%2e/json"), String::new()),
        ("GET", format!("{v}/containers/json/../../volumes"), String::new()),
        ("GET", format!("{v}/images/json"), String::new()),
        ("GET", format!("{v}/info"), String::new()),
        ("GET", format!("{v}/volumes"), String::new()),
        ("GET", format!("{v}/secrets"), String::new()),
        ("GET", format!("{v}/configs"), String::new()),
        ("GET", format!("{v}/swarm"), String::new()),
        ("GET", format!("{v}/plugins"), String::new()),
        ("GET", format!("{v}/system/df"), String::new()),
    ];
    for (method, path, body) in &refused {
        let (status, answer) = request(proxy.port, method, path, body);
        assert_eq!(status, 403, "{method} {path} was not refused: {answer}");
        // HAProxy's own refusal, not the engine's.
        assert!(
            answer.contains("Request forbidden by administrative rules"),
            "{method} {path}: {answer}"
        );
    }
    // Nothing happened behind the 403s: the container runs, nothing was created.
    assert_eq!(c.inspect("{{.State.Running}}"), "true");
    assert!(!d.output(&["network", "inspect", &probe]).status.success());
    assert_eq!(
        d.run(&["ps", "-aq", "--filter", &format!("label=hlt.test={probe}")]),
        ""
    );
    // The engine itself would have answered one of those reads: the proxy refused it.
    let (status, _) = {
        let direct = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--unix-socket",
                socket,
            ])
            .arg("http://docker/images/json")
            .output()
            .unwrap();
        (String::from_utf8_lossy(&direct.stdout).to_string(), ())
    };
    assert_eq!(status, "200", "the engine answers GET /images/json on its socket");
}
