//! Starting, running and stopping the shards.
//!
//! [`run`] turns a placement (shard → CPU → NUMA node) into one pinned
//! glommio executor per shard. Each executor opens its own engine in its
//! own directory, joins the two cross-shard meshes, builds the protocol
//! layer's per-shard state (a [`ShardApp`]) and, once every shard is up,
//! starts it (the listeners open). Shards start and stop together: if one
//! fails to start, all stop and the error names the shard.
//!
//! Shutdown is a process-wide [`Control`] flag that each shard watches.
//! Graceful: listeners close, in-flight requests finish (up to a
//! deadline), each engine syncs its WAL and closes, the process exits 0.
//! Forced: the process exits at once; in `sync` mode every acknowledged
//! write is already durable.

use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};
use lumadb_engine::db::Engine;
use lumadb_engine::EngineOptions;

use crate::config::Config;
use crate::datadir::DataDir;
use crate::driver;
use crate::error::RuntimeError;
use crate::router::{RequestEnvelope, ResponseEnvelope, Router, Service};
use crate::stall::{StallLog, StallReporter};
use crate::storage::DmaStorage;

/// io_uring buffer memory per executor when the locked-memory limit
/// allows it.
pub const EXECUTOR_IO_MEMORY_BYTES_MAX: usize = 2 << 20;
/// The least io_uring buffer memory an executor runs with.
pub const EXECUTOR_IO_MEMORY_BYTES_MIN: usize = 256 << 10;
/// Locked memory kept back for everything that is not an executor's
/// buffers (rings of other threads, the stall detector).
const MEMLOCK_RESERVE_BYTES: u64 = 1 << 20;
/// glommio's preemption timer: how long a task queue runs before others
/// get their turn.
pub const PREEMPT_TIMER: Duration = Duration::from_millis(2);
/// How often each shard looks at the process-wide control flags.
const CONTROL_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Where one shard runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSlot {
    pub shard: usize,
    pub cpu: usize,
    pub numa_node: usize,
}

/// Process-wide state shared by the shards and the signal handler: only
/// flags that change a handful of times in a process's life.
#[derive(Debug)]
pub struct Control {
    /// 0 running, 1 graceful shutdown asked, 2 forced.
    stop: AtomicU8,
    /// Milliseconds a graceful shutdown waits for in-flight requests.
    drain_timeout_ms: AtomicU64,
    started: Instant,
}

/// How to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    Graceful { timeout: Duration },
    Force,
}

/// How long a graceful shutdown waits for in-flight requests by default.
pub const DRAIN_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

impl Default for Control {
    fn default() -> Self {
        Control {
            stop: AtomicU8::new(0),
            drain_timeout_ms: AtomicU64::new(DRAIN_TIMEOUT_DEFAULT.as_millis() as u64),
            started: Instant::now(),
        }
    }
}

impl Control {
    pub fn new() -> Arc<Control> {
        Arc::new(Control::default())
    }

    /// Asks every shard to stop. A forced stop exits the process now.
    pub fn request_stop(&self, mode: StopMode) {
        match mode {
            StopMode::Graceful { timeout } => {
                self.drain_timeout_ms
                    .store(timeout.as_millis() as u64, Ordering::Relaxed);
                let _ = self.stop.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire);
            }
            StopMode::Force => {
                tracing::warn!("forced shutdown: exiting now");
                // In sync mode every acknowledged write is already durable;
                // nothing else needs to happen before the process ends.
                std::process::exit(0);
            }
        }
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire) != 0
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms.load(Ordering::Relaxed))
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Switches transparent huge pages off for the whole process (every
/// mapping, existing and future), as Redis's `disable-thp` does; see
/// `server.disable_thp`.
pub fn disable_transparent_huge_pages() -> std::io::Result<()> {
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1 as libc::c_ulong, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// What every shard gets at start.
pub struct ShardCtx<S: Service> {
    pub slot: ShardSlot,
    pub shards: usize,
    pub engine: Engine<DmaStorage>,
    pub router: Rc<Router<S>>,
    pub config: Config,
    pub control: Arc<Control>,
    /// Stalls the detector has reported on this shard.
    pub stalls: Arc<AtomicU64>,
    /// Every shard's placement, for status reports.
    pub layout: Vec<ShardSlot>,
}

impl<S: Service> ShardCtx<S> {
    /// Resolves when a shutdown has been asked for.
    pub async fn stopping(&self) {
        while !self.control.stop_requested() {
            glommio::timer::sleep(CONTROL_POLL_INTERVAL).await;
        }
    }
}

/// The protocol layer's per-shard state, as the runtime drives it.
pub trait ShardApp: Service {
    /// Every shard is up: open the listeners.
    fn start(self: &Rc<Self>) -> Result<(), String>;
    /// Shutdown: stop accepting and resolve once in-flight requests are
    /// answered. The runtime bounds the wait by the drain timeout.
    fn drain(self: &Rc<Self>) -> impl Future<Output = ()>;
    /// Shutdown, once every shard has drained (so no request from another
    /// shard's client can arrive any more): finish what is queued for the
    /// engine. The engine is closed after this resolves.
    fn quiesce(self: &Rc<Self>) -> impl Future<Output = ()>;
}

/// What the server runs with.
pub struct RuntimeSpec {
    pub config: Config,
    /// The data directory, opened and locked ([`DataDir::open`]) by the
    /// caller before it sets up logging, so that a start refused for a
    /// directory in use writes nothing into the running server's logs.
    pub data: DataDir,
    pub layout: Vec<ShardSlot>,
}

/// The io_uring buffer memory each executor gets under RLIMIT_MEMLOCK, or
/// the error that says which limit to raise.
pub fn executor_io_memory(shards: usize) -> Result<usize, RuntimeError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let limit = if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        libc::RLIM_INFINITY
    };
    io_memory_for(shards, limit)
}

fn io_memory_for(shards: usize, limit: u64) -> Result<usize, RuntimeError> {
    assert!(shards > 0);
    if limit == libc::RLIM_INFINITY {
        return Ok(EXECUTOR_IO_MEMORY_BYTES_MAX);
    }
    let per_shard = limit.saturating_sub(MEMLOCK_RESERVE_BYTES) / shards as u64;
    if per_shard < EXECUTOR_IO_MEMORY_BYTES_MIN as u64 {
        return Err(RuntimeError::LockedMemory {
            shards,
            needed_bytes: EXECUTOR_IO_MEMORY_BYTES_MIN as u64 * shards as u64 + MEMLOCK_RESERVE_BYTES,
            limit_bytes: limit,
        });
    }
    // A power of two keeps glommio's buffer allocator's arenas whole.
    let per_shard = (per_shard as usize).min(EXECUTOR_IO_MEMORY_BYTES_MAX);
    Ok(1 << (usize::BITS - 1 - per_shard.leading_zeros()))
}

/// Engine options for one of `shards` shards: caches are process-wide
/// budgets, split evenly; write buffers are per shard.
pub fn shard_engine_options(config: &Config, shards: usize) -> Result<EngineOptions, RuntimeError> {
    let mut opts = config.engine_options().map_err(|e| RuntimeError::Shard {
        shard: 0,
        message: e.to_string(),
    })?;
    opts.block_cache_size /= shards.max(1);
    opts.row_cache_size /= shards.max(1);
    // The data layouts start every key with a one-byte record class (the
    // Redis layout: 'm' metadata, 'd' elements, 'x' expiry index): one
    // class per table, so elements written in order (a list's pushes)
    // move down the levels instead of being merged with the metadata
    // updated beside them.
    opts.keyspace_defaults.table_partition_prefix_len = 1;
    Ok(opts)
}

/// Runs the shards until a shutdown. `factory` builds each shard's
/// protocol state; it runs on the shard's own thread. `on_ready` runs on
/// the calling thread once every shard has started.
pub fn run<S, F, Fut>(
    spec: RuntimeSpec,
    control: Arc<Control>,
    factory: F,
    on_ready: impl FnOnce(),
) -> Result<(), RuntimeError>
where
    S: ShardApp,
    F: Fn(Rc<ShardCtx<S>>) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = Result<Rc<S>, String>> + 'static,
{
    let shards = spec.layout.len();
    assert!(shards > 0);
    assert_eq!(
        spec.data.shards(),
        shards,
        "the data directory was opened for this layout"
    );
    let data = spec.data;
    let io_memory = executor_io_memory(shards)?;
    let opts = shard_engine_options(&spec.config, shards)?;
    let depth = spec.config.shards.xcore_queue_depth as usize;
    let stall_threshold = Duration::from_millis(spec.config.shards.stall_threshold_ms);
    let requests: MeshBuilder<RequestEnvelope<S::Request>, _> = MeshBuilder::full(shards, depth);
    let responses: MeshBuilder<ResponseEnvelope<S::Response>, _> = MeshBuilder::full(shards, depth);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<usize, RuntimeError>>();
    // Second barrier: every shard's listeners are open.
    let (listening_tx, listening_rx) = mpsc::channel::<bool>();
    let go = Arc::new(AtomicU8::new(0));
    // A graceful stop goes in two steps, each a barrier across shards:
    // every shard drains (stops reading requests, answers those in
    // flight, which may call other shards) before any closes its engine,
    // and every shard has closed its engine before any stops answering
    // cross-shard requests. Otherwise a request from a client of a shard
    // still draining would reach a closed engine (an error reply), or a
    // shard that is gone (a wait that never ends: a blocked pop cancels
    // its waits on the keys' shards as it ends).
    let drained = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicUsize::new(0));
    let stall_log = if stall_threshold.is_zero() {
        None
    } else {
        Some(StallLog::spawn().map_err(|source| RuntimeError::Thread {
            name: "stall log",
            source,
        })?)
    };

    let mut handles = Vec::with_capacity(shards);
    for slot in spec.layout.iter().copied() {
        let factory = factory.clone();
        let requests = requests.clone();
        let responses = responses.clone();
        let ready_tx = ready_tx.clone();
        let listening_tx = listening_tx.clone();
        let go = go.clone();
        let drained = drained.clone();
        let stopped = stopped.clone();
        let control = control.clone();
        let config = spec.config.clone();
        let layout = spec.layout.clone();
        let dir = data.shard_dir(slot.shard);
        let opts = opts.clone();
        let stalls = Arc::new(AtomicU64::new(0));
        let stalls_armed = Arc::new(AtomicBool::new(false));
        let arm_stalls = stalls_armed.clone();
        let mut builder = LocalExecutorBuilder::new(Placement::Fixed(slot.cpu))
            .name(&format!("lumadb-shard-{}", slot.shard))
            .io_memory(io_memory)
            .preempt_timer(PREEMPT_TIMER);
        if let Some(log) = &stall_log {
            builder = builder.detect_stalls(Some(Box::new(
                StallReporter::new(slot.shard, stall_threshold, stalls.clone(), log.clone()).armed_by(stalls_armed),
            )));
        }
        let handle = builder
            .spawn(move || async move {
                let shard = slot.shard;
                let fail = |message: String| RuntimeError::Shard { shard, message };
                let started = async {
                    let (req_tx, req_rx) = with_ticks(requests.join())
                        .await
                        .map_err(|_| fail("cannot join the request mesh".into()))?;
                    let (resp_tx, resp_rx) = with_ticks(responses.join())
                        .await
                        .map_err(|_| fail("cannot join the response mesh".into()))?;
                    if let Err(e) = lumadb_tuning::bind_memory_to_node(slot.numa_node) {
                        tracing::warn!(shard, node = slot.numa_node, error = %e, "cannot bind shard memory to its NUMA node");
                    }
                    let storage = with_ticks(DmaStorage::open(&dir))
                        .await
                        .map_err(|e| fail(format!("{}: {e}", dir.display())))?;
                    let opening = std::time::Instant::now();
                    let engine = with_ticks(Engine::open(storage, opts))
                        .await
                        .map_err(|e| fail(format!("{}: {e}", dir.display())))?;
                    let report = engine.recovery_report();
                    tracing::info!(shard, cpu = slot.cpu, took = ?opening.elapsed(), recovery = ?report, "shard engine open");
                    // Opening (WAL replay above all) serves no one: stalls
                    // count from here on.
                    arm_stalls.store(true, Ordering::Relaxed);
                    let background = driver::spawn_background(&engine, driver::background_queue(&engine));
                    let router = Router::<S>::new(req_tx, resp_tx);
                    let ctx = Rc::new(ShardCtx {
                        slot,
                        shards: layout.len(),
                        engine: engine.clone(),
                        router: router.clone(),
                        config,
                        control: control.clone(),
                        stalls,
                        layout,
                    });
                    let app = factory(ctx.clone()).await.map_err(fail)?;
                    router.serve(app.clone(), req_rx, resp_rx, depth);
                    Ok::<_, RuntimeError>((ctx, app, background))
                };
                let (ctx, app, background) = match started.await {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        drained.fetch_add(1, Ordering::AcqRel);
                        stopped.fetch_add(1, Ordering::AcqRel);
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(shard));
                // Every shard must be up before any listener opens.
                while go.load(Ordering::Acquire) == 0 {
                    glommio::timer::sleep(Duration::from_millis(2)).await;
                }
                if go.load(Ordering::Acquire) == 1 {
                    let started = app.start();
                    if let Err(e) = &started {
                        tracing::error!(shard, error = %e, "shard cannot start serving");
                        eprintln!("error: shard {shard} cannot start serving: {e}");
                        control.request_stop(StopMode::Graceful {
                            timeout: Duration::from_secs(1),
                        });
                    }
                    let _ = listening_tx.send(started.is_ok());
                }
                ctx.stopping().await;
                let deadline = std::time::Instant::now() + ctx.control.drain_timeout();
                if within(deadline, app.drain()).await.is_none() {
                    tracing::warn!(shard, "drain timeout passed with requests still in flight");
                }
                if within(deadline, all_reach(&drained, shards)).await.is_none() {
                    tracing::warn!(shard, "drain timeout passed while other shards were still draining");
                }
                if within(deadline, app.quiesce()).await.is_none() {
                    tracing::warn!(shard, "drain timeout passed with writes still queued");
                }
                if let Err(e) = ctx.engine.close().await {
                    tracing::error!(shard, error = %e, "engine close failed");
                }
                background.join().await;
                if within(deadline, all_reach(&stopped, shards)).await.is_none() {
                    tracing::warn!(shard, "drain timeout passed while other shards were still stopping");
                }
                ctx.router.close();
                tracing::info!(shard, "shard stopped");
            })
            .map_err(|e| classify_executor_error(slot.shard, e))?;
        handles.push(handle);
    }
    drop(ready_tx);
    drop(listening_tx);

    let mut first_error = None;
    for _ in 0..shards {
        match ready_rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert(RuntimeError::Shard {
                    shard: 0,
                    message: "a shard thread ended during start".into(),
                });
                break;
            }
        }
    }
    if first_error.is_some() {
        go.store(2, Ordering::Release);
        control.request_stop(StopMode::Graceful {
            timeout: Duration::from_secs(1),
        });
    } else {
        go.store(1, Ordering::Release);
        // Ready only once every shard listens, so a client that connects
        // right after the ready line is never refused.
        let all_listening = (0..shards).all(|_| listening_rx.recv().unwrap_or(false));
        if all_listening {
            on_ready();
        }
    }
    for (i, h) in handles.into_iter().enumerate() {
        if h.join().is_err() {
            first_error.get_or_insert(RuntimeError::Shard {
                shard: i,
                message: "the shard's executor failed".into(),
            });
        }
    }
    drop(data);
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// How often [`with_ticks`] re-polls its future.
const JOIN_REPOLL_INTERVAL: Duration = Duration::from_millis(5);

/// Polls `f` on every wake-up and also every few milliseconds. glommio's
/// mesh join waits for the other executors through cross-thread
/// notifications, and its file operations through its blocking thread
/// pool; under CPU contention a wake-up can be lost, leaving a shard
/// parked at start (seen with a dozen servers starting at once).
/// Re-polling makes progress whatever happens to the notification.
async fn with_ticks<T>(f: impl Future<Output = T>) -> T {
    let mut f = std::pin::pin!(f);
    loop {
        let tick = glommio::timer::sleep(JOIN_REPOLL_INTERVAL);
        match futures_lite::future::or(async { Some((&mut f).await) }, async {
            tick.await;
            None
        })
        .await
        {
            Some(v) => return v,
            None => continue,
        }
    }
}

fn classify_executor_error(shard: usize, e: glommio::GlommioError<()>) -> RuntimeError {
    let text = e.to_string();
    if text.contains("Operation not permitted") || text.contains("Function not implemented") {
        RuntimeError::IoUring(text)
    } else if text.contains("Cannot allocate memory") {
        RuntimeError::LockedMemory {
            shards: shard + 1,
            needed_bytes: 0,
            limit_bytes: 0,
        }
    } else {
        RuntimeError::Shard {
            shard,
            message: format!("cannot start its executor: {text}"),
        }
    }
}

/// Runs `f` until `deadline`; `None` if the deadline came first.
async fn within<T>(deadline: std::time::Instant, f: impl Future<Output = T>) -> Option<T> {
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    glommio::timer::timeout(left, async { Ok(f.await) }).await.ok()
}

/// Counts this shard in `count` (at once, even if the wait below is cut
/// short), and returns the wait until all `shards` are counted.
fn all_reach(count: &AtomicUsize, shards: usize) -> impl Future<Output = ()> + '_ {
    count.fetch_add(1, Ordering::AcqRel);
    async move {
        while count.load(Ordering::Acquire) < shards {
            glommio::timer::sleep(Duration::from_millis(2)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_memory_fits_the_locked_memory_limit() {
        assert_eq!(io_memory_for(2, 8 << 20).unwrap(), 2 << 20);
        assert_eq!(io_memory_for(16, 8 << 20).unwrap(), 256 << 10);
        assert_eq!(io_memory_for(4, libc::RLIM_INFINITY).unwrap(), 2 << 20);
        let err = io_memory_for(64, 8 << 20).unwrap_err().to_string();
        assert!(err.contains("RLIMIT_MEMLOCK") && err.contains("ulimit -l"), "{err}");
    }
}
