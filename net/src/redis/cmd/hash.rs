//! Hash commands: HSET HSETNX HGET HMSET HMGET HGETALL HDEL HEXISTS HLEN
//! HKEYS HVALS HINCRBY HINCRBYFLOAT HSTRLEN HSCAN HRANDFIELD.
//!
//! A hash is a meta record (count of fields) and one element per field,
//! `element_key(key, version, TAG_HASH, field) -> value`. Also home of the
//! helpers the set family shares: the collection SCAN cursor and options,
//! and a small random source for the random-element commands.

use std::cell::Cell;

use bytes::Bytes;
use lumadb_engine::storage::Storage;

use crate::glob::glob_match;
use crate::redis::db::{int_arg, syntax_error, CmdError, CmdResult, Db};
use crate::redis::keys::{self, Kind, Meta, TAG_HASH};
use crate::redis::store::Tx;
use crate::resp::num::{format_long_double, parse_f64, parse_i64};
use crate::resp::{errors, Reply};

/// HRANDFIELD/SRANDMEMBER count outside `-i64::MAX..=i64::MAX`.
pub const COUNT_RANGE: &str =
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";
/// HRANDFIELD WITHVALUES count whose doubled reply would overflow.
const COUNT_OUT_OF_RANGE: &str = "ERR value is out of range";
/// HINCRBYFLOAT increment that is not finite.
const INCR_NOT_FINITE: &str = "ERR value is NaN or Infinity";
/// Default COUNT of HSCAN/SSCAN.
const SCAN_COUNT_DEFAULT: u64 = 10;

/// Runs `name` if it belongs to this family.
pub async fn run<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, name: &str, args: &[Bytes]) -> Option<CmdResult> {
    Some(match name {
        "hset" | "hmset" => hset(db, tx, name, args).await,
        "hsetnx" => hsetnx(db, tx, args).await,
        "hget" => hget(db, tx, args).await,
        "hmget" => hmget(db, tx, args).await,
        "hgetall" => hgetall(db, tx, args, true, true).await,
        "hkeys" => hgetall(db, tx, args, true, false).await,
        "hvals" => hgetall(db, tx, args, false, true).await,
        "hdel" => hdel(db, tx, args).await,
        "hexists" => hexists(db, tx, args).await,
        "hlen" => hlen(db, tx, args).await,
        "hstrlen" => hstrlen(db, tx, args).await,
        "hincrby" => hincrby(db, tx, args).await,
        "hincrbyfloat" => hincrbyfloat(db, tx, args).await,
        "hscan" => hscan(db, tx, args).await,
        "hrandfield" => hrandfield(db, tx, args).await,
        _ => return None,
    })
}

fn field_key(key: &[u8], meta: &Meta, field: &[u8]) -> Vec<u8> {
    keys::element_key(key, meta.version, TAG_HASH, field)
}

/// The live hash at `key` for reading (`None`: absent).
async fn read_hash<S: Storage>(db: &Db<S>, tx: &Tx<'_, S>, key: &[u8]) -> Result<Option<Meta>, CmdError> {
    Db::<S>::typed(db.meta(tx, key).await?, Kind::Hash)
}

/// The hash at `key` for writing: its meta and whether it existed; a new
/// empty one (not saved) when absent.
async fn write_hash<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, key: &[u8]) -> Result<(Meta, bool), CmdError> {
    match Db::<S>::typed(db.meta_for_write(tx, key).await?, Kind::Hash)? {
        Some(m) => Ok((m, true)),
        None => Ok((db.new_collection(tx, Kind::Hash)?, false)),
    }
}

async fn hset<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, name: &str, args: &[Bytes]) -> CmdResult {
    if !args.len().is_multiple_of(2) {
        return Err(CmdError::Reply(errors::wrong_arity(name)));
    }
    let key = &args[1];
    let (mut meta, existed) = write_hash(db, tx, key).await?;
    let mut added = 0;
    for pair in args[2..].chunks_exact(2) {
        let ek = field_key(key, &meta, &pair[0]);
        if tx.get(&ek).await?.is_none() {
            added += 1;
            meta.count += 1;
        }
        tx.put(&ek, &pair[1])?;
    }
    // Fields only overwritten leave the metadata as it was.
    if !existed || added > 0 {
        db.save_meta(tx, key, &meta, existed)?;
    }
    Ok(if name == "hmset" {
        Reply::ok()
    } else {
        Reply::Int(added)
    })
}

async fn hsetnx<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let (mut meta, existed) = write_hash(db, tx, key).await?;
    let ek = field_key(key, &meta, &args[2]);
    if existed && tx.get(&ek).await?.is_some() {
        return Ok(Reply::Int(0));
    }
    tx.put(&ek, &args[3])?;
    meta.count += 1;
    db.save_meta(tx, key, &meta, existed)?;
    Ok(Reply::Int(1))
}

async fn hget<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let Some(meta) = read_hash(db, tx, key).await? else {
        return Ok(Reply::Null);
    };
    Ok(match tx.get(&field_key(key, &meta, &args[2])).await? {
        Some(v) => Reply::bulk(v),
        None => Reply::Null,
    })
}

async fn hmget<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let meta = read_hash(db, tx, key).await?;
    let mut out = Vec::with_capacity(args.len() - 2);
    for field in &args[2..] {
        let v = match &meta {
            Some(m) => tx.get(&field_key(key, m, field)).await?,
            None => None,
        };
        out.push(v.map_or(Reply::Null, Reply::bulk));
    }
    Ok(Reply::Array(out))
}

/// HGETALL (a map), HKEYS, HVALS.
async fn hgetall<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes], fields: bool, values: bool) -> CmdResult {
    let key = &args[1];
    let pairs = match read_hash(db, tx, key).await? {
        Some(meta) => db.elements(tx, key, &meta, TAG_HASH).await?,
        None => Vec::new(),
    };
    let field = |ek: &[u8]| Reply::bulk(Bytes::copy_from_slice(keys::element_rest(ek, key)));
    Ok(match (fields, values) {
        (true, true) => Reply::Map(pairs.into_iter().map(|(k, v)| (field(&k), Reply::bulk(v))).collect()),
        (true, false) => Reply::Array(pairs.iter().map(|(k, _)| field(k)).collect()),
        _ => Reply::Array(pairs.into_iter().map(|(_, v)| Reply::bulk(v)).collect()),
    })
}

async fn hdel<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let Some(mut meta) = Db::<S>::typed(db.meta_for_write(tx, key).await?, Kind::Hash)? else {
        return Ok(Reply::Int(0));
    };
    let removed = db.remove_elements(tx, key, &mut meta, TAG_HASH, &args[2..]).await?;
    Ok(Reply::Int(removed))
}

async fn hexists<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let Some(meta) = read_hash(db, tx, key).await? else {
        return Ok(Reply::Int(0));
    };
    Ok(Reply::Int(i64::from(
        tx.get(&field_key(key, &meta, &args[2])).await?.is_some(),
    )))
}

async fn hlen<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let meta = read_hash(db, tx, &args[1]).await?;
    Ok(Reply::Int(meta.map_or(0, |m| m.count as i64)))
}

async fn hstrlen<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let Some(meta) = read_hash(db, tx, key).await? else {
        return Ok(Reply::Int(0));
    };
    let v = tx.get(&field_key(key, &meta, &args[2])).await?;
    Ok(Reply::Int(v.map_or(0, |v| v.len() as i64)))
}

async fn hincrby<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let incr = int_arg(&args[3])?;
    let (mut meta, existed) = write_hash(db, tx, key).await?;
    let ek = field_key(key, &meta, &args[2]);
    let old = match tx.get(&ek).await? {
        Some(v) => Some(parse_i64(&v).ok_or_else(|| CmdError::msg(errors::NOT_INTEGER_HASH))?),
        None => None,
    };
    let new = old
        .unwrap_or(0)
        .checked_add(incr)
        .ok_or_else(|| CmdError::msg(errors::OVERFLOW))?;
    tx.put(&ek, itoa::Buffer::new().format(new).as_bytes())?;
    if old.is_none() {
        meta.count += 1;
        db.save_meta(tx, key, &meta, existed)?;
    }
    Ok(Reply::Int(new))
}

async fn hincrbyfloat<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let incr = crate::redis::db::float_arg(&args[3])?;
    if !incr.is_finite() {
        return Err(CmdError::msg(INCR_NOT_FINITE));
    }
    let (mut meta, existed) = write_hash(db, tx, key).await?;
    let ek = field_key(key, &meta, &args[2]);
    let old = match tx.get(&ek).await? {
        Some(v) => Some(parse_f64(&v).ok_or_else(|| CmdError::msg(errors::NOT_FLOAT_HASH))?),
        None => None,
    };
    let new = old.unwrap_or(0.0) + incr;
    if !new.is_finite() {
        return Err(CmdError::msg(errors::INCR_NAN_OR_INF));
    }
    let mut text = Vec::new();
    format_long_double(new, &mut text);
    tx.put(&ek, &text)?;
    if old.is_none() {
        meta.count += 1;
        db.save_meta(tx, key, &meta, existed)?;
    }
    Ok(Reply::bulk(text))
}

/// Parses a SCAN cursor as Redis's `strtoul` check: no leading space,
/// optional sign (a negative cursor wraps), digits, nothing after, no
/// overflow; the empty string is cursor 0.
pub fn parse_scan_cursor(b: &[u8]) -> Result<u64, CmdError> {
    let invalid = || CmdError::msg(errors::CURSOR_INVALID);
    let (negative, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, b),
    };
    if b.is_empty() {
        return Ok(0);
    }
    if digits.is_empty() {
        return Err(invalid());
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return Err(invalid());
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or_else(invalid)?;
    }
    Ok(if negative { v.wrapping_neg() } else { v })
}

/// The MATCH pattern (`None`: everything) and COUNT of HSCAN/SSCAN
/// options `opts`, parsed as Redis 7.0 does.
pub fn parse_scan_options(opts: &[Bytes]) -> Result<(Option<&[u8]>, u64), CmdError> {
    let mut pattern = None;
    let mut count = SCAN_COUNT_DEFAULT;
    let mut i = 0;
    while i < opts.len() {
        let has_value = opts.len() - i >= 2;
        if has_value && opts[i].eq_ignore_ascii_case(b"count") {
            let n = int_arg(&opts[i + 1])?;
            if n < 1 {
                return Err(syntax_error());
            }
            count = n as u64;
        } else if has_value && opts[i].eq_ignore_ascii_case(b"match") {
            let p = &opts[i + 1][..];
            pattern = if p == b"*" { None } else { Some(p) };
        } else {
            return Err(syntax_error());
        }
        i += 2;
    }
    Ok((pattern, count))
}

/// One page of a collection scan (HSCAN, SSCAN, ZSCAN): up to `count`
/// elements of `tag` in element order (as (rest, value)) from where
/// `cursor` left off, and the next cursor (0 at the end). A cursor is a
/// token for the element key to go on from ([`Db::save_scan_cursor`]),
/// not a position: elements deleted during a scan move nothing, so every
/// element present for the whole scan is returned, as Redis promises,
/// and each call reads only its page.
pub async fn scan_page<S: Storage>(
    db: &Db<S>,
    tx: &Tx<'_, S>,
    key: &[u8],
    meta: &Meta,
    tag: u8,
    cursor: u64,
    count: u64,
) -> Result<(u64, Vec<(Vec<u8>, Vec<u8>)>), CmdError> {
    let (start, end) = keys::tag_range(key, meta.version, tag);
    let from = match cursor {
        0 => start,
        token => {
            let resume = db
                .scan_cursor(token)
                .ok_or_else(|| CmdError::msg(errors::CURSOR_INVALID))?;
            // A token of another key (or of this key before it was
            // replaced) starts at the range's nearer end.
            resume.max(start)
        }
    };
    if from >= end {
        return Ok((0, Vec::new()));
    }
    let page_len = usize::try_from(count).unwrap_or(usize::MAX).min(SCAN_PAGE_ELEMENTS_MAX);
    let mut rows = tx.scan(&from, &end, page_len.saturating_add(1)).await?;
    let next = if rows.len() > page_len {
        let (resume, _) = rows.pop().expect("more rows than the page");
        db.save_scan_cursor(resume, cursor)
    } else {
        0
    };
    let page = rows
        .into_iter()
        .map(|(k, v)| (keys::element_rest(&k, key).to_vec(), v))
        .collect();
    Ok((next, page))
}

/// Elements one scan call returns at most, whatever its COUNT (the page
/// is read into memory whole).
pub const SCAN_PAGE_ELEMENTS_MAX: usize = 100_000;

/// The SCAN reply: `[cursor, items]`.
pub fn scan_reply(next: u64, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![
        Reply::bulk(Bytes::from(itoa::Buffer::new().format(next).to_string())),
        Reply::Array(items),
    ])
}

/// Whether an element named `name` passes a SCAN MATCH pattern.
pub fn scan_matches(pattern: Option<&[u8]>, name: &[u8]) -> bool {
    pattern.is_none_or(|p| glob_match(p, name, false))
}

async fn hscan<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let cursor = parse_scan_cursor(&args[2])?;
    let Some(meta) = read_hash(db, tx, key).await? else {
        return Ok(scan_reply(0, Vec::new()));
    };
    let (pattern, count) = parse_scan_options(&args[3..])?;
    let (next, page) = scan_page(db, tx, key, &meta, TAG_HASH, cursor, count).await?;
    let mut items = Vec::with_capacity(page.len() * 2);
    for (field, value) in page {
        if scan_matches(pattern, &field) {
            items.push(Reply::bulk(field));
            items.push(Reply::bulk(value));
        }
    }
    Ok(scan_reply(next, items))
}

/// A pseudo-random 64-bit number (splitmix64 over a per-thread state
/// seeded from the process's hash seed). Not for cryptography.
pub fn random_u64() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64)
        });
    }
    STATE.with(|s| {
        let mut z = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// A pseudo-random number in `0..n` (`n > 0`).
pub fn random_below(n: u64) -> u64 {
    assert!(n > 0);
    random_u64() % n
}

/// `count` distinct positions of `0..len` (`count < len`), in random
/// order: a partial Fisher-Yates shuffle.
pub fn random_distinct(len: usize, count: usize) -> Vec<usize> {
    assert!(count <= len);
    let mut idx: Vec<usize> = (0..len).collect();
    for i in 0..count {
        let j = i + random_below((len - i) as u64) as usize;
        idx.swap(i, j);
    }
    idx.truncate(count);
    idx
}

/// Most elements a random-element command (HRANDFIELD, SRANDMEMBER,
/// ZRANDMEMBER) answers with a negative count. Redis streams such replies;
/// LumaDB builds a reply whole, so a count of -9e18 must not become an
/// allocation that aborts the server.
pub const RANDOM_PICKS_MAX: u64 = 1 << 22;

/// Positions of `0..len` (`len > 0`) for a random-element command's
/// `count` (non-zero): with `count < 0`, `-count` positions with repeats;
/// with `count >= len`, every position in order; else `count` distinct
/// positions in random order.
pub fn random_picks(len: usize, count: i64) -> Result<Vec<usize>, CmdError> {
    assert!(len > 0 && count != 0);
    Ok(if count < 0 {
        if count.unsigned_abs() > RANDOM_PICKS_MAX {
            return Err(CmdError::msg(COUNT_OUT_OF_RANGE));
        }
        (0..count.unsigned_abs())
            .map(|_| random_below(len as u64) as usize)
            .collect()
    } else if count as u64 >= len as u64 {
        (0..len).collect()
    } else {
        random_distinct(len, count as usize)
    })
}

/// The element of `tag` at ordinal `n` (`n < meta.count`), as
/// (rest, value): a scan bounded by `n + 1`.
pub async fn element_at<S: Storage>(
    tx: &Tx<'_, S>,
    key: &[u8],
    meta: &Meta,
    tag: u8,
    n: u64,
) -> Result<Option<(Vec<u8>, Vec<u8>)>, CmdError> {
    let (start, end) = keys::tag_range(key, meta.version, tag);
    let limit = usize::try_from(n.saturating_add(1)).unwrap_or(usize::MAX);
    let rows = tx.scan(&start, &end, limit).await?;
    Ok(rows
        .into_iter()
        .nth(usize::try_from(n).unwrap_or(usize::MAX))
        .map(|(k, v)| (keys::element_rest(&k, key).to_vec(), v)))
}

/// Parses a random-element count (HRANDFIELD, SRANDMEMBER): an integer
/// in `-i64::MAX..=i64::MAX`.
pub fn random_count_arg(b: &[u8]) -> Result<i64, CmdError> {
    let n = int_arg(b)?;
    if n == i64::MIN {
        return Err(CmdError::msg(COUNT_RANGE));
    }
    Ok(n)
}

async fn hrandfield<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    if args.len() == 2 {
        let Some(meta) = read_hash(db, tx, key).await? else {
            return Ok(Reply::Null);
        };
        let n = random_below(meta.count.max(1));
        return Ok(match element_at(tx, key, &meta, TAG_HASH, n).await? {
            Some((field, _)) => Reply::bulk(field),
            None => Reply::Null,
        });
    }
    let count = random_count_arg(&args[2])?;
    if args.len() > 4 || (args.len() == 4 && !args[3].eq_ignore_ascii_case(b"withvalues")) {
        return Err(syntax_error());
    }
    let with_values = args.len() == 4;
    if with_values && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Err(CmdError::msg(COUNT_OUT_OF_RANGE));
    }
    let Some(meta) = read_hash(db, tx, key).await? else {
        return Ok(Reply::Array(Vec::new()));
    };
    if count == 0 {
        return Ok(Reply::Array(Vec::new()));
    }
    let all = db.elements(tx, key, &meta, TAG_HASH).await?;
    if all.is_empty() {
        return Ok(Reply::Array(Vec::new()));
    }
    let picks = random_picks(all.len(), count)?;
    let mut out = Vec::with_capacity(picks.len() * if with_values { 2 } else { 1 });
    for i in picks {
        let (k, v) = &all[i];
        out.push(Reply::bulk(Bytes::copy_from_slice(keys::element_rest(k, key))));
        if with_values {
            out.push(Reply::bulk(Bytes::copy_from_slice(v)));
        }
    }
    Ok(if with_values {
        Reply::Pairs(out)
    } else {
        Reply::Array(out)
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use crate::redis::testkit::{bulk, bulks, err, TestDb};
    use crate::resp::{errors, Reply};

    fn int(n: i64) -> Reply {
        Reply::Int(n)
    }

    #[test]
    fn set_get_and_counts() {
        let t = TestDb::new();
        assert_eq!(t.cmd(&["HSET", "h", "a", "1", "b", "2", "a", "3"]), int(2));
        assert_eq!(t.cmd(&["HGET", "h", "a"]), bulk("3"));
        assert_eq!(t.cmd(&["HGET", "h", "zz"]), Reply::Null);
        assert_eq!(t.cmd(&["HGET", "nokey", "a"]), Reply::Null);
        assert_eq!(t.cmd(&["HLEN", "h"]), int(2));
        assert_eq!(t.cmd(&["HLEN", "nokey"]), int(0));
        assert_eq!(t.cmd(&["HMSET", "h", "c", "33"]), Reply::ok());
        assert_eq!(t.cmd(&["HSETNX", "h", "c", "x"]), int(0));
        assert_eq!(t.cmd(&["HSETNX", "h", "d", "4"]), int(1));
        assert_eq!(t.cmd(&["HSETNX", "new", "d", "4"]), int(1));
        assert_eq!(
            t.cmd(&["HMGET", "h", "a", "zz", "c"]),
            Reply::Array(vec![bulk("3"), Reply::Null, bulk("33")])
        );
        assert_eq!(t.cmd(&["HMGET", "nokey", "a"]), Reply::Array(vec![Reply::Null]));
        assert_eq!(
            t.cmd(&["HGETALL", "h"]),
            Reply::Map(vec![
                (bulk("a"), bulk("3")),
                (bulk("b"), bulk("2")),
                (bulk("c"), bulk("33")),
                (bulk("d"), bulk("4")),
            ])
        );
        assert_eq!(t.cmd(&["HGETALL", "nokey"]), Reply::Map(vec![]));
        assert_eq!(t.cmd(&["HKEYS", "h"]), bulks(&["a", "b", "c", "d"]));
        assert_eq!(t.cmd(&["HVALS", "h"]), bulks(&["3", "2", "33", "4"]));
        assert_eq!(t.cmd(&["HKEYS", "nokey"]), bulks(&[]));
        assert_eq!(t.cmd(&["HEXISTS", "h", "a"]), int(1));
        assert_eq!(t.cmd(&["HEXISTS", "h", "zz"]), int(0));
        assert_eq!(t.cmd(&["HEXISTS", "nokey", "a"]), int(0));
        assert_eq!(t.cmd(&["HSTRLEN", "h", "c"]), int(2));
        assert_eq!(t.cmd(&["HSTRLEN", "h", "zz"]), int(0));
        assert_eq!(t.cmd(&["HSTRLEN", "nokey", "zz"]), int(0));
        assert_eq!(t.cmd(&["HSET", "h", "", ""]), int(1));
        assert_eq!(t.cmd(&["HGET", "h", ""]), bulk(""));
    }

    #[test]
    fn arity_and_wrong_type() {
        let t = TestDb::new();
        assert_eq!(
            t.cmd(&["HSET", "h", "a"]),
            err("ERR wrong number of arguments for 'hset' command")
        );
        assert_eq!(
            t.cmd(&["HSET", "h", "a", "1", "b"]),
            err("ERR wrong number of arguments for 'hset' command")
        );
        assert_eq!(
            t.cmd(&["HMSET", "h", "a", "1", "b"]),
            err("ERR wrong number of arguments for 'hmset' command")
        );
        assert_eq!(t.cmd(&["HGET", "h", "a"]), Reply::Null);
        assert_eq!(t.cmd(&["SADD", "s", "m"]), int(1));
        for c in [
            &["HSET", "s", "a", "1"][..],
            &["HSETNX", "s", "a", "1"],
            &["HGET", "s", "a"],
            &["HMGET", "s", "a"],
            &["HGETALL", "s"],
            &["HKEYS", "s"],
            &["HVALS", "s"],
            &["HDEL", "s", "a"],
            &["HEXISTS", "s", "a"],
            &["HLEN", "s"],
            &["HSTRLEN", "s", "a"],
            &["HINCRBY", "s", "a", "1"],
            &["HINCRBYFLOAT", "s", "a", "1"],
            &["HSCAN", "s", "0"],
            &["HRANDFIELD", "s"],
            &["HRANDFIELD", "s", "2"],
        ] {
            assert_eq!(t.cmd(c), err(errors::WRONGTYPE), "{c:?}");
        }
        // Argument errors come before the type check.
        assert_eq!(t.cmd(&["HINCRBY", "s", "a", "x"]), err(errors::NOT_INTEGER));
        assert_eq!(t.cmd(&["HSCAN", "s", "x"]), err(errors::CURSOR_INVALID));
    }

    #[test]
    fn delete_and_empty_keys() {
        let t = TestDb::new();
        t.cmd(&["HSET", "h", "a", "1", "b", "2"]);
        assert_eq!(t.cmd(&["HDEL", "h", "a", "zz", "a"]), int(1));
        assert_eq!(t.cmd(&["HDEL", "nokey", "a"]), int(0));
        assert_eq!(t.cmd(&["HLEN", "h"]), int(1));
        assert_eq!(t.cmd(&["HDEL", "h", "b"]), int(1));
        assert_eq!(t.cmd(&["HLEN", "h"]), int(0));
        assert_eq!(t.db.key_count(), 0);
        // The key is gone: another type may take it.
        assert_eq!(t.cmd(&["SADD", "h", "x"]), int(1));
        assert_eq!(t.cmd(&["HGET", "h", "a"]), err(errors::WRONGTYPE));
    }

    #[test]
    fn incr() {
        let t = TestDb::new();
        assert_eq!(t.cmd(&["HINCRBY", "h", "n", "5"]), int(5));
        assert_eq!(t.cmd(&["HINCRBY", "h", "n", "-7"]), int(-2));
        assert_eq!(t.cmd(&["HLEN", "h"]), int(1));
        assert_eq!(t.cmd(&["HINCRBY", "h", "n", "x"]), err(errors::NOT_INTEGER));
        t.cmd(&["HSET", "h", "max", "9223372036854775807", "s", "hello", "sp", " 1"]);
        assert_eq!(t.cmd(&["HINCRBY", "h", "max", "1"]), err(errors::OVERFLOW));
        assert_eq!(t.cmd(&["HINCRBY", "h", "s", "1"]), err(errors::NOT_INTEGER_HASH));
        assert_eq!(t.cmd(&["HINCRBY", "h", "sp", "1"]), err(errors::NOT_INTEGER_HASH));
        assert_eq!(t.cmd(&["HINCRBYFLOAT", "h", "f", "0.1"]), bulk("0.1"));
        assert_eq!(t.cmd(&["HINCRBYFLOAT", "h", "f", "0.2"]), bulk("0.3"));
        assert_eq!(t.cmd(&["HGET", "h", "f"]), bulk("0.3"));
        assert_eq!(t.cmd(&["HINCRBYFLOAT", "h", "n", "1.0e1"]), bulk("8"));
        assert_eq!(t.cmd(&["HINCRBYFLOAT", "h", "s", "1"]), err(errors::NOT_FLOAT_HASH));
        assert_eq!(t.cmd(&["HINCRBYFLOAT", "h", "f", "abc"]), err(errors::NOT_FLOAT));
        assert_eq!(
            t.cmd(&["HINCRBYFLOAT", "h", "f", "inf"]),
            err("ERR value is NaN or Infinity")
        );
        t.cmd(&["HSET", "h", "big", "1.7e308"]);
        assert_eq!(
            t.cmd(&["HINCRBYFLOAT", "h", "big", "1.7e308"]),
            err(errors::INCR_NAN_OR_INF)
        );
        assert_eq!(t.cmd(&["HLEN", "h"]), int(6));
        // A failed increment on a missing key creates nothing.
        assert_eq!(t.cmd(&["HINCRBYFLOAT", "nokey", "f", "nan"]), err(errors::NOT_FLOAT));
        assert_eq!(t.cmd(&["HLEN", "nokey"]), int(0));
    }

    #[test]
    fn cursor_parsing() {
        use super::parse_scan_cursor;
        assert_eq!(parse_scan_cursor(b"").ok(), Some(0));
        assert_eq!(parse_scan_cursor(b"+0").ok(), Some(0));
        assert_eq!(parse_scan_cursor(b"17").ok(), Some(17));
        assert_eq!(parse_scan_cursor(b"-1").ok(), Some(u64::MAX));
        assert!(parse_scan_cursor(b" 1").is_err());
        assert!(parse_scan_cursor(b"+").is_err());
        assert!(parse_scan_cursor(b"1x").is_err());
        assert!(parse_scan_cursor(b"99999999999999999999999").is_err());
    }

    #[test]
    fn scan() {
        let t = TestDb::new();
        let empty = Reply::Array(vec![bulk("0"), Reply::Array(vec![])]);
        assert_eq!(t.cmd(&["HSCAN", "nokey", "0"]), empty);
        // A missing key answers before the options are parsed, as in Redis.
        assert_eq!(t.cmd(&["HSCAN", "nokey", "0", "COUNT", "0"]), empty);
        for i in 0..25 {
            t.cmd(&["HSET", "h", &format!("f{i:02}"), &i.to_string()]);
        }
        let mut cursor = "0".to_string();
        let mut seen = Vec::new();
        let mut calls = 0;
        loop {
            let Reply::Array(r) = t.cmd(&["HSCAN", "h", &cursor]) else {
                panic!()
            };
            let (Reply::Bulk(c), Reply::Array(items)) = (&r[0], &r[1]) else {
                panic!()
            };
            seen.extend(items.chunks(2).map(|p| p[0].clone()));
            cursor = String::from_utf8(c.to_vec()).unwrap();
            calls += 1;
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(calls, 3);
        assert_eq!(seen.len(), 25);
        assert_eq!(
            t.cmd(&["HSCAN", "h", "0", "MATCH", "f1*", "COUNT", "100"]),
            Reply::Array(vec![
                bulk("0"),
                bulks(&[
                    "f10", "10", "f11", "11", "f12", "12", "f13", "13", "f14", "14", "f15", "15", "f16", "16", "f17",
                    "17", "f18", "18", "f19", "19"
                ]),
            ])
        );
        let Reply::Array(first) = t.cmd(&["HSCAN", "h", "0", "count", "1"]) else {
            panic!()
        };
        assert_eq!(first[1], bulks(&["f00", "0"]));
        let Reply::Bulk(token) = &first[0] else { panic!() };
        let token = std::str::from_utf8(token).unwrap().to_string();
        assert_ne!(token, "0");
        let Reply::Array(second) = t.cmd(&["HSCAN", "h", &token, "count", "1", "match", "*"]) else {
            panic!()
        };
        assert_eq!(second[1], bulks(&["f01", "1"]));
        // A cursor is a token the server handed out, not a position.
        assert_eq!(t.cmd(&["HSCAN", "h", "99999"]), err(errors::CURSOR_INVALID));
        assert_eq!(t.cmd(&["HSCAN", "h", "0", "COUNT", "0"]), err(errors::SYNTAX));
        assert_eq!(t.cmd(&["HSCAN", "h", "0", "COUNT", "x"]), err(errors::NOT_INTEGER));
        assert_eq!(t.cmd(&["HSCAN", "h", "0", "COUNT"]), err(errors::SYNTAX));
        assert_eq!(t.cmd(&["HSCAN", "h", "0", "TYPE", "hash"]), err(errors::SYNTAX));
        assert_eq!(t.cmd(&["HSCAN", "h", "0", "NOVALUES"]), err(errors::SYNTAX));
    }

    /// The cursor of a HSCAN reply.
    fn next_cursor(r: &Reply) -> String {
        let Reply::Array(r) = r else { panic!("{r:?}") };
        let Reply::Bulk(c) = &r[0] else { panic!() };
        std::str::from_utf8(c).unwrap().to_string()
    }

    #[test]
    fn a_paused_scan_keeps_its_cursor_while_others_scan_and_after_retries() {
        let t = TestDb::new();
        for i in 0..30 {
            t.cmd(&["HSET", "h", &format!("f{i:02}"), "v"]);
            t.cmd(&["HSET", "other", &format!("f{i:02}"), "v"]);
        }
        let paused = next_cursor(&t.cmd(&["HSCAN", "h", "0", "COUNT", "10"]));
        // Other clients: 6,000 scans abandoned after a page, and 20,000
        // pages of scans that run to the end.
        for _ in 0..6_000 {
            t.cmd(&["HSCAN", "other", "0", "COUNT", "1"]);
        }
        for _ in 0..700 {
            let mut c = "0".to_string();
            loop {
                c = next_cursor(&t.cmd(&["HSCAN", "other", &c, "COUNT", "1"]));
                if c == "0" {
                    break;
                }
            }
        }
        let page = t.cmd(&["HSCAN", "h", &paused, "COUNT", "10"]);
        let Reply::Array(items) = &page else { panic!() };
        assert_eq!(
            items[1],
            bulks(&[
                "f10", "v", "f11", "v", "f12", "v", "f13", "v", "f14", "v", "f15", "v", "f16", "v", "f17", "v", "f18",
                "v", "f19", "v"
            ])
        );
        // A retried page answers the same elements.
        let Reply::Array(again) = t.cmd(&["HSCAN", "h", &paused, "COUNT", "10"]) else {
            panic!()
        };
        assert_eq!(again[1], items[1]);
        let next = next_cursor(&page);
        let t = t.reopen();
        // A cursor from before a restart names nothing in the new process.
        assert_eq!(t.cmd(&["HSCAN", "h", &next]), err(errors::CURSOR_INVALID));
    }

    #[test]
    fn a_scan_returns_every_element_present_throughout_despite_deletions() {
        let t = TestDb::new();
        for i in 0..200 {
            t.cmd(&["HSET", "h", &format!("f{i:03}"), "v"]);
        }
        let mut cursor = "0".to_string();
        let mut seen = std::collections::BTreeSet::new();
        let mut deleted = std::collections::BTreeSet::new();
        loop {
            let Reply::Array(r) = t.cmd(&["HSCAN", "h", &cursor, "COUNT", "7"]) else {
                panic!()
            };
            let Reply::Bulk(next) = &r[0] else { panic!() };
            let Reply::Array(items) = &r[1] else { panic!() };
            for pair in items.chunks(2) {
                let Reply::Bulk(f) = &pair[0] else { panic!() };
                seen.insert(f.clone());
                // Deleting what was already returned moves nothing.
                if seen.len() % 2 == 0 {
                    t.cmd(&["HDEL", "h", std::str::from_utf8(f).unwrap()]);
                    deleted.insert(f.clone());
                }
            }
            cursor = std::str::from_utf8(next).unwrap().to_string();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 200, "every field was returned once");
        assert_eq!(deleted.len(), 100);
    }

    #[test]
    fn randfield() {
        let t = TestDb::new();
        assert_eq!(t.cmd(&["HRANDFIELD", "nokey"]), Reply::Null);
        assert_eq!(t.cmd(&["HRANDFIELD", "nokey", "3"]), bulks(&[]));
        assert_eq!(t.cmd(&["HRANDFIELD", "nokey", "-3", "WITHVALUES"]), bulks(&[]));
        t.cmd(&["HSET", "h", "a", "1", "b", "2", "c", "3"]);
        for _ in 0..20 {
            let Reply::Bulk(f) = t.cmd(&["HRANDFIELD", "h"]) else {
                panic!()
            };
            assert!([&b"a"[..], b"b", b"c"].contains(&&f[..]));
        }
        assert_eq!(t.cmd(&["HRANDFIELD", "h", "0"]), bulks(&[]));
        assert_eq!(t.cmd(&["HRANDFIELD", "h", "5"]), bulks(&["a", "b", "c"]));
        assert_eq!(
            t.cmd(&["HRANDFIELD", "h", "3", "withvalues"]),
            bulks(&["a", "1", "b", "2", "c", "3"])
        );
        let Reply::Array(two) = t.cmd(&["HRANDFIELD", "h", "2"]) else {
            panic!()
        };
        assert_eq!(two.len(), 2);
        assert_ne!(two[0], two[1]);
        let Reply::Array(many) = t.cmd(&["HRANDFIELD", "h", "-7", "WITHVALUES"]) else {
            panic!()
        };
        assert_eq!(many.len(), 14);
        for p in many.chunks(2) {
            let (Reply::Bulk(f), Reply::Bulk(v)) = (&p[0], &p[1]) else {
                panic!()
            };
            assert_eq!(f[0] - b'a' + b'1', v[0]);
        }
        assert_eq!(t.cmd(&["HRANDFIELD", "h", "x"]), err(errors::NOT_INTEGER));
        assert_eq!(t.cmd(&["HRANDFIELD", "h", "1", "foo"]), err(errors::SYNTAX));
        assert_eq!(t.cmd(&["HRANDFIELD", "h", "1", "withvalues", "x"]), err(errors::SYNTAX));
        assert_eq!(
            t.cmd(&["HRANDFIELD", "h", "-9223372036854775808"]),
            err(super::COUNT_RANGE)
        );
        assert_eq!(
            t.cmd(&["HRANDFIELD", "h", "-4611686018427387904", "withvalues"]),
            err("ERR value is out of range")
        );
    }

    #[test]
    fn persists_and_expires() {
        let t = TestDb::new();
        t.set_clock_ms(1_000_000);
        t.cmd(&["HSET", "h", "a", "1", "b", "2"]);
        t.cmd(&["HSET", "e", "a", "1"]);
        // Expiry is set through the framework's meta helpers.
        t.run(async {
            let db = &t.db;
            let mut tx = db.store.tx();
            let mut m = db.meta(&tx, b"e").await.unwrap().unwrap();
            db.set_expire(&mut tx, b"e", &mut m, 1_000_500).unwrap();
            tx.commit().wait().await.unwrap();
        });
        let t = t.reopen();
        t.set_clock_ms(1_000_000);
        assert_eq!(
            t.cmd(&["HGETALL", "h"]),
            Reply::Map(vec![(bulk("a"), bulk("1")), (bulk("b"), bulk("2"))])
        );
        assert_eq!(t.cmd(&["HGET", "e", "a"]), bulk("1"));
        t.set_clock_ms(1_000_500);
        assert_eq!(t.cmd(&["HGET", "e", "a"]), Reply::Null);
        assert_eq!(t.cmd(&["HLEN", "e"]), int(0));
        // Writing to an expired hash starts a fresh one.
        assert_eq!(t.cmd(&["HSET", "e", "b", "2"]), int(1));
        assert_eq!(t.cmd(&["HGETALL", "e"]), Reply::Map(vec![(bulk("b"), bulk("2"))]));
        assert_eq!(t.db.key_count(), 2);
        let big: Vec<Bytes> = ["HSET", "bin", "\0\u{ff}", "v"]
            .iter()
            .map(|s| Bytes::from(s.to_string()))
            .collect();
        assert_eq!(t.cmd_bytes(big), int(1));
        let t = t.reopen();
        assert_eq!(t.cmd(&["HKEYS", "bin"]), bulks(&["\0\u{ff}"]));
        assert_eq!(t.cmd(&["HLEN", "e"]), int(1));
    }
}
