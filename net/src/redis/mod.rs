//! The Redis data model and command execution on one shard.
//!
//! - [`keys`]: how keys, collections and expiries are laid out in the
//!   engine.
//! - [`store`]: the per-shard store over the engine: pending writes
//!   visible at once, group commit, key locks.
//! - [`db`]: the helpers every command uses (type checks, counters,
//!   expiry, WATCH stamps).
//! - [`blocking`]: blocked clients waiting for keys on this shard.
//! - [`prefetch`]: hints that start loading what a batch will read.
//! - [`cmd`]: the command families; [`exec`] dispatches one command whose
//!   keys all live on this shard.
//!
//! Routing (which shard runs what), MULTI/EXEC across shards and the
//! connection loop live in the `session` and `service` modules.

pub mod blocking;
pub mod cmd;
pub mod db;
pub mod exec;
pub mod keys;
pub mod prefetch;
pub mod store;
#[cfg(test)]
pub(crate) mod testkit;
