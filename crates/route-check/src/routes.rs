//! What to probe: the route model every source produces, `--route HOST[/PATH]`,
//! `--routes-file FILE`, and the expected status codes.

use std::fmt;

use serde::Serialize;

/// Where a route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// `--traefik-api URL`.
    TraefikApi,
    /// `--docker`: containers' `traefik.*` labels.
    Docker,
    /// `--route`.
    Flag,
    /// `--routes-file`.
    File,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::TraefikApi => "traefik-api",
            Source::Docker => "docker",
            Source::Flag => "flag",
            Source::File => "file",
        }
    }
}

/// Status codes that count as a working route: ranges, inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect(pub Vec<(u16, u16)>);

impl Default for Expect {
    /// 2xx or 3xx.
    fn default() -> Self {
        Expect(vec![(200, 399)])
    }
}

impl Expect {
    pub fn accepts(&self, code: u16) -> bool {
        self.0.iter().any(|(lo, hi)| (*lo..=*hi).contains(&code))
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Parses `200,301-308,4xx`.
pub fn parse_expect(s: &str) -> Result<Expect, String> {
    let mut ranges = Vec::new();
    for part in s.split(',').map(str::trim) {
        let bad =
            || format!("{part:?} is not a status code, a range such as 200-299, or a class such as 2xx");
        let code = |t: &str| t.parse::<u16>().ok().filter(|c| (100..=599).contains(c));
        let range = if let Some(class) = part.strip_suffix("xx").or_else(|| part.strip_suffix("XX")) {
            let d = class
                .parse::<u16>()
                .ok()
                .filter(|d| (1..=5).contains(d))
                .ok_or_else(bad)?;
            (d * 100, d * 100 + 99)
        } else if let Some((lo, hi)) = part.split_once('-') {
            let (lo, hi) = (code(lo.trim()).ok_or_else(bad)?, code(hi.trim()).ok_or_else(bad)?);
            if lo > hi {
                return Err(format!("{part:?}: the range runs backwards"));
            }
            (lo, hi)
        } else {
            let c = code(part).ok_or_else(bad)?;
            (c, c)
        };
        ranges.push(range);
    }
    Ok(Expect(ranges))
}

/// One thing to probe (or, with `host: None`, a router that cannot be probed and
/// says why in `errors`).
#[derive(Debug, Clone, PartialEq)]
pub struct RouteSpec {
    /// The router's name as Traefik shows it (`grafana@docker`), or the `--route`
    /// argument for routes given by hand.
    pub router: String,
    pub source: Source,
    pub host: Option<String>,
    pub path: String,
    /// The HTTPS port, when the route is probed at its own address (443).
    pub port: u16,
    pub rule: Option<String>,
    pub entry_points: Vec<String>,
    /// Whether the router has TLS configured (null for routes given by hand).
    pub router_tls: Option<bool>,
    /// Traefik's status of the router (`enabled`, `warning`, `disabled`).
    pub router_status: Option<String>,
    pub service: Option<String>,
    pub service_status: Option<String>,
    /// Servers of the service that Traefik's health check reports as not UP.
    pub servers_down: Vec<String>,
    /// Expected status codes for this route (else the `--expect` default).
    pub expect: Option<Expect>,
    /// Problems the source found with this router.
    pub errors: Vec<String>,
    /// Whether those problems make the route critical (a rule that does not parse,
    /// a router Traefik disabled) rather than a warning (a rule with no fixed host).
    pub broken: bool,
}

impl RouteSpec {
    pub fn new(router: impl Into<String>, source: Source) -> Self {
        RouteSpec {
            router: router.into(),
            source,
            host: None,
            path: "/".into(),
            port: 443,
            rule: None,
            entry_points: Vec::new(),
            router_tls: None,
            router_status: None,
            service: None,
            service_status: None,
            servers_down: Vec::new(),
            expect: None,
            errors: Vec::new(),
            broken: false,
        }
    }

    /// `https://host[:port]/path`.
    pub fn url(&self) -> Option<String> {
        let host = self.host.as_deref()?;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let port = if self.port == 443 {
            String::new()
        } else {
            format!(":{}", self.port)
        };
        Some(format!("https://{host}{port}{}", self.path))
    }
}

/// Parses `HOST[:PORT][/PATH]` (an `https://` prefix is allowed, in any case).
/// IPv6 addresses go in brackets: `[2001:db8::1]:443/x`.
pub fn parse_route(arg: &str, source: Source) -> Result<RouteSpec, String> {
    let s = arg.trim();
    let scheme = |p: &str| s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
    if scheme("http://") {
        return Err(format!(
            "{arg:?}: routes are probed over HTTPS; give the host without http://"
        ));
    }
    let s = if scheme("https://") { &s[8..] } else { s };
    let (authority, path) = match s.find('/') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "/"),
    };
    if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(format!("{arg:?}: the path has spaces or control characters"));
    }
    let (host, port) = split_host_port(authority).map_err(|e| format!("{arg:?}: {e}"))?;
    let mut r = RouteSpec::new(arg.trim(), source);
    r.host = Some(host);
    r.path = path.to_string();
    r.port = port.unwrap_or(443);
    Ok(r)
}

fn split_host_port(a: &str) -> Result<(String, Option<u16>), String> {
    if a.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err("the host has spaces or control characters".into());
    }
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or("unclosed [ in an IPv6 address")?;
        h.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("{h:?} is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(format!("{p:?} after ] is not :PORT"))?),
        };
        (h.to_string(), port)
    } else if a.matches(':').count() > 1 {
        return Err(format!(
            "{a:?}: an IPv6 address goes in brackets, e.g. [{a}] or [{a}]:443"
        ));
    } else {
        match a.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (a.to_string(), None),
        }
    };
    let host = check_host(&host)?;
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or(format!("{p:?} is not a port"))
        })
        .transpose()?;
    Ok((host, port))
}

/// A host as route-check sends it (SNI and Host header), lower-cased: a DNS name
/// (letters, digits, `-` and `_` in dot-separated labels; punycode for international
/// names), an IPv4 address, or an IPv6 address (bare, or in brackets). Everything
/// else is refused, so nothing from a rule, a label or the command line can add a
/// header to a request.
pub fn check_host(h: &str) -> Result<String, String> {
    if h.is_empty() {
        return Err("empty host name".into());
    }
    if h.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(format!("{h:?} is not a host name (spaces or control characters)"));
    }
    let bare = h.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(h);
    if let Ok(a) = bare.parse::<std::net::Ipv6Addr>() {
        return Ok(a.to_string());
    }
    if h.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(h.to_string());
    }
    if h.contains(':') {
        return Err(format!(
            "{h:?} is not a host name (an IPv6 address goes in brackets: [2001:db8::1]:443)"
        ));
    }
    if valid_host(h) {
        Ok(h.to_ascii_lowercase())
    } else {
        Err(format!(
            "{h:?} is not a host name (letters, digits, - and _ in labels of up to 63 bytes; punycode for international names)"
        ))
    }
}

/// Letters, digits, `-`, `_` and dots, in labels of at most 63 bytes.
pub fn valid_host(h: &str) -> bool {
    h.len() <= 253
        && h.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Parses a routes file: one `HOST[:PORT][/PATH]` per line, optionally followed by
/// `expect=CODES`; `#` starts a comment. Errors name the line.
pub fn parse_routes_file(text: &str) -> Result<Vec<RouteSpec>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let Some(route) = words.next() else { continue };
        let mut r = parse_route(route, Source::File).map_err(|e| format!("line {}: {e}", i + 1))?;
        for w in words {
            match w.split_once('=') {
                Some(("expect", v)) => {
                    r.expect = Some(parse_expect(v).map_err(|e| format!("line {}: {e}", i + 1))?);
                }
                _ => {
                    return Err(format!(
                        "line {}: unknown option {w:?} (only expect=CODES)",
                        i + 1
                    ));
                }
            }
        }
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_hand() {
        let r = parse_route("Grafana.example.com/login", Source::Flag).unwrap();
        assert_eq!(
            (r.host.as_deref(), r.path.as_str(), r.port),
            (Some("grafana.example.com"), "/login", 443)
        );
        assert_eq!(r.router, "Grafana.example.com/login");
        let r = parse_route("https://n8n.lan:8443", Source::Flag).unwrap();
        assert_eq!(
            (r.host.as_deref(), r.path.as_str(), r.port),
            (Some("n8n.lan"), "/", 8443)
        );
        assert_eq!(r.url().unwrap(), "https://n8n.lan:8443/");
        let r = parse_route("[::1]:4443/x", Source::Flag).unwrap();
        assert_eq!(r.url().unwrap(), "https://[::1]:4443/x");
        let r = parse_route("HTTPS://[2001:DB8::1]", Source::Flag).unwrap();
        assert_eq!((r.host.as_deref(), r.port), (Some("2001:db8::1"), 443));
        // Unbracketed IPv6 addresses are refused, saying how to write them.
        for v6 in ["::1", "2001:db8::1", "2001:db8::1:443"] {
            let e = parse_route(v6, Source::Flag).unwrap_err();
            assert!(e.contains("goes in brackets"), "{v6}: {e}");
        }
        // Nothing that could smuggle a header into a request.
        for bad in [
            "x\r\nEvil: 1:z:443",
            "x\r\nEvil:443",
            "a\u{0}b",
            "[::1]x",
            "ünï.x",
        ] {
            assert!(parse_route(bad, Source::Flag).is_err(), "{bad:?}");
        }
        for bad in [
            "",
            "/x",
            "http://a.x",
            "a b",
            "a.x:99999",
            "a.x:0",
            "a..x",
            "[::1",
            "a.x/p q",
        ] {
            assert!(parse_route(bad, Source::Flag).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn routes_files() {
        let f = "# the stack\n\ngrafana.example.com\nollama.example.com/api/tags expect=401  # behind auth\n";
        let rs = parse_routes_file(f).unwrap();
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[1].expect, Some(Expect(vec![(401, 401)])));
        assert_eq!(rs[1].source, Source::File);
        assert_eq!(
            parse_routes_file("a.x\nb.x bogus=1\n").unwrap_err(),
            "line 2: unknown option \"bogus=1\" (only expect=CODES)"
        );
        assert!(
            parse_routes_file("a.x\n\u{0}\n")
                .unwrap_err()
                .starts_with("line 2:")
        );
    }

    #[test]
    fn expected_codes() {
        let e = parse_expect("200, 301-308,4xx").unwrap();
        assert!(e.accepts(200) && e.accepts(302) && e.accepts(404) && !e.accepts(500) && !e.accepts(201));
        assert_eq!(e.to_string(), "200,301-308,400-499");
        assert!(Expect::default().accepts(302) && !Expect::default().accepts(401));
        for bad in ["", "abc", "99", "600", "300-200", "6xx", "2xx,"] {
            assert!(parse_expect(bad).is_err(), "{bad:?}");
        }
    }
}
