//! Maps between field paths (`components[0].env[1]`) and byte spans of a parsed TOML document,
//! and from byte offsets to 1-based line and column.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One field of the document: its path, the span of its key (array items have none) and of its value.
struct Entry {
    path: String,
    key: Option<Range<usize>>,
    value: Range<usize>,
}

/// Every field of a document with its position, built from toml's spanned parse tree.
pub(crate) struct SpanIndex {
    entries: Vec<Entry>,
}

impl SpanIndex {
    pub(crate) fn build(root: &DeTable<'_>) -> Self {
        let mut entries = Vec::new();
        walk_table(root, "", &mut entries);
        Self { entries }
    }

    /// Span of a field's value; a field that is absent (an omitted key) falls back to its
    /// nearest present parent, so "memory_mb is required" points at the component.
    pub(crate) fn span_of(&self, field: &str) -> Option<Range<usize>> {
        let mut path = field;
        loop {
            if let Some(e) = self.entries.iter().find(|e| e.path == path) {
                return Some(e.value.clone());
            }
            path = &path[..path.rfind(['.', '['])?];
        }
    }

    /// Path of the innermost field whose key or value covers `offset`.
    pub(crate) fn field_at(&self, offset: usize) -> Option<&str> {
        let covers = |r: &Range<usize>| r.contains(&offset) || r.start == offset;
        self.entries
            .iter()
            .flat_map(|e| e.key.iter().chain([&e.value]).map(move |r| (e, r)))
            .filter(|(_, r)| covers(r))
            .min_by_key(|(_, r)| r.len())
            .map(|(e, _)| e.path.as_str())
    }
}

fn walk_table(table: &DeTable<'_>, prefix: &str, out: &mut Vec<Entry>) {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        walk_value(value, path, Some(key.span()), out);
    }
}

fn walk_value(
    value: &Spanned<DeValue<'_>>,
    path: String,
    key: Option<Range<usize>>,
    out: &mut Vec<Entry>,
) {
    match value.get_ref() {
        DeValue::Table(t) => walk_table(t, &path, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_value(item, format!("{path}[{i}]"), None, out);
            }
        }
        _ => {}
    }
    out.push(Entry {
        path,
        key,
        value: value.span(),
    });
}

/// 1-based line and column (in characters) of a byte offset, clamped into the text.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_is_one_based_and_counts_chars() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 10), (2, 4)); // after the two-byte 'é'
        assert_eq!(line_col(text, 999), (3, 1));
    }
}
