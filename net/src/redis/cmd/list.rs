//! List commands.
//!
//! A list's elements live at indexes `meta.head..meta.tail`, stored
//! [`CHUNK_ELEMENTS`] to a key under [`keys::TAG_LIST`]: chunk `c` holds
//! the elements at indexes `c * 32 .. c * 32 + 32` that are in the list,
//! in order, each as `varint(len) bytes`. Pushes move `head` down or
//! `tail` up, pops move them back, so both ends are O(1): a push or pop
//! edits the end chunk in place (or adds or deletes it). Edits in the
//! middle (LREM, LINSERT) rewrite the list under a new generation.

use bytes::Bytes;
use lumadb_engine::batch::Edit;
use lumadb_engine::coding::{put_varint, Reader};
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

/// Elements per chunk, as a power of two: a list's elements are stored
/// [`CHUNK_ELEMENTS`] to an engine key, so a push or pop changes one
/// small value in place ([`Tx::edit`]) instead of adding or deleting a
/// key per element, and a range read touches a key per chunk.
const CHUNK_BITS: u32 = 5;
const CHUNK_ELEMENTS: i64 = 1 << CHUNK_BITS;

async fn read_meta<S: Storage>(db: &Db<S>, tx: &Tx<'_, S>, key: &[u8]) -> Result<Option<Meta>, CmdError> {
    Db::<S>::typed(db.meta(tx, key).await?, Kind::List)
}

async fn write_meta<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, key: &[u8]) -> Result<Option<Meta>, CmdError> {
    Db::<S>::typed(db.meta_for_write(tx, key).await?, Kind::List)
}

/// The chunk holding list index `index`.
fn chunk_of(index: i64) -> i64 {
    index >> CHUNK_BITS
}

fn chunk_key(key: &[u8], meta: &Meta, chunk: i64) -> Vec<u8> {
    keys::element_key(key, meta.version, TAG_LIST, &keys::list_index(chunk))
}

/// The indexes of `meta`'s elements that chunk `chunk` holds (empty
/// when it holds none, and then has no key).
fn chunk_span(meta: &Meta, chunk: i64) -> std::ops::Range<i64> {
    let lo = meta.head.max(chunk << CHUNK_BITS);
    let hi = meta.tail.min((chunk << CHUNK_BITS) + CHUNK_ELEMENTS);
    lo..hi.max(lo)
}

/// Appends `item` to a chunk's encoding.
fn encode_entry(out: &mut Vec<u8>, item: &[u8]) {
    put_varint(out, item.len() as u64);
    out.extend_from_slice(item);
}

/// Bytes `item` takes in a chunk.
fn entry_bytes(item: &[u8]) -> usize {
    let mut n = 1;
    let mut len = item.len() >> 7;
    while len > 0 {
        n += 1;
        len >>= 7;
    }
    n + item.len()
}

fn corrupt_list(key: &[u8], what: &str) -> CmdError {
    CmdError::Store(crate::redis::store::StoreError(format!(
        "malformed list {:?}: {what}",
        String::from_utf8_lossy(key)
    )))
}

/// The elements of chunk `chunk` of the list at `key`, from its stored
/// value; exactly as many as `meta` says it holds.
fn decode_chunk<'v>(key: &[u8], meta: &Meta, chunk: i64, value: &'v [u8]) -> Result<Vec<&'v [u8]>, CmdError> {
    let want = chunk_span(meta, chunk);
    let mut r = Reader::new(value);
    let mut out = Vec::with_capacity(want.clone().count());
    while !r.is_empty() {
        let item = r
            .varint_len(value.len())
            .and_then(|n| r.bytes(n))
            .ok_or_else(|| corrupt_list(key, "undecodable chunk"))?;
        out.push(item);
    }
    if out.len() as i64 != want.end - want.start {
        return Err(corrupt_list(
            key,
            &format!(
                "chunk {chunk} holds {} elements, not {}",
                out.len(),
                want.end - want.start
            ),
        ));
    }
    Ok(out)
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
    let (lo, hi) = (meta.head + from, meta.head + to);
    let (first, last) = (chunk_of(lo), chunk_of(hi - 1));
    let chunks = usize::try_from(last - first + 1).unwrap_or(usize::MAX);
    let take = |chunk: i64, value: &[u8], out: &mut Vec<Vec<u8>>| -> Result<(), CmdError> {
        let span = chunk_span(meta, chunk);
        for (index, item) in span.zip(decode_chunk(key, meta, chunk, value)?) {
            if (lo..hi).contains(&index) {
                out.push(item.to_vec());
            }
        }
        Ok(())
    };
    let mut out = Vec::with_capacity(usize::try_from(to - from).unwrap_or(0));
    // One chunk (a pop, LINDEX, a short range) is a point read, cheaper
    // than a scan, and takes its elements from the chunk where it lies.
    if first == last {
        let found = tx
            .read_with(&chunk_key(key, meta, first), |value| {
                value.map(|value| take(first, value, &mut out))
            })
            .await?;
        return match found {
            Some(taken) => taken.map(|()| out),
            None => Err(corrupt_list(key, "0 of its 1 chunks found")),
        };
    }
    let rows = tx
        .scan(&chunk_key(key, meta, first), &chunk_key(key, meta, last + 1), chunks)
        .await?;
    if rows.len() != chunks {
        return Err(corrupt_list(
            key,
            &format!("{} of its {chunks} chunks found", rows.len()),
        ));
    }
    for (chunk, (_, value)) in (first..=last).zip(&rows) {
        take(chunk, value, &mut out)?;
    }
    Ok(out)
}

/// The element at list index `index` (within `meta.head..meta.tail`).
async fn element_at<S: Storage>(tx: &Tx<'_, S>, key: &[u8], meta: &Meta, index: i64) -> Result<Vec<u8>, CmdError> {
    let mut items = read_range(tx, key, meta, index - meta.head, index - meta.head + 1).await?;
    items.pop().ok_or_else(|| corrupt_list(key, "an element is missing"))
}

async fn all_elements<S: Storage>(tx: &Tx<'_, S>, key: &[u8], meta: &Meta) -> Result<Vec<Vec<u8>>, CmdError> {
    read_range(tx, key, meta, 0, meta.len() as i64).await
}

/// Stores `items` as the elements at indexes `meta.tail..` of a list with
/// no chunks from `meta.tail` on, moving `meta.tail`.
fn put_chunks<S: Storage>(tx: &mut Tx<'_, S>, key: &[u8], meta: &mut Meta, items: &[Vec<u8>]) -> Result<(), CmdError> {
    let mut i = 0;
    while i < items.len() {
        let chunk = chunk_of(meta.tail);
        let room = ((chunk + 1) << CHUNK_BITS) - meta.tail;
        let n = (items.len() - i).min(usize::try_from(room).unwrap_or(usize::MAX));
        let mut value = Vec::new();
        for item in &items[i..i + n] {
            encode_entry(&mut value, item);
        }
        tx.put(&chunk_key(key, meta, chunk), &value)?;
        meta.tail += n as i64;
        i += n;
    }
    Ok(())
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
    put_chunks(tx, key, &mut new, items)?;
    db.replace(tx, key, Some(old), &new)?;
    Ok(())
}

/// The stored value of chunk `chunk` (engine key `ck`) of the list at
/// `key`, which its meta says holds elements.
async fn read_chunk<S: Storage>(tx: &Tx<'_, S>, key: &[u8], ck: &[u8], chunk: i64) -> Result<Vec<u8>, CmdError> {
    tx.get(ck)
        .await?
        .ok_or_else(|| corrupt_list(key, &format!("chunk {chunk} is missing")))
}

/// Applies `edit` to chunk `chunk`: in place when the store can
/// ([`Tx::edit`]), else to the value read whole.
async fn edit_chunk<S: Storage>(
    tx: &mut Tx<'_, S>,
    key: &[u8],
    meta: &Meta,
    chunk: i64,
    edit: Edit<'_>,
) -> Result<(), CmdError> {
    let ck = chunk_key(key, meta, chunk);
    if tx.edit(&ck, edit)? {
        return Ok(());
    }
    let mut value = read_chunk(tx, key, &ck, chunk).await?;
    if !edit.apply(&mut value) {
        return Err(corrupt_list(
            key,
            &format!("chunk {chunk} is shorter than its elements"),
        ));
    }
    tx.put(&ck, &value)?;
    Ok(())
}

async fn push_items<S: Storage>(
    tx: &mut Tx<'_, S>,
    key: &[u8],
    meta: &mut Meta,
    items: &[Bytes],
    left: bool,
) -> Result<(), CmdError> {
    let mut i = 0;
    while i < items.len() {
        // The next index to fill, its chunk, and how many fit there.
        let index = if left { meta.head - 1 } else { meta.tail };
        let chunk = chunk_of(index);
        let room = if left {
            index - (chunk << CHUNK_BITS) + 1
        } else {
            ((chunk + 1) << CHUNK_BITS) - index
        };
        let n = (items.len() - i).min(usize::try_from(room).unwrap_or(usize::MAX));
        let group = &items[i..i + n];
        // In index order: a left push puts its first item nearest the
        // old head, so the chunk gets them reversed.
        let mut bytes = Vec::with_capacity(group.iter().map(|g| g.len() + 2).sum());
        if left {
            group.iter().rev().for_each(|item| encode_entry(&mut bytes, item));
        } else {
            group.iter().for_each(|item| encode_entry(&mut bytes, item));
        }
        let existed = !chunk_span(meta, chunk).is_empty();
        if left {
            meta.head -= n as i64;
        } else {
            meta.tail += n as i64;
        }
        if existed {
            let edit = if left {
                Edit {
                    at: 0,
                    from_end: false,
                    remove: 0,
                    insert: &bytes,
                }
            } else {
                Edit::append(&bytes)
            };
            edit_chunk(tx, key, meta, chunk, edit).await?;
        } else {
            tx.put(&chunk_key(key, meta, chunk), &bytes)?;
        }
        i += n;
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
    push_items(tx, key, &mut meta, &args[2..], left).await?;
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
    let (lo, hi) = if left {
        (meta.head, meta.head + n)
    } else {
        (meta.tail - n, meta.tail)
    };
    let mut items = read_range(tx, key, meta, lo - meta.head, hi - meta.head).await?;
    if n > 0 {
        let mut at = 0;
        for chunk in chunk_of(lo)..=chunk_of(hi - 1) {
            let span = chunk_span(meta, chunk);
            let popped = span.start.max(lo)..span.end.min(hi);
            let count = usize::try_from(popped.end - popped.start).unwrap_or(0);
            if popped == span {
                tx.delete(&chunk_key(key, meta, chunk))?;
            } else {
                let bytes: usize = items[at..at + count].iter().map(|i| entry_bytes(i)).sum();
                let edit = if left {
                    Edit {
                        at: 0,
                        from_end: false,
                        remove: bytes,
                        insert: &[],
                    }
                } else {
                    Edit {
                        at: bytes,
                        from_end: true,
                        remove: bytes,
                        insert: &[],
                    }
                };
                edit_chunk(tx, key, meta, chunk, edit).await?;
            }
            at += count;
        }
    }
    if left {
        meta.head += n;
    } else {
        meta.tail -= n;
        items.reverse();
    }
    db.save_or_delete(tx, key, meta, true)?;
    Ok(items)
}

async fn pop_cmd<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes], left: bool) -> CmdResult {
    if args.len() > 3 {
        // Redis's arity check counts the optional count as the last argument.
        return Err(CmdError::msg(errors::wrong_arity(if left { "lpop" } else { "rpop" })));
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
    let v = element_at(tx, key, &meta, meta.head + i).await?;
    Ok(Reply::Bulk(v.into()))
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
    let index = meta.head + i;
    let chunk = chunk_of(index);
    let ck = chunk_key(key, &meta, chunk);
    let old = read_chunk(tx, key, &ck, chunk).await?;
    let mut value = Vec::with_capacity(old.len() + args[3].len());
    let span = chunk_span(&meta, chunk);
    for (at, item) in span.zip(decode_chunk(key, &meta, chunk, &old)?) {
        encode_entry(&mut value, if at == index { &args[3] } else { item });
    }
    tx.put(&ck, &value)?;
    Ok(Reply::ok())
}

async fn lrem<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let count = int_arg(&args[2])?;
    let key = &args[1];
    let target = &args[3][..];
    let Some(meta) = write_meta(db, tx, key).await? else {
        return Ok(Reply::Int(0));
    };
    let mut items = all_elements(tx, key, &meta).await?;
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
    if len > 0 {
        let kept = (meta.head + from)..(meta.head + to.max(from));
        for chunk in chunk_of(meta.head)..=chunk_of(meta.tail - 1) {
            let span = chunk_span(&meta, chunk);
            let keep = span.start.max(kept.start)..span.end.min(kept.end);
            if keep.start >= keep.end {
                tx.delete(&chunk_key(key, &meta, chunk))?;
            } else if keep != span {
                let ck = chunk_key(key, &meta, chunk);
                let old = read_chunk(tx, key, &ck, chunk).await?;
                let mut value = Vec::with_capacity(old.len());
                for (at, item) in span.zip(decode_chunk(key, &meta, chunk, &old)?) {
                    if keep.contains(&at) {
                        encode_entry(&mut value, item);
                    }
                }
                tx.put(&ck, &value)?;
            }
        }
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
    let mut items = all_elements(tx, key, &meta).await?;
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
    let items = all_elements(tx, key, &meta).await?;
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
    // The pop's chunk changes before the destination is read.
    tx.forbid_edits();
    let Some(mut src_meta) = write_meta(db, tx, src).await? else {
        return Ok(Reply::Null);
    };
    // The destination's type is checked before anything changes.
    let dst_meta = write_meta(db, tx, dst).await?;
    if src == dst && src_meta.len() == 1 {
        // Rotating a one-element list changes nothing.
        let v = element_at(tx, src, &src_meta, src_meta.head).await?;
        return Ok(Reply::Bulk(v.into()));
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
    push_items(tx, dst, &mut meta, std::slice::from_ref(&value), to_left).await?;
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
        assert_eq!(
            t.cmd(&["LPOP", "l", "1", "2"]),
            err("ERR wrong number of arguments for 'lpop' command")
        );
        assert_eq!(
            t.cmd(&["RPOP", "l", "1", "2"]),
            err("ERR wrong number of arguments for 'rpop' command")
        );
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

    /// Random pushes, pops, trims and edits against a model, with
    /// elements of sizes around the chunk encoding's boundaries, across
    /// many chunks, in both sync modes and across a reopen: the list reads
    /// back as the model after every step.
    #[test]
    fn chunked_lists_match_a_model_across_chunk_boundaries() {
        use bytes::Bytes;
        use std::collections::VecDeque;
        for sync in [false, true] {
            let mut t = if sync { TestDb::new_sync() } else { TestDb::new() };
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            let mut next = |n: u64| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed % n
            };
            let sizes = [0usize, 1, 3, 126, 127, 128, 129, 300];
            for step in 0..3000u32 {
                let item = |k: u64, tag: u32| {
                    let size = sizes[(k % sizes.len() as u64) as usize];
                    let mut v = format!("{tag}:").into_bytes();
                    v.resize(v.len().max(size), b'a' + (tag % 26) as u8);
                    v
                };
                let bytes =
                    |items: &[Vec<u8>]| -> Vec<Bytes> { items.iter().map(|v| Bytes::from(v.clone())).collect() };
                let op = next(100);
                match op {
                    0..=29 => {
                        let n = 1 + next(40) as usize;
                        let items: Vec<Vec<u8>> = (0..n).map(|j| item(next(1000), step * 100 + j as u32)).collect();
                        let left = op < 15;
                        let mut args = vec![
                            Bytes::from_static(if left { b"LPUSH" } else { b"RPUSH" }),
                            Bytes::from_static(b"l"),
                        ];
                        args.extend(bytes(&items));
                        for v in items {
                            if left {
                                model.push_front(v);
                            } else {
                                model.push_back(v);
                            }
                        }
                        assert_eq!(t.cmd_bytes(args), Reply::Int(model.len() as i64), "step {step}");
                    }
                    30..=49 => {
                        let n = 1 + next(50) as usize;
                        let left = op < 40;
                        let reply = t.cmd(&[if left { "LPOP" } else { "RPOP" }, "l", &n.to_string()]);
                        let mut want = Vec::new();
                        for _ in 0..n {
                            let v = if left { model.pop_front() } else { model.pop_back() };
                            match v {
                                Some(v) => want.push(Reply::Bulk(v.into())),
                                None => break,
                            }
                        }
                        let want = if want.is_empty() {
                            Reply::NullArray
                        } else {
                            Reply::Array(want)
                        };
                        assert_eq!(reply, want, "step {step}");
                    }
                    50..=54 if !model.is_empty() => {
                        let i = next(model.len() as u64) as usize;
                        let v = item(next(1000), step);
                        let args = vec![
                            Bytes::from_static(b"LSET"),
                            Bytes::from_static(b"l"),
                            Bytes::from(i.to_string()),
                            Bytes::from(v.clone()),
                        ];
                        assert_eq!(t.cmd_bytes(args), Reply::ok(), "step {step}");
                        model[i] = v;
                    }
                    55..=57 if !model.is_empty() => {
                        let len = model.len() as i64;
                        let a = next(len as u64 + 10) as i64 - 5;
                        let b = next(len as u64 + 10) as i64 - 5 + a.max(0);
                        assert_eq!(
                            t.cmd(&["LTRIM", "l", &a.to_string(), &b.to_string()]),
                            Reply::ok(),
                            "step {step}"
                        );
                        let (a, b) = (
                            if a < 0 { (a + len).max(0) } else { a },
                            if b < 0 { b + len } else { b },
                        );
                        let kept: VecDeque<Vec<u8>> = if a > b || a >= len {
                            VecDeque::new()
                        } else {
                            model.range(a as usize..=(b.min(len - 1)) as usize).cloned().collect()
                        };
                        model = kept;
                    }
                    58..=59 if !model.is_empty() => {
                        let i = next(model.len() as u64) as usize;
                        let pivot = model[i].clone();
                        let v = item(next(1000), step);
                        let args = vec![
                            Bytes::from_static(b"LINSERT"),
                            Bytes::from_static(b"l"),
                            Bytes::from_static(b"BEFORE"),
                            Bytes::from(pivot.clone()),
                            Bytes::from(v.clone()),
                        ];
                        let at = model.iter().position(|x| *x == pivot).unwrap();
                        model.insert(at, v);
                        assert_eq!(t.cmd_bytes(args), Reply::Int(model.len() as i64), "step {step}");
                    }
                    60..=61 => {
                        let reply = t.cmd(&["LMOVE", "l", "l", "LEFT", "RIGHT"]);
                        match model.pop_front() {
                            Some(v) => {
                                assert_eq!(reply, Reply::Bulk(v.clone().into()), "step {step}");
                                model.push_back(v);
                            }
                            None => assert_eq!(reply, Reply::Null, "step {step}"),
                        }
                    }
                    62 if sync => t = t.reopen(),
                    _ => {
                        let i = next(model.len() as u64 + 3) as i64 - 1;
                        let at = if i < 0 { i + model.len() as i64 } else { i };
                        let want = usize::try_from(at)
                            .ok()
                            .and_then(|at| model.get(at))
                            .map_or(Reply::Null, |v| Reply::Bulk(v.clone().into()));
                        assert_eq!(t.cmd(&["LINDEX", "l", &i.to_string()]), want, "step {step}");
                    }
                }
                if step % 50 == 0 || model.len() < 70 {
                    let all: Vec<Reply> = model.iter().map(|v| Reply::Bulk(v.clone().into())).collect();
                    assert_eq!(
                        t.cmd(&["LRANGE", "l", "0", "-1"]),
                        Reply::Array(all),
                        "step {step} (sync {sync})"
                    );
                    assert_eq!(t.cmd(&["LLEN", "l"]), Reply::Int(model.len() as i64));
                }
            }
            t = t.reopen();
            let all: Vec<Reply> = model.iter().map(|v| Reply::Bulk(v.clone().into())).collect();
            assert_eq!(
                t.cmd(&["LRANGE", "l", "0", "-1"]),
                Reply::Array(all),
                "after a reopen (sync {sync})"
            );
        }
    }
}
