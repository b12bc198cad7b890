//! Test harness for the SIGKILL crash test: opens an engine on real files
//! (glommio `DmaFile`, O_DIRECT, `sync` mode), first checks that every
//! write listed in `--expect FILE` is present with its value, then runs
//! concurrent writers forever, printing `ack <key> <value>` to stdout after
//! each write is acknowledged. The parent kills it with SIGKILL at a
//! seeded random moment and runs it again.
//!
//! Printing from the executor thread is a blocking syscall; acceptable in
//! this harness, never in the server.

use lumadb_engine::db::Engine;
use lumadb_engine::{EngineOptions, SyncMode};
use lumadb_shard::driver;
use lumadb_shard::storage::DmaStorage;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let mut dir = None;
    let mut expect = None;
    let mut seed = 0u64;
    let mut writers = 8usize;
    let mut page_cache_reads = false;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--dir" => dir = args.get(i + 1).cloned(),
            "--expect" => expect = args.get(i + 1).cloned(),
            "--seed" => seed = args.get(i + 1).and_then(|s| s.parse().ok()).unwrap_or(0),
            "--writers" => writers = args.get(i + 1).and_then(|s| s.parse().ok()).unwrap_or(8),
            "--page-cache-reads" => {
                page_cache_reads = true;
                i += 1;
                continue;
            }
            other => {
                eprintln!("unknown argument {other}");
                return ExitCode::from(2);
            }
        }
        i += 2;
    }
    let Some(dir) = dir else {
        eprintln!("usage: lumadb-crash-writer --dir DIR [--expect FILE] [--seed N] [--writers N]");
        return ExitCode::from(2);
    };
    let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(2 << 20)
        .make()
        .expect("glommio executor (is io_uring available and memlock >= 2 MiB?)");
    ex.run(async move {
        let storage = DmaStorage::open(&dir)
            .await
            .expect("data dir")
            .with_page_cache_reads(page_cache_reads);
        let opts = EngineOptions {
            memtable_size: 256 << 10,
            sync_mode: SyncMode::Sync,
            keyspace_defaults: lumadb_engine::KeyspaceOptions {
                target_file_size: 256 << 10,
                max_bytes_for_level_base: 1 << 20,
                ..Default::default()
            },
            ..Default::default()
        };
        let engine = match Engine::open(storage, opts).await {
            Ok(e) => e,
            Err(e) => {
                eprintln!("open failed: {e}");
                return ExitCode::from(3);
            }
        };
        let ks = engine.keyspace("default").expect("default keyspace");
        if let Some(path) = expect {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let mut checked = 0u64;
            for line in text.lines() {
                let mut parts = line.split(' ');
                let (Some("ack"), Some(k), Some(v)) = (parts.next(), parts.next(), parts.next()) else {
                    continue;
                };
                match engine.get(ks, k.as_bytes()).await {
                    Ok(Some(got)) if got == v.as_bytes() => checked += 1,
                    // A later write to the key was durable but killed before its ack.
                    Ok(Some(got)) if write_number(&got) > write_number(v.as_bytes()) => checked += 1,
                    Ok(got) => {
                        eprintln!(
                            "LOST: {k} expected {v} found {:?}",
                            got.map(|g| String::from_utf8_lossy(&g).into_owned())
                        );
                        return ExitCode::from(1);
                    }
                    Err(e) => {
                        eprintln!("read error for {k}: {e}");
                        return ExitCode::from(1);
                    }
                }
            }
            println!("verified {checked}");
        }
        let _bg = driver::spawn_background(&engine, driver::background_queue(&engine));
        let mut tasks = Vec::new();
        for w in 0..writers {
            let e = engine.clone();
            tasks.push(glommio::spawn_local(async move {
                let mut n = 0u64;
                loop {
                    // Keys repeat, so later cycles overwrite and the check
                    // must see the newest acknowledged value.
                    let k = format!("s{seed}-w{w}-k{}", n % 500);
                    let v = format!("v{seed}-{w}-{n}");
                    if let Err(err) = e.put(ks, k.as_bytes(), v.as_bytes()).await {
                        eprintln!("write failed: {err}");
                        return;
                    }
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "ack {k} {v}");
                    let _ = out.flush();
                    n += 1;
                }
            }));
        }
        for t in tasks {
            t.await;
        }
        ExitCode::from(4)
    })
}

/// The write counter at the end of a value `v{seed}-{writer}-{n}`.
fn write_number(v: &[u8]) -> u64 {
    let s = String::from_utf8_lossy(v);
    s.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}
