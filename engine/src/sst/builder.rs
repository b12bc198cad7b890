//! Writing tables. [`TableBuilder`] is sans-IO: it turns sorted entries
//! into file bytes and hands them out in [`IO_ALIGN`] multiples, so the
//! caller can write them sequentially with O_DIRECT. [`TableWriter`] is
//! the thin driver that writes them to a [`StorageFile`].

use super::block::{Block, BlockBuilder};
use super::bloom::BloomBuilder;
use super::{append_block, encode_range_dels, BlockHandle, Footer, TableProps};
use crate::cache::BlockCache;
use crate::key::{
    cmp_internal, make_internal_key, pack_trailer, InternalKey, RangeTombstone, SeqNo, ValueKind, SEQ_MAX,
};
use crate::options::{Compression, KeyspaceOptions};
use crate::storage::{align_down, align_up, StorageFile, IO_ALIGN};
use crate::Result;
use std::cmp::Ordering;
use std::rc::Rc;

/// [`TableWriter::maybe_flush`] writes once this many bytes are buffered.
pub const WRITE_CHUNK_BYTES_MIN: usize = 256 * 1024;

const _: () = assert!(WRITE_CHUNK_BYTES_MIN.is_multiple_of(IO_ALIGN));

/// Restart interval of index blocks: every separator stored whole.
const INDEX_RESTART_INTERVAL: usize = 1;

/// Builds one table in memory, handing out finished bytes as it goes.
#[derive(Debug)]
pub struct TableBuilder {
    block_size: usize,
    compression: Compression,
    /// Output not yet handed out.
    out: Vec<u8>,
    /// Bytes handed out by `take_aligned`.
    taken: u64,
    data_block: BlockBuilder,
    index_block: BlockBuilder,
    /// Last key and handle of the last flushed data block, waiting for the
    /// next key to pick a short separator.
    pending_index: Option<(Vec<u8>, BlockHandle)>,
    bloom: Option<BloomBuilder>,
    first_key: Option<Vec<u8>>,
    last_key: Vec<u8>,
    tombstones: Vec<RangeTombstone>,
    smallest_seq: SeqNo,
    largest_seq: SeqNo,
    entries: u64,
    point_tombstones: u64,
    /// Finished data blocks (offset, uncompressed bytes) kept for the
    /// caller, when it asked ([`TableBuilder::keep_data_blocks`]).
    kept_blocks: Option<Vec<(u64, Vec<u8>)>>,
}

impl TableBuilder {
    pub fn new(opts: &KeyspaceOptions) -> Self {
        assert!(opts.block_size > 0);
        TableBuilder {
            block_size: opts.block_size,
            compression: opts.compression,
            out: Vec::new(),
            taken: 0,
            data_block: BlockBuilder::new(opts.block_restart_interval),
            index_block: BlockBuilder::new(INDEX_RESTART_INTERVAL),
            pending_index: None,
            bloom: (opts.bloom_bits_per_key > 0).then(|| BloomBuilder::new(opts.bloom_bits_per_key)),
            first_key: None,
            last_key: Vec::new(),
            tombstones: Vec::new(),
            smallest_seq: SEQ_MAX,
            largest_seq: 0,
            entries: 0,
            point_tombstones: 0,
            kept_blocks: None,
        }
    }

    /// Keeps each finished data block's uncompressed bytes for
    /// [`TableBuilder::take_kept_blocks`] (to fill a block cache).
    pub fn keep_data_blocks(&mut self) {
        self.kept_blocks.get_or_insert_with(Vec::new);
    }

    /// The data blocks finished since the last call, with their offsets.
    pub fn take_kept_blocks(&mut self) -> Vec<(u64, Vec<u8>)> {
        self.kept_blocks.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Finishes the data block being built, if any (as
    /// [`TableBuilder::finish`] would), so its bytes can be taken first.
    pub fn end_data_block(&mut self) {
        if !self.data_block.is_empty() {
            self.flush_data_block();
        }
    }

    fn offset(&self) -> u64 {
        self.taken + self.out.len() as u64
    }

    /// Adds a point entry. Keys must be strictly increasing by
    /// `cmp_internal`; range tombstones go to [`Self::add_range_tombstone`].
    pub fn add(&mut self, ikey: &[u8], value: &[u8]) {
        let k = InternalKey::decode(ikey).expect("internal key shorter than its trailer");
        let kind = k.kind().expect("stored key with an unknown kind tag");
        assert!(
            kind != ValueKind::RangeDelete,
            "range tombstones do not go in data blocks"
        );
        assert!(
            self.first_key.is_none() || cmp_internal(&self.last_key, ikey) == Ordering::Less,
            "table keys out of order: {:?} then {:?}",
            InternalKey::decode(&self.last_key),
            k
        );
        if let Some((last, handle)) = self.pending_index.take() {
            let sep = shortest_separator(&last, ikey);
            self.add_index_entry(&sep, handle);
        }
        if let Some(bloom) = &mut self.bloom {
            bloom.add_key(k.user_key);
        }
        if self.first_key.is_none() {
            self.first_key = Some(ikey.to_vec());
        }
        self.last_key.clear();
        self.last_key.extend_from_slice(ikey);
        self.smallest_seq = self.smallest_seq.min(k.seq);
        self.largest_seq = self.largest_seq.max(k.seq);
        self.entries += 1;
        if kind == ValueKind::Delete {
            self.point_tombstones += 1;
        }
        self.data_block.add(ikey, value);
        if self.data_block.estimated_size() >= self.block_size {
            self.flush_data_block();
        }
    }

    /// Adds a range tombstone deleting `[start, end)` below `seq`.
    pub fn add_range_tombstone(&mut self, start: &[u8], end: &[u8], seq: SeqNo) {
        assert!(start < end, "empty range tombstone");
        assert!(seq <= SEQ_MAX);
        self.smallest_seq = self.smallest_seq.min(seq);
        self.largest_seq = self.largest_seq.max(seq);
        self.tombstones.push(RangeTombstone {
            start: start.to_vec(),
            end: end.to_vec(),
            seq,
        });
    }

    /// True when nothing has been added: such a table must not be written.
    pub fn is_empty(&self) -> bool {
        self.entries == 0 && self.tombstones.is_empty()
    }

    /// Approximate file size if finished now.
    pub fn estimated_size(&self) -> u64 {
        self.offset() + self.data_block.estimated_size() as u64 + self.index_block.estimated_size() as u64
    }

    /// Bytes produced but not yet handed out.
    pub fn buffered_bytes(&self) -> usize {
        self.out.len()
    }

    /// Hands out the finished output so far, rounded down to a multiple of
    /// [`IO_ALIGN`]; the chunks are contiguous from file offset 0.
    pub fn take_aligned(&mut self) -> Option<Vec<u8>> {
        let n = align_down(self.out.len());
        if n == 0 {
            return None;
        }
        let rest = self.out.split_off(n);
        let chunk = std::mem::replace(&mut self.out, rest);
        self.taken += n as u64;
        Some(chunk)
    }

    fn add_index_entry(&mut self, sep: &[u8], handle: BlockHandle) {
        let mut v = Vec::with_capacity(20);
        handle.encode_varint(&mut v);
        self.index_block.add(sep, &v);
    }

    fn write_block(&mut self, raw: &[u8], compression: Compression) -> BlockHandle {
        let offset = self.offset();
        let before = self.out.len();
        append_block(&mut self.out, raw, compression);
        let size = (self.out.len() - before - super::BLOCK_TRAILER_SIZE) as u64;
        BlockHandle { offset, size }
    }

    fn flush_data_block(&mut self) {
        assert!(!self.data_block.is_empty());
        assert!(self.pending_index.is_none());
        let raw = self.data_block.finish();
        let handle = self.write_block(&raw, self.compression);
        self.pending_index = Some((self.last_key.clone(), handle));
        if let Some(kept) = self.kept_blocks.as_mut() {
            kept.push((handle.offset, raw));
        }
    }

    /// Finishes the table: returns the remaining output padded with zeros
    /// to a multiple of [`IO_ALIGN`], the logical file size (to truncate
    /// to), and the table's properties.
    pub fn finish(mut self) -> (Vec<u8>, u64, TableProps) {
        assert!(!self.is_empty(), "an empty table must not be written");
        if !self.data_block.is_empty() {
            self.flush_data_block();
        }
        if let Some((last, handle)) = self.pending_index.take() {
            self.add_index_entry(&last, handle);
        }
        self.tombstones
            .sort_by(|a, b| a.start.cmp(&b.start).then(b.seq.cmp(&a.seq)).then(a.end.cmp(&b.end)));
        let range_del = self.write_block(&encode_range_dels(&self.tombstones), Compression::None);
        let filter = match self.bloom.take() {
            Some(bloom) => self.write_block(&bloom.finish(), Compression::None),
            None => BlockHandle::default(),
        };
        let index_raw = self.index_block.finish();
        let index = self.write_block(&index_raw, Compression::None);

        let mut smallest = self.first_key.clone();
        let mut largest = self.first_key.as_ref().map(|_| self.last_key.clone());
        for t in &self.tombstones {
            let lo = make_internal_key(&t.start, t.seq, ValueKind::RangeDelete);
            if smallest.as_ref().is_none_or(|s| cmp_internal(&lo, s) == Ordering::Less) {
                smallest = Some(lo);
            }
            let mut hi = t.end.clone();
            hi.extend_from_slice(&pack_trailer(SEQ_MAX, ValueKind::RangeDelete as u8).to_le_bytes());
            if largest
                .as_ref()
                .is_none_or(|l| cmp_internal(&hi, l) == Ordering::Greater)
            {
                largest = Some(hi);
            }
        }
        let mut props = TableProps {
            smallest: smallest.expect("non-empty table has a smallest key"),
            largest: largest.expect("non-empty table has a largest key"),
            smallest_seq: self.smallest_seq,
            largest_seq: self.largest_seq,
            entries: self.entries,
            point_tombstones: self.point_tombstones,
            range_tombstones: self.tombstones.len() as u64,
            file_size: 0,
        };
        assert!(cmp_internal(&props.smallest, &props.largest) != Ordering::Greater);
        let props_handle = self.write_block(&props.encode_block(self.compression), Compression::None);
        let footer = Footer {
            range_del,
            filter,
            index,
            props: props_handle,
        };
        self.out.extend_from_slice(&footer.encode());
        let logical = self.offset();
        props.file_size = logical;
        let mut tail = std::mem::take(&mut self.out);
        tail.resize(align_up(tail.len()), 0);
        assert_eq!((self.taken + tail.len() as u64) % IO_ALIGN as u64, 0);
        (tail, logical, props)
    }
}

/// A key `sep` with `a <= sep < b` that is short: LevelDB's
/// `FindShortestSeparator` on the user keys.
pub(crate) fn shortest_separator(a: &[u8], b: &[u8]) -> Vec<u8> {
    let ua = crate::key::user_key(a);
    let ub = crate::key::user_key(b);
    let diff = ua.iter().zip(ub).take_while(|(x, y)| x == y).count();
    let mut sep = a.to_vec();
    if diff < ua.len().min(ub.len()) {
        let byte = ua[diff];
        if byte < 0xff && byte + 1 < ub[diff] {
            sep.truncate(diff + 1);
            sep[diff] += 1;
            // The largest trailer sorts first among entries of this user key.
            sep.extend_from_slice(&pack_trailer(SEQ_MAX, ValueKind::MAX_TAG).to_le_bytes());
        }
    }
    assert!(cmp_internal(a, &sep) != Ordering::Greater);
    assert!(cmp_internal(&sep, b) == Ordering::Less);
    sep
}

/// Writes a table to a file: a [`TableBuilder`] plus sequential aligned writes.
pub struct TableWriter<F: StorageFile> {
    file: F,
    builder: TableBuilder,
    written: u64,
    /// The cache the table's data blocks go into as they are written,
    /// and the table's number ([`TableWriter::warming`]).
    warm: Option<(Rc<BlockCache>, u64, Warm)>,
}

/// Which data blocks [`TableWriter::warming`] puts into the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warm {
    /// Every block, evicting the least recently used ones (a flush: the
    /// table holds what was just in memory).
    Always,
    /// Only blocks that fit without evicting anything (a compaction: its
    /// output replaces tables whose blocks were cached under their old
    /// numbers, but need not push out anything that is being read).
    IfRoom,
}

impl<F: StorageFile> TableWriter<F> {
    /// `file` must be new and empty.
    pub fn new(file: F, opts: &KeyspaceOptions) -> Self {
        TableWriter {
            file,
            builder: TableBuilder::new(opts),
            written: 0,
            warm: None,
        }
    }

    /// Puts every data block into `cache` as table `number`'s as it is
    /// written, so reads of a table just written from memory find its
    /// blocks there instead of each reading the disk once (after a flush,
    /// a burst of reads that waited behind the flush's and compactions'
    /// writes: 200 ms was seen).
    pub fn warming(mut self, cache: Rc<BlockCache>, number: u64, warm: Warm) -> Self {
        self.builder.keep_data_blocks();
        self.warm = Some((cache, number, warm));
        self
    }

    fn warm_cache(&mut self) {
        let Some((cache, number, warm)) = &self.warm else {
            return;
        };
        for (offset, raw) in self.builder.take_kept_blocks() {
            if *warm == Warm::IfRoom && !cache.has_room_for(raw.len()) {
                continue;
            }
            match Block::decode(raw) {
                Ok(block) => {
                    let block = Rc::new(block);
                    cache.insert((*number, offset), block.clone(), block.size());
                }
                Err((pos, why)) => debug_assert!(false, "a block just built does not decode: {why} at {pos}"),
            }
        }
    }

    pub fn add(&mut self, ikey: &[u8], value: &[u8]) {
        self.builder.add(ikey, value);
    }

    pub fn add_range_tombstone(&mut self, start: &[u8], end: &[u8], seq: SeqNo) {
        self.builder.add_range_tombstone(start, end, seq);
    }

    pub fn is_empty(&self) -> bool {
        self.builder.is_empty()
    }

    pub fn estimated_size(&self) -> u64 {
        self.builder.estimated_size()
    }

    /// Writes buffered output once at least [`WRITE_CHUNK_BYTES_MIN`] is ready.
    pub async fn maybe_flush(&mut self) -> Result<()> {
        if self.builder.buffered_bytes() >= WRITE_CHUNK_BYTES_MIN {
            self.flush_aligned().await?;
        }
        Ok(())
    }

    async fn flush_aligned(&mut self) -> Result<()> {
        self.warm_cache();
        if let Some(chunk) = self.builder.take_aligned() {
            self.file.write_at(self.written, &chunk).await?;
            self.written += chunk.len() as u64;
        }
        Ok(())
    }

    /// Writes the rest, truncates the file to its logical size and syncs
    /// it. The table is durable when this returns; its name becomes
    /// durable with the directory sync the caller does before the manifest
    /// references it.
    pub async fn finish(mut self) -> Result<TableProps> {
        self.builder.end_data_block();
        self.flush_aligned().await?;
        let (tail, logical, props) = self.builder.finish();
        if !tail.is_empty() {
            self.file.write_at(self.written, &tail).await?;
            self.written += tail.len() as u64;
        }
        assert!(logical <= self.written && self.written - logical < IO_ALIGN as u64);
        self.file.truncate(logical).await?;
        self.file.sync().await?;
        Ok(props)
    }
}
