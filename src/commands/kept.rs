//! Volumes a restore had to thaw, kept once downloaded and checked, so that a rerun after
//! an interruption reads them again without a new thaw or download. They live beside the
//! runs' temporary directories (`--tempdir`), in a folder named after the archive dir's,
//! hard links to the downloads (so no copy is made while the restore runs), up to half of
//! the space free there; the folder goes when a restore or verify completes.

use super::Context;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Kept {
    dir: PathBuf,
    /// Bytes the folder may still take.
    room: AtomicU64,
}

impl Kept {
    /// The folder of the target `ctx` restores from (created if need be); `None` if it
    /// cannot be made, in which case nothing is kept.
    pub fn open(ctx: &Context) -> Option<Kept> {
        let base = ctx.tempdir.parent()?;
        let key = ctx.cache.dir.file_name()?.to_string_lossy().into_owned();
        let dir = base.join(format!("ferrodup-thawed-{key}"));
        std::fs::create_dir_all(&dir).ok()?;
        let free = rustix::fs::statvfs(&dir)
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
            .unwrap_or(0);
        Some(Kept {
            dir,
            room: AtomicU64::new(free / 2),
        })
    }

    /// The kept copy of the volume `name`, if an earlier run left one.
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        let p = self.dir.join(name);
        p.is_file().then_some(p)
    }

    /// Links the download `path` of `name`, not checked yet, into the folder if there is
    /// room; [`Kept::checked`] or [`Kept::forget`] follows.
    pub fn hold(&self, path: &Path, name: &str) {
        let size = std::fs::metadata(path).map_or(u64::MAX, |m| m.len());
        let fits = self
            .room
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                r.checked_sub(size)
            })
            .is_ok();
        if fits && std::fs::hard_link(path, self.unchecked(name)).is_err() {
            self.room.fetch_add(size, Ordering::Relaxed);
        }
    }

    /// The held download of `name` matched its manifest's hash: a rerun may use it.
    pub fn checked(&self, name: &str) {
        let _ = std::fs::rename(self.unchecked(name), self.dir.join(name));
    }

    /// Drops the copy of `name`: its hash was wrong.
    pub fn forget(&self, name: &str) {
        let _ = std::fs::remove_file(self.unchecked(name));
        let _ = std::fs::remove_file(self.dir.join(name));
    }

    /// Removes the folder: the restore completed, so nothing is left to rerun.
    pub fn clear(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    fn unchecked(&self, name: &str) -> PathBuf {
        self.dir.join(format!(".unchecked-{name}"))
    }
}
