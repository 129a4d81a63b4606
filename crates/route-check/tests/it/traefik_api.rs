//! Routes from Traefik's API. Traefik cannot be installed here, so a small server
//! stands in for it, serving fixtures with the shapes of Traefik v3's API (pkg/api:
//! routerRepresentation, serviceRepresentation; pagination with X-Next-Page), and
//! the routes are probed through a real nginx. Then the API misbehaves: garbage, a
//! hang, a 401.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn routers_from_every_page_are_probed_and_internal_ones_skipped() {
    let pki = Pki::new();
    let n = Nginx::start(&pki, standard_sites(&pki));
    let api = FakeApi::start(ApiMode::Pages(api_fixture_pages()));
    let mut args = vec!["--traefik-api".to_string(), format!("{}/api/", api.url)];
    args.extend(n.args());
    let r = parse(route_check().args(&args).output().unwrap());
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let got: Vec<(&str, Option<&str>)> = r
        .routes
        .iter()
        .map(|x| (x.router.as_str(), x.server_name.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("grafana-homelab@docker", Some("valid.test")),
            ("n8n-homelab@docker", Some("soon.test")),
            ("n8n-homelab@docker", Some("shortchain.test")),
            ("ollama-homelab@docker", None),
            ("wildcard@file", None),
            ("prometheus-homelab@docker", Some("bad.test")),
        ],
        "page 2 is read, api@internal is not probed"
    );
    let g = r.route("valid.test");
    assert!(g.up, "{g:#?}");
    assert_eq!(g.source, "traefik-api");
    assert_eq!(g.rule.as_deref(), Some("Host(`valid.test`)"));
    assert_eq!(g.entry_points, ["websecure"]);
    assert_eq!(
        (g.router_tls, g.router_status.as_deref()),
        (Some(true), Some("enabled"))
    );
    assert_eq!(g.service.as_deref(), Some("grafana-homelab@docker"));
    assert_eq!(g.service_status.as_deref(), Some("enabled"));

    let s = r.route("soon.test");
    assert_eq!(s.path, "/webhook", "the path comes from the rule");
    assert_eq!(s.redirect_location.as_deref(), Some("https://soon.test/webhook"));

    let o = r
        .routes
        .iter()
        .find(|x| x.router == "ollama-homelab@docker")
        .unwrap();
    assert_eq!(o.severity, "critical");
    assert_eq!(o.router_status.as_deref(), Some("disabled"));
    assert!(
        o.errors.iter().any(|e| e.contains("expected ')'")),
        "{:?}",
        o.errors
    );
    let w = r.routes.iter().find(|x| x.router == "wildcard@file").unwrap();
    assert_eq!(w.severity, "warning");
    assert!(w.errors[0].contains("names no fixed host"), "{:?}", w.errors);

    let p = r.route("bad.test");
    assert_eq!(p.servers_down, ["http://172.18.0.7:9090"]);
    assert!(
        r.alerts
            .iter()
            .any(|a| a.check == "service" && a.message.contains("172.18.0.7"))
    );

    let sum = r.summary();
    assert_eq!(sum.sources.len(), 1);
    assert!(sum.sources[0].ok && sum.sources[0].routes == 6);
    assert_eq!(sum.sources[0].target.as_deref(), Some(api.url.as_str()));

    // The prom page labels a router without a host with host="".
    let out = route_check()
        .args(&args)
        .args(["--format", "prom"])
        .output()
        .unwrap();
    let page = String::from_utf8(out.stdout).unwrap();
    promtool_check(&page);
    assert_eq!(
        series(&page, "route_up{router=\"ollama-homelab@docker\",host=\"\"}"),
        Some(0.0)
    );
    assert_eq!(
        series(&page, "route_source_up{source=\"traefik-api\"}"),
        Some(1.0)
    );
}

#[test]
fn garbage_from_the_api_is_a_clear_record_and_exit_69() {
    for body in [
        "<html>404 page not found</html>",
        "{\"routers\": []}",
        "[{\"rule\": 42}]",
        "\u{0}\u{1}",
    ] {
        let api = FakeApi::start(ApiMode::Body(body.into()));
        let r = run(&["--traefik-api", &api.url]);
        assert_eq!(r.code(), Some(69), "{body:?}: {}", r.stderr());
        assert!(
            r.stderr()
                .starts_with("route-check: no source of routes could be read: GET "),
            "{}",
            r.stderr()
        );
        assert!(r.stderr().contains("not Traefik's API"), "{}", r.stderr());
        let s = r.summary();
        assert!(!s.sources[0].ok);
        assert!(
            s.sources[0]
                .error
                .as_deref()
                .unwrap()
                .contains("not Traefik's API")
        );
        assert_eq!(s.severity, "critical");
        assert!(
            r.alerts
                .iter()
                .any(|a| a.check == "source" && a.severity == "critical")
        );
        // With --check it is a critical finding instead.
        assert_eq!(
            run(&["--traefik-api", &api.url, "--check", "--quiet"]).code(),
            Some(2)
        );
    }
}

#[test]
fn a_hanging_api_costs_the_timeout() {
    let _machine = homelab_testkit::shared();
    let api = FakeApi::start(ApiMode::Hang);
    let startup = startup_time();
    let t = Instant::now();
    let r = run(&[
        "--traefik-api",
        &api.url,
        "--timeout",
        "1s",
        "--route",
        "x.invalid",
        "--no-redirect-check",
    ]);
    let took = t.elapsed();
    // Starting the binary, measured before and after: on a loaded machine (qemu-user
    // beside other builds) it varies from one moment to the next.
    let startup = startup.max(startup_time());
    let bound = startup * 2 + Duration::from_secs(3);
    assert!(took < bound, "took {took:?} (bound {bound:?})");
    assert_eq!(r.code(), Some(0), "another source worked: {}", r.stderr());
    let s = r.summary();
    assert!(!s.sources[0].ok && s.sources[1].ok);
    assert!(
        s.sources[0]
            .error
            .as_deref()
            .unwrap()
            .contains("no answer before the timeout"),
        "{:?}",
        s.sources
    );
}

#[test]
fn an_api_behind_basic_auth() {
    let pages = BTreeMap::from([
        ("/api/http/routers".to_string(), vec!["[]".to_string()]),
        ("/api/http/services".to_string(), vec!["[]".to_string()]),
    ]);
    // admin:secret
    let api = FakeApi::start(ApiMode::Auth("Basic YWRtaW46c2VjcmV0".into(), pages));
    let r = run(&["--traefik-api", &api.url]);
    assert_eq!(r.code(), Some(69));
    assert!(
        r.stderr().contains("HTTP 401: the API wants credentials"),
        "{}",
        r.stderr()
    );
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth");
    std::fs::write(&auth, "admin:secret\n").unwrap();
    let r = run(&[
        "--traefik-api",
        &api.url,
        "--traefik-api-auth-file",
        auth.to_str().unwrap(),
    ]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert!(r.summary().sources[0].ok);
    assert!(!r.stdout().contains("secret"), "the password is never printed");
    std::fs::write(&auth, "no colon here\n").unwrap();
    let r = run(&[
        "--traefik-api",
        &api.url,
        "--traefik-api-auth-file",
        auth.to_str().unwrap(),
    ]);
    assert_eq!(r.code(), Some(65));
}

#[test]
fn an_api_that_is_not_there() {
    let r = run(&["--traefik-api", &format!("http://127.0.0.1:{}", free_port())]);
    assert_eq!(r.code(), Some(69));
    assert!(r.stderr().contains("GET http://127.0.0.1:"), "{}", r.stderr());
}
