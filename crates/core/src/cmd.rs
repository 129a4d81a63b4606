//! Running a helper command (vcgencmd, fstrim, pg_dump) with a time limit: the
//! command runs in its own process group and the whole group is killed at the limit,
//! so a hung helper never hangs a cron job.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

/// Most a helper may print; more is cut (a helper's answer is a few lines).
const OUTPUT_LIMIT: u64 = 1024 * 1024;

#[derive(Debug)]
pub struct CmdOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

#[derive(Debug)]
pub enum CmdError {
    /// The program is not there (or not executable).
    NotFound,
    /// Starting or reading it failed.
    Io(io::Error),
    /// It ran past the limit and was killed.
    TimedOut(Duration),
}

impl std::fmt::Display for CmdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CmdError::NotFound => f.write_str("not found"),
            CmdError::Io(e) => f.write_str(&crate::exit::describe_io(e)),
            CmdError::TimedOut(d) => write!(f, "no answer within {}", humantime::format_duration(*d)),
        }
    }
}

/// Runs `program args...` with stdin closed and waits at most `limit`.
pub fn run(program: &Path, args: &[&str], limit: Duration) -> Result<CmdOutput, CmdError> {
    // Looked up first rather than inferred from spawn's error: under qemu-user (the
    // aarch64 test run) spawning a missing program "succeeds" and the child exits 127.
    let program = resolve(program).ok_or(CmdError::NotFound)?;
    let mut child = Command::new(&program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => CmdError::NotFound,
            _ => CmdError::Io(e),
        })?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(p) = pipe {
                let _ = p.take(OUTPUT_LIMIT).read_to_end(&mut s);
            }
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = reader(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = reader(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let status = match child.wait_timeout(limit) {
        Ok(Some(status)) => status,
        Ok(None) => {
            kill_group(child.id());
            let _ = child.wait();
            let _ = (out.join(), err.join());
            return Err(CmdError::TimedOut(limit));
        }
        Err(e) => {
            kill_group(child.id());
            let _ = child.wait();
            return Err(CmdError::Io(e));
        }
    };
    // A grandchild may still hold the pipes open; don't wait for it.
    kill_group(child.id());
    Ok(CmdOutput {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    }
}

/// Finds `name` in `$PATH` (None when absent), like `command -v`.
pub fn which(name: &str) -> Option<PathBuf> {
    resolve(Path::new(name))
}

/// A path with a slash as it is (when it is a file), a bare name through `$PATH`.
fn resolve(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 || program.is_absolute() {
        return program.is_file().then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn captures_output_and_status() {
        let o = run(
            Path::new("/bin/sh"),
            &["-c", "echo out; echo err >&2; exit 3"],
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(o.stdout, "out\n");
        assert_eq!(o.stderr, "err\n");
        assert_eq!(o.status.code(), Some(3));
    }

    #[test]
    fn kills_a_hung_command_and_its_children() {
        let t = Instant::now();
        let e = run(
            Path::new("/bin/sh"),
            &["-c", "sleep 30 & sleep 30"],
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(matches!(e, CmdError::TimedOut(_)));
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn missing_program() {
        assert!(matches!(
            run(Path::new("/nonexistent/vcgencmd"), &[], Duration::from_secs(1)),
            Err(CmdError::NotFound)
        ));
        assert!(which("sh").is_some());
        assert!(which("surely-not-a-command-here").is_none());
    }
}
