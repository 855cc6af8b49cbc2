//! `multi://`: duplicity's multi-store backend. A JSON config lists the stores; files go to
//! one store each in turn (`mode=stripe`, the default) or to every store (`mode=mirror`),
//! restricted by each store's `prefixes` (a file whose name starts with one of a store's
//! prefixes goes only to the stores with a matching prefix; a file no prefix matches goes
//! everywhere). This is how manifests and signatures stay on hot storage while volumes go to
//! cold storage: `--file-prefix-manifest hot_ --file-prefix-signature hot_
//! --file-prefix-archive cold_` with a config whose stores have `"prefixes": ["hot_"]` and
//! `["cold_"]`.
//!
//! URL: `multi:///path/to/config.json?mode=mirror&onfail=abort&subpath=x`. With
//! `onfail=continue` (the default) a store that fails is skipped while another can do the
//! work; with `onfail=abort` the first failure stops the command. Each store has its own
//! retries. In mirror mode a file is uploaded to its stores in parallel; with
//! `onfail=abort` a failure is reported once every store has answered, naming the first
//! failing store in config order.

use super::Backend;
use crate::error::{Code, Error, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Stripe,
    Mirror,
}

struct Store {
    backend: Box<dyn Backend>,
    prefixes: Vec<String>,
    /// The config's `description`, else the store's URL.
    name: String,
}

/// Several stores behind one target URL.
pub struct Multi {
    config: PathBuf,
    stores: Vec<Store>,
    mode: Mode,
    abort: bool,
    /// Next store for a striped upload.
    cursor: AtomicUsize,
}

/// The largest multi:// config read: a store list is a few hundred bytes a store.
const CONFIG_LIMIT: u64 = 1 << 20;

/// Reads a config file: a regular file (not a fifo, directory or device) of at most
/// [`CONFIG_LIMIT`] bytes of UTF-8 text.
fn read_config(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other(
            "not a regular file; give a JSON file",
        ));
    }
    let mut text = String::new();
    f.take(CONFIG_LIMIT + 1).read_to_string(&mut text)?;
    if text.len() as u64 > CONFIG_LIMIT {
        return Err(std::io::Error::other(format!(
            "larger than {} KiB, which no store list needs; give the right file",
            CONFIG_LIMIT >> 10
        )));
    }
    Ok(text)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreConfig {
    url: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    env: Vec<EnvVar>,
    #[serde(default)]
    prefixes: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvVar {
    name: String,
    value: String,
}

/// One store of a parsed config, not opened yet.
struct StorePlan {
    url: String,
    env: HashMap<String, String>,
    prefixes: Vec<String>,
    description: Option<String>,
}

/// A multi:// URL and its config, checked but with no store opened.
pub struct MultiConfig {
    config: PathBuf,
    stores: Vec<StorePlan>,
    mode: Mode,
    abort: bool,
}

impl MultiConfig {
    /// Parses `rest`, what follows `multi://` (the config file path and the query), and the
    /// config text that `read` returns for the path.
    pub fn parse(
        rest: &str,
        read: impl FnOnce(&Path) -> std::io::Result<String>,
    ) -> Result<MultiConfig> {
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() {
            return Err(Error::usage(
                "multi:// URL has no config file: use multi:///path/to/config.json?mode=mirror",
            ));
        }
        let config = PathBuf::from(path);
        let mut mode = None;
        let mut onfail = None;
        let mut subpath = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match k {
                "mode" => &mut mode,
                "onfail" => &mut onfail,
                "subpath" => &mut subpath,
                _ => {
                    return Err(Error::usage(format!(
                        "multi:// URL parameter {k:?} is unknown: use mode, onfail or subpath"
                    )))
                }
            };
            if slot.replace(v.to_string()).is_some() {
                return Err(Error::usage(format!(
                    "multi:// URL parameter {k:?} is given twice"
                )));
            }
        }
        let mode = match mode.as_deref() {
            None | Some("stripe") => Mode::Stripe,
            Some("mirror") => Mode::Mirror,
            Some(m) => {
                return Err(Error::usage(format!(
                    "multi:// mode {m:?} is unknown: use mode=stripe or mode=mirror"
                )))
            }
        };
        let abort = match onfail.as_deref() {
            None | Some("continue") => false,
            Some("abort") => true,
            Some(o) => {
                return Err(Error::usage(format!(
                    "multi:// onfail {o:?} is unknown: use onfail=continue or onfail=abort"
                )))
            }
        };
        let text = read(&config).map_err(|e| {
            Error::usage(format!(
                "cannot read the multi:// config {}: {e}",
                config.display()
            ))
        })?;
        let entries: Vec<StoreConfig> = serde_json::from_str(&text).map_err(|e| {
            Error::usage(format!(
                "multi:// config {} is not a valid store list: {e} (expected a JSON list of \
                 {{\"url\": ..., \"prefixes\": [...], \"env\": [{{\"name\": ..., \"value\": \
                 ...}}]}})",
                config.display()
            ))
        })?;
        if entries.is_empty() {
            return Err(Error::usage(format!(
                "multi:// config {} lists no stores",
                config.display()
            )));
        }
        let mut stores = Vec::new();
        for (k, entry) in entries.into_iter().enumerate() {
            if mode == Mode::Stripe && !entry.prefixes.is_empty() {
                return Err(Error::usage(format!(
                    "multi:// config {}: store {} has prefixes, which only mode=mirror \
                     supports (duplicity refuses them with stripe too)",
                    config.display(),
                    k + 1
                )));
            }
            let url = format!("{}{}", entry.url, subpath.as_deref().unwrap_or(""));
            if url.starts_with("multi://") {
                return Err(Error::usage(format!(
                    "multi:// config {}: store {} is itself multi://",
                    config.display(),
                    k + 1
                )));
            }
            stores.push(StorePlan {
                url,
                env: entry.env.into_iter().map(|v| (v.name, v.value)).collect(),
                prefixes: entry.prefixes,
                description: entry.description,
            });
        }
        Ok(MultiConfig {
            config,
            stores,
            mode,
            abort,
        })
    }
}

impl Multi {
    /// `rest` is what follows `multi://`: the config file path and the query.
    pub fn open(rest: &str, opts: &super::Options) -> Result<Multi> {
        let plan = MultiConfig::parse(rest, read_config)?;
        let mut stores = Vec::new();
        for s in plan.stores {
            let backend = super::open_store(&s.url, &s.env, opts)?;
            stores.push(Store {
                name: match s.description {
                    Some(d) => format!("{d} ({})", backend.describe()),
                    None => backend.describe(),
                },
                backend,
                prefixes: s.prefixes,
            });
        }
        Ok(Multi {
            config: plan.config,
            stores,
            mode: plan.mode,
            abort: plan.abort,
            cursor: AtomicUsize::new(0),
        })
    }

    /// The stores a file of this name belongs in, in config order.
    fn eligible(&self, name: &str) -> Vec<&Store> {
        let matching: Vec<&Store> = self
            .stores
            .iter()
            .filter(|s| s.prefixes.iter().any(|p| name.starts_with(p.as_str())))
            .collect();
        if matching.is_empty() {
            self.stores.iter().collect()
        } else {
            matching
        }
    }

    /// Handles a store's failure: fatal with `onfail=abort`, a warning otherwise.
    fn failed(&self, store: &Store, what: &str, e: Error) -> Result<()> {
        if self.abort {
            return Err(Self::aborted(store, what, e));
        }
        crate::log::warn(&format!(
            "{what} on {} failed: {e}; going on with the other stores (onfail=continue)",
            store.name
        ));
        Ok(())
    }

    fn aborted(store: &Store, what: &str, e: Error) -> Error {
        e.reword(|m| {
            format!(
                "{what} on {} failed: {m} (the multi:// target has onfail=abort; fix the store \
                 or use onfail=continue to go on without it)",
                store.name
            )
        })
    }

    /// The first of `stores` that holds `name` already.
    fn holder<'s>(&self, stores: &[&'s Store], name: &str) -> Result<Option<&'s Store>> {
        for s in stores {
            match s.backend.size(name) {
                Ok(Some(_)) => return Ok(Some(s)),
                Ok(None) => {}
                Err(e) => self.failed(s, &format!("looking for {name}"), e)?,
            }
        }
        Ok(None)
    }

    /// A failed upload's error, reworded as [`Multi::aborted`] words it with onfail=abort.
    fn aborted_or(abort: bool, store: &Store, name: &str, e: Error) -> Error {
        if abort {
            Self::aborted(store, &format!("uploading {name}"), e)
        } else {
            e
        }
    }

    /// Uploads to every store at once; the results are in store order.
    fn put_everywhere(stores: &[&Store], src: &Path, name: &str, len: u64) -> Vec<Result<()>> {
        if let [only] = stores {
            return vec![Self::put_checked(only, src, name, len)];
        }
        std::thread::scope(|scope| {
            let uploads: Vec<_> = stores
                .iter()
                .map(|s| scope.spawn(move || Self::put_checked(s, src, name, len)))
                .collect();
            uploads
                .into_iter()
                .map(|u| {
                    u.join().unwrap_or_else(|_| {
                        Err(Error::backend(format!("the upload of {name} panicked")))
                    })
                })
                .collect()
        })
    }

    fn put_checked(store: &Store, src: &Path, name: &str, len: u64) -> Result<()> {
        super::put_checked(&*store.backend, src, name, len, &store.name)
    }
}

impl Backend for Multi {
    fn list(&self) -> Result<Vec<String>> {
        let mut all = BTreeSet::new();
        for s in &self.stores {
            match s.backend.list() {
                Ok(names) => all.extend(names),
                Err(e) => self.failed(s, "listing", e)?,
            }
        }
        Ok(all.into_iter().collect())
    }

    fn get(&self, name: &str, dest: &Path) -> Result<()> {
        let mut last = None;
        for s in self.eligible(name) {
            match s.backend.size(name) {
                Ok(Some(_)) => match s.backend.get(name, dest) {
                    Ok(()) => return Ok(()),
                    Err(e) if !self.abort => {
                        crate::log::warn(&format!(
                            "downloading {name} from {} failed: {e}; trying the other stores",
                            s.name
                        ));
                        last = Some(e);
                    }
                    Err(e) => return Err(Self::aborted(s, &format!("downloading {name}"), e)),
                },
                Ok(None) => {}
                Err(e) => {
                    self.failed(s, &format!("looking for {name}"), e)?;
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::corrupt(format!(
                "{name} is missing from every store of {}: the backup set is incomplete",
                self.describe()
            ))
            .with_code(Code::Generic)
        }))
    }

    fn put(&self, src: &Path, name: &str) -> Result<()> {
        let len = std::fs::metadata(src).map_err(|e| Error::io(src, e))?.len();
        let stores = self.eligible(name);
        match self.mode {
            Mode::Stripe => {
                // A file stored already is replaced where it is, so that no store keeps an
                // older copy that a read could find first.
                if let Some(holder) = self.holder(&stores, name)? {
                    return Self::put_checked(holder, src, name, len)
                        .map_err(|e| Self::aborted_or(self.abort, holder, name, e));
                }
                // Taken and advanced at once, so that parallel uploads go to the stores in
                // turn too.
                let start = self.cursor.fetch_add(1, Ordering::SeqCst);
                let mut last = None;
                for k in 0..stores.len() {
                    let s = stores[(start + k) % stores.len()];
                    match Self::put_checked(s, src, name, len) {
                        Ok(()) => {
                            // The next file goes to the store after the one that took it.
                            self.cursor.fetch_add(k, Ordering::SeqCst);
                            return Ok(());
                        }
                        Err(e) if self.abort => {
                            return Err(Self::aborted(s, &format!("uploading {name}"), e))
                        }
                        Err(e) => {
                            crate::log::warn(&format!(
                                "uploading {name} to {} failed: {e}; trying the next store",
                                s.name
                            ));
                            last = Some(e);
                        }
                    }
                }
                Err(last.unwrap_or_else(|| Error::backend("no store to upload to")))
            }
            Mode::Mirror => {
                let results = Self::put_everywhere(&stores, src, name, len);
                let mut stored = 0;
                let mut last = None;
                for (s, result) in stores.iter().zip(results) {
                    match result {
                        Ok(()) => stored += 1,
                        Err(e) if self.abort => {
                            return Err(Self::aborted(s, &format!("uploading {name}"), e))
                        }
                        Err(e) => {
                            crate::log::warn(&format!(
                                "uploading {name} to {} failed: {e}; the other stores keep a copy",
                                s.name
                            ));
                            last = Some(e);
                        }
                    }
                }
                match (stored, last) {
                    (0, Some(e)) => Err(e),
                    _ => Ok(()),
                }
            }
        }
    }

    fn delete(&self, name: &str) -> Result<()> {
        for s in self.eligible(name) {
            if let Err(e) = s.backend.delete(name) {
                self.failed(s, &format!("deleting {name}"), e)?;
            }
        }
        Ok(())
    }

    /// Each store deletes, at once, those of `names` that belong in it.
    fn delete_many(&self, names: &[String]) -> Result<()> {
        for (i, s) in self.stores.iter().enumerate() {
            let mine: Vec<String> = names
                .iter()
                .filter(|n| {
                    self.eligible(n)
                        .iter()
                        .any(|e| std::ptr::eq(*e, &self.stores[i]))
                })
                .cloned()
                .collect();
            if mine.is_empty() {
                continue;
            }
            if let Err(e) = s.backend.delete_many(&mine) {
                self.failed(s, &format!("deleting {} file(s)", mine.len()), e)?;
            }
        }
        Ok(())
    }

    fn size(&self, name: &str) -> Result<Option<u64>> {
        for s in self.eligible(name) {
            match s.backend.size(name) {
                Ok(Some(n)) => return Ok(Some(n)),
                Ok(None) => {}
                Err(e) => self.failed(s, &format!("looking for {name}"), e)?,
            }
        }
        Ok(None)
    }

    /// Mirror: each store's own listing, holding the files routed to it. Stripe: one
    /// listing of every store's files, since each file is on one of them.
    fn store_listings(&self) -> Result<Vec<super::StoreListing>> {
        let routes: Vec<Vec<String>> = self.stores.iter().map(|s| s.prefixes.clone()).collect();
        let routes = std::sync::Arc::new(routes);
        let mut out: Vec<super::StoreListing> = Vec::new();
        for (i, s) in self.stores.iter().enumerate() {
            let entries = match s.backend.list_details() {
                Ok(e) => e,
                Err(e) => {
                    self.failed(s, "listing", e)?;
                    continue;
                }
            };
            if self.mode == Mode::Stripe {
                match out.first_mut() {
                    Some(all) => all.entries.extend(entries),
                    None => out.push(super::StoreListing {
                        store: self.describe(),
                        entries,
                        holds: Box::new(|_: &str| true),
                    }),
                }
                continue;
            }
            let routes = routes.clone();
            out.push(super::StoreListing {
                store: s.name.clone(),
                entries,
                holds: Box::new(move |name: &str| {
                    let routed = |r: &Vec<String>| r.iter().any(|p| name.starts_with(p.as_str()));
                    routed(&routes[i]) || !routes.iter().any(routed)
                }),
            });
        }
        Ok(out)
    }

    fn mirror_store(&self, store: &str) -> Option<&dyn Backend> {
        self.stores
            .iter()
            .find(|s| s.name == store && self.mode == Mode::Mirror)
            .map(|s| &*s.backend)
    }

    /// Each file from the first store that holds it, in config order, as `get` reads it.
    fn plan_reads(&self, names: &[String]) -> Result<Vec<super::PlannedRead>> {
        let mut found: BTreeMap<String, super::PlannedRead> = BTreeMap::new();
        for s in &self.stores {
            let mine: Vec<String> = names
                .iter()
                .filter(|n| !found.contains_key(*n))
                .filter(|n| self.eligible(n).iter().any(|e| std::ptr::eq(*e, s)))
                .cloned()
                .collect();
            if mine.is_empty() {
                continue;
            }
            match s.backend.plan_reads(&mine) {
                Ok(plan) => {
                    for mut p in plan {
                        p.store = s.name.clone();
                        found.insert(p.name.clone(), p);
                    }
                }
                Err(e) => self.failed(s, "listing", e)?,
            }
        }
        Ok(names.iter().filter_map(|n| found.remove(n)).collect())
    }

    fn check_deletable(&self, names: &[String]) -> Result<()> {
        for s in &self.stores {
            let mine: Vec<String> = names
                .iter()
                .filter(|n| self.eligible(n).iter().any(|e| std::ptr::eq(*e, s)))
                .cloned()
                .collect();
            if !mine.is_empty() {
                s.backend
                    .check_deletable(&mine)
                    .map_err(|e| e.reword(|m| format!("{}: {m}", s.name)))?;
            }
        }
        Ok(())
    }

    fn may_thaw(&self) -> bool {
        self.stores.iter().any(|s| s.backend.may_thaw())
    }

    fn minimum_storage(&self) -> bool {
        self.stores.iter().any(|s| s.backend.minimum_storage())
    }

    fn lists_md5(&self) -> bool {
        self.stores.iter().any(|s| s.backend.lists_md5())
    }

    /// Cold when every store a read would try is.
    fn is_cold(&self, name: &str) -> bool {
        self.eligible(name).iter().all(|s| s.backend.is_cold(name))
    }

    fn prepare_download(&self, names: &[String]) -> Result<()> {
        for s in &self.stores {
            let held: BTreeSet<String> = match s.backend.list() {
                Ok(l) => l.into_iter().collect(),
                Err(e) => {
                    self.failed(s, "listing", e)?;
                    continue;
                }
            };
            let mine: Vec<String> = names
                .iter()
                .filter(|n| held.contains(*n))
                .cloned()
                .collect();
            if !mine.is_empty() {
                s.backend.prepare_download(&mine)?;
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "multi://{} ({} stores, {})",
            self.config.display(),
            self.stores.len(),
            if self.mode == Mode::Mirror {
                "mirror"
            } else {
                "stripe"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::memory::{Memory, Op};
    use super::*;
    use std::sync::Arc;

    fn multi(stores: &[&Arc<Memory>], mode: Mode, abort: bool) -> Multi {
        Multi {
            config: PathBuf::from("test.json"),
            stores: stores
                .iter()
                .map(|m| Store {
                    backend: Box::new(Arc::clone(m)),
                    prefixes: Vec::new(),
                    name: m.describe(),
                })
                .collect(),
            mode,
            abort,
            cursor: AtomicUsize::new(0),
        }
    }

    fn file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    #[test]
    fn a_mirror_goes_on_without_a_failing_store_or_stops_with_abort() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Memory::new("a"), Memory::new("b"));
        let src = file(dir.path(), "src", b"volume");
        b.fail(Op::Put, 1);
        multi(&[&a, &b], Mode::Mirror, false)
            .put(&src, "v1")
            .unwrap();
        assert!(a.files().contains_key("v1") && !b.files().contains_key("v1"));
        // A read finds the copy the failing store lacks, and one the first store cannot
        // give is read from the other.
        let m = multi(&[&b, &a], Mode::Mirror, false);
        m.get("v1", &dir.path().join("out")).unwrap();
        assert_eq!(std::fs::read(dir.path().join("out")).unwrap(), b"volume");
        multi(&[&a, &b], Mode::Mirror, false)
            .put(&src, "v2")
            .unwrap();
        a.fail(Op::Get, 1);
        m.get("v2", &dir.path().join("out2")).unwrap();
        b.fail(Op::Put, 1);
        let e = multi(&[&a, &b], Mode::Mirror, true)
            .put(&src, "v3")
            .unwrap_err();
        assert!(e.to_string().contains("onfail=abort"), "{e}");
    }

    #[test]
    fn a_stripe_spreads_parallel_uploads_evenly() {
        let dir = tempfile::tempdir().unwrap();
        let stores = [Memory::new("a"), Memory::new("b"), Memory::new("c")];
        let m = multi(&[&stores[0], &stores[1], &stores[2]], Mode::Stripe, true);
        let src = file(dir.path(), "src", b"x");
        std::thread::scope(|s| {
            for t in 0..8 {
                let (m, src) = (&m, &src);
                s.spawn(move || {
                    for i in 0..30 {
                        m.put(src, &format!("f-{t}-{i}")).unwrap();
                    }
                });
            }
        });
        for s in &stores {
            assert_eq!(s.files().len(), 80, "{}", s.describe());
        }
    }

    #[test]
    fn a_stripe_replaces_a_file_where_it_is_and_fails_over_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Memory::new("a"), Memory::new("b"));
        let m = multi(&[&a, &b], Mode::Stripe, false);
        m.put(&file(dir.path(), "old", b"old"), "manifest").unwrap();
        m.put(&file(dir.path(), "other", b"other"), "other")
            .unwrap();
        m.put(&file(dir.path(), "new", b"new"), "manifest").unwrap();
        assert_eq!(
            a.files().get("manifest").map(Vec::as_slice),
            Some(&b"new"[..])
        );
        assert!(!b.files().contains_key("manifest"));
        // With onfail=continue, a store that fails an upload passes it to the next.
        let next = if m.cursor.load(Ordering::SeqCst) % 2 == 0 {
            &a
        } else {
            &b
        };
        next.fail(Op::Put, 1);
        m.put(&file(dir.path(), "v", b"v"), "v").unwrap();
        let holders = [&a, &b]
            .iter()
            .filter(|s| s.files().contains_key("v"))
            .count();
        assert_eq!(holders, 1);
        assert!(!next.files().contains_key("v"));
    }
}
