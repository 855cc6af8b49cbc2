//! Messages by duplicity's verbosity levels: 0 error, 2 warning, 3 notice (the default),
//! 5 info, 9 debug, and the sinks they go to:
//!
//! - human-readable lines on standard error (with `--log-timestamp`, each message starts
//!   with the local time and the level name, as duplicity's `DetailFormatter` writes them);
//! - duplicity's machine-readable records (`--log-fd N`, `--log-file PATH`): a control
//!   line `LEVEL CODE [EXTRA]`, the message with each line prefixed by `. `, then an empty
//!   line. Frontends such as deja-dup parse them, so the codes are duplicity's;
//! - command output on standard output, through [`out`]: a reader that goes away (a
//!   closed pipe) silently ends that output, never the command, as with duplicity.
//!
//! Records and human lines follow the verbosity, as in duplicity; records that duplicity
//! writes whatever the verbosity (file lists, collection status) are written with
//! [`machine`]. URL passwords are redacted from every message.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;

pub const ERROR: u8 = 0;
pub const WARNING: u8 = 2;
pub const NOTICE: u8 = 3;
pub const INFO: u8 = 5;
pub const DEBUG: u8 = 9;

/// duplicity's `InfoCode` values (frontends rely on them; they never change).
pub mod info_code {
    pub const GENERIC: u32 = 1;
    pub const PROGRESS: u32 = 2;
    pub const COLLECTION_STATUS: u32 = 3;
    pub const DIFF_FILE_NEW: u32 = 4;
    pub const DIFF_FILE_CHANGED: u32 = 5;
    pub const DIFF_FILE_DELETED: u32 = 6;
    pub const PATCH_FILE_WRITING: u32 = 7;
    pub const FILE_LIST: u32 = 10;
    pub const SKIPPING_SOCKET: u32 = 15;
    pub const UPLOAD_PROGRESS: u32 = 16;
}

/// duplicity's `WarningCode` values.
pub mod warning_code {
    pub const GENERIC: u32 = 1;
    pub const ORPHANED_SIG: u32 = 2;
    pub const UNNECESSARY_SIG: u32 = 3;
    pub const UNMATCHED_SIG: u32 = 4;
    pub const INCOMPLETE_BACKUP: u32 = 5;
    pub const ORPHANED_BACKUP: u32 = 6;
    pub const CANNOT_ITERATE: u32 = 8;
    pub const CANNOT_STAT: u32 = 9;
    pub const CANNOT_READ: u32 = 10;
    pub const CANNOT_PROCESS: u32 = 12;
}

static LEVEL: AtomicU8 = AtomicU8::new(NOTICE);
static TIMESTAMP: AtomicBool = AtomicBool::new(false);
static SINKS: Mutex<Vec<File>> = Mutex::new(Vec::new());
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
/// The last line on the terminal was a progress line (the next one replaces it).
static LAST_WAS_PROGRESS: AtomicBool = AtomicBool::new(false);

/// Parses `-v` values: a digit or a name (e, w, n, i, d or the full word).
pub fn parse_level(s: &str) -> Option<u8> {
    if let Ok(n) = s.parse::<u8>() {
        return (n <= 9).then_some(n);
    }
    match s.to_ascii_lowercase().as_str() {
        "e" | "error" => Some(ERROR),
        "w" | "warning" => Some(WARNING),
        "n" | "notice" => Some(NOTICE),
        "i" | "info" => Some(INFO),
        "d" | "debug" => Some(DEBUG),
        _ => None,
    }
}

pub fn set_level(level: u8) {
    LEVEL.store(level, Ordering::Relaxed);
}

pub fn enabled(level: u8) -> bool {
    LEVEL.load(Ordering::Relaxed) >= level
}

/// `--log-timestamp`: human lines start with the local time and the level name.
pub fn set_timestamps(on: bool) {
    TIMESTAMP.store(on, Ordering::Relaxed);
}

/// Sets up the sinks from the options: `--log-fd` descriptors, `--log-file` files and
/// `--log-timestamp`.
pub fn setup(fds: &[i32], files: &[std::path::PathBuf], timestamps: bool) -> Result<(), String> {
    set_timestamps(timestamps);
    for fd in fds {
        add_fd(*fd)?;
    }
    for f in files {
        add_file(f)?;
    }
    Ok(())
}

/// `--log-fd N`: machine-readable records also go to this open file descriptor.
pub fn add_fd(fd: i32) -> Result<(), String> {
    if fd < 1 {
        return Err(format!(
            "--log-fd {fd}: the file descriptor must be greater than zero"
        ));
    }
    // SAFETY: F_DUPFD_CLOEXEC only reads the descriptor number; one that is not open
    // fails with EBADF.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if copy < 0 {
        return Err(format!(
            "--log-fd {fd}: file descriptor {fd} is not open ({}); open it for writing when \
             starting ferrodup, e.g. `3>>records.log`",
            io::Error::last_os_error()
        ));
    }
    // SAFETY: `copy` is a fresh descriptor that nothing else owns.
    let file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(copy) };
    sinks().push(file);
    Ok(())
}

/// `--log-file PATH`: machine-readable records are also appended to this file.
pub fn add_file(path: &Path) -> Result<(), String> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| {
            format!(
                "--log-file {}: cannot open it for appending ({e}); give a writable file",
                path.display()
            )
        })?;
    sinks().push(file);
    Ok(())
}

fn sinks() -> std::sync::MutexGuard<'static, Vec<File>> {
    SINKS.lock().unwrap_or_else(|e| e.into_inner())
}

/// duplicity's name for a verbosity level in records and timestamped lines.
fn level_name(level: u8) -> &'static str {
    match level {
        9.. => "DEBUG",
        5..=8 => "INFO",
        3 | 4 => "NOTICE",
        1 | 2 => "WARNING",
        0 => "ERROR",
    }
}

/// Whether records are written anywhere (`--log-fd`, `--log-file`).
pub fn recording() -> bool {
    !sinks().is_empty()
}

/// Writes one machine-readable record to the `--log-fd`/`--log-file` sinks, whatever the
/// verbosity: `LEVEL CODE[ EXTRA]`, then each line of `text` after `. `, then an empty
/// line. `extra` may hold more lines (the collection status's data lines do).
pub fn machine(level: u8, code: u32, extra: Option<&str>, text: &str) {
    let mut sinks = sinks();
    if sinks.is_empty() {
        return;
    }
    let mut rec = format!("{} {code}", level_name(level));
    if let Some(x) = extra {
        rec.push(' ');
        rec.push_str(x);
    }
    let text = crate::backend::redact(text);
    if !text.is_empty() {
        for line in text.split('\n') {
            rec.push_str("\n. ");
            rec.push_str(line);
        }
    }
    rec.push_str("\n\n");
    for s in sinks.iter_mut() {
        // A reader that went away must not stop the backup: the record is dropped.
        let _ = s.write_all(rec.as_bytes());
    }
}

thread_local! {
    static MUTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with this thread's messages dropped (for a walk whose problems the next walk
/// reports).
pub fn muted<T>(f: impl FnOnce() -> T) -> T {
    let was = MUTED.with(|m| m.replace(true));
    let r = f();
    MUTED.with(|m| m.set(was));
    r
}

/// A message at `level` with duplicity's `code` and `extra` for the records: a human line
/// on standard error and a record, when the verbosity allows.
pub fn log(level: u8, code: u32, extra: Option<&str>, text: &str) {
    if !enabled(level) || MUTED.with(|m| m.get()) {
        return;
    }
    machine(level, code, extra, text);
    let shown = if level == WARNING && !TIMESTAMP.load(Ordering::Relaxed) {
        format!("Warning: {text}")
    } else {
        text.to_string()
    };
    human(level, &shown);
}

/// A human line on standard error, with the time and level first under `--log-timestamp`.
fn human(level: u8, text: &str) {
    let text = crate::backend::redact(text);
    let line = if TIMESTAMP.load(Ordering::Relaxed) {
        format!(
            "{} {:<6} {text}\n",
            crate::format::time::local_log_time(std::time::SystemTime::now()),
            level_name(level)
        )
    } else {
        format!("{text}\n")
    };
    LAST_WAS_PROGRESS.store(false, Ordering::Relaxed);
    // Standard error that cannot be written (a closed pipe) is not a reason to stop.
    crate::live::above(|| {
        let _ = io::stderr().write_all(line.as_bytes());
    });
}

pub fn warn(msg: &str) {
    log(WARNING, warning_code::GENERIC, None, msg);
}

/// A warning with duplicity's `code` about `path` (escaped in the record as duplicity does).
pub fn warn_path(code: u32, path: &[u8], msg: &str) {
    log(WARNING, code, Some(&escape(path)), msg);
}

pub fn notice(msg: &str) {
    log(NOTICE, info_code::GENERIC, None, msg);
}

/// A notice that duplicity prints on standard output and scripts parse (`Last full backup
/// date: ...`, `No signatures found, switching to full backup.`): there, with its record.
pub fn notice_stdout(msg: &str) {
    if !enabled(NOTICE) || MUTED.with(|m| m.get()) {
        return;
    }
    machine(NOTICE, info_code::GENERIC, None, msg);
    out(&crate::backend::redact(msg));
}

pub fn info(msg: &str) {
    log(INFO, info_code::GENERIC, None, msg);
}

pub fn debug(msg: &str) {
    log(DEBUG, info_code::GENERIC, None, msg);
}

static ERROR_EXTRA: Mutex<Option<String>> = Mutex::new(None);

/// Data for the `ERROR` record of the error about to be returned, where duplicity gives
/// some (a changed host or source directory: the current and the previous one, escaped),
/// which frontends read: deja-dup asks whether to go on from it.
pub fn error_extra(extra: String) {
    *ERROR_EXTRA.lock().unwrap_or_else(|e| e.into_inner()) = Some(extra);
}

/// The error that ends the run: one line `ferrodup: ...` on standard error, and an
/// `ERROR` record whose code is the exit status, as duplicity's fatal errors.
pub fn fatal(status: i32, msg: &str) {
    let extra = ERROR_EXTRA.lock().unwrap_or_else(|e| e.into_inner()).take();
    machine(ERROR, status.max(1) as u32, extra.as_deref(), msg);
    human(ERROR, &format!("ferrodup: {msg}"));
}

/// Progress lines (`--progress`) go to standard output, as duplicity's; each replaces the
/// previous one on a terminal (duplicity's ANSI "line up, erase line" prefix).
pub fn progress_line(text: &str, record_extra: &str) {
    if !enabled(NOTICE) {
        return;
    }
    machine(NOTICE, info_code::UPLOAD_PROGRESS, Some(record_extra), text);
    let prefix = if LAST_WAS_PROGRESS.swap(true, Ordering::Relaxed) {
        "\x1b[F\x1b[2K"
    } else {
        ""
    };
    write_stdout(format!("{prefix}{text}\n").as_bytes());
}

/// A path in a record: `.` for the root, quoted, and escaped as Python's `unicode-escape`
/// (what duplicity's `util.escape` writes; bytes that are not UTF-8 become `\udcXX`).
pub fn escape(path: &[u8]) -> String {
    let path: &[u8] = if path.is_empty() { b"." } else { path };
    let mut s = String::from("'");
    for chunk in path.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '\t' => s.push_str("\\t"),
                '\n' => s.push_str("\\n"),
                '\r' => s.push_str("\\r"),
                '\'' => s.push_str("\\x27"),
                ' '..='~' => s.push(c),
                c if (c as u32) < 0x100 => s.push_str(&format!("\\x{:02x}", c as u32)),
                c if (c as u32) < 0x10000 => s.push_str(&format!("\\u{:04x}", c as u32)),
                c => s.push_str(&format!("\\U{:08x}", c as u32)),
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\udc{b:02x}"));
        }
    }
    s.push('\'');
    s
}

/// A relative path as duplicity shows it in messages: `.` for the root.
pub fn shown_path(index: &[u8]) -> std::borrow::Cow<'_, str> {
    if index.is_empty() {
        ".".into()
    } else {
        String::from_utf8_lossy(index)
    }
}

/// Standard output for command output: writes that find the reader gone (`EPIPE`) are
/// dropped, and so is everything after them; the command goes on and ends normally.
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_stdout(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if !STDOUT_CLOSED.load(Ordering::Relaxed) {
            if let Err(e) = io::stdout().flush() {
                stdout_error(e)?;
            }
        }
        Ok(())
    }
}

fn write_stdout(buf: &[u8]) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = crate::live::above(|| {
        io::stdout()
            .write_all(buf)
            .and_then(|()| io::stdout().flush())
    }) {
        let _ = stdout_error(e);
    }
}

/// A closed pipe ends the output quietly; other errors (a full disk) are reported once.
fn stdout_error(e: io::Error) -> io::Result<()> {
    STDOUT_CLOSED.store(true, Ordering::Relaxed);
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        warn(&format!(
            "cannot write to standard output: {e}; output stops here"
        ));
        Err(e)
    }
}

/// Whether standard output is gone (a reader closed the pipe), so that commands whose
/// only product is output can stop early.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Writes `text` and a newline to standard output (see [`Stdout`]).
pub fn out(text: &str) {
    LAST_WAS_PROGRESS.store(false, Ordering::Relaxed);
    write_stdout(format!("{text}\n").as_bytes());
}

/// `println!` for command output, through [`out`]: never panics on a closed pipe.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::log::out(&format!($($arg)*))
    };
}

/// A notice on standard output, where duplicity prints notices and warnings; used by the
/// commands whose output scripts parse (collection-status, list-current-files). A closed
/// pipe is not an error here.
pub fn out_notice(msg: &str) {
    if enabled(NOTICE) {
        out_line(msg);
    }
}

/// A warning on standard output, in duplicity's words (they carry their own `WARNING.`).
pub fn out_warn(msg: &str) {
    if enabled(WARNING) {
        out_line(msg);
    }
}

/// A line on standard output whatever the verbosity (duplicity's forced log lines).
pub fn out_line(msg: &str) {
    out(&crate::backend::redact(msg));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_is_pythons_unicode_escape() {
        assert_eq!(escape(b""), "'.'");
        assert_eq!(escape(b"sub/b.txt"), "'sub/b.txt'");
        assert_eq!(escape("we ird'n\\é".as_bytes()), r"'we ird\x27n\\\xe9'");
        assert_eq!(escape(b"a\tb\nc\x7f\x01"), r"'a\tb\nc\x7f\x01'");
        assert_eq!(escape("€😀".as_bytes()), r"'\u20ac\U0001f600'");
        assert_eq!(escape(b"bad\xff"), r"'bad\udcff'");
    }

    #[test]
    fn level_names_follow_duplicity() {
        let names: Vec<&str> = (0..=9).map(level_name).collect();
        assert_eq!(
            names,
            [
                "ERROR", "WARNING", "WARNING", "NOTICE", "NOTICE", "INFO", "INFO", "INFO", "INFO",
                "DEBUG"
            ]
        );
    }
}
