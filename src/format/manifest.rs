//! Manifests: which paths each volume holds, the SHA1 of each stored volume file, and the
//! list of changed files.

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Compares two archive paths (`a/b/c`, root = empty) the way duplicity orders indexes:
/// component by component, bytewise.
pub fn cmp_index(a: &[u8], b: &[u8]) -> Ordering {
    let key = |c: u8| if c == b'/' { 0u8 } else { c };
    a.iter().map(|&c| key(c)).cmp(b.iter().map(|&c| key(c)))
}

/// The first `n` components of an archive path.
fn index_prefix(path: &[u8], n: usize) -> &[u8] {
    if n == 0 || path.is_empty() {
        return &path[..0];
    }
    let mut count = 0;
    for (i, &c) in path.iter().enumerate() {
        if c == b'/' {
            count += 1;
            if count == n {
                return &path[..i];
            }
        }
    }
    path
}

/// Number of components of an archive path.
pub fn index_len(path: &[u8]) -> usize {
    if path.is_empty() {
        0
    } else {
        path.iter().filter(|&&c| c == b'/').count() + 1
    }
}

fn needs_quote(c: u8) -> bool {
    matches!(
        c,
        b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | b'\\' | b'"' | b'\''
    )
}

/// duplicity's `Quote`: strings with white space, backslashes or quotes get `\xHH` escapes
/// inside double quotes.
pub fn quote(s: &[u8]) -> Vec<u8> {
    if !s.iter().any(|&c| needs_quote(c)) {
        return s.to_vec();
    }
    let mut out = vec![b'"'];
    for &c in s {
        if needs_quote(c) {
            out.extend_from_slice(format!("\\x{c:02x}").as_bytes());
        } else {
            out.push(c);
        }
    }
    out.push(b'"');
    out
}

/// The inverse of [`quote`].
pub fn unquote(s: &[u8]) -> Result<Vec<u8>, String> {
    if s.first() != Some(&b'"') {
        return Ok(s.to_vec());
    }
    if s.len() < 2 || s.last() != Some(&b'"') {
        return Err("unterminated quoted string".into());
    }
    let inner = &s[1..s.len() - 1];
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        if inner[i] == b'\\' {
            let hex = inner
                .get(i + 2..i + 4)
                .filter(|_| inner.get(i + 1) == Some(&b'x'))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("bad escape in quoted string")?;
            out.push(hex);
            i += 4;
        } else {
            out.push(inner[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// What one volume holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeInfo {
    pub number: u32,
    pub start: Vec<u8>,
    pub start_block: Option<u64>,
    pub end: Vec<u8>,
    pub end_block: Option<u64>,
    pub hashes: Vec<(String, String)>,
    /// The stored file's size (a `Size` line, which ferrodup writes and duplicity's
    /// reader skips), so that `check` can compare it with a listing.
    pub size: Option<u64>,
}

impl VolumeInfo {
    /// The best hash: SHA1, then MD5, then whatever exists.
    pub fn best_hash(&self) -> Option<(&str, &str)> {
        for want in ["SHA1", "MD5"] {
            if let Some((k, v)) = self.hashes.iter().find(|(k, _)| k == want) {
                return Some((k, v));
            }
        }
        self.hashes.first().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// True if this volume may hold `path` or anything below it.
    pub fn contains(&self, path: &[u8]) -> bool {
        let n = index_len(path);
        cmp_index(index_prefix(&self.start, n), path) != Ordering::Greater
            && cmp_index(path, &self.end) != Ordering::Greater
    }

    pub fn to_text(&self) -> Vec<u8> {
        let idx = |p: &[u8]| {
            if p.is_empty() {
                b".".to_vec()
            } else {
                quote(p)
            }
        };
        let blk = |b: Option<u64>| b.map_or(" ".to_string(), |n| n.to_string());
        let mut s = format!("Volume {}:\n", self.number).into_bytes();
        s.extend_from_slice(b"    StartingPath   ");
        s.extend(idx(&self.start));
        s.extend(format!(" {}\n", blk(self.start_block)).into_bytes());
        s.extend_from_slice(b"    EndingPath     ");
        s.extend(idx(&self.end));
        s.extend(format!(" {}\n", blk(self.end_block)).into_bytes());
        for (k, v) in &self.hashes {
            s.extend(format!("    Hash {k} {v}\n").into_bytes());
        }
        if let Some(n) = self.size {
            s.extend(format!("    Size {n}\n").into_bytes());
        }
        s
    }
}

/// A changed-file entry: `new`, `changed` or `deleted`, and the path.
pub type ChangedFile = (String, Vec<u8>);

/// A parsed or in-progress manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub hostname: Option<String>,
    pub localdir: Option<Vec<u8>>,
    pub volumes: BTreeMap<u32, VolumeInfo>,
    pub files_changed: Vec<ChangedFile>,
}

impl Manifest {
    /// `Hostname` and `Localdir` lines, written first.
    pub fn header_text(&self) -> Vec<u8> {
        let mut s = Vec::new();
        if let Some(h) = self.hostname.as_deref().filter(|h| !h.is_empty()) {
            s.extend(format!("Hostname {h}\n").into_bytes());
        }
        if let Some(d) = self.localdir.as_deref().filter(|d| !d.is_empty()) {
            s.extend_from_slice(b"Localdir ");
            s.extend(quote(d));
            s.push(b'\n');
        }
        s
    }

    /// The `Filelist` section, written last.
    pub fn filelist_text(&self) -> Vec<u8> {
        let mut s = format!("Filelist {}\n", self.files_changed.len()).into_bytes();
        for (kind, path) in &self.files_changed {
            s.extend(Self::filelist_line(kind, path));
        }
        s
    }

    /// One entry of the `Filelist` section.
    pub fn filelist_line(kind: &str, path: &[u8]) -> Vec<u8> {
        let mut s = format!("    {kind:<7}  ").into_bytes();
        s.extend(quote(path));
        s.push(b'\n');
        s
    }

    /// The whole manifest in the order a backup writes it.
    pub fn to_text(&self) -> Vec<u8> {
        let mut s = self.header_text();
        for v in self.volumes.values() {
            s.extend(v.to_text());
        }
        s.extend(self.filelist_text());
        s
    }

    /// Parses a manifest held in memory, with its file list.
    pub fn parse(text: &[u8]) -> Result<Manifest, String> {
        Self::parse_reader(text, true)
    }

    /// Parses a manifest line by line; later `Volume n:` entries replace earlier ones, and
    /// entries above the last-listed volume number are dropped (a resumed backup's
    /// leftovers). The file list, which can be as long as the tree, is kept only when
    /// `filelist` is true.
    pub fn parse_reader(mut r: impl std::io::BufRead, filelist: bool) -> Result<Manifest, String> {
        let mut m = Manifest::default();
        let field = |line: &[u8], name: &str| -> Option<Vec<u8>> {
            let n = name.len();
            (line.len() > n
                && line[..n].eq_ignore_ascii_case(name.as_bytes())
                && line[n].is_ascii_whitespace())
            .then(|| line[n + 1..].to_vec())
        };
        let mut current: Option<(VolumeInfo, bool, bool)> = None;
        let mut latest = 0u32;
        let mut in_filelist = false;
        let finish = |cur: Option<(VolumeInfo, bool, bool)>,
                      m: &mut Manifest,
                      latest: &mut u32|
         -> Result<(), String> {
            if let Some((vi, got_start, got_end)) = cur {
                if !got_start || !got_end {
                    return Err(format!("volume {} has no start or end path", vi.number));
                }
                *latest = vi.number;
                m.volumes.insert(vi.number, vi);
            }
            Ok(())
        };
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = r
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("read error: {e}"))?;
            if n == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if m.hostname.is_none() {
                if let Some(v) = field(&line, "hostname") {
                    m.hostname = Some(String::from_utf8_lossy(&unquote(&v)?).into_owned());
                    continue;
                }
            }
            if m.localdir.is_none() {
                if let Some(v) = field(&line, "localdir") {
                    m.localdir = Some(unquote(&v)?);
                    continue;
                }
            }
            if field(&line, "volume").is_some() {
                finish(current.take(), &mut m, &mut latest)?;
                in_filelist = false;
                let vi = VolumeInfo {
                    number: parse_volume_number(&line)?,
                    start: Vec::new(),
                    start_block: None,
                    end: Vec::new(),
                    end_block: None,
                    hashes: Vec::new(),
                    size: None,
                };
                current = Some((vi, false, false));
                continue;
            }
            if let Some(v) = field(&line, "filelist") {
                finish(current.take(), &mut m, &mut latest)?;
                std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.trim().parse::<usize>().ok())
                    .ok_or("bad Filelist count")?;
                in_filelist = true;
                continue;
            }
            let parts: Vec<&[u8]> = line
                .split(|c| c.is_ascii_whitespace())
                .filter(|p| !p.is_empty())
                .collect();
            let Some(first) = parts.first() else {
                continue;
            };
            if let Some((vi, got_start, got_end)) = current.as_mut() {
                let num = vi.number;
                let block = |p: Option<&&[u8]>| -> Result<Option<u64>, String> {
                    p.map(|b| {
                        std::str::from_utf8(b)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| format!("bad block number in volume {num}"))
                    })
                    .transpose()
                };
                let index = |p: Option<&&[u8]>| -> Result<Vec<u8>, String> {
                    let raw = unquote(p.ok_or(format!("volume {num}: missing path"))?)?;
                    Ok(if raw == b"." { Vec::new() } else { raw })
                };
                match first.to_ascii_lowercase().as_slice() {
                    b"startingpath" => {
                        vi.start = index(parts.get(1))?;
                        vi.start_block = block(parts.get(2))?;
                        *got_start = true;
                    }
                    b"endingpath" => {
                        vi.end = index(parts.get(1))?;
                        vi.end_block = block(parts.get(2))?;
                        *got_end = true;
                    }
                    b"hash" if parts.len() >= 3 => {
                        let k = String::from_utf8_lossy(parts[1]).into_owned();
                        let v = String::from_utf8_lossy(parts[2]).into_owned();
                        vi.hashes.retain(|(old, _)| *old != k);
                        vi.hashes.push((k, v));
                    }
                    b"size" => {
                        let n = parts.get(1).and_then(|b| std::str::from_utf8(b).ok());
                        vi.size = Some(
                            n.and_then(|n| n.parse().ok())
                                .ok_or_else(|| format!("bad Size in volume {num}"))?,
                        );
                    }
                    _ => {}
                }
            } else if in_filelist && filelist && parts.len() >= 2 {
                m.files_changed.push((
                    String::from_utf8_lossy(parts[0]).into_owned(),
                    unquote(&parts[1..].concat())?,
                ));
            }
        }
        finish(current.take(), &mut m, &mut latest)?;
        m.volumes.retain(|&n, _| n <= latest || latest == 0);
        Ok(m)
    }

    /// Volume numbers that may hold `path` or anything below it.
    pub fn volumes_containing(&self, path: &[u8]) -> Vec<u32> {
        self.volumes
            .values()
            .filter(|v| v.contains(path))
            .map(|v| v.number)
            .collect()
    }
}

fn parse_volume_number(line: &[u8]) -> Result<u32, String> {
    let rest = &line[7..];
    let digits: Vec<u8> = rest
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    if digits.is_empty() || rest.get(digits.len()) != Some(&b':') {
        return Err(format!(
            "bad volume line {:?}",
            String::from_utf8_lossy(line)
        ));
    }
    std::str::from_utf8(&digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "bad volume number".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTIVOL: &str = "Hostname fixture-host
Localdir src
Volume 1:
    StartingPath   .  
    EndingPath     big.bin 15
    Hash SHA1 d1afed50fe7a94fc24b09a41eb8bc3d5a39f2083
Volume 2:
    StartingPath   big.bin 16
    EndingPath     big.bin 30
    Hash SHA1 1f1f67ff69b4b6030990ea468bbe09dc7b63d4dc
Volume 3:
    StartingPath   big.bin 31
    EndingPath     to-be-deleted.txt  
    Hash SHA1 2f6612603f08e0d4ddb083b8b282b6fddd9a5902
Filelist 2
    new      big.bin
    new      \"sub/deeper/file\\x20with\\x20spaces.txt\"
";

    #[test]
    fn parses_and_rewrites_byte_identically() {
        let m = Manifest::parse(MULTIVOL.as_bytes()).unwrap();
        assert_eq!(m.hostname.as_deref(), Some("fixture-host"));
        assert_eq!(m.volumes.len(), 3);
        assert_eq!(m.volumes[&1].end_block, Some(15));
        assert_eq!(m.volumes[&1].start, b"");
        assert_eq!(m.files_changed[1].1, b"sub/deeper/file with spaces.txt");
        assert_eq!(String::from_utf8(m.to_text()).unwrap(), MULTIVOL);
        assert_eq!(m.volumes_containing(b"big.bin"), vec![1, 2, 3]);
        assert_eq!(m.volumes_containing(b"hello.txt"), vec![3]);
        assert_eq!(m.volumes_containing(b""), vec![1, 2, 3]);
    }

    #[test]
    fn size_and_md5_lines_round_trip_and_sha1_stays_the_best_hash() {
        let text = "Volume 1:\n    StartingPath   .  \n    EndingPath     a  \n    \
                    Hash SHA1 aa\n    Hash MD5 bb\n    Size 1234\nFilelist 0\n";
        let m = Manifest::parse(text.as_bytes()).unwrap();
        assert_eq!(m.volumes[&1].size, Some(1234));
        assert_eq!(m.volumes[&1].best_hash(), Some(("SHA1", "aa")));
        assert_eq!(String::from_utf8(m.to_text()).unwrap(), text);
        let bad = text.replace("Size 1234", "Size lots");
        assert!(Manifest::parse(bad.as_bytes()).is_err());
    }

    #[test]
    fn later_volume_entries_win() {
        let text = "Volume 1:\n    StartingPath   .  \n    EndingPath     a  \n    Hash SHA1 aa\n\
                    Volume 2:\n    StartingPath   a  \n    EndingPath     b  \n    Hash SHA1 bb\n\
                    Volume 2:\n    StartingPath   a  \n    EndingPath     c  \n    Hash SHA1 cc\n";
        let m = Manifest::parse(text.as_bytes()).unwrap();
        assert_eq!(m.volumes[&2].end, b"c");
        assert_eq!(m.volumes[&2].best_hash(), Some(("SHA1", "cc")));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote(b"plain"), b"plain");
        assert_eq!(quote(b"a b"), b"\"a\\x20b\"");
        assert_eq!(unquote(&quote(b"it's \"x\"\\")).unwrap(), b"it's \"x\"\\");
        assert!(unquote(b"\"abc").is_err());
    }

    #[test]
    fn index_order_is_by_component() {
        assert_eq!(cmp_index(b"a/b", b"a.b"), Ordering::Less);
        assert_eq!(cmp_index(b"a", b"a/b"), Ordering::Less);
        assert_eq!(cmp_index(b"", b"a"), Ordering::Less);
    }
}
