//! # lumadb-shard: the thread-per-core runtime
//!
//! Everything that makes one `lumadb` process run as a set of independent
//! shards: the glommio executors (one per core, pinned), placement of
//! shards on cores, routing a key to its owner (`xxh3(key) → shard`), the
//! bounded cross-core queues requests travel over, per-shard state, and
//! scatter-gather across shards. It also reads the process configuration
//! ([`config::Config`]) that the shards are started with.
//!
//! **What it is not.** This crate owns glommio: executors, `DmaFile` and
//! the channel mesh stay here and in thin drivers, so the engine and the
//! protocol codecs remain plain Rust. It must never parse a wire protocol
//! (that is `lumadb-net`) nor know SSTable, WAL or manifest formats (that is
//! `lumadb-engine`, reached only through its public API).

pub mod config;
pub mod error;
