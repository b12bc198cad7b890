//! The server's per-shard state and the messages shards send each other.
//!
//! [`Shard`] is what each core owns: its Redis database, its listeners,
//! its clients and its counters. It answers [`ShardRequest`]s from other
//! shards (and from itself, directly) through the runtime's router; a
//! connection's [`session`] decides which shard runs what.

pub mod admin_backend;
pub mod info;
mod join;
pub mod pubsub;
pub mod session;

use hashbrown::HashMap;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use lumadb_engine::db::{EngineStats, MemoryUsage};
use lumadb_shard::logging::Logging;
use lumadb_shard::router::Service;
use lumadb_shard::runtime::{ShardApp, ShardCtx};
use lumadb_shard::storage::DmaStorage;

use crate::redis::blocking::{PopFrom, Popped};
use crate::redis::cmd::{keyspace, list, zset};
use crate::redis::db::{CmdError, Db};
use crate::redis::exec;
use crate::redis::keys::Kind;
use crate::redis::prefetch;
use crate::redis::store::{LockGuard, Store};
use crate::resp::{command, CommandSpec, Reply};

/// How often the active expiry cycle runs on each shard.
pub const ACTIVE_EXPIRE_INTERVAL: Duration = Duration::from_millis(100);
/// How often a blocked client's wait re-checks its keys on its own (a
/// safety net: writes wake it at once).
pub const WAIT_RECHECK_INTERVAL: Duration = Duration::from_millis(100);
/// Most keys one expiry cycle reclaims.
pub const ACTIVE_EXPIRE_KEYS_MAX: usize = 256;
/// While cycles find a full load of expired keys, they run again at once,
/// for up to this long per [`ACTIVE_EXPIRE_INTERVAL`] (a quarter of the
/// core, as Redis's active expiry allows itself).
pub const ACTIVE_EXPIRE_BUDGET: Duration = Duration::from_millis(25);

/// Which shard owns `key`.
pub fn shard_of(key: &[u8], shards: usize) -> usize {
    (xxhash_rust::xxh3::xxh3_64(key) % shards as u64) as usize
}

/// What one shard asks another.
pub enum ShardRequest {
    /// Run commands (each: name first) in order, each alone.
    Run(Vec<(&'static CommandSpec, Vec<Bytes>)>),
    /// Take a transaction's locks on this shard and check its WATCHes;
    /// `whole`: lock the whole shard (the transaction flushes it).
    /// Without `wait`, a keyed lock answers `Busy` (and holds nothing)
    /// where it would have to wait: locks asked of several shards at
    /// once, which must not wait on each other in different orders.
    Lock {
        txid: u64,
        keys: Vec<(Vec<u8>, bool)>,
        watches: Vec<(Vec<u8>, u64)>,
        whole: bool,
        wait: bool,
    },
    /// Run commands of a locked transaction, in order, at the
    /// transaction's time (`now_ms`, Unix ms) when it has one; `Replies`.
    /// Under transaction `txid`'s locks on this shard, their writes are
    /// made durable at `Unlock`, once for the whole transaction, instead
    /// of before the replies.
    /// With `unlock`, then releases the transaction here as `Unlock`
    /// does (a storage error replaces every reply).
    RunLocked {
        cmds: Vec<Vec<Bytes>>,
        now_ms: Option<u64>,
        txid: Option<u64>,
        unlock: bool,
    },
    /// Release a transaction's locks, then wait until its writes are
    /// durable: `Done`, or the storage error as a `Reply`.
    Unlock(u64),
    Watch(Vec<u8>),
    Unwatch(Vec<Vec<u8>>),
    /// The keyless reads (KEYS, a SCAN step, RANDOMKEY, DBSIZE) take the
    /// shard gate exclusively, as a flush does, so they never see a
    /// transaction half done; `in_tx`: inside a transaction, whose own
    /// locks may hold the gate, they take nothing.
    Keys {
        pattern: Bytes,
        in_tx: bool,
    },
    /// One SCAN step on this shard: `token` 0 starts, others resume where
    /// this shard's earlier step stopped.
    Scan {
        token: u64,
        pattern: Option<Bytes>,
        kind: Option<Kind>,
        count: usize,
        in_tx: bool,
    },
    RandomKey {
        in_tx: bool,
    },
    DbSize {
        in_tx: bool,
    },
    /// FLUSHALL on this shard, after every keyed command in flight
    /// (`locked`: inside a transaction that holds the whole shard).
    Flush {
        locked: bool,
        txid: Option<u64>,
    },
    /// Pop up to `count` from the first non-empty list or sorted set
    /// among `keys` (all on this shard, in the client's order); `locked`
    /// inside a transaction that holds the keys' locks.
    Pop {
        keys: Vec<Bytes>,
        from: PopFrom,
        count: u64,
        locked: bool,
        txid: Option<u64>,
    },
    /// Wait, without popping, until one of `keys` (all on this shard) is a
    /// non-empty list (`zset`: sorted set), `timeout` passes or
    /// [`ShardRequest::CancelWait`] names `id`. Answers `Waited(ready)`.
    WaitNonEmpty {
        id: u64,
        keys: Vec<Bytes>,
        zset: bool,
        timeout: Option<Duration>,
    },
    /// End wait `id` on this shard (its client woke elsewhere or left).
    CancelWait(u64),
    /// Read a key whole (under a transaction's locks, at its time) to
    /// move it.
    Export {
        key: Vec<u8>,
        now_ms: Option<u64>,
        txid: Option<u64>,
    },
    /// Write a moved key (under a transaction's locks).
    Import {
        key: Vec<u8>,
        value: keyspace::ExportedKey,
        nx: bool,
        txid: Option<u64>,
    },
    Stats,
    SetReadOnly(bool),
    Compact,
    SetSlowLog(u64),
    /// A new `requirepass` (empty: none).
    SetRequirePass(String),
    /// A new idle timeout, in seconds (0: none).
    SetIdleTimeout(u64),
    /// `maxclients` over the whole server (CONFIG SET, PATCH /admin/config).
    SetMaxClients(u64),
    ClientList,
    /// CONFIG RESETSTAT: INFO's counters start again from zero (the
    /// Prometheus metrics stay monotonic).
    ResetStats,
    /// Deliver each (channel, message) to this shard's subscribers, in
    /// order; answers `Counts` (receivers per message).
    Publish(Vec<(Bytes, Bytes)>),
    /// Channels with subscribers on this shard (matching a pattern).
    PubSubChannels(Option<Bytes>),
    /// Subscribers on this shard per channel; answers `Counts`.
    PubSubNumSub(Vec<Bytes>),
    /// Patterns with subscribers on this shard.
    PubSubPatterns,
}

pub enum ShardResponse {
    Replies(Vec<Reply>),
    Reply(Reply),
    Locked {
        clean: bool,
    },
    /// A `Lock` without `wait` found a lock taken or asked for.
    Busy,
    Done,
    Stamp(u64),
    Keys(Result<Vec<Bytes>, Reply>),
    /// Keys found and the token to resume with (`None`: shard done).
    Scanned(Result<(Vec<Bytes>, Option<u64>), Reply>),
    Count(u64),
    Popped(Result<Option<Popped>, Reply>),
    /// A wait ended: `true` when one of its keys is non-empty.
    Waited(bool),
    Exported(Result<Option<keyspace::ExportedKey>, Reply>),
    Stats(Box<ShardStats>),
    Text(String),
    Counts(Vec<u64>),
}

/// One shard's numbers, for INFO, /status and /metrics.
pub struct ShardStats {
    pub shard: usize,
    pub cpu: usize,
    pub numa_node: usize,
    pub keys: u64,
    pub expires: u64,
    pub expired_keys: u64,
    pub connections_current: u64,
    pub blocked_clients: u64,
    /// Keys of this shard that blocked clients wait on.
    pub blocking_keys: u64,
    pub connections_total: u64,
    pub commands: Vec<(String, u64, u64)>,
    pub latency_us: Histogram<u64>,
    pub engine: EngineStats,
    pub memory: MemoryUsage,
    pub memory_limit_bytes: u64,
    pub poisoned: Option<String>,
    pub read_only: bool,
    pub stalls: u64,
    pub xcore_sent: u64,
    pub rejected_connections: u64,
    /// The counters at the last CONFIG RESETSTAT, which INFO subtracts.
    pub info_baseline: InfoCounters,
}

/// The counters INFO's stats section shows: a shard's now
/// ([`ShardStats::info_counters`]) or as they were at a CONFIG RESETSTAT
/// (`info_baseline`).
#[derive(Debug, Clone, Copy, Default)]
pub struct InfoCounters {
    pub connections_total: u64,
    pub commands_processed: u64,
    pub rejected_connections: u64,
    pub expired_keys: u64,
    pub xcore_sent: u64,
    pub stalls: u64,
}

impl ShardStats {
    /// Commands run here so far, successful or not.
    pub fn commands_processed(&self) -> u64 {
        self.commands.iter().map(|c| c.1 + c.2).sum()
    }

    /// INFO's counters now (from the start, not from a reset).
    pub fn info_counters(&self) -> InfoCounters {
        InfoCounters {
            connections_total: self.connections_total,
            commands_processed: self.commands_processed(),
            rejected_connections: self.rejected_connections,
            expired_keys: self.expired_keys,
            xcore_sent: self.xcore_sent,
            stalls: self.stalls,
        }
    }
}

/// A connected client, for CLIENT LIST.
pub struct ClientInfo {
    pub id: u64,
    pub addr: SocketAddr,
    pub name: RefCell<Bytes>,
    pub connected_at: std::time::Instant,
    pub last_command: RefCell<&'static str>,
    pub last_active: Cell<std::time::Instant>,
    pub resp3: Cell<bool>,
    /// Commands queued by MULTI, or -1 outside a transaction.
    pub multi: Cell<i64>,
    /// Waiting in a blocking command (BLPOP, BZPOPMIN, BLMOVE, ...).
    pub blocked: Cell<bool>,
    /// Channels and patterns subscribed to (CLIENT LIST `sub=`, `psub=`).
    pub sub: Cell<u64>,
    pub psub: Cell<u64>,
}

/// Process-wide settings every shard reads at start.
#[derive(Clone)]
pub struct ServerSettings {
    pub logging: Option<Logging>,
    pub redis_addr: Option<SocketAddr>,
    pub http_addr: Option<SocketAddr>,
}

/// One core's server state. See the module doc.
pub struct Shard {
    pub ctx: Rc<ShardCtx<Shard>>,
    pub db: Rc<Db<DmaStorage>>,
    pub settings: ServerSettings,
    pub limits: crate::resp::Limits,
    pub read_only: Cell<bool>,
    pub slow_query_ms: Cell<u64>,
    /// The password AUTH asks for (`server.requirepass`; empty: none).
    /// CONFIG SET changes it on every shard; clients already logged in
    /// stay logged in, as with Redis.
    pub requirepass: RefCell<Rc<str>>,
    /// Seconds an idle client is kept (`server.idle_timeout_secs`, Redis's
    /// `timeout`; 0: forever); CONFIG SET changes it.
    pub idle_timeout_secs: Cell<u64>,
    pub clients: RefCell<BTreeMap<u64, Rc<ClientInfo>>>,
    next_client: Cell<u64>,
    pub connections_total: Cell<u64>,
    pub rejected_connections: Cell<u64>,
    commands: RefCell<HashMap<&'static str, (u64, u64)>>,
    info_baseline: Cell<InfoCounters>,
    latency_us: RefCell<Histogram<u64>>,
    /// Each open transaction's locks and its writes held back until it
    /// ends ([`Store::hold`](crate::redis::store::Store::hold)).
    tx_locks: RefCell<HashMap<u64, (LockGuard, crate::redis::store::Held)>>,
    next_txid: Cell<u64>,
    /// Requests being served; shutdown waits for them.
    pub in_flight: Cell<u64>,
    pub stopping: Cell<bool>,
    /// `max_clients`: clients allowed over all shards.
    pub max_clients: Cell<u64>,
    /// This shard's even split of `max_clients`.
    pub max_clients_here: Cell<u64>,
    /// This shard's connections' Pub/Sub subscriptions.
    pub pubsub: RefCell<pubsub::Registry>,
}

impl Shard {
    /// Builds shard state on its own core (the runtime's factory).
    pub async fn create(ctx: Rc<ShardCtx<Shard>>, settings: ServerSettings) -> Result<Rc<Shard>, String> {
        let engine = ctx.engine.clone();
        let ks = engine
            .keyspace(lumadb_engine::db::DEFAULT_KEYSPACE)
            .map_err(|e| e.to_string())?;
        let store = Store::new(engine, ks);
        lumadb_shard::conn::spawn(store.clone().run_committer());
        let db = Db::open(store).await.map_err(|e| e.to_string())?;
        let server = &ctx.config.server;
        let limits = crate::resp::Limits {
            bulk_bytes_max: server.max_bulk_bytes.0 as usize,
            multibulk_count_max: server.max_multibulk_count as usize,
            query_buffer_bytes_max: server.client_query_buffer_bytes.0 as usize,
            ..crate::resp::Limits::default()
        };
        let shards = ctx.shards as u64;
        let max_clients = server.max_clients;
        let max_clients_here = max_clients.div_ceil(shards);
        let shard = Rc::new(Shard {
            read_only: Cell::new(server.read_only),
            slow_query_ms: Cell::new(server.slow_query_ms),
            requirepass: RefCell::new(Rc::from(server.requirepass.as_str())),
            idle_timeout_secs: Cell::new(server.idle_timeout_secs),
            limits,
            ctx,
            db,
            settings,
            clients: RefCell::new(BTreeMap::new()),
            next_client: Cell::new(0),
            connections_total: Cell::new(0),
            rejected_connections: Cell::new(0),
            commands: RefCell::new(HashMap::new()),
            info_baseline: Cell::new(InfoCounters::default()),
            latency_us: RefCell::new(Histogram::new_with_bounds(1, 60_000_000, 2).map_err(|e| e.to_string())?),
            tx_locks: RefCell::new(HashMap::new()),
            next_txid: Cell::new(0),
            in_flight: Cell::new(0),
            stopping: Cell::new(false),
            max_clients: Cell::new(max_clients),
            max_clients_here: Cell::new(max_clients_here),
            pubsub: RefCell::new(pubsub::Registry::default()),
        });
        let s = shard.clone();
        lumadb_shard::conn::spawn(async move {
            while !s.stopping.get() {
                lumadb_shard::conn::sleep(ACTIVE_EXPIRE_INTERVAL).await;
                let started = Instant::now();
                // One cycle reclaims 256 keys: a steady stream of expiring
                // keys outran a cycle per interval (2,560 keys a second).
                while !s.stopping.get() {
                    let now = s.db.now_ms();
                    match keyspace::active_expire_cycle(&s.db, now, ACTIVE_EXPIRE_KEYS_MAX).await {
                        Ok(n) if n == ACTIVE_EXPIRE_KEYS_MAX && started.elapsed() < ACTIVE_EXPIRE_BUDGET => {
                            lumadb_shard::conn::yield_if_needed().await
                        }
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(shard = s.id(), error = ?e.into_reply(), "active expiry failed");
                            break;
                        }
                    }
                }
            }
        });
        Ok(shard)
    }

    pub fn id(&self) -> usize {
        self.ctx.slot.shard
    }

    pub fn shards(&self) -> usize {
        self.ctx.shards
    }

    /// A client id unique in the process: shard in the low bits.
    pub fn new_client_id(&self) -> u64 {
        let n = self.next_client.get() + 1;
        self.next_client.set(n);
        n * self.shards() as u64 + self.id() as u64
    }

    /// A transaction id unique in the process.
    pub fn new_txid(&self) -> u64 {
        let n = self.next_txid.get() + 1;
        self.next_txid.set(n);
        n * self.shards() as u64 + self.id() as u64
    }

    /// Counts one command and its latency; logs it to `slow-query.log`
    /// past the threshold.
    pub fn record(&self, name: &'static str, ok: bool, micros: u64) {
        // Time spent blocked waiting (BLPOP) is not slowness (as Redis's
        // slowlog).
        if micros >= self.slow_query_ms.get().saturating_mul(1000)
            && !command::lookup(name.as_bytes()).is_some_and(|s| s.is_blocking())
        {
            tracing::info!(target: "lumadb::slow", shard = self.id(), command = name, duration_us = micros, "slow command");
        }
        let mut c = self.commands.borrow_mut();
        let e = c.entry(name).or_insert((0, 0));
        if ok {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
        let _ = self.latency_us.borrow_mut().record(micros.max(1));
    }

    fn stats(&self) -> ShardStats {
        let engine = self.ctx.engine.stats();
        let opts = self.ctx.engine.options();
        ShardStats {
            shard: self.id(),
            cpu: self.ctx.slot.cpu,
            numa_node: self.ctx.slot.numa_node,
            keys: self.db.key_count(),
            expires: self.db.expires_count(),
            expired_keys: self.db.expired_keys.get(),
            connections_current: self.clients.borrow().len() as u64,
            blocked_clients: self.clients.borrow().values().filter(|c| c.blocked.get()).count() as u64,
            blocking_keys: self.db.waiters.borrow().keys_waited() as u64,
            connections_total: self.connections_total.get(),
            commands: self
                .commands
                .borrow()
                .iter()
                .map(|(k, (ok, err))| (k.to_string(), *ok, *err))
                .collect(),
            latency_us: self.latency_us.borrow().clone(),
            engine,
            memory: self.ctx.engine.memory(),
            memory_limit_bytes: (opts.memtable_size * (opts.max_immutable_memtables + 1)
                + opts.block_cache_size
                + opts.row_cache_size) as u64,
            poisoned: self.ctx.engine.poisoned(),
            read_only: self.read_only.get(),
            stalls: self.ctx.stalls.load(std::sync::atomic::Ordering::Relaxed),
            xcore_sent: self.ctx.router.sent_total(),
            rejected_connections: self.rejected_connections.get(),
            info_baseline: self.info_baseline.get(),
        }
    }

    /// Runs one command on this shard, refusing writes in read-only mode,
    /// up to the wait for its writes' durability ([`Shard::answer`]), and
    /// records its run time: as Redis's SLOWLOG and command statistics,
    /// that time leaves out the wait for the disk, which one fdatasync
    /// shares among every write of a batch. `clock` is the end time of
    /// the previous command of the same batch (or the batch's start): one
    /// clock read per command times them all.
    pub async fn run_command(&self, spec: &'static CommandSpec, args: &[Bytes], clock: &Cell<Instant>) -> Executed {
        let started = clock.get();
        let ran = if spec.is_write() { self.refuse_write() } else { None };
        let ran = match ran {
            Some(r) => Err(r),
            None => Ok(exec::run_deferred(&self.db, spec, args).await),
        };
        let now = Instant::now();
        clock.set(now);
        let micros = now.saturating_duration_since(started).as_micros() as u64;
        let failed = match &ran {
            Ok(ran) => ran.is_error(),
            Err(_) => true,
        };
        self.record(spec.name, !failed, micros);
        ran
    }

    /// The replies of a batch's commands run by [`Shard::run_command`],
    /// once their writes are durable. The waits resolve together: one
    /// sync (or group) covers every write of the batch.
    pub async fn answer(executed: Vec<Executed>) -> Vec<Reply> {
        let mut replies = Vec::with_capacity(executed.len());
        for e in executed {
            replies.push(Self::answer_one(e).await);
        }
        replies
    }

    /// [`Shard::answer`] for one command.
    pub async fn answer_one(executed: Executed) -> Reply {
        match executed {
            Ok(ran) => ran.reply().await,
            Err(refused) => refused,
        }
    }

    /// The error a write gets in read-only mode or on a poisoned shard.
    pub fn refuse_write(&self) -> Option<Reply> {
        if self.read_only.get() {
            return Some(Reply::error(crate::resp::errors::READONLY_REPLICA));
        }
        self.ctx.engine.poisoned().map(|cause| {
            Reply::error(format!(
                "MISCONF shard {} refuses writes after a storage failure: {cause}",
                self.id()
            ))
        })
    }

    async fn run_locked(&self, args: &[Bytes], now_ms: Option<u64>, txid: Option<u64>) -> Reply {
        let Some(spec) = command::lookup(&args[0]) else {
            return Reply::Error(crate::resp::errors::unknown_command(args));
        };
        if spec.is_write() {
            if let Some(r) = self.refuse_write() {
                return r;
            }
        }
        let mut tx = self.db.store.tx();
        if let Some(now) = now_ms {
            tx.set_clock(now);
        }
        let result = exec::execute(&self.db, &mut tx, spec, args).await;
        exec::touch_written(&self.db, &tx, spec, args);
        // Under a transaction's locks the writes join the transaction's
        // held batch (durable, all together, at `Unlock`); the next command
        // sees them through the store's overlay.
        match (result, self.commit_for(tx, txid).wait().await) {
            (Ok(r), Ok(())) => r,
            (Err(e), _) => e.into_reply(),
            (Ok(_), Err(e)) => CmdError::Store(e).into_reply(),
        }
    }

    /// Releases transaction `txid`'s locks here, then waits until its
    /// writes are durable; the storage error if that fails.
    async fn unlock(&self, txid: u64) -> Option<Reply> {
        let (guard, held) = self.tx_locks.borrow_mut().remove(&txid)?;
        // Visible already; the engine gets them before the keys' next
        // writers, who queue behind them.
        let durable = self.db.store.release(held);
        drop(guard);
        durable.wait().await.err().map(|e| CmdError::Store(e).into_reply())
    }

    /// For a keyless read: the shard gate, exclusively, once every keyed
    /// command and transaction in flight here is done (none inside a
    /// transaction: see [`ShardRequest::Keys`]).
    async fn settled(&self, in_tx: bool) -> Option<LockGuard> {
        if in_tx {
            None
        } else {
            Some(self.db.store.locks.lock_shard().await)
        }
    }

    /// Commits `tx`: into transaction `txid`'s held writes when it holds
    /// locks on this shard (durable at its `Unlock`: the handle returned
    /// is ready), else on its own.
    fn commit_for(
        &self,
        tx: crate::redis::store::Tx<'_, DmaStorage>,
        txid: Option<u64>,
    ) -> crate::redis::store::Durable {
        if let Some(t) = txid {
            if let Some((_, held)) = self.tx_locks.borrow_mut().get_mut(&t) {
                return match tx.commit_held(held) {
                    Ok(()) => crate::redis::store::Durable::ready(),
                    Err(e) => crate::redis::store::Durable::failed(e),
                };
            }
        }
        tx.commit()
    }

    /// Pops from the first non-empty key among `keys` (see
    /// [`ShardRequest::Pop`]).
    async fn pop(
        &self,
        keys: Vec<Bytes>,
        from: PopFrom,
        count: u64,
        locked: bool,
        txid: Option<u64>,
    ) -> Result<Option<Popped>, Reply> {
        let guard = if locked {
            None
        } else {
            Some(self.db.store.locks.lock(keys.iter().map(|k| (k.as_ref(), true))).await)
        };
        let mut tx = self.db.store.tx();
        let popped = match from {
            PopFrom::Left | PopFrom::Right => list::pop_first(&self.db, &mut tx, &keys, count, from == PopFrom::Left)
                .await
                .map(|r| r.map(|(k, items)| Popped::List(k, items))),
            PopFrom::Min | PopFrom::Max => zset::zpop_first(&self.db, &mut tx, &keys, count, from == PopFrom::Max)
                .await
                .map(|r| r.map(|(k, items)| Popped::ZSet(k, items))),
        };
        if let Ok(Some(Popped::List(k, _) | Popped::ZSet(k, _))) = &popped {
            self.db.touch(k);
        }
        let durable = self.commit_for(tx, txid);
        drop(guard);
        match (popped, durable.wait().await) {
            (Ok(p), Ok(())) => Ok(p),
            (Err(e), _) => Err(e.into_reply()),
            (Ok(_), Err(e)) => Err(CmdError::Store(e).into_reply()),
        }
    }

    /// Whether one of `keys` is a non-empty list (`zset`: sorted set).
    async fn any_ready(&self, keys: &[Bytes], zset: bool) -> bool {
        let kind = if zset { Kind::ZSet } else { Kind::List };
        let tx = self.db.store.tx();
        for k in keys {
            if let Ok(Some(meta)) = self.db.meta(&tx, k).await {
                if meta.kind == kind && !meta.is_empty() {
                    return true;
                }
            }
        }
        false
    }

    /// Waits until one of `keys` is non-empty (`true`), or the wait times
    /// out, is cancelled or the shard stops (`false`). Registered before
    /// the first check, so a write in between is seen; deregistered
    /// however it ends (the future may also be dropped).
    async fn wait_non_empty(&self, id: u64, keys: Vec<Bytes>, zset: bool, timeout: Option<Duration>) -> bool {
        let Some(state) = self.db.waiters.borrow_mut().register(id, &keys) else {
            return false;
        };
        struct Deregister<'a>(&'a Db<DmaStorage>, u64);
        impl Drop for Deregister<'_> {
            fn drop(&mut self) {
                self.0.waiters.borrow_mut().remove(self.1);
            }
        }
        let _registered = Deregister(&self.db, id);
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            let woken = state.notify.notified();
            if state.cancelled.get() || self.stopping.get() {
                return false;
            }
            if self.any_ready(&keys, zset).await {
                return true;
            }
            let remaining = match deadline {
                Some(d) => match d.checked_duration_since(std::time::Instant::now()) {
                    Some(r) if !r.is_zero() => r,
                    _ => return false,
                },
                None => WAIT_RECHECK_INTERVAL,
            };
            // The re-check also notices shutdown, and writes that make a
            // key non-empty without signalling it.
            let _ = lumadb_shard::conn::timeout(remaining.min(WAIT_RECHECK_INTERVAL), woken).await;
        }
    }
}

/// A command run on its shard whose reply waits for its writes'
/// durability ([`Shard::answer`]); or the refusal a write got (read-only,
/// poisoned shard).
pub type Executed = Result<exec::Ran, Reply>;

impl Service for Shard {
    type Request = ShardRequest;
    type Response = ShardResponse;

    fn is_long(request: &ShardRequest) -> bool {
        // Waits for locks, which the requests behind them in the queue
        // (a transaction's `Unlock`) may be needed to release.
        matches!(
            request,
            ShardRequest::WaitNonEmpty { .. }
                | ShardRequest::Lock { .. }
                | ShardRequest::Flush { .. }
                | ShardRequest::Keys { .. }
                | ShardRequest::Scan { .. }
                | ShardRequest::RandomKey { .. }
                | ShardRequest::DbSize { .. }
        )
    }

    async fn handle(self: Rc<Self>, request: ShardRequest) -> ShardResponse {
        {
            match request {
                ShardRequest::Run(cmds) => {
                    let clock = Cell::new(Instant::now());
                    if let [(spec, args)] = &cmds[..] {
                        let executed = self.run_command(spec, args, &clock).await;
                        return ShardResponse::Reply(Self::answer_one(executed).await);
                    }
                    prefetch::prefetch_batch(&self.db.store, &cmds);
                    // Independent commands: run them concurrently so their
                    // writes share one group commit; replies keep order.
                    let run = |i: usize| {
                        let (spec, args) = &cmds[i];
                        self.run_command(spec, args, &clock)
                    };
                    let offer = || self.db.store.engine().yield_if_needed();
                    let executed = join::join_in_order(cmds.len(), run, offer).await;
                    ShardResponse::Replies(Self::answer(executed).await)
                }
                ShardRequest::Lock {
                    txid,
                    keys,
                    watches,
                    whole,
                    wait,
                } => {
                    let locks = &self.db.store.locks;
                    let keyed = || keys.iter().map(|(k, ex)| (k.as_slice(), *ex));
                    let guard = if whole {
                        locks.lock_shard().await
                    } else if wait {
                        locks.lock(keyed()).await
                    } else {
                        match locks.try_lock(keyed()) {
                            Some(g) => g,
                            None => return ShardResponse::Busy,
                        }
                    };
                    let clean = watches.iter().all(|(k, stamp)| self.db.watch_stamp(k) == *stamp);
                    let held = self.db.store.hold();
                    if let Some((_, earlier)) = self.tx_locks.borrow_mut().insert(txid, (guard, held)) {
                        // A transaction locks each shard once; keep what
                        // it wrote rather than lose it.
                        debug_assert!(false, "transaction {txid} locked a shard twice");
                        drop(self.db.store.release(earlier));
                    }
                    ShardResponse::Locked { clean }
                }
                ShardRequest::RunLocked {
                    cmds,
                    now_ms,
                    txid,
                    unlock,
                } => {
                    let mut replies = Vec::with_capacity(cmds.len());
                    for (i, args) in cmds.iter().enumerate() {
                        if i > 0 {
                            self.db.store.engine().yield_if_needed().await;
                        }
                        replies.push(self.run_locked(args, now_ms, txid).await);
                    }
                    if let (true, Some(t)) = (unlock, txid) {
                        if let Some(e) = self.unlock(t).await {
                            replies.iter_mut().for_each(|r| *r = e.clone());
                        }
                    }
                    ShardResponse::Replies(replies)
                }
                ShardRequest::Unlock(txid) => match self.unlock(txid).await {
                    None => ShardResponse::Done,
                    Some(e) => ShardResponse::Reply(e),
                },
                ShardRequest::Watch(key) => ShardResponse::Stamp(self.db.watch(&key)),
                ShardRequest::Unwatch(keys) => {
                    for k in keys {
                        self.db.unwatch(&k);
                    }
                    ShardResponse::Done
                }
                ShardRequest::Keys { pattern, in_tx } => {
                    let _settled = self.settled(in_tx).await;
                    ShardResponse::Keys(
                        keyspace::keys_local(&self.db, &pattern)
                            .await
                            .map_err(CmdError::into_reply),
                    )
                }
                ShardRequest::Scan {
                    token,
                    pattern,
                    kind,
                    count,
                    in_tx,
                } => {
                    let _settled = self.settled(in_tx).await;
                    let after = match token {
                        0 => None,
                        t => match self.db.scan_cursor(t) {
                            Some(k) => Some(k),
                            None => {
                                return ShardResponse::Scanned(Err(Reply::error(crate::resp::errors::CURSOR_INVALID)))
                            }
                        },
                    };
                    let r = keyspace::scan_local(&self.db, after.as_deref(), pattern.as_deref(), kind, count).await;
                    ShardResponse::Scanned(
                        r.map(|(keys, resume)| (keys, resume.map(|k| self.db.save_scan_cursor(k, token))))
                            .map_err(CmdError::into_reply),
                    )
                }
                ShardRequest::RandomKey { in_tx } => {
                    let _settled = self.settled(in_tx).await;
                    match keyspace::random_key_local(&self.db).await {
                        Ok(Some(k)) => ShardResponse::Reply(Reply::Bulk(k)),
                        Ok(None) => ShardResponse::Reply(Reply::Null),
                        Err(e) => ShardResponse::Reply(e.into_reply()),
                    }
                }
                ShardRequest::DbSize { in_tx } => {
                    let _settled = self.settled(in_tx).await;
                    ShardResponse::Count(self.db.key_count())
                }
                ShardRequest::Flush { locked, txid } => {
                    if let Some(r) = self.refuse_write() {
                        return ShardResponse::Reply(r);
                    }
                    // A command that read a collection's metadata before
                    // the flush must not write it back after.
                    let _guard = if locked {
                        None
                    } else {
                        Some(self.db.store.locks.lock_shard().await)
                    };
                    let held = txid.is_some_and(|t| self.tx_locks.borrow().contains_key(&t));
                    let commit = |tx: crate::redis::store::Tx<'_, DmaStorage>| self.commit_for(tx, txid);
                    match keyspace::flush_local(&self.db, commit, held).await {
                        Ok(()) => ShardResponse::Reply(Reply::ok()),
                        Err(e) => ShardResponse::Reply(e.into_reply()),
                    }
                }
                ShardRequest::Pop {
                    keys,
                    from,
                    count,
                    locked,
                    txid,
                } => {
                    if let Some(r) = self.refuse_write() {
                        return ShardResponse::Popped(Err(r));
                    }
                    ShardResponse::Popped(self.pop(keys, from, count, locked, txid).await)
                }
                ShardRequest::WaitNonEmpty {
                    id,
                    keys,
                    zset,
                    timeout,
                } => ShardResponse::Waited(self.wait_non_empty(id, keys, zset, timeout).await),
                ShardRequest::CancelWait(id) => {
                    self.db.waiters.borrow_mut().cancel(id);
                    ShardResponse::Done
                }
                ShardRequest::Export { key, now_ms, txid } => {
                    let mut tx = self.db.store.tx();
                    if let Some(now) = now_ms {
                        tx.set_clock(now);
                    }
                    let r = keyspace::export_key(&self.db, &mut tx, &key).await;
                    // Reading may reclaim an expired key: make that durable.
                    let _ = self.commit_for(tx, txid).wait().await;
                    ShardResponse::Exported(r.map_err(CmdError::into_reply))
                }
                ShardRequest::Import { key, value, nx, txid } => {
                    if let Some(r) = self.refuse_write() {
                        return ShardResponse::Reply(r);
                    }
                    let mut tx = self.db.store.tx();
                    let r = keyspace::import_key(&self.db, &mut tx, &key, value, nx).await;
                    let durable = self.commit_for(tx, txid).wait().await;
                    ShardResponse::Reply(match (r, durable) {
                        (Ok(reply), Ok(())) => reply,
                        (Err(e), _) => e.into_reply(),
                        (Ok(_), Err(e)) => CmdError::Store(e).into_reply(),
                    })
                }
                ShardRequest::Stats => ShardResponse::Stats(Box::new(self.stats())),
                ShardRequest::SetReadOnly(on) => {
                    self.read_only.set(on);
                    ShardResponse::Done
                }
                ShardRequest::Compact => match self.ctx.engine.compact_all().await {
                    Ok(()) => ShardResponse::Done,
                    Err(e) => ShardResponse::Text(e.to_string()),
                },
                ShardRequest::SetSlowLog(ms) => {
                    self.slow_query_ms.set(ms);
                    ShardResponse::Done
                }
                ShardRequest::SetIdleTimeout(secs) => {
                    self.idle_timeout_secs.set(secs);
                    ShardResponse::Done
                }
                ShardRequest::SetRequirePass(password) => {
                    *self.requirepass.borrow_mut() = Rc::from(password.as_str());
                    ShardResponse::Done
                }
                ShardRequest::SetMaxClients(n) => {
                    self.max_clients.set(n);
                    self.max_clients_here.set(n.div_ceil(self.shards() as u64));
                    ShardResponse::Done
                }
                ShardRequest::ClientList => ShardResponse::Text(info::client_list(&self)),
                ShardRequest::ResetStats => {
                    self.info_baseline.set(self.stats().info_counters());
                    ShardResponse::Done
                }
                ShardRequest::Publish(messages) => {
                    let registry = self.pubsub.borrow();
                    ShardResponse::Counts(messages.iter().map(|(c, m)| registry.publish(c, m)).collect())
                }
                ShardRequest::PubSubChannels(pattern) => {
                    ShardResponse::Keys(Ok(self.pubsub.borrow().channels(pattern.as_deref())))
                }
                ShardRequest::PubSubNumSub(channels) => {
                    let registry = self.pubsub.borrow();
                    ShardResponse::Counts(channels.iter().map(|c| registry.numsub(c)).collect())
                }
                ShardRequest::PubSubPatterns => ShardResponse::Keys(Ok(self.pubsub.borrow().patterns())),
            }
        }
    }
}

impl ShardApp for Shard {
    fn start(self: &Rc<Self>) -> Result<(), String> {
        if let Some(addr) = self.settings.redis_addr {
            let listener = lumadb_shard::conn::Listener::bind(addr).map_err(|e| e.to_string())?;
            let shard = self.clone();
            lumadb_shard::conn::spawn(async move { session::accept_loop(shard, listener).await });
        }
        if self.id() == 0 {
            if let Some(addr) = self.settings.http_addr {
                let listener = lumadb_shard::conn::Listener::bind(addr).map_err(|e| e.to_string())?;
                let shard = self.clone();
                lumadb_shard::conn::spawn(async move { admin_backend::accept_loop(shard, listener).await });
            }
        }
        Ok(())
    }

    fn drain(self: &Rc<Self>) -> impl std::future::Future<Output = ()> {
        self.stopping.set(true);
        let s = self.clone();
        async move {
            while s.in_flight.get() > 0 {
                lumadb_shard::conn::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    fn quiesce(self: &Rc<Self>) -> impl std::future::Future<Output = ()> {
        let s = self.clone();
        async move {
            s.db.store.close();
            while s.db.store.queued() > 0 {
                lumadb_shard::conn::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}
