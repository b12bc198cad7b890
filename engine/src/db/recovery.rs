//! Opening an engine: read the manifest, open every live table, replay the
//! WAL segments that may hold unflushed writes, flush what was replayed,
//! start a fresh WAL segment, and remove files no manifest references.
//!
//! A torn record at the end of the newest segment is the expected result
//! of a crash mid-write: it is truncated and reported. A bad record with
//! valid records after it, or in an older segment, is corruption: open
//! fails naming the file and offset, unless `recovery_mode` is set, which
//! keeps everything before it and reports exactly what was dropped.

use super::{Counters, Engine, Inner, KeyspaceState, State, DEFAULT_KEYSPACE};
use crate::batch::{KeyspaceId, OpKind};
use crate::cache::{BlockCache, RowCache};
use crate::key::{SeqNo, ValueKind};
use crate::manifest::{self, ManifestState};
use crate::memtable::{History, MemTable};
use crate::options::EngineOptions;
use crate::sst::Table;
use crate::storage::{Storage, StorageFile};
use crate::sync::{LocalMutex, Notify};
use crate::version::{table_file_name, Version};
use crate::wal::{self, LogWriter};
use crate::{Error, Result};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

/// Operations replayed between offers of the core: a large WAL takes a
/// while to replay, and the other tasks of the shard (and its stall
/// detector) must see the core meanwhile.
const REPLAY_YIELD_EVERY_OPS: u64 = 256;

/// What open found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// WAL segments replayed.
    pub wal_segments_replayed: Vec<u64>,
    /// Batches replayed from the WAL.
    pub batches_replayed: u64,
    /// Highest sequence number after recovery.
    pub last_seq: SeqNo,
    /// A torn tail truncated from the newest segment: (file, offset, bytes).
    pub torn_tail: Option<(String, u64, u64)>,
    /// Records dropped in recovery mode: one line per damaged segment.
    pub dropped: Vec<String>,
    /// Files removed because no manifest referenced them.
    pub orphans_removed: Vec<String>,
}

impl<S: Storage> Engine<S> {
    /// Opens (or creates) the engine stored in `storage`.
    pub async fn open(storage: S, opts: EngineOptions) -> Result<Engine<S>> {
        let loaded = manifest::read_current(&storage).await?;
        let fresh = loaded.is_none();
        let (manifest_number, mstate) = loaded.unwrap_or_else(|| {
            (
                0,
                ManifestState {
                    next_file_number: 1,
                    last_seq: 0,
                    keyspaces: Vec::new(),
                },
            )
        });
        let block_cache = Rc::new(BlockCache::new(opts.block_cache_size));
        let row_cache = Rc::new(RowCache::new(opts.row_cache_size));

        // Tables named by the manifest.
        let mut tables = HashMap::new();
        let mut keyspaces = BTreeMap::new();
        let mut names = HashMap::new();
        let min_log = mstate.keyspaces.iter().map(|k| k.log_number).min().unwrap_or(0);
        for k in &mstate.keyspaces {
            let mut version = Version::new(opts.keyspace_defaults.num_levels.max(k.levels.len()));
            for (level, files) in k.levels.iter().enumerate() {
                for f in files {
                    let file = storage.open(&f.file_name()).await?;
                    let t = Table::open(file, f.number, block_cache.clone()).await?;
                    tables.insert(f.number, t);
                    version.levels[level].push(Rc::new(f.clone()));
                }
            }
            version.check_invariants();
            let mut ks_opts = opts.keyspace_defaults.clone();
            ks_opts.num_levels = version.levels.len();
            keyspaces.insert(
                k.id,
                KeyspaceState {
                    id: k.id,
                    name: k.name.clone(),
                    opts: ks_opts,
                    mem: Rc::new(MemTable::new(0)),
                    imm: Vec::new(),
                    version: Rc::new(version),
                    busy: HashSet::new(),
                },
            );
            names.insert(k.name.clone(), k.id);
        }
        if !names.contains_key(DEFAULT_KEYSPACE) {
            let id = keyspaces.keys().next_back().map_or(0, |id| id + 1);
            keyspaces.insert(
                id,
                KeyspaceState {
                    id,
                    name: DEFAULT_KEYSPACE.to_string(),
                    opts: opts.keyspace_defaults.clone(),
                    mem: Rc::new(MemTable::new(0)),
                    imm: Vec::new(),
                    version: Rc::new(Version::new(opts.keyspace_defaults.num_levels)),
                    busy: HashSet::new(),
                },
            );
            names.insert(DEFAULT_KEYSPACE.to_string(), id);
        }
        let log_numbers: HashMap<KeyspaceId, u64> = mstate.keyspaces.iter().map(|k| (k.id, k.log_number)).collect();

        // WAL replay, oldest segment first.
        let listing = storage.list().await?;
        let mut segments: Vec<u64> = listing
            .iter()
            .filter_map(|n| wal::parse_wal_file_name(n))
            .filter(|&n| n >= min_log)
            .collect();
        segments.sort_unstable();
        let mut report = RecoveryReport::default();
        let mut last_seq = mstate.last_seq;
        let mut next_file_number = mstate.next_file_number;
        let mut prev_seq: SeqNo = 0;
        let mut replayed_ops: u64 = 0;
        // Files a crash left behind (a manifest written but never made
        // current, a table never recorded) may carry numbers past the
        // manifest's counter: never reuse one.
        for name in &listing {
            let number = wal::parse_wal_file_name(name)
                .or_else(|| manifest::parse_manifest_file_name(name))
                .or_else(|| name.strip_suffix(".sst").and_then(|n| n.parse().ok()));
            if let Some(n) = number {
                next_file_number = next_file_number.max(n + 1);
            }
        }
        // The last segment that holds anything past its header: only it
        // may end torn. Segments after it were prepared ahead of a roll
        // (`Engine::prepare_wal_segment`) and never written.
        let mut last_written = None;
        for &seg in segments.iter().rev() {
            let file = storage.open(&wal::wal_file_name(seg)).await?;
            if file.size().await? > wal::SEGMENT_HEADER_SIZE as u64 {
                last_written = Some(seg);
                break;
            }
        }
        for &seg in &segments {
            next_file_number = next_file_number.max(seg + 1);
            let is_last = last_written.is_none_or(|last| seg >= last);
            let name = wal::wal_file_name(seg);
            let file = storage.open(&name).await?;
            let replay = wal::read_log(&file, opts.recovery_mode).await?;
            if replay.header.is_none() && replay.records.is_empty() && replay.dropped.is_none() {
                // Created but never durable before the crash: nothing in it.
                report.wal_segments_replayed.push(seg);
                continue;
            }
            if let Some(d) = &replay.dropped {
                match d.kind {
                    wal::DropKind::TornTail if is_last => {
                        tracing::warn!(file = %name, offset = d.offset, bytes = d.bytes, records_after = d.records_after, reason = %d.reason, "truncating torn WAL tail");
                        report.torn_tail = Some((name.clone(), d.offset, d.bytes));
                    }
                    _ if !opts.recovery_mode => {
                        return Err(Error::corruption(
                            &name,
                            d.offset,
                            format!("{} (in a segment followed by newer segments); open in recovery mode to keep the WAL up to here", d.reason),
                        ));
                    }
                    _ => {
                        let line = format!(
                            "{name}: dropped {} bytes from offset {} ({} valid records after it): {}",
                            d.bytes, d.offset, d.records_after, d.reason
                        );
                        tracing::warn!("{line}");
                        report.dropped.push(line);
                    }
                }
            }
            for (r, payload) in replay.records.iter().enumerate() {
                let (first_seq, batch) = wal::decode_batch_record(payload).ok_or_else(|| {
                    Error::corruption(
                        &name,
                        0,
                        format!("record {r} has a valid checksum but an undecodable batch"),
                    )
                })?;
                if first_seq <= prev_seq {
                    return Err(Error::corruption(
                        &name,
                        0,
                        format!("record {r} starts at sequence {first_seq}, not after {prev_seq}"),
                    ));
                }
                let mut seq = first_seq;
                for op in batch.iter() {
                    replayed_ops += 1;
                    if replayed_ops.is_multiple_of(REPLAY_YIELD_EVERY_OPS) {
                        storage.yield_if_needed().await;
                    }
                    let ks = keyspaces.get(&op.keyspace).ok_or_else(|| {
                        Error::corruption(
                            &name,
                            0,
                            format!("record {r} writes to unknown keyspace id {}", op.keyspace),
                        )
                    })?;
                    // Segments below the keyspace's log number are already in its tables.
                    let floor = log_numbers.get(&op.keyspace).copied().unwrap_or(0);
                    if seg >= floor {
                        match op.kind {
                            OpKind::Value(ValueKind::RangeDelete) => ks.mem.add_range_delete(op.key, op.value, seq),
                            // No snapshot exists while recovering.
                            OpKind::Value(kind) => ks.mem.insert(op.key, seq, kind, op.value, History::Drop),
                            // The value it changes was in the active
                            // memtable when it was written, so in a record
                            // replayed before this one.
                            OpKind::Edit => {
                                let edit = op.edit().expect("an edit op");
                                if !ks.mem.edit(op.key, seq, &edit, History::Drop) {
                                    return Err(Error::corruption(
                                        &name,
                                        0,
                                        format!(
                                            "record {r} edits key {:?}, which has no value to edit before it",
                                            String::from_utf8_lossy(op.key)
                                        ),
                                    ));
                                }
                            }
                        }
                    }
                    seq += 1;
                }
                prev_seq = seq - 1;
                last_seq = last_seq.max(seq.saturating_sub(1));
                report.batches_replayed += 1;
            }
            report.wal_segments_replayed.push(seg);
        }
        report.last_seq = last_seq;

        let state = State {
            keyspaces,
            names,
            next_file_number,
            last_seq,
            mem_epoch: 0,
            visible_seq: last_seq,
            wal_segment: 0,
            wal_segments: segments.iter().map(|&s| (s, 0)).collect(),
            manifest_number,
            snapshots: Rc::new(RefCell::new(BTreeMap::new())),
            poisoned: None,
            closed: false,
            tables,
            discarded: Vec::new(),
            stats: Counters::default(),
            recovery: RecoveryReport::default(),
        };
        let engine = Engine::from_inner(Inner {
            storage: storage.clone(),
            opts,
            state: RefCell::new(state),
            commit: RefCell::new(Default::default()),
            wal: RefCell::new(None),
            next_wal: RefCell::new(None),
            wal_io: Notify::new(),
            wal_due: Notify::new(),
            commit_idle: Notify::new(),
            background: Notify::new(),
            progress: Notify::new(),
            flush_lock: LocalMutex::new(),
            compaction_lock: LocalMutex::new(),
            manifest_lock: LocalMutex::new(),
            block_cache,
            row_cache,
        });

        // Flush what was replayed, so the old segments can go. As any
        // flush, it drops the tables the replayed range deletes cover
        // (no snapshot or compaction exists yet).
        let ids: Vec<KeyspaceId> = engine.inner.state.borrow().keyspaces.keys().copied().collect();
        let mut dropped = Vec::new();
        for id in ids {
            let mem = engine.inner.state.borrow().keyspaces[&id].mem.clone();
            if mem.is_empty() {
                continue;
            }
            let opened = engine.write_and_open(id, &mem).await?;
            if opened.is_empty() {
                continue;
            }
            let mut st = engine.inner.state.borrow_mut();
            let k = st.keyspaces.get_mut(&id).expect("keyspace exists");
            let tombstones = mem.all_range_tombstones();
            let (v, gone) = super::flush::flushed_version(&k.version, &opened, &tombstones, None, &HashSet::new());
            dropped.extend(gone);
            k.version = Rc::new(v);
            for (meta, t) in opened {
                st.tables.insert(meta.number, t);
            }
        }
        // A fresh WAL segment; every keyspace starts empty in it.
        let seg = engine.alloc_file_number();
        let file = storage.create(&wal::wal_file_name(seg)).await?;
        let writer = LogWriter::create(file, seg).await?;
        {
            let mut st = engine.inner.state.borrow_mut();
            st.wal_segment = seg;
            st.wal_segments.insert(seg, 0);
            for k in st.keyspaces.values_mut() {
                k.mem = Rc::new(MemTable::new(seg));
            }
        }
        *engine.inner.wal.borrow_mut() = Some(writer);
        storage.sync_dir().await?;
        {
            let _m = engine.inner.manifest_lock.lock().await;
            engine.persist_manifest_locked().await?;
        }
        engine.delete_obsolete_wal_segments().await;
        engine.forget_dropped_tables(&dropped).await;

        // Anything else no manifest references is left over from a crash.
        let live: HashSet<String> = {
            let st = engine.inner.state.borrow();
            let mut live: HashSet<String> = st.tables.keys().map(|&n| table_file_name(n)).collect();
            live.extend(st.wal_segments.keys().map(|&n| wal::wal_file_name(n)));
            live.insert(manifest::manifest_file_name(st.manifest_number));
            live
        };
        for name in storage.list().await? {
            let ours = name.ends_with(".sst")
                || wal::parse_wal_file_name(&name).is_some()
                || manifest::is_manifest_file_name(&name)
                || name == "CURRENT.tmp";
            if ours && !live.contains(&name) && name != "CURRENT" {
                engine.delete_files(std::iter::once(name.clone())).await;
                report.orphans_removed.push(name);
            }
        }
        if fresh {
            tracing::debug!("created a new engine");
        }
        engine.inner.state.borrow_mut().recovery = report;
        Ok(engine)
    }
}
