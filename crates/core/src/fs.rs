//! Files written so that a reader (node_exporter's textfile collector, the next run
//! of a tool, a restore) sees the old content or the new, never half of either: the
//! one atomic write every tool uses.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A failed [`write_atomic`]: what was being done (`creating`, `writing`, `setting
/// the mode of`, `renaming`), to which temporary file, and why. The temporary file
/// is already gone; the caller puts it in its own words and exit code.
#[derive(Debug)]
pub struct WriteError {
    pub doing: &'static str,
    pub tmp: PathBuf,
    pub err: io::Error,
}

/// A temporary name beside `path` (`dir/.name.PID.tmp`): in the same directory, so
/// the rename stays on one file system, and hidden from globs such as `*.prom`.
pub fn tmp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_dir(path).join(format!(".{name}.{}.tmp", std::process::id()))
}

/// The directory `path` is in (`.` for a bare name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Flushes a directory's entries (a rename or a new file in it) to disk; best effort,
/// as not every file system can.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes `parts` one after the other to `dest` atomically: into `tmp` (on the same
/// file system), fsync, `mode` set exactly when given (the umask may have narrowed
/// it, and another user may read the file), rename over `dest`, fsync of `dest`'s
/// directory.
pub fn write_atomic(dest: &Path, tmp: &Path, parts: &[&[u8]], mode: Option<u32>) -> Result<(), WriteError> {
    let fail = |doing: &'static str, err: io::Error| {
        let _ = fs::remove_file(tmp);
        WriteError {
            doing,
            tmp: tmp.to_path_buf(),
            err,
        }
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if let Some(m) = mode {
        options.mode(m);
    }
    let mut f = options.open(tmp).map_err(|e| fail("creating", e))?;
    parts
        .iter()
        .try_for_each(|p| f.write_all(p))
        .and_then(|_| f.sync_all())
        .map_err(|e| fail("writing", e))?;
    if let Some(m) = mode {
        f.set_permissions(fs::Permissions::from_mode(m))
            .map_err(|e| fail("setting the mode of", e))?;
    }
    drop(f);
    fs::rename(tmp, dest).map_err(|e| fail("renaming", e))?;
    sync_dir(&parent_dir(dest));
    Ok(())
}

/// Reads a secret (a password, a token, `user:password`) from the file a flag named
/// `what` gives: its first line, trimmed, so that `echo secret > file` works. An
/// unreadable file is an I/O error, an empty one a configuration error (78); the
/// secret itself is never in a message.
pub fn read_secret(path: &Path, what: &str) -> Result<String, crate::Error> {
    let text = fs::read_to_string(path)
        .map_err(|e| crate::Error::io(format!("reading {what} {}", path.display()), e))?;
    let line = text.lines().next().unwrap_or("").trim().to_string();
    if line.is_empty() {
        return Err(
            crate::Error::config(format!("{what} {} is empty", path.display()))
                .hint("put the secret on the file's first line"),
        );
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_with_the_mode_and_leaves_no_temporary_file() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("x.prom");
        let tmp = tmp_beside(&dest);
        assert_eq!(tmp.parent(), Some(d.path()));
        assert!(tmp.file_name().unwrap().to_string_lossy().starts_with(".x.prom."));
        fs::write(&dest, b"old").unwrap();
        write_atomic(&dest, &tmp, &[b"new", b"\n"], Some(0o644)).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new\n");
        assert_eq!(fs::metadata(&dest).unwrap().permissions().mode() & 0o777, 0o644);
        assert!(!tmp.exists());
    }

    #[test]
    fn secrets_are_the_first_line_and_never_empty() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s");
        fs::write(&p, " hunter2 \nrest\n").unwrap();
        assert_eq!(read_secret(&p, "--x-file").unwrap(), "hunter2");
        fs::write(&p, "\n").unwrap();
        let e = read_secret(&p, "--x-file").unwrap_err();
        assert_eq!(e.code(), crate::Exit::Config);
        let e = read_secret(&d.path().join("none"), "--x-file").unwrap_err();
        assert_eq!(e.code(), crate::Exit::NoInput);
        assert!(e.to_string().starts_with("reading --x-file "), "{e}");
    }

    #[test]
    fn a_failure_names_the_step_and_removes_the_temporary_file() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("missing-dir").join("x");
        let tmp = d.path().join(".x.tmp");
        // The rename fails: the directory of dest does not exist.
        let e = write_atomic(&dest, &tmp, &[b"x"], None).unwrap_err();
        assert_eq!(e.doing, "renaming");
        assert_eq!(e.err.kind(), io::ErrorKind::NotFound);
        assert!(!tmp.exists());
        let e = write_atomic(&dest, &dest, &[b"x"], None).unwrap_err();
        assert_eq!(e.doing, "creating");
    }
}
