//! Throughput of a backend: uploads one file of `--size` MiB (default 1024) to a target
//! URL, downloads it again, checks that the bytes came back, deletes it, and prints the
//! MB/s of each way. The target is opened as ferrodup opens it, with ferrodup's options
//! (retries, `--s3-endpoint-url`, `--ssh-options`, `--concurrency`, ...) and credentials
//! from the environment.
//!
//! `cargo bench --bench backends -- [--size MIB] [FERRODUP OPTIONS] URL`. Without a URL
//! (and when `cargo test --all-targets` runs it) it measures 8 MiB on a temporary
//! file:// target.

use ferrodup::cli::Cli;
use ferrodup::config::Config;
use std::io::{Read, Write};
use std::time::Instant;

/// Writes `mib` MiB of incompressible bytes to `path`.
fn write_data(path: &std::path::Path, mib: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for b in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
        }
        f.write_all(&block).unwrap();
    }
    f.flush().unwrap();
}

fn sha1(path: &std::path::Path) -> String {
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    ferrodup::codec::hex(&h.finalize())
}

fn main() {
    let mut args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut size = 1024;
    if let Some(i) = args.iter().position(|a| a == "--size") {
        size = args[i + 1].parse().expect("--size MIB");
        args.drain(i..i + 2);
    }
    let work = tempfile::tempdir_in(std::env::var("TMPDIR").unwrap_or("/var/tmp".into())).unwrap();
    let url = match args.pop() {
        Some(u) => u,
        None => {
            size = 8;
            format!("file://{}/target", work.path().display())
        }
    };
    let mut argv = vec!["ferrodup".to_string()];
    argv.extend(args);
    argv.extend(["collection-status".to_string(), url.clone()]);
    let m = ferrodup::help::command()
        .try_get_matches_from(&argv)
        .unwrap_or_else(|e| panic!("{e}"));
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&m).unwrap();
    let config = Config::from_cli(cli, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    let b = ferrodup::backend::open(&url, &config.backend).unwrap_or_else(|e| panic!("{e}"));
    let src = work.path().join("up");
    let back = work.path().join("down");
    write_data(&src, size);
    let name = format!("bench-{}.bin", std::process::id());
    let bytes = (size << 20) as f64;
    let t = Instant::now();
    b.put(&src, &name).unwrap_or_else(|e| panic!("{e}"));
    let up = t.elapsed().as_secs_f64();
    let t = Instant::now();
    b.get(&name, &back).unwrap_or_else(|e| panic!("{e}"));
    let down = t.elapsed().as_secs_f64();
    assert_eq!(sha1(&src), sha1(&back), "the bytes came back different");
    b.delete(&name).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "{}: {size} MiB up in {up:.2} s ({:.0} MB/s), down in {down:.2} s ({:.0} MB/s)",
        b.describe(),
        bytes / up / 1e6,
        bytes / down / 1e6
    );
}
