//! Storage backends behind one small trait. Cross-cutting behaviour (retries; later
//! multi-store routing and cold-storage thawing) wraps a backend instead of living in callers.

mod file;
mod multi;
mod retry;
mod s3;
mod sftp;
mod swift;

pub use file::FileBackend;
pub use multi::{Multi, MultiConfig};
pub use retry::Retry;
pub use s3::{S3Options, S3};
pub use sftp::{Sftp, SshOptions};
pub use swift::Swift;

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// A place that stores backup files by name.
pub trait Backend: Send + Sync {
    /// Names of all files at the target.
    fn list(&self) -> Result<Vec<String>>;
    /// Downloads `name` into the local file `dest`.
    fn get(&self, name: &str, dest: &Path) -> Result<()>;
    /// Uploads the local file `src` as `name`, replacing any file of that name.
    fn put(&self, src: &Path, name: &str) -> Result<()>;
    /// Deletes `name`; deleting a file that is not there is not an error.
    fn delete(&self, name: &str) -> Result<()>;
    /// Size of `name`, or `None` if there is no such file.
    fn size(&self, name: &str) -> Result<Option<u64>>;
    /// Called with every file a restore is about to read, before the first `get`, so that
    /// cold storage can start thawing them all at once.
    fn prepare_download(&self, _names: &[String]) -> Result<()> {
        Ok(())
    }
    /// A description for messages (the URL without credentials).
    fn describe(&self) -> String;
}

/// How backends are opened: retries, and settings of particular kinds of storage.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Tries per operation (`--num-retries`).
    pub tries: u32,
    /// Pause between tries (`--backend-retry-delay`).
    pub delay: Duration,
    pub s3: S3Options,
    pub ssh: SshOptions,
}

/// Opens the backend for a target URL.
pub fn open(url: &str, opts: &Options) -> Result<Box<dyn Backend>> {
    if let Some(rest) = url.strip_prefix("multi://") {
        // Each store retries on its own, so that a failing store is tried again before
        // the others take over.
        return Ok(Box::new(Multi::open(rest, opts)?));
    }
    open_store(url, &HashMap::new(), opts)
}

/// Opens one store. `settings` are the store's own environment (the `env` of a multi://
/// config entry), looked up before the process environment by backends that take
/// credentials; `file://` takes none.
fn open_store(
    url: &str,
    settings: &HashMap<String, String>,
    opts: &Options,
) -> Result<Box<dyn Backend>> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        Error::usage(format!(
            "{url:?} is not a URL: give a target such as file:///path/to/backups"
        ))
    })?;
    let inner: Box<dyn Backend> = match scheme {
        "file" => {
            if !settings.is_empty() {
                crate::log::warn(&format!(
                    "{url}: file:// takes no settings; the env entries {:?} have no effect",
                    settings.keys().collect::<Vec<_>>()
                ));
            }
            Box::new(FileBackend::new(rest)?)
        }
        "swift" => Box::new(Swift::open("swift", rest, settings)?),
        "pca" => Box::new(Swift::open("pca", rest, settings)?),
        "s3" => Box::new(S3::open(rest, settings, &opts.s3)?),
        "sftp" | "scp" => Box::new(Sftp::open(rest, settings, &opts.ssh)?),
        other => {
            return Err(Error::usage(format!(
                "unknown URL scheme {other:?} in {url:?}: this version supports file://, \
                 s3://, sftp://, swift://, pca:// and multi://"
            )))
        }
    };
    Ok(Box::new(Retry::new(inner, opts.tries, opts.delay)))
}

/// Writes the body of a successful HTTP download to `dest`.
fn save_body(r: &mut ureq::http::Response<ureq::Body>, dest: &Path, what: &str) -> Result<()> {
    let mut f = std::fs::File::create(dest).map_err(|e| Error::io(dest, e))?;
    let mut body = r.body_mut().with_config().limit(u64::MAX).reader();
    std::io::copy(&mut body, &mut f).map_err(|e| Error::backend(format!("{what}: {e}")))?;
    std::io::Write::flush(&mut f).map_err(|e| Error::io(dest, e))
}

impl Backend for Box<dyn Backend> {
    fn list(&self) -> Result<Vec<String>> {
        (**self).list()
    }
    fn get(&self, name: &str, dest: &Path) -> Result<()> {
        (**self).get(name, dest)
    }
    fn put(&self, src: &Path, name: &str) -> Result<()> {
        (**self).put(src, name)
    }
    fn delete(&self, name: &str) -> Result<()> {
        (**self).delete(name)
    }
    fn size(&self, name: &str) -> Result<Option<u64>> {
        (**self).size(name)
    }
    fn prepare_download(&self, names: &[String]) -> Result<()> {
        (**self).prepare_download(names)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}
