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

    pub fn render(&self) -> String {
        let cols = self.headers.len();
        let width = |i: usize| {
            self.rows
                .iter()
                .map(|r| r[i].chars().count())
                .chain([self.headers[i].chars().count()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..cols).map(width).collect();
        let numeric: Vec<bool> = (0..cols)
            .map(|i| {
                self.rows.iter().any(|r| !r[i].is_empty())
                    && self
                        .rows
                        .iter()
                        .all(|r| r[i].is_empty() || r[i] == "-" || looks_numeric(&r[i]))
            })
            .collect();
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(self.rows.iter()) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
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

fn looks_numeric(s: &str) -> bool {
    let s = s.trim_end_matches(['%', 'B', 'K', 'M', 'G', 'i', 's', 'W', 'V', 'C']);
    !s.is_empty() && s.parse::<f64>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_text_left_and_numbers_right() {
        let mut t = Table::new(&["NAME", "CPU %"]);
        t.row(["ollama", "312.5"]).row(["n8n", "1.2"]);
        assert_eq!(t.render(), "NAME    CPU %\nollama  312.5\nn8n       1.2\n");
    }
}
