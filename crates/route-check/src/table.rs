//! `--format text`: the routes, then the back doors around the proxy, as tables for a
//! person (states and certificate lifetimes in words, problems marked with `!` and, on
//! a terminal, in colour), a line that sums it up, and the problems one per line.

use homelab_core::text::{Mark, Paint, Table, human_duration, levelled_table, problem_list};
use homelab_core::{Alert, Severity};

use crate::Round;
use crate::docker::BypassReason;
use crate::report::{BypassRecord, RouteRecord};
use crate::routes::Source;

/// The text view of one round, within `width` columns.
pub fn text(round: &Round, paint: Paint, width: Option<usize>) -> String {
    let mut out = String::new();
    if !round.routes.is_empty() {
        let (t, marks) = routes_table(round);
        out.push_str(&levelled_table(&t, &marks, paint, width));
    }
    if !round.bypasses.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        let (t, marks) = bypass_table(&round.bypasses);
        out.push_str(&levelled_table(&t, &marks, paint, width));
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&summary_line(round));
    out.push('\n');
    out.push_str(&problem_list(&problems(round), paint, width));
    out
}

fn mark_of(s: Severity) -> Mark {
    match s {
        Severity::Ok => Mark::None,
        Severity::Warning => Mark::Warn,
        Severity::Critical => Mark::Bad,
    }
}

/// A cell with a problem ends in ` !`, so it shows without colour too.
fn flagged(words: impl Into<String>, bad: bool) -> String {
    let mut s = words.into();
    if bad {
        s.push_str(" !");
    }
    s
}

fn routes_table(round: &Round) -> (Table, Vec<Mark>) {
    let mut t = Table::new(&[
        "ROUTER",
        "HOST",
        "STATE",
        "ANSWER",
        "TLS",
        "CERTIFICATE",
        "HTTP TO HTTPS",
    ]);
    let mut marks = Vec::new();
    let none = Vec::new();
    for (i, r) in round.routes.iter().enumerate() {
        let alerts = round.route_alerts.get(i).unwrap_or(&none);
        let has = |check: &str| alerts.iter().any(|a| a.check == check);
        let host = match (&r.server_name, r.path.as_str()) {
            (Some(h), "/") => h.clone(),
            (Some(h), p) => format!("{h}{p}"),
            (None, _) => "-".into(),
        };
        let answer = match r.status_code {
            Some(c) => flagged(c.to_string(), r.status_expected == Some(false)),
            None if r.server_name.is_some() => flagged("none", true),
            None => "-".into(),
        };
        let redirect = match r.redirect_ok {
            Some(true) => "redirects".to_string(),
            Some(false) => flagged("missing", true),
            None => "-".into(),
        };
        t.row(
            [
                r.router.clone(),
                host,
                state_words(r),
                answer,
                r.tls_version.clone().unwrap_or_else(|| "-".into()),
                flagged(certificate_words(r), has("certificate")),
                redirect,
            ]
            .map(|c: String| printable(&c)),
        );
        marks.push(mark_of(r.severity));
    }
    (t, marks)
}

/// The route's state in words: up or down, and how bad what was found is.
fn state_words(r: &RouteRecord) -> String {
    match (r.server_name.is_some(), r.up, r.severity) {
        (false, _, Severity::Ok) => "not probed".into(),
        (false, _, _) => "not probed !".into(),
        (true, false, _) => "down !".into(),
        (true, true, Severity::Ok) => "up".into(),
        (true, true, Severity::Warning) => "up, warning !".into(),
        (true, true, Severity::Critical) => "up, critical !".into(),
    }
}

/// What matters about the certificate, in words: its worst problem, else how long
/// it has left.
fn certificate_words(r: &RouteRecord) -> String {
    if r.default_cert == Some(true) {
        return "Traefik's default".into();
    }
    if r.name_matches == Some(false) {
        return "wrong name".into();
    }
    if r.cert_verified == Some(false) {
        let e = r.cert_error.as_deref().unwrap_or_default();
        if e.contains("not valid yet") {
            return "not valid yet".into();
        }
        if !e.contains("expired") {
            // An unknown issuer: a problem, or forgiven with --insecure.
            return if r.up {
                "untrusted (allowed)".into()
            } else {
                "untrusted".into()
            };
        }
    }
    match r.cert_days_left {
        Some(d) if d < 0.0 => format!("expired {} ago", days_words(-d)),
        Some(d) => format!("expires in {}", days_words(d)),
        None => "-".into(),
    }
}

/// Days for a person: whole days from two on (`29 days`; a certificate with 29.9
/// days left has 29 whole ones), hours and minutes below (`1 day 4 h`, `5 h`).
pub(crate) fn days_words(days: f64) -> String {
    if days >= 2.0 {
        format!("{} days", days.floor())
    } else {
        human_duration(days * 86_400.0)
    }
}

fn bypass_table(bypasses: &[BypassRecord]) -> (Table, Vec<Mark>) {
    let mut t = Table::new(&["CONTAINER", "REACHABLE AT", "INSIDE", "BECAUSE", "STATE"]);
    let mut marks = Vec::new();
    for rec in bypasses {
        let x = &rec.bypass;
        let at = match (x.reason, x.port) {
            (BypassReason::HostNetwork, _) => "every port of the host".to_string(),
            (_, Some(p)) => format!("{}:{p}", x.address),
            (_, None) => format!("{}, every exposed port", x.address),
        };
        let inside = x
            .container_port
            .map(|p| format!("{p}/{}", x.protocol.as_deref().unwrap_or("tcp")))
            .unwrap_or_else(|| "-".into());
        let because = match x.reason {
            BypassReason::Published => "published port",
            BypassReason::HostNetwork => "host networking",
            BypassReason::PublishAllPorts => "all ports published (-P)",
        };
        let state = if x.allowed {
            "allowed".to_string()
        } else {
            "back door !".to_string()
        };
        t.row([x.container.clone(), at, inside, because.to_string(), state].map(|c: String| printable(&c)));
        marks.push(if x.allowed {
            Mark::None
        } else {
            mark_of(rec.severity)
        });
    }
    (t, marks)
}

/// One line: how many routes are up, and what is wrong in all.
fn summary_line(round: &Round) -> String {
    let s = &round.summary;
    let mut parts = vec![match s.routes {
        0 => "no routes found".to_string(),
        1 => format!("{} of 1 route up", s.routes_up),
        n => format!("{} of {n} routes up", s.routes_up),
    }];
    let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    if s.routes_critical > 0 {
        parts.push(plural(s.routes_critical, "critical", "critical"));
    }
    if s.routes_warning > 0 {
        parts.push(plural(s.routes_warning, "warning", "warnings"));
    }
    if s.bypasses > 0 {
        parts.push(plural(
            s.bypasses,
            "back door around the proxy",
            "back doors around the proxy",
        ));
    }
    let failed = s.sources.iter().filter(|x| !x.ok).count();
    if failed > 0 {
        parts.push(plural(failed, "source unreadable", "sources unreadable"));
    }
    let mut line = parts.join("; ");
    line[..1].make_ascii_uppercase();
    line.push('.');
    line
}

/// Every finding, one sentence each: what it concerns, then what is wrong.
fn problems(round: &Round) -> Vec<String> {
    let mut out = Vec::new();
    for s in round.summary.sources.iter().filter(|s| !s.ok) {
        let what = match (s.source, &s.target) {
            (Source::TraefikApi, Some(t)) => format!("Traefik's API at {t}"),
            (Source::Docker, Some(t)) => format!("the Docker engine at {t}"),
            (Source::File, Some(t)) => format!("the routes file {t}"),
            (source, _) => source.as_str().to_string(),
        };
        let error = s.error.as_deref().unwrap_or("no reason given");
        // Most errors name what they could not read already.
        out.push(match &s.target {
            Some(t) if error.contains(t.as_str()) => error.to_string(),
            _ => format!("{what} could not be read: {error}"),
        });
    }
    let route_alerts = round.route_alerts.iter().flatten();
    let others = round.alerts.iter().filter(|a| a.check == "bypass");
    // A route's alerts read as sentences after its name: "certificate expires in
    // 5.0 days", "does not answer: ...", "publishes port 8080 on 0.0.0.0: ...".
    out.extend(
        route_alerts
            .chain(others)
            .map(|a: &Alert| format!("{}: {}", a.subject, a.message)),
    );
    out.iter().map(|p| printable(p)).collect()
}

/// What a person reads in the text view: control characters (from a rule, a
/// router's name, an error) shown escaped, never sent to the terminal.
pub(crate) fn printable(s: &str) -> String {
    if !s.contains(|c: char| c.is_control()) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::Bypass;
    use crate::probe::{Probe, Redirect};
    use crate::report::{self, Policy, SourceStatus, SummaryRecord};
    use crate::routes::{Expect, RouteSpec};
    use crate::tls::CertInfo;

    const NOW: f64 = 1_800_000_000.0;

    fn probe(host: &str, days: f64) -> Probe {
        Probe {
            tls_version: Some("TLS 1.3".into()),
            chain: vec![CertInfo {
                subject: format!("CN={host}"),
                common_name: Some(host.into()),
                issuer: "CN=R11".into(),
                sans: vec![host.into()],
                not_after: (NOW + days * 86400.0) as i64,
            }],
            verified: Some(Ok(())),
            name_ok: Some(true),
            status_code: Some(200),
            redirect: Some(Redirect {
                status_code: Some(308),
                location: Some(format!("https://{host}/")),
                ok: true,
                error: None,
            }),
            ..Default::default()
        }
    }

    fn route(router: &str, host: &str) -> RouteSpec {
        let mut s = RouteSpec::new(router, Source::File);
        s.host = Some(host.into());
        s
    }

    /// A round with one of each finding: a healthy route, a certificate near its
    /// end, a route that does not answer, a missing redirect, a back door and an
    /// allowed published port, and a source that could not be read.
    fn round() -> Round {
        let policy = Policy {
            warn_days: 21.0,
            crit_days: 7.0,
            insecure: false,
            expect: Expect::default(),
        };
        let mut down = probe("api.example.com", 60.0);
        down.chain.clear();
        down.verified = None;
        down.tls_version = None;
        down.status_code = None;
        down.redirect = None;
        down.errors = vec!["connect 10.0.0.5:443: connection refused".into()];
        let mut plain = probe("wiki.example.com", 70.0);
        plain.redirect = Some(Redirect {
            status_code: Some(200),
            location: None,
            ok: false,
            error: Some("port 80 answers 200 instead of redirecting to HTTPS".into()),
        });
        let probes = [
            (
                route("grafana@file", "grafana.example.com"),
                probe("grafana.example.com", 29.9),
            ),
            (
                route("n8n@docker", "n8n.example.com"),
                probe("n8n.example.com", 5.5),
            ),
            (route("api@file", "api.example.com"), down),
            (route("wiki@file", "wiki.example.com"), plain),
        ];
        let (mut routes, mut route_alerts, mut alerts) = (Vec::new(), Vec::new(), Vec::new());
        for (spec, p) in &probes {
            let (r, a) = report::evaluate(spec, p, &policy, NOW);
            routes.push(r);
            alerts.extend(a.iter().cloned());
            route_alerts.push(a);
        }
        let bypass = |container: &str, port, inside, allowed| Bypass {
            container: container.into(),
            container_id: "0123456789ab".into(),
            image: "img".into(),
            reason: BypassReason::Published,
            address: "0.0.0.0".into(),
            port: Some(port),
            container_port: Some(inside),
            protocol: Some("tcp".into()),
            allowed,
        };
        let mut bypasses = Vec::new();
        for b in [
            bypass("adminer", 8080, 8080, false),
            bypass("pihole", 53, 53, true),
        ] {
            let (rec, a) = report::bypass(&b);
            bypasses.push(rec);
            alerts.extend(a);
        }
        let sources = vec![
            SourceStatus {
                source: Source::File,
                target: Some("/etc/route-check/routes".into()),
                ok: true,
                routes: 4,
                error: None,
            },
            SourceStatus {
                source: Source::Docker,
                target: Some("unix:///var/run/docker.sock".into()),
                ok: false,
                routes: 0,
                error: Some("permission denied".into()),
            },
        ];
        let summary = SummaryRecord::of(&routes, &bypasses, &alerts, None, sources, 0.1);
        Round {
            routes,
            bypasses,
            alerts,
            route_alerts,
            summary,
        }
    }

    /// The whole view, pinned in tests/golden/text.txt (UPDATE_GOLDEN=1 rewrites it):
    /// days in words, states in words, problems marked with `!` and listed.
    #[test]
    fn the_text_view_is_for_people() {
        let text = text(&round(), Paint { on: false }, None);
        assert!(!text.contains('\x1b'), "no colour when told so: {text:?}");
        for raw in ["cert_", "29.9", "_expiring", "CRITICAL", "true", "false"] {
            assert!(!text.contains(raw), "{raw:?} in {text}");
        }
        homelab_testkit::assert_golden(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/text.txt"),
            &text,
        );
        let painted = super::text(&round(), Paint { on: true }, None);
        assert!(painted.contains("\x1b[1m\x1b[31mapi@file"), "{painted:?}");
        assert!(
            painted.contains("\x1b[33mwiki@file"),
            "a warning is yellow: {painted:?}"
        );
    }

    #[test]
    fn days_for_people() {
        assert_eq!(days_words(29.9), "29 days");
        assert_eq!(days_words(2.0), "2 days");
        assert_eq!(days_words(1.25), "1 day 6 h");
        assert_eq!(days_words(0.25), "6 h");
    }
}
