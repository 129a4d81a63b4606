//! The Traefik configuration route-check ships for the stack (scripts/stack/traefik):
//! parsed as YAML and checked for what the front door must be, and the labels its
//! README gives each web service read by route-check's own Docker-label model.

use std::path::{Path, PathBuf};

use route_check::docker::{ContainerInfo, routes};
use route_check::rule;
use serde_yaml_ng::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/stack/traefik")
}

fn yaml(name: &str) -> Value {
    let path = dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| &v[k])
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string: {:?}", at(v, path)))
}

#[test]
fn static_configuration_is_one_tls_front_door() {
    let t = yaml("traefik.yml");
    assert_eq!(s(&t, "entryPoints.web.address"), ":80");
    assert_eq!(
        s(&t, "entryPoints.web.http.redirections.entryPoint.to"),
        "websecure"
    );
    assert_eq!(
        s(&t, "entryPoints.web.http.redirections.entryPoint.scheme"),
        "https"
    );
    assert_eq!(s(&t, "entryPoints.websecure.address"), ":443");
    let eps = at(&t, "entryPoints").as_mapping().unwrap();
    let tls_eps: Vec<&Value> = eps
        .iter()
        .filter(|(_, ep)| !at(ep, "http.tls").is_null())
        .map(|(k, _)| k)
        .collect();
    assert_eq!(tls_eps.len(), 1, "one TLS entry point: {tls_eps:?}");
    // Every other entry point redirects (web) or is the host-only API port.
    for (name, ep) in eps {
        let name = name.as_str().unwrap();
        let redirects = !at(ep, "http.redirections").is_null();
        assert!(
            name == "websecure" || redirects || name == "traefik",
            "entry point {name} neither redirects nor is TLS"
        );
    }

    assert_eq!(at(&t, "providers.docker.exposedByDefault").as_bool(), Some(false));
    let resolvers = at(&t, "certificatesResolvers").as_mapping().unwrap();
    let http01 = resolvers
        .values()
        .filter(|r| at(r, "acme.httpChallenge.entryPoint").as_str() == Some("web"))
        .count();
    assert_eq!(http01, 1, "a Let's Encrypt HTTP-01 resolver on port 80");
    assert!(
        resolvers
            .values()
            .any(|r| at(r, "acme.dnsChallenge.provider").as_str().is_some()),
        "a DNS-01 example for names not reachable from the internet"
    );
    for r in resolvers.values() {
        if !at(r, "acme").is_null() {
            assert!(s(r, "acme.storage").ends_with(".json"));
        }
    }
    // Tailscale's certificates for the tailnet name (Traefik v3's tailscale resolver).
    assert!(at(&t, "certificatesResolvers.tailscale.tailscale").is_mapping());
    assert_eq!(
        s(&t, "entryPoints.websecure.http.tls.certResolver"),
        "le",
        "routers on websecure get certificates by default"
    );

    // The API in insecure mode is only acceptable on a port published to the host alone.
    if at(&t, "api.insecure").as_bool() == Some(true) {
        let port = s(&t, "entryPoints.traefik.address")
            .trim_start_matches(':')
            .to_string();
        let readme = std::fs::read_to_string(dir().join("README.md")).unwrap();
        let mappings: Vec<&str> = readme
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- \""))
            .filter(|l| l.contains(&format!(":{port}\"")) || l.contains(&format!(":{port}:")))
            .collect();
        assert!(!mappings.is_empty(), "README shows how port {port} is published");
        for m in mappings {
            assert!(
                m.starts_with("127.0.0.1:"),
                "the API port must be published on 127.0.0.1 only: {m}"
            );
        }
    }
}

#[test]
fn central_access_control_and_a_protected_dashboard() {
    let m = yaml("dynamic/middlewares.yml");
    let mws = at(&m, "http.middlewares");
    assert!(
        s(mws, "auth.basicAuth.usersFile").starts_with('/'),
        "users come from a mounted file"
    );
    assert!(
        at(mws, "auth.basicAuth.users").is_null(),
        "no password hashes in the repository"
    );
    // The allow-list is a label of the compose file, from .env's ranges (checked on
    // the resolved file by tests/it/stack_front_door.rs): not defined here too.
    assert!(at(mws, "lan-only").is_null());
    let chain: Vec<&str> = at(mws, "private.chain.middlewares")
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(chain, ["lan-only@docker", "auth"]);

    // The dashboard router: labels of the Traefik service in docker-compose.yml, at
    // traefik.DOMAIN of the user's .env (a file in dynamic/ cannot read .env, and one
    // there hard-coded traefik.example.com).
    let compose_path = dir().join("../docker-compose.yml");
    let compose: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&compose_path).unwrap()).unwrap();
    let labels: std::collections::BTreeMap<String, String> = at(&compose, "services.traefik.labels")
        .as_sequence()
        .expect("the traefik service has labels")
        .iter()
        .filter_map(|l| l.as_str()?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let label = |k: &str| {
        labels
            .get(&format!("traefik.http.routers.dashboard.{k}"))
            .unwrap_or_else(|| panic!("no dashboard {k} label: {labels:?}"))
            .as_str()
    };
    assert_eq!(labels.get("traefik.enable").map(String::as_str), Some("true"));
    assert_eq!(label("service"), "api@internal");
    assert_eq!(label("entrypoints"), "websecure");
    assert!(
        label("middlewares")
            .split(',')
            .any(|m| m.starts_with("private") || m.starts_with("auth")),
        "{labels:?}"
    );
    let rule_text = label("rule");
    assert!(
        rule_text.contains("traefik.${DOMAIN:-example.com}"),
        "{rule_text}"
    );
    let resolved = rule_text.replace("${DOMAIN:-example.com}", "pi.example.net");
    let parsed = rule::parse(&resolved).expect("the dashboard rule parses");
    let a = rule::analyse(&parsed);
    assert_eq!(a.targets[0].host, "traefik.pi.example.net");
    assert_eq!(a.targets[0].path, "/api");
    // No host of the example domain is left in the file provider's directory.
    for f in std::fs::read_dir(dir().join("dynamic")).unwrap() {
        let f = f.unwrap().path();
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains("example.com"), "{} names example.com", f.display());
    }
}

/// The label blocks of the README, by the router name of their first rule label.
fn readme_services() -> Vec<(String, ContainerInfo)> {
    let readme = std::fs::read_to_string(dir().join("README.md")).unwrap();
    let mut out = Vec::new();
    let mut current: Option<ContainerInfo> = None;
    for line in readme.lines() {
        let l = line.trim();
        if let Some(label) = l.strip_prefix("- traefik.") {
            let (k, v) = label.split_once('=').unwrap();
            let c = current.get_or_insert_with(ContainerInfo::default);
            if c.name.is_empty()
                && let Some(router) = k.strip_prefix("http.routers.").and_then(|r| r.split('.').next())
            {
                c.name = router.to_string();
            }
            c.labels.insert(format!("traefik.{k}"), v.to_string());
        } else if l == "```"
            && let Some(c) = current.take()
        {
            out.push((c.name.clone(), c));
        }
    }
    out
}

#[test]
fn every_web_service_has_labels_route_check_can_probe() {
    let services = readme_services();
    let names: Vec<&str> = services.iter().map(|(n, _)| n.as_str()).collect();
    for want in ["grafana", "n8n", "prometheus", "ollama"] {
        assert!(
            names.contains(&want),
            "no labels for {want} in the README: {names:?}"
        );
    }
    for (name, c) in &services {
        let rs = routes(c, false);
        assert!(!rs.is_empty(), "{name}: no router");
        for r in &rs {
            assert!(r.errors.is_empty() && !r.broken, "{name}: {:?}", r.errors);
            // Your domain, or the Pi's tailnet name (the Tailscale variant).
            assert!(
                r.host
                    .as_deref()
                    .is_some_and(|h| h.ends_with(".example.com") || h.ends_with(".ts.net")),
                "{name}: {:?}",
                r.host
            );
            assert_eq!(r.entry_points, ["websecure"], "{name}");
            assert_eq!(r.router_tls, Some(true), "{name}: TLS on every router");
        }
    }
    let ollama = &services.iter().find(|(n, _)| n == "ollama").unwrap().1;
    let mws = ollama
        .labels
        .get("traefik.http.routers.ollama.middlewares")
        .expect("Ollama has middlewares");
    assert!(
        mws.split(',')
            .any(|m| m.trim() == "private@file" || m.trim() == "auth@file"),
        "the Ollama API is behind authentication: {mws}"
    );
}
