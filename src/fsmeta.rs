//! The local file system side: walking a source tree in duplicity's order, turning what
//! `lstat` says into tar headers, and setting metadata back on restore.

use crate::error::{Error, Result};
use crate::format::tar::{EntryType, Header};
use crate::select::{Candidate, Decision, Selection, TreeFilter};
use std::collections::{HashMap, VecDeque};
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One object of the source tree.
#[derive(Clone, Debug)]
pub struct SourceEntry {
    /// Archive path (`a/b/c`, root = empty).
    pub index: Vec<u8>,
    pub fs_path: PathBuf,
    pub kind: EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    /// The nanoseconds of the mtime.
    pub mtime_nsec: u32,
    /// The inode change time, which no one can set: seconds and nanoseconds.
    pub ctime: (i64, u32),
    /// The data size: `st_size` of a regular file, 0 for other objects.
    pub size: u64,
    /// `st_size` whatever the object (a directory's block size, a symlink's target
    /// length): what duplicity's statistics count.
    pub stat_size: u64,
    pub linkname: Vec<u8>,
    pub dev: (u32, u32),
    /// The file system it is on (`st_dev`).
    pub fs_dev: u64,
}

/// What `lstat` (or `fstatat`) says of an object.
struct Stat {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: i64,
    mtime_nsec: u32,
    ctime: (i64, u32),
    size: u64,
    rdev: u64,
    dev: u64,
}

impl Stat {
    fn of(md: &std::fs::Metadata) -> Stat {
        Stat {
            mode: md.mode(),
            uid: md.uid() as u64,
            gid: md.gid() as u64,
            mtime: md.mtime(),
            mtime_nsec: md.mtime_nsec() as u32,
            ctime: (md.ctime(), md.ctime_nsec() as u32),
            size: md.size(),
            rdev: md.rdev(),
            dev: md.dev(),
        }
    }

    /// `fstatat` of `name` in the open directory `dir`: no path lookup from the root for
    /// every object of a walk.
    fn at(dir: &File, name: &OsStr, follow: bool) -> std::io::Result<Stat> {
        let c = CString::new(name.as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
        // SAFETY: `dir` is an open directory, `c` a NUL-terminated name, and `st` is only
        // read after fstatat reported that it filled it.
        let st = unsafe {
            if libc::fstatat(dir.as_raw_fd(), c.as_ptr(), st.as_mut_ptr(), flags) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            st.assume_init()
        };
        Ok(Stat {
            mode: st.st_mode,
            uid: st.st_uid as u64,
            gid: st.st_gid as u64,
            mtime: st.st_mtime,
            mtime_nsec: st.st_mtime_nsec as u32,
            ctime: (st.st_ctime, st.st_ctime_nsec as u32),
            size: st.st_size as u64,
            rdev: st.st_rdev,
            dev: st.st_dev,
        })
    }
}

impl SourceEntry {
    /// Reads an object's metadata with `lstat` (or `stat` when following links).
    pub fn from_path(fs_path: &Path, index: Vec<u8>, follow_links: bool) -> Result<Option<Self>> {
        let md = if follow_links {
            std::fs::metadata(fs_path).or_else(|_| std::fs::symlink_metadata(fs_path))
        } else {
            std::fs::symlink_metadata(fs_path)
        }
        .map_err(|e| Error::io(fs_path, e))?;
        Self::from_stat(Stat::of(&md), fs_path, index)
    }

    /// Like [`SourceEntry::from_path`] for `name` inside the open directory `dir`.
    fn from_dir(
        dir: &File,
        name: &OsStr,
        fs_path: &Path,
        index: Vec<u8>,
        follow_links: bool,
    ) -> Result<Option<Self>> {
        let st = if follow_links {
            Stat::at(dir, name, true).or_else(|_| Stat::at(dir, name, false))
        } else {
            Stat::at(dir, name, false)
        }
        .map_err(|e| Error::io(fs_path, e))?;
        Self::from_stat(st, fs_path, index)
    }

    fn from_stat(st: Stat, fs_path: &Path, index: Vec<u8>) -> Result<Option<Self>> {
        let kind = match st.mode & libc::S_IFMT {
            libc::S_IFREG => EntryType::Regular,
            libc::S_IFDIR => EntryType::Directory,
            libc::S_IFLNK => EntryType::Symlink,
            libc::S_IFIFO => EntryType::Fifo,
            libc::S_IFCHR => EntryType::CharDevice,
            libc::S_IFBLK => EntryType::BlockDevice,
            _ => {
                // As duplicity: an info message, with its `skipping_socket` record.
                crate::log::log(
                    crate::log::INFO,
                    crate::log::info_code::SKIPPING_SOCKET,
                    Some(&crate::log::escape(fs_path.as_os_str().as_bytes())),
                    &format!("Skipping socket {}", fs_path.display()),
                );
                return Ok(None);
            }
        };
        let linkname = if kind == EntryType::Symlink {
            std::fs::read_link(fs_path)
                .map_err(|e| Error::io(fs_path, e))?
                .as_os_str()
                .as_bytes()
                .to_vec()
        } else {
            Vec::new()
        };
        Ok(Some(SourceEntry {
            index,
            fs_path: fs_path.to_path_buf(),
            kind,
            mode: st.mode & 0o7777,
            uid: st.uid,
            gid: st.gid,
            mtime: st.mtime.max(0),
            mtime_nsec: st.mtime_nsec,
            ctime: st.ctime,
            size: if kind == EntryType::Regular {
                st.size
            } else {
                0
            },
            stat_size: st.size,
            linkname,
            dev: (libc::major(st.rdev), libc::minor(st.rdev)),
            fs_dev: st.dev,
        }))
    }

    /// The tar header duplicity writes for this object (size 0; callers set it).
    pub fn header(&self, name: Vec<u8>) -> Header {
        Header {
            name,
            kind: self.kind,
            mode: if self.kind == EntryType::Symlink {
                0o777
            } else {
                self.mode
            },
            uid: self.uid,
            gid: self.gid,
            size: 0,
            mtime: self.mtime,
            linkname: self.linkname.clone(),
            uname: user_name(self.uid),
            gname: group_name(self.gid),
            devmajor: self.dev.0,
            devminor: self.dev.1,
        }
    }
}

/// duplicity's "unchanged" test between a previous state (from signatures) and now: same
/// type, and the same mode, owner and integer mtime (or both mtimes <= 0) for files,
/// directories and fifos; the same target for symlinks; same mode and numbers for devices.
pub fn unchanged(prev: &Header, now: &Header) -> bool {
    if prev.kind != now.kind {
        return false;
    }
    let perms =
        prev.mode & 0o7777 == now.mode & 0o7777 && prev.uid == now.uid && prev.gid == now.gid;
    match now.kind {
        EntryType::Regular | EntryType::Directory | EntryType::Fifo => {
            perms && (prev.mtime == now.mtime || (prev.mtime <= 0 && now.mtime <= 0))
        }
        EntryType::Symlink => prev.linkname == now.linkname,
        EntryType::CharDevice | EntryType::BlockDevice => {
            perms && prev.devmajor == now.devmajor && prev.devminor == now.devminor
        }
        _ => false,
    }
}

/// What ferrodup records of a regular file beyond duplicity's tar header, as PAX vendor
/// records of its signature entry (duplicity ignores them): the size and the nanosecond
/// mtime and ctime, so that a file rewritten within the same second with the same size is
/// still seen as changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FineStat {
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
    pub size: u64,
    /// Its times were too coarse to rely on (whole seconds, changed in the second it was
    /// read): the next backup reads it again.
    pub recheck: bool,
}

const REC_MTIME: &str = "FERRODUP.mtime";
const REC_CTIME: &str = "FERRODUP.ctime";
const REC_SIZE: &str = "FERRODUP.size";
const REC_RECHECK: &str = "FERRODUP.recheck";

impl FineStat {
    /// The state of `e`, read at wall-clock second `now`.
    pub fn of(e: &SourceEntry, now: i64) -> FineStat {
        FineStat {
            mtime: (e.mtime, e.mtime_nsec),
            ctime: e.ctime,
            size: e.size,
            recheck: e.mtime_nsec == 0 && e.ctime.1 == 0 && e.ctime.0 >= now - 1,
        }
    }

    /// The PAX records that carry it.
    pub fn records(&self) -> Vec<(&'static str, Vec<u8>)> {
        let time = |(s, ns): (i64, u32)| format!("{s}.{ns:09}").into_bytes();
        let mut v = vec![
            (REC_MTIME, time(self.mtime)),
            (REC_CTIME, time(self.ctime)),
            (REC_SIZE, self.size.to_string().into_bytes()),
        ];
        if self.recheck {
            v.push((REC_RECHECK, b"1".to_vec()));
        }
        v
    }

    /// Reads it back from a header's PAX records; `None` unless all of it is there.
    pub fn from_records(records: &[(Vec<u8>, Vec<u8>)]) -> Option<FineStat> {
        let get = |key: &str| {
            records
                .iter()
                .find(|(k, _)| k == key.as_bytes())
                .and_then(|(_, v)| std::str::from_utf8(v).ok())
        };
        let time = |key: &str| -> Option<(i64, u32)> {
            let (s, ns) = get(key)?.split_once('.')?;
            if ns.len() != 9 {
                return None;
            }
            Some((s.parse().ok()?, ns.parse().ok()?))
        };
        Some(FineStat {
            mtime: time(REC_MTIME)?,
            ctime: time(REC_CTIME)?,
            size: get(REC_SIZE)?.parse().ok()?,
            recheck: get(REC_RECHECK).is_some(),
        })
    }
}

/// Whether a file is unchanged since the state the signatures recorded for it
/// (`prev`, `fine`, `signature`): duplicity's rule ([`unchanged`]) and, for a regular file,
/// the same size, mtime and ctime to the nanosecond when ferrodup recorded them; when it
/// did not (duplicity wrote that entry), a size that fits the signature's block count.
pub fn unchanged_file(
    prev: &Header,
    fine: Option<&FineStat>,
    signature: Option<&[u8]>,
    now: &SourceEntry,
    now_header: &Header,
) -> bool {
    if !unchanged(prev, now_header) {
        return false;
    }
    if now.kind != EntryType::Regular {
        return true;
    }
    match fine {
        Some(f) => {
            !f.recheck
                && f.size == now.size
                && f.mtime == (now.mtime, now.mtime_nsec)
                && f.ctime == now.ctime
        }
        None => signature.is_none_or(|s| signature_fits(s, now.size)),
    }
}

/// False when a librsync signature cannot be of a file of `size` bytes (it has another
/// number of blocks); true when it can, or when the signature is not understood.
fn signature_fits(sig: &[u8], size: u64) -> bool {
    let word = |i: usize| {
        sig.get(i..i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64)
    };
    let (Some(block), Some(strong)) = (word(4), word(8)) else {
        return true;
    };
    let per = 4 + strong;
    let body = sig.len() as u64 - 12;
    if block == 0 || body % per != 0 {
        return true;
    }
    body / per == size.div_ceil(block)
}

fn join_index(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        name.to_vec()
    } else {
        let mut v = Vec::with_capacity(parent.len() + 1 + name.len());
        v.extend_from_slice(parent);
        v.push(b'/');
        v.extend_from_slice(name);
        v
    }
}

/// Walks a tree depth first, children sorted bytewise by name (duplicity's index order),
/// root first. Unreadable directories and objects are reported and skipped, as duplicity
/// does. With a [`Selection`], excluded directories are not entered and scanned ones are
/// returned only once something inside them is. Memory: one sorted name list per directory
/// level.
pub struct Walk {
    follow_links: bool,
    root: Option<SourceEntry>,
    stack: Vec<Frame>,
    select: Option<Arc<Selection>>,
    filter: TreeFilter<SourceEntry>,
    ready: VecDeque<SourceEntry>,
    errors: u64,
    /// Objects that exist but could not be read (and directories that could not be
    /// listed), in walk order.
    failed: Vec<Vec<u8>>,
}

struct Frame {
    dir: PathBuf,
    /// The directory, open, for `fstatat` (path lookups otherwise).
    fd: Option<File>,
    index: Vec<u8>,
    names: std::vec::IntoIter<std::ffi::OsString>,
}

impl Walk {
    /// Starts a walk of `root`, a directory or a regular file (then the only entry).
    pub fn new(root: &Path, follow_links: bool) -> Result<Self> {
        let top = SourceEntry::from_path(root, Vec::new(), true)?
            .filter(|e| matches!(e.kind, EntryType::Directory | EntryType::Regular))
            .ok_or_else(|| {
                Error::input(format!(
                    "source {} is not a directory nor a regular file: give the directory or \
                     file to back up",
                    root.display()
                ))
            })?;
        Ok(Walk {
            follow_links,
            root: Some(top),
            stack: Vec::new(),
            select: None,
            filter: TreeFilter::default(),
            ready: VecDeque::new(),
            errors: 0,
            failed: Vec::new(),
        })
    }

    /// How many objects could not be read or listed so far (each was warned about).
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// True if `index` is, or is inside, an object that exists but could not be read: what
    /// a backup recorded of it is still the best there is.
    pub fn failed_covers(&self, index: &[u8]) -> bool {
        self.failed.iter().any(|f| {
            f.is_empty()
                || index == f.as_slice()
                || (index.starts_with(f) && index.get(f.len()) == Some(&b'/'))
        })
    }

    /// Restricts the walk to what `select` selects (no effect if it has no rules).
    pub fn with_selection(mut self, select: Arc<Selection>) -> Self {
        if !select.is_empty() {
            self.select = Some(select);
        }
        self
    }

    fn frame(&mut self, dir: &Path, index: Vec<u8>) -> Option<Frame> {
        let fd = File::open(dir).ok();
        if let Some(names) = self.select.as_ref().and_then(|s| s.listed(&index)) {
            return Some(Frame {
                dir: dir.to_path_buf(),
                fd,
                index,
                names: names.into_iter(),
            });
        }
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) => {
                crate::log::warn_path(
                    crate::log::warning_code::CANNOT_READ,
                    dir.as_os_str().as_bytes(),
                    &format!("cannot read directory {}: {e}; skipping it", dir.display()),
                );
                self.errors += 1;
                self.failed.push(index);
                return None;
            }
        };
        let mut names: Vec<std::ffi::OsString> = Vec::new();
        for ent in rd {
            match ent {
                Ok(ent) => names.push(ent.file_name()),
                Err(e) => {
                    crate::log::warn(&format!("error listing {}: {e}", dir.display()));
                    self.errors += 1;
                }
            }
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Some(Frame {
            dir: dir.to_path_buf(),
            fd,
            index,
            names: names.into_iter(),
        })
    }

    fn enter(&mut self, e: &SourceEntry) {
        if e.kind == EntryType::Directory {
            let frame = self.frame(&e.fs_path, e.index.clone());
            self.stack.extend(frame);
        }
    }
}

impl Iterator for Walk {
    type Item = SourceEntry;

    fn next(&mut self) -> Option<SourceEntry> {
        if let Some(e) = self.ready.pop_front() {
            return Some(e);
        }
        if let Some(top) = self.root.take() {
            self.enter(&top);
            return Some(top);
        }
        loop {
            let frame = self.stack.last_mut()?;
            let Some(name) = frame.names.next() else {
                self.stack.pop();
                continue;
            };
            let path = frame.dir.join(&name);
            let index = join_index(&frame.index, name.as_bytes());
            let found = match &frame.fd {
                Some(fd) => {
                    SourceEntry::from_dir(fd, &name, &path, index.clone(), self.follow_links)
                }
                None => SourceEntry::from_path(&path, index.clone(), self.follow_links),
            };
            let e = match found {
                Ok(Some(e)) => e,
                Ok(None) => continue,
                Err(e) => {
                    self.errors += 1;
                    if std::fs::symlink_metadata(&path)
                        .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
                    {
                        crate::log::warn_path(
                            crate::log::warning_code::CANNOT_STAT,
                            path.as_os_str().as_bytes(),
                            &format!("{} vanished while being read", path.display()),
                        );
                    } else {
                        crate::log::warn_path(
                            crate::log::warning_code::CANNOT_STAT,
                            path.as_os_str().as_bytes(),
                            &format!("{e}; skipping it"),
                        );
                        self.failed.push(index);
                    }
                    continue;
                }
            };
            let Some(select) = &self.select else {
                self.enter(&e);
                return Some(e);
            };
            let decision = self.filter.decide(
                select,
                &Candidate {
                    index: &e.index,
                    kind: e.kind,
                    mtime: e.mtime,
                    fs_path: Some(&e.fs_path),
                    fs_dev: Some(e.fs_dev),
                },
            );
            match decision {
                Decision::Skip => {}
                Decision::Defer => {
                    self.enter(&e);
                    self.filter.defer(e.index.clone(), e);
                }
                Decision::Emit => {
                    self.enter(&e);
                    let mut out: VecDeque<SourceEntry> = self.filter.release().collect();
                    out.push_back(e);
                    let first = out.pop_front();
                    self.ready = out;
                    return first;
                }
            }
        }
    }
}

/// Names of uids (`false`) and gids (`true`), looked up once each.
type NameCache = HashMap<(bool, u64), Vec<u8>>;

static USERS: Mutex<Option<NameCache>> = Mutex::new(None);

fn lookup_name(group: bool, id: u64) -> Vec<u8> {
    let mut cache = USERS.lock().unwrap_or_else(|e| e.into_inner());
    let map = cache.get_or_insert_with(HashMap::new);
    if let Some(n) = map.get(&(group, id)) {
        return n.clone();
    }
    let name = system_name(group, id).unwrap_or_default();
    map.insert((group, id), name.clone());
    name
}

fn system_name(group: bool, id: u64) -> Option<Vec<u8>> {
    let mut buf = vec![0 as libc::c_char; 16384];
    // SAFETY: the *_r functions write only into the structs and buffer we own, and the name
    // pointer they return points into that buffer, which outlives its use here.
    unsafe {
        if group {
            let mut grp: libc::group = std::mem::zeroed();
            let mut res: *mut libc::group = std::ptr::null_mut();
            let rc = libc::getgrgid_r(
                id as libc::gid_t,
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut res,
            );
            if rc != 0 || res.is_null() {
                return None;
            }
            Some(std::ffi::CStr::from_ptr(grp.gr_name).to_bytes().to_vec())
        } else {
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut res: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwuid_r(
                id as libc::uid_t,
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut res,
            );
            if rc != 0 || res.is_null() {
                return None;
            }
            Some(std::ffi::CStr::from_ptr(pwd.pw_name).to_bytes().to_vec())
        }
    }
}

/// The user name of a uid on this host, empty if unknown.
pub fn user_name(uid: u64) -> Vec<u8> {
    lookup_name(false, uid)
}

/// The group name of a gid on this host, empty if unknown.
pub fn group_name(gid: u64) -> Vec<u8> {
    lookup_name(true, gid)
}

/// Ids of user (`false`) and group (`true`) names, looked up once each.
type IdCache = HashMap<(bool, Vec<u8>), Option<u64>>;

static IDS: Mutex<Option<IdCache>> = Mutex::new(None);

fn id_by_name(group: bool, name: &[u8]) -> Option<u64> {
    if name.is_empty() {
        return None;
    }
    let mut cache = IDS.lock().unwrap_or_else(|e| e.into_inner());
    let map = cache.get_or_insert_with(HashMap::new);
    *map.entry((group, name.to_vec()))
        .or_insert_with(|| system_id(group, name))
}

fn system_id(group: bool, name: &[u8]) -> Option<u64> {
    let c = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16384];
    // SAFETY: as in `system_name`.
    unsafe {
        if group {
            let mut grp: libc::group = std::mem::zeroed();
            let mut res: *mut libc::group = std::ptr::null_mut();
            let rc = libc::getgrnam_r(c.as_ptr(), &mut grp, buf.as_mut_ptr(), buf.len(), &mut res);
            (rc == 0 && !res.is_null()).then_some(grp.gr_gid as u64)
        } else {
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut res: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwnam_r(c.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut res);
            (rc == 0 && !res.is_null()).then_some(pwd.pw_uid as u64)
        }
    }
}

/// How restored objects get their owners.
#[derive(Clone, Copy, Debug)]
pub struct OwnerPolicy {
    pub restore_ownership: bool,
    pub numeric_owner: bool,
}

/// The owner and group a restored object gets: `None` unless ownership is restored (as
/// root, when asked); names are preferred to numbers unless `--numeric-owner`.
pub fn owner_ids(h: &Header, owners: OwnerPolicy) -> Option<(u32, u32)> {
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    // SAFETY: geteuid has no preconditions.
    let root = *ROOT.get_or_init(|| unsafe { libc::geteuid() } == 0);
    if !(owners.restore_ownership && root) {
        return None;
    }
    let uid = (!owners.numeric_owner)
        .then(|| id_by_name(false, &h.uname))
        .flatten()
        .unwrap_or(h.uid);
    let gid = (!owners.numeric_owner)
        .then(|| id_by_name(true, &h.gname))
        .flatten()
        .unwrap_or(h.gid);
    Some((uid as u32, gid as u32))
}

/// The archive path as a relative file-system path.
pub fn index_to_path(index: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(index))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64, mtime: (i64, u32), ctime: (i64, u32)) -> SourceEntry {
        SourceEntry {
            index: b"f".to_vec(),
            fs_path: PathBuf::from("f"),
            kind: EntryType::Regular,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: mtime.0,
            mtime_nsec: mtime.1,
            ctime,
            size,
            stat_size: size,
            linkname: Vec::new(),
            dev: (0, 0),
            fs_dev: 0,
        }
    }

    #[test]
    fn fine_stat_records_round_trip() {
        let e = file(5000, (1_700_000_000, 5), (1_700_000_001, 123_456_789));
        let f = FineStat::of(&e, 1_800_000_000);
        assert!(!f.recheck);
        let recs: Vec<(Vec<u8>, Vec<u8>)> = f
            .records()
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect();
        assert_eq!(FineStat::from_records(&recs), Some(f));
        assert_eq!(FineStat::from_records(&recs[1..]), None);
        // Whole-second times changed in the second the file was read: read it again.
        let coarse = file(5000, (1_700_000_000, 0), (1_700_000_000, 0));
        assert!(FineStat::of(&coarse, 1_700_000_000).recheck);
        assert!(!FineStat::of(&coarse, 1_700_000_005).recheck);
    }

    #[test]
    fn same_second_rewrites_are_changes() {
        let before = file(5000, (1_700_000_000, 0), (1_700_000_000, 100));
        let fine = FineStat::of(&before, 1_800_000_000);
        let h = before.header(Vec::new());
        let same = |now: &SourceEntry| unchanged_file(&h, Some(&fine), None, now, &h);
        assert!(same(&before));
        // Same second and size, mtime put back: only the ctime tells.
        assert!(!same(&file(5000, (1_700_000_000, 0), (1_700_000_000, 900))));
        assert!(!same(&file(5000, (1_700_000_000, 7), (1_700_000_000, 100))));
        assert!(!same(&file(5001, (1_700_000_000, 0), (1_700_000_000, 100))));
    }

    #[test]
    fn without_records_the_signature_bounds_the_size() {
        // A signature of 3 blocks of 512 bytes (MD4, 8-byte strong sums).
        let mut sig = vec![0x72, 0x73, 0x01, 0x36, 0, 0, 2, 0, 0, 0, 0, 8];
        sig.extend(vec![0u8; 3 * 12]);
        let e = file(1500, (1_700_000_000, 0), (1_700_000_000, 0));
        let h = e.header(Vec::new());
        assert!(unchanged_file(&h, None, Some(&sig), &e, &h));
        let bigger = file(1600, (1_700_000_000, 0), (1_700_000_000, 0));
        assert!(!unchanged_file(&h, None, Some(&sig), &bigger, &h));
        assert!(signature_fits(&sig, 1025) && !signature_fits(&sig, 1024));
        assert!(signature_fits(b"short", 7));
    }
}
