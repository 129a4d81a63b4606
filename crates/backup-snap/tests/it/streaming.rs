//! The tree is streamed: create writes a snapshot's tree a piece at a time and
//! reads the job's last snapshot alongside the walk, so what it holds is one piece
//! and the names of the directories it is in, not the whole tree. Counters, not
//! timings or RSS, show it.

use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use backup_snap::create::{self, Options};
use backup_snap::repo::{DEFAULT_PACK_SIZE, Repo};
use backup_snap::snapshot::{self, Entry, Header, Kind, PIECE_ENTRIES, TreeEntries, TreeWriter};

fn options(paths: &[&Path], tmp: &Path) -> Options {
    Options {
        job: "scale".into(),
        time: chrono::Local::now().fixed_offset(),
        excludes: Vec::new(),
        paths: paths.iter().map(|p| p.to_path_buf()).collect(),
        sqlite: Vec::new(),
        pg_dumps: Vec::new(),
        pg_user: "postgres".into(),
        pause: Vec::new(),
        tmp_dir: tmp.to_path_buf(),
        docker: Default::default(),
    }
}

fn header() -> Header {
    Header {
        version: 1,
        job: "j".into(),
        time: "2026-01-01T00:00:00+00:00".into(),
        host: "h".into(),
        paths: vec!["/data".into()],
        ..Default::default()
    }
}

fn entry(i: usize) -> Entry {
    Entry {
        path: format!("/data/f{i:04}").into_bytes(),
        kind: Kind::File,
        mode: 0o644,
        uid: 1,
        gid: 2,
        mtime: i as i64,
        mtime_nsec: 0,
        size: i as u64,
        target: None,
        chunks: vec![i as u8; 32],
        rdev: None,
        ino: i as u64 + 1,
        ctime: 0,
        ctime_nsec: 0,
    }
}

#[test]
fn a_tree_in_pieces_reads_back_whole_and_streamed() {
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("key");
    fs::write(&key, [7u8; 32]).unwrap();
    for encrypted in [false, true] {
        let dir = d.path().join(format!("repo-{encrypted}"));
        let repo = Repo::init(&dir, encrypted.then_some(key.as_path()), DEFAULT_PACK_SIZE).unwrap();
        let tree: Vec<Entry> = (0..50).map(entry).collect();
        let mut w = TreeWriter::with_piece_size(&repo, 7).unwrap();
        for e in &tree {
            w.push(e.clone()).unwrap();
        }
        assert_eq!(w.held_peak, 7, "a piece at a time");
        let mut h = header();
        let id = w.finish(&mut h).unwrap();
        let raw = fs::read(snapshot::snapshot_path(&repo, &id)).unwrap();
        assert_eq!(&raw[..8], b"BSNSNAP2");
        assert_eq!(blake3::hash(&raw).as_bytes(), &id, "named by its hash");
        let (h2, t2) = snapshot::read_full(&repo, &id).unwrap();
        assert_eq!((&h2, &t2), (&h, &tree));
        assert_eq!(snapshot::read_header(&repo, &id).unwrap(), h);
        let streamed: Vec<Entry> = TreeEntries::open(&repo, &id)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(streamed, tree);
        let (listed, bad) = snapshot::list(&repo).unwrap();
        assert!(bad.is_empty());
        assert_eq!(listed.len(), 1);
        // Nothing left behind in tmp/.
        assert_eq!(fs::read_dir(dir.join("tmp")).unwrap().count(), 0);

        // Cut short anywhere: an error, never a panic.
        for cut in [0, 8, 15, 20, raw.len() / 2, raw.len() - 5, raw.len() - 1] {
            fs::write(snapshot::snapshot_path(&repo, &id), &raw[..cut]).unwrap();
            assert!(snapshot::read_full(&repo, &id).is_err(), "cut at {cut}");
            let _ = snapshot::read_header(&repo, &id);
        }
    }
}

#[test]
fn version_1_snapshots_are_still_read() {
    let d = tempfile::tempdir().unwrap();
    let repo = Repo::init(&d.path().join("repo"), None, DEFAULT_PACK_SIZE).unwrap();
    let tree: Vec<Entry> = (0..5).map(entry).collect();
    let mut cbor = Vec::new();
    ciborium_write(&tree, &mut cbor);
    let tree_blob = repo.encode_metadata(&cbor).unwrap();
    let mut h = header();
    h.tree_hash = blake3::hash(&tree_blob).as_bytes().to_vec();
    let mut hcbor = Vec::new();
    ciborium_write(&h, &mut hcbor);
    let header_blob = repo.encode_metadata(&hcbor).unwrap();
    let mut file = b"BSNSNAP1".to_vec();
    file.extend_from_slice(&(header_blob.len() as u32).to_le_bytes());
    file.extend_from_slice(&header_blob);
    file.extend_from_slice(&tree_blob);
    let id = *blake3::hash(&file).as_bytes();
    fs::write(snapshot::snapshot_path(&repo, &id), &file).unwrap();
    assert_eq!(snapshot::read_header(&repo, &id).unwrap(), h);
    assert_eq!(snapshot::read_full(&repo, &id).unwrap().1, tree);
    let streamed: Vec<Entry> = TreeEntries::open(&repo, &id)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(streamed, tree);
}

/// CBOR, as the repository format says.
fn ciborium_write<T: serde::Serialize>(v: &T, out: &mut Vec<u8>) {
    ciborium::into_writer(v, out).unwrap();
}

#[test]
fn create_holds_one_directory_and_one_piece_not_the_tree() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    // 3,000 files in 50 directories of 60, some two levels deeper: more entries than
    // two pieces, far more than any directory.
    for dir in 0..50 {
        let sub = if dir % 5 == 0 {
            format!("d{dir:02}/x/y")
        } else {
            format!("d{dir:02}")
        };
        fs::create_dir_all(src.join(&sub)).unwrap();
        for f in 0..60 {
            fs::write(src.join(&sub).join(format!("f{f:02}")), format!("{dir} {f}\n")).unwrap();
        }
    }
    let repo = Repo::init(&d.path().join("repo"), None, DEFAULT_PACK_SIZE).unwrap();
    let stop = AtomicBool::new(false);
    let opts = options(&[&src], d.path());
    let first = create::run(&repo, &opts, &stop).unwrap();
    assert_eq!(first.header.files, 3000);
    assert_eq!(first.reused_files, 0);
    let (_, tree) = snapshot::read_full(&repo, &first.id).unwrap();
    assert_eq!(
        tree.len(),
        3000 + 50 + 20 + 1,
        "files, directories, x and y, the root"
    );
    // Held at most: one piece, and the names of the directories being walked (the
    // root's 50, then at most 60 in one directory and the one name of x and y).
    assert!(
        first.held_peak <= PIECE_ENTRIES + 50 + 60 + 2,
        "held {} entries and names at once for a tree of {}",
        first.held_peak,
        tree.len()
    );
    assert!(first.held_peak < tree.len());

    // The second run reads the first alongside the walk: every file is found in it.
    fs::write(src.join("d01/f00"), "changed\n").unwrap();
    let second = create::run(&repo, &opts, &stop).unwrap();
    assert_eq!(
        second.reused_files, 2999,
        "all but the changed file taken from the parent"
    );
    assert_eq!(second.header.chunks_new, 1);
    assert!(second.held_peak <= PIECE_ENTRIES + 50 + 60 + 2);
    let (_, tree2) = snapshot::read_full(&repo, &second.id).unwrap();
    assert_eq!(tree2.len(), tree.len());
}

/// Every regular file under `root`, relative path -> bytes, and every directory's
/// relative path -> (mode, mtime).
type Files = std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>;
type Dirs = std::collections::BTreeMap<std::path::PathBuf, (u32, i64)>;

fn read_tree(root: &Path) -> (Files, Dirs) {
    use std::os::unix::fs::MetadataExt;
    let (mut files, mut dirs) = (Files::new(), Dirs::new());
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if m.is_dir() {
                dirs.insert(rel, (m.mode() & 0o7777, m.mtime()));
                todo.push(p);
            } else {
                files.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    (files, dirs)
}

#[test]
fn restore_holds_one_piece_and_the_open_directories_not_the_tree() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    // 3,000 files in 50 directories, some three levels deeper, with set directory
    // times, one read-only directory with files in it, and two hard links.
    for dir in 0..50 {
        let sub = if dir % 5 == 0 {
            format!("d{dir:02}/x/y/z")
        } else {
            format!("d{dir:02}")
        };
        fs::create_dir_all(src.join(&sub)).unwrap();
        for f in 0..60 {
            fs::write(
                src.join(&sub).join(format!("f{f:02}")),
                format!("{dir} {f}\n").repeat(f + 1),
            )
            .unwrap();
        }
    }
    fs::hard_link(src.join("d01/f00"), src.join("d49/link")).unwrap();
    fs::hard_link(src.join("d01/f01"), src.join("d01/link")).unwrap();
    for dir in 0..50 {
        let t = filetime_secs(1_600_000_000 + dir * 1000);
        fs::File::open(src.join(format!("d{dir:02}")))
            .unwrap()
            .set_times(fs::FileTimes::new().set_modified(t))
            .unwrap();
    }
    fs::set_permissions(src.join("d07"), fs::Permissions::from_mode(0o555)).unwrap();
    let (want_files, want_dirs) = read_tree(&src);

    let repo = Repo::init(&d.path().join("repo"), None, DEFAULT_PACK_SIZE).unwrap();
    let stop = AtomicBool::new(false);
    let created = create::run(&repo, &options(&[&src], d.path()), &stop).unwrap();
    fs::set_permissions(src.join("d07"), fs::Permissions::from_mode(0o755)).unwrap();
    let index = backup_snap::repo::Index::load(&repo).unwrap();
    let tree = backup_snap::restore::Stored::new(&repo, created.id);
    let target = d.path().join("restored");
    let counts = backup_snap::restore::run(
        &repo,
        &index,
        &tree,
        &target,
        &backup_snap::restore::Options {
            snapshot: "s".into(),
            subpath: None,
            overwrite: None,
        },
    )
    .unwrap();
    assert!(counts.errors.is_empty(), "{:?}", counts.errors);
    assert_eq!(counts.files, 3000);
    assert_eq!(counts.hardlinks, 2);
    let entries = 3000 + 2 + 50 + 30 + 1 + src.components().count() - 1;
    // Held at most: one piece, and the directories the restore is in (the source's
    // own path, dNN, x, y, z) twice (their metadata and their checked paths), and
    // the two hard links' first paths.
    let held = tree.piece_peak.get() + counts.held_peak;
    let depth = src.components().count() + 4;
    assert!(tree.piece_peak.get() <= PIECE_ENTRIES);
    assert!(
        counts.held_peak <= 2 * depth + 2,
        "held {} directories and link paths at once (depth {depth})",
        counts.held_peak
    );
    assert!(held < entries, "held {held} of {entries}");

    // Byte for byte the same, directory modes and times too.
    let restored_src = target.join(src.strip_prefix("/").unwrap());
    let (got_files, got_dirs) = read_tree(&restored_src);
    assert_eq!(got_files.len(), want_files.len());
    assert!(got_files == want_files, "restored contents differ");
    assert_eq!(got_dirs, want_dirs);
    let link = fs::metadata(restored_src.join("d49/link")).unwrap();
    assert_eq!(
        link.ino(),
        fs::metadata(restored_src.join("d01/f00")).unwrap().ino()
    );
    fs::set_permissions(restored_src.join("d07"), fs::Permissions::from_mode(0o755)).unwrap();
}

fn filetime_secs(s: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(s)
}
