//! Parallel uploads of a backup's volumes (`--concurrency N`): up to N volumes go to the
//! target at once while the next ones are made. The partial manifest records a volume only
//! once it and every volume before it are stored, so an interrupted run leaves a manifest
//! that names stored volumes only; a resumed run deletes the volumes stored after the last
//! recorded one.
//!
//! Volumes in flight (being written, compressed, waiting or uploading) hold a [`Slot`]:
//! there are N + [`EXTRA_SLOTS`] of them, which bounds the temporary files however slow
//! the target is.

use crate::backend::Backend;
use crate::error::{Error, Kind, Result};
use crate::failpoint;
use crate::format::manifest::VolumeInfo;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;

/// Uploads at once without `--concurrency`: object stores answer each request after a
/// round trip or more, and four requests in flight hide most of it while keeping the
/// temporary files (N + [`EXTRA_SLOTS`] volumes) modest.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// Volumes in flight besides the N being uploaded: the one being written and two being
/// compressed or waiting for an upload.
pub const EXTRA_SLOTS: usize = 3;

/// The most uploads at once: each is a thread and a volume in the temporary folder.
pub const MAX_CONCURRENCY: usize = 64;

/// The number of parallel uploads for `--concurrency` (duplicity's 0 or less, uploads in
/// the foreground, is one upload at a time here, overlapped with making the next volume)
/// and `--asynchronous-upload` (duplicity 3's former name for that overlap, which ferrodup
/// always does).
pub fn concurrency(given: Option<i64>, asynchronous: bool) -> usize {
    if asynchronous {
        crate::log::warn(
            "--asynchronous-upload is replaced by --concurrency N (duplicity 3 deprecated it); \
             ferrodup always uploads a volume while it makes the next",
        );
    }
    match given {
        None => DEFAULT_CONCURRENCY,
        Some(n) if n > MAX_CONCURRENCY as i64 => {
            crate::log::warn(&format!(
                "--concurrency {n}: uploading {MAX_CONCURRENCY} volumes at once, the most \
                 ferrodup does"
            ));
            MAX_CONCURRENCY
        }
        Some(n) => n.max(1) as usize,
    }
}

/// A counting semaphore for volumes in flight; closing it makes every wait fail at once.
pub struct Slots {
    state: Mutex<(usize, bool)>,
    freed: Condvar,
}

/// One volume's place in flight, given back when dropped.
pub struct Slot(Arc<Slots>);

impl Slots {
    pub fn new(n: usize) -> Arc<Slots> {
        Arc::new(Slots {
            state: Mutex::new((n, false)),
            freed: Condvar::new(),
        })
    }

    /// Waits for a free slot; `None` once the slots are closed (an upload failed).
    pub fn acquire(self: &Arc<Self>) -> Option<Slot> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if st.1 {
                return None;
            }
            if st.0 > 0 {
                st.0 -= 1;
                return Some(Slot(self.clone()));
            }
            st = self.freed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Makes every waiting and later [`Slots::acquire`] return `None`.
    pub fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.freed.notify_all();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner()).0 += 1;
        self.0.freed.notify_one();
    }
}

/// A volume in its stored form, ready to upload.
pub struct FinishedVolume {
    pub path: PathBuf,
    pub name: String,
    pub size: u64,
    pub info: VolumeInfo,
    pub slot: Slot,
}

/// How the uploads run.
pub struct Settings {
    /// Volumes uploaded at once (at least 1).
    pub concurrency: usize,
    pub dry_run: bool,
    /// Testing aid (`--fail-on-volume`): fail right after recording this volume.
    pub fail_on_volume: Option<u32>,
    /// Volumes already recorded in the manifest (a resumed run's kept volumes).
    pub first_volume: u32,
}

/// What a finished upload tells the recorder: the volume's manifest entry and stored size.
type Uploaded = (u32, Result<(VolumeInfo, u64)>);

/// The lowest volume that failed (to be made, uploaded or recorded), shared by the threads:
/// volumes after it are dropped, those before it are still uploaded and recorded so that a
/// resumed run keeps them.
struct Failure {
    at: AtomicU32,
    slots: Arc<Slots>,
}

impl Failure {
    fn set(&self, n: u32) {
        self.at.fetch_min(n, Ordering::SeqCst);
        self.slots.close();
    }

    fn after(&self, n: u32) -> bool {
        n > self.at.load(Ordering::SeqCst)
    }

    fn any(&self) -> bool {
        self.at.load(Ordering::SeqCst) != u32::MAX
    }
}

/// N upload threads that take finished volumes as workers make them, and a recorder that
/// appends them to the partial manifest in volume order.
pub struct Uploader<'s> {
    recorder: Option<thread::ScopedJoinHandle<'s, Result<(File, u64, u32)>>>,
    failure: Arc<Failure>,
}

impl<'s> Uploader<'s> {
    pub fn start<'e: 's>(
        scope: &'s thread::Scope<'s, 'e>,
        backend: &'e dyn Backend,
        mut manifest: File,
        settings: Settings,
        done: mpsc::Receiver<(u32, Result<FinishedVolume>)>,
        slots: Arc<Slots>,
    ) -> Self {
        let failure = Arc::new(Failure {
            at: AtomicU32::new(u32::MAX),
            slots,
        });
        let done = Arc::new(Mutex::new(done));
        let (up_tx, up_rx) = mpsc::channel::<Uploaded>();
        for _ in 0..settings.concurrency.max(1) {
            let (done, tx, failure) = (done.clone(), up_tx.clone(), failure.clone());
            let (dry_run, stop_after) = (settings.dry_run, settings.fail_on_volume);
            scope.spawn(move || loop {
                let next = done.lock().unwrap_or_else(|e| e.into_inner()).recv();
                let Ok((n, v)) = next else {
                    return;
                };
                let result = match v {
                    // Nothing after a failed volume can be recorded, and --fail-on-volume
                    // stops right after its volume, as duplicity's: dropped, not uploaded.
                    Ok(v) if failure.after(n) || stop_after.is_some_and(|f| n > f) => {
                        let _ = std::fs::remove_file(&v.path);
                        continue;
                    }
                    Ok(v) => {
                        let stored = if dry_run { Ok(()) } else { put(backend, &v) };
                        let _ = std::fs::remove_file(&v.path);
                        stored.map(|()| (v.info, v.size))
                    }
                    Err(e) => Err(e),
                };
                if result.is_err() {
                    failure.set(n);
                }
                // The recorder is gone only after a failure it reported already.
                let _ = tx.send((n, result));
            });
        }
        drop(up_tx);
        let fail = failure.clone();
        let recorder = scope.spawn(move || -> Result<(File, u64, u32)> {
            let mut next = settings.first_volume + 1;
            let mut pending: BTreeMap<u32, (VolumeInfo, u64)> = BTreeMap::new();
            let mut stored = 0u64;
            let mut first_error: Option<(u32, Error)> = None;
            // Until the upload threads are done: what is stored in order is recorded even
            // after a failure, and the failure of the lowest volume is reported.
            for (n, v) in up_rx {
                match v {
                    Ok(v) => {
                        pending.insert(n, v);
                    }
                    Err(e) => {
                        if first_error.as_ref().is_none_or(|(m, _)| n < *m) {
                            first_error = Some((n, e));
                        }
                        continue;
                    }
                }
                // Volumes from the first failed one on are never recorded.
                while first_error.as_ref().is_none_or(|(m, _)| next < *m) {
                    let Some((info, size)) = pending.remove(&next) else {
                        break;
                    };
                    if !settings.dry_run {
                        let written = manifest
                            .write_all(&info.to_text())
                            .and_then(|_| manifest.flush());
                        if let Err(e) = written {
                            fail.set(next);
                            first_error = Some((
                                next,
                                Error::new(Kind::Io, format!("writing partial manifest: {e}")),
                            ));
                            break;
                        }
                        failpoint::hit("volume-recorded");
                    }
                    stored += size;
                    crate::progress::add_stored(size);
                    crate::live::add_volume(None);
                    // The control line carries the source bytes done so far, which
                    // deja-dup compares with the total of a --dry-run.
                    crate::log::log(
                        crate::log::INFO,
                        crate::log::info_code::PROGRESS,
                        Some(&crate::progress::done().to_string()),
                        &format!("Processed volume {}", info.number),
                    );
                    if settings.fail_on_volume == Some(next) {
                        fail.set(next);
                        first_error = Some((
                            next + 1,
                            Error::backend(format!(
                                "stopping after volume {next} as asked by --fail-on-volume"
                            )),
                        ));
                    }
                    next += 1;
                }
            }
            match first_error {
                Some((_, e)) => Err(e),
                None => Ok((manifest, stored, next - 1)),
            }
        });
        Uploader {
            recorder: Some(recorder),
            failure,
        }
    }

    /// A place for the next volume, waiting while N + [`EXTRA_SLOTS`] are in flight;
    /// `None` once an upload or a volume failed.
    pub fn slot(&self) -> Option<Slot> {
        if self.failure.any() {
            return None;
        }
        self.failure.slots.acquire()
    }

    /// Waits until every volume given is recorded (or, after a failure, until the uploads
    /// in flight are done); returns the manifest file, the stored bytes and the number of
    /// the last volume recorded.
    pub fn join(&mut self) -> Result<(File, u64, u32)> {
        match self.recorder.take() {
            Some(h) => h
                .join()
                .map_err(|_| Error::backend("the upload thread panicked".to_string()))?,
            None => Err(Error::backend(
                "the upload thread already stopped".to_string(),
            )),
        }
    }
}

/// Uploads one volume and checks its stored size.
fn put(backend: &dyn Backend, v: &FinishedVolume) -> Result<()> {
    failpoint::hit("volume-put");
    backend.put_temporary(&v.path, &v.name)?;
    match backend.size(&v.name)? {
        Some(s) if s == v.size => {}
        other => {
            return Err(Error::backend(format!(
                "{} was corrupted during upload (stored size {:?}, expected {}); check the \
                 target and run the backup again",
                v.name, other, v.size
            )))
        }
    }
    failpoint::hit("volume-stored");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn slots_bound_what_is_in_flight_and_closing_wakes_waiters() {
        let slots = Slots::new(2);
        let a = slots.acquire().unwrap();
        let _b = slots.acquire().unwrap();
        let (tx, rx) = mpsc::channel();
        let s = slots.clone();
        let waiter = thread::spawn(move || {
            let got = s.acquire();
            tx.send(()).unwrap();
            got
        });
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(a);
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let _c = waiter
            .join()
            .unwrap()
            .expect("a slot once one is given back");

        let s = slots.clone();
        let waiter = thread::spawn(move || s.acquire().is_none());
        thread::sleep(Duration::from_millis(50));
        slots.close();
        assert!(waiter.join().unwrap());
        assert!(slots.acquire().is_none());
    }

    /// Gives the uploader volumes 1..=n in `order` (volume `bad` failing to be made) and
    /// returns its result, the volume numbers the manifest lists and the temporary files
    /// left.
    fn uploads(
        order: &[u32],
        bad: Option<u32>,
        fail_on_volume: Option<u32>,
    ) -> (Result<u32>, Vec<u32>, usize) {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir(&target).unwrap();
        let backend = crate::backend::FileBackend::new(target.to_str().unwrap()).unwrap();
        let man_path = dir.path().join("manifest");
        let manifest = File::create(&man_path).unwrap();
        let slots = Slots::new(order.len());
        let result = thread::scope(|scope| {
            let (tx, rx) = mpsc::channel();
            let settings = Settings {
                concurrency: 3,
                dry_run: false,
                fail_on_volume,
                first_volume: 0,
            };
            let mut up = Uploader::start(scope, &backend, manifest, settings, rx, slots.clone());
            // Every slot is taken first: a failure closes them.
            let vols: Vec<(u32, Result<FinishedVolume>)> = order
                .iter()
                .map(|&n| {
                    let path = dir.path().join(format!("tmp{n}"));
                    if bad == Some(n) {
                        return (n, Err(Error::backend(format!("volume {n} broke"))));
                    }
                    std::fs::write(&path, vec![n as u8; n as usize]).unwrap();
                    let v = FinishedVolume {
                        path,
                        name: format!("vol{n}"),
                        size: n as u64,
                        info: VolumeInfo {
                            number: n,
                            start: Vec::new(),
                            start_block: None,
                            end: Vec::new(),
                            end_block: None,
                            hashes: Vec::new(),
                            size: None,
                        },
                        slot: slots.acquire().unwrap(),
                    };
                    (n, Ok(v))
                })
                .collect();
            for v in vols {
                tx.send(v).unwrap();
            }
            drop(tx);
            up.join().map(|(_, _, last)| last)
        });
        let text = std::fs::read_to_string(&man_path).unwrap();
        let listed = text
            .lines()
            .filter_map(|l| l.strip_prefix("Volume "))
            .map(|l| l.trim_end_matches(':').parse().unwrap())
            .collect();
        let left = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("tmp")
            })
            .count();
        (result, listed, left)
    }

    #[test]
    fn the_manifest_lists_volumes_in_order_whatever_order_they_finish_in() {
        let (result, listed, left) = uploads(&[3, 1, 2, 6, 5, 4], None, None);
        assert_eq!(result.unwrap(), 6);
        assert_eq!(listed, [1, 2, 3, 4, 5, 6]);
        assert_eq!(left, 0);
    }

    #[test]
    fn a_failure_records_only_the_volumes_before_it_and_is_reported() {
        let (result, listed, left) = uploads(&[2, 1, 4, 3, 5, 6], Some(3), None);
        let err = result.unwrap_err().to_string();
        assert!(err.contains("volume 3 broke"), "{err}");
        assert_eq!(listed, [1, 2]);
        assert_eq!(left, 0);

        let (result, listed, left) = uploads(&[1, 2, 3, 4], None, Some(2));
        assert!(result.is_err());
        assert_eq!(listed, [1, 2]);
        assert_eq!(left, 0);
    }

    #[test]
    fn concurrency_defaults_and_is_kept_between_1_and_the_maximum() {
        assert_eq!(concurrency(None, false), DEFAULT_CONCURRENCY);
        assert_eq!(concurrency(Some(0), false), 1);
        assert_eq!(concurrency(Some(-3), false), 1);
        assert_eq!(concurrency(Some(7), true), 7);
        assert_eq!(concurrency(Some(1 << 40), false), MAX_CONCURRENCY);
    }
}
