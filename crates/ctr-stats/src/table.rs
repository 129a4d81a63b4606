//! `--format text`: a `docker stats`-like table for a person, then the problems.

use homelab_core::text::Table;

use crate::record::ContainerRecord;

/// Memory in binary units and I/O in decimal ones, as docker stats shows them.
pub use homelab_core::text::{binary_size, decimal_size};

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
