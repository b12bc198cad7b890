//! Sorted-set commands.
//!
//! Each member has two records: member → score under
//! [`keys::TAG_ZMEMBER`] (8-byte big-endian f64 bits), and
//! `sortable(score) ++ member` → "" under [`keys::TAG_ZSCORE`], which
//! keeps the set in Redis order (score, then member bytes).

use bytes::Bytes;
use lumadb_engine::storage::Storage;

use super::hash::{parse_scan_cursor, parse_scan_options, scan_matches, scan_page, scan_reply};
use crate::redis::db::{float_arg, int_arg, syntax_error, CmdError, CmdResult, Db};
use crate::redis::keys::{self, Kind, Meta, TAG_ZMEMBER, TAG_ZSCORE};
use crate::redis::store::Tx;
use crate::resp::num::{format_double, parse_f64, parse_i64};
use crate::resp::{errors, Reply};

/// Runs `name` if it belongs to this family.
pub async fn run<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, name: &str, args: &[Bytes]) -> Option<CmdResult> {
    Some(match name {
        "zadd" => zadd(db, tx, args).await,
        "zincrby" => zincrby(db, tx, args).await,
        "zrem" => zrem(db, tx, args).await,
        "zscore" => zscore(db, tx, args).await,
        "zmscore" => zmscore(db, tx, args).await,
        "zcard" => zcard(db, tx, args).await,
        "zcount" => zcount(db, tx, args, false).await,
        "zlexcount" => zcount(db, tx, args, true).await,
        "zrange" => zrange(db, tx, args, None, None, false).await,
        "zrangestore" => zrange(db, tx, args, None, None, true).await,
        "zrevrange" => zrange(db, tx, args, Some(RangeKind::Rank), Some(true), false).await,
        "zrangebyscore" => zrange(db, tx, args, Some(RangeKind::Score), Some(false), false).await,
        "zrevrangebyscore" => zrange(db, tx, args, Some(RangeKind::Score), Some(true), false).await,
        "zrangebylex" => zrange(db, tx, args, Some(RangeKind::Lex), Some(false), false).await,
        "zrevrangebylex" => zrange(db, tx, args, Some(RangeKind::Lex), Some(true), false).await,
        "zrank" => zrank(db, tx, args, false).await,
        "zrevrank" => zrank(db, tx, args, true).await,
        "zremrangebyrank" => zremrange(db, tx, args, RangeKind::Rank).await,
        "zremrangebyscore" => zremrange(db, tx, args, RangeKind::Score).await,
        "zremrangebylex" => zremrange(db, tx, args, RangeKind::Lex).await,
        "zpopmin" => zpop(db, tx, args, false).await,
        "zpopmax" => zpop(db, tx, args, true).await,
        "zscan" => zscan(db, tx, args).await,
        _ => return None,
    })
}

pub(super) async fn read_meta<S: Storage>(db: &Db<S>, tx: &Tx<'_, S>, key: &[u8]) -> Result<Option<Meta>, CmdError> {
    Db::<S>::typed(db.meta(tx, key).await?, Kind::ZSet)
}

async fn write_meta<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, key: &[u8]) -> Result<Option<Meta>, CmdError> {
    Db::<S>::typed(db.meta_for_write(tx, key).await?, Kind::ZSet)
}

fn score_key(key: &[u8], meta: &Meta, score: f64, member: &[u8]) -> Vec<u8> {
    let mut rest = Vec::with_capacity(8 + member.len());
    rest.extend_from_slice(&keys::sortable_score(score));
    rest.extend_from_slice(member);
    keys::element_key(key, meta.version, TAG_ZSCORE, &rest)
}

/// The score of `member`, if present.
pub(super) async fn score_of<S: Storage>(
    tx: &Tx<'_, S>,
    key: &[u8],
    meta: &Meta,
    member: &[u8],
) -> Result<Option<f64>, CmdError> {
    let Some(v) = tx
        .get(&keys::element_key(key, meta.version, TAG_ZMEMBER, member))
        .await?
    else {
        return Ok(None);
    };
    let bits: [u8; 8] = v.as_slice().try_into().map_err(|_| {
        CmdError::Store(crate::redis::store::StoreError(format!(
            "malformed sorted-set score record for key {:?}",
            String::from_utf8_lossy(key)
        )))
    })?;
    Ok(Some(f64::from_bits(u64::from_be_bytes(bits))))
}

/// Sets `member`'s score (its old one is `old`); counts a new member.
pub(super) fn put_member<S: Storage>(
    tx: &mut Tx<'_, S>,
    key: &[u8],
    meta: &mut Meta,
    member: &[u8],
    old: Option<f64>,
    score: f64,
) -> Result<(), CmdError> {
    match old {
        Some(o) => tx.delete(&score_key(key, meta, o, member))?,
        None => meta.count += 1,
    }
    let score = if score == 0.0 { 0.0 } else { score };
    tx.put(
        &keys::element_key(key, meta.version, TAG_ZMEMBER, member),
        &score.to_bits().to_be_bytes(),
    )?;
    tx.put(&score_key(key, meta, score, member), b"")?;
    Ok(())
}

fn remove_member<S: Storage>(
    tx: &mut Tx<'_, S>,
    key: &[u8],
    meta: &mut Meta,
    member: &[u8],
    score: f64,
) -> Result<(), CmdError> {
    tx.delete(&keys::element_key(key, meta.version, TAG_ZMEMBER, member))?;
    tx.delete(&score_key(key, meta, score, member))?;
    meta.count -= 1;
    Ok(())
}

/// Every member with its score, in Redis order.
pub(super) async fn all_sorted<S: Storage>(
    db: &Db<S>,
    tx: &Tx<'_, S>,
    key: &[u8],
    meta: &Meta,
) -> Result<Vec<(f64, Vec<u8>)>, CmdError> {
    let rows = db.elements(tx, key, meta, TAG_ZSCORE).await?;
    let mut out = Vec::with_capacity(rows.len());
    for (k, _) in rows {
        let rest = keys::element_rest(&k, key);
        let Some(bits) = rest.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
            return Err(CmdError::Store(crate::redis::store::StoreError(
                "malformed sorted-set index record".into(),
            )));
        };
        out.push((keys::score_from_sortable(bits), rest[8..].to_vec()));
    }
    Ok(out)
}

pub(super) fn double(v: f64) -> Reply {
    Reply::Double(v)
}

pub(super) fn bulk(v: &[u8]) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(v))
}

#[derive(Default)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

enum AddOutcome {
    Added(f64),
    Updated(f64),
    Unchanged(f64),
    Skipped,
}

/// Redis's `zsetAdd` for one member.
fn add_one<S: Storage>(
    tx: &mut Tx<'_, S>,
    key: &[u8],
    meta: &mut Meta,
    member: &[u8],
    current: Option<f64>,
    score: f64,
    f: &AddFlags,
) -> Result<AddOutcome, CmdError> {
    match current {
        Some(cur) => {
            if f.nx {
                return Ok(AddOutcome::Skipped);
            }
            let new = if f.incr { cur + score } else { score };
            if new.is_nan() {
                return Err(CmdError::msg(errors::SCORE_NAN));
            }
            if (f.lt && new >= cur) || (f.gt && new <= cur) {
                return Ok(AddOutcome::Skipped);
            }
            if new == cur {
                return Ok(AddOutcome::Unchanged(cur));
            }
            put_member(tx, key, meta, member, Some(cur), new)?;
            Ok(AddOutcome::Updated(new))
        }
        None => {
            if f.xx {
                return Ok(AddOutcome::Skipped);
            }
            put_member(tx, key, meta, member, None, score)?;
            Ok(AddOutcome::Added(score))
        }
    }
}

async fn zadd<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let mut f = AddFlags::default();
    let mut i = 2;
    while let Some(a) = args.get(i) {
        let a = a.to_ascii_lowercase();
        match &a[..] {
            b"nx" => f.nx = true,
            b"xx" => f.xx = true,
            b"gt" => f.gt = true,
            b"lt" => f.lt = true,
            b"ch" => f.ch = true,
            b"incr" => f.incr = true,
            _ => break,
        }
        i += 1;
    }
    let rest = &args[i..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(syntax_error());
    }
    if f.nx && f.xx {
        return Err(CmdError::msg(errors::XX_NX_EXCLUSIVE));
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Err(CmdError::msg(errors::NX_XX_GT_LT_EXCLUSIVE));
    }
    if f.incr && rest.len() > 2 {
        return Err(CmdError::msg(errors::INCR_SINGLE_PAIR));
    }
    let mut pairs = Vec::with_capacity(rest.len() / 2);
    for p in rest.chunks_exact(2) {
        pairs.push((float_arg(&p[0])?, &p[1]));
    }
    let key = &args[1];
    let (mut meta, existed) = match write_meta(db, tx, key).await? {
        Some(m) => (m, true),
        None if f.xx => return Ok(if f.incr { Reply::Null } else { Reply::Int(0) }),
        None => (db.new_collection(tx, Kind::ZSet)?, false),
    };
    let (mut added, mut updated) = (0i64, 0i64);
    let mut last = None;
    for (score, member) in pairs {
        let current = if existed || meta.count > 0 {
            score_of(tx, key, &meta, member).await?
        } else {
            None
        };
        match add_one(tx, key, &mut meta, member, current, score, &f)? {
            AddOutcome::Added(s) => {
                added += 1;
                last = Some(s);
            }
            AddOutcome::Updated(s) => {
                updated += 1;
                last = Some(s);
            }
            AddOutcome::Unchanged(s) => last = Some(s),
            AddOutcome::Skipped => last = None,
        }
    }
    // Scores only changed leave the metadata as it was.
    if !existed || added > 0 {
        db.save_or_delete(tx, key, &meta, existed)?;
    }
    if added > 0 {
        db.signal_key(key);
    }
    if f.incr {
        return Ok(last.map_or(Reply::Null, double));
    }
    Ok(Reply::Int(if f.ch { added + updated } else { added }))
}

async fn zincrby<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let by = float_arg(&args[2])?;
    let key = &args[1];
    let member = &args[3];
    let (mut meta, existed) = match write_meta(db, tx, key).await? {
        Some(m) => (m, true),
        None => (db.new_collection(tx, Kind::ZSet)?, false),
    };
    let current = if existed {
        score_of(tx, key, &meta, member).await?
    } else {
        None
    };
    let f = AddFlags {
        incr: true,
        ..AddFlags::default()
    };
    let out = add_one(tx, key, &mut meta, member, current, by, &f)?;
    if !existed || matches!(out, AddOutcome::Added(_)) {
        db.save_or_delete(tx, key, &meta, existed)?;
    }
    if matches!(out, AddOutcome::Added(_)) {
        db.signal_key(key);
    }
    Ok(match out {
        AddOutcome::Added(s) | AddOutcome::Updated(s) | AddOutcome::Unchanged(s) => double(s),
        AddOutcome::Skipped => Reply::Null,
    })
}

async fn zrem<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let Some(mut meta) = write_meta(db, tx, key).await? else {
        return Ok(Reply::Int(0));
    };
    let mut removed = 0;
    for member in &args[2..] {
        if let Some(s) = score_of(tx, key, &meta, member).await? {
            remove_member(tx, key, &mut meta, member, s)?;
            removed += 1;
        }
    }
    db.save_or_delete(tx, key, &meta, true)?;
    Ok(Reply::Int(removed))
}

async fn zscore<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let Some(meta) = read_meta(db, tx, key).await? else {
        return Ok(Reply::Null);
    };
    Ok(score_of(tx, key, &meta, &args[2]).await?.map_or(Reply::Null, double))
}

async fn zmscore<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let meta = read_meta(db, tx, key).await?;
    let mut out = Vec::with_capacity(args.len() - 2);
    for member in &args[2..] {
        let s = match &meta {
            Some(m) => score_of(tx, key, m, member).await?,
            None => None,
        };
        out.push(s.map_or(Reply::Null, double));
    }
    Ok(Reply::Array(out))
}

async fn zcard<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let meta = read_meta(db, tx, &args[1]).await?;
    Ok(Reply::Int(meta.map_or(0, |m| m.count as i64)))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeKind {
    Rank,
    Score,
    Lex,
}

/// A score bound: value and whether it is exclusive.
#[derive(Clone, Copy)]
struct ScoreBound(f64, bool);

fn parse_score_bound(b: &[u8]) -> Option<ScoreBound> {
    match b.split_first() {
        Some((b'(', rest)) => parse_f64(rest).map(|v| ScoreBound(v, true)),
        _ => parse_f64(b).map(|v| ScoreBound(v, false)),
    }
}

#[derive(Clone)]
enum LexBound {
    Min,
    Max,
    Incl(Vec<u8>),
    Excl(Vec<u8>),
}

fn parse_lex_bound(b: &[u8]) -> Option<LexBound> {
    match b.split_first() {
        Some((b'+', [])) => Some(LexBound::Max),
        Some((b'-', [])) => Some(LexBound::Min),
        Some((b'[', rest)) => Some(LexBound::Incl(rest.to_vec())),
        Some((b'(', rest)) => Some(LexBound::Excl(rest.to_vec())),
        _ => None,
    }
}

/// A parsed score or lex interval.
enum Interval {
    Score(ScoreBound, ScoreBound),
    Lex(LexBound, LexBound),
}

impl Interval {
    fn parse(kind: RangeKind, min: &[u8], max: &[u8]) -> Result<Interval, CmdError> {
        match kind {
            RangeKind::Lex => match (parse_lex_bound(min), parse_lex_bound(max)) {
                (Some(a), Some(b)) => Ok(Interval::Lex(a, b)),
                _ => Err(CmdError::msg(errors::MIN_MAX_NOT_STRING_RANGE)),
            },
            _ => match (parse_score_bound(min), parse_score_bound(max)) {
                (Some(a), Some(b)) => Ok(Interval::Score(a, b)),
                _ => Err(CmdError::msg(errors::MIN_MAX_NOT_FLOAT)),
            },
        }
    }

    fn above_min(&self, score: f64, member: &[u8]) -> bool {
        match self {
            Interval::Score(ScoreBound(v, ex), _) => {
                if *ex {
                    score > *v
                } else {
                    score >= *v
                }
            }
            Interval::Lex(min, _) => match min {
                LexBound::Min => true,
                LexBound::Max => false,
                LexBound::Incl(v) => member >= &v[..],
                LexBound::Excl(v) => member > &v[..],
            },
        }
    }

    fn below_max(&self, score: f64, member: &[u8]) -> bool {
        match self {
            Interval::Score(_, ScoreBound(v, ex)) => {
                if *ex {
                    score < *v
                } else {
                    score <= *v
                }
            }
            Interval::Lex(_, max) => match max {
                LexBound::Min => false,
                LexBound::Max => true,
                LexBound::Incl(v) => member <= &v[..],
                LexBound::Excl(v) => member < &v[..],
            },
        }
    }

    /// Positions `[from, to)` of the members inside, in ascending order.
    fn positions(&self, items: &[(f64, Vec<u8>)]) -> (usize, usize) {
        let from = items
            .iter()
            .position(|(s, m)| self.above_min(*s, m))
            .unwrap_or(items.len());
        let len = items[from..].iter().take_while(|(s, m)| self.below_max(*s, m)).count();
        (from, from + len)
    }
}

/// Redis's rank normalisation: `[from, to)` ascending, possibly empty.
fn rank_positions(start: i64, stop: i64, len: usize) -> (usize, usize) {
    let len = len as i64;
    let start = if start < 0 {
        start.saturating_add(len).max(0)
    } else {
        start
    };
    let stop = if stop < 0 { stop.saturating_add(len) } else { stop };
    if start > stop || start >= len {
        return (0, 0);
    }
    (start as usize, (stop.min(len - 1) + 1) as usize)
}

async fn zcount<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes], lex: bool) -> CmdResult {
    let kind = if lex { RangeKind::Lex } else { RangeKind::Score };
    let interval = Interval::parse(kind, &args[2], &args[3])?;
    let key = &args[1];
    let Some(meta) = read_meta(db, tx, key).await? else {
        return Ok(Reply::Int(0));
    };
    let items = all_sorted(db, tx, key, &meta).await?;
    let (from, to) = interval.positions(&items);
    Ok(Reply::Int((to - from) as i64))
}

/// ZRANGE and its relatives. `kind`/`rev` are fixed by the legacy
/// commands and chosen by options for ZRANGE/ZRANGESTORE.
async fn zrange<S: Storage>(
    db: &Db<S>,
    tx: &mut Tx<'_, S>,
    args: &[Bytes],
    kind: Option<RangeKind>,
    rev: Option<bool>,
    store: bool,
) -> CmdResult {
    let base = if store { 2 } else { 1 };
    let (mut kind_opt, mut rev_opt) = (kind, rev);
    let mut withscores = false;
    let mut limit: Option<(i64, i64)> = None;
    let mut j = base + 3;
    while j < args.len() {
        let a = args[j].to_ascii_lowercase();
        let left = args.len() - j - 1;
        if !store && a == b"withscores" {
            withscores = true;
        } else if a == b"limit" && left >= 2 {
            limit = Some((int_arg(&args[j + 1])?, int_arg(&args[j + 2])?));
            j += 2;
        } else if rev.is_none() && rev_opt.is_none() && a == b"rev" {
            rev_opt = Some(true);
        } else if kind.is_none() && kind_opt.is_none() && a == b"bylex" {
            kind_opt = Some(RangeKind::Lex);
        } else if kind.is_none() && kind_opt.is_none() && a == b"byscore" {
            kind_opt = Some(RangeKind::Score);
        } else {
            return Err(syntax_error());
        }
        j += 1;
    }
    let kind = kind_opt.unwrap_or(RangeKind::Rank);
    let rev = rev_opt.unwrap_or(false);
    if limit.is_some() && kind == RangeKind::Rank {
        return Err(CmdError::msg(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && kind == RangeKind::Lex {
        return Err(CmdError::msg(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let key = &args[base];
    let (a, b) = (&args[base + 1], &args[base + 2]);
    enum Sel {
        Rank(i64, i64),
        Range(Interval),
    }
    let sel = match kind {
        RangeKind::Rank => Sel::Rank(int_arg(a)?, int_arg(b)?),
        // REV takes the maximum first.
        _ if rev => Sel::Range(Interval::parse(kind, b, a)?),
        _ => Sel::Range(Interval::parse(kind, a, b)?),
    };
    let meta = read_meta(db, tx, key).await?;
    let items = match &meta {
        Some(m) => all_sorted(db, tx, key, m).await?,
        None => Vec::new(),
    };
    let picked: Vec<&(f64, Vec<u8>)> = match sel {
        Sel::Rank(start, stop) => {
            let (from, to) = rank_positions(start, stop, items.len());
            if rev {
                let n = items.len();
                items[n - to..n - from].iter().rev().collect()
            } else {
                items[from..to].iter().collect()
            }
        }
        Sel::Range(interval) => {
            let (from, to) = interval.positions(&items);
            let slice = &items[from..to];
            let ordered: Box<dyn Iterator<Item = &(f64, Vec<u8>)>> = if rev {
                Box::new(slice.iter().rev())
            } else {
                Box::new(slice.iter())
            };
            match limit {
                Some((offset, _)) if offset < 0 => Vec::new(),
                Some((offset, count)) => {
                    let count = if count < 0 { usize::MAX } else { count as usize };
                    ordered.skip(offset as usize).take(count).collect()
                }
                None => ordered.collect(),
            }
        }
    };
    if store {
        let dst = &args[1];
        let old = db.meta_for_write(tx, dst).await?;
        let n = picked.len() as i64;
        if picked.is_empty() {
            if let Some(old) = old {
                db.delete_key(tx, dst, &old)?;
            }
        } else {
            let mut new = db.new_collection(tx, Kind::ZSet)?;
            for (s, m) in picked {
                put_member(tx, dst, &mut new, m, None, *s)?;
            }
            db.replace(tx, dst, old.as_ref(), &new)?;
            db.signal_key(dst);
        }
        return Ok(Reply::Int(n));
    }
    Ok(scored_reply(picked.iter().map(|(s, m)| (*s, &m[..])), withscores))
}

/// Members in order, each followed by its score with `withscores` (RESP3
/// answers pairs then).
pub(super) fn scored_reply<'a>(items: impl ExactSizeIterator<Item = (f64, &'a [u8])>, withscores: bool) -> Reply {
    let mut out = Vec::with_capacity(items.len() * if withscores { 2 } else { 1 });
    for (s, m) in items {
        out.push(bulk(m));
        if withscores {
            out.push(double(s));
        }
    }
    if withscores {
        Reply::Pairs(out)
    } else {
        Reply::Array(out)
    }
}

async fn zrank<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes], rev: bool) -> CmdResult {
    let key = &args[1];
    let Some(meta) = read_meta(db, tx, key).await? else {
        return Ok(Reply::Null);
    };
    let Some(score) = score_of(tx, key, &meta, &args[2]).await? else {
        return Ok(Reply::Null);
    };
    // Members before this one in order: a bounded count over the index.
    let (start, _) = keys::tag_range(key, meta.version, TAG_ZSCORE);
    let end = score_key(key, &meta, score, &args[2]);
    let before = tx.scan(&start, &end, usize::MAX).await?.len() as i64;
    Ok(Reply::Int(if rev { meta.count as i64 - 1 - before } else { before }))
}

async fn zremrange<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes], kind: RangeKind) -> CmdResult {
    let (a, b) = (&args[2], &args[3]);
    enum Sel {
        Rank(i64, i64),
        Range(Interval),
    }
    let sel = match kind {
        RangeKind::Rank => Sel::Rank(int_arg(a)?, int_arg(b)?),
        _ => Sel::Range(Interval::parse(kind, a, b)?),
    };
    let key = &args[1];
    let Some(mut meta) = write_meta(db, tx, key).await? else {
        return Ok(Reply::Int(0));
    };
    let items = all_sorted(db, tx, key, &meta).await?;
    let (from, to) = match sel {
        Sel::Rank(start, stop) => rank_positions(start, stop, items.len()),
        Sel::Range(interval) => interval.positions(&items),
    };
    for (s, m) in &items[from..to] {
        remove_member(tx, key, &mut meta, m, *s)?;
    }
    db.save_or_delete(tx, key, &meta, true)?;
    Ok(Reply::Int((to - from) as i64))
}

async fn zpop<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes], max: bool) -> CmdResult {
    if args.len() > 3 {
        return Err(syntax_error());
    }
    let count = match args.get(2) {
        Some(c) => match parse_i64(c) {
            Some(n) if n >= 0 => n as u64,
            _ => return Err(CmdError::msg("ERR value is out of range, must be positive")),
        },
        None => 1,
    };
    let key = &args[1];
    let Some(mut meta) = write_meta(db, tx, key).await? else {
        return Ok(Reply::Array(Vec::new()));
    };
    if count == 0 {
        return Ok(Reply::Array(Vec::new()));
    }
    let rows = zpop_n(db, tx, key, &mut meta, count, max).await?;
    let mut out = Vec::with_capacity(rows.len() * 2);
    for (m, s) in rows {
        out.push(Reply::Bulk(m));
        out.push(double(s));
    }
    // With a count, RESP3 answers [member, score] pairs.
    Ok(if args.len() == 3 {
        Reply::Pairs(out)
    } else {
        Reply::Array(out)
    })
}

/// Pops up to `count` members (lowest scores first, or highest with
/// `max`) from the sorted set `meta` at `key`; saves or deletes the key.
async fn zpop_n<S: Storage>(
    db: &Db<S>,
    tx: &mut Tx<'_, S>,
    key: &[u8],
    meta: &mut Meta,
    count: u64,
    max: bool,
) -> Result<Vec<(Bytes, f64)>, CmdError> {
    let n = usize::try_from(count).unwrap_or(usize::MAX);
    let (start, end) = keys::tag_range(key, meta.version, TAG_ZSCORE);
    let rows = if max {
        all_sorted(db, tx, key, meta)
            .await?
            .into_iter()
            .rev()
            .take(n)
            .collect::<Vec<_>>()
    } else {
        let rows = tx.scan(&start, &end, n).await?;
        let mut out = Vec::with_capacity(rows.len());
        for (k, _) in rows {
            let rest = keys::element_rest(&k, key);
            let bits: [u8; 8] = rest.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(|| {
                CmdError::Store(crate::redis::store::StoreError(
                    "malformed sorted-set index record".into(),
                ))
            })?;
            out.push((keys::score_from_sortable(bits), rest[8..].to_vec()));
        }
        out
    };
    let mut out = Vec::with_capacity(rows.len());
    for (s, m) in rows {
        remove_member(tx, key, meta, &m, s)?;
        out.push((Bytes::from(m), s));
    }
    db.save_or_delete(tx, key, meta, true)?;
    Ok(out)
}

/// Pops up to `count` members from the first non-empty sorted set among
/// `keys` (ZMPOP, BZPOPMIN, ...): its key and the members with scores.
/// WRONGTYPE on the first key, in order, that is not a sorted set.
pub async fn zpop_first<S: Storage>(
    db: &Db<S>,
    tx: &mut Tx<'_, S>,
    keys: &[Bytes],
    count: u64,
    max: bool,
) -> Result<Option<(Bytes, Vec<(Bytes, f64)>)>, CmdError> {
    for key in keys {
        let Some(mut meta) = write_meta(db, tx, key).await? else {
            continue;
        };
        if meta.is_empty() {
            continue;
        }
        let items = zpop_n(db, tx, key, &mut meta, count, max).await?;
        return Ok(Some((key.clone(), items)));
    }
    Ok(None)
}

async fn zscan<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let cursor = parse_scan_cursor(&args[2])?;
    let Some(meta) = read_meta(db, tx, key).await? else {
        return Ok(scan_reply(0, Vec::new()));
    };
    let (pattern, count) = parse_scan_options(&args[3..])?;
    // By member (the member records), so deletions and score changes
    // during a scan move nothing.
    let (next, page) = scan_page(db, tx, key, &meta, TAG_ZMEMBER, cursor, count).await?;
    let mut items = Vec::with_capacity(page.len() * 2);
    for (member, bits) in page {
        if !scan_matches(pattern, &member) {
            continue;
        }
        let bits: [u8; 8] = bits.as_slice().try_into().map_err(|_| {
            CmdError::Store(crate::redis::store::StoreError(format!(
                "malformed sorted-set score record for key {:?}",
                String::from_utf8_lossy(key)
            )))
        })?;
        let mut text = Vec::new();
        format_double(f64::from_bits(u64::from_be_bytes(bits)), &mut text);
        items.push(Reply::bulk(member));
        items.push(Reply::Bulk(text.into()));
    }
    Ok(scan_reply(next, items))
}

#[cfg(test)]
mod tests {
    use crate::redis::testkit::{bulk, bulks, err, TestDb};
    use crate::resp::{errors, Reply};

    fn d(v: f64) -> Reply {
        Reply::Double(v)
    }

    #[test]
    fn pop_first_takes_the_first_non_empty_set_in_key_order() {
        let t = TestDb::new();
        t.cmd(&["ZADD", "b", "1", "x", "2", "y", "3", "z"]);
        t.cmd(&["ZADD", "c", "9", "q"]);
        t.cmd(&["RPUSH", "l", "v"]);
        let db = t.db.clone();
        let keys = |ks: &[&'static str]| {
            ks.iter()
                .map(|k| bytes::Bytes::from_static(k.as_bytes()))
                .collect::<Vec<_>>()
        };
        let pop = |ks: Vec<bytes::Bytes>, count: u64, max: bool| {
            let db = db.clone();
            t.run(async move {
                let mut tx = db.store.tx();
                let r = super::zpop_first(&db, &mut tx, &ks, count, max).await;
                let _ = tx.commit().wait().await;
                r.map_err(|e| e.into_reply())
            })
        };
        let b = bytes::Bytes::from_static;
        assert_eq!(
            pop(keys(&["a", "b", "c"]), 2, true),
            Ok(Some((b(b"b"), vec![(b(b"z"), 3.0), (b(b"y"), 2.0)])))
        );
        assert_eq!(
            pop(keys(&["b", "c"]), 5, false),
            Ok(Some((b(b"b"), vec![(b(b"x"), 1.0)])))
        );
        assert_eq!(t.cmd(&["EXISTS", "b"]), Reply::Int(0));
        assert_eq!(pop(keys(&["a"]), 1, false), Ok(None));
        assert_eq!(pop(keys(&["l", "c"]), 1, false), Err(err(errors::WRONGTYPE)));
        assert_eq!(t.cmd(&["ZCARD", "c"]), Reply::Int(1));
    }

    #[test]
    fn add_score_rem() {
        let t = TestDb::new();
        assert_eq!(t.cmd(&["ZADD", "z", "1", "a", "2", "b", "1", "c"]), Reply::Int(3));
        assert_eq!(t.cmd(&["ZADD", "z", "5", "a", "9", "n"]), Reply::Int(1));
        assert_eq!(t.cmd(&["ZADD", "z", "CH", "6", "a", "9", "n"]), Reply::Int(1));
        assert_eq!(t.cmd(&["ZADD", "z", "NX", "7", "a"]), Reply::Int(0));
        assert_eq!(t.cmd(&["ZADD", "z", "XX", "CH", "7", "a", "1", "q"]), Reply::Int(1));
        assert_eq!(t.cmd(&["ZADD", "z", "GT", "CH", "3", "a"]), Reply::Int(0));
        assert_eq!(t.cmd(&["ZADD", "z", "LT", "CH", "3", "a"]), Reply::Int(1));
        assert_eq!(t.cmd(&["ZADD", "z", "INCR", "1.5", "a"]), d(4.5));
        assert_eq!(t.cmd(&["ZADD", "z", "NX", "INCR", "1", "a"]), Reply::Null);
        assert_eq!(t.cmd(&["ZADD", "none", "XX", "INCR", "1", "a"]), Reply::Null);
        assert_eq!(t.cmd(&["ZADD", "none", "XX", "1", "a"]), Reply::Int(0));
        assert_eq!(
            t.cmd(&["ZADD", "z", "NX", "XX", "1", "a"]),
            err(errors::XX_NX_EXCLUSIVE)
        );
        assert_eq!(
            t.cmd(&["ZADD", "z", "GT", "LT", "1", "a"]),
            err(errors::NX_XX_GT_LT_EXCLUSIVE)
        );
        assert_eq!(
            t.cmd(&["ZADD", "z", "INCR", "1", "a", "2", "b"]),
            err(errors::INCR_SINGLE_PAIR)
        );
        assert_eq!(t.cmd(&["ZADD", "z", "1", "a", "2"]), err(errors::SYNTAX));
        assert_eq!(t.cmd(&["ZADD", "z", "x", "a"]), err(errors::NOT_FLOAT));
        assert_eq!(t.cmd(&["ZADD", "z", "nan", "a"]), err(errors::NOT_FLOAT));
        assert_eq!(t.cmd(&["ZSCORE", "z", "a"]), d(4.5));
        assert_eq!(t.cmd(&["ZSCORE", "z", "zz"]), Reply::Null);
        assert_eq!(t.cmd(&["ZSCORE", "none", "a"]), Reply::Null);
        assert_eq!(
            t.cmd(&["ZMSCORE", "z", "a", "zz", "b"]),
            Reply::Array(vec![d(4.5), Reply::Null, d(2.0)])
        );
        assert_eq!(t.cmd(&["ZINCRBY", "z", "-0.5", "a"]), d(4.0));
        assert_eq!(t.cmd(&["ZINCRBY", "z", "x", "a"]), err(errors::NOT_FLOAT));
        assert_eq!(t.cmd(&["ZINCRBY", "z", "inf", "a"]), d(f64::INFINITY));
        assert_eq!(t.cmd(&["ZINCRBY", "z", "-inf", "a"]), err(errors::SCORE_NAN));
        assert_eq!(t.cmd(&["ZINCRBY", "new", "2", "m"]), d(2.0));
        assert_eq!(t.cmd(&["ZCARD", "z"]), Reply::Int(4));
        assert_eq!(t.cmd(&["ZCARD", "none"]), Reply::Int(0));
        assert_eq!(t.cmd(&["ZREM", "z", "a", "b", "zz"]), Reply::Int(2));
        assert_eq!(t.cmd(&["ZREM", "z", "c", "n"]), Reply::Int(2));
        assert_eq!(t.cmd(&["ZCARD", "z"]), Reply::Int(0));
        assert_eq!(t.cmd(&["ZREM", "z", "c"]), Reply::Int(0));
        assert_eq!(t.db.key_count(), 1);
    }

    #[test]
    fn wrong_type() {
        let t = TestDb::new();
        t.cmd(&["RPUSH", "l", "a"]);
        for c in [
            &["ZADD", "l", "1", "a"][..],
            &["ZINCRBY", "l", "1", "a"],
            &["ZREM", "l", "a"],
            &["ZSCORE", "l", "a"],
            &["ZMSCORE", "l", "a"],
            &["ZCARD", "l"],
            &["ZCOUNT", "l", "0", "1"],
            &["ZLEXCOUNT", "l", "-", "+"],
            &["ZRANGE", "l", "0", "1"],
            &["ZRANGEBYSCORE", "l", "0", "1"],
            &["ZRANK", "l", "a"],
            &["ZREMRANGEBYRANK", "l", "0", "1"],
            &["ZPOPMIN", "l"],
            &["ZSCAN", "l", "0"],
            &["ZRANGESTORE", "d", "l", "0", "1"],
        ] {
            assert_eq!(t.cmd(c), err(errors::WRONGTYPE), "{c:?}");
        }
    }

    #[test]
    fn ranges() {
        let t = TestDb::new();
        t.cmd(&["ZADD", "z", "1", "a", "2", "b", "3", "c", "3", "d", "-inf", "m"]);
        assert_eq!(t.cmd(&["ZRANGE", "z", "0", "-1"]), bulks(&["m", "a", "b", "c", "d"]));
        assert_eq!(
            t.cmd(&["ZRANGE", "z", "1", "2", "WITHSCORES"]),
            Reply::Array(vec![bulk("a"), d(1.0), bulk("b"), d(2.0)])
        );
        assert_eq!(t.cmd(&["ZREVRANGE", "z", "0", "1"]), bulks(&["d", "c"]));
        assert_eq!(t.cmd(&["ZRANGE", "z", "0", "1", "REV"]), bulks(&["d", "c"]));
        assert_eq!(t.cmd(&["ZRANGE", "z", "(1", "3", "BYSCORE"]), bulks(&["b", "c", "d"]));
        assert_eq!(
            t.cmd(&["ZRANGE", "z", "+inf", "(1", "BYSCORE", "REV", "LIMIT", "1", "1"]),
            bulks(&["c"])
        );
        assert_eq!(
            t.cmd(&["ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "1", "-1"]),
            bulks(&["a", "b", "c", "d"])
        );
        assert_eq!(
            t.cmd(&["ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "-1", "2"]),
            bulks(&[])
        );
        assert_eq!(
            t.cmd(&["ZREVRANGEBYSCORE", "z", "3", "2", "WITHSCORES"]),
            Reply::Array(vec![bulk("d"), d(3.0), bulk("c"), d(3.0), bulk("b"), d(2.0)])
        );
        assert_eq!(t.cmd(&["ZRANGEBYSCORE", "z", "x", "3"]), err(errors::MIN_MAX_NOT_FLOAT));
        assert_eq!(t.cmd(&["ZCOUNT", "z", "(1", "3"]), Reply::Int(3));
        assert_eq!(t.cmd(&["ZCOUNT", "z", "-inf", "(1"]), Reply::Int(1));
        assert_eq!(t.cmd(&["ZCOUNT", "none", "0", "1"]), Reply::Int(0));
        assert_eq!(t.cmd(&["ZRANK", "z", "c"]), Reply::Int(3));
        assert_eq!(t.cmd(&["ZREVRANK", "z", "c"]), Reply::Int(1));
        assert_eq!(t.cmd(&["ZRANK", "z", "zz"]), Reply::Null);
        assert_eq!(
            t.cmd(&["ZRANGE", "z", "0", "-1", "LIMIT", "0", "1"]),
            err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
        );
        assert_eq!(t.cmd(&["ZRANGE", "z", "0", "-1", "REV", "REV"]), err(errors::SYNTAX));
        assert_eq!(
            t.cmd(&["ZRANGE", "z", "0", "-1", "BYSCORE", "BYLEX"]),
            err(errors::SYNTAX)
        );
        assert_eq!(t.cmd(&["ZRANGE", "z", "x", "-1"]), err(errors::NOT_INTEGER));
        assert_eq!(t.cmd(&["ZRANGE", "none", "0", "-1"]), bulks(&[]));
        // Lex ranges on equal scores.
        t.cmd(&["ZADD", "x", "0", "a", "0", "b", "0", "c", "0", "d"]);
        assert_eq!(t.cmd(&["ZRANGEBYLEX", "x", "-", "+"]), bulks(&["a", "b", "c", "d"]));
        assert_eq!(t.cmd(&["ZRANGEBYLEX", "x", "(a", "[c"]), bulks(&["b", "c"]));
        assert_eq!(
            t.cmd(&["ZREVRANGEBYLEX", "x", "+", "-", "LIMIT", "0", "1"]),
            bulks(&["d"])
        );
        assert_eq!(t.cmd(&["ZRANGE", "x", "[b", "(d", "BYLEX"]), bulks(&["b", "c"]));
        assert_eq!(t.cmd(&["ZLEXCOUNT", "x", "[b", "+"]), Reply::Int(3));
        assert_eq!(
            t.cmd(&["ZLEXCOUNT", "x", "a", "b"]),
            err(errors::MIN_MAX_NOT_STRING_RANGE)
        );
        assert_eq!(
            t.cmd(&["ZRANGEBYLEX", "x", "-", "+", "WITHSCORES"]),
            err("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
        );
        // Stores.
        assert_eq!(t.cmd(&["ZRANGESTORE", "dst", "z", "1", "3", "BYSCORE"]), Reply::Int(4));
        assert_eq!(
            t.cmd(&["ZRANGE", "dst", "0", "-1", "WITHSCORES"]),
            t.cmd(&["ZRANGE", "z", "1", "-1", "WITHSCORES"])
        );
        assert_eq!(
            t.cmd(&["ZRANGESTORE", "dst", "z", "0", "-1", "WITHSCORES"]),
            err(errors::SYNTAX)
        );
        assert_eq!(t.cmd(&["ZRANGESTORE", "dst", "none", "0", "-1"]), Reply::Int(0));
        assert_eq!(t.cmd(&["ZCARD", "dst"]), Reply::Int(0));
        t.cmd(&["RPUSH", "lst", "a"]);
        assert_eq!(t.cmd(&["ZRANGESTORE", "lst", "x", "0", "0"]), Reply::Int(1));
        assert_eq!(t.cmd(&["ZRANGE", "lst", "0", "-1"]), bulks(&["a"]));
    }

    #[test]
    fn removes_pops_scan() {
        let t = TestDb::new();
        t.cmd(&["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e"]);
        assert_eq!(t.cmd(&["ZREMRANGEBYRANK", "z", "0", "0"]), Reply::Int(1));
        assert_eq!(t.cmd(&["ZREMRANGEBYSCORE", "z", "(4", "+inf"]), Reply::Int(1));
        assert_eq!(t.cmd(&["ZRANGE", "z", "0", "-1"]), bulks(&["b", "c", "d"]));
        assert_eq!(
            t.cmd(&["ZREMRANGEBYSCORE", "z", "x", "1"]),
            err(errors::MIN_MAX_NOT_FLOAT)
        );
        assert_eq!(
            t.cmd(&["ZREMRANGEBYLEX", "z", "x", "1"]),
            err(errors::MIN_MAX_NOT_STRING_RANGE)
        );
        assert_eq!(t.cmd(&["ZPOPMIN", "z"]), Reply::Array(vec![bulk("b"), d(2.0)]));
        assert_eq!(
            t.cmd(&["ZPOPMAX", "z", "5"]),
            Reply::Array(vec![bulk("d"), d(4.0), bulk("c"), d(3.0)])
        );
        assert_eq!(t.cmd(&["ZPOPMAX", "z"]), Reply::Array(vec![]));
        assert_eq!(
            t.cmd(&["ZPOPMIN", "z", "-1"]),
            err("ERR value is out of range, must be positive")
        );
        assert_eq!(t.db.key_count(), 0);
        t.cmd(&["ZADD", "x", "0", "a", "0", "b", "0", "c"]);
        assert_eq!(t.cmd(&["ZREMRANGEBYLEX", "x", "[b", "+"]), Reply::Int(2));
        assert_eq!(t.cmd(&["ZREMRANGEBYRANK", "x", "0", "-1"]), Reply::Int(1));
        assert_eq!(t.db.key_count(), 0);
        t.cmd(&["ZADD", "s", "1", "a", "1.5", "b", "3", "c"]);
        let Reply::Array(r) = t.cmd(&["ZSCAN", "s", "0", "COUNT", "2"]) else {
            panic!()
        };
        assert_eq!(r[1], bulks(&["a", "1", "b", "1.5"]));
        let Reply::Bulk(token) = &r[0] else { panic!() };
        // A score change during the scan moves nothing (members go in
        // member order).
        t.cmd(&["ZADD", "s", "-5", "c"]);
        assert_eq!(
            t.cmd(&["ZSCAN", "s", std::str::from_utf8(token).unwrap()]),
            Reply::Array(vec![bulk("0"), bulks(&["c", "-5"])])
        );
        assert_eq!(t.cmd(&["ZSCAN", "s", "2"]), err(errors::CURSOR_INVALID));
        assert_eq!(
            t.cmd(&["ZSCAN", "s", "0", "MATCH", "b*"]),
            Reply::Array(vec![bulk("0"), bulks(&["b", "1.5"])])
        );
        assert_eq!(t.cmd(&["ZSCAN", "s", "x"]), err(errors::CURSOR_INVALID));
        assert_eq!(t.cmd(&["ZSCAN", "s", "0", "COUNT", "0"]), err(errors::SYNTAX));
        assert_eq!(
            t.cmd(&["ZSCAN", "none", "0"]),
            Reply::Array(vec![bulk("0"), bulks(&[])])
        );
    }

    #[test]
    fn persists_and_expires() {
        let t = TestDb::new();
        t.set_clock_ms(1_000);
        t.cmd(&["ZADD", "z", "1", "a", "2", "b"]);
        let t = t.reopen();
        t.set_clock_ms(1_000);
        assert_eq!(
            t.cmd(&["ZRANGE", "z", "0", "-1", "WITHSCORES"]),
            Reply::Array(vec![bulk("a"), d(1.0), bulk("b"), d(2.0)])
        );
        let db = t.db.clone();
        t.run(async {
            let mut tx = db.store.tx();
            let mut meta = db.meta(&tx, b"z").await.ok().flatten().expect("zset exists");
            db.set_expire(&mut tx, b"z", &mut meta, 2_000).expect("expire set");
            tx.commit().wait().await.expect("durable");
        });
        t.set_clock_ms(2_000);
        assert_eq!(t.cmd(&["ZCARD", "z"]), Reply::Int(0));
        assert_eq!(t.cmd(&["ZADD", "z", "5", "c"]), Reply::Int(1));
        assert_eq!(t.cmd(&["ZRANGE", "z", "0", "-1"]), bulks(&["c"]));
    }
}
