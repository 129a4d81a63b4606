//! The records (`kind: route`, `kind: bypass`, `kind: summary`) and the verdicts:
//! which findings are warnings, which are critical, and the `kind: alert` records
//! that say so in words.

use serde::Serialize;

use homelab_core::check::worst;
use homelab_core::{Alert, Severity};

use crate::docker::{Bypass, BypassReason};
use crate::probe::Probe;
use crate::routes::{Expect, RouteSpec, Source};
use crate::tls::{FailureKind, TRAEFIK_DEFAULT_CN};

/// Traefik renews ACME certificates 30 days before they expire; a certificate with
/// fewer days left than this was not renewed.
pub const RENEWAL_DAYS: f64 = 29.0;

/// Thresholds and switches that decide severities.
#[derive(Debug, Clone)]
pub struct Policy {
    pub warn_days: f64,
    pub crit_days: f64,
    pub insecure: bool,
    pub expect: Expect,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RouteRecord {
    pub router: String,
    pub source: Source,
    pub rule: Option<String>,
    /// The route's host (SNI and Host header); `host` is the envelope's machine name.
    pub server_name: Option<String>,
    pub path: String,
    pub url: Option<String>,
    pub entry_points: Vec<String>,
    pub router_tls: Option<bool>,
    pub router_status: Option<String>,
    pub service: Option<String>,
    pub service_status: Option<String>,
    pub servers_down: Vec<String>,
    pub address: Option<String>,
    pub up: bool,
    pub severity: Severity,
    pub status_code: Option<u16>,
    pub status_expected: Option<bool>,
    pub expected_status: String,
    pub resolve_seconds: Option<f64>,
    pub connect_seconds: Option<f64>,
    pub tls_seconds: Option<f64>,
    pub request_seconds: Option<f64>,
    pub tls_version: Option<String>,
    pub tls_cipher: Option<String>,
    pub cert_subject: Option<String>,
    pub cert_issuer: Option<String>,
    pub cert_sans: Vec<String>,
    pub cert_expiry_timestamp_seconds: Option<i64>,
    pub cert_expiry_subject: Option<String>,
    pub cert_days_left: Option<f64>,
    pub renewal_overdue: Option<bool>,
    pub cert_verified: Option<bool>,
    pub cert_error: Option<String>,
    pub name_matches: Option<bool>,
    pub default_cert: Option<bool>,
    pub redirect_status_code: Option<u16>,
    pub redirect_location: Option<String>,
    pub redirect_ok: Option<bool>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BypassRecord {
    #[serde(flatten)]
    pub bypass: Bypass,
    pub severity: Severity,
}

/// How one source of routes fared this round.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SourceStatus {
    pub source: Source,
    /// The API URL, the Docker host, the routes file; null for `--route`.
    pub target: Option<String>,
    pub ok: bool,
    pub routes: usize,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SummaryRecord {
    pub routes: usize,
    pub routes_up: usize,
    pub routes_warning: usize,
    pub routes_critical: usize,
    pub bypasses: usize,
    pub containers: Option<usize>,
    pub sources: Vec<SourceStatus>,
    pub duration_seconds: f64,
    pub severity: Severity,
}

impl SummaryRecord {
    /// The round's counts and worst finding.
    pub fn of(
        routes: &[RouteRecord],
        bypasses: &[BypassRecord],
        alerts: &[Alert],
        containers: Option<usize>,
        sources: Vec<SourceStatus>,
        duration_seconds: f64,
    ) -> SummaryRecord {
        let count = |sev| routes.iter().filter(|r| r.severity == sev).count();
        SummaryRecord {
            routes: routes.len(),
            routes_up: routes.iter().filter(|r| r.up).count(),
            routes_warning: count(Severity::Warning),
            routes_critical: count(Severity::Critical),
            bypasses: bypasses.iter().filter(|b| !b.bypass.allowed).count(),
            containers,
            sources,
            duration_seconds,
            severity: worst(alerts),
        }
    }
}

fn alert(severity: Severity, check: &str, subject: &str, message: String) -> Alert {
    Alert {
        severity,
        check: check.into(),
        subject: subject.into(),
        value: None,
        threshold: None,
        message,
    }
}

/// The subject of a route's alerts: `router host/path`.
fn subject(spec: &RouteSpec) -> String {
    match &spec.host {
        Some(h) if spec.path == "/" => format!("{} {h}", spec.router),
        Some(h) => format!("{} {h}{}", spec.router, spec.path),
        None => spec.router.clone(),
    }
}

/// The record and alerts of one probed route.
pub fn evaluate(spec: &RouteSpec, p: &Probe, policy: &Policy, now: f64) -> (RouteRecord, Vec<Alert>) {
    let subj = subject(spec);
    let mut alerts = Vec::new();
    let mut errors = spec.errors.clone();
    errors.extend(p.errors.iter().cloned());

    // Problems the source found with the router itself.
    if !spec.errors.is_empty() {
        let sev = if spec.broken {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let what = if spec.host.is_none() && !spec.broken {
            format!("cannot be probed: {}", spec.errors.join("; "))
        } else {
            spec.errors.join("; ")
        };
        alerts.push(alert(sev, "router", &subj, what));
    }
    if !spec.servers_down.is_empty() {
        alerts.push(alert(
            Severity::Warning,
            "service",
            &subj,
            format!(
                "Traefik's health check reports servers of {} down: {}",
                spec.service.as_deref().unwrap_or("the service"),
                spec.servers_down.join(", ")
            ),
        ));
    }

    let expect = spec.expect.as_ref().unwrap_or(&policy.expect);
    let leaf = p.chain.first();
    let earliest = p.chain.iter().min_by_key(|c| c.not_after);
    let days_left = earliest.map(|c| ((c.not_after as f64 - now) / 86400.0 * 100.0).round() / 100.0);
    let default_cert = leaf.map(|c| c.common_name.as_deref() == Some(TRAEFIK_DEFAULT_CN));
    let verify_failure = p.verified.as_ref().and_then(|v| v.as_ref().err());
    // rustls's verdict on the name decides: when verification says the name is
    // wrong, it is wrong whatever else was measured.
    let name_matches = match (leaf, &spec.host) {
        (Some(_), Some(_)) if verify_failure.is_some_and(|f| f.kind == FailureKind::WrongName) => Some(false),
        (Some(_), Some(_)) => Some(p.name_ok == Some(true)),
        _ => None,
    };
    let leaf_days = leaf.map(|c| ((c.not_after as f64 - now) / 86400.0 * 100.0).round() / 100.0);
    let status_expected = p.status_code.map(|c| expect.accepts(c));

    if spec.host.is_some() {
        if p.status_code.is_none() {
            let why = p.errors.last().cloned().unwrap_or_else(|| "no answer".into());
            alerts.push(alert(
                Severity::Critical,
                "route",
                &subj,
                format!("does not answer: {why}"),
            ));
        } else if status_expected == Some(false) {
            alerts.push(alert(
                Severity::Critical,
                "route",
                &subj,
                format!(
                    "answers HTTP {}, expected {expect} (use --expect or expect= in a routes file for routes behind authentication)",
                    p.status_code.unwrap_or(0)
                ),
            ));
        }
    }
    if default_cert == Some(true) {
        alerts.push(alert(
            Severity::Critical,
            "certificate",
            &subj,
            "Traefik's default certificate is served: no certificate matches this host (check the router's tls.certresolver and the resolver's log)".into(),
        ));
    } else {
        if let Some(f) = verify_failure
            && ((f.kind == FailureKind::Other && !policy.insecure) || f.kind == FailureKind::NotValidYet)
        {
            alerts.push(alert(Severity::Critical, "certificate", &subj, f.message.clone()));
        }
        if name_matches == Some(false) {
            alerts.push(alert(
                Severity::Critical,
                "certificate",
                &subj,
                format!("certificate is not valid for this host name ({})", names_of(leaf)),
            ));
        }
    }
    if let (Some(days), Some(c)) = (days_left, earliest) {
        let sev = Severity::of_low(days, policy.warn_days, policy.crit_days);
        if sev != Severity::Ok {
            let is_leaf = std::ptr::eq(c, &p.chain[0]);
            let which = if is_leaf {
                "certificate".to_string()
            } else {
                format!("certificate chain ({} expires first)", c.subject)
            };
            let renewal = if !is_leaf {
                // Renewing the leaf does not help: the proxy sends an old intermediate.
                "; the server sends an intermediate certificate that is out of date: install the issuer's current chain (an ACME client gets it with the next certificate)"
            } else if days < RENEWAL_DAYS {
                "; Traefik renews 30 days before expiry, so renewal is failing (check acme.json and Traefik's log)"
            } else {
                ""
            };
            let msg = if days < 0.0 {
                format!("{which} expired {:.1} days ago{renewal}", -days)
            } else {
                format!("{which} expires in {days:.1} days{renewal}")
            };
            let mut a = alert(sev, "certificate", &subj, msg);
            a.value = Some(days);
            a.threshold = Some(sev.limit(policy.warn_days, policy.crit_days));
            alerts.push(a);
        }
    }
    if let Some(r) = &p.redirect
        && !r.ok
    {
        alerts.push(alert(
            Severity::Warning,
            "redirect",
            &subj,
            r.error
                .clone()
                .unwrap_or_else(|| "port 80 does not redirect to HTTPS".into()),
        ));
    }
    if let Some(e) = p.redirect.as_ref().and_then(|r| r.error.clone()) {
        errors.push(e);
    }

    let verified_ok = match verify_failure {
        None => p.verified.is_some(),
        // --insecure forgives an unknown issuer, never a wrong name or an expiry.
        Some(f) => policy.insecure && f.kind == FailureKind::Other,
    };
    let up = status_expected == Some(true)
        && verified_ok
        && default_cert == Some(false)
        && name_matches == Some(true);
    // A route that is down is critical, whatever else was found or missed.
    if spec.host.is_some() && !up && worst(&alerts) != Severity::Critical {
        let why = verify_failure
            .map(|f| f.message.clone())
            .or_else(|| p.errors.last().cloned())
            .unwrap_or_else(|| "its certificate or answer did not pass".into());
        alerts.push(alert(
            Severity::Critical,
            "route",
            &subj,
            format!("is down: {why}"),
        ));
    }
    let rec = RouteRecord {
        router: spec.router.clone(),
        source: spec.source,
        rule: spec.rule.clone(),
        server_name: spec.host.clone(),
        path: spec.path.clone(),
        url: spec.url(),
        entry_points: spec.entry_points.clone(),
        router_tls: spec.router_tls,
        router_status: spec.router_status.clone(),
        service: spec.service.clone(),
        service_status: spec.service_status.clone(),
        servers_down: spec.servers_down.clone(),
        address: p.address.clone(),
        up,
        severity: worst(&alerts),
        status_code: p.status_code,
        status_expected,
        expected_status: expect.to_string(),
        resolve_seconds: p.resolve_seconds,
        connect_seconds: p.connect_seconds,
        tls_seconds: p.tls_seconds,
        request_seconds: p.request_seconds,
        tls_version: p.tls_version.clone(),
        tls_cipher: p.tls_cipher.clone(),
        cert_subject: leaf.map(|c| c.subject.clone()),
        cert_issuer: leaf.map(|c| c.issuer.clone()),
        cert_sans: leaf.map(|c| c.sans.clone()).unwrap_or_default(),
        cert_expiry_timestamp_seconds: earliest.map(|c| c.not_after),
        cert_expiry_subject: earliest.map(|c| c.subject.clone()),
        cert_days_left: days_left,
        renewal_overdue: leaf_days.map(|d| d < RENEWAL_DAYS),
        cert_verified: p.verified.as_ref().map(|v| v.is_ok()),
        cert_error: verify_failure.map(|f| f.message.clone()),
        name_matches,
        default_cert,
        redirect_status_code: p.redirect.as_ref().and_then(|r| r.status_code),
        redirect_location: p.redirect.as_ref().and_then(|r| r.location.clone()),
        redirect_ok: p.redirect.as_ref().map(|r| r.ok),
        errors,
    };
    (rec, alerts)
}

/// What a certificate's SANs name, in words.
fn names_of(leaf: Option<&crate::tls::CertInfo>) -> String {
    match leaf {
        Some(c) if !c.sans.is_empty() => format!("it names {}", c.sans.join(", ")),
        Some(c) => match &c.common_name {
            Some(cn) => format!("it has no subjectAltName; its CN {cn:?} is not used by browsers or rustls"),
            None => "it names no host: no subjectAltName".into(),
        },
        None => "no certificate".into(),
    }
}

/// The record and alert of one back door.
pub fn bypass(b: &Bypass) -> (BypassRecord, Option<Alert>) {
    let severity = if b.allowed {
        Severity::Ok
    } else {
        Severity::Critical
    };
    let port = b.port.map(|p| p.to_string()).unwrap_or_else(|| "*".into());
    let alert = (!b.allowed).then(|| {
        let (subject, message) = match b.reason {
            BypassReason::HostNetwork => (
                b.container.clone(),
                "runs with host networking: every port it listens on is reachable without the proxy".to_string(),
            ),
            BypassReason::PublishAllPorts => (
                b.container.clone(),
                "publishes all its exposed ports (-P) on every address, around the proxy".to_string(),
            ),
            BypassReason::Published => (
                format!("{} {}:{port}", b.container, b.address),
                format!(
                    "publishes port {port} on {}: reachable without the proxy and its access control (Docker's published ports skip the host firewall); bind it to 127.0.0.1 or remove it",
                    b.address
                ),
            ),
        };
        alert(Severity::Critical, "bypass", &subject, message)
    });
    let rec = BypassRecord {
        bypass: b.clone(),
        severity,
    };
    (rec, alert)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Redirect;
    use crate::tls::{CertInfo, VerifyFailure};

    fn policy() -> Policy {
        Policy {
            warn_days: 21.0,
            crit_days: 7.0,
            insecure: false,
            expect: Expect::default(),
        }
    }

    fn cert(cn: &str, sans: &[&str], not_after: i64) -> CertInfo {
        CertInfo {
            subject: format!("CN={cn}"),
            common_name: Some(cn.into()),
            issuer: "CN=CA".into(),
            sans: sans.iter().map(|s| s.to_string()).collect(),
            not_after,
        }
    }

    fn spec(host: &str) -> RouteSpec {
        let mut s = RouteSpec::new(host, Source::Flag);
        s.host = Some(host.into());
        s
    }

    fn good(now: f64, days: f64) -> Probe {
        Probe {
            chain: vec![cert("a.x", &["a.x"], (now + days * 86400.0) as i64)],
            verified: Some(Ok(())),
            name_ok: Some(true),
            status_code: Some(200),
            redirect: Some(Redirect {
                status_code: Some(301),
                location: Some("https://a.x/".into()),
                ok: true,
                error: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn healthy_route_is_up_and_ok() {
        let now = 1_800_000_000.0;
        let (r, a) = evaluate(&spec("a.x"), &good(now, 60.0), &policy(), now);
        assert!(r.up && a.is_empty(), "{a:?}");
        assert_eq!(r.severity, Severity::Ok);
        assert_eq!(r.cert_days_left, Some(60.0));
        assert_eq!(r.renewal_overdue, Some(false));
    }

    #[test]
    fn expiry_thresholds_and_renewal() {
        let now = 1_800_000_000.0;
        let (r, a) = evaluate(&spec("a.x"), &good(now, 20.0), &policy(), now);
        assert_eq!(r.severity, Severity::Warning);
        assert!(r.up, "a certificate near expiry still serves");
        assert!(a[0].message.contains("renewal is failing"), "{}", a[0].message);
        let (r, _) = evaluate(&spec("a.x"), &good(now, 5.0), &policy(), now);
        assert_eq!(r.severity, Severity::Critical);
        // An intermediate that expires first decides.
        let mut p = good(now, 60.0);
        p.chain
            .push(cert("Intermediate", &[], (now + 3.0 * 86400.0) as i64));
        let (r, a) = evaluate(&spec("a.x"), &p, &policy(), now);
        assert_eq!(r.cert_expiry_subject.as_deref(), Some("CN=Intermediate"));
        assert!(
            a[0].message.contains("Intermediate expires first"),
            "{}",
            a[0].message
        );
        assert_eq!(r.renewal_overdue, Some(false), "the leaf has 60 days");
        // An expired intermediate is not a failing renewal of the leaf.
        p.chain[1].not_after = (now - 2.0 * 86400.0) as i64;
        let (r, a) = evaluate(&spec("a.x"), &p, &policy(), now);
        assert_eq!(r.severity, Severity::Critical);
        assert!(
            a[0].message.contains("expired 2.0 days ago")
                && a[0]
                    .message
                    .contains("intermediate certificate that is out of date")
                && !a[0].message.contains("renewal is failing"),
            "{}",
            a[0].message
        );
    }

    #[test]
    fn a_name_rustls_rejects_is_down_and_critical() {
        let now = 1_800_000_000.0;
        // The SAN looks right to a loose match (`*.x` for `a.x`), rustls says no.
        let mut p = good(now, 60.0);
        p.chain = vec![cert("a.x", &["*.x"], (now + 60.0 * 86400.0) as i64)];
        p.verified = Some(Err(VerifyFailure {
            kind: FailureKind::WrongName,
            message: "certificate is not valid for this host name".into(),
        }));
        p.name_ok = Some(true); // even if the name check disagreed
        let (r, a) = evaluate(&spec("a.x"), &p, &policy(), now);
        assert!(!r.up);
        assert_eq!(r.name_matches, Some(false));
        assert_eq!(r.severity, Severity::Critical);
        assert!(a.iter().any(|a| a.severity == Severity::Critical), "{a:?}");
        // --insecure forgives an unknown issuer, not a wrong name.
        let mut pol = policy();
        pol.insecure = true;
        let (r, _) = evaluate(&spec("a.x"), &p, &pol, now);
        assert_eq!((r.up, r.severity), (false, Severity::Critical));
        // Nor a certificate that is not valid yet.
        let mut p = good(now, 60.0);
        p.verified = Some(Err(VerifyFailure {
            kind: FailureKind::NotValidYet,
            message: "certificate is not valid yet".into(),
        }));
        let (r, a) = evaluate(&spec("a.x"), &p, &pol, now);
        assert_eq!((r.up, r.severity), (false, Severity::Critical));
        assert!(a[0].message.contains("not valid yet"), "{a:?}");

        // No SAN at all: said so, not "(it names )".
        let mut p = good(now, 60.0);
        p.chain = vec![cert("a.x", &[], (now + 60.0 * 86400.0) as i64)];
        p.name_ok = Some(false);
        let (r, a) = evaluate(&spec("a.x"), &p, &policy(), now);
        assert_eq!(r.severity, Severity::Critical);
        assert!(
            a[0].message.contains("no subjectAltName") && !a[0].message.contains("names )"),
            "{}",
            a[0].message
        );
    }

    #[test]
    fn a_route_that_is_not_up_is_never_ok() {
        let now = 1_800_000_000.0;
        // Verification never ran (no verdict): not up, so critical.
        let mut p = good(now, 60.0);
        p.verified = None;
        let (r, a) = evaluate(&spec("a.x"), &p, &policy(), now);
        assert!(!r.up);
        assert_eq!(r.severity, Severity::Critical, "{a:?}");
    }

    #[test]
    fn failures_are_critical() {
        let now = 1_800_000_000.0;
        let mut p = good(now, 60.0);
        p.status_code = Some(502);
        let (r, _) = evaluate(&spec("a.x"), &p, &policy(), now);
        assert!(!r.up && r.severity == Severity::Critical && r.status_expected == Some(false));

        let mut p = good(now, 60.0);
        p.chain = vec![cert(
            TRAEFIK_DEFAULT_CN,
            &["abc.traefik.default"],
            (now + 300.0 * 86400.0) as i64,
        )];
        p.verified = Some(Err(VerifyFailure {
            kind: FailureKind::Other,
            message: "unknown issuer".into(),
        }));
        let (r, a) = evaluate(&spec("a.x"), &p, &policy(), now);
        assert_eq!(r.default_cert, Some(true));
        assert_eq!(a.len(), 1, "one finding, not three: {a:?}");
        assert!(!r.up);

        let mut p = good(now, 60.0);
        p.status_code = None;
        p.errors = vec!["connect 127.0.0.1:1: connection refused".into()];
        let (r, a) = evaluate(&spec("a.x"), &p, &policy(), now);
        assert!(a[0].message.contains("does not answer: connect"), "{a:?}");
        assert_eq!(r.severity, Severity::Critical);

        let mut p = good(now, 60.0);
        p.redirect = Some(Redirect {
            status_code: Some(200),
            error: Some("plain HTTP answers 200".into()),
            ..Default::default()
        });
        let (r, _) = evaluate(&spec("a.x"), &p, &policy(), now);
        assert_eq!(
            (r.severity, r.up, r.redirect_ok),
            (Severity::Warning, true, Some(false))
        );
    }
}
