//! Signature files: two sigtar streams (the first four bytes give the first one's length)
//! overlaid as a chain, and every librsync signature they hold loaded by librsync to
//! compute a delta, as an incremental backup does.
#![no_main]

use ferrodup::sigstate::SigOverlay;
use libfuzzer_sys::fuzz_target;
use std::io::{Cursor, Read};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (len, rest) = data.split_at(4);
    let cut = (u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize).min(rest.len());
    let files: Vec<(String, Box<dyn Read + Send>)> = vec![
        ("full".into(), Box::new(Cursor::new(rest[..cut].to_vec()))),
        ("new".into(), Box::new(Cursor::new(rest[cut..].to_vec()))),
    ];
    let Ok(mut overlay) = SigOverlay::new(files) else {
        return;
    };
    for _ in 0..256 {
        match overlay.next_entry() {
            Ok(Some(e)) => {
                if let Some(sig) = e.signature {
                    let new = vec![b'x'; 3000];
                    if let Ok(mut d) = librsync::Delta::new(&new[..], &mut &sig[..]) {
                        let _ = std::io::copy(&mut (&mut d).take(1 << 20), &mut std::io::sink());
                    }
                }
            }
            _ => break,
        }
    }
});
