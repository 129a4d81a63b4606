//! `--format text`: the routes, the back doors around the proxy, then the sources
//! that could not be read, as tables for a person; problems are marked in the
//! SEVERITY and PROBLEM columns.

use homelab_core::text::Table;
use homelab_core::{Alert, Severity};

use crate::Round;

/// The text view: routes, back doors, then findings.
pub fn tables(round: &Round) -> Vec<Table> {
    let mut routes = Table::new(&[
        "ROUTER", "HOST", "STATUS", "TLS", "DAYS", "REDIRECT", "SEVERITY", "PROBLEM",
    ]);
    for (r, problem) in round.routes.iter().zip(&round.route_problems) {
        let host = match (&r.server_name, r.path.as_str()) {
            (Some(h), "/") => h.clone(),
            (Some(h), p) => format!("{h}{p}"),
            (None, _) => "-".into(),
        };
        routes.row(
            [
                r.router.clone(),
                host,
                r.status_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                r.tls_version.clone().unwrap_or_else(|| "-".into()),
                r.cert_days_left
                    .map(|d| format!("{d:.1}"))
                    .unwrap_or_else(|| "-".into()),
                match r.redirect_ok {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "-".into(),
                },
                severity_word(r.severity).into(),
                problem.clone(),
            ]
            .map(|c: String| printable(&c)),
        );
    }
    let mut out = vec![routes];
    if !round.bypasses.is_empty() {
        let mut b = Table::new(&["CONTAINER", "ADDRESS", "PORT", "TO", "REASON", "SEVERITY"]);
        for rec in &round.bypasses {
            let x = &rec.bypass;
            b.row(
                [
                    x.container.clone(),
                    x.address.clone(),
                    x.port.map(|p| p.to_string()).unwrap_or_else(|| "*".into()),
                    x.container_port
                        .map(|p| format!("{p}/{}", x.protocol.as_deref().unwrap_or("tcp")))
                        .unwrap_or_else(|| "-".into()),
                    serde_json::to_value(x.reason)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    if x.allowed {
                        "allowed".into()
                    } else {
                        severity_word(rec.severity).into()
                    },
                ]
                .map(|c: String| printable(&c)),
            );
        }
        out.push(b);
    }
    let bad: Vec<&Alert> = round.alerts.iter().filter(|a| a.check == "source").collect();
    if !bad.is_empty() {
        let mut t = Table::new(&["SOURCE", "PROBLEM"]);
        for a in bad {
            t.row([printable(&a.subject), printable(&a.message)]);
        }
        out.push(t);
    }
    out
}

pub(crate) fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Ok => "ok",
        Severity::Warning => "warning",
        Severity::Critical => "CRITICAL",
    }
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
