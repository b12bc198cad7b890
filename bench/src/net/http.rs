//! The HTTP/1.1 driver: requests built from templates (`METHOD /path`
//! with `{key}`, `{value}` and `{count}` placeholders, an optional body
//! template and extra headers), keep-alive connections, pipelining when
//! asked. A 2xx answer is a success, 404 a miss, any other status an
//! error counted by its status.

use crate::net::proto::{Outcome, Reply, Request, REPLY_BYTES_MAX};
use crate::net::resp::push_decimal;
use crate::net::workload::{write_key, OpKind};
use crate::BenchError;

/// Bytes of a response head the driver accepts at most.
pub const HEAD_BYTES_MAX: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(Vec<u8>),
    Key,
    Value,
    Count,
}

/// A text with placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Seg>);

impl Template {
    pub fn parse(text: &str) -> Result<Template, BenchError> {
        let mut segs = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                return Err(BenchError::Invalid(format!("template {text:?}: unclosed '{{'")));
            };
            if open > 0 {
                segs.push(Seg::Lit(rest.as_bytes()[..open].to_vec()));
            }
            segs.push(match &rest[open + 1..open + close] {
                "key" => Seg::Key,
                "value" => Seg::Value,
                "count" => Seg::Count,
                other => {
                    return Err(BenchError::Invalid(format!(
                        "template {text:?}: unknown placeholder {{{other}}}; known: {{key}}, {{value}}, {{count}}"
                    )))
                }
            });
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            segs.push(Seg::Lit(rest.as_bytes().to_vec()));
        }
        Ok(Template(segs))
    }

    fn render(&self, out: &mut Vec<u8>, prefix: &[u8], req: &Request<'_>) {
        for seg in &self.0 {
            match seg {
                Seg::Lit(b) => out.extend_from_slice(b),
                Seg::Key => write_key(out, prefix, req.key),
                Seg::Value => out.extend_from_slice(req.value),
                Seg::Count => push_decimal(out, req.scan_len as u64),
            }
        }
    }
}

/// One request shape: `METHOD path-template`, and a body template.
#[derive(Debug, Clone)]
pub struct Route {
    method: String,
    path: Template,
    body: Option<Template>,
}

impl Route {
    /// Parses `GET /kv/{key}`; `body` is sent with it when given.
    pub fn parse(text: &str, body: Option<&str>) -> Result<Route, BenchError> {
        let (method, path) = text
            .trim()
            .split_once(' ')
            .ok_or_else(|| BenchError::Invalid(format!("HTTP route {text:?}: expected \"METHOD /path\"")))?;
        let path = path.trim();
        if !path.starts_with('/') || path.contains(' ') {
            return Err(BenchError::Invalid(format!(
                "HTTP route {text:?}: the path must start with '/'"
            )));
        }
        Ok(Route {
            method: method.to_ascii_uppercase(),
            path: Template::parse(path)?,
            body: body.map(Template::parse).transpose()?,
        })
    }
}

/// Routes per operation kind, headers and host.
#[derive(Debug, Clone)]
pub struct HttpCodec {
    pub read: Route,
    pub write: Route,
    pub delete: Route,
    pub scan: Route,
    /// `Host: ...\r\n` and extra headers, ready to send.
    headers: Vec<u8>,
    prefix: Vec<u8>,
    body: Vec<u8>,
}

impl HttpCodec {
    pub fn new(
        read: Route,
        write: Route,
        delete: Route,
        scan: Route,
        host: &str,
        extra: &[String],
        prefix: &[u8],
    ) -> Result<HttpCodec, BenchError> {
        let mut headers = format!("Host: {host}\r\n");
        for h in extra {
            if !h.contains(':') || h.contains('\r') || h.contains('\n') {
                return Err(BenchError::Invalid(format!(
                    "--http-header {h:?}: expected \"Name: value\""
                )));
            }
            headers.push_str(h.trim());
            headers.push_str("\r\n");
        }
        Ok(HttpCodec {
            read,
            write,
            delete,
            scan,
            headers: headers.into_bytes(),
            prefix: prefix.to_vec(),
            body: Vec::new(),
        })
    }

    fn one(&mut self, route_of: OpKind, req: &Request<'_>, out: &mut Vec<u8>) {
        let route = match route_of {
            OpKind::Get | OpKind::Rmw => &self.read,
            OpKind::Set | OpKind::Insert => &self.write,
            OpKind::Del => &self.delete,
            OpKind::Scan => &self.scan,
        };
        out.extend_from_slice(route.method.as_bytes());
        out.push(b' ');
        route.path.render(out, &self.prefix, req);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        out.extend_from_slice(&self.headers);
        if let Some(body) = &route.body {
            self.body.clear();
            body.render(&mut self.body, &self.prefix, req);
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, self.body.len() as u64);
            out.extend_from_slice(b"\r\n\r\n");
            out.extend_from_slice(&self.body);
        } else {
            out.extend_from_slice(b"\r\n");
        }
    }

    pub fn encode(&mut self, req: &Request<'_>, out: &mut Vec<u8>) -> u32 {
        if req.op == OpKind::Rmw {
            self.one(OpKind::Get, req, out);
            self.one(OpKind::Set, req, out);
            return 2;
        }
        self.one(req.op, req, out);
        1
    }
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn bad(what: impl Into<String>) -> BenchError {
    BenchError::Protocol(format!("HTTP: {}", what.into()))
}

/// Takes one HTTP/1.1 response off the front of `buf`.
pub fn decode(buf: &[u8]) -> Result<Option<Reply>, BenchError> {
    let Some(head_len) = head_end(buf) else {
        if buf.len() > HEAD_BYTES_MAX {
            return Err(bad("response head too long"));
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_len]).map_err(|_| bad("response head is not text"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    // HTTP/1.1 keeps the connection unless told otherwise; 1.0 closes it
    // unless told to keep it.
    let mut close = status_line.starts_with("HTTP/1.0");
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse()
                    .map_err(|_| bad(format!("bad Content-Length {value:?}")))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") && value.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                close = true;
            } else if v.contains("keep-alive") {
                close = false;
            }
        }
    }
    let (body, total) = if chunked {
        let mut at = head_len;
        loop {
            let Some(eol) = buf[at..].windows(2).position(|w| w == b"\r\n").map(|i| at + i) else {
                return Ok(None);
            };
            let size_text = std::str::from_utf8(&buf[at..eol]).map_err(|_| bad("bad chunk size"))?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad(format!("bad chunk size {size_text:?}")))?;
            if size > REPLY_BYTES_MAX || at - head_len > REPLY_BYTES_MAX {
                return Err(bad("chunked body over the limit"));
            }
            if size == 0 {
                // Trailers end with an empty line.
                let Some(end) = buf[eol..].windows(4).position(|w| w == b"\r\n\r\n") else {
                    return Ok(None);
                };
                // A chunked body is not contiguous: no value to check.
                break (None, eol + end + 4);
            }
            let next = eol + 2 + size + 2;
            if buf.len() < next {
                return Ok(None);
            }
            at = next;
        }
    } else {
        let n = if status == 204 || status == 304 || (100..200).contains(&status) {
            0
        } else {
            length.ok_or_else(|| bad("response without Content-Length or chunked encoding"))?
        };
        if n > REPLY_BYTES_MAX {
            return Err(bad(format!("body of {n} bytes is over the limit")));
        }
        if buf.len() < head_len + n {
            return Ok(None);
        }
        (Some(head_len..head_len + n), head_len + n)
    };
    let outcome = match status {
        200..=299 => Outcome::Ok { value: body },
        404 => Outcome::Miss,
        s => Outcome::Error(format!("http_{s}")),
    };
    Ok(Some(Reply {
        outcome,
        len: total,
        close,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> HttpCodec {
        let r = |t: &str, b: Option<&str>| Route::parse(t, b).unwrap_or_else(|e| panic!("{e}"));
        HttpCodec::new(
            r("GET /kv/{key}", None),
            r("PUT /kv/{key}", Some("{value}")),
            r("DELETE /kv/{key}", None),
            r("GET /kv?from={key}&limit={count}", None),
            "127.0.0.1:8080",
            &["X-Test: 1".to_string()],
            b"k",
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn builds_requests_from_templates() {
        let mut c = codec();
        let mut out = Vec::new();
        c.encode(
            &Request {
                op: OpKind::Set,
                key: 3,
                scan_len: 0,
                value: b"hello",
            },
            &mut out,
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "PUT /kv/k000000000003 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-Test: 1\r\nContent-Length: 5\r\n\r\nhello"
        );
        out.clear();
        c.encode(
            &Request {
                op: OpKind::Scan,
                key: 3,
                scan_len: 9,
                value: b"",
            },
            &mut out,
        );
        assert!(out.starts_with(b"GET /kv?from=k000000000003&limit=9 HTTP/1.1\r\n"));
        assert!(Template::parse("/{nope}").is_err());
        assert!(Route::parse("GET", None).is_err());
    }

    #[test]
    fn parses_responses() {
        let r = decode(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.as_ref().map(|r| r.len), Some(40));
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n".len();
        assert_eq!(
            r.map(|r| r.outcome),
            Some(Outcome::Ok {
                value: Some(head..head + 2)
            })
        );
        let r = decode(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.map(|r| r.outcome), Some(Outcome::Miss));
        let r = decode(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.map(|r| r.outcome), Some(Outcome::Error("http_503".into())));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
        let r = decode(chunked).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.map(|r| r.len), Some(chunked.len()));
        assert_eq!(decode(&chunked[..chunked.len() - 3]).ok(), Some(None));
        assert_eq!(
            decode(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhi").ok(),
            Some(None)
        );
        assert!(decode(b"SMTP 200\r\n\r\n").is_err());
    }
}
