//! Snapshot isolation: an iterator or snapshot taken before writes, a
//! flush and a compaction still sees exactly its snapshot.

use super::common::*;
use lumadb_engine::storage::mem::MemStorage;
use lumadb_engine::CompactionStyle;
use std::ops::Bound;

#[test]
fn iterator_and_snapshot_survive_writes_flush_and_compaction() {
    run(async {
        let storage = MemStorage::new();
        let e = open(&storage, &tiny_options(CompactionStyle::Leveled)).await;
        let ks = e.keyspace("default").unwrap();
        for i in 0..300 {
            e.put(ks, format!("k{i:04}").as_bytes(), b"old").await.unwrap();
        }
        let snap = e.snapshot();
        let mut it = e.scan(ks, Bound::Unbounded, Bound::Unbounded, None).unwrap();
        // Read a little, then change everything underneath.
        let first = it.next().await.unwrap().unwrap();
        assert_eq!(first, (b"k0000".to_vec(), b"old".to_vec()));
        for i in 0..300 {
            if i % 3 == 0 {
                e.delete(ks, format!("k{i:04}").as_bytes()).await.unwrap();
            } else {
                e.put(ks, format!("k{i:04}").as_bytes(), b"new").await.unwrap();
            }
        }
        e.delete_range(ks, b"k0100", b"k0200").await.unwrap();
        e.put(ks, b"k9999", b"new").await.unwrap();
        e.flush().await.unwrap();
        e.compact_all().await.unwrap();

        let mut n = 1;
        while let Some((k, v)) = it.next().await.unwrap() {
            assert_eq!(v, b"old", "iterator sees its snapshot for {}", show(&k));
            n += 1;
        }
        assert_eq!(n, 300, "iterator sees exactly the keys of its snapshot");
        for i in 0..300 {
            let got = e.get_at(ks, format!("k{i:04}").as_bytes(), &snap).await.unwrap();
            assert_eq!(got.as_deref(), Some(&b"old"[..]), "snapshot read of k{i:04}");
        }
        assert_eq!(e.get_at(ks, b"k9999", &snap).await.unwrap(), None);
        // The current view sees the new state.
        assert_eq!(e.get(ks, b"k0000").await.unwrap(), None);
        assert_eq!(e.get(ks, b"k0001").await.unwrap().as_deref(), Some(&b"new"[..]));
        assert_eq!(e.get(ks, b"k0101").await.unwrap(), None);
        drop(snap);
        // With the snapshot gone, a full compaction drops the old versions.
        e.compact_all().await.unwrap();
        let live = e
            .scan_collect(ks, Bound::Unbounded, Bound::Unbounded, usize::MAX)
            .await
            .unwrap();
        assert!(live.iter().all(|(_, v)| v == b"new"));
    });
}

#[test]
fn expired_values_vanish_and_compaction_drops_them() {
    run(async {
        let storage = MemStorage::new();
        storage.set_clock_ms(Some(1_000_000));
        let e = open(&storage, &tiny_options(CompactionStyle::Leveled)).await;
        let ks = e.keyspace("default").unwrap();
        e.put(ks, b"a", b"old").await.unwrap();
        e.put_expiring(ks, b"a", b"temp", 1_000_500).await.unwrap();
        e.put_expiring(ks, b"b", b"long", 9_000_000).await.unwrap();
        let got = e.get_entry(ks, b"a", None).await.unwrap().unwrap();
        assert_eq!(got.value, b"temp");
        assert_eq!(got.expire_at_unix_ms, Some(1_000_500));
        e.flush().await.unwrap();
        storage.set_clock_ms(Some(1_000_500));
        assert_eq!(
            e.get(ks, b"a").await.unwrap(),
            None,
            "expired value hides the older one too"
        );
        e.compact_all().await.unwrap();
        assert_eq!(e.get(ks, b"a").await.unwrap(), None);
        assert_eq!(e.get(ks, b"b").await.unwrap().as_deref(), Some(&b"long"[..]));
        let all = e
            .scan_collect(ks, Bound::Unbounded, Bound::Unbounded, 10)
            .await
            .unwrap();
        assert_eq!(all, vec![(b"b".to_vec(), b"long".to_vec())]);
    });
}

#[test]
fn keyspaces_are_independent_and_durable() {
    run(async {
        let storage = MemStorage::new();
        let opts = tiny_options(CompactionStyle::Leveled);
        let e = open(&storage, &opts).await;
        let a = e.keyspace("default").unwrap();
        let b = e
            .create_keyspace("redis", opts.keyspace_defaults.clone())
            .await
            .unwrap();
        assert_ne!(a, b);
        let mut batch = lumadb_engine::WriteBatch::new();
        batch.put(a, b"k", b"in-default").unwrap();
        batch.put(b, b"k", b"in-redis").unwrap();
        e.write(batch).await.unwrap();
        e.close().await.unwrap();
        drop(e);
        let e = open(&storage.crash(None), &opts).await;
        let b2 = e.keyspace("redis").unwrap();
        assert_eq!(b2, b);
        assert_eq!(e.get(a, b"k").await.unwrap().as_deref(), Some(&b"in-default"[..]));
        assert_eq!(e.get(b, b"k").await.unwrap().as_deref(), Some(&b"in-redis"[..]));
    });
}

#[test]
fn writes_reach_deep_levels_through_flush_and_compaction() {
    run(async {
        let storage = MemStorage::new();
        let e = open(&storage, &tiny_options(CompactionStyle::Leveled)).await;
        let ks = e.keyspace("default").unwrap();
        for i in 0..20_000u32 {
            let k = format!("k{:06}", (i * 7919) % 10_000);
            e.put(ks, k.as_bytes(), format!("v{i}").as_bytes()).await.unwrap();
            if i % 64 == 0 {
                while e.compact_once().await.unwrap() {}
            }
        }
        let stats = e.stats();
        let levels = &stats.keyspaces[0].levels;
        eprintln!("{stats:#?}");
        assert!(stats.counters.flushes > 10, "flushes happened");
        assert!(stats.counters.compactions > 5, "compactions happened");
        assert!(
            levels.iter().skip(2).any(|l| l.files > 0),
            "data reached L2 or below: {levels:?}"
        );
        let all = e
            .scan_collect(ks, Bound::Unbounded, Bound::Unbounded, usize::MAX)
            .await
            .unwrap();
        assert_eq!(all.len(), 10_000);
    });
}

/// A range delete of nearly everything in a large memtable sets the
/// memtable aside: what survives moves to a new one, and neither reads,
/// a snapshot taken before, a flush nor a replay after a crash can tell.
#[test]
fn a_delete_of_nearly_everything_in_the_memtable_keeps_every_answer() {
    run(async {
        let storage = MemStorage::new();
        let opts = lumadb_engine::EngineOptions {
            memtable_size: 64 << 20,
            ..tiny_options(CompactionStyle::Leveled)
        };
        let e = open(&storage, &opts).await;
        let ks = e.keyspace("default").unwrap();
        // Older data in a table, under both the survivors' range and the deleted one.
        e.put(ks, b"d-old", b"flushed").await.unwrap();
        e.put(ks, b"a-old", b"flushed").await.unwrap();
        e.flush().await.unwrap();
        // Survivors around the range, and an earlier tombstone outside it
        // that must keep hiding `a-old`.
        e.put(ks, b"a-keep", b"1").await.unwrap();
        e.delete_range(ks, b"a-o", b"a-p").await.unwrap();
        e.put(ks, b"z-keep", b"2").await.unwrap();
        e.put(ks, b"z-keep", b"3").await.unwrap();
        for i in 0..20_000u32 {
            e.put(ks, format!("d{i:06}").as_bytes(), b"dead").await.unwrap();
        }
        let before = e.stats().keyspaces[0].memtable_bytes;
        let snap = e.snapshot();
        e.delete_range(ks, b"d", b"e").await.unwrap();
        // With a snapshot registered the memtable is kept.
        assert!(e.stats().keyspaces[0].memtable_bytes >= before);
        assert_eq!(
            e.get_at(ks, b"d000007", &snap).await.unwrap().as_deref(),
            Some(&b"dead"[..])
        );
        drop(snap);
        // Without one, the next such delete sets it aside.
        e.put(ks, b"d000007", b"again").await.unwrap();
        e.delete_range(ks, b"d", b"e").await.unwrap();
        let after = e.stats().keyspaces[0].memtable_bytes;
        assert!(after < before / 100, "memtable went from {before} to {after} bytes");
        e.put(ks, b"d000001", b"new").await.unwrap();

        let expect = |e: lumadb_engine::db::Engine<MemStorage>, context: &'static str| async move {
            let all = e
                .scan_collect(ks, Bound::Unbounded, Bound::Unbounded, usize::MAX)
                .await
                .unwrap();
            let want: Vec<(Vec<u8>, Vec<u8>)> = [("a-keep", "1"), ("d000001", "new"), ("z-keep", "3")]
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect();
            assert_eq!(all, want, "{context}");
            assert_eq!(e.get(ks, b"a-old").await.unwrap(), None, "{context}");
            assert_eq!(e.get(ks, b"d-old").await.unwrap(), None, "{context}");
            assert_eq!(e.get(ks, b"d000007").await.unwrap(), None, "{context}");
        };
        expect(e.clone(), "after the delete").await;
        // Replay from the WAL alone, then after a flush.
        let crashed = storage.crash(None);
        let e2 = open(&crashed, &opts).await;
        expect(e2.clone(), "after a crash and replay").await;
        e2.flush().await.unwrap();
        expect(e2.clone(), "after a flush").await;
        e.flush().await.unwrap();
        expect(e, "the first engine after its flush").await;
    });
}

#[test]
fn a_flushed_range_delete_drops_the_tables_it_covers_whole() {
    run(async {
        let storage = MemStorage::new();
        let opts = tiny_options(CompactionStyle::Leveled);
        let e = open(&storage, &opts).await;
        let ks = e.keyspace("default").unwrap();
        let tables = |e: &lumadb_engine::db::Engine<MemStorage>| -> usize {
            e.stats().keyspaces[0].levels.iter().map(|l| l.files).sum()
        };
        e.put(ks, b"a-keep", b"1").await.unwrap();
        for i in 0..3_000u32 {
            e.put(ks, format!("d{i:06}").as_bytes(), b"doomed").await.unwrap();
        }
        e.put(ks, b"z-keep", b"2").await.unwrap();
        e.flush().await.unwrap();
        e.compact_all().await.unwrap();
        let before = tables(&e);
        assert!(before > 4, "{before} tables");

        // A snapshot below the delete keeps every table it may read.
        let snap = e.snapshot();
        e.delete_range(ks, b"d", b"e").await.unwrap();
        e.flush().await.unwrap();
        assert_eq!(e.stats().counters.tables_dropped_by_range_delete, 0);
        assert_eq!(
            e.get_at(ks, b"d000007", &snap).await.unwrap().as_deref(),
            Some(&b"doomed"[..])
        );
        drop(snap);

        // Without one, the next flushed delete drops them unread.
        e.delete_range(ks, b"d", b"e").await.unwrap();
        e.flush().await.unwrap();
        let dropped = e.stats().counters.tables_dropped_by_range_delete;
        assert!(dropped > 0, "no table dropped");
        assert!(tables(&e) < before, "{} tables, {before} before", tables(&e));

        let expect = |e: lumadb_engine::db::Engine<MemStorage>, context: &'static str| async move {
            let all = e
                .scan_collect(ks, Bound::Unbounded, Bound::Unbounded, usize::MAX)
                .await
                .unwrap();
            let want: Vec<(Vec<u8>, Vec<u8>)> =
                vec![(b"a-keep".to_vec(), b"1".to_vec()), (b"z-keep".to_vec(), b"2".to_vec())];
            assert_eq!(all, want, "{context}");
            assert_eq!(e.get(ks, b"d000007").await.unwrap(), None, "{context}");
        };
        expect(e.clone(), "after the drop").await;
        // The next such delete also drops the table holding the last one
        // (its largest key is that tombstone's exclusive end).
        e.delete_range(ks, b"d", b"e").await.unwrap();
        e.flush().await.unwrap();
        assert!(e.stats().counters.tables_dropped_by_range_delete > dropped);
        expect(e.clone(), "after a second drop").await;
        // The drop and the tombstone's table are one manifest edit.
        let crashed = storage.crash(None);
        let e2 = open(&crashed, &opts).await;
        expect(e2.clone(), "after a crash").await;
        e2.compact_all().await.unwrap();
        expect(e2, "after a full compaction").await;
    });
}

/// A range delete acknowledged but not yet flushed when the process dies
/// is replayed at open, and the flush of what was replayed drops the
/// tables it covers whole, files included.
#[test]
fn a_replayed_range_delete_drops_the_tables_it_covers_at_open() {
    run(async {
        let storage = MemStorage::new();
        let opts = tiny_options(CompactionStyle::Leveled);
        let e = open(&storage, &opts).await;
        let ks = e.keyspace("default").unwrap();
        e.put(ks, b"a-keep", b"1").await.unwrap();
        for i in 0..3_000u32 {
            e.put(ks, format!("d{i:06}").as_bytes(), b"doomed").await.unwrap();
        }
        e.flush().await.unwrap();
        e.compact_all().await.unwrap();
        let tables = |storage: &MemStorage| storage.file_names().into_iter().filter(|n| n.ends_with(".sst")).count();
        let before = tables(&storage);
        assert!(before > 4, "{before} tables");
        e.delete_range(ks, b"d", b"e").await.unwrap();
        assert_eq!(e.stats().counters.tables_dropped_by_range_delete, 0, "not flushed yet");

        let crashed = storage.crash(None);
        let e2 = open(&crashed, &opts).await;
        assert!(
            e2.stats().counters.tables_dropped_by_range_delete > 0,
            "no table dropped at open"
        );
        assert!(
            tables(&crashed) < before,
            "{} table files left of {before}",
            tables(&crashed)
        );
        let all = e2
            .scan_collect(ks, Bound::Unbounded, Bound::Unbounded, usize::MAX)
            .await
            .unwrap();
        assert_eq!(all, vec![(b"a-keep".to_vec(), b"1".to_vec())]);
        drop(e2);
        let e3 = open(&crashed.crash(None), &opts).await;
        assert_eq!(e3.get(ks, b"d000007").await.unwrap(), None, "after a second open");
    });
}
