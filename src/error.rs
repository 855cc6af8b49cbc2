//! Errors: each says what went wrong, with which file or setting, and what to do; each kind
//! has its own exit status (documented in the README).

use std::path::Path;

/// ferrodup's error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command line or option value.
    #[error("{0}")]
    Usage(String),
    /// Bad user input: a source that is not a directory, an existing destination, a time
    /// before the first backup, no backup at the target...
    #[error("{0}")]
    Input(String),
    /// Backup data that is missing, truncated or corrupt.
    #[error("{0}")]
    Corrupt(String),
    /// A storage backend failed.
    #[error("{0}")]
    Backend(String),
    /// A local file-system error.
    #[error("{0}")]
    Io(String),
    /// Something this version cannot do yet.
    #[error("{0}")]
    Unsupported(String),
}

impl Error {
    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }
    pub fn input(msg: impl Into<String>) -> Self {
        Error::Input(msg.into())
    }
    pub fn corrupt(msg: impl Into<String>) -> Self {
        Error::Corrupt(msg.into())
    }
    pub fn backend(msg: impl Into<String>) -> Self {
        Error::Backend(msg.into())
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
        Error::Io(format!("{}: {e}{hint}", path.display()))
    }

    /// The same kind of error with its message rewritten (to add context).
    pub fn reword(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            Error::Usage(m) => Error::Usage(f(m)),
            Error::Input(m) => Error::Input(f(m)),
            Error::Corrupt(m) => Error::Corrupt(f(m)),
            Error::Backend(m) => Error::Backend(f(m)),
            Error::Io(m) => Error::Io(f(m)),
            Error::Unsupported(m) => Error::Unsupported(f(m)),
        }
    }

    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Input(_) => 3,
            Error::Corrupt(_) => 4,
            Error::Backend(_) => 5,
            Error::Io(_) => 6,
            Error::Unsupported(_) => 7,
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
