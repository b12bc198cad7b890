//! An in-memory [`Storage`] that simulates crashes.
//!
//! Each file keeps two images: `durable` (what survives a crash) and
//! `volatile` (what reads see). `sync` copies volatile to durable;
//! `sync_dir` makes the directory's names durable. [`MemStorage::crash`]
//! returns a new storage holding only what was durable, optionally with a
//! seeded random subset of the unsynced pages applied, the way a power
//! loss tears writes. Faults are injected by budget: after N writes (or N
//! syncs) every further write (or sync) fails, so the engine's fail-stop
//! paths can be driven deterministically.

use super::{Storage, StorageFile, IO_ALIGN};
use crate::{Error, Result};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

#[derive(Debug, Default, Clone)]
struct FileImage {
    volatile: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct Dir {
    /// Live names as the running process sees them.
    files: BTreeMap<String, Rc<RefCell<FileImage>>>,
    /// Names as they would be after a crash (last `sync_dir`).
    durable_names: BTreeMap<String, Rc<RefCell<FileImage>>>,
}

#[derive(Debug, Default)]
struct Faults {
    /// Writes left before writes start failing; `None` = unlimited.
    writes_left: Cell<Option<u64>>,
    /// Syncs left before syncs start failing; `None` = unlimited.
    syncs_left: Cell<Option<u64>>,
    writes_done: Cell<u64>,
    syncs_done: Cell<u64>,
    /// While set, file writes wait (see [`MemStorage::hold_writes`]).
    held: Cell<bool>,
    released: crate::sync::Notify,
    writes_waiting: Cell<u64>,
}

/// In-memory, crash-simulating storage. Clones share one directory.
#[derive(Clone, Default)]
pub struct MemStorage {
    dir: Rc<RefCell<Dir>>,
    faults: Rc<Faults>,
    clock_ms: Rc<Cell<Option<u64>>>,
}

impl std::fmt::Debug for MemStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemStorage").finish_non_exhaustive()
    }
}

impl MemStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every write after the next `n` fails with an I/O error.
    pub fn fail_writes_after(&self, n: u64) {
        self.faults.writes_left.set(Some(n));
    }

    /// Every sync after the next `n` fails with an I/O error.
    pub fn fail_syncs_after(&self, n: u64) {
        self.faults.syncs_left.set(Some(n));
    }

    /// Clears injected faults.
    pub fn heal(&self) {
        self.faults.writes_left.set(None);
        self.faults.syncs_left.set(None);
    }

    /// Writes performed so far (successful ones).
    pub fn writes_done(&self) -> u64 {
        self.faults.writes_done.get()
    }

    /// Makes every file write wait, in flight, until
    /// [`release_writes`](Self::release_writes): a slow device, for tests
    /// of what does (and does not) wait for the disk.
    pub fn hold_writes(&self) {
        self.faults.held.set(true);
    }

    /// Lets held writes (and later ones) complete.
    pub fn release_writes(&self) {
        self.faults.held.set(false);
        self.faults.released.notify_all();
    }

    /// File writes waiting under [`hold_writes`](Self::hold_writes).
    pub fn writes_waiting(&self) -> u64 {
        self.faults.writes_waiting.get()
    }

    /// Syncs performed so far (successful ones).
    pub fn syncs_done(&self) -> u64 {
        self.faults.syncs_done.get()
    }

    /// Fixes the clock at `ms` (Unix milliseconds); `None` returns to the real clock.
    pub fn set_clock_ms(&self, ms: Option<u64>) {
        self.clock_ms.set(ms);
    }

    /// The storage a restarted process would find after a crash now: the
    /// durable names with their durable bytes. With `torn_seed`, each
    /// unsynced page of each surviving file is applied or dropped at random
    /// (seeded), simulating a power loss that tears writes.
    pub fn crash(&self, torn_seed: Option<u64>) -> MemStorage {
        let dir = self.dir.borrow();
        let mut rng = torn_seed.map(SplitMix64::new);
        let mut files = BTreeMap::new();
        for (name, image) in &dir.durable_names {
            let img = image.borrow();
            let mut bytes = img.durable.clone();
            if let Some(rng) = rng.as_mut() {
                apply_torn_pages(&mut bytes, &img.volatile, rng);
            }
            let img = FileImage {
                volatile: bytes.clone(),
                durable: bytes,
            };
            files.insert(name.clone(), Rc::new(RefCell::new(img)));
        }
        let new_dir = Dir {
            durable_names: files.clone(),
            files,
        };
        MemStorage {
            dir: Rc::new(RefCell::new(new_dir)),
            faults: Rc::new(Faults::default()),
            clock_ms: Rc::new(Cell::new(self.clock_ms.get())),
        }
    }

    /// Raw bytes of a live file, for corruption tests.
    pub fn file_bytes(&self, name: &str) -> Option<Vec<u8>> {
        let dir = self.dir.borrow();
        dir.files.get(name).map(|f| f.borrow().volatile.clone())
    }

    /// Overwrites raw bytes of a live file, durably, bypassing alignment:
    /// the corruption tests' bit flipper.
    pub fn poke(&self, name: &str, offset: usize, bytes: &[u8]) {
        let dir = self.dir.borrow();
        let file = dir.files.get(name).expect("poke: no such file");
        let mut img = file.borrow_mut();
        let end = offset + bytes.len();
        assert!(end <= img.volatile.len(), "poke past end of {name}");
        img.volatile[offset..end].copy_from_slice(bytes);
        img.durable = img.volatile.clone();
    }

    /// Names of live files, sorted.
    pub fn file_names(&self) -> Vec<String> {
        self.dir.borrow().files.keys().cloned().collect()
    }

    fn take_write_budget(&self, name: &str) -> Result<()> {
        if let Some(n) = self.faults.writes_left.get() {
            if n == 0 {
                return Err(injected(name, "write"));
            }
            self.faults.writes_left.set(Some(n - 1));
        }
        self.faults.writes_done.set(self.faults.writes_done.get() + 1);
        Ok(())
    }

    fn take_sync_budget(&self, name: &str) -> Result<()> {
        if let Some(n) = self.faults.syncs_left.get() {
            if n == 0 {
                return Err(injected(name, "fdatasync"));
            }
            self.faults.syncs_left.set(Some(n - 1));
        }
        self.faults.syncs_done.set(self.faults.syncs_done.get() + 1);
        Ok(())
    }
}

fn injected(name: &str, op: &'static str) -> Error {
    Error::io(name, op, std::io::Error::other("injected fault"))
}

fn not_found(name: &str, op: &'static str) -> Error {
    Error::io(name, op, std::io::Error::from(std::io::ErrorKind::NotFound))
}

/// Applies a random subset of the pages in which `volatile` differs from
/// `durable`, page by page, growing `durable` as needed.
fn apply_torn_pages(durable: &mut Vec<u8>, volatile: &[u8], rng: &mut SplitMix64) {
    let pages = volatile.len().div_ceil(IO_ALIGN);
    for page in 0..pages {
        let start = page * IO_ALIGN;
        let end = (start + IO_ALIGN).min(volatile.len());
        let differs = durable.get(start..end) != Some(&volatile[start..end]);
        if differs && rng.next_u64().is_multiple_of(2) {
            if durable.len() < end {
                durable.resize(end, 0);
            }
            durable[start..end].copy_from_slice(&volatile[start..end]);
        }
    }
}

/// A tiny seeded generator, so crash images replay from a seed.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A handle on one in-memory file.
#[derive(Clone)]
pub struct MemFile {
    name: Rc<str>,
    image: Rc<RefCell<FileImage>>,
    storage: MemStorage,
}

impl StorageFile for MemFile {
    fn name(&self) -> &str {
        &self.name
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let img = self.image.borrow();
        let start = usize::try_from(offset).map_err(|_| not_found(&self.name, "read"))?;
        let end = start.checked_add(len);
        match end.and_then(|end| img.volatile.get(start..end)) {
            Some(bytes) => Ok(bytes.to_vec()),
            None => Err(Error::io(
                &*self.name,
                "read",
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("read of {len} bytes at {offset} past end {}", img.volatile.len()),
                ),
            )),
        }
    }

    async fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        assert_eq!(
            offset as usize % IO_ALIGN,
            0,
            "unaligned write offset {offset} to {}",
            self.name
        );
        assert_eq!(
            data.len() % IO_ALIGN,
            0,
            "unaligned write length {} to {}",
            data.len(),
            self.name
        );
        let faults = &self.storage.faults;
        loop {
            let released = faults.released.notified();
            if !faults.held.get() {
                break;
            }
            faults.writes_waiting.set(faults.writes_waiting.get() + 1);
            released.await;
            faults.writes_waiting.set(faults.writes_waiting.get() - 1);
        }
        self.storage.take_write_budget(&self.name)?;
        let mut img = self.image.borrow_mut();
        let start = offset as usize;
        let end = start + data.len();
        if img.volatile.len() < end {
            img.volatile.resize(end, 0);
        }
        img.volatile[start..end].copy_from_slice(data);
        Ok(())
    }

    async fn sync(&self) -> Result<()> {
        self.storage.take_sync_budget(&self.name)?;
        let mut img = self.image.borrow_mut();
        img.durable = img.volatile.clone();
        Ok(())
    }

    async fn size(&self) -> Result<u64> {
        Ok(self.image.borrow().volatile.len() as u64)
    }

    async fn truncate(&self, size: u64) -> Result<()> {
        self.storage.take_write_budget(&self.name)?;
        self.image.borrow_mut().volatile.resize(size as usize, 0);
        Ok(())
    }
}

impl Storage for MemStorage {
    type File = MemFile;

    async fn create(&self, name: &str) -> Result<MemFile> {
        self.take_write_budget(name)?;
        let image = Rc::new(RefCell::new(FileImage::default()));
        self.dir.borrow_mut().files.insert(name.to_string(), image.clone());
        Ok(MemFile {
            name: name.into(),
            image,
            storage: self.clone(),
        })
    }

    async fn open(&self, name: &str) -> Result<MemFile> {
        let dir = self.dir.borrow();
        let image = dir.files.get(name).cloned().ok_or_else(|| not_found(name, "open"))?;
        Ok(MemFile {
            name: name.into(),
            image,
            storage: self.clone(),
        })
    }

    async fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.dir.borrow().files.contains_key(name))
    }

    async fn remove(&self, name: &str) -> Result<()> {
        self.take_write_budget(name)?;
        match self.dir.borrow_mut().files.remove(name) {
            Some(_) => Ok(()),
            None => Err(not_found(name, "remove")),
        }
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.take_write_budget(from)?;
        let mut dir = self.dir.borrow_mut();
        let image = dir.files.remove(from).ok_or_else(|| not_found(from, "rename"))?;
        dir.files.insert(to.to_string(), image);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<String>> {
        Ok(self.file_names())
    }

    async fn sync_dir(&self) -> Result<()> {
        self.take_sync_budget("<dir>")?;
        let mut dir = self.dir.borrow_mut();
        dir.durable_names = dir.files.clone();
        Ok(())
    }

    fn now_unix_ms(&self) -> u64 {
        match self.clock_ms.get() {
            Some(ms) => ms,
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    #[test]
    fn unsynced_bytes_do_not_survive_a_crash() {
        block_on(async {
            let s = MemStorage::new();
            let f = s.create("a").await.unwrap();
            s.sync_dir().await.unwrap();
            f.write_at(0, &[1u8; IO_ALIGN]).await.unwrap();
            f.sync().await.unwrap();
            f.write_at(IO_ALIGN as u64, &[2u8; IO_ALIGN]).await.unwrap();
            let after = s.crash(None);
            assert_eq!(after.file_bytes("a").unwrap(), vec![1u8; IO_ALIGN]);
            assert_eq!(f.size().await.unwrap(), 2 * IO_ALIGN as u64);
        });
    }

    #[test]
    fn names_need_sync_dir() {
        block_on(async {
            let s = MemStorage::new();
            let f = s.create("a").await.unwrap();
            f.sync().await.unwrap();
            assert!(s.crash(None).file_bytes("a").is_none());
            s.sync_dir().await.unwrap();
            s.rename("a", "b").await.unwrap();
            let after = s.crash(None);
            assert!(after.file_bytes("a").is_some());
            assert!(after.file_bytes("b").is_none());
        });
    }

    #[test]
    fn injected_faults_fire_after_budget() {
        block_on(async {
            let s = MemStorage::new();
            let f = s.create("a").await.unwrap();
            s.fail_writes_after(1);
            f.write_at(0, &[0u8; IO_ALIGN]).await.unwrap();
            assert!(f.write_at(0, &[0u8; IO_ALIGN]).await.is_err());
            s.fail_syncs_after(0);
            assert!(f.sync().await.is_err());
        });
    }
}
