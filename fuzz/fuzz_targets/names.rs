//! File names at the target (one per line) grouped into sets and chains, and member names
//! inside volumes and signature files.
#![no_main]

use ferrodup::cache::Cache;
use ferrodup::collection::Collection;
use ferrodup::format::entry;
use ferrodup::format::naming::Prefixes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let names: Vec<&str> = text.split('\n').collect();
    let custom = Prefixes {
        base: "b_".into(),
        archive: "cold_".into(),
        manifest: "hot_".into(),
        signature: "hot_".into(),
        jsonstat: "j_".into(),
    };
    for prefixes in [Prefixes::default(), custom] {
        for name in &names {
            let _ = prefixes.parse(name);
            let _ = Cache::local_name(&prefixes, name);
        }
        let col = Collection::from_names(&prefixes, &names);
        for t in [i64::MIN, 0, 1_704_110_400, i64::MAX] {
            if let Some(c) = col.chain_at(t) {
                let _ = c.sets_until(t);
                let _ = c.full.files();
            }
            if let Some(c) = col.sig_chain_at(t) {
                let _ = c.files_until(t);
            }
        }
    }
    for line in data.split(|&b| b == b'\n') {
        let _ = entry::parse(line);
    }
});
