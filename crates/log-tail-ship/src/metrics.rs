//! The `logship_*` Prometheus page and the `kind: summary` record. Names are pinned:
//! dashboards and alert rules depend on them.

use std::collections::BTreeMap;

use homelab_core::Page;
use serde::Serialize;

use crate::pipeline::Stats;

/// Lag per source (bytes in files after the acknowledged offset) and open files.
#[derive(Debug, Default)]
pub struct Files {
    pub lag: BTreeMap<String, u64>,
    pub open: usize,
    /// Files found but not opened at the last scan (permission denied, no descriptor).
    pub unreadable: usize,
    /// Followed files whose directory inotify does not watch (it is unavailable or
    /// out of watches): looked at on a timer.
    pub polled: usize,
    /// Looks at a followed file, and looks at all of them at once (sweeps).
    pub looks: u64,
    pub sweeps: u64,
}

pub fn page(s: &Stats, f: &Files, now: f64) -> Page {
    let mut p = Page::new();
    {
        let read = p.counter(
            "logship_lines_read_total",
            "Lines read, by source (file path, container name, or stdin).",
        );
        for src in &s.sources {
            read.sample(&[("source", &src.name)], src.read as f64);
        }
    }
    p.counter(
        "logship_lines_shipped_total",
        "Lines accepted by the sink (Loki answered 2xx, or written and flushed to stdout).",
    )
    .sample(&[], s.shipped as f64);
    {
        let d = p.counter(
            "logship_lines_dropped_total",
            "Lines not shipped, by reason: filter (--keep/--drop), rate_limit (--rate), rejected (in a batch Loki refused with 400/413); too_long counts lines shipped cut at --max-line-bytes.",
        );
        d.sample(&[("reason", "filter")], s.dropped_filter as f64);
        d.sample(&[("reason", "rate_limit")], s.dropped_rate_limit as f64);
        d.sample(&[("reason", "too_long")], s.truncated as f64);
        d.sample(&[("reason", "rejected")], s.dropped_rejected as f64);
    }
    p.counter(
        "logship_batches_rejected_total",
        "Batches Loki refused for good (400, 413); not sent again.",
    )
    .sample(&[], s.batches_rejected as f64);
    p.counter(
        "logship_push_retries_total",
        "Push attempts that failed and were retried (connection errors, 429, 5xx).",
    )
    .sample(&[], s.push_retries as f64);
    p.counter(
        "logship_bytes_shipped_total",
        "Bytes of log lines accepted by the sink (before compression).",
    )
    .sample(&[], s.bytes_shipped as f64);
    p.counter(
        "logship_docker_invalid_lines_total",
        "Lines of Docker json-file logs that were not valid entries (shipped as they were).",
    )
    .sample(&[], s.docker_invalid as f64);
    {
        let lag = p.gauge(
            "logship_lag_bytes",
            "Bytes in the followed files after the acknowledged offset, by source.",
        );
        for (src, bytes) in &f.lag {
            lag.sample(&[("source", src)], *bytes as f64);
        }
    }
    p.gauge(
        "logship_files_open",
        "Files being followed (including rotated ones being drained).",
    )
    .sample(&[], f.open as f64);
    p.gauge(
        "logship_files_unreadable",
        "Files matched by --file (or Docker's log paths) that could not be opened at the last scan: permission denied, or no file descriptor left.",
    )
    .sample(&[], f.unreadable as f64);
    p.gauge(
        "logship_files_polled",
        "Files followed without inotify (it is unavailable, or out of watches: fs.inotify.max_user_watches), looked at every 250 ms.",
    )
    .sample(&[], f.polled as f64);
    p.gauge(
        "logship_last_push_timestamp_seconds",
        "Unix time of the last batch the sink accepted.",
    )
    .maybe(&[], s.last_push_unix);
    p.gauge(
        "logship_last_run_timestamp_seconds",
        "Unix time this page was written; alert when it is older than a few --sync-interval.",
    )
    .sample(&[], now);
    p
}

/// The `kind: summary` record written on exit.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub lines_read_total: u64,
    pub lines_shipped_total: u64,
    pub lines_dropped_filter_total: u64,
    pub lines_dropped_rate_limit_total: u64,
    pub lines_dropped_rejected_total: u64,
    pub lines_truncated_total: u64,
    pub batches_rejected_total: u64,
    pub push_retries_total: u64,
    pub bytes_shipped_total: u64,
    pub lines_pending: u64,
    pub files_open: usize,
    pub files_unreadable: usize,
    pub lag_bytes: u64,
    pub file_looks_total: u64,
    pub file_sweeps_total: u64,
    pub docker_lists_total: u64,
    pub errors: Vec<String>,
}

/// What the summary takes from beside the pipeline's and the files' counters, by name
/// (two counts side by side as arguments could be swapped unseen).
pub struct Tally {
    pub docker_lists: u64,
    pub lines_pending: u64,
    pub errors: Vec<String>,
}

impl Summary {
    pub fn new(s: &Stats, f: &Files, t: Tally) -> Summary {
        let Tally {
            docker_lists,
            lines_pending,
            errors,
        } = t;
        Summary {
            lines_read_total: s.sources.iter().map(|x| x.read).sum(),
            lines_shipped_total: s.shipped,
            lines_dropped_filter_total: s.dropped_filter,
            lines_dropped_rate_limit_total: s.dropped_rate_limit,
            lines_dropped_rejected_total: s.dropped_rejected,
            lines_truncated_total: s.truncated,
            batches_rejected_total: s.batches_rejected,
            push_retries_total: s.push_retries,
            bytes_shipped_total: s.bytes_shipped,
            lines_pending,
            files_open: f.open,
            files_unreadable: f.unreadable,
            lag_bytes: f.lag.values().sum(),
            file_looks_total: f.looks,
            file_sweeps_total: f.sweeps,
            docker_lists_total: docker_lists,
            errors,
        }
    }
}
