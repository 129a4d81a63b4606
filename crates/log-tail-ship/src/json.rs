//! The parts of a record that change from line to line, appended to a byte buffer:
//! a JSON string (escaped byte for byte as serde_json escapes it), a decimal number
//! and an RFC 3339 timestamp. Everything else in a record is rendered by serde
//! (through `homelab_core::Output` for the envelope) once per batch and stream; these
//! are the per-line hot path, where going through serde for every line cost more than
//! reading, filtering and writing together.

use std::time::{Duration, UNIX_EPOCH};

/// Appends `s` as a JSON string, quotes included, exactly as `serde_json` writes it
/// (`\"`, `\\`, `\b \t \n \f \r`, other control bytes as `\u00xx`, nothing else
/// escaped), with SIMD where the CPU has it (SSE2/AVX2, NEON on the Pi).
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    json_escape_simd::escape_into(s, out);
}

/// Appends a line as a JSON string, each invalid UTF-8 sequence replaced by U+FFFD
/// (as `String::from_utf8_lossy` does). Returns the length of the text, unescaped.
pub fn push_lossy(out: &mut Vec<u8>, b: &[u8]) -> usize {
    match std::str::from_utf8(b) {
        Ok(s) => {
            push_str(out, s);
            s.len()
        }
        Err(_) => {
            let text = String::from_utf8_lossy(b);
            push_str(out, &text);
            text.len()
        }
    }
}

/// Appends `n` in decimal.
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// RFC 3339 UTC with nanoseconds from Unix ns: `2019-01-01T11:11:11.111111111Z`.
pub fn rfc3339_nanos(ns: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_nanos(ns);
    humantime::format_rfc3339_nanos(t).to_string()
}

/// "00" to "99".
const DIGIT_PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// [`rfc3339_nanos`] for a stream of close timestamps, appended to a buffer: the date
/// and time of day are formatted once per second, the nanoseconds per line.
#[derive(Debug, Default)]
pub struct StampCache {
    secs: Option<u64>,
    /// "2026-11-26T06:00:00.000000000Z", the nanoseconds filled in per line.
    text: [u8; 30],
}

impl StampCache {
    pub fn push(&mut self, out: &mut Vec<u8>, ns: u64) {
        let secs = ns / 1_000_000_000;
        if self.secs != Some(secs) {
            let full = rfc3339_nanos(secs * 1_000_000_000);
            match <[u8; 30]>::try_from(full.as_bytes()) {
                Ok(text) => {
                    self.text = text;
                    self.secs = Some(secs);
                }
                // Not 30 bytes: a year past 9999, which u64 nanoseconds (ending in
                // 2554) never reach; formatted in full all the same.
                Err(_) => {
                    out.extend_from_slice(rfc3339_nanos(ns).as_bytes());
                    return;
                }
            }
        }
        // Nine digits as 1 + 4 + 4, two at a time, in 32-bit arithmetic.
        let n = (ns - secs * 1_000_000_000) as u32;
        let (high, low) = (n / 10_000, n % 10_000);
        let t = &mut self.text;
        t[20] = b'0' + (high / 10_000) as u8;
        for (at, v) in [
            (21, high % 10_000 / 100),
            (23, high % 100),
            (25, low / 100),
            (27, low % 100),
        ] {
            let v = v as usize * 2;
            t[at..at + 2].copy_from_slice(&DIGIT_PAIRS[v..v + 2]);
        }
        out.extend_from_slice(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut v = Vec::new();
        push_str(&mut v, s);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn strings_are_escaped_exactly_like_serde_json() {
        let mut cases: Vec<String> = vec![
            String::new(),
            "plain ascii".into(),
            r#"192.168.1.1 - - [26/Nov/2026:06:00:00 +0000] "GET /api HTTP/1.1" 200 1 "-" "curl/8.5.0""#
                .into(),
            "back\\slash \\\\ and \"quotes\"\"".into(),
            "tab\tnl\ncr\rff\u{c}bs\u{8}nul\0esc\u{1b}del\u{7f}".into(),
            "ünïcödé ✓ 日本語 🎉 \u{2028}\u{2029}".into(),
            "\"".into(),
            "\"\"\"\"\"\"\"\"\"".into(),
            "1234567\"".into(),
            "12345678\"".into(),
            "123456789\"".into(),
            "é\"é\"é\"é\"\u{1f}".into(),
        ];
        // Every ASCII byte at every offset within and across the SIMD kernels' blocks
        // (16, 32 and 64 bytes) and their scalar tails.
        for c in 0u8..0x80 {
            let ch = char::from(c);
            for at in 0..70 {
                let mut s = "x".repeat(at);
                s.push(ch);
                s.push_str("yz");
                cases.push(s);
            }
        }
        // A deterministic mixture of specials, multi-byte characters and plain runs.
        let alphabet: Vec<char> = "ab \"\\\n\t\u{0}\u{1f}é✓🎉~".chars().collect();
        let mut x: u32 = 12345;
        for len in 0..200 {
            let s: String = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    alphabet[(x >> 16) as usize % alphabet.len()]
                })
                .collect();
            cases.push(s);
        }
        for s in &cases {
            let want = serde_json::to_string(s).unwrap();
            assert_eq!(escaped(s), want, "{s:?}");
            let mut v = b"before".to_vec();
            assert_eq!(push_lossy(&mut v, s.as_bytes()), s.len(), "{s:?}");
            assert_eq!(v, [&b"before"[..], want.as_bytes()].concat(), "{s:?}");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_replaced_as_from_utf8_lossy_does() {
        let mut bad: Vec<Vec<u8>> = vec![
            b"\xff".to_vec(),
            b"ascii then \xfe\xff".to_vec(),
            b"\"quoted\" \xc3".to_vec(), // cut inside a character
            "é valid first, then ".bytes().chain([0xed, 0xa0, 0x80]).collect(), // a surrogate
            b"\xc0\xaf overlong".to_vec(),
        ];
        for at in 0..20 {
            let mut l = vec![b'a'; at];
            l.push(0x80);
            l.extend_from_slice(b"\"tail\"");
            bad.push(l);
        }
        for b in &bad {
            assert!(std::str::from_utf8(b).is_err());
            let mut v = b"kept".to_vec();
            let text = String::from_utf8_lossy(b);
            assert_eq!(push_lossy(&mut v, b), text.len());
            assert_eq!(
                v,
                [&b"kept"[..], serde_json::to_string(&text).unwrap().as_bytes()].concat()
            );
        }
    }

    #[test]
    fn numbers_and_timestamps() {
        for n in [0, 7, 10, 99, 1_570_818_238_000_000_001, u64::MAX] {
            let mut v = Vec::new();
            push_u64(&mut v, n);
            assert_eq!(v, n.to_string().as_bytes());
        }
        assert_eq!(
            rfc3339_nanos(1_546_341_071_111_111_111),
            "2019-01-01T11:11:11.111111111Z"
        );
        let mut c = StampCache::default();
        let mut v = Vec::new();
        for ns in [
            0,
            1_546_341_071_111_111_111,
            1_546_341_071_000_000_005,
            1_546_341_072_999_999_999,
            1_546_341_071_111_111_111,
            1_546_341_071_123_456_789,
            1_546_341_071_100_000_000,
            1_546_341_071_987_654_321,
            1_546_341_071_010_203_040,
        ] {
            v.clear();
            c.push(&mut v, ns);
            assert_eq!(String::from_utf8(v.clone()).unwrap(), rfc3339_nanos(ns));
        }
        // Every digit place, within a second and across seconds, up to u64::MAX.
        let mut x: u64 = 1;
        for i in 0..20_000u64 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let ns = if i % 2 == 0 {
                x
            } else {
                1_795_000_000_000_000_000 + x % 3_000_000_000
            };
            v.clear();
            c.push(&mut v, ns);
            assert_eq!(String::from_utf8(v.clone()).unwrap(), rfc3339_nanos(ns), "{ns}");
        }
    }
}
