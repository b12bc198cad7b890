//! Blocked clients on one shard: who waits for which key.
//!
//! A blocking command (BLPOP, BZPOPMIN, BLMOVE, ...) never pops while it
//! waits. Its session asks every shard that owns one of its keys to
//! *wait* until one of them holds a non-empty list (or sorted set), then
//! retries the pop itself, in key order (see `server::session::blocking`).
//! This registry is the shard's half: waiters per key in arrival order,
//! woken by [`Waiters::signal`] when a write makes a key non-empty.
//!
//! Nothing here pops, so a waiter that goes away (timeout, disconnect,
//! another shard woke first) can be dropped at any moment without losing
//! an element.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use bytes::Bytes;
use lumadb_engine::sync::Notify;

/// Cancellations kept for waits that have not arrived yet; the oldest go.
pub const CANCELLED_EARLY_MAX: usize = 1024;

/// Which end a multi-pop takes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PopFrom {
    /// List head (LPOP).
    Left,
    /// List tail (RPOP).
    Right,
    /// Lowest score (ZPOPMIN).
    Min,
    /// Highest score (ZPOPMAX).
    Max,
}

impl PopFrom {
    /// Whether this pops from a sorted set rather than a list.
    pub fn is_zset(self) -> bool {
        matches!(self, PopFrom::Min | PopFrom::Max)
    }
}

/// What one pop took from the first non-empty key it found.
#[derive(Debug, Clone, PartialEq)]
pub enum Popped {
    /// List elements, in pop order.
    List(Bytes, Vec<Bytes>),
    /// Sorted-set members and scores, in pop order.
    ZSet(Bytes, Vec<(Bytes, f64)>),
}

/// One waiter's wake-up: a push to one of its keys, or a cancellation.
#[derive(Default)]
pub struct WaitState {
    pub notify: Notify,
    pub cancelled: Cell<bool>,
}

/// See the module doc.
#[derive(Default)]
pub struct Waiters {
    /// Waiter ids per key, oldest first.
    by_key: HashMap<Vec<u8>, VecDeque<u64>>,
    /// Each waiter's keys and wake-up.
    entries: HashMap<u64, (Vec<Vec<u8>>, Rc<WaitState>)>,
    /// Ids cancelled before their wait was registered.
    cancelled_early: VecDeque<u64>,
}

impl Waiters {
    /// Registers waiter `id` on `keys`; `None` if it was cancelled before
    /// it arrived.
    pub fn register(&mut self, id: u64, keys: &[Bytes]) -> Option<Rc<WaitState>> {
        if let Some(i) = self.cancelled_early.iter().position(|&c| c == id) {
            self.cancelled_early.remove(i);
            return None;
        }
        assert!(!self.entries.contains_key(&id), "waiter ids are unique");
        let state = Rc::new(WaitState::default());
        let mut own: Vec<Vec<u8>> = Vec::with_capacity(keys.len());
        for k in keys {
            if own.iter().any(|o| o[..] == k[..]) {
                continue;
            }
            own.push(k.to_vec());
            self.by_key.entry(k.to_vec()).or_default().push_back(id);
        }
        self.entries.insert(id, (own, state.clone()));
        Some(state)
    }

    /// Removes waiter `id` (its wait ended); no-op if absent.
    pub fn remove(&mut self, id: u64) {
        let Some((keys, _)) = self.entries.remove(&id) else {
            return;
        };
        for k in keys {
            if let Some(q) = self.by_key.get_mut(&k) {
                q.retain(|&w| w != id);
                if q.is_empty() {
                    self.by_key.remove(&k);
                }
            }
        }
    }

    /// Ends waiter `id`'s wait; if it has not arrived yet, remembers that
    /// it is cancelled (bounded by [`CANCELLED_EARLY_MAX`]).
    pub fn cancel(&mut self, id: u64) {
        match self.entries.get(&id) {
            Some((_, state)) => {
                state.cancelled.set(true);
                state.notify.notify_all();
            }
            None => {
                self.cancelled_early.push_back(id);
                while self.cancelled_early.len() > CANCELLED_EARLY_MAX {
                    self.cancelled_early.pop_front();
                }
            }
        }
    }

    /// Wakes every waiter on `key`, oldest first.
    pub fn signal(&self, key: &[u8]) {
        let Some(q) = self.by_key.get(key) else { return };
        for id in q {
            if let Some((_, state)) = self.entries.get(id) {
                state.notify.notify_all();
            }
        }
    }

    /// Whether anyone waits on `key`.
    pub fn is_waited(&self, key: &[u8]) -> bool {
        self.by_key.contains_key(key)
    }

    /// Waiters registered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys with at least one waiter.
    pub fn keys_waited(&self) -> usize {
        self.by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn is_ready(f: &mut std::pin::Pin<&mut lumadb_engine::sync::Notified>) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        matches!(f.as_mut().poll(&mut cx), Poll::Ready(()))
    }

    #[test]
    fn signal_wakes_only_waiters_of_the_key() {
        let mut w = Waiters::default();
        let a = w.register(1, &[b("x"), b("y"), b("x")]).expect("registered");
        let c = w.register(2, &[b("z")]).expect("registered");
        assert_eq!((w.len(), w.keys_waited()), (2, 3));
        let mut na = pin!(a.notify.notified());
        let mut nc = pin!(c.notify.notified());
        assert!(!is_ready(&mut na));
        assert!(!is_ready(&mut nc));
        w.signal(b"y");
        w.signal(b"nobody");
        assert!(is_ready(&mut na));
        assert!(!is_ready(&mut nc));
        assert!(!a.cancelled.get());
    }

    #[test]
    fn remove_and_cancel_leave_nothing_behind() {
        let mut w = Waiters::default();
        let a = w.register(1, &[b("x")]).expect("registered");
        let _ = w.register(2, &[b("x"), b("y")]).expect("registered");
        w.cancel(1);
        assert!(a.cancelled.get());
        w.remove(1);
        assert!(w.is_waited(b"x"));
        w.remove(2);
        w.remove(2);
        assert!(w.is_empty());
        assert_eq!(w.keys_waited(), 0);
        assert!(!w.is_waited(b"x"));
    }

    #[test]
    fn cancel_before_register_is_remembered_boundedly() {
        let mut w = Waiters::default();
        w.cancel(7);
        assert!(w.register(7, &[b("x")]).is_none());
        assert!(w.is_empty());
        // Consumed: the same id could register now.
        assert!(w.register(7, &[b("x")]).is_some());
        w.remove(7);
        for id in 100..100 + CANCELLED_EARLY_MAX as u64 + 10 {
            w.cancel(id);
        }
        assert_eq!(w.cancelled_early.len(), CANCELLED_EARLY_MAX);
        // The oldest were forgotten.
        assert!(w.register(100, &[b("x")]).is_some());
    }
}
