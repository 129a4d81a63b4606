//! The command line: bad flags and inputs with their documented exit codes, the
//! textfile, the loop, the golden Prometheus page, and a man page that documents
//! every JSON field and metric the tool writes.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::*;

#[test]
fn clap_definition_is_sound() {
    route_check::command().debug_assert();
}

#[test]
fn usage_and_input_errors_have_documented_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(d("routes"), "good.test\nbad host here\n").unwrap();
    std::fs::write(d("garbage.pem"), "not a certificate\n").unwrap();
    for (args, code, stderr) in [
        (
            vec![],
            64,
            "route-check: nothing to check: give --traefik-api URL, --docker, --route",
        ),
        (
            vec!["--route", "a.test", "--warn-days", "3"],
            64,
            "--warn-days 3 is below --crit-days 7",
        ),
        (
            vec!["--route", "http://a.test"],
            64,
            "routes are probed over HTTPS",
        ),
        (
            vec!["--route", "a.test", "--expect", "abc"],
            64,
            "not a status code",
        ),
        (
            vec!["--route", "a.test", "--connect", "nowhere"],
            64,
            "--connect nowhere",
        ),
        (
            vec!["--route", "a.test", "--timeout", "0s"],
            64,
            "longer than zero",
        ),
        (
            vec!["--route", "a.test", "--concurrency", "0"],
            64,
            "--concurrency",
        ),
        (
            vec!["--traefik-api", "ftp://x"],
            64,
            "give an http:// or https:// URL",
        ),
        (
            vec!["--routes-file", "/nonexistent/routes"],
            66,
            "--routes-file /nonexistent/routes: no such file",
        ),
        (
            vec!["--routes-file", &d("routes")],
            65,
            "line 2: unknown option \"host\"",
        ),
        (
            vec!["--route", "a.test", "--ca", "/nonexistent/ca.pem"],
            66,
            "--ca /nonexistent/ca.pem: no such file",
        ),
        (
            vec!["--route", "a.test", "--ca", &d("garbage.pem")],
            65,
            "no PEM certificate in the file",
        ),
    ] {
        let r = run(&args);
        assert_eq!(r.code(), Some(code), "{args:?}: {}", r.stderr());
        assert!(r.stderr().contains(stderr), "{args:?}: {}", r.stderr());
        assert!(r.output.stdout.is_empty(), "{args:?} wrote data");
    }
}

#[test]
fn routes_file_loop_and_textfile() {
    let pki = Pki::new();
    let n = Nginx::start(&pki, standard_sites(&pki));
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes");
    std::fs::write(
        &routes,
        "# the stack\nvalid.test/login\nbad.test expect=502   # a backend that is down on purpose\n",
    )
    .unwrap();
    let prom = dir.path().join("prom");
    std::fs::create_dir(&prom).unwrap();
    let out = route_check()
        .args(n.args())
        .args([
            "--routes-file",
            routes.to_str().unwrap(),
            "--textfile-dir",
            prom.to_str().unwrap(),
        ])
        .args(["--interval", "100ms", "--count", "2"])
        .output()
        .unwrap();
    let r = parse(out);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert_eq!(r.summaries.len(), 2, "two rounds");
    assert_eq!(r.routes.len(), 4);
    let b = r
        .routes
        .iter()
        .find(|x| x.server_name.as_deref() == Some("bad.test"))
        .unwrap();
    assert!(b.up && b.expected_status == "502" && b.source == "file");
    assert_eq!(r.routes[0].path, "/login");
    assert_eq!(
        r.summaries[0].sources[0].target.as_deref(),
        Some(routes.to_str().unwrap())
    );
    let page = std::fs::read_to_string(prom.join("route-check.prom")).unwrap();
    promtool_check(&page);
    assert_eq!(
        series(
            &page,
            "route_up{router=\"bad.test expect=502\",host=\"bad.test\"}"
        ),
        None
    );
    assert_eq!(
        series(&page, "route_up{router=\"bad.test\",host=\"bad.test\"}"),
        Some(1.0)
    );
    assert_eq!(
        std::fs::read_dir(&prom).unwrap().count(),
        1,
        "only the .prom file"
    );
}

/// Values that depend on the run: durations, times, certificate dates, ports.
fn normalise(page: &str, port: u16) -> String {
    page.lines()
        .map(|l| {
            let varies = [
                "route_duration_seconds{",
                "route_tls_cert_expiry_timestamp_seconds{",
                "route_last_run_timestamp_seconds ",
            ];
            let l = l.replace(&port.to_string(), "<port>");
            if varies.iter().any(|p| l.starts_with(p)) {
                let (series, _) = l.rsplit_once(' ').unwrap();
                format!("{series} <varies>\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

#[test]
fn golden_page_from_the_api_fixtures() {
    let pki = Pki::new();
    let n = Nginx::start(&pki, standard_sites(&pki));
    let api = FakeApi::start(ApiMode::Pages(api_fixture_pages()));
    let out = route_check()
        .args(["--traefik-api", &api.url, "--format", "prom"])
        .args(n.args())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let page = String::from_utf8(out.stdout).unwrap();
    promtool_check(&page);
    let actual = normalise(&page, n.tls_port);
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/api.prom");
    homelab_testkit::assert_golden(&golden, &actual);
}

#[test]
fn man_page_documents_every_field_and_metric() {
    let man = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../man/route-check.1"))
        .expect("man/route-check.1 exists (cargo run -p homelab-docs -- man)");

    // Every kind of record: routes and alerts from the API and nginx, back doors
    // from a container on the real engine.
    let pki = Pki::new();
    let n = Nginx::start(&pki, standard_sites(&pki));
    let api = FakeApi::start(ApiMode::Pages(api_fixture_pages()));
    let d = homelab_testkit::docker();
    let group = format!("man-{}-{}", std::process::id(), free_port());
    let label = format!("rc.group={group}");
    let publish = format!("0.0.0.0:{}:80", free_port());
    let _c = d.start(
        "route-check",
        &["--label", &label, "-p", &publish],
        &["sleep", "300"],
    );
    let filter = format!("label={label}");
    let run = |format: &str| {
        route_check()
            .args([
                "--traefik-api",
                &api.url,
                "--docker",
                "--docker-host",
                &d.host,
                "--filter",
                &filter,
            ])
            .args(n.args())
            .args(["--format", format])
            .output()
            .unwrap()
    };
    let out = run("jsonl");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut fields = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        kinds.insert(v["kind"].as_str().unwrap().to_string());
        homelab_testkit::json_keys(&v, &mut fields);
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["alert", "bypass", "route", "summary"]
    );
    let missing = homelab_testkit::undocumented(&man, fields.iter().map(String::as_str));
    assert!(
        missing.is_empty(),
        "JSON fields not in the man page's OUTPUT: {missing:?}"
    );

    let page = String::from_utf8(run("prom").stdout).unwrap();
    let metrics: Vec<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .collect();
    assert!(metrics.len() >= 9, "{metrics:?}");
    let missing = homelab_testkit::undocumented(&man, metrics.iter().copied());
    assert!(missing.is_empty(), "metrics not in the man page: {missing:?}");
}

/// The text view marks a route that does not answer with `!` and lists it under
/// Problems; colour only on a terminal (a pseudo-terminal from script(1)), never with
/// NO_COLOR, never into a pipe.
#[test]
fn text_view_colours_only_a_terminal_without_no_color() {
    let closed = free_port();
    let args = [
        "--route".to_string(),
        "down.test".to_string(),
        "--connect".to_string(),
        format!("127.0.0.1:{closed}"),
        "--no-redirect-check".to_string(),
        "--format".to_string(),
        "text".to_string(),
    ];
    let out = route_check().args(&args).env_remove("NO_COLOR").output().unwrap();
    let piped = String::from_utf8(out.stdout).unwrap();
    assert!(!piped.contains('\x1b'), "no colour into a pipe: {piped:?}");
    assert!(piped.contains("down.test") && piped.contains("down !"), "{piped}");
    assert!(piped.contains("0 of 1 route up; 1 critical."), "{piped}");
    assert!(
        piped.contains("Problems\n  ! down.test down.test: does not answer: "),
        "{piped}"
    );

    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let on_tty = |no_color| {
        homelab_testkit::on_terminal(Path::new(env!("CARGO_BIN_EXE_route-check")), &args, no_color).1
    };
    let coloured = on_tty(None);
    assert!(
        coloured.contains("\x1b[1m\x1b[31mdown.test"),
        "red on a terminal: {coloured:?}"
    );
    let plain = on_tty(Some("1"));
    assert!(plain.contains("down !"), "{plain:?}");
    assert!(!plain.contains('\x1b'), "NO_COLOR: {plain:?}");
}
