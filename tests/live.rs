//! The live status line: drawn on a terminal (a pseudo-terminal here) during a backup and a
//! restore, and erased at the end; never a control character on anything else.

mod common;

use common::*;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs ferrodup with standard output and error on a new pseudo-terminal; returns the exit
/// status and everything the terminal received.
fn in_pty(w: &Path, args: &[&str]) -> (i32, String) {
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty fills the two descriptors; the others may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned here only.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut child = Command::new(ferrodup_bin())
        .current_dir(w)
        .args(args)
        .env("TERM", "xterm")
        .env_remove("PASSPHRASE")
        .stdin(Stdio::null())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .expect("ferrodup");
    let mut out = Vec::new();
    let mut m = std::fs::File::from(master);
    let mut buf = [0u8; 4096];
    loop {
        match m.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // Linux answers EIO once the other side is closed.
            Err(_) => break,
        }
    }
    let status = child.wait().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out).into_owned(),
    )
}

/// Checks that the status line of `task` was drawn, and erased after its last drawing.
fn drawn_and_erased(screen: &str, task: &str) {
    let start = format!("\r{task}  ");
    let last = screen
        .rfind(&start)
        .unwrap_or_else(|| panic!("no {task} line drawn:\n{screen:?}"));
    let line = &screen[last..];
    assert!(line.contains(" files  "), "{line:?}");
    let end = line[1..].find('\r').map(|i| i + 1).expect("the line ends");
    assert!(
        line[end..].starts_with("\r\x1b[K"),
        "the last {task} line was not erased:\n{line:?}"
    );
    assert!(
        !line[end + 4..].contains(&start),
        "drawn again after being erased"
    );
}

#[test]
fn the_status_line_is_drawn_on_a_terminal_and_erased() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    make_fixture_tree(&w.join("src"), 1, true);
    let url = format!("file://{}/target", w.display());
    let common = ["--no-encryption", "--archive-dir", "cache"];

    let (code, screen) = in_pty(w, &[&["full"][..], &common, &["src", &url]].concat());
    assert_eq!(code, 0, "{screen}");
    drawn_and_erased(&screen, "backup");
    assert!(screen.contains("Backup Statistics"), "{screen}");

    let (code, screen) = in_pty(w, &[&["restore"][..], &common, &[&url, "out"]].concat());
    assert_eq!(code, 0, "{screen}");
    drawn_and_erased(&screen, "restore");
    assert!(
        screen.contains("Restore complete: ") && screen.contains(" written to "),
        "{screen}"
    );
    assert_same_tree(&w.join("src"), &w.join("out"), "restored under a terminal");

    // Not a terminal: plain lines only.
    let r = ferrodup(w, &[&["incremental"][..], &common, &["src", &url]].concat()).ok();
    let r2 = ferrodup(w, &[&["restore"][..], &common, &[&url, "out2"]].concat()).ok();
    for text in [r.stdout(), r.stderr(), r2.stdout(), r2.stderr()] {
        assert!(
            !text.contains('\x1b') && !text.contains('\r'),
            "a control character off a terminal: {text:?}"
        );
    }
    assert!(
        r2.stderr().contains("Restore complete: "),
        "{}",
        r2.stderr()
    );
}
