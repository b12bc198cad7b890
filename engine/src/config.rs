//! The `[memory]`, `[wal]` and `[compaction]` sections of `config.toml`:
//! what an operator writes, parsed with serde and validated into
//! [`EngineOptions`].
//!
//! Every section rejects unknown keys and fills missing keys with the
//! defaults of [`EngineOptions::default`], so an empty file is a valid
//! configuration. [`EngineConfig::to_options`] checks each key against the
//! range in [`limits`] (all limits live there, nowhere else) and then the
//! relations between keys; an error names the key as `section.key` and the
//! allowed range.
//!
//! Sizes are written either as an integer number of bytes
//! (`memtable_size = 67108864`) or as a string with a unit
//! (`"64MiB"`, `"64MB"`, `"64m"`, `"1g"`, `"512k"`, `"4096"`). Units are
//! binary, case-insensitive, and the `B`/`iB` suffix is optional:
//! `K = KB = KiB = 2^10`, `M = MB = MiB = 2^20`, `G = GB = GiB = 2^30`,
//! `T = TB = TiB = 2^40` — as RocksDB's and Redis's configs read them, so
//! `"64MB"` means the same as the manual's `67108864`.

use std::fmt;
use std::ops::RangeInclusive;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::options::{CompactionStyle, Compression, EngineOptions, KeyspaceOptions, SyncMode};

/// Bytes in a kibibyte.
pub const KIB: u64 = 1 << 10;
/// Bytes in a mebibyte.
pub const MIB: u64 = 1 << 20;
/// Bytes in a gibibyte.
pub const GIB: u64 = 1 << 30;
/// Bytes in a tebibyte.
pub const TIB: u64 = 1 << 40;

/// The allowed range of every engine configuration key, inclusive.
///
/// Sizes are in bytes. Keys with a range starting at 0 use 0 to mean
/// "disabled" (no row cache, no bloom filter).
pub mod limits {
    use super::{GIB, KIB, MIB, TIB};
    use std::ops::RangeInclusive;

    /// `memory.memtable_size`.
    pub const MEMTABLE_SIZE: RangeInclusive<u64> = MIB..=4 * GIB;
    /// `memory.block_cache_size`.
    pub const BLOCK_CACHE_SIZE: RangeInclusive<u64> = 0..=TIB;
    /// `memory.row_cache_size`.
    pub const ROW_CACHE_SIZE: RangeInclusive<u64> = 0..=TIB;
    /// `memory.bloom_bits_per_key`. 0 disables the filter; 10 gives ~1%
    /// false positives, 20 ~0.01%; past 32 the filter only wastes memory.
    pub const BLOOM_BITS_PER_KEY: RangeInclusive<u32> = 0..=32;

    /// `wal.sync_interval_ms`.
    pub const SYNC_INTERVAL_MS: RangeInclusive<u64> = 1..=60_000;
    /// `wal.batch_bytes_max`.
    pub const WAL_BATCH_BYTES_MAX: RangeInclusive<u64> = 4 * KIB..=16 * MIB;
    /// `wal.total_bytes_max`; also at least `memory.memtable_size`.
    pub const WAL_TOTAL_BYTES_MAX: RangeInclusive<u64> = 16 * MIB..=TIB;

    /// `compaction.zstd_level` (zstd's own range of regular levels).
    pub const ZSTD_LEVEL: RangeInclusive<i32> = 1..=22;
    /// `compaction.block_size`.
    pub const BLOCK_SIZE: RangeInclusive<u64> = KIB..=MIB;
    /// `compaction.level0_file_num_compaction_trigger`.
    pub const LEVEL0_FILE_NUM_COMPACTION_TRIGGER: RangeInclusive<u64> = 1..=256;
    /// `compaction.level0_stop_writes_trigger`; also greater than the
    /// compaction trigger.
    pub const LEVEL0_STOP_WRITES_TRIGGER: RangeInclusive<u64> = 2..=1024;
    /// `compaction.max_bytes_for_level_base`.
    pub const MAX_BYTES_FOR_LEVEL_BASE: RangeInclusive<u64> = MIB..=64 * GIB;
    /// `compaction.level_size_multiplier`.
    pub const LEVEL_SIZE_MULTIPLIER: RangeInclusive<u64> = 2..=100;
    /// `compaction.num_levels`, L0 included.
    pub const NUM_LEVELS: RangeInclusive<u64> = 2..=16;
    /// `compaction.target_file_size`.
    pub const TARGET_FILE_SIZE: RangeInclusive<u64> = MIB..=4 * GIB;
    /// `compaction.fifo_max_table_files_size`.
    pub const FIFO_MAX_TABLE_FILES_SIZE: RangeInclusive<u64> = MIB..=64 * TIB;
    /// `compaction.max_immutable_memtables`.
    pub const MAX_IMMUTABLE_MEMTABLES: RangeInclusive<u64> = 1..=16;

    // A data block always fits in one output file, and one WAL batch in the
    // smallest WAL budget, whatever values are chosen within the ranges.
    const _: () = assert!(*BLOCK_SIZE.end() <= *TARGET_FILE_SIZE.start());
    const _: () = assert!(*WAL_BATCH_BYTES_MAX.end() <= *WAL_TOTAL_BYTES_MAX.start());
    // The stop trigger can always be set above the compaction trigger.
    const _: () = assert!(*LEVEL0_STOP_WRITES_TRIGGER.end() > *LEVEL0_FILE_NUM_COMPACTION_TRIGGER.end());
}

/// `wal.sync_interval_ms` when not set.
pub const SYNC_INTERVAL_MS_DEFAULT: u64 = 100;
/// `compaction.zstd_level` when not set.
pub const ZSTD_LEVEL_DEFAULT: i32 = 3;

/// A size in bytes, read from an integer or from a string with a binary
/// unit (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// Parses `"64MiB"`, `"64 mb"`, `"1g"`, `"512k"`, `"4096"`.
    pub fn parse(text: &str) -> std::result::Result<ByteSize, String> {
        let text = text.trim();
        let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (number, unit) = text.split_at(digits_end);
        if number.is_empty() {
            return Err(format!(
                "{text:?} is not a size: expected a number of bytes or a number with a unit like \"64MiB\""
            ));
        }
        let multiplier = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => KIB,
            "m" | "mb" | "mib" => MIB,
            "g" | "gb" | "gib" => GIB,
            "t" | "tb" | "tib" => TIB,
            other => {
                return Err(format!(
                    "{text:?} has unknown unit {other:?}: expected B, K/KB/KiB, M/MB/MiB, G/GB/GiB or T/TB/TiB"
                ))
            }
        };
        let too_large = || format!("{text:?} is too large: at most {} bytes", u64::MAX);
        let number: u64 = number.parse().map_err(|_| too_large())?;
        number.checked_mul(multiplier).map(ByteSize).ok_or_else(too_large)
    }
}

impl fmt::Display for ByteSize {
    /// The largest binary unit that divides the size exactly: `64 MiB`,
    /// `1536 KiB`, `1000 bytes`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match exact_unit(self.0) {
            Some((count, unit)) => write!(f, "{count} {unit}"),
            None => write!(f, "{} bytes", self.0),
        }
    }
}

fn exact_unit(bytes: u64) -> Option<(u64, &'static str)> {
    if bytes == 0 {
        return None;
    }
    [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")]
        .into_iter()
        // Units are powers of two: a multiple has no bits below the unit's.
        .find(|(unit, _)| bytes & (unit - 1) == 0)
        .map(|(unit, name)| (bytes / unit, name))
}

impl Serialize for ByteSize {
    /// As `"64MiB"` when a unit divides the size exactly, else as an integer,
    /// so that serialized configs read back to the same value.
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match exact_unit(self.0) {
            Some((count, unit)) => serializer.serialize_str(&format!("{count}{unit}")),
            None => serializer.serialize_u64(self.0),
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: an integer number of bytes or a string like \"64MiB\"")
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<ByteSize, E> {
                Ok(ByteSize(v))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("a size cannot be negative, found {v}")))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `[memory]`: memtables, caches and filters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// Size at which a memtable is frozen and flushed. Default 64 MiB.
    pub memtable_size: ByteSize,
    /// Block cache capacity per shard. Default 256 MiB.
    pub block_cache_size: ByteSize,
    /// Row cache capacity per shard; 0 disables it. Default 0.
    pub row_cache_size: ByteSize,
    /// Bloom filter bits per key; 0 disables filters. Default 10 (~1% false
    /// positives).
    pub bloom_bits_per_key: u32,
    /// When true, SSTable reads go through the OS page cache (buffered
    /// io_uring reads) instead of O_DIRECT, so the OS keeps hot table data
    /// in spare RAM. Files are not memory-mapped: a page fault would stall
    /// the core's executor. The name is the operations manual's. Default false.
    pub use_mmap: bool,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        let options = EngineOptions::default();
        MemoryConfig {
            memtable_size: ByteSize(options.memtable_size as u64),
            block_cache_size: ByteSize(options.block_cache_size as u64),
            row_cache_size: ByteSize(options.row_cache_size as u64),
            bloom_bits_per_key: options.keyspace_defaults.bloom_bits_per_key,
            use_mmap: options.use_mmap,
        }
    }
}

/// `wal.sync_mode`: when a write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncModeName {
    /// After the group-commit batch holding the write is fdatasynced.
    Sync,
    /// Once applied in memory; the WAL is written and fdatasynced every
    /// `sync_interval_ms`.
    Interval,
    /// Once applied in memory; the WAL is written every 100 ms and
    /// fdatasynced only at memtable switch and shutdown.
    None,
}

/// `[wal]`: write-ahead log durability and size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalConfig {
    /// Default `sync`.
    pub sync_mode: SyncModeName,
    /// fdatasync period when `sync_mode = "interval"`. Default 100.
    pub sync_interval_ms: u64,
    /// Largest group-commit batch written with one write. Default 4 MiB.
    pub batch_bytes_max: ByteSize,
    /// WAL bytes past which the oldest memtable is flushed so its segment
    /// can be deleted. Default 1 GiB.
    pub total_bytes_max: ByteSize,
}

impl Default for WalConfig {
    fn default() -> Self {
        let options = EngineOptions::default();
        let (sync_mode, sync_interval_ms) = match options.sync_mode {
            SyncMode::Sync => (SyncModeName::Sync, SYNC_INTERVAL_MS_DEFAULT),
            SyncMode::Interval { interval_ms } => (SyncModeName::Interval, interval_ms),
            SyncMode::None => (SyncModeName::None, SYNC_INTERVAL_MS_DEFAULT),
        };
        WalConfig {
            sync_mode,
            sync_interval_ms,
            batch_bytes_max: ByteSize(options.wal_batch_bytes_max as u64),
            total_bytes_max: ByteSize(options.wal_total_bytes_max),
        }
    }
}

/// `compaction.style`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompactionStyleName {
    Leveled,
    Universal,
    Fifo,
}

/// `compaction.compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressionName {
    Lz4,
    /// At `compaction.zstd_level`.
    Zstd,
    None,
}

/// `[compaction]`: SSTable layout and how tables are merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionConfig {
    /// Default `leveled`.
    pub style: CompactionStyleName,
    /// Data block compression. Default `lz4`.
    pub compression: CompressionName,
    /// Used when `compression = "zstd"`. Default 3.
    pub zstd_level: i32,
    /// Target uncompressed data block size. Default 4 KiB.
    pub block_size: ByteSize,
    /// L0 files that trigger an L0 compaction. Default 4.
    pub level0_file_num_compaction_trigger: u64,
    /// L0 files at which writes stall. Default 36.
    pub level0_stop_writes_trigger: u64,
    /// Target size of L1. Default 256 MiB.
    pub max_bytes_for_level_base: ByteSize,
    /// Growth factor between levels. Default 10.
    pub level_size_multiplier: u64,
    /// Levels, L0 included. Default 7.
    pub num_levels: u64,
    /// Target size of one compaction output file. Default 64 MiB.
    pub target_file_size: ByteSize,
    /// FIFO style: total size past which the oldest files are deleted.
    /// Default 1 GiB.
    pub fifo_max_table_files_size: ByteSize,
    /// Frozen memtables at which writes stall until a flush completes.
    /// Default 2.
    pub max_immutable_memtables: u64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        let options = EngineOptions::default();
        let ks = &options.keyspace_defaults;
        let (compression, zstd_level) = match ks.compression {
            Compression::Lz4 => (CompressionName::Lz4, ZSTD_LEVEL_DEFAULT),
            Compression::Zstd(level) => (CompressionName::Zstd, level),
            Compression::None => (CompressionName::None, ZSTD_LEVEL_DEFAULT),
        };
        CompactionConfig {
            style: match ks.compaction_style {
                CompactionStyle::Leveled => CompactionStyleName::Leveled,
                CompactionStyle::Universal => CompactionStyleName::Universal,
                CompactionStyle::Fifo => CompactionStyleName::Fifo,
            },
            compression,
            zstd_level,
            block_size: ByteSize(ks.block_size as u64),
            level0_file_num_compaction_trigger: ks.level0_file_num_compaction_trigger as u64,
            level0_stop_writes_trigger: ks.level0_stop_writes_trigger as u64,
            max_bytes_for_level_base: ByteSize(ks.max_bytes_for_level_base),
            level_size_multiplier: ks.level_size_multiplier,
            num_levels: ks.num_levels as u64,
            target_file_size: ByteSize(ks.target_file_size),
            fifo_max_table_files_size: ByteSize(ks.fifo_max_table_files_size),
            max_immutable_memtables: options.max_immutable_memtables as u64,
        }
    }
}

/// The three sections the engine owns, as written in `config.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    pub memory: MemoryConfig,
    pub wal: WalConfig,
    pub compaction: CompactionConfig,
}

impl EngineConfig {
    /// Validates every key against [`limits`] and the relations between
    /// keys, and returns the options an engine is opened with.
    pub fn to_options(&self) -> Result<EngineOptions> {
        let memory = &self.memory;
        let wal = &self.wal;
        let compaction = &self.compaction;

        let memtable_size = check_size("memory.memtable_size", memory.memtable_size, limits::MEMTABLE_SIZE)?;
        let block_cache_size = check_size(
            "memory.block_cache_size",
            memory.block_cache_size,
            limits::BLOCK_CACHE_SIZE,
        )?;
        let row_cache_size = check_size("memory.row_cache_size", memory.row_cache_size, limits::ROW_CACHE_SIZE)?;
        let bloom_bits_per_key = check_int(
            "memory.bloom_bits_per_key",
            memory.bloom_bits_per_key,
            limits::BLOOM_BITS_PER_KEY,
        )?;

        let sync_interval_ms = check_int("wal.sync_interval_ms", wal.sync_interval_ms, limits::SYNC_INTERVAL_MS)?;
        let wal_batch_bytes_max = check_size("wal.batch_bytes_max", wal.batch_bytes_max, limits::WAL_BATCH_BYTES_MAX)?;
        let wal_total_bytes_max = check_size("wal.total_bytes_max", wal.total_bytes_max, limits::WAL_TOTAL_BYTES_MAX)?;

        let zstd_level = check_int("compaction.zstd_level", compaction.zstd_level, limits::ZSTD_LEVEL)?;
        let block_size = check_size("compaction.block_size", compaction.block_size, limits::BLOCK_SIZE)?;
        let level0_file_num_compaction_trigger = check_int(
            "compaction.level0_file_num_compaction_trigger",
            compaction.level0_file_num_compaction_trigger,
            limits::LEVEL0_FILE_NUM_COMPACTION_TRIGGER,
        )?;
        let level0_stop_writes_trigger = check_int(
            "compaction.level0_stop_writes_trigger",
            compaction.level0_stop_writes_trigger,
            limits::LEVEL0_STOP_WRITES_TRIGGER,
        )?;
        let max_bytes_for_level_base = check_size(
            "compaction.max_bytes_for_level_base",
            compaction.max_bytes_for_level_base,
            limits::MAX_BYTES_FOR_LEVEL_BASE,
        )?;
        let level_size_multiplier = check_int(
            "compaction.level_size_multiplier",
            compaction.level_size_multiplier,
            limits::LEVEL_SIZE_MULTIPLIER,
        )?;
        let num_levels = check_int("compaction.num_levels", compaction.num_levels, limits::NUM_LEVELS)?;
        let target_file_size = check_size(
            "compaction.target_file_size",
            compaction.target_file_size,
            limits::TARGET_FILE_SIZE,
        )?;
        let fifo_max_table_files_size = check_size(
            "compaction.fifo_max_table_files_size",
            compaction.fifo_max_table_files_size,
            limits::FIFO_MAX_TABLE_FILES_SIZE,
        )?;
        let max_immutable_memtables = check_int(
            "compaction.max_immutable_memtables",
            compaction.max_immutable_memtables,
            limits::MAX_IMMUTABLE_MEMTABLES,
        )?;

        // Relations between keys.
        if level0_stop_writes_trigger <= level0_file_num_compaction_trigger {
            return Err(invalid(
                "compaction.level0_stop_writes_trigger",
                level0_stop_writes_trigger,
                format!(
                    "must be greater than compaction.level0_file_num_compaction_trigger \
                     ({level0_file_num_compaction_trigger}), or writes stall before compaction starts"
                ),
            ));
        }
        if wal_total_bytes_max < memtable_size {
            return Err(invalid(
                "wal.total_bytes_max",
                ByteSize(wal_total_bytes_max),
                format!(
                    "must be at least memory.memtable_size ({}), or memtables are flushed before they fill",
                    ByteSize(memtable_size)
                ),
            ));
        }

        let defaults = EngineOptions::default();
        Ok(EngineOptions {
            memtable_size: to_usize("memory.memtable_size", memtable_size)?,
            max_immutable_memtables: to_usize("compaction.max_immutable_memtables", max_immutable_memtables)?,
            block_cache_size: to_usize("memory.block_cache_size", block_cache_size)?,
            row_cache_size: to_usize("memory.row_cache_size", row_cache_size)?,
            use_mmap: memory.use_mmap,
            sync_mode: match wal.sync_mode {
                SyncModeName::Sync => SyncMode::Sync,
                SyncModeName::Interval => SyncMode::Interval {
                    interval_ms: sync_interval_ms,
                },
                SyncModeName::None => SyncMode::None,
            },
            wal_batch_bytes_max: to_usize("wal.batch_bytes_max", wal_batch_bytes_max)?,
            wal_total_bytes_max,
            recovery_mode: defaults.recovery_mode,
            keyspace_defaults: KeyspaceOptions {
                compression: match compaction.compression {
                    CompressionName::Lz4 => Compression::Lz4,
                    CompressionName::Zstd => Compression::Zstd(zstd_level),
                    CompressionName::None => Compression::None,
                },
                block_size: to_usize("compaction.block_size", block_size)?,
                bloom_bits_per_key,
                compaction_style: match compaction.style {
                    CompactionStyleName::Leveled => CompactionStyle::Leveled,
                    CompactionStyleName::Universal => CompactionStyle::Universal,
                    CompactionStyleName::Fifo => CompactionStyle::Fifo,
                },
                level0_file_num_compaction_trigger: to_usize(
                    "compaction.level0_file_num_compaction_trigger",
                    level0_file_num_compaction_trigger,
                )?,
                level0_stop_writes_trigger: to_usize(
                    "compaction.level0_stop_writes_trigger",
                    level0_stop_writes_trigger,
                )?,
                max_bytes_for_level_base,
                level_size_multiplier,
                num_levels: to_usize("compaction.num_levels", num_levels)?,
                target_file_size,
                fifo_max_table_files_size,
                ..defaults.keyspace_defaults
            },
        })
    }
}

fn invalid(key: &str, value: impl fmt::Display, reason: String) -> Error {
    Error::InvalidConfig {
        key: key.to_string(),
        value: value.to_string(),
        reason,
    }
}

fn check_size(key: &str, value: ByteSize, range: RangeInclusive<u64>) -> Result<u64> {
    if range.contains(&value.bytes()) {
        Ok(value.bytes())
    } else {
        let (min, max) = (ByteSize(*range.start()), ByteSize(*range.end()));
        Err(invalid(key, value, format!("must be between {min} and {max}")))
    }
}

fn check_int<T: PartialOrd + fmt::Display + Copy>(key: &str, value: T, range: RangeInclusive<T>) -> Result<T> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(invalid(
            key,
            value,
            format!("must be between {} and {}", range.start(), range.end()),
        ))
    }
}

fn to_usize(key: &str, value: u64) -> Result<usize> {
    usize::try_from(value).map_err(|_| invalid(key, value, "does not fit in this platform's address space".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::result::Result<EngineConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// Parses and validates, returning the error's key and reason.
    fn invalid_key(text: &str) -> (String, String, String) {
        let config = parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"));
        match config.to_options() {
            Err(Error::InvalidConfig { key, value, reason }) => (key, value, reason),
            other => panic!("{text:?} should be invalid, got {other:?}"),
        }
    }

    fn options(text: &str) -> EngineOptions {
        parse(text).unwrap().to_options().unwrap()
    }

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config, EngineConfig::default());
        assert_eq!(config.memory.memtable_size, ByteSize(64 * MIB));
        assert_eq!(config.memory.block_cache_size, ByteSize(256 * MIB));
        assert_eq!(config.memory.row_cache_size, ByteSize(0));
        assert_eq!(config.memory.bloom_bits_per_key, 10);
        assert!(!config.memory.use_mmap);
        assert_eq!(config.wal.sync_mode, SyncModeName::Sync);
        assert_eq!(config.wal.sync_interval_ms, 100);
        assert_eq!(config.compaction.style, CompactionStyleName::Leveled);
        assert_eq!(config.compaction.compression, CompressionName::Lz4);
        assert_eq!(config.to_options().unwrap(), EngineOptions::default());
    }

    #[test]
    fn empty_sections_give_defaults() {
        let config = parse("[memory]\n[wal]\n[compaction]\n").unwrap();
        assert_eq!(config, EngineConfig::default());
    }

    #[test]
    fn manual_example_is_valid() {
        let opts = options(
            "[memory]\n\
             memtable_size = 67108864      # 64 MB\n\
             block_cache_size = 536870912  # 512 MB\n\
             row_cache_size = 134217728    # 128 MB\n\
             bloom_bits_per_key = 10\n\
             use_mmap = true\n",
        );
        assert_eq!(opts.memtable_size, 64 << 20);
        assert_eq!(opts.block_cache_size, 512 << 20);
        assert_eq!(opts.row_cache_size, 128 << 20);
        assert_eq!(opts.keyspace_defaults.bloom_bits_per_key, 10);
        assert!(opts.use_mmap);
    }

    #[test]
    fn every_key_is_carried_into_options() {
        let opts = options(
            r#"
            [memory]
            memtable_size = "32MiB"
            block_cache_size = "1g"
            row_cache_size = "64m"
            bloom_bits_per_key = 16
            use_mmap = true
            [wal]
            sync_mode = "interval"
            sync_interval_ms = 250
            batch_bytes_max = "1MiB"
            total_bytes_max = "2GiB"
            [compaction]
            style = "universal"
            compression = "zstd"
            zstd_level = 9
            block_size = "16KiB"
            level0_file_num_compaction_trigger = 8
            level0_stop_writes_trigger = 20
            max_bytes_for_level_base = "512MiB"
            level_size_multiplier = 8
            num_levels = 5
            target_file_size = "128MiB"
            fifo_max_table_files_size = "10GiB"
            max_immutable_memtables = 4
            "#,
        );
        assert_eq!(opts.memtable_size, 32 << 20);
        assert_eq!(opts.block_cache_size, 1 << 30);
        assert_eq!(opts.row_cache_size, 64 << 20);
        assert!(opts.use_mmap);
        assert_eq!(opts.sync_mode, SyncMode::Interval { interval_ms: 250 });
        assert_eq!(opts.wal_batch_bytes_max, 1 << 20);
        assert_eq!(opts.wal_total_bytes_max, 2 << 30);
        assert_eq!(opts.max_immutable_memtables, 4);
        let ks = &opts.keyspace_defaults;
        assert_eq!(ks.bloom_bits_per_key, 16);
        assert_eq!(ks.compaction_style, CompactionStyle::Universal);
        assert_eq!(ks.compression, Compression::Zstd(9));
        assert_eq!(ks.block_size, 16 << 10);
        assert_eq!(ks.level0_file_num_compaction_trigger, 8);
        assert_eq!(ks.level0_stop_writes_trigger, 20);
        assert_eq!(ks.max_bytes_for_level_base, 512 << 20);
        assert_eq!(ks.level_size_multiplier, 8);
        assert_eq!(ks.num_levels, 5);
        assert_eq!(ks.target_file_size, 128 << 20);
        assert_eq!(ks.fifo_max_table_files_size, 10 << 30);
        // Keys the config does not expose keep their defaults.
        assert_eq!(
            ks.block_restart_interval,
            KeyspaceOptions::default().block_restart_interval
        );
    }

    #[test]
    fn enum_values() {
        assert_eq!(options("[wal]\nsync_mode = \"sync\"").sync_mode, SyncMode::Sync);
        assert_eq!(options("[wal]\nsync_mode = \"none\"").sync_mode, SyncMode::None);
        assert_eq!(
            options("[wal]\nsync_mode = \"interval\"").sync_mode,
            SyncMode::Interval { interval_ms: 100 }
        );
        let style = |s: &str| {
            options(&format!("[compaction]\nstyle = \"{s}\""))
                .keyspace_defaults
                .compaction_style
        };
        assert_eq!(style("leveled"), CompactionStyle::Leveled);
        assert_eq!(style("universal"), CompactionStyle::Universal);
        assert_eq!(style("fifo"), CompactionStyle::Fifo);
        let codec = |s: &str| {
            options(&format!("[compaction]\ncompression = \"{s}\""))
                .keyspace_defaults
                .compression
        };
        assert_eq!(codec("lz4"), Compression::Lz4);
        assert_eq!(codec("zstd"), Compression::Zstd(ZSTD_LEVEL_DEFAULT));
        assert_eq!(codec("none"), Compression::None);

        let err = parse("[wal]\nsync_mode = \"fsync\"").unwrap_err().to_string();
        assert!(err.contains("unknown variant `fsync`"), "{err}");
        assert!(err.contains("`interval`"), "{err}");
        let err = parse("[compaction]\ncompression = \"snappy\"").unwrap_err().to_string();
        assert!(err.contains("unknown variant `snappy`"), "{err}");
    }

    #[test]
    fn size_units() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("4096", 4096),
            ("4096b", 4096),
            ("4096 B", 4096),
            ("512k", 512 * KIB),
            ("512K", 512 * KIB),
            ("512KB", 512 * KIB),
            ("512KiB", 512 * KIB),
            ("64m", 64 * MIB),
            ("64MB", 64 * MIB),
            ("64MiB", 64 * MIB),
            ("64 mib", 64 * MIB),
            (" 64MiB ", 64 * MIB),
            ("1g", GIB),
            ("1GB", GIB),
            ("1GiB", GIB),
            ("2t", 2 * TIB),
            ("2TiB", 2 * TIB),
        ];
        for &(text, bytes) in cases {
            assert_eq!(ByteSize::parse(text), Ok(ByteSize(bytes)), "{text:?}");
        }
        // "64MB" and the manual's integer spelling are the same size.
        assert_eq!(ByteSize::parse("64MB").unwrap().bytes(), 67108864);
    }

    #[test]
    fn size_parse_errors() {
        for text in ["", "MiB", "-1MiB", "1.5GiB", "64 megabytes", "64PiB", "64MiBs", "0x10"] {
            let err = ByteSize::parse(text).unwrap_err();
            assert!(err.contains(&format!("{:?}", text.trim())), "{text:?}: {err}");
        }
        assert!(ByteSize::parse("18446744073709551616")
            .unwrap_err()
            .contains("too large"));
        assert!(ByteSize::parse("17179869184GiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn sizes_in_toml() {
        assert_eq!(options("[memory]\nmemtable_size = 67108864").memtable_size, 64 << 20);
        assert_eq!(options("[memory]\nmemtable_size = \"64MB\"").memtable_size, 64 << 20);
        let err = parse("[memory]\nmemtable_size = -5").unwrap_err().to_string();
        assert!(err.contains("cannot be negative"), "{err}");
        let err = parse("[memory]\nmemtable_size = \"64 parsecs\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown unit"), "{err}");
        let err = parse("[memory]\nmemtable_size = 1.5").unwrap_err().to_string();
        assert!(err.contains("a size: an integer number of bytes"), "{err}");
    }

    #[test]
    fn byte_size_display_and_round_trip() {
        assert_eq!(ByteSize(0).to_string(), "0 bytes");
        assert_eq!(ByteSize(1000).to_string(), "1000 bytes");
        assert_eq!(ByteSize(1536 * KIB).to_string(), "1536 KiB");
        assert_eq!(ByteSize(64 * MIB).to_string(), "64 MiB");
        assert_eq!(ByteSize(4 * GIB).to_string(), "4 GiB");
        assert_eq!(ByteSize(TIB).to_string(), "1 TiB");

        let mut config = EngineConfig::default();
        config.memory.row_cache_size = ByteSize(1000);
        config.compaction.block_size = ByteSize(1536 * KIB);
        let text = toml::to_string(&config).unwrap();
        assert!(text.contains("memtable_size = \"64MiB\""), "{text}");
        assert!(text.contains("row_cache_size = 1000"), "{text}");
        assert_eq!(parse(&text).unwrap(), config);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = parse("[memory]\nmemtable_sise = 1").unwrap_err().to_string();
        assert!(err.contains("unknown field `memtable_sise`"), "{err}");
        assert!(err.contains("`memtable_size`"), "lists the known keys: {err}");
        for section in ["wal", "compaction"] {
            let err = parse(&format!("[{section}]\nbogus = 1")).unwrap_err().to_string();
            assert!(err.contains("unknown field `bogus`"), "{err}");
        }
        let err = parse("[memtable]\nsize = 1").unwrap_err().to_string();
        assert!(err.contains("unknown field `memtable`"), "{err}");
    }

    #[test]
    fn wrong_types_are_rejected() {
        let cases = [
            "[memory]\nmemtable_size = true",
            "[memory]\nbloom_bits_per_key = \"ten\"",
            "[memory]\nbloom_bits_per_key = -1",
            "[memory]\nuse_mmap = \"yes\"",
            "[wal]\nsync_interval_ms = \"100ms\"",
            "[wal]\nsync_mode = 1",
            "[compaction]\nnum_levels = 7.5",
            "[compaction]\nzstd_level = \"high\"",
            "memory = 5",
        ];
        for text in cases {
            // The error points at the line and quotes it, so it names the key.
            let err = parse(text).unwrap_err().to_string();
            let key = text.lines().last().unwrap().split(' ').next().unwrap();
            assert!(err.contains("at line"), "{text:?}: {err}");
            assert!(err.contains(key), "{text:?}: {err}");
        }
    }

    /// Asserts that `key` accepts the ends of its range and rejects the
    /// values just outside, with an error naming the key and the range.
    fn check_bounds(section: &str, name: &str, min: Option<String>, max: String, above: String, reason: &str) {
        let key = format!("{section}.{name}");
        // Values at the bounds are accepted on their own (cross-field checks
        // are kept satisfied by the companion keys below).
        let companions = match key.as_str() {
            "compaction.level0_file_num_compaction_trigger" => "level0_stop_writes_trigger = 1024\n",
            "compaction.level0_stop_writes_trigger" => "level0_file_num_compaction_trigger = 1\n",
            _ => "",
        };
        let with = |value: &str| {
            let mut text = format!("[{section}]\n{companions}{name} = {value}\n");
            if key == "memory.memtable_size" {
                text.push_str("[wal]\ntotal_bytes_max = \"1TiB\"\n");
            }
            if key == "wal.total_bytes_max" {
                text.push_str("[memory]\nmemtable_size = \"1MiB\"\n");
            }
            text
        };
        if let Some(min) = &min {
            parse(&with(min))
                .unwrap()
                .to_options()
                .unwrap_or_else(|e| panic!("{key} = {min}: {e}"));
        }
        parse(&with(&max))
            .unwrap()
            .to_options()
            .unwrap_or_else(|e| panic!("{key} = {max}: {e}"));
        let (k, _, r) = invalid_key(&with(&above));
        assert_eq!(k, key);
        assert_eq!(r, reason, "{key}");
    }

    fn check_below(section: &str, name: &str, below: &str, reason: &str) {
        let (k, _, r) = invalid_key(&format!("[{section}]\n{name} = {below}\n"));
        assert_eq!(k, format!("{section}.{name}"));
        assert_eq!(r, reason);
    }

    #[test]
    fn memory_bounds() {
        let r = "must be between 1 MiB and 4 GiB";
        check_bounds(
            "memory",
            "memtable_size",
            Some("\"1MiB\"".into()),
            "\"4GiB\"".into(),
            "4294967297".into(),
            r,
        );
        check_below("memory", "memtable_size", "1048575", r);
        check_below("memory", "memtable_size", "\"512KiB\"", r);
        let r = "must be between 0 bytes and 1 TiB";
        check_bounds(
            "memory",
            "block_cache_size",
            Some("0".into()),
            "\"1TiB\"".into(),
            "\"2TiB\"".into(),
            r,
        );
        check_bounds(
            "memory",
            "row_cache_size",
            Some("0".into()),
            "\"1TiB\"".into(),
            "\"1025GiB\"".into(),
            r,
        );
        let r = "must be between 0 and 32";
        check_bounds(
            "memory",
            "bloom_bits_per_key",
            Some("0".into()),
            "32".into(),
            "33".into(),
            r,
        );
    }

    #[test]
    fn wal_bounds() {
        let r = "must be between 1 and 60000";
        check_bounds(
            "wal",
            "sync_interval_ms",
            Some("1".into()),
            "60000".into(),
            "60001".into(),
            r,
        );
        check_below("wal", "sync_interval_ms", "0", r);
        let r = "must be between 4 KiB and 16 MiB";
        check_bounds(
            "wal",
            "batch_bytes_max",
            Some("4096".into()),
            "\"16MiB\"".into(),
            "\"17MiB\"".into(),
            r,
        );
        check_below("wal", "batch_bytes_max", "4095", r);
        let r = "must be between 16 MiB and 1 TiB";
        check_bounds(
            "wal",
            "total_bytes_max",
            Some("\"16MiB\"".into()),
            "\"1TiB\"".into(),
            "\"2TiB\"".into(),
            r,
        );
        check_below("wal", "total_bytes_max", "\"15MiB\"", r);
    }

    #[test]
    fn compaction_bounds() {
        let cases: &[(&str, &str, &str, &str, &str, &str)] = &[
            // name, below min, min, max, above max, reason
            ("zstd_level", "0", "1", "22", "23", "must be between 1 and 22"),
            (
                "block_size",
                "1023",
                "\"1KiB\"",
                "\"1MiB\"",
                "1048577",
                "must be between 1 KiB and 1 MiB",
            ),
            (
                "level0_file_num_compaction_trigger",
                "0",
                "1",
                "256",
                "257",
                "must be between 1 and 256",
            ),
            (
                "level0_stop_writes_trigger",
                "1",
                "2",
                "1024",
                "1025",
                "must be between 2 and 1024",
            ),
            (
                "max_bytes_for_level_base",
                "\"1023KiB\"",
                "\"1MiB\"",
                "\"64GiB\"",
                "\"65GiB\"",
                "must be between 1 MiB and 64 GiB",
            ),
            (
                "level_size_multiplier",
                "1",
                "2",
                "100",
                "101",
                "must be between 2 and 100",
            ),
            ("num_levels", "1", "2", "16", "17", "must be between 2 and 16"),
            (
                "target_file_size",
                "\"1023KiB\"",
                "\"1MiB\"",
                "\"4GiB\"",
                "\"5GiB\"",
                "must be between 1 MiB and 4 GiB",
            ),
            (
                "fifo_max_table_files_size",
                "\"1KiB\"",
                "\"1MiB\"",
                "\"64TiB\"",
                "\"65TiB\"",
                "must be between 1 MiB and 64 TiB",
            ),
            (
                "max_immutable_memtables",
                "0",
                "1",
                "16",
                "17",
                "must be between 1 and 16",
            ),
        ];
        for &(name, below, min, max, above, reason) in cases {
            check_bounds("compaction", name, Some(min.into()), max.into(), above.into(), reason);
            check_below("compaction", name, below, reason);
        }
    }

    #[test]
    fn range_error_names_key_value_and_range() {
        let config = parse("[memory]\nmemtable_size = \"512KiB\"").unwrap();
        let err = config.to_options().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration: memory.memtable_size = 512 KiB: must be between 1 MiB and 4 GiB"
        );
    }

    #[test]
    fn stop_writes_trigger_must_exceed_compaction_trigger() {
        let text = "[compaction]\nlevel0_file_num_compaction_trigger = 8\nlevel0_stop_writes_trigger = 8\n";
        let (key, value, reason) = invalid_key(text);
        assert_eq!(key, "compaction.level0_stop_writes_trigger");
        assert_eq!(value, "8");
        assert!(
            reason.contains("greater than compaction.level0_file_num_compaction_trigger (8)"),
            "{reason}"
        );
        options("[compaction]\nlevel0_file_num_compaction_trigger = 8\nlevel0_stop_writes_trigger = 9\n");
        // The default stop trigger (36) is below a raised compaction trigger.
        let (key, _, _) = invalid_key("[compaction]\nlevel0_file_num_compaction_trigger = 40\n");
        assert_eq!(key, "compaction.level0_stop_writes_trigger");
    }

    #[test]
    fn wal_budget_must_hold_a_memtable() {
        let (key, value, reason) = invalid_key("[memory]\nmemtable_size = \"2GiB\"\n");
        assert_eq!(key, "wal.total_bytes_max");
        assert_eq!(value, "1 GiB");
        assert!(reason.contains("at least memory.memtable_size (2 GiB)"), "{reason}");
        options("[memory]\nmemtable_size = \"2GiB\"\n[wal]\ntotal_bytes_max = \"2GiB\"\n");
    }

    #[test]
    fn zstd_level_is_checked_even_when_unused() {
        let (key, _, _) = invalid_key("[compaction]\ncompression = \"lz4\"\nzstd_level = 99\n");
        assert_eq!(key, "compaction.zstd_level");
    }
}
