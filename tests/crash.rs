//! Crashes: full and incremental backups (and the recovery and cleanup runs after them)
//! are killed with SIGKILL at every step (`FERRODUP_FAILPOINT`); the next run must succeed
//! and leave nothing behind, and the result must restore byte-exact with ferrodup and with
//! duplicity, and take a further incremental (made by duplicity). Also: the archive dir
//! lock, shared with duplicity, and leftovers of runs from another archive dir.

mod common;

use common::*;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const PASS: &str = "crash test passphrase";
/// The options of an unencrypted backup.
const PLAIN: &[&str] = &["--no-encryption"];

fn url(w: &Path) -> String {
    format!("file://{}/target", w.display())
}

/// ferrodup in `w`, with the test's passphrase and temp dir, killed at `failpoint`.
fn fdup_cmd(w: &Path, failpoint: Option<&str>, args: &[&str]) -> Command {
    let mut c = Command::new(ferrodup_bin());
    c.current_dir(w)
        .args(args)
        .env("PASSPHRASE", PASS)
        .env("TMPDIR", w.join("tmp"));
    match failpoint {
        Some(f) => c.env("FERRODUP_FAILPOINT", f),
        None => c.env_remove("FERRODUP_FAILPOINT"),
    };
    c
}

fn fdup(w: &Path, failpoint: Option<&str>, args: &[&str]) -> Run {
    let what = format!("ferrodup {} (failpoint {failpoint:?})", args.join(" "));
    run(&mut fdup_cmd(w, failpoint, args), &what)
}

fn dup(w: &Path, args: &[&str]) -> Run {
    let mut c = Command::new(duplicity_bin());
    c.current_dir(w)
        .args(args)
        .env("HOME", w)
        .env("PASSPHRASE", PASS);
    run(&mut c, &format!("duplicity {}", args.join(" ")))
}

/// Arguments of a ferrodup backup of `src` at time `t` with the test's cache.
fn backup_args<'a>(w: &'a str, kind: &'a str, t: &'a str, enc: &'a [&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        kind,
        "--volsize",
        "1",
        "--no-print-statistics",
        "--archive-dir",
        "cache",
        "--name",
        "n",
        "--current-time",
        t,
    ];
    a.extend_from_slice(enc);
    a.push("src");
    a.push(w);
    a
}

/// A ferrodup backup of `src` to `u` at time `t`, killed at `failpoint` if one is given.
fn backup(w: &Path, failpoint: Option<&str>, u: &str, kind: &str, t: i64, enc: &[&str]) -> Run {
    let ts = t.to_string();
    fdup(w, failpoint, &backup_args(u, kind, &ts, enc))
}

/// Arguments of a ferrodup cleanup (`--force`: deleting) with the test's cache.
fn cleanup_args<'a>(u: &'a str, force: bool, enc: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["cleanup"];
    if force {
        a.push("--force");
    }
    a.extend_from_slice(&["--archive-dir", "cache", "--name", "n"]);
    a.extend_from_slice(enc);
    a.push(u);
    a
}

/// Arguments of a collection-status with the test's cache (for ferrodup and duplicity).
fn status_args(u: &str) -> Vec<&str> {
    vec![
        "collection-status",
        "--archive-dir",
        "cache",
        "--name",
        "n",
        u,
    ]
}

/// Restores the latest backup with ferrodup and the test's cache into `out`, which must
/// equal the source.
fn restore_and_compare(w: &Path, u: &str, enc: &[&str], out: &str, what: &str) {
    let mut a = vec!["restore", "--archive-dir", "cache", "--name", "n"];
    a.extend_from_slice(enc);
    a.extend_from_slice(&[u, out]);
    fdup(w, None, &a).ok();
    assert_same_tree(&w.join("src"), &w.join(out), what);
}

/// A work dir with an empty temp dir and the source tree, and its target's URL.
fn workdir() -> (tempfile::TempDir, String) {
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("tmp")).unwrap();
    source(work.path());
    let u = url(work.path());
    (work, u)
}

fn assert_no_temp_files(w: &Path) {
    let tmp: Vec<_> = std::fs::read_dir(w.join("tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "temp files left: {tmp:?}");
}

/// A small tree (the fixture tree and 3 MB of random data: four 1 MiB volumes).
fn source(w: &Path) {
    make_fixture_tree(&w.join("src"), 1, false);
    std::fs::write(w.join("src/random.bin"), edits::prng_bytes(1, 3_000_000)).unwrap();
    set_mtime(&w.join("src/random.bin"), T1 - 10);
    set_mtime(&w.join("src"), T1 - 10);
}

/// Changes a file, deletes one, adds one; times before `t`.
fn edit(w: &Path, seed: u64, t: i64) {
    let src = w.join("src");
    std::fs::write(src.join("random.bin"), edits::prng_bytes(seed, 3_000_000)).unwrap();
    set_mtime(&src.join("random.bin"), t - 10);
    let _ = std::fs::remove_file(src.join("hello.txt"));
    std::fs::write(src.join(format!("new-{seed}.txt")), seed.to_string()).unwrap();
    set_mtime(&src.join(format!("new-{seed}.txt")), t - 10);
    set_mtime(&src, t - 10);
}

fn assert_killed(r: &Run) {
    assert_eq!(
        r.out.status.signal(),
        Some(libc::SIGKILL),
        "{} was not killed at its failpoint ({:?}):\n{}",
        r.what,
        r.out.status,
        r.stderr()
    );
}

/// One interrupted run: a backup (`None`: the same backup again) or a cleanup.
enum Step {
    Backup(&'static str),
    Cleanup(&'static str),
}

/// Runs the case: a full (or a full and then an incremental) whose runs are killed at
/// `steps` in turn; then the backup is run again and must succeed, leave no leftovers on
/// the target, in the archive dir or in the temp dir, and restore exactly with ferrodup
/// and duplicity; then an incremental (by duplicity in the incremental cases, where the
/// chain was repaired) is added and restored.
fn crash_case(incremental: bool, encrypted: bool, steps: &[Step]) {
    let (work, u) = workdir();
    let w = work.path();
    let enc = if encrypted { &[] } else { PLAIN };
    let mut t = T1;
    let kind = if incremental {
        backup(w, None, &u, "full", T1, enc).ok();
        t = T2;
        edit(w, 2, t);
        "incremental"
    } else {
        "full"
    };
    for step in steps {
        let r = match step {
            Step::Backup(fp) => backup(w, Some(fp), &u, kind, t, enc),
            Step::Cleanup(fp) => fdup(w, Some(fp), &cleanup_args(&u, true, enc)),
        };
        assert_killed(&r);
        t += 100;
    }
    backup(w, None, &u, kind, t, enc).ok();
    let r = fdup(w, None, &cleanup_args(&u, false, enc)).ok();
    assert!(
        r.stderr().contains("No extraneous files found"),
        "leftovers after the rerun:\n{}{}",
        r.stdout(),
        r.stderr()
    );
    assert_no_temp_files(w);

    restore_and_compare(w, &u, enc, "out-f", "ferrodup restore");
    let mut a = vec!["restore", "--archive-dir", "dc", "--name", "d"];
    a.extend_from_slice(enc);
    a.extend_from_slice(&[&u, "out-d"]);
    dup(w, &a).ok();
    assert_same_tree(&w.join("src"), &w.join("out-d"), "duplicity restore");

    t += 100;
    edit(w, 3, t);
    if incremental {
        let ts = t.to_string();
        let mut a = vec![
            "incremental",
            "--allow-source-mismatch",
            "--archive-dir",
            "dc",
            "--name",
            "d",
            "--current-time",
            &ts,
        ];
        a.extend_from_slice(enc);
        a.extend_from_slice(&["src", &u]);
        dup(w, &a).ok();
    } else {
        backup(w, None, &u, "incremental", t, enc).ok();
    }
    restore_and_compare(w, &u, enc, "out-f2", "after a further incremental");
}

/// One test per crash point, for a full and for an incremental backup (unencrypted: gpg
/// makes duplicity several times slower; the encrypted cases are below).
macro_rules! crash_tests {
    ($($name:ident: $($step:expr),+;)*) => {
        mod full {
            use super::*;
            $(#[test] fn $name() { crash_case(false, false, &[$($step),+]); })*
        }
        mod incremental {
            use super::*;
            $(#[test] fn $name() { crash_case(true, false, &[$($step),+]); })*
        }
    };
}

use Step::{Backup as B, Cleanup as C};

crash_tests! {
    start: B("backup-start");
    walk_start: B("walk-start");
    first_member: B("member:1");
    mid_file: B("member:30");
    volume_cut: B("volume-cut:2");
    volume_made: B("volume-made:2");
    before_volume_upload: B("volume-put:1");
    after_volume_upload: B("volume-stored:2");
    after_partial_manifest_1: B("volume-recorded:1");
    after_partial_manifest_3: B("volume-recorded:3");
    walk_end: B("walk-end");
    volumes_done: B("volumes-done");
    manifest_written: B("manifest-written");
    signature_cached: B("sig-cached");
    signature_stored: B("sig-stored");
    manifest_stored: B("manifest-stored");
    manifest_cached: B("manifest-cached");
    end: B("backup-end");
    cache_sync_delete: B("sig-cached"), B("cache-delete");
    // Two stored volumes are resumed (as by duplicity); a set with one stored volume, not
    // recorded yet, is deleted. (Killed once volume 1 is recorded, more volumes may be
    // stored already, depending on how fast the engine makes them.)
    leftover_delete: B("volume-stored:1"), B("leftover-delete");
    stray_signature_delete: B("sig-stored"), B("leftover-delete");
    cache_partial_delete: B("volume-recorded:1"), B("cache-partial-delete");
    resume_delete: B("volume-recorded:3"), B("resume-delete");
    // The resumed run redoes at least the last volume stored (more are stored ahead of the
    // manifest with parallel uploads), and is killed as it records it.
    resumed_then_killed: B("volume-recorded:3"), B("volume-recorded:1");
    cleanup_delete: B("sig-stored"), C("remove-delete:2");
}

#[test]
fn encrypted_full_resumed_after_a_crash() {
    crash_case(false, true, &[B("volume-recorded:3"), B("resume-delete")]);
}

#[test]
fn encrypted_incremental_killed_between_signature_and_manifest() {
    crash_case(true, true, &[B("sig-stored")]);
}

/// A killed run's download into the archive dir (a fresh archive dir is synced first).
#[test]
fn killed_while_copying_to_the_archive_dir() {
    let (work, u) = workdir();
    let w = work.path();
    backup(w, None, &u, "full", T1, PLAIN).ok();
    std::fs::remove_dir_all(w.join("cache")).unwrap();
    edit(w, 2, T2);
    let r = backup(w, Some("cache-copy:2"), &u, "incremental", T2, PLAIN);
    assert_killed(&r);
    backup(w, None, &u, "incremental", T2 + 100, PLAIN).ok();
    restore_and_compare(w, &u, PLAIN, "out", "restore");
}

/// A run stopped (not killed) at `failpoint`, holding the archive dir lock.
fn stopped(w: &Path, failpoint: &str, args: &[&str]) -> Child {
    let mut c = fdup_cmd(w, Some(failpoint), args);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let stat = format!("/proc/{}/stat", child.id());
    for _ in 0..600 {
        let s = std::fs::read_to_string(&stat).unwrap_or_default();
        if s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('T'))
        {
            return child;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("ferrodup never reached {failpoint}");
}

#[test]
fn a_second_run_is_refused_at_once_and_a_killed_runs_lock_does_not_block() {
    let (work, u) = workdir();
    let w = work.path();
    let ts = T1.to_string();
    let mut first = stopped(
        w,
        "volume-recorded:2:stop",
        &backup_args(&u, "full", &ts, PLAIN),
    );
    let t2 = (T1 + 100).to_string();
    for args in [
        backup_args(&u, "full", &t2, PLAIN),
        cleanup_args(&u, true, &[]),
        status_args(&u),
    ] {
        let started = std::time::Instant::now();
        let r = fdup(w, None, &args);
        assert!(started.elapsed().as_secs() < 5, "{} waited", r.what);
        assert_fails(
            &r,
            23,
            &["another ferrodup or duplicity run", "cache/n/lockfile"],
        );
    }
    // The running backup's volumes are untouched.
    assert!(w
        .join("target/duplicity-full.20240101T120000Z.vol2.difftar.gz")
        .exists());
    // duplicity is refused too.
    let r = dup(w, &status_args(&u));
    assert_eq!(r.code(), 23, "{}", r.stderr());
    assert!(
        r.stderr().contains("Another duplicity instance"),
        "{}",
        r.stderr()
    );

    first.kill().unwrap();
    first.wait().unwrap();
    let r = fdup(w, None, &backup_args(&u, "full", &t2, PLAIN)).ok();
    assert!(r.stderr().contains("Resuming"), "{}", r.stderr());
    assert_no_temp_files(w);
    restore_and_compare(w, &u, PLAIN, "out", "restore");
}

/// duplicity holding the lock (stopped inside gpg, which a wrapper makes wait) blocks
/// ferrodup.
#[test]
fn duplicity_holding_the_lock_blocks_ferrodup() {
    let (work, u) = workdir();
    let w = work.path();
    let gpg = w.join("slow-gpg");
    std::fs::write(
        &gpg,
        format!(
            "#!/bin/sh\ncase \" $* \" in *\" --version \"*) exec gpg \"$@\";; esac\n\
             echo $$ > {}/gpg-started\nexec sleep 600\n",
            w.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&gpg, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut c = Command::new(duplicity_bin());
    c.current_dir(w)
        .args([
            "full",
            "--archive-dir",
            "cache",
            "--name",
            "n",
            "--gpg-binary",
            gpg.to_str().unwrap(),
            "src",
            &u,
        ])
        .env("HOME", w)
        .env("PASSPHRASE", PASS)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut d = c.spawn().unwrap();
    let mut waited = 0;
    let gpg_pid: libc::pid_t = loop {
        let pid = std::fs::read_to_string(w.join("gpg-started")).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse() {
            break pid;
        }
        assert!(waited < 600, "duplicity never ran gpg");
        assert!(d.try_wait().unwrap().is_none(), "duplicity ended early");
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 1;
    };
    let r = fdup(w, None, &status_args(&u));
    // SAFETY: kills the wrapper this test's duplicity started.
    unsafe {
        libc::kill(gpg_pid, libc::SIGKILL);
    }
    d.kill().unwrap();
    d.wait().unwrap();
    assert_fails(&r, 23, &["another ferrodup or duplicity run"]);
    // Its lock died with it.
    fdup(w, None, &status_args(&u)).ok();
}

/// An incomplete set written from another archive dir is left alone while it may still be
/// in progress (less than a day old), deleted by a backup after that, and deleted by
/// `cleanup --force` at any time.
#[test]
fn another_archive_dirs_incomplete_set_is_left_alone_while_recent() {
    let (work, u) = workdir();
    let w = work.path();
    backup(w, None, &u, "full", T1, PLAIN).ok();
    // Another machine's incremental, stopped after two volumes and its signature file.
    edit(w, 2, T2);
    std::fs::rename(w.join("cache"), w.join("cache-mine")).unwrap();
    let r = backup(w, Some("sig-stored"), &u, "incremental", T2, PLAIN);
    assert_killed(&r);
    std::fs::rename(w.join("cache"), w.join("cache-other")).unwrap();
    std::fs::rename(w.join("cache-mine"), w.join("cache")).unwrap();
    let theirs: Vec<PathBuf> = std::fs::read_dir(w.join("target"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("20240102T120000Z"))
        .collect();
    assert!(theirs.len() >= 3, "{theirs:?}");
    let all_there = || theirs.iter().all(|p| p.exists());

    // An hour later: left alone, with a warning; this backup goes on.
    let r = backup(w, None, &u, "incremental", T2 + 3600, PLAIN).ok();
    assert!(r.stderr().contains("leaving alone"), "{}", r.stderr());
    assert!(all_there());
    restore_and_compare(w, &u, PLAIN, "out", "restore");
    // cleanup lists it, and deletes it with --force.
    let r = fdup(w, None, &cleanup_args(&u, false, PLAIN)).ok();
    for p in &theirs {
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(
            r.stdout().contains(name),
            "{name} not listed:\n{}",
            r.stdout()
        );
    }
    assert!(all_there());
    fdup(w, None, &cleanup_args(&u, true, PLAIN)).ok();
    assert!(theirs.iter().all(|p| !p.exists()), "{theirs:?}");
}

#[test]
fn another_archive_dirs_day_old_incomplete_set_is_deleted_by_a_backup() {
    let (work, u) = workdir();
    let w = work.path();
    let r = backup(w, Some("volume-recorded:3"), &u, "full", T1, PLAIN);
    assert_killed(&r);
    std::fs::remove_dir_all(w.join("cache")).unwrap();
    let r = backup(w, None, &u, "full", T1 + 86_400, PLAIN).ok();
    assert!(
        r.stderr().contains("Deleting the incomplete"),
        "{}",
        r.stderr()
    );
    let left: Vec<_> = std::fs::read_dir(w.join("target"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("20240101T120000Z"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
