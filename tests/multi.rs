//! `multi://` targets: hot/cold routing by file-name prefix, mirror and stripe modes,
//! `onfail`, and bad configs; backups made through multi:// restore with the real
//! duplicity's multi backend and the other way round.

mod common;

use common::*;
use std::path::Path;

/// Writes a multi:// config and returns the URL.
fn config(w: &Path, name: &str, json: &str, query: &str) -> String {
    let p = w.join(name);
    std::fs::write(&p, json).unwrap();
    format!("multi://{}?{query}", p.display())
}

fn hot_cold_json(w: &Path) -> String {
    format!(
        r#"[
  {{"url": "file://{hot}", "description": "hot storage", "prefixes": ["hot_"]}},
  {{"url": "file://{cold}", "description": "cold storage", "prefixes": ["cold_"]}}
]"#,
        hot = w.join("hot").display(),
        cold = w.join("cold").display()
    )
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

const PREFIXES: [&str; 6] = [
    "--file-prefix-manifest",
    "hot_",
    "--file-prefix-signature",
    "hot_",
    "--file-prefix-archive",
    "cold_",
];

fn with(base: &[&str], extra: &[&str], tail: &[&str]) -> Vec<String> {
    base.iter()
        .chain(extra)
        .chain(tail)
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn hot_cold_mirror_routes_by_prefix_and_interoperates() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let url = config(
        w,
        "hot-cold.json",
        &hot_cold_json(w),
        "mode=mirror&onfail=abort",
    );
    make_fixture_tree(&w.join("src"), 1, false);
    for (kind, t) in [("full", T1), ("incremental", T2)] {
        if kind == "incremental" {
            std::fs::remove_dir_all(w.join("src")).unwrap();
            make_fixture_tree(&w.join("src"), 2, false);
        }
        let t = t.to_string();
        let args = with(
            &[
                kind,
                "--no-encryption",
                "--archive-dir",
                "cache",
                "--current-time",
                &t,
            ],
            &PREFIXES,
            &["src", &url],
        );
        ferrodup(w, &args).ok();
    }
    let hot = files(&w.join("hot"));
    let cold = files(&w.join("cold"));
    assert_eq!(
        hot.len(),
        4,
        "two manifests and two signature files: {hot:?}"
    );
    assert!(
        hot.iter().all(|n| n.starts_with("hot_duplicity-")),
        "{hot:?}"
    );
    assert!(
        cold.len() >= 2 && cold.iter().all(|n| n.starts_with("cold_duplicity-")),
        "{cold:?}"
    );
    assert!(cold.iter().all(|n| n.contains(".difftar")), "{cold:?}");

    // ferrodup and duplicity both restore ferrodup's chain through the same config.
    let restore = |tool: &str, dest: &str| {
        let args = with(
            &[
                "restore",
                "--no-encryption",
                "--archive-dir",
                &format!("rcache-{tool}"),
            ],
            &PREFIXES,
            &[&url, dest],
        );
        if tool == "ferrodup" {
            ferrodup(w, &args).ok();
        } else {
            duplicity(w, &args).ok();
        }
    };
    restore("ferrodup", "out-f");
    restore("duplicity", "out-d");
    assert_same_tree(
        &w.join("src"),
        &w.join("out-f"),
        "ferrodup restore via multi://",
    );
    assert_same_tree(
        &w.join("src"),
        &w.join("out-d"),
        "duplicity restore via multi://",
    );

    // duplicity's own hot/cold backup restores with ferrodup.
    let url2 = config(
        w,
        "hot-cold-2.json",
        &hot_cold_json(w)
            .replace("/hot", "/hot2")
            .replace("/cold", "/cold2"),
        "mode=mirror&onfail=abort",
    );
    let args = with(
        &["full", "--no-encryption", "--archive-dir", "dcache"],
        &PREFIXES,
        &["src", &url2],
    );
    duplicity(w, &args).ok();
    assert!(files(&w.join("hot2")).iter().all(|n| n.starts_with("hot_")));
    assert!(files(&w.join("cold2"))
        .iter()
        .all(|n| n.starts_with("cold_")));
    let args = with(
        &["restore", "--no-encryption", "--archive-dir", "fcache"],
        &PREFIXES,
        &[&url2, "out-from-dup"],
    );
    ferrodup(w, &args).ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("out-from-dup"),
        "restore of duplicity's multi backup",
    );
    let status = ferrodup(
        w,
        &with(
            &[
                "collection-status",
                "--no-encryption",
                "--archive-dir",
                "fcache",
            ],
            &PREFIXES,
            &[&url2],
        ),
    )
    .ok();
    assert!(status.stdout().contains("Full"), "{}", status.stdout());
}

#[test]
fn stripe_spreads_files_and_mirror_survives_a_lost_store() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_fixture_tree(&w.join("src"), 1, true);
    let json = format!(
        r#"[{{"url": "file://{}"}}, {{"url": "file://{}"}}]"#,
        w.join("s1").display(),
        w.join("s2").display()
    );
    let stripe = config(w, "two.json", &json, "");
    ferrodup(
        w,
        &[
            "full",
            "--no-encryption",
            "--volsize",
            "1",
            "--archive-dir",
            "c1",
            "src",
            &stripe,
        ],
    )
    .ok();
    let (s1, s2) = (files(&w.join("s1")), files(&w.join("s2")));
    assert!(
        !s1.is_empty() && !s2.is_empty(),
        "stripe uses both stores: {s1:?} {s2:?}"
    );
    assert!(
        s1.iter().all(|n| !s2.contains(n)),
        "each file in one store only"
    );
    for (tool, dest) in [("ferrodup", "stripe-f"), ("duplicity", "stripe-d")] {
        let args = [
            "restore",
            "--no-encryption",
            "--archive-dir",
            "rc",
            &stripe,
            dest,
        ];
        if tool == "ferrodup" {
            ferrodup(w, &args).ok();
        } else {
            duplicity(w, &args).ok();
        }
        assert_same_tree(
            &w.join("src"),
            &w.join(dest),
            &format!("{tool} restore of a stripe"),
        );
    }

    let json = json.replace("/s1", "/m1").replace("/s2", "/m2");
    let mirror = config(w, "mirror.json", &json, "mode=mirror");
    ferrodup(
        w,
        &[
            "full",
            "--no-encryption",
            "--volsize",
            "1",
            "--archive-dir",
            "c2",
            "src",
            &mirror,
        ],
    )
    .ok();
    assert_eq!(
        files(&w.join("m1")),
        files(&w.join("m2")),
        "mirror writes every store"
    );
    std::fs::remove_dir_all(w.join("m1")).unwrap();
    ferrodup(
        w,
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "c3",
            &mirror,
            "mirror-out",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("mirror-out"),
        "restore from the surviving store",
    );
}

#[test]
fn onfail_abort_stops_and_continue_goes_on() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_fixture_tree(&w.join("src"), 1, false);
    std::fs::write(w.join("not-a-dir"), "x").unwrap();
    let json = format!(
        r#"[{{"url": "file://{}"}}, {{"url": "file://{}/sub", "description": "broken"}}]"#,
        w.join("good").display(),
        w.join("not-a-dir").display()
    );
    let abort = config(w, "abort.json", &json, "mode=mirror&onfail=abort");
    let r = ferrodup(
        w,
        &[
            "full",
            "--no-encryption",
            "--num-retries",
            "1",
            "--archive-dir",
            "c1",
            "src",
            &abort,
        ],
    );
    assert_ne!(r.code(), 0, "a failing store aborts: {}", r.stderr());
    let err = r.stderr();
    assert!(
        err.contains("broken") && err.contains("onfail=abort"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("ferrodup: ")).count(),
        1,
        "{err}"
    );
    assert!(
        !files(&w.join("good"))
            .iter()
            .any(|n| n.contains("manifest") && !n.ends_with(".part")),
        "an aborted backup has no manifest"
    );

    let cont = config(
        w,
        "continue.json",
        &json.replace("/good", "/good2"),
        "mode=mirror&onfail=continue",
    );
    let r = ferrodup(
        w,
        &[
            "full",
            "--no-encryption",
            "--num-retries",
            "1",
            "--archive-dir",
            "c2",
            "src",
            &cont,
        ],
    )
    .ok();
    assert!(
        r.stderr().contains("broken"),
        "the failing store is named: {}",
        r.stderr()
    );
    ferrodup(
        w,
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "c3",
            &cont,
            "out",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("out"),
        "restore after onfail=continue",
    );
}

#[test]
fn bad_configs_get_one_clear_error() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::create_dir(w.join("src")).unwrap();
    let ok_store = format!("file://{}", w.join("t").display());
    let cases: Vec<(String, &str, &str)> = vec![
        (
            config(w, "a.json", "[{\"url\": ", ""),
            "a.json",
            "not a valid store list",
        ),
        (
            config(
                w,
                "b.json",
                &format!("[{{\"url\": \"{ok_store}\", \"prefix\": [\"x\"]}}]"),
                "mode=mirror",
            ),
            "b.json",
            "prefix",
        ),
        (
            config(w, "c.json", "[{\"prefixes\": []}]", ""),
            "c.json",
            "url",
        ),
        (
            config(
                w,
                "d.json",
                &format!("[{{\"url\": \"{ok_store}\", \"prefixes\": [\"x\"]}}]"),
                "",
            ),
            "d.json",
            "mode=mirror",
        ),
        (
            config(
                w,
                "e.json",
                &format!("[{{\"url\": \"{ok_store}\"}}]"),
                "mode=mirrror",
            ),
            "mirrror",
            "mode",
        ),
        (
            config(
                w,
                "f.json",
                &format!("[{{\"url\": \"{ok_store}\"}}]"),
                "mode=mirror&mode=stripe",
            ),
            "mode",
            "twice",
        ),
        (
            config(
                w,
                "g.json",
                &format!("[{{\"url\": \"{ok_store}\"}}]"),
                "onfail=maybe",
            ),
            "maybe",
            "onfail",
        ),
        (
            config(w, "h.json", "[{\"url\": \"ftp://x\"}]", ""),
            "ftp",
            "scheme",
        ),
        (config(w, "i.json", "[]", ""), "i.json", "no stores"),
        (
            format!("multi://{}/missing.json", w.display()),
            "missing.json",
            "cannot read",
        ),
    ];
    for (url, w1, w2) in cases {
        let r = ferrodup(
            w,
            &["full", "--no-encryption", "--archive-dir", "c", "src", &url],
        );
        let err = r.stderr();
        assert_eq!(r.code(), 23, "{url}: {err}");
        assert_eq!(err.lines().count(), 1, "{url}: one line: {err}");
        assert!(err.contains(w1) && err.contains(w2), "{url}: {err}");
    }
    assert!(!w.join("t").exists(), "nothing written");
}

/// `check --repair` on a mirror: a volume deleted from one store, another truncated on the
/// other store, and a manifest deleted are found by `check` (exit status 1), copied back
/// from the store with the good copy (its SHA1 checked), and then `check` finds nothing and
/// each store alone restores the backup. Without a mirror, `--repair` is refused.
#[test]
fn check_repair_mends_each_store_of_a_mirror_from_the_other() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_fixture_tree(&w.join("src"), 1, true);
    let json = format!(
        r#"[{{"url": "file://{}", "description": "first"}},
            {{"url": "file://{}", "description": "second"}}]"#,
        w.join("m1").display(),
        w.join("m2").display()
    );
    let mirror = config(w, "mirror.json", &json, "mode=mirror");
    let base = ["--no-encryption", "--archive-dir", "c"];
    ferrodup(
        w,
        &with(&base, &["full", "--volsize", "1", "src"], &[&mirror]),
    )
    .ok();
    let stored = files(&w.join("m1"));
    let volumes: Vec<&String> = stored.iter().filter(|n| n.contains(".difftar")).collect();
    assert!(volumes.len() >= 3, "{stored:?}");
    let manifest = stored.iter().find(|n| n.contains(".manifest")).unwrap();
    std::fs::remove_file(w.join("m1").join(volumes[0])).unwrap();
    std::fs::remove_file(w.join("m1").join(manifest)).unwrap();
    let cut = w.join("m2").join(volumes[1]);
    let len = std::fs::metadata(&cut).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let r = ferrodup(w, &with(&base, &["check"], &[&mirror]));
    assert_eq!(r.code(), 1, "{}", r.stderr());
    let said = r.stderr();
    for problem in [
        format!("{} is missing from first (", volumes[0]),
        format!("{manifest} is missing from first ("),
        format!("{}/m2) has {} bytes", w.display(), len / 2),
    ] {
        assert!(said.contains(&problem), "{problem}: {said}");
    }
    // A dry run says what it would copy and copies nothing.
    let dry = ferrodup(
        w,
        &with(&base, &["check", "--repair", "--dry-run"], &[&mirror]),
    );
    assert!(
        dry.stderr()
            .contains(&format!("{} would be copied from second (", volumes[0])),
        "{}",
        dry.stderr()
    );
    assert!(!w.join("m1").join(volumes[0]).exists());

    let r = ferrodup(w, &with(&base, &["check", "--repair"], &[&mirror])).ok();
    let said = r.stderr();
    assert!(
        said.contains("3 problem(s) found, 3 file(s) repaired"),
        "{said}"
    );
    assert!(
        said.contains(&format!("repaired {} on second (", volumes[1])),
        "{said}"
    );
    assert_eq!(files(&w.join("m1")), files(&w.join("m2")));
    for n in &stored {
        assert_eq!(
            std::fs::read(w.join("m1").join(n)).unwrap(),
            std::fs::read(w.join("m2").join(n)).unwrap(),
            "{n}"
        );
    }
    let r = ferrodup(w, &with(&base, &["check"], &[&mirror])).ok();
    assert!(r.stderr().contains("0 problem(s) found"), "{}", r.stderr());
    for store in ["m1", "m2"] {
        let url = format!("file://{}", w.join(store).display());
        let out = format!("{store}-out");
        let cache = format!("{store}-cache");
        ferrodup(
            w,
            &[
                "restore",
                "--no-encryption",
                "--archive-dir",
                &cache,
                &url,
                &out,
            ],
        )
        .ok();
        assert_same_tree(&w.join("src"), &w.join(&out), store);
    }

    // --repair needs a mirror.
    let single = format!("file://{}", w.join("m1").display());
    let r = ferrodup(w, &with(&base, &["check", "--repair"], &[&single]));
    assert_fails(&r, 23, &["--repair", "multi://", "mirror"]);
}
