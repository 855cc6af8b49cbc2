//! Names of tar members inside volumes and signature files: `snapshot/`, `diff/`,
//! `deleted/`, `signature/` and `multivol_{snapshot,diff}/<path>/<n>`.

/// What a member says about its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiffType {
    Snapshot,
    Diff,
    Deleted,
    Signature,
}

impl DiffType {
    pub fn word(self) -> &'static str {
        match self {
            DiffType::Snapshot => "snapshot",
            DiffType::Diff => "diff",
            DiffType::Deleted => "deleted",
            DiffType::Signature => "signature",
        }
    }
}

/// A parsed member name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryName {
    pub difftype: DiffType,
    /// Archive path, root = empty.
    pub index: Vec<u8>,
    /// Chunk number of a `multivol_*` member.
    pub chunk: Option<u64>,
}

fn clean_index(rest: &[u8]) -> Option<Vec<u8>> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for comp in rest.split(|&c| c == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return None,
            c => parts.push(c),
        }
    }
    Some(parts.join(&b'/'))
}

/// Parses a member name; `None` for names that are not duplicity's or that climb out with `..`.
pub fn parse(name: &[u8]) -> Option<EntryName> {
    for (prefix, difftype, multivol) in [
        (&b"snapshot"[..], DiffType::Snapshot, false),
        (b"diff", DiffType::Diff, false),
        (b"deleted", DiffType::Deleted, false),
        (b"signature", DiffType::Signature, false),
        (b"multivol_snapshot", DiffType::Snapshot, true),
        (b"multivol_diff", DiffType::Diff, true),
    ] {
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        if !(rest.is_empty() || rest.starts_with(b"/")) {
            continue;
        }
        if multivol {
            let rest = rest.strip_prefix(b"/")?;
            let rest = rest.strip_suffix(b"/").unwrap_or(rest);
            let slash = rest.iter().rposition(|&c| c == b'/')?;
            let chunk = std::str::from_utf8(&rest[slash + 1..]).ok()?.parse().ok()?;
            return Some(EntryName {
                difftype,
                index: clean_index(&rest[..slash])?,
                chunk: Some(chunk),
            });
        }
        return Some(EntryName {
            difftype,
            index: clean_index(rest)?,
            chunk: None,
        });
    }
    None
}

fn join(prefix: &str, index: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(prefix.len() + 1 + index.len());
    v.extend_from_slice(prefix.as_bytes());
    v.push(b'/');
    v.extend_from_slice(index);
    v
}

/// Member name inside a volume. The root is `snapshot/.` when a directory (completed to
/// `snapshot/./` by the tar writer), `snapshot/` when a single file is the source, as
/// duplicity names it.
pub fn volume_name(difftype: DiffType, index: &[u8], dir: bool) -> Vec<u8> {
    match (index.is_empty(), dir) {
        (true, true) => join(difftype.word(), b"."),
        _ => join(difftype.word(), index),
    }
}

/// Member name of chunk `k` of a multivol payload (`multivol_snapshot/./k` for a root file).
pub fn multivol_name(difftype: DiffType, index: &[u8], k: u64) -> Vec<u8> {
    let index = if index.is_empty() { b"." } else { index };
    let mut v = join(&format!("multivol_{}", difftype.word()), index);
    v.push(b'/');
    v.extend_from_slice(k.to_string().as_bytes());
    v
}

/// Member name inside a signature file (the root is `snapshot/`).
pub fn sig_name(difftype: DiffType, index: &[u8]) -> Vec<u8> {
    join(difftype.word(), index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse(b"snapshot/./").unwrap().index, b"");
        assert_eq!(parse(b"snapshot/").unwrap().index, b"");
        assert_eq!(parse(b"snapshot").unwrap().index, b"");
        assert_eq!(parse(b"snapshot/sub/").unwrap().index, b"sub");
        let m = parse(b"multivol_diff/a/big.bin/12").unwrap();
        assert_eq!(
            (m.difftype, m.index.as_slice(), m.chunk),
            (DiffType::Diff, &b"a/big.bin"[..], Some(12))
        );
        assert!(parse(b"snapshot/../etc/passwd").is_none());
        assert!(parse(b"snapshots/x").is_none());
        assert_eq!(volume_name(DiffType::Snapshot, b"", true), b"snapshot/.");
        assert_eq!(volume_name(DiffType::Diff, b"", false), b"diff/");
        assert_eq!(volume_name(DiffType::Snapshot, b"a", false), b"snapshot/a");
        assert_eq!(
            multivol_name(DiffType::Snapshot, b"", 3),
            b"multivol_snapshot/./3"
        );
        assert_eq!(parse(b"multivol_snapshot/./3").unwrap().index, b"");
        assert_eq!(sig_name(DiffType::Snapshot, b""), b"snapshot/");
        assert_eq!(
            multivol_name(DiffType::Snapshot, b"a b", 2),
            b"multivol_snapshot/a b/2"
        );
    }
}
