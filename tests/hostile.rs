//! Restores of hostile or damaged archives stay inside their destination: volumes crafted
//! with symlink members followed by members "through" them (absolute, relative `..` and
//! directory targets), `..` names, and restores with `--force` into trees that hold links
//! to elsewhere. Nothing outside the destination may be created, changed or removed.

mod common;

use common::*;
use ferrodup::format::tar::{archive_end, pad_to_block, EntryType, Header};
use flate2::write::GzEncoder;
use std::io::Write;
use std::path::Path;

/// One member of a crafted volume.
struct Member {
    name: &'static str,
    kind: EntryType,
    link: String,
    data: &'static [u8],
}

fn dir(name: &'static str) -> Member {
    Member {
        name,
        kind: EntryType::Directory,
        link: String::new(),
        data: b"",
    }
}

fn file(name: &'static str, data: &'static [u8]) -> Member {
    Member {
        name,
        kind: EntryType::Regular,
        link: String::new(),
        data,
    }
}

fn symlink(name: &'static str, to: &Path) -> Member {
    Member {
        name,
        kind: EntryType::Symlink,
        link: to.display().to_string(),
        data: b"",
    }
}

/// The gzip'd tar volume holding `members`, as duplicity lays them out.
fn volume(members: &[Member]) -> Vec<u8> {
    let mut tar = Vec::new();
    for m in members {
        let mut h = Header::empty(m.name.as_bytes().to_vec());
        h.kind = m.kind;
        h.mode = if m.kind == EntryType::Directory {
            0o755
        } else {
            0o644
        };
        h.mtime = T1;
        h.size = m.data.len() as u64;
        h.linkname = m.link.as_bytes().to_vec();
        tar.extend_from_slice(&h.to_pax_bytes());
        tar.extend_from_slice(m.data);
        pad_to_block(&mut tar);
    }
    let end = archive_end(tar.len() as u64);
    tar.extend_from_slice(&end);
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn sha1_hex(data: &[u8]) -> String {
    use sha1::Digest;
    sha1::Sha1::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A full backup of `w/src` to `w/target` (cache `w/cache`); returns the target's URL.
fn full_backup(w: &Path) -> String {
    let url = format!("file://{}/target", w.display());
    ferrodup(
        w,
        &[
            "full",
            "--no-encryption",
            "--archive-dir",
            "cache",
            "src",
            &url,
        ],
    )
    .ok();
    url
}

/// A real backup of a one-file tree at `w/target`, whose only volume is then replaced by
/// `members` (the manifest's SHA1 updated to match, so only the restore's own checks stand
/// between the archive and the file system).
fn hostile_target(w: &Path, members: &[Member]) -> String {
    std::fs::create_dir_all(w.join("src")).unwrap();
    std::fs::write(w.join("src/a"), b"benign").unwrap();
    let url = full_backup(w);
    let mut vol = None;
    let mut manifest = None;
    for e in std::fs::read_dir(w.join("target")).unwrap() {
        let p = e.unwrap().path();
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        if n.contains(".vol1.difftar") {
            vol = Some(p);
        } else if n.ends_with(".manifest") {
            manifest = Some(p);
        }
    }
    let (vol, manifest) = (vol.unwrap(), manifest.unwrap());
    let old = sha1_hex(&std::fs::read(&vol).unwrap());
    let bytes = volume(members);
    std::fs::write(&vol, &bytes).unwrap();
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains(&old), "manifest has the volume's SHA1");
    std::fs::write(&manifest, text.replace(&old, &sha1_hex(&bytes))).unwrap();
    std::fs::remove_dir_all(w.join("cache")).unwrap();
    url
}

fn restore(w: &Path, url: &str, dest: &str, extra: &[&str]) -> Run {
    let mut args = vec!["restore", "--no-encryption", "--archive-dir", "cache"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[url, dest]);
    ferrodup(w, &args)
}

/// Everything below `root`, as sorted relative paths.
fn listing(root: &Path) -> Vec<String> {
    snapshot(root).into_keys().filter(|k| k != ".").collect()
}

/// A crafted volume: what it tries, where its link member lands in the destination, and
/// its members given the folder outside the destination.
struct Case {
    what: &'static str,
    link: &'static str,
    members: fn(&Path) -> Vec<Member>,
}

#[test]
fn symlink_members_are_never_traversed() {
    let cases = [
        Case {
            what: "absolute link to a folder, then a file through it",
            link: "link",
            members: |out| {
                vec![
                    dir("snapshot/"),
                    symlink("snapshot/link", out),
                    file("snapshot/link/evil", b"pwned"),
                ]
            },
        },
        Case {
            what: "link to a folder, then a folder and a file through it",
            link: "link",
            members: |out| {
                vec![
                    dir("snapshot/"),
                    symlink("snapshot/link", out),
                    dir("snapshot/link/sub"),
                    file("snapshot/link/sub/evil", b"pwned"),
                ]
            },
        },
        Case {
            what: "relative ../outside link, then a file through it",
            link: "up",
            members: |_| {
                vec![
                    dir("snapshot/"),
                    Member {
                        name: "snapshot/up",
                        kind: EntryType::Symlink,
                        link: "../outside".into(),
                        data: b"",
                    },
                    file("snapshot/up/evil", b"pwned"),
                ]
            },
        },
        Case {
            what: "the archive root itself as a link, then a file below it",
            link: "",
            members: |out| vec![symlink("snapshot", out), file("snapshot/evil", b"pwned")],
        },
        Case {
            what: "a deeper link, then a fifo and a link through it",
            link: "d/l",
            members: |out| {
                vec![
                    dir("snapshot/"),
                    dir("snapshot/d"),
                    symlink("snapshot/d/l", out),
                    Member {
                        name: "snapshot/d/l/fifo",
                        kind: EntryType::Fifo,
                        link: String::new(),
                        data: b"",
                    },
                    symlink("snapshot/d/l/l2", Path::new("/etc/passwd")),
                ]
            },
        },
    ];
    for case in cases {
        let what = case.what;
        let t = tempfile::tempdir().unwrap();
        let w = t.path();
        let outside = w.join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"keep").unwrap();
        let url = hostile_target(w, &(case.members)(&outside));
        let r = restore(w, &url, "dest", &[]);
        assert_fails(&r, 30, &["symbolic link", "nothing is written through it"]);
        assert_eq!(listing(&outside), vec!["keep"], "{what}: outside changed");
        assert_eq!(std::fs::read(outside.join("keep")).unwrap(), b"keep");
        assert!(!w.join("evil").exists(), "{what}");
        let link = match case.link {
            "" => w.join("dest"),
            rel => w.join("dest").join(rel),
        };
        assert!(
            link.symlink_metadata().unwrap().file_type().is_symlink(),
            "{what}: the link member is restored as a link"
        );
        // --ignore-errors skips what it cannot write, loudly, and does not open the way.
        let r = restore(w, &url, "dest2", &["--ignore-errors"]);
        assert!(
            r.stderr().contains("nothing is written through it"),
            "{what}: {}",
            r.stderr()
        );
        assert_eq!(listing(&outside), vec!["keep"], "{what}: outside changed");
    }
}

#[test]
fn dot_dot_and_absolute_names_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let w = t.path();
    let url = hostile_target(
        w,
        &[
            dir("snapshot/"),
            file("snapshot/../evil", b"pwned"),
            file("snapshot/a/../../evil2", b"pwned"),
            file("snapshot//abs/evil3", b"pwned"),
            file("snapshot/ok", b"fine"),
        ],
    );
    let r = restore(w, &url, "dest", &[]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(
        r.stderr().contains("ignoring unexpected member"),
        "{}",
        r.stderr()
    );
    assert_eq!(std::fs::read(w.join("dest/ok")).unwrap(), b"fine");
    for n in ["evil", "evil2", "abs"] {
        assert!(!w.join(n).exists(), "{n} was written");
    }
    // An absolute name is taken relative to the archive root, as duplicity does.
    assert_eq!(std::fs::read(w.join("dest/abs/evil3")).unwrap(), b"pwned");
    assert!(!Path::new("/abs/evil3").exists());
}

/// A restore with --force into a tree whose folders and files are links to elsewhere
/// replaces the links and writes nothing through them.
#[test]
fn force_restore_replaces_links_in_the_destination() {
    let t = tempfile::tempdir().unwrap();
    let w = t.path();
    std::fs::create_dir_all(w.join("src/sub")).unwrap();
    std::fs::write(w.join("src/sub/f"), b"from the backup").unwrap();
    std::fs::write(w.join("src/g"), b"from the backup too").unwrap();
    std::os::unix::fs::symlink("g", w.join("src/rel")).unwrap();
    let url = full_backup(w);
    let outside = w.join("outside");
    std::fs::create_dir_all(outside.join("d")).unwrap();
    std::fs::write(outside.join("file"), b"outside").unwrap();
    let perms = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    std::fs::set_permissions(outside.join("file"), perms).unwrap();
    set_mtime(&outside.join("file"), T2);
    std::fs::create_dir(w.join("dest")).unwrap();
    std::os::unix::fs::symlink(outside.join("d"), w.join("dest/sub")).unwrap();
    std::os::unix::fs::symlink(outside.join("file"), w.join("dest/g")).unwrap();
    std::fs::create_dir(w.join("dest/rel")).unwrap();
    std::fs::write(w.join("dest/rel/x"), b"replaced by a link").unwrap();
    let r = restore(w, &url, "dest", &["--force"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_same_tree(&w.join("src"), &w.join("dest"), "forced restore");
    assert_eq!(listing(&outside), vec!["d", "file"]);
    assert_eq!(std::fs::read(outside.join("file")).unwrap(), b"outside");
    let md = std::fs::metadata(outside.join("file")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o7777,
        0o600
    );
    assert_eq!(std::os::unix::fs::MetadataExt::mtime(&md), T2);
}

/// A full destination disk is a local file-system error (status 6) naming the file,
/// not bad data in a volume.
#[test]
fn full_disk_on_restore_is_a_local_error() {
    let t = tempfile::tempdir().unwrap();
    let w = t.path();
    std::fs::create_dir_all(w.join("src")).unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(w.join("src/big"), &data).unwrap();
    let url = full_backup(w);
    let small = w.join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "ferrodup-test"])
        .arg(&small)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        mounted,
        "this test mounts a 1 MiB tmpfs: run it as root (CI does)"
    );
    let r = restore(w, &url, "small/dest", &[]);
    let _ = std::process::Command::new("umount").arg(&small).status();
    assert_fails(&r, 30, &["small/dest/big", "disk is full"]);
}
