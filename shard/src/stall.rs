//! The stall detector: reports a task that holds its core too long.
//!
//! glommio arms a timer when a task queue starts running; if the queue is
//! still running `threshold` past its time slice, a signal captures the
//! stack and this reporter logs it (target `lumadb::stall`) and counts it,
//! so `/metrics` shows stalls and `error.log` shows where they happened.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use glommio::TaskQueueHandle;
use glommio::{StallDetection, StallDetectionHandler};

/// At most one stall report (with its stack) per this many milliseconds
/// per shard; the others are only counted.
pub const STALL_REPORT_INTERVAL_MS: u64 = 1000;

/// Reports waiting for the symbolizing thread; more are only counted.
const PENDING_REPORTS_MAX: usize = 16;

/// A stall to log, with its stack not yet symbolized.
struct Report {
    shard: usize,
    queue: String,
    overage: Duration,
    budget: Duration,
    stalls_total: u64,
    trace: backtrace::Backtrace,
}

/// The thread that turns captured stacks into function names and logs
/// them. Symbolizing reads the binary's debug info (hundreds of
/// milliseconds the first time), so it never runs on an executor thread:
/// a report would otherwise become the longest stall of all.
#[derive(Debug, Clone)]
pub struct StallLog {
    tx: SyncSender<Report>,
}

impl StallLog {
    /// Starts the logging thread (target `lumadb::stall`); it ends when
    /// every [`StallReporter`] holding this log is gone.
    pub fn spawn() -> std::io::Result<StallLog> {
        Self::spawn_with(|shard, stalls_total, text| {
            tracing::warn!(target: "lumadb::stall", shard, stalls_total, "{text}");
        })
    }

    /// Starts a logging thread that hands each symbolized report to `sink`
    /// as (shard, stalls so far, text).
    pub fn spawn_with(sink: impl Fn(usize, u64, String) + Send + 'static) -> std::io::Result<StallLog> {
        let (tx, rx) = sync_channel::<Report>(PENDING_REPORTS_MAX);
        std::thread::Builder::new()
            .name("lumadb-stall-log".into())
            .spawn(move || {
                for mut r in rx {
                    r.trace.resolve();
                    let text = format!(
                        "task queue {} ran {:?} past its budget of {:?}. Backtrace: {:?}",
                        r.queue, r.overage, r.budget, r.trace
                    );
                    sink(r.shard, r.stalls_total, text);
                }
            })?;
        Ok(StallLog { tx })
    }
}

#[derive(Debug)]
pub struct StallReporter {
    shard: usize,
    threshold: Duration,
    count: Arc<AtomicU64>,
    last_report_ms: AtomicU64,
    started: std::time::Instant,
    log: StallLog,
    armed: Arc<AtomicBool>,
}

impl StallReporter {
    pub fn new(shard: usize, threshold: Duration, count: Arc<AtomicU64>, log: StallLog) -> StallReporter {
        StallReporter {
            shard,
            threshold,
            count,
            last_report_ms: AtomicU64::new(0),
            started: std::time::Instant::now(),
            log,
            armed: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Reports only while `armed` is set. A shard opening its engine
    /// (reading tables, replaying the WAL) serves nothing yet, so a long
    /// run of the core then is not a stall anyone waits on.
    pub fn armed_by(mut self, armed: Arc<AtomicBool>) -> StallReporter {
        self.armed = armed;
        self
    }
}

impl StallDetectionHandler for StallReporter {
    fn threshold(&self, _queue: TaskQueueHandle, _max_expected_runtime: Duration) -> Option<Duration> {
        self.armed.load(Ordering::Relaxed).then_some(self.threshold)
    }

    fn stall(&self, detection: StallDetection<'_>) {
        let total = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let now_ms = self.started.elapsed().as_millis() as u64 + STALL_REPORT_INTERVAL_MS;
        let last = self.last_report_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < STALL_REPORT_INTERVAL_MS {
            return;
        }
        self.last_report_ms.store(now_ms, Ordering::Relaxed);
        let report = Report {
            shard: self.shard,
            queue: detection.queue_name().to_owned(),
            overage: detection.overage(),
            budget: detection.budget(),
            stalls_total: total,
            trace: detection.trace().clone(),
        };
        match self.log.tx.try_send(report) {
            Ok(()) | Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => {
                tracing::warn!(target: "lumadb::stall", shard = self.shard, stalls_total = total, "stall (log thread gone)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::LocalExecutorBuilder;

    fn busy_loop(d: Duration) {
        let start = std::time::Instant::now();
        while start.elapsed() < d {
            std::hint::spin_loop();
        }
    }

    #[test]
    fn a_stall_is_counted_and_logged_with_its_stack_by_the_log_thread() {
        let (tx, rx) = std::sync::mpsc::channel();
        let log = StallLog::spawn_with(move |shard, total, text| {
            let _ = tx.send((shard, total, text, std::thread::current().name().map(str::to_owned)));
        })
        .unwrap();
        let count = Arc::new(AtomicU64::new(0));
        let reporter = StallReporter::new(3, Duration::from_millis(5), count.clone(), log);
        LocalExecutorBuilder::default()
            .preempt_timer(Duration::from_millis(10))
            .detect_stalls(Some(Box::new(reporter)))
            .spawn(|| async { busy_loop(Duration::from_millis(100)) })
            .unwrap()
            .join()
            .unwrap();
        assert!(count.load(Ordering::Relaxed) >= 1);
        let (shard, total, text, thread) = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        assert_eq!(shard, 3);
        assert!(total >= 1);
        assert_eq!(thread.as_deref(), Some("lumadb-stall-log"));
        assert!(text.contains("past its budget"), "{text}");
        assert!(
            text.contains("busy_loop"),
            "the stack names the stalling function: {text}"
        );
    }

    #[test]
    fn a_disarmed_reporter_reports_nothing_until_armed() {
        let log = StallLog::spawn_with(|_, _, _| {}).unwrap();
        let count = Arc::new(AtomicU64::new(0));
        let armed = Arc::new(AtomicBool::new(false));
        let reporter = StallReporter::new(0, Duration::from_millis(5), count.clone(), log).armed_by(armed.clone());
        let (c, a) = (count.clone(), armed.clone());
        LocalExecutorBuilder::default()
            .preempt_timer(Duration::from_millis(10))
            .detect_stalls(Some(Box::new(reporter)))
            .spawn(move || async move {
                busy_loop(Duration::from_millis(50));
                glommio::executor().yield_task_queue_now().await;
                assert_eq!(c.load(Ordering::Relaxed), 0, "no report while disarmed");
                a.store(true, Ordering::Relaxed);
                glommio::executor().yield_task_queue_now().await;
                busy_loop(Duration::from_millis(50));
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(count.load(Ordering::Relaxed) >= 1, "an armed reporter counts the stall");
    }
}
