//! Property-style check: no prefix of a valid file makes the parser panic, and every error is located.
#![allow(clippy::unwrap_used)]

mod common;

use common::EXAMPLE;

#[test]
fn every_prefix_parses_or_fails_with_a_line() {
    let mut failures = 0;
    for end in (0..=EXAMPLE.len()).filter(|&i| EXAMPLE.is_char_boundary(i)) {
        if let Err(e) = servicedef::parse_str("hello.toml", &EXAMPLE[..end]) {
            failures += 1;
            assert!(e.line.is_some() && e.column.is_some(), "prefix {end}: {e}");
        }
    }
    // Most prefixes are incomplete; the full text and a few cut at line ends parse.
    assert!(failures > EXAMPLE.len() / 2);
}

#[test]
fn dropping_any_line_parses_or_fails_with_a_line() {
    let lines: Vec<&str> = EXAMPLE.lines().collect();
    for skip in 0..lines.len() {
        let text: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != skip)
            .map(|(_, l)| *l)
            .collect();
        if let Err(e) = servicedef::parse_str("hello.toml", &text.join("\n")) {
            assert!(e.line.is_some(), "without line {}: {e}", skip + 1);
        }
    }
}
