//! Aligned columns for `--format text`.

use crate::prom::{Page, format_value};

/// A table: a header row and rows of cells; numeric-looking columns align right.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: AsRef<str>>(headers: &[S]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.as_ref().to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        let mut r: Vec<String> = cells.into_iter().map(Into::into).collect();
        r.resize(self.headers.len(), String::new());
        self.rows.push(r);
        self
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Every metric of a page as `METRIC  LABELS  VALUE` rows: the text view of a tool
    /// whose data is best read as its metrics.
    pub fn from_page(page: &Page) -> Self {
        let mut t = Table::new(&["METRIC", "LABELS", "VALUE"]);
        for f in page.families() {
            for s in &f.samples {
                let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                t.row([f.name.clone(), labels.join(","), format_value(s.value)]);
            }
        }
        t
    }

    /// The table as text, within the screen's width ([`screen_width`]).
    pub fn render(&self) -> String {
        self.render_within(screen_width())
    }

    /// The table as text. With `max` columns, the widest text columns are cut (a cut
    /// cell ends in `…`) until a line fits, but no column below [`MIN_CUT`];
    /// numbers are never cut.
    pub fn render_within(&self, max: Option<usize>) -> String {
        let cols = self.headers.len();
        let width = |i: usize| {
            self.rows
                .iter()
                .map(|r| r[i].chars().count())
                .chain([self.headers[i].chars().count()])
                .max()
                .unwrap_or(0)
        };
        let mut widths: Vec<usize> = (0..cols).map(width).collect();
        let numeric: Vec<bool> = (0..cols)
            .map(|i| {
                self.rows.iter().any(|r| !r[i].is_empty())
                    && self
                        .rows
                        .iter()
                        .all(|r| r[i].is_empty() || r[i] == "-" || looks_numeric(&r[i]))
            })
            .collect();
        if let Some(max) = max {
            let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * w.len().saturating_sub(1);
            while total(&widths) > max {
                let Some(i) = (0..cols)
                    .filter(|&i| !numeric[i] && widths[i] > MIN_CUT)
                    .max_by_key(|&i| widths[i])
                else {
                    break;
                };
                let over = total(&widths) - max;
                widths[i] = widths[i].saturating_sub(over).max(MIN_CUT);
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(self.rows.iter()) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let cut;
                let cell = if cell.chars().count() > widths[i] {
                    cut = cell.chars().take(widths[i] - 1).chain(['…']).collect::<String>();
                    &cut
                } else {
                    cell
                };
                let pad = widths[i] - cell.chars().count();
                if i > 0 {
                    line.push_str("  ");
                }
                if numeric[i] {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    if i + 1 < cols {
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// The narrowest a text column is cut to.
pub const MIN_CUT: usize = 8;

/// Columns a table may take: `$COLUMNS` when set, else the terminal's width when
/// standard output is one, else no limit (a pipe or a file gets whole lines).
pub fn screen_width() -> Option<usize> {
    if let Some(n) = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse().ok())
        && n > 0
    {
        return Some(n);
    }
    let stdout = std::io::stdout();
    if std::io::IsTerminal::is_terminal(&stdout) {
        return rustix::termios::tcgetwinsize(&stdout)
            .ok()
            .map(|w| usize::from(w.ws_col))
            .filter(|&c| c > 0);
    }
    None
}

fn looks_numeric(s: &str) -> bool {
    let s = s.trim_end_matches(['%', 'B', 'K', 'M', 'G', 'i', 's', 'W', 'V', 'C']);
    !s.is_empty() && s.parse::<f64>().is_ok()
}

/// Binary byte units, for a person.
const BINARY: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
/// Decimal byte units, as docker stats writes I/O.
const DECIMAL: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];

/// `v` divided by `step` until it is below it, and the unit it is then in.
fn scale<'a>(v: u64, step: f64, units: &[&'a str]) -> (f64, &'a str) {
    let mut v = v as f64;
    let mut i = 0;
    while v >= step && i + 1 < units.len() {
        v /= step;
        i += 1;
    }
    (v, units[i])
}

/// Bytes for a person reading a text view: `512 B`, `1.5 KiB`, `6.5 GiB`.
pub fn human_bytes(b: u64) -> String {
    match scale(b, 1024.0, &BINARY) {
        (_, "B") => format!("{b} B"),
        (v, unit) => format!("{v:.1} {unit}"),
    }
}

/// Bytes in binary units as docker stats shows memory, four significant digits and
/// no space (`12.5MiB`), for a table read beside it.
pub fn binary_size(b: u64) -> String {
    let (v, unit) = scale(b, 1024.0, &BINARY);
    four_digits(v) + unit
}

/// Bytes in decimal units as docker stats shows I/O (`1.235MB`).
pub fn decimal_size(b: u64) -> String {
    let (v, unit) = scale(b, 1000.0, &DECIMAL);
    four_digits(v) + unit
}

/// Four significant digits, as docker's `%.4g`.
fn four_digits(v: f64) -> String {
    let int_digits = if v < 1.0 {
        1
    } else {
        v.log10().floor() as usize + 1
    };
    let decimals = 4usize.saturating_sub(int_digits);
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(binary_size(0), "0B");
        assert_eq!(binary_size(1_572_864), "1.5MiB");
        assert_eq!(binary_size(130_023_424), "124MiB");
        assert_eq!(decimal_size(1_234_567), "1.235MB");
        assert_eq!(decimal_size(999), "999B");
    }

    #[test]
    fn aligns_text_left_and_numbers_right() {
        let mut t = Table::new(&["NAME", "CPU %"]);
        t.row(["ollama", "312.5"]).row(["n8n", "1.2"]);
        assert_eq!(
            t.render_within(None),
            "NAME    CPU %\nollama  312.5\nn8n       1.2\n"
        );
    }

    #[test]
    fn a_wide_table_is_cut_to_the_screen_in_its_text_columns() {
        let mut t = Table::new(&["NAME", "CPU %", "PROBLEMS"]);
        t.row(["ollama", "312.5", "memory above 90 % of its limit for 5 minutes"]);
        t.row(["n8n", "1.2", ""]);
        let text = t.render_within(Some(40));
        for line in text.lines() {
            assert!(line.chars().count() <= 40, "{line:?}");
        }
        assert!(text.contains("312.5"), "numbers are never cut: {text}");
        assert!(text.contains("memory above 90 % of its…"), "{text}");
        // Nothing to cut below the minimum: the line stays whole rather than unreadable.
        let text = t.render_within(Some(10));
        assert!(text.contains("312.5") && text.contains("ollama"), "{text}");
    }
}
