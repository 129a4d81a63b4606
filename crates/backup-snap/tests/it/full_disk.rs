//! A full disk: the repository on a small tmpfs (mounted by the test; scripts/test
//! runs as root). create fails with a clear error and exit 74, and the repository
//! stays valid: verify --read-data passes and the earlier snapshot restores.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;

struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn tmpfs(at: &Path, size: &str) -> Mounted {
    fs::create_dir_all(at).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        at,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some(format!("size={size},mode=0755").as_str()),
    )
    .unwrap_or_else(|e| {
        panic!(
            "mounting a tmpfs at {} ({e}): this test needs root (scripts/test runs as root)",
            at.display()
        )
    });
    Mounted(at.to_path_buf())
}

#[test]
fn a_full_disk_is_a_clear_error_and_the_repository_stays_valid() {
    let d = tempfile::tempdir().unwrap();
    let mnt = d.path().join("small");
    let _m = tmpfs(&mnt, "8m");
    let repo = mnt.join("repo");
    init(&repo);
    let small = d.path().join("small-src");
    fs::create_dir(&small).unwrap();
    fs::write(small.join("a"), pseudo_random(1, 1 << 20)).unwrap();
    let first = create(&repo, "disk", &[&small], &[]);

    let big = d.path().join("big-src");
    fs::create_dir(&big).unwrap();
    for i in 0..4 {
        fs::write(big.join(format!("f{i}")), pseudo_random(10 + i, 5 << 20)).unwrap();
    }
    let o = bs(&repo, &["create", "--job", "disk", big.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(74), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.starts_with("backup-snap: ") && err.contains("no space left"),
        "{err}"
    );
    assert!(err.contains("the repository is still valid"), "{err}");
    assert!(o.stdout.is_empty(), "no snapshot record for a failed create");

    // Still one snapshot, nothing half-written left behind, and all of it readable.
    let out = ok(&repo, &["list"]);
    let snaps: Vec<SnapshotRec> = records(&out, "snapshot");
    assert_eq!(snaps.len(), 1);
    assert_eq!(
        fs::read_dir(repo.join("tmp")).unwrap().count(),
        0,
        "temporary files left"
    );
    assert_eq!(fs::read_dir(repo.join("locks")).unwrap().count(), 0, "lock left");
    ok(&repo, &["verify", "--read-data"]);
    let target = d.path().join("out");
    ok(&repo, &["restore", &first.id, target.to_str().unwrap()]);
    assert_same_tree(&small, &restored(&target, &small));
    // Prune works on the full disk too (it deletes before nothing else is needed).
    ok(&repo, &["prune"]);
    ok(&repo, &["verify", "--read-data"]);
}
