//! The TOML text of an import: tables and keys, each key preceded by comments naming the coturn
//! lines it came from.

use std::fmt::Write as _;

use super::{Entry, Src};

/// Arrays longer than this on one line are written one item a line.
const LINE_WIDTH: usize = 100;

/// The TOML being written, and every coturn line it cites.
pub(super) struct TomlOut {
    text: String,
    cited: Vec<Src>,
}

impl TomlOut {
    pub(super) fn new() -> Self {
        let text = "# turnserver.toml converted from a coturn turnserver.conf by `turnd import-coturn`.\n\
                    # Each key follows the coturn lines it came from (secrets hidden). Check the result with\n\
                    # `turnd check-config FILE`; README.md's configuration reference explains every key.\n"
            .to_owned();
        TomlOut { text, cited: Vec::new() }
    }

    /// Start `[name]`.
    pub(super) fn table(&mut self, name: &str) {
        let _ = write!(self.text, "\n[{name}]\n");
    }

    /// Start an entry of the array of tables `[[name]]`.
    pub(super) fn array_table(&mut self, name: &str) {
        let _ = write!(self.text, "\n[[{name}]]\n");
    }

    /// A comment line.
    pub(super) fn comment(&mut self, text: &str) {
        let _ = writeln!(self.text, "# {}", commentable(text));
    }

    /// `key = value` (a TOML value already), after one comment per coturn line it came from.
    pub(super) fn key(&mut self, key: &str, value: String, sources: &[&Src]) {
        for src in sources {
            let _ = writeln!(self.text, "# coturn line {}: {}", src.line, commentable(&src.shown));
            self.cited.push((*src).clone());
        }
        let _ = writeln!(self.text, "{key} = {value}");
    }

    /// The text, and the coturn options it converted (once each, in line order).
    pub(super) fn finish(self) -> (String, Vec<Entry>) {
        let mut converted: Vec<Entry> = Vec::with_capacity(self.cited.len());
        for src in self.cited {
            if !converted.iter().any(|e| e.line == src.line) {
                converted.push(src.entry(""));
            }
        }
        converted.sort_by_key(|e| e.line);
        (self.text, converted)
    }
}

/// `text` as it can stand in a TOML comment, which allows no control character but tab: the
/// others are written as escapes (`\u{1}`), so that a coturn value with one still gives a file
/// that parses.
fn commentable(text: &str) -> std::borrow::Cow<'_, str> {
    let forbidden = |c: char| c.is_control() && c != '\t';
    if !text.contains(forbidden) {
        return text.into();
    }
    text.chars().map(|c| if forbidden(c) { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// A TOML string, quoted and escaped.
pub(super) fn string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A TOML array of values: on one line when short, else one item a line.
pub(super) fn array(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().collect();
    let line = format!("[{}]", items.join(", "));
    if line.len() <= LINE_WIDTH {
        return line;
    }
    let mut out = "[\n".to_owned();
    for item in items {
        let _ = writeln!(out, "    {item},");
    }
    out.push(']');
    out
}
