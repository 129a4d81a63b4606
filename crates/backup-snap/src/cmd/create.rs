//! `backup-snap create`: a new snapshot of paths, SQLite databases and Postgres dumps.

use std::path::PathBuf;

use clap::Args;
use homelab_core::text::{Panel, problem_list};
use homelab_core::{Error, Exit, Output, Result};

use super::{Ctx, SnapshotRecord, deliver_page, short, show};
use crate::progress::human_bytes;
use crate::repo::Repo;
use crate::text::{count, snapshot_state, when};
use crate::{create, lock};

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Name of the backup job (retention and metrics are per job)
    #[arg(long, value_name = "NAME", value_parser = parse_job)]
    pub job: String,

    /// The snapshot's time (RFC 3339, e.g. 2026-11-26T03:00:00+01:00; default: now)
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    pub time: Option<chrono::DateTime<chrono::FixedOffset>>,

    /// Leave out paths matching GLOB: with a `/`, matched against the whole path
    /// (`**` crosses directories), otherwise against the name (e.g. '*.tmp')
    #[arg(long, value_name = "GLOB", value_parser = parse_glob)]
    pub exclude: Vec<glob::Pattern>,

    /// A live SQLite database: stored as a consistent copy made with SQLite's
    /// online backup API and checked with PRAGMA integrity_check, in place of the
    /// file (its -wal and -shm files are left out)
    #[arg(long, value_name = "PATH")]
    pub sqlite: Vec<PathBuf>,

    /// Dump a Postgres database with pg_dump -Fc, run in the container through the
    /// Docker API; stored as /pg-dump/CONTAINER/DATABASE.dump
    #[arg(long, value_name = "CONTAINER:DATABASE")]
    pub pg_dump: Vec<create::PgDump>,

    /// The Postgres user pg_dump connects as
    #[arg(
        long,
        value_name = "USER",
        default_value = "postgres",
        env = "BACKUP_SNAP_PG_USER"
    )]
    pub pg_user: String,

    /// Pause this container while the files are read (always unpaused afterwards,
    /// also on error, SIGINT or SIGTERM)
    #[arg(long, value_name = "CONTAINER")]
    pub pause: Vec<String>,

    /// Paths to back up (one filesystem each; symlinks are stored, not followed)
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

pub fn parse_job(s: &str) -> std::result::Result<String, String> {
    if !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        Ok(s.into())
    } else {
        Err(format!(
            "{s:?}: a job name is 1 to 128 letters, digits, '.', '_' or '-'"
        ))
    }
}

pub fn parse_time(s: &str) -> std::result::Result<chrono::DateTime<chrono::FixedOffset>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("{s:?}: {e} (expected RFC 3339, e.g. 2026-11-26T03:00:00+01:00)"))
}

pub fn parse_glob(s: &str) -> std::result::Result<glob::Pattern, String> {
    glob::Pattern::new(s).map_err(|e| format!("{s:?}: {e}"))
}

pub fn run(out: &mut Output, ctx: &Ctx, a: &CreateArgs) -> Result<Exit> {
    let (repo_dir, key) = (ctx.repo_dir.as_path(), ctx.key);
    if a.paths.is_empty() && a.sqlite.is_empty() && a.pg_dump.is_empty() {
        return Err(Error::usage("create needs something to back up")
            .hint("give PATH..., --sqlite PATH or --pg-dump CONTAINER:DATABASE"));
    }
    let repo = Repo::open(repo_dir, key)?;
    let shutdown = homelab_core::run::Shutdown::install()?;
    let lock = lock::acquire(&repo, true, "create", ctx.retry_lock)?;
    let opts = create::Options {
        job: a.job.clone(),
        time: a.time.unwrap_or_else(|| chrono::Local::now().fixed_offset()),
        excludes: a.exclude.clone(),
        paths: a.paths.clone(),
        sqlite: a.sqlite.clone(),
        pg_dumps: a.pg_dump.clone(),
        pg_user: a.pg_user.clone(),
        pause: a.pause.clone(),
        docker: ctx.docker.clone(),
        tmp_dir: std::env::var_os("TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp")),
    };
    let flag = shutdown.flag();
    let result = create::run(&repo, &opts, &flag);
    drop(lock);
    let created = match result {
        Ok(c) => c,
        Err(e) => {
            // Cron and Grafana still see that a run happened and failed.
            let _ = deliver_page(out, &repo);
            return Err(e);
        }
    };
    let rec = SnapshotRecord::new(&created.id, &created.header);
    out.record("snapshot", &rec)?;
    show(out, |paint, width| {
        let (state, partial) = snapshot_state(rec.errors.len());
        let state = if partial { paint.warn(&state) } else { state };
        let mut p = Panel::new();
        p.line(
            "Snapshot",
            format!("{} of job {}, {state}", short(&rec.id), rec.job),
        );
        p.line("Time", when(rec.time, homelab_core::unix_now()));
        p.line("Paths", rec.paths.join(", "));
        p.line(
            "Files",
            format!(
                "{}, {} ({} new)",
                count(rec.files, "file", "files"),
                human_bytes(rec.bytes),
                human_bytes(rec.bytes_added)
            ),
        );
        p.line(
            "Chunks",
            format!("{} new, {} reused", rec.chunks_new, rec.chunks_reused),
        );
        p.line("Took", crate::text::took(rec.duration_seconds));
        let problems: Vec<String> = rec.errors.iter().chain(rec.warnings).cloned().collect();
        p.render() + &problem_list(&problems, paint, width)
    })?;
    for e in rec.errors {
        eprintln!("backup-snap: create: {e}");
    }
    deliver_page(out, &repo)?;
    Ok(if !created.header.errors.is_empty() {
        Exit::IoErr
    } else if created.changed > 0 {
        // Complete, but a file may be inconsistent: running again later may do.
        Exit::TempFail
    } else {
        Exit::Ok
    })
}
