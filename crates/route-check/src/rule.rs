//! Traefik v3's rule language, parsed for real: a Go expression made of matcher calls
//! with Go string-literal arguments, `&&`, `||`, prefix `!` and parentheses (Traefik
//! hands rules to `go/parser.ParseExpr` through vulcand/predicate).
//!
//! A regular expression over ``Host(`…`)`` would miss `HostRegexp`, negations and
//! hosts combined with paths, so the rule is parsed into a tree, negations are pushed
//! down (De Morgan, as Traefik's `invert()` does), and the tree is expanded into
//! alternatives. Each alternative that names exactly one host becomes a [`Target`].

use std::fmt;

/// One matcher call: the canonical matcher name and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub name: &'static str,
    pub args: Vec<String>,
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.name)?;
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "`{a}`")?;
        }
        f.write_str(")")
    }
}

/// A parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Match(Matcher),
    Not(Box<Rule>),
    And(Box<Rule>, Box<Rule>),
    Or(Box<Rule>, Box<Rule>),
}

/// The HTTP matchers of Traefik v3 and how many arguments each takes.
const MATCHERS: &[(&str, usize, usize)] = &[
    ("ClientIP", 1, 1),
    ("Header", 2, 2),
    ("HeaderRegexp", 2, 2),
    ("Host", 1, 1),
    ("HostRegexp", 1, 1),
    ("Method", 1, 1),
    ("Path", 1, 1),
    ("PathPrefix", 1, 1),
    ("PathRegexp", 1, 1),
    ("Query", 1, 2),
    ("QueryRegexp", 2, 2),
];

/// A rule that does not parse: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset in the rule.
    pub at: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.at)
    }
}

/// Rules longer than this are not a real router's rule.
pub const MAX_RULE_BYTES: usize = 64 * 1024;
/// Deeper nesting than this is rejected instead of recursing without bound.
const MAX_DEPTH: usize = 100;

pub fn parse(rule: &str) -> Result<Rule, ParseError> {
    if rule.len() > MAX_RULE_BYTES {
        return Err(ParseError {
            at: 0,
            message: format!("rule is {} bytes long, more than {MAX_RULE_BYTES}", rule.len()),
        });
    }
    let tokens = lex(rule)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
        end: rule.len(),
    };
    if p.peek().is_none() {
        return Err(ParseError {
            at: 0,
            message: "empty rule".into(),
        });
    }
    let r = p.or()?;
    if let Some((tok, at)) = p.tokens.get(p.pos) {
        return Err(ParseError {
            at: *at,
            message: format!("unexpected {tok} after a complete expression"),
        });
    }
    Ok(r)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Str(String),
    LParen,
    RParen,
    Comma,
    And,
    Or,
    Not,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "name {s}"),
            Tok::Str(s) => write!(f, "string {s:?}"),
            Tok::LParen => f.write_str("'('"),
            Tok::RParen => f.write_str("')'"),
            Tok::Comma => f.write_str("','"),
            Tok::And => f.write_str("'&&'"),
            Tok::Or => f.write_str("'||'"),
            Tok::Not => f.write_str("'!'"),
        }
    }
}

fn err<T>(at: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        at,
        message: message.into(),
    })
}

fn lex(s: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push((Tok::LParen, i));
                i += 1
            }
            b')' => {
                out.push((Tok::RParen, i));
                i += 1
            }
            b',' => {
                out.push((Tok::Comma, i));
                i += 1
            }
            b'!' => {
                out.push((Tok::Not, i));
                i += 1
            }
            b'&' | b'|' => {
                if b.get(i + 1) != Some(&c) {
                    return err(i, format!("'{}' must be doubled ('{0}{0}')", c as char));
                }
                out.push((if c == b'&' { Tok::And } else { Tok::Or }, i));
                i += 2
            }
            b'`' => {
                let end = s[i + 1..].find('`').ok_or_else(|| ParseError {
                    at: start,
                    message: "unterminated `raw string`".into(),
                })?;
                let text = &s[i + 1..i + 1 + end];
                // Go drops carriage returns from raw strings.
                out.push((Tok::Str(text.replace('\r', "")), start));
                i += end + 2
            }
            b'"' => {
                let (text, len) = interpreted_string(&s[i..], start)?;
                out.push((Tok::Str(text), start));
                i += len
            }
            b'\'' => {
                return err(
                    i,
                    "single quotes are not string delimiters in Traefik rules: use `backticks` or \"double quotes\"",
                );
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.push((Tok::Ident(s[start..i].to_string()), start));
            }
            _ => {
                let ch = s[i..].chars().next().unwrap_or('?');
                return err(i, format!("unexpected character {ch:?}"));
            }
        }
    }
    Ok(out)
}

/// A Go interpreted string literal starting at `s[0] == '"'`: its value and its length.
fn interpreted_string(s: &str, at: usize) -> Result<(String, usize), ParseError> {
    let mut out: Vec<u8> = Vec::new();
    let b = s.as_bytes();
    let mut i = 1;
    let unterminated = || ParseError {
        at,
        message: "unterminated \"string\"".into(),
    };
    loop {
        let c = *b.get(i).ok_or_else(unterminated)?;
        match c {
            b'"' => break,
            b'\n' => return Err(unterminated()),
            b'\\' => {
                let e = *b.get(i + 1).ok_or_else(unterminated)?;
                i += 2;
                match e {
                    b'a' => out.push(7),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'v' => out.push(11),
                    b'\\' => out.push(b'\\'),
                    b'"' => out.push(b'"'),
                    b'x' => {
                        out.push(hex(s, i, 2, at)? as u8);
                        i += 2
                    }
                    b'u' | b'U' => {
                        let n = if e == b'u' { 4 } else { 8 };
                        let v = hex(s, i, n, at)?;
                        let ch = char::from_u32(v).ok_or_else(|| ParseError {
                            at: at + i,
                            message: format!("escape \\{} is not a valid character", e as char),
                        })?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        i += n
                    }
                    b'0'..=b'7' => {
                        let digits = s.get(i - 1..i + 2).unwrap_or("");
                        let v = u32::from_str_radix(digits, 8)
                            .ok()
                            .filter(|v| *v <= 255 && digits.len() == 3)
                            .ok_or_else(|| ParseError {
                                at: at + i,
                                message: "octal escape must be three digits up to \\377".into(),
                            })?;
                        out.push(v as u8);
                        i += 2
                    }
                    _ => {
                        return Err(ParseError {
                            at: at + i - 2,
                            message: format!("unknown escape \\{}", e as char),
                        });
                    }
                }
            }
            _ => {
                out.push(c);
                i += 1
            }
        }
    }
    let text = String::from_utf8(out).map_err(|_| ParseError {
        at,
        message: "string is not valid UTF-8 after its escapes".into(),
    })?;
    Ok((text, i + 1))
}

fn hex(s: &str, i: usize, n: usize, at: usize) -> Result<u32, ParseError> {
    s.get(i..i + n)
        .filter(|d| d.bytes().all(|c| c.is_ascii_hexdigit()))
        .and_then(|d| u32::from_str_radix(d, 16).ok())
        .ok_or_else(|| ParseError {
            at: at + i,
            message: format!("escape needs {n} hex digits"),
        })
}

struct Parser {
    tokens: Vec<(Tok, usize)>,
    pos: usize,
    depth: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn at(&self) -> usize {
        self.tokens.get(self.pos).map(|(_, a)| *a).unwrap_or(self.end)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).map(|(t, _)| t.clone());
        self.pos += 1;
        t
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<(), ParseError> {
        let at = self.at();
        match self.next() {
            Some(t) if t == want => Ok(()),
            Some(t) => err(at, format!("expected {what}, found {t}")),
            None => err(at, format!("expected {what}, found the end of the rule")),
        }
    }

    fn or(&mut self) -> Result<Rule, ParseError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            let right = self.and()?;
            left = Rule::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Rule, ParseError> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            let right = self.unary()?;
            left = Rule::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Rule, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(self.at(), format!("rule nests deeper than {MAX_DEPTH} levels"));
        }
        let r = if self.peek() == Some(&Tok::Not) {
            self.pos += 1;
            Rule::Not(Box::new(self.unary()?))
        } else {
            self.primary()?
        };
        self.depth -= 1;
        Ok(r)
    }

    fn primary(&mut self) -> Result<Rule, ParseError> {
        let at = self.at();
        match self.next() {
            Some(Tok::LParen) => {
                let r = self.or()?;
                self.expect(Tok::RParen, "')'")?;
                Ok(r)
            }
            Some(Tok::Ident(name)) => {
                let (canon, min, max) = matcher(&name).ok_or_else(|| ParseError {
                    at,
                    message: format!("unknown matcher {name}"),
                })?;
                self.expect(Tok::LParen, &format!("'(' after {name}"))?;
                let mut args = Vec::new();
                if self.peek() != Some(&Tok::RParen) {
                    loop {
                        let at = self.at();
                        match self.next() {
                            Some(Tok::Str(s)) => args.push(s),
                            Some(t) => {
                                return err(at, format!("{name} takes string arguments, found {t}"));
                            }
                            None => return err(at, format!("unterminated call of {name}")),
                        }
                        if self.peek() == Some(&Tok::Comma) {
                            self.pos += 1;
                            continue;
                        }
                        break;
                    }
                }
                self.expect(Tok::RParen, &format!("')' to close {name}("))?;
                if args.len() < min || args.len() > max {
                    let want = if min == max {
                        format!("{min}")
                    } else {
                        format!("{min} or {max}")
                    };
                    let hint = if canon == "Host" && args.len() > 1 {
                        " (v3 takes one host per Host(); write Host(`a`) || Host(`b`))"
                    } else {
                        ""
                    };
                    return err(
                        at,
                        format!("{canon} takes {want} argument(s), found {}{hint}", args.len()),
                    );
                }
                Ok(Rule::Match(Matcher { name: canon, args }))
            }
            Some(t) => err(at, format!("expected a matcher, '!' or '(', found {t}")),
            None => err(at, "expected a matcher, found the end of the rule"),
        }
    }
}

/// The canonical matcher for a name as written: Traefik accepts the name as
/// documented, all lower-case, ALL UPPER-CASE or Title-case.
fn matcher(name: &str) -> Option<(&'static str, usize, usize)> {
    MATCHERS.iter().copied().find(|(canon, _, _)| {
        let mut title = canon.to_ascii_lowercase();
        title[..1].make_ascii_uppercase();
        name == *canon
            || name == canon.to_ascii_lowercase()
            || name == canon.to_ascii_uppercase()
            || name == title
    })
}

/// A matcher, possibly negated: an element of one alternative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Literal {
    pub negated: bool,
    pub matcher: Matcher,
}

/// More alternatives than this and the rule is not worth expanding.
pub const MAX_ALTERNATIVES: usize = 256;

/// The rule as alternatives (an OR of ANDs of possibly negated matchers).
pub fn alternatives(rule: &Rule) -> Result<Vec<Vec<Literal>>, String> {
    dnf(rule, false)
}

fn dnf(rule: &Rule, negated: bool) -> Result<Vec<Vec<Literal>>, String> {
    match (rule, negated) {
        (Rule::Match(m), _) => Ok(vec![vec![Literal {
            negated,
            matcher: m.clone(),
        }]]),
        (Rule::Not(r), n) => dnf(r, !n),
        (Rule::Or(a, b), false) | (Rule::And(a, b), true) => {
            let mut left = dnf(a, negated)?;
            left.extend(dnf(b, negated)?);
            if left.len() > MAX_ALTERNATIVES {
                return Err(too_complex());
            }
            Ok(left)
        }
        (Rule::And(a, b), false) | (Rule::Or(a, b), true) => {
            let left = dnf(a, negated)?;
            let right = dnf(b, negated)?;
            if left.len().saturating_mul(right.len()) > MAX_ALTERNATIVES {
                return Err(too_complex());
            }
            let mut out = Vec::with_capacity(left.len() * right.len());
            for l in &left {
                for r in &right {
                    let mut c = l.clone();
                    c.extend(r.iter().cloned());
                    out.push(c);
                }
            }
            Ok(out)
        }
    }
}

fn too_complex() -> String {
    format!("rule expands to more than {MAX_ALTERNATIVES} alternatives; add --route for its hosts")
}

/// Something to probe that a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Lower-case host name, as Traefik matches it.
    pub host: String,
    /// A path the rule matches (`/` unless the alternative has Path or PathPrefix).
    pub path: String,
}

/// What a rule means for probing: its targets, and notes on what cannot be probed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis {
    pub targets: Vec<Target>,
    pub notes: Vec<String>,
}

/// The hosts (with a path) that `rule` routes, one target per host, in rule order.
pub fn analyse(rule: &Rule) -> Analysis {
    let mut a = Analysis::default();
    let alts = match alternatives(rule) {
        Ok(alts) => alts,
        Err(e) => {
            a.notes.push(e);
            return a;
        }
    };
    for alt in alts {
        let hosts: Vec<&Matcher> = alt
            .iter()
            .filter(|l| !l.negated && l.matcher.name == "Host")
            .map(|l| &l.matcher)
            .collect();
        let mut distinct: Vec<String> = hosts.iter().map(|m| m.args[0].to_ascii_lowercase()).collect();
        distinct.dedup();
        let regexp = alt.iter().find(|l| !l.negated && l.matcher.name == "HostRegexp");
        let host = match (distinct.as_slice(), regexp) {
            ([h], _) => h.clone(),
            ([], Some(r)) => {
                a.notes.push(format!(
                    "{} names no fixed host: add --route HOST to probe it",
                    r.matcher
                ));
                continue;
            }
            ([], None) => {
                a.notes
                    .push("an alternative of the rule matches any host: add --route HOST to probe it".into());
                continue;
            }
            (many, _) => {
                let both: Vec<String> = many
                    .iter()
                    .map(|h| format!("Host(`{}`)", h.escape_debug()))
                    .collect();
                a.notes.push(format!(
                    "an alternative of the rule can never match: it needs {} at once",
                    both.join(" && ")
                ));
                continue;
            }
        };
        if host.contains('*') && !host.contains(|c: char| c.is_control()) {
            a.notes.push(format!(
                "Host(`{host}`) is a wildcard: add --route with a real name under it to probe it"
            ));
            continue;
        }
        let host = match crate::routes::check_host(&host) {
            Ok(h) => h,
            Err(e) => {
                a.notes.push(format!("Host() cannot be probed: {e}"));
                continue;
            }
        };
        let path = alt
            .iter()
            .filter(|l| !l.negated && matches!(l.matcher.name, "Path" | "PathPrefix"))
            .map(|l| l.matcher.args[0].clone())
            .next()
            .unwrap_or_else(|| "/".into());
        if !a.targets.iter().any(|t| t.host == host) {
            a.targets.push(Target { host, path });
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(rule: &str) -> Vec<(String, String)> {
        analyse(&parse(rule).unwrap())
            .targets
            .into_iter()
            .map(|t| (t.host, t.path))
            .collect()
    }

    fn t(h: &str, p: &str) -> (String, String) {
        (h.into(), p.into())
    }

    #[test]
    fn hosts_paths_and_operators() {
        assert_eq!(
            hosts("Host(`grafana.example.com`)"),
            [t("grafana.example.com", "/")]
        );
        assert_eq!(
            hosts("Host(`n8n.example.com`) && PathPrefix(`/webhook`)"),
            [t("n8n.example.com", "/webhook")]
        );
        assert_eq!(
            hosts("Host(`a.example.com`) || Host(`B.example.com`)"),
            [t("a.example.com", "/"), t("b.example.com", "/")]
        );
        assert_eq!(
            hosts("(Host(`a.x`) || Host(`b.x`)) && (Path(`/api`) || Path(`/v1`))"),
            [t("a.x", "/api"), t("b.x", "/api")]
        );
        assert_eq!(
            hosts("Host(`t.example.com`) && (PathPrefix(`/api`) || PathPrefix(`/dashboard`))"),
            [t("t.example.com", "/api")]
        );
        // Negated hosts are not routed hosts; !(A || B) is !A && !B.
        assert_eq!(hosts("Host(`a.x`) && !Host(`b.x`)"), [t("a.x", "/")]);
        assert_eq!(hosts("!(!Host(`a.x`))"), [t("a.x", "/")]);
        assert!(hosts("!(Host(`a.x`) || Host(`b.x`))").is_empty());
        // Two different hosts at once never match, and the notes say so.
        assert!(hosts("Host(`a.x`) && Host(`b.x`)").is_empty());
        let a = analyse(&parse("Host(`a.x`) && Host(`b.x`)").unwrap());
        assert!(a.notes[0].contains("can never match"), "{:?}", a.notes);
        // Precedence: && binds tighter than ||.
        assert_eq!(
            hosts("Host(`a.x`) || Host(`b.x`) && Path(`/p`)"),
            [t("a.x", "/"), t("b.x", "/p")]
        );
    }

    #[test]
    fn go_string_literals_and_matcher_spellings() {
        assert_eq!(hosts(r#"Host("a.example.com")"#), [t("a.example.com", "/")]);
        assert_eq!(
            hosts(r#"host("\x61\u0062.x") && PATH("/\"q\"")"#),
            [t("ab.x", "/\"q\"")]
        );
        assert_eq!(hosts("HOST(`a.x`)"), [t("a.x", "/")]);
        assert_eq!(hosts("Pathprefix(`/p`) && Host(`a.x`)"), [t("a.x", "/p")]);
        assert!(parse("hOST(`a.x`)").is_err(), "mixed case is not accepted");
        assert_eq!(
            parse(r#"Header(`X-A`, "b") && Query(`k`) && Query(`k`, `v`) && ClientIP(`10.0.0.0/8`) && Method(`GET`)"#)
                .map(|_| ()),
            Ok(())
        );
    }

    #[test]
    fn unprobeable_rules_say_why() {
        let a = analyse(&parse("HostRegexp(`^.+\\.example\\.com$`)").unwrap());
        assert!(a.targets.is_empty());
        assert!(a.notes[0].contains("names no fixed host"), "{:?}", a.notes);
        let a = analyse(&parse("PathPrefix(`/`)").unwrap());
        assert!(a.notes[0].contains("matches any host"), "{:?}", a.notes);
        let a = analyse(&parse("Host(`*.example.com`)").unwrap());
        assert!(a.notes[0].contains("wildcard"), "{:?}", a.notes);
        // Hosts that are not host names are never probed.
        for bad in [
            "Host(``)",
            "Host(\"probe.test\\r\\nX-Injected: yes\")",
            "Host(`a b`)",
            "Host(`a.x:443`)",
        ] {
            let a = analyse(&parse(bad).unwrap());
            assert!(a.targets.is_empty(), "{bad}: {:?}", a.targets);
            assert!(a.notes[0].contains("cannot be probed"), "{bad}: {:?}", a.notes);
        }
        assert_eq!(hosts("Host(`::1`)"), [t("::1", "/")]);
    }

    #[test]
    fn broken_rules_are_errors_with_a_position() {
        for (rule, msg) in [
            ("", "empty rule"),
            ("Host(`a.x`", "expected ')'"),
            ("Host(`a.x)", "unterminated `raw string`"),
            ("Host('a.x')", "single quotes"),
            ("Host(`a`, `b`)", "one host per Host()"),
            ("Hots(`a.x`)", "unknown matcher Hots"),
            ("Host(`a.x`) & Path(`/`)", "must be doubled"),
            ("Host(`a.x`) Path(`/`)", "unexpected name Path"),
            ("Host(ax)", "takes string arguments"),
            ("Host(a.x)", "unexpected character '.'"),
            ("Host(\"a\\qb\")", "unknown escape"),
            ("Host(\"abc)", "unterminated \"string\""),
            ("(Host(`a`)", "expected ')'"),
            ("Host(`a`) ||", "found the end of the rule"),
            ("Host(`a`) $", "unexpected character '$'"),
            ("Header(`X`)", "Header takes 2 argument(s)"),
        ] {
            let e = parse(rule).unwrap_err();
            assert!(e.message.contains(msg), "{rule:?}: {e}");
        }
        assert_eq!(parse("Host(`a`) $").unwrap_err().at, 10);
    }

    #[test]
    fn hostile_rules_are_bounded() {
        let deep = "(".repeat(10_000) + "Host(`a`)" + &")".repeat(10_000);
        assert!(parse(&deep).unwrap_err().message.contains("deeper"));
        let nots = "!".repeat(10_000) + "Host(`a`)";
        assert!(parse(&nots).is_err());
        let wide = vec!["(Host(`a`) || Host(`b`))"; 20].join(" && ");
        let a = analyse(&parse(&wide).unwrap());
        assert!(a.notes[0].contains("more than 256 alternatives"), "{:?}", a.notes);
        assert!(parse(&"x".repeat(MAX_RULE_BYTES + 1)).is_err());
    }
}
