//! One shard's Redis data in its engine: visible at once, acknowledged
//! when durable.
//!
//! Redis semantics want a write visible to the next command as soon as it
//! executes, and LumaDB's durability promise wants the reply sent only
//! after the write is durable. The engine gives the second (a write is
//! visible once its WAL group is synced), so this layer adds the first:
//!
//! - **Overlay.** A transaction's writes go into an ordered in-memory map
//!   (`overlay`) the moment they are made, tagged with the transaction's
//!   ticket, and into a batch. Reads look in the overlay before the
//!   engine. When the batch is durable, each of its keys leaves the
//!   overlay unless a newer transaction has written it since.
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
use lumadb_engine::storage::Storage;
use lumadb_engine::sync::{Notify, Slot};
use lumadb_engine::{KeyspaceId, WriteBatch};

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
    keys: Vec<Vec<u8>>,
    done: Rc<Slot<StoreResult<()>>>,
}

/// See the module doc.
pub struct Store<S: Storage> {
    engine: Engine<S>,
    ks: KeyspaceId,
    overlay: RefCell<BTreeMap<Vec<u8>, Pending>>,
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
            overlay: RefCell::new(BTreeMap::new()),
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
            keys: Vec::new(),
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
        let pending: Vec<PendingEntry> = self
            .overlay
            .borrow()
            .range::<[u8], _>((Bound::Included(lower), Bound::Excluded(upper)))
            .map(|(k, p)| (k.clone(), p.value.clone()))
            .collect();
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
                // A lone transaction's batch goes as it is: no copy.
                self.engine.write(std::mem::take(&mut only.batch)).await
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
                for q in &mut group {
                    for k in q.keys.drain(..) {
                        // One search when no newer transaction wrote the
                        // key since (the common case); else put it back.
                        if let Some(p) = overlay.remove(&k) {
                            if p.ticket != q.ticket {
                                overlay.insert(k, p);
                            }
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
    keys: Vec<Vec<u8>>,
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
        let mut overlay = self.store.overlay.borrow_mut();
        match overlay.get_mut(key) {
            // A hot key already pending: no new allocation for its key.
            Some(p) => *p = pending,
            None => {
                overlay.insert(key.to_vec(), pending);
            }
        }
        self.keys.push(key.to_vec());
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
            keys: self.keys,
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
