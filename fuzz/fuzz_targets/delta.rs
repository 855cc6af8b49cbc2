//! Delta application (librsync's patch, as restores run it): the first two bytes give the
//! basis length, the basis follows, then the delta. Output is capped, as deltas may copy
//! the basis any number of times.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{Cursor, Read};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let n = (u16::from_be_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    let (base, delta) = data[2..].split_at(n);
    if let Ok(mut p) = librsync::Patch::new(Cursor::new(base.to_vec()), delta) {
        let _ = std::io::copy(&mut (&mut p).take(16 << 20), &mut std::io::sink());
    }
});
