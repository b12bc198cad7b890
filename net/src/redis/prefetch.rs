//! Prefetch hints for a batch of commands about to run on this shard.
//!
//! Pipelined commands run one after another, and each starts with point
//! reads whose cache misses (a hash slot, then the key's record) would
//! come one after another too. Before a batch runs, the shard asks the
//! engine to start loading them all at once: first every command's
//! metadata, then, for commands that name members of a hash, set or
//! sorted set, the members' elements (their generation read from the
//! metadata that has just arrived), and for sorted-set writes the
//! score-order entries of those members (named by the scores that have
//! just arrived). Hints only: no answer depends on them.

use bytes::Bytes;
use lumadb_engine::storage::Storage;

use super::keys::{
    element_key, meta_key, sortable_score, Kind, Meta, MetaKey, TAG_HASH, TAG_SET, TAG_ZMEMBER, TAG_ZSCORE,
};
use super::store::Store;
use crate::resp::command::CommandSpec;

/// Members of one command prefetched at most.
const MEMBERS_PER_COMMAND_MAX: usize = 16;

/// Starts loading what `cmds` will read first.
pub fn prefetch_batch<S: Storage>(store: &Store<S>, cmds: &[(&'static CommandSpec, Vec<Bytes>)]) {
    let metas: Vec<(MetaKey, usize)> = cmds
        .iter()
        .enumerate()
        .filter_map(|(i, (spec, args))| {
            let first = usize::try_from(spec.first_key).ok().filter(|&k| k > 0)?;
            Some((meta_key(args.get(first)?), i))
        })
        .collect();
    store.prefetch(metas.iter().map(|(k, _)| &**k));
    let mut elements: Vec<Vec<u8>> = Vec::new();
    // Sorted-set members whose score-order entry a write will replace:
    // key, generation, member, and the member's entry in `elements`.
    let mut rescored: Vec<(&[u8], u64, &[u8], usize)> = Vec::new();
    for (meta, i) in &metas {
        let (spec, args) = &cmds[*i];
        let Some((kind, members)) = members(spec.name, args) else {
            continue;
        };
        // The kind byte first: a string's meta holds its whole value, which
        // a hint must not copy.
        let Some(Some(version)) = store.peek(meta, |v| {
            (v.first() == Some(&(kind as u8)))
                .then(|| Meta::decode(v).map(|m| m.version))
                .flatten()
        }) else {
            continue;
        };
        let tag = match kind {
            Kind::Hash => TAG_HASH,
            Kind::Set => TAG_SET,
            _ => TAG_ZMEMBER,
        };
        let key = &args[1];
        for m in members.take(MEMBERS_PER_COMMAND_MAX) {
            if matches!(spec.name, "zadd" | "zincrby" | "zrem") {
                rescored.push((key, version, m, elements.len()));
            }
            elements.push(element_key(key, version, tag, m));
        }
    }
    if elements.is_empty() {
        return;
    }
    store.prefetch(elements.iter().map(Vec::as_slice));
    // A sorted-set write then replaces the member's score-order entry,
    // named by the score that has just been asked for.
    let by_score: Vec<Vec<u8>> = rescored
        .into_iter()
        .filter_map(|(key, version, member, at)| {
            let bits: [u8; 8] = store.peek(&elements[at], |v| v.try_into().ok())??;
            let score = f64::from_bits(u64::from_be_bytes(bits));
            let rest = [&sortable_score(score)[..], member].concat();
            Some(element_key(key, version, TAG_ZSCORE, &rest))
        })
        .collect();
    store.prefetch(by_score.iter().map(Vec::as_slice));
}

/// The collection kind and members a command reads by name, if it is
/// one that does.
fn members<'a>(name: &str, args: &'a [Bytes]) -> Option<(Kind, impl Iterator<Item = &'a [u8]> + 'a)> {
    let from = |i: usize, step: usize| args.iter().skip(i).step_by(step).map(|a| &a[..]);
    Some(match name {
        "hget" | "hexists" | "hstrlen" | "hdel" | "hmget" | "hincrby" | "hincrbyfloat" | "hsetnx" => {
            let step = if name == "hdel" || name == "hmget" {
                1
            } else {
                usize::MAX
            };
            (Kind::Hash, from(2, step))
        }
        "hset" | "hmset" => (Kind::Hash, from(2, 2)),
        "sismember" | "sadd" | "srem" | "smismember" => (Kind::Set, from(2, 1)),
        "zscore" | "zmscore" | "zrem" => (Kind::ZSet, from(2, 1)),
        "zincrby" => (Kind::ZSet, from(3, usize::MAX)),
        "zadd" => {
            let flags = args
                .iter()
                .skip(2)
                .take_while(|a| {
                    matches!(
                        a.to_ascii_lowercase().as_slice(),
                        b"nx" | b"xx" | b"gt" | b"lt" | b"ch" | b"incr"
                    )
                })
                .count();
            (Kind::ZSet, from(2 + flags + 1, 2))
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, args: &[&str]) -> Option<(Kind, Vec<String>)> {
        let args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
        members(name, &args).map(|(k, m)| (k, m.map(|m| String::from_utf8_lossy(m).into_owned()).collect()))
    }

    #[test]
    fn members_are_found_where_each_command_names_them() {
        let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            named("hset", &["hset", "h", "f1", "v1", "f2", "v2"]),
            Some((Kind::Hash, strs(&["f1", "f2"])))
        );
        assert_eq!(named("hget", &["hget", "h", "f"]), Some((Kind::Hash, strs(&["f"]))));
        assert_eq!(
            named("hincrby", &["hincrby", "h", "f", "5"]),
            Some((Kind::Hash, strs(&["f"])))
        );
        assert_eq!(
            named("hdel", &["hdel", "h", "a", "b"]),
            Some((Kind::Hash, strs(&["a", "b"])))
        );
        assert_eq!(
            named("sadd", &["sadd", "s", "a", "b"]),
            Some((Kind::Set, strs(&["a", "b"])))
        );
        assert_eq!(
            named("zincrby", &["zincrby", "z", "2", "m"]),
            Some((Kind::ZSet, strs(&["m"])))
        );
        assert_eq!(
            named("zadd", &["zadd", "z", "NX", "ch", "1", "a", "2", "b"]),
            Some((Kind::ZSet, strs(&["a", "b"])))
        );
        assert_eq!(
            named("zadd", &["zadd", "z", "1", "a"]),
            Some((Kind::ZSet, strs(&["a"])))
        );
        assert_eq!(named("zadd", &["zadd", "z", "xx"]), Some((Kind::ZSet, strs(&[]))));
        assert_eq!(named("get", &["get", "k"]), None);
    }
}
