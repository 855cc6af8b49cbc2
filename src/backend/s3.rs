//! Amazon S3 and S3-compatible storage (`s3://bucket[/prefix]`), with cold storage classes
//! (GLACIER, DEEP_ARCHIVE, OVH Cold Archive) and restore-before-read.
//!
//! Credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and
//! `AWS_SESSION_TOKEN`), from the store's `env` in a multi:// config first; the region from
//! `--s3-region-name`, else `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`. Requests
//! are signed with AWS Signature V4, uploads carry the SHA-256 of their body (so S3 rejects
//! a damaged transfer).
//!
//! As in duplicity, the cold class (`--s3-use-glacier`, `--s3-use-deep-archive`, ...)
//! applies to volumes only; manifests and signatures stay readable. Unlike duplicity, a
//! restore asks S3 to restore every archived volume it needs at once
//! ([`Backend::prepare_download`]) and downloads each one as soon as it is back.

use super::Backend;
use crate::error::{Code, Error, Result};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;
use ureq::http::Response;
use ureq::Body;

/// S3 settings from the command line.
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    /// `--s3-endpoint-url`: a non-AWS endpoint (path-style requests).
    pub endpoint: Option<String>,
    /// `--s3-region-name`.
    pub region: Option<String>,
    /// Storage class for every file (`REDUCED_REDUNDANCY`, `STANDARD_IA`, `ONEZONE_IA`).
    pub class: Option<String>,
    /// Storage class for volumes only (`GLACIER`, `GLACIER_IR`, `DEEP_ARCHIVE`).
    pub volume_class: Option<String>,
    /// `--s3-restore-days`: how long restored copies stay readable.
    pub restore_days: u32,
    /// `--s3-restore-tier`: Expedited, Standard or Bulk.
    pub restore_tier: String,
    /// Server-side encryption of every file stored, as the options ask for it.
    pub sse: SseOptions,
    /// `--s3-multipart-chunk-size` in bytes: files of at least this size are uploaded as
    /// multipart uploads with parts of this size, as boto3 does: at least 5 MiB (S3's
    /// smallest part) and large enough for at most 10,000 parts (0: never).
    pub multipart_chunk: u64,
    /// `--s3-multipart-max-procs`: parts uploaded at the same time (at least 1).
    pub multipart_procs: usize,
    /// `--s3-unencrypted-connection`: plain HTTP to AWS (an endpoint URL says its scheme).
    pub unencrypted: bool,
    /// `--object-lock-days`: every file uploaded is locked (S3 Object Lock) for this many
    /// days.
    pub object_lock_days: Option<u32>,
    /// `--object-lock-mode`: GOVERNANCE or COMPLIANCE.
    pub object_lock_mode: String,
}

/// The server-side encryption options, read when an s3:// target is opened (as duplicity
/// reads them: other targets ignore them).
#[derive(Clone, Debug, Default)]
pub struct SseOptions {
    /// `--s3-use-server-side-encryption`.
    pub aes: bool,
    /// `--s3-use-server-side-kms-encryption`.
    pub kms: bool,
    /// `--s3-kms-key-id`.
    pub kms_key_id: Option<String>,
    /// `--s3-kms-grant`.
    pub kms_grant: Option<String>,
}

/// S3 server-side encryption, as duplicity asks boto3 for it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Sse {
    /// `--s3-use-server-side-encryption`: SSE-S3 (AES256, keys S3 manages).
    Aes256,
    /// `--s3-use-server-side-kms-encryption` with `--s3-kms-key-id` and optionally
    /// `--s3-kms-grant` (a grantee given full control of each object).
    Kms {
        key_id: String,
        grant: Option<String>,
    },
}

impl Sse {
    /// The encryption the options ask for, as duplicity reads them: SSE-S3 wins over
    /// SSE-KMS, which needs a key id; a key id or grant without SSE-KMS has no effect.
    fn from_options(o: &SseOptions) -> Result<Option<Sse>> {
        let key_id = o.kms_key_id.as_deref();
        let grant = o.kms_grant.as_deref();
        if o.aes {
            return Ok(Some(Sse::Aes256));
        }
        if !o.kms {
            if key_id.is_some() || grant.is_some() {
                crate::log::warn(
                    "--s3-kms-key-id and --s3-kms-grant have no effect without \
                     --s3-use-server-side-kms-encryption (as in duplicity)",
                );
            }
            return Ok(None);
        }
        match key_id.filter(|k| !k.is_empty()) {
            Some(k) => Ok(Some(Sse::Kms {
                key_id: k.to_string(),
                grant: grant.filter(|g| !g.is_empty()).map(str::to_string),
            })),
            None => Err(Error::usage(
                "--s3-use-server-side-kms-encryption needs the key: give --s3-kms-key-id ID",
            )
            .with_code(Code::S3KmsNoId)),
        }
    }

    /// The request headers that ask for this encryption.
    fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            Sse::Aes256 => vec![("x-amz-server-side-encryption", "AES256".into())],
            Sse::Kms { key_id, grant } => {
                let mut h = vec![
                    ("x-amz-server-side-encryption", "aws:kms".to_string()),
                    (
                        "x-amz-server-side-encryption-aws-kms-key-id",
                        key_id.clone(),
                    ),
                ];
                if let Some(g) = grant {
                    h.push(("x-amz-grant-full-control", g.clone()));
                }
                h
            }
        }
    }
}

/// An S3 bucket (and key prefix) holding backup files.
pub struct S3 {
    agent: ureq::Agent,
    /// Scheme and host, e.g. `https://bucket.s3.eu-west-1.amazonaws.com`.
    base: String,
    host: String,
    /// Path before the key: `/bucket` (path style) or empty (virtual-hosted style).
    bucket_path: String,
    bucket: String,
    prefix: String,
    region: String,
    keys: super::aws_creds::Keys,
    opts: S3Options,
    /// `--min-storage-days`, instead of the classes' own periods.
    min_storage_days: Option<u32>,
    /// The server-side encryption every upload asks for.
    sse: Option<Sse>,
    /// `Retry-After` of the last 429 or 503 answer.
    retry_after: super::RetryAfter,
    /// Whether the bucket has Object Lock, asked once.
    lock_enabled: std::sync::OnceLock<bool>,
}

/// S3's smallest part of a multipart upload (but the last).
const MIN_PART: u64 = 5 << 20;
/// S3's largest number of parts of a multipart upload.
const MAX_PARTS: u64 = 10_000;

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// The text of the first `<tag>...</tag>` in `xml`, unescaped.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(unescape(&xml[start..end]))
}

/// `s` as XML text.
fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#13;", "\r")
        .replace("&#10;", "\n")
        .replace("&amp;", "&")
}

fn is_cold(class: &str) -> bool {
    matches!(class, "GLACIER" | "DEEP_ARCHIVE")
}

impl S3 {
    /// `rest` is what follows `s3://`; `settings` the store's own env.
    pub fn open(
        rest: &str,
        settings: &HashMap<String, String>,
        backend_opts: &super::Options,
    ) -> Result<S3> {
        let opts = &backend_opts.s3;
        let get = |k: &str| {
            settings
                .get(k)
                .cloned()
                .or_else(|| std::env::var(k).ok())
                .filter(|v| !v.is_empty())
        };
        let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
        let Some((bucket, prefix)) = parts.split_first() else {
            return Err(Error::usage(
                "s3:// URL has no bucket: use s3://bucket[/prefix]",
            ));
        };
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", prefix.join("/"))
        };
        let region = match opts
            .region
            .clone()
            .or_else(|| get("AWS_REGION"))
            .or_else(|| get("AWS_DEFAULT_REGION"))
        {
            Some(r) => r,
            None => super::aws_creds::profile_region(&get)?.unwrap_or_else(|| "us-east-1".into()),
        };
        let (base, bucket_path) = match &opts.endpoint {
            Some(e) => (e.trim_end_matches('/').to_string(), format!("/{bucket}")),
            None => (
                format!(
                    "{}://{bucket}.s3.{region}.amazonaws.com",
                    if opts.unencrypted { "http" } else { "https" }
                ),
                String::new(),
            ),
        };
        let host = base
            .split_once("://")
            .map(|(_, h)| h)
            .unwrap_or(&base)
            .split('/')
            .next()
            .unwrap_or("")
            .to_string();
        if !matches!(
            opts.restore_tier.as_str(),
            "Expedited" | "Standard" | "Bulk"
        ) {
            return Err(Error::usage(format!(
                "--s3-restore-tier {:?}: use Expedited, Standard or Bulk",
                opts.restore_tier
            )));
        }
        let agent = super::http_agent(
            backend_opts.timeout,
            &backend_opts.tls,
            get("AWS_CA_BUNDLE").map(|f| ("AWS_CA_BUNDLE", f)),
            false,
        )?;
        let keys = super::aws_creds::find(&get)?;
        Ok(S3 {
            agent,
            base,
            host,
            bucket_path,
            bucket: bucket.to_string(),
            prefix,
            region,
            keys,
            opts: opts.clone(),
            min_storage_days: backend_opts.min_storage_days,
            sse: Sse::from_options(&opts.sse)?,
            retry_after: Default::default(),
            lock_enabled: std::sync::OnceLock::new(),
        })
    }

    /// Signs and sends a request. `path` is the encoded path, `query` unencoded pairs.
    fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        extra: &[(&str, String)],
        body: Option<(&Path, &str)>,
        small_body: Option<&[u8]>,
    ) -> Result<Response<Body>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let keys = &self.keys;
        let amz_date = crate::format::time::to_string(now);
        let date = &amz_date[..8];
        let payload_hash = match (body, small_body) {
            (Some((_, h)), _) => h.to_string(),
            (None, Some(b)) => crate::codec::hex(&Sha256::digest(b)),
            (None, None) => EMPTY_SHA256.to_string(),
        };
        let mut q: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
            .collect();
        q.sort();
        let canonical_query = q
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), self.host.clone()),
            ("x-amz-content-sha256".into(), payload_hash.clone()),
            ("x-amz-date".into(), amz_date.clone()),
        ];
        if let Some(t) = &keys.token {
            headers.push(("x-amz-security-token".into(), t.clone()));
        }
        for (k, v) in extra {
            headers.push((k.to_ascii_lowercase(), v.clone()));
        }
        headers.sort();
        let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        let signed = signed.join(";");
        let canonical = format!(
            "{method}\n{path}\n{canonical_query}\n{}\n{signed}\n{payload_hash}",
            headers
                .iter()
                .map(|(k, v)| format!("{k}:{}\n", v.trim()))
                .collect::<String>()
        );
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            crate::codec::hex(&Sha256::digest(canonical.as_bytes()))
        );
        let key = hmac(
            &hmac(
                &hmac(
                    &hmac(format!("AWS4{}", keys.secret).as_bytes(), date),
                    &self.region,
                ),
                "s3",
            ),
            "aws4_request",
        );
        let signature = crate::codec::hex(&hmac(&key, &to_sign));
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            keys.key_id
        );
        let url = if canonical_query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{canonical_query}", self.base)
        };
        let what = format!("{} ({method} {url})", self.describe());
        fn add_headers<B>(
            mut req: ureq::RequestBuilder<B>,
            headers: &[(String, String)],
            auth: &str,
        ) -> ureq::RequestBuilder<B> {
            for (k, v) in headers {
                if k != "host" {
                    req = req.header(k.as_str(), v.as_str());
                }
            }
            req.header("Authorization", auth)
        }
        let with_headers = |req| add_headers(req, &headers, &auth);
        let with_body = |req| add_headers(req, &headers, &auth);
        let r = match method {
            "GET" => with_headers(self.agent.get(&url)).call(),
            "HEAD" => with_headers(self.agent.head(&url)).call(),
            "DELETE" => with_headers(self.agent.delete(&url)).call(),
            "PUT" => {
                let req = with_body(self.agent.put(&url));
                match body {
                    Some((file, _)) => {
                        let f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
                        req.send(f)
                    }
                    None => req.send(small_body.unwrap_or_default()),
                }
            }
            _ => with_body(self.agent.post(&url)).send(small_body.unwrap_or_default()),
        };
        r.map_err(|e| super::transport_error(e, &what))
    }

    fn key_path(&self, name: &str) -> String {
        format!(
            "{}/{}",
            self.bucket_path,
            uri_encode(&format!("{}{name}", self.prefix), true)
        )
    }

    fn bucket_root(&self) -> String {
        if self.bucket_path.is_empty() {
            "/".to_string()
        } else {
            self.bucket_path.clone()
        }
    }

    /// An error for an unexpected answer, with S3's error code and advice for the common
    /// ones.
    fn failure(&self, what: &str, r: &mut Response<Body>) -> Error {
        self.retry_after.note(r);
        let status = r.status().as_u16();
        let body = r
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_default();
        let code = xml_text(&body, "Code").unwrap_or_default();
        let message = xml_text(&body, "Message").unwrap_or_default();
        match code.as_str() {
            "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied" | "ExpiredToken" => {
                Error::usage(format!(
                    "{what}: S3 refused the credentials ({code}: {message}); check \
                     AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the bucket policy"
                ))
            }
            "NoSuchBucket" => Error::usage(format!(
                "{what}: bucket {} does not exist; create it first (check --s3-endpoint-url \
                 and --s3-region-name)",
                self.bucket
            )),
            _ => Error::backend(format!(
                "{what}: HTTP {status}{}",
                if code.is_empty() {
                    String::new()
                } else {
                    format!(" {code}: {message}")
                }
            )),
        }
    }

    /// Uploads `src` (`len` bytes) as a multipart upload: parts of `--s3-multipart-chunk-size`
    /// (the last one shorter), at most `--s3-multipart-max-procs` at a time. A failed
    /// upload is aborted, so that S3 keeps (and bills) none of its parts.
    fn put_multipart(
        &self,
        src: &Path,
        name: &str,
        len: u64,
        headers: &[(&str, String)],
    ) -> Result<()> {
        let what = format!("uploading {name} to {} (multipart)", self.describe());
        let key = self.key_path(name);
        let mut r = self.send("POST", &key, &[("uploads", "")], headers, None, Some(b""))?;
        if !r.status().is_success() {
            return Err(self.failure(&what, &mut r));
        }
        let xml = r
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(|e| Error::backend(format!("{what}: {e}")))?;
        let upload_id = xml_text(&xml, "UploadId")
            .ok_or_else(|| Error::backend(format!("{what}: S3 answered no UploadId")))?;
        let result = self
            .upload_parts(src, len, &key, &upload_id, &what)
            .and_then(|etags| self.complete_multipart(&key, &upload_id, &etags, &what));
        // The retention of the upload's headers, set again on the object: some
        // S3-compatible stores drop it from multipart uploads.
        let result = result.and_then(|()| self.set_retention(&key, &what));
        if result.is_err() {
            // Best effort: the upload failed already, and its error is what to report.
            if let Ok(mut r) = self.send(
                "DELETE",
                &key,
                &[("uploadId", upload_id.as_str())],
                &[],
                None,
                None,
            ) {
                if !r.status().is_success() {
                    crate::log::warn(
                        &self
                            .failure(&format!("aborting {what}"), &mut r)
                            .to_string(),
                    );
                }
            }
        }
        result
    }

    /// Uploads the parts of `src`, `--s3-multipart-max-procs` threads each taking the next
    /// part not yet sent; returns the ETag of every part, in order.
    fn upload_parts(
        &self,
        src: &Path,
        len: u64,
        key: &str,
        upload_id: &str,
        what: &str,
    ) -> Result<Vec<String>> {
        let chunk = self
            .opts
            .multipart_chunk
            .max(MIN_PART)
            .max(len.div_ceil(MAX_PARTS));
        let parts = len.div_ceil(chunk).max(1) as usize;
        let etags = std::sync::Mutex::new(vec![String::new(); parts]);
        let part = |k: usize| -> Result<String> {
            use std::io::{Read, Seek, SeekFrom};
            let start = k as u64 * chunk;
            let size = chunk.min(len - start);
            let mut f = std::fs::File::open(src).map_err(|e| Error::io(src, e))?;
            f.seek(SeekFrom::Start(start))
                .map_err(|e| Error::io(src, e))?;
            let mut buf = Vec::with_capacity(size as usize);
            f.take(size)
                .read_to_end(&mut buf)
                .map_err(|e| Error::io(src, e))?;
            let number = (k + 1).to_string();
            let mut part_headers = Vec::new();
            if self.opts.object_lock_days.is_some() {
                part_headers.push(("content-md5", content_md5(&buf)));
            }
            let mut r = self.send(
                "PUT",
                key,
                &[("partNumber", number.as_str()), ("uploadId", upload_id)],
                &part_headers,
                None,
                Some(&buf),
            )?;
            if !r.status().is_success() {
                return Err(self.failure(&format!("{what}: part {number}"), &mut r));
            }
            r.headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .ok_or_else(|| Error::backend(format!("{what}: part {number} got no ETag")))
        };
        let todo: Vec<usize> = (0..parts).collect();
        super::upload_parts_in_parallel(
            &todo,
            self.opts.multipart_procs,
            part,
            |k, etag| etags.lock().unwrap_or_else(|e| e.into_inner())[k] = etag,
            what,
        )?;
        Ok(etags.into_inner().unwrap_or_else(|e| e.into_inner()))
    }

    /// Completes a multipart upload from the ETags of its parts. S3 may answer 200 and
    /// still report an error in the body.
    fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
        what: &str,
    ) -> Result<()> {
        let mut body = String::from("<CompleteMultipartUpload>");
        for (k, etag) in etags.iter().enumerate() {
            body.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                k + 1,
                etag.replace('&', "&amp;").replace('"', "&quot;")
            ));
        }
        body.push_str("</CompleteMultipartUpload>");
        let mut r = self.send(
            "POST",
            key,
            &[("uploadId", upload_id)],
            &[],
            None,
            Some(body.as_bytes()),
        )?;
        if !r.status().is_success() {
            return Err(self.failure(what, &mut r));
        }
        let answer = r
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(|e| Error::backend(format!("{what}: {e}")))?;
        if answer.contains("<Error>") {
            return Err(Error::backend(format!(
                "{what}: completing the upload failed: {} {}",
                xml_text(&answer, "Code").unwrap_or_default(),
                xml_text(&answer, "Message").unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// HEAD of an object: its size, storage class, restore status, version and Object
    /// Lock retention; `None` if it is not there.
    fn head(&self, name: &str) -> Result<Option<Head>> {
        let what = format!("looking for {name} in {}", self.describe());
        let mut r = self.send("HEAD", &self.key_path(name), &[], &[], None, None)?;
        match r.status().as_u16() {
            200..=299 => {
                let h = |k: &str| {
                    r.headers()
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                let restore = h("x-amz-restore").unwrap_or_default();
                Ok(Some(Head {
                    len: h("content-length")
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                    class: h("x-amz-storage-class").unwrap_or_default(),
                    restore: if restore.contains("ongoing-request=\"true\"") {
                        Restore::Ongoing
                    } else if restore.contains("ongoing-request=\"false\"") {
                        Restore::Done
                    } else {
                        Restore::None
                    },
                    version: h("x-amz-version-id").filter(|v| v != "null"),
                    lock: h("x-amz-object-lock-mode").zip(h("x-amz-object-lock-retain-until-date")),
                }))
            }
            404 => Ok(None),
            _ => Err(self.failure(&what, &mut r)),
        }
    }

    /// The Object Lock headers of an upload, with `--object-lock-days`.
    fn lock_headers(&self) -> Vec<(&'static str, String)> {
        let Some(days) = self.opts.object_lock_days else {
            return Vec::new();
        };
        let until = crate::wall_clock() + i64::from(days) * 86_400;
        let (y, mo, d) = crate::format::time::civil_from_days(until.div_euclid(86_400));
        let s = until.rem_euclid(86_400);
        vec![
            ("x-amz-object-lock-mode", self.opts.object_lock_mode.clone()),
            (
                "x-amz-object-lock-retain-until-date",
                format!(
                    "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
                    s / 3600,
                    s / 60 % 60,
                    s % 60
                ),
            ),
        ]
    }

    /// Deletes up to 1,000 files in one request (quiet: S3 answers with the failures only).
    fn delete_objects(&self, names: &[String]) -> Result<()> {
        let what = format!("deleting {} file(s) from {}", names.len(), self.describe());
        let mut body = String::from(
            "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>",
        );
        for n in names {
            body.push_str("<Object><Key>");
            body.push_str(&xml_escape(&format!("{}{n}", self.prefix)));
            body.push_str("</Key></Object>");
        }
        body.push_str("</Delete>");
        let mut r = self.send(
            "POST",
            &self.bucket_root(),
            &[("delete", "")],
            &[("content-md5", content_md5(body.as_bytes()))],
            None,
            Some(body.as_bytes()),
        )?;
        if !r.status().is_success() {
            return Err(self.failure(&what, &mut r));
        }
        let text = r
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_string()
            .map_err(|e| super::transport_error(e, &what))?;
        let errors: Vec<&str> = text.split("<Error>").skip(1).collect();
        match errors.first() {
            None => Ok(()),
            Some(first) => Err(Error::backend(format!(
                "{what}: {} could not be deleted, the first {}: {} ({})",
                errors.len(),
                xml_text(first, "Key").unwrap_or_default(),
                xml_text(first, "Code").unwrap_or_default(),
                xml_text(first, "Message").unwrap_or_default()
            ))),
        }
    }

    /// Sets the Object Lock retention of `--object-lock-days` on the object at `key`.
    fn set_retention(&self, key: &str, what: &str) -> Result<()> {
        let headers = self.lock_headers();
        let [(_, mode), (_, until)] = headers.as_slice() else {
            return Ok(());
        };
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{mode}</Mode>\
             <RetainUntilDate>{until}</RetainUntilDate></Retention>"
        );
        let mut r = self.send(
            "PUT",
            key,
            &[("retention", "")],
            &[("content-md5", content_md5(body.as_bytes()))],
            None,
            Some(body.as_bytes()),
        )?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(self.failure(
                &format!("{what}: setting its Object Lock retention"),
                &mut r,
            ))
        }
    }

    /// Whether the bucket has Object Lock enabled (asked once; stores that do not know
    /// Object Lock have none).
    fn lock_enabled(&self) -> Result<bool> {
        if let Some(&on) = self.lock_enabled.get() {
            return Ok(on);
        }
        let r = self.send(
            "GET",
            &self.bucket_root(),
            &[("object-lock", "")],
            &[],
            None,
            None,
        );
        let on = match r {
            Ok(mut r) if r.status().is_success() => r
                .body_mut()
                .with_config()
                .limit(1 << 16)
                .read_to_string()
                .is_ok_and(|x| xml_text(&x, "ObjectLockEnabled").as_deref() == Some("Enabled")),
            Ok(_) => false,
            Err(e) => return Err(e),
        };
        Ok(*self.lock_enabled.get_or_init(|| on))
    }

    /// True when the store is AWS itself, whose prices and delays ferrodup knows.
    fn is_aws(&self) -> bool {
        self.opts.endpoint.is_none() || self.host.ends_with(".amazonaws.com")
    }

    /// Asks S3 to restore an archived object (a restore already under way is fine).
    fn request_restore(&self, name: &str) -> Result<()> {
        let body = format!(
            "<RestoreRequest xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Days>{}</Days>\
             <GlacierJobParameters><Tier>{}</Tier></GlacierJobParameters></RestoreRequest>",
            self.opts.restore_days.max(1),
            self.opts.restore_tier
        );
        let what = format!("asking {} to restore {name}", self.describe());
        let mut r = self.send(
            "POST",
            &self.key_path(name),
            &[("restore", "")],
            &[],
            None,
            Some(body.as_bytes()),
        )?;
        match r.status().as_u16() {
            200..=299 | 409 => Ok(()),
            _ => Err(self.failure(&what, &mut r)),
        }
    }
}

/// The minimum storage period in days of an archive class, and its storage price in USD
/// per GB-month (AWS's, us-east-1 list prices).
fn minimum_storage(class: &str) -> Option<(u32, f64)> {
    match class {
        "GLACIER" => Some((90, 0.0036)),
        "GLACIER_IR" => Some((90, 0.004)),
        "DEEP_ARCHIVE" => Some((180, 0.00099)),
        _ => None,
    }
}

/// How long AWS says a restore of `class` at `tier` takes, and its retrieval price in USD
/// per GB (us-east-1 list prices, without the per-request fees).
fn thaw_terms(class: &str, tier: &str) -> (&'static str, Option<f64>) {
    match (class, tier) {
        ("DEEP_ARCHIVE", "Bulk") => ("within 48 hours", Some(0.0025)),
        ("DEEP_ARCHIVE", _) => ("within 12 hours", Some(0.02)),
        (_, "Expedited") => ("1-5 minutes", Some(0.03)),
        (_, "Bulk") => ("5-12 hours", Some(0.0)),
        _ => ("3-5 hours", Some(0.01)),
    }
}

/// What a HEAD of an object tells.
struct Head {
    len: u64,
    /// Empty for STANDARD.
    class: String,
    restore: Restore,
    /// The current version, in a versioned bucket.
    version: Option<String>,
    /// Object Lock mode and retain-until date.
    lock: Option<(String, String)>,
}

/// The `Content-MD5` header of a body held in memory.
fn content_md5(body: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(<md5::Md5 as md5::Digest>::digest(body))
}

/// The base64 form of a hex digest (as `Content-MD5` takes it).
fn base64_of_hex(hex: &str) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Restore {
    None,
    Ongoing,
    Done,
}

impl Backend for S3 {
    fn list(&self) -> Result<Vec<String>> {
        Ok(self.list_details()?.into_iter().map(|l| l.name).collect())
    }

    /// ListObjectsV2 gives each object's size, ETag and storage class: objects in an
    /// archive class (GLACIER, DEEP_ARCHIVE) may need a restore before a read; the ETag is
    /// the content's MD5 unless the object was uploaded in parts (`-N` suffix).
    fn list_details(&self) -> Result<Vec<super::Listed>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q = vec![("list-type", "2"), ("prefix", self.prefix.as_str())];
            if let Some(t) = &token {
                q.push(("continuation-token", t.as_str()));
            }
            let what = format!("listing {}", self.describe());
            let mut r = self.send("GET", &self.bucket_root(), &q, &[], None, None)?;
            if !r.status().is_success() {
                return Err(self.failure(&what, &mut r));
            }
            let xml = r
                .body_mut()
                .with_config()
                .limit(256 << 20)
                .read_to_string()
                .map_err(|e| Error::backend(format!("{what}: {e}")))?;
            for part in xml.split("<Contents>").skip(1) {
                let Some(key) = xml_text(part, "Key") else {
                    continue;
                };
                let Some(name) = key.strip_prefix(&self.prefix) else {
                    continue;
                };
                if name.is_empty() || name.contains('/') {
                    continue;
                }
                // With SSE-KMS the ETag is not the content's MD5.
                let md5 = xml_text(part, "ETag")
                    .filter(|_| !matches!(self.sse, Some(Sse::Kms { .. })))
                    .map(|e| e.trim_matches('"').to_ascii_lowercase())
                    .filter(|e| e.len() == 32 && e.bytes().all(|b| b.is_ascii_hexdigit()));
                let class = xml_text(part, "StorageClass").unwrap_or_default();
                let (min_days, usd) = match minimum_storage(&class) {
                    Some((days, usd)) => (Some(self.min_storage_days.unwrap_or(days)), Some(usd)),
                    None => (None, None),
                };
                out.push(super::Listed {
                    name: name.to_string(),
                    size: xml_text(part, "Size").and_then(|n| n.parse().ok()),
                    md5,
                    readable: Some(!is_cold(&class)),
                    modified: xml_text(part, "LastModified")
                        .as_deref()
                        .and_then(super::listing_time),
                    min_days,
                    usd_per_gb_month: usd.filter(|_| self.is_aws()),
                });
            }
            if xml_text(&xml, "IsTruncated").as_deref() != Some("true") {
                break;
            }
            token = xml_text(&xml, "NextContinuationToken");
            if token.is_none() {
                break;
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn lists_md5(&self) -> bool {
        !matches!(self.sse, Some(Sse::Kms { .. }))
    }

    fn minimum_storage(&self) -> bool {
        true
    }

    fn may_thaw(&self) -> bool {
        true
    }

    fn check_deletable(&self, names: &[String]) -> Result<()> {
        if !self.lock_enabled()? {
            return Ok(());
        }
        let now = crate::wall_clock();
        let mut locked: Vec<(&String, String, String)> = Vec::new();
        for name in names {
            if let Some(Head {
                lock: Some((mode, until)),
                ..
            }) = self.head(name)?
            {
                if super::listing_time(&until).is_some_and(|t| t > now) {
                    locked.push((name, mode, until));
                }
            }
        }
        let Some(last) = locked.iter().max_by(|a, b| a.2.cmp(&b.2)) else {
            return Ok(());
        };
        Err(Error::input(format!(
            "{} file(s) to delete on {} are locked by S3 Object Lock ({} retention) until \
             {} at the latest ({}): nothing was deleted; remove them after that date",
            locked.len(),
            self.describe(),
            last.1,
            last.2,
            last.0
        )))
    }

    /// One listing, and a HEAD of each archived file for its restore status.
    fn plan_reads(&self, names: &[String]) -> Result<Vec<super::PlannedRead>> {
        let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        let aws = self.is_aws();
        let store = self.describe();
        let mut out = Vec::new();
        for l in self.list_details()? {
            if !wanted.contains(l.name.as_str()) {
                continue;
            }
            let state = if l.readable != Some(false) {
                super::ReadState::Now
            } else {
                match self.head(&l.name)?.map(|h| (h.class, h.restore)) {
                    Some((_, Restore::Done)) => super::ReadState::Now,
                    Some((_, Restore::Ongoing)) => super::ReadState::Thawing { ready_in: None },
                    Some((class, Restore::None)) => {
                        let (wait, usd) = thaw_terms(&class, &self.opts.restore_tier);
                        super::ReadState::Frozen {
                            wait: if aws {
                                wait.to_string()
                            } else {
                                format!("as the provider documents it (AWS: {wait})")
                            },
                            usd_per_gb: usd.filter(|_| aws),
                        }
                    }
                    None => continue,
                }
            };
            out.push(super::PlannedRead {
                name: l.name,
                store: store.clone(),
                size: l.size,
                state,
            });
        }
        Ok(out)
    }

    fn get(&self, name: &str, dest: &Path) -> Result<()> {
        let what = format!("downloading {name} from {}", self.describe());
        let mut wait = Duration::from_secs(2);
        let mut waited = false;
        loop {
            let mut r = self.send("GET", &self.key_path(name), &[], &[], None, None)?;
            match r.status().as_u16() {
                200..=299 => {
                    super::save_body(&mut r, dest, &what)?;
                    if waited {
                        crate::live::thawed();
                        crate::log::notice(&format!("{name} is restored and downloaded"));
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
                403 => {
                    let e = self.failure(&what, &mut r);
                    if !e.to_string().contains("InvalidObjectState") {
                        return Err(e);
                    }
                    // Archived: make sure a restore is under way, then wait for it.
                    if self.head(name)?.is_some_and(|h| h.restore == Restore::None) {
                        self.request_restore(name)?;
                    }
                    crate::live::next_check(wait);
                    crate::log::notice(&format!(
                        "{name} is archived; waiting for S3 to restore it (looking again in {} s)",
                        wait.as_secs()
                    ));
                    waited = true;
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(60));
                }
                _ => return Err(self.failure(&what, &mut r)),
            }
        }
    }

    fn put(&self, src: &Path, name: &str) -> Result<()> {
        let class = match (&self.opts.class, &self.opts.volume_class) {
            (Some(c), _) => c.clone(),
            (None, Some(c)) if name.contains(".difftar") => c.clone(),
            _ => "STANDARD".to_string(),
        };
        let mut headers = vec![("x-amz-storage-class", class)];
        if let Some(sse) = &self.sse {
            headers.extend(sse.headers());
        }
        headers.extend(self.lock_headers());
        let len = std::fs::metadata(src).map_err(|e| Error::io(src, e))?.len();
        let chunk = self.opts.multipart_chunk;
        if chunk > 0 && len >= chunk {
            return self.put_multipart(src, name, len, &headers);
        }
        if self.opts.object_lock_days.is_some() {
            // S3 takes a locked upload only with a checksum of its body.
            let md5 = crate::codec::file_digest::<md5::Md5>(src)?;
            headers.push(("content-md5", base64_of_hex(&md5)));
        }
        let hash = crate::codec::file_digest::<Sha256>(src)?;
        let what = format!("uploading {name} to {}", self.describe());
        let mut r = self.send(
            "PUT",
            &self.key_path(name),
            &[],
            &headers,
            Some((src, &hash)),
            None,
        )?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(self.failure(&what, &mut r))
        }
    }

    /// With Object Lock on the bucket (so versioning), the current version itself is
    /// deleted: a plain DELETE would only hide it behind a delete marker.
    fn delete(&self, name: &str) -> Result<()> {
        let what = format!("deleting {name} from {}", self.describe());
        let mut query = Vec::new();
        let version;
        if self.lock_enabled()? {
            match self.head(name)? {
                Some(head) => version = head.version,
                None => return Ok(()),
            }
            if let Some(v) = &version {
                query.push(("versionId", v.as_str()));
            }
        }
        let mut r = self.send("DELETE", &self.key_path(name), &query, &[], None, None)?;
        match r.status().as_u16() {
            200..=299 | 404 => Ok(()),
            _ => Err(self.failure(&what, &mut r)),
        }
    }

    /// Up to 1,000 files per DeleteObjects request; in a bucket with Object Lock (so
    /// versioning), one at a time, each file's version itself.
    fn delete_many(&self, names: &[String]) -> Result<()> {
        if self.lock_enabled()? {
            return names.iter().try_for_each(|n| self.delete(n));
        }
        for chunk in names.chunks(1000) {
            self.delete_objects(chunk)?;
        }
        Ok(())
    }

    fn size(&self, name: &str) -> Result<Option<u64>> {
        Ok(self.head(name)?.map(|h| h.len))
    }

    /// Volumes stored in an archive class (as this run would store them).
    fn is_cold(&self, name: &str) -> bool {
        name.contains(".difftar") && self.opts.volume_class.as_deref().is_some_and(is_cold)
    }

    /// Asks S3 to restore every archived file the restore will read, all at once.
    fn prepare_download(&self, names: &[String]) -> Result<()> {
        let mut asked = 0;
        for name in names {
            if let Some(Head {
                class,
                restore: Restore::None,
                ..
            }) = self.head(name)?
            {
                if is_cold(&class) {
                    self.request_restore(name)?;
                    asked += 1;
                }
            }
        }
        if asked > 0 {
            crate::live::thaw_asked(asked);
            crate::log::notice(&format!(
                "asked {} to restore {asked} archived file(s) ({} tier, {} day(s)); the \
                 restore starts as they arrive",
                self.describe(),
                self.opts.restore_tier,
                self.opts.restore_days.max(1)
            ));
        }
        Ok(())
    }

    fn take_retry_after(&self) -> Option<Duration> {
        self.retry_after.take()
    }

    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix.trim_end_matches('/'))
            .trim_end_matches('/')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published SigV4 example (GET object with a range, "Examples" of the S3
    /// signature documentation) gives this signing key chain result.
    #[test]
    fn signing_key_matches_aws_example() {
        let key = hmac(
            &hmac(
                &hmac(
                    &hmac(b"AWS4wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524"),
                    "us-east-1",
                ),
                "s3",
            ),
            "aws4_request",
        );
        let sts = "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
                   7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972";
        assert_eq!(
            crate::codec::hex(&hmac(&key, sts)),
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn encryption_options_read_as_duplicity_reads_them() {
        let o = |aes, kms, key: Option<&str>, grant: Option<&str>| SseOptions {
            aes,
            kms,
            kms_key_id: key.map(str::to_string),
            kms_grant: grant.map(str::to_string),
        };
        assert_eq!(
            Sse::from_options(&o(false, false, None, None)).unwrap(),
            None
        );
        assert_eq!(
            Sse::from_options(&o(true, true, Some("k"), None)).unwrap(),
            Some(Sse::Aes256)
        );
        assert_eq!(
            Sse::from_options(&o(false, true, Some("k"), Some("id=g"))).unwrap(),
            Some(Sse::Kms {
                key_id: "k".into(),
                grant: Some("id=g".into())
            })
        );
        assert_eq!(
            Sse::from_options(&o(false, false, Some("k"), None)).unwrap(),
            None
        );
        let e = Sse::from_options(&o(false, true, None, None)).unwrap_err();
        assert!(e.to_string().contains("--s3-kms-key-id"), "{e}");
    }

    #[test]
    fn xml_fields() {
        let x = "<a><Key>x &amp; y</Key><IsTruncated>false</IsTruncated></a>";
        assert_eq!(xml_text(x, "Key").as_deref(), Some("x & y"));
        assert_eq!(xml_text(x, "IsTruncated").as_deref(), Some("false"));
        assert_eq!(xml_text(x, "Nope"), None);
    }
}
