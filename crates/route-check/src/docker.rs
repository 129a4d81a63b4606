//! The Docker source: containers read through the Docker API (homelab-core's
//! [`Getter`]: every answer size-capped and the whole exchange under one deadline;
//! unversioned paths, so any engine answers in its own API version). From each container come its
//! routers (the `traefik.*` labels, with Traefik's defaults for missing names) and
//! its back doors (ports published on a non-loopback address, host networking).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use homelab_core::docker::{Getter, MAX_RESPONSE_BYTES};

use crate::routes::{RouteSpec, Source};
use crate::traefik_api::expand;

/// One port a container publishes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Published {
    /// Host address as Docker reports it; an empty binding is `0.0.0.0`.
    pub address: String,
    /// Host port; `None` when Docker picks one at start.
    pub port: Option<u16>,
    pub container_port: Option<u16>,
    pub protocol: String,
}

/// What route-check needs of a container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub network_mode: Option<String>,
    pub published: Vec<Published>,
    pub publish_all_ports: bool,
}

/// Why a container is a way around the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BypassReason {
    Published,
    HostNetwork,
    PublishAllPorts,
}

/// A back door, as the `kind: bypass` record shows it (with its severity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bypass {
    pub container: String,
    pub container_id: String,
    pub image: String,
    pub reason: BypassReason,
    pub address: String,
    pub port: Option<u16>,
    pub container_port: Option<u16>,
    pub protocol: Option<String>,
    pub allowed: bool,
}

/// An exception given with `--allow-publish CONTAINER[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    pub container: String,
    pub port: Option<u16>,
}

pub fn parse_allow(s: &str) -> Result<Allow, String> {
    match s.rsplit_once(':') {
        Some((c, p)) => Ok(Allow {
            container: c.to_string(),
            port: Some(
                p.parse()
                    .map_err(|_| format!("{p:?} is not a port (CONTAINER[:PORT])"))?,
            ),
        }),
        None if !s.is_empty() => Ok(Allow {
            container: s.to_string(),
            port: None,
        }),
        None => Err("give CONTAINER or CONTAINER:PORT".into()),
    }
}

fn is_loopback(address: &str) -> bool {
    address.parse::<IpAddr>().is_ok_and(|a| a.is_loopback())
}

/// The back doors of one container: host networking, and every port published on
/// an address that is not loopback, except the proxy's own ports.
pub fn bypasses(c: &ContainerInfo, proxy_ports: &[u16], allow: &[Allow]) -> Vec<Bypass> {
    let allowed = |port: Option<u16>| {
        allow.iter().any(|a| {
            (a.container == c.name || c.id.starts_with(&a.container)) && (a.port.is_none() || a.port == port)
        })
    };
    let base = |reason, address: &str, port, container_port, protocol: Option<String>| Bypass {
        container: c.name.clone(),
        container_id: c.id.chars().take(12).collect(),
        image: c.image.clone(),
        reason,
        address: address.to_string(),
        port,
        container_port,
        protocol,
        allowed: allowed(port),
    };
    let mut out = Vec::new();
    if c.network_mode.as_deref() == Some("host") {
        out.push(base(BypassReason::HostNetwork, "host", None, None, None));
        return out; // published ports are meaningless with host networking
    }
    for p in &c.published {
        if is_loopback(&p.address) || p.port.is_some_and(|port| proxy_ports.contains(&port)) {
            continue;
        }
        out.push(base(
            BypassReason::Published,
            &p.address,
            p.port,
            p.container_port,
            Some(p.protocol.clone()),
        ));
    }
    if c.publish_all_ports && out.is_empty() && c.published.is_empty() {
        out.push(base(BypassReason::PublishAllPorts, "0.0.0.0", None, None, None));
    }
    out
}

/// Traefik's `provider.Normalize`: every run of characters that are not letters or
/// digits becomes one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut dash = false;
    for ch in name.chars() {
        if ch.is_alphanumeric() {
            out.push(ch);
            dash = false;
        } else if !dash {
            out.push('-');
            dash = true;
        }
    }
    out
}

/// The default service (and router) name: `<service>_<project>` for a compose
/// container, else the container name; normalized.
pub fn default_name(c: &ContainerInfo) -> String {
    match (
        c.labels.get("com.docker.compose.service"),
        c.labels.get("com.docker.compose.project"),
    ) {
        (Some(s), Some(p)) => normalize(&format!("{s}_{p}")),
        _ => normalize(&c.name),
    }
}

fn label_ci<'a>(labels: &'a BTreeMap<String, String>, key: &str) -> Option<&'a String> {
    labels
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// Routers of one container as Traefik's Docker provider builds them from labels.
/// `exposed_by_default` is the provider's `exposedByDefault` (false in our stack).
pub fn routes(c: &ContainerInfo, exposed_by_default: bool) -> Vec<RouteSpec> {
    let enabled = match label_ci(&c.labels, "traefik.enable").map(|v| v.trim().to_ascii_lowercase()) {
        Some(v) if v == "true" => true,
        Some(v) if v == "false" => false,
        _ => exposed_by_default,
    };
    if !enabled {
        return Vec::new();
    }
    // traefik.http.routers.<name>.<property> (case-insensitive keys, names as written)
    let mut routers: BTreeMap<String, HashMap<String, String>> = BTreeMap::new();
    let mut services: BTreeSet<String> = BTreeSet::new();
    for (k, v) in &c.labels {
        let lower = k.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("traefik.http.routers.") {
            let offset = k.len() - rest.len();
            if let Some((name_len, prop)) = rest.split_once('.').map(|(n, p)| (n.len(), p)) {
                let name = &k[offset..offset + name_len];
                routers
                    .entry(name.to_string())
                    .or_default()
                    .insert(prop.to_string(), v.clone());
            }
        } else if let Some(rest) = lower.strip_prefix("traefik.http.services.") {
            let offset = k.len() - rest.len();
            if let Some(n) = rest.split('.').next() {
                services.insert(k[offset..offset + n.len()].to_string());
            }
        }
    }
    let default = default_name(c);
    if routers.is_empty() {
        if services.len() > 1 {
            let mut r = RouteSpec::new(format!("{default}@docker"), Source::Docker);
            r.errors.push(format!(
                "container {} defines {} services and no router: Traefik creates no router for it",
                c.name,
                services.len()
            ));
            r.broken = true;
            return vec![r];
        }
        routers.insert(default.clone(), HashMap::new());
    }
    let mut out = Vec::new();
    for (name, props) in routers {
        let mut r = RouteSpec::new(format!("{name}@docker"), Source::Docker);
        r.entry_points = props
            .get("entrypoints")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        r.router_tls = Some(
            props
                .get("tls")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
                || props.keys().any(|k| k.starts_with("tls.")),
        );
        r.service = match props.get("service") {
            Some(s) => Some(format!("{s}@docker")),
            None if services.len() <= 1 => Some(format!(
                "{}@docker",
                services.iter().next().cloned().unwrap_or_else(|| default.clone())
            )),
            None => {
                r.errors.push(format!(
                    "router {name} names no service and container {} defines {}: Traefik drops the router",
                    c.name,
                    services.len()
                ));
                r.broken = true;
                out.push(r);
                continue;
            }
        };
        r.rule = Some(match props.get("rule") {
            Some(rule) => rule.clone(),
            None => {
                r.errors.push(format!(
                    "router {name} has no rule label: Traefik's defaultRule makes it Host(`{default}`), rarely a real DNS name"
                ));
                format!("Host(`{default}`)")
            }
        });
        out.extend(expand(r));
    }
    out
}

/// The parts of `GET /containers/json` route-check reads (unknown fields are
/// skipped, missing ones are empty).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Summary {
    id: Option<String>,
    names: Option<Vec<String>>,
    image: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    ports: Option<Vec<SummaryPort>>,
    host_config: Option<SummaryHostConfig>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct SummaryPort {
    #[serde(rename = "IP")]
    ip: Option<String>,
    private_port: Option<u16>,
    public_port: Option<u16>,
    #[serde(rename = "Type")]
    typ: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct SummaryHostConfig {
    network_mode: Option<String>,
}

/// The parts of `GET /containers/{id}/json` route-check reads.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Inspect {
    host_config: Option<InspectHostConfig>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct InspectHostConfig {
    network_mode: Option<String>,
    publish_all_ports: Option<bool>,
    port_bindings: Option<HashMap<String, Option<Vec<Binding>>>>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Binding {
    host_ip: Option<String>,
    host_port: Option<String>,
}

/// Reads the running containers that match `filters` through the Docker API, the
/// whole exchange (the list, then one inspect per container) within `timeout`, and
/// each answer at most [`MAX_RESPONSE_BYTES`].
pub fn list(
    host: &str,
    filters: &[(String, String)],
    timeout: Duration,
) -> Result<Vec<ContainerInfo>, String> {
    let engine = Getter::new(host, timeout, MAX_RESPONSE_BYTES).map_err(|e| e.to_string())?;
    let host = engine.host().to_string();
    let mut f: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in filters {
        f.entry(k.as_str()).or_default().push(v.as_str());
    }
    let mut path = "/containers/json".to_string();
    if !f.is_empty() {
        let json = serde_json::to_string(&f).map_err(|e| format!("encoding the filters: {e}"))?;
        path.push_str(&format!("?filters={}", encode(&json)));
    }
    let (status, body) = engine
        .get(&path, "listing containers")
        .map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!(
            "Docker at {host}: GET /containers/json: HTTP {status}: {}",
            error_message(&body)
        ));
    }
    let summaries: Vec<Summary> = serde_json::from_slice(&body)
        .map_err(|e| format!("Docker at {host}: GET /containers/json: not the Docker API's answer ({e})"))?;
    drop(body);
    let mut out = Vec::new();
    for s in summaries {
        let Some(id) = s.id.clone().filter(|i| !i.is_empty()) else {
            continue;
        };
        let mut c = ContainerInfo {
            id: id.clone(),
            name: s
                .names
                .as_ref()
                .and_then(|n| n.first())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_else(|| id.chars().take(12).collect()),
            image: s.image.clone().unwrap_or_default(),
            labels: s.labels.clone().unwrap_or_default(),
            network_mode: s.host_config.as_ref().and_then(|h| h.network_mode.clone()),
            ..Default::default()
        };
        for p in s.ports.iter().flatten() {
            if let Some(public) = p.public_port {
                c.published.push(Published {
                    address: p
                        .ip
                        .clone()
                        .filter(|a| !a.is_empty())
                        .unwrap_or_else(|| "0.0.0.0".into()),
                    port: Some(public),
                    container_port: p.private_port,
                    protocol: p
                        .typ
                        .clone()
                        .filter(|t| !t.is_empty())
                        .unwrap_or_else(|| "tcp".into()),
                });
            }
        }
        // The configured bindings: what the engine publishes (or will on a restart),
        // also when the list shows nothing (a container that cannot bind them now).
        let inspect_path = format!("/containers/{}/json", encode(&id));
        let (status, body) = engine
            .get(&inspect_path, &format!("inspecting {}", c.name))
            .map_err(|e| e.to_string())?;
        match status {
            200 => {}
            // Gone between the list and the inspect: nothing to report.
            404 => continue,
            _ => {
                return Err(format!(
                    "Docker at {host}: GET /containers/{}/json: HTTP {status}: {}",
                    c.name,
                    error_message(&body)
                ));
            }
        }
        let info: Inspect = serde_json::from_slice(&body).map_err(|e| {
            format!(
                "Docker at {host}: GET /containers/{}/json: not the Docker API's answer ({e})",
                c.name
            )
        })?;
        if let Some(hc) = info.host_config {
            if c.network_mode.is_none() {
                c.network_mode = hc.network_mode.clone();
            }
            c.publish_all_ports = hc.publish_all_ports.unwrap_or(false);
            for (spec, bindings) in hc.port_bindings.into_iter().flatten() {
                let (cport, proto) = spec.split_once('/').unwrap_or((spec.as_str(), "tcp"));
                for b in bindings.into_iter().flatten() {
                    let address = b
                        .host_ip
                        .filter(|a| !a.is_empty())
                        .unwrap_or_else(|| "0.0.0.0".into());
                    let port = b.host_port.as_deref().and_then(|p| p.parse().ok());
                    let cport = cport.parse().ok();
                    let known = c.published.iter().any(|p| {
                        p.container_port == cport && p.protocol == proto && (p.port == port || port.is_none())
                    });
                    if !known {
                        c.published.push(Published {
                            address,
                            port,
                            container_port: cport,
                            protocol: proto.to_string(),
                        });
                    }
                }
            }
        }
        c.published.sort();
        c.published.dedup();
        out.push(c);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Percent-encodes a query value or path segment (everything but unreserved bytes).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `message` of an engine's error answer, or the start of the body.
pub fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Msg {
        message: String,
    }
    match serde_json::from_slice::<Msg>(body) {
        Ok(m) => m.message.chars().filter(|c| !c.is_control()).take(200).collect(),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)])
            .chars()
            .filter(|c| !c.is_control())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str, labels: &[(&str, &str)]) -> ContainerInfo {
        ContainerInfo {
            id: "0123456789abcdef".into(),
            name: name.into(),
            image: "img".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn encoding() {
        assert_eq!(
            encode("{\"label\":[\"a=b\"]}"),
            "%7B%22label%22%3A%5B%22a%3Db%22%5D%7D"
        );
        assert_eq!(
            error_message(br#"{"message":"No such container: x"}"#),
            "No such container: x"
        );
    }

    #[test]
    fn labels_become_routers_with_traefiks_defaults() {
        let c = container(
            "grafana",
            &[
                ("traefik.enable", "true"),
                ("traefik.http.routers.grafana.rule", "Host(`grafana.example.com`)"),
                ("traefik.http.routers.grafana.entrypoints", "websecure"),
                ("traefik.http.routers.grafana.tls.certresolver", "le"),
                ("traefik.http.services.grafana.loadbalancer.server.port", "3000"),
            ],
        );
        let rs = routes(&c, false);
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].router, "grafana@docker");
        assert_eq!(rs[0].host.as_deref(), Some("grafana.example.com"));
        assert_eq!(rs[0].service.as_deref(), Some("grafana@docker"));
        assert_eq!(rs[0].router_tls, Some(true));
        assert_eq!(rs[0].entry_points, ["websecure"]);

        // Not enabled, with exposedByDefault=false: ignored.
        let mut off = c.clone();
        off.labels.remove("traefik.enable");
        assert!(routes(&off, false).is_empty());
        assert_eq!(routes(&off, true).len(), 1);

        // No router labels: the default router, named after the compose service.
        let c = container(
            "homelab-ollama-1",
            &[
                ("traefik.enable", "TRUE"),
                ("com.docker.compose.service", "ollama"),
                ("com.docker.compose.project", "homelab"),
            ],
        );
        let rs = routes(&c, false);
        assert_eq!(rs[0].router, "ollama-homelab@docker");
        assert_eq!(rs[0].host.as_deref(), Some("ollama-homelab"));
        assert!(rs[0].errors[0].contains("defaultRule"), "{:?}", rs[0].errors);
    }

    #[test]
    fn broken_labels_are_reported() {
        let c = container(
            "n8n",
            &[
                ("traefik.enable", "true"),
                ("Traefik.HTTP.Routers.N8n.Rule", "Host(`n8n.x`) &&"),
            ],
        );
        let rs = routes(&c, false);
        assert_eq!(rs[0].router, "N8n@docker");
        assert!(
            rs[0].broken && rs[0].errors[0].contains("does not parse"),
            "{:?}",
            rs[0].errors
        );

        let c = container(
            "two",
            &[
                ("traefik.enable", "true"),
                ("traefik.http.services.a.loadbalancer.server.port", "1"),
                ("traefik.http.services.b.loadbalancer.server.port", "2"),
            ],
        );
        assert!(routes(&c, false)[0].errors[0].contains("2 services and no router"));
    }

    #[test]
    fn back_doors() {
        let mut c = container("ollama", &[]);
        let p = |a: &str, port: u16| Published {
            address: a.into(),
            port: Some(port),
            container_port: Some(port),
            protocol: "tcp".into(),
        };
        c.published = vec![
            p("0.0.0.0", 11434),
            p("::", 11434),
            p("127.0.0.1", 9090),
            p("0.0.0.0", 443),
            p("::1", 5678),
        ];
        let b = bypasses(&c, &[80, 443], &[]);
        let seen: Vec<(&str, Option<u16>)> = b.iter().map(|b| (b.address.as_str(), b.port)).collect();
        assert_eq!(seen, [("0.0.0.0", Some(11434)), ("::", Some(11434))]);
        assert!(
            b.iter()
                .all(|b| !b.allowed && b.reason == BypassReason::Published)
        );
        let b = bypasses(&c, &[80, 443], &[parse_allow("ollama:11434").unwrap()]);
        assert!(b.iter().all(|b| b.allowed));

        c.network_mode = Some("host".into());
        let b = bypasses(&c, &[80, 443], &[]);
        assert_eq!(b.len(), 1);
        assert_eq!(
            (b[0].reason, b[0].address.as_str(), b[0].port),
            (BypassReason::HostNetwork, "host", None)
        );
    }

    #[test]
    fn names_normalize_like_traefik() {
        assert_eq!(normalize("ollama_homelab"), "ollama-homelab");
        assert_eq!(normalize("a..b__c"), "a-b-c");
        assert!(parse_allow("x:notaport").is_err());
    }
}
