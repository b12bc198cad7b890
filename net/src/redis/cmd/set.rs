//! Set commands: SADD SREM SMEMBERS SISMEMBER SMISMEMBER SCARD SPOP
//! SRANDMEMBER SMOVE SINTER SUNION SDIFF SINTERSTORE SUNIONSTORE
//! SDIFFSTORE SINTERCARD SSCAN.
//!
//! A set is a meta record (count of members) and one empty-valued element
//! per member, `element_key(key, version, TAG_SET, member) -> ""`. Members
//! come back in byte order, which Redis leaves unspecified.

use std::collections::BTreeSet;

use bytes::Bytes;
use lumadb_engine::storage::Storage;

use super::hash::{
    element_at, parse_scan_cursor, parse_scan_options, random_below, random_count_arg, random_distinct, random_picks,
    scan_matches, scan_page, scan_reply,
};
use crate::redis::db::{int_arg, syntax_error, CmdError, CmdResult, Db};
use crate::redis::keys::{self, Kind, Meta, TAG_SET};
use crate::redis::store::Tx;
use crate::resp::Reply;

/// SPOP count that is negative or not an integer.
const COUNT_NOT_POSITIVE: &str = "ERR value is out of range, must be positive";

/// Runs `name` if it belongs to this family.
pub async fn run<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, name: &str, args: &[Bytes]) -> Option<CmdResult> {
    Some(match name {
        "sadd" => sadd(db, tx, args).await,
        "srem" => srem(db, tx, args).await,
        "smembers" => smembers(db, tx, args).await,
        "sismember" => sismember(db, tx, args).await,
        "smismember" => smismember(db, tx, args).await,
        "scard" => scard(db, tx, args).await,
        "spop" => spop(db, tx, args).await,
        "srandmember" => srandmember(db, tx, args).await,
        "smove" => smove(db, tx, args).await,
        "sinter" => combine(db, tx, &args[1..], Op::Inter).await.map(set_reply),
        "sunion" => combine(db, tx, &args[1..], Op::Union).await.map(set_reply),
        "sdiff" => combine(db, tx, &args[1..], Op::Diff).await.map(set_reply),
        "sinterstore" => store(db, tx, args, Op::Inter).await,
        "sunionstore" => store(db, tx, args, Op::Union).await,
        "sdiffstore" => store(db, tx, args, Op::Diff).await,
        "sintercard" => sintercard(db, tx, args).await,
        "sscan" => sscan(db, tx, args).await,
        _ => return None,
    })
}

fn member_key(key: &[u8], meta: &Meta, member: &[u8]) -> Vec<u8> {
    keys::element_key(key, meta.version, TAG_SET, member)
}

fn set_reply(members: Vec<Vec<u8>>) -> Reply {
    Reply::Set(members.into_iter().map(Reply::bulk).collect())
}

/// The live set at `key` for reading (`None`: absent).
pub(super) async fn read_set<S: Storage>(db: &Db<S>, tx: &Tx<'_, S>, key: &[u8]) -> Result<Option<Meta>, CmdError> {
    Db::<S>::typed(db.meta(tx, key).await?, Kind::Set)
}

async fn write_set<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, key: &[u8]) -> Result<Option<Meta>, CmdError> {
    Db::<S>::typed(db.meta_for_write(tx, key).await?, Kind::Set)
}

/// Every member of a set, in byte order.
pub(super) async fn members<S: Storage>(
    db: &Db<S>,
    tx: &Tx<'_, S>,
    key: &[u8],
    meta: &Meta,
) -> Result<Vec<Vec<u8>>, CmdError> {
    Ok(db
        .elements(tx, key, meta, TAG_SET)
        .await?
        .into_iter()
        .map(|(k, _)| keys::element_rest(&k, key).to_vec())
        .collect())
}

pub(super) async fn is_member<S: Storage>(
    tx: &Tx<'_, S>,
    key: &[u8],
    meta: &Meta,
    member: &[u8],
) -> Result<bool, CmdError> {
    Ok(tx.get(&member_key(key, meta, member)).await?.is_some())
}

async fn sadd<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let (mut meta, existed) = match write_set(db, tx, key).await? {
        Some(m) => (m, true),
        None => (db.new_collection(tx, Kind::Set)?, false),
    };
    let mut added = 0;
    for member in &args[2..] {
        let ek = member_key(key, &meta, member);
        if tx.get(&ek).await?.is_none() {
            tx.put(&ek, b"")?;
            added += 1;
            meta.count += 1;
        }
    }
    if added > 0 {
        db.save_meta(tx, key, &meta, existed)?;
    }
    Ok(Reply::Int(added))
}

async fn srem<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let Some(mut meta) = write_set(db, tx, key).await? else {
        return Ok(Reply::Int(0));
    };
    let removed = db.remove_elements(tx, key, &mut meta, TAG_SET, &args[2..]).await?;
    Ok(Reply::Int(removed))
}

async fn smembers<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    Ok(set_reply(match read_set(db, tx, key).await? {
        Some(meta) => members(db, tx, key, &meta).await?,
        None => Vec::new(),
    }))
}

async fn sismember<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    Ok(Reply::Int(match read_set(db, tx, key).await? {
        Some(meta) => i64::from(is_member(tx, key, &meta, &args[2]).await?),
        None => 0,
    }))
}

async fn smismember<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let meta = read_set(db, tx, key).await?;
    let mut out = Vec::with_capacity(args.len() - 2);
    for member in &args[2..] {
        let found = match &meta {
            Some(m) => is_member(tx, key, m, member).await?,
            None => false,
        };
        out.push(Reply::Int(i64::from(found)));
    }
    Ok(Reply::Array(out))
}

async fn scard<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let meta = read_set(db, tx, &args[1]).await?;
    Ok(Reply::Int(meta.map_or(0, |m| m.count as i64)))
}

async fn spop<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    if args.len() > 3 {
        return Err(syntax_error());
    }
    if args.len() == 2 {
        let Some(mut meta) = write_set(db, tx, key).await? else {
            return Ok(Reply::Null);
        };
        let n = random_below(meta.count.max(1));
        let Some((member, _)) = element_at(tx, key, &meta, TAG_SET, n).await? else {
            return Ok(Reply::Null);
        };
        tx.delete(&member_key(key, &meta, &member))?;
        meta.count -= 1;
        db.save_or_delete(tx, key, &meta, true)?;
        return Ok(Reply::bulk(member));
    }
    let count = match int_arg(&args[2]) {
        Ok(n) if n >= 0 => n as u64,
        _ => return Err(CmdError::msg(COUNT_NOT_POSITIVE)),
    };
    let Some(mut meta) = write_set(db, tx, key).await? else {
        return Ok(Reply::Set(Vec::new()));
    };
    if count == 0 {
        return Ok(Reply::Set(Vec::new()));
    }
    let all = members(db, tx, key, &meta).await?;
    if count >= all.len() as u64 {
        db.delete_key(tx, key, &meta)?;
        return Ok(set_reply(all));
    }
    let picks = random_distinct(all.len(), count as usize);
    let mut out = Vec::with_capacity(picks.len());
    for i in picks {
        tx.delete(&member_key(key, &meta, &all[i]))?;
        meta.count -= 1;
        out.push(Reply::bulk(all[i].clone()));
    }
    db.save_or_delete(tx, key, &meta, true)?;
    Ok(Reply::Set(out))
}

async fn srandmember<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    if args.len() > 3 {
        return Err(syntax_error());
    }
    if args.len() == 2 {
        let Some(meta) = read_set(db, tx, key).await? else {
            return Ok(Reply::Null);
        };
        let n = random_below(meta.count.max(1));
        return Ok(match element_at(tx, key, &meta, TAG_SET, n).await? {
            Some((member, _)) => Reply::bulk(member),
            None => Reply::Null,
        });
    }
    let count = random_count_arg(&args[2])?;
    let Some(meta) = read_set(db, tx, key).await? else {
        return Ok(Reply::Array(Vec::new()));
    };
    if count == 0 {
        return Ok(Reply::Array(Vec::new()));
    }
    let all = members(db, tx, key, &meta).await?;
    if all.is_empty() {
        return Ok(Reply::Array(Vec::new()));
    }
    let picks = random_picks(all.len(), count)?;
    Ok(Reply::Array(
        picks.into_iter().map(|i| Reply::bulk(all[i].clone())).collect(),
    ))
}

async fn smove<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let (src, dst, member) = (&args[1], &args[2], &args[3]);
    let Some(src_meta) = db.meta_for_write(tx, src).await? else {
        return Ok(Reply::Int(0));
    };
    let dst_meta = db.meta_for_write(tx, dst).await?;
    let Some(mut src_meta) = Db::<S>::typed(Some(src_meta), Kind::Set)? else {
        return Ok(Reply::Int(0));
    };
    let dst_meta = Db::<S>::typed(dst_meta, Kind::Set)?;
    if src == dst {
        return Ok(Reply::Int(i64::from(is_member(tx, src, &src_meta, member).await?)));
    }
    let ek = member_key(src, &src_meta, member);
    if tx.get(&ek).await?.is_none() {
        return Ok(Reply::Int(0));
    }
    tx.delete(&ek)?;
    src_meta.count -= 1;
    db.save_or_delete(tx, src, &src_meta, true)?;
    let (mut dst_meta, existed) = match dst_meta {
        Some(m) => (m, true),
        None => (db.new_collection(tx, Kind::Set)?, false),
    };
    let dk = member_key(dst, &dst_meta, member);
    if tx.get(&dk).await?.is_none() {
        tx.put(&dk, b"")?;
        dst_meta.count += 1;
        db.save_meta(tx, dst, &dst_meta, existed)?;
    }
    Ok(Reply::Int(1))
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Inter,
    Union,
    Diff,
}

/// SINTER/SUNION/SDIFF of `keys` (missing keys are empty sets; every key
/// is type-checked first, as Redis does).
async fn combine<S: Storage>(db: &Db<S>, tx: &Tx<'_, S>, set_keys: &[Bytes], op: Op) -> Result<Vec<Vec<u8>>, CmdError> {
    let mut sets: Vec<(&[u8], Option<Meta>)> = Vec::with_capacity(set_keys.len());
    for key in set_keys {
        sets.push((key, read_set(db, tx, key).await?));
    }
    match op {
        Op::Inter => {
            if sets.iter().any(|(_, m)| m.is_none()) {
                return Ok(Vec::new());
            }
            let mut present: Vec<(&[u8], Meta)> = sets.into_iter().filter_map(|(k, m)| m.map(|m| (k, m))).collect();
            present.sort_by_key(|(_, m)| m.count);
            let Some(((small_key, small), rest)) = present.split_first() else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            'next: for member in members(db, tx, small_key, small).await? {
                for (k, m) in rest {
                    if !is_member(tx, k, m, &member).await? {
                        continue 'next;
                    }
                }
                out.push(member);
            }
            Ok(out)
        }
        Op::Union => {
            let mut out = BTreeSet::new();
            for (k, m) in &sets {
                if let Some(m) = m {
                    out.extend(members(db, tx, k, m).await?);
                }
            }
            Ok(out.into_iter().collect())
        }
        Op::Diff => {
            let Some(((first_key, Some(first)), rest)) = sets.split_first() else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            'member: for member in members(db, tx, first_key, first).await? {
                for (k, m) in rest {
                    if let Some(m) = m {
                        if is_member(tx, k, m, &member).await? {
                            continue 'member;
                        }
                    }
                }
                out.push(member);
            }
            Ok(out)
        }
    }
}

/// SINTERSTORE/SUNIONSTORE/SDIFFSTORE: the destination is replaced by the
/// result (no expiry), or deleted when the result is empty.
async fn store<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes], op: Op) -> CmdResult {
    let dst = &args[1];
    let result = combine(db, tx, &args[2..], op).await?;
    let old = db.meta_for_write(tx, dst).await?;
    if result.is_empty() {
        if let Some(old) = &old {
            db.delete_key(tx, dst, old)?;
        }
        return Ok(Reply::Int(0));
    }
    let mut meta = db.new_collection(tx, Kind::Set)?;
    for member in &result {
        tx.put(&member_key(dst, &meta, member), b"")?;
    }
    meta.count = result.len() as u64;
    db.replace(tx, dst, old.as_ref(), &meta)?;
    Ok(Reply::Int(result.len() as i64))
}

/// The key count and LIMIT of SINTERCARD and ZINTERCARD-like commands,
/// parsed as SINTERCARD does: `(numkeys, limit)`, limit 0 = none.
pub fn parse_card_args(args: &[Bytes]) -> Result<(usize, u64), CmdError> {
    let numkeys = match crate::resp::num::parse_i64(&args[1]) {
        Some(n) if n >= 1 => n as u64,
        _ => return Err(CmdError::msg("ERR numkeys should be greater than 0")),
    };
    if numkeys > (args.len() - 2) as u64 {
        return Err(CmdError::msg("ERR Number of keys can't be greater than number of args"));
    }
    let numkeys = numkeys as usize;
    let mut limit = 0;
    let mut j = 2 + numkeys;
    while j < args.len() {
        if args[j].eq_ignore_ascii_case(b"limit") && j + 1 < args.len() {
            limit = match crate::resp::num::parse_i64(&args[j + 1]) {
                Some(n) if n >= 0 => n as u64,
                _ => return Err(CmdError::msg("ERR LIMIT can't be negative")),
            };
            j += 2;
        } else {
            return Err(syntax_error());
        }
    }
    Ok((numkeys, limit))
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]: stops counting at the
/// limit.
async fn sintercard<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let (numkeys, limit) = parse_card_args(args)?;
    let set_keys = &args[2..2 + numkeys];
    let mut sets: Vec<(&[u8], Option<Meta>)> = Vec::with_capacity(set_keys.len());
    for key in set_keys {
        sets.push((key, read_set(db, tx, key).await?));
    }
    if sets.iter().any(|(_, m)| m.is_none()) {
        return Ok(Reply::Int(0));
    }
    let mut present: Vec<(&[u8], Meta)> = sets.into_iter().filter_map(|(k, m)| m.map(|m| (k, m))).collect();
    present.sort_by_key(|(_, m)| m.count);
    let Some(((small_key, small), rest)) = present.split_first() else {
        return Ok(Reply::Int(0));
    };
    let mut count = 0u64;
    'next: for member in members(db, tx, small_key, small).await? {
        for (k, m) in rest {
            if !is_member(tx, k, m, &member).await? {
                continue 'next;
            }
        }
        count += 1;
        if limit != 0 && count >= limit {
            break;
        }
    }
    Ok(Reply::Int(count as i64))
}

async fn sscan<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let cursor = parse_scan_cursor(&args[2])?;
    let Some(meta) = read_set(db, tx, key).await? else {
        return Ok(scan_reply(0, Vec::new()));
    };
    let (pattern, count) = parse_scan_options(&args[3..])?;
    let (next, page) = scan_page(db, tx, key, &meta, TAG_SET, cursor, count).await?;
    let items = page
        .into_iter()
        .filter(|(m, _)| scan_matches(pattern, m))
        .map(|(m, _)| Reply::bulk(m))
        .collect();
    Ok(scan_reply(next, items))
}

#[cfg(test)]
mod tests {
    use crate::redis::testkit::{bulk, bulks, err, TestDb};
    use crate::resp::{errors, Reply};

    fn int(n: i64) -> Reply {
        Reply::Int(n)
    }

    fn set(items: &[&str]) -> Reply {
        Reply::Set(items.iter().map(|s| bulk(s)).collect())
    }

    #[test]
    fn add_remove_members() {
        let t = TestDb::new();
        assert_eq!(t.cmd(&["SADD", "s", "b", "a", "c", "a"]), int(3));
        assert_eq!(t.cmd(&["SADD", "s", "a"]), int(0));
        assert_eq!(t.cmd(&["SCARD", "s"]), int(3));
        assert_eq!(t.cmd(&["SCARD", "nokey"]), int(0));
        assert_eq!(t.cmd(&["SMEMBERS", "s"]), set(&["a", "b", "c"]));
        assert_eq!(t.cmd(&["SMEMBERS", "nokey"]), set(&[]));
        assert_eq!(t.cmd(&["SISMEMBER", "s", "a"]), int(1));
        assert_eq!(t.cmd(&["SISMEMBER", "s", "z"]), int(0));
        assert_eq!(t.cmd(&["SISMEMBER", "nokey", "z"]), int(0));
        assert_eq!(
            t.cmd(&["SMISMEMBER", "s", "a", "z"]),
            Reply::Array(vec![int(1), int(0)])
        );
        assert_eq!(t.cmd(&["SMISMEMBER", "nokey", "a"]), Reply::Array(vec![int(0)]));
        assert_eq!(t.cmd(&["SREM", "s", "a", "z", "a"]), int(1));
        assert_eq!(t.cmd(&["SREM", "nokey", "a"]), int(0));
        assert_eq!(t.cmd(&["SREM", "s", "b", "c"]), int(2));
        assert_eq!(t.cmd(&["SCARD", "s"]), int(0));
        assert_eq!(t.db.key_count(), 0);
        assert_eq!(t.cmd(&["HSET", "s", "f", "v"]), int(1));
    }

    #[test]
    fn wrong_type() {
        let t = TestDb::new();
        t.cmd(&["HSET", "h", "f", "v"]);
        t.cmd(&["SADD", "s", "a"]);
        for c in [
            &["SADD", "h", "a"][..],
            &["SREM", "h", "a"],
            &["SMEMBERS", "h"],
            &["SISMEMBER", "h", "a"],
            &["SMISMEMBER", "h", "a"],
            &["SCARD", "h"],
            &["SPOP", "h"],
            &["SPOP", "h", "1"],
            &["SRANDMEMBER", "h"],
            &["SRANDMEMBER", "h", "1"],
            &["SSCAN", "h", "0"],
            &["SINTER", "nokey", "h"],
            &["SINTER", "s", "h"],
            &["SUNION", "nokey", "h"],
            &["SDIFF", "nokey", "h"],
            &["SINTERSTORE", "d", "nokey", "h"],
            &["SMOVE", "s", "h", "a"],
            &["SMOVE", "h", "s", "a"],
        ] {
            assert_eq!(t.cmd(c), err(errors::WRONGTYPE), "{c:?}");
        }
        // A missing source moves nothing, whatever the destination.
        assert_eq!(t.cmd(&["SMOVE", "nokey", "h", "a"]), int(0));
    }

    #[test]
    fn huge_negative_random_counts_are_refused() {
        let t = TestDb::new();
        t.cmd(&["SADD", "s", "a", "b", "c", "d"]);
        // A huge negative count is refused, not built (it would abort the
        // server); the same helper serves HRANDFIELD and ZRANDMEMBER.
        assert_eq!(
            t.cmd(&["SRANDMEMBER", "s", "-9223372036854775807"]),
            err("ERR value is out of range")
        );
        t.cmd(&["HSET", "hh", "f", "v"]);
        assert_eq!(
            t.cmd(&["HRANDFIELD", "hh", "-9223372036854775807"]),
            err("ERR value is out of range")
        );
        t.cmd(&["ZADD", "zz", "1", "m"]);
        assert_eq!(
            t.cmd(&["ZRANDMEMBER", "zz", "-9223372036854775807"]),
            err("ERR value is out of range")
        );
        let repeated = t.cmd(&["SRANDMEMBER", "s", "-7"]);
        assert!(matches!(repeated, Reply::Array(ref v) if v.len() == 7), "{repeated:?}");
    }

    #[test]
    fn pop_and_random() {
        let t = TestDb::new();
        assert_eq!(t.cmd(&["SPOP", "nokey"]), Reply::Null);
        assert_eq!(t.cmd(&["SPOP", "nokey", "2"]), set(&[]));
        assert_eq!(t.cmd(&["SRANDMEMBER", "nokey"]), Reply::Null);
        assert_eq!(t.cmd(&["SRANDMEMBER", "nokey", "2"]), bulks(&[]));
        t.cmd(&["SADD", "s", "a", "b", "c", "d"]);
        assert_eq!(
            t.cmd(&["SPOP", "s", "-1"]),
            err("ERR value is out of range, must be positive")
        );
        assert_eq!(
            t.cmd(&["SPOP", "s", "x"]),
            err("ERR value is out of range, must be positive")
        );
        assert_eq!(t.cmd(&["SPOP", "s", "1", "2"]), err(errors::SYNTAX));
        assert_eq!(t.cmd(&["SRANDMEMBER", "s", "x"]), err(errors::NOT_INTEGER));
        assert_eq!(t.cmd(&["SRANDMEMBER", "s", "1", "2"]), err(errors::SYNTAX));
        assert_eq!(
            t.cmd(&["SRANDMEMBER", "s", "-9223372036854775808"]),
            err(super::super::hash::COUNT_RANGE)
        );
        assert_eq!(t.cmd(&["SPOP", "s", "0"]), set(&[]));
        assert_eq!(t.cmd(&["SRANDMEMBER", "s", "0"]), bulks(&[]));
        assert_eq!(t.cmd(&["SRANDMEMBER", "s", "10"]), bulks(&["a", "b", "c", "d"]));
        let Reply::Array(r) = t.cmd(&["SRANDMEMBER", "s", "3"]) else {
            panic!()
        };
        assert_eq!(r.len(), 3);
        assert!(r[0] != r[1] && r[1] != r[2] && r[0] != r[2]);
        let Reply::Array(r) = t.cmd(&["SRANDMEMBER", "s", "-9"]) else {
            panic!()
        };
        assert_eq!(r.len(), 9);
        let Reply::Bulk(one) = t.cmd(&["SRANDMEMBER", "s"]) else {
            panic!()
        };
        assert_eq!(t.cmd(&["SISMEMBER", "s", std::str::from_utf8(&one).unwrap()]), int(1));
        let Reply::Bulk(popped) = t.cmd(&["SPOP", "s"]) else {
            panic!()
        };
        assert_eq!(
            t.cmd(&["SISMEMBER", "s", std::str::from_utf8(&popped).unwrap()]),
            int(0)
        );
        assert_eq!(t.cmd(&["SCARD", "s"]), int(3));
        let Reply::Set(two) = t.cmd(&["SPOP", "s", "2"]) else {
            panic!()
        };
        assert_eq!(two.len(), 2);
        assert_ne!(two[0], two[1]);
        assert_eq!(t.cmd(&["SCARD", "s"]), int(1));
        let Reply::Set(rest) = t.cmd(&["SPOP", "s", "5"]) else {
            panic!()
        };
        assert_eq!(rest.len(), 1);
        assert_eq!(t.cmd(&["SCARD", "s"]), int(0));
        assert_eq!(t.db.key_count(), 0);
        t.cmd(&["SADD", "one", "x"]);
        assert_eq!(t.cmd(&["SPOP", "one"]), bulk("x"));
        assert_eq!(t.db.key_count(), 0);
    }

    #[test]
    fn smove() {
        let t = TestDb::new();
        t.cmd(&["SADD", "a", "x", "y"]);
        assert_eq!(t.cmd(&["SMOVE", "a", "b", "x"]), int(1));
        assert_eq!(t.cmd(&["SMOVE", "a", "b", "zz"]), int(0));
        assert_eq!(t.cmd(&["SMOVE", "a", "a", "y"]), int(1));
        assert_eq!(t.cmd(&["SMOVE", "a", "a", "zz"]), int(0));
        t.cmd(&["SADD", "b", "y"]);
        assert_eq!(t.cmd(&["SMOVE", "a", "b", "y"]), int(1));
        assert_eq!(t.cmd(&["SCARD", "a"]), int(0));
        assert_eq!(t.cmd(&["SMEMBERS", "b"]), set(&["x", "y"]));
        assert_eq!(t.db.key_count(), 1);
    }

    #[test]
    fn algebra() {
        let t = TestDb::new();
        t.cmd(&["SADD", "a", "1", "2", "3", "4"]);
        t.cmd(&["SADD", "b", "2", "3", "5"]);
        t.cmd(&["SADD", "c", "3", "6"]);
        assert_eq!(t.cmd(&["SINTER", "a", "b"]), set(&["2", "3"]));
        assert_eq!(t.cmd(&["SINTER", "a", "b", "c"]), set(&["3"]));
        assert_eq!(t.cmd(&["SINTER", "a"]), set(&["1", "2", "3", "4"]));
        assert_eq!(t.cmd(&["SINTER", "a", "nokey"]), set(&[]));
        assert_eq!(t.cmd(&["SUNION", "a", "nokey", "c"]), set(&["1", "2", "3", "4", "6"]));
        assert_eq!(t.cmd(&["SUNION", "nokey"]), set(&[]));
        assert_eq!(t.cmd(&["SDIFF", "a", "b", "nokey"]), set(&["1", "4"]));
        assert_eq!(t.cmd(&["SDIFF", "a", "b", "c"]), set(&["1", "4"]));
        assert_eq!(t.cmd(&["SDIFF", "nokey", "a"]), set(&[]));
    }

    #[test]
    fn stores() {
        let t = TestDb::new();
        t.set_clock_ms(1_000_000);
        t.cmd(&["SADD", "a", "1", "2", "3"]);
        t.cmd(&["SADD", "b", "2", "3", "4"]);
        t.cmd(&["HSET", "d", "f", "v"]);
        t.run(async {
            let db = &t.db;
            let mut tx = db.store.tx();
            let mut m = db.meta(&tx, b"d").await.unwrap().unwrap();
            db.set_expire(&mut tx, b"d", &mut m, 2_000_000).unwrap();
            tx.commit().wait().await.unwrap();
        });
        assert_eq!(t.db.expires_count(), 1);
        // Overwrites a hash with an expiry: the result has none.
        assert_eq!(t.cmd(&["SINTERSTORE", "d", "a", "b"]), int(2));
        assert_eq!(t.cmd(&["SMEMBERS", "d"]), set(&["2", "3"]));
        assert_eq!(t.db.expires_count(), 0);
        assert_eq!(t.cmd(&["SUNIONSTORE", "u", "a", "b"]), int(4));
        assert_eq!(t.cmd(&["SMEMBERS", "u"]), set(&["1", "2", "3", "4"]));
        // The destination may be a source.
        assert_eq!(t.cmd(&["SDIFFSTORE", "a", "a", "b"]), int(1));
        assert_eq!(t.cmd(&["SMEMBERS", "a"]), set(&["1"]));
        assert_eq!(t.db.key_count(), 4);
        // An empty result deletes the destination, whatever its type.
        t.cmd(&["HSET", "h", "f", "v"]);
        assert_eq!(t.cmd(&["SINTERSTORE", "h", "a", "nokey"]), int(0));
        assert_eq!(t.cmd(&["HLEN", "h"]), int(0));
        assert_eq!(t.cmd(&["SDIFFSTORE", "u", "nokey"]), int(0));
        assert_eq!(t.cmd(&["SCARD", "u"]), int(0));
        assert_eq!(t.cmd(&["SUNIONSTORE", "fresh", "nokey"]), int(0));
        assert_eq!(t.db.key_count(), 3);
        let t = t.reopen();
        assert_eq!(t.cmd(&["SMEMBERS", "d"]), set(&["2", "3"]));
        assert_eq!(t.cmd(&["SMEMBERS", "a"]), set(&["1"]));
        assert_eq!(t.db.key_count(), 3);
    }

    #[test]
    fn intercard() {
        let t = TestDb::new();
        t.cmd(&["SADD", "a", "1", "2", "3", "4"]);
        t.cmd(&["SADD", "b", "2", "3", "4", "5"]);
        t.cmd(&["HSET", "h", "f", "v"]);
        assert_eq!(t.cmd(&["SINTERCARD", "2", "a", "b"]), int(3));
        assert_eq!(t.cmd(&["SINTERCARD", "1", "a"]), int(4));
        assert_eq!(t.cmd(&["SINTERCARD", "2", "a", "b", "LIMIT", "2"]), int(2));
        assert_eq!(t.cmd(&["SINTERCARD", "2", "a", "b", "limit", "0"]), int(3));
        assert_eq!(t.cmd(&["SINTERCARD", "2", "a", "nokey"]), int(0));
        // Every key is type-checked, even after a missing one.
        assert_eq!(t.cmd(&["SINTERCARD", "2", "nokey", "h"]), err(errors::WRONGTYPE));
        let numkeys = "ERR numkeys should be greater than 0";
        assert_eq!(t.cmd(&["SINTERCARD", "0", "a"]), err(numkeys));
        assert_eq!(t.cmd(&["SINTERCARD", "x", "a"]), err(numkeys));
        assert_eq!(
            t.cmd(&["SINTERCARD", "3", "a", "b"]),
            err("ERR Number of keys can't be greater than number of args")
        );
        assert_eq!(
            t.cmd(&["SINTERCARD", "1", "a", "LIMIT", "-1"]),
            err("ERR LIMIT can't be negative")
        );
        assert_eq!(
            t.cmd(&["SINTERCARD", "1", "a", "LIMIT", "x"]),
            err("ERR LIMIT can't be negative")
        );
        assert_eq!(t.cmd(&["SINTERCARD", "1", "a", "LIMIT"]), err(errors::SYNTAX));
        assert_eq!(t.cmd(&["SINTERCARD", "1", "a", "b"]), err(errors::SYNTAX));
        // Options are parsed before the types are checked.
        assert_eq!(t.cmd(&["SINTERCARD", "1", "h", "NOPE"]), err(errors::SYNTAX));
    }

    #[test]
    fn scan() {
        let t = TestDb::new();
        let empty = Reply::Array(vec![bulk("0"), Reply::Array(vec![])]);
        assert_eq!(t.cmd(&["SSCAN", "nokey", "0"]), empty);
        for i in 0..12 {
            t.cmd(&["SADD", "s", &format!("m{i:02}")]);
        }
        let Reply::Array(r) = t.cmd(&["SSCAN", "s", "0", "COUNT", "10", "MATCH", "m0[0-2]"]) else {
            panic!()
        };
        assert_eq!(r[1], bulks(&["m00", "m01", "m02"]));
        let Reply::Bulk(token) = &r[0] else { panic!() };
        assert_eq!(
            t.cmd(&["SSCAN", "s", std::str::from_utf8(token).unwrap()]),
            Reply::Array(vec![bulk("0"), bulks(&["m10", "m11"])])
        );
        assert_eq!(t.cmd(&["SSCAN", "s", "10"]), err(errors::CURSOR_INVALID));
        let Reply::Array(r) = t.cmd(&["SSCAN", "s", "0"]) else {
            panic!()
        };
        assert_ne!(r[0], bulk("0"), "12 members take two pages of 10");
        assert_eq!(t.cmd(&["SSCAN", "s", "0", "COUNT", "-1"]), err(errors::SYNTAX));
        assert_eq!(t.cmd(&["SSCAN", "s", "x"]), err(errors::CURSOR_INVALID));
        assert_eq!(t.cmd(&["SSCAN", "s", "0", "MATCH"]), err(errors::SYNTAX));
    }

    #[test]
    fn persists_and_expires() {
        let t = TestDb::new();
        t.set_clock_ms(1_000_000);
        t.cmd(&["SADD", "s", "a", "b"]);
        t.cmd(&["SADD", "e", "x"]);
        t.run(async {
            let db = &t.db;
            let mut tx = db.store.tx();
            let mut m = db.meta(&tx, b"e").await.unwrap().unwrap();
            db.set_expire(&mut tx, b"e", &mut m, 1_000_500).unwrap();
            tx.commit().wait().await.unwrap();
        });
        let t = t.reopen();
        t.set_clock_ms(1_000_000);
        assert_eq!(t.cmd(&["SMEMBERS", "s"]), set(&["a", "b"]));
        assert_eq!(t.cmd(&["SCARD", "e"]), int(1));
        t.set_clock_ms(1_000_500);
        assert_eq!(t.cmd(&["SCARD", "e"]), int(0));
        assert_eq!(t.cmd(&["SMOVE", "e", "s", "x"]), int(0));
        assert_eq!(t.cmd(&["SUNION", "s", "e"]), set(&["a", "b"]));
        assert_eq!(t.cmd(&["SADD", "e", "y"]), int(1));
        assert_eq!(t.cmd(&["SMEMBERS", "e"]), set(&["y"]));
        assert_eq!(t.db.key_count(), 2);
    }
}
