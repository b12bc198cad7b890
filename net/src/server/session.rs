//! One Redis client connection: read, decode, route, answer.
//!
//! The shard that accepted the connection serves it. Each read decodes
//! every complete request in the buffer (up to [`PIPELINE_BATCH_MAX`]);
//! consecutive single-shard commands are grouped per owning shard and
//! sent as one message each, all shards at once, and the replies are
//! written back in request order. Commands that span shards (MGET, MSET,
//! DEL, EXISTS, ...) are split by shard and gathered; whole-keyspace
//! commands (KEYS, SCAN, DBSIZE, FLUSHDB) visit every shard; MULTI/EXEC
//! takes every key lock it needs, shard by shard in ascending order (so
//! two transactions never deadlock), runs, then releases.
//!
//! While a batch is in flight the connection reads nothing more: a slow
//! shard or a full cross-shard queue stops this client's reads rather
//! than growing a buffer. Replies, though, are sent in the background
//! while the connection goes on reading and running requests (as Redis
//! buffers replies): a client that writes a long pipeline before reading
//! any reply would otherwise never finish writing it. Only past
//! [`CONN_REPLY_BACKLOG_BYTES_MAX`] of unsent replies does it stop reading.
//!
//! Submodules hold what the session answers itself: `connection` (AUTH,
//! HELLO's login, SHUTDOWN), `manage` (CLIENT, CONFIG), `blocking`
//! (blocking pops across shards) and `pubsub` (subscriptions).

mod blocking;
mod connection;
mod manage;
mod multi;
mod pubsub;

use std::collections::BTreeMap;
use std::pin::pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::future::Either;
use lumadb_shard::conn::{Connection, Listener};

use super::{info, shard_of, ClientInfo, Shard, ShardRequest, ShardResponse};
use crate::redis::keys::Kind;
use crate::resp::{command, errors, CommandSpec, Decoder, Encoder, Reply};

/// Most requests decoded before the batch is executed and answered.
pub const PIPELINE_BATCH_MAX: usize = 1024;
/// Bytes of replies buffered before they are written, even mid-batch.
pub const CONN_WRITE_BUF_BYTES_MAX: usize = 1 << 20;
/// Unsent reply bytes past which a connection stops reading requests
/// until its client reads (Redis buffers a normal client's replies
/// without limit).
pub const CONN_REPLY_BACKLOG_BYTES_MAX: usize = 1 << 30;
/// Most keys a SCAN cursor step visits by default.
const SCAN_COUNT_DEFAULT: usize = 10;

pub async fn accept_loop(shard: Rc<Shard>, listener: Listener) {
    loop {
        let conn = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                if shard.stopping.get() {
                    return;
                }
                tracing::warn!(shard = shard.id(), error = %e, "accept failed");
                lumadb_shard::conn::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if shard.stopping.get() {
            return;
        }
        let shard = shard.clone();
        lumadb_shard::conn::spawn(async move { serve(shard, conn).await });
    }
}

async fn serve(shard: Rc<Shard>, mut conn: Connection) {
    if shard.clients.borrow().len() as u64 >= shard.max_clients_here.get() {
        shard.rejected_connections.set(shard.rejected_connections.get() + 1);
        let _ = conn.write_all(format!("-{}\r\n", errors::MAX_CLIENTS).as_bytes()).await;
        conn.close().await;
        return;
    }
    let id = shard.new_client_id();
    let info = Rc::new(ClientInfo {
        id,
        addr: conn.peer_addr(),
        name: std::cell::RefCell::new(Bytes::new()),
        connected_at: Instant::now(),
        last_command: std::cell::RefCell::new("NULL"),
        last_active: std::cell::Cell::new(Instant::now()),
        resp3: std::cell::Cell::new(false),
        multi: std::cell::Cell::new(-1),
        blocked: std::cell::Cell::new(false),
        sub: std::cell::Cell::new(0),
        psub: std::cell::Cell::new(0),
    });
    shard.clients.borrow_mut().insert(id, info.clone());
    shard.connections_total.set(shard.connections_total.get() + 1);
    let mut session = Session {
        shard: shard.clone(),
        info,
        name: Bytes::new(),
        resp3: false,
        authenticated: shard.requirepass.borrow().is_empty(),
        multi: None,
        multi_failed: false,
        clock: None,
        txid: None,
        watches: Vec::new(),
        quit: false,
        close_unanswered: false,
        probe: conn.probe(),
        subs: None,
    };
    let r = session.run(&mut conn).await;
    if let Err(e) = r {
        tracing::debug!(shard = shard.id(), client = id, error = %e, "client connection ended");
    }
    session.pubsub_leave();
    session.unwatch_all().await;
    shard.clients.borrow_mut().remove(&id);
    conn.close().await;
}

/// Marks a client blocked (CLIENT LIST `flags=b`, INFO `blocked_clients`)
/// while it lives, however the wait ends.
struct Blocked<'a>(&'a ClientInfo);

impl<'a> Blocked<'a> {
    fn new(info: &'a ClientInfo) -> Self {
        info.blocked.set(true);
        Blocked(info)
    }
}

impl Drop for Blocked<'_> {
    fn drop(&mut self) {
        self.0.blocked.set(false);
    }
}

struct Session {
    shard: Rc<Shard>,
    info: Rc<ClientInfo>,
    name: Bytes,
    resp3: bool,
    /// Commands queued by MULTI.
    multi: Option<Vec<Vec<Bytes>>>,
    multi_failed: bool,
    /// The time (Unix ms) every command of the running EXEC or cross-shard
    /// command sees, on every shard: no key expires halfway through it.
    clock: Option<u64>,
    /// The transaction whose locks the running EXEC or cross-shard
    /// command holds: its writes are made durable once, at its end.
    txid: Option<u64>,
    /// WATCHed keys: key, owning shard, stamp at WATCH time.
    watches: Vec<(Vec<u8>, usize, u64)>,
    quit: bool,
    /// The server is stopping and the command in hand ends without a
    /// reply: the connection closes (as Redis closes a client blocked in
    /// BLPOP at SHUTDOWN, rather than answer a timeout that cannot be).
    close_unanswered: bool,
    /// Whether the client may run commands: it gave the password
    /// (`server.requirepass`), or none is asked.
    authenticated: bool,
    /// Whether the client is still connected (checked while blocked).
    probe: lumadb_shard::conn::PeerProbe,
    /// Pub/Sub state, from the first (P)SUBSCRIBE on.
    subs: Option<Box<pubsub::Subs>>,
}

/// The name a command is counted and listed under: container commands
/// with their subcommand, as Redis shows them (`client|list`).
fn command_name(args: &[Bytes]) -> &'static str {
    let Some(spec) = command::lookup(&args[0]) else {
        return "unknown";
    };
    let sub = args.get(1).map(|a| a.to_ascii_lowercase()).unwrap_or_default();
    match (spec.name, sub.as_slice()) {
        ("client", b"list") => "client|list",
        ("client", b"setname") => "client|setname",
        ("client", b"getname") => "client|getname",
        ("client", b"id") => "client|id",
        ("client", b"info") => "client|info",
        ("client", b"setinfo") => "client|setinfo",
        ("config", b"get") => "config|get",
        ("config", b"set") => "config|set",
        ("config", b"resetstat") => "config|resetstat",
        ("command", b"count") => "command|count",
        ("command", b"info") => "command|info",
        ("command", b"docs") => "command|docs",
        ("command", b"list") => "command|list",
        ("command", b"getkeys") => "command|getkeys",
        ("pubsub", b"channels") => "pubsub|channels",
        ("pubsub", b"numsub") => "pubsub|numsub",
        ("pubsub", b"numpat") => "pubsub|numpat",
        ("pubsub", b"help") => "pubsub|help",
        ("pubsub", b"shardchannels") => "pubsub|shardchannels",
        ("pubsub", b"shardnumsub") => "pubsub|shardnumsub",
        (name, _) => name,
    }
}

/// One shard's part of a transaction: keys to lock (exclusive or not)
/// and WATCHed keys with their stamps.
type ShardLocks = (Vec<(Vec<u8>, bool)>, Vec<(Vec<u8>, u64)>);

/// Whether `name` is a blocking command (BLPOP and the like: all begin
/// with a B, which spares every other request the table lookup).
fn is_blocking(name: &[u8]) -> bool {
    name.first().is_some_and(|c| c.eq_ignore_ascii_case(&b'b'))
        && command::lookup(name).is_some_and(|s| s.is_blocking())
}

/// What a session waiting for input got ([`Session::next_input`]).
enum Input {
    /// Bytes read (0: the client closed its side).
    Read(usize),
    /// Requests already buffered may run (the reply backlog has room).
    Buffered,
    /// The connection must close: the client idled past the timeout, or
    /// its subscriber mailbox passed its bound.
    Close,
}

/// Where one command of a batch goes.
enum Plan {
    /// All keys on one shard: runs there with others of the batch.
    Shard(usize, &'static CommandSpec),
    /// Needs the session (connection commands, splits, whole keyspace).
    Session,
    /// PUBLISH: runs with the batch's other consecutive PUBLISHes.
    Publish,
}

impl Session {
    async fn run(&mut self, conn: &mut Connection) -> std::io::Result<()> {
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let mut decoder = Decoder::new();
        let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
        // The buffer of the last send, for the next replies.
        let mut spare: Vec<u8> = Vec::new();
        let unauthenticated_limits = crate::resp::Limits {
            unauthenticated: true,
            ..self.shard.limits.clone()
        };
        // A blocking command decoded after others waits for the next batch,
        // so that the replies before it go out before it blocks.
        let mut carried: Option<Vec<Bytes>> = None;
        loop {
            let mut batch = Vec::new();
            let mut fatal = None;
            let mut split = false;
            if let Some(args) = carried.take() {
                batch.push(args);
            }
            // Before the client logs in, one command at a time: the next
            // frame is decoded under the login's limits only once the
            // AUTH before it has run.
            let (limits, batch_max) = if self.authenticated {
                (&self.shard.limits, PIPELINE_BATCH_MAX)
            } else {
                (&unauthenticated_limits, 1)
            };
            while batch.len() < batch_max {
                match decoder.decode(&mut buf, limits) {
                    Ok(Some(req)) => {
                        if req.args.is_empty() {
                            continue;
                        }
                        if !batch.is_empty() && is_blocking(&req.args[0]) {
                            carried = Some(req.args);
                            split = true;
                            break;
                        }
                        batch.push(req.args);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        fatal = Some(e);
                        break;
                    }
                }
            }
            // A full batch may have left complete requests in the buffer:
            // run those before waiting for more bytes, which the client,
            // waiting for its replies, may never send.
            let more_buffered = batch.len() == batch_max || split;
            if !batch.is_empty() {
                self.shard.in_flight.set(self.shard.in_flight.get() + 1);
                self.execute_batch(batch, &mut out).await;
                self.shard.in_flight.set(self.shard.in_flight.get() - 1);
                self.info.last_active.set(Instant::now());
            }
            if let Some(e) = fatal {
                if let Some(reply) = e.to_reply() {
                    reply.encode(self.resp3, &mut out);
                }
                tracing::info!(shard = self.shard.id(), client = self.info.id, error = %e, "closing client after a protocol error");
                conn.write_all(&out).await?;
                return Ok(());
            }
            if self.subs.is_some() {
                if self.mailbox_overflowed() {
                    return Ok(());
                }
                self.drain_mailbox(&mut out);
            }
            if !out.is_empty() && !conn.is_sending() {
                conn.start_send(std::mem::replace(&mut out, std::mem::take(&mut spare)));
            }
            if self.quit || self.shard.stopping.get() {
                conn.write_all(&out).await?;
                return Ok(());
            }
            if more_buffered && out.len() < CONN_REPLY_BACKLOG_BYTES_MAX {
                continue;
            }
            let n = match self
                .next_input(conn, &mut buf, &mut out, &mut spare, more_buffered)
                .await?
            {
                Input::Read(n) => n,
                Input::Buffered => continue,
                Input::Close => return Ok(()),
            };
            if n == 0 {
                // The client sent its last request; it may still read.
                conn.write_all(&out).await?;
                return Ok(());
            }
            // A graceful stop runs what was in flight when it began, and
            // nothing read after that: the shard is about to close its
            // engine, which would refuse the writes.
            if self.shard.stopping.get() {
                conn.write_all(&out).await?;
                return Ok(());
            }
        }
    }

    /// Sends `out` in the background, a send at a time, until there is
    /// input to run: bytes read onto `buf`, or the `buffered` requests once
    /// the reply backlog is below [`CONN_REPLY_BACKLOG_BYTES_MAX`].
    ///
    /// A subscribed client's messages join `out` as they come, after the
    /// replies before them, but only while `out` is small: behind a client
    /// that stops reading they wait in its mailbox, whose bound closes the
    /// connection. Subscribed clients never time out (as Redis).
    async fn next_input(
        &self,
        conn: &mut Connection,
        buf: &mut BytesMut,
        out: &mut Vec<u8>,
        spare: &mut Vec<u8>,
        buffered: bool,
    ) -> std::io::Result<Input> {
        let mailbox = self.subs.as_ref().map(|s| s.mailbox.clone());
        loop {
            // Taken before the checks below: a message queued after them
            // still wakes this wait.
            let woken = mailbox.as_ref().map(|m| m.notify.notified());
            if let Some(m) = &mailbox {
                if m.overflowed() {
                    tracing::info!(
                        shard = self.shard.id(),
                        client = self.info.id,
                        "closing subscriber past the pubsub output buffer limit"
                    );
                    return Ok(Input::Close);
                }
                m.drain_into(&Encoder::new(self.resp3), out, CONN_WRITE_BUF_BYTES_MAX);
            }
            if !conn.is_sending() && !out.is_empty() {
                conn.start_send(std::mem::replace(out, std::mem::take(spare)));
            }
            let room = out.len() < CONN_REPLY_BACKLOG_BYTES_MAX;
            if buffered && room {
                return Ok(Input::Buffered);
            }
            let idle = self.shard.idle_timeout_secs.get();
            let read = room && !buffered;
            let event = match woken {
                Some(woken) => match futures::future::select(pin!(conn.next_event(buf, read)), pin!(woken)).await {
                    Either::Left((r, _)) => r?,
                    // A message or the mailbox's overflow: the next round
                    // writes or closes. A read left waiting stays in flight.
                    Either::Right(_) => continue,
                },
                None if idle > 0 => {
                    // Idle: nothing read and nothing of the replies taken
                    // by the client for that long (as Redis, which counts
                    // writes as activity too). Both waits stay in flight.
                    let idle = Duration::from_secs(idle);
                    let mut deadline = Instant::now() + idle;
                    loop {
                        let wait = deadline.saturating_duration_since(Instant::now());
                        match lumadb_shard::conn::timeout(wait, conn.next_event(buf, read)).await {
                            Some(r) => break r?,
                            None => match conn.send_progressed_at() {
                                Some(at) if at + idle > Instant::now() => deadline = at + idle,
                                _ => return Ok(Input::Close),
                            },
                        }
                    }
                }
                None => conn.next_event(buf, read).await?,
            };
            match event {
                lumadb_shard::conn::ConnEvent::Sent(mut emptied) => {
                    if emptied.capacity() > CONN_WRITE_BUF_BYTES_MAX {
                        emptied = Vec::with_capacity(16 * 1024);
                    }
                    *spare = emptied;
                }
                lumadb_shard::conn::ConnEvent::Read(n) => return Ok(Input::Read(n)),
            }
        }
    }

    fn plan(&self, args: &[Bytes]) -> Plan {
        if self.multi.is_some() || self.pubsub_restricted() || !self.authenticated {
            return Plan::Session;
        }
        match single_shard(args, self.shard.shards()) {
            Some((s, spec)) => Plan::Shard(s, spec),
            None if args.len() == 3 && args[0].eq_ignore_ascii_case(b"publish") => Plan::Publish,
            None => Plan::Session,
        }
    }

    async fn execute_batch(&mut self, batch: Vec<Vec<Bytes>>, out: &mut Vec<u8>) {
        let mut group: Vec<(usize, &'static CommandSpec, Vec<Bytes>)> = Vec::new();
        let mut publishes: Vec<(Bytes, Bytes)> = Vec::new();
        for args in batch {
            match self.plan(&args) {
                Plan::Shard(s, spec) => {
                    if !publishes.is_empty() {
                        self.flush_publish(&mut publishes, out).await;
                    }
                    group.push((s, spec, args))
                }
                Plan::Publish => {
                    self.flush_group(&mut group, out).await;
                    *self.info.last_command.borrow_mut() = "publish";
                    publishes.push((args[1].clone(), args[2].clone()));
                }
                Plan::Session => {
                    self.flush_group(&mut group, out).await;
                    if !publishes.is_empty() {
                        self.flush_publish(&mut publishes, out).await;
                    }
                    let started = Instant::now();
                    let name = command_name(&args);
                    *self.info.last_command.borrow_mut() = name;
                    let reply = self.session_command(args).await;
                    self.record(name, &reply, started);
                    if self.close_unanswered {
                        self.quit = true;
                        return;
                    }
                    reply.encode(self.resp3, out);
                    if self.quit {
                        return;
                    }
                }
            }
        }
        self.flush_group(&mut group, out).await;
        if !publishes.is_empty() {
            self.flush_publish(&mut publishes, out).await;
        }
    }

    /// Counts a command the session ran itself (keyed commands are
    /// counted by the shard that owns their keys).
    fn record(&self, name: &'static str, reply: &Reply, started: Instant) {
        let micros = started.elapsed().as_micros() as u64;
        self.shard.record(name, !matches!(reply, Reply::Error(_)), micros);
        *self.info.last_command.borrow_mut() = name;
    }

    /// Runs a group of single-shard commands: one message per shard, all
    /// shards at once; replies in request order.
    async fn flush_group(&mut self, group: &mut Vec<(usize, &'static CommandSpec, Vec<Bytes>)>, out: &mut Vec<u8>) {
        if group.is_empty() {
            return;
        }
        let names: Vec<&'static str> = group.iter().map(|(_, spec, _)| spec.name).collect();
        let total = names.len();
        let router = self.shard.ctx.router.clone();
        let mut replies: Vec<Option<Reply>> = vec![None; total];
        let first = group[0].0;
        if group.iter().all(|(s, _, _)| *s == first) {
            // The common case: every command on one shard, one message.
            let cmds = group.drain(..).map(|(_, spec, args)| (spec, args)).collect();
            for (i, r) in run_group(&router, first, cmds, total).await.into_iter().enumerate() {
                replies[i] = Some(r);
            }
        } else {
            let mut per_shard: BTreeMap<usize, (Vec<usize>, RunBatch)> = BTreeMap::new();
            for (i, (s, spec, args)) in group.drain(..).enumerate() {
                let e = per_shard.entry(s).or_default();
                e.0.push(i);
                e.1.push((spec, args));
            }
            let calls = per_shard.into_iter().map(|(s, (idx, cmds))| {
                let router = router.clone();
                async move {
                    let n = cmds.len();
                    (idx, run_group(&router, s, cmds, n).await)
                }
            });
            for (idx, rs) in futures::future::join_all(calls).await {
                for (i, r) in idx.into_iter().zip(rs) {
                    replies[i] = Some(r);
                }
            }
        }
        for (name, r) in names.into_iter().zip(replies) {
            let r = r.unwrap_or_else(|| Reply::error("ERR internal routing error"));
            *self.info.last_command.borrow_mut() = name;
            r.encode(self.resp3, out);
        }
    }

    async fn call(&self, shard: usize, req: ShardRequest) -> Result<ShardResponse, Reply> {
        self.shard
            .ctx
            .router
            .call(shard, req)
            .await
            .map_err(|e| Reply::error(format!("ERR {e}")))
    }

    async fn call_all(&self, make: impl Fn() -> ShardRequest) -> Vec<Result<ShardResponse, Reply>> {
        let futs = (0..self.shard.shards()).map(|s| self.call(s, make()));
        futures::future::join_all(futs).await
    }

    async fn run_on(&self, shard: usize, args: Vec<Bytes>) -> Reply {
        let Some(spec) = command::lookup(&args[0]) else {
            return Reply::Error(errors::unknown_command(&args));
        };
        match self.call(shard, ShardRequest::Run(vec![(spec, args)])).await {
            Ok(ShardResponse::Reply(r)) => r,
            Ok(ShardResponse::Replies(mut r)) if r.len() == 1 => r.pop().unwrap_or(Reply::Null),
            Ok(_) => Reply::error("ERR internal routing error"),
            Err(r) => r,
        }
    }

    /// Commands the session itself handles.
    async fn session_command(&mut self, args: Vec<Bytes>) -> Reply {
        let Some(spec) = command::lookup(&args[0]) else {
            if self.multi.is_some() {
                self.multi_failed = true;
            }
            return Reply::Error(errors::unknown_command(&args));
        };
        if !spec.check_arity(args.len()) {
            if self.multi.is_some() {
                self.multi_failed = true;
            }
            return Reply::Error(errors::wrong_arity(spec.name));
        }
        if !self.authenticated && !spec.has_flag("no_auth") {
            return Reply::error(errors::NOAUTH);
        }
        if self.pubsub_restricted() && !pubsub::allowed_when_subscribed(spec.name) {
            if self.multi.is_some() {
                self.multi_failed = true;
            }
            return pubsub::refused_when_subscribed(command_name(&args));
        }
        if self.multi.is_some() && spec.has_flag("no_multi") && !matches!(spec.name, "multi" | "watch") {
            self.multi_failed = true;
            return Reply::error(errors::NOT_IN_MULTI);
        }
        if self.multi.is_some() && !matches!(spec.name, "exec" | "discard" | "multi" | "watch" | "quit" | "reset") {
            // As a read-only Redis replica does: a write is refused when it
            // is queued, and EXEC then aborts.
            if spec.is_write() && self.shard.read_only.get() {
                self.multi_failed = true;
                return Reply::error(errors::READONLY_REPLICA);
            }
            if let Some(q) = self.multi.as_mut() {
                q.push(args);
                self.info.multi.set(q.len() as i64);
            }
            return Reply::Simple(Bytes::from_static(b"QUEUED"));
        }
        let reply = self.dispatch(spec, args, false).await;
        self.info.multi.set(self.multi.as_ref().map_or(-1, |q| q.len() as i64));
        reply
    }

    /// Runs a validated command; `in_exec` inside a transaction (whose
    /// locks are held: keyed commands go to `RunLocked`).
    async fn dispatch(&mut self, spec: &'static CommandSpec, args: Vec<Bytes>, in_exec: bool) -> Reply {
        let upper = |i: usize| args.get(i).map(|a| a.to_ascii_lowercase()).unwrap_or_default();
        match spec.name {
            "ping" if self.pubsub_restricted() => Reply::Array(vec![
                Reply::bulk("pong"),
                args.get(1).cloned().map_or_else(|| Reply::bulk(""), Reply::Bulk),
            ]),
            "ping" => match args.len() {
                1 => Reply::Simple(Bytes::from_static(b"PONG")),
                2 => Reply::Bulk(args[1].clone()),
                _ => Reply::Error(errors::wrong_arity("ping")),
            },
            "echo" => Reply::Bulk(args[1].clone()),
            "quit" => {
                self.quit = true;
                Reply::ok()
            }
            "shutdown" => self.shutdown(&args),
            "select" => match crate::resp::num::parse_i64(&args[1]) {
                Some(0) => Reply::ok(),
                Some(_) => Reply::error(errors::DB_INDEX_OUT_OF_RANGE),
                None => Reply::error(errors::NOT_INTEGER),
            },
            "time" => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                Reply::Array(vec![
                    Reply::bulk(now.as_secs().to_string()),
                    Reply::bulk(now.subsec_micros().to_string()),
                ])
            }
            "hello" => self.hello(&args),
            "auth" => self.auth(&args),
            "reset" => {
                // As Redis: the connection as it was when it opened.
                self.multi = None;
                self.multi_failed = false;
                self.info.multi.set(-1);
                self.unwatch_all().await;
                self.pubsub_leave();
                self.info.sub.set(0);
                self.info.psub.set(0);
                self.resp3 = false;
                self.info.resp3.set(false);
                self.name = Bytes::new();
                self.shard.set_client_name(self.info.id, Bytes::new());
                self.authenticated = self.shard.requirepass.borrow().is_empty();
                Reply::Simple(Bytes::from_static(b"RESET"))
            }
            "client" => self.client(&args).await,
            "command" => match upper(1).as_slice() {
                b"" => command::command_reply(),
                b"count" => command::command_count_reply(),
                b"info" => command::command_info_reply(&args[2..]),
                b"docs" => command::command_docs_reply(&args[2..]),
                b"getkeys" if args.len() >= 4 => command::command_getkeys_reply(&args[2..]),
                b"getkeys" => Reply::Error(errors::wrong_arity("command|getkeys")),
                b"list" => command::command_list_reply(&args[2..]),
                _ => Reply::Error(errors::unknown_subcommand("COMMAND", &args[1])),
            },
            "config" => self.config(&args).await,
            "info" => {
                let stats = self.all_stats().await;
                let sections: Vec<String> = args[1..]
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
                    .collect();
                let pubsub = self.pubsub_totals().await;
                let text = info::render(&self.shard, &stats, pubsub, &sections);
                if self.resp3 {
                    Reply::Verbatim {
                        format: *b"txt",
                        text: Bytes::from(text),
                    }
                } else {
                    Reply::Bulk(Bytes::from(text))
                }
            }
            "dbsize" => {
                let mut n = 0;
                let held = self.hold_all_shards().await;
                let in_tx = self.txid.is_some() || held.is_some();
                let counts = self.call_all(|| ShardRequest::DbSize { in_tx }).await;
                if let Some((txid, locked)) = held {
                    self.unlock_all(txid, locked).await;
                }
                for r in counts {
                    match r {
                        Ok(ShardResponse::Count(c)) => n += c,
                        Err(e) => return e,
                        _ => {}
                    }
                }
                Reply::Int(n as i64)
            }
            "keys" => {
                let mut all = Vec::new();
                let held = self.hold_all_shards().await;
                let in_tx = self.txid.is_some() || held.is_some();
                let keys = || ShardRequest::Keys {
                    pattern: args[1].clone(),
                    in_tx,
                };
                let found = self.call_all(keys).await;
                if let Some((txid, locked)) = held {
                    self.unlock_all(txid, locked).await;
                }
                for r in found {
                    match r {
                        Ok(ShardResponse::Keys(Ok(k))) => all.extend(k.into_iter().map(Reply::Bulk)),
                        Ok(ShardResponse::Keys(Err(e))) | Err(e) => return e,
                        _ => {}
                    }
                }
                Reply::Array(all)
            }
            "scan" => self.scan(&args).await,
            "randomkey" => {
                let shards = self.shard.shards();
                let start = (self.info.id as usize + Instant::now().elapsed().subsec_nanos() as usize) % shards;
                for i in 0..shards {
                    let req = ShardRequest::RandomKey {
                        in_tx: self.txid.is_some(),
                    };
                    match self.call((start + i) % shards, req).await {
                        Ok(ShardResponse::Reply(Reply::Null)) => continue,
                        Ok(ShardResponse::Reply(r)) => return r,
                        Err(e) => return e,
                        _ => {}
                    }
                }
                Reply::Null
            }
            "flushdb" | "flushall" => {
                if args.len() > 2 || (args.len() == 2 && !matches!(upper(1).as_slice(), b"async" | b"sync")) {
                    return Reply::error(errors::SYNTAX);
                }
                for r in self
                    .call_all(|| ShardRequest::Flush {
                        locked: in_exec,
                        txid: self.txid,
                    })
                    .await
                {
                    match r {
                        Ok(ShardResponse::Reply(Reply::Error(e))) => return Reply::Error(e),
                        Err(e) => return e,
                        _ => {}
                    }
                }
                Reply::ok()
            }
            "multi" => {
                if self.multi.is_some() {
                    return Reply::error(errors::MULTI_NESTED);
                }
                self.multi = Some(Vec::new());
                self.multi_failed = false;
                Reply::ok()
            }
            "discard" => {
                if self.multi.take().is_none() {
                    return Reply::error(errors::DISCARD_WITHOUT_MULTI);
                }
                self.unwatch_all().await;
                Reply::ok()
            }
            "exec" => self.exec().await,
            "subscribe" => self.subscribe(&args, false),
            "psubscribe" => self.subscribe(&args, true),
            "unsubscribe" => self.unsubscribe(&args, false),
            "punsubscribe" => self.unsubscribe(&args, true),
            "publish" => self
                .publish(vec![(args[1].clone(), args[2].clone())])
                .await
                .pop()
                .unwrap_or(Reply::Null),
            "pubsub" => self.pubsub_command(&args).await,
            "watch" => {
                if self.multi.is_some() {
                    return Reply::error(errors::WATCH_INSIDE_MULTI);
                }
                for k in &args[1..] {
                    let s = shard_of(k, self.shard.shards());
                    match self.call(s, ShardRequest::Watch(k.to_vec())).await {
                        Ok(ShardResponse::Stamp(stamp)) => self.watches.push((k.to_vec(), s, stamp)),
                        Err(e) => return e,
                        _ => {}
                    }
                }
                Reply::ok()
            }
            "unwatch" => {
                self.unwatch_all().await;
                Reply::ok()
            }
            "blpop" | "brpop" | "blmpop" | "lmpop" | "bzpopmin" | "bzpopmax" | "bzmpop" | "zmpop" | "blmove"
            | "brpoplpush" => self.blocking_command(spec, &args, in_exec).await,
            "rename" | "renamenx"
                if shard_of(&args[1], self.shard.shards()) != shard_of(&args[2], self.shard.shards()) =>
            {
                self.across(spec, args, in_exec).await
            }
            "mget" | "mset" | "msetnx" | "del" | "unlink" | "exists" | "touch" => self.split(spec, args, in_exec).await,
            _ => {
                // Keyed commands whose keys span shards, or any keyed
                // command inside EXEC.
                let shards = self.shard.shards();
                let owners: std::collections::BTreeSet<usize> = spec
                    .key_indexes(&args)
                    .filter_map(|i| args.get(i))
                    .map(|k| shard_of(k, shards))
                    .collect();
                match owners.len() {
                    // A counted-keys command whose count names no key:
                    // any shard answers its error.
                    0 if spec.has_flag("movablekeys") => {
                        let s = self.shard.id();
                        if in_exec {
                            self.run_locked(s, args).await
                        } else {
                            self.run_on(s, args).await
                        }
                    }
                    0 => Reply::Error(errors::unknown_command(&args)),
                    1 => {
                        let s = *owners.iter().next().unwrap_or(&0);
                        if in_exec {
                            self.run_locked(s, args).await
                        } else {
                            self.run_on(s, args).await
                        }
                    }
                    _ => self.across(spec, args, in_exec).await,
                }
            }
        }
    }

    async fn unwatch_all(&mut self) {
        let watches = std::mem::take(&mut self.watches);
        let mut per: BTreeMap<usize, Vec<Vec<u8>>> = BTreeMap::new();
        for (k, s, _) in watches {
            per.entry(s).or_default().push(k);
        }
        for (s, keys) in per {
            let _ = self.call(s, ShardRequest::Unwatch(keys)).await;
        }
    }

    async fn scan(&self, args: &[Bytes]) -> Reply {
        let Some(cursor) = std::str::from_utf8(&args[1]).ok().and_then(|s| s.parse::<u64>().ok()) else {
            return Reply::error(errors::CURSOR_INVALID);
        };
        let mut pattern = None;
        let mut count = SCAN_COUNT_DEFAULT;
        let mut kind = None;
        let mut i = 2;
        while i < args.len() {
            let opt = args[i].to_ascii_lowercase();
            let Some(v) = args.get(i + 1) else {
                return Reply::error(errors::SYNTAX);
            };
            match opt.as_slice() {
                b"match" => pattern = Some(v.clone()),
                b"count" => match crate::resp::num::parse_i64(v) {
                    Some(c) if c >= 1 => count = c as usize,
                    Some(_) => return Reply::error(errors::SYNTAX),
                    None => return Reply::error(errors::NOT_INTEGER),
                },
                b"type" => {
                    kind = match v.to_ascii_lowercase().as_slice() {
                        b"string" => Some(Kind::String),
                        b"hash" => Some(Kind::Hash),
                        b"list" => Some(Kind::List),
                        b"set" => Some(Kind::Set),
                        b"zset" => Some(Kind::ZSet),
                        // Redis answers an unknown type with nothing.
                        _ => return Reply::Array(vec![Reply::bulk("0"), Reply::Array(Vec::new())]),
                    }
                }
                _ => return Reply::error(errors::SYNTAX),
            }
            i += 2;
        }
        let shards = self.shard.shards() as u64;
        // Cursor: shard in the low bits, that shard's resume token above.
        let (mut shard, mut token) = (cursor % shards, cursor / shards);
        loop {
            let r = self
                .call(
                    shard as usize,
                    ShardRequest::Scan {
                        token,
                        pattern: pattern.clone(),
                        kind,
                        count,
                        in_tx: self.txid.is_some(),
                    },
                )
                .await;
            let (keys, resume) = match r {
                Ok(ShardResponse::Scanned(Ok(v))) => v,
                Ok(ShardResponse::Scanned(Err(e))) | Err(e) => return e,
                Ok(_) => return Reply::error("ERR internal routing error"),
            };
            let next = match resume {
                Some(t) => t * shards + shard,
                None if shard + 1 < shards => shard + 1,
                None => 0,
            };
            if keys.is_empty() && resume.is_none() && next != 0 {
                // This shard is done and gave nothing: go on to the next.
                shard += 1;
                token = 0;
                continue;
            }
            return Reply::Array(vec![
                Reply::bulk(next.to_string()),
                Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
            ]);
        }
    }

    async fn all_stats(&self) -> Vec<super::ShardStats> {
        let mut v = Vec::new();
        for r in self.call_all(|| ShardRequest::Stats).await {
            if let Ok(ShardResponse::Stats(s)) = r {
                v.push(*s);
            }
        }
        v
    }
}

/// Commands for one shard, each with its looked-up spec.
type RunBatch = Vec<(&'static CommandSpec, Vec<Bytes>)>;

/// Runs `cmds` on shard `s`; `n` replies in order, errors included.
/// The shard that owns every key of `args`, for a command that runs whole
/// there; `None` when the session runs it: no key, keys on several shards,
/// a wrong arity, or a command the session itself takes part in
/// (transactions, blocking commands, counted-keys pops).
fn single_shard(args: &[Bytes], shards: usize) -> Option<(usize, &'static CommandSpec)> {
    let spec = command::lookup(args.first()?)?;
    if !spec.check_arity(args.len())
        || spec.is_blocking()
        || matches!(
            spec.name,
            "watch" | "unwatch" | "multi" | "exec" | "discard" | "lmpop" | "zmpop"
        )
    {
        return None;
    }
    let mut owner = None;
    for i in spec.key_indexes(args) {
        let Some(k) = args.get(i) else { continue };
        let s = shard_of(k, shards);
        match owner {
            None => owner = Some(s),
            Some(o) if o != s => return None,
            _ => {}
        }
    }
    owner.map(|s| (s, spec))
}

async fn run_group(router: &lumadb_shard::router::Router<Shard>, s: usize, cmds: RunBatch, n: usize) -> Vec<Reply> {
    match router.call(s, ShardRequest::Run(cmds)).await {
        Ok(ShardResponse::Replies(r)) => r,
        Ok(ShardResponse::Reply(r)) => vec![r],
        Ok(_) => vec![Reply::error("ERR internal routing error"); n],
        Err(e) => vec![Reply::error(format!("ERR {e}")); n],
    }
}

#[cfg(test)]
mod tests {
    /// `is_blocking` looks only at names that begin with a B.
    #[test]
    fn every_blocking_command_begins_with_b() {
        for spec in crate::resp::command::all() {
            if spec.is_blocking() {
                assert!(super::is_blocking(spec.name.as_bytes()), "{}", spec.name);
                assert!(
                    super::is_blocking(spec.name.to_ascii_uppercase().as_bytes()),
                    "{}",
                    spec.name
                );
            }
        }
        assert!(!super::is_blocking(b"LPOP"));
        assert!(!super::is_blocking(b"BITCOUNT"));
    }
}
