//! Runs an engine's background work on the current glommio executor:
//! flush, compaction and the preparation of the next WAL segment in a
//! low-priority task queue (so foreground requests keep their latency;
//! its shares rise as writers near a stall), and, in the relaxed sync modes, two WAL
//! tasks in the caller's (foreground) queue: a timer (in `interval` mode
//! it writes and fdatasyncs the WAL every `interval_ms`, in `none` mode it
//! writes the WAL out every `WAL_WRITE_OUT_INTERVAL_MS`) and the
//! write-behind task, which writes the WAL buffer out whenever
//! `WAL_WRITE_BEHIND_BYTES` have gathered. Neither holds up a writer; they
//! run in the foreground queue because a WAL write waiting for the low
//! priority queue's turn would let the buffer fill up to its bound.

use crate::storage::DmaStorage;
use glommio::{Latency, Shares, SharesManager, TaskQueueHandle};
use lumadb_engine::db::{Engine, WAL_WRITE_OUT_INTERVAL_MS};
use lumadb_engine::SyncMode;
use std::rc::Rc;
use std::time::Duration;

/// Shares of the background task queue against the default queue's 1000
/// while writers are far from a stall: background work gets about a
/// tenth of a busy core.
pub const BACKGROUND_SHARES: usize = 100;

/// Shares of the background task queue when writers are about to stall
/// ([`Engine::write_pressure`] at 1): half of a busy core. At a fixed
/// tenth, a write-heavy load can fill memtables (or level 0) faster than
/// flushes (or compactions) drain them, and every writer then stops
/// until they catch up; rising shares slow writers a little, early.
pub const BACKGROUND_SHARES_MAX: usize = 1000;

/// The wait before preparing the next WAL segment again after a failure.
const WAL_PREPARE_RETRY: Duration = Duration::from_secs(1);

/// How often the background queue's shares follow the write pressure.
const BACKGROUND_SHARES_PERIOD_MS: u64 = 20;

/// The background queue's shares, from the engine's write pressure.
struct BackgroundShares {
    engine: Engine<DmaStorage>,
}

impl SharesManager for BackgroundShares {
    fn shares(&self) -> usize {
        let pressure = self.engine.write_pressure().clamp(0.0, 1.0);
        BACKGROUND_SHARES + (pressure * (BACKGROUND_SHARES_MAX - BACKGROUND_SHARES) as f64) as usize
    }

    fn adjustment_period(&self) -> Duration {
        Duration::from_millis(BACKGROUND_SHARES_PERIOD_MS)
    }
}

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

/// Creates the task queue for `engine`'s background work: low priority
/// until its writers near a stall (see [`BACKGROUND_SHARES_MAX`]).
pub fn background_queue(engine: &Engine<DmaStorage>) -> TaskQueueHandle {
    let shares = Shares::Dynamic(Rc::new(BackgroundShares { engine: engine.clone() }));
    let tq = glommio::executor().create_task_queue(shares, Latency::NotImportant, "lumadb-bg");
    crate::storage::set_background_queue(tq);
    tq
}

/// Spawns the flush loop, the compaction loop and the task that prepares
/// the next WAL segment for `engine` on `tq`, and (in the `interval` and
/// `none` modes) the WAL timer and write-behind task in the current task
/// queue.
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
    let e = engine.clone();
    tasks.push(spawn(tq, async move {
        while e.wal_segment_work().await {
            if let Err(err) = e.prepare_wal_segment().await {
                // The roll creates its segment itself meanwhile.
                tracing::error!(error = %err, "preparing the next WAL segment failed");
                glommio::timer::sleep(WAL_PREPARE_RETRY).await;
            }
        }
    }));
    let timer = match engine.options().sync_mode {
        SyncMode::Interval { interval_ms } => Some((interval_ms, true)),
        SyncMode::None => Some((WAL_WRITE_OUT_INTERVAL_MS, false)),
        SyncMode::Sync => None,
    };
    if let Some((period_ms, sync)) = timer {
        let e = engine.clone();
        tasks.push(spawn_here(async move {
            while e.wal_write_behind_work().await {
                if let Err(err) = e.write_wal().await {
                    if e.is_closed() {
                        break;
                    }
                    tracing::error!(error = %err, "WAL write-behind failed");
                }
            }
        }));
        let e = engine.clone();
        tasks.push(spawn_here(async move {
            while !e.is_closed() && e.poisoned().is_none() {
                glommio::timer::sleep(Duration::from_millis(period_ms)).await;
                if e.is_closed() {
                    break;
                }
                let r = if sync {
                    e.sync_wal().await.map(|_| ())
                } else {
                    e.write_wal().await
                };
                // The engine may have closed while the call waited its turn.
                if let Err(err) = r {
                    if e.is_closed() {
                        break;
                    }
                    tracing::error!(error = %err, "WAL {} failed", if sync { "sync" } else { "write" });
                }
            }
        }));
    }
    BackgroundTasks { tasks }
}

fn spawn_here(f: impl std::future::Future<Output = ()> + 'static) -> glommio::task::JoinHandle<()> {
    glommio::spawn_local(f).detach()
}

fn spawn(tq: TaskQueueHandle, f: impl std::future::Future<Output = ()> + 'static) -> glommio::task::JoinHandle<()> {
    match glommio::spawn_local_into(f, tq) {
        Ok(t) => t.detach(),
        Err(e) => panic!("cannot spawn into the background task queue: {e}"),
    }
}
