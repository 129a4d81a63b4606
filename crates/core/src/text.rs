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

/// A length of time for a person, to the two largest units: `45 s`, `12 min`,
/// `3 h 5 min`, `2 days 4 h`. Negative lengths are written as zero.
pub fn human_duration(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 {
        secs.round() as u64
    } else {
        0
    };
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let days = |d: u64| {
        if d == 1 {
            "1 day".to_string()
        } else {
            format!("{d} days")
        }
    };
    match (d, h, m) {
        (0, 0, 0) => format!("{sec} s"),
        (0, 0, m) if sec == 0 || m >= 10 => format!("{m} min"),
        (0, 0, m) => format!("{m} min {sec} s"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => days(d),
        (d, h, _) => format!("{} {h} h", days(d)),
    }
}

/// Colour for the text view: only when standard output is a terminal and `NO_COLOR`
/// is not set (to anything but the empty string; no-color.org).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Paint {
    pub on: bool,
}

impl Paint {
    /// Colour or not, from the environment and standard output.
    pub fn for_stdout() -> Paint {
        Paint::decide(
            std::io::IsTerminal::is_terminal(&std::io::stdout()),
            std::env::var_os("NO_COLOR").as_deref(),
        )
    }

    /// The rule itself: a terminal, and `NO_COLOR` unset or empty.
    pub fn decide(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> Paint {
        Paint {
            on: terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }

    fn paint(self, style: anstyle::Style, text: &str) -> String {
        if self.on {
            format!("{style}{text}{style:#}")
        } else {
            text.to_string()
        }
    }

    /// A problem: red and bold.
    pub fn bad(self, text: &str) -> String {
        self.paint(
            anstyle::Style::new()
                .bold()
                .fg_color(Some(anstyle::AnsiColor::Red.into())),
            text,
        )
    }

    /// Something to look at: yellow.
    pub fn warn(self, text: &str) -> String {
        self.paint(
            anstyle::Style::new().fg_color(Some(anstyle::AnsiColor::Yellow.into())),
            text,
        )
    }

    /// All is well: green.
    pub fn good(self, text: &str) -> String {
        self.paint(
            anstyle::Style::new().fg_color(Some(anstyle::AnsiColor::Green.into())),
            text,
        )
    }

    /// A heading: bold.
    pub fn head(self, text: &str) -> String {
        self.paint(anstyle::Style::new().bold(), text)
    }
}

/// How a row of a text view is marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mark {
    #[default]
    None,
    /// Something to look at (yellow on a terminal).
    Warn,
    /// A problem (red on a terminal).
    Bad,
}

/// A table view for people: the header in bold, the rows `marked` as having a problem
/// in red (on a terminal), then a "Problems" list, one `!` line each, wrapped to `width`.
pub fn marked_table(
    table: &Table,
    marked: &[bool],
    problems: &[String],
    paint: Paint,
    width: Option<usize>,
) -> String {
    let marks: Vec<Mark> = marked
        .iter()
        .map(|&b| if b { Mark::Bad } else { Mark::None })
        .collect();
    let mut out = levelled_table(table, &marks, paint, width);
    out.push_str(&problem_list(problems, paint, width));
    out
}

/// The table with its header in bold and each row painted as its [`Mark`] says.
pub fn levelled_table(table: &Table, marks: &[Mark], paint: Paint, width: Option<usize>) -> String {
    let mut out = String::new();
    for (i, line) in table.render_within(width).lines().enumerate() {
        let mark = if i == 0 { None } else { marks.get(i - 1).copied() };
        out.push_str(&match (i, mark) {
            (0, _) => paint.head(line),
            (_, Some(Mark::Bad)) => paint.bad(line),
            (_, Some(Mark::Warn)) => paint.warn(line),
            _ => line.to_string(),
        });
        out.push('\n');
    }
    out
}

/// The "Problems" list of a text view (after a blank line), one `!` line each,
/// wrapped to `width`; nothing when there are none.
pub fn problem_list(problems: &[String], paint: Paint, width: Option<usize>) -> String {
    let mut out = String::new();
    if problems.is_empty() {
        return out;
    }
    out.push('\n');
    out.push_str(&paint.head("Problems"));
    out.push('\n');
    for p in problems {
        let text = wrap(p, width.map(|w| w.saturating_sub(4).max(30)), "");
        let mut lines = text.lines();
        out.push_str(&format!("  {} {}\n", paint.bad("!"), lines.next().unwrap_or("")));
        for l in lines {
            out.push_str(&format!("    {l}\n"));
        }
    }
    out
}

/// `text` broken at spaces into lines of at most `width` characters (a longer word
/// stays whole), each after `indent`; without a width, one line.
pub fn wrap(text: &str, width: Option<usize>, indent: &str) -> String {
    let Some(width) = width else {
        return format!("{indent}{text}");
    };
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
        .iter()
        .map(|l| format!("{indent}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Lines of `label  value`, the labels padded to one width: a status panel.
#[derive(Debug, Clone, Default)]
pub struct Panel {
    lines: Vec<(String, String)>,
}

impl Panel {
    pub fn new() -> Panel {
        Panel::default()
    }

    /// A line; `value` may carry colour (it is not measured).
    pub fn line(&mut self, label: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.lines.push((label.into(), value.into()));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn render(&self) -> String {
        let w = self
            .lines
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (l, v) in &self.lines {
            let line = format!("{l:<w$}  {v}");
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

fn looks_numeric(s: &str) -> bool {
    let s = s.trim_end_matches(['%', 'B', 'K', 'M', 'G', 'i', 's', 'W', 'V', 'C']);
    !s.is_empty() && s.parse::<f64>().is_ok()
}

/// Bytes for a person reading a text view, in binary units: `512 B`, `1.5 KiB`, `6.5 GiB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_for_people() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(6_986_858_496), "6.5 GiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_duration(-3.0), "0 s");
        assert_eq!(human_duration(45.4), "45 s");
        assert_eq!(human_duration(125.0), "2 min 5 s");
        assert_eq!(human_duration(720.0), "12 min");
        assert_eq!(human_duration(3.0 * 3600.0 + 300.0), "3 h 5 min");
        assert_eq!(human_duration(86_400.0 + 7200.0), "1 day 2 h");
        assert_eq!(human_duration(3.0 * 86_400.0 + 59.0), "3 days");
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        let set = Some(std::ffi::OsStr::new("1"));
        let empty = Some(std::ffi::OsStr::new(""));
        assert!(Paint::decide(true, None).on);
        assert!(Paint::decide(true, empty).on, "an empty NO_COLOR is unset");
        assert!(!Paint::decide(true, set).on);
        assert!(!Paint::decide(false, None).on);
        assert_eq!(Paint { on: false }.bad("hot"), "hot");
        assert_eq!(Paint { on: true }.bad("hot"), "\x1b[1m\x1b[31mhot\x1b[0m");
    }

    #[test]
    fn wraps_at_spaces() {
        assert_eq!(wrap("a bb ccc dddd", Some(6), "> "), "> a bb\n> ccc\n> dddd");
        assert_eq!(
            wrap("averyveryverylongword x", Some(5), ""),
            "averyveryverylongword\nx"
        );
        assert_eq!(wrap("a b", None, ""), "a b");
    }

    #[test]
    fn a_panel_pads_its_labels() {
        let mut p = Panel::new();
        p.line("SoC", "52.3 °C").line("Throttled", "no");
        assert_eq!(p.render(), "SoC        52.3 °C\nThrottled  no\n");
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
