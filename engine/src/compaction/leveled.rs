//! Leveled compaction (LevelDB/RocksDB style).
//!
//! Scores: L0 is its file count over `level0_file_num_compaction_trigger`;
//! Ln (n >= 1) is its bytes over its target (L1 `max_bytes_for_level_base`,
//! each deeper level `level_size_multiplier` times larger). Levels with a
//! score >= 1 are tried highest score first; the last level is never a
//! source.
//!
//! - L0 → L1 moves an L0 file that overlaps no other L0 file and nothing
//!   in L1 down as it is (oldest first); otherwise it takes every L0 file
//!   plus the L1 files overlapping one of them. It is skipped while any L0
//!   file is busy: only one L0 compaction runs at a time, so an older L0
//!   file can never be left above newer L1 data.
//! - A merge into level n+1 takes only the files that overlap a source
//!   file; one lying in a gap between sources stays, and the outputs are
//!   cut at its smallest key (a fence) so none spans it.
//! - Ln → Ln+1 takes one Ln file, the one whose overlap with Ln+1 is the
//!   smallest relative to its size (RocksDB's `kMinOverlappingRatio`: the
//!   least write amplification), expanded to a clean cut, plus the Ln+1
//!   files overlapping it, also expanded to a clean cut. A candidate that
//!   touches a busy file is passed over for the next one.

use super::{
    clean_cut, is_bottommost, l0_score, level_target_bytes, overlapping_sorted, user_range, CompactionInput,
    CompactionPlan, CompactionReason, ManualStep,
};
use crate::key::user_key;
use crate::options::KeyspaceOptions;
use crate::version::{FileMeta, Version};
use std::collections::HashSet;
use std::rc::Rc;

pub(super) fn pick(version: &Version, opts: &KeyspaceOptions, busy: &HashSet<u64>) -> Option<CompactionPlan> {
    let n = version.levels.len();
    if n < 2 {
        return None;
    }
    let mut scored: Vec<(f64, usize)> = (0..n - 1)
        .map(|level| {
            let score = if level == 0 {
                l0_score(version, opts)
            } else {
                version.level_bytes(level) as f64 / level_target_bytes(opts, level) as f64
            };
            (score, level)
        })
        .filter(|&(score, _)| score >= 1.0)
        .collect();
    // Highest score first; ties go to the shallower level.
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, level) in scored {
        let plan = if level == 0 {
            pick_l0(version, opts, busy, CompactionReason::L0FileCount)
        } else {
            pick_level(version, opts, busy, level)
        };
        if plan.is_some() {
            return plan;
        }
    }
    None
}

/// An L0 file that overlaps no other L0 file and nothing in L1 (oldest
/// first) moves down as it is; otherwise all L0 files plus the L1 files
/// overlapping them. `None` if any L0 file is busy.
fn pick_l0(
    version: &Version,
    opts: &KeyspaceOptions,
    busy: &HashSet<u64>,
    reason: CompactionReason,
) -> Option<CompactionPlan> {
    let l0 = &version.levels[0];
    if l0.is_empty() || l0.iter().any(|f| busy.contains(&f.number)) {
        return None;
    }
    let l1 = &version.levels[1];
    let alone = l0.iter().rev().find(|f| {
        let (s, e) = (user_key(&f.smallest), user_key(&f.largest));
        let (lo, hi) = overlapping_sorted(l1, s, e);
        lo == hi && !l0.iter().any(|g| g.number != f.number && g.overlaps_user_range(s, e))
    });
    if let Some(f) = alone {
        return into_next_level(version, opts, busy, 0, vec![f.clone()], reason);
    }
    into_next_level(version, opts, busy, 0, l0.clone(), reason)
}

/// Builds `source_files` (on `level`) + every file of `level + 1` that
/// overlaps one of them (each overlap expanded to a clean cut); `None` if
/// any of the latter is busy. A file of `level + 1` lying in a gap between
/// the sources stays where it is and becomes a fence for the outputs.
fn into_next_level(
    version: &Version,
    opts: &KeyspaceOptions,
    busy: &HashSet<u64>,
    level: usize,
    source_files: Vec<Rc<FileMeta>>,
    reason: CompactionReason,
) -> Option<CompactionPlan> {
    let (start, end) = user_range(source_files.iter())?;
    let next = &version.levels[level + 1];
    let mut chosen = vec![false; next.len()];
    for f in &source_files {
        let (lo, hi) = overlapping_sorted(next, user_key(&f.smallest), user_key(&f.largest));
        if lo < hi {
            let (lo, hi) = clean_cut(next, lo, hi);
            chosen[lo..hi].iter_mut().for_each(|c| *c = true);
        }
    }
    let files: Vec<Rc<FileMeta>> = next
        .iter()
        .zip(&chosen)
        .filter(|(_, &c)| c)
        .map(|(f, _)| f.clone())
        .collect();
    if files.iter().any(|f| busy.contains(&f.number)) {
        return None;
    }
    let (start, end) = match user_range(files.iter()) {
        Some((s, e)) => (start.min(s), end.max(e)),
        None => (start, end),
    };
    let fences = next
        .iter()
        .zip(&chosen)
        .filter(|(f, &c)| !c && f.overlaps_user_range(start, end))
        .map(|(f, _)| user_key(&f.smallest).to_vec())
        .collect();
    let mut inputs = vec![CompactionInput {
        level,
        files: source_files,
    }];
    if !files.is_empty() {
        inputs.push(CompactionInput {
            level: level + 1,
            files,
        });
    }
    let output_level = level + 1;
    let bottommost = is_bottommost(version, &inputs, output_level);
    Some(CompactionPlan {
        inputs,
        output_level,
        reason,
        delete_only: false,
        bottommost,
        target_file_size: opts.target_file_size,
        fences,
    })
}

/// One file of `level` (>= 1) into `level + 1`.
fn pick_level(version: &Version, opts: &KeyspaceOptions, busy: &HashSet<u64>, level: usize) -> Option<CompactionPlan> {
    let files = &version.levels[level];
    let next = &version.levels[level + 1];
    // (overlap bytes scaled by file size, file number, index)
    let mut candidates: Vec<(u128, u64, usize)> = files
        .iter()
        .enumerate()
        .filter(|(_, f)| !busy.contains(&f.number))
        .map(|(i, f)| {
            let (lo, hi) = overlapping_sorted(next, user_key(&f.smallest), user_key(&f.largest));
            let overlap: u64 = next[lo..hi].iter().map(|g| g.size).sum();
            let ratio = u128::from(overlap) * 1024 / u128::from(f.size.max(1));
            (ratio, f.number, i)
        })
        .collect();
    candidates.sort_unstable();
    for (_, _, i) in candidates {
        let (lo, hi) = clean_cut(files, i, i + 1);
        let chosen = &files[lo..hi];
        if chosen.iter().any(|f| busy.contains(&f.number)) {
            continue;
        }
        let plan = into_next_level(
            version,
            opts,
            busy,
            level,
            chosen.to_vec(),
            CompactionReason::LevelSize { level },
        );
        if plan.is_some() {
            return plan;
        }
    }
    None
}

pub(super) fn manual(
    version: &Version,
    opts: &KeyspaceOptions,
    busy: &HashSet<u64>,
    range: Option<(&[u8], &[u8])>,
    target_level: Option<usize>,
) -> ManualStep {
    let n = version.levels.len();
    if n < 2 {
        return ManualStep::Done;
    }
    let target = target_level
        .unwrap_or_else(|| version.deepest_nonempty_level().unwrap_or(0).max(1))
        .clamp(1, n - 1);
    let in_range = |f: &Rc<FileMeta>| match range {
        Some((s, e)) => f.overlaps_user_range(s, e),
        None => true,
    };
    for level in 0..target {
        let files = &version.levels[level];
        if !files.iter().any(in_range) {
            continue;
        }
        let chosen: Vec<Rc<FileMeta>> = if level == 0 {
            // A running L0 compaction's outputs may land anywhere in the
            // hull of its inputs: only one L0 compaction at a time.
            if files.iter().any(|f| busy.contains(&f.number)) {
                return ManualStep::Wait;
            }
            l0_closure(files, &in_range)
        } else {
            let first = files.iter().position(in_range);
            let last = files.iter().rposition(in_range);
            match (first, last) {
                (Some(first), Some(last)) => {
                    let (lo, hi) = clean_cut(files, first, last + 1);
                    files[lo..hi].to_vec()
                }
                _ => continue,
            }
        };
        if chosen.iter().any(|f| busy.contains(&f.number)) {
            return ManualStep::Wait;
        }
        return match into_next_level(version, opts, busy, level, chosen, CompactionReason::Manual) {
            Some(plan) => ManualStep::Run(plan),
            None => ManualStep::Wait,
        };
    }
    ManualStep::Done
}

/// The L0 files in range, closed under overlap: every L0 file that
/// overlaps a chosen one is chosen too, so no file left behind in L0
/// shares a user key with the data moving down.
fn l0_closure(files: &[Rc<FileMeta>], in_range: &dyn Fn(&Rc<FileMeta>) -> bool) -> Vec<Rc<FileMeta>> {
    let mut chosen: Vec<bool> = files.iter().map(in_range).collect();
    loop {
        let picked = files.iter().zip(&chosen).filter(|(_, &c)| c).map(|(f, _)| f);
        let Some((start, end)) = user_range(picked) else {
            return Vec::new();
        };
        let mut grew = false;
        for (f, c) in files.iter().zip(chosen.iter_mut()) {
            if !*c && f.overlaps_user_range(start, end) {
                *c = true;
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    files
        .iter()
        .zip(&chosen)
        .filter(|(_, &c)| c)
        .map(|(f, _)| f.clone())
        .collect()
}
