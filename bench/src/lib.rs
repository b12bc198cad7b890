//! # lumadb-bench: load generation and benchmarks
//!
//! Owns `lumadb bench`: the network load generator (`lumadb bench --target
//! HOST:PORT`, module [`net`]: RESP, PostgreSQL and HTTP drivers, closed
//! and open loop with coordinated-omission correction, YCSB workloads,
//! result files and plots), and the engine benchmark (`lumadb bench
//! engine`, in the spirit of RocksDB's db_bench, with an optional
//! side-by-side run against RocksDB itself). Latency is recorded per
//! operation in HdrHistograms.
//!
//! The load generator does not depend on its target being LumaDB: it
//! speaks the protocols as any client would. It runs on LumaDB's own
//! thread-per-core pieces (glommio executors, the `shard::uring` network
//! ring) so that the generator is not the bottleneck.
//!
//! It must never be a dependency of the server's data path: nothing in
//! `engine`, `shard` or `net` depends on this crate.

pub mod engine;
mod error;
pub mod net;
#[cfg(feature = "rocksdb")]
mod rocks;

pub use error::BenchError;
