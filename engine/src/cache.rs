//! A byte-charged LRU cache, used as the block cache (decoded SSTable
//! blocks) and the row cache (results of table point lookups).
//!
//! Single-threaded by design: one shard owns its caches, so the state sits
//! in a `RefCell` behind `&self` methods, with no locks. Every entry carries
//! a charge in bytes; inserting past the capacity evicts least recently
//! used entries. Capacity 0 disables the cache: nothing is stored and every
//! lookup misses. An entry larger than the whole capacity is not stored.

use crate::sst::block::Block;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::Hash;
use std::rc::Rc;

/// Bookkeeping bytes charged per entry on top of the caller's charge.
pub const ENTRY_OVERHEAD_BYTES: usize = 64;

const NIL: usize = usize::MAX;

#[derive(Debug)]
struct Node<K, V> {
    key: K,
    value: V,
    charge: usize,
    prev: usize,
    next: usize,
}

#[derive(Debug)]
struct Inner<K, V> {
    map: HashMap<K, usize>,
    /// Slab of nodes; `None` slots are on `free`.
    nodes: Vec<Option<Node<K, V>>>,
    free: Vec<usize>,
    /// Most recently used.
    head: usize,
    /// Least recently used.
    tail: usize,
    usage: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Inner<K, V> {
    fn node(&mut self, i: usize) -> &mut Node<K, V> {
        self.nodes[i].as_mut().expect("live node")
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = {
            let n = self.node(i);
            (n.prev, n.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.node(prev).next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.node(next).prev = prev;
        }
    }

    fn push_front(&mut self, i: usize) {
        let head = self.head;
        {
            let n = self.node(i);
            n.prev = NIL;
            n.next = head;
        }
        if head != NIL {
            self.node(head).prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    fn remove_index(&mut self, i: usize) -> Node<K, V> {
        self.unlink(i);
        let node = self.nodes[i].take().expect("live node");
        self.free.push(i);
        self.map.remove(&node.key);
        self.usage -= node.charge;
        node
    }
}

/// A byte-charged LRU cache. See the module docs.
#[derive(Debug)]
pub struct LruCache<K, V> {
    inner: RefCell<Inner<K, V>>,
    capacity_bytes: usize,
    hits: Cell<u64>,
    requests: Cell<u64>,
}

impl<K: Hash + Eq + Clone, V: Clone> LruCache<K, V> {
    pub fn new(capacity_bytes: usize) -> Self {
        LruCache {
            inner: RefCell::new(Inner {
                map: HashMap::new(),
                nodes: Vec::new(),
                free: Vec::new(),
                head: NIL,
                tail: NIL,
                usage: 0,
            }),
            capacity_bytes,
            hits: Cell::new(0),
            requests: Cell::new(0),
        }
    }

    /// The value for `key`, marking it most recently used.
    pub fn get(&self, key: &K) -> Option<V> {
        self.requests.set(self.requests.get() + 1);
        let mut inner = self.inner.borrow_mut();
        let i = *inner.map.get(key)?;
        inner.unlink(i);
        inner.push_front(i);
        self.hits.set(self.hits.get() + 1);
        Some(inner.node(i).value.clone())
    }

    /// Whether `charge` more bytes fit without evicting anything.
    pub fn has_room_for(&self, charge: usize) -> bool {
        self.inner.borrow().usage + charge.saturating_add(ENTRY_OVERHEAD_BYTES) <= self.capacity_bytes
    }

    /// Inserts or replaces `key`, charging `charge` bytes (plus
    /// [`ENTRY_OVERHEAD_BYTES`]), then evicts to fit the capacity.
    pub fn insert(&self, key: K, value: V, charge: usize) {
        let charge = charge.saturating_add(ENTRY_OVERHEAD_BYTES);
        let mut inner = self.inner.borrow_mut();
        if let Some(&i) = inner.map.get(&key) {
            inner.remove_index(i);
        }
        if charge > self.capacity_bytes {
            return;
        }
        while inner.usage + charge > self.capacity_bytes {
            let lru = inner.tail;
            assert!(lru != NIL, "usage {} with an empty list", inner.usage);
            inner.remove_index(lru);
        }
        let node = Node {
            key: key.clone(),
            value,
            charge,
            prev: NIL,
            next: NIL,
        };
        let i = match inner.free.pop() {
            Some(i) => {
                inner.nodes[i] = Some(node);
                i
            }
            None => {
                inner.nodes.push(Some(node));
                inner.nodes.len() - 1
            }
        };
        inner.map.insert(key, i);
        inner.usage += charge;
        inner.push_front(i);
        assert!(inner.usage <= self.capacity_bytes);
    }

    /// Removes `key`, returning its value.
    pub fn remove(&self, key: &K) -> Option<V> {
        let mut inner = self.inner.borrow_mut();
        let i = *inner.map.get(key)?;
        Some(inner.remove_index(i).value)
    }

    /// Removes every entry whose key matches `pred` (e.g. all blocks of a
    /// deleted file).
    pub fn remove_if(&self, mut pred: impl FnMut(&K) -> bool) {
        let mut inner = self.inner.borrow_mut();
        let doomed: Vec<usize> = inner.map.iter().filter(|(k, _)| pred(k)).map(|(_, &i)| i).collect();
        for i in doomed {
            inner.remove_index(i);
        }
    }

    /// Bytes charged by live entries.
    pub fn usage_bytes(&self) -> usize {
        self.inner.borrow().usage
    }

    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.inner.borrow().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lookups that found their key.
    pub fn hits(&self) -> u64 {
        self.hits.get()
    }

    /// All lookups.
    pub fn requests(&self) -> u64 {
        self.requests.get()
    }
}

/// Decoded SSTable blocks, keyed by (file number, block offset); the
/// charge is the decoded size.
pub type BlockCache = LruCache<(u64, u64), Rc<Block>>;

/// The result of a table point lookup at the newest snapshot: the newest
/// entry for the user key as `(trailer, stored value)`, or `None` if the
/// table holds no point entry for it.
pub type RowCacheValue = Rc<Option<(u64, Vec<u8>)>>;

/// Point lookup results keyed by (file number, user key). Tables are
/// immutable, so an entry never goes stale; it holds the answer for
/// snapshots at or above the table's largest sequence number only (see
/// [`crate::sst::Table::get_cached`]).
pub type RowCache = LruCache<(u64, Vec<u8>), RowCacheValue>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    const O: usize = ENTRY_OVERHEAD_BYTES;

    #[test]
    fn evicts_least_recently_used() {
        let c: LruCache<u32, u32> = LruCache::new(3 * (O + 10));
        c.insert(1, 10, 10);
        c.insert(2, 20, 10);
        c.insert(3, 30, 10);
        assert_eq!(c.get(&1), Some(10));
        c.insert(4, 40, 10);
        assert_eq!(c.get(&2), None);
        assert_eq!(c.get(&1), Some(10));
        assert_eq!(c.get(&3), Some(30));
        assert_eq!(c.get(&4), Some(40));
        assert_eq!(c.usage_bytes(), 3 * (O + 10));
        assert_eq!(c.requests(), 5);
        assert_eq!(c.hits(), 4);
        assert_eq!(c.remove(&3), Some(30));
        assert_eq!(c.usage_bytes(), 2 * (O + 10));
        c.insert(1, 11, 20);
        assert_eq!(c.get(&1), Some(11));
        assert_eq!(c.usage_bytes(), 2 * O + 30);
        c.remove_if(|k| *k > 2);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn disabled_and_oversized() {
        let c: LruCache<u32, u32> = LruCache::new(0);
        c.insert(1, 1, 1);
        assert_eq!(c.get(&1), None);
        assert_eq!(c.usage_bytes(), 0);
        let c: LruCache<u32, u32> = LruCache::new(O + 100);
        c.insert(1, 1, 50);
        c.insert(2, 2, 101);
        assert_eq!(c.get(&2), None);
        assert_eq!(c.get(&1), Some(1));
    }

    #[test]
    fn matches_a_model() {
        use rand::{rngs::SmallRng, Rng, SeedableRng};
        let mut rng = SmallRng::seed_from_u64(1);
        let cap = 10 * O + 500;
        let c: LruCache<u8, u32> = LruCache::new(cap);
        // Model: front = most recent.
        let mut model: VecDeque<(u8, u32, usize)> = VecDeque::new();
        for step in 0..20_000u32 {
            let k: u8 = rng.gen_range(0..32);
            match rng.gen_range(0..3) {
                0 => {
                    let got = c.get(&k);
                    let pos = model.iter().position(|e| e.0 == k);
                    assert_eq!(got, pos.map(|p| model[p].1));
                    if let Some(p) = pos {
                        let e = model.remove(p).unwrap();
                        model.push_front(e);
                    }
                }
                1 => {
                    let charge = rng.gen_range(0..200) + O;
                    c.insert(k, step, charge - O);
                    if let Some(p) = model.iter().position(|e| e.0 == k) {
                        model.remove(p);
                    }
                    if charge <= cap {
                        while model.iter().map(|e| e.2).sum::<usize>() + charge > cap {
                            model.pop_back();
                        }
                        model.push_front((k, step, charge));
                    }
                }
                _ => {
                    let p = model.iter().position(|e| e.0 == k);
                    assert_eq!(c.remove(&k), p.map(|p| model.remove(p).unwrap().1));
                }
            }
            assert_eq!(c.usage_bytes(), model.iter().map(|e| e.2).sum::<usize>());
            assert_eq!(c.len(), model.len());
        }
    }
}
