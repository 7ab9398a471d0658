//! Shared fixtures for the integration tests.
#![allow(dead_code)]

/// The service definition example from DESIGN.md, verbatim.
pub const EXAMPLE: &str = include_str!("../fixtures/hello.toml");

/// The example with `from` (which must occur exactly once) replaced by `to`.
pub fn edit(from: &str, to: &str) -> String {
    assert_eq!(
        EXAMPLE.matches(from).count(),
        1,
        "fixture edit {from:?} must match once"
    );
    EXAMPLE.replacen(from, to, 1)
}
