//! Stream wrappers for stored files: gzip or OpenPGP, chosen by file name.

use crate::crypto::{Crypto, PgpWriter};
use crate::error::{Error, Kind, Result};
use crate::format::naming::Wrapping;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use sha1::{Digest, Sha1};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

/// Opens a downloaded file for reading, unwrapping it according to its name.
pub fn open_stored(
    path: &Path,
    name: &str,
    crypto: Option<&Crypto>,
) -> Result<Box<dyn Read + Send>> {
    if name.ends_with(".p7m") {
        return Err(Error::new(
            Kind::Unsupported,
            format!("{name} was written with --use-gpgsm, which ferrodup does not support"),
        ));
    }
    if name.ends_with(".gpg") || name.ends_with(".g") {
        return match crypto {
            Some(c) => c.reader(path, name),
            None => Err(Error::usage(format!(
                "{name} is encrypted: run without --no-encryption, with PASSPHRASE set or the \
                 secret key available"
            ))),
        };
    }
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let r = BufReader::with_capacity(256 * 1024, f);
    if name.ends_with(".gz") || name.ends_with(".z") {
        Ok(Box::new(MultiGzDecoder::new(r)))
    } else {
        Ok(Box::new(r))
    }
}

/// The lowercase hex SHA1 of a file's bytes.
pub fn sha1_file(path: &Path) -> Result<String> {
    file_digest::<Sha1>(path)
}

/// The lowercase hex digest (SHA1, MD5, SHA-256, ...) of a file's bytes, read in one pass.
pub fn file_digest<D: Digest>(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = D::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Counts and hashes the bytes written through it.
pub struct HashCount<W: Write> {
    inner: W,
    count: u64,
    sha1: Sha1,
}

impl<W: Write> Write for HashCount<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        self.sha1.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A stored file being written: plain, gzip or OpenPGP, counting and hashing the stored
/// bytes.
pub enum StoredWriter {
    Plain(HashCount<BufWriter<File>>),
    Gzip(Box<GzEncoder<HashCount<BufWriter<File>>>>),
    Pgp(PgpWriter),
}

impl StoredWriter {
    /// Creates `path` wrapped as `wrap`; gzip is level 6 with no file name, as Python's
    /// `GzipFile` writes it.
    pub fn create(path: &Path, wrap: Wrapping, crypto: Option<&Crypto>) -> Result<Self> {
        if wrap == Wrapping::Gpg {
            let c = crypto.ok_or_else(|| Error::usage("encryption is not configured"))?;
            return Ok(StoredWriter::Pgp(c.writer(path)?));
        }
        let gzip = wrap == Wrapping::Gzip;
        let mtime = crate::wall_clock() as u32;
        let f = File::create(path).map_err(|e| Error::io(path, e))?;
        let hc = HashCount {
            inner: BufWriter::with_capacity(256 * 1024, f),
            count: 0,
            sha1: Sha1::new(),
        };
        Ok(if gzip {
            StoredWriter::Gzip(Box::new(
                GzBuilder::new()
                    .mtime(mtime)
                    .operating_system(255)
                    .write(hc, Compression::new(6)),
            ))
        } else {
            StoredWriter::Plain(hc)
        })
    }

    /// Bytes of the stored file so far.
    pub fn stored_len(&self) -> u64 {
        match self {
            StoredWriter::Plain(h) => h.count,
            StoredWriter::Gzip(g) => g.get_ref().count,
            StoredWriter::Pgp(p) => p.stored_len(),
        }
    }

    /// Finishes the file, returning its size and SHA1.
    pub fn finish(self) -> io::Result<(u64, String)> {
        let mut hc = match self {
            StoredWriter::Plain(h) => h,
            StoredWriter::Gzip(g) => g.finish()?,
            StoredWriter::Pgp(p) => return p.finish(),
        };
        hc.flush()?;
        let file = hc.inner.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok((hc.count, hex(&hc.sha1.finalize())))
    }
}

impl Write for StoredWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            StoredWriter::Plain(h) => h.write(buf),
            StoredWriter::Gzip(g) => g.write(buf),
            StoredWriter::Pgp(p) => p.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            StoredWriter::Plain(h) => h.flush(),
            StoredWriter::Gzip(g) => g.flush(),
            StoredWriter::Pgp(p) => p.flush(),
        }
    }
}

/// Writes everything `input` yields into `dest`, wrapped as `wrap`; returns the size.
/// Input that cannot be decrypted, decompressed or verified is corrupt backup data;
/// failures to write `dest` are local errors.
pub fn store(
    input: &mut dyn Read,
    dest: &Path,
    wrap: Wrapping,
    crypto: Option<&Crypto>,
) -> Result<u64> {
    let mut w = StoredWriter::create(dest, wrap, crypto)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let e = match Error::from_io(e) {
                    Ok(carried) => return Err(carried),
                    Err(e) => e,
                };
                return Err(match e.kind() {
                    io::ErrorKind::InvalidData
                    | io::ErrorKind::InvalidInput
                    | io::ErrorKind::UnexpectedEof => Error::corrupt(e.to_string()),
                    _ => Error::new(
                        Kind::Io,
                        format!("reading the data for {}: {e}", dest.display()),
                    ),
                });
            }
        };
        w.write_all(&buf[..n]).map_err(|e| Error::io(dest, e))?;
    }
    let (size, _) = w.finish().map_err(|e| Error::io(dest, e))?;
    Ok(size)
}

/// Wraps the file `src` into `dest`; returns the size of `dest`.
pub fn store_file(src: &Path, dest: &Path, wrap: Wrapping, crypto: Option<&Crypto>) -> Result<u64> {
    let mut input = File::open(src).map_err(|e| Error::io(src, e))?;
    store(&mut input, dest, wrap, crypto)
}
