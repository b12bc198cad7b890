//! How Redis keys and values are laid out in the engine's key space.
//!
//! One engine keyspace holds everything of a shard; the first byte says
//! what a record is:
//!
//! ```text
//! 'm' key                                  -> Meta (type, expiry, and the value
//!                                             of a string or the generation and
//!                                             size of a collection)
//! 'd' u32be(len(key)) key u64be(version) tag rest -> a collection element
//!     tag 'h' field                        -> hash value
//!     tag 's' member                       -> "" (set member)
//!     tag 'z' member                       -> f64 score, 8 bytes BE bits
//!     tag 'r' sortable(score) member       -> "" (sorted-set score order)
//!     tag 'l' u64be(chunk ^ 1<<63)         -> list elements at indexes
//!                                             chunk*32 .. chunk*32+32 that are
//!                                             in the list, each varint(len) bytes
//! 'x' u64be(expire_at_ms) key              -> "" (the active-expiry index)
//! 'V'                                      -> u64 LE: versions reserved so far
//! ```
//!
//! Everything from 'V' through 'x' is the Redis data, so that FLUSHDB
//! deletes it with one range tombstone (and puts 'V' back); nothing else
//! may use a prefix in between.
//!
//! A collection's elements carry its generation (`version`), unique on
//! the shard for all time: deleting or replacing a collection writes a new
//! meta (or none) and range-deletes the old generation's elements in the
//! same batch, so no reader can ever reach a stale element.
//!
//! Meta value: `kind u8 | expire_at_ms u64 LE (0 = none) | body`, where
//! body is the string's bytes, `version u64 LE | count u64 LE` for hashes,
//! sets and sorted sets, and `version u64 LE | head i64 LE | tail i64 LE`
//! for lists (elements at indexes head..tail).

/// The Redis type of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String = 0,
    Hash = 1,
    List = 2,
    Set = 3,
    ZSet = 4,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            0 => Kind::String,
            1 => Kind::Hash,
            2 => Kind::List,
            3 => Kind::Set,
            4 => Kind::ZSet,
            _ => return None,
        })
    }

    /// The name TYPE answers.
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Hash => "hash",
            Kind::List => "list",
            Kind::Set => "set",
            Kind::ZSet => "zset",
        }
    }
}

pub const META_PREFIX: u8 = b'm';
pub const DATA_PREFIX: u8 = b'd';
pub const EXPIRE_PREFIX: u8 = b'x';
pub const VERSION_KEY: &[u8] = b"V";

pub const TAG_HASH: u8 = b'h';
pub const TAG_SET: u8 = b's';
pub const TAG_ZMEMBER: u8 = b'z';
pub const TAG_ZSCORE: u8 = b'r';
pub const TAG_LIST: u8 = b'l';

const META_HEADER_BYTES: usize = 9;

/// A key's metadata (and a string's value).
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    pub kind: Kind,
    /// Unix ms; 0 = no expiry.
    pub expire_at_ms: u64,
    /// Collections: the generation of their elements.
    pub version: u64,
    /// Hashes, sets, sorted sets: element count.
    pub count: u64,
    /// Lists: index of the first element.
    pub head: i64,
    /// Lists: one past the last element.
    pub tail: i64,
    /// Strings: the value.
    pub value: Vec<u8>,
}

impl Meta {
    pub fn string(value: Vec<u8>) -> Meta {
        Meta {
            kind: Kind::String,
            expire_at_ms: 0,
            version: 0,
            count: 0,
            head: 0,
            tail: 0,
            value,
        }
    }

    pub fn collection(kind: Kind, version: u64) -> Meta {
        assert!(kind != Kind::String);
        Meta {
            kind,
            expire_at_ms: 0,
            version,
            count: 0,
            head: 0,
            tail: 0,
            value: Vec::new(),
        }
    }

    /// Elements in a collection (list length for lists).
    pub fn len(&self) -> u64 {
        match self.kind {
            Kind::String => self.value.len() as u64,
            Kind::List => (self.tail - self.head) as u64,
            _ => self.count,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at_ms != 0 && self.expire_at_ms <= now_ms
    }

    /// The kind and expiry every meta value starts with, encoded; a
    /// string's bytes follow it.
    pub fn header(&self) -> [u8; META_HEADER_BYTES] {
        let mut h = [0u8; META_HEADER_BYTES];
        h[0] = self.kind as u8;
        h[1..].copy_from_slice(&self.expire_at_ms.to_le_bytes());
        h
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(META_HEADER_BYTES + 24 + self.value.len());
        out.extend_from_slice(&self.header());
        match self.kind {
            Kind::String => out.extend_from_slice(&self.value),
            Kind::List => {
                assert!(self.head <= self.tail, "list head past tail");
                out.extend_from_slice(&self.version.to_le_bytes());
                out.extend_from_slice(&self.head.to_le_bytes());
                out.extend_from_slice(&self.tail.to_le_bytes());
            }
            _ => {
                out.extend_from_slice(&self.version.to_le_bytes());
                out.extend_from_slice(&self.count.to_le_bytes());
            }
        }
        out
    }

    /// Decodes a meta value; `None` if it is malformed.
    /// [`Meta::decode`] of an owned value: a string's bytes are kept in
    /// place, not copied.
    pub fn decode_owned(mut bytes: Vec<u8>) -> Option<Meta> {
        let (kind, expire_at_ms) = Self::decode_header(&bytes)?;
        if kind != Kind::String {
            return Meta::decode(&bytes);
        }
        bytes.drain(..META_HEADER_BYTES);
        let mut m = Meta::string(bytes);
        m.expire_at_ms = expire_at_ms;
        Some(m)
    }

    /// The kind and expiry every meta value starts with.
    fn decode_header(bytes: &[u8]) -> Option<(Kind, u64)> {
        let kind = Kind::from_u8(*bytes.first()?)?;
        let expire_at_ms = u64::from_le_bytes(bytes.get(1..META_HEADER_BYTES)?.try_into().ok()?);
        Some((kind, expire_at_ms))
    }

    /// The expiry and length of the string a meta value holds, read
    /// without copying it; `None` for another kind (or a malformed value).
    pub fn peek_string(bytes: &[u8]) -> Option<(u64, usize)> {
        match Self::decode_header(bytes)? {
            (Kind::String, expire_at_ms) => Some((expire_at_ms, bytes.len() - META_HEADER_BYTES)),
            _ => None,
        }
    }

    /// Where a string's bytes begin in its meta value.
    pub const STRING_OFFSET: usize = META_HEADER_BYTES;

    pub fn decode(bytes: &[u8]) -> Option<Meta> {
        let (kind, expire_at_ms) = Self::decode_header(bytes)?;
        let body = &bytes[META_HEADER_BYTES..];
        let word = |i: usize| -> Option<[u8; 8]> { body.get(i * 8..i * 8 + 8)?.try_into().ok() };
        let mut m = Meta::string(Vec::new());
        m.kind = kind;
        m.expire_at_ms = expire_at_ms;
        match kind {
            Kind::String => m.value = body.to_vec(),
            Kind::List => {
                if body.len() != 24 {
                    return None;
                }
                m.version = u64::from_le_bytes(word(0)?);
                m.head = i64::from_le_bytes(word(1)?);
                m.tail = i64::from_le_bytes(word(2)?);
                if m.head > m.tail {
                    return None;
                }
            }
            _ => {
                if body.len() != 16 {
                    return None;
                }
                m.version = u64::from_le_bytes(word(0)?);
                m.count = u64::from_le_bytes(word(1)?);
            }
        }
        Some(m)
    }
}

/// Engine meta keys up to this many bytes are built without allocating.
const META_KEY_INLINE_BYTES: usize = 63;

/// The engine key of a key's meta: on the stack for a short key (nearly
/// every command looks one up), on the heap for a long one.
pub enum MetaKey {
    Inline {
        len: u8,
        bytes: [u8; META_KEY_INLINE_BYTES],
    },
    Heap(Vec<u8>),
}

impl std::ops::Deref for MetaKey {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            MetaKey::Inline { len, bytes } => &bytes[..*len as usize],
            MetaKey::Heap(v) => v,
        }
    }
}

/// The engine key of `key`'s meta.
pub fn meta_key(key: &[u8]) -> MetaKey {
    if key.len() < META_KEY_INLINE_BYTES {
        let mut bytes = [0u8; META_KEY_INLINE_BYTES];
        bytes[0] = META_PREFIX;
        bytes[1..=key.len()].copy_from_slice(key);
        return MetaKey::Inline {
            len: (1 + key.len()) as u8,
            bytes,
        };
    }
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(META_PREFIX);
    k.extend_from_slice(key);
    MetaKey::Heap(k)
}

/// The user key of a meta engine key.
pub fn user_key_of_meta(engine_key: &[u8]) -> &[u8] {
    assert_eq!(engine_key.first(), Some(&META_PREFIX));
    &engine_key[1..]
}

/// The prefix of every element of `key`'s generation `version`.
pub fn data_prefix(key: &[u8], version: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + 4 + key.len() + 8 + 1);
    k.push(DATA_PREFIX);
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// `[start, end)` covering every element of generation `version`.
pub fn data_range(key: &[u8], version: u64) -> (Vec<u8>, Vec<u8>) {
    (data_prefix(key, version), data_prefix(key, version + 1))
}

/// `[start, end)` covering the elements with `tag` of one generation.
pub fn tag_range(key: &[u8], version: u64, tag: u8) -> (Vec<u8>, Vec<u8>) {
    let mut start = data_prefix(key, version);
    start.push(tag);
    let mut end = data_prefix(key, version);
    end.push(tag + 1);
    (start, end)
}

/// The engine key of an element: prefix, tag, then `rest`.
pub fn element_key(key: &[u8], version: u64, tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = data_prefix(key, version);
    k.push(tag);
    k.extend_from_slice(rest);
    k
}

/// The part of an element key after its tag.
pub fn element_rest<'a>(engine_key: &'a [u8], key: &[u8]) -> &'a [u8] {
    let head = 1 + 4 + key.len() + 8 + 1;
    assert!(engine_key.len() >= head, "element key shorter than its prefix");
    &engine_key[head..]
}

/// A list index in sort order.
pub fn list_index(i: i64) -> [u8; 8] {
    ((i as u64) ^ (1 << 63)).to_be_bytes()
}

/// A score in sort order: IEEE-754 bits with the sign flipped for
/// positives and all bits flipped for negatives (-0 sorts as +0).
pub fn sortable_score(score: f64) -> [u8; 8] {
    let score = if score == 0.0 { 0.0 } else { score };
    let bits = score.to_bits();
    let ordered = if bits >> 63 == 1 { !bits } else { bits | (1 << 63) };
    ordered.to_be_bytes()
}

/// The inverse of [`sortable_score`].
pub fn score_from_sortable(b: [u8; 8]) -> f64 {
    let ordered = u64::from_be_bytes(b);
    let bits = if ordered >> 63 == 1 {
        ordered & !(1 << 63)
    } else {
        !ordered
    };
    f64::from_bits(bits)
}

/// The engine key of an expiry-index entry.
pub fn expire_key(at_ms: u64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + 8 + key.len());
    k.push(EXPIRE_PREFIX);
    k.extend_from_slice(&at_ms.to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// Whether the engine key `engine_key` is part of user key `key`: its
/// meta, one of its elements (any generation) or its expiry-index entry.
pub fn belongs_to(engine_key: &[u8], key: &[u8]) -> bool {
    match engine_key.split_first() {
        Some((&META_PREFIX, rest)) => rest == key,
        Some((&DATA_PREFIX, rest)) => {
            rest.len() >= 4 + key.len()
                && rest[..4] == (key.len() as u32).to_be_bytes()
                && &rest[4..4 + key.len()] == key
        }
        Some((&EXPIRE_PREFIX, rest)) => rest.len() == 8 + key.len() && &rest[8..] == key,
        _ => false,
    }
}

/// The time and user key of an expiry-index entry.
pub fn parse_expire_key(engine_key: &[u8]) -> Option<(u64, &[u8])> {
    if engine_key.first() != Some(&EXPIRE_PREFIX) || engine_key.len() < 9 {
        return None;
    }
    let at = u64::from_be_bytes(engine_key[1..9].try_into().ok()?);
    Some((at, &engine_key[9..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips() {
        let mut m = Meta::string(b"hello".to_vec());
        m.expire_at_ms = 42;
        assert_eq!(Meta::decode(&m.encode()), Some(m.clone()));
        // A string is stored as its header then its bytes.
        assert_eq!([&m.header()[..], &m.value].concat(), m.encode());
        let mut h = Meta::collection(Kind::Hash, 7);
        h.count = 3;
        assert_eq!(Meta::decode(&h.encode()), Some(h.clone()));
        let mut l = Meta::collection(Kind::List, 9);
        l.head = -5;
        l.tail = 10;
        assert_eq!(Meta::decode(&l.encode()), Some(l.clone()));
        assert_eq!(Meta::decode(&[9]), None);
        for m in [Meta::string(b"value".to_vec()), h.clone(), l.clone()] {
            assert_eq!(Meta::decode_owned(m.encode()), Some(m));
        }
        let mut expiring = Meta::string(Vec::new());
        expiring.expire_at_ms = 1_700_000_000_123;
        assert_eq!(Meta::decode_owned(expiring.encode()), Some(expiring));
        assert_eq!(Meta::decode_owned(vec![0, 1, 2]), None);
        assert_eq!(&*meta_key(b"k"), b"mk");
        let long = vec![b'x'; 200];
        assert_eq!(meta_key(&long)[1..], long[..]);
        assert_eq!(meta_key(&long[..62]).len(), 63);
        assert_eq!(Meta::decode(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 1]), None);
    }

    #[test]
    fn scores_sort_as_numbers() {
        let scores = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -0.0,
            0.0,
            1e-300,
            1.0,
            2.5,
            1e300,
            f64::INFINITY,
        ];
        for w in scores.windows(2) {
            assert!(sortable_score(w[0]) <= sortable_score(w[1]), "{} {}", w[0], w[1]);
        }
        for s in scores {
            assert_eq!(score_from_sortable(sortable_score(s)), if s == 0.0 { 0.0 } else { s });
        }
        assert!(list_index(-1) < list_index(0) && list_index(0) < list_index(1));
    }

    #[test]
    fn generations_do_not_overlap() {
        let (s, e) = data_range(b"k", 5);
        let inside = element_key(b"k", 5, TAG_HASH, b"\xff\xff");
        let next = element_key(b"k", 6, TAG_HASH, b"");
        assert!(s <= inside && inside < e && e <= next);
        // A longer key with the same prefix never falls in the range.
        let other = element_key(b"kk", 5, TAG_HASH, b"");
        assert!(!(s <= other && other < e));
    }
}
