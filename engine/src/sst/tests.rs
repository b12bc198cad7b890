//! Table round-trip, model and corruption tests.

use super::*;
use crate::cache::{BlockCache, RowCache};
use crate::key::{make_internal_key, make_seek_key, trailer, user_key, ValueKind};
use crate::options::KeyspaceOptions;
use crate::storage::mem::{MemFile, MemStorage};
use crate::storage::{align_up, Storage, StorageFile, IO_ALIGN};
use futures_lite::future::block_on;
use rand::{rngs::SmallRng, Rng, SeedableRng};
use std::rc::Rc;

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Random sorted entries and tombstones.
fn random_contents(rng: &mut SmallRng, n_keys: usize) -> (Entries, Vec<RangeTombstone>) {
    let mut entries: Entries = Vec::new();
    let mut seq = 1u64;
    let mut user_keys: Vec<Vec<u8>> = (0..n_keys)
        .map(|_| {
            let len = rng.gen_range(1..12);
            (0..len).map(|_| b"abcde\xff\x00"[rng.gen_range(0..7)]).collect()
        })
        .collect();
    user_keys.sort();
    user_keys.dedup();
    for uk in &user_keys {
        for _ in 0..rng.gen_range(1..4) {
            seq += rng.gen_range(1..5);
            let kind = match rng.gen_range(0..5) {
                0 => ValueKind::Delete,
                1 => ValueKind::PutExpiring,
                _ => ValueKind::Put,
            };
            let value: Vec<u8> = match kind {
                ValueKind::Delete => Vec::new(),
                _ => {
                    let len = if rng.gen_ratio(1, 50) {
                        rng.gen_range(2000..9000)
                    } else {
                        rng.gen_range(0..200)
                    };
                    // Mildly compressible.
                    (0..len)
                        .map(|i| if rng.gen_ratio(1, 4) { rng.gen() } else { (i % 7) as u8 })
                        .collect()
                }
            };
            entries.push((make_internal_key(uk, seq, kind), value));
        }
    }
    entries.sort_by(|a, b| cmp_internal(&a.0, &b.0));
    let tombstones = (0..rng.gen_range(0..4))
        .map(|_| {
            let a = user_keys[rng.gen_range(0..user_keys.len())].clone();
            let mut b = a.clone();
            b.push(rng.gen_range(0..255));
            RangeTombstone {
                start: a,
                end: b,
                seq: rng.gen_range(1..seq + 10),
            }
        })
        .collect();
    (entries, tombstones)
}

async fn write_table(
    storage: &MemStorage,
    name: &str,
    opts: &KeyspaceOptions,
    entries: &Entries,
    tombstones: &[RangeTombstone],
) -> TableProps {
    let file = storage.create(name).await.unwrap();
    let mut w = TableWriter::new(file, opts);
    for (k, v) in entries {
        w.add(k, v);
        w.maybe_flush().await.unwrap();
    }
    for t in tombstones {
        w.add_range_tombstone(&t.start, &t.end, t.seq);
    }
    w.finish().await.unwrap()
}

async fn open(storage: &MemStorage, name: &str) -> Result<Rc<Table<MemFile>>> {
    let file = storage.open(name).await?;
    Table::open(file, 1, Rc::new(BlockCache::new(1 << 20))).await
}

/// The model's answer to `get(user_key, snapshot)`.
fn model_get<'a>(entries: &'a Entries, uk: &[u8], snapshot: u64) -> Option<&'a (Vec<u8>, Vec<u8>)> {
    entries
        .iter()
        .find(|(k, _)| user_key(k) == uk && trailer(k) >> 8 <= snapshot)
}

fn options(rng: &mut SmallRng, compression: Compression) -> KeyspaceOptions {
    KeyspaceOptions {
        compression,
        block_size: rng.gen_range(64..4096),
        block_restart_interval: rng.gen_range(1..20),
        bloom_bits_per_key: if rng.gen_ratio(1, 4) { 0 } else { 10 },
        ..KeyspaceOptions::default()
    }
}

async fn check_against_model(
    table: &Rc<Table<MemFile>>,
    entries: &Entries,
    tombstones: &[RangeTombstone],
    rng: &mut SmallRng,
) {
    // Full scan.
    let mut it = table.iter();
    it.seek_to_first().await.unwrap();
    for (k, v) in entries {
        assert!(it.valid());
        assert_eq!(it.key(), &k[..]);
        assert_eq!(it.value(), &v[..]);
        it.next().await.unwrap();
    }
    assert!(!it.valid());
    // Seek to every key, and just before and after it.
    for (i, (k, v)) in entries.iter().enumerate() {
        it.seek(k).await.unwrap();
        assert_eq!(it.key(), &k[..]);
        assert_eq!(it.value(), &v[..]);
        let uk = user_key(k);
        let seq = trailer(k) >> 8;
        it.seek(&make_seek_key(uk, seq + 1)).await.unwrap();
        let first_at_or_after = entries
            .iter()
            .find(|(e, _)| cmp_internal(e, &make_seek_key(uk, seq + 1)) != Ordering::Less);
        assert_eq!(
            it.valid().then(|| it.key().to_vec()),
            first_at_or_after.map(|e| e.0.clone()),
            "seek {i}"
        );
        let mut after = uk.to_vec();
        after.push(0);
        it.seek(&make_seek_key(&after, SEQ_MAX)).await.unwrap();
        let next = entries.iter().find(|(e, _)| user_key(e) > uk);
        assert_eq!(it.valid().then(|| it.key().to_vec()), next.map(|e| e.0.clone()));
    }
    // Point lookups at random snapshots, present and absent keys.
    for (k, _) in entries {
        let uk = user_key(k);
        for snapshot in [
            SEQ_MAX,
            trailer(k) >> 8,
            (trailer(k) >> 8).saturating_sub(1),
            rng.gen_range(0..1000),
        ] {
            let want = model_get(entries, uk, snapshot).map(|(k, v)| (trailer(k), v.clone()));
            assert_eq!(table.get(uk, snapshot).await.unwrap(), want);
        }
        let mut absent = uk.to_vec();
        absent.push(b'~');
        if !entries.iter().any(|(k, _)| user_key(k) == &absent[..]) {
            assert_eq!(table.get(&absent, SEQ_MAX).await.unwrap(), None);
        }
    }
    let mut sorted = tombstones.to_vec();
    sorted.sort_by(|a, b| a.start.cmp(&b.start).then(b.seq.cmp(&a.seq)).then(a.end.cmp(&b.end)));
    assert_eq!(table.range_tombstones(), &sorted[..]);
}

#[test]
fn random_tables_match_a_model() {
    block_on(async {
        let mut rng = SmallRng::seed_from_u64(0x5eed);
        for round in 0..24 {
            let compression = [Compression::None, Compression::Lz4, Compression::Zstd(3)][round % 3];
            let opts = options(&mut rng, compression);
            let n = [1, 5, 50, 400][round % 4];
            let (entries, tombstones) = random_contents(&mut rng, n);
            let storage = MemStorage::new();
            let name = "000001.sst";
            let props = write_table(&storage, name, &opts, &entries, &tombstones).await;
            let file_size = storage.file_bytes(name).unwrap().len() as u64;
            assert_eq!(props.file_size, file_size);
            let table = open(&storage, name).await.unwrap();
            assert_eq!(table.props(), &props);
            assert_eq!(table.compression_tag(), compression.tag());
            assert_eq!(props.entries, entries.len() as u64);
            let dels = entries
                .iter()
                .filter(|(k, _)| trailer(k) as u8 == ValueKind::Delete as u8)
                .count();
            assert_eq!(props.point_tombstones, dels as u64);
            assert_eq!(props.range_tombstones, tombstones.len() as u64);
            // Bounds include tombstones.
            let mut smallest = entries[0].0.clone();
            let mut largest = entries.last().unwrap().0.clone();
            for t in &tombstones {
                let lo = make_internal_key(&t.start, t.seq, ValueKind::RangeDelete);
                let hi = make_internal_key(&t.end, SEQ_MAX, ValueKind::RangeDelete);
                if cmp_internal(&lo, &smallest) == Ordering::Less {
                    smallest = lo;
                }
                if cmp_internal(&hi, &largest) == Ordering::Greater {
                    largest = hi;
                }
            }
            assert_eq!(props.smallest, smallest);
            assert_eq!(props.largest, largest);
            let seqs = entries
                .iter()
                .map(|(k, _)| trailer(k) >> 8)
                .chain(tombstones.iter().map(|t| t.seq));
            assert_eq!(props.smallest_seq, seqs.clone().min().unwrap());
            assert_eq!(props.largest_seq, seqs.max().unwrap());
            let meta = props.to_file_meta(1);
            assert_eq!(meta.size, file_size);
            assert_eq!(meta.file_name(), name);
            assert!(table.memory_bytes() > 0);
            check_against_model(&table, &entries, &tombstones, &mut rng).await;
        }
    });
}

#[test]
fn tombstone_only_table() {
    block_on(async {
        let storage = MemStorage::new();
        let t = RangeTombstone {
            start: b"a".to_vec(),
            end: b"m".to_vec(),
            seq: 9,
        };
        let props = write_table(
            &storage,
            "t.sst",
            &KeyspaceOptions::default(),
            &Vec::new(),
            std::slice::from_ref(&t),
        )
        .await;
        assert_eq!(props.entries, 0);
        assert_eq!(props.smallest, make_internal_key(b"a", 9, ValueKind::RangeDelete));
        assert_eq!(props.largest, make_internal_key(b"m", SEQ_MAX, ValueKind::RangeDelete));
        let table = open(&storage, "t.sst").await.unwrap();
        assert_eq!(table.range_tombstones(), &[t]);
        assert_eq!(table.get(b"b", SEQ_MAX).await.unwrap(), None);
        let mut it = table.iter();
        it.seek_to_first().await.unwrap();
        assert!(!it.valid());
    });
}

#[test]
fn builder_hands_out_aligned_chunks() {
    let mut rng = SmallRng::seed_from_u64(3);
    let (entries, tombstones) = random_contents(&mut rng, 2000);
    let mut b = TableBuilder::new(&KeyspaceOptions::default());
    let mut out = Vec::new();
    for (k, v) in &entries {
        b.add(k, v);
        if let Some(chunk) = b.take_aligned() {
            assert_eq!(chunk.len() % IO_ALIGN, 0);
            out.extend_from_slice(&chunk);
        }
    }
    for t in &tombstones {
        b.add_range_tombstone(&t.start, &t.end, t.seq);
    }
    let estimate = b.estimated_size();
    let (tail, logical, props) = b.finish();
    assert_eq!(tail.len() % IO_ALIGN, 0);
    out.extend_from_slice(&tail);
    assert_eq!(out.len(), align_up(logical as usize));
    assert_eq!(props.file_size, logical);
    assert!(estimate <= logical);
    assert_eq!(&out[logical as usize - 8..logical as usize], &MAGIC.to_le_bytes());
}

#[test]
fn compression_shrinks_compressible_tables() {
    block_on(async {
        let entries: Entries = (0..2000)
            .map(|i| {
                (
                    make_internal_key(format!("user:{i:08}").as_bytes(), i + 1, ValueKind::Put),
                    vec![b'x'; 100],
                )
            })
            .collect();
        let mut sizes = Vec::new();
        for c in [Compression::None, Compression::Lz4, Compression::Zstd(3)] {
            let storage = MemStorage::new();
            let opts = KeyspaceOptions {
                compression: c,
                ..KeyspaceOptions::default()
            };
            sizes.push(write_table(&storage, "c.sst", &opts, &entries, &[]).await.file_size);
            let table = open(&storage, "c.sst").await.unwrap();
            let (k, v) = &entries[777];
            assert_eq!(
                table.get(user_key(k), SEQ_MAX).await.unwrap(),
                Some((trailer(k), v.clone()))
            );
        }
        assert!(sizes[1] < sizes[0] / 4, "{sizes:?}");
        assert!(sizes[2] < sizes[0] / 4, "{sizes:?}");
    });
}

#[test]
fn caches_serve_repeat_reads() {
    block_on(async {
        let mut rng = SmallRng::seed_from_u64(11);
        let (entries, _) = random_contents(&mut rng, 300);
        let storage = MemStorage::new();
        write_table(&storage, "r.sst", &KeyspaceOptions::default(), &entries, &[]).await;
        let cache = Rc::new(BlockCache::new(1 << 20));
        let table = Table::open(storage.open("r.sst").await.unwrap(), 7, cache.clone())
            .await
            .unwrap();
        let mut it = table.iter();
        it.seek_to_first().await.unwrap();
        while it.valid() {
            it.next().await.unwrap();
        }
        let misses = cache.requests() - cache.hits();
        it.seek_to_first().await.unwrap();
        while it.valid() {
            it.next().await.unwrap();
        }
        assert_eq!(cache.requests() - cache.hits(), misses, "second scan served from cache");
        assert!(cache.usage_bytes() > 0);

        let rows = RowCache::new(1 << 20);
        let largest = table.props().largest_seq;
        for (k, v) in &entries {
            let uk = user_key(k);
            let want = model_get(&entries, uk, SEQ_MAX).map(|(k, v)| (trailer(k), v.clone()));
            assert_eq!(table.get_cached(uk, largest, &rows).await.unwrap(), want);
            assert_eq!(table.get_cached(uk, largest, &rows).await.unwrap(), want);
            let old = trailer(k) >> 8;
            let want_old = model_get(&entries, uk, old).map(|(k, v)| (trailer(k), v.clone()));
            assert_eq!(table.get_cached(uk, old, &rows).await.unwrap(), want_old);
            let _ = v;
        }
        assert!(rows.hits() > 0);
    });
}

/// Writes `bytes` as a new file `name` (aligned write, then truncate).
async fn put_file(storage: &MemStorage, name: &str, bytes: &[u8]) {
    let f = storage.create(name).await.unwrap();
    let mut padded = bytes.to_vec();
    padded.resize(align_up(bytes.len()).max(IO_ALIGN), 0);
    f.write_at(0, &padded).await.unwrap();
    f.truncate(bytes.len() as u64).await.unwrap();
}

/// Opens `name` and reads everything; the first error, if any.
async fn read_everything(storage: &MemStorage, name: &str, entries: &Entries) -> Result<()> {
    let table = open(storage, name).await?;
    let mut it = table.iter();
    it.seek_to_first().await?;
    let mut i = 0;
    while it.valid() {
        assert_eq!(
            (it.key(), it.value()),
            (&entries[i].0[..], &entries[i].1[..]),
            "wrong data returned"
        );
        i += 1;
        it.next().await?;
    }
    assert_eq!(i, entries.len(), "entries went missing without an error");
    for (k, v) in entries {
        if let Some(got) = table.get(user_key(k), trailer(k) >> 8).await? {
            assert_eq!(got, (trailer(k), v.clone()), "wrong data returned");
        }
    }
    Ok(())
}

fn assert_names_file(err: &Error, name: &str) {
    assert!(err.is_corruption(), "{err}");
    assert!(err.to_string().contains(name), "{err}");
}

#[test]
fn every_corrupted_byte_is_detected() {
    block_on(async {
        let mut rng = SmallRng::seed_from_u64(99);
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd(1)] {
            let (entries, tombstones) = random_contents(&mut rng, 40);
            let opts = KeyspaceOptions {
                compression,
                block_size: 256,
                ..KeyspaceOptions::default()
            };
            let storage = MemStorage::new();
            write_table(&storage, "good.sst", &opts, &entries, &tombstones).await;
            read_everything(&storage, "good.sst", &entries).await.unwrap();
            let good = storage.file_bytes("good.sst").unwrap();
            for offset in 0..good.len() {
                let mut bad = good.clone();
                bad[offset] ^= 1 << rng.gen_range(0..8);
                put_file(&storage, "bad.sst", &bad).await;
                let err = read_everything(&storage, "bad.sst", &entries)
                    .await
                    .expect_err(&format!("flip at {offset} of {} went unnoticed", good.len()));
                assert_names_file(&err, "bad.sst");
            }
        }
    });
}

#[test]
fn corrupted_regions_name_file_and_offset() {
    block_on(async {
        let mut rng = SmallRng::seed_from_u64(5);
        let (entries, tombstones) = random_contents(&mut rng, 200);
        let storage = MemStorage::new();
        write_table(
            &storage,
            "000042.sst",
            &KeyspaceOptions::default(),
            &entries,
            &tombstones,
        )
        .await;
        let good = storage.file_bytes("000042.sst").unwrap();
        let footer_at = good.len() - FOOTER_SIZE;
        let footer = Footer::decode("x", footer_at as u64, &good[footer_at..]).unwrap();
        let regions = [
            ("footer", footer_at as u64),
            ("index", footer.index.offset),
            ("filter", footer.filter.offset),
            ("range-del", footer.range_del.offset),
            ("props", footer.props.offset),
            ("data", 0),
        ];
        for (what, offset) in regions {
            let mut bad = good.clone();
            bad[offset as usize + 1] ^= 0x40;
            put_file(&storage, "000042.sst", &bad).await;
            let err = read_everything(&storage, "000042.sst", &entries).await.expect_err(what);
            assert_names_file(&err, "000042.sst");
            match err {
                Error::ChecksumMismatch { offset: at, .. } => assert_eq!(at, offset, "{what}"),
                other => panic!("{what}: {other}"),
            }
        }
    });
}

#[test]
fn truncated_files_are_rejected() {
    block_on(async {
        let mut rng = SmallRng::seed_from_u64(8);
        let (entries, _) = random_contents(&mut rng, 100);
        let storage = MemStorage::new();
        write_table(&storage, "t.sst", &KeyspaceOptions::default(), &entries, &[]).await;
        let good = storage.file_bytes("t.sst").unwrap();
        for len in (0..good.len())
            .step_by(37)
            .chain([good.len() - 1, good.len() - FOOTER_SIZE])
        {
            put_file(&storage, "t.sst", &good[..len]).await;
            let err = open(&storage, "t.sst").await.expect_err("truncated table opened");
            assert_names_file(&err, "t.sst");
        }
    });
}

#[test]
fn unknown_format_version_is_reported() {
    block_on(async {
        let storage = MemStorage::new();
        let entries = vec![(make_internal_key(b"k", 1, ValueKind::Put), b"v".to_vec())];
        write_table(&storage, "v.sst", &KeyspaceOptions::default(), &entries, &[]).await;
        let mut bytes = storage.file_bytes("v.sst").unwrap();
        let at = bytes.len() - FOOTER_SIZE;
        bytes[at + 64..at + 68].copy_from_slice(&2u32.to_le_bytes());
        let sum = crate::coding::checksum(&bytes[at..at + 68]);
        bytes[at + 68..at + 76].copy_from_slice(&sum.to_le_bytes());
        put_file(&storage, "v.sst", &bytes).await;
        match open(&storage, "v.sst").await {
            Err(Error::UnsupportedVersion {
                file,
                found: 2,
                supported: 1,
            }) => assert_eq!(file, "v.sst"),
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn hostile_meta_bytes_never_panic() {
    let mut rng = SmallRng::seed_from_u64(1234);
    for _ in 0..20_000 {
        let len = rng.gen_range(0..120);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        let _ = Footer::decode("f", 0, &bytes);
        if bytes.len() == FOOTER_SIZE {
            bytes[76..].copy_from_slice(&MAGIC.to_le_bytes());
            bytes[64..68].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
            let _ = Footer::decode("f", 0, &bytes);
        }
        let _ = decode_block("f", 0, &bytes);
        // With a valid checksum, so the decoders behind it run.
        if !bytes.is_empty() {
            bytes[0] = rng.gen_range(0..4);
            let mut framed = bytes[1..].to_vec();
            framed.push(bytes[0]);
            let sum = crate::coding::checksum(&framed);
            framed.extend_from_slice(&sum.to_le_bytes());
            let _ = decode_block("f", 0, &framed);
        }
        let _ = TableProps::decode_block(&bytes, 0);
        let _ = decode_range_dels(&bytes);
        let _ = bloom::BloomFilter::decode(bytes.clone());
        let _ = block::Block::decode(bytes);
    }
}

#[test]
#[should_panic(expected = "out of order")]
fn out_of_order_keys_are_a_bug() {
    let mut b = TableBuilder::new(&KeyspaceOptions::default());
    b.add(&make_internal_key(b"b", 1, ValueKind::Put), b"");
    b.add(&make_internal_key(b"a", 1, ValueKind::Put), b"");
}

#[test]
fn separators_are_short_and_between() {
    let a = make_internal_key(b"apple", 5, ValueKind::Put);
    let b = make_internal_key(b"azure", 9, ValueKind::Put);
    let sep = builder::shortest_separator(&a, &b);
    assert_eq!(user_key(&sep), b"aq");
    let same = make_internal_key(b"apple", 4, ValueKind::Put);
    assert_eq!(builder::shortest_separator(&a, &same), a);
    let adjacent = make_internal_key(b"apq", 4, ValueKind::Put);
    assert_eq!(builder::shortest_separator(&a, &adjacent), a);
}

#[test]
fn finished_table_survives_a_crash() {
    block_on(async {
        let mut rng = SmallRng::seed_from_u64(21);
        // Large enough for several 256 KiB writes before finish.
        let entries: Entries = (0..4000u64)
            .map(|i| {
                let v: Vec<u8> = (0..200).map(|_| rng.gen()).collect();
                (
                    make_internal_key(format!("k{i:06}").as_bytes(), i + 1, ValueKind::Put),
                    v,
                )
            })
            .collect();
        let storage = MemStorage::new();
        let opts = KeyspaceOptions {
            compression: Compression::None,
            ..KeyspaceOptions::default()
        };
        let props = write_table(&storage, "000003.sst", &opts, &entries, &[]).await;
        assert!(storage.writes_done() >= 4, "writes {}", storage.writes_done());
        storage.sync_dir().await.unwrap();
        let after = storage.crash(Some(77));
        assert_eq!(after.file_bytes("000003.sst").unwrap().len() as u64, props.file_size);
        read_everything(&after, "000003.sst", &entries).await.unwrap();
    });
}

/// A table file whose reads take a turn of the executor, so that readers
/// overlap, and are counted.
#[derive(Clone)]
struct SlowFile {
    inner: crate::storage::mem::MemFile,
    reads: Rc<std::cell::Cell<u32>>,
}

impl StorageFile for SlowFile {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.reads.set(self.reads.get() + 1);
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
        .await;
        self.inner.read_at(offset, len).await
    }
    async fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.inner.write_at(offset, data).await
    }
    async fn sync(&self) -> Result<()> {
        self.inner.sync().await
    }
    async fn size(&self) -> Result<u64> {
        self.inner.size().await
    }
    async fn truncate(&self, size: u64) -> Result<()> {
        self.inner.truncate(size).await
    }
}

#[test]
fn concurrent_misses_on_one_block_share_one_read() {
    block_on(async {
        let mut rng = SmallRng::seed_from_u64(12);
        let (entries, _) = random_contents(&mut rng, 300);
        let storage = MemStorage::new();
        write_table(&storage, "s.sst", &KeyspaceOptions::default(), &entries, &[]).await;
        let reads = Rc::new(std::cell::Cell::new(0));
        let file = SlowFile {
            inner: storage.open("s.sst").await.unwrap(),
            reads: reads.clone(),
        };
        let table = Table::open(file, 8, Rc::new(BlockCache::new(1 << 20))).await.unwrap();
        let opened = reads.get();
        // Ten readers of the first key: one block read among them.
        let uk = user_key(&entries[0].0);
        let want = Some((trailer(&entries[0].0), entries[0].1.clone()));
        let gets = (0..10).map(|_| table.get(uk, SEQ_MAX));
        for got in futures::future::join_all(gets).await {
            assert_eq!(got.unwrap(), want);
        }
        assert_eq!(reads.get() - opened, 1);
    });
}
