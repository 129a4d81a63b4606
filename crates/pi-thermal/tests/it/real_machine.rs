//! pi-thermal on the machine running the tests, checked against what the kernel and
//! coreutils say, and against its own man page.

use std::collections::BTreeSet;
use std::process::Command;

use crate::common::*;

#[test]
fn real_machine_numbers_match_the_kernel() {
    let r = run(&[]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let s = r.sample();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let total_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap();
    assert_eq!(s.memory.as_ref().unwrap().total_bytes, total_kb * 1024);

    // The root filesystem's size as df(1) sees it.
    let df = Command::new("df")
        .args(["-B1", "--output=size", "/"])
        .output()
        .unwrap();
    let df_size: u64 = String::from_utf8(df.stdout)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let root = s
        .filesystems
        .iter()
        .find(|f| f.mountpoint == "/")
        .expect("/ is reported");
    assert_eq!(root.size_bytes, df_size);

    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((s.uptime_seconds.unwrap() - uptime).abs() < 5.0);
    assert!(s.load1.unwrap() >= 0.0);
    assert!(
        s.filesystems.iter().all(
            |f| !["proc", "sysfs", "cgroup", "cgroup2", "devpts", "overlay"].contains(&f.fstype.as_str())
        )
    );
}

#[test]
fn real_machine_page_passes_promtool() {
    let out = pi_thermal().args(["--format", "prom"]).output().unwrap();
    assert!(out.status.success());
    promtool_check(&String::from_utf8(out.stdout).unwrap());
}

#[test]
fn man_page_documents_every_field_and_metric() {
    let man = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../man/pi-thermal.1"))
        .expect("man/pi-thermal.1 exists (cargo run -p homelab-docs -- man)");

    let mut fields = BTreeSet::new();
    for (root, vc) in [("pi5", Some("pi5")), ("pi4", None)] {
        let mut args = vec!["--root".to_string(), fixture(root).display().to_string()];
        if let Some(vc) = vc {
            args.extend(["--vcgencmd".into(), vcgencmd(vc).display().to_string()]);
        }
        let out = pi_thermal().args(&args).output().unwrap();
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            homelab_testkit::json_keys(&serde_json::from_str(line).unwrap(), &mut fields);
        }
    }
    let missing = homelab_testkit::undocumented(&man, fields.iter().map(String::as_str));
    assert!(
        missing.is_empty(),
        "JSON fields not in the man page's OUTPUT: {missing:?}"
    );

    let page = pi5_page();
    let metrics: Vec<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .collect();
    let missing = homelab_testkit::undocumented(&man, metrics.iter().copied());
    assert!(missing.is_empty(), "metrics not in the man page: {missing:?}");
}
