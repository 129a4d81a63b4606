//! End to end with a real node_exporter (started by scripts/test with its textfile
//! collector on HLT_TEXTFILE_DIR): pi-thermal's page is read without error, carries
//! the fixture's values, and stays readable while pi-thermal rewrites it in a loop.

use std::collections::BTreeSet;
use std::process::Stdio;

use crate::common::*;

fn env(var: &str) -> String {
    homelab_testkit::service_env(var, "the node_exporter that scripts/test starts")
}

fn scrape() -> String {
    homelab_testkit::http_get(&env("HLT_NODE_EXPORTER_URL"))
}

/// The value of the first series of `name` whose labels include all of `labels`
/// (node_exporter sorts labels, so they are matched one by one).
fn value(page: &str, name: &str, labels: &[&str]) -> Option<f64> {
    page.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            return None;
        }
        let (series, v) = l.rsplit_once(' ')?;
        labels
            .iter()
            .all(|want| series.contains(want))
            .then(|| v.parse().ok())?
    })
}

#[test]
fn node_exporter_serves_pi_thermal_metrics_while_they_are_rewritten() {
    let dir = env("HLT_TEXTFILE_DIR");
    let pi5 = fixture("pi5");
    let vc = vcgencmd("pi5");
    let out = pi_thermal()
        .args([
            "--root",
            pi5.to_str().unwrap(),
            "--vcgencmd",
            vc.to_str().unwrap(),
            "--textfile-dir",
            &dir,
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let page = scrape();
    assert_eq!(
        value(&page, "node_textfile_scrape_error", &[]),
        Some(0.0),
        "{page}"
    );
    assert_eq!(
        value(&page, "pi_temperature_celsius", &["sensor=\"cpu-thermal\""]),
        Some(59.3)
    );
    assert_eq!(
        value(&page, "pi_temperature_celsius", &["sensor=\"nvme\""]),
        Some(32.85)
    );
    assert_eq!(value(&page, "pi_fan_speed_rpm", &[]), Some(3054.0));
    assert_eq!(value(&page, "pi_power_watts", &[]), Some(1.766707));
    assert_eq!(value(&page, "pi_arm_clock_hertz", &[]), Some(2400023808.0));
    assert_eq!(
        value(&page, "pi_throttled", &["condition=\"under_voltage\""]),
        Some(0.0)
    );
    assert_eq!(
        value(&page, "pi_info", &["model=\"Raspberry Pi 5 Model B Rev 1.0\""]),
        Some(1.0)
    );
    assert!(value(&page, "node_textfile_mtime_seconds", &["pi-thermal.prom"]).is_some());

    // Rewrite the file every 20 ms while scraping it: at least 60 times, and on until
    // six different runs were seen (a loaded machine may start the writer late), for at
    // most a minute.
    let writer = pi_thermal()
        .args([
            "--root",
            pi5.to_str().unwrap(),
            "--vcgencmd",
            vc.to_str().unwrap(),
            "--textfile-dir",
            &dir,
            "--quiet",
            "--interval",
            "20ms",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut runs = BTreeSet::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut i = 0;
    while i < 60 || (runs.len() <= 5 && std::time::Instant::now() < deadline) {
        i += 1;
        let page = scrape();
        assert_eq!(
            value(&page, "node_textfile_scrape_error", &[]),
            Some(0.0),
            "scrape {i}:\n{page}"
        );
        assert_eq!(
            value(&page, "pi_temperature_celsius", &["sensor=\"cpu-thermal\""]),
            Some(59.3),
            "scrape {i}"
        );
        let last = value(&page, "pi_last_run_timestamp_seconds", &[]).expect("pi_last_run_timestamp_seconds");
        runs.insert(last.to_bits());
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(writer.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    let out = writer.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        runs.len() > 5,
        "the file was rewritten during the scrapes ({} distinct runs seen in {i} scrapes)",
        runs.len()
    );
}
