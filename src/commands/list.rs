//! `list-current-files`: the paths present at `--time`, read from signatures only.

use crate::codec;
use crate::collection::Collection;
use crate::commands::dupview::View;
use crate::commands::restore::PathFilter;
use crate::commands::Context;
use crate::error::{Code, Error, Kind, Result};
use crate::format::tar::EntryType;
use crate::select::{Candidate, Decision, TreeFilter};
use crate::sigstate::SigOverlay;
use std::io::Write;

/// Prints the paths present at `time`, restricted by `select` if given (with archive paths,
/// as restore reads them).
pub fn run(ctx: &Context, time: i64, select: Option<&PathFilter>) -> Result<()> {
    let remote = ctx.backend.list()?;
    // duplicity's notes around the listing: its warnings about the target, the archive
    // dir's sync, the last full backup date, and the closing line.
    let warn_all = |view: &View| {
        for w in &view.warnings {
            crate::log::out_warn(w);
        }
    };
    let before = ctx.cache.names()?;
    let first = View::new(&ctx.prefixes, &remote, &before);
    warn_all(&first);
    ctx.sync_cache_reporting(&remote, first.chain_span_at(time))?;
    let after = ctx.cache.names()?;
    let view = View::new(&ctx.prefixes, &remote, &after);
    if after != before {
        warn_all(&view);
    }
    crate::log::out_notice(&view.last_full_line());
    let col = Collection::from_names(&ctx.prefixes, &remote);
    if col.chains.is_empty() {
        return Err(Error::input(format!(
            "no backup found at {} (check the URL and the --file-prefix options)",
            ctx.backend.describe()
        ))
        .with_code(Code::Exception));
    }
    let chain = col.sig_chain_at(time).ok_or_else(|| {
        Error::corrupt("no signature files found at the target; run a full backup".to_string())
    })?;
    if time < chain.start() {
        crate::log::out_warn(&format!(
            "No signature chain for the requested time. Using oldest available chain, \
             starting at time {}.",
            crate::format::time::pretty(chain.start())
        ));
    }
    let names = chain.files_until(time);
    let mut files = Vec::new();
    for name in names {
        let local = ctx.cached_copy(name);
        let reader = match local {
            Some(p) => {
                let lname = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("")
                    .to_string();
                codec::open_stored(&p, &lname, None)?
            }
            None => {
                let tmp = ctx
                    .temp_path("sig")?
                    .keep()
                    .map_err(|e| Error::io(&ctx.tempdir, e.error))?;
                ctx.backend.get(name, &tmp)?;
                let r = ctx.open_stored(&tmp, name)?;
                let _ = std::fs::remove_file(&tmp);
                r
            }
        };
        files.push((name.to_string(), reader));
    }
    let mut overlay = SigOverlay::new(files)?;
    let mut out = std::io::BufWriter::new(crate::log::Stdout);
    let mut filter: TreeFilter<(Vec<u8>, i64, EntryType)> = TreeFilter::default();
    let mut print = |index: &[u8], mtime: i64, kind: EntryType| {
        let path = if index.is_empty() { b"." } else { index };
        let pretty = crate::format::time::pretty(mtime);
        let _ = write!(out, "{pretty} ");
        let _ = out.write_all(path);
        let _ = out.write_all(b"\n");
        // duplicity writes this record whatever the verbosity.
        if crate::log::recording() {
            crate::log::machine(
                crate::log::INFO,
                crate::log::info_code::FILE_LIST,
                Some(&format!(
                    "{} {} {}",
                    crate::format::time::to_string(mtime),
                    crate::log::escape(index),
                    kind.duplicity_name()
                )),
                &format!("{pretty} {}", String::from_utf8_lossy(path)),
            );
        }
    };
    while let Some(e) = overlay.next_entry()? {
        if crate::log::stdout_closed() && !crate::log::recording() {
            // Nobody reads the listing any more (`| head`): stop quietly.
            return Ok(());
        }
        let Some(f) = select else {
            print(&e.index, e.header.mtime, e.header.kind);
            continue;
        };
        let c = Candidate {
            index: &e.index,
            kind: e.header.kind,
            mtime: e.header.mtime,
            fs_path: None,
            fs_dev: None,
        };
        match filter.decide(&f.select, &c) {
            Decision::Skip => {}
            Decision::Defer => filter.defer(
                e.index.clone(),
                (e.index.clone(), e.header.mtime, e.header.kind),
            ),
            Decision::Emit => {
                for (index, mtime, kind) in filter.release() {
                    print(&index, mtime, kind);
                }
                print(&e.index, e.header.mtime, e.header.kind);
            }
        }
    }
    out.flush()
        .map_err(|e| Error::new(Kind::Io, format!("writing to standard output: {e}")))?;
    drop(out);
    crate::log::out_notice("Duplicity backup complete.");
    Ok(())
}
