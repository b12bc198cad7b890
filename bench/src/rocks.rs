//! The RocksDB side of `--compare rocksdb`: the same workloads, with
//! options matched to LumaDB's (memtable size, block cache, 10-bit bloom
//! filters, LZ4, 4 KiB blocks, leveled compaction with the same triggers),
//! `--concurrency` client threads, and every thread — RocksDB's own flush
//! and compaction threads included, since they inherit the affinity of
//! the thread that opens the database — pinned to the same CPU.

use crate::engine::{new_histogram, print_row, result, Plan, ValueSource, WorkloadResult};
use crate::BenchError;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rocksdb::{BlockBasedOptions, Cache, DBCompressionType, Options, WriteOptions, DB};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

fn pin_current_thread(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn err(e: rocksdb::Error) -> BenchError {
    BenchError::Rocksdb(e.to_string())
}

pub(crate) fn run(plan: &Plan, dir: PathBuf) -> Result<Vec<WorkloadResult>, BenchError> {
    let plan = plan.clone();
    // A dedicated thread, pinned before the database opens, so that every
    // thread RocksDB starts inherits the pin.
    std::thread::spawn(move || {
        pin_current_thread(plan.cpu);
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_write_buffer_size(plan.memtable_size);
        opts.set_max_write_buffer_number(3);
        opts.set_level_zero_file_num_compaction_trigger(4);
        opts.set_level_zero_stop_writes_trigger(36);
        opts.set_max_bytes_for_level_base(256 << 20);
        opts.set_max_bytes_for_level_multiplier(10.0);
        opts.set_target_file_size_base(64 << 20);
        opts.set_compression_type(DBCompressionType::Lz4);
        opts.set_max_background_jobs(2);
        let mut table = BlockBasedOptions::default();
        table.set_block_size(4096);
        table.set_bloom_filter(10.0, false);
        table.set_block_cache(&Cache::new_lru_cache(plan.block_cache_size));
        opts.set_block_based_table_factory(&table);
        let db = Arc::new(DB::open(&opts, &dir).map_err(err)?);
        let values = Arc::new(ValueSource::new(plan.value_size));
        let mut out = Vec::new();
        for w in &plan.workloads {
            let r = run_workload(&db, &plan, &values, w)?;
            print_row(&r);
            out.push(r);
        }
        Ok(out)
    })
    .join()
    .map_err(|_| BenchError::Rocksdb("benchmark thread panicked".into()))?
}

fn run_workload(
    db: &Arc<DB>,
    plan: &Plan,
    values: &Arc<ValueSource>,
    workload: &str,
) -> Result<WorkloadResult, BenchError> {
    if workload == "readseq" {
        let mut h = new_histogram();
        let start = Instant::now();
        let mut it = db.raw_iterator();
        it.seek_to_first();
        let mut n = 0u64;
        while n < plan.num {
            let t = Instant::now();
            if !it.valid() {
                break;
            }
            it.next();
            h.saturating_record(t.elapsed().as_nanos() as u64);
            n += 1;
        }
        it.status().map_err(err)?;
        return Ok(result("rocksdb", workload, n, start.elapsed(), &h, n));
    }
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..plan.concurrency {
        let db = db.clone();
        let values = values.clone();
        let plan = plan.clone();
        let workload = workload.to_string();
        let (first, count) = plan.share(t);
        handles.push(std::thread::spawn(move || -> Result<_, BenchError> {
            let mut wo = WriteOptions::default();
            wo.set_sync(plan.sync);
            let mut rng = SmallRng::seed_from_u64(t as u64 * 7919 + 17);
            let mut h = new_histogram();
            let mut key = Vec::with_capacity(plan.key_size);
            let mut hits = 0u64;
            for i in 0..count {
                let n = if workload == "fillseq" {
                    first + i
                } else {
                    rng.gen_range(0..plan.num)
                };
                plan.key(n, &mut key);
                let began = Instant::now();
                match workload.as_str() {
                    "fillseq" | "fillrandom" | "overwrite" => {
                        db.put_opt(&key, values.value(n, plan.value_size), &wo).map_err(err)?
                    }
                    "deleterandom" => db.delete_opt(&key, &wo).map_err(err)?,
                    "readrandom" => hits += u64::from(db.get_pinned(&key).map_err(err)?.is_some()),
                    _ => {
                        let mut it = db.raw_iterator();
                        it.seek(&key);
                        hits += u64::from(it.valid());
                    }
                }
                h.saturating_record(began.elapsed().as_nanos() as u64);
            }
            Ok((h, hits))
        }));
    }
    let mut h = new_histogram();
    let mut found = 0;
    for handle in handles {
        let (th, hits) = handle
            .join()
            .map_err(|_| BenchError::Rocksdb("client thread panicked".into()))??;
        h.add(&th).expect("same histogram bounds");
        found += hits;
    }
    Ok(result("rocksdb", workload, plan.num, start.elapsed(), &h, found))
}
