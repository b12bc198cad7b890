//! Sync modes, FIFO expiry of old files, multi-get, memory accounting and
//! write stalls.

use super::common::*;
use lumadb_engine::storage::mem::MemStorage;
use lumadb_engine::{CompactionStyle, SyncMode, WriteBatch};
use std::collections::BTreeMap;
use std::ops::Bound;

#[test]
fn sync_mode_acknowledges_only_durable_writes() {
    run(async {
        let storage = MemStorage::new();
        let opts = tiny_options(CompactionStyle::Leveled);
        let e = open(&storage, &opts).await;
        let ks = e.keyspace("default").unwrap();
        for i in 0..50u32 {
            e.put(ks, format!("k{i}").as_bytes(), b"v").await.unwrap();
        }
        // No close, no explicit sync: a crash now keeps every acknowledged write.
        let after = open(&storage.crash(None), &opts).await;
        for i in 0..50u32 {
            assert!(
                after.get(ks, format!("k{i}").as_bytes()).await.unwrap().is_some(),
                "k{i}"
            );
        }
    });
}

#[test]
fn interval_mode_is_durable_after_sync_wal() {
    run(async {
        let storage = MemStorage::new();
        let mut opts = tiny_options(CompactionStyle::Leveled);
        opts.memtable_size = 64 << 20;
        opts.wal_total_bytes_max = 1 << 30; // as the config requires: at least the memtable
        opts.sync_mode = SyncMode::Interval { interval_ms: 50 };
        let e = open(&storage, &opts).await;
        let ks = e.keyspace("default").unwrap();
        let syncs_before = storage.syncs_done();
        for i in 0..20u32 {
            e.put(ks, format!("k{i}").as_bytes(), b"v").await.unwrap();
        }
        assert_eq!(
            storage.syncs_done(),
            syncs_before,
            "interval mode does not sync per write"
        );
        // Visible before durable in this mode.
        assert!(e.get(ks, b"k0").await.unwrap().is_some());
        let lost = open(&storage.crash(None), &opts).await;
        assert!(
            lost.get(ks, b"k0").await.unwrap().is_none(),
            "unsynced writes are lost by a crash"
        );
        drop(lost);
        e.sync_wal().await.unwrap();
        let kept = open(&storage.crash(None), &opts).await;
        for i in 0..20u32 {
            assert!(
                kept.get(ks, format!("k{i}").as_bytes()).await.unwrap().is_some(),
                "k{i} after sync_wal"
            );
        }
    });
}

#[test]
fn write_pressure_rises_as_frozen_memtables_wait_and_falls_once_flushed() {
    run(async {
        let storage = MemStorage::new();
        let mut opts = tiny_options(CompactionStyle::Leveled);
        opts.memtable_size = 64 << 10;
        opts.max_immutable_memtables = 2;
        opts.wal_total_bytes_max = 1 << 30;
        let e = open(&storage, &opts).await;
        let ks = e.keyspace("default").unwrap();
        assert_eq!(e.write_pressure(), 0.0, "nothing waits");
        e.put(ks, b"a", &[b'v'; 100]).await.unwrap();
        e.freeze(ks).await.unwrap();
        // One frozen memtable waits: the pressure follows the new
        // memtable's fill toward the stall a second freeze would cause.
        let empty = e.write_pressure();
        for i in 0..200u32 {
            e.put(ks, format!("k{i:04}").as_bytes(), &[b'v'; 100]).await.unwrap();
        }
        let filled = e.write_pressure();
        assert!(
            empty < filled && filled < 1.0,
            "pressure {empty} with an empty memtable, {filled} with a part-full one"
        );
        e.freeze(ks).await.unwrap();
        assert_eq!(e.write_pressure(), 1.0, "two frozen memtables: writers would stall");
        while e.flush_once().await.unwrap() {}
        assert_eq!(e.write_pressure(), 0.0, "flushed");
    });
}

#[test]
fn a_flushed_table_is_read_from_the_block_cache() {
    run(async {
        let storage = MemStorage::new();
        let mut opts = tiny_options(CompactionStyle::Leveled);
        opts.memtable_size = 1 << 20;
        opts.wal_total_bytes_max = 1 << 30;
        opts.block_cache_size = 1 << 20;
        opts.row_cache_size = 0;
        let e = open(&storage, &opts).await;
        let ks = e.keyspace("default").unwrap();
        for i in 0..500u32 {
            e.put(ks, format!("k{i:04}").as_bytes(), &[b'v'; 40]).await.unwrap();
        }
        e.flush().await.unwrap();
        let before = e.stats();
        for i in 0..500u32 {
            assert!(e.get(ks, format!("k{i:04}").as_bytes()).await.unwrap().is_some());
        }
        let after = e.stats();
        let requests = after.block_cache_requests - before.block_cache_requests;
        let hits = after.block_cache_hits - before.block_cache_hits;
        assert!(requests >= 500, "the reads went to the table ({requests} block reads)");
        assert_eq!(
            hits, requests,
            "every block of the flushed table was cached as it was written"
        );
    });
}

#[test]
fn a_memtable_switch_writes_on_into_the_prepared_segment() {
    run(async {
        let storage = MemStorage::new();
        let opts = tiny_options(CompactionStyle::Leveled);
        let e = open(&storage, &opts).await;
        let ks = e.keyspace("default").unwrap();
        let wal_files = || -> Vec<u64> {
            let mut v: Vec<u64> = storage
                .file_names()
                .iter()
                .filter_map(|n| lumadb_engine::wal::parse_wal_file_name(n))
                .collect();
            v.sort_unstable();
            v
        };
        e.put(ks, b"a", b"1").await.unwrap();
        e.prepare_wal_segment().await.unwrap();
        let prepared = *wal_files().last().unwrap();
        e.flush().await.unwrap(); // freezes the memtable: a roll
        e.put(ks, b"b", b"2").await.unwrap();
        assert_eq!(
            wal_files().last(),
            Some(&prepared),
            "the roll switched to the prepared segment and created none"
        );
        e.prepare_wal_segment().await.unwrap();
        assert!(
            *wal_files().last().unwrap() > prepared,
            "the next one is prepared after it"
        );
        drop(e);
        let reopened = open(&storage.crash(None), &opts).await;
        assert_eq!(reopened.get(ks, b"a").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(reopened.get(ks, b"b").await.unwrap().as_deref(), Some(&b"2"[..]));
    });
}

#[test]
fn a_torn_segment_tail_before_a_prepared_segment_recovers_as_a_last_one() {
    run(async {
        let storage = MemStorage::new();
        let mut opts = tiny_options(CompactionStyle::Leveled);
        opts.memtable_size = 64 << 20;
        opts.wal_total_bytes_max = 1 << 30;
        opts.sync_mode = SyncMode::Interval { interval_ms: 50 };
        let e = open(&storage, &opts).await;
        let ks = e.keyspace("default").unwrap();
        for i in 0..20u32 {
            e.put(ks, format!("k{i}").as_bytes(), b"durable").await.unwrap();
        }
        e.sync_wal().await.unwrap();
        // The next segment, ready ahead of a roll: header only.
        e.prepare_wal_segment().await.unwrap();
        // Written out over many pages but never synced: a power loss
        // keeps some pages and drops others.
        let big = vec![b'x'; 3000];
        for i in 0..40u32 {
            e.put(ks, format!("t{i}").as_bytes(), &big).await.unwrap();
        }
        e.write_wal().await.unwrap();
        let mut torn_tails = 0;
        for seed in 0..64 {
            let crashed = open(&storage.crash(Some(seed)), &opts).await;
            if crashed.recovery_report().torn_tail.is_some() {
                torn_tails += 1;
            }
            for i in 0..20u32 {
                assert_eq!(
                    crashed.get(ks, format!("k{i}").as_bytes()).await.unwrap().as_deref(),
                    Some(&b"durable"[..]),
                    "seed {seed}: k{i}"
                );
            }
        }
        assert!(torn_tails > 0, "some crash tore the written tail");
    });
}

#[test]
fn none_mode_never_syncs_the_wal_per_write() {
    run(async {
        let storage = MemStorage::new();
        let mut opts = tiny_options(CompactionStyle::Leveled);
        opts.memtable_size = 64 << 20;
        opts.wal_total_bytes_max = 1 << 30; // as the config requires: at least the memtable
        opts.sync_mode = SyncMode::None;
        let e = open(&storage, &opts).await;
        let ks = e.keyspace("default").unwrap();
        let before = storage.syncs_done();
        for i in 0..100u32 {
            e.put(ks, format!("k{i}").as_bytes(), b"v").await.unwrap();
        }
        assert_eq!(storage.syncs_done(), before);
        // A clean close syncs.
        e.close().await.unwrap();
        let after = open(&storage.crash(None), &opts).await;
        assert!(after.get(ks, b"k99").await.unwrap().is_some());
    });
}

#[test]
fn relaxed_modes_write_the_wal_behind_in_bounded_pieces() {
    run(async {
        let storage = MemStorage::new();
        let mut opts = tiny_options(CompactionStyle::Leveled);
        opts.memtable_size = 64 << 20;
        opts.wal_total_bytes_max = 1 << 30; // as the config requires: at least the memtable
        opts.sync_mode = SyncMode::Interval { interval_ms: 100 };
        let e = open(&storage, &opts).await;
        let ks = e.keyspace("default").unwrap();
        // Small writes are acknowledged without any I/O.
        let before = storage.writes_done();
        for i in 0..100u32 {
            e.put(ks, format!("k{i}").as_bytes(), b"v").await.unwrap();
        }
        assert_eq!(storage.writes_done(), before, "no WAL write per group");
        // Past the write-behind bound, the gathered records go out at once
        // (with no write-behind task running, a group writes them).
        let value = vec![b'x'; 4096];
        let n = lumadb_engine::db::WAL_WRITE_BEHIND_BYTES_MAX / value.len() + 1;
        for i in 0..n {
            e.put(ks, format!("big{i}").as_bytes(), &value).await.unwrap();
        }
        assert!(storage.writes_done() > before, "write-behind is bounded");
        // The interval's sync writes and syncs the rest.
        e.sync_wal().await.unwrap();
        let after = open(&storage.crash(None), &opts).await;
        assert!(after.get(ks, b"k99").await.unwrap().is_some());
        assert!(after
            .get(ks, format!("big{}", n - 1).as_bytes())
            .await
            .unwrap()
            .is_some());
    });
}

/// A value rewritten in place keeps the memtable small while the WAL
/// grows; the WAL bound still flushes it, so the log (and the replay at
/// the next start) stays bounded.
#[test]
fn a_value_rewritten_in_place_still_flushes_at_the_wal_bound() {
    run(async {
        let storage = MemStorage::new();
        let mut opts = tiny_options(CompactionStyle::Leveled);
        opts.memtable_size = 4 << 20;
        opts.wal_total_bytes_max = 1 << 20;
        let e = open(&storage, &opts).await;
        let ks = e.keyspace("default").unwrap();
        let mut value = Vec::new();
        for i in 0..100u32 {
            value = vec![(i % 251) as u8; 64 << 10];
            e.put(ks, b"k", &value).await.unwrap();
        }
        assert!(e.stats().counters.flushes > 0, "6.4 MB of WAL and no flush");
        e.close().await.unwrap();
        let after = open(&storage.crash(None), &opts).await;
        assert_eq!(after.get(ks, b"k").await.unwrap(), Some(value));
    });
}

/// Gives the other futures of a `join!` a turn.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

/// In the relaxed modes a write never waits for the disk: while the
/// write-behind task's write (and an interval sync) hang on a slow
/// device, writers go on being acknowledged, up to the buffer's bound;
/// past it they wait for the device.
#[test]
fn relaxed_mode_writers_do_not_wait_for_the_wal_write_behind() {
    use lumadb_engine::db::{WAL_WRITE_BEHIND_BYTES, WAL_WRITE_BEHIND_BYTES_MAX};
    run(async {
        let storage = MemStorage::new();
        let mut opts = tiny_options(CompactionStyle::Leveled);
        opts.memtable_size = 64 << 20;
        opts.wal_total_bytes_max = 1 << 30; // as the config requires: at least the memtable
        opts.sync_mode = SyncMode::Interval { interval_ms: 100 };
        let e = open(&storage, &opts).await;
        let ks = e.keyspace("default").unwrap();
        let value = vec![b'x'; 4096];
        // What the runtime's write-behind task does.
        let write_behind = async {
            while e.wal_write_behind_work().await {
                e.write_wal().await.unwrap();
            }
        };
        let sync_timer = async {
            // Once the first write-behind write is out: this sync must
            // wait for it, and the writers must not wait for the sync.
            while storage.writes_waiting() == 0 {
                yield_now().await;
            }
            e.sync_wal().await.unwrap();
        };
        let writers = async {
            storage.hold_writes();
            let under_bound = (WAL_WRITE_BEHIND_BYTES_MAX - WAL_WRITE_BEHIND_BYTES) / (value.len() + 64);
            let n = WAL_WRITE_BEHIND_BYTES / value.len() + under_bound;
            for i in 0..n {
                e.put(ks, format!("k{i}").as_bytes(), &value).await.unwrap();
                yield_now().await;
            }
            assert_eq!(storage.writes_waiting(), 1, "one write-behind write is out, held");
            // The bound: the next writes wait for the device.
            let past = 2 * WAL_WRITE_BEHIND_BYTES / value.len();
            let blocked = async {
                for i in n..n + past {
                    e.put(ks, format!("k{i}").as_bytes(), &value).await.unwrap();
                }
            };
            let release = async {
                for _ in 0..100 {
                    yield_now().await;
                }
                let last = format!("k{}", n + past - 1);
                assert!(
                    e.get(ks, last.as_bytes()).await.unwrap().is_none(),
                    "writes past the bound wait for the device"
                );
                storage.release_writes();
            };
            futures::future::join(blocked, release).await;
            e.sync_wal().await.unwrap();
            e.close().await.unwrap();
            n + past
        };
        let ((), (), total) = futures::future::join3(write_behind, sync_timer, writers).await;
        let after = open(&storage.crash(None), &opts).await;
        for i in 0..total {
            assert!(
                after.get(ks, format!("k{i}").as_bytes()).await.unwrap().is_some(),
                "k{i} after a sync and a crash"
            );
        }
    });
}

#[test]
fn fifo_keyspace_drops_its_oldest_files_past_its_size() {
    run(async {
        let storage = MemStorage::new();
        let opts = tiny_options(CompactionStyle::Leveled);
        let e = open(&storage, &opts).await;
        let mut fifo = opts.keyspace_defaults.clone();
        fifo.compaction_style = CompactionStyle::Fifo;
        fifo.fifo_max_table_files_size = 32 << 10;
        let ks = e.create_keyspace("metrics", fifo).await.unwrap();
        for i in 0..4000u32 {
            e.put(ks, format!("t{i:06}").as_bytes(), &[b'x'; 40]).await.unwrap();
            if i % 200 == 199 {
                e.flush().await.unwrap();
                while e.compact_once().await.unwrap() {}
            }
        }
        let stats = e.stats();
        let ksstats = stats.keyspaces.iter().find(|k| k.name == "metrics").unwrap();
        let bytes: u64 = ksstats.levels.iter().map(|l| l.bytes).sum();
        assert!(bytes <= 32 << 10, "FIFO keeps at most its limit: {bytes}");
        assert!(
            e.get(ks, b"t000000").await.unwrap().is_none(),
            "oldest data expired with its file"
        );
        assert!(e.get(ks, b"t003999").await.unwrap().is_some(), "newest data kept");
    });
}

#[test]
fn multi_get_answers_in_order() {
    run(async {
        let storage = MemStorage::new();
        let e = open(&storage, &tiny_options(CompactionStyle::Leveled)).await;
        let ks = e.keyspace("default").unwrap();
        e.put(ks, b"a", b"1").await.unwrap();
        e.put(ks, b"c", b"3").await.unwrap();
        e.flush().await.unwrap();
        e.put(ks, b"b", b"2").await.unwrap();
        let got = e.multi_get(ks, &[b"c", b"missing", b"a", b"b"]).await.unwrap();
        assert_eq!(
            got,
            vec![Some(b"3".to_vec()), None, Some(b"1".to_vec()), Some(b"2".to_vec())]
        );
    });
}

#[test]
fn memory_is_accounted_and_bounded_under_a_write_flood() {
    run(async {
        let storage = MemStorage::new();
        let opts = tiny_options(CompactionStyle::Leveled);
        let e = open(&storage, &opts).await;
        let ks = e.keyspace("default").unwrap();
        let bound = (opts.memtable_size * (opts.max_immutable_memtables + 2)) as u64;
        // No background task runs: stalled writers must flush themselves.
        for i in 0..5000u32 {
            e.put(ks, format!("k{:05}", i % 1500).as_bytes(), &[b'v'; 64])
                .await
                .unwrap();
            let m = e.memory();
            assert!(m.memtables <= bound, "memtables {} over bound {bound}", m.memtables);
        }
        let stats = e.stats();
        assert!(stats.counters.write_stalls > 0, "the flood stalled writers");
        assert!(stats.counters.flushes > 0);
        for _ in 0..50 {
            e.get(ks, b"k00001").await.unwrap();
        }
        let m = e.memory();
        assert!(m.block_cache > 0 && m.indexes > 0, "{m:?}");
        assert!(m.total() >= m.memtables + m.block_cache);
        let live = e
            .scan_collect(ks, Bound::Unbounded, Bound::Unbounded, usize::MAX)
            .await
            .unwrap();
        assert_eq!(live.len(), 1500);
    });
}

#[test]
fn empty_and_reversed_ranges_scan_nothing() {
    run(async {
        let storage = MemStorage::new();
        let e = open(&storage, &tiny_options(CompactionStyle::Leveled)).await;
        let ks = e.keyspace("default").unwrap();
        for k in [b"a", b"m", b"z"] {
            e.put(ks, k, b"v").await.unwrap();
        }
        for (lo, hi) in [
            (Bound::Included(b"z".to_vec()), Bound::Excluded(b"a".to_vec())),
            (Bound::Included(b"m".to_vec()), Bound::Excluded(b"m".to_vec())),
            (Bound::Excluded(b"m".to_vec()), Bound::Included(b"m".to_vec())),
            (Bound::Included(b"z".to_vec()), Bound::Included(b"a".to_vec())),
        ] {
            let got = e.scan_collect(ks, lo.clone(), hi.clone(), 10).await.unwrap();
            assert!(got.is_empty(), "{lo:?}..{hi:?}");
        }
        let one = e
            .scan_collect(ks, Bound::Included(b"m".to_vec()), Bound::Included(b"m".to_vec()), 10)
            .await
            .unwrap();
        assert_eq!(one.len(), 1);
    });
}

/// A manual flush while the background flush loop runs must return (a
/// flush finishing while the caller waits for the flush lock used to be
/// a lost wake-up).
#[test]
fn manual_flush_returns_while_background_flushes_run() {
    use futures::executor::LocalPool;
    use futures::task::LocalSpawnExt;
    let mut pool = LocalPool::new();
    let storage = MemStorage::new();
    let opts = tiny_options(CompactionStyle::Leveled);
    let e = pool.run_until(open(&storage, &opts));
    let bg = e.clone();
    pool.spawner()
        .spawn_local(async move {
            while bg.flush_work().await {
                if bg.flush_once().await.is_err() {
                    break;
                }
            }
        })
        .unwrap();
    pool.run_until(async {
        let ks = e.keyspace("default").unwrap();
        for round in 0..20u32 {
            let mut batch = lumadb_engine::WriteBatch::new();
            for i in 0..300u32 {
                batch.put(ks, format!("r{round}-k{i}").as_bytes(), &[b'x'; 32]).unwrap();
            }
            e.write(batch).await.unwrap();
            e.flush().await.unwrap();
        }
        e.close().await.unwrap();
    });
}

fn one_put(ks: u32, key: &[u8], value: &[u8]) -> lumadb_engine::WriteBatch {
    let mut b = lumadb_engine::WriteBatch::new();
    b.put(ks, key, value).unwrap();
    b
}

/// In `sync` mode a write that goes in at once is visible at once and
/// durable only once `sync_wal` returns its sequence number or a later
/// one: a crash before loses it (its caller has acknowledged it to
/// nobody), a crash after keeps it. A queued write's group sync also
/// takes the writes that went in at once before it.
#[test]
fn write_now_in_sync_mode_is_durable_from_the_next_sync() {
    run(async {
        let storage = MemStorage::new();
        let opts = tiny_options(CompactionStyle::Leveled);
        assert_eq!(opts.sync_mode, SyncMode::Sync);
        let e = open(&storage, &opts).await;
        let ks = e.keyspace("default").unwrap();
        let first = e.try_write_now(&one_put(ks, b"lost", b"v")).unwrap().unwrap();
        assert_eq!(e.get(ks, b"lost").await.unwrap().as_deref(), Some(&b"v"[..]));
        let after = open(&storage.crash(None), &opts).await;
        assert_eq!(after.get(ks, b"lost").await.unwrap(), None, "not synced, not durable");

        let second = e.try_write_now(&one_put(ks, b"kept", b"w")).unwrap().unwrap();
        assert!(second > first);
        let durable = e.sync_wal().await.unwrap();
        assert!(
            durable >= second,
            "sync_wal answers a sequence number covering the write"
        );
        let after = open(&storage.crash(None), &opts).await;
        assert_eq!(after.get(ks, b"kept").await.unwrap().as_deref(), Some(&b"w"[..]));

        let third = e.try_write_now(&one_put(ks, b"grouped", b"x")).unwrap().unwrap();
        let queued = e.write(one_put(ks, b"queued", b"y")).await.unwrap();
        assert!(queued > third);
        let after = open(&storage.crash(None), &opts).await;
        for (k, v) in [(&b"grouped"[..], &b"x"[..]), (b"queued", b"y")] {
            assert_eq!(after.get(ks, k).await.unwrap().as_deref(), Some(v), "{k:?}");
        }
    });
}

#[test]
fn write_now_is_visible_at_once_in_order_and_durable_with_the_next_sync() {
    run(async {
        let storage = MemStorage::new();
        let mut opts = tiny_options(CompactionStyle::Leveled);
        opts.sync_mode = SyncMode::Interval { interval_ms: 50 };
        let e = open(&storage, &opts).await;
        let ks = e.keyspace("default").unwrap();
        let mut model = std::collections::BTreeMap::new();
        let mut refused = 0;
        let mut last_seq = 0;
        // Enough to fill memtables (4 KiB here) and the write-behind
        // buffer: the refused writes go through `write`, which rolls them.
        for i in 0..3000u32 {
            let key = format!("k{:05}", i % 700).into_bytes();
            let value = vec![b'a' + (i % 26) as u8; 1 + (i as usize * 37) % 700];
            let batch = one_put(ks, &key, &value);
            let seq = match e.try_write_now(&batch) {
                Some(r) => r.unwrap(),
                None => {
                    refused += 1;
                    e.write(batch).await.unwrap()
                }
            };
            assert!(seq > last_seq, "sequence numbers only grow");
            last_seq = seq;
            assert_eq!(e.get(ks, &key).await.unwrap().as_deref(), Some(&value[..]));
            model.insert(key, value);
        }
        assert!(
            refused > 0,
            "memtable and write-behind limits send some writes through `write`"
        );
        assert!(refused < 3000);
        assert_matches(&e, &model, "live").await;
        e.sync_wal().await.unwrap();
        let after = open(&storage.crash(None), &opts).await;
        assert_matches(&after, &model, "after a crash following sync_wal").await;
    });
}

/// `get_in_memory` answers as `get` does wherever the memtables hold the
/// key (a value, a delete, a range delete, an expiry past or to come),
/// and defers to the tables (`None`) once the key was flushed.
#[test]
fn get_in_memory_answers_as_get_or_defers_to_the_tables() {
    run(async {
        let storage = MemStorage::new();
        storage.set_clock_ms(Some(1_000));
        let mut opts = tiny_options(CompactionStyle::Leveled);
        opts.memtable_size = 1 << 20;
        let e = open(&storage, &opts).await;
        let ks = e.keyspace("default").unwrap();
        let copy = |v: Option<&[u8]>| v.map(<[u8]>::to_vec);
        e.put(ks, b"flushed", b"old").await.unwrap();
        e.flush().await.unwrap();
        assert_eq!(e.get_in_memory(ks, b"flushed", copy).unwrap(), None, "in a table");
        assert_eq!(e.get_in_memory(ks, b"absent", copy).unwrap(), None, "nowhere in memory");
        e.put(ks, b"plain", &[7u8; 300]).await.unwrap();
        e.put(ks, b"gone", b"x").await.unwrap();
        e.delete(ks, b"gone").await.unwrap();
        e.put_expiring(ks, b"later", b"soon", 5_000).await.unwrap();
        e.put_expiring(ks, b"past", b"was", 500).await.unwrap();
        e.put(ks, b"r1", b"in range").await.unwrap();
        e.delete_range(ks, b"r0", b"r9").await.unwrap();
        e.put(ks, b"flushed", b"new").await.unwrap();
        for key in [&b"plain"[..], b"gone", b"later", b"past", b"r1", b"flushed"] {
            let got = e.get(ks, key).await.unwrap();
            assert_eq!(e.get_in_memory(ks, key, copy).unwrap(), Some(got), "{key:?}");
        }
        assert_eq!(
            e.get_in_memory(ks, b"later", copy).unwrap(),
            Some(Some(b"soon".to_vec()))
        );
        assert_eq!(e.get_in_memory(ks, b"past", copy).unwrap(), Some(None), "expired");
        assert_eq!(e.get_in_memory(ks, b"r1", copy).unwrap(), Some(None), "range-deleted");
    });
}

/// `edit_into` appends an edit only when it applies now and the batch
/// does not write the key; `try_write_now` then takes it unchecked while
/// nothing changed the memtable, and checks again once something did (a
/// write that deleted the value makes it decline, never misapply).
#[test]
fn edits_checked_by_edit_into_are_checked_again_after_a_write() {
    use lumadb_engine::batch::Edit;
    run(async {
        let storage = MemStorage::new();
        let mut opts = tiny_options(CompactionStyle::Leveled);
        opts.memtable_size = 1 << 20;
        opts.sync_mode = SyncMode::Interval { interval_ms: 50 };
        let e = open(&storage, &opts).await;
        let ks = e.keyspace("default").unwrap();
        let mut b = WriteBatch::new();
        assert!(
            !e.edit_into(&mut b, ks, b"k", Edit::append(b"x")).unwrap(),
            "no value yet"
        );
        assert!(b.is_empty());
        e.try_write_now(&one_put(ks, b"k", b"ab")).unwrap().unwrap();

        let mut b = WriteBatch::new();
        assert!(e.edit_into(&mut b, ks, b"k", Edit::append(b"c")).unwrap());
        assert!(
            !e.edit_into(&mut b, ks, b"k", Edit::append(b"d")).unwrap(),
            "the batch writes k"
        );
        b.put(ks, b"other", b"1").unwrap();
        e.try_write_now(&b).unwrap().unwrap();
        assert_eq!(e.get(ks, b"k").await.unwrap().as_deref(), Some(&b"abc"[..]));

        // Checked, then the value deleted by another write: declined.
        let mut stale = WriteBatch::new();
        assert!(e.edit_into(&mut stale, ks, b"k", Edit::append(b"e")).unwrap());
        let mut del = WriteBatch::new();
        del.delete(ks, b"k").unwrap();
        e.try_write_now(&del).unwrap().unwrap();
        assert!(e.try_write_now(&stale).is_none());
        assert_eq!(e.get(ks, b"k").await.unwrap(), None);

        // Checked, then a write to another key: checked again, applies.
        e.try_write_now(&one_put(ks, b"k", b"x")).unwrap().unwrap();
        let mut again = WriteBatch::new();
        assert!(e.edit_into(&mut again, ks, b"k", Edit::append(b"y")).unwrap());
        e.try_write_now(&one_put(ks, b"elsewhere", b"z")).unwrap().unwrap();
        e.try_write_now(&again).unwrap().unwrap();
        assert_eq!(e.get(ks, b"k").await.unwrap().as_deref(), Some(&b"xy"[..]));

        // A crash replays them all.
        e.sync_wal().await.unwrap();
        let after = open(&storage.crash(None), &opts).await;
        assert_eq!(after.get(ks, b"k").await.unwrap().as_deref(), Some(&b"xy"[..]));
        assert_eq!(after.get(ks, b"other").await.unwrap().as_deref(), Some(&b"1"[..]));
    });
}

/// Edits (appends and overwrites of part of a value) go in at once while
/// their value is in the active memtable, changed in place, and are
/// declined otherwise (the caller writes the whole value); a snapshot
/// keeps reading the value as it was; the queued path refuses them; and a
/// crash replays them from the WAL onto the values before them.
#[test]
fn edits_apply_in_memory_keep_snapshots_and_replay_after_a_crash() {
    use lumadb_engine::batch::Edit;
    run(async {
        let storage = MemStorage::new();
        let mut opts = tiny_options(CompactionStyle::Leveled);
        opts.memtable_size = 1 << 20;
        opts.wal_total_bytes_max = 1 << 30;
        opts.sync_mode = SyncMode::Interval { interval_ms: 50 };
        let e = open(&storage, &opts).await;
        let ks = e.keyspace("default").unwrap();
        let mut refused_edit = WriteBatch::new();
        refused_edit.edit(ks, b"k", Edit::append(b"x")).unwrap();
        assert!(e.write(refused_edit).await.is_err(), "queued writes take no edits");

        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let (mut edited, mut declined) = (0, 0);
        let mut snap: Option<(lumadb_engine::Snapshot, Vec<u8>, Vec<u8>)> = None;
        for i in 0..4000u32 {
            let key = format!("k{:02}", i % 23).into_bytes();
            let piece = format!("<{i}>").into_bytes();
            let edit = if i % 3 == 0 {
                Edit::overwrite(1, &piece)
            } else {
                Edit::append(&piece)
            };
            let mut batch = WriteBatch::new();
            batch.edit(ks, &key, edit).unwrap();
            let applied = model.contains_key(&key) && matches!(e.try_write_now(&batch), Some(Ok(_)));
            let value = if applied {
                edited += 1;
                let v = model.get_mut(&key).unwrap();
                assert!(edit.apply(v));
                v.clone()
            } else {
                // Not in the active memtable (or not there at all): whole.
                declined += 1;
                let mut v = model.get(&key).cloned().unwrap_or_else(|| b"start".to_vec());
                if !edit.apply(&mut v) {
                    v = piece.clone();
                }
                let mut whole = WriteBatch::new();
                whole.put(ks, &key, &v).unwrap();
                e.write(whole).await.unwrap();
                model.insert(key.clone(), v.clone());
                v
            };
            assert_eq!(e.get(ks, &key).await.unwrap().as_deref(), Some(&value[..]), "write {i}");
            if i % 500 == 0 {
                snap = Some((e.snapshot(), key.clone(), value.clone()));
            }
            if i % 700 == 0 {
                // The values move to a table: the next edit of each is declined.
                e.flush().await.unwrap();
            }
            if let Some((s, k, v)) = &snap {
                assert_eq!(
                    e.get_at(ks, k, s).await.unwrap().as_deref(),
                    Some(&v[..]),
                    "snapshot at write {i}"
                );
            }
        }
        drop(snap);
        assert!(edited > 1000, "most edits find their value in memory ({edited})");
        assert!(declined > 0, "memtable rolls send some edits down the whole-value path");
        assert_matches(&e, &model, "live").await;
        e.sync_wal().await.unwrap();
        let after = open(&storage.crash(None), &opts).await;
        assert_matches(&after, &model, "after a crash: edits replayed").await;
    });
}

/// A graceful close in a relaxed mode: a write acknowledged before the
/// call is durable when it returns, and one tried while its final WAL
/// write is out is refused, never acknowledged and then lost.
#[test]
fn close_refuses_writes_before_its_final_sync_so_none_acknowledged_is_lost() {
    for mode in [SyncMode::Interval { interval_ms: 100 }, SyncMode::None] {
        run(async {
            let storage = MemStorage::new();
            let mut opts = tiny_options(CompactionStyle::Leveled);
            opts.memtable_size = 64 << 20;
            opts.wal_total_bytes_max = 1 << 30; // as the config requires: at least the memtable
            opts.sync_mode = mode;
            let e = open(&storage, &opts).await;
            let ks = e.keyspace("default").unwrap();
            let mut batch = lumadb_engine::WriteBatch::new();
            batch.put(ks, b"before", b"1").unwrap();
            assert!(
                matches!(e.try_write_now(&batch), Some(Ok(_))),
                "{mode:?}: applied at once"
            );
            storage.hold_writes();
            let close = e.close();
            let meanwhile = async {
                // The final WAL write is out (held).
                while storage.writes_waiting() == 0 {
                    yield_now().await;
                }
                assert!(e.is_closed());
                let mut late = lumadb_engine::WriteBatch::new();
                late.put(ks, b"late", b"2").unwrap();
                assert!(
                    matches!(e.try_write_now(&late), Some(Err(lumadb_engine::Error::Closed))),
                    "{mode:?}: a write during the close is refused"
                );
                assert!(matches!(
                    e.put(ks, b"late", b"2").await,
                    Err(lumadb_engine::Error::Closed)
                ));
                storage.release_writes();
            };
            let (closed, ()) = futures::future::join(close, meanwhile).await;
            closed.unwrap();
            let after = open(&storage.crash(None), &opts).await;
            assert_eq!(after.get(ks, b"before").await.unwrap().as_deref(), Some(&b"1"[..]));
            assert_eq!(after.get(ks, b"late").await.unwrap(), None);
        });
    }
}

/// A list's elements written in descending key order beside one metadata
/// key updated with every write (the Redis layout's LPUSH). Unpartitioned,
/// every flushed table spans from the new elements to the metadata key, so
/// it overlaps all older tables and compaction rewrites them again and
/// again. Partitioned on the first key byte, element tables overlap
/// nothing and move down as they are; only the small metadata tables
/// merge. Both read back the same.
#[test]
fn partitioned_tables_move_ordered_writes_down_without_rewriting_them() {
    let written = |prefix_len: usize| {
        run(async move {
            let mut opts = tiny_options(CompactionStyle::Leveled);
            opts.keyspace_defaults.table_partition_prefix_len = prefix_len;
            let storage = MemStorage::new();
            let e = open(&storage, &opts).await;
            let ks = e.keyspace("default").unwrap();
            let mut model = BTreeMap::new();
            for i in 0..6_000u64 {
                let k = format!("d{:012}", 1_000_000 - i).into_bytes();
                let v = format!("element-{i:08}-{}", "x".repeat(24)).into_bytes();
                e.put(ks, &k, &v).await.unwrap();
                model.insert(k, v);
                e.put(ks, b"m-list", &i.to_le_bytes()).await.unwrap();
                model.insert(b"m-list".to_vec(), i.to_le_bytes().to_vec());
                while e.has_flush_work() {
                    e.flush_once().await.unwrap();
                }
                while e.compaction_wanted() {
                    e.compact_once().await.unwrap();
                }
            }
            assert_matches(&e, &model, &format!("prefix {prefix_len}")).await;
            let c = e.stats().counters;
            assert!(c.flushes > 20, "{} flushes", c.flushes);
            (c.compaction_bytes_written, c.flush_bytes_written)
        })
    };
    let (plain, flushed) = written(0);
    let (partitioned, _) = written(1);
    assert!(
        plain > 2 * flushed,
        "unpartitioned: {plain} bytes compacted, {flushed} flushed"
    );
    assert!(
        partitioned * 4 < flushed,
        "partitioned: {partitioned} bytes compacted of {flushed} flushed (unpartitioned {plain})"
    );
}
