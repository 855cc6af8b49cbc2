//! ferrodup: a fast backup tool that reads and writes duplicity's format.

pub mod app;
pub mod backend;
pub mod cache;
pub mod cli;
pub mod codec;
pub mod collection;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod dest;
pub mod error;
pub mod failpoint;
pub mod format;
pub mod fsmeta;
pub mod help;
pub mod live;
pub mod log;
pub mod pargz;
pub mod progress;
pub mod select;
pub mod sigstate;
pub mod stats;

/// The wall clock, in seconds since the epoch.
pub fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
