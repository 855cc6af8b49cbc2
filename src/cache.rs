//! The local archive dir: plain manifests and gzipped signatures kept beside the target so
//! that incrementals and listings need no download, synchronised with the target as
//! duplicity does it.

use crate::backend::Backend;
use crate::codec;
use crate::crypto::Crypto;
use crate::error::{Error, Result};
use crate::format::naming::{Kind, Prefixes, Wrapping};
use md5::{Digest, Md5};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// One backup's folder in the archive dir.
pub struct Cache {
    pub dir: PathBuf,
}

impl Cache {
    /// `--archive-dir` (default `$XDG_CACHE_HOME/duplicity` or `~/.cache/duplicity`) joined
    /// with `--name` (default: the hex MD5 of the target URL as given).
    pub fn open(archive_dir: Option<&Path>, name: Option<&str>, url: &str) -> Result<Cache> {
        let base = match archive_dir {
            Some(d) => d.to_path_buf(),
            None => {
                if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
                    PathBuf::from(x).join("duplicity")
                } else {
                    let home = std::env::var_os("HOME")
                        .ok_or_else(|| Error::usage("HOME is not set: give --archive-dir"))?;
                    PathBuf::from(home).join(".cache").join("duplicity")
                }
            }
        };
        let name = match name {
            Some(n) => n.to_string(),
            None => codec::hex(&Md5::digest(url.as_bytes())),
        };
        let dir = base.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Cache { dir })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Names of the files in the cache.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut v = Vec::new();
        for ent in std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))? {
            let ent = ent.map_err(|e| Error::io(&self.dir, e))?;
            if let Ok(n) = ent.file_name().into_string() {
                v.push(n);
            }
        }
        v.sort();
        Ok(v)
    }

    /// The cache's name for a remote metadata file: manifests plain, signatures gzipped.
    pub fn local_name(prefixes: &Prefixes, remote: &str) -> Option<String> {
        let p = prefixes.parse(remote)?;
        if p.partial {
            return None;
        }
        match p.kind {
            Kind::Manifest => Some(prefixes.manifest(p.set, false, false)),
            Kind::Signature => Some(prefixes.signature(p.set, false, Wrapping::Gzip)),
            _ => None,
        }
    }

    /// Downloads remote manifests and signatures missing here and deletes local ones the
    /// target no longer has. Encrypted metadata is left for the commands that need it.
    pub fn sync(
        &self,
        backend: &dyn Backend,
        prefixes: &Prefixes,
        remote: &[String],
        tempdir: &Path,
        crypto: Option<&Crypto>,
    ) -> Result<()> {
        let local: HashSet<String> = self.names()?.into_iter().collect();
        let mut wanted = HashSet::new();
        for name in remote {
            let Some(lname) = Self::local_name(prefixes, name) else {
                continue;
            };
            wanted.insert(lname.clone());
            if local.contains(&lname) {
                continue;
            }
            let parsed = prefixes.parse(name).expect("parsed above");
            if parsed.encrypted && crypto.is_none() {
                crate::log::debug(&format!("not caching encrypted {name}"));
                continue;
            }
            crate::log::info(&format!("Copying {name} to local cache."));
            let tmp = tempfile::Builder::new()
                .prefix("ferrodup-sync-")
                .tempfile_in(tempdir)
                .map_err(|e| Error::io(tempdir, e))?;
            backend.get(name, tmp.path())?;
            let dest = self.path(&lname);
            let part = self.path(&format!("{lname}.sync-tmp"));
            if parsed.kind == Kind::Signature && parsed.compressed {
                std::fs::copy(tmp.path(), &part).map_err(|e| Error::io(&part, e))?;
            } else {
                let wrap = if parsed.kind == Kind::Signature {
                    Wrapping::Gzip
                } else {
                    Wrapping::Plain
                };
                let copied = codec::open_stored(tmp.path(), name, crypto)
                    .and_then(|mut r| codec::store(&mut r, &part, wrap, None));
                match copied {
                    Ok(_) => {}
                    // Without the passphrase, encrypted metadata stays uncached; commands
                    // that only need file names still work, the others say what is missing.
                    Err(e) if parsed.encrypted && crypto.is_some_and(|c| !c.can_decrypt()) => {
                        let _ = std::fs::remove_file(&part);
                        crate::log::warn(&format!("not caching {name}: {e}"));
                        continue;
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&part);
                        return Err(e);
                    }
                }
            }
            std::fs::rename(&part, &dest).map_err(|e| Error::io(&dest, e))?;
        }
        for name in local {
            let Some(p) = prefixes.parse(&name) else {
                continue;
            };
            if p.partial || !matches!(p.kind, Kind::Manifest | Kind::Signature) {
                continue;
            }
            if !wanted.contains(&name) {
                crate::log::info(&format!("Deleting local {name} (not on the target)."));
                let path = self.path(&name);
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        Ok(())
    }
}
