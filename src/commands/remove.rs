//! `cleanup`, `remove-older-than`, `remove-all-but-n-full` and
//! `remove-all-inc-of-but-n-full`: list what would go, and delete it only with `--force`.

use crate::backend::StoreListing;
use crate::collection::{BackupSet, Collection};
use crate::commands::Context;
use crate::error::{Error, Result};
use crate::format::naming::{Kind, SetTimes};
use crate::format::time::pretty;
use std::collections::BTreeSet;

/// Warns about the files of `remote` that cold storage keeps charging for if deleted
/// before their class's minimum storage period.
fn warn_early_deletion(ctx: &Context, remote: &[String]) -> Result<()> {
    if remote.is_empty() || !ctx.backend.minimum_storage() {
        return Ok(());
    }
    let listings = ctx.backend.store_listings()?;
    for line in early_deletion(&listings, remote, ctx.now) {
        crate::log::warn(&line);
    }
    Ok(())
}

/// One line per store holding files of `names` younger than their minimum storage period
/// at `now`: how many, their size, the most days any is short, and the charge for the
/// rest of the period where the price is known.
fn early_deletion(listings: &[StoreListing], names: &[String], now: i64) -> Vec<String> {
    let names: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let mut lines = Vec::new();
    for l in listings {
        let (mut count, mut bytes, mut short, mut usd, mut priced) = (0, 0u64, 0i64, 0.0, false);
        let mut period = 0;
        for e in l.entries.iter().filter(|e| names.contains(e.name.as_str())) {
            let (Some(min), Some(at)) = (e.min_days, e.modified) else {
                continue;
            };
            let left = i64::from(min) - (now - at).max(0) / 86_400;
            if left <= 0 {
                continue;
            }
            count += 1;
            bytes += e.size.unwrap_or(0);
            short = short.max(left);
            period = period.max(min);
            if let Some(p) = e.usd_per_gb_month {
                usd += p * e.size.unwrap_or(0) as f64 / 1e9 * left as f64 / 30.0;
                priced = true;
            }
        }
        if count == 0 {
            continue;
        }
        let cost = if priced {
            format!(", about ${usd:.2} at AWS us-east-1 list prices")
        } else {
            String::new()
        };
        lines.push(format!(
            "{count} file(s) ({}) to delete on {} are younger than their minimum storage \
             period ({period} days; the youngest {short} day(s) short): deleting them now is \
             charged as if they stayed that long{cost}; --force deletes them anyway",
            crate::live::size_text(bytes),
            l.store
        ));
    }
    lines
}

/// Deletes `remote` from the target and `local` from the archive dir, then says how many;
/// nothing, if the target keeps any of `remote` locked. Manifests, signatures and
/// statistics go first, in one batch, then the volumes in another: a delete that stops
/// half way never leaves a set that looks complete without all its volumes.
fn delete_all(ctx: &Context, remote: &[String], local: &[String]) -> Result<()> {
    ctx.backend.check_deletable(remote)?;
    let (volumes, metadata): (Vec<String>, Vec<String>) = remote.iter().cloned().partition(|n| {
        ctx.prefixes
            .parse(n)
            .is_some_and(|p| matches!(p.kind, Kind::Volume(_)))
    });
    for batch in [metadata, volumes] {
        if !batch.is_empty() {
            crate::failpoint::hit("remove-delete");
            ctx.backend.delete_many(&batch)?;
        }
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
    warn_early_deletion(ctx, &remote)?;
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
    warn_early_deletion(ctx, &remote)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Listed;

    #[test]
    fn files_younger_than_their_minimum_storage_period_are_counted_and_priced() {
        let day = 86_400;
        let now = 1_000 * day;
        let entry = |name: &str, size, age_days, min_days| Listed {
            name: name.into(),
            size: Some(size),
            modified: Some(now - age_days * day),
            min_days,
            usd_per_gb_month: Some(0.0036),
            ..Listed::default()
        };
        let listing = StoreListing {
            store: "s3://b".into(),
            entries: vec![
                entry("young", 10_000_000_000, 30, Some(90)),
                entry("older", 10_000_000_000, 80, Some(90)),
                entry("old", 10_000_000_000, 200, Some(90)),
                entry("hot", 10_000_000_000, 1, None),
                entry("kept", 10_000_000_000, 1, Some(90)),
            ],
            holds: Box::new(|_: &str| true),
        };
        let names: Vec<String> = ["young", "older", "old", "hot"].map(String::from).to_vec();
        // 10 GB for 60 more days and 10 GB for 10: (600 + 100) GB-days at $0.0036 a
        // GB-month.
        assert_eq!(
            early_deletion(&[listing], &names, now),
            [
                "2 file(s) (18.6 GB) to delete on s3://b are younger than their minimum storage \
              period (90 days; the youngest 60 day(s) short): deleting them now is charged as \
              if they stayed that long, about $0.08 at AWS us-east-1 list prices; --force \
              deletes them anyway"
            ]
        );
    }
}
