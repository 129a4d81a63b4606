//! Root-prefixed paths: every read of /proc, /sys, /dev, /run, /etc and
//! /var/lib/docker goes through a [`Root`], so tests point a tool at a fixture tree and
//! a tool in a container reads the host's files under `/host`.
//!
//! The read helpers never panic. Their errors are short strings that name the file as
//! the system sees it (`/sys/class/thermal/thermal_zone0/temp: ...`), ready to go into
//! a record's `errors` array.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::exit::{Error, Exit, describe_io};

/// The largest sysfs or procfs attribute read by [`Root::read`]; anything longer is not
/// the file we expect (a sysfs attribute is at most one page).
pub const SMALL_FILE_LIMIT: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    base: PathBuf,
}

impl Default for Root {
    fn default() -> Self {
        Root::new("/")
    }
}

impl Root {
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Root { base: base.into() }
    }

    /// Checks that the root is a directory, for a clear error up front.
    pub fn open(base: impl Into<PathBuf>) -> Result<Self, Error> {
        let base = base.into();
        match fs::metadata(&base) {
            Ok(m) if m.is_dir() => Ok(Root { base }),
            Ok(_) => Err(Error::new(
                Exit::NoInput,
                format!("--root {} is not a directory", base.display()),
            )
            .hint("give the directory that holds proc/ and sys/ (e.g. /host)")),
            Err(e) => Err(Error::io(format!("--root {}", base.display()), e)
                .hint("give the directory that holds proc/ and sys/ (e.g. /host)")),
        }
    }

    /// True when the root is the real `/` (not a fixture or a bind mount).
    pub fn is_host(&self) -> bool {
        self.base == Path::new("/")
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The real path of `abs` (an absolute path as the system sees it) under the root.
    pub fn path(&self, abs: impl AsRef<Path>) -> PathBuf {
        let abs = abs.as_ref();
        let rel = abs.strip_prefix("/").unwrap_or(abs);
        if rel.as_os_str().is_empty() {
            self.base.clone()
        } else {
            self.base.join(rel)
        }
    }

    /// The inverse of [`Root::path`]: how the system names a real path under the root.
    pub fn display(&self, real: &Path) -> String {
        match real.strip_prefix(&self.base) {
            Ok(rel) => format!("/{}", rel.display()),
            Err(_) => real.display().to_string(),
        }
    }

    /// Reads a small file (at most [`SMALL_FILE_LIMIT`] bytes).
    pub fn read(&self, abs: impl AsRef<Path>) -> Result<Vec<u8>, ReadError> {
        self.read_limited(abs, SMALL_FILE_LIMIT)
    }

    /// Reads a file of at most `limit` bytes; a longer one is an error, not a truncation.
    pub fn read_limited(&self, abs: impl AsRef<Path>, limit: u64) -> Result<Vec<u8>, ReadError> {
        let abs = abs.as_ref();
        let err = |kind: ReadErrorKind| ReadError {
            path: abs.display().to_string(),
            kind,
        };
        let f = fs::File::open(self.path(abs)).map_err(|e| err(ReadErrorKind::Io(e)))?;
        let mut buf = Vec::new();
        f.take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| err(ReadErrorKind::Io(e)))?;
        if buf.len() as u64 > limit {
            return Err(err(ReadErrorKind::TooLarge(limit)));
        }
        Ok(buf)
    }

    /// Reads a small UTF-8 file.
    pub fn read_string(&self, abs: impl AsRef<Path>) -> Result<String, ReadError> {
        let abs = abs.as_ref();
        let bytes = self.read(abs)?;
        String::from_utf8(bytes).map_err(|_| ReadError {
            path: abs.display().to_string(),
            kind: ReadErrorKind::NotUtf8,
        })
    }

    /// Reads a small UTF-8 file without surrounding whitespace and NULs.
    pub fn read_trimmed(&self, abs: impl AsRef<Path>) -> Result<String, ReadError> {
        let s = self.read_string(abs)?;
        Ok(s.trim_matches(|c: char| c.is_whitespace() || c == '\0')
            .to_string())
    }

    /// Reads a one-value file (a sysfs attribute) and parses it.
    pub fn read_value<T: FromStr>(&self, abs: impl AsRef<Path>) -> Result<T, ReadError> {
        let abs = abs.as_ref();
        let s = self.read_trimmed(abs)?;
        s.parse().map_err(|_| ReadError {
            path: abs.display().to_string(),
            kind: ReadErrorKind::Parse(s),
        })
    }

    /// Names in a directory, sorted naturally (`hwmon2` before `hwmon10`). A missing
    /// directory is an empty list: optional hardware is normal.
    pub fn list(&self, abs: impl AsRef<Path>) -> Vec<String> {
        let Ok(rd) = fs::read_dir(self.path(abs)) else {
            return Vec::new();
        };
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort_by(|a, b| natural_cmp(a, b));
        names
    }

    /// Whether `abs` exists under the root (without following a dangling link).
    pub fn exists(&self, abs: impl AsRef<Path>) -> bool {
        fs::symlink_metadata(self.path(abs)).is_ok()
    }
}

/// A failed read of one file: which file, and what was wrong with it.
#[derive(Debug)]
pub struct ReadError {
    pub path: String,
    pub kind: ReadErrorKind,
}

#[derive(Debug)]
pub enum ReadErrorKind {
    Io(io::Error),
    TooLarge(u64),
    NotUtf8,
    Parse(String),
}

impl ReadError {
    /// True when the file is simply not there (optional hardware, not an error).
    pub fn is_not_found(&self) -> bool {
        matches!(&self.kind, ReadErrorKind::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            ReadErrorKind::Io(e) => write!(f, "{}: {}", self.path, describe_io(e)),
            ReadErrorKind::TooLarge(n) => {
                write!(f, "{}: larger than {n} bytes, not a value file", self.path)
            }
            ReadErrorKind::NotUtf8 => write!(f, "{}: not UTF-8 text", self.path),
            ReadErrorKind::Parse(s) => {
                let mut shown: String = s.chars().take(40).collect();
                if shown.len() < s.len() {
                    shown.push('…');
                }
                write!(f, "{}: unexpected content {shown:?}", self.path)
            }
        }
    }
}

impl std::error::Error for ReadError {}

/// Compares names with embedded numbers by value: `cpu2` < `cpu10`.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(s: &str) -> (&str, Option<u64>) {
        let i = s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        (&s[..i], s[i..].parse().ok())
    }
    let (pa, na) = split(a);
    let (pb, nb) = split(b);
    pa.cmp(pb).then(na.cmp(&nb)).then(a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_under_the_root() {
        let r = Root::new("/fix");
        assert_eq!(r.path("/sys/class"), PathBuf::from("/fix/sys/class"));
        assert_eq!(r.path("/"), PathBuf::from("/fix"));
        assert_eq!(r.display(Path::new("/fix/proc/meminfo")), "/proc/meminfo");
        assert!(Root::new("/").is_host());
        assert_eq!(Root::new("/").path("/proc"), PathBuf::from("/proc"));
    }

    #[test]
    fn reads_values_and_reports_errors_by_system_path() {
        let d = tempfile::tempdir().unwrap();
        let r = Root::new(d.path());
        fs::create_dir_all(d.path().join("sys")).unwrap();
        fs::write(d.path().join("sys/temp"), "59300\n").unwrap();
        fs::write(d.path().join("sys/bad"), "abc\n").unwrap();
        fs::write(d.path().join("sys/bin"), [0xff, 0xfe, b'1']).unwrap();
        fs::write(d.path().join("sys/huge"), vec![b'1'; 70_000]).unwrap();
        fs::create_dir(d.path().join("sys/dir")).unwrap();
        assert_eq!(r.read_value::<i64>("/sys/temp").unwrap(), 59300);
        let e = r.read_value::<i64>("/sys/bad").unwrap_err().to_string();
        assert_eq!(e, "/sys/bad: unexpected content \"abc\"");
        let e = r.read_value::<i64>("/sys/bin").unwrap_err().to_string();
        assert_eq!(e, "/sys/bin: not UTF-8 text");
        let e = r.read_value::<i64>("/sys/huge").unwrap_err().to_string();
        assert!(e.contains("larger than"), "{e}");
        let e = r.read_value::<i64>("/sys/dir").unwrap_err().to_string();
        assert_eq!(e, "/sys/dir: is a directory");
        let e = r.read_value::<i64>("/sys/none").unwrap_err();
        assert!(e.is_not_found());
    }

    #[test]
    fn lists_naturally_and_missing_is_empty() {
        let d = tempfile::tempdir().unwrap();
        for n in ["hwmon10", "hwmon2", "hwmon1"] {
            fs::create_dir(d.path().join(n)).unwrap();
        }
        let r = Root::new(d.path());
        assert_eq!(r.list("/"), ["hwmon1", "hwmon2", "hwmon10"]);
        assert!(r.list("/nope").is_empty());
    }

    #[test]
    fn open_checks_the_directory() {
        assert_eq!(Root::open("/nonexistent-root").unwrap_err().code(), Exit::NoInput);
        assert!(Root::open("/").is_ok());
    }
}
