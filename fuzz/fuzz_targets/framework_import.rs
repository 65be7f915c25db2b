//! Any bytes, read as each kind of framework file, give findings or an error: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for name in ["indicators.csv", "indicators.xlsx", "framework.json"] {
        let _ = cezone_domain::import::read_untrusted(name, data);
    }
});
