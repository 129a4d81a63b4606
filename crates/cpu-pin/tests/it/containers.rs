//! Real containers on the real Docker engine (started by scripts/test): the cpuset
//! goes through the API and `docker inspect` shows it, every thread of every
//! process in the container carries it (an exec'd one too), drift made with
//! `docker update` is found and fixed, and a recreated container is pinned again.
//! Every container here is the test's own (label hlt.test=<name>).

use std::path::Path;
use std::time::Duration;

use crate::common::*;
use homelab_testkit::{Container, Docker, docker};

/// Host processes in the container's cgroup, found the way `ps` would show them
/// (independently of cpu-pin): every /proc/N/cgroup that names the container id.
fn container_tids(id: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| c.contains(id))
            && let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task"))
        {
            out.extend(
                rd.flatten()
                    .filter_map(|t| t.file_name().to_str()?.parse::<u32>().ok()),
            );
        }
    }
    out.sort_unstable();
    out
}

/// A container running tests/helpers/threads.py with 3 extra threads, on the
/// host's python3 (bind-mounted read-only: the image is a bare busybox).
fn threaded_container(d: &Docker) -> Container {
    let helpers = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers");
    let python = python();
    assert!(
        python.starts_with("/usr"),
        "the container test mounts /usr for python3, which is at {}",
        python.display()
    );
    let mut opts: Vec<String> = vec!["-v".into(), "/usr:/usr:ro".into()];
    for lib in ["/lib", "/lib64"] {
        if Path::new(lib).exists() {
            opts.extend(["-v".into(), format!("{lib}:{lib}:ro")]);
        }
    }
    opts.extend(["-v".into(), format!("{}:/h:ro", helpers.display())]);
    let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
    let py = python.to_str().unwrap();
    let c = d.start("cpupin", &opts, &[py, "/h/threads.py", "3", "0", "forever"]);
    wait_until(Duration::from_secs(30), "the container's threads", || {
        container_tids(&c.id).len() >= 4
    });
    c
}

fn sleeper(d: &Docker) -> Container {
    let c = d.start("cpupin", &[], &["sleep", "600"]);
    wait_until(Duration::from_secs(30), "the container's process", || {
        !container_tids(&c.id).is_empty()
    });
    c
}

fn cpuset(c: &Container) -> String {
    c.inspect("{{.HostConfig.CpusetCpus}}")
}

#[test]
fn set_updates_the_cpuset_and_every_thread_in_the_container() {
    let d = docker();
    let c = threaded_container(&d);
    // A process started by docker exec is no descendant of the container's init.
    d.run(&["exec", "-d", &c.id, "sleep", "600"]);
    wait_until(Duration::from_secs(30), "the exec'd process", || {
        container_tids(&c.id).len() >= 5
    });
    let cpu = last_cpu();
    assert_eq!(cpuset(&c), "");

    let r = run(&[
        "set",
        "--cpus",
        &cpu,
        "--container",
        &c.name,
        "--docker-host",
        &d.host,
    ])
    .expect(0);
    let rec = r.pin();
    assert_eq!(rec.container.as_deref(), Some(c.name.as_str()));
    assert_eq!(rec.container_id.as_deref(), Some(c.id.as_str()));
    assert_eq!(rec.target, format!("container={}", c.name));
    assert_eq!(rec.pid, Some(c.pid()));
    assert_eq!(rec.cpuset_before.as_deref(), Some(""));
    assert_eq!(rec.cpuset_after.as_deref(), Some(cpu.as_str()));
    assert_eq!(rec.cpus_before.as_deref(), Some(all_cpus().as_str()));
    assert_eq!(rec.cpus_after.as_deref(), Some(cpu.as_str()));
    assert!(rec.changed);
    assert_eq!(rec.drift, Some(false));
    assert!(rec.errors.is_empty(), "{:?}", rec.errors);

    // What docker itself says, and what the kernel says of each thread.
    assert_eq!(cpuset(&c), cpu);
    let tids = container_tids(&c.id);
    assert_eq!(rec.threads, tids.len());
    assert!(tids.len() >= 5);
    for t in &tids {
        assert_eq!(affinity(*t), cpu, "thread {t} in the container");
    }

    let r = run(&[
        "set",
        "--cpus",
        &cpu,
        "--container",
        &c.id,
        "--docker-host",
        &d.host,
    ])
    .expect(0);
    assert!(!r.pin().changed, "{:?}", r.pin());
}

#[test]
fn a_plan_keeps_containers_pinned_through_outside_changes_and_recreation() {
    let d = docker();
    let by_name = sleeper(&d);
    let by_label = threaded_container(&d);
    let (last, first) = (last_cpu(), first_cpu());
    let (_dir, plan) = plan_file(&format!(
        "ctr container={} cpus={last}\nlbl label=hlt.test={} cpus={first}\n",
        by_name.name, by_label.name
    ));
    let host = d.host.as_str();

    let r = run(&["apply", &plan, "--docker-host", host]).expect(0);
    assert!(r.rule("ctr").changed && r.rule("lbl").changed);
    assert_eq!(r.rule("lbl").targets, 1);
    assert_eq!(
        (cpuset(&by_name), cpuset(&by_label)),
        (last.clone(), first.clone())
    );
    for t in container_tids(&by_label.id) {
        assert_eq!(affinity(t), first);
    }
    let r = run(&["apply", &plan, "--docker-host", host]).expect(0);
    assert!(r.pins.iter().all(|p| !p.changed), "{r:#?}");
    run(&["check", &plan, "--docker-host", host]).expect(0);

    // Someone widens one container by hand.
    d.run(&["update", "--cpuset-cpus", &all_cpus(), &by_name.id]);
    let r = run(&["check", &plan, "--docker-host", host]).expect(1);
    let p = r.pins_of("ctr")[0];
    assert_eq!(p.drift, Some(true));
    assert_eq!(p.cpuset_after.as_deref(), Some(all_cpus().as_str()));
    assert!(!r.rule("lbl").drift);
    assert_eq!(cpuset(&by_name), all_cpus(), "check changed the container");
    let r = run(&["apply", &plan, "--docker-host", host]).expect(0);
    assert!(r.rule("ctr").changed);
    assert!(!r.rule("lbl").changed);
    assert_eq!(cpuset(&by_name), last);

    // compose recreates it: a new container under the same name has no cpuset.
    let name = by_name.name.clone();
    drop(by_name);
    // (Docker::start would give it a new name: this is docker compose's way.)
    let label = format!("hlt.test={name}");
    let args = [
        "run",
        "-d",
        "--network",
        "none",
        "--label",
        &label,
        "--name",
        &name,
    ];
    let id = d.run(&[&args[..], &[d.image.as_str(), "sleep", "600"]].concat());
    let again = Container {
        docker: d.clone(),
        id,
        name,
    };
    assert_eq!(cpuset(&again), "");
    run(&["check", &plan, "--docker-host", host]).expect(1);
    let r = run(&["apply", &plan, "--docker-host", host]).expect(0);
    let p = r.pins_of("ctr")[0];
    assert_eq!(p.container_id.as_deref(), Some(again.id.as_str()));
    assert!(p.changed);
    assert_eq!(cpuset(&again), last);
}

#[test]
fn show_by_label_lists_only_that_container() {
    let d = docker();
    let c = sleeper(&d);
    let label = format!("hlt.test={}", c.name);
    let r = run(&["show", "--label", &label, "--docker-host", &d.host]).expect(0);
    let rec = r.pin();
    assert_eq!(rec.container.as_deref(), Some(c.name.as_str()));
    assert_eq!(rec.target, format!("label={label}"));
    assert_eq!(rec.threads, container_tids(&c.id).len());
    assert_eq!(rec.cpus, None);
    assert_eq!(rec.drift, None);
}

#[test]
fn unknown_containers_exit_66() {
    let d = docker();
    let name = d.unique_name("cpupin-missing");
    let r = run(&[
        "set",
        "--cpus",
        &first_cpu(),
        "--container",
        &name,
        "--docker-host",
        &d.host,
    ])
    .expect(66);
    assert_eq!(
        r.stderr(),
        format!("cpu-pin: no container {name}: `docker ps -a` lists the containers there are\n")
    );
    assert!(r.stdout().is_empty());
    let label = format!("hlt.test={name}");
    run(&[
        "set",
        "--cpus",
        &first_cpu(),
        "--label",
        &label,
        "--docker-host",
        &d.host,
    ])
    .expect(66);
    // In a plan the other rules still run; the status says what went wrong.
    let p = Threaded::start(1, 0, &[]);
    let (_dir, plan) = plan_file(&format!(
        "gone container={name} cpus={}\nhere comm={} cpus={}\n",
        first_cpu(),
        p.comm(),
        last_cpu()
    ));
    let r = run(&["apply", &plan, "--docker-host", &d.host]).expect(66);
    assert!(r.rule("gone").drift);
    assert_eq!(r.rule("gone").errors.len(), 1);
    assert!(r.rule("here").changed);
    assert_eq!(affinity(p.pid()), last_cpu());
}
