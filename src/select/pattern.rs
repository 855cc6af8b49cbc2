//! duplicity's pattern languages, translated to Rust regular expressions: shell globs
//! (`*`, `**`, `?`, `[...]`, `[!...]`) and the Python regular expressions of
//! `--include-regexp`/`--exclude-regexp`.
//!
//! Two Python behaviours are kept on purpose: `$` also matches before a final newline (so a
//! glob `a` matches a file named `a\n`, as it does in duplicity), and characters that Rust
//! treats as class operators (`[`, `&&`, `--`, `~~`) are literal inside `[...]`.

/// Python's `$` (end, or before a final newline), usable inside a larger pattern.
pub const PY_END: &str = r"(?:\n?\z)";

/// Translates a glob to a regular expression matching what duplicity's `glob_to_regex`
/// matches (unanchored; callers add anchors).
pub fn glob_to_regex(pat: &str) -> String {
    let chars: Vec<char> = pat.chars().collect();
    let n = chars.len();
    let mut i = 0;
    let mut res = String::with_capacity(pat.len() * 2);
    while i < n {
        let c = chars[i];
        i += 1;
        if c == '*' && chars.get(i) == Some(&'*') {
            res.push_str("(?s:.)*");
            i += 1;
        } else if c == '*' {
            res.push_str("[^/]*");
        } else if c == '?' {
            res.push_str("[^/]");
        } else if c == '[' {
            let mut j = i;
            if j < n && (chars[j] == '!' || chars[j] == '^') {
                j += 1;
            }
            if j < n && chars[j] == ']' {
                j += 1;
            }
            while j < n && chars[j] != ']' {
                j += 1;
            }
            if j >= n {
                res.push_str(r"\[");
            } else {
                let body = &chars[i..j];
                i = j + 1;
                let (negate, body) = match body.first() {
                    Some('!') | Some('^') => (true, &body[1..]),
                    _ => (false, body),
                };
                res.push('[');
                if negate {
                    res.push('^');
                }
                push_class_body(&mut res, body, false);
                res.push(']');
            }
        } else {
            push_literal(&mut res, c);
        }
    }
    res
}

fn push_literal(res: &mut String, c: char) {
    let mut buf = [0u8; 4];
    res.push_str(&regex::escape(c.encode_utf8(&mut buf)));
}

/// Writes the inside of a character class with Python's meaning in Rust syntax. With
/// `escapes`, backslash escapes are passed through (Python regexps); without, a backslash is
/// a literal character (globs).
fn push_class_body(res: &mut String, body: &[char], escapes: bool) {
    let mut k = 0;
    let mut prev = None;
    while k < body.len() {
        let c = body[k];
        match c {
            '\\' if escapes && k + 1 < body.len() => {
                res.push('\\');
                res.push(body[k + 1]);
                k += 2;
                prev = None;
                continue;
            }
            '\\' => res.push_str(r"\\"),
            ']' if k == 0 => res.push_str(r"\]"),
            '[' | '&' | '~' | '^' => {
                res.push('\\');
                res.push(c);
            }
            '-' if prev == Some('-') => res.push_str(r"\-"),
            _ => res.push(c),
        }
        prev = Some(c);
        k += 1;
    }
}

/// Translates a Python regular expression to the `regex` crate's syntax where the two
/// differ in meaning: `$` (see the module notes, unless multi-line mode is asked for),
/// `\Z`, a `{` that is not a repetition (literal in Python), `{,n}`, and class contents.
/// What Rust cannot express (look-around, back-references) is left for the compiler to
/// reject with a clear error.
pub fn python_regex(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    let multiline = has_multiline_flag(p);
    let mut res = String::with_capacity(p.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if i + 1 < chars.len() => {
                let e = chars[i + 1];
                if e == 'Z' {
                    res.push_str(r"\z");
                } else {
                    res.push('\\');
                    res.push(e);
                }
                i += 2;
            }
            '[' => {
                let start = i + 1;
                let mut j = start;
                let mut negate = false;
                if chars.get(j) == Some(&'^') {
                    negate = true;
                    j += 1;
                }
                let body_start = j;
                if chars.get(j) == Some(&']') {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    if chars[j] == '\\' {
                        j += 1;
                    }
                    j += 1;
                }
                if j >= chars.len() {
                    // Unterminated: let the compiler report it.
                    res.extend(&chars[i..]);
                    break;
                }
                res.push('[');
                if negate {
                    res.push('^');
                }
                push_class_body(&mut res, &chars[body_start..j], true);
                res.push(']');
                i = j + 1;
            }
            '$' if !multiline => {
                res.push_str(PY_END);
                i += 1;
            }
            '{' => {
                match repetition(&chars[i..]) {
                    Some((len, text)) => {
                        res.push_str(&text);
                        i += len;
                    }
                    None => {
                        res.push_str(r"\{");
                        i += 1;
                    }
                }
                continue;
            }
            '}' => {
                res.push_str(r"\}");
                i += 1;
            }
            _ => {
                res.push(c);
                i += 1;
            }
        }
    }
    res
}

/// A Python repetition `{m}`, `{m,}`, `{,n}`, `{m,n}` at the start of `s`: its length and
/// Rust spelling.
fn repetition(s: &[char]) -> Option<(usize, String)> {
    let end = s.iter().position(|&c| c == '}')?;
    let inner: String = s[1..end].iter().collect();
    let (lo, hi) = match inner.split_once(',') {
        Some((lo, hi)) => (lo, Some(hi)),
        None => (inner.as_str(), None),
    };
    let digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
    if !digits(lo) || !hi.is_none_or(digits) || (lo.is_empty() && hi.is_none_or(str::is_empty)) {
        return None;
    }
    let lo = if lo.is_empty() { "0" } else { lo };
    let text = match hi {
        None => format!("{{{lo}}}"),
        Some(hi) => format!("{{{lo},{hi}}}"),
    };
    Some((end + 1, text))
}

fn has_multiline_flag(p: &str) -> bool {
    p.match_indices("(?").any(|(k, _)| {
        p[k + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .any(|c| c == 'm')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn glob_matches(glob: &str, path: &str) -> bool {
        Regex::new(&format!("^{}{PY_END}", glob_to_regex(glob)))
            .unwrap()
            .is_match(path)
    }

    #[test]
    fn globs_follow_duplicity() {
        assert!(glob_matches("a/*.txt", "a/b.txt"));
        assert!(!glob_matches("a/*.txt", "a/c/b.txt"));
        assert!(glob_matches("a/**.txt", "a/c/b.txt"));
        assert!(glob_matches("**", "x\ny/z"));
        assert!(glob_matches("a?c", "abc"));
        assert!(!glob_matches("a?c", "a/c"));
        assert!(glob_matches("[ab]x", "bx"));
        assert!(glob_matches("[!ab]x", "cx"));
        assert!(!glob_matches("[!ab]x", "ax"));
        assert!(glob_matches("[a-c]x", "bx"));
        assert!(glob_matches("[[]x", "[x"));
        assert!(glob_matches("[]]x", "]x"));
        assert!(glob_matches("[&&]x", "&x"));
        assert!(glob_matches("[~~]x", "~x"));
        assert!(glob_matches(r"[\]x", r"\x"));
        assert!(glob_matches("a[b", "a[b"));
        assert!(glob_matches("a.b", "a.b"));
        assert!(!glob_matches("a.b", "axb"));
        assert!(
            glob_matches("f", "f\n"),
            "Python's $ matches before a final newline"
        );
        assert!(glob_matches("é*", "été"));
    }

    #[test]
    fn python_regexps_keep_their_meaning() {
        let m = |re: &str, s: &str| Regex::new(&python_regex(re)).unwrap().is_match(s);
        assert!(m(r"\.py$", "a.py"));
        assert!(m(r"\.py$", "a.py\n"));
        assert!(m(r"a{2}", "aa"));
        assert!(m(r"a{,2}b", "b"));
        assert!(m(r"x{y}", "x{y}"));
        assert!(m(r"[[]", "["));
        assert!(m(r"[\]]", "]"));
        assert!(m(r"end\Z", "end"));
        assert!(m(r"(?m)^b$", "a\nb\nc"));
        assert!(Regex::new(&python_regex(r"(?<=a)b")).is_err());
    }
}
