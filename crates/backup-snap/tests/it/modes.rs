//! Repository directories are 0700 and files 0600 whatever the umask; init
//! without a key warns once that the repository is readable by anyone who can
//! read the disk.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use crate::common::*;

/// backup-snap with umask 000, the loosest there is.
fn loose(repo: &Path, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("umask 000 && exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_backup-snap"))
        .arg("--repo")
        .arg(repo)
        .args(args);
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    o
}

fn assert_private(root: &Path) {
    let mut seen = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let mode = m.permissions().mode() & 0o7777;
        if m.is_dir() {
            assert_eq!(mode, 0o700, "{} is {mode:o}", p.display());
            stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode, 0o600, "{} is {mode:o}", p.display());
            seen += 1;
        }
    }
    assert!(seen >= 3, "config, a pack and a snapshot at least");
}

#[test]
fn repository_is_private_whatever_the_umask() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("shadow"), b"root:$6$secret").unwrap();
    let key = t.path().join("k");
    fs::write(&key, pseudo_random(3, 32)).unwrap();
    let k = key.to_str().unwrap();
    // A new path, and an existing empty directory made with the usual mode.
    let repo = t.path().join("new/repo");
    let other = t.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::set_permissions(&other, fs::Permissions::from_mode(0o777)).unwrap();
    let d = data.to_str().unwrap();
    loose(&repo, &["--key-file", k, "init"]);
    loose(&repo, &["--key-file", k, "create", "--job", "j", d]);
    loose(&repo, &["--key-file", k, "verify"]);
    loose(&other, &["init"]);
    let to = other.to_str().unwrap();
    loose(&repo, &["--key-file", k, "copy", "--to", to]);
    assert_private(&repo);
    assert_private(&other);
}

#[test]
fn init_without_a_key_warns_once() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("r");
    let o = ok(&repo, &["init"]);
    let e = stderr(&o);
    assert_eq!(e.matches("not encrypted").count(), 1, "{e}");
    assert!(
        e.contains("anyone who can read the disk") && e.contains("--key-file"),
        "{e}"
    );
    let key = t.path().join("k");
    fs::write(&key, pseudo_random(3, 32)).unwrap();
    let o = ok(
        &t.path().join("enc"),
        &["--key-file", key.to_str().unwrap(), "init"],
    );
    assert_eq!(stderr(&o), "", "an encrypted init says nothing");
    // Later commands on the unencrypted repository do not repeat it.
    let o = ok(&repo, &["list"]);
    assert!(!stderr(&o).contains("not encrypted"));
}
