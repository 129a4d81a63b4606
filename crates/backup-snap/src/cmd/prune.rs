//! `backup-snap prune`: remove the chunks no snapshot needs.

use clap::Args;
use homelab_core::text::Table;
use homelab_core::{Error, Exit, Format, Output, Result};

use super::{Ctx, deliver_page};
use crate::progress::human_bytes;
use crate::repo::Repo;
use crate::{lock, prune};

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

pub fn run(out: &mut Output, ctx: &Ctx, a: &PruneArgs) -> Result<Exit> {
    let (repo_dir, key) = (ctx.repo_dir.as_path(), ctx.key);
    if !(0.0..=100.0).contains(&a.max_unused) {
        return Err(Error::usage("--max-unused is a percentage from 0 to 100"));
    }
    let repo = Repo::open(repo_dir, key)?;
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
    deliver_page(out, &repo)?;
    Ok(Exit::Ok)
}
