//! `par2+<url>`: recovery files made by the real par2 beside every stored file, as
//! duplicity's par2 backend makes them. A volume damaged in storage is repaired on read
//! by ferrodup, in its own chains and in duplicity's; duplicity reads ferrodup's; listings
//! hide the recovery files and deletes take them along.

mod common;

use common::*;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// Overwrites 200 bytes in the middle of `file`, as a bad sector or a flipped tape block
/// would.
fn damage(file: &Path) {
    let len = std::fs::metadata(file).unwrap().len();
    let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.seek(SeekFrom::Start(len / 2)).unwrap();
    f.write_all(&[0x5a; 200]).unwrap();
}

#[test]
fn damaged_volumes_are_repaired_on_restore_and_duplicity_reads_the_files() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let target = w.join("target");
    let url = format!("par2+file://{}", target.display());
    make_fixture_tree(&w.join("src"), 1, true);
    let (t1, t2) = (T1.to_string(), T2.to_string());
    for (kind, t) in [("full", &t1), ("incremental", &t2)] {
        if kind == "incremental" {
            copy_tree(&w.join("src"), &w.join("state1"));
            edits::state3(&w.join("src"), T2 - 60);
        }
        ferrodup(
            w,
            &[
                kind,
                "--no-encryption",
                "--volsize",
                "1",
                "--par2-redundancy",
                "20",
                "--archive-dir",
                "fc",
                "--current-time",
                t,
                "src",
                &url,
            ],
        )
        .ok();
    }
    let stored = names(&target);
    let data: Vec<&String> = stored.iter().filter(|n| !n.ends_with(".par2")).collect();
    assert!(data.len() >= 8, "{stored:?}");
    for n in &data {
        assert!(
            stored.contains(&format!("{n}.par2")),
            "{n} has no index: {stored:?}"
        );
        assert!(
            stored
                .iter()
                .any(|f| f.starts_with(&format!("{n}.vol")) && f.ends_with(".par2")),
            "{n} has no recovery volume"
        );
    }
    let vol2 = data
        .iter()
        .find(|n| n.starts_with("duplicity-full") && n.contains(".vol2."))
        .unwrap();
    // duplicity reads the chain through its par2 backend. (duplicity 3.2.1 repairs
    // nothing: its par2 verify failure raises an error its par2 backend swallows, so only
    // undamaged files are shown to read with it.)
    duplicity(
        w,
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "d1",
            &url,
            "dup-out",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("dup-out"),
        "duplicity restore of ferrodup's",
    );
    damage(&target.join(vol2));

    // Listings show no recovery file.
    let r = ferrodup(
        w,
        &[
            "collection-status",
            "--no-encryption",
            "--archive-dir",
            "fc",
            &url,
        ],
    )
    .ok();
    assert!(!r.stderr().contains(".par2"), "{}", r.stderr());

    let r = ferrodup(
        w,
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "r1",
            "--time",
            &t1,
            &url,
            "f1",
        ],
    )
    .ok();
    assert!(
        r.stderr().contains(&format!("{vol2} was repaired")),
        "{}",
        r.stderr()
    );
    assert_same_tree(&w.join("state1"), &w.join("f1"), "ferrodup restore at T1");
    ferrodup(
        w,
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "r2",
            &url,
            "f2",
        ],
    )
    .ok();
    assert_same_tree(&w.join("src"), &w.join("f2"), "ferrodup restore, latest");

    // duplicity's chain with par2, damaged, restored by ferrodup.
    let theirs = w.join("theirs");
    let their_url = format!("par2+file://{}", theirs.display());
    duplicity(
        w,
        &[
            "full",
            "--no-encryption",
            "--volsize",
            "1",
            "--archive-dir",
            "d2",
            "src",
            &their_url,
        ],
    )
    .ok();
    let their_vol = names(&theirs)
        .into_iter()
        .find(|n| n.contains(".vol1.difftar") && !n.ends_with(".par2"))
        .unwrap();
    damage(&theirs.join(&their_vol));
    let r = ferrodup(
        w,
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "r3",
            &their_url,
            "f3",
        ],
    )
    .ok();
    assert!(r.stderr().contains("was repaired"), "{}", r.stderr());
    assert_same_tree(
        &w.join("src"),
        &w.join("f3"),
        "ferrodup restore of duplicity's",
    );

    // Deleting a chain deletes its recovery files.
    ferrodup(
        w,
        &[
            "full",
            "--no-encryption",
            "--archive-dir",
            "fc",
            "--current-time",
            &(T2 + 100).to_string(),
            "src",
            &url,
        ],
    )
    .ok();
    ferrodup(
        w,
        &[
            "remove-all-but-n-full",
            "1",
            "--force",
            "--no-encryption",
            "--archive-dir",
            "fc",
            &url,
        ],
    )
    .ok();
    let left = names(&target);
    let stamp = |t: i64| ferrodup::format::time::to_string(t);
    assert!(
        left.iter()
            .all(|n| !n.contains(&stamp(T1)) && !n.contains(&stamp(T2))),
        "{left:?}"
    );
    assert!(left.iter().any(|n| n.ends_with(".par2")), "{left:?}");
}
