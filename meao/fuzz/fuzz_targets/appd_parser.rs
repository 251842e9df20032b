//! Fuzzes AppD parsing (YAML and JSON) and validation on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meao::package::appd::{parse, validate};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for name in ["appd.yaml", "appd.json"] {
        if let Ok(value) = parse(name, text) {
            let _ = validate(name, &value);
        }
    }
});
