//! Durations as written in definitions: a whole number and a unit, e.g. `500ms`, `2s`, `1m`.

/// Milliseconds in `text` (`<n>ms`, `<n>s`, `<n>m` or `<n>h`).
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let scale = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => {
            return Err(format!(
                "duration \"{text}\" must be a whole number with a unit: ms, s, m or h (e.g. \"2s\")"
            ));
        }
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("duration \"{text}\" has no number before its unit"))?;
    n.checked_mul(scale)
        .ok_or_else(|| format!("duration \"{text}\" is too long"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bad_spellings() {
        assert_eq!(parse_duration_ms("500ms").unwrap(), 500);
        assert_eq!(parse_duration_ms("2s").unwrap(), 2_000);
        assert_eq!(parse_duration_ms("1m").unwrap(), 60_000);
        assert_eq!(parse_duration_ms("1h").unwrap(), 3_600_000);
        for bad in [
            "",
            "2",
            "s",
            "2 s",
            "1.5s",
            "-1s",
            "2sec",
            "99999999999999999999h",
        ] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }
}
