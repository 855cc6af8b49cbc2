//! S3 credentials found as the AWS tools find them, in this order:
//!
//! 1. `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), from the
//!    store's own env (multi://) or the process environment;
//! 2. the profile `AWS_PROFILE` (else `default`) of the shared credentials file
//!    (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`) or of the config file
//!    (`AWS_CONFIG_FILE`, else `~/.aws/config`, section `[profile NAME]`), with its
//!    `aws_session_token`.
//!
//! The profile's `region` is used when neither `--s3-region-name` nor `AWS_REGION` gives
//! one. Web identity and instance metadata (EC2 roles) are not read: see the README.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One set of keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    pub key_id: String,
    pub secret: String,
    pub token: Option<String>,
}

/// A setting: the store's own env first, then the process environment.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Finds the keys, as the module says.
pub fn find(get: Lookup) -> Result<Keys> {
    if let (Some(key_id), Some(secret)) = (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Keys {
            key_id,
            secret,
            token: get("AWS_SESSION_TOKEN"),
        });
    }
    let profile = get("AWS_PROFILE").unwrap_or_else(|| "default".to_string());
    if let Some(keys) = profile_keys(get, &profile)? {
        return Ok(keys);
    }
    Err(Error::usage(format!(
        "s3:// found no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (in \
         the environment or the store's env in the multi:// config), or give the profile \
         {profile:?} keys in {} (AWS_PROFILE picks another profile)",
        shared_file(get, "AWS_SHARED_CREDENTIALS_FILE", "credentials")
            .map_or("~/.aws/credentials".into(), |p| p.display().to_string())
    )))
}

/// `~/.aws/NAME`, or the file the variable `var` names.
fn shared_file(get: Lookup, var: &str, name: &str) -> Option<PathBuf> {
    get(var)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".aws").join(name)))
}

/// The sections of an INI file (AWS's shared files): name to key/value pairs.
fn ini(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut section = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.trim().to_string());
            continue;
        }
        if let (Some(s), Some((k, v))) = (&section, line.split_once('=')) {
            out.entry(s.clone())
                .or_default()
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

/// A profile's settings: the credentials file's `[NAME]`, over the config file's
/// `[profile NAME]` (`[default]` for the default profile).
fn profile(get: Lookup, name: &str) -> Result<HashMap<String, String>> {
    let read = |var: &str, file: &str, section: String| -> Result<HashMap<String, String>> {
        let Some(path) = shared_file(get, var, file) else {
            return Ok(HashMap::new());
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(ini(&text).remove(&section).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
            Err(e) => Err(Error::usage(format!(
                "{}: {e}: make the AWS {file} file readable or set {var}",
                path.display()
            ))),
        }
    };
    let config_section = if name == "default" {
        "default".to_string()
    } else {
        format!("profile {name}")
    };
    let mut settings = read("AWS_CONFIG_FILE", "config", config_section)?;
    settings.extend(read(
        "AWS_SHARED_CREDENTIALS_FILE",
        "credentials",
        name.to_string(),
    )?);
    Ok(settings)
}

fn profile_keys(get: Lookup, name: &str) -> Result<Option<Keys>> {
    let p = profile(get, name)?;
    Ok(
        match (p.get("aws_access_key_id"), p.get("aws_secret_access_key")) {
            (Some(k), Some(s)) => Some(Keys {
                key_id: k.clone(),
                secret: s.clone(),
                token: p.get("aws_session_token").cloned(),
            }),
            _ => None,
        },
    )
}

/// The region of the profile `AWS_PROFILE` (else `default`), if it sets one.
pub fn profile_region(get: Lookup) -> Result<Option<String>> {
    let name = get("AWS_PROFILE").unwrap_or_else(|| "default".to_string());
    Ok(profile(get, &name)?.remove("region"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_come_from_both_files_the_credentials_file_first() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        let config = dir.path().join("config");
        std::fs::write(
            &creds,
            "# keys\n[default]\naws_access_key_id = AKD\naws_secret_access_key = SD\n\n\
             [backup]\nAWS_ACCESS_KEY_ID=AKB\naws_secret_access_key= SB \n\
             aws_session_token = TB\n",
        )
        .unwrap();
        std::fs::write(
            &config,
            "[default]\nregion = eu-west-3\n[profile backup]\nregion = ca-east-1\n\
             aws_access_key_id = ignored\n[profile only-config]\n\
             aws_access_key_id = AKC\naws_secret_access_key = SC\n",
        )
        .unwrap();
        let env = |profile: Option<&str>| {
            let mut m: HashMap<String, String> = HashMap::new();
            m.insert(
                "AWS_SHARED_CREDENTIALS_FILE".into(),
                creds.display().to_string(),
            );
            m.insert("AWS_CONFIG_FILE".into(), config.display().to_string());
            if let Some(p) = profile {
                m.insert("AWS_PROFILE".into(), p.into());
            }
            m
        };
        let keys = |profile: Option<&str>| {
            let m = env(profile);
            let get = move |k: &str| m.get(k).cloned();
            (
                profile_keys(&get, &get("AWS_PROFILE").unwrap_or("default".into())).unwrap(),
                profile_region(&get).unwrap(),
            )
        };
        let k = |id: &str, s: &str, t: Option<&str>| Keys {
            key_id: id.into(),
            secret: s.into(),
            token: t.map(String::from),
        };
        assert_eq!(
            keys(None),
            (Some(k("AKD", "SD", None)), Some("eu-west-3".into()))
        );
        assert_eq!(
            keys(Some("backup")),
            (Some(k("AKB", "SB", Some("TB"))), Some("ca-east-1".into()))
        );
        assert_eq!(keys(Some("only-config")).0, Some(k("AKC", "SC", None)));
        assert_eq!(keys(Some("absent")), (None, None));
    }
}
