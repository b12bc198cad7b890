//! The memtable's key index: each key's record, found by hash for point
//! reads and writes, and in key order for scans and the flush.
//!
//! ```text
//! HashIndex: 1,024 partitions, open addressing     Arena: chunks of 4,096 records
//!   u64 slot = tag (hash >> 32) | record id + 1 ─────► Record { key, value }
//! Ordered: BTreeSet<OrdKey>                              ▲
//!   OrdKey = first 32 bytes, length, rest, record id ───┘
//!   (+ a sorted run moving in 32 at a time, and up to 1,024
//!    new OrdKeys; an ordered read sorts those into the run and
//!    merges it with the tree)
//! ```
//!
//! Records never move and are never removed one at a time (a memtable
//! only grows until it is frozen, flushed and released), so a record's
//! number is a stable reference from both indexes. A point read costs two
//! cache misses (the slot, then the record, whose key of up to 46 bytes
//! sits beside its value); the flush walks the ordered index straight to
//! the records, prefetching ahead, and never probes the hash index.
//!
//! The hash index keeps no key: a slot holds the top 32 bits of the key's
//! hash, which places it in its partition and rules out nearly every
//! other key without reading its record, so a resize moves 8-byte slots
//! and reads no record.

use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::ops::Bound;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::InlineBytes;

/// Partitions of the hash index. Each grows on its own, so a resize moves
/// a 1/1024th of the slots: one big table would stop the core for a
/// rehash of millions of entries (200 ms was seen). A resize also touches
/// its new table's memory for the first time, and fresh pages are what a
/// growing memtable stalls on: up to 13 µs each in a virtual machine
/// whose host backs guest memory on first use.
pub(super) const HASH_PARTITIONS: usize = 1024;

/// A partition grows when it would be fuller than 3/4 (linear probing
/// keeps its runs short below that).
const LOAD_NUMERATOR: usize = 3;
const LOAD_DENOMINATOR: usize = 4;

/// Slots of a partition's first table.
const PARTITION_SLOTS_MIN: usize = 8;

/// Records per arena chunk (a chunk is allocated whole, touched as it fills).
const CHUNK_RECORDS_BITS: u32 = 12;
const CHUNK_RECORDS: usize = 1 << CHUNK_RECORDS_BITS;

/// Records the ordered walk prefetches ahead of the one it reads.
const PREFETCH_DISTANCE: usize = 8;

/// Keys up to this many bytes sit in their record.
const KEY_INLINE_BYTES: usize = 46;

/// New keys wait in a batch this large before they enter the ordered
/// index, sorted: inserted in key order, neighbours share the descent's
/// cache lines instead of each missing from the root down.
const ORDER_BATCH_KEYS: usize = 1024;
const _: () = assert!(ORDER_BATCH_KEYS / SETTLE_STEP_INSERTS * SETTLE_STEP_KEYS >= ORDER_BATCH_KEYS);

/// The sorted run moves into the ordered index [`SETTLE_STEP_KEYS`] at a
/// time, once every [`SETTLE_STEP_INSERTS`] new keys: two per insert, so
/// a batch is in before the next is full. Moving a whole batch at once
/// held the core for 0.4 ms per 1,024 new keys, which every client
/// waiting on that core saw as latency; steps of neighbouring keys keep
/// most of the shared descent's cache hits.
const SETTLE_STEP_KEYS: usize = 32;
const SETTLE_STEP_INSERTS: usize = 16;

/// Bytes of a key kept in the ordered index beside its record number.
const ORD_HEAD_BYTES: usize = 32;
const ORD_HEAD_WORDS: usize = ORD_HEAD_BYTES / 8;

/// The most records one memtable holds: record ids are `u32`, and a slot
/// stores id + 1 so that 0 can mean empty.
const RECORDS_MAX: usize = u32::MAX as usize - 1;

/// A record's key: in place when short (a Redis key, or a collection
/// element's key with a field of up to 27 bytes), boxed otherwise.
#[derive(Debug)]
enum KeyBytes {
    Inline(InlineBytes<KEY_INLINE_BYTES>),
    Boxed(Box<[u8]>),
}

const _: () = assert!(std::mem::size_of::<KeyBytes>() <= 48);

impl KeyBytes {
    fn new(key: &[u8]) -> Self {
        match InlineBytes::new(key) {
            Some(inline) => KeyBytes::Inline(inline),
            None => KeyBytes::Boxed(key.into()),
        }
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match self {
            KeyBytes::Inline(b) => b.as_bytes(),
            KeyBytes::Boxed(b) => b,
        }
    }
}

/// One key and what the memtable keeps for it.
#[derive(Debug)]
pub(super) struct Record<V> {
    key: KeyBytes,
    pub(super) value: V,
}

impl<V> Record<V> {
    #[inline]
    pub(super) fn key(&self) -> &[u8] {
        self.key.as_bytes()
    }
}

/// Records in insertion order, in chunks that never reallocate, so a
/// record stays where it was put.
#[derive(Debug)]
struct Arena<V> {
    chunks: Vec<Vec<Record<V>>>,
    len: usize,
}

impl<V> Arena<V> {
    fn new() -> Self {
        Arena {
            chunks: Vec::new(),
            len: 0,
        }
    }

    fn push(&mut self, record: Record<V>) -> u32 {
        assert!(self.len < RECORDS_MAX, "memtable record ids exhausted");
        if self.len.is_multiple_of(CHUNK_RECORDS) {
            self.chunks.push(Vec::with_capacity(CHUNK_RECORDS));
        }
        let chunk = self.chunks.last_mut().expect("a chunk with room was just ensured");
        assert!(chunk.len() < CHUNK_RECORDS, "arena chunk overfilled");
        chunk.push(record);
        let id = self.len as u32;
        self.len += 1;
        id
    }

    #[inline]
    fn get(&self, id: u32) -> &Record<V> {
        &self.chunks[(id >> CHUNK_RECORDS_BITS) as usize][id as usize & (CHUNK_RECORDS - 1)]
    }

    #[inline]
    fn get_mut(&mut self, id: u32) -> &mut Record<V> {
        &mut self.chunks[(id >> CHUNK_RECORDS_BITS) as usize][id as usize & (CHUNK_RECORDS - 1)]
    }

    /// Asks the CPU to start loading a record's first cache lines.
    #[inline]
    fn prefetch(&self, id: u32) {
        prefetch(self.get(id) as *const Record<V> as *const u8);
    }
}

#[inline]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults nor reads into the
    // program, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.wrapping_add(64) as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// One partition of the hash index: a power-of-two table of slots, each
/// `tag << 32 | (id + 1)`, or 0 when empty.
#[derive(Debug, Default)]
struct Partition {
    slots: Box<[u64]>,
    len: usize,
}

impl Partition {
    #[inline]
    fn slot(tag: u32, id: u32) -> u64 {
        (u64::from(tag) << 32) | (u64::from(id) + 1)
    }

    /// The record id whose key `is_key` accepts, among the slots with
    /// this tag.
    #[inline]
    fn find(&self, tag: u32, mut is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = tag as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                return None;
            }
            if (slot >> 32) as u32 == tag {
                let id = (slot as u32) - 1;
                if is_key(id) {
                    return Some(id);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Makes room for one more slot.
    fn reserve_one(&mut self) {
        let capacity = self.slots.len();
        if (self.len + 1) * LOAD_DENOMINATOR <= capacity * LOAD_NUMERATOR {
            return;
        }
        let new_capacity = (capacity * 2).max(PARTITION_SLOTS_MIN);
        let old = std::mem::replace(&mut self.slots, vec![0u64; new_capacity].into_boxed_slice());
        for slot in old.iter().copied().filter(|&s| s != 0) {
            self.place(slot);
        }
    }

    /// Puts a slot of a key not in the table in its first free place.
    fn place(&mut self, slot: u64) {
        let mask = self.slots.len() - 1;
        let mut i = (slot >> 32) as usize & mask;
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
    }

    fn insert(&mut self, tag: u32, id: u32) {
        self.reserve_one();
        self.place(Self::slot(tag, id));
        self.len += 1;
    }
}

/// A key in the ordered index: its first 32 bytes as four big-endian
/// words (most comparisons end there, without reading anything else),
/// its length up to 33, and the bytes past 32 of a longer key.
#[derive(Debug)]
struct OrdKey {
    head: [u64; ORD_HEAD_WORDS],
    len: u8,
    rest: Option<Box<[u8]>>,
    id: u32,
}

impl OrdKey {
    fn new(key: &[u8], id: u32) -> Self {
        let mut bytes = [0u8; ORD_HEAD_BYTES];
        let n = key.len().min(ORD_HEAD_BYTES);
        bytes[..n].copy_from_slice(&key[..n]);
        let mut head = [0u64; ORD_HEAD_WORDS];
        for (word, chunk) in head.iter_mut().zip(bytes.chunks_exact(8)) {
            *word = u64::from_be_bytes(chunk.try_into().expect("8 bytes"));
        }
        OrdKey {
            head,
            len: key.len().min(ORD_HEAD_BYTES + 1) as u8,
            rest: (key.len() > ORD_HEAD_BYTES).then(|| key[ORD_HEAD_BYTES..].into()),
            id,
        }
    }

    /// A search bound: compares as `key`, refers to no record.
    fn bound(key: &[u8]) -> Self {
        OrdKey::new(key, u32::MAX)
    }
}

// Byte order. Equal heads mean equal zero-padded first 32 bytes: of two
// keys of at most 32 bytes the shorter is then a prefix of the longer
// (whose remaining bytes are zeros), and so is one of at most 32 bytes of
// a longer one; two longer keys differ only past 32 bytes. Unequal heads
// differ at a byte where the keys differ, or where the shorter key has
// ended (and is then the smaller). The record id never takes part.
impl Ord for OrdKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.head
            .cmp(&other.head)
            .then_with(|| self.len.cmp(&other.len))
            .then_with(|| self.rest.as_deref().cmp(&other.rest.as_deref()))
    }
}

impl PartialOrd for OrdKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for OrdKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for OrdKey {}

/// Where [`Keys::locate`] found a key's slot belongs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Location {
    partition: usize,
    tag: u32,
}

/// Every key of a memtable, with a `V` each.
#[derive(Debug)]
pub(super) struct Keys<V> {
    seed: u64,
    arena: Arena<V>,
    by_hash: Vec<Partition>,
    ordered: BTreeSet<OrdKey>,
    /// New keys not yet in `ordered` (fewer than [`ORDER_BATCH_KEYS`]).
    unordered: Vec<OrdKey>,
    /// Earlier new keys, sorted in descending order, moving into
    /// `ordered` from the end a step at a time. An ordered read first
    /// sorts `unordered` into it, then walks both runs merged.
    settling: Vec<OrdKey>,
    /// New keys since the last step of `settling`.
    inserts_since_step: usize,
}

impl<V> Keys<V> {
    pub(super) fn new() -> Self {
        // A per-process seed, so that clients cannot choose keys that
        // collide in the hash index.
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x6c75_6d61u64);
        Keys {
            seed,
            arena: Arena::new(),
            by_hash: (0..HASH_PARTITIONS).map(|_| Partition::default()).collect(),
            ordered: BTreeSet::new(),
            unordered: Vec::new(),
            settling: Vec::new(),
            inserts_since_step: 0,
        }
    }

    /// Keys held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.arena.len
    }

    /// Where a key's slot is: its partition (the hash's low bits) and
    /// tag (the high bits).
    #[inline]
    pub(super) fn locate(&self, key: &[u8]) -> Location {
        let hash = xxh3_64_with_seed(key, self.seed);
        Location {
            partition: hash as usize % HASH_PARTITIONS,
            tag: (hash >> 32) as u32,
        }
    }

    #[inline]
    fn find(&self, at: Location, key: &[u8]) -> Option<u32> {
        let arena = &self.arena;
        self.by_hash[at.partition].find(at.tag, |id| arena.get(id).key() == key)
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<&V> {
        let id = self.find(self.locate(key), key)?;
        Some(&self.arena.get(id).value)
    }

    /// The value of `key`, located at `at`, to change in place.
    pub(super) fn get_mut_at(&mut self, at: Location, key: &[u8]) -> Option<&mut V> {
        let id = self.find(at, key)?;
        Some(&mut self.arena.get_mut(id).value)
    }

    /// Adds a key that [`Keys::get_mut_at`] did not find at `at`.
    pub(super) fn insert_new(&mut self, at: Location, key: &[u8], value: V) {
        debug_assert!(self.find(at, key).is_none(), "insert_new of a key already held");
        let id = self.arena.push(Record {
            key: KeyBytes::new(key),
            value,
        });
        self.by_hash[at.partition].insert(at.tag, id);
        if self.unordered.capacity() == 0 {
            self.unordered.reserve_exact(ORDER_BATCH_KEYS);
        }
        self.unordered.push(OrdKey::new(key, id));
        self.inserts_since_step += 1;
        if self.inserts_since_step == SETTLE_STEP_INSERTS {
            self.inserts_since_step = 0;
            self.settle_some(SETTLE_STEP_KEYS);
        }
        if self.unordered.len() >= ORDER_BATCH_KEYS {
            self.sort_new_keys();
        }
    }

    /// Sorts the new keys into `settling`. Steps move two keys per insert
    /// and every key passes through `unordered` first, so `settling`
    /// never holds more than about two batches.
    fn sort_new_keys(&mut self) {
        // A stable sort finds the run already sorted and merges the new
        // keys into it, in linear time past the new keys' own sort.
        self.settling.append(&mut self.unordered);
        self.settling.sort_by(|a, b| b.cmp(a));
    }

    /// Moves up to `n` keys of the sorted batch into the ordered index,
    /// smallest first.
    fn settle_some(&mut self, n: usize) {
        for _ in 0..n {
            let Some(k) = self.settling.pop() else { return };
            let inserted = self.ordered.insert(k);
            assert!(inserted, "a key missing from the hash index was in the ordered index");
        }
    }

    /// Whether ordered reads may run: every key is in a sorted run.
    pub(super) fn is_sorted(&self) -> bool {
        self.unordered.is_empty()
    }

    /// Readies ordered reads: sorts the new keys (at most a batch) into
    /// the sorted run, rather than moving up to two batches into the
    /// tree at once, which held the core for most of a millisecond.
    pub(super) fn sort(&mut self) {
        if !self.unordered.is_empty() {
            self.sort_new_keys();
        }
    }

    /// Starts loading what point reads of `keys` will touch: every key's
    /// first slot line at once, then, as those arrive, the records their
    /// tags point at. Reads of a batch's keys then overlap their cache
    /// misses instead of taking them one after another.
    pub(super) fn prefetch<'k>(&self, keys: impl Iterator<Item = &'k [u8]> + Clone) {
        for key in keys.clone() {
            let at = self.locate(key);
            let part = &self.by_hash[at.partition];
            if !part.slots.is_empty() {
                prefetch(&part.slots[at.tag as usize & (part.slots.len() - 1)] as *const u64 as *const u8);
            }
        }
        for key in keys {
            let at = self.locate(key);
            if let Some(id) = self.by_hash[at.partition].find(at.tag, |_| true) {
                self.arena.prefetch(id);
            }
        }
    }

    /// Keys in `range`, in order, each with its value: the tree and the
    /// sorted run, merged. Only once sorted ([`Keys::sort`]).
    pub(super) fn range<'a>(
        &'a self,
        range: (Bound<&[u8]>, Bound<&[u8]>),
    ) -> impl Iterator<Item = (&'a [u8], &'a V)> + 'a {
        assert!(self.is_sorted(), "an ordered read of an unsorted key index");
        let (lower, upper) = (range.0.map(OrdKey::bound), range.1.map(OrdKey::bound));
        // `settling` is descending: the keys above `upper` come first,
        // then those in range, then those below `lower`.
        let from = self.settling.partition_point(|k| match &upper {
            Bound::Included(u) => k > u,
            Bound::Excluded(u) => k >= u,
            Bound::Unbounded => false,
        });
        let to = self.settling.partition_point(|k| match &lower {
            Bound::Included(l) => k >= l,
            Bound::Excluded(l) => k > l,
            Bound::Unbounded => true,
        });
        let mut run = self.settling[from..to.max(from)].iter().rev().peekable();
        let walk = self.ordered.range((lower, upper));
        let mut ahead = walk.clone().skip(PREFETCH_DISTANCE);
        let mut tree = walk
            .inspect(move |_| {
                if let Some(next) = ahead.next() {
                    self.arena.prefetch(next.id);
                }
            })
            .peekable();
        std::iter::from_fn(move || {
            let k = match (tree.peek(), run.peek()) {
                (Some(a), Some(b)) if b < a => run.next(),
                (Some(_), _) => tree.next(),
                (None, _) => run.next(),
            }?;
            let record = self.arena.get(k.id);
            debug_assert!(OrdKey::bound(record.key()) == *k, "ordered index points at another key");
            Some((record.key(), &record.value))
        })
    }

    /// Frees part of the keys and answers whether any are left.
    pub(super) fn release_step(&mut self, ordered_keys_per_step: usize) -> bool {
        if self.unordered.capacity() > 0 || self.settling.capacity() > 0 {
            drop(std::mem::take(&mut self.unordered));
            drop(std::mem::take(&mut self.settling));
            return true;
        }
        if let Some(part) = self.by_hash.iter_mut().find(|p| !p.slots.is_empty()) {
            drop(std::mem::take(part));
            return true;
        }
        if !self.ordered.is_empty() {
            // Cut the first keys off whole (a walk and one split) rather
            // than popping them one by one (a descent and rebalance each).
            match self
                .ordered
                .iter()
                .nth(ordered_keys_per_step)
                .map(|k| self.arena.get(k.id).key())
            {
                Some(cut) => {
                    let rest = self.ordered.split_off(&OrdKey::bound(cut));
                    drop(std::mem::replace(&mut self.ordered, rest));
                }
                None => self.ordered.clear(),
            }
            return true;
        }
        self.arena.chunks.pop().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_finds_every_key_across_resizes() {
        let mut p = Partition::default();
        // Tags chosen to collide on the low bits, so runs form and wrap.
        let tags: Vec<u32> = (0..1000u32).map(|i| i.wrapping_mul(0x1000_0000 | 7)).collect();
        for (id, &tag) in tags.iter().enumerate() {
            p.insert(tag, id as u32);
            assert!(p.len * LOAD_DENOMINATOR <= p.slots.len() * LOAD_NUMERATOR);
        }
        for (id, &tag) in tags.iter().enumerate() {
            assert_eq!(p.find(tag, |found| found == id as u32), Some(id as u32));
        }
        assert_eq!(p.find(0xdead_beef, |_| true), None);
    }

    #[test]
    fn records_keep_their_place_as_the_arena_grows() {
        let mut keys: Keys<u32> = Keys::new();
        let n = CHUNK_RECORDS as u32 * 3 + 5;
        for i in 0..n {
            let key = format!("key:{i:012}");
            let at = keys.locate(key.as_bytes());
            assert!(keys.get_mut_at(at, key.as_bytes()).is_none());
            keys.insert_new(at, key.as_bytes(), i);
        }
        for i in (0..n).step_by(97) {
            let key = format!("key:{i:012}");
            let at = keys.locate(key.as_bytes());
            *keys.get_mut_at(at, key.as_bytes()).expect("inserted") += 1;
        }
        assert_eq!(keys.len(), n as usize);
        for i in 0..n {
            let want = if i % 97 == 0 { i + 1 } else { i };
            assert_eq!(keys.get(format!("key:{i:012}").as_bytes()), Some(&want));
        }
        keys.sort();
        let walked: Vec<&[u8]> = keys
            .range((Bound::Unbounded, Bound::Unbounded))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(walked.len(), n as usize);
        assert!(
            walked.windows(2).all(|w| w[0] < w[1]),
            "the ordered walk is out of order"
        );
    }

    #[test]
    fn ordered_reads_between_inserts_see_every_key_in_range_in_order() {
        let mut keys: Keys<u32> = Keys::new();
        let mut model = std::collections::BTreeSet::new();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        // Reads come every 1 to 3,000 inserts, so they find the tree, the
        // sorted run and the new keys in every mix of sizes; some keys
        // share a 32-byte head and differ past it.
        for round in 0..40 {
            for _ in 0..(next() % 3000 + 1) {
                let key = if next() % 4 == 0 {
                    format!("{:032}{}", 7, next() % 100_000)
                } else {
                    format!("k{}", next() % 1_000_000)
                };
                let at = keys.locate(key.as_bytes());
                if keys.get_mut_at(at, key.as_bytes()).is_none() {
                    keys.insert_new(at, key.as_bytes(), round);
                    model.insert(key.into_bytes());
                }
            }
            keys.sort();
            let a = format!("k{}", next() % 1_000_000).into_bytes();
            let b = format!("k{}", next() % 1_000_000).into_bytes();
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let bound = |k: &[u8], n: u64| match n % 3 {
                0 => Bound::Included(k.to_vec()),
                1 => Bound::Excluded(k.to_vec()),
                _ => Bound::Unbounded,
            };
            let (lo, hi) = (bound(&lo, next()), bound(&hi, next()));
            if matches!((&lo, &hi), (Bound::Excluded(l), Bound::Excluded(h)) if l == h) {
                continue; // BTreeSet panics on an empty excluded range
            }
            let walked: Vec<&[u8]> = keys
                .range((lo.as_ref().map(|k| &k[..]), hi.as_ref().map(|k| &k[..])))
                .map(|(k, _)| k)
                .collect();
            let want: Vec<&[u8]> = model.range((lo.clone(), hi.clone())).map(|k| &k[..]).collect();
            assert_eq!(walked, want, "round {round}: {lo:?}..{hi:?}");
        }
    }

    #[test]
    fn long_keys_are_boxed_and_found() {
        let mut keys: Keys<usize> = Keys::new();
        let long: Vec<Vec<u8>> = (0..100).map(|i| vec![b'k'; KEY_INLINE_BYTES - 2 + i]).collect();
        for (i, k) in long.iter().enumerate() {
            keys.insert_new(keys.locate(k), k, i);
        }
        for (i, k) in long.iter().enumerate() {
            assert_eq!(keys.get(k), Some(&i));
        }
        keys.sort();
        let order: Vec<usize> = keys
            .range((Bound::Unbounded, Bound::Unbounded))
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(order, (0..100).collect::<Vec<_>>());
    }
}
