//! backup-snap: deduplicated, verified snapshots with restic-style retention and
//! consistent copies of live SQLite and Postgres databases.
//!
//! [`cmd`] holds one module per command (its arguments, records and `run`); the
//! work is done by one module per part: [`repo`] (config and blobs, with
//! [`repo::pack`] and [`repo::index`]), [`snapshot`] (manifests), [`lock`],
//! [`create`], [`restore`], [`verify`], [`policy`] (retention, pure), [`prune`],
//! [`sqlite`] and [`docker`] (database copies and pausing), [`metrics`] (the
//! `backup_*` page). The repository format is written down in the man page.

pub mod cmd;
pub mod copy;
pub mod create;
pub mod crypto;
pub mod docker;
pub mod drill;
pub mod lock;
pub mod metrics;
pub mod policy;
pub mod progress;
pub mod prune;
pub mod repo;
pub mod restore;
pub mod snapshot;
pub mod sqlite;
pub mod text;
pub mod verify;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use homelab_core::args::examples_help;
use homelab_core::{Exit, OutputArgs, Result};

pub use cmd::SnapshotRecord;
pub use cmd::copy::CopyArgs;
pub use cmd::create::CreateArgs;
pub use cmd::drill::DrillArgs;
pub use cmd::forget::{ForgetArgs, ForgetRecord, PARTIAL_KEPT};
pub use cmd::init::{InitArgs, RepositoryRecord};
pub use cmd::list::ListArgs;
pub use cmd::prune::PruneArgs;
pub use cmd::restore::{RestoreArgs, RestoreRecord};
pub use cmd::verify::VerifyArgs;

pub const TOOL: &str = "backup-snap";

/// Examples shown by `--help` and in the man page.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "Create an encrypted repository on a USB disk (keep a copy of the key elsewhere)",
        "head -c 32 /dev/urandom > /root/backup.key && backup-snap --repo /mnt/usb/backup --key-file /root/backup.key init",
    ),
    (
        "Back up n8n's data folder with a consistent copy of its live SQLite database",
        "backup-snap --repo /mnt/usb/backup create --job n8n --sqlite /srv/n8n/database.sqlite /srv/n8n",
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
        "backup-snap --repo /mnt/usb/backup restore latest:n8n /tmp/restore --path /srv/n8n",
    ),
    (
        "Read a seventh of the data each day, all of it every week",
        "backup-snap --repo /mnt/usb/backup verify --read-data-subset $(( $(date +%u) ))/7",
    ),
    (
        "Copy every new snapshot to a second, encrypted repository on a NAS",
        "backup-snap --repo /srv/backup/homelab --key-file /root/backup.key copy --to /mnt/nas/backup --to-key-file /root/nas-backup.key",
    ),
    (
        "Restore the newest snapshot of each job to a temporary directory and check it",
        "backup-snap --repo /srv/backup/homelab drill",
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

    /// When the repository is locked by another backup-snap, wait up to DURATION
    /// for it (trying again every few seconds) instead of exiting 75 at once, as
    /// restic's --retry-lock; at most 10y
    #[arg(
        long,
        value_name = "DURATION",
        env = "BACKUP_SNAP_RETRY_LOCK",
        default_value = "0",
        value_parser = homelab_core::args::parse_duration,
        global = true
    )]
    pub retry_lock: std::time::Duration,

    /// The Docker engine for --pg-dump and --pause: the same --docker-host and
    /// --docker-timeout as every tool that talks to Docker
    #[command(flatten)]
    pub docker: homelab_core::docker::DockerArgs,

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
    /// Copy snapshots into a second repository, only what it lacks (safe to
    /// interrupt at any moment)
    Copy(CopyArgs),
    /// Restore the newest snapshot of each job into a temporary directory and check
    /// every file, SQLite database and Postgres dump in it
    Drill(DrillArgs),
}

pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Runs the command line: one module per command under [`cmd`].
pub fn run(cli: Cli) -> Result<Exit> {
    cmd::run(cli)
}
