//! Storage backends behind one small trait. Cross-cutting behaviour (retries; later
//! multi-store routing and cold-storage thawing) wraps a backend instead of living in callers.

mod aws_creds;
mod file;
#[cfg(test)]
pub(crate) mod memory;
mod multi;
mod par2;
mod rclone;
mod retry;
mod s3;
mod sftp;
mod swift;

pub use file::FileBackend;
pub use multi::{Multi, MultiConfig};
pub use par2::{Par2, Par2Options};
pub use rclone::Rclone;
pub use retry::Retry;
pub use s3::{S3Options, SseOptions, S3};
pub use sftp::{Sftp, SshOptions};
pub use swift::{Swift, SwiftOptions};

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A place that stores backup files by name.
pub trait Backend: Send + Sync {
    /// Names of all files at the target.
    fn list(&self) -> Result<Vec<String>>;
    /// Downloads `name` into the local file `dest`.
    fn get(&self, name: &str, dest: &Path) -> Result<()>;
    /// Uploads the local file `src` as `name`, replacing any file of that name.
    fn put(&self, src: &Path, name: &str) -> Result<()>;
    /// As [`Backend::put`], for a temporary file that nothing else reads or writes and
    /// that is removed after: a local folder on the same file system takes the file
    /// itself instead of a copy.
    fn put_temporary(&self, src: &Path, name: &str) -> Result<()> {
        self.put(src, name)
    }
    /// Deletes `name`; deleting a file that is not there is not an error.
    fn delete(&self, name: &str) -> Result<()>;
    /// Deletes every one of `names` (those not there are no error), in as few requests as
    /// the store allows; in no particular order. By default, one at a time.
    fn delete_many(&self, names: &[String]) -> Result<()> {
        names.iter().try_for_each(|n| self.delete(n))
    }
    /// Size of `name`, or `None` if there is no such file.
    fn size(&self, name: &str) -> Result<Option<u64>>;
    /// The stored file `name` itself, when the store is a local folder: a restore reads it
    /// there instead of copying it first with [`Backend::get`].
    fn local_path(&self, _name: &str) -> Option<PathBuf> {
        None
    }
    /// Called with every file a restore is about to read, before the first `get`, so that
    /// cold storage can start thawing them all at once.
    fn prepare_download(&self, _names: &[String]) -> Result<()> {
        Ok(())
    }
    /// True when reading `name` may first need a thaw of hours (a sealed archive).
    fn is_cold(&self, _name: &str) -> bool {
        false
    }
    /// What the store tells about each file without reading it: size, MD5 where its
    /// listing gives one, and whether it can be read now. By default, the names and a size
    /// request for each.
    fn list_details(&self) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        for name in self.list()? {
            let size = self.size(&name)?;
            out.push(Listed {
                name,
                size,
                ..Listed::default()
            });
        }
        Ok(out)
    }
    /// The store of a multi:// mirror that `store_listings` names `store`, for `check
    /// --repair` to copy a file to it from another; `None` for other targets.
    fn mirror_store(&self, _store: &str) -> Option<&dyn Backend> {
        None
    }
    /// Each store's listing and which files it must hold, for `check`: one for most
    /// backends, one per store of a multi:// mirror.
    fn store_listings(&self) -> Result<Vec<StoreListing>> {
        Ok(vec![StoreListing {
            store: self.describe(),
            entries: self.list_details()?,
            holds: Box::new(|_: &str| true),
        }])
    }
    /// Where each of `names` would be read from and whether it can be read now, for a
    /// restore plan; nothing is asked to thaw. By default, from one listing.
    fn plan_reads(&self, names: &[String]) -> Result<Vec<PlannedRead>> {
        let listed: HashMap<String, Listed> = self
            .list_details()?
            .into_iter()
            .map(|l| (l.name.clone(), l))
            .collect();
        let store = self.describe();
        Ok(names
            .iter()
            .filter_map(|n| listed.get(n))
            .map(|l| PlannedRead {
                name: l.name.clone(),
                store: store.clone(),
                size: l.size,
                state: if l.readable == Some(false) {
                    ReadState::Frozen {
                        wait: "unknown".into(),
                        usd_per_gb: None,
                    }
                } else {
                    ReadState::Now
                },
            })
            .collect())
    }
    /// True when some files may have to be thawed before a read (PCA, S3 archive
    /// classes): restores then plan their reads and keep what they thaw.
    fn may_thaw(&self) -> bool {
        false
    }
    /// Fails, naming the first and how long, when any of `names` may not be deleted yet
    /// (S3 Object Lock): a removal checks this before it deletes anything.
    fn check_deletable(&self, _names: &[String]) -> Result<()> {
        Ok(())
    }
    /// True when its listings may carry minimum storage periods (cold classes), which
    /// `remove-*` and `cleanup` warn about.
    fn minimum_storage(&self) -> bool {
        false
    }
    /// True when listings give the MD5 of files uploaded whole (Swift's and S3's ETags):
    /// backups then record each volume's MD5 in the manifest, for `check`.
    fn lists_md5(&self) -> bool {
        false
    }
    /// A description for messages (the URL without credentials).
    fn describe(&self) -> String;
    /// How long the storage asked to be left alone (`Retry-After` of a 429 or 503) after
    /// the last failure, once; the retry layer waits that long before the next try.
    fn take_retry_after(&self) -> Option<Duration> {
        None
    }
}

/// What a listing tells about one file, without reading it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Listed {
    pub name: String,
    pub size: Option<u64>,
    /// Lowercase hex MD5 of the content, where the listing gives one (the ETag of a file
    /// uploaded whole; not that of a multipart or segmented upload).
    pub md5: Option<String>,
    /// `Some(false)` when a read must wait for a thaw (sealed, or in an archive class and
    /// not restored); `None` when the listing does not say.
    pub readable: Option<bool>,
    /// When it was stored (Unix seconds), where the listing says.
    pub modified: Option<i64>,
    /// Its storage class's minimum storage period in days: deleting it younger is charged
    /// as if it had stayed that long.
    pub min_days: Option<u32>,
    /// What a month of storage of a GB costs in its class, in USD, where the store has a
    /// known price list.
    pub usd_per_gb_month: Option<f64>,
}

/// A time of a listing (`2026-11-30T11:12:37.000Z` from S3, `2026-11-30T22:23:29.177650`
/// from Swift, both UTC) in Unix seconds.
pub(crate) fn listing_time(s: &str) -> Option<i64> {
    crate::format::time::from_string(&format!("{}Z", s.get(..19)?))
}

/// A file a restore will read: from which store, its size, and when it can be read.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedRead {
    pub name: String,
    pub store: String,
    pub size: Option<u64>,
    pub state: ReadState,
}

/// Whether a file can be read now.
#[derive(Clone, Debug, PartialEq)]
pub enum ReadState {
    Now,
    /// A thaw was asked for already (by an earlier run): ready in about this long, if
    /// the store says.
    Thawing {
        ready_in: Option<Duration>,
    },
    /// Archived: a read first asks for a thaw, which takes `wait` (as the store documents
    /// it) and costs `usd_per_gb` where the store has a known price list.
    Frozen {
        wait: String,
        usd_per_gb: Option<f64>,
    },
}

/// One store's listing and which files it must hold.
pub struct StoreListing {
    /// The store, for messages.
    pub store: String,
    pub entries: Vec<Listed>,
    /// True for the names this store must hold.
    pub holds: Box<dyn Fn(&str) -> bool + Send + Sync>,
}

/// How backends are opened: retries, and settings of particular kinds of storage.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Tries per operation (`--num-retries`).
    pub tries: u32,
    /// Pause between tries (`--backend-retry-delay`).
    pub delay: Duration,
    /// Connection and stall limit of network storage (`--timeout`): connecting, and each
    /// read or write on an open connection, fail after this long without progress.
    pub timeout: Duration,
    /// `--min-storage-days`: the minimum storage period of cold objects, instead of
    /// their class's.
    pub min_storage_days: Option<u32>,
    /// Transfers a store runs at once (`--concurrency`): segments of one Swift large
    /// object, SFTP connections. 0 counts as 1.
    pub transfers: usize,
    pub s3: S3Options,
    pub ssh: SshOptions,
    pub swift: SwiftOptions,
    pub tls: TlsOptions,
    /// `par2+` targets' recovery files.
    pub par2: Par2Options,
}

/// How HTTPS storage (Swift, S3) checks the server's certificate.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// `--ssl-cacert-file`: a PEM bundle of the certificate authorities to trust.
    pub cacert_file: Option<PathBuf>,
    /// `--ssl-cacert-path`: a folder of PEM files of certificate authorities to trust.
    pub cacert_path: Option<PathBuf>,
    /// `--ssl-no-check-certificate`: accept any certificate.
    pub no_check: bool,
}

/// Runs `job` for each of `todo` (part numbers of one object) on up to `workers` threads,
/// each taking the next number not yet taken; `done` gets every result as it comes. At
/// the first error no new part starts, and that error is returned; `stopped` names the
/// object for a worker that panicked.
pub(crate) fn upload_parts_in_parallel<T>(
    todo: &[usize],
    workers: usize,
    job: impl Fn(usize) -> Result<T> + Sync,
    done: impl Fn(usize, T) + Sync,
    stopped: &str,
) -> Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let workers = workers.clamp(1, todo.len().max(1));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    while !failed.load(Ordering::SeqCst) {
                        let Some(&k) = todo.get(next.fetch_add(1, Ordering::SeqCst)) else {
                            break;
                        };
                        match job(k) {
                            Ok(v) => done(k, v),
                            Err(e) => {
                                failed.store(true, Ordering::SeqCst);
                                return Err(e);
                            }
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join().unwrap_or_else(|_| {
                Err(Error::backend(format!("{stopped}: a part upload stopped")))
            })
        })
    })
}

/// Opens the backend for a target URL.
pub fn open(url: &str, opts: &Options) -> Result<Box<dyn Backend>> {
    if let Some(wrapped) = url.strip_prefix("par2+") {
        return Ok(Box::new(Par2::new(open(wrapped, opts)?, &opts.par2)?));
    }
    if let Some(rest) = url.strip_prefix("multi://") {
        // Each store retries on its own, so that a failing store is tried again before
        // the others take over.
        return Ok(Box::new(Multi::open(rest, opts)?));
    }
    open_store(url, &HashMap::new(), opts)
}

/// Opens a store from the part of its URL after `scheme://`, with its settings.
type Opener = fn(scheme: &'static str, rest: &str, &Settings, &Options) -> Result<Box<dyn Backend>>;

/// A store's own environment (the `env` of a multi:// config entry), looked up before the
/// process environment by backends that take credentials.
pub type Settings = HashMap<String, String>;

/// Every store kind by URL scheme: a new backend is its module and one line here.
const SCHEMES: &[(&[&str], Opener)] = &[
    (&["file"], |_, rest, settings, _| {
        if !settings.is_empty() {
            crate::log::warn(&format!(
                "file://{}: file:// takes no settings; the env entries {:?} have no effect",
                redact(rest),
                settings.keys().collect::<Vec<_>>()
            ));
        }
        Ok(Box::new(FileBackend::new(rest)?))
    }),
    (&["swift", "pca"], |scheme, rest, settings, opts| {
        Ok(Box::new(Swift::open(scheme, rest, settings, opts)?))
    }),
    (&["s3", "boto3+s3"], |_, rest, settings, opts| {
        Ok(Box::new(S3::open(rest, settings, opts)?))
    }),
    (&["rclone"], |_, rest, settings, opts| {
        Ok(Box::new(Rclone::open(rest, settings, opts.timeout)?))
    }),
    (&["sftp", "scp"], |_, rest, settings, opts| {
        Ok(Box::new(Sftp::open(
            rest,
            settings,
            &opts.ssh,
            opts.timeout,
            opts.transfers,
        )?))
    }),
];

/// Opens one store (not multi://) with its own `settings`, behind the retry layer.
pub fn open_store(url: &str, settings: &Settings, opts: &Options) -> Result<Box<dyn Backend>> {
    if let Some(wrapped) = url.strip_prefix("par2+") {
        let inner = open_store(wrapped, settings, opts)?;
        return Ok(Box::new(Par2::new(inner, &opts.par2)?));
    }
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        Error::usage(format!(
            "{:?} is not a URL: give a target such as file:///path/to/backups",
            redact(url)
        ))
    })?;
    let found = SCHEMES
        .iter()
        .find_map(|(names, opener)| Some((*names.iter().find(|n| **n == scheme)?, opener)));
    let Some((scheme, opener)) = found else {
        let known: Vec<String> = SCHEMES
            .iter()
            .flat_map(|(names, _)| names.iter())
            .chain(&["multi", "par2+<url>"])
            .map(|n| format!("{n}://"))
            .collect();
        return Err(Error::usage(format!(
            "unknown URL scheme {scheme:?} in {:?}: this version supports {}",
            redact(url),
            known.join(", ")
        )));
    };
    let inner = opener(scheme, rest, settings, opts)?;
    Ok(Box::new(Retry::new(inner, opts.tries, opts.delay)))
}

/// Uploads the local file `src` (`len` bytes) as `name` and checks that the store then
/// holds that many bytes; `shown` names the store in the error.
pub fn put_checked(b: &dyn Backend, src: &Path, name: &str, len: u64, shown: &str) -> Result<()> {
    b.put(src, name)?;
    match b.size(name)? {
        Some(n) if n == len => Ok(()),
        got => Err(Error::backend(format!(
            "{name} on {shown} has size {got:?} after upload, expected {len}"
        ))),
    }
}

/// `text` with the password of every URL in it (`scheme://user:password@host`) replaced
/// by `***`: every message that shows a URL goes through here.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(k) = rest.find("://") {
        let (head, tail) = rest.split_at(k + 3);
        out.push_str(head);
        // The URL ends at whitespace or a quote. As sftp:// reads it, the credentials end
        // at its last '@' (a password may hold '@' or '/'), and a user name has no '/'
        // (then the '@' and ':' belong to a path).
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let url = &tail[..end];
        match url.rfind('@').and_then(|at| {
            let (user, _) = url[..at].split_once(':')?;
            (!user.contains('/')).then_some((user, at))
        }) {
            Some((user, at)) => {
                out.push_str(user);
                out.push_str(":***");
                out.push_str(&url[at..]);
            }
            None => out.push_str(url),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// An HTTP client for storage: a connection must open, and an open connection must move
/// data, within `timeout`, so that a stalled server fails the try instead of hanging;
/// answers with error statuses are returned, not raised. HTTPS trusts the certificate
/// authorities of `--ssl-cacert-file`/`--ssl-cacert-path`, else those of the bundle
/// `ca_env` names (a variable the store's usual client reads, such as `AWS_CA_BUNDLE`),
/// else the built-in web roots; `--ssl-no-check-certificate` or `insecure` checks nothing.
fn http_agent(
    timeout: Duration,
    tls: &TlsOptions,
    ca_env: Option<(&str, String)>,
    insecure: bool,
) -> Result<ureq::Agent> {
    use ureq::tls::{RootCerts, TlsConfig};
    let t = Some(timeout.max(Duration::from_millis(100)));
    let mut certs = Vec::new();
    if let Some(file) = &tls.cacert_file {
        certs.extend(read_ca_file(file, "--ssl-cacert-file")?);
    }
    if let Some(dir) = &tls.cacert_path {
        certs.extend(read_ca_dir(dir)?);
    }
    if tls.cacert_file.is_none() && tls.cacert_path.is_none() {
        if let Some((var, file)) = ca_env {
            certs.extend(read_ca_file(Path::new(&file), var)?);
        }
    }
    let roots = if certs.is_empty() {
        RootCerts::WebPki
    } else {
        RootCerts::new_with_certs(&certs)
    };
    let tls = TlsConfig::builder()
        .root_certs(roots)
        .disable_verification(tls.no_check || insecure)
        .build();
    Ok(ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(t)
        .timeout_per_read(t)
        .timeout_per_write(t)
        .tls_config(tls)
        .build()
        .into())
}

/// The certificates of a PEM file; `what` names the option or variable that gave it.
fn read_ca_file(file: &Path, what: &str) -> Result<Vec<ureq::tls::Certificate<'static>>> {
    let pem = std::fs::read(file).map_err(|e| {
        Error::usage(format!(
            "{what} {}: {e}; give a readable PEM file of certificate authorities",
            file.display()
        ))
    })?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(Error::usage(format!(
                    "{what} {}: not a PEM certificate file ({e})",
                    file.display()
                )))
            }
        }
    }
    if certs.is_empty() {
        return Err(Error::usage(format!(
            "{what} {}: no certificate in it; give a PEM file with \
             -----BEGIN CERTIFICATE----- blocks",
            file.display()
        )));
    }
    Ok(certs)
}

/// The certificates of every PEM file in a folder (`--ssl-cacert-path`); files that hold
/// none (such as OpenSSL's `.r0` CRL links or notes) are skipped.
fn read_ca_dir(dir: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>> {
    let what = "--ssl-cacert-path";
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::usage(format!(
            "{what} {}: {e}; give a folder of PEM certificate files",
            dir.display()
        ))
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let mut certs = Vec::new();
    for p in paths {
        if let Ok(found) = read_ca_file(&p, what) {
            certs.extend(found);
        }
    }
    if certs.is_empty() {
        return Err(Error::usage(format!(
            "{what} {}: no PEM certificate in this folder",
            dir.display()
        )));
    }
    Ok(certs)
}

/// An error for a request that got no answer. A certificate the client does not trust is
/// a setting to fix, not a failure to retry: its message names the options that fix it.
fn transport_error(e: ureq::Error, what: &str) -> Error {
    let text = redact(&format!("{what}: {e}"));
    let lower = text.to_ascii_lowercase();
    if lower.contains("invalid peer certificate") || lower.contains("certificate verify") {
        Error::usage(format!(
            "{text}: the server's TLS certificate is not trusted; give its certificate \
             authority with --ssl-cacert-file FILE or --ssl-cacert-path DIR, or stop \
             checking with --ssl-no-check-certificate"
        ))
        // Not retried (a setting to fix), but duplicity's status for a backend failure.
        .with_code(crate::error::Code::BackendError)
    } else {
        Error::backend(text)
    }
}

/// An answer's `Retry-After`, in seconds.
fn retry_after_secs(r: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    r.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// The wait an HTTP store asked for (`Retry-After` of a 429 or 503 answer, in seconds:
/// storage does not send HTTP dates) with its last failure, kept for the retry layer.
#[derive(Default)]
struct RetryAfter(std::sync::Mutex<Option<Duration>>);

impl RetryAfter {
    /// Remembers what the failed answer `r` asks for (or that it asks for nothing).
    fn note(&self, r: &ureq::http::Response<ureq::Body>) {
        let asked = matches!(r.status().as_u16(), 429 | 503)
            .then(|| retry_after_secs(r))
            .flatten()
            .map(Duration::from_secs);
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = asked;
    }

    fn take(&self) -> Option<Duration> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Writes the body of a successful HTTP download to `dest`. A body that breaks off, stalls
/// or is shorter than its Content-Length is a storage error (retried); a failure to write
/// `dest` is a local one.
fn save_body(r: &mut ureq::http::Response<ureq::Body>, dest: &Path, what: &str) -> Result<()> {
    let expected: Option<u64> = r
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let mut f = std::fs::File::create(dest).map_err(|e| Error::io(dest, e))?;
    let mut body = r.body_mut().with_config().limit(u64::MAX).reader();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got: u64 = 0;
    loop {
        let n = match std::io::Read::read(&mut body, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::backend(format!(
                    "{what}: the download broke off after {got} bytes: {}",
                    redact(&e.to_string())
                )))
            }
        };
        std::io::Write::write_all(&mut f, &buf[..n]).map_err(|e| Error::io(dest, e))?;
        got += n as u64;
    }
    check_length(what, got, expected)?;
    std::io::Write::flush(&mut f).map_err(|e| Error::io(dest, e))
}

/// A download that ended short of (or past) the size the store announced is a storage
/// error, retried.
fn check_length(what: &str, got: u64, expected: Option<u64>) -> Result<()> {
    match expected {
        Some(len) if len != got => Err(Error::backend(format!(
            "{what}: the download ended after {got} of {len} bytes"
        ))),
        _ => Ok(()),
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
    fn put_temporary(&self, src: &Path, name: &str) -> Result<()> {
        (**self).put_temporary(src, name)
    }
    fn delete(&self, name: &str) -> Result<()> {
        (**self).delete(name)
    }
    fn size(&self, name: &str) -> Result<Option<u64>> {
        (**self).size(name)
    }
    fn local_path(&self, name: &str) -> Option<PathBuf> {
        (**self).local_path(name)
    }
    fn prepare_download(&self, names: &[String]) -> Result<()> {
        (**self).prepare_download(names)
    }
    fn is_cold(&self, name: &str) -> bool {
        (**self).is_cold(name)
    }
    fn list_details(&self) -> Result<Vec<Listed>> {
        (**self).list_details()
    }
    fn store_listings(&self) -> Result<Vec<StoreListing>> {
        (**self).store_listings()
    }
    fn mirror_store(&self, store: &str) -> Option<&dyn Backend> {
        (**self).mirror_store(store)
    }
    fn delete_many(&self, names: &[String]) -> Result<()> {
        (**self).delete_many(names)
    }
    fn plan_reads(&self, names: &[String]) -> Result<Vec<PlannedRead>> {
        (**self).plan_reads(names)
    }
    fn minimum_storage(&self) -> bool {
        (**self).minimum_storage()
    }
    fn check_deletable(&self, names: &[String]) -> Result<()> {
        (**self).check_deletable(names)
    }
    fn may_thaw(&self) -> bool {
        (**self).may_thaw()
    }
    fn lists_md5(&self) -> bool {
        (**self).lists_md5()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn take_retry_after(&self) -> Option<Duration> {
        (**self).take_retry_after()
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(redact("ftp://user:secret@h/x"), "ftp://user:***@h/x");
        assert_eq!(
            redact("in \"sftp://u:p@ss@host:22/d\" and s3://b/k"),
            "in \"sftp://u:***@host:22/d\" and s3://b/k"
        );
        assert_eq!(redact("sftp://user@host/x"), "sftp://user@host/x");
        assert_eq!(redact("no url: a:b@c"), "no url: a:b@c");
        assert_eq!(redact("x://a:b@"), "x://a:***@");
        assert_eq!(redact("sftp://u:pa/ss@h/x"), "sftp://u:***@h/x");
        assert_eq!(redact("s3://b/dir:a@b/c"), "s3://b/dir:a@b/c");
        assert_eq!(redact("file:///x\nftp://u:s@h"), "file:///x\nftp://u:***@h");
    }
}
