//! `--docker` on the real Docker engine that scripts/test runs: routers from the
//! containers' traefik.* labels (probed through a real nginx), and back doors from
//! their published ports and network mode. The engine is shared, so every container
//! carries a group label and every run filters on it.
//!
//! This engine has no bridge: containers run with `--network none`, where Docker
//! records the port bindings (HostConfig.PortBindings, what route-check reads with
//! the list's Ports) without binding them, or with `--network host`.

use crate::common::*;
use homelab_testkit::{Container, docker};

fn group(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), free_port())
}

fn start(d: &homelab_testkit::Docker, group: &str, options: &[&str]) -> Container {
    let label = format!("rc.group={group}");
    let mut opts = vec!["--label", label.as_str()];
    opts.extend_from_slice(options);
    d.start("route-check", &opts, &["sleep", "300"])
}

fn docker_run(group: &str, extra: &[&str]) -> Run {
    let d = docker();
    let filter = format!("label=rc.group={group}");
    let mut args = vec!["--docker", "--docker-host", &d.host, "--filter", &filter];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn routers_come_from_labels_with_traefiks_defaults() {
    let pki = Pki::new();
    let n = Nginx::start(&pki, standard_sites(&pki));
    let d = docker();
    let g = group("labels");
    let _grafana = start(
        &d,
        &g,
        &[
            "--label",
            "traefik.enable=true",
            "--label",
            "traefik.http.routers.grafana.rule=Host(`valid.test`)",
            "--label",
            "traefik.http.routers.grafana.entrypoints=websecure",
            "--label",
            "traefik.http.routers.grafana.tls.certresolver=le",
            "--label",
            "traefik.http.services.grafana.loadbalancer.server.port=3000",
        ],
    );
    let _ollama = start(
        &d,
        &g,
        &[
            "--label",
            "traefik.enable=true",
            "--label",
            "com.docker.compose.service=ollama",
            "--label",
            "com.docker.compose.project=homelab",
        ],
    );
    let _hidden = start(
        &d,
        &g,
        &["--label", "traefik.http.routers.hidden.rule=Host(`hidden.test`)"],
    );
    let _broken = start(
        &d,
        &g,
        &[
            "--label",
            "traefik.enable=true",
            "--label",
            "traefik.http.routers.n8n.rule=Host(`n8n.test`) ||",
        ],
    );
    let nargs = n.args();
    let extra: Vec<&str> = nargs.iter().map(String::as_str).collect();
    let r = docker_run(&g, &extra);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let routers: Vec<&str> = r.routes.iter().map(|x| x.router.as_str()).collect();
    assert_eq!(
        routers.len(),
        3,
        "exposedByDefault=false hides the unlabelled one: {routers:?}"
    );

    let v = r.route("valid.test");
    assert_eq!(v.router, "grafana@docker");
    assert_eq!(v.source, "docker");
    assert_eq!(v.service.as_deref(), Some("grafana@docker"));
    assert_eq!(
        (v.router_tls, v.entry_points.as_slice()),
        (Some(true), ["websecure".to_string()].as_slice())
    );
    assert!(v.up, "{v:#?}");

    let o = r.route("ollama-homelab");
    assert_eq!(o.router, "ollama-homelab@docker");
    assert!(o.errors[0].contains("defaultRule"), "{:?}", o.errors);
    assert_eq!(
        o.default_cert,
        Some(true),
        "the proxy has no certificate for the default rule's host"
    );
    assert_eq!(o.severity, "critical");

    let b = r.routes.iter().find(|x| x.router == "n8n@docker").unwrap();
    assert!(b.server_name.is_none() && b.severity == "critical");
    assert!(b.errors[0].starts_with("rule does not parse"), "{:?}", b.errors);

    let s = r.summary();
    assert_eq!(s.containers, Some(4), "only this test's containers are seen");
    assert!(r.bypasses.is_empty());

    // Traefik's exposedByDefault=true would route the unlabelled one too.
    let mut extra2 = extra.clone();
    extra2.push("--exposed-by-default");
    let r = docker_run(&g, &extra2);
    assert!(
        r.routes.iter().any(|x| x.router == "hidden@docker"),
        "{:?}",
        r.routes
    );
}

#[test]
fn published_ports_and_host_networking_are_back_doors() {
    let d = docker();
    let g = group("bypass");
    let (p_any, p_local, p_v6, p_udp) = (free_port(), free_port(), free_port(), free_port());
    let publish = [
        format!("0.0.0.0:{p_any}:11434"),
        format!("127.0.0.1:{p_local}:9090"),
        format!("[::]:{p_v6}:5678"),
        format!("{p_udp}:53/udp"),
        "0.0.0.0:443:443".to_string(),
    ];
    let mut opts = Vec::new();
    for p in &publish {
        opts.extend(["-p", p.as_str()]);
    }
    let ollama = start(&d, &g, &opts);
    let local = start(&d, &g, &["-p", &format!("127.0.0.1:{}:3000", free_port())]);
    let label = format!("rc.group={g}");
    let host = d.start_on_network("route-check", "host", &["--label", &label], &["sleep", "300"]);

    let r = docker_run(&g, &[]);
    assert_eq!(
        r.code(),
        Some(0),
        "no route at all, but the source was read: {}",
        r.stderr()
    );
    let _ = local;
    let seen: Vec<(&str, &str, Option<u16>, Option<&str>)> = r
        .bypasses
        .iter()
        .map(|b| {
            (
                b.container.as_str(),
                b.address.as_str(),
                b.port,
                b.protocol.as_deref(),
            )
        })
        .collect();
    let mut want = vec![
        (ollama.name.as_str(), "0.0.0.0", Some(p_any), Some("tcp")),
        (ollama.name.as_str(), "::", Some(p_v6), Some("tcp")),
        (ollama.name.as_str(), "0.0.0.0", Some(p_udp), Some("udp")),
        (host.name.as_str(), "host", None, None),
    ];
    want.sort();
    let mut seen_sorted = seen.clone();
    seen_sorted.sort();
    assert_eq!(
        seen_sorted, want,
        "127.0.0.1 and the proxy's 443 are not back doors"
    );
    let any = r.bypasses.iter().find(|b| b.port == Some(p_any)).unwrap();
    assert_eq!(
        (any.container_port, any.reason.as_str()),
        (Some(11434), "published")
    );
    assert_eq!(any.container_id, ollama.short_id());
    assert_eq!(any.severity, "critical");
    let h = r.bypasses.iter().find(|b| b.reason == "host_network").unwrap();
    assert_eq!(h.container, host.name);
    assert!(r.alerts.iter().filter(|a| a.check == "bypass").count() == 4);
    assert_eq!(r.summary().bypasses, 4);

    // --check: a back door is critical; an allowed one is reported and not alerted.
    let filter = format!("label=rc.group={g}");
    let allow_one = format!("{}:{p_any}", ollama.name);
    let out = route_check()
        .args([
            "--docker",
            "--docker-host",
            &d.host,
            "--filter",
            &filter,
            "--check",
            "--format",
            "prom",
        ])
        .args(["--allow-publish", &allow_one, "--allow-publish", &host.name])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let page = String::from_utf8(out.stdout).unwrap();
    promtool_check(&page);
    let b = |addr: &str, port: &str| {
        series(
            &page,
            &format!(
                "route_bypass{{container=\"{}\",address=\"{addr}\",port=\"{port}\"}}",
                ollama.name
            ),
        )
    };
    assert_eq!(b("::", &p_v6.to_string()), Some(1.0));
    assert_eq!(b("0.0.0.0", &p_any.to_string()), None, "allowed");
    assert!(!page.contains(&format!("container=\"{}\"", host.name)), "allowed");
    assert_eq!(series(&page, "route_source_up{source=\"docker\"}"), Some(1.0));

    let r = docker_run(
        &g,
        &[
            "--allow-publish",
            &ollama.name,
            "--allow-publish",
            &host.name,
            "--check",
            "--route",
            "x.invalid",
            "--no-redirect-check",
        ],
    );
    assert!(r.bypasses.iter().all(|b| b.allowed && b.severity == "ok"));
    assert!(r.alerts.iter().all(|a| a.check != "bypass"));
}

#[test]
fn a_missing_docker_socket_is_a_clear_error() {
    let r = run(&["--docker", "--docker-host", "unix:///nonexistent/docker.sock"]);
    assert_eq!(r.code(), Some(69));
    assert!(
        r.stderr()
            .contains("no socket at /nonexistent/docker.sock: is dockerd running?"),
        "{}",
        r.stderr()
    );
    assert!(!r.summary().sources[0].ok);
    let r = run(&["--docker", "--filter", "nonsense"]);
    assert_eq!(r.code(), Some(64));
}
