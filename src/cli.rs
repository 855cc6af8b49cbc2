//! duplicity's command line: commands with their aliases, and options that may stand
//! anywhere, as `--opt value` or `--opt=value`, abbreviated when unambiguous.

use crate::select::Opt;
use clap::Parser;
use std::path::PathBuf;

/// ferrodup: a fast, duplicity-compatible backup tool.
#[derive(Parser, Debug)]
#[command(
    name = "ferrodup",
    version,
    infer_long_args = true,
    override_usage = "ferrodup [OPTIONS] full|incremental|backup SOURCE_DIR URL\n       \
                      ferrodup [OPTIONS] restore URL DEST\n       \
                      ferrodup [OPTIONS] verify URL SOURCE_DIR\n       \
                      ferrodup [OPTIONS] collection-status|list-current-files|cleanup URL\n       \
                      ferrodup [OPTIONS] remove-older-than TIME URL\n       \
                      ferrodup [OPTIONS] remove-all-but-n-full|remove-all-inc-of-but-n-full N URL"
)]
pub struct Cli {
    /// The command and its arguments (or SOURCE_DIR URL / URL DEST without a command).
    #[arg(num_args = 0.., allow_hyphen_values = false)]
    pub args: Vec<String>,

    /// Do not encrypt (the default is OpenPGP, symmetric with PASSPHRASE or to --encrypt-key).
    #[arg(long)]
    pub no_encryption: bool,
    /// Encrypt to this public key (id, fingerprint or e-mail; repeatable).
    #[arg(long, value_name = "KEY", action = clap::ArgAction::Append)]
    pub encrypt_key: Vec<String>,
    /// Encrypt to this public key without naming it in the files (repeatable).
    #[arg(long, value_name = "KEY", action = clap::ArgAction::Append)]
    pub hidden_encrypt_key: Vec<String>,
    /// Sign with this secret key; restores then require its signature.
    #[arg(long, value_name = "KEY")]
    pub sign_key: Option<String>,
    /// Both --encrypt-key and --sign-key with this key.
    #[arg(long, value_name = "KEY")]
    pub encrypt_sign_key: Option<String>,
    /// Key file (armored or binary, public or secret keys) to use besides the GnuPG home (repeatable).
    #[arg(long, value_name = "PATH", action = clap::ArgAction::Append)]
    pub gpg_key_file: Vec<PathBuf>,
    /// gpg binary used for secret keys only gpg's agent holds.
    #[arg(long, default_value = "gpg", value_name = "PATH")]
    pub gpg_binary: PathBuf,
    /// gpg options: --cipher-algo and --compress-algo are honoured, others are ignored.
    #[arg(long, value_name = "OPTIONS", allow_hyphen_values = true)]
    pub gpg_options: Option<String>,
    /// Store volumes and signatures without gzip.
    #[arg(long)]
    pub no_compression: bool,
    /// Volume size in MiB.
    #[arg(long, default_value_t = 200, value_name = "MIB")]
    pub volsize: u64,
    /// Folder of the local metadata cache.
    #[arg(long, value_name = "PATH")]
    pub archive_dir: Option<PathBuf>,
    /// Name of this backup inside the archive dir (default: MD5 of the URL).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Prefix for every file name.
    #[arg(long, default_value = "", value_name = "PREFIX")]
    pub file_prefix: String,
    /// Prefix for manifest file names.
    #[arg(long, default_value = "", value_name = "PREFIX")]
    pub file_prefix_manifest: String,
    /// Prefix for volume file names.
    #[arg(long, default_value = "", value_name = "PREFIX")]
    pub file_prefix_archive: String,
    /// Prefix for signature file names.
    #[arg(long, default_value = "", value_name = "PREFIX")]
    pub file_prefix_signature: String,
    /// Prefix for jsonstat file names.
    #[arg(long, default_value = "", value_name = "PREFIX")]
    pub file_prefix_jsonstat: String,
    /// Make a full backup when the last full one is older than TIME.
    #[arg(long, value_name = "TIME")]
    pub full_if_older_than: Option<String>,
    /// Make a full backup when the chain already has N incrementals.
    #[arg(long, value_name = "N")]
    pub full_if_n_inc: Option<usize>,
    /// Do not check that the host name and source directory match the last backup.
    #[arg(long)]
    pub allow_source_mismatch: bool,
    /// Compute everything but write nothing to the target or the cache.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not upload an incremental that has no changes.
    #[arg(long)]
    pub skip_if_no_change: bool,
    /// Cap the librsync block size (bytes; 0 = no cap).
    #[arg(long, default_value_t = 0, value_name = "BYTES")]
    pub max_blocksize: u64,
    /// Folder for temporary files.
    #[arg(long, value_name = "PATH")]
    pub tempdir: Option<PathBuf>,
    /// Verbosity: 0-9 or error, warning, notice, info, debug.
    #[arg(short = 'v', long, value_name = "LEVEL")]
    pub verbosity: Option<String>,
    /// Back up the targets of symbolic links instead of the links.
    #[arg(long)]
    pub copy_links: bool,
    /// Restore numeric uid/gid instead of looking up user and group names.
    #[arg(long)]
    pub numeric_owner: bool,
    /// Do not restore owners.
    #[arg(long)]
    pub no_restore_ownership: bool,
    /// Do not print backup statistics.
    #[arg(long)]
    pub no_print_statistics: bool,
    /// Tries for each storage operation.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub num_retries: u32,
    /// Seconds between tries.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub backend_retry_delay: u64,
    /// Network storage: seconds to connect, and seconds an open connection may go without
    /// progress before the try fails (and is retried).
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub timeout: u64,
    /// Go on past errors such as a volume with a bad hash.
    #[arg(long)]
    pub ignore_errors: bool,
    /// Really delete (cleanup, remove-*), or restore into an existing directory.
    #[arg(long)]
    pub force: bool,
    /// Time to restore, verify or list (default: now).
    #[arg(
        short = 't',
        long = "time",
        visible_alias = "restore-time",
        value_name = "TIME"
    )]
    pub time: Option<String>,
    /// Restore or verify only this path of the backup.
    #[arg(
        short = 'r',
        long = "path-to-restore",
        visible_alias = "file-to-restore",
        value_name = "PATH"
    )]
    pub path_to_restore: Option<String>,
    /// Restore FROM under the name TO (repeatable).
    #[arg(long, num_args = 2, value_names = ["FROM", "TO"], action = clap::ArgAction::Append)]
    pub rename: Vec<String>,
    /// verify: compare file contents too.
    #[arg(long)]
    pub compare_data: bool,
    /// Include paths matching this glob (rules apply in command-line order, first match wins).
    #[arg(long, value_name = "GLOB", action = clap::ArgAction::Append)]
    pub include: Vec<String>,
    /// Exclude paths matching this glob.
    #[arg(long, value_name = "GLOB", action = clap::ArgAction::Append)]
    pub exclude: Vec<String>,
    /// Include paths matching this (Python-style) regular expression.
    #[arg(long, value_name = "REGEX", action = clap::ArgAction::Append)]
    pub include_regexp: Vec<String>,
    /// Exclude paths matching this regular expression.
    #[arg(long, value_name = "REGEX", action = clap::ArgAction::Append)]
    pub exclude_regexp: Vec<String>,
    /// Include the patterns listed in this file ("- " lines exclude).
    #[arg(long, value_name = "FILE", action = clap::ArgAction::Append)]
    pub include_filelist: Vec<String>,
    /// Exclude the patterns listed in this file ("+ " lines include).
    #[arg(long, value_name = "FILE", action = clap::ArgAction::Append)]
    pub exclude_filelist: Vec<String>,
    /// Back up only the paths listed in this file (relative to the source directory).
    #[arg(long, value_name = "FILE", action = clap::ArgAction::Append)]
    pub files_from: Vec<String>,
    /// Exclude directories that contain a file of this name.
    #[arg(long, value_name = "NAME", action = clap::ArgAction::Append)]
    pub exclude_if_present: Vec<String>,
    /// Exclude character and block devices.
    #[arg(long, action = clap::ArgAction::Count)]
    pub exclude_device_files: u8,
    /// Exclude what is on another file system than the source directory.
    #[arg(long, action = clap::ArgAction::Count)]
    pub exclude_other_filesystems: u8,
    /// Exclude regular files last modified before TIME.
    #[arg(long, value_name = "TIME", action = clap::ArgAction::Append)]
    pub exclude_older_than: Vec<String>,
    /// Later patterns are shell globs (the default).
    #[arg(long, action = clap::ArgAction::Count)]
    pub filter_globbing: u8,
    /// Later patterns ignore case.
    #[arg(long, action = clap::ArgAction::Count)]
    pub filter_ignorecase: u8,
    /// Later patterns are literal paths.
    #[arg(long, action = clap::ArgAction::Count)]
    pub filter_literal: u8,
    /// Later patterns are regular expressions.
    #[arg(long, action = clap::ArgAction::Count)]
    pub filter_regexp: u8,
    /// Later patterns are case-sensitive (the default).
    #[arg(long, action = clap::ArgAction::Count)]
    pub filter_strictcase: u8,
    /// Filelists and --files-from lists are separated by NUL characters, not newlines.
    #[arg(long)]
    pub null_separator: bool,
    /// S3: endpoint of S3-compatible storage (path-style requests), e.g. https://s3.gra.io.cloud.ovh.net.
    #[arg(long, value_name = "URL")]
    pub s3_endpoint_url: Option<String>,
    /// S3: region (default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1).
    #[arg(long, value_name = "REGION")]
    pub s3_region_name: Option<String>,
    /// S3: store volumes in GLACIER (manifests and signatures stay STANDARD).
    #[arg(long)]
    pub s3_use_glacier: bool,
    /// S3: store volumes in GLACIER_IR.
    #[arg(long)]
    pub s3_use_glacier_ir: bool,
    /// S3: store volumes in DEEP_ARCHIVE (OVH Cold Archive too).
    #[arg(long)]
    pub s3_use_deep_archive: bool,
    /// S3: store every file in STANDARD_IA.
    #[arg(long)]
    pub s3_use_ia: bool,
    /// S3: store every file in ONEZONE_IA.
    #[arg(long)]
    pub s3_use_onezone_ia: bool,
    /// S3: store every file in REDUCED_REDUNDANCY.
    #[arg(long)]
    pub s3_use_rrs: bool,
    /// S3: days restored copies of archived volumes stay readable.
    #[arg(long, default_value_t = 1, value_name = "DAYS")]
    pub s3_restore_days: u32,
    /// S3: restore tier for archived volumes: Expedited, Standard or Bulk.
    #[arg(long, default_value = "Standard", value_name = "TIER")]
    pub s3_restore_tier: String,
    /// SSH options for sftp:// (-oIdentityFile=, -oUserKnownHostsFile=, -oStrictHostKeyChecking=).
    #[arg(long, value_name = "OPTIONS", allow_hyphen_values = true)]
    pub ssh_options: Option<String>,
    /// Testing aid: stop with an error right after storing volume N of a backup.
    #[arg(long, hide = true, value_name = "N")]
    pub fail_on_volume: Option<u32>,
    /// Pretend the current time is this (epoch seconds or a time string).
    #[arg(long, hide = true, value_name = "TIME")]
    pub current_time: Option<String>,

    // Parallel uploads (issue 9: --concurrency, --asynchronous-upload).
    /// Volumes uploaded at once during a backup (default 4, at most 64; 0 or 1: one at a
    /// time, still while the next volume is made).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub concurrency: Option<i64>,
    /// duplicity's former option for uploading a volume while making the next, which
    /// ferrodup always does (replaced by --concurrency).
    #[arg(long)]
    pub asynchronous_upload: bool,
}

/// The selection options in the order they were given (the order is their meaning).
pub fn selection_options(m: &clap::ArgMatches) -> Vec<(Opt, String)> {
    let mut found: Vec<(usize, Opt, String)> = Vec::new();
    for (opt, flag) in Opt::ALL {
        let id = flag.trim_start_matches("--").replace('-', "_");
        if m.value_source(&id) != Some(clap::parser::ValueSource::CommandLine) {
            continue;
        }
        let Some(indices) = m.indices_of(&id) else {
            continue;
        };
        let values: Vec<String> = match m.try_get_many::<String>(&id) {
            Ok(Some(v)) => v.cloned().collect(),
            _ => Vec::new(),
        };
        for (k, i) in indices.enumerate() {
            found.push((i, opt, values.get(k).cloned().unwrap_or_default()));
        }
    }
    found.sort_by_key(|(i, _, _)| *i);
    found.into_iter().map(|(_, o, v)| (o, v)).collect()
}
