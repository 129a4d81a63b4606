//! The systemd journal as a source (`--journal`, `--journal-dir`): entries read from
//! `journalctl --output=json --follow --after-cursor=CURSOR`, labelled by unit,
//! syslog identifier and priority, stamped with the journal's own time.
//!
//! Each entry's cursor is remembered as read ([`Journal::processed`]) and moves to
//! [`Journal::acked`] only when the sink accepted everything read before it; the
//! positions file keeps the acknowledged one, and a restart follows the journal again
//! after it. journalctl's JSON lines are parsed by [`parse_entry`], a pure function of
//! bytes.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use homelab_core::exit::describe_io;
use homelab_core::{Error, Exit, Result};
use serde::Deserialize;

use crate::pipeline::{SourceId, StreamId, Streams, merge_labels};
use crate::positions::JournalCursor;

/// The fields asked of journalctl: the line and the labels (journalctl adds the
/// cursor and the timestamps itself).
const FIELDS: &str = "MESSAGE,_SYSTEMD_UNIT,SYSLOG_IDENTIFIER,PRIORITY";
/// How much journalctl's output is read at once.
const CHUNK: usize = 64 * 1024;
/// Pauses before journalctl is started again after it ended.
const MIN_RESTART: Duration = Duration::from_secs(1);
const MAX_RESTART: Duration = Duration::from_secs(30);
/// The priorities' names, as syslog(3) and journalctl -p have them.
const PRIORITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// An entry's own labels: unit, syslog identifier, priority.
type LabelKey = (Option<String>, Option<String>, Option<&'static str>);

/// One journal entry, as far as log-tail-ship uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub cursor: String,
    /// `__REALTIME_TIMESTAMP` (microseconds) in nanoseconds.
    pub time_ns: u64,
    /// `MESSAGE` (its first value if it has several; bytes if it is not UTF-8);
    /// empty when the entry has none.
    pub message: Vec<u8>,
    /// `_SYSTEMD_UNIT`, through [`unit_label`].
    pub unit: Option<String>,
    pub syslog_identifier: Option<String>,
    /// `PRIORITY` as its name (`err`, `info`, ...).
    pub priority: Option<&'static str>,
}

/// A field's value in journalctl's JSON: a string, an array of bytes (not UTF-8, or
/// with control characters), or an array of values (a field given more than once).
/// `null` stands for a value left out (too large without `--all`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Field {
    Text(String),
    Bytes(Vec<u8>),
    Many(Vec<Option<Field>>),
}

impl Field {
    /// The first value's bytes.
    fn bytes(&self) -> Option<&[u8]> {
        match self {
            Field::Text(s) => Some(s.as_bytes()),
            Field::Bytes(b) => Some(b),
            Field::Many(v) => v.iter().flatten().find_map(Field::bytes),
        }
    }

    fn text(&self) -> Option<String> {
        self.bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .filter(|s| !s.is_empty())
    }
}

#[derive(Debug, Deserialize)]
struct RawEntry {
    #[serde(rename = "__CURSOR")]
    cursor: Option<String>,
    #[serde(rename = "__REALTIME_TIMESTAMP")]
    realtime: Option<String>,
    #[serde(rename = "MESSAGE")]
    message: Option<Field>,
    #[serde(rename = "_SYSTEMD_UNIT")]
    unit: Option<Field>,
    #[serde(rename = "SYSLOG_IDENTIFIER")]
    syslog_identifier: Option<Field>,
    #[serde(rename = "PRIORITY")]
    priority: Option<Field>,
}

/// Parses one line of `journalctl --output=json`. The error says what is wrong
/// with the line.
pub fn parse_entry(line: &[u8]) -> std::result::Result<Entry, String> {
    let raw: RawEntry =
        serde_json::from_slice(line).map_err(|e| format!("not a journal entry in JSON ({e})"))?;
    let cursor = raw
        .cursor
        .filter(|c| !c.is_empty() && !c.contains(['\n', '\0']))
        .ok_or("an entry without __CURSOR")?;
    let time_ns = raw
        .realtime
        .and_then(|t| t.parse::<u64>().ok())
        .and_then(|us| us.checked_mul(1000))
        .ok_or("an entry without a valid __REALTIME_TIMESTAMP")?;
    Ok(Entry {
        cursor,
        time_ns,
        message: raw
            .message
            .as_ref()
            .and_then(Field::bytes)
            .map(<[u8]>::to_vec)
            .unwrap_or_default(),
        unit: raw
            .unit
            .as_ref()
            .and_then(Field::text)
            .map(|u| unit_label(&u).into_owned()),
        syslog_identifier: raw.syslog_identifier.as_ref().and_then(Field::text),
        priority: raw
            .priority
            .as_ref()
            .and_then(Field::bytes)
            .and_then(priority_name),
    })
}

/// `PRIORITY` (0 to 7) as its name.
pub fn priority_name(p: &[u8]) -> Option<&'static str> {
    match p {
        [d @ b'0'..=b'7'] => Some(PRIORITIES[usize::from(d - b'0')]),
        _ => None,
    }
}

/// A unit's name as a label: units made one per session or per run (`session-42.scope`,
/// `run-u17.service`, `docker-<id>.scope`) lose their number, so the label keeps a
/// handful of values; every other unit keeps its name.
pub fn unit_label(unit: &str) -> Cow<'_, str> {
    let Some((stem, kind)) = unit.rsplit_once('.') else {
        return Cow::Borrowed(unit);
    };
    let Some((prefix, id)) = stem.split_once('-') else {
        return Cow::Borrowed(unit);
    };
    let numbered = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    let transient = match (prefix, kind) {
        (_, "scope") => true,
        ("run", "service" | "timer") => id.strip_prefix(['u', 'r', 'p']).is_some_and(numbered),
        _ => false,
    };
    if transient {
        Cow::Owned(format!("{prefix}.{kind}"))
    } else {
        Cow::Borrowed(unit)
    }
}

/// Which journal to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Where {
    /// The system journal (under `--root` when that is not `/`).
    System { root: Option<PathBuf> },
    /// Journal files in a directory (`--journal-dir`, journalctl `--directory`).
    Directory(PathBuf),
}

impl Where {
    /// How the positions file names it: `null` for the system journal.
    fn key(&self) -> Option<String> {
        match self {
            Where::System { .. } => None,
            Where::Directory(d) => Some(d.display().to_string()),
        }
    }

    fn args(&self) -> Vec<OsString> {
        // --merge: without it, --follow shows the current boot only, and an entry of
        // the boot before written after the saved cursor would never be read.
        let mut a: Vec<OsString> = vec!["--merge".into()];
        match self {
            Where::System { root: Some(r) } => {
                let mut arg = OsString::from("--root=");
                arg.push(r);
                a.push(arg);
            }
            Where::System { root: None } => {}
            Where::Directory(d) => {
                let mut arg = OsString::from("--directory=");
                arg.push(d);
                a.push(arg);
            }
        }
        a
    }

    fn describe(&self) -> String {
        match self {
            Where::System { .. } => "the system journal".into(),
            Where::Directory(d) => format!("the journal in {}", d.display()),
        }
    }
}

/// journalctl's output split into lines; a line longer than the limit is skipped
/// to its end.
#[derive(Debug, Default)]
struct LineBuf {
    buf: Vec<u8>,
    head: usize,
    skipping: bool,
}

/// One line out of [`LineBuf::next_line`]: the line, or that one too long was skipped.
type Line<'a> = std::result::Result<&'a [u8], ()>;

impl LineBuf {
    /// One read from `r` (at most [`CHUNK`] bytes); 0 at its end.
    fn read_from(&mut self, r: &mut impl Read) -> io::Result<usize> {
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
        } else if self.head > CHUNK {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + CHUNK, 0);
        let got = r.read(&mut self.buf[len..]);
        self.buf.truncate(len + *got.as_ref().unwrap_or(&0));
        got
    }

    fn next_line(&mut self, max: usize) -> Option<Line<'_>> {
        loop {
            let pending = &self.buf[self.head..];
            let Some(nl) = memchr::memchr(b'\n', pending) else {
                if self.skipping || pending.len() > max {
                    self.head = self.buf.len();
                    if !std::mem::replace(&mut self.skipping, true) {
                        return Some(Err(()));
                    }
                }
                return None;
            };
            let start = self.head;
            self.head += nl + 1;
            if std::mem::take(&mut self.skipping) || nl == 0 {
                continue;
            }
            return Some(Ok(&self.buf[start..start + nl]));
        }
    }
}

/// A running journalctl and what it has written but not yet been taken.
struct Process {
    child: Child,
    stdout: ChildStdout,
    /// Its last lines on stderr (for the error when it ends).
    stderr: Arc<Mutex<VecDeque<String>>>,
}

/// The journal source: journalctl, the lines it wrote, and the cursors.
pub struct Journal {
    program: PathBuf,
    place: Where,
    once: bool,
    process: Option<Process>,
    lines: LineBuf,
    /// Longest JSON line taken as an entry.
    max_json: usize,
    /// The cursor of the last entry handed to the sink.
    pub processed: Option<String>,
    /// The cursor of the last entry the sink acknowledged (what the positions file keeps).
    pub acked: Option<String>,
    /// `--once`: journalctl has written everything and ended.
    pub finished: bool,
    /// journalctl ended while following: started again at this time.
    pub restart_at: Option<Instant>,
    pause: Duration,
    /// Whether any entry came from the current journalctl.
    got_entry: bool,
    starts: u32,
    labels: HashMap<LabelKey, StreamId>,
    pub source: SourceId,
    /// Problems worth a warning (and a place in the summary's errors).
    pub notes: Vec<String>,
    pub invalid: u64,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("place", &self.place)
            .field("processed", &self.processed)
            .field("acked", &self.acked)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Starts following. Where to start: after the cursor in the positions file (when
    /// it names the same journal); else from the beginning with `from_beginning`;
    /// else after the journal's last entry now.
    pub fn open(
        program: PathBuf,
        place: Where,
        restored: Option<JournalCursor>,
        from_beginning: bool,
        once: bool,
        max_line: usize,
        source: SourceId,
    ) -> Result<Journal> {
        let mut place = place;
        if let Where::Directory(d) = &mut place {
            match std::fs::metadata(&*d) {
                // Named the same way whatever the working directory (the key of the cursor).
                Ok(m) if m.is_dir() => *d = std::fs::canonicalize(&*d).unwrap_or_else(|_| d.clone()),
                Ok(_) => {
                    return Err(Error::new(
                        Exit::NoInput,
                        format!("--journal-dir {} is not a directory", d.display()),
                    )
                    .hint("give the directory that holds the *.journal files"));
                }
                Err(e) => {
                    return Err(Error::new(
                        Exit::NoInput,
                        format!("--journal-dir {}: {}", d.display(), describe_io(&e)),
                    )
                    .hint("give the directory that holds the *.journal files"));
                }
            }
        }
        // Looked for first: where spawning a missing program is not an error of its
        // own (posix_spawn under qemu-user), it would only end with status 127.
        let found = find_program(&program);
        let mut j = Journal {
            program,
            place,
            once,
            process: None,
            lines: LineBuf::default(),
            max_json: max_line.saturating_mul(6).saturating_add(64 * 1024),
            processed: None,
            acked: None,
            finished: false,
            restart_at: None,
            pause: MIN_RESTART,
            got_entry: false,
            starts: 0,
            labels: HashMap::new(),
            source,
            notes: Vec::new(),
            invalid: 0,
        };
        if !found {
            return Err(j.spawn_error(&io::Error::from(io::ErrorKind::NotFound)));
        }
        let cursor = match restored {
            Some(r) if r.directory == j.place.key() => Some(r.cursor),
            Some(r) => {
                j.notes.push(format!(
                    "the journal cursor in --positions is for {}, not {}: starting as on a first run",
                    r.directory.as_deref().unwrap_or("the system journal"),
                    j.place.describe()
                ));
                None
            }
            None => None,
        };
        let cursor = match cursor {
            Some(c) => Some(c),
            None if from_beginning => None,
            None => j.last_cursor()?,
        };
        j.processed = cursor.clone();
        j.acked = cursor;
        j.start()?;
        Ok(j)
    }

    /// The acknowledged cursor for the positions file.
    pub fn position(&self) -> Option<JournalCursor> {
        self.acked.as_ref().map(|c| JournalCursor {
            directory: self.place.key(),
            cursor: c.clone(),
        })
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(self.place.args())
            .args(["--output=json", "--all", "--no-pager", "--quiet"])
            .arg(format!("--output-fields={FIELDS}"))
            .env_remove("SYSTEMD_PAGER")
            .stdin(Stdio::null());
        c
    }

    fn spawn_error(&self, e: &io::Error) -> Error {
        if e.kind() == io::ErrorKind::NotFound {
            Error::new(
                Exit::Unavailable,
                format!(
                    "--journal needs {}, which is not installed",
                    self.program.display()
                ),
            )
            .hint(
                "install systemd's journalctl (Debian: apt-get install systemd), or point --journalctl at it",
            )
        } else {
            Error::new(
                Exit::Unavailable,
                format!("starting {}: {}", self.program.display(), describe_io(e)),
            )
        }
    }

    /// The cursor of the journal's last entry (None when it is empty).
    fn last_cursor(&self) -> Result<Option<String>> {
        let out = self
            .command()
            .arg("--lines=1")
            .output()
            .map_err(|e| self.spawn_error(&e))?;
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            return Err(self.failed(out.status, why.lines().last().unwrap_or("")));
        }
        let last = out.stdout.split(|b| *b == b'\n').rfind(|l| !l.is_empty());
        match last {
            None => Ok(None),
            Some(l) => parse_entry(l).map(|e| Some(e.cursor)).map_err(|why| {
                Error::data(format!("{} wrote {why}", self.program.display()))
                    .hint("check that --journalctl is systemd's journalctl")
            }),
        }
    }

    fn failed(&self, status: ExitStatus, stderr: &str) -> Error {
        let status = match status.code() {
            Some(c) => format!("status {c}"),
            None => "a signal".to_string(),
        };
        let said = if stderr.trim().is_empty() {
            String::new()
        } else {
            format!(" ({})", stderr.trim())
        };
        Error::new(
            Exit::Unavailable,
            format!(
                "{} ended with {status} reading {}{said}",
                self.program.display(),
                self.place.describe()
            ),
        )
        .hint(
            "check that the journal is readable by this user (groups systemd-journal or adm); \
             a cursor journalctl refuses can be removed from --positions",
        )
    }

    /// Starts journalctl after the last entry read.
    fn start(&mut self) -> Result<()> {
        let mut c = self.command();
        if !self.once {
            c.arg("--follow");
        }
        // --no-tail: every entry after the cursor (or all), not the last ten.
        c.arg("--no-tail");
        if let Some(cursor) = &self.processed {
            c.arg(format!("--after-cursor={cursor}"));
        }
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(&e))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::bug("journalctl without a stdout pipe"))?;
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(err) = child.stderr.take() {
            let keep = Arc::clone(&stderr);
            let name = self.program.display().to_string();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    eprintln!("{}: {name}: {line}", crate::TOOL);
                    if let Ok(mut k) = keep.lock() {
                        if k.len() >= 3 {
                            k.pop_front();
                        }
                        k.push_back(line);
                    }
                }
            });
        }
        self.lines = LineBuf::default();
        self.got_entry = false;
        self.starts += 1;
        self.restart_at = None;
        self.process = Some(Process {
            child,
            stdout,
            stderr,
        });
        Ok(())
    }

    /// Starts journalctl again when its pause is over (a failure to start is noted,
    /// and tried again later).
    pub fn restart_if_due(&mut self) {
        if self.restart_at.is_none_or(|t| Instant::now() < t) {
            return;
        }
        if let Err(e) = self.start() {
            self.notes
                .push(format!("{e}; trying again in {} s", self.pause.as_secs()));
            self.restart_at = Some(Instant::now() + self.pause);
            self.pause = (self.pause * 2).min(MAX_RESTART);
        }
    }

    /// journalctl's output, to wait on.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.process.as_ref().map(|p| p.stdout.as_fd())
    }

    /// Reads what journalctl has written (one read; the caller polled first). At its
    /// end: with `--once` the source is finished, else journalctl is started again
    /// after a pause. An error when journalctl fails before it gave anything.
    pub fn fill(&mut self) -> Result<()> {
        let Some(p) = &mut self.process else {
            return Ok(());
        };
        let n = match self.lines.read_from(&mut p.stdout) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted || e.kind() == io::ErrorKind::WouldBlock => {
                return Ok(());
            }
            Err(e) => return Err(Error::io("reading journalctl's output", e)),
        };
        if n == 0 {
            self.ended()?;
        }
        Ok(())
    }

    fn ended(&mut self) -> Result<()> {
        let Some(mut p) = self.process.take() else {
            return Ok(());
        };
        let status = p
            .child
            .wait()
            .map_err(|e| Error::io("waiting for journalctl", e))?;
        // The stderr thread has the last lines once journalctl is gone; give it a moment.
        let deadline = Instant::now() + Duration::from_millis(200);
        let said = loop {
            let s: Vec<String> = p
                .stderr
                .lock()
                .map(|k| k.iter().cloned().collect())
                .unwrap_or_default();
            if !s.is_empty() || Instant::now() >= deadline || status.success() {
                break s.join("; ");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if self.once {
            if status.success() {
                self.finished = true;
                return Ok(());
            }
            return Err(self.failed(status, &said));
        }
        if !status.success() && self.starts == 1 && !self.got_entry {
            return Err(self.failed(status, &said));
        }
        self.notes.push(format!(
            "{}; starting it again in {} s after the last entry read",
            self.failed(status, &said).what(),
            self.pause.as_secs()
        ));
        self.restart_at = Some(Instant::now() + self.pause);
        self.pause = (self.pause * 2).min(MAX_RESTART);
        Ok(())
    }

    /// The next entry in what was read; an error for a line that is not one (it is
    /// skipped, the cursor stays).
    pub fn next_entry(&mut self) -> Option<std::result::Result<Entry, String>> {
        let line = match self.lines.next_line(self.max_json)? {
            Ok(l) => l,
            Err(()) => {
                self.invalid += 1;
                return Some(Err(format!(
                    "an entry of more than {} bytes of JSON: skipped",
                    self.max_json
                )));
            }
        };
        Some(match parse_entry(line) {
            Ok(e) => {
                self.got_entry = true;
                self.pause = MIN_RESTART;
                Ok(e)
            }
            Err(why) => {
                self.invalid += 1;
                let shown: String = String::from_utf8_lossy(line).chars().take(80).collect();
                Err(format!("{} wrote {why}: {shown:?}", self.program.display()))
            }
        })
    }

    /// The stream of an entry: the static labels, `job="journal"` unless `--label`
    /// sets a job, and the entry's unit, syslog identifier and priority.
    pub fn stream(
        &mut self,
        streams: &mut Streams,
        static_labels: &[(String, String)],
        e: &Entry,
    ) -> StreamId {
        let key = (e.unit.clone(), e.syslog_identifier.clone(), e.priority);
        if let Some(&id) = self.labels.get(&key) {
            return id;
        }
        let mut own: Vec<(&str, &str)> = vec![
            ("unit", e.unit.as_deref().unwrap_or("")),
            ("syslog_identifier", e.syslog_identifier.as_deref().unwrap_or("")),
            ("priority", e.priority.unwrap_or("")),
        ];
        if !static_labels.iter().any(|(k, _)| k == "job") {
            own.push(("job", "journal"));
        }
        let id = streams.id(&merge_labels(static_labels, &own));
        self.labels.insert(key, id);
        id
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // journalctl ends when its output is closed; reap it.
        if let Some(mut p) = self.process.take() {
            drop(p.stdout);
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

/// Whether `program` is an executable file: as a path when it has a slash, else in PATH.
fn find_program(program: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.as_os_str().as_encoded_bytes().contains(&b'/') {
        return runnable(program);
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| runnable(&d.join(program))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    // Lines as journalctl 252 writes them (-o json --all --output-fields=...).
    const PLAIN: &[u8] = br#"{"_BOOT_ID":"00000000000000000000000000000000","PRIORITY":"6","__CURSOR":"s=893b;i=3;b=0000;m=0;t=60a24181e4003;x=1fa9","__REALTIME_TIMESTAMP":"1700000000000003","__MONOTONIC_TIMESTAMP":"0","_SYSTEMD_UNIT":"nginx.service","SYSLOG_IDENTIFIER":"nginx","MESSAGE":"caf\u00e9 \"q\" \\ tab\t"}"#;
    const BINARY: &[u8] = br#"{"_SYSTEMD_UNIT":"session-4.scope","__CURSOR":"s=893b;i=1","__REALTIME_TIMESTAMP":"1700000000000001","SYSLOG_IDENTIFIER":"sshd","PRIORITY":"3","MESSAGE":[98,105,110,255,0,97,114,121,10,116,119,111]}"#;
    const MANY: &[u8] = br#"{"PRIORITY":"6","__CURSOR":"s=893b;i=2","__REALTIME_TIMESTAMP":"1700000000000002","MESSAGE":["one","two"],"SYSLOG_IDENTIFIER":[[97,0],"b"]}"#;

    #[test]
    fn parses_text_binary_and_repeated_fields() {
        let e = parse_entry(PLAIN).unwrap();
        assert_eq!(e.cursor, "s=893b;i=3;b=0000;m=0;t=60a24181e4003;x=1fa9");
        assert_eq!(e.time_ns, 1_700_000_000_000_003_000);
        assert_eq!(e.message, "café \"q\" \\ tab\t".as_bytes());
        assert_eq!(e.unit.as_deref(), Some("nginx.service"));
        assert_eq!(e.syslog_identifier.as_deref(), Some("nginx"));
        assert_eq!(e.priority, Some("info"));
        let e = parse_entry(BINARY).unwrap();
        assert_eq!(e.message, b"bin\xff\x00ary\ntwo");
        assert_eq!(e.unit.as_deref(), Some("session.scope"));
        assert_eq!(e.priority, Some("err"));
        let e = parse_entry(MANY).unwrap();
        assert_eq!(e.message, b"one");
        assert_eq!(e.syslog_identifier.as_deref(), Some("a\0"));
        assert_eq!((e.unit, e.priority), (None, Some("info")));
        // Left out (null, too large without --all) or missing: an empty line.
        let e = parse_entry(br#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"5","MESSAGE":null,"PRIORITY":"9"}"#)
            .unwrap();
        assert_eq!((e.message.len(), e.time_ns, e.priority), (0, 5000, None));
    }

    #[test]
    fn refuses_lines_that_are_not_entries() {
        for (line, why) in [
            (&b"garbage"[..], "not a journal entry"),
            (b"", "not a journal entry"),
            (b"\xff\xfe", "not a journal entry"),
            (b"[1,2]", "not a journal entry"),
            (
                br#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1""#,
                "not a journal entry",
            ),
            (
                br#"{"MESSAGE":"x","__REALTIME_TIMESTAMP":"1"}"#,
                "without __CURSOR",
            ),
            (
                br#"{"__CURSOR":"","__REALTIME_TIMESTAMP":"1"}"#,
                "without __CURSOR",
            ),
            (br#"{"__CURSOR":"c","MESSAGE":"x"}"#, "__REALTIME_TIMESTAMP"),
            (
                br#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"-1"}"#,
                "__REALTIME_TIMESTAMP",
            ),
            (
                br#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"99999999999999999999"}"#,
                "__REALTIME_TIMESTAMP",
            ),
            (
                br#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":1}"#,
                "not a journal entry",
            ),
        ] {
            let e = parse_entry(line).unwrap_err();
            assert!(e.contains(why), "{}: {e}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn unit_labels_drop_per_session_and_per_run_numbers() {
        for (unit, label) in [
            ("nginx.service", "nginx.service"),
            ("getty@tty1.service", "getty@tty1.service"),
            ("user@1000.service", "user@1000.service"),
            ("systemd-journald.service", "systemd-journald.service"),
            ("session-42.scope", "session.scope"),
            ("docker-0123abcd.scope", "docker.scope"),
            ("init.scope", "init.scope"),
            ("run-u17.service", "run.service"),
            ("run-r1f2e3d.service", "run.service"),
            ("run-docker-runtime.mount", "run-docker-runtime.mount"),
            ("run-user.service", "run-user.service"),
            ("noextension", "noextension"),
        ] {
            assert_eq!(unit_label(unit), label, "{unit}");
        }
        assert_eq!(priority_name(b"0"), Some("emerg"));
        assert_eq!(priority_name(b"7"), Some("debug"));
        assert_eq!(priority_name(b"8"), None);
        assert_eq!(priority_name(b"10"), None);
    }

    #[test]
    fn lines_are_split_and_an_over_long_one_is_skipped_to_its_end() {
        let mut b = LineBuf::default();
        let mut input: &[u8] = b"one\n\ntwo\n0123456789";
        assert_eq!(b.read_from(&mut input).unwrap(), 19);
        assert_eq!(b.next_line(8), Some(Ok(&b"one"[..])));
        assert_eq!(b.next_line(8), Some(Ok(&b"two"[..])));
        assert_eq!(b.next_line(8), Some(Err(())), "10 bytes without a newline yet");
        assert_eq!(b.next_line(8), None);
        let mut input: &[u8] = b"abc\nfour\npart";
        b.read_from(&mut input).unwrap();
        assert_eq!(
            b.next_line(8),
            Some(Ok(&b"four"[..])),
            "the rest of the long one skipped"
        );
        assert_eq!(b.next_line(8), None);
        let mut input: &[u8] = b"ial\n";
        b.read_from(&mut input).unwrap();
        assert_eq!(b.next_line(8), Some(Ok(&b"partial"[..])));
        assert_eq!(b.read_from(&mut &b""[..]).unwrap(), 0);
    }

    #[test]
    fn a_missing_directory_or_journalctl_is_a_clear_error() {
        let open = |dir: &Path| {
            Journal::open(
                PathBuf::from("/nonexistent/journalctl"),
                Where::Directory(dir.to_path_buf()),
                None,
                true,
                true,
                64,
                0,
            )
            .unwrap_err()
        };
        let e = open(Path::new("/nonexistent"));
        assert_eq!(e.code(), Exit::NoInput);
        assert!(find_program(Path::new("sh")) && find_program(Path::new("/bin/sh")));
        assert!(!find_program(Path::new("/nonexistent/journalctl")));
        assert!(!find_program(Path::new("no-such-program-here")));
        let d = tempfile::tempdir().unwrap();
        let plain = d.path().join("plain");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        assert!(!find_program(&plain), "not executable");
        let e = open(d.path());
        assert_eq!(e.code(), Exit::Unavailable);
        assert!(e.to_string().contains("not installed"), "{e}");
    }
}
