//! Runs the command examples of README.md's user guide and reference as written, in order,
//! as a reader would type them into one shell, and checks what they did.
//!
//! The examples are the part of README.md between `<!-- examples:start -->` and
//! `<!-- examples:end -->` (everything before the developer sections). Each fenced block
//! there says what it is:
//! - `sh`: run with `bash -euo pipefail`; what it exports (`export -p`) is seen by the
//!   next `sh` blocks, as in one terminal;
//! - `crontab`: a `/etc/cron.d` file: `NAME=value` lines are the environment and each
//!   command (after the five time fields and the user) is run by `/bin/sh -c`, with that
//!   environment only;
//! - `ini`: a systemd unit: each `ExecStart=` line is run by bash, with the unit's
//!   `Environment=` settings only, `LoadCredential=ID:PATH` copied to a credentials
//!   directory that `%d` names, and `CacheDirectory=` created; a unit without
//!   `ExecStart=` (a timer) has nothing to run;
//! - `text` and `json`: output or data, not run.
//!
//! A block that cannot run here is preceded by `<!-- example: skip: REASON -->`; the test
//! prints the reason and requires exactly [`RUN`] commands run and [`SKIPPED`] blocks
//! skipped, so a new example is never left out silently.
//!
//! Every run has a scratch directory `T` as its working directory and `T/home` as `HOME`,
//! `ferrodup` on `PATH` (a link to the binary cargo built), no other environment
//! (so no storage credentials and no `PASSPHRASE` but what the examples set), and no
//! controlling terminal. Before running, these strings of the examples are replaced
//! (all at once, in one pass):
//! - paths: `/srv/`, `/mnt/`, `/tmp/` become `T/srv/`, `T/mnt/`, `T/tmp/`;
//!   `/etc/ferrodup` and `/var/cache/ferrodup` become `T/etc/ferrodup` and
//!   `T/var/cache/ferrodup`; `/home/ann` becomes `T/ann`; `/usr/local/bin/ferrodup`
//!   becomes the linked binary;
//! - OVH Swift and PCA (Keystone v3): the auth URL `https://auth.cloud.ovh.net/v3`, the
//!   user `user-AbCdEf123456`, the password `the-openstack-password`, the project
//!   `1234567890123456` and the region `"GRA"` become those of the loopback Keystone, and
//!   the containers `backups-hot` and `backups-cold` get names no other run used (the cold
//!   one starting with `pca`, which the loopback Swift seals as PCA does);
//! - OVH S3: the endpoint `https://s3.eu-west-par.io.cloud.ovh.net`, the region
//!   `eu-west-par`, the keys `0123456789abcdef0123456789abcdef` and
//!   `fedcba9876543210fedcba9876543210` become those of the loopback S3 server, and the
//!   bucket `ferrodup-archive` a new bucket made for the run.
//!
//! Each of these strings must occur in the guide, and no `ovh.net` address may be left
//! in what runs. The source `/srv/data` is the fixture tree plus `projects/notes.txt`;
//! `/home/ann` is a small home folder for the selection example.

mod common;

use common::services::{service_env, unique};
use common::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Commands the examples run: 12 `sh` blocks, 1 cron line, 2 `ExecStart=` lines.
const RUN: usize = 16;
/// Blocks skipped with a reason: install, systemctl, S3 on AWS.
const SKIPPED: usize = 5;

/// What a fenced block of the guide is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Shell,
    Crontab,
    Unit,
    Shown,
}

struct Block {
    /// 1-based line of the opening fence in README.md.
    line: usize,
    kind: Kind,
    text: String,
    skip: Option<String>,
}

/// The fenced blocks between the markers, with their skip reasons.
fn guide_blocks(readme: &str) -> (String, Vec<Block>) {
    let start = readme
        .find("<!-- examples:start -->")
        .expect("README.md has no <!-- examples:start --> marker");
    let end = readme
        .find("<!-- examples:end -->")
        .expect("README.md has no <!-- examples:end --> marker");
    assert!(start < end, "examples:start comes after examples:end");
    let first_line = readme[..start].lines().count() + 1;
    let guide = &readme[start..end];
    let mut blocks = Vec::new();
    let mut skip: Option<(usize, String)> = None;
    let mut open: Option<Block> = None;
    for (i, l) in guide.lines().enumerate() {
        let line = first_line + i;
        if let Some(b) = open.as_mut() {
            if l == "```" {
                blocks.push(open.take().unwrap());
            } else {
                b.text.push_str(l);
                b.text.push('\n');
            }
            continue;
        }
        if let Some(info) = l.strip_prefix("```") {
            let kind = match info {
                "sh" => Kind::Shell,
                "crontab" => Kind::Crontab,
                "ini" => Kind::Unit,
                "text" | "json" => Kind::Shown,
                other => panic!(
                    "README.md:{line}: a block of the guide must say what it is (sh, crontab, \
                     ini, text or json), not {other:?}"
                ),
            };
            open = Some(Block {
                line,
                kind,
                text: String::new(),
                skip: skip.take().map(|(_, r)| r),
            });
        } else if let Some(reason) = l
            .strip_prefix("<!-- example: skip: ")
            .and_then(|r| r.strip_suffix(" -->"))
        {
            skip = Some((line, reason.to_string()));
        } else if let Some((at, _)) = &skip {
            assert!(
                l.trim().is_empty(),
                "README.md:{at}: a skip marker must come right before the block it skips"
            );
        }
    }
    assert!(
        open.is_none(),
        "README.md: a block of the guide is not closed"
    );
    assert!(skip.is_none(), "README.md: a skip marker ends the guide");
    (guide.to_string(), blocks)
}

/// Replaces every `from` of `subs` in `text` in one pass (a replacement is never replaced
/// again).
fn substitute(text: &str, subs: &[(String, String)]) -> String {
    let alternation: Vec<String> = subs.iter().map(|(f, _)| regex::escape(f)).collect();
    let re = regex::Regex::new(&alternation.join("|")).unwrap();
    let map: HashMap<&str, &str> = subs.iter().map(|(f, t)| (f.as_str(), t.as_str())).collect();
    re.replace_all(text, |c: &regex::Captures| map[&c[0]].to_string())
        .into_owned()
}

/// The scratch area and what every command runs with.
struct Scratch {
    root: PathBuf,
    bin: PathBuf,
    /// Where the `export -p` of the last `sh` block is kept.
    state: PathBuf,
    /// stdout and stderr of every command run, for the checks at the end.
    output: String,
    ran: usize,
}

impl Scratch {
    /// Runs `program args` with only `env` (and PATH, HOME) in the scratch dir, without a
    /// controlling terminal; panics with its output when it fails.
    fn run(&mut self, what: &str, program: &str, args: &[&str], env: &[(String, String)]) {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(program);
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.args(args)
            .current_dir(&self.root)
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.root.join("home"))
            .envs(env.iter().map(|(k, v)| (k, v)));
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            c.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let t = Instant::now();
        let r = run(&mut c, what).ok();
        eprintln!("ran {what} in {:.1} s", t.elapsed().as_secs_f64());
        self.output.push_str(&r.stdout());
        self.output.push_str(&r.stderr());
        self.ran += 1;
    }

    fn shell(&mut self, line: usize, script: &str) {
        let state = self.state.display().to_string();
        let full = format!(
            "if [ -e '{state}' ]; then source '{state}'; fi\n{script}\nexport -p > '{state}'\n"
        );
        self.run(
            &format!("README.md:{line} (sh)"),
            "bash",
            &["-euo", "pipefail", "-c", &full],
            &[],
        );
    }

    fn crontab(&mut self, line: usize, text: &str) {
        let mut env = Vec::new();
        for l in text.lines().map(str::trim) {
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = l.split_once('=').filter(|_| !l.contains(' ')) {
                env.push((k.to_string(), v.to_string()));
                continue;
            }
            // Five time fields and the user, then the command.
            let mut rest = l;
            for _ in 0..6 {
                rest = rest.trim_start();
                rest = &rest[rest.find(char::is_whitespace).expect("a cron line")..];
            }
            self.run(
                &format!("README.md:{line} (cron line)"),
                "/bin/sh",
                &["-c", rest.trim()],
                &env,
            );
        }
    }

    fn unit(&mut self, line: usize, text: &str) {
        let joined = text.replace("\\\n", " ");
        let creds = self.root.join("credentials");
        let mut env = Vec::new();
        let mut commands = Vec::new();
        for l in joined.lines().map(str::trim) {
            let Some((key, value)) = l.split_once('=') else {
                continue;
            };
            let value = value.replace("%d", creds.to_str().unwrap());
            match key {
                "Environment" => {
                    let (k, v) = value.split_once('=').expect("Environment=NAME=value");
                    env.push((k.to_string(), v.to_string()));
                }
                "LoadCredential" => {
                    let (id, path) = value.split_once(':').expect("LoadCredential=ID:PATH");
                    std::fs::create_dir_all(&creds).unwrap();
                    std::fs::copy(path, creds.join(id))
                        .unwrap_or_else(|e| panic!("LoadCredential {path}: {e}"));
                }
                "CacheDirectory" => {
                    std::fs::create_dir_all(self.root.join("var/cache").join(&value)).unwrap()
                }
                "ExecStart" => commands.push(value),
                _ => {}
            }
        }
        for c in commands {
            self.run(
                &format!("README.md:{line} (ExecStart)"),
                "bash",
                &["-c", &c],
                &env,
            );
        }
    }
}

/// Runs a boto3 snippet against the loopback S3 server (`bucket` and a path-style `s3`
/// client are defined); returns what it prints.
fn boto3(s: &HashMap<String, String>, bucket: &str, code: &str) -> String {
    let script = format!(
        "import boto3\nfrom botocore.config import Config\n\
         s3 = boto3.client('s3', endpoint_url='{}', region_name='{}', \
         aws_access_key_id='{}', aws_secret_access_key='{}', \
         config=Config(signature_version='s3v4', s3={{'addressing_style': 'path'}}))\n\
         bucket = '{bucket}'\n{code}\n",
        s["S3_ENDPOINT_URL"], s["AWS_REGION"], s["AWS_ACCESS_KEY_ID"], s["AWS_SECRET_ACCESS_KEY"]
    );
    run(Command::new(&s["S3_PYTHON"]).arg("-c").arg(script), "boto3")
        .ok()
        .stdout()
}

/// Runs python-swiftclient's `swift` as the Keystone v3 test user.
fn swift(s: &HashMap<String, String>, args: &[&str]) -> String {
    let mut c = Command::new("swift");
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(["--auth-version", "3", "--os-auth-url", &s["SWIFT_AUTHURL"]])
        .args(["--os-username", &s["SWIFT_USERNAME"]])
        .args(["--os-password", &s["SWIFT_PASSWORD"]])
        .args(["--os-project-name", &s["SWIFT_TENANTNAME"]])
        .args(["--os-user-domain-name", &s["SWIFT_USER_DOMAIN_NAME"]])
        .args(["--os-project-domain-name", &s["SWIFT_PROJECT_DOMAIN_NAME"]])
        .args(args);
    run(
        &mut c,
        "swift (python-swiftclient; scripts/setup.sh installs it)",
    )
    .ok()
    .stdout()
}

fn names(dir: &Path, part: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(part)
        })
        .count()
}

#[test]
fn readme_examples_run_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let (guide, blocks) = guide_blocks(&readme);

    let swift_env = service_env("swift");
    let s3_env = service_env("s3");
    let work = tempfile::tempdir().unwrap();
    let t = work.path();
    let bin = t.join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(ferrodup_bin(), bin.join("ferrodup")).unwrap();
    for d in ["home", "srv", "mnt", "tmp", "etc", "var/cache"] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    let source = t.join("srv/data");
    make_fixture_tree(&source, 1, false);
    std::fs::create_dir(source.join("projects")).unwrap();
    std::fs::write(source.join("projects/notes.txt"), "notes to keep\n").unwrap();
    let ann = t.join("ann");
    for (file, text) in [
        ("projects/web/index.html", "<p>home</p>\n"),
        ("projects/web/.cache/page.bin", "cached\n"),
        ("projects/old/.nobackup", ""),
        ("projects/old/junk.txt", "junk\n"),
        ("papers/thesis.pdf", "%PDF\n"),
        ("music/song.mp3", "la la\n"),
    ] {
        std::fs::create_dir_all(ann.join(file).parent().unwrap()).unwrap();
        std::fs::write(ann.join(file), text).unwrap();
    }

    let hot = unique("readme-hot");
    let cold = unique("pca-readme-cold");
    let bucket = unique("readme");
    boto3(&s3_env, &bucket, "s3.create_bucket(Bucket=bucket)");
    let root = t.display().to_string();
    let subs: Vec<(String, String)> = [
        ("/srv/", format!("{root}/srv/")),
        ("/mnt/", format!("{root}/mnt/")),
        ("/tmp/", format!("{root}/tmp/")),
        ("/etc/ferrodup", format!("{root}/etc/ferrodup")),
        ("/var/cache/ferrodup", format!("{root}/var/cache/ferrodup")),
        ("/home/ann", format!("{root}/ann")),
        (
            "/usr/local/bin/ferrodup",
            format!("{}/ferrodup", bin.display()),
        ),
        (
            "https://auth.cloud.ovh.net/v3",
            swift_env["SWIFT_AUTHURL"].clone(),
        ),
        ("user-AbCdEf123456", swift_env["SWIFT_USERNAME"].clone()),
        (
            "the-openstack-password",
            swift_env["SWIFT_PASSWORD"].clone(),
        ),
        ("1234567890123456", swift_env["SWIFT_TENANTNAME"].clone()),
        ("\"GRA\"", format!("\"{}\"", swift_env["SWIFT_REGIONNAME"])),
        ("backups-hot", hot.clone()),
        ("backups-cold", cold.clone()),
        (
            "https://s3.eu-west-par.io.cloud.ovh.net",
            s3_env["S3_ENDPOINT_URL"].clone(),
        ),
        ("eu-west-par", s3_env["AWS_REGION"].clone()),
        (
            "0123456789abcdef0123456789abcdef",
            s3_env["AWS_ACCESS_KEY_ID"].clone(),
        ),
        (
            "fedcba9876543210fedcba9876543210",
            s3_env["AWS_SECRET_ACCESS_KEY"].clone(),
        ),
        ("ferrodup-archive", bucket.clone()),
    ]
    .into_iter()
    .map(|(f, to)| (f.to_string(), to))
    .collect();
    for (from, _) in &subs {
        assert!(
            guide.contains(from.as_str()),
            "the guide no longer uses {from:?}: update the substitutions of tests/readme.rs"
        );
    }

    let mut scratch = Scratch {
        root: t.to_path_buf(),
        bin: bin.clone(),
        state: t.join("exports.sh"),
        output: String::new(),
        ran: 0,
    };
    let mut skipped = 0;
    for b in &blocks {
        if let Some(reason) = &b.skip {
            eprintln!("skipped README.md:{}: {reason}", b.line);
            skipped += 1;
            continue;
        }
        let text = substitute(&b.text, &subs);
        assert!(
            b.kind == Kind::Shown || !text.contains("ovh.net"),
            "README.md:{}: an OVH address is left after the substitutions:\n{text}",
            b.line
        );
        match b.kind {
            Kind::Shell => scratch.shell(b.line, &text),
            Kind::Crontab => scratch.crontab(b.line, &text),
            Kind::Unit => scratch.unit(b.line, &text),
            Kind::Shown => {}
        }
    }
    assert_eq!(
        (scratch.ran, skipped),
        (RUN, SKIPPED),
        "commands run and blocks skipped in the guide: update RUN and SKIPPED in \
         tests/readme.rs when the guide's examples change"
    );

    // Quick start and the commands after it.
    assert_same_tree(&source, &t.join("tmp/restored"), "quick start restore");
    assert_eq!(
        std::fs::read_to_string(t.join("tmp/notes.txt")).unwrap(),
        "notes to keep\n"
    );
    // The local target: the quick start's full and incremental, the bare form's
    // incremental and the cron line's.
    let local = t.join("mnt/backups/data");
    assert_eq!(
        names(&local, "duplicity-full."),
        2,
        "a manifest and a volume"
    );
    assert_eq!(names(&local, ".manifest.gpg"), 4, "1 full + 3 incrementals");

    // Selection: only the web project comes back, without its cache.
    let web = t.join("tmp/web");
    assert_eq!(
        std::fs::read_to_string(web.join("projects/web/index.html")).unwrap(),
        "<p>home</p>\n"
    );
    for left_out in ["projects/web/.cache", "projects/old", "papers", "music"] {
        assert!(!web.join(left_out).exists(), "{left_out} restored");
    }
    // The local multi:// example: names routed by prefix.
    let fast = std::fs::read_dir(t.join("mnt/fast/backups")).unwrap();
    let archive = std::fs::read_dir(t.join("mnt/archive/backups")).unwrap();
    for (dir, prefix) in [(fast, "hot_"), (archive, "cold_")] {
        let names: Vec<String> = dir
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.is_empty() && names.iter().all(|n| n.starts_with(prefix)),
            "the {prefix} store holds {names:?}"
        );
    }

    // OVH hot/cold: the split by prefix, the PCA policy, the unsealing, the restore.
    assert_same_tree(
        &source,
        &t.join("tmp/restored-ovh"),
        "restore from Swift + PCA",
    );
    let hot_names = swift(&swift_env, &["list", &hot]);
    let cold_names = swift(&swift_env, &["list", &cold]);
    assert!(
        hot_names.lines().all(|n| n.starts_with("hot_"))
            && !hot_names.contains(".difftar")
            && hot_names.contains("signatures"),
        "hot store: {hot_names}"
    );
    // The full, the incremental and the systemd service's backup.
    assert_eq!(
        hot_names.matches(".manifest.gpg").count(),
        3,
        "hot store: {hot_names}"
    );
    assert!(
        !cold_names.is_empty()
            && cold_names
                .lines()
                .all(|n| n.starts_with("cold_") && n.contains(".difftar")),
        "cold store: {cold_names}"
    );
    assert!(
        swift(&swift_env, &["stat", &cold]).contains("PCA"),
        "the cold container has the PCA policy"
    );
    assert!(
        scratch
            .output
            .contains(&format!("asked pca://{cold} to unseal"))
            && scratch.output.contains("is unsealed and downloaded"),
        "the restore unsealed the cold volumes:\n{}",
        scratch.output
    );

    // S3 with archived volumes.
    assert_same_tree(&source, &t.join("tmp/restored-s3"), "restore from S3");
    let classes = boto3(
        &s3_env,
        &bucket,
        "for o in s3.list_objects_v2(Bucket=bucket)['Contents']:\n    \
         print(o['Key'], o.get('StorageClass', 'STANDARD'))",
    );
    for l in classes.lines() {
        let want = if l.contains(".difftar") {
            " DEEP_ARCHIVE"
        } else {
            " STANDARD"
        };
        assert!(
            l.ends_with(want),
            "{l}: volumes archived, metadata readable"
        );
    }
    assert!(
        scratch
            .output
            .contains("archived file(s) (Standard tier, 2 day(s))")
            && scratch.output.contains("is restored and downloaded"),
        "the restore had S3 restore the archived volumes:\n{}",
        scratch.output
    );
}
