//! The client socket: connect, receive and send through the executor's
//! io_uring network ring (`lumadb_shard::uring`), the same driver the
//! server uses, so a request costs one submission entry rather than
//! glommio's speculative `recv` plus poll.

use std::io;
use std::net::SocketAddr;
use std::os::unix::io::RawFd;

use lumadb_shard::{conn, uring};

/// Bytes asked of the kernel per receive.
pub const RECV_CHUNK_BYTES: usize = 64 * 1024;

/// One TCP connection; closed when dropped.
#[derive(Debug)]
pub struct Sock {
    fd: RawFd,
}

impl Sock {
    pub async fn connect(addr: SocketAddr) -> io::Result<Sock> {
        let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
        // SAFETY: a plain socket call; the descriptor is owned by `Sock`.
        let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let sock = Sock { fd };
        let (bytes, len) = conn::sockaddr_bytes(addr);
        uring::connect(fd, bytes, len).await?;
        conn::set_nodelay(fd);
        Ok(sock)
    }

    /// Sends all of `buf`; gives the buffer back (emptied) for reuse.
    pub async fn send_all(&self, buf: Vec<u8>) -> io::Result<Vec<u8>> {
        uring::send_all(self.fd, buf).await
    }

    /// Receives into `chunk` (its whole length); returns it and the count.
    pub async fn recv(&self, chunk: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        uring::recv(self.fd, chunk).await
    }

    /// Receives what is there onto the end of `buf`; 0 means closed.
    pub async fn recv_into(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let (r, chunk) = self.recv(vec![0; RECV_CHUNK_BYTES]).await;
        let n = r?;
        buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Ends both directions: a receive waiting in the ring completes.
    pub fn shutdown(&self) {
        // SAFETY: shutdown on our own descriptor.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
    }
}

impl Drop for Sock {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor and close it once.
        unsafe {
            libc::shutdown(self.fd, libc::SHUT_RDWR);
            libc::close(self.fd);
        }
    }
}
