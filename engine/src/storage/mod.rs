//! The storage seam: everything the engine does to disk goes through
//! [`Storage`] and [`StorageFile`]. Production uses glommio's `DmaFile`
//! (O_DIRECT through io_uring, in the `shard` crate); tests use
//! [`mem::MemStorage`], which keeps durable and not-yet-synced bytes apart
//! and can crash at any point.
//!
//! The contract every backend keeps, and the engine relies on:
//!
//! - **Aligned writes.** `write_at` offsets and lengths are multiples of
//!   [`IO_ALIGN`]; backends may reject anything else. Reads may be unaligned.
//! - **Durability only through `sync`.** Bytes written but not synced may be
//!   lost, or partly lost, on a crash. `sync` is fdatasync: data and the size.
//! - **Names are durable only after `sync_dir`.** A created, renamed or
//!   removed file may revert on a crash until the directory is synced.
//! - **`rename` is atomic**: after a crash the target holds the old or the
//!   new file, never a mix.
//! - Paths are bare file names inside the engine's own directory.

pub mod mem;

use crate::Result;
use std::future::Future;

/// Alignment (bytes) of every write offset and length: one page, the
/// O_DIRECT unit of every device LumaDB supports.
pub const IO_ALIGN: usize = 4096;

const _: () = assert!(IO_ALIGN.is_power_of_two());

/// Rounds `n` up to a multiple of [`IO_ALIGN`].
#[inline]
pub const fn align_up(n: usize) -> usize {
    (n + IO_ALIGN - 1) & !(IO_ALIGN - 1)
}

/// Rounds `n` down to a multiple of [`IO_ALIGN`].
#[inline]
pub const fn align_down(n: usize) -> usize {
    n & !(IO_ALIGN - 1)
}

/// One open file. Handles are cheap to clone (reference-counted by the
/// backend); the file closes when the last handle drops.
pub trait StorageFile: Clone + 'static {
    /// The file's name, for error messages.
    fn name(&self) -> &str;

    /// Reads exactly `len` bytes at `offset`; reading past the end is an error.
    fn read_at(&self, offset: u64, len: usize) -> impl Future<Output = Result<Vec<u8>>>;

    /// Writes `data` at `offset`. Both must be multiples of [`IO_ALIGN`].
    fn write_at(&self, offset: u64, data: &[u8]) -> impl Future<Output = Result<()>>;

    /// Writes `len` zero bytes at `offset`. Both must be multiples of
    /// [`IO_ALIGN`]. A backend may keep one zeroed buffer for this, so
    /// that extending a file neither fills nor copies memory.
    fn write_zeros_at(&self, offset: u64, len: usize) -> impl Future<Output = Result<()>> {
        async move { self.write_at(offset, &vec![0; len]).await }
    }

    /// fdatasync: everything written so far, and the file size, is durable.
    fn sync(&self) -> impl Future<Output = Result<()>>;

    /// Current size in bytes.
    fn size(&self) -> impl Future<Output = Result<u64>>;

    /// Sets the size; bytes past it are discarded.
    fn truncate(&self, size: u64) -> impl Future<Output = Result<()>>;
}

/// A directory of files owned by one engine instance.
pub trait Storage: Clone + 'static {
    type File: StorageFile;

    /// Creates (or truncates) a file for writing and reading.
    fn create(&self, name: &str) -> impl Future<Output = Result<Self::File>>;

    /// Opens an existing file for reading and writing.
    fn open(&self, name: &str) -> impl Future<Output = Result<Self::File>>;

    /// Whether `name` exists.
    fn exists(&self, name: &str) -> impl Future<Output = Result<bool>>;

    /// Removes a file.
    fn remove(&self, name: &str) -> impl Future<Output = Result<()>>;

    /// Atomically renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &str, to: &str) -> impl Future<Output = Result<()>>;

    /// Names of all files in the directory, in no particular order.
    fn list(&self) -> impl Future<Output = Result<Vec<String>>>;

    /// Makes creations, renames and removals durable.
    fn sync_dir(&self) -> impl Future<Output = Result<()>>;

    /// Wall-clock time in milliseconds since the Unix epoch; record expiry
    /// is judged against it. Tests inject their own clock.
    fn now_unix_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    /// Gives other tasks on this core a turn if this one has run long
    /// enough; long loops (flush, compaction, scans) await it.
    fn yield_if_needed(&self) -> impl Future<Output = ()> {
        std::future::ready(())
    }
}
