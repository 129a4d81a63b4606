//! The man page documents every JSON field and metric, and the Prometheus page of a
//! known run matches its golden file and passes promtool.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::*;

fn keys(v: &serde_json::Value, out: &mut BTreeSet<String>) {
    if let serde_json::Value::Object(m) = v {
        for (k, v) in m {
            out.insert(k.clone());
            // Label names are data, not fields.
            if k != "labels" {
                keys(v, out);
            }
        }
    }
}

/// A run with a filter and a cut line, in a batch Loki refuses (`reject`) or takes.
fn prom_page(reject: bool) -> String {
    let rx = Receiver::start();
    if reject {
        rx.state.lock().unwrap().max_line = Some(40);
    }
    let out = ship()
        .args([
            "--stdin",
            "--loki",
            &rx.url(),
            "--format",
            "prom",
            "--drop",
            "^noise",
            "--max-line-bytes",
            "64",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            let mut i = c.stdin.take().unwrap();
            i.write_all(b"one\nnoise\nthis line is longer than forty bytes, so it is refused\n")?;
            i.write_all(&[b'z'; 100])?;
            drop(i);
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn golden_prometheus_page() {
    let _shared = homelab_testkit::shared();
    let page = prom_page(true);
    homelab_testkit::promtool_check_metrics(&page);
    let normalised: String = page
        .lines()
        .map(|l| {
            if l.starts_with("logship_last_run_timestamp_seconds ")
                || l.starts_with("logship_last_push_timestamp_seconds ")
            {
                format!("{} <varies>\n", l.rsplit_once(' ').unwrap().0)
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/stdin.prom");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &normalised).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_default();
    assert!(
        normalised == expected,
        "differs from {} (UPDATE_GOLDEN=1 to accept):\n{normalised}",
        golden.display()
    );
}

#[test]
fn man_page_documents_every_field_and_metric() {
    let _shared = homelab_testkit::shared();
    let man = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../man/log-tail-ship.1"))
        .expect("man/log-tail-ship.1 exists (cargo run -p homelab-docs -- man)");
    let documented = |name: &str| man.contains(&format!("\\fB{}\\fR", name.replace('-', "\\-")));
    let r = run_with_input(&["--stdin", "--stdout", "--label", "job=x"], b"a line\n");
    let mut fields = BTreeSet::new();
    for l in String::from_utf8(r.output.stdout.clone()).unwrap().lines() {
        keys(&serde_json::from_str(l).unwrap(), &mut fields);
    }
    assert!(fields.contains("lines_read_total") && fields.contains("timestamp"));
    // Labels the sources set are documented too.
    fields.extend(["host", "filename", "container", "compose_service", "stream"].map(String::from));
    let missing: Vec<&String> = fields.iter().filter(|f| !documented(f)).collect();
    assert!(missing.is_empty(), "JSON fields not in the man page: {missing:?}");

    let page = prom_page(true) + &prom_page(false);
    let metrics: BTreeSet<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .collect();
    assert!(metrics.len() >= 10, "{metrics:?}");
    // Only present while files are followed (checked in the file tests).
    assert!(documented("logship_lag_bytes"));
    let missing: Vec<&&str> = metrics.iter().filter(|m| !documented(m)).collect();
    assert!(missing.is_empty(), "metrics not in the man page: {missing:?}");
    for pinned in [
        "logship_lines_read_total",
        "logship_lines_shipped_total",
        "logship_lines_dropped_total",
        "logship_batches_rejected_total",
        "logship_push_retries_total",
        "logship_bytes_shipped_total",
        "logship_last_push_timestamp_seconds",
        "logship_last_run_timestamp_seconds",
    ] {
        assert!(metrics.contains(&pinned), "{pinned} missing");
    }
}
