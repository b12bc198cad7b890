//! The protocol seam: every driver is a sans-IO codec that appends
//! requests to a send buffer and takes replies off the front of a receive
//! buffer. The runner owns the sockets.

use std::ops::Range;

use crate::net::http::HttpCodec;
use crate::net::postgres::PgCodec;
use crate::net::resp::RespCodec;
use crate::net::workload::OpKind;
use crate::BenchError;

/// Bytes of one reply the drivers buffer at most.
pub const REPLY_BYTES_MAX: usize = 256 << 20;

/// One operation to send.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub op: OpKind,
    pub key: u64,
    /// Keys a scan covers.
    pub scan_len: u32,
    /// The value a write sends (empty for reads).
    pub value: &'a [u8],
}

/// How one reply went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An answer; `value` is where a read's value lies in the buffer.
    Ok { value: Option<Range<usize>> },
    /// A read of a key the server does not have.
    Miss,
    /// The server answered with an error of this kind (RESP's first word,
    /// an HTTP status, a SQLSTATE).
    Error(String),
}

/// One reply taken off a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub outcome: Outcome,
    /// Bytes it took.
    pub len: usize,
    /// The server closes the connection after this reply (HTTP
    /// `Connection: close`, or HTTP/1.0 without keep-alive).
    pub close: bool,
}

/// The driver of one protocol.
#[derive(Debug, Clone)]
pub enum Codec {
    Resp(RespCodec),
    Http(Box<HttpCodec>),
    Postgres(PgCodec),
}

impl Codec {
    /// Appends `req` to `out`; returns how many replies it will get.
    pub fn encode(&mut self, req: &Request<'_>, out: &mut Vec<u8>) -> u32 {
        match self {
            Codec::Resp(c) => c.encode(req, out),
            Codec::Http(c) => c.encode(req, out),
            Codec::Postgres(c) => c.encode(req, out),
        }
    }

    /// Takes one reply off the front of `buf`, if it is complete.
    pub fn decode(&self, buf: &[u8]) -> Result<Option<Reply>, BenchError> {
        match self {
            Codec::Resp(_) => crate::net::resp::decode(buf),
            Codec::Http(_) => crate::net::http::decode(buf),
            Codec::Postgres(_) => crate::net::postgres::decode(buf),
        }
    }
}
