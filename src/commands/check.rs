//! `check`: every volume of every chain is where it belongs, with the right size and, where
//! the store's listing gives an MD5, the right content, and every manifest and signature
//! file can be read; all from listings, the archive dir and the files on hot storage. No
//! cold object (sealed, or in an archive class) is read or asked to thaw.

use super::restore::read_manifest_named;
use super::Context;
use crate::backend::{Listed, StoreListing};
use crate::collection::{BackupSet, Collection};
use crate::error::{Error, Result};
use crate::format::manifest::Manifest;
use crate::format::naming::Wrapping;
use crate::format::tar::TarReader;
use std::collections::{BTreeMap, BTreeSet};
use std::io;

/// What `check` found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// Volumes its manifests list.
    pub volumes: u64,
    /// Of those, compared by content (MD5) with at least one store.
    pub by_content: u64,
    pub manifests: u64,
    pub signatures: u64,
    /// One line per problem.
    pub problems: Vec<String>,
    /// The problems another store of a mirror can mend.
    pub repairable: Vec<Repair>,
    /// Of those, the files copied by `--repair`.
    pub repaired: u64,
}

/// A file missing or damaged on one store that another store may hold a good copy of.
#[derive(Debug, PartialEq, Eq)]
pub struct Repair {
    pub name: String,
    /// The store lacking a good copy.
    pub store: String,
    /// What a good copy's listing shows (volumes: from the manifest).
    pub size: Option<u64>,
    pub md5: Option<String>,
    /// A good copy's SHA1 (volumes: from the manifest), checked before it is stored.
    pub sha1: Option<String>,
}

/// One store's files by name.
struct Store<'a> {
    listing: &'a StoreListing,
    files: BTreeMap<&'a str, &'a Listed>,
}

/// Checks the target; prints one line per problem and a summary. With `repair`, copies
/// each file missing or damaged on a store of a multi:// mirror from a store with a good
/// copy.
pub fn run(ctx: &Context, repair: bool) -> Result<Found> {
    let listings = ctx.backend.store_listings()?;
    if repair
        && (listings.len() < 2
            || listings
                .iter()
                .any(|l| ctx.backend.mirror_store(&l.store).is_none()))
    {
        return Err(Error::usage(format!(
            "--repair copies files between the stores of a multi:// mirror (mode=mirror); {} \
             has no other store to copy from",
            ctx.backend.describe()
        )));
    }
    let stores: Vec<Store> = listings
        .iter()
        .map(|l| Store {
            listing: l,
            files: l.entries.iter().map(|e| (e.name.as_str(), e)).collect(),
        })
        .collect();
    let names: BTreeSet<String> = listings
        .iter()
        .flat_map(|l| l.entries.iter().map(|e| e.name.clone()))
        .collect();
    let names: Vec<String> = names.into_iter().collect();
    ctx.warn_unparsable(&names);
    let col = Collection::from_names(&ctx.prefixes, &names);
    let mut found = Found::default();
    for chain in &col.chains {
        for set in chain.sets() {
            check_set(ctx, &stores, set, &mut found);
        }
    }
    for sigs in &col.sig_chains {
        for (_, name) in &sigs.files {
            check_signature(ctx, &stores, name, &mut found);
        }
    }
    if col.chains.is_empty() {
        found
            .problems
            .push(format!("no backup chain at {}", ctx.backend.describe()));
    }
    for set in col.incomplete_sets.iter().chain(&col.orphaned_sets) {
        crate::log::notice(&format!(
            "not checked: the set of {} is incomplete or orphaned ({} file(s); cleanup \
             deletes it)",
            crate::format::time::pretty(set.times().end()),
            set.files().len()
        ));
    }
    for p in &found.problems {
        crate::log::warn(p);
    }
    if repair {
        found.repaired = mend(ctx, &stores, &found.repairable)?;
    }
    let shown: Vec<&str> = listings.iter().map(|l| l.store.as_str()).collect();
    crate::log::notice(&format!(
        "Check complete: {} volume(s) in {} chain(s) on {} ({} by content, the others by \
         size and presence), {} manifest(s), {} signature file(s); {} problem(s) found{}.",
        found.volumes,
        col.chains.len(),
        shown.join(", "),
        found.by_content,
        found.manifests,
        found.signatures,
        found.problems.len(),
        if repair {
            format!(", {} file(s) repaired", found.repaired)
        } else {
            String::new()
        }
    ));
    Ok(found)
}

/// The stores that must hold `name`, and whether each has it readable now.
fn holders<'s, 'a>(
    stores: &'s [Store<'a>],
    name: &str,
) -> Vec<(&'s Store<'a>, Option<&'a Listed>)> {
    stores
        .iter()
        .filter(|s| (s.listing.holds)(name))
        .map(|s| (s, s.files.get(name).copied()))
        .collect()
}

/// True unless a store that holds `name` says a read must wait for a thaw.
fn readable(stores: &[Store], name: &str) -> bool {
    holders(stores, name)
        .iter()
        .filter_map(|(_, l)| *l)
        .any(|l| l.readable != Some(false))
}

/// Notes the stores that must hold the manifest or signature file `name` and lack it.
fn note_missing(stores: &[Store], name: &str, found: &mut Found) {
    for (store, listed) in holders(stores, name) {
        if listed.is_none() {
            found
                .problems
                .push(format!("{name} is missing from {}", store.listing.store));
            found.repairable.push(Repair {
                name: name.to_string(),
                store: store.listing.store.clone(),
                size: None,
                md5: None,
                sha1: None,
            });
        }
    }
}

fn check_set(ctx: &Context, stores: &[Store], set: &BackupSet, found: &mut Found) {
    let Some(manifest_name) = set.manifest.as_deref() else {
        return;
    };
    let Some(manifest) = check_manifest(ctx, stores, manifest_name, found) else {
        return;
    };
    // How the set's files are wrapped, for the names of volumes no store has.
    let wrap = match set.volumes.values().next().map(|v| ctx.prefixes.parse(v)) {
        Some(Some(p)) if p.encrypted => Wrapping::Gpg,
        Some(Some(p)) if !p.compressed => Wrapping::Plain,
        _ => Wrapping::Gzip,
    };
    for (n, vol) in &manifest.volumes {
        found.volumes += 1;
        let Some(name) = set.volumes.get(n) else {
            let name = ctx.prefixes.volume(set.times(), *n, wrap);
            let stores: Vec<&str> = holders(stores, &name)
                .iter()
                .map(|(s, _)| s.listing.store.as_str())
                .collect();
            found.problems.push(format!(
                "{name} (volume {n} of {manifest_name}) is missing from {}",
                stores.join(" and ")
            ));
            continue;
        };
        let md5 = vol
            .hashes
            .iter()
            .find(|(k, _)| k == "MD5")
            .map(|(_, v)| v.to_ascii_lowercase());
        let repair = |store: &Store| Repair {
            name: name.clone(),
            store: store.listing.store.clone(),
            size: vol.size,
            md5: md5.clone(),
            sha1: vol
                .hashes
                .iter()
                .find(|(k, _)| k == "SHA1")
                .map(|(_, v)| v.to_ascii_lowercase()),
        };
        let mut by_content = false;
        for (store, listed) in holders(stores, name) {
            let Some(listed) = listed else {
                found
                    .problems
                    .push(format!("{name} is missing from {}", store.listing.store));
                found.repairable.push(repair(store));
                continue;
            };
            if let (Some(want), Some(got)) = (vol.size, listed.size) {
                if want != got {
                    found.problems.push(format!(
                        "{name} on {} has {got} bytes, its manifest says {want}",
                        store.listing.store
                    ));
                    found.repairable.push(repair(store));
                    continue;
                }
            }
            if let (Some(want), Some(got)) = (&md5, &listed.md5) {
                if want != got {
                    found.problems.push(format!(
                        "{name} on {} has other content than its manifest says (MD5 {got}, \
                         expected {want})",
                        store.listing.store
                    ));
                    found.repairable.push(repair(store));
                    continue;
                }
                by_content = true;
            }
        }
        found.by_content += by_content as u64;
    }
}

/// Reads a manifest: from its store if readable now (and compares it with the archive
/// dir's copy), else the archive dir's copy.
fn check_manifest(
    ctx: &Context,
    stores: &[Store],
    name: &str,
    found: &mut Found,
) -> Option<Manifest> {
    note_missing(stores, name, found);
    let cached = ctx
        .cached_copy(name)
        .map(|_| read_manifest_named(ctx, name, false));
    let remote = readable(stores, name).then(|| read_remote_manifest(ctx, name));
    found.manifests += 1;
    match (cached, remote) {
        (_, Some(Err(e))) => {
            found.problems.push(format!("{name} cannot be read: {e}"));
            None
        }
        (Some(Ok(local)), Some(Ok(remote))) => {
            if local.volumes != remote.volumes {
                found.problems.push(format!(
                    "{name} differs from the archive dir's copy; run a command that syncs \
                     the archive dir (collection-status) and check again"
                ));
            }
            Some(remote)
        }
        (_, Some(Ok(remote))) => Some(remote),
        (Some(Ok(local)), None) => Some(local),
        (Some(Err(e)), None) => {
            found.problems.push(format!("{e}"));
            None
        }
        (None, None) => {
            found.problems.push(format!(
                "{name} is cold and not in the archive dir: its set's volumes were not \
                 checked (a restore thaws it)"
            ));
            None
        }
    }
}

fn read_remote_manifest(ctx: &Context, name: &str) -> Result<Manifest> {
    let tmp = ctx.temp_path("manifest")?;
    ctx.backend.get(name, &tmp)?;
    let r = ctx.open_stored(&tmp, name)?;
    Manifest::parse_reader(io::BufReader::new(r), false)
        .map_err(|e| Error::corrupt(format!("the manifest is corrupt ({e})")))
}

/// A signature file on hot storage is read through (every tar header and the data); one
/// on cold storage is checked for presence.
fn check_signature(ctx: &Context, stores: &[Store], name: &str, found: &mut Found) {
    found.signatures += 1;
    note_missing(stores, name, found);
    if !readable(stores, name) {
        return;
    }
    if let Err(e) = read_signature(ctx, name) {
        found.problems.push(format!("{name} cannot be read: {e}"));
    }
}

fn read_signature(ctx: &Context, name: &str) -> Result<()> {
    let tmp = ctx.temp_path("signature")?;
    ctx.backend.get(name, &tmp)?;
    let mut tar = TarReader::new(ctx.open_stored(&tmp, name)?);
    let corrupt = |e: io::Error| Error::corrupt(format!("{e}"));
    while tar.next_header().map_err(corrupt)?.is_some() {
        io::copy(&mut tar, &mut io::sink()).map_err(corrupt)?;
    }
    tar.drain().map_err(corrupt)?;
    Ok(())
}

/// Copies each repairable file from a store with a good copy (asked to thaw first, all at
/// once, where cold) to the store lacking it; returns how many were copied. A file no
/// store has a good copy of stays a problem.
fn mend(ctx: &Context, stores: &[Store], repairs: &[Repair]) -> Result<u64> {
    // Each repair with the store to copy from.
    let mut planned: Vec<(&Repair, &str)> = Vec::new();
    for r in repairs {
        let good = holders(stores, &r.name).into_iter().find_map(|(s, l)| {
            let l = l?;
            let fits = s.listing.store != r.store
                && r.size
                    .is_none_or(|want| l.size.is_none_or(|got| got == want))
                && r.md5
                    .as_ref()
                    .is_none_or(|want| l.md5.as_ref().is_none_or(|got| got == want));
            fits.then_some(s.listing.store.as_str())
        });
        match good {
            Some(from) => planned.push((r, from)),
            None => crate::log::warn(&format!(
                "{} cannot be repaired on {}: no other store holds a good copy",
                r.name, r.store
            )),
        }
    }
    if ctx.dry_run {
        for (r, from) in &planned {
            crate::log::notice(&format!(
                "Dry run: {} would be copied from {from} to {}",
                r.name, r.store
            ));
        }
        return Ok(0);
    }
    let store = |name: &str| {
        ctx.backend.mirror_store(name).ok_or_else(|| {
            Error::usage(format!(
                "{name} is not a store of {}",
                ctx.backend.describe()
            ))
        })
    };
    let mut sources: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (r, from) in &planned {
        sources.entry(from).or_default().push(r.name.clone());
    }
    for (from, names) in &sources {
        store(from)?.prepare_download(names)?;
    }
    let mut copied = 0;
    for (r, from) in planned {
        let tmp = ctx.temp_path("repair")?;
        store(from)?.get(&r.name, &tmp)?;
        if let Some(want) = &r.sha1 {
            let got = crate::codec::sha1_file(&tmp)?;
            if !got.eq_ignore_ascii_case(want) {
                crate::log::warn(&format!(
                    "{} on {from} is corrupt too (SHA1 {got}, its manifest says {want}): not \
                     copied to {}",
                    r.name, r.store
                ));
                continue;
            }
        }
        let len = std::fs::metadata(&tmp)
            .map_err(|e| Error::io(&tmp, e))?
            .len();
        crate::backend::put_checked(store(&r.store)?, &tmp, &r.name, len, &r.store)?;
        crate::log::notice(&format!(
            "repaired {} on {} (copied from {from})",
            r.name, r.store
        ));
        copied += 1;
    }
    Ok(copied)
}
