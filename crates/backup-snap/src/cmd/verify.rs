//! `backup-snap verify`: the repository's structure, and with --read-data its data.

use clap::Args;
use homelab_core::text::{Panel, Table, marked_table};
use homelab_core::{Exit, Output, Result};

use super::{Ctx, deliver_page, rounded, short, show};
use crate::progress::human_bytes;
use crate::repo::Repo;
use crate::text::{count, short_ids};
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
    let _lock = lock::acquire(&repo, false, "verify", ctx.retry_lock)?;
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
            short_ids(&d.problem),
        ]);
    }
    out.record("verify", &summary)?;
    show(out, |paint, width| {
        let mut s = String::new();
        if !t.is_empty() {
            s.push_str(&marked_table(&t, &vec![true; t.len()], &[], paint, width));
            s.push('\n');
        }
        let mut p = Panel::new();
        p.line(
            "Checked",
            format!(
                "{}, {}, {}",
                count(summary.snapshots, "snapshot", "snapshots"),
                count(summary.packs, "pack", "packs"),
                count(summary.chunks, "chunk", "chunks")
            ),
        );
        let read = format!(
            "{} from {}",
            human_bytes(summary.bytes_read),
            count(summary.packs_read, "pack", "packs")
        );
        p.line(
            "Data read",
            match summary.read_data.as_str() {
                "none" => "none (the structure only; --read-data reads it all)".to_string(),
                "all" => format!("all: {read}"),
                part => {
                    let (n, of) = part.split_once('/').unwrap_or((part, "?"));
                    format!("part {n} of {of}: {read}")
                }
            },
        );
        p.line(
            "Result",
            if summary.ok {
                paint.good("no damage")
            } else {
                paint.bad(&format!(
                    "damaged: {}, {}, {}; {} in {} affected !",
                    count(summary.damaged_packs, "pack", "packs"),
                    count(summary.damaged_chunks, "chunk", "chunks"),
                    count(summary.damaged_snapshots, "snapshot", "snapshots"),
                    count(summary.affected_files, "file", "files"),
                    count(summary.affected_snapshots, "snapshot", "snapshots"),
                ))
            },
        );
        p.line("Took", crate::text::took(summary.duration_seconds));
        s.push_str(&p.render());
        s
    })?;
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
