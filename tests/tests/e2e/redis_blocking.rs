//! Blocking pops (BLPOP, BZPOPMIN, BLMPOP, BZMPOP, BLMOVE, BRPOPLPUSH) and
//! multi-pops against a real `lumadb start --shards 2`, with their keys on
//! different shards: woken by another client's write, timeouts, many
//! clients racing for elements, disconnects, MULTI/EXEC, read-only mode.

use std::collections::BTreeSet;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lumadb_tests::resp::{RespConn, Value};
use lumadb_tests::server::{eventually, keys_on_shard, LumaServer, ServerOptions};

const SHARDS: usize = 2;
/// A wake-up must arrive well within this (the server does not poll).
const WAKE_MAX: Duration = Duration::from_secs(5);

fn server() -> LumaServer {
    LumaServer::start(ServerOptions::default().shards(SHARDS))
}

/// One key on shard 0 and one on shard 1.
fn two_shard_keys(prefix: &str) -> (String, String) {
    (
        keys_on_shard(prefix, 0, SHARDS, 1).remove(0),
        keys_on_shard(prefix, 1, SHARDS, 1).remove(0),
    )
}

fn bulk(s: &str) -> Value {
    Value::Bulk(s.as_bytes().to_vec())
}

fn info_field(c: &mut RespConn, field: &str) -> u64 {
    let text = c.call(&["INFO", "clients"]).text().unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO has no {field}: {text}"))
}

/// Waits until `n` clients are blocked.
#[track_caller]
fn wait_blocked(s: &LumaServer, n: u64) {
    let mut c = s.conn();
    assert!(
        eventually(Duration::from_secs(20), || info_field(&mut c, "blocked_clients") == n),
        "expected {n} blocked clients: {:?}",
        c.call(&["INFO", "clients"]).text()
    );
}

/// Runs `args` on a fresh connection in a thread: the reply's raw bytes
/// and how long it took.
fn spawn_call(port: u16, args: &[&str]) -> JoinHandle<(Vec<u8>, Value, Instant)> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    std::thread::spawn(move || {
        let mut conn = RespConn::open(port);
        let (raw, v) = conn.call_raw(&args);
        (raw, v, Instant::now())
    })
}

#[test]
fn blpop_over_two_shards_wakes_on_push() {
    let s = server();
    let (a, b) = two_shard_keys("bl");
    let waiter = spawn_call(s.redis_port(), &["BLPOP", &a, &b, "30"]);
    wait_blocked(&s, 1);
    let mut c = s.conn();
    assert!(
        c.call(&["CLIENT", "LIST"])
            .text()
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("cmd=blpop") && l.contains("flags=b ")),
        "the BLPOP client is not listed as blocked"
    );
    assert_eq!(info_field(&mut c, "total_blocking_keys"), 2);
    let pushed = Instant::now();
    assert_eq!(c.call(&["LPUSH", &b, "hello"]), Value::Int(1));
    let (_, got, at) = waiter.join().expect("waiter");
    assert_eq!(got, Value::Array(vec![bulk(&b), bulk("hello")]));
    assert!(at.duration_since(pushed) < WAKE_MAX, "woken after {:?}", at - pushed);
    assert_eq!(c.call(&["EXISTS", &b]), Value::Int(0));
    wait_blocked(&s, 0);
    assert_eq!(info_field(&mut c, "total_blocking_keys"), 0);

    // Keys are served in the order given when several have elements.
    c.call(&["RPUSH", &a, "1"]);
    c.call(&["RPUSH", &b, "2"]);
    assert_eq!(c.call(&["BRPOP", &b, &a, "1"]), Value::Array(vec![bulk(&b), bulk("2")]));
    assert_eq!(c.call(&["BLPOP", &b, &a, "1"]), Value::Array(vec![bulk(&a), bulk("1")]));
}

#[test]
fn many_blocked_clients_each_get_exactly_one_element() {
    let s = server();
    let (a, b) = two_shard_keys("race");
    const CLIENTS: usize = 12;
    let waiters: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let keys = if i % 2 == 0 { [&a, &b] } else { [&b, &a] };
            spawn_call(s.redis_port(), &["BLPOP", keys[0], keys[1], "60"])
        })
        .collect();
    wait_blocked(&s, CLIENTS as u64);
    let mut c = s.conn();
    let mut pushed = BTreeSet::new();
    for i in 0..CLIENTS {
        let key = if i % 3 == 0 { &a } else { &b };
        let v = format!("v{i}");
        c.call(&["RPUSH", key, &v]);
        pushed.insert((key.clone(), v));
    }
    let mut got = BTreeSet::new();
    for w in waiters {
        let (_, v, _) = w.join().expect("waiter");
        match v {
            Value::Array(items) if items.len() == 2 => {
                let k = items[0].text().expect("key");
                let e = items[1].text().expect("element");
                assert!(got.insert((k, e)), "an element was popped twice");
            }
            other => panic!("unexpected reply {other:?}"),
        }
    }
    assert_eq!(got, pushed, "every pushed element went to exactly one client");
    assert_eq!(c.call(&["EXISTS", &a, &b]), Value::Int(0));
    wait_blocked(&s, 0);
    assert_eq!(info_field(&mut c, "total_blocking_keys"), 0);
}

#[test]
fn timeouts_answer_nil_in_both_protocols() {
    let s = server();
    let (a, b) = two_shard_keys("to");
    let mut c = s.conn();
    for resp3 in [false, true] {
        if resp3 {
            c.call(&["HELLO", "3"]);
        }
        let null_array: &[u8] = if resp3 { b"_\r\n" } else { b"*-1\r\n" };
        for (cmd, want) in [
            (vec!["BLPOP", &a, &b, "0.2"], null_array),
            (vec!["BRPOP", &a, &b, "0.05"], null_array),
            (vec!["BZPOPMIN", &a, &b, "0.05"], null_array),
            (vec!["BZPOPMAX", &b, "0.05"], null_array),
            (vec!["BLMPOP", "0.05", "2", &a, &b, "LEFT"], null_array),
            (vec!["BZMPOP", "0.05", "2", &a, &b, "MIN", "COUNT", "3"], null_array),
            (vec!["BLMOVE", &a, &b, "LEFT", "RIGHT", "0.05"], null_array),
            (vec!["BRPOPLPUSH", &a, &b, "0.05"], null_array),
        ] {
            let t = Instant::now();
            let (raw, _) = c.call_raw(&cmd);
            assert_eq!(String::from_utf8_lossy(&raw), String::from_utf8_lossy(want), "{cmd:?}");
            assert!(
                t.elapsed() >= Duration::from_millis(40),
                "{cmd:?} returned before its timeout"
            );
        }
    }
    assert_eq!(info_field(&mut c, "blocked_clients"), 0);
    assert_eq!(info_field(&mut c, "total_blocking_keys"), 0);
}

#[test]
fn a_disconnected_client_pops_nothing() {
    let s = server();
    let (a, b) = two_shard_keys("gone");
    for timeout in ["0", "30"] {
        let mut blocked = s.conn();
        blocked.send(&["BLPOP", &a, &b, timeout]);
        let mut also = s.conn();
        also.send(&["BZPOPMIN", &a, &b, timeout]);
        wait_blocked(&s, 2);
        drop(blocked);
        drop(also);
        wait_blocked(&s, 0);
        let mut c = s.conn();
        assert!(
            eventually(Duration::from_secs(10), || info_field(&mut c, "total_blocking_keys")
                == 0),
            "waiters left behind"
        );
        assert_eq!(c.call(&["RPUSH", &b, "kept"]), Value::Int(1));
        assert_eq!(c.call(&["ZADD", &a, "1", "kept"]), Value::Int(1));
        // Give a leftover waiter every chance to pop.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(c.call(&["LRANGE", &b, "0", "-1"]), Value::Array(vec![bulk("kept")]));
        assert_eq!(c.call(&["ZCARD", &a]), Value::Int(1));
        c.call(&["DEL", &a, &b]);
    }
}

#[test]
fn blocking_forms_across_shards() {
    let s = server();
    let port = s.redis_port();
    let (a, b) = two_shard_keys("bf");
    let mut c = s.conn();

    let w = spawn_call(port, &["BZPOPMIN", &a, &b, "30"]);
    wait_blocked(&s, 1);
    c.call(&["ZADD", &b, "5", "m"]);
    assert_eq!(
        w.join().expect("waiter").1,
        Value::Array(vec![bulk(&b), bulk("m"), bulk("5")])
    );

    let w = spawn_call(port, &["BZPOPMAX", &a, &b, "30"]);
    wait_blocked(&s, 1);
    c.call(&["ZADD", &a, "1", "p", "2", "q"]);
    assert_eq!(
        w.join().expect("waiter").1,
        Value::Array(vec![bulk(&a), bulk("q"), bulk("2")])
    );
    c.call(&["DEL", &a]);

    let w = spawn_call(port, &["BLMPOP", "30", "2", &a, &b, "RIGHT", "COUNT", "2"]);
    wait_blocked(&s, 1);
    c.call(&["RPUSH", &b, "x", "y", "z"]);
    assert_eq!(
        w.join().expect("waiter").1,
        Value::Array(vec![bulk(&b), Value::Array(vec![bulk("z"), bulk("y")])])
    );
    assert_eq!(c.call(&["LRANGE", &b, "0", "-1"]), Value::Array(vec![bulk("x")]));
    c.call(&["DEL", &b]);

    let w = spawn_call(port, &["BZMPOP", "30", "2", &a, &b, "MAX", "COUNT", "5"]);
    wait_blocked(&s, 1);
    c.call(&["ZADD", &a, "1", "p", "2", "q"]);
    assert_eq!(
        w.join().expect("waiter").1,
        Value::Array(vec![
            bulk(&a),
            Value::Array(vec![
                Value::Array(vec![bulk("q"), bulk("2")]),
                Value::Array(vec![bulk("p"), bulk("1")])
            ])
        ])
    );

    let w = spawn_call(port, &["BLMOVE", &a, &b, "LEFT", "RIGHT", "30"]);
    wait_blocked(&s, 1);
    c.call(&["RPUSH", &a, "e1", "e2"]);
    assert_eq!(w.join().expect("waiter").1, bulk("e1"));
    let w = spawn_call(port, &["BRPOPLPUSH", &a, &b, "30"]);
    assert_eq!(w.join().expect("waiter").1, bulk("e2"));
    assert_eq!(
        c.call(&["LRANGE", &b, "0", "-1"]),
        Value::Array(vec![bulk("e2"), bulk("e1")])
    );
    c.call(&["DEL", &b]);
    let w = spawn_call(port, &["BRPOPLPUSH", &b, &a, "30"]);
    wait_blocked(&s, 1);
    c.call(&["LPUSH", &b, "back"]);
    assert_eq!(w.join().expect("waiter").1, bulk("back"));
    assert_eq!(c.call(&["LRANGE", &a, "0", "-1"]), Value::Array(vec![bulk("back")]));

    // A key of the wrong type is an error at once, in key order.
    c.call(&["SET", &b, "str"]);
    assert!(c.call(&["BLPOP", &b, &a, "0"]).is_error());
    assert!(c.call(&["BZPOPMIN", &b, "0"]).is_error());
    assert_eq!(
        c.call(&["LMPOP", "2", &a, &b, "LEFT"]),
        Value::Array(vec![bulk(&a), Value::Array(vec![bulk("back")])])
    );
}

#[test]
fn blocking_commands_inside_multi_never_block() {
    let s = server();
    let (a, b) = two_shard_keys("mx");
    let mut c = s.conn();
    c.call(&["RPUSH", &b, "1", "2", "3", "4"]);
    c.call(&["ZADD", &a, "3", "z"]);
    assert_eq!(c.call(&["MULTI"]), Value::Simple(b"OK".to_vec()));
    for cmd in [
        vec!["BLPOP", &a, "nokey", "0"],
        vec!["BLPOP", "nokey", &b, "0"],
        vec!["BZPOPMIN", "nokey", &a, "0"],
        vec!["BLMPOP", "0", "2", &a, &b, "RIGHT", "COUNT", "2"],
        vec!["BLMOVE", &b, &a, "LEFT", "LEFT", "0"],
        vec!["LMPOP", "1", &b, "LEFT"],
        vec!["ZMPOP", "1", &a, "MIN"],
    ] {
        assert_eq!(c.call(&cmd), Value::Simple(b"QUEUED".to_vec()), "{cmd:?}");
    }
    let t = Instant::now();
    let got = c.call(&["EXEC"]);
    assert!(t.elapsed() < WAKE_MAX);
    let Value::Array(replies) = got else {
        panic!("EXEC: {got:?}")
    };
    assert_eq!(replies.len(), 7);
    assert!(replies[0].is_error(), "BLPOP on a sorted set: {:?}", replies[0]);
    assert_eq!(replies[1], Value::Array(vec![bulk(&b), bulk("1")]));
    assert_eq!(replies[2], Value::Array(vec![bulk(&a), bulk("z"), bulk("3")]));
    assert_eq!(
        replies[3],
        Value::Array(vec![bulk(&b), Value::Array(vec![bulk("4"), bulk("3")])])
    );
    assert_eq!(replies[4], bulk("2"));
    assert_eq!(replies[5], Value::Nil);
    assert!(replies[6].is_error(), "ZMPOP on a list: {:?}", replies[6]);
    assert_eq!(c.call(&["LRANGE", &a, "0", "-1"]), Value::Array(vec![bulk("2")]));
    // An empty source in EXEC: BLMOVE answers a null bulk string.
    c.call(&["MULTI"]);
    c.call(&["BLMOVE", "nokey", &a, "LEFT", "LEFT", "0"]);
    c.call(&["BZPOPMAX", "nokey", "0"]);
    let (raw, _) = c.call_raw(&["EXEC"]);
    assert_eq!(String::from_utf8_lossy(&raw), "*2\r\n$-1\r\n*-1\r\n");
}

#[test]
fn read_only_mode_refuses_blocking_pops() {
    let s = server();
    let mut c = s.conn();
    c.call(&["RPUSH", "l", "x"]);
    let on = s.http("POST", "/admin/read-only", Some(r#"{"enabled":true}"#));
    assert_eq!(on.status, 200, "{}", on.body);
    let readonly = "-READONLY You can't write against a read only replica.\r\n";
    for cmd in [
        vec!["BLPOP", "l", "0"],
        vec!["LMPOP", "1", "l", "LEFT"],
        vec!["ZMPOP", "1", "z", "MIN"],
        vec!["BZPOPMIN", "z", "0"],
        vec!["BLMOVE", "l", "m", "LEFT", "LEFT", "0"],
    ] {
        assert_eq!(String::from_utf8_lossy(&c.call_raw(&cmd).0), readonly, "{cmd:?}");
    }
    assert_eq!(c.call(&["LLEN", "l"]), Value::Int(1));
}

/// A graceful stop while clients block on keys of both shards: the stop
/// ends their waits, closes their connections unanswered, and the server
/// exits at once, not after the drain timeout (30 s). The wait on the connection's own shard ends first,
/// and its shard still answers the other shard's cancellation.
#[test]
fn a_graceful_stop_ends_blocked_pops_on_any_shard_promptly() {
    let mut s = server();
    let (a, b) = two_shard_keys("stopblock");
    // Several connections on each key, so that both shards serve some
    // and some wait on a key of the other shard.
    let port = s.redis_port();
    let waiters: Vec<_> = (0..10)
        .map(|i| {
            let key = if i % 2 == 0 { a.clone() } else { b.clone() };
            std::thread::spawn(move || {
                let mut conn = RespConn::open(port);
                conn.send(&["BLPOP", key.as_str(), "0"]);
                conn.read_reply().map(|(raw, _)| raw)
            })
        })
        .collect();
    wait_blocked(&s, 10);
    let asked = Instant::now();
    s.signal("TERM");
    let status = s.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", s.output());
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "the stop waited {:?} for blocked clients\n{}",
        asked.elapsed(),
        s.output()
    );
    assert!(
        !s.output().contains("drain timeout passed"),
        "a shard waited out the drain timeout\n{}",
        s.output()
    );
    for w in waiters {
        // As Redis at SHUTDOWN: the connection closes with no reply (a
        // nil would tell the client its timeout of 0 ran out).
        let read = w.join().expect("waiter thread");
        assert!(read.is_err(), "a blocked client was answered {read:?}");
    }
}
