//! Time strings: file-name times, W3C datetimes and what users type after `--time`.
#![no_main]

use ferrodup::format::time;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let parsed = [
        time::from_string(&s),
        time::from_filename(&s),
        time::interval_seconds(&s),
        time::parse_user_time(&s, 1_700_000_000).ok(),
        time::parse_user_time(&s, -2_000_000_000).ok(),
    ];
    for t in parsed.into_iter().flatten() {
        let _ = time::to_string(t);
        let _ = time::pretty(t);
    }
});
