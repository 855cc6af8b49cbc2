//! The library entry point: [`run`] carries out one [`Config`], as the command line does,
//! so that the CLI, the tests and other front ends share one path.

use crate::backend;
use crate::cache::Cache;
use crate::commands::backup::{BackupOptions, JsonstatOptions, Mode};
use crate::commands::restore::{PathFilter, Request};
use crate::commands::{backup, check, list, remove, replicate, restore, status, Context, RunTemp};
use crate::config::{Command, Config, CryptoConfig, ReplicateConfig};
use crate::crypto::{prompt_passphrase, Crypto, Keyring};
use crate::error::{Error, Result};
use crate::select::Selection;
use std::sync::Arc;

/// How a command that did not fail ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// A backup finished but could not read this many files completely.
    BackupIncomplete {
        unread: u64,
    },
    /// verify found this many differences.
    Differences {
        count: u64,
    },
}

impl Outcome {
    /// The process exit status.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Done | Outcome::Differences { count: 0 } => 0,
            Outcome::BackupIncomplete { .. } | Outcome::Differences { .. } => 1,
        }
    }

    /// What to tell the user besides the command's own output, if anything.
    pub fn message(self) -> Option<String> {
        match self {
            Outcome::BackupIncomplete { unread } => Some(format!(
                "the backup is incomplete: {unread} file(s) could not be read completely \
                 (named in the warnings above); the next backup tries them again"
            )),
            _ => None,
        }
    }
}

/// Runs the configured command.
pub fn run(config: Config) -> Result<Outcome> {
    crate::format::time::set_filename_separator(config.time_separator);
    let reading = matches!(
        config.command,
        Command::Restore { .. }
            | Command::Verify { .. }
            | Command::List { .. }
            | Command::Replicate { .. }
    );
    let crypto = match &config.crypto {
        Some(c) if config.encrypt => Some(make_crypto(c, reading)?),
        // --no-encryption: `.gpg` files are read with what is at hand, nothing is asked.
        Some(c) => make_crypto(c, false).ok(),
        None => None,
    };
    let cache = Cache::open(
        config.archive_dir.as_deref(),
        config.name.as_deref(),
        config.command.url(),
    )?;
    // Every command may write the archive dir (at least to sync it), so each holds its
    // lock, as duplicity does.
    let _lock = cache.lock()?;
    let backend = backend::open(config.command.url(), &config.backend)?;
    if !config.tempdir.is_dir() {
        return Err(Error::usage(format!(
            "temporary directory {} does not exist; give --tempdir an existing directory",
            config.tempdir.display()
        )));
    }
    let run_temp = RunTemp::create(&config.tempdir)?;
    let mut ctx = Context {
        backend,
        prefixes: config.prefixes.clone(),
        cache,
        tempdir: run_temp.path().to_path_buf(),
        compression: config.compression,
        encrypt: config.encrypt,
        crypto,
        now: config.now,
        dry_run: config.dry_run,
        force: config.force,
        ignore_errors: config.ignore_errors,
    };
    let req = Request {
        time: config.restore.time,
        path: config.restore.path.clone(),
        select: config
            .select
            .clone()
            .filter(|s| !s.is_empty())
            .map(|s| PathFilter {
                select: s,
                local_root: match &config.command {
                    Command::Verify { local, .. } => Some(local.clone()),
                    _ => None,
                },
            }),
    };
    match config.command {
        Command::Backup {
            mode, source, url, ..
        } => {
            if ctx.encrypt
                && ctx
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
                // As duplicity, every backup asks twice.
                let pass = prompt_passphrase(prompt, true)?;
                if let Some(c) = ctx.crypto.as_mut() {
                    c.passphrase = Some(pass);
                }
            }
            let b = config.backup;
            let opts = BackupOptions {
                source,
                mode,
                volsize: b.volsize,
                max_blocksize: b.max_blocksize,
                full_if_older_than: b.full_if_older_than,
                full_if_n_inc: b.full_if_n_inc,
                allow_source_mismatch: b.allow_source_mismatch,
                skip_if_no_change: b.skip_if_no_change,
                copy_links: b.copy_links,
                print_statistics: b.print_statistics,
                files_changed: b.files_changed,
                fail_on_volume: b.fail_on_volume,
                progress: b.progress,
                concurrency: b.concurrency,
                jsonstat: config.jsonstat.then_some(JsonstatOptions {
                    target: url,
                    concurrency: b.concurrency_given,
                }),
                select: config.select.unwrap_or_else(|| Arc::new(Selection::none())),
            };
            if let Some(c) = ctx.crypto.as_ref().filter(|_| ctx.encrypt) {
                c.check_for_writing()?;
            }
            let unread = backup::run(&ctx, &opts)?;
            Ok(if unread > 0 {
                Outcome::BackupIncomplete { unread }
            } else {
                Outcome::Done
            })
        }
        Command::Restore { dest, .. } => {
            restore::restore(
                &ctx,
                &req,
                &dest,
                config.force,
                config.restore.owners,
                config.restore.rename,
            )?;
            Ok(Outcome::Done)
        }
        Command::Verify { local, .. } => {
            let count = restore::verify(&ctx, &req, &local, config.restore.compare_data)?;
            Ok(Outcome::Differences { count })
        }
        Command::Status { .. } => {
            let opts = status::StatusOptions {
                file_changed: config.file_changed,
                show_changes_in_set: config.show_changes_in_set,
                jsonstat: config.jsonstat,
            };
            status::run(&ctx, &opts).map(|_| Outcome::Done)
        }
        Command::List { .. } => {
            list::run(&ctx, config.restore.time, req.select.as_ref()).map(|_| Outcome::Done)
        }
        Command::Replicate { target, .. } => {
            let r = &config.replicate;
            let reencrypt = if r.reencrypts() {
                Some(target_crypto(&ctx, r)?)
            } else {
                None
            };
            let target = backend::open(&target, &config.backend)?;
            let opts = replicate::Options {
                until: config.restore.time,
                since: r.since,
                thaw_batch: r.thaw_batch,
                reencrypt,
            };
            replicate::run(&ctx, &*target, &opts).map(|_| Outcome::Done)
        }
        Command::Check { .. } => {
            let found = check::run(&ctx, config.repair)?;
            Ok(Outcome::Differences {
                count: (found.problems.len() as u64).saturating_sub(found.repaired),
            })
        }
        Command::Cleanup { .. } => remove::cleanup(&ctx).map(|_| Outcome::Done),
        Command::RemoveOlderThan { time, .. } => {
            remove::remove_older_than(&ctx, time, remove::Scope::WholeChains).map(|_| Outcome::Done)
        }
        Command::RemoveAllButN { count, scope, .. } => {
            let t = remove::nth_full_time(&ctx, count)?;
            remove::remove_older_than(&ctx, t, scope).map(|_| Outcome::Done)
        }
    }
}

/// The encryption of a re-encrypted replicate's copy: the source's settings (cipher,
/// compression, keyring) with the target's keys or passphrase, unsigned.
fn target_crypto(ctx: &Context, r: &ReplicateConfig) -> Result<Crypto> {
    let mut c = ctx.crypto.clone().ok_or_else(|| {
        Error::usage(
            "--target-encrypt-key and TARGET_PASSPHRASE re-encrypt an encrypted backup: leave              out --no-encryption and set PASSPHRASE to decrypt the source",
        )
    })?;
    c.recipients = r.target_recipients.clone();
    c.hidden_recipients = Vec::new();
    c.passphrase = r.target_passphrase.clone();
    c.sign_key = None;
    c.sign_passphrase = None;
    c.check_for_writing().map_err(|e| {
        e.reword(|m| {
            format!("the replicate target's encryption: {m} (TARGET_PASSPHRASE for a passphrase)")
        })
    })?;
    Ok(c)
}

/// Loads the keys and, for restores and verifies, asks for a missing symmetric
/// passphrase; backups ask once they know whether a new chain starts (then twice, to
/// confirm).
fn make_crypto(c: &CryptoConfig, reading: bool) -> Result<Crypto> {
    let mut keyring = Keyring::default();
    keyring.load_gnupg_home();
    for f in &c.key_files {
        keyring.load_file(f)?;
    }
    let symmetric = c.is_symmetric();
    let mut passphrase = c.passphrase.clone();
    if passphrase.is_none() && symmetric && reading {
        passphrase = prompt_passphrase("GnuPG passphrase: ", false).ok();
    }
    if symmetric && c.sign_key.is_some() {
        if let (Some(p), Some(s)) = (&passphrase, &c.sign_passphrase) {
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
        sign_passphrase: c.sign_passphrase.clone(),
        recipients: c.recipients.clone(),
        hidden_recipients: c.hidden_recipients.clone(),
        sign_key: c.sign_key.clone(),
        cipher: c.cipher,
        compression: c.compression,
        gpg_binary: c.gpg_binary.clone(),
        use_agent: c.use_agent,
    })
}
