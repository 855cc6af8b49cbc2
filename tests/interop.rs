//! Both directions against the real duplicity: chains written by ferrodup are restored,
//! listed and verified by duplicity; chains written by duplicity (fixtures and fresh ones)
//! are restored, listed and verified by ferrodup, at every point in time.

mod common;

use common::*;
use std::path::{Path, PathBuf};

const T3: i64 = T2 + 86_400;
const T4: i64 = T3 + 86_400;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    Ferrodup,
    Duplicity,
}

fn backup(tool: Tool, work: &Path, kind: &str, t: i64, extra: &[&str], cache: &str) {
    let target = format!("file://{}/target", work.display());
    let t = t.to_string();
    let mut args: Vec<&str> = vec![
        kind,
        "--no-encryption",
        "--current-time",
        &t,
        "--archive-dir",
        cache,
    ];
    args.extend_from_slice(extra);
    args.push("src");
    args.push(&target);
    match tool {
        Tool::Ferrodup => ferrodup(work, &args).ok(),
        Tool::Duplicity => duplicity(work, &args).ok(),
    };
}

/// Builds a chain of four states (full + three incrementals) with `tool`; returns the
/// times and a preserved copy of the source at each.
fn make_chain(tool: Tool, work: &Path, extra: &[&str], big: bool) -> Vec<(i64, PathBuf)> {
    let cache = match tool {
        Tool::Ferrodup => "fcache-w",
        Tool::Duplicity => "dcache-w",
    };
    let src = work.join("src");
    let mut states = Vec::new();
    make_fixture_tree(&src, 1, big);
    copy_tree(&src, &work.join("state1"));
    backup(tool, work, "full", T1, extra, cache);
    states.push((T1, work.join("state1")));
    std::fs::remove_dir_all(&src).unwrap();
    make_fixture_tree(&src, 2, big);
    copy_tree(&src, &work.join("state2"));
    backup(tool, work, "incremental", T2, extra, cache);
    states.push((T2, work.join("state2")));
    edits::state3(&src, T3 - 3600);
    copy_tree(&src, &work.join("state3"));
    backup(tool, work, "incremental", T3, extra, cache);
    states.push((T3, work.join("state3")));
    edits::state4(&src, T4 - 3600);
    copy_tree(&src, &work.join("state4"));
    backup(tool, work, "incremental", T4, extra, cache);
    states.push((T4, work.join("state4")));
    states
}

fn target_url(work: &Path) -> String {
    format!("file://{}/target", work.display())
}

fn check_duplicity_reads(work: &Path, states: &[(i64, PathBuf)], extra: &[&str]) {
    let url = target_url(work);
    for (i, (t, state)) in states.iter().enumerate() {
        duplicity_restore_matches(
            work,
            &url,
            *t,
            extra,
            &work.join(format!("dup-restored-{i}")),
            state,
            &format!("duplicity restore at state {}", i + 1),
        );
    }
    let mut args = vec![
        "collection-status",
        "--no-encryption",
        "--archive-dir",
        "dcache",
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    let st = duplicity(work, &args).ok().stdout();
    assert!(st.contains("Number of contained backup sets: 4"), "{st}");
    assert!(
        st.contains("No orphaned or incomplete backup sets found."),
        "{st}"
    );

    let mut args = vec![
        "list-current-files",
        "--no-encryption",
        "--archive-dir",
        "dcache",
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    let listed = listing_paths(&duplicity(work, &args).ok().stdout());
    let expected: Vec<String> = snapshot(&states[3].1).into_keys().collect();
    assert_eq!(listed, expected, "duplicity list-current-files");

    let last = states[3].1.to_str().unwrap();
    let mut args = vec![
        "verify",
        "--compare-data",
        "--no-encryption",
        "--archive-dir",
        "dcache",
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    args.push(last);
    let v = duplicity(work, &args).ok();
    assert!(
        v.stdout().contains("0 difference(s) found"),
        "{}",
        v.stdout()
    );

    // gzip(1) takes every gzip file too: ferrodup writes one member per 1 MiB of data.
    let mut gzipped = 0;
    for e in std::fs::read_dir(work.join("target")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "gz") {
            let out = std::process::Command::new("gzip")
                .arg("-t")
                .arg(&p)
                .output()
                .expect("gzip runs (apt install gzip)");
            assert!(out.status.success(), "gzip -t {}: {out:?}", p.display());
            gzipped += 1;
        }
    }
    if !extra.contains(&"--no-compression") {
        assert!(gzipped >= 8, "volumes and signature files: {gzipped}");
    }
}

/// Paths of `list-current-files` output lines (`Www Mmm dd hh:mm:ss yyyy path`), sorted.
fn listing_paths(out: &str) -> Vec<String> {
    const DAYS: [&str; 7] = ["Mon ", "Tue ", "Wed ", "Thu ", "Fri ", "Sat ", "Sun "];
    let mut v: Vec<String> = out
        .lines()
        .filter(|l| DAYS.iter().any(|d| l.starts_with(d)) && l.len() > 25)
        .map(|l| l[25..].to_string())
        .collect();
    v.sort();
    v
}

fn check_ferrodup_reads(work: &Path, states: &[(i64, PathBuf)], extra: &[&str]) {
    let url = target_url(work);
    for (i, (t, state)) in states.iter().enumerate() {
        let dest = work.join(format!("fd-restored-{i}"));
        let ts = t.to_string();
        let d = dest.to_str().unwrap();
        let mut args = vec!["restore", "--archive-dir", "fcache", "-t", &ts];
        args.extend_from_slice(extra);
        args.push(&url);
        args.push(d);
        ferrodup(work, &args).ok();
        assert_same_tree(
            state,
            &dest,
            &format!("ferrodup restore at state {}", i + 1),
        );
        // A single directory and a single file, at every time they exist.
        for path in ["sub", "medium.txt", "sub/owned.txt"] {
            if !state.join(path).exists() {
                continue;
            }
            let dest = work.join(format!("fd-restored-{i}-{}", path.replace('/', "_")));
            let d = dest.to_str().unwrap();
            let mut args = vec!["restore", "--archive-dir", "fcache", "-t", &ts, "-r", path];
            args.extend_from_slice(extra);
            args.push(&url);
            args.push(d);
            ferrodup(work, &args).ok();
            assert_same_tree(
                &state.join(path),
                &dest,
                &format!("restore -r {path} at {}", i + 1),
            );
        }
        let mut args = vec!["list-current-files", "--archive-dir", "fcache", "-t", &ts];
        args.extend_from_slice(extra);
        args.push(&url);
        let listed = listing_paths(&ferrodup(work, &args).ok().stdout());
        let expected: Vec<String> = snapshot(state).into_keys().collect();
        assert_eq!(
            listed,
            expected,
            "ferrodup list-current-files at state {}",
            i + 1
        );
        let s = state.to_str().unwrap();
        let mut args = vec![
            "verify",
            "--compare-data",
            "--archive-dir",
            "fcache",
            "-t",
            &ts,
        ];
        args.extend_from_slice(extra);
        args.push(&url);
        args.push(s);
        let v = ferrodup(work, &args).ok();
        assert!(
            v.stderr().contains(" 0 difference(s) found"),
            "{}",
            v.stderr()
        );
    }
    let mut args = vec!["collection-status", "--archive-dir", "fcache"];
    args.extend_from_slice(extra);
    args.push(&url);
    let st = ferrodup(work, &args).ok().stdout();
    assert!(st.contains("Number of contained backup sets: 4"), "{st}");
}

fn roundtrip(tool: Tool, extra: &[&str], big: bool) {
    let work = tempfile::tempdir().unwrap();
    let states = make_chain(tool, work.path(), extra, big);
    match tool {
        Tool::Ferrodup => check_duplicity_reads(work.path(), &states, extra),
        Tool::Duplicity => check_ferrodup_reads(work.path(), &states, extra),
    }
}

#[test]
fn ferrodup_chain_is_read_by_duplicity() {
    roundtrip(Tool::Ferrodup, &[], false);
}

#[test]
fn ferrodup_chain_without_compression_is_read_by_duplicity() {
    roundtrip(Tool::Ferrodup, &["--no-compression"], false);
}

#[test]
fn ferrodup_multivolume_chain_is_read_by_duplicity() {
    roundtrip(Tool::Ferrodup, &["--volsize", "1"], true);
}

const PREFIXES: [&str; 6] = [
    "--file-prefix-manifest",
    "hot_",
    "--file-prefix-signature",
    "hot_",
    "--file-prefix-archive",
    "cold_",
];

#[test]
fn ferrodup_prefixed_chain_is_read_by_duplicity() {
    roundtrip(Tool::Ferrodup, &PREFIXES, false);
}

#[test]
fn duplicity_chain_is_read_by_ferrodup() {
    roundtrip(Tool::Duplicity, &[], false);
}

#[test]
fn duplicity_multivolume_chain_is_read_by_ferrodup() {
    roundtrip(Tool::Duplicity, &["--volsize", "1"], true);
}

#[test]
fn duplicity_prefixed_uncompressed_chain_is_read_by_ferrodup() {
    let mut extra = PREFIXES.to_vec();
    extra.push("--no-compression");
    roundtrip(Tool::Duplicity, &extra, false);
}

/// The fixtures made by duplicity 3.2.1 (copied from the shared fixtures) restore, list
/// and verify with ferrodup.
#[test]
fn duplicity_fixtures_are_read_by_ferrodup() {
    for (name, big, extra) in [
        ("plain", false, &[][..]),
        ("multivol", true, &[][..]),
        ("nocompress", false, &[][..]),
        ("prefixed", false, &PREFIXES[..]),
    ] {
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        copy_tree(&fixtures().join(name).join("remote"), &w.join("target"));
        make_fixture_tree(&w.join("state1"), 1, big);
        make_fixture_tree(&w.join("state2"), 2, big);
        let states = [(T1, w.join("state1")), (T2, w.join("state2"))];
        let url = target_url(w);
        for (i, (t, state)) in states.iter().enumerate() {
            let ts = t.to_string();
            let dest = w.join(format!("r{i}"));
            let d = dest.to_str().unwrap();
            let mut args = vec!["restore", "--archive-dir", "fcache", "-t", &ts];
            args.extend_from_slice(extra);
            args.push(&url);
            args.push(d);
            ferrodup(w, &args).ok();
            assert_same_tree(state, &dest, &format!("fixture {name} at state {}", i + 1));
            let dest = w.join(format!("r{i}-file"));
            let d = dest.to_str().unwrap();
            let mut args = vec![
                "restore",
                "--archive-dir",
                "fcache",
                "-t",
                &ts,
                "-r",
                "sub/deeper",
            ];
            args.extend_from_slice(extra);
            args.push(&url);
            args.push(d);
            ferrodup(w, &args).ok();
            assert_same_tree(
                &state.join("sub/deeper"),
                &dest,
                &format!("fixture {name} -r"),
            );
            let s = state.to_str().unwrap();
            let mut args = vec![
                "verify",
                "--compare-data",
                "--archive-dir",
                "fcache",
                "-t",
                &ts,
            ];
            args.extend_from_slice(extra);
            args.push(&url);
            args.push(s);
            ferrodup(w, &args).ok();
        }
        let mut args = vec!["list-current-files", "--archive-dir", "fcache"];
        args.extend_from_slice(extra);
        args.push(&url);
        let ours = ferrodup(w, &args).ok().stdout();
        let mut args = vec![
            "list-current-files",
            "--no-encryption",
            "--archive-dir",
            "dcache",
        ];
        args.extend_from_slice(extra);
        args.push(&url);
        let theirs = duplicity(w, &args).ok().stdout();
        assert_eq!(
            listing_paths(&ours),
            listing_paths(&theirs),
            "fixture {name} listing"
        );
        assert!(!listing_paths(&ours).is_empty());
    }
}

/// ferrodup's volumes are byte-for-byte the tar stream duplicity writes for the same tree.
#[test]
fn full_volumes_match_duplicity_byte_for_byte() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_fixture_tree(&w.join("src"), 1, true);
    ferrodup(
        w,
        &[
            "full",
            "--no-encryption",
            "--no-compression",
            "--volsize",
            "1",
            "--current-time",
            &T1.to_string(),
            "--archive-dir",
            "c",
            "src",
            &target_url(w),
        ],
    )
    .ok();
    let gunzip = |p: PathBuf| -> Vec<u8> {
        let mut d = flate2::read::MultiGzDecoder::new(std::fs::File::open(p).unwrap());
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut v).unwrap();
        v
    };
    for n in 1..=3 {
        let ours = std::fs::read(w.join(format!(
            "target/duplicity-full.20240101T120000Z.vol{n}.difftar"
        )))
        .unwrap();
        let theirs = gunzip(fixtures().join(format!(
            "multivol/remote/duplicity-full.20240101T120000Z.vol{n}.difftar.gz"
        )));
        assert!(ours == theirs, "volume {n} differs from duplicity's");
    }
    let ours =
        std::fs::read(w.join("target/duplicity-full-signatures.20240101T120000Z.sigtar")).unwrap();
    let theirs = gunzip(
        fixtures().join("multivol/remote/duplicity-full-signatures.20240101T120000Z.sigtar.gz"),
    );
    // ferrodup adds its own PAX records (finer times, size) to the signature entries of
    // files; without them, the file is duplicity's byte for byte.
    assert!(contains(&ours, b"FERRODUP.ctime="), "no ferrodup records");
    assert!(
        without_vendor_records(&ours) == theirs,
        "signature file differs from duplicity's"
    );
    let ours =
        std::fs::read_to_string(w.join("target/duplicity-full.20240101T120000Z.manifest")).unwrap();
    let theirs = std::fs::read_to_string(
        fixtures().join("multivol/remote/duplicity-full.20240101T120000Z.manifest"),
    )
    .unwrap();
    // Besides the host name and the hashes, ours has a Size line per volume (which
    // duplicity skips): the size of the volume stored.
    let parsed = ferrodup::format::manifest::Manifest::parse(ours.as_bytes()).unwrap();
    for (k, v) in &parsed.volumes {
        let stored = w.join(format!(
            "target/duplicity-full.20240101T120000Z.vol{k}.difftar"
        ));
        assert_eq!(
            v.size,
            Some(std::fs::metadata(stored).unwrap().len()),
            "volume {k}"
        );
    }
    let strip = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with("Hostname") && !l.contains("Hash SHA1"))
            .filter(|l| !l.starts_with("    Size "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(ours.matches("    Size ").count(), 3);
    assert_eq!(strip(&ours), strip(&theirs));
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A signature file rebuilt member by member without the PAX records that only ferrodup
/// reads.
fn without_vendor_records(sig: &[u8]) -> Vec<u8> {
    use ferrodup::format::tar::{self, TarReader};
    let mut r = TarReader::new(sig);
    let mut out = Vec::new();
    while let Some(h) = r.next_header().unwrap() {
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut data).unwrap();
        out.extend(h.to_pax_bytes());
        out.extend(&data);
        tar::pad_to_block(&mut out);
    }
    let written = out.len() as u64;
    out.extend(tar::archive_end(written));
    out
}

/// Sets a regular file's mtime.
fn set_file_mtime(p: &Path, t: i64) {
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64);
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

/// The archive paths of the members of a gzipped tar file, in order.
fn member_indices(path: &Path) -> Vec<Vec<u8>> {
    use ferrodup::format::{entry, tar::TarReader};
    let gz = flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap());
    let mut r = TarReader::new(gz);
    let mut out = Vec::new();
    while let Some(h) = r.next_header().unwrap() {
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        let e = entry::parse(&h.name).unwrap_or_else(|| panic!("member {:?}", h.name));
        out.push(e.index);
    }
    out
}

/// An incremental of many changed files of mixed sizes (read by workers in parallel, a
/// few too big for their memory bound streamed) keeps them in path order in the volumes,
/// the signature file and the manifest, and ferrodup and duplicity both restore it.
#[test]
fn an_incremental_of_many_changed_files_is_in_path_order_and_restores() {
    use ferrodup::format::manifest::{cmp_index, Manifest};
    use std::cmp::Ordering;
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let src = w.join("src");
    let path = |i: usize| format!("d{}/f{:03}", i % 10, i);
    let size = |i: usize| match i {
        7 => 9 << 20,
        148 => (10 << 20) + 5,
        _ if i % 25 == 3 => 300_000 + i * 1000,
        _ => i * 997 % 20_000,
    };
    for d in 0..10 {
        std::fs::create_dir_all(src.join(format!("d{d}"))).unwrap();
    }
    for i in 0..300 {
        let p = src.join(path(i));
        std::fs::write(&p, edits::prng_bytes(i as u64, size(i))).unwrap();
        set_file_mtime(&p, T1 - 100);
    }
    for d in 0..10 {
        set_mtime(&src.join(format!("d{d}")), T1 - 100);
    }
    set_mtime(&src, T1 - 100);
    let inc = |kind: &str, t: i64| {
        backup(Tool::Ferrodup, w, kind, t, &["--volsize", "1"], "fcache");
    };
    inc("full", T1);

    let mut expected: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..300 {
        let p = src.join(path(i));
        let kind = match (i / 10) % 10 {
            9 => {
                std::fs::remove_file(&p).unwrap();
                "deleted"
            }
            0..=2 => {
                // A few bytes changed in place at a few places.
                let mut data = std::fs::read(&p).unwrap();
                let n = data.len();
                for at in [n / 7, n / 2, n * 6 / 7].into_iter().filter(|&a| a < n) {
                    data[at] ^= 0x5a;
                }
                std::fs::write(&p, data).unwrap();
                set_file_mtime(&p, T2 - 100);
                "changed"
            }
            3..=6 => {
                let mut data = std::fs::read(&p).unwrap();
                data.extend(edits::prng_bytes(1000 + i as u64, 4000 + i));
                std::fs::write(&p, data).unwrap();
                set_file_mtime(&p, T2 - 100);
                "changed"
            }
            _ => continue,
        };
        expected.push((kind.to_string(), path(i).into_bytes()));
    }
    for d in 0..10 {
        let p = src.join(format!("d{d}/new"));
        std::fs::write(&p, edits::prng_bytes(500 + d, 50_000 * d as usize)).unwrap();
        set_file_mtime(&p, T2 - 100);
        expected.push(("new".to_string(), format!("d{d}/new").into_bytes()));
        set_mtime(&src.join(format!("d{d}")), T2 - 100);
    }
    expected.sort_by(|a, b| cmp_index(&a.1, &b.1));
    copy_tree(&src, &w.join("state2"));
    inc("incremental", T2);

    let target = w.join("target");
    let mut names: Vec<String> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("duplicity-inc.") || n.starts_with("duplicity-new-sig"))
        .collect();
    names.sort_by_key(|n| {
        let vol = n.split(".vol").nth(1).and_then(|v| v.split('.').next());
        vol.map_or(0, |v| v.parse::<u32>().unwrap())
    });
    let manifest = names.iter().find(|n| n.ends_with(".manifest")).unwrap();
    let m = Manifest::parse(&std::fs::read(target.join(manifest)).unwrap()).unwrap();
    assert!(m.volumes.len() > 1, "one volume only: {names:?}");
    assert_eq!(m.files_changed, expected, "the manifest's file list");

    let increasing = |v: &[Vec<u8>], strict: bool, what: &str| {
        for pair in v.windows(2) {
            let o = cmp_index(&pair[0], &pair[1]);
            assert!(
                o == Ordering::Less || (!strict && o == Ordering::Equal),
                "{what}: {:?} before {:?}",
                String::from_utf8_lossy(&pair[0]),
                String::from_utf8_lossy(&pair[1])
            );
        }
    };
    let sig = names.iter().find(|n| n.contains("new-signatures")).unwrap();
    let sig_paths = member_indices(&target.join(sig));
    increasing(&sig_paths, true, "signature file");
    let mut vol_paths = Vec::new();
    for n in names.iter().filter(|n| n.contains(".difftar")) {
        vol_paths.extend(member_indices(&target.join(n)));
    }
    increasing(&vol_paths, false, "volumes");
    for (_, p) in &expected {
        assert!(
            sig_paths.contains(p) && vol_paths.contains(p),
            "{p:?} missing"
        );
    }

    let url = target_url(w);
    let ts = T2.to_string();
    let args = [
        "restore",
        "--no-encryption",
        "--archive-dir",
        "fcache",
        "-t",
        &ts,
    ];
    let mut args = args.to_vec();
    args.extend([url.as_str(), "f-restored"]);
    ferrodup(w, &args).ok();
    assert_same_tree(&w.join("state2"), &w.join("f-restored"), "ferrodup restore");
    duplicity_restore_matches(
        w,
        &url,
        T2,
        &[],
        &w.join("d-restored"),
        &w.join("state2"),
        "duplicity restore",
    );
}
