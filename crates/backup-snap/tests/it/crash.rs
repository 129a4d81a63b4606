//! SIGKILL at 20 random moments during create and during prune: afterwards
//! `verify --read-data` passes and every snapshot completed earlier restores
//! identical. The moments are drawn uniformly over the time an uninterrupted run
//! takes; the seed is printed so a failure can be replayed (BACKUP_SNAP_CRASH_SEED),
//! and BACKUP_SNAP_CRASH_KEEP=DIR keeps a copy of a repository that fails verify.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

const ROUNDS: usize = 20;

struct Rng(u64);

impl Rng {
    fn seeded(what: &str) -> Rng {
        let seed = std::env::var("BACKUP_SNAP_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{what}: BACKUP_SNAP_CRASH_SEED={seed}");
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Runs backup-snap and SIGKILLs it after `after` (if it is still running).
/// Returns whether it finished by itself.
fn run_and_kill(repo: &Path, args: &[String], after: Duration) -> bool {
    let mut child = bin()
        .arg("--repo")
        .arg(repo)
        .args(args)
        .stdout(fs::File::create(repo.with_extension("stdout")).unwrap())
        .stderr(fs::File::create(repo.with_extension("stderr")).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1).min(after.saturating_sub(start.elapsed())));
    }
    let finished = child.try_wait().unwrap().is_some();
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    finished
}

fn timed(repo: &Path, args: &[String]) -> Duration {
    let start = Instant::now();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(repo, &a);
    start.elapsed()
}

fn verify_read_data(repo: &Path, round: usize) {
    let o = bs(repo, &["verify", "--read-data"]);
    if o.status.code() != Some(0)
        && let Ok(keep) = std::env::var("BACKUP_SNAP_CRASH_KEEP")
    {
        let _ = Command::new("cp").arg("-a").arg(repo).arg(&keep).status();
        let _ = fs::copy(repo.with_extension("stdout"), format!("{keep}.stdout"));
        let _ = fs::copy(repo.with_extension("stderr"), format!("{keep}.stderr"));
    }
    assert_eq!(
        o.status.code(),
        Some(0),
        "round {round}: verify --read-data failed after the kill:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
}

fn restore_matches(
    repo: &Path,
    id: &str,
    expected: &BTreeMap<Vec<u8>, Item>,
    source: &Path,
    scratch: &Path,
    round: usize,
) {
    let _ = fs::remove_dir_all(scratch);
    let o = bs(repo, &["restore", id, scratch.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "round {round}: restore {id}: {}",
        stderr(&o)
    );
    let got = digest(&restored(scratch, source));
    assert!(
        got == *expected,
        "round {round}: snapshot {id} does not restore identical"
    );
}

/// A big file's size: with 1 MiB packs, each new one fills a pack or two.
const BIG: usize = 1 << 20;

fn write_round_data(src: &Path, round: u64, big: usize) {
    let _ = fs::remove_dir_all(src);
    fs::create_dir_all(src.join("small")).unwrap();
    for i in 0..10u64 {
        fs::write(src.join(format!("big-{i}")), pseudo_random(round * 1000 + i, big)).unwrap();
    }
    change_small_files(src, round);
    fs::create_dir(src.join("empty")).unwrap();
}

/// What a night changes, as for a real backup: two or three big files (the rest is
/// deduplicated) and every small one. Each run still writes several packs, and
/// the repository (which `verify --read-data` reads whole every round) grows by a
/// few MiB a round, not by the whole tree.
fn change_round_data(src: &Path, round: u64) {
    for i in (0..10u64).filter(|i| (i + round).is_multiple_of(4)) {
        fs::write(src.join(format!("big-{i}")), pseudo_random(round * 1000 + i, BIG)).unwrap();
    }
    change_small_files(src, round);
}

fn change_small_files(src: &Path, round: u64) {
    for i in 0..200u64 {
        fs::write(
            src.join(format!("small/{i}.txt")),
            format!("round {round} file {i}\n").repeat(50),
        )
        .unwrap();
    }
}

fn time_arg(round: usize) -> String {
    format!("2026-01-01T{:02}:{:02}:00+00:00", round / 60, round % 60)
}

#[test]
fn sigkill_during_create_leaves_a_valid_repository() {
    let mut rng = Rng::seeded("create");
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("repo");
    ok(&repo, &["init", "--pack-size", "1MiB"]);
    let src = d.path().join("src");
    let scratch = d.path().join("scratch");

    // A snapshot completed before any kill, and one uninterrupted run to time.
    write_round_data(&src, 0, BIG);
    let first = create(&repo, "crash", &[&src], &["--time", &time_arg(0)]);
    let mut expected: BTreeMap<String, (String, BTreeMap<Vec<u8>, Item>)> = BTreeMap::new();
    expected.insert(time_arg(0), (first.id.clone(), digest(&src)));
    change_round_data(&src, 1);
    let args = |round: usize| -> Vec<String> {
        [
            "create",
            "--job",
            "crash",
            "--time",
            &time_arg(round),
            src.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let full = timed(&repo, &args(1));
    expected.insert(time_arg(1), (String::new(), digest(&src)));

    let mut killed = 0;
    for round in 2..2 + ROUNDS {
        change_round_data(&src, round as u64);
        let digest_now = digest(&src);
        let after = Duration::from_micros(rng.below(full.as_micros() as u64 + 1));
        if !run_and_kill(&repo, &args(round), after) {
            killed += 1;
        }
        expected.insert(time_arg(round), (String::new(), digest_now));
        verify_read_data(&repo, round);
        // Every snapshot that exists is complete and restores identical; the killed
        // run's snapshot exists only if it finished.
        let out = ok(&repo, &["list"]);
        let snaps: Vec<SnapshotRec> = records(&out, "snapshot");
        assert!(
            snaps.iter().any(|s| s.id == first.id),
            "round {round}: the first snapshot is gone"
        );
        let newest = snaps.iter().find(|s| s.time.starts_with(&time_arg(round)[..16]));
        if let Some(s) = newest {
            restore_matches(&repo, &s.id, &expected[&time_arg(round)].1, &src, &scratch, round);
        }
        restore_matches(&repo, &first.id, &expected[&time_arg(0)].1, &src, &scratch, round);
    }
    assert!(
        killed >= ROUNDS / 4,
        "only {killed} of {ROUNDS} runs were killed before they finished"
    );
    // Prune cleans up what the killed runs left, and the repository is still whole.
    ok(&repo, &["prune"]);
    verify_read_data(&repo, 99);
    assert_eq!(fs::read_dir(repo.join("tmp")).unwrap().count(), 0);
    assert_eq!(
        fs::read_dir(repo.join("locks")).unwrap().count(),
        0,
        "stale locks are removed"
    );
}

type Kept = Vec<(String, BTreeMap<Vec<u8>, Item>)>;

/// A repository with six snapshots of a changing tree, the four oldest forgotten:
/// prune has packs to delete and packs to rewrite (256 KiB packs, big files of
/// 512 KiB: about four chunks each). Returns the snapshots kept.
fn prune_template(template: &Path, src: &Path) -> Kept {
    ok(template, &["init", "--pack-size", "256KiB"]);
    let mut kept: Kept = Vec::new();
    for round in 0..6u64 {
        if round == 0 {
            write_round_data(src, 0, BIG / 2);
        } else {
            for i in 0..10u64 {
                if (i + round) % 3 == 0 {
                    fs::write(
                        src.join(format!("big-{i}")),
                        pseudo_random(round * 7919 + i, BIG / 2),
                    )
                    .unwrap();
                }
            }
            fs::write(
                src.join(format!("small/{round}.txt")),
                format!("changed in {round}"),
            )
            .unwrap();
        }
        let s = create(template, "p", &[src], &["--time", &time_arg(round as usize)]);
        kept.push((s.id, digest(src)));
    }
    let out = ok(template, &["forget", "--keep-last", "2"]);
    let f: Vec<ForgetRec> = records(&out, "forget");
    assert_eq!(f.iter().filter(|r| r.action == "remove").count(), 4);
    kept.split_off(4)
}

fn copy_repo(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    let st = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(st.success());
}

#[test]
fn prune_after_a_prune_killed_before_it_deleted_anything() {
    // The state a kill leaves between writing the new packs and deleting the old
    // ones: the old partly used packs and their repacked copies, side by side. The
    // next prune may write a pack identical (same name) to such a copy.
    let d = tempfile::tempdir().unwrap();
    let template = d.path().join("template");
    let src = d.path().join("src");
    let kept = prune_template(&template, &src);
    let full = d.path().join("full");
    copy_repo(&template, &full);
    ok(&full, &["prune"]);
    let old: BTreeSet<_> = packs(&template)
        .into_iter()
        .map(|p| p.strip_prefix(&template).unwrap().to_path_buf())
        .collect();
    let work = d.path().join("work");
    copy_repo(&template, &work);
    let mut added = 0;
    for p in packs(&full) {
        let rel = p.strip_prefix(&full).unwrap().to_path_buf();
        if !old.contains(&rel) {
            fs::create_dir_all(work.join(&rel).parent().unwrap()).unwrap();
            fs::copy(&p, work.join(&rel)).unwrap();
            added += 1;
        }
    }
    assert!(
        added > 0,
        "the prune rewrote no pack: the test needs partly used packs"
    );
    verify_read_data(&work, 0);
    for _ in 0..2 {
        ok(&work, &["prune"]);
        verify_read_data(&work, 0);
        let scratch = d.path().join("scratch");
        for (id, expected) in &kept {
            restore_matches(&work, id, expected, &src, &scratch, 0);
        }
    }
}

#[test]
fn sigkill_during_prune_leaves_a_valid_repository() {
    let mut rng = Rng::seeded("prune");
    let d = tempfile::tempdir().unwrap();
    let template = d.path().join("template");
    let src = d.path().join("src");
    let kept = prune_template(&template, &src);

    let work = d.path().join("work");
    let scratch = d.path().join("scratch");
    let copy = |to: &Path| copy_repo(&template, to);
    copy(&work);
    if let Ok(keep) = std::env::var("BACKUP_SNAP_CRASH_KEEP") {
        let _ = Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(format!("{keep}-template"))
            .status();
    }
    let prune = vec!["prune".to_string()];
    let full = timed(&work, &prune);
    let mut killed = 0;
    for round in 0..ROUNDS {
        copy(&work);
        let after = Duration::from_micros(rng.below(full.as_micros() as u64 + 1));
        if !run_and_kill(&work, &prune, after) {
            killed += 1;
        }
        let listed_after_kill = packs(&work);
        let o = bs(&work, &["verify", "--read-data"]);
        if o.status.code() != Some(0) {
            let now: BTreeSet<_> = packs(&work).into_iter().collect();
            let then: BTreeSet<_> = listed_after_kill.into_iter().collect();
            panic!(
                "round {round} (kill after {after:?} of {full:?}): verify failed; packs gone since the kill: {:?}; new: {:?}; prune stderr: {}",
                then.difference(&now).collect::<Vec<_>>(),
                now.difference(&then).collect::<Vec<_>>(),
                fs::read_to_string(work.with_extension("stderr")).unwrap_or_default()
            );
        }
        for (id, expected) in &kept {
            restore_matches(&work, id, expected, &src, &scratch, round);
        }
        // A later prune finishes the job from wherever the killed one stopped.
        ok(&work, &["prune"]);
        verify_read_data(&work, round);
    }
    assert!(
        killed >= ROUNDS / 4,
        "only {killed} of {ROUNDS} prunes were killed before they finished"
    );
}
