//! `--format text`: every command's view is for a person: sizes in binary units,
//! times as dates with how long ago, yes/no and states in words, no raw `true`,
//! RFC 3339 times or byte counts; problems marked with `!` and listed; colour only
//! on a terminal and never with NO_COLOR.

use std::path::Path;

use crate::common::*;

fn text(repo: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = bin()
        .arg("--repo")
        .arg(repo)
        .args(["--format", "text"])
        .args(args)
        .env_remove("COLUMNS")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(!s.contains('\x1b'), "{args:?}: no colour into a pipe: {s:?}");
    assert!(
        !s.contains("true") && !s.contains("false"),
        "{args:?}: raw booleans: {s}"
    );
    // An RFC 3339 time such as 2026-11-26T03:00:00+01:00.
    let rfc3339 = s
        .as_bytes()
        .windows(3)
        .any(|w| w[0].is_ascii_digit() && w[1] == b'T' && w[2].is_ascii_digit());
    assert!(!rfc3339, "{args:?}: raw times: {s}");
    // Ids are 8 hex digits (which may all be decimal ones); a byte count is longer.
    let long_number = s
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| w.len() >= 9 && w.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(
        !long_number && !s.contains("1500000"),
        "{args:?}: raw byte counts or full ids: {s}"
    );
    (out.status.code(), s)
}

#[test]
fn every_command_prints_a_view_for_people() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, src) = (dir.path().join("repo"), dir.path().join("src"));
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.bin"), pseudo_random(7, 1_500_000)).unwrap();
    std::fs::write(src.join("sub/b.txt"), "hello\n").unwrap();
    let src_s = src.to_str().unwrap();

    let (code, s) = text(&repo, &["init"]);
    assert_eq!(code, Some(0));
    assert!(s.contains("Encrypted   no !"), "{s}");
    assert!(
        s.contains("min 32.0 KiB, avg 128.0 KiB, max 512.0 KiB"),
        "chunk sizes in words: {s}"
    );

    let (code, s) = text(
        &repo,
        &[
            "create",
            "--job",
            "demo",
            "--time",
            "2026-11-26T03:00:00+01:00",
            src_s,
        ],
    );
    assert_eq!(code, Some(0));
    assert!(s.contains("of job demo, complete"), "{s}");
    assert!(s.contains("Time      2026-11-26 02:00 UTC, "), "{s}");
    assert!(s.contains(" ago\n") && s.contains("1.4 MiB"), "{s}");
    text(&repo, &["create", "--job", "demo", src_s]);

    let (code, s) = text(&repo, &["list"]);
    assert_eq!(code, Some(0));
    let first = s.lines().nth(1).unwrap();
    assert!(
        first.contains("2026-11-26 02:00 UTC, ") && first.contains("1.4 MiB") && first.ends_with("complete"),
        "{s}"
    );

    let (code, s) = text(&repo, &["verify", "--read-data"]);
    assert_eq!(code, Some(0));
    assert!(s.contains("Result     no damage"), "{s}");
    assert!(s.contains("Data read  all: 1.4 MiB from 1 pack"), "{s}");

    let (code, s) = text(&repo, &["forget", "--keep-last", "1", "--dry-run"]);
    assert_eq!(code, Some(0));
    assert!(
        s.contains("would remove") && s.contains("Dry run: nothing was removed."),
        "{s}"
    );

    let (code, s) = text(&repo, &["prune", "--dry-run"]);
    assert_eq!(code, Some(0));
    assert!(s.contains("Dry run") && s.contains("would be freed"), "{s}");

    let target = dir.path().join("out");
    let (code, s) = text(&repo, &["restore", "latest", target.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    assert!(s.contains("2 files, 2 directories, 0 symlinks"), "{s}");

    let (code, s) = text(&repo, &["drill"]);
    assert_eq!(code, Some(0));
    assert!(s.lines().nth(1).unwrap().ends_with("passed"), "{s}");

    let second = dir.path().join("second");
    ok(&second, &["init"]);
    let (code, s) = text(&repo, &["copy", "--to", second.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    assert!(s.contains("2 copied, 0 already there; none left to copy"), "{s}");

    // Damage: marked and explained, red on a terminal unless NO_COLOR is set.
    let pack = packs(&repo)
        .into_iter()
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&pack, bytes).unwrap();
    let (code, s) = text(&repo, &["verify", "--read-data"]);
    assert_eq!(code, Some(65));
    assert!(
        s.contains("Result     damaged: 1 pack, ") && s.contains(" affected !"),
        "{s}"
    );

    let repo_s = repo.to_str().unwrap();
    let args = ["--repo", repo_s, "--format", "text", "verify", "--read-data"];
    let on_tty = |no_color| {
        let (code, out) =
            homelab_testkit::on_terminal(Path::new(env!("CARGO_BIN_EXE_backup-snap")), &args, no_color);
        assert_eq!(code, Some(65), "{out}");
        out
    };
    let coloured = on_tty(None);
    assert!(
        coloured.contains("\x1b[1m\x1b[31mdamaged: "),
        "red on a terminal: {coloured:?}"
    );
    let plain = on_tty(Some("1"));
    assert!(
        plain.contains("damaged: ") && !plain.contains('\x1b'),
        "NO_COLOR: {plain:?}"
    );
}
