//! Every Redis command family through `redis-cli`, against a real
//! `lumadb start` with several shards, so keys spread over shards.

use std::io::Read;
use std::time::{Duration, Instant};

use lumadb_tests::resp::{RespConn, Value};
use lumadb_tests::server::{eventually, keys_on_shard, LumaServer, ServerOptions};

/// Two shards: `lumadb start` runs one shard per CPU, and CI machines may
/// have only two.
const SHARDS: usize = 2;

fn server() -> LumaServer {
    LumaServer::start(ServerOptions::default().shards(SHARDS))
}

/// `redis-cli` with `line` split on spaces; the output, trimmed.
fn c(s: &LumaServer, line: &str) -> String {
    let args: Vec<&str> = line.split(' ').filter(|a| !a.is_empty()).collect();
    s.cli(&args).trim_end().to_string()
}

/// Asserts that `line` prints `want`.
#[track_caller]
fn check(s: &LumaServer, line: &str, want: &str) {
    let got = c(s, line);
    assert_eq!(got, want, "redis-cli {line}\n--- server output:\n{}", s.output());
}

/// The output lines of `line`, sorted (for replies in no fixed order).
fn sorted_lines(s: &LumaServer, line: &str) -> Vec<String> {
    let mut v: Vec<String> = c(s, line)
        .lines()
        .map(|l| l.split_once(") ").map_or(l, |(_, r)| r).to_string())
        .collect();
    v.sort();
    v
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn strings_with_set_options_and_ttls() {
    let s = server();
    check(&s, "SET s1 hello", "OK");
    check(&s, "GET s1", "\"hello\"");
    check(&s, "GET missing", "(nil)");
    check(&s, "SET s1 other NX", "(nil)");
    check(&s, "SET s1 world XX", "OK");
    check(&s, "SET s2 x XX", "(nil)");
    check(&s, "SET s1 newer GET", "\"world\"");
    check(&s, "SET s1 v EX 100", "OK");
    let ttl = c(&s, "TTL s1");
    assert!(ttl == "(integer) 100" || ttl == "(integer) 99", "{ttl}");
    check(&s, "SET s1 v2 KEEPTTL", "OK");
    let ttl = c(&s, "PTTL s1");
    let ms: i64 = ttl.trim_start_matches("(integer) ").parse().expect(&ttl);
    assert!(ms > 90_000 && ms <= 100_000, "PTTL after KEEPTTL: {ttl}");
    check(&s, "SET s1 v3", "OK");
    check(&s, "TTL s1", "(integer) -1");
    check(&s, "SET s3 v PX 50000", "OK");
    check(&s, "SET s3 v EX 0", "(error) ERR invalid expire time in 'set' command");
    check(&s, "SET s3 v NX XX", "(error) ERR syntax error");
    check(&s, "SETNX s4 a", "(integer) 1");
    check(&s, "SETNX s4 b", "(integer) 0");
    check(&s, "SETEX s5 100 v", "OK");
    check(&s, "PSETEX s6 100000 v", "OK");
    check(&s, "INCR n", "(integer) 1");
    check(&s, "INCRBY n 41", "(integer) 42");
    check(&s, "DECR n", "(integer) 41");
    check(&s, "DECRBY n 40", "(integer) 1");
    check(&s, "INCRBYFLOAT f 1.5", "\"1.5\"");
    check(&s, "INCR s1", "(error) ERR value is not an integer or out of range");
    check(&s, "APPEND a1 abc", "(integer) 3");
    check(&s, "APPEND a1 def", "(integer) 6");
    check(&s, "STRLEN a1", "(integer) 6");
    check(&s, "GETRANGE a1 1 3", "\"bcd\"");
    check(&s, "SETRANGE a1 1 XY", "(integer) 6");
    check(&s, "GET a1", "\"aXYdef\"");
    check(&s, "GETDEL a1", "\"aXYdef\"");
    check(&s, "EXISTS a1", "(integer) 0");
    check(&s, "GETEX s4 EX 50", "\"a\"");
    check(&s, "TTL s4", "(integer) 50");
    check(&s, "GETSET s4 z", "\"a\"");
    // MSET/MGET over keys on every shard.
    let keys: Vec<String> = (0..SHARDS).flat_map(|sh| keys_on_shard("m", sh, SHARDS, 2)).collect();
    let mset: Vec<String> = keys.iter().flat_map(|k| [k.clone(), format!("v-{k}")]).collect();
    check(&s, &format!("MSET {}", mset.join(" ")), "OK");
    let want: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{}) \"v-{k}\"", i + 1))
        .collect();
    check(&s, &format!("MGET {}", keys.join(" ")), &want.join("\n"));
    check(&s, &format!("MSETNX {} x fresh 1", keys[0]), "(integer) 0");
    check(&s, "EXISTS fresh", "(integer) 0");
    check(&s, "MSETNX fresh 1 fresh2 2", "(integer) 1");
}

#[test]
fn keys_expire_type_rename_scan_flush() {
    let s = server();
    let a = keys_on_shard("ka", 0, SHARDS, 1).remove(0);
    let b = keys_on_shard("kb", 1, SHARDS, 1).remove(0);
    check(&s, &format!("SET {a} 1"), "OK");
    check(&s, &format!("EXPIRE {a} 100"), "(integer) 1");
    check(&s, &format!("TTL {a}"), "(integer) 100");
    check(&s, &format!("PERSIST {a}"), "(integer) 1");
    check(&s, &format!("TTL {a}"), "(integer) -1");
    check(&s, "TTL nokey", "(integer) -2");
    check(&s, "EXPIRE nokey 10", "(integer) 0");
    check(&s, &format!("PEXPIRE {a} 100000"), "(integer) 1");
    check(&s, &format!("TYPE {a}"), "string");
    check(&s, "RPUSH klist x", "(integer) 1");
    check(&s, "TYPE klist", "list");
    check(&s, "HSET khash f v", "(integer) 1");
    check(&s, "TYPE khash", "hash");
    check(&s, "SADD kset m", "(integer) 1");
    check(&s, "TYPE kset", "set");
    check(&s, "ZADD kzset 1 m", "(integer) 1");
    check(&s, "TYPE kzset", "zset");
    check(&s, "TYPE nokey", "none");
    // RENAME across shards keeps the value and the TTL.
    check(&s, &format!("RENAME {a} {b}"), "OK");
    check(&s, &format!("GET {b}"), "\"1\"");
    check(&s, &format!("EXISTS {a}"), "(integer) 0");
    let ttl = c(&s, &format!("TTL {b}"));
    assert!(
        ttl == "(integer) 100" || ttl == "(integer) 99",
        "TTL after RENAME: {ttl}"
    );
    check(&s, "RENAME nokey x", "(error) ERR no such key");
    check(&s, &format!("RENAMENX {b} klist"), "(integer) 0");
    check(&s, "DBSIZE", "(integer) 5");
    assert_eq!(
        sorted_lines(&s, "KEYS *"),
        strs(&[&format!("\"{b}\""), "\"khash\"", "\"klist\"", "\"kset\"", "\"kzset\""])
    );
    assert_eq!(sorted_lines(&s, "KEYS k?et"), strs(&["\"kset\""]));
    // SCAN: a full iteration with MATCH, COUNT and TYPE, following cursors.
    for i in 0..40 {
        check(&s, &format!("SET scan:{i} v"), "OK");
    }
    let scan_all = |extra: &str| -> Vec<String> {
        let mut cursor = "0".to_string();
        let mut seen = Vec::new();
        for _ in 0..1000 {
            let mut args = vec!["SCAN", cursor.as_str()];
            args.extend(extra.split(' ').filter(|x| !x.is_empty()));
            let out = s.cli(&args);
            // Each redis-cli run is a new connection: a cursor must stay
            // valid across connections, as Redis's are.
            assert!(!out.starts_with("(error)"), "SCAN {cursor} {extra}: {out}");
            let mut lines = out.lines();
            let first = lines.next().expect("cursor line");
            cursor = first.trim_start_matches("1) ").trim_matches('"').to_string();
            for l in lines {
                let l = l.trim_start_matches("2) ").trim();
                if l == "(empty array)" {
                    continue;
                }
                let name = l.split_once(") ").map_or(l, |(_, r)| r).trim_matches('"');
                seen.push(name.to_string());
            }
            if cursor == "0" {
                seen.sort();
                seen.dedup();
                return seen;
            }
        }
        panic!("SCAN did not finish");
    };
    let mut want: Vec<String> = (0..40).map(|i| format!("scan:{i}")).collect();
    want.sort();
    assert_eq!(scan_all("MATCH scan:* COUNT 7"), want);
    assert_eq!(scan_all("TYPE list"), strs(&["klist"]));
    assert_eq!(scan_all("MATCH k* TYPE hash"), strs(&["khash"]));
    check(&s, "DBSIZE", "(integer) 45");
    let random = c(&s, "RANDOMKEY");
    assert!(random.starts_with('"'), "RANDOMKEY: {random}");
    check(&s, &format!("EXISTS {}", random.trim_matches('"')), "(integer) 1");
    check(&s, &format!("DEL {b} klist nokey"), "(integer) 2");
    check(&s, "UNLINK khash", "(integer) 1");
    check(&s, "FLUSHDB", "OK");
    check(&s, "DBSIZE", "(integer) 0");
    check(&s, "RANDOMKEY", "(nil)");
    check(&s, "KEYS *", "(empty array)");
}

#[test]
fn hashes() {
    let s = server();
    check(&s, "HSET h f1 v1 f2 v2", "(integer) 2");
    check(&s, "HSET h f1 v9", "(integer) 0");
    check(&s, "HGET h f1", "\"v9\"");
    check(&s, "HGET h nof", "(nil)");
    check(&s, "HMGET h f1 nof f2", "1) \"v9\"\n2) (nil)\n3) \"v2\"");
    check(&s, "HLEN h", "(integer) 2");
    check(&s, "HEXISTS h f2", "(integer) 1");
    check(&s, "HSETNX h f2 x", "(integer) 0");
    check(&s, "HINCRBY h n 5", "(integer) 5");
    check(&s, "HINCRBYFLOAT h fl 0.5", "\"0.5\"");
    check(&s, "HINCRBY h f1 1", "(error) ERR hash value is not an integer");
    check(&s, "HSTRLEN h f1", "(integer) 2");
    let all = sorted_lines(&s, "HGETALL h");
    assert_eq!(all.len(), 8, "{all:?}");
    assert_eq!(
        sorted_lines(&s, "HKEYS h"),
        strs(&["\"f1\"", "\"f2\"", "\"fl\"", "\"n\""])
    );
    assert_eq!(
        sorted_lines(&s, "HVALS h"),
        strs(&["\"0.5\"", "\"5\"", "\"v2\"", "\"v9\""])
    );
    check(&s, "HDEL h f1 nof", "(integer) 1");
    check(&s, "HMSET h a 1 b 2", "OK");
    check(&s, "HLEN h", "(integer) 5");
    check(&s, "SET str x", "OK");
    check(
        &s,
        "HGET str f",
        "(error) WRONGTYPE Operation against a key holding the wrong kind of value",
    );
    let field = c(&s, "HRANDFIELD h");
    assert!(field.starts_with('"'), "HRANDFIELD: {field}");
    check(&s, "DEL h", "(integer) 1");
    check(&s, "HGETALL h", "(empty array)");
}

#[test]
fn lists_and_blocking_pops() {
    let s = server();
    // A blocking pop on another type is WRONGTYPE, at once, as in Redis.
    check(&s, "SET notlist 1", "OK");
    check(
        &s,
        "BLPOP notlist 0",
        "(error) WRONGTYPE Operation against a key holding the wrong kind of value",
    );
    // Inside MULTI it never blocks, and the key stays usable afterwards.
    let out = s.cli_script("MULTI\nBLPOP bk 2\nEXEC\nLPUSH bk v\nLLEN bk\n");
    assert!(
        out.ends_with("1\n1\n") || out.ends_with("(integer) 1\n(integer) 1\n"),
        "{out:?}"
    );
    check(&s, "RPUSH l a b c", "(integer) 3");
    check(&s, "LPUSH l z", "(integer) 4");
    check(&s, "LRANGE l 0 -1", "1) \"z\"\n2) \"a\"\n3) \"b\"\n4) \"c\"");
    check(&s, "LLEN l", "(integer) 4");
    check(&s, "LINDEX l -1", "\"c\"");
    check(&s, "LSET l 1 A", "OK");
    check(&s, "LSET l 10 A", "(error) ERR index out of range");
    check(&s, "LINSERT l BEFORE b ins", "(integer) 5");
    check(&s, "LPOS l b", "(integer) 3");
    check(&s, "RPUSH l b b", "(integer) 7");
    check(&s, "LREM l 2 b", "(integer) 2");
    check(
        &s,
        "LRANGE l 0 -1",
        "1) \"z\"\n2) \"A\"\n3) \"ins\"\n4) \"c\"\n5) \"b\"",
    );
    check(&s, "LTRIM l 1 -2", "OK");
    check(&s, "LRANGE l 0 -1", "1) \"A\"\n2) \"ins\"\n3) \"c\"");
    check(&s, "LPOP l", "\"A\"");
    check(&s, "RPOP l 2", "1) \"c\"\n2) \"ins\"");
    check(&s, "EXISTS l", "(integer) 0");
    check(&s, "LPUSHX l x", "(integer) 0");
    // Moves between keys on different shards.
    let src = keys_on_shard("src", 0, SHARDS, 1).remove(0);
    let dst = keys_on_shard("dst", 1, SHARDS, 1).remove(0);
    check(&s, &format!("RPUSH {src} 1 2 3"), "(integer) 3");
    check(&s, &format!("RPOPLPUSH {src} {dst}"), "\"3\"");
    check(&s, &format!("LMOVE {src} {dst} LEFT RIGHT"), "\"1\"");
    check(&s, &format!("LRANGE {dst} 0 -1"), "1) \"3\"\n2) \"1\"");
    // BLPOP: times out with nil, then wakes on another client's LPUSH.
    let t = Instant::now();
    check(&s, "BLPOP empty 0.2", "(nil)");
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "BLPOP returned before its timeout"
    );
    let port = s.redis_port();
    let waiter = std::thread::spawn(move || {
        let mut conn = RespConn::open(port);
        conn.call(&["BLPOP", "wake", "10"])
    });
    // The waiter must be blocked before the push for this to test a wake-up.
    assert!(
        eventually(Duration::from_secs(10), || c(&s, "CLIENT LIST")
            .lines()
            .any(|l| l.contains("cmd=blpop") && l.contains("flags=b "))),
        "the BLPOP client never showed as blocked: {}",
        c(&s, "CLIENT LIST")
    );
    assert!(
        c(&s, "INFO clients").contains("blocked_clients:1"),
        "{}",
        c(&s, "INFO clients")
    );
    check(&s, "LPUSH wake hello", "(integer) 1");
    let got = waiter.join().expect("waiter thread");
    assert_eq!(
        got,
        Value::Array(vec![Value::Bulk(b"wake".to_vec()), Value::Bulk(b"hello".to_vec())])
    );
    check(&s, "EXISTS wake", "(integer) 0");
}

#[test]
fn sets() {
    let s = server();
    let a = keys_on_shard("sa", 0, SHARDS, 1).remove(0);
    let b = keys_on_shard("sb", 1, SHARDS, 1).remove(0);
    let d = keys_on_shard("sd", 0, SHARDS, 2).remove(1);
    check(&s, &format!("SADD {a} 1 2 3 3"), "(integer) 3");
    check(&s, &format!("SADD {b} 2 3 4"), "(integer) 3");
    check(&s, &format!("SCARD {a}"), "(integer) 3");
    check(&s, &format!("SISMEMBER {a} 2"), "(integer) 1");
    check(&s, &format!("SMISMEMBER {a} 1 9"), "1) (integer) 1\n2) (integer) 0");
    assert_eq!(
        sorted_lines(&s, &format!("SMEMBERS {a}")),
        strs(&["\"1\"", "\"2\"", "\"3\""])
    );
    assert_eq!(sorted_lines(&s, &format!("SINTER {a} {b}")), strs(&["\"2\"", "\"3\""]));
    assert_eq!(
        sorted_lines(&s, &format!("SUNION {a} {b}")),
        strs(&["\"1\"", "\"2\"", "\"3\"", "\"4\""])
    );
    assert_eq!(sorted_lines(&s, &format!("SDIFF {a} {b}")), strs(&["\"1\""]));
    check(&s, &format!("SINTERSTORE {d} {a} {b}"), "(integer) 2");
    assert_eq!(sorted_lines(&s, &format!("SMEMBERS {d}")), strs(&["\"2\"", "\"3\""]));
    check(&s, &format!("SMOVE {a} {b} 1"), "(integer) 1");
    check(&s, &format!("SCARD {b}"), "(integer) 4");
    check(&s, &format!("SREM {a} 2 9"), "(integer) 1");
    let popped = c(&s, &format!("SPOP {a}"));
    assert_eq!(popped, "\"3\"");
    check(&s, &format!("EXISTS {a}"), "(integer) 0");
    let r = c(&s, &format!("SRANDMEMBER {b}"));
    assert!(
        ["\"1\"", "\"2\"", "\"3\"", "\"4\""].contains(&r.as_str()),
        "SRANDMEMBER: {r}"
    );
}

#[test]
fn sorted_sets_with_range_forms() {
    let s = server();
    check(&s, "ZADD z 1 a 2 b 3 c 4 d 5 e", "(integer) 5");
    check(&s, "ZADD z XX CH 10 e", "(integer) 1");
    check(&s, "ZADD z NX 0 e", "(integer) 0");
    check(&s, "ZADD z GT 1 e", "(integer) 0");
    check(&s, "ZSCORE z e", "\"10\"");
    check(&s, "ZINCRBY z 0.5 a", "\"1.5\"");
    check(&s, "ZCARD z", "(integer) 5");
    check(&s, "ZRANK z c", "(integer) 2");
    check(&s, "ZREVRANK z c", "(integer) 2");
    check(&s, "ZCOUNT z (1.5 3", "(integer) 2");
    check(
        &s,
        "ZRANGE z 0 1 WITHSCORES",
        "1) \"a\"\n2) \"1.5\"\n3) \"b\"\n4) \"2\"",
    );
    check(&s, "ZRANGE z 2 4 BYSCORE", "1) \"b\"\n2) \"c\"\n3) \"d\"");
    check(&s, "ZRANGE z (2 +inf BYSCORE LIMIT 1 2", "1) \"d\"\n2) \"e\"");
    check(&s, "ZRANGE z +inf -inf BYSCORE REV LIMIT 0 2", "1) \"e\"\n2) \"d\"");
    check(&s, "ZRANGE z 0 0 REV", "1) \"e\"");
    check(&s, "ZRANGEBYSCORE z -inf 2", "1) \"a\"\n2) \"b\"");
    check(&s, "ZREVRANGEBYSCORE z 3 (1.5", "1) \"c\"\n2) \"b\"");
    check(&s, "ZADD lex 0 a 0 b 0 c 0 d", "(integer) 4");
    check(&s, "ZRANGE lex [b (d BYLEX", "1) \"b\"\n2) \"c\"");
    check(&s, "ZRANGE lex + - BYLEX REV LIMIT 1 2", "1) \"c\"\n2) \"b\"");
    check(&s, "ZLEXCOUNT lex - +", "(integer) 4");
    check(&s, "ZRANGEBYLEX lex - [a", "1) \"a\"");
    check(
        &s,
        "ZRANGE lex x y BYLEX",
        "(error) ERR min or max not valid string range item",
    );
    check(&s, "ZRANGE z a b BYSCORE", "(error) ERR min or max is not a float");
    check(&s, "ZREM z a nope", "(integer) 1");
    check(&s, "ZPOPMIN z", "1) \"b\"\n2) \"2\"");
    check(&s, "ZPOPMAX z", "1) \"e\"\n2) \"10\"");
    check(&s, "ZMSCORE z c nope", "1) \"3\"\n2) (nil)");
    check(&s, "ZREMRANGEBYSCORE z 0 3", "(integer) 1");
    check(&s, "ZRANGE z 0 -1 WITHSCORES", "1) \"d\"\n2) \"4\"");
}

#[test]
fn server_commands() {
    let s = server();
    check(&s, "PING", "PONG");
    check(&s, "ECHO hi", "\"hi\"");
    check(&s, "SET k v", "OK");
    let info = c(&s, "INFO");
    for section in ["# Server", "# Clients", "# Keyspace"] {
        assert!(info.contains(section), "INFO lacks {section}:\n{info}");
    }
    let server = c(&s, "INFO server");
    assert!(server.contains("redis_version:"), "{server}");
    assert!(
        !server.contains("# Clients"),
        "INFO server shows other sections:\n{server}"
    );
    let keyspace = c(&s, "INFO keyspace");
    assert!(keyspace.contains("db0:keys=1,"), "{keyspace}");
    let persistence = c(&s, "INFO persistence");
    assert!(persistence.contains("wal_sync_mode:sync"), "{persistence}");
    check(&s, "CONFIG GET maxclients", "1) \"maxclients\"\n2) \"10000\"");
    let id = c(&s, "CLIENT ID");
    assert!(id.starts_with("(integer) "), "{id}");
    let out = s.cli_script("CLIENT SETNAME e2e-client\nCLIENT GETNAME\nCLIENT LIST\n");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("OK"), "{out}");
    assert_eq!(lines.next(), Some("\"e2e-client\""), "{out}");
    // Earlier redis-cli connections may still be listed for a moment
    // after they close; this connection's line is the one with its name.
    let list = lines.find(|l| l.contains("name=e2e-client")).unwrap_or_default();
    assert!(list.contains("name=e2e-client"), "CLIENT LIST: {out}");
    assert!(list.contains("cmd=client|list"), "CLIENT LIST: {out}");
    check(&s, "CLIENT GETNAME", "(nil)");
    let count = c(&s, "COMMAND COUNT");
    let n: i64 = count.trim_start_matches("(integer) ").parse().expect(&count);
    assert!(n > 100, "COMMAND COUNT: {count}");
    let info = c(&s, "COMMAND INFO get");
    assert!(
        info.contains("\"get\"") && info.contains("(integer) 2"),
        "COMMAND INFO get:\n{info}"
    );
    let docs = c(&s, "COMMAND DOCS get");
    assert!(docs.contains("\"summary\""), "COMMAND DOCS get:\n{docs}");
    let hello = c(&s, "HELLO 3");
    assert!(hello.contains("\"proto\" => (integer) 3"), "HELLO 3:\n{hello}");
    check(&s, "SELECT 0", "OK");
    check(&s, "SELECT 1", "(error) ERR DB index is out of range");
    check(&s, "DBSIZE", "(integer) 1");
}

#[test]
fn pipelined_commands_in_one_write() {
    let s = server();
    let mut conn = s.conn();
    let n = 2000;
    let mut bytes = Vec::new();
    for i in 0..n {
        bytes.extend(lumadb_tests::resp::encode(&["SET", &format!("p{i}"), &i.to_string()]));
        bytes.extend(lumadb_tests::resp::encode(&["INCR", "pcount"]));
        bytes.extend(lumadb_tests::resp::encode(&["GET", &format!("p{i}")]));
    }
    conn.send_raw(&bytes);
    for i in 0..n {
        assert_eq!(conn.read_reply().expect("SET reply").0, b"+OK\r\n", "SET p{i}");
        assert_eq!(conn.read_reply().expect("INCR reply").1, Value::Int(i + 1), "INCR #{i}");
        assert_eq!(
            conn.read_reply().expect("GET reply").1,
            Value::Bulk(i.to_string().into_bytes()),
            "GET p{i}"
        );
    }
    check(&s, "DBSIZE", &format!("(integer) {}", n + 1));
    // redis-cli --pipe: the mass-insertion mode.
    let mut input = Vec::new();
    for i in 0..500 {
        input.extend(lumadb_tests::resp::encode(&["RPUSH", "piped", &i.to_string()]));
    }
    let mut child = std::process::Command::new("timeout")
        .args(lumadb_tests::server::CLIENT_TIMEOUT_ARGS)
        .arg("redis-cli")
        .args(["-p", &s.redis_port().to_string(), "--pipe"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli --pipe");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &input).expect("write");
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    assert!(child.wait().expect("wait").success(), "{out}");
    assert!(out.contains("errors: 0, replies: 500"), "redis-cli --pipe: {out}");
    check(&s, "LLEN piped", "(integer) 500");
}

#[test]
fn multi_exec_across_shards_and_watch_abort() {
    let s = server();
    let a = keys_on_shard("ta", 0, SHARDS, 1).remove(0);
    let b = keys_on_shard("tb", 1, SHARDS, 1).remove(0);
    let d = keys_on_shard("td", 1, SHARDS, 2).remove(1);
    let out = s.cli_script(&format!("MULTI\nSET {a} 1\nINCR {b}\nRPUSH {d} x y\nGET {a}\nEXEC\n"));
    assert_eq!(
        out.trim_end(),
        "OK\nQUEUED\nQUEUED\nQUEUED\nQUEUED\n1) OK\n2) (integer) 1\n3) (integer) 2\n4) \"1\"",
        "MULTI/EXEC over both shards"
    );
    // A queued error aborts the whole transaction.
    let out = s.cli_script(&format!("MULTI\nSET {a} 2\nNOSUCHCMD\nEXEC\nGET {a}\n"));
    assert!(out.contains("EXECABORT"), "{out}");
    assert!(
        out.trim_end().ends_with("\"1\""),
        "EXECABORT still ran a command: {out}"
    );
    // WATCH: another client's write aborts EXEC with a nil reply.
    let mut watcher = s.conn();
    assert_eq!(
        watcher.call(&["WATCH", a.as_str(), b.as_str()]),
        Value::Simple(b"OK".to_vec())
    );
    check(&s, &format!("SET {b} changed"), "OK");
    assert_eq!(watcher.call(&["MULTI"]), Value::Simple(b"OK".to_vec()));
    assert_eq!(
        watcher.call(&["SET", a.as_str(), "from-tx"]),
        Value::Simple(b"QUEUED".to_vec())
    );
    assert_eq!(watcher.call(&["EXEC"]), Value::Nil, "EXEC after a watched key changed");
    check(&s, &format!("GET {a}"), "\"1\"");
    // Without interference the same transaction commits.
    assert_eq!(watcher.call(&["WATCH", a.as_str()]), Value::Simple(b"OK".to_vec()));
    watcher.call(&["MULTI"]);
    watcher.call(&["SET", a.as_str(), "from-tx"]);
    assert_eq!(
        watcher.call(&["EXEC"]),
        Value::Array(vec![Value::Simple(b"OK".to_vec())])
    );
    check(&s, &format!("GET {a}"), "\"from-tx\"");
    // As in Redis 7, FLUSHALL aborts the EXEC of a watched key that
    // existed, and not of one that did not.
    let missing = keys_on_shard("tmissing", 1, SHARDS, 1).remove(0);
    for (key, expected) in [
        (missing.as_str(), Value::Array(vec![Value::Simple(b"OK".to_vec())])),
        (a.as_str(), Value::Nil),
    ] {
        assert_eq!(watcher.call(&["WATCH", key]), Value::Simple(b"OK".to_vec()));
        check(&s, "FLUSHALL", "OK");
        watcher.call(&["MULTI"]);
        watcher.call(&["SET", key, "after-flush"]);
        assert_eq!(watcher.call(&["EXEC"]), expected, "EXEC watching {key} over a FLUSHALL");
        check(&s, &format!("SET {a} 1"), "OK");
    }
}

/// WATCH fires for the keys a command changed and no others, as in
/// Redis: DEL of a watched key that does not exist, alongside one that
/// does (same shard, same command), leaves the watch alone; an HSET that
/// only overwrites a field, a DEL that deletes and an expiry set do not.
#[test]
fn watch_fires_only_for_keys_a_command_changed() {
    let s = server();
    let [w, other] = [0, 1].map(|i| keys_on_shard("wk", 0, SHARDS, 2).remove(i));
    let mut watcher = s.conn();
    let mut run = |change: &str| -> Value {
        assert_eq!(watcher.call(&["WATCH", w.as_str()]), Value::Simple(b"OK".to_vec()));
        let mut c = s.conn();
        let args: Vec<&str> = change.split(' ').collect();
        assert!(!c.call(&args).is_error(), "{change}");
        watcher.call(&["MULTI"]);
        watcher.call(&["PING"]);
        watcher.call(&["EXEC"])
    };
    let ran = Value::Array(vec![Value::Simple(b"PONG".to_vec())]);
    assert_eq!(run(&format!("MSET {other} x")), ran, "a write of another key");
    assert_eq!(run(&format!("DEL {other} {w}")), ran, "DEL of a missing watched key");
    assert_eq!(run(&format!("HSET {w} f 1")), Value::Nil, "HSET creating it");
    assert_eq!(run(&format!("HSET {w} f 2")), Value::Nil, "HSET overwriting a field");
    assert_eq!(run(&format!("EXPIRE {w} 1000")), Value::Nil, "EXPIRE");
    assert_eq!(run(&format!("DEL {other} {w}")), Value::Nil, "DEL deleting it");
}

/// CONFIG RESETSTAT starts INFO's counters again from zero on every
/// shard; the Prometheus metrics keep counting.
#[test]
fn config_resetstat_zeroes_info_counters_not_metrics() {
    let s = server();
    for i in 0..50 {
        check(&s, &format!("SET rs{i} v"), "OK");
    }
    let stat = |s: &LumaServer, name: &str| -> u64 {
        c(s, "INFO stats")
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in INFO stats"))
    };
    assert!(stat(&s, "total_commands_processed") >= 50);
    assert!(stat(&s, "total_connections_received") >= 50);
    let requests = |s: &LumaServer| -> f64 {
        s.http("GET", "/metrics", None)
            .body
            .lines()
            .filter(|l| l.starts_with("lumadb_requests_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let before = requests(&s);
    check(&s, "CONFIG RESETSTAT", "OK");
    // Each redis-cli run is one connection: the INFO's own, and the
    // RESETSTAT counted after it ran.
    assert!(stat(&s, "total_commands_processed") <= 2);
    assert!(stat(&s, "total_connections_received") <= 2);
    assert!(requests(&s) >= before, "metrics went backwards");
    check(
        &s,
        "CONFIG RESETSTAT x",
        "(error) ERR wrong number of arguments for 'config|resetstat' command",
    );
}

#[test]
fn interval_mode_writes_behind_and_keeps_data_across_shutdown_and_its_sync() {
    // In `interval` mode a write is answered before it reaches the disk;
    // a graceful stop and the interval's sync each make it durable.
    let mut s = LumaServer::start(ServerOptions::default().shards(2).sync_mode("interval"));
    for i in 0..200 {
        check(&s, &format!("SET w{i} {i}"), "OK");
    }
    check(&s, "RPUSH wl a b c", "(integer) 3");
    let persistence = c(&s, "INFO persistence");
    assert!(
        persistence.contains("wal_sync_mode:interval") && persistence.contains("wal_sync_interval_ms:100"),
        "{persistence}"
    );
    s.stop();
    s.restart();
    check(&s, "DBSIZE", "(integer) 201");
    check(&s, "GET w199", "\"199\"");
    check(&s, "LRANGE wl 0 -1", "1) \"a\"\n2) \"b\"\n3) \"c\"");
    // Written after the restart, then past several 100 ms intervals: a
    // SIGKILL then loses nothing.
    check(&s, "SET late v", "OK");
    std::thread::sleep(Duration::from_millis(1500));
    s.kill9();
    s.restart();
    check(&s, "GET late", "\"v\"");
}

#[test]
fn restart_keeps_data() {
    let mut s = server();
    for i in 0..50 {
        check(&s, &format!("SET r{i} {i}"), "OK");
    }
    check(&s, "HSET rh f v", "(integer) 1");
    check(&s, "RPUSH rl a b", "(integer) 2");
    check(&s, "ZADD rz 1 m", "(integer) 1");
    check(&s, "SADD rs m", "(integer) 1");
    check(&s, "SET rttl v EX 1000", "OK");
    s.stop();
    s.restart();
    check(&s, "DBSIZE", "(integer) 55");
    for i in 0..50 {
        check(&s, &format!("GET r{i}"), &format!("\"{i}\""));
    }
    check(&s, "HGET rh f", "\"v\"");
    check(&s, "LRANGE rl 0 -1", "1) \"a\"\n2) \"b\"");
    check(&s, "ZSCORE rz m", "\"1\"");
    check(&s, "SISMEMBER rs m", "(integer) 1");
    let ttl = c(&s, "TTL rttl");
    let secs: i64 = ttl.trim_start_matches("(integer) ").parse().expect(&ttl);
    assert!((900..=1000).contains(&secs), "TTL after restart: {ttl}");
    // And after a SIGKILL (the default sync mode still acknowledged these).
    check(&s, "SET after-kill yes", "OK");
    s.kill9();
    s.restart();
    check(&s, "GET r7", "\"7\"");
}

#[test]
fn ttls_expire_actively() {
    let s = server();
    for sh in 0..SHARDS {
        for k in keys_on_shard(&format!("exp{sh}-"), sh, SHARDS, 5) {
            check(&s, &format!("SET {k} v PX 100"), "OK");
        }
    }
    check(&s, "SET keep v", "OK");
    // DBSIZE counts keys without touching them: only active expiry makes
    // it drop.
    assert!(
        eventually(Duration::from_secs(10), || c(&s, "DBSIZE") == "(integer) 1"),
        "DBSIZE stayed at {} (expired keys were never removed actively)\n{}",
        c(&s, "DBSIZE"),
        s.output()
    );
    check(&s, "GET keep", "\"v\"");
}

#[test]
fn copy_across_shards_survives_restart() {
    let mut s = server();
    let src = &keys_on_shard("cpsrc", 0, SHARDS, 1)[0];
    let dsts = keys_on_shard("cpdst", 1, SHARDS, 4);
    check(&s, &format!("SET {src} hello EX 1000"), "OK");
    check(&s, &format!("COPY {src} {}", dsts[0]), "(integer) 1");
    check(&s, &format!("COPY {src} {}", dsts[0]), "(integer) 0");
    check(&s, &format!("SET {} other", dsts[1]), "OK");
    check(&s, &format!("COPY {src} {} REPLACE", dsts[1]), "(integer) 1");
    check(
        &s,
        &format!("COPY {src} {} DB 1", dsts[2]),
        "(error) ERR DB index is out of range",
    );
    check(&s, &format!("COPY nokey {}", dsts[2]), "(integer) 0");
    let zsrc = &keys_on_shard("cpz", 0, SHARDS, 1)[0];
    check(&s, &format!("ZADD {zsrc} 1 a 2 b"), "(integer) 2");
    check(&s, &format!("COPY {zsrc} {}", dsts[3]), "(integer) 1");
    // The copy is independent of its source.
    check(&s, &format!("ZADD {zsrc} 3 c"), "(integer) 1");
    let src_ttl = c(&s, &format!("EXPIRETIME {src}"));
    s.stop();
    s.restart();
    check(&s, &format!("GET {}", dsts[0]), "\"hello\"");
    check(&s, &format!("GET {}", dsts[1]), "\"hello\"");
    check(&s, &format!("EXISTS {}", dsts[2]), "(integer) 0");
    // The TTL was copied: the same absolute expiry as the source's.
    check(&s, &format!("EXPIRETIME {}", dsts[0]), &src_ttl);
    check(&s, &format!("EXPIRETIME {}", dsts[1]), &src_ttl);
    check(
        &s,
        &format!("ZRANGE {} 0 -1 WITHSCORES", dsts[3]),
        "1) \"a\"\n2) \"1\"\n3) \"b\"\n4) \"2\"",
    );
    check(&s, &format!("TOUCH {src} {} {} nokey", dsts[0], dsts[3]), "(integer) 3");
}

#[test]
fn zunionstore_across_shards() {
    let s = server();
    let a = &keys_on_shard("zua", 0, SHARDS, 1)[0];
    let b = &keys_on_shard("zub", 1, SHARDS, 1)[0];
    let dst0 = &keys_on_shard("zud", 0, SHARDS, 1)[0];
    let dst1 = &keys_on_shard("zud", 1, SHARDS, 1)[0];
    check(&s, &format!("ZADD {a} 1 x 2 y"), "(integer) 2");
    check(&s, &format!("ZADD {b} 10 y 20 z"), "(integer) 2");
    for dst in [dst0, dst1] {
        check(&s, &format!("ZUNIONSTORE {dst} 2 {a} {b} WEIGHTS 1 2"), "(integer) 3");
        check(
            &s,
            &format!("ZRANGE {dst} 0 -1 WITHSCORES"),
            "1) \"x\"\n2) \"1\"\n3) \"y\"\n4) \"22\"\n5) \"z\"\n6) \"40\"",
        );
    }
    check(
        &s,
        &format!("ZINTERSTORE {dst1} 2 {a} {b} AGGREGATE MAX"),
        "(integer) 1",
    );
    check(&s, &format!("ZRANGE {dst1} 0 -1 WITHSCORES"), "1) \"y\"\n2) \"10\"");
    check(&s, &format!("ZDIFFSTORE {dst0} 2 {b} {a}"), "(integer) 1");
    check(&s, &format!("ZRANGE {dst0} 0 -1"), "1) \"z\"");
    check(&s, &format!("ZINTERCARD 2 {a} {b}"), "(integer) 1");
    check(&s, &format!("ZUNION 2 {a} {b}"), "1) \"x\"\n2) \"y\"\n3) \"z\"");
    // No temporary copy of a gathered input is left behind.
    check(&s, "DBSIZE", "(integer) 4");
}

/// A pipeline longer than one decode batch (1,024 requests), sent in one
/// write, is answered in full: the server runs what it has buffered
/// before waiting for more bytes that the client, waiting for its
/// replies, never sends.
#[test]
fn a_pipeline_longer_than_a_batch_sent_at_once_is_answered_in_full() {
    let s = server();
    let mut c = s.conn();
    c.set_read_timeout(Some(Duration::from_secs(20)));
    let n = 5000;
    let mut frames = Vec::new();
    for i in 0..n {
        frames.extend_from_slice(&lumadb_tests::resp::encode(&[
            "SET",
            &format!("pipe{i}"),
            &i.to_string(),
        ]));
        frames.extend_from_slice(&lumadb_tests::resp::encode(&["GET", &format!("pipe{i}")]));
    }
    c.send_raw(&frames);
    for i in 0..n {
        assert_eq!(
            c.read_reply().expect("SET reply").1,
            Value::Simple(b"OK".to_vec()),
            "SET {i}"
        );
        assert_eq!(
            c.read_reply().expect("GET reply").1,
            Value::Bulk(i.to_string().into_bytes()),
            "GET {i}"
        );
    }
}

#[test]
fn client_list_filters_by_id_and_type() {
    let s = server();
    let mut me = s.conn();
    let mut sub = s.conn();
    let Value::Int(my_id) = me.call(&["CLIENT", "ID"]) else {
        panic!("CLIENT ID")
    };
    let Value::Int(sub_id) = sub.call(&["CLIENT", "ID"]) else {
        panic!("CLIENT ID")
    };
    sub.call(&["SUBSCRIBE", "listch"]);
    let text = |v: Value| {
        String::from_utf8(match v {
            Value::Bulk(b) => b,
            other => panic!("{other:?}"),
        })
        .expect("utf-8")
    };
    let mine = text(me.call(&["CLIENT", "LIST", "ID", &my_id.to_string(), "999999"]));
    assert_eq!(mine.lines().count(), 1, "{mine}");
    assert!(mine.starts_with(&format!("id={my_id} ")), "{mine}");
    let pubsub = text(me.call(&["CLIENT", "LIST", "TYPE", "pubsub"]));
    assert_eq!(pubsub.lines().count(), 1, "{pubsub}");
    assert!(pubsub.starts_with(&format!("id={sub_id} ")), "{pubsub}");
    let normal = text(me.call(&["CLIENT", "LIST", "TYPE", "normal"]));
    assert!(
        normal.contains(&format!("id={my_id} ")) && !normal.contains(&format!("id={sub_id} ")),
        "{normal}"
    );
}

/// FLUSHALL while other clients keep writing, in the default `sync` mode:
/// a write after the flush must not build on a collection's pre-flush
/// metadata (its elements are gone), so every list's LLEN equals what
/// LRANGE returns and DBSIZE equals what SCAN finds, then and after a
/// kill -9.
#[test]
fn flushall_under_concurrent_writes_leaves_consistent_collections() {
    let mut s = LumaServer::start(ServerOptions::default());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let mut c = s.conn();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let key = format!("L:{}", (i * 7 + w) % 40);
                    c.call(&["RPUSH", key.as_str(), "x"]);
                    c.call(&["HSET", format!("H:{}", i % 40).as_str(), format!("f{i}").as_str(), "v"]);
                    i += 1;
                }
            })
        })
        .collect();
    let mut flusher = s.conn();
    for _ in 0..16 {
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(flusher.call(&["FLUSHALL"]), Value::Simple(b"OK".to_vec()));
    }
    std::thread::sleep(Duration::from_millis(60));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    let check = |s: &LumaServer, context: &str| {
        let mut c = s.conn();
        let mut scanned = 0;
        for i in 0..40 {
            for (kind, key) in [("list", format!("L:{i}")), ("hash", format!("H:{i}"))] {
                let (len, items) = if kind == "list" {
                    (
                        c.call(&["LLEN", key.as_str()]),
                        c.call(&["LRANGE", key.as_str(), "0", "-1"]),
                    )
                } else {
                    (c.call(&["HLEN", key.as_str()]), c.call(&["HKEYS", key.as_str()]))
                };
                let Value::Int(len) = len else {
                    panic!("{context}: length of {key}: {len:?}")
                };
                let Value::Array(items) = items else {
                    panic!("{context}: items of {key}: {items:?}")
                };
                assert_eq!(len as usize, items.len(), "{context}: {key}");
                scanned += usize::from(len > 0);
            }
        }
        assert_eq!(c.call(&["DBSIZE"]), Value::Int(scanned as i64), "{context}");
    };
    check(&s, "after the flushes");
    s.kill9_and_restart_on_same_ports();
    check(&s, "after kill -9");
}

/// Sends `cmds` as one pipeline and reads every reply.
fn pipeline(c: &mut RespConn, cmds: &[Vec<String>]) -> Vec<Value> {
    let mut frames = Vec::new();
    for args in cmds {
        frames.extend_from_slice(&lumadb_tests::resp::encode(args));
    }
    c.send_raw(&frames);
    cmds.iter()
        .map(|args| c.read_reply().unwrap_or_else(|e| panic!("reply to {args:?}: {e}")).1)
        .collect()
}

/// Every collection's count equals what reading it whole returns, and
/// DBSIZE equals the keys found.
fn check_collections_consistent(s: &LumaServer, context: &str) {
    let mut c = s.conn();
    let Value::Array(keys) = c.call(&["KEYS", "*"]) else {
        panic!("{context}: KEYS")
    };
    let mut bad = Vec::new();
    for key in &keys {
        let Value::Bulk(key) = key else {
            panic!("{context}: {key:?}")
        };
        let key = String::from_utf8(key.clone()).expect("utf-8 key");
        let (count, read) = match key.as_bytes()[0] {
            b'z' => (
                ["ZCARD", key.as_str()].to_vec(),
                ["ZRANGE", key.as_str(), "0", "-1"].to_vec(),
            ),
            b'h' => (["HLEN", key.as_str()].to_vec(), ["HKEYS", key.as_str()].to_vec()),
            b'l' => (
                ["LLEN", key.as_str()].to_vec(),
                ["LRANGE", key.as_str(), "0", "-1"].to_vec(),
            ),
            _ => continue,
        };
        let (Value::Int(n), Value::Array(items)) = (c.call(&count), c.call(&read)) else {
            panic!("{context}: {key}")
        };
        if n as usize != items.len() {
            bad.push(format!("{key}: count {n}, {} read", items.len()));
        }
    }
    assert!(
        bad.is_empty(),
        "{context}: {} inconsistent: {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    assert_eq!(c.call(&["DBSIZE"]), Value::Int(keys.len() as i64), "{context}");
}

/// FLUSHALL while pipelined writers add to collections whose metadata is
/// in on-disk tables (a write then waits on a disk read with its key
/// locked): the flush waits for those writes, and no write after it
/// builds on pre-flush metadata. Counts match contents, then and after a
/// kill -9.
#[test]
fn flushall_under_concurrent_writes_to_collections_on_disk_leaves_them_consistent() {
    let mut s = LumaServer::start(
        ServerOptions::default()
            .shards(SHARDS)
            .config("[memory]\nmemtable_size = \"1MiB\"\n"),
    );
    const KEYS: usize = 300;
    let add = |kind: usize, key: usize, n: u64| -> Vec<String> {
        let m = format!("m{}", n % 1000);
        match kind % 3 {
            0 => vec!["ZADD".into(), format!("z:{key}"), n.to_string(), m],
            1 => vec!["HSET".into(), format!("h:{key}"), m, n.to_string()],
            _ => vec!["RPUSH".into(), format!("l:{key}"), m],
        }
    };
    let mut c = s.conn();
    c.set_read_timeout(Some(Duration::from_secs(60)));
    for round in 0..5 {
        // Collections, then enough other data to push them into tables.
        for kind in 0..3 {
            let cmds: Vec<Vec<String>> = (0..KEYS * 10).map(|i| add(kind, i % KEYS, i as u64)).collect();
            for chunk in cmds.chunks(500) {
                pipeline(&mut c, chunk);
            }
        }
        let filler = "f".repeat(1000);
        let cmds: Vec<Vec<String>> = (0..3000)
            .map(|i| vec!["SET".into(), format!("fill:{i}"), filler.clone()])
            .collect();
        for chunk in cmds.chunks(500) {
            pipeline(&mut c, chunk);
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers: Vec<_> = (0..5)
            .map(|w| {
                let mut c = s.conn();
                c.set_read_timeout(Some(Duration::from_secs(60)));
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut n = w as u64 * 1_000_003;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let cmds: Vec<Vec<String>> = (0..50)
                            .map(|_| {
                                n += 7919;
                                if w == 4 {
                                    // Keeps the memtable flushing meanwhile.
                                    vec!["SET".into(), format!("fill:{}", n % 5000), "f".repeat(1000)]
                                } else {
                                    add(n as usize / 7, n as usize % KEYS, n)
                                }
                            })
                            .collect();
                        pipeline(&mut c, &cmds);
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(c.call(&["FLUSHALL"]), Value::Simple(b"OK".to_vec()), "round {round}");
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for w in writers {
            w.join().expect("writer");
        }
        check_collections_consistent(&s, &format!("round {round}"));
    }
    s.kill9_and_restart_on_same_ports();
    check_collections_consistent(&s, "after kill -9");
}

/// EXEC runs every command at one time (as Redis): a key whose TTL runs
/// out while a transaction is busy with slow commands is alive, or gone,
/// for all of it, on one shard or across shards.
#[test]
fn a_key_does_not_expire_halfway_through_exec() {
    let s = server();
    let mut c = s.conn();
    c.set_read_timeout(Some(Duration::from_secs(30)));
    let big: Vec<String> = (0..50_000).map(|i| i.to_string()).collect();
    for chunk in big.chunks(5_000) {
        let mut args = vec!["RPUSH", "ttl-big"];
        args.extend(chunk.iter().map(String::as_str));
        c.call(&args);
    }
    let mut inconsistent = Vec::new();
    for round in 0..10 {
        c.call(&["DEL", "ttl-k"]);
        c.call(&["RPUSH", "ttl-k", "a", "b", "c"]);
        c.call(&["PEXPIRE", "ttl-k", "20"]);
        std::thread::sleep(Duration::from_millis(15));
        let mut cmds: Vec<Vec<String>> = vec![vec!["MULTI".into()]];
        let words = |line: &str| line.split(' ').map(String::from).collect::<Vec<String>>();
        cmds.push(words("EXISTS ttl-k"));
        cmds.push(words("LLEN ttl-k"));
        for _ in 0..5 {
            cmds.push(words("LRANGE ttl-big 0 -1"));
        }
        cmds.push(words("EXISTS ttl-k"));
        cmds.push(words("LLEN ttl-k"));
        cmds.push(words("EXEC"));
        let replies = pipeline(&mut c, &cmds);
        let Some(Value::Array(results)) = replies.last() else {
            panic!("EXEC: {:?}", replies.last())
        };
        let (first, last) = ((&results[0], &results[1]), (&results[7], &results[8]));
        if first != last {
            inconsistent.push(format!("round {round}: before {first:?}, after {last:?}"));
        }
    }
    assert!(inconsistent.is_empty(), "{inconsistent:?}");
}

/// A client that writes a long pipeline whole before reading any reply
/// (redis-py's `pipeline().execute()` does) gets every reply: the server
/// goes on reading while its replies wait to be sent, as Redis does,
/// instead of both sides waiting on full socket buffers.
#[test]
fn a_pipeline_written_whole_before_any_reply_is_read_completes() {
    let s = server();
    let mut c = s.conn();
    let value = "v".repeat(100);
    // Long key names: the requests alone (200,000 of them, 34 MB) must
    // outgrow every socket buffer between the two sides.
    let key = |i: usize| format!("bp:{}:{i:04}", "k".repeat(140));
    let keys: Vec<Vec<String>> = (0..1000).map(|i| vec!["SET".into(), key(i), value.clone()]).collect();
    pipeline(&mut c, &keys);
    let n = 200_000;
    let mut frames = Vec::new();
    for i in 0..n {
        frames.extend_from_slice(&lumadb_tests::resp::encode(&["GET", &key(i % 1000)]));
    }
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", s.redis_port())).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    stream
        .set_write_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    // All of it first, no reply read meanwhile.
    std::io::Write::write_all(&mut stream, &frames).expect("the server stopped reading the pipeline");
    // Every reply is `$100\r\n` + 100 bytes + `\r\n`.
    let want = n * (6 + 100 + 2);
    assert_eq!(lumadb_tests::resp::read_count(&mut stream, 0, want), want);
}

/// KEYS and DBSIZE never see a transaction half done (as Redis, where
/// EXEC runs whole): they wait for the transactions in flight on each
/// shard. (A SCAN step waits the same way; a whole SCAN may see part of
/// a transaction that ends between its steps, as in Redis.)
#[test]
fn keyless_reads_never_see_a_transaction_half_done() {
    use std::io::Write;
    let s = server();
    let n = 20_000;
    let value = "x".repeat(500);
    let mut frames = lumadb_tests::resp::encode(&["MULTI"]);
    for i in 0..n {
        frames.extend_from_slice(&lumadb_tests::resp::encode(&["SET", &format!("iso:k{i}"), &value]));
    }
    frames.extend_from_slice(&lumadb_tests::resp::encode(&["EXEC"]));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        let mut c = s.conn();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                match c.call(&["DBSIZE"]) {
                    Value::Int(k) => seen.push(("DBSIZE", k as usize)),
                    other => panic!("DBSIZE: {other:?}"),
                }
                match c.call(&["KEYS", "iso:*"]) {
                    Value::Array(keys) => seen.push(("KEYS", keys.len())),
                    other => panic!("KEYS: {other:?}"),
                }
            }
            seen
        })
    };
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", s.redis_port())).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    stream.write_all(&frames).expect("write");
    // "+OK", 20,000 "+QUEUED", then the EXEC's array of 20,000 "+OK".
    let want = 5 + n * 9 + format!("*{n}\r\n").len() + n * 5;
    assert_eq!(lumadb_tests::resp::read_count(&mut stream, 0, want), want);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.join().expect("reader");
    assert!(!seen.is_empty());
    for (what, k) in seen {
        assert!(k == 0 || k == n, "{what} saw {k} of the transaction's {n} keys");
    }
}

/// A transaction's writes on a shard reach the log as one batch when it
/// ends, so a kill -9 while a long EXEC runs keeps all of it or none of it
/// (as Redis, which drops an unfinished MULTI block from its AOF).
#[test]
fn a_kill_9_during_exec_keeps_all_of_it_or_none() {
    use std::io::Write;
    let mut s = LumaServer::start(ServerOptions::default().shards(1).sync_mode("sync"));
    let n = 20_000;
    let value = "x".repeat(2000);
    for (round, delay_ms) in [30u64, 120, 250, 400].into_iter().enumerate() {
        let mut frames = lumadb_tests::resp::encode(&["MULTI"]);
        for i in 0..n {
            frames.extend_from_slice(&lumadb_tests::resp::encode(&["SET", &format!("r{round}:k{i}"), &value]));
        }
        frames.extend_from_slice(&lumadb_tests::resp::encode(&["EXEC"]));
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", s.redis_port())).expect("connect");
        let writer = std::thread::spawn(move || {
            let _ = stream.write_all(&frames);
            stream
        });
        std::thread::sleep(Duration::from_millis(delay_ms));
        s.kill9_and_restart_on_same_ports();
        drop(writer.join());
        let mut c = s.conn();
        let keys = match c.call(&["KEYS", &format!("r{round}:*")]) {
            Value::Array(keys) => keys.len(),
            other => panic!("KEYS: {other:?}"),
        };
        assert!(
            keys == 0 || keys == n,
            "round {round} (kill after {delay_ms} ms): {keys} of the transaction's {n} keys survived"
        );
    }
}

/// A transaction's writes are made durable once, when it ends, and its
/// EXEC is answered only after that: in `sync` mode every write of an
/// answered EXEC survives a kill -9, on every shard it touched.
#[test]
fn an_answered_exec_survives_kill_9_in_sync_mode() {
    let mut s = LumaServer::start(ServerOptions::default().shards(SHARDS).sync_mode("sync"));
    let mut c = s.conn();
    let mut cmds: Vec<Vec<String>> = vec![vec!["MULTI".into()]];
    for i in 0..2000 {
        cmds.push(vec!["SET".into(), format!("txk:{i}"), format!("v{i}")]);
    }
    cmds.push(vec!["RPUSH".into(), "txlist".into(), "a".into(), "b".into()]);
    cmds.push(vec!["EXEC".into()]);
    let replies = pipeline(&mut c, &cmds);
    let Some(Value::Array(results)) = replies.last() else {
        panic!("EXEC: {:?}", replies.last())
    };
    assert_eq!(results.len(), 2001);
    assert!(results[..2000].iter().all(|r| *r == Value::Simple(b"OK".to_vec())));
    assert_eq!(results[2000], Value::Int(2));
    s.kill9_and_restart_on_same_ports();
    let mut c = s.conn();
    assert_eq!(c.call(&["DBSIZE"]), Value::Int(2001));
    for i in (0..2000).step_by(97) {
        assert_eq!(
            c.call(&["GET", &format!("txk:{i}")]),
            Value::Bulk(format!("v{i}").into_bytes())
        );
    }
    assert_eq!(c.call(&["LLEN", "txlist"]), Value::Int(2));
}

/// The replies before a blocking command in one pipeline reach the client
/// while the command waits, as with Redis: here the PONG arrives while
/// BLPOP blocks with no timeout, and the pop answers once another client
/// pushes.
#[test]
fn replies_before_a_blocking_command_in_a_pipeline_arrive_while_it_waits() {
    let s = server();
    let mut c = s.conn();
    c.set_read_timeout(Some(Duration::from_secs(10)));
    let mut frames = lumadb_tests::resp::encode(&["PING"]);
    frames.extend_from_slice(&lumadb_tests::resp::encode(&["BLPOP", "bl-pipe", "0"]));
    c.send_raw(&frames);
    let (_, first) = c.read_reply().expect("PONG while BLPOP waits");
    assert_eq!(first, Value::Simple(b"PONG".to_vec()));
    s.conn().call(&["RPUSH", "bl-pipe", "x"]);
    let (_, popped) = c.read_reply().expect("BLPOP reply");
    assert_eq!(
        popped,
        Value::Array(vec![Value::Bulk(b"bl-pipe".to_vec()), Value::Bulk(b"x".to_vec())])
    );
}
