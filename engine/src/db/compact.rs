//! Compaction execution, and the table-output pipeline it shares with
//! flush: a sorted stream of versions passes through [`GcFilter`] (which
//! keeps exactly what some reader can still see) into one or more tables
//! cut at the target file size on user-key boundaries, with range
//! tombstones clipped to each output file's key span.
//!
//! The plan itself comes from [`crate::compaction::pick`], a pure
//! function; this module only does the I/O and installs the result.

use super::Engine;
use crate::batch::KeyspaceId;
use crate::compaction::{self, CompactionPlan, ManualStep};
use crate::key::{self, RangeTombstone, SeqNo, ValueKind};
use crate::sst::{Table, TableIter, TableWriter, Warm};
use crate::storage::Storage;
use crate::version::{table_file_name, FileMeta};
use crate::{Error, Result};
use std::rc::Rc;

/// Entries written between checks for "other tasks want the core".
const YIELD_EVERY_ENTRIES: usize = 512;

/// Decides which versions survive a flush or compaction.
///
/// Live snapshots split the sequence space into stripes; a reader at a
/// snapshot sees the newest version at or below it, so only the newest
/// version of a key in each stripe can ever be read. Tombstones (point,
/// range, and expired values, which every reader treats as absent) are
/// kept while older data may exist below them, and dropped at the bottom
/// level once no snapshot can see what they hide.
pub(crate) struct GcFilter {
    /// Live snapshot sequence numbers, ascending.
    snapshots: Vec<SeqNo>,
    bottommost: bool,
    now_ms: u64,
    tombstones: Vec<RangeTombstone>,
    // Per-key state.
    key: Vec<u8>,
    last_stripe: Option<usize>,
}

impl GcFilter {
    pub(crate) fn new(snapshots: Vec<SeqNo>, bottommost: bool, now_ms: u64, tombstones: Vec<RangeTombstone>) -> Self {
        GcFilter {
            snapshots,
            bottommost,
            now_ms,
            tombstones,
            key: Vec::new(),
            last_stripe: None,
        }
    }

    /// The first snapshot (index) that can see `seq`; `len()` when none.
    fn stripe(&self, seq: SeqNo) -> usize {
        self.snapshots.partition_point(|&s| s < seq)
    }

    /// Feeds versions in internal-key order. Returns what to write, if
    /// anything: the version unchanged, or an expired value turned into a
    /// point tombstone.
    pub(crate) fn filter(&mut self, user_key: &[u8], seq: SeqNo, kind: ValueKind) -> Option<ValueKind> {
        if user_key != self.key.as_slice() {
            self.key.clear();
            self.key.extend_from_slice(user_key);
            self.last_stripe = None;
        }
        let stripe = self.stripe(seq);
        if self.last_stripe == Some(stripe) {
            return None; // shadowed by a newer version in the same stripe
        }
        self.last_stripe = Some(stripe);
        // Deleted by a range tombstone that every reader of this version
        // also sees: the tombstone (kept, or dropped at the bottom with
        // everything it covers) already hides it.
        let covered = self.tombstones.iter().any(|t| {
            t.seq > seq && t.start.as_slice() <= user_key && user_key < t.end.as_slice() && self.stripe(t.seq) == stripe
        });
        if covered {
            return None;
        }
        if kind == ValueKind::Delete && self.bottommost && stripe == 0 {
            return None;
        }
        Some(kind)
    }

    /// Whether an expiring value is past its time.
    pub(crate) fn is_expired(&self, stored: &[u8]) -> bool {
        key::split_expiring(stored).is_some_and(|(at, _)| at <= self.now_ms)
    }

    /// Whether a range tombstone must still be written.
    pub(crate) fn keep_tombstone(&self, t: &RangeTombstone) -> bool {
        !(self.bottommost && self.stripe(t.seq) == 0)
    }
}

/// Writes a sorted stream of versions into tables of about
/// `target_file_size` bytes (no size cut when `None`), cut also where the
/// keyspace's partition prefix changes (leveled) and at each fence.
pub(crate) struct OutputWriter<S: Storage> {
    engine: Engine<S>,
    ks_opts: crate::options::KeyspaceOptions,
    target_file_size: Option<u64>,
    /// `table_partition_prefix_len`, 0 when it does not apply.
    partition_prefix_len: usize,
    /// Ascending user keys no output may span; `fences[next_fence..]`
    /// are still ahead.
    fences: Vec<Vec<u8>>,
    next_fence: usize,
    tombstones: Vec<RangeTombstone>,
    current: Option<(u64, TableWriter<S::File>, S::File)>,
    /// Lower bound (user key, inclusive) of the current output's span.
    span_lower: Option<Vec<u8>>,
    last_user_key: Option<Vec<u8>>,
    pub(crate) outputs: Vec<(FileMeta, S::File)>,
    entries: usize,
    pub(crate) bytes_written: u64,
    /// How outputs fill the block cache as they are written
    /// ([`TableWriter::warming`]).
    pub(crate) warm_cache: Warm,
}

impl<S: Storage> OutputWriter<S> {
    pub(crate) fn new(
        engine: Engine<S>,
        ks_opts: crate::options::KeyspaceOptions,
        target_file_size: Option<u64>,
        tombstones: Vec<RangeTombstone>,
        fences: Vec<Vec<u8>>,
    ) -> Self {
        debug_assert!(fences.windows(2).all(|w| w[0] < w[1]), "fences ascend");
        // Partitions only keep leveled tables apart: a universal or FIFO
        // L0 output is one run, one file.
        let partition_prefix_len = match ks_opts.compaction_style {
            crate::options::CompactionStyle::Leveled => ks_opts.table_partition_prefix_len,
            _ => 0,
        };
        OutputWriter {
            engine,
            ks_opts,
            target_file_size,
            partition_prefix_len,
            fences,
            next_fence: 0,
            tombstones,
            current: None,
            span_lower: None,
            last_user_key: None,
            outputs: Vec::new(),
            entries: 0,
            bytes_written: 0,
            warm_cache: Warm::IfRoom,
        }
    }

    pub(crate) async fn add(&mut self, ikey: &[u8], value: &[u8]) -> Result<()> {
        let ukey = key::user_key(ikey);
        let new_user_key = self.last_user_key.as_deref() != Some(ukey);
        if new_user_key {
            // Each fence passed closes the span before it: nothing on its
            // two sides shares an output.
            while let Some(fence) = self.fences.get(self.next_fence) {
                if fence.as_slice() > ukey {
                    break;
                }
                let fence = fence.clone();
                self.next_fence += 1;
                self.finish_current(Some(fence)).await?;
            }
            let full = match (&self.current, self.target_file_size) {
                (Some((_, w, _)), Some(target)) => w.estimated_size() >= target,
                _ => false,
            };
            let n = self.partition_prefix_len;
            let new_partition = n > 0
                && self.current.is_some()
                && self
                    .last_user_key
                    .as_deref()
                    .is_some_and(|last| last[..last.len().min(n)] != ukey[..ukey.len().min(n)]);
            if full || new_partition {
                self.finish_current(Some(ukey.to_vec())).await?;
            }
            self.last_user_key = Some(ukey.to_vec());
        }
        if self.current.is_none() {
            self.open_output().await?;
        }
        let (_, w, _) = self.current.as_mut().expect("output open");
        w.add(ikey, value);
        self.entries += 1;
        if self.entries.is_multiple_of(YIELD_EVERY_ENTRIES) {
            w.maybe_flush().await?;
            self.engine.inner.storage.yield_if_needed().await;
        }
        Ok(())
    }

    async fn open_output(&mut self) -> Result<()> {
        let number = self.engine.alloc_file_number();
        let file = self.engine.inner.storage.create(&table_file_name(number)).await?;
        let w = TableWriter::new(file.clone(), &self.ks_opts).warming(
            self.engine.inner.block_cache.clone(),
            number,
            self.warm_cache,
        );
        self.current = Some((number, w, file));
        Ok(())
    }

    /// Closes the current output; its span ends before `next_lower`.
    async fn finish_current(&mut self, next_lower: Option<Vec<u8>>) -> Result<()> {
        let lower = self.span_lower.take();
        if self.current.is_none() {
            let any = self
                .tombstones
                .iter()
                .any(|t| clip(t, lower.as_deref(), next_lower.as_deref()).is_some());
            if !any {
                self.span_lower = next_lower;
                return Ok(());
            }
            self.open_output().await?;
        }
        let (number, mut w, file) = self.current.take().expect("output open");
        for t in &self.tombstones {
            if let Some((s, e)) = clip(t, lower.as_deref(), next_lower.as_deref()) {
                w.add_range_tombstone(s, e, t.seq);
            }
        }
        let props = w.finish().await?;
        drop(file);
        // Reopen for reading, so the backend chooses how tables are read
        // (O_DIRECT, or the page cache with `use_mmap`).
        let file = self.engine.inner.storage.open(&table_file_name(number)).await?;
        let meta = props.to_file_meta(number);
        self.bytes_written += meta.size;
        self.outputs.push((meta, file));
        self.span_lower = next_lower;
        Ok(())
    }

    /// Closes the last output and returns every output's metadata.
    pub(crate) async fn finish(mut self) -> Result<(Vec<(FileMeta, S::File)>, u64)> {
        self.finish_current(None).await?;
        Ok((self.outputs, self.bytes_written))
    }
}

/// `t` clipped to `[lower, upper)`, if anything is left.
fn clip<'a>(t: &'a RangeTombstone, lower: Option<&'a [u8]>, upper: Option<&'a [u8]>) -> Option<(&'a [u8], &'a [u8])> {
    let s = match lower {
        Some(l) if l > t.start.as_slice() => l,
        _ => t.start.as_slice(),
    };
    let e = match upper {
        Some(u) if u < t.end.as_slice() => u,
        _ => t.end.as_slice(),
    };
    (s < e).then_some((s, e))
}

impl<S: Storage> Engine<S> {
    /// Runs one compaction if the planner picks one for any keyspace.
    /// Returns whether it did.
    pub async fn compact_once(&self) -> Result<bool> {
        let _guard = self.inner.compaction_lock.lock().await;
        self.check_writable()?;
        let picked = {
            let st = self.inner.state.borrow();
            st.keyspaces
                .values()
                .find_map(|k| compaction::pick(&k.version, &k.opts, &k.busy).map(|p| (k.id, p)))
        };
        let Some((ks, plan)) = picked else { return Ok(false) };
        self.run_compaction(ks, plan).await?;
        Ok(true)
    }

    /// Compacts the user-key range `[start, end]` (everything when `None`)
    /// of keyspace `ks` down to the bottom level.
    pub async fn compact_range(&self, ks: KeyspaceId, range: Option<(&[u8], &[u8])>) -> Result<()> {
        self.flush_keyspaces(Some(vec![ks])).await?;
        let _guard = self.inner.compaction_lock.lock().await;
        loop {
            self.check_writable()?;
            let step = {
                let st = self.inner.state.borrow();
                let k = st.keyspace(ks)?;
                compaction::manual(&k.version, &k.opts, &k.busy, range, None)
            };
            match step {
                ManualStep::Run(p) => self.run_compaction(ks, p).await?,
                // Only one compaction runs at a time and we hold the lock.
                ManualStep::Wait => unreachable!("no file can be busy while the compaction lock is held"),
                ManualStep::Done => return Ok(()),
            }
        }
    }

    /// Flushes everything and compacts every keyspace fully.
    pub async fn compact_all(&self) -> Result<()> {
        let ids: Vec<KeyspaceId> = self.inner.state.borrow().keyspaces.keys().copied().collect();
        for ks in ids {
            self.compact_range(ks, None).await?;
        }
        Ok(())
    }

    async fn run_compaction(&self, ks: KeyspaceId, plan: CompactionPlan) -> Result<()> {
        let inputs: Vec<Rc<FileMeta>> = plan.inputs.iter().flat_map(|i| i.files.iter().cloned()).collect();
        {
            let mut st = self.inner.state.borrow_mut();
            let k = st.keyspaces.get_mut(&ks).expect("keyspace exists");
            for f in &inputs {
                assert!(k.busy.insert(f.number), "file {} picked twice", f.number);
            }
        }
        let r = self.run_compaction_inner(ks, &plan, &inputs).await;
        {
            let mut st = self.inner.state.borrow_mut();
            let k = st.keyspaces.get_mut(&ks).expect("keyspace exists");
            for f in &inputs {
                k.busy.remove(&f.number);
            }
        }
        match r {
            Ok(()) => Ok(()),
            Err(e) => Err(self.poison(e)),
        }
    }

    async fn run_compaction_inner(&self, ks: KeyspaceId, plan: &CompactionPlan, inputs: &[Rc<FileMeta>]) -> Result<()> {
        tracing::debug!(keyspace = ks, reason = %plan.reason, inputs = inputs.len(), output_level = plan.output_level, "compaction");
        let trivial = plan.is_trivial_move();
        let outputs = if plan.delete_only || trivial {
            Vec::new()
        } else {
            self.merge_tables(ks, plan, inputs).await?
        };
        let bytes_read: u64 = inputs.iter().map(|f| f.size).sum();
        let bytes_written: u64 = outputs.iter().map(|(m, _)| m.size).sum();
        // Open readers for the outputs before they become visible.
        let mut opened = Vec::with_capacity(outputs.len());
        for (meta, file) in outputs {
            let t = Table::open(file, meta.number, self.inner.block_cache.clone()).await?;
            opened.push((meta, t));
        }
        let _m = self.inner.manifest_lock.lock().await;
        let (old_version, new_version) = {
            let st = self.inner.state.borrow();
            let k = &st.keyspaces[&ks];
            let metas = if trivial {
                // The file moves down a level as it is: no rewrite.
                inputs.iter().map(|f| (**f).clone()).collect()
            } else {
                opened.iter().map(|(m, _)| m.clone()).collect()
            };
            (k.version.clone(), Rc::new(compaction::apply(&k.version, plan, metas)))
        };
        {
            // Install in memory first so the manifest snapshot includes it;
            // roll back if the manifest cannot be written.
            let mut st = self.inner.state.borrow_mut();
            st.keyspaces.get_mut(&ks).expect("keyspace exists").version = new_version;
            for (meta, t) in &opened {
                st.tables.insert(meta.number, t.clone());
            }
        }
        if let Err(e) = self.persist_manifest_locked().await {
            let mut st = self.inner.state.borrow_mut();
            st.keyspaces.get_mut(&ks).expect("keyspace exists").version = old_version;
            return Err(e);
        }
        {
            let mut st = self.inner.state.borrow_mut();
            st.stats.compactions += 1;
            if !trivial {
                st.stats.compaction_bytes_read += bytes_read;
                st.stats.compaction_bytes_written += bytes_written;
            }
        }
        if !trivial {
            self.forget_tables(inputs).await;
        }
        self.inner.progress.notify_all();
        self.inner.background.notify_all();
        Ok(())
    }

    /// Merges the input tables (all versions, internal-key order) through
    /// the GC filter into new tables.
    async fn merge_tables(
        &self,
        ks: KeyspaceId,
        plan: &CompactionPlan,
        inputs: &[Rc<FileMeta>],
    ) -> Result<Vec<(FileMeta, S::File)>> {
        let (tables, ks_opts, snapshots) = {
            let st = self.inner.state.borrow();
            let tables: Vec<Rc<Table<S::File>>> = inputs
                .iter()
                .map(|f| st.tables.get(&f.number).expect("input table is open").clone())
                .collect();
            let snaps: Vec<SeqNo> = st.snapshots.borrow().keys().copied().collect();
            (tables, st.keyspaces[&ks].opts.clone(), snaps)
        };
        let mut tombstones: Vec<RangeTombstone> = tables
            .iter()
            .flat_map(|t| t.range_tombstones().iter().cloned())
            .collect();
        tombstones.sort_by(|a, b| a.start.cmp(&b.start).then(b.seq.cmp(&a.seq)));
        tombstones.dedup();
        let mut gc = GcFilter::new(
            snapshots,
            plan.bottommost,
            self.inner.storage.now_unix_ms(),
            tombstones.clone(),
        );
        let kept: Vec<RangeTombstone> = tombstones.into_iter().filter(|t| gc.keep_tombstone(t)).collect();
        let mut out = OutputWriter::new(
            self.clone(),
            ks_opts,
            Some(plan.target_file_size),
            kept,
            plan.fences.clone(),
        );
        let mut iters: Vec<TableIter<S::File>> = Vec::with_capacity(tables.len());
        for t in &tables {
            let mut it = t.iter();
            it.seek_to_first().await?;
            iters.push(it);
        }
        loop {
            // Smallest internal key across inputs (few inputs: a linear scan).
            let mut best: Option<usize> = None;
            for (i, it) in iters.iter().enumerate() {
                if !it.valid() {
                    continue;
                }
                best = match best {
                    Some(b) if key::cmp_internal(iters[b].key(), it.key()) != std::cmp::Ordering::Greater => Some(b),
                    _ => Some(i),
                };
            }
            let Some(b) = best else { break };
            let it = &mut iters[b];
            let ik = key::InternalKey::decode(it.key()).expect("table keys carry trailers");
            let kind = ik
                .kind()
                .ok_or_else(|| Error::corruption(inputs[b].file_name(), 0, format!("unknown entry kind {}", ik.tag)))?;
            let kind = if kind == ValueKind::PutExpiring && gc.is_expired(it.value()) {
                ValueKind::Delete
            } else {
                kind
            };
            if let Some(k) = gc.filter(ik.user_key, ik.seq, kind) {
                if k == ValueKind::Delete {
                    let ikey = key::make_internal_key(ik.user_key, ik.seq, ValueKind::Delete);
                    out.add(&ikey, &[]).await?;
                } else {
                    let ikey = it.key().to_vec();
                    let value = it.value().to_vec();
                    out.add(&ikey, &value).await?;
                }
            }
            iters[b].next().await?;
        }
        let (outputs, _) = out.finish().await?;
        Ok(outputs)
    }

    /// Closes and removes tables that a persisted manifest edit took out
    /// of every version.
    pub(crate) async fn forget_tables(&self, tables: &[Rc<FileMeta>]) {
        {
            let mut st = self.inner.state.borrow_mut();
            for f in tables {
                st.tables.remove(&f.number);
            }
        }
        self.delete_files(tables.iter().map(|f| f.file_name())).await;
    }

    /// Removes files that no version references any more. Failures are
    /// logged, not fatal: a leftover file is found and removed at the next open.
    pub(crate) async fn delete_files(&self, names: impl Iterator<Item = String>) {
        for name in names {
            if let Err(e) = self.inner.storage.remove(&name).await {
                tracing::warn!(file = %name, error = %e, "could not remove obsolete file");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gc_keeps_newest_per_stripe() {
        let mut gc = GcFilter::new(vec![5], false, 0, vec![]);
        assert_eq!(gc.filter(b"a", 9, ValueKind::Put), Some(ValueKind::Put));
        assert_eq!(gc.filter(b"a", 7, ValueKind::Put), None);
        assert_eq!(gc.filter(b"a", 5, ValueKind::Put), Some(ValueKind::Put));
        assert_eq!(gc.filter(b"a", 3, ValueKind::Put), None);
        assert_eq!(gc.filter(b"b", 2, ValueKind::Put), Some(ValueKind::Put));
    }

    #[test]
    fn gc_drops_tombstones_only_at_the_bottom() {
        let mut gc = GcFilter::new(vec![], true, 0, vec![]);
        assert_eq!(gc.filter(b"a", 9, ValueKind::Delete), None);
        assert_eq!(gc.filter(b"a", 7, ValueKind::Put), None);
        let mut gc = GcFilter::new(vec![], false, 0, vec![]);
        assert_eq!(gc.filter(b"a", 9, ValueKind::Delete), Some(ValueKind::Delete));
        // A snapshot below the tombstone keeps the older value visible.
        let mut gc = GcFilter::new(vec![8], true, 0, vec![]);
        assert_eq!(gc.filter(b"a", 9, ValueKind::Delete), Some(ValueKind::Delete));
        assert_eq!(gc.filter(b"a", 7, ValueKind::Put), Some(ValueKind::Put));
    }

    #[test]
    fn range_tombstone_drops_covered_versions_in_its_stripe() {
        let t = RangeTombstone {
            start: b"a".to_vec(),
            end: b"c".to_vec(),
            seq: 10,
        };
        let mut gc = GcFilter::new(vec![], true, 0, vec![t.clone()]);
        assert_eq!(gc.filter(b"b", 5, ValueKind::Put), None);
        assert_eq!(gc.filter(b"c", 5, ValueKind::Put), Some(ValueKind::Put));
        assert!(!gc.keep_tombstone(&t));
        let mut gc = GcFilter::new(vec![7], true, 0, vec![t.clone()]);
        assert_eq!(gc.filter(b"b", 5, ValueKind::Put), Some(ValueKind::Put));
        assert!(gc.keep_tombstone(&t));
    }
}
