//! multi:// targets: the first line is what follows `multi://` (path and query), the rest
//! is the JSON config.
#![no_main]

use ferrodup::backend::MultiConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (rest, config) = text.split_once('\n').unwrap_or((&text, ""));
    let _ = MultiConfig::parse(rest, |_| Ok(config.to_string()));
});
