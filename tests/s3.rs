//! s3:// against a real S3 server on loopback (moto, with SigV4 checks and GLACIER /
//! DEEP_ARCHIVE objects unreadable until restored), started by `.ci/services`. Objects and
//! storage classes are checked with boto3, and the real duplicity reads what ferrodup writes
//! and the other way round.

mod common;

use common::services::*;
use common::*;
use std::collections::HashMap;
use std::path::Path;

/// A runner of ferrodup or duplicity with storage credentials.
type Tool = fn(&Path, &[(String, String)], &[&str]) -> Run;

fn creds(s: &HashMap<String, String>) -> Vec<(String, String)> {
    ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"]
        .iter()
        .map(|k| (k.to_string(), s[*k].clone()))
        .collect()
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

/// `check` on DEEP_ARCHIVE volumes: one listing compares every volume by size and MD5
/// (the ETag), with no GET or restore request for any of them (counted at a proxy in
/// front of the server); a deleted and a replaced volume are named.
#[test]
fn check_compares_archived_volumes_from_the_listing_alone() {
    let s = service_env("s3");
    let env = creds(&s);
    let endpoint = s["S3_ENDPOINT_URL"].clone();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let bucket = new_bucket(&s);
    let url = format!("s3://{bucket}/host");
    make_fixture_tree(&w.join("src"), 1, true);
    let proxy = common::proxy::Proxy::start(&endpoint);
    let with = |args: &[&str]| {
        let mut a = vec!["--s3-endpoint-url", proxy.url.as_str(), "--no-encryption"];
        a.extend_from_slice(args);
        fd(w, &env, &a)
    };
    with(&[
        "full",
        "--volsize",
        "1",
        "--s3-use-deep-archive",
        "--archive-dir",
        "c",
        "src",
        &url,
    ])
    .ok();
    let volumes: Vec<String> = boto3(
        &s,
        &bucket,
        "for o in s3.list_objects_v2(Bucket=bucket)['Contents']:\n    print(o['Key'])",
    )
    .lines()
    .filter(|k| k.contains(".difftar"))
    .map(str::to_string)
    .collect();
    assert!(volumes.len() >= 3, "{volumes:?}");
    let before = proxy.log().len();
    let r = with(&["check", "--archive-dir", "fresh", &url]).ok();
    let err = r.stderr();
    let n = volumes.len();
    assert!(err.contains(&format!("({n} by content")), "{err}");
    assert!(err.contains("0 problem(s) found"), "{err}");
    let requests = proxy.log()[before..].to_vec();
    assert!(
        !requests
            .iter()
            .any(|l| l.contains(".difftar") || l.contains("restore")),
        "no request named a volume: {requests:?}"
    );
    // One volume deleted, one replaced by other bytes of the same length.
    let (gone, other) = (&volumes[0], &volumes[1]);
    boto3(
        &s,
        &bucket,
        &format!(
            "s3.delete_object(Bucket=bucket, Key='{gone}')\n\
             n = s3.head_object(Bucket=bucket, Key='{other}')['ContentLength']\n\
             s3.put_object(Bucket=bucket, Key='{other}', Body=b'x' * n, StorageClass='DEEP_ARCHIVE')"
        ),
    );
    let r = with(&["check", "--archive-dir", "c", &url]);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    let err = r.stderr();
    let short = |k: &str| k.trim_start_matches("host/").to_string();
    assert!(
        err.contains(&format!("{} (volume 1 of ", short(gone)))
            && err.contains("is missing from s3://"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{} on s3://{bucket}/host has other content",
            short(other)
        )),
        "{err}"
    );
    assert!(err.contains("2 problem(s) found"), "{err}");
}

/// A restore from DEEP_ARCHIVE: `--dry-run` prints the plan (every volume to thaw, their
/// bytes, AWS's wait for the tier) and sends no restore request; a restore killed once it
/// has asked for the restores, run again, asks for none twice (POSTs counted at a proxy)
/// and restores the tree.
#[test]
fn restore_plan_and_a_rerun_that_asks_for_no_restore_twice() {
    let s = service_env("s3");
    let env = creds(&s);
    let endpoint = s["S3_ENDPOINT_URL"].clone();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let bucket = new_bucket(&s);
    let url = format!("s3://{bucket}");
    make_fixture_tree(&w.join("src"), 1, true);
    let proxy = common::proxy::Proxy::start(&endpoint);
    let args = |more: &[&'static str]| -> Vec<String> {
        let mut a = vec!["--s3-endpoint-url".to_string(), proxy.url.clone()];
        a.extend(["--no-encryption", "--s3-restore-tier", "Bulk"].map(str::to_string));
        a.extend(more.iter().map(|m| m.to_string()));
        a
    };
    // The arguments with "URL" standing for the target.
    let with = |more: &[&'static str], url: &str| -> Vec<String> {
        args(more)
            .into_iter()
            .map(|a| if a == "URL" { url.to_string() } else { a })
            .collect()
    };
    let run = |a: Vec<String>| fd(w, &env, &a.iter().map(String::as_str).collect::<Vec<_>>());
    run(with(
        &[
            "full",
            "--volsize",
            "1",
            "--s3-use-deep-archive",
            "--archive-dir",
            "c",
            "src",
            "URL",
        ],
        &url,
    ))
    .ok();
    let sizes = boto3(
        &s,
        &bucket,
        "for o in s3.list_objects_v2(Bucket=bucket)['Contents']:\n    \
         print(o['Key'], o['Size'])",
    );
    let volumes: Vec<(&str, u64)> = sizes
        .lines()
        .filter(|l| l.contains(".difftar"))
        .map(|l| {
            let (k, n) = l.split_once(' ').unwrap();
            (k, n.parse().unwrap())
        })
        .collect();
    let n = volumes.len();
    assert!(n >= 3, "{sizes}");
    let size = ferrodup::live::size_text(volumes.iter().map(|v| v.1).sum());
    let restores = || {
        proxy
            .log()
            .iter()
            .filter(|l| l.starts_with("POST ") && l.contains("restore"))
            .count()
    };
    let plan = run(with(
        &["restore", "--dry-run", "--archive-dir", "r", "URL", "out"],
        &url,
    ))
    .ok()
    .stderr();
    assert!(
        plan.contains(&format!(
            "s3://{bucket}: {n} volume(s), {size}: 0 readable now, {n} to thaw, {size} (wait: \
             as the provider documents it (AWS: within 48 hours))"
        )),
        "{plan}"
    );
    assert_eq!(restores(), 0, "the dry run asked for no restore");
    assert!(!w.join("out").exists());
    let a = with(&["restore", "--archive-dir", "r", "URL", "out"], &url);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let first = fd_killed_after(w, &env, &a, "archived file(s)");
    assert!(
        first.contains(&format!("restore {n} archived file(s)")),
        "{first}"
    );
    assert_eq!(restores(), n);
    std::fs::remove_dir_all(w.join("out")).ok();
    let again = fd(w, &env, &a).ok().stderr();
    assert!(
        !again.contains("to thaw") && !again.contains("archived file(s)"),
        "{again}"
    );
    assert_eq!(restores(), n, "no restore was asked for twice");
    assert_same_tree(
        &w.join("src"),
        &w.join("out"),
        "restore after a killed restore",
    );
}

/// remove-all-but-n-full on GLACIER volumes younger than 90 days warns what deleting them
/// costs, and with --force deletes them anyway; `--min-storage-days 0` silences it.
#[test]
fn early_deletion_of_archived_volumes_is_warned_about_and_still_done() {
    let s = service_env("s3");
    let env = creds(&s);
    let endpoint = s["S3_ENDPOINT_URL"].clone();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let bucket = new_bucket(&s);
    let url = format!("s3://{bucket}");
    make_fixture_tree(&w.join("src"), 1, false);
    let run = |more: &[&str]| {
        let mut a = vec!["--s3-endpoint-url", endpoint.as_str(), "--no-encryption"];
        a.extend_from_slice(more);
        fd(w, &env, &a)
    };
    let (t1, t2, t3) = (T1.to_string(), T2.to_string(), (T2 + 86_400).to_string());
    for t in [&t1, &t2, &t3] {
        run(&[
            "full",
            "--s3-use-glacier",
            "--current-time",
            t,
            "--archive-dir",
            "c",
            "src",
            &url,
        ])
        .ok();
    }
    let volumes = || {
        boto3(
            &s,
            &bucket,
            "for o in s3.list_objects_v2(Bucket=bucket)['Contents']:\n    print(o['Key'])",
        )
        .lines()
        .filter(|k| k.contains(".difftar"))
        .count()
    };
    assert_eq!(volumes(), 3);
    let quiet = run(&[
        "remove-all-but-n-full",
        "2",
        "--min-storage-days",
        "0",
        "--archive-dir",
        "c",
        &url,
    ])
    .ok();
    assert!(
        !quiet.stderr().contains("minimum storage"),
        "{}",
        quiet.stderr()
    );
    let r = run(&[
        "remove-all-but-n-full",
        "1",
        "--force",
        "--archive-dir",
        "c",
        &url,
    ])
    .ok();
    let err = r.stderr();
    assert!(
        err.contains(&format!(
            "to delete on s3://{bucket} are younger than their minimum storage period \
             (90 days; the youngest "
        )) && err.contains("--force deletes them anyway"),
        "{err}"
    );
    assert_eq!(volumes(), 1, "the two older chains were deleted: {err}");
}

/// `--object-lock-days`: every file of the backup is stored under Object Lock (mode and
/// date seen by boto3), the multipart volume too; remove-* refuses to delete locked chains
/// with one line and deletes nothing; unlocked files in the same bucket are deleted for
/// good (no version left behind a delete marker).
#[test]
fn object_lock_keeps_volumes_from_deletion_until_their_date() {
    let s = service_env("s3");
    let env = creds(&s);
    let endpoint = s["S3_ENDPOINT_URL"].clone();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let bucket = unique("lock");
    boto3(
        &s,
        &bucket,
        "s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)",
    );
    make_fixture_tree(&w.join("src"), 1, false);
    std::fs::write(w.join("src/random.bin"), edits::prng_bytes(3, 6 << 20)).unwrap();
    let run = |more: &[&str]| {
        let mut a = vec!["--s3-endpoint-url", endpoint.as_str(), "--no-encryption"];
        a.extend_from_slice(more);
        fd(w, &env, &a)
    };
    let (t1, t2, t3) = (T1.to_string(), T2.to_string(), (T2 + 86_400).to_string());
    let locked = format!("s3://{bucket}/locked");
    for t in [&t1, &t2] {
        run(&[
            "full",
            "--object-lock-days",
            "2",
            "--s3-multipart-chunk-size",
            "5",
            "--current-time",
            t,
            "--archive-dir",
            "c",
            "src",
            &locked,
        ])
        .ok();
    }
    let retention = boto3(
        &s,
        &bucket,
        "import datetime\n\
         for o in s3.list_objects_v2(Bucket=bucket, Prefix='locked/')['Contents']:\n    \
         h = s3.head_object(Bucket=bucket, Key=o['Key'])\n    \
         left = h['ObjectLockRetainUntilDate'] - datetime.datetime.now(datetime.timezone.utc)\n    \
         print(o['Key'], h['ObjectLockMode'], round(left.total_seconds() / 86400))",
    );
    assert_eq!(retention.lines().count(), 6, "{retention}");
    assert!(
        retention.lines().all(|l| l.ends_with(" GOVERNANCE 2")),
        "{retention}"
    );
    let r = run(&[
        "remove-all-but-n-full",
        "1",
        "--force",
        "--archive-dir",
        "c",
        &locked,
    ]);
    assert_fails(
        &r,
        r.code(),
        &[
            "locked by S3 Object Lock (GOVERNANCE retention)",
            "nothing was deleted",
        ],
    );
    assert_ne!(r.code(), 0);
    let count = |prefix: &str| {
        boto3(
            &s,
            &bucket,
            &format!(
                "v = s3.list_object_versions(Bucket=bucket, Prefix='{prefix}')\n\
                 print(len(v.get('Versions', [])), len(v.get('DeleteMarkers', [])))"
            ),
        )
        .trim()
        .to_string()
    };
    assert_eq!(count("locked/"), "6 0", "nothing deleted, nothing hidden");
    // Without --object-lock-days, files in the same bucket are deleted for good.
    let open = format!("s3://{bucket}/open");
    for t in [&t1, &t3] {
        run(&[
            "full",
            "--current-time",
            t,
            "--archive-dir",
            "c2",
            "src",
            &open,
        ])
        .ok();
    }
    run(&[
        "remove-all-but-n-full",
        "1",
        "--force",
        "--archive-dir",
        "c2",
        &open,
    ])
    .ok();
    assert_eq!(
        count("open/"),
        "3 0",
        "the old chain's 3 files are gone, versions and all"
    );
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

/// The names at the target whose name contains `part`.
fn keys_with(s: &HashMap<String, String>, bucket: &str, prefix: &str, part: &str) -> Vec<String> {
    boto3(
        s,
        bucket,
        &format!(
            "for o in s3.list_objects_v2(Bucket=bucket, Prefix='{prefix}/').get('Contents', []):\n    \
             print(o['Key'])"
        ),
    )
    .lines()
    .filter(|k| k.contains(part))
    .map(str::to_string)
    .collect()
}

/// `ServerSideEncryption ETag SSEKMSKeyId` of an object, from moto's answer to HEAD.
fn head_sse(s: &HashMap<String, String>, bucket: &str, key: &str) -> String {
    boto3(
        s,
        bucket,
        &format!(
            "h = s3.head_object(Bucket=bucket, Key='{key}')\n\
             print(h.get('ServerSideEncryption'), h['ETag'].strip('\"'), h.get('SSEKMSKeyId'))"
        ),
    )
    .trim()
    .to_string()
}

#[test]
fn sse_and_multipart_uploads_restore_with_ferrodup_and_duplicity() {
    let s = service_env("s3");
    let env = creds(&s);
    let endpoint = s["S3_ENDPOINT_URL"].clone();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let bucket = new_bucket(&s);
    // 11 MiB that gzip cannot shrink: one volume of three 5 MiB parts.
    std::fs::create_dir(w.join("src")).unwrap();
    std::fs::write(
        w.join("src/big.bin"),
        common::edits::prng_bytes(9, 11 << 20),
    )
    .unwrap();
    std::fs::write(w.join("src/small.txt"), b"small\n").unwrap();
    let e = ["--s3-endpoint-url", endpoint.as_str(), "--no-encryption"];
    let with =
        |extra: &[&str]| -> Vec<String> { e.iter().chain(extra).map(|a| a.to_string()).collect() };
    let call = |f: Tool, a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        f(w, &env, &a)
    };

    // SSE-S3 with multipart: 5 MiB parts, two at a time.
    let url = format!("s3://{bucket}/sse");
    call(
        fd,
        with(&[
            "full",
            "--volsize",
            "50",
            "--s3-use-server-side-encryption",
            "--s3-multipart-chunk-size",
            "5",
            "--s3-multipart-max-procs",
            "2",
            "--archive-dir",
            "c1",
            "src",
            &url,
        ]),
    )
    .ok();
    let vols = keys_with(&s, &bucket, "sse", ".difftar");
    assert_eq!(vols.len(), 1, "one volume: {vols:?}");
    let head = head_sse(&s, &bucket, &vols[0]);
    assert!(
        head.starts_with("AES256 ") && head.contains("-3 "),
        "the volume is an SSE-S3 object of 3 parts: {head}"
    );
    let manifest = &keys_with(&s, &bucket, "sse", ".manifest")[0];
    let head = head_sse(&s, &bucket, manifest);
    assert!(
        head.starts_with("AES256 ") && !head.contains('-'),
        "the manifest is one SSE-S3 object: {head}"
    );
    call(
        fd,
        with(&["restore", "--archive-dir", "c2", &url, "fd-out"]),
    )
    .ok();
    assert_same_tree(&w.join("src"), &w.join("fd-out"), "ferrodup restore");
    call(
        dup,
        with(&["restore", "--archive-dir", "c3", &url, "dup-out"]),
    )
    .ok();
    assert_same_tree(&w.join("src"), &w.join("dup-out"), "duplicity restore");

    // SSE-KMS with a grant; below the chunk size, one PUT per file.
    let url = format!("s3://{bucket}/kms");
    call(
        fd,
        with(&[
            "full",
            "--s3-use-server-side-kms-encryption",
            "--s3-kms-key-id",
            "fd-test-key",
            "--s3-kms-grant",
            "id=fd-test-grantee",
            "--archive-dir",
            "c4",
            "src",
            &url,
        ]),
    )
    .ok();
    let vol = &keys_with(&s, &bucket, "kms", ".difftar")[0];
    let head = head_sse(&s, &bucket, vol);
    assert!(
        head.starts_with("aws:kms ")
            && !head.split(' ').nth(1).unwrap_or("-").contains('-')
            && head.ends_with(" fd-test-key"),
        "the volume is one SSE-KMS object under the key: {head}"
    );
    call(
        fd,
        with(&["restore", "--archive-dir", "c5", &url, "kms-out"]),
    )
    .ok();
    assert_same_tree(&w.join("src"), &w.join("kms-out"), "restore of SSE-KMS");

    // SSE-KMS without its key stops before anything is stored.
    let r = call(
        fd,
        with(&[
            "full",
            "--s3-use-server-side-kms-encryption",
            "src",
            &format!("s3://{bucket}/nokey"),
        ]),
    );
    assert_fails(&r, 49, &["--s3-kms-key-id"]);
    assert!(keys_with(&s, &bucket, "nokey", "").is_empty());
    // As in duplicity, only s3:// reads the encryption options.
    fd(
        w,
        &env,
        &[
            "full",
            "--no-encryption",
            "--s3-use-server-side-kms-encryption",
            "src",
            "file://local",
        ],
    )
    .ok();
    // duplicity 2.0.0 removed --s3-use-multiprocessing and refuses it.
    let r = fd(
        w,
        &env,
        &["full", "--s3-use-multiprocessing", "src", "file://local2"],
    );
    assert_fails(&r, 23, &["--s3-use-multiprocessing", "2.0.0"]);

    // A part that keeps failing fails the backup, and the upload is aborted: S3 keeps
    // none of its parts.
    let proxy = common::proxy::Proxy::start(&endpoint);
    proxy.add(
        common::proxy::rule("PUT", "partNumber=2", common::proxy::Fault::Status(500)).always(),
    );
    let r = call(
        fd,
        vec![
            "full",
            "--no-encryption",
            "--s3-endpoint-url",
            &proxy.url,
            "--s3-multipart-chunk-size",
            "5",
            "--num-retries",
            "2",
            "--backend-retry-delay",
            "0",
            "--archive-dir",
            "c6",
            "src",
            &format!("s3://{bucket}/failing"),
        ]
        .into_iter()
        .map(str::to_string)
        .collect(),
    );
    assert_fails(&r, 50, &["part 2", "HTTP 500"]);
    assert_eq!(proxy.hits(), vec![2], "part 2 was tried once per attempt");
    let uploads = boto3(
        &s,
        &bucket,
        "print(len(s3.list_multipart_uploads(Bucket=bucket).get('Uploads', [])))",
    );
    assert_eq!(uploads.trim(), "0", "every multipart upload was aborted");
}

/// `--s3-multipart-max-procs` bounds the parts of one file in flight: with 3, four parts
/// go three at once, never four; the object restores.
#[test]
fn multipart_parts_upload_in_parallel_up_to_the_bound() {
    use common::proxy::{rule, Fault, Proxy};
    let s = service_env("s3");
    let env = creds(&s);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let bucket = new_bucket(&s);
    let url = format!("s3://{bucket}/host1");
    // 16 MiB that gzip cannot shrink: one volume of four 5 MiB parts (the last short).
    std::fs::create_dir(w.join("src")).unwrap();
    std::fs::write(w.join("src/big.bin"), edits::prng_bytes(7, 16 << 20)).unwrap();
    let proxy = Proxy::start(&s["S3_ENDPOINT_URL"]);
    proxy.add(
        rule(
            "PUT",
            "partNumber=",
            Fault::Delay(std::time::Duration::from_millis(500)),
        )
        .always(),
    );
    fd(
        w,
        &env,
        &[
            "full",
            "--no-encryption",
            "--archive-dir",
            "c",
            "--s3-endpoint-url",
            &proxy.url,
            "--s3-multipart-chunk-size",
            "5",
            "--s3-multipart-max-procs",
            "3",
            "src",
            &url,
        ],
    )
    .ok();
    let parts = proxy
        .log()
        .iter()
        .filter(|l| l.starts_with("PUT ") && l.contains("partNumber="))
        .count();
    assert_eq!(parts, 4, "one volume of four parts: {:#?}", proxy.log());
    assert_eq!(
        proxy.peak("PUT"),
        3,
        "three parts in flight at once, never four"
    );
    fd(
        w,
        &env,
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "c",
            "--s3-endpoint-url",
            &s["S3_ENDPOINT_URL"],
            &url,
            "out",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("out"),
        "restore of a multipart volume",
    );
}

/// Credentials from a named profile of the AWS shared files (no AWS_* keys in the
/// environment), as the AWS tools and boto3 find them: ferrodup backs up with them,
/// duplicity (boto3) restores with the same profile, and with neither keys nor profile
/// the error says where credentials are looked for.
#[test]
fn credentials_come_from_an_aws_profile() {
    let s = service_env("s3");
    let endpoint = s["S3_ENDPOINT_URL"].clone();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let bucket = new_bucket(&s);
    let url = format!("s3://{bucket}/profiled");
    let aws = w.join("aws");
    std::fs::create_dir(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        format!(
            "[default]\naws_access_key_id = AKIAWRONGWRONGWRONG\naws_secret_access_key = x\n\n\
             [backup]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            s["AWS_ACCESS_KEY_ID"], s["AWS_SECRET_ACCESS_KEY"]
        ),
    )
    .unwrap();
    std::fs::write(aws.join("config"), "[profile backup]\nregion = us-east-1\n").unwrap();
    let env: Vec<(String, String)> = vec![
        ("AWS_PROFILE".into(), "backup".into()),
        (
            "AWS_SHARED_CREDENTIALS_FILE".into(),
            aws.join("credentials").display().to_string(),
        ),
        (
            "AWS_CONFIG_FILE".into(),
            aws.join("config").display().to_string(),
        ),
    ];
    make_fixture_tree(&w.join("src"), 1, false);
    let e = endpoint.as_str();
    fd(
        w,
        &env,
        &[
            "full",
            "--no-encryption",
            "--s3-endpoint-url",
            e,
            "--archive-dir",
            "c",
            "src",
            &url,
        ],
    )
    .ok();
    let stored = boto3(
        &s,
        &bucket,
        "print(len(s3.list_objects_v2(Bucket=bucket)['Contents']))",
    );
    assert!(stored.trim().parse::<u32>().unwrap() >= 3, "{stored}");
    dup(
        w,
        &env,
        &[
            "restore",
            "--no-encryption",
            "--s3-endpoint-url",
            e,
            "--archive-dir",
            "d",
            &url,
            "out",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("out"),
        "duplicity restore with the profile",
    );
    let r = fd(
        w,
        &[],
        &[
            "collection-status",
            "--no-encryption",
            "--s3-endpoint-url",
            e,
            &url,
        ],
    );
    assert_fails(&r, 23, &["found no AWS credentials", "AWS_PROFILE"]);
}
