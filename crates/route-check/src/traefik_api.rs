//! Routes from Traefik's API: `/api/http/routers` and `/api/http/services`, page by
//! page (`per_page`, `page`, and the `X-Next-Page` header, which is `1` on the last
//! page). The JSON shapes are those of Traefik v3's `pkg/api` (routerRepresentation,
//! serviceRepresentation); unknown fields are ignored, missing ones are null.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use crate::routes::{RouteSpec, Source};
use crate::rule;
use crate::tls::Tls;

/// More pages than this is an API that never says "last page".
pub const MAX_PAGES: u32 = 1000;
/// A page larger than this is not Traefik's.
pub const MAX_PAGE_BYTES: u64 = 16 * 1024 * 1024;
const PER_PAGE: u32 = 100;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiRouter {
    pub name: String,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub entry_points: Option<Vec<String>>,
    #[serde(default)]
    pub tls: Option<serde_json::Value>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub error: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiService {
    pub name: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub server_status: Option<HashMap<String, String>>,
}

/// How to reach the API.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
    auth: Option<String>,
}

impl Client {
    /// `url` is where the API answers (`http://127.0.0.1:8080`); a trailing `/api`
    /// is accepted. `auth` is `user:password` for basic authentication.
    pub fn new(url: &str, tls: &Tls, insecure: bool, timeout: Duration, auth: Option<&str>) -> Client {
        use base64::Engine as _;
        use ureq::tls::{Certificate, RootCerts, TlsConfig};
        let base = url.trim_end_matches('/');
        let base = base.strip_suffix("/api").unwrap_or(base).to_string();
        let roots: Vec<Certificate<'static>> = tls
            .roots
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        let tls_config = TlsConfig::builder()
            .root_certs(RootCerts::Specific(std::sync::Arc::new(roots)))
            .disable_verification(insecure)
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("route-check/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls_config)
            .build()
            .into();
        Client {
            base,
            agent,
            auth: auth.map(|a| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(a))),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Every item of a paginated list endpoint, e.g. `/api/http/routers`.
    pub fn list(&self, path: &str) -> Result<Vec<serde_json::Value>, String> {
        let mut items = Vec::new();
        let mut page = 1u32;
        loop {
            let url = format!("{}{path}?per_page={PER_PAGE}&page={page}", self.base);
            let mut req = self.agent.get(&url);
            if let Some(a) = &self.auth {
                req = req.header("Authorization", a);
            }
            let mut resp = req.call().map_err(|e| format!("GET {url}: {}", ureq_words(&e)))?;
            let status = resp.status().as_u16();
            let next = resp
                .headers()
                .get("X-Next-Page")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u32>().ok());
            let body = resp
                .body_mut()
                .with_config()
                .limit(MAX_PAGE_BYTES)
                .read_to_string()
                .map_err(|e| format!("GET {url}: reading the answer: {}", ureq_words(&e)))?;
            if status == 401 || status == 403 {
                return Err(format!(
                    "GET {url}: HTTP {status}: the API wants credentials (--traefik-api-auth-file)"
                ));
            }
            if status != 200 {
                return Err(format!("GET {url}: HTTP {status}{}", snippet(&body)));
            }
            let page_items = parse_list(&body).map_err(|e| format!("GET {url}: {e}"))?;
            items.extend(page_items);
            match next {
                Some(n) if n > page => page = n,
                _ => break,
            }
            if page > MAX_PAGES {
                return Err(format!(
                    "GET {url}: more than {MAX_PAGES} pages; the API keeps saying there is a next page"
                ));
            }
        }
        Ok(items)
    }

    /// Routers and services, as routes to probe.
    pub fn routes(&self) -> Result<Vec<RouteSpec>, String> {
        let routers = self.list("/api/http/routers")?;
        let services = self.list("/api/http/services")?;
        let routers = decode::<ApiRouter>(routers, "router")
            .map_err(|e| format!("GET {}/api/http/routers: {e}", self.base))?;
        let services = decode::<ApiService>(services, "service")
            .map_err(|e| format!("GET {}/api/http/services: {e}", self.base))?;
        Ok(routes_from(&routers, &services))
    }
}

fn ureq_words(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "no answer before the timeout".into(),
        ureq::Error::Io(io) => crate::http::io_words(io),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::BodyExceedsLimit(n) => format!("the answer is larger than {n} bytes"),
        other => other.to_string(),
    }
}

fn snippet(body: &str) -> String {
    let s: String = body.chars().take(80).filter(|c| !c.is_control()).collect();
    if s.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", s.trim())
    }
}

/// A page of a list endpoint: a JSON array.
pub fn parse_list(body: &str) -> Result<Vec<serde_json::Value>, String> {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(a)) => Ok(a),
        Ok(_) => Err("not Traefik's API: expected a JSON array".into()),
        Err(e) => Err(format!(
            "not Traefik's API: the answer is not JSON ({e}){}",
            snippet(body)
        )),
    }
}

fn decode<T: for<'de> Deserialize<'de>>(items: Vec<serde_json::Value>, what: &str) -> Result<Vec<T>, String> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| serde_json::from_value(v).map_err(|e| format!("not Traefik's API: {what} {i}: {e}")))
        .collect()
}

/// `name@provider` for a service name as a router gives it (often bare).
fn qualify(service: &str, provider: Option<&str>) -> String {
    match (service.contains('@'), provider) {
        (false, Some(p)) => format!("{service}@{p}"),
        _ => service.to_string(),
    }
}

/// Routes to probe from the API's routers and services. Traefik's own routers
/// (`@internal`) are skipped.
pub fn routes_from(routers: &[ApiRouter], services: &[ApiService]) -> Vec<RouteSpec> {
    let services: HashMap<&str, &ApiService> = services.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut out = Vec::new();
    for r in routers {
        let provider = r
            .provider
            .clone()
            .or_else(|| r.name.split_once('@').map(|(_, p)| p.to_string()));
        if provider.as_deref() == Some("internal") {
            continue;
        }
        let mut base = RouteSpec::new(&r.name, Source::TraefikApi);
        base.rule = r.rule.clone();
        base.entry_points = r.entry_points.clone().unwrap_or_default();
        base.router_tls = Some(r.tls.is_some());
        base.router_status = r.status.clone();
        base.service = r.service.as_deref().map(|s| qualify(s, provider.as_deref()));
        if let Some(svc) = base.service.as_deref().and_then(|s| services.get(s)) {
            base.service_status = svc.status.clone();
            let mut down: Vec<String> = svc
                .server_status
                .iter()
                .flatten()
                .filter(|(_, st)| !st.eq_ignore_ascii_case("UP"))
                .map(|(url, _)| url.clone())
                .collect();
            down.sort();
            base.servers_down = down;
        }
        let errors = r.error.clone().unwrap_or_default();
        match r.status.as_deref() {
            Some("disabled") => {
                base.broken = true;
                base.errors.push("Traefik disabled this router".into());
                base.errors.extend(errors.iter().map(|e| format!("Traefik: {e}")));
                out.push(base);
                continue;
            }
            _ => base.errors.extend(errors.iter().map(|e| format!("Traefik: {e}"))),
        }
        if r.tls.is_none() {
            base.errors.push(
                "router has no TLS: Traefik serves it over plain HTTP only (add tls or a certResolver)"
                    .into(),
            );
        }
        out.extend(expand(base));
    }
    out
}

/// One route per host the router's rule names; a router whose rule names none (or
/// does not parse) is kept as one route without a host, with the reason.
pub fn expand(base: RouteSpec) -> Vec<RouteSpec> {
    let Some(text) = base.rule.clone() else {
        let mut r = base;
        r.errors.push("router has no rule".into());
        r.broken = true;
        return vec![r];
    };
    match rule::parse(&text) {
        Err(e) => {
            let mut r = base;
            r.errors.push(format!("rule does not parse: {e}"));
            r.broken = true;
            vec![r]
        }
        Ok(parsed) => {
            let a = rule::analyse(&parsed);
            if a.targets.is_empty() {
                let mut r = base;
                r.errors.extend(a.notes);
                return vec![r];
            }
            a.targets
                .into_iter()
                .map(|t| {
                    let mut r = base.clone();
                    r.host = Some(t.host);
                    r.path = t.path;
                    r.errors.extend(a.notes.iter().cloned());
                    r
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(json: &str) -> ApiRouter {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn routers_become_routes() {
        let routers = vec![
            router(
                r#"{"entryPoints":["websecure"],"service":"ollama-homelab","rule":"Host(`ollama.example.com`) || Host(`llm.example.com`)",
                    "tls":{"options":"default","certResolver":"le"},"status":"enabled","using":["websecure"],
                    "name":"ollama-homelab@docker","provider":"docker","priorityStr":"0"}"#,
            ),
            router(
                r#"{"entryPoints":["traefik"],"service":"api@internal","rule":"PathPrefix(`/api`)","status":"enabled","name":"api@internal","provider":"internal"}"#,
            ),
            router(
                r#"{"rule":"Host(`a.x`","name":"broken@file","provider":"file","status":"enabled","tls":{}}"#,
            ),
            router(
                r#"{"rule":"Host(`b.x`)","name":"off@docker","provider":"docker","status":"disabled","error":["the service \"x@docker\" does not exist"]}"#,
            ),
            router(r#"{"rule":"Host(`plain.x`)","name":"plain@file","status":"enabled"}"#),
        ];
        let services = vec![
            serde_json::from_str::<ApiService>(
                r#"{"loadBalancer":{"passHostHeader":true,"servers":[{"url":"http://172.18.0.5:11434"},{"url":"http://172.18.0.6:11434"}]},
                    "name":"ollama-homelab@docker","provider":"docker","type":"loadbalancer","status":"enabled","usedBy":["ollama-homelab@docker"],
                    "serverStatus":{"http://172.18.0.5:11434":"UP","http://172.18.0.6:11434":"DOWN"}}"#,
            )
            .unwrap(),
        ];
        let rs = routes_from(&routers, &services);
        let names: Vec<(&str, Option<&str>)> = rs
            .iter()
            .map(|r| (r.router.as_str(), r.host.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                ("ollama-homelab@docker", Some("ollama.example.com")),
                ("ollama-homelab@docker", Some("llm.example.com")),
                ("broken@file", None),
                ("off@docker", None),
                ("plain@file", Some("plain.x")),
            ]
        );
        assert_eq!(rs[0].service.as_deref(), Some("ollama-homelab@docker"));
        assert_eq!(rs[0].servers_down, ["http://172.18.0.6:11434"]);
        assert_eq!(rs[0].router_tls, Some(true));
        assert!(rs[0].errors.is_empty());
        assert!(
            rs[2].broken && rs[2].errors[0].starts_with("rule does not parse"),
            "{:?}",
            rs[2].errors
        );
        assert!(
            rs[3].broken && rs[3].errors[1].contains("does not exist"),
            "{:?}",
            rs[3].errors
        );
        assert!(
            !rs[4].broken && rs[4].errors[0].contains("no TLS"),
            "{:?}",
            rs[4].errors
        );
    }

    #[test]
    fn pages_must_be_json_arrays() {
        assert_eq!(parse_list("[]").unwrap().len(), 0);
        assert!(parse_list("{}").unwrap_err().contains("expected a JSON array"));
        assert!(
            parse_list("<html>404 page not found</html>")
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(decode::<ApiRouter>(vec![serde_json::json!({"rule": 5})], "router").is_err());
    }
}
