//! Manifests: parsing, rewriting what was parsed, and the volume lookups restores make.
#![no_main]

use ferrodup::format::manifest::{self, Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = manifest::unquote(data);
    let _ = Manifest::parse_reader(data, false);
    if let Ok(m) = Manifest::parse(data) {
        let again = Manifest::parse(&m.to_text());
        assert!(
            again.is_ok(),
            "a parsed manifest rewrites to one that parses"
        );
        for v in m.volumes.values() {
            let _ = v.best_hash();
            let _ = m.volumes_containing(&v.start);
            let _ = m.volumes_containing(&v.end);
        }
        let _ = m.volumes_containing(b"");
    }
});
