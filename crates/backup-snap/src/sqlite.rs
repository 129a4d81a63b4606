//! A consistent copy of a live SQLite database through SQLite's online backup API,
//! checked with `PRAGMA integrity_check`. A plain copy of a database in WAL mode
//! (n8n's) can miss committed transactions that are still in the `-wal` file, or
//! catch a half-written page.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

/// How long a busy database may keep the copy waiting.
pub const BUSY_LIMIT: Duration = Duration::from_secs(60);

/// Copies `src` into the new file `dst` (which must not exist) in one step, under
/// one read transaction, so the copy is one consistent state of the database.
pub fn copy(src: &Path, dst: &Path, stop: &AtomicBool) -> Result<(), String> {
    let from = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("opening the database: {e}"))?;
    let mut to = Connection::open(dst).map_err(|e| format!("creating the copy: {e}"))?;
    {
        let backup = Backup::new(&from, &mut to).map_err(|e| format!("starting the backup: {e}"))?;
        let start = Instant::now();
        loop {
            if stop.load(Ordering::SeqCst) {
                return Err("interrupted".into());
            }
            // -1: every page in one step, holding the read lock throughout.
            match backup.step(-1).map_err(|e| format!("copying: {e}"))? {
                StepResult::Done => break,
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked => {
                    if start.elapsed() > BUSY_LIMIT {
                        return Err(format!(
                            "the database stayed locked for {}s",
                            BUSY_LIMIT.as_secs()
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {}
            }
        }
    }
    check(&to)?;
    to.close().map_err(|(_, e)| format!("closing the copy: {e}"))?;
    Ok(())
}

/// `PRAGMA integrity_check` must answer exactly "ok".
pub fn check(conn: &Connection) -> Result<(), String> {
    let mut stmt = conn
        .prepare("PRAGMA integrity_check")
        .map_err(|e| format!("integrity_check: {e}"))?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(|e| format!("integrity_check: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("integrity_check: {e}"))?;
    if rows == ["ok"] {
        Ok(())
    } else {
        Err(format!("integrity_check of the copy failed: {}", rows.join("; ")))
    }
}

/// Files SQLite keeps beside a database, which the copy makes unneeded (and which
/// would be wrong beside the copy when restored).
pub fn companions(db: &[u8]) -> [Vec<u8>; 3] {
    [b"-wal".as_slice(), b"-shm", b"-journal"].map(|s| [db, s].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_a_wal_database_and_checks_it() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("db.sqlite");
        let c = Connection::open(&src).unwrap();
        c.pragma_update(None, "journal_mode", "wal").unwrap();
        c.execute_batch("create table t(x); insert into t values (1),(2),(3);")
            .unwrap();
        let dst = d.path().join("copy");
        copy(&src, &dst, &AtomicBool::new(false)).unwrap();
        let n: i64 = Connection::open(&dst)
            .unwrap()
            .query_row("select count(*) from t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3, "rows still in the -wal file are in the copy");
        drop(c);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("db.sqlite");
        std::fs::write(&src, vec![0x55u8; 8192]).unwrap();
        let e = copy(&src, &d.path().join("copy"), &AtomicBool::new(false)).unwrap_err();
        assert!(e.contains("not a database") || e.contains("copying"), "{e}");
    }

    #[test]
    fn companion_names() {
        assert_eq!(companions(b"/a/db")[0], b"/a/db-wal");
    }
}
