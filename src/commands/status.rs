//! `collection-status`: the chains, sets and stray files at the target.

use crate::collection::{Chain, Collection};
use crate::commands::Context;
use crate::error::{Error, Result};
use crate::format::time::pretty;

fn chain_text(c: &Chain) -> String {
    let mut l = vec![
        "-------------------------".to_string(),
        format!("Chain start time: {}", pretty(c.start())),
        format!("Chain end time: {}", pretty(c.end())),
        format!("Number of contained backup sets: {}", c.incs.len() + 1),
        format!(
            "Total number of contained volumes: {}",
            c.sets().map(|s| s.volumes.len()).sum::<usize>()
        ),
        format!(
            "{:>20}   {:>30}   {:>15}",
            "Type of backup set:", "Time:", "Num volumes:"
        ),
    ];
    for s in c.sets() {
        let kind = if s.times().is_full() {
            "Full"
        } else {
            "Incremental"
        };
        l.push(format!(
            "{:>20}   {:>30}   {:>15}",
            kind,
            pretty(s.times().end()),
            s.volumes.len()
        ));
    }
    l.push("-------------------------".to_string());
    l.join("\n")
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

pub fn run(ctx: &Context) -> Result<()> {
    let remote = ctx.backend.list()?;
    ctx.sync_cache(&remote)?;
    let col = Collection::from_names(&ctx.prefixes, &remote);
    let mut l = Vec::new();
    if let Some(c) = col.last_chain() {
        l.push(format!("Last full backup date: {}", pretty(c.start())));
    } else {
        l.push("Last full backup date: none".to_string());
    }
    l.push("Collection Status".to_string());
    l.push("-----------------".to_string());
    l.push(format!(
        "Connecting with backend: {}",
        ctx.backend.describe()
    ));
    l.push(format!("Archive dir: {}", ctx.cache.dir.display()));
    let n = col.chains.len();
    let secondary = n.saturating_sub(1);
    l.push(format!("\nFound {secondary} secondary backup chain(s)."));
    for (i, c) in col.chains.iter().take(secondary).enumerate() {
        l.push(format!("Secondary chain {} of {}:", i + 1, secondary));
        l.push(chain_text(c));
        l.push(String::new());
    }
    match col.last_chain() {
        Some(c) => {
            l.push("\nFound primary backup chain with matching signature chain:".to_string());
            l.push(chain_text(c));
        }
        None => l.push("No backup chains with active signatures found".to_string()),
    }
    let mut damaged = Vec::new();
    for set in col.chains.iter().flat_map(|c| c.sets()) {
        let what = match crate::commands::restore::read_manifest(ctx, set) {
            Ok(m) => set.damage(&m).describe(),
            Err(e) => {
                crate::log::warn(&format!(
                    "cannot check the volumes of the backup set from {}: {e}",
                    pretty(set.times().end())
                ));
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
    if !damaged.is_empty() {
        l.push(format!(
            "Found {} damaged backup set(s): restoring from them fails.",
            damaged.len()
        ));
        l.extend(damaged.iter().cloned());
    }
    if !col.orphaned_sets.is_empty() || !col.incomplete_sets.is_empty() {
        l.push(format!(
            "Also found {} backup set(s) not part of any chain,",
            col.orphaned_sets.len()
        ));
        l.push(format!(
            "and {} incomplete backup set(s).",
            col.incomplete_sets.len()
        ));
        l.push(
            "These may be deleted by running duplicity with the \"cleanup\" command.".to_string(),
        );
    } else if damaged.is_empty() {
        l.push("No orphaned or incomplete backup sets found.".to_string());
    }
    record_leftovers(&col);
    // duplicity writes these records whatever the verbosity.
    crate::log::machine(
        crate::log::NOTICE,
        crate::log::info_code::GENERIC,
        None,
        &l[0],
    );
    crate::log::machine(
        crate::log::INFO,
        crate::log::info_code::COLLECTION_STATUS,
        Some(&record_data(&col)),
        &l[1..].join("\n"),
    );
    crate::outln!("{}", l.join("\n"));
    if !damaged.is_empty() {
        return Err(Error::corrupt(format!(
            "{} backup set(s) are damaged (listed above): restore an earlier --time, or run a \
             full backup to start a sound chain",
            damaged.len()
        )));
    }
    Ok(())
}
