//! Stream wrappers for stored files: gzip or OpenPGP, chosen by file name.

use crate::crypto::{Crypto, PgpWriter};
use crate::error::{Error, Kind, Result};
use crate::format::naming::Wrapping;
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
    let r = BufReader::with_capacity(READ_BUF, f);
    if name.ends_with(".gz") || name.ends_with(".z") {
        Ok(Box::new(crate::pargz::Gunzip::new(r)))
    } else {
        Ok(Box::new(r))
    }
}

/// Bytes per read of a stored file: small enough that the buffer stays in a core's L2
/// cache while the kernel copies into it and the hash or inflate reads it (64 KiB reads
/// hash a volume in 145 ms where 256 KiB reads take 210 ms).
pub const READ_BUF: usize = 64 * 1024;

/// Reads until `buf` is full or the input ends (retrying interrupted reads); returns the
/// bytes read.
pub fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The lowercase hex SHA1 of a file's bytes.
pub fn sha1_file(path: &Path) -> Result<String> {
    file_digest::<Sha1>(path)
}

/// The lowercase hex SHA1 of what is left to read of `f`, the file at `path`.
pub fn sha1_open(f: &mut File, path: &Path) -> Result<String> {
    digest_of::<Sha1>(f, path)
}

/// The lowercase hex digest (SHA1, MD5, SHA-256, ...) of a file's bytes, read in one pass.
pub fn file_digest<D: Digest>(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    digest_of::<D>(&mut f, path)
}

fn digest_of<D: Digest>(f: &mut File, path: &Path) -> Result<String> {
    let mut h = D::new();
    let mut buf = vec![0u8; READ_BUF];
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

/// A stored file being written: counts and hashes its bytes.
pub struct HashCount<W: Write> {
    inner: W,
    count: u64,
    sha1: Sha1,
}

impl HashCount<BufWriter<File>> {
    /// Creates `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let f = File::create(path).map_err(|e| Error::io(path, e))?;
        Ok(HashCount {
            inner: BufWriter::with_capacity(256 * 1024, f),
            count: 0,
            sha1: Sha1::new(),
        })
    }

    /// Bytes written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Writes out what is buffered; returns the file's size and SHA1. The data may still
    /// be only in the page cache: enough for a temporary file that is read back and
    /// stored elsewhere (a crash loses it either way).
    pub fn finish(self) -> io::Result<(u64, String)> {
        self.inner.into_inner().map_err(|e| e.into_error())?;
        Ok((self.count, hex(&self.sha1.finalize())))
    }

    /// As [`HashCount::finish`], and flushes the file to disk: for a file that stays.
    pub fn finish_synced(self) -> io::Result<(u64, String)> {
        let file = self.inner.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok((self.count, hex(&self.sha1.finalize())))
    }
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

/// A reader that keeps its first error, so that a failure to read the input can be told
/// from a failure to write the output.
struct Source<'r> {
    inner: &'r mut dyn Read,
    failed: Option<io::Error>,
}

impl Read for Source<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let shown = io::Error::new(e.kind(), e.to_string());
                    self.failed = Some(e);
                    return Err(shown);
                }
                ok => return ok,
            }
        }
    }
}

/// Writes everything `input` yields into `dest`, wrapped as `wrap` (gzip is made on every
/// core, one member per 1 MiB with no file name); returns the size.
/// Input that cannot be decrypted, decompressed or verified is corrupt backup data;
/// failures to write `dest` are local errors.
pub fn store(
    input: &mut dyn Read,
    dest: &Path,
    wrap: Wrapping,
    crypto: Option<&Crypto>,
) -> Result<u64> {
    let mut src = Source {
        inner: input,
        failed: None,
    };
    let written = match wrap {
        Wrapping::Gpg => {
            let c = crypto.ok_or_else(|| Error::usage("encryption is not configured"))?;
            let mut w: PgpWriter = c.writer(dest)?;
            io::copy(&mut src, &mut w).and_then(|_| w.finish())
        }
        Wrapping::Gzip => {
            let out = HashCount::create(dest)?;
            crate::pargz::compress(&mut src, out, crate::wall_clock() as u32)
                .and_then(HashCount::finish_synced)
        }
        Wrapping::Plain => {
            let mut out = HashCount::create(dest)?;
            io::copy(&mut src, &mut out).and_then(|_| out.finish_synced())
        }
    };
    if let Some(e) = src.failed {
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
    let (size, _) = written.map_err(|e| Error::io(dest, e))?;
    Ok(size)
}

/// Wraps the file `src` into `dest`; returns the size of `dest`.
pub fn store_file(src: &Path, dest: &Path, wrap: Wrapping, crypto: Option<&Crypto>) -> Result<u64> {
    let mut input = File::open(src).map_err(|e| Error::io(src, e))?;
    store(&mut input, dest, wrap, crypto)
}
