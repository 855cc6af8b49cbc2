//! The help as a user meets it: grouped by task, one help per command wherever it is asked
//! for, the URL forms; the man page and the completions list every option; every example
//! the help shows runs as written.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn stdout_of(args: &[&str]) -> String {
    let work = tempfile::tempdir().unwrap();
    ferrodup(work.path(), args).ok().stdout()
}

#[test]
fn help_is_grouped_by_task_and_each_command_has_its_own() {
    let all = stdout_of(&["--help"]);
    for heading in [
        "Backup:",
        "Restore, verify and list:",
        "Selection (",
        "Encryption:",
        "Storage:",
        "Archive dir and file names:",
        "Logging and reports:",
        "General:",
        "Examples:",
        "URL forms:",
        "Environment:",
        "PASSPHRASE_FILE",
        "SWIFT_AUTHURL",
        "PCA_PASSWORD",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        assert!(all.contains(heading), "{heading:?} not in --help:\n{all}");
    }
    assert!(
        !all.contains("\nOptions:"),
        "an option has no group:\n{all}"
    );
    let short = stdout_of(&["-h"]);
    assert!(short.contains("Encryption:") && short.len() < all.len());

    let restore = stdout_of(&["help", "restore"]);
    assert!(restore.contains("Usage: ferrodup [OPTIONS] restore URL DEST"));
    assert!(restore.contains("--path-to-restore") && !restore.contains("--exclude-regexp"));
    for args in [
        &["restore", "--help"][..],
        &["rb", "-h"],
        &["--help-restore"],
        &["--no-encryption", "restore", "file:///x", "out", "--help"],
    ] {
        assert_eq!(stdout_of(args), restore, "ferrodup {args:?}");
    }
    let inc = stdout_of(&["--help-inc"]);
    assert!(inc.contains("incremental SOURCE_DIR URL") && inc.contains("--exclude-regexp"));

    let urls = stdout_of(&["--help-urls"]);
    assert_eq!(stdout_of(&["help", "urls"]), urls);
    for scheme in [
        "file://", "swift://", "pca://", "s3://", "sftp://", "multi://",
    ] {
        assert!(
            urls.contains(scheme),
            "{scheme} not in --help-urls:\n{urls}"
        );
    }

    let work = tempfile::tempdir().unwrap();
    let r = ferrodup(work.path(), &["help", "restroe"]);
    assert_fails(&r, 23, &["no help on \"restroe\"", "restore"]);
}

/// The long options a user can type, from the command-line definition.
fn visible_long_options() -> BTreeSet<String> {
    ferrodup::help::command()
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long().map(String::from))
        .collect()
}

#[test]
fn the_man_page_and_the_completions_list_every_option() {
    let longs = visible_long_options();
    assert!(longs.len() > 100, "{} options", longs.len());

    let man = stdout_of(&["--man-page"]);
    assert!(man.contains(".TH ferrodup 1"), "{man}");
    for section in [
        ".SH SYNOPSIS",
        ".SH COMMANDS",
        ".SH EXAMPLES",
        ".SH ENVIRONMENT",
    ] {
        assert!(man.contains(section), "{section} not in the man page");
    }
    for long in &longs {
        let roff = format!("\\-\\-{}", long.replace('-', "\\-"));
        assert!(man.contains(&roff), "--{long} not in the man page");
    }

    for (shell, form) in [("bash", "--{}"), ("zsh", "--{}"), ("fish", "-l {}")] {
        let script = stdout_of(&["--completion", shell]);
        for long in &longs {
            let want = form.replace("{}", long);
            assert!(
                script.contains(&want),
                "{want} not in the {shell} completion"
            );
        }
    }
    let r = Command::new("bash")
        .arg("-n")
        .arg("-c")
        .arg(stdout_of(&["--completion", "bash"]))
        .output()
        .expect("bash");
    assert!(r.status.success(), "the bash completion does not parse");
}

/// The command examples of `--help` and of each command's help, in order, each joined over
/// its `\` line continuations.
fn help_examples() -> Vec<String> {
    let mut texts = vec![stdout_of(&["--help"])];
    for command in ferrodup::help::command_names() {
        texts.push(stdout_of(&["help", command]));
    }
    let mut examples: Vec<String> = Vec::new();
    for text in texts {
        let block = text
            .split_once("Examples:\n")
            .expect("an Examples: block")
            .1;
        let mut current = String::new();
        for line in block.lines().take_while(|l| l.starts_with("  ")) {
            let line = line.trim();
            if current.is_empty() && !line.starts_with("ferrodup ") {
                continue;
            }
            match line.strip_suffix('\\') {
                Some(part) => current.push_str(part),
                None => {
                    current.push_str(line);
                    if !examples.contains(&current) {
                        examples.push(current.clone());
                    }
                    current.clear();
                }
            }
        }
    }
    examples
}

/// Every example of the help runs as written, against local folders: the absolute paths
/// of the examples (/srv, /mnt, /etc/ferrodup, /tmp/hosts) are moved under a scratch
/// folder, and the hot/cold multi:// config lists two file:// stores with the prefixes
/// the help describes.
#[test]
fn every_help_example_runs_as_written() {
    let examples = help_examples();
    assert_eq!(examples.len(), 17, "{examples:#?}");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let root = w.join("root");
    let src = root.join("srv/data");
    make_fixture_tree(&src, 1, false);
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    for d in [
        "mnt/backups",
        "etc/ferrodup",
        "tmp",
        "hot",
        "cold",
        "bin",
        "home",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(
        root.join("etc/ferrodup/config.json"),
        format!(
            r#"[{{"url": "file://{0}/hot", "description": "hot", "prefixes": ["hot_"]}},
                {{"url": "file://{0}/cold", "description": "cold", "prefixes": ["cold_"]}}]"#,
            root.display()
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink(ferrodup_bin(), root.join("bin/ferrodup")).unwrap();
    let moved = |example: &str| -> String {
        let r = root.display();
        example
            .replace(" /srv/", &format!(" {r}/srv/"))
            .replace("file:///mnt/", &format!("file://{r}/mnt/"))
            .replace("multi:///etc/", &format!("multi://{r}/etc/"))
            .replace(" /tmp/hosts", &format!(" {r}/tmp/hosts"))
    };
    for example in &examples {
        let line = moved(example);
        let path = format!(
            "{}:{}",
            root.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new("bash");
        c.arg("-c")
            .arg(&line)
            .current_dir(w)
            .env("PATH", path)
            .env("HOME", root.join("home"))
            .env_remove("XDG_CACHE_HOME")
            .env("PASSPHRASE", "help examples")
            .stdin(std::process::Stdio::null());
        run(&mut c, example).ok();
    }
    assert_same_tree(&src, &root.join("srv/restored"), "the example restore");
    assert_eq!(
        std::fs::read(root.join("tmp/hosts")).unwrap(),
        b"127.0.0.1 localhost\n",
        "the example restore of one path"
    );
    let names = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let hot = names(&root.join("hot"));
    let cold = names(&root.join("cold"));
    assert!(
        hot.iter()
            .any(|n| n.starts_with("hot_duplicity-full.") && n.contains(".manifest"))
            && hot
                .iter()
                .any(|n| n.starts_with("hot_duplicity-full-signatures.")),
        "hot store: {hot:?}"
    );
    assert!(
        cold.iter()
            .any(|n| n.starts_with("cold_duplicity-full.") && n.contains(".vol1.")),
        "cold store: {cold:?}"
    );
    assert!(
        hot.iter().all(|n| n.starts_with("hot_")) && cold.iter().all(|n| n.starts_with("cold_")),
        "hot: {hot:?}, cold: {cold:?}"
    );
}

/// Command-line errors found while parsing are one `ferrodup:` line too, with clap's tip or
/// the possible values, and status 23 as duplicity's.
#[test]
fn command_line_errors_are_one_line() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    for (args, words) in [
        (
            &["--volsise", "3", "full", "src", "file:///x"][..],
            &["unexpected argument '--volsise'", "--volsize", "--help"][..],
        ),
        (
            &["--volsize", "abc", "full", "src", "file:///x"],
            &["invalid value 'abc'", "--volsize"],
        ),
        (
            &["--completion", "tcsh"],
            &["'tcsh'", "possible values: bash"],
        ),
        (&["restore", "--time"], &["a value is required for '--time"]),
    ] {
        let r = ferrodup(w, args);
        assert_fails(&r, 23, words);
        assert_eq!(r.stderr().lines().count(), 1, "{}", r.stderr());
    }
}
