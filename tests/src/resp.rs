//! A minimal blocking RESP2/RESP3 client over `std::net::TcpStream`, for
//! tests that need the exact bytes of a reply: each reply is read as its
//! raw bytes and as a parsed [`Value`].

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A parsed reply. RESP3 types keep their own variants so that a RESP2
/// and a RESP3 answer never compare equal by accident.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Int(i64),
    Bulk(Vec<u8>),
    /// `$-1` or `*-1` (RESP2) or `_` (RESP3).
    Nil,
    Array(Vec<Value>),
    Double(Vec<u8>),
    Bool(bool),
    BigNumber(Vec<u8>),
    Verbatim(Vec<u8>),
    Map(Vec<(Value, Value)>),
    Set(Vec<Value>),
    Push(Vec<Value>),
}

impl Value {
    /// The text of a simple string, bulk string or verbatim string.
    pub fn text(&self) -> Option<String> {
        match self {
            Value::Simple(b) | Value::Bulk(b) | Value::Verbatim(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Value::Error(_))
    }

    /// The same value with the elements of every array, set and map
    /// sorted (for replies whose order is unspecified).
    pub fn sorted(&self) -> Value {
        match self {
            Value::Array(v) => {
                let mut v: Vec<Value> = v.iter().map(Value::sorted).collect();
                v.sort();
                Value::Array(v)
            }
            Value::Set(v) => {
                let mut v: Vec<Value> = v.iter().map(Value::sorted).collect();
                v.sort();
                Value::Set(v)
            }
            Value::Map(v) => {
                let mut v: Vec<(Value, Value)> = v.iter().map(|(k, x)| (k.sorted(), x.sorted())).collect();
                v.sort();
                Value::Map(v)
            }
            other => other.clone(),
        }
    }
}

/// One connection speaking RESP.
pub struct RespConn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl RespConn {
    pub fn connect(port: u16) -> std::io::Result<RespConn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(15)))?;
        stream.set_nodelay(true)?;
        Ok(RespConn {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    /// Connects, panicking with the port on failure.
    pub fn open(port: u16) -> RespConn {
        RespConn::connect(port).unwrap_or_else(|e| panic!("connecting to 127.0.0.1:{port}: {e}"))
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) {
        self.writer.set_read_timeout(t).expect("set_read_timeout");
    }

    /// Writes raw bytes (a malformed frame, an inline command, a pipeline).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("writing to the server");
    }

    /// Writes one command as a multibulk request.
    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        let frame = encode(args);
        self.send_raw(&frame);
    }

    /// Reads one reply: its raw bytes and its parsed value.
    pub fn read_reply(&mut self) -> std::io::Result<(Vec<u8>, Value)> {
        let mut raw = Vec::new();
        let value = read_value(&mut self.reader, &mut raw)?;
        Ok((raw, value))
    }

    /// Sends one command and reads its reply.
    pub fn call_raw<A: AsRef<[u8]>>(&mut self, args: &[A]) -> (Vec<u8>, Value) {
        self.send(args);
        self.read_reply()
            .unwrap_or_else(|e| panic!("reading the reply to {}: {e}", show_args(args)))
    }

    /// Sends one command and answers its parsed reply.
    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Value {
        self.call_raw(args).1
    }

    /// Sends one command given as words split on spaces.
    pub fn cmd(&mut self, line: &str) -> Value {
        let args: Vec<&str> = line.split(' ').filter(|a| !a.is_empty()).collect();
        self.call(&args)
    }

    /// True once the server has closed the connection (reads EOF or a reset).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0) | Err(_))
    }
}

/// Reads from `stream` until `want` bytes in all (counting `got` already
/// read) or its end; panics on a read error, saying how far it got.
/// Returns the bytes read in all.
pub fn read_count(stream: &mut impl Read, mut got: usize, want: usize) -> usize {
    let mut chunk = vec![0u8; 1 << 20];
    while got < want {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) => panic!("after {got} of {want} bytes: {e}"),
        }
    }
    got
}

/// The multibulk encoding of `args`.
pub fn encode<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `args` as text, for messages.
pub fn show_args<A: AsRef<[u8]>>(args: &[A]) -> String {
    args.iter()
        .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn read_line<R: BufRead>(r: &mut R, raw: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    raw.extend_from_slice(&line);
    if !line.ends_with(b"\r\n") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("reply line without CRLF: {:?}", String::from_utf8_lossy(&line)),
        ));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

fn number(bytes: &[u8]) -> std::io::Result<i64> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad length or integer {:?}", String::from_utf8_lossy(bytes)),
            )
        })
}

fn read_value<R: BufRead>(r: &mut R, raw: &mut Vec<u8>) -> std::io::Result<Value> {
    let line = read_line(r, raw)?;
    let (kind, rest) = line
        .split_first()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "empty reply line"))?;
    let rest = rest.to_vec();
    let bulk = |r: &mut R, raw: &mut Vec<u8>, n: i64| -> std::io::Result<Vec<u8>> {
        let mut body = vec![0u8; n as usize + 2];
        r.read_exact(&mut body)?;
        raw.extend_from_slice(&body);
        body.truncate(n as usize);
        Ok(body)
    };
    let many = |r: &mut R, raw: &mut Vec<u8>, n: i64| -> std::io::Result<Vec<Value>> {
        (0..n).map(|_| read_value(r, raw)).collect()
    };
    Ok(match kind {
        b'+' => Value::Simple(rest),
        b'-' => Value::Error(rest),
        b':' => Value::Int(number(&rest)?),
        b'$' => match number(&rest)? {
            -1 => Value::Nil,
            n => Value::Bulk(bulk(r, raw, n)?),
        },
        b'=' => Value::Verbatim(bulk(r, raw, number(&rest)?)?),
        b'!' => Value::Error(bulk(r, raw, number(&rest)?)?),
        b'*' => match number(&rest)? {
            -1 => Value::Nil,
            n => Value::Array(many(r, raw, n)?),
        },
        b'~' => Value::Set(many(r, raw, number(&rest)?)?),
        b'>' => Value::Push(many(r, raw, number(&rest)?)?),
        b'%' => {
            let n = number(&rest)?;
            let mut pairs = Vec::new();
            for _ in 0..n {
                let k = read_value(r, raw)?;
                let v = read_value(r, raw)?;
                pairs.push((k, v));
            }
            Value::Map(pairs)
        }
        b'_' => Value::Nil,
        b',' => Value::Double(rest),
        b'#' => Value::Bool(rest == b"t"),
        b'(' => Value::BigNumber(rest),
        other => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unknown reply type {:?}", *other as char),
            ))
        }
    })
}
