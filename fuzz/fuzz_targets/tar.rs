//! The tar reader (ustar, GNU long names, PAX records) over volumes' plain bytes.
#![no_main]

use ferrodup::format::{entry, tar::TarReader};
use libfuzzer_sys::fuzz_target;
use std::io::Read;

fuzz_target!(|data: &[u8]| {
    let mut r = TarReader::new(data);
    let mut buf = vec![0u8; 4096];
    for _ in 0..64 {
        match r.next_header() {
            Ok(Some(h)) => {
                let _ = entry::parse(&h.name);
                let _ = h.to_pax_bytes();
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                }
            }
            Ok(None) => {
                let _ = r.drain();
                break;
            }
            Err(_) => break,
        }
    }
});
