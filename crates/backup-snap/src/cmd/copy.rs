//! `backup-snap copy --to REPO`: snapshots into a second repository, incrementally.

use std::path::PathBuf;

use clap::Args;
use homelab_core::text::{Panel, Table, levelled_table, problem_list};
use homelab_core::{Error, Exit, Output, Result};

use super::{Ctx, deliver_page, rounded, short, show};
use crate::copy::{self, TargetState};
use crate::progress::human_bytes;
use crate::repo::Repo;
use crate::text::{count, when};
use crate::{crypto, lock};

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The target repository (made beforehand with init, encrypted or not)
    #[arg(long, value_name = "PATH", env = "BACKUP_SNAP_COPY_TO")]
    pub to: PathBuf,

    /// The target repository's key file, when it is encrypted (its own key: chunks
    /// are re-encrypted for it)
    #[arg(long, value_name = "FILE", env = "BACKUP_SNAP_TO_KEY_FILE")]
    pub to_key_file: Option<PathBuf>,

    /// Only this job's snapshots
    #[arg(long, value_name = "NAME")]
    pub job: Option<String>,

    /// Only this snapshot (id, unique prefix, latest or latest:JOB); repeatable.
    /// Without it, every snapshot the target lacks
    #[arg(long, value_name = "ID")]
    pub snapshot: Vec<String>,
}

pub fn run(out: &mut Output, ctx: &Ctx, a: &CopyArgs) -> Result<Exit> {
    let src = Repo::open(&ctx.repo_dir, ctx.key)?;
    let same = match (std::fs::canonicalize(&ctx.repo_dir), std::fs::canonicalize(&a.to)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    };
    if same {
        return Err(
            Error::usage(format!("--to {} is the repository itself", a.to.display()))
                .hint("give another repository to --to"),
        );
    }
    let dst = Repo::open(&a.to, a.to_key_file.as_deref()).map_err(|e| match e.code() {
        Exit::Config => {
            let what = format!("target: {}", e.what());
            Error::config(what).hint(
                "give the target's own key with --to-key-file (or BACKUP_SNAP_TO_KEY_FILE), or none when it is not encrypted",
            )
        }
        Exit::NoInput => Error::new(Exit::NoInput, format!("target: {}", e.what())).hint(
            "create the target first: backup-snap --repo TARGET [--key-file KEY] init",
        ),
        _ => e,
    })?;
    let shutdown = homelab_core::run::Shutdown::install()?;
    let _src_lock = lock::acquire(&src, false, "copy", ctx.retry_lock)?;
    let _dst_lock = lock::acquire(&dst, true, "copy", ctx.retry_lock)?;
    let opts = copy::Options {
        job: a.job.clone(),
        snapshots: a.snapshot.clone(),
    };
    let mut rows = Table::new(&["SNAPSHOT", "JOB", "TIME", "TARGET ID", "CHUNKS", "SIZE"]);
    let started = homelab_core::unix_now();
    let flag = shutdown.flag();
    let (mut summary, held) = copy::run(&src, &dst, &opts, &flag, &mut |c| {
        rows.row([
            short(&c.id).to_string(),
            c.job.clone(),
            when(&c.time, started),
            short(&c.target_id).to_string(),
            c.chunks_copied.to_string(),
            human_bytes(c.bytes_copied),
        ]);
        out.record("copied", c)
    })?;
    summary.duration_seconds = rounded(summary.duration_seconds);
    let now = rounded(homelab_core::unix_now());
    let mut state = copy::read_state(&src);
    let key = dst.path.display().to_string();
    let prev = state.get(&key).and_then(|s| s.last_success);
    state.insert(
        key,
        TargetState {
            last_run: now,
            last_success: if summary.errors.is_empty() {
                Some(now)
            } else {
                prev
            },
            bytes_copied: summary.bytes_copied,
            job: a.job.clone(),
            held: held.iter().map(|h| crypto::hex(h)).collect(),
        },
    );
    copy::write_state(&src, &state)?;
    out.record("copy", &summary)?;
    show(out, |paint, width| {
        let mut s = String::new();
        if !rows.is_empty() {
            s.push_str(&levelled_table(&rows, &[], paint, width));
            s.push('\n');
        }
        let mut p = Panel::new();
        p.line("Target", summary.target.clone());
        let behind = if summary.snapshots_behind > 0 {
            paint.warn(&format!(
                "{} still to copy !",
                count(summary.snapshots_behind, "snapshot", "snapshots")
            ))
        } else {
            "none left to copy".to_string()
        };
        p.line(
            "Snapshots",
            format!(
                "{} copied, {} already there; {behind}",
                summary.snapshots_copied, summary.snapshots_present
            ),
        );
        p.line(
            "Data",
            format!(
                "{} copied in {} ({} already there)",
                human_bytes(summary.bytes_copied),
                count(summary.chunks_copied, "chunk", "chunks"),
                summary.chunks_present
            ),
        );
        p.line("Took", crate::text::took(summary.duration_seconds));
        s.push_str(&p.render());
        s.push_str(&problem_list(&summary.errors, paint, width));
        s
    })?;
    for e in &summary.errors {
        eprintln!("backup-snap: copy: {e}");
    }
    deliver_page(out, &src)?;
    Ok(if summary.errors.is_empty() {
        Exit::Ok
    } else {
        Exit::DataErr
    })
}
