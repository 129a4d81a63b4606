//! `backup-snap verify`: the repository's structure, and with --read-data its data.

use clap::Args;
use homelab_core::text::Table;
use homelab_core::{Exit, Format, Output, Result};

use super::{Ctx, deliver_page, rounded, short};
use crate::progress::human_bytes;
use crate::repo::Repo;
use crate::{lock, metrics, verify};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Read every pack and re-hash every chunk
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,

    /// Read part N of T of the packs (e.g. 3/7; run 1/7 to 7/7 to cover all)
    #[arg(long, value_name = "N/T", value_parser = verify::parse_subset)]
    pub read_data_subset: Option<(u32, u32)>,
}

pub fn run(out: &mut Output, ctx: &Ctx, a: &VerifyArgs) -> Result<Exit> {
    let (repo_dir, key) = (ctx.repo_dir.as_path(), ctx.key);
    let repo = Repo::open(repo_dir, key)?;
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
    deliver_page(out, &repo)?;
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
