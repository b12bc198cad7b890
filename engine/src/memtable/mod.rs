//! The memtable: a keyspace's recent writes, in memory, ordered by user key
//! with every version kept (newest last) until the table is flushed.
//! Range tombstones are kept in a list beside the map.
//!
//! Keys are indexed twice ([`keys`]): a hash index for point reads and
//! writes, which dominate (every Redis write reads its key's metadata
//! first), and an ordered index for scans and the flush. Both refer to
//! one record per key, which holds the key and its versions.
//!
//! Access is by short synchronous calls that copy out what they return
//! ([`MemTable::visible_after`] hands out chunks), so no borrow is ever
//! held across an `.await` and iterators stay valid while writers insert:
//! entries newer than an iterator's snapshot are simply not visible to it.

mod keys;

use crate::batch::Edit;
use crate::key::{RangeTombstone, SeqNo, ValueKind, VALUE_SIZE_MAX};
use std::cell::{Cell, RefCell};
use std::ops::Bound;

use keys::Keys;

/// Bytes charged per entry on top of key and value (its record, hash
/// slot and ordered-index entry).
const ENTRY_OVERHEAD_BYTES: usize = 160;

/// A user key's versions: the newest inline, so that the common read
/// (the newest version) touches no further allocation.
#[derive(Debug)]
struct Versions {
    newest: Version,
    /// Older versions, oldest first. Boxed: most keys never have one
    /// (older versions are kept only while a snapshot may read them), and
    /// a pointer keeps every record 16 bytes smaller than a `Vec`.
    #[allow(clippy::box_collection)]
    older: Option<Box<Vec<Version>>>,
}

// One per key in the memtable: with its key, most of a small entry's memory.
const _: () = assert!(std::mem::size_of::<Versions>() <= 48);

impl Versions {
    fn newest_first(&self) -> impl Iterator<Item = &Version> {
        std::iter::once(&self.newest).chain(self.older.iter().flat_map(|older| older.iter().rev()))
    }
}

/// [`MemTable::survivors_of_delete`] replaces memtables of at least this
/// many entries, when a delete leaves at most `SURVIVORS_MAX` keys.
const DISCARD_ENTRIES_MIN: u64 = 4096;
const SURVIVORS_MAX: usize = 1024;

/// Keys of the ordered index freed per [`MemTable::release_step`].
const RELEASE_STEP_KEYS: usize = 16 << 10;

/// Values up to this many bytes are kept inside their version: 23 bytes
/// with the length, so that with a pointer-sized alternative the enum
/// holding them stays 24 bytes.
const VALUE_INLINE_BYTES: usize = 22;

/// Up to `N` bytes stored in place.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InlineBytes<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> InlineBytes<N> {
    const FITS_LEN: () = assert!(N <= u8::MAX as usize);

    const EMPTY: Self = InlineBytes { len: 0, bytes: [0; N] };

    /// `v` in place, if it fits.
    fn new(v: &[u8]) -> Option<Self> {
        #[allow(clippy::let_unit_value)]
        let () = Self::FITS_LEN;
        if v.len() > N {
            return None;
        }
        let mut bytes = [0u8; N];
        bytes[..v.len()].copy_from_slice(v);
        Some(InlineBytes {
            len: v.len() as u8,
            bytes,
        })
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl<const N: usize> std::fmt::Debug for InlineBytes<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("InlineBytes").field(&self.as_bytes()).finish()
    }
}

/// Whether [`MemTable::insert`] keeps a key's older versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// Keep them: a registered snapshot may read them.
    Keep,
    /// Discard them: nothing can read them any more.
    Drop,
}

/// One version of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub seq: SeqNo,
    pub kind: ValueKind,
    /// The stored value (for `PutExpiring`, with its 8-byte expiry header).
    pub value: StoredValue,
}

/// A version's bytes. A short value (a Redis key's metadata with a small
/// string, a hash field, a set member's empty value) sits in the version
/// itself, which sits in its key's record: a point read then copies it out
/// without another cache miss, and a write allocates nothing for it.
///
/// A value changed in place by an edit ([`MemTable::edit`]) keeps spare
/// room, so that a run of appends copies it only as often as a `Vec`
/// doubles.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredValue {
    Inline(InlineBytes<VALUE_INLINE_BYTES>),
    Boxed(Box<[u8]>),
    #[allow(clippy::box_collection)]
    Growable(Box<Vec<u8>>),
}

const _: () = assert!(std::mem::size_of::<StoredValue>() <= 24);

impl From<&[u8]> for StoredValue {
    fn from(v: &[u8]) -> Self {
        match InlineBytes::new(v) {
            Some(inline) => StoredValue::Inline(inline),
            None => StoredValue::Boxed(v.into()),
        }
    }
}

impl std::ops::Deref for StoredValue {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            StoredValue::Inline(b) => b.as_bytes(),
            StoredValue::Boxed(b) => b,
            StoredValue::Growable(v) => v,
        }
    }
}

impl std::fmt::Debug for StoredValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StoredValue").field(&&**self).finish()
    }
}

/// Whether `edit` applies to a key whose newest version is `newest` and
/// whose newest covering range tombstone is at `covered_at` (0: none): a
/// plain put, uncovered, that the edit starts inside and keeps within the
/// value size limit.
fn takes_edit(newest: &Version, covered_at: SeqNo, edit: &Edit<'_>) -> bool {
    newest.kind == ValueKind::Put
        && covered_at < newest.seq
        && edit
            .result_len(newest.value.len())
            .is_some_and(|len| len <= VALUE_SIZE_MAX)
}

/// A user key and one of its versions, copied out of the memtable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub seq: SeqNo,
    pub kind: ValueKind,
    pub value: Vec<u8>,
}

/// A keyspace's memtable. Mutated only by the group-commit leader; frozen
/// (never mutated again) when it is full.
#[derive(Debug)]
pub struct MemTable {
    keys: RefCell<Keys<Versions>>,
    range_dels: RefCell<Vec<RangeTombstone>>,
    size_bytes: Cell<usize>,
    entries: Cell<u64>,
    max_seq: Cell<SeqNo>,
    /// The WAL segment that was current when this memtable was created:
    /// every write it holds is in this segment or a later one.
    first_segment: u64,
    frozen: Cell<bool>,
}

impl MemTable {
    pub fn new(first_segment: u64) -> Self {
        MemTable {
            keys: RefCell::new(Keys::new()),
            range_dels: RefCell::new(Vec::new()),
            size_bytes: Cell::new(0),
            entries: Cell::new(0),
            max_seq: Cell::new(0),
            first_segment,
            frozen: Cell::new(false),
        }
    }

    pub fn first_segment(&self) -> u64 {
        self.first_segment
    }

    pub fn size_bytes(&self) -> usize {
        self.size_bytes.get()
    }

    /// Versions plus range tombstones held.
    pub fn entry_count(&self) -> u64 {
        self.entries.get()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.get() == 0
    }

    pub fn max_seq(&self) -> SeqNo {
        self.max_seq.get()
    }

    pub fn freeze(&self) {
        self.frozen.set(true);
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen.get()
    }

    /// Adds a point version. Sequence numbers for one key arrive in
    /// increasing order (the commit order).
    ///
    /// With [`History::Drop`] the key's older versions are discarded: the
    /// caller knows that no snapshot can read them (none is registered,
    /// and a later one sees this version or newer). A hot key rewritten a
    /// million times then holds one version, not a million.
    pub fn insert(&self, key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8], history: History) {
        assert!(!self.frozen.get(), "insert into a frozen memtable");
        assert!(
            kind != ValueKind::RangeDelete,
            "range deletes go through add_range_delete"
        );
        let mut keys = self.keys.borrow_mut();
        let keys = &mut *keys;
        let version = Version {
            seq,
            kind,
            value: value.into(),
        };
        let at = keys.locate(key);
        match keys.get_mut_at(at, key) {
            Some(versions) => {
                assert!(versions.newest.seq < seq, "memtable versions out of order");
                let previous = std::mem::replace(&mut versions.newest, version);
                match history {
                    History::Keep => versions.older.get_or_insert_with(Box::default).push(previous),
                    History::Drop => {
                        let older = versions.older.take().map_or_else(Vec::new, |older| *older);
                        let dropped = older.into_iter().chain(std::iter::once(previous));
                        let (count, bytes) = dropped.fold((0u64, 0usize), |(n, b), v| {
                            (n + 1, b + key.len() + v.value.len() + ENTRY_OVERHEAD_BYTES)
                        });
                        self.size_bytes.set(self.size_bytes.get() - bytes);
                        self.entries.set(self.entries.get() - count);
                    }
                }
            }
            None => keys.insert_new(
                at,
                key,
                Versions {
                    newest: version,
                    older: None,
                },
            ),
        }
        self.account(key.len() + value.len(), seq);
    }

    /// Whether `edit` can change `key`'s value here: the newest version is
    /// a plain put that no newer range tombstone of this memtable covers,
    /// and the edit fits it (starts inside, ends within the size limit).
    pub fn editable(&self, key: &[u8], edit: &Edit<'_>) -> bool {
        let keys = self.keys.borrow();
        let Some(versions) = keys.get(key) else {
            return false;
        };
        takes_edit(&versions.newest, self.covering_tombstone_seq(key, SeqNo::MAX), edit)
    }

    /// Applies `edit` to `key`'s newest value as version `seq`: in place
    /// (and its old bytes are gone) under [`History::Drop`], as a new
    /// version beside the old one under [`History::Keep`]. False, with
    /// nothing changed, unless [`MemTable::editable`].
    pub fn edit(&self, key: &[u8], seq: SeqNo, edit: &Edit<'_>, history: History) -> bool {
        assert!(!self.frozen.get(), "edit of a frozen memtable");
        // `editable`'s test, on the record found once for the change too.
        let covered_at = self.covering_tombstone_seq(key, SeqNo::MAX);
        let mut keys = self.keys.borrow_mut();
        let at = keys.locate(key);
        let Some(versions) = keys.get_mut_at(at, key) else {
            return false;
        };
        if !takes_edit(&versions.newest, covered_at, edit) {
            return false;
        }
        assert!(versions.newest.seq < seq, "memtable versions out of order");
        let old_len = versions.newest.value.len();
        let mut grown = match std::mem::replace(&mut versions.newest.value, StoredValue::Inline(InlineBytes::EMPTY)) {
            StoredValue::Growable(v) if history == History::Drop => *v,
            other => {
                let mut v = Vec::with_capacity(edit.result_len(old_len).unwrap_or(old_len) * 2);
                v.extend_from_slice(&other);
                if history == History::Keep {
                    let previous = Version {
                        seq: versions.newest.seq,
                        kind: versions.newest.kind,
                        value: other,
                    };
                    versions.older.get_or_insert_with(Box::default).push(previous);
                    self.entries.set(self.entries.get() + 1);
                    self.size_bytes
                        .set(self.size_bytes.get() + key.len() + old_len + ENTRY_OVERHEAD_BYTES);
                }
                v
            }
        };
        let applied = edit.apply(&mut grown);
        assert!(applied, "an editable edit applies");
        let new_len = grown.len();
        versions.newest.seq = seq;
        versions.newest.value = match InlineBytes::new(&grown) {
            Some(inline) => StoredValue::Inline(inline),
            None => StoredValue::Growable(Box::new(grown)),
        };
        // The newest version's bytes were counted at their old length.
        self.size_bytes
            .set((self.size_bytes.get() + new_len).saturating_sub(old_len));
        self.max_seq.set(self.max_seq.get().max(seq));
        true
    }

    /// A delete of `[start, end)` that leaves at most
    /// [`SURVIVORS_MAX`] keys of a large memtable visible: a new memtable
    /// (for the same WAL segments) holding just those keys' versions and
    /// the range tombstones outside the range, so that the caller can set
    /// this one aside instead of carrying and flushing what nobody can
    /// read any more. `None` when the delete leaves more, or the memtable
    /// is too small to be worth it. For callers that know no snapshot
    /// reads older versions (as for [`History::Drop`]).
    pub fn survivors_of_delete(&self, start: &[u8], end: &[u8]) -> Option<MemTable> {
        if self.entries.get() < DISCARD_ENTRIES_MIN {
            return None;
        }
        let keys = self.ordered_keys();
        let outside = || {
            keys.range((Bound::Unbounded, Bound::Excluded(start)))
                .chain(keys.range((Bound::Included(end), Bound::Unbounded)))
        };
        if outside().nth(SURVIVORS_MAX).is_some() {
            return None;
        }
        let kept = MemTable::new(self.first_segment);
        for (key, versions) in outside() {
            let oldest_first: Vec<&Version> = versions.newest_first().collect();
            for v in oldest_first.into_iter().rev() {
                kept.insert(key, v.seq, v.kind, &v.value, History::Keep);
            }
        }
        for t in self.range_dels.borrow().iter() {
            if !(start <= t.start.as_slice() && t.end.as_slice() <= end) {
                kept.add_range_delete(&t.start, &t.end, t.seq);
            }
        }
        Some(kept)
    }

    pub fn add_range_delete(&self, start: &[u8], end: &[u8], seq: SeqNo) {
        assert!(!self.frozen.get(), "range delete into a frozen memtable");
        self.range_dels.borrow_mut().push(RangeTombstone {
            start: start.to_vec(),
            end: end.to_vec(),
            seq,
        });
        self.account(start.len() + end.len(), seq);
    }

    fn account(&self, bytes: usize, seq: SeqNo) {
        self.size_bytes
            .set(self.size_bytes.get() + bytes + ENTRY_OVERHEAD_BYTES);
        self.entries.set(self.entries.get() + 1);
        self.max_seq.set(self.max_seq.get().max(seq));
    }

    /// The newest version of `key` with `seq <= snapshot`.
    pub fn get(&self, key: &[u8], snapshot: SeqNo) -> Option<Version> {
        self.get_with(key, snapshot, Version::clone)
    }

    /// `f` of [`MemTable::get`]'s version, read in place: a point read
    /// copies the value once, into its answer, not first into a clone.
    /// `f` must not reach this memtable (it is borrowed meanwhile).
    pub fn get_with<R>(&self, key: &[u8], snapshot: SeqNo, f: impl FnOnce(&Version) -> R) -> Option<R> {
        let keys = self.keys.borrow();
        let found = keys.get(key)?.newest_first().find(|v| v.seq <= snapshot).map(f);
        found
    }

    /// Starts loading what point reads of `keys` will touch (a hint: no
    /// answer, no effect on what a read finds).
    pub fn prefetch<'k>(&self, keys: impl Iterator<Item = &'k [u8]> + Clone) {
        self.keys.borrow().prefetch(keys);
    }

    /// `f` of the newest version of `key`, if that is a plain put: a peek
    /// for hints, blind to snapshots and range tombstones.
    pub fn peek_newest<R>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let keys = self.keys.borrow();
        let newest = &keys.get(key)?.newest;
        (newest.kind == ValueKind::Put).then(|| f(&newest.value))
    }

    /// The highest sequence number <= `snapshot` of a range tombstone
    /// covering `key`, or 0.
    pub fn covering_tombstone_seq(&self, key: &[u8], snapshot: SeqNo) -> SeqNo {
        self.range_dels
            .borrow()
            .iter()
            .filter(|t| t.seq <= snapshot && t.start.as_slice() <= key && key < t.end.as_slice())
            .map(|t| t.seq)
            .max()
            .unwrap_or(0)
    }

    /// Range tombstones with `seq <= snapshot` that intersect `[lower, upper)`.
    pub fn range_tombstones(&self, snapshot: SeqNo) -> Vec<RangeTombstone> {
        self.range_dels
            .borrow()
            .iter()
            .filter(|t| t.seq <= snapshot)
            .cloned()
            .collect()
    }

    /// Copies out, in key order, up to `max` keys after `after` (and below
    /// `upper`), each with its newest version visible at `snapshot`.
    pub fn visible_after(
        &self,
        after: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        snapshot: SeqNo,
        max: usize,
        out: &mut Vec<Entry>,
    ) {
        let keys = self.ordered_keys();
        for (key, versions) in keys.range((after, upper)) {
            if let Some(v) = versions.newest_first().find(|v| v.seq <= snapshot) {
                out.push(Entry {
                    key: key.to_vec(),
                    seq: v.seq,
                    kind: v.kind,
                    value: v.value.to_vec(),
                });
                if out.len() >= max {
                    return;
                }
            }
        }
    }

    /// Copies out, in internal-key order (key ascending, newest version
    /// first), every version of up to `max_keys` keys after `after`: the
    /// flush stream.
    pub fn all_versions_after(&self, after: Option<&[u8]>, max_keys: usize, out: &mut Vec<Entry>) {
        let keys = self.ordered_keys();
        let lower = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        for (key, versions) in keys.range((lower, Bound::Unbounded)).take(max_keys) {
            for v in versions.newest_first() {
                out.push(Entry {
                    key: key.to_vec(),
                    seq: v.seq,
                    kind: v.kind,
                    value: v.value.to_vec(),
                });
            }
        }
    }

    /// The key index, every key in its ordered index (for range reads).
    fn ordered_keys(&self) -> std::cell::Ref<'_, Keys<Versions>> {
        if !self.keys.borrow().is_sorted() {
            self.keys.borrow_mut().sort();
        }
        self.keys.borrow()
    }

    /// Frees part of a flushed memtable and answers whether anything is
    /// left. Dropping millions of entries at once holds the core for tens
    /// of milliseconds; the flush frees them in steps between yields.
    pub fn release_step(&self) -> bool {
        assert!(self.frozen.get(), "only a frozen memtable is released");
        self.keys.borrow_mut().release_step(RELEASE_STEP_KEYS)
    }

    /// Every range tombstone held.
    pub fn all_range_tombstones(&self) -> Vec<RangeTombstone> {
        self.range_dels.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reads_pick_the_newest_visible_version() {
        let m = MemTable::new(1);
        m.insert(b"a", 1, ValueKind::Put, b"v1", History::Keep);
        m.insert(b"a", 3, ValueKind::Put, b"v3", History::Keep);
        m.insert(b"a", 5, ValueKind::Delete, b"", History::Keep);
        assert_eq!(m.get(b"a", 0), None);
        assert_eq!(&*m.get(b"a", 2).unwrap().value, b"v1");
        assert_eq!(&*m.get(b"a", 4).unwrap().value, b"v3");
        assert_eq!(m.get(b"a", 9).unwrap().kind, ValueKind::Delete);
    }

    #[test]
    fn dropping_history_keeps_only_the_newest_version_and_its_accounting() {
        let m = MemTable::new(1);
        m.insert(b"hot", 1, ValueKind::Put, b"v1", History::Keep);
        let one = m.size_bytes();
        for seq in 2..1000 {
            m.insert(b"hot", seq, ValueKind::Put, b"v2", History::Drop);
        }
        assert_eq!(m.entry_count(), 1);
        assert_eq!(m.size_bytes(), one);
        assert_eq!(&*m.get(b"hot", u64::MAX).unwrap().value, b"v2");
        assert_eq!(m.get(b"hot", 1), None, "the old version is gone");
        let mut out = Vec::new();
        m.all_versions_after(None, 10, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn edits_change_a_plain_put_in_place_or_beside_it_and_nothing_else() {
        use crate::batch::Edit;
        let m = MemTable::new(1);
        m.insert(b"s", 1, ValueKind::Put, b"short", History::Drop);
        assert!(m.edit(b"s", 2, &Edit::append(b" and now longer than inline"), History::Drop));
        assert!(m.edit(b"s", 3, &Edit::overwrite(0, b"SH"), History::Drop));
        assert_eq!(
            &*m.get(b"s", u64::MAX).unwrap().value,
            b"SHort and now longer than inline"
        );
        assert_eq!(m.get(b"s", 2), None, "in place: the older value is gone");
        assert_eq!(m.entry_count(), 1);
        // Under a snapshot the edit is a new version beside the old one.
        assert!(m.edit(b"s", 4, &Edit::append(b"!"), History::Keep));
        assert_eq!(&*m.get(b"s", 3).unwrap().value, b"SHort and now longer than inline");
        assert_eq!(&*m.get(b"s", 4).unwrap().value, b"SHort and now longer than inline!");
        // Nothing to edit: missing, deleted, expiring, covered, or past the end.
        assert!(!m.edit(b"missing", 5, &Edit::append(b"x"), History::Drop));
        m.insert(b"d", 6, ValueKind::Delete, b"", History::Drop);
        assert!(!m.edit(b"d", 7, &Edit::append(b"x"), History::Drop));
        m.insert(b"e", 8, ValueKind::PutExpiring, &[0u8; 9], History::Drop);
        assert!(!m.editable(b"e", &Edit::append(b"x")));
        m.insert(b"r", 9, ValueKind::Put, b"v", History::Drop);
        m.add_range_delete(b"q", b"rz", 10);
        assert!(!m.editable(b"r", &Edit::append(b"x")));
        assert!(!m.edit(b"r", 11, &Edit::append(b"x"), History::Drop));
        assert!(!m.edit(b"s", 12, &Edit::overwrite(100, b"x"), History::Drop));
        assert_eq!(
            &*m.get(b"s", u64::MAX).unwrap().value,
            b"SHort and now longer than inline!"
        );
    }

    #[test]
    fn a_frozen_memtable_is_released_in_steps() {
        let m = MemTable::new(1);
        for i in 0..50_000u32 {
            m.insert(&i.to_be_bytes(), u64::from(i) + 1, ValueKind::Put, b"v", History::Keep);
        }
        m.freeze();
        let mut steps = 0;
        while m.release_step() {
            steps += 1;
        }
        assert!(steps > keys::HASH_PARTITIONS, "{steps} steps");
        assert_eq!(m.get(&7u32.to_be_bytes(), u64::MAX), None);
    }

    #[test]
    fn chunks_resume_after_the_last_key() {
        let m = MemTable::new(1);
        for (i, k) in [b"a", b"b", b"c", b"d"].iter().enumerate() {
            m.insert(*k, i as u64 + 1, ValueKind::Put, b"x", History::Keep);
        }
        let mut out = Vec::new();
        m.visible_after(Bound::Unbounded, Bound::Unbounded, 10, 2, &mut out);
        assert_eq!(
            out.iter().map(|e| e.key.clone()).collect::<Vec<_>>(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        let last = out.last().unwrap().key.clone();
        out.clear();
        m.visible_after(Bound::Excluded(&last), Bound::Excluded(b"d"), 10, 10, &mut out);
        assert_eq!(
            out.iter().map(|e| e.key.clone()).collect::<Vec<_>>(),
            vec![b"c".to_vec()]
        );
        // Snapshot 2 sees only a and b.
        out.clear();
        m.visible_after(Bound::Unbounded, Bound::Unbounded, 2, 10, &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn the_ordered_index_orders_as_the_bytes_do() {
        // Keys around the 16- and 32-byte marks: shorter and longer, with zero
        // bytes where padding would be, equal heads with different tails.
        let mut keys: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 0],
            b"a".to_vec(),
            b"a\0".to_vec(),
            b"a\0\0b".to_vec(),
            b"key:00000000000".to_vec(),
            b"key:000000000000".to_vec(),
            b"key:0000000000000".to_vec(),
            b"key:000000000000\0".to_vec(),
            b"key:0000000000001".to_vec(),
            b"key:0000000000010".to_vec(),
            b"key:00000000000\xff".to_vec(),
            vec![0xff; 17],
            vec![0xff; 16],
            [b"key:00000000000".as_slice(), &[0x10; 17]].concat(),
            [b"key:00000000000".as_slice(), &[0x10; 18]].concat(),
            [b"key:00000000000".as_slice(), &[0x10; 17], &[0]].concat(),
            [b"key:00000000000".as_slice(), &[0x10; 16], &[0x11]].concat(),
            [b"key:00000000000".as_slice(), &[0x10; 16], &[0x0f, 0xff]].concat(),
        ];
        let m = MemTable::new(1);
        for (i, k) in keys.iter().enumerate() {
            m.insert(k, i as u64 + 1, ValueKind::Put, b"", History::Keep);
        }
        let mut out = Vec::new();
        m.visible_after(Bound::Unbounded, Bound::Unbounded, 100, 100, &mut out);
        keys.sort();
        assert_eq!(out.into_iter().map(|e| e.key).collect::<Vec<_>>(), keys);
        let mut out = Vec::new();
        let (lo, hi) = (b"key:000000000000".as_slice(), b"key:0000000000010".as_slice());
        m.visible_after(Bound::Excluded(lo), Bound::Excluded(hi), 100, 100, &mut out);
        let want: Vec<Vec<u8>> = keys
            .iter()
            .filter(|k| k.as_slice() > lo && k.as_slice() < hi)
            .cloned()
            .collect();
        assert_eq!(out.into_iter().map(|e| e.key).collect::<Vec<_>>(), want);
    }

    #[test]
    fn range_tombstones_cover_half_open_ranges() {
        let m = MemTable::new(1);
        m.add_range_delete(b"b", b"d", 7);
        assert_eq!(m.covering_tombstone_seq(b"b", 10), 7);
        assert_eq!(m.covering_tombstone_seq(b"c", 10), 7);
        assert_eq!(m.covering_tombstone_seq(b"d", 10), 0);
        assert_eq!(m.covering_tombstone_seq(b"c", 6), 0);
    }
}
