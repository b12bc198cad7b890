//! Point reads: memtable, frozen memtables, L0 newest first, then one file
//! per deeper level, stopping at the first version visible at the snapshot.
//! Range tombstones met on the way (with their sequence numbers) decide
//! whether that version is deleted.

use super::{Engine, KeyspaceState, Snapshot, ValueEntry};
use crate::batch::{Edit, KeyspaceId};
use crate::key::{self, SeqNo, ValueKind};
use crate::memtable::MemTable;
use crate::sst::Table;
use crate::storage::Storage;
use crate::version::{FileMeta, Version};
use crate::{Error, Result};
use std::cmp::Ordering;
use std::rc::Rc;

/// What one source says about a key.
pub(crate) struct Found {
    pub seq: SeqNo,
    pub kind: ValueKind,
    pub value: Vec<u8>,
}

/// Interprets the newest visible version of a key.
pub(crate) fn resolve(found: Found, tombstone_seq: SeqNo, now_ms: u64) -> Option<ValueEntry> {
    let (start, expire_at_unix_ms) = live(found.seq, found.kind, &found.value, tombstone_seq, || now_ms)?;
    let mut value = found.value;
    value.drain(..start);
    Some(ValueEntry {
        value,
        expire_at_unix_ms,
    })
}

/// Whether the newest visible version of a key (`seq`, `kind`, its stored
/// `value`) is live: where its value starts in `value` (past an expiry
/// header) and when it expires; `None` if a newer range tombstone covers
/// it, it is deleted or it has expired. `now_ms` is read only for a
/// value with an expiry.
fn live(
    seq: SeqNo,
    kind: ValueKind,
    value: &[u8],
    tombstone_seq: SeqNo,
    now_ms: impl FnOnce() -> u64,
) -> Option<(usize, Option<u64>)> {
    if seq < tombstone_seq {
        return None;
    }
    match kind {
        ValueKind::Put => Some((0, None)),
        ValueKind::PutExpiring => {
            let (at, rest) = key::split_expiring(value)?;
            (at > now_ms()).then_some((value.len() - rest.len(), Some(at)))
        }
        ValueKind::Delete | ValueKind::RangeDelete => None,
    }
}

/// The sources a read consults, captured at one instant.
pub(crate) struct ReadView<F: crate::storage::StorageFile> {
    pub mem: Rc<MemTable>,
    /// Newest first.
    pub imm: Vec<Rc<MemTable>>,
    pub version: Rc<Version>,
    pub tables: Vec<(Rc<FileMeta>, Rc<Table<F>>)>,
}

impl<S: Storage> Engine<S> {
    /// The value of `key`, or `None` if absent, deleted or expired.
    pub async fn get(&self, ks: KeyspaceId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.get_entry(ks, key, None).await?.map(|e| e.value))
    }

    /// Starts loading what point reads of `keys` will touch in the
    /// keyspace's active memtable, where a hot key lives: a hint for a
    /// caller about to read several keys one after another, so that
    /// their cache misses overlap. Finds nothing, fails on nothing.
    pub fn prefetch<'k>(&self, ks: KeyspaceId, keys: impl Iterator<Item = &'k [u8]> + Clone) {
        let st = self.inner.state.borrow();
        if let Some(k) = st.keyspaces.get(&ks) {
            k.mem.prefetch(keys);
        }
    }

    /// `f` of `key`'s newest value in the keyspace's active memtable, if
    /// it is a plain put there: for a caller choosing what to
    /// [`Engine::prefetch`] next, never an answer (it sees no snapshot,
    /// range tombstone or older table).
    pub fn peek_newest<R>(&self, ks: KeyspaceId, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let st = self.inner.state.borrow();
        st.keyspaces.get(&ks)?.mem.peek_newest(key, f)
    }

    /// The value `edit` makes of `key`'s value in the active memtable,
    /// when it applies there ([`MemTable::editable`]): what a caller
    /// writes whole when the edit cannot go in as one.
    pub fn edited_value(&self, ks: KeyspaceId, key: &[u8], edit: &Edit<'_>) -> Option<Vec<u8>> {
        let st = self.inner.state.borrow();
        let mem = &st.keyspaces.get(&ks)?.mem;
        if !mem.editable(key, edit) {
            return None;
        }
        let mut value = mem.peek_newest(key, <[u8]>::to_vec)?;
        edit.apply(&mut value).then_some(value)
    }

    /// The value of `key` as of `snapshot`.
    pub async fn get_at(&self, ks: KeyspaceId, key: &[u8], snapshot: &Snapshot) -> Result<Option<Vec<u8>>> {
        Ok(self.get_entry(ks, key, Some(snapshot)).await?.map(|e| e.value))
    }

    /// The values of `keys`, in the same order.
    pub async fn multi_get(&self, ks: KeyspaceId, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let snapshot = self.snapshot();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(self.get_entry(ks, k, Some(&snapshot)).await?.map(|e| e.value));
        }
        Ok(out)
    }

    /// The value of `key` with its expiry time.
    pub async fn get_entry(
        &self,
        ks: KeyspaceId,
        key: &[u8],
        snapshot: Option<&Snapshot>,
    ) -> Result<Option<ValueEntry>> {
        let (seq, mut tomb, view) = {
            let st = self.inner.state.borrow();
            if st.closed {
                return Err(Error::Closed);
            }
            let seq = snapshot.map_or(st.visible_seq, |s| s.seq());
            let k = st.keyspace(ks)?;
            // The memtables first, newest first, in place: most point reads
            // end here, and then need no view of the tables.
            let found = self.memtables_get(k, key, seq, |v| {
                v.map(|(value, expire_at_unix_ms)| ValueEntry {
                    value: value.to_vec(),
                    expire_at_unix_ms,
                })
            });
            match found {
                Ok(entry) => return Ok(entry),
                Err(tomb) => (seq, tomb, self.read_view(ks, Some(key))?),
            }
        };
        let now = self.inner.storage.now_unix_ms();
        for (meta, table) in &view.tables {
            for t in table.range_tombstones() {
                if t.seq <= seq && t.start.as_slice() <= key && key < t.end.as_slice() {
                    tomb = tomb.max(t.seq);
                }
            }
            if meta.smallest_seq > seq || !table.may_contain(key) {
                continue;
            }
            if let Some((trailer, value)) = self.table_get(meta, table, key, seq).await? {
                let seq = trailer >> 8;
                let kind = ValueKind::from_u8(trailer as u8).ok_or_else(|| {
                    Error::corruption(meta.file_name(), 0, format!("unknown entry kind {}", trailer as u8))
                })?;
                return Ok(resolve(Found { seq, kind, value }, tomb, now));
            }
        }
        Ok(None)
    }

    /// `f` of `key`'s value (`None`: deleted or expired), read in place
    /// without a copy, when the memtables decide it (they hold its newest
    /// version); `Ok(None)` when the tables must be read
    /// ([`Engine::get`]). `f` must not call the engine.
    pub fn get_in_memory<R>(
        &self,
        ks: KeyspaceId,
        key: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Result<Option<R>> {
        let st = self.inner.state.borrow();
        if st.closed {
            return Err(Error::Closed);
        }
        let k = st.keyspace(ks)?;
        Ok(self
            .memtables_get(k, key, st.visible_seq, |v| f(v.map(|(value, _)| value)))
            .ok())
    }

    /// The point read's memtable part, newest memtable first: `f` of the
    /// live value and its expiry (`None`: deleted or expired) once a
    /// memtable holds a version of `key` visible at `seq`; otherwise the
    /// sequence number of the newest range tombstone they hold over
    /// `key` (0: none), for the read of the tables.
    fn memtables_get<R>(
        &self,
        k: &KeyspaceState,
        key: &[u8],
        seq: SeqNo,
        f: impl FnOnce(Option<(&[u8], Option<u64>)>) -> R,
    ) -> std::result::Result<R, SeqNo> {
        let mut f = Some(f);
        let mut tomb = 0;
        for m in std::iter::once(&k.mem).chain(k.imm.iter().rev()) {
            tomb = tomb.max(m.covering_tombstone_seq(key, seq));
            let found = m.get_with(key, seq, |v| {
                let now = || self.inner.storage.now_unix_ms();
                let value = live(v.seq, v.kind, &v.value, tomb, now).map(|(start, at)| (&v.value[start..], at));
                f.take().expect("a read finds one version")(value)
            });
            if let Some(r) = found {
                return Ok(r);
            }
        }
        Err(tomb)
    }

    /// A point lookup in one table, through the row cache when the
    /// snapshot sees the whole file (then the answer cannot depend on it).
    async fn table_get(
        &self,
        meta: &FileMeta,
        table: &Rc<Table<S::File>>,
        key: &[u8],
        seq: SeqNo,
    ) -> Result<Option<(u64, Vec<u8>)>> {
        let cacheable = self.inner.row_cache.capacity_bytes() > 0 && seq >= meta.largest_seq;
        if cacheable {
            if let Some(hit) = self.inner.row_cache.get(&(meta.number, key.to_vec())) {
                return Ok((*hit).clone());
            }
        }
        let r = table.get(key, seq).await?;
        if cacheable {
            let charge = key.len() + r.as_ref().map_or(0, |(_, v)| v.len()) + 64;
            self.inner
                .row_cache
                .insert((meta.number, key.to_vec()), Rc::new(r.clone()), charge);
        }
        Ok(r)
    }

    /// Captures the sources for keyspace `ks`: every table whose range may
    /// hold `key` (all tables when `key` is `None`), newest first.
    pub(crate) fn read_view(&self, ks: KeyspaceId, key: Option<&[u8]>) -> Result<ReadView<S::File>> {
        let st = self.inner.state.borrow();
        let k = st.keyspace(ks)?;
        let mut tables = Vec::new();
        for (level, files) in k.version.levels.iter().enumerate() {
            let candidates: Vec<&Rc<FileMeta>> = match key {
                None => files.iter().collect(),
                Some(key) if level == 0 => files.iter().filter(|f| f.overlaps_user_range(key, key)).collect(),
                Some(key) => level_candidates(files, key),
            };
            for f in candidates {
                let t = st.tables.get(&f.number).expect("every live file has an open table");
                tables.push((f.clone(), t.clone()));
            }
        }
        Ok(ReadView {
            mem: k.mem.clone(),
            imm: k.imm.iter().rev().cloned().collect(),
            version: k.version.clone(),
            tables,
        })
    }
}

/// Files of a sorted, non-overlapping level whose user-key range contains
/// `key` (at most two: a file whose range tombstone ends at `key` and the
/// next one).
fn level_candidates<'a>(files: &'a [Rc<FileMeta>], key: &[u8]) -> Vec<&'a Rc<FileMeta>> {
    let i = files.partition_point(|f| key::user_key(&f.largest).cmp(key) == Ordering::Less);
    files[i..]
        .iter()
        .take(2)
        .filter(|f| key::user_key(&f.smallest) <= key && key <= key::user_key(&f.largest))
        .collect()
}
