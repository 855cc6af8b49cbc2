//! `par2+<url>`: recovery files beside every stored file, made and used by the `par2`
//! program as duplicity's par2 backend makes and uses them, so that a volume damaged in
//! storage (a flipped bit on a cold archive's tape, a cut download) is repaired on read.
//!
//! - Upload: `par2 create -r<redundancy> -n<volumes>` on the file under its stored name,
//!   then the file, `NAME.par2` and `NAME.volA+B.par2` go to the wrapped store.
//! - Download: the file and `NAME.par2`; `par2 verify`; if the file is damaged, the
//!   `NAME.vol*.par2` files too, and `par2 repair`. A file without recovery files (stored
//!   before `par2+` was used) is read as it is.
//! - Listings leave out the `.par2` files; deleting a file deletes its recovery files.

use super::{Backend, Listed, PlannedRead, StoreListing};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `--par2-redundancy`, `--par2-volumes` and `--par2-options`.
#[derive(Clone, Debug)]
pub struct Par2Options {
    /// Percent of recovery data.
    pub redundancy: u32,
    /// Recovery files per stored file.
    pub volumes: u32,
    /// Verbatim options for every par2 run.
    pub extra: Vec<String>,
}

impl Default for Par2Options {
    fn default() -> Self {
        Par2Options {
            redundancy: 10,
            volumes: 1,
            extra: Vec::new(),
        }
    }
}

pub struct Par2 {
    inner: Box<dyn Backend>,
    opts: Par2Options,
    program: PathBuf,
}

/// True for the recovery files of `name`: `NAME.par2` and `NAME.volA+B.par2`.
fn is_recovery_of(file: &str, name: &str) -> bool {
    let Some(rest) = file.strip_prefix(name) else {
        return false;
    };
    let Some(middle) = rest.strip_suffix(".par2") else {
        return false;
    };
    middle.is_empty()
        || middle
            .strip_prefix(".vol")
            .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '+'))
}

impl Par2 {
    pub fn new(inner: Box<dyn Backend>, opts: &Par2Options) -> Result<Par2> {
        let program = PathBuf::from(std::env::var("PAR2_PROGRAM").unwrap_or("par2".into()));
        Command::new(&program)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| {
                Error::usage(format!(
                    "par2+ needs the par2 program ({}: {e}): install it (apt install par2) or \
                     set PAR2_PROGRAM",
                    program.display()
                ))
            })?;
        Ok(Par2 {
            inner,
            opts: opts.clone(),
            program,
        })
    }

    /// Runs `par2 VERB` with the common options; true if it succeeded.
    fn par2(&self, verb: &str, args: &[&Path], extra: &[String]) -> Result<bool> {
        let out = Command::new(&self.program)
            .arg(verb)
            .args(extra)
            .args(&self.opts.extra)
            .args(["-q", "-q"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                Error::new(
                    crate::error::Kind::Io,
                    format!("cannot run {}: {e}", self.program.display()),
                )
            })?;
        if !out.status.success() {
            crate::log::debug(&format!(
                "par2 {verb}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(out.status.success())
    }

    /// A fresh folder beside `near` for par2's files (par2 finds a data file by name, in
    /// the folder of its recovery files).
    fn workdir(near: &Path) -> Result<tempfile::TempDir> {
        let parent = near
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        tempfile::Builder::new()
            .prefix(".par2-")
            .tempdir_in(parent)
            .map_err(|e| Error::io(parent, e))
    }

    /// Makes the recovery files of `src`, stored as `name`; returns them, in their folder.
    fn create(&self, src: &Path, name: &str) -> Result<(tempfile::TempDir, Vec<PathBuf>)> {
        let dir = Self::workdir(src)?;
        let linked = dir.path().join(name);
        std::fs::hard_link(src, &linked)
            .or_else(|_| std::fs::copy(src, &linked).map(|_| ()))
            .map_err(|e| Error::io(&linked, e))?;
        let flags = |n: u32| vec![format!("-r{}", self.opts.redundancy), format!("-n{n}")];
        let mut made = self.par2("create", &[&linked], &flags(self.opts.volumes))?;
        if !made && self.opts.volumes != 1 {
            crate::log::warn(&format!(
                "par2 could not make {name}'s recovery data in {} files; trying one",
                self.opts.volumes
            ));
            made = self.par2("create", &[&linked], &flags(1))?;
        }
        if !made {
            return Err(Error::new(
                crate::error::Kind::Io,
                format!(
                    "par2 could not make the recovery files of {name} (--par2-redundancy {}, \
                     --par2-options {:?}); check them",
                    self.opts.redundancy, self.opts.extra
                ),
            ));
        }
        std::fs::remove_file(&linked).map_err(|e| Error::io(&linked, e))?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .map_err(|e| Error::io(dir.path(), e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        Ok((dir, files))
    }

    fn upload(&self, src: &Path, name: &str, temporary: bool) -> Result<()> {
        if name.contains(['?', '*']) {
            return Err(Error::usage(format!(
                "par2+ cannot protect {name:?}: par2 reads ? and * in file names as \
                 wildcards; choose --file-prefix values without them"
            )));
        }
        let len = std::fs::metadata(src).map_err(|e| Error::io(src, e))?.len();
        // An empty file has nothing to recover (and par2 makes nothing for it).
        let (_dir, recovery) = if len == 0 {
            (None, Vec::new())
        } else {
            let (dir, files) = self.create(src, name)?;
            (Some(dir), files)
        };
        if temporary {
            self.inner.put_temporary(src, name)?;
        } else {
            self.inner.put(src, name)?;
        }
        for f in recovery {
            let file_name = f
                .file_name()
                .expect("a file")
                .to_string_lossy()
                .into_owned();
            self.inner.put(&f, &file_name)?;
        }
        Ok(())
    }

    fn recovery_names(&self, names: &[String]) -> Vec<String> {
        names.iter().map(|n| format!("{n}.par2")).collect()
    }
}

impl Backend for Par2 {
    fn list(&self) -> Result<Vec<String>> {
        let mut names = self.inner.list()?;
        names.retain(|n| !n.ends_with(".par2"));
        Ok(names)
    }

    fn list_details(&self) -> Result<Vec<Listed>> {
        let mut listed = self.inner.list_details()?;
        listed.retain(|l| !l.name.ends_with(".par2"));
        Ok(listed)
    }

    fn store_listings(&self) -> Result<Vec<StoreListing>> {
        let mut all = self.inner.store_listings()?;
        for l in &mut all {
            l.entries.retain(|e| !e.name.ends_with(".par2"));
        }
        Ok(all)
    }

    fn get(&self, name: &str, dest: &Path) -> Result<()> {
        let dir = Self::workdir(dest)?;
        let data = dir.path().join(name);
        self.inner.get(name, &data)?;
        let index = dir.path().join(format!("{name}.par2"));
        let verified = match self.inner.get(&format!("{name}.par2"), &index) {
            Ok(()) => self.par2("verify", &[&index], &[])?,
            Err(e) => {
                crate::log::info(&format!(
                    "{name} has no par2 recovery files ({e}); read as it is"
                ));
                true
            }
        };
        if !verified {
            crate::log::warn(&format!(
                "{name} is damaged; repairing it from its par2 recovery files"
            ));
            for f in self
                .inner
                .list()?
                .into_iter()
                .filter(|f| is_recovery_of(f, name) && *f != format!("{name}.par2"))
            {
                self.inner.get(&f, &dir.path().join(&f))?;
            }
            if self.par2("repair", &[&index], &[])? {
                crate::log::warn(&format!("{name} was repaired from its par2 recovery files"));
            } else {
                crate::log::warn(&format!(
                    "{name} could not be repaired from its par2 recovery files (too much \
                     damage for --par2-redundancy)"
                ));
            }
        }
        std::fs::rename(&data, dest).map_err(|e| Error::io(dest, e))
    }

    fn put(&self, src: &Path, name: &str) -> Result<()> {
        self.upload(src, name, false)
    }

    fn put_temporary(&self, src: &Path, name: &str) -> Result<()> {
        self.upload(src, name, true)
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.inner.delete(name)?;
        for f in self
            .inner
            .list()?
            .into_iter()
            .filter(|f| is_recovery_of(f, name))
        {
            self.inner.delete(&f)?;
        }
        Ok(())
    }

    fn delete_many(&self, names: &[String]) -> Result<()> {
        let listed = self.inner.list()?;
        let mut all = names.to_vec();
        all.extend(
            listed
                .into_iter()
                .filter(|f| names.iter().any(|n| is_recovery_of(f, n))),
        );
        self.inner.delete_many(&all)
    }

    fn size(&self, name: &str) -> Result<Option<u64>> {
        self.inner.size(name)
    }

    /// The recovery files thaw with the files they protect.
    fn prepare_download(&self, names: &[String]) -> Result<()> {
        let mut all = names.to_vec();
        all.extend(self.recovery_names(names));
        self.inner.prepare_download(&all)
    }

    fn is_cold(&self, name: &str) -> bool {
        self.inner.is_cold(name)
    }

    fn plan_reads(&self, names: &[String]) -> Result<Vec<PlannedRead>> {
        self.inner.plan_reads(names)
    }

    fn may_thaw(&self) -> bool {
        self.inner.may_thaw()
    }

    fn minimum_storage(&self) -> bool {
        self.inner.minimum_storage()
    }

    fn check_deletable(&self, names: &[String]) -> Result<()> {
        self.inner.check_deletable(names)
    }

    fn lists_md5(&self) -> bool {
        self.inner.lists_md5()
    }

    fn describe(&self) -> String {
        format!("par2+{}", self.inner.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_files_are_told_from_others() {
        let n = "duplicity-full.20240101T000000Z.vol1.difftar.gz";
        assert!(is_recovery_of(&format!("{n}.par2"), n));
        assert!(is_recovery_of(&format!("{n}.vol000+100.par2"), n));
        assert!(!is_recovery_of(
            &format!("{n}.vol000+100.par2"),
            "duplicity-full"
        ));
        assert!(!is_recovery_of(n, n));
        assert!(!is_recovery_of(&format!("{n}.volx.par2"), n));
        assert!(!is_recovery_of(
            "duplicity-full.20240101T000000Z.vol10.difftar.gz.par2",
            "duplicity-full.20240101T000000Z.vol1"
        ));
    }
}
