//! The Redis protocol driver: GET/SET/DEL, MGET of consecutive keys for
//! scans, GET then SET back to back for read-modify-write. Replies of any
//! RESP2/RESP3 type are parsed (nested arrays skipped), so any server
//! speaking RESP can be the target.

use crate::net::proto::{Outcome, Reply, Request, REPLY_BYTES_MAX};
use crate::net::workload::{key_len, write_key, OpKind};
use crate::BenchError;

/// Nesting of aggregate replies the parser follows at most.
pub const REPLY_DEPTH_MAX: usize = 32;

#[derive(Debug, Clone)]
pub struct RespCodec {
    prefix: Vec<u8>,
    /// Sent with AUTH when a connection opens.
    pub(crate) password: Option<String>,
}

fn header(out: &mut Vec<u8>, tag: u8, n: usize) {
    out.push(tag);
    push_decimal(out, n as u64);
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

impl RespCodec {
    pub fn new(prefix: &[u8], password: Option<&str>) -> RespCodec {
        RespCodec {
            prefix: prefix.to_vec(),
            password: password.map(str::to_string),
        }
    }

    /// The AUTH frame a connection opens with, if a password is set.
    pub(crate) fn auth_frame(&self) -> Option<Vec<u8>> {
        let password = self.password.as_deref()?;
        let mut out = Vec::new();
        header(&mut out, b'*', 2);
        out.extend_from_slice(b"$4\r\nAUTH\r\n");
        header(&mut out, b'$', password.len());
        out.extend_from_slice(password.as_bytes());
        out.extend_from_slice(b"\r\n");
        Some(out)
    }

    fn bulk_key(&self, out: &mut Vec<u8>, key: u64) {
        header(out, b'$', key_len(&self.prefix, key));
        write_key(out, &self.prefix, key);
        out.extend_from_slice(b"\r\n");
    }

    fn command(&self, out: &mut Vec<u8>, name: &[u8], key: u64, value: Option<&[u8]>) {
        header(out, b'*', 2 + value.is_some() as usize);
        header(out, b'$', name.len());
        out.extend_from_slice(name);
        out.extend_from_slice(b"\r\n");
        self.bulk_key(out, key);
        if let Some(v) = value {
            header(out, b'$', v.len());
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
    }

    pub fn encode(&mut self, req: &Request<'_>, out: &mut Vec<u8>) -> u32 {
        match req.op {
            OpKind::Get => self.command(out, b"GET", req.key, None),
            OpKind::Set | OpKind::Insert => self.command(out, b"SET", req.key, Some(req.value)),
            OpKind::Del => self.command(out, b"DEL", req.key, None),
            OpKind::Scan => {
                let n = req.scan_len.max(1) as u64;
                header(out, b'*', 1 + n as usize);
                out.extend_from_slice(b"$4\r\nMGET\r\n");
                for k in req.key..req.key + n {
                    self.bulk_key(out, k);
                }
            }
            OpKind::Rmw => {
                self.command(out, b"GET", req.key, None);
                self.command(out, b"SET", req.key, Some(req.value));
                return 2;
            }
        }
        1
    }
}

fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?.windows(2).position(|w| w == b"\r\n").map(|i| from + i)
}

fn number(buf: &[u8], what: &str) -> Result<i64, BenchError> {
    std::str::from_utf8(buf)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| BenchError::Protocol(format!("RESP: bad {what} {:?}", String::from_utf8_lossy(buf))))
}

/// Skips one reply starting at `pos`; returns its end and, at depth 0, its outcome.
fn parse(buf: &[u8], pos: usize, depth: usize) -> Result<Option<(usize, Outcome)>, BenchError> {
    if depth > REPLY_DEPTH_MAX {
        return Err(BenchError::Protocol("RESP: reply nested too deep".into()));
    }
    let Some(&tag) = buf.get(pos) else { return Ok(None) };
    let Some(eol) = line_end(buf, pos + 1) else {
        if buf.len() - pos > 64 * 1024 {
            return Err(BenchError::Protocol("RESP: header line too long".into()));
        }
        return Ok(None);
    };
    let line = &buf[pos + 1..eol];
    let next = eol + 2;
    match tag {
        b'+' | b':' | b',' | b'#' | b'(' => Ok(Some((next, Outcome::Ok { value: None }))),
        b'_' => Ok(Some((next, Outcome::Miss))),
        b'-' => {
            let word = line.split(|&b| b == b' ').next().unwrap_or(b"ERR");
            Ok(Some((next, Outcome::Error(String::from_utf8_lossy(word).into_owned()))))
        }
        b'$' | b'=' | b'!' => {
            let n = number(line, "bulk length")?;
            if n < 0 {
                return Ok(Some((next, Outcome::Miss)));
            }
            let n = n as usize;
            if n > REPLY_BYTES_MAX {
                return Err(BenchError::Protocol(format!(
                    "RESP: bulk of {n} bytes is over the limit"
                )));
            }
            if buf.len() < next + n + 2 {
                return Ok(None);
            }
            if tag == b'!' {
                let word = buf[next..next + n].split(|&b| b == b' ').next().unwrap_or(b"ERR");
                return Ok(Some((
                    next + n + 2,
                    Outcome::Error(String::from_utf8_lossy(word).into_owned()),
                )));
            }
            Ok(Some((
                next + n + 2,
                Outcome::Ok {
                    value: Some(next..next + n),
                },
            )))
        }
        b'*' | b'%' | b'~' | b'>' | b'|' => {
            let n = number(line, "aggregate length")?;
            if n < 0 {
                return Ok(Some((next, Outcome::Miss)));
            }
            let items = if tag == b'%' || tag == b'|' { n * 2 } else { n };
            let mut at = next;
            for _ in 0..items {
                match parse(buf, at, depth + 1)? {
                    Some((end, _)) => at = end,
                    None => return Ok(None),
                }
            }
            if tag == b'|' {
                // An attribute precedes the real reply.
                return parse(buf, at, depth + 1);
            }
            Ok(Some((at, Outcome::Ok { value: None })))
        }
        other => Err(BenchError::Protocol(format!(
            "RESP: unknown reply type {:?}",
            other as char
        ))),
    }
}

/// Takes one RESP reply off the front of `buf`.
pub fn decode(buf: &[u8]) -> Result<Option<Reply>, BenchError> {
    Ok(parse(buf, 0, 0)?.map(|(len, outcome)| Reply {
        outcome,
        len,
        close: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(buf: &[u8]) -> Option<Reply> {
        decode(buf).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn encodes_commands() {
        let mut c = RespCodec::new(b"key:", None);
        let mut out = Vec::new();
        let req = Request {
            op: OpKind::Set,
            key: 7,
            scan_len: 0,
            value: b"abc",
        };
        assert_eq!(c.encode(&req, &mut out), 1);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000007\r\n$3\r\nabc\r\n");
        out.clear();
        let req = Request {
            op: OpKind::Scan,
            key: 1,
            scan_len: 2,
            value: b"",
        };
        c.encode(&req, &mut out);
        assert_eq!(
            out,
            b"*3\r\n$4\r\nMGET\r\n$16\r\nkey:000000000001\r\n$16\r\nkey:000000000002\r\n"
        );
        out.clear();
        let req = Request {
            op: OpKind::Rmw,
            key: 1,
            scan_len: 0,
            value: b"v",
        };
        assert_eq!(c.encode(&req, &mut out), 2);
    }

    #[test]
    fn decodes_every_reply_type_and_waits_for_more() {
        assert_eq!(
            one(b"+OK\r\n"),
            Some(Reply {
                outcome: Outcome::Ok { value: None },
                len: 5,
                close: false
            })
        );
        assert_eq!(one(b"$-1\r\n").map(|r| r.outcome), Some(Outcome::Miss));
        assert_eq!(one(b"_\r\n").map(|r| r.outcome), Some(Outcome::Miss));
        assert_eq!(
            one(b"$3\r\nabc\r\n+OK\r\n"),
            Some(Reply {
                outcome: Outcome::Ok { value: Some(4..7) },
                len: 9,
                close: false
            })
        );
        assert_eq!(
            one(b"-WRONGTYPE Operation\r\n").map(|r| r.outcome),
            Some(Outcome::Error("WRONGTYPE".into()))
        );
        assert_eq!(one(b"*2\r\n$1\r\na\r\n$-1\r\n").map(|r| r.len), Some(16));
        assert_eq!(one(b"%1\r\n+a\r\n:1\r\n").map(|r| r.len), Some(12));
        assert_eq!(one(b"$3\r\nab"), None);
        assert_eq!(one(b"*2\r\n$1\r\na\r\n"), None);
        assert_eq!(one(b"+O"), None);
        assert!(decode(b"?what\r\n").is_err());
        assert!(decode(b"$x\r\n").is_err());
    }
}
