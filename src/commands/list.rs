//! `list-current-files`: the paths present at `--time`, read from signatures only.

use crate::codec;
use crate::collection::Collection;
use crate::commands::restore::PathFilter;
use crate::commands::Context;
use crate::error::{Code, Error, Kind, Result};
use crate::select::{Candidate, Decision, TreeFilter};
use crate::sigstate::SigOverlay;
use std::io::Write;

/// Prints the paths present at `time`, restricted by `select` if given (with archive paths,
/// as restore reads them).
pub fn run(ctx: &Context, time: i64, select: Option<&PathFilter>) -> Result<()> {
    let remote = ctx.backend.list()?;
    ctx.sync_cache(&remote)?;
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
        return Err(Error::input(format!(
            "the requested time is before the first backup ({})",
            crate::format::time::pretty(chain.start())
        )));
    }
    let mut files = Vec::new();
    for name in chain.files_until(time) {
        let local = crate::cache::Cache::local_name(&ctx.prefixes, name)
            .map(|l| ctx.cache.path(&l))
            .filter(|p| p.exists());
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
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut filter: TreeFilter<(Vec<u8>, i64)> = TreeFilter::default();
    let mut print = |index: &[u8], mtime: i64| {
        let path = if index.is_empty() { b"." } else { index };
        let _ = write!(out, "{} ", crate::format::time::pretty(mtime));
        let _ = out.write_all(path);
        let _ = out.write_all(b"\n");
    };
    while let Some(e) = overlay.next_entry()? {
        let Some(f) = select else {
            print(&e.index, e.header.mtime);
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
            Decision::Defer => filter.defer(e.index.clone(), (e.index.clone(), e.header.mtime)),
            Decision::Emit => {
                for (index, mtime) in filter.release() {
                    print(&index, mtime);
                }
                print(&e.index, e.header.mtime);
            }
        }
    }
    out.flush()
        .map_err(|e| Error::new(Kind::Io, format!("writing to standard output: {e}")))
}
