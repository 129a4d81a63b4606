//! `backup-snap list`: the snapshots, oldest first.

use clap::Args;
use homelab_core::text::Table;
use homelab_core::{Exit, Output, Result};

use super::{Ctx, SnapshotRecord, deliver_page, short};
use crate::progress::human_bytes;
use crate::repo::Repo;
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
    deliver_page(out, &repo)?;
    Ok(if bad.is_empty() { Exit::Ok } else { Exit::DataErr })
}
