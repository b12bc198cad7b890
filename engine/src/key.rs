//! Internal keys: the user key followed by an 8-byte trailer holding the
//! sequence number and the entry kind. Every sorted structure in the engine
//! (memtable, SSTable blocks, file bounds) orders internal keys with
//! [`cmp_internal`]: user key ascending, then trailer descending, so the
//! newest version of a key comes first.
//!
//! ```text
//! +----------------------+---------------------------------------+
//! | user key (n bytes)   | trailer: u64 LE = seq << 8 | kind     |
//! +----------------------+---------------------------------------+
//! ```

use std::cmp::Ordering;

/// A sequence number: the commit order of every write in one engine.
pub type SeqNo = u64;

/// The largest sequence number (56 bits: the trailer keeps 8 bits for the kind).
pub const SEQ_MAX: SeqNo = (1 << 56) - 1;

/// Bytes in the trailer of an internal key.
pub const TRAILER_SIZE: usize = 8;

/// Largest user key the engine accepts (bytes).
pub const USER_KEY_SIZE_MAX: usize = 64 * 1024;

/// Largest value the engine accepts (bytes): 512 MiB and room for a
/// caller's header over it (a Redis string may be 512 MiB, and the server
/// stores it after a 9-byte header).
pub const VALUE_SIZE_MAX: usize = 512 * 1024 * 1024 + 4096;

/// What an entry means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ValueKind {
    /// Point tombstone: the key is deleted as of this sequence number.
    Delete = 0,
    /// A value.
    Put = 1,
    /// A value with an absolute expiry time: the stored value is
    /// `expire_at_unix_ms: u64 LE` followed by the user's bytes.
    PutExpiring = 2,
    /// Range tombstone: deletes `[key, value)` for all older versions.
    /// Kept apart from point entries (memtable range list, SSTable
    /// range-delete block), never mixed into data blocks.
    RangeDelete = 3,
}

impl ValueKind {
    /// The kind with the largest tag: used in seek keys so that a seek
    /// lands before every entry of the same sequence number.
    pub const MAX_TAG: u8 = 0xff;

    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(ValueKind::Delete),
            1 => Some(ValueKind::Put),
            2 => Some(ValueKind::PutExpiring),
            3 => Some(ValueKind::RangeDelete),
            _ => None,
        }
    }
}

/// Packs a sequence number and a kind tag into a trailer.
#[inline]
pub fn pack_trailer(seq: SeqNo, tag: u8) -> u64 {
    assert!(seq <= SEQ_MAX, "sequence number {seq} exceeds SEQ_MAX");
    (seq << 8) | u64::from(tag)
}

/// Builds an internal key.
pub fn make_internal_key(user_key: &[u8], seq: SeqNo, kind: ValueKind) -> Vec<u8> {
    let mut k = Vec::with_capacity(user_key.len() + TRAILER_SIZE);
    k.extend_from_slice(user_key);
    k.extend_from_slice(&pack_trailer(seq, kind as u8).to_le_bytes());
    k
}

/// The smallest internal key for `user_key` visible at snapshot `seq`:
/// seeking to it lands on the newest version with sequence number <= `seq`.
pub fn make_seek_key(user_key: &[u8], seq: SeqNo) -> Vec<u8> {
    let mut k = Vec::with_capacity(user_key.len() + TRAILER_SIZE);
    k.extend_from_slice(user_key);
    k.extend_from_slice(&pack_trailer(seq, ValueKind::MAX_TAG).to_le_bytes());
    k
}

/// A borrowed, validated internal key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InternalKey<'a> {
    pub user_key: &'a [u8],
    pub seq: SeqNo,
    /// Raw kind tag; [`ValueKind::from_u8`] of it is `Some` for stored keys
    /// and `MAX_TAG` for seek keys.
    pub tag: u8,
}

impl<'a> InternalKey<'a> {
    /// Splits an encoded internal key; `None` if it is shorter than a trailer.
    #[inline]
    pub fn decode(ikey: &'a [u8]) -> Option<Self> {
        let split = ikey.len().checked_sub(TRAILER_SIZE)?;
        let (user_key, trailer) = ikey.split_at(split);
        let trailer = u64::from_le_bytes(trailer.try_into().ok()?);
        Some(InternalKey {
            user_key,
            seq: trailer >> 8,
            tag: trailer as u8,
        })
    }

    pub fn kind(&self) -> Option<ValueKind> {
        ValueKind::from_u8(self.tag)
    }

    pub fn trailer(&self) -> u64 {
        (self.seq << 8) | u64::from(self.tag)
    }
}

impl std::fmt::Debug for InternalKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?}@{}:{}",
            String::from_utf8_lossy(self.user_key),
            self.seq,
            self.tag
        )
    }
}

/// The user-key part of an encoded internal key.
#[inline]
pub fn user_key(ikey: &[u8]) -> &[u8] {
    assert!(ikey.len() >= TRAILER_SIZE, "internal key shorter than its trailer");
    &ikey[..ikey.len() - TRAILER_SIZE]
}

/// The trailer of an encoded internal key.
#[inline]
pub fn trailer(ikey: &[u8]) -> u64 {
    assert!(ikey.len() >= TRAILER_SIZE, "internal key shorter than its trailer");
    let t: [u8; 8] = ikey[ikey.len() - TRAILER_SIZE..].try_into().expect("8 bytes");
    u64::from_le_bytes(t)
}

/// Orders encoded internal keys: user key ascending, trailer descending.
#[inline]
pub fn cmp_internal(a: &[u8], b: &[u8]) -> Ordering {
    match user_key(a).cmp(user_key(b)) {
        Ordering::Equal => trailer(b).cmp(&trailer(a)),
        o => o,
    }
}

/// A range tombstone: deletes every version of every user key in
/// `[start, end)` whose sequence number is below `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RangeTombstone {
    pub start: Vec<u8>,
    pub end: Vec<u8>,
    pub seq: SeqNo,
}

impl RangeTombstone {
    /// Whether this tombstone deletes version `entry_seq` of `user_key`
    /// for a reader at snapshot `snapshot_seq`.
    #[inline]
    pub fn covers(&self, user_key: &[u8], entry_seq: SeqNo, snapshot_seq: SeqNo) -> bool {
        self.seq <= snapshot_seq
            && entry_seq < self.seq
            && self.start.as_slice() <= user_key
            && user_key < self.end.as_slice()
    }
}

/// Splits a `PutExpiring` stored value into (expire_at_unix_ms, user value).
pub fn split_expiring(stored: &[u8]) -> Option<(u64, &[u8])> {
    let (head, rest) = stored.split_at_checked(8)?;
    Some((u64::from_le_bytes(head.try_into().ok()?), rest))
}

/// Encodes a `PutExpiring` stored value.
pub fn join_expiring(expire_at_unix_ms: u64, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + value.len());
    v.extend_from_slice(&expire_at_unix_ms.to_le_bytes());
    v.extend_from_slice(value);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_versions_sort_first() {
        let a5 = make_internal_key(b"a", 5, ValueKind::Put);
        let a7 = make_internal_key(b"a", 7, ValueKind::Delete);
        let b1 = make_internal_key(b"b", 1, ValueKind::Put);
        assert_eq!(cmp_internal(&a7, &a5), Ordering::Less);
        assert_eq!(cmp_internal(&a5, &b1), Ordering::Less);
        // A shorter user key that is a prefix sorts first regardless of trailer bytes.
        let ab = make_internal_key(b"ab", 1, ValueKind::Put);
        assert_eq!(cmp_internal(&a5, &ab), Ordering::Less);
    }

    #[test]
    fn seek_key_lands_on_visible_version() {
        let s = make_seek_key(b"a", 6);
        assert_eq!(
            cmp_internal(&s, &make_internal_key(b"a", 7, ValueKind::Put)),
            Ordering::Greater
        );
        assert_eq!(
            cmp_internal(&s, &make_internal_key(b"a", 6, ValueKind::Put)),
            Ordering::Less
        );
        assert_eq!(
            cmp_internal(&s, &make_internal_key(b"a", 5, ValueKind::Put)),
            Ordering::Less
        );
    }

    #[test]
    fn decode_round_trip() {
        let k = make_internal_key(b"key", 42, ValueKind::PutExpiring);
        let d = InternalKey::decode(&k).unwrap();
        assert_eq!(d.user_key, b"key");
        assert_eq!(d.seq, 42);
        assert_eq!(d.kind(), Some(ValueKind::PutExpiring));
        assert!(InternalKey::decode(b"short").is_none());
    }
}
