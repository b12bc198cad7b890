//! The PostgreSQL driver: the v3 wire protocol's extended query flow with
//! prepared statements. Each connection prepares one statement per
//! operation kind at start (`Parse`), then sends `Bind`/`Execute`/`Sync`
//! per operation; `$1` is the key, `$2` the value (writes) or the row
//! count (scans). Statements come from a query file (`op: SQL` lines) or
//! default to a two-column table that the run creates.
//!
//! Authentication: trust and cleartext password. MD5 and SCRAM are not
//! implemented (the connection fails naming the method).

use std::ops::Range;

use crate::net::proto::{Outcome, Reply, Request, REPLY_BYTES_MAX};
use crate::net::sock::Sock;
use crate::net::workload::{write_key, OpKind, OP_KINDS};
use crate::BenchError;

/// The table the default statements use.
pub const DEFAULT_TABLE: &str = "lumadb_bench";

/// Creates the default table when no query file is given.
pub const DEFAULT_SETUP: &str = "CREATE TABLE IF NOT EXISTS lumadb_bench (k TEXT PRIMARY KEY, v TEXT NOT NULL)";

fn default_sql(op: OpKind) -> &'static str {
    match op {
        OpKind::Get | OpKind::Rmw => "SELECT v FROM lumadb_bench WHERE k = $1",
        OpKind::Set | OpKind::Insert => {
            "INSERT INTO lumadb_bench (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v"
        }
        OpKind::Scan => "SELECT k, v FROM lumadb_bench WHERE k >= $1 ORDER BY k LIMIT $2",
        OpKind::Del => "DELETE FROM lumadb_bench WHERE k = $1",
    }
}

/// One prepared statement.
#[derive(Debug, Clone)]
struct Statement {
    name: String,
    sql: String,
    /// The highest `$n` in the text: how many parameters `Bind` sends.
    params: usize,
}

fn param_count(sql: &str) -> usize {
    let b = sql.as_bytes();
    let mut max = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let mut j = i + 1;
            let mut n = 0usize;
            while j < b.len() && b[j].is_ascii_digit() {
                n = n.saturating_mul(10).saturating_add((b[j] - b'0') as usize);
                j += 1;
            }
            max = max.max(n);
            i = j;
        } else {
            i += 1;
        }
    }
    max
}

/// Connection settings and statements.
#[derive(Debug, Clone)]
pub struct PgCodec {
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    /// SQL run once before the connections open (the default table).
    pub setup: Option<String>,
    /// Per operation kind (`OpKind::index`); read-modify-write uses get and set.
    statements: Vec<Option<Statement>>,
    prefix: Vec<u8>,
}

impl PgCodec {
    /// `query_file`: the text of a query file, or `None` for the defaults.
    pub fn new(
        user: &str,
        password: Option<&str>,
        database: &str,
        query_file: Option<&str>,
        prefix: &[u8],
    ) -> Result<PgCodec, BenchError> {
        let mut statements: Vec<Option<Statement>> = vec![None; OP_KINDS.len()];
        let stmt = |op: OpKind, sql: &str| Statement {
            name: format!("lumadb_bench_{}", op.name()),
            sql: sql.to_string(),
            params: param_count(sql),
        };
        match query_file {
            None => {
                for op in OP_KINDS {
                    statements[op.index()] = Some(stmt(op, default_sql(op)));
                }
            }
            Some(text) => {
                for (n, line) in text.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') || line.starts_with("--") {
                        continue;
                    }
                    let (name, sql) = line.split_once(':').ok_or_else(|| {
                        BenchError::Invalid(format!("query file line {}: expected \"op: SQL\"", n + 1))
                    })?;
                    let op = OP_KINDS
                        .into_iter()
                        .find(|op| op.name() == name.trim().to_ascii_lowercase())
                        .ok_or_else(|| {
                            BenchError::Invalid(format!(
                                "query file line {}: unknown operation {name:?}; known: get, set, insert, scan, rmw, del",
                                n + 1
                            ))
                        })?;
                    statements[op.index()] = Some(stmt(op, sql.trim()));
                }
            }
        }
        Ok(PgCodec {
            user: user.to_string(),
            password: password.map(str::to_string),
            database: database.to_string(),
            setup: query_file.is_none().then(|| DEFAULT_SETUP.to_string()),
            statements,
            prefix: prefix.to_vec(),
        })
    }

    /// Whether operation `op` has what it needs.
    pub fn supports(&self, op: OpKind) -> bool {
        let has = |o: OpKind| self.statements[o.index()].is_some();
        match op {
            OpKind::Rmw => has(OpKind::Get) && has(OpKind::Set),
            other => has(other),
        }
    }

    fn statement(&self, op: OpKind) -> Option<&Statement> {
        self.statements[op.index()].as_ref()
    }

    /// `Parse` for every statement, then `Sync`.
    pub fn prepare_messages(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for s in self.statements.iter().flatten() {
            message(&mut out, b'P', |b| {
                cstr(b, &s.name);
                cstr(b, &s.sql);
                b.extend_from_slice(&0i16.to_be_bytes());
            });
        }
        message(&mut out, b'S', |_| {});
        out
    }

    fn bind_execute(&self, out: &mut Vec<u8>, op: OpKind, req: &Request<'_>) {
        let Some(s) = self.statement(op) else {
            // Checked against the mix before the run.
            panic!("no statement for {}", op.name());
        };
        message(out, b'B', |b| {
            b.push(0); // unnamed portal
            cstr(b, &s.name);
            b.extend_from_slice(&0i16.to_be_bytes()); // all parameters in text
            b.extend_from_slice(&(s.params as i16).to_be_bytes());
            for i in 0..s.params {
                let at = b.len();
                b.extend_from_slice(&0i32.to_be_bytes());
                match i {
                    0 => write_key(b, &self.prefix, req.key),
                    1 if op == OpKind::Scan => crate::net::resp::push_decimal(b, req.scan_len as u64),
                    1 => b.extend_from_slice(req.value),
                    _ => {
                        // Parameters past $2 are sent as NULL.
                        b.truncate(at);
                        b.extend_from_slice(&(-1i32).to_be_bytes());
                        continue;
                    }
                }
                let len = (b.len() - at - 4) as i32;
                b[at..at + 4].copy_from_slice(&len.to_be_bytes());
            }
            b.extend_from_slice(&0i16.to_be_bytes()); // results in text
        });
        message(out, b'E', |b| {
            b.push(0);
            b.extend_from_slice(&0i32.to_be_bytes());
        });
    }

    pub fn encode(&mut self, req: &Request<'_>, out: &mut Vec<u8>) -> u32 {
        match req.op {
            OpKind::Rmw => {
                self.bind_execute(out, OpKind::Get, req);
                self.bind_execute(out, OpKind::Set, req);
            }
            op => self.bind_execute(out, op, req),
        }
        message(out, b'S', |_| {});
        1
    }
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// Appends one message: tag, length, then what `body` writes.
fn message(out: &mut Vec<u8>, tag: u8, body: impl FnOnce(&mut Vec<u8>)) {
    out.push(tag);
    let at = out.len();
    out.extend_from_slice(&0i32.to_be_bytes());
    body(out);
    let len = (out.len() - at) as i32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// The startup message.
pub fn startup_message(user: &str, database: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608i32.to_be_bytes()); // protocol 3.0
    for (k, v) in [
        ("user", user),
        ("database", database),
        ("application_name", "lumadb bench"),
    ] {
        cstr(&mut body, k);
        cstr(&mut body, v);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// One backend message at the front of `buf`: its tag, its body's range
/// and its total length.
pub fn next_message(buf: &[u8]) -> Result<Option<(u8, Range<usize>, usize)>, BenchError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 || len as usize > REPLY_BYTES_MAX {
        return Err(BenchError::Protocol(format!("PostgreSQL: bad message length {len}")));
    }
    let total = 1 + len as usize;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some((buf[0], 5..total, total)))
}

/// The SQLSTATE and message of an ErrorResponse body.
pub fn error_fields(body: &[u8]) -> (String, String) {
    let mut code = String::from("XX000");
    let mut text = String::new();
    let mut i = 0;
    while i < body.len() && body[i] != 0 {
        let field = body[i];
        let end = body[i + 1..]
            .iter()
            .position(|&b| b == 0)
            .map_or(body.len(), |p| i + 1 + p);
        let value = String::from_utf8_lossy(&body[i + 1..end]).into_owned();
        match field {
            b'C' => code = value,
            b'M' => text = value,
            _ => {}
        }
        i = end + 1;
    }
    (code, text)
}

/// Takes the replies to one `Sync` (everything up to `ReadyForQuery`).
pub fn decode(buf: &[u8]) -> Result<Option<Reply>, BenchError> {
    let mut at = 0;
    let mut rows = 0u64;
    let mut first_value: Option<Range<usize>> = None;
    let mut error: Option<String> = None;
    let mut rows_expected = false;
    loop {
        let Some((tag, body, total)) = next_message(&buf[at..])? else {
            return Ok(None);
        };
        let body = at + body.start..at + body.end;
        match tag {
            b'D' => {
                rows_expected = true;
                if rows == 0 && body.len() >= 6 {
                    let cols = i16::from_be_bytes([buf[body.start], buf[body.start + 1]]);
                    if cols > 0 {
                        let p = body.start + 2;
                        let n = i32::from_be_bytes([buf[p], buf[p + 1], buf[p + 2], buf[p + 3]]);
                        if n >= 0 && p + 4 + n as usize <= body.end {
                            first_value = Some(p + 4..p + 4 + n as usize);
                        }
                    }
                }
                rows += 1;
            }
            b'T' | b'n' => rows_expected = true,
            b'C' => {
                let tagtext = &buf[body.clone()];
                if tagtext.starts_with(b"SELECT") {
                    rows_expected = true;
                }
            }
            b'E' if error.is_none() => error = Some(error_fields(&buf[body.clone()]).0),
            b'Z' => {
                let outcome = match error {
                    Some(code) => Outcome::Error(format!("sqlstate_{code}")),
                    None if rows_expected && rows == 0 => Outcome::Miss,
                    None => Outcome::Ok { value: first_value },
                };
                return Ok(Some(Reply {
                    outcome,
                    len: at + total,
                    close: false,
                }));
            }
            _ => {}
        }
        at += total;
    }
}

fn pg_err(msg: String) -> BenchError {
    BenchError::Protocol(format!("PostgreSQL: {msg}"))
}

/// Reads until one whole message is in `buf`; returns (tag, body).
async fn read_message(sock: &Sock, buf: &mut Vec<u8>) -> Result<(u8, Vec<u8>), BenchError> {
    loop {
        if let Some((tag, body, total)) = next_message(buf)? {
            let b = buf[body].to_vec();
            buf.drain(..total);
            return Ok((tag, b));
        }
        let n = sock.recv_into(buf).await.map_err(|e| pg_err(format!("reading: {e}")))?;
        if n == 0 {
            return Err(pg_err("the server closed the connection during start-up".into()));
        }
    }
}

/// Starts a session on a connected socket: start-up, authentication,
/// then (when `setup` is set) the setup SQL and the prepared statements.
pub async fn handshake(sock: &Sock, codec: &PgCodec, run_setup: bool) -> Result<(), BenchError> {
    sock.send_all(startup_message(&codec.user, &codec.database))
        .await
        .map_err(|e| pg_err(format!("sending start-up: {e}")))?;
    let mut buf = Vec::new();
    loop {
        let (tag, body) = read_message(sock, &mut buf).await?;
        match tag {
            b'R' => {
                let code = body
                    .get(..4)
                    .map_or(-1, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                match code {
                    0 => {}
                    3 => {
                        let Some(pw) = &codec.password else {
                            return Err(pg_err("the server asks for a password: pass --pg-password".into()));
                        };
                        let mut out = Vec::new();
                        message(&mut out, b'p', |b| cstr(b, pw));
                        sock.send_all(out)
                            .await
                            .map_err(|e| pg_err(format!("sending password: {e}")))?;
                    }
                    5 => {
                        return Err(pg_err(
                            "MD5 authentication is not supported (use trust or password)".into(),
                        ))
                    }
                    10 => {
                        return Err(pg_err(
                            "SCRAM authentication is not supported (use trust or password)".into(),
                        ))
                    }
                    other => return Err(pg_err(format!("authentication method {other} is not supported"))),
                }
            }
            b'E' => {
                let (code, text) = error_fields(&body);
                return Err(pg_err(format!("{text} (SQLSTATE {code})")));
            }
            b'Z' => break,
            _ => {}
        }
    }
    let mut out = Vec::new();
    if run_setup {
        if let Some(sql) = &codec.setup {
            message(&mut out, b'Q', |b| cstr(b, sql));
        }
    }
    out.extend_from_slice(&codec.prepare_messages());
    let expect_ready = 1 + (run_setup && codec.setup.is_some()) as usize;
    sock.send_all(out)
        .await
        .map_err(|e| pg_err(format!("preparing statements: {e}")))?;
    let mut ready = 0;
    let mut failure = None;
    while ready < expect_ready {
        let (tag, body) = read_message(sock, &mut buf).await?;
        match tag {
            b'E' if failure.is_none() => {
                let (code, text) = error_fields(&body);
                failure = Some(pg_err(format!("preparing statements: {text} (SQLSTATE {code})")));
            }
            b'Z' => ready += 1,
            _ => {}
        }
    }
    if !buf.is_empty() {
        return Err(pg_err("unexpected bytes after start-up".into()));
    }
    failure.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parameters() {
        assert_eq!(param_count("SELECT v FROM t WHERE k = $1"), 1);
        assert_eq!(param_count("INSERT INTO t VALUES ($1, $2)"), 2);
        assert_eq!(param_count("SELECT 1"), 0);
    }

    #[test]
    fn query_files_name_operations() {
        let c =
            PgCodec::new("u", None, "d", Some("# comment\nget: SELECT 1\n"), b"k").unwrap_or_else(|e| panic!("{e}"));
        assert!(c.supports(OpKind::Get));
        assert!(!c.supports(OpKind::Set));
        assert!(c.setup.is_none());
        assert!(PgCodec::new("u", None, "d", Some("frob: SELECT 1"), b"k").is_err());
    }

    #[test]
    fn decodes_a_read_a_miss_and_an_error() {
        let mut buf = Vec::new();
        message(&mut buf, b'2', |_| {});
        message(&mut buf, b'D', |b| {
            b.extend_from_slice(&1i16.to_be_bytes());
            b.extend_from_slice(&3i32.to_be_bytes());
            b.extend_from_slice(b"abc");
        });
        message(&mut buf, b'C', |b| cstr(b, "SELECT 1"));
        message(&mut buf, b'Z', |b| b.push(b'I'));
        let r = decode(&buf)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("complete"));
        assert_eq!(r.len, buf.len());
        let Outcome::Ok { value: Some(v) } = r.outcome else {
            panic!("a value")
        };
        assert_eq!(&buf[v], b"abc");
        assert_eq!(decode(&buf[..buf.len() - 1]).ok(), Some(None));

        let mut miss = Vec::new();
        message(&mut miss, b'2', |_| {});
        message(&mut miss, b'C', |b| cstr(b, "SELECT 0"));
        message(&mut miss, b'Z', |b| b.push(b'I'));
        assert_eq!(decode(&miss).ok().flatten().map(|r| r.outcome), Some(Outcome::Miss));

        let mut err = Vec::new();
        message(&mut err, b'E', |b| {
            b.push(b'C');
            cstr(b, "42P01");
            b.push(0);
        });
        message(&mut err, b'Z', |b| b.push(b'I'));
        assert_eq!(
            decode(&err).ok().flatten().map(|r| r.outcome),
            Some(Outcome::Error("sqlstate_42P01".into()))
        );
    }
}
