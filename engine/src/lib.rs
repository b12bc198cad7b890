//! # lumadb-engine: the per-shard storage engine
//!
//! An LSM-tree storage engine that one CPU core owns outright: a WAL with
//! group commit, memtables, SSTables with bloom filters and block
//! compression, leveled/universal/FIFO compaction, block and row caches,
//! snapshots, range deletes, per-record expiry, and named keyspaces sharing
//! one WAL. One [`Engine`] instance is one shard's data.
//!
//! **What it is not.** The engine is single-threaded by design: its state is
//! `Rc`/`RefCell`, it is `!Send`, and it never spawns threads or tasks of its
//! own. It knows nothing of sockets, protocols, executors or glommio: all
//! I/O goes through the [`storage::Storage`] trait (glommio `DmaFile` in
//! production, supplied by the `shard` crate; [`storage::mem::MemStorage`]
//! in tests), and background work (flush, compaction, interval syncs) is
//! exposed as futures that the runtime drives in its own low-priority task
//! queue. It must never depend on `lumadb-shard`, `lumadb-net` or glommio.

pub mod batch;
pub mod cache;
pub mod coding;
pub mod compaction;
pub mod config;
pub mod db;
pub mod error;
pub mod key;
pub mod manifest;
pub mod memtable;
pub mod options;
pub mod sst;
pub mod storage;
pub mod sync;
pub mod version;
pub mod wal;

pub use batch::{KeyspaceId, WriteBatch};
pub use db::{Engine, Snapshot};
pub use error::{Error, Result};
pub use key::SeqNo;
pub use options::{CompactionStyle, Compression, EngineOptions, KeyspaceOptions, SyncMode};
