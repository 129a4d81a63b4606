//! route-check: the front door, checked. Every route Traefik serves (from its API,
//! from containers' labels, or given by hand) is probed over TLS, its certificate
//! chain read, and port 80 checked for the redirect to HTTPS; every container that
//! publishes a port around the proxy is named.
//!
//! One `kind: route` record per route ([`report::RouteRecord`]), one `kind: bypass`
//! per back door, `kind: alert` records for findings, one `kind: summary` per round,
//! and the `route_*` Prometheus page. Each source has its own module.

pub mod docker;
pub mod http;
pub mod metrics;
pub mod probe;
pub mod report;
pub mod routes;
pub mod rule;
pub mod table;
pub mod tls;
pub mod traefik_api;

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use homelab_core::args::{examples_help, parse_interval};
use homelab_core::docker::{DockerArgs, FilterArgs};
use homelab_core::run::run_rounds;
use homelab_core::{Alert, CommonArgs, Error, Exit, Format, Output, Result, Root, Severity};

use probe::{Probe, Settings};
use report::{BypassRecord, Policy, RouteRecord, SourceStatus, SummaryRecord};
use routes::{Expect, RouteSpec, Source};

pub const TOOL: &str = "route-check";

/// Examples shown by `--help` and in the man page.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "Every router Traefik knows, probed through the proxy on this host",
        "route-check --traefik-api http://127.0.0.1:8080 --connect 127.0.0.1:443",
    ),
    (
        "Routers from the containers' labels, and every port published around the proxy",
        "route-check --docker --format text",
    ),
    (
        "Two routes by hand, as a table",
        "route-check --route grafana.example.com --route n8n.example.com/healthz --format text",
    ),
    (
        "Every 5 minutes into node_exporter's textfile directory, nothing on stdout",
        "route-check --traefik-api http://127.0.0.1:8080 --docker --interval 5m --textfile-dir /var/lib/prometheus/node-exporter --quiet",
    ),
    (
        "From cron: mail when a certificate is near expiry or a route is down (exit 1 warning, 2 critical)",
        "route-check --docker --check --quiet || route-check --docker --format text | mail -s 'front door' root",
    ),
    (
        "Certificates from a private CA; routes behind basic auth answer 401",
        "route-check --routes-file /etc/route-check/routes --ca /etc/ssl/homelab-ca.pem --expect 200-399,401",
    ),
    (
        "Days left on each certificate, with jq",
        "route-check --docker | jq -r 'select(.kind == \"route\") | \"\\(.server_name) \\(.cert_days_left)\"'",
    ),
];

/// The hand-written man page sections (OUTPUT, METRICS, ...), in roff.
pub const MAN_SECTIONS: &str = include_str!("../man.roff");

#[derive(Debug, Parser)]
#[command(
    name = "route-check",
    version,
    about = "Checks the Traefik front door: every route over TLS, certificates far from expiry, port 80 redirecting, no ports published around the proxy",
    long_about = "Checks the Traefik front door. Routes come from Traefik's API (--traefik-api), from the traefik.* labels of \
containers (--docker), or by hand (--route, --routes-file). Each route is probed: resolve (or --connect to the proxy's \
address, keeping the route's host as SNI and Host header), TCP connect, TLS handshake verified against the system's roots \
or --ca, one HTTP request; the certificate chain is read for its earliest expiry, its names and whether it is Traefik's \
default certificate; plain HTTP on port 80 must redirect to HTTPS. With --docker, every container that publishes a port \
on a non-loopback address (other than the proxy's 80 and 443) or runs with host networking is a back door.\n\n\
One JSON line per route (kind: route) and per back door (kind: bypass), kind: alert records for findings, and a kind: \
summary record per round; route_* Prometheus metrics named after blackbox_exporter's. Routes are probed concurrently, \
each within --timeout. With --check the exit status is 0, 1 (warning) or 2 (critical).",
    after_long_help = examples_help(EXAMPLES),
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Traefik's API (its /api/http/routers and /api/http/services), e.g.
    /// http://127.0.0.1:8080
    #[arg(
        long,
        value_name = "URL",
        env = "ROUTE_CHECK_TRAEFIK_API",
        hide_env_values = true,
        help_heading = "Sources"
    )]
    pub traefik_api: Option<String>,

    /// File holding user:password for an API behind basic authentication (never on
    /// the command line)
    #[arg(
        long,
        value_name = "FILE",
        env = "ROUTE_CHECK_TRAEFIK_API_AUTH_FILE",
        requires = "traefik_api",
        help_heading = "Sources"
    )]
    pub traefik_api_auth_file: Option<PathBuf>,

    /// Read routers from the traefik.* labels of running containers, and look for
    /// ports published around the proxy
    #[arg(long, help_heading = "Sources")]
    pub docker: bool,

    #[command(flatten)]
    pub docker_args: DockerArgs,

    #[command(flatten)]
    pub filter: FilterArgs,

    /// Treat containers without traefik.enable as enabled, as Traefik does when its
    /// Docker provider has exposedByDefault=true (ours sets false)
    #[arg(long, help_heading = "Sources")]
    pub exposed_by_default: bool,

    /// A route to probe, HOST[/PATH] (or HOST:PORT[/PATH]; an IPv6 address in
    /// brackets, [2001:db8::1]:443); repeatable
    #[arg(long, value_name = "HOST[/PATH]", value_parser = parse_route_flag, help_heading = "Sources")]
    pub route: Vec<RouteSpec>,

    /// Routes to probe, one HOST[/PATH] per line, optionally followed by
    /// expect=CODES; # starts a comment
    #[arg(long, value_name = "FILE", help_heading = "Sources")]
    pub routes_file: Option<PathBuf>,

    /// Send every HTTPS probe to this address (the proxy), keeping the route's host
    /// as SNI and Host header
    #[arg(
        long,
        value_name = "ADDR:PORT",
        env = "ROUTE_CHECK_CONNECT",
        help_heading = "Probing"
    )]
    pub connect: Option<String>,

    /// Where the plain-HTTP redirect check goes (default: the --connect address on
    /// port 80, or each route's own address on port 80)
    #[arg(long, value_name = "ADDR:PORT", help_heading = "Probing")]
    pub connect_http: Option<String>,

    /// Do not check that port 80 redirects to HTTPS
    #[arg(long, help_heading = "Probing")]
    pub no_redirect_check: bool,

    /// Trust the certificates in this PEM file instead of the system's roots
    #[arg(long, value_name = "FILE", help_heading = "Probing")]
    pub ca: Option<PathBuf>,

    /// Do not fail routes whose certificate is not signed by a trusted root
    /// (expiry, names and Traefik's default certificate are still checked)
    #[arg(long, help_heading = "Probing")]
    pub insecure: bool,

    /// Status codes that count as working: codes, ranges and classes, e.g.
    /// 200-399,401 [default: 2xx and 3xx]
    #[arg(long, value_name = "CODES", value_parser = routes::parse_expect, help_heading = "Probing")]
    pub expect: Option<Expect>,

    /// Time limit for each route's HTTPS exchange, and again for its plain-HTTP one
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_interval, help_heading = "Probing")]
    pub timeout: Duration,

    /// How many routes are probed at once
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256), help_heading = "Probing")]
    pub concurrency: u16,

    /// Host ports that belong to the proxy and are not back doors
    #[arg(
        long,
        value_name = "PORTS",
        value_delimiter = ',',
        default_value = "80,443",
        help_heading = "Back doors"
    )]
    pub proxy_ports: Vec<u16>,

    /// A published port that is meant to be (e.g. a DNS server): CONTAINER or
    /// CONTAINER:PORT; still reported, never alerted; repeatable
    #[arg(long, value_name = "CONTAINER[:PORT]", value_parser = docker::parse_allow, help_heading = "Back doors")]
    pub allow_publish: Vec<docker::Allow>,

    /// Warn when a certificate (or one of its chain) has fewer days left
    #[arg(
        long,
        value_name = "DAYS",
        default_value = "21",
        value_parser = parse_days,
        help_heading = "Thresholds"
    )]
    pub warn_days: f64,

    /// Critical when a certificate (or one of its chain) has fewer days left
    #[arg(long, value_name = "DAYS", default_value = "7", value_parser = parse_days, help_heading = "Thresholds")]
    pub crit_days: f64,

    /// Exit 1 when a warning was found and 2 when a critical finding was (a route
    /// that does not answer, a bad certificate, a back door), as Nagios plugins do
    #[arg(long, help_heading = "Thresholds")]
    pub check: bool,
}

fn parse_route_flag(s: &str) -> std::result::Result<RouteSpec, String> {
    routes::parse_route(s, Source::Flag)
}

pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// `ADDR:PORT` (or `NAME:PORT`), resolved once.
fn resolve_flag(flag: &str, v: &str) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = v
        .to_socket_addrs()
        .map_err(|e| Error::usage(format!("{flag} {v}: {e}")).hint("give ADDR:PORT, e.g. 127.0.0.1:443"))?
        .collect();
    if addrs.is_empty() {
        return Err(Error::usage(format!("{flag} {v}: no address")));
    }
    Ok(addrs)
}

/// A URL as it may be printed: whatever stands before an `@` in it is hidden.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let shown = match rest[..end].rsplit_once('@') {
        Some((_, host)) => format!("***@{host}{}", &rest[end..]),
        None => rest.to_string(),
    };
    let shown: String = shown
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if scheme.is_empty() {
        shown
    } else {
        format!("{scheme}://{shown}")
    }
}

/// `--warn-days` and `--crit-days`: a finite number of days, 0 or more.
fn parse_days(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(d) if d.is_finite() && d >= 0.0 => Ok(d),
        _ => Err(format!(
            "{s:?} is not a number of days (0 or more, e.g. 21 or 7.5)"
        )),
    }
}

/// Everything fixed for the whole run.
struct Plan {
    settings: Settings,
    policy: Policy,
    api: Option<traefik_api::Client>,
    file_routes: Option<(PathBuf, Vec<RouteSpec>)>,
    flag_routes: Vec<RouteSpec>,
    concurrency: usize,
}

fn plan(cli: &Cli) -> Result<Plan> {
    if cli.warn_days < cli.crit_days {
        return Err(Error::usage(format!(
            "--warn-days {} is below --crit-days {}",
            cli.warn_days, cli.crit_days
        )));
    }
    if cli.traefik_api.is_none() && !cli.docker && cli.route.is_empty() && cli.routes_file.is_none() {
        return Err(Error::usage("nothing to check")
            .hint("give --traefik-api URL, --docker, --route HOST[/PATH] or --routes-file FILE"));
    }
    let file_routes = match &cli.routes_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::io(format!("--routes-file {}", path.display()), e))?;
            let rs = routes::parse_routes_file(&text)
                .map_err(|e| Error::data(format!("--routes-file {}: {e}", path.display())))?;
            Some((path.clone(), rs))
        }
        None => None,
    };
    let trust = match &cli.ca {
        Some(p) => tls::Trust::File(p.clone()),
        None => tls::Trust::System,
    };
    let tls = tls::Tls::new(&trust)?;
    let connect = cli
        .connect
        .as_deref()
        .map(|c| resolve_flag("--connect", c))
        .transpose()?;
    let connect_http = cli
        .connect_http
        .as_deref()
        .map(|c| resolve_flag("--connect-http", c))
        .transpose()?;
    let auth = match &cli.traefik_api_auth_file {
        Some(p) => {
            let line = homelab_core::fs::read_secret(p, "--traefik-api-auth-file")?;
            if !line.contains(':') {
                return Err(Error::data(format!(
                    "--traefik-api-auth-file {}: expected one line user:password",
                    p.display()
                )));
            }
            Some(line)
        }
        None => None,
    };
    let api = cli
        .traefik_api
        .as_deref()
        .map(|url| {
            let parsed = traefik_api::parse_url(url).map_err(|e| {
                Error::usage(format!("--traefik-api {}: {e}", redact_url(url)))
                    .hint("e.g. http://127.0.0.1:8080; credentials go in --traefik-api-auth-file")
            })?;
            Ok::<_, Error>(traefik_api::Client::new(
                &parsed,
                &tls,
                cli.insecure,
                cli.timeout,
                auth.as_deref(),
            ))
        })
        .transpose()?;
    Ok(Plan {
        settings: Settings {
            tls,
            connect,
            connect_http,
            http_port: 80,
            timeout: cli.timeout,
            redirect_check: !cli.no_redirect_check,
        },
        policy: Policy {
            warn_days: cli.warn_days,
            crit_days: cli.crit_days,
            insecure: cli.insecure,
            expect: cli.expect.clone().unwrap_or_default(),
        },
        api,
        file_routes,
        flag_routes: cli.route.clone(),
        concurrency: usize::from(cli.concurrency),
    })
}

/// Everything one round found.
pub struct Round {
    pub routes: Vec<RouteRecord>,
    pub bypasses: Vec<BypassRecord>,
    pub alerts: Vec<Alert>,
    /// Each route's findings (also in `alerts`), for the text view.
    pub route_alerts: Vec<Vec<Alert>>,
    pub summary: SummaryRecord,
}

/// Probes every route, at most `n` at once; results in the order of `specs`.
pub fn probe_all(specs: &[RouteSpec], s: &Settings, n: usize) -> Vec<Probe> {
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Probe>>> = specs.iter().map(|_| Mutex::new(None)).collect();
    let workers = n.min(specs.iter().filter(|r| r.host.is_some()).count()).max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(spec) = specs.get(i) else { break };
                    let p = probe::probe(spec, s);
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(p);
                    }
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| m.into_inner().ok().flatten().unwrap_or_default())
        .collect()
}

fn one_round(cli: &Cli, plan: &Plan) -> Round {
    let started = Instant::now();
    let mut specs: Vec<RouteSpec> = Vec::new();
    let mut sources = Vec::new();
    let mut alerts = Vec::new();
    let source_failed = |source: Source, target: Option<String>, error: String, alerts: &mut Vec<Alert>| {
        alerts.push(Alert {
            severity: Severity::Critical,
            check: "source".into(),
            subject: target.clone().unwrap_or_else(|| source.as_str().into()),
            value: None,
            threshold: None,
            message: error.clone(),
        });
        SourceStatus {
            source,
            target,
            ok: false,
            routes: 0,
            error: Some(error),
        }
    };
    let ok = |source, target, routes| SourceStatus {
        source,
        target,
        ok: true,
        routes,
        error: None,
    };

    if let Some(api) = &plan.api {
        match api.routes() {
            Ok(rs) => {
                sources.push(ok(Source::TraefikApi, Some(api.base().to_string()), rs.len()));
                specs.extend(rs);
            }
            Err(e) => sources.push(source_failed(
                Source::TraefikApi,
                Some(api.base().to_string()),
                e,
                &mut alerts,
            )),
        }
    }
    let mut bypass_list = Vec::new();
    let mut containers = None;
    if cli.docker {
        // An empty DOCKER_HOST means the default socket, as for the docker CLI.
        let docker_host = cli.docker_args.host().to_string();
        let timeout = cli.docker_args.timeout_or(plan.settings.timeout);
        match docker::list(&docker_host, &cli.filter.docker_filter, timeout) {
            Ok(cs) => {
                let mut n = 0;
                for c in &cs {
                    let rs = docker::routes(c, cli.exposed_by_default);
                    n += rs.len();
                    specs.extend(rs);
                    bypass_list.extend(docker::bypasses(c, &cli.proxy_ports, &cli.allow_publish));
                }
                containers = Some(cs.len());
                sources.push(ok(Source::Docker, Some(docker_host), n));
            }
            Err(e) => sources.push(source_failed(Source::Docker, Some(docker_host), e, &mut alerts)),
        }
    }
    if let Some((path, rs)) = &plan.file_routes {
        sources.push(ok(Source::File, Some(path.display().to_string()), rs.len()));
        specs.extend(rs.iter().cloned());
    }
    if !plan.flag_routes.is_empty() {
        sources.push(ok(Source::Flag, None, plan.flag_routes.len()));
        specs.extend(plan.flag_routes.iter().cloned());
    }

    // One probe per router and host: the API and the labels describe the same routers.
    let mut seen = HashSet::new();
    specs.retain(|s| seen.insert((s.router.clone(), s.host.clone())));

    let probes = probe_all(&specs, &plan.settings, plan.concurrency);
    let now = homelab_core::unix_now();
    let mut routes = Vec::with_capacity(specs.len());
    let mut route_alerts = Vec::with_capacity(specs.len());
    for (spec, p) in specs.iter().zip(&probes) {
        let (rec, a) = report::evaluate(spec, p, &plan.policy, now);
        routes.push(rec);
        alerts.extend(a.iter().cloned());
        route_alerts.push(a);
    }
    let mut bypasses = Vec::new();
    for b in &bypass_list {
        let (rec, a) = report::bypass(b);
        bypasses.push(rec);
        alerts.extend(a);
    }
    let summary = SummaryRecord::of(
        &routes,
        &bypasses,
        &alerts,
        containers,
        sources,
        (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    );
    Round {
        routes,
        bypasses,
        alerts,
        route_alerts,
        summary,
    }
}

pub fn run(cli: Cli) -> Result<Exit> {
    let plan = plan(&cli)?;
    let root = Root::open(&cli.common.root.root)?;
    let mut out = Output::stdout(TOOL, &cli.common.output, &root);
    out.set_repeating(cli.common.looping.interval.is_some());
    let mut worst_seen = Severity::Ok;
    let mut nothing_read: Option<String> = None;
    run_rounds(&cli.common.looping, |_| {
        let now = SystemTime::now();
        out.begin_round(now)?;
        let round = one_round(&cli, &plan);
        worst_seen = worst_seen.max(round.summary.severity);
        nothing_read = if round.summary.sources.iter().all(|s| !s.ok) {
            let errs: Vec<String> = round
                .summary
                .sources
                .iter()
                .filter_map(|s| s.error.clone())
                .collect();
            Some(errs.join("; "))
        } else {
            None
        };
        for r in &round.routes {
            out.record("route", r)?;
        }
        for b in &round.bypasses {
            out.record("bypass", b)?;
        }
        for a in &round.alerts {
            out.record("alert", a)?;
        }
        out.record("summary", &round.summary)?;
        let text = out.format() == Format::Text;
        if out.wants_page() {
            let secs = now
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            let page = metrics::page(
                &round.routes,
                &round.bypasses,
                &round.summary,
                (secs * 1000.0).round() / 1000.0,
            );
            out.page(&page)?;
        }
        if text {
            out.raw(&table::text(
                &round,
                homelab_core::text::Paint::for_stdout(),
                homelab_core::text::screen_width(),
            ))?;
        }
        Ok(())
    })?;
    if cli.check {
        return Ok(worst_seen.exit());
    }
    if let Some(why) = nothing_read
        && cli.common.looping.interval.is_none()
    {
        return Err(Error::new(
            Exit::Unavailable,
            format!("no source of routes could be read: {why}"),
        )
        .hint("check --traefik-api, --docker-host and that the service runs"));
    }
    Ok(Exit::Ok)
}
