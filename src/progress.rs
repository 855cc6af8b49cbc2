//! How far a backup is, for the `Processed volume` records and for `--progress`: every
//! `--progress-rate` seconds, a line in duplicity's format on standard output
//! (`12.3MB 00:01:05 [1.2MB/s] [=====>        ] 12% ETA 8min`) and its `NOTICE 16`
//! record (`upload_progress`: bytes, elapsed seconds, percent, ETA seconds, bytes per
//! second, stalled). The percentage is the share of the source's bytes done (read, or found
//! unchanged), out of a total taken by a quick walk of the source before the backup
//! (duplicity makes a whole dry-run backup for it); it stays below 100 until the backup
//! ends. Nothing read, skipped or stored for a while is a stall.
//!
//! The counters are process-wide: one backup runs at a time in a process.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

static SKIPPED: AtomicU64 = AtomicU64::new(0);
static READ: AtomicU64 = AtomicU64::new(0);
static STORED: AtomicU64 = AtomicU64::new(0);
static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

/// Starts counting for a new backup.
pub fn reset() {
    for c in [&SKIPPED, &READ, &STORED] {
        c.store(0, Ordering::Relaxed);
    }
}

/// `n` more bytes of the source need no reading (unchanged files, entries without data).
pub fn add_skipped(n: u64) {
    SKIPPED.fetch_add(n, Ordering::Relaxed);
}

/// `n` more bytes of file data were read into the backup.
pub fn add_read(n: u64) {
    READ.fetch_add(n, Ordering::Relaxed);
}

/// `n` more bytes of volumes were stored.
pub fn add_stored(n: u64) {
    STORED.fetch_add(n, Ordering::Relaxed);
}

/// Bytes of the source done so far: read, or found unchanged.
pub fn done() -> u64 {
    SKIPPED.load(Ordering::Relaxed) + READ.load(Ordering::Relaxed)
}

struct Running {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: JoinHandle<Tracker>,
}

/// Stops the progress lines when dropped (a backup that fails prints no final line).
pub struct Guard(());

impl Drop for Guard {
    fn drop(&mut self) {
        stop();
    }
}

/// Starts printing progress lines every `rate` for a backup of `total` source bytes.
pub fn start(total: u64, rate: Duration) -> Guard {
    stop();
    let stop_flag = Arc::new((Mutex::new(false), Condvar::new()));
    let flag = stop_flag.clone();
    let mut tracker = Tracker::new(total, rate);
    let handle = std::thread::spawn(move || {
        let (lock, cv) = &*flag;
        let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let (g, _) = cv
                .wait_timeout(stopped, rate)
                .unwrap_or_else(|e| e.into_inner());
            stopped = g;
            if *stopped {
                return tracker;
            }
            tracker.tick();
        }
    });
    *running() = Some(Running {
        stop: stop_flag,
        handle,
    });
    Guard(())
}

/// The backup is stored: stops the periodic lines and prints the 100% line, as duplicity
/// does before its statistics. Nothing happens without `--progress`.
pub fn finish() {
    if let Some(t) = halt() {
        t.report(100.0, 0, false);
    }
}

fn stop() {
    halt();
}

fn running() -> std::sync::MutexGuard<'static, Option<Running>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

fn halt() -> Option<Tracker> {
    let r = running().take()?;
    let (lock, cv) = &*r.stop;
    *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
    cv.notify_all();
    r.handle.join().ok()
}

/// Estimates as duplicity's `ProgressTracker`: speed is a moving average of the last 30
/// samples, the ETA a projection of the elapsed time, and no change for a while is a stall.
struct Tracker {
    total: u64,
    rate: Duration,
    start: Instant,
    last: Instant,
    last_change: Instant,
    last_read: u64,
    last_activity: (u64, u64),
    samples: VecDeque<f64>,
    speed: f64,
    percent: f64,
}

impl Tracker {
    fn new(total: u64, rate: Duration) -> Self {
        let now = Instant::now();
        Tracker {
            total,
            rate,
            start: now,
            last: now,
            last_change: now,
            last_read: 0,
            last_activity: (0, 0),
            samples: VecDeque::new(),
            speed: 0.0,
            percent: 0.0,
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        let read = READ.load(Ordering::Relaxed);
        let done = done();
        let activity = (done, STORED.load(Ordering::Relaxed));
        if activity != self.last_activity {
            self.last_change = now;
            self.last_activity = activity;
        }
        let stall_limit = (2 * self.rate).max(Duration::from_secs(5));
        if now - self.last_change > stall_limit {
            self.report(self.percent, 0, true);
            return;
        }
        let dt = (now - self.last).as_secs_f64();
        if dt > 0.0 {
            self.samples
                .push_back(read.saturating_sub(self.last_read) as f64 / dt);
            if self.samples.len() > 30 {
                self.samples.pop_front();
            }
        }
        self.speed = self.samples.iter().fold(0.0, |s, x| 0.3 * x + 0.7 * s);
        self.last = now;
        self.last_read = read;
        let fraction = if self.total == 0 {
            0.0
        } else {
            (done as f64 / self.total as f64).min(0.99)
        };
        // Never backwards, so the estimate looks steady.
        self.percent = self.percent.max(100.0 * fraction);
        let p = self.percent / 100.0;
        let projection = if p > 0.0 { (1.0 - p) / p } else { 1.0 };
        let eta = (projection * (now - self.start).as_secs_f64()) as u64;
        self.report(self.percent, eta, false);
    }

    fn report(&self, percent: f64, eta: u64, stalled: bool) {
        let changed = READ.load(Ordering::Relaxed);
        let elapsed = self.start.elapsed().as_secs();
        let (text, record) = transfer_line(percent, eta, changed, elapsed, self.speed, stalled);
        crate::log::progress_line(&text, &record);
    }
}

/// duplicity's progress line and its record's control data.
fn transfer_line(
    percent: f64,
    eta: u64,
    changed: u64,
    elapsed: u64,
    speed: f64,
    stalled: bool,
) -> (String, String) {
    let dots = ((0.4 * percent) as usize).min(40);
    let (amount, scale) = scaled(changed as f64 / 1024.0);
    let (eta_text, speed_amount, speed_scale) = if stalled {
        ("Stalled!".to_string(), 0.0, "B")
    } else {
        let (s, sc) = scaled(speed / 1024.0);
        (remaining(eta), s, sc)
    };
    let text = format!(
        "{amount:.1}{scale} {} [{speed_amount:.1}{speed_scale}/s] [{}>{}] {}% ETA {eta_text}",
        elapsed_text(elapsed),
        "=".repeat(dots),
        " ".repeat(40 - dots),
        percent as u64
    );
    let record = format!(
        "{changed} {elapsed} {} {eta} {} {}",
        percent as u64,
        speed as u64,
        u8::from(stalled)
    );
    (text, record)
}

/// Kilobytes in KB, MB or GB, switching above 1000 of a unit.
fn scaled(kb: f64) -> (f64, &'static str) {
    let mut v = kb;
    let mut unit = "KB";
    for next in ["MB", "GB"] {
        if v > 1000.0 {
            v /= 1024.0;
            unit = next;
        }
    }
    (v, unit)
}

/// An ETA as duplicity words it: `2d 3h 5min`, `8min 30sec`, `< 45sec`, `12sec`.
fn remaining(secs: u64) -> String {
    let (days, rest) = (secs / 86400, secs % 86400);
    let (hours, minutes, seconds) = (rest / 3600, rest % 3600 / 60, rest % 60);
    if days > 0 {
        let mut s = format!("{days}d");
        if hours > 0 {
            s.push_str(&format!(" {hours}h"));
        }
        if minutes > 0 {
            s.push_str(&format!(" {minutes}min"));
        }
        s
    } else if hours > 0 {
        if minutes > 0 {
            format!("{hours}h {minutes}min")
        } else {
            format!("{hours}h")
        }
    } else if minutes > 5 {
        format!("{minutes}min")
    } else if minutes > 0 {
        if seconds >= 30 {
            format!("{minutes}min 30sec")
        } else {
            format!("{minutes}min")
        }
    } else if seconds > 45 {
        "< 1min".to_string()
    } else if seconds > 30 {
        "< 45sec".to_string()
    } else if seconds > 15 {
        "< 30sec".to_string()
    } else {
        format!("{seconds}sec")
    }
}

/// Elapsed time as `HH:MM:SS`, after `Nd,` past a day.
fn elapsed_text(secs: u64) -> String {
    let days = secs / 86400;
    let rest = secs % 86400;
    let hms = format!(
        "{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    if days > 0 {
        format!("{days}d,{hms}")
    } else {
        hms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_match_duplicity() {
        // Values from a run of duplicity 3.2.1 --progress.
        let (text, record) = transfer_line(99.0, 0, 30121326, 3, 9032874.0, false);
        assert_eq!(
            text,
            "28.7MB 00:00:03 [8.6MB/s] [=======================================> ] 99% ETA 0sec"
        );
        assert_eq!(record, "30121326 3 99 0 9032874 0");
        let (text, record) = transfer_line(0.0, 2, 0, 2, 0.0, false);
        assert_eq!(
            text,
            "0.0KB 00:00:02 [0.0KB/s] [>                                        ] 0% ETA 2sec"
        );
        assert_eq!(record, "0 2 0 2 0 0");
        let (text, _) = transfer_line(50.0, 0, 2048, 7, 10.0, true);
        assert!(
            text.ends_with("[0.0B/s] [====================>                    ] 50% ETA Stalled!")
        );
    }

    #[test]
    fn durations_are_worded_as_duplicity() {
        assert_eq!(remaining(12), "12sec");
        assert_eq!(remaining(40), "< 45sec");
        assert_eq!(remaining(150), "2min 30sec");
        assert_eq!(remaining(3600 * 2 + 60 * 5), "2h 5min");
        assert_eq!(remaining(86400 + 3600), "1d 1h");
        assert_eq!(elapsed_text(3725), "01:02:05");
        assert_eq!(elapsed_text(90061), "1d,01:01:01");
    }
}
