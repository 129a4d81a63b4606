//! Broken inputs, failing helpers and bad flags: a clear note or a documented exit
//! code, a valid page, never a panic.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn broken_files_become_errors_and_the_rest_is_reported() {
    let d = copy_fixture("pi5");
    let root = d.path();
    let w = |p: &str, b: &[u8]| fs::write(root.join(p), b).unwrap();
    w("sys/class/thermal/thermal_zone0/temp", b"garbage\n");
    w("sys/class/hwmon/hwmon1/temp1_input", b"");
    w("sys/class/hwmon/hwmon3/temp1_input", &[0xff, 0xfe, 0x00, 0x41]);
    w("sys/class/hwmon/hwmon2/fan1_input", &vec![b'9'; 1 << 20]);
    // A directory where a value file should be: unreadable even for root.
    fs::remove_file(root.join("sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")).unwrap();
    fs::create_dir(root.join("sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")).unwrap();
    w("proc/loadavg", b"\x00\x00\x00");
    w("proc/uptime", "uptime: é".as_bytes());
    w("proc/pressure/io", b"some avg10=");
    w("proc/pressure/cpu", b"some");
    w("proc/meminfo", "é 5\nMemTotal: lots kB\n".as_bytes());
    w("proc/device-tree/model", &[0xff, b'P', b'i', 0]);

    let r = run(&[
        "--root",
        root.to_str().unwrap(),
        "--vcgencmd",
        vcgencmd("pi5").to_str().unwrap(),
    ]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert!(r.stderr().is_empty(), "stderr: {}", r.stderr());
    let s = r.sample();
    let has = |needle: &str| s.errors.iter().any(|e| e.contains(needle));
    for (needle, why) in [
        (
            "/sys/class/thermal/thermal_zone0/temp: unexpected content \"garbage\"",
            "garbage",
        ),
        (
            "/sys/class/hwmon/hwmon1/temp1_input: unexpected content \"\"",
            "empty",
        ),
        ("/sys/class/hwmon/hwmon3/temp1_input: not UTF-8 text", "non-UTF-8"),
        ("/sys/class/hwmon/hwmon2/fan1_input: larger than", "huge"),
        (
            "/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq: is a directory",
            "unreadable",
        ),
        ("/proc/loadavg: not the kernel's format", "NULs"),
        ("/proc/uptime: not the kernel's format", "non-ASCII"),
        ("/proc/pressure/io: not the kernel's format", "truncated"),
        ("/proc/pressure/cpu: not the kernel's format", "one word"),
        ("/proc/meminfo: not the kernel's format", "garbage meminfo"),
    ] {
        assert!(has(needle), "no error for {why} ({needle}) in {:#?}", s.errors);
    }
    assert_eq!(s.errors.len(), 10, "{:#?}", s.errors);
    // What was readable is still there.
    assert!(
        s.temperatures
            .iter()
            .any(|t| t.sensor == "cpu_thermal" && t.temperature_celsius == 59.3)
    );
    assert_eq!(s.fan.as_ref().unwrap().pwm_ratio, Some(0.4902));
    assert_eq!(s.fan.as_ref().unwrap().speed_rpm, None);
    assert_eq!(
        s.model.as_deref(),
        Some("\u{fffd}Pi"),
        "a mangled model is shown, not dropped"
    );
    assert!(s.memory.is_none() && s.load1.is_none() && s.uptime_seconds.is_none());
    assert_eq!(s.pressure.len(), 1);
    assert!(s.power.is_some());

    let out = pi_thermal()
        .args(["--root", root.to_str().unwrap(), "--format", "prom"])
        .output()
        .unwrap();
    let page = String::from_utf8(out.stdout).unwrap();
    promtool_check(&page);
    assert_eq!(series(&page, "pi_errors"), Some(10.0));
    assert_eq!(series(&page, "pi_memory_total_bytes"), None);
}

#[test]
fn garbage_mount_table_is_one_error() {
    let d = copy_fixture("x86");
    fs::write(d.path().join("proc/1/mountinfo"), b"this is not a mount table\n").unwrap();
    let r = run(&["--root", d.path().to_str().unwrap()]);
    let s = r.sample();
    assert_eq!(s.errors, ["/proc/1/mountinfo: not the kernel's format"]);
    assert!(s.filesystems.is_empty());
}

#[test]
fn vcgencmd_without_permission_is_one_clear_note() {
    let r = run(&[
        "--root",
        fixture("pi5").to_str().unwrap(),
        "--vcgencmd",
        vcgencmd("no-permission").to_str().unwrap(),
    ]);
    assert_eq!(r.code(), Some(0));
    let s = r.sample();
    assert_eq!(s.errors.len(), 1, "{:#?}", s.errors);
    assert!(
        s.errors[0].contains("vcgencmd get_throttled failed (exit status 255)"),
        "{}",
        s.errors[0]
    );
    assert!(s.errors[0].contains("video group"), "{}", s.errors[0]);
    assert!(s.throttled.is_none() && s.arm_clock_hertz.is_none() && s.power.is_none());
    assert!(
        s.fan.is_some() && s.memory.is_some(),
        "the rest is still reported"
    );
}

#[test]
fn vcgencmd_garbage_and_missing_path() {
    let r = run(&[
        "--root",
        fixture("pi5").to_str().unwrap(),
        "--vcgencmd",
        vcgencmd("garbage").to_str().unwrap(),
    ]);
    let s = r.sample();
    assert!(
        s.errors
            .iter()
            .any(|e| e.contains("vcgencmd get_throttled: unexpected output \"throttled=0xZZZ\"")),
        "{:#?}",
        s.errors
    );
    assert!(s.throttled.is_none());

    let r = run(&[
        "--root",
        fixture("pi5").to_str().unwrap(),
        "--vcgencmd",
        "/nonexistent/vcgencmd",
    ]);
    let s = r.sample();
    assert_eq!(r.code(), Some(0));
    assert!(
        s.errors[0].contains("vcgencmd /nonexistent/vcgencmd: not found"),
        "{:#?}",
        s.errors
    );
}

#[test]
fn a_hung_vcgencmd_is_killed_at_its_time_limit() {
    let t = Instant::now();
    let r = run(&[
        "--root",
        fixture("pi5").to_str().unwrap(),
        "--vcgencmd",
        vcgencmd("hangs").to_str().unwrap(),
    ]);
    assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
    let s = r.sample();
    assert_eq!(s.errors.len(), 1, "{:#?}", s.errors);
    assert!(s.errors[0].contains("no answer within 3s"), "{}", s.errors[0]);
}

#[test]
fn usage_and_fatal_errors_have_documented_codes() {
    let r = run(&["--warn-temp", "90", "--crit-temp", "80"]);
    assert_eq!(r.code(), Some(64));
    assert_eq!(r.stderr(), "pi-thermal: --warn-temp 90 is above --crit-temp 80\n");
    let r = run(&["--interval", "never"]);
    assert_eq!(r.code(), Some(64));
    let r = run(&["--count", "2"]);
    assert_eq!(r.code(), Some(64), "--count needs --interval");
    let r = run(&["--root", "/nonexistent/root"]);
    assert_eq!(r.code(), Some(66));
    assert!(
        r.stderr()
            .starts_with("pi-thermal: --root /nonexistent/root: no such file or directory: "),
        "{}",
        r.stderr()
    );
    assert!(r.output.stdout.is_empty());
    let r = run(&[
        "--root",
        fixture("x86").to_str().unwrap(),
        "--textfile-dir",
        "/nonexistent/dir",
        "--quiet",
    ]);
    assert_eq!(r.code(), Some(73));
    assert!(
        r.stderr().contains("--textfile-dir /nonexistent/dir"),
        "{}",
        r.stderr()
    );
}

#[test]
fn textfile_is_written_atomically_with_mode_0644() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(&[
        "--root",
        fixture("pi5").to_str().unwrap(),
        "--textfile-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(r.code(), Some(0));
    assert_eq!(r.samples.len(), 1, "JSON lines still go to stdout");
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["pi-thermal.prom"], "no temporary file left behind");
    let path = dir.path().join("pi-thermal.prom");
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
    let page = fs::read_to_string(&path).unwrap();
    promtool_check(&page);
    assert_eq!(series(&page, "pi_load1"), Some(0.42));

    let out = pi_thermal()
        .args([
            "--root",
            fixture("pi5").to_str().unwrap(),
            "--textfile-dir",
            dir.path().to_str().unwrap(),
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(out.stdout.is_empty() && out.status.success());
}

#[test]
fn a_closed_stdout_is_success_without_noise() {
    let mut child = pi_thermal()
        .args(["--root", fixture("pi5").to_str().unwrap(), "--interval", "5ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take()); // like `| head -c1`
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn sigterm_ends_a_loop_cleanly_after_the_record_in_hand() {
    let mut child = pi_thermal()
        .args(["--root", fixture("pi5").to_str().unwrap(), "--interval", "1h"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Ready when the first record is out; then the loop sleeps for an hour.
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    while !buf.ends_with(b"\n") {
        let n = stdout.read(&mut b).unwrap();
        assert!(n > 0, "pi-thermal ended before its first record");
        buf.extend_from_slice(&b[..n]);
    }
    let t = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(t.elapsed() < Duration::from_secs(5));
    stdout.read_to_end(&mut buf).unwrap();
    let run = parse(std::process::Output {
        status,
        stdout: buf,
        stderr: vec![],
    });
    assert_eq!(run.samples.len(), 1);
}

/// Issue 24 finding 10: `--interval 300000000000y` took one sample, then panicked
/// adding the interval to the clock (exit 70). Durations now have an upper bound.
#[test]
fn huge_intervals_are_usage_errors_not_panics() {
    let root = fixture("pi5");
    for huge in ["300000000000y", "18446744073709551615s", "10y 1s"] {
        let out = output_within(
            pi_thermal().args([
                "--root",
                root.to_str().unwrap(),
                "--interval",
                huge,
                "--count",
                "2",
            ]),
            Duration::from_secs(30),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "--interval {huge}: {err}");
        assert!(out.stdout.is_empty(), "--interval {huge}");
        assert!(err.contains("at most 10y"), "--interval {huge}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Runs `cmd`, failing the test (and killing it) when it is still running after
/// `limit`: a regression here would sleep for the huge interval, not return.
fn output_within(cmd: &mut std::process::Command, limit: std::time::Duration) -> std::process::Output {
    use std::process::Stdio;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}
