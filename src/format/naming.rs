//! duplicity's file names: generating the long names 3.x writes and parsing both the long and
//! the legacy short forms.

use super::time;

/// The configured name prefixes (`--file-prefix`, `--file-prefix-archive`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prefixes {
    pub base: String,
    pub archive: String,
    pub manifest: String,
    pub signature: String,
    pub jsonstat: String,
}

/// Which backup set a file belongs to: a full at `T`, or an incremental from `T1` to `T2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetTimes {
    Full(i64),
    Inc(i64, i64),
}

impl SetTimes {
    /// The time the set starts from (a full's time, an incremental's previous end).
    pub fn start(self) -> i64 {
        match self {
            SetTimes::Full(t) | SetTimes::Inc(t, _) => t,
        }
    }

    /// The set's own time (a full's time, an incremental's end time).
    pub fn end(self) -> i64 {
        match self {
            SetTimes::Full(t) | SetTimes::Inc(_, t) => t,
        }
    }

    pub fn is_full(self) -> bool {
        matches!(self, SetTimes::Full(_))
    }

    fn stem(self) -> String {
        match self {
            SetTimes::Full(t) => format!("duplicity-full.{}", time::to_string(t)),
            SetTimes::Inc(a, b) => format!(
                "duplicity-inc.{}.to.{}",
                time::to_string(a),
                time::to_string(b)
            ),
        }
    }

    fn sig_stem(self) -> String {
        match self {
            SetTimes::Full(t) => format!("duplicity-full-signatures.{}", time::to_string(t)),
            SetTimes::Inc(a, b) => format!(
                "duplicity-new-signatures.{}.to.{}",
                time::to_string(a),
                time::to_string(b)
            ),
        }
    }
}

/// What a file is within its set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Volume(u32),
    Manifest,
    Signature,
    Jsonstat,
}

/// Everything a file name tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedName {
    pub set: SetTimes,
    pub kind: Kind,
    pub partial: bool,
    pub encrypted: bool,
    pub compressed: bool,
}

/// How a stored file is wrapped, which decides its suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wrapping {
    Plain,
    Gzip,
    Gpg,
}

impl Wrapping {
    fn suffix(self) -> &'static str {
        match self {
            Wrapping::Plain => "",
            Wrapping::Gzip => ".gz",
            Wrapping::Gpg => ".gpg",
        }
    }
}

impl Prefixes {
    pub fn volume(&self, set: SetTimes, n: u32, wrap: Wrapping) -> String {
        format!(
            "{}{}{}.vol{n}.difftar{}",
            self.base,
            self.archive,
            set.stem(),
            wrap.suffix()
        )
    }

    /// A manifest name; manifests are never gzipped.
    pub fn manifest(&self, set: SetTimes, partial: bool, encrypted: bool) -> String {
        format!(
            "{}{}{}.manifest{}{}",
            self.base,
            self.manifest,
            set.stem(),
            if partial { ".part" } else { "" },
            if encrypted { ".gpg" } else { "" }
        )
    }

    pub fn signature(&self, set: SetTimes, partial: bool, wrap: Wrapping) -> String {
        format!(
            "{}{}{}.sigtar{}{}",
            self.base,
            self.signature,
            set.sig_stem(),
            if partial { ".part" } else { "" },
            wrap.suffix()
        )
    }

    /// A `--jsonstat` statistics file name.
    pub fn jsonstat(&self, set: SetTimes, partial: bool, wrap: Wrapping) -> String {
        format!(
            "{}{}{}.jsonstat{}{}",
            self.base,
            self.jsonstat,
            set.stem(),
            if partial { ".part" } else { "" },
            wrap.suffix()
        )
    }

    /// Parses a file name carrying exactly the configured prefixes; `None` for any other file.
    pub fn parse(&self, name: &str) -> Option<ParsedName> {
        let encrypted = name.ends_with(".gpg") || name.ends_with(".g") || name.ends_with(".p7m");
        let compressed = name.ends_with(".gz") || name.ends_with(".z");
        let with = |p: &str| -> Option<&str> {
            name.strip_prefix(self.base.as_str())
                .and_then(|r| r.strip_prefix(p))
        };
        let make = |set, kind, partial| ParsedName {
            set,
            kind,
            partial,
            encrypted,
            compressed,
        };
        if let Some(rest) = with(&self.archive) {
            if let Some(r) = parse_short(rest, "df", 1, ".dt", true) {
                return Some(make(
                    SetTimes::Full(r.t[0]),
                    Kind::Volume(r.num?),
                    r.partial,
                ));
            }
            if let Some(r) = parse_long(rest, "duplicity-full.", false, Tail::Volume) {
                return Some(make(
                    SetTimes::Full(r.t[0]),
                    Kind::Volume(r.num?),
                    r.partial,
                ));
            }
        }
        if let Some(rest) = with(&self.manifest) {
            if let Some(r) = parse_short(rest, "df", 1, ".m", false) {
                return Some(make(SetTimes::Full(r.t[0]), Kind::Manifest, r.partial));
            }
            if let Some(r) = parse_long(rest, "duplicity-full.", false, Tail::Exact(".manifest")) {
                return Some(make(SetTimes::Full(r.t[0]), Kind::Manifest, r.partial));
            }
        }
        if let Some(rest) = with(&self.archive) {
            if let Some(r) = parse_short(rest, "di", 2, ".dt", true) {
                return Some(make(
                    SetTimes::Inc(r.t[0], r.t[1]),
                    Kind::Volume(r.num?),
                    false,
                ));
            }
            if let Some(r) = parse_long(rest, "duplicity-inc.", true, Tail::Volume) {
                return Some(make(
                    SetTimes::Inc(r.t[0], r.t[1]),
                    Kind::Volume(r.num?),
                    false,
                ));
            }
        }
        if let Some(rest) = with(&self.manifest) {
            if let Some(r) = parse_short(rest, "di", 2, ".m", false) {
                return Some(make(
                    SetTimes::Inc(r.t[0], r.t[1]),
                    Kind::Manifest,
                    r.partial,
                ));
            }
            if let Some(r) = parse_long(rest, "duplicity-inc.", true, Tail::Exact(".manifest")) {
                return Some(make(
                    SetTimes::Inc(r.t[0], r.t[1]),
                    Kind::Manifest,
                    r.partial,
                ));
            }
        }
        if let Some(rest) = with(&self.signature) {
            if let Some(r) = parse_short(rest, "dfs", 1, ".st", false) {
                return Some(make(SetTimes::Full(r.t[0]), Kind::Signature, r.partial));
            }
            if let Some(r) = parse_long(
                rest,
                "duplicity-full-signatures.",
                false,
                Tail::Exact(".sigtar"),
            ) {
                return Some(make(SetTimes::Full(r.t[0]), Kind::Signature, r.partial));
            }
            if let Some(r) = parse_short(rest, "dns", 2, ".st", false) {
                return Some(make(
                    SetTimes::Inc(r.t[0], r.t[1]),
                    Kind::Signature,
                    r.partial,
                ));
            }
            if let Some(r) = parse_long(
                rest,
                "duplicity-new-signatures.",
                true,
                Tail::Exact(".sigtar"),
            ) {
                return Some(make(
                    SetTimes::Inc(r.t[0], r.t[1]),
                    Kind::Signature,
                    r.partial,
                ));
            }
        }
        if let Some(rest) = with(&self.jsonstat) {
            for (stem, inc) in [("duplicity-full.", false), ("duplicity-inc.", true)] {
                if let Some(r) = parse_long(rest, stem, inc, Tail::Exact(".jsonstat")) {
                    let set = if inc {
                        SetTimes::Inc(r.t[0], r.t[1])
                    } else {
                        SetTimes::Full(r.t[0])
                    };
                    return Some(make(set, Kind::Jsonstat, r.partial));
                }
            }
        }
        None
    }
}

struct Parts {
    t: [i64; 2],
    num: Option<u32>,
    partial: bool,
}

enum Tail {
    Volume,
    Exact(&'static str),
}

/// After the end of a pattern: end of name or a dot.
fn at_boundary(s: &str) -> bool {
    s.is_empty() || s.starts_with('.')
}

/// Matches `[.part]` then end-or-dot; returns whether `.part` was there.
fn partial_then_boundary(s: &str, partial_word: &str) -> Option<bool> {
    if let Some(r) = s.strip_prefix(partial_word) {
        if at_boundary(r) {
            return Some(true);
        }
    }
    at_boundary(s).then_some(false)
}

/// Long names: `stem T [.to. T2] tail`, times matched lazily as Python's `.*?` does.
fn parse_long(rest: &str, stem: &str, inc: bool, tail: Tail) -> Option<Parts> {
    let body = rest.strip_prefix(stem)?;
    let candidates: Vec<(i64, &str)> = if inc {
        let mut out = Vec::new();
        let mut from = 0;
        while let Some(pos) = body[from..].find(".to.") {
            let at = from + pos;
            if let Some(t) = time::from_filename(&body[..at]) {
                out.push((t, &body[at + 4..]));
            }
            from = at + 1;
        }
        out
    } else {
        vec![(0, body)]
    };
    for (start, body) in candidates {
        let mut from = 0;
        let marker = match tail {
            Tail::Volume => ".vol",
            Tail::Exact(m) => m,
        };
        while let Some(pos) = body[from..].find(marker) {
            let at = from + pos;
            let after = &body[at + marker.len()..];
            let timestr = &body[..at];
            from = at + 1;
            let (num, partial) = match tail {
                Tail::Volume => {
                    let digits = after.bytes().take_while(|b| b.is_ascii_digit()).count();
                    if digits == 0 {
                        continue;
                    }
                    let Some(r) = after[digits..].strip_prefix(".difftar") else {
                        continue;
                    };
                    let Some(partial) = partial_then_boundary(r, ".part") else {
                        continue;
                    };
                    (after[..digits].parse().ok(), partial && !inc)
                }
                Tail::Exact(_) => {
                    let Some(partial) = partial_then_boundary(after, ".part") else {
                        continue;
                    };
                    (None, partial)
                }
            };
            let t = time::from_filename(timestr)?;
            return Some(Parts {
                t: if inc { [start, t] } else { [t, t] },
                num,
                partial,
            });
        }
    }
    None
}

fn base36(s: &str) -> Option<i64> {
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    {
        return None;
    }
    i64::from_str_radix(s, 36).ok()
}

/// Legacy short names: `df.<t36>.<n36>.dt`, `di.<t36>.<t36>.m[.p]`, `dfs.<t36>.st[.p]` ...
fn parse_short(rest: &str, stem: &str, ntimes: usize, tail: &str, volume: bool) -> Option<Parts> {
    let body = rest.strip_prefix(stem)?.strip_prefix('.')?;
    let fields: Vec<&str> = body.split('.').collect();
    let needed = ntimes + usize::from(volume);
    if fields.len() < needed + 1 {
        return None;
    }
    let mut t = [0i64; 2];
    for (i, slot) in t.iter_mut().enumerate().take(ntimes) {
        *slot = base36(fields[i])?;
    }
    if ntimes == 1 {
        t[1] = t[0];
    }
    let num = if volume {
        Some(base36(fields[ntimes])? as u32)
    } else {
        None
    };
    let tail_word = tail.strip_prefix('.')?;
    if fields[needed] != tail_word {
        return None;
    }
    let partial = fields.get(needed + 1) == Some(&"p");
    Some(Parts { t, num, partial })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: i64 = 1704110400;
    const T2: i64 = 1704196800;

    #[test]
    fn round_trip_long_names() {
        let p = Prefixes::default();
        let full = SetTimes::Full(T1);
        let inc = SetTimes::Inc(T1, T2);
        let cases = [
            (
                p.volume(full, 3, Wrapping::Gzip),
                "duplicity-full.20240101T120000Z.vol3.difftar.gz",
            ),
            (
                p.volume(inc, 1, Wrapping::Gpg),
                "duplicity-inc.20240101T120000Z.to.20240102T120000Z.vol1.difftar.gpg",
            ),
            (
                p.manifest(full, true, false),
                "duplicity-full.20240101T120000Z.manifest.part",
            ),
            (
                p.signature(inc, false, Wrapping::Plain),
                "duplicity-new-signatures.20240101T120000Z.to.20240102T120000Z.sigtar",
            ),
        ];
        for (made, want) in cases {
            assert_eq!(made, want);
            assert!(p.parse(&made).is_some(), "{made}");
        }
        let v = p.parse("duplicity-inc.20240101T120000Z.to.20240102T120000Z.vol12.difftar.gpg");
        assert_eq!(
            v,
            Some(ParsedName {
                set: inc,
                kind: Kind::Volume(12),
                partial: false,
                encrypted: true,
                compressed: false
            })
        );
        let m = p
            .parse("duplicity-full.20240101T120000Z.manifest.part")
            .unwrap();
        assert!(m.partial);
        assert_eq!(m.kind, Kind::Manifest);
        let s = p
            .parse("duplicity-full-signatures.20240101T120000Z.sigtar.gz")
            .unwrap();
        assert_eq!((s.set, s.kind, s.compressed), (full, Kind::Signature, true));
        assert!(p.parse("duplicity-full.garbage.vol1.difftar.gz").is_none());
        assert!(p.parse("README").is_none());
        assert!(p
            .parse("duplicity-full.20240101T120000Z.vol1.difftarx")
            .is_none());
    }

    #[test]
    fn prefixes_must_match() {
        let p = Prefixes {
            archive: "cold_".into(),
            manifest: "hot_".into(),
            signature: "hot_".into(),
            ..Default::default()
        };
        let full = SetTimes::Full(T1);
        assert!(p
            .parse("cold_duplicity-full.20240101T120000Z.vol1.difftar.gz")
            .is_some());
        assert!(p
            .parse("hot_duplicity-full.20240101T120000Z.manifest")
            .is_some());
        assert!(p
            .parse("duplicity-full.20240101T120000Z.manifest")
            .is_none());
        assert_eq!(
            p.manifest(full, false, false),
            "hot_duplicity-full.20240101T120000Z.manifest"
        );
    }

    #[test]
    fn short_names() {
        let p = Prefixes::default();
        let t36 = |t: i64| {
            let mut n = t as u64;
            let mut s = Vec::new();
            while n > 0 {
                s.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
                n /= 36;
            }
            s.reverse();
            String::from_utf8(s).unwrap()
        };
        let v = p.parse(&format!("df.{}.2.dt.g", t36(T1))).unwrap();
        assert_eq!(
            (v.set, v.kind, v.encrypted),
            (SetTimes::Full(T1), Kind::Volume(2), true)
        );
        let m = p.parse(&format!("di.{}.{}.m.p", t36(T1), t36(T2))).unwrap();
        assert_eq!(
            (m.set, m.kind, m.partial),
            (SetTimes::Inc(T1, T2), Kind::Manifest, true)
        );
        let s = p
            .parse(&format!("dns.{}.{}.st.z", t36(T1), t36(T2)))
            .unwrap();
        assert_eq!((s.kind, s.compressed), (Kind::Signature, true));
    }
}
