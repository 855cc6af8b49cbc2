//! One conformance suite that every kind of store passes, each against its real server on
//! loopback (started by `.ci/services`): the file system, Swift with Keystone v3, PCA
//! (Swift with the sealing emulation), S3 (also as boto3+s3://), SFTP, rclone (to the SFTP
//! server), par2+ over S3, and multi:// mirror and stripe targets over them. Each store is
//! opened as a target URL is, behind the retry layer, with the settings a multi:// config
//! entry would give it.

mod common;

use common::services::*;
use ferrodup::backend::{self, Backend, Options, Settings};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// Files put from several threads at once, then listed: more than one page of an S3
/// listing and of the test Swift's (1,000 names), so that paging is used. Stores whose
/// listing code another test covers this way get [`FEW`], which keeps the suite quick.
const MANY: usize = 1100;
const FEW: usize = 60;
const THREADS: usize = 8;
/// Larger than the multipart part and Swift segment size below, so that S3 uploads it in
/// parts and Swift as a Static Large Object.
const LARGE: usize = 21 << 20;
const PART: u64 = 8 << 20;

/// Names that need escaping in a URL or a query.
const ODD_NAMES: &[&str] = &[
    "with space.txt",
    "plus+and&amp=eq?q#h.txt",
    "percent%20literal.txt",
    "accentué-ünïcode-名前.txt",
    "quote'double\"semi;colon,.txt",
];

fn options() -> Options {
    let s3 = service_env("s3");
    Options {
        tries: 3,
        delay: Duration::from_millis(200),
        timeout: Duration::from_secs(30),
        transfers: 4,
        s3: backend::S3Options {
            endpoint: Some(s3["S3_ENDPOINT_URL"].clone()),
            restore_days: 1,
            restore_tier: "Standard".into(),
            multipart_chunk: PART,
            multipart_procs: 4,
            object_lock_mode: "GOVERNANCE".into(),
            ..Default::default()
        },
        ssh: backend::SshOptions::parse(&format!(
            "-oUserKnownHostsFile={}",
            service_env("sftp")["SFTP_KNOWN_HOSTS"]
        ))
        .unwrap(),
        swift: backend::SwiftOptions {
            segment_size: PART,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn settings(pairs: &[(&str, &str)]) -> Settings {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Deterministic bytes that differ with `seed`.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn put_bytes(b: &dyn Backend, dir: &Path, name: &str, bytes: &[u8]) {
    let src = dir.join(format!("put-{}", unique("f")));
    std::fs::write(&src, bytes).unwrap();
    b.put(&src, name)
        .unwrap_or_else(|e| panic!("{}: put {name}: {e}", b.describe()));
    std::fs::remove_file(&src).unwrap();
}

fn get_bytes(b: &dyn Backend, dir: &Path, name: &str) -> Vec<u8> {
    let dest = dir.join(format!("get-{}", unique("f")));
    b.get(name, &dest)
        .unwrap_or_else(|e| panic!("{}: get {name}: {e}", b.describe()));
    let bytes = std::fs::read(&dest).unwrap();
    std::fs::remove_file(&dest).unwrap();
    bytes
}

/// The suite: every store must behave this way for the commands to be right on it.
fn conforms(b: &dyn Backend, many: usize) {
    conforms_with_names(b, many, ODD_NAMES);
}

fn conforms_with_names(b: &dyn Backend, many: usize, odd_names: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let store = b.describe();
    assert_eq!(
        b.list().unwrap(),
        Vec::<String>::new(),
        "{store}: a new target is empty"
    );

    // A file that is not there: no size, an error naming it on get, and deleting it is
    // not an error (a rerun of cleanup deletes what an interrupted one did already).
    assert_eq!(b.size("absent.gz").unwrap(), None, "{store}");
    let e = b.get("absent.gz", &w.join("absent")).unwrap_err();
    assert!(e.to_string().contains("absent.gz"), "{store}: {e}");
    b.delete("absent.gz")
        .unwrap_or_else(|e| panic!("{store}: deleting a missing file: {e}"));

    // Round trip, empty file, overwrite with other content and size.
    put_bytes(b, w, "one.gz", &data(1000, 1));
    assert_eq!(get_bytes(b, w, "one.gz"), data(1000, 1), "{store}");
    assert_eq!(b.size("one.gz").unwrap(), Some(1000), "{store}");
    put_bytes(b, w, "empty", b"");
    assert_eq!(get_bytes(b, w, "empty"), b"", "{store}");
    assert_eq!(b.size("empty").unwrap(), Some(0), "{store}");
    put_bytes(b, w, "one.gz", &data(70_000, 2));
    assert_eq!(
        get_bytes(b, w, "one.gz"),
        data(70_000, 2),
        "{store}: overwritten"
    );
    assert_eq!(b.size("one.gz").unwrap(), Some(70_000), "{store}");

    // Names that need escaping come back as they went in.
    for (i, name) in odd_names.iter().enumerate() {
        put_bytes(b, w, name, &data(100 + i, 10 + i as u64));
        assert_eq!(
            get_bytes(b, w, name),
            data(100 + i, 10 + i as u64),
            "{store}: {name}"
        );
    }
    let listed: BTreeSet<String> = b.list().unwrap().into_iter().collect();
    for name in odd_names {
        assert!(
            listed.contains(*name),
            "{store}: {name} not listed: {listed:?}"
        );
    }

    // A large object (in parts or segments where the store has them).
    let large = data(LARGE, 3);
    put_bytes(b, w, "large.difftar.gz", &large);
    assert_eq!(
        b.size("large.difftar.gz").unwrap(),
        Some(LARGE as u64),
        "{store}"
    );
    assert!(
        get_bytes(b, w, "large.difftar.gz") == large,
        "{store}: large object differs"
    );

    // Many files from several threads at once; the listing (paged) has each, with its
    // size where the listing gives sizes.
    let names: Vec<String> = (0..many)
        .map(|i| format!("many-{i:05}.sigtar.gz"))
        .collect();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let names = &names;
            s.spawn(move || {
                for (i, name) in names.iter().enumerate().skip(t).step_by(THREADS) {
                    put_bytes(b, w, name, &data(i % 97, i as u64));
                }
            });
        }
    });
    let details = b.list_details().unwrap();
    let listed: BTreeSet<&str> = details.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(details.len(), listed.len(), "{store}: a name listed twice");
    for (i, name) in names.iter().enumerate() {
        assert!(listed.contains(name.as_str()), "{store}: {name} not listed");
        let entry = details.iter().find(|l| &l.name == name).unwrap();
        if let Some(size) = entry.size {
            assert_eq!(size, (i % 97) as u64, "{store}: listed size of {name}");
        }
    }
    assert_eq!(
        listed.len(),
        many + odd_names.len() + 3,
        "{store}: listing {listed:?}"
    );

    // Deleting half from several threads, the rest (with a name not there) at once; the
    // target is empty again, large object included.
    let all: Vec<String> = b.list().unwrap();
    let (one_by_one, at_once) = all.split_at(all.len() / 2);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                for name in one_by_one.iter().skip(t).step_by(THREADS) {
                    b.delete(name)
                        .unwrap_or_else(|e| panic!("{}: delete {name}: {e}", b.describe()));
                }
            });
        }
    });
    let mut batch = at_once.to_vec();
    batch.push("absent-too.gz".to_string());
    b.delete_many(&batch)
        .unwrap_or_else(|e| panic!("{store}: deleting {} at once: {e}", batch.len()));
    assert_eq!(
        b.list().unwrap(),
        Vec::<String>::new(),
        "{store}: all deleted"
    );
    assert_eq!(b.size("large.difftar.gz").unwrap(), None, "{store}");
}

fn swift_settings(prefix: &str) -> Settings {
    let s = service_env("swift");
    let k = |name: &str| format!("{prefix}_{name}");
    settings(&[
        (&k("AUTHURL"), &s["SWIFT_KEYSTONE_AUTH_URL"]),
        (&k("AUTHVERSION"), "3"),
        (&k("USERNAME"), &s["SWIFT_KEYSTONE_USER"]),
        (&k("PASSWORD"), &s["SWIFT_KEYSTONE_PASSWORD"]),
        (&k("TENANTNAME"), &s["SWIFT_KEYSTONE_PROJECT"]),
        (&k("USER_DOMAIN_NAME"), &s["SWIFT_KEYSTONE_DOMAIN"]),
        (&k("PROJECT_DOMAIN_NAME"), &s["SWIFT_KEYSTONE_DOMAIN"]),
        (&k("REGIONNAME"), &s["SWIFT_KEYSTONE_REGION"]),
    ])
}

fn s3_settings() -> Settings {
    let s = service_env("s3");
    settings(&[
        ("AWS_ACCESS_KEY_ID", &s["AWS_ACCESS_KEY_ID"]),
        ("AWS_SECRET_ACCESS_KEY", &s["AWS_SECRET_ACCESS_KEY"]),
        ("AWS_REGION", &s["AWS_REGION"]),
    ])
}

fn s3_bucket() -> String {
    let bucket = unique("conform");
    boto3(
        &service_env("s3"),
        &bucket,
        "s3.create_bucket(Bucket=bucket)",
    );
    bucket
}

fn sftp_url(dir: &str) -> (String, Settings) {
    let s = service_env("sftp");
    (
        format!(
            "sftp://{}@{}:{}/{dir}",
            s["SFTP_USER"], s["SFTP_HOST"], s["SFTP_PORT"]
        ),
        settings(&[("FTP_PASSWORD", &s["SFTP_PASSWORD"])]),
    )
}

fn open(url: &str, settings: &Settings) -> Box<dyn Backend> {
    backend::open_store(url, settings, &options()).unwrap_or_else(|e| panic!("opening {url}: {e}"))
}

#[test]
fn file_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/target", dir.path().display());
    conforms(&*open(&url, &Settings::new()), MANY);
}

/// With a prefix. (v1 auth is not run through the suite: on the test cluster each v1
/// token is first refused by Keystone, about a second of its time per request, and
/// `swift::swift_keystone_v3_and_tempauth_round_trip_with_duplicity` covers it.)
#[test]
fn swift_with_keystone_v3_conforms() {
    let url = format!("swift://{}/some/prefix", unique("conform"));
    conforms(&*open(&url, &swift_settings("SWIFT")), MANY);
}

#[test]
fn pca_conforms() {
    let url = format!("pca://{}", unique("conform"));
    conforms(&*open(&url, &swift_settings("PCA")), FEW);
}

#[test]
fn s3_conforms() {
    let url = format!("s3://{}/a/prefix", s3_bucket());
    conforms(&*open(&url, &s3_settings()), MANY);
}

/// duplicity's name for its boto3 backend is the same store.
#[test]
fn boto3_s3_alias_conforms() {
    let url = format!("boto3+s3://{}", s3_bucket());
    conforms(&*open(&url, &s3_settings()), FEW);
}

/// par2 recovery files beside each file, on S3. par2 reads `?` and `*` in file names as
/// wildcards: such names are refused with a clear error.
#[test]
fn par2_over_s3_conforms() {
    let url = format!("par2+s3://{}", s3_bucket());
    let b = open(&url, &s3_settings());
    let plain: Vec<&str> = ODD_NAMES
        .iter()
        .copied()
        .filter(|n| !n.contains(['?', '*']))
        .collect();
    conforms_with_names(&*b, FEW, &plain);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("f");
    std::fs::write(&src, b"data").unwrap();
    let e = b.put(&src, "a?b").unwrap_err();
    assert!(e.to_string().contains("wildcards"), "{e}");
}

#[test]
fn sftp_conforms() {
    let (url, settings) = sftp_url(&unique("conform"));
    conforms(&*open(&url, &settings), MANY);
}

/// An rclone remote, defined by environment variables, on the loopback SFTP server.
fn rclone_settings() -> Settings {
    let s = service_env("sftp");
    settings(&[
        ("RCLONE_CONFIG_LOOPSFTP_TYPE", "sftp"),
        ("RCLONE_CONFIG_LOOPSFTP_HOST", &s["SFTP_HOST"]),
        ("RCLONE_CONFIG_LOOPSFTP_PORT", &s["SFTP_PORT"]),
        ("RCLONE_CONFIG_LOOPSFTP_USER", &s["SFTP_USER"]),
        ("RCLONE_CONFIG_LOOPSFTP_KEY_FILE", &s["SFTP_KEY"]),
        (
            "RCLONE_CONFIG_LOOPSFTP_KNOWN_HOSTS_FILE",
            &s["SFTP_KNOWN_HOSTS"],
        ),
    ])
}

/// Each file is a run of the rclone program and an SSH connection, so fewer files.
#[test]
fn rclone_conforms() {
    let url = format!("rclone://loopsftp:/{}", unique("conform"));
    conforms(&*open(&url, &rclone_settings()), FEW);
}

/// A multi:// config over the file system, S3 and SFTP, each store with its own
/// credentials in its `env`.
fn multi(mode: &str, dir: &Path) -> Box<dyn Backend> {
    let env = |s: &Settings| -> String {
        let pairs: Vec<String> = s
            .iter()
            .map(|(k, v)| format!(r#"{{"name": {k:?}, "value": {v:?}}}"#))
            .collect();
        format!("[{}]", pairs.join(", "))
    };
    let (sftp, sftp_env) = sftp_url(&unique("multi"));
    let json = format!(
        r#"[{{"url": "file://{}/store", "description": "disk"}},
            {{"url": "s3://{}", "description": "s3", "env": {}}},
            {{"url": "{sftp}", "description": "sftp", "env": {}}}]"#,
        dir.display(),
        s3_bucket(),
        env(&s3_settings()),
        env(&sftp_env)
    );
    let config = dir.join("multi.json");
    std::fs::write(&config, json).unwrap();
    backend::open(
        &format!("multi://{}?mode={mode}&onfail=abort", config.display()),
        &options(),
    )
    .unwrap()
}

#[test]
fn multi_mirror_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conforms(&*multi("mirror", dir.path()), FEW);
}

#[test]
fn multi_stripe_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conforms(&*multi("stripe", dir.path()), FEW);
}
