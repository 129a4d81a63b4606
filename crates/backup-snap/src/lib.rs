//! backup-snap: deduplicated, verified snapshots with restic-style retention and
//! consistent copies of live SQLite and Postgres databases.
//!
//! One module per part: [`repo`] (config, blobs, packs, index), [`snapshot`]
//! (manifests), [`lock`], [`create`], [`restore`], [`verify`], [`policy`]
//! (retention, pure), [`prune`], [`sqlite`] and [`docker`] (database copies and
//! pausing), [`metrics`] (the `backup_*` page). The repository format is written
//! down in the man page.

pub mod create;
pub mod crypto;
pub mod docker;
pub mod lock;
pub mod metrics;
pub mod policy;
pub mod progress;
pub mod prune;
pub mod repo;
pub mod restore;
pub mod snapshot;
pub mod sqlite;
pub mod verify;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use homelab_core::args::examples_help;
use homelab_core::text::Table;
use homelab_core::{Error, Exit, Format, Output, OutputArgs, Result, Root};
use serde::Serialize;

use crate::progress::human_bytes;
use crate::repo::Repo;
use crate::snapshot::Listed;

pub const TOOL: &str = "backup-snap";

/// Examples shown by `--help` and in the man page.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "Create an encrypted repository on a USB disk (keep a copy of the key elsewhere)",
        "head -c 32 /dev/urandom > /root/backup.key && backup-snap --repo /mnt/usb/backup --key-file /root/backup.key init",
    ),
    (
        "Back up n8n's data folder with a consistent copy of its live SQLite database",
        "backup-snap --repo /mnt/usb/backup create --job n8n --sqlite /srv/n8n/.n8n/database.sqlite /srv/n8n/.n8n",
    ),
    (
        "Dump a Postgres database from its container and back up compose files, from cron",
        "backup-snap --repo /mnt/usb/backup --quiet --textfile-dir /var/lib/prometheus/node-exporter create --job stack --pg-dump postgres:n8n /srv/compose",
    ),
    (
        "The snapshots, as a table",
        "backup-snap --repo /mnt/usb/backup --format text list",
    ),
    (
        "Restore one folder of the newest n8n snapshot",
        "backup-snap --repo /mnt/usb/backup restore latest:n8n /tmp/restore --path /srv/n8n/.n8n",
    ),
    (
        "Read a seventh of the data each day, all of it every week",
        "backup-snap --repo /mnt/usb/backup verify --read-data-subset $(( $(date +%u) ))/7",
    ),
    (
        "Keep 7 daily, 4 weekly and 12 monthly snapshots, then free the space",
        "backup-snap --repo /mnt/usb/backup forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12 && backup-snap --repo /mnt/usb/backup prune",
    ),
];

/// The hand-written man page sections (OUTPUT, METRICS, REPOSITORY FORMAT, ...).
pub const MAN_SECTIONS: &str = include_str!("../man.roff");

#[derive(Debug, Parser)]
#[command(
    name = "backup-snap",
    version,
    about = "Deduplicated, verified snapshots with restic-style retention and consistent copies of live SQLite and Postgres databases",
    long_about = "Deduplicated, verified snapshots into a local repository directory (an NVMe folder, a USB disk, a NAS mount): \
content-defined chunks (FastCDC), BLAKE3 ids, zstd, pack files that are never changed once written (so rsync or rclone \
copy the repository incrementally), optional encryption with a key file, and a manifest written last so that a snapshot \
exists only when it is complete.\n\n\
Live SQLite databases are copied through SQLite's online backup API and checked; Postgres databases are dumped with \
pg_dump -Fc through the Docker API; containers can be paused for the time of a snapshot. Retention follows restic's \
rules exactly; prune is safe to kill at any moment.\n\n\
Every command prints JSON lines (kind: snapshot, damage, verify, forget, prune, restore, repository) and, with \
--textfile-dir, writes the backup_* metrics for node_exporter.",
    after_long_help = examples_help(EXAMPLES),
)]
pub struct Cli {
    /// The repository directory
    #[arg(long, value_name = "PATH", env = "BACKUP_SNAP_REPO", global = true)]
    pub repo: Option<PathBuf>,

    /// File holding the repository's secret key (at least 32 bytes, e.g. from
    /// /dev/urandom); given to init, it makes an encrypted repository
    #[arg(long, value_name = "FILE", env = "BACKUP_SNAP_KEY_FILE", global = true)]
    pub key_file: Option<PathBuf>,

    /// The Docker engine for --pg-dump and --pause (unix:///path or tcp://host:port;
    /// empty means the default)
    #[arg(
        long,
        value_name = "URL",
        env = "DOCKER_HOST",
        default_value = homelab_core::docker::DEFAULT_HOST,
        global = true,
        help_heading = "Docker"
    )]
    pub docker_host: String,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new repository (an absent or empty directory)
    Init(InitArgs),
    /// Back up paths, SQLite databases and Postgres dumps as a new snapshot
    Create(CreateArgs),
    /// List the snapshots, oldest first
    List(ListArgs),
    /// Restore a snapshot (or part of it) under a target directory
    Restore(RestoreArgs),
    /// Check the repository; with --read-data, every chunk too
    Verify(VerifyArgs),
    /// Remove snapshots by restic's retention rules (prune frees the space)
    Forget(ForgetArgs),
    /// Remove the chunks no snapshot needs (safe to interrupt at any moment)
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Target size of pack files (e.g. 16MiB; smaller packs suit slow links, larger
    /// ones huge repositories)
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_size)]
    pub pack_size: u64,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Name of the backup job (retention and metrics are per job)
    #[arg(long, value_name = "NAME", value_parser = parse_job)]
    pub job: String,

    /// The snapshot's time (RFC 3339, e.g. 2026-11-26T03:00:00+01:00; default: now)
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    pub time: Option<chrono::DateTime<chrono::FixedOffset>>,

    /// Leave out paths matching GLOB: with a `/`, matched against the whole path
    /// (`**` crosses directories), otherwise against the name (e.g. '*.tmp')
    #[arg(long, value_name = "GLOB", value_parser = parse_glob)]
    pub exclude: Vec<glob::Pattern>,

    /// A live SQLite database: stored as a consistent copy made with SQLite's
    /// online backup API and checked with PRAGMA integrity_check, in place of the
    /// file (its -wal and -shm files are left out)
    #[arg(long, value_name = "PATH")]
    pub sqlite: Vec<PathBuf>,

    /// Dump a Postgres database with pg_dump -Fc, run in the container through the
    /// Docker API; stored as /pg-dump/CONTAINER/DATABASE.dump
    #[arg(long, value_name = "CONTAINER:DATABASE")]
    pub pg_dump: Vec<create::PgDump>,

    /// The Postgres user pg_dump connects as
    #[arg(
        long,
        value_name = "USER",
        default_value = "postgres",
        env = "BACKUP_SNAP_PG_USER"
    )]
    pub pg_user: String,

    /// Pause this container while the files are read (always unpaused afterwards,
    /// also on error, SIGINT or SIGTERM)
    #[arg(long, value_name = "CONTAINER")]
    pub pause: Vec<String>,

    /// Paths to back up (one filesystem each; symlinks are stored, not followed)
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this job's snapshots
    #[arg(long, value_name = "NAME")]
    pub job: Option<String>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot id (or a unique prefix of at least 4 digits), latest, or latest:JOB
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: String,

    /// Directory to restore under (created if missing); a snapshot path /a/b
    /// becomes TARGET/a/b
    #[arg(value_name = "TARGET")]
    pub target: PathBuf,

    /// Restore only this absolute path of the snapshot (and what is below it)
    #[arg(long, value_name = "SUBPATH")]
    pub path: Option<PathBuf>,

    /// What to do with files already in the target (as restic's --overwrite):
    /// always, if-changed (not when size and mtime match), if-newer (only when the
    /// snapshot's copy is newer) or never. Without it, restore refuses to touch
    /// anything in the target and lists the conflicts (exit 73)
    #[arg(long, value_name = "WHEN", value_enum)]
    pub overwrite: Option<restore::Overwrite>,

    /// Let `latest` be a partial snapshot (one with errors)
    #[arg(long)]
    pub allow_partial: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Read every pack and re-hash every chunk
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,

    /// Read part N of T of the packs (e.g. 3/7; run 1/7 to 7/7 to cover all)
    #[arg(long, value_name = "N/T", value_parser = verify::parse_subset)]
    pub read_data_subset: Option<(u32, u32)>,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Only this job's snapshots (otherwise each job is a group of its own)
    #[arg(long, value_name = "NAME")]
    pub job: Option<String>,
    /// Keep the N newest snapshots
    #[arg(long, value_name = "N", value_parser = policy::parse_count)]
    pub keep_last: Option<i64>,
    /// Keep the newest snapshot of each of the last N hours that have one
    #[arg(long, value_name = "N", value_parser = policy::parse_count)]
    pub keep_hourly: Option<i64>,
    /// Keep the newest snapshot of each of the last N days that have one
    #[arg(long, value_name = "N", value_parser = policy::parse_count)]
    pub keep_daily: Option<i64>,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one
    #[arg(long, value_name = "N", value_parser = policy::parse_count)]
    pub keep_weekly: Option<i64>,
    /// Keep the newest snapshot of each of the last N months that have one
    #[arg(long, value_name = "N", value_parser = policy::parse_count)]
    pub keep_monthly: Option<i64>,
    /// Keep the newest snapshot of each of the last N years that have one
    #[arg(long, value_name = "N", value_parser = policy::parse_count)]
    pub keep_yearly: Option<i64>,
    /// Keep every snapshot within DURATION of the newest one, in restic's units:
    /// y years, m months (not minutes), d days, h hours (e.g. 7d, 1y6m, 2d12h); a
    /// duration beyond any calendar keeps every snapshot
    #[arg(long, value_name = "DURATION", value_parser = policy::parse_within)]
    pub keep_within: Option<policy::Within>,
    /// Count partial snapshots (with errors) like complete ones. Without it the
    /// rules count complete snapshots only; a partial one is kept while it is newer
    /// than every complete snapshot of its job, and removed after
    #[arg(long)]
    pub allow_partial: bool,
    /// Print the decisions, remove nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Leave a pack alone while at most PERCENT of it is unused (default 0: every
    /// unused chunk is removed)
    #[arg(long, value_name = "PERCENT", default_value_t = 0.0)]
    pub max_unused: f64,
    /// Print what would be removed, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a size such as 16MiB"))?;
    let mul = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        _ => return Err(format!("{s:?}: unknown unit (use KiB, MiB or GiB)")),
    };
    let v = n.checked_mul(mul).ok_or_else(|| format!("{s:?}: too large"))?;
    if !(64 << 10..=4 << 30).contains(&v) {
        return Err(format!("{s:?}: a pack size must be between 64KiB and 4GiB"));
    }
    Ok(v)
}

fn parse_job(s: &str) -> std::result::Result<String, String> {
    if !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        Ok(s.into())
    } else {
        Err(format!(
            "{s:?}: a job name is 1 to 128 letters, digits, '.', '_' or '-'"
        ))
    }
}

fn parse_time(s: &str) -> std::result::Result<chrono::DateTime<chrono::FixedOffset>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("{s:?}: {e} (expected RFC 3339, e.g. 2026-11-26T03:00:00+01:00)"))
}

fn parse_glob(s: &str) -> std::result::Result<glob::Pattern, String> {
    glob::Pattern::new(s).map_err(|e| format!("{s:?}: {e}"))
}

/// `kind: snapshot`.
#[derive(Debug, Serialize)]
pub struct SnapshotRecord<'a> {
    pub id: String,
    pub job: &'a str,
    pub time: &'a str,
    pub host: &'a str,
    pub paths: &'a [String],
    pub files: u64,
    pub bytes: u64,
    pub bytes_added: u64,
    pub chunks_new: u64,
    pub chunks_reused: u64,
    pub duration_seconds: f64,
    pub errors: &'a [String],
    pub warnings: &'a [String],
}

impl<'a> SnapshotRecord<'a> {
    fn new(id: &[u8], h: &'a snapshot::Header) -> Self {
        SnapshotRecord {
            id: crypto::hex(id),
            job: &h.job,
            time: &h.time,
            host: &h.host,
            paths: &h.paths,
            files: h.files,
            bytes: h.bytes,
            bytes_added: h.bytes_added,
            chunks_new: h.chunks_new,
            chunks_reused: h.chunks_reused,
            duration_seconds: h.duration_seconds,
            errors: &h.errors,
            warnings: &h.warnings,
        }
    }
}

/// `kind: repository`.
#[derive(Debug, Serialize)]
pub struct RepositoryRecord {
    pub repository: String,
    pub format_version: u32,
    pub encrypted: bool,
    pub chunker: String,
    pub chunk_min_bytes: u32,
    pub chunk_avg_bytes: u32,
    pub chunk_max_bytes: u32,
    pub pack_size_bytes: u64,
}

/// `kind: restore`.
#[derive(Debug, Serialize)]
pub struct RestoreRecord {
    pub snapshot: String,
    pub target: String,
    pub path: Option<String>,
    #[serde(flatten)]
    pub counts: restore::Counts,
    pub duration_seconds: f64,
}

/// `kind: forget`.
#[derive(Debug, Serialize)]
pub struct ForgetRecord {
    pub id: String,
    pub job: String,
    pub time: String,
    pub action: &'static str,
    pub reasons: Vec<String>,
    pub dry_run: bool,
}

fn repo_path(cli: &Cli) -> Result<&Path> {
    cli.repo
        .as_deref()
        .ok_or_else(|| Error::usage("no repository given").hint("give --repo PATH or set BACKUP_SNAP_REPO"))
}

fn short(id: &str) -> &str {
    &id[..8.min(id.len())]
}

fn rounded(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}

/// Writes the metrics page (textfile and/or stdout in prom format).
fn deliver_page(out: &mut Output, repo: &Repo) -> Result<()> {
    if !out.wants_page() {
        return Ok(());
    }
    let (listed, _) = snapshot::list(repo)?;
    out.page(&metrics::page(repo, &listed, rounded(homelab_core::unix_now())))
}

pub fn run(cli: Cli) -> Result<Exit> {
    let mut out = Output::stdout(TOOL, &cli.output, &Root::default());
    let repo_dir = repo_path(&cli)?.to_path_buf();
    let key = cli.key_file.as_deref();
    match &cli.command {
        Command::Init(a) => {
            let repo = Repo::init(&repo_dir, key, a.pack_size)?;
            let c = &repo.config.chunker;
            let rec = RepositoryRecord {
                repository: repo_dir.display().to_string(),
                format_version: repo.config.version,
                encrypted: repo.keys.is_some(),
                chunker: c.algorithm.clone(),
                chunk_min_bytes: c.min_size,
                chunk_avg_bytes: c.avg_size,
                chunk_max_bytes: c.max_size,
                pack_size_bytes: repo.config.pack_size,
            };
            out.record("repository", &rec)?;
            if out.format() == Format::Text {
                let mut t = Table::new(&["REPOSITORY", "ENCRYPTED", "CHUNKS", "PACKS"]);
                t.row([
                    rec.repository.clone(),
                    rec.encrypted.to_string(),
                    format!(
                        "{}/{}/{}",
                        human_bytes(c.min_size as u64),
                        human_bytes(c.avg_size as u64),
                        human_bytes(c.max_size as u64)
                    ),
                    human_bytes(rec.pack_size_bytes),
                ]);
                out.table(&t)?;
            }
            deliver_page(&mut out, &repo)?;
            Ok(Exit::Ok)
        }
        Command::Create(a) => run_create(&mut out, &repo_dir, key, a, &cli.docker_host),
        Command::List(a) => {
            let repo = Repo::open(&repo_dir, key)?;
            let (listed, bad) = snapshot::list(&repo)?;
            let mut t = Table::new(&["ID", "TIME", "JOB", "FILES", "SIZE", "ADDED", "ERRORS"]);
            for l in listed
                .iter()
                .filter(|l| a.job.as_ref().is_none_or(|j| *j == l.header.job))
            {
                let rec = SnapshotRecord::new(&l.id, &l.header);
                out.record("snapshot", &rec)?;
                t.row([
                    short(&rec.id).to_string(),
                    rec.time.to_string(),
                    rec.job.to_string(),
                    rec.files.to_string(),
                    human_bytes(rec.bytes),
                    human_bytes(rec.bytes_added),
                    rec.errors.len().to_string(),
                ]);
            }
            out.table(&t)?;
            for (id, problem) in &bad {
                eprintln!(
                    "backup-snap: snapshot {} is unreadable ({problem}): run verify",
                    crypto::hex(id)
                );
            }
            deliver_page(&mut out, &repo)?;
            Ok(if bad.is_empty() { Exit::Ok } else { Exit::DataErr })
        }
        Command::Restore(a) => {
            let start = std::time::Instant::now();
            let repo = Repo::open(&repo_dir, key)?;
            let _lock = lock::acquire(&repo, false, "restore")?;
            let (listed, _) = snapshot::list(&repo)?;
            let snap = snapshot::resolve(&listed, &a.snapshot, a.allow_partial)?;
            let (_, tree) = snapshot::read_full(&repo, &snap.id).map_err(|p| {
                Error::data(format!("snapshot {} is unreadable: {p}", snap.id_hex()))
                    .hint("run verify; restore another snapshot")
            })?;
            let index = repo::Index::load(&repo)?;
            let sub = a
                .path
                .as_ref()
                .map(|p| create::absolute(p).map(|p| p.as_os_str().as_bytes().to_vec()))
                .transpose()
                .map_err(|e| Error::io("--path", e))?;
            let counts = restore::run(
                &repo,
                &index,
                &tree,
                &a.target,
                &restore::Options {
                    snapshot: snap.id_hex(),
                    subpath: sub.as_deref(),
                    overwrite: a.overwrite,
                },
            )?;
            let rec = RestoreRecord {
                snapshot: snap.id_hex(),
                target: a.target.display().to_string(),
                path: a.path.as_ref().map(|p| p.display().to_string()),
                counts,
                duration_seconds: rounded(start.elapsed().as_secs_f64()),
            };
            out.record("restore", &rec)?;
            for e in &rec.counts.errors {
                eprintln!("backup-snap: restore: {e}");
            }
            if out.format() == Format::Text {
                let mut t = Table::new(&[
                    "SNAPSHOT", "TARGET", "FILES", "DIRS", "SYMLINKS", "BYTES", "ERRORS",
                ]);
                let c = &rec.counts;
                t.row([
                    short(&rec.snapshot).to_string(),
                    rec.target.clone(),
                    c.files.to_string(),
                    c.dirs.to_string(),
                    c.symlinks.to_string(),
                    human_bytes(c.bytes),
                    c.errors.len().to_string(),
                ]);
                out.table(&t)?;
            }
            deliver_page(&mut out, &repo)?;
            Ok(if rec.counts.errors.is_empty() {
                Exit::Ok
            } else {
                Exit::IoErr
            })
        }
        Command::Verify(a) => {
            let repo = Repo::open(&repo_dir, key)?;
            let _lock = lock::acquire(&repo, false, "verify")?;
            let read = match (a.read_data, a.read_data_subset) {
                (true, _) => verify::ReadData::All,
                (false, Some((n, t))) => verify::ReadData::Subset(n, t),
                _ => verify::ReadData::None,
            };
            let (damage, summary) = verify::run(&repo, read)?;
            let mut t = Table::new(&["OBJECT", "ID", "SNAPSHOT", "PATH", "PROBLEM"]);
            for d in &damage {
                out.record("damage", d)?;
                t.row([
                    d.object.clone(),
                    d.id.as_deref().map(short).unwrap_or("").to_string(),
                    d.snapshot.as_deref().map(short).unwrap_or("").to_string(),
                    d.path.clone().unwrap_or_default(),
                    d.problem.clone(),
                ]);
            }
            out.record("verify", &summary)?;
            if out.format() == Format::Text {
                if !t.is_empty() {
                    out.table(&t)?;
                    out.raw("\n")?;
                }
                let mut s = Table::new(&[
                    "SNAPSHOTS",
                    "PACKS",
                    "CHUNKS",
                    "READ",
                    "DAMAGED",
                    "AFFECTED FILES",
                    "OK",
                ]);
                s.row([
                    summary.snapshots.to_string(),
                    summary.packs.to_string(),
                    summary.chunks.to_string(),
                    human_bytes(summary.bytes_read),
                    (summary.damaged_packs + summary.damaged_chunks + summary.damaged_snapshots).to_string(),
                    summary.affected_files.to_string(),
                    summary.ok.to_string(),
                ]);
                out.table(&s)?;
            }
            metrics::write_verify_state(&repo, summary.errors, rounded(homelab_core::unix_now()))?;
            deliver_page(&mut out, &repo)?;
            if !summary.ok {
                eprintln!(
                    "backup-snap: verify found damage: {} damaged, {} files in {} snapshots affected",
                    summary.damaged_packs + summary.damaged_chunks + summary.damaged_snapshots,
                    summary.affected_files,
                    summary.affected_snapshots
                );
            }
            Ok(if summary.ok { Exit::Ok } else { Exit::DataErr })
        }
        Command::Forget(a) => run_forget(&mut out, &repo_dir, key, a),
        Command::Prune(a) => {
            if !(0.0..=100.0).contains(&a.max_unused) {
                return Err(Error::usage("--max-unused is a percentage from 0 to 100"));
            }
            let repo = Repo::open(&repo_dir, key)?;
            let _lock = lock::acquire(&repo, true, "prune")?;
            let s = prune::run(&repo, a.max_unused, a.dry_run)?;
            out.record("prune", &s)?;
            if out.format() == Format::Text {
                let mut t = Table::new(&[
                    "PACKS",
                    "DELETED",
                    "REWRITTEN",
                    "WRITTEN",
                    "CHUNKS REMOVED",
                    "BEFORE",
                    "AFTER",
                ]);
                t.row([
                    s.packs_before.to_string(),
                    s.packs_deleted.to_string(),
                    s.packs_rewritten.to_string(),
                    s.packs_written.to_string(),
                    s.chunks_removed.to_string(),
                    human_bytes(s.bytes_before),
                    human_bytes(s.bytes_after),
                ]);
                out.table(&t)?;
            }
            deliver_page(&mut out, &repo)?;
            Ok(Exit::Ok)
        }
    }
}

fn run_create(
    out: &mut Output,
    repo_dir: &Path,
    key: Option<&Path>,
    a: &CreateArgs,
    docker_host: &str,
) -> Result<Exit> {
    if a.paths.is_empty() && a.sqlite.is_empty() && a.pg_dump.is_empty() {
        return Err(Error::usage("create needs something to back up")
            .hint("give PATH..., --sqlite PATH or --pg-dump CONTAINER:DATABASE"));
    }
    let repo = Repo::open(repo_dir, key)?;
    let shutdown = homelab_core::run::Shutdown::install()?;
    let lock = lock::acquire(&repo, true, "create")?;
    let opts = create::Options {
        job: a.job.clone(),
        time: a.time.unwrap_or_else(|| chrono::Local::now().fixed_offset()),
        excludes: a.exclude.clone(),
        paths: a.paths.clone(),
        sqlite: a.sqlite.clone(),
        pg_dumps: a.pg_dump.clone(),
        pg_user: a.pg_user.clone(),
        pause: a.pause.clone(),
        docker_host: docker_host.to_string(),
        tmp_dir: std::env::var_os("TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp")),
    };
    let flag = shutdown.flag();
    let result = create::run(&repo, &opts, &flag);
    drop(lock);
    let created = match result {
        Ok(c) => c,
        Err(e) => {
            // Cron and Grafana still see that a run happened and failed.
            let _ = deliver_page(out, &repo);
            return Err(e);
        }
    };
    let rec = SnapshotRecord::new(&created.id, &created.header);
    out.record("snapshot", &rec)?;
    if out.format() == Format::Text {
        let mut t = Table::new(&[
            "ID",
            "JOB",
            "FILES",
            "SIZE",
            "ADDED",
            "NEW CHUNKS",
            "SECONDS",
            "ERRORS",
        ]);
        t.row([
            short(&rec.id).to_string(),
            rec.job.to_string(),
            rec.files.to_string(),
            human_bytes(rec.bytes),
            human_bytes(rec.bytes_added),
            rec.chunks_new.to_string(),
            rec.duration_seconds.to_string(),
            rec.errors.len().to_string(),
        ]);
        out.table(&t)?;
    }
    for e in rec.errors {
        eprintln!("backup-snap: create: {e}");
    }
    deliver_page(out, &repo)?;
    Ok(if !created.header.errors.is_empty() {
        Exit::IoErr
    } else if created.changed > 0 {
        // Complete, but a file may be inconsistent: running again later may do.
        Exit::TempFail
    } else {
        Exit::Ok
    })
}

fn run_forget(out: &mut Output, repo_dir: &Path, key: Option<&Path>, a: &ForgetArgs) -> Result<Exit> {
    let policy = policy::Policy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        within: a.keep_within,
    };
    if policy.is_empty() {
        return Err(Error::usage("no --keep-* rule given: forget removes nothing without a policy")
            .hint("give at least one of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-within"));
    }
    let repo = Repo::open(repo_dir, key)?;
    let _lock = lock::acquire(&repo, true, "forget")?;
    let (listed, bad) = snapshot::list(&repo)?;
    if let Some((id, p)) = bad.first() {
        return Err(Error::data(format!(
            "snapshot {} is unreadable ({p}): forget changed nothing",
            crypto::hex(id)
        ))
        .hint("run verify"));
    }
    let now = chrono::Local::now().fixed_offset();
    let mut groups: std::collections::BTreeMap<&str, Vec<&Listed>> = Default::default();
    for l in &listed {
        if a.job.as_ref().is_none_or(|j| *j == l.header.job) {
            groups.entry(&l.header.job).or_default().push(l);
        }
    }
    let mut t = Table::new(&["ID", "TIME", "JOB", "ACTION", "REASONS"]);
    let mut removed = 0;
    for (job, snaps) in groups {
        let mut usable = Vec::new();
        let mut times = Vec::new();
        for s in snaps {
            match s.time() {
                Some(tm) => {
                    usable.push(s);
                    times.push(tm);
                }
                None => eprintln!(
                    "backup-snap: snapshot {} has an unreadable time: kept",
                    s.id_hex()
                ),
            }
        }
        for (i, keep, reasons) in decide(&usable, &times, &policy, now, a.allow_partial, job) {
            let s = usable[i];
            let rec = ForgetRecord {
                id: s.id_hex(),
                job: job.to_string(),
                time: s.header.time.clone(),
                action: if keep { "keep" } else { "remove" },
                reasons,
                dry_run: a.dry_run,
            };
            if !keep && !a.dry_run {
                let p = snapshot::snapshot_path(&repo, &s.id);
                std::fs::remove_file(&p).map_err(|e| Error::io(format!("removing {}", p.display()), e))?;
                removed += 1;
            }
            out.record("forget", &rec)?;
            t.row([
                short(&rec.id).to_string(),
                rec.time.clone(),
                rec.job.clone(),
                rec.action.to_string(),
                rec.reasons.join(", "),
            ]);
        }
    }
    if removed > 0 {
        repo::fsync_dir(&repo.path.join("snapshots"));
    }
    out.table(&t)?;
    deliver_page(out, &repo)?;
    Ok(Exit::Ok)
}

/// The reason forget gives for a partial snapshot it keeps without --allow-partial.
pub const PARTIAL_KEPT: &str = "partial, newer than every complete snapshot";

/// forget's decisions for one job, newest first: (index into `snaps`, keep, reasons).
/// Without `allow_partial` the rules see only complete snapshots, so a partial one
/// (with errors) never uses up a count; it is kept while it is newer than every
/// complete snapshot (it may hold the only copy of recent changes) and removed once
/// a newer complete one exists (the policy always keeps the newest complete one).
fn decide(
    snaps: &[&Listed],
    times: &[chrono::DateTime<chrono::FixedOffset>],
    policy: &policy::Policy,
    now: chrono::DateTime<chrono::FixedOffset>,
    allow_partial: bool,
    job: &str,
) -> Vec<(usize, bool, Vec<String>)> {
    if allow_partial {
        return policy::apply(times, policy, now)
            .into_iter()
            .map(|d| (d.index, d.keep, d.reasons))
            .collect();
    }
    let complete: Vec<usize> = (0..snaps.len())
        .filter(|i| !snaps[*i].header.is_partial())
        .collect();
    let complete_times: Vec<_> = complete.iter().map(|i| times[*i]).collect();
    let mut out: Vec<(usize, bool, Vec<String>)> = policy::apply(&complete_times, policy, now)
        .into_iter()
        .map(|d| (complete[d.index], d.keep, d.reasons))
        .collect();
    let newest_complete = complete_times.iter().max().copied();
    let partial: Vec<usize> = (0..snaps.len())
        .filter(|i| snaps[*i].header.is_partial())
        .collect();
    if newest_complete.is_none() && !partial.is_empty() {
        eprintln!(
            "backup-snap: forget: job {job} has only partial snapshots (with errors): all kept; give --allow-partial to apply the rules to them"
        );
    }
    for i in partial {
        let keep = newest_complete.is_none_or(|n| times[i] > n);
        let reasons = if keep {
            vec![PARTIAL_KEPT.to_string()]
        } else {
            Vec::new()
        };
        out.push((i, keep, reasons));
    }
    // Newest first, equal times in input order, as policy::apply orders them.
    out.sort_by(|a, b| times[b.0].cmp(&times[a.0]).then(a.0.cmp(&b.0)));
    out
}
