//! swift:// and pca:// against a real OpenStack Swift on loopback (tempauth v1 and Keystone
//! v3, with the PCA sealing emulation), started by `.ci/services` (scripts/test.sh does
//! it). Objects are checked with an independent client (python-swiftclient's `swift`), and
//! the real duplicity reads what ferrodup writes and the other way round.

mod common;

use common::proxy::{rule, Fault, Proxy};
use common::services::*;
use common::*;
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

/// The variables `start-swift.sh` wrote.
fn services() -> HashMap<String, String> {
    service_env("swift")
}

/// Credentials for `swift://` (`SWIFT_*`) or `pca://` (`PCA_*`): Keystone v3 or tempauth v1.
fn creds(s: &HashMap<String, String>, var: &str, v3: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if v3 {
        for k in [
            "AUTHURL",
            "AUTHVERSION",
            "USERNAME",
            "PASSWORD",
            "TENANTNAME",
            "USER_DOMAIN_NAME",
            "PROJECT_DOMAIN_NAME",
            "REGIONNAME",
        ] {
            out.push((format!("{var}{k}"), s[&format!("{var}{k}")].clone()));
        }
    } else {
        out.push((format!("{var}AUTHURL"), s["SWIFT_V1_AUTH_URL"].clone()));
        out.push((format!("{var}AUTHVERSION"), "1".into()));
        out.push((format!("{var}USERNAME"), s["SWIFT_V1_USER"].clone()));
        out.push((format!("{var}PASSWORD"), s["SWIFT_V1_KEY"].clone()));
    }
    out
}

/// python-swiftclient's `swift`, logged in to the tempauth account.
fn swift_cli(s: &HashMap<String, String>) -> Command {
    let mut c = Command::new("swift");
    c.args([
        "-A",
        &s["SWIFT_V1_AUTH_URL"],
        "-U",
        &s["SWIFT_V1_USER"],
        "-K",
        &s["SWIFT_V1_KEY"],
    ]);
    c
}

/// Object names in a container of the tempauth account, listed by python-swiftclient.
fn swift_list(s: &HashMap<String, String>, container: &str) -> Vec<String> {
    let out = run(swift_cli(s).args(["list", container]), "swift list").ok();
    out.stdout().lines().map(str::to_string).collect()
}

fn swift_stat(s: &HashMap<String, String>, container: &str) -> String {
    run(swift_cli(s).args(["stat", container]), "swift stat")
        .ok()
        .stdout()
}

#[test]
fn swift_keystone_v3_and_tempauth_round_trip_with_duplicity() {
    let s = services();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // Keystone v3: a full and an incremental with ferrodup; duplicity restores the chain.
    let v3 = creds(&s, "SWIFT_", true);
    let url = format!("swift://{}/backups/host1", unique("v3"));
    make_fixture_tree(&w.join("src"), 1, false);
    let (t1, t2) = (T1.to_string(), T2.to_string());
    fd(
        w,
        &v3,
        &[
            "full",
            "--no-encryption",
            "--archive-dir",
            "c",
            "--current-time",
            &t1,
            "src",
            &url,
        ],
    )
    .ok();
    copy_tree(&w.join("src"), &w.join("state1"));
    std::fs::remove_dir_all(w.join("src")).unwrap();
    make_fixture_tree(&w.join("src"), 2, false);
    fd(
        w,
        &v3,
        &[
            "incremental",
            "--no-encryption",
            "--archive-dir",
            "c",
            "--current-time",
            &t2,
            "src",
            &url,
        ],
    )
    .ok();
    dup(
        w,
        &v3,
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "dc",
            &url,
            "by-duplicity",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("by-duplicity"),
        "duplicity restore from swift:// (v3)",
    );
    // What duplicity read: manifests with each volume's MD5 and size beside its SHA1
    // (duplicity keeps every Hash line, checks SHA1 and skips Size).
    let cache = std::fs::read_dir(w.join("c"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let manifests: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".manifest"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(manifests.len(), 2);
    for m in &manifests {
        assert!(
            m.contains("    Hash SHA1 ") && m.contains("    Hash MD5 ") && m.contains("    Size "),
            "{m}"
        );
    }
    fd(
        w,
        &v3,
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "fc",
            "--time",
            &t1,
            &url,
            "at-t1",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("state1"),
        &w.join("at-t1"),
        "ferrodup restore at T1 from swift:// (v3)",
    );
    let st = fd(
        w,
        &v3,
        &[
            "collection-status",
            "--no-encryption",
            "--archive-dir",
            "fc",
            &url,
        ],
    )
    .ok();
    assert!(st.stdout().contains("Incremental"), "{}", st.stdout());

    // tempauth v1: objects land where an independent client sees them.
    let v1 = creds(&s, "SWIFT_", false);
    let container = unique("v1");
    let url = format!("swift://{container}");
    fd(
        w,
        &v1,
        &[
            "full",
            "--no-encryption",
            "--archive-dir",
            "c1",
            "src",
            &url,
        ],
    )
    .ok();
    let names = swift_list(&s, &container);
    assert_eq!(names.len(), 3, "volume, signatures, manifest: {names:?}");
    assert!(names.iter().any(|n| n.ends_with(".manifest")), "{names:?}");
    dup(
        w,
        &v1,
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "dc1",
            &url,
            "v1-dup",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("v1-dup"),
        "duplicity restore from swift:// (v1)",
    );

    // And ferrodup restores what duplicity wrote.
    let url = format!("swift://{}", unique("dupw"));
    dup(
        w,
        &v1,
        &[
            "full",
            "--no-encryption",
            "--archive-dir",
            "dc2",
            "src",
            &url,
        ],
    )
    .ok();
    fd(
        w,
        &v1,
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "fc2",
            &url,
            "from-dup",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("from-dup"),
        "ferrodup restore of duplicity's swift backup",
    );
}

#[test]
fn pca_restore_asks_for_every_volume_at_once_and_waits_for_each() {
    let s = services();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let pca = creds(&s, "PCA_", false);
    let container = unique("archive");
    let url = format!("pca://{container}");
    make_fixture_tree(&w.join("src"), 1, true);
    fd(
        w,
        &pca,
        &[
            "full",
            "--no-encryption",
            "--volsize",
            "1",
            "--archive-dir",
            "c",
            "src",
            &url,
        ],
    )
    .ok();
    assert!(
        swift_stat(&s, &container).contains("PCA"),
        "container made with the PCA policy"
    );
    let volumes = swift_list(&s, &container)
        .iter()
        .filter(|n| n.contains(".difftar"))
        .count();
    assert!(volumes >= 3, "a multi-volume backup: {volumes}");
    let r = fd(
        w,
        &pca,
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "rc",
            &url,
            "out",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("out"),
        "restore from sealed PCA volumes",
    );
    let err = r.stderr();
    assert!(
        err.contains(&format!("unseal {volumes} file(s)")),
        "every volume asked for before the first download: {err}"
    );
    assert!(err.contains("is unsealed and downloaded"), "{err}");

    // A duplicity PCA backup restores with ferrodup.
    let url = format!("pca://{}", unique("dup-archive"));
    dup(
        w,
        &pca,
        &[
            "full",
            "--no-encryption",
            "--archive-dir",
            "dc",
            "src",
            &url,
        ],
    )
    .ok();
    fd(
        w,
        &pca,
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "fc",
            &url,
            "from-dup",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("from-dup"),
        "ferrodup restore of duplicity's PCA backup",
    );
}

/// The flagship setup's multi:// target in `w`: manifests and signatures (`hot_`) on a
/// Swift container, volumes (`cold_`) on a PCA one, each store with its own credentials.
struct Flagship {
    url: String,
    hot: String,
    cold: String,
}

const FLAGSHIP_PREFIXES: [&str; 6] = [
    "--file-prefix-manifest",
    "hot_",
    "--file-prefix-signature",
    "hot_",
    "--file-prefix-archive",
    "cold_",
];

fn flagship(w: &std::path::Path, s: &HashMap<String, String>) -> Flagship {
    let env_json = |creds: Vec<(String, String)>| {
        creds
            .iter()
            .map(|(k, v)| format!(r#"{{"name": "{k}", "value": "{v}"}}"#))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (hot, cold) = (unique("hot"), unique("pca-cold"));
    let config = w.join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"[ {{"url": "swift://{hot}", "description": "hot", "prefixes": ["hot_"], "env": [{}]}},
                 {{"url": "pca://{cold}", "description": "cold", "prefixes": ["cold_"], "env": [{}]}} ]"#,
            env_json(creds(s, "SWIFT_", false)),
            env_json(creds(s, "PCA_", false))
        ),
    )
    .unwrap();
    Flagship {
        url: format!("multi://{}?mode=mirror&onfail=abort", config.display()),
        hot,
        cold,
    }
}

/// A multivolume full backup of the fixture tree (`src`, archive dir `c`) to a new
/// flagship target; returns the target and the names of its cold volumes.
fn flagship_backup(w: &std::path::Path, s: &HashMap<String, String>) -> (Flagship, Vec<String>) {
    let target = flagship(w, s);
    make_fixture_tree(&w.join("src"), 1, true);
    flagship_run(
        w,
        &[
            "full",
            "--no-encryption",
            "--volsize",
            "1",
            "--archive-dir",
            "c",
            "src",
            &target.url,
        ],
    )
    .ok();
    let volumes = swift_list(s, &target.cold);
    (target, volumes)
}

/// ferrodup with the flagship's prefixes; the stores' credentials are in the config.
fn flagship_run(w: &std::path::Path, args: &[&str]) -> Run {
    let mut a: Vec<&str> = FLAGSHIP_PREFIXES.to_vec();
    a.extend_from_slice(args);
    fd(w, &[], &a)
}

/// The headers `swift stat` shows for one object.
fn swift_stat_object(s: &HashMap<String, String>, container: &str, object: &str) -> String {
    run(swift_cli(s).args(["stat", container, object]), "swift stat")
        .ok()
        .stdout()
}

/// Deletes `object` from `container` with python-swiftclient.
fn swift_delete(s: &HashMap<String, String>, container: &str, object: &str) {
    run(
        swift_cli(s).args(["delete", container, object]),
        "swift delete",
    )
    .ok();
}

/// Stores `data` as `object` in `container` with python-swiftclient.
fn swift_put(s: &HashMap<String, String>, container: &str, object: &str, data: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("data");
    std::fs::write(&f, data).unwrap();
    run(
        swift_cli(s).current_dir(dir.path()).args([
            "upload",
            "--object-name",
            object,
            container,
            "data",
        ]),
        "swift upload",
    )
    .ok();
}

/// `check` on the flagship setup: every cold volume is compared by size and MD5 from the
/// PCA listing and stays sealed (no GET, which would start an unseal); a deleted, a
/// replaced and a shortened volume are each named.
#[test]
fn check_reads_no_cold_object_and_finds_missing_replaced_and_resized_volumes() {
    let s = services();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (Flagship { url, hot, cold }, volumes) = flagship_backup(w, &s);
    assert!(volumes.len() >= 3, "{volumes:?}");
    assert_eq!(swift_list(&s, &hot).len(), 2);
    // From a fresh archive dir (manifests read from Swift) and from the backup's own.
    for cache in ["fresh", "c"] {
        let r = flagship_run(
            w,
            &["check", "--no-encryption", "--archive-dir", cache, &url],
        )
        .ok();
        let err = r.stderr();
        let n = volumes.len();
        assert!(err.contains("0 problem(s) found"), "{err}");
        assert!(
            err.contains(&format!(
                "{n} volume(s) in 1 chain(s) on hot (swift://{hot}), cold (pca://{cold}) \
                 ({n} by content"
            )),
            "{err}"
        );
    }
    for v in &volumes {
        let stat = swift_stat_object(&s, &cold, v);
        assert!(
            stat.contains("X-Ovh-Retrieval-State: sealed"),
            "{v} was read: {stat}"
        );
    }
    // Damage three volumes behind ferrodup's back.
    swift_delete(&s, &cold, &volumes[0]);
    let size = |v: &str| -> usize {
        let stat = swift_stat_object(&s, &cold, v);
        let line = stat
            .lines()
            .find(|l| l.contains("Content Length:"))
            .unwrap();
        line.split(':').nth(1).unwrap().trim().parse().unwrap()
    };
    let n1 = size(&volumes[1]);
    swift_put(&s, &cold, &volumes[1], &vec![7u8; n1]);
    swift_put(&s, &cold, &volumes[2], b"short");
    let r = flagship_run(w, &["check", "--no-encryption", "--archive-dir", "c", &url]);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    let err = r.stderr();
    assert!(
        err.contains(&format!("{} (volume 1 of hot_", volumes[0]))
            && err.contains(") is missing from cold (pca://"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{} on cold (pca://{cold}) has other content",
            volumes[1]
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{} on cold (pca://{cold}) has 5 bytes, its manifest says",
            volumes[2]
        )),
        "{err}"
    );
    assert!(err.contains("3 problem(s) found"), "{err}");
}

/// A restore from PCA: `--dry-run` prints the plan (the volumes, their bytes, all sealed)
/// and unseals nothing; a restore killed while it waits for the unseals, run again, asks
/// for no unseal twice (counted in the server's log), says they are thawing, and restores
/// the tree.
#[test]
fn pca_restore_plan_and_a_rerun_that_asks_for_no_unseal_twice() {
    let s = services();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (Flagship { url, cold, .. }, volumes) = flagship_backup(w, &s);
    let n = volumes.len();
    assert!(n >= 3, "{volumes:?}");
    let bytes: u64 = volumes
        .iter()
        .map(|v| {
            let stat = swift_stat_object(&s, &cold, v);
            let line = stat
                .lines()
                .find(|l| l.contains("Content Length:"))
                .unwrap();
            line.split(':')
                .nth(1)
                .unwrap()
                .trim()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    let size = ferrodup::live::size_text(bytes);
    let r = flagship_run(
        w,
        &[
            "restore",
            "--dry-run",
            "--no-encryption",
            "--archive-dir",
            "r",
            &url,
            "out",
        ],
    )
    .ok();
    let err = r.stderr();
    assert!(
        err.contains(&format!("Restore plan: {n} volume(s), {size} in all")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "cold (pca://{cold}): {n} volume(s), {size}: 0 readable now, {n} to thaw, {size} \
             (wait: OVH announces it when asked; usually hours)"
        )),
        "{err}"
    );
    assert!(!w.join("out").exists());
    for v in &volumes {
        assert!(swift_stat_object(&s, &cold, v).contains("X-Ovh-Retrieval-State: sealed"));
    }
    // The first restore is killed once it has asked for the unseals.
    let mut args: Vec<&str> = FLAGSHIP_PREFIXES.to_vec();
    args.extend_from_slice(&[
        "restore",
        "--no-encryption",
        "--archive-dir",
        "r",
        &url,
        "out",
    ]);
    let first = fd_killed_after(w, &[], &args, "to unseal");
    assert!(first.contains(&format!("{n} to thaw")), "{first}");
    assert!(first.contains(&format!("unseal {n} file(s)")), "{first}");
    std::fs::remove_dir_all(w.join("out")).ok();
    let again = flagship_run(w, &args[6..]).ok();
    let err = again.stderr();
    assert!(
        !err.contains("to unseal"),
        "no unseal asked for again: {err}"
    );
    // Depending on the time since the first run: some or all are unsealed, the others
    // still unsealing; none is to thaw.
    assert!(!err.contains("to thaw"), "{err}");
    assert_same_tree(
        &w.join("src"),
        &w.join("out"),
        "restore after a killed restore",
    );
    let log =
        std::fs::read_to_string(std::path::Path::new(&s["SWIFT_STATE_DIR"]).join("log/proxy.log"))
            .unwrap();
    for v in &volumes {
        let asked = log
            .lines()
            .filter(|l| l.contains("pca: unsealing") && l.contains(&format!("/{cold}/{v} ")))
            .count();
        assert_eq!(asked, 1, "{v} was asked to unseal once");
    }
}

/// A restore from PCA killed after it downloaded and checked some volumes: run again, it
/// reads them from where it kept them (no request for them reaches Swift, per its log),
/// downloads the rest, and removes what it kept once the restore is complete.
#[test]
fn a_rerun_restore_reads_again_the_volumes_it_had_thawed() {
    let s = services();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (Flagship { url, cold, .. }, volumes) = flagship_backup(w, &s);
    assert!(volumes.len() >= 3, "{volumes:?}");
    std::fs::create_dir(w.join("tmp")).unwrap();
    let mut args: Vec<&str> = FLAGSHIP_PREFIXES.to_vec();
    args.extend_from_slice(&[
        "restore",
        "--no-encryption",
        "--tempdir",
        "tmp",
        "--archive-dir",
        "r",
        &url,
        "out",
    ]);
    // Killed as it is about to check the second volume's hash: the first one is checked
    // (the fetcher checks each volume before it downloads the next) and kept.
    let env = [(
        "FERRODUP_FAILPOINT".to_string(),
        "volume-hash:2".to_string(),
    )];
    let first = fd(w, &env, &args);
    assert_ne!(first.code(), 0, "killed: {}", first.stderr());
    assert!(
        first.stderr().contains("Restore plan"),
        "{}",
        first.stderr()
    );
    let log_path = std::path::Path::new(&s["SWIFT_STATE_DIR"]).join("log/proxy.log");
    let seen = std::fs::read_to_string(&log_path).unwrap().len();
    std::fs::remove_dir_all(w.join("out")).ok();
    let again = flagship_run(w, &args[6..]).ok();
    let err = again.stderr();
    assert!(
        err.contains("volume(s) downloaded and checked by an earlier run are read again"),
        "{err}"
    );
    assert_same_tree(&w.join("src"), &w.join("out"), "restore from kept volumes");
    let log = std::fs::read_to_string(&log_path).unwrap();
    let gets = log[seen..]
        .lines()
        .filter(|l| l.contains(" GET /v1/") && l.contains(&format!("/{cold}/{} ", volumes[0])))
        .count();
    assert_eq!(gets, 0, "{} was read from the kept copy", volumes[0]);
    let left: Vec<_> = std::fs::read_dir(w.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "the kept volumes are removed: {left:?}");
}

/// The flagship setup: manifests and signatures on Swift, volumes on PCA, through one
/// multi:// config whose stores carry their own credentials.
#[test]
fn hot_swift_cold_pca_multi_with_per_store_credentials() {
    let s = services();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let Flagship { url, hot, cold } = flagship(w, &s);
    let run_fd = |args: &[&str]| flagship_run(w, args).ok();
    make_fixture_tree(&w.join("src"), 1, false);
    let (t1, t2) = (T1.to_string(), T2.to_string());
    run_fd(&[
        "full",
        "--no-encryption",
        "--archive-dir",
        "c",
        "--current-time",
        &t1,
        "src",
        &url,
    ]);
    copy_tree(&w.join("src"), &w.join("state1"));
    std::fs::remove_dir_all(w.join("src")).unwrap();
    make_fixture_tree(&w.join("src"), 2, false);
    run_fd(&[
        "incremental",
        "--no-encryption",
        "--archive-dir",
        "c",
        "--current-time",
        &t2,
        "src",
        &url,
    ]);
    let hot_names = swift_list(&s, &hot);
    let cold_names = swift_list(&s, &cold);
    assert_eq!(hot_names.len(), 4, "{hot_names:?}");
    assert!(
        hot_names.iter().all(|n| n.starts_with("hot_")),
        "{hot_names:?}"
    );
    assert!(
        !cold_names.is_empty()
            && cold_names
                .iter()
                .all(|n| n.starts_with("cold_") && n.contains(".difftar"))
    );
    assert!(swift_stat(&s, &cold).contains("PCA"));
    // A fresh machine (empty cache) restores both states.
    run_fd(&[
        "restore",
        "--no-encryption",
        "--archive-dir",
        "r1",
        &url,
        "latest",
    ]);
    assert_same_tree(
        &w.join("src"),
        &w.join("latest"),
        "flagship restore, latest",
    );
    run_fd(&[
        "restore",
        "--no-encryption",
        "--archive-dir",
        "r2",
        "--time",
        &t1,
        &url,
        "first",
    ]);
    assert_same_tree(
        &w.join("state1"),
        &w.join("first"),
        "flagship restore at T1",
    );
    let listed = run_fd(&[
        "list-current-files",
        "--no-encryption",
        "--archive-dir",
        "r3",
        &url,
    ]);
    assert!(listed.stdout().lines().count() > 3);
    let v = run_fd(&[
        "verify",
        "--compare-data",
        "--no-encryption",
        "--archive-dir",
        "r4",
        &url,
        "src",
    ]);
    let said = format!("{}{}", v.stdout(), v.stderr());
    assert!(said.contains(", 0 difference(s) found"), "{said}");
}

#[test]
fn swift_errors_are_one_clear_line() {
    let s = services();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::create_dir(w.join("src")).unwrap();
    std::fs::write(w.join("src/f"), "x").unwrap();
    let check = |env: Vec<(String, String)>, url: &str, code: i32, words: &[&str]| {
        let r = fd(
            w,
            &env,
            &[
                "full",
                "--no-encryption",
                "--num-retries",
                "1",
                "--archive-dir",
                "c",
                "src",
                url,
            ],
        );
        assert_fails(&r, code, words);
    };
    let mut wrong = creds(&s, "SWIFT_", true);
    wrong.retain(|(k, _)| k != "SWIFT_PASSWORD");
    wrong.push(("SWIFT_PASSWORD".into(), "not-the-password".into()));
    check(wrong, "swift://x", 38, &["refused", "SWIFT_PASSWORD"]);
    let mut missing = creds(&s, "SWIFT_", true);
    missing.retain(|(k, _)| k != "SWIFT_AUTHURL");
    check(missing, "swift://x", 23, &["SWIFT_AUTHURL"]);
    let mut down = creds(&s, "SWIFT_", false);
    down.retain(|(k, _)| k != "SWIFT_AUTHURL");
    down.push((
        "SWIFT_AUTHURL".into(),
        "http://127.0.0.1:9/auth/v1.0".into(),
    ));
    check(down, "swift://x", 38, &["127.0.0.1:9"]);
    let mut v2 = creds(&s, "PCA_", false);
    v2.retain(|(k, _)| k != "PCA_AUTHVERSION");
    v2.push(("PCA_AUTHVERSION".into(), "2".into()));
    check(v2, "pca://x", 23, &["PCA_AUTHVERSION"]);
    // A pca:// target on a container without the PCA policy is refused.
    let plain = unique("plain");
    fd(
        w,
        &creds(&s, "SWIFT_", false),
        &[
            "full",
            "--no-encryption",
            "--archive-dir",
            "c0",
            "src",
            &format!("swift://{plain}"),
        ],
    )
    .ok();
    check(
        creds(&s, "PCA_", false),
        &format!("pca://{plain}"),
        23,
        &["storage policy", &plain],
    );
}

/// The segments of a large object go up `--concurrency` at once, and a retry sends only
/// the segment that failed. (That duplicity reads these objects is tested below.)
#[test]
fn segments_upload_in_parallel_and_a_retry_sends_only_the_failed_one() {
    let s = services();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // 3 MiB that gzip cannot shrink: one volume of four 1 MiB segments.
    std::fs::create_dir(w.join("src")).unwrap();
    std::fs::write(w.join("src/big.bin"), edits::prng_bytes(6, 3 << 20)).unwrap();
    let proxy = Proxy::start(&s["SWIFT_PROXY_URL"]);
    let container = unique("slopar");
    let segments = format!("/{container}_segments/");
    proxy.add(rule("PUT", "/00000003", Fault::Status(503)));
    // Long enough for the three uploads to overlap on a loaded machine.
    proxy.add(rule("PUT", &segments, Fault::Delay(Duration::from_millis(1000))).always());
    let r = ureq::get(&s["SWIFT_V1_AUTH_URL"])
        .header("X-Auth-User", &s["SWIFT_V1_USER"])
        .header("X-Auth-Key", &s["SWIFT_V1_KEY"])
        .call()
        .expect("tempauth login");
    let token = r.headers()["x-auth-token"].to_str().unwrap().to_string();
    let storage = &s["SWIFT_V1_STORAGE_URL"];
    let path = &storage[storage.find("/v1/").expect("a /v1/ storage URL")..];
    let via_proxy = vec![
        (
            "SWIFT_PREAUTHURL".to_string(),
            format!("{}{path}", proxy.url),
        ),
        ("SWIFT_PREAUTHTOKEN".to_string(), token),
    ];
    let url = format!("swift://{container}/host1");
    fd(
        w,
        &via_proxy,
        &[
            "full",
            "--no-encryption",
            "--archive-dir",
            "c",
            "--mp-segment-size",
            "1",
            "--concurrency",
            "3",
            "--num-retries",
            "2",
            "--backend-retry-delay",
            "0",
            "src",
            &url,
        ],
    )
    .ok();
    let sent: Vec<String> = proxy
        .log()
        .into_iter()
        .filter(|l| l.starts_with("PUT ") && l.contains(&segments))
        .collect();
    let tries_of = |k: &str| sent.iter().filter(|l| l.contains(k)).count();
    assert_eq!(
        (1..=4)
            .map(|k| tries_of(&format!("/0000000{}", k - 1)))
            .collect::<Vec<_>>(),
        vec![1, 1, 1, 2],
        "each segment is sent once, the failed one once more: {sent:#?}"
    );
    assert_eq!(
        proxy.peak("PUT"),
        3,
        "three segments are in flight at once, never more"
    );
    let v1 = creds(&s, "SWIFT_", false);
    fd(
        w,
        &v1,
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "c",
            &url,
            "fd-out",
        ],
    )
    .ok();
    assert_same_tree(&w.join("src"), &w.join("fd-out"), "ferrodup restore");
}

#[test]
fn storage_policy_and_segmented_uploads_as_static_large_objects() {
    let s = services();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let v1 = creds(&s, "SWIFT_", false);
    // 3 MiB that gzip cannot shrink: one volume of four 1 MiB segments.
    std::fs::create_dir(w.join("src")).unwrap();
    std::fs::write(w.join("src/big.bin"), edits::prng_bytes(5, 3 << 20)).unwrap();
    std::fs::write(w.join("src/small.txt"), b"small\n").unwrap();
    let container = unique("slo");
    let url = format!("swift://{container}/host1");
    let backup = |t: i64, extra: &[&str]| {
        let t = t.to_string();
        let mut a = vec![
            "full",
            "--no-encryption",
            "--archive-dir",
            "c",
            "--current-time",
            &t,
            "--mp-segment-size",
            "1",
        ];
        a.extend_from_slice(extra);
        a.extend(["src", url.as_str()]);
        fd(w, &v1, &a)
    };
    backup(T1, &["--swift-storage-policy", "Policy-0"]).ok();
    assert!(
        swift_stat(&s, &container).contains("Policy-0"),
        "the container has the policy asked for"
    );
    let segments_of = |vol: &str| -> Vec<String> {
        swift_list(&s, &format!("{container}_segments"))
            .into_iter()
            .filter(|n| n.starts_with(&format!("host1/{vol}/slo/")))
            .collect()
    };
    let names = swift_list(&s, &container);
    let vol1 = names
        .iter()
        .find(|n| n.contains(".difftar"))
        .unwrap()
        .trim_start_matches("host1/")
        .to_string();
    assert_eq!(segments_of(&vol1).len(), 4, "segments of {vol1}");
    assert!(
        names.iter().all(|n| !n.contains("/slo/")),
        "segments stay out of the backup container: {names:?}"
    );
    fd(
        w,
        &v1,
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "c",
            &url,
            "fd-out",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("fd-out"),
        "ferrodup restore of an SLO",
    );
    dup(
        w,
        &v1,
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "d",
            &url,
            "dup-out",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("dup-out"),
        "duplicity restore of an SLO",
    );

    // Another policy than the container's is refused, as duplicity refuses it.
    let r = backup(T2, &["--swift-storage-policy", "PCA"]);
    assert_fails(&r, 23, &[&container, "Policy-0", "PCA"]);

    // Deleting a set deletes the segments of its volumes too.
    backup(T2, &[]).ok();
    fd(
        w,
        &v1,
        &[
            "remove-all-but-n-full",
            "1",
            "--force",
            "--archive-dir",
            "c",
            &url,
        ],
    )
    .ok();
    assert!(
        segments_of(&vol1).is_empty(),
        "segments of {vol1} are deleted"
    );
    let left = swift_list(&s, &container);
    assert!(
        names.iter().all(|n| !left.contains(n)),
        "every file of the first set is deleted: {left:?}"
    );

    // A Dynamic Large Object (python-swiftclient's CLI makes one by default) goes with
    // its segments too: here an orphaned volume that cleanup deletes.
    let orphan = "host1/duplicity-full.20200101T000000Z.vol1.difftar.gz";
    run(
        swift_cli(&s)
            .current_dir(w)
            .args(["upload", "-S", "1048576", "--object-name", orphan])
            .args([container.as_str(), "src/big.bin"]),
        "swift upload (DLO)",
    )
    .ok();
    let dlo_segments = || {
        swift_list(&s, &format!("{container}_segments"))
            .into_iter()
            .filter(|n| n.starts_with(orphan))
            .count()
    };
    assert_eq!(dlo_segments(), 3, "the DLO has 3 segments");
    fd(w, &v1, &["cleanup", "--force", "--archive-dir", "c", &url]).ok();
    assert!(!swift_list(&s, &container).contains(&orphan.to_string()));
    assert_eq!(dlo_segments(), 0, "the DLO's segments are deleted");

    // duplicity's segmented uploads (python-swiftclient's, with Keystone v3: its v1 path
    // does not segment) restore with ferrodup.
    let v3 = creds(&s, "SWIFT_", true);
    let dup_container = unique("dupslo");
    let url = format!("swift://{dup_container}");
    dup(
        w,
        &v3,
        &[
            "full",
            "--no-encryption",
            "--archive-dir",
            "d2",
            "--num-retries",
            "1",
            "--mp-segment-size",
            "1",
            "src",
            &url,
        ],
    )
    .ok();
    let k = service_env("keystone");
    let segments = run(
        Command::new("swift")
            .envs(k.iter().filter(|(n, _)| n.starts_with("OS_")))
            .args([
                "--auth-version",
                "3",
                "list",
                &format!("{dup_container}_segments"),
            ]),
        "swift list (v3)",
    )
    .ok()
    .stdout();
    assert!(
        segments.contains("/slo/"),
        "duplicity made an SLO: {segments}"
    );
    fd(
        w,
        &v3,
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "c2",
            &url,
            "from-dup",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("from-dup"),
        "restore of duplicity's SLO",
    );

    // A new container gets the policy asked for.
    let cold = unique("policy");
    fd(
        w,
        &v1,
        &[
            "full",
            "--no-encryption",
            "--archive-dir",
            "c3",
            "--swift-storage-policy",
            "PCA",
            "src",
            &format!("swift://{cold}"),
        ],
    )
    .ok();
    assert!(swift_stat(&s, &cold).contains("PCA"));
}
