//! What a run counts: latency histograms (all operations and per kind),
//! misses, wrong answers, timeouts and errors by kind. One `Stats` per
//! core, merged at the end.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::net::workload::{OpKind, OP_KINDS};

/// Latencies are recorded in nanoseconds up to this (an hour), 3
/// significant digits.
pub const LATENCY_NS_MAX: u64 = 3_600_000_000_000;
/// Wrong answers kept as examples for the report.
pub const WRONG_EXAMPLES_MAX: usize = 5;

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3).expect("valid histogram bounds")
}

/// The counts of one run (or one core's part of it).
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency of every answered operation.
    pub all: Histogram<u64>,
    /// Per `OpKind::index`.
    pub per_op: Vec<Histogram<u64>>,
    /// Reads of keys the server does not have (answered, not errors).
    pub misses: u64,
    /// Answers that `--verify` found wrong (counted apart from errors).
    pub wrong: u64,
    pub wrong_examples: Vec<String>,
    /// Operations with no answer within `--timeout`.
    pub timeouts: u64,
    /// Open loop: operations due in the measured window that were never
    /// sent because the server was still behind `--timeout` after the end.
    pub unsent: u64,
    /// Errors by kind: the server's (RESP error word, `http_503`,
    /// `sqlstate_...`), `connection`, `protocol`.
    pub errors: BTreeMap<String, u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            all: histogram(),
            per_op: OP_KINDS.iter().map(|_| histogram()).collect(),
            misses: 0,
            wrong: 0,
            wrong_examples: Vec::new(),
            timeouts: 0,
            unsent: 0,
            errors: BTreeMap::new(),
        }
    }
}

impl Stats {
    pub fn record(&mut self, op: OpKind, latency_ns: u64) {
        let v = latency_ns.clamp(1, LATENCY_NS_MAX);
        self.all.saturating_record(v);
        self.per_op[op.index()].saturating_record(v);
    }

    pub fn error(&mut self, kind: &str) {
        match self.errors.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                self.errors.insert(kind.to_string(), 1);
            }
        }
    }

    pub fn wrong_answer(&mut self, what: String) {
        self.wrong += 1;
        if self.wrong_examples.len() < WRONG_EXAMPLES_MAX {
            self.wrong_examples.push(what);
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn merge(&mut self, other: &Stats) {
        let _ = self.all.add(&other.all);
        for (a, b) in self.per_op.iter_mut().zip(&other.per_op) {
            let _ = a.add(b);
        }
        self.misses += other.misses;
        self.wrong += other.wrong;
        for w in &other.wrong_examples {
            if self.wrong_examples.len() < WRONG_EXAMPLES_MAX {
                self.wrong_examples.push(w.clone());
            }
        }
        self.timeouts += other.timeouts;
        self.unsent += other.unsent;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_insert(0) += v;
        }
    }
}
