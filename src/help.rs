//! The help: options grouped by task, one help per command (`ferrodup help restore`,
//! `ferrodup restore --help`, duplicity's `--help-restore`), the URL forms of every store
//! (`--help-urls`), the environment, and the man page and shell completions, all made from
//! the one command-line definition in [`crate::cli`].

use crate::cli::Cli;
use clap::{Command, CommandFactory};

const BACKUP: &str = "Backup";
const RESTORE: &str = "Restore, verify and list";
const SELECTION: &str = "Selection (backup and verify; the first rule that matches wins)";
const ENCRYPTION: &str = "Encryption";
const STORAGE: &str = "Storage";
const CACHE: &str = "Archive dir and file names";
const COPY: &str = "Replicate and check";
const LOGGING: &str = "Logging and reports";
const GENERAL: &str = "General";
const FOREIGN: &str = "Other duplicity backends (accepted, ignored with a warning)";

/// Each visible option's group, by its field name in [`Cli`]. A test checks that every
/// visible option is in exactly one group.
const GROUPS: &[(&str, &[&str])] = &[
    (
        BACKUP,
        &[
            "full_if_older_than",
            "full_if_n_inc",
            "volsize",
            "allow_source_mismatch",
            "skip_if_no_change",
            "max_blocksize",
            "copy_links",
            "no_compression",
            "compression",
            "files_changed",
            "no_files_changed",
            "concurrency",
            "asynchronous_upload",
        ],
    ),
    (
        RESTORE,
        &[
            "time",
            "path_to_restore",
            "rename",
            "compare_data",
            "numeric_owner",
            "no_restore_ownership",
            "restore_ownership",
        ],
    ),
    (
        SELECTION,
        &[
            "include",
            "exclude",
            "include_regexp",
            "exclude_regexp",
            "include_filelist",
            "exclude_filelist",
            "files_from",
            "exclude_if_present",
            "exclude_device_files",
            "exclude_other_filesystems",
            "exclude_older_than",
            "filter_globbing",
            "filter_ignorecase",
            "filter_literal",
            "filter_regexp",
            "filter_strictcase",
            "null_separator",
        ],
    ),
    (
        ENCRYPTION,
        &[
            "no_encryption",
            "encryption",
            "encrypt_key",
            "hidden_encrypt_key",
            "sign_key",
            "encrypt_sign_key",
            "gpg_key_file",
            "gpg_binary",
            "gpg_options",
            "use_agent",
            "use_gpgsm",
            "encrypt_secret_keyring",
        ],
    ),
    (
        STORAGE,
        &[
            "num_retries",
            "backend_retry_delay",
            "timeout",
            "ssl_cacert_file",
            "ssl_cacert_path",
            "ssl_no_check_certificate",
            "s3_endpoint_url",
            "s3_region_name",
            "s3_use_glacier",
            "s3_use_glacier_ir",
            "s3_use_deep_archive",
            "s3_use_ia",
            "s3_use_onezone_ia",
            "s3_use_rrs",
            "s3_restore_days",
            "s3_restore_tier",
            "min_storage_days",
            "object_lock_days",
            "object_lock_mode",
            "s3_use_server_side_encryption",
            "s3_use_server_side_kms_encryption",
            "s3_kms_key_id",
            "s3_kms_grant",
            "s3_multipart_chunk_size",
            "s3_multipart_max_procs",
            "s3_unencrypted_connection",
            "swift_storage_policy",
            "mp_segment_size",
            "ssh_options",
            "ssh_askpass",
            "par2_redundancy",
            "par2_volumes",
            "par2_options",
        ],
    ),
    (
        CACHE,
        &[
            "archive_dir",
            "name",
            "file_prefix",
            "file_prefix_manifest",
            "file_prefix_archive",
            "file_prefix_signature",
            "file_prefix_jsonstat",
            "tempdir",
            "metadata_sync_mode",
            "check_remote",
            "no_check_remote",
            "time_separator",
            "config_dir",
            "copy_blocksize",
        ],
    ),
    (
        LOGGING,
        &[
            "verbosity",
            "log_fd",
            "log_file",
            "log_timestamp",
            "progress",
            "progress_rate",
            "no_print_statistics",
            "print_statistics",
            "jsonstat",
            "show_changes_in_set",
            "file_changed",
        ],
    ),
    (
        COPY,
        &["since", "thaw_batch", "target_encrypt_key", "repair"],
    ),
    (
        GENERAL,
        &[
            "force",
            "dry_run",
            "ignore_errors",
            "help",
            "version",
            "man_page",
            "completion",
        ],
    ),
    (
        FOREIGN,
        &[
            "azure_blob_tier",
            "azure_max_block_size",
            "azure_max_connections",
            "azure_max_single_put_size",
            "b2_hide_files",
            "cf_backend",
            "ftp_passive",
            "ftp_regular",
            "idr_fakeroot",
            "imap_full_address",
            "imap_mailbox",
            "mf_purge",
            "rsync_options",
            "scp_command",
            "sftp_command",
            "webdav_headers",
        ],
    ),
];

/// The forms of the target URL, as `--help-urls` prints them.
pub const URLS: &str = "\
URL forms:
  file:///absolute/path  or  file://relative/path  or  /absolute/path
  swift://container[/prefix]       OpenStack Swift (SWIFT_* variables)
  pca://container[/prefix]         OVH Public Cloud Archive, volumes unsealed before reading
                                   (PCA_* variables, else the SWIFT_* ones)
  s3://bucket[/prefix]             Amazon S3 or S3-compatible storage (AWS_* variables,
                                   --s3-endpoint-url; cold classes with --s3-use-glacier,
                                   --s3-use-deep-archive, restored before reading);
                                   boto3+s3:// is the same
  sftp://user[:password]@host[:port]/path   (or scp://; FTP_PASSWORD, --ssh-options)
  rclone://remote:/path            anything rclone reaches, through the rclone program
                                   (its rclone.conf or RCLONE_CONFIG_* variables)
  par2+URL                         any of these, with par2 recovery files beside each file
  multi:///path/to/config.json[?mode=mirror|stripe&onfail=abort|continue&subpath=x]
      several stores from a JSON list of {\"url\", \"description\", \"prefixes\", \"env\"};
      with prefixes, files go to the stores whose prefix their name starts with";

/// The environment variables ferrodup reads.
const ENVIRONMENT: &str = "\
Environment:
  PASSPHRASE                  passphrase of symmetric encryption, or of the secret key
  PASSPHRASE_FILE             ...or the first line of this file (e.g. systemd's %d/passphrase)
  PASSPHRASE_COMMAND          ...or the first line this shell command prints
  SIGN_PASSPHRASE[_FILE|_COMMAND]   passphrase of --sign-key, if it differs
  TARGET_PASSPHRASE[_FILE|_COMMAND] replicate: the copy's new symmetric passphrase
  SWIFT_AUTHURL, SWIFT_AUTHVERSION (1 or 3), SWIFT_USERNAME, SWIFT_PASSWORD,
  SWIFT_TENANTNAME or SWIFT_PROJECT_NAME, SWIFT_USER_DOMAIN_NAME,
  SWIFT_PROJECT_DOMAIN_NAME, SWIFT_REGIONNAME, SWIFT_PREAUTHURL + SWIFT_PREAUTHTOKEN
                              swift:// (OVH: SWIFT_AUTHURL=https://auth.cloud.ovh.net/v3)
  PCA_AUTHURL, PCA_USERNAME, PCA_PASSWORD, ... (the same names)   pca://
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION   s3://
  FTP_PASSWORD                password of sftp:// when the URL has none
  OS_CACERT, AWS_CA_BUNDLE    certificate authorities of Swift and S3 servers
  GNUPGHOME                   GnuPG home with the keys of --encrypt-key and --sign-key
  TMPDIR                      temporary files (or --tempdir)
  In a multi:// config, each store's \"env\" applies to that store only.";

/// The examples of the whole help. A test runs each of them against a local target.
pub const EXAMPLES: &str = "\
Examples:
  ferrodup full /srv/data file:///mnt/backups/data
  ferrodup incremental /srv/data file:///mnt/backups/data
  ferrodup --full-if-older-than 1M /srv/data file:///mnt/backups/data
  ferrodup collection-status file:///mnt/backups/data
  ferrodup list-current-files file:///mnt/backups/data
  ferrodup restore file:///mnt/backups/data /srv/restored
  ferrodup restore --time 3D --path-to-restore etc/hosts file:///mnt/backups/data /tmp/hosts
  ferrodup verify --compare-data file:///mnt/backups/data /srv/data
  ferrodup remove-all-but-n-full 2 --force file:///mnt/backups/data
  ferrodup --file-prefix-manifest hot_ --file-prefix-signature hot_ \\
    --file-prefix-archive cold_ full /srv/data \\
    'multi:///etc/ferrodup/config.json?mode=mirror&onfail=abort'
      (hot/cold: config.json lists a swift:// store with \"prefixes\": [\"hot_\"] and a
      pca:// store with \"prefixes\": [\"cold_\"], each with its \"env\" credentials)";

/// One command's help.
struct Topic {
    /// The command's name, then duplicity's aliases.
    names: &'static [&'static str],
    usage: &'static str,
    about: &'static str,
    examples: &'static [&'static str],
    /// The option groups shown.
    groups: &'static [&'static str],
}

const BACKUP_GROUPS: &[&str] = &[
    BACKUP, SELECTION, ENCRYPTION, STORAGE, CACHE, LOGGING, GENERAL,
];
const READ_GROUPS: &[&str] = &[RESTORE, ENCRYPTION, STORAGE, CACHE, LOGGING, GENERAL];
const COPY_GROUPS: &[&str] = &[COPY, RESTORE, ENCRYPTION, STORAGE, CACHE, LOGGING, GENERAL];
const REMOVE_GROUPS: &[&str] = &[STORAGE, CACHE, LOGGING, GENERAL];

const TOPICS: &[Topic] = &[
    Topic {
        names: &["full", "fb"],
        usage: "ferrodup [OPTIONS] full SOURCE_DIR URL",
        about: "Make a full backup of SOURCE_DIR: a new chain at URL.",
        examples: &["ferrodup full /srv/data file:///mnt/backups/data"],
        groups: BACKUP_GROUPS,
    },
    Topic {
        names: &["incremental", "inc", "incr", "ib"],
        usage: "ferrodup [OPTIONS] incremental SOURCE_DIR URL",
        about: "Back up what changed in SOURCE_DIR since the last backup at URL (a full \
                backup is required first).",
        examples: &["ferrodup incremental /srv/data file:///mnt/backups/data"],
        groups: BACKUP_GROUPS,
    },
    Topic {
        names: &["backup", "bu"],
        usage: "ferrodup [OPTIONS] [backup] SOURCE_DIR URL",
        about: "Make an incremental backup if a chain exists at URL, else a full one; \
                --full-if-older-than and --full-if-n-inc start a new chain when due.",
        examples: &[
            "ferrodup /srv/data file:///mnt/backups/data",
            "ferrodup --full-if-older-than 1M backup /srv/data file:///mnt/backups/data",
        ],
        groups: BACKUP_GROUPS,
    },
    Topic {
        names: &["restore", "rb"],
        usage: "ferrodup [OPTIONS] restore URL DEST",
        about: "Restore the backup at URL (the latest, or as of --time) into DEST, which must \
                not exist (or --force). Cold volumes (pca://, S3 Glacier and Deep Archive) \
                are all asked to thaw at once and restored as they arrive.",
        examples: &[
            "ferrodup restore file:///mnt/backups/data /srv/restored",
            "ferrodup restore --time 3D --path-to-restore etc/hosts file:///mnt/backups/data /tmp/hosts",
        ],
        groups: READ_GROUPS,
    },
    Topic {
        names: &["verify", "vb"],
        usage: "ferrodup [OPTIONS] verify URL SOURCE_DIR",
        about: "Check that the backup at URL can be read and matches SOURCE_DIR (metadata; \
                contents too with --compare-data).",
        examples: &["ferrodup verify --compare-data file:///mnt/backups/data /srv/data"],
        groups: &[
            RESTORE, SELECTION, ENCRYPTION, STORAGE, CACHE, LOGGING, GENERAL,
        ],
    },
    Topic {
        names: &["collection-status", "st"],
        usage: "ferrodup [OPTIONS] collection-status URL",
        about: "Show the chains and backup sets at URL, and what is incomplete or orphaned.",
        examples: &["ferrodup collection-status file:///mnt/backups/data"],
        groups: READ_GROUPS,
    },
    Topic {
        names: &["list-current-files", "ls"],
        usage: "ferrodup [OPTIONS] list-current-files URL",
        about: "List the files of the latest backup at URL (or as of --time).",
        examples: &["ferrodup list-current-files file:///mnt/backups/data"],
        groups: READ_GROUPS,
    },
    Topic {
        names: &["replicate"],
        usage: "ferrodup [OPTIONS] replicate SOURCE_URL TARGET_URL",
        about: "Copy the complete backup sets at SOURCE_URL (those ending by --time, all by \
                default, and at or after --since) to TARGET_URL, e.g. from pca:// to s3:// \
                with --s3-use-deep-archive: archived files are asked to thaw at once, or in \
                batches of --thaw-batch MiB, each batch's plan printed first; each volume's \
                SHA1 is checked before it is stored, files already copied are skipped (run \
                it again after an interruption), and a set's manifest goes last. \
                --target-encrypt-key KEY or TARGET_PASSPHRASE encrypts the copy anew. \
                --dry-run prints the plan and counts what would be copied.",
        examples: &["ferrodup replicate file:///mnt/backups/data file:///mnt/copy/data"],
        groups: COPY_GROUPS,
    },
    Topic {
        names: &["check"],
        usage: "ferrodup [OPTIONS] check URL",
        about: "Check, without reading or thawing cold storage, that every volume of every \
                chain at URL is in each store that must hold it, with the size its manifest \
                gives and, where the store lists MD5s (Swift, PCA, S3), the same content; \
                and that the manifests and the signature files on hot storage read. \
                Exit status 1 if anything is wrong. On a multi:// mirror, --repair copies \
                each file missing or damaged on one store from a store with a good copy.",
        examples: &["ferrodup check file:///mnt/backups/data"],
        groups: COPY_GROUPS,
    },
    Topic {
        names: &["cleanup", "cl"],
        usage: "ferrodup [OPTIONS] cleanup URL",
        about: "Delete what failed backups left at URL and in the archive dir (with --force; \
                without it, only list them).",
        examples: &["ferrodup cleanup --force file:///mnt/backups/data"],
        groups: REMOVE_GROUPS,
    },
    Topic {
        names: &["remove-older-than", "ro"],
        usage: "ferrodup [OPTIONS] remove-older-than TIME URL",
        about: "Delete the chains whose every backup is older than TIME (with --force; \
                without it, only list them). A chain something newer depends on is kept.",
        examples: &["ferrodup remove-older-than 6M --force file:///mnt/backups/data"],
        groups: REMOVE_GROUPS,
    },
    Topic {
        names: &["remove-all-but-n-full", "ra"],
        usage: "ferrodup [OPTIONS] remove-all-but-n-full N URL",
        about: "Delete every chain but the N newest (with --force; without it, only list \
                them).",
        examples: &["ferrodup remove-all-but-n-full 2 --force file:///mnt/backups/data"],
        groups: REMOVE_GROUPS,
    },
    Topic {
        names: &["remove-all-inc-of-but-n-full", "ri"],
        usage: "ferrodup [OPTIONS] remove-all-inc-of-but-n-full N URL",
        about: "Delete the incrementals of every chain but the N newest, keeping their full \
                backups (with --force; without it, only list them).",
        examples: &["ferrodup remove-all-inc-of-but-n-full 1 --force file:///mnt/backups/data"],
        groups: REMOVE_GROUPS,
    },
];

/// The command line with its options grouped by task, and the examples, the URL forms and
/// the environment after them in the long help (`--help`, the man page).
pub fn command() -> Command {
    let mut cmd = Cli::command()
        .max_term_width(100)
        .after_help(
            "Help on a command: ferrodup help COMMAND (or COMMAND --help). \
                     More with --help: examples, URL forms, environment.",
        )
        .after_long_help(format!(
            "{EXAMPLES}\n\n{URLS}\n\n{ENVIRONMENT}\n\nCommands: {}.\nHelp on a command: \
             ferrodup help COMMAND, ferrodup COMMAND --help, or --help-COMMAND.",
            command_names().collect::<Vec<_>>().join(", ")
        ));
    for (heading, ids) in GROUPS {
        for id in *ids {
            cmd = cmd.mut_arg(*id, |a| a.help_heading(*heading));
        }
    }
    cmd
}

/// What to print instead of running, found in the arguments before they are parsed:
/// `ferrodup help [TOPIC]`, `--help`/`-h` (with a command word anywhere: its help), and
/// duplicity's `--help-COMMAND` and `--help-urls`.
#[derive(Debug, PartialEq)]
pub enum Request {
    /// The whole help; `true` for the long form.
    All(bool),
    /// One command's help (its index in the topics).
    Command(usize),
    Urls,
    /// `ferrodup help WORD` with a word that is no topic.
    Unknown(String),
}

/// The commands, as duplicity names them.
pub fn command_names() -> impl Iterator<Item = &'static str> {
    TOPICS.iter().map(|t| t.names[0])
}

fn topic(word: &str) -> Option<usize> {
    TOPICS.iter().position(|t| t.names.contains(&word))
}

/// The help asked for by `args` (without the program name), if any.
pub fn request(args: &[String]) -> Option<Request> {
    let before_dashes = || args.iter().take_while(|a| *a != "--");
    if args.first().map(String::as_str) == Some("help") && args.len() <= 2 {
        return Some(match args.get(1).map(String::as_str) {
            None => Request::All(true),
            Some("urls") => Request::Urls,
            Some(w) => topic(w).map_or(Request::Unknown(w.to_string()), Request::Command),
        });
    }
    for a in before_dashes() {
        if let Some(what) = a.strip_prefix("--help-") {
            if what == "urls" {
                return Some(Request::Urls);
            }
            let word = match what {
                "inc" => "incremental",
                w => w,
            };
            if let Some(t) = topic(word) {
                return Some(Request::Command(t));
            }
        }
    }
    let long = before_dashes().any(|a| a == "--help");
    if !long && !before_dashes().any(|a| a == "-h") {
        return None;
    }
    Some(
        before_dashes()
            .find_map(|a| topic(a))
            .map_or(Request::All(long), Request::Command),
    )
}

/// The text of a help request, or an error message for an unknown topic.
pub fn render(req: &Request) -> Result<String, String> {
    Ok(match req {
        Request::All(true) => command().render_long_help().to_string(),
        Request::All(false) => command().render_help().to_string(),
        Request::Urls => format!("{URLS}\n"),
        Request::Command(i) => command_help(&TOPICS[*i]),
        Request::Unknown(w) => {
            let names: Vec<&str> = command_names().collect();
            return Err(format!(
                "no help on {w:?}: ask for one of {}, or urls",
                names.join(", ")
            ));
        }
    })
}

fn command_help(t: &Topic) -> String {
    let mut cmd = command()
        .override_usage(t.usage)
        .about(t.about)
        .after_help(format!(
            "Examples:\n{}\n\n{}All options: ferrodup --help. URL forms: ferrodup help urls.",
            t.examples
                .iter()
                .map(|e| format!("  {e}"))
                .collect::<Vec<_>>()
                .join("\n"),
            match t.names[1..].len() {
                0 => String::new(),
                _ => format!("Aliases: {}.\n", t.names[1..].join(", ")),
            }
        ));
    let hidden: Vec<String> = cmd
        .get_arguments()
        .filter(|a| a.get_help_heading().is_none_or(|h| !t.groups.contains(&h)))
        .map(|a| a.get_id().to_string())
        .collect();
    for id in hidden {
        cmd = cmd.mut_arg(id, |a| a.hide(true));
    }
    cmd.render_help().to_string()
}

/// `text` as roff lines shown as they are (no filling), with roff's special characters
/// escaped.
fn roff_verbatim(text: &str) -> String {
    format!(".nf\n{}.fi\n", roff_text(text))
}

/// `text` as roff text lines, with roff's special characters escaped.
fn roff_text(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = line.replace('\\', "\\e").replace('-', "\\-");
        if line.starts_with(['.', '\'']) {
            out.push_str("\\&");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The man page, in roff: clap's rendering of the options by group, with the synopsis, the
/// commands, the examples, the URL forms and the environment written here.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let cmd = command()
        .display_name("ferrodup")
        .about("a fast, duplicity-compatible backup tool")
        .version(env!("CARGO_PKG_VERSION"))
        .long_about(
            "ferrodup makes and restores duplicity backups: full and incremental chains of \
             librsync signatures and deltas in tar volumes, compressed, encrypted with OpenPGP \
             and described by manifests, on local disks, OpenStack Swift, OVH Public Cloud \
             Archive, S3 (with Glacier and Deep Archive) and SFTP. It takes duplicity's \
             command line and options, and backups made by either tool restore with the other.",
        );
    let man = clap_mangen::Man::new(cmd);
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    let usage = TOPICS
        .iter()
        .map(|t| t.usage)
        .collect::<Vec<_>>()
        .join("\n");
    out.extend(format!(".SH SYNOPSIS\n{}", roff_verbatim(&usage)).bytes());
    man.render_description_section(&mut out)?;
    let mut commands = String::from(".SH COMMANDS\n");
    for t in TOPICS {
        commands.push_str(&format!(".TP\n{}", roff_verbatim(t.usage)));
        commands.push_str(&roff_text(&format!(
            "{} Aliases: {}.",
            t.about,
            t.names[1..].join(", ")
        )));
    }
    out.extend(commands.bytes());
    man.render_options_section(&mut out)?;
    for (title, text) in [
        ("EXAMPLES", EXAMPLES),
        ("URLS", URLS),
        ("ENVIRONMENT", ENVIRONMENT),
    ] {
        let body = text.split_once('\n').map_or("", |(_, rest)| rest);
        out.extend(format!(".SH {title}\n{}", roff_verbatim(body)).bytes());
    }
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// The completion script of `shell`.
pub fn completion(shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    let mut cmd = command().display_name("ferrodup");
    clap_complete::generate(shell, &mut cmd, "ferrodup", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn every_visible_option_is_in_one_group() {
        let grouped: Vec<&str> = GROUPS
            .iter()
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect();
        let mut seen = std::collections::HashSet::new();
        for id in &grouped {
            assert!(seen.insert(*id), "{id} is in two groups");
        }
        for a in Cli::command().get_arguments() {
            let id = a.get_id().as_str();
            if a.is_hide_set() || a.is_positional() {
                assert!(!seen.contains(id), "hidden {id} is in a group");
            } else {
                assert!(
                    seen.contains(id),
                    "--{} is in no help group",
                    id.replace('_', "-")
                );
            }
        }
    }

    #[test]
    fn help_requests_are_found_where_duplicity_and_clap_users_put_them() {
        assert_eq!(request(&args("help")), Some(Request::All(true)));
        assert_eq!(request(&args("help rb")), Some(Request::Command(3)));
        assert_eq!(request(&args("help urls")), Some(Request::Urls));
        assert_eq!(request(&args("restore --help")), Some(Request::Command(3)));
        assert_eq!(request(&args("-h")), Some(Request::All(false)));
        assert_eq!(request(&args("--name x --help")), Some(Request::All(true)));
        assert_eq!(request(&args("--help-restore")), Some(Request::Command(3)));
        assert_eq!(request(&args("--help-inc")), Some(Request::Command(1)));
        assert_eq!(request(&args("--help-urls")), Some(Request::Urls));
        assert_eq!(
            request(&args("help nothing")),
            Some(Request::Unknown("nothing".into()))
        );
        assert_eq!(request(&args("full /src file:///t")), None);
        assert_eq!(request(&args("full -- --help file:///t")), None);
        assert_eq!(request(&args("help /src file:///t")), None);
    }

    #[test]
    fn a_command_help_shows_its_groups_only() {
        let restore = render(&Request::Command(3)).unwrap();
        assert!(
            restore.contains("ferrodup [OPTIONS] restore URL DEST"),
            "{restore}"
        );
        assert!(restore.contains("--path-to-restore"), "{restore}");
        assert!(restore.contains("--encrypt-key"), "{restore}");
        assert!(!restore.contains("--exclude-regexp"), "{restore}");
        assert!(!restore.contains("--full-if-older-than"), "{restore}");
        assert!(restore.contains("Aliases: rb."), "{restore}");
        let full = render(&Request::Command(0)).unwrap();
        assert!(full.contains("--exclude-regexp") && !full.contains("--compare-data"));
        assert!(render(&Request::Unknown("x".into()))
            .unwrap_err()
            .contains("remove-older-than"));
    }
}
