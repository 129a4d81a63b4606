//! `backup-snap drill`: restore the newest snapshot of each job and check it.

use std::path::PathBuf;

use clap::Args;
use homelab_core::text::{Mark, Table, levelled_table, problem_list};
use homelab_core::{Error, Exit, Output, Result};

use super::{Ctx, deliver_page, rounded, short, show};
use crate::drill::{self, JobState};
use crate::progress::human_bytes;
use crate::repo::{Index, Repo};
use crate::text::{short_ids, when};
use crate::{lock, snapshot};

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Only this job (otherwise every job in the repository)
    #[arg(long, value_name = "NAME")]
    pub job: Option<String>,
}

pub fn run(out: &mut Output, ctx: &Ctx, a: &DrillArgs) -> Result<Exit> {
    let repo = Repo::open(&ctx.repo_dir, ctx.key)?;
    let _lock = lock::acquire(&repo, false, "drill", ctx.retry_lock)?;
    let (listed, _) = snapshot::list(&repo)?;
    let mut jobs: Vec<String> = listed.iter().map(|l| l.header.job.clone()).collect();
    jobs.sort();
    jobs.dedup();
    if let Some(j) = &a.job {
        if !jobs.contains(j) {
            return Err(Error::new(Exit::NoInput, format!("no snapshot of job {j}"))
                .hint("list the snapshots with: backup-snap --repo PATH list"));
        }
        jobs = vec![j.clone()];
    }
    if jobs.is_empty() {
        return Err(
            Error::new(Exit::NoInput, "the repository holds no snapshot to drill").hint("create one first"),
        );
    }
    let tmp_dir = std::env::var_os("TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    let index = Index::load(&repo)?;
    let mut state = drill::read_state(&repo);
    let mut t = Table::new(&[
        "JOB", "SNAPSHOT", "TIME", "FILES", "SIZE", "SQLITE", "PG DUMPS", "RESULT",
    ]);
    let (mut marks, mut problems) = (Vec::new(), Vec::new());
    let (mut failed, mut skipped) = (0, 0);
    for job in &jobs {
        let report = match snapshot::resolve(&listed, &format!("latest:{job}"), false) {
            Ok(snap) => drill::run(&repo, &index, &snap, &tmp_dir)?,
            Err(e) => drill::Report {
                job: job.clone(),
                failures: vec![e.what().to_string()],
                ..Default::default()
            },
        };
        let now = rounded(homelab_core::unix_now());
        let prev = state.get(job).and_then(|s| s.last_success);
        state.insert(
            job.clone(),
            JobState {
                last_run: now,
                last_success: if report.ok { Some(now) } else { prev },
                failures: report.failures.len() as u64,
            },
        );
        out.record("drill", &report)?;
        for f in &report.failures {
            eprintln!("backup-snap: drill: job {job}: {f}");
        }
        for s in &report.skipped {
            eprintln!("backup-snap: drill: job {job}: skipped: {s}");
        }
        if !report.failures.is_empty() {
            failed += 1;
        } else if !report.skipped.is_empty() {
            skipped += 1;
        }
        problems.extend(
            report
                .failures
                .iter()
                .map(|f| format!("job {job}: {}", short_ids(f))),
        );
        problems.extend(report.skipped.iter().map(|x| format!("job {job}: skipped: {x}")));
        let (result, mark) = if report.ok {
            ("passed".to_string(), Mark::None)
        } else if report.failures.is_empty() {
            ("incomplete, checks skipped !".to_string(), Mark::Warn)
        } else {
            (
                format!(
                    "FAILED, {} !",
                    crate::text::count(report.failures.len() as u64, "problem", "problems")
                ),
                Mark::Bad,
            )
        };
        t.row([
            job.clone(),
            report.snapshot.as_deref().map(short).unwrap_or("-").to_string(),
            report
                .time
                .as_deref()
                .map(|tm| when(tm, now))
                .unwrap_or_else(|| "-".into()),
            report.files_checked.to_string(),
            human_bytes(report.bytes_checked),
            report.sqlite_checked.to_string(),
            report.pg_dumps_checked.to_string(),
            result,
        ]);
        marks.push(mark);
    }
    drill::write_state(&repo, &state)?;
    show(out, |paint, width| {
        levelled_table(&t, &marks, paint, width) + &problem_list(&problems, paint, width)
    })?;
    deliver_page(out, &repo)?;
    Ok(if failed > 0 {
        Exit::DataErr
    } else if skipped > 0 {
        // A check's program is missing (pg_restore): not a success either.
        Exit::Unavailable
    } else {
        Exit::Ok
    })
}
