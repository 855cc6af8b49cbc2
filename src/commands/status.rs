//! `collection-status`: the chains, sets and stray files at the target.

use crate::collection::Collection;
use crate::commands::dupview::{View, NOTHING_STRAY};
use crate::commands::{changes, Context};
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
    if let Some(n) = opts.show_changes_in_set {
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
