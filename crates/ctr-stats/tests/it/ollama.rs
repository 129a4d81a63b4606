//! `--ollama` against a stand-in for Ollama's API (homelab_testkit::ollama, answering
//! as Ollama's API documentation shows), on the Pi 5 fixture tree with the stand-in
//! engine: a `kind: model` record per loaded model and the `ollama_*` metrics; an
//! Ollama that refuses, hangs, answers garbage or an endless body is one error in the
//! `kind: ollama` record and `ollama_up 0`, never a failed round; the probe runs at
//! most once per period across one-shot runs and exports its last result every run.

use std::time::{Duration, Instant};

use homelab_testkit::ollama::{self, FakeOllama, Mode};

use crate::common::*;

fn with_ollama(url: &str, extra: &[&str]) -> Run {
    let e = FakeEngine::start(&fixture("engine"));
    let mut args = vec!["--window", "0", "--ollama", url];
    args.extend_from_slice(extra);
    run_fixture(&fixture("v2-pi5"), &e, &args)
}

/// stdout of a run in another format than JSON lines (which `run_fixture` parses).
fn printed(url: &str, extra: &[&str]) -> String {
    let e = FakeEngine::start(&fixture("engine"));
    let out = ctr_stats()
        .args([
            "--root",
            fixture("v2-pi5").to_str().unwrap(),
            "--docker-host",
            &e.host(),
        ])
        .args(["--window", "0", "--ollama", url])
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn prom(url: &str, extra: &[&str]) -> String {
    let mut args = vec!["--format", "prom"];
    args.extend_from_slice(extra);
    let page = printed(url, &args);
    promtool_check(&page);
    page
}

#[test]
fn loaded_models_become_records_and_metrics() {
    let o = FakeOllama::start(Mode::Normal);
    let t = Instant::now();
    let r = with_ollama(&o.url(), &[]).ok();
    let took = t.elapsed().as_secs_f64();
    assert_eq!(r.records.len(), 3, "the containers are still there");
    assert_eq!(r.ollama.len(), 1, "{}", r.stdout());
    let rec = &r.ollama[0];
    assert!(rec.up, "{rec:?}");
    assert_eq!(rec.version.as_deref(), Some(ollama::VERSION));
    assert_eq!(rec.models_loaded, Some(1));
    assert!(rec.errors.is_empty(), "{rec:?}");
    // The fixture's Ollama container, and its cpuset from its cgroup.
    assert_eq!(rec.container.as_deref(), Some("ollama"));
    let cpuset = r.get("ollama").cpuset_cpus.clone();
    assert!(cpuset.is_some());
    assert_eq!(rec.container_cpuset_cpus, cpuset);

    assert_eq!(r.models.len(), 1);
    let m = &r.models[0];
    assert_eq!(m.name, ollama::MODEL);
    assert_eq!(m.size_bytes, Some(ollama::MODEL_SIZE));
    assert_eq!(m.size_vram_bytes, Some(0));
    assert_eq!(m.context_length_tokens, Some(ollama::CONTEXT_LENGTH));
    assert_eq!(m.parameter_size.as_deref(), Some("3.2B"));
    // expires_at came as Go writes it in UTC-07:00; the record has it in UTC.
    let exp = m.expires_at.as_deref().unwrap();
    assert!(exp.ends_with('Z'), "{exp}");
    // The stand-in answers EXPIRES_IN from its own clock, read after ctr-stats took
    // the round's time: a little more, by at most the run's length (slow under qemu).
    let left = m.expires_in_seconds.unwrap();
    let want = ollama::EXPIRES_IN as f64;
    assert!(
        left >= want - 0.01 && left <= want + took,
        "{left} (run took {took} s)"
    );
    assert!(r.probes.is_empty(), "no probe unless asked");
    assert_eq!(o.generates(), 0);

    let page = prom(&o.url(), &[]);
    let model = format!("{{model=\"{}\"}}", ollama::MODEL);
    assert_eq!(series(&page, "ollama_up"), Some(1.0));
    assert_eq!(series(&page, "ollama_models_loaded"), Some(1.0));
    assert_eq!(series(&page, &format!("ollama_model_loaded{model}")), Some(1.0));
    assert_eq!(
        series(&page, &format!("ollama_model_memory_bytes{model}")),
        Some(ollama::MODEL_SIZE as f64)
    );
    assert_eq!(
        series(&page, &format!("ollama_model_context_tokens{model}")),
        Some(ollama::CONTEXT_LENGTH as f64)
    );
    let exp = series(&page, &format!("ollama_model_expires_timestamp_seconds{model}")).unwrap();
    let now = homelab_core_now();
    assert!(
        exp > now && exp <= now + ollama::EXPIRES_IN as f64 + 1.0,
        "{exp} {now}"
    );
    assert_eq!(
        series(
            &page,
            &format!("ollama_build_info{{version=\"{}\"}}", ollama::VERSION)
        ),
        Some(1.0)
    );
    let cpus = cpuset.unwrap();
    let n = cpus
        .split(',')
        .map(|p| match p.split_once('-') {
            Some((a, b)) => b.parse::<u32>().unwrap() - a.parse::<u32>().unwrap() + 1,
            None => 1,
        })
        .sum::<u32>();
    assert_eq!(
        series(&page, "ollama_container_cpuset_cpus{name=\"ollama\"}"),
        Some(f64::from(n))
    );
    // The container families are as without --ollama.
    assert!(page.contains("container_engine_up 1"), "{page}");
}

fn homelab_core_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A failing Ollama: exit 0, every container reported, one error, `ollama_up 0`.
fn assert_down(url: &str, extra: &[&str], words: &str) -> Duration {
    let t = Instant::now();
    let r = with_ollama(url, extra).ok();
    let took = t.elapsed();
    assert_eq!(r.records.len(), 3, "the round goes on: {}", r.stdout());
    assert_eq!(r.ollama.len(), 1);
    let rec = &r.ollama[0];
    assert!(!rec.up);
    assert_eq!(rec.models_loaded, None, "unknown, not 0");
    assert_eq!(rec.errors.len(), 1, "{:?}", rec.errors);
    assert!(rec.errors[0].contains(words), "{words:?} not in {:?}", rec.errors);
    assert!(r.models.is_empty());
    assert!(r.stderr().is_empty(), "{}", r.stderr());
    let page = prom(url, extra);
    assert_eq!(series(&page, "ollama_up"), Some(0.0), "{page}");
    assert!(!page.contains("ollama_model_"), "{page}");
    took
}

#[test]
fn a_refused_connection_is_one_error() {
    assert_down(&ollama::refused_url(), &[], "connection refused");
}

#[test]
fn garbage_is_one_error() {
    let o = FakeOllama::start(Mode::Garbage);
    assert_down(&o.url(), &[], "not Ollama's /api/ps answer");
}

#[test]
fn an_endless_answer_is_cut() {
    let o = FakeOllama::start(Mode::Huge);
    assert_down(&o.url(), &[], "larger than 1048576 bytes");
}

#[test]
fn a_hang_costs_the_timeout_and_no_more() {
    let o = FakeOllama::start(Mode::Hang);
    let took = assert_down(&o.url(), &["--ollama-timeout", "500ms"], "no answer within 500ms");
    assert!(took < Duration::from_secs(8), "{took:?}");
}

#[test]
fn the_probe_runs_once_per_period_and_its_result_stays() {
    let o = FakeOllama::start(Mode::Normal);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state/probe.json");
    let state_arg = state.to_str().unwrap();
    let args = [
        "--ollama-probe",
        ollama::MODEL,
        "--ollama-probe-every",
        "1h",
        "--ollama-probe-state",
        state_arg,
    ];
    let first = with_ollama(&o.url(), &args).ok();
    assert_eq!(o.generates(), 1);
    let p = &first.probes[0];
    assert!(p.ran && p.ok == Some(true), "{p:?}");
    let tps = ollama::EVAL_COUNT as f64 / (ollama::EVAL_DURATION_NS as f64 / 1e9);
    assert_eq!(p.tokens_per_second, Some(tps));
    assert_eq!(p.eval_tokens, Some(ollama::EVAL_COUNT));
    assert_eq!(p.num_thread, None);
    assert!(state.is_file());
    // What was asked: the model, a few dozen tokens, not streamed, no num_thread.
    let req = o.last_generate().unwrap();
    assert_eq!(req["model"], ollama::MODEL);
    assert_eq!(req["stream"], false);
    let n = req["options"]["num_predict"].as_u64().unwrap();
    assert!((16..=64).contains(&n), "{req}");
    assert!(req["options"].get("num_thread").is_none(), "{req}");

    // The next runs within the hour: no generation, the last result again.
    let second = with_ollama(&o.url(), &args).ok();
    let page = prom(&o.url(), &args);
    assert_eq!(o.generates(), 1, "at most once per period");
    let p2 = &second.probes[0];
    assert!(!p2.ran);
    assert_eq!(p2.tokens_per_second, Some(tps));
    assert_eq!(p2.last_success_at, p.last_success_at);
    let model = format!("{{model=\"{}\"}}", ollama::MODEL);
    assert_eq!(
        series(&page, &format!("ollama_probe_tokens_per_second{model}")),
        Some(tps)
    );
    assert_eq!(series(&page, &format!("ollama_probe_success{model}")), Some(1.0));
    assert!(
        series(
            &page,
            &format!("ollama_probe_last_success_timestamp_seconds{model}")
        )
        .is_some()
    );

    // A period that has passed, with num_thread set: it runs again.
    let mut again = args.to_vec();
    again[3] = "1ms";
    again.extend(["--ollama-probe-threads", "3"]);
    std::thread::sleep(Duration::from_millis(5));
    let third = with_ollama(&o.url(), &again).ok();
    assert_eq!(o.generates(), 2);
    assert!(third.probes[0].ran);
    assert_eq!(third.probes[0].num_thread, Some(3));
    assert_eq!(o.last_generate().unwrap()["options"]["num_thread"], 3);
}

#[test]
fn a_failing_probe_is_an_error_and_keeps_the_last_result() {
    let o = FakeOllama::start(Mode::Normal);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("probe.json");
    let state_arg = state.to_str().unwrap();
    // No such model: Ollama's 404 and its words.
    let r = with_ollama(
        &o.url(),
        &["--ollama-probe", "nosuch:1b", "--ollama-probe-state", state_arg],
    )
    .ok();
    let p = &r.probes[0];
    assert!(p.ran);
    assert_eq!(p.ok, Some(false));
    assert_eq!(p.tokens_per_second, None);
    assert_eq!(p.errors.len(), 1, "{p:?}");
    assert!(p.errors[0].contains("model 'nosuch:1b' not found"), "{p:?}");
    // Ollama down: the probe does not run and the round is still fine.
    let dead = ollama::refused_url();
    let r = with_ollama(
        &dead,
        &["--ollama-probe", "other", "--ollama-probe-state", state_arg],
    )
    .ok();
    assert!(!r.probes[0].ran);
    assert_eq!(r.ollama[0].errors.len(), 1);
    // A state file that is not ours: an error, and the probe runs.
    std::fs::write(&state, "garbage").unwrap();
    let r = with_ollama(
        &o.url(),
        &["--ollama-probe", ollama::MODEL, "--ollama-probe-state", state_arg],
    )
    .ok();
    assert!(r.probes[0].ran && r.probes[0].ok == Some(true), "{:?}", r.probes);
    assert!(r.probes[0].errors[0].contains("not ctr-stats'"), "{:?}", r.probes);
}

#[test]
fn the_text_view_says_it_in_words() {
    let o = FakeOllama::start(Mode::Normal);
    let text = printed(&o.url(), &["--format", "text"]);
    assert!(
        text.contains(&format!(
            "Ollama {} at {}: up, 1 model loaded",
            ollama::VERSION,
            o.url()
        )),
        "{text}"
    );
    assert!(text.contains("2.6 GiB"), "{text}");
    assert!(text.contains("4096 tokens"), "{text}");
    assert!(!text.contains('\x1b'), "no colour off a terminal: {text:?}");
    let text = printed(&ollama::refused_url(), &["--format", "text"]);
    assert!(text.contains(": DOWN"), "{text}");
    assert!(text.contains("! GET"), "{text}");
}

#[test]
fn a_bad_ollama_url_is_a_usage_error() {
    let out = ctr_stats().args(["--ollama", "11434"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("http://"), "{e}");
    let out = ctr_stats().args(["--ollama-probe", "m"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64), "the probe needs --ollama");
}

/// Every field of the new kinds and every ollama_* metric is in the man page.
#[test]
fn the_man_page_documents_the_ollama_kinds_and_metrics() {
    let man = ctr_stats::MAN_SECTIONS.replace("\\-", "-");
    let o = FakeOllama::start(Mode::Normal);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("probe.json");
    let args = [
        "--ollama-probe",
        ollama::MODEL,
        "--ollama-probe-state",
        state.to_str().unwrap(),
    ];
    let jsonl = printed(&o.url(), &args);
    let page = prom(&o.url(), &args);
    let mut names = std::collections::BTreeSet::new();
    for line in jsonl.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["kind"] != "container" {
            names.extend(v.as_object().unwrap().keys().cloned());
        }
    }
    assert!(
        names.contains("tokens_per_second") && names.contains("size_bytes"),
        "{names:?}"
    );
    names.extend(
        page.lines()
            .filter(|l| l.starts_with("# TYPE ollama_"))
            .map(|l| l.split_whitespace().nth(2).unwrap().to_string()),
    );
    assert!(names.contains("ollama_probe_tokens_per_second"), "{page}");
    let missing = homelab_testkit::undocumented(&man, names.iter().map(String::as_str));
    assert!(missing.is_empty(), "not in man.roff: {missing:?}");
}
