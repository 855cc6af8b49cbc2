//! duplicity's behaviours that scripts meet, each checked against the real duplicity with
//! the same input: a time before the first backup, a single file as the source, the
//! passphrase piped on standard input, `.gpg` files read with `--no-encryption`, a backup
//! in the same second as the last one, and interrupted backups resumed.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

const PASS: &str = "behaviour test passphrase";

/// A command in `w` without a controlling terminal (as under cron), with `pass` as
/// PASSPHRASE (or none) and its own HOME.
fn cmd(bin: &Path, w: &Path, pass: Option<&str>, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.current_dir(w)
        .args(args)
        .env("HOME", w)
        .env("TMPDIR", w)
        .env_remove("FERRODUP_FAILPOINT");
    match pass {
        Some(p) => c.env("PASSPHRASE", p),
        None => c.env_remove("PASSPHRASE"),
    };
    // SAFETY: setsid is async-signal-safe; it detaches the child from any terminal, so
    // that the passphrase can only come from standard input.
    unsafe {
        c.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    c
}

fn fd(w: &Path, pass: Option<&str>, args: &[&str]) -> Run {
    run(
        &mut cmd(&ferrodup_bin(), w, pass, args),
        &format!("ferrodup {}", args.join(" ")),
    )
}

fn dup(w: &Path, pass: Option<&str>, args: &[&str]) -> Run {
    run(
        &mut cmd(&duplicity_bin(), w, pass, args),
        &format!("duplicity {}", args.join(" ")),
    )
}

/// Runs with `input` on standard input (a pipe) and no PASSPHRASE.
fn piped(bin: &Path, w: &Path, input: &str, args: &[&str]) -> Run {
    let mut c = cmd(bin, w, None, args);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("start");
    let mut stdin = child.stdin.take().unwrap();
    // The program may exit before reading everything.
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    Run {
        out,
        what: format!("{} {} <<< {input:?}", bin.display(), args.join(" ")),
    }
}

fn url(w: &Path, name: &str) -> String {
    format!("file://{}/{name}", w.display())
}

/// The files at a file:// target, sorted.
fn target_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A small tree with fixed mtimes.
fn small_tree(root: &Path, state: u32) {
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::fs::write(root.join("a"), format!("a{state}")).unwrap();
    std::fs::write(root.join("d/b"), "b").unwrap();
    if state > 1 {
        std::fs::write(root.join("c"), "new in state 2").unwrap();
    }
    for p in ["a", "d/b", "c", "d", "."] {
        if root.join(p).exists() {
            set_mtime(&root.join(p), T1 - 1000 + i64::from(state));
        }
    }
}

/// The member names of a gzip'd tar file, in order.
fn tar_names(path: &Path) -> Vec<String> {
    let mut data = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut data)
        .unwrap();
    let mut names = Vec::new();
    let mut off = 0;
    while off + 512 <= data.len() && data[off..off + 512] != [0u8; 512] {
        let h = &data[off..off + 512];
        let name = h[..100].split(|&b| b == 0).next().unwrap();
        let size = std::str::from_utf8(&h[124..136])
            .unwrap()
            .trim_matches(|c: char| c == '\0' || c == ' ');
        let size = usize::from_str_radix(size, 8).unwrap();
        if h[156] != b'x' {
            names.push(String::from_utf8_lossy(name).into_owned());
        }
        off += 512 + size.div_ceil(512) * 512;
    }
    names
}

/// The paths list-current-files printed (the last word of each file line).
fn listed(r: &Run) -> BTreeSet<String> {
    r.stdout()
        .lines()
        .filter(|l| l.len() > 25 && l.as_bytes()[3] == b' ' && l.as_bytes()[7] == b' ')
        .filter_map(|l| l.rsplit(' ').next().map(str::to_string))
        .filter(|p| p != ".")
        .collect()
}

/// Restoring, verifying and listing at a time before the first backup use the oldest
/// chain's full backup, with a warning, as duplicity does.
#[test]
fn time_before_the_first_backup_uses_the_oldest_chain() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let u = url(w, "t");
    small_tree(&w.join("s1"), 1);
    small_tree(&w.join("src"), 1);
    let (t1, t2) = (T1.to_string(), T2.to_string());
    let base = ["--no-encryption", "--archive-dir", "fc"];
    for (kind, t) in [("full", &t1), ("incremental", &t2)] {
        if kind == "incremental" {
            small_tree(&w.join("src"), 2);
        }
        let mut a = vec![kind, "--current-time", t, "--no-print-statistics"];
        a.extend(base);
        a.extend(["src", &u]);
        fd(w, None, &a).ok();
    }
    let early = "2000-01-01";
    let r = fd(
        w,
        None,
        &["restore", "-t", early, "--no-encryption", &u, "f-out"],
    )
    .ok();
    assert!(
        r.stderr().contains("before the first backup"),
        "{}",
        r.stderr()
    );
    dup(
        w,
        None,
        &["restore", "-t", early, "--no-encryption", &u, "d-out"],
    )
    .ok();
    assert_same_tree(&w.join("s1"), &w.join("f-out"), "ferrodup restore -t 2000");
    assert_same_tree(&w.join("s1"), &w.join("d-out"), "duplicity restore -t 2000");

    let f = fd(
        w,
        None,
        &["verify", "-t", early, "--no-encryption", &u, "s1"],
    )
    .ok();
    assert!(f.stderr().contains("before the first backup"));
    dup(
        w,
        None,
        &["verify", "-t", early, "--no-encryption", &u, "s1"],
    )
    .ok();

    // list-current-files warns on stdout in duplicity's words, as duplicity does.
    let f = fd(w, None, &["ls", "-t", early, "--no-encryption", &u]).ok();
    assert!(f.stdout().contains("Using oldest available chain"));
    let d = dup(w, None, &["ls", "-t", early, "--no-encryption", &u]).ok();
    assert_eq!(listed(&f), listed(&d));
    let want: BTreeSet<String> = ["a", "d", "d/b"].map(String::from).into();
    assert_eq!(listed(&f), want);
}

/// A single regular file as the source: stored under the same tar names as duplicity's
/// (`snapshot/`, `multivol_snapshot/./N`, `diff/`), listed as `.` in the manifest, and
/// restored to a file, both ways.
#[test]
fn a_single_file_as_the_source() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::write(w.join("small"), "one small file\n").unwrap();
    std::fs::write(w.join("big"), edits::prng_bytes(7, 200_000)).unwrap();
    for f in ["small", "big"] {
        set_mtime(&w.join(f), T1 - 10);
    }
    for (i, f) in ["small", "big"].into_iter().enumerate() {
        let t = (T1 + i as i64).to_string();
        let (fu, du) = (url(w, &format!("f-{f}")), url(w, &format!("d-{f}")));
        let opts = ["--no-encryption", "--current-time", &t];
        let mut a = vec!["full", "--archive-dir", "fc", "--no-print-statistics"];
        a.extend(opts);
        a.extend([f, &fu]);
        fd(w, None, &a).ok();
        let mut a = vec!["full", "--archive-dir", "dc"];
        a.extend(opts);
        a.extend([f, &du]);
        dup(w, None, &a).ok();
        let (fdir, ddir) = (w.join(format!("f-{f}")), w.join(format!("d-{f}")));
        assert_eq!(target_files(&fdir), target_files(&ddir));
        for name in target_files(&fdir) {
            if name.ends_with(".difftar.gz") {
                let names = tar_names(&fdir.join(&name));
                assert_eq!(names, tar_names(&ddir.join(&name)), "{name}");
                assert!(names[0] == "snapshot/" || names[0] == "multivol_snapshot/./1");
            }
            if name.ends_with(".manifest") {
                let m = std::fs::read_to_string(fdir.join(&name)).unwrap();
                assert!(m.contains("Filelist 1\n    new      .\n"), "{m}");
            }
        }
        // Each restores the other's backup to a file equal to the source.
        let (fo, dout) = (format!("f-out-{f}"), format!("d-out-{f}"));
        fd(w, None, &["restore", "--no-encryption", &du, &fo]).ok();
        dup(w, None, &["restore", "--no-encryption", &fu, &dout]).ok();
        for out in [&fo, &dout] {
            assert_eq!(
                std::fs::read(w.join(out)).unwrap(),
                std::fs::read(w.join(f)).unwrap()
            );
        }
        fd(w, None, &["verify", "--no-encryption", &du, f]).ok();
    }
    // An incremental of the changed file: a `diff/` member, restored by duplicity.
    std::fs::write(w.join("small"), "one small file, changed\n").unwrap();
    let fu = url(w, "f-small");
    let t = (T2).to_string();
    fd(
        w,
        None,
        &[
            "inc",
            "--no-encryption",
            "--archive-dir",
            "fc",
            "--current-time",
            &t,
            "--no-print-statistics",
            "small",
            &fu,
        ],
    )
    .ok();
    let inc = target_files(&w.join("f-small"))
        .into_iter()
        .find(|n| n.starts_with("duplicity-inc.") && n.ends_with(".difftar.gz"))
        .unwrap();
    assert_eq!(tar_names(&w.join("f-small").join(inc)), ["diff/"]);
    dup(w, None, &["restore", "--no-encryption", &fu, "d-out-inc"]).ok();
    assert_eq!(
        std::fs::read(w.join("d-out-inc")).unwrap(),
        std::fs::read(w.join("small")).unwrap()
    );
}

/// Without a terminal, the passphrase is read from standard input, as duplicity reads it:
/// a backup needs it twice (the confirmation), a restore once; one line is not enough for
/// a backup, and nothing is written then. It is never echoed.
#[test]
fn passphrase_piped_on_standard_input() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    small_tree(&w.join("src"), 1);
    let once = format!("{PASS}\n");
    let twice = format!("{PASS}\n{PASS}\n");
    for (bin, name) in [(ferrodup_bin(), "f"), (duplicity_bin(), "d")] {
        let u = url(w, &format!("{name}-once"));
        let cache = format!("{name}c1");
        let r = piped(
            &bin,
            w,
            &once,
            &["full", "--archive-dir", &cache, "src", &u],
        );
        assert_ne!(
            r.code(),
            0,
            "{}: a single line must not do for a backup",
            r.what
        );
        assert!(target_files(&w.join(format!("{name}-once"))).is_empty());
        let u = url(w, &format!("{name}-t"));
        let cache = format!("{name}c2");
        let r = piped(
            &bin,
            w,
            &twice,
            &["full", "--archive-dir", &cache, "src", &u],
        )
        .ok();
        assert!(!r.stdout().contains(PASS) && !r.stderr().contains(PASS));
        assert!(target_files(&w.join(format!("{name}-t")))
            .iter()
            .all(|n| n.ends_with(".gpg")));
        // An incremental asks twice too.
        let r = piped(
            &bin,
            w,
            &twice,
            &["inc", "--archive-dir", &cache, "src", &u],
        )
        .ok();
        assert!(!r.stdout().contains(PASS) && !r.stderr().contains(PASS));
    }
    // Each restores the other's backup with the passphrase piped once.
    for (bin, from, out) in [
        (ferrodup_bin(), "d-t", "f-out"),
        (duplicity_bin(), "f-t", "d-out"),
    ] {
        let r = piped(&bin, w, &once, &["restore", &url(w, from), out]).ok();
        assert!(!r.stdout().contains(PASS) && !r.stderr().contains(PASS));
        assert_same_tree(&w.join("src"), &w.join(out), &r.what);
    }
    // A wrong passphrase fails the restore; no input at all fails it too.
    let r = piped(
        &ferrodup_bin(),
        w,
        "wrong\n",
        &["restore", &url(w, "d-t"), "x1"],
    );
    assert_ne!(r.code(), 0);
    let r = piped(&ferrodup_bin(), w, "", &["restore", &url(w, "d-t"), "x2"]);
    assert_ne!(r.code(), 0);
    // Two different lines: refused, nothing written.
    let r = piped(
        &ferrodup_bin(),
        w,
        "one\ntwo\n",
        &["full", "--archive-dir", "fc3", "src", &url(w, "f-mismatch")],
    );
    assert_fails(&r, 23, &["do not match"]);
    assert!(target_files(&w.join("f-mismatch")).is_empty());
}

/// With `--no-encryption`, the `.gpg` files of a chain are still read with PASSPHRASE (as
/// duplicity decides by the file names): restore, verify, list-current-files,
/// collection-status; an incremental on top of the encrypted chain is stored unencrypted,
/// as duplicity stores it, and both restore the mixed chain.
#[test]
fn gpg_files_are_read_with_no_encryption() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    small_tree(&w.join("src"), 1);
    let t1 = T1.to_string();
    for name in ["f", "d"] {
        dup(
            w,
            Some(PASS),
            &[
                "full",
                "--archive-dir",
                "dc0",
                "--current-time",
                &t1,
                "src",
                &url(w, name),
            ],
        )
        .ok();
    }
    let (fu, du) = (url(w, "f"), url(w, "d"));
    let p = Some(PASS);
    let ne = "--no-encryption";
    fd(w, p, &["restore", ne, "--archive-dir", "fc1", &fu, "out1"]).ok();
    assert_same_tree(&w.join("src"), &w.join("out1"), "restore --no-encryption");
    fd(w, p, &["verify", ne, "--archive-dir", "fc2", &fu, "src"]).ok();
    let f = fd(w, p, &["ls", ne, "--archive-dir", "fc3", &fu]).ok();
    let d = dup(w, p, &["ls", ne, "--archive-dir", "dc3", &fu]).ok();
    assert_eq!(listed(&f), listed(&d));
    assert!(!listed(&f).is_empty());
    let f = fd(
        w,
        p,
        &["collection-status", ne, "--archive-dir", "fc4", &fu],
    )
    .ok();
    assert!(f.stdout().contains("Full"), "{}", f.stdout());

    // An incremental with --no-encryption, each tool on its own copy of the chain, from
    // an empty archive dir (the signatures are read from the target).
    small_tree(&w.join("src"), 2);
    let t2 = T2.to_string();
    let inc = ["inc", ne, "--current-time", &t2];
    let mut a = inc.to_vec();
    a.extend(["--archive-dir", "fc5", "--no-print-statistics", "src", &fu]);
    fd(w, p, &a).ok();
    let mut a = inc.to_vec();
    a.extend(["--archive-dir", "dc5", "src", &du]);
    dup(w, p, &a).ok();
    let files = target_files(&w.join("f"));
    assert_eq!(files, target_files(&w.join("d")));
    assert!(files
        .iter()
        .any(|n| n.starts_with("duplicity-inc.") && n.ends_with(".difftar.gz")));
    // Both restore the mixed chain, with and without --no-encryption.
    dup(w, p, &["restore", "--archive-dir", "dc6", &fu, "out2"]).ok();
    assert_same_tree(&w.join("src"), &w.join("out2"), "duplicity, mixed chain");
    fd(w, p, &["restore", ne, "--archive-dir", "fc7", &du, "out4"]).ok();
    assert_same_tree(&w.join("src"), &w.join("out4"), "ferrodup --no-encryption");
    // Without the passphrase the encrypted files cannot be read: both fail.
    assert_ne!(
        fd(w, None, &["restore", ne, "--archive-dir", "fc8", &fu, "o5"]).code(),
        0
    );
    assert_ne!(
        dup(w, None, &["restore", ne, "--archive-dir", "dc8", &fu, "o6"]).code(),
        0
    );
}

/// An incremental started in the same second as the last backup waits for the clock and
/// is stored at a later time, as by duplicity (which sleeps and takes the wall clock).
#[test]
fn a_backup_in_the_same_second_as_the_last_waits() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    small_tree(&w.join("src"), 1);
    let t = T1.to_string();
    for (name, ferro) in [("f", true), ("d", false)] {
        let u = url(w, name);
        let cache = format!("{name}c");
        for kind in ["full", "inc"] {
            if kind == "inc" {
                small_tree(&w.join("src"), 2);
            }
            let a = [
                kind,
                "--no-encryption",
                "--archive-dir",
                &cache,
                "--current-time",
                &t,
                "src",
                &u,
            ];
            if ferro {
                fd(w, None, &a).ok();
            } else {
                dup(w, None, &a).ok();
            }
        }
        let incs: Vec<String> = target_files(&w.join(name))
            .into_iter()
            .filter(|n| n.starts_with("duplicity-inc.") && n.ends_with(".manifest"))
            .collect();
        assert_eq!(incs.len(), 1, "{name}: {incs:?}");
        assert!(!incs[0].contains(".to.20240101T120000Z"), "{}", incs[0]);
    }
    fd(
        w,
        None,
        &["restore", "--no-encryption", &url(w, "f"), "out"],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("out"),
        "after the waiting incremental",
    );
}

/// Starts duplicity with `args` (a `kind` backup, "full" or "inc") and kills it (SIGKILL)
/// once its volume 3 is at the target `t`: an interrupted backup, as a reboot leaves it.
fn duplicity_killed_after_volume_3(w: &Path, kind: &str, args: &[&str]) {
    let set = format!("duplicity-{kind}.");
    let mut c = cmd(&duplicity_bin(), w, None, args);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().expect("start duplicity");
    let started = std::time::Instant::now();
    while !target_files(&w.join("t"))
        .iter()
        .any(|n| n.starts_with(&set) && n.contains(".vol3."))
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "duplicity ended before storing volume 3"
        );
        assert!(
            started.elapsed().as_secs() < 120,
            "duplicity stored no volume 3"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The options of the resume tests' backups.
const RESUME: &[&str] = &[
    "--no-encryption",
    "--volsize",
    "1",
    "--archive-dir",
    "ac",
    "--name",
    "n",
];

fn resume_args<'a>(kind: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![kind];
    a.extend_from_slice(RESUME);
    a.extend_from_slice(extra);
    a
}

/// Backups interrupted after their third volume are resumed, not restarted, across the
/// two tools: a full made by duplicity is resumed by ferrodup after volume 2 (volumes 1
/// and 2 kept, as duplicity keeps them), and one made by ferrodup by duplicity; an
/// interrupted incremental is resumed even when a full backup is asked for, with the same
/// files as duplicity makes from the same state.
#[test]
fn interrupted_backups_are_resumed_across_the_tools() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let u = url(w, "t");
    std::fs::create_dir(w.join("src")).unwrap();
    std::fs::write(w.join("src/big"), edits::prng_bytes(1, 3_600_000)).unwrap();
    std::fs::write(w.join("src/z"), "after the big file").unwrap();

    // duplicity's interrupted full, resumed by ferrodup.
    duplicity_killed_after_volume_3(w, "full", &resume_args("full", &["src", &u]));
    let kept: Vec<(String, std::time::SystemTime)> = target_files(&w.join("t"))
        .into_iter()
        .filter(|n| n.contains(".vol1.") || n.contains(".vol2."))
        .map(|n| {
            let m = std::fs::metadata(w.join("t").join(&n))
                .unwrap()
                .modified()
                .unwrap();
            (n, m)
        })
        .collect();
    assert_eq!(kept.len(), 2);
    let r = fd(
        w,
        None,
        &resume_args("full", &["--no-print-statistics", "src", &u]),
    )
    .ok();
    assert!(r.stderr().contains("Resuming"), "{}", r.stderr());
    for (n, m) in &kept {
        let now = std::fs::metadata(w.join("t").join(n))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(&now, m, "{n} was rewritten");
    }
    dup(w, None, &["restore", "--no-encryption", &u, "out1"]).ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("out1"),
        "duplicity's full resumed by ferrodup",
    );

    // duplicity's interrupted incremental (of a new file); `full` resumes it, in both tools.
    std::fs::write(w.join("src/new"), edits::prng_bytes(2, 3_600_000)).unwrap();
    duplicity_killed_after_volume_3(w, "inc", &resume_args("inc", &["src", &u]));
    copy_tree(&w.join("t"), &w.join("t2"));
    copy_tree(&w.join("ac"), &w.join("ac2"));
    let r = fd(
        w,
        None,
        &resume_args("full", &["--no-print-statistics", "src", &u]),
    )
    .ok();
    assert!(r.stderr().contains("Resuming"), "{}", r.stderr());
    let mut a = resume_args("full", &["src"]);
    a[5] = "ac2";
    let u2 = url(w, "t2");
    a.push(&u2);
    dup(w, None, &a).ok();
    let files = target_files(&w.join("t"));
    assert_eq!(files, target_files(&w.join("t2")));
    assert_eq!(files.iter().filter(|n| n.ends_with(".manifest")).count(), 2);
    assert!(files.iter().any(|n| n.contains(".vol4.")), "{files:?}");
    fd(w, None, &["restore", "--no-encryption", &u2, "out2"]).ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("out2"),
        "incremental resumed by duplicity",
    );
    dup(w, None, &["restore", "--no-encryption", &u, "out3"]).ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("out3"),
        "incremental resumed by ferrodup",
    );

    // An interrupted incremental cut inside a delta (duplicity encodes deltas otherwise
    // than ferrodup): ferrodup does not continue the delta, and the result restores.
    std::fs::write(w.join("src/new"), edits::prng_bytes(3, 3_600_000)).unwrap();
    duplicity_killed_after_volume_3(w, "inc", &resume_args("inc", &["src", &u]));
    let r = fd(
        w,
        None,
        &resume_args("inc", &["--no-print-statistics", "src", &u]),
    )
    .ok();
    assert!(!r.stderr().contains("Resuming"), "{}", r.stderr());
    dup(w, None, &["restore", "--no-encryption", &u, "out5"]).ok();
    assert_same_tree(&w.join("src"), &w.join("out5"), "after a delta cut short");

    // ferrodup's interrupted full, resumed by duplicity. One upload at a time: with more,
    // volumes stored ahead of the partial manifest make duplicity restart the set instead
    // (ferrodup resumes it either way).
    let u3 = url(w, "t3");
    let mut a = resume_args(
        "full",
        &["--concurrency", "1", "--no-print-statistics", "src", &u3],
    );
    a[5] = "ac3";
    let mut c = cmd(&ferrodup_bin(), w, None, &a);
    c.env("FERRODUP_FAILPOINT", "volume-recorded:3");
    let r = run(&mut c, "ferrodup killed after volume 3");
    assert_ne!(r.code(), 0);
    // duplicity redoes the last volume it finds stored: volume 3, or a later one whose
    // upload ended before the kill (the partial manifest is written by another thread,
    // which a loaded machine can hold back by a volume or two).
    let stored = target_files(&w.join("t3"))
        .iter()
        .filter(|n| n.starts_with("duplicity-full.") && n.contains(".vol"))
        .count();
    assert!((3..=5).contains(&stored), "{stored} volumes stored");
    let mut a = resume_args("full", &["src"]);
    a[5] = "ac3";
    a.push(&u3);
    let r = dup(w, None, &a).ok();
    let said = format!("{}{}", r.stdout(), r.stderr());
    let expected = format!("Restarting after volume {}", stored - 1);
    assert!(said.contains(&expected), "{expected}: {said}");
    fd(w, None, &["restore", "--no-encryption", &u3, "out4"]).ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("out4"),
        "ferrodup's full resumed by duplicity",
    );
}
