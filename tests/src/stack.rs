//! The compose stack's files (scripts/stack/) as the tests read them: the resolved
//! compose file, the Grafana dashboards and their queries with Grafana's variables
//! expanded, and small parsers for the formats compose uses (sizes, CPU lists, ports).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

use crate::workspace;

pub fn stack_dir() -> PathBuf {
    workspace().join("scripts/stack")
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn yaml_file(path: &Path) -> Yaml {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `docker-compose config` (Debian's docker-compose) on the stack's compose file with
/// the variables of `env_file` (an empty file: the defaults): validates the file and
/// returns it resolved. Panics with docker-compose's complaint when it is invalid.
pub fn compose_config(env_file: &Path) -> Yaml {
    compose_config_of(&stack_dir(), &["docker-compose.yml"], env_file)
}

/// `docker-compose config` on compose files of `dir` (the main file first, then
/// override files such as docker-compose.tailscale.yml), as [`compose_config`].
pub fn compose_config_of(dir: &Path, files: &[&str], env_file: &Path) -> Yaml {
    let mut cmd = Command::new("docker-compose");
    cmd.arg("--env-file").arg(env_file);
    for f in files {
        cmd.arg("--file").arg(dir.join(f));
    }
    let out = cmd
        .arg("config")
        .env_remove("DOCKER_HOST")
        .output()
        .expect("docker-compose is needed (Debian package docker-compose; scripts/test installs it)");
    assert!(
        out.status.success(),
        "docker-compose config failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml_ng::from_slice(&out.stdout).expect("docker-compose config prints YAML")
}

/// A YAML scalar as text (numbers and booleans too).
pub fn text(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A compose byte size ("384m", "5g", "1.5gb", 1048576) in bytes; units are
/// powers of 1024, as compose reads them.
pub fn parse_size(v: &Yaml) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let s = v.as_str()?.trim().to_ascii_lowercase();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    Some((num * mult as f64) as u64)
}

/// A CPU list ("0-2", "3", "0,2-3") as the set of CPUs.
pub fn parse_cpus(s: &str) -> Option<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    for part in s.split(',') {
        match part.trim().split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(part.trim().parse().ok()?);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A published port: the host address ("" for every address), host port, container port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub host_ip: String,
    pub host_port: String,
    pub target: String,
}

/// The ports a service publishes, from either of compose's forms (the short
/// "[IP:]HOST:CONTAINER[/proto]" string, or the long map).
pub fn published_ports(service: &Yaml) -> Vec<Published> {
    let Some(ports) = service.get("ports").and_then(Yaml::as_sequence) else {
        return Vec::new();
    };
    ports
        .iter()
        .map(|p| match p {
            Yaml::Mapping(_) => Published {
                host_ip: p.get("host_ip").and_then(text).unwrap_or_default(),
                host_port: p.get("published").and_then(text).unwrap_or_default(),
                target: p.get("target").and_then(text).unwrap_or_default(),
            },
            other => {
                let s = text(other).expect("a port is a string or a map");
                let s = s.split('/').next().unwrap_or_default();
                let parts: Vec<&str> = s.rsplitn(3, ':').collect();
                match parts.as_slice() {
                    [target] => Published {
                        host_ip: String::new(),
                        host_port: String::new(),
                        target: target.to_string(),
                    },
                    [target, host] => Published {
                        host_ip: String::new(),
                        host_port: host.to_string(),
                        target: target.to_string(),
                    },
                    [target, host, ip] => Published {
                        host_ip: ip.to_string(),
                        host_port: host.to_string(),
                        target: target.to_string(),
                    },
                    _ => unreachable!(),
                }
            }
        })
        .collect()
}

/// Every service of a resolved compose file, by name.
pub fn services(config: &Yaml) -> Vec<(String, Yaml)> {
    config["services"]
        .as_mapping()
        .expect("services")
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v.clone()))
        .collect()
}

/// An environment variable of a service, whichever form compose printed.
pub fn env(service: &Yaml, name: &str) -> Option<String> {
    match &service["environment"] {
        Yaml::Mapping(m) => m.get(name).and_then(text),
        Yaml::Sequence(s) => s.iter().find_map(|e| {
            let e = e.as_str()?;
            e.strip_prefix(name)?.strip_prefix('=').map(str::to_string)
        }),
        _ => None,
    }
}

/// The provisioned dashboards: (file name, JSON).
pub fn dashboards() -> Vec<(String, Json)> {
    let dir = stack_dir().join("grafana/dashboards");
    let mut out: Vec<(String, Json)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let v = serde_json::from_str(&read(&p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A query of a dashboard panel.
#[derive(Debug, Clone)]
pub struct Query {
    pub dashboard: String,
    pub panel: String,
    /// The data source uid: "prometheus" or "loki".
    pub datasource: String,
    pub expr: String,
}

/// Every panel query of every dashboard (rows' nested panels included).
pub fn queries() -> Vec<Query> {
    let mut out = Vec::new();
    for (name, d) in dashboards() {
        let mut panels: Vec<&Json> = Vec::new();
        for p in d["panels"].as_array().into_iter().flatten() {
            panels.push(p);
            panels.extend(p["panels"].as_array().into_iter().flatten());
        }
        for p in panels {
            for t in p["targets"].as_array().into_iter().flatten() {
                let ds = t["datasource"]["uid"]
                    .as_str()
                    .or(p["datasource"]["uid"].as_str())
                    .unwrap_or_default();
                out.push(Query {
                    dashboard: name.clone(),
                    panel: p["title"].as_str().unwrap_or_default().to_string(),
                    datasource: ds.to_string(),
                    expr: t["expr"].as_str().unwrap_or_default().to_string(),
                });
            }
        }
    }
    out
}

/// Grafana's variables in a query replaced as Grafana does when a dashboard is shown
/// with every multi-value variable on "All" (its allValue: ".+", or ".*" for the
/// journal's `unit`, which the kernel's entries lack), text boxes as
/// given in `search`, and the interval variables as given. Panics on a variable it
/// does not know, since Grafana would send that `$name` to the data source as is.
pub fn expand(expr: &str, rate_interval: &str, interval: &str, search: &str) -> String {
    let mut s = expr
        .replace("$__rate_interval", rate_interval)
        .replace("$__interval", interval)
        .replace("$__range", "1h")
        .replace("$instance", ".+")
        .replace("$service", ".+")
        .replace("$unit", ".*")
        .replace("$search", search);
    if let Some(i) = s.find('$') {
        panic!("unknown Grafana variable at {:?} in {expr}", &s[i..]);
    }
    s.shrink_to_fit();
    s
}

/// The variables dashboards may use, with where they come from.
pub const DASHBOARD_VARIABLES: &[&str] = &["instance", "service", "unit", "search"];
