//! Single-threaded async coordination for tasks on one core: a broadcast
//! [`Notify`], a one-shot [`Slot`], and a task-level [`LocalMutex`]. None of
//! these is `Send`; none blocks a thread. They order tasks of one shard the
//! way a group-commit queue or a "one flush at a time" rule needs, and they
//! are not locks between cores (nothing is shared between cores).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Wakes every task waiting at the time of `notify_all`. Waiters re-check
/// their condition in a loop: `while !cond() { notify.notified().await }`.
/// On one thread nothing runs between the check and the first poll, so no
/// wake-up is lost.
#[derive(Default, Clone)]
pub struct Notify {
    inner: Rc<NotifyInner>,
}

#[derive(Default)]
struct NotifyInner {
    generation: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

impl std::fmt::Debug for Notify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notify")
            .field("generation", &self.inner.generation.get())
            .finish_non_exhaustive()
    }
}

impl Notify {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn notify_all(&self) {
        self.inner.generation.set(self.inner.generation.get() + 1);
        let waiters = std::mem::take(&mut *self.inner.waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
    }

    /// Completes at the next `notify_all` after this call.
    pub fn notified(&self) -> Notified {
        Notified {
            inner: self.inner.clone(),
            generation: self.inner.generation.get(),
        }
    }
}

pub struct Notified {
    inner: Rc<NotifyInner>,
    generation: u64,
}

impl Future for Notified {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.generation.get() != self.generation {
            return Poll::Ready(());
        }
        let mut waiters = self.inner.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// A one-shot value handed from one task to another.
pub struct Slot<T> {
    value: RefCell<Option<T>>,
    waker: RefCell<Option<Waker>>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            value: RefCell::new(None),
            waker: RefCell::new(None),
        }
    }
}

impl<T> Slot<T> {
    pub fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }

    /// Stores the value and wakes the waiter. Setting twice is a bug.
    pub fn set(&self, v: T) {
        let prev = self.value.borrow_mut().replace(v);
        assert!(prev.is_none(), "slot set twice");
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Waits for the value.
    pub fn wait(self: &Rc<Self>) -> SlotWait<T> {
        SlotWait { slot: self.clone() }
    }
}

pub struct SlotWait<T> {
    slot: Rc<Slot<T>>,
}

impl<T> Future for SlotWait<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if let Some(v) = self.slot.value.borrow_mut().take() {
            return Poll::Ready(v);
        }
        *self.slot.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Task-level mutual exclusion on one core (one flush at a time, one
/// manifest writer). Not a thread lock: it never blocks a thread and is
/// `!Send`.
#[derive(Default, Clone)]
pub struct LocalMutex {
    locked: Rc<Cell<bool>>,
    released: Notify,
}

impl LocalMutex {
    pub fn new() -> Self {
        Self::default()
    }

    pub async fn lock(&self) -> LocalGuard {
        while self.locked.get() {
            self.released.notified().await;
        }
        self.locked.set(true);
        LocalGuard { mutex: self.clone() }
    }

    pub fn is_locked(&self) -> bool {
        self.locked.get()
    }
}

pub struct LocalGuard {
    mutex: LocalMutex,
}

impl Drop for LocalGuard {
    fn drop(&mut self) {
        assert!(self.mutex.locked.get());
        self.mutex.locked.set(false);
        self.mutex.released.notify_all();
    }
}
