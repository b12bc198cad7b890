//! Pub/Sub over two shards with real clients: redis-py's `pubsub()` API
//! (the assertions run in Python) and `redis-cli subscribe`.
//!
//! Connections land on a shard chosen by the kernel (`SO_REUSEPORT`), so
//! the scripts open clients until they hold one on each shard, read from
//! CLIENT LIST's `shard=` field, and check deliveries across them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lumadb_tests::server::{LumaServer, ServerOptions};

const SCRIPT: &str = r#"
import socket
import sys
import time
import redis

port = int(sys.argv[1])
r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
DEADLINE = 30.0
# A redis.Redis closes its pool's connections, its pubsub's included, when
# it is collected: keep every client alive.
keep = []

def shard_of(name):
    for c in r.client_list():
        if c.get("name") == name:
            return int(c["shard"])
    raise AssertionError(f"no client named {name}")

def eventually(cond, what):
    end = time.time() + DEADLINE
    while time.time() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")

def next_message(p):
    end = time.time() + DEADLINE
    while time.time() < end:
        m = p.get_message(ignore_subscribe_messages=True, timeout=1.0)
        if m is not None:
            return m
    raise AssertionError("no message arrived")

def confirmations(p, n):
    got = []
    end = time.time() + DEADLINE
    while len(got) < n and time.time() < end:
        m = p.get_message(timeout=1.0)
        if m is not None:
            got.append(m)
    assert len(got) == n, got
    return got

# Subscribers until both shards hold at least one.
subs = {}
i = 0
while len(subs) < 2 or min(len(v) for v in subs.values()) < 1:
    assert i < 64, "connections never reached both shards"
    name = f"sub{i}"
    c = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, client_name=name)
    keep.append(c)
    p = c.pubsub()
    p.subscribe("news")
    assert confirmations(p, 1) == [{"type": "subscribe", "pattern": None, "channel": "news", "data": 1}]
    subs.setdefault(shard_of(name), []).append(p)
    i += 1
nsubs = sum(len(v) for v in subs.values())
all_subs = [p for v in subs.values() for p in v]

# Publishers on each shard.
pubs = {}
i = 0
while len(pubs) < 2:
    assert i < 64, "publishers never reached both shards"
    name = f"pub{i}"
    c = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, client_name=name, single_connection_client=True)
    c.ping()
    keep.append(c)
    pubs.setdefault(shard_of(name), c)
    i += 1

# Every subscriber, whichever shard, gets what either shard publishes;
# PUBLISH counts the receivers of the whole server.
for shard, pub in sorted(pubs.items()):
    assert pub.publish("news", f"from {shard}") == nsubs
    for p in all_subs:
        m = next_message(p)
        assert m == {"type": "message", "pattern": None, "channel": "news", "data": f"from {shard}"}, m
assert r.publish("nobody", "x") == 0

# Introspection gathered over the shards.
assert r.pubsub_numsub("news", "nobody") == [("news", nsubs), ("nobody", 0)]
assert r.pubsub_channels() == ["news"]
assert r.pubsub_channels("ne*") == ["news"]
assert r.pubsub_channels("x*") == []
info = r.info("stats")
assert info["pubsub_channels"] == 1 and info["pubsub_patterns"] == 0, info
line = [c for c in r.client_list() if c["name"] == "sub0"][0]
assert line["sub"] == "1" and line["psub"] == "0" and "P" in line["flags"], line

# Patterns: one subscriber per shard on the same pattern counts once in
# NUMPAT; a client on both the channel and a matching pattern gets both.
p0, p1 = subs[0][0], subs[1][0]
p0.psubscribe("n*")
p1.psubscribe("n*")
assert confirmations(p0, 1)[0] == {"type": "psubscribe", "pattern": None, "channel": "n*", "data": 2}
confirmations(p1, 1)
assert r.pubsub_numpat() == 1
assert r.info("stats")["pubsub_patterns"] == 1
assert pubs[1].publish("news", "both") == nsubs + 2
assert next_message(p0) == {"type": "message", "pattern": None, "channel": "news", "data": "both"}
assert next_message(p0) == {"type": "pmessage", "pattern": "n*", "channel": "news", "data": "both"}
assert pubs[0].publish("nothing-else", "p") == 2
assert next_message(p1) == {"type": "message", "pattern": None, "channel": "news", "data": "both"}
assert next_message(p1) == {"type": "pmessage", "pattern": "n*", "channel": "news", "data": "both"}
assert next_message(p1) == {"type": "pmessage", "pattern": "n*", "channel": "nothing-else", "data": "p"}
for p in all_subs:
    while p.get_message(timeout=0.2) is not None:
        pass
p0.punsubscribe()
assert confirmations(p0, 1)[0]["type"] == "punsubscribe"
eventually(lambda: r.pubsub_numpat() == 1, "NUMPAT after one PUNSUBSCRIBE")

# Unsubscribing and disconnecting both drop the subscriber everywhere.
p0.unsubscribe("news")
assert confirmations(p0, 1)[0] == {"type": "unsubscribe", "pattern": None, "channel": "news", "data": 0}
assert r.pubsub_numsub("news") == [("news", nsubs - 1)]
p1.close()
eventually(lambda: r.pubsub_numsub("news") == [("news", nsubs - 2)], "NUMSUB after a subscriber left")
eventually(lambda: r.pubsub_numpat() == 0, "NUMPAT after the last pattern subscriber left")
assert pubs[0].publish("news", "after") == nsubs - 2

# Many messages, pipelined, arrive in order on the other shard.
src = pubs[0]
keep.append(redis.Redis(host="127.0.0.1", port=port, decode_responses=True))
dst = keep[-1].pubsub()
dst.subscribe("seq")
confirmations(dst, 1)
with src.pipeline(transaction=False) as pl:
    for k in range(3000):
        pl.publish("seq", str(k))
    assert pl.execute() == [1] * 3000
for k in range(3000):
    m = next_message(dst)
    assert m["data"] == str(k), (k, m)

# RESP3: messages are pushes, and ordinary commands are allowed.
r3 = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, protocol=3)
p3 = r3.pubsub()
p3.subscribe("r3")
confirmations(p3, 1)
assert r.publish("r3", "pushed") == 1
assert next_message(p3) == {"type": "message", "pattern": None, "channel": "r3", "data": "pushed"}

# RESP2 subscribed mode refuses other commands with Redis's error.
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$1\r\nq\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n")
want = (b"*3\r\n$9\r\nsubscribe\r\n$1\r\nq\r\n:1\r\n"
        b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
        b"*2\r\n$4\r\npong\r\n$0\r\n\r\n")
got = b""
s.settimeout(DEADLINE)
while len(got) < len(want):
    chunk = s.recv(65536)
    assert chunk, got
    got += chunk
assert got == want, got
assert r.pubsub_numsub("q") == [("q", 1)]
s.close()
eventually(lambda: r.pubsub_numsub("q") == [("q", 0)], "cleanup of a disconnected subscriber")

# A subscriber that never reads is disconnected past the 32 MB bound
# instead of growing the server's memory.
slow = socket.create_connection(("127.0.0.1", port))
slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
slow.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nslow\r\n")
eventually(lambda: r.pubsub_numsub("slow") == [("slow", 1)], "the slow subscriber")
big = "x" * (1 << 20)
sent = 0
while r.pubsub_numsub("slow") == [("slow", 1)]:
    assert sent < 512, "the slow subscriber was never disconnected"
    r.publish("slow", big)
    sent += 1
assert sent >= 16, sent
assert r.ping() is True
print("pubsub: ok")
"#;

#[test]
fn redis_py_pubsub_across_shards() {
    let s = LumaServer::start(ServerOptions::default().shards(2));
    s.run_python(SCRIPT, "pubsub: ok");
}

/// `redis-cli subscribe` prints what other connections publish.
#[test]
fn redis_cli_subscribe_prints_messages() {
    let s = LumaServer::start(ServerOptions::default().shards(2));
    let mut child = Command::new("timeout")
        .args(lumadb_tests::server::CLIENT_TIMEOUT_ARGS)
        .arg("redis-cli")
        .args(["-p", &s.redis_port().to_string(), "subscribe", "clich"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("running redis-cli (scripts/setup.sh installs it)");
    let stdout = child.stdout.take().expect("redis-cli stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Wait until it is subscribed, then publish from fresh connections
    // (whichever shards they land on) until the message is printed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        let n = s.cli(&["PUBLISH", "clich", "hello-cli"]);
        while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(l);
        }
        if n.trim() == "(integer) 1" && lines.iter().any(|l| l == "hello-cli") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines.iter().any(|l| l == "subscribe") && lines.iter().any(|l| l == "hello-cli"),
        "redis-cli printed {lines:?}"
    );
}

/// A subscribed client that writes a long pipeline before reading any
/// reply gets every reply: the server keeps reading while the replies
/// wait to be sent, and messages published meanwhile follow them.
#[test]
fn a_subscriber_writing_a_long_pipeline_before_reading_gets_every_reply() {
    use std::io::{Read, Write};
    let s = LumaServer::start(ServerOptions::default().shards(2));
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", s.redis_port())).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    stream
        .set_write_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let payload = "p".repeat(1000);
    let n = 30_000;
    let mut frames = lumadb_tests::resp::encode(&["SUBSCRIBE", "subpipe"]);
    for _ in 0..n {
        frames.extend_from_slice(&lumadb_tests::resp::encode(&["PING", &payload]));
    }
    // 30 MB of requests and 30 MB of replies: more than the socket
    // buffers between the two sides hold.
    stream
        .write_all(&frames)
        .expect("the server stopped reading the pipeline");
    let subscribed = b"*3\r\n$9\r\nsubscribe\r\n$7\r\nsubpipe\r\n:1\r\n".to_vec();
    let mut pong = b"*2\r\n$4\r\npong\r\n$1000\r\n".to_vec();
    pong.extend_from_slice(payload.as_bytes());
    pong.extend_from_slice(b"\r\n");
    let want = subscribed.len() + n * pong.len();
    let mut got = Vec::with_capacity(want);
    let mut chunk = vec![0u8; 1 << 20];
    while got.len() < want {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(k) => got.extend_from_slice(&chunk[..k]),
            Err(e) => panic!("after {} of {want} reply bytes: {e}", got.len()),
        }
    }
    assert_eq!(got.len(), want);
    assert_eq!(&got[..subscribed.len()], &subscribed[..]);
    assert!(got[subscribed.len()..].chunks(pong.len()).all(|r| r == &pong[..]));
    // Still subscribed, and messages still arrive.
    assert_eq!(s.cli(&["PUBLISH", "subpipe", "after"]).trim(), "(integer) 1");
    let message = b"*3\r\n$7\r\nmessage\r\n$7\r\nsubpipe\r\n$5\r\nafter\r\n";
    let mut got = Vec::new();
    while got.len() < message.len() {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(k) => got.extend_from_slice(&chunk[..k]),
            Err(e) => panic!("waiting for the message: {e}"),
        }
    }
    assert_eq!(got, message);
}
