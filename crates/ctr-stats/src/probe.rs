//! The opt-in generation probe (`--ollama-probe MODEL`): a short generation with a
//! fixed prompt whose `eval_count / eval_duration` is the model's speed in tokens per
//! second, so that the effect of pinning, throttling or heat shows on a dashboard.
//!
//! It runs at most once per `--ollama-probe-every`. ctr-stats usually runs as a
//! one-shot from a timer or cron every 30 s, so the time of the last attempt and the
//! last result live in a small state file (written atomically); every run in between
//! exports the last result again, with its time, so the metric does not disappear
//! from the textfile between probes and its age is visible.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use homelab_core::Page;
use serde::{Deserialize, Serialize};

use crate::ollama::{Client, Generation};

/// The prompt: short, and with an answer that does not end early.
pub const PROMPT: &str = "Count from 1 to 100 in words, separated by commas.";

/// Tokens generated (`num_predict`).
pub const TOKENS: u32 = 32;

/// Where the state lives unless --ollama-probe-state says otherwise.
pub const DEFAULT_STATE: &str = "/var/lib/ctr-stats/ollama-probe.json";

/// A state file larger than this is not ours.
const MAX_STATE_BYTES: u64 = 64 * 1024;

/// What the probe settings say.
#[derive(Debug, Clone)]
pub struct Settings {
    pub model: String,
    pub every: Duration,
    pub timeout: Duration,
    /// `num_thread` for the generation; `None`: the model's own setting.
    pub threads: Option<u32>,
    pub state: PathBuf,
}

/// The last successful probe.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Result {
    pub at_unix: f64,
    pub tokens_per_second: f64,
    pub eval_tokens: u64,
    pub eval_seconds: f64,
    pub prompt_tokens: Option<u64>,
    pub prompt_seconds: Option<f64>,
    pub load_seconds: Option<f64>,
    pub total_seconds: Option<f64>,
}

/// The state file: the last attempt (successful or not) and the last success.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub model: String,
    pub attempted_unix: f64,
    pub ok: bool,
    pub error: Option<String>,
    pub last: Option<Result>,
}

/// The `kind: probe` record: written every round the probe is configured, whether it
/// ran in this round (`ran`) or its last result is carried over from the state file.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProbeRecord {
    pub model: String,
    /// Whether a generation ran in this round.
    pub ran: bool,
    /// Whether the last attempt succeeded; null before the first.
    pub ok: Option<bool>,
    pub last_attempt_at: Option<String>,
    pub next_attempt_at: Option<String>,
    /// The figures of the last successful probe, and when it ran.
    pub last_success_at: Option<String>,
    pub tokens_per_second: Option<f64>,
    pub eval_tokens: Option<u64>,
    pub eval_seconds: Option<f64>,
    pub prompt_tokens: Option<u64>,
    pub prompt_seconds: Option<f64>,
    pub load_seconds: Option<f64>,
    pub total_seconds: Option<f64>,
    pub num_thread: Option<u32>,
    pub errors: Vec<String>,
}

fn secs(ns: Option<u64>) -> Option<f64> {
    ns.map(|n| (n as f64 / 1e9 * 1e6).round() / 1e6)
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0)
        .unwrap_or(0.0)
}

fn at(u: f64) -> Option<String> {
    (u.is_finite() && u >= 0.0)
        .then(|| homelab_core::output::rfc3339_millis(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(u)))
}

/// The speed of a finished generation, or why there is none.
pub fn result_of(g: &Generation, now: SystemTime) -> std::result::Result<Result, String> {
    let (Some(count), Some(ns)) = (g.eval_count, g.eval_duration) else {
        return Err("the answer has no eval_count and eval_duration".into());
    };
    if count == 0 || ns == 0 {
        return Err(format!(
            "no tokens generated (eval_count {count}, eval_duration {ns} ns)"
        ));
    }
    let eval_seconds = ns as f64 / 1e9;
    Ok(Result {
        at_unix: unix(now),
        tokens_per_second: (count as f64 / eval_seconds * 1000.0).round() / 1000.0,
        eval_tokens: count,
        eval_seconds: (eval_seconds * 1e6).round() / 1e6,
        prompt_tokens: g.prompt_eval_count,
        prompt_seconds: secs(g.prompt_eval_duration),
        load_seconds: secs(g.load_duration),
        total_seconds: secs(g.total_duration),
    })
}

/// The request: the fixed prompt, [`TOKENS`] tokens, greedy so every run does the
/// same work; `num_thread` only when set.
pub fn request(s: &Settings) -> serde_json::Value {
    let mut options = serde_json::json!({
        "num_predict": TOKENS,
        "temperature": 0,
        "seed": 1,
    });
    if let Some(t) = s.threads {
        options["num_thread"] = serde_json::json!(t);
    }
    serde_json::json!({
        "model": s.model,
        "prompt": PROMPT,
        "stream": false,
        "options": options,
    })
}

/// Reads the state file: `Ok(None)` when there is none; an error (the probe then runs,
/// and the file is written anew) when it is unreadable or not ours.
pub fn read_state(path: &Path) -> std::result::Result<Option<State>, String> {
    let f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading the probe state {}: {e}", path.display())),
    };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(f, MAX_STATE_BYTES), &mut text)
        .map_err(|e| format!("reading the probe state {}: {e}", path.display()))?;
    serde_json::from_str(&text).map(Some).map_err(|e| {
        format!(
            "the probe state {} is not ctr-stats' ({e}): it is written anew",
            path.display()
        )
    })
}

/// Writes the state file atomically: a temporary file beside it, fsync, rename.
pub fn write_state(path: &Path, state: &State) -> std::result::Result<(), String> {
    let fail = |e: std::io::Error| format!("writing the probe state {}: {e}", path.display());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(fail)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let text = serde_json::to_string(state).map_err(|e| format!("serialising the probe state: {e}"))?;
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        fail(e)
    })
}

/// Whether a probe is due at `now` given the state.
pub fn due(state: Option<&State>, model: &str, every: Duration, now: SystemTime) -> bool {
    let Some(s) = state else { return true };
    if s.model != model {
        return true;
    }
    let now = unix(now);
    let since = now - s.attempted_unix;
    // A clock that went back makes the last attempt lie in the future: probe again.
    !(0.0..every.as_secs_f64()).contains(&since)
}

/// A round of the probe: runs it when due and Ollama is up, updates the state file,
/// and returns the record (with the last result when it did not run).
pub fn round(
    client: &Client,
    s: &Settings,
    ollama_up: bool,
    now: SystemTime,
) -> (ProbeRecord, Option<State>) {
    let mut errors = Vec::new();
    let mut state = match read_state(&s.state) {
        Ok(st) => st,
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let mut ran = false;
    if ollama_up && due(state.as_ref(), &s.model, s.every, now) {
        ran = true;
        let last = state
            .as_ref()
            .filter(|st| st.model == s.model)
            .and_then(|st| st.last.clone());
        let outcome = client
            .generate(&request(s), s.timeout)
            .and_then(|g| result_of(&g, now));
        let new = match outcome {
            Ok(r) => State {
                model: s.model.clone(),
                attempted_unix: unix(now),
                ok: true,
                error: None,
                last: Some(r),
            },
            Err(e) => {
                errors.push(format!("probe of {}: {e}", s.model));
                State {
                    model: s.model.clone(),
                    attempted_unix: unix(now),
                    ok: false,
                    error: Some(e),
                    last,
                }
            }
        };
        if let Err(e) = write_state(&s.state, &new) {
            errors.push(format!(
                "{e}: the probe will run again next round (--ollama-probe-state)"
            ));
        }
        state = Some(new);
    }
    let st = state.as_ref().filter(|st| st.model == s.model);
    let last = st.and_then(|st| st.last.as_ref());
    let rec = ProbeRecord {
        model: s.model.clone(),
        ran,
        ok: st.map(|st| st.ok),
        last_attempt_at: st.and_then(|st| at(st.attempted_unix)),
        next_attempt_at: st.and_then(|st| at(st.attempted_unix + s.every.as_secs_f64())),
        last_success_at: last.and_then(|r| at(r.at_unix)),
        tokens_per_second: last.map(|r| r.tokens_per_second),
        eval_tokens: last.map(|r| r.eval_tokens),
        eval_seconds: last.map(|r| r.eval_seconds),
        prompt_tokens: last.and_then(|r| r.prompt_tokens),
        prompt_seconds: last.and_then(|r| r.prompt_seconds),
        load_seconds: last.and_then(|r| r.load_seconds),
        total_seconds: last.and_then(|r| r.total_seconds),
        num_thread: s.threads,
        errors,
    };
    (rec, state.filter(|st| st.model == s.model))
}

/// The probe's families: (name, help).
pub const FAMILIES: &[(&str, &str)] = &[
    (
        "ollama_probe_tokens_per_second",
        "Generation speed of the last successful probe: eval_count / eval_duration, in tokens per second.",
    ),
    (
        "ollama_probe_eval_tokens",
        "Tokens the last successful probe generated (eval_count).",
    ),
    (
        "ollama_probe_eval_duration_seconds",
        "Time the last successful probe spent generating (eval_duration).",
    ),
    (
        "ollama_probe_load_duration_seconds",
        "Time the last successful probe waited for the model to load (0 when it was loaded).",
    ),
    (
        "ollama_probe_success",
        "1 when the last probe attempt succeeded, 0 when it failed.",
    ),
    (
        "ollama_probe_last_success_timestamp_seconds",
        "When the last successful probe ran, in seconds since the Unix epoch.",
    ),
    (
        "ollama_probe_last_attempt_timestamp_seconds",
        "When the probe last ran (successfully or not), in seconds since the Unix epoch.",
    ),
];

/// Adds the probe's families to `page`, from the state after this round.
pub fn add_to_page(p: &mut Page, model: &str, state: Option<&State>) {
    let Some(st) = state else { return };
    let l = [("model", model)];
    let help = |name: &str| FAMILIES.iter().find(|f| f.0 == name).map_or("", |f| f.1);
    if let Some(r) = &st.last {
        p.gauge(
            "ollama_probe_tokens_per_second",
            help("ollama_probe_tokens_per_second"),
        )
        .sample(&l, r.tokens_per_second);
        p.gauge("ollama_probe_eval_tokens", help("ollama_probe_eval_tokens"))
            .sample(&l, r.eval_tokens as f64);
        p.gauge(
            "ollama_probe_eval_duration_seconds",
            help("ollama_probe_eval_duration_seconds"),
        )
        .sample(&l, r.eval_seconds);
        p.gauge(
            "ollama_probe_load_duration_seconds",
            help("ollama_probe_load_duration_seconds"),
        )
        .maybe(&l, r.load_seconds);
    }
    p.gauge("ollama_probe_success", help("ollama_probe_success"))
        .sample(&l, f64::from(u8::from(st.ok)));
    if let Some(r) = &st.last {
        p.gauge(
            "ollama_probe_last_success_timestamp_seconds",
            help("ollama_probe_last_success_timestamp_seconds"),
        )
        .sample(&l, r.at_unix);
    }
    p.gauge(
        "ollama_probe_last_attempt_timestamp_seconds",
        help("ollama_probe_last_attempt_timestamp_seconds"),
    )
    .sample(&l, st.attempted_unix);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    fn state(model: &str, at: f64) -> State {
        State {
            model: model.into(),
            attempted_unix: at,
            ok: true,
            error: None,
            last: None,
        }
    }

    #[test]
    fn due_once_per_period_and_after_a_model_change_or_a_clock_jump() {
        let h = Duration::from_secs(3600);
        assert!(due(None, "m", h, t(1000)));
        let s = state("m", 1000.0);
        assert!(!due(Some(&s), "m", h, t(1000)));
        assert!(!due(Some(&s), "m", h, t(4599)));
        assert!(due(Some(&s), "m", h, t(4600)));
        assert!(due(Some(&s), "other", h, t(1001)));
        assert!(due(Some(&s), "m", h, t(999)), "a clock that went back");
    }

    #[test]
    fn speed_from_eval_count_and_duration() {
        let g = Generation {
            eval_count: Some(32),
            eval_duration: Some(6_400_000_000),
            load_duration: Some(1_000),
            ..Generation::default()
        };
        let r = result_of(&g, t(10)).unwrap();
        assert_eq!(r.tokens_per_second, 5.0);
        assert_eq!(r.eval_seconds, 6.4);
        assert_eq!(r.load_seconds, Some(0.000001));
        for bad in [
            Generation::default(),
            Generation {
                eval_count: Some(0),
                eval_duration: Some(5),
                ..Generation::default()
            },
            Generation {
                eval_count: Some(3),
                eval_duration: Some(0),
                ..Generation::default()
            },
        ] {
            assert!(result_of(&bad, t(10)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn state_round_trips_atomically_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/state.json");
        assert_eq!(read_state(&p), Ok(None));
        let s = state("m", 12.5);
        write_state(&p, &s).unwrap();
        assert_eq!(read_state(&p), Ok(Some(s)));
        assert_eq!(
            fs::read_dir(p.parent().unwrap()).unwrap().count(),
            1,
            "no temporary left"
        );
        fs::write(&p, "garbage").unwrap();
        assert!(read_state(&p).is_err());
    }

    #[test]
    fn the_request_sets_num_thread_only_when_asked() {
        let mut s = Settings {
            model: "m".into(),
            every: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            threads: None,
            state: PathBuf::new(),
        };
        let r = request(&s);
        assert_eq!(r["stream"], false);
        assert_eq!(r["options"]["num_predict"], TOKENS);
        assert!(r["options"].get("num_thread").is_none());
        s.threads = Some(3);
        assert_eq!(request(&s)["options"]["num_thread"], 3);
    }
}
