//! `collection-status --file-changed PATH` and `--show-changes-in-set N`: the change lists
//! that backups record in their manifests (`Filelist`), printed as duplicity 3.2.1 prints
//! them, for the sets of the chain it reports (the latest, matched by a signature chain).
//! duplicity reads them from the archive dir only; ferrodup reads a set's manifest from the
//! target when the archive dir has no copy.

use crate::commands::dupview::{set_kind, Set, View};
use crate::commands::Context;
use crate::error::{Error, Result};
use crate::format::manifest::{quote, ChangedFile};
use crate::format::time::pretty;

const RULE: &str = "-------------------------";

/// The changed files `set`'s manifest lists, as (kind, quoted path) pairs.
fn changed_files(ctx: &Context, set: &Set) -> Result<Vec<(String, Vec<u8>)>> {
    manifest_changes(ctx, set.manifest.as_deref())
}

/// The changed files the manifest `name` lists (none without a manifest), as (kind,
/// quoted path) pairs; a partial manifest is read from the archive dir.
pub fn manifest_changes(ctx: &Context, name: Option<&str>) -> Result<Vec<(String, Vec<u8>)>> {
    let Some(name) = name else {
        return Ok(Vec::new());
    };
    let partial = ctx.prefixes.parse(name).is_some_and(|p| p.partial);
    let manifest = if partial {
        let path = ctx.cache.path(name);
        let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        crate::format::manifest::Manifest::parse(&text).map_err(|e| {
            Error::corrupt(format!(
                "manifest {} is corrupt ({e}); run cleanup",
                path.display()
            ))
        })?
    } else {
        crate::commands::restore::read_manifest_named(ctx, name, true)?
    };
    Ok(manifest
        .files_changed
        .into_iter()
        .map(|(kind, path): ChangedFile| (kind, quote(&path)))
        .collect())
}

/// `--file-changed PATH`: each set of the chain whose change list names PATH.
pub fn print_file_changes(ctx: &Context, view: &View, path: &str) -> Result<()> {
    let Some(chain) = view.matched_chain() else {
        return Ok(());
    };
    let path = expand(path);
    // duplicity compares the path, with spaces escaped, to the manifest's quoted entries.
    let wanted = if path.contains(' ') {
        format!("\"{}\"", path.replace(' ', "\\x20"))
    } else {
        path.clone()
    };
    let mut rows = Vec::new();
    for set in chain.sets() {
        let files = changed_files(ctx, set)?;
        if let Some((kind, _)) = files.iter().find(|(_, p)| p == wanted.as_bytes()) {
            rows.push((set, title(kind)));
        }
    }
    let row = |a: &str, b: &str, c: &str| format!("{a:>20}   {b:>30}  {c:>20}");
    let mut l = vec![
        RULE.to_string(),
        format!("File: {}", py_bytes(path.as_bytes())),
        format!("Total number of backup: {}", rows.len()),
        row("Type of backup set:", "Time:", "Type of file change:"),
    ];
    for (set, kind) in rows {
        l.push(row(
            set_kind(set),
            &pretty(set.time()),
            &py_bytes(kind.as_bytes()),
        ));
    }
    l.push(RULE.to_string());
    for line in l {
        crate::log::out_line(&line);
    }
    Ok(())
}

/// `--show-changes-in-set N`: the change list of the Nth set counted back from the latest.
pub fn print_set_changes(ctx: &Context, view: &View, n: i64) -> Result<()> {
    let Some(chain) = view.matched_chain() else {
        return Ok(());
    };
    let sets = chain.sets();
    let count = sets.len() as i64;
    let back = if n < 0 { n + count } else { n };
    if !(0..count).contains(&back) {
        return Err(Error::input(format!(
            "--show-changes-in-set {n}: the current chain has {count} backup set(s); give 0 \
             for the latest up to {} for its full backup",
            count - 1
        )));
    }
    let set = sets[(count - 1 - back) as usize];
    let files = changed_files(ctx, set)?;
    let width = files.iter().map(|(_, p)| p.len()).max().unwrap_or(0).max(5);
    let row = |a: &str, b: &str| {
        let pad = width.saturating_sub(a.chars().count());
        format!("{a}{}  {b:>20}", " ".repeat(pad))
    };
    let mut l = vec![
        RULE.to_string(),
        format!(" Backup set time: {}", pretty(set.time())),
        format!("Total number of changes: {}", files.len()),
        row("File:", "Type of file change:"),
    ];
    for (kind, path) in &files {
        l.push(row(&String::from_utf8_lossy(path), kind));
    }
    l.push(RULE.to_string());
    for line in l {
        crate::log::out_line(&line);
    }
    Ok(())
}

/// Python's `bytes.title()` for a change kind: `new` becomes `New`.
fn title(kind: &str) -> String {
    let mut out = String::new();
    let mut after_letter = false;
    for c in kind.chars() {
        out.extend(if after_letter {
            c.to_lowercase().collect::<Vec<_>>()
        } else {
            c.to_uppercase().collect()
        });
        after_letter = c.is_ascii_alphabetic();
    }
    out
}

/// Python's `repr()` of a byte string, which duplicity prints for these two values.
fn py_bytes(b: &[u8]) -> String {
    let q = if b.contains(&b'\'') && !b.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut s = format!("b{q}");
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            c if c as char == q => {
                s.push('\\');
                s.push(q);
            }
            0x20..=0x7e => s.push(c as char),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push(q);
    s
}

/// `$VAR`, `${VAR}` and a leading `~` expanded, as duplicity reads path options.
fn expand(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail, braced) = match after.strip_prefix('{') {
            Some(b) => match b.find('}') {
                Some(j) => (&b[..j], &b[j + 1..], true),
                None => ("", after, false),
            },
            None => {
                let j = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..j], &after[j..], false)
            }
        };
        match std::env::var(name) {
            Ok(v) if !name.is_empty() => out.push_str(&v),
            _ if braced => out.push_str(&format!("${{{name}}}")),
            _ => {
                out.push('$');
                out.push_str(name);
            }
        }
        rest = tail;
    }
    out.push_str(rest);
    match out.strip_prefix('~') {
        Some(r) if r.is_empty() || r.starts_with('/') => match std::env::var("HOME") {
            Ok(h) => format!("{}{r}", h.trim_end_matches('/')),
            Err(_) => out,
        },
        _ => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_reprs() {
        assert_eq!(py_bytes(b"a b"), "b'a b'");
        assert_eq!(py_bytes(b"it's"), "b\"it's\"");
        assert_eq!(py_bytes(b"\xc3\xa9\\"), "b'\\xc3\\xa9\\\\'");
        assert_eq!(title("deleted"), "Deleted");
    }

    #[test]
    fn expands_like_duplicity() {
        std::env::set_var("FERRODUP_CHANGES_TEST", "x");
        assert_eq!(
            expand("$FERRODUP_CHANGES_TEST/${FERRODUP_CHANGES_TEST}"),
            "x/x"
        );
        assert_eq!(expand("$NOT_SET_FERRODUP/a"), "$NOT_SET_FERRODUP/a");
        assert_eq!(expand("a$"), "a$");
    }
}
