//! What file selection costs during a walk: walks a tree of many files (created on first
//! use) without rules and with 50 rules of every kind, and prints entries per second.
//!
//! `cargo bench --bench select -- [--entries N] [--dir DIR]`
//! (defaults: 1,000,000 entries under target/bench-select-N). Run by `cargo test
//! --all-targets` (without `--bench`), it only checks itself on 5,000 entries in a temporary
//! directory.

use ferrodup::fsmeta::Walk;
use ferrodup::select::{Namespace, Opt, Options, Selection};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn make_tree(root: &Path, entries: usize) {
    let marker = root.join(".complete");
    if marker.exists() {
        return;
    }
    let per_dir = 1000;
    let suffixes = ["txt", "log", "rs", "TMP", "bak", "jpg", "db", "py"];
    for d in 0..entries.div_ceil(per_dir) {
        let dir = root
            .join(format!("d{d:04}"))
            .join(if d % 3 == 0 { "cache" } else { "src" });
        std::fs::create_dir_all(&dir).expect("create bench dir");
        for f in 0..per_dir.min(entries - d * per_dir) {
            let name = format!("file{f:04}.{}", suffixes[f % suffixes.len()]);
            std::fs::File::create(dir.join(name)).expect("create bench file");
        }
    }
    std::fs::write(marker, "").expect("write marker");
}

/// 50 rules as a real job might have: excluded caches and temporary files (globs, some
/// ignoring case), regexps, a few included subtrees, and a final exclude.
fn rules(root: &str) -> Vec<(Opt, String)> {
    let mut r = Vec::new();
    for k in 0..5 {
        r.push((Opt::Include, format!("{root}/d00{k}*/src/**.rs")));
    }
    for k in 0..15 {
        r.push((Opt::Exclude, format!("{root}/d0{k:02}9/cache")));
    }
    for k in 0..10 {
        r.push((Opt::Exclude, format!("**/*.tmp{k}")));
    }
    for k in 0..8 {
        r.push((Opt::Exclude, format!("ignorecase:**/thumbs{k}.db")));
    }
    for k in 0..11 {
        r.push((Opt::ExcludeRegexp, format!(r"\.bak{k}$")));
    }
    r.push((Opt::Exclude, "**/*.never".to_string()));
    r
}

/// User plus system CPU seconds of this process so far.
fn cpu() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn walk(root: &Path, select: Option<Arc<Selection>>) -> (usize, f64) {
    let start = cpu();
    let mut w = Walk::new(root, false).expect("walk");
    if let Some(s) = select {
        w = w.with_selection(s);
    }
    let n = w.count();
    (n, cpu() - start)
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let mut entries = if benching { 1_000_000 } else { 5_000 };
    let mut dir: Option<PathBuf> = None;
    let scratch = tempfile::tempdir().expect("temporary directory");
    if !benching {
        dir = Some(scratch.path().to_path_buf());
    }
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--entries" => {
                entries = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--entries N")
            }
            "--dir" => dir = args.next().map(PathBuf::from),
            _ => {}
        }
    }
    let root = dir.unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("target/bench-select-{entries}"))
    });
    make_tree(&root, entries);
    let opts = Options {
        opts: rules(&root.display().to_string()),
        null_separator: false,
        now: 0,
    };
    let select = Arc::new(Selection::new(&opts, Namespace::Source(root.clone())).expect("rules"));
    walk(&root, None);
    let mut best = [f64::MAX; 2];
    let mut counts = [0usize; 2];
    for _ in 0..3 {
        for (k, s) in [None, Some(select.clone())].into_iter().enumerate() {
            let (n, t) = walk(&root, s);
            counts[k] = n;
            best[k] = best[k].min(t);
        }
    }
    assert!(
        counts[1] > 0 && counts[1] < counts[0],
        "the rules select part of the tree"
    );
    println!(
        "walk, no rules:  {} entries in {:.2} s of CPU ({:.0} entries/s)",
        counts[0],
        best[0],
        counts[0] as f64 / best[0]
    );
    println!(
        "walk, {} rules: {} entries selected in {:.2} s of CPU ({:.0} entries/s), +{:.1} %",
        opts.opts.len(),
        counts[1],
        best[1],
        counts[0] as f64 / best[1],
        (best[1] / best[0] - 1.0) * 100.0
    );
}
