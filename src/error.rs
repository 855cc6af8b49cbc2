//! Errors: each says what went wrong, with which file or setting, and what to do. Each has
//! a kind (what sort of failure, which the retry logic and callers look at) and the exit
//! status duplicity 3.2.1 gives the same failure (its `log.ErrorCode`, measured against the
//! real duplicity; the README has the table).

use std::path::Path;

/// What sort of failure an error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Bad command line or option value.
    Usage,
    /// Bad user input: a source that is not a directory, an existing destination, a time
    /// before the first backup, no backup at the target...
    Input,
    /// Backup data that is missing, truncated or corrupt.
    Corrupt,
    /// A storage backend failed.
    Backend,
    /// A local file-system error.
    Io,
    /// Something this version cannot do yet.
    Unsupported,
}

/// duplicity's exit statuses (`log.ErrorCode`) that ferrodup gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// A fatal error duplicity gives no code of its own, such as a missing volume.
    Generic = 1,
    HostnameMismatch = 3,
    RestorePathExists = 11,
    FilePrefixError = 14,
    GlobbingError = 15,
    RedundantInclusion = 16,
    IncWithoutSigs = 17,
    RestorePathNotFound = 19,
    MismatchedHash = 21,
    /// A volume without the signature of the --sign-key key.
    UnsignedVolume = 22,
    /// duplicity 3.2.1 reports every command-line error (argparse's too) this way, as well
    /// as a held lock and a missing source.
    UserError = 23,
    /// An exception duplicity does not catch: unreadable data, a local I/O error, no backup
    /// chain at the target, an invalid regular expression.
    Exception = 30,
    GpgFailed = 31,
    NotImplemented = 33,
    /// A Swift or pca login that failed or could not reach its server.
    ConnectionFailed = 38,
    SourcePathMismatch = 42,
    /// `--s3-use-server-side-kms-encryption` without `--s3-kms-key-id`.
    S3KmsNoId = 49,
    BackendError = 50,
    BackendPermissionDenied = 51,
    BackendNotFound = 52,
    BackendNoSpace = 53,
    RedundantFilter = 70,
    TrailingFilter = 71,
    AbsoluteFilesFrom = 72,
    EmptyFilesFrom = 73,
}

/// ferrodup's error type.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{msg}")]
pub struct Error {
    kind: Kind,
    code: Code,
    msg: String,
}

impl Error {
    /// An error of `kind` with the exit status duplicity gives that sort of failure.
    pub fn new(kind: Kind, msg: impl Into<String>) -> Self {
        let code = match kind {
            Kind::Usage | Kind::Input => Code::UserError,
            Kind::Corrupt | Kind::Io => Code::Exception,
            Kind::Backend => Code::BackendError,
            Kind::Unsupported => Code::NotImplemented,
        };
        Error {
            kind,
            code,
            msg: msg.into(),
        }
    }
    pub fn usage(msg: impl Into<String>) -> Self {
        Error::new(Kind::Usage, msg)
    }
    pub fn input(msg: impl Into<String>) -> Self {
        Error::new(Kind::Input, msg)
    }
    pub fn corrupt(msg: impl Into<String>) -> Self {
        Error::new(Kind::Corrupt, msg)
    }
    pub fn backend(msg: impl Into<String>) -> Self {
        Error::new(Kind::Backend, msg)
    }

    /// The same error with duplicity's specific status for it.
    pub fn with_code(self, code: Code) -> Self {
        Error { code, ..self }
    }

    /// A local I/O error on `path`, with advice for the common causes.
    pub fn io(path: &Path, e: std::io::Error) -> Self {
        let hint = match e.raw_os_error() {
            Some(libc::ENOSPC) => ": the disk is full; free space or use --tempdir elsewhere",
            Some(libc::EACCES) | Some(libc::EPERM) => {
                ": permission denied; check its owner and mode"
            }
            Some(libc::EROFS) => ": read-only file system",
            _ => "",
        };
        Error::new(Kind::Io, format!("{}: {e}{hint}", path.display()))
    }

    /// The same error with its message rewritten (to add context).
    pub fn reword(self, f: impl FnOnce(String) -> String) -> Self {
        Error {
            msg: f(self.msg),
            ..self
        }
    }

    /// This error as an `io::Error`, for `Read` and `Write` implementations; [`Error::from_io`]
    /// gets it back whole.
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }

    /// The error an `io::Error` from [`Error::into_io`] carries, or the `io::Error` itself.
    pub fn from_io(e: std::io::Error) -> std::result::Result<Error, std::io::Error> {
        if !e.get_ref().is_some_and(|r| r.is::<Error>()) {
            return Err(e);
        }
        let kind = e.kind();
        match e.into_inner() {
            Some(inner) => inner
                .downcast::<Error>()
                .map(|b| *b)
                .map_err(|other| std::io::Error::new(kind, other)),
            None => Err(kind.into()),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn code(&self) -> Code {
        self.code
    }

    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        self.code as i32
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_kind_until_a_site_names_one() {
        assert_eq!(Error::usage("x").exit_code(), 23);
        assert_eq!(Error::backend("x").exit_code(), 50);
        let e = Error::input("dest").with_code(Code::RestorePathExists);
        assert_eq!((e.kind(), e.exit_code()), (Kind::Input, 11));
        let e = e.reword(|m| format!("restore: {m}"));
        assert_eq!(
            (e.to_string().as_str(), e.exit_code()),
            ("restore: dest", 11)
        );
    }
}
