//! The error type, the exit codes (sysexits, plus the Nagios 0/1/2 of `--check`),
//! and the `main` glue every binary shares.

use std::fmt;
use std::io;
use std::process::ExitCode;

/// Exit status of a tool. The numbers are the contract in docs/conventions.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Exit {
    /// Success; `--check` found everything fine; a broken pipe on stdout.
    Ok = 0,
    /// `--check`: a warning threshold was crossed.
    Warning = 1,
    /// `--check`: a critical threshold was crossed.
    Critical = 2,
    /// Usage error: bad flags or arguments.
    Usage = 64,
    /// Bad input data.
    DataErr = 65,
    /// An input (file, path, snapshot, container) does not exist.
    NoInput = 66,
    /// A service is unavailable (Docker socket, Loki, proxy).
    Unavailable = 69,
    /// Internal error: a bug.
    Software = 70,
    /// Cannot create an output file.
    CantCreate = 73,
    /// I/O error.
    IoErr = 74,
    /// Temporary failure; retrying later may work.
    TempFail = 75,
    /// Permission denied.
    NoPerm = 77,
    /// Configuration error.
    Config = 78,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Every exit status and its meaning, for man pages and `--help`.
pub const EXIT_CODES: &[(Exit, &str)] = &[
    (
        Exit::Ok,
        "success (also: --check found everything fine; standard output was closed early, as by head)",
    ),
    (Exit::Warning, "--check: a warning threshold was crossed"),
    (Exit::Critical, "--check: a critical threshold was crossed"),
    (Exit::Usage, "usage error: an unknown flag or a bad value"),
    (Exit::DataErr, "bad input data"),
    (
        Exit::NoInput,
        "an input (file, path, snapshot, container) does not exist",
    ),
    (
        Exit::Unavailable,
        "a service is unavailable (Docker socket, Loki, proxy)",
    ),
    (Exit::Software, "internal error (a bug: please report it)"),
    (
        Exit::CantCreate,
        "cannot create an output file (e.g. in --textfile-dir)",
    ),
    (Exit::IoErr, "input/output error"),
    (Exit::TempFail, "temporary failure; retrying later may work"),
    (Exit::NoPerm, "permission denied"),
    (Exit::Config, "configuration error"),
];

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

/// A fatal error: what went wrong, what to do about it, and the exit code.
///
/// Rendered as `<tool>: <what went wrong>: <what to do>` by [`main`].
#[derive(Debug)]
pub struct Error {
    code: Exit,
    what: String,
    hint: Option<String>,
    broken_pipe: bool,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: Exit, what: impl Into<String>) -> Self {
        Error {
            code,
            what: what.into(),
            hint: None,
            broken_pipe: false,
        }
    }

    /// Adds what the user can do about it.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn usage(what: impl Into<String>) -> Self {
        Error::new(Exit::Usage, what)
    }

    pub fn data(what: impl Into<String>) -> Self {
        Error::new(Exit::DataErr, what)
    }

    pub fn config(what: impl Into<String>) -> Self {
        Error::new(Exit::Config, what)
    }

    pub fn bug(what: impl Into<String>) -> Self {
        Error::new(Exit::Software, what)
    }

    /// An I/O error while doing `doing` (e.g. "reading /etc/plan"), with the exit code
    /// chosen from the error kind: missing input 66, permission 77, otherwise 74.
    /// A broken pipe becomes a silent success.
    pub fn io(doing: impl fmt::Display, err: io::Error) -> Self {
        let code = match err.kind() {
            io::ErrorKind::NotFound => Exit::NoInput,
            io::ErrorKind::PermissionDenied => Exit::NoPerm,
            _ => Exit::IoErr,
        };
        let mut e = Error::new(code, format!("{doing}: {}", describe_io(&err)));
        e.broken_pipe = err.kind() == io::ErrorKind::BrokenPipe;
        if code == Exit::NoPerm {
            e = e.hint("run as a user who may read it, or as root");
        }
        e
    }

    /// An I/O error writing to stdout: a broken pipe (`tool | head -1`) is success.
    pub fn stdout(err: io::Error) -> Self {
        Error::io("writing to standard output", err)
    }

    pub fn code(&self) -> Exit {
        self.code
    }

    pub fn what(&self) -> &str {
        &self.what
    }

    pub fn is_broken_pipe(&self) -> bool {
        self.broken_pipe
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)?;
        if let Some(h) = &self.hint {
            write!(f, ": {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// An `io::Error` without Rust's "(os error 2)" suffix, in the words of strerror.
pub fn describe_io(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_lowercase(),
        None => err.to_string(),
    }
}

/// The whole of a binary's `main`: parse the arguments (usage errors exit 64, `--help`
/// and `--version` exit 0), run, print a fatal error as one line on stderr, map it to
/// its exit code; a broken pipe exits 0 and a panic 70.
pub fn main<C, F>(run: F) -> ExitCode
where
    C: clap::Parser,
    F: FnOnce(C) -> Result<Exit>,
{
    let cmd = short_examples(C::command());
    let tool = cmd.get_name().to_string();
    let cli = match parse::<C>(cmd, std::env::args_os()) {
        Ok(cli) => cli,
        Err(code) => return code.into(),
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(cli)));
    match outcome {
        Ok(Ok(code)) => code.into(),
        Ok(Err(e)) if e.is_broken_pipe() => Exit::Ok.into(),
        Ok(Err(e)) => {
            eprintln!("{tool}: {e}");
            e.code().into()
        }
        Err(_) => {
            eprintln!("{tool}: internal error (a bug): please report it with the message above");
            Exit::Software.into()
        }
    }
}

/// `-h` shows the first three of the examples `--help` shows (a tool's
/// `after_long_help` starts with "Examples:"), unless the tool chose its own.
fn short_examples(cmd: clap::Command) -> clap::Command {
    fn first_three(long: &str) -> Option<String> {
        let body = long.strip_prefix("Examples:\n")?;
        let picked: Vec<&str> = body.split("\n\n").take(3).collect();
        Some(format!("Examples (more with --help):\n{}", picked.join("\n\n")))
    }
    let mut cmd = cmd;
    if cmd.get_after_help().is_none()
        && let Some(short) = cmd
            .get_after_long_help()
            .and_then(|h| first_three(&h.to_string()))
    {
        cmd = cmd.after_help(short);
    }
    cmd
}

/// Parses arguments the way [`main`] does; returns the exit code to use when parsing
/// ends the program (help, version, usage error). Public for tests.
pub fn parse<C: clap::Parser>(
    cmd: clap::Command,
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> std::result::Result<C, Exit> {
    use clap::error::ErrorKind;
    let result = cmd
        .try_get_matches_from(args)
        .and_then(|m| C::from_arg_matches(&m));
    match result {
        Ok(cli) => Ok(cli),
        Err(err) => {
            // A closed stdout while printing help is still success; nothing else to do.
            let _ = err.print();
            match err.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Err(Exit::Ok),
                _ => Err(Exit::Usage),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_sysexits() {
        let e = Error::io("reading x", io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(e.code(), Exit::NoInput);
        assert_eq!(e.what(), "reading x: no such file or directory");
        let e = Error::io("reading x", io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(e.code(), Exit::NoPerm);
        let e = Error::io("reading x", io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(e.code(), Exit::IoErr);
        assert!(Error::stdout(io::Error::from(io::ErrorKind::BrokenPipe)).is_broken_pipe());
    }

    #[test]
    fn display_is_what_then_hint() {
        let e = Error::new(Exit::Unavailable, "cannot connect to /run/docker.sock")
            .hint("start dockerd or set DOCKER_HOST");
        assert_eq!(
            e.to_string(),
            "cannot connect to /run/docker.sock: start dockerd or set DOCKER_HOST"
        );
    }

    #[derive(clap::Parser, Debug)]
    #[command(name = "t", version)]
    struct T {
        #[arg(long)]
        n: u32,
    }

    #[test]
    fn clap_errors_exit_64_help_exits_0() {
        let p = |a: &[&str]| parse::<T>(<T as clap::CommandFactory>::command(), a.iter().map(Into::into));
        assert_eq!(p(&["t", "--n", "x"]).unwrap_err(), Exit::Usage);
        assert_eq!(p(&["t", "--bogus"]).unwrap_err(), Exit::Usage);
        assert_eq!(p(&["t", "--version"]).unwrap_err(), Exit::Ok);
        assert_eq!(p(&["t", "--n", "3"]).unwrap().n, 3);
    }
}
