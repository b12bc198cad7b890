//! The errors of `lumadb-tuning`.

use std::path::PathBuf;

/// Everything that can go wrong while discovering or tuning the host.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CPU list (`--cpuset`, `[shards] cpuset`) that does not parse.
    #[error("invalid CPU list {input:?}: {reason}")]
    InvalidCpuset { input: String, reason: String },

    /// A CPU named in a CPU list that this process may not run on.
    #[error("CPU {cpu} is not available to this process (available CPUs: {available})")]
    UnknownCpu { cpu: usize, available: String },

    /// A shard count of zero.
    #[error("the shard count must be at least 1")]
    ZeroShards,

    /// More shards asked for than there are CPUs to pin them to.
    #[error("{shards} shards asked for, but only {cpus} CPUs are available (one shard per CPU)")]
    TooManyShards { shards: usize, cpus: usize },

    /// Discovery found no CPU this process may run on.
    #[error("no CPU is available to this process")]
    NoCpus,

    /// Neither hwloc nor the kernel's interfaces described the host.
    #[error("cannot discover the host topology: {reason}")]
    Discovery { reason: String },

    /// A NUMA node that the host does not have.
    #[error("NUMA node {node} does not exist (nodes: {nodes})")]
    UnknownNumaNode { node: usize, nodes: String },

    /// The kernel refused to set the memory policy.
    #[error("cannot bind memory to NUMA node {node}: {reason}")]
    MemoryBinding { node: usize, reason: String },

    /// A resource limit that could not be read.
    #[error("cannot read the {resource} limit: {source}")]
    Limit {
        resource: &'static str,
        source: std::io::Error,
    },

    /// A host file that could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },

    /// A host file whose contents are not what the kernel writes there.
    #[error("{}: unexpected contents: {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },

    /// A path that would leave the chosen root (refused, never written).
    #[error("{} is outside the root {}", path.display(), root.display())]
    OutsideRoot { path: PathBuf, root: PathBuf },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
