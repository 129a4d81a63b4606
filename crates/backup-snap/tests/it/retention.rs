//! Retention: tables from restic's documented examples (doc/060_forget.rst), the
//! ISO-week and oldest-snapshot rules, and a generated history of two years of
//! snapshots at irregular times checked against an independent reading of the rules.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::*;
use backup_snap::policy::{Policy, Within, apply};
use chrono::{DateTime, Datelike, Duration, FixedOffset, Timelike};

fn t(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

fn now() -> DateTime<FixedOffset> {
    t("2100-01-01T00:00:00+00:00")
}

/// (time, reasons) of the kept snapshots, newest first.
fn kept(times: &[DateTime<FixedOffset>], p: &Policy) -> Vec<(DateTime<FixedOffset>, Vec<String>)> {
    apply(times, p, now())
        .into_iter()
        .filter(|d| d.keep)
        .map(|d| (times[d.index], d.reasons))
        .collect()
}

#[test]
fn restic_doc_twelve_sundays_keep_daily_4() {
    // "Suppose you have only made one backup every Sunday for 12 weeks ...
    //  forget --keep-daily 4 will keep the last four snapshots, for the last four Sundays"
    let times: Vec<_> = (0..12)
        .map(|w| t("2019-09-01T11:00:00+00:00") + Duration::weeks(w))
        .collect();
    let p = Policy {
        daily: Some(4),
        ..Default::default()
    };
    let k = kept(&times, &p);
    let expected: Vec<_> = ["2019-11-17", "2019-11-10", "2019-11-03", "2019-10-27"]
        .iter()
        .map(|d| {
            (
                t(&format!("{d}T11:00:00+00:00")),
                vec!["daily snapshot".to_string()],
            )
        })
        .collect();
    assert_eq!(k, expected);
}

#[test]
fn restic_doc_hundred_years_of_daily_backups() {
    // "keep-daily 7 --keep-weekly 5 --keep-monthly 12 --keep-yearly 75 would keep the most
    //  recent 7 daily snapshots and 4 last-day-of-the-week ones (since the 7 dailies
    //  already include 1 weekly). Additionally, 12 or 11 last-day-of-the-month snapshots
    //  ... And finally 75 or 74 last-day-of-the-year snapshots"
    // Ending on a Sunday, as the documentation's count assumes.
    let end = t("2026-03-08T02:00:00+00:00");
    let mut times: Vec<_> = (0..36_525).map(|d| end - Duration::days(d)).collect();
    times.reverse();
    let p = Policy {
        daily: Some(7),
        weekly: Some(5),
        monthly: Some(12),
        yearly: Some(75),
        ..Default::default()
    };
    let k = kept(&times, &p);
    let with = |r: &str| k.iter().filter(|(_, rs)| rs.iter().any(|x| x == r)).count();
    assert_eq!(
        (
            with("daily snapshot"),
            with("weekly snapshot"),
            with("monthly snapshot"),
            with("yearly snapshot")
        ),
        (7, 5, 12, 75)
    );
    let only = |r: &str| k.iter().filter(|(_, rs)| rs.len() == 1 && rs[0] == r).count();
    assert_eq!(
        only("daily snapshot"),
        7 - 1,
        "the newest daily is also a weekly, monthly and yearly one"
    );
    assert_eq!(only("weekly snapshot"), 4);
    // Weekly ones are Sundays (the newest snapshot of an ISO week), monthly ones the last day of a month.
    for (tm, rs) in &k {
        if rs.iter().any(|r| r == "weekly snapshot") && *tm != times[times.len() - 1] {
            assert_eq!(tm.weekday(), chrono::Weekday::Sun, "{tm}");
        }
        if rs.iter().any(|r| r == "monthly snapshot") && *tm != times[times.len() - 1] {
            assert_eq!((*tm + Duration::days(1)).day(), 1, "{tm}");
        }
    }
    assert!(
        k.iter()
            .all(|(_, rs)| !rs.iter().any(|r| r.starts_with("oldest"))),
        "every count was used up"
    );
}

#[test]
fn daily_7_weekly_5_on_daily_backups_keeps_11() {
    let times: Vec<_> = (0..60)
        .map(|d| t("2026-01-01T03:00:00+01:00") + Duration::days(d))
        .collect();
    let p = Policy {
        daily: Some(7),
        weekly: Some(5),
        ..Default::default()
    };
    assert_eq!(kept(&times, &p).len(), 7 + 4);
}

#[test]
fn weeks_are_iso_weeks_across_new_year() {
    // Mon 2020-12-28, Sun 2021-01-03 (both ISO week 2020-W53), Mon 2021-01-04 (2021-W01).
    let times = vec![
        t("2020-12-28T12:00:00Z"),
        t("2021-01-03T12:00:00Z"),
        t("2021-01-04T12:00:00Z"),
    ];
    let p = Policy {
        weekly: Some(2),
        ..Default::default()
    };
    let k: Vec<_> = kept(&times, &p).into_iter().map(|(tm, _)| tm).collect();
    assert_eq!(k, vec![t("2021-01-04T12:00:00Z"), t("2021-01-03T12:00:00Z")]);
    // The calendar of the snapshot's own offset: 23:30 at -02:00 is already the next
    // day in UTC, but it is Sunday where it was taken.
    let times = vec![t("2021-01-03T23:30:00-02:00"), t("2021-01-03T08:00:00-02:00")];
    assert_eq!(
        kept(
            &times,
            &Policy {
                weekly: Some(1),
                ..Default::default()
            }
        )
        .len(),
        1
    );
}

#[test]
fn an_unused_count_keeps_the_oldest_snapshot() {
    let times = vec![
        t("2026-05-02T10:00:00Z"),
        t("2026-05-02T09:00:00Z"),
        t("2026-05-01T09:00:00Z"),
        t("2026-05-01T08:00:00Z"),
    ];
    let p = Policy {
        daily: Some(5),
        ..Default::default()
    };
    let d = apply(&times, &p, now());
    let reasons: BTreeMap<_, _> = d.iter().map(|d| (times[d.index], d.reasons.clone())).collect();
    assert_eq!(reasons[&times[0]], ["daily snapshot"]);
    assert!(reasons[&times[1]].is_empty());
    assert_eq!(reasons[&times[2]], ["daily snapshot"]);
    assert_eq!(
        reasons[&times[3]],
        ["oldest daily snapshot"],
        "2 days < 5: the oldest is kept too"
    );
    // A count that is used up keeps no extra oldest.
    let p = Policy {
        daily: Some(2),
        ..Default::default()
    };
    assert!(
        apply(&times, &p, now())
            .iter()
            .all(|d| d.reasons.iter().all(|r| !r.starts_with("oldest")))
    );
}

#[test]
fn keep_within_is_relative_to_the_newest_snapshot_not_now() {
    let times = vec![
        t("2026-01-10T00:00:00Z"),
        t("2026-01-04T00:00:01Z"),
        t("2026-01-03T00:00:00Z"),
        t("2026-01-01T00:00:00Z"),
        // In the future: ignored as "newest", and kept.
        t("2099-06-01T00:00:00Z"),
    ];
    let p = Policy {
        within: Some(Within {
            days: 7,
            ..Default::default()
        }),
        ..Default::default()
    };
    let d = apply(&times, &p, t("2030-01-01T00:00:00Z"));
    let keep: BTreeSet<_> = d.iter().filter(|d| d.keep).map(|d| times[d.index]).collect();
    assert_eq!(keep, BTreeSet::from([times[0], times[1], times[4]]));
    assert!(d.iter().any(|d| d.reasons == ["within 7d"]));
    // Months step like Go's AddDate: 1m from March 31 reaches back to March 3.
    let times = vec![
        t("2026-03-31T00:00:00Z"),
        t("2026-03-03T00:00:01Z"),
        t("2026-03-02T23:00:00Z"),
    ];
    let p = Policy {
        within: Some(Within {
            months: 1,
            ..Default::default()
        }),
        ..Default::default()
    };
    let n = apply(&times, &p, now()).iter().filter(|d| d.keep).count();
    assert_eq!(n, 2);
}

#[test]
fn unlimited_and_last() {
    let times: Vec<_> = (0..10)
        .map(|h| t("2026-01-01T00:00:00Z") + Duration::minutes(20 * h))
        .collect();
    let p = Policy {
        hourly: Some(-1),
        ..Default::default()
    };
    let k = kept(&times, &p);
    assert_eq!(
        k.len(),
        5,
        "10 snapshots over 4 hours, and restic keeps the oldest for an unlimited rule too"
    );
    assert_eq!(k[4].1, ["oldest hourly snapshot"]);
    let p = Policy {
        last: Some(3),
        ..Default::default()
    };
    let k = kept(&times, &p);
    assert_eq!(k.len(), 3);
    assert!(k.iter().all(|(_, r)| r == &["last snapshot"]));
    assert!(Policy::default().is_empty());
}

/// The rules read independently, for monotonic times in one offset: for each rule,
/// the periods that have snapshots, newest first; the newest snapshot of each of the
/// first N is kept; when there are fewer than N periods the oldest snapshot is kept.
fn oracle(times: &[DateTime<FixedOffset>], counts: [i64; 6]) -> BTreeMap<usize, BTreeSet<String>> {
    let names = ["last", "hourly", "daily", "weekly", "monthly", "yearly"];
    let key = |rule: usize, t: &DateTime<FixedOffset>, i: usize| -> String {
        match rule {
            0 => format!("{i}"),
            1 => format!("{}-{}-{}-{}", t.year(), t.month(), t.day(), t.hour()),
            2 => format!("{}-{}-{}", t.year(), t.month(), t.day()),
            3 => format!("{}-{}", t.iso_week().year(), t.iso_week().week()),
            4 => format!("{}-{}", t.year(), t.month()),
            _ => format!("{}", t.year()),
        }
    };
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by(|a, b| times[*b].cmp(&times[*a]));
    let mut out: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for rule in 0..6 {
        let n = counts[rule];
        if n == 0 {
            continue;
        }
        let mut seen: Vec<String> = Vec::new();
        for (pos, &i) in order.iter().enumerate() {
            let k = key(rule, &times[i], pos);
            if !seen.contains(&k) {
                seen.push(k);
                if n == -1 || seen.len() as i64 <= n {
                    out.entry(i)
                        .or_default()
                        .insert(format!("{} snapshot", names[rule]));
                }
            }
        }
        // restic keeps the oldest for an unlimited rule too.
        if n == -1 || (seen.len() as i64) < n {
            let oldest = *order.last().unwrap();
            let r = out.entry(oldest).or_default();
            if !r.contains(&format!("{} snapshot", names[rule])) {
                r.insert(format!("oldest {} snapshot", names[rule]));
            }
        }
    }
    out
}

#[test]
fn two_years_of_irregular_snapshots_match_the_rules() {
    let mut x: u64 = 0x5eed_1234_abcd_0001;
    let mut rnd = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut times = Vec::new();
    let mut cur = t("2024-11-20T00:00:00+01:00");
    let end = t("2026-11-20T00:00:00+01:00");
    while cur < end {
        times.push(cur);
        // Bursts of minutes apart, normal days, and gaps of up to five days.
        let gap = match rnd(10) {
            0..=2 => rnd(90) as i64 * 60,
            3..=7 => 3_600 * (1 + rnd(30) as i64),
            _ => 3_600 * (24 + rnd(96) as i64),
        };
        cur += Duration::seconds(gap + rnd(60) as i64);
    }
    assert!(times.len() > 500, "{} snapshots", times.len());
    for counts in [
        [0, 0, 7, 4, 12, 2],
        [3, 24, 14, 8, 24, 5],
        [0, 0, 0, 0, 0, 3],
        [1, 0, 2000, 0, 0, 0],
        [0, 48, 0, 200, 0, 0],
        [0, 0, -1, 0, 6, 0],
    ] {
        let p = Policy {
            last: Some(counts[0]),
            hourly: Some(counts[1]),
            daily: Some(counts[2]),
            weekly: Some(counts[3]),
            monthly: Some(counts[4]),
            yearly: Some(counts[5]),
            within: None,
        };
        let got: BTreeMap<usize, BTreeSet<String>> = apply(&times, &p, now())
            .into_iter()
            .filter(|d| d.keep)
            .map(|d| (d.index, d.reasons.into_iter().collect()))
            .collect();
        let want = oracle(&times, counts);
        for (i, r) in want.iter().chain(got.iter()) {
            assert_eq!(
                got.get(i),
                want.get(i),
                "policy {counts:?}: snapshot {} ({r:?})",
                times[*i]
            );
        }
    }
}

#[test]
fn forget_on_a_repository_prints_every_decision_and_removes_only_without_dry_run() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    let repo = d.path().join("repo");
    init(&repo);
    for w in 0..12 {
        let tm = (t("2019-09-01T11:00:00+00:00") + Duration::weeks(w)).to_rfc3339();
        create(&repo, "sundays", &[&src], &["--time", &tm]);
    }
    create(&repo, "other", &[&src], &["--time", "2019-09-01T11:00:00+00:00"]);
    let out = ok(
        &repo,
        &["forget", "--job", "sundays", "--keep-daily", "4", "--dry-run"],
    );
    let recs: Vec<ForgetRec> = records(&out, "forget");
    assert_eq!(
        recs.len(),
        12,
        "one record per snapshot of the job, none of the other job"
    );
    assert!(recs.iter().all(|r| r.dry_run && r.job == "sundays"));
    assert_eq!(recs.iter().filter(|r| r.action == "keep").count(), 4);
    assert!(
        recs.iter()
            .filter(|r| r.action == "keep")
            .all(|r| r.reasons == ["daily snapshot"])
    );
    assert!(
        recs.iter()
            .filter(|r| r.action == "remove")
            .all(|r| r.reasons.is_empty())
    );
    assert_eq!(
        std::fs::read_dir(repo.join("snapshots")).unwrap().count(),
        13,
        "a dry run removes nothing"
    );
    ok(&repo, &["forget", "--job", "sundays", "--keep-daily", "4"]);
    let snaps: Vec<SnapshotRec> = records(&ok(&repo, &["list"]), "snapshot");
    assert_eq!(snaps.len(), 5);
    let kept_times: Vec<&str> = snaps
        .iter()
        .filter(|s| s.job == "sundays")
        .map(|s| &s.time[..10])
        .collect();
    assert_eq!(
        kept_times,
        ["2019-10-27", "2019-11-03", "2019-11-10", "2019-11-17"]
    );
    // No policy: refused, nothing removed.
    let o = bs(&repo, &["forget"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("--keep-"), "{}", stderr(&o));
    let o = bs(&repo, &["forget", "--keep-within", "1w"]);
    assert_eq!(o.status.code(), Some(64), "restic's units only");
}
