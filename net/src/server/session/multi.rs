//! Transactions and commands whose keys span shards, in a session:
//! MULTI/EXEC (locks taken shard by shard, the queue run as per-shard
//! runs of `RunLocked`, `Unlock` everywhere), MGET/MSET/DEL and the other
//! split commands, the cross-shard moves and gathers (RENAME, COPY, SMOVE,
//! LMOVE, the set and sorted-set algebra), and the keyless reads' hold of
//! every shard. The design is in `docs/ARCHITECTURE.md`, "Key locks and
//! MULTI/EXEC".

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{single_shard, Session, ShardLocks};
use crate::resp::{command, errors, CommandSpec, Reply};
use crate::server::{shard_of, ShardRequest, ShardResponse};

impl Session {
    pub(super) async fn run_locked(&self, shard: usize, args: Vec<Bytes>) -> Reply {
        self.run_locked_many(shard, vec![args], 1)
            .await
            .pop()
            .unwrap_or_else(|| Reply::error("ERR internal routing error"))
    }

    /// Runs `n` commands, in order, on `shard` under the locks held
    /// (`RunLocked`); their `n` replies.
    pub(super) async fn run_locked_many(&self, shard: usize, cmds: Vec<Vec<Bytes>>, n: usize) -> Vec<Reply> {
        let req = ShardRequest::RunLocked {
            cmds,
            now_ms: self.clock,
            txid: self.txid,
            unlock: false,
        };
        match self.call(shard, req).await {
            Ok(ShardResponse::Replies(r)) if r.len() == n => r,
            Ok(_) => vec![Reply::error("ERR internal routing error"); n],
            Err(e) => vec![e; n],
        }
    }

    /// MGET, MSET, MSETNX, DEL, UNLINK, EXISTS, TOUCH over any shards.
    ///
    /// Outside a transaction the command is isolated as a whole: every
    /// key's lock on every shard (shared for the reads) is held while
    /// every part runs, so no client sees some of its keys changed and
    /// others not (as Redis, where MSET and DEL are atomic).
    ///
    /// Two messages per shard, sent to every shard at once: `Lock`
    /// without waiting, then the part with `unlock`. If a shard answers
    /// `Busy` (a key locked or asked for), the locks taken are released
    /// and taken again shard after shard, waiting, in the one order every
    /// transaction uses. Locks taken at once without waiting cannot
    /// deadlock, and every part runs while all of them are held, so the
    /// command is isolated either way. MSETNX (check every shard, then
    /// set) runs as a one-command transaction.
    pub(super) async fn split(&mut self, spec: &'static CommandSpec, args: Vec<Bytes>, in_exec: bool) -> Reply {
        let shards = self.shard.shards();
        let step = if matches!(spec.name, "mset" | "msetnx") { 2 } else { 1 };
        if !in_exec {
            if spec.name != "msetnx" {
                return self.split_isolated(spec, &args, step).await;
            }
            return self
                .exec_queue(vec![args], Vec::new())
                .await
                .map_or(Reply::NullArray, |mut r| r.pop().unwrap_or(Reply::Null));
        }
        let (parts, n) = split_parts(&args, step, shards);
        if spec.name == "msetnx" {
            // Inside a transaction: check every shard, then set.
            for (s, (_, part)) in &parts {
                let mut exists = vec![Bytes::from_static(b"EXISTS")];
                exists.extend(part[1..].iter().step_by(2).cloned());
                match self.run_locked(*s, exists).await {
                    Reply::Int(0) => {}
                    Reply::Int(_) => return Reply::Int(0),
                    other => return other,
                }
            }
            for (s, (_, mut part)) in parts {
                part[0] = Bytes::from_static(b"MSET");
                if let e @ Reply::Error(_) = self.run_locked(s, part).await {
                    return e;
                }
            }
            return Reply::Int(1);
        }
        let this = &*self;
        let calls = parts
            .into_iter()
            .map(|(s, (pos, part))| async move { (pos, this.run_locked(s, part).await) });
        let results = futures::future::join_all(calls).await;
        gather_split(spec, results, n)
    }

    /// [`Session::split`] outside a transaction: every shard's locks at
    /// once without waiting or, if a shard was busy, shard after shard,
    /// waiting; then every part at once, each releasing its shard.
    async fn split_isolated(&mut self, spec: &'static CommandSpec, args: &[Bytes], step: usize) -> Reply {
        let shards = self.shard.shards();
        let exclusive = spec.is_write();
        let (parts, n) = split_parts(args, step, shards);
        let keys_of = |part: &[Bytes]| -> Vec<(Vec<u8>, bool)> {
            part[1..]
                .iter()
                .step_by(step)
                .map(|k| (k.to_vec(), exclusive))
                .collect()
        };
        let txid = self.shard.new_txid();
        let this = &*self;
        let locks = parts.iter().map(|(&s, (_, part))| {
            let req = ShardRequest::Lock {
                txid,
                keys: keys_of(part),
                watches: Vec::new(),
                whole: false,
                wait: false,
            };
            async move { (s, this.call(s, req).await) }
        });
        let mut locked = Vec::new();
        let mut all = true;
        for (s, r) in futures::future::join_all(locks).await {
            match r {
                Ok(ShardResponse::Locked { .. }) => locked.push(s),
                _ => all = false,
            }
        }
        if !all {
            // Nothing ran under these locks: nothing to be durable.
            let _ = self.unlock_all(txid, locked).await;
            let ordered = parts
                .iter()
                .map(|(&s, (_, part))| (s, (keys_of(part), Vec::new())))
                .collect();
            let (clean, locked) = self.lock_shards(txid, ordered, false).await;
            if let Err(e) = clean {
                let _ = self.unlock_all(txid, locked).await;
                return e;
            }
        }
        let this = &*self;
        let now_ms = Some(self.shard.db.now_ms());
        let runs = parts.into_iter().map(|(s, (pos, part))| async move {
            let req = ShardRequest::RunLocked {
                cmds: vec![part],
                now_ms,
                txid: Some(txid),
                unlock: true,
            };
            let reply = match this.call(s, req).await {
                Ok(ShardResponse::Replies(mut r)) if r.len() == 1 => r.pop().unwrap_or(Reply::Null),
                Ok(_) => Reply::error("ERR internal routing error"),
                Err(e) => e,
            };
            (pos, reply)
        });
        let results = futures::future::join_all(runs).await;
        gather_split(spec, results, n)
    }
}

/// A split command's part for each shard: the positions of its keys in
/// request order, and the command for them (the name, then each key with
/// the `step - 1` arguments after it); also the number of keys.
type SplitParts = BTreeMap<usize, (Vec<usize>, Vec<Bytes>)>;

fn split_parts(args: &[Bytes], step: usize, shards: usize) -> (SplitParts, usize) {
    let mut parts = SplitParts::new();
    let mut i = 1;
    let mut n = 0;
    while i < args.len() {
        let s = shard_of(&args[i], shards);
        let e = parts.entry(s).or_insert_with(|| (Vec::new(), vec![args[0].clone()]));
        e.0.push(n);
        e.1.extend_from_slice(&args[i..(i + step).min(args.len())]);
        i += step;
        n += 1;
    }
    (parts, n)
}

/// The reply of a split command from its parts' replies, each with the
/// positions of its keys: MGET's values in request order, MSET's OK, the
/// others' total; the first error instead, if any.
fn gather_split(spec: &'static CommandSpec, results: Vec<(Vec<usize>, Reply)>, n: usize) -> Reply {
    match spec.name {
        "mget" => {
            let mut values = vec![Reply::Null; n];
            for (pos, r) in results {
                match r {
                    Reply::Array(items) => {
                        for (p, v) in pos.into_iter().zip(items) {
                            values[p] = v;
                        }
                    }
                    e @ Reply::Error(_) => return e,
                    _ => {}
                }
            }
            Reply::Array(values)
        }
        "mset" => {
            for (_, r) in results {
                if let e @ Reply::Error(_) = r {
                    return e;
                }
            }
            Reply::ok()
        }
        _ => {
            let mut total = 0;
            for (_, r) in results {
                match r {
                    Reply::Int(c) => total += c,
                    e @ Reply::Error(_) => return e,
                    _ => {}
                }
            }
            Reply::Int(total)
        }
    }
}

impl Session {
    pub(super) async fn exec(&mut self) -> Reply {
        let Some(queue) = self.multi.take() else {
            return Reply::error(errors::EXEC_WITHOUT_MULTI);
        };
        if self.multi_failed {
            self.multi_failed = false;
            self.unwatch_all().await;
            return Reply::error(errors::EXECABORT);
        }
        let watches = std::mem::take(&mut self.watches);
        let result = self.exec_queue(queue, watches.clone()).await;
        self.watches = watches;
        self.unwatch_all().await;
        match result {
            Some(replies) => Reply::Array(replies),
            None => Reply::NullArray,
        }
    }

    /// Runs `queue` as one isolated transaction: takes every key's lock
    /// on every shard (ascending shard order), checks the WATCHes, runs
    /// the commands in order, releases. `None` if a WATCHed key changed.
    pub(super) async fn exec_queue(
        &mut self,
        queue: Vec<Vec<Bytes>>,
        watches: Vec<(Vec<u8>, usize, u64)>,
    ) -> Option<Vec<Reply>> {
        let shards = self.shard.shards();
        let mut locks: BTreeMap<usize, ShardLocks> = BTreeMap::new();
        // A transaction that flushes holds every shard whole.
        let mut whole = false;
        for args in &queue {
            let Some(spec) = command::lookup(&args[0]) else {
                continue;
            };
            whole |= matches!(spec.name, "flushall" | "flushdb");
            for i in spec.key_indexes(args) {
                if let Some(k) = args.get(i) {
                    let e = locks.entry(shard_of(k, shards)).or_default();
                    e.0.push((k.to_vec(), spec.is_write()));
                }
            }
        }
        for (k, s, stamp) in watches {
            locks.entry(s).or_default().1.push((k, stamp));
        }
        if whole {
            for s in 0..shards {
                locks.entry(s).or_default();
            }
        }
        let txid = self.shard.new_txid();
        let (clean, locked) = self.lock_shards(txid, locks, whole).await;
        let clean = matches!(clean, Ok(true));
        let replies = if clean {
            // One time for the whole transaction (as Redis), once it holds
            // its locks.
            let outer = self.clock.replace(self.shard.db.now_ms());
            let outer_txid = self.txid.replace(txid);
            let mut replies = Vec::with_capacity(queue.len());
            let mut queue = queue.into_iter().peekable();
            while queue.peek().is_some() {
                // A run of commands each on one shard goes as one message
                // per shard, all shards at once: under the transaction's
                // locks, commands on different shards touch disjoint keys,
                // so only each shard's own order matters.
                let mut run: BTreeMap<usize, (Vec<usize>, Vec<Vec<Bytes>>)> = BTreeMap::new();
                let first = replies.len();
                let mut n = 0;
                while let Some((s, _)) = queue.peek().and_then(|a| single_shard(a, shards)) {
                    let Some(args) = queue.next() else { break };
                    let e = run.entry(s).or_default();
                    e.0.push(first + n);
                    e.1.push(args);
                    n += 1;
                }
                if n > 0 {
                    replies.resize(first + n, Reply::Null);
                    let this = &*self;
                    let calls = run.into_iter().map(|(s, (at, cmds))| async move {
                        let k = cmds.len();
                        (at, this.run_locked_many(s, cmds, k).await)
                    });
                    for (at, rs) in futures::future::join_all(calls).await {
                        for (i, r) in at.into_iter().zip(rs) {
                            replies[i] = r;
                        }
                    }
                    continue;
                }
                let Some(args) = queue.next() else { break };
                let reply = match command::lookup(&args[0]) {
                    Some(spec) => Box::pin(self.dispatch(spec, args, true)).await,
                    None => Reply::Error(errors::unknown_command(&args)),
                };
                replies.push(reply);
            }
            self.clock = outer;
            self.txid = outer_txid;
            Some(replies)
        } else {
            None
        };
        let failed = self.unlock_all(txid, locked).await;
        match (replies, failed) {
            // Its writes are not durable: no command may read as done.
            (Some(replies), Some(e)) => Some(replies.iter().map(|_| e.clone()).collect()),
            (replies, _) => replies,
        }
    }

    /// RENAME/RENAMENX whose keys live on two shards (their locks held):
    /// read the source whole, write it as the destination, delete the
    /// source.
    pub(super) async fn rename_across(&mut self, args: &[Bytes], nx: bool) -> Reply {
        let shards = self.shard.shards();
        let (src, dst) = (args[1].to_vec(), args[2].to_vec());
        let (s_src, s_dst) = (shard_of(&src, shards), shard_of(&dst, shards));
        match self.copy_value(s_src, src, s_dst, dst, nx).await {
            Ok(Some(r @ (Reply::Int(1) | Reply::Simple(_)))) => {
                match self
                    .run_locked(s_src, vec![Bytes::from_static(b"DEL"), args[1].clone()])
                    .await
                {
                    Reply::Error(e) => Reply::Error(e),
                    _ => r,
                }
            }
            Ok(Some(r)) => r,
            Ok(None) => Reply::error(errors::NO_SUCH_KEY),
            Err(e) => e,
        }
    }

    /// Copies `key`, read whole on shard `from`, to `dst` on shard `to`
    /// (under the locks held; `nx`: not over an existing key): `None` when
    /// there is no such key, else the write's reply. `Err` carries an
    /// error of the read or of the routing.
    async fn copy_value(
        &self,
        from: usize,
        key: Vec<u8>,
        to: usize,
        dst: Vec<u8>,
        nx: bool,
    ) -> Result<Option<Reply>, Reply> {
        let export = ShardRequest::Export {
            key,
            now_ms: self.clock,
            txid: self.txid,
        };
        let value = match self.call(from, export).await {
            Ok(ShardResponse::Exported(Ok(Some(value)))) => value,
            Ok(ShardResponse::Exported(Ok(None))) => return Ok(None),
            Ok(ShardResponse::Exported(Err(e))) | Err(e) => return Err(e),
            Ok(_) => return Err(Reply::error("ERR internal routing error")),
        };
        let import = ShardRequest::Import {
            key: dst,
            value,
            nx,
            txid: self.txid,
        };
        match self.call(to, import).await {
            Ok(ShardResponse::Reply(r)) => Ok(Some(r)),
            Ok(_) => Err(Reply::error("ERR internal routing error")),
            Err(e) => Err(e),
        }
    }

    /// A multi-key command whose keys live on several shards (SINTER,
    /// SUNION, SDIFF and their STORE forms, SINTERCARD, ZUNION, ZINTER,
    /// ZDIFF and their STORE forms, ZINTERCARD, ZRANGESTORE, LCS, SMOVE,
    /// LMOVE, RPOPLPUSH, RENAME, RENAMENX, COPY): every key is locked on its shard first
    /// (ascending shard order), so the command is isolated as if all keys
    /// were local.
    pub(super) async fn across(&mut self, spec: &'static CommandSpec, args: Vec<Bytes>, in_exec: bool) -> Reply {
        let shards = self.shard.shards();
        let txid = self.shard.new_txid();
        let locked = if in_exec {
            Vec::new()
        } else {
            let mut per: BTreeMap<usize, ShardLocks> = BTreeMap::new();
            for i in spec.key_indexes(&args) {
                if let Some(k) = args.get(i) {
                    per.entry(shard_of(k, shards)).or_default().0.push((k.to_vec(), true));
                }
            }
            let (clean, locked) = self.lock_shards(txid, per, false).await;
            if let Err(e) = clean {
                let _ = self.unlock_all(txid, locked).await;
                return e;
            }
            locked
        };
        let outer = self.clock;
        if outer.is_none() {
            self.clock = Some(self.shard.db.now_ms());
        }
        let outer_txid = self.txid;
        if !in_exec {
            self.txid = Some(txid);
        }
        let reply = match spec.name {
            "rename" | "renamenx" => self.rename_across(&args, spec.name == "renamenx").await,
            "smove" => self.smove_across(&args).await,
            "lmove" | "rpoplpush" => self.lmove_across(spec.name, &args).await,
            "copy" => self.copy_across(&args).await,
            _ => self.gather_and_run(spec, &args, txid).await,
        };
        self.clock = outer;
        self.txid = outer_txid;
        match self.unlock_all(txid, locked).await {
            Some(e) => e,
            None => reply,
        }
    }

    /// Holds every shard whole (in ascending order, as a transaction
    /// locks) for a keyless read across shards (KEYS, DBSIZE), which then
    /// sees no transaction half done on any of them; the caller unlocks.
    /// `None` inside a transaction (its own locks stand) or with one shard
    /// (the read takes that shard's gate itself).
    pub(super) async fn hold_all_shards(&self) -> Option<(u64, Vec<usize>)> {
        if self.txid.is_some() || self.shard.shards() == 1 {
            return None;
        }
        let txid = self.shard.new_txid();
        let every = (0..self.shard.shards()).map(|s| (s, ShardLocks::default())).collect();
        let (_, locked) = self.lock_shards(txid, every, true).await;
        Some((txid, locked))
    }

    /// Takes transaction `txid`'s locks (and checks its WATCHes) shard by
    /// shard, in ascending order, waiting; stops at a shard that fails or
    /// finds a WATCHed key changed. Whether every shard was locked clean
    /// (`Ok(false)`: a WATCHed key changed; `Err`: a shard did not answer
    /// the lock), and the shards locked (to unlock).
    pub(super) async fn lock_shards(
        &self,
        txid: u64,
        locks: BTreeMap<usize, ShardLocks>,
        whole: bool,
    ) -> (Result<bool, Reply>, Vec<usize>) {
        let mut locked = Vec::new();
        for (s, (keys, watches)) in locks {
            let req = ShardRequest::Lock {
                txid,
                keys,
                watches,
                whole,
                wait: true,
            };
            match self.call(s, req).await {
                Ok(ShardResponse::Locked { clean: true }) => locked.push(s),
                Ok(ShardResponse::Locked { clean: false }) => {
                    locked.push(s);
                    return (Ok(false), locked);
                }
                Ok(_) => return (Err(Reply::error("ERR internal routing error")), locked),
                Err(e) => return (Err(e), locked),
            }
        }
        (Ok(true), locked)
    }

    /// Releases transaction `txid` on `shards`, all at once: each hands
    /// its held writes to the engine, unlocks, and answers once they are
    /// durable; the first storage error, if any. One after another, each shard kept its locks through the
    /// durability waits of the shards before it (an fdatasync each in
    /// `sync` mode), and writers of those keys queued behind them.
    pub(super) async fn unlock_all(&mut self, txid: u64, shards: Vec<usize>) -> Option<Reply> {
        let this = &*self;
        let unlocks = shards.into_iter().map(|s| this.call(s, ShardRequest::Unlock(txid)));
        let mut failed = None;
        for r in futures::future::join_all(unlocks).await {
            match r {
                Ok(ShardResponse::Reply(e @ Reply::Error(_))) | Err(e) => {
                    failed.get_or_insert(e);
                }
                Ok(_) => {}
            }
        }
        failed
    }

    /// Runs a read-many command on its first key's shard after copying the
    /// other shards' keys there under temporary names (removed after).
    pub(super) async fn gather_and_run(&mut self, spec: &'static CommandSpec, args: &[Bytes], txid: u64) -> Reply {
        let shards = self.shard.shards();
        // The first key's shard: a *STORE command's destination.
        let Some(first) = spec.key_indexes(args).next().and_then(|i| args.get(i)) else {
            return Reply::Error(errors::unknown_command(args));
        };
        let home = shard_of(first, shards);
        let mut local_args = args.to_vec();
        let mut temps = Vec::new();
        for i in spec.key_indexes(args) {
            let Some(k) = args.get(i) else { continue };
            let s = shard_of(k, shards);
            if s == home {
                continue;
            }
            let tmp = Bytes::from(format!("\u{0}lumadb-gather:{txid}:{i}"));
            match self.copy_value(s, k.to_vec(), home, tmp.to_vec(), false).await {
                Ok(Some(Reply::Error(e))) => return Reply::Error(e),
                Ok(Some(_)) => temps.push(tmp.clone()),
                Ok(None) => {}
                Err(e) => return e,
            }
            local_args[i] = tmp;
        }
        let reply = self.run_locked(home, local_args).await;
        if !temps.is_empty() {
            let mut del = vec![Bytes::from_static(b"DEL")];
            del.extend(temps);
            let _ = self.run_locked(home, del).await;
        }
        reply
    }

    /// COPY whose keys live on two shards (their locks held): options
    /// checked first, then the source read whole and written as the
    /// destination, expiry included.
    pub(super) async fn copy_across(&mut self, args: &[Bytes]) -> Reply {
        let replace = match crate::redis::cmd::keyspace::parse_copy_options(args) {
            Ok(r) => r,
            Err(e) => return e.into_reply(),
        };
        let shards = self.shard.shards();
        let (src, dst) = (args[1].to_vec(), args[2].to_vec());
        let (s_src, s_dst) = (shard_of(&src, shards), shard_of(&dst, shards));
        match self.copy_value(s_src, src, s_dst, dst, !replace).await {
            Ok(Some(Reply::Simple(_))) => Reply::Int(1),
            Ok(Some(r)) => r,
            Ok(None) => Reply::Int(0),
            Err(e) => e,
        }
    }

    pub(super) async fn key_type(&self, key: &Bytes) -> Result<Bytes, Reply> {
        let s = shard_of(key, self.shard.shards());
        match self.run_locked(s, vec![Bytes::from_static(b"TYPE"), key.clone()]).await {
            Reply::Simple(t) => Ok(t),
            other => Err(other),
        }
    }

    pub(super) async fn smove_across(&mut self, args: &[Bytes]) -> Reply {
        let shards = self.shard.shards();
        let (src, dst, member) = (&args[1], &args[2], &args[3]);
        match self.key_type(src).await {
            Ok(t) if t.as_ref() == b"set" => {}
            Ok(t) if t.as_ref() == b"none" => return Reply::Int(0),
            Ok(_) => return Reply::error(errors::WRONGTYPE),
            Err(e) => return e,
        }
        match self.key_type(dst).await {
            Ok(t) if t.as_ref() == b"set" || t.as_ref() == b"none" => {}
            Ok(_) => return Reply::error(errors::WRONGTYPE),
            Err(e) => return e,
        }
        let srem = vec![Bytes::from_static(b"SREM"), src.clone(), member.clone()];
        match self.run_locked(shard_of(src, shards), srem).await {
            Reply::Int(1) => {}
            other => return other,
        }
        let sadd = vec![Bytes::from_static(b"SADD"), dst.clone(), member.clone()];
        match self.run_locked(shard_of(dst, shards), sadd).await {
            Reply::Int(_) => Reply::Int(1),
            other => other,
        }
    }

    pub(super) async fn lmove_across(&mut self, name: &str, args: &[Bytes]) -> Reply {
        let shards = self.shard.shards();
        let (src, dst) = (&args[1], &args[2]);
        let (from_left, to_left) = if name == "rpoplpush" {
            (false, true)
        } else {
            let side = |a: &Bytes| match a.to_ascii_lowercase().as_slice() {
                b"left" => Some(true),
                b"right" => Some(false),
                _ => None,
            };
            match (side(&args[3]), side(&args[4])) {
                (Some(f), Some(t)) => (f, t),
                _ => return Reply::error(errors::SYNTAX),
            }
        };
        match self.key_type(src).await {
            Ok(t) if t.as_ref() == b"list" => {}
            Ok(t) if t.as_ref() == b"none" => return Reply::Null,
            Ok(_) => return Reply::error(errors::WRONGTYPE),
            Err(e) => return e,
        }
        match self.key_type(dst).await {
            Ok(t) if t.as_ref() == b"list" || t.as_ref() == b"none" => {}
            Ok(_) => return Reply::error(errors::WRONGTYPE),
            Err(e) => return e,
        }
        let pop: &'static [u8] = if from_left { b"LPOP" } else { b"RPOP" };
        let value = match self
            .run_locked(shard_of(src, shards), vec![Bytes::from_static(pop), src.clone()])
            .await
        {
            Reply::Bulk(v) => v,
            other => return other,
        };
        let push: &'static [u8] = if to_left { b"LPUSH" } else { b"RPUSH" };
        match self
            .run_locked(
                shard_of(dst, shards),
                vec![Bytes::from_static(push), dst.clone(), value.clone()],
            )
            .await
        {
            Reply::Int(_) => Reply::Bulk(value),
            other => other,
        }
    }
}
