//! Reply encoder for RESP2 and RESP3 (chosen per connection by `HELLO`).
//!
//! RESP3-only types fall back as Redis 7 does: null → `$-1`, null array →
//! `*-1`, map → array of 2n, set and push → array, double → bulk string
//! (`%.17g`), boolean → integer 1/0, verbatim and big number → bulk string.
//! The hot path (`+OK`, integers, bulk strings) does not allocate beyond
//! growing `out`.

use bytes::Bytes;

use super::num::format_double;

/// Writes replies for one connection's protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Encoder {
    pub resp3: bool,
}

/// Simple strings and errors cannot carry CR or LF; Redis replaces them
/// with spaces.
fn push_line(out: &mut Vec<u8>, s: &[u8]) {
    if memchr::memchr2(b'\r', b'\n', s).is_none() {
        out.extend_from_slice(s);
    } else {
        out.extend(s.iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }));
    }
    out.extend_from_slice(b"\r\n");
}

fn push_header(out: &mut Vec<u8>, kind: u8, n: i64) {
    out.push(kind);
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn len_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Encoder {
    pub fn new(resp3: bool) -> Self {
        Encoder { resp3 }
    }

    /// `+OK\r\n`.
    pub fn ok(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"+OK\r\n");
    }

    /// `+<s>\r\n`.
    pub fn simple(&self, out: &mut Vec<u8>, s: &[u8]) {
        out.push(b'+');
        push_line(out, s);
    }

    /// `-<line>\r\n`; `line` carries its code (`ERR ...`, `WRONGTYPE ...`).
    pub fn error(&self, out: &mut Vec<u8>, line: &[u8]) {
        out.push(b'-');
        push_line(out, line);
    }

    /// `:<n>\r\n`.
    pub fn int(&self, out: &mut Vec<u8>, n: i64) {
        push_header(out, b':', n);
    }

    /// `$<len>\r\n<data>\r\n`.
    pub fn bulk(&self, out: &mut Vec<u8>, data: &[u8]) {
        push_header(out, b'$', len_i64(data.len()));
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }

    /// Missing value: RESP2 `$-1`, RESP3 `_`.
    pub fn null(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if self.resp3 { b"_\r\n" } else { b"$-1\r\n" });
    }

    /// Missing aggregate: RESP2 `*-1`, RESP3 `_`.
    pub fn null_array(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if self.resp3 { b"_\r\n" } else { b"*-1\r\n" });
    }

    /// `*<n>\r\n`, followed by `n` replies.
    pub fn array_header(&self, out: &mut Vec<u8>, n: usize) {
        push_header(out, b'*', len_i64(n));
    }

    /// RESP3 `%<n>`, RESP2 `*<2n>`, followed by `n` key/value pairs.
    pub fn map_header(&self, out: &mut Vec<u8>, n: usize) {
        if self.resp3 {
            push_header(out, b'%', len_i64(n));
        } else {
            push_header(out, b'*', len_i64(n.saturating_mul(2)));
        }
    }

    /// RESP3 `~<n>`, RESP2 `*<n>`.
    pub fn set_header(&self, out: &mut Vec<u8>, n: usize) {
        push_header(out, if self.resp3 { b'~' } else { b'*' }, len_i64(n));
    }

    /// RESP3 `><n>`, RESP2 `*<n>`.
    pub fn push_header(&self, out: &mut Vec<u8>, n: usize) {
        push_header(out, if self.resp3 { b'>' } else { b'*' }, len_i64(n));
    }

    /// RESP3 `,<%.17g>`, RESP2 the same text as a bulk string.
    pub fn double(&self, out: &mut Vec<u8>, v: f64) {
        let mut text = Vec::with_capacity(24);
        format_double(v, &mut text);
        if self.resp3 {
            out.push(b',');
            out.extend_from_slice(&text);
            out.extend_from_slice(b"\r\n");
        } else {
            self.bulk(out, &text);
        }
    }

    /// RESP3 `#t`/`#f`, RESP2 `:1`/`:0`.
    pub fn boolean(&self, out: &mut Vec<u8>, b: bool) {
        out.extend_from_slice(match (self.resp3, b) {
            (true, true) => b"#t\r\n",
            (true, false) => b"#f\r\n",
            (false, true) => b":1\r\n",
            (false, false) => b":0\r\n",
        });
    }

    /// RESP3 `=<len+4>\r\n<fmt>:<text>`, RESP2 a bulk string of `text`.
    /// `format` is three bytes such as `txt` or `mkd`.
    pub fn verbatim(&self, out: &mut Vec<u8>, format: &[u8; 3], text: &[u8]) {
        if self.resp3 {
            push_header(out, b'=', len_i64(text.len().saturating_add(4)));
            out.extend_from_slice(format);
            out.push(b':');
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
        } else {
            self.bulk(out, text);
        }
    }

    /// RESP3 `(<digits>`, RESP2 a bulk string.
    pub fn big_number(&self, out: &mut Vec<u8>, digits: &[u8]) {
        if self.resp3 {
            out.push(b'(');
            push_line(out, digits);
        } else {
            self.bulk(out, digits);
        }
    }
}

/// An owned reply tree, `Send` so it can cross shards.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(Bytes),
    /// The whole error line without `-`, e.g. `ERR syntax error`.
    Error(Bytes),
    Int(i64),
    Bulk(Bytes),
    Null,
    NullArray,
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    Double(f64),
    Bool(bool),
    Verbatim {
        format: [u8; 3],
        text: Bytes,
    },
    BigNumber(Bytes),
    Push(Vec<Reply>),
    /// Pairs given flat (`k1, v1, k2, v2, ...`): a flat array in RESP2, an
    /// array of two-element arrays in RESP3 (ZRANGE WITHSCORES, ZPOPMIN
    /// with a count, HRANDFIELD WITHVALUES).
    Pairs(Vec<Reply>),
    /// Several replies in a row: a command that answers more than once
    /// (SUBSCRIBE with several channels confirms each).
    Frames(Vec<Reply>),
}

impl Reply {
    /// `self` as RESP2 shows it: [`Reply::Pairs`] flattened, recursively.
    pub fn flattened(self) -> Reply {
        match self {
            Reply::Pairs(items) | Reply::Array(items) => {
                Reply::Array(items.into_iter().map(Reply::flattened).collect())
            }
            other => other,
        }
    }

    /// `+OK`.
    pub fn ok() -> Reply {
        Reply::Simple(Bytes::from_static(b"OK"))
    }

    /// An error reply from a full error line (`"ERR ..."`, `"WRONGTYPE ..."`).
    pub fn error(line: impl Into<Bytes>) -> Reply {
        Reply::Error(line.into())
    }

    /// A bulk string.
    pub fn bulk(data: impl Into<Bytes>) -> Reply {
        Reply::Bulk(data.into())
    }

    /// Appends the encoding of `self` to `out`.
    pub fn encode(&self, resp3: bool, out: &mut Vec<u8>) {
        self.encode_with(&Encoder { resp3 }, out);
    }

    /// Appends the encoding of `self` to `out`.
    pub fn encode_with(&self, enc: &Encoder, out: &mut Vec<u8>) {
        match self {
            Reply::Simple(s) => enc.simple(out, s),
            Reply::Error(s) => enc.error(out, s),
            Reply::Int(n) => enc.int(out, *n),
            Reply::Bulk(b) => enc.bulk(out, b),
            Reply::Null => enc.null(out),
            Reply::NullArray => enc.null_array(out),
            Reply::Array(items) => {
                enc.array_header(out, items.len());
                items.iter().for_each(|r| r.encode_with(enc, out));
            }
            Reply::Map(pairs) => {
                enc.map_header(out, pairs.len());
                for (k, v) in pairs {
                    k.encode_with(enc, out);
                    v.encode_with(enc, out);
                }
            }
            Reply::Set(items) => {
                enc.set_header(out, items.len());
                items.iter().for_each(|r| r.encode_with(enc, out));
            }
            Reply::Double(v) => enc.double(out, *v),
            Reply::Bool(b) => enc.boolean(out, *b),
            Reply::Verbatim { format, text } => enc.verbatim(out, format, text),
            Reply::BigNumber(d) => enc.big_number(out, d),
            Reply::Push(items) => {
                enc.push_header(out, items.len());
                items.iter().for_each(|r| r.encode_with(enc, out));
            }
            Reply::Frames(items) => items.iter().for_each(|r| r.encode_with(enc, out)),
            Reply::Pairs(items) => {
                assert!(items.len() % 2 == 0, "pairs reply with an odd item count");
                if enc.resp3 {
                    enc.array_header(out, items.len() / 2);
                    for pair in items.chunks(2) {
                        enc.array_header(out, 2);
                        pair.iter().for_each(|r| r.encode_with(enc, out));
                    }
                } else {
                    enc.array_header(out, items.len());
                    items.iter().for_each(|r| r.encode_with(enc, out));
                }
            }
        }
    }

    /// `encode` into a fresh buffer.
    pub fn to_bytes(&self, resp3: bool) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(resp3, &mut out);
        out
    }
}
