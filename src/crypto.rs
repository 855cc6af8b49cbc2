//! OpenPGP as duplicity uses it, done natively with rpgp: volumes, signature files and
//! manifests encrypted symmetrically (`PASSPHRASE`) or to public keys, optionally signed,
//! streamed through a pipe thread so encryption runs beside tar and diff work. Keys come from
//! key files (`--gpg-key-file`) or the GnuPG home; a secret key that only gpg's agent holds
//! is used through the `gpg` binary.

mod par;

pub use par::{OnStored, ParPgpWriter};

use crate::error::{Code, Error, Kind, Result};
use pgp::composed::{
    DecryptionOptions, Deserializable, Edata, Esk, Message, MessageBuilder, SignedPublicKey,
    SignedSecretKey, TheRing,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::types::{CompressionAlgorithm, KeyDetails, Password, Seipdv1ReadMode, StringToKey};
use sha1::{Digest, Sha1};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

/// Public and secret keys known to ferrodup.
#[derive(Default, Clone)]
pub struct Keyring {
    pub public: Vec<SignedPublicKey>,
    pub secret: Vec<SignedSecretKey>,
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// True if `spec` (fingerprint, 8 or 16 hex digit key id, or user id text) names a key
/// with these fingerprints and user ids.
fn spec_matches(spec: &str, fingerprints: &[String], user_ids: &[String]) -> bool {
    let s = spec
        .trim()
        .trim_start_matches("0x")
        .trim_start_matches("0X");
    let is_hex = !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit());
    if is_hex && matches!(s.len(), 8 | 16 | 40 | 64) {
        let s = s.to_ascii_uppercase();
        return fingerprints.iter().any(|f| f.ends_with(&s));
    }
    let want = spec
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_lowercase();
    user_ids.iter().any(|u| u.to_lowercase().contains(&want))
}

/// Fingerprints (primary and subkeys, upper-case hex) and user ids of a key.
fn public_ids(k: &SignedPublicKey) -> (Vec<String>, Vec<String>) {
    let mut fps = vec![hex_upper(k.primary_key.fingerprint().as_bytes())];
    fps.extend(
        k.public_subkeys
            .iter()
            .map(|s| hex_upper(s.key.fingerprint().as_bytes())),
    );
    let uids = k
        .details
        .users
        .iter()
        .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
        .collect();
    (fps, uids)
}

fn secret_ids(k: &SignedSecretKey) -> (Vec<String>, Vec<String>) {
    public_ids(&k.to_public_key())
}

impl Keyring {
    /// Loads a key file: armored or binary, public or secret keys.
    pub fn load_file(&mut self, path: &Path) -> Result<()> {
        let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |e: pgp::errors::Error| {
            Error::usage(format!("{}: not an OpenPGP key file ({e})", path.display()))
        };
        let text = String::from_utf8_lossy(&data[..data.len().min(4096)]).into_owned();
        if text.contains("BEGIN PGP PRIVATE KEY BLOCK") {
            let (keys, _) = SignedSecretKey::from_armor_many(&data[..]).map_err(bad)?;
            for k in keys {
                self.secret.push(k.map_err(bad)?);
            }
        } else if text.contains("BEGIN PGP PUBLIC KEY BLOCK") {
            let (keys, _) = SignedPublicKey::from_armor_many(&data[..]).map_err(bad)?;
            for k in keys {
                self.public.push(k.map_err(bad)?);
            }
        } else if let Ok(keys) = SignedSecretKey::from_bytes_many(&data[..])
            .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
            .and_then(|v| {
                if v.is_empty() {
                    Err(pgp::errors::Error::MissingKey)
                } else {
                    Ok(v)
                }
            })
        {
            self.secret.extend(keys);
        } else {
            let keys = SignedPublicKey::from_bytes_many(&data[..]).map_err(bad)?;
            for k in keys {
                self.public.push(k.map_err(bad)?);
            }
        }
        Ok(())
    }

    /// Loads what the GnuPG home (`GNUPGHOME` or `~/.gnupg`) holds natively: public keys
    /// from `pubring.kbx` or `pubring.gpg`, secret keys from a legacy `secring.gpg`.
    pub fn load_gnupg_home(&mut self) {
        let home = std::env::var_os("GNUPGHOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".gnupg")));
        let Some(home) = home else {
            return;
        };
        if let Ok(data) = std::fs::read(home.join("pubring.kbx")) {
            for block in keybox_keyblocks(&data) {
                if let Ok(k) = SignedPublicKey::from_bytes(&without_trust_packets(block)[..]) {
                    self.public.push(k);
                }
            }
        }
        if let Ok(data) = std::fs::read(home.join("pubring.gpg")) {
            self.public
                .extend(parse_many(&without_trust_packets(&data)));
        }
        if let Ok(data) = std::fs::read(home.join("secring.gpg")) {
            self.secret
                .extend(parse_many(&without_trust_packets(&data)));
        }
    }

    /// The public key `spec` names. A keyring can hold several versions of one key (a
    /// keybox keeps superseded blobs): the most complete one wins.
    pub fn find_public(&self, spec: &str) -> Option<SignedPublicKey> {
        let best = self
            .public
            .iter()
            .filter(|k| {
                let (f, u) = public_ids(k);
                spec_matches(spec, &f, &u)
            })
            .max_by_key(|k| k.public_subkeys.len());
        if let Some(k) = best {
            return Some(k.clone());
        }
        self.find_secret(spec).map(|s| s.to_public_key())
    }

    /// The secret key `spec` names (the most complete version).
    pub fn find_secret(&self, spec: &str) -> Option<SignedSecretKey> {
        self.secret
            .iter()
            .filter(|k| {
                let (f, u) = secret_ids(k);
                spec_matches(spec, &f, &u)
            })
            .max_by_key(|k| k.secret_subkeys.len())
            .cloned()
    }
}

/// Every key a keyring file holds that parses.
fn parse_many<K: Deserializable>(data: &[u8]) -> Vec<K> {
    match K::from_bytes_many(data) {
        Ok(keys) => keys.flatten().collect(),
        Err(_) => Vec::new(),
    }
}

/// Drops GnuPG's local trust packets (tag 12), which keyboxes keep inside keyblocks and
/// which are not part of a transferable key.
fn without_trust_packets(block: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(block.len());
    let mut pos = 0usize;
    while pos < block.len() {
        let ctb = block[pos];
        if ctb & 0x80 == 0 {
            break;
        }
        let (tag, header, len) = if ctb & 0x40 == 0 {
            let tag = (ctb >> 2) & 0x0f;
            let (h, len) = match ctb & 3 {
                0 => (2, block.get(pos + 1).map(|&b| b as usize)),
                1 => (
                    3,
                    block
                        .get(pos + 1..pos + 3)
                        .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize),
                ),
                2 => (
                    5,
                    block
                        .get(pos + 1..pos + 5)
                        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize),
                ),
                _ => (1, None),
            };
            (tag, h, len)
        } else {
            let tag = ctb & 0x3f;
            match block.get(pos + 1).copied() {
                Some(o) if o < 192 => (tag, 2, Some(o as usize)),
                Some(o) if o < 224 => (
                    tag,
                    3,
                    block
                        .get(pos + 2)
                        .map(|&o2| ((o as usize - 192) << 8) + o2 as usize + 192),
                ),
                Some(255) => (
                    tag,
                    6,
                    block
                        .get(pos + 2..pos + 6)
                        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize),
                ),
                _ => (tag, 1, None),
            }
        };
        let Some(len) = len else {
            break;
        };
        let end = (pos + header + len).min(block.len());
        if tag != 12 {
            out.extend_from_slice(&block[pos..end]);
        }
        pos = end;
    }
    out
}

/// Extracts the OpenPGP keyblocks of a GnuPG keybox (`pubring.kbx`).
fn keybox_keyblocks(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    while pos + 16 <= data.len() {
        let len = be32(&data[pos..]);
        if len < 16 || pos + len > data.len() {
            break;
        }
        let blob = &data[pos..pos + len];
        if blob[4] == 2 {
            let off = be32(&blob[8..]);
            let klen = be32(&blob[12..]);
            if off + klen <= blob.len() {
                out.push(&blob[off..off + klen]);
            }
        }
        pos += len;
    }
    out
}

/// How stored files are encrypted and decrypted.
#[derive(Clone)]
pub struct Crypto {
    pub keyring: Keyring,
    pub passphrase: Option<String>,
    pub sign_passphrase: Option<String>,
    /// `--encrypt-key` values (empty: symmetric).
    pub recipients: Vec<String>,
    /// `--hidden-encrypt-key` values.
    pub hidden_recipients: Vec<String>,
    /// `--sign-key` / `--encrypt-sign-key`.
    pub sign_key: Option<String>,
    pub cipher: SymmetricKeyAlgorithm,
    /// `None`: no compression packet (`--no-compression`, `--compress-algo none`).
    pub compression: Option<CompressionAlgorithm>,
    pub gpg_binary: PathBuf,
    /// `--use-agent`: the gpg binary gets no passphrase; gpg's agent (and its pinentry)
    /// supplies it.
    pub use_agent: bool,
}

impl Crypto {
    /// True if anything is at hand to decrypt with: a passphrase or a secret key (natively
    /// or in gpg's agent).
    pub fn can_decrypt(&self) -> bool {
        self.passphrase.is_some() || !self.keyring.secret.is_empty() || !self.is_symmetric()
    }

    /// True when decrypting should work without asking anything: a passphrase for
    /// symmetric encryption; a passphrase and a secret key at hand for public keys.
    pub fn decrypts_unattended(&self) -> bool {
        let passphrase = self.passphrase.as_deref().is_some_and(|p| !p.is_empty());
        passphrase && (self.is_symmetric() || !self.keyring.secret.is_empty())
    }

    /// True without recipients: the passphrase encrypts.
    pub fn is_symmetric(&self) -> bool {
        self.recipients.is_empty() && self.hidden_recipients.is_empty()
    }

    fn need_passphrase(&self, what: &str) -> Result<String> {
        self.passphrase.clone().ok_or_else(|| {
            Error::usage(format!(
                "{what} needs a passphrase: set PASSPHRASE in the environment (or run on a terminal)"
            ))
        })
    }

    /// Checks that everything needed to write encrypted files is at hand.
    pub fn check_for_writing(&self) -> Result<()> {
        if self.is_symmetric() {
            self.need_passphrase("symmetric encryption")?;
        }
        for spec in self.recipients.iter().chain(&self.hidden_recipients) {
            let k = self.keyring.find_public(spec).ok_or_else(|| {
                Error::usage(format!(
                    "encryption key {spec:?} not found in the GnuPG home or the --gpg-key-file files"
                ))
            })?;
            encryption_subkey(&k)
                .ok_or_else(|| Error::usage(format!("key {spec:?} has no key that can encrypt")))?;
        }
        if let Some(spec) = &self.sign_key {
            if self.keyring.find_secret(spec).is_none() && !gpg_available(&self.gpg_binary) {
                return Err(Error::usage(format!(
                    "secret signing key {spec:?} not found: give it with --gpg-key-file or \
                     install gpg to use the one in the GnuPG home"
                )));
            }
        }
        Ok(())
    }

    /// Starts writing an encrypted file at `path`.
    pub fn writer(&self, path: &Path) -> Result<PgpWriter> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let count = Arc::new(AtomicU64::new(0));
        let out = CountHash {
            inner: BufWriter::with_capacity(256 * 1024, file),
            count: count.clone(),
            sha1: Sha1::new(),
        };
        let sign_native = self
            .sign_key
            .as_ref()
            .map(|s| self.keyring.find_secret(s))
            .unwrap_or(None);
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(4);
        let consumed = Arc::new(AtomicU64::new(0));
        let reader = ChanReader {
            rx,
            cur: Vec::new(),
            pos: 0,
            consumed: consumed.clone(),
        };
        let path_shown = path.to_path_buf();
        let handle = if self.sign_key.is_some() && sign_native.is_none() {
            let cmd = self.gpg_encrypt_command()?;
            let pass = (!self.use_agent).then(|| {
                self.sign_passphrase
                    .clone()
                    .or(self.passphrase.clone())
                    .unwrap_or_default()
            });
            thread::spawn(move || gpg_filter(cmd, pass, reader, out, &path_shown))
        } else {
            let me = self.clone();
            thread::spawn(move || me.encrypt_native(reader, out, sign_native))
        };
        Ok(PgpWriter {
            tx: Some(tx),
            buf: Vec::with_capacity(CHUNK),
            handle: Some(handle),
            count,
            written: 0,
            consumed,
        })
    }

    fn encrypt_native(
        &self,
        reader: ChanReader,
        mut out: CountHash,
        sign: Option<SignedSecretKey>,
    ) -> io::Result<(u64, String)> {
        let mut rng = rand::thread_rng();
        let err = |e: pgp::errors::Error| io::Error::other(format!("OpenPGP encryption: {e}"));
        let mut b = MessageBuilder::from_reader("", reader).seipd_v1(&mut rng, self.cipher);
        if let Some(c) = self.compression {
            b.compression(c);
        }
        if self.is_symmetric() {
            let pw = Password::from(self.passphrase.clone().unwrap_or_default().as_str());
            let s2k = StringToKey::new_iterated(&mut rng, HashAlgorithm::Sha256, 224);
            b.encrypt_with_password(s2k, &pw).map_err(err)?;
        }
        let named = self.recipients.iter().map(|s| (s, false));
        let hidden = self.hidden_recipients.iter().map(|s| (s, true));
        for (spec, anonymous) in named.chain(hidden) {
            let k = self
                .keyring
                .find_public(spec)
                .ok_or_else(|| io::Error::other(format!("key {spec} vanished")))?;
            match (encryption_subkey(&k), anonymous) {
                (Some(EncKey::Sub(i)), false) => b.encrypt_to_key(&mut rng, &k.public_subkeys[i]),
                (Some(EncKey::Sub(i)), true) => {
                    b.encrypt_to_key_anonymous(&mut rng, &k.public_subkeys[i])
                }
                (Some(EncKey::Primary), false) => b.encrypt_to_key(&mut rng, &k),
                (Some(EncKey::Primary), true) => b.encrypt_to_key_anonymous(&mut rng, &k),
                (None, _) => return Err(io::Error::other(format!("key {spec} cannot encrypt"))),
            }
            .map_err(err)?;
        }
        let sign_pw = Password::from(
            self.sign_passphrase
                .clone()
                .or(self.passphrase.clone())
                .unwrap_or_default()
                .as_str(),
        );
        if let Some(sk) = &sign {
            b.sign(&sk.primary_key, sign_pw, HashAlgorithm::Sha256);
        }
        b.to_writer(&mut rng, &mut out).map_err(err)?;
        out.finish()
    }

    /// The gpg binary, non-interactive, passphrases through loopback pinentry (with
    /// `--use-agent`, from gpg's agent).
    fn gpg_command(&self) -> Command {
        let mut c = Command::new(&self.gpg_binary);
        c.args(["--batch", "--no-tty", "--no-secmem-warning"]);
        if !self.use_agent {
            c.args(["--pinentry-mode", "loopback"]);
        }
        c
    }

    fn gpg_encrypt_command(&self) -> Result<Command> {
        let mut c = self.gpg_command();
        c.args(["--always-trust", "--force-mdc"]);
        if !self.use_agent {
            c.args(["--passphrase-fd", "0"]);
        }
        if let Some(k) = &self.sign_key {
            c.args(["--default-key", k, "--sign"]);
        }
        if self.compression.is_none() {
            c.arg("--compress-algo=none");
        }
        if self.is_symmetric() {
            c.arg("--symmetric");
        } else {
            for r in &self.recipients {
                c.args(["--recipient", r]);
            }
            for r in &self.hidden_recipients {
                c.args(["--hidden-recipient", r]);
            }
            c.arg("--encrypt");
        }
        Ok(c)
    }

    /// Opens an encrypted file for reading; with a sign key set, the signature is checked
    /// when the end of the data is reached.
    pub fn reader(&self, path: &Path, name: &str) -> Result<Box<dyn Read + Send>> {
        let bad = |e: String| Error::corrupt(format!("{name}: {e}"));
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        let (msg, _) = Message::from_reader(BufReader::with_capacity(crate::codec::READ_BUF, f))
            .map_err(|e| bad(format!("not an OpenPGP file ({e}); the file is corrupt")))?;
        let pw = self.passphrase.as_deref().map(Password::from);
        let key_pw = Password::from(self.passphrase.clone().unwrap_or_default().as_str());
        let empty_pw = Password::empty();
        let secrets: Vec<&SignedSecretKey> = self.keyring.secret.iter().collect();
        let ring = TheRing {
            secret_keys: secrets,
            key_passwords: vec![&key_pw, &empty_pw],
            message_password: pw.iter().collect(),
            decrypt_options: DecryptionOptions::new()
                .enable_legacy()
                .set_seipdv1_read_mode(Seipdv1ReadMode::Streaming),
            ..Default::default()
        };
        let public_key_encrypted = match &msg {
            Message::Encrypted { esk, .. } => esk
                .iter()
                .any(|e| matches!(e, Esk::PublicKeyEncryptedSessionKey(_))),
            _ => false,
        };
        if let Message::Encrypted {
            edata: Edata::SymEncryptedData { .. },
            ..
        } = &msg
        {
            crate::log::warn(&format!(
                "{name} was encrypted without integrity protection (old gpg, no MDC): \
                 tampering cannot be detected; the manifest's SHA1 is the only check"
            ));
        }
        let decrypted = match msg.decrypt_the_ring(ring, true) {
            Ok((m, _)) => m,
            Err(pgp::errors::Error::MissingKey)
                if public_key_encrypted && gpg_available(&self.gpg_binary) =>
            {
                return self.gpg_reader(path, name);
            }
            Err(e) => {
                let hint = if self.passphrase.is_none() && self.keyring.secret.is_empty() {
                    "set PASSPHRASE, or give the secret key with --gpg-key-file"
                } else {
                    "wrong passphrase or missing secret key"
                };
                return Err(Error::input(format!("cannot decrypt {name}: {e} ({hint})"))
                    .with_code(Code::GpgFailed));
            }
        };
        let msg = if decrypted.is_compressed() {
            decrypted
                .decompress()
                .map_err(|e| bad(format!("bad compressed data ({e})")))?
        } else {
            decrypted
        };
        let verify = match &self.sign_key {
            Some(spec) => Some(self.keyring.find_public(spec).ok_or_else(|| {
                Error::usage(format!(
                    "public key of sign key {spec:?} not found, so signatures cannot be checked"
                ))
            })?),
            None => None,
        };
        // Readers above take small bites (tar blocks); rpgp is fastest fed large reads.
        Ok(Box::new(BufReader::with_capacity(
            256 * 1024,
            PgpReader {
                msg,
                verify,
                name: name.to_string(),
                done: false,
            },
        )))
    }

    fn gpg_reader(&self, path: &Path, name: &str) -> Result<Box<dyn Read + Send>> {
        let mut c = self.gpg_command();
        c.args(["--ignore-mdc-error", "--status-fd", "2", "--decrypt"]);
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        c.stdin(Stdio::from(file))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|e| {
            Error::new(
                Kind::Io,
                format!("cannot run {}: {e}", self.gpg_binary.display()),
            )
        })?;
        let stdout = child.stdout.take().expect("piped");
        Ok(Box::new(GpgReader {
            child,
            stdout,
            name: name.to_string(),
            signer: self.sign_key.as_ref().map(|spec| Signer {
                spec: spec.clone(),
                fingerprints: self.signer_fingerprints(spec),
            }),
            done: false,
        }))
    }

    /// The fingerprints (primary and subkeys, upper-case hex) of the key `spec` names:
    /// from the keyring, else as gpg resolves it.
    fn signer_fingerprints(&self, spec: &str) -> Vec<String> {
        if let Some(k) = self.keyring.find_public(spec) {
            return public_ids(&k).0;
        }
        let listed = self
            .gpg_command()
            .args(["--with-colons", "--list-keys", "--", spec])
            .stderr(Stdio::null())
            .output();
        match listed {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.starts_with("fpr:"))
                .filter_map(|l| l.split(':').nth(9))
                .map(str::to_ascii_uppercase)
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The key whose signature a restore requires, for checking gpg's report.
struct Signer {
    spec: String,
    fingerprints: Vec<String>,
}

impl Signer {
    /// True if gpg's `VALIDSIG` fields (signing key fingerprint first, primary key
    /// fingerprint tenth) name this key, by fingerprint or, for a hex key id or
    /// fingerprint given as `--sign-key`, by suffix as the native check does.
    fn made(&self, validsig: &str) -> bool {
        let fields: Vec<String> = validsig
            .split_whitespace()
            .map(str::to_ascii_uppercase)
            .collect();
        let ids: Vec<String> = [fields.first(), fields.get(9)]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        spec_matches(&self.spec, &ids, &[]) || ids.iter().any(|i| self.fingerprints.contains(i))
    }
}

enum EncKey {
    Primary,
    Sub(usize),
}

fn encryption_subkey(k: &SignedPublicKey) -> Option<EncKey> {
    if let Some(i) = k
        .public_subkeys
        .iter()
        .position(|s| s.key.algorithm().can_encrypt())
    {
        return Some(EncKey::Sub(i));
    }
    k.primary_key
        .algorithm()
        .can_encrypt()
        .then_some(EncKey::Primary)
}

/// True if the gpg binary can be run (probed once per process, not per file).
pub fn gpg_available(bin: &Path) -> bool {
    static PROBED: std::sync::Mutex<Vec<(PathBuf, bool)>> = std::sync::Mutex::new(Vec::new());
    let mut probed = PROBED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, ok)) = probed.iter().find(|(b, _)| b == bin) {
        return *ok;
    }
    let ok = Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    probed.push((bin.to_path_buf(), ok));
    ok
}

const CHUNK: usize = 256 * 1024;

/// Feeds chunks sent over a channel to a reader.
struct ChanReader {
    rx: mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    consumed: Arc<AtomicU64>,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(v) => {
                    self.cur = v;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        self.consumed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Counts (shared) and hashes the bytes of a stored file.
struct CountHash {
    inner: BufWriter<File>,
    count: Arc<AtomicU64>,
    sha1: Sha1,
}

impl CountHash {
    /// Writes out what is buffered; returns the size and SHA1. Encrypted files are all
    /// temporary copies read back for upload, so they are not flushed to disk (see
    /// `codec::HashCount::finish`).
    fn finish(mut self) -> io::Result<(u64, String)> {
        self.inner.flush()?;
        self.inner.into_inner().map_err(|e| e.into_error())?;
        Ok((
            self.count.load(Ordering::Relaxed),
            crate::codec::hex(&self.sha1.finalize()),
        ))
    }
}

impl Write for CountHash {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        self.sha1.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Runs `gpg` as a filter from `reader` to `out`. The passphrase, if any, goes as the first
/// line of its input (`--passphrase-fd 0`), so it never appears in arguments or files.
fn gpg_filter(
    mut cmd: Command,
    passphrase: Option<String>,
    mut reader: ChanReader,
    mut out: CountHash,
    shown: &Path,
) -> io::Result<(u64, String)> {
    // The passphrase goes first on stdin (--passphrase-fd 0), then the data.
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let feeder = thread::spawn(move || -> io::Result<()> {
        if let Some(p) = passphrase {
            stdin.write_all(p.as_bytes())?;
            stdin.write_all(b"\n")?;
        }
        io::copy(&mut reader, &mut stdin)?;
        Ok(())
    });
    io::copy(&mut stdout, &mut out)?;
    let fed = feeder
        .join()
        .map_err(|_| io::Error::other("gpg feeder panicked"))?;
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let status = child.wait()?;
    fed?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "gpg failed writing {}: {}",
            shown.display(),
            err.lines().last().unwrap_or("")
        )));
    }
    out.finish()
}

/// An encrypted file being written; data goes to the encryption thread.
pub struct PgpWriter {
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
    buf: Vec<u8>,
    handle: Option<thread::JoinHandle<io::Result<(u64, String)>>>,
    count: Arc<AtomicU64>,
    written: u64,
    consumed: Arc<AtomicU64>,
}

impl PgpWriter {
    /// Stored bytes so far, counting data still queued for the encryption thread as if it
    /// were stored already (so volumes are cut near their size despite the pipeline).
    pub fn stored_len(&self) -> u64 {
        let queued = self
            .written
            .saturating_sub(self.consumed.load(Ordering::Relaxed));
        self.count.load(Ordering::Relaxed) + queued
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let tx = self.tx.as_ref().expect("open");
        if tx.send(chunk).is_err() {
            return Err(self.join_err());
        }
        Ok(())
    }

    fn join_err(&mut self) -> io::Error {
        self.tx = None;
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(Err(e))) => e,
            _ => io::Error::other("the encryption thread stopped"),
        }
    }

    /// Finishes the file, returning its size and SHA1.
    pub fn finish(mut self) -> io::Result<(u64, String)> {
        self.send()?;
        self.tx = None;
        match self.handle.take().expect("running").join() {
            Ok(r) => r,
            Err(_) => Err(io::Error::other("the encryption thread panicked")),
        }
    }
}

impl Write for PgpWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.written += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Decrypted data of a file; checks the signature (when asked) at the end.
struct PgpReader {
    msg: Message<'static>,
    verify: Option<SignedPublicKey>,
    name: String,
    done: bool,
}

impl Read for PgpReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let n = self.msg.read(buf).map_err(|e| {
            gpg_failed(format!(
                "{}: decryption failed ({e}); the file is corrupt or tampered with",
                self.name
            ))
        })?;
        if n == 0 && !buf.is_empty() {
            self.done = true;
            if let Some(key) = &self.verify {
                if !self.msg.is_signed() {
                    return Err(unsigned(format!(
                        "{} is not signed, but --sign-key asks for signatures",
                        self.name
                    )));
                }
                let ok = self.msg.verify(&key.primary_key).is_ok()
                    || key
                        .public_subkeys
                        .iter()
                        .any(|s| self.msg.verify(&s.key).is_ok());
                if !ok {
                    return Err(unsigned(format!(
                        "{} is not signed by the --sign-key key",
                        self.name
                    )));
                }
            }
        }
        Ok(n)
    }
}

/// Data that does not decrypt, as a read error that keeps duplicity's status for it (its
/// gpg process fails).
fn gpg_failed(msg: String) -> io::Error {
    Error::corrupt(msg).with_code(Code::GpgFailed).into_io()
}

/// A volume that lacks the signature --sign-key asks for, as a read error that keeps
/// duplicity's status for it.
fn unsigned(msg: String) -> io::Error {
    Error::corrupt(msg)
        .with_code(Code::UnsignedVolume)
        .into_io()
}

/// Data decrypted by the gpg binary; its exit status (and, when signing is required, the
/// signer gpg reports in VALIDSIG) is checked at the end.
struct GpgReader {
    child: std::process::Child,
    stdout: std::process::ChildStdout,
    name: String,
    signer: Option<Signer>,
    done: bool,
}

impl Read for GpgReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.done = true;
            let mut err = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let status = self.child.wait()?;
            if !status.success() {
                let last = err
                    .lines()
                    .rfind(|l| !l.starts_with("[GNUPG:]"))
                    .unwrap_or("")
                    .to_string();
                return Err(gpg_failed(format!(
                    "gpg could not decrypt {}: {last}",
                    self.name
                )));
            }
            if let Some(signer) = &self.signer {
                let signatures: Vec<&str> = err
                    .lines()
                    .filter_map(|l| l.strip_prefix("[GNUPG:] VALIDSIG "))
                    .collect();
                if !signatures.iter().any(|v| signer.made(v)) {
                    let why = match signatures.first() {
                        None => "gpg found no good signature".to_string(),
                        Some(v) => format!(
                            "gpg found a good signature by another key, {}",
                            v.split_whitespace().next().unwrap_or("")
                        ),
                    };
                    return Err(unsigned(format!(
                        "{} is not signed by {}: {why}",
                        self.name, signer.spec
                    )));
                }
            }
        }
        Ok(n)
    }
}

impl Drop for GpgReader {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads a line from `fd` (a terminal) with echo turned off, after writing `prompt` to `out`.
fn read_hidden(
    fd: i32,
    input: &mut dyn io::BufRead,
    out: &mut dyn Write,
    prompt: &str,
) -> Result<String> {
    let _ = write!(out, "{prompt}");
    let _ = out.flush();
    // SAFETY: termios calls on a terminal fd with structs we own.
    let old = unsafe {
        let mut term: libc::termios = std::mem::zeroed();
        libc::tcgetattr(fd, &mut term);
        let old = term;
        term.c_lflag &= !libc::ECHO;
        libc::tcsetattr(fd, libc::TCSANOW, &term);
        old
    };
    let mut line = String::new();
    let res = input.read_line(&mut line);
    // SAFETY: restores the settings read above.
    unsafe {
        libc::tcsetattr(fd, libc::TCSANOW, &old);
    }
    let _ = writeln!(out);
    finish_line(res, line)
}

/// The passphrase in a line read with `res`; an error at the end of the input.
fn finish_line(res: io::Result<usize>, line: String) -> Result<String> {
    match res {
        Ok(0) => Err(Error::usage(
            "a passphrase is needed: set PASSPHRASE, or give it on standard input (twice for \
             a backup, to confirm); the input ended first",
        )),
        Ok(_) => Ok(line.trim_end_matches(['\n', '\r']).to_string()),
        Err(e) => Err(Error::new(Kind::Io, format!("reading the passphrase: {e}"))),
    }
}

/// Reads one line after showing a prompt.
type ReadLine = dyn FnMut(&str) -> Result<String>;

/// Reads a passphrase as duplicity does (with Python's getpass): on the controlling
/// terminal without echo; without one, from standard input, without echo if it is a
/// terminal, else a line as it comes (a pipe: `echo secret | ferrodup restore ...`). The
/// prompts go to the terminal, else to standard error; the passphrase is never shown. With
/// `confirm` it is asked twice and both must match; an empty one is refused.
pub fn prompt_passphrase(prompt: &str, confirm: bool) -> Result<String> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/tty");
    let mut read_one: Box<ReadLine> = match tty {
        Ok(tty) => {
            let fd = tty.as_raw_fd();
            let mut input = BufReader::new(
                tty.try_clone()
                    .map_err(|e| Error::new(Kind::Io, format!("/dev/tty: {e}")))?,
            );
            let mut out = tty;
            Box::new(move |p| read_hidden(fd, &mut input, &mut out, p))
        }
        // SAFETY: isatty has no preconditions.
        Err(_) if unsafe { libc::isatty(0) } == 1 => {
            Box::new(|p| read_hidden(0, &mut io::stdin().lock(), &mut io::stderr(), p))
        }
        Err(_) => Box::new(|p| {
            eprint!("{p}");
            let mut line = String::new();
            let res = io::stdin().read_line(&mut line);
            eprintln!();
            finish_line(res, line)
        }),
    };
    let first = read_one(prompt)?;
    if first.is_empty() {
        return Err(Error::usage(
            "the passphrase is empty: symmetric encryption needs one (or set PASSPHRASE)",
        ));
    }
    if confirm {
        let second = read_one("Retype passphrase to confirm: ")?;
        if first != second {
            return Err(Error::usage("the passphrases do not match"));
        }
    }
    Ok(first)
}

/// Parses `--gpg-options`: cipher and compression choices are used, the rest is reported
/// as ignored.
pub fn apply_gpg_options(
    opts: &str,
    cipher: &mut SymmetricKeyAlgorithm,
    compression: &mut Option<CompressionAlgorithm>,
) -> Result<()> {
    let words: Vec<&str> = opts.split_whitespace().collect();
    let mut i = 0;
    while i < words.len() {
        let (key, inline) = match words[i].split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (words[i], None),
        };
        let mut value = || -> Result<String> {
            if let Some(v) = inline {
                return Ok(v.to_string());
            }
            i += 1;
            words
                .get(i)
                .map(|s| s.to_string())
                .ok_or_else(|| Error::usage(format!("--gpg-options: {key} needs a value")))
        };
        match key {
            "--cipher-algo" => {
                let v = value()?;
                *cipher = match v.to_ascii_uppercase().as_str() {
                    "AES" | "AES128" => SymmetricKeyAlgorithm::AES128,
                    "AES192" => SymmetricKeyAlgorithm::AES192,
                    "AES256" => SymmetricKeyAlgorithm::AES256,
                    "TWOFISH" => SymmetricKeyAlgorithm::Twofish,
                    "CAMELLIA128" => SymmetricKeyAlgorithm::Camellia128,
                    "CAMELLIA192" => SymmetricKeyAlgorithm::Camellia192,
                    "CAMELLIA256" => SymmetricKeyAlgorithm::Camellia256,
                    "CAST5" => SymmetricKeyAlgorithm::CAST5,
                    "BLOWFISH" => SymmetricKeyAlgorithm::Blowfish,
                    "3DES" => SymmetricKeyAlgorithm::TripleDES,
                    _ => return Err(Error::usage(format!("--gpg-options: unknown cipher {v:?}"))),
                };
            }
            "--compress-algo" | "-z" => {
                let v = value()?;
                *compression = match v.to_ascii_lowercase().as_str() {
                    "none" | "0" | "uncompressed" => None,
                    "zip" | "1" => Some(CompressionAlgorithm::ZIP),
                    "zlib" | "2" | "6" | "9" => Some(CompressionAlgorithm::ZLIB),
                    "bzip2" | "3" => Some(CompressionAlgorithm::BZip2),
                    _ => {
                        return Err(Error::usage(format!(
                            "--gpg-options: unknown compression {v:?}"
                        )))
                    }
                };
            }
            other => crate::log::warn(&format!("--gpg-options: {other} is ignored by ferrodup")),
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_specs_match_ids_fingerprints_and_emails() {
        let fps = vec![
            "C2D3172E3F23C092984DF90276BA19CC2C948486".to_string(),
            "1111222233334444555566667777888899990000".to_string(),
        ];
        let uids = vec!["Duplicity Fixture <fixture@example.invalid>".to_string()];
        for spec in [
            "C2D3172E3F23C092984DF90276BA19CC2C948486",
            "c2d3172e3f23c092984df90276ba19cc2c948486",
            "76BA19CC2C948486",
            "0x2C948486",
            "99990000",
            "fixture@example.invalid",
            "<fixture@example.invalid>",
            "Duplicity Fixture",
        ] {
            assert!(spec_matches(spec, &fps, &uids), "{spec}");
        }
        for spec in ["DEADBEEF", "other@example.invalid", "2C94848"] {
            assert!(!spec_matches(spec, &fps, &uids), "{spec}");
        }
    }

    #[test]
    fn validsig_names_the_required_signer() {
        let sub = "1111222233334444555566667777888899990000";
        let primary = "C2D3172E3F23C092984DF90276BA19CC2C948486";
        // VALIDSIG by a signing subkey of `primary`.
        let line = format!("{sub} 2024-01-01 1704067200 0 4 0 22 10 00 {primary}");
        let signer = |spec: &str, fps: &[&str]| Signer {
            spec: spec.to_string(),
            fingerprints: fps.iter().map(|f| f.to_string()).collect(),
        };
        assert!(signer(primary, &[]).made(&line));
        assert!(signer("0x2C948486", &[]).made(&line));
        assert!(signer("99990000", &[]).made(&line));
        assert!(signer("me@example.invalid", &[primary]).made(&line));
        assert!(!signer("DEADBEEFDEADBEEF", &[]).made(&line));
        assert!(!signer("me@example.invalid", &[]).made(&line));
        assert!(!signer("other@example.invalid", &["AAAA"]).made(&line));
    }

    #[test]
    fn keybox_trust_packets_are_dropped() {
        // public key packet (tag 6, old format, 2 bytes), trust packet (tag 12), user id (13)
        let block = [0x98, 2, 1, 2, 0xb0, 1, 9, 0xb4, 1, b'u'];
        assert_eq!(
            without_trust_packets(&block),
            vec![0x98, 2, 1, 2, 0xb4, 1, b'u']
        );
    }
}
