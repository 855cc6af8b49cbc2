//! s3:// against a real S3 server on loopback (moto, with SigV4 checks and GLACIER /
//! DEEP_ARCHIVE objects unreadable until restored), started by `.ci/services`. Objects and
//! storage classes are checked with boto3, and the real duplicity reads what ferrodup writes
//! and the other way round.

mod common;

use common::services::*;
use common::*;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// A runner of ferrodup or duplicity with storage credentials.
type Tool = fn(&Path, &[(String, String)], &[&str]) -> Run;

fn creds(s: &HashMap<String, String>) -> Vec<(String, String)> {
    ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"]
        .iter()
        .map(|k| (k.to_string(), s[*k].clone()))
        .collect()
}

/// Runs a boto3 snippet against the server; `s3` is a path-style client, `bucket` the
/// bucket. Returns what it prints.
fn boto3(s: &HashMap<String, String>, bucket: &str, code: &str) -> String {
    let script = format!(
        "import boto3, sys\nfrom botocore.config import Config\n\
         s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
         aws_access_key_id='{}', aws_secret_access_key='{}', \
         config=Config(signature_version='s3v4', s3={{'addressing_style': 'path'}}))\n\
         bucket = '{bucket}'\n{code}\n",
        s["S3_ENDPOINT_URL"], s["AWS_ACCESS_KEY_ID"], s["AWS_SECRET_ACCESS_KEY"]
    );
    run(Command::new(&s["S3_PYTHON"]).arg("-c").arg(script), "boto3")
        .ok()
        .stdout()
}

fn new_bucket(s: &HashMap<String, String>) -> String {
    let bucket = unique("fd");
    boto3(s, &bucket, "s3.create_bucket(Bucket=bucket)");
    bucket
}

#[test]
fn s3_round_trip_with_duplicity_both_ways() {
    let s = service_env("s3");
    let env = creds(&s);
    let endpoint = s["S3_ENDPOINT_URL"].clone();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let bucket = new_bucket(&s);
    let url = format!("s3://{bucket}/backups/host1");
    make_fixture_tree(&w.join("src"), 1, false);
    let (t1, t2) = (T1.to_string(), T2.to_string());
    let e = ["--s3-endpoint-url", endpoint.as_str()];
    let args =
        |extra: &[&str]| -> Vec<String> { e.iter().chain(extra).map(|a| a.to_string()).collect() };
    let call = |f: Tool, a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        f(w, &env, &a).ok()
    };
    call(
        fd,
        args(&[
            "full",
            "--no-encryption",
            "--archive-dir",
            "c",
            "--current-time",
            &t1,
            "src",
            &url,
        ]),
    );
    copy_tree(&w.join("src"), &w.join("state1"));
    std::fs::remove_dir_all(w.join("src")).unwrap();
    make_fixture_tree(&w.join("src"), 2, false);
    call(
        fd,
        args(&[
            "incremental",
            "--no-encryption",
            "--archive-dir",
            "c",
            "--current-time",
            &t2,
            "src",
            &url,
        ]),
    );
    let keys = boto3(
        &s,
        &bucket,
        "for o in s3.list_objects_v2(Bucket=bucket)['Contents']: print(o['Key'])",
    );
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 6, "{keys:?}");
    assert!(
        keys.iter()
            .all(|k| k.starts_with("backups/host1/duplicity-")),
        "{keys:?}"
    );
    call(
        dup,
        args(&[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "dc",
            &url,
            "by-duplicity",
        ]),
    );
    assert_same_tree(
        &w.join("src"),
        &w.join("by-duplicity"),
        "duplicity restore from s3://",
    );
    call(
        fd,
        args(&[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "fc",
            "--time",
            &t1,
            &url,
            "at-t1",
        ]),
    );
    assert_same_tree(
        &w.join("state1"),
        &w.join("at-t1"),
        "ferrodup restore at T1 from s3://",
    );

    let url = format!("s3://{bucket}/from-duplicity");
    call(
        dup,
        args(&[
            "full",
            "--no-encryption",
            "--archive-dir",
            "dc2",
            "src",
            &url,
        ]),
    );
    call(
        fd,
        args(&[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "fc2",
            &url,
            "from-dup",
        ]),
    );
    assert_same_tree(
        &w.join("src"),
        &w.join("from-dup"),
        "ferrodup restore of duplicity's s3 backup",
    );
}

#[test]
fn deep_archive_volumes_are_restored_before_reading() {
    let s = service_env("s3");
    let env = creds(&s);
    let endpoint = s["S3_ENDPOINT_URL"].clone();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let bucket = new_bucket(&s);
    let url = format!("s3://{bucket}");
    make_fixture_tree(&w.join("src"), 1, true);
    fd(
        w,
        &env,
        &[
            "full",
            "--no-encryption",
            "--volsize",
            "1",
            "--s3-use-deep-archive",
            "--s3-endpoint-url",
            &endpoint,
            "--archive-dir",
            "c",
            "src",
            &url,
        ],
    )
    .ok();
    let classes = boto3(
        &s,
        &bucket,
        "for o in s3.list_objects_v2(Bucket=bucket)['Contents']:\n    \
         print(o['Key'], o.get('StorageClass', 'STANDARD'))",
    );
    let volumes = classes.lines().filter(|l| l.contains(".difftar")).count();
    assert!(volumes >= 3, "{classes}");
    for line in classes.lines() {
        let want = if line.contains(".difftar") {
            "DEEP_ARCHIVE"
        } else {
            "STANDARD"
        };
        assert!(
            line.ends_with(want),
            "{line}: volumes cold, metadata readable"
        );
    }
    // The volumes really are unreadable as they are.
    let probe = boto3(
        &s,
        &bucket,
        "k = [o['Key'] for o in s3.list_objects_v2(Bucket=bucket)['Contents'] if '.difftar' in o['Key']][0]\n\
         try:\n    s3.get_object(Bucket=bucket, Key=k)\n    print('readable')\n\
         except Exception as e:\n    print(type(e).__name__, e)",
    );
    assert!(probe.contains("InvalidObjectState"), "{probe}");
    let r = fd(
        w,
        &env,
        &[
            "restore",
            "--no-encryption",
            "--s3-endpoint-url",
            &endpoint,
            "--s3-restore-tier",
            "Bulk",
            "--archive-dir",
            "r",
            &url,
            "out",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("out"),
        "restore of DEEP_ARCHIVE volumes",
    );
    let err = r.stderr();
    assert!(
        err.contains(&format!("restore {volumes} archived file(s) (Bulk tier")),
        "{err}"
    );
    assert!(err.contains("is restored and downloaded"), "{err}");
}

#[test]
fn s3_errors_are_one_clear_line() {
    let s = service_env("s3");
    let endpoint = s["S3_ENDPOINT_URL"].clone();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::create_dir(w.join("src")).unwrap();
    std::fs::write(w.join("src/f"), "x").unwrap();
    let bucket = new_bucket(&s);
    let check = |env: Vec<(String, String)>, url: &str, extra: &[&str], words: &[&str]| {
        let mut a = vec![
            "full",
            "--no-encryption",
            "--num-retries",
            "1",
            "--s3-endpoint-url",
            &endpoint,
            "--archive-dir",
            "c",
        ];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["src", url]);
        assert_fails(&fd(w, &env, &a), 23, words);
    };
    let mut wrong = creds(&s);
    wrong[1].1.push('x');
    check(
        wrong,
        &format!("s3://{bucket}"),
        &[],
        &["SignatureDoesNotMatch", "AWS_SECRET_ACCESS_KEY"],
    );
    check(
        creds(&s),
        "s3://no-such-bucket-here",
        &[],
        &["no-such-bucket-here", "does not exist"],
    );
    check(
        creds(&s)[1..].to_vec(),
        &format!("s3://{bucket}"),
        &[],
        &["AWS_ACCESS_KEY_ID"],
    );
    check(
        creds(&s),
        &format!("s3://{bucket}"),
        &["--s3-restore-tier", "Fast"],
        &["--s3-restore-tier"],
    );
}
