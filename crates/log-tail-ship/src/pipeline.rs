//! What happens to a line between its source and the sink: keep/drop filters, the
//! per-stream rate limit, truncation of over-long lines, and the counters behind the
//! `logship_*` metrics. Pure functions of bytes, tested on literals.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Instant;

use regex::bytes::{Regex, RegexSet};

/// Appended to a line cut at `--max-line-bytes`.
pub const TRUNCATION_MARKER: &str = "…[truncated]";

/// A set of labels, sorted by name: one Loki stream.
pub type Labels = Vec<(String, String)>;

/// Index of a label set in [`Streams`].
pub type StreamId = usize;

/// The label sets in use, each stored once; sources refer to them by id.
#[derive(Debug, Default)]
pub struct Streams {
    sets: Vec<Labels>,
    index: HashMap<Labels, StreamId>,
}

impl Streams {
    /// The id of a label set (created on first use). Labels with an empty value are
    /// left out, as Loki does.
    pub fn id(&mut self, labels: &[(&str, &str)]) -> StreamId {
        let mut set: Labels = labels
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        set.sort();
        set.dedup_by(|a, b| a.0 == b.0);
        if let Some(&id) = self.index.get(&set) {
            return id;
        }
        self.sets.push(set.clone());
        self.index.insert(set, self.sets.len() - 1);
        self.sets.len() - 1
    }

    pub fn labels(&self, id: StreamId) -> &Labels {
        &self.sets[id]
    }
}

/// Static labels (`--label`) merged with a source's own; a static label wins over
/// `host` but a source's labels (filename, container, stream) win over static ones.
pub fn merge_labels<'a>(
    static_labels: &'a [(String, String)],
    own: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for (k, v) in static_labels {
        if !own.iter().any(|(o, _)| o == k) {
            out.push((k, v));
        }
    }
    out.extend_from_slice(own);
    out
}

/// `--keep` and `--drop`: a line must match a keep (if any) and no drop.
#[derive(Debug, Default)]
pub struct Filter {
    keep: Option<AnyOf>,
    drop: Option<AnyOf>,
}

/// Several patterns matched in one pass: one regex `(?:a)|(?:b)|...` (inline flags
/// stay inside their group), or a `RegexSet` where the patterns cannot be joined
/// (the same group name twice, a verbose-mode comment running to the end). A loop over separate regexes searches each line once
/// per pattern.
#[derive(Debug)]
enum AnyOf {
    /// One pattern without metacharacters (`GET /health`): a substring search, without
    /// the regex engine's setup for every line.
    Literal(Box<memchr::memmem::Finder<'static>>),
    One(Regex),
    Set(RegexSet),
}

impl AnyOf {
    fn new(flag: &str, patterns: &[String]) -> Result<Option<AnyOf>, String> {
        let mut each = patterns
            .iter()
            .map(|r| Regex::new(r).map_err(|e| format!("{flag} {r:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if let [p] = patterns
            && regex::escape(p) == *p
        {
            let finder = memchr::memmem::Finder::new(p.as_bytes()).into_owned();
            return Ok(Some(AnyOf::Literal(Box::new(finder))));
        }
        if each.len() <= 1 {
            return Ok(each.pop().map(AnyOf::One));
        }
        let joined: Vec<String> = patterns.iter().map(|p| format!("(?:{p})")).collect();
        if let Ok(r) = Regex::new(&joined.join("|")) {
            return Ok(Some(AnyOf::One(r)));
        }
        RegexSet::new(patterns)
            .map(|s| Some(AnyOf::Set(s)))
            .map_err(|e| format!("{flag}: {e}"))
    }

    fn is_match(&self, line: &[u8]) -> bool {
        match self {
            AnyOf::Literal(f) => f.find(line).is_some(),
            AnyOf::One(r) => r.is_match(line),
            AnyOf::Set(s) => s.is_match(line),
        }
    }
}

/// Where a literal `--keep` or `--drop` occurs next in a buffer of lines: the buffer
/// is searched once from a line on, not once per line, so only a matching line costs
/// another search (as grep does). Valid while the buffer's version is unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub struct NextMatch {
    version: Option<u64>,
    /// Searched from here to the end of the buffer ...
    from: usize,
    /// ... and the first match starts here (none: no match in the rest).
    at: Option<usize>,
}

impl NextMatch {
    /// Whether `finder`'s needle occurs within `line` of `buf`.
    fn in_line(
        &mut self,
        finder: &memchr::memmem::Finder<'_>,
        buf: &[u8],
        version: u64,
        line: &std::ops::Range<usize>,
    ) -> bool {
        let stale = self.version != Some(version)
            || line.start < self.from
            || self.at.is_some_and(|a| a < line.start);
        if stale {
            self.version = Some(version);
            self.from = line.start;
            self.at = finder.find(&buf[line.start..]).map(|p| line.start + p);
        }
        // A match from here on lies in this line only if it ends before the line does
        // (a needle with a newline in it never lies within a line).
        self.at.is_some_and(|a| a + finder.needle().len() <= line.end)
    }
}

/// A buffer's [`NextMatch`] for the keep and the drop filter.
#[derive(Debug, Default, Clone, Copy)]
pub struct Scan {
    keep: NextMatch,
    drop: NextMatch,
}

impl Filter {
    pub fn new(keep: &[String], drop: &[String]) -> Result<Filter, String> {
        Ok(Filter {
            keep: AnyOf::new("--keep", keep)?,
            drop: AnyOf::new("--drop", drop)?,
        })
    }

    /// The one literal `--drop` when there is nothing else to match (no `--keep`), if it
    /// is not empty and has no newline: then a line is dropped exactly when a match
    /// starts in it.
    pub fn drop_literal(&self) -> Option<&memchr::memmem::Finder<'static>> {
        match (&self.keep, &self.drop) {
            (None, Some(AnyOf::Literal(f))) if !f.needle().is_empty() && !f.needle().contains(&b'\n') => {
                Some(f)
            }
            _ => None,
        }
    }

    pub fn pass(&self, line: &[u8]) -> bool {
        self.keep.as_ref().is_none_or(|k| k.is_match(line))
            && !self.drop.as_ref().is_some_and(|d| d.is_match(line))
    }

    /// [`Filter::pass`] for the line `buf[line]` of a buffer of newline-terminated
    /// lines (`version` changing whenever `buf` does): a literal is looked for in the
    /// rest of the buffer once, and again only after the line it was found in.
    pub fn pass_in(&self, scan: &mut Scan, buf: &[u8], version: u64, line: std::ops::Range<usize>) -> bool {
        let found = |any: &AnyOf, next: &mut NextMatch| match any {
            AnyOf::Literal(f) => next.in_line(f, buf, version, &line),
            other => other.is_match(&buf[line.clone()]),
        };
        self.keep.as_ref().is_none_or(|k| found(k, &mut scan.keep))
            && !self.drop.as_ref().is_some_and(|d| found(d, &mut scan.drop))
    }
}

/// A token bucket per stream: `rate` lines per second, up to `burst` at once.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    buckets: HashMap<StreamId, (f64, Instant)>,
}

impl RateLimit {
    pub fn new(rate: f64, burst: f64) -> Self {
        RateLimit {
            rate,
            burst: burst.max(1.0),
            buckets: HashMap::new(),
        }
    }

    /// Whether one more line of `stream` may pass at `now`.
    pub fn allow(&mut self, stream: StreamId, now: Instant) -> bool {
        let (tokens, last) = self.buckets.entry(stream).or_insert((self.burst, now));
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Cuts `line` to at most `max` bytes (the marker included), on a UTF-8 character
/// boundary where the line is UTF-8. Returns the line and whether it was cut.
pub fn truncate(line: &[u8], max: usize) -> (Cow<'_, [u8]>, bool) {
    if line.len() <= max {
        return (Cow::Borrowed(line), false);
    }
    let marker = TRUNCATION_MARKER.as_bytes();
    let mut cut = max.saturating_sub(marker.len());
    // Step back over UTF-8 continuation bytes (at most 3) so no character is split.
    let mut back = 0;
    while cut > 0 && back < 3 && (line[cut] & 0xC0) == 0x80 {
        cut -= 1;
        back += 1;
    }
    let mut out = Vec::with_capacity(cut + marker.len());
    out.extend_from_slice(&line[..cut]);
    out.extend_from_slice(marker);
    (Cow::Owned(out), true)
}

/// One source's counters (a file path, a container name, or stdin).
#[derive(Debug, Clone, Default)]
pub struct SourceStats {
    pub name: String,
    pub read: u64,
}

/// Index of a source in [`Stats::sources`].
pub type SourceId = usize;

/// Everything the metrics page and the summary record report.
#[derive(Debug, Default)]
pub struct Stats {
    pub sources: Vec<SourceStats>,
    source_index: HashMap<String, SourceId>,
    pub shipped: u64,
    pub dropped_filter: u64,
    pub dropped_rate_limit: u64,
    pub dropped_rejected: u64,
    pub truncated: u64,
    pub batches_rejected: u64,
    pub push_retries: u64,
    pub bytes_shipped: u64,
    pub docker_invalid: u64,
    pub last_push_unix: Option<f64>,
}

impl Stats {
    pub fn source(&mut self, name: &str) -> SourceId {
        if let Some(&i) = self.source_index.get(name) {
            return i;
        }
        self.sources.push(SourceStats {
            name: name.to_string(),
            read: 0,
        });
        self.source_index.insert(name.to_string(), self.sources.len() - 1);
        self.sources.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keep_and_drop() {
        let f = Filter::new(&["error|warn".into()], &["healthcheck".into()]).unwrap();
        assert!(matches!(f.keep, Some(AnyOf::One(_))));
        assert!(matches!(f.drop, Some(AnyOf::Literal(_))));
        assert!(f.pass(b"an error happened"));
        assert!(!f.pass(b"info: fine"));
        assert!(!f.pass(b"error in healthcheck"));
        assert!(f.pass(b"warn \xff\xfe invalid utf-8"));
        // A literal with a space and a slash is still a literal; a dot is not.
        let f = Filter::new(&[], &["GET /health".into()]).unwrap();
        assert!(matches!(f.drop, Some(AnyOf::Literal(_))));
        assert!(!f.pass(b"1.2.3.4 \"GET /health HTTP/1.1\"") && f.pass(b"GET /healt"));
        let f = Filter::new(&["a.c".into()], &[]).unwrap();
        assert!(matches!(f.keep, Some(AnyOf::One(_))));
        assert!(f.pass(b"abc"));
        let none = Filter::new(&[], &[]).unwrap();
        assert!(none.pass(b""));
        let e = Filter::new(&[], &["(".into()]).unwrap_err();
        assert!(e.starts_with("--drop \"(\""), "{e}");
        let e = Filter::new(&[], &["ok".into(), "[".into()]).unwrap_err();
        assert!(e.starts_with("--drop \"[\""), "{e}");
        // Several patterns: any of them; each keeps its own flags and anchors.
        let f = Filter::new(&[], &["(?i)^debug".into(), "health$".into(), "x|y".into()]).unwrap();
        assert!(matches!(f.drop, Some(AnyOf::One(_))));
        for (line, pass) in [
            (&b"DEBUG: noise"[..], false),
            (b"GET /health", false),
            (b"the health check", true),
            (b"not debug", true),
            (b"a x", false),
            (b"ERROR", true),
        ] {
            assert_eq!(f.pass(line), pass, "{}", String::from_utf8_lossy(line));
        }
        // The same group name twice cannot be one regex: a set does it.
        let f = Filter::new(&["(?P<n>err)".into(), "(?P<n>warn)".into()], &[]).unwrap();
        assert!(matches!(f.keep, Some(AnyOf::Set(_))));
        assert!(f.pass(b"warn: x") && f.pass(b"err: y") && !f.pass(b"info"));
        // A verbose-mode comment would swallow the joining: a set, still any of them.
        let f = Filter::new(&[], &["(?x) debug # noise".into(), "health".into()]).unwrap();
        assert!(!f.pass(b"debug x") && !f.pass(b"health") && f.pass(b"info"));
    }

    #[test]
    fn a_buffer_searched_once_gives_each_line_its_own_verdict() {
        // Lines with and without the needles, next to each other, at the buffer's ends,
        // a needle across a newline, and (as the same buffer refilled) a new version.
        let lines: &[&[u8]] = &[
            b"GET /health 200",
            b"GET /api 200",
            b"GET /healt",
            b"h 200 GET /health GET /health",
            b"",
            b"error: GET /health",
            b"warn",
            b"GET /health",
        ];
        let filters = [
            Filter::new(&[], &["GET /health".into()]).unwrap(),
            Filter::new(&["GET".into()], &["/health".into()]).unwrap(),
            Filter::new(&["error|warn".into()], &["health".into()]).unwrap(),
            Filter::new(&[], &["t\nh".into()]).unwrap(),
            Filter::new(&[], &["".into()]).unwrap(),
            Filter::new(&[], &[]).unwrap(),
        ];
        for f in &filters {
            let mut scan = Scan::default();
            for (version, order) in [(0, [0, 1, 2, 3, 4, 5, 6, 7]), (1, [7, 6, 3, 2, 0, 1, 4, 5])] {
                let mut buf = Vec::new();
                let mut ranges = Vec::new();
                for &i in &order {
                    let start = buf.len();
                    buf.extend_from_slice(lines[i]);
                    ranges.push(start..buf.len());
                    buf.push(b'\n');
                }
                for r in ranges {
                    let line = &buf[r.clone()];
                    assert_eq!(
                        f.pass_in(&mut scan, &buf, version, r.clone()),
                        f.pass(line),
                        "{f:?} {}",
                        String::from_utf8_lossy(line)
                    );
                }
            }
        }
        // Lines looked at again (a restart from an earlier line) are searched again.
        let f = &filters[0];
        let buf = b"a\nGET /health\nb\n";
        let mut scan = Scan::default();
        assert!(f.pass_in(&mut scan, buf, 7, 0..1));
        assert!(f.pass_in(&mut scan, buf, 7, 15..16));
        assert!(!f.pass_in(&mut scan, buf, 7, 2..13));
    }

    #[test]
    fn truncation_keeps_characters_whole_and_adds_the_marker() {
        let (l, cut) = truncate(b"short", 100);
        assert!(!cut);
        assert_eq!(&*l, b"short");
        let long = "é".repeat(100); // 200 bytes
        let (l, cut) = truncate(long.as_bytes(), 50);
        assert!(cut);
        assert!(l.len() <= 50);
        let s = std::str::from_utf8(&l).unwrap();
        assert!(s.ends_with(TRUNCATION_MARKER));
        let (l, _) = truncate(&[0xff; 40], 20);
        assert_eq!(l.len(), 20);
    }

    #[test]
    fn rate_limit_allows_burst_then_rate() {
        let mut r = RateLimit::new(10.0, 3.0);
        let t = Instant::now();
        assert!((0..3).all(|_| r.allow(0, t)));
        assert!(!r.allow(0, t));
        assert!(r.allow(1, t), "streams have their own bucket");
        assert!(r.allow(0, t + Duration::from_millis(100)));
        assert!(!r.allow(0, t + Duration::from_millis(100)));
    }

    #[test]
    fn streams_are_interned_sorted_and_skip_empty_values() {
        let mut s = Streams::default();
        let a = s.id(&[("job", "x"), ("host", "pi")]);
        let b = s.id(&[("host", "pi"), ("job", "x"), ("empty", "")]);
        assert_eq!(a, b);
        assert_eq!(s.labels(a)[0].0, "host");
        let statics = vec![
            ("host".to_string(), "pi".to_string()),
            ("filename".to_string(), "no".to_string()),
        ];
        let m = merge_labels(&statics, &[("filename", "/var/log/syslog")]);
        assert_eq!(m, [("host", "pi"), ("filename", "/var/log/syslog")]);
    }
}
