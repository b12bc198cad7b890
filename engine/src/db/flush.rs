//! Flush: a frozen memtable becomes an L0 table. One flush runs at a time
//! (oldest frozen memtable first, across keyspaces, so WAL segments are
//! released in order); writers keep writing to the new memtable meanwhile.
//!
//! A flush also drops the tables that the memtable's range tombstones
//! delete whole (see [`covered_by_range_deletes`]): a FLUSHALL over
//! gigabytes costs a manifest edit, not a compaction that reads them all
//! to write nothing.

use super::compact::{GcFilter, OutputWriter};
use super::Engine;
use crate::batch::KeyspaceId;
use crate::key::{self, RangeTombstone, SeqNo, ValueKind};
use crate::memtable::MemTable;
use crate::sst::{Table, Warm};
use crate::storage::Storage;
use crate::version::FileMeta;
use crate::wal;
use crate::Result;
use std::collections::HashSet;
use std::rc::Rc;

/// Keys copied out of a frozen memtable per step of a flush.
const FLUSH_CHUNK_KEYS: usize = 1024;

impl<S: Storage> Engine<S> {
    /// Freezes and flushes every keyspace's memtable, then returns.
    pub async fn flush(&self) -> Result<()> {
        self.flush_keyspaces(None).await
    }

    pub(crate) async fn flush_keyspaces(&self, keyspaces: Option<Vec<KeyspaceId>>) -> Result<()> {
        self.check_writable()?;
        self.freeze_memtables(keyspaces.clone()).await?;
        loop {
            let pending = {
                let st = self.inner.state.borrow();
                st.keyspaces
                    .values()
                    .filter(|k| keyspaces.as_ref().is_none_or(|ids| ids.contains(&k.id)))
                    .any(|k| !k.imm.is_empty())
            };
            if !pending {
                return Ok(());
            }
            self.check_writable()?;
            // Register for the wake-up before trying: a background flush
            // that finishes while we wait for the flush lock must not be missed.
            let progressed = self.inner.progress.notified();
            if !self.flush_once().await? {
                progressed.await;
            }
        }
    }

    /// Frees one set-aside memtable, or else flushes the oldest frozen
    /// one, if any. Returns whether it did either.
    pub async fn flush_once(&self) -> Result<bool> {
        let _guard = self.inner.flush_lock.lock().await;
        self.check_writable()?;
        let discarded = self.inner.state.borrow_mut().discarded.pop();
        if let Some(mem) = discarded {
            self.release(mem).await;
            return Ok(true);
        }
        let picked = {
            let st = self.inner.state.borrow();
            st.keyspaces
                .values()
                .filter_map(|k| k.imm.first().map(|m| (k.id, m.clone())))
                .min_by_key(|(_, m)| m.first_segment())
        };
        let Some((ks, mem)) = picked else { return Ok(false) };
        if let Err(e) = self.flush_memtable(ks, &mem).await {
            return Err(self.poison(e));
        }
        self.release(mem).await;
        Ok(true)
    }

    /// Frees a frozen memtable in steps, offering the core between them,
    /// unless a reader still holds it (then the last reader frees it).
    async fn release(&self, mem: Rc<MemTable>) {
        if Rc::strong_count(&mem) == 1 {
            while mem.release_step() {
                self.inner.storage.yield_if_needed().await;
            }
        }
    }

    async fn flush_memtable(&self, ks: KeyspaceId, mem: &Rc<MemTable>) -> Result<()> {
        let tombstones = mem.all_range_tombstones();
        let opened = self.write_and_open(ks, mem).await?;
        let _m = self.inner.manifest_lock.lock().await;
        let dropped;
        let old = {
            let mut st = self.inner.state.borrow_mut();
            let oldest_snapshot = st.snapshots.borrow().keys().next().copied();
            let k = st.keyspaces.get_mut(&ks).expect("keyspace exists");
            assert!(Rc::ptr_eq(&k.imm[0], mem), "flushes run oldest first");
            let old_version = k.version.clone();
            dropped = if opened.is_empty() {
                Vec::new()
            } else {
                let (v, dropped) = flushed_version(&k.version, &opened, &tombstones, oldest_snapshot, &k.busy);
                k.version = Rc::new(v);
                dropped
            };
            let removed = k.imm.remove(0);
            if !opened.is_empty() {
                st.stats.flushes += 1;
            }
            for (meta, t) in &opened {
                st.tables.insert(meta.number, t.clone());
                st.stats.flush_bytes_written += meta.size;
            }
            (old_version, removed)
        };
        if let Err(e) = self.persist_manifest_locked().await {
            let mut st = self.inner.state.borrow_mut();
            let k = st.keyspaces.get_mut(&ks).expect("keyspace exists");
            k.version = old.0;
            k.imm.insert(0, old.1);
            return Err(e);
        }
        self.forget_dropped_tables(&dropped).await;
        self.delete_obsolete_wal_segments().await;
        self.inner.progress.notify_all();
        self.inner.background.notify_all();
        Ok(())
    }

    /// Writes `mem` to new tables ([`Engine::write_memtable`]) and opens them.
    pub(crate) async fn write_and_open(
        &self,
        ks: KeyspaceId,
        mem: &MemTable,
    ) -> Result<Vec<(FileMeta, Rc<Table<S::File>>)>> {
        let mut opened = Vec::new();
        for (meta, file) in self.write_memtable(ks, mem).await? {
            let t = Table::open(file, meta.number, self.inner.block_cache.clone()).await?;
            opened.push((meta, t));
        }
        Ok(opened)
    }

    /// Counts, logs, closes and deletes the tables a flushed range delete
    /// dropped, once the manifest edit that dropped them is persisted.
    pub(crate) async fn forget_dropped_tables(&self, dropped: &[Rc<FileMeta>]) {
        if dropped.is_empty() {
            return;
        }
        let bytes: u64 = dropped.iter().map(|f| f.size).sum();
        tracing::info!(tables = dropped.len(), bytes, "range delete dropped whole tables");
        self.inner.state.borrow_mut().stats.tables_dropped_by_range_delete += dropped.len() as u64;
        self.forget_tables(dropped).await;
    }

    /// Writes `mem` to new tables: one, several where the keyspace's
    /// partition prefix changes, none if nothing survives.
    pub(crate) async fn write_memtable(&self, ks: KeyspaceId, mem: &MemTable) -> Result<Vec<(FileMeta, S::File)>> {
        let (opts, snapshots) = {
            let st = self.inner.state.borrow();
            let snaps: Vec<SeqNo> = st.snapshots.borrow().keys().copied().collect();
            (st.keyspaces[&ks].opts.clone(), snaps)
        };
        let tombstones = mem.all_range_tombstones();
        let mut gc = GcFilter::new(snapshots, false, self.inner.storage.now_unix_ms(), tombstones.clone());
        let mut out = OutputWriter::new(self.clone(), opts, None, tombstones, Vec::new());
        // What was just in memory is what is being read: its table's
        // blocks go into the block cache as they are written.
        out.warm_cache = Warm::Always;
        let mut chunk = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            chunk.clear();
            mem.all_versions_after(after.as_deref(), FLUSH_CHUNK_KEYS, &mut chunk);
            let Some(last) = chunk.last() else { break };
            after = Some(last.key.clone());
            for e in &chunk {
                if let Some(kind) = gc.filter(&e.key, e.seq, e.kind) {
                    let ikey = key::make_internal_key(&e.key, e.seq, kind);
                    out.add(&ikey, &e.value).await?;
                }
            }
            // Building a table is CPU work that rarely waits for I/O: offer
            // the core back between chunks, or a flush holds it for the
            // whole memtable (260 ms was seen), stalling every client.
            self.inner.storage.yield_if_needed().await;
        }
        let (outputs, _) = out.finish().await?;
        Ok(outputs)
    }

    /// Removes WAL segments older than every keyspace's log number.
    pub(crate) async fn delete_obsolete_wal_segments(&self) {
        let obsolete: Vec<u64> = {
            let st = self.inner.state.borrow();
            let min = st
                .keyspaces
                .values()
                .map(|k| super::keyspace_log_number(k, st.wal_segment))
                .min()
                .unwrap_or(st.wal_segment);
            st.wal_segments
                .keys()
                .copied()
                .filter(|&n| n < min && n != st.wal_segment)
                .collect()
        };
        for n in &obsolete {
            self.inner.state.borrow_mut().wal_segments.remove(n);
        }
        self.delete_files(obsolete.into_iter().map(wal::wal_file_name)).await;
    }
}

/// Removes from `v`, and returns, every table that one of `tombstones`
/// deletes whole: all its keys in the tombstone's range, all its versions
/// older than it, none of them readable by a snapshot (none is registered
/// below the tombstone), and no compaction reading it (`busy`). Every
/// answer stays the same: the tombstone, flushed in the same edit, hid
/// those versions already.
pub(crate) fn covered_by_range_deletes(
    v: &mut crate::version::Version,
    tombstones: &[RangeTombstone],
    oldest_snapshot: Option<SeqNo>,
    busy: &HashSet<u64>,
) -> Vec<Rc<FileMeta>> {
    // A table whose largest key is a range tombstone's exclusive end holds
    // nothing at that key itself (a previous FLUSHALL's table).
    let exclusive_end = key::pack_trailer(key::SEQ_MAX, ValueKind::RangeDelete as u8);
    let covers = |t: &RangeTombstone, f: &FileMeta| {
        let largest = key::user_key(&f.largest);
        let below_end = if key::trailer(&f.largest) == exclusive_end {
            largest <= t.end.as_slice()
        } else {
            largest < t.end.as_slice()
        };
        oldest_snapshot.is_none_or(|s| s >= t.seq)
            && f.largest_seq < t.seq
            && t.start.as_slice() <= key::user_key(&f.smallest)
            && below_end
    };
    let mut dropped = Vec::new();
    for level in &mut v.levels {
        level.retain(|f| {
            let gone = !busy.contains(&f.number) && tombstones.iter().any(|t| covers(t, f));
            if gone {
                dropped.push(f.clone());
            }
            !gone
        });
    }
    dropped
}

/// `version` after a flush that wrote `outputs`: they enter L0 and, in
/// the same manifest edit, the tables the flush's `tombstones` cover whole
/// leave it ([`covered_by_range_deletes`]); those are returned.
pub(crate) fn flushed_version<T>(
    version: &crate::version::Version,
    outputs: &[(FileMeta, T)],
    tombstones: &[RangeTombstone],
    oldest_snapshot: Option<SeqNo>,
    busy: &HashSet<u64>,
) -> (crate::version::Version, Vec<Rc<FileMeta>>) {
    let mut v = version.clone();
    let dropped = covered_by_range_deletes(&mut v, tombstones, oldest_snapshot, busy);
    for (meta, _) in outputs {
        add_to_l0(&mut v, meta.clone());
    }
    v.check_invariants();
    (v, dropped)
}

/// Inserts a freshly flushed file into L0, keeping L0 newest first.
pub(crate) fn add_to_l0(v: &mut crate::version::Version, meta: FileMeta) {
    let pos = v.levels[0].partition_point(|f| f.largest_seq > meta.largest_seq);
    v.levels[0].insert(pos, Rc::new(meta));
}
