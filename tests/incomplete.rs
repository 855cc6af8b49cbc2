//! Incomplete data is never passed off as complete: sets whose volumes end before their
//! last file does.

mod common;

use common::edits::prng_bytes;
use common::*;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

fn url(w: &Path) -> String {
    format!("file://{}/target", w.display())
}

fn backup_args(w: &Path, kind: &str, t: i64, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        kind,
        "--no-encryption",
        "--current-time",
        &t.to_string(),
        "--archive-dir",
        "cache",
        "--name",
        "n",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a.push("src".into());
    a.push(url(w));
    a
}

fn backup(w: &Path, kind: &str, t: i64, extra: &[&str]) -> Run {
    ferrodup(w, &backup_args(w, kind, t, extra))
}

fn write(p: &Path, data: &[u8], mtime: i64) {
    std::fs::write(p, data).unwrap();
    set_mtime(p, mtime);
}

/// A full backup of a 3 MB file between two small ones, in 1 MiB volumes.
fn multivolume_set(w: &Path) -> (PathBuf, u32) {
    let src = w.join("src");
    std::fs::create_dir(&src).unwrap();
    write(&src.join("a.txt"), b"first\n", T1 - 100);
    write(&src.join("big.bin"), &prng_bytes(9, 3_000_000), T1 - 100);
    write(&src.join("z.txt"), b"last\n", T1 - 100);
    set_mtime(&src, T1 - 100);
    backup(w, "full", T1, &["--volsize", "1"]).ok();
    let vols = std::fs::read_dir(w.join("target"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .as_bytes()
                .ends_with(b".difftar.gz")
        })
        .count() as u32;
    assert!(vols >= 3, "want at least 3 volumes, got {vols}");
    (src, vols)
}

fn volume(w: &Path, n: u32) -> PathBuf {
    w.join(format!(
        "target/duplicity-full.20240101T120000Z.vol{n}.difftar.gz"
    ))
}

fn restore_run(w: &Path, extra: &[&str], dest: &str) -> Run {
    let u = url(w);
    let mut a = vec!["restore", "--no-encryption", "--archive-dir", "rcache"];
    a.extend_from_slice(extra);
    a.push(&u);
    a.push(dest);
    ferrodup(w, &a)
}

fn status_run(w: &Path) -> Run {
    let u = url(w);
    ferrodup(
        w,
        &[
            "collection-status",
            "--no-encryption",
            "--archive-dir",
            "rcache",
            &u,
        ],
    )
}

#[test]
fn a_volume_missing_from_the_target_fails_restore_and_status() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (_, vols) = multivolume_set(w);
    std::fs::remove_file(volume(w, vols - 1)).unwrap();

    let r = restore_run(w, &[], "out");
    assert_fails(
        &r,
        4,
        &["incomplete", &format!("volume {}", vols - 1), "missing"],
    );
    assert!(
        !w.join("out").exists(),
        "nothing is restored before the error"
    );
    let st = status_run(w);
    assert_fails(&st, 4, &["damaged"]);
    assert!(
        st.stdout().contains(&format!("volume {} listed", vols - 1)),
        "{}",
        st.stdout()
    );
    assert!(
        !st.stdout().contains("No orphaned or incomplete"),
        "{}",
        st.stdout()
    );

    // A path in the volumes that are there still restores.
    restore_run(w, &["-r", "a.txt"], "a-only").ok();
    assert_eq!(std::fs::read(w.join("a-only")).unwrap(), b"first\n");

    // --ignore-errors: the rest is restored; big.bin, cut, is not.
    let r = restore_run(w, &["--ignore-errors"], "rest").ok();
    assert!(
        r.stderr().contains("big.bin not restored"),
        "{}",
        r.stderr()
    );
    assert_eq!(std::fs::read(w.join("rest/a.txt")).unwrap(), b"first\n");
    assert_eq!(std::fs::read(w.join("rest/z.txt")).unwrap(), b"last\n");
    assert!(!w.join("rest/big.bin").exists());
}

#[test]
fn a_set_cut_short_fails_restore_and_status() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (_, vols) = multivolume_set(w);
    // The last volume and its manifest entry are gone: the manifest now ends inside
    // big.bin, with z.txt nowhere.
    std::fs::remove_file(volume(w, vols)).unwrap();
    for m in [
        w.join("target/duplicity-full.20240101T120000Z.manifest"),
        w.join("cache/n/duplicity-full.20240101T120000Z.manifest"),
    ] {
        let text = std::fs::read_to_string(&m).unwrap();
        let cut = text.find(&format!("Volume {vols}:")).unwrap();
        let rest = &text[cut..];
        let filelist = rest.find("Filelist").unwrap();
        std::fs::write(&m, format!("{}{}", &text[..cut], &rest[filelist..])).unwrap();
    }
    let r = restore_run(w, &[], "out");
    assert_fails(&r, 4, &["incomplete", "ends inside big.bin"]);
    let st = status_run(w);
    assert_fails(&st, 4, &["damaged"]);
    assert!(
        st.stdout().contains("ends inside big.bin"),
        "{}",
        st.stdout()
    );

    let r = restore_run(w, &["--ignore-errors"], "rest").ok();
    assert!(
        r.stderr().contains("big.bin not restored"),
        "{}",
        r.stderr()
    );
    assert_eq!(std::fs::read(w.join("rest/a.txt")).unwrap(), b"first\n");
    assert!(!w.join("rest/big.bin").exists());
    assert!(!w.join("rest/z.txt").exists());
}
