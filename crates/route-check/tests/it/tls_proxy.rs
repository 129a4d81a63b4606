//! Against a real TLS reverse proxy: nginx on loopback with certificates made by
//! the tests (valid, expired, expiring in 5 days, wrong name, Traefik's default, an
//! intermediate that expires before the leaf), backends that answer 200, 502 and
//! not at all, and a plain-HTTP port that redirects for some names and not others.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::common::*;

fn probe(n: &Nginx, routes: &[&str], extra: &[&str]) -> Run {
    let mut args: Vec<String> = n.args();
    for r in routes {
        args.push("--route".into());
        args.push(r.to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args)
}

#[test]
fn every_certificate_case_is_told_apart() {
    let pki = Pki::new();
    let n = Nginx::start(&pki, standard_sites(&pki));
    let r = probe(
        &n,
        &[
            "valid.test/some/path",
            "expired.test",
            "soon.test",
            "wrong.test",
            "unknown.test",
            "shortchain.test",
        ],
        &[],
    );
    assert_eq!(
        r.code(),
        Some(0),
        "without --check the run succeeds: {}",
        r.stderr()
    );
    assert!(r.stderr().is_empty(), "{}", r.stderr());

    let v = r.route("valid.test");
    assert!(v.up, "{v:#?}");
    assert_eq!(v.severity, "ok");
    assert_eq!((v.status_code, v.status_expected), (Some(200), Some(true)));
    assert_eq!(v.path, "/some/path");
    assert_eq!(v.url.as_deref(), Some("https://valid.test/some/path"));
    assert_eq!(v.address.as_deref(), Some(n.connect().as_str()));
    assert_eq!(v.tls_version.as_deref(), Some("TLS 1.3"));
    assert!(
        v.tls_cipher.as_deref().unwrap().starts_with("TLS_"),
        "{:?}",
        v.tls_cipher
    );
    assert_eq!(v.cert_subject.as_deref(), Some("CN=valid.test"));
    assert!(
        v.cert_issuer
            .as_deref()
            .unwrap()
            .contains("route-check Test Intermediate")
    );
    assert_eq!(v.cert_sans, ["valid.test"]);
    assert_eq!(
        (v.cert_verified, v.name_matches, v.default_cert),
        (Some(true), Some(true), Some(false))
    );
    let days = v.cert_days_left.unwrap();
    assert!((79.0..=80.0).contains(&days), "{days}");
    assert_eq!(v.renewal_overdue, Some(false));
    assert_eq!((v.redirect_status_code, v.redirect_ok), (Some(301), Some(true)));
    assert_eq!(
        v.redirect_location.as_deref(),
        Some("https://valid.test/some/path")
    );
    assert!(v.resolve_seconds.is_none(), "--connect skips DNS");
    for d in [v.connect_seconds, v.tls_seconds, v.request_seconds] {
        assert!(d.is_some_and(|d| d > 0.0 && d < 5.0), "{d:?}");
    }
    assert!(r.alerts_for("valid.test").is_empty());

    let e = r.route("expired.test");
    assert!(!e.up);
    assert_eq!(e.severity, "critical");
    assert_eq!(e.cert_verified, Some(false));
    assert_eq!(e.cert_error.as_deref(), Some("certificate has expired"));
    assert!(e.cert_days_left.unwrap() < 0.0);
    let a = r.alerts_for("expired.test");
    assert_eq!(a.len(), 1, "{a:#?}");
    assert!(
        a[0].message.starts_with("certificate expired 1.0 days ago"),
        "{}",
        a[0].message
    );

    let s = r.route("soon.test");
    assert!(s.up, "a certificate about to expire still works");
    assert_eq!(s.severity, "critical");
    assert_eq!(s.renewal_overdue, Some(true));
    let a = r.alerts_for("soon.test");
    assert!(
        a[0].message.contains("expires in 5.0 days") && a[0].message.contains("renewal is failing"),
        "{a:#?}"
    );
    assert_eq!(
        (a[0].value, a[0].threshold),
        (Some(s.cert_days_left.unwrap()), Some(7.0))
    );

    let w = r.route("wrong.test");
    assert!(!w.up);
    assert_eq!((w.name_matches, w.cert_verified), (Some(false), Some(false)));
    assert_eq!(w.cert_sans, ["other.test"]);
    assert!(
        r.alerts_for("wrong.test")[0]
            .message
            .contains("not valid for this host name (it names other.test)")
    );

    let d = r.route("unknown.test");
    assert_eq!(d.default_cert, Some(true));
    assert_eq!(d.cert_subject.as_deref(), Some("CN=TRAEFIK DEFAULT CERT"));
    assert_eq!(d.status_code, Some(404));
    assert_eq!(d.severity, "critical");
    assert!(
        r.alerts_for("unknown.test")
            .iter()
            .any(|a| a.message.contains("default certificate"))
    );

    let c = r.route("shortchain.test");
    assert!(c.up);
    assert_eq!(c.severity, "warning");
    assert_eq!(
        c.cert_expiry_subject.as_deref(),
        Some("CN=route-check Short Intermediate, O=route-check tests")
    );
    assert!((9.0..=10.0).contains(&c.cert_days_left.unwrap()));
    assert!(
        r.alerts_for("shortchain.test")[0]
            .message
            .contains("Short Intermediate")
    );

    let sum = r.summary();
    assert_eq!(
        (sum.routes, sum.routes_up, sum.routes_warning, sum.routes_critical),
        (6, 3, 1, 4)
    );
    assert_eq!(sum.severity, "critical");
}

#[test]
fn backends_and_redirects() {
    let pki = Pki::new();
    let n = Nginx::start(&pki, standard_sites(&pki));
    let r = probe(&n, &["bad.test", "down.test", "plain.test"], &[]);
    let b = r.route("bad.test");
    assert_eq!(
        (b.status_code, b.status_expected, b.up),
        (Some(502), Some(false), false)
    );
    assert_eq!(b.severity, "critical");
    assert!(
        r.alerts_for("bad.test")[0]
            .message
            .contains("answers HTTP 502, expected 200-399")
    );
    // The proxy answers for a backend where nothing listens: 502 as well.
    assert_eq!(r.route("down.test").status_code, Some(502));
    let p = r.route("plain.test");
    assert!(p.up);
    assert_eq!((p.redirect_ok, p.redirect_status_code), (Some(false), Some(200)));
    assert_eq!(p.severity, "warning");
    assert!(
        r.alerts_for("plain.test")[0]
            .message
            .contains("instead of redirecting to HTTPS")
    );

    // --expect turns a status into a working one; per-route in a routes file.
    let r = probe(&n, &["bad.test"], &["--expect", "200,5xx", "--no-redirect-check"]);
    let b = r.route("bad.test");
    assert!(b.up && b.redirect_ok.is_none() && b.redirect_status_code.is_none());
    assert_eq!(b.expected_status, "200,500-599");
}

#[test]
fn trust_comes_from_the_system_or_ca_and_insecure_only_when_asked() {
    let pki = Pki::new();
    let n = Nginx::start(&pki, standard_sites(&pki));
    let args = [
        "--connect",
        &n.connect(),
        "--no-redirect-check",
        "--route",
        "valid.test",
    ];
    let r = run(&args);
    let v = r.route("valid.test");
    assert_eq!(v.cert_verified, Some(false), "the test root is not a system root");
    assert!(!v.up);
    assert!(
        v.cert_error.as_deref().unwrap().contains("unknown issuer"),
        "{:?}",
        v.cert_error
    );
    let mut insecure = args.to_vec();
    insecure.push("--insecure");
    let r = run(&insecure);
    let v = r.route("valid.test");
    assert!(v.up, "--insecure accepts the unknown issuer");
    assert_eq!(v.cert_verified, Some(false), "and still reports it");
    // --insecure does not hide an expiring certificate or Traefik's default one.
    let r = run(&[
        "--connect",
        &n.connect(),
        "--no-redirect-check",
        "--insecure",
        "--route",
        "soon.test",
        "--route",
        "nope.test",
    ]);
    assert_eq!(r.route("soon.test").severity, "critical");
    assert_eq!(r.route("nope.test").default_cert, Some(true));
    assert!(!r.route("nope.test").up);
}

#[test]
fn check_exit_status_follows_the_worst_finding() {
    let pki = Pki::new();
    let n = Nginx::start(&pki, standard_sites(&pki));
    for (route, code) in [
        ("valid.test", 0),
        ("shortchain.test", 1),
        ("expired.test", 2),
        ("plain.test", 1),
    ] {
        let r = probe(&n, &[route], &["--check", "--quiet"]);
        assert_eq!(r.code(), Some(code), "{route}: {}", r.stderr());
        assert!(r.output.stdout.is_empty(), "--quiet");
    }
    // Thresholds move the verdict.
    let r = probe(
        &n,
        &["shortchain.test"],
        &["--check", "--warn-days", "9", "--crit-days", "2"],
    );
    assert_eq!(r.code(), Some(0), "{:#?}", r.alerts);
}

#[test]
fn a_route_that_does_not_answer_costs_the_timeout_and_no_more() {
    let _machine = homelab_testkit::shared();
    // Accepts TCP (the kernel does) and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let refused = format!("127.0.0.1:{}", free_port());
    let startup = startup_time();
    let t = Instant::now();
    let r = run(&[
        "--connect",
        &addr,
        "--connect-http",
        &refused,
        "--timeout",
        "1s",
        "--route",
        "a.test",
        "--route",
        "b.test",
        "--check",
    ]);
    // Two routes in parallel, each bounded by the 1 s timeout per exchange.
    let took = t.elapsed();
    // Starting the binary, measured before and after: on a loaded machine (qemu-user
    // beside other builds) it varies from one moment to the next.
    let startup = startup.max(startup_time());
    let bound = startup * 2 + Duration::from_secs(3);
    assert!(took < bound, "took {took:?} (bound {bound:?})");
    assert_eq!(r.code(), Some(2));
    let a = r.route("a.test");
    assert!(!a.up && a.status_code.is_none() && a.tls_seconds.is_none());
    assert!(a.connect_seconds.is_some());
    assert!(
        a.errors
            .iter()
            .any(|e| e.contains("no answer before the timeout")),
        "{:?}",
        a.errors
    );
    assert!(
        a.errors.iter().any(|e| e.contains("connection refused")),
        "{:?}",
        a.errors
    );
    assert!(
        r.alerts_for("a.test")
            .iter()
            .any(|x| x.severity == "critical" && x.message.starts_with("does not answer"))
    );

    // Nothing listening at all.
    let r = run(&["--connect", &refused, "--no-redirect-check", "--route", "a.test"]);
    let a = r.route("a.test");
    assert!(a.connect_seconds.is_none() && a.address.is_none());
    assert!(a.errors[0].contains("connection refused"), "{:?}", a.errors);
    assert_eq!(r.code(), Some(0));
}

#[test]
fn a_host_that_does_not_resolve_is_critical() {
    let r = run(&["--route", "does-not-exist.invalid", "--timeout", "3s"]);
    let a = r.route("does-not-exist.invalid");
    assert!(
        a.errors[0].starts_with("resolve does-not-exist.invalid: "),
        "{:?}",
        a.errors
    );
    assert_eq!(a.severity, "critical");
}

#[test]
fn plain_http_where_tls_is_expected_is_a_clear_error() {
    let pki = Pki::new();
    let n = Nginx::start(&pki, standard_sites(&pki));
    let r = run(&[
        "--connect",
        &n.connect_http(),
        "--no-redirect-check",
        "--route",
        "valid.test",
    ]);
    let a = r.route("valid.test");
    assert!(a.errors[0].contains("TLS handshake"), "{:?}", a.errors);
    assert!(!a.up);
}

#[test]
fn prom_and_text_formats() {
    let pki = Pki::new();
    let n = Nginx::start(&pki, standard_sites(&pki));
    let out = route_check()
        .args(n.args())
        .args([
            "--route",
            "valid.test",
            "--route",
            "expired.test",
            "--format",
            "prom",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let page = String::from_utf8(out.stdout).unwrap();
    promtool_check(&page);
    assert_eq!(
        series(&page, "route_up{router=\"valid.test\",host=\"valid.test\"}"),
        Some(1.0)
    );
    assert_eq!(
        series(&page, "route_up{router=\"expired.test\",host=\"expired.test\"}"),
        Some(0.0)
    );
    assert_eq!(
        series(
            &page,
            "route_http_status_code{router=\"valid.test\",host=\"valid.test\"}"
        ),
        Some(200.0)
    );
    assert_eq!(
        series(
            &page,
            "route_redirect_ok{router=\"valid.test\",host=\"valid.test\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        series(
            &page,
            "route_tls_version_info{router=\"valid.test\",host=\"valid.test\",version=\"TLS 1.3\"}"
        ),
        Some(1.0)
    );
    assert!(
        series(
            &page,
            "route_duration_seconds{router=\"valid.test\",host=\"valid.test\",phase=\"tls\"}"
        )
        .is_some()
    );
    assert!(
        series(
            &page,
            "route_duration_seconds{router=\"valid.test\",host=\"valid.test\",phase=\"resolve\"}"
        )
        .is_none(),
        "an unmeasured phase is left out"
    );
    let expiry = series(
        &page,
        "route_tls_cert_expiry_timestamp_seconds{router=\"expired.test\",host=\"expired.test\"}",
    );
    assert!(expiry.unwrap() < homelab_core_now());
    assert_eq!(series(&page, "route_source_up{source=\"flag\"}"), Some(1.0));
    assert!(series(&page, "route_last_run_timestamp_seconds").is_some());
    assert!(!page.contains("{\"v\""), "no JSON in prom format");

    let out = route_check()
        .args(n.args())
        .args([
            "--route",
            "valid.test",
            "--route",
            "expired.test",
            "--format",
            "text",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("ROUTER") && lines[0].contains("STATE") && lines[0].contains("CERTIFICATE"),
        "{text}"
    );
    let expired = lines.iter().find(|l| l.starts_with("expired.test")).unwrap();
    assert!(
        expired.contains("down !") && expired.contains("expired ") && expired.contains(" ago !"),
        "{expired}"
    );
    assert!(
        text.contains("Problems\n") && text.contains("! expired.test expired.test: "),
        "{text}"
    );
    let valid = lines.iter().find(|l| l.starts_with("valid.test")).unwrap();
    assert!(
        valid.contains(" up ")
            && valid.contains(" 200 ")
            && valid.contains("TLS 1.3")
            && valid.contains("expires in ")
            && valid.contains(" days")
            && valid.ends_with("redirects"),
        "{valid}"
    );
    assert!(!text.contains('\x1b'), "no colour off a terminal: {text:?}");
}

fn homelab_core_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn many_routes_are_probed_concurrently() {
    let _machine = homelab_testkit::shared();
    let pki = Pki::new();
    let names: Vec<String> = (0..40).map(|i| format!("r{i}.test")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let n = Nginx::start(&pki, vec![Site::new(&names.join(" "), pki.leaf(&refs, -1, 80))]);
    let startup = startup_time();
    let t = Instant::now();
    let r = probe(&n, &refs, &["--concurrency", "8"]);
    let took = t.elapsed();
    assert_eq!(r.routes.len(), 40);
    assert!(
        r.routes.iter().all(|x| x.status_code.is_some()),
        "{:#?}",
        r.routes
            .iter()
            .filter(|x| x.status_code.is_none())
            .collect::<Vec<_>>()
    );
    assert!(r.routes.iter().all(|x| x.up), "{}", r.stdout());
    assert!(took < startup * 2 + Duration::from_secs(10), "{took:?}");
}
