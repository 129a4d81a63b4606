//! `backup-snap restore`: a snapshot, or part of it, under a target directory.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use clap::Args;
use homelab_core::text::{Panel, problem_list};
use homelab_core::{Error, Exit, Output, Result};
use serde::Serialize;

use super::{Ctx, deliver_page, rounded, short, show};
use crate::progress::human_bytes;
use crate::repo::{self, Repo};
use crate::text::count;
use crate::{create, lock, restore, snapshot};

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

pub fn run(out: &mut Output, ctx: &Ctx, a: &RestoreArgs) -> Result<Exit> {
    let (repo_dir, key) = (ctx.repo_dir.as_path(), ctx.key);
    let start = std::time::Instant::now();
    let repo = Repo::open(repo_dir, key)?;
    let _lock = lock::acquire(&repo, false, "restore", ctx.retry_lock)?;
    let (listed, _) = snapshot::list(&repo)?;
    let snap = snapshot::resolve(&listed, &a.snapshot, a.allow_partial)?;
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
        &restore::Stored::new(&repo, snap.id),
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
    show(out, |paint, width| {
        let c = &rec.counts;
        let mut p = Panel::new();
        let only = rec
            .path
            .as_deref()
            .map(|p| format!(" (only {p})"))
            .unwrap_or_default();
        p.line(
            "Restored",
            format!("snapshot {} to {}{only}", short(&rec.snapshot), rec.target),
        );
        let mut items = vec![
            count(c.files, "file", "files"),
            count(c.dirs, "directory", "directories"),
            count(c.symlinks, "symlink", "symlinks"),
        ];
        if c.hardlinks > 0 {
            items.push(count(c.hardlinks, "hard link", "hard links"));
        }
        if c.special > 0 {
            items.push(count(c.special, "special file", "special files"));
        }
        let mut items = items.join(", ");
        if c.skipped > 0 {
            items.push_str(&format!("; {} already there left as they were", c.skipped));
        }
        p.line("Items", items);
        p.line("Size", human_bytes(c.bytes));
        p.line("Took", crate::text::took(rec.duration_seconds));
        p.render() + &problem_list(&c.errors, paint, width)
    })?;
    deliver_page(out, &repo)?;
    Ok(if rec.counts.errors.is_empty() {
        Exit::Ok
    } else {
        Exit::IoErr
    })
}
