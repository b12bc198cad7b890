//! Concurrent clients on the same keys: key locks keep each command's
//! read-modify-write whole, also when its read waits for the disk.

use std::thread;

use lumadb_tests::resp::{RespConn, Value};
use lumadb_tests::server::{LumaServer, ServerOptions};

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
