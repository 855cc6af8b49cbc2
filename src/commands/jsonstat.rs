//! `collection-status --jsonstat --show-changes-in-set N`: the statistics stored with each
//! set and the files it changed (from its manifest's file list), as duplicity prints them.

use crate::codec;
use crate::collection::{BackupSet, Collection};
use crate::commands::Context;
use crate::error::{Error, Result};
use crate::format::naming::Wrapping;
use crate::format::pyjson::Json;
use crate::format::time;
use std::io::Read;

/// The sets of the newest chain, newest first, that index `n` selects: `n` counts back
/// from the newest set; a negative `n` takes them all.
fn chosen_sets(col: &Collection, n: i64) -> Result<Vec<&BackupSet>> {
    let Some(chain) = col.last_chain() else {
        return Ok(Vec::new());
    };
    let sets: Vec<&BackupSet> = chain.sets().collect::<Vec<_>>().into_iter().rev().collect();
    if n < 0 {
        return Ok(sets);
    }
    match usize::try_from(n).ok().and_then(|i| sets.get(i)) {
        Some(s) => Ok(vec![*s]),
        None => Err(Error::usage(format!(
            "--show-changes-in-set {n}: the newest chain has {} backup set(s); give 0 (the \
             newest) to {}, or -1 for all",
            sets.len(),
            sets.len() - 1,
        ))),
    }
}

/// The `(type, path)` file list of a set's manifest, paths quoted as the manifest has them.
fn files_changed(ctx: &Context, set: &BackupSet) -> Result<Vec<(String, String)>> {
    Ok(
        crate::commands::changes::manifest_changes(ctx, set.manifest.as_deref())?
            .into_iter()
            .map(|(kind, path)| (kind, String::from_utf8_lossy(&path).into_owned()))
            .collect(),
    )
}

/// A jsonstat record is under 2 KiB; a larger file is not read into memory.
const MAX_JSONSTAT: u64 = 16 << 20;

/// The JSON stored with a set by `--jsonstat`: the archive dir's copy, else the target's;
/// an empty object when the target has none for the set.
fn stored_jsonstat(ctx: &Context, set: &BackupSet) -> Result<Json> {
    let local_name = ctx.prefixes.jsonstat(set.times(), false, Wrapping::Gzip);
    let local = ctx.cache.path(&local_name);
    let (reader, shown): (Box<dyn Read + Send>, String) =
        if set.jsonstat.is_some() && local.is_file() {
            (
                codec::open_stored(&local, &local_name, None)?,
                local.display().to_string(),
            )
        } else if let Some(name) = &set.jsonstat {
            let tmp = ctx.temp_path("jsonstat")?;
            ctx.backend.get(name, &tmp)?;
            (ctx.open_stored(&tmp, name)?, name.clone())
        } else {
            crate::log::info("No jsonstat file found, return empty.");
            return Ok(Json::Object(Vec::new()));
        };
    let mut text = String::new();
    reader
        .take(MAX_JSONSTAT + 1)
        .read_to_string(&mut text)
        .map_err(|e| Error::corrupt(format!("cannot read statistics file {shown}: {e}")))?;
    if text.len() as u64 > MAX_JSONSTAT {
        return Err(Error::corrupt(format!(
            "statistics file {shown} is too large (over {MAX_JSONSTAT} bytes, which no backup \
             writes); delete it, or run without --jsonstat"
        )));
    }
    Json::parse(&text).map_err(|e| {
        Error::corrupt(format!(
            "statistics file {shown} is not valid JSON ({e}); delete it, or run without \
             --jsonstat"
        ))
    })
}

/// The JSON duplicity prints for `collection-status --jsonstat --show-changes-in-set N`.
pub fn json(ctx: &Context, col: &Collection, n: i64) -> Result<String> {
    if col.last_chain().is_none() {
        return Ok(String::new());
    }
    let mut out = Vec::new();
    for set in chosen_sets(col, n)? {
        let kind = if set.times().is_full() { "full" } else { "inc" };
        let name = format!("{kind}-{}", time::to_string(set.times().end()));
        let mut files: Vec<(String, Json)> = Vec::new();
        for (kind, path) in files_changed(ctx, set)? {
            match files.iter_mut().find(|(p, _)| *p == path) {
                Some(entry) => entry.1 = Json::Str(kind),
                None => files.push((path, Json::Str(kind))),
            }
        }
        out.push((
            name,
            Json::Object(vec![
                ("json_stat".into(), stored_jsonstat(ctx, set)?),
                ("files_changed".into(), Json::Object(files)),
            ]),
        ));
    }
    Ok(Json::Object(out).dumps())
}
