//! duplicity 3.2.1's command line: every public option, read from the installed
//! duplicity's `cli_data.py`, is accepted by a real full backup that then restores; options
//! given twice behave as argparse makes them behave; retired options are refused; options
//! of backends ferrodup does not have are warned about once.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The test key of the fixtures (RSA, no passphrase).
const FPR: &str = "C2D3172E3F23C092984DF90276BA19CC2C948486";
const PASS: &str = "options test passphrase";

/// The Python that runs the installed duplicity (from its script's `#!` line).
fn duplicity_python() -> PathBuf {
    let script = duplicity_bin();
    let text = std::fs::read_to_string(&script).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; install duplicity 3.2.1 in a virtualenv (scripts/test.sh does) \
             and set DUPLICITY to its bin/duplicity",
            script.display()
        )
    });
    let first = text.lines().next().unwrap_or("");
    let python = first.strip_prefix("#!").unwrap_or_else(|| {
        panic!(
            "{} has no #! line naming its Python; set DUPLICITY to a pip-installed duplicity",
            script.display()
        )
    });
    PathBuf::from(python.split_whitespace().next().unwrap())
}

/// Runs Python code with duplicity importable; returns its standard output.
fn duplicity_python_eval(code: &str) -> String {
    let out = Command::new(duplicity_python())
        .args(["-c", code])
        .output()
        .expect("cannot run duplicity's Python");
    assert!(
        out.status.success(),
        "duplicity's Python failed (is duplicity 3.2.1 installed there?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// duplicity 3.2.1's public options (those its help shows), each with its aliases.
fn duplicity_options() -> Vec<Vec<String>> {
    let json = duplicity_python_eval(
        "import json, duplicity\n\
         from duplicity import cli_data as c, argparse311 as ap\n\
         print(json.dumps([[c.var2opt(v)] + c.OptionAliases.__dict__.get(v, [])\n\
             for v, kw in sorted(c.OptionKwargs.items()) if kw.get('help') != ap.SUPPRESS]))",
    );
    let opts: Vec<Vec<String>> = serde_json::from_str(&json).unwrap();
    let version = duplicity_python_eval("import duplicity; print(duplicity.__version__)");
    assert_eq!(version.trim(), "3.2.1", "the table is for duplicity 3.2.1");
    assert!(opts.len() > 100, "only {} options read", opts.len());
    opts
}

/// What a case must show.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// The backup succeeds and restores.
    Restores,
    /// The backup succeeds and stores nothing (`--dry-run`).
    NothingStored,
    /// The version is printed.
    Version,
}

struct Case {
    args: Vec<String>,
    /// Encrypted (PASSPHRASE is set); else `--no-encryption` comes first.
    encrypted: bool,
    /// Options the restore needs besides the usual ones.
    restore: Vec<String>,
    expect: Expect,
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn plain(v: &[&str]) -> Option<Case> {
    Some(Case {
        args: s(v),
        encrypted: false,
        restore: Vec::new(),
        expect: Expect::Restores,
    })
}

/// A case whose restore needs the same options.
fn both(v: &[&str], encrypted: bool) -> Option<Case> {
    Some(Case {
        args: s(v),
        encrypted,
        restore: s(v),
        expect: Expect::Restores,
    })
}

/// The value table: each public option of duplicity 3.2.1 with a sensible value for a
/// full backup of `src` (files `a`, `b`, `sub/c`).
fn case(opt: &str, w: &Path) -> Option<Case> {
    let p = |x: &str| w.join(x).to_str().unwrap().to_string();
    let key = fixtures().join("pubkey/test-secret-key.asc");
    let key = key.to_str().unwrap();
    let (src, exclude_list, include_list, files_from) = (
        p("src"),
        p("exclude.list"),
        p("include.list"),
        p("files-from.list"),
    );
    let literal_b = format!("{src}/b");
    match opt {
        "--allow-source-mismatch"
        | "--check-remote"
        | "--no-check-remote"
        | "--compare-data"
        | "--compression"
        | "--no-compression"
        | "--copy-links"
        | "--force"
        | "--files-changed"
        | "--no-files-changed"
        | "--ignore-errors"
        | "--no-encryption"
        | "--numeric-owner"
        | "--print-statistics"
        | "--no-print-statistics"
        | "--restore-ownership"
        | "--no-restore-ownership"
        | "--null-separator"
        | "--skip-if-no-change"
        | "--ssh-askpass"
        | "--use-gpgsm"
        | "--exclude-device-files"
        | "--exclude-other-filesystems"
        | "--b2-hide-files"
        | "--ftp-passive"
        | "--ftp-regular"
        | "--imap-full-address"
        | "--mf-purge"
        | "--s3-use-deep-archive"
        | "--s3-use-glacier"
        | "--s3-use-glacier-ir"
        | "--s3-use-ia"
        | "--s3-use-onezone-ia"
        | "--s3-use-rrs"
        | "--asynchronous-upload"
        | "--jsonstat"
        | "--log-timestamp"
        | "--progress"
        | "--s3-unencrypted-connection"
        | "--s3-use-server-side-encryption"
        | "--s3-use-server-side-kms-encryption"
        | "--ssl-no-check-certificate" => plain(&[opt]),
        "--concurrency" => plain(&[opt, "2"]),
        "--file-changed" => plain(&[opt, "a"]),
        "--show-changes-in-set" => plain(&[opt, "0"]),
        "--log-fd" => plain(&[opt, "2"]),
        "--log-file" => plain(&[opt, &p("records.log")]),
        "--mp-segment-size" => plain(&[opt, "10"]),
        "--progress-rate" => plain(&[opt, "1"]),
        "--s3-kms-grant" => plain(&[opt, "id=0123456789abcdef"]),
        "--s3-kms-key-id" => plain(&[opt, "alias/backup"]),
        "--s3-multipart-chunk-size" => plain(&[opt, "25"]),
        "--s3-multipart-max-procs" => plain(&[opt, "2"]),
        "--ssl-cacert-file" => plain(&[opt, "/etc/ssl/certs/ca-certificates.crt"]),
        "--ssl-cacert-path" => plain(&[opt, "/etc/ssl/certs"]),
        "--swift-storage-policy" => plain(&[opt, "Policy-0"]),
        "--archive-dir" => plain(&[opt, &p("other-archive")]),
        "--azure-blob-tier" => plain(&[opt, "Cool"]),
        "--azure-max-block-size" => plain(&[opt, "4194304"]),
        "--azure-max-connections" => plain(&[opt, "2"]),
        "--azure-max-single-put-size" => plain(&[opt, "67108864"]),
        "--backend-retry-delay" => plain(&[opt, "1"]),
        "--cf-backend" => plain(&[opt, "pyrax"]),
        "--config-dir" => plain(&[opt, &p("config")]),
        "--copy-blocksize" => plain(&[opt, "64"]),
        "--dry-run" => Some(Case {
            expect: Expect::NothingStored,
            ..plain(&[opt])?
        }),
        "--encrypt-key" | "--encrypt-sign-key" | "--hidden-encrypt-key" | "--sign-key" => {
            both(&[opt, FPR, "--encrypt-secret-keyring", key], true)
        }
        "--encrypt-secret-keyring" => both(&[opt, key, "--encrypt-key", FPR], true),
        "--encryption" | "--use-agent" => both(&[opt], true),
        "--gpg-binary" => both(&[opt, "gpg"], true),
        "--gpg-options" => both(&["--gpg-options=--cipher-algo=AES128"], true),
        "--exclude" => plain(&[opt, "**/b"]),
        "--exclude-filelist" => plain(&[opt, &exclude_list]),
        "--exclude-if-present" => plain(&[opt, ".nobackup"]),
        "--exclude-older-than" => plain(&[opt, "2001-01-01"]),
        "--exclude-regexp" => plain(&[opt, "/b$"]),
        "--file-prefix"
        | "--file-prefix-archive"
        | "--file-prefix-jsonstat"
        | "--file-prefix-manifest"
        | "--file-prefix-signature" => both(&[opt, "pfx_"], false),
        "--files-from" => plain(&[opt, &files_from]),
        "--filter-globbing" => plain(&[
            "--filter-regexp",
            "--exclude",
            "/b$",
            opt,
            "--exclude",
            "**/nothing",
        ]),
        "--filter-ignorecase" => plain(&[opt, "--exclude", "**/B"]),
        "--filter-literal" => plain(&[opt, "--exclude", &literal_b]),
        "--filter-regexp" => plain(&[opt, "--exclude", "/b$"]),
        "--filter-strictcase" => plain(&[
            "--filter-ignorecase",
            "--exclude",
            "**/B",
            opt,
            "--exclude",
            "**/nothing",
        ]),
        "--full-if-n-inc" => plain(&[opt, "3"]),
        "--full-if-older-than" => plain(&[opt, "1D"]),
        "--idr-fakeroot" => plain(&[opt, &p("fakeroot")]),
        "--imap-mailbox" => plain(&[opt, "INBOX"]),
        "--include" => plain(&[opt, "**/a", "--exclude", "**"]),
        "--include-filelist" => plain(&[opt, &include_list]),
        "--include-regexp" => plain(&[opt, "/a$", "--exclude", "**"]),
        "--max-blocksize" => plain(&[opt, "2048"]),
        "--metadata-sync-mode" => plain(&[opt, "full"]),
        "--name" => plain(&[opt, "options-test"]),
        "--num-retries" => plain(&[opt, "2"]),
        "--par2-options" => plain(&["--par2-options=-s4096"]),
        "--par2-redundancy" => plain(&[opt, "10"]),
        "--par2-volumes" => plain(&[opt, "1"]),
        "--path-to-restore" | "-r" => plain(&[opt, "a"]),
        "--rename" => plain(&[opt, "a", "renamed"]),
        "--restore-time" | "--time" | "-t" => plain(&[opt, "now"]),
        "--rsync-options" => plain(&["--rsync-options=--bwlimit=100"]),
        "--s3-endpoint-url" => plain(&[opt, "http://127.0.0.1:9"]),
        "--s3-region-name" => plain(&[opt, "eu-west-3"]),
        "--scp-command" => plain(&[opt, "scp -q"]),
        "--sftp-command" => plain(&[opt, "sftp -q"]),
        "--ssh-options" => plain(&["--ssh-options=-oIdentityFile=/nonexistent"]),
        "--tempdir" => plain(&[opt, &p("tmp")]),
        "--time-separator" => plain(&[opt, "."]),
        "--timeout" => plain(&[opt, "10"]),
        "--verbosity" | "-v" => plain(&[opt, "info"]),
        "--version" | "-V" => Some(Case {
            expect: Expect::Version,
            ..plain(&[opt])?
        }),
        "--volsize" => plain(&[opt, "1"]),
        "--webdav-headers" => plain(&[opt, "Cookie,name=value"]),
        _ => None,
    }
}

/// The source tree and the files the table names, under `w`.
fn setup(w: &Path) {
    let src = w.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a"), b"alpha\n").unwrap();
    std::fs::write(src.join("b"), b"beta\n").unwrap();
    std::fs::write(src.join("sub/c"), b"gamma\n").unwrap();
    std::fs::write(src.join("sub/.nobackup"), b"").unwrap();
    std::fs::write(w.join("exclude.list"), b"**/b\n").unwrap();
    std::fs::write(w.join("include.list"), b"**/a\n- **\n").unwrap();
    std::fs::write(w.join("files-from.list"), b"a\nsub/c\n").unwrap();
    for d in ["config", "fakeroot", "tmp", "gnupg"] {
        std::fs::create_dir_all(w.join(d)).unwrap();
    }
    std::fs::set_permissions(
        w.join("gnupg"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
}

fn ferrodup_in(w: &Path, args: &[String], what: &str) -> Run {
    let mut c = Command::new(ferrodup_bin());
    c.current_dir(w)
        .args(args)
        .env("HOME", w)
        .env("GNUPGHOME", w.join("gnupg"))
        .env("PASSPHRASE", PASS)
        .env_remove("SIGN_PASSPHRASE")
        .env_remove("XDG_CACHE_HOME");
    run(&mut c, what)
}

/// Regular files under `root`, by relative path, with their bytes.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                walk(root, &p, out);
            } else if t.is_file() {
                let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out
}

/// The command line of case `n`'s backup.
fn backup_args(w: &Path, n: usize, c: &Case) -> Vec<String> {
    let url = format!("file://{}", w.join(format!("t{n}")).display());
    let mut args = s(&["--archive-dir", &w.join(format!("ad{n}")).to_string_lossy()]);
    if !c.encrypted {
        args.push("--no-encryption".into());
    }
    args.extend(c.args.iter().cloned());
    args.extend(s(&["full", &w.join("src").to_string_lossy(), &url]));
    args
}

/// Parses each command line with duplicity's own parser; returns its complaint about each
/// (`None`: accepted).
fn duplicity_parses(w: &Path, lines: &[Vec<String>]) -> Vec<Option<String>> {
    let code = "import json, sys, duplicity\n\
                from duplicity import log, cli_main, config, gpg\n\
                log.setup()\n\
                config.gpg_profile = gpg.GPGProfile()\n\
                res = []\n\
                for args in json.load(sys.stdin):\n    \
                    config.select_opts = []\n    \
                    config.select_files = []\n    \
                    try:\n        \
                        cli_main.parse_cmdline_options(args)\n        \
                        res.append(None)\n    \
                    except SystemExit as e:\n        \
                        res.append(f'exit {e.code}')\n    \
                    except Exception as e:\n        \
                        res.append(f'{type(e).__name__}: {e}')\n\
                print(json.dumps(res))";
    let mut child = Command::new(duplicity_python())
        .args(["-c", code])
        .current_dir(w)
        .env("HOME", w)
        .env("GNUPGHOME", w.join("gnupg"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("cannot run duplicity's Python");
    serde_json::to_writer(child.stdin.take().unwrap(), lines).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "duplicity's parser crashed:\n{text}");
    // Its log lines (warnings about some options) come first.
    let last = text.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Runs one case (backup `n`); returns what went wrong, if anything.
fn check_case(w: &Path, n: usize, opt: &str, c: &Case) -> Result<(), String> {
    let target = w.join(format!("t{n}"));
    let url = format!("file://{}", target.display());
    let args = backup_args(w, n, c);
    let what = format!("ferrodup {}", args.join(" "));
    let r = ferrodup_in(w, &args, &what);
    if r.code() != 0 || r.stderr().contains("panicked") {
        return Err(format!(
            "{opt}: {what} failed ({}):\n{}{}",
            r.code(),
            r.stdout(),
            r.stderr()
        ));
    }
    let stored = files(&target);
    match c.expect {
        Expect::Version => {
            let out = r.stdout();
            return if out.starts_with("duplicity 3.2.1 ") && stored.is_empty() {
                Ok(())
            } else {
                Err(format!("{opt}: version output {out:?}"))
            };
        }
        Expect::NothingStored => {
            return if stored.is_empty() {
                Ok(())
            } else {
                Err(format!("{opt}: stored {:?}", stored.keys()))
            };
        }
        Expect::Restores => {}
    }
    let dest = w.join(format!("r{n}"));
    let mut rargs = s(&[
        "--archive-dir",
        &w.join(format!("rad{n}")).to_string_lossy(),
    ]);
    if !c.encrypted {
        rargs.push("--no-encryption".into());
    }
    rargs.extend(c.restore.iter().cloned());
    rargs.extend(s(&["restore", &url, &dest.to_string_lossy()]));
    let rwhat = format!("ferrodup {}", rargs.join(" "));
    let rr = ferrodup_in(w, &rargs, &rwhat);
    if rr.code() != 0 {
        return Err(format!(
            "{opt}: {rwhat} failed ({}):\n{}",
            rr.code(),
            rr.stderr()
        ));
    }
    let source = files(&w.join("src"));
    let restored = files(&dest);
    if restored.get("a").map(Vec::as_slice) != Some(b"alpha\n".as_slice()) {
        return Err(format!("{opt}: a not restored: {:?}", restored.keys()));
    }
    for (path, bytes) in &restored {
        if source.get(path) != Some(bytes) {
            return Err(format!("{opt}: restored {path} differs from the source"));
        }
    }
    Ok(())
}

#[test]
fn every_public_duplicity_option_is_accepted_by_a_backup_that_restores() {
    let options = duplicity_options();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    setup(w);
    let mut names: Vec<String> = options.into_iter().flatten().collect();
    names.sort();
    let missing: Vec<&String> = names.iter().filter(|o| case(o, w).is_none()).collect();
    assert!(
        missing.is_empty(),
        "options of duplicity 3.2.1 missing from the test's table: {missing:?}"
    );
    // The table's values are duplicity's syntax: its own parser takes every line.
    let lines: Vec<(usize, &String)> = names
        .iter()
        .enumerate()
        .filter(|(_, o)| !matches!(o.as_str(), "--version" | "-V"))
        .collect();
    let argv: Vec<Vec<String>> = lines
        .iter()
        .map(|(n, o)| backup_args(w, *n, &case(o, w).unwrap()))
        .collect();
    let refused: Vec<String> = duplicity_parses(w, &argv)
        .into_iter()
        .zip(&lines)
        .filter_map(|(e, (_, o))| e.map(|e| format!("{o}: {e}")))
        .collect();
    assert!(
        refused.is_empty(),
        "duplicity's parser refuses the table's values:\n{}",
        refused.join("\n")
    );
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(opt) = names.get(n) else { break };
                let c = case(opt, w).unwrap();
                if let Err(e) = check_case(w, n, opt, &c) {
                    failures.lock().unwrap().push(e);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} options failed:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}

/// A file of `len` incompressible bytes.
fn random_file(path: &Path, len: usize) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(path, bytes).unwrap();
}

fn volumes(target: &Path) -> usize {
    files(target).keys().filter(|n| n.contains(".vol")).count()
}

#[test]
fn an_option_given_twice_takes_the_last_value_as_in_duplicity() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::create_dir(w.join("src")).unwrap();
    random_file(&w.join("src/big"), 1536 * 1024);
    for (first, last, want) in [("1", "2", 1), ("2", "1", 2)] {
        for (tool, name) in [("ferrodup", "fd"), ("duplicity", "dup")] {
            let t = w.join(format!("{name}-{first}{last}"));
            let url = format!("file://{}", t.display());
            let args = [
                "full",
                "--no-encryption",
                "--archive-dir",
                "cache",
                "--name",
                "ignored",
                "--name",
                name,
                "--volsize",
                first,
                "--volsize",
                last,
                "src",
                &url,
            ];
            if tool == "ferrodup" {
                ferrodup(w, &args).ok();
            } else {
                duplicity(w, &args).ok();
            }
            assert_eq!(
                volumes(&t),
                want,
                "{tool} --volsize {first} --volsize {last}"
            );
        }
    }
    assert!(w.join("cache/fd").is_dir() && w.join("cache/dup").is_dir());
    assert!(!w.join("cache/ignored").exists(), "the first --name won");
}

#[test]
fn of_a_toggle_and_its_no_form_the_last_given_wins() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    setup(w);
    let backup = |name: &str, opts: &[&str]| -> (Run, Vec<String>) {
        let t = w.join(name);
        let mut args = s(&["--archive-dir", &w.join("ad").to_string_lossy()]);
        args.extend(s(opts));
        args.extend(s(&["full", "src", &format!("file://{}", t.display())]));
        let r = ferrodup_in(w, &args, &format!("ferrodup {}", args.join(" "))).ok();
        (r, files(&t).into_keys().collect())
    };
    // Manifests are never compressed.
    let data = |names: Vec<String>| -> Vec<String> {
        names
            .into_iter()
            .filter(|n| !n.ends_with(".manifest"))
            .collect()
    };
    let (_, names) = backup(
        "c1",
        &["--no-encryption", "--no-compression", "--compression"],
    );
    assert!(
        data(names.clone()).iter().all(|n| n.ends_with(".gz")),
        "{names:?}"
    );
    let (_, names) = backup(
        "c2",
        &["--no-encryption", "--compression", "--no-compression"],
    );
    assert!(
        data(names.clone()).iter().all(|n| !n.ends_with(".gz")),
        "{names:?}"
    );
    let (_, names) = backup("e1", &["--no-encryption", "--encryption"]);
    assert!(names.iter().all(|n| n.ends_with(".gpg")), "{names:?}");
    let (_, names) = backup("e2", &["--encryption", "--no-encryption"]);
    assert!(names.iter().all(|n| !n.ends_with(".gpg")), "{names:?}");
    let (r, _) = backup(
        "p1",
        &[
            "--no-encryption",
            "--no-print-statistics",
            "--print-statistics",
        ],
    );
    assert!(r.stdout().contains("Backup Statistics"), "{}", r.stdout());
    let (r, _) = backup(
        "p2",
        &[
            "--no-encryption",
            "--print-statistics",
            "--no-print-statistics",
        ],
    );
    assert!(!r.stdout().contains("Backup Statistics"), "{}", r.stdout());
    // The same pair with the real duplicity.
    for (opts, gz) in [
        (["--no-compression", "--compression"], true),
        (["--compression", "--no-compression"], false),
    ] {
        let t = w.join(format!("dup-{}", opts[1]));
        let url = format!("file://{}", t.display());
        let mut args = vec!["full", "--no-encryption", "--archive-dir", "dad"];
        args.extend(opts);
        args.extend(["src", &url]);
        duplicity(w, &args).ok();
        let names: Vec<String> = data(files(&t).into_keys().collect());
        assert!(
            names.iter().all(|n| n.ends_with(".gz") == gz),
            "duplicity {opts:?}: {names:?}"
        );
    }
}

/// The `Filelist` line of the manifest stored at `target`.
fn filelist_line(target: &Path) -> String {
    let (_, man) = files(target)
        .into_iter()
        .find(|(n, _)| n.ends_with(".manifest"))
        .expect("a manifest");
    String::from_utf8_lossy(&man)
        .lines()
        .find(|l| l.starts_with("Filelist"))
        .unwrap_or("no Filelist line")
        .to_string()
}

#[test]
fn no_files_changed_leaves_the_manifest_filelist_empty_as_duplicity() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    setup(w);
    for (opts, want) in [
        (["--files-changed", "--no-files-changed"], "Filelist 0"),
        (["--no-files-changed", "--files-changed"], "Filelist 4"),
    ] {
        let t = w.join(format!("t-{}", opts[1]));
        let url = format!("file://{}", t.display());
        let mut args = vec!["full", "--no-encryption", "--archive-dir", "ad"];
        args.extend(opts);
        args.extend(["src", &url]);
        ferrodup(w, &args).ok();
        assert_eq!(filelist_line(&t), want, "ferrodup {opts:?}");
        if opts[1] == "--no-files-changed" {
            let t = w.join("dup");
            let url = format!("file://{}", t.display());
            let mut args = vec!["full", "--no-encryption", "--archive-dir", "dad"];
            args.extend(opts);
            args.extend(["src", &url]);
            duplicity(w, &args).ok();
            assert_eq!(filelist_line(&t), want, "duplicity {opts:?}");
        }
    }
}

#[test]
fn list_options_given_twice_add_up() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    setup(w);
    let url = format!("file://{}/t", w.display());
    let r = ferrodup_in(
        w,
        &s(&[
            "full",
            "--no-encryption",
            "--archive-dir",
            "ad",
            "--exclude",
            "**/b",
            "--exclude",
            "**/sub/c",
            "--ssh-options=-oFirst=1",
            "--ssh-options",
            "'-oSecond=2'",
            "src",
            &url,
        ]),
        "backup",
    )
    .ok();
    let err = r.stderr();
    assert!(
        err.contains("\"First=1\" is ignored") && err.contains("\"Second=2\" is ignored"),
        "both --ssh-options values are read:\n{err}"
    );
    ferrodup_in(
        w,
        &s(&[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "ad",
            "--rename",
            "a",
            "x",
            "--rename",
            "sub",
            "y",
            &url,
            "r",
        ]),
        "restore",
    )
    .ok();
    let restored: Vec<String> = files(&w.join("r")).into_keys().collect();
    assert_eq!(
        restored,
        ["x", "y/.nobackup"],
        "both excludes and both renames apply"
    );
}

#[test]
fn an_option_of_a_backend_ferrodup_lacks_is_warned_about_once() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    setup(w);
    let backup = |name: &str, extra: &[&str]| -> String {
        let mut args = s(&["full", "--no-encryption", "--archive-dir", "ad"]);
        args.extend(s(extra));
        args.extend(s(&["src", &format!("file://{}/{name}", w.display())]));
        ferrodup_in(w, &args, "backup").ok().stderr()
    };
    let err = backup(
        "t1",
        &[
            "--rsync-options=-a",
            "--rsync-options=-b",
            "--webdav-headers",
            "X-A: b",
        ],
    );
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("which ferrodup does not have yet; ignored"))
        .collect();
    assert_eq!(
        lines,
        [
            "Warning: --rsync-options is for the rsync backend, which ferrodup does not have yet; ignored",
            "Warning: --webdav-headers is for the webdav backend, which ferrodup does not have yet; ignored",
        ],
        "{err}"
    );
    let err = backup("t2", &[]);
    assert!(!err.contains("does not have yet"), "{err}");
}

#[test]
fn options_duplicity_renamed_or_removed_are_refused_as_duplicity_does() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    setup(w);
    let json = duplicity_python_eval(
        "import json, duplicity\n\
         from duplicity import cli_data as c\n\
         print(json.dumps(sorted(c.changed_options | c.removed_options)))",
    );
    let retired: Vec<String> = serde_json::from_str(&json).unwrap();
    assert!(retired.len() >= 13, "{retired:?}");
    let url = format!("file://{}/t", w.display());
    let usage = ferrodup(w, &["full", "-v", "bogus", "src", &url]).code();
    assert_ne!(usage, 0);
    let with_value = [
        "--file-to-restore",
        "--exclude-globbing-filelist",
        "--include-globbing-filelist",
        "--s3-multipart-max-timeout",
    ];
    for opt in &retired {
        let mut args = vec!["full", "--no-encryption", opt.as_str()];
        if with_value.contains(&opt.as_str()) {
            args.push("x");
        }
        args.extend(["src", &url]);
        let r = ferrodup(w, &args);
        assert_fails(&r, usage, &[opt, "duplicity 2.0.0"]);
    }
    assert!(!w.join("t").exists());
    // The real duplicity refuses them too.
    let d = duplicity(w, &["full", "--no-encryption", "--gio", "src", &url]);
    assert_ne!(d.code(), 0);
    assert!(d.stderr().contains("--gio"), "{}", d.stderr());
}

#[test]
fn time_separator_reads_old_style_names_as_duplicity_does() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    setup(w);
    let url = format!("file://{}/t", w.display());
    ferrodup(
        w,
        &[
            "full",
            "--no-encryption",
            "--archive-dir",
            "ad",
            "src",
            &url,
        ],
    )
    .ok();
    // Rename to the old style: 2024-01-01T12.00.00Z instead of 20240101T120000Z.
    let re = regex::Regex::new(r"(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z").unwrap();
    for name in files(&w.join("t")).into_keys() {
        let new = re
            .replace(&name, "${1}-${2}-${3}T${4}.${5}.${6}Z")
            .into_owned();
        assert_ne!(new, name);
        std::fs::rename(w.join("t").join(&name), w.join("t").join(new)).unwrap();
    }
    for (tool, sep) in [("ferrodup", true), ("ferrodup", false), ("duplicity", true)] {
        let dest = format!("r-{tool}-{sep}");
        let cache = format!("cache-{tool}-{sep}");
        let mut args = vec!["restore", "--no-encryption", "--archive-dir", &cache];
        if sep {
            args.extend(["--time-separator", "."]);
        }
        args.extend([url.as_str(), &dest]);
        let r = if tool == "ferrodup" {
            ferrodup(w, &args)
        } else {
            duplicity(w, &args)
        };
        if sep {
            r.ok();
            assert_eq!(
                std::fs::read(w.join(&dest).join("a")).unwrap(),
                b"alpha\n",
                "{tool}"
            );
        } else {
            assert_fails(&r, 30, &["no backup found"]);
        }
    }
}

#[test]
fn version_shows_the_duplicity_version_scripts_parse() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let theirs = duplicity(w, &["--version"]).ok().stdout();
    for flag in ["--version", "-V"] {
        let ours = ferrodup(w, &[flag]).ok().stdout();
        assert_eq!(
            ours.split_whitespace().take(2).collect::<Vec<_>>(),
            theirs.split_whitespace().take(2).collect::<Vec<_>>(),
            "duply and deja-dup read the second word: {ours:?} vs {theirs:?}"
        );
        assert!(ours.contains("ferrodup "), "{ours:?}");
    }
}

/// `--use-agent` with a key only gpg's agent holds: gpg signs and decrypts without
/// loopback pinentry or a passphrase on its input, and the backup restores.
#[test]
fn use_agent_signs_and_decrypts_through_gpg_without_a_passphrase() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    setup(w);
    let gpg = |args: &[&str]| {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", w.join("gnupg"))
            .args(["--batch", "--no-tty", "--pinentry-mode", "loopback"])
            .args(args);
        run(&mut c, &format!("gpg {}", args.join(" "))).ok()
    };
    let email = "agent@options.test";
    gpg(&[
        "--passphrase",
        "",
        "--quick-gen-key",
        email,
        "ed25519",
        "sign,cert",
        "never",
    ]);
    let listing = gpg(&["--with-colons", "--list-keys", email]).stdout();
    let fpr = listing
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .unwrap()
        .to_string();
    gpg(&[
        "--passphrase",
        "",
        "--quick-add-key",
        &fpr,
        "cv25519",
        "encr",
        "never",
    ]);
    let url = format!("file://{}/t", w.display());
    let opts = ["--use-agent", "--encrypt-key", &fpr, "--sign-key", &fpr];
    let mut backup = s(&["full", "--archive-dir", "ad"]);
    backup.extend(s(&opts));
    backup.extend(s(&["src", &url]));
    let mut c = Command::new(ferrodup_bin());
    c.current_dir(w)
        .args(&backup)
        .env("GNUPGHOME", w.join("gnupg"))
        .env_remove("PASSPHRASE")
        .env_remove("SIGN_PASSPHRASE");
    run(&mut c, "backup").ok();
    let mut restore = s(&["restore", "--archive-dir", "rad"]);
    restore.extend(s(&opts));
    restore.extend(s(&[&url, "r"]));
    let mut c = Command::new(ferrodup_bin());
    c.current_dir(w)
        .args(&restore)
        .env("GNUPGHOME", w.join("gnupg"))
        .env_remove("PASSPHRASE")
        .env_remove("SIGN_PASSPHRASE");
    run(&mut c, "restore").ok();
    assert_eq!(files(&w.join("r")), files(&w.join("src")));
}
