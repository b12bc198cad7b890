//! The network driver seam: listeners, connections, tasks and timers.
//!
//! Protocol front-ends in `lumadb-net` see only these types, never
//! glommio's, so the driver underneath can change (a ring of our own with
//! multishot receive and provided buffers is the planned next step, see
//! `docs/ARCHITECTURE.md`) without touching a codec.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use std::os::unix::io::RawFd;

/// Bytes asked of the kernel per read, at first and whenever reads are
/// small.
pub const CONN_READ_CHUNK_BYTES: usize = 16 * 1024;
/// The most bytes asked per read: a read that fills its chunk doubles the
/// next one up to this (a client streaming large values is read in large
/// pieces, so a pipeline's requests share one batch and one group commit);
/// a read of under an eighth of it shrinks it back.
pub const CONN_READ_CHUNK_BYTES_MAX: usize = 1 << 20;

/// How long [`probe_port`] waits for a port that is still in use.
pub const PROBE_PORT_WAIT: Duration = Duration::from_secs(1);

/// Checks that `addr` is free before the shards bind it.
///
/// Every shard binds the same port with `SO_REUSEPORT`, which would also
/// let a second server silently share a port that is already served; a
/// plain bind first refuses that and names the port.
///
/// A port still in use is tried again for up to [`PROBE_PORT_WAIT`]: the
/// listeners of a server that was just killed outlive its process by a few
/// milliseconds (the kernel tears its io_uring rings down afterwards), and
/// a restart right after `kill -9` must not fail on them.
pub fn probe_port(addr: SocketAddr) -> io::Result<()> {
    let deadline = std::time::Instant::now() + PROBE_PORT_WAIT;
    let mut result = std::net::TcpListener::bind(addr).map(drop);
    while matches!(&result, Err(e) if e.kind() == io::ErrorKind::AddrInUse) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        result = std::net::TcpListener::bind(addr).map(drop);
    }
    result.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot listen on {addr}: {e} (is another server using port {}?)",
                addr.port()
            ),
        )
    })
}

/// A listening socket on this shard (`SO_REUSEPORT`: the kernel spreads
/// new connections over the shards that listen on the same port).
pub struct Listener {
    fd: RawFd,
    addr: SocketAddr,
}

/// Pending connections the kernel queues per listener.
pub const LISTEN_BACKLOG: i32 = 1024;

impl Listener {
    pub fn bind(addr: SocketAddr) -> io::Result<Listener> {
        // The shard's network ring: created now so that a host without
        // io_uring fails at start, naming the cause.
        crate::uring::Ring::current().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot create the network io_uring ring: {e} (LumaDB needs io_uring: \
                     check sysctl kernel.io_uring_disabled = 0 and the container's seccomp profile)"
                ),
            )
        })?;
        let fail = |what: &str| {
            io::Error::other(format!(
                "cannot listen on {addr}: {what}: {}",
                io::Error::last_os_error()
            ))
        };
        let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
        // SAFETY: plain socket syscalls on a descriptor we own; the address
        // structs outlive the calls.
        unsafe {
            let fd = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                return Err(fail("socket"));
            }
            let listener = Listener { fd, addr };
            let one: libc::c_int = 1;
            for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
                if libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    opt,
                    &one as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                ) != 0
                {
                    return Err(fail("setsockopt"));
                }
            }
            let (storage, len) = sockaddr_of(addr);
            if libc::bind(fd, &storage as *const _ as *const libc::sockaddr, len) != 0 {
                return Err(fail("bind"));
            }
            if libc::listen(fd, LISTEN_BACKLOG) != 0 {
                return Err(fail("listen"));
            }
            Ok(listener)
        }
    }

    pub async fn accept(&self) -> io::Result<Connection> {
        let fd = crate::uring::accept(self.fd).await?;
        let conn = Connection {
            fd,
            peer: peer_of(fd).unwrap_or(self.addr),
            rbuf: vec![0; CONN_READ_CHUNK_BYTES],
            wbuf: Vec::new(),
            pending: None,
            sending: None,
            closed: false,
        };
        // Replies are written whole; Nagle would only add latency.
        set_nodelay(fd);
        Ok(conn)
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.fd) };
    }
}

/// Turns Nagle's algorithm off on TCP socket `fd`: requests and replies
/// are written whole, so delaying them only adds latency. Best effort.
pub fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on a descriptor the caller owns, with a c_int option.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// `addr` as the bytes of a `sockaddr_in`/`sockaddr_in6` and their length,
/// for `uring::connect`.
pub fn sockaddr_bytes(addr: SocketAddr) -> (Vec<u8>, u32) {
    let (storage, len) = sockaddr_of(addr);
    // SAFETY: sockaddr_storage is plain data of its own size.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            &storage as *const _ as *const u8,
            std::mem::size_of::<libc::sockaddr_storage>(),
        )
    };
    (bytes.to_vec(), len)
}

fn sockaddr_of(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; zeroed is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn peer_of(fd: RawFd) -> Option<SocketAddr> {
    // SAFETY: getpeername writes at most `len` bytes into the storage.
    unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getpeername(fd, &mut storage as *mut _ as *mut libc::sockaddr, &mut len) != 0 {
            return None;
        }
        match storage.ss_family as i32 {
            libc::AF_INET => {
                let a = &*(&storage as *const _ as *const libc::sockaddr_in);
                Some(SocketAddr::from((
                    std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 => {
                let a = &*(&storage as *const _ as *const libc::sockaddr_in6);
                Some(SocketAddr::from((
                    std::net::Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                )))
            }
            _ => None,
        }
    }
}

/// One client connection, owned by the shard that accepted it.
pub struct Connection {
    fd: RawFd,
    peer: SocketAddr,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    /// A receive that a dropped [`Connection::read`] left in flight; the
    /// next read waits for it, so nothing the peer sent is lost.
    pending: Option<crate::uring::RecvOp>,
    /// A send started by [`Connection::start_send`], giving its buffer back.
    sending: Option<crate::uring::SendAllOp>,
    closed: bool,
}

/// What [`Connection::next_event`] saw first.
#[derive(Debug)]
pub enum ConnEvent {
    /// The send in flight completed; its buffer, emptied, for reuse.
    Sent(Vec<u8>),
    /// This many bytes were read onto the buffer (0: the peer closed).
    Read(usize),
}

impl Connection {
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// A handle that tells, without reading, whether the peer has gone.
    /// Valid while this connection is open.
    pub fn probe(&self) -> PeerProbe {
        PeerProbe { fd: self.fd }
    }

    /// Reads what is available (at least one byte) onto the end of `buf`;
    /// 0 means the peer closed.
    ///
    /// Cancel-safe: if the returned future is dropped before it completes,
    /// the receive stays in flight and the next call picks up its bytes
    /// (a subscribed client waits on its socket and its messages at once).
    pub async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let op = match self.pending.as_mut() {
            Some(op) => op,
            None => {
                let chunk = std::mem::take(&mut self.rbuf);
                match crate::uring::RecvOp::start(self.fd, chunk) {
                    Ok(op) => self.pending.insert(op),
                    Err((e, chunk)) => {
                        self.rbuf = chunk;
                        return Err(e);
                    }
                }
            }
        };
        let (r, chunk) = op.await;
        self.pending = None;
        self.take_received(r, chunk, buf)
    }

    /// Starts sending all of `data` in the background; the connection
    /// may read meanwhile ([`Connection::next_event`]). One send at a time.
    pub fn start_send(&mut self, data: Vec<u8>) {
        assert!(self.sending.is_none(), "a send is already in flight");
        // Queued now, not at the first wait: the session may run a
        // blocking command before it waits on the connection again.
        self.sending = Some(crate::uring::SendAllOp::start(self.fd, data));
    }

    /// Whether a send started by [`Connection::start_send`] is in flight.
    pub fn is_sending(&self) -> bool {
        self.sending.is_some()
    }

    /// When the kernel last took bytes of the send in flight (`None`: no
    /// send, or none taken yet): a client that reads nothing stops this
    /// from moving.
    pub fn send_progressed_at(&self) -> Option<std::time::Instant> {
        self.sending.as_ref().and_then(crate::uring::SendAllOp::progressed_at)
    }

    /// Waits for the send in flight, if any; gives its buffer back.
    pub async fn finish_send(&mut self) -> io::Result<Option<Vec<u8>>> {
        match self.sending.take() {
            Some(op) => op.await.map(Some),
            None => Ok(None),
        }
    }

    /// Waits until the send in flight completes or, if `read`, bytes
    /// arrive (appended to `buf`), whichever comes first. At least one of
    /// the two must be possible. A read left waiting stays in flight for
    /// the next call, as with [`Connection::read`].
    pub async fn next_event(&mut self, buf: &mut BytesMut, read: bool) -> io::Result<ConnEvent> {
        assert!(read || self.sending.is_some(), "waiting for nothing");
        if read && self.pending.is_none() {
            let chunk = std::mem::take(&mut self.rbuf);
            match crate::uring::RecvOp::start(self.fd, chunk) {
                Ok(op) => self.pending = Some(op),
                Err((e, chunk)) => {
                    self.rbuf = chunk;
                    return Err(e);
                }
            }
        }
        let event = std::future::poll_fn(|cx| {
            if let Some(op) = self.sending.as_mut() {
                if let std::task::Poll::Ready(r) = std::pin::Pin::new(op).poll(cx) {
                    self.sending = None;
                    return std::task::Poll::Ready(r.map(ConnEvent::Sent));
                }
            }
            if read {
                if let Some(op) = self.pending.as_mut() {
                    if let std::task::Poll::Ready((r, chunk)) = std::pin::Pin::new(op).poll(cx) {
                        self.pending = None;
                        return std::task::Poll::Ready(Ok(ConnEvent::Read(self.take_received(r, chunk, buf)?)));
                    }
                }
            }
            std::task::Poll::Pending
        })
        .await?;
        Ok(event)
    }

    /// Appends a completed receive's bytes to `buf` and keeps its chunk.
    ///
    /// Sizes the next read's chunk from this one (see
    /// [`CONN_READ_CHUNK_BYTES_MAX`]).
    fn take_received(&mut self, r: io::Result<usize>, mut chunk: Vec<u8>, buf: &mut BytesMut) -> io::Result<usize> {
        if chunk.is_empty() {
            chunk = vec![0; CONN_READ_CHUNK_BYTES];
        }
        let n = match r {
            Ok(n) => n,
            Err(e) => {
                self.rbuf = chunk;
                return Err(e);
            }
        };
        buf.extend_from_slice(&chunk[..n]);
        let size = chunk.len();
        if n == size && size < CONN_READ_CHUNK_BYTES_MAX {
            chunk.resize((size * 2).min(CONN_READ_CHUNK_BYTES_MAX), 0);
        } else if n < size / 8 && size > CONN_READ_CHUNK_BYTES {
            chunk = vec![0; CONN_READ_CHUNK_BYTES];
        }
        self.rbuf = chunk;
        Ok(n)
    }

    /// Writes all of `data` (after any send in flight; nothing to write
    /// only waits for that).
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.finish_send().await?;
        let mut out = std::mem::take(&mut self.wbuf);
        out.clear();
        out.extend_from_slice(data);
        self.wbuf = crate::uring::send_all(self.fd, out).await?;
        Ok(())
    }

    /// Closes the connection.
    pub async fn close(&mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if !self.closed {
            self.closed = true;
            // SAFETY: we own the descriptor; shutdown first so any receive
            // still queued in the ring completes.
            unsafe {
                libc::shutdown(self.fd, libc::SHUT_RDWR);
                libc::close(self.fd);
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Tells whether a connection's peer has closed or reset it, without
/// consuming anything it sent (for clients blocked in a command, whose
/// socket is not being read).
#[derive(Debug, Clone, Copy)]
pub struct PeerProbe {
    fd: RawFd,
}

impl PeerProbe {
    /// Whether the peer has shut down its side, or the socket failed.
    /// Never waits.
    pub fn closed(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one valid pollfd; a zero timeout never blocks.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n > 0 && pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
    }
}

/// Spawns a task on this shard's foreground queue and lets it run alone.
pub fn spawn(f: impl Future<Output = ()> + 'static) {
    glommio::spawn_local(f).detach();
}

/// Waits `d`.
pub async fn sleep(d: Duration) {
    glommio::timer::sleep(d).await;
}

/// Runs `f`, giving up after `d`.
pub async fn timeout<T>(d: Duration, f: impl Future<Output = T>) -> Option<T> {
    glommio::timer::timeout(d, async move { Ok(f.await) }).await.ok()
}

/// Lets other tasks run if this one has used up its time slice.
pub async fn yield_if_needed() {
    glommio::yield_if_needed().await;
}
