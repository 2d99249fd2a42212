//! Human output (aligned tables, short reports) by default; `--json` for scripts: one JSON
//! document per command, or JSON lines for lists. A spinner on standard error while a long
//! call runs, only when standard error is a terminal.

use serde_json::Value;
use std::io::IsTerminal;
use std::time::Duration;

/// How the command prints.
#[derive(Clone, Copy)]
pub struct Out {
    pub json: bool,
}

impl Out {
    /// One result: pretty JSON, or the human text.
    pub fn object(&self, v: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
            );
        } else {
            println!("{}", human(v));
        }
    }

    /// Rows of a list: JSON lines, or a table of `columns` (header, member).
    pub fn rows(&self, rows: &[Value], columns: &[(&str, &str)]) {
        if self.json {
            for r in rows {
                println!("{r}");
            }
            return;
        }
        if rows.is_empty() {
            println!("(none)");
            return;
        }
        println!("{}", table(rows, columns));
    }
}

/// A table: a header line, then one line per row, columns padded to their widest cell.
pub fn table(rows: &[Value], columns: &[(&str, &str)]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|(_, key)| cell(&r[*key])).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (h, _))| {
            cells
                .iter()
                .map(|row| row[i].chars().count())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<&str>| {
        let parts: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        parts.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(columns.iter().map(|(h, _)| *h).collect())];
    for row in &cells {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

/// One table cell: strings bare, null empty, long values cut.
fn cell(v: &Value) -> String {
    let s = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// Runs `f` with a spinner saying `what` on standard error (none when it is not a terminal).
pub fn spinner<T>(what: &str, f: impl FnOnce() -> T) -> T {
    if !std::io::stderr().is_terminal() {
        return f();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    let out = f();
    bar.finish_and_clear();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_and_cut() {
        let rows = [
            json!({"id": 1, "label": "first", "x": null}),
            json!({"id": 22, "label": "a".repeat(80), "x": true}),
        ];
        let t = table(&rows, &[("ID", "id"), ("LABEL", "label"), ("X", "x")]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ID  LABEL"), "{t}");
        assert!(lines[1].starts_with("1   first"), "{t}");
        assert!(lines[2].contains("..."), "{t}");
        assert!(lines[2].ends_with("true"), "{t}");
    }
}
