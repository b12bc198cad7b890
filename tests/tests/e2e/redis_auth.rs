//! `server.requirepass`: AUTH and HELLO ... AUTH with real clients. The
//! replies are checked word for word against redis-server's in
//! `redis_diff`-style pairs here, since a password changes every reply.

use lumadb_tests::resp::{RespConn, Value};
use lumadb_tests::server::{redis_cli, LumaServer, RedisServer, ServerOptions};

const PASSWORD: &str = "s3cret pass";

fn server() -> LumaServer {
    LumaServer::start(
        ServerOptions::default()
            .shards(2)
            .config(&format!("[server]\nrequirepass = \"{PASSWORD}\"\n")),
    )
}

/// The same command lines on a fresh connection to each server, raw
/// replies compared.
fn same_replies(luma: u16, redis: u16, lines: &[&[&str]]) {
    let (mut l, mut r) = (RespConn::open(luma), RespConn::open(redis));
    for line in lines {
        let (got, want) = (l.call_raw(line).0, r.call_raw(line).0);
        assert_eq!(without_client_id(&got), without_client_id(&want), "reply to {line:?}");
    }
}

/// A HELLO reply with its client id (which differs between servers) blanked.
fn without_client_id(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw).into_owned();
    let tag = "$2\r\nid\r\n:";
    match text.find(tag) {
        Some(at) => {
            let from = at + tag.len();
            let to = from + text[from..].find("\r\n").unwrap_or(0);
            format!("{}#{}", &text[..from], &text[to..])
        }
        None => text,
    }
}

#[test]
fn a_password_is_asked_before_any_command_and_replies_match_redis() {
    let s = server();
    let redis = RedisServer::start();
    {
        // The reference server takes the password at runtime.
        let mut c = redis.conn();
        assert_eq!(
            c.call(&["CONFIG", "SET", "requirepass", PASSWORD]),
            Value::Simple(b"OK".to_vec())
        );
    }
    same_replies(
        s.redis_port(),
        redis.port(),
        &[
            &["GET", "k"],
            &["PING"],
            &["NOSUCHCMD"],
            &["GET"],
            &["MULTI"],
            &["HELLO", "3"],
            &["AUTH", "wrong"],
            &["AUTH", "default", "wrong"],
            &["AUTH", "bob", PASSWORD],
            &["AUTH", "a", "b", "c"],
            &["HELLO", "3", "AUTH", "default", "wrong"],
            &["HELLO", "2", "AUTH", "default", PASSWORD, "SETNAME", "has space"],
            &["AUTH", PASSWORD],
            &["SET", "k", "v"],
            &["GET", "k"],
            &["AUTH", "default", "wrong"],
            &["GET", "k"],
            &["RESET"],
            &["GET", "k"],
        ],
    );
    same_replies(
        s.redis_port(),
        redis.port(),
        &[
            &["HELLO", "2", "AUTH", "default", PASSWORD, "SETNAME", "me"],
            &["CLIENT", "GETNAME"],
            &["GET", "k"],
        ],
    );
    // HELLO applies its options in order: what came before a failing one stays.
    same_replies(
        s.redis_port(),
        redis.port(),
        &[
            &["HELLO", "3", "AUTH", "default", "wrong", "SETNAME", "x y"],
            &["HELLO", "3", "AUTH", "default", PASSWORD, "SETNAME", "x y"],
            &["PING"],
            &["HELLO", "2", "SETNAME", "ok", "AUTH", "default", "wrong"],
            &["CLIENT", "GETNAME"],
            &["HELLO", "2", "SETNAME", "ok2", "SETNAME"],
            &["CLIENT", "GETNAME"],
        ],
    );
    // Pipelined: a command before AUTH is refused, the ones after run.
    let mut c = RespConn::open(s.redis_port());
    c.send_raw(format!("GET k\r\nAUTH \"{PASSWORD}\"\r\nGET k\r\n").as_bytes());
    let replies: Vec<Value> = (0..3).map(|_| c.read_reply().expect("reply").1).collect();
    assert_eq!(
        replies,
        vec![
            Value::Error(b"NOAUTH Authentication required.".to_vec()),
            Value::Simple(b"OK".to_vec()),
            Value::Bulk(b"v".to_vec()),
        ]
    );
}

#[test]
fn redis_cli_and_redis_py_log_in_with_the_password() {
    let s = server();
    assert_eq!(
        redis_cli(s.redis_port(), &["get", "k"]).trim(),
        "(error) NOAUTH Authentication required."
    );
    let ok = redis_cli(s.redis_port(), &["-a", PASSWORD, "--no-auth-warning", "set", "k", "v"]);
    assert_eq!(ok.trim(), "OK");
    let got = redis_cli(
        s.redis_port(),
        &["--user", "default", "--pass", PASSWORD, "--no-auth-warning", "get", "k"],
    );
    assert_eq!(got.trim(), "\"v\"");
    assert_eq!(
        s.cli(&["-a", PASSWORD, "--no-auth-warning", "config", "get", "requirepass"]),
        format!("1) \"requirepass\"\n2) \"{PASSWORD}\"\n")
    );
    s.run_python(
        &format!(
            r#"
import sys, redis
from redis.backoff import NoBackoff
from redis.retry import Retry
port = int(sys.argv[1])
once = dict(retry=Retry(NoBackoff(), 0))  # redis-py retries a refused login with backoff
for proto in (2, 3):
    r = redis.Redis(port=port, password={PASSWORD:?}, protocol=proto)
    assert r.get("k") == b"v"
    assert r.incr("n") >= 1
    try:
        redis.Redis(port=port, password="wrong", protocol=proto, **once).ping()
        raise SystemExit("a wrong password was accepted")
    except redis.exceptions.AuthenticationError:
        pass
    try:
        redis.Redis(port=port, protocol=proto, **once).get("k")
        raise SystemExit("no password was accepted")
    except redis.exceptions.AuthenticationError:
        pass
print("auth ok")
"#
        ),
        "auth ok",
    );
    // The admin API, which asks no password, does not show it.
    let config = s.http("GET", "/admin/config", None).json();
    assert_eq!(config["server"]["requirepass"], "(set)");
}

/// Before logging in a client may send only small frames, as with Redis:
/// more than 10 arguments or a bulk over 16 KiB gets Redis's protocol
/// error and the connection closes, so no one without the password can
/// make the server buffer much. After AUTH, in the same pipeline, large
/// values are fine.
#[test]
fn before_login_only_small_frames_are_read() {
    let s = server();
    let mut c = RespConn::open(s.redis_port());
    c.send_raw(b"*2\r\n$4\r\nAUTH\r\n$100000000\r\n");
    assert_eq!(
        c.read_reply().expect("reply").1,
        Value::Error(b"ERR Protocol error: unauthenticated bulk length".to_vec())
    );
    assert!(c.is_closed());
    let mut c = RespConn::open(s.redis_port());
    c.send_raw(b"*1000000\r\n");
    assert_eq!(
        c.read_reply().expect("reply").1,
        Value::Error(b"ERR Protocol error: unauthenticated multibulk length".to_vec())
    );
    assert!(c.is_closed());
    let big = "v".repeat(100_000);
    let mut c = RespConn::open(s.redis_port());
    let mut frames = lumadb_tests::resp::encode(&["AUTH", PASSWORD]);
    frames.extend_from_slice(&lumadb_tests::resp::encode(&["SET", "big", big.as_str()]));
    frames.extend_from_slice(&lumadb_tests::resp::encode(&["STRLEN", "big"]));
    c.send_raw(&frames);
    let replies: Vec<Value> = (0..3).map(|_| c.read_reply().expect("reply").1).collect();
    assert_eq!(
        replies,
        vec![
            Value::Simple(b"OK".to_vec()),
            Value::Simple(b"OK".to_vec()),
            Value::Int(100_000)
        ]
    );
}

/// CONFIG SET requirepass and `PATCH /admin/config` change the password
/// on every shard at once; clients already logged in stay logged in, as
/// with Redis, and an empty password asks none.
#[test]
fn the_password_changes_at_runtime() {
    let s = server();
    let mut admin = RespConn::open(s.redis_port());
    assert_eq!(admin.call(&["AUTH", PASSWORD]), Value::Simple(b"OK".to_vec()));
    assert_eq!(
        admin.call(&["CONFIG", "SET", "requirepass", "second"]),
        Value::Simple(b"OK".to_vec())
    );
    assert_eq!(
        admin.call(&["PING"]),
        Value::Simple(b"PONG".to_vec()),
        "still logged in"
    );
    // Many connections, so that both shards' listeners are exercised.
    for _ in 0..8 {
        let mut c = RespConn::open(s.redis_port());
        assert_eq!(
            c.call(&["AUTH", PASSWORD]),
            Value::Error(b"WRONGPASS invalid username-password pair or user is disabled.".to_vec())
        );
        assert_eq!(c.call(&["AUTH", "second"]), Value::Simple(b"OK".to_vec()));
    }
    assert_eq!(
        admin.call(&["CONFIG", "GET", "requirepass"]),
        Value::Array(vec![
            Value::Bulk(b"requirepass".to_vec()),
            Value::Bulk(b"second".to_vec())
        ])
    );
    let r = s.http("PATCH", "/admin/config", Some(r#"{"requirepass":"third"}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(lumadb_tests::server::eventually(
        std::time::Duration::from_secs(5),
        || { RespConn::open(s.redis_port()).call(&["AUTH", "third"]) == Value::Simple(b"OK".to_vec()) }
    ));
    assert_eq!(
        s.http("GET", "/admin/config", None).json()["server"]["requirepass"],
        "(set)"
    );
    assert_eq!(
        admin.call(&["CONFIG", "SET", "requirepass", ""]),
        Value::Simple(b"OK".to_vec())
    );
    for _ in 0..8 {
        assert_eq!(
            RespConn::open(s.redis_port()).call(&["PING"]),
            Value::Simple(b"PONG".to_vec())
        );
    }
}
