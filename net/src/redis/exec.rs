//! Runs one command on the shard that owns its keys.

use std::future::Future;

use bytes::Bytes;
use lumadb_engine::storage::Storage;

use super::cmd;
use super::db::{CmdResult, Db};
use super::store::{Durable, Tx};
use crate::resp::command::CommandSpec;

/// Runs `args` (name first; arity already checked) in `tx`. The caller
/// holds the key locks and commits `tx` afterwards.
pub async fn execute<S: Storage>(
    db: &Db<S>,
    tx: &mut Tx<'_, S>,
    spec: &'static CommandSpec,
    args: &[Bytes],
) -> CmdResult {
    let name = spec.name;
    if let Some(r) = cmd::strings::run(db, tx, name, args).await {
        return r;
    }
    if let Some(r) = cmd::keyspace::run(db, tx, name, args).await {
        return r;
    }
    if let Some(r) = cmd::hash::run(db, tx, name, args).await {
        return r;
    }
    if let Some(r) = cmd::set::run(db, tx, name, args).await {
        return r;
    }
    if let Some(r) = cmd::list::run(db, tx, name, args).await {
        return r;
    }
    if let Some(r) = cmd::zset::run(db, tx, name, args).await {
        return r;
    }
    if let Some(r) = cmd::zset_ops::run(db, tx, name, args).await {
        return r;
    }
    Err(super::db::CmdError::Reply(crate::resp::errors::unknown_command(args)))
}

/// The locks a command needs: each key argument, exclusive for writes.
pub fn lock_set<'a>(spec: &'static CommandSpec, args: &'a [Bytes]) -> impl Iterator<Item = (&'a [u8], bool)> + 'a {
    let exclusive = spec.is_write();
    spec.key_indexes(args)
        .filter_map(|i| args.get(i))
        .map(move |k| (k.as_ref(), exclusive))
}

/// Moves the WATCH stamp of each key argument that `tx` wrote (as Redis
/// signals the keys a command modified).
pub fn touch_written<S: Storage>(db: &Db<S>, tx: &Tx<'_, S>, spec: &'static CommandSpec, args: &[Bytes]) {
    if spec.is_write() && !tx.is_empty() && db.has_watches() {
        for i in spec.key_indexes(args) {
            if let Some(k) = args.get(i).filter(|k| tx.writes_key(k)) {
                db.touch(k);
            }
        }
    }
}

/// Runs one command alone on this shard: locks its keys, executes,
/// queues its writes, releases the locks, and waits until the writes are
/// durable before answering.
pub async fn run_one<S: Storage>(db: &Db<S>, spec: &'static CommandSpec, args: &[Bytes]) -> crate::resp::Reply {
    run_deferred(db, spec, args).await.reply().await
}

/// A command that has run and committed its writes: its reply, held
/// until the writes are durable ([`Ran::reply`]).
#[must_use = "a reply is sent only once its writes are durable"]
pub struct Ran {
    reply: crate::resp::Reply,
    durable: Durable,
    /// The reply is an error already, and stands whatever becomes of the
    /// writes (a failed command may still have written, e.g. reclaimed
    /// an expired key; that must be durable before the error is sent).
    failed: bool,
}

impl Ran {
    /// Whether the reply is an error (for the command statistics).
    pub fn is_error(&self) -> bool {
        matches!(self.reply, crate::resp::Reply::Error(_))
    }

    /// The reply, once the writes are durable; the storage error instead
    /// if they cannot be made so.
    pub async fn reply(self) -> crate::resp::Reply {
        match self.durable.wait().await {
            Err(e) if !self.failed => super::db::CmdError::Store(e).into_reply(),
            _ => self.reply,
        }
    }
}

/// [`run_one`] up to the wait for durability, which the caller does with
/// [`Ran::reply`]: a pipeline's commands all run first, then wait once
/// (in `sync` mode one fdatasync covers them all), as Redis's
/// `appendfsync always` answers an event loop turn's commands after one
/// fsync.
///
/// **Elided locks.** Most commands find their data in memory and run to
/// the end without suspending, so no other task can run while they do;
/// locks would only cost a table entry made and removed. When its keys
/// are free (nobody holds or waits for them, no whole-shard lock is
/// held or queued), a command runs with no lock entry, and takes its
/// locks at the first point where it suspends (a disk read), before any
/// other task can run: the same as having held them from the start.
pub async fn run_deferred<S: Storage>(db: &Db<S>, spec: &'static CommandSpec, args: &[Bytes]) -> Ran {
    // A pipeline's commands run back to back without awaiting (writes go
    // to the engine at once while nothing is queued); the shard offers
    // the core between them (`server::join`), never here with the locks
    // held.
    let locks = &db.store.locks;
    let mut guard = if locks.free_for(lock_set(spec, args)) {
        None
    } else {
        Some(locks.lock(lock_set(spec, args)).await)
    };
    let mut tx = db.store.tx();
    let result = {
        let mut fut = std::pin::pin!(execute(db, &mut tx, spec, args));
        std::future::poll_fn(|cx| {
            let poll = fut.as_mut().poll(cx);
            if poll.is_pending() && guard.is_none() {
                guard = Some(locks.lock_now(lock_set(spec, args)));
            }
            poll
        })
        .await
    };
    touch_written(db, &tx, spec, args);
    let durable = tx.commit();
    drop(guard);
    match result {
        Ok(reply) => Ran {
            reply,
            durable,
            failed: false,
        },
        Err(e) => Ran {
            reply: e.into_reply(),
            durable,
            failed: true,
        },
    }
}
