//! Shared helpers: tiny options so flushes and compactions happen all the
//! time, a single-threaded executor, and whole-state comparison.

use lumadb_engine::db::Engine;
use lumadb_engine::storage::mem::MemStorage;
use lumadb_engine::{CompactionStyle, EngineOptions, KeyspaceOptions, SyncMode};
use std::collections::BTreeMap;
use std::ops::Bound;

pub fn tiny_options(style: CompactionStyle) -> EngineOptions {
    EngineOptions {
        memtable_size: 4 << 10,
        max_immutable_memtables: 2,
        block_cache_size: 64 << 10,
        row_cache_size: 16 << 10,
        sync_mode: SyncMode::Sync,
        wal_batch_bytes_max: 64 << 10,
        wal_total_bytes_max: 256 << 10,
        recovery_mode: false,
        keyspace_defaults: KeyspaceOptions {
            block_size: 256,
            block_restart_interval: 4,
            bloom_bits_per_key: 10,
            compaction_style: style,
            level0_file_num_compaction_trigger: 2,
            level0_stop_writes_trigger: 8,
            max_bytes_for_level_base: 16 << 10,
            level_size_multiplier: 4,
            num_levels: 4,
            target_file_size: 8 << 10,
            fifo_max_table_files_size: 1 << 30,
            ..KeyspaceOptions::default()
        },
        ..EngineOptions::default()
    }
}

pub fn run<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

pub async fn open(storage: &MemStorage, opts: &EngineOptions) -> Engine<MemStorage> {
    match Engine::open(storage.clone(), opts.clone()).await {
        Ok(e) => e,
        Err(e) => panic!("open failed: {e}"),
    }
}

/// Asserts that the default keyspace holds exactly `model`, by scan and by get.
pub async fn assert_matches(engine: &Engine<MemStorage>, model: &BTreeMap<Vec<u8>, Vec<u8>>, context: &str) {
    let ks = engine.keyspace("default").expect("default keyspace");
    let all = engine
        .scan_collect(ks, Bound::Unbounded, Bound::Unbounded, usize::MAX)
        .await
        .expect("scan");
    let expected: Vec<(Vec<u8>, Vec<u8>)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if all != expected {
        let got: BTreeMap<_, _> = all.into_iter().collect();
        for (k, v) in model {
            if got.get(k) != Some(v) {
                panic!(
                    "{context}: scan: key {:?} expected {:?} got {:?}",
                    show(k),
                    show(v),
                    got.get(k).map(|v| show(v))
                );
            }
        }
        for (k, v) in &got {
            if !model.contains_key(k) {
                panic!("{context}: scan: unexpected key {:?} = {:?}", show(k), show(v));
            }
        }
    }
    for (k, v) in model {
        let got = engine.get(ks, k).await.expect("get");
        assert_eq!(got.as_deref(), Some(v.as_slice()), "{context}: get {:?}", show(k));
    }
}

pub fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
