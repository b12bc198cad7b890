//! Corruption tests: damaged bytes in a WAL segment, an SSTable or the
//! manifest give a clear error naming the file, never wrong data.

use super::common::*;
use lumadb_engine::db::Engine;
use lumadb_engine::storage::mem::MemStorage;
use lumadb_engine::CompactionStyle;
use std::collections::BTreeMap;

fn k(i: usize) -> Vec<u8> {
    format!("key{i:06}").into_bytes()
}

fn v(i: usize) -> Vec<u8> {
    format!("value-{i}-{}", "z".repeat(i % 40)).into_bytes()
}

/// Writes `n` keys; with `flush`, into tables.
fn populate(n: usize, flush: bool) -> MemStorage {
    let storage = MemStorage::new();
    let mut opts = tiny_options(CompactionStyle::Leveled);
    opts.memtable_size = 64 << 20; // keep everything in the WAL unless flushed
    opts.wal_total_bytes_max = 1 << 30; // as the config requires: at least the memtable
    run(async {
        let e = open(&storage, &opts).await;
        let ks = e.keyspace("default").unwrap();
        for i in 0..n {
            e.put(ks, &k(i), &v(i)).await.unwrap();
        }
        if flush {
            e.flush().await.unwrap();
        }
        e.close().await.unwrap();
    });
    storage
}

fn big_options() -> lumadb_engine::EngineOptions {
    let mut opts = tiny_options(CompactionStyle::Leveled);
    opts.memtable_size = 64 << 20;
    opts.wal_total_bytes_max = 1 << 30; // as the config requires: at least the memtable
    opts
}

fn names_with(storage: &MemStorage, suffix: &str) -> Vec<String> {
    storage
        .file_names()
        .into_iter()
        .filter(|n| n.ends_with(suffix))
        .collect()
}

fn flip(storage: &MemStorage, name: &str, offset: usize) {
    let bytes = storage.file_bytes(name).unwrap();
    storage.poke(name, offset, &[bytes[offset] ^ 0x5a]);
}

#[test]
fn wal_corruption_before_the_tail_fails_open_naming_file_and_offset() {
    let storage = populate(200, false);
    let wal = names_with(&storage, ".wal");
    // The newest segment after a clean close is empty; the data is in the one before.
    let (name, len) = wal
        .iter()
        .map(|n| (n.clone(), storage.file_bytes(n).unwrap().len()))
        .max_by_key(|(_, l)| *l)
        .unwrap();
    // Past the 4 KiB segment header, well before the end of the records
    // (the segment is zero-filled ahead of them).
    let bytes = storage.file_bytes(&name).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap();
    assert!(end < len);
    flip(&storage, &name, 4096 + (end - 4096) / 3);
    let err = run(Engine::open(storage.clone(), big_options()))
        .err()
        .expect("open must fail");
    let msg = err.to_string();
    assert!(msg.contains(&name), "error names the file: {msg}");
    assert!(msg.contains("offset"), "error names the offset: {msg}");

    // Recovery mode keeps the good prefix and reports what it dropped.
    let mut opts = big_options();
    opts.recovery_mode = true;
    run(async {
        let e = Engine::open(storage.clone(), opts).await.expect("recovery mode opens");
        let report = e.recovery_report();
        assert_eq!(report.dropped.len(), 1, "{report:?}");
        assert!(report.dropped[0].contains(&name));
        let ks = e.keyspace("default").unwrap();
        let mut present = 0;
        let mut missing_seen = false;
        for i in 0..200 {
            match e.get(ks, &k(i)).await.unwrap() {
                Some(got) => {
                    assert!(!missing_seen, "recovered state is a prefix of the writes");
                    assert_eq!(got, v(i), "never wrong data");
                    present += 1;
                }
                None => missing_seen = true,
            }
        }
        assert!(present > 0 && present < 200, "kept a strict prefix ({present})");
    });
}

#[test]
fn torn_wal_tail_is_truncated_and_reported() {
    let storage = populate(50, false);
    let wal = names_with(&storage, ".wal");
    let (name, len) = wal
        .iter()
        .map(|n| (n.clone(), storage.file_bytes(n).unwrap().len()))
        .max_by_key(|(_, l)| *l)
        .unwrap();
    // Damage the very last record: find the last non-zero byte.
    let bytes = storage.file_bytes(&name).unwrap();
    let last = bytes.iter().rposition(|&b| b != 0).unwrap();
    assert!(last < len);
    flip(&storage, &name, last - 2);
    run(async {
        let e = Engine::open(storage.clone(), big_options())
            .await
            .expect("a torn tail does not stop open");
        let report = e.recovery_report();
        assert!(report.torn_tail.is_some(), "{report:?}");
        let ks = e.keyspace("default").unwrap();
        for i in 0..49 {
            assert_eq!(e.get(ks, &k(i)).await.unwrap(), Some(v(i)));
        }
        assert_eq!(
            e.get(ks, &k(49)).await.unwrap(),
            None,
            "the torn record is not returned"
        );
    });
}

#[test]
fn sstable_corruption_is_an_error_naming_the_file_never_wrong_data() {
    let base = populate(400, true);
    let sst = names_with(&base, ".sst");
    assert!(!sst.is_empty());
    let name = sst[0].clone();
    let len = base.file_bytes(&name).unwrap().len();
    // Flip bytes at many places: data blocks, index, filter, footer.
    for frac in [0.05, 0.2, 0.45, 0.7, 0.9, 0.97, 0.995] {
        let storage = base.crash(None);
        let offset = ((len as f64) * frac) as usize;
        flip(&storage, &name, offset.min(len - 1));
        run(async {
            let e = match Engine::open(storage.clone(), big_options()).await {
                Ok(e) => e,
                Err(err) => {
                    assert!(err.to_string().contains(&name), "open error names {name}: {err}");
                    return;
                }
            };
            let ks = e.keyspace("default").unwrap();
            let mut errors = 0;
            for i in 0..400 {
                match e.get(ks, &k(i)).await {
                    Ok(Some(got)) => assert_eq!(got, v(i), "never wrong data (offset {offset})"),
                    Ok(None) => panic!("key {i} silently missing after corruption at {offset}"),
                    Err(err) => {
                        assert!(err.to_string().contains(&name), "error names {name}: {err}");
                        errors += 1;
                    }
                }
            }
            let scan = e
                .scan_collect(ks, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, usize::MAX)
                .await;
            match scan {
                Ok(all) => {
                    let want: BTreeMap<_, _> = (0..400).map(|i| (k(i), v(i))).collect();
                    assert_eq!(
                        all.into_iter().collect::<BTreeMap<_, _>>(),
                        want,
                        "scan never returns wrong data"
                    );
                }
                Err(err) => {
                    assert!(err.to_string().contains(&name), "scan error names {name}: {err}");
                    errors += 1;
                }
            }
            let _ = errors;
        });
    }
}

#[test]
fn manifest_corruption_fails_open_naming_the_manifest() {
    let storage = populate(100, true);
    let manifest = storage
        .file_names()
        .into_iter()
        .find(|n| n.starts_with("MANIFEST-"))
        .expect("a manifest exists");
    flip(&storage, &manifest, 20);
    let err = run(Engine::open(storage, big_options())).err().expect("open must fail");
    assert!(err.to_string().contains(&manifest), "error names {manifest}: {err}");
}

#[test]
fn missing_table_fails_open_naming_it() {
    let storage = populate(100, true);
    let sst = names_with(&storage, ".sst");
    run(async {
        use lumadb_engine::storage::Storage;
        storage.remove(&sst[0]).await.unwrap();
    });
    let err = run(Engine::open(storage, big_options())).err().expect("open must fail");
    assert!(err.to_string().contains(&sst[0]), "error names {}: {err}", sst[0]);
}
