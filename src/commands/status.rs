//! `collection-status`: the chains, sets and stray files at the target.

use crate::collection::{Chain, Collection};
use crate::commands::dupview::{View, NOTHING_STRAY};
use crate::commands::{changes, jsonstat, Context};
use crate::error::{Error, Result};
use crate::format::time::pretty;

/// What collection-status reports besides the chains.
#[derive(Clone, Debug, Default)]
pub struct StatusOptions {
    /// `--file-changed PATH`: the sets of the current chain in which PATH changed.
    pub file_changed: Option<String>,
    /// `--show-changes-in-set N`: the files changed in the Nth set, counted back from the
    /// latest (0); negative counts from the full set (-1), as Python indexes.
    pub show_changes_in_set: Option<i64>,
    /// `--jsonstat`: with `--show-changes-in-set`, the stored statistics as JSON.
    pub jsonstat: bool,
}

/// The data lines of duplicity's collection-status record (`INFO 3`), which frontends
/// parse: deja-dup reads each chain's sets (`full|inc TIME VOLUMES enc|noenc`) from them.
/// The first two lines are what duplicity 3.2.1 writes there, whatever the backend.
pub fn record_data(col: &Collection) -> String {
    let mut l = vec![
        String::new(),
        "backend BackendWrapper".to_string(),
        "archive-dir (. dir)".to_string(),
    ];
    let sets = |l: &mut Vec<String>, c: &Chain| {
        for s in c.sets() {
            l.push(format!(
                " {} {} {} {}",
                if s.times().is_full() { "full" } else { "inc" },
                crate::format::time::to_string(s.times().end()),
                s.volumes.len(),
                if s.encrypted { "enc" } else { "noenc" }
            ));
        }
    };
    let secondary = col.chains.len().saturating_sub(1);
    for (i, c) in col.chains.iter().take(secondary).enumerate() {
        l.push(format!("chain-no-sig {i}"));
        sets(&mut l, c);
    }
    if let Some(c) = col.last_chain() {
        l.push("chain-complete".to_string());
        sets(&mut l, c);
    }
    l.push(format!("orphaned-sets-num {}", col.orphaned_sets.len()));
    l.push(format!("incomplete-sets-num {}", col.incomplete_sets.len()));
    l.join("\n")
}

/// Backups and restores write the collection's record at verbosity 8 and above, as
/// duplicity does (the human collection status is `collection-status`'s output), and
/// the leftovers records (see [`record_leftovers`]).
pub fn log_collection(col: &Collection) {
    if crate::log::enabled(8) {
        crate::log::machine(
            8,
            crate::log::info_code::COLLECTION_STATUS,
            Some(&record_data(col)),
            "",
        );
    }
    record_leftovers(col);
}

/// duplicity's warning records about orphaned backup sets and signature files (deja-dup
/// runs `cleanup` when a backup reports them). Records only: ferrodup's messages about
/// leftovers are its own.
pub fn record_leftovers(col: &Collection) {
    if !crate::log::enabled(crate::log::WARNING) {
        return;
    }
    if !col.orphaned_sigs.is_empty() {
        crate::log::machine(
            crate::log::WARNING,
            crate::log::warning_code::ORPHANED_SIG,
            None,
            &format!(
                "found signature file(s) outside any chain:\n{}",
                col.orphaned_sigs.join("\n")
            ),
        );
    }
    if !col.orphaned_sets.is_empty() {
        let files: Vec<String> = col.orphaned_sets.iter().flat_map(|s| s.files()).collect();
        crate::log::machine(
            crate::log::WARNING,
            crate::log::warning_code::ORPHANED_BACKUP,
            None,
            &format!(
                "found backup file(s) outside any chain:\n{}",
                files.join("\n")
            ),
        );
    }
}

/// Prints what duplicity 3.2.1 prints for collection-status (its warnings, the last full
/// backup date, then the report, or the changes asked for), then ferrodup's check of each
/// set's volumes against its manifest. Like duplicity, it reads the archive dir as it is,
/// without syncing it.
pub fn run(ctx: &Context, opts: &StatusOptions) -> Result<()> {
    let remote = ctx.backend.list()?;
    ctx.warn_unparsable(&remote);
    let local = ctx.cache.names()?;
    let view = View::new(&ctx.prefixes, &remote, &local);
    for w in &view.warnings {
        crate::log::out_warn(w);
    }
    crate::log::out_notice(&view.last_full_line());
    if let (Some(n), true) = (opts.show_changes_in_set, opts.jsonstat) {
        let col = Collection::from_names(&ctx.prefixes, &remote);
        crate::log::out_line(&jsonstat::json(ctx, &col, n)?);
    } else if let Some(n) = opts.show_changes_in_set {
        changes::print_set_changes(ctx, &view, n)?;
    } else if let Some(path) = &opts.file_changed {
        changes::print_file_changes(ctx, &view, path)?;
    } else {
        let mut lines = view.report(&ctx.cache.dir.display().to_string());
        let damaged = check_damage(ctx, &remote);
        if !damaged.is_empty() {
            // ferrodup lists the damaged sets instead of saying all is well.
            lines.retain(|l| l != NOTHING_STRAY);
            lines.push(format!(
                "Found {} damaged backup set(s): restoring from them fails.",
                damaged.len()
            ));
            lines.extend(damaged.iter().cloned());
        }
        // duplicity writes these records whatever the verbosity.
        let col = Collection::from_names(&ctx.prefixes, &remote);
        record_leftovers(&col);
        crate::log::machine(
            crate::log::NOTICE,
            crate::log::info_code::GENERIC,
            None,
            &view.last_full_line(),
        );
        crate::log::machine(
            crate::log::INFO,
            crate::log::info_code::COLLECTION_STATUS,
            Some(&record_data(&col)),
            &lines.join("\n"),
        );
        for line in lines {
            crate::log::out_line(&line);
        }
        if !damaged.is_empty() {
            return Err(Error::corrupt(format!(
                "{} backup set(s) are damaged (listed above): restore an earlier --time, or \
                 run a full backup to start a sound chain",
                damaged.len()
            )));
        }
    }
    crate::log::out_notice("Duplicity backup complete.");
    Ok(())
}

/// ferrodup's own check of each set's volumes against its manifest (duplicity's
/// collection-status does not look): what is wrong with each damaged set.
fn check_damage(ctx: &Context, remote: &[String]) -> Vec<String> {
    let col = Collection::from_names(&ctx.prefixes, remote);
    let mut damaged = Vec::new();
    let mut unchecked = Vec::new();
    for set in col.chains.iter().flat_map(|c| c.sets()) {
        let what = match crate::commands::restore::read_manifest(ctx, set) {
            Ok(m) => set.damage(&m).describe(),
            Err(e) => {
                unchecked.push((set.times().end(), e));
                continue;
            }
        };
        if !what.is_empty() {
            damaged.push(format!(
                "Backup set from {} is damaged: {what}",
                pretty(set.times().end())
            ));
        }
    }
    // One line for all: without the key, every encrypted manifest fails alike.
    if let Some((t, e)) = unchecked.first() {
        crate::log::warn(&format!(
            "cannot check the volumes of {} backup set(s) against their manifests (the set \
             from {}: {e})",
            unchecked.len(),
            pretty(*t)
        ));
    }
    damaged
}
