//! Command families. Each `run` answers `None` for names it does not own.

pub mod hash;
pub mod keyspace;
pub mod list;
pub mod set;
pub mod strings;
pub mod zset;
pub mod zset_ops;
