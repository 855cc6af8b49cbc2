//! The local archive dir: plain manifests and gzipped signatures kept beside the target so
//! that incrementals and listings need no download, synchronised with the target as
//! duplicity does it.

use crate::backend::Backend;
use crate::codec;
use crate::crypto::Crypto;
use crate::error::{Code, Error, Result};
use crate::format::naming::{Kind, Prefixes, Wrapping};
use md5::{Digest, Md5};
use std::collections::HashSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// A write lock on a whole file, taken with `fcntl` as duplicity's `fasteners` takes its
/// lock, so that the two exclude each other. It is held until dropped; the kernel releases
/// it when the process dies, so a killed run leaves no stale lock.
pub struct FileLock {
    file: File,
}

impl FileLock {
    /// Locks `path` without waiting (creating the file if `create`); `Ok(None)` when
    /// another process holds the lock.
    pub fn try_lock(path: &Path, create: bool) -> std::io::Result<Option<FileLock>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(create)
            .open(path)?;
        Self::try_lock_file(file)
    }

    /// True if `path` still names the locked file.
    fn is_at(&self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (self.file.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }

    /// Locks an open file (opened for writing) without waiting.
    pub fn try_lock_file(file: File) -> std::io::Result<Option<FileLock>> {
        // SAFETY: flock is plain data; all-zero is a valid value.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as _;
        fl.l_whence = libc::SEEK_SET as _;
        // Open-file-description locks belong to this open file, not to the process, so
        // another descriptor of the same file opened here cannot release them by closing;
        // they conflict with duplicity's classic POSIX locks. Kernels without them get
        // the classic kind.
        #[cfg(target_os = "linux")]
        let cmds = [libc::F_OFD_SETLK, libc::F_SETLK];
        #[cfg(not(target_os = "linux"))]
        let cmds = [libc::F_SETLK];
        for cmd in cmds {
            // SAFETY: the descriptor is open and fl is a valid flock.
            if unsafe { libc::fcntl(file.as_raw_fd(), cmd, &fl) } == 0 {
                return Ok(Some(FileLock { file }));
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EACCES) => return Ok(None),
                Some(libc::EINVAL) => continue,
                _ => return Err(e),
            }
        }
        Err(std::io::Error::from_raw_os_error(libc::EINVAL))
    }
}

/// One backup's folder in the archive dir.
pub struct Cache {
    pub dir: PathBuf,
}

impl Cache {
    /// `--archive-dir` (default `$XDG_CACHE_HOME/duplicity` or `~/.cache/duplicity`) joined
    /// with `--name` (default: the hex MD5 of the target URL as given).
    pub fn open(archive_dir: Option<&Path>, name: Option<&str>, url: &str) -> Result<Cache> {
        let base = match archive_dir {
            Some(d) => d.to_path_buf(),
            None => {
                if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
                    PathBuf::from(x).join("duplicity")
                } else {
                    let home = std::env::var_os("HOME")
                        .ok_or_else(|| Error::usage("HOME is not set: give --archive-dir"))?;
                    PathBuf::from(home).join(".cache").join("duplicity")
                }
            }
        };
        let name = match name {
            Some(n) => n.to_string(),
            None => codec::hex(&Md5::digest(url.as_bytes())),
        };
        let dir = base.join(name);
        // duplicity checks the archive dir with the command line, so it reports one it
        // cannot create as a command-line error.
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e).with_code(Code::UserError))?;
        Ok(Cache { dir })
    }

    /// Takes the archive dir's lock, `lockfile`, as duplicity does: one run at a time per
    /// archive dir and backup name, whichever of the two tools runs.
    pub fn lock(&self) -> Result<FileLock> {
        let path = self.path("lockfile");
        loop {
            let lock = match FileLock::try_lock(&path, true) {
                Ok(Some(l)) => l,
                Ok(None) => break,
                Err(e) => return Err(Error::io(&path, e)),
            };
            // duplicity deletes the file when it ends: a lock taken on a file that was
            // just deleted guards nothing, so take it again on the new one.
            if lock.is_at(&path) {
                return Ok(lock);
            }
        }
        Err(Error::input(format!(
            "another ferrodup or duplicity run is using the archive dir {} (it holds {}); \
                 wait for it to finish, or give this backup its own --archive-dir or --name",
            self.dir.display(),
            path.display()
        )))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Names of the files in the cache.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut v = Vec::new();
        for ent in std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))? {
            let ent = ent.map_err(|e| Error::io(&self.dir, e))?;
            let Ok(n) = ent.file_name().into_string() else {
                continue;
            };
            // Not followed: a fifo would block a read, a directory fail it.
            if !ent.file_type().is_ok_and(|t| t.is_file()) {
                crate::log::warn(&format!(
                    "{}: skipping {n:?}, which is not a regular file",
                    self.dir.display()
                ));
                continue;
            }
            v.push(n);
        }
        v.sort();
        Ok(v)
    }

    /// The cache's name for a remote metadata file: manifests plain, signatures gzipped.
    pub fn local_name(prefixes: &Prefixes, remote: &str) -> Option<String> {
        let p = prefixes.parse(remote)?;
        if p.partial {
            return None;
        }
        match p.kind {
            Kind::Manifest => Some(prefixes.manifest(p.set, false, false)),
            Kind::Signature => Some(prefixes.signature(p.set, false, Wrapping::Gzip)),
            _ => None,
        }
    }

    /// Downloads remote manifests and signatures missing here and deletes local ones the
    /// target no longer has. Encrypted metadata is left for the commands that need it.
    /// With `report`, says what it does in duplicity's notices on standard output. With a
    /// `window` (start, end), only the missing files whose sets overlap it are fetched
    /// (duplicity's `--metadata-sync-mode partial`).
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &self,
        backend: &dyn Backend,
        prefixes: &Prefixes,
        remote: &[String],
        tempdir: &Path,
        crypto: Option<&Crypto>,
        report: bool,
        window: Option<(i64, i64)>,
    ) -> Result<()> {
        let note = |msg: &str| {
            if report {
                crate::log::out_notice(msg)
            } else {
                crate::log::info(msg)
            }
        };
        let mut local: HashSet<String> = self.names()?.into_iter().collect();
        // Copies that a killed run left half done (the archive dir is locked: no other run
        // is making them).
        local.retain(|name| {
            let stale = name.ends_with(".sync-tmp");
            if stale {
                let _ = std::fs::remove_file(self.path(name));
            }
            !stale
        });
        let mut wanted = HashSet::new();
        let mut missing = Vec::new();
        for name in remote {
            let Some(lname) = Self::local_name(prefixes, name) else {
                continue;
            };
            wanted.insert(lname.clone());
            if local.contains(&lname) {
                continue;
            }
            let parsed = prefixes.parse(name).expect("parsed above");
            if window
                .is_some_and(|(start, end)| parsed.set.end() < start || parsed.set.start() > end)
            {
                continue;
            }
            if parsed.encrypted && crypto.is_none() {
                crate::log::debug(&format!("not caching encrypted {name}"));
                continue;
            }
            missing.push((name, lname, parsed));
        }
        missing.sort_by(|a, b| a.0.cmp(b.0));
        let mut spurious: Vec<String> = local
            .into_iter()
            .filter(|name| {
                prefixes.parse(name).is_some_and(|p| {
                    !p.partial && matches!(p.kind, Kind::Manifest | Kind::Signature)
                }) && !wanted.contains(name)
            })
            .collect();
        spurious.sort();
        if missing.is_empty() && spurious.is_empty() {
            note("Local and Remote metadata are synchronized, no sync needed.");
        } else {
            note("Synchronizing remote metadata to local cache...");
        }
        for name in spurious {
            note(&format!(
                "Deleting local {} (not authoritative at backend).",
                self.path(&name).display()
            ));
            crate::failpoint::hit("cache-delete");
            let path = self.path(&name);
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
        for (name, lname, parsed) in missing {
            note(&format!("Copying {name} to local cache."));
            let tmp = tempfile::Builder::new()
                .prefix("ferrodup-sync-")
                .tempfile_in(tempdir)
                .map_err(|e| Error::io(tempdir, e))?;
            backend.get(name, tmp.path())?;
            let dest = self.path(&lname);
            let part = self.path(&format!("{lname}.sync-tmp"));
            if parsed.kind == Kind::Signature && parsed.compressed {
                std::fs::copy(tmp.path(), &part).map_err(|e| Error::io(&part, e))?;
            } else {
                let wrap = if parsed.kind == Kind::Signature {
                    Wrapping::Gzip
                } else {
                    Wrapping::Plain
                };
                let copied = codec::open_stored(tmp.path(), name, crypto)
                    .and_then(|mut r| codec::store(&mut r, &part, wrap, None));
                match copied {
                    Ok(_) => {}
                    // Without the passphrase, encrypted metadata stays uncached; commands
                    // that only need file names still work, the others say what is missing.
                    Err(e) if parsed.encrypted && crypto.is_some_and(|c| !c.can_decrypt()) => {
                        let _ = std::fs::remove_file(&part);
                        crate::log::warn(&format!("not caching {name}: {e}"));
                        continue;
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&part);
                        return Err(e);
                    }
                }
            }
            crate::failpoint::hit("cache-copy");
            std::fs::rename(&part, &dest).map_err(|e| Error::io(&dest, e))?;
        }
        Ok(())
    }
}
