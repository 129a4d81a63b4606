//! The systemd journal as a source (journalctl, followed): its entries into the pipe,
//! and its cursor for the positions file, kept as it was when this run does not read
//! the journal.

use std::os::fd::BorrowedFd;
use std::time::Instant;

use homelab_core::Result;

use super::bookkeeping::{Bookkeeping, warn};
use super::pipe::Pipe;
use crate::Cli;
use crate::journal::{self, Journal};
use crate::positions::JournalCursor;

pub(super) struct JournalSource {
    journal: Option<Journal>,
    /// A cursor read from the positions file and kept when this run has no journal
    /// source.
    kept: Option<JournalCursor>,
}

/// Whether the journal is a source (--journal, or --journal-dir alone).
pub(super) fn wanted(cli: &Cli) -> bool {
    cli.journal || cli.journal_dir.is_some()
}

impl JournalSource {
    /// Starts journalctl after `restored` (the positions file's cursor) if the journal
    /// is wanted; otherwise keeps the cursor.
    pub fn open(
        cli: &Cli,
        restored: Option<JournalCursor>,
        pipe: &mut Pipe,
        book: &mut Bookkeeping,
    ) -> Result<JournalSource> {
        if !wanted(cli) {
            return Ok(JournalSource {
                journal: None,
                kept: restored,
            });
        }
        let place = match &cli.journal_dir {
            Some(d) => journal::Where::Directory(d.clone()),
            None => journal::Where::System {
                root: (cli.root.root != std::path::Path::new("/")).then(|| cli.root.root.clone()),
            },
        };
        let source = pipe.stats.source("journal");
        let j = Journal::open(
            cli.journalctl.clone(),
            place,
            restored,
            cli.from_beginning,
            cli.once,
            pipe.max_line,
            source,
        )?;
        // A cursor found at the start is saved at once.
        book.dirty |= j.acked.is_some();
        let mut s = JournalSource {
            journal: Some(j),
            kept: None,
        };
        s.notes(book);
        Ok(s)
    }

    /// Whether there is nothing more to wait for from it (no journal, or --once read
    /// to its end).
    pub fn done(&self) -> bool {
        self.journal.as_ref().is_none_or(|j| j.finished)
    }

    /// What to wait on.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.journal.as_ref().and_then(Journal::fd)
    }

    /// When journalctl, ended, is to be started again.
    pub fn restart_at(&self) -> Option<Instant> {
        self.journal.as_ref().and_then(|j| j.restart_at)
    }

    /// Starts journalctl again if it ended and its pause is over.
    pub fn restart_if_due(&mut self, book: &mut Bookkeeping) {
        if let Some(j) = &mut self.journal {
            j.restart_if_due();
            self.notes(book);
        }
    }

    /// The cursor for the positions file.
    pub fn position(&self) -> Option<JournalCursor> {
        match &self.journal {
            Some(j) => j.position(),
            None => self.kept.clone(),
        }
    }

    /// Every entry read is accepted: returns whether the acknowledged cursor moved.
    pub fn ack(&mut self) -> bool {
        match &mut self.journal {
            Some(j) if j.acked != j.processed => {
                j.acked.clone_from(&j.processed);
                true
            }
            _ => false,
        }
    }

    /// Takes what journalctl wrote (one read) into the pipe, entry by entry.
    pub fn read(
        &mut self,
        pipe: &mut Pipe,
        static_labels: &[(String, String)],
        book: &mut Bookkeeping,
    ) -> Result<()> {
        let Some(j) = &mut self.journal else {
            return Ok(());
        };
        j.fill()?;
        while let Some(next) = j.next_entry() {
            match next {
                Ok(e) => {
                    let stream = j.stream(&mut pipe.streams, static_labels, &e);
                    pipe.line(stream, j.source, e.time_ns, &e.message, false)?;
                    j.processed = Some(e.cursor);
                }
                Err(why) => {
                    if book.warn_due_or("journal", j.invalid == 1) {
                        warn(&format!("{why} (skipped; {} so far)", j.invalid));
                    }
                    if j.invalid == 1 {
                        book.errors.push(why);
                    }
                }
            }
        }
        self.notes(book);
        Ok(())
    }

    /// journalctl's own warnings, on stderr and in the summary.
    fn notes(&mut self, book: &mut Bookkeeping) {
        if let Some(j) = &mut self.journal {
            for n in j.notes.drain(..) {
                book.error(n);
            }
        }
    }
}
