//! `restore`: contents and metadata of a snapshot under a target directory.
//!
//! The manifest is treated as hostile input: every path is checked to stay inside
//! the target (no `..`, no empty or `.` components, no NUL), and nothing is written
//! through a symlink: every parent is checked to be a real directory before
//! anything is created in it, files are created with O_EXCL|O_NOFOLLOW, and
//! metadata is set on the open file or without following links.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use homelab_core::{Error, Exit, Result};
use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

use crate::progress::Progress;
use crate::repo::{Index, PackReader, Repo};
use crate::snapshot::{Entry, Kind};

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Counts {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub special: u64,
    pub bytes: u64,
    pub errors: Vec<String>,
}

/// The path of an entry under the target, or why it is refused.
pub fn safe_relative(path: &[u8]) -> std::result::Result<PathBuf, String> {
    let shown = String::from_utf8_lossy(path);
    if path.contains(&0) {
        return Err(format!("{shown}: refused: a NUL byte in the path"));
    }
    let trimmed = path.strip_prefix(b"/").unwrap_or(path);
    let mut rel = PathBuf::new();
    for comp in trimmed.split(|b| *b == b'/') {
        if comp.is_empty() || comp == b"." || comp == b".." {
            return Err(format!("{shown}: refused: the path would leave the target"));
        }
        rel.push(OsStr::from_bytes(comp));
    }
    if rel.as_os_str().is_empty() {
        return Err(format!("{shown}: refused: an empty path"));
    }
    Ok(rel)
}

/// Whether `path` (bytes) is `sub` or inside it.
pub fn within(path: &[u8], sub: &[u8]) -> bool {
    let sub = sub.strip_suffix(b"/").unwrap_or(sub);
    sub.is_empty() || path == sub || (path.starts_with(sub) && path.get(sub.len()) == Some(&b'/'))
}

struct Restorer<'a> {
    repo: &'a Repo,
    index: &'a Index,
    reader: PackReader<'a>,
    target: PathBuf,
    root: bool,
    counts: Counts,
    /// Entry path -> where its data was restored (for hard links).
    restored_files: HashMap<Vec<u8>, PathBuf>,
    progress: Progress,
}

pub fn run(
    repo: &Repo,
    index: &Index,
    tree: &[Entry],
    target: &Path,
    subpath: Option<&[u8]>,
) -> Result<Counts> {
    fs::create_dir_all(target)
        .map_err(|e| Error::io(format!("creating the target {}", target.display()), e))?;
    let target = fs::canonicalize(target)
        .map_err(|e| Error::io(format!("resolving the target {}", target.display()), e))?;
    let selected: Vec<&Entry> = tree
        .iter()
        .filter(|e| subpath.is_none_or(|s| within(&e.path, s)))
        .collect();
    if selected.is_empty() {
        return Err(Error::new(
            Exit::NoInput,
            format!(
                "nothing in the snapshot under {}",
                String::from_utf8_lossy(subpath.unwrap_or_default())
            ),
        )
        .hint("give --path an absolute path as `list` and the snapshot show it"));
    }
    let by_path: HashMap<&[u8], &Entry> = tree.iter().map(|e| (e.path.as_slice(), e)).collect();
    let mut r = Restorer {
        repo,
        index,
        reader: PackReader::new(repo),
        target,
        root: nix::unistd::geteuid().is_root(),
        counts: Counts::default(),
        restored_files: HashMap::new(),
        progress: Progress::new("restore"),
    };
    let mut dirs: Vec<(&Entry, PathBuf)> = Vec::new();
    for e in &selected {
        let rel = match safe_relative(&e.path) {
            Ok(r) => r,
            Err(msg) => {
                r.counts.errors.push(msg);
                continue;
            }
        };
        let dest = r.target.join(&rel);
        if let Err(msg) = r.prepare_parents(&rel) {
            r.counts.errors.push(msg);
            continue;
        }
        let outcome = match e.kind {
            Kind::Dir => r.dir(&dest).map(|()| dirs.push((e, dest.clone()))),
            Kind::File => r.file(e, &dest),
            Kind::Hardlink => {
                let first = e.target.as_deref().unwrap_or_default();
                match r.restored_files.get(first).cloned() {
                    Some(src) => r.hardlink(&src, &dest),
                    // The data's first path is not restored: restore the data here.
                    None => match by_path.get(first) {
                        Some(orig) if orig.kind == Kind::File => {
                            let mut copy = (*orig).clone();
                            copy.path = e.path.clone();
                            copy.mode = e.mode;
                            r.file(&copy, &dest)
                        }
                        _ => Err(format!(
                            "{}: its hard link target is not in the snapshot",
                            e.path_lossy()
                        )),
                    },
                }
            }
            Kind::Symlink => r.symlink(e, &dest),
            Kind::Fifo | Kind::Char | Kind::Block => r.special(e, &dest),
        };
        if let Err(msg) = outcome {
            r.counts.errors.push(msg);
        }
    }
    // Directory metadata last, deepest first: writing into a directory changes its
    // mtime, and a read-only mode would stop the restore of its contents.
    dirs.sort_by_key(|(_, d)| std::cmp::Reverse(d.components().count()));
    for (e, dest) in dirs {
        if let Err(msg) = r.metadata_path(e, &dest, true) {
            r.counts.errors.push(msg);
        }
    }
    r.progress.finish();
    Ok(r.counts)
}

impl Restorer<'_> {
    /// Creates missing parents and checks that every existing one is a real
    /// directory (not a symlink someone, or the manifest, put there).
    fn prepare_parents(&self, rel: &Path) -> std::result::Result<(), String> {
        let mut cur = self.target.clone();
        let comps: Vec<_> = rel.components().collect();
        for c in &comps[..comps.len().saturating_sub(1)] {
            cur.push(c);
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(format!(
                        "{}: refused: a parent is not a directory (a symlink?), nothing is written through it",
                        cur.display()
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::DirBuilder::new()
                        .mode(0o700)
                        .create(&cur)
                        .map_err(|e| format!("{}: {}", cur.display(), describe(&e)))?;
                }
                Err(e) => return Err(format!("{}: {}", cur.display(), describe(&e))),
            }
        }
        Ok(())
    }

    /// Removes what is in the way at `dest` (never following a symlink).
    fn clear(&self, dest: &Path, keep_dir: bool) -> std::result::Result<(), String> {
        match fs::symlink_metadata(dest) {
            Ok(m) if m.is_dir() && keep_dir => Ok(()),
            Ok(m) if m.is_dir() => {
                fs::remove_dir_all(dest).map_err(|e| format!("{}: {}", dest.display(), describe(&e)))
            }
            Ok(_) => fs::remove_file(dest).map_err(|e| format!("{}: {}", dest.display(), describe(&e))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("{}: {}", dest.display(), describe(&e))),
        }
    }

    fn dir(&mut self, dest: &Path) -> std::result::Result<(), String> {
        self.clear(dest, true)?;
        if !dest.is_dir() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(dest)
                .map_err(|e| format!("{}: {}", dest.display(), describe(&e)))?;
        }
        self.counts.dirs += 1;
        Ok(())
    }

    fn file(&mut self, e: &Entry, dest: &Path) -> std::result::Result<(), String> {
        self.clear(dest, false)?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(dest)
            .map_err(|err| format!("{}: {}", dest.display(), describe(&err)))?;
        let mut written = 0u64;
        for id in e.chunk_ids() {
            let data = self
                .reader
                .chunk(self.index, &id)
                .map_err(|err| format!("{}: {err}", e.path_lossy()))?;
            // All-zero chunks become holes: sparse files stay sparse.
            if data.iter().all(|b| *b == 0) {
                f.seek(SeekFrom::Current(data.len() as i64))
                    .map_err(|err| format!("{}: {}", dest.display(), describe(&err)))?;
            } else {
                f.write_all(&data)
                    .map_err(|err| format!("{}: {}", dest.display(), describe(&err)))?;
            }
            written += data.len() as u64;
            self.counts.bytes += data.len() as u64;
            self.progress.update(self.counts.files, self.counts.bytes, 0);
        }
        f.set_len(written)
            .map_err(|err| format!("{}: {}", dest.display(), describe(&err)))?;
        if written != e.size {
            return Err(format!(
                "{}: restored {written} bytes, the snapshot says {}",
                e.path_lossy(),
                e.size
            ));
        }
        self.metadata_file(e, &f, dest)?;
        let _ = self.repo; // the reader holds the repository
        self.counts.files += 1;
        self.restored_files.insert(e.path.clone(), dest.to_path_buf());
        Ok(())
    }

    fn hardlink(&mut self, src: &Path, dest: &Path) -> std::result::Result<(), String> {
        self.clear(dest, false)?;
        fs::hard_link(src, dest).map_err(|err| format!("{}: {}", dest.display(), describe(&err)))?;
        self.counts.hardlinks += 1;
        Ok(())
    }

    fn symlink(&mut self, e: &Entry, dest: &Path) -> std::result::Result<(), String> {
        self.clear(dest, false)?;
        let t = e.target.as_deref().unwrap_or_default();
        std::os::unix::fs::symlink(OsStr::from_bytes(t), dest)
            .map_err(|err| format!("{}: {}", dest.display(), describe(&err)))?;
        self.metadata_path(e, dest, false)?;
        self.counts.symlinks += 1;
        Ok(())
    }

    fn special(&mut self, e: &Entry, dest: &Path) -> std::result::Result<(), String> {
        self.clear(dest, false)?;
        let kind = match e.kind {
            Kind::Fifo => SFlag::S_IFIFO,
            Kind::Char => SFlag::S_IFCHR,
            _ => SFlag::S_IFBLK,
        };
        nix::sys::stat::mknod(dest, kind, Mode::from_bits_truncate(0o600), e.rdev.unwrap_or(0))
            .map_err(|err| format!("{}: {}", dest.display(), err.desc().to_lowercase()))?;
        self.metadata_path(e, dest, true)?;
        self.counts.special += 1;
        Ok(())
    }

    fn metadata_file(&self, e: &Entry, f: &File, dest: &Path) -> std::result::Result<(), String> {
        if self.root {
            std::os::unix::fs::fchown(f, Some(e.uid), Some(e.gid))
                .map_err(|err| format!("{}: owner: {}", dest.display(), describe(&err)))?;
        }
        // After chown, which clears setuid and setgid.
        f.set_permissions(fs::Permissions::from_mode(e.mode))
            .map_err(|err| format!("{}: mode: {}", dest.display(), describe(&err)))?;
        let t = mtime(e);
        f.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
            .map_err(|err| format!("{}: times: {}", dest.display(), describe(&err)))
    }

    /// Owner, mode and times by path, never following a symlink at `dest`.
    fn metadata_path(&self, e: &Entry, dest: &Path, chmod: bool) -> std::result::Result<(), String> {
        if self.root {
            std::os::unix::fs::lchown(dest, Some(e.uid), Some(e.gid))
                .map_err(|err| format!("{}: owner: {}", dest.display(), describe(&err)))?;
        }
        if chmod {
            // The entry is a directory or special file we created (not a symlink).
            fs::set_permissions(dest, fs::Permissions::from_mode(e.mode))
                .map_err(|err| format!("{}: mode: {}", dest.display(), describe(&err)))?;
        }
        let ts = TimeSpec::new(e.mtime, e.mtime_nsec as i64);
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            dest,
            &ts,
            &ts,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|err| format!("{}: times: {}", dest.display(), err.desc().to_lowercase()))
    }
}

fn mtime(e: &Entry) -> SystemTime {
    if e.mtime >= 0 {
        UNIX_EPOCH + Duration::new(e.mtime as u64, e.mtime_nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(e.mtime.unsigned_abs()) + Duration::from_nanos(e.mtime_nsec as u64)
    }
}

fn describe(e: &io::Error) -> String {
    homelab_core::exit::describe_io(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths_are_refused() {
        for bad in [
            &b"/../etc/passwd"[..],
            b"/a/../../x",
            b"/a//b",
            b"/",
            b"",
            b"/a/./b",
            b"/a\0b",
            b"..",
        ] {
            assert!(safe_relative(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(safe_relative(b"/srv/app/x").unwrap(), PathBuf::from("srv/app/x"));
        assert_eq!(
            safe_relative(b"/a/\xff\xfe").unwrap().as_os_str().as_bytes(),
            b"a/\xff\xfe"
        );
    }

    #[test]
    fn subpaths() {
        assert!(within(b"/srv/app", b"/srv"));
        assert!(within(b"/srv", b"/srv/"));
        assert!(!within(b"/srv2", b"/srv"));
        assert!(within(b"/anything", b"/"));
    }
}
