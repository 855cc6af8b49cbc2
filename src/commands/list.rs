//! `list-current-files`: the paths present at `--time`, read from signatures only.

use crate::codec;
use crate::collection::Collection;
use crate::commands::Context;
use crate::error::{Error, Result};
use crate::sigstate::SigOverlay;
use std::io::Write;

pub fn run(ctx: &Context, time: i64) -> Result<()> {
    let remote = ctx.backend.list()?;
    ctx.sync_cache(&remote)?;
    let col = Collection::from_names(&ctx.prefixes, &remote);
    if col.chains.is_empty() {
        return Err(Error::input(format!(
            "no backup found at {} (check the URL and the --file-prefix options)",
            ctx.backend.describe()
        )));
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
    while let Some(e) = overlay.next_entry()? {
        let path = if e.index.is_empty() {
            b".".to_vec()
        } else {
            e.index.clone()
        };
        let _ = write!(out, "{} ", crate::format::time::pretty(e.header.mtime));
        let _ = out.write_all(&path);
        let _ = out.write_all(b"\n");
    }
    out.flush()
        .map_err(|e| Error::Io(format!("writing to standard output: {e}")))
}
