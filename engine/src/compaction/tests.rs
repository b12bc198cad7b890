//! Planner tests: synthetic versions, no I/O.

use super::*;
use crate::key::{make_internal_key, ValueKind};
use crate::storage::mem::SplitMix64;
use std::collections::{BTreeMap, HashMap};

fn key(k: u32) -> Vec<u8> {
    format!("k{k:06}").into_bytes()
}

/// A file spanning user keys `lo..=hi` with sequence numbers `sseq..=lseq`.
fn fm(number: u64, size: u64, lo: u32, hi: u32, sseq: u64, lseq: u64) -> FileMeta {
    assert!(lo <= hi && sseq <= lseq);
    FileMeta {
        number,
        size,
        smallest: make_internal_key(&key(lo), lseq, ValueKind::Put),
        largest: make_internal_key(&key(hi), sseq, ValueKind::Put),
        smallest_seq: sseq,
        largest_seq: lseq,
        entries: 1,
        point_tombstones: 0,
        range_tombstones: 0,
    }
}

/// A version from `(level, file)` pairs; L0 is sorted newest first, L1+ by key.
fn ver(num_levels: usize, files: Vec<(usize, FileMeta)>) -> Version {
    let mut v = Version::new(num_levels);
    for (level, f) in files {
        v.levels[level].push(Rc::new(f));
    }
    v.levels[0].sort_by_key(|f| std::cmp::Reverse(f.largest_seq));
    for level in v.levels.iter_mut().skip(1) {
        level.sort_by(|a, b| crate::key::cmp_internal(&a.smallest, &b.smallest));
    }
    v.check_invariants();
    v
}

fn leveled() -> KeyspaceOptions {
    KeyspaceOptions {
        compaction_style: CompactionStyle::Leveled,
        level0_file_num_compaction_trigger: 4,
        max_bytes_for_level_base: 1000,
        level_size_multiplier: 10,
        num_levels: 4,
        target_file_size: 100,
        ..KeyspaceOptions::default()
    }
}

fn universal() -> KeyspaceOptions {
    KeyspaceOptions {
        compaction_style: CompactionStyle::Universal,
        level0_file_num_compaction_trigger: 4,
        num_levels: 4,
        universal_size_ratio_percent: 1,
        universal_max_merge_width: usize::MAX,
        universal_max_size_amplification_percent: 200,
        ..KeyspaceOptions::default()
    }
}

fn fifo() -> KeyspaceOptions {
    KeyspaceOptions {
        compaction_style: CompactionStyle::Fifo,
        num_levels: 1,
        fifo_max_table_files_size: 1000,
        ..KeyspaceOptions::default()
    }
}

fn numbers(input: &CompactionInput) -> Vec<u64> {
    input.files.iter().map(|f| f.number).collect()
}

fn none() -> HashSet<u64> {
    HashSet::new()
}

fn busy(ns: &[u64]) -> HashSet<u64> {
    ns.iter().copied().collect()
}

/// A merged output of `plan`'s inputs, as one file.
fn merged(plan: &CompactionPlan, number: u64) -> FileMeta {
    let files: Vec<&Rc<FileMeta>> = plan.inputs.iter().flat_map(|i| i.files.iter()).collect();
    let smallest = files
        .iter()
        .map(|f| &f.smallest)
        .min_by(|a, b| crate::key::cmp_internal(a, b))
        .unwrap();
    let largest = files
        .iter()
        .map(|f| &f.largest)
        .max_by(|a, b| crate::key::cmp_internal(a, b))
        .unwrap();
    FileMeta {
        number,
        size: files.iter().map(|f| f.size).sum(),
        smallest: smallest.clone(),
        largest: largest.clone(),
        smallest_seq: files.iter().map(|f| f.smallest_seq).min().unwrap(),
        largest_seq: files.iter().map(|f| f.largest_seq).max().unwrap(),
        entries: 1,
        point_tombstones: 0,
        range_tombstones: 0,
    }
}

// ---------------------------------------------------------------------------
// Leveled.

#[test]
fn leveled_l0_trigger_threshold() {
    let opts = leveled();
    let mut files: Vec<(usize, FileMeta)> = (0..3).map(|i| (0, fm(10 + i, 10, 0, 50, i * 10, i * 10 + 9))).collect();
    files.push((1, fm(1, 10, 20, 30, 0, 0)));
    files.push((1, fm(2, 10, 60, 70, 0, 0)));
    let v = ver(4, files.clone());
    assert_eq!(pick(&v, &opts, &none()), None, "3 L0 files are under the trigger of 4");

    files.push((0, fm(13, 10, 40, 55, 40, 49)));
    let v = ver(4, files);
    let plan = pick(&v, &opts, &none()).expect("4 L0 files reach the trigger");
    assert_eq!(plan.reason, CompactionReason::L0FileCount);
    assert_eq!(plan.output_level, 1);
    assert_eq!(plan.inputs.len(), 2);
    assert_eq!(
        numbers(&plan.inputs[0]),
        vec![13, 12, 11, 10],
        "all of L0, newest first"
    );
    assert_eq!(numbers(&plan.inputs[1]), vec![1], "only the overlapping L1 file");
    assert!(plan.bottommost);
    assert_eq!(plan.target_file_size, 100);
}

/// An L0 file that overlaps nothing in L0 or L1 moves down alone (the
/// oldest such first), as a trivial move; once none is left, every L0
/// file merges with the L1 files overlapping one of them, and an L1 file
/// lying in a gap between them stays, fenced.
#[test]
fn leveled_l0_moves_a_lone_file_and_fences_gaps() {
    let opts = leveled();
    let l1 = vec![(1, fm(1, 10, 20, 30, 0, 0)), (1, fm(2, 10, 60, 70, 0, 0))];
    let mut files = l1.clone();
    // Three files sharing key 90 (a list's metadata, say) and two lone
    // ranges below L1's (a list's new elements).
    files.push((0, fm(10, 10, 0, 5, 1, 9)));
    files.push((0, fm(11, 10, 90, 90, 10, 19)));
    files.push((0, fm(12, 10, 6, 9, 20, 29)));
    files.push((0, fm(13, 10, 90, 90, 30, 39)));
    files.push((0, fm(14, 10, 90, 90, 40, 49)));
    let v = ver(4, files);
    let plan = pick(&v, &opts, &none()).expect("5 L0 files");
    assert_eq!(plan.inputs.len(), 1);
    assert_eq!(numbers(&plan.inputs[0]), vec![10], "the oldest lone file");
    assert!(plan.is_trivial_move());
    let v = apply(&v, &plan, Vec::new());
    let plan = pick(&v, &opts, &none()).expect("4 L0 files");
    assert_eq!(numbers(&plan.inputs[0]), vec![12], "the next lone file");
    assert!(plan.is_trivial_move());

    // Nothing lone: all of L0, only the L1 file one of them overlaps, and
    // the L1 file in the gap between the inputs fenced.
    let mut files = l1;
    files.push((0, fm(10, 10, 25, 40, 1, 9)));
    files.push((0, fm(11, 10, 90, 90, 10, 19)));
    files.push((0, fm(12, 10, 35, 45, 20, 29)));
    files.push((0, fm(13, 10, 90, 90, 30, 39)));
    let v = ver(4, files);
    let plan = pick(&v, &opts, &none()).expect("4 L0 files");
    assert_eq!(numbers(&plan.inputs[0]), vec![13, 12, 11, 10]);
    assert_eq!(numbers(&plan.inputs[1]), vec![1], "file 2 overlaps no input");
    assert_eq!(plan.fences, vec![key(60)]);
    assert!(!plan.is_trivial_move());
}

#[test]
fn leveled_l0_skipped_while_any_l0_file_busy() {
    let opts = leveled();
    let files: Vec<(usize, FileMeta)> = (0..5).map(|i| (0, fm(10 + i, 10, 0, 50, i * 10, i * 10 + 9))).collect();
    let v = ver(4, files);
    assert!(pick(&v, &opts, &none()).is_some());
    assert_eq!(pick(&v, &opts, &busy(&[10])), None);
}

#[test]
fn leveled_l0_skipped_when_overlapping_l1_file_busy() {
    let opts = leveled();
    let mut files: Vec<(usize, FileMeta)> = (0..4)
        .map(|i| (0, fm(10 + i, 10, 0, 50, i * 10 + 100, i * 10 + 109)))
        .collect();
    files.push((1, fm(1, 10, 20, 30, 0, 5)));
    let v = ver(4, files.clone());
    assert_eq!(pick(&v, &opts, &busy(&[1])), None);
    // An unrelated busy L1 file does not block it.
    files.push((1, fm(2, 10, 60, 70, 0, 5)));
    let v = ver(4, files);
    let plan = pick(&v, &opts, &busy(&[2])).unwrap();
    assert_eq!(numbers(&plan.inputs[1]), vec![1]);
}

#[test]
fn leveled_level_size_picks_least_overlap_and_skips_busy() {
    let opts = leveled();
    // L1 target is 1000 bytes; 3 x 400 = 1200 is over.
    let files = vec![
        (1, fm(1, 400, 0, 9, 0, 9)),
        (1, fm(2, 400, 10, 19, 0, 9)),
        (1, fm(3, 400, 20, 29, 0, 9)),
        (2, fm(4, 500, 0, 9, 0, 0)),
        (2, fm(5, 10, 10, 19, 0, 0)),
        (2, fm(6, 900, 20, 29, 0, 0)),
    ];
    let v = ver(4, files);
    let plan = pick(&v, &opts, &none()).unwrap();
    assert_eq!(plan.reason, CompactionReason::LevelSize { level: 1 });
    assert_eq!(plan.output_level, 2);
    assert_eq!(numbers(&plan.inputs[0]), vec![2], "least overlap with L2");
    assert_eq!(numbers(&plan.inputs[1]), vec![5]);
    assert!(plan.bottommost);

    let plan = pick(&v, &opts, &busy(&[2])).unwrap();
    assert_eq!(numbers(&plan.inputs[0]), vec![1], "next best when the best is busy");
    let plan = pick(&v, &opts, &busy(&[5])).unwrap();
    assert_eq!(numbers(&plan.inputs[0]), vec![1], "its L2 overlap is busy");
    assert_eq!(pick(&v, &opts, &busy(&[1, 2, 3])), None);
}

#[test]
fn leveled_boundary_user_key_expands_inputs() {
    let opts = leveled();
    // Files 2 and 3 share user key 19 (3 holds its older versions);
    // L2 files 6 and 7 share user key 35, outside the L1 inputs' range.
    let files = vec![
        (1, fm(1, 400, 0, 9, 0, 9)),
        (1, fm(2, 400, 10, 19, 5, 9)),
        (1, fm(3, 400, 19, 29, 0, 4)),
        (2, fm(4, 500, 0, 9, 0, 0)),
        (2, fm(5, 10, 12, 15, 1, 1)),
        (2, fm(6, 10, 25, 35, 1, 1)),
        (2, fm(7, 500, 35, 40, 0, 0)),
        (2, fm(8, 500, 50, 60, 0, 0)),
    ];
    let v = ver(4, files);
    let plan = pick(&v, &opts, &none()).unwrap();
    assert_eq!(numbers(&plan.inputs[0]), vec![2, 3], "user key 19 must not be split");
    assert_eq!(numbers(&plan.inputs[1]), vec![5, 6, 7], "user key 35 must not be split");
    // If the neighbour sharing the key is busy, the candidate is passed over.
    let plan = pick(&v, &opts, &busy(&[3])).unwrap();
    assert_eq!(numbers(&plan.inputs[0]), vec![1]);
}

#[test]
fn leveled_last_level_is_never_a_source() {
    let opts = leveled();
    let files = vec![(3, fm(1, u64::MAX / 4, 0, 9, 0, 9))];
    let v = ver(4, files);
    assert_eq!(pick(&v, &opts, &none()), None);
    assert_eq!(pick(&Version::new(1), &opts, &none()), None);
}

#[test]
fn leveled_highest_score_wins() {
    let opts = leveled();
    let mut files: Vec<(usize, FileMeta)> = (0..4)
        .map(|i| (0, fm(10 + i, 10, 0, 5, i * 10 + 100, i * 10 + 109)))
        .collect();
    // L1 at 3x its target beats L0 at 1x.
    files.push((1, fm(1, 3000, 50, 60, 0, 9)));
    let v = ver(4, files);
    let plan = pick(&v, &opts, &none()).unwrap();
    assert_eq!(plan.reason, CompactionReason::LevelSize { level: 1 });
}

#[test]
fn leveled_bottommost_flag() {
    let opts = leveled();
    let files = vec![
        (1, fm(1, 2000, 0, 9, 10, 19)),
        (2, fm(2, 10, 0, 3, 5, 9)),
        (3, fm(3, 10, 8, 12, 0, 4)),
    ];
    let v = ver(4, files);
    let plan = pick(&v, &opts, &none()).unwrap();
    assert_eq!(plan.output_level, 2);
    assert!(!plan.bottommost, "L3 file 3 holds older data in range");

    let files = vec![
        (1, fm(1, 2000, 0, 9, 10, 19)),
        (2, fm(2, 10, 0, 3, 5, 9)),
        (3, fm(3, 10, 10, 12, 0, 4)),
    ];
    let v = ver(4, files);
    let plan = pick(&v, &opts, &none()).unwrap();
    assert!(plan.bottommost, "L3 file 3 lies outside the range");
}

#[test]
fn apply_leveled_l0_to_l1() {
    let opts = leveled();
    let files = vec![
        (0, fm(10, 10, 0, 50, 10, 19)),
        (0, fm(11, 10, 0, 50, 20, 29)),
        (0, fm(12, 10, 0, 50, 30, 39)),
        (0, fm(13, 10, 0, 50, 40, 49)),
        (1, fm(1, 10, 20, 30, 0, 5)),
        (1, fm(2, 10, 60, 70, 0, 5)),
    ];
    let v = ver(4, files);
    let plan = pick(&v, &opts, &none()).unwrap();
    // A flush lands while the compaction runs.
    let mut current = v.clone();
    current.levels[0].insert(0, Rc::new(fm(14, 10, 0, 50, 50, 59)));
    let outputs = vec![fm(20, 10, 0, 25, 0, 49), fm(21, 10, 26, 50, 0, 49)];
    let next = apply(&current, &plan, outputs);
    assert_eq!(next.levels[0].iter().map(|f| f.number).collect::<Vec<_>>(), vec![14]);
    assert_eq!(
        next.levels[1].iter().map(|f| f.number).collect::<Vec<_>>(),
        vec![20, 21, 2]
    );
}

#[test]
#[should_panic(expected = "missing")]
fn apply_panics_on_missing_input() {
    let opts = leveled();
    let files: Vec<(usize, FileMeta)> = (0..4).map(|i| (0, fm(10 + i, 10, 0, 50, i * 10, i * 10 + 9))).collect();
    let v = ver(4, files);
    let plan = pick(&v, &opts, &none()).unwrap();
    let next = apply(&v, &plan, vec![merged(&plan, 30)]);
    apply(&next, &plan, vec![merged(&plan, 31)]);
}

#[test]
#[should_panic(expected = "overlap")]
fn apply_panics_on_overlapping_outputs() {
    let opts = leveled();
    let files: Vec<(usize, FileMeta)> = (0..4).map(|i| (0, fm(10 + i, 10, 0, 50, i * 10, i * 10 + 9))).collect();
    let v = ver(4, files);
    let plan = pick(&v, &opts, &none()).unwrap();
    apply(&v, &plan, vec![fm(20, 10, 0, 30, 0, 39), fm(21, 10, 30, 50, 0, 39)]);
}

#[test]
fn stats_and_pending_bytes() {
    let opts = leveled();
    let files = vec![
        (0, fm(10, 100, 0, 50, 10, 19)),
        (1, fm(1, 1500, 0, 9, 0, 9)),
        (2, fm(2, 5000, 0, 9, 0, 0)),
    ];
    let v = ver(4, files);
    let s = stats(&v, &opts);
    assert_eq!(s.len(), 4);
    assert_eq!((s[0].files, s[0].bytes, s[0].target_bytes), (1, 100, 0));
    assert!((s[0].score - 0.25).abs() < 1e-9);
    assert_eq!(s[1].target_bytes, 1000);
    assert!((s[1].score - 1.5).abs() < 1e-9);
    assert_eq!(s[2].target_bytes, 10_000);
    assert_eq!(s[3].target_bytes, 100_000);
    // L1 is 500 over; L2/L1 fan-out 5000/1500: 500 * (5000 + 1500) / 1500 = 2166.
    assert_eq!(pending_compaction_bytes(&v, &opts), 2166);

    let mut files: Vec<(usize, FileMeta)> = (0..4)
        .map(|i| (0, fm(10 + i, 100, 0, 50, i * 10, i * 10 + 9)))
        .collect();
    files.push((1, fm(1, 200, 0, 9, 0, 9)));
    let v = ver(4, files);
    // L0 triggered: L0 (400) + L1 (200); L1 becomes 600, under target.
    assert_eq!(pending_compaction_bytes(&v, &opts), 600);
    assert_eq!(pending_compaction_bytes(&Version::new(4), &opts), 0);
}

// ---------------------------------------------------------------------------
// Universal.

#[test]
fn universal_needs_trigger_runs() {
    let opts = universal();
    let files: Vec<(usize, FileMeta)> = (0..3).map(|i| (0, fm(10 + i, 10, 0, 50, i * 10, i * 10 + 9))).collect();
    assert_eq!(pick(&ver(4, files), &opts, &none()), None);
}

#[test]
fn universal_size_amp_full_merge() {
    let opts = universal();
    let files = vec![
        (0, fm(10, 100, 0, 50, 30, 39)),
        (0, fm(11, 100, 0, 50, 20, 29)),
        (0, fm(12, 100, 0, 50, 10, 19)),
        (3, fm(1, 100, 0, 50, 0, 9)),
    ];
    let v = ver(4, files);
    let plan = pick(&v, &opts, &none()).unwrap();
    assert_eq!(plan.reason, CompactionReason::UniversalSizeAmp);
    assert_eq!(plan.output_level, 3);
    assert!(plan.bottommost);
    assert_eq!(plan.input_file_count(), 4);
    let next = apply(&v, &plan, vec![fm(20, 400, 0, 50, 0, 39)]);
    assert!(next.levels[0].is_empty());
    assert_eq!(next.levels[3].len(), 1);
}

#[test]
fn universal_size_ratio_merges_similar_newest_runs() {
    let opts = universal();
    // Oldest run is large: no size amp (300 < 200% of 10000).
    let files = vec![
        (0, fm(10, 100, 0, 50, 40, 49)),
        (0, fm(11, 100, 0, 50, 30, 39)),
        (0, fm(12, 100, 0, 50, 20, 29)),
        (0, fm(13, 5000, 0, 50, 10, 19)),
        (2, fm(1, 10000, 0, 50, 0, 9)),
    ];
    let v = ver(4, files);
    let plan = pick(&v, &opts, &none()).unwrap();
    assert_eq!(plan.reason, CompactionReason::UniversalSizeRatio);
    assert_eq!(numbers(&plan.inputs[0]), vec![10, 11, 12]);
    assert_eq!(plan.output_level, 0, "next older run is an L0 file");
    assert_eq!(plan.target_file_size, u64::MAX);
    assert!(!plan.bottommost);
    let next = apply(&v, &plan, vec![fm(20, 300, 0, 50, 20, 49)]);
    assert_eq!(
        next.levels[0].iter().map(|f| f.number).collect::<Vec<_>>(),
        vec![20, 13]
    );

    // Busy newest run: the window starts behind it.
    let plan = pick(&v, &opts, &busy(&[10])).unwrap();
    assert_eq!(numbers(&plan.inputs[0]), vec![11, 12]);
}

#[test]
fn universal_output_goes_above_next_level_run() {
    let opts = universal();
    let files = vec![
        (0, fm(10, 100, 0, 50, 40, 49)),
        (0, fm(11, 100, 0, 50, 30, 39)),
        (1, fm(1, 100, 0, 50, 20, 29)),
        (3, fm(2, 10000, 0, 50, 0, 9)),
    ];
    let v = ver(4, files);
    let plan = pick(&v, &opts, &none()).unwrap();
    assert_eq!(plan.reason, CompactionReason::UniversalSizeRatio);
    assert_eq!(plan.inputs.len(), 2);
    assert_eq!(plan.output_level, 2, "just above the L3 run");
    let next = apply(&v, &plan, vec![fm(20, 300, 0, 50, 20, 49)]);
    assert!(next.levels[0].is_empty() && next.levels[1].is_empty());
    assert_eq!(next.levels[2].len(), 1);
}

#[test]
fn universal_run_count_reduction() {
    let opts = KeyspaceOptions {
        universal_max_size_amplification_percent: 1_000_000,
        ..universal()
    };
    // Sizes grow 10x per run: no size-ratio window forms.
    let files = vec![
        (0, fm(10, 1, 0, 50, 50, 59)),
        (0, fm(11, 10, 0, 50, 40, 49)),
        (0, fm(12, 100, 0, 50, 30, 39)),
        (0, fm(13, 1000, 0, 50, 20, 29)),
        (0, fm(14, 10000, 0, 50, 10, 19)),
        (0, fm(15, 100000, 0, 50, 0, 9)),
    ];
    let v = ver(4, files);
    let plan = pick(&v, &opts, &none()).unwrap();
    assert_eq!(plan.reason, CompactionReason::UniversalRunCount);
    assert_eq!(numbers(&plan.inputs[0]), vec![10, 11, 12], "6 runs - trigger 4 + 1");
    let plan = pick(&v, &opts, &busy(&[11])).unwrap();
    assert_eq!(numbers(&plan.inputs[0]), vec![12, 13, 14]);
    // Exactly trigger runs: nothing.
    let files = vec![
        (0, fm(10, 1, 0, 50, 50, 59)),
        (0, fm(11, 10, 0, 50, 40, 49)),
        (0, fm(12, 100, 0, 50, 30, 39)),
        (0, fm(13, 1000, 0, 50, 20, 29)),
    ];
    assert_eq!(pick(&ver(4, files), &opts, &none()), None);
}

#[test]
fn universal_manual_full_merge() {
    let opts = universal();
    let files = vec![(0, fm(10, 100, 0, 50, 40, 49)), (2, fm(1, 100, 0, 50, 20, 29))];
    let v = ver(4, files);
    let ManualStep::Run(plan) = manual(&v, &opts, &none(), None, None) else {
        panic!("expected a plan")
    };
    assert_eq!(plan.output_level, 3);
    assert_eq!(plan.reason, CompactionReason::Manual);
    assert_eq!(manual(&v, &opts, &busy(&[1]), None, None), ManualStep::Wait);
    let next = apply(&v, &plan, vec![merged(&plan, 20)]);
    assert_eq!(manual(&next, &opts, &none(), None, None), ManualStep::Done);
    assert_eq!(manual(&Version::new(4), &opts, &none(), None, None), ManualStep::Done);
}

// ---------------------------------------------------------------------------
// FIFO.

#[test]
fn fifo_deletes_oldest_until_under_limit() {
    let opts = fifo();
    let files: Vec<(usize, FileMeta)> = (0..5)
        .map(|i| (0, fm(10 + i, 300, 0, 50, i * 10, i * 10 + 9)))
        .collect();
    let v = ver(1, files);
    let plan = pick(&v, &opts, &none()).unwrap();
    assert!(plan.delete_only);
    assert_eq!(plan.reason, CompactionReason::FifoSize);
    assert_eq!(numbers(&plan.inputs[0]), vec![11, 10], "1500 - 600 <= 1000");
    let next = apply(&v, &plan, Vec::new());
    assert_eq!(
        next.levels[0].iter().map(|f| f.number).collect::<Vec<_>>(),
        vec![14, 13, 12]
    );
    assert_eq!(pick(&next, &opts, &none()), None);
    assert_eq!(pick(&v, &opts, &busy(&[12])), None);
    assert_eq!(manual(&v, &opts, &none(), None, None), ManualStep::Done);
}

// ---------------------------------------------------------------------------
// Manual, leveled.

#[test]
fn leveled_manual_pushes_everything_down() {
    let opts = leveled();
    let files = vec![
        (0, fm(10, 10, 0, 20, 40, 49)),
        (0, fm(11, 10, 30, 40, 30, 39)),
        (1, fm(1, 10, 0, 9, 20, 29)),
        (2, fm(2, 10, 5, 15, 10, 19)),
        (3, fm(3, 10, 100, 110, 0, 9)),
    ];
    let mut v = ver(4, files);
    let mut next_number = 100;
    let mut steps = 0;
    loop {
        match manual(&v, &opts, &none(), None, None) {
            ManualStep::Run(plan) => {
                assert_eq!(plan.reason, CompactionReason::Manual);
                v = apply(&v, &plan, vec![merged(&plan, next_number)]);
                next_number += 1;
                steps += 1;
            }
            ManualStep::Wait => panic!("nothing is busy"),
            ManualStep::Done => break,
        }
        assert!(steps < 10);
    }
    assert_eq!(steps, 3);
    assert!(v.levels[..3].iter().all(Vec::is_empty));
    assert_eq!(v.levels[3].len(), 2);
}

#[test]
fn leveled_manual_range_and_target() {
    let opts = leveled();
    let files = vec![
        (0, fm(10, 10, 0, 20, 40, 49)),
        (0, fm(11, 10, 30, 40, 30, 39)),
        (1, fm(1, 10, 50, 60, 20, 29)),
        (2, fm(2, 10, 5, 15, 10, 19)),
    ];
    let v = ver(4, files);
    let ManualStep::Run(plan) = manual(&v, &opts, &none(), Some((&key(35), &key(36))), Some(1)) else {
        panic!("expected a plan")
    };
    assert_eq!(plan.inputs.len(), 1);
    assert_eq!(numbers(&plan.inputs[0]), vec![11], "only the L0 file in range");
    assert_eq!(plan.output_level, 1);
    let v2 = apply(&v, &plan, vec![merged(&plan, 20)]);
    assert_eq!(
        manual(&v2, &opts, &none(), Some((&key(35), &key(36))), Some(1)),
        ManualStep::Done
    );
    // Overlapping L0 files are taken together.
    let ManualStep::Run(plan) = manual(&v, &opts, &none(), Some((&key(0), &key(1))), Some(1)) else {
        panic!("expected a plan")
    };
    assert_eq!(numbers(&plan.inputs[0]), vec![10]);
    assert_eq!(
        manual(&v, &opts, &busy(&[11]), Some((&key(0), &key(1))), Some(1)),
        ManualStep::Wait
    );
}

// ---------------------------------------------------------------------------
// Randomised: pick/manual/apply with concurrent compactions and flushes.

struct Sim {
    opts: KeyspaceOptions,
    version: Version,
    /// Newest sequence number per user key, per file.
    contents: HashMap<u64, BTreeMap<u32, u64>>,
    newest: BTreeMap<u32, u64>,
    running: Vec<CompactionPlan>,
    next_file: u64,
    next_seq: u64,
    rng: SplitMix64,
    plans_run: usize,
}

impl Sim {
    fn new(opts: KeyspaceOptions, seed: u64) -> Self {
        Sim {
            version: Version::new(opts.num_levels),
            opts,
            contents: HashMap::new(),
            newest: BTreeMap::new(),
            running: Vec::new(),
            next_file: 1,
            next_seq: 1,
            rng: SplitMix64::new(seed),
            plans_run: 0,
        }
    }

    fn rand(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n
    }

    fn meta(&mut self, data: BTreeMap<u32, u64>) -> FileMeta {
        let number = self.next_file;
        self.next_file += 1;
        let (&lo, &lo_seq) = data.first_key_value().unwrap();
        let (&hi, &hi_seq) = data.last_key_value().unwrap();
        let f = FileMeta {
            number,
            size: data.len() as u64 * 100,
            smallest: make_internal_key(&key(lo), lo_seq, ValueKind::Put),
            largest: make_internal_key(&key(hi), hi_seq, ValueKind::Put),
            smallest_seq: *data.values().min().unwrap(),
            largest_seq: *data.values().max().unwrap(),
            entries: data.len() as u64,
            point_tombstones: 0,
            range_tombstones: 0,
        };
        self.contents.insert(number, data);
        f
    }

    fn flush(&mut self) {
        let lo = self.rand(1000) as u32;
        let len = 1 + self.rand(200) as u32;
        let n = 1 + self.rand(20);
        let mut data = BTreeMap::new();
        for _ in 0..n {
            let k = lo + self.rand(u64::from(len)) as u32;
            data.insert(k, 0);
        }
        for (k, seq) in data.iter_mut() {
            *seq = self.next_seq;
            self.newest.insert(*k, self.next_seq);
            self.next_seq += 1;
        }
        let f = self.meta(data);
        self.version.levels[0].insert(0, Rc::new(f));
        self.version.check_invariants();
    }

    fn busy(&self) -> HashSet<u64> {
        self.running.iter().flat_map(|p| p.input_numbers()).collect()
    }

    fn start(&mut self) {
        let busy = self.busy();
        let plan = if self.rand(5) == 0 {
            let a = self.rand(1200) as u32;
            let b = a + self.rand(300) as u32;
            let (ka, kb) = (key(a), key(b));
            let whole = self.rand(3) == 0;
            let range = if whole { None } else { Some((&ka[..], &kb[..])) };
            let target = match self.rand(3) {
                0 => Some(self.rand(self.opts.num_levels as u64) as usize),
                _ => None,
            };
            match manual(&self.version, &self.opts, &busy, range, target) {
                ManualStep::Run(p) => Some(p),
                ManualStep::Wait | ManualStep::Done => None,
            }
        } else {
            pick(&self.version, &self.opts, &busy)
        };
        if let Some(plan) = plan {
            if plan.bottommost {
                self.check_bottommost(&plan);
            }
            self.running.push(plan);
        }
    }

    /// No file outside the inputs holds an older version of a key the
    /// inputs hold.
    fn check_bottommost(&self, plan: &CompactionPlan) {
        let inputs: HashSet<u64> = plan.input_numbers().collect();
        let mut oldest_in_inputs: BTreeMap<u32, u64> = BTreeMap::new();
        for n in &inputs {
            for (&k, &s) in &self.contents[n] {
                let e = oldest_in_inputs.entry(k).or_insert(s);
                *e = (*e).min(s);
            }
        }
        for (_, f) in self.version.files() {
            if inputs.contains(&f.number) {
                continue;
            }
            for (k, s) in &self.contents[&f.number] {
                if let Some(&o) = oldest_in_inputs.get(k) {
                    assert!(
                        *s > o,
                        "bottommost plan, but file {} holds key {k} at older seq {s}",
                        f.number
                    );
                }
            }
        }
    }

    fn finish(&mut self) {
        if self.running.is_empty() {
            return;
        }
        let i = self.rand(self.running.len() as u64) as usize;
        let plan = self.running.swap_remove(i);
        let mut data: BTreeMap<u32, u64> = BTreeMap::new();
        for n in plan.input_numbers() {
            for (&k, &s) in &self.contents[&n] {
                let e = data.entry(k).or_insert(s);
                *e = (*e).max(s);
            }
        }
        let mut outputs = Vec::new();
        if !plan.delete_only {
            let keys: Vec<(u32, u64)> = data.into_iter().collect();
            let mut rest = &keys[..];
            while !rest.is_empty() {
                // An output never spans a fence.
                let fenced = plan
                    .fences
                    .iter()
                    .filter(|f| f.as_slice() > key(rest[0].0).as_slice())
                    .map(|f| rest.partition_point(|(k, _)| key(*k) < *f))
                    .min()
                    .unwrap_or(rest.len());
                let take = if plan.target_file_size == u64::MAX {
                    fenced
                } else {
                    1 + self.rand(fenced as u64) as usize
                };
                let (chunk, tail) = rest.split_at(take);
                outputs.push(self.meta(chunk.iter().copied().collect()));
                rest = tail;
            }
        }
        self.version = apply(&self.version, &plan, outputs);
        self.plans_run += 1;
    }

    /// Reading top-down, each key's versions get strictly older, and the
    /// first one found is the newest ever written (except under FIFO,
    /// which deletes data).
    fn verify(&self) {
        let mut seen: BTreeMap<u32, u64> = BTreeMap::new();
        for (_, f) in self.version.files() {
            for (k, &s) in &self.contents[&f.number] {
                match seen.get(k) {
                    Some(&prev) => assert!(s < prev, "key {k}: seq {s} in file {} below newer {prev}", f.number),
                    None => {
                        if self.opts.compaction_style != CompactionStyle::Fifo {
                            assert_eq!(s, self.newest[k], "key {k}: newest version lost or buried");
                        }
                    }
                }
                seen.insert(*k, s);
            }
        }
        if self.opts.compaction_style != CompactionStyle::Fifo {
            assert_eq!(seen.len(), self.newest.len(), "a key vanished");
        }
    }

    fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            match self.rand(10) {
                0..=2 => self.flush(),
                3..=6 => self.start(),
                _ => self.finish(),
            }
            self.verify();
        }
        while !self.running.is_empty() {
            self.finish();
            self.verify();
        }
    }
}

fn sim_opts(style: CompactionStyle) -> KeyspaceOptions {
    KeyspaceOptions {
        compaction_style: style,
        level0_file_num_compaction_trigger: 3,
        max_bytes_for_level_base: 4000,
        level_size_multiplier: 4,
        num_levels: if style == CompactionStyle::Fifo { 1 } else { 5 },
        target_file_size: 1000,
        universal_size_ratio_percent: 20,
        universal_max_merge_width: 6,
        universal_max_size_amplification_percent: 150,
        fifo_max_table_files_size: 20_000,
        ..KeyspaceOptions::default()
    }
}

#[test]
fn randomized_pick_apply_keeps_invariants_and_newest_data() {
    for style in [
        CompactionStyle::Leveled,
        CompactionStyle::Universal,
        CompactionStyle::Fifo,
    ] {
        let mut total_plans = 0;
        for seed in 0..60 {
            let mut sim = Sim::new(sim_opts(style), seed);
            sim.run(400);
            total_plans += sim.plans_run;
        }
        assert!(
            total_plans > 500,
            "{style:?}: only {total_plans} plans ran; the test is not exercising the planner"
        );
    }
}

#[test]
fn randomized_manual_reaches_done() {
    for style in [CompactionStyle::Leveled, CompactionStyle::Universal] {
        for seed in 0..20 {
            let mut sim = Sim::new(sim_opts(style), 1000 + seed);
            sim.run(200);
            let mut steps = 0;
            loop {
                match manual(&sim.version, &sim.opts, &HashSet::new(), None, None) {
                    ManualStep::Run(plan) => {
                        sim.running.push(plan);
                        sim.finish();
                        sim.verify();
                    }
                    ManualStep::Wait => panic!("nothing is running"),
                    ManualStep::Done => break,
                }
                steps += 1;
                assert!(steps < 50, "manual compaction does not converge");
            }
            let deepest = sim.version.deepest_nonempty_level().unwrap();
            assert!(sim.version.levels[..deepest].iter().all(Vec::is_empty));
        }
    }
}

#[test]
fn reason_display() {
    assert_eq!(CompactionReason::LevelSize { level: 3 }.to_string(), "L3 size");
    assert_eq!(CompactionReason::L0FileCount.to_string(), "L0 file count");
    assert_eq!(CompactionReason::Manual.to_string(), "manual");
}
