//! collection-status and list-current-files print on stdout what duplicity 3.2.1 prints,
//! line for line: the real duplicity and ferrodup read the same target with archive dirs
//! in the same state, and their standard output must be equal once the archive dir's own
//! name (which differs by construction) is replaced. Both directions: backups made by
//! duplicity and by ferrodup. Also `--file-changed`, `--show-changes-in-set` and
//! `--no-files-changed`.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

const T3: i64 = T2 + 86_400;
const T4: i64 = T3 + 86_400;

/// Environment of every run: a passphrase for the encrypted cases and a time zone.
struct Env<'a> {
    work: &'a Path,
    tz: &'a str,
}

impl Env<'_> {
    fn cmd(&self, prog: &Path) -> Command {
        let mut c = Command::new(prog);
        c.current_dir(self.work)
            .env("HOME", self.work)
            .env("PASSPHRASE", "output-test")
            .env("TZ", self.tz);
        c
    }

    fn duplicity(&self, args: &[&str]) -> Run {
        run(
            self.cmd(&duplicity_bin()).args(args),
            &format!("duplicity {}", args.join(" ")),
        )
    }

    fn ferrodup(&self, args: &[&str]) -> Run {
        run(
            self.cmd(&ferrodup_bin()).args(args),
            &format!("ferrodup {}", args.join(" ")),
        )
    }

    fn backup(&self, tool: &str, kind: &str, t: i64, extra: &[&str]) {
        let t = t.to_string();
        let target = self.url();
        let mut args = vec![kind, "--current-time", &t, "--archive-dir", "wcache"];
        args.extend_from_slice(extra);
        args.extend(["src", target.as_str()]);
        match tool {
            "duplicity" => self.duplicity(&args).ok(),
            _ => self.ferrodup(&args).ok(),
        };
    }

    fn url(&self) -> String {
        format!("file://{}/target", self.work.display())
    }

    /// Runs `args URL` with both tools, each with its own copy of the archive dir `cache`
    /// (`None`: an empty one), and requires the same status and the same stdout (with the
    /// archive dir's name replaced) and stderr. Returns duplicity's stdout.
    fn same(&self, args: &[&str], cache: Option<&str>) -> String {
        let url = self.url();
        let mut outs = Vec::new();
        for (tool, dir) in [("duplicity", "dcache"), ("ferrodup", "fcache")] {
            let dir_path = self.work.join(dir);
            let _ = std::fs::remove_dir_all(&dir_path);
            match cache {
                Some(c) => copy_tree(&self.work.join(c), &dir_path),
                None => std::fs::create_dir(&dir_path).unwrap(),
            }
            let mut full: Vec<&str> = args.to_vec();
            full.extend(["--archive-dir", dir, url.as_str()]);
            let r = match tool {
                "duplicity" => self.duplicity(&full),
                _ => self.ferrodup(&full),
            };
            outs.push((
                r.code(),
                r.stdout().replace(dir, "ARCHIVE"),
                r.stderr(),
                r.what,
            ));
        }
        let (d, f) = (&outs[0], &outs[1]);
        assert_eq!(
            (d.0, &d.2),
            (f.0, &f.2),
            "status and stderr differ:\n{}\n{}\nstdout:\n{}",
            d.3,
            f.3,
            f.1
        );
        let (dl, fl): (Vec<&str>, Vec<&str>) = (d.1.lines().collect(), f.1.lines().collect());
        for (i, (a, b)) in dl.iter().zip(&fl).enumerate() {
            assert_eq!(
                a,
                b,
                "line {} differs:\n--- {}\n{}\n--- {}\n{}",
                i + 1,
                d.3,
                d.1,
                f.3,
                f.1
            );
        }
        assert_eq!(
            dl.len(),
            fl.len(),
            "--- {}\n{}\n--- {}\n{}",
            d.3,
            d.1,
            f.3,
            f.1
        );
        d.1.clone()
    }
}

fn setup(work: &Path) {
    let src = work.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a"), "a").unwrap();
    std::fs::write(src.join("sub/b c"), "b").unwrap();
    std::fs::write(src.join("sub/it's"), "q").unwrap();
    std::os::unix::fs::symlink("a", src.join("link")).unwrap();
}

/// Rewrites `path` with `data` and moves its mtime `ahead` seconds past the old one: the
/// backups of these tests run within a second or two, and a rewrite within the same
/// second as the last backup is invisible to duplicity (and to ferrodup reading
/// duplicity's signatures).
fn rewrite(path: &Path, data: &str, ahead: u64) {
    let old = std::fs::metadata(path).unwrap().modified().unwrap();
    std::fs::write(path, data).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(old + std::time::Duration::from_secs(ahead))
        .unwrap();
}

/// State 2: `a` changed, `sub/b c` deleted, `n` new.
fn edit2(work: &Path) {
    let src = work.join("src");
    rewrite(&src.join("a"), "a2", 60);
    std::fs::remove_file(src.join("sub/b c")).unwrap();
    std::fs::write(src.join("n"), "new").unwrap();
}

/// State 3: `sub/it's` changed.
fn edit3(work: &Path) {
    rewrite(&work.join("src/sub/it's"), "q3", 120);
}

/// A chain made by `tool` (full, two incrementals), shown by both: the report, the
/// listings (with an empty archive dir, then a synced one, at two times), and the changes.
fn chain_shown_by_both(tool: &str, extra: &[&str], tz: &str) {
    let work = tempfile::tempdir().unwrap();
    let env = Env {
        work: work.path(),
        tz,
    };
    setup(work.path());
    env.backup(tool, "full", T1, extra);
    edit2(work.path());
    env.backup(tool, "incremental", T2, extra);
    edit3(work.path());
    env.backup(tool, "incremental", T3, extra);

    let st = env.same(&[&["collection-status"], extra].concat(), None);
    assert!(st.contains("Number of contained backup sets: 3"), "{st}");
    let ls = env.same(&[&["list-current-files"], extra].concat(), None);
    assert!(ls.contains("Copying "), "{ls}");
    assert!(ls.contains(" n\n") && !ls.contains("b c"), "{ls}");
    let t2 = T2.to_string();
    let ls = env.same(
        &[&["list-current-files", "-t", &t2], extra].concat(),
        Some("wcache"),
    );
    assert!(ls.contains("no sync needed"), "{ls}");
    let fc = env.same(
        &[&["collection-status", "--file-changed", "sub/b c"], extra].concat(),
        Some("wcache"),
    );
    assert!(fc.contains("Total number of backup: 2"), "{fc}");
    let fc = env.same(
        &[&["collection-status", "--file-changed", "sub/it's"], extra].concat(),
        Some("wcache"),
    );
    // duplicity escapes only spaces in the path it looks for, so a name the manifest
    // quotes for another character is never found.
    assert!(fc.contains("Total number of backup: 0"), "{fc}");
    for n in ["0", "-1"] {
        let sc = env.same(
            &[&["collection-status", "--show-changes-in-set", n], extra].concat(),
            Some("wcache"),
        );
        assert!(sc.contains("Total number of changes: "), "{sc}");
    }
}

#[test]
fn duplicity_chain_shown_alike_with_prefixes_per_kind() {
    chain_shown_by_both(
        "duplicity",
        &[
            "--no-encryption",
            "--file-prefix-archive",
            "a-",
            "--file-prefix-manifest",
            "m-",
            "--file-prefix-signature",
            "s-",
        ],
        "UTC",
    );
}

#[test]
fn ferrodup_chain_shown_alike_encrypted_with_prefix_in_another_time_zone() {
    chain_shown_by_both("ferrodup", &["--file-prefix", "pre-"], "Asia/Kolkata");
}

#[test]
fn empty_target_and_two_chains() {
    let work = tempfile::tempdir().unwrap();
    let env = Env {
        work: work.path(),
        tz: "America/New_York",
    };
    std::fs::create_dir(work.path().join("target")).unwrap();
    let st = env.same(&["collection-status", "--no-encryption"], None);
    assert!(st.contains("Last full backup date: none"), "{st}");
    setup(work.path());
    env.backup("ferrodup", "full", T1, &["--no-encryption"]);
    edit2(work.path());
    env.backup("duplicity", "incremental", T2, &["--no-encryption"]);
    env.backup("duplicity", "full", T3, &["--no-encryption"]);
    edit3(work.path());
    env.backup("ferrodup", "incremental", T4, &["--no-encryption"]);
    let st = env.same(&["collection-status", "--no-encryption"], None);
    assert!(st.contains("Secondary chain 1 of 1:"), "{st}");
    // With an empty archive dir, only the listed chain's metadata is fetched.
    let t2 = T2.to_string();
    for t in [&["-t", t2.as_str()][..], &[]] {
        let ls = env.same(
            &[&["list-current-files", "--no-encryption"], t].concat(),
            None,
        );
        assert_eq!(ls.matches("Copying ").count(), 4, "{ls}");
    }
    let sc = env.same(
        &[
            "collection-status",
            "--no-encryption",
            "--show-changes-in-set",
            "0",
        ],
        Some("wcache"),
    );
    assert!(sc.contains("sub/it\\x27s"), "{sc}");
    // Listings before the first backup use the oldest chain, with duplicity's warning.
    let early = (T1 - 86_400).to_string();
    let ls = env.same(
        &["list-current-files", "--no-encryption", "-t", &early],
        Some("wcache"),
    );
    assert!(ls.contains("Using oldest available chain"), "{ls}");
}

/// An interrupted incremental (no manifest, no signature) and one without its signature
/// are discarded with duplicity's warning; a stray new-signature file is named as
/// orphaned; with no signature matching the latest chain, no primary chain is shown.
#[test]
fn incomplete_sets_and_orphaned_signatures() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let env = Env { work: w, tz: "UTC" };
    setup(w);
    env.backup("duplicity", "full", T1, &["--no-encryption"]);
    edit2(w);
    env.backup("ferrodup", "incremental", T2, &["--no-encryption"]);
    edit3(w);
    env.backup("duplicity", "incremental", T3, &["--no-encryption"]);
    let target = w.join("target");
    let inc3 = format!("duplicity-inc.{}.to.{}", time_name(T2), time_name(T3));
    let sig3 = format!(
        "duplicity-new-signatures.{}.to.{}.sigtar.gz",
        time_name(T2),
        time_name(T3)
    );
    // Interrupted: the third set has its volume only.
    std::fs::rename(target.join(&sig3), w.join("sig3")).unwrap();
    std::fs::rename(target.join(format!("{inc3}.manifest")), w.join("man3")).unwrap();
    let st = env.same(&["collection-status", "--no-encryption"], None);
    assert!(st.contains("discarding last backup set"), "{st}");
    // Counted twice: without a manifest, and discarded.
    assert!(st.contains("and 2 incomplete backup set(s)."), "{st}");
    // A signature without its set, the latest set's signature being present again.
    std::fs::rename(w.join("man3"), target.join(format!("{inc3}.manifest"))).unwrap();
    std::fs::rename(w.join("sig3"), target.join(&sig3)).unwrap();
    let stray = format!(
        "duplicity-new-signatures.{}.to.{}.sigtar.gz",
        time_name(T4),
        time_name(T4 + 60)
    );
    std::fs::copy(target.join(&sig3), target.join(&stray)).unwrap();
    let st = env.same(&["collection-status", "--no-encryption"], None);
    assert!(st.contains("remote orphaned signature file(s):\n"), "{st}");
    let ls = env.same(&["list-current-files", "--no-encryption"], None);
    // Warned before and after the sync, which does not fetch it (not in the chain listed).
    assert_eq!(
        ls.matches("remote orphaned signature file(s):\n").count(),
        2,
        "{ls}"
    );
    assert!(!ls.contains("local orphaned"), "{ls}");
    std::fs::remove_file(target.join(&stray)).unwrap();
    // The latest set without its signature: it is discarded.
    std::fs::remove_file(target.join(&sig3)).unwrap();
    let st = env.same(&["collection-status", "--no-encryption"], None);
    assert!(st.contains("discarding last backup set"), "{st}");
    assert!(st.contains("and 1 incomplete backup set(s)."), "{st}");
    // Without the one before either, no chain matches the signatures.
    let sig2 = format!(
        "duplicity-new-signatures.{}.to.{}.sigtar.gz",
        time_name(T1),
        time_name(T2)
    );
    std::fs::remove_file(target.join(&sig2)).unwrap();
    let st = env.same(&["collection-status", "--no-encryption"], None);
    assert!(
        st.contains("found signatures but no corresponding backup files"),
        "{st}"
    );
    assert!(
        st.contains("No backup chains with active signatures found"),
        "{st}"
    );
}

/// `--no-files-changed` leaves the manifest's change list empty, as duplicity does; the
/// last of `--files-changed`/`--no-files-changed` wins.
#[test]
fn no_files_changed_leaves_the_list_empty() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let env = Env { work: w, tz: "UTC" };
    setup(w);
    env.backup(
        "ferrodup",
        "full",
        T1,
        &["--no-encryption", "--files-changed", "--no-files-changed"],
    );
    let man = std::fs::read_to_string(
        w.join("target")
            .join(format!("duplicity-full.{}.manifest", time_name(T1))),
    )
    .unwrap();
    assert!(man.ends_with("Filelist 0\n"), "{man}");
    // duplicity writes the same.
    let other = format!("file://{}/dtarget", w.display());
    let t1 = T1.to_string();
    env.duplicity(&[
        "full",
        "--no-encryption",
        "--no-files-changed",
        "--current-time",
        &t1,
        "--archive-dir",
        "dc2",
        "src",
        &other,
    ])
    .ok();
    let dman = std::fs::read_to_string(
        w.join("dtarget")
            .join(format!("duplicity-full.{}.manifest", time_name(T1))),
    )
    .unwrap();
    assert!(dman.ends_with("Filelist 0\n"), "{dman}");
    edit2(w);
    env.backup(
        "ferrodup",
        "incremental",
        T2,
        &["--no-encryption", "--no-files-changed", "--files-changed"],
    );
    let sc = env.same(
        &[
            "collection-status",
            "--no-encryption",
            "--show-changes-in-set",
            "1",
        ],
        Some("wcache"),
    );
    assert!(sc.contains("Total number of changes: 0"), "{sc}");
    let sc = env.same(
        &[
            "collection-status",
            "--no-encryption",
            "--show-changes-in-set",
            "0",
        ],
        Some("wcache"),
    );
    assert!(sc.contains("Total number of changes: 3"), "{sc}");
}

/// `YYYYMMDDTHHMMSSZ`, as in file names.
fn time_name(t: i64) -> String {
    ferrodup::format::time::to_string(t)
}
