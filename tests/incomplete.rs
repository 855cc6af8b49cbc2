//! Incomplete data is never passed off as complete: files that fail to read during a
//! backup (real EIO injected with strace), files that shrink or vanish, sets whose volumes
//! end before their last file does, and files rewritten within the same second.

mod common;

use common::edits::prng_bytes;
use common::*;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const T3: i64 = T2 + 86_400;
const T4: i64 = T3 + 86_400;

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

/// Restores the damaged `multivolume_set` with `--ignore-errors` into `rest`: it succeeds
/// and says big.bin is not restored; a.txt is there, big.bin is not, and z.txt is there
/// only if `z_restored`.
fn restore_ignoring_errors(w: &Path, z_restored: bool) {
    let r = restore_run(w, &["--ignore-errors"], "rest").ok();
    assert!(
        r.stderr().contains("big.bin not restored"),
        "{}",
        r.stderr()
    );
    assert_eq!(std::fs::read(w.join("rest/a.txt")).unwrap(), b"first\n");
    assert!(!w.join("rest/big.bin").exists());
    if z_restored {
        assert_eq!(std::fs::read(w.join("rest/z.txt")).unwrap(), b"last\n");
    } else {
        assert!(!w.join("rest/z.txt").exists());
    }
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
        1,
        &["incomplete", &format!("volume {}", vols - 1), "missing"],
    );
    assert!(
        !w.join("out").exists(),
        "nothing is restored before the error"
    );
    let st = status_run(w);
    assert_fails(&st, 30, &["damaged"]);
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
    // The chain is not extended: an incremental on it could not be restored.
    let r = backup(w, "incremental", T2, &["--volsize", "1"]);
    assert_fails(&r, 30, &["incomplete", "run a full backup"]);

    // A path in the volumes that are there still restores.
    restore_run(w, &["-r", "a.txt"], "a-only").ok();
    assert_eq!(std::fs::read(w.join("a-only")).unwrap(), b"first\n");

    // --ignore-errors: the rest is restored; big.bin, cut, is not.
    restore_ignoring_errors(w, true);
}

#[test]
fn a_corrupt_volume_skipped_with_ignore_errors_leaves_no_short_file() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    multivolume_set(w);
    let p = volume(w, 2);
    let mut data = std::fs::read(&p).unwrap();
    data[5000] ^= 0x55;
    std::fs::write(&p, &data).unwrap();
    restore_ignoring_errors(w, true);
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
    assert_fails(&r, 1, &["incomplete", "ends inside big.bin"]);
    let st = status_run(w);
    assert_fails(&st, 30, &["damaged"]);
    assert!(
        st.stdout().contains("ends inside big.bin"),
        "{}",
        st.stdout()
    );

    restore_ignoring_errors(w, false);
}

/// Runs ferrodup under strace, failing the `nth` system call of `syscall` on `file` as
/// `inject` says (`error=EIO`, `retval=0`, ...).
fn backup_injected(
    w: &Path,
    kind: &str,
    t: i64,
    extra: &[&str],
    file: &Path,
    syscall: &str,
    inject: &str,
) -> Run {
    let mut c = Command::new("strace");
    c.current_dir(w)
        .args(["-f", "-qq", "-o", "/dev/null", "-P"])
        .arg(file)
        .args(["-e", &format!("trace={syscall}")])
        .args(["-e", &format!("inject={syscall}:{inject}")])
        .arg(ferrodup_bin())
        .args(backup_args(w, kind, t, extra))
        .env_remove("PASSPHRASE");
    let r = run(
        &mut c,
        &format!("ferrodup {kind} under strace ({syscall} {inject})"),
    );
    assert!(
        !r.stderr()
            .lines()
            .any(|l| l.starts_with("strace: ") && !l.contains("resolved into")),
        "strace failed (install strace; ptrace must be allowed):\n{}",
        r.stderr()
    );
    r
}

fn restore_both(w: &Path, t: i64, expected: &Path, what: &str) {
    let dest = format!("f-out-{t}");
    restore_run(w, &["-t", &t.to_string()], &dest).ok();
    assert_same_tree(
        expected,
        &w.join(dest),
        &format!("ferrodup restore: {what}"),
    );
    duplicity_restore_matches(
        w,
        &url(w),
        t,
        &[],
        &w.join(format!("d-out-{t}")),
        expected,
        &format!("duplicity restore: {what}"),
    );
}

/// duplicity extends the chain with an incremental of `src` at `t` (its archive dir
/// `dcache`, `extra` options).
fn duplicity_incremental(w: &Path, t: i64, extra: &[&str]) {
    let ts = t.to_string();
    let u = url(w);
    let mut a = vec!["incremental", "--no-encryption", "--archive-dir", "dcache"];
    a.extend_from_slice(extra);
    a.extend_from_slice(&["--current-time", &ts, "src", &u]);
    duplicity(w, &a).ok();
}

/// A copy of `src` as it should be restored, made with `edit`.
fn expected(w: &Path, name: &str, edit: impl FnOnce(&Path)) -> PathBuf {
    let dest = w.join(name);
    copy_tree(&w.join("src"), &dest);
    edit(&dest);
    let mtime = std::fs::metadata(w.join("src"))
        .unwrap()
        .modified()
        .unwrap();
    std::fs::File::open(&dest)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    dest
}

fn stat_line(r: &Run, key: &str) -> String {
    r.stdout()
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key} in:\n{}", r.stdout()))
        .to_string()
}

/// Asserts a backup that finished but could not read `n` files: status 1, `Errors n`,
/// a warning naming `file`, and one `ferrodup:` line saying the backup is incomplete.
fn assert_incomplete(r: &Run, n: u64, file: &str) {
    assert_fails(r, 1, &["backup is incomplete", &format!("{n} file(s)")]);
    assert_eq!(stat_line(r, "Errors "), format!("Errors {n}"));
    assert!(
        r.stderr()
            .lines()
            .any(|l| l.starts_with("Warning: ") && l.contains(file)),
        "no warning naming {file}:\n{}",
        r.stderr()
    );
}

#[test]
fn read_errors_are_never_stored_as_complete_files() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let src = w.join("src");
    std::fs::create_dir(&src).unwrap();
    let big = src.join("big.bin");
    write(&big, &prng_bytes(1, 300_000), T1 - 100);
    write(&src.join("a.txt"), b"before big\n", T1 - 100);
    write(&src.join("z.txt"), b"after big\n", T1 - 100);
    set_mtime(&src, T1 - 100);

    // Full: the third read of big.bin fails with EIO. It is left out; the rest is there.
    let r = backup_injected(w, "full", T1, &[], &big, "read", "error=EIO:when=3");
    assert_incomplete(&r, 1, "big.bin");
    let exp1 = expected(w, "exp1", |d| {
        std::fs::remove_file(d.join("big.bin")).unwrap()
    });
    restore_both(w, T1, &exp1, "full with a read error");

    // Incremental: big.bin is read completely now.
    backup(w, "incremental", T2, &[]).ok();
    let exp2 = expected(w, "exp2", |_| {});
    restore_both(w, T2, &exp2, "incremental after the read error");

    // Incremental with big.bin changed and failing to read: the T2 version stays.
    write(&big, &prng_bytes(2, 300_000), T3 - 100);
    write(&src.join("a.txt"), b"changed too\n", T3 - 100);
    let r = backup_injected(w, "incremental", T3, &[], &big, "read", "error=EIO:when=3");
    assert_incomplete(&r, 1, "big.bin");
    let exp3 = expected(w, "exp3", |d| {
        std::fs::copy(exp2.join("big.bin"), d.join("big.bin")).unwrap();
        set_mtime(&d.join("big.bin"), T1 - 100);
    });
    restore_both(w, T3, &exp3, "incremental with a read error");

    // The next incremental, without errors, stores the new content.
    let r = backup(w, "incremental", T4, &[]).ok();
    assert_eq!(stat_line(&r, "Errors "), "Errors 0");
    assert_eq!(stat_line(&r, "ChangedFiles "), "ChangedFiles 1");
    let exp4 = expected(w, "exp4", |_| {});
    restore_both(w, T4, &exp4, "incremental after the second read error");
}

#[test]
fn a_read_error_after_a_volume_left_keeps_the_good_part_and_is_taken_again() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let src = w.join("src");
    std::fs::create_dir(&src).unwrap();
    let big = src.join("big.bin");
    let data = prng_bytes(7, 3_000_000);
    write(&big, &data, T1 - 100);
    write(&src.join("z.txt"), b"after big\n", T1 - 100);
    set_mtime(&src, T1 - 100);

    // With 1 MiB volumes, the read that fails (the 30th, after 1.8 MiB) comes after a
    // volume holding the file's start was sent: what was read is kept, marked.
    let r = backup_injected(
        w,
        "full",
        T1,
        &["--volsize", "1"],
        &big,
        "read",
        "error=EIO:when=30",
    );
    assert_incomplete(&r, 1, "big.bin");
    let kept = 29 * 65_536;
    let exp1 = expected(w, "exp1", |d| {
        write(&d.join("big.bin"), &data[..kept], T1 - 100);
    });
    restore_both(w, T1, &exp1, "full cut by a read error");

    // The next incremental takes the whole file again, although its mtime is the same.
    let r = backup(w, "incremental", T2, &["--volsize", "1"]).ok();
    assert_eq!(stat_line(&r, "Errors "), "Errors 0");
    let exp2 = expected(w, "exp2", |_| {});
    restore_both(w, T2, &exp2, "incremental after the cut full");

    // duplicity extends the chain, and its incremental also sees nothing left to take.
    write(&src.join("new.txt"), b"from duplicity\n", T3 - 100);
    set_mtime(&src, T3 - 100);
    duplicity_incremental(w, T3, &[]);
    let exp3 = expected(w, "exp3", |_| {});
    restore_both(w, T3, &exp3, "duplicity's incremental on top");
}

#[test]
fn files_that_shrink_or_vanish_are_counted_and_keep_their_previous_version() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let src = w.join("src");
    std::fs::create_dir(&src).unwrap();
    let shrinking = src.join("log.txt");
    write(&shrinking, &prng_bytes(3, 200_000), T1 - 100);
    write(&src.join("keep.txt"), b"kept\n", T1 - 100);
    set_mtime(&src, T1 - 100);
    backup(w, "full", T1, &[]).ok();

    // The second read returns end of file: the file looks 64 KiB long, not 200,000 bytes.
    write(&shrinking, &prng_bytes(4, 200_000), T2 - 100);
    let r = backup_injected(
        w,
        "incremental",
        T2,
        &[],
        &shrinking,
        "read",
        "retval=0:when=2",
    );
    assert_incomplete(&r, 1, "log.txt");
    assert!(r.stderr().contains("shrank"), "{}", r.stderr());
    let exp = expected(w, "exp1", |d| {
        write(&d.join("log.txt"), &prng_bytes(3, 200_000), T1 - 100);
    });
    restore_both(w, T2, &exp, "incremental with a shrinking file");

    // strace matches the walk's calls by their directory: the first newfstatat on src is
    // the listing's fstat, the second keep.txt's fstatat.
    // The source directory cannot be listed: nothing in it is recorded as deleted.
    let r = backup_injected(
        w,
        "incremental",
        T3,
        &[],
        &src,
        "newfstatat",
        "error=EIO:when=1",
    );
    assert_incomplete(&r, 1, "src");
    restore_both(
        w,
        T3,
        &exp,
        "incremental with a directory that cannot be listed",
    );

    // keep.txt cannot be looked at (EIO on its stat): not recorded as deleted either.
    let keep = src.join("keep.txt");
    let r = backup_injected(
        w,
        "incremental",
        T4,
        &[],
        &src,
        "newfstatat",
        "error=EIO:when=2",
    );
    assert_incomplete(&r, 1, "keep.txt");
    let exp = expected(w, "exp4", |_| {});
    restore_both(
        w,
        T4,
        &exp,
        "incremental with a file that cannot be looked at",
    );

    // A file that vanishes between listing and reading is counted too.
    write(&keep, b"kept, changed\n", T4 - 100);
    let t5 = T4 + 86_400;
    // (strace matches an openat by its path as written: relative here.)
    let rel = Path::new("src/keep.txt");
    let r = backup_injected(w, "incremental", t5, &[], rel, "openat", "error=ENOENT");
    assert_incomplete(&r, 1, "keep.txt");
}

/// Sets a file's mtime to exactly `sec` seconds (nanoseconds zero) with utimensat.
fn set_mtime_exact(p: &Path, sec: i64) {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let ts = libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: 0,
    };
    // SAFETY: c is a NUL-terminated path and the array holds two timespecs.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), [ts, ts].as_ptr(), 0) };
    assert_eq!(rc, 0, "utimensat {}", p.display());
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Writes `data` over `p` and puts its mtime back to `sec`: same second, same size.
fn rewrite_same_second(p: &Path, data: &[u8], sec: i64) {
    std::fs::write(p, data).unwrap();
    set_mtime_exact(p, sec);
}

#[test]
fn a_file_rewritten_within_the_same_second_is_backed_up() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let src = w.join("src");
    std::fs::create_dir(&src).unwrap();
    let f = src.join("doc.txt");
    let sec = now_secs();
    rewrite_same_second(&f, &[b'A'; 5000], sec);
    write(&src.join("other.txt"), b"other\n", T1 - 100);
    set_mtime(&src, T1 - 100);
    backup(w, "full", T1, &[]).ok();
    let exp1 = expected(w, "exp1", |_| {});

    // duplicity's own chain of the same edits misses it (its rule: same second, same
    // size, same mode: unchanged).
    let dsrc = w.join("dsrc");
    copy_tree(&src, &dsrc);
    let durl = format!("file://{}/dtarget", w.display());
    let t1 = T1.to_string();
    let t2 = T2.to_string();
    let dup = |kind: &str, t: &str| {
        duplicity(
            w,
            &[
                kind,
                "--no-encryption",
                "--archive-dir",
                "dcache-w",
                "--current-time",
                t,
                "dsrc",
                &durl,
            ],
        )
        .ok();
    };
    dup("full", &t1);

    rewrite_same_second(&f, &[b'B'; 5000], sec);
    rewrite_same_second(&dsrc.join("doc.txt"), &[b'B'; 5000], sec);
    let r = backup(w, "incremental", T2, &[]).ok();
    assert_eq!(stat_line(&r, "ChangedFiles "), "ChangedFiles 1");
    let exp2 = expected(w, "exp2", |_| {});
    restore_both(w, T1, &exp1, "full before the same-second edit");
    restore_both(w, T2, &exp2, "incremental after the same-second edit");

    dup("incremental", &t2);
    let dout = w.join("dup-own");
    duplicity(
        w,
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "dcache-r",
            &durl,
            dout.to_str().unwrap(),
        ],
    )
    .ok();
    assert_eq!(
        std::fs::read(dout.join("doc.txt")).unwrap(),
        vec![b'A'; 5000],
        "duplicity itself was expected to miss the same-second edit"
    );

    // duplicity extends ferrodup's chain (another same-second edit, which it misses by
    // its rule, and a new file); then ferrodup continues it and catches the edit.
    rewrite_same_second(&f, &[b'C'; 5000], sec);
    write(&src.join("new.txt"), b"new\n", T3 - 100);
    set_mtime(&src, T3 - 100);
    duplicity_incremental(w, T3, &["--name", "n"]);
    let exp3 = expected(w, "exp3", |d| {
        rewrite_same_second(&d.join("doc.txt"), &[b'B'; 5000], sec);
    });
    restore_both(w, T3, &exp3, "duplicity's incremental on ferrodup's chain");
    let r = backup(w, "incremental", T4, &[]).ok();
    assert_eq!(stat_line(&r, "ChangedFiles "), "ChangedFiles 1");
    let exp4 = expected(w, "exp4", |_| {});
    restore_both(w, T4, &exp4, "ferrodup's incremental after duplicity's");

    // Nothing changed: nothing is taken again.
    let r = backup(w, "incremental", T4 + 100, &[]).ok();
    assert_eq!(stat_line(&r, "DeltaEntries "), "DeltaEntries 0");
}
