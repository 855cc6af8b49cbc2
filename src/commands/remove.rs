//! `cleanup`, `remove-older-than`, `remove-all-but-n-full` and
//! `remove-all-inc-of-but-n-full`: list what would go, and delete it only with `--force`.

use crate::collection::{BackupSet, Collection};
use crate::commands::Context;
use crate::error::{Error, Result};
use crate::format::naming::{Kind, SetTimes};
use crate::format::time::pretty;
use std::collections::BTreeSet;

/// Deletes `remote` from the target and `local` from the archive dir, then says how many.
fn delete_all(ctx: &Context, remote: &[String], local: &[String]) -> Result<()> {
    for name in remote {
        crate::failpoint::hit("remove-delete");
        ctx.backend.delete(name)?;
    }
    let mut removed = 0;
    for name in local {
        crate::failpoint::hit("remove-delete");
        let p = ctx.cache.path(name);
        if p.exists() {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            removed += 1;
        }
    }
    crate::log::notice(&format!(
        "Deleted {} file(s) from {} and {removed} from the archive dir",
        remote.len(),
        ctx.backend.describe()
    ));
    Ok(())
}

/// `cleanup`: orphaned and incomplete sets, orphaned signatures, signature files of sets
/// in no chain (stored by a run killed before its manifest), and partial files, on the
/// target and in the archive dir.
pub fn cleanup(ctx: &Context) -> Result<()> {
    let remote_names = ctx.backend.list()?;
    let col = Collection::from_names(&ctx.prefixes, &remote_names);
    let mut remote: Vec<String> = Vec::new();
    for s in col.orphaned_sets.iter().chain(col.incomplete_sets.iter()) {
        remote.extend(s.files());
    }
    remote.extend(col.orphaned_sigs.iter().cloned());
    remote.extend(col.partial_sigs.iter().cloned());
    for name in col.stray_signatures(&ctx.prefixes, &remote_names) {
        if !remote.contains(&name) {
            remote.push(name);
        }
    }
    let cached = ctx.cache.names()?;
    let mut local = Vec::new();
    for name in &cached {
        let partial = ctx.prefixes.parse(name).is_some_and(|p| p.partial);
        if partial || name.ends_with(".sync-tmp") {
            local.push(name.clone());
        }
    }
    local.extend(
        col.stray_signatures(&ctx.prefixes, &cached)
            .into_iter()
            .filter(|n| !n.ends_with(".sync-tmp")),
    );
    if remote.is_empty() && local.is_empty() {
        crate::log::warn("No extraneous files found, nothing deleted in cleanup.");
        return Ok(());
    }
    let all: Vec<&String> = local.iter().chain(remote.iter()).collect();
    let list = all
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    if ctx.force {
        crate::outln!("Deleting these file(s) from backend:\n{list}");
        if !ctx.dry_run {
            delete_all(ctx, &remote, &local)?;
        }
    } else {
        crate::outln!(
            "Found the following file(s) to delete:\n{list}\nRun duplicity again with the --force \
             option to actually delete."
        );
    }
    Ok(())
}

/// Which sets of old chains a removal takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    WholeChains,
    IncrementalsOnly,
}

/// Time of the `n`-th newest full backup.
pub fn nth_full_time(ctx: &Context, n: usize) -> Result<i64> {
    if n == 0 {
        return Err(Error::usage(
            "the count of full backups to keep must be at least 1",
        ));
    }
    let remote = ctx.backend.list()?;
    let col = Collection::from_names(&ctx.prefixes, &remote);
    let fulls: Vec<i64> = col.chains.iter().map(|c| c.start()).collect();
    if fulls.len() < n {
        return Ok(i64::MIN);
    }
    Ok(fulls[fulls.len() - n])
}

/// Removes chains (or their incrementals) that end before `t`, never the newest chain.
pub fn remove_older_than(ctx: &Context, t: i64, scope: Scope) -> Result<()> {
    let remote_names = ctx.backend.list()?;
    ctx.sync_cache(&remote_names)?;
    let col = Collection::from_names(&ctx.prefixes, &remote_names);
    let n = col.chains.len();
    let old: Vec<_> = col
        .chains
        .iter()
        .take(n.saturating_sub(1))
        .filter(|c| c.end() < t)
        .collect();
    if old.is_empty() {
        crate::log::notice("No old backup sets found, nothing deleted.");
        return Ok(());
    }
    let mut sets: Vec<&BackupSet> = Vec::new();
    for c in old.iter().rev() {
        match scope {
            Scope::WholeChains => sets.extend(c.sets().collect::<Vec<_>>().into_iter().rev()),
            Scope::IncrementalsOnly => sets.extend(c.incs.iter().rev()),
        }
    }
    let times: BTreeSet<SetTimes> = sets.iter().map(|s| s.times()).collect();
    let mut remote = Vec::new();
    for s in &sets {
        for name in &remote_names {
            if let Some(p) = ctx.prefixes.parse(name) {
                if p.set == s.times() && p.kind == Kind::Signature {
                    remote.push(name.clone());
                }
            }
        }
        remote.extend(s.jsonstat.iter().cloned());
        remote.extend(s.manifest.iter().cloned());
        remote.extend(s.volumes.values().rev().cloned());
    }
    let mut local = Vec::new();
    for name in ctx.cache.names()? {
        if let Some(p) = ctx.prefixes.parse(&name) {
            if times.contains(&p.set) {
                local.push(name);
            }
        }
    }
    let when: Vec<String> = old.iter().map(|c| pretty(c.end())).collect();
    if ctx.force {
        crate::outln!("Deleting backup chain(s) at times:\n{}", when.join("\n"));
        if !ctx.dry_run {
            delete_all(ctx, &remote, &local)?;
        }
    } else {
        crate::outln!(
            "Found old backup chain(s) at the following time(s):\n{}\nRerun command with --force \
             option to actually delete.",
            when.join("\n")
        );
    }
    Ok(())
}
