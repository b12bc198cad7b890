//! # lumadb-shard: the thread-per-core runtime
//!
//! Everything that makes one `lumadb` process run as a set of independent
//! shards: the glommio executors (one per core, pinned; [`runtime`]),
//! the data
//! directory and its shard count ([`datadir`]), the cross-shard request
//! queues ([`router`]), the network driver seam the protocol layer reads
//! and writes through ([`conn`]), the stall detector ([`stall`]), the
//! production storage backend ([`storage::DmaStorage`], O_DIRECT files
//! through io_uring), the drivers that run an engine's background work
//! (flush, compaction, interval WAL syncs) in low-priority task queues,
//! and the process configuration ([`config::Config`]).
//! [`logging::Logging`] writes the server's log files off the executors.
//!
//! **What it is not.** This crate owns glommio: executors, `DmaFile` and
//! the channel mesh stay here and in thin drivers, so the engine and the
//! protocol codecs remain plain Rust. It must never parse a wire protocol
//! (that is `lumadb-net`) nor know SSTable, WAL or manifest formats (that is
//! `lumadb-engine`, reached only through its public API).

pub mod config;
pub mod conn;
pub mod datadir;
pub mod driver;
pub mod error;
pub mod logging;
pub mod router;
pub mod runtime;
pub mod stall;
pub mod storage;
pub mod uring;
