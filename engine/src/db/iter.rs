//! Range iteration under a snapshot: a merge of every source (memtable,
//! frozen memtables, L0 files, one concatenating cursor per deeper level),
//! each yielding the newest version of each user key visible at the
//! snapshot. The iterator holds `Rc`s on its memtables, version and tables,
//! so flushes and compactions that run meanwhile do not change what it
//! sees.

use super::read::{resolve, Found};
use super::{Engine, Snapshot};
use crate::batch::KeyspaceId;
use crate::key::{self, RangeTombstone, SeqNo};
use crate::memtable::{Entry, MemTable};
use crate::sst::{Table, TableIter};
use crate::storage::{Storage, StorageFile};
use crate::Result;
use std::collections::VecDeque;
use std::ops::Bound;
use std::rc::Rc;

/// Keys copied out of a memtable by the first refill; each later refill
/// doubles it, up to [`MEM_CHUNK_KEYS_MAX`]. Short scans (a seek and a
/// few nexts) copy little; long scans amortise the lookups.
const MEM_CHUNK_KEYS_MIN: usize = 4;
const MEM_CHUNK_KEYS_MAX: usize = 512;

/// Iterator steps between offers to yield the core.
const YIELD_EVERY_STEPS: u32 = 64;

enum Source<F: StorageFile> {
    Mem {
        mem: Rc<MemTable>,
        buf: VecDeque<Entry>,
        /// Last key handed to `buf`; the next refill starts after it.
        resume_after: Option<Vec<u8>>,
        done: bool,
        chunk: usize,
    },
    Tables {
        /// Tables in key order (one L0 file, or a whole sorted level).
        tables: VecDeque<Rc<Table<F>>>,
        it: Option<TableIter<F>>,
        cur: Option<Entry>,
    },
}

/// An ordered iterator over `[lower, upper)` of one keyspace at one snapshot.
pub struct DbIterator<S: Storage> {
    sources: Vec<Source<S::File>>,
    tombstones: Vec<RangeTombstone>,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    seq: SeqNo,
    now_ms: u64,
    storage: S,
    started: bool,
    steps: u32,
    /// Keeps the snapshot registered while the iterator lives.
    _snapshot: Option<Snapshot>,
}

impl<S: Storage> Engine<S> {
    /// Iterates keys in `[lower, upper)` of keyspace `ks` in order, at
    /// `snapshot` (or at a snapshot taken now).
    pub fn scan(
        &self,
        ks: KeyspaceId,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
        snapshot: Option<&Snapshot>,
    ) -> Result<DbIterator<S>> {
        let (seq, own) = match snapshot {
            Some(s) => (s.seq(), None),
            None => {
                let s = self.snapshot();
                (s.seq(), Some(s))
            }
        };
        let view = self.read_view(ks, None)?;
        let mut sources = Vec::new();
        let mut tombstones = Vec::new();
        if range_is_empty(&lower, &upper) {
            return Ok(DbIterator {
                sources,
                tombstones,
                lower,
                upper,
                seq,
                now_ms: 0,
                storage: self.inner.storage.clone(),
                started: true,
                steps: 0,
                _snapshot: own,
            });
        }
        for m in std::iter::once(&view.mem).chain(view.imm.iter()) {
            tombstones.extend(m.range_tombstones(seq));
            sources.push(Source::Mem {
                mem: m.clone(),
                buf: VecDeque::new(),
                resume_after: None,
                done: false,
                chunk: MEM_CHUNK_KEYS_MIN,
            });
        }
        let in_range = |lo: &[u8], hi: &[u8]| {
            let below_upper = match &upper {
                Bound::Included(u) => lo <= u.as_slice(),
                Bound::Excluded(u) => lo < u.as_slice(),
                Bound::Unbounded => true,
            };
            let above_lower = match &lower {
                Bound::Included(l) | Bound::Excluded(l) => hi >= l.as_slice(),
                Bound::Unbounded => true,
            };
            below_upper && above_lower
        };
        for (level, files) in view.version.levels.iter().enumerate() {
            let mut level_tables = VecDeque::new();
            for f in files {
                if !in_range(key::user_key(&f.smallest), key::user_key(&f.largest)) {
                    continue;
                }
                let (_, table) = view
                    .tables
                    .iter()
                    .find(|(m, _)| m.number == f.number)
                    .expect("read view holds every live table");
                tombstones.extend(table.range_tombstones().iter().filter(|t| t.seq <= seq).cloned());
                if level == 0 {
                    sources.push(Source::Tables {
                        tables: VecDeque::from([table.clone()]),
                        it: None,
                        cur: None,
                    });
                } else {
                    level_tables.push_back(table.clone());
                }
            }
            if !level_tables.is_empty() {
                sources.push(Source::Tables {
                    tables: level_tables,
                    it: None,
                    cur: None,
                });
            }
        }
        Ok(DbIterator {
            sources,
            tombstones,
            lower,
            upper,
            seq,
            now_ms: self.inner.storage.now_unix_ms(),
            storage: self.inner.storage.clone(),
            started: false,
            steps: 0,
            _snapshot: own,
        })
    }

    /// Collects up to `limit` pairs of `[lower, upper)`.
    pub async fn scan_collect(
        &self,
        ks: KeyspaceId,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut it = self.scan(ks, lower, upper, None)?;
        let mut out = Vec::new();
        while out.len() < limit {
            match it.next().await? {
                Some(kv) => out.push(kv),
                None => break,
            }
        }
        Ok(out)
    }
}

impl<S: Storage> DbIterator<S> {
    /// The next live key and its value, or `None` at the end of the range.
    pub async fn next(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        if !self.started {
            self.started = true;
            for i in 0..self.sources.len() {
                self.start_source(i).await?;
            }
        }
        loop {
            self.steps = self.steps.wrapping_add(1);
            if self.steps.is_multiple_of(YIELD_EVERY_STEPS) {
                self.storage.yield_if_needed().await;
            }
            // The smallest current key, and among its holders the newest version.
            let mut best: Option<(usize, &Entry)> = None;
            for (i, s) in self.sources.iter().enumerate() {
                let Some(e) = current(s) else { continue };
                best = match best {
                    None => Some((i, e)),
                    Some((bi, be)) => match e.key.cmp(&be.key) {
                        std::cmp::Ordering::Less => Some((i, e)),
                        std::cmp::Ordering::Equal if e.seq > be.seq => Some((i, e)),
                        _ => Some((bi, be)),
                    },
                };
            }
            let Some((bi, _)) = best else { return Ok(None) };
            // Move the winner out (no copy), then step every older version
            // of the same key past it.
            let entry = self.advance_source(bi).await?.expect("best source has an entry");
            for i in 0..self.sources.len() {
                if current(&self.sources[i]).is_some_and(|e| e.key == entry.key) {
                    self.advance_source(i).await?;
                }
            }
            if !self.below_upper(&entry.key) {
                return Ok(None);
            }
            let tomb = self
                .tombstones
                .iter()
                .filter(|t| t.covers(&entry.key, entry.seq, self.seq))
                .map(|t| t.seq)
                .max()
                .unwrap_or(0);
            let found = Found {
                seq: entry.seq,
                kind: entry.kind,
                value: entry.value,
            };
            if let Some(v) = resolve(found, tomb, self.now_ms) {
                return Ok(Some((entry.key, v.value)));
            }
        }
    }

    fn below_upper(&self, k: &[u8]) -> bool {
        match &self.upper {
            Bound::Included(u) => k <= u.as_slice(),
            Bound::Excluded(u) => k < u.as_slice(),
            Bound::Unbounded => true,
        }
    }

    fn above_lower(&self, k: &[u8]) -> bool {
        match &self.lower {
            Bound::Included(l) => k >= l.as_slice(),
            Bound::Excluded(l) => k > l.as_slice(),
            Bound::Unbounded => true,
        }
    }

    async fn start_source(&mut self, i: usize) -> Result<()> {
        match &mut self.sources[i] {
            Source::Mem { .. } => {
                self.refill_mem(i);
                Ok(())
            }
            Source::Tables { .. } => self.open_next_table(i, true).await,
        }
    }

    fn refill_mem(&mut self, i: usize) {
        let lower = self.lower.clone();
        let upper = self.upper.clone();
        let seq = self.seq;
        let Source::Mem {
            mem,
            buf,
            resume_after,
            done,
            chunk,
        } = &mut self.sources[i]
        else {
            unreachable!()
        };
        if *done || !buf.is_empty() {
            return;
        }
        let after = match resume_after {
            Some(k) => Bound::Excluded(k.as_slice()),
            None => match &lower {
                Bound::Included(l) => Bound::Included(l.as_slice()),
                Bound::Excluded(l) => Bound::Excluded(l.as_slice()),
                Bound::Unbounded => Bound::Unbounded,
            },
        };
        let up = match &upper {
            Bound::Included(u) => Bound::Included(u.as_slice()),
            Bound::Excluded(u) => Bound::Excluded(u.as_slice()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut out = Vec::new();
        mem.visible_after(after, up, seq, *chunk, &mut out);
        if out.len() < *chunk {
            *done = true;
        }
        *chunk = (*chunk * 2).min(MEM_CHUNK_KEYS_MAX);
        if let Some(last) = out.last() {
            *resume_after = Some(last.key.clone());
        }
        buf.extend(out);
    }

    /// Positions a table source on its next table (the first one at the
    /// lower bound when `first`) and settles on a visible entry.
    async fn open_next_table(&mut self, i: usize, first: bool) -> Result<()> {
        loop {
            let seek = if first {
                match &self.lower {
                    Bound::Included(l) | Bound::Excluded(l) => Some(key::make_seek_key(l, key::SEQ_MAX)),
                    Bound::Unbounded => None,
                }
            } else {
                None
            };
            let Source::Tables { tables, it, cur } = &mut self.sources[i] else {
                unreachable!()
            };
            *cur = None;
            let Some(t) = tables.pop_front() else {
                *it = None;
                return Ok(());
            };
            let mut new_it = t.iter();
            match &seek {
                Some(k) => new_it.seek(k).await?,
                None => new_it.seek_to_first().await?,
            }
            *it = Some(new_it);
            self.settle(i).await?;
            let Source::Tables { cur, tables, .. } = &self.sources[i] else {
                unreachable!()
            };
            if cur.is_some() || tables.is_empty() {
                return Ok(());
            }
        }
    }

    /// Moves a table source's cursor to the newest visible version of the
    /// next user key in range.
    async fn settle(&mut self, i: usize) -> Result<()> {
        let seq = self.seq;
        loop {
            let Source::Tables { it, cur, .. } = &mut self.sources[i] else {
                unreachable!()
            };
            let Some(iter) = it.as_mut() else { return Ok(()) };
            if !iter.valid() {
                *cur = None;
                return Ok(());
            }
            let ik = key::InternalKey::decode(iter.key()).expect("table keys carry trailers");
            if ik.seq > seq {
                iter.next().await?;
                continue;
            }
            let kind = ik.kind().unwrap_or(crate::key::ValueKind::Delete);
            let entry = Entry {
                key: ik.user_key.to_vec(),
                seq: ik.seq,
                kind,
                value: iter.value().to_vec(),
            };
            let past_upper = !self.below_upper(&entry.key);
            let below_lower = !self.above_lower(&entry.key);
            let Source::Tables { it, cur, tables } = &mut self.sources[i] else {
                unreachable!()
            };
            if below_lower {
                // Only for an excluded lower bound: skip that key's versions.
                let iter = it.as_mut().expect("iterator present");
                skip_user_key(iter, &entry.key).await?;
                continue;
            }
            *cur = if past_upper { None } else { Some(entry) };
            if past_upper {
                // Sorted sources: nothing after this is in range either.
                *it = None;
                tables.clear();
            }
            return Ok(());
        }
    }

    /// Moves source `i` to its next user key; returns the entry it was on.
    async fn advance_source(&mut self, i: usize) -> Result<Option<Entry>> {
        match &mut self.sources[i] {
            Source::Mem { buf, .. } => {
                let e = buf.pop_front();
                self.refill_mem(i);
                Ok(e)
            }
            Source::Tables { it, cur, .. } => {
                let Some(c) = cur.take() else { return Ok(None) };
                if let Some(iter) = it.as_mut() {
                    skip_user_key(iter, &c.key).await?;
                }
                self.settle(i).await?;
                let exhausted = matches!(&self.sources[i], Source::Tables { cur: None, tables, it, .. } if !tables.is_empty() && it.as_ref().is_none_or(|it| !it.valid()));
                if exhausted {
                    self.open_next_table(i, false).await?;
                }
                Ok(Some(c))
            }
        }
    }
}

/// Whether no key can lie in the range (start after end, or a point range
/// with an excluded bound).
fn range_is_empty(lower: &Bound<Vec<u8>>, upper: &Bound<Vec<u8>>) -> bool {
    match (lower, upper) {
        (Bound::Included(l), Bound::Included(u)) => l > u,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(u)) | (Bound::Excluded(l), Bound::Included(u)) => {
            l >= u
        }
        _ => false,
    }
}

fn current<F: StorageFile>(s: &Source<F>) -> Option<&Entry> {
    match s {
        Source::Mem { buf, .. } => buf.front(),
        Source::Tables { cur, .. } => cur.as_ref(),
    }
}

async fn skip_user_key<F: StorageFile>(it: &mut TableIter<F>, user_key: &[u8]) -> Result<()> {
    while it.valid() && key::user_key(it.key()) == user_key {
        it.next().await?;
    }
    Ok(())
}
