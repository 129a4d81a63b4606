//! `--format text`: a `docker stats`-like table for a person, then the problems.

use homelab_core::text::{Paint, Table, human_bytes, human_duration};

use crate::ollama::Watched;
use crate::record::ContainerRecord;

/// Binary units for memory, as docker stats (`12.5MiB`).
pub fn binary_size(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    scaled(b as f64, 1024.0, &UNITS)
}

/// Decimal units for I/O, as docker stats (`1.2MB`).
pub fn decimal_size(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    scaled(b as f64, 1000.0, &UNITS)
}

/// Four significant digits, as docker's `%.4g`.
fn scaled(mut v: f64, step: f64, units: &[&str]) -> String {
    let mut i = 0;
    while v >= step && i + 1 < units.len() {
        v /= step;
        i += 1;
    }
    let int_digits = if v < 1.0 {
        1
    } else {
        v.log10().floor() as usize + 1
    };
    let decimals = 4usize.saturating_sub(int_digits);
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    s + units[i]
}

fn pair(a: Option<String>, b: Option<String>) -> String {
    match (a, b) {
        (None, None) => "-".into(),
        (a, b) => format!(
            "{} / {}",
            a.unwrap_or_else(|| "-".into()),
            b.unwrap_or_else(|| "-".into())
        ),
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}%"))
}

/// The containers, then (when there are any) their errors.
pub fn tables(records: &[ContainerRecord]) -> (Table, Option<Table>) {
    let mut t = Table::new(&[
        "CONTAINER ID",
        "NAME",
        "STATE",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
        "RESTARTS",
    ]);
    let mut problems = Table::new(&["CONTAINER", "ERROR"]);
    for r in records {
        let state = match &r.health {
            Some(h) => format!("{} ({h})", r.state),
            None if r.oom_killed == Some(true) => format!("{} (OOM killed)", r.state),
            None => r.state.clone(),
        };
        let mem = match (r.mem_working_set_bytes, r.mem_limit_bytes) {
            (None, _) => "-".into(),
            (Some(ws), lim) => format!(
                "{} / {}",
                binary_size(ws),
                lim.map_or_else(|| "unlimited".into(), binary_size)
            ),
        };
        t.row([
            r.id.clone(),
            r.name.clone(),
            state,
            pct(r.cpu_percent),
            mem,
            pct(r.mem_percent),
            pair(r.net_rx_bytes.map(decimal_size), r.net_tx_bytes.map(decimal_size)),
            pair(
                r.blk_read_bytes.map(decimal_size),
                r.blk_write_bytes.map(decimal_size),
            ),
            r.pids.map_or_else(|| "-".into(), |p| p.to_string()),
            r.restart_count.map_or_else(|| "-".into(), |n| n.to_string()),
        ]);
        for e in &r.errors {
            problems.row([r.name.clone(), e.clone()]);
        }
    }
    (t, (!problems.is_empty()).then_some(problems))
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
    fn sizes_like_docker_stats() {
        assert_eq!(binary_size(0), "0B");
        assert_eq!(binary_size(512), "512B");
        assert_eq!(binary_size(67_108_864), "64MiB");
        assert_eq!(binary_size(1_572_864), "1.5MiB");
        assert_eq!(binary_size(130_023_424), "124MiB");
        assert_eq!(decimal_size(1_234_567), "1.235MB");
        assert_eq!(decimal_size(999), "999B");
        assert_eq!(decimal_size(125_000_000_000), "125GB");
    }
}
