//! pi-thermal on fixture trees: a Pi 5, a Pi 4 and a plain x86 machine, with fake
//! vcgencmd scripts that print outputs captured on real boards.

use crate::common::*;

/// Runs pi-thermal on a fixture. The fixtures' mount points are statvfs'd on the disk
/// of the machine running the tests, whose free space is not the fixture's: the disk
/// thresholds are off here (they are tested on literal samples in alerts.rs and in
/// `disk_thresholds_apply_to_every_real_mount` below).
fn run(args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["--warn-disk", "0", "--crit-disk", "0"]);
    crate::common::run(&all)
}

#[test]
fn pi5_reports_every_source() {
    let r = run(&[
        "--root",
        fixture("pi5").to_str().unwrap(),
        "--vcgencmd",
        vcgencmd("pi5").to_str().unwrap(),
    ]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    let s = r.sample();
    assert_eq!(
        (s.v, s.tool.as_str(), s.kind.as_str()),
        (1, "pi-thermal", "sample")
    );
    assert_eq!(s.host, "pi5-homelab", "host comes from the root's /etc/hostname");
    assert!(
        s.ts.ends_with('Z') && s.ts.len() == "2026-11-26T06:00:00.123Z".len(),
        "{}",
        s.ts
    );
    assert_eq!(s.model.as_deref(), Some("Raspberry Pi 5 Model B Rev 1.0"));
    assert_eq!(s.errors, Vec::<String>::new());

    let t = |sensor: &str| {
        s.temperatures
            .iter()
            .find(|t| t.sensor == sensor)
            .unwrap_or_else(|| panic!("no {sensor}"))
    };
    assert_eq!(t("cpu-thermal").temperature_celsius, 59.3);
    assert_eq!(t("cpu-thermal").input, "thermal_zone0");
    assert_eq!(t("cpu_thermal").temperature_celsius, 59.3);
    assert_eq!(t("rp1_adc").temperature_celsius, 55.472);
    assert_eq!(t("nvme").temperature_celsius, 32.85);
    assert_eq!(t("nvme").label.as_deref(), Some("Composite"));

    assert_eq!(s.cpus.len(), 4);
    assert_eq!(s.cpus[0].frequency_hertz, Some(1.5e9));
    assert_eq!(s.cpus[3].frequency_hertz, Some(2.4e9));
    assert_eq!(s.cpus[3].max_frequency_hertz, Some(2.4e9));
    assert_eq!(s.arm_clock_hertz, Some(2400023808.0));

    let th = s.throttled.as_ref().unwrap();
    assert_eq!((th.source.as_str(), th.bits), ("vcgencmd", 0));
    assert!(!th.under_voltage && !th.throttled_occurred);
    assert_eq!(s.under_voltage_alarm, Some(false));

    let fan = s.fan.as_ref().unwrap();
    assert_eq!(fan.speed_rpm, Some(3054.0));
    assert_eq!(fan.pwm_ratio, Some(0.4902));
    assert_eq!(s.cooling_devices[0].kind, "pwm-fan");
    assert_eq!(
        (s.cooling_devices[0].state, s.cooling_devices[0].max_state),
        (Some(2), Some(4))
    );

    let p = s.power.as_ref().unwrap();
    assert_eq!(p.rails.len(), 12);
    assert_eq!(p.total_watts, 1.766707);
    assert_eq!(p.input_voltage_volts, Some(5.14158));

    let m = s.memory.as_ref().unwrap();
    assert_eq!(m.total_bytes, 8245488 * 1024);
    assert_eq!(m.available_bytes, Some(6823104 * 1024));
    assert_eq!(m.swap_total_bytes, 204784 * 1024);

    let mounts: Vec<&str> = s.filesystems.iter().map(|f| f.mountpoint.as_str()).collect();
    assert_eq!(
        mounts,
        ["/", "/run", "/boot/firmware", "/mnt/nvme"],
        "pseudo filesystems and Docker layers skipped"
    );
    assert_eq!(s.filesystems[0].device, "/dev/nvme0n1p2");
    assert!(
        s.filesystems
            .iter()
            .all(|f| f.size_bytes > 0 && f.avail_bytes <= f.size_bytes)
    );

    assert_eq!((s.load1, s.load5, s.load15), (Some(0.42), Some(0.37), Some(0.31)));
    assert_eq!(s.uptime_seconds, Some(352811.27));
    assert_eq!(s.pressure.len(), 3);
    assert_eq!(s.pressure[1].resource, "memory");
    assert_eq!(s.pressure[1].some_avg10_percent, 1.2);
    assert_eq!(s.pressure[1].full_stall_seconds_total, Some(1.190023));
    assert!(r.alerts.is_empty());
}

#[test]
fn pi4_reads_the_sysfs_throttle_word_without_vcgencmd_and_alerts() {
    let r = run(&["--root", fixture("pi4").to_str().unwrap(), "--check"]);
    assert_eq!(
        r.code(),
        Some(2),
        "critical: 81.3 °C and throttled now; {}",
        r.stderr()
    );
    let s = r.sample();
    assert_eq!(s.model.as_deref(), Some("Raspberry Pi 4 Model B Rev 1.1"));
    let th = s.throttled.as_ref().unwrap();
    assert_eq!((th.source.as_str(), th.bits), ("sysfs", 0x50005));
    assert!(th.under_voltage && th.throttled && th.under_voltage_occurred && th.throttled_occurred);
    assert!(!th.arm_frequency_capped && !th.soft_temp_limit_occurred);
    assert_eq!(s.under_voltage_alarm, Some(true));
    assert!(s.fan.is_none() && s.power.is_none() && s.arm_clock_hertz.is_none());
    assert!(s.pressure.is_empty(), "no /proc/pressure: PSI off is normal");
    assert_eq!(s.errors, Vec::<String>::new());

    let checks: Vec<(&str, &str)> = r
        .alerts
        .iter()
        .map(|a| (a.check.as_str(), a.severity.as_str()))
        .collect();
    assert_eq!(
        checks,
        [
            ("temperature", "critical"),
            ("throttling", "critical"),
            ("under_voltage", "critical")
        ]
    );
    assert_eq!(r.alerts[0].value, Some(81.302));
    assert_eq!(r.alerts[0].threshold, Some(80.0));
    assert_eq!(r.alerts[1].subject, "under_voltage,throttled");
}

/// Issue 23: a Pi 4 under-volted was told to buy the Pi 5's 27 W supply; its own is
/// the 15 W (5.1 V 3 A) one. The advice follows the board's model.
#[test]
fn under_voltage_advice_names_the_supply_of_the_boards_model() {
    let supplies = |root: &std::path::Path| -> Vec<String> {
        let r = run(&["--root", root.to_str().unwrap()]);
        let msgs: Vec<String> = r
            .alerts
            .iter()
            .filter(|a| a.check == "throttling" || a.check == "under_voltage")
            .map(|a| a.message.clone())
            .collect();
        assert_eq!(msgs.len(), 2, "{:?}", r.alerts);
        msgs
    };
    for m in supplies(&fixture("pi4")) {
        assert!(m.contains("official 15 W supply (5.1 V 3 A"), "{m}");
        assert!(!m.contains("27 W"), "{m}");
    }
    // The same readings from a board that says it is a Pi 5.
    let d = copy_fixture("pi4");
    std::fs::write(
        d.path().join("proc/device-tree/model"),
        b"Raspberry Pi 5 Model B Rev 1.0\0",
    )
    .unwrap();
    for m in supplies(d.path()) {
        assert!(m.contains("official 27 W supply (5.1 V 5 A"), "{m}");
    }
}

#[test]
fn pi4_with_vcgencmd_prefers_it_over_sysfs() {
    let r = run(&[
        "--root",
        fixture("pi4").to_str().unwrap(),
        "--vcgencmd",
        vcgencmd("pi4-throttled").to_str().unwrap(),
    ]);
    let s = r.sample();
    assert_eq!(s.throttled.as_ref().unwrap().source, "vcgencmd");
    assert_eq!(s.arm_clock_hertz, Some(1000212864.0));
    assert!(
        s.power.is_none(),
        "pmic_read_adc is not registered on a Pi 4: null, not an error"
    );
    assert_eq!(s.errors, Vec::<String>::new());
}

#[test]
fn x86_has_null_pi_fields_and_is_still_useful() {
    let r = run(&["--root", fixture("x86").to_str().unwrap(), "--check"]);
    assert_eq!(
        r.code(),
        Some(1),
        "warning: 6.7 % memory available; {}",
        r.stderr()
    );
    let s = r.sample();
    assert!(s.model.is_none() && s.throttled.is_none() && s.fan.is_none() && s.power.is_none());
    assert!(s.arm_clock_hertz.is_none() && s.under_voltage_alarm.is_none() && s.cpus.is_empty());
    assert_eq!(s.errors, Vec::<String>::new());
    let inputs: Vec<(&str, &str)> = s
        .temperatures
        .iter()
        .map(|t| (t.sensor.as_str(), t.input.as_str()))
        .collect();
    assert_eq!(
        inputs,
        [
            ("x86_pkg_temp", "thermal_zone0"),
            ("acpitz", "thermal_zone1"),
            ("nvme", "hwmon0/temp1"),
            ("nvme", "hwmon1/temp1"),
            ("nvme", "hwmon1/temp2")
        ],
        "two devices named nvme are told apart"
    );
    assert_eq!(s.temperatures[4].label.as_deref(), Some("Sensor 1"));
    assert!(s.memory.is_some() && s.load1.is_some() && s.uptime_seconds.is_some());
    assert_eq!(r.alerts.len(), 1);
    assert_eq!(
        (r.alerts[0].check.as_str(), r.alerts[0].value),
        ("memory", Some(6.7))
    );
}

#[test]
fn thresholds_are_flags() {
    let pi5 = fixture("pi5");
    let r = run(&["--root", pi5.to_str().unwrap(), "--warn-temp", "55", "--check"]);
    assert_eq!(r.code(), Some(1));
    assert_eq!(r.alerts[0].threshold, Some(55.0));
    let r = run(&[
        "--root",
        pi5.to_str().unwrap(),
        "--warn-temp",
        "50",
        "--crit-temp",
        "59",
        "--check",
    ]);
    assert_eq!(r.code(), Some(2));
    // Without --check the alerts are printed but the run is a success.
    let r = run(&[
        "--root",
        pi5.to_str().unwrap(),
        "--warn-temp",
        "50",
        "--crit-temp",
        "59",
    ]);
    assert_eq!(r.code(), Some(0));
    assert_eq!(r.alerts.len(), 1);
}

#[test]
fn loop_mode_prints_count_rounds() {
    let r = run(&[
        "--root",
        fixture("pi5").to_str().unwrap(),
        "--interval",
        "10ms",
        "--count",
        "3",
    ]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert_eq!(r.samples.len(), 3);
    assert!(r.samples.windows(2).all(|w| w[0].ts <= w[1].ts));
}

/// The disk lines' figures are this machine's (the fixtures' mount points are
/// statvfs'd here): each becomes `MOUNT <figures> FSTYPE`.
fn mask_disk_figures(text: &str) -> String {
    let mut in_disks = false;
    let mut out = String::new();
    for line in text.lines() {
        if !line.starts_with(' ') {
            in_disks = line == "Disks";
        } else if in_disks {
            let words: Vec<&str> = line.split_whitespace().collect();
            assert!(line.contains(" free of "), "{line}");
            out.push_str(&format!("  {} <figures> {}\n", words[0], words[words.len() - 1]));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The text view on the Pi 5 fixture is a status panel: units, states in words, no
/// metric names, label strings or raw byte counts (it printed `pi_memory_available_bytes
/// 6986858496`). Pinned whole in tests/golden/pi5.txt (UPDATE_GOLDEN=1 rewrites it).
#[test]
fn text_format_on_a_pi_5_is_a_status_panel() {
    let out = pi_thermal()
        .args(["--root", fixture("pi5").to_str().unwrap()])
        .args(["--vcgencmd", vcgencmd("pi5").to_str().unwrap()])
        .args(["--format", "text", "--warn-disk", "0", "--crit-disk", "0"])
        .env_remove("COLUMNS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\x1b'), "no colour off a terminal: {text:?}");
    assert!(!text.contains("pi_"), "metric names: {text}");
    assert!(!text.contains('='), "label strings: {text}");
    let long_number = text
        .split(|c: char| !c.is_ascii_digit())
        .any(|run| run.len() >= 6);
    assert!(!long_number, "raw counts: {text}");
    for unit in ["°C", " rpm", " %", " W", " V ", " GiB", " days", " GHz"] {
        assert!(text.contains(unit), "no {unit:?} in {text}");
    }
    assert!(text.contains("Throttled    now: no; since boot: no"), "{text}");
    homelab_testkit::assert_golden(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/pi5.txt"),
        &mask_disk_figures(&text),
    );
}

/// A hot, under-powered Pi 4: the problems are marked where they show and listed with
/// what to do; colour on a terminal (a pseudo-terminal from script(1)), never with
/// NO_COLOR.
#[test]
fn text_format_marks_problems_and_colours_only_a_terminal() {
    let (root, vc) = (fixture("pi4"), vcgencmd("pi4-throttled"));
    let args = [
        "--root",
        root.to_str().unwrap(),
        "--vcgencmd",
        vc.to_str().unwrap(),
        "--format",
        "text",
        "--warn-disk",
        "0",
        "--crit-disk",
        "0",
    ];
    let out = pi_thermal().args(args).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("now: under-voltage, throttled !; since boot: under-voltage, throttled"),
        "{text}"
    );
    assert!(text.contains("SoC 81.3 °C !"), "{text}");
    assert!(
        text.contains("Problems\n  ! critical: cpu-thermal is at 81.3 °C"),
        "{text}"
    );
    assert!(
        text.contains("! critical: the firmware reports under voltage and throttled now"),
        "{text}"
    );

    // On a terminal: colour, unless NO_COLOR is set.
    let on_tty = |no_color| {
        let (code, out) = homelab_testkit::on_terminal(
            std::path::Path::new(env!("CARGO_BIN_EXE_pi-thermal")),
            &args,
            no_color,
        );
        assert_eq!(code, Some(0), "{out}");
        out
    };
    let coloured = on_tty(None);
    assert!(
        coloured.contains("\x1b[1m\x1b[31m"),
        "red on a terminal: {coloured:?}"
    );
    assert!(coloured.contains("SoC 81.3 °C !"), "{coloured:?}");
    let plain = on_tty(Some("1"));
    assert!(plain.contains("SoC 81.3 °C !"), "{plain:?}");
    assert!(!plain.contains('\x1b'), "NO_COLOR: {plain:?}");
}

#[test]
fn disk_thresholds_apply_to_every_real_mount() {
    // Whatever this machine's free space, a threshold of 100 % free makes every mount
    // critical and 0 % none.
    let pi5 = fixture("pi5");
    let r = crate::common::run(&[
        "--root",
        pi5.to_str().unwrap(),
        "--warn-disk",
        "100",
        "--crit-disk",
        "100",
        "--check",
    ]);
    assert_eq!(r.code(), Some(2));
    let disks: Vec<&str> = r
        .alerts
        .iter()
        .filter(|a| a.check == "disk")
        .map(|a| a.subject.as_str())
        .collect();
    assert_eq!(disks, ["/", "/run", "/boot/firmware", "/mnt/nvme"]);
    assert!(
        r.alerts
            .iter()
            .all(|a| a.check != "disk" || a.severity == "critical")
    );
}
