//! Prometheus text exposition format 0.0.4: a page of metric families, built whole in
//! memory and rendered at once (a half-written page is never seen), and the atomic
//! textfile writer for node_exporter's textfile collector.
//!
//! Rules kept here so no tool has to: one HELP and one TYPE line per family, a
//! family's samples together, label values and HELP escaped, no timestamps (the
//! textfile collector skips a whole file that has one), a final newline, and a family
//! without samples left out (a metric whose source is missing is omitted, never 0).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::exit::{Error, Exit, describe_io};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Gauge,
    Counter,
}

impl MetricType {
    fn as_str(self) -> &'static str {
        match self {
            MetricType::Gauge => "gauge",
            MetricType::Counter => "counter",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

#[derive(Debug, Clone)]
pub struct Family {
    pub name: String,
    pub help: String,
    pub kind: MetricType,
    pub samples: Vec<Sample>,
}

impl Family {
    /// Adds a sample. A second sample with the same labels is ignored: the page must
    /// never hold a duplicate series (debug builds treat it as the bug it is).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        debug_assert!(
            labels.iter().all(|(k, _)| valid_label_name(k)),
            "invalid label name in {labels:?}"
        );
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if self.samples.iter().any(|s| s.labels == labels) {
            debug_assert!(false, "duplicate series {}{labels:?}", self.name);
            return self;
        }
        self.samples.push(Sample { labels, value });
        self
    }

    /// Adds a sample when the value is known; an unknown value is omitted, never 0.
    pub fn maybe(&mut self, labels: &[(&str, &str)], value: Option<f64>) -> &mut Self {
        if let Some(v) = value {
            self.sample(labels, v);
        }
        self
    }
}

/// A whole page of metric families, in the order they were first added.
#[derive(Debug, Clone, Default)]
pub struct Page {
    families: Vec<Family>,
    index: HashMap<String, usize>,
}

impl Page {
    pub fn new() -> Self {
        Page::default()
    }

    /// The gauge family `name`, created on first use (later calls return the same one,
    /// so samples added at different places still render together).
    pub fn gauge(&mut self, name: &str, help: &str) -> &mut Family {
        self.family(name, help, MetricType::Gauge)
    }

    /// The counter family `name` (its name should end in `_total`).
    pub fn counter(&mut self, name: &str, help: &str) -> &mut Family {
        self.family(name, help, MetricType::Counter)
    }

    fn family(&mut self, name: &str, help: &str, kind: MetricType) -> &mut Family {
        debug_assert!(valid_metric_name(name), "invalid metric name {name:?}");
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                self.families.push(Family {
                    name: name.to_string(),
                    help: help.to_string(),
                    kind,
                    samples: Vec::new(),
                });
                self.index.insert(name.to_string(), self.families.len() - 1);
                self.families.len() - 1
            }
        };
        &mut self.families[i]
    }

    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// Looks up one sample's value (for tests and for tools that read their own page).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let f = &self.families[*self.index.get(name)?];
        f.samples
            .iter()
            .find(|s| {
                s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(k2, v2)| k2 == k && v2 == v))
            })
            .map(|s| s.value)
    }

    /// Renders the page. Families without samples are left out.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(256 * self.families.len());
        for f in self.families.iter().filter(|f| !f.samples.is_empty()) {
            let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.as_str());
            for s in &f.samples {
                out.push_str(&f.name);
                if !s.labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in s.labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{k}=\"{}\"", escape_label_value(v));
                    }
                    out.push('}');
                }
                out.push(' ');
                out.push_str(&format_value(s.value));
                out.push('\n');
            }
        }
        out
    }
}

/// A sample value as Prometheus writes it: integers without a fraction, `NaN`, `+Inf`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        // Rust's shortest round-trip form: 59.3, 1500000000, 0.30000000000000004.
        format!("{v}")
    }
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label_value(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Escapes HELP text: backslash and newline.
pub fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

pub fn valid_metric_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

pub fn valid_label_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !n.starts_with("__")
}

/// Writes `text` to `dir/<tool>.prom` atomically: a temporary file in `dir` whose name
/// does not end in `.prom` (so the collector never reads it half-written), fsync,
/// mode 0644, rename over the old file, fsync of the directory.
pub fn write_textfile(dir: &Path, tool: &str, text: &str) -> Result<PathBuf, Error> {
    let target = dir.join(format!("{tool}.prom"));
    let tmp = crate::fs::tmp_beside(&target);
    crate::fs::write_atomic(&target, &tmp, &[text.as_bytes()], Some(0o644)).map_err(|w| {
        let code = match w.err.kind() {
            std::io::ErrorKind::PermissionDenied => Exit::NoPerm,
            std::io::ErrorKind::NotFound => Exit::CantCreate,
            _ if w.doing == "writing" => Exit::IoErr,
            _ => Exit::CantCreate,
        };
        Error::new(
            code,
            format!("{} {}: {}", w.doing, w.tmp.display(), describe_io(&w.err)),
        )
        .hint(format!(
            "check that --textfile-dir {} exists, is writable and has free space",
            dir.display()
        ))
    })?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_grouped_families_with_help_type_and_escapes() {
        let mut p = Page::new();
        p.gauge("pi_temperature_celsius", "Temperature.\nIn \\ degrees.")
            .sample(&[("sensor", "cpu-thermal")], 59.3);
        p.counter("x_total", "A counter.").sample(&[], 3.0);
        p.gauge("pi_temperature_celsius", "ignored")
            .sample(&[("sensor", "a\"b\\c\nd")], 1.0);
        p.gauge("empty", "Never shown.");
        assert_eq!(
            p.render(),
            "# HELP pi_temperature_celsius Temperature.\\nIn \\\\ degrees.\n\
             # TYPE pi_temperature_celsius gauge\n\
             pi_temperature_celsius{sensor=\"cpu-thermal\"} 59.3\n\
             pi_temperature_celsius{sensor=\"a\\\"b\\\\c\\nd\"} 1\n\
             # HELP x_total A counter.\n\
             # TYPE x_total counter\n\
             x_total 3\n"
        );
    }

    #[test]
    fn values_and_names() {
        assert_eq!(format_value(1.5e9), "1500000000");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(-0.25), "-0.25");
        assert!(valid_metric_name("pi_load1"));
        assert!(!valid_metric_name("1pi"));
        assert!(!valid_metric_name("pi-load"));
        assert!(valid_label_name("sensor"));
        assert!(!valid_label_name("__name__"));
    }

    #[test]
    fn maybe_omits_unknown_and_value_finds_samples() {
        let mut p = Page::new();
        p.gauge("a", "A.").maybe(&[], None);
        p.gauge("b", "B.").maybe(&[("x", "1")], Some(2.0));
        assert_eq!(p.render().lines().count(), 3);
        assert_eq!(p.value("b", &[("x", "1")]), Some(2.0));
        assert_eq!(p.value("b", &[]), None);
        assert_eq!(p.value("a", &[]), None);
    }

    #[test]
    fn textfile_is_atomic_and_0644() {
        use std::fs;
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let path = write_textfile(d.path(), "t", "a 1\n").unwrap();
        assert_eq!(path, d.path().join("t.prom"));
        assert_eq!(fs::read_to_string(&path).unwrap(), "a 1\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        write_textfile(d.path(), "t", "a 2\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "a 2\n");
        // Nothing but the .prom file is left behind.
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn textfile_into_missing_dir_is_cant_create() {
        let d = tempfile::tempdir().unwrap();
        let e = write_textfile(&d.path().join("nope"), "t", "a 1\n").unwrap_err();
        assert_eq!(e.code(), Exit::CantCreate);
        assert!(e.to_string().contains("--textfile-dir"), "{e}");
    }
}
