#![allow(dead_code)]
//! A shard's Redis database on in-memory storage, for command tests: one
//! thread, a local executor, a controllable clock.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use lumadb_engine::db::Engine;
use lumadb_engine::storage::mem::MemStorage;
use lumadb_engine::{EngineOptions, SyncMode};

use super::db::Db;
use super::exec;
use super::store::Store;
use crate::resp::{command, errors, Reply};

pub struct TestDb {
    pool: RefCell<LocalPool>,
    pub storage: MemStorage,
    pub db: Rc<Db<MemStorage>>,
    sync_mode: SyncMode,
}

impl TestDb {
    /// A database in `interval` mode, where writes reach the engine at
    /// once while nothing is queued ([`Engine::try_write_now`]).
    pub fn new() -> TestDb {
        Self::open(MemStorage::new())
    }

    /// A database in `sync` mode, where every write goes through the
    /// overlay and the committer.
    pub fn new_sync() -> TestDb {
        Self::open_with(MemStorage::new(), SyncMode::Sync)
    }

    /// Opens (or reopens) the database over `storage`, in `interval` mode.
    pub fn open(storage: MemStorage) -> TestDb {
        Self::open_with(storage, SyncMode::Interval { interval_ms: 1000 })
    }

    pub fn open_with(storage: MemStorage, sync_mode: SyncMode) -> TestDb {
        let mut pool = LocalPool::new();
        let s = storage.clone();
        let opts = EngineOptions {
            sync_mode,
            ..EngineOptions::default()
        };
        let engine = pool.run_until(Engine::open(s, opts)).expect("engine opens");
        let ks = engine
            .keyspace(lumadb_engine::db::DEFAULT_KEYSPACE)
            .expect("default keyspace");
        let store = Store::new(engine, ks);
        pool.spawner()
            .spawn_local(store.clone().run_committer())
            .expect("spawn committer");
        let db = pool.run_until(Db::open(store)).expect("db opens");
        TestDb {
            pool: RefCell::new(pool),
            storage,
            db,
            sync_mode,
        }
    }

    /// Closes the engine cleanly and opens it again.
    pub fn reopen(self) -> TestDb {
        let storage = self.storage.clone();
        let sync_mode = self.sync_mode;
        let engine = self.db.store.engine().clone();
        self.db.store.close();
        self.pool.borrow_mut().run_until(engine.close()).expect("engine closes");
        drop(self);
        TestDb::open_with(storage, sync_mode)
    }

    /// Freezes the clock at `ms` (Unix ms).
    pub fn set_clock_ms(&self, ms: u64) {
        self.storage.set_clock_ms(Some(ms));
    }

    /// Runs one command as a client would (arity checked first).
    pub fn cmd(&self, args: &[&str]) -> Reply {
        let args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
        self.cmd_bytes(args)
    }

    pub fn cmd_bytes(&self, args: Vec<Bytes>) -> Reply {
        let Some(spec) = command::lookup(&args[0]) else {
            return Reply::Error(errors::unknown_command(&args));
        };
        if !spec.check_arity(args.len()) {
            return Reply::Error(errors::wrong_arity(spec.name));
        }
        let db = self.db.clone();
        self.pool
            .borrow_mut()
            .run_until(async move { exec::run_one(&db, spec, &args).await })
            .flattened()
    }

    /// Runs `f` on the test's executor.
    pub fn run<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.pool.borrow_mut().run_until(f)
    }
}

/// `Reply::Bulk` of `s`.
pub fn bulk(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

/// `Reply::Error` of `s`.
pub fn err(s: &str) -> Reply {
    Reply::Error(Bytes::copy_from_slice(s.as_bytes()))
}

/// `Reply::Array` of bulks.
pub fn bulks(items: &[&str]) -> Reply {
    Reply::Array(items.iter().map(|s| bulk(s)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_wrong_arity() {
        let t = TestDb::new();
        assert!(matches!(t.cmd(&["NOPE"]), Reply::Error(_)));
        assert_eq!(t.cmd(&["GET"]), err("ERR wrong number of arguments for 'get' command"));
    }
}
