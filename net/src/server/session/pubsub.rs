//! Pub/Sub in a session: SUBSCRIBE and friends, PUBLISH's fan-out to
//! every shard, and PUBSUB's introspection gathered over the shards. (A
//! subscribed connection waits on its socket and its mailbox at once in
//! `Session::next_input`.)
//!
//! A connection's subscriptions live in its own shard's
//! [`Registry`](crate::server::pubsub::Registry), so (un)subscribing
//! sends no message. A client that never subscribes has no [`Subs`] and
//! pays nothing on its command path.

use std::collections::BTreeSet;
use std::rc::Rc;

use bytes::Bytes;
use hashbrown::HashSet;

use super::{Session, CONN_WRITE_BUF_BYTES_MAX};
use crate::resp::{errors, Encoder, Reply};
use crate::server::pubsub::{Mailbox, PUBSUB_OUTPUT_BUF_BYTES_MAX};
use crate::server::{ShardRequest, ShardResponse};

/// A subscribing connection's channels, patterns and mailbox.
pub(super) struct Subs {
    pub(super) mailbox: Rc<Mailbox>,
    channels: HashSet<Bytes>,
    patterns: HashSet<Bytes>,
}

impl Subs {
    fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }
}

/// Commands a RESP2 connection may run while subscribed.
pub(super) fn allowed_when_subscribed(name: &str) -> bool {
    matches!(
        name,
        "ping" | "subscribe" | "unsubscribe" | "psubscribe" | "punsubscribe" | "quit" | "reset"
    )
}

/// Redis's refusal of other commands in RESP2 subscribed mode.
pub(super) fn refused_when_subscribed(full_name: &str) -> Reply {
    Reply::error(format!(
        "ERR Can't execute '{full_name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    ))
}

const PUBSUB_HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
];

impl Session {
    /// Whether the client has a channel or pattern subscription.
    pub(super) fn subscribed(&self) -> bool {
        self.subs.as_ref().is_some_and(|s| s.count() > 0)
    }

    /// Whether commands are restricted (subscribed over RESP2).
    pub(super) fn pubsub_restricted(&self) -> bool {
        !self.resp3 && self.subscribed()
    }

    fn subs_mut(&mut self) -> &mut Subs {
        self.subs.get_or_insert_with(|| {
            Box::new(Subs {
                mailbox: Mailbox::new(PUBSUB_OUTPUT_BUF_BYTES_MAX),
                channels: HashSet::new(),
                patterns: HashSet::new(),
            })
        })
    }

    fn publish_counts(&self) {
        if let Some(s) = &self.subs {
            self.info.sub.set(s.channels.len() as u64);
            self.info.psub.set(s.patterns.len() as u64);
        }
    }

    /// SUBSCRIBE (`pattern`: PSUBSCRIBE): one confirmation per argument.
    pub(super) fn subscribe(&mut self, args: &[Bytes], pattern: bool) -> Reply {
        let client = self.info.id;
        let shard = self.shard.clone();
        let kind: &'static str = if pattern { "psubscribe" } else { "subscribe" };
        let subs = self.subs_mut();
        let mut frames = Vec::with_capacity(args.len() - 1);
        for name in &args[1..] {
            let set = if pattern {
                &mut subs.patterns
            } else {
                &mut subs.channels
            };
            if set.insert(name.clone()) {
                let mut registry = shard.pubsub.borrow_mut();
                if pattern {
                    registry.psubscribe(client, &subs.mailbox, name);
                } else {
                    registry.subscribe(client, &subs.mailbox, name);
                }
            }
            frames.push(Reply::Push(vec![
                Reply::bulk(kind),
                Reply::Bulk(name.clone()),
                Reply::Int(subs.count() as i64),
            ]));
        }
        self.publish_counts();
        Reply::Frames(frames)
    }

    /// UNSUBSCRIBE (`pattern`: PUNSUBSCRIBE); no arguments: from all, and
    /// a nil-channel confirmation when there were none.
    pub(super) fn unsubscribe(&mut self, args: &[Bytes], pattern: bool) -> Reply {
        let client = self.info.id;
        let shard = self.shard.clone();
        let kind: &'static str = if pattern { "punsubscribe" } else { "unsubscribe" };
        let subs = self.subs_mut();
        let names: Vec<Bytes> = if args.len() > 1 {
            args[1..].to_vec()
        } else if pattern {
            subs.patterns.iter().cloned().collect()
        } else {
            subs.channels.iter().cloned().collect()
        };
        if names.is_empty() {
            return Reply::Push(vec![Reply::bulk(kind), Reply::Null, Reply::Int(subs.count() as i64)]);
        }
        let mut frames = Vec::with_capacity(names.len());
        for name in names {
            let set = if pattern {
                &mut subs.patterns
            } else {
                &mut subs.channels
            };
            if set.remove(&name) {
                let mut registry = shard.pubsub.borrow_mut();
                if pattern {
                    registry.punsubscribe(client, &name);
                } else {
                    registry.unsubscribe(client, &name);
                }
            }
            frames.push(Reply::Push(vec![
                Reply::bulk(kind),
                Reply::Bulk(name),
                Reply::Int(subs.count() as i64),
            ]));
        }
        self.publish_counts();
        Reply::Frames(frames)
    }

    /// Leaves every channel and pattern (the connection is closing).
    pub(super) fn pubsub_leave(&mut self) {
        let Some(subs) = self.subs.take() else { return };
        let mut registry = self.shard.pubsub.borrow_mut();
        for c in &subs.channels {
            registry.unsubscribe(self.info.id, c);
        }
        for p in &subs.patterns {
            registry.punsubscribe(self.info.id, p);
        }
    }

    /// Publishes each (channel, message) on every shard, in order; one
    /// message per shard for all of them. Replies: receivers per message.
    pub(super) async fn publish(&self, messages: Vec<(Bytes, Bytes)>) -> Vec<Reply> {
        let n = messages.len();
        let mut counts = vec![0u64; n];
        for r in self.call_all(|| ShardRequest::Publish(messages.clone())).await {
            match r {
                Ok(ShardResponse::Counts(c)) if c.len() == n => {
                    counts.iter_mut().zip(c).for_each(|(t, c)| *t += c);
                }
                Ok(_) => return vec![Reply::error("ERR internal routing error"); n],
                Err(e) => return vec![e; n],
            }
        }
        counts.into_iter().map(|c| Reply::Int(c as i64)).collect()
    }

    /// Runs a pipeline's run of consecutive PUBLISHes as one fan-out.
    pub(super) async fn flush_publish(&mut self, pending: &mut Vec<(Bytes, Bytes)>, out: &mut Vec<u8>) {
        let started = std::time::Instant::now();
        let replies = self.publish(std::mem::take(pending)).await;
        // Messages this client sent itself come before the replies, as
        // Redis writes them (RESP3).
        self.drain_mailbox(out);
        for r in replies {
            self.record("publish", &r, started);
            r.encode(self.resp3, out);
        }
    }

    /// Encodes queued messages onto `out` (up to the write bound).
    pub(super) fn drain_mailbox(&self, out: &mut Vec<u8>) {
        if let Some(s) = &self.subs {
            s.mailbox
                .drain_into(&Encoder::new(self.resp3), out, CONN_WRITE_BUF_BYTES_MAX);
        }
    }

    /// Whether the mailbox passed its bound (the connection must close).
    pub(super) fn mailbox_overflowed(&self) -> bool {
        self.subs.as_ref().is_some_and(|s| s.mailbox.overflowed())
    }

    /// PUBSUB CHANNELS / NUMSUB / NUMPAT / HELP over every shard.
    pub(super) async fn pubsub_command(&self, args: &[Bytes]) -> Reply {
        let sub = args[1].to_ascii_lowercase();
        match sub.as_slice() {
            b"channels" if args.len() <= 3 => {
                let pattern = args.get(2).cloned();
                match self
                    .gather_names(|| ShardRequest::PubSubChannels(pattern.clone()))
                    .await
                {
                    Ok(names) => Reply::Array(names.into_iter().map(Reply::Bulk).collect()),
                    Err(e) => e,
                }
            }
            b"numsub" => {
                let channels = args[2..].to_vec();
                let mut counts = vec![0u64; channels.len()];
                for r in self.call_all(|| ShardRequest::PubSubNumSub(channels.clone())).await {
                    match r {
                        Ok(ShardResponse::Counts(c)) => counts.iter_mut().zip(c).for_each(|(t, c)| *t += c),
                        Ok(_) => return Reply::error("ERR internal routing error"),
                        Err(e) => return e,
                    }
                }
                let mut items = Vec::with_capacity(channels.len() * 2);
                for (c, n) in channels.into_iter().zip(counts) {
                    items.push(Reply::Bulk(c));
                    items.push(Reply::Int(n as i64));
                }
                Reply::Array(items)
            }
            b"numpat" if args.len() == 2 => match self.gather_names(|| ShardRequest::PubSubPatterns).await {
                Ok(names) => Reply::Int(names.len() as i64),
                Err(e) => e,
            },
            b"help" if args.len() == 2 => Reply::Array(
                PUBSUB_HELP
                    .iter()
                    .map(|l| Reply::Simple(Bytes::from_static(l.as_bytes())))
                    .collect(),
            ),
            // Sharded Pub/Sub is not implemented: no shard channel ever
            // has a subscriber.
            b"shardchannels" if args.len() <= 3 => Reply::Array(Vec::new()),
            b"shardnumsub" => Reply::Array(
                args[2..]
                    .iter()
                    .flat_map(|c| [Reply::Bulk(c.clone()), Reply::Int(0)])
                    .collect(),
            ),
            b"channels" | b"shardchannels" => Reply::error(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
                String::from_utf8_lossy(&args[1])
            )),
            b"numpat" => Reply::Error(errors::wrong_arity("pubsub|numpat")),
            b"help" => Reply::Error(errors::wrong_arity("pubsub|help")),
            _ => Reply::Error(errors::unknown_subcommand("PUBSUB", &args[1])),
        }
    }

    /// The union of the names every shard answers, sorted.
    async fn gather_names(&self, make: impl Fn() -> ShardRequest) -> Result<BTreeSet<Bytes>, Reply> {
        let mut all = BTreeSet::new();
        for r in self.call_all(make).await {
            match r {
                Ok(ShardResponse::Keys(Ok(names))) => all.extend(names),
                Ok(ShardResponse::Keys(Err(e))) | Err(e) => return Err(e),
                Ok(_) => return Err(Reply::error("ERR internal routing error")),
            }
        }
        Ok(all)
    }

    /// Distinct channels and patterns subscribed over all shards (INFO).
    pub(super) async fn pubsub_totals(&self) -> (usize, usize) {
        let channels = self
            .gather_names(|| ShardRequest::PubSubChannels(None))
            .await
            .map_or(0, |n| n.len());
        let patterns = self
            .gather_names(|| ShardRequest::PubSubPatterns)
            .await
            .map_or(0, |n| n.len());
        (channels, patterns)
    }
}
