//! Bad input gets one clear error line, a documented non-zero exit status and no panic.

mod common;

use common::*;
use std::path::Path;

/// A two-set chain with three full volumes, in a fresh work dir.
fn chain() -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let url = format!("file://{}/target", w.display());
    for (state, kind, t) in [(1, "full", T1), (2, "incremental", T2)] {
        if state > 1 {
            std::fs::remove_dir_all(w.join("src")).unwrap();
        }
        make_fixture_tree(&w.join("src"), state, true);
        let t = t.to_string();
        ferrodup(
            w,
            &[
                kind,
                "--no-encryption",
                "--volsize",
                "1",
                "--current-time",
                &t,
                "--archive-dir",
                "cache",
                "--name",
                "n",
                "src",
                &url,
            ],
        )
        .ok();
    }
    work
}

fn restore(w: &Path, extra: &[&str]) -> Run {
    let url = format!("file://{}/target", w.display());
    let mut args = vec!["restore", "--archive-dir", "rcache", "--num-retries", "1"];
    args.extend_from_slice(extra);
    args.push(&url);
    args.push("out");
    ferrodup(w, &args)
}

const VOL2: &str = "target/duplicity-full.20240101T120000Z.vol2.difftar.gz";

#[test]
fn missing_volume() {
    let work = chain();
    std::fs::remove_file(work.path().join(VOL2)).unwrap();
    assert_fails(&restore(work.path(), &[]), 1, &["volume 2", "missing"]);
}

#[test]
fn truncated_volume() {
    let work = chain();
    let p = work.path().join(VOL2);
    let data = std::fs::read(&p).unwrap();
    std::fs::write(&p, &data[..data.len() / 2]).unwrap();
    assert_fails(&restore(work.path(), &[]), 21, &["vol2.difftar.gz", "SHA1"]);
}

#[test]
fn corrupted_volume_fails_its_hash() {
    let work = chain();
    let p = work.path().join(VOL2);
    let mut data = std::fs::read(&p).unwrap();
    data[5000] ^= 0x55;
    std::fs::write(&p, &data).unwrap();
    assert_fails(
        &restore(work.path(), &[]),
        21,
        &["vol2.difftar.gz", "corrupt"],
    );
}

#[test]
fn corrupted_volume_with_matching_hash_is_still_caught() {
    let work = chain();
    let w = work.path();
    let p = w.join(VOL2);
    let mut data = std::fs::read(&p).unwrap();
    data[5000] ^= 0x55;
    std::fs::write(&p, &data).unwrap();
    // Forge the manifest so the hash matches: the gzip and tar checks must still object.
    use sha1::{Digest, Sha1};
    let hex: String = Sha1::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let man = w.join("target/duplicity-full.20240101T120000Z.manifest");
    let text = std::fs::read_to_string(&man).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let at = lines.iter().position(|l| l == "Volume 2:").unwrap();
    lines[at + 3] = format!("    Hash SHA1 {hex}");
    std::fs::write(&man, lines.join("\n") + "\n").unwrap();
    assert_fails(&restore(w, &[]), 30, &["vol2.difftar.gz"]);
}

#[test]
fn missing_full_manifest_means_no_backup() {
    let work = chain();
    let w = work.path();
    std::fs::remove_file(w.join("target/duplicity-full.20240101T120000Z.manifest")).unwrap();
    assert_fails(&restore(w, &[]), 30, &["no backup found"]);
}

#[test]
fn corrupt_manifest() {
    let work = chain();
    let w = work.path();
    std::fs::write(
        w.join("target/duplicity-full.20240101T120000Z.manifest"),
        "Volume x:\nnonsense\n",
    )
    .unwrap();
    assert_fails(&restore(w, &[]), 30, &["manifest", "corrupt"]);
}

#[test]
fn corrupt_signature_file() {
    let work = chain();
    let w = work.path();
    let sig =
        w.join("cache/n/duplicity-new-signatures.20240101T120000Z.to.20240102T120000Z.sigtar.gz");
    let data = std::fs::read(&sig).unwrap();
    std::fs::write(&sig, &data[..data.len() / 3]).unwrap();
    let url = format!("file://{}/target", w.display());
    let r = ferrodup(
        w,
        &[
            "incremental",
            "--no-encryption",
            "--archive-dir",
            "cache",
            "--name",
            "n",
            "--current-time",
            &(T2 + 100).to_string(),
            "src",
            &url,
        ],
    );
    assert_fails(&r, 30, &["new-signatures", "corrupt"]);
}

#[test]
fn target_without_backup() {
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("target")).unwrap();
    assert_fails(&restore(work.path(), &[]), 30, &["no backup found"]);
}

#[test]
fn source_is_not_a_directory() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // A regular file is a valid source (as in duplicity); a socket is not.
    let _sock = std::os::unix::net::UnixListener::bind(w.join("sock")).unwrap();
    let url = format!("file://{}/target", w.display());
    let r = ferrodup(
        w,
        &[
            "full",
            "--no-encryption",
            "--archive-dir",
            "c",
            "sock",
            &url,
        ],
    );
    assert_fails(&r, 23, &["sock", "not a directory nor a regular file"]);
    let r = ferrodup(
        w,
        &[
            "full",
            "--no-encryption",
            "--archive-dir",
            "c",
            "nowhere",
            &url,
        ],
    );
    assert_fails(&r, 23, &["nowhere"]);
}

#[test]
fn destination_exists_without_force() {
    let work = chain();
    let w = work.path();
    // An empty directory is accepted, as by duplicity.
    std::fs::create_dir(w.join("out")).unwrap();
    restore(w, &[]).ok();
    assert_same_tree(&w.join("src"), &w.join("out"), "restore into an empty dir");
    std::fs::remove_dir_all(w.join("out")).unwrap();
    std::fs::create_dir(w.join("out")).unwrap();
    std::fs::write(w.join("out/stray"), "x").unwrap();
    assert_fails(&restore(w, &[]), 11, &["out", "--force"]);
    std::fs::remove_file(w.join("out/stray")).unwrap();
    restore(w, &["--force"]).ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("out"),
        "restore --force into an existing dir",
    );
}

#[test]
fn unknown_scheme_and_bad_options() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let r = ferrodup(w, &["restore", "gopher://x/y", "out"]);
    assert_fails(&r, 23, &["gopher"]);
    let r = ferrodup(
        w,
        &[
            "restore",
            "-t",
            "yesterday-ish",
            "file:///nonexistent",
            "out",
        ],
    );
    assert_fails(&r, 23, &["--time"]);
    let r = ferrodup(w, &["full", "src"]);
    assert_fails(&r, 23, &["usage"]);
}

#[test]
fn encryption_without_passphrase_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::create_dir(w.join("src")).unwrap();
    let target = format!("file://{}/never-written", w.display());
    let r = ferrodup(w, &["full", "src", &target]);
    assert_fails(&r, 23, &["PASSPHRASE"]);
    assert!(!w.join("never-written").exists());
}

#[test]
fn restore_path_not_in_backup() {
    let work = chain();
    assert_fails(
        &restore(work.path(), &["-r", "no/such/path"]),
        19,
        &["no/such/path", "not found"],
    );
}

#[test]
fn unwritable_target_fails_fast() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::create_dir(w.join("src")).unwrap();
    std::fs::write(w.join("src/a"), "a").unwrap();
    std::fs::write(
        w.join("blocker"),
        "a file where the target folder should be",
    )
    .unwrap();
    let target = format!("file://{}/blocker/target", w.display());
    let started = std::time::Instant::now();
    let r = ferrodup(
        w,
        &[
            "full",
            "--no-encryption",
            "--archive-dir",
            "c",
            "src",
            &target,
        ],
    );
    assert_fails(&r, 50, &["blocker"]);
    assert!(
        started.elapsed().as_secs() < 20,
        "local errors must not be retried"
    );
}

#[test]
fn ignore_errors_skips_a_bad_volume_and_says_so() {
    let work = chain();
    let w = work.path();
    let p = w.join(VOL2);
    let mut data = std::fs::read(&p).unwrap();
    data[5000] ^= 0x55;
    std::fs::write(&p, &data).unwrap();
    let r = restore(w, &["--ignore-errors"]).ok();
    assert!(
        r.stderr().contains("vol2.difftar.gz") && r.stderr().contains("skipping"),
        "{}",
        r.stderr()
    );
    // Files outside the bad volume come back intact.
    for f in [
        "hello.txt",
        "sub/deeper/file with spaces.txt",
        "to-be-deleted.txt",
    ] {
        let want = w.join("src").join(f);
        if want.exists() {
            assert_eq!(
                std::fs::read(w.join("out").join(f)).unwrap(),
                std::fs::read(want).unwrap(),
                "{f}"
            );
        }
    }
}

#[test]
fn verify_needs_an_existing_directory() {
    let work = chain();
    let w = work.path();
    let url = format!("file://{}/target", w.display());
    let r = ferrodup(w, &["verify", "--archive-dir", "v", &url, "no-such-dir"]);
    assert_fails(&r, 23, &["no-such-dir", "does not exist"]);
}

#[test]
fn selection_options_the_command_cannot_use() {
    let work = chain();
    let w = work.path();
    let url = format!("file://{}/target", w.display());
    let r = restore(w, &["--path-to-restore", "a", "--exclude", "b"]);
    assert_fails(&r, 23, &["--path-to-restore", "selection"]);
    assert!(!w.join("out").exists());
    let r = restore(w, &["--exclude-if-present", ".nobackup"]);
    assert_fails(&r, 23, &["--exclude-if-present", "restore"]);
    let list = |extra: &[&str]| {
        let mut a = vec![
            "list-current-files",
            "--no-encryption",
            "--archive-dir",
            "cache",
            "--name",
            "n",
        ];
        a.extend_from_slice(extra);
        a.push(&url);
        ferrodup(w, &a)
    };
    let r = list(&["--files-from", "x"]);
    assert_fails(&r, 23, &["--files-from", "list-current-files"]);
    let r = list(&["--exclude-regexp", "a(?=b)"]);
    assert_fails(&r, 30, &["--exclude-regexp", "look-around"]);
    let r = restore(w, &["--include", "nothing-like-this", "--exclude", "**"]);
    assert_fails(&r, 23, &["selection", "nothing restored"]);
}

/// A mistyped command is not taken as a backup of a folder of that name when nothing of
/// that name exists: the error names the command it looks like (`help` with what is no
/// help topic points to the topics and `--help`); a folder that does exist under such a name is backed up as before.
#[test]
fn mistyped_commands_get_a_suggestion() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let url = format!("file://{}/target", w.display());
    for (args, words) in [
        (
            vec!["colection-status", url.as_str()],
            vec!["\"colection-status\"", "did you mean collection-status?"],
        ),
        (
            vec!["restor", url.as_str(), "out"],
            vec!["\"restor\"", "did you mean restore?"],
        ),
        (
            vec!["help", url.as_str()],
            vec!["no help on", "collection-status"],
        ),
        (vec!["help", url.as_str(), "out"], vec!["ferrodup --help"]),
    ] {
        let r = ferrodup(w, &args);
        assert_fails(&r, 23, &words);
    }
    assert!(!w.join("target").exists(), "nothing was backed up");

    std::fs::create_dir(w.join("restor")).unwrap();
    std::fs::write(w.join("restor/f"), "a folder named like a command").unwrap();
    ferrodup(w, &["--no-encryption", "restor", &url]).ok();
    ferrodup(w, &["--no-encryption", "restore", &url, "out"]).ok();
    assert_same_tree(&w.join("restor"), &w.join("out"), "a folder named restor");
}
