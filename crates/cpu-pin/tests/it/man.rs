//! The man page documents every JSON field, every metric and every flag of every
//! command, in the words the code uses.

use std::collections::BTreeSet;

use crate::common::*;
use homelab_testkit::{json_keys, undocumented};

fn man() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../man/cpu-pin.1"))
        .expect("man/cpu-pin.1 exists (cargo run -p homelab-docs -- man)")
}

#[test]
fn every_field_metric_and_flag_is_in_the_man_page() {
    let man = man();
    let p = Threaded::start(1, 0, &[]);
    let tree = copy_fixture("pi5");
    let root = tree.path().to_str().unwrap();
    let (_d, plan) = plan_file("ollama cgroup=ollama.slice cpus=0-2\n");
    let mut fields = BTreeSet::new();
    let pid = p.pid().to_string();
    for args in [
        vec!["show", "--pid", pid.as_str()],
        vec!["set", "--cpus", "0", "--pid", pid.as_str()],
        vec!["check", plan.as_str(), "--root", root],
        vec!["apply", plan.as_str(), "--root", root],
    ] {
        let (_, out, err) = run_raw(&args);
        assert!(!out.is_empty(), "{args:?}: {err}");
        for line in out.lines() {
            json_keys(&serde_json::from_str(line).unwrap(), &mut fields);
        }
    }
    let missing = undocumented(&man, fields.iter().map(String::as_str));
    assert!(
        missing.is_empty(),
        "JSON fields not in the man page's OUTPUT: {missing:?}"
    );

    let (_, page, _) = run_raw(&["apply", &plan, "--root", root, "--format", "prom"]);
    let metrics: Vec<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .collect();
    assert!(metrics.len() >= 7, "{page}");
    let missing = undocumented(&man, metrics.iter().copied());
    assert!(missing.is_empty(), "metrics not in the man page: {missing:?}");

    let mut flags = Vec::new();
    for sub in cpu_pin::command().get_subcommands() {
        flags.extend(
            sub.get_arguments()
                .filter_map(|a| Some(format!("--{}", a.get_long()?))),
        );
    }
    assert!(flags.len() >= 15, "{flags:?}");
    let missing = undocumented(&man, flags.iter().map(String::as_str));
    assert!(missing.is_empty(), "flags not in the man page: {missing:?}");
    for word in ["num_thread", "PLAN FILE", "OLLAMA", "kind: pin", "kind: rule"] {
        assert!(man.contains(word), "the man page lacks {word}");
    }
}
