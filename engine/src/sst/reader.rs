//! Reading tables. [`Table::open`] reads and verifies the footer and the
//! meta blocks (index, filter, range tombstones, properties) and keeps
//! them in memory; data blocks are read on demand through the block cache
//! and verified against their checksum on every read from the file.

use super::block::{Block, BlockIter};
use super::bloom::BloomFilter;
use super::{decode_block, decode_range_dels, BlockHandle, Footer, TableProps, BLOCK_TRAILER_SIZE, FOOTER_SIZE};
use crate::cache::{BlockCache, RowCache, RowCacheValue};
use crate::coding::Reader;
use crate::key::{cmp_internal, make_seek_key, user_key, InternalKey, RangeTombstone, SeqNo, SEQ_MAX};
use crate::storage::StorageFile;
use crate::sync::Notify;
use crate::{Error, Result};
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::rc::Rc;

/// Largest read a sequential scan issues ahead of itself (bytes).
pub const READAHEAD_BYTES_MAX: usize = 64 << 10;

/// One index entry: a key >= every key of the block and < every key of
/// the next one, and where the block is.
#[derive(Debug)]
struct IndexEntry {
    separator: Box<[u8]>,
    handle: BlockHandle,
}

/// An open table.
pub struct Table<F: StorageFile> {
    file: F,
    number: u64,
    cache: Rc<BlockCache>,
    index: Vec<IndexEntry>,
    filter: Option<BloomFilter>,
    tombstones: Vec<RangeTombstone>,
    props: TableProps,
    compression_tag: u8,
    /// Data blocks being read, by offset: a second reader of the same
    /// block waits for the first read instead of issuing its own.
    loading: RefCell<HashMap<u64, Rc<Notify>>>,
}

/// Ends a block load: forgets it and wakes the readers waiting on it,
/// also when the loading future is dropped mid-read.
struct LoadGuard<'a> {
    loading: &'a RefCell<HashMap<u64, Rc<Notify>>>,
    offset: u64,
}

impl Drop for LoadGuard<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.loading.borrow_mut().remove(&self.offset) {
            n.notify_all();
        }
    }
}

impl<F: StorageFile> std::fmt::Debug for Table<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("file", &self.file.name())
            .field("number", &self.number)
            .field("blocks", &self.index.len())
            .field("props", &self.props)
            .finish_non_exhaustive()
    }
}

impl<F: StorageFile> Table<F> {
    /// Opens table `number` in `file`, verifying its footer and meta blocks.
    pub async fn open(file: F, number: u64, cache: Rc<BlockCache>) -> Result<Rc<Table<F>>> {
        let name = file.name().to_string();
        let size = file.size().await?;
        if size < FOOTER_SIZE as u64 {
            return Err(Error::corruption(
                &name,
                0,
                format!("file of {size} bytes is shorter than a table footer"),
            ));
        }
        let footer_at = size - FOOTER_SIZE as u64;
        let footer = Footer::decode(&name, footer_at, &file.read_at(footer_at, FOOTER_SIZE).await?)?;
        let in_bounds = |h: BlockHandle, what: &str| -> Result<()> {
            match h.end() {
                Some(end) if end <= footer_at => Ok(()),
                _ => Err(Error::corruption(
                    &name,
                    footer_at,
                    format!(
                        "{what} block handle ({}, {}) past the footer at {footer_at}",
                        h.offset, h.size
                    ),
                )),
            }
        };
        in_bounds(footer.range_del, "range-delete")?;
        in_bounds(footer.index, "index")?;
        in_bounds(footer.props, "properties")?;
        if footer.filter.size != 0 {
            in_bounds(footer.filter, "filter")?;
        }

        let raw = read_raw(&file, footer.props).await?;
        let (props, compression_tag) = TableProps::decode_block(&raw, size)
            .map_err(|why| Error::corruption(&name, footer.props.offset, format!("properties block: {why}")))?;

        let raw = read_raw(&file, footer.range_del).await?;
        let tombstones = decode_range_dels(&raw)
            .map_err(|why| Error::corruption(&name, footer.range_del.offset, format!("range-delete block: {why}")))?;
        if tombstones.len() as u64 != props.range_tombstones {
            return Err(Error::corruption(
                &name,
                footer.range_del.offset,
                "range tombstone count differs from properties",
            ));
        }

        let filter = if footer.filter.size == 0 {
            None
        } else {
            let raw = read_raw(&file, footer.filter).await?;
            Some(
                BloomFilter::decode(raw)
                    .ok_or_else(|| Error::corruption(&name, footer.filter.offset, "malformed bloom filter"))?,
            )
        };

        let index = decode_index(
            &name,
            footer.index,
            read_raw(&file, footer.index).await?,
            data_end(&footer),
        )?;
        if (props.entries > 0) == index.is_empty() {
            return Err(Error::corruption(
                &name,
                footer.index.offset,
                "index disagrees with the entry count",
            ));
        }

        Ok(Rc::new(Table {
            file,
            number,
            cache,
            index,
            filter,
            tombstones,
            props,
            compression_tag,
            loading: RefCell::new(HashMap::new()),
        }))
    }

    /// The table's file number.
    pub fn number(&self) -> u64 {
        self.number
    }

    pub fn props(&self) -> &TableProps {
        &self.props
    }

    /// Compression tag recorded at creation (see `Compression::tag`).
    pub fn compression_tag(&self) -> u8 {
        self.compression_tag
    }

    /// Range tombstones, sorted by start then newest first.
    pub fn range_tombstones(&self) -> &[RangeTombstone] {
        &self.tombstones
    }

    /// Bytes of the in-memory metadata (index, filter, tombstones,
    /// properties): what the engine accounts as "indexes".
    pub fn memory_bytes(&self) -> usize {
        let index: usize = self
            .index
            .iter()
            .map(|e| e.separator.len() + std::mem::size_of::<IndexEntry>())
            .sum();
        let filter = self.filter.as_ref().map_or(0, BloomFilter::memory_bytes);
        let tombstones: usize = self
            .tombstones
            .iter()
            .map(|t| t.start.len() + t.end.len() + std::mem::size_of::<RangeTombstone>())
            .sum();
        index + filter + tombstones + self.props.smallest.len() + self.props.largest.len() + std::mem::size_of::<Self>()
    }

    /// False when `user_key` is certainly not in the table's point entries.
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.filter.as_ref().is_none_or(|f| f.may_contain(user_key))
    }

    /// The newest point entry for `user_key` with sequence number <=
    /// `snapshot_seq`, as (trailer, stored value). Tombstones are returned
    /// as entries; range tombstones are not applied.
    pub async fn get(&self, user_key_wanted: &[u8], snapshot_seq: SeqNo) -> Result<Option<(u64, Vec<u8>)>> {
        if !self.may_contain(user_key_wanted) {
            return Ok(None);
        }
        let target = make_seek_key(user_key_wanted, snapshot_seq.min(SEQ_MAX));
        let mut cursor = Cursor::default();
        cursor.seek(self, &target).await?;
        match &cursor.block {
            Some(it) if it.valid() && user_key(it.key()) == user_key_wanted => {
                let k = InternalKey::decode(it.key()).expect("validated block key");
                Ok(Some((k.trailer(), it.value().to_vec())))
            }
            _ => Ok(None),
        }
    }

    /// [`Self::get`] through the row cache. The cache holds answers for the
    /// newest snapshot only, so it is used when `snapshot_seq` is at or
    /// above the table's largest sequence number, where every snapshot
    /// sees the same answer.
    pub async fn get_cached(
        &self,
        user_key_wanted: &[u8],
        snapshot_seq: SeqNo,
        row_cache: &RowCache,
    ) -> Result<Option<(u64, Vec<u8>)>> {
        if snapshot_seq < self.props.largest_seq
            || row_cache.capacity_bytes() == 0
            || !self.may_contain(user_key_wanted)
        {
            return self.get(user_key_wanted, snapshot_seq).await;
        }
        let key = (self.number, user_key_wanted.to_vec());
        if let Some(hit) = row_cache.get(&key) {
            return Ok((*hit).clone());
        }
        let found = self.get(user_key_wanted, SEQ_MAX).await?;
        let charge = key.1.len() + found.as_ref().map_or(0, |(_, v)| v.len() + 8);
        let value: RowCacheValue = Rc::new(found.clone());
        row_cache.insert(key, value, charge);
        Ok(found)
    }

    /// Reads data block `i` through the block cache. Concurrent misses on
    /// one block share one read: the others wait for it, then find the
    /// block cached (or, if the read failed or the cache could not keep
    /// the block, read it themselves).
    async fn data_block(&self, i: usize) -> Result<Rc<Block>> {
        let handle = self.index[i].handle;
        let key = (self.number, handle.offset);
        loop {
            if let Some(block) = self.cache.get(&key) {
                return Ok(block);
            }
            let wait = self.loading.borrow().get(&handle.offset).map(|n| n.notified());
            match wait {
                Some(wait) => wait.await,
                None => break,
            }
        }
        self.loading.borrow_mut().insert(handle.offset, Rc::new(Notify::new()));
        let _guard = LoadGuard {
            loading: &self.loading,
            offset: handle.offset,
        };
        let name = self.file.name();
        let raw = read_raw(&self.file, handle).await?;
        let block = Block::decode(raw).map_err(|(pos, why)| {
            Error::corruption(
                name,
                handle.offset,
                format!("data block: {why} (byte {pos} of the decoded block)"),
            )
        })?;
        let block = Rc::new(block);
        self.cache.insert(key, block.clone(), block.size());
        Ok(block)
    }

    /// Reads data block `i` for a sequential scan: on a cache miss, the
    /// following blocks (up to [`READAHEAD_BYTES_MAX`] in all, contiguous in
    /// the file) come with it in one read and go into the block cache, so
    /// a scan pays one I/O per readahead window instead of one per block
    /// (O_DIRECT gets no readahead from the OS).
    async fn data_block_sequential(&self, i: usize) -> Result<Rc<Block>> {
        let first = self.index[i].handle;
        if self.cache.get(&(self.number, first.offset)).is_some() {
            return self.data_block(i).await;
        }
        // Contiguous blocks i..j whose total stays within the window.
        let mut end = first.offset + first.size + BLOCK_TRAILER_SIZE as u64;
        let mut j = i + 1;
        while j < self.index.len() {
            let h = self.index[j].handle;
            let h_end = h.offset + h.size + BLOCK_TRAILER_SIZE as u64;
            if h.offset != end || h_end - first.offset > READAHEAD_BYTES_MAX as u64 {
                break;
            }
            end = h_end;
            j += 1;
        }
        if j == i + 1 {
            return self.data_block(i).await;
        }
        let name = self.file.name();
        let len = usize::try_from(end - first.offset)
            .map_err(|_| Error::corruption(name, first.offset, "impossible readahead size"))?;
        let bytes = self.file.read_at(first.offset, len).await?;
        let mut wanted = None;
        for k in i..j {
            let h = self.index[k].handle;
            let start = (h.offset - first.offset) as usize;
            let stop = start + h.size as usize + BLOCK_TRAILER_SIZE;
            let raw = decode_block(name, h.offset, &bytes[start..stop])?;
            let block = Block::decode(raw).map_err(|(pos, why)| {
                Error::corruption(
                    name,
                    h.offset,
                    format!("data block: {why} (byte {pos} of the decoded block)"),
                )
            })?;
            let block = Rc::new(block);
            self.cache.insert((self.number, h.offset), block.clone(), block.size());
            if k == i {
                wanted = Some(block);
            }
        }
        Ok(wanted.expect("block i is in the readahead window"))
    }

    /// An iterator over the point entries, not yet positioned.
    pub fn iter(self: &Rc<Self>) -> TableIter<F> {
        TableIter {
            table: self.clone(),
            cursor: Cursor::default(),
        }
    }
}

/// End of the data region: the first meta block.
fn data_end(footer: &Footer) -> u64 {
    let mut end = footer
        .range_del
        .offset
        .min(footer.index.offset)
        .min(footer.props.offset);
    if footer.filter.size != 0 {
        end = end.min(footer.filter.offset);
    }
    end
}

async fn read_raw<F: StorageFile>(file: &F, handle: BlockHandle) -> Result<Vec<u8>> {
    let len = usize::try_from(handle.size)
        .ok()
        .and_then(|s| s.checked_add(BLOCK_TRAILER_SIZE))
        .ok_or_else(|| Error::corruption(file.name(), handle.offset, "impossible block size"))?;
    let bytes = file.read_at(handle.offset, len).await?;
    decode_block(file.name(), handle.offset, &bytes)
}

fn decode_index(name: &str, at: BlockHandle, raw: Vec<u8>, data_end: u64) -> Result<Vec<IndexEntry>> {
    let corrupt = |why: String| Error::corruption(name, at.offset, format!("index block: {why}"));
    let block = Rc::new(Block::decode(raw).map_err(|(pos, why)| corrupt(format!("{why} (byte {pos})")))?);
    let mut it = block.iter();
    it.seek_to_first();
    let mut index = Vec::with_capacity(block.entries());
    let mut next_offset = 0u64;
    while it.valid() {
        let mut r = Reader::new(it.value());
        let handle = BlockHandle::decode_varint(&mut r).ok_or_else(|| corrupt("bad block handle".into()))?;
        if !r.is_empty() {
            return Err(corrupt("trailing bytes after a block handle".into()));
        }
        if handle.offset < next_offset || handle.end().is_none_or(|end| end > data_end) {
            return Err(corrupt(format!(
                "block handle ({}, {}) out of place",
                handle.offset, handle.size
            )));
        }
        next_offset = handle.end().expect("checked above");
        index.push(IndexEntry {
            separator: it.key().into(),
            handle,
        });
        it.next();
    }
    Ok(index)
}

/// A position in a table: index entry and block iterator.
#[derive(Debug, Default)]
struct Cursor {
    index_pos: usize,
    block: Option<BlockIter>,
}

impl Cursor {
    fn valid(&self) -> bool {
        self.block.as_ref().is_some_and(BlockIter::valid)
    }

    async fn load<F: StorageFile>(&mut self, table: &Table<F>, i: usize) -> Result<()> {
        self.index_pos = i;
        self.block = None;
        let block = table.data_block(i).await?;
        self.block = Some(block.iter());
        Ok(())
    }

    /// Moves past exhausted blocks to the next entry, if any.
    async fn skip_forward<F: StorageFile>(&mut self, table: &Table<F>) -> Result<()> {
        while self.block.as_ref().is_some_and(|b| !b.valid()) {
            let next = self.index_pos + 1;
            if next >= table.index.len() {
                self.block = None;
                return Ok(());
            }
            self.index_pos = next;
            self.block = None;
            let block = table.data_block_sequential(next).await?;
            let mut it = block.iter();
            it.seek_to_first();
            self.block = Some(it);
        }
        Ok(())
    }

    async fn seek_to_first<F: StorageFile>(&mut self, table: &Table<F>) -> Result<()> {
        self.block = None;
        if table.index.is_empty() {
            return Ok(());
        }
        self.load(table, 0).await?;
        if let Some(b) = &mut self.block {
            b.seek_to_first();
        }
        self.skip_forward(table).await
    }

    async fn seek<F: StorageFile>(&mut self, table: &Table<F>, target: &[u8]) -> Result<()> {
        self.block = None;
        let i = table
            .index
            .partition_point(|e| cmp_internal(&e.separator, target) == Ordering::Less);
        if i >= table.index.len() {
            return Ok(());
        }
        self.load(table, i).await?;
        if let Some(b) = &mut self.block {
            b.seek(target);
        }
        self.skip_forward(table).await
    }

    async fn next<F: StorageFile>(&mut self, table: &Table<F>) -> Result<()> {
        let b = self.block.as_mut().expect("next on an invalid iterator");
        b.next();
        self.skip_forward(table).await
    }
}

/// Forward iterator over a table's point entries in `cmp_internal` order.
/// After an error it is not valid.
pub struct TableIter<F: StorageFile> {
    table: Rc<Table<F>>,
    cursor: Cursor,
}

impl<F: StorageFile> TableIter<F> {
    pub fn valid(&self) -> bool {
        self.cursor.valid()
    }

    /// Positions at the first entry with internal key >= `ikey`.
    pub async fn seek(&mut self, ikey: &[u8]) -> Result<()> {
        let r = self.cursor.seek(&self.table, ikey).await;
        self.on_error(r)
    }

    pub async fn seek_to_first(&mut self) -> Result<()> {
        let r = self.cursor.seek_to_first(&self.table).await;
        self.on_error(r)
    }

    /// Advances; the iterator must be valid.
    pub async fn next(&mut self) -> Result<()> {
        let r = self.cursor.next(&self.table).await;
        self.on_error(r)
    }

    fn on_error(&mut self, r: Result<()>) -> Result<()> {
        if r.is_err() {
            self.cursor.block = None;
        }
        r
    }

    /// The current internal key.
    pub fn key(&self) -> &[u8] {
        self.cursor.block.as_ref().expect("key on an invalid iterator").key()
    }

    pub fn value(&self) -> &[u8] {
        self.cursor
            .block
            .as_ref()
            .expect("value on an invalid iterator")
            .value()
    }

    pub fn table(&self) -> &Rc<Table<F>> {
        &self.table
    }
}
