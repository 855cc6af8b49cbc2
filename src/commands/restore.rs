//! Restore and verify: read exactly the volumes that hold the wanted paths, apply the
//! chain per path (the newest snapshot, then each later delta) and hand every final object
//! to a sink that writes or compares it.
//!
//! Each backup set of the chain is a pipeline of threads: a fetcher downloads its volumes
//! (a `file://` volume is read where it is stored) and checks their hashes, a decoder
//! decrypts and decompresses one volume at a time into a few pieces of plain tar stream
//! ahead of the reader, and the calling thread parses the tar streams, applies deltas and
//! writes the files. At most a few volumes and pieces per set are in flight.
//!
//! A volume is decoded while its fetcher checks its hash. What is restored from it waits
//! for the verdict before it is handed on (see [`AfterVerdicts`]): a file restored from a
//! volume whose hash turns out wrong is removed, never left with wrong bytes.

use crate::backend::{Backend, PlannedRead, ReadState};
use crate::codec;
use crate::collection::{BackupSet, Collection, Damage};
use crate::commands::kept::Kept;
use crate::commands::Context;
use crate::crypto::Crypto;
use crate::dest::{self, Dest, DestFile, DirFd};
use crate::error::{Code, Error, Kind, Result};
use crate::format::entry::{self, DiffType, EntryName};
use crate::format::manifest::{cmp_index, Manifest};
use crate::format::tar::{EntryType, Header, TarReader};
use crate::fsmeta::{self, OwnerPolicy};
use crate::select::{Candidate, Decision, Selection, TreeFilter};
use std::cmp::Ordering;
use std::collections::{BTreeSet, VecDeque};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;
use tempfile::TempPath;

/// Where a restored regular file's content was written.
pub enum Content {
    /// A temporary file under `--tempdir` (verify), removed when dropped.
    Temp(TempPath),
    /// A file in the restore destination (its final name, or a temporary one beside it).
    Dest(DestFile),
}

impl Content {
    /// The path shown in messages.
    fn shown(&self) -> &Path {
        match self {
            Content::Temp(t) => t,
            Content::Dest(d) => d.shown(),
        }
    }

    fn open(&self) -> io::Result<File> {
        match self {
            Content::Temp(t) => File::open(t),
            Content::Dest(d) => d.open(),
        }
    }

    /// A new file for the next version of this content, beside it.
    fn next(&self) -> Result<(File, Content)> {
        match self {
            Content::Temp(t) => {
                let dir = t.parent().unwrap_or(Path::new("."));
                let (f, p) = temp_in(dir)?;
                Ok((f, Content::Temp(p)))
            }
            Content::Dest(d) => {
                let (f, n) = d.sibling()?;
                Ok((f, Content::Dest(n)))
            }
        }
    }

    /// This content replaced by `next` (made by [`Content::next`]).
    fn replace_with(self, next: Content) -> Result<Content> {
        match (self, next) {
            (Content::Dest(d), Content::Dest(n)) => Ok(Content::Dest(d.replace_with(n)?)),
            (_, next) => Ok(next),
        }
    }
}

/// A restored object's final state; regular files carry their content.
pub struct Restored {
    pub index: Vec<u8>,
    pub header: Header,
    pub content: Option<Content>,
}

/// A new temporary file in `dir`.
fn temp_in(dir: &Path) -> Result<(File, TempPath)> {
    let t = tempfile::Builder::new()
        .prefix(".ferrodup-restore-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    Ok(t.into_parts())
}

/// Where restored objects go.
pub trait Sink {
    /// A file to write the content of `index` into.
    fn create_content(&self, index: &[u8]) -> Result<(File, Content)>;
    fn put(&mut self, obj: Restored) -> Result<()>;
    fn finish(&mut self) -> Result<()>;
}

/// A writer whose errors are local file-system errors on `path` (a full disk while
/// restoring is not bad data in a volume).
struct LocalWriter<'a> {
    file: &'a mut File,
    path: &'a Path,
}

impl Write for LocalWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self
            .file
            .write(buf)
            .map_err(|e| Error::io(self.path, e).into_io())?;
        crate::live::add_written(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file
            .flush()
            .map_err(|e| Error::io(self.path, e).into_io())
    }
}

/// Picks the chain and sets for time `t`, with a clear error when there is none. A time
/// before the first backup gets the oldest chain's full set, with a warning, as duplicity.
pub fn sets_at(ctx: &Context, col: &Collection, t: i64) -> Result<Vec<BackupSet>> {
    let chain = col.chain_at(t).ok_or_else(|| {
        Error::input(format!(
            "no backup found at {} (check the URL and the --file-prefix options)",
            ctx.backend.describe()
        ))
        .with_code(Code::Exception)
    })?;
    if t < chain.start() {
        warn_before_first(t, chain.start());
    }
    Ok(chain.sets_until(t).into_iter().cloned().collect())
}

/// The warning for a time before the first backup, which uses the oldest chain.
pub fn warn_before_first(t: i64, first: i64) {
    crate::log::warn(&format!(
        "the requested time {} is before the first backup; using the oldest backup chain, \
         from {}",
        crate::format::time::pretty(t),
        crate::format::time::pretty(first)
    ));
}

/// Reads a set's manifest, from the archive dir when it is there.
pub fn read_manifest(ctx: &Context, set: &BackupSet) -> Result<Manifest> {
    read_manifest_named(ctx, set.manifest.as_deref().expect("complete set"), false)
}

/// Reads the manifest `name` (the archive dir's copy if there is one), with its list of
/// changed files if `filelist`.
pub fn read_manifest_named(ctx: &Context, name: &str, filelist: bool) -> Result<Manifest> {
    let local = ctx.cached_copy(name);
    let (reader, shown): (Box<dyn Read + Send>, String) = match local {
        Some(p) => (
            Box::new(File::open(&p).map_err(|e| Error::io(&p, e))?),
            p.display().to_string(),
        ),
        None => {
            let tmp = ctx.temp_path("manifest")?;
            ctx.backend.get(name, &tmp)?;
            (ctx.open_stored(&tmp, name)?, name.to_string())
        }
    };
    Manifest::parse_reader(io::BufReader::new(reader), filelist).map_err(|e| {
        Error::corrupt(format!(
            "manifest {shown} is corrupt ({e}); run cleanup or restore an earlier --time"
        ))
    })
}

struct Fetched {
    number: u32,
    name: String,
    stored: Stored,
    verdict: Arc<Verdict>,
}

/// Whether a volume's stored bytes have the hash its manifest gives, decided by its
/// fetcher while the volume is already being decoded.
#[derive(Default)]
struct Verdict {
    state: Mutex<Option<Result<()>>>,
    decided: Condvar,
}

impl Verdict {
    fn decided(r: Result<()>) -> Arc<Verdict> {
        let v = Arc::new(Verdict::default());
        v.decide(r);
        v
    }

    fn decide(&self, r: Result<()>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.is_none() {
            *state = Some(r);
            self.decided.notify_all();
        }
    }

    /// The verdict, once decided.
    fn peek(&self) -> Option<Result<()>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The verdict, waiting for it.
    fn wait(&self) -> Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(r) = &*state {
                return r.clone();
            }
            state = self.decided.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Where a fetched volume's stored bytes are.
enum Stored {
    /// Downloaded into a temporary file, removed when dropped.
    Temp(TempPath),
    /// The file in a local store, read where it is.
    InPlace(PathBuf),
}

impl Stored {
    fn path(&self) -> &Path {
        match self {
            Stored::Temp(t) => t,
            Stored::InPlace(p) => p,
        }
    }
}

/// Size of the pieces of plain tar stream a decoder hands to the reader.
const PIECE: usize = 256 * 1024;

/// How many pieces of each set's plain stream may wait, for `sets` sets in the chain: a
/// few MiB in all, whatever the sizes of the files and volumes.
fn piece_depth(sets: usize) -> usize {
    (64 / sets.max(1)).clamp(2, 16)
}

/// A piece of a volume's plain tar stream, from its decoder.
enum Piece {
    Data(Vec<u8>),
    /// The stream ended and its trailer (gzip CRC, OpenPGP MDC) was checked.
    End,
    /// Decryption or decompression failed.
    Failed(io::Error),
}

/// A volume being decoded on the decoder thread.
struct Opened {
    number: u32,
    name: String,
    reader: VolumeReader,
    verdict: Arc<Verdict>,
}

/// A volume's plain tar stream, read from its decoder.
struct VolumeReader {
    pieces: mpsc::Receiver<Piece>,
    /// Pieces read, sent back for the decoder to fill again.
    recycle: mpsc::Sender<Vec<u8>>,
    piece: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl Read for VolumeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.piece.len() || buf.is_empty() {
                let n = buf.len().min(self.piece.len() - self.pos);
                buf[..n].copy_from_slice(&self.piece[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.ended {
                return Ok(0);
            }
            match self.pieces.recv() {
                Ok(Piece::Data(next)) => {
                    let used = std::mem::replace(&mut self.piece, next);
                    let _ = self.recycle.send(used);
                    self.pos = 0;
                }
                Ok(Piece::End) => self.ended = true,
                Ok(Piece::Failed(e)) => return Err(e),
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "its decoding stopped early",
                    ))
                }
            }
        }
    }
}

/// Decrypts and decompresses each fetched volume in turn, `depth` pieces ahead of its
/// reader; the next volume is opened as soon as one ends, while the reader catches up.
fn spawn_decoder<'s>(
    scope: &'s thread::Scope<'s, '_>,
    fetched: mpsc::Receiver<Result<Fetched>>,
    crypto: Option<&'s Crypto>,
    depth: usize,
) -> mpsc::Receiver<Result<Opened>> {
    let (tx, rx) = mpsc::sync_channel(1);
    scope.spawn(move || {
        for f in fetched {
            let opened = f.and_then(|v| {
                let r = codec::open_stored(v.stored.path(), &v.name, crypto)?;
                Ok((v, r))
            });
            let (v, mut r) = match opened {
                Ok(o) => o,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let (piece_tx, pieces) = mpsc::sync_channel(depth);
            let (recycle, used) = mpsc::channel();
            let opened = Opened {
                number: v.number,
                name: v.name.clone(),
                verdict: v.verdict.clone(),
                reader: VolumeReader {
                    pieces,
                    recycle,
                    piece: Vec::new(),
                    pos: 0,
                    ended: false,
                },
            };
            if tx.send(Ok(opened)).is_err() {
                return;
            }
            loop {
                let mut buf: Vec<u8> = used.try_recv().unwrap_or_default();
                buf.resize(PIECE, 0);
                let piece = match read_full(&mut r, &mut buf) {
                    Ok(0) => Piece::End,
                    Ok(n) => {
                        buf.truncate(n);
                        Piece::Data(buf)
                    }
                    Err(e) => Piece::Failed(e),
                };
                let more = matches!(piece, Piece::Data(_));
                // A reader gone means the restore stopped: so does the decoding.
                if piece_tx.send(piece).is_err() {
                    return;
                }
                if !more {
                    break;
                }
            }
        }
    });
    rx
}

/// One set's volumes as a stream of logical entries (multivol chunks joined).
struct SetStream {
    rx: mpsc::Receiver<Result<Opened>>,
    tar: Option<TarReader<VolumeReader>>,
    /// The name of the volume being read.
    volume: Option<String>,
    pending: Option<(EntryName, Header)>,
    multivol: Option<(Vec<u8>, DiffType, u64)>,
    /// Volumes taken so far by every stream of the restore, and how many it reads.
    volumes_read: Arc<(AtomicU64, u64)>,
    /// The verdicts of every volume opened so far by every stream, in the order opened.
    verdicts: Verdicts,
}

/// The verdicts of the volumes opened so far, in the order opened.
type Verdicts = Arc<Mutex<Vec<Arc<Verdict>>>>;

impl SetStream {
    fn corrupt(&self, e: io::Error) -> Error {
        let name = self.volume.as_deref().unwrap_or("?");
        let e = match Error::from_io(e) {
            // It names the volume already.
            Ok(carried) => return carried,
            Err(e) => e,
        };
        Error::corrupt(format!(
            "volume {name} is corrupt or truncated ({e}); restore an earlier --time or use \
             --ignore-errors to skip what cannot be read"
        ))
    }

    fn next_member(&mut self) -> Result<Option<(EntryName, Header)>> {
        loop {
            if let Some(tar) = self.tar.as_mut() {
                match tar.next_header() {
                    Ok(Some(h)) => {
                        let Some(name) = entry::parse(&h.name) else {
                            crate::log::warn(&format!(
                                "ignoring unexpected member {:?} in {}",
                                String::from_utf8_lossy(&h.name),
                                self.volume.as_deref().unwrap_or("?")
                            ));
                            continue;
                        };
                        return Ok(Some((name, h)));
                    }
                    Ok(None) => {
                        if let Err(e) = tar.drain() {
                            return Err(self.corrupt(e));
                        }
                        self.tar = None;
                        self.volume = None;
                    }
                    Err(e) => return Err(self.corrupt(e)),
                }
            }
            match self.rx.recv() {
                Ok(Ok(v)) => {
                    crate::log::debug(&format!("reading volume {} ({})", v.number, v.name));
                    let (read, total) = &*self.volumes_read;
                    let k = read.fetch_add(1, AtomicOrdering::Relaxed) + 1;
                    crate::live::add_volume(Some(*total));
                    crate::log::log(
                        crate::log::INFO,
                        crate::log::info_code::PROGRESS,
                        Some(&format!("{k} {total}")),
                        &format!("Processed volume {k} of {total}"),
                    );
                    self.verdicts
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(v.verdict);
                    self.tar = Some(TarReader::new(v.reader));
                    self.volume = Some(v.name);
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(None),
            }
        }
    }

    /// The next logical entry; the previous one's unread data is skipped.
    fn next_entry(&mut self) -> Result<Option<(EntryName, Header)>> {
        self.skip_payload()?;
        loop {
            let m = match self.pending.take() {
                Some(m) => Some(m),
                None => self.next_member()?,
            };
            let Some((name, h)) = m else {
                return Ok(None);
            };
            match name.chunk {
                Some(1) => {
                    self.multivol = Some((name.index.clone(), name.difftype, 2));
                    return Ok(Some((name, h)));
                }
                Some(_) => continue,
                None => {
                    self.multivol = None;
                    return Ok(Some((name, h)));
                }
            }
        }
    }

    fn skip_payload(&mut self) -> Result<()> {
        io::copy(&mut Payload(self), &mut io::sink()).map_err(unbox)?;
        Ok(())
    }
}

fn unbox(e: io::Error) -> Error {
    Error::from_io(e).unwrap_or_else(|e| Error::corrupt(format!("bad data in a volume: {e}")))
}

/// The current logical entry's data, across multivol chunks and volumes.
struct Payload<'a>(&'a mut SetStream);

impl Read for Payload<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let s = &mut *self.0;
        if s.pending.is_some() {
            // The next entry's header was already read: this payload has ended.
            return Ok(0);
        }
        loop {
            let Some(tar) = s.tar.as_mut() else {
                return Ok(0);
            };
            let n = match tar.read(buf) {
                Ok(n) => n,
                Err(e) => return Err(s.corrupt(e).into_io()),
            };
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let Some((index, difftype, next)) = s.multivol.clone() else {
                return Ok(0);
            };
            let m = s.next_member().map_err(Error::into_io)?;
            match m {
                Some((name, h))
                    if name.chunk == Some(next)
                        && name.index == index
                        && name.difftype == difftype =>
                {
                    s.multivol = Some((index, difftype, next + 1));
                    let _ = h;
                }
                other => {
                    s.multivol = None;
                    s.pending = other;
                    return Ok(0);
                }
            }
        }
    }
}

/// What to restore.
pub struct Request {
    pub time: i64,
    /// Archive path to restrict to (root = empty).
    pub path: Vec<u8>,
    /// Selection rules (`--include`, `--exclude`, ...), if any.
    pub select: Option<PathFilter>,
}

/// Selection rules applied to the paths of a backup.
pub struct PathFilter {
    pub select: Arc<Selection>,
    /// For verify: the local directory that the backup's `path` corresponds to. Rules
    /// that look at the file system (`--exclude-if-present`, `--exclude-other-filesystems`)
    /// look there.
    pub local_root: Option<PathBuf>,
}

impl PathFilter {
    fn decide(
        &self,
        filter: &mut TreeFilter<Restored>,
        req: &Request,
        h: &Header,
        index: &[u8],
    ) -> Decision {
        let rel = if req.path.is_empty() {
            index
        } else {
            index.get(req.path.len() + 1..).unwrap_or(&[])
        };
        let local = self
            .local_root
            .as_ref()
            .filter(|_| self.select.needs_fs())
            .map(|r| {
                if rel.is_empty() {
                    r.clone()
                } else {
                    r.join(fsmeta::index_to_path(rel))
                }
            });
        let fs_dev = local
            .as_ref()
            .and_then(|p| std::fs::symlink_metadata(p).ok())
            .map(|m| std::os::unix::fs::MetadataExt::dev(&m));
        filter.decide(
            &self.select,
            &Candidate {
                index: rel,
                kind: h.kind,
                mtime: h.mtime,
                fs_path: local.as_deref(),
                fs_dev,
            },
        )
    }
}

impl Request {
    fn wants(&self, index: &[u8]) -> bool {
        self.path.is_empty()
            || index == self.path.as_slice()
            || (index.starts_with(&self.path) && index.get(self.path.len()) == Some(&b'/'))
    }
}

/// Downloads each volume of `volumes` (or finds it in place) and hands it to the decoder,
/// then checks its hash while it is decoded; with `--ignore-errors` the hash is checked
/// first, so that a bad volume is skipped whole.
fn spawn_fetcher<'s>(
    scope: &'s thread::Scope<'s, '_>,
    ctx: &'s Context,
    manifest: Manifest,
    set: BackupSet,
    volumes: Vec<u32>,
    cut: CutFiles,
    keep: Keep<'s>,
) -> mpsc::Receiver<Result<Fetched>> {
    let (tx, rx) = mpsc::sync_channel(1);
    let backend: &dyn Backend = &*ctx.backend;
    scope.spawn(move || {
        for n in volumes {
            let fetched = (|| -> Result<Option<(Fetched, Option<HashCheck>)>> {
                let name = set.volumes.get(&n).cloned().ok_or_else(|| {
                    Error::corrupt(format!(
                        "volume {n} of the backup set from {} is missing from the target; \
                         restore an earlier --time or run cleanup",
                        crate::format::time::pretty(set.times().end())
                    ))
                    .with_code(Code::Generic)
                })?;
                let stored = match (backend.local_path(&name), keep.kept) {
                    (Some(p), _) => Stored::InPlace(p),
                    (None, Some(k)) if k.find(&name).is_some() => {
                        Stored::InPlace(k.find(&name).expect("checked"))
                    }
                    (None, _) => {
                        let path = ctx.temp_path("volume")?;
                        backend.get(&name, &path)?;
                        if let Some(k) = keep.kept.filter(|_| keep.thawing.contains(&name)) {
                            k.hold(&path, &name);
                        }
                        Stored::Temp(path)
                    }
                };
                let want = match manifest.volumes.get(&n).and_then(|v| v.best_hash()) {
                    Some(("SHA1", want)) => Some(want.to_string()),
                    _ => None,
                };
                let mut fetched = Fetched {
                    number: n,
                    name,
                    stored,
                    verdict: Verdict::decided(Ok(())),
                };
                let Some(want) = want else {
                    return Ok(Some((fetched, None)));
                };
                let path = fetched.stored.path();
                // Opened now: the decoder may remove a downloaded volume before it is hashed.
                let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
                if !ctx.ignore_errors {
                    fetched.verdict = Arc::new(Verdict::default());
                    return Ok(Some((fetched, Some((f, want)))));
                }
                let verdict = hash_mismatch(&mut f, path, &fetched.name, &want)?;
                keep.decided(&fetched.name, verdict.is_none());
                match verdict {
                    None => Ok(Some((fetched, None))),
                    Some(msg) => {
                        crate::log::warn(&format!("{msg}; skipping it (--ignore-errors)"));
                        let mut gone = Damage::default();
                        gone.missing.push(n);
                        cut.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .extend(gone.cut_files(&manifest));
                        Ok(None)
                    }
                }
            })();
            match fetched {
                Ok(None) => {}
                Ok(Some((fetched, check))) => {
                    let verdict = fetched.verdict.clone();
                    let name = fetched.name.clone();
                    let path = fetched.stored.path().to_path_buf();
                    if tx.send(Ok(fetched)).is_err() {
                        return;
                    }
                    if let Some((mut f, want)) = check {
                        crate::failpoint::hit("volume-hash");
                        let checked = hash_mismatch(&mut f, &path, &name, &want);
                        keep.decided(&name, matches!(checked, Ok(None)));
                        verdict.decide(match checked {
                            Ok(None) => Ok(()),
                            Ok(Some(msg)) => Err(Error::corrupt(format!(
                                "{msg}; restore an earlier --time or use --ignore-errors"
                            ))
                            .with_code(Code::MismatchedHash)),
                            Err(e) => Err(e),
                        });
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}

/// A fetched volume's file, open, and the SHA1 its manifest gives, to check while it is
/// decoded.
type HashCheck = (File, String);

/// The message for a volume whose SHA1 is not `want`, or `None` when it is.
fn hash_mismatch(f: &mut File, path: &Path, name: &str, want: &str) -> Result<Option<String>> {
    let got = codec::sha1_open(f, path)?;
    Ok((!got.eq_ignore_ascii_case(want)).then(|| {
        format!("volume {name} is corrupt: its SHA1 is {got} but the manifest says {want}")
    }))
}

/// The volumes a restore of `req` reads, set by set: each set's manifest, the set and the
/// numbers of its volumes to read; the names of all of them; and the files that missing
/// volumes cut (with --ignore-errors).
type Needed = (
    Vec<(Manifest, BackupSet, Vec<u32>)>,
    Vec<String>,
    Vec<Vec<u8>>,
);

fn needed_volumes(ctx: &Context, sets: &[BackupSet], req: &Request) -> Result<Needed> {
    let mut plans = Vec::new();
    let mut all_names = Vec::new();
    let mut cut_files = Vec::new();
    for set in sets {
        let m = read_manifest(ctx, set)?;
        let mut vols = m.volumes_containing(&req.path);
        let damage = set.damage(&m);
        if !damage.is_empty() && damage.affects(&m, &req.path) {
            let what = format!(
                "the backup set from {} is incomplete: {}",
                crate::format::time::pretty(set.times().end()),
                damage.describe()
            );
            if !ctx.ignore_errors {
                // duplicity's fatal error for a missing volume has no code of its own.
                return Err(Error::corrupt(format!(
                    "{what}; restore an earlier --time, or use --ignore-errors to restore the rest"
                ))
                .with_code(Code::Generic));
            }
            crate::log::warn(&format!(
                "{what}; restoring the rest (--ignore-errors): what was in the missing \
                 volumes is absent or older"
            ));
            vols.retain(|n| set.volumes.contains_key(n));
            cut_files.extend(damage.cut_files(&m));
        }
        for n in &vols {
            if let Some(name) = set.volumes.get(n) {
                all_names.push(name.clone());
            }
        }
        plans.push((m, set.clone(), vols));
    }
    Ok((plans, all_names, cut_files))
}

/// The title and the noun of a restore's plan.
const RESTORE_PLAN: (&str, &str) = ("Restore plan", "volume(s)");

/// Prints what reading `names` takes: per store, the volumes and bytes, how many can be
/// read now, are thawing or must be thawed (with the store's documented wait), and the
/// retrieval cost where the store has a known price list. Printed before any thaw is
/// asked for when something must thaw, and always with --dry-run.
pub(super) fn print_plan(
    ctx: &Context,
    names: &[String],
    (title, noun): (&str, &str),
) -> Result<Vec<PlannedRead>> {
    if !ctx.dry_run && !ctx.backend.may_thaw() {
        return Ok(Vec::new());
    }
    let plan = ctx.backend.plan_reads(names)?;
    let cold = plan.iter().any(|p| p.state != ReadState::Now);
    if cold || ctx.dry_run {
        for line in plan_lines(&plan, (title, noun)) {
            crate::log::notice(&line);
        }
    }
    Ok(plan)
}

/// The lines of [`print_plan`].
fn plan_lines(plan: &[PlannedRead], (title, noun): (&str, &str)) -> Vec<String> {
    let total: u64 = plan.iter().filter_map(|p| p.size).sum();
    let mut lines = vec![format!(
        "{title}: {} {noun}, {} in all",
        plan.len(),
        crate::live::size_text(total)
    )];
    let mut stores: Vec<&str> = plan.iter().map(|p| p.store.as_str()).collect();
    stores.dedup();
    let mut seen = BTreeSet::new();
    stores.retain(|s| seen.insert(*s));
    let mut cost = 0.0;
    let mut priced = false;
    for store in stores {
        let mine: Vec<&PlannedRead> = plan.iter().filter(|p| p.store == store).collect();
        let bytes: u64 = mine.iter().filter_map(|p| p.size).sum();
        let now = mine.iter().filter(|p| p.state == ReadState::Now).count();
        let thawing: Vec<Option<Duration>> = mine
            .iter()
            .filter_map(|p| match p.state {
                ReadState::Thawing { ready_in } => Some(ready_in),
                _ => None,
            })
            .collect();
        let frozen: Vec<&PlannedRead> = mine
            .iter()
            .filter(|p| matches!(p.state, ReadState::Frozen { .. }))
            .copied()
            .collect();
        let mut parts = vec![format!("{now} readable now")];
        if !thawing.is_empty() {
            let last = thawing.iter().flatten().max();
            parts.push(match last {
                Some(d) => format!(
                    "{} thawing (all ready in about {})",
                    thawing.len(),
                    crate::live::clock(*d)
                ),
                None => format!("{} thawing (asked for by an earlier run)", thawing.len()),
            });
        }
        if let Some(ReadState::Frozen { wait, .. }) = frozen.first().map(|p| &p.state) {
            let frozen_bytes: u64 = frozen.iter().filter_map(|p| p.size).sum();
            parts.push(format!(
                "{} to thaw, {} (wait: {wait})",
                frozen.len(),
                crate::live::size_text(frozen_bytes)
            ));
            for p in &frozen {
                if let ReadState::Frozen {
                    usd_per_gb: Some(price),
                    ..
                } = p.state
                {
                    cost += price * p.size.unwrap_or(0) as f64 / 1e9;
                    priced = true;
                }
            }
        }
        lines.push(format!(
            "  {store}: {} {noun}, {}: {}",
            mine.len(),
            crate::live::size_text(bytes),
            parts.join(", ")
        ));
    }
    if priced {
        lines.push(format!(
            "  Retrieval cost estimate: ${cost:.2} (AWS us-east-1 list prices per GB \
             thawed, without request fees)"
        ));
    }
    lines
}

/// A restore or verify with --dry-run: the plan of what it would read, and nothing asked
/// for, downloaded or written.
fn dry_run(ctx: &Context, sets: &[BackupSet], req: &Request) -> Result<()> {
    let (_, names, _) = needed_volumes(ctx, sets, req)?;
    print_plan(ctx, &names, RESTORE_PLAN)?;
    crate::log::notice("Dry run: no thaw was asked for, nothing downloaded or written");
    Ok(())
}

/// Replays the chain for `req` into `sink`; returns how many objects were produced.
pub fn replay(
    ctx: &Context,
    sets: &[BackupSet],
    req: &Request,
    sink: &mut dyn Sink,
) -> Result<u64> {
    let (plans, all_names, cut_files) = needed_volumes(ctx, sets, req)?;
    let kept = if ctx.backend.may_thaw() {
        Kept::open(ctx)
    } else {
        None
    };
    let (reused, to_read): (Vec<String>, Vec<String>) = all_names
        .iter()
        .cloned()
        .partition(|n| kept.as_ref().is_some_and(|k| k.find(n).is_some()));
    if !reused.is_empty() {
        crate::log::notice(&format!(
            "{} volume(s) downloaded and checked by an earlier run are read again, without \
             a thaw",
            reused.len()
        ));
    }
    let thawing: BTreeSet<String> = print_plan(ctx, &to_read, RESTORE_PLAN)?
        .into_iter()
        .filter(|p| p.state != ReadState::Now)
        .map(|p| p.name)
        .collect();
    ctx.backend.prepare_download(&to_read)?;
    let keep = Keep {
        kept: kept.as_ref(),
        thawing: &thawing,
    };
    let cut: CutFiles = Arc::new(Mutex::new(cut_files));
    let volumes_read = Arc::new((AtomicU64::new(0), all_names.len() as u64));
    let verdicts: Verdicts = Arc::default();
    let depth = piece_depth(plans.len());
    thread::scope(|scope| {
        let mut streams: Vec<SetStream> = plans
            .into_iter()
            .map(|(m, set, vols)| SetStream {
                rx: spawn_decoder(
                    scope,
                    spawn_fetcher(scope, ctx, m, set, vols, cut.clone(), keep),
                    ctx.crypto.as_ref(),
                    depth,
                ),
                tar: None,
                volume: None,
                pending: None,
                multivol: None,
                volumes_read: volumes_read.clone(),
                verdicts: verdicts.clone(),
            })
            .collect();
        let mut guarded = SkipCut {
            inner: sink,
            cut: cut.clone(),
            tmp: &ctx.tempdir,
        };
        let mut checked = AfterVerdicts {
            inner: &mut guarded,
            verdicts: verdicts.clone(),
            verified: 0,
            waiting: VecDeque::new(),
        };
        merge(&mut streams, req, &mut checked, ctx.ignore_errors).map_err(|e| checked.abandon(e))
    })
    .inspect(|_| {
        if let Some(k) = &kept {
            k.clear();
        }
    })
}

/// Where a restore keeps the volumes it thaws (see [`Kept`]), and which those are.
#[derive(Clone, Copy)]
struct Keep<'a> {
    kept: Option<&'a Kept>,
    thawing: &'a BTreeSet<String>,
}

impl Keep<'_> {
    /// The hash of volume `name` was checked: a kept copy stays for a rerun if it was
    /// right, and goes if not.
    fn decided(&self, name: &str, good: bool) {
        if let Some(k) = self.kept {
            if good {
                k.checked(name);
            } else {
                k.forget(name);
            }
        }
    }
}

/// How many restored objects may wait for the verdicts of their volumes.
const MAX_WAITING: usize = 4096;

/// Hands restored objects on, in order, once every volume opened before each was complete
/// has been found to have the hash its manifest gives; the objects of a volume whose hash
/// is wrong are removed instead.
struct AfterVerdicts<'a> {
    inner: &'a mut dyn Sink,
    verdicts: Verdicts,
    /// How many of the verdicts, from the first, are known to be good.
    verified: usize,
    /// Objects in the order they came, each with how many verdicts it waits for.
    waiting: VecDeque<(Restored, usize)>,
}

impl AfterVerdicts<'_> {
    /// How many volumes were opened so far.
    fn opened(&self) -> usize {
        self.verdicts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The verdict of the volume opened `k`-th.
    fn verdict(&self, k: usize) -> Arc<Verdict> {
        self.verdicts.lock().unwrap_or_else(|e| e.into_inner())[k].clone()
    }

    /// Counts the good verdicts decided so far, waiting for them up to the `until`-th;
    /// fails with a volume's bad verdict.
    fn check(&mut self, until: usize) -> Result<()> {
        let opened = self.opened();
        while self.verified < opened {
            let v = self.verdict(self.verified);
            match v.peek() {
                Some(r) => r?,
                None if self.verified < until => v.wait()?,
                None => break,
            }
            self.verified += 1;
        }
        Ok(())
    }

    /// Hands on the objects whose volumes are all verified.
    fn release(&mut self) -> Result<()> {
        while self
            .waiting
            .front()
            .is_some_and(|(_, w)| *w <= self.verified)
        {
            let (obj, _) = self.waiting.pop_front().expect("checked");
            self.inner.put(obj)?;
            crate::live::add_file();
        }
        Ok(())
    }

    /// After `e` stopped the restore: hands on what is verified and removes the rest; a
    /// bad hash, the cause of most decoding errors, is the error reported.
    fn abandon(&mut self, e: Error) -> Error {
        let opened = self.opened();
        let e = match self.check(opened) {
            Err(bad) => bad,
            Ok(()) => e,
        };
        if let Err(e) = self.release() {
            crate::log::warn(&e.to_string());
        }
        let mut removed = 0;
        for (obj, _) in self.waiting.drain(..) {
            if let Some(Content::Dest(d)) = obj.content {
                let shown = d.shown().to_path_buf();
                match d.remove() {
                    Ok(()) => removed += 1,
                    Err(_) => crate::log::warn(&format!(
                        "{} was restored from a volume that was not verified and could not \
                         be removed: delete it",
                        shown.display()
                    )),
                }
            }
        }
        if removed > 0 {
            crate::log::warn(&format!(
                "{removed} file(s) restored from volumes not verified were removed"
            ));
        }
        e
    }
}

impl Sink for AfterVerdicts<'_> {
    fn create_content(&self, index: &[u8]) -> Result<(File, Content)> {
        self.inner.create_content(index)
    }

    fn put(&mut self, obj: Restored) -> Result<()> {
        let opened = self.opened();
        self.waiting.push_back((obj, opened));
        let until = if self.waiting.len() > MAX_WAITING {
            self.waiting.front().map_or(0, |(_, w)| *w)
        } else {
            0
        };
        self.check(until)?;
        self.release()
    }

    fn finish(&mut self) -> Result<()> {
        let opened = self.opened();
        self.check(opened)?;
        self.release()?;
        self.inner.finish()
    }
}

/// Files that missing or skipped volumes cut short (the fetchers add to it).
type CutFiles = Arc<Mutex<Vec<Vec<u8>>>>;

/// Passes restored objects on, except files that missing volumes cut short.
struct SkipCut<'a> {
    inner: &'a mut dyn Sink,
    cut: CutFiles,
    /// Where the data of files known to be cut short goes, to be dropped.
    tmp: &'a Path,
}

impl SkipCut<'_> {
    fn is_cut(&self, index: &[u8]) -> bool {
        let cut = self.cut.lock().unwrap_or_else(|e| e.into_inner());
        cut.iter().any(|c| c == index)
    }
}

impl Sink for SkipCut<'_> {
    fn create_content(&self, index: &[u8]) -> Result<(File, Content)> {
        if self.is_cut(index) {
            let (f, p) = temp_in(self.tmp)?;
            return Ok((f, Content::Temp(p)));
        }
        self.inner.create_content(index)
    }

    fn put(&mut self, obj: Restored) -> Result<()> {
        if obj.header.kind == EntryType::Regular && self.is_cut(&obj.index) {
            crate::log::warn(&format!(
                "{} not restored: part of its data is in a missing volume",
                String::from_utf8_lossy(&obj.index)
            ));
            // Written in place before the cut was known: nothing was there before.
            if let Some(Content::Dest(d)) = obj.content {
                d.remove()?;
            }
            return Ok(());
        }
        self.inner.put(obj)
    }

    fn finish(&mut self) -> Result<()> {
        self.inner.finish()
    }
}

fn merge(
    streams: &mut [SetStream],
    req: &Request,
    sink: &mut dyn Sink,
    ignore_errors: bool,
) -> Result<u64> {
    let mut heads: Vec<Option<(EntryName, Header)>> = Vec::new();
    for s in streams.iter_mut() {
        heads.push(s.next_entry()?);
    }
    let mut produced = 0u64;
    let mut filter: TreeFilter<Restored> = TreeFilter::default();
    let mut buf = vec![0u8; WRITE_BUF];
    loop {
        let mut min: Option<Vec<u8>> = None;
        for (n, _) in heads.iter().flatten() {
            if min
                .as_ref()
                .is_none_or(|m| cmp_index(&n.index, m) == Ordering::Less)
            {
                min = Some(n.index.clone());
            }
        }
        let Some(index) = min else {
            break;
        };
        let parts: Vec<usize> = (0..heads.len())
            .filter(|&i| heads[i].as_ref().is_some_and(|(n, _)| n.index == index))
            .collect();
        let (last, last_header) = heads[*parts.last().expect("part")].as_ref().expect("part");
        let decision = match &req.select {
            Some(f) if last.difftype != DiffType::Deleted && req.wants(&index) => {
                f.decide(&mut filter, req, last_header, &index)
            }
            _ => Decision::Emit,
        };
        if req.wants(&index) && decision != Decision::Skip {
            let base = parts
                .iter()
                .rposition(|&i| heads[i].as_ref().expect("part").0.difftype != DiffType::Diff);
            match base {
                None => crate::log::warn(&format!(
                    "{} has a delta but no earlier version in the chain; skipping it",
                    String::from_utf8_lossy(&index)
                )),
                Some(b) => {
                    match build(streams, &heads, &parts[b..], &index, sink, &mut buf) {
                        Ok(Some(obj)) if decision == Decision::Defer => {
                            filter.defer(index.clone(), obj);
                        }
                        Ok(Some(obj)) => {
                            for dir in filter.release() {
                                sink.put(dir)?;
                                produced += 1;
                            }
                            sink.put(obj)?;
                            produced += 1;
                        }
                        Ok(None) => {}
                        // With --ignore-errors a path that cannot be rebuilt (its data sat in
                        // a skipped volume) is left out, loudly.
                        Err(e) if e.kind() == Kind::Corrupt && ignore_errors => crate::log::warn(
                            &format!("{} not restored: {e}", String::from_utf8_lossy(&index)),
                        ),
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        for &i in &parts {
            heads[i] = streams[i].next_entry()?;
        }
    }
    sink.finish()?;
    Ok(produced)
}

/// The largest write of a restored file's data.
const WRITE_BUF: usize = 1024 * 1024;

fn build(
    streams: &mut [SetStream],
    heads: &[Option<(EntryName, Header)>],
    parts: &[usize],
    index: &[u8],
    sink: &dyn Sink,
    buf: &mut [u8],
) -> Result<Option<Restored>> {
    let (name, header) = heads[parts[0]].as_ref().expect("part");
    if name.difftype == DiffType::Deleted {
        if parts.len() > 1 {
            crate::log::warn(&format!(
                "{} was deleted but later has a delta; skipping it",
                String::from_utf8_lossy(index)
            ));
        }
        return Ok(None);
    }
    let header = header.clone();
    if header.kind != EntryType::Regular {
        return Ok(Some(Restored {
            index: index.to_vec(),
            header,
            content: None,
        }));
    }
    let (f, content) = sink.create_content(index)?;
    let mut content = Some(content);
    match write_versions(streams, heads, parts, index, header, f, &mut content, buf) {
        Ok(header) => Ok(Some(Restored {
            index: index.to_vec(),
            header,
            content,
        })),
        Err(e) => {
            // What was written is not the file's restored state: it is not kept.
            if let Some(Content::Dest(d)) = content {
                let shown = d.shown().to_path_buf();
                if d.remove().is_err() {
                    crate::log::warn(&format!(
                        "{} is incomplete and could not be removed: delete it",
                        shown.display()
                    ));
                }
            }
            Err(e)
        }
    }
}

/// Writes a regular file's first version into `f` (the file of `content`), then applies
/// each later delta; returns the last header.
#[allow(clippy::too_many_arguments)]
fn write_versions(
    streams: &mut [SetStream],
    heads: &[Option<(EntryName, Header)>],
    parts: &[usize],
    index: &[u8],
    mut header: Header,
    mut f: File,
    content: &mut Option<Content>,
    buf: &mut [u8],
) -> Result<Header> {
    let shown = content.as_ref().expect("content").shown().to_path_buf();
    copy_out(
        &mut Payload(&mut streams[parts[0]]),
        &mut LocalWriter {
            file: &mut f,
            path: &shown,
        },
        buf,
    )
    .map_err(unbox)?;
    drop(f);
    for &i in &parts[1..] {
        header = heads[i].as_ref().expect("part").1.clone();
        let current = content.as_ref().expect("content");
        let base = current.open().map_err(|e| Error::io(current.shown(), e))?;
        let (mut out, next) = current.next()?;
        {
            let mut patch = librsync::Patch::new(base, Payload(&mut streams[i])).map_err(|e| {
                Error::corrupt(format!(
                    "cannot apply the delta of {}: {e}",
                    String::from_utf8_lossy(index)
                ))
            })?;
            let mut w = LocalWriter {
                file: &mut out,
                path: next.shown(),
            };
            copy_out(&mut patch, &mut w, buf).map_err(|e| match unbox(e) {
                e if e.kind() == Kind::Io => e,
                e => Error::corrupt(format!(
                    "the delta of {} does not apply ({e}); the backup is corrupt",
                    String::from_utf8_lossy(index)
                )),
            })?;
        }
        let current = content.take().expect("content");
        *content = Some(current.replace_with(next)?);
    }
    Ok(header)
}

/// Copies `r` into `w` through `buf`, in writes as large as `buf` where the data allows.
fn copy_out(r: &mut dyn Read, w: &mut dyn Write, buf: &mut [u8]) -> io::Result<()> {
    loop {
        let n = read_full(r, buf)?;
        w.write_all(&buf[..n])?;
        if n < buf.len() {
            return Ok(());
        }
    }
}

/// Writes restored objects under a destination directory, confined to it (see
/// [`crate::dest`]).
pub struct WriteSink {
    pub dest: Dest,
    pub strip: Vec<u8>,
    pub owners: OwnerPolicy,
    pub rename: Vec<(Vec<u8>, Vec<u8>)>,
    /// Folders written and still open, whose metadata is set once their content is.
    pub dirs: Vec<(Vec<u8>, DirFd, PathBuf, Header)>,
}

impl WriteSink {
    /// The path of `index` below the destination, after `--rename` and
    /// `--path-to-restore`.
    fn target(&self, index: &[u8]) -> Vec<u8> {
        let mut index = index.to_vec();
        for (from, to) in &self.rename {
            if index == *from || (index.starts_with(from) && index.get(from.len()) == Some(&b'/')) {
                let mut v = to.clone();
                v.extend_from_slice(&index[from.len()..]);
                index = v;
                break;
            }
        }
        if self.strip.is_empty() {
            index
        } else {
            index.get(self.strip.len() + 1..).unwrap_or(&[]).to_vec()
        }
    }

    fn close_dirs_until(&mut self, index: Option<&[u8]>) -> Result<()> {
        while let Some((d, _, _, _)) = self.dirs.last() {
            let ancestor = match index {
                Some(i) => d.is_empty() || (i.starts_with(d) && i.get(d.len()) == Some(&b'/')),
                None => false,
            };
            if ancestor {
                break;
            }
            let (_, fd, shown, h) = self.dirs.pop().expect("checked");
            dest::set_dir_metadata(&fd, &shown, &h, self.owners)?;
        }
        Ok(())
    }
}

/// The components of a path below the destination.
fn components(rel: &[u8]) -> Vec<&[u8]> {
    rel.split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect()
}

impl Sink for WriteSink {
    fn create_content(&self, index: &[u8]) -> Result<(File, Content)> {
        let rel = self.target(index);
        let place = self.dest.place(&components(&rel))?;
        let (f, d) = DestFile::create(&place)?;
        Ok((f, Content::Dest(d)))
    }

    fn put(&mut self, obj: Restored) -> Result<()> {
        self.close_dirs_until(Some(&obj.index))?;
        let rel = self.target(&obj.index);
        let h = &obj.header;
        if !rel.is_empty() && crate::log::enabled(crate::log::INFO) {
            crate::log::log(
                crate::log::INFO,
                crate::log::info_code::PATCH_FILE_WRITING,
                Some(&format!(
                    "{} {}",
                    crate::log::escape(&rel),
                    h.kind.duplicity_name()
                )),
                &format!(
                    "Writing {} of type {}",
                    String::from_utf8_lossy(&rel),
                    h.kind.duplicity_name()
                ),
            );
        }
        let rel = components(&rel);
        match h.kind {
            EntryType::Directory => {
                let (fd, shown) = self.dest.make_dir(&rel)?;
                self.dirs.push((obj.index, fd, shown, obj.header));
                Ok(())
            }
            EntryType::Regular => {
                let place = self.dest.place(&rel)?;
                match obj.content.expect("regular files carry content") {
                    Content::Dest(d) => d.install(&self.dest, &rel, &place)?,
                    Content::Temp(_) => unreachable!("a restore writes in its destination"),
                }
                dest::set_metadata(&place, h, self.owners)
            }
            EntryType::Symlink
            | EntryType::Fifo
            | EntryType::CharDevice
            | EntryType::BlockDevice => {
                let place = self.dest.place(&rel)?;
                dest::make_node(&self.dest, &rel, &place, h)?;
                dest::set_metadata(&place, h, self.owners)
            }
            _ => {
                crate::log::warn(&format!(
                    "skipping {} of unsupported type",
                    String::from_utf8_lossy(&obj.index)
                ));
                Ok(())
            }
        }
    }

    fn finish(&mut self) -> Result<()> {
        self.close_dirs_until(None)
    }
}

/// Compares restored objects with a local tree (duplicity's `verify`), walking the local
/// tree alongside so that files missing from the backup are found too. As in duplicity,
/// differences are looked for only with `--compare-data`.
pub struct CompareSink {
    pub strip: Vec<u8>,
    pub compare_data: bool,
    pub tmp: PathBuf,
    pub local: Option<std::iter::Peekable<fsmeta::Walk>>,
    pub compared: u64,
    pub differences: u64,
}

impl CompareSink {
    pub fn new(
        root: &Path,
        strip: Vec<u8>,
        compare_data: bool,
        tmp: PathBuf,
        select: Option<Arc<Selection>>,
    ) -> Self {
        let local = fsmeta::Walk::new(root, false)
            .ok()
            .map(|w| match select {
                Some(s) => w.with_selection(s),
                None => w,
            })
            .map(Iterator::peekable);
        CompareSink {
            strip,
            compare_data,
            tmp,
            local,
            compared: 0,
            differences: 0,
        }
    }

    fn diff(&mut self, index: &[u8], what: String) {
        if !self.compare_data {
            return;
        }
        self.differences += 1;
        let shown = if index.is_empty() {
            ".".to_string()
        } else {
            String::from_utf8_lossy(index).into_owned()
        };
        crate::log::notice(&format!("Difference found: {}", what.replace("{}", &shown)));
    }

    /// The archive path of a local walk entry.
    fn archive_index(&self, rel: &[u8]) -> Vec<u8> {
        match (self.strip.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_vec(),
            (false, true) => self.strip.clone(),
            (false, false) => [&self.strip[..], b"/", rel].concat(),
        }
    }

    /// Reports local objects that sort before `index` (or all that are left) as new.
    fn local_until(&mut self, index: Option<&[u8]>) -> Option<fsmeta::SourceEntry> {
        loop {
            let rel = self.local.as_mut()?.peek()?.index.clone();
            let li = self.archive_index(&rel);
            match index.map(|i| cmp_index(&li, i)) {
                Some(Ordering::Equal) => return self.local.as_mut()?.next(),
                Some(Ordering::Greater) => return None,
                _ => {
                    self.local.as_mut()?.next();
                    self.compared += 1;
                    self.diff(&li, "New file {}".to_string());
                }
            }
        }
    }
}

fn same_content(a: &Content, b: &Path) -> io::Result<bool> {
    let mut fa = io::BufReader::new(a.open()?);
    let mut fb = io::BufReader::new(File::open(b)?);
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let k = r.read(&mut buf[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

impl Sink for CompareSink {
    fn create_content(&self, _index: &[u8]) -> Result<(File, Content)> {
        let (f, p) = temp_in(&self.tmp)?;
        Ok((f, Content::Temp(p)))
    }

    fn put(&mut self, obj: Restored) -> Result<()> {
        self.compared += 1;
        let Some(now) = self.local_until(Some(&obj.index)) else {
            self.diff(&obj.index, "File {} is missing".to_string());
            return Ok(());
        };
        if !self.compare_data {
            return Ok(());
        }
        let local = now.fs_path.clone();
        let h = &obj.header;
        let nh = now.header(Vec::new());
        if nh.kind != h.kind {
            self.diff(
                &obj.index,
                format!("File {{}} has type {:?}, expected {:?}", nh.kind, h.kind),
            );
            return Ok(());
        }
        match h.kind {
            EntryType::Symlink => {
                if nh.linkname != h.linkname {
                    self.diff(
                        &obj.index,
                        "Symlink {} points to a different target".to_string(),
                    );
                }
            }
            _ => {
                if nh.mode != h.mode || nh.uid != h.uid || nh.gid != h.gid {
                    self.diff(
                        &obj.index,
                        format!(
                            "File {{}} has permissions {:o}, expected {:o}",
                            nh.mode, h.mode
                        ),
                    );
                } else if nh.mtime != h.mtime && (nh.mtime > 0 || h.mtime > 0) {
                    self.diff(
                        &obj.index,
                        format!(
                            "File {{}} has mtime {}, expected {}",
                            crate::format::time::pretty(nh.mtime),
                            crate::format::time::pretty(h.mtime)
                        ),
                    );
                } else if let Some(content) = &obj.content {
                    if !same_content(content, &local).map_err(|e| Error::io(&local, e))? {
                        self.diff(&obj.index, "Data for file {} is different".to_string());
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.local_until(None);
        Ok(())
    }
}

/// Normalises a `--path-to-restore` value to an archive path.
pub fn normalize_path(p: &str) -> Vec<u8> {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    parts.join("/").into_bytes()
}

/// `restore`: writes the state at `--time` to `dest`.
pub fn restore(
    ctx: &Context,
    req: &Request,
    dest: &Path,
    force: bool,
    owners: OwnerPolicy,
    rename: Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<()> {
    // As duplicity: a new path or an empty directory (other than the current one) is fine;
    // anything else needs --force.
    let empty_dir = std::fs::read_dir(dest).is_ok_and(|mut d| d.next().is_none());
    let is_cwd = std::env::current_dir()
        .ok()
        .zip(std::fs::canonicalize(dest).ok())
        .is_some_and(|(cwd, d)| cwd == d);
    if dest.exists() && !force && (!empty_dir || is_cwd) {
        return Err(Error::input(format!(
            "restore destination {} already exists and is not empty (or is the current \
             directory); will not overwrite it without --force",
            dest.display()
        ))
        .with_code(Code::RestorePathExists));
    }
    let started = std::time::Instant::now();
    let live = crate::live::start(crate::live::Task::Restore);
    let remote = ctx.backend.list()?;
    ctx.sync_cache(&remote)?;
    let col = Collection::from_names(&ctx.prefixes, &remote);
    crate::commands::status::log_collection(&col);
    let sets = sets_at(ctx, &col, req.time)?;
    if ctx.dry_run {
        return dry_run(ctx, &sets, req);
    }
    let mut sink = WriteSink {
        dest: Dest::open(dest)?,
        strip: req.path.clone(),
        owners,
        rename,
        dirs: Vec::new(),
    };
    let n = replay(ctx, &sets, req, &mut sink).inspect_err(|_e| {
        if dest.exists() {
            crate::log::warn(&format!(
                "the restore stopped early: what is at {} is incomplete",
                dest.display()
            ));
        }
    })?;
    if n == 0 && req.select.is_some() {
        return Err(Error::input(
            "no file of the backup matches the selection options: nothing restored",
        ));
    }
    if n == 0 {
        return Err(Error::input(format!(
            "{} not found in archive - no files restored",
            if req.path.is_empty() {
                ".".to_string()
            } else {
                String::from_utf8_lossy(&req.path).into_owned()
            }
        ))
        .with_code(Code::RestorePathNotFound));
    }
    drop(live);
    crate::log::notice(&format!(
        "Restore complete: {n} files and folders ({} of file data) written to {} in {:.1} s",
        crate::live::size_text(crate::live::written()),
        dest.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// `verify`: compares the backup at `--time` with a local tree; returns the differences.
pub fn verify(ctx: &Context, req: &Request, local: &Path, compare_data: bool) -> Result<u64> {
    if std::fs::symlink_metadata(local).is_err() {
        return Err(Error::input(format!(
            "verify directory {} does not exist: give the directory the backup was made from",
            local.display()
        )));
    }
    let live = crate::live::start(crate::live::Task::Verify);
    let remote = ctx.backend.list()?;
    ctx.sync_cache(&remote)?;
    let col = Collection::from_names(&ctx.prefixes, &remote);
    let sets = sets_at(ctx, &col, req.time)?;
    if ctx.dry_run {
        dry_run(ctx, &sets, req)?;
        return Ok(0);
    }
    let mut sink = CompareSink::new(
        local,
        req.path.clone(),
        compare_data,
        ctx.tempdir.clone(),
        req.select.as_ref().map(|f| f.select.clone()),
    );
    replay(ctx, &sets, req, &mut sink)?;
    drop(live);
    crate::log::notice(&format!(
        "Verify complete: {} file(s) compared, {} difference(s) found.",
        sink.compared, sink.differences
    ));
    let _ = io::stdout().flush();
    Ok(sink.differences)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str, store: &str, size: u64, state: ReadState) -> PlannedRead {
        PlannedRead {
            name: name.into(),
            store: store.into(),
            size: Some(size),
            state,
        }
    }

    #[test]
    fn a_plan_counts_each_store_and_prices_what_must_thaw() {
        let frozen = |usd| ReadState::Frozen {
            wait: "within 12 hours".into(),
            usd_per_gb: usd,
        };
        let plan = [
            read("v1", "s3://b", 3_000_000_000, frozen(Some(0.02))),
            read("v2", "s3://b", 1_000_000_000, frozen(Some(0.02))),
            read("v3", "s3://b", 500_000_000, ReadState::Now),
            read(
                "v4",
                "pca://c",
                250_000_000,
                ReadState::Thawing {
                    ready_in: Some(Duration::from_secs(3725)),
                },
            ),
        ];
        assert_eq!(
            plan_lines(&plan, RESTORE_PLAN),
            [
                "Restore plan: 4 volume(s), 4.4 GB in all",
                "  s3://b: 3 volume(s), 4.2 GB: 1 readable now, 2 to thaw, 3.7 GB (wait: \
                 within 12 hours)",
                "  pca://c: 1 volume(s), 238 MB: 0 readable now, 1 thawing (all ready in \
                 about 1:02:05)",
                "  Retrieval cost estimate: $0.08 (AWS us-east-1 list prices per GB thawed, \
                 without request fees)",
            ]
        );
    }
}
