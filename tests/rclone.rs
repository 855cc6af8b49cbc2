//! `rclone://` targets through the real rclone program, here reaching the loopback SFTP
//! server as an rclone remote defined by environment variables: a ferrodup chain restores
//! with ferrodup and with duplicity's rclone backend, and the other way round; the files
//! are on the server's disk under the names duplicity gives them.

mod common;

use common::services::*;
use common::*;
use std::path::Path;

fn rclone_env() -> Vec<(String, String)> {
    let s = service_env("sftp");
    [
        ("TYPE", "sftp"),
        ("HOST", &s["SFTP_HOST"]),
        ("PORT", &s["SFTP_PORT"]),
        ("USER", &s["SFTP_USER"]),
        ("KEY_FILE", &s["SFTP_KEY"]),
        ("KNOWN_HOSTS_FILE", &s["SFTP_KNOWN_HOSTS"]),
    ]
    .iter()
    .map(|(k, v)| (format!("RCLONE_CONFIG_LOOPSFTP_{k}"), v.to_string()))
    .collect()
}

fn on_server(dir: &str) -> Vec<String> {
    let home = service_env("sftp")["SFTP_HOME"].clone();
    let mut v: Vec<String> = std::fs::read_dir(Path::new(&home).join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn rclone_chains_restore_with_ferrodup_and_duplicity_both_ways() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let env = rclone_env();
    let dir = unique("rclone");
    let url = format!("rclone://loopsftp:/{dir}");
    make_fixture_tree(&w.join("src"), 1, true);
    let (t1, t2) = (T1.to_string(), T2.to_string());
    let backup = |kind: &str, t: &str| {
        fd(
            w,
            &env,
            &[
                kind,
                "--no-encryption",
                "--volsize",
                "1",
                "--archive-dir",
                "fc",
                "--current-time",
                t,
                "src",
                &url,
            ],
        )
        .ok();
    };
    backup("full", &t1);
    copy_tree(&w.join("src"), &w.join("state1"));
    edits::state3(&w.join("src"), T2 - 60);
    backup("incremental", &t2);
    let stored = on_server(&dir);
    assert!(
        stored.iter().filter(|n| n.contains(".difftar.gz")).count() >= 4
            && stored.iter().filter(|n| n.ends_with(".manifest")).count() == 2,
        "{stored:?}"
    );
    for (t, state, dest) in [(&t1, "state1", "f1"), (&t2, "src", "f2")] {
        fd(
            w,
            &env,
            &[
                "restore",
                "--no-encryption",
                "--archive-dir",
                "rc",
                "--time",
                t,
                &url,
                dest,
            ],
        )
        .ok();
        assert_same_tree(&w.join(state), &w.join(dest), &format!("ferrodup {dest}"));
    }
    for (t, state, dest) in [(&t1, "state1", "d1"), (&t2, "src", "d2")] {
        dup(
            w,
            &env,
            &[
                "restore",
                "--no-encryption",
                "--archive-dir",
                "dc",
                "--time",
                t,
                &url,
                dest,
            ],
        )
        .ok();
        assert_same_tree(&w.join(state), &w.join(dest), &format!("duplicity {dest}"));
    }

    // duplicity's chain through rclone, restored by ferrodup.
    let theirs = format!("rclone://loopsftp:/{}", unique("rclone-dup"));
    dup(
        w,
        &env,
        &[
            "full",
            "--no-encryption",
            "--archive-dir",
            "dc2",
            "src",
            &theirs,
        ],
    )
    .ok();
    fd(
        w,
        &env,
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "rc2",
            &theirs,
            "from-dup",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("from-dup"),
        "ferrodup restore of duplicity's",
    );
    let r = fd(
        w,
        &env,
        &[
            "collection-status",
            "--no-encryption",
            "--archive-dir",
            "rc2",
            &theirs,
        ],
    )
    .ok();
    assert!(r.stdout().contains("Full"), "{}", r.stdout());

    // An unknown remote: one clear line naming the target, after the retries.
    let r = fd(
        w,
        &[],
        &[
            "collection-status",
            "--num-retries",
            "1",
            "--no-encryption",
            "rclone://no-such-remote:/x",
        ],
    );
    assert_fails(&r, 50, &["rclone", "no-such-remote"]);
}
