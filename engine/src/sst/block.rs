//! Data and index blocks: sorted (internal key, value) entries with
//! prefix-compressed keys and restart points, as in LevelDB/RocksDB.
//!
//! ```text
//! +---------+---------+-----+---------+-------------+-----------+-------------+
//! | entry 0 | entry 1 | ... | entry n | restart u32 | ...       | count u32   |
//! +---------+---------+-----+---------+-------------+-----------+-------------+
//! entry = shared: varint | non_shared: varint | value_len: varint
//!         | key[shared..] (non_shared bytes) | value (value_len bytes)
//! ```
//!
//! Every `restart_interval`-th entry is a restart point: it stores its key
//! whole (`shared = 0`) and its offset is listed in the restart array, so a
//! seek binary-searches the restart keys and then scans at most one run.
//! [`Block::decode`] validates the whole block once (bounds, restart
//! offsets, key order) so that iteration afterwards cannot fail.

use crate::coding::{put_varint, Reader};
use crate::key::{cmp_internal, TRAILER_SIZE};
use std::cmp::Ordering;
use std::rc::Rc;

/// Builds one block in memory.
#[derive(Debug)]
pub struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    restart_interval: usize,
    /// Entries since the last restart point.
    counter: usize,
    last_key: Vec<u8>,
    entries: usize,
}

impl BlockBuilder {
    pub fn new(restart_interval: usize) -> Self {
        assert!(restart_interval >= 1, "restart interval must be at least 1");
        BlockBuilder {
            buf: Vec::new(),
            restarts: Vec::new(),
            restart_interval,
            counter: 0,
            last_key: Vec::new(),
            entries: 0,
        }
    }

    /// Appends an entry; `ikey` must sort strictly after the previous one.
    pub fn add(&mut self, ikey: &[u8], value: &[u8]) {
        assert!(ikey.len() >= TRAILER_SIZE, "internal key shorter than its trailer");
        assert!(
            self.entries == 0 || cmp_internal(&self.last_key, ikey) == Ordering::Less,
            "block keys out of order"
        );
        if self.counter == self.restart_interval {
            self.counter = 0;
        }
        let shared = if self.counter == 0 {
            let offset = u32::try_from(self.buf.len()).expect("block larger than 4 GiB");
            self.restarts.push(offset);
            0
        } else {
            common_prefix(&self.last_key, ikey)
        };
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, (ikey.len() - shared) as u64);
        put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(&ikey[shared..]);
        self.buf.extend_from_slice(value);
        self.last_key.clear();
        self.last_key.extend_from_slice(ikey);
        self.counter += 1;
        self.entries += 1;
    }

    /// Size of the block if finished now.
    pub fn estimated_size(&self) -> usize {
        self.buf.len() + 4 * self.restarts.len() + 4
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    pub fn entries(&self) -> usize {
        self.entries
    }

    /// The last key added.
    pub fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// The encoded block; the builder is reset for the next block.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        for r in &self.restarts {
            out.extend_from_slice(&r.to_le_bytes());
        }
        let count = u32::try_from(self.restarts.len()).expect("restart count fits u32");
        out.extend_from_slice(&count.to_le_bytes());
        self.restarts.clear();
        self.counter = 0;
        self.last_key.clear();
        self.entries = 0;
        out
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// One parsed entry header.
#[derive(Debug, Clone, Copy)]
struct EntryHead {
    shared: usize,
    key_delta: (usize, usize),
    value: (usize, usize),
    next: usize,
}

/// Parses the entry at `pos`, which must end at or before `limit`.
fn parse_entry(data: &[u8], pos: usize, limit: usize) -> Option<EntryHead> {
    let region = data.get(..limit)?;
    let mut r = Reader::new(region.get(pos..)?);
    let shared = r.varint_len(usize::MAX)?;
    let non_shared = r.varint_len(r.remaining())?;
    let value_len = r.varint_len(r.remaining())?;
    let key_start = pos + r.position();
    let key_end = key_start.checked_add(non_shared)?;
    let value_end = key_end.checked_add(value_len)?;
    if value_end > limit {
        return None;
    }
    Some(EntryHead {
        shared,
        key_delta: (key_start, key_end),
        value: (key_end, value_end),
        next: value_end,
    })
}

/// A decoded, validated block. Immutable; share it with `Rc`.
#[derive(Debug)]
pub struct Block {
    data: Vec<u8>,
    /// Offset of the restart array: entries occupy `data[..restarts_offset]`.
    restarts_offset: usize,
    num_restarts: usize,
    entries: usize,
}

impl Block {
    /// Validates and wraps an encoded block. On failure returns the reason
    /// and the offset inside the block where decoding stopped.
    pub fn decode(data: Vec<u8>) -> Result<Block, (usize, &'static str)> {
        let len = data.len();
        let count_at = len.checked_sub(4).ok_or((0, "block shorter than its restart count"))?;
        let num_restarts = Reader::new(&data[count_at..])
            .u32()
            .ok_or((count_at, "short restart count"))? as usize;
        let restarts_offset = num_restarts
            .checked_mul(4)
            .and_then(|n| count_at.checked_sub(n))
            .ok_or((count_at, "restart array larger than the block"))?;
        if num_restarts == 0 && restarts_offset != 0 {
            return Err((count_at, "entries without restart points"));
        }
        let mut restarts = Reader::new(&data[restarts_offset..count_at]);
        let mut next_restart = restarts.u32().map(|r| r as usize);
        let mut restarts_seen = 0usize;
        let mut pos = 0;
        let mut key: Vec<u8> = Vec::new();
        let mut prev: Vec<u8> = Vec::new();
        let mut entries = 0;
        while pos < restarts_offset {
            let head = parse_entry(&data, pos, restarts_offset).ok_or((pos, "entry overruns the block"))?;
            let is_restart = next_restart == Some(pos);
            if is_restart {
                restarts_seen += 1;
                next_restart = restarts.u32().map(|r| r as usize);
                if head.shared != 0 {
                    return Err((pos, "restart entry shares a prefix"));
                }
            } else if entries == 0 {
                return Err((pos, "first entry is not a restart point"));
            }
            if head.shared > key.len() {
                return Err((pos, "shared prefix longer than previous key"));
            }
            key.truncate(head.shared);
            key.extend_from_slice(&data[head.key_delta.0..head.key_delta.1]);
            if key.len() < TRAILER_SIZE {
                return Err((pos, "key shorter than its trailer"));
            }
            if entries > 0 && cmp_internal(&prev, &key) != Ordering::Less {
                return Err((pos, "keys out of order"));
            }
            std::mem::swap(&mut prev, &mut key);
            key.clear();
            key.extend_from_slice(&prev);
            entries += 1;
            pos = head.next;
        }
        if restarts_seen != num_restarts {
            return Err((restarts_offset, "restart offset not on an entry boundary"));
        }
        Ok(Block {
            data,
            restarts_offset,
            num_restarts,
            entries,
        })
    }

    /// Bytes held (the decoded block).
    pub fn size(&self) -> usize {
        self.data.len()
    }

    /// Number of entries.
    pub fn entries(&self) -> usize {
        self.entries
    }

    fn restart(&self, i: usize) -> usize {
        assert!(i < self.num_restarts);
        let at = self.restarts_offset + 4 * i;
        u32::from_le_bytes(self.data[at..at + 4].try_into().expect("4 bytes")) as usize
    }

    fn entry(&self, pos: usize) -> EntryHead {
        parse_entry(&self.data, pos, self.restarts_offset).expect("block validated at decode")
    }

    /// An iterator positioned nowhere (not valid) until a seek.
    pub fn iter(self: &Rc<Self>) -> BlockIter {
        BlockIter {
            current: self.restarts_offset,
            next: self.restarts_offset,
            block: self.clone(),
            key: Vec::new(),
            value: (0, 0),
        }
    }
}

/// Forward iterator over a [`Block`].
#[derive(Debug)]
pub struct BlockIter {
    block: Rc<Block>,
    /// Offset of the current entry; `restarts_offset` when not valid.
    current: usize,
    next: usize,
    key: Vec<u8>,
    value: (usize, usize),
}

impl BlockIter {
    pub fn valid(&self) -> bool {
        self.current < self.block.restarts_offset
    }

    /// The current internal key.
    pub fn key(&self) -> &[u8] {
        assert!(self.valid());
        &self.key
    }

    pub fn value(&self) -> &[u8] {
        assert!(self.valid());
        &self.block.data[self.value.0..self.value.1]
    }

    fn parse_at(&mut self, pos: usize) {
        self.current = pos;
        if pos >= self.block.restarts_offset {
            self.current = self.block.restarts_offset;
            return;
        }
        let head = self.block.entry(pos);
        assert!(head.shared <= self.key.len(), "block validated at decode");
        self.key.truncate(head.shared);
        self.key
            .extend_from_slice(&self.block.data[head.key_delta.0..head.key_delta.1]);
        self.value = head.value;
        self.next = head.next;
    }

    pub fn seek_to_first(&mut self) {
        self.key.clear();
        self.parse_at(0);
    }

    pub fn next(&mut self) {
        assert!(self.valid());
        self.parse_at(self.next);
    }

    /// Positions at the first entry with key >= `target` (by `cmp_internal`).
    pub fn seek(&mut self, target: &[u8]) {
        let n = self.block.num_restarts;
        if n == 0 {
            self.current = self.block.restarts_offset;
            return;
        }
        // Last restart whose key is < target.
        let (mut lo, mut hi) = (0usize, n - 1);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            let head = self.block.entry(self.block.restart(mid));
            let key = &self.block.data[head.key_delta.0..head.key_delta.1];
            if cmp_internal(key, target) == Ordering::Less {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        self.key.clear();
        self.parse_at(self.block.restart(lo));
        while self.valid() && cmp_internal(&self.key, target) == Ordering::Less {
            self.next();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{make_internal_key, ValueKind};
    use rand::{rngs::SmallRng, Rng, SeedableRng};

    fn sample(n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let k = make_internal_key(
                    format!("key{:05}", i / 2).as_bytes(),
                    100 - (i % 2) as u64,
                    ValueKind::Put,
                );
                (k, format!("v{i}").into_bytes())
            })
            .collect()
    }

    #[test]
    fn round_trip_and_every_seek() {
        for interval in [1, 2, 16] {
            let entries = sample(101);
            let mut b = BlockBuilder::new(interval);
            for (k, v) in &entries {
                b.add(k, v);
            }
            let block = Rc::new(Block::decode(b.finish()).unwrap());
            assert_eq!(block.entries(), entries.len());
            let mut it = block.iter();
            it.seek_to_first();
            for (k, v) in &entries {
                assert!(it.valid());
                assert_eq!(it.key(), &k[..]);
                assert_eq!(it.value(), &v[..]);
                it.next();
            }
            assert!(!it.valid());
            for (i, (k, _)) in entries.iter().enumerate() {
                it.seek(k);
                assert_eq!(it.key(), &k[..], "interval {interval} seek {i}");
            }
            it.seek(&make_internal_key(b"zzz", 1, ValueKind::Put));
            assert!(!it.valid());
            it.seek(&make_internal_key(b"a", 1, ValueKind::Put));
            assert_eq!(it.key(), &entries[0].0[..]);
        }
    }

    #[test]
    fn empty_block() {
        let mut b = BlockBuilder::new(4);
        let block = Rc::new(Block::decode(b.finish()).unwrap());
        let mut it = block.iter();
        it.seek_to_first();
        assert!(!it.valid());
        it.seek(&make_internal_key(b"a", 1, ValueKind::Put));
        assert!(!it.valid());
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut good = BlockBuilder::new(3);
        for (k, v) in sample(40) {
            good.add(&k, &v);
        }
        let good = good.finish();
        for _ in 0..20_000 {
            let bytes: Vec<u8> = if rng.gen_bool(0.5) {
                let n = rng.gen_range(0..64);
                (0..n).map(|_| rng.gen()).collect()
            } else {
                let mut b = good.clone();
                for _ in 0..rng.gen_range(1..4) {
                    let i = rng.gen_range(0..b.len());
                    b[i] = rng.gen();
                }
                b.truncate(rng.gen_range(0..=b.len()));
                b
            };
            if let Ok(block) = Block::decode(bytes) {
                let block = Rc::new(block);
                let mut it = block.iter();
                it.seek_to_first();
                let mut n = 0;
                while it.valid() {
                    n += 1;
                    it.next();
                }
                assert_eq!(n, block.entries());
                it.seek(&make_internal_key(b"key00010", 5, ValueKind::Put));
            }
        }
    }
}
