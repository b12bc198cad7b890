//! The compaction planner: pure functions from the current [`Version`] to
//! a [`CompactionPlan`], and from a finished plan plus its output files to
//! the next `Version`. No I/O, no clocks, no randomness: the driver that
//! reads input tables and writes output tables lives elsewhere and calls in
//! here (lsm-tree's `CompactionStrategy::choose`).
//!
//! How a driver uses it:
//!
//! 1. `pick(&version, &opts, &busy)` where `busy` holds the file numbers of
//!    every compaction still running. `None` means nothing to do now.
//! 2. Add the plan's input file numbers to `busy`, merge the inputs (drop
//!    shadowed versions; drop tombstones and expired entries only when
//!    `plan.bottommost`), cut output files at `plan.target_file_size`, or
//!    write nothing when `plan.delete_only`.
//! 3. `apply(&current_version, &plan, outputs)` builds the next version
//!    (the current one, which may have gained flushed L0 files meanwhile),
//!    persist it in the manifest, swap it in, remove the plan's inputs from
//!    `busy`, and call `pick` again.
//!
//! Concurrent compactions are safe as long as every running plan's inputs
//! are in `busy`: a plan never takes a busy file, and never writes into a
//! key range of its output level that a running plan also writes.
//!
//! The data-age rule every plan keeps: for any user key, data on level n
//! is newer than data on level n+1, and within L0 a file nearer the front
//! is newer than any file behind it that it overlaps.

mod fifo;
mod leveled;
mod universal;

#[cfg(test)]
mod tests;

use crate::key::user_key;
use crate::options::{CompactionStyle, KeyspaceOptions};
use crate::version::{FileMeta, Version};
use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::rc::Rc;

/// Why a compaction was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompactionReason {
    /// Leveled: L0 holds at least `level0_file_num_compaction_trigger` files.
    L0FileCount,
    /// Leveled: `level` holds more bytes than its target.
    LevelSize { level: usize },
    /// Universal: the newer runs together are too large relative to the oldest.
    UniversalSizeAmp,
    /// Universal: adjacent runs of similar size.
    UniversalSizeRatio,
    /// Universal: more sorted runs than `level0_file_num_compaction_trigger`.
    UniversalRunCount,
    /// FIFO: the tables exceed `fifo_max_table_files_size`.
    FifoSize,
    /// Requested by an operator or API call ([`manual`]).
    Manual,
}

impl fmt::Display for CompactionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompactionReason::L0FileCount => write!(f, "L0 file count"),
            CompactionReason::LevelSize { level } => write!(f, "L{level} size"),
            CompactionReason::UniversalSizeAmp => write!(f, "universal size amplification"),
            CompactionReason::UniversalSizeRatio => write!(f, "universal size ratio"),
            CompactionReason::UniversalRunCount => write!(f, "universal sorted run count"),
            CompactionReason::FifoSize => write!(f, "FIFO size limit"),
            CompactionReason::Manual => write!(f, "manual"),
        }
    }
}

/// The files a plan reads from one level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionInput {
    pub level: usize,
    /// In the level's own order (L0: newest first; L1+: by key).
    pub files: Vec<Rc<FileMeta>>,
}

/// One compaction to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionPlan {
    /// Input files by level, shallowest level first.
    pub inputs: Vec<CompactionInput>,
    /// The level the outputs go to.
    pub output_level: usize,
    pub reason: CompactionReason,
    /// FIFO: delete the inputs and write nothing.
    pub delete_only: bool,
    /// No file outside the inputs holds data older than the inputs in their
    /// user-key range, so point and range tombstones and expired entries may
    /// be dropped (snapshots permitting).
    pub bottommost: bool,
    /// Cut output files at about this many bytes. `u64::MAX` means "one
    /// file": an L0 output must be a single sorted run.
    pub target_file_size: u64,
    /// Ascending user keys no output may span: the smallest key of each
    /// output-level file that lies between the inputs' key ranges without
    /// overlapping any input (it is left where it is). Outputs are cut at
    /// each, so every output fits into the level beside those files.
    pub fences: Vec<Vec<u8>>,
}

impl CompactionPlan {
    /// Every input file number.
    pub fn input_numbers(&self) -> impl Iterator<Item = u64> + '_ {
        self.inputs.iter().flat_map(|i| i.files.iter().map(|f| f.number))
    }

    pub fn input_file_count(&self) -> usize {
        self.inputs.iter().map(|i| i.files.len()).sum()
    }

    pub fn input_bytes(&self) -> u64 {
        self.inputs.iter().flat_map(|i| i.files.iter()).map(|f| f.size).sum()
    }

    /// Inclusive user-key range of all inputs.
    pub fn user_key_range(&self) -> Option<(&[u8], &[u8])> {
        user_range(self.inputs.iter().flat_map(|i| i.files.iter()))
    }

    /// A single input file moving one level down with nothing to merge: the
    /// driver may re-link it instead of rewriting it (when it has no reason
    /// to rewrite, such as dropping tombstones at the bottom).
    pub fn is_trivial_move(&self) -> bool {
        !self.delete_only
            && self.inputs.len() == 1
            && self.inputs[0].files.len() == 1
            && self.inputs[0].level < self.output_level
            && self.output_level >= 1
    }
}

/// Picks the next automatic compaction, or `None` when nothing is due or
/// everything due touches a busy file.
pub fn pick(version: &Version, opts: &KeyspaceOptions, busy: &HashSet<u64>) -> Option<CompactionPlan> {
    let plan = match opts.compaction_style {
        CompactionStyle::Leveled => leveled::pick(version, opts, busy),
        CompactionStyle::Universal => universal::pick(version, opts, busy),
        CompactionStyle::Fifo => fifo::pick(version, opts, busy),
    }?;
    check_plan(version, &plan, busy);
    Some(plan)
}

/// One step of a manual compaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManualStep {
    /// Run this plan, apply it, then call [`manual`] again.
    Run(CompactionPlan),
    /// The next step touches a busy file: call [`manual`] again after a
    /// running compaction finishes.
    Wait,
    /// The requested range is fully compacted.
    Done,
}

/// The next step of "compact `range` (inclusive user keys; `None` = all)
/// down to `target_level`". The driver loops: `Run` → run, apply, call
/// again; `Wait` → wait for a running compaction, call again; `Done` → stop.
/// Every `Run` moves data strictly down (or merges it into one run), so the
/// loop ends.
///
/// - Leveled: level by level, the shallowest level above the target that
///   holds files in the range is merged into the next level, until no file
///   overlapping the range lies above the target. `target_level` defaults
///   to the deepest non-empty level (at least L1) and is clamped to the
///   last level; data already below the target stays there.
/// - Universal: one full merge of every sorted run into the last level
///   (universal runs span the whole key space, so `range` and
///   `target_level` are ignored). Done when at most one run is left and it
///   is on the last level.
/// - FIFO: nothing to do; always `Done`.
pub fn manual(
    version: &Version,
    opts: &KeyspaceOptions,
    busy: &HashSet<u64>,
    range: Option<(&[u8], &[u8])>,
    target_level: Option<usize>,
) -> ManualStep {
    if let Some((start, end)) = range {
        assert!(start <= end, "manual compaction range start after end");
    }
    let step = match opts.compaction_style {
        CompactionStyle::Leveled => leveled::manual(version, opts, busy, range, target_level),
        CompactionStyle::Universal => universal::manual(version, opts, busy),
        CompactionStyle::Fifo => ManualStep::Done,
    };
    if let ManualStep::Run(plan) = &step {
        check_plan(version, plan, busy);
    }
    step
}

/// Builds the version that results from running `plan` on `version` (the
/// current version, which may differ from the one the plan was picked
/// from by newly flushed L0 files). Removes the inputs and inserts
/// `outputs` at `plan.output_level`: in L0 at the place the inputs held
/// (newest first), in L1+ sorted by smallest key. Panics if an input is
/// missing or the result breaks a level invariant.
pub fn apply(version: &Version, plan: &CompactionPlan, outputs: Vec<FileMeta>) -> Version {
    assert!(
        plan.output_level < version.levels.len(),
        "plan output level beyond the version's levels"
    );
    assert!(!plan.delete_only || outputs.is_empty(), "delete-only plan with outputs");
    let mut next = version.clone();
    let mut l0_insert_at: Option<usize> = None;
    for input in &plan.inputs {
        assert!(
            input.level < next.levels.len(),
            "plan input level beyond the version's levels"
        );
        let doomed: HashSet<u64> = input.files.iter().map(|f| f.number).collect();
        assert_eq!(doomed.len(), input.files.len(), "plan lists an input twice");
        let level = &mut next.levels[input.level];
        if input.level == 0 {
            let first = level.iter().position(|f| doomed.contains(&f.number));
            l0_insert_at = first;
        }
        let before = level.len();
        level.retain(|f| !doomed.contains(&f.number));
        assert_eq!(
            before - level.len(),
            doomed.len(),
            "plan input missing from L{} of the version",
            input.level
        );
    }
    let live: HashSet<u64> = next.files().map(|(_, f)| f.number).collect();
    for out in &outputs {
        assert!(
            !live.contains(&out.number),
            "output file {} is already live",
            out.number
        );
        assert!(
            cmp_bounds(out) != Ordering::Greater,
            "output file {} has smallest key after largest key",
            out.number
        );
    }
    let mut outputs: Vec<Rc<FileMeta>> = outputs.into_iter().map(Rc::new).collect();
    if plan.output_level == 0 {
        outputs.sort_by_key(|f| std::cmp::Reverse(f.largest_seq));
        let l0 = &mut next.levels[0];
        // Where the inputs were; without L0 inputs, the place the newest
        // output's age gives it.
        let at = l0_insert_at.unwrap_or_else(|| match outputs.first() {
            Some(o) => l0
                .iter()
                .position(|f| f.largest_seq < o.largest_seq)
                .unwrap_or(l0.len()),
            None => 0,
        });
        l0.splice(at..at, outputs);
    } else {
        let level = &mut next.levels[plan.output_level];
        level.extend(outputs);
        level.sort_by(|a, b| crate::key::cmp_internal(&a.smallest, &b.smallest));
    }
    next.check_invariants();
    next
}

fn cmp_bounds(f: &FileMeta) -> Ordering {
    crate::key::cmp_internal(&f.smallest, &f.largest)
}

/// Size statistics of one level.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelStat {
    pub level: usize,
    pub files: usize,
    pub bytes: u64,
    /// At least 1.0 means the level wants compaction. Leveled: L0 file count over
    /// its trigger, Ln bytes over target. Universal: L0 carries sorted runs
    /// over the trigger. FIFO: L0 carries total bytes over the limit.
    pub score: f64,
    /// Leveled L1+: the level's byte target; 0 where no byte target applies.
    pub target_bytes: u64,
}

/// Per-level statistics, one entry per level of `version`.
pub fn stats(version: &Version, opts: &KeyspaceOptions) -> Vec<LevelStat> {
    let n = version.levels.len();
    (0..n)
        .map(|level| {
            let files = version.levels[level].len();
            let bytes = version.level_bytes(level);
            let (score, target_bytes) = match opts.compaction_style {
                CompactionStyle::Leveled => {
                    if level == 0 {
                        (l0_score(version, opts), 0)
                    } else {
                        let t = level_target_bytes(opts, level);
                        (bytes as f64 / t as f64, t)
                    }
                }
                CompactionStyle::Universal => {
                    if level == 0 {
                        let runs = universal::sorted_runs(version, &HashSet::new()).len();
                        (runs as f64 / opts.level0_file_num_compaction_trigger.max(1) as f64, 0)
                    } else {
                        (0.0, 0)
                    }
                }
                CompactionStyle::Fifo => {
                    if level == 0 {
                        (
                            version.total_bytes() as f64 / opts.fifo_max_table_files_size.max(1) as f64,
                            0,
                        )
                    } else {
                        (0.0, 0)
                    }
                }
            };
            LevelStat {
                level,
                files,
                bytes,
                score,
                target_bytes,
            }
        })
        .collect()
}

/// Estimated bytes compaction must still rewrite to bring every level back
/// under its target (RocksDB's `EstimateCompactionBytesNeeded`): L0's
/// bytes plus L1's once L0 is over its trigger; for each deeper level over
/// target, the excess (including what flows down from above) times the
/// next level's fan-out plus one. Universal: every byte in the runs once
/// the run count reaches the trigger. FIFO: 0 (deletion rewrites nothing).
pub fn pending_compaction_bytes(version: &Version, opts: &KeyspaceOptions) -> u64 {
    match opts.compaction_style {
        CompactionStyle::Leveled => leveled_pending_bytes(version, opts),
        CompactionStyle::Universal => {
            let runs = universal::sorted_runs(version, &HashSet::new());
            if runs.len() >= opts.level0_file_num_compaction_trigger.max(2) {
                runs.iter().map(|r| r.bytes).sum()
            } else {
                0
            }
        }
        CompactionStyle::Fifo => 0,
    }
}

fn leveled_pending_bytes(version: &Version, opts: &KeyspaceOptions) -> u64 {
    let n = version.levels.len();
    let l0_bytes = version.level_bytes(0);
    let mut estimate: u64 = 0;
    let mut to_next: u64 = 0;
    let l0_triggered = version.levels[0].len() >= opts.level0_file_num_compaction_trigger.max(1)
        || l0_bytes >= opts.max_bytes_for_level_base;
    if l0_triggered {
        estimate = l0_bytes;
        to_next = l0_bytes;
    }
    let mut next_level_bytes: u64 = 0;
    for level in 1..n.saturating_sub(1) {
        let mut level_bytes = if next_level_bytes > 0 {
            next_level_bytes
        } else {
            version.level_bytes(level)
        };
        next_level_bytes = 0;
        if level == 1 && l0_triggered {
            estimate = estimate.saturating_add(level_bytes);
        }
        level_bytes = level_bytes.saturating_add(to_next);
        to_next = 0;
        let target = level_target_bytes(opts, level);
        if level_bytes > target {
            to_next = level_bytes - target;
            next_level_bytes = version.level_bytes(level + 1);
            if next_level_bytes > 0 {
                // excess * (next / level + 1), in integers.
                let add = u128::from(to_next) * (u128::from(next_level_bytes) + u128::from(level_bytes))
                    / u128::from(level_bytes);
                estimate = estimate.saturating_add(u64::try_from(add).unwrap_or(u64::MAX));
            }
        }
    }
    estimate
}

/// Leveled: the byte target of `level` (>= 1): L1 is
/// `max_bytes_for_level_base`, each deeper level `level_size_multiplier`
/// times the one above (saturating).
pub fn level_target_bytes(opts: &KeyspaceOptions, level: usize) -> u64 {
    assert!(level >= 1, "L0 has a file-count trigger, not a byte target");
    let mut t = opts.max_bytes_for_level_base.max(1);
    for _ in 1..level {
        t = t.saturating_mul(opts.level_size_multiplier.max(1));
    }
    t
}

fn l0_score(version: &Version, opts: &KeyspaceOptions) -> f64 {
    version.levels[0].len() as f64 / opts.level0_file_num_compaction_trigger.max(1) as f64
}

// ---------------------------------------------------------------------------
// Shared helpers.

/// Inclusive user-key range covered by `files`.
pub(crate) fn user_range<'a>(files: impl Iterator<Item = &'a Rc<FileMeta>>) -> Option<(&'a [u8], &'a [u8])> {
    let mut range: Option<(&[u8], &[u8])> = None;
    for f in files {
        let (s, e) = (user_key(&f.smallest), user_key(&f.largest));
        range = Some(match range {
            None => (s, e),
            Some((rs, re)) => (rs.min(s), re.max(e)),
        });
    }
    range
}

/// Index range `[lo, hi)` of the files on a sorted level (L1+) whose user
/// keys intersect `[start, end]`.
pub(crate) fn overlapping_sorted(files: &[Rc<FileMeta>], start: &[u8], end: &[u8]) -> (usize, usize) {
    let lo = files.partition_point(|f| user_key(&f.largest) < start);
    let mut hi = lo;
    while hi < files.len() && user_key(&files[hi].smallest) <= end {
        hi += 1;
    }
    (lo, hi)
}

/// Expands `[lo, hi)` on a sorted level until no user key is split between
/// the chosen files and their neighbours (adjacent files may share a
/// boundary user key, with different sequence numbers).
pub(crate) fn clean_cut(files: &[Rc<FileMeta>], mut lo: usize, mut hi: usize) -> (usize, usize) {
    assert!(lo < hi && hi <= files.len());
    while lo > 0 && user_key(&files[lo - 1].largest) >= user_key(&files[lo].smallest) {
        lo -= 1;
    }
    while hi < files.len() && user_key(&files[hi - 1].largest) >= user_key(&files[hi].smallest) {
        hi += 1;
    }
    (lo, hi)
}

/// Whether no file outside the plan's inputs holds data older than the
/// output in the inputs' user-key range: nothing overlapping on deeper
/// levels and, for an L0 output, no overlapping L0 file behind the inputs.
pub(crate) fn is_bottommost(version: &Version, inputs: &[CompactionInput], output_level: usize) -> bool {
    let Some((start, end)) = user_range(inputs.iter().flat_map(|i| i.files.iter())) else {
        return true;
    };
    let input_numbers: HashSet<u64> = inputs.iter().flat_map(|i| i.files.iter().map(|f| f.number)).collect();
    if output_level == 0 {
        let l0 = &version.levels[0];
        if let Some(first) = l0.iter().position(|f| input_numbers.contains(&f.number)) {
            let older_overlaps = l0[first..]
                .iter()
                .any(|f| !input_numbers.contains(&f.number) && f.overlaps_user_range(start, end));
            if older_overlaps {
                return false;
            }
        }
    }
    version.levels[output_level + 1..]
        .iter()
        .flatten()
        .all(|f| input_numbers.contains(&f.number) || !f.overlaps_user_range(start, end))
}

/// Panics if a freshly built plan breaks a planner promise.
fn check_plan(version: &Version, plan: &CompactionPlan, busy: &HashSet<u64>) {
    assert!(!plan.inputs.is_empty(), "plan without inputs");
    assert!(
        plan.output_level < version.levels.len(),
        "plan output level out of range"
    );
    for w in plan.inputs.windows(2) {
        assert!(w[0].level < w[1].level, "plan inputs not by ascending level");
    }
    for input in &plan.inputs {
        assert!(!input.files.is_empty(), "plan input level without files");
        assert!(input.level <= plan.output_level, "plan moves data up");
        for f in &input.files {
            assert!(!busy.contains(&f.number), "plan takes busy file {}", f.number);
            assert!(
                version.levels[input.level].iter().any(|g| g.number == f.number),
                "plan input {} not on L{}",
                f.number,
                input.level
            );
        }
    }
    if plan.output_level >= 1 && !plan.delete_only {
        // Inputs on the output level must be a clean cut of it.
        let level = &version.levels[plan.output_level];
        let chosen: HashSet<u64> = plan
            .inputs
            .iter()
            .filter(|i| i.level == plan.output_level)
            .flat_map(|i| i.files.iter().map(|f| f.number))
            .collect();
        if let Some((start, end)) = plan.user_key_range() {
            for f in level {
                if chosen.contains(&f.number) || !f.overlaps_user_range(start, end) {
                    continue;
                }
                // Left in a gap between the inputs: fenced, overlapping none.
                assert!(
                    plan.fences.iter().any(|k| k.as_slice() == user_key(&f.smallest)),
                    "plan output range overlaps L{} file {} that is neither an input nor fenced",
                    plan.output_level,
                    f.number
                );
                for g in plan.inputs.iter().flat_map(|i| i.files.iter()) {
                    assert!(
                        !g.overlaps_user_range(user_key(&f.smallest), user_key(&f.largest)),
                        "fenced L{} file {} overlaps input {}",
                        plan.output_level,
                        f.number,
                        g.number
                    );
                }
            }
        }
    }
}
