//! Helpers shared by the integration tests: running ferrodup and the real duplicity,
//! generating trees, and comparing trees by content, mode, owner, mtime and link target.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const T1: i64 = 1704110400;
pub const T2: i64 = 1704196800;

pub fn ferrodup_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ferrodup"))
}

/// The real duplicity: `$DUPLICITY`, else `duplicity` on PATH. Interop tests need it.
pub fn duplicity_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DUPLICITY") {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("duplicity"))
            .find(|p| p.is_file())
    });
    found.expect(
        "the interop tests need the real duplicity: run .ci/run, or set DUPLICITY to its path",
    )
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/duplicity")
}

/// Output of a finished command, with helpers for assertions.
pub struct Run {
    pub out: Output,
    pub what: String,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    pub fn ok(self) -> Self {
        assert!(
            self.out.status.success(),
            "{} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.code(),
            self.stdout(),
            self.stderr()
        );
        self
    }
}

pub fn run(cmd: &mut Command, what: &str) -> Run {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    Run {
        out,
        what: what.to_string(),
    }
}

/// `prog arg arg ...` for messages.
fn describe<S: AsRef<OsStr>>(prog: &str, args: &[S]) -> String {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    format!("{prog} {}", args.join(" "))
}

/// Asserts a failure with `code` whose error line mentions every word of `words`.
pub fn assert_fails(r: &Run, code: i32, words: &[&str]) {
    let err = r.stderr();
    assert_eq!(r.code(), code, "{}: stderr:\n{err}", r.what);
    assert!(!err.contains("panicked"), "{}: panic:\n{err}", r.what);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("ferrodup: "))
        .collect();
    assert_eq!(lines.len(), 1, "{}: want one error line:\n{err}", r.what);
    for w in words {
        assert!(
            lines[0].contains(w),
            "{}: {w:?} not in {:?}",
            r.what,
            lines[0]
        );
    }
}

/// Runs ferrodup with `args` in `cwd`, without PASSPHRASE and without a controlling
/// terminal (where it would ask for a passphrase, as duplicity does).
pub fn ferrodup<S: AsRef<OsStr>>(cwd: &Path, args: &[S]) -> Run {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(ferrodup_bin());
    c.current_dir(cwd).args(args).env_remove("PASSPHRASE");
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    run(&mut c, &describe("ferrodup", args))
}

/// Runs the real duplicity with `args` in `cwd`.
pub fn duplicity<S: AsRef<OsStr>>(cwd: &Path, args: &[S]) -> Run {
    let mut c = Command::new(duplicity_bin());
    c.current_dir(cwd).args(args).env("HOME", cwd);
    run(&mut c, &describe("duplicity", args))
}

/// Restores `url` as of `t` with the real duplicity (no encryption, archive dir `dcache`,
/// `extra` options) into `dest`, and asserts that it equals `expected`.
pub fn duplicity_restore_matches(
    cwd: &Path,
    url: &str,
    t: i64,
    extra: &[&str],
    dest: &Path,
    expected: &Path,
    what: &str,
) {
    let ts = t.to_string();
    let mut args = vec![
        "restore",
        "--no-encryption",
        "--archive-dir",
        "dcache",
        "-t",
        &ts,
    ];
    args.extend_from_slice(extra);
    args.push(url);
    args.push(dest.to_str().unwrap());
    duplicity(cwd, &args).ok();
    assert_same_tree(expected, dest, what);
}

/// Generates the fixture source tree `state` (1 or 2) at `dest` with the project's copy of
/// duplicity's fixture script.
pub fn make_fixture_tree(dest: &Path, state: u32, big: bool) {
    let mut c = Command::new("sh");
    c.arg(fixtures().join("make-source-tree.sh"))
        .arg(dest)
        .arg(state.to_string());
    if big {
        c.arg("--big");
    }
    run(&mut c, "make-source-tree.sh").ok();
}

/// One object of a tree, as compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Obj {
    File {
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: i64,
        sha1: String,
    },
    Dir {
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: i64,
    },
    Link {
        target: Vec<u8>,
    },
    Other {
        kind: u32,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: i64,
    },
}

fn sha1_of(p: &Path) -> String {
    use sha1::{Digest, Sha1};
    let data = std::fs::read(p).unwrap();
    Sha1::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Snapshot of a tree: relative path → object (root is ".").
pub fn snapshot(root: &Path) -> BTreeMap<String, Obj> {
    let mut out = BTreeMap::new();
    fn visit(root: &Path, p: &Path, out: &mut BTreeMap<String, Obj>) {
        let md = std::fs::symlink_metadata(p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let rel = if rel.is_empty() { ".".to_string() } else { rel };
        let ft = md.file_type();
        let mode = md.permissions().mode() & 0o7777;
        let obj = if ft.is_symlink() {
            use std::os::unix::ffi::OsStrExt;
            Obj::Link {
                target: std::fs::read_link(p)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            }
        } else if ft.is_file() {
            Obj::File {
                mode,
                uid: md.uid(),
                gid: md.gid(),
                mtime: md.mtime(),
                sha1: sha1_of(p),
            }
        } else if ft.is_dir() {
            Obj::Dir {
                mode,
                uid: md.uid(),
                gid: md.gid(),
                mtime: md.mtime(),
            }
        } else {
            Obj::Other {
                kind: md.mode() & 0o170000,
                mode,
                uid: md.uid(),
                gid: md.gid(),
                mtime: md.mtime(),
            }
        };
        out.insert(rel, obj);
        if ft.is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            for n in names {
                visit(root, &p.join(n), out);
            }
        }
    }
    visit(root, root, &mut out);
    out
}

/// Asserts two trees are identical, listing every difference.
pub fn assert_same_tree(expected: &Path, actual: &Path, what: &str) {
    let a = snapshot(expected);
    let b = snapshot(actual);
    let mut diffs = Vec::new();
    for k in a.keys().chain(b.keys()) {
        if a.get(k) != b.get(k)
            && !diffs
                .iter()
                .any(|d: &String| d.starts_with(&format!("{k}:")))
        {
            diffs.push(format!("{k}: expected {:?}, got {:?}", a.get(k), b.get(k)));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: trees differ:\n{}",
        diffs.join("\n")
    );
}

/// Copies a tree preserving modes, owners, mtimes and links (GNU cp -a).
pub fn copy_tree(src: &Path, dest: &Path) {
    run(Command::new("cp").arg("-a").arg(src).arg(dest), "cp -a").ok();
}

/// Sets a path's mtime without following links.
pub fn set_mtime(p: &Path, t: i64) {
    run(
        Command::new("touch")
            .arg("-h")
            .arg("-d")
            .arg(format!("@{t}"))
            .arg(p),
        "touch",
    )
    .ok();
}

/// A tar block opening a PAX extended header of `len` bytes (the records follow, padded
/// to a block), for tests that feed the tar reader hostile records.
pub fn pax_header(len: usize) -> Vec<u8> {
    let mut b = vec![0u8; 512];
    b[..14].copy_from_slice(b"././@PaxHeader");
    for (at, field) in [
        (100, "0000644\0".to_string()),
        (108, "0000000\0".to_string()),
        (116, "0000000\0".to_string()),
        (124, format!("{len:011o}\0")),
        (136, "00000000000\0".to_string()),
    ] {
        b[at..at + field.len()].copy_from_slice(field.as_bytes());
    }
    b[148..156].copy_from_slice(b"        ");
    b[156] = b'x';
    b[257..265].copy_from_slice(b"ustar\x0000");
    let sum: u32 = b.iter().map(|&x| x as u32).sum();
    b[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    b
}

pub mod edits;
pub mod proxy;
pub mod services;
pub mod tls;
