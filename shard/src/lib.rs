//! # lumadb-shard: the thread-per-core runtime
//!
//! Everything that makes one `lumadb` process run as a set of independent
//! shards: the glommio executors (one per core, pinned), the production
//! storage backend ([`storage::DmaStorage`], O_DIRECT files through
//! io_uring), the drivers that run an engine's background work (flush,
//! compaction, interval WAL syncs) in low-priority task queues, and the
//! process configuration ([`config::Config`]) that shards start with.
//! Routing, cross-core queues and scatter-gather arrive with the server.
//!
//! **What it is not.** This crate owns glommio: executors, `DmaFile` and
//! the channel mesh stay here and in thin drivers, so the engine and the
//! protocol codecs remain plain Rust. It must never parse a wire protocol
//! (that is `lumadb-net`) nor know SSTable, WAL or manifest formats (that is
//! `lumadb-engine`, reached only through its public API).

pub mod config;
pub mod driver;
pub mod error;
pub mod storage;
