//! `lumadb tune --config-out`: a `config.toml` matching the host: the
//! shards and the memory split.
//!
//! The memory split: LumaDB takes [`MEMORY_BUDGET_PERCENT`] of RAM
//! (the rest is for the kernel, the page cache, connection buffers and
//! other programs), divided evenly between shards. Of a shard's part,
//! memtables get a quarter, the block cache 55 % and the row cache 20 %.
//! A keyspace holds up to three memtables at once (the active one and
//! two frozen ones being flushed, `max_immutable_memtables = 2`), so
//! `memtable_size` is a third of the memtables' quarter.
//!
//! Back of the envelope: 64 GiB and 16 shards → 38.4 GiB for LumaDB, 2.4 GiB
//! per shard: memtable_size 204 MiB (612 MiB in memtables), block cache
//! 1351 MiB, row cache 491 MiB.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::sysfs;
use crate::topology::{format_cpuset, Cpu};

/// Share of RAM given to LumaDB's memtables and caches, in percent.
pub const MEMORY_BUDGET_PERCENT: u64 = 60;
/// Share of a shard's memory for memtables, in percent.
pub const MEMTABLES_PERCENT: u64 = 25;
/// Share of a shard's memory for the block cache, in percent.
pub const BLOCK_CACHE_PERCENT: u64 = 55;
/// Share of a shard's memory for the row cache, in percent.
pub const ROW_CACHE_PERCENT: u64 = 20;
const _: () = assert!(MEMTABLES_PERCENT + BLOCK_CACHE_PERCENT + ROW_CACHE_PERCENT == 100);

/// Memtables a keyspace holds at once: the active one plus the default
/// `max_immutable_memtables` (2) frozen ones.
pub const MEMTABLES_PER_KEYSPACE: u64 = 3;
/// Smallest `memtable_size` written: smaller memtables make many tiny
/// tables and much compaction.
pub const MEMTABLE_SIZE_BYTES_MIN: u64 = 8 << 20;
/// Largest `memtable_size` written: larger ones lengthen WAL replay after
/// a crash and stay under the default `wal.total_bytes_max` (1 GiB).
pub const MEMTABLE_SIZE_BYTES_MAX: u64 = 256 << 20;

const MIB: u64 = 1 << 20;

/// Each shard's memory, in bytes, rounded down to whole MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemorySplit {
    pub memtable_size_bytes: u64,
    pub block_cache_size_bytes: u64,
    pub row_cache_size_bytes: u64,
}

/// `MemTotal` of `proc/meminfo` under `root`, in bytes.
pub fn mem_total_bytes(root: &Path) -> Result<u64> {
    let path = sysfs::join(root, "proc/meminfo")?;
    let text = sysfs::read(&path)?;
    let malformed = |reason: &str| Error::Malformed {
        path: path.clone(),
        reason: reason.to_string(),
    };
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .ok_or_else(|| malformed("no MemTotal line"))?;
    let mut fields = line.split_whitespace();
    let kib: u64 = fields
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| malformed("MemTotal is not a number"))?;
    match fields.next() {
        Some("kB") => kib.checked_mul(1024).ok_or_else(|| malformed("MemTotal is too large")),
        _ => Err(malformed("MemTotal is not in kB")),
    }
}

/// The per-shard memory for `shard_count` shards on a host with
/// `mem_total_bytes` of RAM (see the module docs).
pub fn memory_split(mem_total_bytes: u64, shard_count: usize) -> MemorySplit {
    let shard_count = shard_count.max(1) as u64;
    let budget_bytes = mem_total_bytes / 100 * MEMORY_BUDGET_PERCENT;
    let shard_bytes = budget_bytes / shard_count;
    let round = |bytes: u64| bytes / MIB * MIB;
    let memtable_size_bytes = round(shard_bytes / 100 * MEMTABLES_PERCENT / MEMTABLES_PER_KEYSPACE)
        .clamp(MEMTABLE_SIZE_BYTES_MIN, MEMTABLE_SIZE_BYTES_MAX);
    MemorySplit {
        memtable_size_bytes,
        block_cache_size_bytes: round(shard_bytes / 100 * BLOCK_CACHE_PERCENT),
        row_cache_size_bytes: round(shard_bytes / 100 * ROW_CACHE_PERCENT),
    }
}

/// `config.toml` text for shards on `selected` CPUs (out of
/// `allowed_cpu_count` this process may use) on a host with
/// `mem_total_bytes` of RAM and `numa_nodes` NUMA nodes.
///
/// `[shards] cpuset` is empty (every allowed CPU) when every allowed CPU
/// has a shard, and lists the selected CPUs otherwise.
pub fn config_toml(selected: &[Cpu], allowed_cpu_count: usize, numa_nodes: usize, mem_total_bytes: u64) -> String {
    let split = memory_split(mem_total_bytes, selected.len());
    let cpus: Vec<usize> = selected.iter().map(|cpu| cpu.os_index).collect();
    let cpuset = if selected.len() < allowed_cpu_count {
        format_cpuset(&cpus)
    } else {
        String::new()
    };
    let mib = |bytes: u64| format!("\"{}MiB\"", bytes / MIB);
    let mut text = String::new();
    let _ = writeln!(text, "# LumaDB configuration written by `lumadb tune` for this host:");
    let _ = writeln!(
        text,
        "# {} shards on CPUs {}, {} NUMA node{}, {} MiB of RAM.",
        selected.len(),
        format_cpuset(&cpus),
        numa_nodes,
        if numa_nodes == 1 { "" } else { "s" },
        mem_total_bytes / MIB,
    );
    let _ = writeln!(
        text,
        "# Memory: {MEMORY_BUDGET_PERCENT}% of RAM for LumaDB, split evenly between shards; per shard \
         {MEMTABLES_PERCENT}% memtables\n# ({MEMTABLES_PER_KEYSPACE} per keyspace at once), \
         {BLOCK_CACHE_PERCENT}% block cache, {ROW_CACHE_PERCENT}% row cache. Check it with\n\
         # `lumadb config validate FILE`."
    );
    let _ = writeln!(text);
    let _ = writeln!(text, "[shards]");
    let _ = writeln!(text, "# One shard per CPU, pinned to it.");
    let _ = writeln!(text, "count = {}", selected.len());
    let _ = writeln!(text, "cpuset = \"{cpuset}\"");
    let _ = writeln!(text);
    let _ = writeln!(text, "[memory]");
    let _ = writeln!(text, "# Per shard.");
    let _ = writeln!(text, "memtable_size = {}", mib(split.memtable_size_bytes));
    let _ = writeln!(text, "block_cache_size = {}", mib(split.block_cache_size_bytes));
    let _ = writeln!(text, "row_cache_size = {}", mib(split.row_cache_size_bytes));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn meminfo_total_is_read_in_bytes() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("proc")).unwrap();
        std::fs::write(
            root.path().join("proc/meminfo"),
            "MemTotal:       16314628 kB\nMemFree:  1 kB\n",
        )
        .unwrap();
        assert_eq!(mem_total_bytes(root.path()).unwrap(), 16314628 * 1024);
        std::fs::write(root.path().join("proc/meminfo"), "MemFree:  1 kB\n").unwrap();
        let err = mem_total_bytes(root.path()).unwrap_err().to_string();
        assert!(err.contains("no MemTotal line"), "{err}");
        std::fs::write(root.path().join("proc/meminfo"), "MemTotal: lots\n").unwrap();
        assert!(matches!(mem_total_bytes(root.path()), Err(Error::Malformed { .. })));
        std::fs::remove_file(root.path().join("proc/meminfo")).unwrap();
        assert!(matches!(mem_total_bytes(root.path()), Err(Error::Read { .. })));
    }

    #[test]
    fn memory_split_follows_the_envelope() {
        let split = memory_split(64 * GIB, 16);
        assert_eq!(split.memtable_size_bytes, 204 * MIB);
        assert_eq!(split.block_cache_size_bytes, 1351 * MIB);
        assert_eq!(split.row_cache_size_bytes, 491 * MIB);
        let per_shard = MEMTABLES_PER_KEYSPACE * split.memtable_size_bytes
            + split.block_cache_size_bytes
            + split.row_cache_size_bytes;
        assert!(per_shard * 16 <= 64 * GIB * MEMORY_BUDGET_PERCENT / 100);
    }

    #[test]
    fn memory_split_clamps_memtables() {
        // A big host: memtables stop at the maximum.
        assert_eq!(memory_split(1024 * GIB, 4).memtable_size_bytes, MEMTABLE_SIZE_BYTES_MAX);
        // A tiny one: at least the minimum; caches may be small, never negative.
        let split = memory_split(GIB, 64);
        assert_eq!(split.memtable_size_bytes, MEMTABLE_SIZE_BYTES_MIN);
        assert_eq!(split.block_cache_size_bytes, 5 * MIB);
        // Zero shards is treated as one, never a division by zero.
        assert_eq!(memory_split(GIB, 0), memory_split(GIB, 1));
    }

    fn cpus(indexes: &[usize]) -> Vec<Cpu> {
        indexes
            .iter()
            .map(|&os_index| Cpu {
                os_index,
                numa_node: 0,
                core: os_index,
            })
            .collect()
    }

    #[test]
    fn config_lists_the_cpuset_only_for_a_subset() {
        let all = config_toml(&cpus(&[0, 1, 2, 3]), 4, 1, 16 * GIB);
        let value: toml::Value = toml::from_str(&all).unwrap();
        assert_eq!(value["shards"]["count"].as_integer(), Some(4));
        assert_eq!(value["shards"]["cpuset"].as_str(), Some(""));
        assert_eq!(value["memory"]["memtable_size"].as_str(), Some("204MiB"));
        assert_eq!(value["memory"]["block_cache_size"].as_str(), Some("1351MiB"));
        assert_eq!(value["memory"]["row_cache_size"].as_str(), Some("491MiB"));
        assert!(
            all.contains("# 4 shards on CPUs 0-3, 1 NUMA node, 16384 MiB of RAM."),
            "{all}"
        );

        let some = config_toml(&cpus(&[2, 3, 5]), 8, 2, 16 * GIB);
        let value: toml::Value = toml::from_str(&some).unwrap();
        assert_eq!(value["shards"]["count"].as_integer(), Some(3));
        assert_eq!(value["shards"]["cpuset"].as_str(), Some("2-3,5"));
        assert!(some.contains("2 NUMA nodes"), "{some}");
    }
}
