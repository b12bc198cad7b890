use super::reader::parse_segment;
use super::*;
use crate::key::ValueKind;
use crate::storage::mem::{MemFile, MemStorage, SplitMix64};
use crate::storage::{Storage, StorageFile};
use futures_lite::future::block_on;

const NAME: &str = "000001.wal";

/// A batch whose size depends on `rng`: mostly small, sometimes spanning
/// several pages.
fn random_batch(rng: &mut SplitMix64, tag: u64) -> WriteBatch {
    let mut b = WriteBatch::new();
    let ops = 1 + rng.next_u64() % 4;
    for i in 0..ops {
        let key = format!("key-{tag}-{i}");
        let value_len = match rng.next_u64() % 10 {
            0 => 5000 + (rng.next_u64() % 12000) as usize,
            1..=3 => (rng.next_u64() % 600) as usize,
            _ => (rng.next_u64() % 40) as usize,
        };
        let value: Vec<u8> = (0..value_len).map(|j| (tag as usize + j) as u8 | 1).collect();
        match rng.next_u64() % 5 {
            0 => b.delete(i as u32, key.as_bytes()).unwrap(),
            1 => b.put_expiring(7, key.as_bytes(), &value, tag).unwrap(),
            2 => b.delete_range(3, key.as_bytes(), b"zzz").unwrap(),
            _ => b.put(i as u32, key.as_bytes(), &value).unwrap(),
        }
    }
    b
}

/// True with probability 1/n.
fn one_in(rng: &mut SplitMix64, n: u64) -> bool {
    matches!(rng.next_u64() % n, 0)
}

fn payload(first_seq: SeqNo, batch: &WriteBatch) -> Vec<u8> {
    let mut out = Vec::new();
    encode_batch_record(first_seq, batch, &mut out);
    out
}

async fn new_log(s: &MemStorage, name: &str) -> LogWriter<MemFile> {
    let f = s.create(name).await.unwrap();
    s.sync_dir().await.unwrap();
    LogWriter::create(f, parse_wal_file_name(name).unwrap()).await.unwrap()
}

async fn replay(s: &MemStorage, recovery_mode: bool) -> Result<LogReplay> {
    let f = s.open(NAME).await.unwrap();
    read_log(&f, recovery_mode).await
}

/// Writes `n` random batch records, a storage write every few appends and
/// a sync every few writes; returns the payloads and the record offsets.
async fn write_records(w: &mut LogWriter<MemFile>, rng: &mut SplitMix64, n: usize) -> (Vec<Vec<u8>>, Vec<u64>) {
    let mut payloads = Vec::new();
    let mut offsets = Vec::new();
    let mut seq = 1;
    for i in 0..n {
        let b = random_batch(rng, i as u64);
        offsets.push(w.len());
        w.append_batch(seq, &b).unwrap();
        payloads.push(payload(seq, &b));
        seq += b.len() as u64;
        if one_in(rng, 3) {
            w.write().await.unwrap();
            if one_in(rng, 2) {
                w.sync().await.unwrap();
            }
        }
    }
    w.write().await.unwrap();
    w.sync().await.unwrap();
    (payloads, offsets)
}

#[test]
fn file_names_round_trip() {
    assert_eq!(wal_file_name(1), "000001.wal");
    assert_eq!(wal_file_name(1_234_567), "1234567.wal");
    assert_eq!(parse_wal_file_name("000001.wal"), Some(1));
    assert_eq!(parse_wal_file_name("1234567.wal"), Some(1_234_567));
    for bad in [
        "1.wal",
        "00001.wal",
        "000001.sst",
        "+00001.wal",
        "0000001.wal",
        "00000a.wal",
        ".wal",
        "000001.wal.tmp",
    ] {
        assert_eq!(parse_wal_file_name(bad), None, "{bad}");
    }
}

#[test]
fn batch_record_round_trip_and_validation() {
    let mut rng = SplitMix64::new(1);
    let b = random_batch(&mut rng, 9);
    let p = payload(42, &b);
    let (seq, decoded) = decode_batch_record(&p).unwrap();
    assert_eq!(seq, 42);
    assert_eq!(decoded, b);
    // Count that disagrees with the ops.
    let mut wrong = p.clone();
    wrong[8] ^= 0x40;
    assert!(decode_batch_record(&wrong).is_none());
    // Sequence number 0, and sequence numbers past SEQ_MAX.
    let mut zero = p.clone();
    zero[..8].copy_from_slice(&0u64.to_le_bytes());
    assert!(decode_batch_record(&zero).is_none());
    let mut over = p.clone();
    over[..8].copy_from_slice(&crate::key::SEQ_MAX.to_le_bytes());
    assert_eq!(decode_batch_record(&over).is_some(), b.len() == 1);
    // Empty and short payloads.
    assert!(decode_batch_record(&[]).is_none());
    assert!(decode_batch_record(&p[..11]).is_none());
    let mut empty = Vec::new();
    empty.extend_from_slice(&1u64.to_le_bytes());
    empty.extend_from_slice(&0u32.to_le_bytes());
    assert!(decode_batch_record(&empty).is_none());
}

#[test]
fn round_trip_many_batches_with_partial_page_rewrites() {
    block_on(async {
        let s = MemStorage::new();
        let mut w = new_log(&s, NAME).await;
        assert!(w.is_empty());
        let mut rng = SplitMix64::new(7);
        let writes_before = s.writes_done();
        let (payloads, offsets) = write_records(&mut w, &mut rng, 600).await;
        assert!(s.writes_done() - writes_before > 150, "expected many separate writes");
        assert_eq!(w.written_len(), w.len());
        assert_eq!(w.synced_len(), w.len());
        assert_eq!(w.buffered_bytes(), 0);

        // The file is the header page, the records back to back, zeros.
        let bytes = s.file_bytes(NAME).unwrap();
        assert_eq!(bytes.len() % IO_ALIGN, 0);
        assert!(bytes[w.len() as usize..].iter().all(|&b| b == 0));

        let r = replay(&s, false).await.unwrap();
        assert_eq!(r.header, Some(SegmentHeader::new(1)));
        assert_eq!(r.dropped, None);
        assert_eq!(r.valid_len, w.len());
        assert_eq!(r.records, payloads);
        let mut next_seq = 1;
        for (i, rec) in r.records.iter().enumerate() {
            let (seq, batch) = decode_batch_record(rec).unwrap();
            assert_eq!(seq, next_seq);
            next_seq += batch.len() as u64;
            assert!(offsets[i] >= SEGMENT_HEADER_SIZE as u64);
        }
    });
}

#[test]
fn append_raw_payloads_and_empty_log() {
    block_on(async {
        let s = MemStorage::new();
        let mut w = new_log(&s, NAME).await;
        let r = replay(&s, false).await.unwrap();
        assert_eq!(
            (r.records.len(), r.valid_len, r.dropped),
            (0, SEGMENT_HEADER_SIZE as u64, None)
        );
        // Payloads ending exactly on page boundaries leave no partial page.
        let exact = vec![0xabu8; IO_ALIGN - RECORD_HEADER_SIZE];
        w.append(&exact).unwrap();
        w.write().await.unwrap();
        assert_eq!(w.len() % IO_ALIGN as u64, 0);
        w.append(b"x").unwrap();
        assert_eq!(w.buffered_bytes(), RECORD_HEADER_SIZE + 1);
        w.write().await.unwrap();
        w.write().await.unwrap(); // nothing buffered: no-op
        w.sync().await.unwrap();
        let r = replay(&s, false).await.unwrap();
        assert_eq!(r.records, vec![exact, b"x".to_vec()]);
    });
}

#[test]
fn reopen_for_append_continues_the_log() {
    block_on(async {
        let s = MemStorage::new();
        let mut w = new_log(&s, NAME).await;
        let mut rng = SplitMix64::new(3);
        let (mut payloads, _) = write_records(&mut w, &mut rng, 50).await;
        // An unsynced write that a crash tears away.
        w.append(&[7u8; 9000]).unwrap();
        w.write().await.unwrap();
        let s = s.crash(Some(5));
        let r = replay(&s, false).await.unwrap();
        assert_eq!(r.records, payloads);

        let f = s.open(NAME).await.unwrap();
        let mut w = LogWriter::open_for_append(f.clone(), r.valid_len).await.unwrap();
        assert_eq!(w.len(), r.valid_len);
        assert_eq!(f.size().await.unwrap(), r.valid_len);
        for i in 0..20u8 {
            let p = vec![i + 1; 100 + 300 * i as usize];
            w.append(&p).unwrap();
            payloads.push(p);
            w.write().await.unwrap();
        }
        w.sync().await.unwrap();
        let r = replay(&s.crash(None), false).await.unwrap();
        assert_eq!(r.records, payloads);
        assert_eq!(r.dropped, None);

        // A segment without a durable header cannot be continued.
        let g = s.create("000002.wal").await.unwrap();
        assert!(matches!(
            LogWriter::open_for_append(g.clone(), 0).await,
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(LogWriter::create(f, 1).await, Err(Error::InvalidArgument(_))));
    });
}

#[test]
fn crash_after_unsynced_write_loses_only_unsynced_records() {
    block_on(async {
        let s = MemStorage::new();
        let mut w = new_log(&s, NAME).await;
        let mut rng = SplitMix64::new(11);
        let (synced, _) = write_records(&mut w, &mut rng, 40).await;
        for i in 0..10u64 {
            let b = random_batch(&mut rng, 1000 + i);
            w.append_batch(10_000 + i * 10, &b).unwrap();
            w.write().await.unwrap();
        }
        let after = s.crash(None);
        let r = replay(&after, false).await.unwrap();
        assert_eq!(r.records, synced);
        assert_eq!(r.dropped, None);
        // The live process still reads everything it wrote.
        let r = replay(&s, false).await.unwrap();
        assert_eq!(r.records.len(), 50);
    });
}

#[test]
fn torn_crashes_always_replay_a_prefix() {
    block_on(async {
        // Seeds whose image had valid records after a lost page: the case
        // that must not be mistaken for corruption.
        let mut gaps_seen = 0;
        let mut torn_seen = 0;
        for seed in 0..400u64 {
            let mut rng = SplitMix64::new(seed);
            let s = MemStorage::new();
            let mut w = new_log(&s, NAME).await;
            let mut written: Vec<Vec<u8>> = Vec::new();
            let mut synced_count = 0;
            let mut seq = 1;
            let steps = 1 + rng.next_u64() % 60;
            for i in 0..steps {
                let b = random_batch(&mut rng, i);
                w.append_batch(seq, &b).unwrap();
                written.push(payload(seq, &b));
                seq += b.len() as u64;
                match rng.next_u64() % 4 {
                    0 => {}
                    1 => w.write().await.unwrap(),
                    _ => {
                        w.write().await.unwrap();
                        if one_in(&mut rng, 2) {
                            w.sync().await.unwrap();
                            synced_count = written.len();
                        }
                    }
                }
            }
            w.write().await.unwrap();
            let crashed = s.crash(Some(seed));
            let r = match replay(&crashed, false).await {
                Ok(r) => r,
                Err(e) => panic!("seed {seed}: torn image refused: {e}"),
            };
            let n = r.records.len();
            assert!(
                n >= synced_count,
                "seed {seed}: lost synced records ({n} < {synced_count})"
            );
            assert!(n <= written.len(), "seed {seed}");
            assert_eq!(r.records[..], written[..n], "seed {seed}: replay is not a prefix");
            if let Some(d) = &r.dropped {
                assert_eq!(d.kind, DropKind::TornTail, "seed {seed}: {d:?}");
                assert_eq!(d.offset, r.valid_len);
                torn_seen += 1;
                gaps_seen += usize::from(d.records_after > 0);
            }
            // Recovery mode agrees on torn images.
            assert_eq!(replay(&crashed, true).await.unwrap(), r, "seed {seed}");
        }
        assert!(
            torn_seen > 50 && gaps_seen > 10,
            "torn {torn_seen}, with later records {gaps_seen}"
        );
    });
}

/// A synced log of `n` records with their offsets.
async fn synced_log(n: usize) -> (MemStorage, Vec<Vec<u8>>, Vec<u64>) {
    let s = MemStorage::new();
    let mut w = new_log(&s, NAME).await;
    let mut rng = SplitMix64::new(99);
    let (payloads, offsets) = write_records(&mut w, &mut rng, n).await;
    (s, payloads, offsets)
}

#[test]
fn corruption_before_the_tail_is_an_error_naming_file_and_offset() {
    block_on(async {
        let (s, payloads, offsets) = synced_log(80).await;
        let k = 30;
        // Flip a payload byte of record k.
        let at = offsets[k] as usize + RECORD_HEADER_SIZE + 3;
        let byte = s.file_bytes(NAME).unwrap()[at];
        s.poke(NAME, at, &[byte ^ 0x10]);
        match replay(&s, false).await {
            Err(Error::ChecksumMismatch { file, offset, .. }) => {
                assert_eq!(file, NAME);
                assert_eq!(offset, offsets[k]);
            }
            other => panic!("expected a checksum mismatch, got {other:?}"),
        }
        let err = replay(&s, false).await.unwrap_err();
        assert!(err.is_corruption());
        assert!(err.to_string().contains(NAME) && err.to_string().contains(&offsets[k].to_string()));

        // Recovery mode keeps the prefix and reports exactly what it dropped.
        let r = replay(&s, true).await.unwrap();
        assert_eq!(r.records, payloads[..k]);
        assert_eq!(r.valid_len, offsets[k]);
        let d = r.dropped.unwrap();
        assert_eq!(d.kind, DropKind::Corruption);
        assert_eq!(d.offset, offsets[k]);
        assert_eq!(d.bytes, s.file_bytes(NAME).unwrap().len() as u64 - offsets[k]);
        assert_eq!(d.records_after, payloads.len() - k - 1);
        assert!(d.reason.contains("checksum mismatch"), "{}", d.reason);
    });
}

#[test]
fn damaged_length_before_the_tail_is_corruption() {
    block_on(async {
        let (s, payloads, offsets) = synced_log(40).await;
        let k = 10;
        // An impossible length.
        s.poke(NAME, offsets[k] as usize + 8, &u32::MAX.to_le_bytes());
        let err = replay(&s, false).await.unwrap_err();
        match &err {
            Error::Corruption { file, offset, reason } => {
                assert_eq!((file.as_str(), *offset), (NAME, offsets[k]));
                assert!(reason.contains("impossible record length"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let r = replay(&s, true).await.unwrap();
        assert_eq!(r.records, payloads[..k]);
        assert_eq!(r.dropped.unwrap().records_after, payloads.len() - k - 1);

        // A zeroed header in the middle of a page, valid records after it.
        let (s, payloads, offsets) = synced_log(40).await;
        let k = (1..40)
            .find(|&k| offsets[k] as usize % IO_ALIGN < IO_ALIGN - 200 && offsets[k + 1] - offsets[k] < 100)
            .unwrap();
        s.poke(NAME, offsets[k] as usize, &[0u8; RECORD_HEADER_SIZE]);
        let err = replay(&s, false).await.unwrap_err();
        assert!(
            matches!(err, Error::Corruption { offset, .. } if offset == offsets[k]),
            "{err}"
        );
        let r = replay(&s, true).await.unwrap();
        assert_eq!(r.records, payloads[..k]);
    });
}

#[test]
fn damage_in_the_last_record_is_a_torn_tail() {
    block_on(async {
        let (s, payloads, offsets) = synced_log(25).await;
        let last = payloads.len() - 1;
        let at = offsets[last] as usize + RECORD_HEADER_SIZE + payloads[last].len() - 1;
        let byte = s.file_bytes(NAME).unwrap()[at];
        s.poke(NAME, at, &[!byte]);
        for recovery_mode in [false, true] {
            let r = replay(&s, recovery_mode).await.unwrap();
            assert_eq!(r.records, payloads[..last]);
            assert_eq!(r.valid_len, offsets[last]);
            let d = r.dropped.unwrap();
            assert_eq!(d.kind, DropKind::TornTail);
            assert_eq!(d.offset, offsets[last]);
            assert_eq!(d.records_after, 0);
        }
        // The caller truncates and appends; the log is clean again.
        let r = replay(&s, false).await.unwrap();
        let f = s.open(NAME).await.unwrap();
        let mut w = LogWriter::open_for_append(f, r.valid_len).await.unwrap();
        w.append(b"after").unwrap();
        w.write().await.unwrap();
        w.sync().await.unwrap();
        let r = replay(&s, false).await.unwrap();
        assert_eq!(r.dropped, None);
        assert_eq!(r.records.len(), last + 1);
        assert_eq!(r.records[last], b"after");
    });
}

#[test]
fn a_zeroed_page_reads_as_a_lost_write() {
    block_on(async {
        // A page that reads all zeros is what a write that never reached the
        // media leaves; replay stops there and reports the records it drops.
        let (s, payloads, offsets) = synced_log(200).await;
        let len = s.file_bytes(NAME).unwrap().len();
        let page = 3 * IO_ALIGN;
        assert!(page + IO_ALIGN < len);
        s.poke(NAME, page, &[0u8; IO_ALIGN]);
        let r = replay(&s, false).await.unwrap();
        // Records that end before the page survive; the one overlapping it is the bad one.
        let k = (0..payloads.len())
            .take_while(|&i| offsets[i] as usize + RECORD_HEADER_SIZE + payloads[i].len() <= page)
            .count();
        assert_eq!(r.records, payloads[..k]);
        assert_eq!(r.valid_len, offsets[k]);
        let d = r.dropped.unwrap();
        assert_eq!(d.kind, DropKind::TornTail);
        assert!(d.records_after > 0);
        assert!(d.reason.contains(&format!("page at offset {page}")), "{}", d.reason);
    });
}

#[test]
fn write_and_sync_failures_are_fail_stop() {
    block_on(async {
        let s = MemStorage::new();
        let mut w = new_log(&s, NAME).await;
        w.append(b"one").unwrap();
        w.write().await.unwrap();
        s.fail_writes_after(0);
        w.append(b"two").unwrap();
        assert!(matches!(w.write().await, Err(Error::Io { .. })));
        assert!(w.is_poisoned());
        s.heal();
        assert!(matches!(w.append(b"three"), Err(Error::Poisoned { .. })));
        assert!(matches!(w.write().await, Err(Error::Poisoned { .. })));
        match w.sync().await {
            Err(Error::Poisoned { cause }) => {
                assert!(cause.contains("injected fault") && cause.contains(NAME), "{cause}")
            }
            other => panic!("{other:?}"),
        }

        let s = MemStorage::new();
        let mut w = new_log(&s, NAME).await;
        w.append(b"one").unwrap();
        w.write().await.unwrap();
        s.fail_syncs_after(0);
        assert!(matches!(w.sync().await, Err(Error::Io { .. })));
        s.heal();
        let syncs = s.syncs_done();
        assert!(
            matches!(w.sync().await, Err(Error::Poisoned { .. })),
            "fsync must not be retried"
        );
        assert_eq!(s.syncs_done(), syncs);
        assert!(matches!(w.append(b"two"), Err(Error::Poisoned { .. })));
        assert!(matches!(w.write().await, Err(Error::Poisoned { .. })));

        // Creation fails cleanly too.
        let s = MemStorage::new();
        let f = s.create(NAME).await.unwrap();
        s.fail_syncs_after(0);
        assert!(LogWriter::create(f, 1).await.is_err());
    });
}

#[test]
fn empty_zero_and_foreign_files() {
    block_on(async {
        let s = MemStorage::new();
        // Zero length: a segment whose creation never became durable.
        let f = s.create(NAME).await.unwrap();
        let r = read_log(&f, false).await.unwrap();
        assert_eq!((r.header, r.records.len(), r.valid_len, r.dropped), (None, 0, 0, None));
        // All zeros: the same.
        f.write_at(0, &[0u8; 2 * IO_ALIGN]).await.unwrap();
        let r = read_log(&f, false).await.unwrap();
        assert_eq!((r.header, r.valid_len), (None, 0));
        // Not a WAL at all: refused even in recovery mode.
        f.write_at(0, &[0x5au8; IO_ALIGN]).await.unwrap();
        for recovery_mode in [false, true] {
            match read_log(&f, recovery_mode).await {
                Err(Error::Corruption {
                    file,
                    offset: 0,
                    reason,
                }) => {
                    assert_eq!(file, NAME);
                    assert!(reason.contains("magic"), "{reason}");
                }
                other => panic!("{other:?}"),
            }
        }
        // Short garbage.
        let g = s.create("000003.wal").await.unwrap();
        g.write_at(0, &[0u8; IO_ALIGN]).await.unwrap();
        s.poke("000003.wal", 0, b"LUMA");
        assert!(read_log(&g, false).await.unwrap_err().is_corruption());
    });
}

#[test]
fn segment_header_is_checked() {
    block_on(async {
        let (s, payloads, _) = synced_log(5).await;
        let original = s.file_bytes(NAME).unwrap();

        // A newer format is refused with UnsupportedVersion, recovery or not.
        s.poke(NAME, 8, &2u32.to_le_bytes());
        for recovery_mode in [false, true] {
            match replay(&s, recovery_mode).await {
                Err(Error::UnsupportedVersion {
                    file,
                    found: 2,
                    supported: 1,
                }) => assert_eq!(file, NAME),
                other => panic!("{other:?}"),
            }
        }
        s.poke(NAME, 0, &original[..IO_ALIGN]);

        // A damaged segment number: checksum mismatch; recovery mode drops
        // the segment and says how many records it held.
        s.poke(NAME, 12, &7u64.to_le_bytes());
        assert!(matches!(
            replay(&s, false).await,
            Err(Error::ChecksumMismatch { offset: 0, .. })
        ));
        let r = replay(&s, true).await.unwrap();
        assert_eq!((r.header, r.records.len(), r.valid_len), (None, 0, 0));
        let d = r.dropped.unwrap();
        assert_eq!(
            (d.kind, d.offset, d.records_after),
            (DropKind::Corruption, 0, payloads.len())
        );
        s.poke(NAME, 0, &original[..IO_ALIGN]);

        // Reserved bytes must be zero.
        s.poke(NAME, 100, &[1]);
        assert!(matches!(
            replay(&s, false).await,
            Err(Error::Corruption { offset: 100, .. })
        ));
        s.poke(NAME, 0, &original[..IO_ALIGN]);

        // The header must name the file's own segment.
        s.rename(NAME, "000002.wal").await.unwrap();
        let f = s.open("000002.wal").await.unwrap();
        match read_log(&f, false).await {
            Err(Error::Corruption { reason, .. }) => {
                assert!(reason.contains("segment 1"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // Names that are not WAL names are not checked.
        s.rename("000002.wal", "copy").await.unwrap();
        let f = s.open("copy").await.unwrap();
        assert_eq!(read_log(&f, false).await.unwrap().records, payloads);
    });
}

#[test]
fn header_encoding_is_stable() {
    let page = SegmentHeader::new(0x0102_0304_0506_0708).encode();
    assert_eq!(page.len(), SEGMENT_HEADER_SIZE);
    assert_eq!(&page[..8], b"LUMAWAL\0");
    assert_eq!(&page[8..12], &1u32.to_le_bytes());
    assert_eq!(&page[12..20], &0x0102_0304_0506_0708u64.to_le_bytes());
    assert_eq!(&page[20..28], &crate::coding::checksum(&page[..20]).to_le_bytes());
    assert!(page[28..].iter().all(|&b| b == 0));
    assert_eq!(
        SegmentHeader::decode("x", &page).unwrap(),
        SegmentHeader::new(0x0102_0304_0506_0708)
    );
}

#[test]
fn record_framing_matches_the_spec() {
    block_on(async {
        let s = MemStorage::new();
        let mut w = new_log(&s, NAME).await;
        let mut b = WriteBatch::new();
        b.put(2, b"k", b"v").unwrap();
        w.append_batch(5, &b).unwrap();
        w.write().await.unwrap();
        let bytes = s.file_bytes(NAME).unwrap();
        let rec = &bytes[SEGMENT_HEADER_SIZE..];
        let expected_payload = [
            &5u64.to_le_bytes()[..],
            &1u32.to_le_bytes(),
            &[ValueKind::Put as u8, 2, 1, b'k', 1, b'v'],
        ]
        .concat();
        let len = expected_payload.len() as u32;
        assert_eq!(&rec[8..12], &len.to_le_bytes());
        assert_eq!(&rec[12..12 + len as usize], expected_payload.as_slice());
        let sum = crate::coding::checksum(&rec[8..12 + len as usize]);
        assert_eq!(&rec[..8], &sum.to_le_bytes());
        assert!(rec[12 + len as usize..].iter().all(|&b| b == 0));
    });
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = SplitMix64::new(2024);
    // Batch record payloads.
    for _ in 0..20_000 {
        let len = (rng.next_u64() % 80) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if len >= 12 && one_in(&mut rng, 2) {
            bytes[..8].copy_from_slice(&(1 + rng.next_u64() % 1000).to_le_bytes());
            bytes[8..12].copy_from_slice(&((rng.next_u64() % 3) as u32).to_le_bytes());
        }
        if let Some((seq, b)) = decode_batch_record(&bytes) {
            assert!(seq > 0);
            assert_eq!(b.iter().count(), b.len());
        }
    }
    // Whole segments: random bytes after a valid header, and mutations of
    // a real log. Any replay that succeeds returns a prefix of the records.
    let (s, payloads, _) = block_on(synced_log(60));
    let original = s.file_bytes(NAME).unwrap();
    let header = SegmentHeader::new(1).encode();
    for i in 0..3000 {
        let data = match i % 3 {
            0 => {
                let mut d = header.clone();
                let extra = (rng.next_u64() % 9000) as usize;
                d.extend((0..extra).map(|_| if one_in(&mut rng, 3) { 0 } else { rng.next_u64() as u8 }));
                d
            }
            1 => {
                let mut d = original.clone();
                for _ in 0..1 + rng.next_u64() % 4 {
                    let at = (rng.next_u64() as usize) % d.len();
                    d[at] = rng.next_u64() as u8;
                }
                d
            }
            _ => {
                let cut = (rng.next_u64() as usize) % original.len();
                original[..cut].to_vec()
            }
        };
        for recovery_mode in [false, true] {
            if let Ok(r) = parse_segment(NAME, &data, recovery_mode) {
                assert!(r.valid_len as usize <= data.len());
                if i % 3 != 0 {
                    assert_eq!(r.records[..], payloads[..r.records.len()]);
                }
            }
        }
    }
    // Arbitrary bytes, header or not.
    for _ in 0..2000 {
        let len = (rng.next_u64() % 5000) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let _ = parse_segment(NAME, &data, true);
        let _ = parse_segment(NAME, &data, false);
    }
}
