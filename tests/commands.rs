//! Command behaviour: resume after an interruption, cleanup and removal, the options that
//! choose full or incremental, dry runs, and duplicity's command-line conventions.

mod common;

use common::*;
use std::path::Path;

fn url(w: &Path) -> String {
    format!("file://{}/target", w.display())
}

fn names(w: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(w.join("target"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn backup(w: &Path, kind: &str, t: i64, extra: &[&str]) -> Run {
    let u = url(w);
    let ts = t.to_string();
    let mut args = vec![
        kind,
        "--no-encryption",
        "--no-print-statistics",
        "--archive-dir",
        "cache",
        "--name",
        "n",
        "--current-time",
        &ts,
    ];
    args.extend_from_slice(extra);
    args.push("src");
    args.push(&u);
    ferrodup(w, &args)
}

/// `ferrodup restore` with the test's cache and `extra` options into `dest`.
fn restore_with(w: &Path, extra: &[&str], dest: &str) {
    let u = url(w);
    let mut args = vec!["restore", "--archive-dir", "cache", "--name", "n"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[&u, dest]);
    ferrodup(w, &args).ok();
}

fn restore_ok(w: &Path, t: i64, dest: &str) {
    let u = url(w);
    ferrodup(
        w,
        &[
            "restore",
            "--archive-dir",
            "cache",
            "--name",
            "n",
            "-t",
            &t.to_string(),
            &u,
            dest,
        ],
    )
    .ok();
}

fn big_source(w: &Path) {
    make_fixture_tree(&w.join("src"), 1, true);
    std::fs::write(w.join("src/random.bin"), edits::prng_bytes(9, 4_000_000)).unwrap();
    set_mtime(&w.join("src/random.bin"), T1 - 5);
    set_mtime(&w.join("src"), T1 - 5);
}

#[test]
fn interrupted_full_backup_resumes_with_its_timestamp() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    big_source(w);
    let r = backup(w, "full", T1, &["--volsize", "1", "--fail-on-volume", "3"]);
    assert_ne!(r.code(), 0);
    assert!(
        !names(w).iter().any(|n| n.contains("manifest")),
        "{:?}",
        names(w)
    );
    // collection-status shows it as duplicity does (the archive dir's partial manifest
    // completes the set), but restore does not take it for a backup.
    let st = ferrodup(
        w,
        &[
            "collection-status",
            "--archive-dir",
            "cache",
            "--name",
            "n",
            &url(w),
        ],
    )
    .ok();
    assert!(
        st.stdout().contains("Total number of contained volumes: 3"),
        "{}",
        st.stdout()
    );
    let r = ferrodup(
        w,
        &[
            "restore",
            "--archive-dir",
            "cache",
            "--name",
            "n",
            &url(w),
            "x",
        ],
    );
    assert_eq!(r.code(), 30);

    let r = backup(w, "full", T1 + 5000, &["--volsize", "1"]).ok();
    assert!(r.stderr().contains("Resuming"), "{}", r.stderr());
    assert!(names(w).contains(&"duplicity-full.20240101T120000Z.manifest".to_string()));
    restore_ok(w, T1 + 5000, "out");
    assert_same_tree(
        &w.join("src"),
        &w.join("out"),
        "ferrodup restore of a resumed backup",
    );
    let d = duplicity(
        w,
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "dc",
            &url(w),
            "dout",
        ],
    )
    .ok();
    let _ = d;
    assert_same_tree(
        &w.join("src"),
        &w.join("dout"),
        "duplicity restore of a resumed backup",
    );
}

#[test]
fn interrupted_incremental_resumes() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_fixture_tree(&w.join("src"), 1, false);
    backup(w, "full", T1, &["--volsize", "1"]).ok();
    std::fs::write(w.join("src/random.bin"), edits::prng_bytes(10, 4_000_000)).unwrap();
    set_mtime(&w.join("src/random.bin"), T2 - 5);
    std::fs::remove_file(w.join("src/hello.txt")).unwrap();
    let r = backup(
        w,
        "incremental",
        T2,
        &["--volsize", "1", "--fail-on-volume", "2"],
    );
    assert_ne!(r.code(), 0);
    let r = backup(w, "incremental", T2 + 99, &["--volsize", "1"]).ok();
    assert!(r.stderr().contains("Resuming"), "{}", r.stderr());
    assert!(names(w)
        .contains(&"duplicity-inc.20240101T120000Z.to.20240102T120000Z.manifest".to_string()));
    restore_ok(w, T2, "out");
    assert_same_tree(&w.join("src"), &w.join("out"), "resumed incremental");
    duplicity(
        w,
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "dc",
            &url(w),
            "dout",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("dout"),
        "duplicity restore of resumed incremental",
    );
}

#[test]
fn unresumable_leftovers_are_replaced_and_cleanup_removes_orphans() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    big_source(w);
    // Stopped after the first volume: nothing to keep, the next run starts afresh.
    assert_ne!(
        backup(w, "full", T1, &["--volsize", "1", "--fail-on-volume", "1"]).code(),
        0
    );
    backup(w, "full", T2, &["--volsize", "1"]).ok();
    assert!(
        !names(w).iter().any(|n| n.contains("20240101T120000Z")),
        "{:?}",
        names(w)
    );
    restore_ok(w, T2, "out");
    assert_same_tree(&w.join("src"), &w.join("out"), "fresh full after leftovers");

    // An orphaned incremental (its chain is gone) is listed by cleanup, deleted with --force.
    let orphan = "duplicity-inc.20230101T000000Z.to.20230102T000000Z.vol1.difftar.gz";
    std::fs::write(w.join("target").join(orphan), b"x").unwrap();
    let args = ["cleanup", "--archive-dir", "cache", "--name", "n"];
    let r = ferrodup(w, &[&args[..], &[url(w).as_str()]].concat()).ok();
    assert!(r.stdout().contains(orphan), "{}", r.stdout());
    assert!(names(w).contains(&orphan.to_string()));
    ferrodup(w, &[&args[..], &["--force", url(w).as_str()]].concat()).ok();
    assert!(!names(w).contains(&orphan.to_string()));
    restore_ok(w, T2, "out2");
}

/// Five sets in three chains: full T1, inc T2, full T3, inc T4, full T5.
fn three_chains(w: &Path) {
    make_fixture_tree(&w.join("src"), 1, false);
    backup(w, "full", T1, &[]).ok();
    set_mtime(&w.join("src/hello.txt"), T2 - 1);
    backup(w, "incremental", T2, &[]).ok();
    backup(w, "full", T2 + 86_400, &[]).ok();
    set_mtime(&w.join("src/hello.txt"), T2 + 2 * 86_400 - 1);
    backup(w, "incremental", T2 + 2 * 86_400, &[]).ok();
    backup(w, "full", T2 + 3 * 86_400, &[]).ok();
}

fn count(w: &Path, pat: &str) -> usize {
    names(w).iter().filter(|n| n.contains(pat)).count()
}

#[test]
fn remove_older_than_and_keep_n_full() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    three_chains(w);
    assert_eq!(count(w, ".manifest"), 5);
    let base = ["--archive-dir", "cache", "--name", "n"];
    let u = url(w);
    // Without --force nothing goes.
    let r = ferrodup(
        w,
        &[&["remove-older-than", "20240103T000000Z"][..], &base, &[&u]].concat(),
    )
    .ok();
    assert!(r.stdout().contains("--force"), "{}", r.stdout());
    assert_eq!(count(w, ".manifest"), 5);
    let before = names(w).len();
    let r = ferrodup(
        w,
        &[
            &["remove-older-than", "20240103T000000Z", "--force"][..],
            &base,
            &[&u],
        ]
        .concat(),
    )
    .ok();
    assert_eq!(count(w, ".manifest"), 3);
    let summary = format!("Deleted {} file(s) from file://", before - names(w).len());
    assert!(r.stderr().contains(&summary), "{}", r.stderr());
    assert_eq!(count(w, "20240101T120000Z"), 0, "{:?}", names(w));
    // Incrementals of older chains only.
    ferrodup(
        w,
        &[
            &["remove-all-inc-of-but-n-full", "1", "--force"][..],
            &base,
            &[&u],
        ]
        .concat(),
    )
    .ok();
    assert_eq!(count(w, ".manifest"), 2);
    assert_eq!(count(w, "duplicity-inc."), 0);
    ferrodup(
        w,
        &[&["remove-all-but-n-full", "1", "--force"][..], &base, &[&u]].concat(),
    )
    .ok();
    assert_eq!(count(w, ".manifest"), 1);
    let st = duplicity(
        w,
        &[
            "collection-status",
            "--no-encryption",
            "--archive-dir",
            "dc",
            &u,
        ],
    )
    .ok();
    assert!(
        st.stdout().contains("Found 0 secondary backup chain(s)"),
        "{}",
        st.stdout()
    );
    assert!(st
        .stdout()
        .contains("No orphaned or incomplete backup sets found."));
    restore_ok(w, T2 + 3 * 86_400, "out");
    assert_same_tree(&w.join("src"), &w.join("out"), "after removals");
}

#[test]
fn full_or_incremental_choice() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_fixture_tree(&w.join("src"), 1, false);
    let u = url(w);
    // Bare form: full when there is no chain, incremental after.
    let base = [
        "--no-encryption",
        "--archive-dir",
        "cache",
        "--name",
        "n",
        "--no-print-statistics",
    ];
    ferrodup(
        w,
        &[&base[..], &["--current-time", &T1.to_string(), "src", &u]].concat(),
    )
    .ok();
    set_mtime(&w.join("src/hello.txt"), T2 - 1);
    ferrodup(
        w,
        &[&base[..], &["--current-time", &T2.to_string(), "src", &u]].concat(),
    )
    .ok();
    assert_eq!(count(w, "duplicity-inc."), 2);
    // --full-if-n-inc 1: the chain has one incremental, so this is a full.
    backup(w, "backup", T2 + 100, &["--full-if-n-inc", "1"]).ok();
    assert_eq!(count(w, ".manifest"), 3);
    assert_eq!(count(w, "duplicity-full."), 4);
    // --full-if-older-than 1h with a chain started now-ish: incremental.
    set_mtime(&w.join("src/hello.txt"), T2 + 150);
    backup(w, "backup", T2 + 200, &["--full-if-older-than", "1h"]).ok();
    assert_eq!(count(w, "duplicity-inc."), 4);
    // --full-if-older-than 1s: full.
    backup(w, "backup", T2 + 300, &["--full-if-older-than", "1s"]).ok();
    assert_eq!(count(w, "duplicity-full."), 6);
    // --skip-if-no-change: nothing changed, nothing written.
    let before = names(w);
    backup(w, "incremental", T2 + 400, &["--skip-if-no-change"]).ok();
    assert_eq!(names(w), before);
    // --dry-run writes nothing either, even with changes.
    set_mtime(&w.join("src/hello.txt"), T2 + 450);
    backup(w, "incremental", T2 + 500, &["--dry-run"]).ok();
    assert_eq!(names(w), before);
    // The same incremental for real.
    backup(w, "incremental", T2 + 500, &[]).ok();
    assert_eq!(count(w, ".manifest"), 6);
    restore_ok(w, T2 + 500, "out");
    assert_same_tree(&w.join("src"), &w.join("out"), "after mixed runs");
}

#[test]
fn options_anywhere_equals_form_and_abbreviations() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_fixture_tree(&w.join("src"), 1, false);
    let u = url(w);
    let t = format!("--current-time={T1}");
    ferrodup(
        w,
        &[
            "--no-enc",
            "full",
            "--archive-dir=cache",
            "src",
            "--name",
            "n",
            &u,
            "--num-ret=2",
            &t,
            "--no-print-stat",
        ],
    )
    .ok();
    ferrodup(
        w,
        &[
            "rb",
            &u,
            "--archive-d",
            "cache",
            "--name=n",
            "out",
            "-t",
            "now",
        ],
    )
    .ok();
    assert_same_tree(&w.join("src"), &w.join("out"), "abbreviated options");
    // Bare restore form and --rename.
    ferrodup(
        w,
        &[
            &u,
            "out2",
            "--archive-dir",
            "cache",
            "--name",
            "n",
            "--rename",
            "sub/deeper",
            "elsewhere",
        ],
    )
    .ok();
    assert!(w.join("out2/elsewhere/file with spaces.txt").is_file());
    assert!(!w.join("out2/sub/deeper").exists());
    // An ambiguous abbreviation is an error.
    let r = ferrodup(w, &["--file-prefix-a", "x", "--no", "ls", &u]);
    assert_eq!(r.code(), 23);
}

#[test]
fn list_and_status_at_a_time() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_fixture_tree(&w.join("src"), 1, false);
    backup(w, "full", T1, &[]).ok();
    std::fs::remove_file(w.join("src/hello.txt")).unwrap();
    backup(w, "incremental", T2, &[]).ok();
    let u = url(w);
    let list = |t: i64| {
        ferrodup(
            w,
            &[
                "ls",
                "--archive-dir",
                "cache",
                "--name",
                "n",
                "-t",
                &t.to_string(),
                &u,
            ],
        )
        .ok()
        .stdout()
    };
    assert!(list(T1).contains(" hello.txt\n"));
    assert!(!list(T2).contains(" hello.txt\n"));
    let st = ferrodup(w, &["st", "--archive-dir", "cache", "--name", "n", &u])
        .ok()
        .stdout();
    assert!(st.contains("Number of contained backup sets: 2"), "{st}");
}

#[test]
fn verify_reports_new_missing_and_changed_files() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_fixture_tree(&w.join("src"), 1, false);
    backup(w, "full", T1, &[]).ok();
    let u = url(w);
    let verify = |extra: &[&str]| {
        let mut args = vec!["verify", "--archive-dir", "cache", "--name", "n"];
        args.extend_from_slice(extra);
        args.push(&u);
        args.push("src");
        ferrodup(w, &args)
    };
    let r = verify(&["--compare-data"]).ok();
    assert!(
        r.stderr().contains("0 difference(s) found"),
        "{}",
        r.stderr()
    );
    std::fs::write(w.join("src/extra.txt"), "new").unwrap();
    std::fs::remove_file(w.join("src/lorem.txt")).unwrap();
    let mut data = std::fs::read(w.join("src/medium.txt")).unwrap();
    data[10] ^= 1;
    std::fs::write(w.join("src/medium.txt"), data).unwrap();
    set_mtime(&w.join("src/medium.txt"), 1704067200);
    set_mtime(&w.join("src"), 1704067200);
    let r = verify(&["--compare-data"]);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    let err = r.stderr();
    assert!(err.contains("New file extra.txt"), "{err}");
    assert!(err.contains("File lorem.txt is missing"), "{err}");
    assert!(
        err.contains("Data for file medium.txt is different"),
        "{err}"
    );
    assert!(err.contains("3 difference(s) found"), "{err}");
    // duplicity agrees on the count.
    let d = duplicity(
        w,
        &[
            "verify",
            "--compare-data",
            "--no-encryption",
            "--archive-dir",
            "dc",
            &u,
            "src",
        ],
    );
    assert_eq!(d.code(), 1);
    assert!(
        d.stdout().contains("3 difference(s) found"),
        "{}",
        d.stdout()
    );
    // Without --compare-data, as in duplicity, nothing is compared.
    verify(&[]).ok();
}

#[test]
fn restore_reads_only_the_volumes_it_needs() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_fixture_tree(&w.join("src"), 1, true);
    backup(w, "full", T1, &["--volsize", "1"]).ok();
    // to-be-deleted.txt sits in volume 3: volumes 1 and 2 are not needed.
    for n in [1, 2] {
        std::fs::remove_file(w.join(format!(
            "target/duplicity-full.20240101T120000Z.vol{n}.difftar.gz"
        )))
        .unwrap();
    }
    let u = url(w);
    ferrodup(
        w,
        &[
            "restore",
            "--archive-dir",
            "cache",
            "--name",
            "n",
            "-r",
            "to-be-deleted.txt",
            &u,
            "one",
        ],
    )
    .ok();
    assert_eq!(
        std::fs::read(w.join("one")).unwrap(),
        std::fs::read(w.join("src/to-be-deleted.txt")).unwrap()
    );
    let r = ferrodup(
        w,
        &[
            "restore",
            "--archive-dir",
            "cache",
            "--name",
            "n",
            &u,
            "all",
        ],
    );
    assert_eq!(r.code(), 1, "{}", r.stderr());
}

#[test]
fn ownership_options_and_devices() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("ownership_options_and_devices: needs root, skipped");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_fixture_tree(&w.join("src"), 1, false);
    let dev = w.join("src/null-device");
    let made = std::process::Command::new("mknod")
        .arg(&dev)
        .args(["c", "1", "3"])
        .status()
        .is_ok_and(|s| s.success());
    if made {
        set_mtime(&dev, T1 - 100);
        set_mtime(&w.join("src"), T1 - 100);
    } else {
        eprintln!("mknod is not permitted here: device files are not checked");
    }
    backup(w, "full", T1, &[]).ok();
    let u = url(w);
    ferrodup(
        w,
        &[
            "restore",
            "--archive-dir",
            "cache",
            "--name",
            "n",
            &u,
            "out",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("out"),
        "restore with owners and devices",
    );
    if made {
        use std::os::unix::fs::MetadataExt;
        let a = std::fs::symlink_metadata(&dev).unwrap();
        let b = std::fs::symlink_metadata(w.join("out/null-device")).unwrap();
        assert_eq!(a.rdev(), b.rdev());
        duplicity(
            w,
            &[
                "restore",
                "--no-encryption",
                "--archive-dir",
                "dc",
                &u,
                "dout",
            ],
        )
        .ok();
        assert_same_tree(
            &w.join("src"),
            &w.join("dout"),
            "duplicity restores the device",
        );
    }
    restore_with(w, &["--no-restore-ownership"], "mine");
    use std::os::unix::fs::MetadataExt;
    let owned = std::fs::metadata(w.join("mine/sub/owned.txt")).unwrap();
    assert_eq!((owned.uid(), owned.gid()), (0, 0));
    restore_with(w, &["--numeric-owner"], "numeric");
    let owned = std::fs::metadata(w.join("numeric/sub/owned.txt")).unwrap();
    assert_eq!((owned.uid(), owned.gid()), (1234, 5678));
}

/// A full backup of `big_source` in 1 MiB volumes (encrypted with a passphrase when
/// `pass` is given); returns the volume names in order.
fn multivolume_backup(w: &Path, pass: Option<&str>) -> Vec<String> {
    big_source(w);
    std::os::unix::fs::symlink("random.bin", w.join("src/link-to-random")).unwrap();
    std::fs::set_permissions(
        w.join("src/random.bin"),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    set_mtime(&w.join("src"), T1 - 5);
    let u = url(w);
    let ts = T1.to_string();
    let mut args = vec![
        "full",
        "--no-print-statistics",
        "--archive-dir",
        "cache",
        "--name",
        "n",
        "--current-time",
        &ts,
        "--volsize",
        "1",
    ];
    if pass.is_none() {
        args.push("--no-encryption");
    }
    args.extend_from_slice(&["src", &u]);
    with_pass(w, pass, &args).ok();
    let vols: Vec<String> = names(w)
        .into_iter()
        .filter(|n| n.contains(".vol"))
        .collect();
    assert!(vols.len() >= 4, "want several volumes, got {vols:?}");
    let mut numbered: Vec<(u32, String)> = vols
        .into_iter()
        .map(|n| {
            let k = n.split(".vol").nth(1).unwrap();
            (k.split('.').next().unwrap().parse().unwrap(), n)
        })
        .collect();
    numbered.sort();
    numbered.into_iter().map(|(_, n)| n).collect()
}

/// ferrodup in `w` with PASSPHRASE set to `pass` (or unset).
fn with_pass(w: &Path, pass: Option<&str>, args: &[&str]) -> Run {
    let mut c = std::process::Command::new(ferrodup_bin());
    c.current_dir(w).args(args).env_remove("PASSPHRASE");
    if let Some(p) = pass {
        c.env("PASSPHRASE", p);
    }
    run(&mut c, &format!("ferrodup {}", args.join(" ")))
}

fn restore_args<'a>(u: &'a str, pass: Option<&str>, dest: &'a str) -> Vec<&'a str> {
    let mut args = vec!["restore", "--archive-dir", "cache", "--name", "n"];
    if pass.is_none() {
        args.push("--no-encryption");
    }
    args.extend_from_slice(&[u, dest]);
    args
}

#[test]
fn multivolume_restore_equals_the_source_plain_and_encrypted() {
    for pass in [None, Some("multivolume-pass")] {
        let t = tempfile::tempdir().unwrap();
        let w = t.path();
        multivolume_backup(w, pass);
        let u = url(w);
        with_pass(w, pass, &restore_args(&u, pass, "out")).ok();
        assert_same_tree(&w.join("src"), &w.join("out"), "multivolume restore");
        // verify reads the same volumes the same way.
        let mut args = vec!["verify", "--compare-data", "--archive-dir", "cache"];
        args.extend_from_slice(&["--name", "n"]);
        if pass.is_none() {
            args.push("--no-encryption");
        }
        args.extend_from_slice(&[&u, "src"]);
        let r = with_pass(w, pass, &args).ok();
        let said = r.stdout() + &r.stderr();
        assert!(said.contains(", 0 difference(s) found"), "{said}");
    }
}

/// The number of the first volume whose data starts inside the file `path` (a later chunk
/// of it), read from the cached manifest of the test's full backup.
fn volume_starting_inside(w: &Path, path: &str) -> usize {
    let dir = w.join("cache/n");
    let manifest = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".manifest"))
        .expect("a cached manifest");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut volume = 0;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("Volume ") {
            volume = n.trim_end_matches(':').parse().unwrap();
        }
        let start = line
            .trim()
            .strip_prefix("StartingPath")
            .map(str::split_whitespace);
        if let Some(mut start) = start {
            if start.next() == Some(path) && start.next().is_some() {
                return volume;
            }
        }
    }
    panic!("no volume of {} starts inside {path}", manifest.display());
}

#[test]
fn corrupt_middle_volume_fails_naming_it_and_keeps_no_partial_file() {
    for (pass, cut) in [(None, true), (Some("multivolume-pass"), false)] {
        let t = tempfile::tempdir().unwrap();
        let w = t.path();
        let vols = multivolume_backup(w, pass);
        // The first volume that starts inside random.bin: the file spans its start.
        let k = volume_starting_inside(w, "random.bin");
        let bad = &vols[k - 1];
        let p = w.join("target").join(bad);
        let mut data = std::fs::read(&p).unwrap();
        if cut {
            data.truncate(data.len() / 2);
        } else {
            let k = data.len() / 2;
            data[k] ^= 0x55;
        }
        std::fs::write(&p, data).unwrap();
        let u = url(w);
        let r = with_pass(w, pass, &restore_args(&u, pass, "out"));
        assert_fails(&r, 21, &[bad.as_str(), "corrupt"]);
        // Whatever was restored is complete and equal to the source.
        let want = snapshot(&w.join("src"));
        for (k, got) in snapshot(&w.join("out")) {
            let same = match (&got, want.get(&k)) {
                (Obj::File { sha1, .. }, Some(Obj::File { sha1: s, .. })) => sha1 == s,
                (Obj::File { .. }, _) => false,
                _ => true,
            };
            assert!(same, "{k} was kept but differs from the source");
        }
        assert!(
            !w.join("out/random.bin").exists(),
            "random.bin, cut short by the corrupt volume, was kept"
        );
    }
}

/// A volume is decoded while its hash is checked. In an uncompressed, unencrypted volume
/// only the hash can catch a changed byte of a file's data: the files restored from that
/// volume before the verdict are removed, and nothing that differs from the source is left.
/// The second restore's hash check is held back a second, so that the files of the volume
/// are written before the verdict, and removed after it.
#[test]
fn files_restored_from_a_volume_with_a_bad_hash_are_removed() {
    let t = tempfile::tempdir().unwrap();
    let w = t.path();
    let src = w.join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..300 {
        let text = format!("file {i}\n").repeat(200);
        std::fs::write(src.join(format!("f{i:03}")), text).unwrap();
    }
    backup(w, "full", T1, &["--no-compression"]).ok();
    let vol = names(w)
        .into_iter()
        .find(|n| n.contains(".vol1."))
        .expect("volume 1");
    let p = w.join("target").join(&vol);
    let mut data = std::fs::read(&p).unwrap();
    let at = data
        .windows(9)
        .position(|x| x == b"file 150\n")
        .expect("f150's data in the volume");
    data[at + 5] = b'7';
    std::fs::write(&p, &data).unwrap();
    let u = url(w);
    for (dest, failpoint) in [("out", ""), ("out2", "volume-hash:1:slow")] {
        let mut c = std::process::Command::new(ferrodup_bin());
        c.current_dir(w)
            .args(["restore", "--no-encryption", "--archive-dir", "cache"])
            .args(["--name", "n", &u, dest])
            .env("FERRODUP_FAILPOINT", failpoint);
        let r = run(&mut c, dest);
        assert_fails(&r, 21, &[vol.as_str(), "SHA1"]);
        if !failpoint.is_empty() {
            let removed = "file(s) restored from volumes not verified were removed";
            assert!(r.stderr().contains(removed), "{}", r.stderr());
        }
        if !w.join(dest).exists() {
            continue;
        }
        let want = snapshot(&src);
        for (k, got) in snapshot(&w.join(dest)) {
            if let Obj::File { .. } = got {
                assert_eq!(want.get(&k), Some(&got), "{k} was kept from the bad volume");
            }
        }
        assert!(
            !w.join(dest).join("f150").exists(),
            "the damaged file was kept"
        );
    }
}

/// `check` on a local target: sizes (recorded in the manifests) and presence of every
/// volume of both sets, and every signature file read through; a removed volume, a cut one
/// and a damaged signature file are each named, with exit status 1.
#[test]
fn check_finds_missing_and_cut_volumes_and_unreadable_signatures() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    big_source(w);
    backup(w, "full", T1, &["--volsize", "1"]).ok();
    edits::state3(&w.join("src"), T2 - 60);
    backup(w, "incremental", T2, &[]).ok();
    let check = |w: &Path| {
        ferrodup(
            w,
            &[
                "check",
                "--no-encryption",
                "--archive-dir",
                "cache",
                "--name",
                "n",
                &url(w),
            ],
        )
    };
    let r = check(w).ok();
    let vols = names(w).iter().filter(|n| n.contains(".difftar")).count();
    assert!(vols >= 5, "{:?}", names(w));
    assert!(
        r.stderr().contains(&format!(
            "Check complete: {vols} volume(s) in 1 chain(s) on {} (0 by content, the others \
             by size and presence), 2 manifest(s), 2 signature file(s); 0 problem(s) found.",
            url(w)
        )),
        "{}",
        r.stderr()
    );
    let target = w.join("target");
    let name = |pat: &str| names(w).into_iter().find(|n| n.contains(pat)).unwrap();
    std::fs::remove_file(target.join(name(".vol2.difftar"))).unwrap();
    let vol3 = name(".vol3.difftar");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(target.join(&vol3))
        .unwrap();
    f.set_len(1000).unwrap();
    let sig = name("new-signatures");
    let mut data = std::fs::read(target.join(&sig)).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(target.join(&sig), data).unwrap();
    let r = check(w);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    let err = r.stderr();
    assert!(
        err.contains(".vol2.difftar.gz (volume 2 of duplicity-full."),
        "{err}"
    );
    assert!(
        err.contains(&format!("{vol3} on {} has 1000 bytes", url(w))),
        "{err}"
    );
    assert!(err.contains(&format!("{sig} cannot be read")), "{err}");
    assert!(err.contains("3 problem(s) found"), "{err}");
}

/// `replicate --since`/`--time` copy the sets of a time range: the incremental alone (with
/// a warning that its full is not on the target), then the rest; the copy restores both
/// states, and a range holding no set is an error.
#[test]
fn replicate_copies_a_time_range() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_fixture_tree(&w.join("src"), 1, true);
    backup(w, "full", T1, &[]).ok();
    copy_tree(&w.join("src"), &w.join("state1"));
    edits::state3(&w.join("src"), T2 - 60);
    backup(w, "incremental", T2, &[]).ok();
    let copy = format!("file://{}/copy", w.display());
    let replicate = |extra: &[&str]| {
        let mut args = vec!["replicate", "--no-encryption", "--archive-dir", "rc"];
        args.extend_from_slice(extra);
        let u = url(w);
        args.extend_from_slice(&[&u, &copy]);
        ferrodup(w, &args)
    };
    let t2 = T2.to_string();
    let r = replicate(&["--since", &t2]).ok();
    let said = r.stderr();
    assert!(said.contains("of 1 set(s) copied"), "{said}");
    assert!(
        said.contains("whose full backup is not on file://"),
        "{said}"
    );
    let copied: Vec<String> = std::fs::read_dir(w.join("copy"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !copied.is_empty() && copied.iter().all(|n| n.contains(".to.")),
        "only the incremental set's files: {copied:?}"
    );
    let r = replicate(&["--time", &(T2 - 1).to_string()]).ok();
    assert!(r.stderr().contains("of 1 set(s) copied"), "{}", r.stderr());
    let r = replicate(&[]).ok();
    assert!(
        r.stderr()
            .contains("Replicate complete: 0 file(s) (0 B) of 2 set(s)"),
        "{}",
        r.stderr()
    );
    for (t, state, dest) in [(T1, "state1", "r1"), (T2, "src", "r2")] {
        let ts = t.to_string();
        ferrodup(
            w,
            &[
                "restore",
                "--no-encryption",
                "--archive-dir",
                "cc",
                "--time",
                &ts,
                &copy,
                dest,
            ],
        )
        .ok();
        assert_same_tree(&w.join(state), &w.join(dest), dest);
    }
    let r = replicate(&["--since", &(T2 + 1).to_string()]);
    assert_fails(
        &r,
        23,
        &["no complete backup set ending between", "to replicate"],
    );
}
