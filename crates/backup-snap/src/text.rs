//! The pieces of `--format text` every command uses: times as a person reads them
//! (`2026-11-26 02:00 UTC, 3 days ago`), yes and no, chunk sizes, a snapshot's state
//! in words. Sizes are core's [`human_bytes`], lengths of time its
//! [`human_duration`].

use homelab_core::text::{human_bytes, human_duration};

/// `yes` or `no`.
pub fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// An RFC 3339 time in UTC to the minute, and how long ago it was at `now` (Unix
/// seconds): `2026-11-26 02:00 UTC, 3 days 4 h ago`. A time that cannot be read is
/// shown as it is.
pub fn when(rfc3339: &str, now: f64) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(rfc3339) else {
        return format!("{rfc3339} (not a time)");
    };
    let utc = t.with_timezone(&chrono::Utc);
    let secs = now - utc.timestamp() as f64;
    let rel = if secs >= 0.0 {
        format!("{} ago", human_duration(secs))
    } else {
        format!("in {}", human_duration(-secs))
    };
    format!("{}, {rel}", utc.format("%Y-%m-%d %H:%M UTC"))
}

/// The chunker's sizes: `min 512.0 KiB, avg 1.0 MiB, max 8.0 MiB`.
pub fn chunk_sizes(min: u64, avg: u64, max: u64) -> String {
    format!(
        "min {}, avg {}, max {}",
        human_bytes(min),
        human_bytes(avg),
        human_bytes(max)
    )
}

/// How long a command took: tenths of a second below ten seconds (`0.3 s`), then
/// core's [`human_duration`] (`3 min 5 s`).
pub fn took(secs: f64) -> String {
    if secs < 10.0 {
        format!("{:.1} s", secs.max(0.0))
    } else {
        human_duration(secs)
    }
}

/// A message with every full 64-digit hex id (a pack's, a chunk's, a snapshot's)
/// cut to its first 8 digits, as the tables show ids.
pub fn short_ids(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() == 64 {
            out.push_str(&run[..8]);
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in msg.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// How many of a thing, with its noun: `1 file`, `3 files`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A snapshot's state in words, and whether that is a problem: `complete`, or
/// `partial, 2 errors !`.
pub fn snapshot_state(errors: usize) -> (String, bool) {
    match errors {
        0 => ("complete".into(), false),
        n => (format!("partial, {} !", count(n as u64, "error", "errors")), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_for_people() {
        // 2026-11-26T03:00:00+01:00 is 02:00 UTC.
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-26T03:00:00+01:00")
            .unwrap()
            .timestamp() as f64;
        assert_eq!(
            when("2026-11-26T03:00:00+01:00", t + 3.0 * 86_400.0 + 4.0 * 3600.0),
            "2026-11-26 02:00 UTC, 3 days 4 h ago"
        );
        assert_eq!(
            when("2026-11-26T03:00:00+01:00", t - 300.0),
            "2026-11-26 02:00 UTC, in 5 min"
        );
        assert_eq!(when("yesterday", t), "yesterday (not a time)");
    }

    #[test]
    fn words_for_values() {
        assert_eq!(yes_no(true), "yes");
        assert_eq!(
            chunk_sizes(512 << 10, 1 << 20, 8 << 20),
            "min 512.0 KiB, avg 1.0 MiB, max 8.0 MiB"
        );
        assert_eq!(count(1, "file", "files"), "1 file");
        assert_eq!(took(0.04), "0.0 s");
        let id = "6db7f73d7c0387912bee6ae207dd4b128c5d2d73c988aa60ecac9e66b80efdb0";
        assert_eq!(
            short_ids(&format!("in pack {id}: content does not match its id")),
            "in pack 6db7f73d: content does not match its id"
        );
        assert_eq!(short_ids("deadbeef, cafe"), "deadbeef, cafe");
        assert_eq!(took(3.25), "3.2 s");
        assert_eq!(took(185.0), "3 min 5 s");
        assert_eq!(snapshot_state(0), ("complete".to_string(), false));
        assert_eq!(snapshot_state(2), ("partial, 2 errors !".to_string(), true));
    }
}
