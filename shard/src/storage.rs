//! The production storage backend: glommio `DmaFile`s (O_DIRECT, io_uring)
//! in one directory per shard. Implements the engine's
//! [`Storage`](lumadb_engine::storage::Storage) seam. Calls must run inside
//! a glommio executor.
//!
//! **Metadata calls run inline.** `ftruncate`, `rename`, `unlink` and the
//! directory listing run directly on the executor thread. glommio would
//! send them to its blocking thread pool, whose completion wake-up was
//! seen to be lost under CPU contention: a shard slept forever with its
//! flush waiting, and short of that, the delayed wake-ups showed up as
//! 100+ ms write stalls. These calls happen a few times per flush or
//! compaction, never per request, and take microseconds; moving them to
//! io_uring (`IORING_OP_RENAMEAT`, `UNLINKAT`, `FTRUNCATE`) is the planned
//! replacement.

use glommio::io::{BufferedFile, DmaBuffer, DmaFile, OpenOptions};
use glommio::TaskQueueHandle;
use lumadb_engine::storage::{Storage, StorageFile, IO_ALIGN};
use lumadb_engine::{Error, Result};
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Write buffers a shard keeps for reuse, at most.
const WRITE_BUFFERS_KEPT: usize = 4;

/// Bytes of write buffers a shard keeps for reuse, at most.
const WRITE_BUFFER_KEPT_BYTES: usize = 8 << 20;

/// Smallest write buffer allocated, so that the WAL's writes of varying
/// length share one.
const WRITE_BUFFER_MIN_BYTES: usize = 256 << 10;

/// The longest the background queue works before it hands the core
/// back to requests, at its next yield point. glommio lets a queue run
/// for its whole preemption slice (2 ms here), which every request on
/// the core then waits out; a shorter slice for all queues cost
/// throughput.
pub const BACKGROUND_SLICE: Duration = Duration::from_micros(250);

thread_local! {
    /// This shard's background task queue ([`set_background_queue`]).
    static BACKGROUND_QUEUE: Cell<Option<TaskQueueHandle>> = const { Cell::new(None) };
    /// When the background queue last handed the core back.
    static BACKGROUND_YIELDED_AT: Cell<Option<Instant>> = const { Cell::new(None) };
    /// DMA buffers of this shard's finished writes. A fresh buffer for
    /// every write faults its pages in on the write path, and in a virtual
    /// machine whose host backs memory on first use that cost up to 4 ms
    /// per WAL write; a reused buffer's pages are already there.
    static WRITE_BUFFERS: RefCell<Vec<DmaBuffer>> = const { RefCell::new(Vec::new()) };

    /// A zeroed buffer every zero fill of this shard writes from (the
    /// kernel only reads it, so writes may share it).
    static ZEROS: RefCell<Option<Rc<DmaBuffer>>> = const { RefCell::new(None) };
}

/// Bytes of the shared zeroed buffer: the WAL's zero fill ahead.
const ZERO_BUFFER_BYTES: usize = lumadb_engine::wal::WAL_PREALLOC_BYTES;

/// A buffer of `len` bytes for a write to `file`: a kept one if one is big
/// enough, else a new one rounded up so later writes can reuse it.
fn take_write_buffer(file: &DmaFile, len: usize) -> DmaBuffer {
    let kept = WRITE_BUFFERS.with(|b| {
        let mut b = b.borrow_mut();
        let i = b.iter().position(|buf| buf.capacity() >= len)?;
        Some(b.swap_remove(i))
    });
    let mut buf = kept.unwrap_or_else(|| file.alloc_dma_buffer(len.next_power_of_two().max(WRITE_BUFFER_MIN_BYTES)));
    buf.set_len(len);
    buf
}

/// Keeps `buf` for a later write if the shard's budget allows.
fn keep_write_buffer(buf: DmaBuffer) {
    WRITE_BUFFERS.with(|b| {
        let mut b = b.borrow_mut();
        let kept: usize = b.iter().map(DmaBuffer::capacity).sum();
        if b.len() < WRITE_BUFFERS_KEPT && kept + buf.capacity() <= WRITE_BUFFER_KEPT_BYTES {
            b.push(buf);
        }
    });
}

/// Names `tq` as this shard's background queue: its tasks' yield points
/// hand the core back every [`BACKGROUND_SLICE`].
pub fn set_background_queue(tq: TaskQueueHandle) {
    BACKGROUND_QUEUE.with(|q| q.set(Some(tq)));
}

/// A file [`DmaStorage::open`] writes and reads once, then removes, so that
/// glommio's per-device polling probe reads real data (see there).
pub const PROBE_FILE_NAME: &str = "LUMADB.probe";

/// A shard's data directory, accessed with O_DIRECT through io_uring.
#[derive(Clone, Debug)]
pub struct DmaStorage {
    dir: Rc<PathBuf>,
    /// Read tables through the OS page cache (`[memory] use_mmap`).
    page_cache_reads: bool,
}

impl DmaStorage {
    /// Uses `dir`, creating it if needed, and primes glommio's per-device
    /// I/O-polling probe (see [`PROBE_FILE_NAME`]). Call it once per shard
    /// at startup, inside the shard's executor, before serving: it does a
    /// few blocking filesystem calls.
    pub async fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), "create directory", e))?;
        // io_uring's openat is given absolute paths: relative ones would
        // resolve against nothing useful for a directory fd.
        let dir = std::fs::canonicalize(&dir).map_err(|e| Error::io(dir.display(), "resolve directory", e))?;
        // glommio decides once per block device whether it can use the
        // I/O-polling ring. Where sysfs does not answer (our vendored
        // glommio reads `queue/io_poll` first), it probes by reading the
        // first file opened on the device, and an empty file reads
        // "successfully" without touching the device: a new WAL segment
        // opened first would enable polling on a device without poll
        // queues. Open a file with a real page in it first.
        let probe = dir.join(PROBE_FILE_NAME);
        std::fs::write(&probe, [0u8; IO_ALIGN]).map_err(|e| Error::io(probe.display(), "write", e))?;
        let f = DmaFile::open(&probe)
            .await
            .map_err(|e| Error::io(probe.display(), "open", io_error(e)))?;
        let _ = f.close().await;
        std::fs::remove_file(&probe).map_err(|e| Error::io(probe.display(), "remove", e))?;
        Ok(DmaStorage {
            dir: Rc::new(dir),
            page_cache_reads: false,
        })
    }

    /// With `true`, tables opened for reading are read through the OS page
    /// cache (buffered reads, still through io_uring) instead of O_DIRECT:
    /// the `[memory] use_mmap` setting. Files are not memory-mapped,
    /// because a page fault on a mapped file would stall the core's
    /// executor, and the page cache gives the same effect: the OS keeps
    /// hot table data in otherwise unused RAM.
    pub fn with_page_cache_reads(mut self, on: bool) -> Self {
        self.page_cache_reads = on;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        assert!(!name.contains('/'), "storage names are bare file names: {name}");
        self.dir.join(name)
    }
}

/// One O_DIRECT file.
#[derive(Clone)]
pub struct DmaStorageFile {
    file: Rc<DmaFile>,
    /// A buffered (page cache) handle used for reads, when configured.
    buffered: Option<Rc<BufferedFile>>,
    name: Rc<str>,
}

impl DmaStorageFile {
    fn err(&self, op: &'static str, e: glommio::GlommioError<()>) -> Error {
        Error::io(&*self.name, op, io_error(e))
    }
}

/// The OS error inside a glommio error, without glommio's own wording
/// (our error already names the file and the operation).
fn io_error(e: glommio::GlommioError<()>) -> std::io::Error {
    match e {
        glommio::GlommioError::IoError(e) => e,
        glommio::GlommioError::EnhancedIoError { source, .. } => source,
        other => std::io::Error::other(other.to_string()),
    }
}

impl DmaStorageFile {
    /// Writes all of `buf` at `offset`, or as much as the kernel took;
    /// answers how much, a positive multiple of [`IO_ALIGN`].
    async fn write_buffer(&self, buf: Rc<DmaBuffer>, offset: u64) -> Result<usize> {
        let n = self
            .file
            .write_rc_at(buf, offset)
            .await
            .map_err(|e| self.err("write", e))?;
        if n == 0 {
            return Err(Error::io(
                &*self.name,
                "write",
                std::io::Error::from(std::io::ErrorKind::WriteZero),
            ));
        }
        if n % IO_ALIGN != 0 {
            // A short O_DIRECT write that ends mid-page cannot be resumed aligned.
            return Err(Error::io(
                &*self.name,
                "write",
                std::io::Error::other(format!("short unaligned write of {n} bytes")),
            ));
        }
        Ok(n)
    }
}

impl StorageFile for DmaStorageFile {
    fn name(&self) -> &str {
        &self.name
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let r = match &self.buffered {
            Some(b) => b.read_at(offset, len).await,
            None => self.file.read_at(offset, len).await,
        }
        .map_err(|e| self.err("read", e))?;
        if r.len() != len {
            return Err(Error::io(
                &*self.name,
                "read",
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("read of {len} bytes at {offset} returned {}", r.len()),
                ),
            ));
        }
        Ok(r.to_vec())
    }

    async fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        assert_eq!(offset as usize % IO_ALIGN, 0, "unaligned write offset");
        assert_eq!(data.len() % IO_ALIGN, 0, "unaligned write length");
        let mut done = 0usize;
        while done < data.len() {
            let chunk = &data[done..];
            let mut buf = take_write_buffer(&self.file, chunk.len());
            buf.as_bytes_mut().copy_from_slice(chunk);
            let buf = Rc::new(buf);
            let written = self.write_buffer(buf.clone(), offset + done as u64).await;
            // The kernel is done with the buffer once the write completed.
            if let Ok(buf) = Rc::try_unwrap(buf) {
                keep_write_buffer(buf);
            }
            done += written?;
        }
        Ok(())
    }

    async fn write_zeros_at(&self, offset: u64, len: usize) -> Result<()> {
        assert_eq!(offset as usize % IO_ALIGN, 0, "unaligned write offset");
        assert_eq!(len % IO_ALIGN, 0, "unaligned write length");
        let mut done = 0usize;
        while done < len {
            let buf = match len - done {
                ZERO_BUFFER_BYTES.. => ZEROS.with(|z| {
                    z.borrow_mut()
                        .get_or_insert_with(|| {
                            let mut buf = self.file.alloc_dma_buffer(ZERO_BUFFER_BYTES);
                            buf.as_bytes_mut().fill(0);
                            Rc::new(buf)
                        })
                        .clone()
                }),
                // The tail of an odd length, or of a short write.
                rest => {
                    let mut buf = self.file.alloc_dma_buffer(rest);
                    buf.as_bytes_mut().fill(0);
                    Rc::new(buf)
                }
            };
            done += self.write_buffer(buf, offset + done as u64).await?;
        }
        Ok(())
    }

    async fn sync(&self) -> Result<()> {
        self.file.fdatasync().await.map_err(|e| self.err("fdatasync", e))
    }

    async fn size(&self) -> Result<u64> {
        self.file.file_size().await.map_err(|e| self.err("stat", e))
    }

    /// `ftruncate` on this thread (see the module docs).
    async fn truncate(&self, size: u64) -> Result<()> {
        let size = libc::off_t::try_from(size).map_err(|_| {
            Error::io(
                &*self.name,
                "truncate",
                std::io::Error::from(std::io::ErrorKind::InvalidInput),
            )
        })?;
        // SAFETY: the fd is open for as long as `self.file` lives.
        let r = unsafe { libc::ftruncate(std::os::fd::AsRawFd::as_raw_fd(&*self.file), size) };
        if r != 0 {
            return Err(Error::io(&*self.name, "truncate", std::io::Error::last_os_error()));
        }
        Ok(())
    }
}

impl Storage for DmaStorage {
    type File = DmaStorageFile;

    async fn create(&self, name: &str) -> Result<DmaStorageFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(self.path(name))
            .await
            .map_err(|e| Error::io(name, "create", io_error(e)))?;
        Ok(DmaStorageFile {
            file: Rc::new(file),
            buffered: None,
            name: name.into(),
        })
    }

    async fn open(&self, name: &str) -> Result<DmaStorageFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(self.path(name))
            .await
            .map_err(|e| Error::io(name, "open", io_error(e)))?;
        let buffered = if self.page_cache_reads && name.ends_with(".sst") {
            let b = BufferedFile::open(self.path(name))
                .await
                .map_err(|e| Error::io(name, "open", io_error(e)))?;
            Some(Rc::new(b))
        } else {
            None
        };
        Ok(DmaStorageFile {
            file: Rc::new(file),
            buffered,
            name: name.into(),
        })
    }

    async fn exists(&self, name: &str) -> Result<bool> {
        // An open through io_uring, not a stat on the blocking pool: the
        // manifest update asks this on the write path.
        match OpenOptions::new().read(true).dma_open(self.path(name)).await {
            Ok(f) => {
                let _ = f.close().await;
                Ok(true)
            }
            Err(e) => {
                let e = io_error(e);
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(false)
                } else {
                    Err(Error::io(name, "open", e))
                }
            }
        }
    }

    /// `unlink` on this thread (see the module docs).
    async fn remove(&self, name: &str) -> Result<()> {
        std::fs::remove_file(self.path(name)).map_err(|e| Error::io(name, "remove", e))
    }

    /// `rename` on this thread (see the module docs).
    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        std::fs::rename(self.path(from), self.path(to)).map_err(|e| Error::io(format!("{from} -> {to}"), "rename", e))
    }

    /// Reads the directory with a plain `readdir` (see the module docs);
    /// the engine lists its directory only while opening.
    async fn list(&self) -> Result<Vec<String>> {
        let shown = self.dir.display().to_string();
        let read = || -> std::io::Result<Vec<String>> {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(&*self.dir)? {
                if let Some(n) = entry?.file_name().to_str() {
                    names.push(n.to_string());
                }
            }
            Ok(names)
        };
        read().map_err(|e| Error::io(shown, "list directory", e))
    }

    async fn sync_dir(&self) -> Result<()> {
        let shown = self.dir.display().to_string();
        let d = glommio::io::Directory::open(&*self.dir)
            .await
            .map_err(|e| Error::io(&shown, "open directory", io_error(e)))?;
        d.sync()
            .await
            .map_err(|e| Error::io(&shown, "fsync directory", io_error(e)))?;
        d.close()
            .await
            .map_err(|e| Error::io(&shown, "close directory", io_error(e)))
    }

    /// In the background queue, also yields the queue once it has
    /// worked [`BACKGROUND_SLICE`] since it last did.
    async fn yield_if_needed(&self) {
        let background = BACKGROUND_QUEUE.with(Cell::get);
        if background.is_some() && background == Some(glommio::executor().current_task_queue()) {
            let now = Instant::now();
            let due = BACKGROUND_YIELDED_AT.with(|at| at.get().is_none_or(|t| now - t >= BACKGROUND_SLICE));
            if due {
                glommio::executor().yield_task_queue_now().await;
                BACKGROUND_YIELDED_AT.with(|at| at.set(Some(Instant::now())));
                return;
            }
        }
        glommio::yield_if_needed().await
    }
}
