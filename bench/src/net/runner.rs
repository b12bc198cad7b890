//! The run itself: one pinned glommio executor per load core, its
//! connections, and the two loops that pace them.
//!
//! Each connection has a writer (the connection's task) and a reader
//! task on the same socket, both on the core's io_uring ring:
//!
//! - **Closed loop**: the writer sends `--pipeline` requests in one write,
//!   waits until every answer is in, and sends the next batch
//!   (redis-benchmark's `-P`). Latency runs from the batch's send time.
//! - **Open loop**: request `i` of a connection is due at
//!   `t0 + (i + offset) / rate`; the writer sends whatever is due (at most
//!   `--pipeline` outstanding) and latency runs from the *intended* send
//!   time, so a stalled server is charged for every request it delayed,
//!   not just the one it held (coordinated omission corrected, as wrk2).
//!
//! Phases are separated by barriers across cores: set-up (PostgreSQL's
//! table), connect, preload, then the timed run (warm-up, then measured).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::net::dist::{Distribution, KeyChooser, Zipfian};
use crate::net::proto::{Codec, Outcome, Request};
use crate::net::sock::{Sock, RECV_CHUNK_BYTES};
use crate::net::stats::{histogram, Stats};
use crate::net::workload::{Mix, OpKind, ValueSize, Values};
use crate::BenchError;

/// Requests a connection keeps outstanding during preload.
pub const PRELOAD_PIPELINE: usize = 64;
/// How often each core checks for timed-out requests.
pub const WATCHDOG_PERIOD: Duration = Duration::from_millis(50);
/// Pause before reconnecting a failed connection.
pub const RECONNECT_DELAY: Duration = Duration::from_millis(100);
/// Live-line ticks buffered between the cores and the reporter.
pub const TICK_QUEUE_MAX: usize = 4096;
/// I/O memory glommio locks per load executor.
pub const EXECUTOR_IO_MEMORY_BYTES: usize = 2 << 20;
/// Barriers every core and the reporter pass: set-up, connected, preloaded.
const BARRIERS: usize = 3;

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Next batch when the last one is answered.
    Closed,
    /// A fixed total rate, in operations per second.
    Open { rate: f64 },
}

/// Everything a run needs, shared read-only by the cores.
#[derive(Debug, Clone)]
pub struct Plan {
    pub target: SocketAddr,
    pub codec: Codec,
    pub connections: usize,
    pub pipeline: usize,
    /// One executor per entry, pinned to that CPU (`None`: unpinned).
    pub cpus: Vec<Option<usize>>,
    pub pacing: Pacing,
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
    pub warmup: Duration,
    pub preload: bool,
    pub mix: Mix,
    pub distribution: Distribution,
    pub zipf: Option<Zipfian>,
    pub keyspace: u64,
    pub value_size: ValueSize,
    pub scan_max: u32,
    pub verify: bool,
    pub timeout: Duration,
    pub seed: u64,
}

/// One second (or the last part of one) of one core's run.
#[derive(Debug)]
pub struct Tick {
    pub second: u64,
    pub hist: Histogram<u64>,
    pub errors: u64,
}

/// State the cores and the reporter share.
pub struct Shared {
    barrier: Barrier,
    pub t0: OnceLock<Instant>,
    failure: Mutex<Option<BenchError>>,
    pub preload_done: AtomicU64,
    pub preload_cores_done: AtomicUsize,
    /// Keys inserted past the key space so far (sent).
    inserted: AtomicU64,
    /// Inserts answered so far: `latest` reads stay below
    /// `keyspace + acked`, so they rarely ask for a key still in flight
    /// (YCSB's acknowledged counter, without its exact window).
    acked: AtomicU64,
    /// With `--verify`: which keys are known to exist (bit per key).
    written: Vec<AtomicU64>,
    ticks: SyncSender<Tick>,
}

impl Shared {
    pub fn new(plan: &Plan, ticks: SyncSender<Tick>) -> Shared {
        let bits = if plan.verify {
            plan.keyspace.div_ceil(64) as usize
        } else {
            0
        };
        Shared {
            barrier: Barrier::new(plan.cpus.len() + 1),
            t0: OnceLock::new(),
            failure: Mutex::new(None),
            preload_done: AtomicU64::new(0),
            preload_cores_done: AtomicUsize::new(0),
            inserted: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            written: (0..bits).map(|_| AtomicU64::new(0)).collect(),
            ticks,
        }
    }

    /// The reporter's side of the phase barriers.
    pub fn wait(&self) {
        self.barrier.wait();
    }

    pub fn failed(&self) -> bool {
        self.failure.lock().map(|f| f.is_some()).unwrap_or(true)
    }

    fn fail(&self, e: BenchError) {
        if let Ok(mut f) = self.failure.lock() {
            if f.is_none() {
                *f = Some(e);
            }
        }
    }

    pub fn take_failure(&self) -> Option<BenchError> {
        self.failure.lock().ok().and_then(|mut f| f.take())
    }

    fn mark_written(&self, key: u64) {
        if let Some(w) = self.written.get((key / 64) as usize) {
            w.fetch_or(1 << (key % 64), Ordering::Relaxed);
        }
    }

    fn is_written(&self, key: u64) -> bool {
        self.written
            .get((key / 64) as usize)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (key % 64)) != 0)
    }
}

/// What one core hands back.
#[derive(Debug)]
pub struct CoreResult {
    pub stats: Stats,
    /// Every answered operation, warm-up and preload included.
    pub completed_all: u64,
    /// When the last measured operation was answered.
    pub last_done: Option<Instant>,
    pub preload_errors: u64,
}

/// Runs one core: its executor, its connections (global indexes `conns`).
pub fn run_core(
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    core: usize,
    conns: Vec<usize>,
) -> Result<CoreResult, BenchError> {
    let mut passed = 0usize;
    let mut preload_marked = false;
    let placement = match plan.cpus[core] {
        Some(cpu) => glommio::Placement::Fixed(cpu),
        None => glommio::Placement::Unbound,
    };
    let result = glommio::LocalExecutorBuilder::new(placement)
        .io_memory(EXECUTOR_IO_MEMORY_BYTES)
        .name(&format!("lumadb-load-{core}"))
        .make()
        .map_err(|e| BenchError::Executor(e.to_string()))
        .and_then(|ex| {
            ex.run(core_main(
                plan.clone(),
                shared.clone(),
                core,
                conns,
                &mut passed,
                &mut preload_marked,
            ))
        });
    if let Err(e) = &result {
        if !matches!(e, BenchError::Aborted) {
            shared.fail(BenchError::Invalid(e.to_string()));
        }
    }
    // Keep the other cores and the reporter from waiting forever.
    if !preload_marked {
        shared.preload_cores_done.fetch_add(1, Ordering::SeqCst);
    }
    for _ in passed..BARRIERS {
        shared.barrier.wait();
    }
    result
}

fn barrier(shared: &Shared, passed: &mut usize) -> Result<(), BenchError> {
    shared.barrier.wait();
    *passed += 1;
    if shared.failed() {
        return Err(BenchError::Aborted);
    }
    Ok(())
}

/// Connects and runs the protocol's start-up.
async fn open(plan: &Plan, run_setup: bool) -> Result<Sock, BenchError> {
    let sock = Sock::connect(plan.target).await.map_err(|cause| BenchError::Connect {
        target: plan.target.to_string(),
        cause,
    })?;
    if let Codec::Resp(resp) = &plan.codec {
        if let Some(frame) = resp.auth_frame() {
            resp_login(&sock, frame, plan).await?;
        }
    }
    if let Codec::Postgres(pg) = &plan.codec {
        // A server that is not PostgreSQL may never answer the startup
        // message: the handshake gets `--timeout` like any request.
        let handshake = async { Some(crate::net::postgres::handshake(&sock, pg, run_setup).await) };
        let expire = async {
            glommio::timer::sleep(plan.timeout).await;
            None
        };
        match futures_lite::future::or(handshake, expire).await {
            Some(done) => done?,
            None => {
                sock.shutdown();
                return Err(BenchError::Connect {
                    target: plan.target.to_string(),
                    cause: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no answer to the PostgreSQL startup message within --timeout (is it a PostgreSQL server?)",
                    ),
                });
            }
        }
    }
    Ok(sock)
}

/// Sends AUTH and waits (at most `--timeout`) for its `+OK`.
async fn resp_login(sock: &Sock, frame: Vec<u8>, plan: &Plan) -> Result<(), BenchError> {
    let failed = |message: String| BenchError::Connect {
        target: plan.target.to_string(),
        cause: std::io::Error::other(message),
    };
    let login = async {
        sock.send_all(frame)
            .await
            .map_err(|e| failed(format!("sending AUTH: {e}")))?;
        let mut buf = Vec::new();
        while !buf.ends_with(b"\r\n") {
            if buf.len() > 4096 {
                return Err(failed("the answer to AUTH is not a RESP line".into()));
            }
            if sock
                .recv_into(&mut buf)
                .await
                .map_err(|e| failed(format!("reading the answer to AUTH: {e}")))?
                == 0
            {
                return Err(failed("the server closed the connection after AUTH".into()));
            }
        }
        match buf.as_slice() {
            b"+OK\r\n" => Ok(()),
            other => Err(failed(format!(
                "AUTH refused: {}",
                String::from_utf8_lossy(other).trim_end()
            ))),
        }
    };
    let expire = async {
        glommio::timer::sleep(plan.timeout).await;
        Err(failed("no answer to AUTH within --timeout".into()))
    };
    futures_lite::future::or(login, expire).await
}

async fn core_main(
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    core: usize,
    conns: Vec<usize>,
    passed: &mut usize,
    preload_marked: &mut bool,
) -> Result<CoreResult, BenchError> {
    // Set-up: one session creates what the statements need.
    if core == 0 {
        if let Codec::Postgres(pg) = &plan.codec {
            if pg.setup.is_some() {
                if let Err(e) = open(&plan, true).await {
                    shared.fail(e);
                }
            }
        }
    }
    barrier(&shared, passed)?;
    let ctx = Rc::new(CoreCtx {
        plan: plan.clone(),
        shared: shared.clone(),
        stats: RefCell::new(Stats::default()),
        interval: RefCell::new((histogram(), 0)),
        completed_all: Cell::new(0),
        last_done: Cell::new(None),
        warmup_end: Cell::new(None),
        preload_errors: Cell::new(0),
        conns: RefCell::new(Vec::new()),
        done: Cell::new(false),
        values: Values::new(
            plan.value_size.max,
            &mut SmallRng::seed_from_u64(plan.seed ^ core as u64),
        ),
    });
    let mut opened = Vec::new();
    let mut error = None;
    for &g in &conns {
        match open(&plan, false).await {
            Ok(sock) => opened.push(Conn::new(g, sock, &ctx)),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    if let Some(e) = error {
        shared.fail(e);
    }
    barrier(&shared, passed)?;
    ctx.conns.replace(opened.iter().map(|c| c.st.clone()).collect());
    let guard = glommio::spawn_local(watchdog(ctx.clone(), None));
    if plan.preload {
        opened = run_phase(&ctx, opened, Phase::Preload).await;
    }
    ctx.done.set(true);
    guard.await;
    ctx.done.set(false);
    shared.preload_cores_done.fetch_add(1, Ordering::SeqCst);
    *preload_marked = true;
    barrier(&shared, passed)?;
    let t0 = *shared.t0.get().ok_or(BenchError::Aborted)?;
    ctx.warmup_end.set(Some(t0 + plan.warmup));
    ctx.interval.replace((histogram(), 0));
    let ticker = glommio::spawn_local(watchdog(ctx.clone(), Some(t0)));
    opened = run_phase(&ctx, opened, Phase::Run { t0 }).await;
    ctx.done.set(true);
    ticker.await;
    for c in opened {
        c.close().await;
    }
    Ok(CoreResult {
        stats: ctx.stats.replace(Stats::default()),
        completed_all: ctx.completed_all.get(),
        last_done: ctx.last_done.get(),
        preload_errors: ctx.preload_errors.get(),
    })
}

/// One core's shared state.
struct CoreCtx {
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    stats: RefCell<Stats>,
    /// This second's latencies and errors, for the live line.
    interval: RefCell<(Histogram<u64>, u64)>,
    completed_all: Cell<u64>,
    last_done: Cell<Option<Instant>>,
    /// Set when the timed run starts; before that nothing is recorded.
    warmup_end: Cell<Option<Instant>>,
    preload_errors: Cell<u64>,
    conns: RefCell<Vec<Rc<ConnState>>>,
    done: Cell<bool>,
    /// Plain values are slices of this.
    values: Values,
}

/// Checks for timed-out requests; with `t0`, also sends a live tick every
/// second. Ends once `done` is set (sending the last partial tick).
async fn watchdog(ctx: Rc<CoreCtx>, t0: Option<Instant>) {
    let mut second = 0u64;
    loop {
        let finished = ctx.done.get();
        let now = Instant::now();
        if let Some(t0) = t0 {
            let due = t0 + Duration::from_secs(second + 1);
            if now >= due || finished {
                let (hist, errors) = ctx.interval.replace((histogram(), 0));
                let _ = ctx.shared.ticks.try_send(Tick { second, hist, errors });
                second += 1;
            }
        }
        if finished {
            return;
        }
        for st in ctx.conns.borrow().iter() {
            let stale = st
                .inflight
                .borrow()
                .front()
                .is_some_and(|p| now.saturating_duration_since(p.sent) > ctx.plan.timeout);
            if stale && !st.timed_out.replace(true) {
                if let Some(s) = st.sock.borrow().as_ref() {
                    s.shutdown();
                }
            }
        }
        let mut wait = WATCHDOG_PERIOD;
        if let Some(t0) = t0 {
            let due = t0 + Duration::from_secs(second + 1);
            wait = wait.min(due.saturating_duration_since(Instant::now()));
        }
        glommio::timer::sleep(wait).await;
    }
}

/// One request waiting for its answers.
struct Pending {
    /// Latency runs from here: the send time (closed loop) or the
    /// intended send time (open loop).
    start: Instant,
    /// When it really went out (for timeouts).
    sent: Instant,
    op: OpKind,
    key: u64,
    replies_left: u32,
    first: bool,
    record: bool,
    /// `--verify`: the key was known to exist when the read was sent.
    expect_present: bool,
    error: Option<String>,
    preload: bool,
}

/// What a connection's writer and reader share.
struct ConnState {
    inflight: RefCell<VecDeque<Pending>>,
    sock: RefCell<Option<Rc<Sock>>>,
    waker: RefCell<Option<Waker>>,
    notified: Cell<bool>,
    broken: Cell<bool>,
    timed_out: Cell<bool>,
    /// The server said it closes the connection after its last reply.
    closed_by_server: Cell<bool>,
}

impl ConnState {
    fn notify(&self) {
        self.notified.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    async fn changed(&self) {
        std::future::poll_fn(|cx| {
            if self.notified.replace(false) {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// One connection: its state and its reader task.
struct Conn {
    /// Global index (0..connections).
    index: usize,
    st: Rc<ConnState>,
    reader: Option<glommio::Task<()>>,
    rng: SmallRng,
    chooser: KeyChooser,
    codec: Codec,
}

impl Conn {
    fn new(index: usize, sock: Sock, ctx: &Rc<CoreCtx>) -> Conn {
        let plan = &ctx.plan;
        let st = Rc::new(ConnState {
            inflight: RefCell::new(VecDeque::new()),
            sock: RefCell::new(None),
            waker: RefCell::new(None),
            notified: Cell::new(false),
            broken: Cell::new(false),
            timed_out: Cell::new(false),
            closed_by_server: Cell::new(false),
        });
        let mut c = Conn {
            index,
            st,
            reader: None,
            rng: SmallRng::seed_from_u64(plan.seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            chooser: KeyChooser::new(
                plan.distribution,
                plan.keyspace,
                plan.zipf.clone(),
                index as u64,
                plan.connections as u64,
            ),
            codec: plan.codec.clone(),
        };
        c.attach(sock, ctx);
        c
    }

    fn attach(&mut self, sock: Sock, ctx: &Rc<CoreCtx>) {
        let sock = Rc::new(sock);
        self.st.sock.replace(Some(sock.clone()));
        self.reader = Some(glommio::spawn_local(reader(
            sock,
            self.st.clone(),
            ctx.clone(),
            self.codec.clone(),
        )));
    }

    /// Waits for the reader to end and fails what was in flight.
    async fn detach(&mut self, ctx: &CoreCtx) {
        if let Some(s) = self.st.sock.take() {
            s.shutdown();
        }
        if let Some(r) = self.reader.take() {
            r.await;
        }
        let timed_out = self.st.timed_out.replace(false);
        self.st.broken.set(false);
        self.st.closed_by_server.set(false);
        let lost: Vec<Pending> = self.st.inflight.borrow_mut().drain(..).collect();
        let mut stats = ctx.stats.borrow_mut();
        for p in lost {
            if p.preload {
                ctx.preload_errors.set(ctx.preload_errors.get() + 1);
            } else if p.record {
                if timed_out {
                    stats.timeouts += 1;
                } else {
                    stats.error("connection");
                }
            }
            ctx.interval.borrow_mut().1 += 1;
        }
    }

    async fn close(mut self) {
        if let Some(s) = self.st.sock.take() {
            s.shutdown();
        }
        if let Some(r) = self.reader.take() {
            r.await;
        }
    }
}

/// Reads answers off the socket and completes requests in order.
async fn reader(sock: Rc<Sock>, st: Rc<ConnState>, ctx: Rc<CoreCtx>, codec: Codec) {
    let mut rbuf: Vec<u8> = Vec::with_capacity(RECV_CHUNK_BYTES);
    let mut chunk = vec![0u8; RECV_CHUNK_BYTES];
    loop {
        let (r, back) = sock.recv(chunk).await;
        chunk = back;
        let n = match r {
            Ok(n) if n > 0 => n,
            _ => break,
        };
        rbuf.extend_from_slice(&chunk[..n]);
        let now = Instant::now();
        let mut at = 0;
        let mut failed = false;
        loop {
            match codec.decode(&rbuf[at..]) {
                Ok(Some(reply)) => {
                    if !complete(&ctx, &st, &rbuf[at..at + reply.len], reply.outcome, now) {
                        ctx.stats.borrow_mut().error("protocol");
                        failed = true;
                        break;
                    }
                    at += reply.len;
                    if reply.close {
                        st.closed_by_server.set(true);
                        failed = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "closing a connection after a reply it cannot parse");
                    ctx.stats.borrow_mut().error("protocol");
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            break;
        }
        rbuf.drain(..at);
        st.notify();
    }
    st.broken.set(true);
    st.notify();
}

/// Applies one reply to the oldest request; false if there is none.
fn complete(ctx: &CoreCtx, st: &ConnState, reply: &[u8], outcome: Outcome, now: Instant) -> bool {
    let plan = &ctx.plan;
    let mut q = st.inflight.borrow_mut();
    let Some(p) = q.front_mut() else { return false };
    if p.first {
        p.first = false;
        match outcome {
            Outcome::Error(kind) => p.error = Some(kind),
            // A write answered "not found" (an HTTP 404 on PUT) did not
            // write anything: the route is wrong.
            Outcome::Miss if matches!(p.op, OpKind::Set | OpKind::Insert) => p.error = Some("not_found".into()),
            Outcome::Miss if matches!(p.op, OpKind::Get | OpKind::Rmw) && !p.preload && p.record => {
                let mut stats = ctx.stats.borrow_mut();
                if plan.verify && p.expect_present {
                    stats.wrong_answer(format!("key {} is missing", p.key));
                } else {
                    stats.misses += 1;
                }
            }
            Outcome::Ok { value: Some(range) } if plan.verify && p.record => {
                if matches!(p.op, OpKind::Get | OpKind::Rmw) {
                    if let Some(v) = reply.get(range) {
                        if let Err(bad) = Values::check(v, p.key, plan.value_size) {
                            ctx.stats.borrow_mut().wrong_answer(format!("key {}: {bad}", p.key));
                        }
                    }
                }
            }
            _ => {}
        }
    } else if let Outcome::Error(kind) = outcome {
        p.error.get_or_insert(kind);
    }
    p.replies_left -= 1;
    if p.replies_left > 0 {
        return true;
    }
    let Some(p) = q.pop_front() else { return false };
    drop(q);
    ctx.completed_all.set(ctx.completed_all.get() + 1);
    let latency_ns = now.saturating_duration_since(p.start).as_nanos() as u64;
    if p.preload {
        if p.error.is_some() {
            ctx.preload_errors.set(ctx.preload_errors.get() + 1);
        } else if plan.verify {
            ctx.shared.mark_written(p.key);
        }
        return true;
    }
    {
        let mut iv = ctx.interval.borrow_mut();
        if p.error.is_some() {
            iv.1 += 1;
        } else {
            iv.0.saturating_record(latency_ns.max(1));
        }
    }
    if p.error.is_none() && plan.verify && p.op.writes() {
        ctx.shared.mark_written(p.key);
    }
    if p.error.is_none() && p.op == OpKind::Insert {
        ctx.shared.acked.fetch_add(1, Ordering::Relaxed);
    }
    if p.record {
        let mut stats = ctx.stats.borrow_mut();
        match &p.error {
            Some(kind) => stats.error(kind),
            None => stats.record(p.op, latency_ns),
        }
        ctx.last_done.set(Some(now));
    }
    true
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Preload,
    Run { t0: Instant },
}

async fn run_phase(ctx: &Rc<CoreCtx>, conns: Vec<Conn>, phase: Phase) -> Vec<Conn> {
    let tasks: Vec<glommio::Task<Conn>> = conns
        .into_iter()
        .map(|c| {
            let ctx = ctx.clone();
            glommio::spawn_local(async move { drive(ctx, c, phase).await })
        })
        .collect();
    let mut back = Vec::with_capacity(tasks.len());
    for t in tasks {
        back.push(t.await);
    }
    back
}

/// How long after the measured window an open loop that fell behind its
/// schedule keeps sending requests that were due inside the window.
const OPEN_LOOP_SEND_GRACE: Duration = Duration::from_millis(100);

/// The measured operations connection `index` of `count` runs.
fn quota(total: u64, index: usize, count: usize) -> u64 {
    total / count as u64 + u64::from((index as u64) < total % count as u64)
}

/// The writer: paces, builds and sends one connection's requests.
async fn drive(ctx: Rc<CoreCtx>, mut conn: Conn, phase: Phase) -> Conn {
    let plan = ctx.plan.clone();
    let shared = ctx.shared.clone();
    let preload = matches!(phase, Phase::Preload);
    let (t0, pacing, pipeline) = match phase {
        Phase::Preload => (Instant::now(), Pacing::Closed, plan.pipeline.max(PRELOAD_PIPELINE)),
        Phase::Run { t0 } => (t0, plan.pacing, plan.pipeline),
    };
    let warmup_end = t0 + if preload { Duration::ZERO } else { plan.warmup };
    let end = if preload {
        None
    } else {
        plan.duration.map(|d| warmup_end + d)
    };
    let hard_stop = end.map(|e| e + plan.timeout);
    // Preload walks the key space: this connection takes every
    // `connections`-th key.
    let mut preload_keys = KeyChooser::new(
        Distribution::Sequential,
        plan.keyspace,
        None,
        conn.index as u64,
        plan.connections as u64,
    );
    let quota = if preload {
        Some(quota(plan.keyspace, conn.index, plan.connections))
    } else {
        plan.requests.map(|r| quota(r, conn.index, plan.connections))
    };
    let interval = match pacing {
        Pacing::Open { rate } => Duration::from_secs_f64(plan.connections as f64 / rate),
        Pacing::Closed => Duration::ZERO,
    };
    // Spread the connections' schedules over one interval.
    let mut next_intended = t0 + interval.mul_f64(conn.index as f64 / plan.connections as f64);
    let mut issued = 0u64;
    let mut out: Vec<u8> = Vec::with_capacity(RECV_CHUNK_BYTES);
    let mut vbuf: Vec<u8> = Vec::new();
    loop {
        if conn.st.broken.get() {
            // A server that announced the close is reconnected at once;
            // one that failed is given a moment.
            let announced = conn.st.closed_by_server.get() && conn.st.inflight.borrow().is_empty();
            conn.detach(&ctx).await;
            let now = Instant::now();
            if end.is_some_and(|e| now >= e) || quota.is_some_and(|q| issued >= q) {
                break;
            }
            if !announced {
                glommio::timer::sleep(RECONNECT_DELAY).await;
            }
            match open(&plan, false).await {
                Ok(sock) => conn.attach(sock, &ctx),
                Err(e) => {
                    tracing::debug!(error = %e, "reconnect failed");
                    if !preload && Instant::now() >= warmup_end {
                        ctx.stats.borrow_mut().error("connect");
                    }
                    conn.st.broken.set(true);
                }
            }
            continue;
        }
        let now = Instant::now();
        let out_of_time = hard_stop.is_some_and(|h| now >= h);
        let finished = out_of_time
            || quota.is_some_and(|q| issued >= q)
            || match (pacing, end) {
                (Pacing::Closed, Some(e)) => now >= e,
                // Requests still due shortly after the window closes are
                // not sent; they are counted as unsent below.
                (Pacing::Open { .. }, Some(e)) => next_intended >= e || now >= e + OPEN_LOOP_SEND_GRACE,
                (_, None) => false,
            };
        let inflight = conn.st.inflight.borrow().len();
        if finished {
            if inflight == 0 {
                break;
            }
            conn.st.changed().await;
            continue;
        }
        let room = match pacing {
            Pacing::Closed if inflight > 0 => 0,
            _ => pipeline.saturating_sub(inflight),
        };
        if room == 0 {
            conn.st.changed().await;
            continue;
        }
        if matches!(pacing, Pacing::Open { .. }) && next_intended > now {
            glommio::timer::sleep(next_intended - now).await;
            continue;
        }
        out.clear();
        let mut built = 0;
        while built < room {
            let start = match pacing {
                Pacing::Closed => now,
                Pacing::Open { .. } => {
                    if next_intended > now || end.is_some_and(|e| next_intended >= e) {
                        break;
                    }
                    let s = next_intended;
                    next_intended += interval;
                    s
                }
            };
            let record = !preload && start >= warmup_end;
            if preload || record {
                if quota.is_some_and(|q| issued >= q) {
                    break;
                }
                issued += 1;
            }
            let inserted = shared.acked.load(Ordering::Relaxed);
            let (op, key) = if preload {
                (OpKind::Set, preload_keys.choose(&mut conn.rng, 0))
            } else {
                let op = plan.mix.choose(&mut conn.rng);
                let key = match op {
                    OpKind::Insert => plan.keyspace + shared.inserted.fetch_add(1, Ordering::Relaxed),
                    _ => conn.chooser.choose(&mut conn.rng, inserted),
                };
                (op, key)
            };
            let value: &[u8] = if op.writes() {
                let len = plan.value_size.choose(&mut conn.rng);
                if plan.verify {
                    vbuf.clear();
                    Values::write_checked(&mut vbuf, key, conn.rng.gen(), len);
                    &vbuf
                } else {
                    ctx.values.plain(len)
                }
            } else {
                &[]
            };
            let scan_len = if op == OpKind::Scan {
                conn.rng.gen_range(1..=plan.scan_max.max(1))
            } else {
                0
            };
            let replies = conn.codec.encode(
                &Request {
                    op,
                    key,
                    scan_len,
                    value,
                },
                &mut out,
            );
            conn.st.inflight.borrow_mut().push_back(Pending {
                start,
                sent: now,
                op,
                key,
                replies_left: replies,
                first: true,
                record,
                expect_present: plan.verify && !plan.mix.contains(OpKind::Del) && shared.is_written(key),
                error: None,
                preload,
            });
            built += 1;
        }
        if built == 0 {
            // Nothing due or the quota is spent; the checks above decide.
            if quota.is_some_and(|q| issued >= q) {
                continue;
            }
            futures_lite::future::yield_now().await;
            continue;
        }
        if preload {
            shared.preload_done.fetch_add(built as u64, Ordering::Relaxed);
        }
        let sock = conn.st.sock.borrow().clone();
        let Some(sock) = sock else {
            conn.st.broken.set(true);
            continue;
        };
        match sock.send_all(std::mem::take(&mut out)).await {
            Ok(buf) => out = buf,
            Err(_) => {
                sock.shutdown();
                conn.st.broken.set(true);
            }
        }
    }
    // Open loop: requests that fell due in the measured window but were
    // never sent (the generator or the server fell behind the schedule)
    // are counted, not silently dropped.
    if let (Pacing::Open { .. }, Some(e), false) = (pacing, end, preload) {
        if next_intended < e && !interval.is_zero() {
            let from = next_intended.max(warmup_end);
            // Due times are `from + k * interval` (exact in nanoseconds).
            let unsent = e
                .saturating_duration_since(from)
                .as_nanos()
                .div_ceil(interval.as_nanos()) as u64;
            ctx.stats.borrow_mut().unsent += unsent;
        }
    }
    conn
}
