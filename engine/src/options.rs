//! Engine and keyspace options: the validated, typed form of the
//! `[memory]`, `[wal]` and `[compaction]` sections of `config.toml`
//! (parsing and validation live in [`crate::config`]).

/// Block compression of SSTable data blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Lz4,
    /// zstd at the given level (1..=22).
    Zstd(i32),
}

impl Compression {
    /// The on-disk tag of this codec (stored per block).
    pub fn tag(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 1,
            Compression::Zstd(_) => 2,
        }
    }
}

/// When a write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Acknowledge after the WAL batch holding the write is fdatasynced
    /// (group commit). The default.
    Sync,
    /// Acknowledge once the write is applied in memory. The WAL is
    /// written and fdatasynced every `interval_ms` by the driver (sooner
    /// written when `WAL_WRITE_BEHIND_BYTES` gather). A crash, of the
    /// process or of the machine, loses at most the writes acknowledged
    /// in that last window, as Redis's `appendfsync everysec` does.
    Interval { interval_ms: u64 },
    /// Acknowledge once the write is applied in memory. The WAL is
    /// written every `WAL_WRITE_OUT_INTERVAL_MS` by the driver (sooner
    /// when `WAL_WRITE_BEHIND_BYTES` gather) and fdatasynced only at
    /// memtable switch and shutdown. A crash of the process loses at most
    /// that window, as Redis's `appendfsync no` does; a crash of the
    /// machine loses what the device had not yet stored.
    None,
}

/// How a keyspace's SSTables are organised and merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionStyle {
    /// L0 (overlapping, flushed memtables) then L1..Ln, each level a
    /// sorted run ~`level_size_multiplier` times larger than the one above.
    Leveled,
    /// Sorted runs in L0 only, merged when their count or size ratio
    /// crosses a threshold (RocksDB's universal style).
    Universal,
    /// Files in L0 only; the oldest are deleted when the total size
    /// exceeds `fifo_max_table_files_size`. For caches and time series.
    Fifo,
}

/// Options of one keyspace.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyspaceOptions {
    pub compression: Compression,
    /// Target uncompressed size of a data block (bytes).
    pub block_size: usize,
    /// Keys between restart points inside a data block.
    pub block_restart_interval: usize,
    /// Bloom filter bits per key; 0 disables the filter.
    pub bloom_bits_per_key: u32,
    pub compaction_style: CompactionStyle,
    /// L0 files that trigger an L0 compaction.
    pub level0_file_num_compaction_trigger: usize,
    /// L0 files at which writes stall until compaction catches up.
    pub level0_stop_writes_trigger: usize,
    /// Target size of L1 (bytes).
    pub max_bytes_for_level_base: u64,
    /// Each level below L1 is this many times larger than the one above.
    pub level_size_multiplier: u64,
    /// Number of levels, L0 included.
    pub num_levels: usize,
    /// Target size of one compaction output file (bytes).
    pub target_file_size: u64,
    /// Universal: merge when runs differ in size by less than this percent.
    pub universal_size_ratio_percent: u64,
    /// Universal: stop adding runs to a merge past this many.
    pub universal_max_merge_width: usize,
    /// Universal: space amplification (percent) that triggers a full merge.
    pub universal_max_size_amplification_percent: u64,
    /// FIFO: total table bytes past which the oldest files are deleted.
    pub fifo_max_table_files_size: u64,
    /// Leveled: a table never holds two keys whose first this-many bytes
    /// differ (0: no such cut; RocksDB's fixed-prefix SST partitioner).
    /// With a layout whose first byte is a record class, the classes go to
    /// separate tables, so a class written in key order (list elements)
    /// never overlaps older tables just because another class (the list's
    /// metadata key) is updated beside it, and it moves down the levels
    /// without being rewritten. Only for prefixes with few distinct
    /// values: a flush writes one table per prefix it holds.
    pub table_partition_prefix_len: usize,
}

impl Default for KeyspaceOptions {
    fn default() -> Self {
        KeyspaceOptions {
            compression: Compression::Lz4,
            block_size: 4096,
            block_restart_interval: 16,
            bloom_bits_per_key: 10,
            compaction_style: CompactionStyle::Leveled,
            level0_file_num_compaction_trigger: 4,
            level0_stop_writes_trigger: 36,
            max_bytes_for_level_base: 256 << 20,
            level_size_multiplier: 10,
            num_levels: 7,
            target_file_size: 64 << 20,
            universal_size_ratio_percent: 1,
            universal_max_merge_width: usize::MAX,
            universal_max_size_amplification_percent: 200,
            fifo_max_table_files_size: 1 << 30,
            table_partition_prefix_len: 0,
        }
    }
}

/// Options of one engine instance (one shard).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineOptions {
    /// Size (bytes) at which a keyspace's memtable is frozen and flushed.
    pub memtable_size: usize,
    /// Frozen memtables per keyspace at which writes stall until a flush
    /// completes (the memtable memory bound is `memtable_size * (this + 1)`).
    pub max_immutable_memtables: usize,
    pub block_cache_size: usize,
    pub row_cache_size: usize,
    /// Read SSTables through the OS page cache instead of O_DIRECT (the
    /// storage backend decides how; `DmaStorage` uses buffered io_uring
    /// reads rather than a memory map, which would stall the core on page
    /// faults).
    pub use_mmap: bool,
    pub sync_mode: SyncMode,
    /// Largest group-commit batch (bytes) written with one write.
    pub wal_batch_bytes_max: usize,
    /// Total WAL bytes past which the keyspace pinning the oldest segment
    /// is flushed so the segment can be deleted.
    pub wal_total_bytes_max: u64,
    /// Keep everything up to the last good WAL record on a mid-log
    /// checksum failure instead of refusing to open.
    pub recovery_mode: bool,
    /// Defaults for keyspaces created without explicit options.
    pub keyspace_defaults: KeyspaceOptions,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            memtable_size: 64 << 20,
            max_immutable_memtables: 2,
            block_cache_size: 256 << 20,
            row_cache_size: 0,
            use_mmap: false,
            sync_mode: SyncMode::Sync,
            wal_batch_bytes_max: 4 << 20,
            wal_total_bytes_max: 1 << 30,
            recovery_mode: false,
            keyspace_defaults: KeyspaceOptions::default(),
        }
    }
}
