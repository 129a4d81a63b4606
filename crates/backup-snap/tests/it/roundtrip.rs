//! Round trips: a tree with permissions, owners, mtimes, symlinks (one dangling),
//! hard links, empty directories, sparse and large files and non-UTF-8 names is
//! restored identical, compared by a full metadata and checksum walk.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::common::*;

fn set_mtime(p: &Path, secs: i64, nsec: i64) {
    let ts = nix::sys::time::TimeSpec::new(secs, nsec);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        p,
        &ts,
        &ts,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

/// Builds the test tree under `root/tree` and returns its path.
fn build_tree(root: &Path) -> std::path::PathBuf {
    let t = root.join("tree");
    fs::create_dir_all(t.join("empty/nested-empty")).unwrap();
    fs::create_dir_all(t.join("dir/sub")).unwrap();
    fs::write(t.join("dir/small.txt"), b"hello\n").unwrap();
    fs::write(t.join("dir/empty-file"), b"").unwrap();
    fs::write(t.join("dir/sub/large.bin"), pseudo_random(1, 9 << 20)).unwrap();
    // Sparse: 64 MiB with data only at the start, the middle and the end.
    let f = fs::File::create(t.join("sparse.img")).unwrap();
    f.set_len(64 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"start", 0).unwrap();
    f.write_all_at(&pseudo_random(2, 200_000), 30 << 20).unwrap();
    f.write_all_at(b"end", (64 << 20) - 3).unwrap();
    drop(f);
    // Non-UTF-8 names, a file and a directory.
    let bad = OsStr::from_bytes(b"caf\xe9-\xff\xfe");
    fs::write(t.join(bad), b"latin-1 name").unwrap();
    fs::create_dir(t.join(OsStr::from_bytes(b"dir-\x80"))).unwrap();
    fs::write(t.join(OsStr::from_bytes(b"dir-\x80/inner")), b"x").unwrap();
    // Symlinks: relative, absolute, dangling.
    std::os::unix::fs::symlink("dir/small.txt", t.join("link-rel")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", t.join("link-abs")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", t.join("link-dangling")).unwrap();
    // Hard links, across directories.
    fs::write(t.join("dir/hard-a"), b"shared content").unwrap();
    fs::hard_link(t.join("dir/hard-a"), t.join("dir/sub/hard-b")).unwrap();
    fs::hard_link(t.join("dir/hard-a"), t.join("hard-c")).unwrap();
    // A FIFO.
    nix::unistd::mkfifo(&t.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o640)).unwrap();
    // Permissions, including setgid, sticky and a read-only directory.
    fs::set_permissions(t.join("dir/small.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(t.join("dir/empty-file"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(t.join("empty"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(t.join("dir/sub"), fs::Permissions::from_mode(0o2550)).unwrap();
    // Owners (the tests run as root in scripts/test).
    let own = |p: &str, u: u32, g: u32| std::os::unix::fs::lchown(t.join(p), Some(u), Some(g)).unwrap();
    own("dir/small.txt", 1000, 1000);
    own("dir/sub/large.bin", 12345, 54321);
    own("link-rel", 1001, 1002);
    own("empty", 65534, 65534);
    // mtimes with nanoseconds, old and new, on files, symlinks and directories.
    set_mtime(&t.join("dir/small.txt"), 1_000_000_000, 123_456_789);
    set_mtime(&t.join("link-dangling"), 1_500_000_000, 1);
    set_mtime(&t.join(bad), 86_400, 999_999_999);
    for d in ["empty/nested-empty", "empty", "dir/sub", "dir", "."] {
        set_mtime(&t.join(d), 1_700_000_000, 42);
    }
    t
}

#[test]
fn everything_restores_identical() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test sets owners: run it as root (scripts/test does)"
    );
    let d = tempfile::tempdir().unwrap();
    let tree = build_tree(d.path());
    let repo = d.path().join("repo");
    init(&repo);
    let snap = create(&repo, "tree", &[&tree], &[]);
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
    assert_eq!(snap.files, 9, "5 files, 3 hard links, 1 in the non-UTF-8 dir");

    let target = d.path().join("out");
    let out = ok(&repo, &["restore", &snap.id, target.to_str().unwrap()]);
    let r: Vec<RestoreRec> = records(&out, "restore");
    assert_eq!(r[0].errors, Vec::<String>::new());
    assert_eq!(r[0].hardlinks, 2);
    assert_eq!(r[0].symlinks, 3);
    assert_eq!(r[0].special, 1);
    let back = restored(&target, &tree);
    assert_same_tree(&tree, &back);
    // The sparse file stays sparse: far fewer blocks than its size.
    let m = fs::metadata(back.join("sparse.img")).unwrap();
    assert_eq!(m.len(), 64 << 20);
    assert!(
        m.blocks() * 512 < 8 << 20,
        "sparse file restored with {} blocks",
        m.blocks()
    );

    // A second snapshot of the unchanged tree stores nothing new and reads nothing.
    let again = create(&repo, "tree", &[&tree], &[]);
    assert_eq!(again.chunks_new, 0);
    assert_eq!(again.bytes_added, 0);

    // Part of a snapshot with --path.
    let part = d.path().join("part");
    let sub = tree.join("dir/sub");
    ok(
        &repo,
        &[
            "restore",
            "latest:tree",
            part.to_str().unwrap(),
            "--path",
            sub.to_str().unwrap(),
        ],
    );
    assert_same_tree(&sub, &restored(&part, &sub));
    assert!(!restored(&part, &tree).join("dir/small.txt").exists());
}

#[test]
fn encrypted_repository_round_trips_and_needs_its_key() {
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("src");
    fs::create_dir_all(tree.join("a")).unwrap();
    fs::write(
        tree.join("a/secret.txt"),
        b"the quick brown fox jumps over the lazy dog ".repeat(5000),
    )
    .unwrap();
    fs::write(tree.join("random"), pseudo_random(9, 3 << 20)).unwrap();
    let key = d.path().join("key");
    fs::write(&key, pseudo_random(77, 32)).unwrap();
    let repo = d.path().join("repo");
    let kf = key.to_str().unwrap();
    let out = ok(&repo, &["--key-file", kf, "init"]);
    let r: Vec<RepositoryRec> = records(&out, "repository");
    assert!(r[0].encrypted);
    let snap = create(&repo, "enc", &[&tree], &["--key-file", kf]);
    // Nothing of the plaintext is visible in the repository's files.
    for p in packs(&repo) {
        let raw = fs::read(&p).unwrap();
        assert!(
            !raw.windows(19).any(|w| w == b"the quick brown fox"),
            "plaintext in {}",
            p.display()
        );
    }
    let target = d.path().join("out");
    ok(
        &repo,
        &["--key-file", kf, "restore", &snap.id, target.to_str().unwrap()],
    );
    assert_same_tree(&tree, &restored(&target, &tree));
    ok(&repo, &["--key-file", kf, "verify", "--read-data"]);

    // Without the key, or with another one: configuration error 78, nothing printed.
    let o = bs(&repo, &["list"]);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert!(stderr(&o).contains("--key-file"), "{}", stderr(&o));
    let other = d.path().join("other");
    fs::write(&other, pseudo_random(78, 32)).unwrap();
    let o = bs(&repo, &["--key-file", other.to_str().unwrap(), "list"]);
    assert_eq!(o.status.code(), Some(78));
    assert!(stderr(&o).contains("does not open"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    // A short key file is refused at init.
    fs::write(&other, b"short").unwrap();
    let o = bs(
        &d.path().join("repo2"),
        &["--key-file", other.to_str().unwrap(), "init"],
    );
    assert_eq!(o.status.code(), Some(78));
}

#[test]
fn hostile_manifest_never_writes_outside_the_target() {
    use backup_snap::repo::Repo;
    use backup_snap::snapshot::{self, Entry, Header, Kind};
    let d = tempfile::tempdir().unwrap();
    let repo_dir = d.path().join("repo");
    init(&repo_dir);
    let repo = Repo::open(&repo_dir, None).unwrap();
    let outside = d.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let e = |path: &[u8], kind: Kind, target: Option<&[u8]>| Entry {
        path: path.to_vec(),
        kind,
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: 0,
        mtime_nsec: 0,
        size: 0,
        target: target.map(<[u8]>::to_vec),
        chunks: Vec::new(),
        rdev: None,
        ino: 0,
        ctime: 0,
        ctime_nsec: 0,
    };
    let out_b = outside.as_os_str().as_bytes();
    let tree = vec![
        e(b"/../../escape-file", Kind::File, None),
        e(b"/a/../../../escape2", Kind::File, None),
        e(b"/link", Kind::Symlink, Some(out_b)),
        e(b"/link/through-symlink", Kind::File, None),
        e(b"/link/dir", Kind::Dir, None),
        e(b"/hl", Kind::Hardlink, Some(b"/../../etc/passwd")),
        e(b"//double", Kind::File, None),
        e(b"/fine", Kind::File, None),
    ];
    let mut h = Header {
        version: 1,
        job: "evil".into(),
        time: "2026-01-01T00:00:00+00:00".into(),
        host: "x".into(),
        ..Default::default()
    };
    let id = snapshot::write(&repo, &mut h, &tree).unwrap();
    let target = d.path().join("target");
    let o = bs(
        &repo_dir,
        &[
            "restore",
            &backup_snap::crypto::hex(&id),
            target.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(74), "refusals are errors: {}", stderr(&o));
    let r: Vec<RestoreRec> = records(&o, "restore");
    assert_eq!(r[0].errors.len(), 6, "{:#?}", r[0].errors);
    assert!(
        r[0].errors
            .iter()
            .all(|e| e.contains("refused") || e.contains("hard link target")),
        "{:#?}",
        r[0].errors
    );
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "something was written through the symlink"
    );
    assert!(
        !d.path().join("escape-file").exists() && !d.path().parent().unwrap().join("escape-file").exists()
    );
    assert!(target.join("fine").is_file());
    assert!(
        fs::symlink_metadata(target.join("link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}
