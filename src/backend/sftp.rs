//! SFTP (`sftp://user[:password]@host[:port]/path`; `//path` for an absolute path, else
//! relative to the login directory), over SSH with `russh`.
//!
//! Authentication: the URL's password or `FTP_PASSWORD`, else the private keys given with
//! `--ssh-options -oIdentityFile=PATH`, else `~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`.
//! The server's host key must be in `~/.ssh/known_hosts` (or
//! `-oUserKnownHostsFile=PATH`), as with duplicity; `-oStrictHostKeyChecking=no` accepts an
//! unknown key. Uploads go to a temporary name and are renamed into place, so a broken
//! connection never leaves a partial file under a real name.
//!
//! Transfers keep many read or write requests in flight (as OpenSSH's `sftp` does), so a
//! volume does not wait a round trip per request; up to `--concurrency` files (at most
//! 8) move at once, each on a connection of a small pool.

use super::Backend;
use crate::error::{Code, Error, Kind, Result};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg};
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::client::RawSftpSession;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Bytes of one read or write request when the server does not announce its limits
/// (`limits@openssh.com`): every server takes 32 KiB.
const SMALL_REQUEST: u64 = 32 << 10;

/// The largest request sent to a server that announces larger limits.
const LARGE_REQUEST: u64 = 256 << 10;

/// Bytes of a file's write requests in flight at once: as much as OpenSSH's `sftp` keeps
/// in flight (64 requests of 32 KiB) and as an OpenSSH server's channel window takes.
/// Each request must be answered within `--timeout`, counted from when it is queued, so
/// more would fail on a slow uplink: 2 MiB take 30 s at 70 KB/s.
const WRITE_BYTES: u64 = 2 << 20;

/// Bytes of a file's read requests in flight at once: twice as many, for downlinks are
/// faster (4 MiB take 30 s at 140 KB/s) and restores read one volume after another.
const READ_BYTES: u64 = 4 << 20;

/// Connections at most, whatever `--concurrency` says: each is a login, and sshd's
/// default `MaxStartups 10:30:100` starts refusing logins beyond 10 at once.
const MAX_CONNECTIONS: usize = 8;

/// At most this many requests of a file in flight (OpenSSH's `sftp -R` default).
const MAX_REQUESTS: u64 = 64;

/// SSH settings from `--ssh-options`.
#[derive(Clone, Debug, Default)]
pub struct SshOptions {
    pub identity_files: Vec<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub accept_unknown_hosts: bool,
    /// `--ssh-askpass`: ask for the password on the terminal when the URL and
    /// `FTP_PASSWORD` give none.
    pub askpass: bool,
}

impl SshOptions {
    /// Reads the `-oName=value` / `-o Name=value` options ferrodup understands.
    pub fn parse(s: &str) -> Result<SshOptions> {
        let mut o = SshOptions::default();
        let words: Vec<&str> = s.split_whitespace().collect();
        let mut k = 0;
        while k < words.len() {
            let opt = match words[k] {
                "-o" => {
                    k += 1;
                    words.get(k).copied().unwrap_or("")
                }
                w => w.strip_prefix("-o").unwrap_or(w),
            };
            k += 1;
            let (name, value) = opt.split_once('=').unwrap_or((opt, ""));
            match name.to_ascii_lowercase().as_str() {
                "identityfile" => o.identity_files.push(expand_home(value)),
                "userknownhostsfile" => o.known_hosts = Some(expand_home(value)),
                "stricthostkeychecking" => {
                    o.accept_unknown_hosts = value.eq_ignore_ascii_case("no")
                }
                _ => crate::log::warn(&format!("--ssh-options: {opt:?} is ignored")),
            }
        }
        Ok(o)
    }
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

struct Checker {
    host: String,
    port: u16,
    known_hosts: PathBuf,
    accept_unknown: bool,
    /// Why the host key was refused, for the error message.
    refused: Arc<Mutex<Option<String>>>,
}

impl russh::client::Handler for Checker {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> std::result::Result<bool, Self::Error> {
        let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!(
                "{}:{} presents a host certificate, which ferrodup does not check yet",
                self.host, self.port
            ));
            return Ok(false);
        };
        let why = match russh::keys::check_known_hosts_path(
            &self.host,
            self.port,
            key,
            &self.known_hosts,
        ) {
            Ok(true) => return Ok(true),
            Ok(false) if self.accept_unknown => return Ok(true),
            Ok(false) => format!(
                "the host key of {}:{} is not in {} (add it with `ssh-keyscan -p {} {} >> {}`, \
                 or pass --ssh-options=-oStrictHostKeyChecking=no)",
                self.host,
                self.port,
                self.known_hosts.display(),
                self.port,
                self.host,
                self.known_hosts.display()
            ),
            Err(russh::keys::Error::KeyChanged { line }) => format!(
                "the host key of {}:{} differs from line {line} of {}: refusing to connect \
                 (someone may be intercepting the connection)",
                self.host,
                self.port,
                self.known_hosts.display()
            ),
            Err(e) => format!(
                "cannot check the host key against {}: {e}",
                self.known_hosts.display()
            ),
        };
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        Ok(false)
    }
}

struct Conn {
    sftp: Arc<RawSftpSession>,
    _ssh: russh::client::Handle<Checker>,
    /// Bytes of one read and of one write request.
    read_len: u32,
    write_len: u32,
}

/// How many requests of `len` bytes make `bytes` in flight.
fn window(bytes: u64, len: u32) -> usize {
    (bytes / u64::from(len.max(1))).clamp(1, MAX_REQUESTS) as usize
}

/// The connections: idle ones, and how many are open (idle or in use).
#[derive(Default)]
struct Pool {
    idle: Vec<Conn>,
    open: usize,
}

/// A directory on an SFTP server.
pub struct Sftp {
    rt: tokio::runtime::Runtime,
    user: String,
    password: Option<String>,
    host: String,
    port: u16,
    /// The directory, relative to the login directory unless absolute.
    dir: String,
    opts: SshOptions,
    /// `--timeout`: the limit to log in, and to wait for each SFTP request's answer.
    timeout: std::time::Duration,
    pool: Mutex<Pool>,
    /// Signalled when a connection is given back or closed.
    freed: Condvar,
    /// Connections at most (`--concurrency`, at most [`MAX_CONNECTIONS`]).
    max_conns: usize,
    /// The directory is known to exist (an upload made or found it).
    dir_ready: AtomicBool,
}

fn sftp_error(what: &str, e: SftpError) -> Error {
    Error::backend(format!("{what}: {e}"))
}

fn is_status(e: &SftpError, code: StatusCode) -> bool {
    matches!(e, SftpError::Status(s) if s.status_code == code)
}

fn is_missing(e: &SftpError) -> bool {
    is_status(e, StatusCode::NoSuchFile)
}

impl Sftp {
    /// `rest` is what follows `sftp://`.
    pub fn open(
        rest: &str,
        settings: &HashMap<String, String>,
        opts: &SshOptions,
        timeout: std::time::Duration,
        transfers: usize,
    ) -> Result<Sftp> {
        let (auth, hostpath) = rest.rsplit_once('@').ok_or_else(|| {
            Error::usage("sftp:// URL has no user: use sftp://user[:password]@host[:port]/path")
        })?;
        let (user, password) = match auth.split_once(':') {
            Some((u, p)) => (u.to_string(), Some(p.to_string())),
            None => (auth.to_string(), None),
        };
        let password = password.or_else(|| {
            settings
                .get("FTP_PASSWORD")
                .cloned()
                .or_else(|| std::env::var("FTP_PASSWORD").ok())
        });
        let password = match password {
            None if opts.askpass => Some(
                crate::crypto::prompt_passphrase("SSH password: ", false).map_err(|_| {
                    Error::usage(
                        "--ssh-askpass: there is no terminal to ask for the SSH password on; \
                         put it in FTP_PASSWORD",
                    )
                })?,
            ),
            p => p,
        };
        let (hostport, path) = hostpath.split_once('/').unwrap_or((hostpath, ""));
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse()
                    .map_err(|_| Error::usage(format!("sftp:// port {p:?} is not a number")))?,
            ),
            None => (hostport.to_string(), 22),
        };
        if host.is_empty() || user.is_empty() {
            return Err(Error::usage(
                "sftp:// URL needs a user and a host: sftp://user[:password]@host[:port]/path",
            ));
        }
        let dir = if path.starts_with('/') {
            path.trim_end_matches('/').to_string()
        } else if path.is_empty() {
            ".".to_string()
        } else {
            path.trim_end_matches('/').to_string()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::new(Kind::Io, format!("cannot start the SSH runtime: {e}")))?;
        Ok(Sftp {
            rt,
            user,
            password,
            host,
            port,
            dir,
            opts: opts.clone(),
            timeout: timeout.max(std::time::Duration::from_secs(1)),
            pool: Mutex::default(),
            freed: Condvar::new(),
            max_conns: transfers.clamp(1, MAX_CONNECTIONS),
            dir_ready: AtomicBool::new(false),
        })
    }

    fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }

    async fn connect(&self) -> Result<Conn> {
        let refused = Arc::new(Mutex::new(None));
        let checker = Checker {
            host: self.host.clone(),
            port: self.port,
            known_hosts: self
                .opts
                .known_hosts
                .clone()
                .unwrap_or_else(|| expand_home("~/.ssh/known_hosts")),
            accept_unknown: self.opts.accept_unknown_hosts,
            refused: refused.clone(),
        };
        // A server that stops answering is found by keepalives instead of hanging. The
        // window lets a file's reads in flight arrive without waiting for it to grow.
        let config = Arc::new(russh::client::Config {
            keepalive_interval: Some(self.timeout),
            keepalive_max: 2,
            window_size: 2 * READ_BYTES as u32,
            nodelay: true,
            ..Default::default()
        });
        let target = format!("{}:{}", self.host, self.port);
        let mut ssh = russh::client::connect(config, (self.host.as_str(), self.port), checker)
            .await
            .map_err(
                |e| match refused.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    Some(why) => Error::usage(format!("sftp://{target}: {why}")),
                    None => Error::backend(format!("cannot connect to {target}: {e}")),
                },
            )?;
        let mut ok = false;
        if let Some(p) = &self.password {
            ok = ssh
                .authenticate_password(&self.user, p)
                .await
                .map_err(|e| Error::backend(format!("authenticating at {target}: {e}")))?
                .success();
        }
        if !ok {
            let keys: Vec<PathBuf> = if self.opts.identity_files.is_empty() {
                ["id_ed25519", "id_ecdsa", "id_rsa"]
                    .iter()
                    .map(|k| expand_home(&format!("~/.ssh/{k}")))
                    .filter(|p| p.exists())
                    .collect()
            } else {
                self.opts.identity_files.clone()
            };
            for k in keys {
                let key = russh::keys::load_secret_key(&k, None).map_err(|e| {
                    Error::usage(format!("cannot read the SSH key {}: {e}", k.display()))
                })?;
                let hash = if key.algorithm().is_rsa() {
                    ssh.best_supported_rsa_hash()
                        .await
                        .ok()
                        .flatten()
                        .flatten()
                        .or(Some(HashAlg::Sha256))
                } else {
                    None
                };
                ok = ssh
                    .authenticate_publickey(
                        &self.user,
                        PrivateKeyWithHashAlg::new(Arc::new(key), hash),
                    )
                    .await
                    .map_err(|e| Error::backend(format!("authenticating at {target}: {e}")))?
                    .success();
                if ok {
                    break;
                }
            }
        }
        if !ok {
            return Err(Error::usage(format!(
                "sftp://{}@{target} refused the login: check the password (URL or FTP_PASSWORD) \
                 or the key (--ssh-options=-oIdentityFile=PATH)",
                self.user
            )));
        }
        let channel = ssh
            .channel_open_session()
            .await
            .map_err(|e| Error::backend(format!("opening an SSH channel to {target}: {e}")))?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| Error::backend(format!("starting SFTP on {target}: {e}")))?;
        let what = format!("starting SFTP on {target}");
        let sftp = RawSftpSession::new(channel.into_stream());
        sftp.set_timeout(self.timeout.as_secs());
        let version = sftp.init().await.map_err(|e| sftp_error(&what, e))?;
        let (mut read_len, mut write_len) = (SMALL_REQUEST, SMALL_REQUEST);
        if version
            .extensions
            .contains_key(russh_sftp::extensions::LIMITS)
        {
            let l = sftp.limits().await.map_err(|e| sftp_error(&what, e))?;
            let fit = |announced: u64| match announced {
                0 => LARGE_REQUEST,
                n => n.min(LARGE_REQUEST),
            };
            read_len = fit(l.max_read_len);
            // A write request carries its handle and offset too.
            write_len = fit(l.max_write_len).min(fit(l.max_packet_len).saturating_sub(1024));
        }
        Ok(Conn {
            sftp: Arc::new(sftp),
            _ssh: ssh,
            read_len: read_len.max(1) as u32,
            write_len: write_len.max(1) as u32,
        })
    }

    /// An idle connection, or a new one while fewer than `max_conns` are open; else waits
    /// for one to be given back.
    fn checkout(&self) -> Result<Conn> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(c) = pool.idle.pop() {
                return Ok(c);
            }
            if pool.open < self.max_conns {
                break;
            }
            pool = self.freed.wait(pool).unwrap_or_else(|e| e.into_inner());
        }
        pool.open += 1;
        drop(pool);
        let login = self.rt.block_on(async {
            tokio::time::timeout(self.timeout, self.connect())
                .await
                .map_err(|_| {
                    Error::backend(format!(
                        "logging in to {} took longer than --timeout {} s",
                        self.describe(),
                        self.timeout.as_secs()
                    ))
                })?
        });
        if login.is_err() {
            self.pool.lock().unwrap_or_else(|e| e.into_inner()).open -= 1;
            self.freed.notify_one();
        }
        login
    }

    /// Runs `f` on a connection of the pool; a failed operation closes its connection so
    /// that a retry starts afresh.
    fn with<T>(&self, f: impl AsyncFnOnce(&Conn) -> Result<T>) -> Result<T> {
        let conn = self.checkout()?;
        let r = self.rt.block_on(f(&conn));
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(&r, Err(e) if e.kind() == Kind::Backend) {
            pool.open -= 1;
        } else {
            pool.idle.push(conn);
        }
        drop(pool);
        self.freed.notify_one();
        r
    }
}

/// Closes a file handle, reporting a failure (a write that did not reach the disk).
async fn close(s: &RawSftpSession, handle: String, what: &str) -> Result<()> {
    s.close(handle)
        .await
        .map(|_| ())
        .map_err(|e| sftp_error(what, e))
}

/// Reads the file `handle` (of `size` bytes, if known) into `out`, with requests of
/// `conn.read_len` bytes in flight; returns the bytes read. A short answer is completed
/// before later data is written, so the bytes land in order.
async fn download(
    conn: &Conn,
    handle: &str,
    size: Option<u64>,
    out: &mut std::fs::File,
    dest: &Path,
    what: &str,
) -> Result<u64> {
    type Reply = tokio::task::JoinHandle<std::result::Result<Vec<u8>, SftpError>>;
    let read = |offset: u64, len: u32| -> Reply {
        let (s, h) = (conn.sftp.clone(), handle.to_string());
        tokio::spawn(async move { s.read(h, offset, len).await.map(|d| d.data) })
    };
    let end = size.unwrap_or(u64::MAX);
    let len = u64::from(conn.read_len);
    let mut pending: VecDeque<(u64, u64, Reply)> = VecDeque::new();
    let (mut next, mut got) = (0u64, 0u64);
    let mut eof = false;
    loop {
        while !eof && pending.len() < window(READ_BYTES, conn.read_len) && next < end {
            let n = len.min(end - next);
            pending.push_back((next, n, read(next, n as u32)));
            next += n;
        }
        let Some((offset, n, reply)) = pending.pop_front() else {
            break;
        };
        let mut answer = reply
            .await
            .map_err(|e| Error::backend(format!("{what}: {e}")))?;
        let mut at = offset;
        loop {
            match answer {
                Ok(data) if !data.is_empty() => {
                    out.write_all(&data).map_err(|e| Error::io(dest, e))?;
                    at += data.len() as u64;
                    got += data.len() as u64;
                }
                Ok(_) => eof = true,
                Err(e) if is_status(&e, StatusCode::Eof) => eof = true,
                Err(e) => return Err(sftp_error(what, e)),
            }
            if eof || at >= offset + n {
                break;
            }
            answer = conn
                .sftp
                .read(handle, at, (offset + n - at) as u32)
                .await
                .map(|d| d.data);
        }
        if eof {
            for (_, _, reply) in pending.drain(..) {
                reply.abort();
            }
        }
    }
    Ok(got)
}

/// Writes `input` to the file `handle` with requests of `conn.write_len` bytes in flight;
/// every request must succeed.
async fn upload(
    conn: &Conn,
    handle: &str,
    input: &mut std::fs::File,
    src: &Path,
    what: &str,
) -> Result<()> {
    type Reply = tokio::task::JoinHandle<std::result::Result<(), SftpError>>;
    let len = conn.write_len as usize;
    let mut pending: VecDeque<Reply> = VecDeque::new();
    let mut offset = 0u64;
    let mut done = false;
    while !done || !pending.is_empty() {
        while !done && pending.len() < window(WRITE_BYTES, conn.write_len) {
            let mut buf = vec![0u8; len];
            let mut n = 0;
            while n < len {
                match input.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::io(src, e)),
                }
            }
            if n == 0 {
                done = true;
                break;
            }
            done = n < len;
            buf.truncate(n);
            let (s, h) = (conn.sftp.clone(), handle.to_string());
            pending.push_back(tokio::spawn(async move {
                s.write(h, offset, buf).await.map(|_| ())
            }));
            offset += n as u64;
        }
        if let Some(reply) = pending.pop_front() {
            reply
                .await
                .map_err(|e| Error::backend(format!("{what}: {e}")))?
                .map_err(|e| sftp_error(what, e))?;
        }
    }
    Ok(())
}

impl Backend for Sftp {
    fn list(&self) -> Result<Vec<String>> {
        let what = format!("listing {}", self.describe());
        self.with(async |c| {
            let handle = match c.sftp.opendir(self.dir.as_str()).await {
                Ok(h) => h.handle,
                Err(e) if is_missing(&e) => return Ok(Vec::new()),
                Err(e) => return Err(sftp_error(&what, e)),
            };
            let mut names = Vec::new();
            loop {
                match c.sftp.readdir(handle.as_str()).await {
                    Ok(page) => names.extend(
                        page.files
                            .into_iter()
                            .filter(|f| f.attrs.file_type().is_file())
                            .map(|f| f.filename)
                            .filter(|n| !n.starts_with(".ferrodup-tmp-")),
                    ),
                    Err(e) if is_status(&e, StatusCode::Eof) => break,
                    Err(e) => return Err(sftp_error(&what, e)),
                }
            }
            close(&c.sftp, handle, &what).await?;
            names.sort();
            Ok(names)
        })
    }

    fn get(&self, name: &str, dest: &Path) -> Result<()> {
        let what = format!("downloading {name} from {}", self.describe());
        // The size is asked for with the open, not a round trip after it.
        self.with(async |c| {
            let (s, path) = (c.sftp.clone(), self.path(name));
            let stat = tokio::spawn(async move { s.stat(path).await });
            let handle = match c
                .sftp
                .open(self.path(name), OpenFlags::READ, FileAttributes::empty())
                .await
            {
                Ok(h) => h.handle,
                Err(e) if is_missing(&e) => {
                    return Err(Error::corrupt(format!(
                        "{name} is missing from {}: the backup set is incomplete",
                        self.describe()
                    ))
                    .with_code(Code::Generic))
                }
                Err(e) => return Err(sftp_error(&what, e)),
            };
            let expected = stat
                .await
                .map_err(|e| Error::backend(format!("{what}: {e}")))?
                .map_err(|e| sftp_error(&what, e))?
                .attrs
                .size;
            let mut out = std::fs::File::create(dest).map_err(|e| Error::io(dest, e))?;
            let got = download(c, &handle, expected, &mut out, dest, &what).await?;
            close(&c.sftp, handle, &what).await?;
            super::check_length(&what, got, expected)?;
            out.flush().map_err(|e| Error::io(dest, e))
        })
    }

    fn put(&self, src: &Path, name: &str) -> Result<()> {
        let what = format!("uploading {name} to {}", self.describe());
        let tmp = self.path(&format!(".ferrodup-tmp-{name}"));
        let exists = async |c: &Conn, p: &str| c.sftp.stat(p).await.is_ok();
        self.with(async |c| {
            if !self.dir_ready.load(Ordering::SeqCst)
                && self.dir != "."
                && !exists(c, &self.dir).await
            {
                let mut made = if self.dir.starts_with('/') {
                    "/".to_string()
                } else {
                    String::new()
                };
                for part in self.dir.split('/').filter(|p| !p.is_empty()) {
                    if !made.is_empty() && !made.ends_with('/') {
                        made.push('/');
                    }
                    made.push_str(part);
                    if !exists(c, &made).await {
                        c.sftp
                            .mkdir(made.as_str(), FileAttributes::empty())
                            .await
                            .map_err(|e| sftp_error(&format!("creating {made}"), e))?;
                    }
                }
            }
            self.dir_ready.store(true, Ordering::SeqCst);
            let mut input = std::fs::File::open(src).map_err(|e| Error::io(src, e))?;
            let flags = OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE;
            let handle = c
                .sftp
                .open(tmp.as_str(), flags, FileAttributes::empty())
                .await
                .map_err(|e| sftp_error(&what, e))?
                .handle;
            upload(c, &handle, &mut input, src, &what).await?;
            // The file of that name, if any, goes while the new one is closed.
            let target = self.path(name);
            let (s, t) = (c.sftp.clone(), target.clone());
            let removed = tokio::spawn(async move { s.remove(t).await });
            close(&c.sftp, handle, &what).await?;
            match removed
                .await
                .map_err(|e| Error::backend(format!("{what}: {e}")))?
            {
                Ok(_) => {}
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(sftp_error(&what, e)),
            }
            c.sftp
                .rename(tmp.as_str(), target.as_str())
                .await
                .map(|_| ())
                .map_err(|e| sftp_error(&what, e))
        })
    }

    fn delete(&self, name: &str) -> Result<()> {
        let what = format!("deleting {name} from {}", self.describe());
        self.with(async |c| match c.sftp.remove(self.path(name)).await {
            Ok(_) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(sftp_error(&what, e)),
        })
    }

    fn size(&self, name: &str) -> Result<Option<u64>> {
        let what = format!("looking for {name} in {}", self.describe());
        self.with(async |c| match c.sftp.stat(self.path(name)).await {
            Ok(a) => Ok(a.attrs.size),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(sftp_error(&what, e)),
        })
    }

    fn describe(&self) -> String {
        let sep = if self.dir.starts_with('/') { "/" } else { "" };
        format!(
            "sftp://{}@{}:{}/{sep}{}",
            self.user, self.host, self.port, self.dir
        )
    }
}
