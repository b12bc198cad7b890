//! Model test: random sequences of writes, reads, flushes, compactions,
//! reopens and crashes, checked against a `BTreeMap` after every step that
//! could lose or resurrect data. Storage faults are injected by budget:
//! once a write fails, the engine must refuse further writes, and after a
//! crash and reopen exactly the acknowledged writes (plus, possibly, the
//! one that failed) are there.

use super::common::*;
use lumadb_engine::db::Engine;
use lumadb_engine::storage::mem::MemStorage;
use lumadb_engine::CompactionStyle;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::ops::Bound;

#[derive(Debug, Clone)]
pub enum Op {
    Put(u16, u16),
    Delete(u16),
    DeleteRange(u16, u16),
    Get(u16),
    Scan(u16, u16),
    Flush,
    Compact,
    CompactRange(u16, u16),
    Reopen,
    Crash,
}

fn key(k: u16) -> Vec<u8> {
    format!("key{k:05}").into_bytes()
}

fn value(k: u16, v: u16) -> Vec<u8> {
    // Varying sizes, so blocks and files split at different places.
    let mut s = format!("v{k}-{v}-").into_bytes();
    s.resize(8 + (v as usize % 7) * 13, b'x');
    s
}

fn op_strategy(keys: u16) -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (0..keys, any::<u16>()).prop_map(|(k, v)| Op::Put(k, v)),
        8 => (0..keys).prop_map(Op::Delete),
        2 => (0..keys, 1..16u16).prop_map(|(a, n)| Op::DeleteRange(a, a.saturating_add(n))),
        8 => (0..keys).prop_map(Op::Get),
        3 => (0..keys, 1..64u16).prop_map(|(a, n)| Op::Scan(a, a.saturating_add(n))),
        2 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => (0..keys, 1..64u16).prop_map(|(a, n)| Op::CompactRange(a, a.saturating_add(n))),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

/// Runs `ops`, checking against the model. With `fail_after`, storage
/// writes start failing after that many.
pub fn run_model(ops: &[Op], style: CompactionStyle, fail_after: Option<u64>) {
    run_model_with(ops, tiny_options(style), fail_after)
}

/// Leveled, tables partitioned on the first `prefix_len` key bytes: with
/// 7, keys `key000xy` fall into partitions of ten (`key000x`).
fn partitioned(prefix_len: usize) -> lumadb_engine::EngineOptions {
    let mut opts = tiny_options(CompactionStyle::Leveled);
    opts.keyspace_defaults.table_partition_prefix_len = prefix_len;
    opts
}

pub fn run_model_with(ops: &[Op], opts: lumadb_engine::EngineOptions, fail_after: Option<u64>) {
    run(async {
        let mut storage = MemStorage::new();
        let mut engine = open(&storage, &opts).await;
        if let Some(n) = fail_after {
            storage.fail_writes_after(n);
        }
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for (step, op) in ops.iter().enumerate() {
            let ctx = format!("step {step} {op:?}");
            let ks = engine.keyspace("default").unwrap();
            let outcome = apply(&engine, ks, op, &mut model, &ctx).await;
            match outcome {
                Outcome::Ok => {}
                Outcome::Reopen { crash } => {
                    engine.close().await.ok();
                    drop(engine);
                    if crash {
                        storage = storage.crash(None);
                        if let Some(n) = fail_after {
                            // Faults stay armed across a crash: the budget continues.
                            storage.fail_writes_after(n.saturating_sub(step as u64));
                        }
                    }
                    match lumadb_engine::Engine::open(storage.clone(), opts.clone()).await {
                        Ok(e) => engine = e,
                        Err(_) if fail_after.is_some() => {
                            // Open itself hit the injected fault: recover on healthy storage.
                            let reopened = open(&storage.crash(None), &opts).await;
                            assert_matches(&reopened, &model, &ctx).await;
                            return;
                        }
                        Err(e) => panic!("{ctx}: reopen failed: {e}"),
                    }
                    assert_matches(&engine, &model, &ctx).await;
                }
                Outcome::Failed { maybe } => {
                    // Fail-stop: no further write is accepted.
                    let again = engine.put(ks, b"after-failure", b"x").await;
                    assert!(again.is_err(), "{ctx}: write accepted after a storage failure");
                    drop(engine);
                    storage = storage.crash(None);
                    let reopened = open(&storage, &opts).await;
                    let mut with = model.clone();
                    if let Some(f) = maybe {
                        f(&mut with);
                    }
                    let all = reopened
                        .scan_collect(ks, Bound::Unbounded, Bound::Unbounded, usize::MAX)
                        .await
                        .unwrap();
                    let got: BTreeMap<_, _> = all.into_iter().collect();
                    assert!(
                        got == model || got == with,
                        "{ctx}: after failure and crash, state is neither before nor after the failed write"
                    );
                    return;
                }
            }
        }
        engine.close().await.ok();
        drop(engine);
        let engine = open(&storage.crash(None), &opts).await;
        assert_matches(&engine, &model, "final crash + reopen").await;
    })
}

type ModelEdit = Box<dyn Fn(&mut BTreeMap<Vec<u8>, Vec<u8>>)>;

enum Outcome {
    Ok,
    Reopen { crash: bool },
    Failed { maybe: Option<ModelEdit> },
}

async fn apply(
    engine: &Engine<MemStorage>,
    ks: u32,
    op: &Op,
    model: &mut BTreeMap<Vec<u8>, Vec<u8>>,
    ctx: &str,
) -> Outcome {
    match op {
        Op::Put(k, v) => {
            let (k, v) = (key(*k), value(*k, *v));
            match engine.put(ks, &k, &v).await {
                Ok(_) => {
                    model.insert(k, v);
                    Outcome::Ok
                }
                Err(_) => Outcome::Failed {
                    maybe: Some(Box::new(move |m| {
                        m.insert(k.clone(), v.clone());
                    })),
                },
            }
        }
        Op::Delete(k) => {
            let k = key(*k);
            match engine.delete(ks, &k).await {
                Ok(_) => {
                    model.remove(&k);
                    Outcome::Ok
                }
                Err(_) => Outcome::Failed {
                    maybe: Some(Box::new(move |m| {
                        m.remove(&k);
                    })),
                },
            }
        }
        Op::DeleteRange(a, b) => {
            let (a, b) = (key(*a), key(*b));
            match engine.delete_range(ks, &a, &b).await {
                Ok(_) => {
                    let doomed: Vec<_> = model.range(a.clone()..b.clone()).map(|(k, _)| k.clone()).collect();
                    for k in doomed {
                        model.remove(&k);
                    }
                    Outcome::Ok
                }
                Err(_) => Outcome::Failed {
                    maybe: Some(Box::new(move |m| {
                        let doomed: Vec<_> = m.range(a.clone()..b.clone()).map(|(k, _)| k.clone()).collect();
                        for k in doomed {
                            m.remove(&k);
                        }
                    })),
                },
            }
        }
        Op::Get(k) => {
            let k = key(*k);
            let got = engine
                .get(ks, &k)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: get failed: {e}"));
            assert_eq!(got.as_ref(), model.get(&k), "{ctx}: get {}", show(&k));
            Outcome::Ok
        }
        Op::Scan(a, b) => {
            let (a, b) = (key(*a), key(*b));
            let got = engine
                .scan_collect(ks, Bound::Included(a.clone()), Bound::Excluded(b.clone()), usize::MAX)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: scan failed: {e}"));
            let want: Vec<_> = model.range(a..b).map(|(k, v)| (k.clone(), v.clone())).collect();
            assert_eq!(got, want, "{ctx}: scan");
            Outcome::Ok
        }
        Op::Flush => match engine.flush().await {
            Ok(()) => Outcome::Ok,
            Err(_) => Outcome::Failed { maybe: None },
        },
        Op::Compact => match engine.compact_all().await {
            Ok(()) => Outcome::Ok,
            Err(_) => Outcome::Failed { maybe: None },
        },
        Op::CompactRange(a, b) => {
            let (a, b) = (key(*a), key(*b));
            match engine.compact_range(ks, Some((&a, &b))).await {
                Ok(()) => Outcome::Ok,
                Err(_) => Outcome::Failed { maybe: None },
            }
        }
        Op::Reopen => Outcome::Reopen { crash: false },
        Op::Crash => Outcome::Reopen { crash: true },
    }
}

fn cases() -> u32 {
    if std::env::var_os("LUMADB_SOAK").is_some() {
        2000
    } else {
        48
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn model_leveled(ops in prop::collection::vec(op_strategy(200), 1..400)) {
        run_model(&ops, CompactionStyle::Leveled, None);
    }

    #[test]
    fn model_leveled_partitioned(ops in prop::collection::vec(op_strategy(200), 1..400)) {
        run_model_with(&ops, partitioned(7), None);
    }

    #[test]
    fn model_universal(ops in prop::collection::vec(op_strategy(200), 1..400)) {
        run_model(&ops, CompactionStyle::Universal, None);
    }

    #[test]
    fn model_fifo_without_deletes_by_size(ops in prop::collection::vec(op_strategy(200), 1..300)) {
        run_model(&ops, CompactionStyle::Fifo, None);
    }

    #[test]
    fn model_with_write_faults(ops in prop::collection::vec(op_strategy(100), 1..300), fail_after in 0..400u64) {
        run_model(&ops, CompactionStyle::Leveled, Some(fail_after));
    }
}

/// A long write-heavy run that pushes data through every level.
#[test]
fn model_deep_levels() {
    run_model(&deep_ops(), CompactionStyle::Leveled, None);
}

/// The same with partitioned tables: fences, moves of single L0 files.
#[test]
fn model_deep_levels_partitioned() {
    // Partitions of a thousand keys (`key001`).
    run_model_with(&deep_ops(), partitioned(6), None);
}

fn deep_ops() -> Vec<Op> {
    let mut ops = Vec::new();
    for i in 0..6000u16 {
        ops.push(Op::Put((i.wrapping_mul(7919)) % 3000, i));
        if i % 11 == 0 {
            ops.push(Op::Delete((i.wrapping_mul(31)) % 3000));
        }
        if i % 997 == 0 {
            ops.push(Op::DeleteRange(i % 3000, i % 3000 + 40));
        }
        if i % 1500 == 0 {
            ops.push(Op::Reopen);
        }
    }
    ops.push(Op::Compact);
    ops.push(Op::Crash);
    ops
}

/// Canary: the harness must see a difference between engine and model,
/// or every passing model run above would prove nothing.
#[test]
#[should_panic(expected = "scan: key")]
fn model_harness_detects_a_lost_write() {
    run(async {
        let storage = MemStorage::new();
        let engine = open(&storage, &tiny_options(CompactionStyle::Leveled)).await;
        let ks = engine.keyspace("default").unwrap();
        engine.put(ks, b"present", b"1").await.unwrap();
        let mut model = BTreeMap::new();
        model.insert(b"present".to_vec(), b"1".to_vec());
        model.insert(b"never-written".to_vec(), b"2".to_vec());
        assert_matches(&engine, &model, "canary").await;
    });
}
