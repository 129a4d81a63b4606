//! prune's default `--max-unused 5` (restic's): a pack with a few unused chunks is
//! left alone, a pack that is mostly unused is rewritten, and nothing a kept
//! snapshot needs is lost either way.

use std::fs;

use crate::common::*;

const FILES: usize = 40;
const SIZE: usize = 8 << 10;

fn prune(repo: &std::path::Path, extra: &[&str]) -> PruneRec {
    let mut args = vec!["prune"];
    args.extend_from_slice(extra);
    let mut r: Vec<PruneRec> = records(&ok(repo, &args), "prune");
    assert_eq!(r.len(), 1);
    r.remove(0)
}

#[test]
fn prune_rewrites_mostly_unused_packs_and_leaves_mostly_used_ones() {
    let d = tempfile::tempdir().unwrap();
    let (keep, gone, repo) = (
        d.path().join("keep"),
        d.path().join("gone"),
        d.path().join("repo"),
    );
    // Two jobs, each backed up into its own pack of 40 one-chunk files.
    for (dir, seed) in [(&keep, 1000), (&gone, 2000)] {
        fs::create_dir(dir).unwrap();
        for i in 0..FILES {
            fs::write(dir.join(format!("f{i:02}")), pseudo_random(seed + i as u64, SIZE)).unwrap();
        }
    }
    init(&repo);
    create(&repo, "keep", &[&keep], &["--time", "2026-01-01T00:00:00Z"]);
    create(&repo, "gone", &[&gone], &["--time", "2026-01-01T00:00:00Z"]);
    let first_packs = packs(&repo);
    assert_eq!(first_packs.len(), 2, "one pack per job");
    // keep: one file of 40 changed (1/40 of its pack unused once the old snapshot
    // goes); gone: 39 of 40 files deleted (39/40 unused).
    fs::write(keep.join("f00"), pseudo_random(1, SIZE)).unwrap();
    for i in 1..FILES {
        fs::remove_file(gone.join(format!("f{i:02}"))).unwrap();
    }
    let keep2 = create(&repo, "keep", &[&keep], &["--time", "2026-01-02T00:00:00Z"]);
    let gone2 = create(&repo, "gone", &[&gone], &["--time", "2026-01-02T00:00:00Z"]);
    ok(&repo, &["forget", "--keep-last", "1"]);

    // --max-unused 0 would rewrite both packs.
    let all = prune(&repo, &["--max-unused", "0", "--dry-run"]);
    assert_eq!((all.packs_rewritten, all.packs_deleted), (2, 0));

    let p = prune(&repo, &[]);
    assert_eq!(p.packs_rewritten, 1, "only the mostly unused pack: {p:?}");
    assert_eq!(p.packs_deleted, 0);
    assert_eq!(p.chunks_removed, (FILES - 1) as u64);
    let after = packs(&repo);
    let (kept_first, gone_first): (Vec<_>, Vec<_>) = first_packs.iter().partition(|p| after.contains(p));
    assert_eq!(kept_first.len(), 1, "the mostly used pack stays as it was");
    assert_eq!(gone_first.len(), 1);
    // The kept pack is keep's: its one unused chunk is still there (5 % tolerated).
    assert!(p.bytes_after > p.bytes_before / 2);

    // Nothing a kept snapshot needs was lost.
    let v: Vec<serde_json::Value> = records(&ok(&repo, &["verify", "--read-data"]), "verify");
    assert_eq!(v[0]["ok"], true, "{v:?}");
    for (snap, src) in [(&keep2.id, &keep), (&gone2.id, &gone)] {
        let target = d.path().join(format!("restore-{snap}"));
        ok(&repo, &["restore", snap.as_str(), target.to_str().unwrap()]);
        assert_same_tree(src, &restored(&target, src));
    }

    // A second prune has nothing left above the threshold: the repository stays.
    let again = prune(&repo, &[]);
    assert_eq!((again.packs_rewritten, again.packs_deleted), (0, 0));
}
