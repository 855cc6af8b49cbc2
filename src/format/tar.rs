//! The tar dialect duplicity writes (Python `tarfile`, PAX format) and a streaming reader
//! that also understands GNU long names, so archives from older duplicity versions read.

use std::io::{self, Read};

/// Size of one tar block.
pub const BLOCK: usize = 512;
/// Python tarfile's record size: volumes are padded to a multiple of it.
pub const RECORD: usize = 10240;

/// Tar entry types used by duplicity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryType {
    Regular,
    Directory,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    HardLink,
    Other(u8),
}

impl EntryType {
    fn byte(self) -> u8 {
        match self {
            EntryType::Regular => b'0',
            EntryType::HardLink => b'1',
            EntryType::Symlink => b'2',
            EntryType::CharDevice => b'3',
            EntryType::BlockDevice => b'4',
            EntryType::Directory => b'5',
            EntryType::Fifo => b'6',
            EntryType::Other(b) => b,
        }
    }

    /// duplicity's name for the type (`path.type`), as its log records show it.
    pub fn duplicity_name(self) -> &'static str {
        match self {
            EntryType::Regular => "reg",
            EntryType::Directory => "dir",
            EntryType::Symlink => "sym",
            EntryType::Fifo => "fifo",
            EntryType::CharDevice => "chr",
            EntryType::BlockDevice => "blk",
            EntryType::HardLink | EntryType::Other(_) => "unknown",
        }
    }

    fn from_byte(b: u8) -> Self {
        match b {
            b'0' | 0 | b'7' => EntryType::Regular,
            b'1' => EntryType::HardLink,
            b'2' => EntryType::Symlink,
            b'3' => EntryType::CharDevice,
            b'4' => EntryType::BlockDevice,
            b'5' => EntryType::Directory,
            b'6' => EntryType::Fifo,
            other => EntryType::Other(other),
        }
    }
}

/// Metadata of one tar member, names as raw bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: Vec<u8>,
    pub kind: EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
    pub linkname: Vec<u8>,
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    pub devmajor: u32,
    pub devminor: u32,
}

impl Header {
    /// A header with every field zero or empty, as Python's bare `TarInfo` for `deleted/` entries.
    pub fn empty(name: Vec<u8>) -> Self {
        Header {
            name,
            kind: EntryType::Regular,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            linkname: Vec::new(),
            uname: Vec::new(),
            gname: Vec::new(),
            devmajor: 0,
            devminor: 0,
        }
    }

    /// The header blocks exactly as Python's `TarInfo.tobuf(PAX_FORMAT)` produces them.
    pub fn to_pax_bytes(&self) -> Vec<u8> {
        self.to_pax_bytes_with(&[])
    }

    /// Like [`Header::to_pax_bytes`], with `vendor` records (`VENDOR.key`, which readers
    /// that do not know them ignore) added to the PAX extended header.
    pub fn to_pax_bytes_with(&self, vendor: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut name = self.name.clone();
        if self.kind == EntryType::Directory && !name.ends_with(b"/") {
            name.push(b'/');
        }
        let mut pax: Vec<(&str, Vec<u8>)> = Vec::new();
        for (key, value, limit) in [
            ("path", &name, 100usize),
            ("linkpath", &self.linkname, 100),
            ("uname", &self.uname, 32),
            ("gname", &self.gname, 32),
        ] {
            if !value.is_ascii() || value.len() > limit {
                pax.push((key, value.clone()));
            }
        }
        let mut uid = self.uid;
        let mut gid = self.gid;
        let mut size = self.size;
        let mut mtime = self.mtime;
        if uid >= 8u64.pow(7) {
            pax.push(("uid", uid.to_string().into_bytes()));
            uid = 0;
        }
        if gid >= 8u64.pow(7) {
            pax.push(("gid", gid.to_string().into_bytes()));
            gid = 0;
        }
        if size >= 8u64.pow(11) {
            pax.push(("size", size.to_string().into_bytes()));
            size = 0;
        }
        if mtime < 0 || mtime >= 8i64.pow(11) {
            pax.push(("mtime", mtime.to_string().into_bytes()));
            mtime = 0;
        }
        pax.extend(vendor.iter().cloned());
        let mut out = Vec::with_capacity(BLOCK * 3);
        if !pax.is_empty() {
            let binary = pax.iter().any(|(_, v)| std::str::from_utf8(v).is_err());
            let mut records = Vec::new();
            if binary {
                records.extend_from_slice(b"21 hdrcharset=BINARY\n");
            }
            for (key, value) in &pax {
                let base = key.len() + value.len() + 3;
                let mut p = 0usize;
                loop {
                    let n = base + p.to_string().len();
                    if n == p {
                        break;
                    }
                    p = n;
                }
                records.extend_from_slice(p.to_string().as_bytes());
                records.push(b' ');
                records.extend_from_slice(key.as_bytes());
                records.push(b'=');
                records.extend_from_slice(value);
                records.push(b'\n');
            }
            out.extend_from_slice(&RawFields::pax_header(records.len() as u64).block());
            out.extend_from_slice(&records);
            pad_to_block(&mut out);
        }
        let name_field = ascii_replace(&name);
        let link_field = ascii_replace(&self.linkname);
        let uname_field = ascii_replace(&self.uname);
        let gname_field = ascii_replace(&self.gname);
        let dev = matches!(self.kind, EntryType::CharDevice | EntryType::BlockDevice)
            .then_some((self.devmajor, self.devminor));
        let main = RawFields {
            name: &name_field,
            mode: self.mode & 0o7777,
            uid,
            gid,
            size,
            mtime: mtime as u64,
            kind: self.kind.byte(),
            linkname: &link_field,
            uname: &uname_field,
            gname: &gname_field,
            dev,
        };
        out.extend_from_slice(&main.block());
        out
    }
}

/// Pads a buffer with zeros to the next multiple of [`BLOCK`].
pub fn pad_to_block(buf: &mut Vec<u8>) {
    let rem = buf.len() % BLOCK;
    if rem != 0 {
        buf.resize(buf.len() + BLOCK - rem, 0);
    }
}

/// The zero padding Python writes to end a volume of `written` bytes (never empty).
pub fn volume_footer(written: u64) -> Vec<u8> {
    vec![0u8; RECORD - (written % RECORD as u64) as usize]
}

/// The end of an archive as `TarFile.close()` writes it: two zero blocks, then padding to a record.
pub fn archive_end(written: u64) -> Vec<u8> {
    let total = written + 2 * BLOCK as u64;
    let rem = (total % RECORD as u64) as usize;
    let pad = if rem == 0 { 0 } else { RECORD - rem };
    vec![0u8; 2 * BLOCK + pad]
}

/// Python's `str.encode("ascii", "replace")` of a file-system name: one `?` per non-ASCII
/// character (or per undecodable byte).
fn ascii_replace(bytes: &[u8]) -> Vec<u8> {
    if bytes.is_ascii() {
        return bytes.to_vec();
    }
    let mut out = Vec::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            out.push(if c.is_ascii() { c as u8 } else { b'?' });
        }
        out.extend(std::iter::repeat_n(b'?', chunk.invalid().len()));
    }
    out
}

struct RawFields<'a> {
    name: &'a [u8],
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    kind: u8,
    linkname: &'a [u8],
    uname: &'a [u8],
    gname: &'a [u8],
    dev: Option<(u32, u32)>,
}

impl RawFields<'_> {
    /// The header of a PAX extended header of `size` bytes of records, as Python writes it.
    fn pax_header(size: u64) -> RawFields<'static> {
        RawFields {
            name: b"././@PaxHeader",
            mode: 0,
            uid: 0,
            gid: 0,
            size,
            mtime: 0,
            kind: b'x',
            linkname: b"",
            uname: b"",
            gname: b"",
            dev: None,
        }
    }

    fn block(&self) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        put_str(&mut b[0..100], self.name);
        put_oct(&mut b[100..108], self.mode as u64);
        put_oct(&mut b[108..116], self.uid);
        put_oct(&mut b[116..124], self.gid);
        put_oct(&mut b[124..136], self.size);
        put_oct(&mut b[136..148], self.mtime);
        b[148..156].copy_from_slice(b"        ");
        b[156] = self.kind;
        put_str(&mut b[157..257], self.linkname);
        b[257..265].copy_from_slice(b"ustar\x0000");
        put_str(&mut b[265..297], self.uname);
        put_str(&mut b[297..329], self.gname);
        if let Some((major, minor)) = self.dev {
            put_oct(&mut b[329..337], major as u64);
            put_oct(&mut b[337..345], minor as u64);
        }
        let sum: u32 = 256
            + b[..148].iter().map(|&x| x as u32).sum::<u32>()
            + b[156..].iter().map(|&x| x as u32).sum::<u32>();
        let field = format!("{sum:06o}\0");
        b[148..155].copy_from_slice(field.as_bytes());
        b
    }
}

fn put_str(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

fn put_oct(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    field[digits] = 0;
}

/// Pull-style streaming tar reader: `next_header`, then read the member's data with
/// `Read` (any unread rest is skipped by the next `next_header`).
pub struct TarReader<R: Read> {
    inner: R,
    remaining: u64,
    padding: u64,
    done: bool,
    /// PAX records of the last header that this reader does not interpret.
    extra: Vec<(Vec<u8>, Vec<u8>)>,
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            remaining: 0,
            padding: 0,
            done: false,
            extra: Vec::new(),
        }
    }

    /// The PAX records of the last header returned that are not tar fields (such as
    /// vendor `VENDOR.key` records).
    pub fn extra_records(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.extra
    }

    /// The next member's header, or `None` at the end-of-archive marker (the first zero block)
    /// or at the end of the stream on a block boundary.
    pub fn next_header(&mut self) -> io::Result<Option<Header>> {
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        self.extra.clear();
        loop {
            self.skip_rest()?;
            if self.done {
                return Ok(None);
            }
            let mut block = [0u8; BLOCK];
            if !read_block(&mut self.inner, &mut block)? {
                self.done = true;
                return Ok(None);
            }
            if block.iter().all(|&b| b == 0) {
                self.done = true;
                return Ok(None);
            }
            verify_checksum(&block)?;
            let size = parse_num(&block[124..136])?;
            let kind = block[156];
            self.remaining = size;
            self.padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
            match kind {
                b'x' | b'g' => {
                    let data = self.read_member_data(size)?;
                    if kind == b'x' {
                        pax = parse_pax(&data)?;
                    }
                }
                b'L' => long_name = Some(trim_nul(&self.read_member_data(size)?)),
                b'K' => long_link = Some(trim_nul(&self.read_member_data(size)?)),
                _ => {
                    let magic = &block[257..263];
                    let mut name = field_str(&block[0..100]);
                    if magic == b"ustar\0" || magic == b"ustar " {
                        let prefix = field_str(&block[345..500]);
                        if magic == b"ustar\0" && !prefix.is_empty() {
                            let mut full = prefix;
                            full.push(b'/');
                            full.extend_from_slice(&name);
                            name = full;
                        }
                    }
                    let mut h = Header {
                        name: long_name.take().unwrap_or(name),
                        kind: EntryType::from_byte(kind),
                        mode: parse_num(&block[100..108])? as u32,
                        uid: parse_num(&block[108..116])?,
                        gid: parse_num(&block[116..124])?,
                        size,
                        mtime: parse_num(&block[136..148])? as i64,
                        linkname: long_link
                            .take()
                            .unwrap_or_else(|| field_str(&block[157..257])),
                        uname: field_str(&block[265..297]),
                        gname: field_str(&block[297..329]),
                        devmajor: parse_num(&block[329..337]).unwrap_or(0) as u32,
                        devminor: parse_num(&block[337..345]).unwrap_or(0) as u32,
                    };
                    for (k, v) in pax {
                        let num = || -> io::Result<u64> {
                            let s = std::str::from_utf8(&v).map_err(|_| bad("bad pax number"))?;
                            let int = s.split('.').next().unwrap_or("0");
                            int.parse::<i64>()
                                .map(|n| n.max(0) as u64)
                                .map_err(|_| bad("bad pax number"))
                        };
                        match k.as_slice() {
                            b"path" => h.name = v,
                            b"linkpath" => h.linkname = v,
                            b"uname" => h.uname = v,
                            b"gname" => h.gname = v,
                            b"uid" => h.uid = num()?,
                            b"gid" => h.gid = num()?,
                            b"mtime" => h.mtime = num()? as i64,
                            b"size" => {
                                h.size = num()?;
                                self.remaining = h.size;
                                self.padding =
                                    (BLOCK as u64 - h.size % BLOCK as u64) % BLOCK as u64;
                            }
                            _ => self.extra.push((k, v)),
                        }
                    }
                    if !matches!(h.kind, EntryType::Regular | EntryType::Other(_)) {
                        // As in Python's tarfile: only regular members carry data.
                        self.remaining = 0;
                        self.padding = 0;
                    }
                    return Ok(Some(h));
                }
            }
        }
    }

    /// Reads the stream to its end after the archive's end marker, so that a wrapping
    /// decoder checks its trailer (gzip CRC, OpenPGP MDC); returns the bytes skipped.
    pub fn drain(&mut self) -> io::Result<u64> {
        self.skip_rest()?;
        io::copy(&mut self.inner, &mut io::sink())
    }

    fn read_member_data(&mut self, size: u64) -> io::Result<Vec<u8>> {
        if size > 64 << 20 {
            return Err(bad("tar extension header too large"));
        }
        // Grown as the data arrives: the header's size alone allocates nothing.
        let mut data = Vec::new();
        self.take(size).read_to_end(&mut data)?;
        if (data.len() as u64) < size {
            return Err(truncated());
        }
        Ok(data)
    }

    fn skip_rest(&mut self) -> io::Result<()> {
        let n = self.remaining.saturating_add(self.padding);
        if n > 0 {
            let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
            if copied < n {
                return Err(truncated());
            }
        }
        self.remaining = 0;
        self.padding = 0;
        Ok(())
    }
}

impl<R: Read> Read for TarReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(truncated());
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn truncated() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "tar archive is truncated")
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn read_block<R: Read>(r: &mut R, block: &mut [u8; BLOCK]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < BLOCK {
        match r.read(&mut block[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(truncated()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn verify_checksum(block: &[u8; BLOCK]) -> io::Result<()> {
    let stored = parse_num(&block[148..156]).map_err(|_| bad("invalid tar header checksum"))?;
    let unsigned: i64 = 256
        + block[..148].iter().map(|&x| x as i64).sum::<i64>()
        + block[156..].iter().map(|&x| x as i64).sum::<i64>();
    let signed: i64 = 256
        + block[..148].iter().map(|&x| x as i8 as i64).sum::<i64>()
        + block[156..].iter().map(|&x| x as i8 as i64).sum::<i64>();
    if stored as i64 == unsigned || stored as i64 == signed {
        Ok(())
    } else {
        Err(bad("tar header checksum mismatch (corrupt data)"))
    }
}

fn parse_num(field: &[u8]) -> io::Result<u64> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        let mut n: u64 = 0;
        for &b in &field[1..] {
            n = (n << 8) | b as u64;
        }
        return Ok(n);
    }
    let s: Vec<u8> = field
        .iter()
        .copied()
        .take_while(|&b| b != 0)
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if s.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(&s).map_err(|_| bad("invalid tar number field"))?;
    u64::from_str_radix(s, 8).map_err(|_| bad("invalid tar number field"))
}

fn field_str(field: &[u8]) -> Vec<u8> {
    trim_nul(field)
}

fn trim_nul(field: &[u8]) -> Vec<u8> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    field[..end].to_vec()
}

fn parse_pax(data: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let space = data[pos..]
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("bad pax record"))?;
        let len: usize = std::str::from_utf8(&data[pos..pos + space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad pax record length"))?;
        // A record is `LEN KEY=VALUE\n`, LEN counting every byte of it.
        if len < space + 3 || len > data.len() - pos || data[pos + len - 1] != b'\n' {
            return Err(bad("bad pax record length"));
        }
        let rec = &data[pos + space + 1..pos + len - 1];
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad("bad pax record"))?;
        out.push((rec[..eq].to_vec(), rec[eq + 1..].to_vec()));
        pos += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(name: &[u8]) -> Header {
        Header {
            name: name.to_vec(),
            kind: EntryType::Regular,
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            size: 5,
            mtime: 1_700_000_000,
            linkname: vec![],
            uname: b"user".to_vec(),
            gname: b"group".to_vec(),
            devmajor: 0,
            devminor: 0,
        }
    }

    #[test]
    fn short_header_checksum_is_python_style() {
        let b = reg(b"snapshot/dir/file.txt").to_pax_bytes();
        assert_eq!(b.len(), 512);
        assert_eq!(&b[155..156], b" ");
        assert_eq!(b[154], 0);
        assert_eq!(&b[257..265], b"ustar\x0000");
    }

    #[test]
    fn long_and_unicode_names_round_trip() {
        for name in [
            "snapshot/répertoire/fichier-ü.txt".as_bytes().to_vec(),
            [b"snapshot/".to_vec(), vec![b'a'; 150]].concat(),
            b"snapshot/bad\xffname".to_vec(),
        ] {
            let mut h = reg(&name);
            let mut bytes = h.to_pax_bytes();
            assert!(bytes.len() > 512);
            bytes.extend_from_slice(b"hello");
            pad_to_block(&mut bytes);
            bytes.extend(archive_end(bytes.len() as u64));
            let mut r = TarReader::new(&bytes[..]);
            let got = r.next_header().unwrap().unwrap();
            let mut data = Vec::new();
            r.read_to_end(&mut data).unwrap();
            assert_eq!(data, b"hello");
            h.size = 5;
            assert_eq!(got, h);
            assert!(r.next_header().unwrap().is_none());
        }
    }

    #[test]
    fn truncated_archive_is_an_error() {
        let mut bytes = reg(b"x").to_pax_bytes();
        bytes.extend_from_slice(b"he");
        let mut r = TarReader::new(&bytes[..]);
        r.next_header().unwrap().unwrap();
        let mut data = Vec::new();
        assert!(r.read_to_end(&mut data).is_err());
    }

    /// A PAX extended header holding `records`, then a regular member.
    fn with_pax(records: &[u8]) -> Vec<u8> {
        let mut bytes = RawFields::pax_header(records.len() as u64).block().to_vec();
        bytes.extend_from_slice(records);
        pad_to_block(&mut bytes);
        bytes.extend(reg(b"snapshot/x").to_pax_bytes());
        bytes
    }

    #[test]
    fn malformed_pax_records_are_errors() {
        for records in [
            &b"1 =\n"[..],
            b"0 =\n",
            b"3 =\n",
            b"4 =x\n",
            b"99 path=x\n",
            b"12 path=abcd",
            b"x path=a\n",
            b"11 path=abc",
        ] {
            let bytes = with_pax(records);
            let got = TarReader::new(&bytes[..]).next_header();
            assert!(got.is_err(), "{:?}", String::from_utf8_lossy(records));
        }
        let ok = with_pax(b"11 path=ab\n");
        let h = TarReader::new(&ok[..]).next_header().unwrap().unwrap();
        assert_eq!(h.name, b"ab");
    }

    #[test]
    fn huge_sizes_allocate_nothing_up_front() {
        let mut h = reg(b"snapshot/x");
        h.size = u64::MAX >> 2;
        let bytes = h.to_pax_bytes();
        let mut r = TarReader::new(&bytes[..]);
        assert_eq!(r.next_header().unwrap().unwrap().size, u64::MAX >> 2);
        assert!(r.next_header().is_err());
    }

    #[test]
    fn corrupt_header_is_an_error() {
        let mut bytes = reg(b"x").to_pax_bytes();
        bytes[10] ^= 1;
        assert!(TarReader::new(&bytes[..]).next_header().is_err());
    }
}
