//! The shape of one keyspace's LSM tree at a point in time: which SSTables
//! are live, on which level. A [`Version`] is immutable; flush and
//! compaction build a new one and swap it in, and readers that hold the old
//! `Rc<Version>` keep their files alive and their view consistent.
//!
//! Level invariants (asserted by [`Version::check_invariants`]):
//! - L0 files may overlap; they are ordered newest first (by `largest_seq`).
//! - In L1 and below, files are sorted by `smallest` and do not overlap.
//! - For any user key, entries on level n are newer than entries on level n+1.

use crate::key::{cmp_internal, user_key, SeqNo};
use std::cmp::Ordering;
use std::rc::Rc;

/// Metadata of one live SSTable, as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// File number: the table lives in `{number:06}.sst`.
    pub number: u64,
    /// File size in bytes.
    pub size: u64,
    /// Smallest internal key in the file, range tombstone starts included.
    pub smallest: Vec<u8>,
    /// Largest internal key in the file; a range tombstone's exclusive end
    /// appears as `(end, SEQ_MAX, RangeDelete)`, which sorts before every
    /// real entry of `end`.
    pub largest: Vec<u8>,
    pub smallest_seq: SeqNo,
    pub largest_seq: SeqNo,
    /// Point entries (puts and point tombstones).
    pub entries: u64,
    /// Point tombstones among `entries`.
    pub point_tombstones: u64,
    /// Range tombstones (in the range-delete block).
    pub range_tombstones: u64,
}

impl FileMeta {
    /// The file's name in the engine directory.
    pub fn file_name(&self) -> String {
        table_file_name(self.number)
    }

    /// Whether the file's user-key range intersects `[start, end]` (both inclusive user keys).
    pub fn overlaps_user_range(&self, start: &[u8], end: &[u8]) -> bool {
        !(user_key(&self.largest) < start || user_key(&self.smallest) > end)
    }
}

/// Name of table file `number`.
pub fn table_file_name(number: u64) -> String {
    format!("{number:06}.sst")
}

/// The live files of one keyspace, by level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Version {
    /// `levels[0]` is L0. Its length is the keyspace's `num_levels`.
    pub levels: Vec<Vec<Rc<FileMeta>>>,
}

impl Version {
    pub fn new(num_levels: usize) -> Self {
        assert!(num_levels >= 1);
        Version {
            levels: vec![Vec::new(); num_levels],
        }
    }

    pub fn level_bytes(&self, level: usize) -> u64 {
        self.levels[level].iter().map(|f| f.size).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        (0..self.levels.len()).map(|l| self.level_bytes(l)).sum()
    }

    pub fn file_count(&self) -> usize {
        self.levels.iter().map(Vec::len).sum()
    }

    /// All files, any level.
    pub fn files(&self) -> impl Iterator<Item = (usize, &Rc<FileMeta>)> {
        self.levels
            .iter()
            .enumerate()
            .flat_map(|(l, fs)| fs.iter().map(move |f| (l, f)))
    }

    /// The deepest level holding any file, or `None` when empty.
    pub fn deepest_nonempty_level(&self) -> Option<usize> {
        (0..self.levels.len()).rev().find(|&l| !self.levels[l].is_empty())
    }

    /// Panics if a level invariant is broken: called after every change.
    pub fn check_invariants(&self) {
        let l0 = &self.levels[0];
        for w in l0.windows(2) {
            assert!(
                w[0].largest_seq >= w[1].largest_seq,
                "L0 not ordered newest first: {} before {}",
                w[0].number,
                w[1].number
            );
        }
        for (level, files) in self.levels.iter().enumerate().skip(1) {
            for f in files {
                assert!(
                    cmp_internal(&f.smallest, &f.largest) != Ordering::Greater,
                    "file {} bounds inverted",
                    f.number
                );
            }
            for w in files.windows(2) {
                assert!(
                    cmp_internal(&w[0].largest, &w[1].smallest) == Ordering::Less,
                    "L{level}: files {} and {} overlap",
                    w[0].number,
                    w[1].number
                );
            }
        }
    }
}
