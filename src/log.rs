//! Messages by duplicity's verbosity levels: 0 error, 2 warning, 4 notice (default),
//! 5 info, 9 debug. Everything goes to standard error; command output goes to stdout. URL
//! passwords are redacted from every message.

use std::sync::atomic::{AtomicU8, Ordering};

static LEVEL: AtomicU8 = AtomicU8::new(4);

/// Parses `-v` values: a digit or a name (e, w, n, i, d or the full word).
pub fn parse_level(s: &str) -> Option<u8> {
    if let Ok(n) = s.parse::<u8>() {
        return (n <= 9).then_some(n);
    }
    match s.to_ascii_lowercase().as_str() {
        "e" | "error" => Some(0),
        "w" | "warning" => Some(2),
        "n" | "notice" => Some(4),
        "i" | "info" => Some(5),
        "d" | "debug" => Some(9),
        _ => None,
    }
}

pub fn set_level(level: u8) {
    LEVEL.store(level, Ordering::Relaxed);
}

pub fn enabled(level: u8) -> bool {
    LEVEL.load(Ordering::Relaxed) >= level
}

pub fn warn(msg: &str) {
    if enabled(2) {
        eprintln!("Warning: {}", crate::backend::redact(msg));
    }
}

pub fn notice(msg: &str) {
    if enabled(4) {
        eprintln!("{}", crate::backend::redact(msg));
    }
}

pub fn info(msg: &str) {
    if enabled(5) {
        eprintln!("{}", crate::backend::redact(msg));
    }
}

pub fn debug(msg: &str) {
    if enabled(9) {
        eprintln!("{}", crate::backend::redact(msg));
    }
}

/// A notice on standard output, where duplicity prints notices and warnings; used by the
/// commands whose output scripts parse (collection-status, list-current-files). A closed
/// pipe is not an error here.
pub fn out_notice(msg: &str) {
    if enabled(4) {
        out_line(msg);
    }
}

/// A warning on standard output, in duplicity's words (they carry their own `WARNING.`).
pub fn out_warn(msg: &str) {
    if enabled(2) {
        out_line(msg);
    }
}

/// A line on standard output whatever the verbosity (duplicity's forced log lines).
pub fn out_line(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{}", crate::backend::redact(msg));
}
