//! # lumadb-shard: the thread-per-core runtime
//!
//! Owns glommio: executors, placement, the production storage backend
//! ([`storage::DmaStorage`], O_DIRECT files through io_uring), and the
//! drivers that run an engine's background work (flush, compaction,
//! interval WAL syncs) in low-priority task queues.
//!
//! It must never parse a wire protocol, and never know a storage format:
//! the engine's formats stay behind `lumadb-engine`, the protocols in
//! `lumadb-net`.

pub mod storage;
pub mod driver;
