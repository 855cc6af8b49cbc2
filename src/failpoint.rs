//! Test-only crash points. `FERRODUP_FAILPOINT=NAME[:N][:stop|:slow]` makes the process
//! kill itself with SIGKILL (or stop itself with SIGSTOP, or make that thread sleep for a
//! second) the N-th time (default 1) it passes the point NAME, so that tests can interrupt
//! or delay a run at an exact step. Unset, a point costs
//! one load of a cached setting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

struct Armed {
    name: String,
    nth: u64,
    /// The signal to raise, or 0 to sleep.
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
                    "slow" => signal = 0,
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
        if a.signal == 0 {
            std::thread::sleep(std::time::Duration::from_secs(1));
            return;
        }
        // SAFETY: raise only sends a signal to this process.
        unsafe {
            libc::raise(a.signal);
        }
    }
}
