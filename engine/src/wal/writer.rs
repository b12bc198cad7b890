//! [`LogWriter`]: appends records to one WAL segment with page-aligned
//! writes.
//!
//! Writes must be [`IO_ALIGN`]-aligned in offset and length (O_DIRECT), but
//! records are packed back to back with no padding. So the writer keeps the
//! last, partially filled page of the log in memory, and every `write`
//! rewrites that page (its already-written prefix unchanged) followed by the
//! new bytes, zero-padded to a page boundary. The log's logical end is
//! therefore followed by zeros on disk, which the reader takes as the end.
//!
//! **Media assumption.** Rewriting the partial page re-sends bytes that may
//! already be durable (acknowledged records). This is only safe if a
//! device that loses power during a write leaves each sector holding either
//! its old or its new content: since the old and new contents of the
//! rewritten page agree on every byte already written, either outcome keeps
//! the durable prefix intact. Devices with atomic sector writes (every
//! enterprise SSD with power-loss protection, and HDDs at 512 B / 4 KiB
//! sectors) meet it; a device that can scramble a sector under a torn write
//! could damage acknowledged records in the last page.

use super::{
    check_batch_seqs, record_checksum, SegmentHeader, RECORD_HEADER_SIZE, RECORD_PAYLOAD_BYTES_MAX, SEGMENT_HEADER_SIZE,
};
use crate::batch::WriteBatch;
use crate::coding::{put_u32, put_u64};
use crate::key::SeqNo;
use crate::storage::{align_down, align_up, StorageFile, IO_ALIGN};
use crate::{Error, Result};

/// Zero-filled space the writer keeps ahead of the log's end. Writes that
/// stay inside already-written blocks change no file metadata, so their
/// fdatasync is a pure data flush; growing the file a page at a time
/// would make every sync also commit a size change to the filesystem
/// journal (a few milliseconds on ext4). One extension per this many
/// bytes amortises that. The zeros read as "end of log".
pub const WAL_PREALLOC_BYTES: usize = 1 << 20;

const _: () = assert!(WAL_PREALLOC_BYTES.is_multiple_of(IO_ALIGN));

/// Capacity the writer's buffer keeps between writes (a few write-behind
/// pieces), so the steady state allocates nothing.
const WAL_BUFFER_KEPT_BYTES: usize = 2 * WAL_PREALLOC_BYTES;

/// Appends records to one segment. Owned by one task at a time (the
/// group-commit leader); it has no internal locking.
///
/// Fail-stop: after a failed write, sync or truncate, every later call
/// returns [`Error::Poisoned`] naming the first failure. An fsync is never
/// retried: after a failed fsync the kernel may have dropped the dirty
/// pages, so a later "successful" fsync proves nothing.
pub struct LogWriter<F: StorageFile> {
    file: F,
    /// The segment's number: tells this writer's I/O from an earlier
    /// segment's.
    segment: u64,
    /// File offset of `buf[0]`; always page aligned.
    buf_offset: u64,
    /// The last partial page already written (`buf[..written_in_buf]`),
    /// followed by appended, not yet written records.
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already written to the file.
    written_in_buf: usize,
    /// Logical bytes written (header page included).
    written_len: u64,
    /// Logical bytes made durable by the last successful `sync`.
    synced_len: u64,
    /// Bytes of the file already written (records or zero fill).
    allocated_len: u64,
    /// Description of the first failure; set once, never cleared.
    poisoned: Option<String>,
    /// A [`WalWrite`] is out (started, not yet finished).
    writing: bool,
    /// The buffer of the last finished write, kept for the next one.
    spare: Vec<u8>,
}

/// One write of a segment's buffered records, handed out by
/// [`LogWriter::start_write`]. Whoever holds it performs the I/O
/// ([`WalWrite::run`]) without borrowing the writer, which meanwhile
/// takes further appends, and hands it back to
/// [`LogWriter::finish_write`].
pub struct WalWrite<F: StorageFile> {
    file: F,
    segment: u64,
    offset: u64,
    data: Vec<u8>,
    /// Where [`WAL_PREALLOC_BYTES`] of zero fill go after `data`, if the
    /// write reaches past the fill already written.
    zero_fill_at: Option<u64>,
    /// The writer's `written_len` once this write is done.
    logical_end: u64,
}

impl<F: StorageFile> WalWrite<F> {
    /// Performs the write.
    pub async fn run(&self) -> Result<()> {
        self.file.write_at(self.offset, &self.data).await?;
        if let Some(at) = self.zero_fill_at {
            self.file.write_zeros_at(at, WAL_PREALLOC_BYTES).await?;
        }
        Ok(())
    }

    /// Bytes this write sends to the file (zero fill included).
    pub fn len(&self) -> usize {
        self.data.len()
            + if self.zero_fill_at.is_some() {
                WAL_PREALLOC_BYTES
            } else {
                0
            }
    }

    /// Whether the write sends nothing (never true of a started write).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// One fdatasync of a segment, handed out by [`LogWriter::start_sync`]:
/// it covers what was written when it started.
pub struct WalSync<F: StorageFile> {
    file: F,
    segment: u64,
    /// Logical bytes written when the sync started.
    len: u64,
}

impl<F: StorageFile> WalSync<F> {
    /// Performs the fdatasync.
    pub async fn run(&self) -> Result<()> {
        self.file.sync().await
    }
}

impl<F: StorageFile> std::fmt::Debug for LogWriter<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("file", &self.file.name())
            .field("len", &self.len())
            .field("written_len", &self.written_len)
            .field("synced_len", &self.synced_len)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

impl<F: StorageFile> LogWriter<F> {
    /// Starts segment `segment_number` in a freshly created, empty `file`:
    /// writes the header page and syncs it, so that a segment holding any
    /// record always has a durable header (the reader relies on this to
    /// tell a segment whose creation was torn from a damaged one). The
    /// caller syncs the directory to make the new name durable.
    pub async fn create(file: F, segment_number: u64) -> Result<Self> {
        let size = file.size().await?;
        if size != 0 {
            return Err(Error::InvalidArgument(format!(
                "new WAL segment {} is not empty ({size} bytes)",
                file.name()
            )));
        }
        let header = SegmentHeader::new(segment_number).encode();
        file.write_at(0, &header).await?;
        file.sync().await?;
        Ok(LogWriter {
            file,
            segment: segment_number,
            buf_offset: SEGMENT_HEADER_SIZE as u64,
            buf: Vec::new(),
            written_in_buf: 0,
            written_len: SEGMENT_HEADER_SIZE as u64,
            synced_len: SEGMENT_HEADER_SIZE as u64,
            allocated_len: SEGMENT_HEADER_SIZE as u64,
            poisoned: None,
            writing: false,
            spare: Vec::new(),
        })
    }

    /// Continues an existing segment after replay: `valid_len` is
    /// [`LogReplay::valid_len`](super::LogReplay::valid_len) of this file.
    /// Reads the last partial page back, truncates the file to `valid_len`
    /// (discarding any torn tail) and syncs, so that stale bytes past the
    /// new records can never be mistaken for records later.
    pub async fn open_for_append(file: F, valid_len: u64) -> Result<Self> {
        if valid_len < SEGMENT_HEADER_SIZE as u64 {
            return Err(Error::InvalidArgument(format!(
                "WAL segment {} has no durable header (valid length {valid_len}); create a new segment",
                file.name()
            )));
        }
        let size = file.size().await?;
        if valid_len > size {
            return Err(Error::InvalidArgument(format!(
                "valid length {valid_len} of WAL segment {} is past its size {size}",
                file.name()
            )));
        }
        let buf_offset = align_down(valid_len as usize) as u64;
        let tail_len = (valid_len - buf_offset) as usize;
        let buf = file.read_at(buf_offset, tail_len).await?;
        assert_eq!(buf.len(), tail_len);
        if size != valid_len {
            file.truncate(valid_len).await?;
        }
        file.sync().await?;
        let segment = super::parse_wal_file_name(file.name()).unwrap_or(0);
        Ok(LogWriter {
            file,
            segment,
            buf_offset,
            buf,
            written_in_buf: tail_len,
            written_len: valid_len,
            synced_len: valid_len,
            allocated_len: valid_len,
            poisoned: None,
            writing: false,
            spare: Vec::new(),
        })
    }

    /// Buffers one record carrying `payload` (1 ..= RECORD_PAYLOAD_BYTES_MAX
    /// bytes). Nothing reaches the file until [`write`](Self::write).
    pub fn append(&mut self, payload: &[u8]) -> Result<()> {
        self.check_poisoned()?;
        assert!(!payload.is_empty(), "empty WAL record");
        assert!(
            payload.len() <= RECORD_PAYLOAD_BYTES_MAX,
            "WAL record of {} bytes",
            payload.len()
        );
        let start = self.begin_record(payload.len());
        self.buf.extend_from_slice(payload);
        self.finish_record(start);
        Ok(())
    }

    /// Buffers the batch record of `batch` with sequence numbers starting
    /// at `first_seq` (the payload of
    /// [`encode_batch_record`](super::encode_batch_record), framed in place
    /// without an intermediate copy).
    pub fn append_batch(&mut self, first_seq: SeqNo, batch: &WriteBatch) -> Result<()> {
        self.check_poisoned()?;
        check_batch_seqs(first_seq, batch);
        let payload_len = super::BATCH_RECORD_PREFIX_SIZE + batch.encoded_size();
        assert!(payload_len <= RECORD_PAYLOAD_BYTES_MAX);
        let start = self.begin_record(payload_len);
        put_u64(&mut self.buf, first_seq);
        put_u32(&mut self.buf, batch.len() as u32);
        self.buf.extend_from_slice(batch.as_bytes());
        self.finish_record(start);
        Ok(())
    }

    /// Writes everything buffered with one storage write: the partial page
    /// already on disk, the new records, and zero padding to the next page
    /// boundary. Does nothing if nothing is buffered. Not durable until
    /// [`sync`](Self::sync).
    pub async fn write(&mut self) -> Result<()> {
        if let Some(w) = self.start_write()? {
            let r = w.run().await;
            self.finish_write(w, r)?;
        }
        assert_eq!(self.written_len, self.len());
        Ok(())
    }

    /// Hands out the write of everything buffered (see [`write`](Self::write)),
    /// or `None` if nothing is. Appends may continue while it runs; the
    /// next write starts only after [`finish_write`](Self::finish_write),
    /// since it rewrites this one's last page.
    ///
    /// # Panics
    /// If a write is already out ([`is_writing`](Self::is_writing)).
    pub fn start_write(&mut self) -> Result<Option<WalWrite<F>>> {
        self.check_poisoned()?;
        assert!(!self.writing, "one WAL write at a time");
        if self.buffered_bytes() == 0 {
            return Ok(None);
        }
        let logical = self.buf.len();
        let padded = align_up(logical);
        let offset = self.buf_offset;
        // Zero-fill ahead (see WAL_PREALLOC_BYTES), as a write of its own
        // from a kept zeroed buffer: padding the records' buffer instead
        // filled and copied a megabyte on the executor.
        let end = offset + padded as u64;
        let zero_fill_at = (end > self.allocated_len).then_some(end);
        // The next write starts over from the last partial page.
        let full = align_down(logical);
        let mut next = std::mem::take(&mut self.spare);
        next.clear();
        next.extend_from_slice(&self.buf[full..logical]);
        let mut data = std::mem::replace(&mut self.buf, next);
        data.resize(padded, 0);
        self.buf_offset += full as u64;
        self.written_in_buf = self.buf.len();
        self.allocated_len = self
            .allocated_len
            .max(end + zero_fill_at.map_or(0, |_| WAL_PREALLOC_BYTES as u64));
        self.writing = true;
        assert!(self.buf.len() < IO_ALIGN);
        assert_eq!(self.buf_offset % IO_ALIGN as u64, 0);
        Ok(Some(WalWrite {
            file: self.file.clone(),
            segment: self.segment,
            offset,
            data,
            zero_fill_at,
            logical_end: offset + logical as u64,
        }))
    }

    /// Takes back a write handed out by [`start_write`](Self::start_write)
    /// with its outcome. A failed write poisons the writer.
    pub fn finish_write(&mut self, w: WalWrite<F>, result: Result<()>) -> Result<()> {
        assert!(self.writing && w.segment == self.segment, "a write of another segment");
        self.writing = false;
        if let Err(e) = result {
            return Err(self.poison("write", e));
        }
        self.written_len = self.written_len.max(w.logical_end);
        // Keep the buffer for the next write, zero fill included: giving
        // the memory back and growing again faults fresh pages in on the
        // write path each time (the allocator returns freed pages to the OS).
        let mut data = w.data;
        data.clear();
        data.shrink_to(WAL_BUFFER_KEPT_BYTES);
        self.spare = data;
        Ok(())
    }

    /// Whether a write handed out by [`start_write`](Self::start_write) is
    /// not yet finished.
    pub fn is_writing(&self) -> bool {
        self.writing
    }

    /// fdatasync: makes every written record durable. Buffered records that
    /// were not yet written are not included.
    pub async fn sync(&mut self) -> Result<()> {
        let s = self.start_sync()?;
        let r = s.run().await;
        self.finish_sync(s, r)
    }

    /// Hands out an fdatasync covering what is written now.
    pub fn start_sync(&self) -> Result<WalSync<F>> {
        self.check_poisoned()?;
        Ok(WalSync {
            file: self.file.clone(),
            segment: self.segment,
            len: self.written_len,
        })
    }

    /// Takes back a sync handed out by [`start_sync`](Self::start_sync)
    /// (of this segment or, after a roll, of an earlier one) with its
    /// outcome. A failed fdatasync poisons the writer: it is never retried.
    pub fn finish_sync(&mut self, s: WalSync<F>, result: Result<()>) -> Result<()> {
        if let Err(e) = result {
            return Err(self.poison("fdatasync", e));
        }
        if s.segment == self.segment {
            self.synced_len = self.synced_len.max(s.len);
        }
        Ok(())
    }

    /// The segment's number.
    pub fn segment(&self) -> u64 {
        self.segment
    }

    /// Logical length of the log, buffered records included.
    pub fn len(&self) -> u64 {
        self.buf_offset + self.buf.len() as u64
    }

    /// Whether the segment holds no record (buffered ones included).
    pub fn is_empty(&self) -> bool {
        self.len() == SEGMENT_HEADER_SIZE as u64
    }

    /// Appended bytes not yet written.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len() - self.written_in_buf
    }

    /// Logical bytes written to the file.
    pub fn written_len(&self) -> u64 {
        self.written_len
    }

    /// Logical bytes known durable.
    pub fn synced_len(&self) -> u64 {
        self.synced_len
    }

    /// Whether an earlier failure has made this writer refuse all calls.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// The underlying file.
    pub fn file(&self) -> &F {
        &self.file
    }

    /// Reserves the header of a record with a `payload_len`-byte payload;
    /// returns where the record starts in `buf`.
    fn begin_record(&mut self, payload_len: usize) -> usize {
        let start = self.buf.len();
        self.buf.reserve(RECORD_HEADER_SIZE + payload_len);
        put_u64(&mut self.buf, 0);
        put_u32(&mut self.buf, payload_len as u32);
        start
    }

    /// Fills in the checksum of the record starting at `buf[start]`.
    fn finish_record(&mut self, start: usize) {
        let frame = &mut self.buf[start..];
        let len = u32::from_le_bytes([frame[8], frame[9], frame[10], frame[11]]) as usize;
        assert_eq!(frame.len(), RECORD_HEADER_SIZE + len, "record payload length mismatch");
        let sum = record_checksum(&frame[8..]);
        frame[..8].copy_from_slice(&sum.to_le_bytes());
    }

    fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(Error::Poisoned { cause: cause.clone() }),
            None => Ok(()),
        }
    }

    fn poison(&mut self, op: &str, e: Error) -> Error {
        // A write and a sync may both be out when the device fails: the
        // first failure is the cause.
        if self.poisoned.is_none() {
            self.poisoned = Some(format!("WAL {op} on {} failed: {e}", self.file.name()));
        }
        e
    }
}
