//! The Prometheus page. The names are pinned and follow blackbox_exporter's
//! (`probe_*` becomes `route_*`), so its dashboards and alert rules translate.
//! A value that was not measured is left out, never written as 0.

use homelab_core::Page;

use crate::report::{BypassRecord, RouteRecord, SummaryRecord};

pub fn page(routes: &[RouteRecord], bypasses: &[BypassRecord], summary: &SummaryRecord, now: f64) -> Page {
    let mut p = Page::new();
    for r in routes {
        let host = r.server_name.as_deref().unwrap_or("");
        let labels = [("router", r.router.as_str()), ("host", host)];
        p.gauge(
            "route_up",
            "1 when the route answered over verified TLS with an expected status, with a certificate for its host that is not Traefik's default.",
        )
        .sample(&labels, f64::from(u8::from(r.up)));
        p.gauge(
            "route_http_status_code",
            "HTTP status code of the route's answer (absent when there was none).",
        )
        .maybe(&labels, r.status_code.map(f64::from));
        for (phase, v) in [
            ("resolve", r.resolve_seconds),
            ("connect", r.connect_seconds),
            ("tls", r.tls_seconds),
            ("request", r.request_seconds),
        ] {
            p.gauge(
                "route_duration_seconds",
                "Duration of each completed phase of the probe (resolve, connect, tls, request) in seconds.",
            )
            .maybe(&[labels[0], labels[1], ("phase", phase)], v);
        }
        p.gauge(
            "route_tls_cert_expiry_timestamp_seconds",
            "Earliest notAfter over the whole chain the server sent (leaf and intermediates), Unix seconds.",
        )
        .maybe(&labels, r.cert_expiry_timestamp_seconds.map(|t| t as f64));
        if let Some(v) = &r.tls_version {
            p.gauge(
                "route_tls_version_info",
                "TLS version negotiated with the route (TLS 1.2, TLS 1.3); always 1.",
            )
            .sample(&[labels[0], labels[1], ("version", v)], 1.0);
        }
        p.gauge(
            "route_redirect_ok",
            "1 when plain HTTP on port 80 redirects to HTTPS on the same host.",
        )
        .maybe(&labels, r.redirect_ok.map(|ok| f64::from(u8::from(ok))));
    }
    let mut seen = std::collections::HashSet::new();
    for b in bypasses.iter().map(|r| &r.bypass).filter(|b| !b.allowed) {
        let port = b.port.map(|p| p.to_string()).unwrap_or_else(|| "*".into());
        // The same port over TCP and UDP is one series: the labels have no protocol.
        if !seen.insert((b.container.clone(), b.address.clone(), port.clone())) {
            continue;
        }
        p.gauge(
            "route_bypass",
            "1 for each way around the proxy: a container port published on a non-loopback address, or host networking (address=\"host\", port=\"*\").",
        )
        .sample(
            &[("container", b.container.as_str()), ("address", &b.address), ("port", &port)],
            1.0,
        );
    }
    for s in &summary.sources {
        p.gauge(
            "route_source_up",
            "1 when the source of routes (traefik-api, docker, file, flag) could be read this run.",
        )
        .sample(&[("source", s.source.as_str())], f64::from(u8::from(s.ok)));
    }
    p.gauge(
        "route_last_run_timestamp_seconds",
        "Unix time of route-check's last run.",
    )
    .sample(&[], now);
    p
}
