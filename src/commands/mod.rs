//! One module per user command.

pub mod backup;
pub mod changes;
pub mod check;
pub mod dupview;
pub mod jsonstat;
pub mod kept;
pub mod list;
mod pool;
pub mod remove;
pub mod replicate;
pub mod restore;
pub mod status;
pub mod upload;

use crate::backend::Backend;
use crate::cache::{Cache, FileLock};
use crate::crypto::Crypto;
use crate::error::{Error, Kind, Result};
use crate::format::naming::{Prefixes, Wrapping};
use std::path::{Path, PathBuf};

/// What every command needs: the target, the names, the local cache and the clock.
pub struct Context {
    pub backend: Box<dyn Backend>,
    pub prefixes: Prefixes,
    pub cache: Cache,
    /// This run's own temporary directory (see [`RunTemp`]).
    pub tempdir: PathBuf,
    pub compression: bool,
    /// New files are encrypted (not `--no-encryption`).
    pub encrypt: bool,
    /// Encryption settings, also used with `--no-encryption` to read `.gpg` files.
    pub crypto: Option<Crypto>,
    pub now: i64,
    pub dry_run: bool,
    pub force: bool,
    pub ignore_errors: bool,
}

impl Context {
    /// Brings the archive dir in line with the target's listing; names there that look
    /// like backup files but do not parse are ignored with a warning.
    pub fn sync_cache(&self, remote: &[String]) -> Result<()> {
        self.sync_cache_as(remote, false, None)
    }

    /// [`Context::sync_cache`], saying what it does as duplicity does, on standard output,
    /// and fetching only the metadata of the sets overlapping `window` when given.
    pub fn sync_cache_reporting(
        &self,
        remote: &[String],
        window: Option<(i64, i64)>,
    ) -> Result<()> {
        self.sync_cache_as(remote, true, window)
    }

    fn sync_cache_as(
        &self,
        remote: &[String],
        report: bool,
        window: Option<(i64, i64)>,
    ) -> Result<()> {
        self.warn_unparsable(remote);
        if self.dry_run {
            return Ok(());
        }
        self.cache.sync(
            &*self.backend,
            &self.prefixes,
            remote,
            &self.tempdir,
            self.crypto.as_ref(),
            report,
            window,
        )
    }

    /// Warns about the names in a target's listing that look like backup files but do
    /// not parse (they are ignored).
    pub fn warn_unparsable(&self, remote: &[String]) {
        for name in remote {
            if name.contains(self.prefixes.base.as_str()) && self.prefixes.parse(name).is_none() {
                crate::log::warn(&format!(
                    "{}: ignoring {name:?}, which is named like a backup file but is not one \
                     (its name does not parse)",
                    self.backend.describe()
                ));
            }
        }
    }

    /// How new volumes and signature files are stored.
    pub fn wrap(&self) -> Wrapping {
        if self.encrypt {
            Wrapping::Gpg
        } else if self.compression {
            Wrapping::Gzip
        } else {
            Wrapping::Plain
        }
    }

    /// The archive dir's copy of the remote manifest or signature file `remote`, when
    /// there is one.
    pub fn cached_copy(&self, remote: &str) -> Option<std::path::PathBuf> {
        crate::cache::Cache::local_name(&self.prefixes, remote)
            .map(|l| self.cache.path(&l))
            .filter(|p| p.exists())
    }

    /// Opens a file downloaded from the target, unwrapping it by its name.
    pub fn open_stored(
        &self,
        path: &std::path::Path,
        name: &str,
    ) -> Result<Box<dyn std::io::Read + Send>> {
        crate::codec::open_stored(path, name, self.crypto.as_ref())
    }

    /// A fresh temporary file path in this run's temporary directory, removed when dropped.
    pub fn temp_path(&self, what: &str) -> Result<tempfile::TempPath> {
        Ok(tempfile::Builder::new()
            .prefix(&format!("ferrodup-{what}-"))
            .tempfile_in(&self.tempdir)
            .map_err(|e| Error::io(&self.tempdir, e))?
            .into_temp_path())
    }
}

/// This run's temporary directory, `ferrodup-run-XXXXXX` under `--tempdir`, next to a
/// `ferrodup-run-XXXXXX.lock` file locked for the run's life. Runs are told apart by that
/// lock: the kernel releases it when a run dies, so each run removes, when it starts, the
/// directories of runs whose lock is free (killed runs), and its own when it ends.
pub struct RunTemp {
    dir: PathBuf,
    _lock: (FileLock, tempfile::TempPath),
}

impl RunTemp {
    pub fn create(base: &Path) -> Result<RunTemp> {
        let io = |e| Error::io(base, e);
        // The lock file gets its run name only once locked, so that another run's
        // `reclaim` never finds it free.
        let (file, tmp) = tempfile::Builder::new()
            .prefix(".ferrodup-lock-")
            .tempfile_in(base)
            .map_err(io)?
            .into_parts();
        let lock = FileLock::try_lock_file(file)
            .map_err(io)?
            .ok_or_else(|| Error::new(Kind::Io, format!("{}: cannot lock it", tmp.display())))?;
        let path = loop {
            let path = base.join(format!("{RUN_PREFIX}{:016x}.lock", rand::random::<u64>()));
            match rustix::fs::renameat_with(
                rustix::fs::CWD,
                &*tmp,
                rustix::fs::CWD,
                &path,
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Ok(()) => break path,
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(io(e.into())),
            }
        };
        tmp.keep().map_err(|e| io(e.error))?;
        let path = tempfile::TempPath::try_from_path(path).map_err(io)?;
        let dir = path.with_extension("");
        std::fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        reclaim(base, &dir);
        Ok(RunTemp {
            dir,
            _lock: (lock, path),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for RunTemp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const RUN_PREFIX: &str = "ferrodup-run-";

/// Removes what killed runs left under `base`: run directories whose lock is free (or
/// whose lock file is gone: it is made before the directory and removed after it), and the
/// `ferrodup-PID-volN` files of earlier versions whose process no longer exists.
fn reclaim(base: &Path, own: &Path) {
    let Ok(rd) = std::fs::read_dir(base) else {
        return;
    };
    for ent in rd.flatten() {
        let path = ent.path();
        if path == own {
            continue;
        }
        let name = ent.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if let Some(stem) = name.strip_prefix(RUN_PREFIX) {
            let gone = if let Some(run) = stem.strip_suffix(".lock") {
                let free = FileLock::try_lock(&path, false).is_ok_and(|l| l.is_some());
                if free {
                    let _ = std::fs::remove_dir_all(base.join(format!("{RUN_PREFIX}{run}")));
                    let _ = std::fs::remove_file(&path);
                }
                free
            } else {
                ent.file_type().is_ok_and(|t| t.is_dir())
                    && !base.join(format!("{name}.lock")).exists()
                    && std::fs::remove_dir_all(&path).is_ok()
            };
            if gone {
                let dir = name.strip_suffix(".lock").unwrap_or(name);
                crate::log::info(&format!("Removed {dir}, left by a run that was killed."));
            }
        } else if let Some(pid) = legacy_volume_pid(name) {
            // SAFETY: signal 0 only checks whether the process exists.
            let dead = unsafe { libc::kill(pid, 0) } != 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
            if dead && std::fs::remove_file(&path).is_ok() {
                crate::log::info(&format!("Removed {name}, left by a run that was killed."));
            }
        }
    }
}

/// The process id in `ferrodup-PID-volN` or `ferrodup-PID-volN.stored`.
fn legacy_volume_pid(name: &str) -> Option<libc::pid_t> {
    let rest = name.strip_prefix("ferrodup-")?;
    let (pid, vol) = rest.split_once("-vol")?;
    let vol = vol.strip_suffix(".stored").unwrap_or(vol);
    if vol.is_empty() || !vol.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok().filter(|p| *p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_runs_leftovers_are_reclaimed_live_ones_kept() {
        let base = tempfile::tempdir().unwrap();
        let b = base.path();
        let live = RunTemp::create(b).unwrap();
        std::fs::write(live.path().join("x"), b"x").unwrap();
        // A killed run: its lock file exists but nobody holds it.
        std::fs::create_dir(b.join("ferrodup-run-dead01")).unwrap();
        std::fs::write(b.join("ferrodup-run-dead01/ferrodup-1-vol1"), b"x").unwrap();
        std::fs::write(b.join("ferrodup-run-dead01.lock"), b"").unwrap();
        // Killed between removing its lock file and its directory: no lock file.
        std::fs::create_dir(b.join("ferrodup-run-dead02")).unwrap();
        // An earlier version's volume, of a process that cannot exist (pid_max < 2^22).
        std::fs::write(b.join("ferrodup-999999999-vol3.stored"), b"x").unwrap();
        std::fs::write(b.join("unrelated"), b"x").unwrap();
        let second = RunTemp::create(b).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(b)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let live_name = live.path().file_name().unwrap().to_str().unwrap();
        let second_name = second.path().file_name().unwrap().to_str().unwrap();
        let mut want = vec![
            live_name.to_string(),
            format!("{live_name}.lock"),
            second_name.to_string(),
            format!("{second_name}.lock"),
            "unrelated".to_string(),
        ];
        want.sort();
        assert_eq!(left, want);
        assert!(live.path().join("x").exists());
        drop(live);
        drop(second);
        let left: Vec<_> = std::fs::read_dir(b).unwrap().collect();
        assert_eq!(left.len(), 1);
        assert_eq!(legacy_volume_pid("ferrodup-12-vol1"), Some(12));
        assert_eq!(legacy_volume_pid("ferrodup-sync-abc"), None);
        assert_eq!(legacy_volume_pid("ferrodup-12-volx"), None);
    }
}
