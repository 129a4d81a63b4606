//! The Prometheus page of a plan run. The names are pinned by the issue that asked
//! for the tool: dashboards and alert rules depend on them.

use homelab_core::Page;

use crate::record::RuleRecord;

/// The metric that carries the time of the last `apply`; `check` carries it over
/// from the textfile it replaces.
pub const LAST_APPLY: &str = "cpupin_last_apply_timestamp_seconds";

pub fn page(rules: &[RuleRecord], now: f64, last_apply: Option<f64>) -> Page {
    let mut p = Page::new();
    for r in rules {
        let l = [("rule", r.rule.as_str())];
        p.gauge(
            "cpupin_rule_cpus",
            "Number of CPUs the plan rule gives its targets.",
        )
        .sample(&l, r.cpus.len() as f64);
        p.gauge(
            "cpupin_targets",
            "Processes, containers or cgroups the rule found.",
        )
        .sample(&l, r.targets as f64);
        p.gauge(
            "cpupin_threads",
            "Threads the rule covers (every thread of every process it found).",
        )
        .sample(&l, r.threads as f64);
        p.gauge(
            "cpupin_drift",
            "1 when a target of the rule is not as the plan says after this run (check: found drifted; apply: could not be fixed).",
        )
        .sample(&l, f64::from(u8::from(r.drift)));
        p.gauge(
            "cpupin_errors",
            "Problems the rule met in this run (see the JSON errors).",
        )
        .sample(&l, r.errors.len() as f64);
    }
    p.gauge(LAST_APPLY, "Unix time of the last cpu-pin apply.")
        .maybe(&[], last_apply);
    p.gauge(
        "cpupin_last_run_timestamp_seconds",
        "Unix time of cpu-pin's last apply or check.",
    )
    .sample(&[], now);
    p
}

/// The last-apply time in an earlier page (the textfile `check` is about to replace).
pub fn last_apply_in(page: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(LAST_APPLY)?.strip_prefix(' ')?.trim().parse().ok())
        .filter(|v: &f64| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_last_apply_time() {
        let page = "# HELP cpupin_last_apply_timestamp_seconds x\n# TYPE cpupin_last_apply_timestamp_seconds gauge\n\
                    cpupin_last_apply_timestamp_seconds 1795672800.5\ncpupin_last_run_timestamp_seconds 1\n";
        assert_eq!(last_apply_in(page), Some(1795672800.5));
        assert_eq!(last_apply_in("cpupin_last_apply_timestamp_seconds_x 3\n"), None);
        assert_eq!(last_apply_in("cpupin_last_apply_timestamp_seconds NaN\n"), None);
        assert_eq!(last_apply_in(""), None);
    }
}
