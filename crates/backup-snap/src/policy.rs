//! Retention with restic's semantics exactly (restic `internal/data/snapshot_policy.go`,
//! `doc/060_forget.rst`), as pure functions of the snapshot times:
//!
//! - snapshots are taken newest first; each rule has a counter;
//! - hourly/daily/weekly/monthly/yearly keep the newest snapshot of each calendar
//!   period (in the snapshot's own UTC offset; weeks are ISO weeks, Monday to
//!   Sunday), for the last N periods *that have snapshots*;
//! - the rules count independently: one snapshot can use up a daily, a weekly and
//!   a monthly count at once;
//! - when a rule's count is not used up, the oldest snapshot is kept for it
//!   ("oldest daily snapshot");
//! - `--keep-within` keeps every snapshot newer than the newest snapshot (not in the
//!   future) minus the duration;
//! - counts may be `unlimited`.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Timelike};

/// A count: `None` (rule not given), `Some(n)`, or `Some(-1)` for unlimited.
pub type Count = Option<i64>;

/// restic's duration: years, months, days, hours (`1y5m7d2h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Within {
    pub years: i64,
    pub months: i64,
    pub days: i64,
    pub hours: i64,
}

impl std::fmt::Display for Within {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        for (n, u) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n != 0 {
                s.push_str(&format!("{n}{u}"));
            }
        }
        if s.is_empty() {
            s.push_str("0h");
        }
        f.write_str(&s)
    }
}

/// What `--keep-within` accepts, said in its help, its errors and the man page.
pub const WITHIN_UNITS: &str =
    "restic's units: y years, m months (not minutes), d days, h hours, e.g. 7d, 2y6m or 1y5m7d2h";

/// Parses restic's duration (`1y5m7d2h`). A number too large for any calendar
/// saturates: such a rule keeps every snapshot, as restic's does.
pub fn parse_within(s: &str) -> Result<Within, String> {
    let err = || format!("{s:?}: expected a duration in {WITHIN_UNITS}");
    let mut w = Within::default();
    let mut num = String::new();
    let mut any = false;
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        if num.is_empty() {
            return Err(err());
        }
        // Only digits: the one way to fail is a number beyond i64.
        let n: i64 = num.parse().unwrap_or(i64::MAX);
        num.clear();
        let slot = match c {
            'y' => &mut w.years,
            'm' => &mut w.months,
            'd' => &mut w.days,
            'h' => &mut w.hours,
            _ => return Err(err()),
        };
        *slot = slot.saturating_add(n);
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(err());
    }
    Ok(w)
}

pub fn parse_count(s: &str) -> Result<i64, String> {
    if s == "unlimited" {
        return Ok(-1);
    }
    s.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| format!("{s:?}: expected a number (0 or more) or unlimited"))
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    pub last: Count,
    pub hourly: Count,
    pub daily: Count,
    pub weekly: Count,
    pub monthly: Count,
    pub yearly: Count,
    pub within: Option<Within>,
}

impl Policy {
    /// No rule that keeps anything: forget refuses it, as restic does.
    pub fn is_empty(&self) -> bool {
        [
            self.last,
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ]
        .iter()
        .all(|c| c.unwrap_or(0) == 0)
            && self.within.is_none_or(|w| w == Within::default())
    }
}

/// The decision for one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Index into the input list.
    pub index: usize,
    pub keep: bool,
    pub reasons: Vec<String>,
}

fn bucket(rule: usize, t: &DateTime<FixedOffset>, nr: usize) -> i64 {
    let (y, m, d, h) = (t.year() as i64, t.month() as i64, t.day() as i64, t.hour() as i64);
    match rule {
        0 => nr as i64,
        1 => y * 1_000_000 + m * 10_000 + d * 100 + h,
        2 => y * 10_000 + m * 100 + d,
        3 => {
            let w = t.iso_week();
            w.year() as i64 * 100 + w.week() as i64
        }
        4 => y * 100 + m,
        _ => y,
    }
}

/// Go's `t.AddDate(y, m, d)`: months and days overflow into the next unit, so
/// March 31 minus one month is March 3 (February 31 normalised).
pub fn add_date(
    t: &DateTime<FixedOffset>,
    years: i64,
    months: i64,
    days: i64,
) -> Option<DateTime<FixedOffset>> {
    let total = (t.year() as i64)
        .checked_add(years)?
        .checked_mul(12)?
        .checked_add(t.month0() as i64)?
        .checked_add(months)?;
    let (y, m0) = (total.div_euclid(12), total.rem_euclid(12));
    let first = NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m0 as u32 + 1, 1)?;
    let date = first.checked_add_signed(chrono::Duration::try_days(
        (t.day() as i64 - 1).checked_add(days)?,
    )?)?;
    let naive = date.and_time(t.time());
    naive.and_local_timezone(*t.offset()).single()
}

/// The start of `--keep-within`'s window before `latest`; `None` when it lies
/// before any date chrono can hold, so that every snapshot is within it (restic
/// keeps everything then; dropping the rule would remove everything).
fn within_start(latest: &DateTime<FixedOffset>, w: &Within) -> Option<DateTime<FixedOffset>> {
    let date = add_date(
        latest,
        w.years.checked_neg()?,
        w.months.checked_neg()?,
        w.days.checked_neg()?,
    )?;
    date.checked_sub_signed(chrono::Duration::try_hours(w.hours)?)
}

/// Applies the policy to one group's snapshot times. `now` excludes snapshots in
/// the future from being "the latest" for --keep-within.
pub fn apply(times: &[DateTime<FixedOffset>], p: &Policy, now: DateTime<FixedOffset>) -> Vec<Decision> {
    let mut order: Vec<usize> = (0..times.len()).collect();
    // Newest first; equal times keep their input order (restic sorts stably).
    order.sort_by(|a, b| times[*b].cmp(&times[*a]));
    let names = [
        "last snapshot",
        "hourly snapshot",
        "daily snapshot",
        "weekly snapshot",
        "monthly snapshot",
        "yearly snapshot",
    ];
    let mut counts: Vec<i64> = [p.last, p.hourly, p.daily, p.weekly, p.monthly, p.yearly]
        .iter()
        .map(|c| c.unwrap_or(0))
        .collect();
    let mut last_val: [Option<i64>; 6] = [None; 6];
    let latest = times.iter().filter(|t| **t < now).max().copied();
    let within_limit = match (p.within, latest) {
        (Some(w), Some(l)) if w != Within::default() => Some(within_start(&l, &w)),
        _ => None,
    };
    let n = order.len();
    let mut out = Vec::with_capacity(n);
    for (nr, &i) in order.iter().enumerate() {
        let t = &times[i];
        let mut keep = false;
        let mut reasons = Vec::new();
        if let (Some(limit), Some(w)) = (within_limit, p.within)
            && limit.is_none_or(|limit| *t > limit)
        {
            keep = true;
            reasons.push(format!("within {w}"));
        }
        for rule in 0..6 {
            if counts[rule] > 0 || counts[rule] == -1 {
                let val = bucket(rule, t, nr);
                if Some(val) != last_val[rule] || nr == n - 1 {
                    keep = true;
                    let oldest = Some(val) == last_val[rule] && nr == n - 1;
                    reasons.push(if oldest {
                        format!("oldest {}", names[rule])
                    } else {
                        names[rule].to_string()
                    });
                    last_val[rule] = Some(val);
                    if counts[rule] > 0 {
                        counts[rule] -= 1;
                    }
                }
            }
        }
        out.push(Decision {
            index: i,
            keep,
            reasons,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn durations_and_counts() {
        assert_eq!(
            parse_within("1y5m7d2h"),
            Ok(Within {
                years: 1,
                months: 5,
                days: 7,
                hours: 2
            })
        );
        assert!(parse_within("1w").is_err(), "restic does not accept weeks");
        assert!(parse_within("7").is_err());
        assert!(parse_within("").is_err());
        assert_eq!(parse_count("unlimited"), Ok(-1));
        assert!(parse_count("-1").is_err());
    }

    #[test]
    fn a_window_beyond_the_calendar_keeps_everything() {
        let times = [t("2020-01-01T00:00:00Z"), t("2026-11-01T00:00:00Z")];
        let now = t("2100-01-01T00:00:00Z");
        for s in [
            "300000y",
            "99999999999h",
            "9223372036854775807m",
            "99999999999999999999999d",
        ] {
            let p = Policy {
                within: Some(parse_within(s).unwrap()),
                ..Default::default()
            };
            let d = apply(&times, &p, now);
            assert!(d.iter().all(|d| d.keep), "{s}: {d:?}");
        }
        assert!(
            parse_within("5min")
                .unwrap_err()
                .contains("m months (not minutes)")
        );
    }

    #[test]
    fn add_date_overflows_like_go() {
        assert_eq!(
            add_date(&t("2026-03-31T10:00:00+02:00"), 0, -1, 0),
            Some(t("2026-03-03T10:00:00+02:00"))
        );
        assert_eq!(
            add_date(&t("2024-02-29T00:00:00Z"), -1, 0, 0),
            Some(t("2023-03-01T00:00:00Z"))
        );
        assert_eq!(
            add_date(&t("2026-01-05T00:00:00Z"), 0, 0, -7),
            Some(t("2025-12-29T00:00:00Z"))
        );
    }
}
