//! Logging as duplicity does it: the machine-readable records of `--log-fd` and
//! `--log-file` (what deja-dup parses) compared with the real duplicity's on the same tree,
//! `--log-timestamp`, `--progress` lines, and a closed standard output.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

/// One record: the control line's words, the data lines, the message lines.
#[derive(Debug, Clone)]
struct Record {
    level: String,
    code: u32,
    extra: String,
    data: Vec<String>,
}

/// Splits a record stream into records (each ends with an empty line).
fn parse(text: &str) -> Vec<Record> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n").filter(|s| !s.trim().is_empty()) {
        let mut lines = stanza.lines();
        let control = lines.next().unwrap();
        let mut words = control.splitn(3, ' ');
        let level = words.next().unwrap().to_string();
        let code = words
            .next()
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("bad control line {control:?} in:\n{text}"));
        let extra = words.next().unwrap_or("").to_string();
        let data = lines
            .filter(|l| !l.starts_with(". "))
            .map(str::to_string)
            .collect();
        assert!(
            ["ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"].contains(&level.as_str()),
            "bad level in {control:?}"
        );
        out.push(Record {
            level,
            code,
            extra,
            data,
        });
    }
    out
}

/// Runs `prog args` in `w` with descriptor 3 appended to `log` (as deja-dup's pipe).
fn with_fd3(w: &Path, prog: &Path, args: &[&str], log: &Path) -> Run {
    let mut c = Command::new("sh");
    c.current_dir(w)
        .arg("-c")
        .arg("exec \"$0\" \"$@\" 3>>\"$LOGF\"")
        .arg(prog)
        .args(args)
        .arg("--log-fd=3")
        .env("LOGF", log)
        .env("HOME", w)
        .env_remove("PASSPHRASE");
    run(&mut c, &format!("{} {}", prog.display(), args.join(" ")))
}

/// The records of one command by `tool` ("ferro" or "dup"), written through `--log-fd 3`.
fn records(w: &Path, tool: &str, name: &str, args: &[&str]) -> (Run, Vec<Record>) {
    let log = w.join(format!("{tool}-{name}.log"));
    let prog = if tool == "ferro" {
        ferrodup_bin()
    } else {
        duplicity_bin()
    };
    let r = with_fd3(w, &prog, args, &log);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    (r, parse(&text))
}

/// The kinds of records other than the generic ones (`LEVEL CODE`).
fn kinds(recs: &[Record]) -> BTreeSet<String> {
    recs.iter()
        .filter(|r| r.code != 1)
        .map(|r| format!("{} {}", r.level, r.code))
        .collect()
}

/// The per-path records with code `code`: their control data, sorted.
fn with_code(recs: &[Record], code: u32) -> Vec<String> {
    let mut v: Vec<String> = recs
        .iter()
        .filter(|r| r.level == "INFO" && r.code == code)
        .map(|r| r.extra.clone())
        .collect();
    v.sort();
    v
}

fn collection_data(recs: &[Record]) -> Vec<Vec<String>> {
    recs.iter()
        .filter(|r| r.level == "INFO" && r.code == 3)
        .map(|r| r.data.clone())
        .collect()
}

fn make_tree(src: &Path) {
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), "hello\n").unwrap();
    std::fs::write(src.join("c.txt"), "gone soon\n").unwrap();
    std::fs::write(src.join("sub/b.txt"), "b\n").unwrap();
    std::fs::write(src.join("we ird'n\\é"), "q").unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    for p in ["a.txt", "c.txt", "sub/b.txt", "we ird'n\\é", "sub", ""] {
        set_mtime(&src.join(p), T1 - 100);
    }
}

#[test]
fn records_match_duplicity() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_tree(&w.join("src"));
    let t1 = T1.to_string();
    let t2 = T2.to_string();
    let run_both = |name: &str, args: &dyn Fn(&str) -> Vec<String>| {
        let mut out = Vec::new();
        for tool in ["ferro", "dup"] {
            let a = args(tool);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            let (r, recs) = records(w, tool, name, &a);
            let r = r.ok();
            out.push((r, recs));
        }
        let dup = out.pop().unwrap();
        let ferro = out.pop().unwrap();
        (ferro.1, dup.1)
    };
    let common = |tool: &str| {
        vec![
            "--no-encryption".to_string(),
            "--archive-dir".to_string(),
            format!("{tool}-cache"),
        ]
    };
    let target = |tool: &str| format!("file://{}/{tool}-target", w.display());
    let backup = |kind: &'static str, t: String| {
        move |tool: &str| {
            let mut a = vec![
                kind.to_string(),
                "-v9".into(),
                "--current-time".into(),
                t.clone(),
            ];
            a.extend(common(tool));
            a.extend(["src".to_string(), target(tool)]);
            a
        }
    };

    let (f, d) = run_both("full", &backup("full", t1.clone()));
    assert_eq!(kinds(&f), kinds(&d), "full: record kinds");
    assert_eq!(with_code(&f, 4), with_code(&d, 4), "full: new files");
    assert_eq!(collection_data(&f), collection_data(&d), "full: collection");

    std::fs::write(w.join("src/a.txt"), "hello, changed\n").unwrap();
    std::fs::remove_file(w.join("src/c.txt")).unwrap();
    std::fs::write(w.join("src/sub/n.txt"), "new\n").unwrap();
    for p in ["a.txt", "sub/n.txt", "sub", ""] {
        set_mtime(&w.join("src").join(p), T1 + 100);
    }
    let (f, d) = run_both("inc", &backup("incremental", t2.clone()));
    assert_eq!(kinds(&f), kinds(&d), "incremental: record kinds");
    for code in [4, 5, 6] {
        assert_eq!(
            with_code(&f, code),
            with_code(&d, code),
            "incremental: code {code}"
        );
    }
    assert_eq!(with_code(&f, 5), ["'a.txt'"]);
    assert_eq!(with_code(&f, 6), ["'c.txt'"]);
    assert_eq!(
        collection_data(&f),
        collection_data(&d),
        "incremental: collection"
    );

    // collection-status and list-current-files write their records at the default
    // verbosity.
    let (f, d) = run_both("status", &|tool: &str| {
        let mut a = vec!["collection-status".to_string()];
        a.extend(common(tool));
        a.push(target(tool));
        a
    });
    assert_eq!(kinds(&f), kinds(&d), "collection-status: record kinds");
    let data = collection_data(&f);
    assert_eq!(data, collection_data(&d), "collection-status data lines");
    assert!(
        data[0].contains(&format!(" inc {} 1 noenc", "20240102T120000Z")),
        "{data:?}"
    );

    let (f, d) = run_both("list", &|tool: &str| {
        let mut a = vec!["list-current-files".to_string()];
        a.extend(common(tool));
        a.push(target(tool));
        a
    });
    assert_eq!(kinds(&f), kinds(&d), "list-current-files: record kinds");
    let listed = with_code(&f, 10);
    assert_eq!(listed, with_code(&d, 10), "list-current-files records");
    assert!(
        listed
            .iter()
            .any(|l| l.ends_with(r"'we ird\x27n\\\xe9' reg")),
        "{listed:?}"
    );

    let (f, d) = run_both("restore", &|tool: &str| {
        let mut a = vec!["restore".to_string(), "-v9".to_string()];
        a.extend(common(tool));
        a.push(target(tool));
        a.push(format!("{tool}-restored"));
        a
    });
    assert_eq!(kinds(&f), kinds(&d), "restore: record kinds");
    assert_eq!(with_code(&f, 7), with_code(&d, 7), "restore: files written");
    assert_eq!(
        with_code(&f, 2),
        with_code(&d, 2),
        "restore: volume progress"
    );
    assert_same_tree(
        &w.join("dup-restored"),
        &w.join("ferro-restored"),
        "restores",
    );

    // --log-file writes the same records as --log-fd.
    let file = w.join("ferro-list-file.log");
    let mut a = vec!["list-current-files".to_string()];
    a.extend(common("ferro"));
    a.push(target("ferro"));
    a.push("--log-file".into());
    a.push(file.display().to_string());
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    records(w, "ferro", "list-both", &a).0.ok();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        std::fs::read_to_string(w.join("ferro-list-both.log")).unwrap()
    );
}

/// A failing run ends with one ERROR record whose code is the exit status, in ferrodup as
/// in duplicity (a restore into a directory that is not empty; duplicity's status there
/// is 11).
#[test]
fn failing_run_writes_its_error_record() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_tree(&w.join("src"));
    std::fs::create_dir(w.join("busy")).unwrap();
    std::fs::write(w.join("busy/x"), "x").unwrap();
    for tool in ["ferro", "dup"] {
        let target = format!("file://{}/{tool}-target", w.display());
        let cache = format!("{tool}-cache");
        let base = ["--no-encryption", "--archive-dir", &cache];
        let mut a = vec!["full"];
        a.extend(base);
        a.extend(["src", &target]);
        records(w, tool, "full", &a).0.ok();
        let mut a = vec!["restore"];
        a.extend(base);
        a.extend([target.as_str(), "busy"]);
        let (r, recs) = records(w, tool, "restore", &a);
        let errors: Vec<&Record> = recs.iter().filter(|r| r.level == "ERROR").collect();
        assert_eq!(errors.len(), 1, "{tool}: {recs:?}");
        assert_ne!(r.code(), 0, "{tool}");
        assert_eq!(
            errors[0].code as i32,
            r.code(),
            "{tool}: ERROR code = exit status"
        );
    }
}

fn timestamped(line: &str, level: &str) -> bool {
    let re = regex::Regex::new(&format!(
        r"^\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d{{3}} {level:<6} \S"
    ))
    .unwrap();
    re.is_match(line)
}

#[test]
fn log_timestamp_prefixes_messages_as_duplicity() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_tree(&w.join("src"));
    std::fs::create_dir(w.join("busy")).unwrap();
    std::fs::write(w.join("busy/x"), "x").unwrap();
    let u = format!("file://{}/target", w.display());
    let r = ferrodup(
        w,
        &[
            "full",
            "--log-timestamp",
            "--no-encryption",
            "--archive-dir",
            "cache",
            "src",
            &u,
        ],
    )
    .ok();
    let err = r.stderr();
    assert!(
        err.lines()
            .any(|l| timestamped(l, "NOTICE") && l.ends_with("Starting full backup.")),
        "{err}"
    );
    let args = [
        "restore",
        "--log-timestamp",
        "--no-encryption",
        "--archive-dir",
        "cache",
        &u,
        "busy",
    ];
    let f = ferrodup(w, &args);
    let d = duplicity(w, &args);
    assert_ne!(f.code(), 0);
    assert!(
        f.stderr()
            .lines()
            .any(|l| timestamped(l, "ERROR") && l.contains(" ferrodup: ")),
        "{}",
        f.stderr()
    );
    assert!(
        d.stderr().lines().any(|l| timestamped(l, "ERROR")),
        "duplicity: {}",
        d.stderr()
    );
}

#[test]
fn progress_lines_have_duplicitys_format() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_tree(&w.join("src"));
    // ferrodup backs up 96 MiB of hex digits, which gzip must really work on, to take a
    // few progress periods; duplicity, slower, a small tree (it still prints its final
    // line).
    make_tree(&w.join("big"));
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let hex: Vec<u8> = (0..96 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b"0123456789abcdef"[(x >> 60) as usize]
        })
        .collect();
    std::fs::write(w.join("big/big"), hex).unwrap();
    let line = regex::Regex::new(
        r"^(\x1b\[F\x1b\[2K)?\d+\.\d[KMG]B (\d+d,)?\d\d:\d\d:\d\d \[\d+\.\d(B|KB|MB|GB)/s\] \[=*> *\] \d+% ETA \S.*$",
    )
    .unwrap();
    for tool in ["ferro", "dup"] {
        let target = format!("file://{}/{tool}-target", w.display());
        let cache = format!("{tool}-cache");
        let src = if tool == "ferro" { "big" } else { "src" };
        let args = [
            "full",
            "--progress",
            "--progress-rate",
            "1",
            "--no-encryption",
            "--archive-dir",
            &cache,
            src,
            &target,
        ];
        let started = std::time::Instant::now();
        let (r, recs) = records(w, tool, "full", &args);
        let took = started.elapsed();
        let r = r.ok();
        let out = r.stdout();
        let lines: Vec<&str> = out.lines().filter(|l| l.contains("% ETA ")).collect();
        assert!(!lines.is_empty(), "{tool}: no progress line:\n{out}");
        for l in &lines {
            assert!(line.is_match(l), "{tool}: {l:?}");
        }
        let progress: Vec<&Record> = recs.iter().filter(|r| r.code == 16).collect();
        assert_eq!(progress.len(), lines.len(), "{tool}: one record per line");
        let last = progress.last().unwrap();
        assert_eq!(last.level, "NOTICE");
        let fields: Vec<&str> = last.extra.split(' ').collect();
        assert_eq!(fields.len(), 6, "{tool}: {:?}", last.extra);
        assert!(
            fields.iter().all(|f| f.parse::<u64>().is_ok()),
            "{tool}: {:?}",
            last.extra
        );
        assert_eq!(fields[2], "100", "{tool}: the last line is 100%");
        if tool == "ferro" {
            // A line every second: a run of 2.5 s or more has printed one before the last
            // (how long it runs depends on the machine, so shorter runs show only that).
            if took >= std::time::Duration::from_millis(2500) {
                assert!(
                    lines.len() >= 2,
                    "periodic lines before the last in {took:?}: {out}"
                );
            }
            assert!(lines.last().unwrap().contains("] 100% ETA 0sec"));
        }
    }
}

/// duplicity 3.2.1 carries on when its standard output is a closed pipe and exits 0
/// (with a traceback per line on stderr); ferrodup exits 0 quietly, and a backup still
/// completes.
#[test]
fn closed_stdout_ends_quietly() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let src = w.join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..200 {
        std::fs::write(src.join(format!("file-with-a-long-name-{i:05}")), "x").unwrap();
    }
    let u = format!("file://{}/target", w.display());
    let closed_stdout = |args: &[&str]| {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(ferrodup_bin())
            .current_dir(w)
            .args(args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let base = ["--no-encryption", "--archive-dir", "cache"];
    let mut a = vec!["full"];
    a.extend(base);
    a.extend(["src", &u]);
    let (code, err) = closed_stdout(&a);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("Starting full backup."), "{err}");
    assert!(
        !err.contains("ferrodup:") && !err.contains("panicked"),
        "{err}"
    );
    for cmd in ["list-current-files", "collection-status"] {
        let mut a = vec![cmd];
        a.extend(base);
        a.push(&u);
        let (code, err) = closed_stdout(&a);
        assert_eq!(code, Some(0), "{cmd}: {err}");
        assert_eq!(err, "", "{cmd}");
    }
    // The backup is whole.
    let mut a = vec!["restore"];
    a.extend(base);
    a.extend([u.as_str(), "restored"]);
    ferrodup(w, &a).ok();
    assert_same_tree(&src, &w.join("restored"), "restore after a closed stdout");
}

/// Leftovers of a broken chain (an incremental whose parent is gone) are reported with
/// duplicity's warning codes: orphaned signature (2) and orphaned backup set (6), which
/// make deja-dup run cleanup.
#[test]
fn leftovers_are_reported_with_duplicitys_codes() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let src = w.join("src");
    std::fs::create_dir(&src).unwrap();
    let mut found = Vec::new();
    for tool in ["ferro", "dup"] {
        let target = format!("file://{}/{tool}-target", w.display());
        let cache = format!("{tool}-cache");
        for (i, t) in [T1, T2, T2 + 86400].into_iter().enumerate() {
            std::fs::write(src.join("a"), format!("version {i}")).unwrap();
            set_mtime(&src.join("a"), t - 10);
            let ts = t.to_string();
            let a = [
                "--no-encryption",
                "--current-time",
                &ts,
                "--archive-dir",
                &cache,
                "src",
                &target,
            ];
            records(w, tool, &format!("backup{i}"), &a).0.ok();
        }
        // The first incremental goes, from the target and the cache.
        for dir in [w.join(format!("{tool}-target")), w.join(&cache)] {
            for e in walkdir(&dir) {
                if e.to_string_lossy()
                    .contains("20240101T120000Z.to.20240102T120000Z")
                {
                    std::fs::remove_file(e).unwrap();
                }
            }
        }
        let a = [
            "collection-status",
            "--no-encryption",
            "--archive-dir",
            &cache,
            &target,
        ];
        let (_, recs) = records(w, tool, "status", &a);
        let warnings: BTreeSet<u32> = recs
            .iter()
            .filter(|r| r.level == "WARNING")
            .map(|r| r.code)
            .collect();
        found.push(warnings);
    }
    assert_eq!(found[0], BTreeSet::from([2, 6]));
    assert_eq!(found[0], found[1]);
}

/// Every file below `dir`.
fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A backup of another directory to the same target fails with duplicity's record data:
/// the current and the previous source, escaped (deja-dup reads them to ask the user).
#[test]
fn source_mismatch_error_names_both_directories() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_tree(&w.join("src"));
    make_tree(&w.join("other dir"));
    let mut errors = Vec::new();
    for tool in ["ferro", "dup"] {
        let target = format!("file://{}/{tool}-target", w.display());
        let cache = format!("{tool}-cache");
        let t1 = T1.to_string();
        let t2 = T2.to_string();
        let base = ["--no-encryption", "--archive-dir", &cache, "--current-time"];
        let mut a = vec!["full"];
        a.extend(base);
        a.extend([t1.as_str(), "src", &target]);
        records(w, tool, "full", &a).0.ok();
        let mut a = vec!["incremental"];
        a.extend(base);
        a.extend([t2.as_str(), "other dir", &target]);
        let (r, recs) = records(w, tool, "inc", &a);
        let e: Vec<&Record> = recs.iter().filter(|r| r.level == "ERROR").collect();
        assert_eq!(e.len(), 1, "{tool}: {recs:?}");
        assert_eq!(
            e[0].code as i32,
            r.code(),
            "{tool}: ERROR code = exit status"
        );
        errors.push(e[0].extra.clone());
    }
    assert_eq!(errors[0], "'other dir' 'src'");
    assert_eq!(errors[0], errors[1]);
}
