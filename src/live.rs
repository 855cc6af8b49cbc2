//! The live status line on a terminal: while a backup, restore or verify runs and standard
//! error is a terminal, one line at its bottom shows how far it is (bytes and files done,
//! speed, ETA once the size of the source is known, the current volume; during a cold
//! restore, the volumes thawed of those requested and the next check), redrawn a few
//! times a second and erased at the end. Messages are printed above it: the line is erased
//! before any output and drawn again at the next tick. On anything but a terminal nothing
//! is drawn (duplicity's `--progress` lines are the plain form).
//!
//! The counters are process-wide: one command runs at a time in a process.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

static FILES: AtomicU64 = AtomicU64::new(0);
static WRITTEN: AtomicU64 = AtomicU64::new(0);
static VOLUMES: AtomicU64 = AtomicU64::new(0);
static VOLUMES_TOTAL: AtomicU64 = AtomicU64::new(0);
static THAW_ASKED: AtomicU64 = AtomicU64::new(0);
static THAWED: AtomicU64 = AtomicU64::new(0);
/// When the next look at thawing volumes is due, in milliseconds since [`EPOCH`] (0: none).
static NEXT_CHECK: AtomicU64 = AtomicU64::new(0);
/// The size of the source (backup), once a walk beside the backup has found it; 0 before.
static TOTAL: AtomicU64 = AtomicU64::new(0);
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Whether the line is on the screen, and the lock that keeps drawing and other output
/// apart.
static SHOWN: Mutex<bool> = Mutex::new(false);
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// One more source entry examined (backup) or object restored (restore, verify).
pub fn add_file() {
    FILES.fetch_add(1, Ordering::Relaxed);
}

/// `n` more bytes of restored files written.
pub fn add_written(n: u64) {
    WRITTEN.fetch_add(n, Ordering::Relaxed);
}

/// Bytes of restored files written since the command started.
pub fn written() -> u64 {
    WRITTEN.load(Ordering::Relaxed)
}

/// `1.2 GB`, `345 MB`: a size as the line shows it.
pub fn size_text(n: u64) -> String {
    size(n)
}

/// One more volume stored (backup) or opened (restore), of `total` when known.
pub fn add_volume(total: Option<u64>) {
    VOLUMES.fetch_add(1, Ordering::Relaxed);
    if let Some(t) = total {
        VOLUMES_TOTAL.store(t, Ordering::Relaxed);
    }
}

/// Cold storage was asked to thaw `n` more volumes.
pub fn thaw_asked(n: u64) {
    THAW_ASKED.fetch_add(n, Ordering::Relaxed);
}

/// A thawed volume arrived.
pub fn thawed() {
    THAWED.fetch_add(1, Ordering::Relaxed);
}

/// The next look at thawing volumes is `after` from now.
pub fn next_check(after: Duration) {
    let at = epoch().elapsed() + after;
    NEXT_CHECK.store(at.as_millis() as u64, Ordering::Relaxed);
}

/// The size of the source, found by a walk beside the backup.
pub fn set_total(bytes: u64) {
    TOTAL.store(bytes, Ordering::Relaxed);
}

fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// What runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Task {
    Backup,
    Restore,
    Verify,
}

/// Erases the line when dropped.
pub struct Guard {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        ACTIVE.store(false, Ordering::Relaxed);
        drop(erase());
    }
}

/// Whether a line can be drawn: standard error is a terminal that understands it, and the
/// verbosity shows notices.
pub fn wanted() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    let tty = unsafe { libc::isatty(2) } == 1;
    let dumb = std::env::var_os("TERM").is_none_or(|t| t.is_empty() || t == "dumb");
    tty && !dumb && crate::log::enabled(crate::log::NOTICE)
}

/// Starts the line for `task` when [`wanted`]; `None` otherwise.
pub fn start(task: Task) -> Option<Guard> {
    for c in [
        &FILES,
        &WRITTEN,
        &VOLUMES,
        &VOLUMES_TOTAL,
        &THAW_ASKED,
        &THAWED,
        &NEXT_CHECK,
        &TOTAL,
    ] {
        c.store(0, Ordering::Relaxed);
    }
    if !wanted() {
        return None;
    }
    epoch();
    ACTIVE.store(true, Ordering::Relaxed);
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let start = Instant::now();
        let mut speed = Speed::default();
        let (lock, cv) = &*flag;
        let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let line = compose(task, start.elapsed(), speed.update(bytes(task)));
            draw(&line);
            let (g, _) = cv
                .wait_timeout(stopped, Duration::from_millis(250))
                .unwrap_or_else(|e| e.into_inner());
            stopped = g;
            if *stopped {
                return;
            }
        }
    });
    Some(Guard {
        stop,
        handle: Some(handle),
    })
}

/// The bytes done so far: of the source (backup) or written (restore).
fn bytes(task: Task) -> u64 {
    match task {
        Task::Backup => crate::progress::done(),
        Task::Restore | Task::Verify => WRITTEN.load(Ordering::Relaxed),
    }
}

/// Bytes per second over the last few seconds.
#[derive(Default)]
struct Speed {
    samples: std::collections::VecDeque<(Instant, u64)>,
}

impl Speed {
    fn update(&mut self, bytes: u64) -> (u64, f64) {
        let now = Instant::now();
        self.samples.push_back((now, bytes));
        while self.samples.len() > 2 && now - self.samples[0].0 > Duration::from_secs(5) {
            self.samples.pop_front();
        }
        let (t0, b0) = self.samples[0];
        let dt = (now - t0).as_secs_f64();
        let rate = if dt > 0.2 {
            bytes.saturating_sub(b0) as f64 / dt
        } else {
            0.0
        };
        (bytes, rate)
    }
}

/// The status line.
fn compose(task: Task, elapsed: Duration, (bytes, rate): (u64, f64)) -> String {
    let files = FILES.load(Ordering::Relaxed);
    let volumes = VOLUMES.load(Ordering::Relaxed);
    let total = TOTAL.load(Ordering::Relaxed);
    let mut parts = vec![match task {
        Task::Backup => "backup".to_string(),
        Task::Restore => "restore".to_string(),
        Task::Verify => "verify".to_string(),
    }];
    if task == Task::Backup && total > 0 {
        let pct = (100 * bytes / total).min(99);
        parts.push(format!("{} of {} ({pct}%)", size(bytes), size(total)));
    } else {
        parts.push(size(bytes));
    }
    parts.push(format!("{} files", thousands(files)));
    parts.push(format!("{}/s", size(rate as u64)));
    if task == Task::Backup && total > 0 && bytes > 0 && rate > 0.0 {
        let left = total.saturating_sub(bytes) as f64 / rate;
        parts.push(format!("ETA {}", clock(Duration::from_secs_f64(left))));
    }
    match (task, VOLUMES_TOTAL.load(Ordering::Relaxed)) {
        (Task::Backup, _) => parts.push(format!("volume {}", volumes + 1)),
        (_, 0) => {}
        (_, n) => parts.push(format!("volume {} of {n}", volumes.max(1).min(n))),
    }
    let asked = THAW_ASKED.load(Ordering::Relaxed);
    if asked > 0 {
        let mut thaw = format!("thawed {} of {asked}", THAWED.load(Ordering::Relaxed));
        let next = NEXT_CHECK.load(Ordering::Relaxed);
        let now = epoch().elapsed().as_millis() as u64;
        if next > now {
            thaw.push_str(&format!(
                ", next check in {}",
                clock(Duration::from_millis(next - now))
            ));
        }
        parts.push(thaw);
    }
    parts.push(clock(elapsed));
    parts.join("  ")
}

/// `1.2 GB`, `345 MB`, `12 KB`, `512 B` (powers of 1024, as duplicity's statistics).
fn size(n: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 || v >= 100.0 {
        format!("{v:.0} {}", units[u])
    } else {
        format!("{v:.1} {}", units[u])
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `m:ss`, or `h:mm:ss` past an hour.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// The terminal's width, or 80.
fn width() -> usize {
    // SAFETY: TIOCGWINSZ fills the winsize given.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0 {
            return ws.ws_col as usize;
        }
    }
    80
}

fn draw(line: &str) {
    let mut shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner());
    let fit: String = line.chars().take(width().saturating_sub(1)).collect();
    let mut err = std::io::stderr().lock();
    if err.write_all(format!("\r{fit}\x1b[K").as_bytes()).is_ok() {
        let _ = err.flush();
        *shown = true;
    }
}

/// Erases the line if it is on the screen; returns the lock, which keeps it off.
fn erase() -> std::sync::MutexGuard<'static, bool> {
    let mut shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner());
    if *shown {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(b"\r\x1b[K");
        let _ = err.flush();
        *shown = false;
    }
    shown
}

/// Runs `write` (output to the terminal) with the line erased first and kept off the
/// screen meanwhile; it comes back at the next tick.
pub fn above<T>(write: impl FnOnce() -> T) -> T {
    if !ACTIVE.load(Ordering::Relaxed) {
        return write();
    }
    let _off = erase();
    write()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_counts_and_times_are_short() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KB");
        assert_eq!(size(345 << 20), "345 MB");
        assert_eq!(size(5 << 30), "5.0 GB");
        assert_eq!(thousands(6012), "6,012");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(clock(Duration::from_secs(75)), "1:15");
        assert_eq!(clock(Duration::from_secs(3725)), "1:02:05");
    }
}
