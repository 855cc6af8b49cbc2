//! File selection with duplicity's semantics: `--include`/`--exclude` globs, literals and
//! regular expressions, filelists, `--files-from`, `--exclude-if-present`,
//! `--exclude-device-files`, `--exclude-other-filesystems`, `--exclude-older-than` and the
//! `--filter-*` mode switches, in command-line order, first match wins.
//!
//! Each rule answers include, exclude, "scan" (a directory that is kept only if something
//! inside it is included) or nothing; a path no rule speaks about is included. Patterns see
//! the source directory as given (canonicalised as duplicity does) joined with the path, so
//! for a backup of `src` they read `src/...` or start with `**`. For restore and
//! list-current-files they see archive paths, as list-current-files prints them.
//!
//! All patterns are compiled into one [`regex::RegexSet`], so a path is matched against
//! every rule in a single pass.

mod pattern;

use crate::error::{Code, Error, Result};
use crate::format::tar::EntryType;
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use pattern::PY_END;
pub use pattern::{glob_to_regex, python_regex};

/// A selection option as given on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opt {
    Include,
    Exclude,
    IncludeRegexp,
    ExcludeRegexp,
    IncludeFilelist,
    ExcludeFilelist,
    FilesFrom,
    ExcludeIfPresent,
    ExcludeDeviceFiles,
    ExcludeOtherFilesystems,
    ExcludeOlderThan,
    FilterGlobbing,
    FilterIgnorecase,
    FilterLiteral,
    FilterRegexp,
    FilterStrictcase,
}

impl Opt {
    /// Every option with its command-line spelling.
    pub const ALL: [(Opt, &'static str); 16] = [
        (Opt::Include, "--include"),
        (Opt::Exclude, "--exclude"),
        (Opt::IncludeRegexp, "--include-regexp"),
        (Opt::ExcludeRegexp, "--exclude-regexp"),
        (Opt::IncludeFilelist, "--include-filelist"),
        (Opt::ExcludeFilelist, "--exclude-filelist"),
        (Opt::FilesFrom, "--files-from"),
        (Opt::ExcludeIfPresent, "--exclude-if-present"),
        (Opt::ExcludeDeviceFiles, "--exclude-device-files"),
        (Opt::ExcludeOtherFilesystems, "--exclude-other-filesystems"),
        (Opt::ExcludeOlderThan, "--exclude-older-than"),
        (Opt::FilterGlobbing, "--filter-globbing"),
        (Opt::FilterIgnorecase, "--filter-ignorecase"),
        (Opt::FilterLiteral, "--filter-literal"),
        (Opt::FilterRegexp, "--filter-regexp"),
        (Opt::FilterStrictcase, "--filter-strictcase"),
    ];

    pub fn flag(self) -> &'static str {
        Opt::ALL
            .iter()
            .find(|(o, _)| *o == self)
            .map(|(_, s)| *s)
            .unwrap_or("--include")
    }

    fn is_filter(self) -> bool {
        matches!(
            self,
            Opt::FilterGlobbing
                | Opt::FilterIgnorecase
                | Opt::FilterLiteral
                | Opt::FilterRegexp
                | Opt::FilterStrictcase
        )
    }
}

/// The selection options of a command, in command-line order.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub opts: Vec<(Opt, String)>,
    /// `--null-separator`: filelists are split on NUL instead of newlines.
    pub null_separator: bool,
    /// The current time, for `--exclude-older-than`.
    pub now: i64,
}

impl Options {
    pub fn is_empty(&self) -> bool {
        self.opts.is_empty()
    }

    pub fn has(&self, o: Opt) -> bool {
        self.opts.iter().any(|(x, _)| *x == o)
    }
}

/// What paths are matched against.
#[derive(Clone, Debug)]
pub enum Namespace {
    /// A source tree being backed up or verified: patterns see `root` (as given) joined
    /// with the path.
    Source(PathBuf),
    /// Archive paths (restore, list-current-files).
    Archive,
}

/// A rule's answer about one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Exclude,
    Include,
    /// A directory kept only if something inside it is included.
    Scan,
}

/// What a rule is asked about a path.
pub struct Candidate<'a> {
    /// Archive path (`a/b`; the root is empty).
    pub index: &'a [u8],
    pub kind: EntryType,
    pub mtime: i64,
    /// The object on the local file system, when there is one.
    pub fs_path: Option<&'a Path>,
    /// `st_dev` of the local object.
    pub fs_dev: Option<u64>,
}

enum Test {
    Glob {
        set: usize,
        exact: Option<Regex>,
        scan: Option<usize>,
    },
    Regexp {
        set: usize,
    },
    Always,
    Literal {
        text: String,
        fold: bool,
    },
    IfPresent(OsString),
    Devices,
    OtherFs(u64),
    OlderThan(i64),
}

struct Rule {
    test: Test,
    include: bool,
    /// How the rule was given, for messages.
    what: String,
}

/// A compiled set of selection rules.
pub struct Selection {
    rules: Vec<Rule>,
    /// Every pattern of the rules, and the "scan" patterns of include globs, in one set.
    matchers: RegexSet,
    /// The source path as patterns see it (empty for archive paths).
    prefix: String,
    archive: bool,
    /// `--files-from`: archive path of a directory -> the names to visit in it.
    files_from: Option<HashMap<Vec<u8>, Vec<OsString>>>,
}

/// Patterns waiting to be compiled into the set.
#[derive(Default)]
struct Sets {
    matchers: Vec<String>,
}

struct Builder<'a> {
    ns: &'a Namespace,
    prefix: String,
    root_is_dir: bool,
    rules: Vec<Rule>,
    sets: Sets,
}

/// duplicity's canonical form of a source path: no empty or `.` components.
pub fn canonical(path: &Path) -> String {
    let s = String::from_utf8_lossy(path.as_os_str().as_bytes()).into_owned();
    let parts: Vec<&str> = s
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if s.starts_with('/') {
        format!("/{}", parts.join("/"))
    } else if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

fn fold(s: &str) -> String {
    s.to_lowercase()
}

/// A pattern that does not compile. duplicity does not catch Python's `re.error`, so it
/// exits with its status for an uncaught exception.
fn regex_error(what: &str, e: &regex::Error) -> Error {
    let text = e.to_string();
    let detail = text
        .lines()
        .find_map(|l| l.strip_prefix("error: "))
        .unwrap_or(text.lines().last().unwrap_or(""))
        .to_string();
    Error::usage(format!(
        "{what} is not a regular expression ferrodup can use: {detail}"
    ))
    .with_code(Code::Exception)
}

impl Builder<'_> {
    fn source_error(&self, what: &str) -> Error {
        let e = if matches!(self.ns, Namespace::Archive) {
            Error::usage(format!(
                "{what} is not an archive path pattern: restore and list patterns are relative \
                 to the backup root, as list-current-files prints them, with no leading '/' and \
                 no '.' or '..' parts"
            ))
        } else {
            Error::usage(format!(
                "{what} cannot match anything in the source directory {}: patterns are matched \
                 against whole paths, so start them with {}/ or with '**'",
                self.prefix, self.prefix
            ))
        };
        e.with_code(Code::FilePrefixError)
    }

    /// duplicity's archive-pattern rules: `./` dropped, no absolute paths, no `.`/`..`.
    fn archive_pattern(&self, what: &str, pat: &str) -> Result<String> {
        let mut p = pat;
        while let Some(rest) = p.strip_prefix("./") {
            p = rest;
        }
        if p.starts_with('/') || p.split('/').any(|c| c == "." || c == "..") {
            return Err(self.source_error(what));
        }
        Ok(p.to_string())
    }

    fn glob(&mut self, what: String, pat: &str, include: bool, ignore_case: bool) -> Result<()> {
        let mut pat = pat.to_string();
        if matches!(self.ns, Namespace::Archive) {
            pat = self.archive_pattern(&what, &pat)?;
        }
        let everything = pat == "**";
        let mut dirs_only = false;
        if pat == "/" {
            pat = "/**".to_string();
        } else if pat.len() > 1 && pat.ends_with('/') {
            dirs_only = true;
            pat.pop();
        }
        let flags = if ignore_case { "(?i)" } else { "" };
        let body = glob_to_regex(&pat);
        let comp = format!("{flags}^{body}(?:{PY_END}|/)");
        let exact = format!("{flags}^{body}{PY_END}");
        let truncated = match pat.find("**") {
            Some(k) => &pat[..k + 2],
            None => pat.as_str(),
        };
        let parts: Vec<&str> = truncated.split('/').collect();
        if parts.len() > 2 && parts[1..parts.len() - 1].contains(&"") {
            return Err(Error::usage(format!(
                "{what} has consecutive '/'s; remove the extra slash"
            ))
            .with_code(Code::GlobbingError));
        }
        let prefixes: Vec<String> = (1..=parts.len())
            .map(|k| {
                let p = parts[..k].join("/");
                glob_to_regex(if p.is_empty() { "/" } else { &p })
            })
            .collect();
        let scan = format!("{flags}^(?:{}){PY_END}", prefixes.join("|"));
        let compile = |re: &str| {
            RegexBuilder::new(re)
                .size_limit(1 << 26)
                .build()
                .map_err(|e| regex_error(&what, &e))
        };
        let comp_re = compile(&comp)?;
        let exact_re = compile(&exact)?;
        let scan_re = compile(&scan)?;
        if !self.archive() {
            let root = &self.prefix;
            let hits_root = if comp_re.is_match(root) {
                !dirs_only || !exact_re.is_match(root) || self.root_is_dir
            } else {
                scan_re.is_match(root)
            };
            if !hits_root {
                return Err(self.source_error(&what));
            }
        }
        if everything {
            self.rules.push(Rule {
                test: Test::Always,
                include,
                what,
            });
            return Ok(());
        }
        let set = self.sets.matchers.len();
        self.sets.matchers.push(comp);
        let scan = include.then(|| {
            self.sets.matchers.push(scan);
            self.sets.matchers.len() - 1
        });
        self.rules.push(Rule {
            test: Test::Glob {
                set,
                exact: dirs_only.then_some(exact_re),
                scan,
            },
            include,
            what,
        });
        Ok(())
    }

    fn archive(&self) -> bool {
        matches!(self.ns, Namespace::Archive)
    }

    fn literal(&mut self, what: String, lit: &str, include: bool, ignore_case: bool) -> Result<()> {
        let mut lit = if self.archive() {
            self.archive_pattern(&what, lit)?
        } else {
            lit.to_string()
        };
        if lit != "/" && lit.ends_with('/') {
            lit.pop();
        }
        if ignore_case {
            lit = fold(&lit);
        }
        let test = Test::Literal {
            text: lit,
            fold: ignore_case,
        };
        if !self.archive() {
            let root = self.prefix.clone();
            if literal_test(&test, &root, true).is_none() {
                return Err(self.source_error(&what));
            }
        }
        self.rules.push(Rule {
            test,
            include,
            what,
        });
        Ok(())
    }

    fn regexp(&mut self, what: String, re: &str, include: bool, ignore_case: bool) -> Result<()> {
        let flags = if ignore_case { "(?i)" } else { "" };
        let rust = format!("{flags}{}", python_regex(re));
        RegexBuilder::new(&rust)
            .size_limit(1 << 26)
            .build()
            .map_err(|e| regex_error(&what, &e))?;
        let set = self.sets.matchers.len();
        self.sets.matchers.push(rust);
        self.rules.push(Rule {
            test: Test::Regexp { set },
            include,
            what,
        });
        Ok(())
    }

    fn pattern(
        &mut self,
        what: String,
        mode: Mode,
        pat: &str,
        include: bool,
        ic: bool,
    ) -> Result<()> {
        match mode {
            Mode::Globbing => {
                let lower = pat.to_lowercase();
                if lower.starts_with("ignorecase:") {
                    let rest = &pat["ignorecase:".len()..];
                    self.glob(what, &fold(rest), include, true)
                } else {
                    self.glob(what, pat, include, ic)
                }
            }
            Mode::Literal => self.literal(what, pat, include, ic),
            Mode::Regexp => self.regexp(what, pat, include, ic),
        }
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Globbing,
    Literal,
    Regexp,
}

fn literal_test(test: &Test, name: &str, include: bool) -> Option<Verdict> {
    let Test::Literal { text, fold: f } = test else {
        return None;
    };
    let folded;
    let name = if *f {
        folded = fold(name);
        folded.as_str()
    } else {
        name
    };
    let verdict = if include {
        Verdict::Include
    } else {
        Verdict::Exclude
    };
    if name == text
        || (name.starts_with(text.as_str()) && name.as_bytes().get(text.len()) == Some(&b'/'))
    {
        Some(verdict)
    } else if include && text.starts_with(name) && text.as_bytes().get(name.len()) == Some(&b'/') {
        Some(Verdict::Scan)
    } else {
        None
    }
}

/// Reads a filelist as duplicity does (UTF-8 text, universal newlines) and splits it.
fn read_list(flag: &str, path: &str, null_separator: bool) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::usage(format!(
            "cannot read {flag} {path}: {e}; give an existing, readable file"
        ))
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::usage(format!(
            "{flag} {path} is not UTF-8 text (bad byte at offset {}); filelists must be UTF-8",
            e.utf8_error().valid_up_to()
        ))
    })?;
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let sep = if null_separator { '\0' } else { '\n' };
    Ok(text.split(sep).map(str::to_string).collect())
}

/// Python's `str.strip()` whitespace.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

impl Selection {
    /// Compiles `opts` for paths in `ns`, with duplicity's checks: every pattern must be able
    /// to match under the source directory, the last rule must be able to exclude something
    /// (everything is included by default), and a `--filter-*` switch must come before the
    /// rules it changes.
    pub fn new(opts: &Options, ns: Namespace) -> Result<Selection> {
        let (prefix, root_is_dir, root_dev) = match &ns {
            Namespace::Source(root) => {
                let md = std::fs::symlink_metadata(root).ok();
                (
                    canonical(root),
                    md.as_ref().is_some_and(|m| m.is_dir()),
                    md.map(|m| m.dev()),
                )
            }
            Namespace::Archive => (String::new(), true, None),
        };
        let flags_only: Vec<&str> = opts
            .opts
            .iter()
            .filter(|(o, _)| o.is_filter())
            .map(|(o, _)| o.flag())
            .collect();
        if let Some((last, _)) = opts.opts.last() {
            if last.is_filter() {
                return Err(Error::usage(format!(
                    "{} is the last selection option, so it changes nothing: put it before the \
                     --include/--exclude options it is meant for",
                    last.flag()
                ))
                .with_code(Code::TrailingFilter));
            }
        }
        if !flags_only.is_empty()
            && flags_only
                .iter()
                .all(|f| *f == "--filter-globbing" || *f == "--filter-strictcase")
        {
            return Err(Error::usage(format!(
                "{} only restate the default (case-sensitive globbing); remove them",
                flags_only.join(", ")
            ))
            .with_code(Code::RedundantFilter));
        }
        let mut b = Builder {
            ns: &ns,
            prefix: prefix.clone(),
            root_is_dir,
            rules: Vec::new(),
            sets: Sets::default(),
        };
        let mut mode = Mode::Globbing;
        let mut ic = false;
        let mut files_from = None;
        let mut first_rules = Vec::new();
        for (opt, arg) in &opts.opts {
            let flag = opt.flag();
            if arg.is_empty()
                && !opt.is_filter()
                && !matches!(opt, Opt::ExcludeDeviceFiles | Opt::ExcludeOtherFilesystems)
            {
                return Err(Error::usage(format!("{flag} cannot be empty")));
            }
            let what = format!("{flag} {arg:?}");
            match opt {
                Opt::Include => b.pattern(what, mode, arg, true, ic)?,
                Opt::Exclude => b.pattern(what, mode, arg, false, ic)?,
                Opt::IncludeRegexp => b.regexp(what, arg, true, ic)?,
                Opt::ExcludeRegexp => b.regexp(what, arg, false, ic)?,
                Opt::IncludeFilelist | Opt::ExcludeFilelist => {
                    let default = *opt == Opt::IncludeFilelist;
                    for (n, line) in read_list(flag, arg, opts.null_separator)?
                        .iter()
                        .enumerate()
                    {
                        let line = line.trim_matches(py_space);
                        if line.is_empty() || line.starts_with('#') {
                            continue;
                        }
                        let (include, mut pat) = if let Some(p) = line.strip_prefix("+ ") {
                            (true, p)
                        } else if let Some(p) = line.strip_prefix("- ") {
                            (false, p)
                        } else {
                            (default, line)
                        };
                        if pat.len() >= 2
                            && ((pat.starts_with('\'') && pat.ends_with('\''))
                                || (pat.starts_with('"') && pat.ends_with('"')))
                        {
                            pat = &pat[1..pat.len() - 1];
                        }
                        if pat.is_empty() {
                            continue;
                        }
                        let what = format!("{pat:?} (line {} of {flag} {arg})", n + 1);
                        b.pattern(what, mode, pat, include, ic)?;
                    }
                }
                Opt::FilesFrom => {
                    files_from = Some(read_files_from(arg, opts.null_separator)?);
                }
                Opt::ExcludeIfPresent => first_rules.push(Rule {
                    test: Test::IfPresent(OsString::from(arg)),
                    include: false,
                    what,
                }),
                Opt::ExcludeDeviceFiles => first_rules.push(Rule {
                    test: Test::Devices,
                    include: false,
                    what: flag.to_string(),
                }),
                Opt::ExcludeOtherFilesystems => {
                    if let Some(dev) = root_dev {
                        b.rules.push(Rule {
                            test: Test::OtherFs(dev),
                            include: false,
                            what: flag.to_string(),
                        });
                    }
                }
                Opt::ExcludeOlderThan => {
                    let t = crate::format::time::parse_user_time(arg, opts.now)
                        .map_err(|e| Error::usage(format!("{flag}: {e}")))?;
                    b.rules.push(Rule {
                        test: Test::OlderThan(t),
                        include: false,
                        what,
                    });
                }
                Opt::FilterGlobbing => mode = Mode::Globbing,
                Opt::FilterLiteral => mode = Mode::Literal,
                Opt::FilterRegexp => mode = Mode::Regexp,
                Opt::FilterIgnorecase => ic = true,
                Opt::FilterStrictcase => ic = false,
            }
        }
        // duplicity puts these in front of the other rules, the last given first.
        first_rules.reverse();
        first_rules.append(&mut b.rules);
        let rules = first_rules;
        if let Some(last) = rules.last() {
            if last.include {
                return Err(Error::usage(format!(
                    "the last selection rule, {}, only includes files; everything is included \
                     by default, so it does nothing: end with an exclude such as --exclude '**'",
                    last.what
                ))
                .with_code(Code::RedundantInclusion));
            }
        }
        let build = |pats: &[String]| {
            RegexSetBuilder::new(pats)
                .size_limit(1 << 28)
                .dfa_size_limit(1 << 26)
                .build()
                .map_err(|e| regex_error("the selection patterns", &e))
        };
        Ok(Selection {
            matchers: build(&b.sets.matchers)?,
            rules,
            prefix,
            archive: matches!(ns, Namespace::Archive),
            files_from,
        })
    }

    /// A selection that selects everything.
    pub fn none() -> Selection {
        Selection {
            rules: Vec::new(),
            matchers: RegexSet::empty(),
            prefix: String::new(),
            archive: true,
            files_from: None,
        }
    }

    /// True when nothing is excluded (no rules and no `--files-from`).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.files_from.is_none()
    }

    /// True if some rule looks at the file system rather than the path and metadata.
    pub fn needs_fs(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.test, Test::IfPresent(_) | Test::OtherFs(_)))
    }

    /// The names to visit in directory `index` when `--files-from` restricts the walk.
    pub fn listed(&self, index: &[u8]) -> Option<Vec<OsString>> {
        self.files_from
            .as_ref()
            .map(|m| m.get(index).cloned().unwrap_or_default())
    }

    /// The name patterns see for an archive path. Names that are not UTF-8 are seen with
    /// U+FFFD in place of each bad sequence.
    fn name_of(&self, index: &[u8]) -> String {
        let rel = match std::str::from_utf8(index) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(index),
        };
        if self.archive {
            return rel.into_owned();
        }
        let mut name = String::with_capacity(self.prefix.len() + 1 + rel.len());
        name.push_str(&self.prefix);
        if !index.is_empty() {
            if !self.prefix.ends_with('/') {
                name.push('/');
            }
            name.push_str(&rel);
        }
        name
    }

    /// The rules' verdict on one path: the first rule that includes or excludes it decides;
    /// a directory some include rule could still match inside is scanned; otherwise included.
    pub fn select(&self, c: &Candidate) -> Verdict {
        if self.rules.is_empty() {
            return Verdict::Include;
        }
        let name = self.name_of(c.index);
        let hits = self.matchers.matches(&name);
        let mut scan_pending = false;
        for rule in &self.rules {
            let verdict = if rule.include {
                Verdict::Include
            } else {
                Verdict::Exclude
            };
            let answer = match &rule.test {
                Test::Glob { set, exact, scan } => {
                    if hits.matched(*set) {
                        match exact {
                            Some(ex) if ex.is_match(&name) => {
                                (c.kind == EntryType::Directory).then_some(verdict)
                            }
                            _ => Some(verdict),
                        }
                    } else if let Some(s) = scan {
                        hits.matched(*s).then_some(Verdict::Scan)
                    } else {
                        None
                    }
                }
                Test::Regexp { set } => hits.matched(*set).then_some(verdict),
                Test::Always => Some(verdict),
                Test::Literal { .. } => literal_test(&rule.test, &name, rule.include),
                Test::IfPresent(file) => {
                    match c.fs_path.filter(|_| c.kind == EntryType::Directory) {
                        Some(dir) if contains(dir, file) => Some(Verdict::Exclude),
                        _ => None,
                    }
                }
                Test::Devices => matches!(c.kind, EntryType::CharDevice | EntryType::BlockDevice)
                    .then_some(Verdict::Exclude),
                Test::OtherFs(dev) => c
                    .fs_dev
                    .is_some_and(|d| d != *dev)
                    .then_some(Verdict::Exclude),
                Test::OlderThan(t) => {
                    (c.kind == EntryType::Regular && c.mtime < *t).then_some(Verdict::Exclude)
                }
            };
            match answer {
                Some(Verdict::Scan) => scan_pending = true,
                Some(v) => {
                    return if scan_pending && v != Verdict::Include {
                        Verdict::Scan
                    } else {
                        v
                    };
                }
                None => {}
            }
        }
        if scan_pending {
            Verdict::Scan
        } else {
            Verdict::Include
        }
    }
}

/// Whether directory `dir` holds an entry named `name` (a dangling symlink counts, as in a
/// directory listing).
fn contains(dir: &Path, name: &OsString) -> bool {
    match std::fs::symlink_metadata(dir.join(name)) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            match std::fs::read_dir(dir) {
                Ok(rd) => rd.flatten().any(|e| e.file_name() == *name),
                Err(e) => {
                    crate::log::warn(&format!(
                        "cannot read directory {} to look for {}: {e}",
                        dir.display(),
                        name.to_string_lossy()
                    ));
                    false
                }
            }
        }
        Err(_) => false,
    }
}

/// Reads a `--files-from` list: paths relative to the source directory, every character
/// significant; each path's parent directories are visited too.
fn read_files_from(file: &str, null_separator: bool) -> Result<HashMap<Vec<u8>, Vec<OsString>>> {
    let mut map: HashMap<Vec<u8>, Vec<OsString>> = HashMap::new();
    for line in read_list("--files-from", file, null_separator)? {
        if line.is_empty() {
            continue;
        }
        if line.starts_with('/') {
            return Err(Error::usage(format!(
                "--files-from {file} lists the absolute path {line:?}: list paths relative to \
                 the source directory"
            ))
            .with_code(Code::AbsoluteFilesFrom));
        }
        let parts: Vec<&str> = line
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        for k in 0..parts.len() {
            let dir = parts[..k].join("/").into_bytes();
            map.entry(dir)
                .or_default()
                .push(OsString::from_vec(parts[k].as_bytes().to_vec()));
        }
    }
    if map.is_empty() {
        return Err(Error::usage(format!(
            "--files-from {file} lists no files, so the backup would be empty"
        ))
        .with_code(Code::EmptyFilesFrom));
    }
    for names in map.values_mut() {
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        names.dedup();
    }
    Ok(map)
}

/// What to do with one object of a stream in archive order.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Leave it out (and, for a directory, everything inside).
    Skip,
    /// Emit it, after the deferred directories returned by [`TreeFilter::release`].
    Emit,
    /// Hold this directory with [`TreeFilter::defer`]: it is emitted only if something
    /// inside it is.
    Defer,
}

/// Applies a [`Selection`] to a stream of objects in archive order (a restore, a listing,
/// the backup side of verify), holding scanned directories back until something inside them
/// is selected, as duplicity does.
pub struct TreeFilter<T> {
    deferred: Vec<(Vec<u8>, T)>,
    excluded: Vec<Vec<u8>>,
}

fn is_ancestor(parent: &[u8], child: &[u8]) -> bool {
    parent.is_empty()
        || child == parent
        || (child.starts_with(parent) && child.get(parent.len()) == Some(&b'/'))
}

impl<T> Default for TreeFilter<T> {
    fn default() -> Self {
        TreeFilter {
            deferred: Vec::new(),
            excluded: Vec::new(),
        }
    }
}

impl<T> TreeFilter<T> {
    pub fn decide(&mut self, sel: &Selection, c: &Candidate) -> Decision {
        while self
            .deferred
            .last()
            .is_some_and(|(d, _)| !is_ancestor(d, c.index))
        {
            self.deferred.pop();
        }
        while self
            .excluded
            .last()
            .is_some_and(|d| !is_ancestor(d, c.index))
        {
            self.excluded.pop();
        }
        if !self.excluded.is_empty() {
            return Decision::Skip;
        }
        if c.index.is_empty() {
            // A source root is always kept (as by a backup); an archive root only with
            // something inside it.
            return if sel.archive {
                Decision::Defer
            } else {
                Decision::Emit
            };
        }
        let dir = c.kind == EntryType::Directory;
        match sel.select(c) {
            Verdict::Include => Decision::Emit,
            Verdict::Scan if dir => Decision::Defer,
            Verdict::Exclude if dir => {
                self.excluded.push(c.index.to_vec());
                Decision::Skip
            }
            _ => Decision::Skip,
        }
    }

    pub fn defer(&mut self, index: Vec<u8>, item: T) {
        self.deferred.push((index, item));
    }

    /// The deferred directories to emit, outermost first, before an emitted object.
    pub fn release(&mut self) -> impl Iterator<Item = T> + '_ {
        self.deferred.drain(..).map(|(_, t)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(opts: &[(Opt, &str)]) -> Result<Selection> {
        let o = Options {
            opts: opts.iter().map(|(o, s)| (*o, s.to_string())).collect(),
            null_separator: false,
            now: 0,
        };
        Selection::new(&o, Namespace::Source(PathBuf::from("/src")))
    }

    fn verdict(s: &Selection, path: &str, kind: EntryType) -> Verdict {
        s.select(&Candidate {
            index: path.as_bytes(),
            kind,
            mtime: 0,
            fs_path: None,
            fs_dev: None,
        })
    }

    #[test]
    fn first_match_wins_and_directories_are_scanned() {
        let s = sel(&[(Opt::Include, "/src/a/**.txt"), (Opt::Exclude, "**")]).unwrap();
        assert_eq!(verdict(&s, "a", EntryType::Directory), Verdict::Scan);
        assert_eq!(
            verdict(&s, "a/b/c.txt", EntryType::Regular),
            Verdict::Include
        );
        // A file the scan rule reaches is "scanned", which leaves a non-directory out.
        assert_eq!(verdict(&s, "a/b/c.rs", EntryType::Regular), Verdict::Scan);
        assert_eq!(verdict(&s, "b", EntryType::Directory), Verdict::Exclude);
        let s = sel(&[(Opt::Exclude, "/src/a/"), (Opt::Exclude, "/src/c")]).unwrap();
        assert_eq!(verdict(&s, "a", EntryType::Regular), Verdict::Include);
        assert_eq!(verdict(&s, "a", EntryType::Directory), Verdict::Exclude);
        assert_eq!(verdict(&s, "c/d", EntryType::Regular), Verdict::Exclude);
    }

    #[test]
    fn bad_rules_are_refused() {
        let msg = |r: Result<Selection>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg(sel(&[(Opt::Exclude, "other/x")])).contains("cannot match anything"));
        assert!(msg(sel(&[(Opt::Include, "/src/x")])).contains("only includes"));
        assert!(msg(sel(&[(Opt::Exclude, "/src//x")])).contains("consecutive"));
        assert!(msg(sel(&[(Opt::ExcludeRegexp, "(")])).contains("regular expression"));
        assert!(msg(sel(&[(Opt::Exclude, "**"), (Opt::FilterLiteral, "")])).contains("last"));
        assert!(msg(sel(&[(Opt::Include, "")])).contains("empty"));
    }
}
