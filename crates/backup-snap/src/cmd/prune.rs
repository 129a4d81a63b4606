//! `backup-snap prune`: remove the chunks no snapshot needs.

use clap::Args;
use homelab_core::text::Panel;
use homelab_core::{Error, Exit, Output, Result};

use super::{Ctx, deliver_page, show};
use crate::progress::human_bytes;
use crate::repo::Repo;
use crate::text::count;
use crate::{lock, prune};

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Leave a pack alone while at most PERCENT of it is unused (as restic's
    /// default, 5: packs that are mostly used are not rewritten for a few unused
    /// chunks; 0 removes every unused chunk)
    #[arg(long, value_name = "PERCENT", default_value_t = 5.0)]
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
    let _lock = lock::acquire(&repo, true, "prune", ctx.retry_lock)?;
    let s = prune::run(&repo, a.max_unused, a.dry_run)?;
    out.record("prune", &s)?;
    show(out, |_, _| {
        let (deleted, rewritten, written, removed, freed) = if s.dry_run {
            (
                "to delete",
                "to rewrite",
                "to write",
                "to remove",
                "would be freed",
            )
        } else {
            ("deleted", "rewritten", "written", "removed", "freed")
        };
        let mut p = Panel::new();
        if s.dry_run {
            p.line("Dry run", "nothing was changed; this is what prune would do");
        }
        p.line(
            "Packs",
            format!(
                "{} before: {} {deleted}, {} {rewritten}, {} {written}",
                s.packs_before, s.packs_deleted, s.packs_rewritten, s.packs_written
            ),
        );
        p.line("Chunks", format!("{} {removed}", s.chunks_removed));
        p.line(
            "Size",
            format!(
                "{} before, {} after: {} {freed}",
                human_bytes(s.bytes_before),
                human_bytes(s.bytes_after),
                human_bytes(s.bytes_freed)
            ),
        );
        if s.tmp_files_removed > 0 {
            p.line(
                "Leftovers",
                format!(
                    "{} of interrupted runs {removed}",
                    count(s.tmp_files_removed, "file", "files")
                ),
            );
        }
        p.line("Took", crate::text::took(s.duration_seconds));
        p.render()
    })?;
    deliver_page(out, &repo)?;
    Ok(Exit::Ok)
}
