//! Parsers never panic on arbitrary input: time strings, file names, member names, tar
//! streams with hostile PAX records, manifests, signature files, deltas, multi:// configs
//! and OpenPGP data. The cargo-fuzz targets in fuzz/ explore the same entry points far
//! longer; these run on every `cargo test` and stay fast.

mod common;

use ferrodup::backend::MultiConfig;
use ferrodup::collection::Collection;
use ferrodup::format::naming::Prefixes;
use ferrodup::format::{entry, manifest::Manifest, tar::TarReader, time};
use ferrodup::sigstate::SigOverlay;
use proptest::prelude::*;
use std::io::{Cursor, Read};

fn tar_prefix() -> Vec<u8> {
    let mut h = ferrodup::format::tar::Header::empty(b"snapshot/file".to_vec());
    h.size = 700;
    h.to_pax_bytes()
}

/// Reads a tar stream to its end or its first error.
fn read_all_members(bytes: &[u8]) {
    let mut r = TarReader::new(bytes);
    for _ in 0..16 {
        match r.next_header() {
            Ok(Some(h)) => {
                let _ = entry::parse(&h.name);
                let mut sink = Vec::new();
                if r.read_to_end(&mut sink).is_err() {
                    break;
                }
            }
            _ => break,
        }
    }
}

/// PAX-looking records: a length (often wrong), a key, `=`, a value, maybe a newline.
fn pax_records() -> impl Strategy<Value = Vec<u8>> {
    let record = (
        0usize..40,
        "(path|size|mtime|uid|gid|linkpath|uname|hdrcharset|)",
        "[ -~]{0,12}",
        any::<bool>(),
    )
        .prop_map(|(len, key, value, newline)| {
            let mut r = format!("{len} {key}={value}").into_bytes();
            if newline {
                r.push(b'\n');
            }
            r
        });
    proptest::collection::vec(record, 0..4).prop_map(|v| v.concat())
}

/// Time-like strings: digits, `T`, `Z`, `:`, signs, separators and some non-ASCII.
const TIMEISH: &str = "[0-9TZtz:+/. -]{0,24}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}T[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}.{0,7}|\\PC{0,20}";

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn tar_reader_survives_garbage(data in proptest::collection::vec(any::<u8>(), 0..4096), mangle in any::<bool>()) {
        // Half the cases start with a valid header so the reader gets past the first block.
        let bytes = if mangle { [tar_prefix(), data].concat() } else { data };
        read_all_members(&bytes);
    }

    #[test]
    fn tar_reader_survives_pax_records(records in pax_records(), tail in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut bytes = common::pax_header(records.len());
        bytes.extend_from_slice(&records);
        bytes.resize(bytes.len().div_ceil(512) * 512, 0);
        bytes.extend(tar_prefix());
        bytes.extend(tail);
        read_all_members(&bytes);
    }

    #[test]
    fn manifest_parser_survives_garbage(text in "(Volume [0-9]{1,3}:\n|    StartingPath .{0,12}\n|    EndingPath .{0,12}\n|    Hash SHA1 [0-9a-f]{0,40}\n|Filelist [0-9]{0,3}\n|    new .{0,10}\n|Hostname .{0,8}\n|.{0,20}\n){0,20}") {
        if let Ok(m) = Manifest::parse(text.as_bytes()) {
            prop_assert!(Manifest::parse(&m.to_text()).is_ok());
            let _ = m.volumes_containing(b"a");
        }
    }

    #[test]
    fn manifest_parser_survives_bytes(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = Manifest::parse(&data);
    }

    #[test]
    fn name_parsers_survive_garbage(name in "(duplicity-|d[fi]s?t?\\.|cold_|hot_)?[a-z0-9.TZ:-]{0,60}|\\PC{0,40}") {
        let p = Prefixes { archive: "cold_".into(), manifest: "hot_".into(), ..Default::default() };
        let _ = p.parse(&name);
        let _ = Prefixes::default().parse(&name);
        let _ = entry::parse(name.as_bytes());
        let _ = time::from_filename(&name);
        let _ = time::parse_user_time(&name, 1_700_000_000);
    }

    #[test]
    fn backup_file_names_with_any_time_survive(
        stem in "duplicity-(full|inc|full-signatures|new-signatures)\\.",
        t1 in TIMEISH,
        t2 in TIMEISH,
        tail in "(\\.to\\.)?(\\.vol[0-9]{1,12}\\.difftar|\\.manifest|\\.sigtar|\\.jsonstat)(\\.part)?(\\.gz|\\.gpg)?",
    ) {
        let names = [format!("{stem}{t1}{tail}"), format!("{stem}{t1}.to.{t2}{tail}")];
        let _ = Collection::from_names(&Prefixes::default(), &names);
    }

    #[test]
    fn time_parsers_survive_garbage(s in TIMEISH, now in any::<i64>()) {
        for t in [time::from_string(&s), time::from_filename(&s), time::interval_seconds(&s)].into_iter().flatten() {
            let _ = time::to_string(t);
        }
        let _ = time::parse_user_time(&s, now);
    }

    #[test]
    fn signature_overlay_survives_garbage(a in proptest::collection::vec(any::<u8>(), 0..2048), b in proptest::collection::vec(any::<u8>(), 0..2048), mangle in any::<bool>()) {
        let a = if mangle { [tar_prefix(), a].concat() } else { a };
        let files: Vec<(String, Box<dyn Read + Send>)> = vec![
            ("full".into(), Box::new(Cursor::new(a))),
            ("new".into(), Box::new(Cursor::new(b))),
        ];
        if let Ok(mut o) = SigOverlay::new(files) {
            for _ in 0..32 {
                if !matches!(o.next_entry(), Ok(Some(_))) {
                    break;
                }
            }
        }
    }

    #[test]
    fn delta_application_of_garbage_fails_cleanly(delta in proptest::collection::vec(any::<u8>(), 0..512)) {
        let base = std::io::Cursor::new(vec![7u8; 4096]);
        let mut data = b"rs\x026".to_vec();
        data.extend(delta);
        let patch = librsync::Patch::new(base, &data[..]);
        if let Ok(mut p) = patch {
            let mut out = Vec::new();
            let _ = (&mut p).take(1 << 24).read_to_end(&mut out);
        };
    }

    #[test]
    fn multi_config_parser_survives_garbage(rest in "\\PC{0,30}|/c\\.json(\\?[a-z=&]{0,30})?", config in "\\PC{0,80}|\\[(\\{\"url\": \"[a-z:/]{0,12}\"(, \"prefixes\": \\[\"[a-z_]{0,4}\"\\])?\\}, ?){0,3}\\]") {
        let _ = MultiConfig::parse(&rest, |_| Ok(config.clone()));
    }
}

proptest! {
    // Each case writes a file and may run an S2K: fewer cases.
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn openpgp_reader_survives_garbage(data in proptest::collection::vec(any::<u8>(), 0..1024), pgp_like in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.gpg");
        // Half the cases start like a passphrase-encrypted message (an SKESK packet).
        let bytes = if pgp_like { [vec![0xc3, 0x0d, 0x04, 0x09, 0x03, 0x08], data].concat() } else { data };
        std::fs::write(&path, bytes).unwrap();
        let crypto = ferrodup::crypto::Crypto {
            keyring: Default::default(),
            passphrase: Some("p".into()),
            sign_passphrase: None,
            recipients: Vec::new(),
            hidden_recipients: Vec::new(),
            sign_key: None,
            cipher: pgp::crypto::sym::SymmetricKeyAlgorithm::AES256,
            compression: None,
            gpg_binary: "/nonexistent/gpg".into(),
            use_agent: false,
        };
        if let Ok(r) = ferrodup::codec::open_stored(&path, "duplicity-full.20240101T120000Z.vol1.difftar.gpg", Some(&crypto)) {
            let _ = std::io::copy(&mut r.take(1 << 24), &mut std::io::sink());
        }
    }
}
