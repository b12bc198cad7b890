//! Replay of one WAL segment: [`read_log`] reads the file and
//! [`parse_segment`] (pure, no I/O) checks the header and walks the records.
//!
//! **Torn tail or corruption?** Walking stops at the first record that is
//! not valid (checksum mismatch, impossible length, truncated by the end of
//! the file, or an all-zero header followed by non-zero bytes). What comes
//! next decides what it means:
//!
//! - The bad record is a **torn tail** if no valid record follows it, or if
//!   its damage has the shape of a page write that never happened: some
//!   page overlapping the bad record reads all zeros from the record (or the
//!   page start) to the page end. Under the storage contract an unsynced
//!   page survives a crash either whole and new or as it was at the last
//!   sync, and the log only ever extends a page, so a lost page shows up as
//!   zeros exactly there, and everything after it was never synced either.
//!   Replay stops; the caller truncates to [`LogReplay::valid_len`] and logs
//!   [`LogReplay::dropped`].
//! - Otherwise (a valid record follows and the damage is not a zeroed page)
//!   it is **corruption before the tail**: an error naming the file and
//!   offset, or, in recovery mode, the records before it with an exact
//!   report of what was dropped.
//!
//! "A valid record follows" is decided by scanning forward byte by byte for
//! a header whose length is plausible, fits in the file, and whose checksum
//! validates. The scan covers the whole rest of the segment, but the bytes
//! it may hash are capped at [`RESYNC_HASH_BYTES_MAX`]; past the cap it
//! gives up and assumes a valid record may follow (the safe answer: an
//! error rather than silently dropped records).

use super::{record_checksum, SegmentHeader, RECORD_HEADER_SIZE, RECORD_PAYLOAD_BYTES_MAX, SEGMENT_HEADER_SIZE};
use crate::storage::{align_down, StorageFile, IO_ALIGN};
use crate::{Error, Result};

/// Bytes the resynchronising scan may hash (summed over candidate records)
/// while looking for valid records after a bad one.
pub const RESYNC_HASH_BYTES_MAX: usize = 256 << 20;

/// Bytes read per storage call when loading a segment.
const READ_CHUNK_BYTES: usize = 4 << 20;

/// What a segment replay found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReplay {
    /// The segment header; `None` when the file is empty or all zeros (its
    /// creation never became durable): the caller removes such a segment.
    /// Also `None` when recovery mode dropped a damaged header.
    pub header: Option<SegmentHeader>,
    /// Payloads of the valid records, in log order.
    pub records: Vec<Vec<u8>>,
    /// Bytes of the file that hold the header and `records`: where the next
    /// record goes. The caller truncates the file to it when `dropped` is set.
    pub valid_len: u64,
    /// What replay discarded past `valid_len`, if anything but zeros.
    pub dropped: Option<DroppedTail>,
}

/// Why bytes past the valid prefix were discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropKind {
    /// A write in flight at a crash: expected, nothing acknowledged as
    /// durable is lost.
    TornTail,
    /// Damage before the tail, dropped only because of recovery mode:
    /// records that were durable may be lost.
    Corruption,
}

/// A discarded tail of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedTail {
    pub kind: DropKind,
    /// File offset of the first bad record (equals `LogReplay::valid_len`).
    pub offset: u64,
    /// Bytes from `offset` to the end of the file.
    pub bytes: u64,
    /// Valid records found after the bad one and discarded with it (a lower
    /// bound if the scan hit [`RESYNC_HASH_BYTES_MAX`]).
    pub records_after: usize,
    /// What was wrong, for the log.
    pub reason: String,
}

/// Reads and replays a whole WAL segment. `recovery_mode` turns corruption
/// before the tail from an error into a dropped suffix (see the module
/// docs). Errors name the file and the offset.
pub async fn read_log<F: StorageFile>(file: &F, recovery_mode: bool) -> Result<LogReplay> {
    let size = file.size().await?;
    let size = usize::try_from(size)
        .map_err(|_| Error::corruption(file.name(), 0, format!("WAL segment of {size} bytes is too large")))?;
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        let chunk = READ_CHUNK_BYTES.min(size - data.len());
        let bytes = file.read_at(data.len() as u64, chunk).await?;
        if bytes.len() != chunk {
            return Err(Error::corruption(
                file.name(),
                data.len() as u64,
                format!("short read: {} of {chunk} bytes", bytes.len()),
            ));
        }
        data.extend_from_slice(&bytes);
    }
    parse_segment(file.name(), &data, recovery_mode)
}

/// Replays a segment image held in memory; `name` is the file name (used in
/// errors, and checked against the header's segment number when it parses
/// as a WAL file name). Never panics, whatever the bytes.
pub fn parse_segment(name: &str, data: &[u8], recovery_mode: bool) -> Result<LogReplay> {
    if all_zero(data) {
        // Empty, or the header page never became durable (the writer syncs
        // the header before writing any record, so nothing else can exist).
        return Ok(LogReplay {
            header: None,
            records: Vec::new(),
            valid_len: 0,
            dropped: None,
        });
    }
    let header_page = &data[..data.len().min(SEGMENT_HEADER_SIZE)];
    let header = SegmentHeader::decode(name, header_page).and_then(|h| match super::parse_wal_file_name(name) {
        Some(n) if n != h.segment_number => Err(Error::corruption(
            name,
            12,
            format!("segment header names segment {}, file name says {n}", h.segment_number),
        )),
        _ => Ok(h),
    });
    let header = match header {
        Ok(h) => h,
        // A file that is not a WAL segment, or one from a newer format, is
        // never dropped, recovery mode or not.
        Err(e @ Error::UnsupportedVersion { .. }) => return Err(e),
        Err(e) if !recovery_mode || data.len() >= 8 && data[..8] != super::WAL_MAGIC.to_le_bytes() => return Err(e),
        Err(e) => {
            let mut budget = RESYNC_HASH_BYTES_MAX;
            let (records_after, exact) = count_valid_records(data, SEGMENT_HEADER_SIZE.min(data.len()), &mut budget);
            return Ok(LogReplay {
                header: None,
                records: Vec::new(),
                valid_len: 0,
                dropped: Some(DroppedTail {
                    kind: DropKind::Corruption,
                    offset: 0,
                    bytes: data.len() as u64,
                    records_after,
                    reason: format!("damaged segment header: {e}{}", lower_bound_note(exact)),
                }),
            });
        }
    };

    let mut records = Vec::new();
    let mut pos = SEGMENT_HEADER_SIZE;
    let bad = loop {
        match parse_record(data, pos) {
            Parsed::Record { payload, next } => {
                records.push(data[payload].to_vec());
                pos = next;
            }
            Parsed::ZeroHeader if all_zero(&data[pos..]) => {
                return Ok(LogReplay {
                    header: Some(header),
                    records,
                    valid_len: pos as u64,
                    dropped: None,
                });
            }
            Parsed::ZeroHeader => {
                break Bad {
                    extent_end: pos + RECORD_HEADER_SIZE.min(data.len() - pos),
                    problem: Problem::ZeroHeader,
                }
            }
            Parsed::Bad(bad) => break bad,
        }
    };

    let torn_page = zeroed_page(data, pos, bad.extent_end);
    let mut budget = RESYNC_HASH_BYTES_MAX;
    let next_valid = find_valid_record(data, pos + 1, &mut budget);
    let (records_after, exact) = match next_valid {
        Scan::Found(at) => count_valid_records(data, at, &mut budget),
        Scan::NotFound => (0, true),
        Scan::GaveUp => (0, false),
    };
    let describe = |bad: &Bad| -> String {
        let follows = match next_valid {
            Scan::Found(at) => format!("; the next valid record is at offset {at}"),
            Scan::NotFound => "; no valid record follows".to_string(),
            Scan::GaveUp => {
                format!("; the scan for valid records after it stopped after hashing {RESYNC_HASH_BYTES_MAX} bytes")
            }
        };
        format!("{}{follows}{}", bad.problem.describe(), lower_bound_note(exact))
    };
    let torn = torn_page.is_some() || matches!(next_valid, Scan::NotFound);
    let kind = if torn {
        DropKind::TornTail
    } else if recovery_mode {
        DropKind::Corruption
    } else {
        return Err(match bad.problem {
            Problem::Checksum { expected, actual } => Error::ChecksumMismatch {
                file: name.to_string(),
                offset: pos as u64,
                expected,
                actual,
            },
            _ => Error::corruption(name, pos as u64, describe(&bad)),
        });
    };
    let mut reason = describe(&bad);
    if let Some(page) = torn_page {
        reason.push_str(&format!("; the page at offset {page} was never written"));
    }
    Ok(LogReplay {
        header: Some(header),
        records,
        valid_len: pos as u64,
        dropped: Some(DroppedTail {
            kind,
            offset: pos as u64,
            bytes: (data.len() - pos) as u64,
            records_after,
            reason,
        }),
    })
}

/// One step of the record walk.
enum Parsed {
    Record {
        payload: std::ops::Range<usize>,
        next: usize,
    },
    /// Twelve zero bytes (or fewer, all zero, at the end of the file).
    ZeroHeader,
    Bad(Bad),
}

/// A record that is not valid, and how far it claims to extend.
struct Bad {
    /// End of the bytes the bad record covers: its claimed end, clipped to
    /// the file, or just its header if the length is impossible.
    extent_end: usize,
    problem: Problem,
}

enum Problem {
    Checksum { expected: u64, actual: u64 },
    ImpossibleLength(u32),
    Truncated { len: u32, available: usize },
    TruncatedHeader(usize),
    ZeroHeader,
}

impl Problem {
    fn describe(&self) -> String {
        match self {
            Problem::Checksum { expected, actual } => {
                format!("record checksum mismatch: expected {expected:#018x}, found {actual:#018x}")
            }
            Problem::ImpossibleLength(len) => format!("impossible record length {len}"),
            Problem::Truncated { len, available } => {
                format!("record of {len} payload bytes truncated by the end of the file ({available} available)")
            }
            Problem::TruncatedHeader(n) => {
                format!("record header truncated by the end of the file ({n} bytes)")
            }
            Problem::ZeroHeader => "all-zero record header followed by non-zero bytes".to_string(),
        }
    }
}

fn parse_record(data: &[u8], pos: usize) -> Parsed {
    let rest = &data[pos..];
    if rest.len() < RECORD_HEADER_SIZE {
        if all_zero(rest) {
            return Parsed::ZeroHeader;
        }
        return Parsed::Bad(Bad {
            extent_end: data.len(),
            problem: Problem::TruncatedHeader(rest.len()),
        });
    }
    let (stored, len) = header_fields(rest);
    if stored == 0 && len == 0 {
        return Parsed::ZeroHeader;
    }
    if len == 0 || len as usize > RECORD_PAYLOAD_BYTES_MAX {
        return Parsed::Bad(Bad {
            extent_end: pos + RECORD_HEADER_SIZE,
            problem: Problem::ImpossibleLength(len),
        });
    }
    let end = RECORD_HEADER_SIZE + len as usize;
    if end > rest.len() {
        return Parsed::Bad(Bad {
            extent_end: data.len(),
            problem: Problem::Truncated {
                len,
                available: rest.len() - RECORD_HEADER_SIZE,
            },
        });
    }
    let actual = record_checksum(&rest[8..end]);
    if actual != stored {
        return Parsed::Bad(Bad {
            extent_end: pos + end,
            problem: Problem::Checksum {
                expected: stored,
                actual,
            },
        });
    }
    Parsed::Record {
        payload: pos + RECORD_HEADER_SIZE..pos + end,
        next: pos + end,
    }
}

/// (checksum, len) of a record header; `bytes` holds at least 12 bytes.
fn header_fields(bytes: &[u8]) -> (u64, u32) {
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&bytes[..8]);
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[8..12]);
    (u64::from_le_bytes(sum), u32::from_le_bytes(len))
}

/// The torn-write signature: the offset of a page overlapping the bad
/// record `[start, end)` that reads all zeros from `max(page start, start)`
/// to the page end (clipped to the file).
fn zeroed_page(data: &[u8], start: usize, end: usize) -> Option<usize> {
    let end = end.min(data.len()).max(start + 1);
    let mut page = align_down(start);
    while page < end {
        let from = page.max(start);
        let to = (page + IO_ALIGN).min(data.len());
        if from < to && all_zero(&data[from..to]) {
            return Some(page);
        }
        page += IO_ALIGN;
    }
    None
}

enum Scan {
    Found(usize),
    NotFound,
    GaveUp,
}

/// The first offset at or after `from` holding a valid record.
fn find_valid_record(data: &[u8], from: usize, budget: &mut usize) -> Scan {
    let last = match data.len().checked_sub(RECORD_HEADER_SIZE) {
        Some(last) => last,
        None => return Scan::NotFound,
    };
    for pos in from..=last {
        let (stored, len) = header_fields(&data[pos..]);
        let len = len as usize;
        if len == 0 || len > RECORD_PAYLOAD_BYTES_MAX || len > last - pos {
            continue;
        }
        let hashed = len + 4;
        if hashed > *budget {
            return Scan::GaveUp;
        }
        *budget -= hashed;
        if record_checksum(&data[pos + 8..pos + RECORD_HEADER_SIZE + len]) == stored {
            return Scan::Found(pos);
        }
    }
    Scan::NotFound
}

/// Valid records from `from` (a valid record, or any offset) to the end of
/// the file, resynchronising past bad bytes. Returns the count and whether
/// it is exact (false if the hashing budget ran out).
fn count_valid_records(data: &[u8], from: usize, budget: &mut usize) -> (usize, bool) {
    let mut count = 0;
    let mut pos = from;
    while pos < data.len() {
        match parse_record(data, pos) {
            Parsed::Record { next, .. } => {
                count += 1;
                pos = next;
            }
            Parsed::ZeroHeader | Parsed::Bad(_) => match find_valid_record(data, pos + 1, budget) {
                Scan::Found(at) => pos = at,
                Scan::NotFound => return (count, true),
                Scan::GaveUp => return (count, false),
            },
        }
    }
    (count, true)
}

fn lower_bound_note(exact: bool) -> &'static str {
    if exact {
        ""
    } else {
        " (count of valid records after it is a lower bound)"
    }
}

fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}
