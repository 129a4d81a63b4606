//! The `backup_*` Prometheus page, computed from the repository itself (so every
//! job's series survive each run's rewrite of the textfile), plus the result of the
//! last verify, kept in `state/verify.json`.

use std::collections::BTreeMap;
use std::fs;

use homelab_core::{Page, Result};
use serde::{Deserialize, Serialize};

use crate::repo::Repo;
use crate::snapshot::Listed;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VerifyState {
    pub last_run: f64,
    pub last_success: Option<f64>,
    pub errors: u64,
}

pub fn read_verify_state(repo: &Repo) -> Option<VerifyState> {
    let raw = fs::read(repo.path.join("state").join("verify.json")).ok()?;
    serde_json::from_slice(&raw).ok()
}

pub fn write_verify_state(repo: &Repo, errors: u64, now: f64) -> Result<()> {
    let prev = read_verify_state(repo);
    let state = VerifyState {
        last_run: now,
        last_success: if errors == 0 {
            Some(now)
        } else {
            prev.and_then(|p| p.last_success)
        },
        errors,
    };
    let json =
        serde_json::to_vec(&state).map_err(|e| homelab_core::Error::bug(format!("verify state: {e}")))?;
    repo.write_atomic(&repo.path.join("state").join("verify.json"), &json)
}

/// Bytes of the repository's data files (config, packs, snapshots).
pub fn repository_size(repo: &Repo) -> u64 {
    let mut total = fs::metadata(repo.path.join("config")).map_or(0, |m| m.len());
    total += repo
        .list_packs()
        .map(|v| v.iter().map(|(_, s)| s).sum::<u64>())
        .unwrap_or(0);
    if let Ok(rd) = fs::read_dir(repo.path.join("snapshots")) {
        total += rd
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum::<u64>();
    }
    total
}

pub fn page(repo: &Repo, snapshots: &[Listed], now: f64) -> Page {
    let mut p = Page::new();
    // The newest snapshot of each job (by when it was finished) and the counts.
    let mut last: BTreeMap<&str, &Listed> = BTreeMap::new();
    // A partial snapshot (with errors) is not a success: BackupTooOld must fire when
    // every run for a day has failed to read something.
    let mut last_complete: BTreeMap<&str, f64> = BTreeMap::new();
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for s in snapshots {
        *counts.entry(&s.header.job).or_default() += 1;
        let e = last.entry(&s.header.job).or_insert(s);
        if s.header.finished > e.header.finished {
            *e = s;
        }
        if !s.header.is_partial() {
            let c = last_complete.entry(&s.header.job).or_insert(s.header.finished);
            *c = c.max(s.header.finished);
        }
    }
    for (job, s) in &last {
        let l = [("job", *job)];
        let h = &s.header;
        p.gauge(
            "backup_last_success_timestamp_seconds",
            "When the newest complete snapshot of the job (one without errors) was completed (Unix time).",
        )
        .maybe(&l, last_complete.get(job).copied());
        p.gauge(
            "backup_last_duration_seconds",
            "How long the newest snapshot of the job took.",
        )
        .sample(&l, h.duration_seconds);
        p.gauge(
            "backup_last_size_bytes",
            "Bytes of file content in the newest snapshot of the job.",
        )
        .sample(&l, h.bytes as f64);
        p.gauge("backup_last_added_bytes", "Bytes the newest snapshot of the job added to the repository (after deduplication and compression).")
            .sample(&l, h.bytes_added as f64);
        p.gauge(
            "backup_last_errors",
            "Files or databases the newest snapshot of the job could not read.",
        )
        .sample(&l, h.errors.len() as f64);
    }
    for (job, n) in &counts {
        p.gauge("backup_snapshots", "Snapshots of the job in the repository.")
            .sample(&[("job", *job)], *n as f64);
    }
    p.gauge(
        "backup_repository_size_bytes",
        "Bytes of the repository's config, pack and snapshot files.",
    )
    .sample(&[], repository_size(repo) as f64);
    if let Some(v) = read_verify_state(repo) {
        p.gauge(
            "backup_verify_last_success_timestamp_seconds",
            "When a verify last found no damage (Unix time).",
        )
        .maybe(&[], v.last_success);
        p.gauge(
            "backup_verify_errors",
            "Damage records of the last verify (0 when it found none).",
        )
        .sample(&[], v.errors as f64);
    }
    for (target, c) in crate::copy::read_state(repo) {
        let l = [("target", target.as_str())];
        p.gauge(
            "backup_copy_last_success_timestamp_seconds",
            "When a copy to the target last finished without errors (Unix time).",
        )
        .maybe(&l, c.last_success);
        p.gauge(
            "backup_copy_last_run_timestamp_seconds",
            "When a copy to the target last ran (Unix time).",
        )
        .sample(&l, c.last_run);
        p.gauge(
            "backup_copy_last_bytes",
            "Bytes the last copy wrote into the target (after deduplication).",
        )
        .sample(&l, c.bytes_copied as f64);
        let held: std::collections::HashSet<crate::crypto::Id> =
            c.held.iter().filter_map(|h| crate::crypto::parse_id(h)).collect();
        p.gauge(
            "backup_copy_snapshots_behind",
            "Snapshots (of the copied job, or all) in this repository that the target did not hold after the last copy.",
        )
        .sample(&l, crate::copy::behind(snapshots, &held, c.job.as_deref()) as f64);
    }
    for (job, d) in crate::drill::read_state(repo) {
        let l = [("job", job.as_str())];
        p.gauge(
            "backup_drill_last_success_timestamp_seconds",
            "When a restore drill of the job last passed every check (Unix time).",
        )
        .maybe(&l, d.last_success);
        p.gauge(
            "backup_drill_last_run_timestamp_seconds",
            "When a restore drill of the job last ran (Unix time).",
        )
        .sample(&l, d.last_run);
        p.gauge(
            "backup_drill_failures",
            "Checks the last restore drill of the job failed (0 when it passed).",
        )
        .sample(&l, d.failures as f64);
    }
    p.gauge(
        "backup_last_run_timestamp_seconds",
        "When backup-snap last ran on this repository (Unix time).",
    )
    .sample(&[], now);
    p
}
