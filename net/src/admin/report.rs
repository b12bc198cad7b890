//! What the runtime reports to the admin API: plain data, filled by gathering
//! from every shard, serialized here into the response bodies.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use lumadb_engine::compaction::LevelStat;
use lumadb_engine::db::{EngineStats, MemoryUsage};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use thiserror::Error;

/// `GET /status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    pub version: String,
    pub uptime_seconds: u64,
    /// `sync`, `interval` or `none`.
    pub sync_mode: String,
    pub read_only: bool,
    pub shards: Vec<ShardStatus>,
    /// Listening ports by protocol (`"http": 8080`, `"redis": 6379`).
    pub ports: BTreeMap<String, u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardStatus {
    pub id: usize,
    /// The CPU the shard's executor is pinned to, if pinned.
    pub cpu: Option<usize>,
    pub numa_node: Option<usize>,
    pub keys: u64,
    pub connections: u64,
}

/// `GET /health`: healthy unless a shard is poisoned (a failed WAL write or
/// fsync stopped its writes). Read-only mode alone is healthy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    pub read_only: bool,
    pub poisoned_shards: Vec<PoisonedShard>,
}

impl HealthReport {
    pub fn healthy(&self) -> bool {
        self.poisoned_shards.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoisonedShard {
    pub shard: usize,
    /// The error that poisoned it.
    pub error: String,
}

/// `GET /admin/memory`. Serialized as the totals over all shards at the top
/// level (`total_bytes`, `memtables`, `block_cache`, `row_cache`, `indexes`,
/// `other`, `limit_bytes`) followed by `shards`, each with the same keys and
/// its `shard` number.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemoryReport {
    pub shards: Vec<ShardMemory>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMemory {
    pub shard: usize,
    pub usage: MemoryUsage,
    /// The shard's memory budget: memtables and caches as configured.
    pub limit_bytes: u64,
}

impl MemoryReport {
    /// Component sums over all shards.
    pub fn total(&self) -> MemoryUsage {
        let mut t = MemoryUsage::default();
        for s in &self.shards {
            t.memtables += s.usage.memtables;
            t.block_cache += s.usage.block_cache;
            t.row_cache += s.usage.row_cache;
            t.indexes += s.usage.indexes;
            t.other += s.usage.other;
        }
        t
    }

    pub fn limit_bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.limit_bytes).sum()
    }
}

/// The one place the component names are spelled, for JSON and metrics.
pub(crate) fn memory_components(m: &MemoryUsage) -> [(&'static str, u64); 5] {
    [
        ("memtables", m.memtables),
        ("block_cache", m.block_cache),
        ("row_cache", m.row_cache),
        ("indexes", m.indexes),
        ("other", m.other),
    ]
}

struct MemoryView<'a> {
    shard: Option<usize>,
    usage: &'a MemoryUsage,
    limit_bytes: u64,
    shards: Option<&'a [ShardMemory]>,
}

impl Serialize for MemoryView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(shard) = self.shard {
            map.serialize_entry("shard", &shard)?;
        }
        map.serialize_entry("total_bytes", &self.usage.total())?;
        for (name, bytes) in memory_components(self.usage) {
            map.serialize_entry(name, &bytes)?;
        }
        map.serialize_entry("limit_bytes", &self.limit_bytes)?;
        if let Some(shards) = self.shards {
            let views: Vec<MemoryView<'_>> = shards
                .iter()
                .map(|s| MemoryView {
                    shard: Some(s.shard),
                    usage: &s.usage,
                    limit_bytes: s.limit_bytes,
                    shards: None,
                })
                .collect();
            map.serialize_entry("shards", &views)?;
        }
        map.end()
    }
}

impl Serialize for MemoryReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let total = self.total();
        MemoryView {
            shard: None,
            usage: &total,
            limit_bytes: self.limit_bytes(),
            shards: Some(&self.shards),
        }
        .serialize(serializer)
    }
}

/// `GET /admin/compaction` and the answer to `POST /admin/compaction`.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct CompactionReport {
    pub shards: Vec<ShardCompaction>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardCompaction {
    pub shard: usize,
    /// A compaction (automatic or manual) is running on this shard.
    pub running: bool,
    /// Sum over the shard's keyspaces.
    pub pending_bytes: u64,
    pub keyspaces: Vec<KeyspaceCompaction>,
}

impl ShardCompaction {
    /// The shard's compaction state from its engine's statistics.
    pub fn from_stats(shard: usize, running: bool, stats: &EngineStats) -> ShardCompaction {
        let keyspaces: Vec<KeyspaceCompaction> = stats
            .keyspaces
            .iter()
            .map(|k| KeyspaceCompaction {
                name: k.name.clone(),
                pending_bytes: k.pending_compaction_bytes,
                levels: k.levels.iter().map(LevelShape::from).collect(),
            })
            .collect();
        ShardCompaction {
            shard,
            running,
            pending_bytes: keyspaces.iter().map(|k| k.pending_bytes).sum(),
            keyspaces,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyspaceCompaction {
    pub name: String,
    pub pending_bytes: u64,
    pub levels: Vec<LevelShape>,
}

/// One level of an LSM tree (`lumadb_engine::compaction::LevelStat`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelShape {
    pub level: usize,
    pub files: usize,
    pub bytes: u64,
    /// At least 1.0 means the level wants compaction.
    pub score: f64,
    /// The level's byte target; 0 where none applies.
    pub target_bytes: u64,
}

impl From<&LevelStat> for LevelShape {
    fn from(l: &LevelStat) -> LevelShape {
        LevelShape {
            level: l.level,
            files: l.files,
            bytes: l.bytes,
            score: l.score,
            target_bytes: l.target_bytes,
        }
    }
}

/// What `POST /admin/compaction` asks for: body `{"shard": N}` for one shard,
/// `{"all": true}` or no body for every shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompactionRequest {
    All,
    Shard(usize),
}

/// Why a manual compaction could not start.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CompactionError {
    /// Answered 404.
    #[error("shard {shard} does not exist (this server has {shards} shards)")]
    NoSuchShard { shard: usize, shards: usize },
    /// Answered 503: the shard cannot compact now (poisoned, shutting down).
    #[error("compaction unavailable: {0}")]
    Unavailable(String),
}

/// `GET /metrics`: everything the Prometheus exposition is rendered from.
#[derive(Debug, Clone)]
pub struct MetricsReport {
    pub version: String,
    pub uptime_seconds: u64,
    /// Log lines dropped because the log writer fell behind
    /// (`shard::logging::Logging::dropped_lines`).
    pub log_lines_dropped: u64,
    pub shards: Vec<ShardMetrics>,
}

#[derive(Debug, Clone)]
pub struct ShardMetrics {
    pub shard: usize,
    pub cpu: Option<usize>,
    pub keys: u64,
    /// Open client connections now.
    pub connections_current: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Requests by command and outcome since start.
    pub commands: Vec<CommandCount>,
    /// Request latency in microseconds, since start.
    pub latency_us: Histogram<u64>,
    pub engine: EngineStats,
    pub memory: MemoryUsage,
    pub memory_limit_bytes: u64,
}

/// Requests of one command with one outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandCount {
    /// The command or HTTP route as a client names it (`GET`, `SET`, `SELECT`).
    pub command: String,
    pub status: CommandStatus,
    pub count: u64,
}

/// Outcome label of `lumadb_requests_total`: `ok` or `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandStatus {
    Ok,
    Error,
}

impl CommandStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Ok => "ok",
            CommandStatus::Error => "error",
        }
    }
}

/// What setting one config key at runtime did, or would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// Takes effect now (`log_level`).
    Applied,
    /// Known key whose new value only takes effect at the next start
    /// (`block_cache_size`): change it in config.toml and restart.
    NeedsRestart,
    Unknown,
    /// Known key, value rejected; the reason names what is allowed.
    Invalid(String),
}
