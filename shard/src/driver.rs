//! Runs an engine's background work on the current glommio executor:
//! flush and compaction in a low-priority task queue (so foreground
//! requests keep their latency), and, in `interval` sync mode, a timer
//! that fdatasyncs the WAL every `interval_ms`.

use crate::storage::DmaStorage;
use glommio::{Latency, Shares, TaskQueueHandle};
use lumadb_engine::db::Engine;
use lumadb_engine::SyncMode;
use std::time::Duration;

/// Shares of the background task queue against the default queue's 1000:
/// background work gets about a tenth of a busy core.
pub const BACKGROUND_SHARES: usize = 100;

/// Handles of the background tasks of one engine.
pub struct BackgroundTasks {
    tasks: Vec<glommio::task::JoinHandle<()>>,
}

impl BackgroundTasks {
    /// Waits for every background task to finish (they stop when the
    /// engine is closed or poisoned).
    pub async fn join(self) {
        for t in self.tasks {
            t.await;
        }
    }
}

/// Creates the low-priority task queue for background work.
pub fn background_queue() -> TaskQueueHandle {
    glommio::executor().create_task_queue(Shares::Static(BACKGROUND_SHARES), Latency::NotImportant, "lumadb-bg")
}

/// Spawns the flush loop, the compaction loop and (in interval mode) the
/// WAL sync timer for `engine` on `tq`.
pub fn spawn_background(engine: &Engine<DmaStorage>, tq: TaskQueueHandle) -> BackgroundTasks {
    let mut tasks = Vec::new();
    let e = engine.clone();
    tasks.push(spawn(tq, async move {
        while e.flush_work().await {
            if let Err(err) = e.flush_once().await {
                tracing::error!(error = %err, "flush failed");
            }
        }
    }));
    let e = engine.clone();
    tasks.push(spawn(tq, async move {
        while e.compaction_work().await {
            if let Err(err) = e.compact_once().await {
                tracing::error!(error = %err, "compaction failed");
            }
        }
    }));
    if let SyncMode::Interval { interval_ms } = engine.options().sync_mode {
        let e = engine.clone();
        tasks.push(spawn(tq, async move {
            while !e.is_closed() && e.poisoned().is_none() {
                glommio::timer::sleep(Duration::from_millis(interval_ms)).await;
                if e.is_closed() {
                    break;
                }
                if let Err(err) = e.sync_wal().await {
                    tracing::error!(error = %err, "WAL sync failed");
                }
            }
        }));
    }
    BackgroundTasks { tasks }
}

fn spawn(tq: TaskQueueHandle, f: impl std::future::Future<Output = ()> + 'static) -> glommio::task::JoinHandle<()> {
    match glommio::spawn_local_into(f, tq) {
        Ok(t) => t.detach(),
        Err(e) => panic!("cannot spawn into the background task queue: {e}"),
    }
}
