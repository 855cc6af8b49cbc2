//! duplicity's on-disk format, free of I/O beyond `Read`/`Write` streams.

pub mod entry;
pub mod manifest;
#[cfg(target_arch = "x86_64")]
mod md4x8;
pub mod naming;
pub mod pyjson;
pub mod rsync;
pub mod tar;
pub mod time;
