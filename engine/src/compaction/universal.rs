//! Universal compaction (RocksDB's universal style, a size-tiered scheme).
//!
//! **Sorted runs.** Each L0 file is one run and each non-empty level L1+
//! is one run; runs are listed newest first (L0 front to back, then L1,
//! L2, ...). Nothing happens until there are at least
//! `max(2, level0_file_num_compaction_trigger)` runs. Then, in order:
//!
//! 1. **Size amplification.** If the runs newer than the oldest together
//!    hold at least `universal_max_size_amplification_percent` percent of
//!    the oldest run's bytes, merge every run (a full merge).
//! 2. **Size ratio.** From the newest run on, grow a window while the next
//!    run is no more than `universal_size_ratio_percent` percent larger
//!    than the window so far (at most `universal_max_merge_width` runs);
//!    merge the first window of two or more runs.
//! 3. **Run count.** If there are more runs than the trigger, merge the
//!    newest `runs - trigger + 1` adjacent runs (leaving `trigger` runs).
//!
//! A merge only ever takes adjacent, non-busy runs.
//!
//! **Where the output goes.** Let runs `i..=e` be merged. If `e` is the
//! oldest run the output goes to the last level. Otherwise look at the
//! next older run `e + 1`: if it is an L0 file, the output is one L0 file
//! placed where the inputs were; if it is level `m`, the output goes to
//! level `m - 1` (L0 if `m == 1`). Input levels are all above `m`, and
//! level `m - 1` is either empty or one of the inputs, so the output
//! never shares a level with foreign files, and the newer-above-older rule
//! holds for every user key: everything newer than the inputs stays above
//! the output, everything older stays below it. An L0 output must be a
//! single file (`target_file_size == u64::MAX`) because every L0 file is
//! its own run.

use super::{is_bottommost, CompactionInput, CompactionPlan, CompactionReason, ManualStep};
use crate::options::KeyspaceOptions;
use crate::version::{FileMeta, Version};
use std::collections::HashSet;
use std::rc::Rc;

/// One sorted run.
#[derive(Debug, Clone)]
pub(crate) struct SortedRun {
    /// 0 for an L0 file, else the level the run spans.
    pub level: usize,
    pub files: Vec<Rc<FileMeta>>,
    pub bytes: u64,
    pub busy: bool,
}

/// The sorted runs of `version`, newest first.
pub(crate) fn sorted_runs(version: &Version, busy: &HashSet<u64>) -> Vec<SortedRun> {
    let mut runs: Vec<SortedRun> = version.levels[0]
        .iter()
        .map(|f| SortedRun {
            level: 0,
            files: vec![f.clone()],
            bytes: f.size,
            busy: busy.contains(&f.number),
        })
        .collect();
    for (level, files) in version.levels.iter().enumerate().skip(1) {
        if files.is_empty() {
            continue;
        }
        runs.push(SortedRun {
            level,
            files: files.clone(),
            bytes: files.iter().map(|f| f.size).sum(),
            busy: files.iter().any(|f| busy.contains(&f.number)),
        });
    }
    runs
}

pub(super) fn pick(version: &Version, opts: &KeyspaceOptions, busy: &HashSet<u64>) -> Option<CompactionPlan> {
    let runs = sorted_runs(version, busy);
    let trigger = opts.level0_file_num_compaction_trigger.max(2);
    if runs.len() < trigger {
        return None;
    }
    let max_width = opts.universal_max_merge_width.max(2);

    // 1. Size amplification: a full merge.
    if !runs.iter().any(|r| r.busy) {
        let (oldest, newer) = runs.split_last()?;
        let newer_bytes: u128 = newer.iter().map(|r| u128::from(r.bytes)).sum();
        if newer_bytes * 100 >= u128::from(opts.universal_max_size_amplification_percent) * u128::from(oldest.bytes) {
            return Some(plan(
                version,
                opts,
                &runs,
                0,
                runs.len() - 1,
                CompactionReason::UniversalSizeAmp,
            ));
        }
    }

    // 2. Size ratio.
    let ratio = u128::from(opts.universal_size_ratio_percent);
    for i in 0..runs.len() {
        if runs[i].busy {
            continue;
        }
        let mut window_bytes = u128::from(runs[i].bytes);
        let mut count = 1;
        for next in &runs[i + 1..] {
            if count >= max_width || next.busy {
                break;
            }
            if window_bytes * (100 + ratio) < u128::from(next.bytes) * 100 {
                break;
            }
            window_bytes += u128::from(next.bytes);
            count += 1;
        }
        if count >= 2 {
            return Some(plan(
                version,
                opts,
                &runs,
                i,
                i + count - 1,
                CompactionReason::UniversalSizeRatio,
            ));
        }
    }

    // 3. Run count.
    if runs.len() > trigger {
        let width = (runs.len() - trigger + 1).min(max_width);
        for i in 0..=runs.len() - width {
            if runs[i..i + width].iter().all(|r| !r.busy) {
                return Some(plan(
                    version,
                    opts,
                    &runs,
                    i,
                    i + width - 1,
                    CompactionReason::UniversalRunCount,
                ));
            }
        }
    }
    None
}

pub(super) fn manual(version: &Version, opts: &KeyspaceOptions, busy: &HashSet<u64>) -> ManualStep {
    let runs = sorted_runs(version, busy);
    let last_level = version.levels.len() - 1;
    match runs.as_slice() {
        [] => return ManualStep::Done,
        [only] if only.level == last_level => return ManualStep::Done,
        _ => {}
    }
    if runs.iter().any(|r| r.busy) {
        return ManualStep::Wait;
    }
    ManualStep::Run(plan(version, opts, &runs, 0, runs.len() - 1, CompactionReason::Manual))
}

/// The plan merging runs `first..=last`.
fn plan(
    version: &Version,
    opts: &KeyspaceOptions,
    runs: &[SortedRun],
    first: usize,
    last: usize,
    reason: CompactionReason,
) -> CompactionPlan {
    assert!(first <= last && last < runs.len());
    let last_level = version.levels.len() - 1;
    let output_level = match runs.get(last + 1) {
        None => last_level,
        Some(next) => next.level.saturating_sub(1),
    };
    let mut inputs: Vec<CompactionInput> = Vec::new();
    for run in &runs[first..=last] {
        assert!(!run.busy, "universal plan takes a busy run");
        assert!(run.level <= output_level, "universal plan would move L{} up", run.level);
        match inputs.last_mut() {
            Some(input) if input.level == run.level => input.files.extend(run.files.iter().cloned()),
            _ => inputs.push(CompactionInput {
                level: run.level,
                files: run.files.clone(),
            }),
        }
    }
    let bottommost = is_bottommost(version, &inputs, output_level);
    CompactionPlan {
        inputs,
        output_level,
        reason,
        delete_only: false,
        bottommost,
        target_file_size: if output_level == 0 {
            u64::MAX
        } else {
            opts.target_file_size
        },
        fences: Vec::new(),
    }
}
