//! Routes from Traefik's API: `/api/http/routers` and `/api/http/services`, page by
//! page (`per_page`, `page`, and the `X-Next-Page` header, which is `1` on the last
//! page). The JSON shapes are those of Traefik v3's `pkg/api` (routerRepresentation,
//! serviceRepresentation); unknown fields are ignored, missing ones are null.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::routes::{RouteSpec, Source};
use crate::rule;
use crate::tls::Tls;

/// More pages than this (of one list) is an API that never says "last page".
pub const MAX_PAGES: u32 = 1000;
/// A page larger than this is not Traefik's (100 routers take a few tens of KiB).
pub const MAX_PAGE_BYTES: u64 = 8 * 1024 * 1024;
/// All pages of both lists together, at most: memory stays bounded whatever the
/// API sends.
pub const MAX_TOTAL_BYTES: u64 = 16 * 1024 * 1024;
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
    /// The URL requests go to, without credentials (so it may be printed).
    base: String,
    agent: ureq::Agent,
    auth: Option<String>,
    /// One deadline for the whole exchange (every page of both lists).
    timeout: Duration,
}

/// A `--traefik-api` URL taken apart: scheme (lower case), credentials, the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiUrl {
    /// `scheme://host[:port][/path]` without credentials.
    pub base: String,
    /// `user:password` written in the URL, if any.
    pub userinfo: Option<String>,
}

/// Parses `http(s)://[user:password@]host[:port][/path]`; the scheme in any case.
pub fn parse_url(url: &str) -> Result<ApiUrl, String> {
    let url = url.trim();
    let (scheme, rest) = url
        .split_once("://")
        .map(|(s, r)| (s.to_ascii_lowercase(), r))
        .filter(|(s, _)| s == "http" || s == "https")
        .ok_or("give an http:// or https:// URL")?;
    if url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err("the URL has spaces or control characters".into());
    }
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_string()), h),
        None => (None, authority),
    };
    if hostport.is_empty() {
        return Err("the URL names no host".into());
    }
    let base = format!("{scheme}://{hostport}{path}");
    let base = base.trim_end_matches('/');
    let base = base.strip_suffix("/api").unwrap_or(base).to_string();
    Ok(ApiUrl { base, userinfo })
}

impl Client {
    /// `url` is where the API answers (`http://127.0.0.1:8080`), already parsed; a
    /// trailing `/api` is accepted. `auth` is `user:password` for basic
    /// authentication (from the auth file, else from the URL).
    pub fn new(url: &ApiUrl, tls: &Tls, insecure: bool, timeout: Duration, auth: Option<&str>) -> Client {
        use base64::Engine as _;
        use ureq::tls::{Certificate, RootCerts, TlsConfig};
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
        let auth = auth.or(url.userinfo.as_deref());
        Client {
            base: url.base.clone(),
            agent,
            auth: auth.map(|a| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(a))),
            timeout,
        }
    }

    /// The API's URL as it may be printed (without credentials).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Every item of a paginated list endpoint, e.g. `/api/http/routers`, decoded
    /// page by page. `deadline` and `budget` (bytes left) are shared by the whole
    /// exchange.
    fn list<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        what: &str,
        deadline: Instant,
        budget: &mut u64,
    ) -> Result<Vec<T>, String> {
        let mut items = Vec::new();
        let mut page = 1u32;
        loop {
            let url = format!("{}{path}?per_page={PER_PAGE}&page={page}", self.base);
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.late(&url));
            }
            let mut req = self.agent.get(&url).config().timeout_global(Some(left)).build();
            if let Some(a) = &self.auth {
                req = req.header("Authorization", a);
            }
            let mut resp = req.call().map_err(|e| match e {
                ureq::Error::Timeout(_) => self.late(&url),
                e => format!("GET {url}: {}", ureq_words(&e)),
            })?;
            let status = resp.status().as_u16();
            let next_header = resp
                .headers()
                .get("X-Next-Page")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string());
            let limit = MAX_PAGE_BYTES.min(*budget);
            let body = resp
                .body_mut()
                .with_config()
                .limit(limit)
                .read_to_string()
                .map_err(|e| match e {
                    ureq::Error::Timeout(_) => self.late(&url),
                    ureq::Error::BodyExceedsLimit(_) if limit < MAX_PAGE_BYTES => format!(
                        "GET {url}: the API's answers add up to more than {} MiB over {page} page(s) of {path}: not Traefik's API, or far more routers than a homelab has",
                        MAX_TOTAL_BYTES / (1024 * 1024)
                    ),
                    e => format!("GET {url}: reading the answer: {}", ureq_words(&e)),
                })?;
            *budget = budget.saturating_sub(body.len() as u64);
            if status == 401 || status == 403 {
                return Err(format!(
                    "GET {url}: HTTP {status}: the API wants credentials (--traefik-api-auth-file)"
                ));
            }
            if status != 200 {
                return Err(format!("GET {url}: HTTP {status}{}", snippet(&body)));
            }
            let page_items: Vec<T> = parse_page(&body, what).map_err(|e| format!("GET {url}: {e}"))?;
            drop(body);
            items.extend(page_items);
            match next_page(page, next_header.as_deref()).map_err(|e| format!("GET {url}: {e}"))? {
                Some(n) => page = n,
                None => break,
            }
            if page > MAX_PAGES {
                return Err(format!(
                    "GET {url}: more than {MAX_PAGES} pages; the API keeps saying there is a next page"
                ));
            }
        }
        Ok(items)
    }

    fn late(&self, url: &str) -> String {
        format!(
            "GET {url}: no answer before the timeout: every page must come within --timeout {}s in all",
            self.timeout.as_secs_f64()
        )
    }

    /// Routers and services, as routes to probe: every page of both lists within
    /// one `--timeout` and [`MAX_TOTAL_BYTES`].
    pub fn routes(&self) -> Result<Vec<RouteSpec>, String> {
        let deadline = Instant::now() + self.timeout;
        let mut budget = MAX_TOTAL_BYTES;
        let routers: Vec<ApiRouter> = self.list("/api/http/routers", "router", deadline, &mut budget)?;
        let services: Vec<ApiService> = self.list("/api/http/services", "service", deadline, &mut budget)?;
        Ok(routes_from(&routers, &services))
    }
}

/// The page after `page`, from the `X-Next-Page` header: Traefik sends `page + 1`,
/// or `1` on the last page; no header means the last page.
pub fn next_page(page: u32, header: Option<&str>) -> Result<Option<u32>, String> {
    let Some(h) = header else { return Ok(None) };
    let shown: String = h.chars().take(40).filter(|c| !c.is_control()).collect();
    match h.parse::<u64>() {
        Ok(1) => Ok(None),
        Ok(n) if n == u64::from(page) + 1 => Ok(Some(page + 1)),
        Ok(n) if n <= u64::from(page) => Ok(None),
        _ => Err(format!(
            "X-Next-Page {shown:?} after page {page}: Traefik counts pages one by one (not Traefik's API?)"
        )),
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

/// A page of a list endpoint: a JSON array of `what`s (routers or services).
pub fn parse_page<T: for<'de> Deserialize<'de>>(body: &str, what: &str) -> Result<Vec<T>, String> {
    match serde_json::from_str::<Vec<T>>(body) {
        Ok(a) => Ok(a),
        Err(e) => {
            let trimmed = body.trim_start();
            if trimmed.starts_with('[') {
                Err(format!(
                    "not Traefik's API: a {what} is not what Traefik sends ({e})"
                ))
            } else if trimmed.starts_with('{') {
                Err("not Traefik's API: expected a JSON array".into())
            } else {
                Err(format!(
                    "not Traefik's API: the answer is not JSON ({e}){}",
                    snippet(body)
                ))
            }
        }
    }
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
                if a.notes.is_empty() {
                    r.errors.push("the rule matches no host".into());
                }
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
        assert_eq!(parse_page::<ApiRouter>("[]", "router").unwrap().len(), 0);
        assert!(
            parse_page::<ApiRouter>("{}", "router")
                .unwrap_err()
                .contains("expected a JSON array")
        );
        assert!(
            parse_page::<ApiRouter>("<html>404 page not found</html>", "router")
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(parse_page::<ApiRouter>(r#"[{"name":"a","rule":5}]"#, "router").is_err());
    }

    #[test]
    fn next_pages_count_one_by_one() {
        assert_eq!(next_page(1, Some("2")), Ok(Some(2)));
        assert_eq!(next_page(3, Some("1")), Ok(None));
        assert_eq!(next_page(3, None), Ok(None));
        let e = next_page(1, Some("4294967295")).unwrap_err();
        assert!(e.contains("\"4294967295\" after page 1"), "{e}");
        assert!(next_page(1, Some("x")).is_err());
    }

    #[test]
    fn api_urls_keep_credentials_apart() {
        let u = parse_url("HTTPS://user:secret@traefik.lan:8443/api/").unwrap();
        assert_eq!(u.base, "https://traefik.lan:8443");
        assert_eq!(u.userinfo.as_deref(), Some("user:secret"));
        assert_eq!(
            parse_url("http://127.0.0.1:8080").unwrap().base,
            "http://127.0.0.1:8080"
        );
        for bad in ["ftp://x", "127.0.0.1:8080", "http://", "http://a b"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
