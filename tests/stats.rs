//! Backup statistics and `--jsonstat` against the real duplicity: the same tree and the
//! same edits backed up by both, the `Backup Statistics` blocks compared value by value,
//! the JSON records key by key, each tool's `collection-status --show-changes-in-set`
//! (text and `--jsonstat`) reading the other's backups, and the jsonstat files removed
//! with their sets.

mod common;

use common::*;
use ferrodup::format::pyjson::Json;
use ferrodup::stats::byte_summary;
use std::io::Read;
use std::path::Path;

const T3: i64 = T2 + 86_400;
const T4: i64 = T3 + 86_400;
const T5: i64 = T4 + 86_400;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tool {
    Ferrodup,
    Duplicity,
}

impl Tool {
    fn target(self, work: &Path) -> String {
        match self {
            Tool::Ferrodup => format!("file://{}/ftarget", work.display()),
            Tool::Duplicity => format!("file://{}/dtarget", work.display()),
        }
    }

    fn cache(self) -> &'static str {
        match self {
            Tool::Ferrodup => "fcache",
            Tool::Duplicity => "dcache",
        }
    }

    fn run(self, work: &Path, args: &[&str]) -> Run {
        match self {
            Tool::Ferrodup => ferrodup(work, args).ok(),
            Tool::Duplicity => duplicity(work, args).ok(),
        }
    }
}

/// A backup of `work/src` to the tool's own target; returns its standard output.
fn backup(tool: Tool, work: &Path, kind: &str, t: i64, extra: &[&str]) -> String {
    let t = t.to_string();
    let target = tool.target(work);
    let mut args = vec![
        kind,
        "--no-encryption",
        "--current-time",
        &t,
        "--archive-dir",
        tool.cache(),
    ];
    args.extend_from_slice(extra);
    args.extend(["src", &target]);
    tool.run(work, &args).stdout()
}

/// The `Name value` lines of the statistics block in `out`.
fn stats_block(out: &str, what: &str) -> Vec<(String, String)> {
    let mut lines = out.lines();
    lines
        .by_ref()
        .find(|l| *l == "--------------[ Backup Statistics ]--------------")
        .unwrap_or_else(|| panic!("{what}: no statistics block in:\n{out}"));
    lines
        .take_while(|l| *l != "-------------------------------------------------")
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// `1704110400.00 (Mon Jan  1 12:00:00 2024)`: a fractional time and its local date.
fn check_time_value(v: &str, what: &str) {
    let (num, paren) = v.split_once(' ').unwrap_or((v, ""));
    let secs: f64 = num.parse().unwrap_or_else(|_| panic!("{what}: {v:?}"));
    assert_eq!(
        num.split_once('.').map(|(_, f)| f.len()),
        Some(2),
        "{what}: {v:?}"
    );
    // The value is rounded to 1/100 s, the date is of the unrounded time.
    let dates =
        [secs, secs - 0.005].map(|t| format!("({})", ferrodup::format::time::pretty(t as i64)));
    assert!(dates.contains(&paren.to_string()), "{what}: {v:?}");
}

/// Compares two statistics blocks: the same lines in the same order; every count and size
/// equal except the timing lines (checked for form), RawDeltaSize and
/// TotalDestinationSizeChange.
///
/// RawDeltaSize adds the rsync deltas of changed files, and the two librsync
/// implementations encode the same changes with different literal commands (ferrodup's in
/// 32 KiB pieces): a difference is allowed only as large as the difference of the `diff`
/// members' bytes in the two tools' volumes (`delta_bytes`), i.e. when the stored bytes
/// genuinely differ.
///
/// TotalDestinationSizeChange is the bytes of the volumes each tool stored (`stored`). Both
/// tools write the same tar stream (checked in `same_tar_streams`), but compress it with
/// different deflate implementations (Python's zlib vs libdeflate), so the compressed bytes
/// genuinely differ: each tool's value must be the size of its own volumes, and the two
/// within 10 % (a small backup compresses a few percent better with libdeflate).
fn compare_blocks(
    f: &[(String, String)],
    d: &[(String, String)],
    (f_delta, d_delta): (u64, u64),
    (f_stored, d_stored): (u64, u64),
    what: &str,
) {
    let keys = |b: &[(String, String)]| b.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(keys(f), keys(d), "{what}: statistics lines");
    for ((k, fv), (_, dv)) in f.iter().zip(d) {
        match k.as_str() {
            "StartTime" | "EndTime" => {
                check_time_value(fv, &format!("{what}: ferrodup {k}"));
                check_time_value(dv, &format!("{what}: duplicity {k}"));
            }
            "ElapsedTime" => {
                let (num, paren) = fv.split_once(' ').unwrap();
                let secs: f64 = num.parse().unwrap();
                assert!((0.0..60.0).contains(&secs), "{what}: {fv}");
                assert_eq!(paren, format!("({num} seconds)"), "{what}: {k}");
            }
            "RawDeltaSize" => {
                let num = |v: &str| -> i64 { v.split(' ').next().unwrap().parse().unwrap() };
                assert_eq!(
                    num(fv) - num(dv),
                    f_delta as i64 - d_delta as i64,
                    "{what}: {k} ferrodup {fv} vs duplicity {dv}"
                );
                assert_eq!(fv, &format!("{} ({})", num(fv), byte_summary(num(fv))));
            }
            "TotalDestinationSizeChange" => {
                let num = |v: &str| -> i64 { v.split(' ').next().unwrap().parse().unwrap() };
                let (a, b) = (num(fv), num(dv));
                assert_eq!(a, f_stored as i64, "{what}: ferrodup's {k} vs its volumes");
                assert_eq!(b, d_stored as i64, "{what}: duplicity's {k} vs its volumes");
                assert!(
                    (a - b).abs() <= (b / 10).max(64),
                    "{what}: {k} ferrodup {a} vs duplicity {b}"
                );
                assert_eq!(fv, &format!("{a} ({})", byte_summary(a)), "{what}: {k}");
            }
            _ => assert_eq!(fv, dv, "{what}: {k}"),
        }
    }
}

/// The JSON object printed in `out` (from a line `{` to a line `}`), its text and value.
fn json_block(out: &str, what: &str) -> (String, Json) {
    let lines: Vec<&str> = out.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == "{")
        .unwrap_or_else(|| panic!("{what}: no JSON in:\n{out}"));
    let end = start
        + lines[start..]
            .iter()
            .position(|l| *l == "}")
            .unwrap_or_else(|| panic!("{what}: unterminated JSON in:\n{out}"));
    let text = lines[start..=end].join("\n");
    let v = Json::parse(&text).unwrap_or_else(|e| panic!("{what}: bad JSON ({e}):\n{text}"));
    (text, v)
}

fn keys(v: &Json) -> Vec<String> {
    match v {
        Json::Object(o) => o.iter().map(|(k, _)| k.clone()).collect(),
        _ => panic!("not an object: {v:?}"),
    }
}

/// Compares two `--jsonstat` records key by key: the same keys in the same order, every
/// value equal but the times of the run, each tool's own target URL, and RawDeltaSize
/// (as in [`compare_blocks`]).
fn compare_json(f: &Json, d: &Json, work: &Path, (f_delta, d_delta): (u64, u64), what: &str) {
    assert_eq!(keys(f), keys(d), "{what}: JSON keys");
    for k in keys(f) {
        let (fv, dv) = (f.get(&k).unwrap(), d.get(&k).unwrap());
        match k.as_str() {
            "StartTime" | "EndTime" | "ElapsedTime" => {
                assert!(matches!(fv, Json::Float(_)), "{what}: {k} {fv:?}");
                assert!(matches!(dv, Json::Float(_)), "{what}: {k} {dv:?}");
            }
            "StartTime_str" | "EndTime_str" => {
                let Some(Json::Float(t)) = f.get(k.trim_end_matches("_str")) else {
                    panic!("{what}: no {k}");
                };
                assert_eq!(
                    fv,
                    &Json::Str(ferrodup::format::time::to_string(*t as i64)),
                    "{what}: {k}"
                );
            }
            "RawDeltaSize" => match (fv, dv) {
                (Json::Int(a), Json::Int(b)) => {
                    assert_eq!(a - b, f_delta as i64 - d_delta as i64, "{what}: {k}")
                }
                _ => panic!("{what}: {k} {fv:?} {dv:?}"),
            },
            "backup_meta" => {
                assert_eq!(keys(fv), keys(dv), "{what}: backup_meta keys");
                for m in keys(fv) {
                    let (a, b) = (fv.get(&m).unwrap(), dv.get(&m).unwrap());
                    if m == "target" {
                        assert_eq!(a, &Json::Str(Tool::Ferrodup.target(work)), "{what}");
                        assert_eq!(b, &Json::Str(Tool::Duplicity.target(work)), "{what}");
                    } else {
                        assert_eq!(a, b, "{what}: backup_meta.{m}");
                    }
                }
            }
            _ => assert_eq!(fv, dv, "{what}: {k}"),
        }
    }
}

/// The uncompressed bytes of a gzip file.
fn gunzip(p: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(p).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// One backup by each tool of the same source; compares what they print and checks the
/// jsonstat file ferrodup stored. Returns ferrodup's JSON record.
fn step(work: &Path, kind: &str, t: i64, extra: &[&str], what: &str) -> Json {
    let mut args = vec!["--jsonstat"];
    args.extend_from_slice(extra);
    let d = backup(Tool::Duplicity, work, kind, t, &args);
    let f = backup(Tool::Ferrodup, work, kind, t, &args);
    let deltas = (
        delta_bytes(&work.join("ftarget"), t),
        delta_bytes(&work.join("dtarget"), t),
    );
    let stored = (
        volume_bytes(&work.join("ftarget"), t),
        volume_bytes(&work.join("dtarget"), t),
    );
    compare_blocks(
        &stats_block(&f, what),
        &stats_block(&d, what),
        deltas,
        stored,
        what,
    );
    let (ftext, fjson) = json_block(&f, &format!("{what}: ferrodup"));
    let (_, djson) = json_block(&d, &format!("{what}: duplicity"));
    compare_json(&fjson, &djson, work, deltas, what);
    // The statistics block and the JSON agree.
    for (k, v) in stats_block(&f, what) {
        if let Some(Json::Int(n)) = fjson.get(&k) {
            assert_eq!(
                v.split(' ').next(),
                Some(n.to_string().as_str()),
                "{what}: {k}"
            );
        }
    }
    let skipped = fjson.get("backup_meta").and_then(|m| m.get("skipped_inc"));
    let name = if kind == "full" {
        format!(
            "duplicity-full.{}.jsonstat.gz",
            ferrodup::format::time::to_string(t)
        )
    } else {
        let prev = std::fs::read_dir(work.join("ftarget"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".manifest"))
            .filter_map(|n| {
                let stem = n.trim_end_matches(".manifest");
                let end = stem.rsplit('.').next()?;
                (end != ferrodup::format::time::to_string(t)).then(|| end.to_string())
            })
            .max()
            .unwrap();
        format!(
            "duplicity-inc.{prev}.to.{}.jsonstat.gz",
            ferrodup::format::time::to_string(t)
        )
    };
    for dir in ["ftarget", "dtarget"] {
        let p = work.join(dir).join(&name);
        if skipped == Some(&Json::Bool(true)) {
            assert!(!p.exists(), "{what}: a skipped set has no {}", p.display());
        } else {
            assert!(p.exists(), "{what}: {} missing", p.display());
        }
    }
    if skipped != Some(&Json::Bool(true)) {
        let stored = gunzip(&work.join("ftarget").join(&name));
        assert_eq!(
            String::from_utf8(stored).unwrap(),
            ftext,
            "{what}: stored file"
        );
        let cache_dirs: Vec<_> = std::fs::read_dir(work.join("fcache")).unwrap().collect();
        assert_eq!(cache_dirs.len(), 1);
        let cached = cache_dirs[0].as_ref().unwrap().path().join(&name);
        assert_eq!(
            gunzip(&cached),
            ftext.as_bytes(),
            "{what}: archive dir copy"
        );
    }
    fjson
}

/// The data bytes of the `diff` and `multivol_diff` members (rsync deltas) in the
/// volumes of the set ending at `t` in `dir`.
fn delta_bytes(dir: &Path, t: i64) -> u64 {
    let tag = format!(".{}.vol", ferrodup::format::time::to_string(t));
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if !name.contains(&tag) {
            continue;
        }
        let data = gunzip(&dir.join(&name));
        let mut r = ferrodup::format::tar::TarReader::new(&data[..]);
        while let Some(h) = r.next_header().unwrap() {
            if h.name.starts_with(b"diff/") || h.name.starts_with(b"multivol_diff/") {
                total += h.size;
            }
        }
    }
    total
}

/// The bytes of the volumes of the backup set ending at `t` in `dir`.
fn volume_bytes(dir: &Path, t: i64) -> u64 {
    let tag = format!(".{}.vol", ferrodup::format::time::to_string(t));
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().contains(&tag))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// Both tools' tar streams of the full backup are the same bytes, so the only difference
/// in TotalDestinationSizeChange is the compression.
fn same_tar_streams(work: &Path, t: i64) {
    let name = format!(
        "duplicity-full.{}.vol1.difftar.gz",
        ferrodup::format::time::to_string(t)
    );
    let f = gunzip(&work.join("ftarget").join(&name));
    let d = gunzip(&work.join("dtarget").join(&name));
    assert_eq!(f.len(), d.len(), "uncompressed volume sizes");
}

/// `collection-status` with `args` by `reader` on `writer`'s target, from "Last full backup
/// date" on, without duplicity's progress notices.
fn status(reader: Tool, writer: Tool, work: &Path, args: &[&str]) -> String {
    let target = writer.target(work);
    let mut all = vec![
        "collection-status",
        "--no-encryption",
        "--archive-dir",
        writer.cache(),
    ];
    all.extend_from_slice(args);
    all.push(&target);
    let out = reader.run(work, &all).stdout();
    let start = out
        .find("Last full backup date:")
        .unwrap_or_else(|| panic!("{reader:?}: no status in:\n{out}"));
    out[start..]
        .lines()
        .filter(|l| !l.starts_with("DEBUG:") && *l != "Duplicity backup complete.")
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn statistics_and_jsonstat_match_duplicity() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let src = work.join("src");
    make_fixture_tree(&src, 1, false);

    let full = step(work, "full", T1, &[], "full");
    assert_eq!(full.get("NewFiles"), full.get("SourceFiles"));
    same_tar_streams(work, T1);

    edits::state3(&src, T2 - 3600);
    let inc = step(work, "incremental", T2, &[], "state 3 incremental");
    for k in ["NewFiles", "DeletedFiles", "ChangedFiles"] {
        assert_ne!(inc.get(k), Some(&Json::Int(0)), "state 3 has {k}");
    }
    edits::state4(&src, T3 - 3600);
    // A dry run counts what the real run then stores, and reports 0 bytes stored, as
    // duplicity's does. duplicity's dry run does not read the files: it reports
    // RawDeltaSize 0 and counts each new or changed regular file twice in SourceFiles;
    // ferrodup's reads them and reports the real run's values, so those two lines are
    // left out of the comparison.
    let dry = |tool| {
        stats_block(
            &backup(tool, work, "incremental", T3, &["--dry-run"]),
            "dry",
        )
    };
    let (f_dry, d_dry) = (dry(Tool::Ferrodup), dry(Tool::Duplicity));
    let unread = |b: &[(String, String)]| -> Vec<(String, String)> {
        b.iter()
            .filter(|(k, _)| k != "SourceFiles" && k != "RawDeltaSize")
            .cloned()
            .collect()
    };
    compare_blocks(&unread(&f_dry), &unread(&d_dry), (0, 0), (0, 0), "dry run");
    let real = step(work, "incremental", T3, &[], "state 4 incremental");
    for (k, v) in &f_dry {
        match real.get(k) {
            Some(Json::Int(n)) => assert_eq!(
                v.split(' ').next(),
                Some(n.to_string().as_str()),
                "dry run {k} vs the real run"
            ),
            _ if k == "TotalDestinationSizeChange" => assert_eq!(v, "0 (0 bytes)", "dry run"),
            _ => {}
        }
    }
    let same = step(work, "incremental", T4, &[], "no-change incremental");
    assert_eq!(same.get("DeltaEntries"), Some(&Json::Int(0)));
    // `backup` (action "inc") with nothing changed and --skip-if-no-change: printed, with
    // skipped_inc, and not stored.
    let skipped = step(
        work,
        "backup",
        T5,
        &["--skip-if-no-change"],
        "skipped incremental",
    );
    assert_eq!(
        skipped
            .get("backup_meta")
            .and_then(|m| m.get("skipped_inc")),
        Some(&Json::Bool(true))
    );

    // collection-status --show-changes-in-set, as JSON and as text, each tool on each
    // tool's backups: ferrodup prints what duplicity prints.
    for writer in [Tool::Ferrodup, Tool::Duplicity] {
        for args in [
            &["--jsonstat", "--show-changes-in-set", "-1"][..],
            &["--jsonstat", "--show-changes-in-set", "1"],
            &["--show-changes-in-set", "2"],
        ] {
            let d = status(Tool::Duplicity, writer, work, args);
            let f = status(Tool::Ferrodup, writer, work, args);
            assert_eq!(f, d, "collection-status {args:?} of {writer:?}'s backup");
        }
    }
    let all = status(
        Tool::Ferrodup,
        Tool::Duplicity,
        work,
        &["--jsonstat", "--show-changes-in-set", "-1"],
    );
    let (_, v) = json_block(&all, "all sets");
    assert_eq!(keys(&v).len(), 4, "the chain's sets but the skipped one");
    let full_key = format!("full-{}", ferrodup::format::time::to_string(T1));
    assert_ne!(
        v.get(&full_key).and_then(|s| s.get("json_stat")),
        Some(&Json::Object(Vec::new())),
        "the full set's stored statistics are read back"
    );
}

/// remove-all-but-n-full deletes each old set's jsonstat file with it, at the target and in
/// the archive dir, leaving what duplicity leaves.
#[test]
fn jsonstat_files_go_with_their_sets() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    make_fixture_tree(&work.join("src"), 1, false);
    let listing = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "lockfile" && !n.ends_with(".lock"))
            .collect();
        v.sort();
        v
    };
    let mut results = Vec::new();
    for tool in [Tool::Duplicity, Tool::Ferrodup] {
        backup(tool, work, "full", T1, &["--jsonstat"]);
        edits::state3(&work.join("src"), T2 - 3600);
        backup(tool, work, "incremental", T2, &["--jsonstat"]);
        backup(tool, work, "full", T3, &["--jsonstat"]);
        let target = tool.target(work);
        tool.run(
            work,
            &[
                "remove-all-but-n-full",
                "1",
                "--force",
                "--no-encryption",
                "--archive-dir",
                tool.cache(),
                &target,
            ],
        );
        let dir = target.trim_start_matches("file://");
        let cache = std::fs::read_dir(work.join(tool.cache()))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        results.push((listing(Path::new(dir)), listing(&cache)));
        // The next tool starts from state 1 again.
        std::fs::remove_dir_all(work.join("src")).unwrap();
        make_fixture_tree(&work.join("src"), 1, false);
    }
    let t3 = ferrodup::format::time::to_string(T3);
    let expected_remote = vec![
        format!("duplicity-full-signatures.{t3}.sigtar.gz"),
        format!("duplicity-full.{t3}.jsonstat.gz"),
        format!("duplicity-full.{t3}.manifest"),
        format!("duplicity-full.{t3}.vol1.difftar.gz"),
    ];
    assert_eq!(results[0].0, expected_remote, "duplicity's target");
    assert_eq!(results[1].0, expected_remote, "ferrodup's target");
    assert_eq!(results[1].1, results[0].1, "archive dirs");
}

/// cleanup deletes the jsonstat file of a set it deletes (here a full backup whose manifest
/// is lost), as duplicity does.
#[test]
fn cleanup_deletes_jsonstat_with_an_incomplete_set() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    make_fixture_tree(&work.join("src"), 1, false);
    let full_stat = format!(
        "duplicity-full.{}.jsonstat.gz",
        ferrodup::format::time::to_string(T1)
    );
    let manifest = format!(
        "duplicity-full.{}.manifest",
        ferrodup::format::time::to_string(T1)
    );
    for tool in [Tool::Duplicity, Tool::Ferrodup] {
        backup(tool, work, "full", T1, &["--jsonstat"]);
        let target = tool.target(work);
        let dir = Path::new(target.trim_start_matches("file://")).to_path_buf();
        assert!(dir.join(&full_stat).exists(), "{tool:?}: stored");
        std::fs::remove_file(dir.join(&manifest)).unwrap();
        for e in std::fs::read_dir(work.join(tool.cache())).unwrap() {
            let _ = std::fs::remove_file(e.unwrap().path().join(&manifest));
        }
        let out = tool
            .run(
                work,
                &[
                    "cleanup",
                    "--force",
                    "--no-encryption",
                    "--archive-dir",
                    tool.cache(),
                    &target,
                ],
            )
            .stdout();
        assert!(out.contains(&full_stat), "{tool:?} lists it:\n{out}");
        assert!(!dir.join(&full_stat).exists(), "{tool:?}: deleted");
    }
}

/// A stored statistics file that is not JSON (or is huge) makes collection-status
/// --jsonstat fail with one line naming the file, not a panic.
#[test]
fn unreadable_jsonstat_is_one_error_line() {
    use std::io::Write;
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    std::fs::create_dir(work.join("src")).unwrap();
    std::fs::write(work.join("src/f"), b"data").unwrap();
    backup(Tool::Ferrodup, work, "full", T1, &["--jsonstat"]);
    let name = format!(
        "duplicity-full.{}.jsonstat.gz",
        ferrodup::format::time::to_string(T1)
    );
    let cache = std::fs::read_dir(work.join("fcache"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let target = Tool::Ferrodup.target(work);
    for (what, body) in [
        ("not valid JSON", b"{\"a\": [1, 2,".to_vec()),
        ("too large", vec![b' '; (16 << 20) + 10]),
    ] {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&body).unwrap();
        std::fs::write(cache.join(&name), gz.finish().unwrap()).unwrap();
        let r = ferrodup(
            work,
            &[
                "collection-status",
                "--no-encryption",
                "--jsonstat",
                "--show-changes-in-set",
                "0",
                "--archive-dir",
                "fcache",
                &target,
            ],
        );
        assert_fails(&r, 30, &["statistics file", &name]);
        assert!(r.stderr().contains(what), "{what}: {}", r.stderr());
    }
}

/// Encrypted sets: the `.jsonstat.gpg` each tool stores is read back by the other's
/// collection-status --jsonstat (ferrodup from the target, with an empty archive dir).
#[test]
fn encrypted_jsonstat_read_back_both_ways() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    std::fs::create_dir(work.join("src")).unwrap();
    std::fs::write(work.join("src/f"), b"data").unwrap();
    let with_pass = |tool: Tool, args: &[&str]| -> String {
        let mut c = match tool {
            Tool::Ferrodup => std::process::Command::new(ferrodup_bin()),
            Tool::Duplicity => {
                let mut c = std::process::Command::new(duplicity_bin());
                c.env("HOME", work);
                c
            }
        };
        c.current_dir(work)
            .args(args)
            .env("PASSPHRASE", "stats test");
        run(&mut c, &format!("{tool:?} {args:?}")).ok().stdout()
    };
    let t = T1.to_string();
    for tool in [Tool::Duplicity, Tool::Ferrodup] {
        let target = tool.target(work);
        let args = [
            "full",
            "--jsonstat",
            "--current-time",
            &t,
            "--archive-dir",
            tool.cache(),
            "src",
            &target,
        ];
        with_pass(tool, &args);
        let stored = format!(
            "duplicity-full.{}.jsonstat.gpg",
            ferrodup::format::time::to_string(T1)
        );
        let dir = Path::new(target.trim_start_matches("file://")).join(stored);
        assert!(dir.exists(), "{tool:?}: {} missing", dir.display());
    }
    let show = |reader: Tool, writer: Tool, cache: &str| -> String {
        let target = writer.target(work);
        let out = with_pass(
            reader,
            &[
                "collection-status",
                "--jsonstat",
                "--show-changes-in-set",
                "0",
                "--archive-dir",
                cache,
                &target,
            ],
        );
        json_block(&out, &format!("{reader:?} on {writer:?}")).0
    };
    let d_on_d = show(Tool::Duplicity, Tool::Duplicity, "dcache");
    assert!(d_on_d.contains("\"SourceFiles\""), "{d_on_d}");
    assert_eq!(show(Tool::Ferrodup, Tool::Duplicity, "fresh"), d_on_d);
    let f_on_f = show(Tool::Ferrodup, Tool::Ferrodup, "fcache");
    assert!(f_on_f.contains("\"SourceFiles\""), "{f_on_f}");
    assert_eq!(show(Tool::Duplicity, Tool::Ferrodup, "fcache"), f_on_f);
}
