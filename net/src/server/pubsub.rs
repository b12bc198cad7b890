//! Pub/Sub on one shard: which of this shard's connections listen to
//! which channels and patterns, and their mailboxes.
//!
//! Every shard keeps only its own connections' subscriptions; nothing is
//! shared between cores. PUBLISH asks every shard (one
//! `ShardRequest::Publish` each, consecutive PUBLISHes of a pipeline in
//! one message) to [`Registry::publish`] locally; the receiver counts are
//! summed by the publisher's session. A delivery appends the message to
//! the subscriber's [`Mailbox`] and wakes its session, which writes it
//! out between commands or while waiting for the next one.
//!
//! A mailbox holds at most [`PUBSUB_OUTPUT_BUF_BYTES_MAX`] bytes (Redis's
//! `client-output-buffer-limit pubsub` hard limit): past it the queue is
//! dropped and the session closes the connection, as Redis does, so a
//! slow subscriber cannot grow the server's memory without bound.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;
use hashbrown::HashMap;
use lumadb_engine::sync::Notify;

use crate::resp::Encoder;

/// Bytes of undelivered messages one subscriber may hold (Redis's
/// `client-output-buffer-limit pubsub 32mb` hard limit).
pub const PUBSUB_OUTPUT_BUF_BYTES_MAX: usize = 32 << 20;
/// Bytes a message costs in a mailbox beyond its strings (frame headers
/// and bookkeeping), so that empty messages still count.
pub const MESSAGE_OVERHEAD_BYTES: usize = 64;

/// One message waiting for a subscriber.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The pattern it matched (`pmessage`), or `None` (`message`).
    pub pattern: Option<Bytes>,
    pub channel: Bytes,
    pub payload: Bytes,
}

impl Message {
    fn size_bytes(&self) -> usize {
        self.pattern.as_ref().map_or(0, |p| p.len()) + self.channel.len() + self.payload.len() + MESSAGE_OVERHEAD_BYTES
    }

    /// Appends the frame Redis sends: `message` or `pmessage`, a push in
    /// RESP3, an array in RESP2.
    pub fn encode(&self, enc: &Encoder, out: &mut Vec<u8>) {
        match &self.pattern {
            None => {
                enc.push_header(out, 3);
                enc.bulk(out, b"message");
            }
            Some(p) => {
                enc.push_header(out, 4);
                enc.bulk(out, b"pmessage");
                enc.bulk(out, p);
            }
        }
        enc.bulk(out, &self.channel);
        enc.bulk(out, &self.payload);
    }
}

/// Messages delivered to one connection and not yet written out.
pub struct Mailbox {
    queue: RefCell<VecDeque<Message>>,
    bytes: Cell<usize>,
    bytes_max: usize,
    overflowed: Cell<bool>,
    /// Wakes the session when a message arrives or the bound is passed.
    pub notify: Notify,
}

impl Mailbox {
    pub fn new(bytes_max: usize) -> Rc<Mailbox> {
        Rc::new(Mailbox {
            queue: RefCell::new(VecDeque::new()),
            bytes: Cell::new(0),
            bytes_max,
            overflowed: Cell::new(false),
            notify: Notify::new(),
        })
    }

    /// Queues `m`; past the bound drops everything and marks the mailbox
    /// overflowed (its connection is to be closed).
    fn deliver(&self, m: Message) {
        if self.overflowed.get() {
            return;
        }
        let bytes = self.bytes.get() + m.size_bytes();
        if bytes > self.bytes_max {
            self.overflowed.set(true);
            self.queue.borrow_mut().clear();
            self.bytes.set(0);
        } else {
            self.bytes.set(bytes);
            self.queue.borrow_mut().push_back(m);
        }
        self.notify.notify_all();
    }

    /// Whether the subscriber fell more than the bound behind.
    pub fn overflowed(&self) -> bool {
        self.overflowed.get()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.borrow().is_empty()
    }

    /// Bytes queued (CLIENT LIST `omem`-like accounting).
    pub fn bytes(&self) -> usize {
        self.bytes.get()
    }

    /// Encodes queued messages onto `out`, oldest first, until `out`
    /// holds `out_bytes_max` bytes or the queue is empty.
    pub fn drain_into(&self, enc: &Encoder, out: &mut Vec<u8>, out_bytes_max: usize) {
        let mut q = self.queue.borrow_mut();
        while out.len() < out_bytes_max {
            let Some(m) = q.pop_front() else { break };
            self.bytes.set(self.bytes.get() - m.size_bytes());
            m.encode(enc, out);
        }
        debug_assert!(!q.is_empty() || self.bytes.get() == 0);
    }
}

type Subscribers = HashMap<u64, Rc<Mailbox>>;

/// This shard's subscriptions: channel → clients, pattern → clients.
#[derive(Default)]
pub struct Registry {
    channels: HashMap<Bytes, Subscribers>,
    patterns: HashMap<Bytes, Subscribers>,
}

fn add(map: &mut HashMap<Bytes, Subscribers>, key: &Bytes, client: u64, mailbox: &Rc<Mailbox>) {
    map.entry(key.clone()).or_default().insert(client, mailbox.clone());
}

fn remove(map: &mut HashMap<Bytes, Subscribers>, key: &[u8], client: u64) {
    if let Some(subs) = map.get_mut(key) {
        subs.remove(&client);
        if subs.is_empty() {
            map.remove(key);
        }
    }
}

impl Registry {
    pub fn subscribe(&mut self, client: u64, mailbox: &Rc<Mailbox>, channel: &Bytes) {
        add(&mut self.channels, channel, client, mailbox);
    }

    pub fn unsubscribe(&mut self, client: u64, channel: &[u8]) {
        remove(&mut self.channels, channel, client);
    }

    pub fn psubscribe(&mut self, client: u64, mailbox: &Rc<Mailbox>, pattern: &Bytes) {
        add(&mut self.patterns, pattern, client, mailbox);
    }

    pub fn punsubscribe(&mut self, client: u64, pattern: &[u8]) {
        remove(&mut self.patterns, pattern, client);
    }

    /// Delivers `payload` to this shard's subscribers of `channel` and of
    /// patterns matching it (channel subscribers first, as Redis); returns
    /// how many deliveries were made.
    pub fn publish(&self, channel: &Bytes, payload: &Bytes) -> u64 {
        let mut n = 0;
        if let Some(subs) = self.channels.get(channel.as_ref()) {
            for mailbox in subs.values() {
                mailbox.deliver(Message {
                    pattern: None,
                    channel: channel.clone(),
                    payload: payload.clone(),
                });
                n += 1;
            }
        }
        for (pattern, subs) in &self.patterns {
            if !crate::glob::glob_match(pattern, channel, false) {
                continue;
            }
            for mailbox in subs.values() {
                mailbox.deliver(Message {
                    pattern: Some(pattern.clone()),
                    channel: channel.clone(),
                    payload: payload.clone(),
                });
                n += 1;
            }
        }
        n
    }

    /// Channels with subscribers here, matching `pattern` if given.
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.channels
            .keys()
            .filter(|c| pattern.is_none_or(|p| crate::glob::glob_match(p, c, false)))
            .cloned()
            .collect()
    }

    /// Subscribers of `channel` here (pattern subscriptions excluded).
    pub fn numsub(&self, channel: &[u8]) -> u64 {
        self.channels.get(channel).map_or(0, |s| s.len() as u64)
    }

    /// Patterns with subscribers here.
    pub fn patterns(&self) -> Vec<Bytes> {
        self.patterns.keys().cloned().collect()
    }

    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn drained(m: &Mailbox, resp3: bool) -> Vec<u8> {
        let mut out = Vec::new();
        m.drain_into(&Encoder::new(resp3), &mut out, usize::MAX);
        out
    }

    #[test]
    fn publish_reaches_channel_then_pattern_subscribers() {
        let mut r = Registry::default();
        let (a, c) = (Mailbox::new(1 << 20), Mailbox::new(1 << 20));
        r.subscribe(1, &a, &b("news"));
        r.psubscribe(1, &a, &b("n*"));
        r.psubscribe(2, &c, &b("x*"));
        assert_eq!(r.publish(&b("news"), &b("hi")), 2);
        assert_eq!(
            drained(&a, false),
            b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        assert!(c.is_empty());
        assert_eq!(a.bytes(), 0);
        assert_eq!(r.publish(&b("other"), &b("hi")), 0);
    }

    #[test]
    fn resp3_messages_are_pushes() {
        let mut r = Registry::default();
        let a = Mailbox::new(1 << 20);
        r.subscribe(7, &a, &b("c"));
        r.publish(&b("c"), &b(""));
        assert_eq!(drained(&a, true), b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$0\r\n\r\n");
    }

    #[test]
    fn unsubscribe_forgets_empty_channels() {
        let mut r = Registry::default();
        let a = Mailbox::new(1 << 20);
        r.subscribe(1, &a, &b("c"));
        r.subscribe(2, &a, &b("c"));
        r.psubscribe(1, &a, &b("*"));
        assert_eq!(r.numsub(b"c"), 2);
        assert_eq!((r.channel_count(), r.pattern_count()), (1, 1));
        r.unsubscribe(1, b"c");
        assert_eq!(r.numsub(b"c"), 1);
        r.unsubscribe(2, b"c");
        r.unsubscribe(2, b"never");
        r.punsubscribe(1, b"*");
        assert_eq!((r.channel_count(), r.pattern_count()), (0, 0));
        assert_eq!(r.publish(&b("c"), &b("x")), 0);
    }

    #[test]
    fn channels_filter_by_glob() {
        let mut r = Registry::default();
        let a = Mailbox::new(1 << 20);
        for c in ["news.a", "news.b", "sport"] {
            r.subscribe(1, &a, &b(c));
        }
        let mut all = r.channels(None);
        all.sort();
        assert_eq!(all, vec![b("news.a"), b("news.b"), b("sport")]);
        let mut news = r.channels(Some(b"news.*"));
        news.sort();
        assert_eq!(news, vec![b("news.a"), b("news.b")]);
    }

    #[test]
    fn a_full_mailbox_overflows_and_frees_its_queue() {
        let mut r = Registry::default();
        let a = Mailbox::new(3 * (MESSAGE_OVERHEAD_BYTES + 2));
        r.subscribe(1, &a, &b("c"));
        for _ in 0..3 {
            assert_eq!(r.publish(&b("c"), &b("x")), 1);
        }
        assert!(!a.overflowed());
        // Past the bound: still counted as received (Redis counts it too),
        // then the connection is closed.
        assert_eq!(r.publish(&b("c"), &b("x")), 1);
        assert!(a.overflowed());
        assert!(a.is_empty());
        assert_eq!(a.bytes(), 0);
    }

    #[test]
    fn drain_stops_at_the_write_bound_and_keeps_order() {
        let mut r = Registry::default();
        let a = Mailbox::new(1 << 20);
        r.subscribe(1, &a, &b("c"));
        for i in 0..100 {
            r.publish(&b("c"), &b(&i.to_string()));
        }
        let enc = Encoder::new(false);
        let mut out = Vec::new();
        a.drain_into(&enc, &mut out, 10);
        assert!(!a.is_empty());
        a.drain_into(&enc, &mut out, usize::MAX);
        assert!(a.is_empty());
        let mut want = Vec::new();
        for i in 0..100 {
            Message {
                pattern: None,
                channel: b("c"),
                payload: b(&i.to_string()),
            }
            .encode(&enc, &mut want);
        }
        assert_eq!(out, want);
    }
}
