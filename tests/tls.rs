//! The TLS options (`--ssl-cacert-file`, `--ssl-cacert-path`, `--ssl-no-check-certificate`)
//! and the CA-bundle variables of the clients duplicity uses (boto3's `AWS_CA_BUNDLE`,
//! python-swiftclient's `OS_CACERT` and `SWIFTCLIENT_INSECURE`), against the loopback S3
//! (moto) and Swift behind an HTTPS proxy whose certificate a test CA signed.

mod common;

use common::services::*;
use common::tls::{Pki, TlsProxy};
use common::*;

/// The certificate is refused with one line naming the options that fix it.
fn assert_untrusted(r: &Run) {
    assert_fails(
        r,
        50,
        &[
            "certificate",
            "--ssl-cacert-file",
            "--ssl-cacert-path",
            "--ssl-no-check-certificate",
        ],
    );
}

#[test]
fn s3_over_https_with_a_private_ca() {
    let s = service_env("s3");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let pki = Pki::new(&w.join("pki"));
    let proxy = TlsProxy::start(&pki, &s["S3_ENDPOINT_URL"]);
    let bucket = unique("tls");
    let env: Vec<(String, String)> = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"]
        .iter()
        .map(|k| (k.to_string(), s[*k].clone()))
        .collect();
    // The bucket, made over plain HTTP.
    run(
        std::process::Command::new(&s["S3_PYTHON"])
            .arg("-c")
            .arg(format!(
                "import boto3\nboto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='{}', aws_secret_access_key='{}').create_bucket(Bucket='{bucket}')",
                s["S3_ENDPOINT_URL"], s["AWS_ACCESS_KEY_ID"], s["AWS_SECRET_ACCESS_KEY"]
            )),
        "create bucket",
    )
    .ok();
    make_fixture_tree(&w.join("src"), 1, false);
    let url = format!("s3://{bucket}/b");
    let base = ["--s3-endpoint-url", proxy.url.as_str(), "--no-encryption"];
    let args = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|a| a.to_string()).collect()
    };
    let go = |env: &[(String, String)], a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        fd(w, env, &a)
    };
    let ca = pki.ca.to_str().unwrap();
    let ca_dir = pki.ca_dir.to_str().unwrap();

    let r = go(&env, args(&["full", "--archive-dir", "c0", "src", &url]));
    assert_untrusted(&r);
    go(
        &env,
        args(&[
            "full",
            "--ssl-cacert-file",
            ca,
            "--archive-dir",
            "c1",
            "src",
            &url,
        ]),
    )
    .ok();
    for (n, extra) in [
        vec!["--ssl-cacert-path", ca_dir],
        vec!["--ssl-no-check-certificate"],
    ]
    .into_iter()
    .enumerate()
    {
        let out = format!("out{n}");
        let cache = format!("rc{n}");
        let mut a = extra.clone();
        a.extend(["restore", "--archive-dir", &cache, &url, &out]);
        go(&env, args(&a)).ok();
        assert_same_tree(
            &w.join("src"),
            &w.join(&out),
            &format!("restore with {extra:?}"),
        );
    }
    // boto3's variable, as duplicity's S3 backend reads it.
    let mut with_bundle = env.clone();
    with_bundle.push(("AWS_CA_BUNDLE".into(), ca.into()));
    go(
        &with_bundle,
        args(&["restore", "--archive-dir", "rc9", &url, "out9"]),
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("out9"),
        "restore with AWS_CA_BUNDLE",
    );
    // A CA file that is not one is a clear error.
    let r = go(
        &env,
        args(&["restore", "--ssl-cacert-file", "src/fileA", &url, "outx"]),
    );
    assert_fails(&r, 23, &["--ssl-cacert-file", "src/fileA"]);
}

#[test]
fn swift_over_https_with_a_private_ca() {
    let s = service_env("swift");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let pki = Pki::new(&w.join("pki"));
    let proxy = TlsProxy::start(&pki, &s["SWIFT_PROXY_URL"]);
    // A token from tempauth over plain HTTP; the storage URL through the HTTPS proxy.
    let auth = ureq::get(&s["SWIFT_V1_AUTH_URL"])
        .header("X-Auth-User", &s["SWIFT_V1_USER"])
        .header("X-Auth-Key", &s["SWIFT_V1_KEY"])
        .call()
        .unwrap();
    let token = auth.headers()["x-auth-token"].to_str().unwrap().to_string();
    let path = s["SWIFT_V1_STORAGE_URL"]
        .split_once("/v1/")
        .map(|(_, p)| p.to_string())
        .unwrap();
    let env = vec![
        (
            "SWIFT_PREAUTHURL".to_string(),
            format!("{}/v1/{path}", proxy.url),
        ),
        ("SWIFT_PREAUTHTOKEN".to_string(), token),
    ];
    make_fixture_tree(&w.join("src"), 1, false);
    let url = format!("swift://{}", unique("tls"));
    let ca = pki.ca.to_str().unwrap();
    let ca_dir = pki.ca_dir.to_str().unwrap();
    let go = |env: &[(String, String)], a: &[&str]| {
        let mut all = vec!["--no-encryption"];
        all.extend_from_slice(a);
        fd(w, env, &all)
    };

    assert_untrusted(&go(&env, &["full", "--archive-dir", "c0", "src", &url]));
    go(
        &env,
        &[
            "full",
            "--ssl-cacert-path",
            ca_dir,
            "--archive-dir",
            "c1",
            "src",
            &url,
        ],
    )
    .ok();
    go(
        &env,
        &[
            "restore",
            "--ssl-cacert-file",
            ca,
            "--archive-dir",
            "r1",
            &url,
            "out1",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("out1"),
        "restore with --ssl-cacert-file",
    );
    go(
        &env,
        &[
            "restore",
            "--ssl-no-check-certificate",
            "--archive-dir",
            "r2",
            &url,
            "out2",
        ],
    )
    .ok();
    assert_same_tree(&w.join("src"), &w.join("out2"), "restore, no check");
    // python-swiftclient's variables, as duplicity's Swift backend reads them.
    for (n, var, value) in [(3, "OS_CACERT", ca), (4, "SWIFTCLIENT_INSECURE", "true")] {
        let mut e = env.clone();
        e.push((var.into(), value.into()));
        let (cache, out) = (format!("r{n}"), format!("out{n}"));
        go(&e, &["restore", "--archive-dir", &cache, &url, &out]).ok();
        assert_same_tree(
            &w.join("src"),
            &w.join(&out),
            &format!("restore with {var}"),
        );
    }
}
