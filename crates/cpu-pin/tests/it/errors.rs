//! Bad lists, offline CPUs, PID 1 and kernel threads, missing processes, no
//! permission, an unreachable Docker engine, misused flags: one clear line on
//! stderr and the documented exit status, and nothing pinned.

use std::os::unix::fs::PermissionsExt;

use crate::common::*;

#[test]
fn bad_cpu_lists_are_usage_errors() {
    let p = Threaded::start(0, 0, &[]);
    let before = affinity(p.pid());
    let pid = p.pid().to_string();
    for (list, why) in [
        ("1-0", "the range 1-0 runs backwards"),
        ("x", "\"x\" is not a CPU number"),
        ("", "the CPU list is empty"),
        ("0,,1", "an empty item between commas"),
        ("5000", "CPU 5000 is beyond"),
    ] {
        let (code, out, err) = run_raw(&["set", "--cpus", list, "--pid", &pid]);
        assert_eq!(code, Some(64), "--cpus {list:?}: {err}");
        assert!(out.is_empty());
        assert!(err.contains(why), "--cpus {list:?}: {err}");
    }
    assert_eq!(affinity(p.pid()), before);
}

#[test]
fn offline_cpus_are_refused() {
    let p = Threaded::start(0, 0, &[]);
    let pid = p.pid().to_string();
    // The fixture's CPU 1 is offline (online: 0,2-3).
    let root = fixture("offline");
    let r = run(&[
        "set",
        "--cpus",
        "1-2",
        "--pid",
        &pid,
        "--root",
        root.to_str().unwrap(),
    ])
    .expect(64);
    assert_eq!(
        r.stderr(),
        "cpu-pin: --cpus 1-2: CPU 1 of 1-2 is not online (online: 0,2-3)\n"
    );
    // This machine: a CPU beyond the last online one.
    let beyond = (online_cpus().last().unwrap() + 1).to_string();
    let r = run(&["set", "--cpus", &beyond, "--pid", &pid]).expect(64);
    assert!(r.stderr().contains("is not online"), "{}", r.stderr());
    assert_eq!(affinity(p.pid()), all_cpus_listed());
    // A root without the online list.
    let empty = tempfile::tempdir().unwrap();
    let r = run(&[
        "set",
        "--cpus",
        "0",
        "--pid",
        &pid,
        "--root",
        empty.path().to_str().unwrap(),
    ])
    .expect(66);
    assert!(
        r.stderr().contains("cannot tell which CPUs are online"),
        "{}",
        r.stderr()
    );
}

/// A kernel thread's id (PF_KTHREAD in /proc/N/stat), from the test's own reading.
fn a_kernel_thread() -> (u32, String) {
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let rest = &stat[stat.rfind(')').unwrap() + 1..];
        let flags: u64 = rest.split_whitespace().nth(6).unwrap().parse().unwrap();
        if flags & 0x0020_0000 != 0 {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
            return (pid, name.trim().to_string());
        }
    }
    panic!("no kernel thread is visible in /proc (a PID namespace?)");
}

#[test]
fn pid_1_and_kernel_threads_are_refused_without_force() {
    let init_before = affinity(1);
    let r = run(&["set", "--cpus", &first_cpu(), "--pid", "1"]).expect(64);
    assert_eq!(
        r.stderr(),
        "cpu-pin: refusing to pin PID 1 (init): pass --force if you really mean it\n"
    );
    assert!(r.stdout().is_empty());
    assert_eq!(affinity(1), init_before);

    let (k, name) = a_kernel_thread();
    let before = affinity(k);
    let r = run(&["set", "--cpus", &first_cpu(), "--pid", &k.to_string()]).expect(64);
    assert!(
        r.stderr()
            .contains(&format!("refusing to pin kernel thread {k} ({name})")),
        "{}",
        r.stderr()
    );
    // By name they are left out, and the message says why nothing matched.
    let r = run(&["set", "--cpus", &first_cpu(), "--comm", &name]).expect(66);
    assert!(r.stderr().contains("left alone unless --force"), "{}", r.stderr());
    assert_eq!(affinity(k), before);
    // Reading them is fine.
    assert_eq!(run(&["show", "--pid", "1"]).expect(0).pin().pid, Some(1));
}

#[test]
fn missing_processes_exit_66() {
    // Above the largest possible pid_max (2^22): no such process can exist.
    let r = run(&["set", "--cpus", &first_cpu(), "--pid", "4194305"]).expect(66);
    assert!(
        r.stderr().starts_with("cpu-pin: no process 4194305"),
        "{}",
        r.stderr()
    );
    let name = unique_name();
    let r = run(&["set", "--cpus", &first_cpu(), "--comm", &name]).expect(66);
    assert_eq!(r.stderr(), format!("cpu-pin: no process matches comm={name}\n"));
    run(&["show", "--match", &format!("^{name}$")]).expect(66);
}

#[test]
fn permission_denied_exits_77_and_says_what_to_do() {
    let p = Threaded::start(1, 0, &[]);
    let before = affinity(p.pid());
    // The binary, where an unprivileged user may run it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("cpu-pin");
    homelab_testkit::copy_executable(env!("CARGO_BIN_EXE_cpu-pin").as_ref(), &bin);
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&bin)
        .args(["set", "--cpus", &first_cpu(), "--pid", &p.pid().to_string()])
        .output()
        .expect("setpriv (util-linux) is needed");
    let r = parse(out);
    let r = r.expect(77);
    assert!(
        r.stderr()
            .contains("operation not permitted: run cpu-pin as root, or give it CAP_SYS_NICE"),
        "{}",
        r.stderr()
    );
    let rec = r.pin();
    assert_eq!(rec.drift, Some(true));
    assert!(!rec.changed);
    assert_eq!(
        rec.errors.len(),
        1,
        "one message for all the threads: {:?}",
        rec.errors
    );
    assert!(rec.errors[0].ends_with("(and 1 more thread)"), "{:?}", rec.errors);
    assert_eq!(affinity(p.pid()), before);
}

#[test]
fn an_unreachable_docker_engine_exits_69() {
    let dir = tempfile::tempdir().unwrap();
    let sock = format!("unix://{}/docker.sock", dir.path().display());
    let r = run(&[
        "set",
        "--cpus",
        &first_cpu(),
        "--container",
        "ollama",
        "--docker-host",
        &sock,
    ])
    .expect(69);
    assert!(
        r.stderr().starts_with(&format!(
            "cpu-pin: cannot connect to the Docker engine at {sock}: no socket at"
        )),
        "{}",
        r.stderr()
    );
    // DOCKER_HOST is the flag's twin.
    let out = cpu_pin()
        .env("DOCKER_HOST", &sock)
        .args(["show", "--container", "ollama"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
    // show without a target still lists processes, and says containers are left out.
    let out = cpu_pin().args(["show", "--docker-host", &sock]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("containers left out"), "{stderr}");
    let r = parse(out);
    assert!(r.pins.iter().any(|p| p.pid == Some(std::process::id())));
    assert!(r.pins.iter().all(|p| p.container.is_none()));
}

#[test]
fn misused_flags_are_usage_errors() {
    let pid = std::process::id().to_string();
    for args in [
        vec!["set", "--cpus", "0", "--pid", &pid, "--format", "prom"],
        vec!["set", "--cpus", "0", "--pid", &pid, "--textfile-dir", "/tmp"],
        vec!["set", "--cpus", "0"],
        vec!["set", "--pid", &pid],
        vec!["set", "--cpus", "0", "--pid", &pid, "--comm", "x"],
        vec!["set", "--cpus", "0", "--container", "x", "--children"],
        vec!["set", "--cpus", "0", "--comm", "prometheus-node-exporter"],
        vec!["set", "--cpus", "0", "--match", "(", "--pid", &pid],
        vec!["set", "--cpus", "0", "--nice", "20", "--pid", &pid],
        vec!["set", "--cpus", "0", "--nice", "3", "--cgroup", "x"],
        vec!["show", "--format", "prom"],
        vec!["apply"],
        vec!["frobnicate"],
        vec![],
    ] {
        let (code, out, err) = run_raw(&args);
        assert_eq!(code, Some(64), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?} wrote data: {out}");
        assert!(!err.is_empty(), "{args:?}: no message");
    }
    let r = run(&["show", "--pid", &pid, "--root", "/nonexistent-root"]).expect(66);
    assert!(r.stderr().contains("--root /nonexistent-root"), "{}", r.stderr());
}

#[test]
fn another_pid_namespaces_proc_is_refused() {
    // A root whose /proc is not this PID namespace's (as a container's /host/proc
    // without --pid host): its process ids would name other processes here.
    let p = Threaded::start(0, 0, &[]);
    let before = affinity(p.pid());
    let root = tempfile::tempdir().unwrap();
    let cpu = root.path().join("sys/devices/system/cpu");
    std::fs::create_dir_all(&cpu).unwrap();
    std::fs::write(cpu.join("online"), all_cpus()).unwrap();
    let task = root.path().join(format!("proc/{}/task/{}", p.pid(), p.pid()));
    std::fs::create_dir_all(&task).unwrap();
    std::os::unix::fs::symlink("1", root.path().join("proc/self")).unwrap();
    let r = run(&[
        "set",
        "--cpus",
        &first_cpu(),
        "--pid",
        &p.pid().to_string(),
        "--root",
        root.path().to_str().unwrap(),
    ])
    .expect(78);
    assert!(
        r.stderr().contains("run cpu-pin's container with --pid host"),
        "{}",
        r.stderr()
    );
    assert_eq!(affinity(p.pid()), before);
}

/// Issue 24 finding 10: `--interval 300000000000y` applied the plan, then panicked
/// adding the interval to the clock (exit 70). Durations now have an upper bound.
#[test]
fn huge_intervals_are_usage_errors_not_panics() {
    let p = Threaded::start(0, 0, &[]);
    let (_d, plan) = plan_file(&format!("one comm={} cpus={}\n", p.comm(), last_cpu()));
    let before = affinity(p.pid());
    for huge in ["300000000000y", "18446744073709551615s", "10y 1s"] {
        let o = output_within(
            cpu_pin().args(["apply", &plan, "--interval", huge, "--count", "2"]),
            std::time::Duration::from_secs(30),
        );
        let (code, out, err) = (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        );
        assert_eq!(code, Some(64), "--interval {huge}: {err}");
        assert!(out.is_empty(), "--interval {huge}: {out}");
        assert!(err.contains("at most 10y"), "--interval {huge}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert_eq!(affinity(p.pid()), before, "nothing is pinned on a usage error");
}

/// Issue 23: the Docker permission error is homelab-core's, the same in every tool:
/// exit 77 and the `usermod -aG docker` fix.
#[test]
fn a_docker_socket_without_permission_is_77_with_the_docker_group_fix() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.path().join("docker.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).unwrap();
    let bin = dir.path().join("cpu-pin");
    homelab_testkit::copy_executable(env!("CARGO_BIN_EXE_cpu-pin").as_ref(), &bin);
    let out = std::process::Command::new(&bin)
        .args(["show", "--container", "ollama", "--docker-host"])
        .arg(format!("unix://{}", sock.display()))
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{stderr}");
    assert!(
        stderr.starts_with("cpu-pin: permission denied connecting to the Docker engine at unix://"),
        "{stderr}"
    );
    assert!(stderr.contains("sudo usermod -aG docker $USER"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// Issue 24 finding 9's twin: DOCKER_HOST set but empty means the default socket,
/// as for the docker CLI, not "not a Docker address" (78).
#[test]
fn an_empty_docker_host_means_the_default_socket() {
    let out = cpu_pin()
        .env("DOCKER_HOST", "")
        .args(["show", "--container", "ollama"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(78), "{stderr}");
    if !std::path::Path::new("/var/run/docker.sock").exists() {
        assert_eq!(out.status.code(), Some(69), "{stderr}");
        assert!(stderr.contains("unix:///var/run/docker.sock"), "{stderr}");
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
