//! The network driver: one io_uring ring per shard for sockets.
//!
//! glommio's socket path costs about twice Redis's CPU per request at
//! pipeline depth 1 (a speculative `recv`, then a poll, then `recv` again;
//! see `PLATFORM.md`). This driver owns a second, small ring on each
//! executor thread and batches every socket operation of a scheduler tick
//! into one submission:
//!
//! - Connection tasks queue `Accept`, `Recv` and `Send` entries and wait on
//!   their op slot; queuing wakes the driver task, which runs after the
//!   tasks that are ready now, so one `io_uring_enter` carries the whole
//!   tick's operations.
//! - The driver reaps completions, fills the slots and wakes their tasks.
//! - With nothing to do, the driver sleeps in glommio's reactor on the
//!   ring's file descriptor (readable when completions are waiting; a
//!   one-line patch in `vendor/glommio` exposes that poll), so the core
//!   parks as usual.
//!
//! Memory safety: a buffer handed to the kernel is owned by its op slot
//! until the completion arrives, even if the waiting future is dropped
//! (the slot is then marked orphaned and freed on completion).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::os::unix::io::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use io_uring::{opcode, squeue, types, IoUring};

/// Submission queue entries of each shard's network ring.
pub const NET_RING_ENTRIES: u32 = 1024;

struct Op {
    result: Option<i32>,
    waker: Option<Waker>,
    /// Kept alive while the kernel may use it.
    buf: Option<Vec<u8>>,
    /// The waiting future is gone; free the slot on completion.
    orphan: bool,
}

struct Inner {
    ring: IoUring,
    ops: Vec<Option<Op>>,
    free: Vec<usize>,
    /// Entries pushed but not yet submitted.
    unsubmitted: usize,
    in_flight: usize,
    /// Completions of one turn (kept to reuse its allocation).
    done: Vec<(usize, i32)>,
}

/// One shard's network ring. `!Send`: it lives on its executor's thread.
pub struct Ring {
    inner: RefCell<Inner>,
    fd: RawFd,
    driver_waker: RefCell<Option<Waker>>,
    work: Cell<bool>,
}

thread_local! {
    static RING: RefCell<Option<Rc<Ring>>> = const { RefCell::new(None) };
}

impl Ring {
    /// This thread's ring, created (and its driver spawned) on first use.
    pub fn current() -> io::Result<Rc<Ring>> {
        if let Some(r) = RING.with(|r| r.borrow().clone()) {
            return Ok(r);
        }
        let ring = IoUring::builder().setup_coop_taskrun().build(NET_RING_ENTRIES)?;
        let fd = ring.as_raw_fd_compat();
        let r = Rc::new(Ring {
            inner: RefCell::new(Inner {
                ring,
                ops: Vec::new(),
                free: Vec::new(),
                done: Vec::new(),
                unsubmitted: 0,
                in_flight: 0,
            }),
            fd,
            driver_waker: RefCell::new(None),
            work: Cell::new(false),
        });
        RING.with(|slot| *slot.borrow_mut() = Some(r.clone()));
        let driver = r.clone();
        glommio::spawn_local(async move { driver.drive().await }).detach();
        Ok(r)
    }

    /// Queues `entry` (its user data is set here) with `buf` kept alive
    /// until completion; returns the future of its result.
    fn submit(self: &Rc<Self>, entry: squeue::Entry, buf: Option<Vec<u8>>) -> OpFuture {
        let index = {
            let mut inner = self.inner.borrow_mut();
            let op = Op {
                result: None,
                waker: None,
                buf,
                orphan: false,
            };
            let index = match inner.free.pop() {
                Some(i) => {
                    inner.ops[i] = Some(op);
                    i
                }
                None => {
                    inner.ops.push(Some(op));
                    inner.ops.len() - 1
                }
            };
            let entry = entry.user_data(index as u64);
            // SAFETY: every buffer the entry points at is owned by the op
            // slot (or by the caller's pinned future) until completion.
            while unsafe { inner.ring.submission().push(&entry) }.is_err() {
                // Queue full: hand what is queued to the kernel now.
                let _ = inner.ring.submit();
                inner.unsubmitted = 0;
            }
            inner.unsubmitted += 1;
            inner.in_flight += 1;
            index
        };
        self.wake_driver();
        OpFuture {
            ring: self.clone(),
            index,
            done: false,
        }
    }

    fn wake_driver(&self) {
        if !self.work.replace(true) {
            if let Some(w) = self.driver_waker.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// Submits queued entries and dispatches completions; returns how many
    /// completed.
    fn turn(&self) -> usize {
        let mut inner = self.inner.borrow_mut();
        if inner.unsubmitted > 0 {
            if let Err(e) = inner.ring.submit() {
                if e.raw_os_error() != Some(libc::EBUSY) && e.raw_os_error() != Some(libc::EINTR) {
                    tracing::error!(error = %e, "network ring submit failed");
                }
            } else {
                inner.unsubmitted = 0;
            }
        }
        let mut done = std::mem::take(&mut inner.done);
        done.extend(
            inner
                .ring
                .completion()
                .map(|cqe| (cqe.user_data() as usize, cqe.result())),
        );
        let n = done.len();
        for &(index, result) in &done {
            inner.in_flight -= 1;
            let free = {
                let Some(op) = inner.ops.get_mut(index).and_then(Option::as_mut) else {
                    panic!("completion for an unknown network op {index}");
                };
                op.result = Some(result);
                if let Some(w) = op.waker.take() {
                    w.wake();
                }
                op.orphan
            };
            if free {
                inner.ops[index] = None;
                inner.free.push(index);
            }
        }
        done.clear();
        inner.done = done;
        n
    }

    async fn drive(self: Rc<Self>) {
        let mut readable: Option<Pin<Box<dyn Future<Output = io::Result<()>>>>> = None;
        loop {
            self.work.set(false);
            if self.turn() > 0 {
                // Let the woken tasks run (and queue more) before the next turn.
                futures_lite::future::yield_now().await;
                continue;
            }
            // Sleep until a task queues work or the ring has completions.
            let fd = self.fd;
            let r = readable.get_or_insert_with(|| Box::pin(glommio::wait_readable(fd)));
            let woke_by_poll = std::future::poll_fn(|cx| {
                if self.work.get() {
                    return Poll::Ready(false);
                }
                *self.driver_waker.borrow_mut() = Some(cx.waker().clone());
                match r.as_mut().poll(cx) {
                    Poll::Ready(res) => {
                        if let Err(e) = res {
                            tracing::error!(error = %e, "waiting on the network ring failed");
                        }
                        Poll::Ready(true)
                    }
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            if woke_by_poll {
                readable = None;
            }
        }
    }
}

trait RawFdCompat {
    fn as_raw_fd_compat(&self) -> RawFd;
}

impl RawFdCompat for IoUring {
    fn as_raw_fd_compat(&self) -> RawFd {
        std::os::unix::io::AsRawFd::as_raw_fd(self)
    }
}

/// The result of one op, with its buffer back.
struct OpFuture {
    ring: Rc<Ring>,
    index: usize,
    done: bool,
}

impl Future for OpFuture {
    type Output = (i32, Option<Vec<u8>>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let index = self.index;
        let mut inner = self.ring.inner.borrow_mut();
        let op = inner.ops[index].as_mut().expect("a waited op has a slot");
        match op.result {
            Some(result) => {
                let buf = op.buf.take();
                inner.ops[index] = None;
                inner.free.push(index);
                drop(inner);
                self.done = true;
                Poll::Ready((result, buf))
            }
            None => {
                op.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for OpFuture {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut inner = self.ring.inner.borrow_mut();
        let finished = match inner.ops[self.index].as_mut() {
            Some(op) if op.result.is_some() => true,
            Some(op) => {
                op.orphan = true;
                op.waker = None;
                false
            }
            None => false,
        };
        if finished {
            inner.ops[self.index] = None;
            inner.free.push(self.index);
        }
    }
}

fn result_io(r: i32) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::from_raw_os_error(-r))
    } else {
        Ok(r as usize)
    }
}

/// Accepts one connection on listening socket `fd`; returns its fd.
pub async fn accept(fd: RawFd) -> io::Result<RawFd> {
    let ring = Ring::current()?;
    let entry = opcode::Accept::new(types::Fd(fd), std::ptr::null_mut(), std::ptr::null_mut())
        .flags(libc::SOCK_CLOEXEC)
        .build();
    let (r, _) = ring.submit(entry, None).await;
    result_io(r).map(|n| n as RawFd)
}

/// Receives into `buf` (its whole length); returns `buf` and the count.
pub async fn recv(fd: RawFd, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
    let ring = match Ring::current() {
        Ok(r) => r,
        Err(e) => return (Err(e), buf),
    };
    let entry = opcode::Recv::new(types::Fd(fd), buf.as_mut_ptr(), buf.len() as u32).build();
    let (r, back) = ring.submit(entry, Some(buf)).await;
    (result_io(r), back.unwrap_or_default())
}

/// A receive handed to the kernel: completes with the count and the
/// buffer. Dropping it before completion loses what it receives, so a
/// caller that may stop waiting keeps it and polls it again later
/// ([`crate::conn::Connection::read`] does).
pub struct RecvOp(OpFuture);

impl RecvOp {
    /// Queues a receive into `buf` (its whole length) on socket `fd`.
    pub fn start(fd: RawFd, mut buf: Vec<u8>) -> Result<RecvOp, (io::Error, Vec<u8>)> {
        let ring = match Ring::current() {
            Ok(r) => r,
            Err(e) => return Err((e, buf)),
        };
        let entry = opcode::Recv::new(types::Fd(fd), buf.as_mut_ptr(), buf.len() as u32).build();
        Ok(RecvOp(ring.submit(entry, Some(buf))))
    }
}

impl Future for RecvOp {
    type Output = (io::Result<usize>, Vec<u8>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|(r, back)| (result_io(r), back.unwrap_or_default()))
    }
}

/// Sends from `buf`; returns `buf` and how much was sent.
pub async fn send(fd: RawFd, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
    let ring = match Ring::current() {
        Ok(r) => r,
        Err(e) => return (Err(e), buf),
    };
    let entry = send_entry(fd, &buf);
    let (r, back) = ring.submit(entry, Some(buf)).await;
    (result_io(r), back.unwrap_or_default())
}

/// A send of `bytes` (at most 4 GiB of them: the kernel takes what it
/// can and says how much) on socket `fd`, never raising SIGPIPE. The
/// caller keeps `bytes` alive until the send completes.
fn send_entry(fd: RawFd, bytes: &[u8]) -> squeue::Entry {
    opcode::Send::new(types::Fd(fd), bytes.as_ptr(), bytes.len().min(u32::MAX as usize) as u32)
        .flags(libc::MSG_NOSIGNAL)
        .build()
}

/// Sends all of `buf` on socket `fd`, continuing after short sends (from
/// where the last one stopped: a big reply backlog is never moved); gives
/// the buffer back, emptied, for reuse.
pub async fn send_all(fd: RawFd, buf: Vec<u8>) -> io::Result<Vec<u8>> {
    SendAllOp::start(fd, buf).await
}

/// [`send_all`] as a named future: queued to the kernel when created (no
/// first poll needed, no box), so a connection can keep one in flight
/// while it reads ([`crate::conn::Connection::start_send`]).
pub struct SendAllOp {
    fd: RawFd,
    sent: usize,
    /// When the kernel last took bytes of it.
    progressed_at: Option<std::time::Instant>,
    state: SendState,
}

enum SendState {
    InFlight(OpFuture),
    Done(Option<io::Result<Vec<u8>>>),
}

impl SendAllOp {
    /// When the kernel last took bytes of the buffer (`None`: not yet).
    pub fn progressed_at(&self) -> Option<std::time::Instant> {
        self.progressed_at
    }

    pub fn start(fd: RawFd, buf: Vec<u8>) -> SendAllOp {
        let mut op = SendAllOp {
            fd,
            sent: 0,
            progressed_at: None,
            state: SendState::Done(None),
        };
        op.send_rest(buf);
        op
    }

    /// Queues the send of what is left of `buf`, or completes.
    fn send_rest(&mut self, mut buf: Vec<u8>) {
        if self.sent >= buf.len() {
            buf.clear();
            self.state = SendState::Done(Some(Ok(buf)));
            return;
        }
        let ring = match Ring::current() {
            Ok(r) => r,
            Err(e) => {
                self.state = SendState::Done(Some(Err(e)));
                return;
            }
        };
        let entry = send_entry(self.fd, &buf[self.sent..]);
        self.state = SendState::InFlight(ring.submit(entry, Some(buf)));
    }
}

impl Future for SendAllOp {
    type Output = io::Result<Vec<u8>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let (r, back) = match &mut self.state {
                SendState::InFlight(op) => match Pin::new(op).poll(cx) {
                    Poll::Ready(done) => done,
                    Poll::Pending => return Poll::Pending,
                },
                SendState::Done(r) => return Poll::Ready(r.take().expect("a send polled after it completed")),
            };
            let buf = back.unwrap_or_default();
            match result_io(r) {
                Ok(0) => self.state = SendState::Done(Some(Err(io::ErrorKind::WriteZero.into()))),
                Ok(n) => {
                    self.sent += n;
                    self.progressed_at = Some(std::time::Instant::now());
                    self.send_rest(buf);
                }
                Err(e) => self.state = SendState::Done(Some(Err(e))),
            }
        }
    }
}

/// Connects socket `fd` to the address in `addr` (a `sockaddr_in` or
/// `sockaddr_in6`, `len` bytes, kept alive by the op slot until the kernel
/// is done with it). Used by clients such as `lumadb bench`.
pub async fn connect(fd: RawFd, addr: Vec<u8>, len: u32) -> io::Result<()> {
    let ring = Ring::current()?;
    assert!(len as usize <= addr.len(), "address length within its buffer");
    let entry = opcode::Connect::new(types::Fd(fd), addr.as_ptr() as *const libc::sockaddr, len).build();
    let (r, _) = ring.submit(entry, Some(addr)).await;
    result_io(r).map(drop)
}
