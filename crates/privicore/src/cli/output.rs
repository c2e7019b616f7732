//! How listings print: aligned columns for people, the engine's JSON with `--json` for
//! scripts. Colour goes through `anstream`, which drops it when standard output is not a
//! terminal or `NO_COLOR` is set (`CLICOLOR_FORCE` forces it).

use anstyle::{AnsiColor, Style};
use serde_json::Value;
use std::io::Write;

pub const GOOD: Style = AnsiColor::Green.on_default();
pub const WARN: Style = AnsiColor::Yellow.on_default();
pub const BAD: Style = AnsiColor::Red.on_default().bold();
pub const HEAD: Style = Style::new().bold();
pub const DIM: Style = Style::new().dimmed();

/// `text` in `style`, reset after.
pub fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// Standard output, with colour only where it can be shown.
pub fn stdout() -> anstream::AutoStream<std::io::Stdout> {
    anstream::AutoStream::auto(std::io::stdout())
}

/// A column: its heading and the JSON pointer of its value in an item.
pub struct Column {
    pub head: &'static str,
    pub pointer: &'static str,
}

pub const fn col(head: &'static str, pointer: &'static str) -> Column {
    Column { head, pointer }
}

/// A value as one cell: strings bare, arrays joined, absent or null as `-`.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "-".into(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| cell(Some(v)))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

/// The rows of `items` under `columns`, aligned; `(none)` when there are no items.
pub fn table(items: &[Value], columns: &[Column]) -> String {
    if items.is_empty() {
        return "(none)\n".into();
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|c| cell(item.pointer(c.pointer)))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([c.head.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let mut out = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let head = line(columns.iter().map(|c| c.head.to_owned()).collect());
    let mut out = paint(HEAD, head.trim_end());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

/// Prints a listing: the engine's answer as JSON, or its `items` as a table with the
/// total when the page does not hold them all.
pub fn listing(answer: &Value, columns: &[Column], json: bool) -> anyhow::Result<()> {
    let mut out = stdout();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(answer)?)?;
        return Ok(());
    }
    let items = answer["items"].as_array().map_or(&[][..], Vec::as_slice);
    write!(out, "{}", table(items, columns))?;
    if let Some(total) = answer["meta"]["total"].as_u64()
        && total > items.len() as u64
    {
        writeln!(
            out,
            "{}",
            paint(
                DIM,
                &format!("{} of {total} shown (--page, --per-page)", items.len())
            )
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_table_aligns_its_columns_and_marks_absent_values() {
        let items = [
            json!({"id": "a", "roles": ["storage", "authenticator"], "n": 3}),
            json!({"id": "longer-id", "roles": [], "n": null}),
        ];
        let text = table(
            &items,
            &[col("ID", "/id"), col("ROLES", "/roles"), col("N", "/n")],
        );
        let plain = anstream::adapter::strip_str(&text).to_string();
        assert_eq!(
            plain,
            "ID         ROLES                  N\n\
             a          storage,authenticator  3\n\
             longer-id  -                      -\n"
        );
        assert_eq!(table(&[], &[col("ID", "/id")]), "(none)\n");
    }
}
