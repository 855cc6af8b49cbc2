//! Backup statistics as duplicity counts and prints them: the `Backup Statistics` block and
//! the `--jsonstat` JSON (printed and stored at the target as `*.jsonstat`).
//!
//! duplicity's counting (its `diffdir.py` and `statistics.py`): every object of the source
//! (directories and symbolic links too, the root included) counts in `SourceFiles`, and
//! `SourceFileSize` adds the `lstat` size of each (for regular files that are backed up,
//! the bytes read). An object stored whole counts as new (a changed directory or symlink
//! too), a regular file stored as an rsync delta as changed; `NewFileSize` and
//! `ChangedFileSize` add their `lstat` sizes. `RawDeltaSize` is the file data and delta
//! bytes put in the tar stream, `TotalDestinationSizeChange` the bytes of the volumes
//! stored. duplicity never adds to `ChangedDeltaSize`: it is always 0.

use crate::format::pyjson::Json;
use crate::format::time;

/// The statistics of one backup run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BackupStats {
    /// Wall clock (seconds since the epoch, fractional) when the source walk started.
    pub start: f64,
    /// Wall clock when the source walk ended.
    pub end: f64,
    pub source_files: u64,
    pub source_size: u64,
    pub new_files: u64,
    pub new_size: u64,
    pub deleted_files: u64,
    pub changed_files: u64,
    pub changed_size: u64,
    pub delta_entries: u64,
    pub raw_delta_size: u64,
    pub errors: u64,
}

/// The chain a `--jsonstat` record describes (duplicity's `backup_meta`).
#[derive(Clone, Debug, PartialEq)]
pub struct BackupMeta {
    /// `full` or `inc`: the command asked for (`backup` is `inc`).
    pub action: &'static str,
    /// An incremental that `--skip-if-no-change` did not store.
    pub skipped_inc: bool,
    pub time_full_bkp: i64,
    pub no_of_inc: usize,
    pub concurrency: u64,
    pub target: String,
    pub source: String,
    /// The archive dir's jsonstat file of each set of the chain, or `None` (`N/A`).
    pub local_json_stat: Vec<Option<String>>,
}

/// Wall clock in fractional seconds since the epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `301 KB`, `8.00 KB`, `1 byte`: three significant figures, binary units.
pub fn byte_summary(count: i64) -> String {
    let sign = if count < 0 { "-" } else { "" };
    let n = count.unsigned_abs();
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TB"),
        (1 << 30, "GB"),
        (1 << 20, "MB"),
        (1 << 10, "KB"),
    ];
    for (unit, name) in UNITS {
        if n >= unit {
            let v = n as f64 / unit as f64;
            let precision = if v >= 100.0 {
                0
            } else if v >= 10.0 {
                1
            } else {
                2
            };
            return format!("{sign}{v:.precision$} {name}");
        }
    }
    if n == 1 {
        format!("{sign}1 byte")
    } else {
        format!("{sign}{n} bytes")
    }
}

/// `2 hours 1 minute 3.25 seconds`: duplicity's rendering of a duration.
pub fn pretty_seconds(secs: f64) -> String {
    let mut parts = Vec::new();
    let hours = (secs / 3600.0).floor();
    let mut rest = secs - hours * 3600.0;
    if hours > 1.0 {
        parts.push(format!("{hours:.0} hours"));
    } else if hours == 1.0 {
        parts.push("1 hour".to_string());
    }
    let minutes = (rest / 60.0).floor();
    rest -= minutes * 60.0;
    if minutes > 1.0 {
        parts.push(format!("{minutes:.0} minutes"));
    } else if minutes == 1.0 {
        parts.push("1 minute".to_string());
    }
    if rest == 1.0 {
        parts.push("1 second".to_string());
    } else if parts.is_empty() || rest > 1.0 {
        parts.push(format!("{rest:.2} seconds"));
    }
    parts.join(" ")
}

impl BackupStats {
    pub fn elapsed(&self) -> f64 {
        self.end - self.start
    }

    /// The `Backup Statistics` block, with the bytes of volumes stored.
    pub fn block(&self, dest: u64) -> String {
        let bytes = |name: &str, v: u64| format!("{name} {v} ({})\n", byte_summary(v as i64));
        let mut s = String::from("--------------[ Backup Statistics ]--------------\n");
        s += &format!(
            "StartTime {:.2} ({})\n",
            self.start,
            time::pretty(self.start as i64)
        );
        s += &format!(
            "EndTime {:.2} ({})\n",
            self.end,
            time::pretty(self.end as i64)
        );
        s += &format!(
            "ElapsedTime {:.2} ({})\n",
            self.elapsed(),
            pretty_seconds(self.elapsed())
        );
        s += &format!("SourceFiles {}\n", self.source_files);
        s += &bytes("SourceFileSize", self.source_size);
        s += &format!("NewFiles {}\n", self.new_files);
        s += &bytes("NewFileSize", self.new_size);
        s += &format!("DeletedFiles {}\n", self.deleted_files);
        s += &format!("ChangedFiles {}\n", self.changed_files);
        s += &bytes("ChangedFileSize", self.changed_size);
        s += &bytes("ChangedDeltaSize", 0);
        s += &format!("DeltaEntries {}\n", self.delta_entries);
        s += &bytes("RawDeltaSize", self.raw_delta_size);
        s += &bytes("TotalDestinationSizeChange", dest);
        s += &format!("Errors {}\n", self.errors);
        s += "-------------------------------------------------\n";
        s
    }

    /// The `--jsonstat` record. As duplicity's, it is made before the size stored is
    /// known: `TotalDestinationSizeChange` is null.
    pub fn json(&self, meta: Option<&BackupMeta>) -> Json {
        let n = |v: u64| Json::Int(v as i64);
        let mut obj = vec![
            ("Filename".to_string(), Json::Null),
            ("StartTime".into(), Json::Float(self.start)),
            ("EndTime".into(), Json::Float(self.end)),
            ("ElapsedTime".into(), Json::Float(self.elapsed())),
            ("Errors".into(), n(self.errors)),
            ("TotalDestinationSizeChange".into(), Json::Null),
            ("SourceFiles".into(), n(self.source_files)),
            ("SourceFileSize".into(), n(self.source_size)),
            ("NewFiles".into(), n(self.new_files)),
            ("NewFileSize".into(), n(self.new_size)),
            ("DeletedFiles".into(), n(self.deleted_files)),
            ("ChangedFiles".into(), n(self.changed_files)),
            ("ChangedFileSize".into(), n(self.changed_size)),
            ("ChangedDeltaSize".into(), n(0)),
            ("DeltaEntries".into(), n(self.delta_entries)),
            ("RawDeltaSize".into(), n(self.raw_delta_size)),
            (
                "StartTime_str".into(),
                Json::Str(time::to_string(self.start as i64)),
            ),
            (
                "EndTime_str".into(),
                Json::Str(time::to_string(self.end as i64)),
            ),
        ];
        if let Some(m) = meta {
            let local = m
                .local_json_stat
                .iter()
                .map(|l| Json::Str(l.clone().unwrap_or_else(|| "N/A".into())))
                .collect();
            obj.push((
                "backup_meta".into(),
                Json::Object(vec![
                    ("action".into(), Json::Str(m.action.into())),
                    ("skipped_inc".into(), Json::Bool(m.skipped_inc)),
                    ("time_full_bkp".into(), Json::Int(m.time_full_bkp)),
                    (
                        "time_full_bkp_str".into(),
                        Json::Str(time::to_string(m.time_full_bkp)),
                    ),
                    ("no_of_inc".into(), Json::Int(m.no_of_inc as i64)),
                    ("concurrency".into(), Json::Int(m.concurrency as i64)),
                    ("target".into(), Json::Str(m.target.clone())),
                    ("source".into(), Json::Str(m.source.clone())),
                    ("local_json_stat".into(), Json::Array(local)),
                ]),
            ));
        }
        Json::Object(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_summaries_as_duplicity() {
        for (n, s) in [
            (0, "0 bytes"),
            (1, "1 byte"),
            (45, "45 bytes"),
            (1023, "1023 bytes"),
            (1024, "1.00 KB"),
            (2023, "1.98 KB"),
            (8193, "8.00 KB"),
            (308199, "301 KB"),
            (301055, "294 KB"),
            (15 * 1024 * 1024 + 1, "15.0 MB"),
            (3 << 30, "3.00 GB"),
            (5 << 40, "5.00 TB"),
            (-2048, "-2.00 KB"),
        ] {
            assert_eq!(byte_summary(n), s, "{n}");
        }
    }

    #[test]
    fn durations_as_duplicity() {
        assert_eq!(pretty_seconds(0.013), "0.01 seconds");
        assert_eq!(pretty_seconds(1.0), "1 second");
        assert_eq!(pretty_seconds(61.0), "1 minute 1 second");
        assert_eq!(pretty_seconds(60.0), "1 minute");
        assert_eq!(pretty_seconds(7325.5), "2 hours 2 minutes 5.50 seconds");
        assert_eq!(pretty_seconds(3600.0), "1 hour");
    }
}
