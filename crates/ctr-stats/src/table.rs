//! `--format text`: a `docker stats`-like table for a person, then the problems.

use homelab_core::text::{Paint, Table, human_bytes, human_duration};

use crate::ollama::Watched;
use crate::record::ContainerRecord;

fn pair(a: Option<u64>, b: Option<u64>) -> String {
    match (a, b) {
        (None, None) => "-".into(),
        (a, b) => format!(
            "{} / {}",
            a.map_or_else(|| "-".into(), human_bytes),
            b.map_or_else(|| "-".into(), human_bytes)
        ),
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

/// Memory above this share of the limit is marked.
pub const MEM_MARK_PERCENT: f64 = 90.0;

/// The containers' state in words, and whether it is a problem.
fn state_words(r: &ContainerRecord) -> (String, bool) {
    let mut words = vec![r.state.clone()];
    let mut bad = matches!(r.state.as_str(), "restarting" | "dead");
    match r.health.as_deref() {
        Some("unhealthy") => {
            words.push("unhealthy".into());
            bad = true;
        }
        Some(h) => words.push(h.to_string()),
        None => {}
    }
    if r.oom_killed == Some(true) {
        words.push("killed for lack of memory".into());
        bad = true;
    }
    let mut s = words.join(", ");
    if bad {
        s.push_str(" !");
    }
    (s, bad)
}

/// The text view: a `docker stats`-like table of the containers (sizes in binary
/// units, states in words, problems marked with `!` and, on a terminal, in red), then
/// the problems one per line with what to do.
pub fn text(records: &[ContainerRecord], paint: Paint, width: Option<usize>) -> String {
    let mut t = Table::new(&[
        "CONTAINER ID",
        "NAME",
        "STATE",
        "UP",
        "CPU %",
        "MEMORY / LIMIT",
        "MEM %",
        "NET IN / OUT",
        "DISK READ / WRITE",
        "PIDS",
        "RESTARTS",
    ]);
    let mut marked = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    for r in records {
        let (state, mut bad) = state_words(r);
        if r.oom_killed == Some(true) {
            problems.push(format!(
                "{}: its last exit was an out-of-memory kill: raise its memory limit or find what grew",
                r.name
            ));
        }
        if r.health.as_deref() == Some("unhealthy") {
            problems.push(format!(
                "{}: its health check fails: docker inspect --format '{{{{json .State.Health}}}}' {} says why",
                r.name, r.name
            ));
        }
        let mem = match (r.mem_working_set_bytes, r.mem_limit_bytes) {
            (None, _) => "-".into(),
            (Some(ws), lim) => format!(
                "{} / {}",
                human_bytes(ws),
                lim.map_or_else(|| "no limit".into(), human_bytes)
            ),
        };
        let mut mem_pct = pct(r.mem_percent);
        if r.mem_limit_bytes.is_some() && r.mem_percent.is_some_and(|p| p >= MEM_MARK_PERCENT) {
            mem_pct.push_str(" !");
            bad = true;
            problems.push(format!(
                "{}: memory at {:.1} % of its limit: the kernel kills it at 100 %",
                r.name,
                r.mem_percent.unwrap_or_default()
            ));
        }
        let up = match r.uptime_seconds {
            Some(s) if r.running() => human_duration(s),
            _ => "-".into(),
        };
        t.row([
            r.id.clone(),
            r.name.clone(),
            state,
            up,
            pct(r.cpu_percent),
            mem,
            mem_pct,
            pair(r.net_rx_bytes, r.net_tx_bytes),
            pair(r.blk_read_bytes, r.blk_write_bytes),
            r.pids.map_or_else(|| "-".into(), |p| p.to_string()),
            r.restart_count.map_or_else(|| "-".into(), |n| n.to_string()),
        ]);
        for e in &r.errors {
            problems.push(format!("{}: {e}", r.name));
        }
        marked.push(bad);
    }
    homelab_core::text::marked_table(&t, &marked, &problems, paint, width)
}

/// Ollama's part of the text view: the server, its models, the probe.
pub fn ollama_text(w: &Watched, paint: Paint) -> String {
    let o = &w.round.ollama;
    let mut out = String::new();
    let version = o.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
    if o.up {
        let n = w.round.models.len();
        let models = match n {
            0 => "no model loaded".to_string(),
            1 => "1 model loaded".to_string(),
            n => format!("{n} models loaded"),
        };
        out.push_str(&format!(
            "{} at {}: {}, {models}",
            paint.head(&format!("Ollama{version}")),
            o.url,
            paint.good("up")
        ));
    } else {
        out.push_str(&format!(
            "{} at {}: {}",
            paint.head("Ollama"),
            o.url,
            paint.bad("DOWN")
        ));
    }
    if let (Some(c), Some(cpus)) = (&o.container, &o.container_cpuset_cpus) {
        out.push_str(&format!("; container {c} on CPUs {cpus}"));
    }
    out.push('\n');
    if !w.round.models.is_empty() {
        let mut t = Table::new(&["MODEL", "SIZE", "QUANT", "MEMORY", "CONTEXT", "UNLOADS IN"]);
        for m in &w.round.models {
            let unload = match m.expires_in_seconds {
                None => "-".to_string(),
                // Ollama keeps a model with keep_alive -1 "forever" (centuries ahead).
                Some(s) if s > 365.0 * 86_400.0 => "never".to_string(),
                Some(s) if s <= 0.0 => "now".to_string(),
                Some(s) => human_duration(s),
            };
            t.row([
                m.name.clone(),
                m.parameter_size.clone().unwrap_or_else(|| "-".into()),
                m.quantization_level.clone().unwrap_or_else(|| "-".into()),
                m.size_bytes.map_or_else(|| "-".into(), human_bytes),
                m.context_length_tokens
                    .map_or_else(|| "-".into(), |c| format!("{c} tokens")),
                unload,
            ]);
        }
        out.push_str(&t.render());
    }
    if let Some((p, _)) = &w.probe {
        let speed = match (p.tokens_per_second, p.eval_tokens, p.eval_seconds) {
            (Some(tps), Some(n), Some(s)) => format!("{tps:.1} tokens/s ({n} tokens in {s:.1} s)"),
            _ => "no result yet".to_string(),
        };
        let when = match (&p.last_success_at, p.ran) {
            (Some(_), true) => ", just now".to_string(),
            (Some(at), false) => format!(", measured {at}"),
            (None, _) => String::new(),
        };
        let failed = if p.ok == Some(false) {
            format!("; {}", paint.bad("last attempt failed"))
        } else {
            String::new()
        };
        out.push_str(&format!("Probe of {}: {speed}{when}{failed}\n", p.model));
    }
    let errors: Vec<&String> = o
        .errors
        .iter()
        .chain(w.round.models.iter().flat_map(|m| m.errors.iter()))
        .chain(w.probe.iter().flat_map(|(p, _)| p.errors.iter()))
        .collect();
    for e in errors {
        out.push_str(&format!("{} {e}\n", paint.bad("!")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_in_words() {
        let mut r = ContainerRecord::new(
            crate::engine::Meta::default(),
            None,
            None,
            std::time::SystemTime::UNIX_EPOCH,
            None,
        );
        r.state = "running".into();
        r.health = Some("healthy".into());
        assert_eq!(state_words(&r), ("running, healthy".into(), false));
        r.health = Some("unhealthy".into());
        assert_eq!(state_words(&r), ("running, unhealthy !".into(), true));
        r.health = None;
        r.state = "exited".into();
        r.oom_killed = Some(true);
        assert_eq!(
            state_words(&r),
            ("exited, killed for lack of memory !".into(), true)
        );
    }
}
