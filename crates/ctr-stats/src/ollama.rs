//! Ollama, watched through its HTTP API: which models are loaded (`GET /api/ps`), the
//! server's version (`GET /api/version`) and, for the probe ([`crate::probe`]), one
//! short generation (`POST /api/generate`, not streamed). Every answer is read within
//! one deadline and a size cap; whatever goes wrong (refused, no answer, not JSON, too
//! large, an HTTP error) becomes one error in the round's `kind: ollama` record and
//! `ollama_up 0`, never a failed round.

use std::time::{Duration, Instant, SystemTime};

use homelab_core::Page;
use serde::{Deserialize, Serialize};

/// The largest answer read: `/api/ps` with a few models is a few KiB.
pub const MAX_ANSWER_BYTES: u64 = 1024 * 1024;

/// The default address of a local Ollama.
pub const DEFAULT_URL: &str = "http://127.0.0.1:11434";

/// An Ollama server's API.
#[derive(Debug)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
    timeout: Duration,
}

/// The `kind: ollama` record: one per round when `--ollama` is given.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OllamaRecord {
    /// The API's address (as given to --ollama).
    pub url: String,
    /// Whether the API answered `/api/ps` in this round.
    pub up: bool,
    pub version: Option<String>,
    /// Models loaded in memory; null when the API did not answer.
    pub models_loaded: Option<u64>,
    /// The Ollama container (--ollama-container) and its cpuset, when found.
    pub container: Option<String>,
    pub container_cpuset_cpus: Option<String>,
    pub errors: Vec<String>,
}

/// The `kind: model` record: one per model Ollama holds in memory.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelRecord {
    /// The model's name, e.g. `llama3.2:3b`.
    pub name: String,
    pub digest: Option<String>,
    pub family: Option<String>,
    pub parameter_size: Option<String>,
    pub quantization_level: Option<String>,
    /// Memory the loaded model takes (RAM and VRAM together).
    pub size_bytes: Option<u64>,
    /// The part of it in GPU memory (0 on a Raspberry Pi).
    pub size_vram_bytes: Option<u64>,
    /// The context window it was loaded with.
    pub context_length_tokens: Option<u64>,
    /// When Ollama will unload it (RFC 3339 UTC).
    pub expires_at: Option<String>,
    pub expires_in_seconds: Option<f64>,
    pub errors: Vec<String>,
}

/// What one round learnt from Ollama.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    pub ollama: OllamaRecord,
    pub models: Vec<ModelRecord>,
    /// `expires_at` as Unix seconds, per model (for the page).
    pub expires_unix: Vec<Option<f64>>,
}

// ---- the API's answers, as documented (every field optional: a newer or older
// ---- server may leave one out)

#[derive(Debug, Deserialize)]
struct PsAnswer {
    #[serde(default)]
    models: Option<Vec<PsModel>>,
}

#[derive(Debug, Deserialize)]
struct PsModel {
    name: Option<String>,
    model: Option<String>,
    size: Option<u64>,
    size_vram: Option<u64>,
    digest: Option<String>,
    details: Option<PsDetails>,
    expires_at: Option<String>,
    context_length: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct PsDetails {
    family: Option<String>,
    parameter_size: Option<String>,
    quantization_level: Option<String>,
}

#[derive(Debug, Deserialize)]
struct VersionAnswer {
    version: String,
}

/// The statistics of a finished generation (durations in nanoseconds).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Generation {
    pub done: Option<bool>,
    pub total_duration: Option<u64>,
    pub load_duration: Option<u64>,
    pub prompt_eval_count: Option<u64>,
    pub prompt_eval_duration: Option<u64>,
    pub eval_count: Option<u64>,
    pub eval_duration: Option<u64>,
}

/// Parses `/api/ps`'s answer into model records; `now` gives `expires_in_seconds`.
pub fn parse_ps(body: &str, now: SystemTime) -> Result<(Vec<ModelRecord>, Vec<Option<f64>>), String> {
    let ps: PsAnswer =
        serde_json::from_str(body).map_err(|e| format!("not Ollama's /api/ps answer ({e})"))?;
    let mut models = Vec::new();
    let mut expires = Vec::new();
    for m in ps.models.unwrap_or_default() {
        let mut errors = Vec::new();
        let name = m.name.or(m.model).unwrap_or_default();
        let exp = match m.expires_at.as_deref() {
            None => None,
            Some(s) => match parse_rfc3339(s) {
                Some(t) => Some(t),
                None => {
                    errors.push(format!("expires_at {:?} is not an RFC 3339 time", clip(s)));
                    None
                }
            },
        };
        let exp_unix = exp.and_then(unix);
        let in_secs = exp.map(|t| match t.duration_since(now) {
            Ok(d) => round3(d.as_secs_f64()),
            Err(e) => -round3(e.duration().as_secs_f64()),
        });
        let d = m.details;
        models.push(ModelRecord {
            name,
            digest: m.digest,
            family: d.as_ref().and_then(|d| d.family.clone()),
            parameter_size: d.as_ref().and_then(|d| d.parameter_size.clone()),
            quantization_level: d.as_ref().and_then(|d| d.quantization_level.clone()),
            size_bytes: m.size,
            size_vram_bytes: m.size_vram,
            context_length_tokens: m.context_length.filter(|&c| c > 0),
            expires_at: exp.map(homelab_core::output::rfc3339_millis),
            expires_in_seconds: in_secs,
            errors,
        });
        expires.push(exp_unix);
    }
    Ok((models, expires))
}

/// Parses `/api/version`'s answer.
pub fn parse_version(body: &str) -> Result<String, String> {
    let v: VersionAnswer =
        serde_json::from_str(body).map_err(|e| format!("not Ollama's /api/version answer ({e})"))?;
    Ok(clip(&v.version))
}

/// Parses a non-streamed `/api/generate` answer.
pub fn parse_generation(body: &str) -> Result<Generation, String> {
    serde_json::from_str(body).map_err(|e| format!("not Ollama's /api/generate answer ({e})"))
}

/// RFC 3339 with any offset and up to nanoseconds, as Go writes it
/// (`2025-10-17T16:47:07.93355-07:00`).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    if let Some(local) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return humantime::parse_rfc3339_weak(local).ok();
    }
    if s.len() < 6 || !s.is_char_boundary(s.len() - 6) {
        return None;
    }
    let (local, off) = s.split_at(s.len() - 6);
    let sign = match off.as_bytes()[0] {
        b'+' => 1i64,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = off[1..].split_once(':')?;
    let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
    if h > 23 || m > 59 {
        return None;
    }
    let t = humantime::parse_rfc3339_weak(local).ok()?;
    let off = Duration::from_secs(h * 3600 + m * 60);
    // Local time minus the offset is UTC.
    if sign > 0 {
        t.checked_sub(off)
    } else {
        t.checked_add(off)
    }
}

fn unix(t: SystemTime) -> Option<f64> {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| round3(d.as_secs_f64()))
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// At most 80 characters of something a server sent, without control characters.
pub fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(80).collect()
}

impl Client {
    /// A client for the API at `url` (`http://127.0.0.1:11434`, or an https address
    /// through a proxy). Each exchange is bounded by `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("ctr-stats/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client {
            base: url.trim_end_matches('/').to_string(),
            agent,
            timeout,
        }
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// One request within what is left of `deadline`; the answer's body, at most
    /// [`MAX_ANSWER_BYTES`], when the status is 200.
    fn exchange(
        &self,
        path: &str,
        body: Option<&str>,
        deadline: Instant,
        budget: Duration,
    ) -> Result<String, String> {
        let url = format!("{}{path}", self.base);
        let method = if body.is_some() { "POST" } else { "GET" };
        let late = || {
            format!(
                "{method} {url}: no answer within {}: is Ollama busy or hung? (--ollama-timeout)",
                humantime::format_duration(budget)
            )
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(late());
        }
        let words = |e: &ureq::Error| match e {
            ureq::Error::Timeout(_) => late(),
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                format!("{method} {url}: connection refused: is Ollama running, at this address?")
            }
            ureq::Error::Io(io) => format!("{method} {url}: {io}"),
            ureq::Error::HostNotFound => format!("{method} {url}: host not found"),
            ureq::Error::ConnectionFailed => {
                format!("{method} {url}: connection failed: is Ollama running, at this address?")
            }
            ureq::Error::BodyExceedsLimit(n) => {
                format!("{method} {url}: the answer is larger than {n} bytes: not Ollama?")
            }
            other => format!("{method} {url}: {other}"),
        };
        let result = match body {
            None => self
                .agent
                .get(&url)
                .config()
                .timeout_global(Some(left))
                .build()
                .call(),
            Some(b) => self
                .agent
                .post(&url)
                .config()
                .timeout_global(Some(left))
                .build()
                .header("Content-Type", "application/json")
                .send(b),
        };
        let mut resp = result.map_err(|e| words(&e))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .map_err(|e| words(&e))?;
        if status != 200 {
            // Ollama's errors are {"error": "..."}.
            let said = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(clip))
                .unwrap_or_else(|| clip(&text));
            return Err(format!(
                "{method} {url}: HTTP {status}{}",
                if said.is_empty() {
                    String::new()
                } else {
                    format!(": {said}")
                }
            ));
        }
        Ok(text)
    }

    /// The loaded models and the version, within one `--ollama-timeout`.
    pub fn round(&self, now: SystemTime) -> Round {
        let deadline = Instant::now() + self.timeout;
        let mut errors = Vec::new();
        let ps = self
            .exchange("/api/ps", None, deadline, self.timeout)
            .and_then(|b| parse_ps(&b, now).map_err(|e| format!("GET {}/api/ps: {e}", self.base)));
        let (up, models, expires) = match ps {
            Ok((m, e)) => (true, m, e),
            Err(e) => {
                errors.push(e);
                (false, Vec::new(), Vec::new())
            }
        };
        // The version only from a server that answered: one error per failing round.
        let version = if up {
            match self
                .exchange("/api/version", None, deadline, self.timeout)
                .and_then(|b| parse_version(&b).map_err(|e| format!("GET {}/api/version: {e}", self.base)))
            {
                Ok(v) => Some(v),
                Err(e) => {
                    errors.push(e);
                    None
                }
            }
        } else {
            None
        };
        Round {
            ollama: OllamaRecord {
                url: self.base.clone(),
                up,
                version,
                models_loaded: up.then_some(models.len() as u64),
                container: None,
                container_cpuset_cpus: None,
                errors,
            },
            models,
            expires_unix: expires,
        }
    }

    /// One generation, not streamed, bounded by `timeout`.
    pub fn generate(&self, request: &serde_json::Value, timeout: Duration) -> Result<Generation, String> {
        let deadline = Instant::now() + timeout;
        let body = request.to_string();
        let text = self.exchange("/api/generate", Some(&body), deadline, timeout)?;
        parse_generation(&text).map_err(|e| format!("POST {}/api/generate: {e}", self.base))
    }
}

/// What `--ollama` watches in a round: the API, the Ollama container among the
/// round's containers, and the probe.
#[derive(Debug)]
pub struct Watch {
    pub client: Client,
    /// The compose service or name of the Ollama container.
    pub container: String,
    pub probe: Option<crate::probe::Settings>,
}

/// A round of [`Watch`].
#[derive(Debug, Clone)]
pub struct Watched {
    pub round: Round,
    pub cpuset_cpus: Option<u32>,
    pub probe: Option<(crate::probe::ProbeRecord, Option<crate::probe::State>)>,
}

impl Watch {
    pub fn round(&self, containers: &[crate::record::ContainerRecord], now: SystemTime) -> Watched {
        let mut round = self.client.round(now);
        let c = containers.iter().find(|c| {
            c.compose_service.as_deref() == Some(self.container.as_str()) || c.name == self.container
        });
        let mut cpuset_cpus = None;
        if let Some(c) = c {
            round.ollama.container = Some(c.name.clone());
            round.ollama.container_cpuset_cpus = c.cpuset_cpus.clone();
            cpuset_cpus = c
                .cpuset_cpus
                .as_deref()
                .and_then(crate::usage::parse_cpu_list)
                .map(|l| l.len() as u32)
                .filter(|&n| n > 0);
        }
        let probe = self
            .probe
            .as_ref()
            .map(|s| crate::probe::round(&self.client, s, round.ollama.up, now));
        Watched {
            round,
            cpuset_cpus,
            probe,
        }
    }
}

impl Watched {
    /// Adds the `ollama_*` families.
    pub fn add_to_page(&self, p: &mut Page) {
        add_to_page(p, &self.round, self.cpuset_cpus);
        if let Some((rec, state)) = &self.probe {
            crate::probe::add_to_page(p, &rec.model, state.as_ref());
        }
    }
}

/// Every `ollama_*` family but the probe's, in the order of the page: (name, help).
pub const FAMILIES: &[(&str, &str)] = &[
    (
        "ollama_up",
        "1 when Ollama's API answered ctr-stats' last round, 0 when it did not (refused, no answer within --ollama-timeout, not Ollama's answer).",
    ),
    (
        "ollama_build_info",
        "Always 1; the version label is the Ollama server's version.",
    ),
    ("ollama_models_loaded", "Models Ollama holds in memory."),
    (
        "ollama_model_loaded",
        "1 for each model Ollama holds in memory (a model that is unloaded disappears).",
    ),
    (
        "ollama_model_memory_bytes",
        "Memory the loaded model takes, RAM and GPU memory together (size in /api/ps).",
    ),
    (
        "ollama_model_vram_bytes",
        "The part of the model's memory in GPU memory (size_vram in /api/ps; 0 on a Raspberry Pi).",
    ),
    (
        "ollama_model_context_tokens",
        "The context window the model was loaded with, in tokens.",
    ),
    (
        "ollama_model_expires_timestamp_seconds",
        "When Ollama will unload the model if it gets no request, in seconds since the Unix epoch.",
    ),
    (
        "ollama_container_cpuset_cpus",
        "Number of CPUs in the Ollama container's cpuset (--ollama-container), to set its CPU use against.",
    ),
];

/// Adds the round's `ollama_*` families to `page`.
pub fn add_to_page(p: &mut Page, r: &Round, cpuset_cpus: Option<u32>) {
    let help = |name: &str| FAMILIES.iter().find(|f| f.0 == name).map_or("", |f| f.1);
    p.gauge("ollama_up", help("ollama_up"))
        .sample(&[], f64::from(u8::from(r.ollama.up)));
    if let Some(v) = &r.ollama.version {
        p.gauge("ollama_build_info", help("ollama_build_info"))
            .sample(&[("version", v)], 1.0);
    }
    p.gauge("ollama_models_loaded", help("ollama_models_loaded"))
        .maybe(&[], r.ollama.models_loaded.map(|n| n as f64));
    let u64f = |v: Option<u64>| v.map(|v| v as f64);
    for name in [
        "ollama_model_loaded",
        "ollama_model_memory_bytes",
        "ollama_model_vram_bytes",
        "ollama_model_context_tokens",
        "ollama_model_expires_timestamp_seconds",
    ] {
        p.gauge(name, help(name));
    }
    for (m, exp) in r.models.iter().zip(&r.expires_unix) {
        let l = [("model", m.name.as_str())];
        p.gauge("ollama_model_loaded", "").sample(&l, 1.0);
        p.gauge("ollama_model_memory_bytes", "")
            .maybe(&l, u64f(m.size_bytes));
        p.gauge("ollama_model_vram_bytes", "")
            .maybe(&l, u64f(m.size_vram_bytes));
        p.gauge("ollama_model_context_tokens", "")
            .maybe(&l, u64f(m.context_length_tokens));
        p.gauge("ollama_model_expires_timestamp_seconds", "")
            .maybe(&l, *exp);
    }
    if let (Some(name), Some(n)) = (&r.ollama.container, cpuset_cpus) {
        p.gauge(
            "ollama_container_cpuset_cpus",
            help("ollama_container_cpuset_cpus"),
        )
        .sample(&[("name", name)], f64::from(n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PS: &str = r#"{"models":[{"name":"gemma3","model":"gemma3","size":6591830464,"digest":"a2af6cc3eb7fa8be8504abaf9b04e88f17a119ec3f04a3addf55f92841195f5a","details":{"parent_model":"","format":"gguf","family":"gemma3","families":["gemma3"],"parameter_size":"4.3B","quantization_level":"Q4_K_M"},"expires_at":"2025-10-17T16:47:07.93355-07:00","size_vram":5333539264,"context_length":4096}]}"#;

    #[test]
    fn ps_as_documented() {
        let now = parse_rfc3339("2025-10-17T23:42:07.93355Z").unwrap();
        let (m, exp) = parse_ps(PS, now).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, "gemma3");
        assert_eq!(m[0].size_bytes, Some(6_591_830_464));
        assert_eq!(m[0].size_vram_bytes, Some(5_333_539_264));
        assert_eq!(m[0].context_length_tokens, Some(4096));
        assert_eq!(m[0].quantization_level.as_deref(), Some("Q4_K_M"));
        assert_eq!(m[0].expires_at.as_deref(), Some("2025-10-17T23:47:07.933Z"));
        assert_eq!(m[0].expires_in_seconds, Some(300.0));
        assert_eq!(exp, vec![Some(1_760_744_827.934)]);
        assert!(m[0].errors.is_empty());
    }

    #[test]
    fn ps_without_models_or_with_sparse_ones() {
        let now = SystemTime::UNIX_EPOCH;
        assert!(parse_ps(r#"{"models":[]}"#, now).unwrap().0.is_empty());
        assert!(parse_ps(r#"{"models":null}"#, now).unwrap().0.is_empty());
        let (m, _) = parse_ps(r#"{"models":[{"model":"x","expires_at":"soon"}]}"#, now).unwrap();
        assert_eq!(m[0].name, "x");
        assert_eq!(m[0].size_bytes, None);
        assert_eq!(m[0].errors.len(), 1, "{:?}", m[0].errors);
        assert!(parse_ps("<html>", now).is_err());
        assert!(parse_ps(r#"{"models":"x"}"#, now).is_err());
    }

    #[test]
    fn times_with_offsets() {
        let z = parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(parse_rfc3339("2026-01-01T01:30:00+01:30"), Some(z));
        assert_eq!(parse_rfc3339("2025-12-31T19:00:00.000000000-05:00"), Some(z));
        for bad in [
            "",
            "2026",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00+25:00",
            "2026-01-01T00:00:00é1:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn generation_and_version() {
        let g = parse_generation(r#"{"model":"gemma3","created_at":"2025-10-17T23:14:07.414671Z","response":"Hello!","done":true,"done_reason":"stop","total_duration":174560334,"load_duration":101397084,"prompt_eval_count":11,"prompt_eval_duration":13074791,"eval_count":18,"eval_duration":52479709}"#).unwrap();
        assert_eq!(g.eval_count, Some(18));
        assert_eq!(g.eval_duration, Some(52_479_709));
        assert_eq!(parse_version(r#"{"version":"0.12.6"}"#).unwrap(), "0.12.6");
        assert!(parse_version("{}").is_err());
    }
}
