//! The stall detector: reports a task that holds its core too long.
//!
//! glommio arms a timer when a task queue starts running; if the queue is
//! still running `threshold` past its time slice, a signal captures the
//! stack and this reporter logs it (target `lumadb::stall`) and counts it,
//! so `/metrics` shows stalls and `error.log` shows where they happened.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use glommio::TaskQueueHandle;
use glommio::{StallDetection, StallDetectionHandler};

/// At most one stall report (with its stack) per this many milliseconds
/// per shard; the others are only counted.
pub const STALL_REPORT_INTERVAL_MS: u64 = 1000;

#[derive(Debug)]
pub struct StallReporter {
    shard: usize,
    threshold: Duration,
    count: Arc<AtomicU64>,
    last_report_ms: AtomicU64,
    started: std::time::Instant,
}

impl StallReporter {
    pub fn new(shard: usize, threshold: Duration, count: Arc<AtomicU64>) -> StallReporter {
        StallReporter {
            shard,
            threshold,
            count,
            last_report_ms: AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }
}

impl StallDetectionHandler for StallReporter {
    fn threshold(&self, _queue: TaskQueueHandle, _max_expected_runtime: Duration) -> Option<Duration> {
        Some(self.threshold)
    }

    fn stall(&self, detection: StallDetection<'_>) {
        let total = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let now_ms = self.started.elapsed().as_millis() as u64 + STALL_REPORT_INTERVAL_MS;
        let last = self.last_report_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= STALL_REPORT_INTERVAL_MS {
            self.last_report_ms.store(now_ms, Ordering::Relaxed);
            tracing::warn!(target: "lumadb::stall", shard = self.shard, stalls_total = total, "{detection}");
        }
    }
}
