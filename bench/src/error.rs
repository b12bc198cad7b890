//! Errors of the benchmarks.

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(
        "unknown workload {0:?}; known: fillseq, fillrandom, overwrite, readrandom, readseq, seekrandom, deleterandom"
    )]
    UnknownWorkload(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Engine(#[from] lumadb_engine::Error),
    #[error("cannot write {path}: {cause}")]
    Io {
        path: String,
        /// Part of the message, so not a `source()`.
        cause: std::io::Error,
    },
    #[error("cannot start the glommio executor: {0} (io_uring must be available and `ulimit -l` at least 1 MiB)")]
    Executor(String),
    #[error("this build has no RocksDB; rebuild with `cargo build --release --features rocksdb`")]
    NoRocksdb,
    #[error("rocksdb: {0}")]
    Rocksdb(String),
    #[error("cannot connect to {target}: {cause}")]
    Connect {
        target: String,
        /// Part of the message, so not a `source()`.
        cause: std::io::Error,
    },
    /// The target answered something the driver cannot use.
    #[error("{0}")]
    Protocol(String),
    #[error("cannot read {path}: {message}")]
    Input { path: String, message: String },
    /// Another core failed first; its error is the one reported.
    #[error("the run was stopped because another load core failed")]
    Aborted,
}
