//! `lumadb bench engine`: the storage engine benchmark, after RocksDB's
//! db_bench. Workloads run in order against one database per engine:
//! `fillseq`/`fillrandom` load it, `overwrite`, `readrandom`, `readseq`,
//! `seekrandom` and `deleterandom` then work on what is there.
//!
//! LumaDB runs as it does in production: one glommio executor pinned to
//! one CPU, the engine on O_DIRECT files, flush and compaction in a
//! low-priority task queue, and `--concurrency` writer tasks on that one
//! shard so that group commit shows. With `--compare rocksdb`, the same
//! workloads then run against RocksDB with matching options, its client
//! threads and background threads pinned to the same CPU, and the ratio
//! is printed per workload.

use crate::BenchError;
use hdrhistogram::Histogram;
use lumadb_engine::db::Engine;
use lumadb_engine::{EngineOptions, SyncMode};
use lumadb_shard::driver;
use lumadb_shard::storage::DmaStorage;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::cell::RefCell;
use std::ops::Bound;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Every workload, in the order db_bench users expect.
pub const WORKLOADS: [&str; 7] = [
    "fillseq",
    "fillrandom",
    "overwrite",
    "readrandom",
    "readseq",
    "seekrandom",
    "deleterandom",
];

/// I/O memory glommio locks per executor: fits the default 8 MiB memlock limit.
pub const EXECUTOR_IO_MEMORY_BYTES: usize = 2 << 20;

/// How long a task may run before `yield_if_needed` yields. glommio's
/// default (100 ms) lets one task's long CPU stretch show up as tail
/// latency in every other task; 2 ms keeps the tail honest at a small
/// timer cost.
pub const PREEMPT_TIMER: Duration = Duration::from_millis(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncArg {
    /// Acknowledge after fdatasync (group commit).
    Sync,
    /// Acknowledge after the WAL write.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompareTarget {
    Rocksdb,
}

/// Arguments of `lumadb bench engine`.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineBenchArgs {
    /// Comma-separated workloads: fillseq, fillrandom, overwrite, readrandom, readseq, seekrandom, deleterandom.
    #[arg(
        long,
        default_value = "fillrandom,overwrite,readrandom,readseq,seekrandom,deleterandom"
    )]
    pub workloads: String,
    /// Operations per workload (and the key space size).
    #[arg(long, default_value_t = 200_000)]
    pub num: u64,
    /// Key size in bytes (at least 8).
    #[arg(long, default_value_t = 16)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Durability: `sync` acknowledges after fdatasync, `none` after the write.
    #[arg(long, value_enum, default_value = "sync")]
    pub sync: SyncArg,
    /// Concurrent writers/readers on the one shard.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Also run the workloads against another engine and print ratios.
    #[arg(long, value_enum)]
    pub compare: Option<CompareTarget>,
    /// Write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Where the benchmark databases go (removed first).
    #[arg(long, default_value = "./lumadb-bench-data")]
    pub dir: PathBuf,
    /// CPU to pin to (both engines). Default: the last CPU.
    #[arg(long)]
    pub cpu: Option<usize>,
    /// Memtable size in bytes (both engines).
    #[arg(long, default_value_t = 64 << 20)]
    pub memtable_size: usize,
    /// Block cache size in bytes (both engines).
    #[arg(long, default_value_t = 256 << 20)]
    pub block_cache_size: usize,
}

/// The figures of one workload on one engine.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadResult {
    pub engine: String,
    pub workload: String,
    pub ops: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// For reads: how many keys were found.
    pub found: u64,
}

/// Everything one invocation measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub num: u64,
    pub key_size: usize,
    pub value_size: usize,
    pub sync: SyncArg,
    pub concurrency: usize,
    pub cpu: usize,
    pub results: Vec<WorkloadResult>,
    /// LumaDB ops/s divided by the other engine's, per workload.
    pub ratios: Vec<(String, f64)>,
}

/// Shared shape of every run: what to do, with which keys and values.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub workloads: Vec<String>,
    pub num: u64,
    pub key_size: usize,
    pub value_size: usize,
    pub sync: bool,
    pub concurrency: usize,
    pub cpu: usize,
    pub memtable_size: usize,
    pub block_cache_size: usize,
}

impl Plan {
    /// Task `t`'s share of the operations: (first op index, count). The
    /// shares cover `0..num` exactly, whatever the remainder.
    pub(crate) fn share(&self, t: usize) -> (u64, u64) {
        let n = self.concurrency as u64;
        let t = t as u64;
        let base = self.num / n;
        let extra = self.num % n;
        let count = base + u64::from(t < extra);
        let first = t * base + t.min(extra);
        (first, count)
    }

    pub(crate) fn key(&self, n: u64, buf: &mut Vec<u8>) {
        buf.clear();
        buf.extend_from_slice(&n.to_be_bytes());
        buf.resize(self.key_size, b'0');
    }
}

/// A buffer of half-compressible bytes that values are sliced from, as
/// db_bench's compression ratio 0.5.
pub(crate) struct ValueSource {
    data: Vec<u8>,
}

impl ValueSource {
    pub(crate) fn new(value_size: usize) -> Self {
        let mut rng = SmallRng::seed_from_u64(301);
        let len = (1 << 20).max(value_size * 4);
        let mut data = Vec::with_capacity(len);
        while data.len() < len {
            let piece: Vec<u8> = (0..50).map(|_| rng.gen_range(b' '..=b'~')).collect();
            data.extend_from_slice(&piece);
            data.extend_from_slice(&piece);
        }
        ValueSource { data }
    }

    pub(crate) fn value(&self, n: u64, size: usize) -> &[u8] {
        let start = (n as usize * 97) % (self.data.len() - size);
        &self.data[start..start + size]
    }
}

pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

pub(crate) fn result(
    engine: &str,
    workload: &str,
    ops: u64,
    elapsed: Duration,
    h: &Histogram<u64>,
    found: u64,
) -> WorkloadResult {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    WorkloadResult {
        engine: engine.to_string(),
        workload: workload.to_string(),
        ops,
        seconds: secs,
        ops_per_sec: ops as f64 / secs,
        p50_us: us(0.50),
        p99_us: us(0.99),
        p999_us: us(0.999),
        max_us: h.max() as f64 / 1000.0,
        found,
    }
}

/// Runs the benchmark and prints the table; returns the report.
pub fn run(args: &EngineBenchArgs) -> Result<BenchReport, BenchError> {
    let workloads: Vec<String> = args
        .workloads
        .split(',')
        .map(|w| w.trim().to_string())
        .filter(|w| !w.is_empty())
        .collect();
    for w in &workloads {
        if !WORKLOADS.contains(&w.as_str()) {
            return Err(BenchError::UnknownWorkload(w.clone()));
        }
    }
    if workloads.is_empty() {
        return Err(BenchError::Invalid("--workloads names no workload".into()));
    }
    if args.compare.is_some() && !cfg!(feature = "rocksdb") {
        return Err(BenchError::NoRocksdb);
    }
    // Fail on an unwritable result file now, not after the run.
    if let Some(path) = &args.json {
        std::fs::write(path, b"").map_err(|source| BenchError::Io {
            path: path.display().to_string(),
            cause: source,
        })?;
    }
    if args.key_size < 8 {
        return Err(BenchError::Invalid("--key-size must be at least 8".into()));
    }
    if args.concurrency == 0 || args.num == 0 {
        return Err(BenchError::Invalid("--concurrency and --num must be positive".into()));
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = args.cpu.unwrap_or(cpus - 1);
    if cpu >= cpus {
        return Err(BenchError::Invalid(format!(
            "--cpu {cpu}: this machine has {cpus} CPUs"
        )));
    }
    let plan = Plan {
        workloads,
        num: args.num,
        key_size: args.key_size,
        value_size: args.value_size,
        sync: args.sync == SyncArg::Sync,
        concurrency: args.concurrency,
        cpu,
        memtable_size: args.memtable_size,
        block_cache_size: args.block_cache_size,
    };
    let _ = std::fs::remove_dir_all(&args.dir);
    println!(
        "lumadb bench engine: {} ops, {}-byte keys, {}-byte values, sync={:?}, concurrency {}, pinned to CPU {}",
        plan.num, plan.key_size, plan.value_size, args.sync, plan.concurrency, plan.cpu
    );
    print_header();
    let mut results = run_lumadb(&plan, args.dir.join("lumadb"))?;
    let mut ratios = Vec::new();
    if let Some(CompareTarget::Rocksdb) = args.compare {
        let theirs = run_rocksdb(&plan, args.dir.join("rocksdb"))?;
        for ours in &results {
            if let Some(t) = theirs.iter().find(|t| t.workload == ours.workload) {
                ratios.push((ours.workload.clone(), ours.ops_per_sec / t.ops_per_sec.max(1e-9)));
            }
        }
        results.extend(theirs);
        println!();
        println!("{:<14} {:>16}", "workload", "lumadb/rocksdb");
        for (w, r) in &ratios {
            println!("{w:<14} {r:>15.2}x");
        }
    }
    let _ = std::fs::remove_dir_all(&args.dir);
    let report = BenchReport {
        num: plan.num,
        key_size: plan.key_size,
        value_size: plan.value_size,
        sync: args.sync,
        concurrency: plan.concurrency,
        cpu: plan.cpu,
        results,
        ratios,
    };
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).expect("report serializes");
        std::fs::write(path, text).map_err(|source| BenchError::Io {
            path: path.display().to_string(),
            cause: source,
        })?;
    }
    Ok(report)
}

fn print_header() {
    println!(
        "{:<8} {:<14} {:>10} {:>12} {:>10} {:>10} {:>10} {:>10}",
        "engine", "workload", "ops", "ops/s", "p50 us", "p99 us", "p99.9 us", "max us"
    );
}

pub(crate) fn print_row(r: &WorkloadResult) {
    println!(
        "{:<8} {:<14} {:>10} {:>12.0} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
        r.engine, r.workload, r.ops, r.ops_per_sec, r.p50_us, r.p99_us, r.p999_us, r.max_us
    );
}

#[cfg(feature = "rocksdb")]
fn run_rocksdb(plan: &Plan, dir: PathBuf) -> Result<Vec<WorkloadResult>, BenchError> {
    crate::rocks::run(plan, dir)
}

#[cfg(not(feature = "rocksdb"))]
fn run_rocksdb(_plan: &Plan, _dir: PathBuf) -> Result<Vec<WorkloadResult>, BenchError> {
    Err(BenchError::NoRocksdb)
}

fn run_lumadb(plan: &Plan, dir: PathBuf) -> Result<Vec<WorkloadResult>, BenchError> {
    let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(plan.cpu))
        .io_memory(EXECUTOR_IO_MEMORY_BYTES)
        .preempt_timer(PREEMPT_TIMER)
        .name("lumadb-bench")
        .make()
        .map_err(|e| BenchError::Executor(e.to_string()))?;
    let plan = plan.clone();
    ex.run(async move {
        let storage = DmaStorage::open(&dir).await?;
        let opts = EngineOptions {
            memtable_size: plan.memtable_size,
            block_cache_size: plan.block_cache_size,
            sync_mode: if plan.sync { SyncMode::Sync } else { SyncMode::None },
            ..EngineOptions::default()
        };
        let engine = Engine::open(storage, opts).await?;
        let bg = driver::spawn_background(&engine, driver::background_queue(&engine));
        let values = Rc::new(ValueSource::new(plan.value_size));
        let mut results = Vec::new();
        for w in &plan.workloads {
            let r = run_workload(&engine, &plan, &values, w).await?;
            print_row(&r);
            results.push(r);
        }
        let stats = engine.stats();
        let ks = &stats.keyspaces[0];
        let shape: Vec<String> = ks
            .levels
            .iter()
            .filter(|l| l.files > 0)
            .map(|l| {
                format!(
                    "L{}: {} files, {:.1} MiB",
                    l.level,
                    l.files,
                    l.bytes as f64 / (1 << 20) as f64
                )
            })
            .collect();
        println!(
            "lumadb   write amplification {:.2}, {} flushes, {} compactions, {} write stalls; {}",
            stats.write_amplification,
            stats.counters.flushes,
            stats.counters.compactions,
            stats.counters.write_stalls,
            if shape.is_empty() {
                "all data in memtables".to_string()
            } else {
                shape.join(", ")
            }
        );
        engine.close().await?;
        bg.join().await;
        tracing::debug!(io = ?glommio::executor().io_stats(), "glommio I/O by ring");
        Ok(results)
    })
}

/// Which keys an operation touches.
#[derive(Clone, Copy)]
enum Order {
    Sequential,
    Random,
}

async fn run_workload(
    engine: &Engine<DmaStorage>,
    plan: &Plan,
    values: &Rc<ValueSource>,
    workload: &str,
) -> Result<WorkloadResult, BenchError> {
    let ks = engine.keyspace("default")?;
    if workload == "readseq" {
        let mut h = new_histogram();
        let start = Instant::now();
        let mut it = engine.scan(ks, Bound::Unbounded, Bound::Unbounded, None)?;
        let mut n = 0u64;
        loop {
            let t = Instant::now();
            let next = it.next().await?;
            h.saturating_record(t.elapsed().as_nanos() as u64);
            if next.is_none() || n >= plan.num {
                break;
            }
            n += 1;
        }
        return Ok(result("lumadb", workload, n, start.elapsed(), &h, n));
    }
    let (order, op): (Order, &str) = match workload {
        "fillseq" => (Order::Sequential, "put"),
        "fillrandom" | "overwrite" => (Order::Random, "put"),
        "readrandom" => (Order::Random, "get"),
        "seekrandom" => (Order::Random, "seek"),
        "deleterandom" => (Order::Random, "delete"),
        other => return Err(BenchError::UnknownWorkload(other.to_string())),
    };
    let hist = Rc::new(RefCell::new(new_histogram()));
    let found = Rc::new(RefCell::new(0u64));
    let errors: Rc<RefCell<Option<lumadb_engine::Error>>> = Rc::new(RefCell::new(None));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..plan.concurrency {
        let (first, count) = plan.share(t);
        let engine = engine.clone();
        let plan = plan.clone();
        let values = values.clone();
        let hist = hist.clone();
        let found = found.clone();
        let errors = errors.clone();
        let op = op.to_string();
        tasks.push(glommio::spawn_local(async move {
            let mut rng = SmallRng::seed_from_u64(t as u64 * 7919 + 17);
            let mut local = new_histogram();
            let mut key = Vec::with_capacity(plan.key_size);
            let mut hits = 0u64;
            for i in 0..count {
                let n = match order {
                    Order::Sequential => first + i,
                    Order::Random => rng.gen_range(0..plan.num),
                };
                plan.key(n, &mut key);
                let began = Instant::now();
                let r = match op.as_str() {
                    "put" => engine.put(ks, &key, values.value(n, plan.value_size)).await.map(|_| ()),
                    "delete" => engine.delete(ks, &key).await.map(|_| ()),
                    "get" => engine.get(ks, &key).await.map(|v| hits += u64::from(v.is_some())),
                    _ => match engine.scan(ks, Bound::Included(key.clone()), Bound::Unbounded, None) {
                        Ok(mut it) => it.next().await.map(|v| hits += u64::from(v.is_some())),
                        Err(e) => Err(e),
                    },
                };
                local.saturating_record(began.elapsed().as_nanos() as u64);
                if let Err(e) = r {
                    *errors.borrow_mut() = Some(e);
                    return;
                }
                // Operations served from memory never suspend, so without
                // this a client task could run thousands of them in a row
                // while another's completed read waits to be polled (a
                // server task yields at its socket instead).
                glommio::yield_if_needed().await;
            }
            hist.borrow_mut().add(&local).expect("same histogram bounds");
            *found.borrow_mut() += hits;
        }));
    }
    for t in tasks {
        t.await;
    }
    let elapsed = start.elapsed();
    if let Some(e) = errors.borrow_mut().take() {
        return Err(e.into());
    }
    let ops = plan.num;
    let h = hist.borrow();
    let found = *found.borrow();
    Ok(result("lumadb", workload, ops, elapsed, &h, found))
}
