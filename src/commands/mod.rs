//! One module per user command.

pub mod backup;
pub mod list;
pub mod remove;
pub mod restore;
pub mod status;

use crate::backend::Backend;
use crate::cache::Cache;
use crate::crypto::Crypto;
use crate::error::{Error, Result};
use crate::format::naming::{Prefixes, Wrapping};
use std::path::PathBuf;

/// What every command needs: the target, the names, the local cache and the clock.
pub struct Context {
    pub backend: Box<dyn Backend>,
    pub prefixes: Prefixes,
    pub cache: Cache,
    pub tempdir: PathBuf,
    pub compression: bool,
    /// Encryption settings; `None` with `--no-encryption`.
    pub crypto: Option<Crypto>,
    pub now: i64,
    pub dry_run: bool,
    pub force: bool,
    pub ignore_errors: bool,
}

impl Context {
    /// Brings the archive dir in line with the target's listing.
    pub fn sync_cache(&self, remote: &[String]) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        self.cache.sync(
            &*self.backend,
            &self.prefixes,
            remote,
            &self.tempdir,
            self.crypto.as_ref(),
        )
    }

    /// How new volumes and signature files are stored.
    pub fn wrap(&self) -> Wrapping {
        if self.crypto.is_some() {
            Wrapping::Gpg
        } else if self.compression {
            Wrapping::Gzip
        } else {
            Wrapping::Plain
        }
    }

    /// Opens a file downloaded from the target, unwrapping it by its name.
    pub fn open_stored(
        &self,
        path: &std::path::Path,
        name: &str,
    ) -> Result<Box<dyn std::io::Read + Send>> {
        crate::codec::open_stored(path, name, self.crypto.as_ref())
    }

    /// A fresh temporary file path under `--tempdir`, removed when dropped.
    pub fn temp_path(&self, what: &str) -> Result<tempfile::TempPath> {
        Ok(tempfile::Builder::new()
            .prefix(&format!("ferrodup-{what}-"))
            .tempfile_in(&self.tempdir)
            .map_err(|e| Error::io(&self.tempdir, e))?
            .into_temp_path())
    }
}
