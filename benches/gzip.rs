//! What the compressor costs: cuts a file into 1 MiB chunks, as volumes are cut, and
//! compresses the chunks that ferrodup finds compressible with zlib-rs (primed with the
//! chunk before, as raw OpenPGP streams are made) and with libdeflate at several levels,
//! each on one thread; prints the stored megabytes and CPU seconds of each. Then it reads
//! the gzip file ferrodup makes of it with one streaming decoder and with `Gunzip`.
//!
//! `cargo bench --bench gzip -- [--file PATH]` (a tar of the benchmark's tree, say:
//! `tar cf /var/tmp/tree.tar -C WORK tree-1-10`). Without `--file`, or run by `cargo test
//! --all-targets` (without `--bench`), it uses 8 MiB of generated text and bytes.

use ferrodup::pargz::{self, CHUNK};
use std::io::Read;
use std::time::Instant;

/// Text, runs and noise: something of each kind a volume holds.
fn generated() -> Vec<u8> {
    let mut out = Vec::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut i = 0u64;
    while out.len() < 8 * CHUNK {
        i += 1;
        match i % 3 {
            0 => out.extend(format!("line {i}: words that repeat {}\n", i % 311).bytes()),
            1 => out.extend(std::iter::repeat_n((i % 7) as u8, 300)),
            _ => out.extend((0..200).map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })),
        }
    }
    out
}

fn cpu_seconds() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

fn main() {
    let mut file = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--file" {
            file = args.next();
        }
    }
    let data = match &file {
        Some(f) => std::fs::read(f).unwrap_or_else(|e| panic!("cannot read {f}: {e}")),
        None => generated(),
    };
    let chunks: Vec<&[u8]> = data.chunks(CHUNK).collect();
    let packed: Vec<bool> = chunks.iter().map(|c| pargz::compressible(c)).collect();
    let kept = packed.iter().filter(|p| **p).count();
    println!(
        "{:.1} MB in {} chunks, {kept} compressible (the others are stored as they are)",
        data.len() as f64 / 1e6,
        chunks.len()
    );
    let report = |what: &str, f: &mut dyn FnMut(usize, &[u8]) -> usize| {
        let t = cpu_seconds();
        let mut stored = 0;
        for (i, c) in chunks.iter().enumerate() {
            stored += if packed[i] { f(i, c) } else { c.len() };
        }
        let cpu = cpu_seconds() - t;
        println!(
            "{what:<22} {:>9.1} MB {cpu:>7.2} s CPU",
            stored as f64 / 1e6
        );
    };
    for level in [5, 6] {
        report(&format!("zlib-rs {level}, primed"), &mut |i, c| {
            let before = if i == 0 { &[][..] } else { chunks[i - 1] };
            let dict = &before[before.len().saturating_sub(32 * 1024)..];
            pargz::deflate_chunk(c, dict, false, level)
                .expect("deflate")
                .len()
        });
    }
    for level in [4, 5, 6] {
        let lvl = libdeflater::CompressionLvl::new(level).expect("level");
        let mut z = libdeflater::Compressor::new(lvl);
        let mut out = vec![0u8; z.deflate_compress_bound(CHUNK)];
        report(&format!("libdeflate {level}"), &mut |_, c| {
            // A gzip member's header, extra field and trailer: 28 bytes.
            z.deflate_compress(c, &mut out).expect("deflate") + 28
        });
    }
    let gz = pargz::compress(&mut &data[..], Vec::new(), 0).expect("compress");
    let wall = |what: &str, r: &mut dyn Read| {
        let t = Instant::now();
        let mut n = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf).expect("read") {
                0 => break,
                k => n += k as u64,
            }
        }
        assert_eq!(n, data.len() as u64, "{what} read everything");
        println!("{what:<22} {:>9.2} s wall", t.elapsed().as_secs_f64());
    };
    wall(
        "read, one decoder",
        &mut flate2::bufread::MultiGzDecoder::new(&gz[..]),
    );
    wall("read, Gunzip", &mut pargz::Gunzip::new(&gz[..]));
}
