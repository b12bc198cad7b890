//! Concurrent clients on the same keys: key locks keep each command's
//! read-modify-write whole, also when its read waits for the disk, and
//! multi-key commands over several shards are seen whole or not at all.

use std::thread;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use lumadb_tests::resp::{RespConn, Value};
use lumadb_tests::server::{keys_on_shard, LumaServer, ServerOptions};

const COUNTERS: usize = 3_000;
const CLIENTS: usize = 8;

/// Counters that live in tables on disk, evicted from a small block
/// cache, are INCRed by several clients at once in the same order: the
/// first INCRs of a counter all wait on its disk read, and each must see
/// the one before it (none is lost). A command takes its locks only when
/// it first suspends; this is where that matters.
#[test]
fn incrs_racing_on_counters_read_from_disk_lose_no_update() {
    let s = LumaServer::start(
        ServerOptions::default()
            .shards(1)
            .sync_mode("interval")
            .config("[memory]\nmemtable_size = \"1MiB\"\nblock_cache_size = \"1MiB\"\n"),
    );
    let mut c = s.conn();
    for chunk in (0..COUNTERS).collect::<Vec<_>>().chunks(500) {
        let mut args = vec!["MSET".to_string()];
        for i in chunk {
            args.push(format!("ctr:{i:05}"));
            args.push("0".into());
        }
        assert_eq!(c.call(&args), Value::Simple(b"OK".to_vec()));
    }
    // Filler pushes the counters out of the memtable and the block cache.
    let filler = "f".repeat(200);
    for batch in 0..40 {
        let mut args = vec!["MSET".to_string()];
        for i in 0..500 {
            args.push(format!("filler:{batch:03}:{i:04}"));
            args.push(filler.clone());
        }
        assert_eq!(c.call(&args), Value::Simple(b"OK".to_vec()));
    }
    let port = s.redis_port();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            thread::spawn(move || {
                let mut c = RespConn::open(port);
                for chunk in (0..COUNTERS).collect::<Vec<_>>().chunks(16) {
                    for i in chunk {
                        c.send(&["INCR", &format!("ctr:{i:05}")]);
                    }
                    for _ in chunk {
                        let (_, reply) = c.read_reply().expect("a reply");
                        assert!(matches!(reply, Value::Int(_)), "{reply:?}");
                    }
                }
            })
        })
        .collect();
    for t in clients {
        t.join().expect("client thread");
    }
    let mut lost = Vec::new();
    for chunk in (0..COUNTERS).collect::<Vec<_>>().chunks(500) {
        let mut args = vec!["MGET".to_string()];
        args.extend(chunk.iter().map(|i| format!("ctr:{i:05}")));
        let Value::Array(values) = c.call(&args) else {
            panic!("MGET")
        };
        for (i, v) in chunk.iter().zip(values) {
            if v != Value::Bulk(CLIENTS.to_string().into_bytes()) {
                lost.push((*i, v));
            }
        }
    }
    assert!(
        lost.is_empty(),
        "{} counters lost updates: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}

/// MSET, MGET, DEL and EXISTS over keys of two shards are isolated as in
/// Redis: while one client sets and deletes pairs of keys on different
/// shards, another never sees one key of a pair changed and the other not.
#[test]
fn multi_key_commands_across_shards_are_seen_whole() {
    let s = LumaServer::start(ServerOptions::default().shards(2).sync_mode("interval"));
    let pairs: Vec<(String, String)> = keys_on_shard("iso:a:", 0, 2, 4)
        .into_iter()
        .zip(keys_on_shard("iso:b:", 1, 2, 4))
        .collect();
    let port = s.redis_port();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let pairs = pairs.clone();
        let done = done.clone();
        thread::spawn(move || {
            let mut c = RespConn::open(port);
            for i in 0..3_000 {
                let (a, b) = &pairs[i % pairs.len()];
                if i % 5 == 4 {
                    assert_eq!(c.call(&["DEL", a, b]), Value::Int(2));
                } else {
                    let v = i.to_string();
                    assert_eq!(c.call(&["MSET", a, &v, b, &v]), Value::Simple(b"OK".to_vec()));
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let pairs = pairs.clone();
            let done = done.clone();
            thread::spawn(move || {
                let mut c = RespConn::open(port);
                let mut reads = 0u64;
                while !done.load(Ordering::SeqCst) {
                    let (a, b) = &pairs[reads as usize % pairs.len()];
                    reads += 1;
                    if r == 0 {
                        let Value::Array(v) = c.call(&["MGET", a, b]) else {
                            panic!("MGET")
                        };
                        assert_eq!(v[0], v[1], "MGET saw half an MSET or DEL of {a} {b}");
                    } else {
                        let n = c.call(&["EXISTS", a, b]);
                        assert!(
                            matches!(n, Value::Int(0) | Value::Int(2)),
                            "EXISTS saw half a pair: {n:?}"
                        );
                    }
                }
                reads
            })
        })
        .collect();
    writer.join().expect("writer");
    for r in readers {
        assert!(r.join().expect("reader") > 0);
    }
}
