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
}

/// One store's files by name.
struct Store<'a> {
    listing: &'a StoreListing,
    files: BTreeMap<&'a str, &'a Listed>,
}

/// Checks the target; prints one line per problem and a summary.
pub fn run(ctx: &Context) -> Result<Found> {
    let listings = ctx.backend.store_listings()?;
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
    let shown: Vec<&str> = listings.iter().map(|l| l.store.as_str()).collect();
    crate::log::notice(&format!(
        "Check complete: {} volume(s) in {} chain(s) on {} ({} by content, the others by \
         size and presence), {} manifest(s), {} signature file(s); {} problem(s) found.",
        found.volumes,
        col.chains.len(),
        shown.join(", "),
        found.by_content,
        found.manifests,
        found.signatures,
        found.problems.len()
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
        let mut by_content = false;
        for (store, listed) in holders(stores, name) {
            let Some(listed) = listed else {
                found
                    .problems
                    .push(format!("{name} is missing from {}", store.listing.store));
                continue;
            };
            if let (Some(want), Some(got)) = (vol.size, listed.size) {
                if want != got {
                    found.problems.push(format!(
                        "{name} on {} has {got} bytes, its manifest says {want}",
                        store.listing.store
                    ));
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
    let missing: Vec<&str> = holders(stores, name)
        .iter()
        .filter(|(_, l)| l.is_none())
        .map(|(s, _)| s.listing.store.as_str())
        .collect();
    for store in &missing {
        found
            .problems
            .push(format!("{name} is missing from {store}"));
    }
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
    for (store, listed) in holders(stores, name) {
        if listed.is_none() {
            found
                .problems
                .push(format!("{name} is missing from {}", store.listing.store));
        }
    }
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
