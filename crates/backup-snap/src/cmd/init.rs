//! `backup-snap init`: a new repository.

use clap::Args;
use homelab_core::text::Panel;
use homelab_core::{Exit, Output, Result};
use serde::Serialize;

use super::{Ctx, deliver_page, show};
use crate::progress::human_bytes;
use crate::repo::Repo;
use crate::text::chunk_sizes;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Target size of pack files (e.g. 16MiB; smaller packs suit slow links, larger
    /// ones huge repositories)
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_size)]
    pub pack_size: u64,
}

/// `kind: repository`.
#[derive(Debug, Serialize)]
pub struct RepositoryRecord {
    pub repository: String,
    pub format_version: u32,
    pub encrypted: bool,
    pub chunker: String,
    pub chunk_min_bytes: u32,
    pub chunk_avg_bytes: u32,
    pub chunk_max_bytes: u32,
    pub pack_size_bytes: u64,
}

pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a size such as 16MiB"))?;
    let mul = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        _ => return Err(format!("{s:?}: unknown unit (use KiB, MiB or GiB)")),
    };
    let v = n.checked_mul(mul).ok_or_else(|| format!("{s:?}: too large"))?;
    if !(64 << 10..=4 << 30).contains(&v) {
        return Err(format!("{s:?}: a pack size must be between 64KiB and 4GiB"));
    }
    Ok(v)
}

pub fn run(out: &mut Output, ctx: &Ctx, a: &InitArgs) -> Result<Exit> {
    let (repo_dir, key) = (ctx.repo_dir.as_path(), ctx.key);
    let repo = Repo::init(repo_dir, key, a.pack_size)?;
    if repo.keys.is_none() {
        eprintln!(
            "backup-snap: warning: {} is not encrypted: anyone who can read the disk can read the backups; for an encrypted repository, init with --key-file",
            repo_dir.display()
        );
    }
    let c = &repo.config.chunker;
    let rec = RepositoryRecord {
        repository: repo_dir.display().to_string(),
        format_version: repo.config.version,
        encrypted: repo.keys.is_some(),
        chunker: c.algorithm.clone(),
        chunk_min_bytes: c.min_size,
        chunk_avg_bytes: c.avg_size,
        chunk_max_bytes: c.max_size,
        pack_size_bytes: repo.config.pack_size,
    };
    out.record("repository", &rec)?;
    show(out, |paint, _| {
        let mut p = Panel::new();
        p.line("Repository", rec.repository.clone());
        p.line(
            "Encrypted",
            if rec.encrypted {
                "yes".to_string()
            } else {
                paint.warn("no ! (anyone who can read the disk can read the backups)")
            },
        );
        p.line(
            "Chunks",
            format!(
                "{} ({})",
                chunk_sizes(c.min_size.into(), c.avg_size.into(), c.max_size.into()),
                rec.chunker
            ),
        );
        p.line("Packs", format!("{} each", human_bytes(rec.pack_size_bytes)));
        p.line("Format", format!("version {}", rec.format_version));
        p.render()
    })?;
    deliver_page(out, &repo)?;
    Ok(Exit::Ok)
}
