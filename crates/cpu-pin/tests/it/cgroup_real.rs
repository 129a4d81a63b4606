//! A real cgroup of this machine's kernel (cgroup v1's cpuset hierarchy here; v2
//! where the machine has it): cpu-pin writes its cpuset and the kernel re-masks
//! every thread of the process the test moved into it. The cgroup is the test's
//! own, created and removed here.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;

/// A cgroup made for one test, with the cpuset controller, removed when dropped.
struct TestCgroup {
    dir: PathBuf,
    parent_procs: PathBuf,
}

impl TestCgroup {
    fn new() -> TestCgroup {
        let name = format!("hlt-cpupin-{}", unique_name());
        let v1 = Path::new("/sys/fs/cgroup/cpuset");
        let v2 = Path::new("/sys/fs/cgroup");
        let parent = if v1.join("cpuset.cpus").exists() {
            v1
        } else {
            let ctl = fs::read_to_string(v2.join("cgroup.subtree_control")).unwrap_or_default();
            assert!(
                ctl.split_whitespace().any(|c| c == "cpuset"),
                "no cgroup v1 cpuset hierarchy and no cpuset in /sys/fs/cgroup/cgroup.subtree_control ({ctl:?}): \
this test needs a cpuset cgroup it can create"
            );
            v2
        };
        let dir = parent.join(name);
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        if parent == v1 {
            // A v1 cpuset takes no task before it has memory nodes and CPUs.
            let mems = fs::read_to_string(parent.join("cpuset.mems")).unwrap();
            fs::write(dir.join("cpuset.mems"), mems.trim()).unwrap();
            let cpus = fs::read_to_string(parent.join("cpuset.cpus")).unwrap();
            fs::write(dir.join("cpuset.cpus"), cpus.trim()).unwrap();
        }
        TestCgroup {
            parent_procs: parent.join("cgroup.procs"),
            dir,
        }
    }

    fn add(&self, pid: u32) {
        fs::write(self.dir.join("cgroup.procs"), pid.to_string()).unwrap();
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if let Ok(procs) = fs::read_to_string(self.dir.join("cgroup.procs")) {
            for pid in procs.lines() {
                let _ = fs::write(&self.parent_procs, pid);
            }
        }
        let _ = fs::remove_dir(&self.dir);
    }
}

#[test]
fn a_cgroup_cpuset_re_masks_every_thread_in_it() {
    let cg = TestCgroup::new();
    let p = Threaded::start(3, 0, &[]);
    cg.add(p.pid());
    let tids = tids(p.pid());
    let dir = cg.dir.to_str().unwrap();
    let (last, first) = (last_cpu(), first_cpu());

    let r = run(&["set", "--cpus", &last, "--cgroup", dir]).expect(0);
    let rec = r.pin();
    assert_eq!(rec.cgroup.as_deref(), Some(dir));
    assert_eq!(rec.threads, 4);
    assert_eq!(rec.cpuset_before.as_deref(), Some(all_cpus().as_str()));
    assert_eq!(rec.cpuset_after.as_deref(), Some(last.as_str()));
    assert_eq!(
        rec.cpus_after.as_deref(),
        Some(last.as_str()),
        "what the kernel grants"
    );
    assert!(rec.changed);
    assert_eq!(
        fs::read_to_string(cg.dir.join("cpuset.cpus")).unwrap().trim(),
        last
    );
    for t in &tids {
        assert_eq!(affinity(*t), last, "thread {t} in the cgroup");
    }

    // A plan against the same cgroup: drift from outside, found and fixed.
    let (_d, plan) = plan_file(&format!("slice cgroup={dir} cpus={last}\n"));
    run(&["check", &plan]).expect(0);
    fs::write(cg.dir.join("cpuset.cpus"), &first).unwrap();
    wait_until(Duration::from_secs(5), "the kernel to re-mask", || {
        affinity(tids[0]) == first
    });
    let r = run(&["check", &plan]).expect(1);
    assert_eq!(r.rule("slice").threads_drifted, 4);
    let r = run(&["apply", &plan]).expect(0);
    assert!(r.rule("slice").changed);
    for t in &tids {
        assert_eq!(affinity(*t), last, "thread {t} after apply");
    }
    drop(p);
}

/// Removes a directory when dropped (a child cgroup, before its parent goes).
struct Rmdir(PathBuf);

impl Drop for Rmdir {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}

/// Issue 25 finding 11: cgroup v1 answers EACCES, even to root, when a cpuset is not
/// a subset of its parent's. cpu-pin called that "permission denied, run as root"
/// (exit 77); it is a configuration error naming the parent's CPUs (exit 78).
#[test]
fn a_v1_cpuset_outside_its_parents_is_a_configuration_error_78() {
    if !Path::new("/sys/fs/cgroup/cpuset/cpuset.cpus").exists() {
        eprintln!("no cgroup v1 cpuset hierarchy: the kernel refuses this only on v1");
        return;
    }
    let (first, last) = (first_cpu(), last_cpu());
    assert_ne!(first, last, "this test needs two online CPUs");
    let parent = TestCgroup::new();
    fs::write(parent.dir.join("cpuset.cpus"), &first).unwrap();
    let child = Rmdir(parent.dir.join("child"));
    fs::create_dir(&child.0).unwrap();
    let mems = fs::read_to_string(parent.dir.join("cpuset.mems")).unwrap();
    fs::write(child.0.join("cpuset.mems"), mems.trim()).unwrap();
    fs::write(child.0.join("cpuset.cpus"), &first).unwrap();

    let (code, _out, err) = run_raw(&["set", "--cpus", &last, "--cgroup", child.0.to_str().unwrap()]);
    assert_eq!(code, Some(78), "{err}");
    let parent_dir = parent.dir.to_str().unwrap();
    assert!(
        err.contains(&format!(
            "the parent cgroup {parent_dir} allows only CPUs {first}"
        )),
        "{err}"
    );
    assert!(!err.contains("run cpu-pin as root"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(
        fs::read_to_string(child.0.join("cpuset.cpus")).unwrap().trim(),
        first,
        "unchanged"
    );
    drop(child);
}
