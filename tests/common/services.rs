//! Helpers for tests against the storage servers of `.ci/services` (started by
//! scripts/test.sh): their settings, and commands that see only the credentials a test
//! gives them.

use super::{duplicity_bin, ferrodup_bin, run, Run};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// The variables `.ci/services/start-NAME.sh` wrote to its env file.
pub fn service_env(name: &str) -> HashMap<String, String> {
    let dir = std::env::var("TEST_SERVICES_DIR").unwrap_or_else(|_| "/tmp/test-services".into());
    let file = Path::new(&dir).join(name).join(format!("{name}.env"));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: start the test servers first (scripts/test.sh starts them from \
             .ci/services)",
            file.display()
        )
    });
    let mut vars = HashMap::new();
    for line in text.lines().filter(|l| l.starts_with("export ")) {
        for pair in line["export ".len()..].split_whitespace() {
            if let Some((k, v)) = pair.split_once('=') {
                vars.insert(k.to_string(), v.trim_matches('\'').to_string());
            }
        }
    }
    vars
}

/// A command whose environment has no storage credentials but `env`.
fn command(bin: &Path, cwd: &Path, env: &[(String, String)], args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.current_dir(cwd)
        .args(args)
        .env("HOME", cwd)
        .env_remove("PASSPHRASE");
    for (k, _) in std::env::vars() {
        if ["SWIFT_", "PCA_", "ST_", "AWS_"]
            .iter()
            .any(|p| k.starts_with(p))
        {
            c.env_remove(k);
        }
    }
    c.envs(env.iter().map(|(k, v)| (k, v)));
    c
}

/// Runs ferrodup with only `env` as storage settings.
pub fn fd(cwd: &Path, env: &[(String, String)], args: &[&str]) -> Run {
    run(
        &mut command(&ferrodup_bin(), cwd, env, args),
        &format!("ferrodup {}", args.join(" ")),
    )
}

/// Starts ferrodup with only `env` as storage settings, and kills it (as a crash or a
/// closed terminal would) as soon as its standard error contains `marker`; returns what it
/// printed there. Fails after 120 s without the marker.
pub fn fd_killed_after(
    cwd: &Path,
    env: &[(String, String)],
    args: &[&str],
    marker: &str,
) -> String {
    let log = cwd.join(format!("killed-{}.err", unique("run")));
    let err = std::fs::File::create(&log).unwrap();
    let mut child = command(&ferrodup_bin(), cwd, env, args)
        .stdout(std::process::Stdio::null())
        .stderr(err)
        .spawn()
        .expect("ferrodup starts");
    let started = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains(marker) {
            child.kill().unwrap();
            child.wait().unwrap();
            return text;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "ferrodup {} ended ({status}) before printing {marker:?}: {text}",
                args.join(" ")
            );
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "ferrodup {} did not print {marker:?} in 120 s: {text}",
            args.join(" ")
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Runs a boto3 snippet against the server; `s3` is a path-style client, `bucket` the
/// bucket. Returns what it prints.
pub fn boto3(s: &HashMap<String, String>, bucket: &str, code: &str) -> String {
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

/// Runs the real duplicity with only `env` as storage settings.
pub fn dup(cwd: &Path, env: &[(String, String)], args: &[&str]) -> Run {
    run(
        &mut command(&duplicity_bin(), cwd, env, args),
        &format!("duplicity {}", args.join(" ")),
    )
}

/// A container or bucket name no earlier run used.
pub fn unique(base: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{base}-{}-{}", std::process::id(), t % 1_000_000_000)
}
