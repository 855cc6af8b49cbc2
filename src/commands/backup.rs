//! Full and incremental backups: walk the source in duplicity's order, compare it with the
//! previous signatures, and write difftar volumes, a signature file and a manifest.
//!
//! The work is a pipeline: this thread walks, reads and diffs, workers gzip each volume's
//! data in chunks as it is made (or a thread per volume encrypts it), and upload threads
//! send up to `--concurrency` finished volumes to the target at once while a recorder appends them, in order, to the partial manifest (see
//! [`upload`]).

use crate::backend::Backend;
use crate::codec::{self, read_full, HashCount};
use crate::collection::{Chain, Collection};
use crate::commands::pool::{Pool, Ticket};
use crate::commands::upload::{self, FinishedVolume, Slot, Slots, Uploader};
use crate::commands::Context;
use crate::crypto::{ParPgpWriter, PgpWriter};
use crate::error::{Code, Error, Result};
use crate::failpoint;
use crate::format::entry::{self, DiffType};
use crate::format::manifest::{cmp_index, Manifest, VolumeInfo};
use crate::format::naming::{Kind, SetTimes, Wrapping};
use crate::format::rsync::{self, SigMaker};
use crate::format::tar::{self, EntryType, Header};
use crate::fsmeta::{self, FineStat, SourceEntry};
use crate::log::{info_code, warning_code};
use crate::pargz::{self, ParGz, Ratio};
use crate::select::Selection;
use crate::sigstate::{SigEntry, SigOverlay};
use crate::stats::{BackupMeta, BackupStats};
use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread;

/// Payload chunk size: duplicity reads file data and deltas 64 KiB at a time.
const CHUNK: usize = 64 * 1024;

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Full,
    Incremental,
    Auto,
}

/// Options of a backup run.
pub struct BackupOptions {
    pub source: PathBuf,
    pub mode: Mode,
    pub volsize: u64,
    pub max_blocksize: u64,
    pub full_if_older_than: Option<i64>,
    pub full_if_n_inc: Option<usize>,
    pub allow_source_mismatch: bool,
    pub skip_if_no_change: bool,
    pub copy_links: bool,
    pub print_statistics: bool,
    /// List the new, changed and deleted files in the manifest (`--no-files-changed`
    /// writes an empty `Filelist 0`, as duplicity does).
    pub files_changed: bool,
    /// Testing aid (duplicity's hidden option): fail right after storing this volume.
    pub fail_on_volume: Option<u32>,
    /// Volumes uploaded at once (`--concurrency`; see [`upload::concurrency`]).
    pub concurrency: usize,
    /// What to back up of the source (`--include`, `--exclude`, ...).
    pub select: Arc<Selection>,
    /// `--progress`: a progress line this often.
    pub progress: Option<std::time::Duration>,
    /// `--jsonstat`: print the statistics as JSON and store them with the set.
    pub jsonstat: Option<JsonstatOptions>,
}

/// What a `--jsonstat` record tells besides the statistics.
pub struct JsonstatOptions {
    /// The target URL as given (a password in it is masked).
    pub target: String,
    /// The number of parallel uploads (`--concurrency`).
    pub concurrency: u64,
}

/// A place in the tar stream: an archive path and, inside a multivol file, the chunk number.
type Position = (Vec<u8>, Option<u64>);

/// How to continue a backup that an earlier run left unfinished.
struct Resume {
    set: SetTimes,
    /// Volumes already stored and kept (1..=n).
    kept: Vec<VolumeInfo>,
    /// The tar stream is regenerated and skipped up to this path and multivol block.
    skip_to: Position,
}

/// True if the target holds a backup chain that a backup would extend.
pub fn has_chain(ctx: &Context) -> Result<bool> {
    let remote = ctx.backend.list()?;
    Ok(Collection::from_names(&ctx.prefixes, &remote)
        .last_chain()
        .is_some())
}

/// An explicit `incremental` with no signature chain to extend: duplicity refuses it
/// rather than switching to a full backup.
fn no_sigs_for_incremental(ctx: &Context) -> Error {
    Error::input(format!(
        "no signatures of a previous backup at {}, so there is nothing to add an incremental \
         to: run a full backup (or `backup`, which starts one when needed)",
        ctx.backend.describe()
    ))
    .with_code(Code::IncWithoutSigs)
}

/// Runs `full`, `incremental` or `backup`; returns how many files could not be read
/// completely (each was named in a warning, and none is recorded as complete).
pub fn run(ctx: &Context, opts: &BackupOptions) -> Result<u64> {
    let md = std::fs::metadata(&opts.source).map_err(|e| {
        Error::input(format!(
            "cannot read source {}: {e}; give an existing directory or file to back up",
            opts.source.display()
        ))
    })?;
    // As duplicity, a single regular file may be the source: it is the root entry.
    if !md.is_dir() && !md.is_file() {
        return Err(Error::input(format!(
            "source {} is not a directory nor a regular file: give the directory or file to \
             back up",
            opts.source.display()
        )));
    }
    failpoint::hit("backup-start");
    let remote = ctx.backend.list()?;
    ctx.sync_cache(&remote)?;
    let col = Collection::from_names(&ctx.prefixes, &remote);
    crate::commands::status::log_collection(&col);
    let resume = plan_resume(ctx, &col, &remote, &opts.source)?;
    let local = usable_cache(ctx, &col)?;

    crate::log::notice_stdout(&match col.last_chain() {
        Some(c) => format!(
            "Last full backup date: {}",
            crate::format::time::pretty(c.start())
        ),
        None => "Last full backup date: none".to_string(),
    });
    let mut full = opts.mode == Mode::Full;
    let mut prev_chain = None;
    if !full {
        match col.last_chain() {
            None => {
                if opts.mode == Mode::Incremental {
                    return Err(no_sigs_for_incremental(ctx));
                }
                crate::log::notice_stdout("No signatures found, switching to full backup.");
                full = true;
            }
            Some(chain) => {
                let sig = local
                    .sig_chains
                    .iter()
                    .rev()
                    .find(|s| s.end() == chain.end());
                if let Some(limit) = opts.full_if_older_than {
                    if chain.start() < limit {
                        crate::log::notice_stdout(
                            "Last full backup is too old, forcing full backup",
                        );
                        full = true;
                    }
                }
                if let Some(n) = opts.full_if_n_inc {
                    if chain.incs.len() >= n {
                        crate::log::notice_stdout(
                            "Latest chain has too many incrementals, forcing full backup",
                        );
                        full = true;
                    }
                }
                if !full {
                    match sig {
                        Some(s) => prev_chain = Some((chain, s.clone())),
                        None if opts.mode == Mode::Incremental => {
                            return Err(no_sigs_for_incremental(ctx))
                        }
                        None => {
                            crate::log::notice_stdout(
                                "No signatures found, switching to full backup.",
                            );
                            full = true;
                        }
                    }
                }
            }
        }
    }

    if let Some(r) = &resume {
        prev_chain = match r.set {
            SetTimes::Full(_) => None,
            SetTimes::Inc(start, _) => col.last_chain().and_then(|c| {
                let sig = local.sig_chains.iter().rev().find(|s| s.end() == start)?;
                Some((c, sig.clone()))
            }),
        };
        full = r.set.is_full();
        if opts.mode == Mode::Full && !full {
            crate::log::notice(
                "The last incremental backup was interrupted: resuming it (as duplicity does) \
                 instead of starting a full backup; run the full backup again afterwards.",
            );
        }
        crate::log::notice(&format!(
            "Resuming the interrupted backup from {} after volume {}.",
            crate::format::time::pretty(r.set.end()),
            r.kept.len()
        ));
    }
    let set = match (&resume, &prev_chain) {
        (Some(r), _) => r.set,
        (None, None) => SetTimes::Full(ctx.now),
        (None, Some((chain, _))) => {
            let now = if ctx.now == chain.end() {
                wait_past(chain.end())
            } else {
                ctx.now
            };
            if now <= chain.end() {
                return Err(Error::input(format!(
                    "the current time {} is not after the last backup {}; check the clock \
                     (or --current-time)",
                    crate::format::time::to_string(now),
                    crate::format::time::to_string(chain.end())
                )));
            }
            let last = chain.incs.last().unwrap_or(&chain.full);
            if !opts.allow_source_mismatch {
                check_source_match(ctx, last, &opts.source)?;
            }
            check_last_manifest(ctx, last)?;
            check_chain_complete(ctx, chain)?;
            SetTimes::Inc(chain.end(), now)
        }
    };
    let overlay = match &prev_chain {
        None => SigOverlay::empty(),
        Some((_, sig)) => {
            let mut files = Vec::new();
            for name in sig.files_until(i64::MAX) {
                let local = codec::open_stored(&ctx.cache.path(name), name, None)?;
                files.push((name.to_string(), local));
            }
            SigOverlay::new(files)?
        }
    };
    crate::progress::reset();
    let _progress = match opts.progress {
        Some(rate) if !ctx.dry_run => Some(crate::progress::start(
            source_bytes(&opts.source, opts.copy_links, &opts.select)?,
            rate,
        )),
        _ => None,
    };
    // duplicity's --progress lines replace the live line.
    let live = match opts.progress {
        None => crate::live::start(crate::live::Task::Backup),
        Some(_) => None,
    };
    if live.is_some() {
        // The size of the source, for the percentage and the ETA, found beside the backup.
        let (source, copy_links, select) =
            (opts.source.clone(), opts.copy_links, opts.select.clone());
        thread::spawn(move || {
            if let Ok(total) = source_bytes(&source, copy_links, &select) {
                crate::live::set_total(total);
            }
        });
    }
    if full {
        crate::log::notice("Starting full backup.");
    } else {
        crate::log::notice(&format!(
            "Starting incremental backup (last backup: {}).",
            crate::format::time::pretty(set.start())
        ));
    }
    let meta = opts
        .jsonstat
        .as_ref()
        .map(|j| backup_meta(ctx, opts, j, set, prev_chain.as_ref().map(|(c, _)| *c)));
    write_set(ctx, opts, set, overlay, resume, meta)
}

/// The `backup_meta` of the `--jsonstat` record: the chain as duplicity sees it when it
/// writes the record, i.e. after a full backup its new chain, during an incremental the
/// chain before it.
fn backup_meta(
    ctx: &Context,
    opts: &BackupOptions,
    j: &JsonstatOptions,
    set: SetTimes,
    prev: Option<&Chain>,
) -> BackupMeta {
    let local = |s: &crate::collection::BackupSet| {
        let name = ctx.prefixes.jsonstat(s.times(), false, Wrapping::Gzip);
        (s.jsonstat.is_some() && ctx.cache.path(&name).is_file()).then_some(name)
    };
    let (time_full_bkp, no_of_inc, local_json_stat) = match prev {
        Some(c) if !set.is_full() => (c.start(), c.incs.len(), c.sets().map(local).collect()),
        _ => (set.start(), 0, vec![None]),
    };
    BackupMeta {
        action: if opts.mode == Mode::Full {
            "full"
        } else {
            "inc"
        },
        skipped_inc: false,
        time_full_bkp,
        no_of_inc,
        concurrency: j.concurrency,
        target: crate::backend::redact(&j.target),
        source: opts.source.to_string_lossy().into_owned(),
        local_json_stat,
    }
}

/// The bytes of what the backup will look at, by a walk that only reads metadata: the
/// total of `--progress`.
fn source_bytes(source: &Path, copy_links: bool, select: &Arc<Selection>) -> Result<u64> {
    // The backup's own walk reports what cannot be read.
    crate::log::muted(|| {
        let walk = fsmeta::Walk::new(source, copy_links)?.with_selection(select.clone());
        Ok(walk.map(|e| e.size).sum())
    })
}

/// A new, changed or deleted path: `A`, `M` or `D` and the path at verbosity info, with
/// duplicity's code and the escaped path in the record (deja-dup shows the file).
fn log_change(code: u32, index: &[u8]) {
    if !crate::log::enabled(crate::log::INFO) {
        return;
    }
    let letter = match code {
        info_code::DIFF_FILE_NEW => 'A',
        info_code::DIFF_FILE_CHANGED => 'M',
        _ => 'D',
    };
    crate::log::log(
        crate::log::INFO,
        code,
        Some(&crate::log::escape(index)),
        &format!("{letter} {}", crate::log::shown_path(index)),
    );
}

/// An incremental started within the second of the last backup would share its time: as
/// duplicity, it waits for the wall clock to pass that second (even after `--current-time`)
/// and takes the wall-clock time, giving up after a few seconds (the clock is then wrong).
fn wait_past(t: i64) -> i64 {
    crate::log::info("The last backup was made within this second; waiting for the next one.");
    for _ in 0..30 {
        let now = crate::wall_clock();
        if now > t {
            return now;
        }
        thread::sleep(std::time::Duration::from_millis(100));
    }
    crate::wall_clock()
}

/// As duplicity before an incremental: the last backup's manifest on the target must be
/// readable (decrypted with the passphrase given) and equal to the archive dir's copy. A
/// wrong passphrase stops here, instead of adding to the chain a set that no single
/// passphrase restores. Skipped where it cannot be done unattended (public keys without
/// their secret key, no passphrase) and on sealed archives, where a read waits for a thaw.
fn check_last_manifest(ctx: &Context, set: &crate::collection::BackupSet) -> Result<()> {
    let name = set.manifest.as_deref().expect("complete set");
    let readable = ctx.crypto.as_ref().is_none_or(|c| c.decrypts_unattended());
    if !readable || ctx.dry_run || ctx.backend.is_cold(name) {
        return Ok(());
    }
    let tmp = ctx.temp_path("manifest")?;
    ctx.backend.get(name, &tmp)?;
    let mut remote = Vec::new();
    ctx.open_stored(&tmp, name)
        .and_then(|mut r| {
            r.read_to_end(&mut remote)
                .map_err(|e| Error::from_io(e).unwrap_or_else(|e| Error::corrupt(e.to_string())))
        })
        .map_err(|e| {
            Error::input(format!(
                "cannot read {name}, the manifest of the last backup, to add an incremental \
                 to its chain ({e}): give the passphrase of that chain, or start a new chain \
                 with full"
            ))
            // duplicity fails this check with its generic status.
            .with_code(crate::error::Code::Generic)
        })?;
    let Some(local) = ctx.cached_copy(name) else {
        return Ok(());
    };
    let cached = std::fs::read(&local).map_err(|e| Error::io(&local, e))?;
    if cached != remote {
        return Err(Error::corrupt(format!(
            "{name} on the target differs from its copy {} in the archive dir: one of them \
             is damaged; check the target, or delete the archive dir's copy to trust the \
             target",
            local.display()
        )));
    }
    Ok(())
}

/// Refuses to extend a chain that cannot be restored because a set misses volumes.
fn check_chain_complete(ctx: &Context, chain: &Chain) -> Result<()> {
    for set in chain.sets() {
        let damage = set.damage(&crate::commands::restore::read_manifest(ctx, set)?);
        if !damage.is_empty() {
            return Err(Error::corrupt(format!(
                "the backup set from {} is incomplete: {}; an incremental on top of it could \
                 not be restored: run a full backup",
                crate::format::time::pretty(set.times().end()),
                damage.describe()
            )));
        }
    }
    Ok(())
}

/// The archive dir's metadata without the signature files of sets that are in no chain of
/// the target (see [`Collection::stray_signatures`]), which would make the signature chain
/// look longer than the backup chain.
fn usable_cache(ctx: &Context, col: &Collection) -> Result<Collection> {
    let names = ctx.cache.names()?;
    let stray = col.stray_signatures(&ctx.prefixes, &names);
    let names: Vec<&String> = names.iter().filter(|n| !stray.contains(n)).collect();
    Ok(Collection::from_names(&ctx.prefixes, &names))
}

/// How long an incomplete set that this archive dir did not write is left alone: another
/// run, from another archive dir, may still be writing it.
const FOREIGN_GRACE: i64 = 24 * 3600;

/// Looks at what runs left without a manifest, newer than the last complete backup: the
/// volumes of incomplete sets and signature files of sets in no chain. This archive dir's
/// lock is held, so a set with a partial file here is an interrupted run's; one without,
/// less than [`FOREIGN_GRACE`] old by its name, may be another archive dir's run at work
/// and is left alone. Of the others the newest one is resumed when its partial manifest is
/// here and at least two of its volumes were stored (the last stored volume is always
/// redone, as duplicity does); the rest are deleted, since nothing in them is restorable.
fn plan_resume(
    ctx: &Context,
    col: &Collection,
    remote: &[String],
    source: &Path,
) -> Result<Option<Resume>> {
    let cached = ctx.cache.names()?;
    let newest = col.chains.last().map_or(i64::MIN, |c| c.end());
    let mut leftovers: BTreeMap<SetTimes, Vec<String>> = BTreeMap::new();
    for set in &col.incomplete_sets {
        leftovers
            .entry(set.times())
            .or_default()
            .extend(set.files());
    }
    for name in col.stray_signatures(&ctx.prefixes, remote) {
        if let Some(p) = ctx.prefixes.parse(&name) {
            leftovers.entry(p.set).or_default().push(name);
        }
    }
    let ours: std::collections::BTreeSet<SetTimes> = cached
        .iter()
        .filter_map(|n| ctx.prefixes.parse(n).filter(|p| p.partial).map(|p| p.set))
        .collect();
    let local = usable_cache(ctx, col)?;
    let mut resume: Option<Resume> = None;
    let mut cleared = std::collections::BTreeSet::new();
    for (&times, files) in leftovers.iter().rev() {
        if times.end() <= newest || ctx.dry_run {
            continue;
        }
        let when = crate::format::time::pretty(times.end());
        if !ours.contains(&times) && ctx.now - times.end() < FOREIGN_GRACE {
            crate::log::warn(&format!(
                "leaving alone the incomplete backup set from {when}: this archive dir did \
                 not write it and it is less than a day old, so another run may still be \
                 writing it (cleanup --force deletes it)"
            ));
            continue;
        }
        let mut delete: Vec<&String> = files.iter().collect();
        if resume.is_none() {
            if let Some(set) = col.incomplete_sets.iter().find(|s| s.times() == times) {
                resume = resumable(ctx, col, &local, set, source)?;
            }
            if resume.is_some() {
                // Its signature file, if stored, is remade: only the volumes are kept.
                delete.retain(|f| {
                    ctx.prefixes
                        .parse(f)
                        .is_some_and(|p| p.kind == Kind::Signature)
                });
            }
        }
        if resume.as_ref().is_none_or(|r| r.set != times) {
            crate::log::notice(&format!(
                "Deleting the incomplete backup set from {when} left by an interrupted run."
            ));
        }
        for f in delete {
            failpoint::hit("leftover-delete");
            ctx.backend.delete(f)?;
        }
        cleared.insert(times);
    }
    if !ctx.dry_run {
        for name in cached {
            let Some(p) = ctx.prefixes.parse(&name) else {
                continue;
            };
            let resumed = resume.as_ref().is_some_and(|r| r.set == p.set);
            let cleared_sig = p.kind == Kind::Signature && cleared.contains(&p.set);
            if (p.partial && !resumed) || cleared_sig {
                failpoint::hit("cache-partial-delete");
                let path = ctx.cache.path(&name);
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
    }
    Ok(resume)
}

fn resumable(
    ctx: &Context,
    col: &Collection,
    local: &Collection,
    set: &crate::collection::BackupSet,
    source: &Path,
) -> Result<Option<Resume>> {
    let times = set.times();
    // As duplicity, an interrupted incremental is resumed even when a full backup is
    // asked for (duplicity takes the interrupted set's type).
    if let SetTimes::Inc(start, _) = times {
        let chain_ok = col.last_chain().is_some_and(|c| c.end() == start);
        let sig_ok = local.sig_chains.iter().any(|s| s.end() == start);
        if !chain_ok || !sig_ok {
            return Ok(None);
        }
    }
    let part = ctx.cache.path(&ctx.prefixes.manifest(times, true, false));
    let Ok(f) = File::open(&part) else {
        return Ok(None);
    };
    let Ok(m) = Manifest::parse_reader(io::BufReader::new(f), false) else {
        return Ok(None);
    };
    // As duplicity: the last of the volumes stored in sequence is redone (its storing may
    // have been cut short), the ones before it are kept as far as the partial manifest
    // lists them (a volume is listed only once stored). Where duplicity starts over because
    // the manifest lists fewer, the listed ones are kept.
    let run_from_1 = |has: &dyn Fn(u32) -> bool| (1..).take_while(|n| has(*n)).count() as u32;
    let stored = run_from_1(&|n| set.volumes.contains_key(&n));
    let listed = run_from_1(&|n| m.volumes.contains_key(&n));
    let mut start_vol = stored.saturating_sub(1).min(listed);
    if start_vol == 0 {
        return Ok(None);
    }
    let wrap = ctx.wrap();
    if set.volumes.get(&1) != Some(&ctx.prefixes.volume(times, 1, wrap)) {
        return Err(Error::input(format!(
            "the interrupted backup from {} was written with other compression or encryption \
             settings; run again with the same options to resume it, or run cleanup --force",
            crate::format::time::pretty(times.end())
        )));
    }
    if ctx.encrypt && ctx.crypto.as_ref().is_some_and(|c| c.is_symmetric()) {
        // Volume 1 must open with this run's passphrase, or the set would mix two.
        let name = &set.volumes[&1];
        let tmp = ctx.temp_path("vol1")?;
        ctx.backend.get(name, &tmp)?;
        let mut block = [0u8; tar::BLOCK];
        let opened = ctx
            .open_stored(&tmp, name)
            .and_then(|mut r| r.read_exact(&mut block).map_err(|e| Error::io(&tmp, e)));
        if opened.is_err() {
            return Err(Error::input(format!(
                "the interrupted backup from {} was encrypted with another passphrase; resume \
                 it with the same PASSPHRASE, or run cleanup --force to drop it",
                crate::format::time::pretty(times.end())
            )));
        }
    }
    if !times.is_full() {
        // A delta's bytes depend on how the tool that wrote it fed librsync (duplicity's
        // literal runs are longer than ferrodup's), and on the file not having changed
        // since: a delta cut between volumes is continued only when ferrodup makes the
        // same cut chunk now; otherwise the resume starts before that file.
        while start_vol > 0 && m.volumes[&start_vol].end_block.is_some() {
            let continuable = match delta_cut(ctx, set, start_vol) {
                Ok(None) => true,
                Ok(Some((path, k, chunk))) => {
                    same_delta(ctx, local, times, source, &path, k, &chunk).unwrap_or(false)
                }
                Err(_) => false,
            };
            if continuable {
                break;
            }
            let cut = m.volumes[&start_vol].end.clone();
            while start_vol > 0
                && m.volumes[&start_vol].end == cut
                && m.volumes[&start_vol].end_block.is_some()
            {
                start_vol -= 1;
            }
        }
        if start_vol == 0 {
            return Ok(None);
        }
    }
    let kept: Vec<VolumeInfo> = (1..=start_vol).map(|n| m.volumes[&n].clone()).collect();
    let last = kept.last().expect("start_vol >= 1");
    let skip_to = (last.end.clone(), last.end_block);
    Ok(Some(Resume {
        set: times,
        kept,
        skip_to,
    }))
}

/// A chunk of a delta: the path, the chunk number and its bytes.
type DeltaChunk = (Vec<u8>, u64, Vec<u8>);

/// The last member of volume `n` of `set` (read from the target) when it is a chunk of a
/// delta.
fn delta_cut(
    ctx: &Context,
    set: &crate::collection::BackupSet,
    n: u32,
) -> Result<Option<DeltaChunk>> {
    let name = &set.volumes[&n];
    let tmp = ctx.temp_path("resume-vol")?;
    ctx.backend.get(name, &tmp)?;
    let mut tar = tar::TarReader::new(ctx.open_stored(&tmp, name)?);
    let bad = |e: io::Error| Error::corrupt(format!("volume {name}: {e}"));
    let mut last = None;
    while let Some(h) = tar.next_header().map_err(bad)? {
        last = match entry::parse(&h.name) {
            Some(e) if e.difftype == DiffType::Diff && e.chunk.is_some() => {
                let mut data = Vec::new();
                tar.read_to_end(&mut data).map_err(bad)?;
                Some((e.index, e.chunk.unwrap_or(0), data))
            }
            _ => None,
        };
    }
    Ok(last)
}

/// True if chunk `k` of ferrodup's delta of `path` now (the source file against its
/// signature in the chain that the incremental `times` extends) is `chunk`.
fn same_delta(
    ctx: &Context,
    local: &Collection,
    times: SetTimes,
    source: &Path,
    path: &[u8],
    k: u64,
    chunk: &[u8],
) -> Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let SetTimes::Inc(start, _) = times else {
        return Ok(false);
    };
    let Some(sigs) = local.sig_chains.iter().rev().find(|s| s.end() == start) else {
        return Ok(false);
    };
    let mut files = Vec::new();
    for name in sigs.files_until(i64::MAX) {
        let stored = codec::open_stored(&ctx.cache.path(name), name, None)?;
        files.push((name.to_string(), stored));
    }
    let mut overlay = SigOverlay::new(files)?;
    let old = loop {
        match overlay.next_entry()? {
            Some(e) if e.index == path => break e.signature,
            Some(e) if cmp_index(&e.index, path) == Ordering::Less => {}
            _ => return Ok(false),
        }
    };
    let Some(old) = old else {
        return Ok(false);
    };
    let fs_path = if path.is_empty() {
        source.to_path_buf()
    } else {
        source.join(std::ffi::OsStr::from_bytes(path))
    };
    let file = File::open(&fs_path).map_err(|e| Error::io(&fs_path, e))?;
    let mut delta = librsync::Delta::new(file, &mut &old[..])
        .map_err(|e| Error::corrupt(format!("{}: {e}", fs_path.display())))?;
    let before = k.saturating_sub(1) * CHUNK as u64;
    let skipped = io::copy(&mut (&mut delta).take(before), &mut io::sink())
        .map_err(|e| Error::io(&fs_path, e))?;
    let mut now = vec![0u8; CHUNK];
    let n = read_full(&mut delta, &mut now).map_err(|e| Error::io(&fs_path, e))?;
    Ok(skipped == before && now[..n] == *chunk)
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn check_source_match(
    ctx: &Context,
    last: &crate::collection::BackupSet,
    source: &Path,
) -> Result<()> {
    let name = last.manifest.as_deref().expect("complete set");
    let Some(lname) = crate::cache::Cache::local_name(&ctx.prefixes, name) else {
        return Ok(());
    };
    let Ok(f) = File::open(ctx.cache.path(&lname)) else {
        return Ok(());
    };
    let m = Manifest::parse_reader(io::BufReader::new(f), false)
        .map_err(|e| Error::corrupt(format!("{lname}: {e}")))?;
    let host = hostname();
    if let Some(h) = m.hostname.as_deref().filter(|h| !h.is_empty()) {
        if h != host {
            crate::log::error_extra(format!(
                "{} {}",
                crate::log::escape(host.as_bytes()),
                crate::log::escape(h.as_bytes())
            ));
            return Err(Error::input(format!(
                "backup source host has changed (current {host:?}, previous {h:?}); use \
                 --allow-source-mismatch if this is intended"
            ))
            .with_code(Code::HostnameMismatch));
        }
    }
    let dir = localdir(source);
    if let Some(d) = m.localdir.as_deref().filter(|d| !d.is_empty()) {
        if d != dir.as_slice() {
            crate::log::error_extra(format!(
                "{} {}",
                crate::log::escape(&dir),
                crate::log::escape(d)
            ));
            return Err(Error::input(format!(
                "backup source directory has changed (current {:?}, previous {:?}); use \
                 --allow-source-mismatch if this is intended",
                String::from_utf8_lossy(&dir),
                String::from_utf8_lossy(d)
            ))
            .with_code(Code::SourcePathMismatch));
        }
    }
    Ok(())
}

/// The source path as duplicity records it: as given, normalised (no trailing slash).
fn localdir(source: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let s = source.as_os_str().as_bytes();
    let trimmed = if s.len() > 1 {
        s.strip_suffix(b"/").unwrap_or(s)
    } else {
        s
    };
    trimmed.to_vec()
}

/// Plain bytes of the open volume held back from compression, so that a file that fails
/// while it is read can be taken back: what lies before the file's start is handed on at
/// once, what follows it only beyond this much.
const HOLD: usize = 8 << 20;

/// Where an open volume's plain bytes go once they are handed on: straight into the
/// stored file, to the gzip workers, or to the encryption thread (after the deflate
/// workers when the configuration allows).
enum Sink {
    Plain(HashCount<BufWriter<File>>),
    Gzip(ParGz<'static, HashCount<BufWriter<File>>>),
    Pgp(PgpWriter),
    ParPgp(ParPgpWriter),
}

impl Sink {
    fn push(&mut self, chunk: Vec<u8>) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.write_all(&chunk),
            Sink::Gzip(g) => g.push(chunk),
            Sink::Pgp(w) => w.write_all(&chunk),
            Sink::ParPgp(w) => w.push(&chunk),
        }
    }
}

/// The volume being written; its stored form is made as it grows, never spooled plain.
struct OpenVolume {
    /// Plain bytes not handed on yet, in pieces of up to [`pargz::CHUNK`].
    held: VecDeque<Vec<u8>>,
    held_len: usize,
    /// Plain bytes of the volume handed on already.
    released: u64,
    sink: Sink,
    path: PathBuf,
    slot: Slot,
}

impl OpenVolume {
    fn hold(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.held.back_mut() {
                Some(b) if b.len() < pargz::CHUNK => {
                    let n = (pargz::CHUNK - b.len()).min(data.len());
                    b.extend_from_slice(&data[..n]);
                    self.held_len += n;
                    data = &data[n..];
                }
                _ => self.held.push_back(Vec::with_capacity(pargz::CHUNK)),
            }
        }
    }

    /// Hands on the full pieces that end before `keep_from` (an offset in the volume),
    /// and any beyond [`HOLD`] bytes held.
    fn release(&mut self, keep_from: u64) -> io::Result<()> {
        while self.held.len() > 1 {
            let front = self.held[0].len();
            if self.released + front as u64 > keep_from && self.held_len <= HOLD {
                break;
            }
            let chunk = self.held.pop_front().expect("two pieces or more");
            self.held_len -= front;
            self.released += front as u64;
            self.sink.push(chunk)?;
        }
        Ok(())
    }

    /// Takes back the bytes from `offset` on; false if some have been handed on already.
    fn truncate(&mut self, offset: u64) -> bool {
        if offset < self.released {
            return false;
        }
        let keep = (offset - self.released) as usize;
        while self.held_len > keep {
            let back = self.held.back_mut().expect("bytes held");
            let cut = (self.held_len - keep).min(back.len());
            back.truncate(back.len() - cut);
            self.held_len -= cut;
            if back.is_empty() {
                self.held.pop_back();
            }
        }
        true
    }
}

/// Reports a volume made (or not) to the uploader: its stored size and SHA1 recorded, and
/// its MD5 if `md5` (for a target whose listings give MD5s, so that `check` can compare
/// them without reading the volumes).
fn volume_made(
    done: mpsc::Sender<(u32, Result<FinishedVolume>)>,
    mut info: VolumeInfo,
    (path, name, slot): (PathBuf, String, Slot),
    stored: io::Result<(u64, String)>,
    md5: bool,
) {
    let n = info.number;
    let stored = stored.and_then(|(size, sha1)| {
        let md5 = md5
            .then(|| codec::file_digest::<md5::Md5>(&path))
            .transpose()
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok((size, sha1, md5))
    });
    let result = match stored {
        Ok((size, sha1, md5)) => {
            info.hashes = vec![("SHA1".to_string(), sha1)];
            info.hashes.extend(md5.map(|m| ("MD5".to_string(), m)));
            info.size = Some(size);
            failpoint::hit("volume-made");
            Ok(FinishedVolume {
                path,
                name,
                size,
                info,
                slot,
            })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(Error::io(&path, e))
        }
    };
    if let Err(mpsc::SendError((_, Ok(v)))) = done.send((n, result)) {
        // The uploader has stopped: drop what was made.
        let _ = std::fs::remove_file(v.path);
    }
}

/// Cuts the tar stream into volumes the way duplicity does. Each volume's stored form is
/// made while it is written: gzip chunks on every core, or encryption on its own thread;
/// a closed volume is finished by a worker while the next one fills.
struct VolumeWriter<'a, 's> {
    ctx: &'a Context,
    set: SetTimes,
    wrap: Wrapping,
    target: u64,
    cur: Option<OpenVolume>,
    tar_offset: u64,
    /// Where, in the open volume, the file being read began (see [`VolumeWriter::mark`]).
    mark_at: u64,
    number: u32,
    start: Option<Position>,
    last: Option<Position>,
    pool: Option<pargz::Pool<'static>>,
    done: Option<mpsc::Sender<(u32, Result<FinishedVolume>)>>,
    ratio: Arc<Ratio>,
    uploader: Uploader<'s>,
    skip_to: Option<Position>,
}

impl VolumeWriter<'_, '_> {
    /// Adds one member (header, data, padding) that belongs to `index`; `block` is the
    /// multivol chunk number recorded in the manifest.
    fn add(&mut self, index: &[u8], block: Option<u64>, parts: &[&[u8]]) -> Result<()> {
        if let Some((last, last_block)) = &self.skip_to {
            let stored_already = match cmp_index(index, last) {
                Ordering::Less => true,
                Ordering::Greater => false,
                Ordering::Equal => match (last_block, block) {
                    (None, _) => true,
                    (Some(k), Some(b)) => b <= *k,
                    (Some(_), None) => false,
                },
            };
            if stored_already {
                return Ok(());
            }
            self.skip_to = None;
        }
        failpoint::hit("member");
        if self.cur.is_some() {
            let stored = self.ratio.estimate(self.tar_offset);
            if self.target.saturating_sub(stored) < CHUNK as u64 {
                self.close()?;
            }
        }
        if self.cur.is_none() {
            self.open()?;
            self.start = Some((index.to_vec(), block));
        }
        let v = self.cur.as_mut().expect("opened above");
        for p in parts {
            v.hold(p);
            self.tar_offset += p.len() as u64;
        }
        self.last = Some((index.to_vec(), block));
        v.release(self.mark_at).map_err(|e| Error::io(&v.path, e))
    }

    /// Where the stream is now, to [`VolumeWriter::rollback`] to: called as a file's data
    /// begins, so the open volume holds that data back (up to [`HOLD`] bytes) until it is
    /// complete.
    fn mark(&mut self) -> Mark {
        self.mark_at = if self.cur.is_some() {
            self.tar_offset
        } else {
            0
        };
        Mark {
            number: self.number,
            offset: self.tar_offset,
            open: self.cur.is_some(),
            skipping: self.skip_to.is_some(),
            last: self.last.clone(),
        }
    }

    /// Takes back everything added since `m` if none of it has been handed on to be
    /// compressed or encrypted (or nothing was added); false otherwise.
    fn rollback(&mut self, m: &Mark) -> Result<bool> {
        if m.skipping {
            return Ok(self.skip_to.is_some());
        }
        if self.number == m.number && m.open {
            let v = self.cur.as_mut().expect("the marked volume is still open");
            if !v.truncate(m.offset) {
                return Ok(false);
            }
            self.tar_offset = m.offset;
            self.last = m.last.clone();
            return Ok(true);
        }
        if self.number == m.number + 1 && !m.open {
            if self.cur.as_ref().is_some_and(|v| v.released > 0) {
                return Ok(false);
            }
            if let Some(v) = self.cur.take() {
                drop(v.sink);
                let _ = std::fs::remove_file(v.path);
            }
            self.number = m.number;
            self.tar_offset = 0;
            self.start = None;
            self.last = m.last.clone();
            return Ok(true);
        }
        Ok(self.number == m.number && !m.open && self.cur.is_none())
    }

    fn open(&mut self) -> Result<()> {
        let Some(slot) = self.uploader.slot() else {
            return Err(self.stop());
        };
        let Some(pool) = self.pool.clone() else {
            return Err(self.stop());
        };
        self.number += 1;
        let path = self.ctx.tempdir.join(format!(
            "ferrodup-{}-vol{}",
            std::process::id(),
            self.number
        ));
        let sink = match self.wrap {
            Wrapping::Plain => Sink::Plain(HashCount::create(&path)?),
            Wrapping::Gzip => {
                let out = HashCount::create(&path)?;
                let mtime = crate::wall_clock() as u32;
                Sink::Gzip(ParGz::new(pool, out, mtime, Some(self.ratio.clone())))
            }
            Wrapping::Gpg => {
                let c = self.ctx.crypto.as_ref();
                let c = c.ok_or_else(|| Error::usage("encryption is not configured"))?;
                match c.par_writer(&path, pool, Some(self.ratio.clone()))? {
                    Some(w) => Sink::ParPgp(w),
                    None => Sink::Pgp(c.writer(&path)?),
                }
            }
        };
        self.cur = Some(OpenVolume {
            held: VecDeque::new(),
            held_len: 0,
            released: 0,
            sink,
            path,
            slot,
        });
        self.tar_offset = 0;
        self.mark_at = 0;
        Ok(())
    }

    /// The upload side failed: stop feeding it and return its error.
    fn stop(&mut self) -> Error {
        self.pool = None;
        self.done = None;
        if let Some(v) = self.cur.take() {
            drop(v.sink);
            let _ = std::fs::remove_file(v.path);
        }
        match self.uploader.join() {
            Err(e) => e,
            Ok(_) => Error::backend("the upload thread stopped unexpectedly".to_string()),
        }
    }

    /// Closes the open volume: its last bytes go to its sink, and a worker finishes it and
    /// hands it to the uploader.
    fn close(&mut self) -> Result<()> {
        let Some(mut v) = self.cur.take() else {
            return Ok(());
        };
        let (Some(done), Some(pool)) = (self.done.clone(), self.pool.clone()) else {
            let _ = std::fs::remove_file(&v.path);
            return Err(self.stop());
        };
        let footer = tar::volume_footer(self.tar_offset);
        v.hold(&footer);
        let plain_len = self.tar_offset + footer.len() as u64;
        let (start, start_block) = self.start.take().unwrap_or_default();
        let (end, end_block) = self
            .last
            .take()
            .unwrap_or_else(|| (start.clone(), start_block));
        let info = VolumeInfo {
            number: self.number,
            start,
            start_block,
            end,
            end_block,
            hashes: Vec::new(),
            size: None,
        };
        let name = self.ctx.prefixes.volume(self.set, self.number, self.wrap);
        let last = if v.held.len() > 1 {
            v.held.pop_back().expect("two pieces or more")
        } else {
            Vec::new()
        };
        let OpenVolume {
            held,
            mut sink,
            path,
            slot,
            ..
        } = v;
        let pushed = held.into_iter().try_for_each(|c| sink.push(c));
        if let Err(e) = pushed {
            drop(sink);
            let _ = std::fs::remove_file(&path);
            return Err(Error::io(&path, e));
        }
        let shown = path.clone();
        let ratio = self.ratio.clone();
        let md5 = self.ctx.backend.lists_md5();
        let ended = match sink {
            Sink::Gzip(g) => g.finish(
                last,
                Box::new(move |r| {
                    let stored = r.and_then(HashCount::finish);
                    volume_made(done, info, (path, name, slot), stored, md5);
                }),
            ),
            Sink::ParPgp(w) => w.finish(
                &last,
                Box::new(move |stored| volume_made(done, info, (path, name, slot), stored, md5)),
            ),
            Sink::Plain(mut w) => w.write_all(&last).and_then(|_| {
                pool.run(Box::new(move || {
                    let stored = w.finish();
                    if let Ok((size, _)) = &stored {
                        ratio.add(plain_len, *size);
                    }
                    volume_made(done, info, (path, name, slot), stored, md5);
                }))
            }),
            Sink::Pgp(mut w) => w.write_all(&last).and_then(|_| {
                pool.run(Box::new(move || {
                    let stored = w.finish();
                    if let Ok((size, _)) = &stored {
                        ratio.add(plain_len, *size);
                    }
                    volume_made(done, info, (path, name, slot), stored, md5);
                }))
            }),
        };
        if let Err(e) = ended {
            let _ = std::fs::remove_file(&shown);
            return Err(Error::io(&shown, e));
        }
        failpoint::hit("volume-cut");
        Ok(())
    }

    /// Closes the last volume (writing an empty volume 1 if nothing was added), waits for
    /// every volume to be stored and returns the manifest file and the stored bytes.
    fn finish(mut self) -> Result<(File, u64)> {
        if self.number == 0 && self.cur.is_none() {
            self.open()?;
        }
        self.close()?;
        self.pool = None;
        self.done = None;
        let (file, stored, last) = self.uploader.join()?;
        if last != self.number {
            return Err(Error::backend(format!(
                "volume {} was never stored (a worker failed); run the backup again to resume",
                last + 1
            )));
        }
        Ok((file, stored))
    }
}

/// A place in the volume stream that [`VolumeWriter::rollback`] can return to.
struct Mark {
    number: u32,
    offset: u64,
    open: bool,
    skipping: bool,
    last: Option<Position>,
}

/// The manifest's list of changed files, spooled to a temporary file so that memory stays
/// flat however many files change. Without `record` it stays empty (`Filelist 0`).
struct Filelist {
    out: BufWriter<File>,
    path: tempfile::TempPath,
    count: u64,
    enabled: bool,
}

impl Filelist {
    fn new(ctx: &Context, enabled: bool) -> Result<Self> {
        let path = ctx.temp_path("filelist")?;
        let f = File::create(&path).map_err(|e| Error::io(&path, e))?;
        Ok(Filelist {
            out: BufWriter::new(f),
            path,
            count: 0,
            enabled,
        })
    }

    fn push(&mut self, kind: &str, index: &[u8]) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        self.count += 1;
        // Only a single-file source has an entry at the root; duplicity lists it as `.`.
        let shown: &[u8] = if index.is_empty() { b"." } else { index };
        let line = Manifest::filelist_line(kind, shown);
        self.out
            .write_all(&line)
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Writes `Filelist N` and the entries to the manifest, and syncs it.
    fn append_to(mut self, man: &mut File, man_path: &Path) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))?;
        man.write_all(format!("Filelist {}\n", self.count).as_bytes())
            .map_err(|e| Error::io(man_path, e))?;
        let mut f = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        io::copy(&mut f, man)
            .and_then(|_| man.sync_all())
            .map_err(|e| Error::io(man_path, e))?;
        Ok(())
    }
}

struct Engine<'a, 's> {
    vw: VolumeWriter<'a, 's>,
    sig: BufWriter<File>,
    sig_path: PathBuf,
    sig_offset: u64,
    changed: Filelist,
    stats: BackupStats,
    max_blocksize: u64,
    buf: Vec<u8>,
    /// The changes not written yet, in walk order, with the bytes workers read for them.
    pending: VecDeque<(Pending, u64)>,
    pending_bytes: u64,
}

/// Feeds everything read through it into a signature. A read error ends the data (so
/// that the delta or snapshot written so far stays well formed) and is kept in `error`.
struct Tee<'a, R: Read> {
    inner: R,
    sig: &'a mut dyn Feed,
    read: u64,
    error: Option<io::Error>,
    /// The data has ended (at an error or the end of the file); it stays ended.
    ended: bool,
}

/// What a [`Tee`] feeds the data it reads to: a signature.
trait Feed {
    fn update(&mut self, data: &[u8]);
}

impl Feed for SigMaker {
    fn update(&mut self, data: &[u8]) {
        SigMaker::update(self, data);
    }
}

/// The bytes sent at once to a signature made on another thread.
const SIG_BATCH: usize = 256 * 1024;

/// Feeds a signature made by a worker, so that a big file's signature and delta are
/// computed at the same time.
struct SigFeed {
    batch: Vec<u8>,
    tx: mpsc::SyncSender<Vec<u8>>,
    made: Ticket<Vec<u8>>,
}

impl SigFeed {
    fn start(pool: &Pool<'_>, block_len: usize) -> Self {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(4);
        let made = pool.submit(move || {
            let mut sig = SigMaker::new(block_len);
            for batch in rx {
                sig.update(&batch);
            }
            sig.finish()
        });
        SigFeed {
            batch: Vec::with_capacity(SIG_BATCH + CHUNK),
            tx,
            made,
        }
    }

    /// The signature of everything fed; `None` if its worker stopped.
    fn finish(self) -> Option<Vec<u8>> {
        let _ = self.tx.send(self.batch);
        drop(self.tx);
        self.made.wait()
    }
}

impl Feed for SigFeed {
    fn update(&mut self, data: &[u8]) {
        self.batch.extend_from_slice(data);
        if self.batch.len() >= SIG_BATCH {
            let full = std::mem::replace(&mut self.batch, Vec::with_capacity(SIG_BATCH + CHUNK));
            // A worker that stopped is reported by `finish`.
            let _ = self.tx.send(full);
        }
    }
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ended {
            return Ok(0);
        }
        let n = loop {
            match self.inner.read(buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.error = Some(e);
                    self.ended = true;
                    return Ok(0);
                }
            }
        };
        self.ended = n == 0 && !buf.is_empty();
        self.sig.update(&buf[..n]);
        self.read += n as u64;
        crate::progress::add_read(n as u64);
        Ok(n)
    }
}

impl Engine<'_, '_> {
    fn sig_member(
        &mut self,
        header: &Header,
        data: &[u8],
        records: &[(&str, Vec<u8>)],
    ) -> Result<()> {
        let mut bytes = header.to_pax_bytes_with(records);
        bytes.extend_from_slice(data);
        tar::pad_to_block(&mut bytes);
        self.sig
            .write_all(&bytes)
            .map_err(|e| Error::io(&self.sig_path, e))?;
        self.sig_offset += bytes.len() as u64;
        Ok(())
    }

    fn vol_member(
        &mut self,
        index: &[u8],
        block: Option<u64>,
        header: &Header,
        data: &[u8],
    ) -> Result<()> {
        let head = header.to_pax_bytes();
        let pad = vec![0u8; (tar::BLOCK - data.len() % tar::BLOCK) % tar::BLOCK];
        self.vw.add(index, block, &[&head, data, &pad])
    }

    fn deleted(&mut self, prev: &SigEntry) -> Result<()> {
        if prev.index.is_empty() {
            return Ok(());
        }
        let h = Header::empty(entry::volume_name(DiffType::Deleted, &prev.index, false));
        self.vol_member(&prev.index, None, &h, &[])?;
        let hs = Header::empty(entry::sig_name(DiffType::Deleted, &prev.index));
        self.sig_member(&hs, &[], &[])?;
        self.stats.deleted_files += 1;
        self.stats.delta_entries += 1;
        if prev.difftype == DiffType::Signature {
            self.changed.push("deleted", &prev.index)?;
        }
        log_change(info_code::DIFF_FILE_DELETED, &prev.index);
        Ok(())
    }

    /// Writes a payload as one member or as 64 KiB `multivol_*` chunks; returns the bytes
    /// stored and the error that ended the data early, if one did.
    fn payload(
        &mut self,
        e: &SourceEntry,
        difftype: DiffType,
        r: &mut dyn Read,
    ) -> Result<(u64, Option<io::Error>)> {
        let mut buf = std::mem::take(&mut self.buf);
        let mut failed = None;
        let res = (|| -> Result<u64> {
            let mut total = 0u64;
            let mut read = |buf: &mut [u8]| -> usize {
                match read_full(r, buf) {
                    Ok(n) => n,
                    Err(err) => {
                        failed = Some(err);
                        0
                    }
                }
            };
            let n = read(&mut buf);
            total += n as u64;
            if n < CHUNK {
                let mut h = e.header(entry::volume_name(difftype, &e.index, false));
                h.size = n as u64;
                self.vol_member(&e.index, None, &h, &buf[..n])?;
                return Ok(total);
            }
            let mut k = 1u64;
            let mut len = n;
            loop {
                let last = len < CHUNK;
                let mut h = e.header(entry::multivol_name(difftype, &e.index, k));
                h.size = len as u64;
                self.vol_member(&e.index, (!last).then_some(k), &h, &buf[..len])?;
                if last {
                    return Ok(total);
                }
                len = read(&mut buf);
                total += len as u64;
                k += 1;
            }
        })();
        self.buf = buf;
        res.map(|stored| (stored, failed))
    }

    /// Takes the next entry of the walk with its previous state: an unchanged one is only
    /// counted, a changed one is queued to be written in walk order (a regular file of up
    /// to [`IN_MEMORY`] bytes is read by a worker meanwhile).
    fn process(&mut self, pool: &Pool<'_>, e: SourceEntry, prev: Option<SigEntry>) -> Result<()> {
        let now_header = e.header(Vec::new());
        if let Some(p) = &prev {
            let sig = p.signature.as_deref();
            if fsmeta::unchanged_file(&p.header, p.fine.as_ref(), sig, &e, &now_header) {
                crate::progress::add_skipped(e.size);
                crate::live::add_file();
                self.stats.source_files += 1;
                self.stats.source_size += e.stat_size;
                return Ok(());
            }
        }
        crate::live::add_file();
        self.stats.source_files += 1;
        self.stats.delta_entries += 1;
        if e.kind != EntryType::Regular {
            return self.queue(pool, Pending::Special(e), 0);
        }
        let old = prev.and_then(|p| p.signature);
        if e.size > IN_MEMORY {
            return self.queue(pool, Pending::Streamed(e, old), 0);
        }
        let (path, size, max_blocksize) = (e.fs_path.clone(), e.size, self.max_blocksize);
        let ticket = pool.submit(move || read_in_memory(&path, size, old, max_blocksize));
        self.queue(pool, Pending::Made(e, ticket), size)
    }

    /// Adds a change to the queue and writes what is ready of it.
    fn queue(&mut self, pool: &Pool<'_>, item: Pending, bytes: u64) -> Result<()> {
        self.pending.push_back((item, bytes));
        self.pending_bytes += bytes;
        self.write_pending(pool, false)
    }

    /// Writes the changes at the head of the queue that are ready, and more (waiting for
    /// workers, streaming big files) while the queue is over its bounds, or all with `all`.
    fn write_pending(&mut self, pool: &Pool<'_>, all: bool) -> Result<()> {
        loop {
            let must =
                all || self.pending.len() > MAX_PENDING || self.pending_bytes > PENDING_BYTES;
            let Some((front, _)) = self.pending.front_mut() else {
                return Ok(());
            };
            let ready = match front {
                Pending::Made(_, ticket) => ticket.ready(),
                Pending::Streamed(..) => false,
                Pending::Deleted(_) | Pending::Special(_) => true,
            };
            if !must && !ready {
                return Ok(());
            }
            let (item, bytes) = self.pending.pop_front().expect("a front item");
            self.pending_bytes -= bytes;
            self.write(pool, item)?;
        }
    }

    fn write(&mut self, pool: &Pool<'_>, item: Pending) -> Result<()> {
        match item {
            Pending::Deleted(p) => self.deleted(&p),
            Pending::Special(e) => self.special(&e),
            Pending::Streamed(e, old) => self.streamed(pool, e, old),
            Pending::Made(e, ticket) => match ticket.wait() {
                Some(Made::Read(out, data)) => {
                    let mark = self.vw.mark();
                    self.payload(&e, out.difftype, &mut &data[..])?;
                    self.file_written(e, mark, out)
                }
                Some(Made::Unopened(err)) => {
                    self.unopened(&e, err);
                    Ok(())
                }
                Some(Made::BadSignature(why)) => Err(bad_signature(&e, why)),
                Some(Made::TooBig(old)) => self.streamed(pool, e, old),
                None => Err(stopped(&e)),
            },
        }
    }

    /// A changed entry that is not a regular file: its header is all there is to store.
    fn special(&mut self, e: &SourceEntry) -> Result<()> {
        crate::progress::add_skipped(e.size);
        let h = e.header(entry::volume_name(
            DiffType::Snapshot,
            &e.index,
            e.kind == EntryType::Directory,
        ));
        self.vol_member(&e.index, None, &h, &[])?;
        let hs = e.header(entry::sig_name(DiffType::Snapshot, &e.index));
        self.sig_member(&hs, &[], &[])?;
        self.stats.new_files += 1;
        log_change(info_code::DIFF_FILE_NEW, &e.index);
        self.stats.new_size += e.stat_size;
        self.stats.source_size += e.stat_size;
        Ok(())
    }

    /// A regular file that could not be opened is left out, with a warning.
    fn unopened(&mut self, e: &SourceEntry, err: io::Error) {
        crate::log::warn_path(
            warning_code::CANNOT_READ,
            e.fs_path.as_os_str().as_bytes(),
            &format!(
                "cannot read {}: {err}; it is not backed up this time",
                e.fs_path.display()
            ),
        );
        self.stats.errors += 1;
        self.stats.source_files -= 1;
        self.stats.delta_entries -= 1;
    }

    /// Reads a big regular file on this thread, writing its delta against `old` (or its
    /// data) to the volumes as it goes.
    fn streamed(&mut self, pool: &Pool<'_>, e: SourceEntry, old: Option<Vec<u8>>) -> Result<()> {
        let file = match File::open(&e.fs_path) {
            Ok(f) => f,
            Err(err) => {
                self.unopened(&e, err);
                return Ok(());
            }
        };
        let read_at = crate::wall_clock();
        let mut sig = SigFeed::start(pool, rsync::block_len(e.size, self.max_blocksize));
        let mark = self.vw.mark();
        let mut tee = Tee {
            inner: file,
            sig: &mut sig,
            read: 0,
            error: None,
            ended: false,
        };
        let (difftype, (stored, failed)) = match old {
            Some(old) => {
                let mut delta = librsync::Delta::new(&mut tee, &mut &old[..])
                    .map_err(|err| bad_signature(&e, err.to_string()))?;
                let out = self.payload(&e, DiffType::Diff, &mut delta)?;
                (DiffType::Diff, out)
            }
            None => (
                DiffType::Snapshot,
                self.payload(&e, DiffType::Snapshot, &mut tee)?,
            ),
        };
        let (read, read_error) = (tee.read, tee.error.take());
        let Some(signature) = sig.finish() else {
            return Err(stopped(&e));
        };
        let out = ReadFile {
            difftype,
            stored,
            failed,
            read,
            read_error,
            signature,
            read_at,
        };
        self.file_written(e, mark, out)
    }

    /// After a regular file's payload went to the volumes since `mark`: takes it back if
    /// the file could not be read whole (or marks it to be taken again when part of it has
    /// left), and writes its new signature.
    fn file_written(&mut self, e: SourceEntry, mark: Mark, out: ReadFile) -> Result<()> {
        let read = out.read;
        let problem = match (out.read_error.or(out.failed), read < e.size) {
            (Some(err), _) => Some(format!("read error after {read} bytes: {err}")),
            (None, true) => Some(format!(
                "it shrank from {} to {read} bytes while being read",
                e.size
            )),
            (None, false) => None,
        };
        let mut hs = e.header(entry::sig_name(DiffType::Signature, &e.index));
        let mut records = FineStat::of(&e, out.read_at).records();
        if let Some(why) = problem {
            self.stats.errors += 1;
            if self.vw.rollback(&mark)? {
                crate::log::warn_path(
                    warning_code::CANNOT_READ,
                    e.fs_path.as_os_str().as_bytes(),
                    &format!(
                        "{}: {why}; it is not backed up this time (an earlier version stays \
                         in the backup)",
                        e.fs_path.display()
                    ),
                );
                self.stats.delta_entries -= 1;
                return Ok(());
            }
            crate::log::warn_path(
                warning_code::CANNOT_READ,
                e.fs_path.as_os_str().as_bytes(),
                &format!(
                    "{}: {why}; only the data read before that is stored, marked so that \
                     the next backup takes the file again",
                    e.fs_path.display()
                ),
            );
            // An mtime that never matches the file's: duplicity and ferrodup both take it
            // again next time.
            hs.mtime = if e.mtime == 0 { 1 } else { 0 };
            records.clear();
        }
        hs.size = out.signature.len() as u64;
        self.sig_member(&hs, &out.signature, &records)?;
        self.stats.raw_delta_size += out.stored;
        if out.difftype == DiffType::Diff {
            self.stats.changed_files += 1;
            self.stats.changed_size += e.size;
            self.changed.push("changed", &e.index)?;
            log_change(info_code::DIFF_FILE_CHANGED, &e.index);
        } else {
            self.stats.new_files += 1;
            self.stats.new_size += e.size;
            self.changed.push("new", &e.index)?;
            log_change(info_code::DIFF_FILE_NEW, &e.index);
        }
        self.stats.source_size += read;
        Ok(())
    }
}

/// Changed regular files up to this size are read, diffed and signed by workers into
/// memory while the walk goes on; bigger ones are streamed by the walking thread.
const IN_MEMORY: u64 = 8 << 20;
/// What a worker keeps in memory of a file that grew while it was read, at most.
const IN_MEMORY_MAX: usize = 2 * IN_MEMORY as usize;
/// The changes waiting to be written in walk order, at most (beyond, the walk waits).
const MAX_PENDING: usize = 256;
/// The bytes of the files being read into memory by workers, at most (beyond, the walk
/// waits).
const PENDING_BYTES: u64 = 32 << 20;

/// A change waiting its turn to be written, in walk order.
enum Pending {
    Deleted(SigEntry),
    /// A changed entry that is not a regular file.
    Special(SourceEntry),
    /// A big regular file, read on the walking thread when its turn comes, and its
    /// previous signature.
    Streamed(SourceEntry, Option<Vec<u8>>),
    /// A regular file that a worker reads into memory.
    Made(SourceEntry, Ticket<Made>),
}

/// What a worker made of a regular file.
enum Made {
    Unopened(io::Error),
    /// librsync refused the previous signature.
    BadSignature(String),
    /// The file grew past [`IN_MEMORY_MAX`] while read: it is streamed instead.
    TooBig(Option<Vec<u8>>),
    /// The read and the payload (delta or data) to store.
    Read(ReadFile, Vec<u8>),
}

/// One read of a regular file: what its payload was and what was seen.
struct ReadFile {
    difftype: DiffType,
    /// The payload's bytes.
    stored: u64,
    /// The error that ended the payload early.
    failed: Option<io::Error>,
    /// The bytes of the file read, and the read error that ended them.
    read: u64,
    read_error: Option<io::Error>,
    /// The new signature.
    signature: Vec<u8>,
    read_at: i64,
}

/// A worker thread for `e` ended without a result.
fn stopped(e: &SourceEntry) -> Error {
    Error::io(
        &e.fs_path,
        io::Error::other("the thread reading it stopped; run the backup again"),
    )
}

fn bad_signature(e: &SourceEntry, why: String) -> Error {
    Error::corrupt(format!(
        "the previous signature of {} is unusable ({why}); run a full backup",
        String::from_utf8_lossy(&e.index)
    ))
}

/// On a worker: reads a regular file of `size` bytes, its new signature and its payload,
/// the delta against `old` or its data, into memory, read in the same chunks as
/// [`Engine::payload`] reads them so the volumes get the same members.
fn read_in_memory(path: &Path, size: u64, old: Option<Vec<u8>>, max_blocksize: u64) -> Made {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(err) => return Made::Unopened(err),
    };
    let read_at = crate::wall_clock();
    let mut sigmaker = SigMaker::new(rsync::block_len(size, max_blocksize));
    let mut tee = Tee {
        inner: file,
        sig: &mut sigmaker,
        read: 0,
        error: None,
        ended: false,
    };
    let mut data = Vec::new();
    let (difftype, end) = match &old {
        Some(sig) => match librsync::Delta::new(&mut tee, &mut &sig[..]) {
            Ok(mut delta) => (DiffType::Diff, read_payload(&mut delta, &mut data)),
            Err(err) => return Made::BadSignature(err.to_string()),
        },
        None => {
            data.reserve(size as usize + CHUNK);
            (DiffType::Snapshot, read_payload(&mut tee, &mut data))
        }
    };
    let Some(failed) = end else {
        return Made::TooBig(old);
    };
    let (read, read_error) = (tee.read, tee.error.take());
    let out = ReadFile {
        difftype,
        stored: data.len() as u64,
        failed,
        read,
        read_error,
        signature: sigmaker.finish(),
        read_at,
    };
    Made::Read(out, data)
}

/// Reads `r` to its end into `data` in [`CHUNK`] reads as [`Engine::payload`] does (a
/// chunk that ends in an error is dropped); the error, or `None` past [`IN_MEMORY_MAX`].
fn read_payload(r: &mut dyn Read, data: &mut Vec<u8>) -> Option<Option<io::Error>> {
    loop {
        let start = data.len();
        if start > IN_MEMORY_MAX {
            return None;
        }
        data.resize(start + CHUNK, 0);
        match read_full(r, &mut data[start..]) {
            Ok(n) => {
                data.truncate(start + n);
                if n < CHUNK {
                    return Some(None);
                }
            }
            Err(err) => {
                data.truncate(start);
                return Some(Some(err));
            }
        }
    }
}

/// The wall clock in seconds (not `--current-time`): file times are compared with it.
fn write_set(
    ctx: &Context,
    opts: &BackupOptions,
    set: SetTimes,
    mut overlay: SigOverlay,
    resume: Option<Resume>,
    meta: Option<BackupMeta>,
) -> Result<u64> {
    let wrap = ctx.wrap();
    let meta_dir = if ctx.dry_run {
        ctx.tempdir.clone()
    } else {
        ctx.cache.dir.clone()
    };
    let man_part = meta_dir.join(ctx.prefixes.manifest(set, true, false));
    let sig_part = meta_dir.join(ctx.prefixes.signature(set, true, Wrapping::Plain));
    let manifest = Manifest {
        hostname: Some(hostname()),
        localdir: Some(localdir(&opts.source)),
        ..Default::default()
    };
    let mut man_file = File::create(&man_part).map_err(|e| Error::io(&man_part, e))?;
    let mut head = manifest.header_text();
    let mut first_volume = 0;
    let mut skip_to = None;
    if let Some(r) = resume {
        for v in &r.kept {
            head.extend(v.to_text());
        }
        first_volume = r.kept.len() as u32;
        skip_to = Some(r.skip_to);
        let remote = ctx.backend.list()?;
        for name in remote {
            if let Some(p) = ctx.prefixes.parse(&name) {
                if let (true, Kind::Volume(n)) = (p.set == set, p.kind) {
                    if n > first_volume {
                        failpoint::hit("resume-delete");
                        ctx.backend.delete(&name)?;
                    }
                }
            }
        }
    }
    man_file
        .write_all(&head)
        .and_then(|_| man_file.flush())
        .map_err(|e| Error::io(&man_part, e))?;
    let sig_file = File::create(&sig_part).map_err(|e| Error::io(&sig_part, e))?;

    thread::scope(|scope| {
        let backend: &dyn Backend = &*ctx.backend;
        let (done_tx, done_rx) = mpsc::channel::<(u32, Result<FinishedVolume>)>();
        let pool = pargz::Pool::start(scope, pargz::workers());
        let settings = upload::Settings {
            concurrency: opts.concurrency,
            dry_run: ctx.dry_run,
            fail_on_volume: opts.fail_on_volume,
            first_volume,
        };
        let slots = Slots::new(opts.concurrency.max(1) + upload::EXTRA_SLOTS);
        let uploader = Uploader::start(scope, backend, man_file, settings, done_rx, slots);
        run_engine(
            ctx,
            opts,
            set,
            wrap,
            (uploader, pool, done_tx),
            sig_file,
            &sig_part,
            &man_part,
            &meta_dir,
            &mut overlay,
            meta,
            (first_volume, skip_to),
        )
    })
}

#[allow(clippy::too_many_arguments)]
fn run_engine(
    ctx: &Context,
    opts: &BackupOptions,
    set: SetTimes,
    wrap: Wrapping,
    (uploader, pool, done): (
        Uploader<'_>,
        pargz::Pool<'static>,
        mpsc::Sender<(u32, Result<FinishedVolume>)>,
    ),
    sig_file: File,
    sig_part: &Path,
    man_part: &Path,
    meta_dir: &Path,
    overlay: &mut SigOverlay,
    meta: Option<BackupMeta>,
    (first_volume, skip_to): (u32, Option<Position>),
) -> Result<u64> {
    let vw = VolumeWriter {
        ctx,
        set,
        wrap,
        target: (opts.volsize).saturating_sub(50 * 1024),
        cur: None,
        tar_offset: 0,
        mark_at: 0,
        number: first_volume,
        start: None,
        last: None,
        pool: Some(pool),
        done: Some(done),
        ratio: Arc::new(Ratio::default()),
        uploader,
        skip_to,
    };
    let mut eng = Engine {
        vw,
        sig: BufWriter::with_capacity(256 * 1024, sig_file),
        sig_path: sig_part.to_path_buf(),
        sig_offset: 0,
        changed: Filelist::new(ctx, opts.files_changed)?,
        stats: BackupStats {
            start: crate::stats::now(),
            ..Default::default()
        },
        max_blocksize: opts.max_blocksize,
        buf: vec![0u8; CHUNK],
        pending: VecDeque::new(),
        pending_bytes: 0,
    };
    failpoint::hit("walk-start");
    let walk_result = thread::scope(|scope| -> Result<()> {
        let workers = thread::available_parallelism().map_or(2, |n| n.get());
        let pool = Pool::start(scope, workers);
        let mut walk =
            fsmeta::Walk::new(&opts.source, opts.copy_links)?.with_selection(opts.select.clone());
        // What could not be read (rather than what is gone) is not recorded as deleted:
        // the previous version stays.
        while let Some(e) = walk.next() {
            while let Some(p) = overlay.peek()? {
                if cmp_index(&p.index, &e.index) != Ordering::Less {
                    break;
                }
                let p = overlay.next_entry()?.expect("peeked");
                if !walk.failed_covers(&p.index) {
                    eng.queue(&pool, Pending::Deleted(p), 0)?;
                }
            }
            let prev = match overlay.peek()? {
                Some(p) if p.index == e.index => overlay.next_entry()?,
                _ => None,
            };
            eng.process(&pool, e, prev)?;
        }
        while let Some(p) = overlay.next_entry()? {
            if !walk.failed_covers(&p.index) {
                eng.queue(&pool, Pending::Deleted(p), 0)?;
            }
        }
        eng.write_pending(&pool, true)?;
        eng.stats.errors += walk.errors();
        eng.stats.end = crate::stats::now();
        Ok(())
    });
    if let Err(e) = walk_result {
        let _ = eng.vw.stop();
        return Err(e);
    }
    failpoint::hit("walk-end");
    if opts.skip_if_no_change && !set.is_full() && eng.stats.delta_entries == 0 {
        crate::log::notice("Skipped volume upload, as effectively nothing has changed");
        let _ = eng.vw.stop();
        let _ = std::fs::remove_file(man_part);
        let _ = std::fs::remove_file(sig_part);
        report(
            ctx,
            opts,
            set,
            &eng.stats,
            meta.as_ref().map(|m| (m, true)),
            0,
        )?;
        return Ok(eng.stats.errors);
    }
    let Engine {
        vw,
        mut sig,
        sig_offset,
        changed,
        stats,
        ..
    } = eng;
    let (mut man_file, stored) = vw.finish()?;
    failpoint::hit("volumes-done");
    sig.write_all(&tar::archive_end(sig_offset))
        .and_then(|_| sig.flush())
        .map_err(|e| Error::io(sig_part, e))?;
    drop(sig);
    changed.append_to(&mut man_file, man_part)?;
    drop(man_file);
    failpoint::hit("manifest-written");

    let sig_local = meta_dir.join(ctx.prefixes.signature(set, false, Wrapping::Gzip));
    codec::store_file(sig_part, &sig_local, Wrapping::Gzip, None)?;
    let sig_remote = ctx.prefixes.signature(set, false, wrap);
    let encrypted = wrap == Wrapping::Gpg;
    let man_remote = ctx.prefixes.manifest(set, false, encrypted);
    let man_local = meta_dir.join(ctx.prefixes.manifest(set, false, false));
    // What goes to the target: the cached gzip signature as is, the raw one, or encrypted
    // copies of the signature and the manifest.
    let sig_enc = ctx.temp_path("sig")?;
    let man_enc = ctx.temp_path("manifest")?;
    let sig_upload: &Path = match wrap {
        Wrapping::Gzip => &sig_local,
        Wrapping::Plain => sig_part,
        Wrapping::Gpg => {
            codec::store_file(sig_part, &sig_enc, wrap, ctx.crypto.as_ref())?;
            &sig_enc
        }
    };
    let man_upload: &Path = if encrypted {
        codec::store_file(man_part, &man_enc, wrap, ctx.crypto.as_ref())?;
        &man_enc
    } else {
        man_part
    };
    failpoint::hit("sig-cached");
    if !ctx.dry_run {
        ctx.backend.put(sig_upload, &sig_remote)?;
        failpoint::hit("sig-stored");
        ctx.backend.put(man_upload, &man_remote)?;
        failpoint::hit("manifest-stored");
    }
    std::fs::rename(man_part, &man_local).map_err(|e| Error::io(&man_local, e))?;
    failpoint::hit("manifest-cached");
    std::fs::remove_file(sig_part).map_err(|e| Error::io(sig_part, e))?;
    if ctx.dry_run {
        let _ = std::fs::remove_file(&man_local);
        let _ = std::fs::remove_file(&sig_local);
    }
    report(
        ctx,
        opts,
        set,
        &stats,
        meta.as_ref().map(|m| (m, false)),
        // A dry run stores nothing: duplicity reports 0.
        if ctx.dry_run { 0 } else { stored },
    )?;
    failpoint::hit("backup-end");
    Ok(stats.errors)
}

/// Prints the `--jsonstat` record and stores it (unless the set was skipped), then prints
/// the statistics block, as duplicity does after a backup. `dest` is the bytes of the
/// volumes stored.
fn report(
    ctx: &Context,
    opts: &BackupOptions,
    set: SetTimes,
    stats: &BackupStats,
    meta: Option<(&BackupMeta, bool)>,
    dest: u64,
) -> Result<()> {
    if let Some((meta, skipped)) = meta {
        let meta = BackupMeta {
            skipped_inc: skipped,
            ..meta.clone()
        };
        let text = stats.json(Some(&meta)).dumps();
        crate::outln!("{text}");
        if !ctx.dry_run && !skipped {
            store_jsonstat(ctx, set, &text)?;
        }
    }
    crate::progress::finish();
    if opts.print_statistics {
        crate::log::out(stats.block(dest).trim_end_matches('\n'));
    }
    Ok(())
}

/// Stores a `--jsonstat` record: gzipped in the archive dir, and at the target wrapped as
/// the set's other files are.
fn store_jsonstat(ctx: &Context, set: SetTimes, text: &str) -> Result<()> {
    let plain = ctx.temp_path("jsonstat")?;
    std::fs::write(&plain, text).map_err(|e| Error::io(&plain, e))?;
    let local = ctx
        .cache
        .path(&ctx.prefixes.jsonstat(set, false, Wrapping::Gzip));
    let wrap = ctx.wrap();
    let wrapped = ctx.temp_path("jsonstat-stored")?;
    let upload: &Path = if wrap == Wrapping::Plain {
        &plain
    } else {
        codec::store_file(&plain, &wrapped, wrap, ctx.crypto.as_ref())?;
        &wrapped
    };
    ctx.backend
        .put(upload, &ctx.prefixes.jsonstat(set, false, wrap))?;
    codec::store_file(&plain, &local, Wrapping::Gzip, None)?;
    Ok(())
}
