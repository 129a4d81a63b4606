//! Consistent databases, against the real things: a live SQLite database in WAL mode
//! written to during the backup, pg_dump in a real Postgres container (the host's
//! Debian PostgreSQL, see scripts/test) restored with pg_restore, and --pause with a
//! SIGTERM in the middle of a snapshot.

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::common::*;
use homelab_testkit::{Container, Docker, docker, service_env, wait_until};
use rusqlite::Connection;

/// Rows in `t` and the running total in `total` change in the same transaction, so
/// a consistent copy always has sum(t.v) == total.s.
fn open_live_db(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c.execute_batch(
        "create table if not exists t(id integer primary key, v integer, pad blob);
         create table if not exists total(s integer);
         insert into total select 0 where not exists (select 1 from total);",
    )
    .unwrap();
    c
}

fn write_rows(c: &mut Connection, n: u64, seed: u64) {
    let tx = c.transaction().unwrap();
    for i in 0..n {
        let v = ((seed * 31 + i) % 1000) as i64;
        tx.execute("insert into t(v, pad) values (?1, zeroblob(2000))", [v])
            .unwrap();
        tx.execute("update total set s = s + ?1", [v]).unwrap();
    }
    tx.commit().unwrap();
}

fn check_invariant(c: &Connection) -> (i64, i64) {
    let ok: String = c.query_row("pragma integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    let sum: i64 = c
        .query_row("select coalesce(sum(v), 0) from t", [], |r| r.get(0))
        .unwrap();
    let total: i64 = c.query_row("select s from total", [], |r| r.get(0)).unwrap();
    let rows: i64 = c.query_row("select count(*) from t", [], |r| r.get(0)).unwrap();
    assert_eq!(sum, total, "the copy is not one consistent state of the database");
    (rows, total)
}

#[test]
fn a_live_sqlite_database_written_during_the_backup_restores_consistent() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("n8n-data");
    fs::create_dir(&data).unwrap();
    let db = data.join("database.sqlite");
    let mut c = open_live_db(&db);
    for s in 0..20 {
        write_rows(&mut c, 500, s); // ~20 MB, most of it still in the -wal file
    }
    fs::write(data.join("config"), b"{\"encryptionKey\":\"k\"}").unwrap();
    let repo = d.path().join("repo");
    init(&repo);

    // A writer commits transactions the whole time the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, commits, db) = (stop.clone(), commits.clone(), db.clone());
        std::thread::spawn(move || {
            let mut c = Connection::open(&db).unwrap();
            c.busy_timeout(Duration::from_secs(10)).unwrap();
            let mut s = 100;
            while !stop.load(Ordering::SeqCst) {
                write_rows(&mut c, 20, s);
                s += 1;
                commits.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    wait_until(Duration::from_secs(10), "the writer's first commits", || {
        commits.load(Ordering::SeqCst) > 5
    });
    let before = commits.load(Ordering::SeqCst);
    let dbs = db.to_str().unwrap();
    let snap = create(&repo, "n8n", &[&data], &["--sqlite", dbs]);
    let during = commits.load(Ordering::SeqCst) - before;
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert!(during > 0, "no transaction was committed while the backup ran");
    assert!(snap.errors.is_empty() && snap.warnings.is_empty(), "{snap:?}");

    let target = d.path().join("out");
    ok(&repo, &["restore", &snap.id, target.to_str().unwrap()]);
    let back = restored(&target, &data);
    assert!(
        !back.join("database.sqlite-wal").exists(),
        "the live -wal file is not restored beside the copy"
    );
    assert!(!back.join("database.sqlite-shm").exists());
    let (rows, _) = check_invariant(&Connection::open(back.join("database.sqlite")).unwrap());
    assert!(
        rows >= 10_000,
        "committed rows still in the -wal file are in the copy ({rows})"
    );
    assert_eq!(
        fs::read(back.join("config")).unwrap(),
        b"{\"encryptionKey\":\"k\"}"
    );
    drop(c);
}

#[test]
fn an_n8n_folder_without_its_config_gets_a_warning() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join(".n8n");
    fs::create_dir(&data).unwrap();
    let mut c = open_live_db(&data.join("database.sqlite"));
    write_rows(&mut c, 10, 1);
    fs::write(data.join("config"), b"{}").unwrap();
    let repo = d.path().join("repo");
    init(&repo);
    let o = bs(
        &repo,
        &[
            "create",
            "--job",
            "n8n",
            "--exclude",
            "config",
            "--sqlite",
            data.join("database.sqlite").to_str().unwrap(),
            data.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "a warning is not an error");
    let s: Vec<SnapshotRec> = records(&o, "snapshot");
    assert_eq!(s[0].warnings.len(), 1, "{:?}", s[0]);
    assert!(s[0].warnings[0].contains("config") && s[0].warnings[0].contains("encrypt"));
    assert!(stderr(&o).contains("warning:"), "{}", stderr(&o));
}

#[test]
fn a_locked_or_broken_sqlite_database_is_an_error_and_the_rest_is_backed_up() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("broken.sqlite"), pseudo_random(5, 65536)).unwrap();
    fs::write(data.join("notes.txt"), b"kept").unwrap();
    let repo = d.path().join("repo");
    init(&repo);
    let o = bs(
        &repo,
        &[
            "create",
            "--job",
            "x",
            "--sqlite",
            data.join("broken.sqlite").to_str().unwrap(),
            data.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(74));
    let s: Vec<SnapshotRec> = records(&o, "snapshot");
    assert_eq!(s[0].errors.len(), 1);
    assert!(
        s[0].errors[0].contains("broken.sqlite (SQLite)"),
        "{:?}",
        s[0].errors
    );
    assert_eq!(s[0].files, 1, "notes.txt is still backed up");
    let o = bs(
        &repo,
        &["create", "--job", "x", "--sqlite", "/nonexistent/db.sqlite"],
    );
    assert_eq!(o.status.code(), Some(66));
}

struct Postgres {
    c: Container,
}

fn postgres(docker: &Docker) -> Postgres {
    let image = service_env("HLT_PG_IMAGE", "the Postgres image scripts/test builds");
    let name = docker.unique_name("bsnap-pg");
    let label = format!("{}={name}", homelab_testkit::TEST_LABEL);
    let id = docker.run(&[
        "run", "-d", "--network", "none", "--label", &label, "--name", &name, "-v", "/usr:/usr:ro", &image, "sh", "-c",
        "initdb -D /pg/data -U postgres --auth=trust -E UTF8 --locale=C >/pg/initdb.log 2>&1 && exec postgres -D /pg/data -c listen_addresses=",
    ]);
    let c = Container {
        docker: docker.clone(),
        id,
        name,
    };
    wait_until(Duration::from_secs(60), "Postgres to accept connections", || {
        docker
            .output(&["exec", &c.id, "pg_isready", "-q"])
            .status
            .success()
    });
    Postgres { c }
}

impl Postgres {
    fn psql(&self, db: &str, sql: &str) -> String {
        self.c.docker.run(&[
            "exec", &self.c.id, "psql", "-U", "postgres", "-d", db, "-At", "-c", sql,
        ])
    }
}

#[test]
fn pg_dump_from_a_real_postgres_restores_with_pg_restore() {
    let docker = docker();
    let pg = postgres(&docker);
    pg.psql("postgres", "create database shop");
    pg.psql(
        "shop",
        "create table orders(id serial primary key, item text, qty int); \
         insert into orders(item, qty) select 'item ' || g, g % 7 from generate_series(1, 20000) g; \
         create index on orders(item);",
    );
    let d = tempfile::tempdir().unwrap();
    let compose = d.path().join("compose");
    fs::create_dir(&compose).unwrap();
    fs::write(compose.join("compose.yaml"), b"services: {}\n").unwrap();
    let repo = d.path().join("repo");
    init(&repo);
    let spec = format!("{}:shop", pg.c.name);
    let out = bin()
        .env("DOCKER_HOST", &docker.host)
        .arg("--repo")
        .arg(&repo)
        .args([
            "create",
            "--job",
            "stack",
            "--pg-dump",
            &spec,
            compose.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let snap: Vec<SnapshotRec> = records(&out, "snapshot");
    let dump_path = format!("/pg-dump/{}/shop.dump", pg.c.name);
    assert!(snap[0].paths.contains(&dump_path), "{:?}", snap[0].paths);

    let target = d.path().join("out");
    ok(&repo, &["restore", &snap[0].id, target.to_str().unwrap()]);
    let dump = target.join(dump_path.trim_start_matches('/'));
    let raw = fs::read(&dump).unwrap();
    assert!(
        raw.starts_with(b"PGDMP"),
        "a custom-format dump, byte for byte (no TTY mangling)"
    );
    // The host's pg_restore reads it...
    let pg_bin = service_env("HLT_PG_BIN", "the host's PostgreSQL binaries");
    let list = std::process::Command::new(Path::new(&pg_bin).join("pg_restore"))
        .arg("--list")
        .arg(&dump)
        .output()
        .unwrap();
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    assert!(String::from_utf8_lossy(&list.stdout).contains("TABLE public orders"));
    // ...and loads it into a new database, with every row.
    pg.psql("postgres", "create database restored");
    let mut child = docker
        .command()
        .args([
            "exec",
            "-i",
            &pg.c.id,
            "pg_restore",
            "-U",
            "postgres",
            "-d",
            "restored",
            "--no-owner",
        ])
        .stdin(fs::File::open(&dump).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "pg_restore failed");
    assert_eq!(
        pg.psql("restored", "select count(*), sum(qty) from orders"),
        pg.psql("shop", "select count(*), sum(qty) from orders")
    );
    assert_eq!(pg.psql("restored", "select count(*) from orders"), "20000");

    // A database that does not exist: recorded as an error, the files still backed up.
    let out = bin()
        .env("DOCKER_HOST", &docker.host)
        .arg("--repo")
        .arg(&repo)
        .args([
            "create",
            "--job",
            "stack",
            "--pg-dump",
            &format!("{}:nope", pg.c.name),
            compose.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(74));
    let snap: Vec<SnapshotRec> = records(&out, "snapshot");
    assert!(
        snap[0].errors[0].contains("\"nope\" does not exist"),
        "{:?}",
        snap[0].errors
    );
    assert_eq!(snap[0].files, 1);
}

fn paused(c: &Container) -> bool {
    c.inspect("{{.State.Paused}}") == "true"
}

#[test]
fn pause_is_always_undone_even_on_sigterm() {
    let docker = docker();
    let c = docker.start("bsnap-pause", &[], &["sleep", "3600"]);
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("a"), b"a").unwrap();
    let repo = d.path().join("repo");
    init(&repo);
    let with_docker = |args: &[&str]| {
        let mut cmd = bin();
        cmd.env("DOCKER_HOST", &docker.host)
            .arg("--repo")
            .arg(&repo)
            .args(args);
        cmd
    };

    // A normal run: paused while reading, running afterwards.
    let out = with_docker(&["create", "--job", "p", "--pause", &c.name, data.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!paused(&c));

    // Hold an exclusive lock on a database so the copy waits, with the container
    // paused; then SIGTERM.
    let db = data.join("app.sqlite");
    let lockconn = Connection::open(&db).unwrap();
    lockconn
        .execute_batch("create table x(a); insert into x values (1);")
        .unwrap();
    lockconn
        .execute_batch("begin exclusive; insert into x values (2);")
        .unwrap();
    let child = with_docker(&[
        "create",
        "--job",
        "p",
        "--pause",
        &c.name,
        "--sqlite",
        db.to_str().unwrap(),
        data.to_str().unwrap(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_until(
        Duration::from_secs(20),
        "the container to be paused during create",
        || paused(&c),
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert!(!paused(&c), "the container was left paused");
    assert!(out.stdout.is_empty(), "no snapshot record");
    let snaps: Vec<SnapshotRec> = records(&ok(&repo, &["list"]), "snapshot");
    assert_eq!(snaps.len(), 1, "no snapshot from the interrupted run");
    assert_eq!(fs::read_dir(repo.join("locks")).unwrap().count(), 0);
    drop(lockconn);

    // A container that does not exist: a clear error before anything is read.
    let out = with_docker(&[
        "create",
        "--job",
        "p",
        "--pause",
        "no-such-container-bsnap",
        data.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(66), "{}", stderr(&out));
    assert!(!paused(&c));
}
