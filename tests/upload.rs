//! Parallel uploads (`--concurrency N`): backups with many small volumes to file:// and to
//! the real Swift (behind the test proxy, which counts the uploads in flight) restore byte
//! for byte with ferrodup and with the real duplicity, the manifest lists the volumes in
//! order, the uploads in flight reach N and never more, and a volume whose upload fails
//! leaves a set that the next run resumes. With N = 1, uploads still overlap making the
//! next volumes, and at most N + 3 volumes are in the temporary folder.

mod common;

use common::edits::prng_bytes;
use common::proxy::{rule, Fault, Proxy};
use common::services::*;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Duplicity's fixture tree and `files` files of 2.5 MB of incompressible data: about
/// 2.5 volumes of 1 MiB each.
fn make_source(w: &Path, files: u64) {
    let src = w.join("src");
    make_fixture_tree(&src, 1, false);
    for k in 0..files {
        std::fs::write(
            src.join(format!("random{k}.bin")),
            prng_bytes(40 + k, 2_500_000),
        )
        .unwrap();
    }
    set_mtime(&src, T1 - 10);
}

/// The volume numbers a manifest lists, in the order it lists them.
fn manifest_volumes(path: &Path) -> Vec<u32> {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| l.strip_prefix("Volume "))
        .map(|l| l.trim_end_matches(':').parse().unwrap())
        .collect()
}

fn assert_in_order(vols: &[u32], count: usize, what: &str) {
    let want: Vec<u32> = (1..=count as u32).collect();
    assert_eq!(vols, want, "{what}: manifest volumes");
}

/// Volume names among `names`.
fn volumes(names: &[String]) -> usize {
    names.iter().filter(|n| n.contains(".vol")).count()
}

#[test]
fn file_target_with_concurrency_4_restores_and_duplicity_reads_it_asynchronous_upload_accepted() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_source(w, 3);
    let url = format!("file://{}/target", w.display());
    let t = T1.to_string();
    let r = ferrodup(
        w,
        &[
            "full",
            "--no-encryption",
            "--asynchronous-upload",
            "--concurrency",
            "4",
            "--volsize",
            "1",
            "--archive-dir",
            "cache",
            "--name",
            "n",
            "--current-time",
            &t,
            "src",
            &url,
        ],
    )
    .ok();
    let err = r.stderr();
    let warned = err
        .lines()
        .filter(|l| l.contains("--asynchronous-upload"))
        .count();
    assert_eq!(
        warned,
        1,
        "one warning for --asynchronous-upload: {}",
        r.stderr()
    );
    let names: Vec<String> = std::fs::read_dir(w.join("target"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let count = volumes(&names);
    assert!(count >= 7, "want many volumes, got {names:?}");
    let man = w.join("cache/n/duplicity-full.20240101T120000Z.manifest");
    assert_in_order(&manifest_volumes(&man), count, "file://");
    ferrodup(
        w,
        &[
            "restore",
            "--archive-dir",
            "cache",
            "--name",
            "n",
            &url,
            "out",
        ],
    )
    .ok();
    assert_same_tree(&w.join("src"), &w.join("out"), "ferrodup restore");
    duplicity_restore_matches(
        w,
        &url,
        T1,
        &[],
        &w.join("dout"),
        &w.join("src"),
        "duplicity restore",
    );
}

/// Volume numbers of the files under `dir` named like ferrodup's spooled volumes
/// (`ferrodup-PID-volN`, and `.stored` while compressed).
fn spooled(dir: &Path, found: &mut std::collections::BTreeSet<u32>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if e.file_type().unwrap().is_dir() {
            spooled(&e.path(), found);
        } else if let Some((_, n)) = name.split_once("-vol") {
            found.insert(n.split('.').next().unwrap().parse().unwrap());
        }
    }
}

/// With `--concurrency 1` volumes are stored while later ones are made, and the volumes in
/// flight stay within 1 + 3: the run is stopped (SIGSTOP) as volume 8 is cut.
#[test]
fn with_concurrency_1_uploads_overlap_making_and_in_flight_volumes_are_bounded() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_source(w, 4);
    std::fs::create_dir(w.join("tmp")).unwrap();
    let url = format!("file://{}/target", w.display());
    let mut child = std::process::Command::new(ferrodup_bin())
        .current_dir(w)
        .env("FERRODUP_FAILPOINT", "volume-cut:8:stop")
        .args([
            "full",
            "--no-encryption",
            "--concurrency",
            "1",
            "--volsize",
            "1",
            "--tempdir",
            "tmp",
            "--archive-dir",
            "cache",
        ])
        .arg(w.join("src"))
        .arg(&url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stat = format!("/proc/{}/stat", child.id());
    let stopped = (0..600).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        let s = std::fs::read_to_string(&stat).unwrap_or_default();
        s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('T'))
    });
    let stored = std::fs::read_dir(w.join("target")).map_or(0, |d| {
        d.filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".difftar.gz")
        })
        .count()
    });
    let mut in_flight = std::collections::BTreeSet::new();
    spooled(&w.join("tmp"), &mut in_flight);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(stopped, "ferrodup never reached volume-cut:8");
    assert!(
        stored >= 8 - 4,
        "{stored} volumes stored while volume 8 was made"
    );
    assert!(
        in_flight.contains(&8) && in_flight.len() <= 4,
        "volumes in the temporary folder: {in_flight:?}"
    );
}

/// A new container or bucket behind a proxy that delays every request.
struct Store {
    proxy: Proxy,
    /// ferrodup's settings: through the proxy.
    env: Vec<(String, String)>,
    opts: Vec<String>,
    /// duplicity's: straight to the server.
    dup_env: Vec<(String, String)>,
    dup_opts: Vec<String>,
    url: String,
    /// Lists the target's object names, straight from the server.
    lister: Box<dyn Fn() -> Vec<String>>,
}

/// Swift, with a tempauth token for ferrodup and tempauth credentials for duplicity.
fn swift(delay: Duration) -> Store {
    let s = service_env("swift");
    let proxy = Proxy::start(&s["SWIFT_PROXY_URL"]);
    proxy.add(rule("", "", Fault::Delay(delay)).always());
    let r = ureq::get(&s["SWIFT_V1_AUTH_URL"])
        .header("X-Auth-User", &s["SWIFT_V1_USER"])
        .header("X-Auth-Key", &s["SWIFT_V1_KEY"])
        .call()
        .expect("tempauth login");
    let token = r.headers()["x-auth-token"].to_str().unwrap().to_string();
    let storage = s["SWIFT_V1_STORAGE_URL"].clone();
    let path = storage[storage.find("/v1/").expect("a /v1/ storage URL")..].to_string();
    let container = unique("upload");
    let listing = format!("{storage}/{container}");
    let env = vec![
        ("SWIFT_PREAUTHURL".into(), format!("{}{path}", proxy.url)),
        ("SWIFT_PREAUTHTOKEN".into(), token.clone()),
    ];
    Store {
        proxy,
        env,
        opts: Vec::new(),
        dup_env: vec![
            ("SWIFT_AUTHURL".into(), s["SWIFT_V1_AUTH_URL"].clone()),
            ("SWIFT_AUTHVERSION".into(), "1".into()),
            ("SWIFT_USERNAME".into(), s["SWIFT_V1_USER"].clone()),
            ("SWIFT_PASSWORD".into(), s["SWIFT_V1_KEY"].clone()),
        ],
        dup_opts: Vec::new(),
        url: format!("swift://{container}/host1"),
        lister: Box::new(move || {
            let mut r = ureq::get(&listing)
                .header("X-Auth-Token", &token)
                .call()
                .expect("container listing");
            let body = r.body_mut().read_to_string().unwrap();
            body.lines().map(str::to_string).collect()
        }),
    }
}

/// S3 (moto), with a bucket made and listed with boto3.
fn s3(delay: Duration) -> Store {
    let s = service_env("s3");
    let proxy = Proxy::start(&s["S3_ENDPOINT_URL"]);
    proxy.add(rule("", "", Fault::Delay(delay)).always());
    let bucket = unique("upload");
    let client = format!(
        "import boto3\nfrom botocore.config import Config\n\
         s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
         aws_access_key_id='{}', aws_secret_access_key='{}', \
         config=Config(signature_version='s3v4', s3={{'addressing_style': 'path'}}))\n",
        s["S3_ENDPOINT_URL"], s["AWS_ACCESS_KEY_ID"], s["AWS_SECRET_ACCESS_KEY"]
    );
    let python = s["S3_PYTHON"].clone();
    run(
        Command::new(&python)
            .arg("-c")
            .arg(format!("{client}s3.create_bucket(Bucket='{bucket}')\n")),
        "boto3 create_bucket",
    )
    .ok();
    let env: Vec<(String, String)> = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"]
        .iter()
        .map(|k| (k.to_string(), s[*k].clone()))
        .collect();
    let list = format!(
        "{client}for o in s3.list_objects_v2(Bucket='{bucket}').get('Contents', []):\n    \
         print(o['Key'])\n"
    );
    Store {
        opts: vec!["--s3-endpoint-url".into(), proxy.url.clone()],
        proxy,
        dup_env: env.clone(),
        env,
        dup_opts: vec!["--s3-endpoint-url".into(), s["S3_ENDPOINT_URL"].clone()],
        url: format!("s3://{bucket}/host1"),
        lister: Box::new(move || {
            run(Command::new(&python).arg("-c").arg(&list), "boto3 list")
                .ok()
                .stdout()
                .lines()
                .map(str::to_string)
                .collect()
        }),
    }
}

impl Store {
    fn backup(&self, w: &Path, concurrency: &str) -> Run {
        self.backup_in(w, concurrency, "1")
    }

    /// A full backup with `--volsize volsize` MiB.
    fn backup_in(&self, w: &Path, concurrency: &str, volsize: &str) -> Run {
        let t = T1.to_string();
        let mut args: Vec<&str> = self.opts.iter().map(String::as_str).collect();
        args.extend_from_slice(&[
            "full",
            "--no-encryption",
            "--num-retries",
            "1",
            "--concurrency",
            concurrency,
            "--volsize",
            volsize,
            "--archive-dir",
            "cache",
            "--name",
            "n",
            "--current-time",
            &t,
            "src",
            &self.url,
        ]);
        fd(w, &self.env, &args)
    }

    fn list(&self) -> Vec<String> {
        (self.lister)()
    }

    /// Restores with ferrodup (fresh cache) and compares with the source.
    fn restores(&self, w: &Path) {
        let mut args: Vec<&str> = self.opts.iter().map(String::as_str).collect();
        args.extend_from_slice(&[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "cache-r",
            &self.url,
            "out",
        ]);
        fd(w, &self.env, &args).ok();
        assert_same_tree(&w.join("src"), &w.join("out"), "ferrodup restore");
    }

    /// Restores with the real duplicity and compares with the source.
    fn duplicity_restores(&self, w: &Path) {
        let mut args: Vec<&str> = self.dup_opts.iter().map(String::as_str).collect();
        args.extend_from_slice(&[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "dc",
            &self.url,
            "dout",
        ]);
        dup(w, &self.dup_env, &args).ok();
        assert_same_tree(&w.join("src"), &w.join("dout"), "duplicity restore");
    }
}

#[test]
fn swift_uploads_reach_the_concurrency_and_restore() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_source(w, 2);
    let store = swift(Duration::from_millis(300));
    store.backup(w, "4").ok();
    assert_eq!(
        store.proxy.peak("PUT"),
        4,
        "uploads in flight at once; requests:\n{}",
        store.proxy.log().join("\n")
    );
    let count = volumes(&store.list());
    assert!(count >= 5, "want many volumes, got {:?}", store.list());
    let man = w.join("cache/n/duplicity-full.20240101T120000Z.manifest");
    assert_in_order(&manifest_volumes(&man), count, "swift://");
    store.restores(w);
    store.duplicity_restores(w);
}

#[test]
fn a_failed_volume_upload_leaves_a_set_the_next_run_resumes() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_source(w, 3);
    let store = s3(Duration::from_millis(200));
    // Volume 3 is refused; volumes 1 and 2, in flight meanwhile, are stored.
    store.proxy.clear();
    store
        .proxy
        .add(rule("PUT", ".vol3.difftar", Fault::Status(500)).always());
    store
        .proxy
        .add(rule("", "", Fault::Delay(Duration::from_millis(200))).always());
    let r = store.backup(w, "4");
    assert_fails(&r, 50, &["vol3.difftar"]);
    assert!(
        !store.list().iter().any(|n| n.contains("manifest")),
        "a failed backup stores no manifest: {:?}",
        store.list()
    );
    let part = w.join("cache/n/duplicity-full.20240101T120000Z.manifest.part");
    assert_in_order(
        &manifest_volumes(&part),
        2,
        "the partial manifest records the volumes before the failed one",
    );
    store.proxy.clear();
    let r = store.backup(w, "4").ok();
    assert!(r.stderr().contains("Resuming"), "{}", r.stderr());
    let count = volumes(&store.list());
    let man = w.join("cache/n/duplicity-full.20240101T120000Z.manifest");
    assert_in_order(&manifest_volumes(&man), count, "resumed");
    store.restores(w);
    store.duplicity_restores(w);
}

/// Not a check but a measurement, which `bench/upload.sh` runs with a release build: the
/// wall time of a full backup of `BENCH_MB` MB (default 300) of incompressible data in
/// 10 MiB volumes to S3 through the proxy adding `BENCH_DELAY_MS` (default 50) to every
/// request, at each of the `BENCH_CONCURRENCY` levels (default 1,4).
#[test]
#[ignore = "a measurement: bench/upload.sh runs it"]
fn bench_upload_concurrency() {
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let mb: usize = var("BENCH_MB", "300").parse().unwrap();
    let delay: u64 = var("BENCH_DELAY_MS", "50").parse().unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::create_dir(w.join("src")).unwrap();
    for k in 0..mb.div_ceil(10) {
        let len = (mb - 10 * k).min(10) * 1_000_000;
        std::fs::write(
            w.join(format!("src/f{k:03}.bin")),
            prng_bytes(k as u64, len),
        )
        .unwrap();
    }
    for c in var("BENCH_CONCURRENCY", "1,4").split(',') {
        let store = s3(Duration::from_millis(delay));
        let _ = std::fs::remove_dir_all(w.join("cache"));
        let started = std::time::Instant::now();
        store.backup_in(w, c, "10").ok();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{mb} MB, 10 MiB volumes, S3 + {delay} ms per request, --concurrency {c}: \
             {secs:.1} s ({} volumes, {} PUTs at once at most)",
            volumes(&store.list()),
            store.proxy.peak("PUT")
        );
    }
}
