//! The engine proper: one instance per shard, tying together the WAL
//! (group commit), memtables, SSTables, the manifest and compaction.
//!
//! ```text
//!  write(batch) ──► commit queue ──► leader: WAL write + fdatasync ──► memtable ──► visible
//!                                                      │ full
//!                                                      ▼
//!                             frozen memtables ──flush_once()──► L0 SSTable ──compact_once()──► L1..Ln
//!  get / scan ◄── memtable, frozen memtables, L0 (newest first), L1..Ln, merged under a snapshot
//! ```
//!
//! Concurrency is cooperative on one thread: tasks interleave only at
//! `.await`, and no `RefCell` borrow is held across one. The runtime drives
//! [`Engine::flush_once`] and [`Engine::compact_once`] from low-priority
//! tasks, waiting on [`Engine::flush_work`] and [`Engine::compaction_work`].

mod compact;
mod flush;
mod iter;
mod read;
mod recovery;
mod write;

pub use iter::DbIterator;
pub use recovery::RecoveryReport;
pub use write::{WAL_WRITE_BEHIND_BYTES, WAL_WRITE_BEHIND_BYTES_MAX, WAL_WRITE_OUT_INTERVAL_MS};

use crate::batch::KeyspaceId;
use crate::cache::{BlockCache, RowCache};
use crate::key::SeqNo;
use crate::manifest::{KeyspaceManifest, ManifestState};
use crate::memtable::MemTable;
use crate::options::{CompactionStyle, EngineOptions, KeyspaceOptions};
use crate::sst::Table;
use crate::storage::Storage;
use crate::sync::{LocalMutex, Notify};
use crate::version::Version;
use crate::wal::LogWriter;
use crate::{Error, Result};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

/// Name of the keyspace every engine has.
pub const DEFAULT_KEYSPACE: &str = "default";

/// One shard's storage engine. Cloning gives another handle on the same
/// engine (`Rc`); the engine is `!Send` and lives on one core.
pub struct Engine<S: Storage> {
    inner: Rc<Inner<S>>,
}

impl<S: Storage> Clone for Engine<S> {
    fn clone(&self) -> Self {
        Engine {
            inner: self.inner.clone(),
        }
    }
}

pub(crate) struct Inner<S: Storage> {
    pub(crate) storage: S,
    pub(crate) opts: EngineOptions,
    pub(crate) state: RefCell<State<S>>,
    pub(crate) commit: RefCell<write::CommitQueue>,
    /// The WAL writer (`None` only while the engine opens). Borrowed
    /// briefly, never across an await: its I/O runs on handed-out
    /// [`WalWrite`](crate::wal::WalWrite)s and [`WalSync`](crate::wal::WalSync)s.
    pub(crate) wal: RefCell<Option<LogWriter<S::File>>>,
    /// The next WAL segment, created ahead of the roll that switches to
    /// it ([`Engine::prepare_wal_segment`]).
    pub(crate) next_wal: RefCell<Option<LogWriter<S::File>>>,
    /// A WAL write finished: a task waiting to start the next one re-checks.
    pub(crate) wal_io: Notify,
    /// The WAL's write-behind buffer is due out (relaxed sync modes).
    pub(crate) wal_due: Notify,
    /// The commit queue went idle (no leader, nobody queued).
    pub(crate) commit_idle: Notify,
    /// Background work (a frozen memtable, a compaction) may be available.
    pub(crate) background: Notify,
    /// A flush or compaction finished: stalled writers re-check.
    pub(crate) progress: Notify,
    pub(crate) flush_lock: LocalMutex,
    pub(crate) compaction_lock: LocalMutex,
    pub(crate) manifest_lock: LocalMutex,
    pub(crate) block_cache: Rc<BlockCache>,
    pub(crate) row_cache: Rc<RowCache>,
}

pub(crate) struct State<S: Storage> {
    pub(crate) keyspaces: BTreeMap<KeyspaceId, KeyspaceState>,
    pub(crate) names: HashMap<String, KeyspaceId>,
    pub(crate) next_file_number: u64,
    /// Highest sequence number handed out.
    pub(crate) last_seq: SeqNo,
    /// Moves whenever an active memtable changes after open (a write
    /// applied, a memtable replaced): an edit found to apply at one epoch
    /// still applies at the same epoch ([`Engine::edit_into`]).
    pub(crate) mem_epoch: u64,
    /// Highest sequence number readers may see (acknowledged writes).
    pub(crate) visible_seq: SeqNo,
    /// The WAL segment being written.
    pub(crate) wal_segment: u64,
    /// Live WAL segments and their sizes.
    pub(crate) wal_segments: BTreeMap<u64, u64>,
    pub(crate) manifest_number: u64,
    /// Live snapshots: sequence number -> how many handles.
    pub(crate) snapshots: Rc<RefCell<BTreeMap<SeqNo, usize>>>,
    pub(crate) poisoned: Option<String>,
    pub(crate) closed: bool,
    /// Open readers of every live table.
    pub(crate) tables: HashMap<u64, Rc<Table<S::File>>>,
    /// Memtables whose every entry a range delete made unreachable
    /// (FLUSHALL, or a dropped collection that was all a memtable held):
    /// set aside at once, freed in steps by the flush loop.
    pub(crate) discarded: Vec<Rc<MemTable>>,
    pub(crate) stats: Counters,
    pub(crate) recovery: RecoveryReport,
}

impl<S: Storage> State<S> {
    /// Keyspace `ks`, or the error a call naming an unknown one gets.
    pub(crate) fn keyspace(&self, ks: KeyspaceId) -> Result<&KeyspaceState> {
        self.keyspaces
            .get(&ks)
            .ok_or_else(|| Error::InvalidArgument(format!("no keyspace with id {ks}")))
    }
}

/// One keyspace's LSM tree.
pub(crate) struct KeyspaceState {
    pub(crate) id: KeyspaceId,
    pub(crate) name: String,
    pub(crate) opts: KeyspaceOptions,
    pub(crate) mem: Rc<MemTable>,
    /// Frozen memtables waiting for flush, oldest first.
    pub(crate) imm: Vec<Rc<MemTable>>,
    pub(crate) version: Rc<Version>,
    /// Files in a running compaction.
    pub(crate) busy: HashSet<u64>,
}

/// Monotonic counters, for stats and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub user_bytes_written: u64,
    pub writes: u64,
    pub write_groups: u64,
    pub wal_bytes_written: u64,
    pub wal_syncs: u64,
    pub flushes: u64,
    pub flush_bytes_written: u64,
    pub compactions: u64,
    pub compaction_bytes_read: u64,
    pub compaction_bytes_written: u64,
    /// Tables a flushed range tombstone deleted whole (dropped unread).
    pub tables_dropped_by_range_delete: u64,
    pub write_stalls: u64,
}

/// Per-component memory use, in bytes, for the admin API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    pub memtables: u64,
    pub block_cache: u64,
    pub row_cache: u64,
    /// Table indexes, bloom filters and range-delete blocks held in memory.
    pub indexes: u64,
    /// WAL buffers and bookkeeping.
    pub other: u64,
}

impl MemoryUsage {
    pub fn total(&self) -> u64 {
        self.memtables + self.block_cache + self.row_cache + self.indexes + self.other
    }
}

/// Shape and activity of one keyspace.
#[derive(Debug, Clone)]
pub struct KeyspaceStats {
    pub name: String,
    pub memtable_bytes: u64,
    pub immutable_memtables: usize,
    pub levels: Vec<crate::compaction::LevelStat>,
    pub pending_compaction_bytes: u64,
}

/// Engine-wide statistics.
#[derive(Debug, Clone)]
pub struct EngineStats {
    pub keyspaces: Vec<KeyspaceStats>,
    pub counters: Counters,
    /// Bytes written to tables (flush + compaction) per byte of user data.
    pub write_amplification: f64,
    pub block_cache_hits: u64,
    pub block_cache_requests: u64,
    pub row_cache_hits: u64,
    pub row_cache_requests: u64,
    pub visible_seq: SeqNo,
    pub wal_segments: usize,
    pub wal_bytes: u64,
}

/// A consistent read view: reads through it see exactly the writes
/// acknowledged before it was taken, whatever flush and compaction do
/// later. Dropping it lets compaction discard the versions it pinned.
pub struct Snapshot {
    seq: SeqNo,
    registry: Rc<RefCell<BTreeMap<SeqNo, usize>>>,
}

impl Snapshot {
    pub fn seq(&self) -> SeqNo {
        self.seq
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let mut reg = self.registry.borrow_mut();
        let count = reg.get_mut(&self.seq).expect("registered snapshot");
        *count -= 1;
        if *count == 0 {
            reg.remove(&self.seq);
        }
    }
}

/// A value read back, with its expiry time if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueEntry {
    pub value: Vec<u8>,
    pub expire_at_unix_ms: Option<u64>,
}

impl<S: Storage> Engine<S> {
    pub(crate) fn from_inner(inner: Inner<S>) -> Self {
        Engine { inner: Rc::new(inner) }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.inner.opts
    }

    pub fn storage(&self) -> &S {
        &self.inner.storage
    }

    /// What recovery found and did when this engine was opened.
    pub fn recovery_report(&self) -> RecoveryReport {
        self.inner.state.borrow().recovery.clone()
    }

    /// The id of keyspace `name`.
    pub fn keyspace(&self, name: &str) -> Result<KeyspaceId> {
        self.inner
            .state
            .borrow()
            .names
            .get(name)
            .copied()
            .ok_or_else(|| Error::NoSuchKeyspace(name.to_string()))
    }

    /// Names of all keyspaces, by id.
    pub fn keyspace_names(&self) -> Vec<String> {
        self.inner
            .state
            .borrow()
            .keyspaces
            .values()
            .map(|k| k.name.clone())
            .collect()
    }

    /// Creates keyspace `name` with `opts`, or, if it exists, sets its
    /// options for this process. Keyspace names are durable (manifest);
    /// options come from the caller at each open.
    pub async fn create_keyspace(&self, name: &str, opts: KeyspaceOptions) -> Result<KeyspaceId> {
        validate_keyspace_name(name)?;
        {
            let mut st = self.inner.state.borrow_mut();
            if let Some(&id) = st.names.get(name) {
                let ks = st.keyspaces.get_mut(&id).expect("named keyspace exists");
                if ks.opts.num_levels != opts.num_levels && ks.version.file_count() > 0 {
                    return Err(Error::InvalidArgument(format!(
                        "keyspace {name:?} has data in {} levels; num_levels cannot change",
                        ks.opts.num_levels
                    )));
                }
                ks.opts = opts;
                return Ok(id);
            }
        }
        self.check_writable()?;
        let _m = self.inner.manifest_lock.lock().await;
        let id = {
            let mut st = self.inner.state.borrow_mut();
            let id = st.keyspaces.keys().next_back().map_or(0, |id| id + 1);
            let segment = st.wal_segment;
            st.keyspaces.insert(
                id,
                KeyspaceState {
                    id,
                    name: name.to_string(),
                    mem: Rc::new(MemTable::new(segment)),
                    imm: Vec::new(),
                    version: Rc::new(Version::new(opts.num_levels)),
                    busy: HashSet::new(),
                    opts,
                },
            );
            st.names.insert(name.to_string(), id);
            id
        };
        if let Err(e) = self.persist_manifest_locked().await {
            return Err(self.poison(e));
        }
        Ok(id)
    }

    /// Takes a snapshot of everything acknowledged so far.
    pub fn snapshot(&self) -> Snapshot {
        let st = self.inner.state.borrow();
        let seq = st.visible_seq;
        *st.snapshots.borrow_mut().entry(seq).or_insert(0) += 1;
        Snapshot {
            seq,
            registry: st.snapshots.clone(),
        }
    }

    /// Gives other tasks on this core a turn if the caller has run long
    /// enough (the storage backend decides; in-memory storage never asks).
    pub fn yield_if_needed(&self) -> impl std::future::Future<Output = ()> + '_ {
        self.inner.storage.yield_if_needed()
    }

    /// The sequence number of the last acknowledged write.
    pub fn visible_seq(&self) -> SeqNo {
        self.inner.state.borrow().visible_seq
    }

    /// `Some(cause)` once a storage failure has made the engine refuse writes.
    pub fn poisoned(&self) -> Option<String> {
        self.inner.state.borrow().poisoned.clone()
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        let st = self.inner.state.borrow();
        if st.closed {
            return Err(Error::Closed);
        }
        if let Some(cause) = &st.poisoned {
            return Err(Error::Poisoned { cause: cause.clone() });
        }
        Ok(())
    }

    /// Records a storage failure: from now on every write fails (fail-stop).
    /// Returns the error for the caller to pass up.
    pub(crate) fn poison(&self, e: Error) -> Error {
        let mut st = self.inner.state.borrow_mut();
        if st.poisoned.is_none() {
            tracing::error!(error = %e, "storage failure: engine is now read-only");
            // Keep the root cause, not a "poisoned" wrapper around it.
            let cause = match &e {
                Error::Poisoned { cause } => cause.clone(),
                other => other.to_string(),
            };
            st.poisoned = Some(cause);
        }
        drop(st);
        // Wake stalled writers and waiting background loops so they see it.
        self.inner.progress.notify_all();
        self.inner.background.notify_all();
        self.inner.wal_io.notify_all();
        self.inner.wal_due.notify_all();
        e
    }

    pub(crate) fn alloc_file_number(&self) -> u64 {
        let mut st = self.inner.state.borrow_mut();
        let n = st.next_file_number;
        st.next_file_number += 1;
        n
    }

    /// Builds the manifest from the current state.
    pub(crate) fn manifest_state(&self) -> ManifestState {
        let st = self.inner.state.borrow();
        manifest_from_state(&st)
    }

    /// Writes the current state as a new manifest. The caller holds the
    /// manifest lock.
    pub(crate) async fn persist_manifest_locked(&self) -> Result<()> {
        assert!(self.inner.manifest_lock.is_locked());
        let number = self.alloc_file_number();
        let state = self.manifest_state();
        let previous = self.inner.state.borrow().manifest_number;
        let previous = (previous != 0).then_some(previous);
        crate::manifest::write_manifest(&self.inner.storage, &state, number, previous).await?;
        self.inner.state.borrow_mut().manifest_number = number;
        Ok(())
    }

    /// Memory held, per component.
    pub fn memory(&self) -> MemoryUsage {
        let st = self.inner.state.borrow();
        let memtables = st
            .keyspaces
            .values()
            .map(|k| k.mem.size_bytes() as u64 + k.imm.iter().map(|m| m.size_bytes() as u64).sum::<u64>())
            .sum();
        let indexes = st.tables.values().map(|t| t.memory_bytes() as u64).sum();
        let wal = self
            .inner
            .wal
            .borrow()
            .as_ref()
            .map_or(0, |w| w.buffered_bytes() as u64);
        MemoryUsage {
            memtables,
            block_cache: self.inner.block_cache.usage_bytes() as u64,
            row_cache: self.inner.row_cache.usage_bytes() as u64,
            indexes,
            other: wal + (st.tables.len() * 256) as u64,
        }
    }

    /// Levels, pending work and counters.
    pub fn stats(&self) -> EngineStats {
        let st = self.inner.state.borrow();
        let keyspaces = st
            .keyspaces
            .values()
            .map(|k| KeyspaceStats {
                name: k.name.clone(),
                memtable_bytes: k.mem.size_bytes() as u64,
                immutable_memtables: k.imm.len(),
                levels: crate::compaction::stats(&k.version, &k.opts),
                pending_compaction_bytes: crate::compaction::pending_compaction_bytes(&k.version, &k.opts),
            })
            .collect();
        let c = st.stats.clone();
        let table_bytes = c.flush_bytes_written + c.compaction_bytes_written;
        EngineStats {
            keyspaces,
            write_amplification: if c.user_bytes_written == 0 {
                0.0
            } else {
                (table_bytes + c.wal_bytes_written) as f64 / c.user_bytes_written as f64
            },
            counters: c,
            block_cache_hits: self.inner.block_cache.hits(),
            block_cache_requests: self.inner.block_cache.requests(),
            row_cache_hits: self.inner.row_cache.hits(),
            row_cache_requests: self.inner.row_cache.requests(),
            visible_seq: st.visible_seq,
            wal_segments: st.wal_segments.len(),
            wal_bytes: st.wal_segments.values().sum(),
        }
    }

    /// How near writers are to stalling on background work, from 0 (no
    /// backlog) to 1 (they wait): for the keyspace nearest a stall, the
    /// active memtable's fill while frozen ones wait for their flush (it
    /// reaches 1 when the queue of frozen memtables is full), or level 0
    /// between its compaction trigger and its stop trigger. The runtime
    /// gives background work more of the core as it rises, so flushes
    /// keep up with writers instead of stopping them all at once.
    pub fn write_pressure(&self) -> f64 {
        let st = self.inner.state.borrow();
        let max_imm = self.inner.opts.max_immutable_memtables.max(1);
        let memtable_size = self.inner.opts.memtable_size.max(1);
        st.keyspaces
            .values()
            .map(|k| {
                let flush = match k.imm.len() {
                    0 => 0.0,
                    n if n >= max_imm => 1.0,
                    n => {
                        let fill = (k.mem.size_bytes() as f64 / memtable_size as f64).min(1.0);
                        // 1 <= n < max_imm: the next freeze at n = max_imm - 1 stalls.
                        ((n - 1) as f64 + fill) / (max_imm - 1) as f64
                    }
                };
                let l0 = k.version.levels[0].len();
                let (trigger, stop) = (
                    k.opts.level0_file_num_compaction_trigger,
                    k.opts.level0_stop_writes_trigger,
                );
                let compaction = if k.opts.compaction_style == CompactionStyle::Fifo || l0 <= trigger {
                    0.0
                } else {
                    ((l0 - trigger) as f64 / stop.saturating_sub(trigger).max(1) as f64).min(1.0)
                };
                flush.max(compaction)
            })
            .fold(0.0, f64::max)
    }

    /// Waits until a frozen memtable waits for flush, or the engine is
    /// closed or poisoned. The runtime's flush loop:
    /// `while e.flush_work().await { e.flush_once().await?; }`.
    /// Returns false when the loop should stop.
    pub async fn flush_work(&self) -> bool {
        loop {
            if self.stopped() {
                return false;
            }
            if self.has_flush_work() {
                return true;
            }
            self.inner.background.notified().await;
        }
    }

    /// Waits until the compaction planner has work, or the engine is
    /// closed or poisoned (then returns false).
    pub async fn compaction_work(&self) -> bool {
        loop {
            if self.stopped() {
                return false;
            }
            if self.compaction_wanted() {
                return true;
            }
            self.inner.background.notified().await;
        }
    }

    fn stopped(&self) -> bool {
        let st = self.inner.state.borrow();
        st.closed || st.poisoned.is_some()
    }

    /// Whether a frozen memtable waits for flush.
    pub fn has_flush_work(&self) -> bool {
        let st = self.inner.state.borrow();
        st.poisoned.is_none() && (!st.discarded.is_empty() || st.keyspaces.values().any(|k| !k.imm.is_empty()))
    }

    /// Whether the compaction planner would pick something now.
    pub fn compaction_wanted(&self) -> bool {
        let st = self.inner.state.borrow();
        st.poisoned.is_none()
            && st
                .keyspaces
                .values()
                .any(|k| crate::compaction::pick(&k.version, &k.opts, &k.busy).is_some())
    }

    /// Whether the engine was closed (or is closing): writes are refused.
    pub fn is_closed(&self) -> bool {
        self.inner.state.borrow().closed
    }

    /// Refuses further writes, lets the writes already queued finish,
    /// then writes out and syncs the WAL, so every write acknowledged
    /// before the call, under any sync mode, is durable when it returns.
    /// Background loops see [`Engine::is_closed`] and stop.
    ///
    /// Writes are refused first: in the relaxed modes a write is
    /// acknowledged once it is in the WAL buffer, so one accepted while
    /// the final sync runs would be acknowledged and then lost.
    pub async fn close(&self) -> Result<()> {
        if self.is_closed() {
            return Ok(());
        }
        self.inner.state.borrow_mut().closed = true;
        self.inner.background.notify_all();
        self.inner.progress.notify_all();
        self.inner.wal_due.notify_all();
        loop {
            // Registered before the check, so the wake-up is not missed.
            let idle = self.inner.commit_idle.notified();
            if self.inner.commit.borrow().is_idle() {
                break;
            }
            idle.await;
        }
        if self.poisoned().is_some() {
            return Ok(());
        }
        self.write_out_wal().await?;
        self.sync_wal_file().await
    }
}

pub(crate) fn manifest_from_state<S: Storage>(st: &State<S>) -> ManifestState {
    ManifestState {
        next_file_number: st.next_file_number,
        last_seq: st.visible_seq,
        keyspaces: st
            .keyspaces
            .values()
            .map(|k| KeyspaceManifest {
                id: k.id,
                name: k.name.clone(),
                log_number: keyspace_log_number(k, st.wal_segment),
                levels: k
                    .version
                    .levels
                    .iter()
                    .map(|l| l.iter().map(|f| (**f).clone()).collect())
                    .collect(),
            })
            .collect(),
    }
}

/// The oldest WAL segment that may hold data of `ks` not yet in a table.
pub(crate) fn keyspace_log_number(ks: &KeyspaceState, current_segment: u64) -> u64 {
    let mut n = current_segment;
    if let Some(m) = ks.imm.first() {
        n = n.min(m.first_segment());
    }
    if !ks.mem.is_empty() {
        n = n.min(ks.mem.first_segment());
    }
    n
}

fn validate_keyspace_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 || name.chars().any(|c| c.is_control()) {
        return Err(Error::InvalidArgument(format!(
            "keyspace name {name:?} must be 1..=255 printable characters"
        )));
    }
    Ok(())
}
