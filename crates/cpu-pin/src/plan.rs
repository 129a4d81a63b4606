//! Targets (what to pin) and the plan file (which target gets which CPUs). The parser
//! is a pure function of the text, so every error is tested on literal input and
//! names its line.
//!
//! ```text
//! # NAME  SELECTOR                                  cpus=LIST  [nice=N] [children]
//! ollama      container=ollama                       cpus=0-2
//! monitoring  comm=prometheus|loki|grafana|node_exporter cpus=3 nice=10
//! ```

use std::collections::HashSet;
use std::fmt;

use regex::Regex;

use crate::cpulist::CpuList;

/// The kernel keeps 15 bytes of a process name (`TASK_COMM_LEN` 16 with the NUL).
pub const COMM_MAX: usize = 15;

/// How a target is found.
#[derive(Debug, Clone)]
pub enum Selector {
    /// One process by id: every thread in `/proc/N/task`.
    Pid(u32),
    /// Processes whose name (`/proc/N/comm`) is exactly one of these.
    Comm(Vec<String>),
    /// Processes whose command line (arguments joined by spaces) matches.
    Match(Regex),
    /// One Docker container by name or id.
    Container(String),
    /// Running Docker containers that carry a label (`key` or `key=value`).
    Label { key: String, value: Option<String> },
    /// A cgroup directory whose cpuset is written.
    Cgroup(String),
}

impl Selector {
    /// Whether the selector finds processes (as opposed to containers or a cgroup).
    pub fn is_process(&self) -> bool {
        matches!(self, Selector::Pid(_) | Selector::Comm(_) | Selector::Match(_))
    }

    pub fn is_docker(&self) -> bool {
        matches!(self, Selector::Container(_) | Selector::Label { .. })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Pid(p) => write!(f, "pid={p}"),
            Selector::Comm(names) => write!(f, "comm={}", names.join("|")),
            Selector::Match(re) => write!(f, "match={}", re.as_str()),
            Selector::Container(c) => write!(f, "container={c}"),
            Selector::Label { key, value: Some(v) } => write!(f, "label={key}={v}"),
            Selector::Label { key, value: None } => write!(f, "label={key}"),
            Selector::Cgroup(p) => write!(f, "cgroup={p}"),
        }
    }
}

/// A selector, and whether the descendants of the processes it finds come along.
#[derive(Debug, Clone)]
pub struct Target {
    pub selector: Selector,
    pub children: bool,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.selector)?;
        if self.children {
            f.write_str(" children")?;
        }
        Ok(())
    }
}

/// One line of a plan.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub target: Target,
    pub cpus: CpuList,
    pub nice: Option<i32>,
    /// Line number in the plan file (1-based), for messages.
    pub line: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub rules: Vec<Rule>,
}

/// Checks the value of `comm=`: names separated by `|`, each at most 15 bytes.
pub fn parse_comm(value: &str) -> Result<Selector, String> {
    let names: Vec<String> = value.split('|').map(str::to_string).collect();
    for n in &names {
        if n.is_empty() {
            return Err(format!("comm={value}: an empty name (names are separated by |)"));
        }
        if n.len() > COMM_MAX {
            return Err(format!(
                "comm={n}: the kernel keeps only the first {COMM_MAX} bytes of a process name, so this never matches: \
use comm={} or match=",
                truncate_bytes(n, COMM_MAX)
            ));
        }
    }
    Ok(Selector::Comm(names))
}

fn truncate_bytes(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub fn parse_match(value: &str) -> Result<Selector, String> {
    if value.is_empty() {
        return Err("match= needs a regular expression".into());
    }
    Regex::new(value).map(Selector::Match).map_err(|e| {
        format!(
            "match={value}: not a regular expression: {}",
            one_line(&e.to_string())
        )
    })
}

pub fn parse_label(value: &str) -> Result<Selector, String> {
    let (key, v) = match value.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (value, None),
    };
    if key.is_empty() {
        return Err(format!("label={value}: expected KEY or KEY=VALUE"));
    }
    Ok(Selector::Label {
        key: key.to_string(),
        value: v,
    })
}

pub fn parse_pid(value: &str) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("pid={value}: not a process id")),
    }
}

pub fn parse_nice(value: &str) -> Result<i32, String> {
    match value.parse::<i32>() {
        Ok(n) if (-20..=19).contains(&n) => Ok(n),
        _ => Err(format!("nice={value}: expected a number from -20 to 19")),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A rule name: letters, digits, `_ . : -` (it becomes a Prometheus label value and
/// a word in logs).
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

/// Parses a plan. `source` names the file in messages (`plan.conf:3: ...`).
pub fn parse(text: &str, source: &str) -> Result<Plan, String> {
    let mut rules = Vec::new();
    let mut names = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let err = |msg: String| format!("{source}:{n}: {msg}");
        let tokens = tokenize(line).map_err(err)?;
        if tokens.is_empty() {
            continue;
        }
        let rule = parse_rule(&tokens, n).map_err(err)?;
        if !names.insert(rule.name.clone()) {
            return Err(err(format!(
                "the rule name {:?} is used twice (names label the metrics: make them unique)",
                rule.name
            )));
        }
        rules.push(rule);
    }
    if rules.is_empty() {
        return Err(format!(
            "{source}: no rules (one per line: NAME SELECTOR cpus=LIST [nice=N] [children], e.g. \
`ollama container=ollama cpus=0-2`)"
        ));
    }
    Ok(Plan { rules })
}

fn parse_rule(tokens: &[String], line: usize) -> Result<Rule, String> {
    let name = &tokens[0];
    if name.contains('=') || !valid_name(name) {
        return Err(format!(
            "a rule starts with its name (letters, digits, _ . : -), then SELECTOR cpus=LIST; got {name:?}"
        ));
    }
    let mut selector: Option<Selector> = None;
    let mut cpus = None;
    let mut nice = None;
    let mut children = false;
    for tok in &tokens[1..] {
        if tok == "children" {
            children = true;
            continue;
        }
        let Some((key, value)) = tok.split_once('=') else {
            return Err(format!(
                "{tok:?} is not KEY=VALUE (keys: pid, comm, match, container, label, cgroup, cpus, nice; or the word children)"
            ));
        };
        let sel = match key {
            "pid" => Some(Selector::Pid(parse_pid(value)?)),
            "comm" => Some(parse_comm(value)?),
            "match" => Some(parse_match(value)?),
            "container" if !value.is_empty() => Some(Selector::Container(value.to_string())),
            "container" => return Err("container= needs a container name or id".into()),
            "label" => Some(parse_label(value)?),
            "cgroup" if !value.is_empty() => Some(Selector::Cgroup(value.to_string())),
            "cgroup" => return Err("cgroup= needs a cgroup directory".into()),
            "cpus" => {
                if cpus.is_some() {
                    return Err("cpus= is given twice".into());
                }
                let list = CpuList::parse(value).map_err(|e| format!("cpus={e}"))?;
                if list.is_empty() {
                    return Err("cpus= is empty: a target needs at least one CPU".into());
                }
                cpus = Some(list);
                None
            }
            "nice" => {
                if nice.is_some() {
                    return Err("nice= is given twice".into());
                }
                nice = Some(parse_nice(value)?);
                None
            }
            other => {
                return Err(format!(
                    "unknown key {other:?} (keys: pid, comm, match, container, label, cgroup, cpus, nice; or the word children)"
                ));
            }
        };
        if let Some(sel) = sel {
            if let Some(prev) = &selector {
                return Err(format!(
                    "two selectors ({prev} and {sel}): a rule has one; write two rules"
                ));
            }
            selector = Some(sel);
        }
    }
    let selector = selector.ok_or_else(|| {
        format!("rule {name:?} has no selector (pid=, comm=, match=, container=, label= or cgroup=)")
    })?;
    let cpus = cpus.ok_or_else(|| format!("rule {name:?} has no cpus= (e.g. cpus=0-2)"))?;
    if children && !selector.is_process() {
        return Err(format!(
            "children goes with pid=, comm= or match=, not {selector} (a container's or cgroup's processes are all covered anyway)"
        ));
    }
    if nice.is_some() && matches!(selector, Selector::Cgroup(_)) {
        return Err("nice= goes with processes and containers, not with cgroup=".into());
    }
    Ok(Rule {
        name: name.clone(),
        target: Target { selector, children },
        cpus,
        nice,
        line,
    })
}

/// Splits a line into words. `#` starts a comment (outside quotes); a value may be
/// quoted with `"` (`match="python3 .*bot\.py"`), where `\"` and `\\` stand for `"`
/// and `\`.
fn tokenize(line: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '#' if !in_word => break,
            c if c.is_whitespace() => {
                if in_word {
                    tokens.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err("a quote \" is not closed".into()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\')) => cur.push(e),
                            Some(e) => {
                                cur.push('\\');
                                cur.push(e);
                            }
                            None => return Err("a quote \" is not closed".into()),
                        },
                        Some(ch) => cur.push(ch),
                    }
                }
            }
            c if c.is_control() => {
                return Err(format!("a control character {:?} in the line", c));
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        tokens.push(cur);
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_issue_example_with_comments() {
        let plan = parse(
            "# the Pi's layout\n\
             \n\
             ollama container=ollama cpus=0-2   # three cores for the LLM\n\
             monitoring comm=prometheus|loki|grafana|node_exporter cpus=3 nice=10\n\
             bots match=\"python3 .*bot\\.py\" children cpus=3\n\
             n8n label=com.docker.compose.service=n8n cpus=3\n\
             slice cgroup=/sys/fs/cgroup/ollama.slice cpus=0-2\n\
             one pid=4242 cpus=1,3\n",
            "plan.conf",
        )
        .unwrap();
        let r = &plan.rules;
        assert_eq!(r.len(), 6);
        assert_eq!(r[0].name, "ollama");
        assert_eq!(r[0].target.to_string(), "container=ollama");
        assert_eq!(r[0].cpus.to_string(), "0-2");
        assert_eq!(r[0].line, 3);
        assert_eq!(
            r[1].target.to_string(),
            "comm=prometheus|loki|grafana|node_exporter"
        );
        assert_eq!(r[1].nice, Some(10));
        assert_eq!(r[2].target.to_string(), "match=python3 .*bot\\.py children");
        assert!(r[2].target.children);
        assert!(
            matches!(&r[3].target.selector, Selector::Label { key, value: Some(v) } if key == "com.docker.compose.service" && v == "n8n")
        );
        assert_eq!(r[4].target.to_string(), "cgroup=/sys/fs/cgroup/ollama.slice");
        assert_eq!(r[5].cpus.to_string(), "1,3");
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("a comm=x\nb comm=y cpus=1\n", "plan:1: rule \"a\" has no cpus="),
            (
                "a comm=x cpus=1\n\nb cpu=2 comm=y\n",
                "plan:3: unknown key \"cpu\"",
            ),
            (
                "a comm=x cpus=2-1\n",
                "plan:1: cpus=\"2-1\": the range 2-1 runs backwards",
            ),
            ("a comm=x cpus=\n", "plan:1: cpus= is empty"),
            ("a cpus=1\n", "plan:1: rule \"a\" has no selector"),
            (
                "a comm=x pid=3 cpus=1\n",
                "plan:1: two selectors (comm=x and pid=3)",
            ),
            (
                "a comm=x cpus=1 nice=30\n",
                "plan:1: nice=30: expected a number from -20 to 19",
            ),
            ("a match=( cpus=1\n", "plan:1: match=(: not a regular expression"),
            ("a match=\"x cpus=1\n", "plan:1: a quote \" is not closed"),
            ("comm=x cpus=1\n", "plan:1: a rule starts with its name"),
            (
                "a comm=x cpus=1\na comm=y cpus=0\n",
                "plan:2: the rule name \"a\" is used twice",
            ),
            (
                "a comm=prometheus-node-exporter cpus=1\n",
                "plan:1: comm=prometheus-node-exporter: the kernel keeps only the first 15 bytes",
            ),
            ("a comm=x| cpus=1\n", "plan:1: comm=x|: an empty name"),
            (
                "a container=x children cpus=1\n",
                "plan:1: children goes with pid=, comm= or match=",
            ),
            (
                "a cgroup=/x nice=3 cpus=1\n",
                "plan:1: nice= goes with processes and containers",
            ),
            ("a pid=0 cpus=1\n", "plan:1: pid=0: not a process id"),
            ("a comm=x cpus=1 stray\n", "plan:1: \"stray\" is not KEY=VALUE"),
            ("# nothing\n\n", "plan: no rules"),
            ("a comm=x\u{7} cpus=1\n", "plan:1: a control character"),
        ];
        for (text, want) in cases {
            let e = parse(text, "plan").unwrap_err();
            assert!(e.starts_with(want), "{text:?}\n  got:  {e}\n  want: {want}...");
        }
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(
            tokenize(r#"a match="x \"y\" \\ \d" b"#).unwrap(),
            ["a", r#"match=x "y" \ \d"#, "b"]
        );
        assert_eq!(tokenize("  # only a comment").unwrap(), Vec::<String>::new());
        assert_eq!(tokenize("a b#c").unwrap(), ["a", "b#c"]);
    }
}
