//! List commands.
//!
//! A list's elements live at indexes `meta.head..meta.tail` under
//! [`keys::TAG_LIST`]; pushes move `head` down or `tail` up, pops move
//! them back, so both ends are O(1). Edits in the middle (LREM, LINSERT)
//! rewrite the list under a new generation.

use bytes::Bytes;
use lumadb_engine::storage::Storage;

use crate::redis::db::{int_arg, syntax_error, CmdError, CmdResult, Db};
use crate::redis::keys::{self, Kind, Meta, TAG_LIST};
use crate::redis::store::Tx;
use crate::resp::{errors, Reply};

/// Runs `name` if it belongs to this family.
pub async fn run<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, name: &str, args: &[Bytes]) -> Option<CmdResult> {
    Some(match name {
        "lpush" => push(db, tx, args, true, false).await,
        "rpush" => push(db, tx, args, false, false).await,
        "lpushx" => push(db, tx, args, true, true).await,
        "rpushx" => push(db, tx, args, false, true).await,
        "lpop" => pop_cmd(db, tx, args, true).await,
        "rpop" => pop_cmd(db, tx, args, false).await,
        "llen" => llen(db, tx, args).await,
        "lrange" => lrange(db, tx, args).await,
        "lindex" => lindex(db, tx, args).await,
        "lset" => lset(db, tx, args).await,
        "lrem" => lrem(db, tx, args).await,
        "ltrim" => ltrim(db, tx, args).await,
        "linsert" => linsert(db, tx, args).await,
        "lpos" => lpos(db, tx, args).await,
        "lmove" => lmove_cmd(db, tx, args).await,
        "rpoplpush" => lmove(db, tx, &args[1], &args[2], false, true).await,
        _ => return None,
    })
}

fn elem_key(key: &[u8], meta: &Meta, index: i64) -> Vec<u8> {
    keys::element_key(key, meta.version, TAG_LIST, &keys::list_index(index))
}

async fn read_meta<S: Storage>(db: &Db<S>, tx: &Tx<'_, S>, key: &[u8]) -> Result<Option<Meta>, CmdError> {
    Db::<S>::typed(db.meta(tx, key).await?, Kind::List)
}

async fn write_meta<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, key: &[u8]) -> Result<Option<Meta>, CmdError> {
    Db::<S>::typed(db.meta_for_write(tx, key).await?, Kind::List)
}

/// Elements at offsets `from..to` (from the head), in order.
async fn read_range<S: Storage>(
    tx: &Tx<'_, S>,
    key: &[u8],
    meta: &Meta,
    from: i64,
    to: i64,
) -> Result<Vec<Vec<u8>>, CmdError> {
    if from >= to {
        return Ok(Vec::new());
    }
    let start = elem_key(key, meta, meta.head + from);
    let end = elem_key(key, meta, meta.head + to);
    let limit = usize::try_from(to - from).unwrap_or(usize::MAX);
    let rows = tx.scan(&start, &end, limit).await?;
    Ok(rows.into_iter().map(|(_, v)| v).collect())
}

async fn all_elements<S: Storage>(
    db: &Db<S>,
    tx: &Tx<'_, S>,
    key: &[u8],
    meta: &Meta,
) -> Result<Vec<Vec<u8>>, CmdError> {
    Ok(db
        .elements(tx, key, meta, TAG_LIST)
        .await?
        .into_iter()
        .map(|(_, v)| v)
        .collect())
}

/// Replaces the list at `key` (meta `old`) with `items` under a new
/// generation, keeping its expiry; deletes the key if `items` is empty.
async fn rewrite<S: Storage>(
    db: &Db<S>,
    tx: &mut Tx<'_, S>,
    key: &[u8],
    old: &Meta,
    items: &[Vec<u8>],
) -> Result<(), CmdError> {
    if items.is_empty() {
        db.delete_key(tx, key, old)?;
        return Ok(());
    }
    let mut new = db.new_collection(tx, Kind::List)?;
    new.expire_at_ms = old.expire_at_ms;
    for item in items {
        tx.put(&elem_key(key, &new, new.tail), item)?;
        new.tail += 1;
    }
    db.replace(tx, key, Some(old), &new)?;
    Ok(())
}

fn push_items<S: Storage>(
    tx: &mut Tx<'_, S>,
    key: &[u8],
    meta: &mut Meta,
    items: &[Bytes],
    left: bool,
) -> Result<(), CmdError> {
    for item in items {
        if left {
            meta.head -= 1;
            tx.put(&elem_key(key, meta, meta.head), item)?;
        } else {
            tx.put(&elem_key(key, meta, meta.tail), item)?;
            meta.tail += 1;
        }
    }
    Ok(())
}

async fn push<S: Storage>(
    db: &Db<S>,
    tx: &mut Tx<'_, S>,
    args: &[Bytes],
    left: bool,
    only_existing: bool,
) -> CmdResult {
    let key = &args[1];
    let (mut meta, existed) = match write_meta(db, tx, key).await? {
        Some(m) => (m, true),
        None if only_existing => return Ok(Reply::Int(0)),
        None => (db.new_collection(tx, Kind::List)?, false),
    };
    push_items(tx, key, &mut meta, &args[2..], left)?;
    db.save_meta(tx, key, &meta, existed)?;
    db.signal_key(key);
    Ok(Reply::Int(meta.len() as i64))
}

/// Pops up to `count` elements from one end of the list at `key`.
async fn pop_n<S: Storage>(
    db: &Db<S>,
    tx: &mut Tx<'_, S>,
    key: &[u8],
    meta: &mut Meta,
    count: u64,
    left: bool,
) -> Result<Vec<Vec<u8>>, CmdError> {
    let len = meta.len() as i64;
    let n = i64::try_from(count).unwrap_or(i64::MAX).min(len);
    let mut items = if left {
        read_range(tx, key, meta, 0, n).await?
    } else {
        read_range(tx, key, meta, len - n, len).await?
    };
    if left {
        for i in meta.head..meta.head + n {
            tx.delete(&elem_key(key, meta, i))?;
        }
        meta.head += n;
    } else {
        for i in meta.tail - n..meta.tail {
            tx.delete(&elem_key(key, meta, i))?;
        }
        meta.tail -= n;
        items.reverse();
    }
    db.save_or_delete(tx, key, meta, true)?;
    Ok(items)
}

async fn pop_cmd<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes], left: bool) -> CmdResult {
    if args.len() > 3 {
        return Err(syntax_error());
    }
    let count = match args.get(2) {
        Some(c) => match crate::resp::num::parse_i64(c) {
            Some(n) if n >= 0 => Some(n as u64),
            _ => return Err(CmdError::msg("ERR value is out of range, must be positive")),
        },
        None => None,
    };
    let key = &args[1];
    let Some(mut meta) = write_meta(db, tx, key).await? else {
        return Ok(if count.is_some() { Reply::NullArray } else { Reply::Null });
    };
    match count {
        None => {
            let mut items = pop_n(db, tx, key, &mut meta, 1, left).await?;
            Ok(items.pop().map_or(Reply::Null, |v| Reply::Bulk(v.into())))
        }
        Some(0) => Ok(Reply::Array(Vec::new())),
        Some(n) => {
            let items = pop_n(db, tx, key, &mut meta, n, left).await?;
            Ok(Reply::Array(items.into_iter().map(|v| Reply::Bulk(v.into())).collect()))
        }
    }
}

/// Pops up to `count` elements from one end of the first non-empty list
/// among `keys` (BLPOP, LMPOP, ...): its key and the elements in pop
/// order. WRONGTYPE on the first key, in order, that is not a list.
pub async fn pop_first<S: Storage>(
    db: &Db<S>,
    tx: &mut Tx<'_, S>,
    keys: &[Bytes],
    count: u64,
    left: bool,
) -> Result<Option<(Bytes, Vec<Bytes>)>, CmdError> {
    for key in keys {
        let Some(mut meta) = write_meta(db, tx, key).await? else {
            continue;
        };
        if meta.is_empty() {
            continue;
        }
        let items = pop_n(db, tx, key, &mut meta, count, left).await?;
        return Ok(Some((key.clone(), items.into_iter().map(Bytes::from).collect())));
    }
    Ok(None)
}

async fn llen<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let meta = read_meta(db, tx, &args[1]).await?;
    Ok(Reply::Int(meta.map_or(0, |m| m.len() as i64)))
}

/// Redis's start/stop normalisation: `None` if the range is empty, else
/// offsets `[start, end)`.
fn normalize(start: i64, stop: i64, len: i64) -> Option<(i64, i64)> {
    let start = if start < 0 {
        (start.saturating_add(len)).max(0)
    } else {
        start
    };
    let stop = if stop < 0 { stop.saturating_add(len) } else { stop };
    if start > stop || start >= len {
        return None;
    }
    Some((start, stop.min(len - 1) + 1))
}

async fn lrange<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let start = int_arg(&args[2])?;
    let stop = int_arg(&args[3])?;
    let key = &args[1];
    let Some(meta) = read_meta(db, tx, key).await? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let Some((from, to)) = normalize(start, stop, meta.len() as i64) else {
        return Ok(Reply::Array(Vec::new()));
    };
    let items = read_range(tx, key, &meta, from, to).await?;
    Ok(Reply::Array(items.into_iter().map(|v| Reply::Bulk(v.into())).collect()))
}

/// The offset from the head of Redis index `index`, if in range.
fn offset(index: i64, len: i64) -> Option<i64> {
    let i = if index < 0 { index.checked_add(len)? } else { index };
    (0..len).contains(&i).then_some(i)
}

async fn lindex<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let index = int_arg(&args[2])?;
    let key = &args[1];
    let Some(meta) = read_meta(db, tx, key).await? else {
        return Ok(Reply::Null);
    };
    let Some(i) = offset(index, meta.len() as i64) else {
        return Ok(Reply::Null);
    };
    let v = tx.get(&elem_key(key, &meta, meta.head + i)).await?;
    Ok(v.map_or(Reply::Null, |v| Reply::Bulk(v.into())))
}

async fn lset<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let index = int_arg(&args[2])?;
    let key = &args[1];
    let Some(meta) = write_meta(db, tx, key).await? else {
        return Err(CmdError::msg(errors::NO_SUCH_KEY));
    };
    let Some(i) = offset(index, meta.len() as i64) else {
        return Err(CmdError::msg(errors::INDEX_OUT_OF_RANGE));
    };
    tx.put(&elem_key(key, &meta, meta.head + i), &args[3])?;
    Ok(Reply::ok())
}

async fn lrem<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let count = int_arg(&args[2])?;
    let key = &args[1];
    let target = &args[3][..];
    let Some(meta) = write_meta(db, tx, key).await? else {
        return Ok(Reply::Int(0));
    };
    let mut items = all_elements(db, tx, key, &meta).await?;
    let limit = if count == 0 { u64::MAX } else { count.unsigned_abs() };
    let mut removed = 0u64;
    let mut keep = vec![true; items.len()];
    let order: Box<dyn Iterator<Item = usize>> = if count < 0 {
        Box::new((0..items.len()).rev())
    } else {
        Box::new(0..items.len())
    };
    for i in order {
        if removed >= limit {
            break;
        }
        if items[i] == target {
            keep[i] = false;
            removed += 1;
        }
    }
    if removed > 0 {
        let mut k = keep.iter();
        items.retain(|_| *k.next().unwrap_or(&true));
        rewrite(db, tx, key, &meta, &items).await?;
    }
    Ok(Reply::Int(removed as i64))
}

async fn ltrim<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let start = int_arg(&args[2])?;
    let stop = int_arg(&args[3])?;
    let key = &args[1];
    let Some(mut meta) = write_meta(db, tx, key).await? else {
        return Ok(Reply::ok());
    };
    let len = meta.len() as i64;
    let (from, to) = normalize(start, stop, len).unwrap_or((0, 0));
    for i in (0..from).chain(to.max(from)..len) {
        tx.delete(&elem_key(key, &meta, meta.head + i))?;
    }
    if to <= from {
        meta.head = meta.tail;
    } else {
        meta.tail = meta.head + to;
        meta.head += from;
    }
    db.save_or_delete(tx, key, &meta, true)?;
    Ok(Reply::ok())
}

async fn linsert<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let after = if args[2].eq_ignore_ascii_case(b"after") {
        true
    } else if args[2].eq_ignore_ascii_case(b"before") {
        false
    } else {
        return Err(syntax_error());
    };
    let key = &args[1];
    let Some(meta) = write_meta(db, tx, key).await? else {
        return Ok(Reply::Int(0));
    };
    let mut items = all_elements(db, tx, key, &meta).await?;
    let Some(pos) = items.iter().position(|v| v[..] == args[3][..]) else {
        return Ok(Reply::Int(-1));
    };
    items.insert(if after { pos + 1 } else { pos }, args[4].to_vec());
    rewrite(db, tx, key, &meta, &items).await?;
    Ok(Reply::Int(items.len() as i64))
}

async fn lpos<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let mut rank: i64 = 1;
    let mut count: Option<i64> = None;
    let mut maxlen: i64 = 0;
    let mut i = 3;
    while i < args.len() {
        let opt = &args[i];
        let Some(val) = args.get(i + 1) else {
            return Err(syntax_error());
        };
        if opt.eq_ignore_ascii_case(b"rank") {
            rank = int_arg(val)?;
            if rank == 0 {
                return Err(CmdError::msg(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if opt.eq_ignore_ascii_case(b"count") {
            let c = int_arg(val)?;
            if c < 0 {
                return Err(CmdError::msg("ERR COUNT can't be negative"));
            }
            count = Some(c);
        } else if opt.eq_ignore_ascii_case(b"maxlen") {
            maxlen = int_arg(val)?;
            if maxlen < 0 {
                return Err(CmdError::msg("ERR MAXLEN can't be negative"));
            }
        } else {
            return Err(syntax_error());
        }
        i += 2;
    }
    let key = &args[1];
    let Some(meta) = read_meta(db, tx, key).await? else {
        return Ok(if count.is_some() {
            Reply::Array(Vec::new())
        } else {
            Reply::Null
        });
    };
    let items = all_elements(db, tx, key, &meta).await?;
    let len = items.len();
    let from_tail = rank < 0;
    // Matches to skip before reporting (Redis treats RANK LONG_MIN as -1).
    let skip = if rank == i64::MIN { 0 } else { rank.unsigned_abs() - 1 };
    let want = match count {
        None => 1,
        Some(0) => u64::MAX,
        Some(c) => c as u64,
    };
    let scan_max = if maxlen == 0 {
        len
    } else {
        (maxlen as u64).min(len as u64) as usize
    };
    let mut seen = 0u64;
    let mut found = Vec::new();
    for step in 0..scan_max {
        let idx = if from_tail { len - 1 - step } else { step };
        if items[idx][..] == args[2][..] {
            seen += 1;
            if seen > skip {
                found.push(Reply::Int(idx as i64));
                if found.len() as u64 >= want {
                    break;
                }
            }
        }
    }
    Ok(match count {
        Some(_) => Reply::Array(found),
        None => found.pop().unwrap_or(Reply::Null),
    })
}

fn side(arg: &[u8]) -> Result<bool, CmdError> {
    if arg.eq_ignore_ascii_case(b"left") {
        Ok(true)
    } else if arg.eq_ignore_ascii_case(b"right") {
        Ok(false)
    } else {
        Err(syntax_error())
    }
}

async fn lmove_cmd<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let from_left = side(&args[3])?;
    let to_left = side(&args[4])?;
    lmove(db, tx, &args[1], &args[2], from_left, to_left).await
}

/// Moves one element from `src` to `dst`: the element, or nil when `src`
/// is empty.
pub async fn lmove<S: Storage>(
    db: &Db<S>,
    tx: &mut Tx<'_, S>,
    src: &Bytes,
    dst: &Bytes,
    from_left: bool,
    to_left: bool,
) -> CmdResult {
    let Some(mut src_meta) = write_meta(db, tx, src).await? else {
        return Ok(Reply::Null);
    };
    // The destination's type is checked before anything changes.
    let dst_meta = write_meta(db, tx, dst).await?;
    if src == dst && src_meta.len() == 1 {
        // Rotating a one-element list changes nothing.
        let v = tx.get(&elem_key(src, &src_meta, src_meta.head)).await?;
        return Ok(v.map_or(Reply::Null, |v| Reply::Bulk(v.into())));
    }
    let mut items = pop_n(db, tx, src, &mut src_meta, 1, from_left).await?;
    let Some(v) = items.pop() else {
        return Ok(Reply::Null);
    };
    let value = Bytes::from(v);
    // Re-read: `src` and `dst` may be the same list.
    let dst_meta = if src == dst {
        write_meta(db, tx, dst).await?
    } else {
        dst_meta
    };
    let (mut meta, existed) = match dst_meta {
        Some(m) => (m, true),
        None => (db.new_collection(tx, Kind::List)?, false),
    };
    push_items(tx, dst, &mut meta, std::slice::from_ref(&value), to_left)?;
    db.save_meta(tx, dst, &meta, existed)?;
    db.signal_key(dst);
    Ok(Reply::Bulk(value))
}

#[cfg(test)]
mod tests {
    use crate::redis::testkit::{bulk, bulks, err, TestDb};
    use crate::resp::{errors, Reply};

    const WRONG: &str = errors::WRONGTYPE;

    #[test]
    fn push_pop_range() {
        let t = TestDb::new();
        assert_eq!(t.cmd(&["RPUSH", "l", "a", "b", "c"]), Reply::Int(3));
        assert_eq!(t.cmd(&["LPUSH", "l", "x", "y"]), Reply::Int(5));
        assert_eq!(t.cmd(&["LRANGE", "l", "0", "-1"]), bulks(&["y", "x", "a", "b", "c"]));
        assert_eq!(t.cmd(&["LRANGE", "l", "-2", "100"]), bulks(&["b", "c"]));
        assert_eq!(t.cmd(&["LRANGE", "l", "3", "1"]), bulks(&[]));
        assert_eq!(t.cmd(&["LRANGE", "l", "x", "1"]), err(errors::NOT_INTEGER));
        assert_eq!(t.cmd(&["LRANGE", "none", "0", "-1"]), bulks(&[]));
        assert_eq!(t.cmd(&["LLEN", "l"]), Reply::Int(5));
        assert_eq!(t.cmd(&["LLEN", "none"]), Reply::Int(0));
        assert_eq!(t.cmd(&["LPOP", "l"]), bulk("y"));
        assert_eq!(t.cmd(&["RPOP", "l"]), bulk("c"));
        assert_eq!(t.cmd(&["RPOP", "l", "2"]), bulks(&["b", "a"]));
        assert_eq!(t.cmd(&["LPOP", "l", "0"]), bulks(&[]));
        assert_eq!(
            t.cmd(&["LPOP", "l", "-1"]),
            err("ERR value is out of range, must be positive")
        );
        assert_eq!(t.cmd(&["LPOP", "l", "5"]), bulks(&["x"]));
        assert_eq!(t.cmd(&["LLEN", "l"]), Reply::Int(0));
        assert_eq!(t.cmd(&["LPOP", "l"]), Reply::Null);
        assert_eq!(t.cmd(&["LPOP", "l", "1"]), Reply::NullArray);
        assert_eq!(t.db.key_count(), 0);
        assert_eq!(t.cmd(&["LPUSHX", "l", "a"]), Reply::Int(0));
        assert_eq!(t.cmd(&["RPUSH", "l", "a"]), Reply::Int(1));
        assert_eq!(t.cmd(&["RPUSHX", "l", "b"]), Reply::Int(2));
        assert_eq!(t.cmd(&["LPUSHX", "l", "c", "d"]), Reply::Int(4));
        assert_eq!(t.cmd(&["LRANGE", "l", "0", "-1"]), bulks(&["d", "c", "a", "b"]));
    }

    #[test]
    fn wrong_type() {
        let t = TestDb::new();
        // A key of another type, written directly.
        let db = t.db.clone();
        t.run(async {
            let mut tx = db.store.tx();
            let mut meta = db
                .new_collection(&mut tx, crate::redis::keys::Kind::Hash)
                .expect("version");
            meta.count = 1;
            db.save_meta(&mut tx, b"z", &meta, false).expect("saved");
            tx.commit().wait().await.expect("durable");
        });
        for c in [
            &["LPUSH", "z", "a"][..],
            &["RPUSHX", "z", "a"],
            &["LPOP", "z"],
            &["LLEN", "z"],
            &["LRANGE", "z", "0", "1"],
            &["LINDEX", "z", "0"],
            &["LSET", "z", "0", "a"],
            &["LREM", "z", "0", "a"],
            &["LTRIM", "z", "0", "1"],
            &["LINSERT", "z", "BEFORE", "a", "b"],
            &["LPOS", "z", "a"],
            &["LMOVE", "z", "l", "LEFT", "LEFT"],
        ] {
            assert_eq!(t.cmd(c), err(WRONG), "{c:?}");
        }
        t.cmd(&["RPUSH", "l", "a"]);
        assert_eq!(t.cmd(&["RPOPLPUSH", "l", "z"]), err(WRONG));
        assert_eq!(t.cmd(&["LRANGE", "l", "0", "-1"]), bulks(&["a"]));
        assert_eq!(t.cmd(&["LMOVE", "none", "z", "LEFT", "LEFT"]), Reply::Null);
        assert_eq!(t.cmd(&["LMOVE", "l", "z", "UP", "LEFT"]), err(errors::SYNTAX));
    }

    #[test]
    fn index_set_trim() {
        let t = TestDb::new();
        t.cmd(&["RPUSH", "l", "a", "b", "c", "d"]);
        assert_eq!(t.cmd(&["LINDEX", "l", "0"]), bulk("a"));
        assert_eq!(t.cmd(&["LINDEX", "l", "-1"]), bulk("d"));
        assert_eq!(t.cmd(&["LINDEX", "l", "4"]), Reply::Null);
        assert_eq!(t.cmd(&["LINDEX", "l", "x"]), err(errors::NOT_INTEGER));
        assert_eq!(t.cmd(&["LSET", "l", "-2", "C"]), Reply::ok());
        assert_eq!(t.cmd(&["LSET", "l", "9", "C"]), err(errors::INDEX_OUT_OF_RANGE));
        assert_eq!(t.cmd(&["LSET", "none", "0", "C"]), err(errors::NO_SUCH_KEY));
        assert_eq!(t.cmd(&["LTRIM", "l", "1", "-1"]), Reply::ok());
        assert_eq!(t.cmd(&["LRANGE", "l", "0", "-1"]), bulks(&["b", "C", "d"]));
        assert_eq!(t.cmd(&["LTRIM", "l", "0", "1"]), Reply::ok());
        assert_eq!(t.cmd(&["LRANGE", "l", "0", "-1"]), bulks(&["b", "C"]));
        assert_eq!(t.cmd(&["LTRIM", "l", "5", "10"]), Reply::ok());
        assert_eq!(t.cmd(&["LLEN", "l"]), Reply::Int(0));
        assert_eq!(t.db.key_count(), 0);
        assert_eq!(t.cmd(&["LTRIM", "l", "x", "1"]), err(errors::NOT_INTEGER));
    }

    #[test]
    fn rem_insert_pos() {
        let t = TestDb::new();
        t.cmd(&["RPUSH", "l", "a", "b", "a", "c", "a"]);
        assert_eq!(t.cmd(&["LREM", "l", "-1", "a"]), Reply::Int(1));
        assert_eq!(t.cmd(&["LRANGE", "l", "0", "-1"]), bulks(&["a", "b", "a", "c"]));
        assert_eq!(t.cmd(&["LREM", "l", "1", "a"]), Reply::Int(1));
        assert_eq!(t.cmd(&["LRANGE", "l", "0", "-1"]), bulks(&["b", "a", "c"]));
        assert_eq!(t.cmd(&["LINSERT", "l", "BEFORE", "a", "x"]), Reply::Int(4));
        assert_eq!(t.cmd(&["LINSERT", "l", "after", "c", "y"]), Reply::Int(5));
        assert_eq!(t.cmd(&["LINSERT", "l", "after", "zz", "y"]), Reply::Int(-1));
        assert_eq!(t.cmd(&["LINSERT", "none", "after", "zz", "y"]), Reply::Int(0));
        assert_eq!(t.cmd(&["LINSERT", "l", "middle", "zz", "y"]), err(errors::SYNTAX));
        assert_eq!(t.cmd(&["LRANGE", "l", "0", "-1"]), bulks(&["b", "x", "a", "c", "y"]));
        assert_eq!(t.cmd(&["LPUSH", "l", "a"]), Reply::Int(6));
        assert_eq!(t.cmd(&["LPOS", "l", "a"]), Reply::Int(0));
        assert_eq!(t.cmd(&["LPOS", "l", "a", "RANK", "2"]), Reply::Int(3));
        assert_eq!(t.cmd(&["LPOS", "l", "a", "RANK", "-1"]), Reply::Int(3));
        assert_eq!(
            t.cmd(&["LPOS", "l", "a", "COUNT", "0", "RANK", "-1"]),
            Reply::Array(vec![Reply::Int(3), Reply::Int(0)])
        );
        assert_eq!(t.cmd(&["LPOS", "l", "a", "MAXLEN", "2", "RANK", "2"]), Reply::Null);
        assert_eq!(t.cmd(&["LPOS", "l", "q", "COUNT", "1"]), Reply::Array(vec![]));
        assert_eq!(t.cmd(&["LPOS", "none", "q", "COUNT", "1"]), Reply::Array(vec![]));
        assert_eq!(t.cmd(&["LPOS", "none", "q"]), Reply::Null);
        assert!(matches!(t.cmd(&["LPOS", "l", "a", "RANK", "0"]), Reply::Error(_)));
        assert_eq!(
            t.cmd(&["LPOS", "l", "a", "COUNT", "-1"]),
            err("ERR COUNT can't be negative")
        );
        assert_eq!(
            t.cmd(&["LPOS", "l", "a", "MAXLEN", "-1"]),
            err("ERR MAXLEN can't be negative")
        );
        assert_eq!(t.cmd(&["LPOS", "l", "a", "FOO", "1"]), err(errors::SYNTAX));
        assert_eq!(t.cmd(&["LPOS", "l", "a", "RANK"]), err(errors::SYNTAX));
        assert_eq!(t.cmd(&["LREM", "l", "0", "a"]), Reply::Int(2));
        assert_eq!(t.cmd(&["LREM", "l", "x", "a"]), err(errors::NOT_INTEGER));
        assert_eq!(t.cmd(&["LREM", "l", "0", "b"]), Reply::Int(1));
        assert_eq!(t.cmd(&["LREM", "l", "0", "x"]), Reply::Int(1));
        assert_eq!(t.cmd(&["LREM", "l", "0", "c"]), Reply::Int(1));
        assert_eq!(t.cmd(&["LREM", "l", "0", "y"]), Reply::Int(1));
        assert_eq!(t.db.key_count(), 0);
    }

    #[test]
    fn moves_and_try_pop() {
        let t = TestDb::new();
        t.cmd(&["RPUSH", "a", "1", "2", "3"]);
        assert_eq!(t.cmd(&["LMOVE", "a", "b", "LEFT", "RIGHT"]), bulk("1"));
        assert_eq!(t.cmd(&["RPOPLPUSH", "a", "b"]), bulk("3"));
        assert_eq!(t.cmd(&["LRANGE", "b", "0", "-1"]), bulks(&["3", "1"]));
        assert_eq!(t.cmd(&["LMOVE", "b", "b", "LEFT", "RIGHT"]), bulk("3"));
        assert_eq!(t.cmd(&["LRANGE", "b", "0", "-1"]), bulks(&["1", "3"]));
        assert_eq!(t.cmd(&["RPOPLPUSH", "a", "a"]), bulk("2"));
        assert_eq!(t.cmd(&["LRANGE", "a", "0", "-1"]), bulks(&["2"]));
        assert_eq!(t.cmd(&["LMOVE", "a", "b", "RIGHT", "LEFT"]), bulk("2"));
        assert_eq!(t.cmd(&["LLEN", "a"]), Reply::Int(0));
        assert_eq!(t.cmd(&["RPOPLPUSH", "a", "b"]), Reply::Null);
        let db = t.db.clone();
        let keys = [bytes::Bytes::from_static(b"a"), bytes::Bytes::from_static(b"b")];
        let got = t.run(async {
            let mut tx = db.store.tx();
            let r = super::pop_first(&db, &mut tx, &keys, 1, false).await;
            let _ = tx.commit().wait().await;
            r
        });
        let got = got.ok().flatten();
        assert_eq!(got, Some((keys[1].clone(), vec![bytes::Bytes::from_static(b"3")])));
        assert_eq!(t.cmd(&["LRANGE", "b", "0", "-1"]), bulks(&["2", "1"]));
    }

    #[test]
    fn persists_and_expires() {
        let t = TestDb::new();
        t.set_clock_ms(1_000);
        t.cmd(&["RPUSH", "l", "a", "b", "c"]);
        t.cmd(&["LPUSH", "l", "z"]);
        t.cmd(&["LINSERT", "l", "AFTER", "a", "m"]);
        let t = t.reopen();
        assert_eq!(t.cmd(&["LRANGE", "l", "0", "-1"]), bulks(&["z", "a", "m", "b", "c"]));
        t.set_clock_ms(1_000);
        let db = t.db.clone();
        t.run(async {
            let mut tx = db.store.tx();
            let mut meta = db.meta(&tx, b"l").await.ok().flatten().expect("list exists");
            db.set_expire(&mut tx, b"l", &mut meta, 2_000).expect("expire set");
            tx.commit().wait().await.expect("durable");
        });
        assert_eq!(t.cmd(&["LREM", "l", "1", "m"]), Reply::Int(1));
        assert_eq!(t.cmd(&["LLEN", "l"]), Reply::Int(4));
        t.set_clock_ms(2_000);
        assert_eq!(t.cmd(&["LLEN", "l"]), Reply::Int(0));
        assert_eq!(t.cmd(&["LINDEX", "l", "0"]), Reply::Null);
        assert_eq!(t.cmd(&["RPUSH", "l", "n"]), Reply::Int(1));
        assert_eq!(t.cmd(&["LRANGE", "l", "0", "-1"]), bulks(&["n"]));
    }
}
