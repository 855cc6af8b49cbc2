//! Stream wrappers for stored files: gzip (and, later, OpenPGP) chosen by file name.

use crate::error::{Error, Result};
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use sha1::{Digest, Sha1};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

/// Opens a downloaded file for reading, unwrapping it according to its name.
pub fn open_stored(path: &Path, name: &str) -> Result<Box<dyn Read + Send>> {
    if name.ends_with(".gpg") || name.ends_with(".g") || name.ends_with(".p7m") {
        return Err(Error::Unsupported(format!(
            "{name} is encrypted, and this version of ferrodup cannot decrypt yet; \
             restore it with duplicity or wait for OpenPGP support"
        )));
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
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha1::new();
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

/// A stored file being written: plain or gzip, counting and hashing the stored bytes.
pub enum StoredWriter {
    Plain(HashCount<BufWriter<File>>),
    Gzip(Box<GzEncoder<HashCount<BufWriter<File>>>>),
}

impl StoredWriter {
    /// Creates `path`; gzip is level 6 with no file name, as Python's `GzipFile` writes it.
    pub fn create(path: &Path, gzip: bool, mtime: u32) -> Result<Self> {
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
        }
    }

    /// Finishes the file, returning its size and SHA1.
    pub fn finish(self) -> io::Result<(u64, String)> {
        let mut hc = match self {
            StoredWriter::Plain(h) => h,
            StoredWriter::Gzip(g) => g.finish()?,
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
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            StoredWriter::Plain(h) => h.flush(),
            StoredWriter::Gzip(g) => g.flush(),
        }
    }
}

/// Gzips `src` into `dest` (level 6, Python-style header).
pub fn gzip_file(src: &Path, dest: &Path, mtime: u32) -> Result<()> {
    let mut input = File::open(src).map_err(|e| Error::io(src, e))?;
    let mut w = StoredWriter::create(dest, true, mtime)?;
    io::copy(&mut input, &mut w).map_err(|e| Error::io(dest, e))?;
    w.finish().map_err(|e| Error::io(dest, e))?;
    Ok(())
}
