//! HTTP/1.1 server codec, sans-IO.
//!
//! [`decode`] takes one complete request off the front of a connection's read
//! buffer (head and `Content-Length` body), leaving pipelined bytes behind;
//! [`HttpResponse::encode`] appends one response to a write buffer. The driver
//! that owns the socket reads into a `BytesMut`, calls `decode` until it
//! answers `Ok(None)` (need more bytes), and writes what `encode` produced.
//!
//! Limits ([`HttpLimits`]) bound what one request may make the server buffer:
//! the request head (431 past it), the number of header lines (431) and the
//! body (413, checked against `Content-Length` before any body byte is read).
//! Malformed input is a 400. Chunked request bodies are not accepted: the
//! request is answered 411 (send a `Content-Length`). After any
//! [`HttpError`] the connection's framing is lost: the driver writes
//! [`HttpError::to_response`] and closes the connection.
//!
//! Keep-alive follows RFC 9112: HTTP/1.1 keeps the connection open unless the
//! client sends `Connection: close`; HTTP/1.0 closes it unless the client sends
//! `Connection: keep-alive`. [`HttpResponse::for_request`] carries that
//! decision onto the response. `Expect: 100-continue` is not answered with an
//! interim response; clients send the body after their own timeout (curl
//! waits one second, and only asks for bodies over 1 KiB).

use bytes::{Bytes, BytesMut};
use thiserror::Error;

/// Limits on one request, in bytes or counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Request line plus header lines, including the blank line that ends them.
    pub header_bytes_max: usize,
    /// Header lines in one request.
    pub header_count_max: usize,
    /// Request body (`Content-Length`).
    pub body_bytes_max: usize,
}

impl HttpLimits {
    pub const HEADER_BYTES_MAX_DEFAULT: usize = 16 * 1024;
    pub const HEADER_COUNT_MAX_DEFAULT: usize = 64;
    pub const BODY_BYTES_MAX_DEFAULT: usize = 1024 * 1024;
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_bytes_max: Self::HEADER_BYTES_MAX_DEFAULT,
            header_count_max: Self::HEADER_COUNT_MAX_DEFAULT,
            body_bytes_max: Self::BODY_BYTES_MAX_DEFAULT,
        }
    }
}

/// Why a request could not be decoded. Each maps to one status code.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HttpError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("request head exceeds {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("request has more than {limit} header lines")]
    TooManyHeaders { limit: usize },
    #[error("request body of {length} bytes exceeds {limit} bytes")]
    BodyTooLarge { length: u64, limit: usize },
    #[error("chunked request bodies are not accepted; send a Content-Length")]
    LengthRequired,
    #[error("HTTP version 1.{0} is not supported")]
    VersionNotSupported(u8),
}

impl HttpError {
    /// The status code this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Malformed(_) => 400,
            HttpError::HeadersTooLarge { .. } | HttpError::TooManyHeaders { .. } => 431,
            HttpError::BodyTooLarge { .. } => 413,
            HttpError::LengthRequired => 411,
            HttpError::VersionNotSupported(_) => 505,
        }
    }

    /// The response to send before closing the connection: a JSON error body
    /// and `Connection: close`.
    pub fn to_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::error(self.status(), &self.to_string());
        resp.close = true;
        resp
    }
}

/// A request method. Methods the server does not know are kept by name so
/// that routing can answer 405 rather than 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other(String),
}

impl Method {
    fn parse(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other(s) => s,
        }
    }
}

/// One decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Method,
    /// The percent-decoded path, always starting with `/`.
    pub path: String,
    /// Query string pairs in order, percent-decoded (`+` is a space); a
    /// parameter without `=` has an empty value.
    pub query: Vec<(String, String)>,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Header lines in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    pub body: Bytes,
}

impl HttpRequest {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter with this name.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Takes one complete request off the front of `buf`.
///
/// `Ok(None)` means more bytes are needed; `buf` is left untouched. On
/// `Ok(Some(_))` exactly the request's bytes are removed, so pipelined
/// requests stay in `buf` for the next call. The head is parsed again on
/// each call until the body is complete; the head is bounded by
/// `limits.header_bytes_max`, so this costs little.
pub fn decode(buf: &mut BytesMut, limits: &HttpLimits) -> Result<Option<HttpRequest>, HttpError> {
    let mut header_storage = vec![httparse::EMPTY_HEADER; limits.header_count_max];
    let mut req = httparse::Request::new(&mut header_storage);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= limits.header_bytes_max {
                return Err(HttpError::HeadersTooLarge {
                    limit: limits.header_bytes_max,
                });
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::TooManyHeaders {
                limit: limits.header_count_max,
            })
        }
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    if head_len > limits.header_bytes_max {
        return Err(HttpError::HeadersTooLarge {
            limit: limits.header_bytes_max,
        });
    }
    // httparse fills these three on Complete; check rather than trust.
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HttpError::Malformed("incomplete request line".into()));
    };
    if version != 1 && version != 0 {
        return Err(HttpError::VersionNotSupported(version));
    }

    let mut headers = Vec::with_capacity(req.headers.len());
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = std::str::from_utf8(h.value)
            .map_err(|_| HttpError::Malformed(format!("header {name} is not UTF-8")))?
            .trim()
            .to_string();
        match name.as_str() {
            "content-length" => {
                let n: u64 = value
                    .parse()
                    .map_err(|_| HttpError::Malformed(format!("invalid Content-Length {value:?}")))?;
                if content_length.is_some_and(|prev| prev != n) {
                    return Err(HttpError::Malformed("conflicting Content-Length headers".into()));
                }
                content_length = Some(n);
            }
            "transfer-encoding" => {
                if value.split(',').any(|t| t.trim().eq_ignore_ascii_case("chunked")) {
                    chunked = true;
                } else {
                    return Err(HttpError::Malformed(format!("unsupported Transfer-Encoding {value:?}")));
                }
            }
            "connection" => {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        connection_close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        connection_keep_alive = true;
                    }
                }
            }
            _ => {}
        }
        headers.push((name, value));
    }
    if chunked {
        if content_length.is_some() {
            return Err(HttpError::Malformed(
                "both Transfer-Encoding and Content-Length are present".into(),
            ));
        }
        return Err(HttpError::LengthRequired);
    }
    let body_len = content_length.unwrap_or(0);
    if body_len > limits.body_bytes_max as u64 {
        return Err(HttpError::BodyTooLarge {
            length: body_len,
            limit: limits.body_bytes_max,
        });
    }
    // Fits in usize: bounded by body_bytes_max above.
    let body_len = body_len as usize;
    let total = head_len + body_len;
    if buf.len() < total {
        return Ok(None);
    }

    let (path, query) = split_target(target)?;
    let method = Method::parse(method);
    let keep_alive = if version == 1 {
        !connection_close
    } else {
        connection_keep_alive && !connection_close
    };
    let mut frame = buf.split_to(total);
    let body = frame.split_off(head_len).freeze();
    Ok(Some(HttpRequest {
        method,
        path,
        query,
        version,
        headers,
        keep_alive,
        body,
    }))
}

/// Splits a request target into its decoded path and query pairs. Accepts
/// origin form (`/a?b=c`) and absolute form (`http://host/a?b=c`).
fn split_target(target: &str) -> Result<(String, Vec<(String, String)>), HttpError> {
    let mut rest = target;
    for scheme in ["http://", "https://"] {
        if let Some(after) = rest.strip_prefix(scheme) {
            rest = after.find('/').map_or("/", |i| &after[i..]);
        }
    }
    if !rest.starts_with('/') {
        return Err(HttpError::Malformed(format!("request target {target:?} is not a path")));
    }
    let (raw_path, raw_query) = match rest.split_once('?') {
        Some((p, q)) => (p, q),
        None => (rest, ""),
    };
    let path = percent_decode(raw_path, false)?;
    let mut query = Vec::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query.push((percent_decode(k, true)?, percent_decode(v, true)?));
    }
    Ok((path, query))
}

fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, HttpError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| HttpError::Malformed(format!("invalid percent-encoding in {s:?}")))?;
                out.push(hex);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| HttpError::Malformed(format!("{s:?} does not decode to UTF-8")))
}

pub const CONTENT_TYPE_JSON: &str = "application/json";
pub const CONTENT_TYPE_TEXT: &str = "text/plain; charset=utf-8";

/// One response. `encode` adds `Content-Type`, `Content-Length` and, when
/// `close` is set, `Connection: close`; `headers` holds any others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// Extra header lines, written in order.
    pub headers: Vec<(String, String)>,
    /// Close the connection after this response.
    pub close: bool,
    /// Answer to a HEAD request: headers as for GET, no body bytes.
    pub head_only: bool,
}

impl HttpResponse {
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> HttpResponse {
        HttpResponse {
            status,
            content_type: content_type.to_string(),
            body,
            headers: Vec::new(),
            close: false,
            head_only: false,
        }
    }

    /// A JSON response with `value` as its body.
    pub fn json(status: u16, value: &serde_json::Value) -> HttpResponse {
        let mut body = value.to_string().into_bytes();
        body.push(b'\n');
        HttpResponse::new(status, CONTENT_TYPE_JSON, body)
    }

    /// A JSON error: `{"error": message}`.
    pub fn error(status: u16, message: &str) -> HttpResponse {
        HttpResponse::json(status, &serde_json::json!({ "error": message }))
    }

    pub fn with_header(mut self, name: &str, value: &str) -> HttpResponse {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Carries the request's keep-alive decision (and HEAD) onto this
    /// response. An HTTP/1.0 client that asked for keep-alive is told so.
    pub fn for_request(mut self, req: &HttpRequest) -> HttpResponse {
        self.close |= !req.keep_alive;
        if req.version == 0 && req.keep_alive {
            self.headers.push(("Connection".into(), "keep-alive".into()));
        }
        self.head_only = req.method == Method::Head;
        self
    }

    /// Appends the response, head and body, to `out`. Always HTTP/1.1.
    pub fn encode(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        // Writing to a Vec cannot fail.
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            self.status,
            reason_phrase(self.status),
            self.content_type,
            self.body.len()
        );
        if self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !self.head_only {
            out.extend_from_slice(&self.body);
        }
    }
}

/// The reason phrase for the status codes this server sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_str(s: &str) -> Result<Option<HttpRequest>, HttpError> {
        let mut buf = BytesMut::from(s.as_bytes());
        decode(&mut buf, &HttpLimits::default())
    }

    #[test]
    fn decodes_get_with_query() {
        let req = decode_str("GET /admin/memory?shard=1&x=a%20b+c&flag HTTP/1.1\r\nHost: h\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.path, "/admin/memory");
        assert_eq!(
            req.query,
            vec![
                ("shard".to_string(), "1".to_string()),
                ("x".to_string(), "a b c".to_string()),
                ("flag".to_string(), String::new()),
            ]
        );
        assert_eq!(req.query_param("shard"), Some("1"));
        assert_eq!(req.header("HOST"), Some("h"));
        assert!(req.keep_alive);
        assert!(req.body.is_empty());
    }

    #[test]
    fn partial_head_and_body_wait_for_more() {
        let full = "POST /admin/read-only HTTP/1.1\r\nContent-Length: 17\r\n\r\n{\"enabled\": true}";
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full.as_bytes()[..cut]);
            assert_eq!(decode(&mut buf, &HttpLimits::default()), Ok(None), "cut at {cut}");
            assert_eq!(buf.len(), cut, "nothing consumed at {cut}");
        }
        let req = decode_str(full).unwrap().unwrap();
        assert_eq!(&req.body[..], b"{\"enabled\": true}");
    }

    #[test]
    fn pipelined_requests_decode_in_order() {
        let mut buf = BytesMut::from(
            &b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n"[..],
        );
        let limits = HttpLimits::default();
        let a = decode(&mut buf, &limits).unwrap().unwrap();
        assert_eq!((a.path.as_str(), &a.body[..]), ("/a", &b"abc"[..]));
        let b = decode(&mut buf, &limits).unwrap().unwrap();
        assert_eq!(b.path, "/b");
        assert_eq!(decode(&mut buf, &limits), Ok(None));
        assert_eq!(&buf[..], b"GET /c HTTP/1.1\r\n");
    }

    #[test]
    fn keep_alive_rules() {
        let close = decode_str("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!close.keep_alive);
        let v10 = decode_str("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!v10.keep_alive);
        let v10_ka = decode_str("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(v10_ka.keep_alive);

        let mut out = Vec::new();
        HttpResponse::new(200, CONTENT_TYPE_TEXT, b"ok".to_vec())
            .for_request(&close)
            .encode(&mut out);
        assert!(String::from_utf8(out).unwrap().contains("\r\nConnection: close\r\n"));
        let mut out = Vec::new();
        HttpResponse::new(200, CONTENT_TYPE_TEXT, b"ok".to_vec())
            .for_request(&v10_ka)
            .encode(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\nConnection: keep-alive\r\n"), "{text}");
        assert!(!text.contains("close"), "{text}");
    }

    #[test]
    fn limits_and_errors_map_to_statuses() {
        let limits = HttpLimits {
            header_bytes_max: 64,
            header_count_max: 2,
            body_bytes_max: 8,
        };
        let run = |s: &str| decode(&mut BytesMut::from(s.as_bytes()), &limits);

        // An unfinished head already past the limit.
        let err = run(&format!("GET /{} HTTP/1.1\r\n", "a".repeat(80))).unwrap_err();
        assert_eq!(err.status(), 431);
        // A finished head past the limit.
        let err = run(&format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(60))).unwrap_err();
        assert_eq!(err.status(), 431);
        let err = run("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n").unwrap_err();
        assert_eq!(err, HttpError::TooManyHeaders { limit: 2 });
        assert_eq!(err.status(), 431);
        // Body too large is known from the head alone.
        let err = run("POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\n").unwrap_err();
        assert_eq!(err, HttpError::BodyTooLarge { length: 9, limit: 8 });
        assert_eq!(err.status(), 413);
        let err = run("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap_err();
        assert_eq!(err.status(), 411);
        let err = decode_str("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n").unwrap_err();
        assert_eq!(err.status(), 400);
        for bad in [
            "GARBAGE\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "GET /%zz HTTP/1.1\r\n\r\n",
            "GET /a?b=%ff HTTP/1.1\r\n\r\n",
            "GET * HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        ] {
            let err = run(bad).unwrap_err();
            assert_eq!(err.status(), 400, "{bad:?}: {err}");
        }
        let resp = HttpError::LengthRequired.to_response();
        assert!(resp.close);
        assert_eq!(resp.status, 411);
        let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert!(body["error"].as_str().unwrap().contains("Content-Length"));
    }

    #[test]
    fn absolute_form_target() {
        let req = decode_str("GET http://localhost:8080/status?x=1 HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(req.path, "/status");
        assert_eq!(req.query_param("x"), Some("1"));
    }

    #[test]
    fn encode_writes_head_and_body() {
        let mut out = Vec::new();
        HttpResponse::error(405, "method not allowed")
            .with_header("Allow", "GET, HEAD")
            .encode(&mut out);
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(head.contains("\r\nContent-Type: application/json\r\n"));
        assert!(head.contains(&format!("\r\nContent-Length: {}", body.len())));
        assert!(head.ends_with("\r\nAllow: GET, HEAD"));
        assert_eq!(body, "{\"error\":\"method not allowed\"}\n");

        let mut resp = HttpResponse::new(200, CONTENT_TYPE_TEXT, b"hello".to_vec());
        resp.head_only = true;
        let mut out = Vec::new();
        resp.encode(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("Content-Length: 5\r\n\r\n"), "{text}");
    }
}
