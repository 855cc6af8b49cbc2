//! Hostile input at the target and on the command line: stray entries named like backup
//! files, unparsable times, broken PAX records, config files that never end. Each gives one
//! clear error line or is skipped with a warning; none panics or hangs (every run here is
//! killed after two minutes).

mod common;

use common::*;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

const LIMIT_SECS: &str = "120";

/// Runs ferrodup like [`ferrodup`], but fails the test if it is still running after
/// [`LIMIT_SECS`] (coreutils `timeout` kills it and exits 124).
fn ferrodup_within<S: AsRef<OsStr>>(cwd: &Path, args: &[S]) -> Run {
    let mut c = Command::new("timeout");
    c.args(["-k", "5", LIMIT_SECS])
        .arg(ferrodup_bin())
        .current_dir(cwd)
        .args(args)
        .env_remove("PASSPHRASE");
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    let r = run(&mut c, &format!("ferrodup {}", shown.join(" ")));
    assert!(
        !matches!(r.code(), 124 | 137),
        "{} hung (killed after {LIMIT_SECS} s)",
        r.what
    );
    r
}

/// A full backup of the fixture tree into `target/`, in a fresh work dir.
fn backed_up() -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_fixture_tree(&w.join("src"), 1, false);
    let url = format!("file://{}/target", w.display());
    ferrodup(
        w,
        &[
            "full",
            "--no-encryption",
            "--current-time",
            &T1.to_string(),
            "--archive-dir",
            "cache",
            "--name",
            "n",
            "src",
            &url,
        ],
    )
    .ok();
    work
}

fn url(w: &Path) -> String {
    format!("file://{}/target", w.display())
}

fn mkfifo(p: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o644) },
        0,
        "mkfifo {p:?}"
    );
}

/// The paths `list-current-files` printed (after the fixed-width date and a space; the
/// notes around them, as duplicity's, are left out).
fn listed_paths(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| l.len() > 25 && l.as_bytes()[3] == b' ' && l.as_bytes()[24] == b' ')
        .map(|l| l[25..].to_string())
        .collect()
}

#[test]
fn stray_entries_named_like_backup_files_are_skipped() {
    let work = backed_up();
    let w = work.path();
    let t = w.join("target");
    // A regular file whose time has no zone: not a backup file name (as for duplicity).
    std::fs::write(t.join("duplicity-full.2024-1-1T1:2:3.manifest"), "x").unwrap();
    // Newer "backups" that are not regular files: a fifo, a directory, links to /dev/zero.
    mkfifo(&t.join("duplicity-full.20240301T000000Z.manifest"));
    mkfifo(&t.join("duplicity-new-signatures.20240101T120000Z.to.20240102T120000Z.sigtar.gz"));
    std::fs::create_dir(t.join("duplicity-full.20240201T000000Z.manifest")).unwrap();
    std::fs::create_dir(t.join("duplicity-inc.20240101T120000Z.to.20240102T120000Z.manifest"))
        .unwrap();
    for name in [
        "duplicity-full.20240401T000000Z.manifest",
        "duplicity-full.20240401T000000Z.vol1.difftar.gz",
        "duplicity-inc.20240101T120000Z.to.20240102T120000Z.vol1.difftar.gz",
        "duplicity-full-signatures.20240401T000000Z.sigtar.gz",
    ] {
        std::os::unix::fs::symlink("/dev/zero", t.join(name)).unwrap();
    }
    let u = url(w);

    let r = ferrodup_within(w, &["collection-status", "--archive-dir", "c1", &u]).ok();
    assert!(
        r.stdout().contains("Found primary backup chain"),
        "{}",
        r.stdout()
    );
    assert!(r.stdout().contains("Number of contained backup sets: 1"));
    assert!(
        r.stderr().contains("not a regular file")
            && r.stderr()
                .contains("duplicity-full.20240301T000000Z.manifest"),
        "{}",
        r.stderr()
    );
    assert!(
        r.stderr()
            .contains("ignoring \"duplicity-full.2024-1-1T1:2:3.manifest\""),
        "{}",
        r.stderr()
    );

    let r = ferrodup_within(w, &["list-current-files", "--archive-dir", "c2", &u]).ok();
    let mut want: Vec<String> = snapshot(&w.join("src")).into_keys().collect();
    let mut got = listed_paths(&r.stdout());
    want.sort();
    got.sort();
    assert_eq!(got, want);

    ferrodup_within(w, &["restore", "--archive-dir", "c3", &u, "out"]).ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("out"),
        "restore beside stray entries",
    );
}

/// The same in the archive dir: entries that are not regular files, named like metadata
/// of sets the target does not have, are skipped with a warning (not deleted, not read).
#[test]
fn stray_entries_in_the_archive_dir_are_skipped() {
    let work = backed_up();
    let w = work.path();
    let c = w.join("cache/n");
    mkfifo(&c.join("duplicity-full.20240301T000000Z.manifest"));
    std::fs::create_dir(c.join("duplicity-full.20240201T000000Z.manifest")).unwrap();
    std::os::unix::fs::symlink(
        "/dev/zero",
        c.join("duplicity-full-signatures.20240401T000000Z.sigtar.gz"),
    )
    .unwrap();
    let u = url(w);
    let cache = ["--archive-dir", "cache", "--name", "n"];
    let r = ferrodup_within(w, &[&["collection-status"][..], &cache, &[&u]].concat()).ok();
    assert!(r.stdout().contains("Number of contained backup sets: 1"));
    assert!(
        r.stderr().contains("not a regular file")
            && r.stderr()
                .contains("duplicity-full.20240201T000000Z.manifest"),
        "{}",
        r.stderr()
    );
    ferrodup_within(w, &[&["restore"][..], &cache, &[&u, "out"]].concat()).ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("out"),
        "restore beside stray cache entries",
    );
    assert!(c.join("duplicity-full.20240201T000000Z.manifest").is_dir());
}

#[test]
fn times_without_a_zone_are_usage_errors() {
    let work = backed_up();
    let w = work.path();
    let u = url(w);
    for opt in ["--time", "-t"] {
        let r = ferrodup_within(
            w,
            &[
                "restore",
                opt,
                "2024-1-1T1:2:3",
                "--archive-dir",
                "c",
                &u,
                "out",
            ],
        );
        assert_fails(&r, 23, &["2024-1-1T1:2:3"]);
    }
    let r = ferrodup_within(
        w,
        &[
            "remove-older-than",
            "2024-1-1T1:2:3",
            "--archive-dir",
            "c",
            &u,
        ],
    );
    assert_fails(&r, 23, &["2024-1-1T1:2:3"]);
    assert!(!w.join("out").exists());
}

/// Rewrites the gzipped tar `p` with the PAX record `1 =\n` in front of its first member;
/// returns the new file's SHA1.
fn prepend_bad_pax(p: &Path) -> String {
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(p).unwrap())
        .read_to_end(&mut tar)
        .unwrap();
    let mut bad = pax_header(4);
    bad.extend_from_slice(b"1 =\n");
    bad.resize(1024, 0);
    bad.extend(tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bad).unwrap();
    let data = gz.finish().unwrap();
    std::fs::write(p, &data).unwrap();
    use sha1::{Digest, Sha1};
    Sha1::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn bad_pax_record_in_a_volume_is_corrupt_data() {
    let work = backed_up();
    let w = work.path();
    let vol = w.join("target/duplicity-full.20240101T120000Z.vol1.difftar.gz");
    let sha1 = prepend_bad_pax(&vol);
    // With the manifest's hash forged to match, the tar reader itself must object.
    let man = w.join("target/duplicity-full.20240101T120000Z.manifest");
    let text = std::fs::read_to_string(&man).unwrap();
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("    Hash SHA1 ") {
                format!("    Hash SHA1 {sha1}")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&man, lines.join("\n") + "\n").unwrap();
    let r = ferrodup_within(w, &["restore", "--archive-dir", "rc", &url(w), "out"]);
    assert_fails(&r, 30, &["vol1.difftar.gz", "pax"]);
}

#[test]
fn bad_pax_record_in_a_signature_file_is_corrupt_data() {
    let work = backed_up();
    let w = work.path();
    let name = "duplicity-full-signatures.20240101T120000Z.sigtar.gz";
    prepend_bad_pax(&w.join("target").join(name));
    prepend_bad_pax(&w.join("cache/n").join(name));
    let u = url(w);
    let r = ferrodup_within(
        w,
        &[
            "list-current-files",
            "--archive-dir",
            "cache",
            "--name",
            "n",
            &u,
        ],
    );
    assert_fails(&r, 30, &["full-signatures", "pax"]);
    let r = ferrodup_within(
        w,
        &[
            "incremental",
            "--no-encryption",
            "--current-time",
            &T2.to_string(),
            "--archive-dir",
            "cache",
            "--name",
            "n",
            "src",
            &u,
        ],
    );
    assert_fails(&r, 30, &["full-signatures", "pax"]);
}

#[test]
fn multi_configs_that_are_not_small_regular_files() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    mkfifo(&w.join("fifo.json"));
    std::fs::create_dir(w.join("dir.json")).unwrap();
    let huge = format!("[{}]", " ".repeat(2 << 20));
    std::fs::write(w.join("huge.json"), huge).unwrap();
    for (config, words) in [
        (
            "/dev/zero".to_string(),
            vec!["/dev/zero", "not a regular file"],
        ),
        (
            w.join("fifo.json").display().to_string(),
            vec!["fifo.json", "not a regular file"],
        ),
        (
            w.join("dir.json").display().to_string(),
            vec!["dir.json", "not a regular file"],
        ),
        (
            w.join("huge.json").display().to_string(),
            vec!["huge.json", "larger than 1024 KiB"],
        ),
    ] {
        let u = format!("multi://{config}?mode=mirror");
        let r = ferrodup_within(w, &["collection-status", "--archive-dir", "c", &u]);
        assert_fails(&r, 23, &words);
    }
}
