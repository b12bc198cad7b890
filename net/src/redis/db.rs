//! One shard's Redis database: the helpers every command family uses to
//! read and change keys, so that the layout rules (see [`super::keys`])
//! live in one place.
//!
//! Rules for command code:
//! - Read a key's meta with [`Db::meta`] (read-only commands) or
//!   [`Db::meta_for_write`] (commands that write: it reclaims an expired
//!   key first); use [`Db::typed`] to get Redis's WRONGTYPE.
//! - Create collections with [`Db::new_collection`]; save meta with
//!   [`Db::save_meta`]; remove a key with [`Db::delete_key`]. An emptied
//!   collection must be deleted (Redis never keeps empty collections):
//!   [`Db::save_or_delete`] does that.
//! - Change expiry only through [`Db::set_expire`], which keeps the
//!   expiry index and counters right.

use hashbrown::HashMap;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::Bytes;
use lumadb_engine::storage::Storage;

use super::blocking::Waiters;
use super::keys::{self, Kind, Meta};
use super::store::{Store, StoreError, StoreResult, Tx};
use crate::resp::{errors, Reply};

/// Versions reserved per write of the version counter.
const VERSION_RESERVE_STEP: u64 = 1 << 16;

/// Why a command failed: a Redis error reply, or storage trouble.
#[derive(Debug, Clone)]
pub enum CmdError {
    /// Sent to the client as is (the whole line, e.g. `ERR syntax error`).
    Reply(Bytes),
    Store(StoreError),
}

impl CmdError {
    pub fn msg(line: impl Into<Bytes>) -> CmdError {
        CmdError::Reply(line.into())
    }

    pub fn into_reply(self) -> Reply {
        match self {
            CmdError::Reply(line) => Reply::Error(line),
            CmdError::Store(e) => Reply::error(format!("ERR storage failure: {e}")),
        }
    }
}

impl From<StoreError> for CmdError {
    fn from(e: StoreError) -> Self {
        CmdError::Store(e)
    }
}

pub type CmdResult = Result<Reply, CmdError>;

pub fn wrongtype() -> CmdError {
    CmdError::Reply(Bytes::from_static(errors::WRONGTYPE.as_bytes()))
}

pub fn syntax_error() -> CmdError {
    CmdError::Reply(Bytes::from_static(errors::SYNTAX.as_bytes()))
}

pub fn not_integer() -> CmdError {
    CmdError::Reply(Bytes::from_static(errors::NOT_INTEGER.as_bytes()))
}

pub fn not_float() -> CmdError {
    CmdError::Reply(Bytes::from_static(errors::NOT_FLOAT.as_bytes()))
}

/// Parses an integer argument with Redis's rules.
pub fn int_arg(b: &[u8]) -> Result<i64, CmdError> {
    crate::resp::num::parse_i64(b).ok_or_else(not_integer)
}

/// Parses a float argument with Redis's rules.
pub fn float_arg(b: &[u8]) -> Result<f64, CmdError> {
    crate::resp::num::parse_f64(b).ok_or_else(not_float)
}

/// See the module doc.
pub struct Db<S: Storage> {
    pub store: Rc<Store<S>>,
    next_version: Cell<u64>,
    reserved_version: Cell<u64>,
    /// Live keys on this shard (expired-but-not-reclaimed ones included,
    /// as Redis counts them).
    keys: Cell<u64>,
    /// Keys with an expiry.
    expires: Cell<u64>,
    /// Per watched key, how many times it was written since start; EXEC
    /// compares. Only keys some client watches are tracked.
    watched: RefCell<HashMap<Vec<u8>, (u32, u64)>>,
    /// Blocked clients waiting for keys of this shard to be non-empty.
    pub waiters: RefCell<Waiters>,
    /// Expired keys reclaimed, for INFO.
    pub expired_keys: Cell<u64>,
    /// SCAN, HSCAN, SSCAN and ZSCAN resume points on this shard.
    scan_cursors: RefCell<ScanCursors>,
    /// Where active expiry resumes in the expiry index: every entry below
    /// it was reclaimed, and only tombstones are left there, which a scan
    /// from the start would walk again every cycle.
    pub(crate) expire_cursor: Cell<u64>,
    /// The earliest expiry time indexed since active expiry last took this
    /// (`u64::MAX`: none), so that an entry written below the cursor (a
    /// transaction's fixed clock, a key moved from another shard, a clock
    /// set back) is still reached.
    pub(crate) expire_floor: Cell<u64>,
}

/// Scan resume points kept per shard at most; past it the oldest go
/// first. A scan in progress holds two (its last two pages' tokens), so
/// only abandoned scans fill this.
pub const SCAN_CURSORS_MAX: usize = 65_536;

/// Scan cursors handed out by a shard: token -> (the engine key to go on
/// from, the token that page was resumed from). Any connection can resume
/// a token, and resume it again (a client retrying a page); a token is
/// dropped once the page after it is resumed (its client has what it
/// led to), or when too many are kept. Tokens start at a random point
/// per process, so a cursor from before a restart names nothing.
#[derive(Debug)]
pub struct ScanCursors {
    next: u64,
    resume: BTreeMap<u64, (Vec<u8>, u64)>,
}

impl ScanCursors {
    fn new() -> Self {
        // Below 2^41, so SCAN's cursor (token × shards + shard) has room
        // for 2^16 shards and 2^40 pages before it could overflow.
        let start = (crate::redis::cmd::hash::random_u64() >> 24) | (1 << 39);
        ScanCursors {
            next: start,
            resume: BTreeMap::new(),
        }
    }
}

impl<S: Storage> Db<S> {
    /// Remembers a scan's resume key for the page after the one resumed
    /// from token `from` (0: a scan's first page); returns its token
    /// (never 0). Drops the token `from` was resumed from.
    pub fn save_scan_cursor(&self, key: Vec<u8>, from: u64) -> u64 {
        let mut c = self.scan_cursors.borrow_mut();
        if let Some(&(_, before)) = c.resume.get(&from) {
            c.resume.remove(&before);
        }
        c.next += 1;
        let token = c.next;
        c.resume.insert(token, (key, from));
        while c.resume.len() > SCAN_CURSORS_MAX {
            c.resume.pop_first();
        }
        token
    }

    /// The resume key of a scan token.
    pub fn scan_cursor(&self, token: u64) -> Option<Vec<u8>> {
        self.scan_cursors.borrow().resume.get(&token).map(|(k, _)| k.clone())
    }

    /// Opens the database over `store`: reads the version reservation
    /// and counts keys and expiries (one scan of the meta records).
    pub async fn open(store: Rc<Store<S>>) -> StoreResult<Rc<Db<S>>> {
        let reserved = match store.get(keys::VERSION_KEY).await? {
            Some(v) => u64::from_le_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| StoreError("malformed version counter record".into()))?,
            ),
            None => 0,
        };
        let db = Db {
            store,
            next_version: Cell::new(reserved),
            reserved_version: Cell::new(reserved),
            keys: Cell::new(0),
            expires: Cell::new(0),
            watched: RefCell::new(HashMap::new()),
            waiters: RefCell::new(Waiters::default()),
            expired_keys: Cell::new(0),
            expire_cursor: Cell::new(0),
            expire_floor: Cell::new(u64::MAX),
            scan_cursors: RefCell::new(ScanCursors::new()),
        };
        let (mut count, mut expiring) = (0, 0);
        let mut from = vec![keys::META_PREFIX];
        let end = vec![keys::META_PREFIX + 1];
        loop {
            let rows = db.store.scan(&from, &end, 1024).await?;
            let Some(last) = rows.last() else { break };
            for (k, v) in &rows {
                let meta = Meta::decode(v).ok_or_else(|| corrupt_meta(keys::user_key_of_meta(k)))?;
                count += 1;
                if meta.expire_at_ms != 0 {
                    expiring += 1;
                }
            }
            from = last.0.clone();
            from.push(0);
        }
        db.keys.set(count);
        db.expires.set(expiring);
        Ok(Rc::new(db))
    }

    pub fn now_ms(&self) -> u64 {
        self.store.engine().storage().now_unix_ms()
    }

    /// The time a command in `tx` runs at: the transaction's, if fixed.
    pub fn now_in(&self, tx: &Tx<'_, S>) -> u64 {
        tx.clock().unwrap_or_else(|| self.now_ms())
    }

    /// [`Db::now_in`] as a signed Unix ms, for expiry arithmetic.
    pub fn now_in_i64(&self, tx: &Tx<'_, S>) -> i64 {
        i64::try_from(self.now_in(tx)).unwrap_or(i64::MAX)
    }

    pub fn key_count(&self) -> u64 {
        self.keys.get()
    }

    pub fn expires_count(&self) -> u64 {
        self.expires.get()
    }

    /// A fresh collection generation, reserving more in `tx` when needed.
    pub fn new_version(&self, tx: &mut Tx<'_, S>) -> StoreResult<u64> {
        let v = self.next_version.get();
        if v >= self.reserved_version.get() {
            let reserved = v + VERSION_RESERVE_STEP;
            tx.put(keys::VERSION_KEY, &reserved.to_le_bytes())?;
            self.reserved_version.set(reserved);
        }
        self.next_version.set(v + 1);
        Ok(v)
    }

    /// The live meta of `key` (`None` if absent or expired).
    pub async fn meta(&self, tx: &Tx<'_, S>, key: &[u8]) -> StoreResult<Option<Meta>> {
        let Some(raw) = tx.get(&keys::meta_key(key)).await? else {
            return Ok(None);
        };
        let meta = Meta::decode_owned(raw).ok_or_else(|| corrupt_meta(key))?;
        if meta.expire_at_ms != 0 && meta.is_expired(self.now_in(tx)) {
            return Ok(None);
        }
        Ok(Some(meta))
    }

    /// Like [`Db::meta`], but reclaims `key` in `tx` if it has expired,
    /// so a write starts from a clean slate.
    pub async fn meta_for_write(&self, tx: &mut Tx<'_, S>, key: &[u8]) -> StoreResult<Option<Meta>> {
        let Some(raw) = tx.get(&keys::meta_key(key)).await? else {
            return Ok(None);
        };
        let meta = Meta::decode_owned(raw).ok_or_else(|| corrupt_meta(key))?;
        if meta.expire_at_ms != 0 && meta.is_expired(self.now_in(tx)) {
            self.delete_key(tx, key, &meta)?;
            self.expired_keys.set(self.expired_keys.get() + 1);
            return Ok(None);
        }
        Ok(Some(meta))
    }

    /// `meta` if it is of `kind`; WRONGTYPE otherwise.
    pub fn typed(meta: Option<Meta>, kind: Kind) -> Result<Option<Meta>, CmdError> {
        match meta {
            Some(m) if m.kind != kind => Err(wrongtype()),
            m => Ok(m),
        }
    }

    /// Meta for a new, empty collection of `kind` at `key` (not saved).
    pub fn new_collection(&self, tx: &mut Tx<'_, S>, kind: Kind) -> StoreResult<Meta> {
        Ok(Meta::collection(kind, self.new_version(tx)?))
    }

    /// Writes `meta` for `key`. `existed` says whether the key was live
    /// before this transaction (for the key count).
    pub fn save_meta(&self, tx: &mut Tx<'_, S>, key: &[u8], meta: &Meta, existed: bool) -> StoreResult<()> {
        if meta.kind == Kind::String {
            // The value is written after its header as it is, not copied
            // into an encoded meta first.
            tx.put_parts(&keys::meta_key(key), &meta.header(), &meta.value)?;
        } else {
            tx.put(&keys::meta_key(key), &meta.encode())?;
        }
        if !existed {
            self.keys.set(self.keys.get() + 1);
            if meta.expire_at_ms != 0 {
                self.expires.set(self.expires.get() + 1);
                self.index_expiry(tx, key, meta.expire_at_ms)?;
            }
        }
        Ok(())
    }

    /// Saves a collection, or deletes the key if it became empty.
    pub fn save_or_delete(&self, tx: &mut Tx<'_, S>, key: &[u8], meta: &Meta, existed: bool) -> StoreResult<()> {
        if meta.is_empty() {
            if existed {
                self.delete_key(tx, key, meta)?;
            }
            Ok(())
        } else {
            self.save_meta(tx, key, meta, existed)
        }
    }

    /// Adds `key`'s entry at `at_ms` to the expiry index.
    fn index_expiry(&self, tx: &mut Tx<'_, S>, key: &[u8], at_ms: u64) -> StoreResult<()> {
        self.expire_floor.set(self.expire_floor.get().min(at_ms));
        tx.put(&keys::expire_key(at_ms, key), b"")
    }

    /// Removes `key` (whose current meta is `meta`) and everything it owns.
    pub fn delete_key(&self, tx: &mut Tx<'_, S>, key: &[u8], meta: &Meta) -> StoreResult<()> {
        tx.delete(&keys::meta_key(key))?;
        if meta.kind != Kind::String {
            let (start, end) = keys::data_range(key, meta.version);
            tx.delete_unreachable_range(&start, &end)?;
        }
        if meta.expire_at_ms != 0 {
            tx.delete(&keys::expire_key(meta.expire_at_ms, key))?;
            self.expires.set(self.expires.get().saturating_sub(1));
        }
        self.keys.set(self.keys.get().saturating_sub(1));
        Ok(())
    }

    /// Sets (`at_ms > 0`) or clears (`0`) the expiry of a live key and
    /// saves its meta.
    pub fn set_expire(&self, tx: &mut Tx<'_, S>, key: &[u8], meta: &mut Meta, at_ms: u64) -> StoreResult<()> {
        if meta.expire_at_ms == at_ms {
            return Ok(());
        }
        if meta.expire_at_ms != 0 {
            tx.delete(&keys::expire_key(meta.expire_at_ms, key))?;
            self.expires.set(self.expires.get().saturating_sub(1));
        }
        if at_ms != 0 {
            self.index_expiry(tx, key, at_ms)?;
            self.expires.set(self.expires.get() + 1);
        }
        meta.expire_at_ms = at_ms;
        tx.put(&keys::meta_key(key), &meta.encode())
    }

    /// Replaces whatever `key` holds with `new` (a whole value, e.g. SET
    /// or a *STORE command's result). `old` is the key's live meta, if any.
    /// The expiry is `new.expire_at_ms`.
    pub fn replace(&self, tx: &mut Tx<'_, S>, key: &[u8], old: Option<&Meta>, new: &Meta) -> StoreResult<()> {
        if let Some(old) = old {
            if old.kind != Kind::String {
                let (start, end) = keys::data_range(key, old.version);
                tx.delete_unreachable_range(&start, &end)?;
            }
            if old.expire_at_ms != new.expire_at_ms {
                if old.expire_at_ms != 0 {
                    tx.delete(&keys::expire_key(old.expire_at_ms, key))?;
                    self.expires.set(self.expires.get().saturating_sub(1));
                }
                if new.expire_at_ms != 0 {
                    self.index_expiry(tx, key, new.expire_at_ms)?;
                    self.expires.set(self.expires.get() + 1);
                }
            }
            tx.put(&keys::meta_key(key), &new.encode())
        } else {
            self.save_meta(tx, key, new, false)
        }
    }

    /// Deletes the elements `items` (field or member names) under `tag`
    /// of the collection `meta` at `key`, counting them out of `meta`, and
    /// saves or deletes the key; returns how many existed (HDEL, SREM).
    pub async fn remove_elements(
        &self,
        tx: &mut Tx<'_, S>,
        key: &[u8],
        meta: &mut Meta,
        tag: u8,
        items: &[Bytes],
    ) -> StoreResult<i64> {
        let mut removed = 0;
        for item in items {
            let ek = keys::element_key(key, meta.version, tag, item);
            if tx.get(&ek).await?.is_some() {
                tx.delete(&ek)?;
                removed += 1;
                meta.count -= 1;
            }
        }
        if removed > 0 {
            self.save_or_delete(tx, key, meta, true)?;
        }
        Ok(removed)
    }

    /// Every element of one tag of a collection, in key order.
    pub async fn elements(
        &self,
        tx: &Tx<'_, S>,
        key: &[u8],
        meta: &Meta,
        tag: u8,
    ) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let (start, end) = keys::tag_range(key, meta.version, tag);
        tx.scan(&start, &end, usize::MAX).await
    }

    /// Starts tracking writes to `key` for a WATCH; returns its stamp.
    pub fn watch(&self, key: &[u8]) -> u64 {
        let mut w = self.watched.borrow_mut();
        let e = w.entry(key.to_vec()).or_insert((0, 0));
        e.0 += 1;
        e.1
    }

    /// Stops tracking one WATCH of `key`.
    pub fn unwatch(&self, key: &[u8]) {
        let mut w = self.watched.borrow_mut();
        if let Some(e) = w.get_mut(key) {
            e.0 -= 1;
            if e.0 == 0 {
                w.remove(key);
            }
        }
    }

    /// The generations reserved so far (the value kept under
    /// [`keys::VERSION_KEY`]).
    pub fn reserved_versions(&self) -> u64 {
        self.reserved_version.get()
    }

    /// Every key some client WATCHes on this shard.
    pub fn watched_keys(&self) -> Vec<Vec<u8>> {
        self.watched.borrow().keys().cloned().collect()
    }

    /// The write stamp of a watched key.
    pub fn watch_stamp(&self, key: &[u8]) -> u64 {
        self.watched.borrow().get(key).map_or(0, |e| e.1)
    }

    /// Whether any key is watched here: without one, [`Db::touch`] has
    /// nothing to do, and writers need not look for the keys they wrote.
    pub fn has_watches(&self) -> bool {
        !self.watched.borrow().is_empty()
    }

    /// Records a write to `key` for WATCH (called for every key of every
    /// write command).
    pub fn touch(&self, key: &[u8]) {
        let mut w = self.watched.borrow_mut();
        if w.is_empty() {
            return;
        }
        if let Some(e) = w.get_mut(key) {
            e.1 += 1;
        }
    }

    /// Wakes blocked clients waiting on `key` (a write just made it a
    /// non-empty list or sorted set).
    pub fn signal_key(&self, key: &[u8]) {
        self.waiters.borrow().signal(key);
    }

    /// Resets the key counters (FLUSHDB).
    pub fn reset_counts(&self) {
        self.keys.set(0);
        self.expires.set(0);
    }
}

fn corrupt_meta(key: &[u8]) -> StoreError {
    StoreError(format!(
        "malformed metadata record for key {:?}",
        String::from_utf8_lossy(key)
    ))
}
