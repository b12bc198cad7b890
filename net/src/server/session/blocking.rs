//! Blocking pops (BLPOP, BRPOP, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP, BLMOVE,
//! BRPOPLPUSH) and the multi-pops (LMPOP, ZMPOP), for keys on any shards.
//!
//! A blocking command runs as a loop in its session:
//!
//! 1. **Attempt**: pop in the client's key order, one `Pop` message per
//!    run of consecutive keys owned by one shard (BLMOVE: an LMOVE). The
//!    first key that yields wins; an error (WRONGTYPE) ends the command.
//! 2. **Wait**: nothing to pop, so send `WaitNonEmpty` to every shard
//!    owning a key and wait for the first to answer that a key is
//!    non-empty, for the deadline, for the client to disconnect (checked
//!    every [`PEER_CHECK_INTERVAL`]) or for shutdown. The other shards'
//!    waits are cancelled with `CancelWait`.
//! 3. After a wake-up, back to 1 (another client may have won the race:
//!    then wait again).
//!
//! Waits never pop, and the session pops only while its client is
//! connected, so an element is never taken for a client that has gone.
//! Inside MULTI/EXEC a blocking command only attempts (Redis's rule: it
//! never blocks), under the transaction's locks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Blocked, Session};
use crate::redis::blocking::{PopFrom, Popped};
use crate::resp::num::parse_i64;
use crate::resp::{command, errors, CommandSpec, Reply};
use crate::server::{shard_of, ShardRequest, ShardResponse};

/// How often a blocked session checks that its client is still connected.
pub const PEER_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// When a blocking command gives up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Timeout {
    /// Never blocks (LMPOP, ZMPOP).
    Now,
    /// Timeout 0.
    Forever,
    After(Duration),
}

/// What a blocking or multi-pop command does once parsed.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Op {
    /// Pop from the first non-empty key; `count: None` answers one element
    /// flat (BLPOP, BZPOPMIN), `Some` answers `[key, [elements]]` (LMPOP).
    Pop {
        keys: Vec<Bytes>,
        from: PopFrom,
        count: Option<u64>,
    },
    /// BLMOVE, BRPOPLPUSH.
    Move {
        src: Bytes,
        dst: Bytes,
        from_left: bool,
        to_left: bool,
    },
}

impl Op {
    /// The reply when nothing was popped: a null array, but BLMOVE and
    /// BRPOPLPUSH inside EXEC answer a null bulk string (as Redis 7.0).
    fn nil(&self, in_exec: bool) -> Reply {
        match self {
            Op::Move { .. } if in_exec => Reply::Null,
            _ => Reply::NullArray,
        }
    }

    /// The keys to wait on, and whether they are sorted sets.
    fn wait_keys(&self) -> (Vec<Bytes>, bool) {
        match self {
            Op::Pop { keys, from, .. } => (keys.clone(), from.is_zset()),
            Op::Move { src, .. } => (vec![src.clone()], false),
        }
    }
}

/// Redis's timeout argument (seconds, fractional): `ERR timeout is not a
/// float or out of range`, or `ERR timeout is negative` (also for values
/// whose milliseconds overflow a signed 64-bit integer, as Redis 7.0).
pub(super) fn parse_timeout(arg: &[u8]) -> Result<Timeout, Reply> {
    let secs = match crate::resp::num::parse_f64(arg) {
        Some(s) if !s.is_nan() => s,
        // Beyond f64 but within Redis's long double (`1e400`): out of
        // range, which Redis reports as negative.
        _ if std::str::from_utf8(arg)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .is_some_and(f64::is_infinite) =>
        {
            return Err(Reply::error(errors::TIMEOUT_NEGATIVE))
        }
        _ => return Err(Reply::error(errors::TIMEOUT_NOT_FLOAT)),
    };
    let ms = (secs * 1000.0).ceil();
    // i64::MAX as f64 rounds up to 2^63, which is already out of range.
    if ms < 0.0 || ms >= i64::MAX as f64 {
        return Err(Reply::error(errors::TIMEOUT_NEGATIVE));
    }
    Ok(if ms == 0.0 {
        Timeout::Forever
    } else {
        Timeout::After(Duration::from_millis(ms as u64))
    })
}

/// `LEFT`/`RIGHT`.
fn side(arg: &[u8]) -> Result<bool, Reply> {
    if arg.eq_ignore_ascii_case(b"left") {
        Ok(true)
    } else if arg.eq_ignore_ascii_case(b"right") {
        Ok(false)
    } else {
        Err(Reply::error(errors::SYNTAX))
    }
}

/// A positive count argument, with Redis's message for anything else.
fn positive(arg: &[u8], what: &str) -> Result<u64, Reply> {
    match parse_i64(arg) {
        Some(n) if n > 0 => Ok(n as u64),
        _ => Err(Reply::error(format!("ERR {what} should be greater than 0"))),
    }
}

/// `numkeys key... LEFT|RIGHT|MIN|MAX [COUNT count]` starting at `at`.
fn parse_mpop(args: &[Bytes], at: usize, zset: bool) -> Result<Op, Reply> {
    let numkeys = positive(&args[at], "numkeys")?;
    let where_at = usize::try_from(numkeys)
        .ok()
        .and_then(|n| at.checked_add(n)?.checked_add(1))
        .filter(|&w| w < args.len())
        .ok_or_else(|| Reply::error(errors::SYNTAX))?;
    let w = &args[where_at];
    let from = match (zset, w.to_ascii_lowercase().as_slice()) {
        (false, b"left") => PopFrom::Left,
        (false, b"right") => PopFrom::Right,
        (true, b"min") => PopFrom::Min,
        (true, b"max") => PopFrom::Max,
        _ => return Err(Reply::error(errors::SYNTAX)),
    };
    let mut count = None;
    let mut j = where_at + 1;
    while j < args.len() {
        if count.is_none() && args[j].eq_ignore_ascii_case(b"count") && j + 1 < args.len() {
            count = Some(positive(&args[j + 1], "count")?);
            j += 2;
        } else {
            return Err(Reply::error(errors::SYNTAX));
        }
    }
    Ok(Op::Pop {
        keys: args[at + 1..where_at].to_vec(),
        from,
        count: Some(count.unwrap_or(1)),
    })
}

/// Parses one of this module's commands (name lowercase, arity checked),
/// checking arguments in Redis's order.
pub(super) fn parse(name: &str, args: &[Bytes]) -> Result<(Op, Timeout), Reply> {
    let last = args.len() - 1;
    let single = |from| Op::Pop {
        keys: args[1..last].to_vec(),
        from,
        count: None,
    };
    Ok(match name {
        "blpop" | "brpop" | "bzpopmin" | "bzpopmax" => {
            let timeout = parse_timeout(&args[last])?;
            let from = match name {
                "blpop" => PopFrom::Left,
                "brpop" => PopFrom::Right,
                "bzpopmin" => PopFrom::Min,
                _ => PopFrom::Max,
            };
            (single(from), timeout)
        }
        "lmpop" | "zmpop" => (parse_mpop(args, 1, name == "zmpop")?, Timeout::Now),
        "blmpop" | "bzmpop" => {
            let op = parse_mpop(args, 2, name == "bzmpop")?;
            (op, parse_timeout(&args[1])?)
        }
        "blmove" => {
            let (from_left, to_left) = (side(&args[3])?, side(&args[4])?);
            let op = Op::Move {
                src: args[1].clone(),
                dst: args[2].clone(),
                from_left,
                to_left,
            };
            (op, parse_timeout(&args[5])?)
        }
        "brpoplpush" => {
            let timeout = parse_timeout(&args[3])?;
            let op = Op::Move {
                src: args[1].clone(),
                dst: args[2].clone(),
                from_left: false,
                to_left: true,
            };
            (op, timeout)
        }
        _ => return Err(Reply::Error(errors::unknown_command(args))),
    })
}

/// The reply to a successful pop: `[key, element]` / `[key, member,
/// score]` for one element, `[key, [elements]]` / `[key, [[member,
/// score], ...]]` with a count.
fn popped_reply(p: Popped, multi: bool) -> Reply {
    match p {
        Popped::List(key, items) => {
            if multi {
                Reply::Array(vec![
                    Reply::Bulk(key),
                    Reply::Array(items.into_iter().map(Reply::Bulk).collect()),
                ])
            } else {
                let mut out = vec![Reply::Bulk(key)];
                out.extend(items.into_iter().take(1).map(Reply::Bulk));
                Reply::Array(out)
            }
        }
        Popped::ZSet(key, items) => {
            if multi {
                Reply::Array(vec![
                    Reply::Bulk(key),
                    Reply::Array(
                        items
                            .into_iter()
                            .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
                            .collect(),
                    ),
                ])
            } else {
                let mut out = vec![Reply::Bulk(key)];
                for (m, s) in items.into_iter().take(1) {
                    out.push(Reply::Bulk(m));
                    out.push(Reply::Double(s));
                }
                Reply::Array(out)
            }
        }
    }
}

/// How a wait ended.
enum Wake {
    /// A key became non-empty: attempt again.
    Ready,
    /// Deadline or disconnect: answer nil. (At shutdown the connection
    /// closes with no reply.)
    Over,
    Failed(Reply),
}

impl Session {
    /// Runs one of this module's commands; `in_exec` inside EXEC (never
    /// blocks; the transaction holds the keys' locks).
    pub(super) async fn blocking_command(
        &mut self,
        spec: &'static CommandSpec,
        args: &[Bytes],
        in_exec: bool,
    ) -> Reply {
        let (op, timeout) = match parse(spec.name, args) {
            Ok(p) => p,
            Err(e) => return e,
        };
        if !in_exec {
            if let Some(r) = self.shard.refuse_write() {
                return r;
            }
        }
        let deadline = match timeout {
            Timeout::Forever => None,
            Timeout::After(d) => Some(Instant::now() + d),
            Timeout::Now => Some(Instant::now()),
        };
        let immediate = in_exec || timeout == Timeout::Now;
        let info = self.info.clone();
        let mut blocked = None;
        loop {
            if let Some(reply) = self.attempt(&op, in_exec).await {
                return reply;
            }
            if immediate {
                return op.nil(in_exec);
            }
            blocked.get_or_insert_with(|| Blocked::new(&info));
            match self.wait_ready(&op, deadline).await {
                // The server is stopping: the client's connection closes
                // with no reply (a nil would read as a timeout). The
                // process-wide flag (a shard's own `stopping` is set only
                // after it): the shard owning the key may have noticed the
                // stop, and ended the wait, before this one did.
                _ if self.shard.ctx.control.stop_requested() => {
                    self.close_unanswered = true;
                    return op.nil(false);
                }
                // Pop only for a client still there to receive it.
                Wake::Ready if !self.probe.closed() => {}
                Wake::Ready | Wake::Over => return op.nil(false),
                Wake::Failed(e) => return e,
            }
        }
    }

    /// One non-blocking try: the reply if something was popped (or an
    /// error), `None` if every key is empty.
    async fn attempt(&mut self, op: &Op, in_exec: bool) -> Option<Reply> {
        match op {
            Op::Pop { keys, from, count } => {
                let shards = self.shard.shards();
                let mut i = 0;
                while i < keys.len() {
                    let s = shard_of(&keys[i], shards);
                    let mut j = i + 1;
                    while j < keys.len() && shard_of(&keys[j], shards) == s {
                        j += 1;
                    }
                    let req = ShardRequest::Pop {
                        keys: keys[i..j].to_vec(),
                        from: *from,
                        count: count.unwrap_or(1),
                        locked: in_exec,
                        txid: self.txid,
                    };
                    match self.call(s, req).await {
                        Ok(ShardResponse::Popped(Ok(Some(p)))) => return Some(popped_reply(p, count.is_some())),
                        Ok(ShardResponse::Popped(Ok(None))) => {}
                        Ok(ShardResponse::Popped(Err(e))) | Err(e) => return Some(e),
                        Ok(_) => return Some(Reply::error("ERR internal routing error")),
                    }
                    i = j;
                }
                None
            }
            Op::Move {
                src,
                dst,
                from_left,
                to_left,
            } => {
                let Some(lmove) = command::lookup(b"lmove") else {
                    return Some(Reply::error("ERR internal routing error"));
                };
                let name = |left: bool| Bytes::from_static(if left { b"LEFT" } else { b"RIGHT" });
                let args = vec![
                    Bytes::from_static(b"LMOVE"),
                    src.clone(),
                    dst.clone(),
                    name(*from_left),
                    name(*to_left),
                ];
                match Box::pin(self.dispatch(lmove, args, in_exec)).await {
                    Reply::Null => None,
                    other => Some(other),
                }
            }
        }
    }

    /// Waits until a shard says one of `op`'s keys is non-empty, or the
    /// deadline passes, the client disconnects or the server stops.
    async fn wait_ready(&self, op: &Op, deadline: Option<Instant>) -> Wake {
        let (keys, zset) = op.wait_keys();
        let shards = self.shard.shards();
        let mut per: BTreeMap<usize, Vec<Bytes>> = BTreeMap::new();
        for k in keys {
            per.entry(shard_of(&k, shards)).or_default().push(k);
        }
        let timeout = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Wake::Over,
            },
            None => None,
        };
        let id = self.shard.new_txid();
        let waits = per.iter().map(|(&s, keys)| {
            let req = ShardRequest::WaitNonEmpty {
                id,
                keys: keys.clone(),
                zset,
                timeout,
            };
            Box::pin(async move { (s, self.call(s, req).await) })
        });
        let mut pending = futures::future::select_all(waits);
        let (answered, wake) = loop {
            let tick = deadline.map_or(PEER_CHECK_INTERVAL, |d| {
                d.saturating_duration_since(Instant::now()).min(PEER_CHECK_INTERVAL)
            });
            match lumadb_shard::conn::timeout(tick, &mut pending).await {
                Some(((s, r), _, _)) => {
                    let wake = match r {
                        Ok(ShardResponse::Waited(true)) => Wake::Ready,
                        Ok(ShardResponse::Waited(false)) => Wake::Over,
                        Ok(_) => Wake::Failed(Reply::error("ERR internal routing error")),
                        Err(e) => Wake::Failed(e),
                    };
                    break (Some(s), wake);
                }
                None => {
                    if self.probe.closed() || self.shard.stopping.get() || deadline.is_some_and(|d| Instant::now() >= d)
                    {
                        break (None, Wake::Over);
                    }
                }
            }
        };
        // Dropping a wait on this shard deregisters it; the others are
        // told to stop.
        drop(pending);
        let me = self.shard.id();
        let cancels = per
            .keys()
            .filter(|&&s| Some(s) != answered && s != me)
            .map(|&s| self.call(s, ShardRequest::CancelWait(id)));
        futures::future::join_all(cancels).await;
        wake
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ').map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    fn err(r: Result<(Op, Timeout), Reply>) -> String {
        match r {
            Err(Reply::Error(e)) => String::from_utf8_lossy(&e).into_owned(),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    fn p(line: &str) -> Result<(Op, Timeout), Reply> {
        let a = args(line);
        parse(
            &a[0].to_ascii_lowercase().iter().map(|&c| c as char).collect::<String>(),
            &a,
        )
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout(b"0"), Ok(Timeout::Forever));
        assert_eq!(parse_timeout(b"-0"), Ok(Timeout::Forever));
        assert_eq!(parse_timeout(b"0.0001"), Ok(Timeout::After(Duration::from_millis(1))));
        assert_eq!(parse_timeout(b"1.5"), Ok(Timeout::After(Duration::from_millis(1500))));
        assert_eq!(parse_timeout(b"-1"), Err(Reply::error(errors::TIMEOUT_NEGATIVE)));
        // As Redis 7.0: a negative value that rounds to 0 ms blocks forever.
        assert_eq!(parse_timeout(b"-0.0001"), Ok(Timeout::Forever));
        assert_eq!(parse_timeout(b"inf"), Err(Reply::error(errors::TIMEOUT_NEGATIVE)));
        assert_eq!(parse_timeout(b"1e300"), Err(Reply::error(errors::TIMEOUT_NEGATIVE)));
        assert_eq!(parse_timeout(b"1e400"), Err(Reply::error(errors::TIMEOUT_NEGATIVE)));
        assert_eq!(parse_timeout(b"-1e400"), Err(Reply::error(errors::TIMEOUT_NEGATIVE)));
        assert_eq!(parse_timeout(b"abc"), Err(Reply::error(errors::TIMEOUT_NOT_FLOAT)));
        assert_eq!(parse_timeout(b""), Err(Reply::error(errors::TIMEOUT_NOT_FLOAT)));
    }

    #[test]
    fn mpop_arguments_in_redis_order() {
        let numkeys = "ERR numkeys should be greater than 0";
        let count = "ERR count should be greater than 0";
        assert_eq!(err(p("LMPOP 0 l LEFT")), numkeys);
        assert_eq!(err(p("LMPOP abc l LEFT")), numkeys);
        assert_eq!(err(p("LMPOP 99999999999999999999 l LEFT")), numkeys);
        assert_eq!(err(p("LMPOP 2 l LEFT")), errors::SYNTAX);
        assert_eq!(err(p("LMPOP 9223372036854775807 l LEFT")), errors::SYNTAX);
        assert_eq!(err(p("LMPOP 1 l UP")), errors::SYNTAX);
        assert_eq!(err(p("LMPOP 1 l MIN")), errors::SYNTAX);
        assert_eq!(err(p("ZMPOP 1 z LEFT")), errors::SYNTAX);
        assert_eq!(err(p("LMPOP 1 l LEFT COUNT")), errors::SYNTAX);
        assert_eq!(err(p("LMPOP 1 l LEFT COUNT 0")), count);
        assert_eq!(err(p("LMPOP 1 l LEFT COUNT x")), count);
        assert_eq!(err(p("LMPOP 1 l LEFT COUNT 1 COUNT 1")), errors::SYNTAX);
        assert_eq!(err(p("LMPOP 1 l LEFT FOO")), errors::SYNTAX);
        assert_eq!(err(p("BLMPOP x 1 l UP")), errors::SYNTAX);
        assert_eq!(err(p("BLMPOP x 1 l LEFT COUNT 0")), count);
        assert_eq!(err(p("BLMPOP x 1 l LEFT")), errors::TIMEOUT_NOT_FLOAT);
        assert_eq!(err(p("BLMPOP -1 0 l LEFT")), numkeys);
        let (op, t) = p("ZMPOP 2 a b max count 3").expect("parses");
        assert_eq!(t, Timeout::Now);
        assert_eq!(
            op,
            Op::Pop {
                keys: args("a b"),
                from: PopFrom::Max,
                count: Some(3)
            }
        );
        let (op, t) = p("BLMPOP 0.5 1 a RIGHT").expect("parses");
        assert_eq!(t, Timeout::After(Duration::from_millis(500)));
        assert_eq!(
            op,
            Op::Pop {
                keys: args("a"),
                from: PopFrom::Right,
                count: Some(1)
            }
        );
    }

    #[test]
    fn single_pops_and_moves() {
        let (op, t) = p("BZPOPMIN a b 0").expect("parses");
        assert_eq!(t, Timeout::Forever);
        assert_eq!(
            op,
            Op::Pop {
                keys: args("a b"),
                from: PopFrom::Min,
                count: None
            }
        );
        assert_eq!(err(p("BZPOPMAX a x")), errors::TIMEOUT_NOT_FLOAT);
        assert_eq!(err(p("BLMOVE a b UP RIGHT x")), errors::SYNTAX);
        assert_eq!(err(p("BLMOVE a b LEFT RIGHT x")), errors::TIMEOUT_NOT_FLOAT);
        let (op, _) = p("BRPOPLPUSH a b 1").expect("parses");
        assert_eq!(
            op,
            Op::Move {
                src: Bytes::from_static(b"a"),
                dst: Bytes::from_static(b"b"),
                from_left: false,
                to_left: true
            }
        );
        assert_eq!(op.nil(true), Reply::Null);
        assert_eq!(op.nil(false), Reply::NullArray);
        assert_eq!(op.wait_keys(), (args("a"), false));
    }

    #[test]
    fn key_positions_follow_numkeys() {
        let spec = |n: &[u8]| command::lookup(n).expect("in the table");
        assert_eq!(
            spec(b"lmpop")
                .key_indexes(&args("LMPOP 2 a b LEFT"))
                .collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(
            spec(b"bzmpop")
                .key_indexes(&args("BZMPOP 0 1 a MIN COUNT 2"))
                .collect::<Vec<_>>(),
            [3]
        );
        assert_eq!(
            spec(b"zmpop").key_indexes(&args("ZMPOP 5 a MIN")).collect::<Vec<_>>(),
            [2, 3]
        );
        assert!(spec(b"zmpop")
            .key_indexes(&args("ZMPOP x a MIN"))
            .collect::<Vec<_>>()
            .is_empty());
        assert_eq!(
            spec(b"blpop").key_indexes(&args("BLPOP a b 0")).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(
            spec(b"blmove")
                .key_indexes(&args("BLMOVE a b LEFT LEFT 0"))
                .collect::<Vec<_>>(),
            [1, 2]
        );
    }

    #[test]
    fn reply_shapes() {
        let k = Bytes::from_static(b"k");
        let v = Bytes::from_static(b"v");
        assert_eq!(
            popped_reply(Popped::List(k.clone(), vec![v.clone()]), false),
            Reply::Array(vec![Reply::Bulk(k.clone()), Reply::Bulk(v.clone())])
        );
        assert_eq!(
            popped_reply(Popped::List(k.clone(), vec![v.clone()]), true),
            Reply::Array(vec![Reply::Bulk(k.clone()), Reply::Array(vec![Reply::Bulk(v.clone())])])
        );
        assert_eq!(
            popped_reply(Popped::ZSet(k.clone(), vec![(v.clone(), 1.5)]), false),
            Reply::Array(vec![Reply::Bulk(k.clone()), Reply::Bulk(v.clone()), Reply::Double(1.5)])
        );
        assert_eq!(
            popped_reply(Popped::ZSet(k.clone(), vec![(v.clone(), 2.0)]), true),
            Reply::Array(vec![
                Reply::Bulk(k),
                Reply::Array(vec![Reply::Array(vec![Reply::Bulk(v), Reply::Double(2.0)])])
            ])
        );
    }
}
