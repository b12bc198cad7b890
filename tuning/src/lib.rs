//! # lumadb-tuning: topology discovery and host tuning
//!
//! Two things a LumaDB server needs from the machine it runs on:
//!
//! - [`topology`]: which CPUs the process may use, their physical cores
//!   and NUMA nodes (from hwloc, through `hwlocality`, with a fallback to
//!   `sched_getaffinity` and `/sys/devices/system`), which CPU each shard
//!   is pinned to ([`Topology::select`]), and NUMA-local memory for a
//!   shard's thread ([`topology::bind_memory_to_node`]).
//! - [`tune`]: `lumadb tune`, which checks the host's settings against
//!   what LumaDB wants (NVMe queue settings and polling, NVMe interrupt
//!   affinity, the CPU governor, transparent huge pages, sysctls,
//!   memlock and open-file limits), writes the fixes with `--apply`, and
//!   writes a `config.toml` matching the host with `--config-out`.
//!
//! The deployment files that apply the same settings for good live in
//! `tuning/deploy/`: `lumadb.service` (systemd unit: memlock and open-file
//! limits, start, reload with SIGHUP, graceful stop), `99-lumadb.conf`
//! (for `/etc/sysctl.d/`) and `lumadb-limits.conf` (for
//! `/etc/security/limits.d/`).
//!
//! **What it is not.** It never runs on the data path and never touches
//! data: it must not depend on any other LumaDB crate (`engine`, `shard`,
//! `net`, `bench`; `tests/tests/e2e/boundaries.rs` checks it). It reads
//! host settings from a root folder (so tests use fixture trees), changes
//! them only when explicitly asked ([`tune::apply`]), never writes a file
//! outside that root, and never creates a file.

pub mod error;
mod sysfs;
pub mod topology;
pub mod tune;

pub use error::{Error, Result};
pub use topology::{bind_memory_to_node, parse_cpuset, Cpu, Topology};
