//! Retries for flaky storage: every operation is tried `--num-retries` times with
//! `--backend-retry-delay` seconds between tries, or as long as the storage asked with
//! `Retry-After` (at most [`MAX_RETRY_AFTER`]). Storage errors are retried: error
//! statuses (500, 502, 503, 504, 429...), reset connections, bodies that break off or stall
//! past `--timeout`. What retrying cannot mend is not retried: missing or corrupt files,
//! bad settings, and local file-system errors (permission denied, disk full).

use super::Backend;
use crate::error::{Kind, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest wait a `Retry-After` answer can impose between two tries.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Wraps a backend with retries.
pub struct Retry<B> {
    inner: B,
    tries: u32,
    delay: Duration,
}

impl<B: Backend> Retry<B> {
    pub fn new(inner: B, tries: u32, delay: Duration) -> Self {
        Retry {
            inner,
            tries: tries.max(1),
            delay,
        }
    }

    fn run<T>(&self, what: &str, mut f: impl FnMut() -> Result<T>) -> Result<T> {
        let mut attempt = 1;
        loop {
            // A wait asked for by an earlier failure does not carry over.
            self.inner.take_retry_after();
            match f() {
                Ok(v) => return Ok(v),
                Err(e) if e.kind() != Kind::Backend => return Err(e),
                Err(e) if attempt >= self.tries => {
                    return Err(
                        e.reword(|m| format!("{what} failed after {attempt} attempt(s): {m}"))
                    )
                }
                Err(e) => {
                    let wait = match self.inner.take_retry_after() {
                        Some(asked) => asked.min(MAX_RETRY_AFTER).max(self.delay),
                        None => self.delay,
                    };
                    crate::log::warn(&format!(
                        "{what} failed (attempt {attempt} of {}): {e}; retrying in {} s",
                        self.tries,
                        wait.as_secs_f64()
                    ));
                    std::thread::sleep(wait);
                    attempt += 1;
                }
            }
        }
    }
}

impl<B: Backend> Backend for Retry<B> {
    fn list(&self) -> Result<Vec<String>> {
        self.run(&format!("listing {}", self.inner.describe()), || {
            self.inner.list()
        })
    }
    fn get(&self, name: &str, dest: &Path) -> Result<()> {
        self.run(&format!("downloading {name}"), || {
            self.inner.get(name, dest)
        })
    }
    fn put(&self, src: &Path, name: &str) -> Result<()> {
        self.run(&format!("uploading {name}"), || self.inner.put(src, name))
    }
    fn put_temporary(&self, src: &Path, name: &str) -> Result<()> {
        self.run(&format!("uploading {name}"), || {
            self.inner.put_temporary(src, name)
        })
    }
    fn delete(&self, name: &str) -> Result<()> {
        self.run(&format!("deleting {name}"), || self.inner.delete(name))
    }
    fn delete_many(&self, names: &[String]) -> Result<()> {
        self.run(&format!("deleting {} file(s)", names.len()), || {
            self.inner.delete_many(names)
        })
    }
    fn size(&self, name: &str) -> Result<Option<u64>> {
        self.run(&format!("querying {name}"), || self.inner.size(name))
    }
    fn local_path(&self, name: &str) -> Option<PathBuf> {
        self.inner.local_path(name)
    }
    fn prepare_download(&self, names: &[String]) -> Result<()> {
        self.run("preparing downloads", || self.inner.prepare_download(names))
    }
    fn is_cold(&self, name: &str) -> bool {
        self.inner.is_cold(name)
    }
    fn list_details(&self) -> Result<Vec<super::Listed>> {
        self.run(&format!("listing {}", self.inner.describe()), || {
            self.inner.list_details()
        })
    }
    fn store_listings(&self) -> Result<Vec<super::StoreListing>> {
        self.run(&format!("listing {}", self.inner.describe()), || {
            self.inner.store_listings()
        })
    }
    fn plan_reads(&self, names: &[String]) -> Result<Vec<super::PlannedRead>> {
        self.run(&format!("listing {}", self.inner.describe()), || {
            self.inner.plan_reads(names)
        })
    }
    fn minimum_storage(&self) -> bool {
        self.inner.minimum_storage()
    }
    fn may_thaw(&self) -> bool {
        self.inner.may_thaw()
    }
    fn check_deletable(&self, names: &[String]) -> Result<()> {
        self.run("checking Object Lock retention", || {
            self.inner.check_deletable(names)
        })
    }
    fn lists_md5(&self) -> bool {
        self.inner.lists_md5()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::super::memory::{Memory, Op};
    use super::*;

    fn file(dir: &Path, data: &[u8]) -> PathBuf {
        let p = dir.join("src");
        std::fs::write(&p, data).unwrap();
        p
    }

    #[test]
    fn storage_faults_are_tried_again_up_to_the_tries() {
        let dir = tempfile::tempdir().unwrap();
        let m = Memory::new("flaky");
        let r = Retry::new(m.clone(), 3, Duration::ZERO);
        m.fail(Op::Put, 2);
        r.put(&file(dir.path(), b"data"), "a").unwrap();
        assert_eq!(m.calls(Op::Put), 3);
        assert_eq!(m.files()["a"], b"data");
        m.fail(Op::Get, 3);
        let e = r.get("a", &dir.path().join("out")).unwrap_err();
        assert_eq!(e.kind(), Kind::Backend);
        assert!(
            e.to_string()
                .starts_with("downloading a failed after 3 attempt(s): "),
            "{e}"
        );
        assert_eq!(m.calls(Op::Get), 3);
        r.get("a", &dir.path().join("out")).unwrap();
        assert_eq!(std::fs::read(dir.path().join("out")).unwrap(), b"data");
    }

    #[test]
    fn what_retrying_cannot_mend_is_tried_once() {
        let dir = tempfile::tempdir().unwrap();
        let m = Memory::new("store");
        let r = Retry::new(m.clone(), 5, Duration::ZERO);
        let e = r.get("absent", &dir.path().join("out")).unwrap_err();
        assert_eq!(e.kind(), Kind::Corrupt);
        assert_eq!(m.calls(Op::Get), 1);
        let e = r.put(&dir.path().join("no-such-file"), "b").unwrap_err();
        assert_eq!(e.kind(), Kind::Io);
        assert_eq!(m.calls(Op::Put), 1);
    }
}
