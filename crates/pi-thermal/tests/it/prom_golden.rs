//! Golden Prometheus pages per fixture (node_exporter's textfile_test.go pattern),
//! and `promtool check metrics` on each. `UPDATE_GOLDEN=1 cargo test` rewrites them.

use std::path::Path;

use crate::common::*;

/// Values that depend on the machine running the test, not on the fixture: sizes of
/// the filesystem under the fixture tree, and the run's own time.
fn normalise(page: &str) -> String {
    page.lines()
        .map(|l| {
            let varies = [
                "pi_filesystem_size_bytes{",
                "pi_filesystem_avail_bytes{",
                "pi_last_run_timestamp_seconds ",
            ];
            if varies.iter().any(|p| l.starts_with(p)) {
                let (series, _) = l.rsplit_once(' ').unwrap();
                format!("{series} <varies>\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

fn check_golden(name: &str, args: &[&str]) {
    let out = pi_thermal()
        .args(args)
        .args(["--format", "prom"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = String::from_utf8(out.stdout).unwrap();
    promtool_check(&page);
    assert!(page.ends_with('\n'));
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{name}.prom"));
    homelab_testkit::assert_golden(&golden, &normalise(&page));
}

#[test]
fn golden_pi5() {
    check_golden(
        "pi5",
        &[
            "--root",
            fixture("pi5").to_str().unwrap(),
            "--vcgencmd",
            vcgencmd("pi5").to_str().unwrap(),
        ],
    );
}

#[test]
fn golden_pi4() {
    check_golden("pi4", &["--root", fixture("pi4").to_str().unwrap()]);
}

#[test]
fn golden_x86() {
    check_golden("x86", &["--root", fixture("x86").to_str().unwrap()]);
}

#[test]
fn pinned_metric_names_are_present_on_a_pi5() {
    let page = pi5_page();
    for name in [
        "pi_temperature_celsius",
        "pi_cpu_frequency_hertz",
        "pi_cpu_max_frequency_hertz",
        "pi_arm_clock_hertz",
        "pi_throttled",
        "pi_throttled_occurred",
        "pi_under_voltage_alarm",
        "pi_fan_speed_rpm",
        "pi_fan_pwm_ratio",
        "pi_power_watts",
        "pi_power_rail_watts",
        "pi_input_voltage_volts",
        "pi_memory_total_bytes",
        "pi_memory_available_bytes",
        "pi_swap_total_bytes",
        "pi_swap_free_bytes",
        "pi_filesystem_size_bytes",
        "pi_filesystem_avail_bytes",
        "pi_load1",
        "pi_load5",
        "pi_load15",
        "pi_pressure_some_ratio",
        "pi_uptime_seconds",
        "pi_info",
        "pi_last_run_timestamp_seconds",
    ] {
        assert!(page.contains(&format!("# TYPE {name} gauge\n")), "{name} missing");
    }
    assert_eq!(
        series(
            &page,
            r#"pi_temperature_celsius{sensor="cpu-thermal",input="thermal_zone0"}"#
        ),
        Some(59.3)
    );
    assert_eq!(
        series(&page, r#"pi_throttled{condition="under_voltage"}"#),
        Some(0.0)
    );
    assert_eq!(
        series(&page, r#"pi_pressure_some_ratio{resource="io",window="10s"}"#),
        Some(0.031)
    );
    assert_eq!(
        series(&page, r#"pi_info{model="Raspberry Pi 5 Model B Rev 1.0"}"#),
        Some(1.0)
    );
    assert!(!page.contains("node_"), "never node_ names");
}

#[test]
fn missing_sources_are_omitted_not_zero() {
    let out = pi_thermal()
        .args(["--root", fixture("x86").to_str().unwrap(), "--format", "prom"])
        .output()
        .unwrap();
    let page = String::from_utf8(out.stdout).unwrap();
    for absent in [
        "pi_fan_speed_rpm",
        "pi_power_watts",
        "pi_throttled",
        "pi_arm_clock_hertz",
        "pi_info",
        "pi_pressure_some_ratio",
        "pi_cpu_frequency_hertz",
    ] {
        assert!(
            !page.contains(&format!("\n{absent}")),
            "{absent} should be absent off a Pi:\n{page}"
        );
    }
}
