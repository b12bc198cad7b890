//! Server-side request decoder: RESP multibulk frames and inline commands,
//! with Redis's exact error texts and limits enforced before buffering.
//!
//! Two entry points share one parser:
//!
//! - [`decode`] is stateless: on a partial frame it leaves the buffer as it
//!   is and the next call re-parses the bulk headers already received (never
//!   their payloads, which it skips by length).
//! - [`Decoder`] remembers a partial multibulk frame: it splits each
//!   complete argument off the buffer as it arrives, so a frame with a
//!   million arguments costs O(frame) over all calls, not O(args²).
//!
//! Redis quirks kept on purpose: the byte after a header's `\r` and the two
//! bytes after a bulk payload are skipped unchecked; `*0` and `*-1` (and any
//! count ≤ 0) and empty inline lines are not commands and are skipped.

use bytes::{Buf, Bytes, BytesMut};

use super::num::parse_i64;

/// Redis's `PROTO_INLINE_MAX_SIZE`: longest inline request, and longest
/// unterminated multibulk or bulk header.
pub const INLINE_BYTES_MAX_DEFAULT: usize = 64 * 1024;
/// Redis's default `proto-max-bulk-len`.
pub const BULK_BYTES_MAX_DEFAULT: usize = 512 * 1024 * 1024;
/// Redis 7 accepts any multibulk count up to `INT_MAX`.
pub const MULTIBULK_COUNT_MAX_DEFAULT: usize = i32::MAX as usize;
/// Redis's default `client-query-buffer-limit`.
pub const QUERY_BUFFER_BYTES_MAX_DEFAULT: usize = 1024 * 1024 * 1024;
/// Arguments preallocated for a multibulk frame, whatever its header says.
const ARGS_PREALLOC_COUNT_MAX: usize = 1024;

/// Protocol limits of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk argument (`proto-max-bulk-len`).
    pub bulk_bytes_max: usize,
    /// Largest multibulk argument count.
    pub multibulk_count_max: usize,
    /// Longest inline request or unterminated header (`PROTO_INLINE_MAX_SIZE`).
    pub inline_bytes_max: usize,
    /// Most bytes a client may have buffered (`client-query-buffer-limit`).
    pub query_buffer_bytes_max: usize,
    /// The client has not logged in yet (`server.requirepass`): as Redis,
    /// refuse a frame of more than [`UNAUTHENTICATED_ARGS_MAX`] arguments
    /// or a bulk over [`UNAUTHENTICATED_BULK_BYTES_MAX`] bytes, so that a
    /// client without the password cannot make the server buffer much.
    pub unauthenticated: bool,
}

/// Most arguments in a frame before the client has logged in (Redis's).
pub const UNAUTHENTICATED_ARGS_MAX: i64 = 10;
/// Largest bulk before the client has logged in (Redis's).
pub const UNAUTHENTICATED_BULK_BYTES_MAX: i64 = 16384;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            bulk_bytes_max: BULK_BYTES_MAX_DEFAULT,
            multibulk_count_max: MULTIBULK_COUNT_MAX_DEFAULT,
            unauthenticated: false,
            inline_bytes_max: INLINE_BYTES_MAX_DEFAULT,
            query_buffer_bytes_max: QUERY_BUFFER_BYTES_MAX_DEFAULT,
        }
    }
}

/// One command: its name and arguments, never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `args[0]` is the command name. Multibulk arguments are zero-copy
    /// slices of the input buffer.
    pub args: Vec<Bytes>,
}

/// A request the decoder rejects. `Display` is Redis's text without the
/// `-ERR ` prefix; after any of these Redis replies (except to
/// [`ProtocolError::QueryBufferExceeded`]) and closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    #[error("Protocol error: expected '$', got '{}'", char::from(*.0))]
    ExpectedDollar(u8),
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    /// The client buffered more than `query_buffer_bytes_max`; Redis logs
    /// and closes the connection without a reply.
    #[error("query buffer of {buffered_bytes} bytes exceeds the limit of {limit_bytes} bytes")]
    QueryBufferExceeded { buffered_bytes: usize, limit_bytes: usize },
}

impl ProtocolError {
    /// The error reply Redis sends before closing, if any.
    pub fn to_reply(&self) -> Option<super::Reply> {
        match self {
            ProtocolError::QueryBufferExceeded { .. } => None,
            other => Some(super::Reply::Error(Bytes::from(format!("ERR {other}")))),
        }
    }
}

/// Decodes the next command in `buf`, consuming it. `Ok(None)` means more
/// bytes are needed and leaves `buf` untouched (apart from skipped empty
/// commands). Stateless; see [`Decoder`] for large frames.
pub fn decode(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Request>, ProtocolError> {
    let mut partial = None;
    let result = decode_inner(buf, limits, &mut partial, false);
    assert!(partial.is_none(), "stateless decode never keeps a partial frame");
    result
}

/// A request decoder that remembers a partial multibulk frame between calls.
#[derive(Debug, Default)]
pub struct Decoder {
    partial: Option<Partial>,
}

#[derive(Debug)]
struct Partial {
    /// Arguments still to read.
    remaining_count: usize,
    /// Arguments read so far, split off the buffer.
    args: Vec<Bytes>,
    /// Sum of `args` lengths, counted against the query buffer limit.
    args_bytes: usize,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder::default()
    }

    /// As [`decode`], but arguments of a partial frame are split off `buf`
    /// and kept here until the frame completes.
    pub fn decode(&mut self, buf: &mut BytesMut, limits: &Limits) -> Result<Option<Request>, ProtocolError> {
        decode_inner(buf, limits, &mut self.partial, true)
    }

    /// Bytes of a partial frame held by the decoder (not in the buffer).
    pub fn held_bytes(&self) -> usize {
        self.partial.as_ref().map_or(0, |p| p.args_bytes)
    }
}

fn decode_inner(
    buf: &mut BytesMut,
    limits: &Limits,
    partial: &mut Option<Partial>,
    keep_partial: bool,
) -> Result<Option<Request>, ProtocolError> {
    loop {
        if let Some(mut p) = partial.take() {
            let mut pos = 0;
            let mut ranges = Vec::new();
            let done = parse_bulks(buf, limits, &mut pos, &mut p.remaining_count, &mut ranges)?;
            take_ranges(buf, pos, &ranges, &mut p.args, &mut p.args_bytes);
            if done {
                assert_eq!(p.remaining_count, 0);
                return Ok(Some(Request { args: p.args }));
            }
            check_query_buffer(buf.len() + p.args_bytes, limits)?;
            *partial = Some(p);
            return Ok(None);
        }
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        if first != b'*' {
            match decode_inline(buf, limits)? {
                Inline::Command(args) => return Ok(Some(Request { args })),
                Inline::Empty => continue,
                Inline::Incomplete => {
                    check_query_buffer(buf.len(), limits)?;
                    return Ok(None);
                }
            }
        }
        let Some((line_end, next)) = find_line(buf, 0, limits, ProtocolError::TooBigMultibulkCount)? else {
            check_query_buffer(buf.len(), limits)?;
            return Ok(None);
        };
        let count = match parse_i64(&buf[1..line_end]) {
            Some(n) if n <= i64::from(i32::MAX) && (n <= 0 || n as u64 <= limits.multibulk_count_max as u64) => n,
            _ => return Err(ProtocolError::InvalidMultibulkLength),
        };
        if limits.unauthenticated && count > UNAUTHENTICATED_ARGS_MAX {
            return Err(ProtocolError::UnauthenticatedMultibulkLength);
        }
        if count <= 0 {
            buf.advance(next);
            continue;
        }
        let mut remaining_count = count as usize;
        let mut pos = next;
        let mut ranges = Vec::with_capacity(remaining_count.min(ARGS_PREALLOC_COUNT_MAX));
        let done = parse_bulks(buf, limits, &mut pos, &mut remaining_count, &mut ranges)?;
        if done {
            let mut args = Vec::with_capacity(ranges.len());
            let mut args_bytes = 0;
            take_ranges(buf, pos, &ranges, &mut args, &mut args_bytes);
            assert_eq!(args.len(), count as usize);
            return Ok(Some(Request { args }));
        }
        if keep_partial {
            let mut p = Partial {
                remaining_count,
                args: Vec::with_capacity(ranges.len()),
                args_bytes: 0,
            };
            take_ranges(buf, pos, &ranges, &mut p.args, &mut p.args_bytes);
            check_query_buffer(buf.len() + p.args_bytes, limits)?;
            *partial = Some(p);
        } else {
            check_query_buffer(buf.len(), limits)?;
        }
        return Ok(None);
    }
}

fn check_query_buffer(buffered_bytes: usize, limits: &Limits) -> Result<(), ProtocolError> {
    if buffered_bytes > limits.query_buffer_bytes_max {
        return Err(ProtocolError::QueryBufferExceeded {
            buffered_bytes,
            limit_bytes: limits.query_buffer_bytes_max,
        });
    }
    Ok(())
}

/// Splits `buf[..end]` off and appends the slices `ranges` of it to `args`.
fn take_ranges(buf: &mut BytesMut, end: usize, ranges: &[(usize, usize)], args: &mut Vec<Bytes>, bytes: &mut usize) {
    let frame = buf.split_to(end).freeze();
    for &(start, stop) in ranges {
        assert!(start <= stop && stop <= end);
        args.push(frame.slice(start..stop));
        *bytes += stop - start;
    }
}

/// Finds the header line starting at `start`: the index of its `\r` and of
/// the byte after the `\r\n` pair. `None` if incomplete; `too_big` if no `\r`
/// came within `inline_bytes_max` bytes.
fn find_line(
    buf: &[u8],
    start: usize,
    limits: &Limits,
    too_big: ProtocolError,
) -> Result<Option<(usize, usize)>, ProtocolError> {
    let rest = &buf[start..];
    let window = &rest[..rest.len().min(limits.inline_bytes_max.saturating_add(1))];
    match memchr::memchr(b'\r', window) {
        // Redis only requires one more byte after '\r' and skips it unchecked.
        Some(i) if i + 2 <= rest.len() => Ok(Some((start + i, start + i + 2))),
        Some(_) => Ok(None),
        None if rest.len() > limits.inline_bytes_max => Err(too_big),
        None => Ok(None),
    }
}

/// Parses `$len\r\npayload\r\n` arguments from `buf[*pos..]` until
/// `*remaining_count` is zero (returns `true`) or the input runs out
/// (`false`), advancing `pos` past complete arguments only.
fn parse_bulks(
    buf: &[u8],
    limits: &Limits,
    pos: &mut usize,
    remaining_count: &mut usize,
    ranges: &mut Vec<(usize, usize)>,
) -> Result<bool, ProtocolError> {
    while *remaining_count > 0 {
        let Some((line_end, next)) = find_line(buf, *pos, limits, ProtocolError::TooBigBulkCount)? else {
            return Ok(false);
        };
        if buf[*pos] != b'$' {
            return Err(ProtocolError::ExpectedDollar(buf[*pos]));
        }
        let len = match parse_i64(&buf[*pos + 1..line_end]) {
            Some(n) if n >= 0 && n as u64 <= limits.bulk_bytes_max as u64 => n as usize,
            _ => return Err(ProtocolError::InvalidBulkLength),
        };
        if limits.unauthenticated && len as i64 > UNAUTHENTICATED_BULK_BYTES_MAX {
            return Err(ProtocolError::UnauthenticatedBulkLength);
        }
        if buf.len() - next < len + 2 {
            return Ok(false);
        }
        ranges.push((next, next + len));
        *pos = next + len + 2;
        *remaining_count -= 1;
    }
    Ok(true)
}

enum Inline {
    Command(Vec<Bytes>),
    Empty,
    Incomplete,
}

fn decode_inline(buf: &mut BytesMut, limits: &Limits) -> Result<Inline, ProtocolError> {
    let Some(newline) = memchr::memchr(b'\n', buf) else {
        if buf.len() > limits.inline_bytes_max {
            return Err(ProtocolError::TooBigInline);
        }
        return Ok(Inline::Incomplete);
    };
    let line_end = if newline > 0 && buf[newline - 1] == b'\r' {
        newline - 1
    } else {
        newline
    };
    let args = split_args(&buf[..line_end]).ok_or(ProtocolError::UnbalancedQuotes)?;
    buf.advance(newline + 1);
    if args.is_empty() {
        return Ok(Inline::Empty);
    }
    Ok(Inline::Command(args.into_iter().map(Bytes::from).collect()))
}

/// C `isspace` in the C locale.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

fn hex_value(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Redis's `sdssplitargs`: splits an inline line into arguments with its
/// quoting rules. `None` on unbalanced quotes or a closing quote followed by
/// something other than a space. A NUL byte ends the line, as in C.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while at(p) != 0 && is_space(at(p)) {
            p += 1;
        }
        if at(p) == 0 {
            return Some(args);
        }
        let (mut in_dq, mut in_sq, mut done) = (false, false, false);
        let mut current = Vec::new();
        while !done {
            let c = at(p);
            if in_dq {
                if c == b'\\' && at(p + 1) == b'x' {
                    if let (Some(hi), Some(lo)) = (hex_value(at(p + 2)), hex_value(at(p + 3))) {
                        current.push(hi * 16 + lo);
                        p += 3;
                        p += 1;
                        continue;
                    }
                }
                if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    current.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    current.push(c);
                }
            } else if in_sq {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    current.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    current.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    other => current.push(other),
                }
            }
            if at(p) != 0 {
                p += 1;
            }
        }
        args.push(current);
    }
}
