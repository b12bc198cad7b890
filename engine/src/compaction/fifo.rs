//! FIFO compaction: every file stays in L0; when the keyspace's tables
//! exceed `fifo_max_table_files_size`, the oldest L0 files are deleted
//! (nothing is rewritten) until the total is back under the limit. Only
//! one deletion runs at a time: while any L0 file is busy, nothing is
//! picked.

use super::{CompactionInput, CompactionPlan, CompactionReason};
use crate::options::KeyspaceOptions;
use crate::version::Version;
use std::collections::HashSet;

pub(super) fn pick(version: &Version, opts: &KeyspaceOptions, busy: &HashSet<u64>) -> Option<CompactionPlan> {
    let l0 = &version.levels[0];
    if l0.iter().any(|f| busy.contains(&f.number)) {
        return None;
    }
    let mut total = version.total_bytes();
    if total <= opts.fifo_max_table_files_size {
        return None;
    }
    // Oldest files are at the back of L0.
    let mut take = 0;
    for f in l0.iter().rev() {
        if total <= opts.fifo_max_table_files_size {
            break;
        }
        total -= f.size;
        take += 1;
    }
    if take == 0 {
        return None;
    }
    let files = l0[l0.len() - take..].to_vec();
    Some(CompactionPlan {
        inputs: vec![CompactionInput { level: 0, files }],
        output_level: 0,
        reason: CompactionReason::FifoSize,
        delete_only: true,
        bottommost: false,
        target_file_size: opts.target_file_size,
        fences: Vec::new(),
    })
}
