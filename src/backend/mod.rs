//! Storage backends behind one small trait. Cross-cutting behaviour (retries; later
//! multi-store routing and cold-storage thawing) wraps a backend instead of living in callers.

mod file;
mod retry;

pub use file::FileBackend;
pub use retry::Retry;

use crate::error::{Error, Result};
use std::path::Path;

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

/// Opens the backend for a target URL.
pub fn open(url: &str) -> Result<Box<dyn Backend>> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        Error::usage(format!(
            "{url:?} is not a URL: give a target such as file:///path/to/backups"
        ))
    })?;
    match scheme {
        "file" => Ok(Box::new(FileBackend::new(rest)?)),
        other => Err(Error::usage(format!(
            "unknown URL scheme {other:?} in {url:?}: this version supports file://"
        ))),
    }
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
