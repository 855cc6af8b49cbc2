//! `replicate`: a chain on PCA (the loopback Swift with its sealing emulation) copied to an
//! S3 DEEP_ARCHIVE bucket (the loopback S3 server), as OVH's PCA users move to Cold
//! Archive; ferrodup and the real duplicity restore the copy.

mod common;

use common::services::*;
use common::*;

#[test]
fn a_pca_chain_replicated_to_deep_archive_restores_with_ferrodup_and_duplicity() {
    let swift = service_env("swift");
    let s3 = service_env("s3");
    let mut env: Vec<(String, String)> = vec![
        ("PCA_AUTHURL".into(), swift["SWIFT_V1_AUTH_URL"].clone()),
        ("PCA_AUTHVERSION".into(), "1".into()),
        ("PCA_USERNAME".into(), swift["SWIFT_V1_USER"].clone()),
        ("PCA_PASSWORD".into(), swift["SWIFT_V1_KEY"].clone()),
    ];
    for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
        env.push((k.to_string(), s3[k].clone()));
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let bucket = unique("replica");
    let boto3 = |code: &str| boto3(&s3, &bucket, code);
    boto3("s3.create_bucket(Bucket=bucket)");
    let pca = format!("pca://{}", unique("to-move"));
    let target = format!("s3://{bucket}/moved");
    let endpoint = s3["S3_ENDPOINT_URL"].clone();
    let ferro = |args: &[&str]| {
        let mut a = vec!["--no-encryption", "--s3-endpoint-url", endpoint.as_str()];
        a.extend_from_slice(args);
        fd(w, &env, &a)
    };
    make_fixture_tree(&w.join("src"), 1, true);
    let (t1, t2) = (T1.to_string(), T2.to_string());
    ferro(&[
        "full",
        "--volsize",
        "1",
        "--current-time",
        &t1,
        "--archive-dir",
        "c",
        "src",
        &pca,
    ])
    .ok();
    copy_tree(&w.join("src"), &w.join("state1"));
    edits::state3(&w.join("src"), T2 - 60);
    ferro(&[
        "incremental",
        "--current-time",
        &t2,
        "--archive-dir",
        "c",
        "src",
        &pca,
    ])
    .ok();

    let replicate = |extra: &[&str]| -> Run {
        let mut args = vec!["replicate", "--s3-use-deep-archive", "--archive-dir", "rep"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&pca, &target]);
        ferro(&args).ok()
    };
    // From a fresh archive dir (the manifests come from PCA too), in batches of at most
    // 1 MiB: each set is a batch, planned, thawed and copied before the next is asked for.
    let r = replicate(&["--thaw-batch", "1"]);
    let err = r.stderr();
    assert!(err.contains("Replicate complete: "), "{err}");
    assert!(err.contains("of 2 set(s) copied from pca://"), "{err}");
    for batch in ["batch 1 of 2", "batch 2 of 2"] {
        assert!(
            err.contains(&format!("Replicate plan, {batch}: ")),
            "{batch}: {err}"
        );
    }
    let log = std::fs::read_to_string(
        std::path::Path::new(&swift["SWIFT_STATE_DIR"]).join("log/proxy.log"),
    )
    .unwrap();
    let container = pca.trim_start_matches("pca://");
    let unsealed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("pca: unsealing") && l.contains(&format!("/{container}/")))
        .filter(|l| l.contains(".difftar"))
        .collect();
    let last_full = unsealed.iter().rposition(|l| l.contains("duplicity-full."));
    let first_inc = unsealed.iter().position(|l| l.contains("duplicity-inc."));
    assert!(
        matches!((last_full, first_inc), (Some(f), Some(i)) if f < i),
        "the full set's volumes thaw before the incremental's: {unsealed:#?}"
    );
    let listing = boto3(
        "for o in s3.list_objects_v2(Bucket=bucket)['Contents']:\n    \
         print(o['Key'], o.get('StorageClass', 'STANDARD'))",
    );
    let volumes = listing.lines().filter(|l| l.contains(".difftar")).count();
    assert!(volumes >= 4, "{listing}");
    for line in listing.lines() {
        let want = if line.contains(".difftar") {
            "DEEP_ARCHIVE"
        } else {
            "STANDARD"
        };
        assert!(line.ends_with(want), "{line}");
    }
    // Run again: everything is there, nothing is copied.
    let again = replicate(&[]);
    let said = again.stderr();
    assert!(
        said.contains("Replicate complete: 0 file(s) (0 B) of 2 set(s)")
            && said.contains("8 held there already"),
        "{said}"
    );
    // ferrodup restores both states from the copy (thawing its volumes); then duplicity
    // reads the restored copies.
    ferro(&["restore", "--archive-dir", "f1", &target, "latest"]).ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("latest"),
        "ferrodup restore of the copy",
    );
    ferro(&[
        "restore",
        "--time",
        &t1,
        "--archive-dir",
        "f2",
        &target,
        "first",
    ])
    .ok();
    assert_same_tree(
        &w.join("state1"),
        &w.join("first"),
        "ferrodup restore at T1",
    );
    let aws: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .cloned()
        .collect();
    dup(
        w,
        &aws,
        &[
            "restore",
            "--no-encryption",
            "--s3-endpoint-url",
            &endpoint,
            "--archive-dir",
            "d",
            &target,
            "by-duplicity",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("by-duplicity"),
        "duplicity restore of the copy",
    );
}
