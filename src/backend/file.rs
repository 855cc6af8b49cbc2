//! `file://` targets: a local directory. Uploads go through a temporary name and a rename,
//! so a crash never leaves a half-written file under a real name.

use super::Backend;
use crate::error::{Code, Error, Result};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A directory on a local (or mounted) file system.
pub struct FileBackend {
    dir: PathBuf,
}

impl FileBackend {
    /// `rest` is what follows `file://`: `/abs/path` or a path relative to the current directory.
    pub fn new(rest: &str) -> Result<Self> {
        if rest.is_empty() {
            return Err(Error::usage(
                "file:// URL has no path: use file:///path/to/backups",
            ));
        }
        Ok(FileBackend {
            dir: PathBuf::from(rest),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn ensure_dir(&self) -> Result<()> {
        fs::create_dir_all(&self.dir).map_err(|e| store_error(&self.dir, e))
    }

    /// Stores `src` as `name` through a temporary name, flushed to disk before the
    /// rename. A temporary `src` (`take`) on the same file system with no other name
    /// becomes the stored file without a copy.
    fn store(&self, src: &Path, name: &str, take: bool) -> Result<()> {
        self.ensure_dir()?;
        let tmp = self.path(&format!(".ferrodup-tmp-{name}"));
        let result = (|| -> std::io::Result<()> {
            let _ = fs::remove_file(&tmp);
            let out = if take && linkable(src) && fs::hard_link(src, &tmp).is_ok() {
                fs::File::open(&tmp)?
            } else {
                let mut input = fs::File::open(src)?;
                let mut out = fs::File::create(&tmp)?;
                std::io::copy(&mut input, &mut out)?;
                out.flush()?;
                out
            };
            out.sync_all()?;
            fs::rename(&tmp, self.path(name))?;
            Ok(())
        })();
        result.map_err(|e| {
            let _ = fs::remove_file(&tmp);
            store_error(&self.path(name), e)
        })
    }
}

/// A failure on the target folder, with the status duplicity gives a local store's errors
/// (permission denied, not found, no space, or any other backend error).
/// True for a regular file with one name.
fn linkable(src: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(src).is_ok_and(|m| m.is_file() && m.nlink() == 1)
}

fn store_error(path: &Path, e: std::io::Error) -> Error {
    let code = match e.raw_os_error() {
        Some(libc::EACCES) => Code::BackendPermissionDenied,
        Some(libc::ENOENT) => Code::BackendNotFound,
        Some(libc::ENOSPC) => Code::BackendNoSpace,
        _ => Code::BackendError,
    };
    Error::io(path, e).with_code(code)
}

impl Backend for FileBackend {
    fn list(&self) -> Result<Vec<String>> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(store_error(&self.dir, e)),
        };
        let mut names = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| store_error(&self.dir, e))?;
            let Ok(name) = ent.file_name().into_string() else {
                continue;
            };
            if name.starts_with(".ferrodup-tmp-") {
                continue;
            }
            // Not followed: a fifo would block a read, a directory fail it and a link to
            // a device never end it.
            let kind = ent.file_type().map_err(|e| store_error(&ent.path(), e))?;
            if !kind.is_file() {
                crate::log::warn(&format!(
                    "{}: skipping {name:?}, which is not a regular file",
                    self.describe()
                ));
                continue;
            }
            names.push(name);
        }
        names.sort();
        Ok(names)
    }

    fn get(&self, name: &str, dest: &Path) -> Result<()> {
        let src = self.path(name);
        // Opened without blocking (a fifo) and checked to be a regular file before reading.
        let input = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&src)
            .and_then(|f| {
                if f.metadata()?.is_file() {
                    Ok(f)
                } else {
                    Err(std::io::Error::other(
                        "not a regular file; move it out of the target",
                    ))
                }
            });
        let mut input = input.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::corrupt(format!(
                    "{} is missing from the target: the backup set is incomplete",
                    src.display()
                ))
                .with_code(Code::Generic)
            } else {
                store_error(&src, e)
            }
        })?;
        let mut out = fs::File::create(dest).map_err(|e| Error::io(dest, e))?;
        std::io::copy(&mut input, &mut out).map_err(|e| Error::io(&src, e))?;
        Ok(())
    }

    fn local_path(&self, name: &str) -> Option<PathBuf> {
        // Only a regular file: anything else goes through `get`, which explains it.
        let path = self.path(name);
        fs::metadata(&path)
            .is_ok_and(|m| m.is_file())
            .then_some(path)
    }

    fn put(&self, src: &Path, name: &str) -> Result<()> {
        self.store(src, name, false)
    }

    fn put_temporary(&self, src: &Path, name: &str) -> Result<()> {
        self.store(src, name, true)
    }

    fn delete(&self, name: &str) -> Result<()> {
        match fs::remove_file(self.path(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(store_error(&self.path(name), e)),
        }
    }

    fn size(&self, name: &str) -> Result<Option<u64>> {
        match fs::metadata(self.path(name)) {
            Ok(md) => Ok(Some(md.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(store_error(&self.path(name), e)),
        }
    }

    fn describe(&self) -> String {
        format!("file://{}", self.dir.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn setup() -> (tempfile::TempDir, FileBackend, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let backend = FileBackend::new(target.to_str().unwrap()).unwrap();
        let src = dir.path().join("volume");
        fs::write(&src, b"volume bytes").unwrap();
        (dir, backend, src)
    }

    fn inode(p: &Path) -> u64 {
        fs::metadata(p).unwrap().ino()
    }

    #[test]
    fn a_temporary_file_becomes_the_stored_file_and_others_are_copied() {
        let (dir, b, src) = setup();
        b.put_temporary(&src, "v1").unwrap();
        let stored = b.path("v1");
        assert_eq!(fs::read(&stored).unwrap(), b"volume bytes");
        assert_eq!(inode(&stored), inode(&src), "taken without a copy");
        fs::remove_file(&src).unwrap();
        assert_eq!(fs::read(&stored).unwrap(), b"volume bytes");
        assert_eq!(fs::metadata(&stored).unwrap().nlink(), 1);

        // A plain put copies: the stored file shares no blocks with the source.
        let cached = dir.path().join("cached");
        fs::write(&cached, b"cache").unwrap();
        b.put(&cached, "m").unwrap();
        assert_ne!(inode(&b.path("m")), inode(&cached));

        // A temporary file with a second name already (a store took it) is copied.
        let twice = dir.path().join("twice");
        fs::write(&twice, b"twice").unwrap();
        fs::hard_link(&twice, dir.path().join("other-name")).unwrap();
        b.put_temporary(&twice, "v2").unwrap();
        assert_ne!(inode(&b.path("v2")), inode(&twice));
        assert_eq!(fs::read(b.path("v2")).unwrap(), b"twice");

        // Replacing a stored file leaves no temporary name behind.
        fs::write(&src, b"new bytes").unwrap();
        b.put_temporary(&src, "v1").unwrap();
        assert_eq!(fs::read(b.path("v1")).unwrap(), b"new bytes");
        let mut names: Vec<_> = fs::read_dir(dir.path().join("target"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["m", "v1", "v2"]);
    }
}
