//! INFO, CLIENT LIST and CONFIG GET texts, in Redis's formats.

use std::fmt::Write;
use std::time::Instant;

use super::{ClientInfo, Shard, ShardStats};

/// The INFO reply for `sections` (none, `default`, `all` or names).
/// `pubsub`: distinct channels and patterns subscribed over all shards.
pub fn render(shard: &Shard, stats: &[ShardStats], pubsub: (usize, usize), sections: &[String]) -> String {
    let all = sections.is_empty()
        || sections
            .iter()
            .any(|s| s == "all" || s == "default" || s == "everything");
    let want = |name: &str| all || sections.iter().any(|s| s == name);
    let sum = |f: fn(&ShardStats) -> u64| stats.iter().map(f).sum::<u64>();
    let mut out = String::new();
    let uptime = shard.ctx.control.uptime().as_secs();
    if want("server") {
        let _ = write!(
            out,
            "# Server\r\nredis_version:{}\r\nlumadb_version:{}\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:64\r\n\
             multiplexing_api:io_uring\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\n\
             shards:{}\r\n\r\n",
            crate::resp::command::redis_version(),
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::process::id(),
            shard.settings.redis_addr.map_or(0, |a| a.port()),
            uptime,
            uptime / 86400,
            shard.shards(),
        );
    }
    if want("clients") {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\ntotal_blocking_keys:{}\r\n\r\n",
            sum(|s| s.connections_current),
            shard.max_clients.get(),
            sum(|s| s.blocked_clients),
            sum(|s| s.blocking_keys),
        );
    }
    if want("memory") {
        let used = stats.iter().map(|s| s.memory.total()).sum::<u64>();
        let limit = sum(|s| s.memory_limit_bytes);
        let _ = write!(
            out,
            "# Memory\r\nused_memory:{used}\r\nused_memory_human:{:.2}M\r\nmaxmemory:0\r\nmemory_limit:{limit}\r\n\
             maxmemory_policy:noeviction\r\nmem_memtables:{}\r\nmem_block_cache:{}\r\nmem_row_cache:{}\r\n\
             mem_indexes:{}\r\n\r\n",
            used as f64 / (1 << 20) as f64,
            stats.iter().map(|s| s.memory.memtables).sum::<u64>(),
            stats.iter().map(|s| s.memory.block_cache).sum::<u64>(),
            stats.iter().map(|s| s.memory.row_cache).sum::<u64>(),
            stats.iter().map(|s| s.memory.indexes).sum::<u64>(),
        );
    }
    if want("persistence") {
        // LumaDB's own names (CONFIG GET appendfsync answers Redis's).
        let sync = match shard.ctx.engine.options().sync_mode {
            lumadb_engine::SyncMode::Sync => "sync".to_string(),
            lumadb_engine::SyncMode::Interval { interval_ms } => {
                format!("interval\r\nwal_sync_interval_ms:{interval_ms}")
            }
            lumadb_engine::SyncMode::None => "none".to_string(),
        };
        let _ = write!(
            out,
            "# Persistence\r\nloading:0\r\naof_enabled:1\r\nwal_sync_mode:{sync}\r\nwal_syncs:{}\r\n\
             wal_write_groups:{}\r\nwal_bytes_written:{}\r\nflushes:{}\r\ncompactions:{}\r\n\
             compaction_pending_bytes:{}\r\nread_only:{}\r\nstorage_errors:{}\r\n\r\n",
            stats.iter().map(|s| s.engine.counters.wal_syncs).sum::<u64>(),
            stats.iter().map(|s| s.engine.counters.write_groups).sum::<u64>(),
            stats.iter().map(|s| s.engine.counters.wal_bytes_written).sum::<u64>(),
            stats.iter().map(|s| s.engine.counters.flushes).sum::<u64>(),
            stats.iter().map(|s| s.engine.counters.compactions).sum::<u64>(),
            stats
                .iter()
                .flat_map(|s| s.engine.keyspaces.iter().map(|k| k.pending_compaction_bytes))
                .sum::<u64>(),
            u8::from(shard.read_only.get()),
            stats.iter().filter(|s| s.poisoned.is_some()).count(),
        );
    }
    if want("stats") {
        // Counters since the last CONFIG RESETSTAT.
        let counters: Vec<_> = stats.iter().map(|s| (s.info_counters(), s.info_baseline)).collect();
        let since = |f: fn(&super::InfoCounters) -> u64| -> u64 {
            counters.iter().map(|(now, base)| f(now).saturating_sub(f(base))).sum()
        };
        let _ = write!(
            out,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
             rejected_connections:{}\r\nexpired_keys:{}\r\n\
             pubsub_channels:{}\r\npubsub_patterns:{}\r\n\
             cross_shard_requests:{}\r\nstalls_detected:{}\r\n\r\n",
            since(|c| c.connections_total),
            since(|c| c.commands_processed),
            since(|c| c.rejected_connections),
            since(|c| c.expired_keys),
            pubsub.0,
            pubsub.1,
            since(|c| c.xcore_sent),
            since(|c| c.stalls),
        );
    }
    if want("keyspace") {
        out.push_str("# Keyspace\r\n");
        let keys = sum(|s| s.keys);
        if keys > 0 {
            let _ = write!(out, "db0:keys={keys},expires={},avg_ttl=0\r\n", sum(|s| s.expires));
        }
        out.push_str("\r\n");
    }
    if out.ends_with("\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    out
}

/// One CLIENT LIST line.
pub fn client_line(shard: &Shard, c: &ClientInfo) -> String {
    let now = Instant::now();
    format!(
        "id={} addr={} laddr={} fd=0 name={} age={} idle={} flags={} db=0 sub={} psub={} ssub=0 multi={} qbuf=0 \
         qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default \
         redir=-1 resp={} shard={}\n",
        c.id,
        c.addr,
        shard.settings.redis_addr.map_or_else(String::new, |a| a.to_string()),
        String::from_utf8_lossy(&c.name.borrow()),
        now.duration_since(c.connected_at).as_secs(),
        now.duration_since(c.last_active.get()).as_secs(),
        flags(c),
        c.sub.get(),
        c.psub.get(),
        c.multi.get(),
        c.last_command.borrow(),
        if c.resp3.get() { 3 } else { 2 },
        shard.id(),
    )
}

/// The `id=` of a [`client_line`].
pub fn line_client_id(line: &str) -> Option<i64> {
    line.strip_prefix("id=")?.split(' ').next()?.parse().ok()
}

/// Whether a [`client_line`] is a client in Pub/Sub mode (flag `P`).
pub fn line_is_pubsub(line: &str) -> bool {
    line.split(' ')
        .find_map(|field| field.strip_prefix("flags="))
        .is_some_and(|f| f.contains('P'))
}

/// CLIENT LIST `flags=`: Redis's letters in its order, `N` for none.
fn flags(c: &ClientInfo) -> String {
    let mut f = String::new();
    if c.sub.get() + c.psub.get() > 0 {
        f.push('P');
    }
    if c.multi.get() >= 0 {
        f.push('x');
    }
    if c.blocked.get() {
        f.push('b');
    }
    if f.is_empty() {
        f.push('N');
    }
    f
}

/// Every client of `shard`.
pub fn client_list(shard: &Shard) -> String {
    shard.clients.borrow().values().map(|c| client_line(shard, c)).collect()
}

/// The parameters CONFIG GET knows, with their current values.
pub fn config_params(shard: &Shard) -> Vec<(String, String)> {
    let s = &shard.ctx.config.server;
    let sync = match shard.ctx.engine.options().sync_mode {
        lumadb_engine::SyncMode::Sync => "always",
        lumadb_engine::SyncMode::Interval { .. } => "everysec",
        lumadb_engine::SyncMode::None => "no",
    };
    vec![
        ("maxclients".into(), shard.max_clients.get().to_string()),
        ("timeout".into(), shard.idle_timeout_secs.get().to_string()),
        ("proto-max-bulk-len".into(), s.max_bulk_bytes.0.to_string()),
        (
            "client-query-buffer-limit".into(),
            s.client_query_buffer_bytes.0.to_string(),
        ),
        ("port".into(), s.redis_port.to_string()),
        ("bind".into(), s.bind.clone()),
        ("databases".into(), "1".into()),
        ("appendonly".into(), "yes".into()),
        ("appendfsync".into(), sync.into()),
        ("save".into(), String::new()),
        ("maxmemory".into(), "0".into()),
        ("maxmemory-policy".into(), "noeviction".into()),
        (
            "slowlog-log-slower-than".into(),
            (shard.slow_query_ms.get() * 1000).to_string(),
        ),
        (
            "loglevel".into(),
            shard
                .settings
                .logging
                .as_ref()
                .map_or_else(|| "notice".into(), |l| l.level()),
        ),
        ("dir".into(), shard.ctx.config.server.log_dir.clone()),
        ("requirepass".into(), shard.requirepass.borrow().to_string()),
        ("disable-thp".into(), if s.disable_thp { "yes" } else { "no" }.into()),
    ]
}
