//! The shard crate's error type.

use std::path::PathBuf;

/// Why a configuration file could not be used. Every variant names the
/// file; parse errors also carry the line and column they point at.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, a directory).
    #[error("{}: cannot read configuration file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file is larger than any sensible configuration.
    #[error("{}: configuration file is {size} bytes; at most {limit} are read", path.display())]
    TooLarge { path: PathBuf, size: u64, limit: u64 },

    /// The file is not valid TOML, or a key is unknown or of the wrong type.
    #[error("{}{}: {message}{}", path.display(), location(*line, *column), excerpt(*line, source_line))]
    Parse {
        path: PathBuf,
        /// 1-based line of the offending text, when the parser knows it.
        line: Option<usize>,
        /// 1-based column (in characters) of the offending text.
        column: Option<usize>,
        message: String,
        /// The offending line as written, for the error message.
        source_line: Option<String>,
    },

    /// Every key parsed, but a value is out of its allowed range or
    /// contradicts another key.
    #[error("{}: {source}", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: lumadb_engine::Error,
    },
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(": line {line}, column {column}"),
        (Some(line), None) => format!(": line {line}"),
        _ => String::new(),
    }
}

fn excerpt(line: Option<usize>, source_line: &Option<String>) -> String {
    match (line, source_line) {
        (Some(line), Some(text)) => format!("\n  {line} | {text}"),
        _ => String::new(),
    }
}

fn shard_count(n: usize) -> String {
    if n == 1 {
        "1 shard".to_string()
    } else {
        format!("{n} shards")
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The data directory cannot be used.
    #[error("{}: {message}", path.display())]
    DataDir { path: PathBuf, message: String },

    /// The data directory was written with another shard count.
    #[error(
        "{}: this data directory holds {}, not the {requested} asked for; \
         start with --shards {recorded} (resharding is not supported yet) or use another data directory",
        path.display(),
        shard_count(*recorded)
    )]
    ShardCountMismatch {
        path: PathBuf,
        recorded: usize,
        requested: usize,
    },

    /// The CPU layout asked for cannot be had.
    #[error("placement: {0}")]
    Placement(String),

    /// RLIMIT_MEMLOCK is below what the io_uring buffers of all shards need.
    #[error(
        "io_uring needs {needed_bytes} bytes of locked memory for {shards} shards, but the locked-memory \
         limit (RLIMIT_MEMLOCK) is {limit_bytes} bytes: raise it with `ulimit -l unlimited` in the shell, \
         LimitMEMLOCK=infinity in the systemd unit (tuning/deploy/lumadb.service), or a memlock line in \
         /etc/security/limits.d (tuning/deploy/lumadb-limits.conf); or run fewer shards (--shards)"
    )]
    LockedMemory {
        shards: usize,
        needed_bytes: u64,
        limit_bytes: u64,
    },

    /// io_uring cannot be used on this host.
    #[error(
        "io_uring is not available: {0}; LumaDB needs Linux 5.8 or later with io_uring enabled \
         (sysctl kernel.io_uring_disabled = 0; container runtimes may block io_uring_setup in their \
         seccomp profile)"
    )]
    IoUring(String),

    /// A listener could not bind.
    #[error("{0}")]
    Listen(std::io::Error),

    /// A helper thread (the stall log) could not be started.
    #[error("cannot start the {name} thread: {source}")]
    Thread {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// A shard failed to start or failed while running.
    #[error("shard {shard}: {message}")]
    Shard { shard: usize, message: String },
}

/// Why the server's logging could not be set up or changed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log directory could not be created.
    #[error("{}: cannot create log directory: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A log file could not be opened (at start or on reopen).
    #[error("{}: cannot open log file: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The writer thread could not be started.
    #[error("cannot start the log writer thread: {0}")]
    Spawn(#[source] std::io::Error),

    #[error("invalid log level `{level}`: expected one of trace, debug, info, warn, error, off")]
    InvalidLevel { level: String },

    /// Another global subscriber is already installed.
    #[error("a global log subscriber is already installed")]
    AlreadyInstalled,

    /// The log writer thread has stopped.
    #[error("the log writer thread has stopped")]
    WriterStopped,

    /// The level filter could not be reloaded (its subscriber is gone).
    #[error("cannot change the log level: {0}")]
    Reload(String),
}
