//! One shard's Redis data in its engine: visible at once, acknowledged
//! when durable.
//!
//! Redis semantics want a write visible to the next command as soon as it
//! executes, and LumaDB's durability promise wants the reply sent only
//! after the write is durable. The engine gives the second (a write is
//! visible once its WAL group is synced), so this layer adds the first:
//!
//! - **Overlay.** A transaction's writes go into an in-memory map
//!   (`overlay`) the moment they are made, tagged with the transaction's
//!   ticket, and into a batch. Collection elements, which range reads
//!   walk, are kept ordered; other keys (metadata, the expiry index) are
//!   hashed, so the common write costs one probe. Reads look in the
//!   overlay before the engine. When the batch is durable, each of its
//!   keys leaves the overlay unless a newer transaction has written it
//!   since.
//! - **Committer.** Committed batches queue in submission order; one task
//!   per shard ([`Store::run_committer`]) merges everything queued into one
//!   engine write (one WAL group, one fdatasync in `sync` mode), then wakes
//!   each transaction's waiter. While a sync runs, the next group gathers.
//!   So a hot key's INCRs run at memory speed and share fsyncs.
//! - **Key locks.** A command holds shared (read) or exclusive (write)
//!   locks on its keys from its first read until its batch is queued,
//!   never across the fsync. MULTI/EXEC takes all of a transaction's
//!   locks on every shard it touches before running any of it.
//!
//! Readers may see a write a moment before it is durable (as with Redis's
//! `appendfsync always`); the writer's client never hears "OK" before it
//! is. If the engine fails a write, the shard is poisoned (fail-stop) and
//! every waiting writer gets the error.

use hashbrown::HashMap;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::rc::Rc;

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

struct Pending {
    ticket: u64,
    value: Option<Rc<[u8]>>,
}

struct Queued {
    batch: WriteBatch,
    ticket: u64,
    done: Rc<Slot<StoreResult<()>>>,
}

/// Writes not yet durable, by key (see the module doc).
#[derive(Default)]
struct Overlay {
    /// Keys of collection elements (`keys::DATA_PREFIX`).
    ordered: BTreeMap<Vec<u8>, Pending>,
    /// Every other key.
    points: HashMap<Vec<u8>, Pending>,
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

    fn len(&self) -> usize {
        self.ordered.len() + self.points.len()
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
    closed: Cell<bool>,
    next_ticket: Cell<u64>,
    pub locks: KeyLocks,
}

impl<S: Storage> Store<S> {
    pub fn new(engine: Engine<S>, ks: KeyspaceId) -> Rc<Self> {
        Rc::new(Store {
            engine,
            ks,
            overlay: RefCell::new(Overlay::default()),
            queue: RefCell::new(VecDeque::new()),
            queued: Notify::default(),
            closed: Cell::new(false),
            next_ticket: Cell::new(1),
            locks: KeyLocks::default(),
        })
    }

    pub fn engine(&self) -> &Engine<S> {
        &self.engine
    }

    /// Starts a transaction. Its writes are visible as they are made.
    pub fn tx(&self) -> Tx<'_, S> {
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket + 1);
        Tx {
            store: self,
            ticket,
            batch: WriteBatch::new(),
        }
    }

    /// The newest value of `key`: pending writes first, then the engine.
    pub async fn get(&self, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        if let Some(p) = self.overlay.borrow().get(key) {
            return Ok(p.value.as_ref().map(|v| v.to_vec()));
        }
        Ok(self.engine.get(self.ks, key).await?)
    }

    /// Up to `limit` live pairs in `[lower, upper)`, pending writes merged
    /// over the engine's, in key order.
    pub async fn scan(&self, lower: &[u8], upper: &[u8], limit: usize) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        // Overlay entries in range, captured before the engine read (a
        // caller holding the key locks sees no change in between).
        let pending = self.overlay.borrow().range(lower, upper);
        let deleted = pending.iter().filter(|(_, v)| v.is_none()).count();
        // Enough engine rows that hidden ones cannot starve the answer.
        let want = limit.saturating_add(deleted);
        let base = self
            .engine
            .scan_collect(
                self.ks,
                Bound::Included(lower.to_vec()),
                Bound::Excluded(upper.to_vec()),
                want,
            )
            .await?;
        let mut out = Vec::with_capacity(base.len().min(limit) + pending.len());
        let mut b = base.into_iter().peekable();
        let mut p = pending.into_iter().peekable();
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
        Ok(out)
    }

    fn enqueue(&self, q: Queued) {
        self.queue.borrow_mut().push_back(q);
        self.queued.notify_all();
    }

    /// Transactions queued or being written.
    pub fn queued(&self) -> usize {
        self.queue.borrow().len()
    }

    /// Keys with writes not yet durable.
    pub fn pending_keys(&self) -> usize {
        self.overlay.borrow().len()
    }

    /// Ends the committer once the queue is empty.
    pub fn close(&self) {
        self.closed.set(true);
        self.queued.notify_all();
    }

    /// The committer: one per store, spawned by the shard. Returns after
    /// [`Store::close`] once everything queued is written.
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
            let result = result.map(|_| ()).map_err(StoreError::from);
            {
                let mut overlay = self.overlay.borrow_mut();
                for q in &group {
                    for op in q.batch.iter() {
                        // Unreachable ranges never entered the overlay.
                        if op.kind != ValueKind::RangeDelete {
                            overlay.settle(op.key, q.ticket);
                        }
                    }
                }
            }
            for q in group {
                q.done.set(result.clone());
            }
        }
    }
}

/// One transaction: reads see its own writes; [`Tx::commit`] queues the
/// batch and returns what to wait on for durability.
pub struct Tx<'a, S: Storage> {
    store: &'a Store<S>,
    ticket: u64,
    batch: WriteBatch,
}

impl<S: Storage> Tx<'_, S> {
    pub async fn get(&self, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        self.store.get(key).await
    }

    pub async fn scan(&self, lower: &[u8], upper: &[u8], limit: usize) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.store.scan(lower, upper, limit).await
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) -> StoreResult<()> {
        self.batch.put(self.store.ks, key, value)?;
        self.remember(key, Some(Rc::from(value)));
        Ok(())
    }

    pub fn delete(&mut self, key: &[u8]) -> StoreResult<()> {
        self.batch.delete(self.store.ks, key)?;
        self.remember(key, None);
        Ok(())
    }

    /// Deletes `[start, end)` in the engine only. For ranges no reader can
    /// reach any more (an old generation of a collection), so the overlay
    /// need not know.
    pub fn delete_unreachable_range(&mut self, start: &[u8], end: &[u8]) -> StoreResult<()> {
        self.batch.delete_range(self.store.ks, start, end)?;
        Ok(())
    }

    fn remember(&mut self, key: &[u8], value: Option<Rc<[u8]>>) {
        let pending = Pending {
            ticket: self.ticket,
            value,
        };
        self.store.overlay.borrow_mut().set(key, pending);
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// Queues the writes; the returned handle resolves once they are
    /// durable (at once when there were none).
    pub fn commit(self) -> Durable {
        if self.batch.is_empty() {
            return Durable { done: None };
        }
        let done = Slot::new();
        self.store.enqueue(Queued {
            batch: self.batch,
            ticket: self.ticket,
            done: done.clone(),
        });
        Durable { done: Some(done) }
    }
}

/// Resolves when a committed transaction is durable.
#[must_use = "a write is acknowledged only once durable"]
pub struct Durable {
    done: Option<Rc<Slot<StoreResult<()>>>>,
}

impl Durable {
    pub fn ready() -> Durable {
        Durable { done: None }
    }

    pub async fn wait(self) -> StoreResult<()> {
        match self.done {
            None => Ok(()),
            Some(slot) => slot.wait().await,
        }
    }
}

/// Per-key shared/exclusive locks, FIFO-fair, on one shard.
///
/// A lock is taken on the key's 64-bit hash, not the key: no allocation
/// per command. Two keys that share a hash (about one pair in 2^64 with
/// the per-process seed) only serialize each other.
#[derive(Default)]
pub struct KeyLocks {
    map: Rc<RefCell<HashMap<u64, LockState>>>,
    hasher: hashbrown::DefaultHashBuilder,
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
    map: Rc<RefCell<HashMap<u64, LockState>>>,
    held: Vec<(u64, bool)>,
    waiting: Option<(u64, bool, Rc<Waiter>)>,
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
    /// shared. Locks are taken in hash order, so lockers never deadlock.
    pub fn lock<'k>(
        &self,
        keys: impl IntoIterator<Item = (&'k [u8], bool)>,
    ) -> impl std::future::Future<Output = LockGuard> + 'static {
        let mut keys: Vec<(u64, bool)> = keys
            .into_iter()
            .map(|(k, ex)| (std::hash::BuildHasher::hash_one(&self.hasher, k), ex))
            .collect();
        keys.sort_unstable();
        // One entry per key; exclusive wins over shared.
        keys.dedup_by(|b, a| {
            if a.0 == b.0 {
                a.1 |= b.1;
                true
            } else {
                false
            }
        });
        let map = self.map.clone();
        async move {
            let mut guard = LockGuard {
                map: map.clone(),
                held: Vec::with_capacity(keys.len()),
                waiting: None,
            };
            for (key, exclusive) in keys {
                let waiter = {
                    let mut map = map.borrow_mut();
                    let st = map.entry(key).or_default();
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
                    guard.waiting = Some((key, exclusive, w.clone()));
                    WaitGranted(w).await;
                    guard.waiting = None;
                }
                guard.held.push((key, exclusive));
            }
            guard
        }
    }

    /// Keys locked or waited on.
    pub fn len(&self) -> usize {
        self.map.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn release(map: &mut HashMap<u64, LockState>, key: u64, exclusive: bool) {
    let Some(st) = map.get_mut(&key) else {
        panic!("lock state missing for a held key");
    };
    if exclusive {
        assert!(st.exclusive);
        st.exclusive = false;
    } else {
        assert!(st.shared > 0);
        st.shared -= 1;
    }
    st.wake_waiters();
    if !st.exclusive && st.shared == 0 && st.waiters.is_empty() {
        map.remove(&key);
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let mut map = self.map.borrow_mut();
        if let Some((key, exclusive, w)) = self.waiting.take() {
            if w.granted.get() {
                release(&mut map, key, exclusive);
            } else if let Some(st) = map.get_mut(&key) {
                st.waiters.retain(|(_, x)| !Rc::ptr_eq(x, &w));
                // Our leaving may unblock those behind us.
                st.wake_waiters();
                if !st.exclusive && st.shared == 0 && st.waiters.is_empty() {
                    map.remove(&key);
                }
            }
        }
        for (key, exclusive) in self.held.drain(..) {
            release(&mut map, key, exclusive);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
