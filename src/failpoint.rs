//! Test-only crash points. `FERRODUP_FAILPOINT=NAME[:N][:stop]` makes the process kill
//! itself with SIGKILL (or stop itself with SIGSTOP) the N-th time (default 1) it passes
//! the point NAME, so that tests can interrupt a run at an exact step. Unset, a point costs
//! one load of a cached setting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

struct Armed {
    name: String,
    nth: u64,
    signal: libc::c_int,
    seen: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var("FERRODUP_FAILPOINT").ok()?;
            let mut parts = spec.split(':');
            let name = parts.next()?.to_string();
            let mut nth = 1;
            let mut signal = libc::SIGKILL;
            for p in parts {
                match p {
                    "stop" => signal = libc::SIGSTOP,
                    n => nth = n.parse().ok()?,
                }
            }
            Some(Armed {
                name,
                nth,
                signal,
                seen: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Passes the crash point `name`.
pub fn hit(name: &str) {
    let Some(a) = armed() else {
        return;
    };
    if a.name == name && a.seen.fetch_add(1, Ordering::SeqCst) + 1 == a.nth {
        // SAFETY: raise only sends a signal to this process.
        unsafe {
            libc::raise(a.signal);
        }
    }
}
