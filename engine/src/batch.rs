//! [`WriteBatch`]: the unit of atomic writes. Every operation in a batch
//! commits together (one WAL record, consecutive sequence numbers) or not at
//! all.
//!
//! A batch keeps its operations already encoded in one `Vec<u8>`, in the
//! exact form the WAL stores, so logging a batch is a single memcpy and
//! replaying one is a validation pass plus a copy:
//!
//! ```text
//! op := kind: u8 | keyspace: varint (u32) | key_len: varint | key | value_len: varint | value
//! ```
//!
//! `kind` is a [`ValueKind`] tag, or [`EDIT_TAG`] for an [`Edit`]. For
//! `Delete` the value is empty; for
//! `PutExpiring` the value is the stored form `expire_at_unix_ms: u64 LE ++
//! user value` ([`key::join_expiring`]); for `RangeDelete` the key is the
//! inclusive start and the value the exclusive end; for an edit the value
//! is `varint(at << 1 | from_end) | varint(remove) | insert`.
//!
//! An edit changes part of a key's value (appends, or overwrites a range)
//! and is logged as just that change. It applies only to a value that
//! sits in the active memtable ([`crate::Engine::try_write_now`] checks,
//! and changes it in place there), so a WAL replay always finds the value
//! it edits among the records it replays before it.
//!
//! **Validation happens at insertion.** The mutators return
//! `Result<()>` and reject, with [`Error::InvalidArgument`], keys longer
//! than [`USER_KEY_SIZE_MAX`], values longer than [`VALUE_SIZE_MAX`], empty
//! or inverted ranges, and batches that would grow past
//! [`BATCH_BYTES_MAX`]. A `WriteBatch` is therefore valid by construction,
//! and [`WriteBatch::decode`] applies the same rules to bytes read back from
//! disk, so the rest of the engine never re-checks a batch.

use crate::coding::{put_varint, Reader};
use crate::key::{self, ValueKind, USER_KEY_SIZE_MAX, VALUE_SIZE_MAX};
use crate::{Error, Result};

/// Identifies a keyspace inside one engine; all keyspaces share one WAL.
pub type KeyspaceId = u32;

/// Largest encoded size (bytes) of one batch. Keeps a WAL record's payload
/// far below the `u32` length field of its frame.
pub const BATCH_BYTES_MAX: usize = 1 << 30;

/// Largest number of operations in one batch (the WAL stores it as a `u32`).
pub const BATCH_OPS_MAX: usize = u32::MAX as usize;

/// Stored `PutExpiring` values carry an 8-byte expiry before the user's bytes.
const EXPIRY_SIZE: usize = 8;

const _: () = assert!(BATCH_BYTES_MAX < u32::MAX as usize / 2);
const _: () = assert!(VALUE_SIZE_MAX + USER_KEY_SIZE_MAX + 64 < BATCH_BYTES_MAX);

/// The batch tag of an [`Edit`]; never stored in a memtable or table.
pub const EDIT_TAG: u8 = 0x10;

/// What one operation of a batch does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Stores an entry of this kind.
    Value(ValueKind),
    /// Changes part of the key's current value ([`BatchOp::edit`]).
    Edit,
}

/// One operation of a batch, borrowed from its encoded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOp<'a> {
    pub keyspace: KeyspaceId,
    pub kind: OpKind,
    /// The user key; for `RangeDelete`, the inclusive start.
    pub key: &'a [u8],
    /// The stored value: empty for `Delete`, `expire_at ++ value` for
    /// `PutExpiring`, the exclusive end for `RangeDelete`, the encoded
    /// change for an edit.
    pub value: &'a [u8],
}

impl<'a> BatchOp<'a> {
    /// For `PutExpiring`, the expiry time (Unix ms) and the user's value.
    pub fn split_expiring(&self) -> Option<(u64, &'a [u8])> {
        match self.kind {
            OpKind::Value(ValueKind::PutExpiring) => key::split_expiring(self.value),
            _ => None,
        }
    }

    /// Whether this op writes `key` of keyspace `ks`: a point op on it,
    /// or a range delete holding it.
    pub fn writes(&self, ks: KeyspaceId, key: &[u8]) -> bool {
        self.keyspace == ks
            && match self.kind {
                OpKind::Value(ValueKind::RangeDelete) => self.key <= key && key < self.value,
                _ => self.key == key,
            }
    }

    /// For an edit, the change.
    pub fn edit(&self) -> Option<Edit<'a>> {
        match self.kind {
            // Validated when the op was added or decoded.
            OpKind::Edit => Some(Edit::decode(self.value).expect("edit validated")),
            OpKind::Value(_) => None,
        }
    }
}

/// A change to part of a value: the `remove` bytes at offset `at`
/// (counted back from the end when `from_end`) are replaced by `insert`.
/// An append is `at` 0 from the end, removing nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edit<'a> {
    pub at: usize,
    pub from_end: bool,
    pub remove: usize,
    pub insert: &'a [u8],
}

impl<'a> Edit<'a> {
    /// Appends `bytes`.
    pub fn append(bytes: &'a [u8]) -> Self {
        Edit {
            at: 0,
            from_end: true,
            remove: 0,
            insert: bytes,
        }
    }

    /// Overwrites `bytes.len()` bytes at `offset`, growing the value when
    /// they pass its end.
    pub fn overwrite(offset: usize, bytes: &'a [u8]) -> Self {
        Edit {
            at: offset,
            from_end: false,
            remove: bytes.len(),
            insert: bytes,
        }
    }

    /// The bytes of a value `len` long that the edit replaces (clamped to
    /// the end, so an overwrite may grow the value); `None` if it starts
    /// past the end.
    pub fn range(&self, len: usize) -> Option<std::ops::Range<usize>> {
        let start = if self.from_end {
            len.checked_sub(self.at)?
        } else {
            self.at
        };
        if start > len {
            return None;
        }
        Some(start..start.saturating_add(self.remove).min(len))
    }

    /// The length of a value `len` long after the edit.
    pub fn result_len(&self, len: usize) -> Option<usize> {
        let r = self.range(len)?;
        Some(len - r.len() + self.insert.len())
    }

    /// Applies the edit to `value`; false (and `value` unchanged) if it
    /// does not fit.
    pub fn apply(&self, value: &mut Vec<u8>) -> bool {
        match self.range(value.len()) {
            Some(r) => {
                value.splice(r, self.insert.iter().copied());
                true
            }
            None => false,
        }
    }

    fn decode(bytes: &'a [u8]) -> Option<Self> {
        let mut r = Reader::new(bytes);
        let at = r.varint()?;
        let remove = r.varint_len(VALUE_SIZE_MAX)?;
        let at_len = usize::try_from(at >> 1).ok().filter(|&a| a <= VALUE_SIZE_MAX)?;
        let insert = r.bytes(r.remaining())?;
        Some(Edit {
            at: at_len,
            from_end: at & 1 == 1,
            remove,
            insert,
        })
    }
}

/// An ordered set of writes applied atomically. Later operations on the
/// same key win (each operation gets its own, higher sequence number).
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    rep: Vec<u8>,
    count: usize,
    /// How many of the operations are edits.
    edits: usize,
    /// The keyspaces the operations write to, as far as the write path
    /// needs to know: nearly every batch writes one, which it then checks
    /// once instead of once per operation.
    keyspaces: Keyspaces,
    /// The engine's memtable epoch at which every edit of the batch was
    /// found to apply ([`crate::Engine::edit_into`]); `None` once an edit
    /// came in unchecked. While the epoch holds, they still apply.
    pub(crate) edits_checked: Option<u64>,
}

/// Batches are equal when their operations are: how their edits were
/// checked is not part of them.
impl PartialEq for WriteBatch {
    fn eq(&self, other: &Self) -> bool {
        self.rep == other.rep && self.count == other.count
    }
}

impl Eq for WriteBatch {}

/// The keyspaces of a batch's operations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Keyspaces {
    #[default]
    None,
    One(KeyspaceId),
    Several,
}

impl Keyspaces {
    fn add(&mut self, ks: KeyspaceId) {
        *self = match *self {
            Keyspaces::None => Keyspaces::One(ks),
            Keyspaces::One(k) if k == ks => Keyspaces::One(k),
            _ => Keyspaces::Several,
        };
    }

    fn merge(&mut self, other: Keyspaces) {
        match other {
            Keyspaces::None => {}
            Keyspaces::One(ks) => self.add(ks),
            Keyspaces::Several => *self = Keyspaces::Several,
        }
    }
}

/// Bytes a batch reserves at its first operation: a Redis command's
/// writes (a key's metadata and an element or two) fit, so the buffer is
/// allocated once instead of growing through several reallocations.
const FIRST_RESERVE_BYTES: usize = 256;

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// A batch whose encoding buffer can hold `bytes` without reallocating.
    pub fn with_capacity(bytes: usize) -> Self {
        WriteBatch {
            rep: Vec::with_capacity(bytes),
            count: 0,
            edits: 0,
            keyspaces: Keyspaces::None,
            edits_checked: None,
        }
    }

    /// Sets `key` to `value` in keyspace `ks`.
    pub fn put(&mut self, ks: KeyspaceId, key: &[u8], value: &[u8]) -> Result<()> {
        check_key(key)?;
        check_value(value)?;
        self.push(ValueKind::Put, ks, key, &[], value)
    }

    /// Sets `key` to the concatenation of `head` and `value`, without the
    /// caller building it first (a record header before a large value).
    pub fn put_parts(&mut self, ks: KeyspaceId, key: &[u8], head: &[u8], value: &[u8]) -> Result<()> {
        check_key(key)?;
        check_value_len(head.len() + value.len())?;
        self.push(ValueKind::Put, ks, key, head, value)
    }

    /// Sets `key` to `value`, readable until `expire_at_unix_ms` (exclusive).
    pub fn put_expiring(&mut self, ks: KeyspaceId, key: &[u8], value: &[u8], expire_at_unix_ms: u64) -> Result<()> {
        check_key(key)?;
        check_value(value)?;
        self.push(ValueKind::PutExpiring, ks, key, &expire_at_unix_ms.to_le_bytes(), value)
    }

    /// Deletes `key`.
    pub fn delete(&mut self, ks: KeyspaceId, key: &[u8]) -> Result<()> {
        check_key(key)?;
        self.push(ValueKind::Delete, ks, key, &[], &[])
    }

    /// Deletes every key in `[start, end)`. The range must be non-empty
    /// (`start < end`); an empty one is rejected rather than stored as a
    /// tombstone that covers nothing.
    pub fn delete_range(&mut self, ks: KeyspaceId, start: &[u8], end: &[u8]) -> Result<()> {
        check_key(start)?;
        check_key(end)?;
        if start >= end {
            return Err(Error::InvalidArgument(format!(
                "empty delete range: start {:?} is not below end {:?}",
                String::from_utf8_lossy(start),
                String::from_utf8_lossy(end)
            )));
        }
        self.push(ValueKind::RangeDelete, ks, start, &[], end)
    }

    /// Changes part of `key`'s current value (see [`Edit`]). The value
    /// must be in the active memtable when the batch is written:
    /// [`crate::Engine::try_write_now`] declines the batch otherwise, and
    /// [`crate::Engine::write`] refuses edits.
    pub fn edit(&mut self, ks: KeyspaceId, key: &[u8], edit: Edit<'_>) -> Result<()> {
        check_key(key)?;
        check_value_len(edit.insert.len())?;
        if edit.at > VALUE_SIZE_MAX || edit.remove > VALUE_SIZE_MAX {
            return Err(Error::InvalidArgument(format!(
                "edit at {} removing {} bytes is past the value size limit of {VALUE_SIZE_MAX}",
                edit.at, edit.remove
            )));
        }
        let mut head = Vec::with_capacity(20);
        put_varint(&mut head, (edit.at as u64) << 1 | u64::from(edit.from_end));
        put_varint(&mut head, edit.remove as u64);
        self.push_tagged(EDIT_TAG, ks, key, &head, edit.insert)?;
        self.edits += 1;
        self.edits_checked = None;
        Ok(())
    }

    /// Appends a copy of `op` (from this or another batch).
    pub fn push_op(&mut self, op: &BatchOp<'_>) -> Result<()> {
        let tag = match op.kind {
            OpKind::Value(kind) => kind as u8,
            OpKind::Edit => EDIT_TAG,
        };
        self.push_tagged(tag, op.keyspace, op.key, &[], op.value)?;
        if op.kind == OpKind::Edit {
            self.edits += 1;
            self.edits_checked = None;
        }
        Ok(())
    }

    /// Edits among the operations.
    pub fn edit_count(&self) -> usize {
        self.edits
    }

    /// Appends every operation of `other`, in order.
    pub fn extend(&mut self, other: &WriteBatch) -> Result<()> {
        self.check_room(other.rep.len(), other.count)?;
        self.rep.extend_from_slice(&other.rep);
        self.count += other.count;
        if other.edits > 0 {
            self.edits += other.edits;
            self.edits_checked = None;
        }
        self.keyspaces.merge(other.keyspaces);
        Ok(())
    }

    /// Number of operations (each consumes one sequence number).
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of the encoded operations: what the batch adds to a WAL record.
    pub fn encoded_size(&self) -> usize {
        self.rep.len()
    }

    /// The encoded operations (see the module docs for the layout).
    pub fn as_bytes(&self) -> &[u8] {
        &self.rep
    }

    /// Removes every operation, keeping the buffer.
    pub fn clear(&mut self) {
        self.rep.clear();
        self.count = 0;
        self.edits = 0;
        self.keyspaces = Keyspaces::None;
        self.edits_checked = None;
    }

    /// The keyspace every operation writes to, when there is exactly one
    /// (`None` for an empty batch or one that writes several).
    pub fn single_keyspace(&self) -> Option<KeyspaceId> {
        match self.keyspaces {
            Keyspaces::One(ks) => Some(ks),
            _ => None,
        }
    }

    /// Bytes the buffer holds without reallocating.
    pub fn capacity(&self) -> usize {
        self.rep.capacity()
    }

    /// The operations in insertion order.
    pub fn iter(&self) -> BatchIter<'_> {
        BatchIter {
            reader: Reader::new(&self.rep),
            left: self.count,
        }
    }

    /// Parses and fully validates encoded operations (as produced by
    /// [`as_bytes`](Self::as_bytes)); `None` if anything is malformed: an
    /// unknown kind, a keyspace id over `u32`, a length past the input or
    /// over its limit, a non-empty delete value, a short expiring value, an
    /// empty range, or trailing bytes.
    pub fn decode(bytes: &[u8]) -> Option<WriteBatch> {
        if bytes.len() > BATCH_BYTES_MAX {
            return None;
        }
        let mut r = Reader::new(bytes);
        let mut count = 0usize;
        let mut keyspaces = Keyspaces::None;
        let mut edits = 0;
        while !r.is_empty() {
            let op = decode_op(&mut r)?;
            keyspaces.add(op.keyspace);
            edits += usize::from(op.kind == OpKind::Edit);
            count += 1;
        }
        if count > BATCH_OPS_MAX {
            return None;
        }
        Some(WriteBatch {
            rep: bytes.to_vec(),
            count,
            edits,
            keyspaces,
            edits_checked: None,
        })
    }

    fn check_room(&self, extra_bytes: usize, extra_ops: usize) -> Result<()> {
        let bytes = self.rep.len() + extra_bytes;
        if bytes > BATCH_BYTES_MAX {
            return Err(Error::InvalidArgument(format!(
                "write batch would be {bytes} bytes encoded; the limit is {BATCH_BYTES_MAX}"
            )));
        }
        if self.count + extra_ops > BATCH_OPS_MAX {
            return Err(Error::InvalidArgument(format!(
                "write batch would hold more than {BATCH_OPS_MAX} operations"
            )));
        }
        Ok(())
    }

    /// Appends one op whose value is `value_head ++ value` (the head is the
    /// expiry of `PutExpiring`, empty otherwise).
    fn push(&mut self, kind: ValueKind, ks: KeyspaceId, key: &[u8], value_head: &[u8], value: &[u8]) -> Result<()> {
        self.push_tagged(kind as u8, ks, key, value_head, value)
    }

    fn push_tagged(&mut self, tag: u8, ks: KeyspaceId, key: &[u8], value_head: &[u8], value: &[u8]) -> Result<()> {
        let value_len = value_head.len() + value.len();
        // kind + three varints of at most 10 bytes each.
        let size_max = 1 + 30 + key.len() + value_len;
        self.check_room(size_max, 1)?;
        if self.rep.capacity() == 0 {
            self.rep.reserve(size_max.max(FIRST_RESERVE_BYTES));
        }
        let start = self.rep.len();
        self.rep.push(tag);
        put_varint(&mut self.rep, u64::from(ks));
        put_varint(&mut self.rep, key.len() as u64);
        self.rep.extend_from_slice(key);
        put_varint(&mut self.rep, value_len as u64);
        self.rep.extend_from_slice(value_head);
        self.rep.extend_from_slice(value);
        self.count += 1;
        self.keyspaces.add(ks);
        assert!(self.rep.len() - start <= size_max);
        Ok(())
    }
}

impl<'a> IntoIterator for &'a WriteBatch {
    type Item = BatchOp<'a>;
    type IntoIter = BatchIter<'a>;

    fn into_iter(self) -> BatchIter<'a> {
        self.iter()
    }
}

/// Iterator over the operations of a [`WriteBatch`].
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    reader: Reader<'a>,
    left: usize,
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = BatchOp<'a>;

    fn next(&mut self) -> Option<BatchOp<'a>> {
        if self.reader.is_empty() {
            assert_eq!(self.left, 0, "write batch holds fewer ops than counted");
            return None;
        }
        // A WriteBatch is valid by construction (mutators and `decode` check
        // every op), so a failure here is a broken invariant.
        let op = decode_op(&mut self.reader).expect("write batch encoding is invalid");
        self.left -= 1;
        Some(op)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for BatchIter<'_> {}

fn check_key(key: &[u8]) -> Result<()> {
    if key.len() > USER_KEY_SIZE_MAX {
        return Err(Error::InvalidArgument(format!(
            "key of {} bytes exceeds the limit of {USER_KEY_SIZE_MAX}",
            key.len()
        )));
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<()> {
    check_value_len(value.len())
}

fn check_value_len(len: usize) -> Result<()> {
    if len > VALUE_SIZE_MAX {
        return Err(Error::InvalidArgument(format!(
            "value of {len} bytes exceeds the limit of {VALUE_SIZE_MAX}"
        )));
    }
    Ok(())
}

/// Parses one op, applying every rule the mutators enforce.
fn decode_op<'a>(r: &mut Reader<'a>) -> Option<BatchOp<'a>> {
    let tag = r.u8()?;
    let kind = if tag == EDIT_TAG {
        OpKind::Edit
    } else {
        OpKind::Value(ValueKind::from_u8(tag)?)
    };
    let keyspace = u32::try_from(r.varint()?).ok()?;
    let key_len = r.varint_len(USER_KEY_SIZE_MAX)?;
    let key = r.bytes(key_len)?;
    let value_max = match kind {
        OpKind::Value(ValueKind::Put) => VALUE_SIZE_MAX,
        OpKind::Value(ValueKind::PutExpiring) => VALUE_SIZE_MAX + EXPIRY_SIZE,
        OpKind::Value(ValueKind::Delete) => 0,
        OpKind::Value(ValueKind::RangeDelete) => USER_KEY_SIZE_MAX,
        // Two varints of at most 10 bytes before the inserted bytes.
        OpKind::Edit => VALUE_SIZE_MAX + 20,
    };
    let value_len = r.varint_len(value_max)?;
    let value = r.bytes(value_len)?;
    match kind {
        OpKind::Value(ValueKind::PutExpiring) if value.len() < EXPIRY_SIZE => return None,
        OpKind::Value(ValueKind::RangeDelete) if key >= value => return None,
        OpKind::Edit if Edit::decode(value).is_none_or(|e| e.insert.len() > VALUE_SIZE_MAX) => return None,
        _ => {}
    }
    Some(BatchOp {
        keyspace,
        kind,
        key,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::mem::SplitMix64;

    fn sample() -> WriteBatch {
        let mut b = WriteBatch::new();
        b.put(0, b"a", b"1").unwrap();
        b.put_expiring(7, b"b", b"22", 1_700_000_000_000).unwrap();
        b.delete(300, b"c").unwrap();
        b.delete_range(u32::MAX, b"d", b"f").unwrap();
        b.put(1, b"", b"").unwrap();
        b
    }

    #[test]
    fn ops_round_trip_in_order() {
        let b = sample();
        assert_eq!(b.len(), 5);
        assert!(!b.is_empty());
        let ops: Vec<BatchOp<'_>> = b.iter().collect();
        assert_eq!(ops.len(), 5);
        assert_eq!(
            (ops[0].keyspace, ops[0].kind, ops[0].key, ops[0].value),
            (0, OpKind::Value(ValueKind::Put), &b"a"[..], &b"1"[..])
        );
        assert_eq!(ops[1].kind, OpKind::Value(ValueKind::PutExpiring));
        assert_eq!(ops[1].value, key::join_expiring(1_700_000_000_000, b"22").as_slice());
        assert_eq!(ops[1].split_expiring(), Some((1_700_000_000_000, &b"22"[..])));
        assert_eq!(
            (ops[2].keyspace, ops[2].kind, ops[2].key, ops[2].value),
            (300, OpKind::Value(ValueKind::Delete), &b"c"[..], &b""[..])
        );
        assert_eq!(
            (ops[3].keyspace, ops[3].kind, ops[3].key, ops[3].value),
            (u32::MAX, OpKind::Value(ValueKind::RangeDelete), &b"d"[..], &b"f"[..])
        );
        assert_eq!((ops[4].key, ops[4].value), (&b""[..], &b""[..]));

        let decoded = WriteBatch::decode(b.as_bytes()).unwrap();
        assert_eq!(decoded, b);
        assert_eq!(decoded.encoded_size(), b.encoded_size());
    }

    #[test]
    fn extend_and_clear() {
        let mut a = sample();
        let b = sample();
        a.extend(&b).unwrap();
        assert_eq!(a.len(), 10);
        assert_eq!(a.iter().count(), 10);
        a.clear();
        assert!(a.is_empty());
        assert_eq!(a.encoded_size(), 0);
        assert_eq!(WriteBatch::decode(&[]).unwrap(), WriteBatch::new());
    }

    #[test]
    fn edits_round_trip_and_apply_as_documented() {
        let mut b = WriteBatch::new();
        b.put(1, b"k", b"hello").unwrap();
        b.edit(1, b"k", Edit::append(b" world")).unwrap();
        b.edit(1, b"k", Edit::overwrite(1, b"EL")).unwrap();
        b.edit(
            1,
            b"k",
            Edit {
                at: 3,
                from_end: true,
                remove: 3,
                insert: b"",
            },
        )
        .unwrap();
        assert_eq!(b.edit_count(), 3);
        let decoded = WriteBatch::decode(b.as_bytes()).unwrap();
        assert_eq!(decoded, b);
        let mut copy = WriteBatch::new();
        for op in decoded.iter() {
            copy.push_op(&op).unwrap();
        }
        assert_eq!(copy, b);
        let mut value = Vec::new();
        for op in b.iter() {
            match op.edit() {
                Some(e) => assert!(e.apply(&mut value)),
                None => value = op.value.to_vec(),
            }
        }
        assert_eq!(value, b"hELlo wo");
        // An overwrite past the end grows the value; one starting past it
        // does not fit.
        let mut v = b"abc".to_vec();
        assert!(Edit::overwrite(2, b"XYZ").apply(&mut v));
        assert_eq!(v, b"abXYZ");
        assert!(!Edit::overwrite(6, b"Q").apply(&mut v));
        assert_eq!(Edit::overwrite(6, b"Q").result_len(5), None);
        assert_eq!(Edit::append(b"12").result_len(5), Some(7));
        // A malformed edit value is refused when decoding.
        let mut bad = WriteBatch::new();
        bad.edit(1, b"k", Edit::append(b"x")).unwrap();
        let mut bytes = bad.as_bytes().to_vec();
        let n = bytes.len();
        bytes[n - 4] = 0x80; // the value length varint never ends
        bytes.truncate(n - 1);
        assert!(WriteBatch::decode(&bytes).is_none());
    }

    #[test]
    fn single_keyspace_follows_every_way_ops_arrive() {
        let mut b = WriteBatch::new();
        assert_eq!(b.single_keyspace(), None);
        b.put(3, b"a", b"1").unwrap();
        b.delete(3, b"b").unwrap();
        assert_eq!(b.single_keyspace(), Some(3));
        assert_eq!(WriteBatch::decode(b.as_bytes()).unwrap().single_keyspace(), Some(3));
        let mut other = WriteBatch::new();
        other.put(4, b"a", b"1").unwrap();
        let mut merged = b.clone();
        merged.extend(&other).unwrap();
        assert_eq!(merged.single_keyspace(), None);
        assert_eq!(WriteBatch::decode(merged.as_bytes()).unwrap().single_keyspace(), None);
        b.delete_range(5, b"a", b"b").unwrap();
        assert_eq!(b.single_keyspace(), None);
        b.clear();
        assert_eq!(b.single_keyspace(), None);
        assert!(b.capacity() > 0, "clear keeps the buffer");
        b.put(4, b"a", b"1").unwrap();
        assert_eq!(b.single_keyspace(), Some(4));
    }

    #[test]
    fn limits_are_enforced() {
        let mut b = WriteBatch::new();
        let big_key = vec![0u8; USER_KEY_SIZE_MAX + 1];
        assert!(matches!(b.put(0, &big_key, b"v"), Err(Error::InvalidArgument(_))));
        assert!(matches!(b.delete(0, &big_key), Err(Error::InvalidArgument(_))));
        assert!(matches!(
            b.delete_range(0, b"a", &big_key),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(b.delete_range(0, b"b", b"a"), Err(Error::InvalidArgument(_))));
        assert!(matches!(b.delete_range(0, b"a", b"a"), Err(Error::InvalidArgument(_))));
        assert!(b.is_empty(), "rejected ops must leave no trace");
        let max_key = vec![1u8; USER_KEY_SIZE_MAX];
        b.put(0, &max_key, b"v").unwrap();
        assert_eq!(
            WriteBatch::decode(b.as_bytes()).unwrap().iter().next().unwrap().key,
            max_key.as_slice()
        );
    }

    #[test]
    fn decode_rejects_malformed_ops() {
        // Unknown kind.
        assert!(WriteBatch::decode(&[9, 0, 0, 0]).is_none());
        // Delete with a value.
        assert!(WriteBatch::decode(&[ValueKind::Delete as u8, 0, 1, b'k', 1, b'v']).is_none());
        // Expiring value shorter than its expiry.
        assert!(WriteBatch::decode(&[ValueKind::PutExpiring as u8, 0, 1, b'k', 2, 0, 0]).is_none());
        // Inverted range.
        assert!(WriteBatch::decode(&[ValueKind::RangeDelete as u8, 0, 1, b'z', 1, b'a']).is_none());
        // Keyspace id over u32.
        let mut over = vec![ValueKind::Put as u8];
        put_varint(&mut over, u64::from(u32::MAX) + 1);
        over.extend_from_slice(&[0, 0]);
        assert!(WriteBatch::decode(&over).is_none());
        // Truncated and trailing bytes.
        let b = sample();
        let bytes = b.as_bytes();
        assert!(WriteBatch::decode(&bytes[..bytes.len() - 1]).is_none());
        let mut longer = bytes.to_vec();
        longer.push(ValueKind::Put as u8);
        assert!(WriteBatch::decode(&longer).is_none());
    }

    #[test]
    fn decode_never_panics_on_random_bytes() {
        let mut rng = SplitMix64::new(42);
        let base = sample();
        for i in 0..20_000 {
            let bytes: Vec<u8> = if i % 2 == 0 {
                let len = (rng.next_u64() % 64) as usize;
                (0..len).map(|_| rng.next_u64() as u8).collect()
            } else {
                let mut v = base.as_bytes().to_vec();
                let at = (rng.next_u64() as usize) % v.len();
                v[at] ^= 1 << (rng.next_u64() % 8);
                v
            };
            if let Some(b) = WriteBatch::decode(&bytes) {
                // Whatever decodes must iterate cleanly and re-encode identically.
                assert_eq!(b.iter().count(), b.len());
                assert_eq!(b.as_bytes(), bytes.as_slice());
            }
        }
    }
}
