//! Generic key commands (DEL, EXISTS, TOUCH, EXPIRE and friends, TTL,
//! EXPIRETIME, TYPE, RENAME, COPY), and the per-shard parts of the whole-keyspace commands (KEYS,
//! SCAN, RANDOMKEY, FLUSHDB) and of active expiry, which the routing layer
//! runs on every shard and merges.

use std::cell::Cell;

use bytes::Bytes;
use lumadb_engine::storage::Storage;

use crate::glob::glob_match;
use crate::redis::db::{int_arg, CmdError, CmdResult, Db};
use crate::redis::keys::{self, Kind, Meta};
use crate::redis::store::Tx;
use crate::resp::{errors, Reply};

/// Meta records read per engine scan by the whole-keyspace helpers.
const KEYSPACE_SCAN_BATCH_MAX: usize = 1024;
/// Expiry-index entries handled per transaction by active expiry.
const EXPIRE_BATCH_MAX: usize = 128;
/// Random probes RANDOMKEY makes before giving up on finding a live key.
const RANDOM_KEY_PROBES_MAX: usize = 100;

/// Runs `name` if it belongs to this family.
pub async fn run<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, name: &str, args: &[Bytes]) -> Option<CmdResult> {
    Some(match name {
        "del" | "unlink" => del(db, tx, args).await,
        "exists" | "touch" => exists(db, tx, args).await,
        "expire" => expire(db, tx, args, name, true, false).await,
        "pexpire" => expire(db, tx, args, name, false, false).await,
        "expireat" => expire(db, tx, args, name, true, true).await,
        "pexpireat" => expire(db, tx, args, name, false, true).await,
        "ttl" => ttl(db, tx, args, true).await,
        "pttl" => ttl(db, tx, args, false).await,
        "expiretime" => expire_time(db, tx, args, true).await,
        "pexpiretime" => expire_time(db, tx, args, false).await,
        "persist" => persist(db, tx, args).await,
        "type" => key_type(db, tx, args).await,
        "rename" => rename(db, tx, args, false).await,
        "renamenx" => rename(db, tx, args, true).await,
        "copy" => copy(db, tx, args).await,
        _ => return None,
    })
}

async fn del<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let mut deleted = 0;
    for key in &args[1..] {
        if let Some(m) = db.meta_for_write(tx, key).await? {
            db.delete_key(tx, key, &m)?;
            deleted += 1;
        }
    }
    Ok(Reply::Int(deleted))
}

async fn exists<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let mut found = 0;
    for key in &args[1..] {
        if db.meta(tx, key).await?.is_some() {
            found += 1;
        }
    }
    Ok(Reply::Int(found))
}

#[derive(Default)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

fn parse_expire_flags(args: &[Bytes]) -> Result<ExpireFlags, CmdError> {
    let mut f = ExpireFlags::default();
    for opt in args {
        if opt.eq_ignore_ascii_case(b"nx") {
            f.nx = true;
        } else if opt.eq_ignore_ascii_case(b"xx") {
            f.xx = true;
        } else if opt.eq_ignore_ascii_case(b"gt") {
            f.gt = true;
        } else if opt.eq_ignore_ascii_case(b"lt") {
            f.lt = true;
        } else {
            let mut line = b"ERR Unsupported option ".to_vec();
            line.extend_from_slice(opt);
            return Err(CmdError::msg(line));
        }
    }
    if f.nx && (f.xx || f.gt || f.lt) {
        return Err(CmdError::msg(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if f.gt && f.lt {
        return Err(CmdError::msg(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(f)
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT.
async fn expire<S: Storage>(
    db: &Db<S>,
    tx: &mut Tx<'_, S>,
    args: &[Bytes],
    name: &str,
    seconds: bool,
    absolute: bool,
) -> CmdResult {
    let key = &args[1][..];
    let flags = parse_expire_flags(&args[3..])?;
    let mut when = int_arg(&args[2])?;
    let invalid = || CmdError::msg(errors::invalid_expire_time(name));
    if seconds {
        when = when.checked_mul(1000).ok_or_else(invalid)?;
    }
    if !absolute {
        when = when.checked_add(db.now_in_i64(tx)).ok_or_else(invalid)?;
    }
    let Some(mut meta) = db.meta_for_write(tx, key).await? else {
        return Ok(Reply::Int(0));
    };
    // No expiry counts as an infinite TTL.
    let current = meta.expire_at_ms;
    let refused = (flags.nx && current != 0)
        || (flags.xx && current == 0)
        || (flags.gt && (current == 0 || when <= current as i64))
        || (flags.lt && current != 0 && when >= current as i64);
    if refused {
        return Ok(Reply::Int(0));
    }
    if when <= db.now_in_i64(tx) {
        db.delete_key(tx, key, &meta)?;
    } else {
        // Past `now`, so positive.
        db.set_expire(tx, key, &mut meta, when as u64)?;
    }
    Ok(Reply::Int(1))
}

/// TTL (`seconds`) and PTTL.
async fn ttl<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes], seconds: bool) -> CmdResult {
    let Some(meta) = db.meta(tx, &args[1]).await? else {
        return Ok(Reply::Int(-2));
    };
    if meta.expire_at_ms == 0 {
        return Ok(Reply::Int(-1));
    }
    let left = meta.expire_at_ms.saturating_sub(db.now_in(tx));
    let left = i64::try_from(left).unwrap_or(i64::MAX);
    Ok(Reply::Int(if seconds { left.saturating_add(500) / 1000 } else { left }))
}

/// EXPIRETIME (`seconds`, rounded as Redis does) and PEXPIRETIME.
async fn expire_time<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes], seconds: bool) -> CmdResult {
    let Some(meta) = db.meta(tx, &args[1]).await? else {
        return Ok(Reply::Int(-2));
    };
    if meta.expire_at_ms == 0 {
        return Ok(Reply::Int(-1));
    }
    let at = i64::try_from(meta.expire_at_ms).unwrap_or(i64::MAX);
    Ok(Reply::Int(if seconds { at.saturating_add(500) / 1000 } else { at }))
}

async fn persist<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    match db.meta_for_write(tx, key).await? {
        Some(mut m) if m.expire_at_ms != 0 => {
            db.set_expire(tx, key, &mut m, 0)?;
            Ok(Reply::Int(1))
        }
        _ => Ok(Reply::Int(0)),
    }
}

async fn key_type<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let name = db.meta(tx, &args[1]).await?.map_or("none", |m| m.kind.name());
    Ok(Reply::Simple(Bytes::from_static(name.as_bytes())))
}

/// RENAME and RENAMENX (`nx`); both keys are on this shard.
async fn rename<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes], nx: bool) -> CmdResult {
    let (src, dst) = (&args[1][..], &args[2][..]);
    let Some(meta) = db.meta_for_write(tx, src).await? else {
        return Err(CmdError::msg(Bytes::from_static(errors::NO_SUCH_KEY.as_bytes())));
    };
    let done = || Ok(if nx { Reply::Int(1) } else { Reply::ok() });
    if src == dst {
        return Ok(if nx { Reply::Int(0) } else { Reply::ok() });
    }
    let old = db.meta_for_write(tx, dst).await?;
    if nx && old.is_some() {
        return Ok(Reply::Int(0));
    }
    let new = move_value(db, tx, src, dst, &meta).await?;
    db.replace(tx, dst, old.as_ref(), &new)?;
    db.delete_key(tx, src, &meta)?;
    if matches!(new.kind, Kind::List | Kind::ZSet) {
        db.signal_key(dst);
    }
    done()
}

/// The options of `COPY source destination [DB 0] [REPLACE]`: whether
/// REPLACE was given. There is one database: any DB but 0 is out of
/// range, as SELECT answers.
pub fn parse_copy_options(args: &[Bytes]) -> Result<bool, CmdError> {
    let mut replace = false;
    let mut j = 3;
    while j < args.len() {
        let more = args.len() - j - 1;
        if args[j].eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else if args[j].eq_ignore_ascii_case(b"db") && more >= 1 {
            let db = int_arg(&args[j + 1])?;
            if !(i64::from(i32::MIN)..=i64::from(i32::MAX)).contains(&db) {
                return Err(CmdError::msg(format!(
                    "ERR value is out of range, value must between {} and {}",
                    i32::MIN,
                    i32::MAX
                )));
            }
            if db != 0 {
                return Err(CmdError::msg(errors::DB_INDEX_OUT_OF_RANGE));
            }
            j += 1;
        } else {
            return Err(CmdError::msg(errors::SYNTAX));
        }
        j += 1;
    }
    Ok(replace)
}

/// COPY with both keys on this shard: the value and its expiry.
async fn copy<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let replace = parse_copy_options(args)?;
    let (src, dst) = (&args[1][..], &args[2][..]);
    if src == dst {
        return Err(CmdError::msg(errors::SAME_OBJECT));
    }
    let Some(meta) = db.meta_for_write(tx, src).await? else {
        return Ok(Reply::Int(0));
    };
    let old = db.meta_for_write(tx, dst).await?;
    if old.is_some() && !replace {
        return Ok(Reply::Int(0));
    }
    let new = move_value(db, tx, src, dst, &meta).await?;
    db.replace(tx, dst, old.as_ref(), &new)?;
    if matches!(new.kind, Kind::List | Kind::ZSet) {
        db.signal_key(dst);
    }
    Ok(Reply::Int(1))
}

/// Copies the value of `src` (meta `meta`) to `dst`: a string as is, a
/// collection's elements under a fresh generation of `dst`. Returns the
/// meta for `dst` (not saved).
async fn move_value<S: Storage>(
    db: &Db<S>,
    tx: &mut Tx<'_, S>,
    src: &[u8],
    dst: &[u8],
    meta: &Meta,
) -> Result<Meta, CmdError> {
    if meta.kind == Kind::String {
        return Ok(meta.clone());
    }
    let mut new = meta.clone();
    new.version = db.new_version(tx)?;
    let dst_prefix = keys::data_prefix(dst, new.version);
    let mut from = None;
    loop {
        let (rows, next) = element_batch(tx, src, meta, from).await?;
        for (rest, v) in rows {
            let mut moved = dst_prefix.clone();
            moved.extend_from_slice(&rest);
            tx.put(&moved, &v)?;
        }
        match next {
            Some(n) => from = Some(n),
            None => break,
        }
    }
    Ok(new)
}

/// A key's whole value, to move it to another shard: its meta and, for a
/// collection, every element as (key suffix after the generation prefix,
/// value).
pub type ExportedKey = (Meta, Vec<(Vec<u8>, Vec<u8>)>);

/// Reads `key` whole for a cross-shard RENAME (the caller holds its lock).
pub async fn export_key<S: Storage>(
    db: &Db<S>,
    tx: &mut Tx<'_, S>,
    key: &[u8],
) -> Result<Option<ExportedKey>, CmdError> {
    let Some(meta) = db.meta_for_write(tx, key).await? else {
        return Ok(None);
    };
    let mut elements = Vec::new();
    if meta.kind != Kind::String {
        let mut from = None;
        loop {
            let (rows, next) = element_batch(tx, key, &meta, from).await?;
            elements.extend(rows);
            match next {
                Some(n) => from = Some(n),
                None => break,
            }
        }
    }
    Ok(Some((meta, elements)))
}

/// One batch of a collection's elements, as (key suffix after the
/// generation prefix, value), starting at `from` (an engine key; `None`:
/// the first element); also the engine key to continue from, `None` at
/// the end.
async fn element_batch<S: Storage>(
    tx: &mut Tx<'_, S>,
    key: &[u8],
    meta: &Meta,
    from: Option<Vec<u8>>,
) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, Option<Vec<u8>>), CmdError> {
    let prefix_len = keys::data_prefix(key, meta.version).len();
    let (start, end) = keys::data_range(key, meta.version);
    let rows = tx
        .scan(from.as_deref().unwrap_or(&start), &end, KEYSPACE_SCAN_BATCH_MAX)
        .await?;
    let next = (rows.len() == KEYSPACE_SCAN_BATCH_MAX).then(|| {
        let mut n = rows.last().map(|r| r.0.clone()).unwrap_or_default();
        n.push(0);
        n
    });
    let rows = rows.into_iter().map(|(k, v)| (k[prefix_len..].to_vec(), v)).collect();
    Ok((rows, next))
}

/// Writes an exported value as `key` (replacing what is there, or, with
/// `nx`, only if `key` does not exist); answers as RENAME/RENAMENX do.
pub async fn import_key<S: Storage>(
    db: &Db<S>,
    tx: &mut Tx<'_, S>,
    key: &[u8],
    value: ExportedKey,
    nx: bool,
) -> CmdResult {
    let (mut meta, elements) = value;
    let old = db.meta_for_write(tx, key).await?;
    if nx && old.is_some() {
        return Ok(Reply::Int(0));
    }
    if meta.kind != Kind::String {
        meta.version = db.new_version(tx)?;
        let prefix = keys::data_prefix(key, meta.version);
        for (rest, v) in elements {
            let mut k = prefix.clone();
            k.extend_from_slice(&rest);
            tx.put(&k, &v)?;
        }
    }
    db.replace(tx, key, old.as_ref(), &meta)?;
    db.touch(key);
    if matches!(meta.kind, Kind::List | Kind::ZSet) {
        db.signal_key(key);
    }
    Ok(if nx { Reply::Int(1) } else { Reply::ok() })
}

/// Live (unexpired) meta records of this shard in `[from, end)`, up to
/// `limit` records examined; returns the live ones and the last key
/// examined (engine key) when `limit` records were read.
async fn meta_batch<S: Storage>(
    db: &Db<S>,
    from: &[u8],
    limit: usize,
) -> Result<(Vec<(Vec<u8>, Meta)>, Option<Vec<u8>>), CmdError> {
    let end = [keys::META_PREFIX + 1];
    let rows = db.store.scan(from, &end, limit).await?;
    let more = if rows.len() == limit {
        rows.last().map(|r| r.0.clone())
    } else {
        None
    };
    let now = db.now_ms();
    let mut out = Vec::with_capacity(rows.len());
    for (k, v) in rows {
        let meta = Meta::decode(&v).ok_or_else(|| {
            CmdError::Store(crate::redis::store::StoreError(format!(
                "malformed metadata record for key {:?}",
                String::from_utf8_lossy(keys::user_key_of_meta(&k))
            )))
        })?;
        if !meta.is_expired(now) {
            out.push((k, meta));
        }
    }
    Ok((out, more))
}

/// The key after `engine_key` in order: itself with a zero byte appended.
fn successor(mut engine_key: Vec<u8>) -> Vec<u8> {
    engine_key.push(0);
    engine_key
}

/// Whether `key` matches a KEYS/SCAN pattern (`*` matches every key,
/// the empty one included).
fn pattern_matches(pattern: &[u8], key: &[u8]) -> bool {
    pattern == b"*" || glob_match(pattern, key, false)
}

/// KEYS on this shard: every live key matching `pattern`, in key order.
pub async fn keys_local<S: Storage>(db: &Db<S>, pattern: &[u8]) -> Result<Vec<Bytes>, CmdError> {
    let mut out = Vec::new();
    let mut from = vec![keys::META_PREFIX];
    loop {
        let (batch, more) = meta_batch(db, &from, KEYSPACE_SCAN_BATCH_MAX).await?;
        for (k, _) in batch {
            let key = keys::user_key_of_meta(&k);
            if pattern_matches(pattern, key) {
                out.push(Bytes::copy_from_slice(key));
            }
        }
        match more {
            Some(last) => from = successor(last),
            None => return Ok(out),
        }
    }
}

/// One SCAN step on this shard: examines up to `count` keys (at least
/// one) after the user key `after` (from the start when `None`), in key
/// order, skipping expired ones. Returns the matching keys and the user
/// key to resume after, `None` once this shard is done.
pub async fn scan_local<S: Storage>(
    db: &Db<S>,
    after: Option<&[u8]>,
    pattern: Option<&[u8]>,
    type_filter: Option<Kind>,
    count: usize,
) -> Result<(Vec<Bytes>, Option<Vec<u8>>), CmdError> {
    let from = match after {
        Some(key) => successor(keys::meta_key(key).to_vec()),
        None => vec![keys::META_PREFIX],
    };
    let (batch, more) = meta_batch(db, &from, count.max(1)).await?;
    let mut out = Vec::with_capacity(batch.len());
    for (k, meta) in batch {
        let key = keys::user_key_of_meta(&k);
        if type_filter.is_some_and(|t| t != meta.kind) {
            continue;
        }
        if pattern.is_some_and(|p| !pattern_matches(p, key)) {
            continue;
        }
        out.push(Bytes::copy_from_slice(key));
    }
    Ok((out, more.map(|last| keys::user_key_of_meta(&last).to_vec())))
}

thread_local! {
    static RANDOM_STATE: Cell<u64> = const { Cell::new(0) };
}

/// A pseudo-random number (xorshift64*, seeded from the clock).
fn next_random(seed: u64) -> u64 {
    RANDOM_STATE.with(|s| {
        let mut x = s.get();
        if x == 0 {
            x = seed | 1;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// RANDOMKEY on this shard: a live key, or `None` when it has none.
pub async fn random_key_local<S: Storage>(db: &Db<S>) -> Result<Option<Bytes>, CmdError> {
    if db.key_count() == 0 {
        return Ok(None);
    }
    for _ in 0..RANDOM_KEY_PROBES_MAX {
        // A random point in the key space; the first live key at or after
        // it, wrapping around to the start.
        let probe = next_random(db.now_ms()).to_be_bytes();
        let mut from = vec![keys::META_PREFIX];
        from.extend_from_slice(&probe[..(probe[0] % 8) as usize + 1]);
        let (batch, _) = meta_batch(db, &from, 1).await?;
        let (batch, _) = if batch.is_empty() {
            meta_batch(db, &[keys::META_PREFIX], 1).await?
        } else {
            (batch, None)
        };
        if let Some((k, _)) = batch.into_iter().next() {
            return Ok(Some(Bytes::copy_from_slice(keys::user_key_of_meta(&k))));
        }
    }
    // Only expired keys were met: walk in order for a live one.
    let mut from = vec![keys::META_PREFIX];
    loop {
        let (batch, more) = meta_batch(db, &from, KEYSPACE_SCAN_BATCH_MAX).await?;
        if let Some((k, _)) = batch.into_iter().next() {
            return Ok(Some(Bytes::copy_from_slice(keys::user_key_of_meta(&k))));
        }
        match more {
            Some(last) => from = successor(last),
            None => return Ok(None),
        }
    }
}

/// FLUSHDB on this shard: deletes every key, its elements and expiry
/// entries, and waits until that is durable.
///
/// One range tombstone over everything the Redis layout keeps, the
/// generation counter included (so that the tables under it are covered
/// whole), then the counter put back above it. Other clients see the
/// flush at once, before it is durable: the store's overlay answers
/// "deleted" for the range meanwhile ([`Tx::clear_range`]). Then the
/// memtable goes to the flush at once: flushing the tombstone drops every
/// table it covers, unread, where a compaction would read them all to
/// write nothing.
///
/// `commit` commits the flush's transaction (into the held batch of the
/// MULTI/EXEC it is part of: `held`, and the memtable is then left as it
/// is, since the range delete is not in the engine yet).
pub async fn flush_local<S: Storage>(
    db: &Db<S>,
    commit: impl FnOnce(Tx<'_, S>) -> crate::redis::store::Durable,
    held: bool,
) -> Result<(), CmdError> {
    let mut tx = db.store.tx();
    // As Redis: a flush invalidates the WATCH of a key that existed, not
    // of one that did not.
    for key in db.watched_keys() {
        if tx.get(&keys::meta_key(&key)).await?.is_some() {
            db.touch(&key);
        }
    }
    const _: () = assert!(
        keys::VERSION_KEY[0] < keys::DATA_PREFIX
            && keys::DATA_PREFIX < keys::META_PREFIX
            && keys::META_PREFIX < keys::EXPIRE_PREFIX
    );
    tx.clear_range(keys::VERSION_KEY, &[keys::EXPIRE_PREFIX + 1])?;
    // Generations stay unique for all time: the counter survives.
    tx.put(keys::VERSION_KEY, &db.reserved_versions().to_le_bytes())?;
    db.reset_counts();
    commit(tx).wait().await?;
    if !held {
        db.store.freeze_memtable().await?;
    }
    Ok(())
}

/// Active expiry on this shard: reclaims up to `max_keys` keys whose
/// expiry is at or before `now_ms`, walking the expiry index from where
/// the last cycle stopped (`Db::expire_cursor`, lowered to any entry
/// indexed below it since: `Db::expire_floor`). Index entries that no
/// longer match their key's meta are dropped. Each batch is committed and
/// waited on. Returns the number of keys reclaimed.
///
/// Starting over from the index's start each cycle walked every
/// tombstone the earlier cycles left there: with keys expiring steadily,
/// a cycle ran for over 100 ms without a pause.
pub async fn active_expire_cycle<S: Storage>(db: &Db<S>, now_ms: u64, max_keys: usize) -> Result<usize, CmdError> {
    let floor = db.expire_floor.replace(u64::MAX);
    let resume_at = db.expire_cursor.get().min(floor);
    let result = expire_from(db, resume_at, now_ms, max_keys).await;
    match result {
        Ok((expired, next)) => {
            db.expire_cursor.set(next);
            Ok(expired)
        }
        Err(e) => {
            // Nothing was skipped: the next cycle starts here again.
            db.expire_floor.set(db.expire_floor.get().min(resume_at));
            Err(e)
        }
    }
}

/// One active-expiry pass over the index from `resume_at`: the keys
/// reclaimed, and where the next pass may start (every entry before it
/// was reclaimed or dropped).
async fn expire_from<S: Storage>(
    db: &Db<S>,
    resume_at: u64,
    now_ms: u64,
    max_keys: usize,
) -> Result<(usize, u64), CmdError> {
    let end = keys::expire_key(now_ms.saturating_add(1), b"");
    let mut examined = 0;
    let mut expired = 0;
    let mut from = keys::expire_key(resume_at, b"");
    // Where the next pass starts: past `now_ms` once this one is done.
    let mut next = resume_at;
    while examined < max_keys {
        let limit = EXPIRE_BATCH_MAX.min(max_keys - examined);
        let rows = db.store.scan(&from, &end, limit).await?;
        let Some(last) = rows.last() else {
            next = now_ms.saturating_add(1);
            break;
        };
        from = successor(last.0.clone());
        examined += rows.len();
        let done = rows.len() < limit;
        let entries: Vec<(u64, Vec<u8>)> = rows
            .iter()
            .filter_map(|(k, _)| keys::parse_expire_key(k).map(|(at, key)| (at, key.to_vec())))
            .collect();
        let guard = db
            .store
            .locks
            .lock(entries.iter().map(|(_, key)| (key.as_slice(), true)))
            .await;
        let mut tx = db.store.tx();
        for (at, key) in &entries {
            let meta = match tx.get(&keys::meta_key(key)).await? {
                Some(raw) => Meta::decode(&raw),
                None => None,
            };
            match meta {
                Some(m) if m.expire_at_ms == *at => {
                    if m.is_expired(now_ms) {
                        db.delete_key(&mut tx, key, &m)?;
                        db.expired_keys.set(db.expired_keys.get() + 1);
                        db.touch(key);
                        expired += 1;
                    }
                }
                _ => tx.delete(&keys::expire_key(*at, key))?,
            }
        }
        let durable = tx.commit();
        drop(guard);
        durable.wait().await?;
        // Entries at the last one's time may follow it (keys sort after
        // the time): the next pass starts at that time, not past it.
        if let Some((at, _)) = entries.last() {
            next = *at;
        }
        if done {
            next = now_ms.saturating_add(1);
            break;
        }
    }
    Ok((expired, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::cmd::strings::tests::make_hash;
    use crate::redis::testkit::{bulk, bulks, err, TestDb};

    const T0: u64 = 1_700_000_000_000;

    fn new_db() -> TestDb {
        let t = TestDb::new();
        t.set_clock_ms(T0);
        t
    }

    fn int(n: i64) -> Reply {
        Reply::Int(n)
    }

    fn simple(s: &'static str) -> Reply {
        Reply::Simple(Bytes::from_static(s.as_bytes()))
    }

    /// The hash's fields and values, read through the layout.
    fn hash_fields(t: &TestDb, key: &str) -> Vec<String> {
        let db = t.db.clone();
        t.run(async move {
            let tx = db.store.tx();
            let Some(m) = db.meta(&tx, key.as_bytes()).await.expect("meta") else {
                return Vec::new();
            };
            let rows = db
                .elements(&tx, key.as_bytes(), &m, keys::TAG_HASH)
                .await
                .expect("scan");
            assert_eq!(rows.len() as u64, m.count);
            rows.iter()
                .map(|(k, v)| {
                    let f = keys::element_rest(k, key.as_bytes());
                    format!("{}={}", String::from_utf8_lossy(f), String::from_utf8_lossy(v))
                })
                .collect()
        })
    }

    /// Every engine record of the shard outside the version counter.
    fn records(t: &TestDb) -> usize {
        let db = t.db.clone();
        t.run(async move { db.store.scan(b"a", b"\xff", usize::MAX).await.expect("scan").len() })
    }

    #[test]
    fn del_unlink_exists() {
        let t = new_db();
        t.cmd(&["SET", "a", "1"]);
        make_hash(&t, "h", &["f", "g"]);
        assert_eq!(t.cmd(&["EXISTS", "a", "a", "b", "h"]), int(3));
        assert_eq!(t.cmd(&["DEL", "a", "a", "b"]), int(1));
        assert_eq!(t.cmd(&["EXISTS", "a"]), int(0));
        assert_eq!(t.cmd(&["UNLINK", "h"]), int(1));
        assert_eq!(t.cmd(&["UNLINK", "h"]), int(0));
        assert_eq!(t.db.key_count(), 0);
        assert_eq!(hash_fields(&t, "h"), Vec::<String>::new());
        // An expired key is not counted.
        t.cmd(&["SET", "e", "1", "PX", "10"]);
        t.set_clock_ms(T0 + 10);
        assert_eq!(t.cmd(&["EXISTS", "e"]), int(0));
        assert_eq!(t.cmd(&["DEL", "e"]), int(0));
        assert_eq!(t.db.key_count(), 0);
        assert_eq!(t.db.expires_count(), 0);
    }

    #[test]
    fn expire_family() {
        let t = new_db();
        assert_eq!(t.cmd(&["EXPIRE", "nokey", "10"]), int(0));
        t.cmd(&["SET", "s", "v"]);
        assert_eq!(t.cmd(&["TTL", "s"]), int(-1));
        assert_eq!(t.cmd(&["EXPIRE", "s", "100", "GT"]), int(0));
        assert_eq!(t.cmd(&["EXPIRE", "s", "100", "XX"]), int(0));
        assert_eq!(t.cmd(&["EXPIRE", "s", "100", "LT"]), int(1));
        assert_eq!(t.cmd(&["EXPIRE", "s", "50", "lt"]), int(1));
        assert_eq!(t.cmd(&["EXPIRE", "s", "60", "LT"]), int(0));
        assert_eq!(t.cmd(&["EXPIRE", "s", "60", "gt"]), int(1));
        assert_eq!(t.cmd(&["EXPIRE", "s", "70", "NX"]), int(0));
        assert_eq!(t.cmd(&["EXPIRE", "s", "70", "XX", "GT"]), int(1));
        assert_eq!(t.cmd(&["TTL", "s"]), int(70));
        assert_eq!(t.cmd(&["PEXPIRE", "s", "1500"]), int(1));
        assert_eq!(t.cmd(&["PTTL", "s"]), int(1500));
        assert_eq!(t.cmd(&["TTL", "s"]), int(2));
        t.set_clock_ms(T0 + 1);
        assert_eq!(t.cmd(&["TTL", "s"]), int(1));
        t.set_clock_ms(T0);
        let at = (T0 / 1000 + 30).to_string();
        assert_eq!(t.cmd(&["EXPIREAT", "s", &at]), int(1));
        assert_eq!(t.cmd(&["TTL", "s"]), int(30));
        let at = (T0 + 30).to_string();
        assert_eq!(t.cmd(&["PEXPIREAT", "s", &at]), int(1));
        assert_eq!(t.cmd(&["PTTL", "s"]), int(30));
        assert_eq!(t.db.expires_count(), 1);
        assert_eq!(t.cmd(&["PERSIST", "s"]), int(1));
        assert_eq!(t.cmd(&["PERSIST", "s"]), int(0));
        assert_eq!(t.cmd(&["PERSIST", "nokey"]), int(0));
        assert_eq!(t.cmd(&["TTL", "s"]), int(-1));
        assert_eq!(t.cmd(&["TTL", "nokey"]), int(-2));
        assert_eq!(t.cmd(&["PTTL", "nokey"]), int(-2));
        assert_eq!(t.db.expires_count(), 0);
        // Times at or before now delete the key.
        assert_eq!(t.cmd(&["EXPIRE", "s", "-1"]), int(1));
        assert_eq!(t.cmd(&["EXISTS", "s"]), int(0));
        t.cmd(&["SET", "s", "v"]);
        assert_eq!(t.cmd(&["PEXPIREAT", "s", "0"]), int(1));
        assert_eq!(t.cmd(&["EXISTS", "s"]), int(0));
        t.cmd(&["SET", "s", "v"]);
        assert_eq!(t.cmd(&["EXPIREAT", "s", "-9223372036854775"]), int(1));
        assert_eq!(t.db.key_count(), 0);
        // Errors.
        assert_eq!(t.cmd(&["EXPIRE", "s", "10", "foo"]), err("ERR Unsupported option foo"));
        assert_eq!(t.cmd(&["EXPIRE", "s", "abc", "foo"]), err("ERR Unsupported option foo"));
        assert_eq!(t.cmd(&["EXPIRE", "s", "abc"]), err(errors::NOT_INTEGER));
        assert_eq!(
            t.cmd(&["EXPIRE", "s", "10", "NX", "XX"]),
            err("ERR NX and XX, GT or LT options at the same time are not compatible")
        );
        assert_eq!(
            t.cmd(&["PEXPIRE", "s", "10", "GT", "LT"]),
            err("ERR GT and LT options at the same time are not compatible")
        );
        assert_eq!(
            t.cmd(&["EXPIRE", "s", "9223372036854775807"]),
            err("ERR invalid expire time in 'expire' command")
        );
        assert_eq!(
            t.cmd(&["EXPIRE", "s", "-9223372036854775808"]),
            err("ERR invalid expire time in 'expire' command")
        );
        assert_eq!(
            t.cmd(&["PEXPIRE", "s", "9223372036854775807"]),
            err("ERR invalid expire time in 'pexpire' command")
        );
        // Collections expire too, elements included.
        make_hash(&t, "h", &["f"]);
        assert_eq!(t.cmd(&["EXPIRE", "h", "5"]), int(1));
        t.set_clock_ms(T0 + 5000);
        assert_eq!(t.cmd(&["TYPE", "h"]), simple("none"));
        assert_eq!(t.cmd(&["DEL", "h"]), int(0));
        assert_eq!(records(&t), 0);
    }

    #[test]
    fn type_of_keys() {
        let t = new_db();
        assert_eq!(t.cmd(&["TYPE", "k"]), simple("none"));
        t.cmd(&["SET", "k", "v"]);
        assert_eq!(t.cmd(&["TYPE", "k"]), simple("string"));
        make_hash(&t, "h", &["f"]);
        assert_eq!(t.cmd(&["TYPE", "h"]), simple("hash"));
    }

    #[test]
    fn rename_strings_and_collections() {
        let t = new_db();
        assert_eq!(t.cmd(&["RENAME", "nokey", "x"]), err(errors::NO_SUCH_KEY));
        assert_eq!(t.cmd(&["RENAMENX", "nokey", "x"]), err(errors::NO_SUCH_KEY));
        assert_eq!(t.cmd(&["RENAME", "nokey", "nokey"]), err(errors::NO_SUCH_KEY));
        t.cmd(&["SET", "k", "v", "EX", "100"]);
        assert_eq!(t.cmd(&["RENAME", "k", "k"]), simple("OK"));
        assert_eq!(t.cmd(&["RENAMENX", "k", "k"]), int(0));
        assert_eq!(t.cmd(&["RENAME", "k", "k2"]), simple("OK"));
        assert_eq!(t.cmd(&["GET", "k"]), Reply::Null);
        assert_eq!(t.cmd(&["GET", "k2"]), bulk("v"));
        assert_eq!(t.cmd(&["TTL", "k2"]), int(100));
        assert_eq!(t.db.key_count(), 1);
        assert_eq!(t.db.expires_count(), 1);
        // A hash moves under a new generation; the target's old value goes.
        make_hash(&t, "h", &["a", "b"]);
        make_hash(&t, "h2", &["x"]);
        assert_eq!(t.cmd(&["RENAMENX", "h", "h2"]), int(0));
        assert_eq!(t.cmd(&["RENAMENX", "h", "k2"]), int(0));
        assert_eq!(t.cmd(&["RENAME", "h", "k2"]), simple("OK"));
        assert_eq!(t.cmd(&["TYPE", "k2"]), simple("hash"));
        assert_eq!(t.cmd(&["TTL", "k2"]), int(-1));
        assert_eq!(hash_fields(&t, "k2"), vec!["a=a", "b=b"]);
        assert_eq!(hash_fields(&t, "h"), Vec::<String>::new());
        assert_eq!(t.cmd(&["RENAMENX", "k2", "new"]), int(1));
        assert_eq!(t.cmd(&["RENAME", "new", "h2"]), simple("OK"));
        assert_eq!(hash_fields(&t, "h2"), vec!["a=a", "b=b"]);
        assert_eq!(t.db.key_count(), 1);
        assert_eq!(t.db.expires_count(), 0);
        // Meta and two elements remain, nothing else.
        assert_eq!(records(&t), 3);
        // An expiry moves with the key.
        assert_eq!(t.cmd(&["EXPIRE", "h2", "10"]), int(1));
        assert_eq!(t.cmd(&["RENAME", "h2", "h3"]), simple("OK"));
        assert_eq!(t.cmd(&["TTL", "h3"]), int(10));
        assert_eq!(records(&t), 4);
        let t = t.reopen();
        t.set_clock_ms(T0);
        assert_eq!(hash_fields(&t, "h3"), vec!["a=a", "b=b"]);
        assert_eq!(t.cmd(&["TTL", "h3"]), int(10));
        assert_eq!(t.db.key_count(), 1);
        assert_eq!(t.db.expires_count(), 1);
    }

    #[test]
    fn keys_scan_randomkey() {
        let t = new_db();
        let db = t.db.clone();
        assert_eq!(t.run(random_key_local(&db)).expect("random"), None);
        for k in ["", "a1", "a2", "b1", "c"] {
            t.cmd(&["SET", k, "v"]);
        }
        make_hash(&t, "h", &["f"]);
        t.cmd(&["SET", "dead", "v", "PX", "5"]);
        t.set_clock_ms(T0 + 5);
        let all = t.run(keys_local(&db, b"*")).expect("keys");
        assert_eq!(all, vec!["", "a1", "a2", "b1", "c", "h"]);
        let a = t.run(keys_local(&db, b"a*")).expect("keys");
        assert_eq!(a, vec!["a1", "a2"]);
        let q = t.run(keys_local(&db, b"?")).expect("keys");
        assert_eq!(q, vec!["c", "h"]);
        // SCAN in steps of two.
        let mut seen = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (found, next) = t.run(scan_local(&db, after.as_deref(), None, None, 2)).expect("scan");
            seen.extend(found);
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, vec!["", "a1", "a2", "b1", "c", "h"]);
        let (found, next) = t.run(scan_local(&db, None, Some(b"*1"), None, 100)).expect("scan");
        assert_eq!((found, next), (vec![Bytes::from("a1"), Bytes::from("b1")], None));
        let (found, _) = t.run(scan_local(&db, None, None, Some(Kind::Hash), 100)).expect("scan");
        assert_eq!(found, vec!["h"]);
        let (found, next) = t.run(scan_local(&db, Some(b"b1"), None, None, 0)).expect("scan");
        assert_eq!((found, next), (vec![Bytes::from("c")], Some(b"c".to_vec())));
        for _ in 0..20 {
            let k = t.run(random_key_local(&db)).expect("random").expect("a key");
            assert!(all.contains(&k), "{k:?}");
        }
    }

    #[test]
    fn flush_deletes_everything() {
        let t = new_db();
        for i in 0..50 {
            t.cmd(&["SET", &format!("k{i}"), "v", "EX", "100"]);
        }
        make_hash(&t, "h", &["f", "g"]);
        let db = t.db.clone();
        // Pending writes (not yet durable) must not come back either.
        t.run(async {
            let mut tx = db.store.tx();
            db.save_meta(&mut tx, b"pending", &Meta::string(b"x".to_vec()), false)
                .expect("save");
            let durable = tx.commit();
            flush_local(&db, |tx: Tx<'_, _>| tx.commit(), false)
                .await
                .expect("flush");
            durable.wait().await.expect("durable");
        });
        assert_eq!(t.db.key_count(), 0);
        assert_eq!(t.db.expires_count(), 0);
        assert_eq!(t.cmd(&["EXISTS", "k1", "h", "pending"]), int(0));
        assert_eq!(t.run(keys_local(&db, b"*")).expect("keys"), Vec::<Bytes>::new());
        assert_eq!(records(&t), 0);
        // Versions stay unique after a flush.
        make_hash(&t, "h", &["z"]);
        assert_eq!(hash_fields(&t, "h"), vec!["z=z"]);
        let t = t.reopen();
        assert_eq!(t.db.key_count(), 1);
        assert_eq!(hash_fields(&t, "h"), vec!["z=z"]);
        assert_eq!(t.cmd(&["EXISTS", "k1"]), int(0));
    }

    /// Each cycle starts where the last one stopped, and still reaches a
    /// key indexed below that point since (here: with the clock set back).
    #[test]
    fn active_expiry_resumes_and_reaches_keys_indexed_behind_it() {
        let t = new_db();
        let db = t.db.clone();
        for i in 0..50 {
            t.cmd(&["SET", &format!("a{i}"), "v", "PX", "10"]);
        }
        t.set_clock_ms(T0 + 20);
        assert_eq!(t.run(active_expire_cycle(&db, T0 + 20, 30)).expect("cycle"), 30);
        assert_eq!(t.run(active_expire_cycle(&db, T0 + 20, 100)).expect("cycle"), 20);
        assert_eq!(db.expire_cursor.get(), T0 + 21);
        // The clock goes back: a key expiring below the cursor.
        t.set_clock_ms(T0);
        t.cmd(&["SET", "late", "v", "PX", "5"]);
        t.cmd(&["SET", "later", "v", "PX", "100"]);
        t.set_clock_ms(T0 + 30);
        assert_eq!(t.run(active_expire_cycle(&db, T0 + 30, 100)).expect("cycle"), 1);
        assert_eq!(t.cmd(&["EXISTS", "late", "later"]), int(1));
        t.set_clock_ms(T0 + 200);
        assert_eq!(t.run(active_expire_cycle(&db, T0 + 200, 100)).expect("cycle"), 1);
        assert_eq!(t.db.key_count(), 0);
    }

    #[test]
    fn active_expiry() {
        let t = new_db();
        for i in 0..10 {
            t.cmd(&["SET", &format!("k{i}"), "v", "PX", &(10 + i).to_string()]);
        }
        t.cmd(&["SET", "keep", "v", "EX", "1000"]);
        make_hash(&t, "h", &["f"]);
        t.cmd(&["PEXPIRE", "h", "12"]);
        // Re-expiring or persisting leaves nothing stale behind.
        t.cmd(&["PEXPIRE", "k9", "5000"]);
        t.cmd(&["PERSIST", "k8"]);
        let db = t.db.clone();
        assert_eq!(t.run(active_expire_cycle(&db, T0 + 5, 100)).expect("cycle"), 0);
        t.set_clock_ms(T0 + 15);
        // k0..k5 and h are due (expiry <= now).
        assert_eq!(t.run(active_expire_cycle(&db, T0 + 15, 3)).expect("cycle"), 3);
        assert_eq!(t.run(active_expire_cycle(&db, T0 + 15, 100)).expect("cycle"), 4);
        assert_eq!(t.db.expired_keys.get(), 7);
        assert_eq!(t.db.key_count(), 5);
        assert_eq!(t.cmd(&["TYPE", "h"]), simple("none"));
        assert_eq!(t.cmd(&["EXISTS", "k6", "k7", "k8", "k9", "keep"]), int(5));
        assert_eq!(hash_fields(&t, "h"), Vec::<String>::new());
        // Stale index entries are dropped (past where the last cycle
        // stopped: below it, only what the server indexes is looked for).
        let db2 = db.clone();
        t.run(async move {
            let mut tx = db2.store.tx();
            tx.put(&keys::expire_key(T0 + 50, b"ghost"), b"").expect("put");
            tx.commit().wait().await.expect("durable");
        });
        t.set_clock_ms(T0 + 100);
        assert_eq!(t.run(active_expire_cycle(&db, T0 + 100, 100)).expect("cycle"), 2);
        let left = t.run(async {
            db.store
                .scan(&[keys::EXPIRE_PREFIX], &[keys::EXPIRE_PREFIX + 1], 100)
                .await
        });
        let left: Vec<_> = left
            .expect("scan")
            .into_iter()
            .filter_map(|(k, _)| keys::parse_expire_key(&k).map(|(_, key)| key.to_vec()))
            .collect();
        assert_eq!(left, vec![b"k9".to_vec(), b"keep".to_vec()]);
        let t = t.reopen();
        t.set_clock_ms(T0 + 100);
        assert_eq!(t.db.key_count(), 3);
        assert_eq!(t.db.expires_count(), 2);
        assert_eq!(t.cmd(&["MGET", "k8", "k9"]), bulks(&["v", "v"]));
        assert_eq!(t.cmd(&["EXISTS", "k6", "k7"]), int(0));
    }

    #[test]
    fn touch_counts_live_keys() {
        let t = new_db();
        t.cmd(&["SET", "a", "1"]);
        t.cmd(&["RPUSH", "l", "x"]);
        assert_eq!(t.cmd(&["TOUCH", "a", "l", "nokey", "a"]), int(3));
        assert_eq!(t.cmd(&["TOUCH", "nokey"]), int(0));
        t.cmd(&["PEXPIRE", "a", "10"]);
        t.set_clock_ms(T0 + 10);
        assert_eq!(t.cmd(&["TOUCH", "a"]), int(0));
    }

    #[test]
    fn expire_time() {
        let t = new_db();
        assert_eq!(t.cmd(&["EXPIRETIME", "nokey"]), int(-2));
        assert_eq!(t.cmd(&["PEXPIRETIME", "nokey"]), int(-2));
        t.cmd(&["SET", "a", "1"]);
        assert_eq!(t.cmd(&["EXPIRETIME", "a"]), int(-1));
        assert_eq!(t.cmd(&["PEXPIRETIME", "a"]), int(-1));
        t.cmd(&["PEXPIREAT", "a", &(T0 + 1_499).to_string()]);
        assert_eq!(t.cmd(&["PEXPIRETIME", "a"]), int((T0 + 1_499) as i64));
        // Rounded to the nearest second, as Redis does.
        assert_eq!(t.cmd(&["EXPIRETIME", "a"]), int((T0 / 1000 + 1) as i64));
        t.cmd(&["PEXPIREAT", "a", &(T0 + 1_500).to_string()]);
        assert_eq!(t.cmd(&["EXPIRETIME", "a"]), int((T0 / 1000 + 2) as i64));
        t.cmd(&["HSET", "h", "f", "v"]);
        t.cmd(&["EXPIREAT", "h", "33177117420"]);
        assert_eq!(t.cmd(&["EXPIRETIME", "h"]), int(33_177_117_420));
        assert_eq!(t.cmd(&["PEXPIRETIME", "h"]), int(33_177_117_420_000));
        t.set_clock_ms(T0 + 1_500);
        assert_eq!(t.cmd(&["EXPIRETIME", "a"]), int(-2));
    }

    #[test]
    fn copy_values_and_expiry() {
        let t = new_db();
        t.cmd(&["SET", "s", "v"]);
        t.cmd(&["PEXPIRE", "s", "5000"]);
        assert_eq!(t.cmd(&["COPY", "s", "s2"]), int(1));
        assert_eq!(t.cmd(&["GET", "s2"]), bulk("v"));
        assert_eq!(t.cmd(&["PTTL", "s2"]), int(5000));
        // The destination exists: nothing without REPLACE.
        t.cmd(&["SET", "d", "old"]);
        assert_eq!(t.cmd(&["COPY", "s", "d"]), int(0));
        assert_eq!(t.cmd(&["GET", "d"]), bulk("old"));
        assert_eq!(t.cmd(&["COPY", "s", "d", "REPLACE", "DB", "0"]), int(1));
        assert_eq!(t.cmd(&["GET", "d"]), bulk("v"));
        assert_eq!(t.cmd(&["PTTL", "d"]), int(5000));
        // Collections, replacing another type; the source stays.
        t.cmd(&["RPUSH", "l", "a", "b", "c"]);
        t.cmd(&["ZADD", "z", "1", "x", "2", "y"]);
        assert_eq!(t.cmd(&["COPY", "l", "d", "replace"]), int(1));
        assert_eq!(t.cmd(&["LRANGE", "d", "0", "-1"]), bulks(&["a", "b", "c"]));
        assert_eq!(t.cmd(&["PTTL", "d"]), int(-1));
        assert_eq!(t.cmd(&["COPY", "z", "z2"]), int(1));
        assert_eq!(t.cmd(&["ZRANGE", "z2", "0", "-1"]), bulks(&["x", "y"]));
        t.cmd(&["ZADD", "z2", "3", "w"]);
        assert_eq!(t.cmd(&["ZCARD", "z"]), int(2));
        assert_eq!(t.cmd(&["LLEN", "l"]), int(3));
        assert_eq!(t.cmd(&["COPY", "nokey", "x"]), int(0));
        assert_eq!(t.cmd(&["EXISTS", "x"]), int(0));
        // Errors, in Redis's order: options, then the same key.
        assert_eq!(t.cmd(&["COPY", "s", "s"]), err(errors::SAME_OBJECT));
        assert_eq!(t.cmd(&["COPY", "s", "s", "DB", "0"]), err(errors::SAME_OBJECT));
        assert_eq!(
            t.cmd(&["COPY", "s", "x", "DB", "1"]),
            err(errors::DB_INDEX_OUT_OF_RANGE)
        );
        assert_eq!(
            t.cmd(&["COPY", "s", "s", "DB", "-1"]),
            err(errors::DB_INDEX_OUT_OF_RANGE)
        );
        assert_eq!(t.cmd(&["COPY", "s", "x", "DB", "x"]), err(errors::NOT_INTEGER));
        assert_eq!(
            t.cmd(&["COPY", "s", "x", "DB", "99999999999"]),
            err("ERR value is out of range, value must between -2147483648 and 2147483647")
        );
        assert_eq!(t.cmd(&["COPY", "s", "x", "DB"]), err(errors::SYNTAX));
        assert_eq!(t.cmd(&["COPY", "s", "x", "NOPE"]), err(errors::SYNTAX));
        assert_eq!(
            t.cmd(&["COPY", "s"]),
            err("ERR wrong number of arguments for 'copy' command")
        );
        let keys = t.db.key_count();
        let expires = t.db.expires_count();
        let t = t.reopen();
        t.set_clock_ms(T0);
        assert_eq!(t.db.key_count(), keys);
        assert_eq!(t.db.expires_count(), expires);
        assert_eq!(t.cmd(&["GET", "s2"]), bulk("v"));
        assert_eq!(t.cmd(&["ZRANGE", "z2", "0", "-1"]), bulks(&["x", "y", "w"]));
        t.set_clock_ms(T0 + 5000);
        assert_eq!(t.cmd(&["EXISTS", "s", "s2"]), int(0));
    }
}
