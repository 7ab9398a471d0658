//! libFuzzer target: any bytes as a service definition. The parser must never panic, every
//! rejection must name a line and column, and whatever it accepts must pass the validation
//! the agent runs on specs from the wire.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match servicedef::parse_str("fuzz.toml", text) {
        Ok(service) => assert!(service.validate().is_ok()),
        Err(e) => assert!(e.line.is_some() && e.column.is_some(), "{e}"),
    }
});
