use clap::{CommandFactory, FromArgMatches};
use ferrodup::backend;
use ferrodup::cache::Cache;
use ferrodup::cli::{selection_options, Cli};
use ferrodup::commands::backup::{BackupOptions, Mode};
use ferrodup::commands::remove::Scope;
use ferrodup::commands::restore::{normalize_path, PathFilter, Request};
use ferrodup::commands::{backup, list, remove, restore, status, Context, RunTemp};
use ferrodup::crypto::{apply_gpg_options, prompt_passphrase, Crypto, Keyring};
use ferrodup::error::{Code, Error, Result};
use ferrodup::format::naming::Prefixes;
use ferrodup::format::time;
use ferrodup::fsmeta::OwnerPolicy;
use ferrodup::select::{self, Namespace, Opt, Selection};
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::types::CompressionAlgorithm;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn main() {
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|c| (c, selection_options(&m))));
    let (cli, select) = match parsed {
        Ok(c) => c,
        Err(e) => {
            // duplicity 3.2.1 reports argparse's errors as its own command-line errors.
            let code = if e.use_stderr() {
                Code::UserError as i32
            } else {
                0
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    match run(cli, select) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("ferrodup: {}", backend::redact(&e.to_string()));
            std::process::exit(e.exit_code());
        }
    }
}

/// A command and its arguments.
enum Cmd {
    Backup(Mode, String, String),
    Restore(String, String),
    Verify(String, String),
    Status(String),
    List(String),
    Cleanup(String),
    RemoveOlder(String, String),
    RemoveButN(String, String, Scope),
}

fn want(args: &[String], n: usize, usage: &str) -> Result<()> {
    if args.len() != n {
        return Err(Error::usage(format!(
            "wrong number of arguments; usage: ferrodup {usage}"
        )));
    }
    Ok(())
}

fn run(cli: Cli, select_opts: Vec<(Opt, String)>) -> Result<i32> {
    if let Some(v) = &cli.verbosity {
        let level = ferrodup::log::parse_level(v).ok_or_else(|| {
            Error::usage(format!(
                "bad verbosity {v:?}: use 0-9 or error, warning, notice, info, debug"
            ))
        })?;
        ferrodup::log::set_level(level);
    }
    let wall = ferrodup::wall_clock();
    let now = match &cli.current_time {
        Some(t) => time::parse_user_time(t, wall).map_err(Error::usage)?,
        None => wall,
    };
    let parse_time = |what: &str, s: &str| -> Result<i64> {
        time::parse_user_time(s, now).map_err(|e| Error::usage(format!("{what}: {e}")))
    };
    let args = &cli.args;
    if args.is_empty() {
        return Err(Error::usage(
            "no command given; try: ferrodup full SOURCE_DIR file:///path/to/backups (see --help)",
        ));
    }
    let cmd = args[0].as_str();
    let rest = &args[1..];
    let command = match cmd {
        "full" | "fb" | "incremental" | "incr" | "inc" | "ib" | "backup" | "bu" => {
            want(rest, 2, &format!("{cmd} SOURCE_DIR URL"))?;
            let mode = match cmd {
                "full" | "fb" => Mode::Full,
                "backup" | "bu" => Mode::Auto,
                _ => Mode::Incremental,
            };
            Cmd::Backup(mode, rest[0].clone(), rest[1].clone())
        }
        "restore" | "rb" => {
            want(rest, 2, "restore URL DEST")?;
            Cmd::Restore(rest[0].clone(), rest[1].clone())
        }
        "verify" | "vb" => {
            want(rest, 2, "verify URL SOURCE_DIR")?;
            Cmd::Verify(rest[0].clone(), rest[1].clone())
        }
        "collection-status" | "st" => {
            want(rest, 1, "collection-status URL")?;
            Cmd::Status(rest[0].clone())
        }
        "list-current-files" | "ls" => {
            want(rest, 1, "list-current-files URL")?;
            Cmd::List(rest[0].clone())
        }
        "cleanup" | "cl" => {
            want(rest, 1, "cleanup URL")?;
            Cmd::Cleanup(rest[0].clone())
        }
        "remove-older-than" | "ro" => {
            want(rest, 2, "remove-older-than TIME URL")?;
            Cmd::RemoveOlder(rest[0].clone(), rest[1].clone())
        }
        "remove-all-but-n-full" | "ra" => {
            want(rest, 2, "remove-all-but-n-full N URL")?;
            Cmd::RemoveButN(rest[0].clone(), rest[1].clone(), Scope::WholeChains)
        }
        "remove-all-inc-of-but-n-full" | "ri" => {
            want(rest, 2, "remove-all-inc-of-but-n-full N URL")?;
            Cmd::RemoveButN(rest[0].clone(), rest[1].clone(), Scope::IncrementalsOnly)
        }
        _ => {
            want(args, 2, "SOURCE_DIR URL  or  ferrodup URL DEST")?;
            if args[0].contains("://") {
                Cmd::Restore(args[0].clone(), args[1].clone())
            } else {
                Cmd::Backup(Mode::Auto, args[0].clone(), args[1].clone())
            }
        }
    };
    let select = build_selection(
        &command,
        &cli,
        select::Options {
            opts: select_opts,
            null_separator: cli.null_separator,
            now,
        },
    )?;
    let url = match &command {
        Cmd::Backup(_, _, u)
        | Cmd::Restore(u, _)
        | Cmd::Verify(u, _)
        | Cmd::Status(u)
        | Cmd::List(u)
        | Cmd::Cleanup(u)
        | Cmd::RemoveOlder(_, u)
        | Cmd::RemoveButN(_, u, _) => u.clone(),
    };
    let crypto = if cli.no_encryption {
        None
    } else {
        Some(make_crypto(
            &cli,
            matches!(command, Cmd::Restore(..) | Cmd::Verify(..)),
        )?)
    };
    if cli.timeout == 0 {
        return Err(Error::usage("--timeout must be at least 1 (seconds)"));
    }
    if cli.volsize == 0 {
        return Err(Error::usage("--volsize must be at least 1 (MiB)"));
    }
    let cache = Cache::open(cli.archive_dir.as_deref(), cli.name.as_deref(), &url)?;
    // Every command may write the archive dir (at least to sync it), so each holds its
    // lock, as duplicity does.
    let _lock = cache.lock()?;
    let backend = backend::open(&url, &backend_options(&cli)?)?;
    let tempdir = cli
        .tempdir
        .clone()
        .or_else(|| std::env::var_os("TMPDIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    if !tempdir.is_dir() {
        return Err(Error::usage(format!(
            "temporary directory {} does not exist; give --tempdir an existing directory",
            tempdir.display()
        )));
    }
    let run_temp = RunTemp::create(&tempdir)?;
    let mut ctx = Context {
        backend,
        prefixes: Prefixes {
            base: cli.file_prefix.clone(),
            archive: cli.file_prefix_archive.clone(),
            manifest: cli.file_prefix_manifest.clone(),
            signature: cli.file_prefix_signature.clone(),
            jsonstat: cli.file_prefix_jsonstat.clone(),
        },
        cache,
        tempdir: run_temp.path().to_path_buf(),
        compression: !cli.no_compression,
        crypto,
        now,
        dry_run: cli.dry_run,
        force: cli.force,
        ignore_errors: cli.ignore_errors,
    };
    let restore_time = match &cli.time {
        Some(t) => parse_time("--time", t)?,
        None => now,
    };
    let req = Request {
        time: restore_time,
        path: cli
            .path_to_restore
            .as_deref()
            .map(normalize_path)
            .unwrap_or_default(),
        select: select
            .clone()
            .filter(|s| !s.is_empty())
            .map(|s| PathFilter {
                select: s,
                local_root: match &command {
                    Cmd::Verify(_, local) => Some(PathBuf::from(local)),
                    _ => None,
                },
            }),
    };
    match command {
        Cmd::Backup(mode, source, _) => {
            if ctx
                .crypto
                .as_ref()
                .is_some_and(|c| c.passphrase.is_none() && c.is_symmetric())
            {
                let new_chain = mode == Mode::Full || !backup::has_chain(&ctx)?;
                let prompt = if new_chain {
                    "GnuPG passphrase for a new backup chain: "
                } else {
                    "GnuPG passphrase: "
                };
                let pass = prompt_passphrase(prompt, new_chain)?;
                if let Some(c) = ctx.crypto.as_mut() {
                    c.passphrase = Some(pass);
                }
            }
            let opts = BackupOptions {
                source: PathBuf::from(&source),
                mode,
                volsize: cli.volsize.saturating_mul(1024 * 1024),
                max_blocksize: cli.max_blocksize,
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
                fail_on_volume: cli.fail_on_volume,
                select: select.unwrap_or_else(|| Arc::new(Selection::none())),
            };
            if let Some(c) = &ctx.crypto {
                c.check_for_writing()?;
            }
            let unread = backup::run(&ctx, &opts)?;
            if unread > 0 {
                eprintln!(
                    "ferrodup: the backup is incomplete: {unread} file(s) could not be read \
                     completely (named in the warnings above); the next backup tries them again"
                );
                return Ok(1);
            }
            Ok(0)
        }
        Cmd::Restore(_, dest) => {
            let rename = cli
                .rename
                .chunks(2)
                .map(|p| (normalize_path(&p[0]), normalize_path(&p[1])))
                .collect();
            restore::restore(
                &ctx,
                &req,
                Path::new(&dest),
                cli.force,
                OwnerPolicy {
                    restore_ownership: !cli.no_restore_ownership,
                    numeric_owner: cli.numeric_owner,
                },
                rename,
            )?;
            Ok(0)
        }
        Cmd::Verify(_, local) => {
            let diffs = restore::verify(&ctx, &req, Path::new(&local), cli.compare_data)?;
            Ok(if diffs > 0 { 1 } else { 0 })
        }
        Cmd::Status(_) => status::run(&ctx).map(|_| 0),
        Cmd::List(_) => list::run(&ctx, restore_time, req.select.as_ref()).map(|_| 0),
        Cmd::Cleanup(_) => remove::cleanup(&ctx).map(|_| 0),
        Cmd::RemoveOlder(t, _) => {
            let t = parse_time("remove-older-than", &t)?;
            remove::remove_older_than(&ctx, t, Scope::WholeChains).map(|_| 0)
        }
        Cmd::RemoveButN(n, _, scope) => {
            let n: usize = n
                .parse()
                .map_err(|_| Error::usage(format!("{n:?} is not a number of full backups")))?;
            let t = remove::nth_full_time(&ctx, n)?;
            remove::remove_older_than(&ctx, t, scope).map(|_| 0)
        }
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
        s3: backend::S3Options {
            endpoint: cli.s3_endpoint_url.clone(),
            region: cli.s3_region_name.clone(),
            volume_class: if class.is_some() { None } else { volume_class },
            class,
            restore_days: cli.s3_restore_days,
            restore_tier: cli.s3_restore_tier.clone(),
        },
        ssh: backend::SshOptions::parse(cli.ssh_options.as_deref().unwrap_or(""))?,
    })
}

/// Compiles the selection options for the command, before anything is read or written:
/// backups and verify match them against the source directory, restore and
/// list-current-files against archive paths.
fn build_selection(
    command: &Cmd,
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
        Cmd::Backup(_, local, _) | Cmd::Verify(_, local) => {
            if !Path::new(local).is_dir() {
                // The command reports the missing directory itself.
                return Ok(None);
            }
            Namespace::Source(PathBuf::from(local))
        }
        Cmd::Restore(..) => {
            if cli.path_to_restore.is_some() {
                return Err(Error::usage(
                    "--path-to-restore cannot be combined with selection options: use \
                     --path-to-restore for one path, or --include/--exclude patterns",
                ));
            }
            archive_only("restore")?;
            Namespace::Archive
        }
        Cmd::List(_) => {
            archive_only("list-current-files")?;
            Namespace::Archive
        }
        _ => {
            ferrodup::log::warn(
                "selection options (--include, --exclude, ...) have no effect on this command",
            );
            return Ok(None);
        }
    };
    Selection::new(&opts, ns).map(|s| Some(Arc::new(s)))
}

/// Encryption settings from the options and the environment. Restores and verifies ask
/// for a missing symmetric passphrase here; backups ask once they know whether a new chain
/// starts (then twice, to confirm).
fn make_crypto(cli: &Cli, reading: bool) -> Result<Crypto> {
    let mut keyring = Keyring::default();
    keyring.load_gnupg_home();
    for f in &cli.gpg_key_file {
        keyring.load_file(f)?;
    }
    let mut cipher = SymmetricKeyAlgorithm::AES256;
    let mut compression = (!cli.no_compression).then_some(CompressionAlgorithm::ZLIB);
    if let Some(o) = &cli.gpg_options {
        apply_gpg_options(o, &mut cipher, &mut compression)?;
    }
    let mut recipients = cli.encrypt_key.clone();
    recipients.extend(cli.encrypt_sign_key.iter().cloned());
    let sign_key = cli.sign_key.clone().or(cli.encrypt_sign_key.clone());
    let symmetric = recipients.is_empty() && cli.hidden_encrypt_key.is_empty();
    let mut passphrase = std::env::var("PASSPHRASE").ok();
    let sign_passphrase = std::env::var("SIGN_PASSPHRASE").ok();
    if passphrase.is_none() && symmetric && reading {
        passphrase = prompt_passphrase("GnuPG passphrase: ", false).ok();
    }
    if symmetric && sign_key.is_some() {
        if let (Some(p), Some(s)) = (&passphrase, &sign_passphrase) {
            if p != s {
                return Err(Error::usage(
                    "with symmetric encryption and --sign-key, SIGN_PASSPHRASE must equal PASSPHRASE",
                ));
            }
        }
    }
    Ok(Crypto {
        keyring,
        passphrase,
        sign_passphrase,
        recipients,
        hidden_recipients: cli.hidden_encrypt_key.clone(),
        sign_key,
        cipher,
        compression,
        gpg_binary: cli.gpg_binary.clone(),
    })
}
