//! Parsers never panic on arbitrary input: tar streams, manifests, file names, member
//! names, time strings and signature files (stand-ins for fuzzing, which needs nightly).

use ferrodup::format::naming::Prefixes;
use ferrodup::format::{entry, manifest::Manifest, tar::TarReader, time};
use proptest::prelude::*;
use std::io::Read;

fn tar_prefix() -> Vec<u8> {
    let mut h = ferrodup::format::tar::Header::empty(b"snapshot/file".to_vec());
    h.size = 700;
    h.to_pax_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn tar_reader_survives_garbage(data in proptest::collection::vec(any::<u8>(), 0..4096), mangle in any::<bool>()) {
        // Half the cases start with a valid header so the reader gets past the first block.
        let bytes = if mangle { [tar_prefix(), data].concat() } else { data };
        let mut r = TarReader::new(&bytes[..]);
        for _ in 0..16 {
            match r.next_header() {
                Ok(Some(_)) => {
                    let mut sink = Vec::new();
                    if r.read_to_end(&mut sink).is_err() {
                        break;
                    }
                }
                _ => break,
            }
        }
    }

    #[test]
    fn manifest_parser_survives_garbage(text in "(Volume [0-9]{1,3}:\n|    StartingPath .{0,12}\n|    EndingPath .{0,12}\n|    Hash SHA1 [0-9a-f]{0,40}\n|Filelist [0-9]{0,3}\n|    new .{0,10}\n|Hostname .{0,8}\n|.{0,20}\n){0,20}") {
        let _ = Manifest::parse(text.as_bytes());
    }

    #[test]
    fn name_parsers_survive_garbage(name in "(duplicity-|d[fi]s?t?\\.|cold_|hot_)?[a-z0-9.TZ-]{0,60}") {
        let p = Prefixes { archive: "cold_".into(), manifest: "hot_".into(), ..Default::default() };
        let _ = p.parse(&name);
        let _ = Prefixes::default().parse(&name);
        let _ = entry::parse(name.as_bytes());
        let _ = time::from_filename(&name);
        let _ = time::parse_user_time(&name, 1_700_000_000);
    }

    #[test]
    fn delta_application_of_garbage_fails_cleanly(delta in proptest::collection::vec(any::<u8>(), 0..512)) {
        let base = std::io::Cursor::new(vec![7u8; 4096]);
        let mut data = b"rs\x026".to_vec();
        data.extend(delta);
        let patch = librsync::Patch::new(base, &data[..]);
        if let Ok(mut p) = patch {
            let mut out = Vec::new();
            let _ = p.read_to_end(&mut out);
        };
    }
}
