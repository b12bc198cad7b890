//! The data directory: one subdirectory per shard, a layout file that
//! records the shard count, and a lock so two servers never share it.
//!
//! ```text
//! lumadb-data/
//!   LOCK           flock'ed by the running server; holds its pid
//!   LAYOUT         "lumadb data layout 2\nshards = N\n"
//!   shard-000/     shard 0's engine (WAL, tables, manifest)
//!   shard-001/
//!   log/           server.log, error.log, access.log, slow-query.log
//! ```
//!
//! Keys are placed by `xxh3(key) % N`, so opening the data with another
//! shard count would look for keys on the wrong shard: that is refused
//! with an error, never attempted.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::RuntimeError;

pub const LAYOUT_FILE_NAME: &str = "LAYOUT";
pub const LOCK_FILE_NAME: &str = "LOCK";
const LAYOUT_HEADER: &str = "lumadb data layout 2";
/// Layout 1 stored each list element under its own key; layout 2 stores
/// them in chunks. Nothing converts one to the other.
const LAYOUT_1_HEADER: &str = "lumadb data layout 1";
/// Largest layout file read.
const LAYOUT_FILE_BYTES_MAX: u64 = 4096;

/// An opened, locked data directory. The lock is held while this lives.
pub struct DataDir {
    root: PathBuf,
    shards: usize,
    _lock: File,
}

impl DataDir {
    /// Creates (first start) or checks (later starts) the data directory
    /// for `shards` shards, and locks it.
    pub fn open(root: &Path, shards: usize) -> Result<DataDir, RuntimeError> {
        assert!(shards > 0);
        let io = |what: &str, path: &Path, e: std::io::Error| RuntimeError::DataDir {
            path: path.to_path_buf(),
            message: format!("{what}: {e}"),
        };
        std::fs::create_dir_all(root).map_err(|e| io("cannot create the data directory", root, e))?;
        let lock_path = root.join(LOCK_FILE_NAME);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| io("cannot open the lock file", &lock_path, e))?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut holder = String::new();
            let _ = lock.read_to_string(&mut holder);
            return Err(RuntimeError::DataDir {
                path: root.to_path_buf(),
                message: format!(
                    "the data directory is in use by another lumadb process (pid {})",
                    holder.trim()
                ),
            });
        }
        lock.set_len(0)
            .map_err(|e| io("cannot write the lock file", &lock_path, e))?;
        lock.write_all(format!("{}\n", std::process::id()).as_bytes())
            .map_err(|e| io("cannot write the lock file", &lock_path, e))?;

        let layout_path = root.join(LAYOUT_FILE_NAME);
        match std::fs::metadata(&layout_path) {
            Ok(meta) => {
                if meta.len() > LAYOUT_FILE_BYTES_MAX {
                    return Err(RuntimeError::DataDir {
                        path: layout_path,
                        message: "layout file is too large to be a layout file".into(),
                    });
                }
                let text = std::fs::read_to_string(&layout_path)
                    .map_err(|e| io("cannot read the layout file", &layout_path, e))?;
                let recorded = parse_layout(&text).map_err(|message| RuntimeError::DataDir {
                    path: layout_path.clone(),
                    message,
                })?;
                if recorded != shards {
                    return Err(RuntimeError::ShardCountMismatch {
                        path: root.to_path_buf(),
                        recorded,
                        requested: shards,
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(existing) = existing_shard_dirs(root) {
                    return Err(RuntimeError::DataDir {
                        path: layout_path,
                        message: format!(
                            "the layout file is missing but {existing} shard directories exist; \
                             if this version wrote them, restore it as \"{LAYOUT_HEADER}\\nshards = {existing}\\n\" \
                             (a directory an earlier version wrote may be in another layout)"
                        ),
                    });
                }
                write_layout(root, shards).map_err(|e| io("cannot write the layout file", &layout_path, e))?;
            }
            Err(e) => return Err(io("cannot read the layout file", &layout_path, e)),
        }
        Ok(DataDir {
            root: root.to_path_buf(),
            shards,
            _lock: lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn shards(&self) -> usize {
        self.shards
    }

    /// Shard `id`'s engine directory.
    pub fn shard_dir(&self, id: usize) -> PathBuf {
        assert!(id < self.shards);
        self.root.join(format!("shard-{id:03}"))
    }
}

/// The shard count a layout file records.
fn parse_layout(text: &str) -> Result<usize, String> {
    let mut lines = text.lines();
    let first = lines.next();
    if first == Some(LAYOUT_1_HEADER) {
        return Err(format!(
            "written in data layout 1, which stored each list element under its own key; this version \
             reads layout 2 (\"{LAYOUT_HEADER}\"), which stores lists in chunks, and does not convert: \
             open it with the version that wrote it"
        ));
    }
    if first != Some(LAYOUT_HEADER) {
        return Err(format!(
            "not a LumaDB layout file (first line is not {LAYOUT_HEADER:?})"
        ));
    }
    for line in lines {
        if let Some(v) = line.strip_prefix("shards = ") {
            return v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("bad shard count {v:?}"));
        }
    }
    Err("no shard count recorded".into())
}

/// Writes the layout file atomically (temporary file, fsync, rename,
/// directory fsync).
fn write_layout(root: &Path, shards: usize) -> std::io::Result<()> {
    let tmp = root.join(format!("{LAYOUT_FILE_NAME}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(format!("{LAYOUT_HEADER}\nshards = {shards}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, root.join(LAYOUT_FILE_NAME))?;
    File::open(root)?.sync_all()
}

/// How many `shard-NNN` directories exist, if any.
fn existing_shard_dirs(root: &Path) -> Option<usize> {
    let n = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("shard-"))
        .count();
    (n > 0).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_records_the_shard_count_and_refuses_another() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        {
            let d = DataDir::open(&root, 3).unwrap();
            assert_eq!(d.shard_dir(2), root.join("shard-002"));
            // A second open while the first holds the lock is refused.
            let err = DataDir::open(&root, 3).err().unwrap().to_string();
            assert!(err.contains("in use by another lumadb process"), "{err}");
        }
        DataDir::open(&root, 3).unwrap();
        let err = DataDir::open(&root, 2).err().unwrap().to_string();
        assert!(err.contains("holds 3 shards") && err.contains("--shards 3"), "{err}");
    }

    #[test]
    fn damaged_layout_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LAYOUT_FILE_NAME), "hello").unwrap();
        let err = DataDir::open(dir.path(), 1).err().unwrap().to_string();
        assert!(err.contains("not a LumaDB layout file"), "{err}");
        assert_eq!(
            parse_layout("lumadb data layout 2\nshards = 0\n"),
            Err("bad shard count \"0\"".into())
        );
        let old = parse_layout("lumadb data layout 1\nshards = 2\n").unwrap_err();
        assert!(old.contains("layout 1") && old.contains("does not convert"), "{old}");
    }
}
