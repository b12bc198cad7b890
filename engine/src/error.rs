//! The engine's error type: every operating failure is a variant with the
//! facts an operator needs (which file, which offset, what was expected).

use std::fmt;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong. Disk, input and corruption failures are values of this
/// enum; broken invariants are `assert!`s, never variants.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O call failed on a named file.
    #[error("I/O error on {file}: {op}: {cause}")]
    Io {
        file: String,
        op: &'static str,
        /// The OS error; part of this error's message, so not a `source()`.
        cause: std::io::Error,
    },

    /// Stored bytes do not match their checksum.
    #[error("checksum mismatch in {file} at offset {offset}: expected {expected:#018x}, found {actual:#018x}")]
    ChecksumMismatch {
        file: String,
        offset: u64,
        expected: u64,
        actual: u64,
    },

    /// Stored bytes are structurally invalid (bad magic, impossible length, ...).
    #[error("corruption in {file} at offset {offset}: {reason}")]
    Corruption { file: String, offset: u64, reason: String },

    /// A file was written by a format version this build does not read.
    #[error("{file} has format version {found}; this build reads version {supported}")]
    UnsupportedVersion { file: String, found: u32, supported: u32 },

    /// A configuration key is missing, malformed or out of range.
    #[error("invalid configuration: {key} = {value}: {reason}")]
    InvalidConfig { key: String, value: String, reason: String },

    /// A caller passed an argument the engine cannot accept.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// No keyspace of that name exists.
    #[error("no keyspace named {0:?}")]
    NoSuchKeyspace(String),

    /// An earlier write or fsync failed, so the engine refuses all further
    /// writes (fail-stop). The fsync is never retried: after a failed fsync
    /// the kernel may have dropped the dirty pages, so a retry that
    /// "succeeds" proves nothing.
    #[error("engine is read-only after a storage failure: {cause}")]
    Poisoned { cause: String },

    /// The engine was shut down.
    #[error("engine is closed")]
    Closed,
}

impl Error {
    /// Shorthand for an I/O error on `file`.
    pub fn io(file: impl fmt::Display, op: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            file: file.to_string(),
            op,
            cause: source,
        }
    }

    /// Shorthand for a structural corruption.
    pub fn corruption(file: impl fmt::Display, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corruption {
            file: file.to_string(),
            offset,
            reason: reason.into(),
        }
    }

    /// True for errors that mean stored data is damaged.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::ChecksumMismatch { .. } | Error::Corruption { .. } | Error::UnsupportedVersion { .. }
        )
    }
}
