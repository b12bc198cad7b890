//! Sorted-set commands over several keys, and random picks: ZUNION,
//! ZINTER, ZDIFF and their STORE forms, ZINTERCARD, ZRANDMEMBER.
//!
//! The inputs of the set algebra may be sorted sets or plain sets (a set
//! member counts with score 1), as in Redis. Every input is read whole
//! once; the work is bounded by the inputs' sizes. All keys are on this
//! shard: the routing layer gathers remote inputs here first.

use std::collections::HashMap;

use bytes::Bytes;
use lumadb_engine::storage::Storage;

use super::hash::{element_at, random_below, random_count_arg, random_picks};
use super::set;
use super::zset::{self, all_sorted, bulk, put_member};
use crate::redis::db::{float_arg, syntax_error, wrongtype, CmdError, CmdResult, Db};
use crate::redis::keys::{Kind, Meta, TAG_ZMEMBER};
use crate::redis::store::Tx;
use crate::resp::num::parse_i64;
use crate::resp::{errors, Reply};

/// ZRANDMEMBER count WITHSCORES beyond ±i64::MAX/2.
const COUNT_OUT_OF_RANGE: &str = "ERR value is out of range";

/// Runs `name` if it belongs to this family.
pub async fn run<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, name: &str, args: &[Bytes]) -> Option<CmdResult> {
    let (op, store, card) = match name {
        "zunion" => (Op::Union, false, false),
        "zinter" => (Op::Inter, false, false),
        "zdiff" => (Op::Diff, false, false),
        "zunionstore" => (Op::Union, true, false),
        "zinterstore" => (Op::Inter, true, false),
        "zdiffstore" => (Op::Diff, true, false),
        "zintercard" => (Op::Inter, false, true),
        "zrandmember" => return Some(zrandmember(db, tx, args).await),
        _ => return None,
    };
    Some(combine(db, tx, name, args, op, store, card).await)
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Op {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// Redis's `zunionInterAggregate`: a sum of +inf and -inf is 0.
fn aggregate(target: &mut f64, val: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += val;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if val < *target {
                *target = val;
            }
        }
        Aggregate::Max => {
            if val > *target {
                *target = val;
            }
        }
    }
}

/// One input of the algebra.
struct Source<'a> {
    key: &'a [u8],
    /// `None`: the key is missing (an empty input).
    meta: Option<Meta>,
    weight: f64,
}

impl Source<'_> {
    fn len(&self) -> u64 {
        self.meta.as_ref().map_or(0, |m| m.count)
    }

    /// Every element with its score (1 for a set member): a sorted set
    /// in score order, a set in member order.
    async fn elements<S: Storage>(&self, db: &Db<S>, tx: &Tx<'_, S>) -> Result<Vec<(f64, Vec<u8>)>, CmdError> {
        match &self.meta {
            None => Ok(Vec::new()),
            Some(m) if m.kind == Kind::Set => Ok(set::members(db, tx, self.key, m)
                .await?
                .into_iter()
                .map(|member| (1.0, member))
                .collect()),
            Some(m) => all_sorted(db, tx, self.key, m).await,
        }
    }

    /// The score of `member` in this input.
    async fn find<S: Storage>(&self, tx: &Tx<'_, S>, member: &[u8]) -> Result<Option<f64>, CmdError> {
        match &self.meta {
            None => Ok(None),
            Some(m) if m.kind == Kind::Set => Ok(set::is_member(tx, self.key, m, member).await?.then_some(1.0)),
            Some(m) => zset::score_of(tx, self.key, m, member).await,
        }
    }
}

/// The weighted score Redis starts from (NaN, as from 0 × inf, is 0).
fn weighted(weight: f64, score: f64) -> f64 {
    let s = weight * score;
    if s.is_nan() {
        0.0
    } else {
        s
    }
}

/// Redis's `zunionInterDiffGenericCommand`: checks and reads in Redis's
/// order (count, every input's type, then the options), computes, and
/// replies, stores or counts.
async fn combine<S: Storage>(
    db: &Db<S>,
    tx: &mut Tx<'_, S>,
    name: &str,
    args: &[Bytes],
    op: Op,
    store: bool,
    card: bool,
) -> CmdResult {
    let count_at = if store { 2 } else { 1 };
    let setnum = parse_i64(&args[count_at]).ok_or_else(|| CmdError::msg(errors::NOT_INTEGER))?;
    if setnum < 1 {
        return Err(CmdError::msg(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        )));
    }
    if setnum as u64 > (args.len() - count_at - 1) as u64 {
        return Err(syntax_error());
    }
    let setnum = setnum as usize;
    let mut sources = Vec::with_capacity(setnum);
    for key in &args[count_at + 1..count_at + 1 + setnum] {
        let meta = db.meta(tx, key).await?;
        if meta
            .as_ref()
            .is_some_and(|m| m.kind != Kind::ZSet && m.kind != Kind::Set)
        {
            return Err(wrongtype());
        }
        sources.push(Source { key, meta, weight: 1.0 });
    }
    let mut how = Aggregate::Sum;
    let mut withscores = false;
    let mut limit: u64 = 0;
    let mut j = count_at + 1 + setnum;
    while j < args.len() {
        let remaining = args.len() - j;
        let a = &args[j];
        if op != Op::Diff && !card && remaining > setnum && a.eq_ignore_ascii_case(b"weights") {
            for (i, src) in sources.iter_mut().enumerate() {
                src.weight =
                    float_arg(&args[j + 1 + i]).map_err(|_| CmdError::msg("ERR weight value is not a float"))?;
            }
            j += 1 + setnum;
        } else if op != Op::Diff && !card && remaining >= 2 && a.eq_ignore_ascii_case(b"aggregate") {
            let v = &args[j + 1];
            how = if v.eq_ignore_ascii_case(b"sum") {
                Aggregate::Sum
            } else if v.eq_ignore_ascii_case(b"min") {
                Aggregate::Min
            } else if v.eq_ignore_ascii_case(b"max") {
                Aggregate::Max
            } else {
                return Err(syntax_error());
            };
            j += 2;
        } else if !store && !card && a.eq_ignore_ascii_case(b"withscores") {
            withscores = true;
            j += 1;
        } else if card && remaining >= 2 && a.eq_ignore_ascii_case(b"limit") {
            limit = match parse_i64(&args[j + 1]) {
                Some(n) if n >= 0 => n as u64,
                _ => return Err(CmdError::msg("ERR LIMIT can't be negative")),
            };
            j += 2;
        } else {
            return Err(syntax_error());
        }
    }
    if op != Op::Diff {
        // Smallest input first, as Redis iterates.
        sources.sort_by_key(Source::len);
    }
    let mut result: Vec<(f64, Vec<u8>)> = Vec::new();
    match op {
        Op::Inter => {
            if sources[0].len() > 0 {
                let mut count = 0u64;
                'next: for (score, member) in sources[0].elements(db, tx).await? {
                    let mut acc = weighted(sources[0].weight, score);
                    for src in &sources[1..] {
                        match src.find(tx, &member).await? {
                            Some(s) => aggregate(&mut acc, s * src.weight, how),
                            None => continue 'next,
                        }
                    }
                    if card {
                        count += 1;
                        if limit != 0 && count >= limit {
                            break;
                        }
                    } else {
                        result.push((acc, member));
                    }
                }
                if card {
                    return Ok(Reply::Int(count as i64));
                }
            } else if card {
                return Ok(Reply::Int(0));
            }
        }
        Op::Union => {
            let mut acc: HashMap<Vec<u8>, f64> = HashMap::new();
            for src in &sources {
                for (score, member) in src.elements(db, tx).await? {
                    let s = weighted(src.weight, score);
                    match acc.get_mut(&member) {
                        Some(t) => aggregate(t, s, how),
                        None => {
                            acc.insert(member, s);
                        }
                    }
                }
            }
            result = acc.into_iter().map(|(m, s)| (s, m)).collect();
        }
        Op::Diff => {
            if sources[0].len() > 0 {
                'member: for (score, member) in sources[0].elements(db, tx).await? {
                    for src in &sources[1..] {
                        if src.find(tx, &member).await?.is_some() {
                            continue 'member;
                        }
                    }
                    result.push((score, member));
                }
            }
        }
    }
    // Redis order: score, then member bytes.
    result.sort_by(|a, b| {
        a.0.partial_cmp(&b.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.1.cmp(&b.1))
    });
    if store {
        let dst = &args[1];
        let old = db.meta_for_write(tx, dst).await?;
        if result.is_empty() {
            if let Some(old) = old {
                db.delete_key(tx, dst, &old)?;
            }
            return Ok(Reply::Int(0));
        }
        let mut new = db.new_collection(tx, Kind::ZSet)?;
        for (s, m) in &result {
            put_member(tx, dst, &mut new, m, None, *s)?;
        }
        db.replace(tx, dst, old.as_ref(), &new)?;
        db.signal_key(dst);
        return Ok(Reply::Int(result.len() as i64));
    }
    Ok(zset::scored_reply(result.iter().map(|(s, m)| (*s, &m[..])), withscores))
}

/// ZRANDMEMBER key [count [WITHSCORES]], checked in Redis's order. With a
/// count at least the set's size, the whole set from the highest score
/// down (as Redis answers for small sets).
async fn zrandmember<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    if args.len() == 2 {
        let Some(meta) = zset::read_meta(db, tx, key).await? else {
            return Ok(Reply::Null);
        };
        let n = random_below(meta.count.max(1));
        return Ok(match element_at(tx, key, &meta, TAG_ZMEMBER, n).await? {
            Some((member, _)) => bulk(&member),
            None => Reply::Null,
        });
    }
    let count = random_count_arg(&args[2])?;
    if args.len() > 4 || (args.len() == 4 && !args[3].eq_ignore_ascii_case(b"withscores")) {
        return Err(syntax_error());
    }
    let withscores = args.len() == 4;
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Err(CmdError::msg(COUNT_OUT_OF_RANGE));
    }
    let Some(meta) = zset::read_meta(db, tx, key).await? else {
        return Ok(Reply::Array(Vec::new()));
    };
    if count == 0 {
        return Ok(Reply::Array(Vec::new()));
    }
    let all = all_sorted(db, tx, key, &meta).await?;
    if all.is_empty() {
        return Ok(Reply::Array(Vec::new()));
    }
    let mut picks = random_picks(all.len(), count)?;
    if count > 0 && count as u64 >= all.len() as u64 {
        // The whole set, highest score first, as Redis answers it.
        picks.reverse();
    }
    Ok(zset::scored_reply(
        picks.into_iter().map(|i| (all[i].0, &all[i].1[..])),
        withscores,
    ))
}

#[cfg(test)]
mod tests {
    use crate::redis::testkit::{bulk, bulks, err, TestDb};
    use crate::resp::{errors, Reply};

    fn int(n: i64) -> Reply {
        Reply::Int(n)
    }

    /// A WITHSCORES reply as RESP2 shows it: member, score, ...
    fn scored(items: &[(&str, f64)]) -> Reply {
        Reply::Array(items.iter().flat_map(|(m, s)| [bulk(m), Reply::Double(*s)]).collect())
    }

    fn setup() -> TestDb {
        let t = TestDb::new();
        t.cmd(&["ZADD", "za", "1", "a", "2", "b", "3", "c"]);
        t.cmd(&["ZADD", "zb", "10", "b", "20", "c", "30", "d"]);
        t.cmd(&["SADD", "s", "a", "d", "e"]);
        t.cmd(&["SET", "str", "x"]);
        t
    }

    #[test]
    fn union() {
        let t = setup();
        assert_eq!(t.cmd(&["ZUNION", "2", "za", "zb"]), bulks(&["a", "b", "c", "d"]));
        assert_eq!(
            t.cmd(&["ZUNION", "2", "za", "zb", "WITHSCORES"]),
            scored(&[("a", 1.0), ("b", 12.0), ("c", 23.0), ("d", 30.0)])
        );
        assert_eq!(
            t.cmd(&[
                "ZUNION",
                "2",
                "za",
                "zb",
                "WEIGHTS",
                "2",
                "0.5",
                "AGGREGATE",
                "MAX",
                "WITHSCORES"
            ]),
            scored(&[("a", 2.0), ("b", 5.0), ("c", 10.0), ("d", 15.0)])
        );
        assert_eq!(
            t.cmd(&["ZUNION", "2", "za", "zb", "aggregate", "min", "withscores"]),
            scored(&[("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 30.0)])
        );
        // A set's members count with score 1; missing keys are empty.
        assert_eq!(
            t.cmd(&["ZUNION", "3", "za", "s", "nokey", "WITHSCORES"]),
            scored(&[("d", 1.0), ("e", 1.0), ("a", 2.0), ("b", 2.0), ("c", 3.0)])
        );
        assert_eq!(t.cmd(&["ZUNION", "1", "nokey"]), bulks(&[]));
        // inf + -inf is 0; a weight of 0 on inf is 0.
        t.cmd(&["ZADD", "zi", "inf", "a"]);
        t.cmd(&["ZADD", "zn", "-inf", "a"]);
        assert_eq!(t.cmd(&["ZUNION", "2", "zi", "zn", "WITHSCORES"]), scored(&[("a", 0.0)]));
        assert_eq!(
            t.cmd(&["ZUNION", "1", "zi", "WEIGHTS", "0", "WITHSCORES"]),
            scored(&[("a", 0.0)])
        );
    }

    #[test]
    fn inter_and_diff() {
        let t = setup();
        assert_eq!(
            t.cmd(&["ZINTER", "2", "za", "zb", "WITHSCORES"]),
            scored(&[("b", 12.0), ("c", 23.0)])
        );
        assert_eq!(
            t.cmd(&["ZINTER", "2", "za", "zb", "WEIGHTS", "1", "-1", "WITHSCORES"]),
            scored(&[("c", -17.0), ("b", -8.0)])
        );
        assert_eq!(t.cmd(&["ZINTER", "2", "za", "s"]), bulks(&["a"]));
        assert_eq!(t.cmd(&["ZINTER", "2", "za", "nokey"]), bulks(&[]));
        assert_eq!(
            t.cmd(&["ZINTER", "2", "za", "za", "WITHSCORES"]),
            scored(&[("a", 2.0), ("b", 4.0), ("c", 6.0)])
        );
        assert_eq!(t.cmd(&["ZDIFF", "2", "za", "zb", "WITHSCORES"]), scored(&[("a", 1.0)]));
        assert_eq!(t.cmd(&["ZDIFF", "3", "zb", "za", "s"]), bulks(&[]));
        assert_eq!(t.cmd(&["ZDIFF", "2", "s", "za"]), bulks(&["d", "e"]));
        assert_eq!(t.cmd(&["ZDIFF", "2", "nokey", "za"]), bulks(&[]));
        assert_eq!(t.cmd(&["ZINTERCARD", "2", "za", "zb"]), int(2));
        assert_eq!(t.cmd(&["ZINTERCARD", "2", "za", "zb", "LIMIT", "1"]), int(1));
        assert_eq!(t.cmd(&["ZINTERCARD", "2", "za", "zb", "LIMIT", "0"]), int(2));
        assert_eq!(t.cmd(&["ZINTERCARD", "2", "za", "nokey"]), int(0));
        assert_eq!(t.cmd(&["ZINTERCARD", "2", "za", "s"]), int(1));
    }

    #[test]
    fn errors_in_redis_order() {
        let t = setup();
        assert_eq!(t.cmd(&["ZUNION", "x", "za"]), err(errors::NOT_INTEGER));
        assert_eq!(
            t.cmd(&["ZUNION", "0", "za"]),
            err("ERR at least 1 input key is needed for 'zunion' command")
        );
        assert_eq!(
            t.cmd(&["ZINTERSTORE", "d", "-1", "za"]),
            err("ERR at least 1 input key is needed for 'zinterstore' command")
        );
        assert_eq!(t.cmd(&["ZUNION", "3", "za", "zb"]), err(errors::SYNTAX));
        // Types before options.
        assert_eq!(t.cmd(&["ZUNION", "2", "za", "str", "NOPE"]), err(errors::WRONGTYPE));
        assert_eq!(
            t.cmd(&["ZINTERCARD", "1", "str", "LIMIT", "-1"]),
            err(errors::WRONGTYPE)
        );
        assert_eq!(t.cmd(&["ZUNION", "2", "za", "zb", "NOPE"]), err(errors::SYNTAX));
        assert_eq!(t.cmd(&["ZUNION", "2", "za", "zb", "WEIGHTS", "1"]), err(errors::SYNTAX));
        assert_eq!(
            t.cmd(&["ZUNION", "2", "za", "zb", "WEIGHTS", "1", "x"]),
            err("ERR weight value is not a float")
        );
        assert_eq!(
            t.cmd(&["ZUNION", "1", "za", "WEIGHTS", "nan"]),
            err("ERR weight value is not a float")
        );
        assert_eq!(t.cmd(&["ZUNION", "1", "za", "AGGREGATE", "avg"]), err(errors::SYNTAX));
        assert_eq!(t.cmd(&["ZUNION", "1", "za", "AGGREGATE"]), err(errors::SYNTAX));
        assert_eq!(t.cmd(&["ZDIFF", "1", "za", "WEIGHTS", "1"]), err(errors::SYNTAX));
        assert_eq!(t.cmd(&["ZDIFF", "1", "za", "AGGREGATE", "SUM"]), err(errors::SYNTAX));
        assert_eq!(
            t.cmd(&["ZUNIONSTORE", "d", "1", "za", "WITHSCORES"]),
            err(errors::SYNTAX)
        );
        assert_eq!(t.cmd(&["ZINTERCARD", "1", "za", "WITHSCORES"]), err(errors::SYNTAX));
        assert_eq!(t.cmd(&["ZINTERCARD", "1", "za", "WEIGHTS", "1"]), err(errors::SYNTAX));
        assert_eq!(
            t.cmd(&["ZINTERCARD", "1", "za", "LIMIT", "-1"]),
            err("ERR LIMIT can't be negative")
        );
        assert_eq!(t.cmd(&["ZINTERCARD", "1", "za", "LIMIT"]), err(errors::SYNTAX));
        assert_eq!(t.cmd(&["ZUNION", "1", "za", "LIMIT", "1"]), err(errors::SYNTAX));
        assert_eq!(
            t.cmd(&["ZUNIONSTORE", "d", "1"]),
            err("ERR wrong number of arguments for 'zunionstore' command")
        );
    }

    #[test]
    fn stores() {
        let t = setup();
        t.cmd(&["HSET", "dst", "f", "v"]);
        t.cmd(&["EXPIRE", "dst", "100"]);
        assert_eq!(
            t.cmd(&["ZUNIONSTORE", "dst", "2", "za", "zb", "WEIGHTS", "1", "2"]),
            int(4)
        );
        assert_eq!(t.cmd(&["TTL", "dst"]), int(-1));
        assert_eq!(
            t.cmd(&["ZRANGE", "dst", "0", "-1", "WITHSCORES"]),
            scored(&[("a", 1.0), ("b", 22.0), ("c", 43.0), ("d", 60.0)])
        );
        // The destination may be an input.
        assert_eq!(
            t.cmd(&["ZINTERSTORE", "za", "2", "za", "dst", "AGGREGATE", "MAX"]),
            int(3)
        );
        assert_eq!(
            t.cmd(&["ZRANGE", "za", "0", "-1", "WITHSCORES"]),
            scored(&[("a", 1.0), ("b", 22.0), ("c", 43.0)])
        );
        assert_eq!(t.cmd(&["ZDIFFSTORE", "d2", "2", "dst", "za"]), int(1));
        assert_eq!(t.cmd(&["ZRANGE", "d2", "0", "-1"]), bulks(&["d"]));
        // An empty result deletes the destination.
        assert_eq!(t.cmd(&["ZINTERSTORE", "d2", "2", "za", "nokey"]), int(0));
        assert_eq!(t.cmd(&["EXISTS", "d2"]), int(0));
        assert_eq!(t.cmd(&["ZDIFFSTORE", "fresh", "1", "nokey"]), int(0));
        let keys = t.db.key_count();
        let t = t.reopen();
        assert_eq!(t.db.key_count(), keys);
        assert_eq!(t.cmd(&["ZSCORE", "dst", "d"]), Reply::Double(60.0));
        assert_eq!(t.cmd(&["ZCARD", "za"]), int(3));
    }

    #[test]
    fn random_members() {
        let t = setup();
        assert_eq!(t.cmd(&["ZRANDMEMBER", "nokey"]), Reply::Null);
        assert_eq!(t.cmd(&["ZRANDMEMBER", "nokey", "3"]), bulks(&[]));
        assert_eq!(t.cmd(&["ZRANDMEMBER", "str"]), err(errors::WRONGTYPE));
        assert_eq!(t.cmd(&["ZRANDMEMBER", "str", "0"]), err(errors::WRONGTYPE));
        assert_eq!(t.cmd(&["ZRANDMEMBER", "za", "0"]), bulks(&[]));
        assert_eq!(t.cmd(&["ZRANDMEMBER", "za", "5"]), bulks(&["c", "b", "a"]));
        assert_eq!(
            t.cmd(&["ZRANDMEMBER", "za", "3", "WITHSCORES"]),
            scored(&[("c", 3.0), ("b", 2.0), ("a", 1.0)])
        );
        let Reply::Bulk(one) = t.cmd(&["ZRANDMEMBER", "za"]) else {
            panic!()
        };
        assert!([&b"a"[..], b"b", b"c"].contains(&one.as_ref()));
        let Reply::Array(two) = t.cmd(&["ZRANDMEMBER", "za", "2"]) else {
            panic!()
        };
        assert_eq!(two.len(), 2);
        assert_ne!(two[0], two[1]);
        let Reply::Array(many) = t.cmd(&["ZRANDMEMBER", "za", "-7", "WITHSCORES"]) else {
            panic!()
        };
        assert_eq!(many.len(), 14);
        assert_eq!(t.cmd(&["ZRANDMEMBER", "za", "x"]), err(errors::NOT_INTEGER));
        assert_eq!(
            t.cmd(&["ZRANDMEMBER", "za", "-9223372036854775808"]),
            err(super::super::hash::COUNT_RANGE)
        );
        assert_eq!(
            t.cmd(&["ZRANDMEMBER", "za", "9223372036854775807", "WITHSCORES"]),
            err("ERR value is out of range")
        );
        assert_eq!(t.cmd(&["ZRANDMEMBER", "za", "1", "NOPE"]), err(errors::SYNTAX));
        assert_eq!(
            t.cmd(&["ZRANDMEMBER", "za", "1", "WITHSCORES", "x"]),
            err(errors::SYNTAX)
        );
    }
}
