//! Exit statuses: each failure runs through the real duplicity and ferrodup with the same
//! inputs (a fresh copy of the same tiny tree and backups for each), and both must exit with
//! the same non-zero status. The test prints the table (it is in the README).

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// One failure: how to prepare its folder, the arguments (`{W}` stands for the folder), and
/// the PASSPHRASE, if any.
struct Case {
    name: &'static str,
    setup: fn(&Path),
    args: &'static [&'static str],
    passphrase: Option<&'static str>,
    /// Holds the archive dir's lock (of backup name `held`) while the tools run.
    lock: bool,
}

fn nothing(_: &Path) {}

fn write(w: &Path, name: &str, text: &str) {
    std::fs::write(w.join(name), text).unwrap();
}

/// The plain backup `t` of `src`, as duplicity wrote it.
fn backup_t(w: &Path) {
    copy_tree(&w.join("../template/t"), &w.join("t"));
}

fn corrupt_volume(w: &Path) {
    backup_t(w);
    let vol = volume(&w.join("t"));
    let mut data = std::fs::read(&vol).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&vol, data).unwrap();
}

fn volume(t: &Path) -> std::path::PathBuf {
    std::fs::read_dir(t)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains(".vol1.difftar"))
        .expect("the template backup has a volume")
}

fn missing_volume(w: &Path) {
    backup_t(w);
    std::fs::remove_file(volume(&w.join("t"))).unwrap();
}

fn other_host(w: &Path) {
    backup_t(w);
    for e in std::fs::read_dir(w.join("t")).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().ends_with(".manifest") {
            let text = std::fs::read_to_string(&p).unwrap();
            let edited: Vec<String> = text
                .lines()
                .map(|l| {
                    if l.starts_with("Hostname ") {
                        "Hostname some-other-host".to_string()
                    } else {
                        l.to_string()
                    }
                })
                .collect();
            std::fs::write(&p, edited.join("\n") + "\n").unwrap();
        }
    }
}

fn other_source(w: &Path) {
    backup_t(w);
    std::fs::create_dir(w.join("src2")).unwrap();
    write(w, "src2/z", "z");
}

fn changed_source(w: &Path) {
    backup_t(w);
    write(w, "src/a.txt", "changed, and longer than before");
}

fn encrypted(w: &Path) {
    copy_tree(&w.join("../template/te"), &w.join("te"));
}

const CASES: &[Case] = &[
    Case {
        name: "unknown option",
        setup: nothing,
        args: &["--no-such-option", "full", "src", "file://{W}/n"],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "wrong number of arguments",
        setup: nothing,
        args: &["full", "src"],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "bad --time",
        setup: backup_t,
        args: &["restore", "-t", "not-a-time", "file://{W}/t", "out"],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "unknown URL scheme",
        setup: nothing,
        args: &["full", "src", "gopher://host/x"],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "trailing filter option",
        setup: nothing,
        args: &[
            "full",
            "--exclude",
            "x",
            "--filter-regexp",
            "src",
            "file://{W}/n",
        ],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "redundant filter option",
        setup: nothing,
        args: &[
            "full",
            "--filter-globbing",
            "--exclude",
            "**/a.txt",
            "src",
            "file://{W}/n",
        ],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "absolute --files-from path",
        setup: |w| write(w, "list", "/etc/passwd\n"),
        args: &["full", "--files-from", "list", "src", "file://{W}/n"],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "empty --files-from",
        setup: |w| write(w, "list", "\n"),
        args: &["full", "--files-from", "list", "src", "file://{W}/n"],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "pattern outside the source",
        setup: nothing,
        args: &["full", "--exclude", "/elsewhere/x", "src", "file://{W}/n"],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "last rule only includes",
        setup: nothing,
        args: &["full", "--include", "**/a.txt", "src", "file://{W}/n"],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "invalid regexp",
        setup: nothing,
        args: &["full", "--exclude-regexp", "(", "src", "file://{W}/n"],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "missing source dir",
        setup: nothing,
        args: &["full", "no-such-dir", "file://{W}/n"],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "archive dir not a directory",
        setup: nothing,
        args: &[
            "full",
            "--archive-dir",
            "src/a.txt/x",
            "src",
            "file://{W}/n",
        ],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "archive dir locked",
        setup: nothing,
        args: &["full", "--name", "held", "src", "file://{W}/n"],
        passphrase: None,
        lock: true,
    },
    Case {
        name: "restore: no backup at target",
        setup: nothing,
        args: &["restore", "file://{W}/n", "out"],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "incremental without a full",
        setup: nothing,
        args: &["incremental", "src", "file://{W}/n"],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "restore destination exists",
        setup: backup_t,
        args: &["restore", "file://{W}/t", "src"],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "path not in backup",
        setup: backup_t,
        args: &[
            "restore",
            "--path-to-restore",
            "nope",
            "file://{W}/t",
            "out",
        ],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "restore: volume hash mismatch",
        setup: corrupt_volume,
        args: &["restore", "file://{W}/t", "out"],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "restore: volume missing",
        setup: missing_volume,
        args: &["restore", "file://{W}/t", "out"],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "verify finds differences",
        setup: changed_source,
        args: &["verify", "--compare-data", "file://{W}/t", "src"],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "hostname mismatch",
        setup: other_host,
        args: &["incremental", "src", "file://{W}/t"],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "source path mismatch",
        setup: other_source,
        args: &["incremental", "src2", "file://{W}/t"],
        passphrase: None,
        lock: false,
    },
    Case {
        name: "wrong passphrase",
        setup: encrypted,
        args: &["restore", "file://{W}/te", "out"],
        passphrase: Some("wrong"),
        lock: false,
    },
    Case {
        name: "backend unreachable",
        setup: nothing,
        args: &[
            "full",
            "--num-retries",
            "1",
            "src",
            "sftp://nobody@127.0.0.1:9/x",
        ],
        passphrase: None,
        lock: false,
    },
];

/// Holds `dir/held/lockfile` locked with the POSIX record lock duplicity takes (Python's
/// `fcntl.lockf`, in a child process) until the child is killed.
fn hold_lock(dir: &Path) -> Child {
    let file = dir.join("held/lockfile");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let script = "import fcntl, sys, time\n\
                  f = open(sys.argv[1], 'a')\n\
                  fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n\
                  print('locked', flush=True)\n\
                  time.sleep(120)\n";
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&file)
        .stdout(Stdio::piped())
        .spawn()
        .expect("this test needs python3 (duplicity's interpreter) to hold a lock");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked", "python3 could not take the lock");
    child
}

/// Runs one case with `tool` in a fresh folder; returns the status and the last stderr line.
fn run_case(root: &Path, case: &Case, tool: &str) -> (i32, String) {
    let w = root.join(format!("{}-{tool}", case.name.replace([' ', ':'], "_")));
    std::fs::create_dir(&w).unwrap();
    copy_tree(&root.join("template/src"), &w.join("src"));
    (case.setup)(&w);
    let mut args: Vec<String> = Vec::new();
    if case.passphrase.is_none() {
        args.push("--no-encryption".into());
    }
    if !case.args.contains(&"--archive-dir") {
        args.extend(["--archive-dir".into(), "ac".into()]);
    }
    let shown = w.to_str().unwrap();
    args.extend(case.args.iter().map(|a| a.replace("{W}", shown)));
    let mut lock = case.lock.then(|| hold_lock(&w.join("ac")));
    let mut c = Command::new(if tool == "duplicity" {
        duplicity_bin()
    } else {
        ferrodup_bin()
    });
    c.current_dir(&w).args(&args).env("HOME", &w);
    c.env_remove("PASSPHRASE");
    if let Some(p) = case.passphrase {
        c.env("PASSPHRASE", p);
    }
    let r = run(&mut c, &format!("{tool} {}", args.join(" ")));
    if let Some(child) = lock.as_mut() {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let err = r.stderr();
    assert!(!err.contains("panicked"), "{}: panic:\n{err}", r.what);
    let last = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    (r.code(), last.chars().take(100).collect())
}

#[test]
fn exit_statuses_match_duplicity() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let template = root.join("template");
    std::fs::create_dir_all(template.join("src/sub")).unwrap();
    write(&template, "src/a.txt", "hello\n");
    write(&template, "src/sub/b", "bee\n");
    let url = |name: &str| format!("file://{}", template.join(name).display());
    duplicity(
        &template,
        &[
            "full",
            "--no-encryption",
            "--archive-dir",
            "dc",
            "src",
            &url("t"),
        ],
    )
    .ok();
    let mut c = Command::new(duplicity_bin());
    c.current_dir(&template)
        .args(["full", "--archive-dir", "dc", "src", &url("te")])
        .env("HOME", &template)
        .env("PASSPHRASE", "right");
    run(&mut c, "duplicity full (encrypted)").ok();

    // Three cases at a time: duplicity spends most of a run starting Python.
    let next = AtomicUsize::new(0);
    let results = Mutex::new(vec![None; CASES.len()]);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = CASES.get(i) else { break };
                let dup = run_case(root, case, "duplicity");
                let fer = run_case(root, case, "ferrodup");
                results.lock().unwrap()[i] = Some((dup, fer));
            });
        }
    });
    let mut table = vec![format!("| {:<32} | duplicity | ferrodup |", "case")];
    let mut wrong = Vec::new();
    for (case, r) in CASES.iter().zip(results.into_inner().unwrap()) {
        let ((dup, dup_err), (fer, fer_err)) = r.expect("every case ran");
        table.push(format!("| {:<32} | {dup:>9} | {fer:>8} |", case.name));
        if dup == 0 || dup != fer {
            wrong.push(format!(
                "{}: duplicity {dup} ({dup_err}), ferrodup {fer} ({fer_err})",
                case.name
            ));
        }
    }
    println!("{}", table.join("\n"));
    assert!(CASES.len() >= 12);
    assert!(wrong.is_empty(), "statuses differ:\n{}", wrong.join("\n"));
}
