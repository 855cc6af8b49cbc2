//! OpenStack Swift (`swift://container[/prefix]`) and OVH Public Cloud Archive
//! (`pca://container[/prefix]`), over Swift's HTTP API.
//!
//! Settings are duplicity's environment variables (`SWIFT_*` or `PCA_*`), taken from the
//! store's own `env` in a multi:// config first, then from the process environment:
//! `AUTHURL`, `AUTHVERSION` (1 or 3; Keystone v2 is retired), `USERNAME`, `PASSWORD`, and for
//! v3 `USER_DOMAIN_NAME`/`_ID`, `PROJECT_NAME` (or `TENANTNAME`)/`PROJECT_ID` (or
//! `TENANTID`), `PROJECT_DOMAIN_NAME`/`_ID`, `REGIONNAME`, `ENDPOINT_TYPE`; or
//! `PREAUTHURL` + `PREAUTHTOKEN`.
//!
//! PCA objects are sealed once written. A GET of a sealed object answers 429 and starts
//! unsealing it; [`Backend::prepare_download`] sends that GET for every volume a restore
//! needs at once, and `get` waits for each volume as the restore reaches it, so the restore
//! proceeds while later volumes are still thawing. Uploads carry the file's MD5 as ETag, so
//! Swift refuses a body that arrives damaged.

use super::Backend;
use crate::error::{Code, Error, Result};
use md5::Md5;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use ureq::http::Response;
use ureq::Body;

/// The storage policy OVH gives PCA containers.
const PCA_POLICY: &str = "PCA";

/// Swift settings from the command line.
#[derive(Clone, Debug, Default)]
pub struct SwiftOptions {
    /// `--swift-storage-policy`: the policy of the containers ferrodup creates; an existing
    /// container with another policy is refused.
    pub storage_policy: Option<String>,
    /// `--mp-segment-size` in bytes: files larger than this are stored as Static Large
    /// Objects of segments of this size (0: never).
    pub segment_size: u64,
}

enum Auth {
    Preauth {
        url: String,
        token: String,
    },
    V1 {
        url: String,
        user: String,
        key: String,
    },
    V3 {
        url: String,
        body: serde_json::Value,
        region: Option<String>,
        interface: String,
    },
}

struct Session {
    storage_url: String,
    token: String,
}

/// A Swift container (or a PCA archive container) holding backup files.
pub struct Swift {
    scheme: &'static str,
    agent: ureq::Agent,
    auth: Auth,
    container: String,
    /// Object name prefix (`dir/`), or empty.
    prefix: String,
    pca: bool,
    /// The storage policy containers must have (PCA for pca://).
    policy: Option<String>,
    /// Segment size of large uploads in bytes (0: none).
    segment_size: u64,
    /// `--min-storage-days`, for PCA objects.
    min_storage_days: Option<u32>,
    session: Mutex<Option<Session>>,
    /// Segments uploaded at once (`--concurrency`).
    transfers: usize,
    /// The ETags of the segments stored of large objects whose manifest is not stored
    /// yet, by segment name prefix, so that a retry sends only the missing segments.
    stored_segments: Mutex<HashMap<String, Vec<Option<String>>>>,
    container_ready: OnceLock<()>,
    /// Longest wait between two looks at an unsealing object.
    max_poll: Duration,
    /// `Retry-After` of the last 429 or 503 answer.
    retry_after: super::RetryAfter,
}

fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `s` with its `%XX` escapes decoded, or `None` if that is not UTF-8.
fn url_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn http_error(e: ureq::Error, what: &str) -> Error {
    super::transport_error(e, what)
}

impl Swift {
    /// `rest` is what follows `swift://` or `pca://`; `settings` the store's own env.
    pub fn open(
        scheme: &'static str,
        rest: &str,
        settings: &HashMap<String, String>,
        opts: &super::Options,
    ) -> Result<Swift> {
        let pca = scheme == "pca";
        let var = if pca { "PCA_" } else { "SWIFT_" };
        let get = |name: &str| -> Option<String> {
            let key = format!("{var}{name}");
            settings
                .get(&key)
                .cloned()
                .or_else(|| std::env::var(&key).ok())
                .filter(|v| !v.is_empty())
        };
        let need = |name: &str| -> Result<String> {
            get(name).ok_or_else(|| {
                Error::usage(format!(
                    "{scheme}:// needs {var}{name} (in the environment or the store's env in \
                     the multi:// config)"
                ))
            })
        };
        let (container, prefix) = match rest.split_once('/') {
            Some((c, p)) if !p.trim_matches('/').is_empty() => {
                (c.to_string(), format!("{}/", p.trim_matches('/')))
            }
            Some((c, _)) => (c.to_string(), String::new()),
            None => (rest.to_string(), String::new()),
        };
        if container.is_empty() {
            return Err(Error::usage(format!(
                "{scheme}:// URL has no container: use {scheme}://container[/prefix]"
            )));
        }
        let auth = if let (Some(url), Some(token)) = (get("PREAUTHURL"), get("PREAUTHTOKEN")) {
            Auth::Preauth { url, token }
        } else {
            let url = need("AUTHURL")?;
            let user = need("USERNAME")?;
            let password = need("PASSWORD")?;
            match get("AUTHVERSION").as_deref().unwrap_or("1") {
                "1" => Auth::V1 {
                    url,
                    user,
                    key: password,
                },
                "3" => {
                    let named = |id: Option<String>, name: Option<String>| match (id, name) {
                        (Some(id), _) => serde_json::json!({ "id": id }),
                        (None, Some(name)) => serde_json::json!({ "name": name }),
                        (None, None) => serde_json::json!({ "name": "Default" }),
                    };
                    let user_domain = named(get("USER_DOMAIN_ID"), get("USER_DOMAIN_NAME"));
                    let project_domain =
                        named(get("PROJECT_DOMAIN_ID"), get("PROJECT_DOMAIN_NAME"));
                    let project = match (
                        get("PROJECT_ID").or(get("TENANTID")),
                        get("PROJECT_NAME").or(get("TENANTNAME")),
                    ) {
                        (Some(id), _) => serde_json::json!({ "id": id }),
                        (None, Some(name)) => {
                            serde_json::json!({ "name": name, "domain": project_domain })
                        }
                        (None, None) => {
                            return Err(Error::usage(format!(
                                "{scheme}:// with Keystone v3 needs {var}TENANTNAME (or \
                                 {var}PROJECT_NAME / {var}PROJECT_ID)"
                            )))
                        }
                    };
                    let user = match get("USERID") {
                        Some(id) => serde_json::json!({ "id": id, "password": password }),
                        None => serde_json::json!({
                            "name": user, "domain": user_domain, "password": password
                        }),
                    };
                    Auth::V3 {
                        url,
                        body: serde_json::json!({ "auth": {
                            "identity": { "methods": ["password"], "password": { "user": user } },
                            "scope": { "project": project }
                        }}),
                        region: get("REGIONNAME"),
                        interface: get("ENDPOINT_TYPE")
                            .unwrap_or_else(|| "public".to_string())
                            .trim_end_matches("URL")
                            .to_string(),
                    }
                }
                v => {
                    return Err(Error::usage(format!(
                        "{var}AUTHVERSION={v} is not supported: use 1 (tempauth/swauth) or 3 \
                         (Keystone v3; for OVH, {var}AUTHURL=https://auth.cloud.ovh.net/v3)"
                    )))
                }
            }
        };
        // python-swiftclient's variables for a CA bundle and for not checking certificates.
        let plain = |k: &str| {
            settings
                .get(k)
                .cloned()
                .or_else(|| std::env::var(k).ok())
                .filter(|v| !v.is_empty())
        };
        let insecure = plain("SWIFTCLIENT_INSECURE").is_some_and(|v| {
            matches!(
                v.to_ascii_lowercase().as_str(),
                "true" | "1" | "yes" | "on" | "t" | "y"
            )
        });
        let agent = super::http_agent(
            opts.timeout,
            &opts.tls,
            plain("OS_CACERT").map(|f| ("OS_CACERT", f)),
            insecure,
        )?;
        let policy = if pca {
            Some(PCA_POLICY.to_string())
        } else {
            opts.swift.storage_policy.clone()
        };
        let max_poll = get("UNSEAL_POLL")
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(60));
        Ok(Swift {
            scheme,
            agent,
            auth,
            container,
            prefix,
            pca,
            policy,
            segment_size: if pca { 0 } else { opts.swift.segment_size },
            min_storage_days: opts.min_storage_days,
            session: Mutex::new(None),
            transfers: opts.transfers,
            stored_segments: Mutex::default(),
            container_ready: OnceLock::new(),
            max_poll,
            retry_after: Default::default(),
        })
    }

    fn authenticate(&self) -> Result<Session> {
        match &self.auth {
            Auth::Preauth { url, token } => Ok(Session {
                storage_url: url.trim_end_matches('/').to_string(),
                token: token.clone(),
            }),
            Auth::V1 { url, user, key } => {
                let r = self
                    .agent
                    .get(url)
                    .header("X-Auth-User", user)
                    .header("X-Auth-Key", key)
                    .call()
                    .map_err(|e| http_error(e, &format!("authenticating at {url}")))?;
                let url = &super::redact(url);
                let header = |h: &str| {
                    r.headers()
                        .get(h)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                match (
                    r.status().as_u16(),
                    header("x-storage-url"),
                    header("x-auth-token"),
                ) {
                    (200..=299, Some(storage_url), Some(token)) => Ok(Session {
                        storage_url: storage_url.trim_end_matches('/').to_string(),
                        token,
                    }),
                    (401 | 403, _, _) => Err(self.auth_refused(url, r.status().as_u16())),
                    (s, _, _) => Err(Error::backend(format!(
                        "authenticating at {url}: HTTP {s} without a storage URL and token"
                    ))),
                }
            }
            Auth::V3 {
                url,
                body,
                region,
                interface,
            } => {
                let endpoint = if url.trim_end_matches('/').ends_with("/auth/tokens") {
                    url.clone()
                } else {
                    format!("{}/auth/tokens", url.trim_end_matches('/'))
                };
                let mut r = self
                    .agent
                    .post(&endpoint)
                    .header("Content-Type", "application/json")
                    .send(body.to_string())
                    .map_err(|e| http_error(e, &format!("authenticating at {endpoint}")))?;
                let status = r.status().as_u16();
                if status == 401 || status == 403 {
                    return Err(self.auth_refused(url, status));
                }
                let token = r
                    .headers()
                    .get("x-subject-token")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let text = r
                    .body_mut()
                    .with_config()
                    .limit(64 << 20)
                    .read_to_string()
                    .map_err(|e| http_error(e, &format!("reading the token from {endpoint}")))?;
                let (Some(token), 200..=299) = (token, status) else {
                    return Err(Error::backend(format!(
                        "authenticating at {endpoint}: HTTP {status} without a token"
                    )));
                };
                let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    Error::backend(format!("the token from {endpoint} is not JSON: {e}"))
                })?;
                let storage_url = doc["token"]["catalog"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|s| s["type"] == "object-store")
                    .flat_map(|s| s["endpoints"].as_array().into_iter().flatten())
                    .find(|e| {
                        e["interface"] == interface.as_str()
                            && region.as_ref().is_none_or(|r| {
                                e["region"] == r.as_str() || e["region_id"] == r.as_str()
                            })
                    })
                    .and_then(|e| e["url"].as_str())
                    .ok_or_else(|| {
                        Error::usage(format!(
                            "the Keystone catalog at {url} has no {interface} object-store \
                             endpoint{}; check REGIONNAME and ENDPOINT_TYPE",
                            region
                                .as_ref()
                                .map(|r| format!(" in region {r}"))
                                .unwrap_or_default()
                        ))
                    })?;
                Ok(Session {
                    storage_url: storage_url.trim_end_matches('/').to_string(),
                    token,
                })
            }
        }
    }

    fn auth_refused(&self, url: &str, status: u16) -> Error {
        let url = super::redact(url);
        let var = if self.pca { "PCA_" } else { "SWIFT_" };
        Error::usage(format!(
            "{}:// authentication at {url} was refused (HTTP {status}): check {var}USERNAME, \
             {var}PASSWORD and the project settings",
            self.scheme
        ))
    }

    /// Runs `f` with a session (authenticating first if needed), once more after
    /// re-authenticating if the token was refused.
    fn with_session(
        &self,
        f: impl Fn(&Session) -> std::result::Result<Response<Body>, ureq::Error>,
        what: &str,
    ) -> Result<Response<Body>> {
        for attempt in 0..2 {
            let session = {
                let mut guard = self.session.lock().unwrap_or_else(|e| e.into_inner());
                if guard.is_none() {
                    // duplicity reports a failed Swift login, refused or unreachable, as a
                    // failed connection.
                    let session = self
                        .authenticate()
                        .map_err(|e| e.with_code(Code::ConnectionFailed))?;
                    *guard = Some(session);
                }
                let s = guard.as_ref().expect("session");
                Session {
                    storage_url: s.storage_url.clone(),
                    token: s.token.clone(),
                }
            };
            let r = f(&session).map_err(|e| http_error(e, what))?;
            if r.status().as_u16() == 401 && attempt == 0 {
                *self.session.lock().unwrap_or_else(|e| e.into_inner()) = None;
                continue;
            }
            return Ok(r);
        }
        Err(Error::usage(format!(
            "{what}: the token was refused after authenticating again; check the credentials"
        )))
    }

    fn container_url(&self, s: &Session) -> String {
        format!("{}/{}", s.storage_url, percent(&self.container))
    }

    fn object_url(&self, s: &Session, name: &str) -> String {
        format!(
            "{}/{}",
            self.container_url(s),
            percent(&format!("{}{name}", self.prefix))
        )
    }

    fn unexpected(&self, what: &str, r: &mut Response<Body>) -> Error {
        self.retry_after.note(r);
        let status = r.status().as_u16();
        let body = r
            .body_mut()
            .with_config()
            .limit(4096)
            .read_to_string()
            .unwrap_or_default();
        let detail = body.lines().next().unwrap_or("").trim().to_string();
        match status {
            403 => {
                Error::usage(format!(
                "{what}: access denied (HTTP 403{}); check the account's rights on container {}",
                if detail.is_empty() { String::new() } else { format!(": {detail}") },
                self.container
            ))
            }
            _ => Error::backend(format!(
                "{what}: HTTP {status}{}",
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {detail}")
                }
            )),
        }
    }

    /// Creates the container if needed; a PCA container must have the PCA policy.
    fn ensure_container(&self) -> Result<()> {
        if self.container_ready.get().is_some() {
            return Ok(());
        }
        self.ensure_named_container(&self.container)?;
        let _ = self.container_ready.set(());
        Ok(())
    }

    /// Creates `container` with the storage policy asked for, or checks that it has it.
    fn ensure_named_container(&self, container: &str) -> Result<()> {
        let url = |s: &Session| format!("{}/{}", s.storage_url, percent(container));
        let what = format!("checking container {container}");
        let mut r = self.with_session(
            |s| {
                self.agent
                    .head(url(s))
                    .header("X-Auth-Token", &s.token)
                    .call()
            },
            &what,
        )?;
        match r.status().as_u16() {
            200..=299 => {
                let policy = r
                    .headers()
                    .get("x-storage-policy")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                match &self.policy {
                    Some(want) if self.pca && policy != want => Err(Error::usage(format!(
                        "container {container} has storage policy {policy:?}, not {want}: a \
                         pca:// target must be a Public Cloud Archive container"
                    ))),
                    Some(want) if policy != want => Err(Error::usage(format!(
                        "container {container} exists with storage policy {policy:?}, not \
                         {want:?} as --swift-storage-policy asks: give its policy or another \
                         container"
                    ))),
                    _ => Ok(()),
                }
            }
            404 => {
                let what = format!("creating container {container}");
                let mut r = self.with_session(
                    |s| {
                        let mut req = self.agent.put(url(s)).header("X-Auth-Token", &s.token);
                        if let Some(policy) = &self.policy {
                            req = req.header("X-Storage-Policy", policy);
                        }
                        req.send_empty()
                    },
                    &what,
                )?;
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(self.unexpected(&what, &mut r))
                }
            }
            _ => Err(self.unexpected(&what, &mut r)),
        }
    }

    /// Uploads one object from `len` bytes of `src` at `start`, with its MD5 as ETag (so
    /// that Swift refuses a damaged body); returns the MD5.
    fn put_object(
        &self,
        url: impl Fn(&Session) -> String,
        src: &Path,
        start: u64,
        len: u64,
        what: &str,
    ) -> Result<String> {
        use std::io::{Read, Seek, SeekFrom};
        let open = || -> Result<std::io::Take<std::fs::File>> {
            let mut f = std::fs::File::open(src).map_err(|e| Error::io(src, e))?;
            f.seek(SeekFrom::Start(start))
                .map_err(|e| Error::io(src, e))?;
            Ok(f.take(len))
        };
        let mut md5 = <Md5 as md5::Digest>::new();
        std::io::copy(&mut open()?, &mut DigestWriter(&mut md5)).map_err(|e| Error::io(src, e))?;
        let etag = crate::codec::hex(&md5::Digest::finalize(md5));
        let body = open()?;
        let mut r = self.with_session(
            |s| {
                // Each try (one more after re-authenticating) sends the part from its start.
                let mut f = body.get_ref().try_clone().map_err(ureq::Error::Io)?;
                f.seek(SeekFrom::Start(start)).map_err(ureq::Error::Io)?;
                self.agent
                    .put(url(s))
                    .header("X-Auth-Token", &s.token)
                    .header("ETag", &etag)
                    .header("Content-Length", len.to_string())
                    .send(ureq::SendBody::from_owned_reader(f.take(len)))
            },
            what,
        )?;
        match r.status().as_u16() {
            200..=299 => Ok(etag),
            422 => Err(Error::backend(format!(
                "{what}: the server received different bytes than were sent (MD5 mismatch)"
            ))),
            _ => Err(self.unexpected(what, &mut r)),
        }
    }

    /// Uploads `src` as a Static Large Object, as python-swiftclient does: segments of
    /// `--mp-segment-size` in `<container>_segments` named
    /// `<object>/slo/<mtime>/<size>/<segment size>/<8-digit index>`, then the manifest.
    /// `--concurrency` segments go at once, each streamed from the file. The segments
    /// stored are remembered until the manifest is, so that a retry of the upload sends
    /// only the segments that failed.
    fn put_slo(&self, src: &Path, name: &str, len: u64) -> Result<()> {
        let seg_container = format!("{}_segments", self.container);
        self.ensure_named_container(&seg_container)?;
        let object = format!("{}{name}", self.prefix);
        let mtime = std::fs::metadata(src)
            .and_then(|m| m.modified())
            .map_err(|e| Error::io(src, e))?
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let mtime = format!("{mtime:.6}");
        let size = self.segment_size;
        let count = len.div_ceil(size) as usize;
        let base = format!("{object}/slo/{mtime}/{len}/{size}");
        let stored = self
            .stored_segments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&base)
            .cloned()
            .filter(|s: &Vec<Option<String>>| s.len() == count)
            .unwrap_or_else(|| vec![None; count]);
        let todo: Vec<usize> = (0..count).filter(|&k| stored[k].is_none()).collect();
        let etags = Mutex::new(stored);
        let segment = |k: usize| -> Result<String> {
            let start = k as u64 * size;
            let seg = format!("{base}/{k:08}");
            let what = format!("uploading segment {k} of {name} to {}", self.describe());
            let seg_url = |s: &Session| {
                format!(
                    "{}/{}/{}",
                    s.storage_url,
                    percent(&seg_container),
                    percent(&seg)
                )
            };
            self.put_object(seg_url, src, start, size.min(len - start), &what)
        };
        let result = super::upload_parts_in_parallel(
            &todo,
            self.transfers,
            segment,
            |k, etag| etags.lock().unwrap_or_else(|e| e.into_inner())[k] = Some(etag),
            &format!("uploading {name}"),
        );
        let etags = etags.into_inner().unwrap_or_else(|e| e.into_inner());
        let manifest: Vec<serde_json::Value> = etags
            .iter()
            .enumerate()
            .map(|(k, etag)| {
                serde_json::json!({
                    "path": format!("/{seg_container}/{base}/{k:08}"),
                    "etag": etag,
                    "size_bytes": size.min(len - k as u64 * size),
                })
            })
            .collect();
        self.stored_segments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(base.clone(), etags);
        result?;
        let what = format!("uploading the manifest of {name} to {}", self.describe());
        let body = serde_json::Value::Array(manifest).to_string();
        let mut r = self.with_session(
            |s| {
                self.agent
                    .put(self.object_url(s, name))
                    .query("multipart-manifest", "put")
                    .header("X-Auth-Token", &s.token)
                    .header("X-Object-Meta-Mtime", &mtime)
                    .send(body.as_bytes())
            },
            &what,
        )?;
        if !r.status().is_success() {
            return Err(self.unexpected(&what, &mut r));
        }
        self.stored_segments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&base);
        Ok(())
    }

    /// The objects under the prefix, with their PCA retrieval state when asked for.
    fn list_objects(&self, policy_extra: bool) -> Result<Vec<Object>> {
        let mut out = Vec::new();
        let mut marker = String::new();
        loop {
            let what = format!("listing container {}", self.container);
            let mut r = self.with_session(
                |s| {
                    let mut req = self
                        .agent
                        .get(self.container_url(s))
                        .header("X-Auth-Token", &s.token)
                        .query("format", "json")
                        .query("prefix", &self.prefix)
                        .query("marker", &marker);
                    if policy_extra {
                        req = req.query("policy_extra", "true");
                    }
                    req.call()
                },
                &what,
            )?;
            match r.status().as_u16() {
                200..=299 => {}
                404 => return Ok(out),
                _ => return Err(self.unexpected(&what, &mut r)),
            }
            let text = r
                .body_mut()
                .with_config()
                .limit(256 << 20)
                .read_to_string()
                .map_err(|e| http_error(e, &what))?;
            let page: Vec<serde_json::Value> = if text.trim().is_empty() {
                Vec::new()
            } else {
                serde_json::from_str(&text)
                    .map_err(|e| Error::backend(format!("{what}: the listing is not JSON: {e}")))?
            };
            let Some(last) = page.last().and_then(|o| o["name"].as_str()) else {
                return Ok(out);
            };
            marker = last.to_string();
            for o in &page {
                let Some(full) = o["name"].as_str() else {
                    continue;
                };
                if let Some(name) = full.strip_prefix(&self.prefix) {
                    if !name.is_empty() && !name.contains('/') {
                        out.push(Object {
                            name: name.to_string(),
                            bytes: o["bytes"].as_u64(),
                            hash: o["hash"].as_str().map(str::to_string),
                            large: o.get("slo_etag").is_some(),
                            state: o["policy_retrieval_state"].as_str().map(str::to_string),
                            delay: o["policy_retrieval_delay"].as_u64(),
                            modified: o["last_modified"].as_str().map(str::to_string),
                        });
                    }
                }
            }
        }
    }

    /// Deletes the segments of a Dynamic Large Object: the objects under `manifest`
    /// (`container/prefix`, URL-encoded).
    /// Deletes `names` in one bulk-delete request; false if the cluster has no bulk
    /// delete.
    fn bulk_delete(&self, names: &[String]) -> Result<bool> {
        let what = format!("deleting {} file(s) from {}", names.len(), self.describe());
        let body: String = names
            .iter()
            .map(|n| {
                format!(
                    "/{}/{}\n",
                    percent(&self.container),
                    percent(&format!("{}{n}", self.prefix))
                )
            })
            .collect();
        let mut r = self.with_session(
            |s| {
                self.agent
                    .post(&s.storage_url)
                    .query("bulk-delete", "")
                    .header("X-Auth-Token", &s.token)
                    .header("Content-Type", "text/plain")
                    .header("Accept", "application/json")
                    .send(body.as_bytes())
            },
            &what,
        )?;
        match r.status().as_u16() {
            200..=299 => {}
            // No bulk middleware: the account refuses the POST.
            400 | 403 | 404 | 405 | 412 | 501 => return Ok(false),
            _ => return Err(self.unexpected(&what, &mut r)),
        }
        let text = r
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_string()
            .map_err(|e| http_error(e, &what))?;
        if text.trim().is_empty() {
            // No bulk middleware: the account server took the POST as a metadata update.
            return Ok(false);
        }
        let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            Error::backend(format!("{what}: the answer is not JSON ({e}): {text:.200}"))
        })?;
        let status = doc["Response Status"].as_str().unwrap_or("");
        let errors = doc["Errors"].as_array().cloned().unwrap_or_default();
        if status.starts_with('2') && errors.is_empty() {
            return Ok(true);
        }
        Err(Error::backend(format!(
            "{what}: {status}, {} error(s){}",
            errors.len(),
            errors
                .first()
                .map(|e| format!(", the first {e}"))
                .unwrap_or_default()
        )))
    }

    fn delete_dlo_segments(&self, manifest: &str, what: &str) -> Result<()> {
        let (container, prefix) = manifest.split_once('/').unwrap_or((manifest, ""));
        let decode = |t: &str| {
            url_decode(t).ok_or_else(|| {
                Error::backend(format!(
                    "{what}: the large object's manifest {manifest:?} is not a path"
                ))
            })
        };
        let (container, prefix) = (decode(container)?, decode(prefix)?);
        let mut r = self.with_session(
            |s| {
                self.agent
                    .get(format!("{}/{}", s.storage_url, percent(&container)))
                    .header("X-Auth-Token", &s.token)
                    .query("format", "json")
                    .query("prefix", &prefix)
                    .call()
            },
            what,
        )?;
        if r.status().as_u16() == 404 {
            return Ok(());
        }
        if !r.status().is_success() {
            return Err(self.unexpected(what, &mut r));
        }
        let text = r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| http_error(e, what))?;
        let listing: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap_or_default();
        for seg in listing.iter().filter_map(|o| o["name"].as_str()) {
            let mut r = self.with_session(
                |s| {
                    self.agent
                        .delete(format!(
                            "{}/{}/{}",
                            s.storage_url,
                            percent(&container),
                            percent(seg)
                        ))
                        .header("X-Auth-Token", &s.token)
                        .call()
                },
                what,
            )?;
            if !matches!(r.status().as_u16(), 200..=299 | 404) {
                return Err(self.unexpected(what, &mut r));
            }
        }
        Ok(())
    }

    /// How long to wait before looking again at an object that is unsealing.
    fn retry_after(&self, r: &Response<Body>) -> Duration {
        super::retry_after_secs(r)
            .map(|s| Duration::from_secs(s.max(1)))
            .unwrap_or(self.max_poll)
            .min(self.max_poll)
    }
}

/// Feeds what is written to a digest.
struct DigestWriter<'a>(&'a mut Md5);

impl std::io::Write for DigestWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        md5::Digest::update(self.0, buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One object of a container listing.
struct Object {
    name: String,
    bytes: Option<u64>,
    /// The ETag: the content's MD5, except for large objects.
    hash: Option<String>,
    /// A Static Large Object (its listing carries `slo_etag`).
    large: bool,
    /// PCA's retrieval state, with `policy_extra`: sealed, unsealing or unsealed.
    state: Option<String>,
    /// While unsealing, the seconds left.
    delay: Option<u64>,
    /// `last_modified`, in UTC.
    modified: Option<String>,
}

impl Backend for Swift {
    /// The listing gives each object's size and ETag, and on PCA (with `policy_extra`)
    /// its retrieval state: only unsealed objects read at once.
    fn list_details(&self) -> Result<Vec<super::Listed>> {
        let mut out: Vec<super::Listed> = self
            .list_objects(self.pca)?
            .into_iter()
            .map(|o| {
                let whole = !o.large
                    && (self.segment_size == 0 || o.bytes.is_some_and(|b| b <= self.segment_size));
                let md5 = o
                    .hash
                    .filter(|_| whole)
                    .map(|h| {
                        h.split(';')
                            .next()
                            .unwrap_or("")
                            .trim()
                            .to_ascii_lowercase()
                    })
                    .filter(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()));
                super::Listed {
                    name: o.name,
                    size: o.bytes,
                    md5,
                    readable: Some(!self.pca || o.state.as_deref() == Some("unsealed")),
                    modified: o.modified.as_deref().and_then(super::listing_time),
                    min_days: self.min_storage_days.filter(|_| self.pca),
                    usd_per_gb_month: None,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn lists_md5(&self) -> bool {
        true
    }

    fn may_thaw(&self) -> bool {
        self.pca
    }

    fn minimum_storage(&self) -> bool {
        self.pca && self.min_storage_days.is_some()
    }

    /// On PCA, one listing gives each object's retrieval state, and while it unseals the
    /// seconds left.
    fn plan_reads(&self, names: &[String]) -> Result<Vec<super::PlannedRead>> {
        let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        let store = self.describe();
        let mut out = Vec::new();
        for o in self.list_objects(self.pca)? {
            if !wanted.contains(o.name.as_str()) {
                continue;
            }
            let state = match o.state.as_deref() {
                _ if !self.pca => super::ReadState::Now,
                Some("unsealed") => super::ReadState::Now,
                Some("unsealing") => super::ReadState::Thawing {
                    ready_in: o.delay.map(Duration::from_secs),
                },
                _ => super::ReadState::Frozen {
                    wait: "OVH announces it when asked; usually hours".into(),
                    usd_per_gb: None,
                },
            };
            out.push(super::PlannedRead {
                name: o.name,
                store: store.clone(),
                size: o.bytes,
                state,
            });
        }
        Ok(out)
    }

    fn list(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .list_objects(false)?
            .into_iter()
            .map(|o| o.name)
            .collect();
        names.sort();
        Ok(names)
    }

    fn get(&self, name: &str, dest: &Path) -> Result<()> {
        let what = format!("downloading {name} from {}", self.describe());
        let mut waited = false;
        loop {
            let mut r = self.with_session(
                |s| {
                    self.agent
                        .get(self.object_url(s, name))
                        .header("X-Auth-Token", &s.token)
                        .call()
                },
                &what,
            )?;
            match r.status().as_u16() {
                200..=299 => {
                    super::save_body(&mut r, dest, &what)?;
                    if waited {
                        crate::live::thawed();
                        crate::log::notice(&format!("{name} is unsealed and downloaded"));
                    }
                    return Ok(());
                }
                404 => {
                    return Err(Error::corrupt(format!(
                        "{name} is missing from {}: the backup set is incomplete",
                        self.describe()
                    ))
                    .with_code(Code::Generic))
                }
                429 if self.pca => {
                    let wait = self.retry_after(&r);
                    crate::live::next_check(wait);
                    crate::log::notice(&format!(
                        "{name} is sealed in the archive; unsealing, looking again in {} s",
                        wait.as_secs()
                    ));
                    waited = true;
                    std::thread::sleep(wait);
                }
                _ => return Err(self.unexpected(&what, &mut r)),
            }
        }
    }

    fn put(&self, src: &Path, name: &str) -> Result<()> {
        self.ensure_container()?;
        let len = std::fs::metadata(src).map_err(|e| Error::io(src, e))?.len();
        if self.segment_size > 0 && len > self.segment_size {
            return self.put_slo(src, name, len);
        }
        let what = format!("uploading {name} to {}", self.describe());
        self.put_object(|s| self.object_url(s, name), src, 0, len, &what)
            .map(|_| ())
    }

    /// One listing, then the plain objects in bulk-delete requests of up to 1,000 (Swift's
    /// `bulk` middleware, which OVH and most clusters run; one at a time where it is
    /// missing); large objects, and empty ones that may be old-style large object
    /// manifests, one at a time with their segments.
    fn delete_many(&self, names: &[String]) -> Result<()> {
        let listed: HashMap<String, Object> = self
            .list_objects(false)?
            .into_iter()
            .map(|o| (o.name.clone(), o))
            .collect();
        let mut bulk = Vec::new();
        for n in names {
            match listed.get(n) {
                None => {}
                Some(o) if o.large || o.bytes.unwrap_or(0) == 0 => self.delete(n)?,
                Some(_) => bulk.push(n.clone()),
            }
        }
        for chunk in bulk.chunks(1000) {
            if !self.bulk_delete(chunk)? {
                return chunk.iter().try_for_each(|n| self.delete(n));
            }
        }
        Ok(())
    }

    /// Deletes an object; a large object goes with its segments, as python-swiftclient
    /// deletes it: a Static Large Object with `?multipart-manifest=delete`, the segments
    /// of a Dynamic Large Object one by one before its manifest.
    fn delete(&self, name: &str) -> Result<()> {
        let what = format!("deleting {name} from {}", self.describe());
        let mut r = self.with_session(
            |s| {
                self.agent
                    .head(self.object_url(s, name))
                    .query("multipart-manifest", "get")
                    .header("X-Auth-Token", &s.token)
                    .call()
            },
            &what,
        )?;
        let header = |k: &str| {
            r.headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let slo = header("x-static-large-object").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let dlo = header("x-object-manifest");
        match r.status().as_u16() {
            200..=299 => {}
            404 => return Ok(()),
            _ => return Err(self.unexpected(&what, &mut r)),
        }
        if let Some(dlo) = dlo {
            self.delete_dlo_segments(&dlo, &what)?;
        }
        let mut r = self.with_session(
            |s| {
                let mut req = self
                    .agent
                    .delete(self.object_url(s, name))
                    .header("X-Auth-Token", &s.token);
                if slo {
                    req = req
                        .query("multipart-manifest", "delete")
                        .header("Accept", "application/json");
                }
                req.call()
            },
            &what,
        )?;
        match r.status().as_u16() {
            200..=299 if slo => {
                // Swift answers 200 and reports how the bulk delete went in the body.
                let text = r
                    .body_mut()
                    .with_config()
                    .limit(1 << 20)
                    .read_to_string()
                    .map_err(|e| http_error(e, &what))?;
                let doc: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let status = doc["Response Status"].as_str().unwrap_or("");
                let errors = doc["Errors"].as_array().map_or(0, Vec::len);
                if (status.starts_with('2') || status.starts_with("404")) && errors == 0 {
                    Ok(())
                } else {
                    Err(Error::backend(format!(
                        "{what}: deleting the large object and its segments failed: {status} {}",
                        doc["Errors"]
                    )))
                }
            }
            200..=299 | 404 => Ok(()),
            _ => Err(self.unexpected(&what, &mut r)),
        }
    }

    fn size(&self, name: &str) -> Result<Option<u64>> {
        let what = format!("looking for {name} in {}", self.describe());
        let mut r = self.with_session(
            |s| {
                self.agent
                    .head(self.object_url(s, name))
                    .header("X-Auth-Token", &s.token)
                    .call()
            },
            &what,
        )?;
        match r.status().as_u16() {
            200..=299 => Ok(r
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())),
            404 => Ok(None),
            _ => Err(self.unexpected(&what, &mut r)),
        }
    }

    /// PCA seals every object it stores.
    fn is_cold(&self, _name: &str) -> bool {
        self.pca
    }

    /// PCA: asks the archive to unseal every sealed file the restore will read, all at
    /// once; `get` then waits for each as the restore reaches it.
    fn prepare_download(&self, names: &[String]) -> Result<()> {
        if !self.pca || names.is_empty() {
            return Ok(());
        }
        let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        let mut sealed = 0;
        for Object { name, state, .. } in self.list_objects(true)? {
            if !wanted.contains(name.as_str()) || state.as_deref() != Some("sealed") {
                continue;
            }
            let what = format!("asking {} to unseal {name}", self.describe());
            let mut r = self.with_session(
                |s| {
                    self.agent
                        .get(self.object_url(s, &name))
                        .header("X-Auth-Token", &s.token)
                        .call()
                },
                &what,
            )?;
            match r.status().as_u16() {
                429 | 200..=299 => sealed += 1,
                _ => return Err(self.unexpected(&what, &mut r)),
            }
        }
        if sealed > 0 {
            crate::live::thaw_asked(sealed);
            crate::log::notice(&format!(
                "asked {} to unseal {sealed} file(s); the restore starts as they arrive",
                self.describe()
            ));
        }
        Ok(())
    }

    fn take_retry_after(&self) -> Option<Duration> {
        self.retry_after.take()
    }

    fn describe(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme,
            self.container,
            if self.prefix.is_empty() {
                String::new()
            } else {
                format!("/{}", self.prefix.trim_end_matches('/'))
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::url_decode;

    #[test]
    fn manifest_paths_decode() {
        assert_eq!(url_decode("a%20b/c%2Fd").as_deref(), Some("a b/c/d"));
        assert_eq!(url_decode("100%").as_deref(), Some("100%"));
        assert_eq!(url_decode("%zz").as_deref(), Some("%zz"));
        assert_eq!(url_decode("%ff"), None);
    }
}
