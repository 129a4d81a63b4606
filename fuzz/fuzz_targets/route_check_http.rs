//! route-check: the head of an HTTP response to a probe, read in small pieces as
//! a slow server sends it.
#![no_main]

use std::io::{self, Read};

use libfuzzer_sys::fuzz_target;
use route_check::http::read_head;

/// Hands out the input a few bytes at a time (the first byte sets how many).
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.data.len().min(self.step).min(buf.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(first % 64) + 1;
    let _ = read_head(&mut Trickle { data: rest, step });
    let _ = route_check::http::parse_head(rest);
});
