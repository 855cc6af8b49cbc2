//! A run's whole configuration, typed: [`Config::from_cli`] turns the parsed command line
//! (and the environment: `PASSPHRASE`, `SIGN_PASSPHRASE`, `TMPDIR`) into it, doing every
//! check and conversion of times, sizes, selection rules and storage settings, so that
//! [`crate::app::run`] gets only valid settings. Front ends other than the command line
//! build a [`Config`] directly.

use crate::backend;
use crate::cli::{joined_options, Cli};
use crate::commands::backup::Mode;
use crate::commands::remove::Scope;
use crate::commands::restore::normalize_path;
use crate::commands::upload;
use crate::crypto::apply_gpg_options;
use crate::error::{Error, Kind, Result};
use crate::format::naming::Prefixes;
use crate::format::time;
use crate::fsmeta::OwnerPolicy;
use crate::select::{self, Namespace, Opt, Selection};
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::types::CompressionAlgorithm;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A command and its arguments.
#[derive(Clone, Debug)]
pub enum Command {
    Backup {
        mode: Mode,
        source: PathBuf,
        url: String,
    },
    Restore {
        url: String,
        dest: PathBuf,
    },
    Verify {
        url: String,
        local: PathBuf,
    },
    Status {
        url: String,
    },
    List {
        url: String,
    },
    /// `replicate SOURCE_URL TARGET_URL`: the backup sets of one target copied to another.
    Replicate {
        url: String,
        target: String,
    },
    /// `check URL`: every volume, manifest and signature file is in place, from listings,
    /// without reading cold storage.
    Check {
        url: String,
    },
    Cleanup {
        url: String,
    },
    /// `remove-older-than TIME`: chains older than `time` go.
    RemoveOlderThan {
        time: i64,
        url: String,
    },
    /// `remove-all-but-n-full` and `remove-all-inc-of-but-n-full`.
    RemoveAllButN {
        count: usize,
        scope: Scope,
        url: String,
    },
}

impl Command {
    /// The target URL.
    pub fn url(&self) -> &str {
        match self {
            Command::Backup { url, .. }
            | Command::Restore { url, .. }
            | Command::Verify { url, .. }
            | Command::Status { url }
            | Command::List { url }
            | Command::Check { url }
            | Command::Replicate { url, .. }
            | Command::Cleanup { url }
            | Command::RemoveOlderThan { url, .. }
            | Command::RemoveAllButN { url, .. } => url,
        }
    }
}

/// Encryption settings (none with `--no-encryption`). The keyring is loaded, and a
/// missing symmetric passphrase asked for, when the command runs.
#[derive(Clone, Debug)]
pub struct CryptoConfig {
    /// `--gpg-key-file` files, read besides the GnuPG home.
    pub key_files: Vec<PathBuf>,
    /// `PASSPHRASE`.
    pub passphrase: Option<String>,
    /// `SIGN_PASSPHRASE`.
    pub sign_passphrase: Option<String>,
    /// `--use-agent`: gpg's agent supplies the passphrases of secret keys gpg uses.
    pub use_agent: bool,
    /// `--encrypt-key` and `--encrypt-sign-key` (empty: symmetric).
    pub recipients: Vec<String>,
    pub hidden_recipients: Vec<String>,
    pub sign_key: Option<String>,
    pub cipher: SymmetricKeyAlgorithm,
    pub compression: Option<CompressionAlgorithm>,
    pub gpg_binary: PathBuf,
}

impl CryptoConfig {
    /// True without recipients: the passphrase encrypts.
    pub fn is_symmetric(&self) -> bool {
        self.recipients.is_empty() && self.hidden_recipients.is_empty()
    }
}

/// Backup settings besides the source, the mode and the selection.
#[derive(Clone, Debug)]
pub struct BackupConfig {
    /// Volume size in bytes.
    pub volsize: u64,
    pub max_blocksize: u64,
    pub full_if_older_than: Option<i64>,
    pub full_if_n_inc: Option<usize>,
    pub allow_source_mismatch: bool,
    pub skip_if_no_change: bool,
    pub copy_links: bool,
    pub print_statistics: bool,
    pub files_changed: bool,
    pub fail_on_volume: Option<u32>,
    /// `--progress`: a progress line this often.
    pub progress: Option<std::time::Duration>,
    /// Volumes uploaded at once (`--concurrency`, `--asynchronous-upload`).
    pub concurrency: usize,
    /// `--concurrency` as given (duplicity's default 0), which `--jsonstat` reports.
    pub concurrency_given: u64,
}

/// Restore, verify and list settings.
#[derive(Clone, Debug)]
pub struct RestoreConfig {
    /// The backup time to restore, verify or list.
    pub time: i64,
    /// `--path-to-restore`, normalised (empty: everything).
    pub path: Vec<u8>,
    /// `--rename FROM TO` pairs, normalised.
    pub rename: Vec<(Vec<u8>, Vec<u8>)>,
    pub owners: OwnerPolicy,
    pub compare_data: bool,
}

/// `replicate` settings.
#[derive(Clone, Debug, Default)]
pub struct ReplicateConfig {
    /// `--since`: only the sets that end at or after this time.
    pub since: Option<i64>,
    /// `--thaw-batch`, in bytes.
    pub thaw_batch: Option<u64>,
    /// `--target-encrypt-key` values.
    pub target_recipients: Vec<String>,
    /// `TARGET_PASSPHRASE`.
    pub target_passphrase: Option<String>,
}

impl ReplicateConfig {
    /// True if the copy is to be encrypted anew.
    pub fn reencrypts(&self) -> bool {
        !self.target_recipients.is_empty() || self.target_passphrase.is_some()
    }
}

/// Everything one run needs.
pub struct Config {
    pub command: Command,
    /// The current time (`--current-time` pretends another).
    pub now: i64,
    /// `--archive-dir` (default: duplicity's) and `--name` (default: MD5 of the URL).
    pub archive_dir: Option<PathBuf>,
    pub name: Option<String>,
    pub backend: backend::Options,
    /// Where the run's temporary directory goes (`--tempdir`, else `TMPDIR`, else `/tmp`).
    pub tempdir: PathBuf,
    pub prefixes: Prefixes,
    pub compression: bool,
    pub crypto: Option<CryptoConfig>,
    /// New files are encrypted (not `--no-encryption`); `crypto` may still read `.gpg` ones.
    pub encrypt: bool,
    pub dry_run: bool,
    pub force: bool,
    pub ignore_errors: bool,
    /// `--time-separator`: between hours, minutes and seconds in old-style file names.
    pub time_separator: char,
    /// `--jsonstat`: statistics as JSON, stored with each set and shown by collection-status.
    pub jsonstat: bool,
    /// `collection-status --show-changes-in-set N`.
    pub show_changes_in_set: Option<i64>,
    /// `collection-status --file-changed PATH`.
    pub file_changed: Option<String>,
    /// Compiled selection rules, for the commands they apply to.
    pub select: Option<Arc<Selection>>,
    pub backup: BackupConfig,
    pub restore: RestoreConfig,
    pub replicate: ReplicateConfig,
    /// `check --repair`.
    pub repair: bool,
}

fn want(args: &[String], n: usize, usage: &str) -> Result<()> {
    if args.len() != n {
        return Err(Error::usage(format!(
            "wrong number of arguments; usage: ferrodup {usage}"
        )));
    }
    Ok(())
}

/// For a first argument that is neither a command nor an existing path (so not a folder
/// to back up): the command it looks like a typo of, or where the help is.
fn command_hint(word: &str) -> Option<String> {
    if word == "help" {
        return Some("help: the commands and options are shown by `ferrodup --help`".to_string());
    }
    let (best, distance) = crate::help::command_names()
        .map(|c| (c, strsim::damerau_levenshtein(word, c)))
        .min_by_key(|(_, d)| *d)?;
    (word.len() >= 3 && distance <= 2).then(|| {
        format!(
            "unknown command {word:?}: did you mean {best}? (nothing named {word:?} exists to \
             back up either)"
        )
    })
}

/// The command from the positional arguments, with duplicity's names and aliases.
fn parse_command(args: &[String], now: i64) -> Result<Command> {
    if args.is_empty() {
        return Err(Error::usage(
            "no command given; try: ferrodup full SOURCE_DIR file:///path/to/backups (see --help)",
        ));
    }
    let cmd = args[0].as_str();
    let rest = &args[1..];
    let two = |usage: &str| -> Result<(String, String)> {
        want(rest, 2, usage)?;
        Ok((rest[0].clone(), rest[1].clone()))
    };
    let one = |usage: &str| -> Result<String> {
        want(rest, 1, usage)?;
        Ok(rest[0].clone())
    };
    let count = |n: &str| -> Result<usize> {
        n.parse()
            .map_err(|_| Error::usage(format!("{n:?} is not a number of full backups")))
    };
    Ok(match cmd {
        "full" | "fb" | "incremental" | "incr" | "inc" | "ib" | "backup" | "bu" => {
            let (source, url) = two(&format!("{cmd} SOURCE_DIR URL"))?;
            let mode = match cmd {
                "full" | "fb" => Mode::Full,
                "backup" | "bu" => Mode::Auto,
                _ => Mode::Incremental,
            };
            Command::Backup {
                mode,
                source: PathBuf::from(source),
                url,
            }
        }
        "restore" | "rb" => {
            let (url, dest) = two("restore URL DEST")?;
            Command::Restore {
                url,
                dest: PathBuf::from(dest),
            }
        }
        "verify" | "vb" => {
            let (url, local) = two("verify URL SOURCE_DIR")?;
            Command::Verify {
                url,
                local: PathBuf::from(local),
            }
        }
        "collection-status" | "st" => Command::Status {
            url: one("collection-status URL")?,
        },
        "list-current-files" | "ls" => Command::List {
            url: one("list-current-files URL")?,
        },
        "replicate" => {
            let (url, target) = two("replicate SOURCE_URL TARGET_URL")?;
            Command::Replicate { url, target }
        }
        "check" => Command::Check {
            url: one("check URL")?,
        },
        "cleanup" | "cl" => Command::Cleanup {
            url: one("cleanup URL")?,
        },
        "remove-older-than" | "ro" => {
            let (t, url) = two("remove-older-than TIME URL")?;
            let time = time::parse_user_time(&t, now)
                .map_err(|e| Error::usage(format!("remove-older-than: {e}")))?;
            Command::RemoveOlderThan { time, url }
        }
        "remove-all-but-n-full" | "ra" => {
            let (n, url) = two("remove-all-but-n-full N URL")?;
            Command::RemoveAllButN {
                count: count(&n)?,
                scope: Scope::WholeChains,
                url,
            }
        }
        "remove-all-inc-of-but-n-full" | "ri" => {
            let (n, url) = two("remove-all-inc-of-but-n-full N URL")?;
            Command::RemoveAllButN {
                count: count(&n)?,
                scope: Scope::IncrementalsOnly,
                url,
            }
        }
        _ => {
            if !cmd.contains("://") && std::fs::symlink_metadata(cmd).is_err() {
                if let Some(hint) = command_hint(cmd) {
                    return Err(Error::usage(hint));
                }
            }
            want(args, 2, "SOURCE_DIR URL  or  ferrodup URL DEST")?;
            if args[0].contains("://") {
                Command::Restore {
                    url: args[0].clone(),
                    dest: PathBuf::from(&args[1]),
                }
            } else {
                Command::Backup {
                    mode: Mode::Auto,
                    source: PathBuf::from(&args[0]),
                    url: args[1].clone(),
                }
            }
        }
    })
}

impl Config {
    /// Builds the configuration from the command line and its selection options (in the
    /// order given, see [`crate::cli::selection_options`]). Parsing `-v` sets the log level
    /// at once, so that the warnings given while building obey it.
    pub fn from_cli(mut cli: Cli, mut select_opts: Vec<(Opt, String)>) -> Result<Config> {
        crate::log::setup(&cli.log_fd, &cli.log_file, cli.log_timestamp).map_err(Error::usage)?;
        if let Some(v) = &cli.verbosity {
            let level = crate::log::parse_level(v).ok_or_else(|| {
                Error::usage(format!(
                    "bad verbosity {v:?}: use 0-9 or error, warning, notice, info, debug"
                ))
            })?;
            crate::log::set_level(level);
        }
        if let Some(msg) = cli.retired_option() {
            return Err(Error::usage(msg));
        }
        // The options duplicity reads as file names get `~` and `$VAR` expanded, as there.
        for p in [&mut cli.archive_dir, &mut cli.tempdir] {
            *p = p.as_deref().map(expand_path);
        }
        cli.gpg_binary = expand_path(&cli.gpg_binary);
        if let Some(r) = &mut cli.path_to_restore {
            *r = expand_str(r);
        }
        for (o, v) in &mut select_opts {
            if *o == Opt::FilesFrom {
                *v = expand_str(v);
            }
        }
        let time_separator = time_separator(cli.time_separator.as_deref())?;
        for (opt, backend) in cli.foreign_backend_options() {
            crate::log::warn(&format!(
                "{opt} is for the {backend} backend, which ferrodup does not have yet; ignored"
            ));
        }
        if cli.no_check_remote {
            crate::log::warn(
                "--no-check-remote: ferrodup always reads the target's listing and checks its \
                 manifests; ignored",
            );
        }
        let wall = crate::wall_clock();
        let now = match &cli.current_time {
            Some(t) => time::parse_user_time(t, wall).map_err(Error::usage)?,
            None => wall,
        };
        let parse_time = |what: &str, s: &str| -> Result<i64> {
            time::parse_user_time(s, now).map_err(|e| Error::usage(format!("{what}: {e}")))
        };
        let command = parse_command(&cli.args, now)?;
        let select = build_selection(
            &command,
            &cli,
            select::Options {
                opts: select_opts,
                null_separator: cli.null_separator,
                now,
            },
        )?;
        // With --no-encryption, `.gpg` files are still read with what is at hand (as
        // duplicity, which decides by the file names); nothing is asked for.
        let crypto = if cli.no_encryption {
            crypto_config(&cli).ok()
        } else {
            if cli.use_gpgsm {
                return Err(Error::new(
                    Kind::Unsupported,
                    "--use-gpgsm: ferrodup cannot encrypt or decrypt with gpgsm (PKCS#7); \
                     leave it out to use OpenPGP",
                ));
            }
            Some(crypto_config(&cli)?)
        };
        if cli.timeout == 0 {
            return Err(Error::usage("--timeout must be at least 1 (seconds)"));
        }
        if cli.volsize == 0 {
            return Err(Error::usage("--volsize must be at least 1 (MiB)"));
        }
        let backend = backend_options(&cli)?;
        let tempdir = cli
            .tempdir
            .clone()
            .or_else(|| std::env::var_os("TMPDIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        let restore = RestoreConfig {
            time: match &cli.time {
                Some(t) => parse_time("--time", t)?,
                None => now,
            },
            path: cli
                .path_to_restore
                .as_deref()
                .map(normalize_path)
                .unwrap_or_default(),
            rename: cli
                .rename
                .chunks(2)
                .map(|p| (normalize_path(&p[0]), normalize_path(&p[1])))
                .collect(),
            owners: OwnerPolicy {
                restore_ownership: !cli.no_restore_ownership,
                numeric_owner: cli.numeric_owner,
            },
            compare_data: cli.compare_data,
        };
        if cli.thaw_batch == Some(0) {
            return Err(Error::usage("--thaw-batch must be at least 1 (MiB)"));
        }
        let replicate = ReplicateConfig {
            since: cli
                .since
                .as_deref()
                .map(|t| parse_time("--since", t))
                .transpose()?,
            thaw_batch: cli.thaw_batch.map(|m| m.saturating_mul(1 << 20)),
            target_recipients: cli.target_encrypt_key.clone(),
            target_passphrase: passphrase_from_env("TARGET_PASSPHRASE")?,
        };
        let backup = BackupConfig {
            volsize: cli.volsize.saturating_mul(1024 * 1024),
            max_blocksize: cli.max_blocksize.map_or(0, round512),
            full_if_older_than: cli
                .full_if_older_than
                .as_deref()
                .map(|t| parse_time("--full-if-older-than", t))
                .transpose()?,
            full_if_n_inc: cli.full_if_n_inc,
            allow_source_mismatch: cli.allow_source_mismatch,
            skip_if_no_change: cli.skip_if_no_change,
            copy_links: cli.copy_links,
            print_statistics: !cli.no_print_statistics,
            files_changed: !cli.no_files_changed,
            fail_on_volume: cli.fail_on_volume,
            concurrency_given: cli.concurrency.unwrap_or(0).max(0) as u64,
            concurrency: crate::commands::upload::concurrency(
                cli.concurrency,
                cli.asynchronous_upload,
            ),
            progress: cli
                .progress
                .then(|| std::time::Duration::from_secs(cli.progress_rate.max(1))),
        };
        Ok(Config {
            command,
            now,
            archive_dir: cli.archive_dir,
            name: cli.name,
            backend,
            tempdir,
            prefixes: Prefixes {
                base: cli.file_prefix,
                archive: cli.file_prefix_archive,
                manifest: cli.file_prefix_manifest,
                signature: cli.file_prefix_signature,
                jsonstat: cli.file_prefix_jsonstat,
            },
            compression: !cli.no_compression,
            crypto,
            encrypt: !cli.no_encryption,
            dry_run: cli.dry_run,
            force: cli.force,
            ignore_errors: cli.ignore_errors,
            jsonstat: cli.jsonstat,
            show_changes_in_set: cli.show_changes_in_set,
            file_changed: cli.file_changed,
            time_separator,
            select,
            backup,
            restore,
            replicate,
            repair: cli.repair,
        })
    }
}

/// `--time-separator`: one character, `:` by default.
fn time_separator(s: Option<&str>) -> Result<char> {
    let Some(s) = s else { return Ok(':') };
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(Error::usage(format!(
            "--time-separator {s:?}: give one character (duplicity's old file names used `:`)"
        ))),
    }
}

/// `--max-blocksize` as duplicity takes it: the absolute value rounded up to a multiple of
/// 512, at least 512.
fn round512(n: i64) -> u64 {
    n.unsigned_abs().max(1).div_ceil(512).saturating_mul(512)
}

/// `~` and `$NAME`/`${NAME}` expanded as Python's `expanduser` and `expandvars` do (an
/// unknown variable stays as written).
fn expand_str(s: &str) -> String {
    let home = || std::env::var("HOME").ok().filter(|h| !h.is_empty());
    let s = match (s.strip_prefix('~'), home()) {
        (Some(rest), Some(h)) if rest.is_empty() || rest.starts_with('/') => format!("{h}{rest}"),
        _ => s.to_string(),
    };
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(j) => (&braced[..j], j + 2),
                None => ("", 0),
            }
        } else {
            let n = after.find(|c| !name_char(c)).unwrap_or(after.len());
            (&after[..n], n)
        };
        match std::env::var(name).ok().filter(|_| !name.is_empty()) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[i..i + 1 + len]),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

fn expand_path(p: &Path) -> PathBuf {
    match p.to_str() {
        Some(s) => PathBuf::from(expand_str(s)),
        None => p.to_path_buf(),
    }
}

/// Retry and storage settings from the options. Storage classes follow duplicity's order
/// of precedence; the cold ones apply to volumes only.
fn backend_options(cli: &Cli) -> Result<backend::Options> {
    let pick =
        |flags: &[(bool, &str)]| flags.iter().find(|(on, _)| *on).map(|(_, c)| c.to_string());
    let class = pick(&[
        (cli.s3_use_rrs, "REDUCED_REDUNDANCY"),
        (cli.s3_use_ia, "STANDARD_IA"),
        (cli.s3_use_onezone_ia, "ONEZONE_IA"),
    ]);
    let volume_class = pick(&[
        (cli.s3_use_glacier, "GLACIER"),
        (cli.s3_use_glacier_ir, "GLACIER_IR"),
        (cli.s3_use_deep_archive, "DEEP_ARCHIVE"),
    ]);
    Ok(backend::Options {
        tries: cli.num_retries,
        delay: Duration::from_secs(cli.backend_retry_delay),
        timeout: Duration::from_secs(cli.timeout),
        min_storage_days: cli.min_storage_days,
        transfers: cli.concurrency.map_or(upload::DEFAULT_CONCURRENCY, |n| {
            (n.max(1) as usize).min(upload::MAX_CONCURRENCY)
        }),
        s3: backend::S3Options {
            endpoint: cli.s3_endpoint_url.clone(),
            region: cli.s3_region_name.clone(),
            volume_class: if class.is_some() { None } else { volume_class },
            class,
            restore_days: cli.s3_restore_days,
            restore_tier: cli.s3_restore_tier.clone(),
            sse: backend::SseOptions {
                aes: cli.s3_use_server_side_encryption,
                kms: cli.s3_use_server_side_kms_encryption,
                kms_key_id: cli.s3_kms_key_id.clone(),
                kms_grant: cli.s3_kms_grant.clone(),
            },
            multipart_chunk: cli.s3_multipart_chunk_size.saturating_mul(1 << 20),
            multipart_procs: cli.s3_multipart_max_procs,
            unencrypted: cli.s3_unencrypted_connection,
            object_lock_days: cli.object_lock_days,
            object_lock_mode: match cli.object_lock_mode.to_ascii_uppercase().as_str() {
                m @ ("GOVERNANCE" | "COMPLIANCE") => m.to_string(),
                _ => {
                    return Err(Error::usage(format!(
                        "--object-lock-mode {}: give GOVERNANCE or COMPLIANCE",
                        cli.object_lock_mode
                    )))
                }
            },
        },
        ssh: backend::SshOptions {
            askpass: cli.ssh_askpass,
            ..backend::SshOptions::parse(&joined_options(&cli.ssh_options))?
        },
        swift: backend::SwiftOptions {
            storage_policy: cli.swift_storage_policy.clone(),
            segment_size: cli.mp_segment_size.saturating_mul(1 << 20),
        },
        par2: par2_options(cli)?,
        tls: backend::TlsOptions {
            cacert_file: cli.ssl_cacert_file.clone(),
            cacert_path: cli.ssl_cacert_path.clone(),
            no_check: cli.ssl_no_check_certificate,
        },
    })
}

/// `--par2-redundancy`, `--par2-volumes` and `--par2-options`.
fn par2_options(cli: &Cli) -> Result<backend::Par2Options> {
    let mut o = backend::Par2Options::default();
    if let Some(r) = cli.par2_redundancy {
        o.redundancy = u32::try_from(r)
            .ok()
            .filter(|r| (1..=100).contains(r))
            .ok_or_else(|| {
                Error::usage(format!("--par2-redundancy {r}: give 1 to 100 (percent)"))
            })?;
    }
    if let Some(n) = cli.par2_volumes {
        o.volumes = u32::try_from(n)
            .ok()
            .filter(|n| (1..=32768).contains(n))
            .ok_or_else(|| Error::usage(format!("--par2-volumes {n}: give 1 or more")))?;
    }
    o.extra = joined_options(&cli.par2_options)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    Ok(o)
}

/// Compiles the selection options for the command, before anything is read or written:
/// backups and verify match them against the source directory, restore and
/// list-current-files against archive paths.
fn build_selection(
    command: &Command,
    cli: &Cli,
    opts: select::Options,
) -> Result<Option<Arc<Selection>>> {
    if opts.is_empty() {
        return Ok(None);
    }
    let archive_only = |what: &str| -> Result<()> {
        let unsupported: Vec<&str> = [
            Opt::ExcludeIfPresent,
            Opt::ExcludeOtherFilesystems,
            Opt::FilesFrom,
        ]
        .into_iter()
        .filter(|o| opts.has(*o))
        .map(Opt::flag)
        .collect();
        if unsupported.is_empty() {
            Ok(())
        } else {
            Err(Error::usage(format!(
                "{} cannot be used with {what}: they look at the source file system, which \
                 {what} does not read",
                unsupported.join(", ")
            )))
        }
    };
    let ns = match command {
        Command::Backup { source: local, .. } | Command::Verify { local, .. } => {
            if !Path::new(local).is_dir() {
                // The command reports the missing directory itself.
                return Ok(None);
            }
            Namespace::Source(local.clone())
        }
        Command::Restore { .. } => {
            if cli.path_to_restore.is_some() {
                return Err(Error::usage(
                    "--path-to-restore cannot be combined with selection options: use \
                     --path-to-restore for one path, or --include/--exclude patterns",
                ));
            }
            archive_only("restore")?;
            Namespace::Archive
        }
        Command::List { .. } => {
            archive_only("list-current-files")?;
            Namespace::Archive
        }
        _ => {
            crate::log::warn(
                "selection options (--include, --exclude, ...) have no effect on this command",
            );
            return Ok(None);
        }
    };
    Selection::new(&opts, ns).map(|s| Some(Arc::new(s)))
}

/// A passphrase from the environment: `NAME` itself (as duplicity), else the first line of
/// the file `NAME_FILE`, else the first line that the shell command `NAME_COMMAND` prints
/// (for systemd credentials and secret stores: the passphrase never shows in the process
/// list). Setting both `NAME_FILE` and `NAME_COMMAND` is refused.
fn passphrase_from_env(name: &str) -> Result<Option<String>> {
    if let Ok(p) = std::env::var(name) {
        return Ok(Some(p));
    }
    let file = std::env::var_os(format!("{name}_FILE"));
    let command = std::env::var(format!("{name}_COMMAND")).ok();
    let text = match (file, command) {
        (Some(_), Some(_)) => {
            return Err(Error::usage(format!(
                "{name}_FILE and {name}_COMMAND are both set: keep one"
            )))
        }
        (Some(f), None) => std::fs::read(&f).map_err(|e| {
            Error::usage(format!(
                "{name}_FILE: cannot read {} ({e}): give a readable file holding the passphrase",
                Path::new(&f).display()
            ))
        })?,
        (None, Some(c)) => {
            let out = std::process::Command::new("/bin/sh")
                .args(["-c", &c])
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::inherit())
                .output()
                .map_err(|e| Error::usage(format!("{name}_COMMAND: cannot run /bin/sh ({e})")))?;
            if !out.status.success() {
                return Err(Error::usage(format!(
                    "{name}_COMMAND failed ({}): fix the command that prints the passphrase",
                    out.status
                )));
            }
            out.stdout
        }
        (None, None) => return Ok(None),
    };
    let text = String::from_utf8(text).map_err(|_| {
        Error::usage(format!(
            "{name}_FILE or {name}_COMMAND: the passphrase is not UTF-8 text"
        ))
    })?;
    let line = text.lines().next().unwrap_or("");
    Ok(Some(line.to_string()))
}

/// Encryption settings from the options and the environment.
fn crypto_config(cli: &Cli) -> Result<CryptoConfig> {
    let mut cipher = SymmetricKeyAlgorithm::AES256;
    let mut compression = (!cli.no_compression).then_some(CompressionAlgorithm::ZLIB);
    if !cli.gpg_options.is_empty() {
        apply_gpg_options(
            &joined_options(&cli.gpg_options),
            &mut cipher,
            &mut compression,
        )?;
    }
    let mut recipients = cli.encrypt_key.clone();
    recipients.extend(cli.encrypt_sign_key.iter().cloned());
    let sign_key = cli.sign_key.clone().or(cli.encrypt_sign_key.clone());
    let recipients_given = !recipients.is_empty() || !cli.hidden_encrypt_key.is_empty();
    if cli.use_agent && !recipients_given {
        crate::log::info(
            "--use-agent: symmetric encryption is ferrodup's own (no gpg), so the passphrase \
             comes from PASSPHRASE or the terminal",
        );
    }
    Ok(CryptoConfig {
        key_files: cli
            .gpg_key_file
            .iter()
            .chain(&cli.encrypt_secret_keyring)
            .cloned()
            .collect(),
        passphrase: passphrase_from_env("PASSPHRASE")?,
        sign_passphrase: passphrase_from_env("SIGN_PASSPHRASE")?,
        use_agent: cli.use_agent,
        recipients,
        hidden_recipients: cli.hidden_encrypt_key.clone(),
        sign_key,
        cipher,
        compression,
        gpg_binary: cli.gpg_binary.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_block_sizes_are_read_as_duplicity_reads_them() {
        std::env::set_var("FERRODUP_CONFIG_TEST", "/x");
        let home = std::env::var("HOME").unwrap_or_default();
        assert_eq!(expand_str("$FERRODUP_CONFIG_TEST/a"), "/x/a");
        assert_eq!(expand_str("${FERRODUP_CONFIG_TEST}b"), "/xb");
        assert_eq!(
            expand_str("$FERRODUP_UNSET_VAR/a$"),
            "$FERRODUP_UNSET_VAR/a$"
        );
        assert_eq!(expand_str("${unclosed"), "${unclosed");
        assert_eq!(expand_str("a/~/$"), "a/~/$");
        if !home.is_empty() {
            assert_eq!(expand_str("~/c"), format!("{home}/c"));
        }
        assert_eq!(round512(0), 512);
        assert_eq!(round512(1000), 1024);
        assert_eq!(round512(-1024), 1024);
        assert_eq!(round512(i64::MIN), 1 << 63);
        assert_eq!(time_separator(None).unwrap(), ':');
        assert_eq!(time_separator(Some(".")).unwrap(), '.');
        assert!(time_separator(Some("")).is_err());
        assert!(time_separator(Some("::")).is_err());
    }
}
