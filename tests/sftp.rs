//! sftp:// against a real OpenSSH server on loopback (started by `.ci/services`): key and
//! password logins, host keys checked against known_hosts, files checked on the server's
//! disk, and the real duplicity (paramiko) reading what ferrodup writes and the other way
//! round.

mod common;

use common::proxy::TcpRelay;
use common::services::*;
use common::*;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

struct Server {
    s: HashMap<String, String>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!(
            "sftp://{}@127.0.0.1:{}/{path}",
            self.s["SFTP_USER"], self.s["SFTP_PORT"]
        )
    }
    fn key_options(&self) -> String {
        format!(
            "--ssh-options=-oIdentityFile={} -oUserKnownHostsFile={}",
            self.s["SFTP_KEY"], self.s["SFTP_KNOWN_HOSTS"]
        )
    }
    fn password(&self) -> Vec<(String, String)> {
        vec![("FTP_PASSWORD".to_string(), self.s["SFTP_PASSWORD"].clone())]
    }
}

/// duplicity (paramiko) reads the host keys from ~/.ssh/known_hosts; HOME is the work dir.
fn trust_for_duplicity(w: &Path, srv: &Server) {
    std::fs::create_dir_all(w.join(".ssh")).unwrap();
    std::fs::copy(&srv.s["SFTP_KNOWN_HOSTS"], w.join(".ssh/known_hosts")).unwrap();
}

#[test]
fn sftp_round_trip_with_duplicity_both_ways() {
    let srv = Server {
        s: service_env("sftp"),
    };
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    trust_for_duplicity(w, &srv);
    let dir = unique("backups");
    let url = srv.url(&dir);
    let keys = srv.key_options();
    let known = format!(
        "--ssh-options=-oUserKnownHostsFile={}",
        srv.s["SFTP_KNOWN_HOSTS"]
    );
    make_fixture_tree(&w.join("src"), 1, true);
    let (t1, t2) = (T1.to_string(), T2.to_string());
    // A full with the key, an incremental with the password.
    fd(
        w,
        &[],
        &[
            "full",
            "--no-encryption",
            "--volsize",
            "1",
            &keys,
            "--archive-dir",
            "c",
            "--current-time",
            &t1,
            "src",
            &url,
        ],
    )
    .ok();
    copy_tree(&w.join("src"), &w.join("state1"));
    std::fs::remove_dir_all(w.join("src")).unwrap();
    make_fixture_tree(&w.join("src"), 2, false);
    fd(
        w,
        &srv.password(),
        &[
            "incremental",
            "--no-encryption",
            &known,
            "--archive-dir",
            "c",
            "--current-time",
            &t2,
            "src",
            &url,
        ],
    )
    .ok();
    let on_disk: Vec<String> = std::fs::read_dir(Path::new(&srv.s["SFTP_HOME"]).join(&dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        on_disk.iter().filter(|n| n.contains(".manifest")).count() == 2,
        "{on_disk:?}"
    );
    assert!(
        !on_disk.iter().any(|n| n.starts_with(".ferrodup-tmp-")),
        "{on_disk:?}"
    );
    dup(
        w,
        &srv.password(),
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "dc",
            &url,
            "by-duplicity",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("by-duplicity"),
        "duplicity restore from sftp://",
    );
    fd(
        w,
        &[],
        &[
            "restore",
            "--no-encryption",
            &keys,
            "--archive-dir",
            "fc",
            "--time",
            &t1,
            &url,
            "at-t1",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("state1"),
        &w.join("at-t1"),
        "ferrodup restore at T1 from sftp://",
    );

    // An absolute path (sftp://host//path), written by duplicity, read by ferrodup.
    let abs = Path::new(&srv.s["SFTP_HOME"]).join(unique("abs"));
    let abs_url = srv.url(&format!("/{}", abs.display()));
    dup(
        w,
        &srv.password(),
        &[
            "full",
            "--no-encryption",
            "--archive-dir",
            "dc2",
            "src",
            &abs_url,
        ],
    )
    .ok();
    let written: Vec<String> = std::fs::read_dir(&abs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        written.iter().any(|n| n.ends_with(".manifest")),
        "absolute path used: {written:?}"
    );
    fd(
        w,
        &[],
        &[
            "restore",
            "--no-encryption",
            &keys,
            "--archive-dir",
            "fc2",
            &abs_url,
            "from-dup",
        ],
    )
    .ok();
    assert_same_tree(
        &w.join("src"),
        &w.join("from-dup"),
        "ferrodup restore of duplicity's sftp backup",
    );
}

#[test]
fn sftp_refuses_unknown_or_changed_host_keys_and_bad_logins() {
    let srv = Server {
        s: service_env("sftp"),
    };
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::create_dir(w.join("src")).unwrap();
    std::fs::write(w.join("src/f"), "x").unwrap();
    let url = srv.url(&unique("refused"));
    let check = |env: &[(String, String)], opts: &str, words: &[&str]| {
        let r = fd(
            w,
            env,
            &[
                "full",
                "--no-encryption",
                "--num-retries",
                "1",
                opts,
                "--archive-dir",
                "c",
                "src",
                &url,
            ],
        );
        assert_fails(&r, 23, words);
    };
    let empty = w.join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    check(
        &srv.password(),
        &format!("--ssh-options=-oUserKnownHostsFile={}", empty.display()),
        &["host key", "ssh-keyscan"],
    );
    // A known_hosts entry with another key for this host and port.
    let other = w.join("other_known_hosts");
    let fake = std::fs::read_to_string(&srv.s["SFTP_KNOWN_HOSTS"])
        .unwrap()
        .lines()
        .filter(|l| l.contains("ssh-ed25519"))
        .map(|l| {
            let mut parts: Vec<String> = l.split(' ').map(str::to_string).collect();
            parts[2] =
                "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl".into();
            parts.join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&other, format!("{fake}\n")).unwrap();
    check(
        &srv.password(),
        &format!("--ssh-options=-oUserKnownHostsFile={}", other.display()),
        &["differs"],
    );
    let wrong = vec![("FTP_PASSWORD".to_string(), "not-the-password".to_string())];
    check(
        &wrong,
        &format!(
            "--ssh-options=-oUserKnownHostsFile={} -oIdentityFile={}",
            srv.s["SFTP_KNOWN_HOSTS"],
            w.join("src/f").display()
        ),
        &["SSH key"],
    );
    check(
        &wrong,
        &format!(
            "--ssh-options=-oUserKnownHostsFile={}",
            srv.s["SFTP_KNOWN_HOSTS"]
        ),
        &["refused the login"],
    );
}

/// A multi-volume backup over a link with 20 ms round trips: `--concurrency 4` uploads
/// several volumes at once, on at most four connections; ferrodup (reading ahead on each
/// volume) and the real duplicity restore it.
#[test]
fn parallel_uploads_over_a_slow_link_restore_with_duplicity() {
    let srv = Server {
        s: service_env("sftp"),
    };
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    trust_for_duplicity(w, &srv);
    std::fs::create_dir(w.join("src")).unwrap();
    // 6 MiB that gzip cannot shrink: seven volumes of 1 MiB.
    std::fs::write(w.join("src/big.bin"), edits::prng_bytes(8, 6 << 20)).unwrap();
    std::fs::write(w.join("src/small.txt"), b"small\n").unwrap();
    let relay = TcpRelay::start(
        srv.s["SFTP_PORT"].parse().unwrap(),
        Duration::from_millis(10),
    );
    let dir = unique("parallel");
    let slow_url = format!(
        "sftp://{}@127.0.0.1:{}/{dir}",
        srv.s["SFTP_USER"], relay.port
    );
    // The relay's port is not in known_hosts; the server behind it is the one tested.
    let opts = format!(
        "--ssh-options=-oIdentityFile={} -oStrictHostKeyChecking=no",
        srv.s["SFTP_KEY"]
    );
    fd(
        w,
        &[],
        &[
            "full",
            "--no-encryption",
            "--volsize",
            "1",
            "--concurrency",
            "4",
            &opts,
            "--archive-dir",
            "c",
            "src",
            &slow_url,
        ],
    )
    .ok();
    let peak = relay.peak();
    assert!(
        (2..=4).contains(&peak),
        "volumes went up at once on at most 4 connections: {peak}"
    );
    let on_disk: Vec<String> = std::fs::read_dir(Path::new(&srv.s["SFTP_HOME"]).join(&dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        on_disk.iter().filter(|n| n.contains(".difftar")).count() >= 6,
        "{on_disk:?}"
    );
    assert!(
        !on_disk.iter().any(|n| n.starts_with(".ferrodup-tmp-")),
        "{on_disk:?}"
    );
    fd(
        w,
        &[],
        &[
            "restore",
            "--no-encryption",
            &opts,
            "--archive-dir",
            "c2",
            &slow_url,
            "by-ferrodup",
        ],
    )
    .ok();
    assert_same_tree(&w.join("src"), &w.join("by-ferrodup"), "ferrodup restore");
    dup(
        w,
        &srv.password(),
        &[
            "restore",
            "--no-encryption",
            "--archive-dir",
            "dc",
            &srv.url(&dir),
            "by-duplicity",
        ],
    )
    .ok();
    assert_same_tree(&w.join("src"), &w.join("by-duplicity"), "duplicity restore");
}
