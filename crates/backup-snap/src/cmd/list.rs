//! `backup-snap list`: the snapshots, oldest first.

use clap::Args;
use homelab_core::text::{Mark, Table, levelled_table, problem_list};
use homelab_core::{Exit, Output, Result};

use super::{Ctx, SnapshotRecord, deliver_page, short, show};
use crate::progress::human_bytes;
use crate::repo::Repo;
use crate::text::{snapshot_state, when};
use crate::{crypto, snapshot};

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this job's snapshots
    #[arg(long, value_name = "NAME")]
    pub job: Option<String>,
}

pub fn run(out: &mut Output, ctx: &Ctx, a: &ListArgs) -> Result<Exit> {
    let (repo_dir, key) = (ctx.repo_dir.as_path(), ctx.key);
    let repo = Repo::open(repo_dir, key)?;
    let (listed, bad) = snapshot::list(&repo)?;
    let now = homelab_core::unix_now();
    let mut t = Table::new(&["ID", "TIME", "JOB", "FILES", "SIZE", "ADDED", "STATE"]);
    let mut marks = Vec::new();
    let mut problems = Vec::new();
    for l in listed
        .iter()
        .filter(|l| a.job.as_ref().is_none_or(|j| *j == l.header.job))
    {
        let rec = SnapshotRecord::new(&l.id, &l.header);
        out.record("snapshot", &rec)?;
        let (state, partial) = snapshot_state(rec.errors.len());
        t.row([
            short(&rec.id).to_string(),
            when(rec.time, now),
            rec.job.to_string(),
            rec.files.to_string(),
            human_bytes(rec.bytes),
            human_bytes(rec.bytes_added),
            state,
        ]);
        marks.push(if partial { Mark::Warn } else { Mark::None });
        if let Some(first) = rec.errors.first() {
            let more = match rec.errors.len() - 1 {
                0 => String::new(),
                n => format!(" (and {n} more)"),
            };
            problems.push(format!(
                "snapshot {} of job {} is partial: {first}{more}",
                short(&rec.id),
                rec.job
            ));
        }
    }
    for (id, problem) in &bad {
        eprintln!(
            "backup-snap: snapshot {} is unreadable ({problem}): run verify",
            crypto::hex(id)
        );
        problems.push(format!(
            "snapshot {} is unreadable ({problem}): run verify",
            short(&crypto::hex(id))
        ));
    }
    show(out, |paint, width| {
        let mut s = if t.is_empty() {
            "No snapshots.\n".to_string()
        } else {
            levelled_table(&t, &marks, paint, width)
        };
        s.push_str(&problem_list(&problems, paint, width));
        s
    })?;
    deliver_page(out, &repo)?;
    Ok(if bad.is_empty() { Exit::Ok } else { Exit::DataErr })
}
