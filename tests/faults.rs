//! Flaky storage: the real Swift and S3 servers behind a fault-injecting proxy
//! (tests/common/proxy.rs). Backups and restores survive transient faults (error statuses,
//! 429 with Retry-After, resets, truncated and stalled bodies) byte-exact; permanent faults
//! fail within a bounded time with one error line and status 5, and lose nothing already
//! stored. Also: local write failures while downloading are local errors (status 6), and
//! URL passwords never appear in any message.

mod common;

use common::proxy::{rule, Fault, Proxy, Rule};
use common::services::*;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A store reached through a proxy.
struct Store {
    proxy: Proxy,
    env: Vec<(String, String)>,
    url: String,
    /// Options that route ferrodup through the proxy.
    opts: Vec<String>,
    /// How the store names itself in messages.
    shown: String,
    /// `--timeout`: short, yet well above the server's answer time on a loaded machine
    /// (Swift's object server takes 2 s per request here).
    timeout: &'static str,
}

/// A new Swift container behind a proxy: object requests go to the proxy with a tempauth
/// token taken directly from the server.
fn swift_store() -> Store {
    let s = service_env("swift");
    let proxy = Proxy::start(&s["SWIFT_PROXY_URL"]);
    let r = ureq::get(&s["SWIFT_V1_AUTH_URL"])
        .header("X-Auth-User", &s["SWIFT_V1_USER"])
        .header("X-Auth-Key", &s["SWIFT_V1_KEY"])
        .call()
        .expect("tempauth login");
    let token = r.headers()["x-auth-token"].to_str().unwrap().to_string();
    let storage = &s["SWIFT_V1_STORAGE_URL"];
    let path = &storage[storage.find("/v1/").expect("a /v1/ storage URL")..];
    let container = unique("faults");
    Store {
        env: vec![
            (
                "SWIFT_PREAUTHURL".to_string(),
                format!("{}{path}", proxy.url),
            ),
            ("SWIFT_PREAUTHTOKEN".to_string(), token),
        ],
        url: format!("swift://{container}/host1"),
        opts: Vec::new(),
        shown: format!("swift://{container}/host1"),
        timeout: "10",
        proxy,
    }
}

/// A new S3 bucket (made directly with boto3) behind a proxy given as the endpoint.
fn s3_store() -> Store {
    let s = service_env("s3");
    let proxy = Proxy::start(&s["S3_ENDPOINT_URL"]);
    let bucket = unique("faults");
    let script = format!(
        "import boto3\nfrom botocore.config import Config\n\
         s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
         aws_access_key_id='{}', aws_secret_access_key='{}', \
         config=Config(signature_version='s3v4', s3={{'addressing_style': 'path'}}))\n\
         s3.create_bucket(Bucket='{bucket}')\n",
        s["S3_ENDPOINT_URL"], s["AWS_ACCESS_KEY_ID"], s["AWS_SECRET_ACCESS_KEY"]
    );
    run(
        Command::new(&s["S3_PYTHON"]).arg("-c").arg(script),
        "boto3 create_bucket",
    )
    .ok();
    Store {
        env: ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"]
            .iter()
            .map(|k| (k.to_string(), s[*k].clone()))
            .collect(),
        url: format!("s3://{bucket}/host1"),
        opts: vec!["--s3-endpoint-url".to_string(), proxy.url.clone()],
        shown: format!("s3://{bucket}/host1"),
        timeout: "4",
        proxy,
    }
}

impl Store {
    /// Runs ferrodup with short timeouts and immediate retries, through the proxy.
    fn fd(&self, w: &Path, tries: u32, args: &[&str]) -> Run {
        let tries = tries.to_string();
        let mut a: Vec<&str> = vec![
            "--no-encryption",
            "--timeout",
            self.timeout,
            "--num-retries",
            &tries,
            "--backend-retry-delay",
            "0",
        ];
        a.extend(self.opts.iter().map(String::as_str));
        a.extend_from_slice(args);
        fd(w, &self.env, &a)
    }

    fn backup(&self, w: &Path, kind: &str, t: i64, tries: u32) -> Run {
        let t = t.to_string();
        let args = [
            kind,
            "--archive-dir",
            "cache",
            "--current-time",
            &t,
            "src",
            &self.url,
        ];
        self.fd(w, tries, &args)
    }

    /// Restores (at `t`, if given) with a new cache, so that everything is downloaded.
    fn restore(&self, w: &Path, t: Option<i64>, dest: &str, tries: u32) -> Run {
        let cache = format!("cache-{dest}");
        let ts = t.map(|t| t.to_string());
        let mut args = vec!["restore", "--archive-dir", &cache];
        if let Some(ts) = &ts {
            args.extend_from_slice(&["--time", ts]);
        }
        args.extend_from_slice(&[&self.url, dest]);
        self.fd(w, tries, &args)
    }

    /// Asserts every rule of the script was applied exactly once.
    fn assert_all_hit(&self, what: &str) {
        let hits = self.proxy.hits();
        assert!(
            hits.iter().all(|&h| h == 1),
            "{what}: faults applied {hits:?}; requests:\n{}",
            self.proxy.log().join("\n")
        );
    }
}

/// Two source states of a small tree, copied to `state1` and `state2`; `src` holds state 1.
fn make_states(w: &Path) {
    make_fixture_tree(&w.join("state1"), 1, false);
    make_fixture_tree(&w.join("state2"), 2, false);
    copy_tree(&w.join("state1"), &w.join("src"));
}

fn to_state2(w: &Path) {
    std::fs::remove_dir_all(w.join("src")).unwrap();
    copy_tree(&w.join("state2"), &w.join("src"));
}

fn survives_transient_faults(st: Store) {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_states(w);
    // Full backup: each kind of upload fails once, the first listing is told to come back
    // in a second.
    for r in [
        rule("GET", "", Fault::RetryAfter(429, 1)),
        rule("PUT", "difftar", Fault::Status(503)),
        rule("PUT", "sigtar", Fault::Status(500)),
        rule("PUT", "manifest", Fault::Reset),
    ] {
        st.proxy.add(r);
    }
    let started = Instant::now();
    let r = st.backup(w, "full", T1, 4).ok();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    assert!(r.stderr().contains("retrying in 1 s"), "{}", r.stderr());
    st.assert_all_hit("full");
    st.proxy.clear();
    // Incremental: an upload fails twice in a row, a listing is slow.
    to_state2(w);
    for r in [
        rule("PUT", "difftar", Fault::Status(502)),
        rule("PUT", "difftar", Fault::Status(504)),
        rule("GET", "", Fault::Delay(Duration::from_millis(500))),
        rule("PUT", "manifest", Fault::RetryAfter(503, 1)),
    ] {
        st.proxy.add(r);
    }
    st.backup(w, "incremental", T2, 4).ok();
    st.assert_all_hit("incremental");
    st.proxy.clear();
    // Restores: bodies cut short or stalled, connections reset, a 503 with Retry-After.
    for r in [
        rule("GET", "difftar", Fault::Truncate),
        rule("GET", "difftar", Fault::Stall),
        rule("GET", "manifest", Fault::Reset),
        rule("GET", "manifest", Fault::Truncate),
        rule("GET", "", Fault::Status(500)),
    ] {
        st.proxy.add(r);
    }
    let started = Instant::now();
    let r = st.restore(w, None, "out2", 4).ok();
    st.assert_all_hit("restore");
    assert!(
        started.elapsed() < LIMIT,
        "a stalled body held the restore for {:?}",
        started.elapsed()
    );
    assert!(r.stderr().contains("retrying"), "{}", r.stderr());
    assert_same_tree(&w.join("state2"), &w.join("out2"), "restore after faults");
    st.proxy.clear();
    st.proxy.add(rule("GET", "difftar", Fault::Stall));
    st.restore(w, Some(T1), "out1", 4).ok();
    st.assert_all_hit("restore at T1");
    assert_same_tree(&w.join("state1"), &w.join("out1"), "restore at T1");
}

/// How long a command may take to give up on a store that always fails (two tries).
const LIMIT: Duration = Duration::from_secs(90);

/// With `fault` applied to every request it matches, `action` fails cleanly: status 5
/// with one line naming the store, within [`LIMIT`]. The fault is removed after.
fn fails_cleanly_under(st: &Store, fault: Rule, action: impl FnOnce() -> Run) {
    st.proxy.add(fault.always());
    let started = Instant::now();
    let r = action();
    let took = started.elapsed();
    assert_fails(&r, 50, &[&st.shown]);
    assert!(took < LIMIT, "{}: took {took:?}", r.what);
    st.proxy.clear();
}

fn permanent_faults_fail_cleanly(st: Store) {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_states(w);
    st.backup(w, "full", T1, 4).ok();
    to_state2(w);
    let incremental = || st.backup(w, "incremental", T2, 2);
    // The storage answers 503 to everything.
    fails_cleanly_under(&st, rule("", "", Fault::Status(503)), incremental);
    // The signatures can never be stored: the volume is, the backup set is unfinished.
    let sigtar = rule("PUT", "sigtar", Fault::Status(503));
    fails_cleanly_under(&st, sigtar, incremental);
    // The manifest can never be stored: volumes and signatures are, the set is unfinished.
    let manifest = rule("PUT", "manifest", Fault::Status(503));
    fails_cleanly_under(&st, manifest, incremental);
    // Every volume download stalls: the restore gives up, it does not hang.
    fails_cleanly_under(&st, rule("GET", "difftar", Fault::Stall), || {
        st.restore(w, Some(T1), "stalled", 2)
    });
    // Without faults the interrupted incremental completes and everything restores.
    st.backup(w, "incremental", T2, 4).ok();
    st.restore(w, None, "out2", 4).ok();
    assert_same_tree(&w.join("state2"), &w.join("out2"), "restore after recovery");
    st.restore(w, Some(T1), "out1", 4).ok();
    assert_same_tree(&w.join("state1"), &w.join("out1"), "restore at T1");
}

/// A download that cannot be written locally (here: past the file size limit) is a local
/// error, status 6, not a storage error to retry.
fn local_write_failure_is_local(st: Store) {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_states(w);
    std::fs::write(w.join("src/big.bin"), common::edits::prng_bytes(3, 200_000)).unwrap();
    st.backup(w, "full", T1, 4).ok();
    let mut args = vec![
        "--no-encryption".to_string(),
        "--num-retries".to_string(),
        "3".to_string(),
        "--backend-retry-delay".to_string(),
        "0".to_string(),
    ];
    args.extend(st.opts.iter().cloned());
    args.extend(
        ["restore", "--archive-dir", "rc", &st.url, "out"]
            .iter()
            .map(|s| s.to_string()),
    );
    // Writes past 64 KiB fail with EFBIG (SIGXFSZ is ignored, as dispositions survive exec).
    let mut c = Command::new("sh");
    c.current_dir(w)
        .env("HOME", w)
        .envs(st.env.iter().map(|(k, v)| (k, v)))
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 128; exec \"$0\" \"$@\"")
        .arg(ferrodup_bin())
        .args(&args);
    let r = run(&mut c, "ferrodup restore with a file size limit");
    assert_fails(&r, 30, &["File too large"]);
    assert!(!r.stderr().contains("retrying"), "{}", r.stderr());
}

#[test]
fn swift_survives_transient_faults() {
    survives_transient_faults(swift_store());
}

#[test]
fn s3_survives_transient_faults() {
    survives_transient_faults(s3_store());
}

#[test]
fn swift_permanent_faults_fail_cleanly() {
    permanent_faults_fail_cleanly(swift_store());
}

#[test]
fn s3_permanent_faults_fail_cleanly() {
    permanent_faults_fail_cleanly(s3_store());
}

#[test]
fn swift_local_write_failure_is_local() {
    local_write_failure_is_local(swift_store());
}

#[test]
fn s3_local_write_failure_is_local() {
    local_write_failure_is_local(s3_store());
}

/// URL passwords appear in no message: unknown schemes, malformed URLs, refused logins,
/// debug output.
#[test]
fn url_passwords_are_never_shown() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::create_dir(w.join("x")).unwrap();
    let check = |r: &Run, code: i32| {
        assert_eq!(r.code(), code, "{}: {}", r.what, r.stderr());
        let all = format!("{}{}", r.stdout(), r.stderr());
        assert!(
            !all.contains("secret"),
            "{}: password shown:\n{all}",
            r.what
        );
    };
    let r = fd(
        w,
        &[],
        &["full", "--no-encryption", "x", "ftp://user:secret@h/x"],
    );
    check(&r, 23);
    assert!(r.stderr().contains("ftp://user:***@h/x"), "{}", r.stderr());
    let r = fd(
        w,
        &[],
        &["full", "--no-encryption", "x", "ftp://user:se@cret/x@h/x"],
    );
    check(&r, 23);
    assert!(!r.stderr().contains("cret"), "{}", r.stderr());
    let r = fd(
        w,
        &[],
        &[
            "collection-status",
            "--no-encryption",
            "-v",
            "9",
            "gopher://u:secret@h:70/x",
        ],
    );
    check(&r, 23);
    let s = service_env("sftp");
    let url = format!(
        "sftp://{}:secret/wrong@127.0.0.1:{}/faults",
        s["SFTP_USER"], s["SFTP_PORT"]
    );
    let known = format!(
        "--ssh-options=-oUserKnownHostsFile={}",
        s["SFTP_KNOWN_HOSTS"]
    );
    for cmd in ["full", "collection-status"] {
        let mut args = vec![
            cmd,
            "--no-encryption",
            "-v",
            "9",
            "--num-retries",
            "1",
            &known,
        ];
        if cmd == "full" {
            args.push("x");
        }
        args.push(&url);
        let r = fd(w, &[], &args);
        check(&r, 23);
        assert!(r.stderr().contains("refused the login"), "{}", r.stderr());
    }
}

/// An SFTP server that accepts connections but never speaks: each login try gives up
/// after --timeout, and the command fails with status 5 and one line naming the store.
#[test]
fn sftp_silent_server_times_out() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::create_dir(w.join("src")).unwrap();
    // The kernel completes the connections; nothing ever answers them.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let url = format!("sftp://user@127.0.0.1:{port}/backups");
    let started = Instant::now();
    let r = fd(
        w,
        &[("FTP_PASSWORD".to_string(), "pw".to_string())],
        &[
            "full",
            "--no-encryption",
            "--timeout",
            "2",
            "--num-retries",
            "2",
            "--backend-retry-delay",
            "0",
            "src",
            &url,
        ],
    );
    let took = started.elapsed();
    assert_fails(&r, 50, &[&format!("127.0.0.1:{port}"), "--timeout"]);
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(30),
        "two tries of 2 s took {took:?}"
    );
    drop(silent);
}
