//! One shard's Redis data in its engine: visible at once, acknowledged
//! when durable.
//!
//! Redis semantics want a write visible to the next command as soon as it
//! executes, and LumaDB's durability promise wants the reply sent only
//! after the write is durable. A command's writes collect in its
//! transaction ([`Tx`], which reads its own writes) and reach the engine
//! at [`Tx::commit`] by one of two paths:
//!
//! - **At once** (while nothing is queued): the engine appends the batch
//!   to its WAL buffer and memtable there and then
//!   ([`Engine::try_write_now`]). In the `interval` and `none` modes that
//!   is all they promise, so the reply may leave with no wait; nothing
//!   awaits, so a pipeline's replies still leave together. In `sync` mode
//!   the reply waits until the committer has synced the log past the
//!   write ([`Synced`]): every write that went in meanwhile shares that
//!   fdatasync, as Redis's `appendfsync always` has one fsync per event
//!   loop turn.
//! - **Queued** (while the engine or the committer is busy, or a
//!   transaction holds writes back): the batch's writes go into an
//!   in-memory map (`overlay`),
//!   tagged with the transaction's ticket, and the batch into the
//!   committer's queue. Collection elements, which range reads walk, are
//!   kept ordered; other keys (metadata, the expiry index) are hashed, so
//!   a write costs one probe. Reads look in the overlay before the
//!   engine. When the batch is durable, each of its keys leaves the
//!   overlay unless a newer transaction has written it since.
//! - **Committer.** Queued batches go in submission order; one task per
//!   shard ([`Store::run_committer`]) merges everything queued into one
//!   engine write (one WAL group, one fdatasync in `sync` mode), then
//!   wakes each transaction's waiter. With nothing queued, it syncs the
//!   log for the `sync`-mode writes that went in at once. While a sync
//!   runs, the next group gathers. So a hot key's INCRs run at memory
//!   speed and share fsyncs. A batch goes at once only while the queue is
//!   empty, so writes reach the engine in commit order.
//! - **Key locks.** A command holds shared (read) or exclusive (write)
//!   locks on its keys from its first read until its batch is committed,
//!   never across the fsync. MULTI/EXEC takes all of a transaction's
//!   locks on every shard it touches before running any of it. Keyed
//!   locks sit under a shard-wide gate that FLUSHALL takes exclusive, so
//!   no command reads before a flush and writes after it.
//!
//! Readers may see a write a moment before it is durable; the writer's
//! client never hears "OK" before it is. If the engine fails a write, the
//! shard is poisoned (fail-stop) and every waiting writer gets the error.

use hashbrown::HashMap;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::rc::Rc;

use lumadb_engine::batch::{BatchOp, Edit, OpKind};
use lumadb_engine::db::Engine;
use lumadb_engine::key::ValueKind;
use lumadb_engine::storage::Storage;
use lumadb_engine::sync::{Notify, Slot};
use lumadb_engine::{KeyspaceId, WriteBatch};

use super::keys;

/// Largest merged engine write the committer builds, in bytes of batch
/// payload; a bigger single transaction still goes alone.
pub const COMMIT_GROUP_BYTES_MAX: usize = 4 << 20;

/// A storage failure, as clients see it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

impl From<lumadb_engine::Error> for StoreError {
    fn from(e: lumadb_engine::Error) -> Self {
        StoreError(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// An overlay entry read out for a scan: key and value (`None`: deleted).
type PendingEntry = (Vec<u8>, Option<Rc<[u8]>>);

/// A transaction's newest write per key (`None`: deleted).
type TxIndex = BTreeMap<Vec<u8>, Option<Rc<[u8]>>>;

struct Pending {
    ticket: u64,
    value: Option<Rc<[u8]>>,
}

struct Queued {
    batch: WriteBatch,
    ticket: u64,
    done: Rc<Slot<StoreResult<()>>>,
}

/// In `sync` mode, how far the log is durable, for the writes that went
/// into the engine at once ([`Engine::try_write_now`]) and wait for a
/// sync before their replies: they raise `wanted`, the committer syncs
/// the log and publishes the engine's answer in `durable`.
#[derive(Default)]
pub struct Synced {
    /// The newest sequence number a waiting write needs durable.
    wanted: Cell<u64>,
    /// Every write numbered up to here is durable.
    durable: Cell<u64>,
    /// Why the log could not be synced: every waiter gets it (the engine
    /// is poisoned and takes no more writes).
    failed: RefCell<Option<StoreError>>,
    /// Woken when `durable` moves or the sync fails.
    changed: Notify,
}

impl Synced {
    fn publish(&self, outcome: StoreResult<u64>) {
        match outcome {
            Ok(seq) => self.durable.set(self.durable.get().max(seq)),
            Err(e) => *self.failed.borrow_mut() = Some(e),
        }
        self.changed.notify_all();
    }

    fn behind(&self) -> bool {
        self.wanted.get() > self.durable.get() && self.failed.borrow().is_none()
    }

    async fn wait(&self, seq: u64) -> StoreResult<()> {
        loop {
            // Registered before the check, so a publish in between counts.
            let changed = self.changed.notified();
            if self.durable.get() >= seq {
                return Ok(());
            }
            if let Some(e) = &*self.failed.borrow() {
                return Err(e.clone());
            }
            changed.await;
        }
    }
}

/// Writes not yet durable, by key (see the module doc).
#[derive(Default)]
struct Overlay {
    /// Keys of collection elements (`keys::DATA_PREFIX`).
    ordered: BTreeMap<Vec<u8>, Pending>,
    /// Every other key.
    points: HashMap<Vec<u8>, Pending>,
    /// Pending deletes of whole ranges that readers must see at once
    /// (FLUSHALL): `[start, end)` and the ticket. A key in one of them
    /// with no newer entry above reads as deleted.
    cleared: Vec<(Vec<u8>, Vec<u8>, u64)>,
}

impl Overlay {
    fn is_ordered(key: &[u8]) -> bool {
        key.first() == Some(&keys::DATA_PREFIX)
    }

    fn get(&self, key: &[u8]) -> Option<&Pending> {
        if Self::is_ordered(key) {
            self.ordered.get(key)
        } else {
            self.points.get(key)
        }
    }

    /// What a reader sees of `key` here: `Some(None)` deleted, `None`
    /// nothing pending (read the engine).
    fn read(&self, key: &[u8]) -> Option<Option<&Rc<[u8]>>> {
        if let Some(p) = self.get(key) {
            return Some(p.value.as_ref());
        }
        self.is_cleared(key).then_some(None)
    }

    fn is_cleared(&self, key: &[u8]) -> bool {
        self.cleared
            .iter()
            .any(|(start, end, _)| start.as_slice() <= key && key < end.as_slice())
    }

    /// Records a pending delete of `[start, end)`: every entry in it is
    /// older, so it goes, and the range reads as deleted until `ticket`'s
    /// batch reaches the engine.
    fn clear(&mut self, start: &[u8], end: &[u8], ticket: u64) {
        let inside = |k: &[u8]| start <= k && k < end;
        self.ordered.retain(|k, _| !inside(k));
        self.points.retain(|k, _| !inside(k));
        self.cleared.push((start.to_vec(), end.to_vec(), ticket));
    }

    /// Forgets the pending delete of `[start, end)` by `ticket`, if any.
    fn settle_clear(&mut self, start: &[u8], end: &[u8], ticket: u64) {
        self.cleared
            .retain(|(s, e, t)| !(*t == ticket && s.as_slice() == start && e.as_slice() == end));
    }

    /// Records `pending` for `key`, allocating no key when it is already
    /// pending (a hot key).
    fn set(&mut self, key: &[u8], pending: Pending) {
        let slot = if Self::is_ordered(key) {
            self.ordered.get_mut(key)
        } else {
            self.points.get_mut(key)
        };
        match slot {
            Some(p) => *p = pending,
            None if Self::is_ordered(key) => {
                self.ordered.insert(key.to_vec(), pending);
            }
            None => {
                self.points.insert(key.to_vec(), pending);
            }
        }
    }

    /// Forgets `key` if its pending write is `ticket`'s: one search when
    /// no newer transaction wrote the key since (the common case).
    fn settle(&mut self, key: &[u8], ticket: u64) {
        if Self::is_ordered(key) {
            if let Some((k, p)) = self.ordered.remove_entry(key) {
                if p.ticket != ticket {
                    self.ordered.insert(k, p);
                }
            }
        } else if let Some((k, p)) = self.points.remove_entry(key) {
            if p.ticket != ticket {
                self.points.insert(k, p);
            }
        }
    }

    /// Pending entries, pending range deletes included.
    fn len(&self) -> usize {
        self.ordered.len() + self.points.len() + self.cleared.len()
    }

    /// Entries in `[lower, upper)`, in key order.
    fn range(&self, lower: &[u8], upper: &[u8]) -> Vec<PendingEntry> {
        let mut out: Vec<PendingEntry> = self
            .ordered
            .range::<[u8], _>((Bound::Included(lower), Bound::Excluded(upper)))
            .map(|(k, p)| (k.clone(), p.value.clone()))
            .collect();
        let data_only = lower >= [keys::DATA_PREFIX].as_slice() && upper <= [keys::DATA_PREFIX + 1].as_slice();
        if !data_only && !self.points.is_empty() {
            // Whole-keyspace walks (SCAN, KEYS, FLUSHALL, active expiry)
            // are rare; they pay for the hashed keys' order here.
            out.extend(
                self.points
                    .iter()
                    .filter(|(k, _)| k.as_slice() >= lower && k.as_slice() < upper)
                    .map(|(k, p)| (k.clone(), p.value.clone())),
            );
            out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        out
    }
}

/// See the module doc.
pub struct Store<S: Storage> {
    engine: Engine<S>,
    ks: KeyspaceId,
    overlay: RefCell<Overlay>,
    queue: RefCell<VecDeque<Queued>>,
    queued: Notify,
    /// Batches queued or being written by the committer.
    in_flight: Cell<usize>,
    closed: Cell<bool>,
    next_ticket: Cell<u64>,
    pub locks: KeyLocks,
    /// A committed transaction's emptied batch, whose buffer the next
    /// transaction writes into ([`Store::recycle`]).
    spare: Cell<Option<WriteBatch>>,
    /// `sync` mode: writes that went in at once wait on this for the
    /// committer's sync before their replies. `None` in the relaxed modes.
    synced: Option<Rc<Synced>>,
}

/// The parts of `[lower, upper)` outside every range of `cleared`, in
/// key order.
fn uncovered(lower: &[u8], upper: &[u8], cleared: &[(Vec<u8>, Vec<u8>)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut parts = vec![(lower.to_vec(), upper.to_vec())];
    for (start, end) in cleared {
        parts = parts
            .into_iter()
            .flat_map(|(from, to)| {
                let before =
                    (from.as_slice() < start.as_slice()).then(|| (from.clone(), to.clone().min(start.clone())));
                let after = (end.as_slice() < to.as_slice()).then(|| (from.max(end.clone()), to));
                before.into_iter().chain(after)
            })
            .filter(|(from, to)| from < to)
            .collect();
    }
    parts
}

/// Writes in key order merged over `base` (also in key order): a write
/// replaces the row with its key, a delete (`None`) hides it. At most
/// `limit` rows.
fn merge_rows(base: Vec<(Vec<u8>, Vec<u8>)>, writes: Vec<PendingEntry>, limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::with_capacity(base.len().min(limit) + writes.len());
    let mut b = base.into_iter().peekable();
    let mut p = writes.into_iter().peekable();
    while out.len() < limit {
        let take_pending = match (b.peek(), p.peek()) {
            (None, None) => break,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some((bk, _)), Some((pk, _))) => pk <= bk,
        };
        if take_pending {
            let (k, v) = p.next().expect("peeked");
            if b.peek().is_some_and(|(bk, _)| *bk == k) {
                b.next();
            }
            if let Some(v) = v {
                out.push((k, v.to_vec()));
            }
        } else {
            out.push(b.next().expect("peeked"));
        }
    }
    out
}

impl<S: Storage> Store<S> {
    pub fn new(engine: Engine<S>, ks: KeyspaceId) -> Rc<Self> {
        Rc::new(Store {
            ks,
            overlay: RefCell::new(Overlay::default()),
            queue: RefCell::new(VecDeque::new()),
            queued: Notify::default(),
            in_flight: Cell::new(0),
            closed: Cell::new(false),
            next_ticket: Cell::new(1),
            locks: KeyLocks::default(),
            spare: Cell::new(None),
            synced: (engine.options().sync_mode == lumadb_engine::SyncMode::Sync).then(Rc::default),
            engine,
        })
    }

    pub fn engine(&self) -> &Engine<S> {
        &self.engine
    }

    /// Starts a transaction. Its writes are visible once it commits.
    pub fn tx(&self) -> Tx<'_, S> {
        Tx {
            store: self,
            batch: self.spare.take().unwrap_or_default(),
            index: None,
            cleared: Vec::new(),
            clock_ms: None,
            edits_allowed: true,
        }
    }

    /// Keeps `batch`'s buffer for the next transaction: most commands
    /// write a few hundred bytes, and reusing one buffer saves each of
    /// them an allocation and its growth. A buffer grown by a big write
    /// is let go.
    fn recycle(&self, mut batch: WriteBatch) {
        if batch.capacity() <= SPARE_BATCH_BYTES_MAX {
            batch.clear();
            self.spare.set(Some(batch));
        }
    }

    /// Hints that `keys` are about to be read (see [`Engine::prefetch`]).
    pub fn prefetch<'k>(&self, keys: impl Iterator<Item = &'k [u8]> + Clone) {
        self.engine.prefetch(self.ks, keys);
    }

    /// `f` of the newest value of `key` if the engine's active memtable
    /// has it (see [`Engine::peek_newest`]): a hint, never an answer.
    pub fn peek<R>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self.engine.peek_newest(self.ks, key, f)
    }

    /// Hands the memtable to the background flush (see [`Engine::freeze`]).
    pub async fn freeze_memtable(&self) -> StoreResult<()> {
        Ok(self.engine.freeze(self.ks).await?)
    }

    /// The newest value of `key`: pending writes first, then the engine.
    pub async fn get(&self, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        self.read_with(key, |v| v.map(<[u8]>::to_vec)).await
    }

    /// `f` of the newest value of `key`, given where it lies (the
    /// overlay, a memtable) instead of a copy; read from the tables only
    /// when it is not in memory. `f` must not reach the store.
    pub async fn read_with<R>(&self, key: &[u8], f: impl FnOnce(Option<&[u8]>) -> R) -> StoreResult<R> {
        {
            let overlay = self.overlay.borrow();
            if overlay.len() > 0 {
                if let Some(v) = overlay.read(key) {
                    return Ok(f(v.map(|v| &v[..])));
                }
            }
        }
        let mut f = Some(f);
        let in_memory = self
            .engine
            .get_in_memory(self.ks, key, |v| f.take().expect("read once")(v))?;
        if let Some(r) = in_memory {
            return Ok(r);
        }
        let value = self.engine.get(self.ks, key).await?;
        Ok(f.take().expect("not read in memory")(value.as_deref()))
    }

    /// Up to `limit` live pairs in `[lower, upper)`, pending writes merged
    /// over the engine's, in key order.
    pub async fn scan(&self, lower: &[u8], upper: &[u8], limit: usize) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        // Overlay entries in range, captured before the engine read (a
        // caller holding the key locks sees no change in between).
        let (pending, cleared) = {
            let overlay = self.overlay.borrow();
            let cleared: Vec<(Vec<u8>, Vec<u8>)> = overlay
                .cleared
                .iter()
                .filter(|(s, e, _)| s.as_slice() < upper && lower < e.as_slice())
                .map(|(s, e, _)| (s.clone(), e.clone()))
                .collect();
            (overlay.range(lower, upper), cleared)
        };
        let deleted = pending.iter().filter(|(_, v)| v.is_none()).count();
        // Enough engine rows that hidden ones cannot starve the answer.
        let want = limit.saturating_add(deleted);
        // The engine is read only where no pending range delete hides it.
        let mut base = Vec::new();
        for (from, to) in uncovered(lower, upper, &cleared) {
            if base.len() >= want {
                break;
            }
            let rows = self
                .engine
                .scan_collect(self.ks, Bound::Included(from), Bound::Excluded(to), want - base.len())
                .await?;
            base.extend(rows);
        }
        Ok(merge_rows(base, pending, limit))
    }

    fn enqueue(&self, q: Queued) {
        self.in_flight.set(self.in_flight.get() + 1);
        self.queue.borrow_mut().push_back(q);
        self.queued.notify_all();
    }

    /// Starts holding back a transaction's writes on this shard (MULTI/EXEC
    /// and cross-shard commands, under their key locks): its commands
    /// commit with [`Tx::commit_held`], which shows their writes to every
    /// reader at once, and [`Store::release`] hands all of them to the
    /// engine as one batch, so that a crash keeps all of them or none.
    /// Meanwhile every other commit on this shard takes the queued path
    /// (the overlay is not empty), so the engine gets writes in the order
    /// readers saw them.
    pub fn hold(&self) -> Held {
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket + 1);
        self.in_flight.set(self.in_flight.get() + 1);
        Held {
            batch: WriteBatch::new(),
            ticket,
        }
    }

    /// Hands a held transaction's writes to the engine as one batch;
    /// resolves once they are durable.
    pub fn release(&self, held: Held) -> Durable {
        self.in_flight.set(self.in_flight.get() - 1);
        if held.batch.is_empty() {
            return Durable::ready();
        }
        let done = Slot::new();
        self.enqueue(Queued {
            batch: held.batch,
            ticket: held.ticket,
            done: done.clone(),
        });
        Durable {
            state: DurableState::Waiting(done),
        }
    }

    /// Takes `ticket`'s writes in `batch`, now in the engine, out of the
    /// overlay (a key written since by a newer ticket stays).
    fn settle(&self, batch: &WriteBatch, ticket: u64) {
        let mut overlay = self.overlay.borrow_mut();
        for op in batch.iter() {
            if op.kind == OpKind::Value(ValueKind::RangeDelete) {
                overlay.settle_clear(op.key, op.value, ticket);
            } else {
                overlay.settle(op.key, ticket);
            }
        }
    }

    /// Transactions queued or being written.
    pub fn queued(&self) -> usize {
        self.in_flight.get()
    }

    /// Keys with writes not yet durable.
    pub fn pending_keys(&self) -> usize {
        self.overlay.borrow().len()
    }

    /// Ends the committer once the queue is empty and the writes waiting
    /// for a sync are synced.
    pub fn close(&self) {
        self.closed.set(true);
        self.queued.notify_all();
    }

    /// The committer: one per store, spawned by the shard. Returns after
    /// [`Store::close`] once everything queued is written and everything
    /// that went in at once in `sync` mode is synced.
    pub async fn run_committer(self: Rc<Self>) {
        loop {
            let wait = self.queued.notified();
            let mut group: Vec<Queued> = {
                let mut q = self.queue.borrow_mut();
                let mut bytes = 0;
                let mut g = Vec::new();
                while let Some(front) = q.front() {
                    let size = front.batch.encoded_size();
                    if !g.is_empty() && bytes + size > COMMIT_GROUP_BYTES_MAX {
                        break;
                    }
                    bytes += size;
                    g.push(q.pop_front().expect("front exists"));
                }
                g
            };
            if group.is_empty() {
                if let Some(synced) = self.synced.as_ref().filter(|s| s.behind()) {
                    // The writes that went in at once since the last sync
                    // share this one; those arriving meanwhile, the next.
                    synced.publish(self.engine.sync_wal().await.map_err(StoreError::from));
                    continue;
                }
                if self.closed.get() {
                    return;
                }
                wait.await;
                continue;
            }
            let result = if let [only] = &mut group[..] {
                // A lone transaction's batch goes as it is; the copy kept
                // names the keys to settle below.
                self.engine.write(only.batch.clone()).await
            } else {
                let mut merged = WriteBatch::new();
                let mut built = Ok(());
                for q in &group {
                    if let Err(e) = merged.extend(&q.batch) {
                        built = Err(e);
                        break;
                    }
                }
                match built {
                    Ok(()) => self.engine.write(merged).await,
                    Err(e) => Err(e),
                }
            };
            let result = result.map_err(StoreError::from);
            if let Some(synced) = &self.synced {
                match &result {
                    // A group's sync takes every write appended before it.
                    Ok(_) => synced.publish(result.clone()),
                    // A failed sync poisons the engine: no later sync can
                    // make the waiting writes durable.
                    Err(_) if self.engine.poisoned().is_some() => synced.publish(result.clone()),
                    Err(_) => {}
                }
            }
            let result = result.map(|_| ());
            for q in &group {
                self.settle(&q.batch, q.ticket);
            }
            self.in_flight.set(self.in_flight.get() - group.len());
            for q in group {
                q.done.set(result.clone());
            }
        }
    }
}

/// A transaction's writes on one shard, held back until it ends
/// ([`Store::hold`]). Must be handed to [`Store::release`].
#[must_use = "held writes reach the engine only through Store::release"]
pub struct Held {
    batch: WriteBatch,
    ticket: u64,
}

/// The largest buffer [`Store::recycle`] keeps.
const SPARE_BATCH_BYTES_MAX: usize = 16 << 10;

/// Batches up to this many operations find a key by a linear search;
/// bigger ones keep an index ([`Tx`]).
const TX_LINEAR_OPS_MAX: usize = 16;

/// One command's transaction: reads see its own writes; [`Tx::commit`]
/// hands the batch to the engine and returns what to wait on for
/// durability.
pub struct Tx<'a, S: Storage> {
    store: &'a Store<S>,
    batch: WriteBatch,
    /// The batch's newest write per key, once it has more than
    /// [`TX_LINEAR_OPS_MAX`] operations.
    index: Option<TxIndex>,
    /// Range deletes that readers must see at once ([`Tx::clear_range`]).
    cleared: Vec<(Vec<u8>, Vec<u8>)>,
    /// The time its commands run at, when fixed ([`Tx::set_clock`]).
    clock_ms: Option<u64>,
    /// Whether [`Tx::edit`] may log edits ([`Tx::forbid_edits`]).
    edits_allowed: bool,
}

/// The point writes of a transaction's batch, in order: key and value
/// (`None`: deleted). Unreachable ranges and values with an engine expiry
/// are never read back through a transaction, so they are left out; so
/// are edits, whose values [`Tx::edited`] builds.
fn point_writes(batch: &WriteBatch) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
    batch.iter().filter_map(|op| match op.kind {
        OpKind::Value(ValueKind::Put) => Some((op.key, Some(op.value))),
        OpKind::Value(ValueKind::Delete) => Some((op.key, None)),
        OpKind::Value(ValueKind::RangeDelete | ValueKind::PutExpiring) | OpKind::Edit => None,
    })
}

impl<S: Storage> Tx<'_, S> {
    /// Runs this transaction's commands at `now_ms` (Unix ms) rather than
    /// at the clock: every command of one EXEC sees the same time, so no
    /// key expires halfway through it (as Redis).
    pub fn set_clock(&mut self, now_ms: u64) {
        self.clock_ms = Some(now_ms);
    }

    /// The time fixed by [`Tx::set_clock`], if any.
    pub fn clock(&self) -> Option<u64> {
        self.clock_ms
    }

    /// This transaction's own newest write of `key`: `Some(None)` if it
    /// deleted the key, `None` if it has not written it.
    fn own(&self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        if let Some(v) = self.edited(key) {
            return Some(v);
        }
        if let Some(index) = &self.index {
            return index.get(key).map(|v| v.as_ref().map(|v| v.to_vec()));
        }
        point_writes(&self.batch)
            .filter(|(k, _)| *k == key)
            .last()
            .map(|(_, v)| v.map(<[u8]>::to_vec))
    }

    /// This transaction's own writes in `[lower, upper)`, in key order.
    fn own_range(&self, lower: &[u8], upper: &[u8]) -> Vec<PendingEntry> {
        let in_range = |k: &[u8]| k >= lower && k < upper;
        if let Some(index) = &self.index {
            return index
                .range::<[u8], _>((Bound::Included(lower), Bound::Excluded(upper)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        }
        // Collecting into a map keeps the newest write per key.
        let newest: BTreeMap<&[u8], Option<&[u8]>> = point_writes(&self.batch).filter(|(k, _)| in_range(k)).collect();
        let mut own: Vec<PendingEntry> = newest.into_iter().map(|(k, v)| (k.to_vec(), v.map(Rc::from))).collect();
        if self.batch.edit_count() > 0 {
            for op in self
                .batch
                .iter()
                .filter(|op| op.kind == OpKind::Edit && in_range(op.key))
            {
                let value = self.edited(op.key).expect("an edited key").map(Rc::from);
                match own.binary_search_by(|(k, _)| k.as_slice().cmp(op.key)) {
                    Ok(i) => own[i].1 = value,
                    Err(i) => own.insert(i, (op.key.to_vec(), value)),
                }
            }
        }
        own
    }

    /// The newest value this transaction gives `key`, if it edited it
    /// ([`Tx::edit`]): the edit applied to the value in the active
    /// memtable, then the transaction's later writes of the key.
    fn edited(&self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        if self.batch.edit_count() == 0 {
            return None;
        }
        let mut ops = self
            .batch
            .iter()
            .filter(|op| op.key == key && op.kind != OpKind::Value(ValueKind::RangeDelete));
        let first = ops.next()?;
        let edit = first.edit()?;
        // An edit is the first write of its key (`Tx::edit`), and nothing
        // ran since it was checked, so the memtable still holds its value.
        let mut value = self.store.engine.edited_value(self.store.ks, key, &edit);
        assert!(value.is_some(), "an edited value left the memtable before its commit");
        for op in ops {
            match op.kind {
                OpKind::Value(ValueKind::Put) => value = Some(op.value.to_vec()),
                OpKind::Value(ValueKind::Delete) => value = None,
                OpKind::Edit => {
                    let edit = op.edit().expect("an edit op");
                    let applied = value.as_mut().is_some_and(|v| edit.apply(v));
                    assert!(applied, "a transaction edits a value it deleted");
                }
                OpKind::Value(ValueKind::PutExpiring | ValueKind::RangeDelete) => {}
            }
        }
        Some(value)
    }

    /// Changes part of `key`'s value, logged and applied as just that
    /// change, when the engine can take it at once: nothing is queued
    /// ahead (so the engine holds what readers see), the value is in its
    /// active memtable, and this transaction has not written the key yet.
    /// Returns false, having done nothing, otherwise: the caller then
    /// writes the whole value. The transaction must commit before any
    /// await (nothing may move the value out of the memtable meanwhile),
    /// so it reads nothing after an edit: a command that reads after it
    /// changes a value calls [`Tx::forbid_edits`] first.
    pub fn edit(&mut self, key: &[u8], edit: Edit<'_>) -> StoreResult<bool> {
        let store = self.store;
        if !self.edits_allowed || self.index.is_some() || store.in_flight.get() != 0 || !self.cleared.is_empty() {
            return Ok(false);
        }
        Ok(store.engine.edit_into(&mut self.batch, store.ks, key, edit)?)
    }

    /// Makes [`Tx::edit`] decline from now on, for a command that reads
    /// (and may await) after it changes a value.
    pub fn forbid_edits(&mut self) {
        self.edits_allowed = false;
    }

    /// The batch with each edit replaced by the whole value it makes, for
    /// the paths that cannot log an edit (queued, held).
    fn without_edits(&self) -> StoreResult<WriteBatch> {
        let mut whole = WriteBatch::with_capacity(self.batch.encoded_size());
        for op in self.batch.iter() {
            match op.kind {
                OpKind::Edit => {
                    let value = self
                        .edited_at(op)
                        .ok_or_else(|| StoreError("an edited value left memory before its commit".into()))?;
                    whole.put(self.store.ks, op.key, &value)?;
                }
                OpKind::Value(_) => whole.push_op(&op)?,
            }
        }
        Ok(whole)
    }

    /// The value the edit `op` of this batch makes: of the memtable's value
    /// when it is the key's first write here (as [`Tx::edit`] keeps it).
    fn edited_at(&self, op: BatchOp<'_>) -> Option<Vec<u8>> {
        let edit = op.edit()?;
        self.store.engine.edited_value(self.store.ks, op.key, &edit)
    }

    pub async fn get(&self, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        debug_assert_eq!(
            self.batch.edit_count(),
            0,
            "a transaction reads (and may await) after an edit"
        );
        if let Some(v) = self.own(key) {
            return Ok(v);
        }
        self.store.get(key).await
    }

    /// `f` of what [`Tx::get`] reads of `key`: this transaction's own
    /// write, else [`Store::read_with`]. `f` must not reach the store.
    pub async fn read_with<R>(&self, key: &[u8], f: impl FnOnce(Option<&[u8]>) -> R) -> StoreResult<R> {
        debug_assert_eq!(
            self.batch.edit_count(),
            0,
            "a transaction reads (and may await) after an edit"
        );
        if let Some(v) = self.own(key) {
            return Ok(f(v.as_deref()));
        }
        self.store.read_with(key, f).await
    }

    pub async fn scan(&self, lower: &[u8], upper: &[u8], limit: usize) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        debug_assert_eq!(
            self.batch.edit_count(),
            0,
            "a transaction reads (and may await) after an edit"
        );
        let own = self.own_range(lower, upper);
        if own.is_empty() {
            return self.store.scan(lower, upper, limit).await;
        }
        let deleted = own.iter().filter(|(_, v)| v.is_none()).count();
        let base = self.store.scan(lower, upper, limit.saturating_add(deleted)).await?;
        Ok(merge_rows(base, own, limit))
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) -> StoreResult<()> {
        self.batch.put(self.store.ks, key, value)?;
        self.remember(key, Some(value));
        Ok(())
    }

    /// Puts the concatenation of `head` and `value` (see
    /// [`WriteBatch::put_parts`]).
    pub fn put_parts(&mut self, key: &[u8], head: &[u8], value: &[u8]) -> StoreResult<()> {
        self.batch.put_parts(self.store.ks, key, head, value)?;
        if self.index.is_some() || self.batch.len() > TX_LINEAR_OPS_MAX {
            self.remember(key, Some(&[head, value].concat()));
        }
        Ok(())
    }

    pub fn delete(&mut self, key: &[u8]) -> StoreResult<()> {
        self.batch.delete(self.store.ks, key)?;
        self.remember(key, None);
        Ok(())
    }

    /// Deletes `[start, end)` in the engine only. For ranges no reader can
    /// reach any more (an old generation of a collection), so neither this
    /// transaction's reads nor the overlay need know.
    pub fn delete_unreachable_range(&mut self, start: &[u8], end: &[u8]) -> StoreResult<()> {
        self.batch.delete_range(self.store.ks, start, end)?;
        Ok(())
    }

    /// Deletes every key in `[start, end)`, as other clients see at once
    /// (FLUSHALL): until the batch is durable, the store's overlay answers
    /// "deleted" for the range. This transaction's own later reads do not
    /// see it; point writes after it in the same transaction are kept.
    pub fn clear_range(&mut self, start: &[u8], end: &[u8]) -> StoreResult<()> {
        self.batch.delete_range(self.store.ks, start, end)?;
        self.cleared.push((start.to_vec(), end.to_vec()));
        Ok(())
    }

    /// Keeps the index current, building it when the batch outgrows a
    /// linear search.
    fn remember(&mut self, key: &[u8], value: Option<&[u8]>) {
        if let Some(index) = &mut self.index {
            index.insert(key.to_vec(), value.map(Rc::from));
        } else if self.batch.len() > TX_LINEAR_OPS_MAX {
            let index = point_writes(&self.batch)
                .map(|(k, v)| (k.to_vec(), v.map(Rc::from)))
                .collect();
            self.index = Some(index);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// Whether this transaction writes anything of user key `key` (its
    /// meta, elements or expiry): what WATCH counts as a change, as Redis
    /// signals only the keys a command modified (`DEL a b` with no `b`
    /// leaves a WATCH on `b` alone).
    pub fn writes_key(&self, key: &[u8]) -> bool {
        self.batch.iter().any(|op| keys::belongs_to(op.key, key))
    }

    /// Shows this transaction's writes to every reader through the
    /// overlay, as transaction `ticket`'s, until they are durable.
    fn show(&self, ticket: u64) {
        // In batch order: a write after a cleared range stays visible.
        let mut overlay = self.store.overlay.borrow_mut();
        for op in self.batch.iter() {
            let value = match op.kind {
                OpKind::Value(ValueKind::Put) => Some(Rc::from(op.value)),
                OpKind::Value(ValueKind::Delete) => None,
                OpKind::Value(ValueKind::RangeDelete) => {
                    if self
                        .cleared
                        .iter()
                        .any(|(s, e)| s.as_slice() == op.key && e.as_slice() == op.value)
                    {
                        overlay.clear(op.key, op.value, ticket);
                    }
                    continue;
                }
                OpKind::Value(ValueKind::PutExpiring) => continue,
                OpKind::Edit => unreachable!("edits are made whole before they are shown"),
            };
            overlay.set(op.key, Pending { ticket, value });
        }
    }

    /// Adds the writes to `held` ([`Store::hold`]) instead of the engine:
    /// every reader sees them at once; they reach the engine with the
    /// rest of `held`.
    pub fn commit_held(mut self, held: &mut Held) -> StoreResult<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        if self.batch.edit_count() > 0 {
            self.batch = self.without_edits()?;
        }
        held.batch.extend(&self.batch)?;
        self.show(held.ticket);
        Ok(())
    }

    /// Hands the writes to the engine (see the module doc); the returned
    /// handle resolves once they are durable under the sync mode's
    /// promise (at once when there were none, or when they went in at
    /// once).
    pub fn commit(mut self) -> Durable {
        let store = self.store;
        if self.batch.is_empty() {
            store.recycle(self.batch);
            return Durable::ready();
        }
        if store.in_flight.get() == 0 {
            match store.engine.try_write_now(&self.batch) {
                Some(Ok(seq)) => {
                    store.recycle(self.batch);
                    let Some(synced) = &store.synced else {
                        return Durable::ready();
                    };
                    if synced.wanted.get() < seq {
                        synced.wanted.set(seq);
                        store.queued.notify_all();
                    }
                    return Durable {
                        state: DurableState::Synced(synced.clone(), seq),
                    };
                }
                Some(Err(e)) => return Durable::failed(e.into()),
                None => {}
            }
        }
        if self.batch.edit_count() > 0 {
            match self.without_edits() {
                Ok(whole) => self.batch = whole,
                Err(e) => return Durable::failed(e),
            }
        }
        let ticket = store.next_ticket.get();
        store.next_ticket.set(ticket + 1);
        self.show(ticket);
        let done = Slot::new();
        store.enqueue(Queued {
            batch: self.batch,
            ticket,
            done: done.clone(),
        });
        Durable {
            state: DurableState::Waiting(done),
        }
    }
}

/// Resolves when a committed transaction is durable.
#[must_use = "a write is acknowledged only once durable"]
pub struct Durable {
    state: DurableState,
}

enum DurableState {
    Ready,
    Failed(StoreError),
    Waiting(Rc<Slot<StoreResult<()>>>),
    /// Went into the engine at once in `sync` mode: durable once the log
    /// is synced through this sequence number.
    Synced(Rc<Synced>, u64),
}

impl Durable {
    pub fn ready() -> Durable {
        Durable {
            state: DurableState::Ready,
        }
    }

    pub fn failed(e: StoreError) -> Durable {
        Durable {
            state: DurableState::Failed(e),
        }
    }

    pub async fn wait(self) -> StoreResult<()> {
        match self.state {
            DurableState::Ready => Ok(()),
            DurableState::Failed(e) => Err(e),
            DurableState::Waiting(slot) => slot.wait().await,
            DurableState::Synced(synced, seq) => synced.wait(seq).await,
        }
    }
}

/// Per-key shared/exclusive locks, FIFO-fair, on one shard, under one
/// shard-wide gate.
///
/// A lock is taken on the key's 64-bit hash, not the key: no allocation
/// per command. Two keys that share a hash (about one pair in 2^64 with
/// the per-process seed) only serialize each other.
///
/// Every keyed lock also holds the gate shared, taken before any key;
/// [`KeyLocks::lock_shard`] holds it exclusive, so a command over the
/// whole keyspace (FLUSHALL) waits for every keyed command in flight,
/// including one parked on a disk read, and the keyed commands that come
/// after it wait for it (FIFO).
#[derive(Default)]
pub struct KeyLocks {
    table: Rc<RefCell<LockTable>>,
    hasher: hashbrown::DefaultHashBuilder,
}

#[derive(Default)]
struct LockTable {
    gate: LockState,
    keys: HashMap<u64, LockState>,
}

/// What one lock covers.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum LockSlot {
    /// The shard-wide gate: sorts before every key, so it is taken first.
    Gate,
    Key(u64),
}

impl LockTable {
    fn state(&mut self, slot: LockSlot) -> &mut LockState {
        match slot {
            LockSlot::Gate => &mut self.gate,
            LockSlot::Key(k) => self.keys.entry(k).or_default(),
        }
    }

    /// Forgets an idle key's state (the gate stays).
    fn tidy(&mut self, slot: LockSlot) {
        if let LockSlot::Key(k) = slot {
            if self.keys.get(&k).is_some_and(LockState::idle) {
                self.keys.remove(&k);
            }
        }
    }

    fn release(&mut self, slot: LockSlot, exclusive: bool) {
        let st = match slot {
            LockSlot::Gate => &mut self.gate,
            LockSlot::Key(k) => match self.keys.get_mut(&k) {
                Some(st) => st,
                None => panic!("lock state missing for a held key"),
            },
        };
        if exclusive {
            assert!(st.exclusive);
            st.exclusive = false;
        } else {
            assert!(st.shared > 0);
            st.shared -= 1;
        }
        st.wake_waiters();
        self.tidy(slot);
    }
}

/// A queued lock request; the releaser sets `granted` before waking.
#[derive(Default)]
struct Waiter {
    granted: Cell<bool>,
    waker: RefCell<Option<std::task::Waker>>,
}

#[derive(Default)]
struct LockState {
    /// Readers holding it (when not exclusive).
    shared: u32,
    exclusive: bool,
    waiters: VecDeque<(bool, Rc<Waiter>)>,
}

impl LockState {
    fn grantable(&self, exclusive: bool) -> bool {
        if exclusive {
            !self.exclusive && self.shared == 0
        } else {
            !self.exclusive
        }
    }

    fn idle(&self) -> bool {
        !self.exclusive && self.shared == 0 && self.waiters.is_empty()
    }

    fn grant(&mut self, exclusive: bool) {
        if exclusive {
            self.exclusive = true;
        } else {
            self.shared += 1;
        }
    }

    /// Grants to waiters at the front, in order, while they fit.
    fn wake_waiters(&mut self) {
        while let Some((ex, _)) = self.waiters.front() {
            if !self.grantable(*ex) {
                break;
            }
            let (ex, w) = self.waiters.pop_front().expect("front exists");
            self.grant(ex);
            w.granted.set(true);
            let waker = w.waker.borrow_mut().take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// Locks held (and, while [`KeyLocks::lock`] runs, the one waited for);
/// released on drop, so a command dropped mid-wait leaks nothing.
pub struct LockGuard {
    table: Rc<RefCell<LockTable>>,
    held: Vec<(LockSlot, bool)>,
    waiting: Option<(LockSlot, bool, Rc<Waiter>)>,
}

struct WaitGranted(Rc<Waiter>);

impl std::future::Future for WaitGranted {
    type Output = ();
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.0.granted.get() {
            return std::task::Poll::Ready(());
        }
        *self.0.waker.borrow_mut() = Some(cx.waker().clone());
        std::task::Poll::Pending
    }
}

impl KeyLocks {
    /// Locks `keys` (any order, duplicates allowed), each exclusive or
    /// shared, with the gate shared. Locks are taken in order (the gate,
    /// then key hashes ascending), so lockers never deadlock.
    pub fn lock<'k>(
        &self,
        keys: impl IntoIterator<Item = (&'k [u8], bool)>,
    ) -> impl std::future::Future<Output = LockGuard> + 'static {
        self.acquire(self.slots(keys))
    }

    /// The gate (shared) and `keys`, in locking order, one entry per key
    /// (exclusive wins over shared).
    fn slots<'k>(&self, keys: impl IntoIterator<Item = (&'k [u8], bool)>) -> Vec<(LockSlot, bool)> {
        let mut slots: Vec<(LockSlot, bool)> = std::iter::once((LockSlot::Gate, false))
            .chain(
                keys.into_iter()
                    .map(|(k, ex)| (LockSlot::Key(std::hash::BuildHasher::hash_one(&self.hasher, k)), ex)),
            )
            .collect();
        slots.sort_unstable();
        // One entry per key; exclusive wins over shared.
        slots.dedup_by(|b, a| {
            if a.0 == b.0 {
                a.1 |= b.1;
                true
            } else {
                false
            }
        });
        slots
    }

    /// Whether `keys` could all be locked at once with nobody queued
    /// ahead: the test for running a command with its locks elided
    /// ([`KeyLocks::lock_now`]). Hashes no key while no key is locked.
    pub fn free_for<'k>(&self, keys: impl IntoIterator<Item = (&'k [u8], bool)>) -> bool {
        let table = self.table.borrow();
        if !table.gate.waiters.is_empty() || !table.gate.grantable(false) {
            return false;
        }
        if table.keys.is_empty() {
            return true;
        }
        keys.into_iter().all(|(k, exclusive)| {
            match table.keys.get(&std::hash::BuildHasher::hash_one(&self.hasher, k)) {
                None => true,
                Some(st) => st.waiters.is_empty() && st.grantable(exclusive),
            }
        })
    }

    /// Locks `keys` now, without waiting: for a command that ran with its
    /// locks elided and is about to suspend. Nothing else ran since
    /// [`KeyLocks::free_for`] said yes (the command has not yet yielded),
    /// so every lock is still free; holding them from here is the same as
    /// having held them from the start.
    pub fn lock_now<'k>(&self, keys: impl IntoIterator<Item = (&'k [u8], bool)>) -> LockGuard {
        let slots = self.slots(keys);
        let mut table = self.table.borrow_mut();
        for &(slot, exclusive) in &slots {
            let st = table.state(slot);
            assert!(
                st.waiters.is_empty() && st.grantable(exclusive),
                "an elided lock was taken while the command ran"
            );
            st.grant(exclusive);
        }
        LockGuard {
            table: self.table.clone(),
            held: slots,
            waiting: None,
        }
    }

    /// Locks `keys` if that needs no wait ([`KeyLocks::free_for`]); `None`
    /// otherwise, leaving nothing queued.
    pub fn try_lock<'k>(&self, keys: impl IntoIterator<Item = (&'k [u8], bool)> + Clone) -> Option<LockGuard> {
        self.free_for(keys.clone()).then(|| self.lock_now(keys))
    }

    /// Locks the whole shard: waits for every keyed lock held or queued
    /// before it; keyed locks asked for after it wait until it is dropped.
    pub fn lock_shard(&self) -> impl std::future::Future<Output = LockGuard> + 'static {
        self.acquire(vec![(LockSlot::Gate, true)])
    }

    fn acquire(&self, slots: Vec<(LockSlot, bool)>) -> impl std::future::Future<Output = LockGuard> + 'static {
        debug_assert!(slots.windows(2).all(|w| w[0].0 < w[1].0), "slots sorted, unique");
        let table = self.table.clone();
        async move {
            let mut guard = LockGuard {
                table: table.clone(),
                held: Vec::with_capacity(slots.len()),
                waiting: None,
            };
            for (slot, exclusive) in slots {
                let waiter = {
                    let mut table = table.borrow_mut();
                    let st = table.state(slot);
                    if st.waiters.is_empty() && st.grantable(exclusive) {
                        st.grant(exclusive);
                        None
                    } else {
                        let w = Rc::new(Waiter::default());
                        st.waiters.push_back((exclusive, w.clone()));
                        Some(w)
                    }
                };
                if let Some(w) = waiter {
                    guard.waiting = Some((slot, exclusive, w.clone()));
                    WaitGranted(w).await;
                    guard.waiting = None;
                }
                guard.held.push((slot, exclusive));
            }
            guard
        }
    }

    /// Keys locked or waited on.
    pub fn len(&self) -> usize {
        self.table.borrow().keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let mut table = self.table.borrow_mut();
        if let Some((slot, exclusive, w)) = self.waiting.take() {
            if w.granted.get() {
                table.release(slot, exclusive);
            } else {
                let st = table.state(slot);
                st.waiters.retain(|(_, x)| !Rc::ptr_eq(x, &w));
                // Our leaving may unblock those behind us.
                st.wake_waiters();
                table.tidy(slot);
            }
        }
        // Keys before the gate: a waiter woken by the gate's release finds
        // the keys free.
        for (slot, exclusive) in self.held.drain(..).rev() {
            table.release(slot, exclusive);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::testkit::TestDb;
    use lumadb_engine::storage::mem::MemStorage;
    use lumadb_engine::SyncMode;

    fn poll_once<F: std::future::Future>(f: &mut std::pin::Pin<Box<F>>) -> Option<F::Output> {
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }

    /// The shard lock waits for a keyed lock already held; a keyed lock
    /// asked for after it waits for it (FIFO), and both run in turn.
    #[test]
    fn shard_lock_waits_for_keyed_locks_and_blocks_later_ones() {
        let locks = KeyLocks::default();
        let mut a = Box::pin(locks.lock([(&b"a"[..], false)]));
        let a = poll_once(&mut a).expect("free key locks at once");
        let mut flush = Box::pin(locks.lock_shard());
        assert!(poll_once(&mut flush).is_none(), "waits for the keyed lock");
        let mut b = Box::pin(locks.lock([(&b"b"[..], true)]));
        assert!(poll_once(&mut b).is_none(), "queues behind the shard lock");
        drop(a);
        let flush = poll_once(&mut flush).expect("granted once the keyed lock is gone");
        assert!(poll_once(&mut b).is_none(), "still behind the shard lock");
        drop(flush);
        let b = poll_once(&mut b).expect("granted after the shard lock");
        drop(b);
        assert!(locks.is_empty());
        // The gate is free again: both kinds lock at once.
        assert!(poll_once(&mut Box::pin(locks.lock_shard())).is_some());
        assert!(poll_once(&mut Box::pin(locks.lock([(&b"c"[..], true)]))).is_some());
    }

    /// A request dropped while queued on the gate leaves nothing behind
    /// and lets those behind it go.
    #[test]
    fn dropping_a_queued_shard_lock_unblocks_keyed_locks() {
        let locks = KeyLocks::default();
        let mut a = Box::pin(locks.lock([(&b"a"[..], true)]));
        let a = poll_once(&mut a).expect("free");
        let mut flush = Box::pin(locks.lock_shard());
        assert!(poll_once(&mut flush).is_none());
        let mut b = Box::pin(locks.lock([(&b"b"[..], false)]));
        assert!(poll_once(&mut b).is_none());
        drop(flush);
        assert!(poll_once(&mut b).is_some(), "nothing left ahead of it");
        drop(a);
        assert!(locks.is_empty());
    }

    /// Elided locks: keys are free only while nobody holds or waits for
    /// them and no whole-shard lock is held or queued; locks taken by
    /// `lock_now` hold off later lockers like any other.
    #[test]
    fn elided_locks_are_free_only_when_nobody_holds_or_waits() {
        let locks = KeyLocks::default();
        let a = |ex| [(&b"a"[..], ex)];
        let b = |ex| [(&b"b"[..], ex)];
        assert!(locks.free_for(a(true)));
        let held = locks.lock_now(a(true));
        assert!(!locks.free_for(a(false)), "held exclusive");
        assert!(locks.free_for(b(true)), "another key");
        let mut later = Box::pin(locks.lock(a(false)));
        assert!(poll_once(&mut later).is_none(), "waits for the lock taken now");
        let mut flush = Box::pin(locks.lock_shard());
        assert!(poll_once(&mut flush).is_none(), "the shard lock waits too");
        assert!(!locks.free_for(b(true)), "nothing runs ahead of a queued shard lock");
        drop(held);
        let shared = poll_once(&mut later).expect("granted once released");
        assert!(poll_once(&mut flush).is_none(), "still a shared holder");
        drop(shared);
        let flush = poll_once(&mut flush).expect("granted");
        assert!(!locks.free_for(b(false)), "the shard is locked");
        drop(flush);

        // Shared holders leave a key free for readers, not for writers;
        // a queued writer keeps later readers in line (FIFO).
        let reader = poll_once(&mut Box::pin(locks.lock(a(false)))).expect("free");
        assert!(locks.free_for(a(false)));
        assert!(!locks.free_for(a(true)));
        let mut writer = Box::pin(locks.lock(a(true)));
        assert!(poll_once(&mut writer).is_none());
        assert!(!locks.free_for(a(false)), "a writer waits");
        drop(reader);
        drop(poll_once(&mut writer).expect("granted"));
        assert!(locks.is_empty());
        assert!(locks.free_for(a(true)));
    }

    /// `try_lock` takes free keys at once and, where it would wait,
    /// takes and queues nothing.
    #[test]
    fn try_lock_takes_free_keys_and_queues_nothing_otherwise() {
        let locks = KeyLocks::default();
        let both = [(&b"a"[..], true), (&b"b"[..], false)];
        let held = locks.try_lock(both).expect("free");
        assert!(locks.try_lock([(&b"b"[..], false)]).is_some(), "shared with a reader");
        assert!(locks.try_lock([(&b"c"[..], true), (&b"a"[..], false)]).is_none());
        assert_eq!(locks.len(), 2, "nothing queued or left for c");
        let mut later = Box::pin(locks.lock([(&b"a"[..], false)]));
        assert!(poll_once(&mut later).is_none());
        drop(held);
        drop(poll_once(&mut later).expect("granted"));
        assert!(locks.is_empty());
    }

    /// A command whose key is locked by another waits for it (its locks
    /// are not elided), and runs once the lock is released.
    #[test]
    fn a_command_on_a_locked_key_waits_for_the_lock() {
        let t = TestDb::new();
        let locks = &t.db.store.locks;
        let held = poll_once(&mut Box::pin(locks.lock([(&b"k"[..], true)]))).expect("free");
        let args: Vec<bytes::Bytes> = ["SET", "k", "v"].iter().map(|a| bytes::Bytes::from(*a)).collect();
        let spec = crate::resp::command::lookup(b"set").expect("set exists");
        let mut set = Box::pin(crate::redis::exec::run_one(&t.db, spec, &args));
        assert!(poll_once(&mut set).is_none(), "waits for the held lock");
        drop(held);
        assert_eq!(poll_once(&mut set), Some(crate::resp::Reply::ok()));
        assert_eq!(t.cmd(&["GET", "k"]), crate::redis::testkit::bulk("v"));
    }

    fn k(i: usize) -> Vec<u8> {
        format!("mkey{i:03}").into_bytes()
    }

    /// A transaction sees its own writes (point and range, below and above
    /// the size where it indexes them) before it commits, and everyone
    /// sees them after.
    fn reads_own_writes(t: &TestDb, ops: usize) {
        let store = &t.db.store;
        t.run(async {
            let mut tx = store.tx();
            for i in 0..4 {
                tx.put(&k(i), b"old").unwrap();
            }
            tx.commit().wait().await.unwrap();
            let mut tx = store.tx();
            tx.delete(&k(1)).unwrap();
            for i in 3..3 + ops {
                tx.put(&k(i), format!("v{i}").as_bytes()).unwrap();
            }
            tx.put(&k(3), b"again").unwrap();
            assert_eq!(tx.get(&k(0)).await.unwrap().as_deref(), Some(&b"old"[..]));
            assert_eq!(tx.get(&k(1)).await.unwrap(), None);
            assert_eq!(tx.get(&k(3)).await.unwrap().as_deref(), Some(&b"again"[..]));
            assert_eq!(tx.get(&k(4)).await.unwrap().as_deref(), Some(&b"v4"[..]));
            let rows = tx.scan(&k(0), &k(5), 3).await.unwrap();
            let keys: Vec<_> = rows.iter().map(|(key, _)| key.clone()).collect();
            assert_eq!(keys, vec![k(0), k(2), k(3)]);
            assert_eq!(rows[2].1, b"again");
            // Not visible to others before the commit.
            assert_eq!(store.get(&k(4)).await.unwrap(), None);
            tx.commit().wait().await.unwrap();
            assert_eq!(store.get(&k(1)).await.unwrap(), None);
            assert_eq!(store.get(&k(3)).await.unwrap().as_deref(), Some(&b"again"[..]));
            let all = store.scan(b"mkey", b"mkez", usize::MAX).await.unwrap();
            assert_eq!(all.len(), 2 + ops);
        });
    }

    #[test]
    fn a_transaction_reads_its_own_writes_in_every_mode() {
        for ops in [2, TX_LINEAR_OPS_MAX * 3] {
            reads_own_writes(&TestDb::new(), ops);
            reads_own_writes(&TestDb::new_sync(), ops);
        }
    }

    #[test]
    fn relaxed_modes_write_at_once_while_idle_and_queue_in_order_while_busy() {
        let t = TestDb::new();
        let store = &t.db.store;
        t.run(async {
            let mut tx = store.tx();
            tx.put(b"mk", b"1").unwrap();
            let durable = tx.commit();
            // Went straight to the engine: nothing pending, nothing queued.
            assert_eq!((store.pending_keys(), store.queued()), (0, 0));
            assert_eq!(
                store.engine().get(store.ks, b"mk").await.unwrap().as_deref(),
                Some(&b"1"[..])
            );
            durable.wait().await.unwrap();
        });
        // A batch too big for the write-behind buffer is queued; the
        // committer has not run yet, so the next write of the same key
        // must queue behind it rather than overtake it.
        let big = vec![b'x'; lumadb_engine::db::WAL_WRITE_BEHIND_BYTES_MAX];
        let mut tx = store.tx();
        tx.put(b"mbig", &big).unwrap();
        tx.put(b"mk", b"2").unwrap();
        let first = tx.commit();
        assert_eq!(store.queued(), 1);
        let mut tx = store.tx();
        tx.put(b"mk", b"3").unwrap();
        let second = tx.commit();
        assert_eq!(store.queued(), 2);
        t.run(async {
            assert_eq!(store.get(b"mk").await.unwrap().as_deref(), Some(&b"3"[..]));
            first.wait().await.unwrap();
            second.wait().await.unwrap();
            assert_eq!((store.pending_keys(), store.queued()), (0, 0));
            assert_eq!(
                store.engine().get(store.ks, b"mk").await.unwrap().as_deref(),
                Some(&b"3"[..])
            );
            // Idle again: straight to the engine.
            let mut tx = store.tx();
            tx.put(b"mk", b"4").unwrap();
            tx.commit().wait().await.unwrap();
            assert_eq!(store.pending_keys(), 0);
            assert_eq!(
                store.engine().get(store.ks, b"mk").await.unwrap().as_deref(),
                Some(&b"4"[..])
            );
        });
    }

    /// A held transaction's writes are visible to every reader at once,
    /// reach the engine only at release, all in one batch, and other
    /// writers meanwhile queue instead of overtaking them.
    #[test]
    fn held_writes_show_at_once_and_reach_the_engine_together_at_release() {
        let t = TestDb::new();
        let store = &t.db.store;
        t.run(async {
            let mut held = store.hold();
            for (k, v) in [(&b"ha"[..], &b"1"[..]), (b"hb", b"2")] {
                let mut tx = store.tx();
                tx.put(k, v).unwrap();
                tx.commit_held(&mut held).unwrap();
            }
            // The second command of the transaction reads the first's write.
            let tx = store.tx();
            assert_eq!(tx.get(b"ha").await.unwrap().as_deref(), Some(&b"1"[..]));
            assert_eq!(store.engine().get(store.ks, b"ha").await.unwrap(), None);
            // Another writer queues meanwhile.
            let mut other = store.tx();
            other.put(b"hc", b"3").unwrap();
            let other = other.commit();
            assert_eq!(store.queued(), 2);
            store.release(held).wait().await.unwrap();
            other.wait().await.unwrap();
            assert_eq!((store.pending_keys(), store.queued()), (0, 0));
            for (k, v) in [(&b"ha"[..], &b"1"[..]), (b"hb", b"2"), (b"hc", b"3")] {
                assert_eq!(store.engine().get(store.ks, k).await.unwrap().as_deref(), Some(v));
            }
            // Nothing held: nothing to write.
            store.release(store.hold()).wait().await.unwrap();
            assert_eq!(store.queued(), 0);
        });
    }

    /// In `sync` mode a write with nothing queued goes into the engine at
    /// once, visible there, and its reply waits for the committer's sync;
    /// writes that go in together share that one sync; a crash before it
    /// loses them (none was acknowledged), after it keeps them.
    #[test]
    fn sync_mode_answers_a_write_once_the_log_is_synced() {
        let t = TestDb::new_sync();
        let store = &t.db.store;
        let syncs = || store.engine().stats().counters.wal_syncs;
        let put = |k: &[u8], v: &[u8]| {
            let mut tx = store.tx();
            tx.put(k, v).unwrap();
            tx.commit()
        };
        let before = syncs();
        let durable = put(b"tk", b"1");
        assert_eq!((store.pending_keys(), store.queued()), (0, 0), "nothing queued");
        let lost = t.storage.crash(None);
        t.run(async {
            assert_eq!(
                store.engine().get(store.ks, b"tk").await.unwrap().as_deref(),
                Some(&b"1"[..]),
                "in the engine at once"
            );
            assert_eq!(syncs(), before, "not synced yet");
            durable.wait().await.unwrap();
            assert_eq!(syncs(), before + 1);

            let waiting: Vec<Durable> = (0..20u8).map(|i| put(&[b't', i], b"2")).collect();
            for d in waiting {
                d.wait().await.unwrap();
            }
            assert_eq!(syncs(), before + 2, "twenty writes, one sync");
        });
        let kept = t.storage.crash(None);
        let read = |storage: MemStorage, key: &'static [u8]| {
            let t = TestDb::open_with(storage, SyncMode::Sync);
            let ks = t.db.store.ks;
            let engine = t.db.store.engine().clone();
            t.run(async move { engine.get(ks, key).await.unwrap() })
        };
        assert_eq!(read(lost, b"tk"), None, "crashed before the sync");
        assert_eq!(read(kept.clone(), b"tk").as_deref(), Some(&b"1"[..]));
        assert_eq!(read(kept, &[b't', 19]).as_deref(), Some(&b"2"[..]));
    }

    fn pending(ticket: u64, value: &[u8]) -> Pending {
        Pending {
            ticket,
            value: Some(Rc::from(value)),
        }
    }

    #[test]
    fn overlay_ranges_merge_hashed_and_ordered_keys_in_key_order() {
        let mut o = Overlay::default();
        for (i, k) in [&b"mb"[..], b"dz", b"ma", b"x1", b"da", b"V", b"mc"].iter().enumerate() {
            o.set(k, pending(i as u64, k));
        }
        let keys = |v: Vec<PendingEntry>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            keys(o.range(b"", b"\xff")),
            [&b"V"[..], b"da", b"dz", b"ma", b"mb", b"mc", b"x1"].map(<[u8]>::to_vec)
        );
        assert_eq!(keys(o.range(b"d", b"e")), [&b"da"[..], b"dz"].map(<[u8]>::to_vec));
        assert_eq!(keys(o.range(b"ma", b"mc")), [&b"ma"[..], b"mb"].map(<[u8]>::to_vec));
        assert_eq!(keys(o.range(b"db", b"mb")), [&b"dz"[..], b"ma"].map(<[u8]>::to_vec));
    }

    #[test]
    fn overlay_settles_only_the_writing_transactions_entry() {
        let mut o = Overlay::default();
        o.set(b"mk", pending(1, b"one"));
        o.set(b"dk", pending(1, b"one"));
        // A newer transaction rewrote mk before ticket 1 became durable.
        o.set(b"mk", pending(2, b"two"));
        o.settle(b"mk", 1);
        o.settle(b"dk", 1);
        assert_eq!(o.len(), 1);
        assert_eq!(o.get(b"mk").map(|p| p.ticket), Some(2));
        assert!(o.get(b"dk").is_none());
        o.settle(b"mk", 2);
        assert_eq!(o.len(), 0);
    }

    #[test]
    fn a_scan_reads_the_engine_only_outside_pending_range_deletes() {
        let v = |a: &[u8], b: &[u8]| (a.to_vec(), b.to_vec());
        assert_eq!(uncovered(b"a", b"z", &[]), vec![v(b"a", b"z")]);
        assert_eq!(uncovered(b"m", b"n", &[v(b"d", b"y")]), vec![]);
        assert_eq!(
            uncovered(b"a", b"z", &[v(b"d", b"y")]),
            vec![v(b"a", b"d"), v(b"y", b"z")]
        );
        assert_eq!(uncovered(b"a", b"m", &[v(b"d", b"y")]), vec![v(b"a", b"d")]);
        assert_eq!(uncovered(b"m", b"z", &[v(b"d", b"y")]), vec![v(b"y", b"z")]);
        assert_eq!(
            uncovered(b"a", b"z", &[v(b"c", b"e"), v(b"g", b"i")]),
            vec![v(b"a", b"c"), v(b"e", b"g"), v(b"i", b"z")]
        );
    }

    #[test]
    fn a_cleared_range_reads_deleted_until_settled_and_newer_writes_stay() {
        let mut o = Overlay::default();
        o.set(b"ma", pending(1, b"old"));
        o.set(b"zz", pending(1, b"outside"));
        o.clear(b"d", b"y", 2);
        // Older entries in the range are gone; the range reads deleted.
        assert_eq!(o.read(b"ma"), Some(None));
        assert_eq!(o.read(b"mb"), Some(None));
        assert!(o.read(b"zz").is_some_and(|v| v.is_some()));
        assert_eq!(o.read(b"c"), None);
        // A newer write inside the range is seen over the clear.
        o.set(b"mb", pending(3, b"new"));
        assert_eq!(o.read(b"mb").flatten().map(|v| v.to_vec()), Some(b"new".to_vec()));
        // Settling ticket 1 touches nothing any more; ticket 2 lifts the clear.
        o.settle(b"ma", 1);
        o.settle_clear(b"d", b"y", 1);
        assert_eq!(o.read(b"ma"), Some(None));
        o.settle_clear(b"d", b"y", 2);
        assert_eq!(o.read(b"ma"), None);
        assert!(o.read(b"mb").is_some());
    }
}
