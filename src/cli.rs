//! duplicity's command line: commands with their aliases, and options that may stand
//! anywhere, as `--opt value` or `--opt=value`, abbreviated when unambiguous.

use crate::select::Opt;
use clap::Parser;
use std::path::PathBuf;

/// What `--version` prints after `duplicity `: the duplicity version whose command line and
/// format ferrodup implements, then ferrodup's own. Scripts (duply, deja-dup) read the
/// second word of `duplicity --version` as the version.
pub const VERSION: &str = concat!("3.2.1 (ferrodup ", env!("CARGO_PKG_VERSION"), ")");

/// ferrodup: a fast, duplicity-compatible backup tool.
#[derive(Parser, Debug)]
#[command(
    name = "ferrodup",
    display_name = "duplicity",
    version = VERSION,
    infer_long_args = true,
    args_override_self = true,
    disable_help_flag = true,
    disable_version_flag = true,
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
    /// gpg options: --cipher-algo and --compress-algo are honoured, others are ignored
    /// (repeatable: the values add up).
    #[arg(long, value_name = "OPTIONS", allow_hyphen_values = true, action = clap::ArgAction::Append)]
    pub gpg_options: Vec<String>,
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
    /// Compute everything but write nothing to the target or the cache; with restore and
    /// verify, print the plan of what would be read (and thawed) and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not upload an incremental that has no changes.
    #[arg(long)]
    pub skip_if_no_change: bool,
    /// Cap the librsync block size (bytes, rounded up to a multiple of 512 as duplicity
    /// does; default: no cap).
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    pub max_blocksize: Option<i64>,
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
    #[arg(short = 'r', long = "path-to-restore", value_name = "PATH")]
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
    /// S3: lock every file uploaded against deletion and overwriting (S3 Object Lock; the
    /// bucket must have it enabled) for DAYS.
    #[arg(long, value_name = "DAYS")]
    pub object_lock_days: Option<u32>,
    /// S3: the Object Lock mode: GOVERNANCE (lifted only with a special permission) or
    /// COMPLIANCE (by no one).
    #[arg(long, default_value = "GOVERNANCE", value_name = "MODE")]
    pub object_lock_mode: String,
    /// Cold storage's minimum storage period, for the warning of remove-* and cleanup
    /// before deleting younger objects (default: S3 GLACIER and GLACIER_IR 90, DEEP_ARCHIVE
    /// 180; pca:// none).
    #[arg(long, value_name = "DAYS")]
    pub min_storage_days: Option<u32>,
    /// replicate: copy only the backup sets that end at or after TIME (with --time, the sets
    /// of a time range).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// replicate: ask the source's archived files to thaw in batches of at most MIB, each
    /// copied before the next is asked for (default: all at once).
    #[arg(long, value_name = "MIB")]
    pub thaw_batch: Option<u64>,
    /// replicate: encrypt the copy for this public key instead of copying the encrypted
    /// files as they are (repeatable); TARGET_PASSPHRASE re-encrypts with a new passphrase.
    #[arg(long, value_name = "KEY", action = clap::ArgAction::Append)]
    pub target_encrypt_key: Vec<String>,
    /// check: copy the files missing or damaged on a store of a multi:// mirror from a store
    /// that holds a good copy.
    #[arg(long)]
    pub repair: bool,
    /// SSH options for sftp:// (-oIdentityFile=, -oUserKnownHostsFile=, -oStrictHostKeyChecking=;
    /// repeatable: the values add up).
    #[arg(long, value_name = "OPTIONS", allow_hyphen_values = true, action = clap::ArgAction::Append)]
    pub ssh_options: Vec<String>,
    /// Testing aid: stop with an error right after storing volume N of a backup.
    #[arg(long, hide = true, value_name = "N")]
    pub fail_on_volume: Option<u32>,
    /// Pretend the current time is this (epoch seconds or a time string).
    #[arg(long, hide = true, value_name = "TIME")]
    pub current_time: Option<String>,

    // --- core (issue 9): the rest of duplicity 3.2.1's options. The positive toggles and
    // their --no- forms override each other: the last one given wins. ---
    /// Encrypt (the default; undoes an earlier --no-encryption).
    #[arg(long, overrides_with = "no_encryption")]
    pub encryption: bool,
    /// Compress (the default; undoes an earlier --no-compression).
    #[arg(long, overrides_with = "no_compression")]
    pub compression: bool,
    /// Print backup statistics (the default; undoes an earlier --no-print-statistics).
    #[arg(long, overrides_with = "no_print_statistics")]
    pub print_statistics: bool,
    /// Restore owners (the default; undoes an earlier --no-restore-ownership).
    #[arg(long, overrides_with = "no_restore_ownership")]
    pub restore_ownership: bool,
    /// Check the target's listing and manifests (the default; ferrodup always does).
    #[arg(long, overrides_with = "no_check_remote")]
    pub check_remote: bool,
    /// duplicity: trust the archive dir instead of the target; ferrodup always checks the
    /// target (accepted, with a warning).
    #[arg(long, overrides_with = "check_remote")]
    pub no_check_remote: bool,
    /// Record the changed files in the manifest (the default).
    #[arg(long, overrides_with = "no_files_changed")]
    pub files_changed: bool,
    /// Do not record the changed files in the manifest.
    #[arg(long, overrides_with = "files_changed")]
    pub no_files_changed: bool,
    /// Let gpg's agent supply the passphrases of secret keys (no passphrase prompt).
    #[arg(long)]
    pub use_agent: bool,
    /// Encrypt with gpgsm (PKCS#7): ferrodup cannot, and refuses to write with it.
    #[arg(long)]
    pub use_gpgsm: bool,
    /// Secret keyring file to read keys from (like --gpg-key-file).
    #[arg(long, value_name = "PATH")]
    pub encrypt_secret_keyring: Option<PathBuf>,
    /// duplicity's configuration folder (reserved by duplicity for future use: no effect).
    #[arg(long, value_name = "PATH")]
    pub config_dir: Option<PathBuf>,
    /// Block size of duplicity's file copies, in KiB (no effect: ferrodup sizes its own
    /// buffers).
    #[arg(long, value_name = "KIB", allow_negative_numbers = true)]
    pub copy_blocksize: Option<i64>,
    /// Which metadata to fetch into the archive dir: full, or partial (only what the command
    /// needs; ferrodup always fetches only what the archive dir lacks).
    #[arg(long, value_name = "MODE", value_parser = ["full", "partial"], default_value = "partial")]
    pub metadata_sync_mode: String,
    /// Character that separates hours, minutes and seconds in old file names (default `:`).
    #[arg(long, value_name = "CHAR")]
    pub time_separator: Option<String>,
    /// Ask for the SSH password on the terminal (sftp://) when neither the URL nor
    /// FTP_PASSWORD gives one.
    #[arg(long)]
    pub ssh_askpass: bool,
    /// Azure storage tier (azure backend; not in ferrodup: ignored with a warning).
    #[arg(long, value_name = "TIER")]
    pub azure_blob_tier: Option<String>,
    /// azure backend (ignored with a warning).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub azure_max_block_size: Option<i64>,
    /// azure backend (ignored with a warning).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub azure_max_connections: Option<i64>,
    /// azure backend (ignored with a warning).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub azure_max_single_put_size: Option<i64>,
    /// b2 backend (ignored with a warning).
    #[arg(long)]
    pub b2_hide_files: bool,
    /// cf+http backend (ignored with a warning).
    #[arg(long, value_name = "pyrax|cloudfiles")]
    pub cf_backend: Option<String>,
    /// ftp backends (ignored with a warning).
    #[arg(long, overrides_with = "ftp_regular")]
    pub ftp_passive: bool,
    /// ftp backends (ignored with a warning).
    #[arg(long, overrides_with = "ftp_passive")]
    pub ftp_regular: bool,
    /// idrived backend (ignored with a warning).
    #[arg(long, value_name = "PATH")]
    pub idr_fakeroot: Option<PathBuf>,
    /// imap backend (ignored with a warning).
    #[arg(long)]
    pub imap_full_address: bool,
    /// imap backend (ignored with a warning).
    #[arg(long, value_name = "MAILBOX")]
    pub imap_mailbox: Option<String>,
    /// mf (MediaFire) backend (ignored with a warning).
    #[arg(long)]
    pub mf_purge: bool,
    /// par2+ targets: options given to every par2 run (repeatable).
    #[arg(long, value_name = "OPTIONS", allow_hyphen_values = true, action = clap::ArgAction::Append)]
    pub par2_options: Vec<String>,
    /// par2+ targets: recovery data, in percent of each file (default 10).
    #[arg(long, value_name = "PERCENT", allow_negative_numbers = true)]
    pub par2_redundancy: Option<i64>,
    /// par2+ targets: recovery files per stored file (default 1).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub par2_volumes: Option<i64>,
    /// rsync backend (ignored with a warning; repeatable).
    #[arg(long, value_name = "OPTIONS", allow_hyphen_values = true, action = clap::ArgAction::Append)]
    pub rsync_options: Vec<String>,
    /// pexpect+scp backend (ignored with a warning).
    #[arg(long, value_name = "COMMAND")]
    pub scp_command: Option<String>,
    /// pexpect+sftp backend (ignored with a warning: ferrodup's sftp:// is built in).
    #[arg(long, value_name = "COMMAND")]
    pub sftp_command: Option<String>,
    /// webdav backend (ignored with a warning).
    #[arg(long, value_name = "HEADERS")]
    pub webdav_headers: Option<String>,
    /// Options duplicity 2.0 renamed or removed, refused as duplicity refuses them, with
    /// what to use instead (see [`Cli::retired_option`]).
    #[arg(long, hide = true, value_name = "PATH")]
    pub file_to_restore: Option<String>,
    #[arg(long, hide = true)]
    pub do_not_restore_ownership: bool,
    #[arg(long, hide = true)]
    pub gio: bool,
    #[arg(long, hide = true)]
    pub old_filenames: bool,
    #[arg(long, hide = true)]
    pub short_filenames: bool,
    #[arg(long, hide = true, value_name = "FILE", action = clap::ArgAction::Append)]
    pub exclude_globbing_filelist: Vec<String>,
    #[arg(long, hide = true, value_name = "FILE", action = clap::ArgAction::Append)]
    pub include_globbing_filelist: Vec<String>,
    #[arg(long, hide = true)]
    pub exclude_filelist_stdin: bool,
    #[arg(long, hide = true)]
    pub include_filelist_stdin: bool,
    #[arg(long, hide = true, value_name = "SECONDS")]
    pub s3_multipart_max_timeout: Option<String>,
    #[arg(long, hide = true)]
    pub s3_european_buckets: bool,
    #[arg(long, hide = true)]
    pub s3_use_multiprocessing: bool,
    #[arg(long, hide = true)]
    pub s3_use_new_style: bool,

    // Logging and progress (issue 9, part "logging").
    /// Also write duplicity's machine-readable log records to this open file descriptor
    /// (repeatable).
    #[arg(long, value_name = "FD", allow_negative_numbers = true, action = clap::ArgAction::Append)]
    pub log_fd: Vec<i32>,
    /// Also append duplicity's machine-readable log records to this file (repeatable).
    #[arg(long, value_name = "PATH", action = clap::ArgAction::Append)]
    pub log_file: Vec<PathBuf>,
    /// Start each message with the local time and its level.
    #[arg(long)]
    pub log_timestamp: bool,
    /// Print a progress line during full and incremental backups.
    #[arg(long)]
    pub progress: bool,
    /// Seconds between progress lines (with --progress).
    #[arg(long, default_value_t = 3, value_name = "SECONDS")]
    pub progress_rate: u64,

    // stats: backup statistics and --jsonstat.
    /// Print the backup statistics as JSON and store them with the backup set; with
    /// collection-status --show-changes-in-set, print the stored statistics.
    #[arg(long)]
    pub jsonstat: bool,
    /// collection-status: list the files changed in backup set N of the newest chain (0 =
    /// newest, 1 = the one before, ...; -1 = the full one, with --jsonstat all sets).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub show_changes_in_set: Option<i64>,

    // --- output: collection-status reports and the manifests' change lists ---
    /// collection-status: list the backup sets of the current chain in which PATH changed.
    #[arg(long, value_name = "PATH")]
    pub file_changed: Option<String>,

    // Storage options (issue 9, part `storage`): TLS, S3 encryption and multipart, Swift.
    /// HTTPS storage: trust the certificate authorities of this PEM file.
    #[arg(long, value_name = "FILE")]
    pub ssl_cacert_file: Option<PathBuf>,
    /// HTTPS storage: trust the certificate authorities in the PEM files of this folder.
    #[arg(long, value_name = "DIR")]
    pub ssl_cacert_path: Option<PathBuf>,
    /// HTTPS storage: do not check the server's certificate.
    #[arg(long)]
    pub ssl_no_check_certificate: bool,
    /// S3: server-side encryption with keys S3 manages (SSE-S3, AES256).
    #[arg(long)]
    pub s3_use_server_side_encryption: bool,
    /// S3: server-side encryption with a KMS key (SSE-KMS; needs --s3-kms-key-id).
    #[arg(long)]
    pub s3_use_server_side_kms_encryption: bool,
    /// S3: the KMS key id for --s3-use-server-side-kms-encryption.
    #[arg(long, value_name = "ID")]
    pub s3_kms_key_id: Option<String>,
    /// S3: grantee given full control of each object with SSE-KMS (e.g. id=...).
    #[arg(long, value_name = "GRANT")]
    pub s3_kms_grant: Option<String>,
    /// S3: files of at least this size (MiB) are uploaded in parts of this size (at least 5).
    #[arg(long, default_value_t = 20, value_name = "MIB")]
    pub s3_multipart_chunk_size: u64,
    /// S3: parts of one file uploaded at the same time.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub s3_multipart_max_procs: usize,
    /// S3: plain HTTP to AWS instead of HTTPS (--s3-endpoint-url gives its own scheme).
    #[arg(long)]
    pub s3_unencrypted_connection: bool,
    /// Swift: storage policy of the containers created (an existing one must have it).
    #[arg(long, value_name = "POLICY")]
    pub swift_storage_policy: Option<String>,
    /// Swift: files larger than this (MiB) are stored as Static Large Objects of segments
    /// of this size.
    #[arg(long, default_value_t = 5120, value_name = "MIB")]
    pub mp_segment_size: u64,

    // Parallel uploads (issue 9: --concurrency, --asynchronous-upload).
    /// Volumes uploaded at once during a backup (default 4, at most 64; 0 or 1: one at a
    /// time, still while the next volume is made).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub concurrency: Option<i64>,
    /// duplicity's former option for uploading a volume while making the next, which
    /// ferrodup always does (replaced by --concurrency).
    #[arg(long)]
    pub asynchronous_upload: bool,

    // The help (see `crate::help`, which finds help requests before the parse).
    /// Print help (-h: short, --help: with examples, URL forms and environment); with a
    /// command, that command's help, as `ferrodup help COMMAND` and `--help-COMMAND`.
    #[arg(short = 'h', long, action = clap::ArgAction::SetTrue)]
    pub help: bool,
    /// Print the version.
    #[arg(short = 'V', long, action = clap::ArgAction::Version)]
    pub version: Option<bool>,
    /// Print the man page (roff), e.g. into ~/.local/share/man/man1/ferrodup.1.
    #[arg(long)]
    pub man_page: bool,
    /// Print the completion script of SHELL (bash, zsh, fish, elvish or powershell).
    #[arg(long, value_name = "SHELL")]
    pub completion: Option<clap_complete::Shell>,
}

impl Cli {
    /// The first option given that duplicity 2.0 renamed or removed, with what to do.
    pub fn retired_option(&self) -> Option<String> {
        let renamed = [
            (
                self.file_to_restore.is_some(),
                "--file-to-restore",
                "--path-to-restore",
            ),
            (
                self.do_not_restore_ownership,
                "--do-not-restore-ownership",
                "--no-restore-ownership",
            ),
        ];
        if let Some((_, old, new)) = renamed.iter().find(|(given, _, _)| *given) {
            return Some(format!(
                "{old} was renamed {new} in duplicity 2.0.0: use {new}"
            ));
        }
        let removed = [
            (self.gio, "--gio", "leave it out"),
            (self.old_filenames, "--old-filenames", "leave it out"),
            (self.short_filenames, "--short-filenames", "leave it out"),
            (
                !self.exclude_globbing_filelist.is_empty(),
                "--exclude-globbing-filelist",
                "use --exclude-filelist",
            ),
            (
                !self.include_globbing_filelist.is_empty(),
                "--include-globbing-filelist",
                "use --include-filelist",
            ),
            (
                self.exclude_filelist_stdin,
                "--exclude-filelist-stdin",
                "use --exclude-filelist /dev/stdin",
            ),
            (
                self.include_filelist_stdin,
                "--include-filelist-stdin",
                "use --include-filelist /dev/stdin",
            ),
            (
                self.s3_multipart_max_timeout.is_some(),
                "--s3-multipart-max-timeout",
                "leave it out",
            ),
            (
                self.s3_european_buckets,
                "--s3-european-buckets",
                "leave it out",
            ),
            (
                self.s3_use_multiprocessing,
                "--s3-use-multiprocessing",
                "leave it out",
            ),
            (self.s3_use_new_style, "--s3-use-new-style", "leave it out"),
        ];
        removed
            .iter()
            .find(|(given, _, _)| *given)
            .map(|(_, opt, what)| format!("{opt} was removed in duplicity 2.0.0: {what}"))
    }

    /// The options given that belong to duplicity backends ferrodup does not have, each
    /// with its backend.
    pub fn foreign_backend_options(&self) -> Vec<(&'static str, &'static str)> {
        [
            (self.azure_blob_tier.is_some(), "--azure-blob-tier", "azure"),
            (
                self.azure_max_block_size.is_some(),
                "--azure-max-block-size",
                "azure",
            ),
            (
                self.azure_max_connections.is_some(),
                "--azure-max-connections",
                "azure",
            ),
            (
                self.azure_max_single_put_size.is_some(),
                "--azure-max-single-put-size",
                "azure",
            ),
            (self.b2_hide_files, "--b2-hide-files", "b2"),
            (self.cf_backend.is_some(), "--cf-backend", "cf+http"),
            (self.ftp_passive, "--ftp-passive", "ftp"),
            (self.ftp_regular, "--ftp-regular", "ftp"),
            (self.idr_fakeroot.is_some(), "--idr-fakeroot", "idrived"),
            (self.imap_full_address, "--imap-full-address", "imap"),
            (self.imap_mailbox.is_some(), "--imap-mailbox", "imap"),
            (self.mf_purge, "--mf-purge", "mf (MediaFire)"),
            (!self.rsync_options.is_empty(), "--rsync-options", "rsync"),
            (self.scp_command.is_some(), "--scp-command", "pexpect+scp"),
            (
                self.sftp_command.is_some(),
                "--sftp-command",
                "pexpect+sftp",
            ),
            (self.webdav_headers.is_some(), "--webdav-headers", "webdav"),
        ]
        .into_iter()
        .filter(|(given, _, _)| *given)
        .map(|(_, opt, backend)| (opt, backend))
        .collect()
    }
}

/// Options that add up when repeated (`--gpg-options`, `--ssh-options`), as duplicity joins
/// them: each value without its surrounding quotes, separated by spaces.
pub fn joined_options(values: &[String]) -> String {
    values
        .iter()
        .map(|v| v.trim_matches('"').trim_matches('\''))
        .collect::<Vec<_>>()
        .join(" ")
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
