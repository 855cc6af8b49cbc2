//! Encrypted files whose deflate runs on every core. rpgp compresses a message on one
//! thread, and cannot take data compressed already, so for ZLIB or ZIP without a signature
//! the message is made here: the session key packets (rpgp's), then a SEIPD v1 packet
//! (rpgp's encryptor: random prefix, AES-CFB and the MDC) whose plaintext is a compressed
//! packet whose content is a literal packet holding the data. Packets of unknown length are
//! written with partial body lengths, as rpgp writes them. The literal framing and the
//! Adler-32 are made as the data comes; the deflate is [`ParGz`]'s, on the pool's workers;
//! the encryption runs on its own thread, reading the compressed bytes in order.

use super::{encryption_subkey, ChanReader, CountHash, Crypto, EncKey};
use crate::error::{Error, Result};
use crate::pargz::{self, ParGz, Pool, Ratio};
use pgp::composed::Esk;
use pgp::crypto::hash::HashAlgorithm;
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::packet::{PublicKeyEncryptedSessionKey, SymKeyEncryptedSessionKey};
use pgp::ser::Serialize;
use pgp::types::{CompressionAlgorithm, KeyId, Password, StringToKey};
use sha1::{Digest, Sha1};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

/// Body bytes per partial length piece, rpgp's default (a power of two, at least 512).
const PART: usize = 512 * 1024;
/// The partial body length octet for [`PART`] bytes (2^19).
const PARTIAL: u8 = 0xe0 | 19;
/// Compressed bytes gathered before they go to the encryption thread.
const SEND: usize = 256 * 1024;

const TAG_COMPRESSED: u8 = 8;
const TAG_LITERAL: u8 = 11;
const TAG_SEIPD: u8 = 18;

/// One packet of unknown length as it is written: a new-format header, pieces of [`PART`]
/// bytes with partial body lengths, and a last piece (maybe empty) with a fixed length.
struct Packet<W> {
    out: W,
    tag: u8,
    buf: Vec<u8>,
    started: bool,
}

impl<W: Write> Packet<W> {
    fn new(out: W, tag: u8) -> Self {
        Packet {
            out,
            tag,
            buf: Vec::with_capacity(PART),
            started: false,
        }
    }

    fn piece(&mut self, data: &[u8], len: &[u8]) -> io::Result<()> {
        if !self.started {
            self.started = true;
            self.out.write_all(&[0xc0 | self.tag])?;
        }
        self.out.write_all(len)?;
        self.out.write_all(data)
    }

    /// Writes the last piece; returns the output.
    fn finish(mut self) -> io::Result<W> {
        let buf = std::mem::take(&mut self.buf);
        let n = buf.len();
        let len = match n {
            0..=191 => vec![n as u8],
            192..=8383 => vec![((n - 192) >> 8) as u8 + 192, (n - 192) as u8],
            _ => {
                let mut v = vec![255];
                v.extend_from_slice(&(n as u32).to_be_bytes());
                v
            }
        };
        self.piece(&buf, &len)?;
        Ok(self.out)
    }
}

impl<W: Write> Write for Packet<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.is_empty() && data.len() >= PART {
            self.piece(&data[..PART], &[PARTIAL])?;
            return Ok(PART);
        }
        let n = (PART - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PART {
            let buf = std::mem::take(&mut self.buf);
            self.piece(&buf, &[PARTIAL])?;
            self.buf = buf;
            self.buf.clear();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends what is written, in pieces of [`SEND`] bytes or more, to the encryption thread.
struct ChanWriter {
    tx: mpsc::SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChanWriter {
    fn send(&mut self) -> io::Result<()> {
        let buf = std::mem::replace(&mut self.buf, Vec::with_capacity(SEND * 2));
        self.tx
            .send(buf)
            .map_err(|_| io::Error::other("the encryption thread stopped"))
    }

    /// Sends the rest; the encryption thread sees the end once this is dropped.
    fn finish(mut self) -> io::Result<()> {
        self.send()
    }
}

impl Write for ChanWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= SEND {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The error of a file whose stream failed before.
fn over() -> io::Error {
    io::Error::other("the encrypted stream ended after an error")
}

type Stored = io::Result<(u64, String)>;

/// What ends an encrypted file: called once, on a worker, with its stored size and SHA1 or
/// the first error.
pub type OnStored = Box<dyn FnOnce(Stored) + Send + 'static>;

type Handle = Arc<Mutex<Option<thread::JoinHandle<Stored>>>>;

/// Waits for the encryption thread (its output closed already) and returns its result;
/// its error comes first: a failing output (a full disk) is why the stream stopped.
fn ended(handle: &Handle, before: io::Result<()>) -> Stored {
    let h = handle.lock().unwrap_or_else(|e| e.into_inner()).take();
    let stored = match h.map(|h| h.join()) {
        Some(Ok(r)) => r,
        Some(Err(_)) => Err(io::Error::other("the encryption thread panicked")),
        None => Err(io::Error::other("the encryption thread stopped")),
    };
    match (before, stored) {
        (_, Err(e)) | (Err(e), Ok(_)) => Err(e),
        (Ok(()), Ok(s)) => Ok(s),
    }
}

/// An encrypted file being written, compressed on the pool's workers.
pub struct ParPgpWriter {
    literal: Packet<Vec<u8>>,
    adler: Option<simd_adler32::Adler32>,
    gz: Option<ParGz<'static, Packet<ChanWriter>>>,
    handle: Handle,
}

impl ParPgpWriter {
    /// Hands on the next plain bytes; they go to the workers in chunks of
    /// [`pargz::CHUNK`] bytes of the literal packet.
    pub fn push(&mut self, data: &[u8]) -> io::Result<()> {
        self.literal.write_all(data)?;
        if self.literal.out.len() < pargz::CHUNK {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.literal.out);
        if let Some(a) = &mut self.adler {
            a.write(&chunk);
        }
        let pushed = match self.gz.as_mut() {
            Some(gz) => gz.push(chunk),
            None => Err(over()),
        };
        if pushed.is_err() {
            // The stream is over: closing it lets the encryption thread end.
            self.gz = None;
            return ended(&self.handle, pushed).map(|_| ());
        }
        Ok(())
    }

    /// Hands on the last bytes; `on_end` gets the stored size and SHA1 once the file is
    /// complete, or the first error.
    pub fn finish(mut self, last: &[u8], on_end: OnStored) -> io::Result<()> {
        self.push(last)?;
        let literal = self.literal.finish()?;
        let trailer = self.adler.map(|mut a| {
            a.write(&literal);
            a.finish().to_be_bytes()
        });
        let gz = self.gz.take().ok_or_else(over)?;
        let handle = self.handle.clone();
        let r = gz.finish(
            literal,
            Box::new(move |r| {
                let closed = r.and_then(|mut packet| {
                    if let Some(t) = trailer {
                        packet.write_all(&t)?;
                    }
                    packet.finish()?.finish()
                });
                on_end(ended(&handle, closed));
            }),
        );
        match r {
            Err(e) => ended(&self.handle, Err(e)).map(|_| ()),
            Ok(()) => Ok(()),
        }
    }
}

/// Encrypts the compressed packet read from `plain` with the session key, after the
/// session key packets, into `out`.
fn encrypt(
    esks: Vec<Esk>,
    cipher: SymmetricKeyAlgorithm,
    key: &[u8],
    plain: ChanReader,
    mut out: CountHash,
) -> Stored {
    let err = |e: pgp::errors::Error| io::Error::other(format!("OpenPGP encryption: {e}"));
    for esk in &esks {
        esk.to_writer(&mut out).map_err(err)?;
    }
    let mut seipd = Packet::new(out, TAG_SEIPD);
    seipd.write_all(&[1])?;
    let mut enc = cipher
        .stream_encryptor(rand::thread_rng(), key, plain)
        .map_err(err)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = io::Read::read(&mut enc, &mut buf)?;
        if n == 0 {
            break;
        }
        seipd.write_all(&buf[..n])?;
    }
    seipd.finish()?.finish()
}

impl Crypto {
    /// Starts writing an encrypted file at `path` with its deflate on `pool`, if this
    /// configuration allows it: ZLIB or ZIP compression, no signing key. `None` otherwise:
    /// [`Crypto::writer`] does the rest. `ratio` learns the plain and compressed sizes.
    pub fn par_writer(
        &self,
        path: &Path,
        pool: Pool<'static>,
        ratio: Option<Arc<Ratio>>,
    ) -> Result<Option<ParPgpWriter>> {
        let (algo, zlib) = match self.compression {
            Some(CompressionAlgorithm::ZIP) => (1u8, false),
            Some(CompressionAlgorithm::ZLIB) => (2u8, true),
            _ => return Ok(None),
        };
        if self.sign_key.is_some() {
            return Ok(None);
        }
        let bad = |e: pgp::errors::Error| {
            Error::usage(format!(
                "{}: OpenPGP encryption failed ({e})",
                path.display()
            ))
        };
        let mut rng = rand::thread_rng();
        let key = self.cipher.new_session_key(&mut rng);
        let mut esks = Vec::new();
        if self.is_symmetric() {
            let pw = Password::from(self.passphrase.clone().unwrap_or_default().as_str());
            let s2k = StringToKey::new_iterated(&mut rng, HashAlgorithm::Sha256, 224);
            let esk = SymKeyEncryptedSessionKey::encrypt_v4(&pw, &key, s2k, self.cipher);
            esks.push(Esk::SymKeyEncryptedSessionKey(esk.map_err(bad)?));
        }
        let named = self.recipients.iter().map(|s| (s, false));
        let hidden = self.hidden_recipients.iter().map(|s| (s, true));
        for (spec, anonymous) in named.chain(hidden) {
            let k = self.keyring.find_public(spec).ok_or_else(|| {
                Error::usage(format!(
                    "encryption key {spec:?} not found in the GnuPG home or the --gpg-key-file files"
                ))
            })?;
            let esk = match encryption_subkey(&k) {
                Some(EncKey::Sub(i)) => PublicKeyEncryptedSessionKey::from_session_key_v3(
                    &mut rng,
                    &key,
                    self.cipher,
                    &k.public_subkeys[i],
                ),
                Some(EncKey::Primary) => PublicKeyEncryptedSessionKey::from_session_key_v3(
                    &mut rng,
                    &key,
                    self.cipher,
                    &k,
                ),
                None => {
                    return Err(Error::usage(format!(
                        "key {spec:?} has no key that can encrypt"
                    )))
                }
            };
            let mut esk = esk.map_err(bad)?;
            if let (true, PublicKeyEncryptedSessionKey::V3 { id, .. }) = (anonymous, &mut esk) {
                *id = KeyId::WILDCARD;
            }
            esks.push(Esk::PublicKeyEncryptedSessionKey(esk));
        }
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let out = CountHash {
            inner: BufWriter::with_capacity(256 * 1024, file),
            count: Arc::new(AtomicU64::new(0)),
            sha1: Sha1::new(),
        };
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(4);
        let plain = ChanReader {
            rx,
            cur: Vec::new(),
            pos: 0,
            consumed: Arc::new(AtomicU64::new(0)),
        };
        let cipher = self.cipher;
        let handle = thread::spawn(move || encrypt(esks, cipher, key.as_ref(), plain, out));
        let mut compressed = Packet::new(
            ChanWriter {
                tx,
                buf: Vec::with_capacity(SEND * 2),
            },
            TAG_COMPRESSED,
        );
        let head: &[u8] = if zlib {
            // zlib's header for a 32 KiB window at levels 2 to 5.
            &[algo, 0x78, 0x5e]
        } else {
            &[algo]
        };
        compressed.write_all(head).map_err(|e| Error::io(path, e))?;
        let mut literal = Packet::new(Vec::with_capacity(pargz::CHUNK + PART), TAG_LITERAL);
        // Binary data, no file name, date 0: as rpgp writes it.
        literal
            .write_all(&[b'b', 0, 0, 0, 0, 0])
            .map_err(|e| Error::io(path, e))?;
        Ok(Some(ParPgpWriter {
            literal,
            adler: zlib.then(simd_adler32::Adler32::new),
            gz: Some(ParGz::raw(pool, compressed, ratio)),
            handle: Arc::new(Mutex::new(Some(handle))),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keyring;
    use std::io::Read;
    use std::path::PathBuf;
    use std::process::Command;

    const PASS: &str = "correct horse";
    const KEY: &str = "C2D3172E3F23C092984DF90276BA19CC2C948486";

    fn key_file() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/duplicity/pubkey/test-secret-key.asc")
    }

    fn crypto(compression: CompressionAlgorithm, public: bool, hidden: bool) -> Crypto {
        let mut keyring = Keyring::default();
        keyring.load_file(&key_file()).unwrap();
        let to = |on: bool| {
            if on {
                vec![KEY.to_string()]
            } else {
                Vec::new()
            }
        };
        Crypto {
            keyring,
            passphrase: (!public).then(|| PASS.to_string()),
            sign_passphrase: None,
            recipients: to(public && !hidden),
            hidden_recipients: to(public && hidden),
            sign_key: None,
            cipher: SymmetricKeyAlgorithm::AES256,
            compression: Some(compression),
            gpg_binary: "gpg".into(),
            use_agent: false,
        }
    }

    /// Text, runs and random bytes; random only if `random`.
    fn data(len: usize, seed: u64, random: bool) -> Vec<u8> {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let v = next();
            if random {
                out.extend_from_slice(&v.to_le_bytes());
            } else if v % 2 == 0 {
                out.extend_from_slice(format!("line {} of some text\n", v % 1000).as_bytes());
            } else {
                out.extend(std::iter::repeat_n(v as u8, (v % 5000) as usize));
            }
        }
        out.truncate(len);
        out
    }

    /// Writes `data` encrypted at `path` in uneven pieces; returns the stored size and SHA1.
    fn write(c: &Crypto, path: &Path, data: &[u8]) -> Stored {
        thread::scope(|scope| {
            let pool = Pool::start(scope, 2);
            let mut w = c
                .par_writer(path, pool, None)
                .unwrap()
                .expect("parallel path");
            let mut rest = data;
            let mut step = 1usize;
            while rest.len() > step {
                w.push(&rest[..step])?;
                rest = &rest[step..];
                step = step * 7 % 1_500_000 + 1;
            }
            let (tx, rx) = mpsc::channel();
            w.finish(rest, Box::new(move |r| tx.send(r).unwrap()))?;
            rx.recv().unwrap()
        })
    }

    fn gpg(home: &Path, args: &[&str]) -> std::process::Output {
        Command::new("gpg")
            .env("GNUPGHOME", home)
            .args(["--batch", "--no-tty", "--pinentry-mode", "loopback"])
            .args(args)
            .output()
            .expect("gpg is needed for these tests: install gnupg (apt-get install gnupg)")
    }

    fn check(c: &Crypto, home: &Path, data: &[u8], what: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.gpg");
        let (size, sha1) = write(c, &path, data).unwrap();
        let stored = std::fs::read(&path).unwrap();
        assert_eq!(size, stored.len() as u64, "{what}");
        assert_eq!(sha1, crate::codec::hex(&Sha1::digest(&stored)), "{what}");
        let mut back = Vec::new();
        c.reader(&path, "x.gpg")
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data, "{what}: rpgp read back other bytes");
        let p = path.to_str().unwrap();
        let out = gpg(home, &["--passphrase", PASS, "--decrypt", p]);
        assert!(
            out.status.success() && out.stdout == data,
            "{what}: gpg: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// What `gpg --list-packets` says of `path`: the packets and their framing, without
    /// offsets, lengths and salts (which differ from one message to the next).
    fn listing(home: &Path, path: &Path) -> String {
        let p = path.to_str().unwrap();
        let out = gpg(home, &["--passphrase", PASS, "--list-packets", p]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with(':') || l.starts_with("\tmode") || l.contains("unknown"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The listings of a message made here and of one rpgp makes of `data`.
    fn listings(c: &Crypto, home: &Path, data: &[u8]) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("ours.gpg");
        write(c, &ours, data).unwrap();
        let theirs = dir.path().join("rpgp.gpg");
        let mut w = c.writer(&theirs).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap();
        (listing(home, &ours), listing(home, &theirs))
    }

    fn gnupg_home() -> tempfile::TempDir {
        let home = tempfile::tempdir().unwrap();
        let out = gpg(home.path(), &["--import", key_file().to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        home
    }

    #[test]
    fn messages_decrypt_with_rpgp_and_gpg_at_every_size() {
        let home = gnupg_home();
        let h = home.path();
        let (chunk, part) = (pargz::CHUNK, PART);
        for zip in [CompressionAlgorithm::ZLIB, CompressionAlgorithm::ZIP] {
            for public in [false, true] {
                let c = crypto(zip, public, false);
                for len in [
                    0,
                    1,
                    191,
                    8384,
                    part - 6,
                    part - 5,
                    chunk - 8,
                    chunk,
                    chunk + 1,
                ] {
                    let what = format!("{zip:?} public {public} text {len}");
                    check(&c, h, &data(len, len as u64, false), &what);
                }
                let len = 3 * chunk + 12345;
                check(
                    &c,
                    h,
                    &data(len, 9, true),
                    &format!("{zip:?} public {public} random"),
                );
                check(
                    &c,
                    h,
                    &data(len, 5, false),
                    &format!("{zip:?} public {public} text"),
                );
            }
        }
    }

    #[test]
    fn gpg_lists_the_packets_rpgp_writes() {
        let home = gnupg_home();
        let h = home.path();
        // Random data: every packet is long enough for partial lengths.
        let random = data(3 * pargz::CHUNK, 1, true);
        for (zip, public, hidden) in [
            (CompressionAlgorithm::ZLIB, false, false),
            (CompressionAlgorithm::ZIP, true, false),
            (CompressionAlgorithm::ZLIB, true, true),
        ] {
            let (ours, theirs) = listings(&crypto(zip, public, hidden), h, &random);
            assert_eq!(ours, theirs);
            let algo = if zip == CompressionAlgorithm::ZIP {
                1
            } else {
                2
            };
            let esk = match (public, hidden) {
                (false, _) => {
                    ":symkey enc packet: version 4, cipher 9, aead 0,s2k 3, hash 8, seskey 256 bits"
                }
                (true, false) => ":pubkey enc packet: version 3, algo 1, keyid 76BA19CC2C948486",
                (true, true) => ":pubkey enc packet: version 3, algo 1, keyid 0000000000000000",
            };
            let want = format!(
                "{esk}\n:encrypted data packet:\n\tlength: unknown\n:compressed packet: \
                 algo={algo}\n:literal data packet:\n\tmode b (62), created 0, name=\"\",\n\t\
                 raw data: unknown length"
            );
            assert!(ours.starts_with(&want), "{ours}\nwanted:\n{want}");
        }
    }

    #[test]
    fn a_full_disk_ends_the_file_with_its_error() {
        let c = crypto(CompressionAlgorithm::ZLIB, false, false);
        for len in [10, 5 * pargz::CHUNK] {
            let e = write(&c, Path::new("/dev/full"), &data(len, 3, true)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{len}: {e}");
        }
    }
}
