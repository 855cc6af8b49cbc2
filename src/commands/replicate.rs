//! `replicate SOURCE_URL TARGET_URL`: copies the complete backup sets (every chain, or
//! those ending between `--since` and `--time`) from one target to another, for instance
//! from `pca://` to an S3 archive class, as duplicity 0.8's command did.
//!
//! - The source's archived files are asked to thaw in batches (`--thaw-batch`, all at once
//!   by default), each batch's plan printed first, and copied as they arrive.
//! - Each volume's SHA1 is checked against its manifest before it is stored.
//! - Files the target holds already with the same size are skipped, so an interrupted run
//!   goes on where it stopped; a set's manifest is stored after its other files, so that
//!   an interrupted copy never looks complete.
//! - With `--target-encrypt-key` or `TARGET_PASSPHRASE`, every encrypted file is decrypted
//!   and encrypted again for the new keys or passphrase, and the manifest records the new
//!   volumes' hashes; a set whose manifest the target holds is then complete there.

use super::restore::{print_plan, read_manifest, read_manifest_named};
use super::Context;
use crate::backend::Backend;
use crate::collection::{BackupSet, Collection};
use crate::crypto::Crypto;
use crate::error::{Error, Result};
use crate::format::manifest::{Manifest, VolumeInfo};
use crate::format::naming::{Kind, Wrapping};
use crate::format::time::pretty;
use std::collections::HashMap;

/// What a replication copied.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub files: u64,
    pub bytes: u64,
    /// Files the target held already.
    pub skipped: u64,
}

/// What to replicate, and how.
pub struct Options {
    /// `--time`: the sets that end by then (now by default).
    pub until: i64,
    /// `--since`: the sets that end at or after then.
    pub since: Option<i64>,
    /// `--thaw-batch`: bytes of the source's files asked to thaw at once (all if `None`).
    pub thaw_batch: Option<u64>,
    /// Encrypt the copy with these settings instead of copying the encrypted bytes.
    pub reencrypt: Option<Crypto>,
}

/// One set to copy: its files in the order they are stored, manifest last.
struct SetCopy<'a> {
    set: &'a BackupSet,
    files: Vec<String>,
    /// The files the target lacks.
    wanted: Vec<String>,
}

/// Copies from `ctx.backend` to `target` the sets `opts` selects.
pub fn run(ctx: &Context, target: &dyn Backend, opts: &Options) -> Result<Copied> {
    let names = ctx.backend.list()?;
    ctx.sync_cache(&names)?;
    let col = Collection::from_names(&ctx.prefixes, &names);
    let in_range = |end: i64| end <= opts.until && opts.since.is_none_or(|s| end >= s);
    let held: HashMap<String, Option<u64>> = target
        .list_details()?
        .into_iter()
        .map(|l| (l.name, l.size))
        .collect();
    let source_sizes: HashMap<String, Option<u64>> = ctx
        .backend
        .list_details()?
        .into_iter()
        .map(|l| (l.name, l.size))
        .collect();
    let same_size = |name: &str| matches!((held.get(name), source_sizes.get(name)), (Some(Some(a)), Some(Some(b))) if a == b);
    let mut sets: Vec<SetCopy> = Vec::new();
    for chain in &col.chains {
        let chosen: Vec<&BackupSet> = chain.sets().filter(|s| in_range(s.times().end())).collect();
        let Some(first) = chosen.first() else {
            continue;
        };
        let full = chain
            .sets()
            .next()
            .expect("a chain starts with its full set");
        if first.times() != full.times()
            && !full.manifest.as_ref().is_some_and(|m| held.contains_key(m))
        {
            crate::log::warn(&format!(
                "the copy starts with incremental sets of the chain of {}, whose full backup \
                 is not on {} and is not copied (--since): the copied sets cannot be restored \
                 there until it is",
                pretty(chain.start()),
                target.describe()
            ));
        }
        for set in chosen {
            let signatures = names.iter().filter(|n| {
                ctx.prefixes
                    .parse(n)
                    .is_some_and(|p| p.set == set.times() && p.kind == Kind::Signature)
            });
            let mut files: Vec<String> = set.volumes.values().cloned().collect();
            files.extend(signatures.cloned());
            files.extend(set.jsonstat.iter().cloned());
            files.extend(set.manifest.iter().cloned());
            let wanted = if opts.reencrypt.is_some() {
                // The copy's sizes differ from the source's: a set is there once its
                // manifest, stored last, is.
                let done = set.manifest.as_ref().is_some_and(|m| held.contains_key(m));
                if done {
                    Vec::new()
                } else {
                    files.clone()
                }
            } else {
                files.iter().filter(|n| !same_size(n)).cloned().collect()
            };
            sets.push(SetCopy { set, files, wanted });
        }
    }
    if sets.is_empty() {
        let range = match opts.since {
            Some(s) => format!(" ending between {} and {}", pretty(s), pretty(opts.until)),
            None => format!(" ending by {}", pretty(opts.until)),
        };
        return Err(Error::input(format!(
            "no complete backup set{range} to replicate at {}",
            ctx.backend.describe()
        )));
    }
    if opts.reencrypt.is_some() {
        if let Some(plain) = sets.iter().find(|s| !s.set.encrypted) {
            return Err(Error::usage(format!(
                "the set of {} at {} is not encrypted: --target-encrypt-key and \
                 TARGET_PASSPHRASE re-encrypt encrypted backups; leave them out to copy it as \
                 it is",
                pretty(plain.set.times().end()),
                ctx.backend.describe()
            )));
        }
    }
    let total: u64 = sets.iter().map(|s| s.files.len() as u64).sum();
    let wanted: u64 = sets.iter().map(|s| s.wanted.len() as u64).sum();
    let mut copied = Copied {
        skipped: total - wanted,
        ..Copied::default()
    };
    let size_of = |n: &String| source_sizes.get(n).copied().flatten().unwrap_or(0);
    let batches = batches(&sets, opts.thaw_batch, size_of);
    if ctx.dry_run {
        for (i, batch) in batches.iter().enumerate() {
            let names: Vec<String> = batch.iter().flat_map(|s| s.wanted.clone()).collect();
            print_plan(ctx, &names, (&batch_title(i, batches.len()), "file(s)"))?;
        }
        crate::log::notice(&format!(
            "Dry run: {wanted} file(s) of {} set(s) would be copied to {}, {} held there \
             already",
            sets.len(),
            target.describe(),
            copied.skipped
        ));
        return Ok(copied);
    }
    for (i, batch) in batches.iter().enumerate() {
        let names: Vec<String> = batch.iter().flat_map(|s| s.wanted.clone()).collect();
        if names.is_empty() {
            continue;
        }
        print_plan(ctx, &names, (&batch_title(i, batches.len()), "file(s)"))?;
        ctx.backend.prepare_download(&names)?;
        for s in batch {
            copy_set(ctx, target, s, opts.reencrypt.as_ref(), &mut copied)?;
        }
    }
    crate::log::notice(&format!(
        "Replicate complete: {} file(s) ({}) of {} set(s) copied from {} to {}, {} held there \
         already",
        copied.files,
        crate::live::size_text(copied.bytes),
        sets.len(),
        ctx.backend.describe(),
        target.describe(),
        copied.skipped
    ));
    Ok(copied)
}

fn batch_title(i: usize, n: usize) -> String {
    if n == 1 {
        "Replicate plan".to_string()
    } else {
        format!("Replicate plan, batch {} of {n}", i + 1)
    }
}

/// Groups the sets, in order, into batches whose files to copy add up to at most `limit`
/// bytes; a set larger than `limit` is a batch of its own.
fn batches<'s, 'a>(
    sets: &'s [SetCopy<'a>],
    limit: Option<u64>,
    size: impl Fn(&String) -> u64,
) -> Vec<Vec<&'s SetCopy<'a>>> {
    let Some(limit) = limit else {
        return vec![sets.iter().collect()];
    };
    let mut out: Vec<Vec<&SetCopy>> = Vec::new();
    let mut filled = 0;
    for s in sets {
        let bytes: u64 = s.wanted.iter().map(&size).sum();
        match out.last_mut() {
            Some(last) if filled + bytes <= limit => {
                last.push(s);
                filled += bytes;
            }
            _ => {
                out.push(vec![s]);
                filled = bytes;
            }
        }
    }
    out
}

/// Copies the files of one set the target lacks, the manifest last.
fn copy_set(
    ctx: &Context,
    target: &dyn Backend,
    s: &SetCopy,
    reencrypt: Option<&Crypto>,
    copied: &mut Copied,
) -> Result<()> {
    if s.wanted.is_empty() {
        return Ok(());
    }
    let manifest = read_manifest(ctx, s.set)?;
    let by_name: HashMap<&String, &VolumeInfo> = s
        .set
        .volumes
        .iter()
        .filter_map(|(n, name)| Some((name, manifest.volumes.get(n)?)))
        .collect();
    let md5 = target.lists_md5();
    // The volumes as re-encrypted: their new hashes and sizes, for the new manifest.
    let mut renewed: HashMap<u32, VolumeInfo> = HashMap::new();
    for name in &s.wanted {
        let is_manifest = s.set.manifest.as_ref() == Some(name);
        let encrypted = ctx.prefixes.parse(name).is_some_and(|p| p.encrypted);
        let upload = match reencrypt.filter(|_| encrypted) {
            Some(crypto) if is_manifest => {
                let mut m: Manifest = read_manifest_named(ctx, name, true)?;
                for (n, v) in renewed.drain() {
                    m.volumes.insert(n, v);
                }
                let out = ctx.temp_path("replicate-manifest")?;
                crate::codec::store(&mut &m.to_text()[..], &out, Wrapping::Gpg, Some(crypto))?;
                out
            }
            reencrypt => {
                let tmp = ctx.temp_path("replicate")?;
                ctx.backend.get(name, &tmp)?;
                let volume = by_name.get(name);
                if let Some(want) = volume.and_then(|v| {
                    v.hashes
                        .iter()
                        .find(|(k, _)| k == "SHA1")
                        .map(|(_, h)| h.as_str())
                }) {
                    let got = crate::codec::sha1_file(&tmp)?;
                    if !got.eq_ignore_ascii_case(want) {
                        return Err(Error::corrupt(format!(
                            "{name} on {} is corrupt: its SHA1 is {got} but its manifest says \
                             {want}; nothing more was copied",
                            ctx.backend.describe()
                        )));
                    }
                }
                match reencrypt {
                    Some(crypto) => {
                        let out = reencrypted(ctx, &tmp, name, crypto)?;
                        if let Some(v) = volume {
                            let mut v: VolumeInfo = (*v).clone();
                            v.hashes = vec![("SHA1".into(), crate::codec::sha1_file(&out)?)];
                            if md5 {
                                let m = crate::codec::file_digest::<md5::Md5>(&out)?;
                                v.hashes.push(("MD5".into(), m));
                            }
                            v.size = Some(file_len(&out)?);
                            renewed.insert(v.number, v);
                        }
                        out
                    }
                    None => tmp,
                }
            }
        };
        let size = file_len(&upload)?;
        crate::backend::put_checked(target, &upload, name, size, &target.describe())?;
        copied.files += 1;
        copied.bytes += size;
        crate::log::info(&format!("copied {name} ({size} bytes)"));
    }
    Ok(())
}

/// The encrypted file `src` (stored as `name`) decrypted and encrypted with `crypto`.
fn reencrypted(
    ctx: &Context,
    src: &std::path::Path,
    name: &str,
    crypto: &Crypto,
) -> Result<tempfile::TempPath> {
    let source = ctx.crypto.as_ref().ok_or_else(|| {
        Error::usage(format!(
            "{name} is encrypted: set PASSPHRASE (or give the secret key) to decrypt it"
        ))
    })?;
    let mut plain = source.reader(src, name)?;
    let out = ctx.temp_path("replicate-encrypted")?;
    crate::codec::store(&mut plain, &out, Wrapping::Gpg, Some(crypto))?;
    Ok(out)
}

fn file_len(path: &std::path::Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len())
}
