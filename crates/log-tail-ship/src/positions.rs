//! The positions file: per file, the offset the sink has acknowledged, the file's
//! identity (device, inode, fingerprint of its first bytes) and its timestamp anchors.
//!
//! Anchors make timestamps of plain-file lines reproducible: a line starting at byte
//! `x` is stamped `ns + (x - offset)` with the last anchor `(offset, ns)` at or before
//! `x`. Anchors are only used once written here, so a line sent again after a crash
//! gets the very timestamp it had the first time, and Loki drops the copy.

use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use homelab_core::exit::describe_io;
use homelab_core::{Error, Exit};
use serde::{Deserialize, Serialize};

/// How many of a file's first bytes identify it, with its device and inode (an
/// entry's `fingerprint_bytes` is never more).
pub const FINGERPRINT_MAX: usize = 256;

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PositionsFile {
    pub version: u32,
    /// A second before the files were last looked for when it was written (Unix
    /// seconds): rotated files changed since may hold lines not read yet.
    pub saved_unix_seconds: f64,
    pub files: Vec<Entry>,
    /// `--journal`: the cursor of the last entry the sink acknowledged. Left out when
    /// there is none (files written before there was a journal source load as such).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<JournalCursor>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JournalCursor {
    /// `--journal-dir`, or null for the system journal: a cursor is only used again
    /// for the journal it came from.
    pub directory: Option<String>,
    pub cursor: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Where the file was last seen (as the system sees it, without --root).
    pub path: String,
    pub dev: u64,
    pub ino: u64,
    /// How many of the first bytes the fingerprint covers (at most 256).
    pub fingerprint_bytes: u32,
    pub fingerprint_crc32: u32,
    /// Acknowledged offset: every line before it has been accepted by the sink.
    pub offset: u64,
    /// Timestamp anchors `[offset, unix_ns]`, ascending.
    #[serde(default)]
    pub anchors: Vec<(u64, u64)>,
}

impl PositionsFile {
    /// `saved_unix_seconds` as a time (a negative one as the epoch); `None` when it is
    /// too large for the clock.
    pub fn saved_at(&self) -> Option<SystemTime> {
        let secs = Duration::try_from_secs_f64(self.saved_unix_seconds.max(0.0)).ok()?;
        UNIX_EPOCH.checked_add(secs)
    }
}

/// Reads the positions file; `None` when there is none yet (the first run).
pub fn load(path: &Path) -> Result<Option<PositionsFile>, Error> {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading --positions {}", path.display()), e)),
    };
    parse(&text, path).map(Some)
}

/// Parses the bytes of a positions file (`path` names it in messages).
pub fn parse(text: &[u8], path: &Path) -> Result<PositionsFile, Error> {
    let parsed: PositionsFile = serde_json::from_slice(text).map_err(|e| {
        Error::data(format!(
            "--positions {} is not a log-tail-ship positions file ({e})",
            path.display()
        ))
        .hint("move it away to start over (files are then read from their end, or from the beginning with --from-beginning)")
    })?;
    if parsed.version != VERSION {
        return Err(Error::data(format!(
            "--positions {} has version {}, this log-tail-ship writes version {VERSION}",
            path.display(),
            parsed.version
        )));
    }
    if let Err(why) = check_values(&parsed) {
        return Err(Error::data(format!(
            "--positions {} is corrupt: {why}",
            path.display()
        ))
        .hint("move it away to start over (files are then read from their end, or from the beginning with --from-beginning)"));
    }
    Ok(parsed)
}

/// The latest time a positions file may hold: 2100-01-01T00:00:00Z. Stamps stay far
/// below Loki's limit (signed 64-bit nanoseconds, year 2262) even with a file's length
/// added, and a clock that is behind (a Pi without its RTC battery) is no error.
pub const LATEST_UNIX_SECONDS: u64 = 4_102_444_800;

/// Values log-tail-ship never writes: a parsable file damaged by hand or by the disk.
fn check_values(f: &PositionsFile) -> Result<(), String> {
    let s = f.saved_unix_seconds;
    if !(s.is_finite() && (0.0..=LATEST_UNIX_SECONDS as f64).contains(&s)) {
        return Err(format!(
            "saved_unix_seconds {s} is not a time between 1970 and 2100"
        ));
    }
    let latest_ns = LATEST_UNIX_SECONDS * 1_000_000_000;
    for e in &f.files {
        if e.fingerprint_bytes as usize > FINGERPRINT_MAX {
            return Err(format!(
                "{}: fingerprint_bytes {} is over {}",
                e.path, e.fingerprint_bytes, FINGERPRINT_MAX
            ));
        }
        if let Some((o, ns)) = e.anchors.iter().find(|(_, ns)| *ns > latest_ns) {
            return Err(format!(
                "{}: the anchor [{o}, {ns}] is not a time between 1970 and 2100",
                e.path
            ));
        }
        if e.offset > i64::MAX as u64 || e.anchors.iter().any(|(o, _)| *o > i64::MAX as u64) {
            return Err(format!("{}: an offset is beyond any file's size", e.path));
        }
        if e.anchors.windows(2).any(|w| w[0].0 > w[1].0) {
            return Err(format!("{}: the anchors are not in ascending order", e.path));
        }
    }
    Ok(())
}

/// Writes the positions file atomically: a temporary file beside it, fsync, rename,
/// fsync of the directory.
pub fn save(path: &Path, file: &PositionsFile) -> Result<(), Error> {
    let body = serde_json::to_vec(file).map_err(|e| Error::bug(format!("serialising positions: {e}")))?;
    let tmp = homelab_core::fs::tmp_beside(path);
    homelab_core::fs::write_atomic(path, &tmp, &[body.as_slice(), b"\n"], None).map_err(|w| {
        let code = match w.err.kind() {
            io::ErrorKind::PermissionDenied => Exit::NoPerm,
            io::ErrorKind::NotFound => Exit::CantCreate,
            _ => Exit::IoErr,
        };
        Error::new(
            code,
            format!("{} {}: {}", w.doing, w.tmp.display(), describe_io(&w.err)),
        )
        .hint("check that the directory of --positions exists, is writable and has free space")
    })
}

/// The timestamp (Unix ns) of a line starting at `offset`, from the anchors; `None`
/// past the end of time (an anchor read back from a damaged positions file).
pub fn stamp(anchors: &[(u64, u64)], offset: u64) -> Option<u64> {
    let i = anchors.partition_point(|(o, _)| *o <= offset);
    let (o, ns) = anchors.get(i.checked_sub(1)?)?;
    ns.checked_add(offset - o)
}

/// Drops anchors no line at or after `acked` needs (keeps the last one before it).
pub fn prune(anchors: &mut Vec<(u64, u64)>, acked: u64) {
    let i = anchors.partition_point(|(o, _)| *o <= acked);
    if i > 1 {
        anchors.drain(..i - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_follow_the_last_anchor() {
        let a = vec![(0, 1_000), (100, 50_000)];
        assert_eq!(stamp(&a, 0), Some(1_000));
        assert_eq!(stamp(&a, 99), Some(1_099));
        assert_eq!(stamp(&a, 100), Some(50_000));
        assert_eq!(stamp(&a, 150), Some(50_050));
        assert_eq!(stamp(&[(10, 5)], 3), None);
        assert_eq!(stamp(&[], 3), None);
        let mut a = vec![(0, 1), (10, 2), (20, 3), (30, 4)];
        prune(&mut a, 25);
        assert_eq!(a, [(20, 3), (30, 4)]);
        prune(&mut a, 5);
        assert_eq!(a, [(20, 3), (30, 4)]);
    }

    #[test]
    fn save_is_atomic_and_load_reads_it_back() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("positions.json");
        assert_eq!(load(&p).unwrap(), None);
        let f = PositionsFile {
            version: VERSION,
            saved_unix_seconds: 1.5,
            files: vec![Entry {
                path: "/var/log/syslog".into(),
                dev: 1,
                ino: 2,
                fingerprint_bytes: 256,
                fingerprint_crc32: 7,
                offset: 42,
                anchors: vec![(0, 9)],
            }],
            journal: None,
        };
        save(&p, &f).unwrap();
        assert_eq!(load(&p).unwrap(), Some(f));
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
        fs::write(&p, b"positions:\n  /var/log/syslog: \"12\"\n").unwrap();
        let e = load(&p).unwrap_err();
        assert_eq!(e.code(), Exit::DataErr);
        assert!(e.to_string().contains("move it away"), "{e}");
        let e = save(&d.path().join("nope/positions.json"), &load_default()).unwrap_err();
        assert_eq!(e.code(), Exit::CantCreate);
    }

    #[test]
    fn the_journal_cursor_is_optional_and_read_back() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("positions.json");
        // A file from before the journal source: no journal field.
        fs::write(&p, br#"{"version":1,"saved_unix_seconds":2.0,"files":[]}"#).unwrap();
        assert_eq!(load(&p).unwrap(), Some(load_default_at(2.0)));
        save(&p, &load_default()).unwrap();
        assert!(
            !fs::read_to_string(&p).unwrap().contains("journal"),
            "left out when none"
        );
        let mut f = load_default();
        f.journal = Some(JournalCursor {
            directory: None,
            cursor: "s=1;i=2".into(),
        });
        save(&p, &f).unwrap();
        assert_eq!(load(&p).unwrap(), Some(f));
    }

    fn load_default_at(saved: f64) -> PositionsFile {
        PositionsFile {
            saved_unix_seconds: saved,
            ..load_default()
        }
    }

    /// Found while fuzzing (fuzz/fuzz_targets/log_tail_ship_positions.rs): an anchor near
    /// the end of time overflowed the stamp (a panic in test builds, a wrapped
    /// timestamp in release builds).
    #[test]
    fn an_anchor_at_the_end_of_time_gives_no_stamp() {
        assert_eq!(stamp(&[(0, u64::MAX)], 0), Some(u64::MAX));
        assert_eq!(stamp(&[(0, u64::MAX)], 5), None);
        assert_eq!(stamp(&[(10, u64::MAX - 2)], 12), Some(u64::MAX));
    }

    /// Found while writing the fuzz target: a saved time beyond what the clock holds
    /// made the start panic (Duration::from_secs_f64, then SystemTime + Duration). It
    /// is now a damaged positions file like any other (exit 65).
    #[test]
    fn a_saved_time_past_the_clock_is_a_damaged_file() {
        let p = Path::new("positions.json");
        for saved in ["1e300", "1e19", "18446744073709551616"] {
            let text = format!(r#"{{"version":1,"saved_unix_seconds":{saved},"files":[]}}"#);
            let e = parse(text.as_bytes(), p).unwrap_err();
            assert_eq!(e.code(), Exit::DataErr, "{saved}");
            assert!(e.to_string().contains("saved_unix_seconds"), "{e}");
            assert!(e.to_string().contains("move it away"), "{e}");
        }
        let ok = parse(
            br#"{"version":1,"saved_unix_seconds":1796544000.5,"files":[]}"#,
            p,
        )
        .unwrap();
        assert_eq!(
            ok.saved_at(),
            Some(UNIX_EPOCH + Duration::from_millis(1_796_544_000_500))
        );
    }

    #[test]
    fn parsable_but_impossible_values_are_bad_data_not_a_panic() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("positions.json");
        let entry = r#"{"path":"/var/log/syslog","dev":1,"ino":2,"fingerprint_bytes":256,"fingerprint_crc32":7,"offset":42,"anchors":ANCHORS}"#;
        let file = |saved: &str, anchors: &str| {
            format!(
                r#"{{"version":1,"saved_unix_seconds":{saved},"files":[{}]}}"#,
                entry.replace("ANCHORS", anchors)
            )
        };
        fs::write(&p, file("1765000000.5", "[[0,1765000000000000000]]")).unwrap();
        assert!(load(&p).unwrap().is_some(), "a sound file loads");
        for (saved, anchors, why) in [
            ("1e300", "[]", "saved_unix_seconds"),
            ("-1", "[]", "saved_unix_seconds"),
            ("1765000000", "[[0,18446744073709551615]]", "anchor"),
            ("1765000000", "[[10,1],[5,2]]", "ascending"),
            ("1765000000", "[[18446744073709551615,1]]", "offset"),
        ] {
            fs::write(&p, file(saved, anchors)).unwrap();
            let e = load(&p).unwrap_err();
            assert_eq!(e.code(), Exit::DataErr, "{saved} {anchors}");
            assert!(
                e.to_string().contains(why) && e.to_string().contains("move it away"),
                "{e}"
            );
        }
        fs::write(
            &p,
            file("1", "[]").replace("\"fingerprint_bytes\":256", "\"fingerprint_bytes\":4294967295"),
        )
        .unwrap();
        assert_eq!(load(&p).unwrap_err().code(), Exit::DataErr);
    }

    fn load_default() -> PositionsFile {
        PositionsFile {
            version: VERSION,
            saved_unix_seconds: 0.0,
            files: vec![],
            journal: None,
        }
    }
}
