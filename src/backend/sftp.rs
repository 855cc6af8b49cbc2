//! SFTP (`sftp://user[:password]@host[:port]/path`; `//path` for an absolute path, else
//! relative to the login directory), over SSH with `russh`.
//!
//! Authentication: the URL's password or `FTP_PASSWORD`, else the private keys given with
//! `--ssh-options -oIdentityFile=PATH`, else `~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`.
//! The server's host key must be in `~/.ssh/known_hosts` (or
//! `-oUserKnownHostsFile=PATH`), as with duplicity; `-oStrictHostKeyChecking=no` accepts an
//! unknown key. Uploads go to a temporary name and are renamed into place, so a broken
//! connection never leaves a partial file under a real name.

use super::Backend;
use crate::error::{Code, Error, Kind, Result};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg};
use russh_sftp::client::SftpSession;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    sftp: SftpSession,
    _ssh: russh::client::Handle<Checker>,
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
    conn: Mutex<Option<Arc<Conn>>>,
}

fn sftp_error(what: &str, e: russh_sftp::client::error::Error) -> Error {
    Error::backend(format!("{what}: {e}"))
}

fn is_missing(e: &russh_sftp::client::error::Error) -> bool {
    matches!(
        e,
        russh_sftp::client::error::Error::Status(s)
            if s.status_code == russh_sftp::protocol::StatusCode::NoSuchFile
    )
}

impl Sftp {
    /// `rest` is what follows `sftp://`.
    pub fn open(
        rest: &str,
        settings: &HashMap<String, String>,
        opts: &SshOptions,
        timeout: std::time::Duration,
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
            conn: Mutex::new(None),
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
        // A server that stops answering is found by keepalives instead of hanging.
        let config = Arc::new(russh::client::Config {
            keepalive_interval: Some(self.timeout),
            keepalive_max: 2,
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
        let sftp = SftpSession::new(channel.into_stream())
            .await
            .map_err(|e| sftp_error(&format!("starting SFTP on {target}"), e))?;
        sftp.set_timeout(self.timeout.as_secs());
        Ok(Conn { sftp, _ssh: ssh })
    }

    /// Runs `f` on a connection (made if needed); a failed operation drops the connection
    /// so that a retry starts afresh.
    fn with<T>(&self, f: impl AsyncFnOnce(&SftpSession) -> Result<T>) -> Result<T> {
        self.rt.block_on(async {
            let existing = self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let conn = match existing {
                Some(c) => c,
                None => {
                    let login = tokio::time::timeout(self.timeout, self.connect())
                        .await
                        .map_err(|_| {
                            Error::backend(format!(
                                "logging in to {} took longer than --timeout {} s",
                                self.describe(),
                                self.timeout.as_secs()
                            ))
                        })?;
                    let c = Arc::new(login?);
                    *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
                    c
                }
            };
            let r = f(&conn.sftp).await;
            if matches!(&r, Err(e) if e.kind() == Kind::Backend) {
                *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
            r
        })
    }
}

impl Backend for Sftp {
    fn list(&self) -> Result<Vec<String>> {
        let what = format!("listing {}", self.describe());
        self.with(async |s| match s.read_dir(&self.dir).await {
            Ok(rd) => {
                let mut names: Vec<String> = rd
                    .filter(|e| e.file_type().is_file())
                    .map(|e| e.file_name())
                    .filter(|n| !n.starts_with(".ferrodup-tmp-"))
                    .collect();
                names.sort();
                Ok(names)
            }
            Err(e) if is_missing(&e) => Ok(Vec::new()),
            Err(e) => Err(sftp_error(&what, e)),
        })
    }

    fn get(&self, name: &str, dest: &Path) -> Result<()> {
        let what = format!("downloading {name} from {}", self.describe());
        self.with(async |s| {
            let mut f = match s.open(self.path(name)).await {
                Ok(f) => f,
                Err(e) if is_missing(&e) => {
                    return Err(Error::corrupt(format!(
                        "{name} is missing from {}: the backup set is incomplete",
                        self.describe()
                    ))
                    .with_code(Code::Generic))
                }
                Err(e) => return Err(sftp_error(&what, e)),
            };
            let expected = f.metadata().await.map_err(|e| sftp_error(&what, e))?.size;
            let mut out = std::fs::File::create(dest).map_err(|e| Error::io(dest, e))?;
            let mut buf = vec![0u8; 256 * 1024];
            let mut got = 0u64;
            loop {
                let n = f
                    .read(&mut buf)
                    .await
                    .map_err(|e| Error::backend(format!("{what}: {e}")))?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n]).map_err(|e| Error::io(dest, e))?;
                got += n as u64;
            }
            super::check_length(&what, got, expected)?;
            out.flush().map_err(|e| Error::io(dest, e))
        })
    }

    fn put(&self, src: &Path, name: &str) -> Result<()> {
        let what = format!("uploading {name} to {}", self.describe());
        let tmp = self.path(&format!(".ferrodup-tmp-{name}"));
        self.with(async |s| {
            if self.dir != "." && !s.try_exists(&self.dir).await.unwrap_or(false) {
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
                    if !s.try_exists(&made).await.unwrap_or(false) {
                        s.create_dir(&made)
                            .await
                            .map_err(|e| sftp_error(&format!("creating {made}"), e))?;
                    }
                }
            }
            let mut input = std::fs::File::open(src).map_err(|e| Error::io(src, e))?;
            let mut f = s.create(&tmp).await.map_err(|e| sftp_error(&what, e))?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = std::io::Read::read(&mut input, &mut buf).map_err(|e| Error::io(src, e))?;
                if n == 0 {
                    break;
                }
                f.write_all(&buf[..n])
                    .await
                    .map_err(|e| Error::backend(format!("{what}: {e}")))?;
            }
            f.shutdown()
                .await
                .map_err(|e| Error::backend(format!("{what}: {e}")))?;
            let target = self.path(name);
            match s.remove_file(&target).await {
                Ok(()) => {}
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(sftp_error(&what, e)),
            }
            s.rename(&tmp, &target)
                .await
                .map_err(|e| sftp_error(&what, e))
        })
    }

    fn delete(&self, name: &str) -> Result<()> {
        let what = format!("deleting {name} from {}", self.describe());
        self.with(async |s| match s.remove_file(self.path(name)).await {
            Ok(()) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(sftp_error(&what, e)),
        })
    }

    fn size(&self, name: &str) -> Result<Option<u64>> {
        let what = format!("looking for {name} in {}", self.describe());
        self.with(async |s| match s.metadata(self.path(name)).await {
            Ok(m) => Ok(m.size),
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
