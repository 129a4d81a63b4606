//! Standard input as a source: lines as they come, no positions (a pipe cannot be
//! re-read), an unterminated last line shipped at the end of input.

use std::io::{self, Read};

/// Lines split out of what stdin delivered.
#[derive(Debug, Default)]
pub struct StdinLines {
    buf: crate::tail::ChunkBuf,
    head: usize,
    skipping: bool,
    pub eof: bool,
}

/// One line out of [`StdinLines::next_line`]: its bytes and whether it was cut.
pub type Line<'a> = (&'a [u8], bool);

impl StdinLines {
    /// Reads what is available (one read(2); the caller polled stdin first).
    pub fn fill(&mut self, r: &mut impl Read) -> io::Result<()> {
        let n = crate::tail::append_chunk(&mut self.buf, &mut self.head, |b| r.read(b))?;
        if n == 0 {
            self.eof = true;
        }
        Ok(())
    }

    /// The next line in the buffer (at most `max` bytes; longer lines come cut and the
    /// rest is skipped), or the unterminated rest once the input has ended.
    pub fn next_line(&mut self, max: usize) -> Option<Line<'_>> {
        loop {
            let pending = &self.buf[self.head..];
            if let Some(nl) = memchr::memchr(b'\n', pending) {
                let start = self.head;
                self.head += nl + 1;
                if self.skipping {
                    self.skipping = false;
                    continue;
                }
                return Some((&self.buf[start..start + nl], false));
            }
            if self.skipping {
                self.head = self.buf.len();
                return None;
            }
            if pending.len() >= max {
                let start = self.head;
                self.head = self.buf.len();
                self.skipping = true;
                return Some((&self.buf[start..start + max], true));
            }
            if self.eof && !pending.is_empty() {
                let start = self.head;
                self.head = self.buf.len();
                return Some((&self.buf[start..], false));
            }
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cuts_and_ships_the_last_unterminated_line() {
        let mut s = StdinLines::default();
        // A whole line in the buffer comes whole (the pipeline cuts it); only a line
        // longer than the limit without its newline yet comes cut.
        let mut input: &[u8] = b"a\nbb\ncccccccccc\nd";
        s.fill(&mut input).unwrap();
        let mut got = Vec::new();
        while let Some((l, cut)) = s.next_line(5) {
            got.push((l.to_vec(), cut));
        }
        assert_eq!(
            got,
            [
                (b"a".to_vec(), false),
                (b"bb".to_vec(), false),
                (b"cccccccccc".to_vec(), false)
            ]
        );
        s.fill(&mut input).unwrap();
        assert!(s.eof);
        assert_eq!(s.next_line(5), Some((&b"d"[..], false)));
        assert_eq!(s.next_line(5), None);
        let mut s = StdinLines::default();
        s.fill(&mut &b"xxxxxxxx"[..]).unwrap();
        assert_eq!(s.next_line(5), Some((&b"xxxxx"[..], true)));
        s.fill(&mut &b"xx\nok\n"[..]).unwrap();
        assert_eq!(s.next_line(5), Some((&b"ok"[..], false)));
    }
}
