//! The homelab's backups as the stack and the daily unit set them up: the default job
//! (BACKUP_SNAP_CREATE_ARGS of scripts/homelab-tools.env) holds the stack's real data
//! paths, read from the resolved compose file; and the off-site step
//! (scripts/offsite, `homelab-offsite`) copies a real repository with Debian's rclone
//! to a real `rclone serve sftp` on loopback, twice (the second time after forget and
//! prune, which the remote follows), and the copy fetched back passes
//! `backup-snap verify --read-data` and restores the files.

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use homelab_e2e::stack::*;
use homelab_e2e::{tool, workspace};
use homelab_testkit::wait_until;
use serde_yaml_ng::Value as Yaml;

/// A variable of homelab-tools.env (systemd's EnvironmentFile syntax, quoted values).
fn setting(name: &str) -> String {
    read(&workspace().join("scripts/homelab-tools.env"))
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} is not in scripts/homelab-tools.env"))
        .trim_matches('"')
        .to_string()
}

/// The host path bind-mounted at `target` in a service of the resolved file.
fn bind_source(c: &Yaml, service: &str, target: &str) -> Option<String> {
    c["services"][service]["volumes"]
        .as_sequence()?
        .iter()
        .filter_map(text)
        .find_map(|v| {
            let mut p = v.splitn(3, ':');
            let (src, dst) = (p.next()?, p.next()?);
            (dst == target).then(|| src.to_string())
        })
}

#[test]
fn the_default_backup_job_holds_the_stack_s_data_and_not_what_rebuilds_itself() {
    let _machine = homelab_testkit::shared();
    let d = tempfile::tempdir().unwrap();
    let empty = d.path().join("empty.env");
    std::fs::write(&empty, "").unwrap();
    let c = compose_config(&empty);
    let args: Vec<String> = setting("BACKUP_SNAP_CREATE_ARGS")
        .split_whitespace()
        .map(String::from)
        .collect();
    let sqlite: BTreeSet<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--sqlite")
        .map(|w| w[1].as_str())
        .collect();
    let paths: BTreeSet<&str> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| a.starts_with('/') && (*i == 0 || !args[i - 1].starts_with("--")))
        .map(|(_, a)| a.as_str())
        .collect();
    let covered = |p: &str| paths.iter().any(|d| p == *d || p.starts_with(&format!("{d}/")));

    // n8n: its folder (config, the encryption key) and its database by the backup API.
    let n8n = bind_source(&c, "n8n", "/home/node/.n8n").expect("n8n's data folder is a host path");
    assert!(paths.contains(n8n.as_str()), "{n8n} not in {args:?}");
    assert_eq!(env(&c["services"]["n8n"], "DB_TYPE").as_deref(), Some("sqlite"));
    assert!(
        sqlite.contains(format!("{n8n}/database.sqlite").as_str()),
        "{args:?}"
    );
    // Grafana: grafana.db in its data folder, by the backup API.
    let grafana =
        bind_source(&c, "grafana", "/var/lib/grafana").expect("Grafana's data folder is a host path");
    assert!(covered(&grafana), "{grafana} not in {args:?}");
    assert!(
        sqlite.contains(format!("{grafana}/grafana.db").as_str()),
        "{args:?}"
    );
    // Alertmanager's silences: its --storage.path, on the host.
    let am = &c["services"]["alertmanager"];
    let storage = am["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(text)
        .find_map(|a| a.strip_prefix("--storage.path=").map(String::from))
        .expect("--storage.path");
    let silences = bind_source(&c, "alertmanager", &storage).expect("Alertmanager's storage is a host path");
    assert!(covered(&silences), "{silences} not in {args:?}");
    // The compose folder (secrets/, traefik/acme/acme.json) where the README clones it,
    // and /etc.
    let readme = read(&workspace().join("README.md"));
    let clone = readme
        .lines()
        .find(|l| l.contains("git clone") && l.contains("/srv/compose/"))
        .expect("the README clones the stack into /srv/compose");
    let folder = clone[clone.find("/srv/compose/").unwrap()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(covered(&folder), "{folder} not in {args:?}");
    assert!(
        bind_source(&c, "traefik", "/etc/traefik/acme")
            .is_some_and(|s| Path::new(&s).starts_with(stack_dir())),
        "acme.json is in the compose folder"
    );
    assert!(paths.contains("/etc"), "{args:?}");
    // Prometheus' and Loki's data rebuild themselves: named volumes, not backed up.
    for (svc, target) in [("prometheus", "/prometheus"), ("loki", "/loki")] {
        let src = c["services"][svc]["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(text)
            .find(|v| v.split(':').nth(1) == Some(target))
            .unwrap_or_else(|| panic!("{svc} keeps its data at {target}"));
        assert!(!src.starts_with('/'), "{svc}: {src} is a host path");
        assert!(!args.iter().any(|a| a.contains("/var/lib/docker")), "{args:?}");
    }
    // env.example's defaults are the same paths.
    let example = read(&stack_dir().join("env.example"));
    for (var, path) in [
        ("N8N_DATA", &n8n),
        ("GRAFANA_DATA", &grafana),
        ("ALERTMANAGER_DATA", &silences),
    ] {
        assert!(
            example.lines().any(|l| l == format!("{var}={path}")),
            "env.example: {var}={path}"
        );
    }
}

// ---- off site -------------------------------------------------------------------------

/// `rclone serve sftp` on a free loopback port, serving `root`; stopped when dropped.
struct SftpServer {
    child: Child,
    port: u16,
}

impl SftpServer {
    fn start(root: &Path, work: &Path) -> SftpServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(work.join("rclone-serve.log")).unwrap();
        let mut child = Command::new("rclone")
            .args(["serve", "sftp", "--addr", &format!("127.0.0.1:{port}")])
            .args(["--user", "hlt", "--pass", "offsite-test"])
            // Its host keys in the test's directory, not root's cache.
            .arg("--cache-dir")
            .arg(work.join("rclone-cache"))
            .arg(root)
            .env("RCLONE_CONFIG", work.join("rclone.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("rclone is needed (Debian package rclone; scripts/test installs it)");
        wait_until(Duration::from_secs(30), "rclone serve sftp to listen", || {
            assert!(
                child.try_wait().unwrap().is_none(),
                "rclone serve sftp exited: {}",
                std::fs::read_to_string(work.join("rclone-serve.log")).unwrap_or_default()
            );
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        SftpServer { child, port }
    }
}

impl Drop for SftpServer {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// The rclone remote `offsite:` for the server, in environment variables (as a
/// user's `rclone config` would write it).
fn rclone_env(cmd: &mut Command, server: &SftpServer, work: &Path) {
    let obscured = Command::new("rclone")
        .args(["obscure", "offsite-test"])
        .output()
        .unwrap();
    cmd.env("RCLONE_CONFIG", work.join("rclone.conf"))
        .env("RCLONE_CONFIG_OFFSITE_TYPE", "sftp")
        .env("RCLONE_CONFIG_OFFSITE_HOST", "127.0.0.1")
        .env("RCLONE_CONFIG_OFFSITE_PORT", server.port.to_string())
        .env("RCLONE_CONFIG_OFFSITE_USER", "hlt")
        .env(
            "RCLONE_CONFIG_OFFSITE_PASS",
            String::from_utf8_lossy(&obscured.stdout).trim(),
        );
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn backup_snap(repo: &Path, args: &[&str]) -> String {
    run_ok(
        Command::new(tool("backup-snap"))
            .arg("--repo")
            .arg(repo)
            .args(args),
    )
}

/// Relative paths of the files under `dir`/`sub` (packs/XX/..., snapshots/...).
fn files(dir: &Path, sub: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack: Vec<PathBuf> = vec![dir.join(sub)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}

fn offsite(repo: &Path, remote: &str, server: &SftpServer, work: &Path) -> std::process::Output {
    let mut cmd = Command::new(workspace().join("scripts/offsite"));
    cmd.env("BACKUP_SNAP_REPO", repo)
        .env("BACKUP_SNAP_RCLONE_REMOTE", remote);
    rclone_env(&mut cmd, server, work);
    cmd.output().unwrap()
}

#[test]
fn the_off_site_copy_follows_the_repository_and_restores_from_a_copy_fetched_back() {
    let _machine = homelab_testkit::shared();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let src = w.join("srv/n8n");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("config"), "{\"encryptionKey\": \"offsite\"}\n").unwrap();
    let big: Vec<u8> = (0..1_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(src.join("workflows.bin"), &big).unwrap();
    let repo = w.join("repo");
    backup_snap(&repo, &["init"]);
    backup_snap(&repo, &["create", "--job", "homelab", src.to_str().unwrap()]);

    let remote_root = w.join("remote");
    std::fs::create_dir_all(&remote_root).unwrap();
    let server = SftpServer::start(&remote_root, w);
    let remote_dir = remote_root.join("homelab");

    // Without a remote, the step does nothing (the unit's default).
    let out = offsite(&repo, "", &server, w);
    assert!(out.status.success());
    assert!(!remote_dir.exists(), "it copied without a remote");

    let out = offsite(&repo, "offsite:homelab", &server, w);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for sub in ["packs", "snapshots"] {
        assert_eq!(files(&remote_dir, sub), files(&repo, sub), "{sub}");
        assert!(!files(&repo, sub).is_empty());
    }
    assert!(remote_dir.join("config").is_file());
    assert!(!remote_dir.join("locks").exists() && !remote_dir.join("tmp").exists());

    // A second day: the data changes, the old snapshot is forgotten and pruned; the
    // remote follows, deletions included.
    let first = files(&repo, "snapshots");
    let old_packs = files(&repo, "packs");
    std::fs::write(
        src.join("workflows.bin"),
        big.iter().map(|b| b ^ 0x5a).collect::<Vec<u8>>(),
    )
    .unwrap();
    backup_snap(&repo, &["create", "--job", "homelab", src.to_str().unwrap()]);
    backup_snap(&repo, &["forget", "--job", "homelab", "--keep-last", "1"]);
    backup_snap(&repo, &["prune"]);
    assert_ne!(files(&repo, "packs"), old_packs, "prune removed a pack");
    let out = offsite(&repo, "offsite:homelab", &server, w);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for sub in ["packs", "snapshots"] {
        assert_eq!(files(&remote_dir, sub), files(&repo, sub), "{sub} after prune");
    }
    assert!(files(&remote_dir, "snapshots").is_disjoint(&first));

    // Fetched back, the copy is a sound repository and restores the files.
    let fetched = w.join("fetched");
    let mut fetch = Command::new("rclone");
    fetch.arg("copy").arg("offsite:homelab").arg(&fetched);
    rclone_env(&mut fetch, &server, w);
    run_ok(&mut fetch);
    backup_snap(&fetched, &["verify", "--read-data"]);
    let restored = w.join("restored");
    backup_snap(
        &fetched,
        &["restore", "latest:homelab", restored.to_str().unwrap()],
    );
    let back = restored.join(src.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(back.join("workflows.bin")).unwrap(),
        big.iter().map(|b| b ^ 0x5a).collect::<Vec<u8>>()
    );
    assert_eq!(
        std::fs::read_to_string(back.join("config")).unwrap(),
        "{\"encryptionKey\": \"offsite\"}\n"
    );
    // A damaged copy is caught by the same verify: the check above can fail.
    // Pack names are hashes, so any one may be the small pack of the config: take the
    // largest and flip a byte in its middle, inside a chunk's data.
    let pack = files(&fetched, "packs")
        .into_iter()
        .max_by_key(|p| std::fs::metadata(fetched.join(p)).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(fetched.join(&pack)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(fetched.join(&pack), bytes).unwrap();
    let out = Command::new(tool("backup-snap"))
        .arg("--repo")
        .arg(&fetched)
        .args(["verify", "--read-data"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65), "verify finds the flipped byte");
}

#[test]
fn the_off_site_step_refuses_a_missing_repository_with_what_to_do() {
    let w = tempfile::tempdir().unwrap();
    let out = Command::new(workspace().join("scripts/offsite"))
        .env("BACKUP_SNAP_REPO", w.path().join("nothing"))
        .env("BACKUP_SNAP_RCLONE_REMOTE", "offsite:homelab")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(66));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("homelab-offsite: no backup-snap repository at ") && err.contains("BACKUP_SNAP_REPO"),
        "{err}"
    );
}
