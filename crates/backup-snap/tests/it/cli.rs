//! The command line: the man page documents every field and metric, the Prometheus
//! page passes promtool and node_exporter reads it, locks, unreadable files,
//! excludes, one filesystem, bad input.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;
use homelab_testkit::{promtool_check_metrics, series, service_env, wait_until};

fn keys(out: &std::process::Output, into: &mut BTreeSet<String>) {
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for k in v.as_object().unwrap().keys() {
            into.insert(k.clone());
        }
    }
}

#[test]
fn the_man_page_documents_every_field_and_metric() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), pseudo_random(1, 300_000)).unwrap();
    let repo = d.path().join("repo");
    let mut fields = BTreeSet::new();
    keys(&ok(&repo, &["init"]), &mut fields);
    keys(
        &ok(&repo, &["create", "--job", "j", src.to_str().unwrap()]),
        &mut fields,
    );
    keys(
        &ok(&repo, &["create", "--job", "j", src.to_str().unwrap()]),
        &mut fields,
    );
    keys(&ok(&repo, &["list"]), &mut fields);
    keys(
        &ok(
            &repo,
            &["restore", "latest", d.path().join("o").to_str().unwrap()],
        ),
        &mut fields,
    );
    keys(&ok(&repo, &["forget", "--keep-last", "1"]), &mut fields);
    keys(&ok(&repo, &["prune"]), &mut fields);
    keys(&ok(&repo, &["verify", "--read-data"]), &mut fields);
    // A damage record too.
    let pack = packs(&repo)[0].clone();
    fs::write(&pack, b"gone").unwrap();
    keys(&bs(&repo, &["verify"]), &mut fields);
    assert!(fields.contains("problem") && fields.contains("reasons") && fields.contains("chunks_new"));
    let man = backup_snap::MAN_SECTIONS;
    let missing: Vec<_> = fields
        .iter()
        .filter(|f| !man.contains(&format!("\\fB{f}\\fR")))
        .collect();
    assert!(
        missing.is_empty(),
        "fields not documented in man.roff: {missing:?}"
    );
    for kind in [
        "repository",
        "snapshot",
        "restore",
        "damage",
        "verify",
        "forget",
        "prune",
    ] {
        assert!(
            man.contains(&format!(".SS \"kind: {kind}\"")),
            "kind {kind} undocumented"
        );
    }
    let page = String::from_utf8(ok(&repo, &["--format", "prom", "list"]).stdout).unwrap();
    let metrics: BTreeSet<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .collect();
    assert!(metrics.len() >= 10, "{metrics:?}");
    for m in metrics {
        assert!(
            man.contains(&format!("\\fB{m}")),
            "metric {m} not documented in man.roff"
        );
    }
}

#[test]
fn the_page_passes_promtool_and_node_exporter_reads_it() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"data").unwrap();
    let repo = d.path().join("repo");
    init(&repo);
    let textfile = service_env("HLT_TEXTFILE_DIR", "node_exporter's textfile directory");
    let url = service_env("HLT_NODE_EXPORTER_URL", "node_exporter");
    for job in ["n8n", "stack\"quoted"] {
        let o = bs(
            &repo,
            &[
                "--quiet",
                "--textfile-dir",
                &textfile,
                "create",
                "--job",
                job,
                src.to_str().unwrap(),
            ],
        );
        if job.contains('"') {
            assert_eq!(o.status.code(), Some(64), "a job name must be a safe label value");
            continue;
        }
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(o.stdout.is_empty(), "--quiet prints nothing");
    }
    create(&repo, "grafana", &[&src], &[]);
    ok(&repo, &["verify"]);
    let page = String::from_utf8(ok(&repo, &["--format", "prom", "list"]).stdout).unwrap();
    promtool_check_metrics(&page);
    assert!(
        !page
            .lines()
            .any(|l| !l.starts_with('#') && l.split(' ').count() > 2),
        "no timestamps"
    );
    assert_eq!(series(&page, "backup_snapshots{job=\"n8n\"}"), Some(1.0));
    assert_eq!(
        series(&page, "backup_snapshots{job=\"grafana\"}"),
        Some(1.0),
        "every job's series survive"
    );
    assert_eq!(series(&page, "backup_verify_errors"), Some(0.0));
    assert!(series(&page, "backup_last_size_bytes{job=\"n8n\"}") == Some(4.0));
    let file = fs::read_to_string(std::path::Path::new(&textfile).join("backup-snap.prom")).unwrap();
    promtool_check_metrics(&file);
    wait_until(
        Duration::from_secs(10),
        "node_exporter to serve backup_snapshots",
        || {
            let body = homelab_testkit::http_get(&url);
            body.contains("backup_snapshots{job=\"n8n\"} 1") && body.contains("node_textfile_scrape_error 0")
        },
    );
    let _ = fs::remove_file(std::path::Path::new(&textfile).join("backup-snap.prom"));
}

#[test]
fn locks_stop_concurrent_writers_and_stale_ones_are_removed() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    fs::create_dir(&src).unwrap();
    let db = src.join("db.sqlite");
    let hold = rusqlite::Connection::open(&db).unwrap();
    hold.execute_batch("create table x(a); begin exclusive; insert into x values (1);")
        .unwrap();
    let repo = d.path().join("repo");
    init(&repo);
    // A create that waits on the locked database holds the repository lock.
    let child = bin()
        .arg("--repo")
        .arg(&repo)
        .args(["create", "--job", "a", "--sqlite", db.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(10), "the lock file", || {
        fs::read_dir(repo.join("locks")).unwrap().count() == 1
    });
    for cmd in [
        &["prune"][..],
        &["forget", "--keep-last", "1"],
        &["verify"],
        &["create", "--job", "b", src.to_str().unwrap()],
    ] {
        let o = bs(&repo, cmd);
        assert_eq!(
            o.status.code(),
            Some(75),
            "{cmd:?} ran beside a create: {}",
            stderr(&o)
        );
        assert!(
            stderr(&o).contains(&format!("pid {}", child.id())),
            "{}",
            stderr(&o)
        );
        assert!(
            stderr(&o).contains("locks/"),
            "names the lock file: {}",
            stderr(&o)
        );
    }
    ok(&repo, &["list"]); // list needs no lock
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = child.wait_with_output();
    drop(hold);
    // The killed holder's lock is stale now: the next writer removes it and runs.
    assert_eq!(fs::read_dir(repo.join("locks")).unwrap().count(), 1);
    ok(&repo, &["prune"]);
    assert_eq!(fs::read_dir(repo.join("locks")).unwrap().count(), 0);
    // A lock from another host is never guessed stale.
    fs::write(
        repo.join("locks/otherhost-1-00000000.json"),
        br#"{"host":"otherhost","pid":1,"start_ticks":1,"exclusive":true,"command":"prune","time":"2026-01-01T00:00:00+00:00"}"#,
    )
    .unwrap();
    let o = bs(&repo, &["verify"]);
    assert_eq!(o.status.code(), Some(75));
    assert!(stderr(&o).contains("otherhost"));
    fs::write(repo.join("locks/otherhost-1-00000000.json"), b"garbage").unwrap();
    assert_eq!(bs(&repo, &["verify"]).status.code(), Some(75));
}

#[test]
fn unreadable_files_are_errors_and_the_rest_is_backed_up() {
    let d = tempfile::tempdir().unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let src = d.path().join("src");
    fs::create_dir_all(src.join("closed")).unwrap();
    fs::write(src.join("open.txt"), b"readable").unwrap();
    fs::write(src.join("secret.txt"), b"no").unwrap();
    fs::write(src.join("closed/inner"), b"no").unwrap();
    fs::set_permissions(src.join("secret.txt"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(src.join("closed"), fs::Permissions::from_mode(0o000)).unwrap();
    let repo = d.path().join("repo");
    fs::create_dir(&repo).unwrap();
    std::os::unix::fs::chown(&repo, Some(65534), Some(65534)).unwrap();
    // As an unprivileged user (root reads everything).
    let run = |args: &[&str]| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_backup-snap"))
            .arg("--repo")
            .arg(&repo)
            .args(args)
            .output()
            .expect("setpriv (util-linux)")
    };
    assert_eq!(run(&["init"]).status.code(), Some(0));
    let o = run(&["create", "--job", "u", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(74), "{}", stderr(&o));
    let s: Vec<SnapshotRec> = records(&o, "snapshot");
    assert_eq!(s[0].files, 1);
    assert_eq!(s[0].errors.len(), 2, "{:?}", s[0].errors);
    assert!(
        s[0].errors.iter().all(|e| e.contains("permission denied")),
        "{:?}",
        s[0].errors
    );
    assert!(stderr(&o).contains("secret.txt"));
    // The snapshot exists and restores what was readable.
    let out = d.path().join("out");
    fs::create_dir(&out).unwrap();
    std::os::unix::fs::chown(&out, Some(65534), Some(65534)).unwrap();
    // A partial snapshot is `latest` only when asked for.
    let o = run(&["restore", "latest", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(66), "{}", stderr(&o));
    let o = run(&["restore", "latest", out.to_str().unwrap(), "--allow-partial"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let back = restored(&out, &src);
    assert_eq!(fs::read(back.join("open.txt")).unwrap(), b"readable");
    assert!(!back.join("secret.txt").exists());
    assert_eq!(
        fs::metadata(back.join("closed")).unwrap().permissions().mode() & 0o777,
        0,
        "its mode is restored"
    );
}

#[test]
fn excludes_and_one_filesystem() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    fs::create_dir_all(src.join("cache/deep")).unwrap();
    fs::create_dir_all(src.join("keep")).unwrap();
    fs::create_dir_all(src.join("mnt")).unwrap();
    fs::write(src.join("keep/a.txt"), b"a").unwrap();
    fs::write(src.join("keep/b.tmp"), b"b").unwrap();
    fs::write(src.join("cache/deep/c"), b"c").unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &src.join("mnt"),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1m"),
    )
    .expect("mounting a tmpfs needs root (scripts/test runs as root)");
    fs::write(src.join("mnt/other-fs"), b"x").unwrap();
    let repo = d.path().join("repo");
    init(&repo);
    let pattern = format!("{}/cache", src.display());
    let s = create(
        &repo,
        "x",
        &[&src],
        &["--exclude", "*.tmp", "--exclude", &pattern],
    );
    let _ = nix::mount::umount2(&src.join("mnt"), nix::mount::MntFlags::MNT_DETACH);
    assert_eq!(s.files, 1, "only keep/a.txt");
    let out = d.path().join("out");
    ok(&repo, &["restore", &s.id, out.to_str().unwrap()]);
    let back = restored(&out, &src);
    assert!(back.join("keep/a.txt").exists());
    assert!(!back.join("keep/b.tmp").exists() && !back.join("cache").exists());
    assert!(back.join("mnt").is_dir(), "the mount point is kept");
    assert!(
        !back.join("mnt/other-fs").exists(),
        "another filesystem is not entered"
    );
}

#[test]
fn bad_input_gets_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("repo");
    let o = bin()
        .args(["list"])
        .env_remove("BACKUP_SNAP_REPO")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("--repo"));
    init(&repo);
    assert_eq!(bs(&repo, &["init"]).status.code(), Some(73), "init twice");
    for (args, code) in [
        (&["create", "--job", "x"][..], 64),
        (&["create", "--job", "bad name", "/tmp"], 64),
        (&["create", "--job", "x", "--time", "yesterday", "/tmp"], 64),
        (&["create", "--job", "x", "--exclude", "[", "/tmp"], 64),
        (&["restore", "zz", "/tmp/x"], 64),
        (&["restore", "abcdef", "/tmp/x"], 66),
        (&["restore", "latest", "/tmp/x"], 66),
        (&["verify", "--read-data-subset", "0/3"], 64),
        (&["verify", "--read-data", "--read-data-subset", "1/3"], 64),
        (&["prune", "--max-unused", "200"], 64),
        (&["init", "--pack-size", "1KiB"], 64),
    ] {
        let o = bs(&repo, args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{args:?} printed data");
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
    // Nothing could be read: no snapshot (issue 23; defects.rs has the rest).
    let o = bs(&repo, &["create", "--job", "x", "/nonexistent/path"]);
    assert_eq!(o.status.code(), Some(66));
    assert!(stderr(&o).contains("no such file"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
}

/// The Docker engine is reached with the same flags, environment, defaults and exit
/// codes as every other tool (core's DockerArgs): --docker-host or DOCKER_HOST, on
/// either side of the subcommand; 69 with "is dockerd running?" for a socket nobody
/// listens on, 78 for an address no tool supports, and --docker-timeout bounding an
/// engine that never answers.
#[test]
fn docker_flags_are_the_shared_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, src) = (dir.path().join("repo"), dir.path().join("src"));
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), "x").unwrap();
    init(&repo);
    let src = src.to_str().unwrap();
    let repo_s = repo.to_str().unwrap();
    let absent = format!("unix://{}/none.sock", dir.path().display());
    let create = ["create", "--job", "j", "--pause", "web", src];
    let run = |pre: &[&str], post: &[&str], env: Option<&str>| {
        let mut c = bin();
        c.args(["--repo", repo_s]).args(pre).args(create).args(post);
        c.env_remove("DOCKER_HOST");
        if let Some(h) = env {
            c.env("DOCKER_HOST", h);
        }
        c.output().unwrap()
    };
    for o in [
        run(&["--docker-host", &absent], &[], None),
        run(&[], &["--docker-host", &absent], None),
        run(&[], &[], Some(&absent)),
    ] {
        assert_eq!(o.status.code(), Some(69), "{}", stderr(&o));
        assert!(stderr(&o).contains("is dockerd running?"), "{}", stderr(&o));
    }
    let o = run(&["--docker-host", "ftp://example.org"], &[], None);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));

    // An engine that never answers: the kernel completes the connection (backlog),
    // nobody reads it; given up after --docker-timeout.
    let sock = dir.path().join("silent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let started = std::time::Instant::now();
    let silent = format!("unix://{}", sock.display());
    let o = run(&["--docker-host", &silent], &["--docker-timeout", "300ms"], None);
    let took = started.elapsed();
    assert_eq!(o.status.code(), Some(69), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("300ms"),
        "the timeout is named: {}",
        stderr(&o)
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let o = run(&["--docker-timeout", "soon"], &[], None);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
}
