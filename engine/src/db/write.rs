//! The write path: group commit.
//!
//! Writers enqueue their batch. The first writer to find no leader becomes
//! the leader: it takes a group of queued batches (up to
//! `wal_batch_bytes_max`), assigns sequence numbers, writes them to the WAL
//! with one write and, in `sync` mode, one fdatasync, then applies them to
//! the memtables, publishes the new visible sequence number and wakes each
//! writer with its result. Leadership then passes to the writer at the
//! front of the queue. So N concurrent writers cost one fsync per group,
//! not one each, and a queued write is never visible before it is durable.
//!
//! Cost: with fdatasync at ~200 µs and G writers per group, the WAL
//! sustains ~G × 5,000 writes/s on one core.
//!
//! A writer that finds the queue empty may instead go in at once
//! ([`Engine::try_write_now`]): its batch is appended to the WAL's buffer
//! and applied to the memtables there and then, without waiting. In `sync`
//! mode it is then visible before it is durable, and durable once a later
//! [`Engine::sync_wal`] (or group) has synced the log past it: the caller
//! answers its client only after that, as Redis's `appendfsync always`
//! answers after the fsync that follows the command. Many such writes share
//! one fdatasync, and none pays the queue's hand-offs.
//!
//! In the relaxed sync modes (`interval`, `none`) no writer waits for the
//! disk: a write is appended to the WAL's write-behind buffer and applied
//! at once ([`Engine::try_write_now`], or a group when writers queue), and
//! the buffer goes out on its own schedule: when
//! [`WAL_WRITE_BEHIND_BYTES`] have gathered (the runtime's write-behind
//! task, woken through `wal_due`), on the sync timer, and at a segment
//! roll. The I/O runs on a [`WalWrite`](crate::wal::WalWrite) handed out
//! by the log writer, which meanwhile takes further appends; only a
//! buffer grown to [`WAL_WRITE_BEHIND_BYTES_MAX`] (the disk or the task
//! is behind) makes the next group write it inline, which bounds memory.

use super::Engine;
use crate::batch::{Edit, KeyspaceId, OpKind, WriteBatch};
use crate::key::{SeqNo, ValueKind};
use crate::memtable::{History, MemTable};
use crate::options::{CompactionStyle, SyncMode};
use crate::storage::Storage;
use crate::sync::Slot;
use crate::wal::{self, LogWriter};
use crate::{Error, Result};
use std::collections::VecDeque;
use std::rc::Rc;

/// In the `interval` and `none` sync modes, the WAL bytes a writer
/// gathers in memory before it writes them out without waiting for the
/// next sync. Bounds the memory and the I/O size of write-behind.
pub const WAL_WRITE_BEHIND_BYTES: usize = 256 << 10;

/// In the relaxed sync modes, the WAL bytes buffered at most: past this,
/// writes go through a group that writes the buffer out before it
/// applies them (backpressure when the disk falls behind).
pub const WAL_WRITE_BEHIND_BYTES_MAX: usize = 4 * WAL_WRITE_BEHIND_BYTES;

/// In the `none` sync mode, how often the runtime writes the WAL's
/// write-behind buffer out ([`Engine::write_wal`]), so that a crash of the
/// process alone loses at most this window of acknowledged writes.
pub const WAL_WRITE_OUT_INTERVAL_MS: u64 = 100;

/// The WAL bytes `batch`'s record takes, as counted in the statistics and
/// the per-segment totals.
fn wal_record_bytes(batch: &WriteBatch) -> u64 {
    (batch.encoded_size() + wal::BATCH_RECORD_PREFIX_SIZE + wal::RECORD_HEADER_SIZE) as u64
}

pub(crate) enum SlotMsg {
    /// The write's outcome: the sequence number of its last op.
    Done(Result<SeqNo>),
    /// You are at the front of the queue: lead the next group.
    Lead,
}

/// A request to the leader.
pub(crate) struct Pending {
    batch: WriteBatch,
    /// Freeze these keyspaces' memtables after this group (manual flush).
    freeze: Option<Vec<KeyspaceId>>,
    slot: Rc<Slot<SlotMsg>>,
}

#[derive(Default)]
pub(crate) struct CommitQueue {
    pending: VecDeque<Pending>,
    leader_active: bool,
}

impl CommitQueue {
    /// No group is being written and no writer waits.
    pub(crate) fn is_idle(&self) -> bool {
        !self.leader_active && self.pending.is_empty()
    }
}

/// Why a writer must wait before entering the queue.
enum Stall {
    Flush,
    Compaction,
}

impl<S: Storage> Engine<S> {
    /// Applies `batch` atomically. Returns after the batch is durable
    /// under the sync mode's promise; its writes are visible from then on.
    /// Returns the sequence number of the batch's last op.
    pub async fn write(&self, batch: WriteBatch) -> Result<SeqNo> {
        self.check_writable()?;
        if batch.is_empty() {
            return Ok(self.visible_seq());
        }
        if batch.edit_count() > 0 {
            // A queued write reaches the memtable only after other work
            // ran; the value an edit changes may have left it by then.
            return Err(Error::InvalidArgument(
                "edits are written only through try_write_now; write the whole value instead".into(),
            ));
        }
        self.check_keyspaces(&batch)?;
        self.wait_for_stall(&batch).await?;
        // The engine may have closed while this writer waited.
        self.check_writable()?;
        let bytes = batch.encoded_size() as u64;
        let r = self
            .submit(Pending {
                batch,
                freeze: None,
                slot: Slot::new(),
            })
            .await;
        if r.is_ok() {
            let mut st = self.inner.state.borrow_mut();
            st.stats.user_bytes_written += bytes;
            st.stats.writes += 1;
        }
        r
    }

    /// Applies `batch` at once, without waiting, when nothing is ahead of
    /// it: appends it to the WAL's buffer and to the memtables, and makes
    /// it visible. In `sync` mode it is durable only once a later
    /// [`Engine::sync_wal`] (or a group's sync) returns a sequence number
    /// at or past the one returned here; until then a crash loses it, so
    /// the caller acknowledges it to nobody before. Returns `None` when the
    /// batch must go through [`Engine::write`] instead:
    ///
    /// - while a group is being committed or writers are queued, so writes
    ///   keep their order;
    /// - while writes are stalled behind flushes or compactions;
    /// - when the write-behind buffer is full
    ///   ([`WAL_WRITE_BEHIND_BYTES_MAX`]), or a memtable or the WAL segment
    ///   is due to roll: the next group does that I/O.
    ///
    /// It never awaits, so a caller answering many commands in a row (a
    /// pipeline) sends their replies together.
    ///
    /// A batch with edits ([`WriteBatch::edit`]) also returns `None` when
    /// one of them does not apply: the value it changes is not in the
    /// active memtable, or an earlier op of the batch writes that key.
    /// Checked and applied without a pause in between, an edit logged to
    /// the WAL always finds its value when the log is replayed.
    pub fn try_write_now(&self, batch: &WriteBatch) -> Option<Result<SeqNo>> {
        if batch.is_empty() {
            return None;
        }
        if let Err(e) = self.check_writable() {
            return Some(Err(e));
        }
        {
            let q = self.inner.commit.borrow();
            if !q.is_idle() {
                return None;
            }
        }
        if let Err(e) = self.check_keyspaces(batch) {
            return Some(Err(e));
        }
        if self.stall_reason(batch).is_some() || !self.keyspaces_to_freeze(&[]).is_empty() {
            return None;
        }
        if batch.edit_count() > 0
            && batch.edits_checked != Some(self.inner.state.borrow().mem_epoch)
            && !self.edits_apply(batch)
        {
            return None;
        }
        let wal_bytes = wal_record_bytes(batch);
        let due = {
            let mut slot = self.inner.wal.borrow_mut();
            // `None` only while the engine opens.
            let wal = slot.as_mut()?;
            if wal.buffered_bytes() + wal_bytes as usize >= WAL_WRITE_BEHIND_BYTES_MAX {
                return None;
            }
            let first = self.inner.state.borrow().last_seq + 1;
            if let Err(e) = wal.append_batch(first, batch) {
                drop(slot);
                return Some(Err(self.poison(e)));
            }
            !wal.is_writing() && wal.buffered_bytes() >= WAL_WRITE_BEHIND_BYTES
        };
        let last = self.apply_batches(std::iter::once(batch), wal_bytes);
        {
            let mut st = self.inner.state.borrow_mut();
            st.stats.user_bytes_written += batch.encoded_size() as u64;
            st.stats.writes += 1;
        }
        if due {
            self.inner.wal_due.notify_all();
        }
        Some(Ok(last))
    }

    /// Writes `key = value` in keyspace `ks`.
    pub async fn put(&self, ks: KeyspaceId, key: &[u8], value: &[u8]) -> Result<SeqNo> {
        let mut b = WriteBatch::new();
        b.put(ks, key, value)?;
        self.write(b).await
    }

    /// Writes `key = value`, expiring at `expire_at_unix_ms`.
    pub async fn put_expiring(
        &self,
        ks: KeyspaceId,
        key: &[u8],
        value: &[u8],
        expire_at_unix_ms: u64,
    ) -> Result<SeqNo> {
        let mut b = WriteBatch::new();
        b.put_expiring(ks, key, value, expire_at_unix_ms)?;
        self.write(b).await
    }

    /// Deletes `key`.
    pub async fn delete(&self, ks: KeyspaceId, key: &[u8]) -> Result<SeqNo> {
        let mut b = WriteBatch::new();
        b.delete(ks, key)?;
        self.write(b).await
    }

    /// Deletes every key in `[start, end)`.
    pub async fn delete_range(&self, ks: KeyspaceId, start: &[u8], end: &[u8]) -> Result<SeqNo> {
        let mut b = WriteBatch::new();
        b.delete_range(ks, start, end)?;
        self.write(b).await
    }

    /// Makes every write so far durable (write-out and fdatasync of the
    /// WAL); returns the sequence number durable from then on. The runtime
    /// calls it every `interval_ms` in `interval` mode; in `sync` mode the
    /// writers that went in at once ([`Engine::try_write_now`]) wait for
    /// it. Writers do not wait for it to append: the writes that arrive
    /// meanwhile are the next call's.
    pub async fn sync_wal(&self) -> Result<SeqNo> {
        self.check_writable()?;
        // Every write numbered up to here is appended to the log already
        // (appends precede applies), so the write-out takes it.
        let last = self.inner.state.borrow().last_seq;
        self.write_out_wal().await?;
        self.sync_wal_file().await?;
        Ok(last)
    }

    /// Writes the WAL's write-behind buffer out (no fdatasync): the
    /// acknowledged writes then survive a crash of the process, not yet
    /// one of the machine. The runtime calls it every
    /// [`WAL_WRITE_OUT_INTERVAL_MS`] in `none` mode, and from its
    /// write-behind task (see [`Engine::wal_write_behind_work`]).
    pub async fn write_wal(&self) -> Result<()> {
        self.check_writable()?;
        self.write_out_wal().await
    }

    /// Waits until the WAL's write-behind buffer is due out (relaxed sync
    /// modes); `false` once the engine is closed or poisoned. The
    /// runtime's write-behind task loops on it and [`Engine::write_wal`].
    pub async fn wal_write_behind_work(&self) -> bool {
        loop {
            // Registered before the check, so a wake-up in between counts.
            let due = self.inner.wal_due.notified();
            if self.is_closed() || self.poisoned().is_some() {
                return false;
            }
            let ready = self
                .inner
                .wal
                .borrow()
                .as_ref()
                .is_some_and(|w| !w.is_writing() && w.buffered_bytes() >= WAL_WRITE_BEHIND_BYTES);
            if ready {
                return true;
            }
            due.await;
        }
    }

    /// Writes every WAL record appended so far to the file, after the
    /// write already out (if any) finishes. Not durable until synced.
    pub(crate) async fn write_out_wal(&self) -> Result<()> {
        loop {
            let step = {
                let mut slot = self.inner.wal.borrow_mut();
                let wal = slot.as_mut().expect("the WAL writer exists once the engine is open");
                if wal.is_writing() {
                    None
                } else {
                    Some(wal.start_write())
                }
            };
            match step {
                // Another task's write is out; ours starts after it.
                None => self.inner.wal_io.notified().await,
                Some(Err(e)) => return Err(self.poison(e)),
                Some(Ok(None)) => return Ok(()),
                Some(Ok(Some(w))) => {
                    let r = w.run().await;
                    let done = self
                        .inner
                        .wal
                        .borrow_mut()
                        .as_mut()
                        .expect("the WAL writer exists once the engine is open")
                        .finish_write(w, r);
                    self.inner.wal_io.notify_all();
                    return done.map_err(|e| self.poison(e));
                }
            }
        }
    }

    /// fdatasyncs the WAL segment: what was written when it starts becomes
    /// durable.
    pub(crate) async fn sync_wal_file(&self) -> Result<()> {
        let start = self
            .inner
            .wal
            .borrow()
            .as_ref()
            .expect("the WAL writer exists once the engine is open")
            .start_sync();
        let s = start.map_err(|e| self.poison(e))?;
        let r = s.run().await;
        let done = self
            .inner
            .wal
            .borrow_mut()
            .as_mut()
            .expect("the WAL writer exists once the engine is open")
            .finish_sync(s, r);
        if done.is_ok() {
            self.inner.state.borrow_mut().stats.wal_syncs += 1;
        }
        done.map_err(|e| self.poison(e))
    }

    /// Freezes `ks`'s memtable so that the background flush writes it out
    /// next, without waiting for that flush as [`Engine::flush`] does. A
    /// large range delete wants its tombstone in a table soon: that flush
    /// drops the tables it covers.
    pub async fn freeze(&self, ks: KeyspaceId) -> Result<()> {
        self.freeze_memtables(Some(vec![ks])).await
    }

    /// Freezes the memtables of `keyspaces` (all when `None`) so the next
    /// flushes write them out.
    pub(crate) async fn freeze_memtables(&self, keyspaces: Option<Vec<KeyspaceId>>) -> Result<()> {
        let all = keyspaces.unwrap_or_else(|| self.inner.state.borrow().keyspaces.keys().copied().collect());
        self.submit(Pending {
            batch: WriteBatch::new(),
            freeze: Some(all),
            slot: Slot::new(),
        })
        .await
        .map(|_| ())
    }

    fn check_keyspaces(&self, batch: &WriteBatch) -> Result<()> {
        let st = self.inner.state.borrow();
        let known = |ks: KeyspaceId| {
            if st.keyspaces.contains_key(&ks) {
                Ok(())
            } else {
                Err(Error::InvalidArgument(format!("no keyspace with id {ks}")))
            }
        };
        match batch.single_keyspace() {
            Some(ks) => known(ks),
            None => batch.iter().try_for_each(|op| known(op.keyspace)),
        }
    }

    /// Appends `edit` of `key` to `batch` when it applies to the active
    /// memtable as it is now ([`MemTable::editable`]) and no operation
    /// of `batch` writes the key; returns false, with `batch` unchanged,
    /// otherwise (the caller then writes the whole value). Until a write
    /// is applied or a memtable replaced, [`Engine::try_write_now`] takes
    /// the batch without checking its edits again.
    pub fn edit_into(&self, batch: &mut WriteBatch, ks: KeyspaceId, key: &[u8], edit: Edit<'_>) -> Result<bool> {
        let epoch = {
            let st = self.inner.state.borrow();
            match st.keyspaces.get(&ks) {
                Some(k) if k.mem.editable(key, &edit) => st.mem_epoch,
                _ => return Ok(false),
            }
        };
        if batch.iter().any(|op| op.writes(ks, key)) {
            return Ok(false);
        }
        let checked = batch.edit_count() == 0 || batch.edits_checked == Some(epoch);
        batch.edit(ks, key, edit)?;
        batch.edits_checked = checked.then_some(epoch);
        Ok(true)
    }

    /// Whether every edit of `batch` applies to the active memtables as
    /// they are: its value is there ([`MemTable::editable`]) and no
    /// earlier op of the batch writes the key or a range holding it.
    fn edits_apply(&self, batch: &WriteBatch) -> bool {
        let st = self.inner.state.borrow();
        batch.iter().enumerate().all(|(i, op)| {
            let Some(edit) = op.edit() else { return true };
            st.keyspaces[&op.keyspace].mem.editable(op.key, &edit)
                && !batch.iter().take(i).any(|o| o.writes(op.keyspace, op.key))
        })
    }

    fn stall_reason(&self, batch: &WriteBatch) -> Option<Stall> {
        let st = self.inner.state.borrow();
        let max_imm = self.inner.opts.max_immutable_memtables;
        let stalled = |id: KeyspaceId| {
            let ks = &st.keyspaces[&id];
            if ks.imm.len() >= max_imm {
                return Some(Stall::Flush);
            }
            if ks.opts.compaction_style != CompactionStyle::Fifo
                && ks.version.levels[0].len() >= ks.opts.level0_stop_writes_trigger
            {
                return Some(Stall::Compaction);
            }
            None
        };
        match batch.single_keyspace() {
            Some(ks) => stalled(ks),
            None => batch.iter().find_map(|op| stalled(op.keyspace)),
        }
    }

    /// Backpressure: while flushes or L0 compactions are behind, writers
    /// wait (memory stays bounded). A stalled writer that finds no flush or
    /// compaction running does that work itself, so a stall can never
    /// outlive its cause even when no background task is driving.
    async fn wait_for_stall(&self, batch: &WriteBatch) -> Result<()> {
        let mut counted = false;
        while let Some(reason) = self.stall_reason(batch) {
            self.check_writable()?;
            if !counted {
                counted = true;
                self.inner.state.borrow_mut().stats.write_stalls += 1;
            }
            // Registered before the attempt, so progress made while we
            // wait for a lock is not missed.
            let progressed = self.inner.progress.notified();
            let did = match reason {
                Stall::Flush if !self.inner.flush_lock.is_locked() => self.flush_once().await?,
                Stall::Compaction if !self.inner.compaction_lock.is_locked() => self.compact_once().await?,
                _ => false,
            };
            if !did {
                progressed.await;
            }
        }
        Ok(())
    }

    async fn submit(&self, p: Pending) -> Result<SeqNo> {
        let slot = p.slot.clone();
        let lead = {
            let mut q = self.inner.commit.borrow_mut();
            q.pending.push_back(p);
            if q.leader_active {
                false
            } else {
                q.leader_active = true;
                true
            }
        };
        if !lead {
            match slot.wait().await {
                SlotMsg::Done(r) => return r,
                SlotMsg::Lead => {}
            }
        }
        self.lead_group().await;
        {
            let mut q = self.inner.commit.borrow_mut();
            match q.pending.front() {
                Some(next) => next.slot.set(SlotMsg::Lead),
                None => {
                    q.leader_active = false;
                    self.inner.commit_idle.notify_all();
                }
            }
        }
        match slot.wait().await {
            SlotMsg::Done(r) => r,
            SlotMsg::Lead => unreachable!("a leader's own write is always in its group"),
        }
    }

    /// Runs one group: the front of the queue, up to the batch byte limit.
    async fn lead_group(&self) {
        let group: Vec<Pending> = {
            let mut q = self.inner.commit.borrow_mut();
            let mut bytes = 0usize;
            let mut g = Vec::new();
            while let Some(p) = q.pending.front() {
                let size = p.batch.encoded_size();
                if !g.is_empty() && bytes + size > self.inner.opts.wal_batch_bytes_max {
                    break;
                }
                bytes += size;
                g.push(q.pending.pop_front().expect("front exists"));
            }
            g
        };
        assert!(!group.is_empty());
        if let Err(e) = self.check_writable() {
            let msg = e.to_string();
            for p in group {
                p.slot.set(SlotMsg::Done(Err(Error::Poisoned { cause: msg.clone() })));
            }
            return;
        }
        let outcome = self.commit_group(&group).await;
        match outcome {
            Ok(last_seqs) => {
                for (p, seq) in group.iter().zip(last_seqs) {
                    p.slot.set(SlotMsg::Done(Ok(seq)));
                }
                if let Err(e) = self.after_group(&group).await {
                    self.poison(e);
                }
            }
            Err(e) => {
                let e = self.poison(e);
                let msg = e.to_string();
                for p in &group {
                    p.slot.set(SlotMsg::Done(Err(Error::Poisoned { cause: msg.clone() })));
                }
            }
        }
    }

    /// WAL append (+ write and sync in `sync` mode), then memtable apply.
    /// Returns each batch's last sequence number.
    async fn commit_group(&self, group: &[Pending]) -> Result<Vec<SeqNo>> {
        let mut seqs = Vec::with_capacity(group.len());
        let mut next = self.inner.state.borrow().last_seq + 1;
        let mut wal_bytes = 0u64;
        let buffered = {
            let mut slot = self.inner.wal.borrow_mut();
            let wal = slot.as_mut().expect("the WAL writer exists once the engine is open");
            for p in group {
                let n = p.batch.len() as u64;
                if n == 0 {
                    seqs.push(next - 1);
                    continue;
                }
                wal.append_batch(next, &p.batch)?;
                wal_bytes += wal_record_bytes(&p.batch);
                next += n;
                seqs.push(next - 1);
            }
            wal.buffered_bytes()
        };
        let last = next - 1;
        // In `sync` mode every group reaches the disk before it is applied.
        // In the relaxed modes records collect in the writer's buffer
        // (write-behind) and go out without this group waiting (see the
        // module doc), unless the buffer is full: a crash loses at most
        // what the mode allows.
        if self.inner.opts.sync_mode == SyncMode::Sync && wal_bytes > 0 {
            self.write_out_wal().await?;
            self.sync_wal_file().await?;
        } else if buffered >= WAL_WRITE_BEHIND_BYTES_MAX {
            self.write_out_wal().await?;
        } else if buffered >= WAL_WRITE_BEHIND_BYTES {
            self.inner.wal_due.notify_all();
        }
        // Durable under the mode's promise: apply in commit order, then publish.
        let applied = self.apply_batches(group.iter().map(|p| &p.batch), wal_bytes);
        assert_eq!(applied, last);
        Ok(seqs)
    }

    /// Inserts `batches`, numbered on from the last sequence number, into
    /// the memtables and publishes them. Their WAL records (`wal_bytes`)
    /// are already appended. Returns the new last sequence number.
    fn apply_batches<'b>(&self, batches: impl Iterator<Item = &'b WriteBatch>, wal_bytes: u64) -> SeqNo {
        let mut st = self.inner.state.borrow_mut();
        let mut seq = st.last_seq + 1;
        // Point reads consult the memtables before their first await and
        // iterators register a snapshot, so with none registered no reader
        // can need a version older than the one being written.
        let history = if st.snapshots.borrow().is_empty() {
            History::Drop
        } else {
            History::Keep
        };
        let st = &mut *st;
        for batch in batches {
            for op in batch.iter() {
                let ks = st.keyspaces.get_mut(&op.keyspace).expect("keyspace checked at submit");
                match op.kind {
                    OpKind::Edit => {
                        let edit = op.edit().expect("an edit op");
                        let applied = ks.mem.edit(op.key, seq, &edit, history);
                        // `try_write_now` checked, with no pause since.
                        assert!(applied, "an edit reached a memtable that cannot take it");
                    }
                    OpKind::Value(ValueKind::RangeDelete) => {
                        // A delete of nearly everything the memtable holds
                        // (FLUSHALL) leaves little in it that a reader could
                        // see: move that to a new table and set the old one
                        // aside, so the writes after it neither share a table
                        // with the dead data nor pay its flush. The WAL
                        // segments the new table pins still hold it all, and
                        // the tombstone, so a replay ends the same.
                        if history == History::Drop {
                            if let Some(kept) = ks.mem.survivors_of_delete(op.key, op.value) {
                                let old = std::mem::replace(&mut ks.mem, Rc::new(kept));
                                old.freeze();
                                st.discarded.push(old);
                            }
                        }
                        ks.mem.add_range_delete(op.key, op.value, seq)
                    }
                    OpKind::Value(kind) => ks.mem.insert(op.key, seq, kind, op.value, history),
                }
                seq += 1;
            }
        }
        let last = seq - 1;
        st.last_seq = last;
        st.visible_seq = last;
        st.mem_epoch += 1;
        st.stats.write_groups += 1;
        st.stats.wal_bytes_written += wal_bytes;
        let segment = st.wal_segment;
        *st.wal_segments.entry(segment).or_insert(0) += wal_bytes;
        last
    }

    /// Keyspaces whose memtable is due to be frozen: full ones, those in
    /// `requested`, and, when the WAL has outgrown its bound, the one that
    /// pins the oldest segment.
    fn keyspaces_to_freeze(&self, requested: &[KeyspaceId]) -> Vec<KeyspaceId> {
        let st = self.inner.state.borrow();
        let mut v: Vec<KeyspaceId> = st
            .keyspaces
            .values()
            .filter(|k| !k.mem.is_empty())
            .filter(|k| k.mem.size_bytes() >= self.inner.opts.memtable_size || requested.contains(&k.id))
            .map(|k| k.id)
            .collect();
        // Bound the WAL: flush whichever keyspace pins the oldest segment.
        let wal_bytes: u64 = st.wal_segments.values().sum();
        let max = self.inner.opts.wal_total_bytes_max;
        if v.is_empty() && wal_bytes > max {
            if let Some(k) = st
                .keyspaces
                .values()
                .filter(|k| !k.mem.is_empty())
                .min_by_key(|k| k.mem.first_segment())
            {
                // Either its memtable began in an older segment, or it has
                // taken the WAL past the bound by itself: values rewritten
                // in place (a growing APPEND) keep the memtable small
                // while the log, and the replay at the next start, grow.
                let own: u64 = st.wal_segments.range(k.mem.first_segment()..).map(|(_, b)| b).sum();
                if k.mem.first_segment() < st.wal_segment || own > max {
                    v.push(k.id);
                }
            }
        }
        v
    }

    /// Freezes full (or requested) memtables and rolls the WAL segment.
    async fn after_group(&self, group: &[Pending]) -> Result<()> {
        let requested: Vec<KeyspaceId> = group.iter().filter_map(|p| p.freeze.clone()).flatten().collect();
        let to_freeze = self.keyspaces_to_freeze(&requested);
        if to_freeze.is_empty() {
            return Ok(());
        }
        // Everything in the old segment must be durable before memtables
        // that depend on it can be flushed and the segment deleted. No
        // append can reach it meanwhile: this task leads the commit queue,
        // and `try_write_now` waits for no leader.
        self.write_out_wal().await?;
        self.sync_wal_file().await?;
        let new_wal = match self.take_prepared_wal_segment() {
            Some(w) => w,
            None => {
                let number = self.alloc_file_number();
                let file = self.inner.storage.create(&wal::wal_file_name(number)).await?;
                let w = LogWriter::create(file, number).await?;
                self.inner.storage.sync_dir().await?;
                w
            }
        };
        let number = new_wal.segment();
        {
            let mut slot = self.inner.wal.borrow_mut();
            let old = slot
                .replace(new_wal)
                .expect("the WAL writer exists once the engine is open");
            assert!(
                !old.is_writing() && old.buffered_bytes() == 0,
                "the old WAL segment took appends during the roll"
            );
        }
        {
            let mut st = self.inner.state.borrow_mut();
            st.wal_segment = number;
            st.wal_segments.insert(number, 0);
            st.mem_epoch += 1;
            for id in to_freeze {
                let ks = st.keyspaces.get_mut(&id).expect("keyspace exists");
                ks.mem.freeze();
                let old = std::mem::replace(&mut ks.mem, Rc::new(MemTable::new(number)));
                ks.imm.push(old);
            }
        }
        self.drop_passed_wal_segment().await;
        // Wakes the flush loop, and the task that prepares the next segment.
        self.inner.background.notify_all();
        Ok(())
    }

    /// The prepared next WAL segment, if one is ready.
    fn take_prepared_wal_segment(&self) -> Option<LogWriter<S::File>> {
        let w = self.inner.next_wal.borrow_mut().take()?;
        // `prepare_wal_segment` keeps only a segment numbered past the
        // current one, and a roll drops any it has passed.
        assert!(
            w.segment() > self.inner.state.borrow().wal_segment,
            "a prepared WAL segment numbered before the current one"
        );
        Some(w)
    }

    /// Drops a prepared segment numbered before the current one (a
    /// preparation that finished while this roll created its own segment):
    /// replay order is number order, so it may never take records.
    async fn drop_passed_wal_segment(&self) {
        let current = self.inner.state.borrow().wal_segment;
        let passed = {
            let mut next = self.inner.next_wal.borrow_mut();
            match next.as_ref() {
                Some(w) if w.segment() < current => next.take(),
                _ => None,
            }
        };
        if let Some(w) = passed {
            let name = wal::wal_file_name(w.segment());
            drop(w);
            self.delete_files(std::iter::once(name)).await;
        }
    }

    /// Waits until the next WAL segment should be prepared (none is
    /// ready), or the engine stops (then returns false). The runtime's
    /// loop: `while e.wal_segment_work().await { e.prepare_wal_segment().await?; }`.
    pub async fn wal_segment_work(&self) -> bool {
        loop {
            if self.stopped() {
                return false;
            }
            if self.inner.next_wal.borrow().is_none() {
                return true;
            }
            self.inner.background.notified().await;
        }
    }

    /// Creates the next WAL segment ahead of the roll that switches to it
    /// when a memtable freezes: its header durable and its name in the
    /// synced directory. Created at the roll, it held every writer for
    /// those three disk round trips besides the old segment's sync, and
    /// under a flush's or compaction's writes that was 100 to 340 ms. A
    /// header-only segment replays as empty, so a crash with one prepared
    /// loses nothing.
    pub async fn prepare_wal_segment(&self) -> Result<()> {
        if self.inner.next_wal.borrow().is_some() {
            return Ok(());
        }
        let number = self.alloc_file_number();
        let file = self.inner.storage.create(&wal::wal_file_name(number)).await?;
        let w = LogWriter::create(file, number).await?;
        self.inner.storage.sync_dir().await?;
        // A roll that found none ready meanwhile created a later segment.
        if number > self.inner.state.borrow().wal_segment && self.inner.next_wal.borrow().is_none() {
            *self.inner.next_wal.borrow_mut() = Some(w);
        } else {
            drop(w);
            self.delete_files(std::iter::once(wal::wal_file_name(number))).await;
        }
        Ok(())
    }
}
