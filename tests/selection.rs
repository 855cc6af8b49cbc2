//! Differential tests of file selection against the real duplicity: for each scenario (a
//! list of selection options over a tree with awkward names), duplicity and ferrodup back up
//! the same tree, and the sets of paths in their signature files must be equal. Scenarios
//! that duplicity refuses must be refused by ferrodup too (one error line, usage status).
//! The restore scenarios compare what each tool restores with the same rules from one
//! backup, and check that list-current-files and verify apply the rules the same way.

mod common;

use common::*;
use ferrodup::format::entry;
use ferrodup::format::tar::TarReader;
use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const OLD: i64 = 978_307_200; // 2001-01-01

/// The source tree: names with spaces, unicode, leading dashes, glob characters, tabs and
/// newlines; nested directories, an empty one, links, a fifo, a device, old files, and
/// marker files for --exclude-if-present.
fn make_tree(src: &Path) {
    let files: &[&str] = &[
        "a.txt",
        "b.TXT",
        "UPPER.TXT",
        "c.py",
        "sub",
        "with space.txt",
        "-dash",
        "--ddash.txt",
        "[br]acket.txt",
        "]weird",
        "a[b",
        "ünï cödé.txt",
        "new\nline.txt",
        "end\n",
        "tab\tname",
        "*star",
        "q?mark",
        "Docs/readme.md",
        "Docs/Notes.TXT",
        "Docs/sub/deep.txt",
        "Docs/sub/deeper/x.py",
        "docs/lower.md",
        "build/out.o",
        "build/keep.txt",
        "cache/CACHEDIR.TAG",
        "cache/data.bin",
        "skip/.nobackup",
        "skip/f.txt",
        "skip/inner/g.txt",
        "nested/a/b/c/d.txt",
        "nested/a/x.log",
        "space dir/inner file.txt",
        "old/old1.txt",
        "old/new1.txt",
        "old.txt",
    ];
    for f in files {
        let p = src.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("contents of {f}\n")).unwrap();
    }
    for d in ["empty", "nested/z"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    symlink("a.txt", src.join("link-to-a")).unwrap();
    symlink("nowhere", src.join("dangling")).unwrap();
    symlink("Docs", src.join("dirlink")).unwrap();
    run(
        std::process::Command::new("mkfifo").arg(src.join("fifo")),
        "mkfifo",
    )
    .ok();
    let dev = std::ffi::CString::new(src.join("chardev").as_os_str().as_bytes()).unwrap();
    // SAFETY: mknod with a valid C string; it only creates a file. Without root it fails
    // and the tree simply has no device.
    let made = unsafe { libc::mknod(dev.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 3)) };
    if made != 0 {
        eprintln!("not root: the tree has no device file");
    }
    for f in ["old/old1.txt", "old.txt"] {
        set_mtime(&src.join(f), OLD);
    }
}

/// Filelists used by the scenarios (`{S}` is the source directory as given).
const LISTS: &[(&str, &str)] = &[
    ("ex1", "{S}/a.txt\n# a comment\n\n   {S}/Docs/sub   \n"),
    ("in2", "{S}/Docs\n- {S}/Docs/sub\n{S}/nested/a\n"),
    ("ex3", "+ {S}/Docs/readme.md\n{S}/Docs\n"),
    ("in4", "\"{S}/with space.txt\"\n'{S}/c.py'\n"),
    ("nul5", "{S}/new\nline.txt\0{S}/Docs/sub\0"),
    ("in6", "{S}/docs/sub\n{S}/a.txt\n"),
    ("re7", "\\.py$\n^.*/build(/|$)\n"),
    ("crlf8", "{S}/a.txt\r\n{S}/Docs/sub\r\n"),
    ("ic9", "ignorecase:{S}/DOCS/SUB\n- ignorecase:{S}/NESTED\n"),
    ("ex10", "+ {S}/**/*.md\n- **\n"),
    (
        "in11",
        "{S}/space dir\n{S}/[br]acket.txt\n- {S}/Docs/sub/deeper\n{S}/Docs/sub\n",
    ),
    ("lit12", "{S}/*star\n{S}/q?mark\n"),
    ("ff1", "a.txt\nDocs/sub/deep.txt\nnested/a\n"),
    ("ff2", "new\nline.txt\0Docs/readme.md\0"),
    (
        "ff3",
        "Docs\nDocs/sub\nDocs/sub/deeper/x.py\nspace dir/inner file.txt\n",
    ),
    ("ffabs", "/etc/passwd\n"),
];

/// Backup scenarios: name and options. `{S}` is the source as given, `{L:name}` a filelist
/// path. A first word `@rel` gives the source relative to the working directory (`src`),
/// `@dotrel` as `./src/`; `@fails` marks rules both tools must refuse.
const SCENARIOS: &[(&str, &[&str])] = &[
    ("no rules", &[]),
    ("exclude file", &["--exclude", "{S}/a.txt"]),
    ("exclude dir", &["--exclude", "{S}/Docs"]),
    ("exclude dir slash", &["--exclude", "{S}/Docs/"]),
    ("slash on file", &["--exclude", "{S}/a.txt/"]),
    ("slash on dir link", &["--exclude", "{S}/dirlink/"]),
    (
        "include dir only",
        &["--include", "{S}/Docs", "--exclude", "**"],
    ),
    (
        "include deep dir",
        &["--include", "{S}/Docs/sub", "--exclude", "**"],
    ),
    (
        "include **.txt",
        &["--include", "**.txt", "--exclude", "**"],
    ),
    (
        "include S/**.txt",
        &["--include", "{S}/**.txt", "--exclude", "**"],
    ),
    (
        "include S/*.txt",
        &["--include", "{S}/*.txt", "--exclude", "**"],
    ),
    (
        "include **/*.py",
        &["--include", "**/*.py", "--exclude", "**"],
    ),
    ("exclude **.py", &["--exclude", "**.py"]),
    ("exclude */sub", &["--exclude", "{S}/*/sub"]),
    ("exclude S/**", &["--exclude", "{S}/**"]),
    ("exclude **", &["--exclude", "**"]),
    ("exclude root", &["--exclude", "{S}"]),
    ("include root", &["--include", "{S}", "--exclude", "**"]),
    (
        "include inside excluded, first",
        &[
            "--include",
            "{S}/nested/a/b/c/d.txt",
            "--exclude",
            "{S}/nested",
            "--include",
            "{S}/Docs",
            "--exclude",
            "**",
        ],
    ),
    (
        "exclude inside include",
        &[
            "--exclude",
            "{S}/nested/a/b",
            "--include",
            "{S}/nested",
            "--exclude",
            "**",
        ],
    ),
    (
        "include after exclude",
        &[
            "--exclude",
            "{S}/nested/a",
            "--include",
            "{S}/nested/a/b/c",
            "--exclude",
            "**",
        ],
    ),
    (
        "question mark",
        &["--include", "{S}/?.txt", "--exclude", "**"],
    ),
    ("class", &["--include", "{S}/[ab].*", "--exclude", "**"]),
    (
        "negated class",
        &["--include", "{S}/[!ab].*", "--exclude", "**"],
    ),
    (
        "caret class",
        &["--include", "{S}/[^ab].*", "--exclude", "**"],
    ),
    (
        "range class",
        &["--include", "{S}/[a-c]*", "--exclude", "**"],
    ),
    ("bracket name", &["--exclude", "{S}/[[]br]acket.txt"]),
    ("close bracket name", &["--exclude", "{S}/[]]weird"]),
    ("unclosed bracket", &["--exclude", "{S}/a[b"]),
    ("space name", &["--exclude", "{S}/with space.txt"]),
    ("unicode name", &["--exclude", "{S}/ünï cödé.txt"]),
    ("unicode glob", &["--exclude", "{S}/*ö*"]),
    ("newline glob", &["--exclude", "{S}/new*"]),
    ("newline question", &["--exclude", "{S}/new?line.txt"]),
    ("final newline", &["--exclude", "{S}/end"]),
    ("tab name", &["--include", "{S}/tab*", "--exclude", "**"]),
    ("dash name", &["--exclude", "{S}/-dash"]),
    ("dash glob", &["--exclude", "**/-*"]),
    ("star name", &["--exclude", "{S}/[*]star"]),
    ("question name", &["--exclude", "{S}/q[?]mark"]),
    ("** then prefix", &["--exclude", "{S}/**/deep*"]),
    (
        "deeper subtree",
        &["--include", "{S}/**/deeper/**", "--exclude", "**"],
    ),
    (
        "py under Docs",
        &["--include", "{S}/Docs/**/*.py", "--exclude", "**"],
    ),
    ("** inside a name", &["--exclude", "{S}/**sub"]),
    ("prefix D**", &["--include", "{S}/D**", "--exclude", "**"]),
    (
        "dirs named sub",
        &["--include", "**/sub/", "--exclude", "**"],
    ),
    ("empty dir", &["--include", "{S}/empty", "--exclude", "**"]),
    (
        "empty nested dir",
        &["--include", "{S}/nested/z/", "--exclude", "**"],
    ),
    ("exclude link", &["--exclude", "{S}/link-to-a"]),
    (
        "include dir link",
        &["--include", "{S}/dirlink", "--exclude", "**"],
    ),
    (
        "space dir",
        &["--include", "{S}/space dir", "--exclude", "**"],
    ),
    ("ignorecase prefix", &["--exclude", "ignorecase:{S}/docs"]),
    (
        "ignorecase prefix upper",
        &["--exclude", "IGNORECASE:{S}/A.TXT"],
    ),
    (
        "ignorecase include",
        &["--include", "ignorecase:**.txt", "--exclude", "**"],
    ),
    (
        "filter ignorecase",
        &[
            "--filter-ignorecase",
            "--include",
            "{S}/docs",
            "--exclude",
            "**",
        ],
    ),
    (
        "filter ignorecase exclude",
        &["--filter-ignorecase", "--exclude", "**/*.TXT"],
    ),
    (
        "ignorecase then strict",
        &[
            "--filter-ignorecase",
            "--include",
            "{S}/DOCS/SUB",
            "--filter-strictcase",
            "--exclude",
            "{S}/Docs",
            "--exclude",
            "**",
        ],
    ),
    (
        "literal",
        &["--filter-literal", "--exclude", "{S}/[br]acket.txt"],
    ),
    (
        "literal then glob",
        &[
            "--filter-literal",
            "--include",
            "{S}/Docs/sub",
            "--filter-globbing",
            "--exclude",
            "**",
        ],
    ),
    (
        "literal star",
        &["--filter-literal", "--exclude", "{S}/*star"],
    ),
    (
        "literal ignorecase",
        &[
            "--filter-literal",
            "--filter-ignorecase",
            "--exclude",
            "{S}/DOCS",
        ],
    ),
    (
        "literal slash",
        &["--filter-literal", "--exclude", "{S}/nested/"],
    ),
    ("regexp exclude", &["--exclude-regexp", "\\.py$"]),
    (
        "regexp include",
        &["--include-regexp", "\\.txt$", "--exclude", "**"],
    ),
    ("regexp word", &["--exclude-regexp", "sub"]),
    ("regexp inline flag", &["--exclude-regexp", "(?i)docs"]),
    (
        "regexp ignorecase",
        &["--filter-ignorecase", "--exclude-regexp", "DOCS/SUB"],
    ),
    (
        "filter regexp",
        &["--filter-regexp", "--exclude", "^.*/c\\.py$"],
    ),
    ("regexp bracket", &["--exclude-regexp", "[[]br"]),
    ("regexp repetition", &["--exclude-regexp", "e{2}"]),
    ("regexp newline", &["--exclude-regexp", "\\n"]),
    ("regexp literal brace", &["--exclude-regexp", "x{y"]),
    ("regexp dollar", &["--exclude-regexp", "line\\.txt$"]),
    ("filelist exclude", &["--exclude-filelist", "{L:ex1}"]),
    (
        "filelist include",
        &["--include-filelist", "{L:in2}", "--exclude", "**"],
    ),
    ("filelist plus line", &["--exclude-filelist", "{L:ex3}"]),
    (
        "filelist quotes",
        &["--include-filelist", "{L:in4}", "--exclude", "**"],
    ),
    (
        "filelist nul",
        &[
            "--null-separator",
            "--include-filelist",
            "{L:nul5}",
            "--exclude",
            "**",
        ],
    ),
    (
        "filelist ignorecase",
        &[
            "--filter-ignorecase",
            "--include-filelist",
            "{L:in6}",
            "--exclude",
            "**",
        ],
    ),
    (
        "filelist regexps",
        &["--filter-regexp", "--exclude-filelist", "{L:re7}"],
    ),
    ("filelist crlf", &["--exclude-filelist", "{L:crlf8}"]),
    (
        "filelist ignorecase lines",
        &["--include-filelist", "{L:ic9}", "--exclude", "**"],
    ),
    (
        "filelist ends with - **",
        &["--exclude-filelist", "{L:ex10}"],
    ),
    (
        "filelist mixed",
        &["--include-filelist", "{L:in11}", "--exclude", "**"],
    ),
    (
        "filelist literal",
        &["--filter-literal", "--exclude-filelist", "{L:lit12}"],
    ),
    ("files-from", &["--files-from", "{L:ff1}"]),
    (
        "files-from exclude",
        &["--files-from", "{L:ff1}", "--exclude", "**.txt"],
    ),
    (
        "files-from nul",
        &["--null-separator", "--files-from", "{L:ff2}"],
    ),
    ("files-from dirs", &["--files-from", "{L:ff3}"]),
    ("if-present", &["--exclude-if-present", ".nobackup"]),
    (
        "if-present twice",
        &[
            "--exclude-if-present",
            "CACHEDIR.TAG",
            "--exclude-if-present",
            ".nobackup",
        ],
    ),
    (
        "if-present beats include",
        &[
            "--include",
            "{S}/skip/inner",
            "--exclude-if-present",
            ".nobackup",
            "--exclude",
            "**",
        ],
    ),
    (
        "if-present with glob",
        &[
            "--exclude-if-present",
            "CACHEDIR.TAG",
            "--exclude",
            "{S}/a.txt",
        ],
    ),
    ("device files", &["--exclude-device-files"]),
    (
        "device files and fifo",
        &["--exclude-device-files", "--exclude", "{S}/fifo"],
    ),
    ("other filesystems", &["--exclude-other-filesystems"]),
    ("older than", &["--exclude-older-than", "2010-01-01"]),
    (
        "older than after include",
        &[
            "--include",
            "{S}/old/old1.txt",
            "--exclude-older-than",
            "2010-01-01",
        ],
    ),
    (
        "first match wins",
        &[
            "--include",
            "{S}/Docs/readme.md",
            "--exclude",
            "{S}/Docs",
            "--include",
            "{S}/nested",
            "--exclude",
            "**",
        ],
    ),
    (
        "exclude before include",
        &[
            "--exclude",
            "{S}/Docs/readme.md",
            "--include",
            "{S}/Docs",
            "--exclude",
            "**",
        ],
    ),
    (
        "relative source",
        &["@rel", "--include", "src/Docs", "--exclude", "**"],
    ),
    ("relative source **", &["@rel", "--exclude", "**/*.txt"]),
    ("dot source", &["@dotrel", "--exclude", "src/nested"]),
    (
        "class over dirs",
        &["--include", "{S}/[DN]*/**", "--exclude", "**"],
    ),
    ("hidden files", &["--exclude", "**/.*"]),
    (
        "include hidden",
        &["--include", "**/.nobackup", "--exclude", "**"],
    ),
    (
        "** in the middle",
        &["--include", "{S}/**/c/**", "--exclude", "**"],
    ),
    ("everything below root", &["--exclude", "{S}/**/*"]),
    ("second level", &["--exclude", "{S}/*/*"]),
    ("top dirs", &["--include", "{S}/*/", "--exclude", "**"]),
    (
        "dirs under nested",
        &["--include", "{S}/nested/**/", "--exclude", "**"],
    ),
    (
        "exclude dirs under nested",
        &["--exclude", "{S}/nested/**/"],
    ),
    ("exclude all dirs", &["--exclude", "{S}/**/"]),
    ("class with dash", &["--exclude", "{S}/[-a]*"]),
    ("class with caret", &["--exclude", "{S}/[a^]*"]),
    ("class with backslash", &["--exclude", "{S}/[\\]x"]),
    (
        "ignorecase class",
        &["--exclude", "ignorecase:{S}/[u]pper.txt"],
    ),
    (
        "literal ignorecase include",
        &[
            "--filter-ignorecase",
            "--filter-literal",
            "--include",
            "{S}/docs/SUB",
            "--filter-globbing",
            "--exclude",
            "**",
        ],
    ),
    (
        "regexp anchored",
        &["--include-regexp", "^{S}/Docs", "--exclude", "**"],
    ),
    (
        "regexp upper suffix",
        &["--exclude-regexp", "/[^/]*\\.TXT$"],
    ),
    ("regexp alternation", &["--exclude-regexp", "^.*/(a|b)\\."]),
    ("regexp digit", &["--exclude-regexp", "\\d"]),
    ("regexp space", &["--exclude-regexp", "\\s"]),
    ("regexp unicode", &["--exclude-regexp", "ü"]),
    ("regexp end of text", &["--exclude-regexp", "\\w+\\.py\\Z"]),
    (
        "regexp include then all",
        &["--include-regexp", "Docs", "--exclude-regexp", "."],
    ),
    ("older than relative", &["--exclude-older-than", "5Y"]),
    (
        "older than with include",
        &[
            "--exclude-older-than",
            "2010-01-01",
            "--include",
            "{S}/old",
            "--exclude",
            "**",
        ],
    ),
    ("if-present absent", &["--exclude-if-present", "NOPE"]),
    (
        "device included first",
        &[
            "--include",
            "{S}/chardev",
            "--exclude-device-files",
            "--exclude",
            "{S}/Docs",
        ],
    ),
    (
        "files-from with globs",
        &[
            "--files-from",
            "{L:ff3}",
            "--include",
            "{S}/Docs/sub",
            "--exclude",
            "**",
        ],
    ),
    (
        "files-from with if-present",
        &["--files-from", "{L:ff1}", "--exclude-if-present", "d.txt"],
    ),
    (
        "relative filelist",
        &["@rel", "--include-filelist", "{L:in2}", "--exclude", "**"],
    ),
    (
        "exclude then include same",
        &[
            "--exclude",
            "{S}/a.txt",
            "--include",
            "{S}/a.txt",
            "--exclude",
            "**",
        ],
    ),
    ("dotted names", &["--exclude", "{S}/*.*"]),
    (
        "two includes",
        &[
            "--include",
            "{S}/Docs",
            "--include",
            "{S}/nested",
            "--exclude",
            "**",
        ],
    ),
    (
        "fails: ./ glob with relative source",
        &["@fails", "@rel", "--exclude", "./src/Docs"],
    ),
    (
        "fails: bad regexp",
        &["@fails", "--exclude-regexp", "(unclosed"],
    ),
    ("fails: empty pattern", &["@fails", "--exclude", ""]),
    (
        "fails: outside source",
        &["@fails", "--exclude", "/elsewhere/x"],
    ),
    ("fails: relative glob", &["@fails", "--exclude", "*.txt"]),
    (
        "fails: absolute with relative source",
        &["@fails", "@rel", "--exclude", "{T}/src/a.txt"],
    ),
    (
        "fails: redundant include",
        &["@fails", "--include", "{S}/a.txt"],
    ),
    (
        "fails: include filelist last",
        &["@fails", "--include-filelist", "{L:in4}"],
    ),
    (
        "fails: double slash",
        &["@fails", "--exclude", "{S}//a.txt"],
    ),
    (
        "fails: trailing filter",
        &["@fails", "--exclude", "{S}/a.txt", "--filter-literal"],
    ),
    (
        "fails: default filters only",
        &["@fails", "--filter-globbing", "--exclude", "{S}/a.txt"],
    ),
    (
        "fails: missing filelist",
        &["@fails", "--exclude-filelist", "/nonexistent/list"],
    ),
    (
        "fails: absolute files-from",
        &["@fails", "--files-from", "{L:ffabs}"],
    ),
    (
        "fails: literal **",
        &["@fails", "--filter-literal", "--exclude", "**"],
    ),
];

/// Restore scenarios: rules on archive paths, applied by restore (and list, verify).
const RESTORES: &[(&str, &[&str])] = &[
    ("restore exclude dir", &["--exclude", "Docs"]),
    (
        "restore include glob",
        &["--include", "**.txt", "--exclude", "**"],
    ),
    (
        "restore include dir",
        &["--include", "nested/a", "--exclude", "**"],
    ),
    (
        "restore ./ prefix",
        &["--include", "./Docs/sub", "--exclude", "**"],
    ),
    (
        "restore dirs only",
        &["--include", "**/sub/", "--exclude", "**"],
    ),
    (
        "restore ignorecase",
        &[
            "--filter-ignorecase",
            "--include",
            "docs",
            "--exclude",
            "**",
        ],
    ),
    ("restore regexp", &["--exclude-regexp", "\\.py$"]),
    (
        "restore literal",
        &["--filter-literal", "--exclude", "[br]acket.txt"],
    ),
    (
        "restore older than",
        &["--exclude-older-than", "2010-01-01"],
    ),
    ("restore device files", &["--exclude-device-files"]),
    ("restore filelist", &["--exclude-filelist", "{L:rel}"]),
    ("restore newline", &["--exclude", "new*"]),
    (
        "restore nothing",
        &["--include", "nomatch", "--exclude", "**"],
    ),
    ("fails: restore absolute", &["@fails", "--exclude", "/Docs"]),
    (
        "fails: restore dotdot",
        &["@fails", "--exclude", "Docs/../a.txt"],
    ),
    (
        "fails: restore if-present",
        &["@fails", "--exclude-if-present", ".nobackup"],
    ),
];

/// A tmpfs mounted inside the tree, for --exclude-other-filesystems; unmounted on drop.
/// Where mounting is not allowed (not root), the directory stays on the same file system
/// and the scenario still compares both tools.
struct Mount(Option<PathBuf>);

impl Mount {
    fn tmpfs(at: &Path) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "ferrodup-test"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("cannot mount a tmpfs: --exclude-other-filesystems sees one file system");
        }
        std::fs::create_dir_all(at.join("inner")).unwrap();
        std::fs::write(at.join("inner/on-tmpfs.txt"), "other fs\n").unwrap();
        Mount(mounted.then(|| at.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::process::Command::new("umount").arg(p).status();
        }
    }
}

struct Env {
    top: PathBuf,
    src: PathBuf,
    lists: PathBuf,
}

fn expand(env: &Env, arg: &str, source_as_given: &str) -> String {
    let mut a = arg
        .replace("{S}", source_as_given)
        .replace("{T}", &env.top.display().to_string());
    while let Some(start) = a.find("{L:") {
        let end = start + a[start..].find('}').unwrap();
        let name = &a[start + 3..end];
        a = format!(
            "{}{}{}",
            &a[..start],
            env.lists.join(name).display(),
            &a[end + 1..]
        );
    }
    a
}

fn write_lists(env: &Env, source_as_given: &str, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, text) in LISTS {
        std::fs::write(dir.join(name), text.replace("{S}", source_as_given)).unwrap();
    }
    std::fs::write(dir.join("rel"), "+ Docs/sub\n- Docs\n# comment\n- nested\n").unwrap();
    let _ = env;
}

/// Archive paths in a backup's full signature file.
fn backed_up(target: &Path) -> BTreeSet<Vec<u8>> {
    let sig = std::fs::read_dir(target)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .contains("full-signatures")
        })
        .unwrap_or_else(|| panic!("no signature file in {}", target.display()));
    let name = sig.file_name().unwrap().to_string_lossy().into_owned();
    let mut tar = TarReader::new(ferrodup::codec::open_stored(&sig, &name, None).unwrap());
    let mut paths = BTreeSet::new();
    while let Some(h) = tar.next_header().unwrap() {
        let e = entry::parse(&h.name).unwrap_or_else(|| panic!("bad member {:?}", h.name));
        paths.insert(e.index);
    }
    paths
}

/// Archive paths of a restored tree.
fn restored(root: &Path) -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    if std::fs::symlink_metadata(root).is_err() {
        return out;
    }
    out.insert(Vec::new());
    let mut stack = vec![(root.to_path_buf(), Vec::new())];
    while let Some((dir, index)) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name();
            let mut i: Vec<u8> = index.clone();
            if !i.is_empty() {
                i.push(b'/');
            }
            i.extend_from_slice(name.as_bytes());
            if e.file_type().unwrap().is_dir() {
                stack.push((e.path(), i.clone()));
            }
            out.insert(i);
        }
    }
    out
}

fn show(set: &BTreeSet<Vec<u8>>) -> Vec<String> {
    set.iter()
        .map(|p| format!("{:?}", String::from_utf8_lossy(p)))
        .collect()
}

fn diff(a: &BTreeSet<Vec<u8>>, b: &BTreeSet<Vec<u8>>) -> String {
    format!(
        "only duplicity: {:?}\nonly ferrodup: {:?}",
        show(&a.difference(b).cloned().collect()),
        show(&b.difference(a).cloned().collect())
    )
}

/// Runs `jobs` on a few threads; returns the failure messages.
fn run_all<T: Sync>(jobs: &[T], f: impl Fn(usize, &T) -> Result<(), String> + Sync) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = jobs.get(i) else {
                    break;
                };
                if let Err(e) = f(i, job) {
                    failures.lock().unwrap().push(e);
                }
            });
        }
    });
    failures.into_inner().unwrap()
}

/// ferrodup refused with one error line and the status duplicity gave.
fn one_line_error(r: &Run, dup: &Run) -> Result<(), String> {
    let err = r.stderr();
    if r.code() != dup.code() || err.lines().count() != 1 || !err.starts_with("ferrodup: ") {
        return Err(format!(
            "expected one error line with duplicity's status {}, got status {}: {err}",
            dup.code(),
            r.code()
        ));
    }
    Ok(())
}

#[test]
fn backups_select_what_duplicity_selects() {
    assert!(
        SCENARIOS.len() >= 80,
        "the issue asks for at least 80 backup scenarios"
    );
    let top = tempfile::tempdir().unwrap();
    let env = Env {
        top: top.path().to_path_buf(),
        src: top.path().join("src"),
        lists: top.path().join("lists"),
    };
    make_tree(&env.src);
    let _mount = Mount::tmpfs(&env.src.join("mnt"));
    let abs = env.src.display().to_string();
    write_lists(&env, &abs, &env.lists);
    let rel_lists = top.path().join("rel-lists");
    write_lists(&env, "src", &rel_lists);
    let failures = run_all(SCENARIOS, |i, (name, args)| {
        let mut fails = false;
        let mut source = abs.clone();
        let mut rest: Vec<&str> = Vec::new();
        for a in args.iter().copied() {
            match a {
                "@fails" => fails = true,
                "@rel" => source = "src".to_string(),
                "@dotrel" => source = "./src/".to_string(),
                _ => rest.push(a),
            }
        }
        let canonical_source = if source.starts_with('/') {
            abs.clone()
        } else {
            "src".to_string()
        };
        let lists_env = Env {
            top: env.top.clone(),
            src: env.src.clone(),
            lists: if source.starts_with('/') {
                env.lists.clone()
            } else {
                rel_lists.clone()
            },
        };
        let opts: Vec<String> = rest
            .iter()
            .map(|a| expand(&lists_env, a, &canonical_source))
            .collect();
        let work = env.top.join(format!("s{i}"));
        std::fs::create_dir_all(&work).unwrap();
        let mut results = Vec::new();
        for tool in ["duplicity", "ferrodup"] {
            let target = work.join(tool);
            let mut a: Vec<String> = vec![
                "full".into(),
                "--no-encryption".into(),
                "--archive-dir".into(),
                work.join(format!("cache-{tool}")).display().to_string(),
            ];
            a.extend(opts.iter().cloned());
            a.push(source.clone());
            a.push(format!("file://{}", target.display()));
            let r = if tool == "duplicity" {
                duplicity(&env.top, &a)
            } else {
                ferrodup(&env.top, &a)
            };
            results.push((r, target));
        }
        let (dup, dup_target) = &results[0];
        let (fer, fer_target) = &results[1];
        if fails {
            if dup.code() == 0 {
                return Err(format!("{name}: duplicity accepted rules expected to fail"));
            }
            if fer_target.exists() {
                return Err(format!(
                    "{name}: ferrodup wrote to the target before refusing"
                ));
            }
            return one_line_error(fer, dup).map_err(|e| format!("{name}: {e}"));
        }
        if dup.code() != 0 {
            return Err(format!("{name}: duplicity failed: {}", dup.stderr()));
        }
        if fer.code() != 0 {
            return Err(format!("{name}: ferrodup failed: {}", fer.stderr()));
        }
        let want = backed_up(dup_target);
        let got = backed_up(fer_target);
        if want != got {
            return Err(format!("{name} {opts:?}:\n{}", diff(&want, &got)));
        }
        // verify with the same rules finds the backup and the source equal.
        let mut v: Vec<String> = vec![
            "verify".into(),
            "--compare-data".into(),
            "--no-encryption".into(),
            "--archive-dir".into(),
            work.join("cache-ferrodup").display().to_string(),
        ];
        v.extend(opts.iter().cloned());
        v.push(format!("file://{}", fer_target.display()));
        v.push(source.clone());
        let r = ferrodup(&env.top, &v);
        if r.code() != 0 {
            return Err(format!(
                "{name}: verify with the rules found differences: {}{}",
                r.stdout(),
                r.stderr()
            ));
        }
        Ok(())
    });
    assert!(
        failures.is_empty(),
        "{} scenario(s) differ:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn restores_select_what_duplicity_selects() {
    let top = tempfile::tempdir().unwrap();
    let env = Env {
        top: top.path().to_path_buf(),
        src: top.path().join("src"),
        lists: top.path().join("lists"),
    };
    make_tree(&env.src);
    write_lists(&env, "", &env.lists);
    let target = format!("file://{}", top.path().join("target").display());
    let cache = top.path().join("cache").display().to_string();
    let src = env.src.display().to_string();
    ferrodup(
        &env.top,
        &[
            "full",
            "--no-encryption",
            "--archive-dir",
            &cache,
            &src,
            &target,
        ],
    )
    .ok();
    let failures = run_all(RESTORES, |i, (name, args)| {
        let fails = args.first() == Some(&"@fails");
        let opts: Vec<String> = args
            .iter()
            .filter(|a| !a.starts_with('@'))
            .map(|a| expand(&env, a, ""))
            .collect();
        let work = env.top.join(format!("r{i}"));
        std::fs::create_dir_all(&work).unwrap();
        let mut sets = Vec::new();
        for tool in ["duplicity", "ferrodup"] {
            let dest = work.join(tool);
            let mut a: Vec<String> = vec![
                "restore".into(),
                "--no-encryption".into(),
                "--archive-dir".into(),
                work.join(format!("cache-{tool}")).display().to_string(),
            ];
            a.extend(opts.iter().cloned());
            a.push(target.clone());
            a.push(dest.display().to_string());
            let r = if tool == "duplicity" {
                duplicity(&env.top, &a)
            } else {
                ferrodup(&env.top, &a)
            };
            sets.push((r, restored(&dest)));
        }
        let (dup, want) = &sets[0];
        let (fer, got) = &sets[1];
        if fails {
            if dup.code() == 0 {
                return Err(format!("{name}: duplicity accepted rules expected to fail"));
            }
            if work.join("ferrodup").exists() {
                return Err(format!(
                    "{name}: ferrodup wrote to the target before refusing"
                ));
            }
            return one_line_error(fer, dup).map_err(|e| format!("{name}: {e}"));
        }
        if dup.code() != 0 {
            if fer.code() == 0 {
                return Err(format!("{name}: duplicity failed, ferrodup did not"));
            }
            return Ok(());
        }
        if want != got {
            return Err(format!(
                "{name} {opts:?} (duplicity {}, ferrodup {}):\n{}\n{}",
                dup.code(),
                fer.code(),
                diff(want, got),
                fer.stderr()
            ));
        }
        if (dup.code() == 0) != (fer.code() == 0) {
            return Err(format!(
                "{name}: duplicity status {}, ferrodup status {}: {}",
                dup.code(),
                fer.code(),
                fer.stderr()
            ));
        }
        // list-current-files with the same rules lists what was restored (names with a
        // newline span two lines and are compared through the rest).
        let mut l: Vec<String> = vec![
            "list-current-files".into(),
            "--no-encryption".into(),
            "--archive-dir".into(),
            work.join("cache-ferrodup").display().to_string(),
        ];
        l.extend(opts.iter().cloned());
        l.push(target.clone());
        let listed: BTreeSet<Vec<u8>> = ferrodup(&env.top, &l)
            .ok()
            .stdout()
            .lines()
            .filter(|line| {
                line.len() > 25 && line.as_bytes()[3] == b' ' && line.as_bytes()[24] == b' '
            })
            .map(|line| {
                let p = &line[25..];
                if p == "." {
                    Vec::new()
                } else {
                    p.as_bytes().to_vec()
                }
            })
            .collect();
        let expected: BTreeSet<Vec<u8>> = got
            .iter()
            .filter(|p| !p.contains(&b'\n'))
            .cloned()
            .collect();
        let listed: BTreeSet<Vec<u8>> = listed
            .into_iter()
            .filter(|p| !p.starts_with(b"new") && !p.starts_with(b"end"))
            .collect();
        let expected: BTreeSet<Vec<u8>> = expected
            .into_iter()
            .filter(|p| !p.starts_with(b"new") && !p.starts_with(b"end"))
            .collect();
        if listed != expected {
            return Err(format!(
                "{name}: list-current-files with the rules:\n{}",
                diff(&expected, &listed)
            ));
        }
        Ok(())
    });
    assert!(
        failures.is_empty(),
        "{} scenario(s) differ:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Rules that change between backups: what a later incremental excludes is gone from its
/// state (as with duplicity), and duplicity restores both states of ferrodup's chain.
#[test]
fn changed_rules_make_an_incremental_that_duplicity_restores() {
    let top = tempfile::tempdir().unwrap();
    let w = top.path();
    let src = w.join("src");
    make_tree(&src);
    let s = src.display().to_string();
    let url = format!("file://{}/target", w.display());
    let (t1, t2) = (T1.to_string(), T2.to_string());
    let backup = |kind: &str, t: &str, rules: &[&str]| {
        let mut a = vec![
            kind,
            "--no-encryption",
            "--archive-dir",
            "cache",
            "--current-time",
            t,
        ];
        a.extend_from_slice(rules);
        a.push(&s);
        a.push(&url);
        ferrodup(w, &a).ok();
    };
    let docs = format!("{s}/Docs");
    backup("full", &t1, &[]);
    backup(
        "incremental",
        &t2,
        &["--exclude", &docs, "--exclude-regexp", "\\.py$"],
    );
    let expected = w.join("expected");
    copy_tree(&src, &expected);
    std::fs::remove_dir_all(expected.join("Docs")).unwrap();
    std::fs::remove_file(expected.join("c.py")).unwrap();
    // The removals above touched the copy's root: give it back the source's mtime.
    let root_mtime = std::os::unix::fs::MetadataExt::mtime(&std::fs::metadata(&src).unwrap());
    set_mtime(&expected, root_mtime);
    for (t, want) in [(&t1, &src), (&t2, &expected)] {
        let dest = w.join(format!("restored-{t}"));
        let d = dest.display().to_string();
        duplicity(
            w,
            &[
                "restore",
                "--no-encryption",
                "--archive-dir",
                "dcache",
                "--time",
                t,
                &url,
                &d,
            ],
        )
        .ok();
        assert_same_tree(want, &dest, &format!("duplicity restore at {t}"));
    }
}
