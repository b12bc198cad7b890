//! SSTables: immutable sorted files of internal keys, as LevelDB, RocksDB
//! and Pebble build them. The layout is specified in
//! `docs/format/sstable.md`; this module holds the pieces shared by the
//! writer ([`builder`]) and the reader ([`reader`]): block handles, the
//! block trailer (compression tag + xxh3 checksum), the footer and the
//! properties block.
//!
//! ```text
//! +--------------+-----+--------------+-----------+--------+-------+-------+--------+
//! | data block 0 | ... | data block n | range del | filter | index | props | footer |
//! +--------------+-----+--------------+-----------+--------+-------+-------+--------+
//! ```

pub mod block;
pub mod bloom;
pub mod builder;
pub mod reader;

pub use builder::{TableBuilder, TableWriter, Warm};
pub use reader::{Table, TableIter};

use crate::coding::{checksum, put_len_prefixed, put_u32, put_u64, put_varint, Reader};
use crate::key::{cmp_internal, RangeTombstone, SeqNo, SEQ_MAX, TRAILER_SIZE, USER_KEY_SIZE_MAX, VALUE_SIZE_MAX};
use crate::options::Compression;
use crate::version::FileMeta;
use crate::{Error, Result};
use std::cmp::Ordering;

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Last 8 bytes of every table: "LUMASST" followed by 0x01.
pub const MAGIC: u64 = u64::from_le_bytes(*b"LUMASST\x01");

/// Bytes after every block's payload: compression tag (1) + xxh3 (8).
pub const BLOCK_TRAILER_SIZE: usize = 9;

/// Bytes of the fixed-size footer: four handles (16 each), format
/// version (4), footer checksum (8), magic (8).
pub const FOOTER_SIZE: usize = 4 * 16 + 4 + 8 + 8;

/// Largest decoded block a reader accepts: one entry of the largest key
/// and value plus headroom for its headers and the restart array.
pub const BLOCK_DECODED_BYTES_MAX: usize = VALUE_SIZE_MAX + USER_KEY_SIZE_MAX + 4096;

/// Where a block lives: `size` counts the payload, not the trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockHandle {
    pub offset: u64,
    pub size: u64,
}

impl BlockHandle {
    /// End of the block including its trailer.
    pub fn end(&self) -> Option<u64> {
        self.offset
            .checked_add(self.size)?
            .checked_add(BLOCK_TRAILER_SIZE as u64)
    }

    pub fn encode_varint(&self, buf: &mut Vec<u8>) {
        put_varint(buf, self.offset);
        put_varint(buf, self.size);
    }

    pub fn decode_varint(r: &mut Reader<'_>) -> Option<BlockHandle> {
        Some(BlockHandle {
            offset: r.varint()?,
            size: r.varint()?,
        })
    }
}

fn compression_from_tag(tag: u8) -> Option<Compression> {
    match tag {
        0 => Some(Compression::None),
        1 => Some(Compression::Lz4),
        2 => Some(Compression::Zstd(0)),
        _ => None,
    }
}

/// Appends `raw` as a block with its trailer to `out`, compressed with
/// `compression` when that saves more than 12.5%. Returns the tag used.
pub fn append_block(out: &mut Vec<u8>, raw: &[u8], compression: Compression) -> u8 {
    let compressed = match compression {
        Compression::None => None,
        Compression::Lz4 => {
            let mut buf = Vec::with_capacity(raw.len() / 2 + 16);
            put_varint(&mut buf, raw.len() as u64);
            buf.extend_from_slice(&lz4_flex::block::compress(raw));
            Some(buf)
        }
        Compression::Zstd(level) => zstd::bulk::compress(raw, level).ok().map(|c| {
            let mut buf = Vec::with_capacity(c.len() + 10);
            put_varint(&mut buf, raw.len() as u64);
            buf.extend_from_slice(&c);
            buf
        }),
    };
    let (payload, tag) = match compressed {
        Some(c) if c.len() < raw.len() - raw.len() / 8 => (c, compression.tag()),
        _ => (raw.to_vec(), Compression::None.tag()),
    };
    let start = out.len();
    out.extend_from_slice(&payload);
    out.push(tag);
    let sum = checksum(&out[start..]);
    put_u64(out, sum);
    tag
}

/// Verifies a block read from `file` at `offset` (payload + trailer) and
/// returns its decoded payload.
pub fn decode_block(file: &str, offset: u64, bytes: &[u8]) -> Result<Vec<u8>> {
    let split = bytes
        .len()
        .checked_sub(8)
        .filter(|&s| s >= 1)
        .ok_or_else(|| Error::corruption(file, offset, "block shorter than its trailer"))?;
    let (body, sum) = bytes.split_at(split);
    let expected = Reader::new(sum)
        .u64()
        .ok_or_else(|| Error::corruption(file, offset, "short block checksum"))?;
    let actual = checksum(body);
    if expected != actual {
        return Err(Error::ChecksumMismatch {
            file: file.to_string(),
            offset,
            expected,
            actual,
        });
    }
    let (payload, tag) = body.split_at(body.len() - 1);
    let corrupt = |why: &str| Error::corruption(file, offset, format!("block: {why}"));
    match compression_from_tag(tag[0]) {
        Some(Compression::None) => Ok(payload.to_vec()),
        Some(codec) => {
            let mut r = Reader::new(payload);
            let raw_len = r
                .varint_len(BLOCK_DECODED_BYTES_MAX)
                .ok_or_else(|| corrupt("bad decoded length"))?;
            let data = r.rest();
            let out = match codec {
                Compression::Lz4 => {
                    // lz4 expands at most ~255x; refuse impossible lengths before allocating.
                    if raw_len > data.len().saturating_mul(255).saturating_add(16) {
                        return Err(corrupt("impossible lz4 decoded length"));
                    }
                    lz4_flex::block::decompress(data, raw_len).map_err(|e| corrupt(&format!("lz4: {e}")))?
                }
                _ => zstd::bulk::decompress(data, raw_len).map_err(|e| corrupt(&format!("zstd: {e}")))?,
            };
            if out.len() != raw_len {
                return Err(corrupt("decoded length differs from the recorded one"));
            }
            Ok(out)
        }
        None => Err(corrupt(&format!("unknown compression tag {}", tag[0]))),
    }
}

/// The fixed-size footer: where the meta blocks are.
///
/// ```text
/// +----------+--------+-------+-------+-------------+--------------+-----------+
/// | rangedel | filter | index | props | version u32 | xxh3 u64     | magic u64 |
/// | 16 bytes | 16     | 16    | 16    |             | of bytes 0..68|          |
/// +----------+--------+-------+-------+-------------+--------------+-----------+
/// handle = offset u64 LE | size u64 LE
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    pub range_del: BlockHandle,
    /// `size == 0` means the table has no filter.
    pub filter: BlockHandle,
    pub index: BlockHandle,
    pub props: BlockHandle,
}

impl Footer {
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(FOOTER_SIZE);
        for h in [self.range_del, self.filter, self.index, self.props] {
            put_u64(&mut buf, h.offset);
            put_u64(&mut buf, h.size);
        }
        put_u32(&mut buf, FORMAT_VERSION);
        let sum = checksum(&buf);
        put_u64(&mut buf, sum);
        put_u64(&mut buf, MAGIC);
        assert_eq!(buf.len(), FOOTER_SIZE);
        buf
    }

    /// Decodes the footer found in `file` at `offset`. Checks the magic
    /// first (is this a table at all?), then the version, then the checksum.
    pub fn decode(file: &str, offset: u64, bytes: &[u8]) -> Result<Footer> {
        if bytes.len() != FOOTER_SIZE {
            return Err(Error::corruption(file, offset, "short footer"));
        }
        let mut r = Reader::new(bytes);
        let short = || Error::corruption(file, offset, "short footer");
        let mut handles = [BlockHandle::default(); 4];
        for h in &mut handles {
            h.offset = r.u64().ok_or_else(short)?;
            h.size = r.u64().ok_or_else(short)?;
        }
        let version = r.u32().ok_or_else(short)?;
        let expected = r.u64().ok_or_else(short)?;
        let magic = r.u64().ok_or_else(short)?;
        if magic != MAGIC {
            return Err(Error::corruption(
                file,
                offset + 76,
                format!("bad magic {magic:#018x}: not a table"),
            ));
        }
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                file: file.to_string(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let actual = checksum(&bytes[..68]);
        if expected != actual {
            return Err(Error::ChecksumMismatch {
                file: file.to_string(),
                offset,
                expected,
                actual,
            });
        }
        Ok(Footer {
            range_del: handles[0],
            filter: handles[1],
            index: handles[2],
            props: handles[3],
        })
    }
}

/// What the manifest records about a table (see [`FileMeta`]), plus its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableProps {
    /// Smallest internal key, range tombstone starts included.
    pub smallest: Vec<u8>,
    /// Largest internal key; a range tombstone end counts as `(end, SEQ_MAX, RangeDelete)`.
    pub largest: Vec<u8>,
    pub smallest_seq: SeqNo,
    pub largest_seq: SeqNo,
    /// Point entries (puts and point tombstones).
    pub entries: u64,
    pub point_tombstones: u64,
    pub range_tombstones: u64,
    /// Logical file size in bytes.
    pub file_size: u64,
}

impl TableProps {
    pub fn to_file_meta(&self, number: u64) -> FileMeta {
        FileMeta {
            number,
            size: self.file_size,
            smallest: self.smallest.clone(),
            largest: self.largest.clone(),
            smallest_seq: self.smallest_seq,
            largest_seq: self.largest_seq,
            entries: self.entries,
            point_tombstones: self.point_tombstones,
            range_tombstones: self.range_tombstones,
        }
    }

    /// The properties block: everything but `file_size` (known from the
    /// file), then the data compression tag and the creating format version.
    pub(crate) fn encode_block(&self, compression: Compression) -> Vec<u8> {
        let mut buf = Vec::new();
        put_len_prefixed(&mut buf, &self.smallest);
        put_len_prefixed(&mut buf, &self.largest);
        for v in [
            self.smallest_seq,
            self.largest_seq,
            self.entries,
            self.point_tombstones,
            self.range_tombstones,
        ] {
            put_varint(&mut buf, v);
        }
        buf.push(compression.tag());
        put_u32(&mut buf, FORMAT_VERSION);
        buf
    }

    /// Decodes and checks a properties block; `Err` holds the reason.
    pub(crate) fn decode_block(data: &[u8], file_size: u64) -> Result<(TableProps, u8), &'static str> {
        let mut r = Reader::new(data);
        let smallest = r.len_prefixed().ok_or("bad smallest key")?.to_vec();
        let largest = r.len_prefixed().ok_or("bad largest key")?.to_vec();
        let mut nums = [0u64; 5];
        for n in &mut nums {
            *n = r.varint().ok_or("bad counter")?;
        }
        let compression = r.u8().ok_or("missing compression tag")?;
        let version = r.u32().ok_or("missing format version")?;
        if !r.is_empty() {
            return Err("trailing bytes");
        }
        if version != FORMAT_VERSION {
            return Err("format version differs from the footer's");
        }
        if compression_from_tag(compression).is_none() {
            return Err("unknown compression tag");
        }
        if smallest.len() < TRAILER_SIZE || largest.len() < TRAILER_SIZE {
            return Err("bound shorter than a trailer");
        }
        if cmp_internal(&smallest, &largest) == Ordering::Greater {
            return Err("smallest key after largest");
        }
        let [smallest_seq, largest_seq, entries, point_tombstones, range_tombstones] = nums;
        if smallest_seq > largest_seq || largest_seq > SEQ_MAX {
            return Err("bad sequence number range");
        }
        if point_tombstones > entries {
            return Err("more tombstones than entries");
        }
        let props = TableProps {
            smallest,
            largest,
            smallest_seq,
            largest_seq,
            entries,
            point_tombstones,
            range_tombstones,
            file_size,
        };
        Ok((props, compression))
    }
}

/// Encodes the range-tombstone block: count, then (start, end, seq) each.
pub(crate) fn encode_range_dels(tombstones: &[RangeTombstone]) -> Vec<u8> {
    let mut buf = Vec::new();
    put_varint(&mut buf, tombstones.len() as u64);
    for t in tombstones {
        put_len_prefixed(&mut buf, &t.start);
        put_len_prefixed(&mut buf, &t.end);
        put_varint(&mut buf, t.seq);
    }
    buf
}

pub(crate) fn decode_range_dels(data: &[u8]) -> Result<Vec<RangeTombstone>, &'static str> {
    let mut r = Reader::new(data);
    // Each tombstone takes at least 3 bytes.
    let n = r.varint_len(data.len() / 3).ok_or("bad tombstone count")?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let start = r.len_prefixed().ok_or("bad tombstone start")?.to_vec();
        let end = r.len_prefixed().ok_or("bad tombstone end")?.to_vec();
        let seq = r.varint().ok_or("bad tombstone sequence number")?;
        if start >= end {
            return Err("empty tombstone range");
        }
        if seq > SEQ_MAX {
            return Err("tombstone sequence number past SEQ_MAX");
        }
        out.push(RangeTombstone { start, end, seq });
    }
    if !r.is_empty() {
        return Err("trailing bytes");
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
