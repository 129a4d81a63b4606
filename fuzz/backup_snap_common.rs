// Shared by the backup_snap_* targets (included with `include!`): an unencrypted
// repository made once in a temporary directory, into which each input is written
// as a file named by its content's hash, so the real readers (which take a path and
// check the name) read it.

use std::path::PathBuf;
use std::sync::OnceLock;

use backup_snap::repo::{DEFAULT_PACK_SIZE, Repo};

fn repo() -> &'static Repo {
    static REPO: OnceLock<Repo> = OnceLock::new();
    REPO.get_or_init(|| {
        // One per process (libFuzzer exits without dropping it); those of processes
        // that are gone are removed here.
        let tmp = std::env::temp_dir();
        if let Ok(dir) = std::fs::read_dir(&tmp) {
            for d in dir.flatten() {
                let name = d.file_name();
                let pid = name
                    .to_str()
                    .and_then(|n| n.strip_prefix("hlt-fuzz-backup-snap-"));
                if pid.is_some_and(|p| !std::path::Path::new("/proc").join(p).exists()) {
                    let _ = std::fs::remove_dir_all(d.path());
                }
            }
        }
        let dir: PathBuf = tmp.join(format!("hlt-fuzz-backup-snap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Repo::init(&dir, None, DEFAULT_PACK_SIZE).expect("init a scratch repository")
    })
}

/// Writes `data` where a file named by `id` is read from; removed when dropped.
struct Placed(PathBuf);

impl Placed {
    fn new(path: PathBuf, data: &[u8]) -> Placed {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the input's directory");
        }
        std::fs::write(&path, data).expect("write the input");
        Placed(path)
    }
}

impl Drop for Placed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
