//! The write-ahead log: every committed [`WriteBatch`] is framed as one
//! record and appended to the current segment before it is applied to a
//! memtable; on open, segments are replayed in order to rebuild the
//! memtables that were not yet flushed. The byte layout, checksums and the
//! rules that tell a torn tail from corruption are specified in
//! `docs/format/wal.md`.
//!
//! ```text
//! segment  := header page (4096 bytes) | record* | zero bytes to the end of the last page
//! record   := checksum: u64 LE | len: u32 LE | payload (len bytes)
//!             checksum = xxh3-64(len bytes ++ payload)
//! payload  := first_seq: u64 LE | count: u32 LE | WriteBatch ops
//! ```
//!
//! - [`LogWriter`] appends records with O_DIRECT-aligned writes, rewriting
//!   the last partial page each time; it is fail-stop.
//! - [`read_log`] replays one segment and reports a dropped torn tail (or,
//!   in recovery mode, a dropped corrupt suffix) so the caller can truncate
//!   and log it.

mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub use reader::{parse_segment, read_log, DropKind, DroppedTail, LogReplay, RESYNC_HASH_BYTES_MAX};
pub use writer::{LogWriter, WalSync, WalWrite, WAL_PREALLOC_BYTES};

use crate::batch::{WriteBatch, BATCH_BYTES_MAX};
use crate::coding::{checksum, put_u32, put_u64, Reader};
use crate::key::{SeqNo, SEQ_MAX};
use crate::storage::IO_ALIGN;
use crate::{Error, Result};

/// Bytes of a record header: checksum (8) + payload length (4).
pub const RECORD_HEADER_SIZE: usize = 12;

/// Bytes of the batch-record prefix: first sequence number (8) + op count (4).
pub const BATCH_RECORD_PREFIX_SIZE: usize = 12;

/// Largest payload of one record. Lengths above it are "impossible" when
/// reading; the writer asserts it never produces one.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = BATCH_BYTES_MAX + BATCH_RECORD_PREFIX_SIZE;

/// Bytes of the segment header page that opens every segment.
pub const SEGMENT_HEADER_SIZE: usize = IO_ALIGN;

/// Bytes of the segment header that carry data; the rest of the page is zero.
const SEGMENT_HEADER_USED_SIZE: usize = 28;

/// First 8 bytes of every segment (`"LUMAWAL\0"` read as a u64 LE).
pub const WAL_MAGIC: u64 = u64::from_le_bytes(*b"LUMAWAL\0");

/// The segment format this build writes and reads.
pub const WAL_FORMAT_VERSION: u32 = 1;

const _: () = assert!(RECORD_PAYLOAD_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(SEGMENT_HEADER_USED_SIZE <= SEGMENT_HEADER_SIZE);
const _: () = assert!(SEGMENT_HEADER_SIZE == IO_ALIGN);

/// The file name of WAL segment `number`: `{number:06}.wal`.
pub fn wal_file_name(number: u64) -> String {
    format!("{number:06}.wal")
}

/// The segment number of a WAL file name, or `None` if it is not one.
/// Accepts exactly what [`wal_file_name`] produces (at least six digits,
/// no sign, no leading zeros beyond the padding).
pub fn parse_wal_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    (wal_file_name(n) == name).then_some(n)
}

/// The first page of a segment: identifies the file and its format.
///
/// ```text
/// offset  size  field
///      0     8  magic           u64 LE = WAL_MAGIC
///      8     4  format version  u32 LE = 1
///     12     8  segment number  u64 LE (matches the file name)
///     20     8  checksum        u64 LE = xxh3-64(bytes 0..20)
///     28  4068  zero
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub format_version: u32,
    pub segment_number: u64,
}

impl SegmentHeader {
    pub fn new(segment_number: u64) -> Self {
        SegmentHeader {
            format_version: WAL_FORMAT_VERSION,
            segment_number,
        }
    }

    /// The full header page.
    pub fn encode(&self) -> Vec<u8> {
        let mut page = Vec::with_capacity(SEGMENT_HEADER_SIZE);
        put_u64(&mut page, WAL_MAGIC);
        put_u32(&mut page, self.format_version);
        put_u64(&mut page, self.segment_number);
        let sum = checksum(&page);
        put_u64(&mut page, sum);
        assert_eq!(page.len(), SEGMENT_HEADER_USED_SIZE);
        page.resize(SEGMENT_HEADER_SIZE, 0);
        page
    }

    /// Parses and checks a header page of `file`. The magic and version are
    /// checked before the checksum, so a segment written by a future format
    /// (which keeps magic and version at these offsets but may change the
    /// rest) is reported as [`Error::UnsupportedVersion`].
    pub fn decode(file: &str, page: &[u8]) -> Result<Self> {
        let mut r = Reader::new(page);
        let (Some(magic), Some(version), Some(number), Some(stored)) = (r.u64(), r.u32(), r.u64(), r.u64()) else {
            return Err(Error::corruption(
                file,
                0,
                format!("segment header truncated: {} bytes", page.len()),
            ));
        };
        if magic != WAL_MAGIC {
            return Err(Error::corruption(
                file,
                0,
                format!("not a LumaDB WAL segment: magic {magic:#018x}, expected {WAL_MAGIC:#018x}"),
            ));
        }
        if version > WAL_FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                file: file.to_string(),
                found: version,
                supported: WAL_FORMAT_VERSION,
            });
        }
        if version == 0 {
            return Err(Error::corruption(file, 8, "segment header has format version 0"));
        }
        let actual = checksum(&page[..SEGMENT_HEADER_USED_SIZE - 8]);
        if actual != stored {
            return Err(Error::ChecksumMismatch {
                file: file.to_string(),
                offset: 0,
                expected: stored,
                actual,
            });
        }
        if page.len() < SEGMENT_HEADER_SIZE {
            return Err(Error::corruption(
                file,
                0,
                format!("segment header page truncated: {} bytes", page.len()),
            ));
        }
        if let Some(at) = page[SEGMENT_HEADER_USED_SIZE..SEGMENT_HEADER_SIZE]
            .iter()
            .position(|&b| b != 0)
        {
            return Err(Error::corruption(
                file,
                (SEGMENT_HEADER_USED_SIZE + at) as u64,
                "non-zero byte in the reserved part of the segment header",
            ));
        }
        Ok(SegmentHeader {
            format_version: version,
            segment_number: number,
        })
    }
}

/// Appends a batch record payload: `first_seq ++ count ++ batch bytes`.
/// The batch's ops take sequence numbers `first_seq ..= first_seq + count - 1`.
pub fn encode_batch_record(first_seq: SeqNo, batch: &WriteBatch, out: &mut Vec<u8>) {
    check_batch_seqs(first_seq, batch);
    put_u64(out, first_seq);
    put_u32(out, batch.len() as u32);
    out.extend_from_slice(batch.as_bytes());
}

/// Parses and validates a batch record payload: a known batch encoding, a
/// count that matches it, at least one op, and sequence numbers that fit
/// below [`SEQ_MAX`].
pub fn decode_batch_record(payload: &[u8]) -> Option<(SeqNo, WriteBatch)> {
    let mut r = Reader::new(payload);
    let first_seq = r.u64()?;
    let count = r.u32()?;
    if count == 0 || first_seq == 0 {
        return None;
    }
    let last_seq = first_seq.checked_add(u64::from(count) - 1)?;
    if last_seq > SEQ_MAX {
        return None;
    }
    let batch = WriteBatch::decode(r.rest())?;
    (batch.len() == count as usize).then_some((first_seq, batch))
}

/// Asserts the caller's side of the batch-record contract.
fn check_batch_seqs(first_seq: SeqNo, batch: &WriteBatch) {
    assert!(!batch.is_empty(), "empty write batch logged");
    assert!(first_seq > 0, "sequence numbers start at 1");
    assert!(u32::try_from(batch.len()).is_ok(), "batch op count over u32");
    let last_seq = first_seq + (batch.len() as u64 - 1);
    assert!(last_seq <= SEQ_MAX, "batch sequence numbers run past SEQ_MAX");
    assert!(batch.encoded_size() <= BATCH_BYTES_MAX);
}

/// The record checksum: xxh3-64 over the length field and the payload
/// (`frame[8..]` of an encoded record).
fn record_checksum(len_and_payload: &[u8]) -> u64 {
    checksum(len_and_payload)
}
