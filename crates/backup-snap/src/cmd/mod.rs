//! One module per command: its clap arguments, its records and its `run`. The
//! work itself is in the crate's modules (create, restore, verify, prune, ...); a
//! command opens the repository, takes its lock, calls them and prints the result.

pub mod copy;
pub mod create;
pub mod drill;
pub mod forget;
pub mod init;
pub mod list;
pub mod prune;
pub mod restore;
pub mod verify;

use std::path::{Path, PathBuf};

use homelab_core::text::{Paint, screen_width};
use homelab_core::{Error, Exit, Format, Output, Result, Root};
use serde::Serialize;

use crate::repo::Repo;
use crate::{Cli, Command, TOOL, crypto, metrics, snapshot};

/// What every command gets from the global flags.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub repo_dir: PathBuf,
    pub key: Option<&'a Path>,
    pub docker: &'a homelab_core::docker::DockerArgs,
    /// `--retry-lock`: how long a command waits for a conflicting lock.
    pub retry_lock: std::time::Duration,
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

fn repo_path(cli: &Cli) -> Result<&Path> {
    cli.repo
        .as_deref()
        .ok_or_else(|| Error::usage("no repository given").hint("give --repo PATH or set BACKUP_SNAP_REPO"))
}

pub(crate) fn short(id: &str) -> &str {
    &id[..8.min(id.len())]
}

pub(crate) fn rounded(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}

/// With `--format text` (and not `--quiet`), the view `view` makes for this
/// terminal: colour or not, its width.
pub(crate) fn show(out: &mut Output, view: impl FnOnce(Paint, Option<usize>) -> String) -> Result<()> {
    if out.format() != Format::Text {
        return Ok(());
    }
    out.raw(&view(Paint::for_stdout(), screen_width()))
}

/// Writes the metrics page (textfile and/or stdout in prom format).
pub(crate) fn deliver_page(out: &mut Output, repo: &Repo) -> Result<()> {
    if !out.wants_page() {
        return Ok(());
    }
    let (listed, _) = snapshot::list(repo)?;
    out.page(&metrics::page(repo, &listed, rounded(homelab_core::unix_now())))
}

pub fn run(cli: Cli) -> Result<Exit> {
    let mut out = Output::stdout(TOOL, &cli.output, &Root::default());
    let ctx = Ctx {
        repo_dir: repo_path(&cli)?.to_path_buf(),
        key: cli.key_file.as_deref(),
        docker: &cli.docker,
        retry_lock: cli.retry_lock,
    };
    match &cli.command {
        Command::Init(a) => init::run(&mut out, &ctx, a),
        Command::Create(a) => create::run(&mut out, &ctx, a),
        Command::List(a) => list::run(&mut out, &ctx, a),
        Command::Restore(a) => restore::run(&mut out, &ctx, a),
        Command::Verify(a) => verify::run(&mut out, &ctx, a),
        Command::Forget(a) => forget::run(&mut out, &ctx, a),
        Command::Prune(a) => prune::run(&mut out, &ctx, a),
        Command::Copy(a) => copy::run(&mut out, &ctx, a),
        Command::Drill(a) => drill::run(&mut out, &ctx, a),
    }
}
