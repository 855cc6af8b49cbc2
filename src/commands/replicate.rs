//! `replicate SOURCE_URL TARGET_URL`: copies the complete backup sets (every chain, or
//! those up to `--time`) from one target to another, for instance from `pca://` to an S3
//! archive class, as duplicity 0.8's command did. The source's archived files are all
//! asked to thaw at once and copied as they arrive; each volume's SHA1 is checked against
//! its manifest before it is stored; files the target holds already with the same size
//! are skipped, so an interrupted run goes on where it stopped; a set's manifest is stored
//! after its volumes, so that an interrupted copy never looks complete.

use super::restore::read_manifest;
use super::Context;
use crate::backend::Backend;
use crate::collection::{BackupSet, Collection};
use crate::error::{Error, Result};
use std::collections::HashMap;

/// What a replication copied.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub files: u64,
    pub bytes: u64,
    /// Files the target held already.
    pub skipped: u64,
}

/// Copies from `ctx.backend` to `target` the sets that end by `until` (`--time`; all of
/// them by default).
pub fn run(ctx: &Context, target: &dyn Backend, until: i64) -> Result<Copied> {
    let names = ctx.backend.list()?;
    ctx.sync_cache(&names)?;
    let col = Collection::from_names(&ctx.prefixes, &names);
    let chains: Vec<_> = col.chains.iter().filter(|c| c.start() <= until).collect();
    if chains.is_empty() {
        return Err(Error::input(format!(
            "no complete backup chain to replicate at {}",
            ctx.backend.describe()
        )));
    }
    // The sets to copy, each with its files in the order they are stored.
    let mut sets: Vec<(&BackupSet, Vec<String>)> = Vec::new();
    for chain in &chains {
        for set in chain.sets().filter(|s| s.times().end() <= until) {
            let signatures: Vec<String> = names
                .iter()
                .filter(|n| {
                    ctx.prefixes.parse(n).is_some_and(|p| {
                        p.set == set.times() && p.kind == crate::format::naming::Kind::Signature
                    })
                })
                .cloned()
                .collect();
            let mut files: Vec<String> = set.volumes.values().cloned().collect();
            files.extend(signatures);
            files.extend(set.jsonstat.iter().cloned());
            files.extend(set.manifest.iter().cloned());
            sets.push((set, files));
        }
    }
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
    let already = |name: &str| matches!((held.get(name), source_sizes.get(name)), (Some(Some(a)), Some(Some(b))) if a == b);
    let wanted: Vec<String> = sets
        .iter()
        .flat_map(|(_, f)| f.iter())
        .filter(|n| !already(n))
        .cloned()
        .collect();
    let mut copied = Copied {
        skipped: sets.iter().map(|(_, f)| f.len() as u64).sum::<u64>() - wanted.len() as u64,
        ..Copied::default()
    };
    if ctx.dry_run {
        crate::log::notice(&format!(
            "Dry run: {} file(s) of {} set(s) would be copied to {}, {} held there already",
            wanted.len(),
            sets.len(),
            target.describe(),
            copied.skipped
        ));
        return Ok(copied);
    }
    ctx.backend.prepare_download(&wanted)?;
    for (set, files) in &sets {
        let manifest = read_manifest(ctx, set)?;
        let sha1: HashMap<&String, &str> = set
            .volumes
            .iter()
            .filter_map(|(n, name)| {
                let v = manifest.volumes.get(n)?;
                v.hashes
                    .iter()
                    .find(|(k, _)| k == "SHA1")
                    .map(|(_, h)| (name, h.as_str()))
            })
            .collect();
        for name in files.iter().filter(|n| !already(n)) {
            let tmp = ctx.temp_path("replicate")?;
            ctx.backend.get(name, &tmp)?;
            if let Some(want) = sha1.get(name) {
                let got = crate::codec::sha1_file(&tmp)?;
                if !got.eq_ignore_ascii_case(want) {
                    return Err(Error::corrupt(format!(
                        "{name} on {} is corrupt: its SHA1 is {got} but its manifest says \
                         {want}; nothing more was copied",
                        ctx.backend.describe()
                    )));
                }
            }
            let size = std::fs::metadata(&tmp)
                .map_err(|e| Error::io(&tmp, e))?
                .len();
            target.put(&tmp, name)?;
            match target.size(name)? {
                Some(n) if n == size => {}
                got => {
                    return Err(Error::backend(format!(
                        "{name} on {} has size {got:?} after the copy, expected {size}",
                        target.describe()
                    )))
                }
            }
            copied.files += 1;
            copied.bytes += size;
            crate::log::info(&format!("copied {name} ({size} bytes)"));
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
