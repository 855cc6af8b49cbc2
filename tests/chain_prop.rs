//! Property test: random trees under random edits over a full backup and six
//! incrementals restore exactly (content, mode, owner, mtime, link target) at every time.

mod common;

use common::edits::prng_bytes;
use common::*;
use proptest::prelude::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const NAMES: [&str; 12] = [
    "a",
    "b.txt",
    "dir1/c",
    "dir1/d e",
    "dir2/f",
    "dir1/sub/g",
    "caf\u{e9}",
    "dir2/sub/h",
    "big",
    "dir1/big2",
    "-dash",
    "[brackets]",
];
const SIZES: [usize; 6] = [0, 1, 700, 65_536, 70_000, 200_000];

type Op = (u8, usize, u64);

fn remove_any(p: &Path) {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).unwrap(),
        Ok(_) => fs::remove_file(p).unwrap(),
        Err(_) => {}
    }
}

fn ensure_parent(root: &Path, p: &Path) {
    let parent = p.parent().unwrap();
    let mut cur = root.to_path_buf();
    for comp in parent.strip_prefix(root).unwrap().components() {
        cur.push(comp);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                remove_any(&cur);
                fs::create_dir(&cur).unwrap();
            }
            Err(_) => fs::create_dir(&cur).unwrap(),
        }
    }
}

fn apply(root: &Path, ops: &[Op], mtime: i64) {
    for (i, &(kind, name, seed)) in ops.iter().enumerate() {
        let p = root.join(NAMES[name % NAMES.len()]);
        ensure_parent(root, &p);
        let is_file = fs::symlink_metadata(&p).is_ok_and(|m| m.is_file());
        let stamp = mtime - i as i64;
        match kind % 8 {
            0 => {
                remove_any(&p);
                let size = SIZES[(seed % SIZES.len() as u64) as usize];
                fs::write(&p, prng_bytes(seed, size)).unwrap();
            }
            1 if is_file => {
                let mut data = fs::read(&p).unwrap();
                if !data.is_empty() {
                    let at = (seed as usize) % data.len();
                    let end = (at + 300).min(data.len());
                    data[at..end].copy_from_slice(&prng_bytes(seed ^ 7, end - at));
                    fs::write(&p, data).unwrap();
                }
            }
            2 => remove_any(&p),
            3 if is_file => {
                let mode = [0o600, 0o644, 0o755, 0o640][(seed % 4) as usize];
                fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            }
            4 => {
                remove_any(&p);
                let target = NAMES[(seed % NAMES.len() as u64) as usize];
                std::os::unix::fs::symlink(target, &p).unwrap();
                continue;
            }
            5 => {
                if !fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                    remove_any(&p);
                    fs::create_dir(&p).unwrap();
                }
            }
            6 if is_file => {
                let mut data = fs::read(&p).unwrap();
                data.extend(prng_bytes(seed, (seed % 90_000) as usize));
                fs::write(&p, data).unwrap();
            }
            7 if is_file => {
                let data = fs::read(&p).unwrap();
                let keep = if data.is_empty() {
                    0
                } else {
                    (seed as usize) % data.len()
                };
                fs::write(&p, &data[..keep]).unwrap();
            }
            _ => continue,
        }
        if fs::symlink_metadata(&p).is_ok() {
            set_mtime(&p, stamp);
        }
    }
}

fn check_chain(steps: Vec<Vec<Op>>, volsize: &str) {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let src = w.join("src");
    fs::create_dir(&src).unwrap();
    let url = format!("file://{}/target", w.display());
    let mut states = Vec::new();
    for (n, ops) in steps.iter().enumerate() {
        let t = T1 + n as i64 * 86_400;
        apply(&src, ops, t - 10);
        let copy = w.join(format!("state{n}"));
        copy_tree(&src, &copy);
        let kind = if n == 0 { "full" } else { "incremental" };
        ferrodup(
            w,
            &[
                kind,
                "--no-encryption",
                "--no-print-statistics",
                "--volsize",
                volsize,
                "--current-time",
                &t.to_string(),
                "--archive-dir",
                "cache",
                "src",
                &url,
            ],
        )
        .ok();
        states.push((t, copy));
    }
    for (n, (t, state)) in states.iter().enumerate() {
        let dest = w.join(format!("restored{n}"));
        ferrodup(
            w,
            &[
                "restore",
                "--archive-dir",
                "cache",
                "-t",
                &t.to_string(),
                &url,
                dest.to_str().unwrap(),
            ],
        )
        .ok();
        assert_same_tree(state, &dest, &format!("state {n}"));
    }
}

fn step() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec((0u8..8, 0usize..NAMES.len(), any::<u64>()), 1..10)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_edits_over_six_incrementals_round_trip(
        steps in proptest::collection::vec(step(), 7..8),
        small_volumes in any::<bool>(),
    ) {
        check_chain(steps, if small_volumes { "1" } else { "200" });
    }
}
