//! OpenPGP against the real gpg and duplicity: what ferrodup encrypts, gpg decrypts and
//! duplicity restores; what duplicity encrypts, ferrodup restores; wrong passphrases,
//! missing keys, tampering and bad signatures fail clearly; passphrases never leak.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const PASS: &str = "ferrodup-test-passphrase-7f3a";
const FIXTURE_PASS: &str = "duplicity-fixture-passphrase";
const FIXTURE_KEY: &str = "C2D3172E3F23C092984DF90276BA19CC2C948486";

fn url(w: &Path) -> String {
    format!("file://{}/target", w.display())
}

fn gnupg_home(w: &Path) -> PathBuf {
    let h = w.join("gnupg");
    std::fs::create_dir_all(&h).unwrap();
    std::fs::set_permissions(&h, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    h
}

fn gpg(home: &Path, args: &[&str]) -> Run {
    let mut c = Command::new("gpg");
    c.env("GNUPGHOME", home)
        .args(["--batch", "--no-tty", "--pinentry-mode", "loopback"])
        .args(args);
    run(&mut c, &format!("gpg {}", args.join(" ")))
}

/// ferrodup with GNUPGHOME and optionally PASSPHRASE set.
fn fd(w: &Path, home: &Path, pass: Option<&str>, args: &[&str]) -> Run {
    let env: Vec<(&str, &str)> = pass.map(|p| ("PASSPHRASE", p)).into_iter().collect();
    fd_env(w, home, &env, args)
}

/// ferrodup with GNUPGHOME, no PASSPHRASE unless `env` sets it, and `env`.
fn fd_env(w: &Path, home: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut c = Command::new(ferrodup_bin());
    c.current_dir(w)
        .args(args)
        .env("GNUPGHOME", home)
        .env_remove("PASSPHRASE");
    for (k, v) in env {
        c.env(k, v);
    }
    run(&mut c, &format!("ferrodup {}", args.join(" ")))
}

fn dup(w: &Path, home: &Path, pass: Option<&str>, args: &[&str]) -> Run {
    let mut c = Command::new(duplicity_bin());
    c.current_dir(w)
        .args(args)
        .env("GNUPGHOME", home)
        .env("HOME", w)
        .env_remove("PASSPHRASE");
    if let Some(p) = pass {
        c.env("PASSPHRASE", p);
    }
    run(&mut c, &format!("duplicity {}", args.join(" ")))
}

/// Builds a two-state chain with ferrodup using `extra` options; returns the state copies.
fn ferrodup_chain(
    w: &Path,
    home: &Path,
    pass: Option<&str>,
    extra: &[&str],
) -> Vec<(i64, PathBuf)> {
    let u = url(w);
    let mut states = Vec::new();
    for (n, kind, t) in [(1, "full", T1), (2, "incremental", T2)] {
        let src = w.join("src");
        if src.exists() {
            std::fs::remove_dir_all(&src).unwrap();
        }
        make_fixture_tree(&src, n, true);
        let state = w.join(format!("state{n}"));
        copy_tree(&src, &state);
        let ts = t.to_string();
        let mut args = vec![
            kind,
            "--volsize",
            "1",
            "--archive-dir",
            "fc",
            "--current-time",
            &ts,
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["src", &u]);
        fd(w, home, pass, &args).ok();
        states.push((t, state));
    }
    states
}

fn target_files(w: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(w.join("target"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// gpg decrypts every stored file; manifests decrypt to manifest text.
fn gpg_decrypts_all(w: &Path, home: &Path, pass: &str, want_goodsig: bool) {
    let files = target_files(w);
    assert!(files.len() >= 6, "{files:?}");
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with(".gpg"), "{name} is not encrypted");
        let out = w.join("decrypted");
        let r = gpg(
            home,
            &[
                "--yes",
                "--status-fd",
                "2",
                "--passphrase",
                pass,
                "-o",
                out.to_str().unwrap(),
                "-d",
                f.to_str().unwrap(),
            ],
        )
        .ok();
        if want_goodsig {
            assert!(r.stderr().contains("GOODSIG"), "{name}: {}", r.stderr());
        }
        let data = std::fs::read(&out).unwrap();
        if name.contains(".manifest") {
            assert!(
                data.starts_with(b"Hostname ") || data.starts_with(b"Localdir "),
                "{name}"
            );
        } else {
            assert!(
                data.len() >= 1024 && data.len() % 512 == 0,
                "{name}: {} bytes",
                data.len()
            );
        }
    }
}

fn duplicity_restores(
    w: &Path,
    home: &Path,
    pass: Option<&str>,
    extra: &[&str],
    states: &[(i64, PathBuf)],
) {
    let u = url(w);
    for (i, (t, state)) in states.iter().enumerate() {
        let dest = w.join(format!("dup-{i}"));
        let ts = t.to_string();
        let mut args = vec!["restore", "--archive-dir", "dc", "-t", &ts];
        args.extend_from_slice(extra);
        let d = dest.to_str().unwrap();
        args.extend_from_slice(&[&u, d]);
        dup(w, home, pass, &args).ok();
        assert_same_tree(state, &dest, &format!("duplicity restore {i}"));
    }
}

fn ferrodup_restores(
    w: &Path,
    home: &Path,
    pass: Option<&str>,
    extra: &[&str],
    states: &[(i64, PathBuf)],
    tag: &str,
) {
    let u = url(w);
    for (i, (t, state)) in states.iter().enumerate() {
        let dest = w.join(format!("fd-{tag}-{i}"));
        let ts = t.to_string();
        let cache = format!("rc-{tag}");
        let mut args = vec!["restore", "--archive-dir", &cache, "-t", &ts];
        args.extend_from_slice(extra);
        let d = dest.to_str().unwrap();
        args.extend_from_slice(&[&u, d]);
        fd(w, home, pass, &args).ok();
        assert_same_tree(state, &dest, &format!("ferrodup restore {tag} {i}"));
    }
}

#[test]
fn symmetric_round_trips_with_gpg_and_duplicity() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let home = gnupg_home(w);
    let states = ferrodup_chain(w, &home, Some(PASS), &[]);
    gpg_decrypts_all(w, &home, PASS, false);
    duplicity_restores(w, &home, Some(PASS), &[], &states);
    ferrodup_restores(w, &home, Some(PASS), &[], &states, "sym");
    let v = fd(
        w,
        &home,
        Some(PASS),
        &[
            "verify",
            "--compare-data",
            "--archive-dir",
            "rc-sym",
            &url(w),
            "state2",
        ],
    )
    .ok();
    assert!(v.stderr().contains(" 0 difference(s)"), "{}", v.stderr());
}

/// ZIP (raw deflate) volumes, made on every core like the default ZLIB ones: gpg reads
/// them as ZIP and duplicity restores both states of the multi-volume chain.
#[test]
fn zip_compressed_volumes_restore_with_duplicity() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let home = gnupg_home(w);
    let zip = ["--gpg-options", "--compress-algo=zip"];
    let states = ferrodup_chain(w, &home, Some(PASS), &zip);
    let vol = target_files(w)
        .into_iter()
        .find(|f| f.to_string_lossy().contains(".vol2.difftar.gpg"))
        .expect("a multi-volume full backup");
    let listed = gpg(
        &home,
        &[
            "--passphrase",
            PASS,
            "--list-packets",
            vol.to_str().unwrap(),
        ],
    )
    .ok();
    assert!(
        listed.stdout().contains(":compressed packet: algo=1"),
        "{}",
        listed.stdout()
    );
    gpg_decrypts_all(w, &home, PASS, false);
    duplicity_restores(w, &home, Some(PASS), &[], &states);
}

#[test]
fn duplicity_symmetric_backups_restore() {
    // The fixture made by duplicity 3.2.1 with gpg 2.2.
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let home = gnupg_home(w);
    copy_tree(&fixtures().join("symmetric/remote"), &w.join("target"));
    make_fixture_tree(&w.join("state1"), 1, false);
    make_fixture_tree(&w.join("state2"), 2, false);
    let states = vec![(T1, w.join("state1")), (T2, w.join("state2"))];
    ferrodup_restores(w, &home, Some(FIXTURE_PASS), &[], &states, "fixture");
    // And one made now, multi-volume, with --no-compression (compress-algo none).
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let home = gnupg_home(w);
    make_fixture_tree(&w.join("src"), 1, true);
    let u = url(w);
    dup(
        w,
        &home,
        Some(PASS),
        &[
            "full",
            "--volsize",
            "1",
            "--no-compression",
            "--archive-dir",
            "dc",
            "src",
            &u,
        ],
    )
    .ok();
    ferrodup_restores(
        w,
        &home,
        Some(PASS),
        &["--no-compression"],
        &[(i64::from(i32::MAX), w.join("src"))],
        "fresh",
    );
}

fn import_fixture_key(home: &Path) {
    gpg(
        home,
        &[
            "--import",
            fixtures()
                .join("pubkey/test-secret-key.asc")
                .to_str()
                .unwrap(),
        ],
    )
    .ok();
}

#[test]
fn public_key_round_trips() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let home = gnupg_home(w);
    import_fixture_key(&home);
    // The public key comes from the GnuPG home's pubring.kbx; no passphrase is needed.
    let states = ferrodup_chain(w, &home, None, &["--encrypt-key", FIXTURE_KEY]);
    gpg_decrypts_all(w, &home, "", false);
    duplicity_restores(w, &home, Some(""), &["--encrypt-key", FIXTURE_KEY], &states);
    // Secret key held by gpg's agent: ferrodup falls back to the gpg binary.
    ferrodup_restores(
        w,
        &home,
        None,
        &["--encrypt-key", FIXTURE_KEY],
        &states,
        "agent",
    );
    // Secret key from a key file, with an empty GnuPG home: native decryption.
    let empty = w.join("empty-home");
    std::fs::create_dir(&empty).unwrap();
    let keyfile = fixtures().join("pubkey/test-secret-key.asc");
    let k = keyfile.to_str().unwrap();
    ferrodup_restores(w, &empty, None, &["--gpg-key-file", k], &states, "keyfile");
    // Without the secret key: a clear error, nothing written.
    let r = fd(
        w,
        &empty,
        None,
        &["restore", "--archive-dir", "nokey", &url(w), "nokey-out"],
    );
    assert!(
        r.code() != 0 && !r.stderr().contains("panicked"),
        "{}",
        r.stderr()
    );
    assert!(!w.join("nokey-out").exists());
}

#[test]
fn duplicity_public_key_backups_restore() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let empty = gnupg_home(w);
    copy_tree(&fixtures().join("pubkey/remote"), &w.join("target"));
    make_fixture_tree(&w.join("state1"), 1, false);
    make_fixture_tree(&w.join("state2"), 2, false);
    let states = vec![(T1, w.join("state1")), (T2, w.join("state2"))];
    let keyfile = fixtures().join("pubkey/test-secret-key.asc");
    let k = keyfile.to_str().unwrap();
    ferrodup_restores(w, &empty, None, &["--gpg-key-file", k], &states, "native");
    let home = w.join("home2");
    std::fs::create_dir(&home).unwrap();
    let home = gnupg_home(&home);
    import_fixture_key(&home);
    ferrodup_restores(
        w,
        &home,
        None,
        &["--encrypt-key", FIXTURE_KEY],
        &states,
        "agent",
    );
}

/// A fresh ed25519/cv25519 key in `home`; returns its fingerprint.
fn new_key(home: &Path, email: &str) -> String {
    gpg(
        home,
        &[
            "--passphrase",
            "",
            "--quick-gen-key",
            email,
            "ed25519",
            "sign,cert",
            "never",
        ],
    )
    .ok();
    let out = gpg(home, &["--with-colons", "--list-keys", email])
        .ok()
        .stdout();
    let fpr = out
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .unwrap()
        .split(':')
        .nth(9)
        .unwrap()
        .to_string();
    gpg(
        home,
        &[
            "--passphrase",
            "",
            "--quick-add-key",
            &fpr,
            "cv25519",
            "encr",
            "never",
        ],
    )
    .ok();
    fpr
}

fn export_secret(home: &Path, fpr: &str, dest: &Path) {
    let r = gpg(home, &["--passphrase", "", "--export-secret-keys", fpr]).ok();
    std::fs::write(dest, &r.out.stdout).unwrap();
}

#[test]
fn signed_and_hidden_recipient_backups() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let home = gnupg_home(w);
    let fpr = new_key(&home, "signer@ferrodup.test");
    let other = new_key(&home, "other@ferrodup.test");
    let keyfile = w.join("signer.sec");
    export_secret(&home, &fpr, &keyfile);
    let k = keyfile.to_str().unwrap().to_string();
    // Encrypt to a hidden recipient and sign natively with the key file's secret key.
    let opts = [
        "--hidden-encrypt-key",
        &fpr,
        "--sign-key",
        &fpr,
        "--gpg-key-file",
        &k,
    ];
    let states = ferrodup_chain(w, &home, None, &opts);
    gpg_decrypts_all(w, &home, "", true);
    // duplicity asks for a passphrase whenever a sign key is set; the key has none.
    duplicity_restores(
        w,
        &home,
        Some("unused"),
        &["--encrypt-key", &fpr, "--sign-key", &fpr],
        &states,
    );
    ferrodup_restores(w, &home, None, &opts, &states, "signed");
    // Requiring another signer fails, naming a file and saying why.
    let r = fd(
        w,
        &home,
        None,
        &[
            "restore",
            "--archive-dir",
            "wrongsig",
            "--sign-key",
            &other,
            "--gpg-key-file",
            &k,
            &url(w),
            "wrong-out",
        ],
    );
    assert!(r.code() != 0, "a wrong signer was accepted");
    assert!(r.stderr().contains("not signed by"), "{}", r.stderr());
}

#[test]
fn unsigned_backup_fails_when_signatures_are_required() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let home = gnupg_home(w);
    let fpr = new_key(&home, "signer2@ferrodup.test");
    ferrodup_chain(w, &home, Some(PASS), &[]);
    let r = fd(
        w,
        &home,
        Some(PASS),
        &[
            "restore",
            "--archive-dir",
            "x",
            "--sign-key",
            &fpr,
            &url(w),
            "out",
        ],
    );
    assert!(r.code() != 0);
    assert!(r.stderr().contains("not signed"), "{}", r.stderr());
}

#[test]
fn wrong_passphrase_tampering_and_secrecy() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let home = gnupg_home(w);
    std::fs::create_dir(w.join("tmp")).unwrap();
    let states = ferrodup_chain(w, &home, Some(PASS), &["-v", "9", "--tempdir", "tmp"]);
    // Wrong passphrase: one clear line, status 3, and the destination is never created.
    let r = fd(
        w,
        &home,
        Some("not-the-passphrase"),
        &["restore", "--archive-dir", "wp", &url(w), "wp-out"],
    );
    assert_eq!(r.code(), 31, "{}", r.stderr());
    assert!(r.stderr().contains("wrong passphrase"), "{}", r.stderr());
    assert!(!w.join("wp-out").exists());
    // The passphrase appears in no output and no file ferrodup wrote.
    let r = fd(
        w,
        &home,
        Some(PASS),
        &[
            "-v",
            "9",
            "restore",
            "--archive-dir",
            "rc",
            &url(w),
            "ok-out",
        ],
    )
    .ok();
    assert!(!r.stdout().contains(PASS) && !r.stderr().contains(PASS));
    assert_same_tree(&states[1].1, &w.join("ok-out"), "restore before tampering");
    for dir in ["target", "fc", "tmp", "rc", "ok-out"] {
        let out = Command::new("grep")
            .args(["-r", "-l", PASS])
            .arg(w.join(dir))
            .output()
            .unwrap();
        assert!(
            out.stdout.is_empty(),
            "passphrase found in {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // Tampered volume whose manifest hash was forged in the cache: the MDC check names it.
    let vol = w.join("target/duplicity-full.20240101T120000Z.vol2.difftar.gpg");
    let mut data = std::fs::read(&vol).unwrap();
    let at = data.len() - 100;
    data[at] ^= 0x40;
    std::fs::write(&vol, &data).unwrap();
    use sha1::{Digest, Sha1};
    let hex: String = Sha1::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    fd(
        w,
        &home,
        Some(PASS),
        // list-current-files fills the archive dir (collection-status, as duplicity's,
        // does not sync it).
        &["list-current-files", "--archive-dir", "tc", &url(w)],
    )
    .ok();
    let cached = std::fs::read_dir(w.join("tc"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let man = cached.join("duplicity-full.20240101T120000Z.manifest");
    let text = std::fs::read_to_string(&man).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let i = lines.iter().position(|l| l == "Volume 2:").unwrap();
    lines[i + 3] = format!("    Hash SHA1 {hex}");
    std::fs::write(&man, lines.join("\n") + "\n").unwrap();
    let r = fd(
        w,
        &home,
        Some(PASS),
        &["restore", "--archive-dir", "tc", &url(w), "tampered"],
    );
    assert_eq!(r.code(), 31, "{}", r.stderr());
    assert!(r.stderr().contains("vol2.difftar.gpg"), "{}", r.stderr());
}

/// Archives as old gpg wrote them: CAST5 without integrity protection, and BZIP2 or ZIP
/// compression, made here by re-encrypting a plain backup's files with gpg.
#[test]
fn old_gpg_archives_restore() {
    for (cipher_opts, label) in [
        (
            &[
                "--cipher-algo",
                "CAST5",
                "--rfc2440",
                "--compress-algo",
                "zip",
            ][..],
            "cast5-nomdc",
        ),
        (
            &[
                "--cipher-algo",
                "AES256",
                "--force-mdc",
                "--compress-algo",
                "bzip2",
            ][..],
            "bzip2",
        ),
    ] {
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        let home = gnupg_home(w);
        make_fixture_tree(&w.join("src"), 1, false);
        let plain = format!("file://{}/plain", w.display());
        ferrodup(
            w,
            &[
                "full",
                "--no-encryption",
                "--no-compression",
                "--archive-dir",
                "pc",
                "src",
                &plain,
            ],
        )
        .ok();
        std::fs::create_dir(w.join("target")).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(w.join("plain"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let enc = |src: &Path, dest: &Path| {
            let mut args = vec![
                "--symmetric",
                "--passphrase",
                PASS,
                "-o",
                dest.to_str().unwrap(),
            ];
            args.extend_from_slice(cipher_opts);
            args.push(src.to_str().unwrap());
            gpg(&home, &args).ok();
        };
        use sha1::{Digest, Sha1};
        let mut manifest = String::new();
        for n in &names {
            let src = w.join("plain").join(n);
            if n.contains(".manifest") {
                manifest = std::fs::read_to_string(&src).unwrap();
                continue;
            }
            let dest = w.join("target").join(format!("{n}.gpg"));
            enc(&src, &dest);
            if n.contains(".difftar") {
                let hex: String = Sha1::digest(std::fs::read(&dest).unwrap())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let start = manifest.find("Hash SHA1 ").unwrap() + 10;
                manifest.replace_range(start..start + 40, &hex);
            }
        }
        let man_name = names.iter().find(|n| n.contains(".manifest")).unwrap();
        let man_plain = w.join("manifest.txt");
        std::fs::write(&man_plain, &manifest).unwrap();
        enc(
            &man_plain,
            &w.join("target").join(format!("{man_name}.gpg")),
        );
        let r = fd(
            w,
            &home,
            Some(PASS),
            &["restore", "--archive-dir", "oc", &url(w), "out"],
        )
        .ok();
        assert_same_tree(&w.join("src"), &w.join("out"), label);
        if label == "cast5-nomdc" {
            assert!(
                r.stderr().contains("without integrity protection"),
                "{}",
                r.stderr()
            );
        }
    }
}

/// A sign key that only gpg's agent holds: ferrodup signs through the gpg binary, and
/// checks the signatures through it on restore.
#[test]
fn signing_with_an_agent_held_key() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let home = gnupg_home(w);
    let fpr = new_key(&home, "agent@ferrodup.test");
    let opts = ["--encrypt-key", &fpr, "--sign-key", &fpr];
    let states = ferrodup_chain(w, &home, Some(""), &opts);
    gpg_decrypts_all(w, &home, "", true);
    ferrodup_restores(w, &home, Some(""), &opts, &states, "agent-signed");
    duplicity_restores(w, &home, Some("unused"), &opts, &states);
}

/// Without PASSPHRASE, a full backup asks twice on the terminal, without echo.
#[test]
fn passphrase_prompt_on_a_terminal() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let home = gnupg_home(w);
    make_fixture_tree(&w.join("src"), 1, false);
    let cmd = format!(
        "{} full --archive-dir pc --no-print-statistics src {}",
        ferrodup_bin().display(),
        url(w)
    );
    let typed = "typed-secret-93b1";
    let mut c = Command::new("sh");
    c.current_dir(w)
        .env("GNUPGHOME", &home)
        .env_remove("PASSPHRASE")
        .arg("-c")
        .arg(format!(
            "(sleep 1; printf '{typed}\\n'; sleep 1; printf '{typed}\\n') | script -qec \"{cmd}\" /dev/null"
        ));
    let r = run(&mut c, "ferrodup under script").ok();
    let shown = format!("{}{}", r.stdout(), r.stderr());
    assert!(shown.contains("passphrase"), "{shown}");
    assert!(!shown.contains(typed), "the passphrase was echoed: {shown}");
    ferrodup_restores(
        w,
        &home,
        Some(typed),
        &[],
        &[(i64::from(i32::MAX), w.join("src"))],
        "typed",
    );
    // Mismatched confirmation: refused, nothing written.
    let mut c = Command::new("sh");
    c.current_dir(w)
        .env("GNUPGHOME", &home)
        .env_remove("PASSPHRASE")
        .arg("-c")
        .arg(format!(
            "(sleep 1; printf 'one\\n'; sleep 1; printf 'two\\n') | script -qec \"{} full --archive-dir pc2 src file://{}/t2\" /dev/null",
            ferrodup_bin().display(),
            w.display()
        ));
    let r = run(&mut c, "ferrodup under script, mismatch");
    assert!(format!("{}{}", r.stdout(), r.stderr()).contains("do not match"));
    assert!(!w.join("t2").exists());
}

/// `--encrypt-sign-key` alone, and symmetric encryption with a signature.
#[test]
fn encrypt_sign_key_and_signed_symmetric() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let home = gnupg_home(w);
    let fpr = new_key(&home, "both@ferrodup.test");
    let keyfile = w.join("both.sec");
    export_secret(&home, &fpr, &keyfile);
    let k = keyfile.to_str().unwrap().to_string();
    let opts = ["--encrypt-sign-key", &fpr, "--gpg-key-file", &k];
    let states = ferrodup_chain(w, &home, None, &opts);
    gpg_decrypts_all(w, &home, "", true);
    ferrodup_restores(w, &home, None, &opts, &states, "esk");

    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let home2 = gnupg_home(w);
    let opts = ["--sign-key", &fpr, "--gpg-key-file", &k];
    let states = ferrodup_chain(w, &home2, Some(PASS), &opts);
    gpg_decrypts_all(w, &home, PASS, true);
    ferrodup_restores(w, &home2, Some(PASS), &opts, &states, "symsig");
}

/// A public-key, signed backup made by duplicity now: ferrodup restores it and checks the
/// signatures.
#[test]
fn duplicity_signed_public_key_backup_restores() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let home = gnupg_home(w);
    let fpr = new_key(&home, "dupsigner@ferrodup.test");
    make_fixture_tree(&w.join("src"), 1, false);
    let u = url(w);
    let opts = ["--encrypt-key", &fpr, "--sign-key", &fpr];
    let mut args = vec!["full", "--archive-dir", "dc"];
    args.extend_from_slice(&opts);
    args.extend_from_slice(&["src", &u]);
    dup(w, &home, Some("unused"), &args).ok();
    ferrodup_restores(
        w,
        &home,
        None,
        &opts,
        &[(i64::from(i32::MAX), w.join("src"))],
        "dupsigned",
    );
}

/// When gpg must be run (an agent-held sign key), the passphrase reaches it on a pipe,
/// never in its arguments.
#[test]
fn passphrase_is_never_a_process_argument() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let home = gnupg_home(w);
    let fpr = new_key(&home, "argv@ferrodup.test");
    let log = w.join("gpg-argv.log");
    let wrapper = w.join("gpg-wrapper.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nexec gpg \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let wr = wrapper.to_str().unwrap().to_string();
    let opts = ["--sign-key", &fpr, "--gpg-binary", &wr];
    let states = ferrodup_chain(w, &home, Some(PASS), &opts);
    ferrodup_restores(w, &home, Some(PASS), &opts, &states, "argv");
    let argv = std::fs::read_to_string(&log).unwrap();
    assert!(argv.contains("--sign"), "gpg was not used: {argv}");
    assert!(!argv.contains(PASS), "passphrase in gpg arguments: {argv}");
}

/// An interrupted encrypted backup resumes only with the passphrase it was started with.
#[test]
fn encrypted_resume_checks_the_passphrase() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let home = gnupg_home(w);
    make_fixture_tree(&w.join("src"), 1, true);
    std::fs::write(
        w.join("src/random.bin"),
        common::edits::prng_bytes(5, 3_000_000),
    )
    .unwrap();
    let u = url(w);
    let t = T1.to_string();
    let args = [
        "full",
        "--volsize",
        "1",
        "--archive-dir",
        "fc",
        "--current-time",
        &t,
    ];
    let run_with = |pass: &str, extra: &[&str]| {
        let mut a = args.to_vec();
        a.extend_from_slice(extra);
        a.extend_from_slice(&["src", &u]);
        fd(w, &home, Some(pass), &a)
    };
    assert_ne!(run_with(PASS, &["--fail-on-volume", "3"]).code(), 0);
    let r = run_with("another-passphrase", &[]);
    assert_eq!(r.code(), 23, "{}", r.stderr());
    assert!(r.stderr().contains("another passphrase"), "{}", r.stderr());
    let r = run_with(PASS, &[]).ok();
    assert!(r.stderr().contains("Resuming"), "{}", r.stderr());
    ferrodup_restores(w, &home, Some(PASS), &[], &[(T1, w.join("src"))], "resumed");
}

/// Through the gpg binary (an agent-held key), a restore requiring a sign key accepts
/// that key's signature named by fingerprint, key id or e-mail, and refuses a good
/// signature by another key (status 4, one line).
#[test]
fn gpg_path_checks_who_signed() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let home = gnupg_home(w);
    let fpr = new_key(&home, "gpgsigner@ferrodup.test");
    let other = new_key(&home, "gpgother@ferrodup.test");
    let opts = ["--encrypt-key", &fpr, "--sign-key", &fpr];
    let states = ferrodup_chain(w, &home, Some(""), &opts);
    let key_id = &fpr[fpr.len() - 16..];
    for (tag, signer) in [("keyid", key_id), ("email", "gpgsigner@ferrodup.test")] {
        let opts = ["--encrypt-key", &fpr, "--sign-key", signer];
        ferrodup_restores(w, &home, Some(""), &opts, &states[1..], tag);
    }
    let r = fd(
        w,
        &home,
        Some(""),
        &[
            "restore",
            "--archive-dir",
            "other",
            "--encrypt-key",
            &fpr,
            "--sign-key",
            &other,
            &url(w),
            "other-out",
        ],
    );
    assert_fails(&r, 22, &["is not signed by", &other, &fpr]);
}

/// PASSPHRASE_FILE and PASSPHRASE_COMMAND give the passphrase without it being in the
/// environment or the process list: a backup made with the file restores with the command
/// and with duplicity given the same passphrase; both set, an unreadable file or a failing
/// command is a one-line usage error.
#[test]
fn passphrase_from_a_file_or_a_command() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let home = gnupg_home(w);
    make_fixture_tree(&w.join("src"), 1, false);
    let file = w.join("pass");
    std::fs::write(&file, format!("{PASS}\n")).unwrap();
    let file = file.to_str().unwrap();
    let u = url(w);

    fd_env(w, &home, &[("PASSPHRASE_FILE", file)], &["full", "src", &u]).ok();
    let cat = format!("cat '{file}'");
    fd_env(
        w,
        &home,
        &[("PASSPHRASE_COMMAND", &cat)],
        &["restore", &u, "out1"],
    )
    .ok();
    assert_same_tree(&w.join("src"), &w.join("out1"), "restored with the command");
    dup(w, &home, Some(PASS), &["restore", &u, "out2"]).ok();
    assert_same_tree(&w.join("src"), &w.join("out2"), "duplicity with PASSPHRASE");

    let r = fd_env(
        w,
        &home,
        &[("PASSPHRASE_FILE", file), ("PASSPHRASE_COMMAND", &cat)],
        &["collection-status", &u],
    );
    assert_fails(
        &r,
        23,
        &["PASSPHRASE_FILE", "PASSPHRASE_COMMAND", "keep one"],
    );
    let missing = w.join("no-such-file");
    let r = fd_env(
        w,
        &home,
        &[("PASSPHRASE_FILE", missing.to_str().unwrap())],
        &["restore", &u, "out3"],
    );
    assert_fails(&r, 23, &["PASSPHRASE_FILE", "no-such-file"]);
    let r = fd_env(
        w,
        &home,
        &[("PASSPHRASE_COMMAND", "exit 3")],
        &["restore", &u, "out4"],
    );
    assert_fails(&r, 23, &["PASSPHRASE_COMMAND", "failed"]);
    assert!(!w.join("out3").exists() && !w.join("out4").exists());
}

/// An incremental with a passphrase that does not decrypt the chain is refused, as
/// duplicity refuses it (status 1): the last manifest on the target is read first, so no
/// set that only another passphrase restores joins the chain. The right passphrase goes on.
#[test]
fn an_incremental_with_another_passphrase_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let home = gnupg_home(w);
    std::fs::create_dir_all(w.join("src")).unwrap();
    std::fs::write(w.join("src/a"), "first\n").unwrap();
    let u = url(w);
    let backup = |kind: &str, pass: &str| {
        fd(
            w,
            &home,
            Some(pass),
            &[kind, "--archive-dir", "c", "src", &u],
        )
    };
    backup("full", PASS).ok();
    let stored = std::fs::read_dir(w.join("target")).unwrap().count();
    std::fs::write(w.join("src/a"), "second\n").unwrap();
    let r = backup("incremental", "not the passphrase");
    assert_fails(
        &r,
        1,
        &["manifest of the last backup", "passphrase of that chain"],
    );
    assert_eq!(std::fs::read_dir(w.join("target")).unwrap().count(), stored);
    backup("incremental", PASS).ok();
    fd(
        w,
        &home,
        Some(PASS),
        &["restore", "--archive-dir", "r", &u, "out"],
    )
    .ok();
    assert_same_tree(&w.join("src"), &w.join("out"), "the chain restored");
}

/// `replicate` with TARGET_PASSPHRASE, then with --target-encrypt-key: every file of a
/// symmetric chain decrypted and encrypted anew, the manifests recording the new volumes'
/// hashes; gpg, duplicity and ferrodup read each copy with the new secret, the old
/// passphrase opens none of it, and a rerun copies nothing.
#[test]
fn replicate_encrypts_the_copy_anew() {
    const NEW: &str = "the-copy's-own-passphrase";
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let home = gnupg_home(w);
    import_fixture_key(&home);
    let states = ferrodup_chain(w, &home, Some(PASS), &[]);
    std::fs::rename(w.join("target"), w.join("orig")).unwrap();
    let orig = format!("file://{}/orig", w.display());
    let replicate = |env: &[(&str, &str)], extra: &[&str], cache: &str| {
        let mut args = vec!["replicate", "--archive-dir", cache];
        args.extend_from_slice(extra);
        let u = url(w);
        args.extend_from_slice(&[&orig, &u]);
        fd_env(w, &home, env, &args).ok()
    };
    let env = [("PASSPHRASE", PASS), ("TARGET_PASSPHRASE", NEW)];
    let r = replicate(&env, &[], "rep1");
    assert!(
        r.stderr().contains("Replicate complete: "),
        "{}",
        r.stderr()
    );
    gpg_decrypts_all(w, &home, NEW, false);
    duplicity_restores(w, &home, Some(NEW), &[], &states);
    ferrodup_restores(w, &home, Some(NEW), &[], &states, "new");
    let old = fd(
        w,
        &home,
        Some(PASS),
        &["restore", "--archive-dir", "old", &url(w), "old-out"],
    );
    assert!(
        old.code() != 0 && !old.stderr().contains("panicked"),
        "{}",
        old.stderr()
    );
    let again = replicate(&env, &[], "rep1");
    assert!(
        again
            .stderr()
            .contains("Replicate complete: 0 file(s) (0 B) of 2 set(s)"),
        "{}",
        again.stderr()
    );

    // For a public key: the copy needs the secret key, and no passphrase.
    std::fs::rename(w.join("target"), w.join("symmetric-copy")).unwrap();
    for i in 0..states.len() {
        std::fs::remove_dir_all(w.join(format!("dup-{i}"))).unwrap();
    }
    std::fs::remove_dir_all(w.join("dc")).unwrap();
    replicate(
        &[("PASSPHRASE", PASS)],
        &["--target-encrypt-key", FIXTURE_KEY],
        "rep2",
    );
    gpg_decrypts_all(w, &home, "", false);
    duplicity_restores(w, &home, Some(""), &["--encrypt-key", FIXTURE_KEY], &states);
    let empty = w.join("empty-home");
    std::fs::create_dir(&empty).unwrap();
    let keyfile = fixtures().join("pubkey/test-secret-key.asc");
    let k = keyfile.to_str().unwrap();
    ferrodup_restores(w, &empty, None, &["--gpg-key-file", k], &states, "pub");
}
