//! `rclone://remote:path` targets, through the `rclone` program as duplicity's rclone
//! backend uses it: whatever rclone reaches (dozens of providers, configured in
//! `rclone.conf` or by `RCLONE_CONFIG_<REMOTE>_*` variables, which a multi:// entry's
//! `env` may set for its store) is a target.
//!
//! The URL maps to rclone's path as duplicity maps it: `rclone://remote:/path` is
//! `remote:path` (the first `:/` loses its slash) and `rclone://remote://abs` is
//! `remote:/abs`. rclone's own retries are turned off (`--retries 1`), so that ferrodup's
//! retry layer decides; `--timeout` is rclone's connect and idle timeout.

use super::{Backend, Listed, Settings};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// rclone's exit status for a directory and for a file that does not exist.
const DIR_NOT_FOUND: i32 = 3;
const FILE_NOT_FOUND: i32 = 4;

pub struct Rclone {
    /// The rclone path of the target folder, `remote:path`.
    remote: String,
    program: PathBuf,
    /// The store's own environment, given to rclone on top of the process's.
    env: Settings,
    timeout: Duration,
}

impl Rclone {
    /// `rest` is what follows `rclone://`.
    pub fn open(rest: &str, settings: &Settings, timeout: Duration) -> Result<Rclone> {
        let remote = rest.replacen(":/", ":", 1);
        if !remote.contains(':') || remote.starts_with(':') && !remote[1..].contains(':') {
            return Err(Error::usage(format!(
                "rclone://{rest}: give rclone's remote and path, as in rclone://remote:/path \
                 (`rclone listremotes` shows the remotes)"
            )));
        }
        let program = settings
            .get("RCLONE_PROGRAM")
            .cloned()
            .or_else(|| std::env::var("RCLONE_PROGRAM").ok())
            .unwrap_or_else(|| "rclone".to_string());
        let r = Rclone {
            remote: remote.trim_end_matches('/').to_string(),
            program: PathBuf::from(program),
            env: settings.clone(),
            timeout,
        };
        r.command(&["version"]).output().map_err(|e| {
            Error::usage(format!(
                "rclone://{rest} needs the rclone program ({}: {e}): install rclone \
                 (apt install rclone) or set RCLONE_PROGRAM",
                r.program.display()
            ))
        })?;
        Ok(r)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.program);
        let secs = format!("{}s", self.timeout.as_secs().max(1));
        c.args(["--retries", "1", "--contimeout", &secs, "--timeout", &secs])
            .args(args)
            .envs(&self.env)
            .stdin(Stdio::null());
        c
    }

    fn path(&self, name: &str) -> String {
        if self.remote.ends_with(':') {
            format!("{}{name}", self.remote)
        } else {
            format!("{}/{name}", self.remote)
        }
    }

    /// Runs rclone; `Ok(None)` when it says the file or folder does not exist.
    fn run(&self, what: &str, args: &[&str]) -> Result<Option<Output>> {
        let out = self.command(args).output().map_err(|e| {
            Error::backend(format!(
                "{what}: cannot run {}: {e}",
                self.program.display()
            ))
        })?;
        match out.status.code() {
            Some(0) => Ok(Some(out)),
            Some(DIR_NOT_FOUND | FILE_NOT_FOUND) => Ok(None),
            code => {
                let err = String::from_utf8_lossy(&out.stderr);
                let last = err
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("no message");
                Err(Error::backend(format!(
                    "{what}: rclone failed ({}): {}",
                    code.map_or("killed".to_string(), |c| format!("exit status {c}")),
                    last.trim()
                )))
            }
        }
    }

    /// The files at `path` (the folder, or one file), with their sizes.
    fn lsjson(&self, what: &str, path: &str) -> Result<Vec<Listed>> {
        let args = [
            "lsjson",
            "--files-only",
            "--no-mimetype",
            "--no-modtime",
            path,
        ];
        let Some(out) = self.run(what, &args)? else {
            return Ok(Vec::new());
        };
        #[derive(serde::Deserialize)]
        struct Entry {
            #[serde(rename = "Name")]
            name: String,
            #[serde(rename = "Size")]
            size: i64,
        }
        let entries: Vec<Entry> = serde_json::from_slice(&out.stdout)
            .map_err(|e| Error::backend(format!("{what}: rclone's listing is not JSON: {e}")))?;
        Ok(entries
            .into_iter()
            .map(|e| Listed {
                name: e.name,
                size: u64::try_from(e.size).ok(),
                ..Listed::default()
            })
            .collect())
    }
}

impl Backend for Rclone {
    fn list(&self) -> Result<Vec<String>> {
        Ok(self.list_details()?.into_iter().map(|l| l.name).collect())
    }

    fn list_details(&self) -> Result<Vec<Listed>> {
        self.lsjson(&format!("listing {}", self.remote), &self.remote)
    }

    fn get(&self, name: &str, dest: &Path) -> Result<()> {
        let what = format!("downloading {name}");
        let dest_arg = dest.to_string_lossy();
        match self.run(&what, &["copyto", &self.path(name), &dest_arg])? {
            Some(_) if dest.is_file() => Ok(()),
            _ => Err(Error::corrupt(format!(
                "{name} is missing from {}: the backup set is incomplete",
                self.describe()
            ))),
        }
    }

    fn put(&self, src: &Path, name: &str) -> Result<()> {
        let what = format!("uploading {name}");
        let src_arg = src.to_string_lossy();
        match self.run(&what, &["copyto", &src_arg, &self.path(name)])? {
            Some(_) => Ok(()),
            None => Err(Error::io(
                src,
                std::io::Error::new(std::io::ErrorKind::NotFound, "rclone did not find it"),
            )),
        }
    }

    fn delete(&self, name: &str) -> Result<()> {
        match self.run(
            &format!("deleting {name}"),
            &["deletefile", &self.path(name)],
        ) {
            // rclone fails alike on a missing file and on a failed delete.
            Err(e) if self.size(name)?.is_none() => {
                crate::log::debug(&format!("{e} (it is not there)"));
                Ok(())
            }
            r => r.map(|_| ()),
        }
    }

    fn size(&self, name: &str) -> Result<Option<u64>> {
        let found = self.lsjson(&format!("querying {name}"), &self.path(name))?;
        Ok(found
            .into_iter()
            .find(|l| l.name == name)
            .and_then(|l| l.size))
    }

    fn describe(&self) -> String {
        format!("rclone://{}", self.remote)
    }
}
