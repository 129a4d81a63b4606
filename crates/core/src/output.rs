//! Where records go: JSON lines on stdout (one object per line, flushed per line, in
//! the envelope `v, ts, host, tool, kind`), a Prometheus page on stdout and/or in the
//! textfile directory, or a table for a person. A tool hands everything to [`Output`]
//! and never formats JSON or Prometheus text itself.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;

use crate::args::{Format, OutputArgs};
use crate::exit::{Error, Result};
use crate::prom::{Page, write_textfile};
use crate::root::Root;
use crate::text::Table;

/// The envelope every JSON line carries, with the record's own fields flattened in.
#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    v: u32,
    ts: &'a str,
    host: &'a str,
    tool: &'a str,
    kind: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

/// RFC 3339 UTC with milliseconds and `Z`: `2026-11-26T06:00:00.123Z`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The host name records carry: the root's `/etc/hostname` when reading another root
/// (a container with `--root /host`), otherwise the kernel's host name.
pub fn host_name(root: &Root) -> String {
    if !root.is_host()
        && let Ok(h) = root.read_trimmed("/etc/hostname")
        && !h.is_empty()
    {
        return h;
    }
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Renders records and pages as the user asked.
pub struct Output<W: Write = io::Stdout> {
    tool: &'static str,
    host: String,
    format: Format,
    quiet: bool,
    textfile_dir: Option<PathBuf>,
    out: W,
    buf: Vec<u8>,
    ts: Option<String>,
    /// Rounds repeat (--interval): the text view marks or redraws each one.
    repeating: bool,
    rounds: u64,
    /// Standard output is a terminal: a repeated text view redraws in place.
    tty: bool,
}

impl Output<io::Stdout> {
    pub fn stdout(tool: &'static str, args: &OutputArgs, root: &Root) -> Self {
        let mut o = Output::new(tool, args, host_name(root), io::stdout());
        o.tty = io::IsTerminal::is_terminal(&io::stdout());
        o
    }
}

impl<W: Write> Output<W> {
    pub fn new(tool: &'static str, args: &OutputArgs, host: String, out: W) -> Self {
        Output {
            tool,
            host,
            format: args.format(),
            quiet: args.quiet,
            textfile_dir: args.textfile_dir.clone(),
            out,
            buf: Vec::with_capacity(4096),
            ts: None,
            repeating: false,
            rounds: 0,
            tty: false,
        }
    }

    /// Says that rounds repeat (`--interval`): in the text view each round then
    /// redraws the screen on a terminal (as `docker stats` does), and elsewhere is
    /// appended under a line with its time.
    pub fn set_repeating(&mut self, repeating: bool) {
        self.repeating = repeating;
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn tool(&self) -> &'static str {
        self.tool
    }

    /// Whether JSON lines are being written (jsonl format and not quiet): a tool can
    /// skip building records nobody reads.
    pub fn wants_records(&self) -> bool {
        self.format == Format::Jsonl && !self.quiet
    }

    /// Whether a Prometheus page is wanted this round (prom format or a textfile dir).
    pub fn wants_page(&self) -> bool {
        (self.format == Format::Prom && !self.quiet) || self.textfile_dir.is_some()
    }

    /// Fixes the `ts` of the records that follow (one timestamp for a whole round);
    /// `None` stamps each record when it is written.
    pub fn set_time(&mut self, t: Option<SystemTime>) {
        self.ts = t.map(rfc3339_millis);
    }

    /// Starts a round at `now`: its records carry that time and, with
    /// [`Output::set_repeating`], the text view marks or redraws the round.
    pub fn begin_round(&mut self, now: SystemTime) -> Result<()> {
        self.set_time(Some(now));
        if !(self.repeating && self.format == Format::Text && !self.quiet) {
            return Ok(());
        }
        let Some(ts) = &self.ts else { return Ok(()) };
        self.rounds += 1;
        let head = if self.tty {
            // Cursor home, then clear the screen: the round replaces the last one.
            "\x1b[H\x1b[2J".to_string()
        } else if self.rounds == 1 {
            format!("-- {ts}\n")
        } else {
            format!("\n-- {ts}\n")
        };
        self.out.write_all(head.as_bytes()).map_err(Error::stdout)
    }

    /// Writes one record as a JSON line (in jsonl format, unless quiet), flushed.
    pub fn record<T: Serialize>(&mut self, kind: &str, body: &T) -> Result<()> {
        if !self.wants_records() {
            return Ok(());
        }
        self.write_record(kind, body)
    }

    /// Writes one record as a JSON line whatever the format (unless quiet): for tools
    /// whose only output is records, such as a log line stream.
    pub fn write_record<T: Serialize>(&mut self, kind: &str, body: &T) -> Result<()> {
        self.write_record_unflushed(kind, body)?;
        if self.quiet {
            return Ok(());
        }
        self.out.flush().map_err(Error::stdout)
    }

    /// Writes one record as a JSON line, like [`Output::write_record`], without flushing:
    /// for a high-rate stream (log lines) that calls [`Output::flush`] once it has
    /// caught up with its input. `W` should then be buffered.
    pub fn write_record_unflushed<T: Serialize>(&mut self, kind: &str, body: &T) -> Result<()> {
        if self.quiet {
            return Ok(());
        }
        let now;
        let ts = match &self.ts {
            Some(ts) => ts.as_str(),
            None => {
                now = rfc3339_millis(SystemTime::now());
                now.as_str()
            }
        };
        let env = Envelope {
            v: crate::SCHEMA_VERSION,
            ts,
            host: &self.host,
            tool: self.tool,
            kind,
            body,
        };
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, &env)
            .map_err(|e| Error::bug(format!("serialising a {kind} record: {e}")))?;
        self.buf.push(b'\n');
        self.out.write_all(&self.buf).map_err(Error::stdout)
    }

    /// Flushes what [`Output::write_record_unflushed`] wrote.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(Error::stdout)
    }

    /// Delivers a finished page: to the textfile directory when one is set, and to
    /// stdout in prom format (unless quiet). The page is complete before any byte of
    /// it is written.
    pub fn page(&mut self, page: &Page) -> Result<()> {
        if !self.wants_page() {
            return Ok(());
        }
        let text = page.render();
        if let Some(dir) = &self.textfile_dir {
            write_textfile(dir, self.tool, &text)?;
        }
        if self.format == Format::Prom && !self.quiet {
            self.out.write_all(text.as_bytes()).map_err(Error::stdout)?;
            self.out.flush().map_err(Error::stdout)?;
        }
        Ok(())
    }

    /// Prints a table (in text format, unless quiet).
    pub fn table(&mut self, table: &Table) -> Result<()> {
        if self.format != Format::Text || self.quiet {
            return Ok(());
        }
        self.out
            .write_all(table.render().as_bytes())
            .map_err(Error::stdout)?;
        self.out.flush().map_err(Error::stdout)
    }

    /// Writes free text to stdout (unless quiet), e.g. a blank line between tables.
    pub fn raw(&mut self, text: &str) -> Result<()> {
        if self.quiet {
            return Ok(());
        }
        self.out.write_all(text.as_bytes()).map_err(Error::stdout)?;
        self.out.flush().map_err(Error::stdout)
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Rec {
        temp_celsius: Option<f64>,
        errors: Vec<String>,
    }

    fn out(format: Format, quiet: bool) -> Output<Vec<u8>> {
        let args = OutputArgs {
            format: Some(format),
            quiet,
            textfile_dir: None,
        };
        Output::new("t", &args, "pi".into(), Vec::new())
    }

    #[test]
    fn json_line_has_the_envelope_and_nulls() {
        let mut o = out(Format::Jsonl, false);
        o.set_time(Some(
            SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_500),
        ));
        o.record(
            "sample",
            &Rec {
                temp_celsius: None,
                errors: vec!["x".into()],
            },
        )
        .unwrap();
        let s = String::from_utf8(o.into_inner()).unwrap();
        assert_eq!(
            s,
            "{\"v\":1,\"ts\":\"1970-01-01T00:00:01.500Z\",\"host\":\"pi\",\"tool\":\"t\",\"kind\":\"sample\",\"temp_celsius\":null,\"errors\":[\"x\"]}\n"
        );
    }

    #[test]
    fn quiet_and_prom_formats_write_no_records() {
        let mut o = out(Format::Prom, false);
        o.record(
            "sample",
            &Rec {
                temp_celsius: Some(1.0),
                errors: vec![],
            },
        )
        .unwrap();
        let mut p = Page::new();
        p.gauge("a", "A.").sample(&[], 1.0);
        o.page(&p).unwrap();
        assert_eq!(
            String::from_utf8(o.into_inner()).unwrap(),
            "# HELP a A.\n# TYPE a gauge\na 1\n"
        );
        let mut o = out(Format::Jsonl, true);
        o.record(
            "sample",
            &Rec {
                temp_celsius: Some(1.0),
                errors: vec![],
            },
        )
        .unwrap();
        o.page(&p).unwrap();
        assert!(o.into_inner().is_empty());
    }

    #[test]
    fn repeated_text_rounds_are_marked_with_their_time_or_redrawn() {
        let t0 = SystemTime::UNIX_EPOCH;
        let round = |o: &mut Output<Vec<u8>>, secs: u64| {
            o.begin_round(t0 + std::time::Duration::from_secs(secs)).unwrap();
            o.raw("table\n").unwrap();
        };
        let mut o = out(Format::Text, false);
        o.set_repeating(true);
        round(&mut o, 0);
        round(&mut o, 30);
        assert_eq!(
            String::from_utf8(o.into_inner()).unwrap(),
            "-- 1970-01-01T00:00:00.000Z\ntable\n\n-- 1970-01-01T00:00:30.000Z\ntable\n"
        );
        let mut o = out(Format::Text, false);
        o.set_repeating(true);
        o.tty = true;
        round(&mut o, 0);
        round(&mut o, 30);
        assert_eq!(
            String::from_utf8(o.into_inner()).unwrap(),
            "\x1b[H\x1b[2Jtable\n\x1b[H\x1b[2Jtable\n"
        );
        // One round, JSON lines, quiet: nothing added.
        for (format, quiet, repeating) in [
            (Format::Text, false, false),
            (Format::Jsonl, false, true),
            (Format::Text, true, true),
        ] {
            let mut o = out(format, quiet);
            o.set_repeating(repeating);
            o.begin_round(t0).unwrap();
            assert!(
                o.into_inner().is_empty(),
                "{format:?} quiet={quiet} repeating={repeating}"
            );
        }
    }

    #[test]
    fn unflushed_records_reach_the_writer_on_flush() {
        let args = OutputArgs::default();
        let mut o = Output::new("t", &args, "pi".into(), io::BufWriter::new(Vec::new()));
        o.set_time(Some(SystemTime::UNIX_EPOCH));
        o.write_record_unflushed(
            "line",
            &Rec {
                temp_celsius: None,
                errors: vec![],
            },
        )
        .unwrap();
        o.flush().unwrap();
        let s = String::from_utf8(o.into_inner().into_inner().unwrap()).unwrap();
        assert!(
            s.ends_with("\"kind\":\"line\",\"temp_celsius\":null,\"errors\":[]}\n"),
            "{s}"
        );
    }

    #[test]
    fn stamps_are_rfc3339_millis_utc() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_672_800_123);
        assert_eq!(rfc3339_millis(t), "2026-11-26T06:00:00.123Z");
    }
}
