//! A restore destination that nothing in a backup can escape. Every object is created,
//! replaced and given its metadata relative to a directory handle that the restore opened
//! itself, one name at a time and without following a symbolic link, so a hostile or
//! damaged archive (a symlink member followed by members "through" it, a link to a folder
//! outside, a file where a folder should be) cannot create, remove, chmod, chown or touch
//! anything outside the destination. Symbolic links from the archive are created as links
//! and never traversed.

use crate::error::{Error, Result};
use crate::format::tar::{EntryType, Header};
use crate::fsmeta::{self, OwnerPolicy};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;
use std::cell::RefCell;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An open directory of the destination, shared by the objects that live in it.
pub type DirFd = Arc<OwnedFd>;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// The destination of a restore: the folder that holds it, opened once, and the
/// destination's own name in that folder (none when the destination is `/`).
pub struct Dest {
    base: DirFd,
    prefix: Vec<Vec<u8>>,
    shown: PathBuf,
    /// The directories opened for the last object, from the base down: consecutive
    /// objects of a restore share most of their parents.
    open: RefCell<Vec<(Vec<u8>, DirFd)>>,
}

/// Where an object goes: the directory that holds it and its name there (`None` for the
/// base itself, when the destination is `/`).
pub struct Place {
    pub dir: DirFd,
    pub name: Option<Vec<u8>>,
    pub shown: PathBuf,
}

impl Dest {
    /// Opens the destination `dest` (following links in the path the user gave: that
    /// choice is theirs), creating the folders above it when they are missing.
    pub fn open(dest: &Path) -> Result<Dest> {
        let resolved = if std::fs::symlink_metadata(dest).is_ok() {
            std::fs::canonicalize(dest).map_err(|e| Error::io(dest, e))?
        } else {
            let name = dest.file_name().ok_or_else(|| {
                Error::usage(format!(
                    "restore destination {} has no name; give a folder path",
                    dest.display()
                ))
            })?;
            let parent = dest
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            std::fs::canonicalize(parent)
                .map_err(|e| Error::io(parent, e))?
                .join(name)
        };
        let (base_path, prefix) = match (resolved.parent(), resolved.file_name()) {
            (Some(p), Some(n)) => (p.to_path_buf(), vec![n.as_bytes().to_vec()]),
            _ => (resolved.clone(), Vec::new()),
        };
        let base = rfs::open(
            &base_path,
            DIR_FLAGS.difference(OFlags::NOFOLLOW),
            Mode::empty(),
        )
        .map_err(|e| Error::io(&base_path, e.into()))?;
        Ok(Dest {
            base: Arc::new(base),
            prefix,
            shown: dest.to_path_buf(),
            open: RefCell::new(Vec::new()),
        })
    }

    /// The path shown in messages for `rel` (a path below the destination).
    fn shown(&self, rel: &[&[u8]]) -> PathBuf {
        let mut p = self.shown.clone();
        for c in rel {
            p.push(OsStr::from_bytes(c));
        }
        p
    }

    /// The place of `rel` (archive path components below the destination, already checked
    /// to hold no empty, `.` or `..` component), opening or creating the folders above it.
    pub fn place(&self, rel: &[&[u8]]) -> Result<Place> {
        let mut comps: Vec<&[u8]> = self.prefix.iter().map(Vec::as_slice).collect();
        comps.extend_from_slice(rel);
        let shown = self.shown(rel);
        let Some((name, parents)) = comps.split_last() else {
            return Ok(Place {
                dir: self.base.clone(),
                name: None,
                shown,
            });
        };
        for c in &comps {
            if c.is_empty() || *c == b"." || *c == b".." || c.contains(&0) || c.contains(&b'/') {
                return Err(Error::corrupt(format!(
                    "{} is not a plain path below the destination; the backup is damaged or \
                     hostile",
                    shown.display()
                )));
            }
        }
        let dir = self.dir(parents)?;
        Ok(Place {
            dir,
            name: Some(name.to_vec()),
            shown,
        })
    }

    /// The folder at `comps` below the base, each level opened without following links
    /// and created when missing.
    fn dir(&self, comps: &[&[u8]]) -> Result<DirFd> {
        let mut open = self.open.borrow_mut();
        let keep = open
            .iter()
            .zip(comps)
            .take_while(|((name, _), c)| name.as_slice() == **c)
            .count();
        open.truncate(keep);
        for (i, c) in comps.iter().enumerate().skip(keep) {
            let parent = open.last().map_or(&self.base, |(_, fd)| fd).clone();
            let fd = open_dir(parent.as_fd(), c).map_err(|e| {
                let shown = self.shown(comps.get(self.prefix.len()..=i).unwrap_or(&[]));
                match e {
                    Errno::LOOP | Errno::NOTDIR => Error::corrupt(format!(
                        "{} is a symbolic link or a file where the backup has a folder; \
                         nothing is written through it (the backup is damaged or hostile, or \
                         the destination holds a link: restore into an empty folder)",
                        shown.display()
                    )),
                    e => Error::io(&shown, e.into()),
                }
            })?;
            open.push((c.to_vec(), Arc::new(fd)));
        }
        Ok(open.last().map_or(&self.base, |(_, fd)| fd).clone())
    }

    /// Forgets the open folders at or below `rel`, after it was removed or replaced.
    fn forget(&self, rel: &[&[u8]]) {
        let depth = self.prefix.len() + rel.len();
        let mut open = self.open.borrow_mut();
        if open.len() >= depth {
            open.truncate(depth.saturating_sub(1));
        }
    }

    /// Makes `rel` a folder (replacing what else is there) and opens it.
    pub fn make_dir(&self, rel: &[&[u8]]) -> Result<(DirFd, PathBuf)> {
        let place = self.place(rel)?;
        let Some(name) = &place.name else {
            return Ok((place.dir, place.shown));
        };
        let io = |e: Errno| Error::io(&place.shown, e.into());
        let fd = match open_dir(place.dir.as_fd(), name) {
            Err(Errno::LOOP | Errno::NOTDIR) => {
                self.forget(rel);
                remove_at(place.dir.as_fd(), name).map_err(io)?;
                open_dir(place.dir.as_fd(), name)
            }
            r => r,
        }
        .map_err(io)?;
        Ok((Arc::new(fd), place.shown))
    }

    /// Removes whatever is at `place` (a folder with all it holds), never following links.
    pub fn clear(&self, rel: &[&[u8]], place: &Place) -> Result<()> {
        let Some(name) = &place.name else {
            return Err(Error::input(format!(
                "cannot replace {} with a file",
                place.shown.display()
            )));
        };
        self.forget(rel);
        remove_at(place.dir.as_fd(), name).map_err(|e| Error::io(&place.shown, e.into()))
    }
}

fn open_dir(parent: BorrowedFd, name: &[u8]) -> Result<OwnedFd, Errno> {
    match rfs::openat(parent, name, DIR_FLAGS, Mode::empty()) {
        Err(Errno::NOENT) => {
            match rfs::mkdirat(parent, name, Mode::from_raw_mode(0o777)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
            rfs::openat(parent, name, DIR_FLAGS, Mode::empty())
        }
        r => r,
    }
}

/// Removes `name` in `dir`: a folder with everything in it, anything else by unlinking.
fn remove_at(dir: BorrowedFd, name: &[u8]) -> Result<(), Errno> {
    let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => return Ok(()),
        r => r?,
    };
    if rfs::FileType::from_raw_mode(st.st_mode) != rfs::FileType::Directory {
        return rfs::unlinkat(dir, name, AtFlags::empty());
    }
    let sub = rfs::openat(dir, name, DIR_FLAGS, Mode::empty())?;
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(&sub)? {
        let n: Vec<u8> = entry?.file_name().to_bytes().to_vec();
        if n != b"." && n != b".." {
            names.push(n);
        }
    }
    for n in names {
        remove_at(sub.as_fd(), &n)?;
    }
    rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

/// Creates the regular file `name` in `dir`, failing if anything is there already.
fn create_new(dir: BorrowedFd, name: &[u8]) -> Result<OwnedFd, Errno> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
    rfs::openat(
        dir,
        name,
        flags | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
}

/// A regular file being written in the destination.
pub struct DestFile {
    dir: DirFd,
    name: Vec<u8>,
    shown: PathBuf,
    /// A temporary name, removed when dropped unless it was moved into place.
    temp: bool,
}

impl DestFile {
    /// Creates the file `place` when nothing is there, else a temporary file beside it
    /// that [`DestFile::install`] later moves into place.
    pub fn create(place: &Place) -> Result<(File, DestFile)> {
        let Some(name) = &place.name else {
            return Err(Error::input(format!(
                "cannot restore a file as {}",
                place.shown.display()
            )));
        };
        match create_new(place.dir.as_fd(), name) {
            Ok(fd) => Ok((
                File::from(fd),
                DestFile {
                    dir: place.dir.clone(),
                    name: name.clone(),
                    shown: place.shown.clone(),
                    temp: false,
                },
            )),
            Err(Errno::EXIST) => DestFile::temp_beside(&place.dir, &place.shown),
            Err(e) => Err(Error::io(&place.shown, e.into())),
        }
    }

    /// A new temporary file in the same folder as this one.
    pub fn sibling(&self) -> Result<(File, DestFile)> {
        DestFile::temp_beside(&self.dir, &self.shown)
    }

    fn temp_beside(dir: &DirFd, shown: &Path) -> Result<(File, DestFile)> {
        loop {
            let name = format!(".ferrodup-restore-{:016x}", rand::random::<u64>()).into_bytes();
            match create_new(dir.as_fd(), &name) {
                Ok(fd) => {
                    return Ok((
                        File::from(fd),
                        DestFile {
                            dir: dir.clone(),
                            name,
                            shown: shown.to_path_buf(),
                            temp: true,
                        },
                    ))
                }
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(Error::io(shown, e.into())),
            }
        }
    }

    pub fn shown(&self) -> &Path {
        &self.shown
    }

    /// Opens the file for reading.
    pub fn open(&self) -> std::io::Result<File> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(File::from(rfs::openat(
            self.dir.as_fd(),
            self.name.as_slice(),
            flags,
            Mode::empty(),
        )?))
    }

    /// Replaces `self` by `next` (a sibling): `next` takes `self`'s name when `self` is
    /// the final file, else `self` is dropped and `next` stays temporary.
    pub fn replace_with(self, mut next: DestFile) -> Result<DestFile> {
        if self.temp {
            return Ok(next);
        }
        rfs::renameat(
            next.dir.as_fd(),
            next.name.as_slice(),
            self.dir.as_fd(),
            self.name.as_slice(),
        )
        .map_err(|e| Error::io(&self.shown, e.into()))?;
        next.temp = false;
        next.name.clone_from(&self.name);
        Ok(next)
    }

    /// Removes the file, whatever its name.
    pub fn remove(mut self) -> Result<()> {
        self.temp = false;
        rfs::unlinkat(self.dir.as_fd(), self.name.as_slice(), AtFlags::empty())
            .map_err(|e| Error::io(&self.shown, e.into()))
    }

    /// Moves a temporary file onto `place` (removing a folder standing there).
    pub fn install(mut self, dest: &Dest, rel: &[&[u8]], place: &Place) -> Result<()> {
        if !self.temp {
            return Ok(());
        }
        let Some(name) = &place.name else {
            return Err(Error::input(format!(
                "cannot restore a file as {}",
                place.shown.display()
            )));
        };
        let is_dir = rfs::statat(
            place.dir.as_fd(),
            name.as_slice(),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .is_ok_and(|st| rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory);
        if is_dir {
            dest.clear(rel, place)?;
        }
        rfs::renameat(
            self.dir.as_fd(),
            self.name.as_slice(),
            place.dir.as_fd(),
            name.as_slice(),
        )
        .map_err(|e| Error::io(&place.shown, e.into()))?;
        self.temp = false;
        Ok(())
    }
}

impl Drop for DestFile {
    fn drop(&mut self) {
        if self.temp {
            let _ = rfs::unlinkat(self.dir.as_fd(), self.name.as_slice(), AtFlags::empty());
        }
    }
}

/// Creates a symbolic link, fifo or device node at `place`, replacing what is there.
pub fn make_node(dest: &Dest, rel: &[&[u8]], place: &Place, h: &Header) -> Result<()> {
    let Some(name) = &place.name else {
        return Err(Error::input(format!(
            "cannot restore a {:?} as {}",
            h.kind,
            place.shown.display()
        )));
    };
    dest.clear(rel, place)?;
    let dir = place.dir.as_fd();
    let made = match h.kind {
        EntryType::Symlink => rfs::symlinkat(h.linkname.as_slice(), dir, name.as_slice()),
        EntryType::Fifo => rfs::mknodat(
            dir,
            name.as_slice(),
            rfs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        ),
        EntryType::CharDevice | EntryType::BlockDevice => {
            let ft = if h.kind == EntryType::CharDevice {
                rfs::FileType::CharacterDevice
            } else {
                rfs::FileType::BlockDevice
            };
            let dev = rfs::makedev(h.devmajor, h.devminor);
            rfs::mknodat(dir, name.as_slice(), ft, Mode::from_raw_mode(0o600), dev)
        }
        _ => return Ok(()),
    };
    made.map_err(|e| Error::io(&place.shown, e.into()))
}

fn times(h: &Header) -> rfs::Timestamps {
    let t = rfs::Timespec {
        tv_sec: h.mtime,
        tv_nsec: 0,
    };
    rfs::Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn owner(h: &Header, owners: OwnerPolicy) -> Option<(rfs::Uid, rfs::Gid)> {
    fsmeta::owner_ids(h, owners).map(|(u, g)| (rfs::Uid::from_raw(u), rfs::Gid::from_raw(g)))
}

/// Sets owner (when root and asked), permissions and mtime of the object at `place`,
/// which the restore just created (so its last component is what the header says, never
/// a link to elsewhere); symlink mtimes are left alone, as duplicity does.
pub fn set_metadata(place: &Place, h: &Header, owners: OwnerPolicy) -> Result<()> {
    let Some(name) = &place.name else {
        return set_dir_metadata(&place.dir, &place.shown, h, owners);
    };
    let io = |e: Errno| Error::io(&place.shown, e.into());
    let dir = place.dir.as_fd();
    if let Some((u, g)) = owner(h, owners) {
        rfs::chownat(
            dir,
            name.as_slice(),
            Some(u),
            Some(g),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(io)?;
    }
    if h.kind == EntryType::Symlink {
        return Ok(());
    }
    let mode = Mode::from_raw_mode((h.mode & 0o7777) as rfs::RawMode);
    rfs::chmodat(dir, name.as_slice(), mode, AtFlags::empty()).map_err(io)?;
    rfs::utimensat(dir, name.as_slice(), &times(h), AtFlags::SYMLINK_NOFOLLOW).map_err(io)
}

/// The same for an open folder.
pub fn set_dir_metadata(fd: &DirFd, shown: &Path, h: &Header, owners: OwnerPolicy) -> Result<()> {
    let io = |e: Errno| Error::io(shown, e.into());
    if let Some((u, g)) = owner(h, owners) {
        rfs::fchown(fd.as_fd(), Some(u), Some(g)).map_err(io)?;
    }
    let mode = Mode::from_raw_mode((h.mode & 0o7777) as rfs::RawMode);
    rfs::fchmod(fd.as_fd(), mode).map_err(io)?;
    rfs::futimens(fd.as_fd(), &times(h)).map_err(io)
}
