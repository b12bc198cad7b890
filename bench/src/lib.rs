//! # lumadb-bench: load generation and benchmarks
//!
//! Owns `lumadb bench`: today the engine benchmark (`lumadb bench engine`,
//! in the spirit of RocksDB's db_bench, with an optional side-by-side run
//! against RocksDB itself); the network load generator comes with the
//! server. Latency is recorded per operation in HdrHistograms.
//!
//! It must never be a dependency of the server's data path: nothing in
//! `engine`, `shard` or `net` depends on this crate.

pub mod engine;
mod error;
#[cfg(feature = "rocksdb")]
mod rocks;

pub use error::BenchError;
