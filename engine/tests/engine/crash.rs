//! In-process crash tests: a workload of concurrent writers (so group
//! commit forms real groups) with flushes and compactions, crashed at every
//! sync point in turn. After each crash and reopen, every acknowledged write
//! is present, and nothing that was never written appears.

use super::common::*;
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use lumadb_engine::storage::mem::MemStorage;
use lumadb_engine::CompactionStyle;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::rc::Rc;

const WRITERS: usize = 4;
const WRITES_PER_WRITER: usize = 60;

/// What the workload believes: acknowledged values, and the writes that
/// were in flight when storage failed (they may or may not survive).
#[derive(Default)]
struct Ledger {
    acked: BTreeMap<Vec<u8>, Vec<u8>>,
    in_flight: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Runs the workload on `storage`; returns the ledger.
fn workload(storage: &MemStorage) -> Ledger {
    let opts = tiny_options(CompactionStyle::Leveled);
    let ledger = Rc::new(RefCell::new(Ledger::default()));
    let mut pool = LocalPool::new();
    let engine =
        Rc::new(pool.run_until(async { lumadb_engine::db::Engine::open(storage.clone(), opts.clone()).await }));
    let Ok(engine) = Rc::try_unwrap(engine).map_err(|_| ()).expect("sole owner") else {
        // Storage failed during open: nothing was acknowledged.
        return Ledger::default();
    };
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let engine = engine.clone();
        let ledger = ledger.clone();
        let handle = pool
            .spawner()
            .spawn_local_with_handle(async move {
                let ks = engine.keyspace("default").unwrap();
                for i in 0..WRITES_PER_WRITER {
                    // Each writer overwrites its own small key set, so
                    // versions pile up and compaction has work.
                    let k = format!("w{w}-k{:03}", i % 17).into_bytes();
                    let v = format!("w{w}-v{i}-{}", "p".repeat(i % 50)).into_bytes();
                    ledger.borrow_mut().in_flight.push((k.clone(), v.clone()));
                    let r = engine.put(ks, &k, &v).await;
                    let failed = {
                        let mut l = ledger.borrow_mut();
                        l.in_flight.retain(|(ik, iv)| !(ik == &k && iv == &v));
                        match r {
                            Ok(_) => {
                                l.acked.insert(k, v);
                                false
                            }
                            Err(_) => {
                                l.in_flight.push((k, v));
                                true
                            }
                        }
                    };
                    if failed {
                        return;
                    }
                    if i % 20 == 19 && w == 0 && engine.flush().await.is_err() {
                        return;
                    }
                    if i % 40 == 39 && w == 1 && engine.compact_all().await.is_err() {
                        return;
                    }
                }
            })
            .expect("spawn");
        writers.push(handle);
    }
    // Background work, as the runtime would drive it.
    {
        let e = engine.clone();
        pool.spawner()
            .spawn_local(async move {
                while e.flush_work().await {
                    if e.flush_once().await.is_err() {
                        break;
                    }
                }
            })
            .expect("spawn");
    }
    // The next WAL segment made ready ahead of each roll, as the runtime
    // does, so crashes find one prepared and never written.
    {
        let e = engine.clone();
        pool.spawner()
            .spawn_local(async move {
                while e.wal_segment_work().await {
                    if e.prepare_wal_segment().await.is_err() {
                        break;
                    }
                }
            })
            .expect("spawn");
    }
    pool.run_until(futures::future::join_all(writers));
    pool.run_until(async {
        engine.close().await.ok();
    });
    drop(engine);
    drop(pool);
    Rc::try_unwrap(ledger)
        .map_err(|_| ())
        .expect("tasks dropped")
        .into_inner()
}

fn check_after_crash(storage: &MemStorage, ledger: &Ledger, torn_seed: Option<u64>, ctx: &str) {
    let crashed = storage.crash(torn_seed);
    let opts = tiny_options(CompactionStyle::Leveled);
    run(async {
        let engine = match lumadb_engine::db::Engine::open(crashed, opts).await {
            Ok(e) => e,
            Err(e) => panic!("{ctx}: reopen after crash failed: {e}"),
        };
        let ks = engine.keyspace("default").unwrap();
        let got: BTreeMap<Vec<u8>, Vec<u8>> = engine
            .scan_collect(ks, Bound::Unbounded, Bound::Unbounded, usize::MAX)
            .await
            .unwrap()
            .into_iter()
            .collect();
        for (k, v) in &ledger.acked {
            let g = got.get(k);
            // A later in-flight write to the same key may have survived.
            let newer_in_flight = ledger.in_flight.iter().any(|(ik, iv)| ik == k && Some(iv) == g);
            assert!(
                g == Some(v) || newer_in_flight,
                "{ctx}: acknowledged {} = {} lost (found {:?})",
                show(k),
                show(v),
                g.map(|g| show(g))
            );
        }
        for (k, v) in &got {
            let known = ledger.acked.get(k) == Some(v) || ledger.in_flight.iter().any(|(ik, iv)| ik == k && iv == v);
            assert!(
                known,
                "{ctx}: {} = {} was never acknowledged or in flight",
                show(k),
                show(v)
            );
        }
    });
}

#[test]
fn every_sync_point_keeps_acknowledged_writes() {
    // Count the sync points of a fault-free run.
    let storage = MemStorage::new();
    let ledger = workload(&storage);
    assert_eq!(
        ledger.acked.len(),
        WRITERS * 17,
        "fault-free run acknowledges everything"
    );
    let total_syncs = storage.syncs_done();
    assert!(total_syncs > 20, "workload exercises syncs ({total_syncs})");
    for n in 0..total_syncs {
        let storage = MemStorage::new();
        storage.fail_syncs_after(n);
        let ledger = workload(&storage);
        check_after_crash(&storage, &ledger, None, &format!("sync point {n}/{total_syncs}"));
        check_after_crash(
            &storage,
            &ledger,
            Some(n),
            &format!("sync point {n}/{total_syncs}, torn seed {n}"),
        );
    }
}

#[test]
fn every_write_point_keeps_acknowledged_writes() {
    let storage = MemStorage::new();
    workload(&storage);
    let total_writes = storage.writes_done();
    let step = (total_writes / 150).max(1);
    let mut n = 0;
    while n < total_writes {
        let storage = MemStorage::new();
        storage.fail_writes_after(n);
        let ledger = workload(&storage);
        check_after_crash(
            &storage,
            &ledger,
            Some(n ^ 0x5eed),
            &format!("write point {n}/{total_writes}"),
        );
        n += step;
    }
}
