//! `--format text` with `--loki`: what the run did, for a person at a terminal, in
//! words and units (the JSON summary and the Prometheus page keep the names that
//! dashboards depend on). A line that needs attention starts with `!` (red on a
//! terminal, never with NO_COLOR); the errors close it as every tool's Problems list.

use homelab_core::text::{Paint, Table, human_bytes, problem_list};

use crate::metrics::{Files, Summary};
use crate::pipeline::Stats;

/// The panel: totals, then each source's lines and backlog, then the errors.
pub fn view(s: &Summary, stats: &Stats, files: &Files, paint: Paint, width: Option<usize>) -> String {
    let mut lines: Vec<(bool, String, String)> = Vec::new();
    let mut row = |problem: bool, what: &str, value: String| lines.push((problem, what.to_string(), value));
    row(false, "lines read", count(s.lines_read_total, "line"));
    row(
        false,
        "shipped",
        format!(
            "{} ({})",
            count(s.lines_shipped_total, "line"),
            human_bytes(s.bytes_shipped_total)
        ),
    );
    row(
        s.lines_pending > 0,
        "not shipped yet",
        if s.lines_pending > 0 {
            format!(
                "{}: sent again from the positions at the next start",
                count(s.lines_pending, "line")
            )
        } else {
            "none".into()
        },
    );
    let dropped = [
        ("by --keep/--drop", s.lines_dropped_filter_total),
        ("over --rate", s.lines_dropped_rate_limit_total),
        ("refused by Loki", s.lines_dropped_rejected_total),
    ];
    let dropped_text: Vec<String> = dropped
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(why, n)| format!("{} {why}", count(*n, "line")))
        .collect();
    row(
        s.lines_dropped_rate_limit_total > 0 || s.lines_dropped_rejected_total > 0,
        "dropped",
        if dropped_text.is_empty() {
            "none".into()
        } else {
            dropped_text.join(", ")
        },
    );
    row(
        s.lines_truncated_total > 0,
        "cut to --max-line-bytes",
        count(s.lines_truncated_total, "line"),
    );
    row(
        s.batches_rejected_total > 0,
        "batches refused by Loki",
        s.batches_rejected_total.to_string(),
    );
    row(false, "push retries", s.push_retries_total.to_string());
    row(
        s.files_unreadable > 0,
        "files",
        if s.files_unreadable > 0 {
            format!(
                "{} followed, {} could not be opened",
                s.files_open, s.files_unreadable
            )
        } else {
            format!("{} followed", s.files_open)
        },
    );
    row(false, "behind in files", human_bytes(s.lag_bytes));
    let w = lines.iter().map(|(_, w, _)| w.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (problem, what, value) in &lines {
        if *problem {
            out.push_str(&paint.bad(&format!("! {what:<w$}  {value}")));
            out.push('\n');
        } else {
            out.push_str(&format!("  {what:<w$}  {value}\n"));
        }
    }
    if !stats.sources.is_empty() {
        let mut t = Table::new(&["SOURCE", "LINES READ", "BEHIND"]);
        for src in &stats.sources {
            t.row([
                src.name.clone(),
                src.read.to_string(),
                files
                    .lag
                    .get(&src.name)
                    .map(|b| human_bytes(*b))
                    .unwrap_or_else(|| "-".into()),
            ]);
        }
        out.push('\n');
        out.push_str(&t.render_within(width));
    }
    out.push_str(&problem_list(&s.errors, paint, width));
    out
}

/// `1 line`, `2 lines`.
fn count(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_units_with_problems_marked() {
        let mut stats = Stats::default();
        let a = stats.source("/var/log/app.log");
        stats.sources[a].read = 3;
        stats.shipped = 2;
        stats.bytes_shipped = 3 << 20;
        stats.dropped_rate_limit = 1;
        let mut files = Files::default();
        files.lag.insert("/var/log/app.log".into(), 2048);
        files.open = 1;
        let tally = crate::metrics::Tally {
            docker_lists: 0,
            lines_pending: 0,
            errors: vec!["a file vanished".into()],
        };
        let s = Summary::new(&stats, &files, tally);
        let v = view(&s, &stats, &files, Paint { on: false }, None);
        assert!(!v.contains("logship_"), "{v}");
        assert!(v.contains("  shipped"), "{v}");
        assert!(v.contains("2 lines (3.0 MiB)"), "{v}");
        assert!(v.contains("! dropped"), "{v}");
        assert!(v.contains("1 line over --rate"), "{v}");
        assert!(v.contains("2.0 KiB"), "{v}");
        assert!(v.contains("! a file vanished"), "{v}");
        assert!(v.contains("  not shipped yet"), "{v}");
        assert!(v.ends_with("\nProblems\n  ! a file vanished\n"), "{v}");
        assert!(!v.contains('\x1b'), "{v:?}");
        let painted = view(&s, &stats, &files, Paint { on: true }, None);
        assert!(painted.contains("\x1b[1m\x1b[31m! dropped"), "{painted:?}");
    }
}
