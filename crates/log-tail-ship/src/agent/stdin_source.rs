//! Standard input as a source: its lines into the pipe, stamped with the time they
//! were read (kept increasing).

use std::io;
use std::os::fd::BorrowedFd;

use homelab_core::{Error, Result};

use super::pipe::Pipe;
use crate::pipeline::{SourceId, StreamId, merge_labels};
use crate::sink::now_ns;
use crate::stdin::StdinLines;

pub(super) struct StdinSource {
    lines: StdinLines,
    stream: StreamId,
    source: SourceId,
    last_ns: u64,
}

impl StdinSource {
    /// Standard input with the static labels alone.
    pub fn new(pipe: &mut Pipe, static_labels: &[(String, String)]) -> StdinSource {
        let labels = merge_labels(static_labels, &[]);
        StdinSource {
            lines: StdinLines::default(),
            stream: pipe.streams.id(&labels),
            source: pipe.stats.source("stdin"),
            last_ns: 0,
        }
    }

    /// Whether the input has ended.
    pub fn eof(&self) -> bool {
        self.lines.eof
    }

    /// What to wait on while the input goes on.
    pub fn fd<'a>(&self, stdin: &'a io::Stdin) -> Option<BorrowedFd<'a>> {
        use std::os::fd::AsFd;
        (!self.lines.eof).then(|| stdin.as_fd())
    }

    /// Takes what is available (one read; the caller polled first) into the pipe.
    pub fn read(&mut self, pipe: &mut Pipe) -> Result<()> {
        self.lines
            .fill(&mut io::stdin().lock())
            .map_err(|e| Error::io("reading standard input", e))?;
        // Read time, once per read: every line in it was there now.
        let read_ns = now_ns();
        while let Some((line, cut)) = self.lines.next_line(pipe.max_line) {
            let ts = read_ns.max(self.last_ns + 1);
            self.last_ns = ts;
            pipe.line(self.stream, self.source, ts, line, cut)?;
        }
        Ok(())
    }
}
