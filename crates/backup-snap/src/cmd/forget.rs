//! `backup-snap forget`: remove snapshots by restic's retention rules.

use clap::Args;
use homelab_core::text::{Table, levelled_table};
use homelab_core::{Error, Exit, Output, Result};
use serde::Serialize;

use super::{Ctx, deliver_page, short, show};
use crate::repo::{self, Repo};
use crate::snapshot::{self, Listed};
use crate::text::when;
use crate::{crypto, lock, policy};

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Only this job's snapshots (otherwise each job is a group of its own)
    #[arg(long, value_name = "NAME")]
    pub job: Option<String>,
    /// Keep the N newest snapshots
    #[arg(long, value_name = "N", value_parser = policy::parse_count)]
    pub keep_last: Option<i64>,
    /// Keep the newest snapshot of each of the last N hours that have one
    #[arg(long, value_name = "N", value_parser = policy::parse_count)]
    pub keep_hourly: Option<i64>,
    /// Keep the newest snapshot of each of the last N days that have one
    #[arg(long, value_name = "N", value_parser = policy::parse_count)]
    pub keep_daily: Option<i64>,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one
    #[arg(long, value_name = "N", value_parser = policy::parse_count)]
    pub keep_weekly: Option<i64>,
    /// Keep the newest snapshot of each of the last N months that have one
    #[arg(long, value_name = "N", value_parser = policy::parse_count)]
    pub keep_monthly: Option<i64>,
    /// Keep the newest snapshot of each of the last N years that have one
    #[arg(long, value_name = "N", value_parser = policy::parse_count)]
    pub keep_yearly: Option<i64>,
    /// Keep every snapshot within DURATION of the newest one, in restic's units:
    /// y years, m months (not minutes), d days, h hours (e.g. 7d, 1y6m, 2d12h); a
    /// duration beyond any calendar keeps every snapshot
    #[arg(long, value_name = "DURATION", value_parser = policy::parse_within)]
    pub keep_within: Option<policy::Within>,
    /// Count partial snapshots (with errors) like complete ones. Without it the
    /// rules count complete snapshots only; a partial one is kept while it is newer
    /// than every complete snapshot of its job, and removed after
    #[arg(long)]
    pub allow_partial: bool,
    /// Print the decisions, remove nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// `kind: forget`.
#[derive(Debug, Serialize)]
pub struct ForgetRecord {
    pub id: String,
    pub job: String,
    pub time: String,
    pub action: &'static str,
    pub reasons: Vec<String>,
    pub dry_run: bool,
}

pub fn run(out: &mut Output, ctx: &Ctx, a: &ForgetArgs) -> Result<Exit> {
    let (repo_dir, key) = (ctx.repo_dir.as_path(), ctx.key);
    let policy = policy::Policy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        within: a.keep_within,
    };
    if policy.is_empty() {
        return Err(Error::usage("no --keep-* rule given: forget removes nothing without a policy")
            .hint("give at least one of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-within"));
    }
    let repo = Repo::open(repo_dir, key)?;
    let _lock = lock::acquire(&repo, true, "forget", ctx.retry_lock)?;
    let (listed, bad) = snapshot::list(&repo)?;
    if let Some((id, p)) = bad.first() {
        return Err(Error::data(format!(
            "snapshot {} is unreadable ({p}): forget changed nothing",
            crypto::hex(id)
        ))
        .hint("run verify"));
    }
    let now = chrono::Local::now().fixed_offset();
    let mut groups: std::collections::BTreeMap<&str, Vec<&Listed>> = Default::default();
    for l in &listed {
        if a.job.as_ref().is_none_or(|j| *j == l.header.job) {
            groups.entry(&l.header.job).or_default().push(l);
        }
    }
    let mut t = Table::new(&["ID", "TIME", "JOB", "ACTION", "WHY KEPT"]);
    let unix_now = homelab_core::unix_now();
    let mut removed = 0;
    for (job, snaps) in groups {
        let mut usable = Vec::new();
        let mut times = Vec::new();
        for s in snaps {
            match s.time() {
                Some(tm) => {
                    usable.push(s);
                    times.push(tm);
                }
                None => eprintln!(
                    "backup-snap: snapshot {} has an unreadable time: kept",
                    s.id_hex()
                ),
            }
        }
        for (i, keep, reasons) in decide(&usable, &times, &policy, now, a.allow_partial, job) {
            let s = usable[i];
            let rec = ForgetRecord {
                id: s.id_hex(),
                job: job.to_string(),
                time: s.header.time.clone(),
                action: if keep { "keep" } else { "remove" },
                reasons,
                dry_run: a.dry_run,
            };
            if !keep && !a.dry_run {
                let p = snapshot::snapshot_path(&repo, &s.id);
                std::fs::remove_file(&p).map_err(|e| Error::io(format!("removing {}", p.display()), e))?;
                removed += 1;
            }
            out.record("forget", &rec)?;
            t.row([
                short(&rec.id).to_string(),
                when(&rec.time, unix_now),
                rec.job.clone(),
                match (keep, a.dry_run) {
                    (true, _) => "keep",
                    (false, true) => "would remove",
                    (false, false) => "removed",
                }
                .to_string(),
                if keep { rec.reasons.join(", ") } else { "-".into() },
            ]);
        }
    }
    if removed > 0 {
        repo::fsync_dir(&repo.path.join("snapshots"));
    }
    show(out, |paint, width| {
        let mut s = if t.is_empty() {
            "No snapshots.\n".to_string()
        } else {
            levelled_table(&t, &[], paint, width)
        };
        if a.dry_run {
            s.push_str("\nDry run: nothing was removed.\n");
        }
        s
    })?;
    deliver_page(out, &repo)?;
    Ok(Exit::Ok)
}

/// The reason forget gives for a partial snapshot it keeps without --allow-partial.
pub const PARTIAL_KEPT: &str = "partial, newer than every complete snapshot";

/// forget's decisions for one job, newest first: (index into `snaps`, keep, reasons).
/// Without `allow_partial` the rules see only complete snapshots, so a partial one
/// (with errors) never uses up a count; it is kept while it is newer than every
/// complete snapshot (it may hold the only copy of recent changes) and removed once
/// a newer complete one exists (the policy always keeps the newest complete one).
fn decide(
    snaps: &[&Listed],
    times: &[chrono::DateTime<chrono::FixedOffset>],
    policy: &policy::Policy,
    now: chrono::DateTime<chrono::FixedOffset>,
    allow_partial: bool,
    job: &str,
) -> Vec<(usize, bool, Vec<String>)> {
    if allow_partial {
        return policy::apply(times, policy, now)
            .into_iter()
            .map(|d| (d.index, d.keep, d.reasons))
            .collect();
    }
    let complete: Vec<usize> = (0..snaps.len())
        .filter(|i| !snaps[*i].header.is_partial())
        .collect();
    let complete_times: Vec<_> = complete.iter().map(|i| times[*i]).collect();
    let mut out: Vec<(usize, bool, Vec<String>)> = policy::apply(&complete_times, policy, now)
        .into_iter()
        .map(|d| (complete[d.index], d.keep, d.reasons))
        .collect();
    let newest_complete = complete_times.iter().max().copied();
    let partial: Vec<usize> = (0..snaps.len())
        .filter(|i| snaps[*i].header.is_partial())
        .collect();
    if newest_complete.is_none() && !partial.is_empty() {
        eprintln!(
            "backup-snap: forget: job {job} has only partial snapshots (with errors): all kept; give --allow-partial to apply the rules to them"
        );
    }
    for i in partial {
        let keep = newest_complete.is_none_or(|n| times[i] > n);
        let reasons = if keep {
            vec![PARTIAL_KEPT.to_string()]
        } else {
            Vec::new()
        };
        out.push((i, keep, reasons));
    }
    // Newest first, equal times in input order, as policy::apply orders them.
    out.sort_by(|a, b| times[b.0].cmp(&times[a.0]).then(a.0.cmp(&b.0)));
    out
}
