//! redis-py (the Python client scripts/setup.sh installs) against a real
//! server: the assertions run in Python, the test checks its exit status.

use lumadb_tests::server::{LumaServer, ServerOptions};

const SCRIPT: &str = r#"
import sys
import redis

port = int(sys.argv[1])
r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)

assert r.ping() is True
assert r.flushdb() is True

# Pipelines, transactional and not.
with r.pipeline(transaction=True) as p:
    p.set("tx:a", "1").incr("tx:b").rpush("tx:l", "x", "y").get("tx:a")
    assert p.execute() == [True, 1, 2, "1"], "MULTI/EXEC pipeline"
with r.pipeline(transaction=False) as p:
    for i in range(300):
        p.set(f"pl:{i}", i)
    for i in range(300):
        p.get(f"pl:{i}")
    out = p.execute()
    assert out[:300] == [True] * 300
    assert out[300:] == [str(i) for i in range(300)], "plain pipeline"

# WATCH with a pipeline: a concurrent change raises WatchError.
other = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
with r.pipeline() as p:
    p.watch("tx:a")
    other.set("tx:a", "changed")
    p.multi()
    p.set("tx:a", "mine")
    try:
        p.execute()
        raise AssertionError("EXEC succeeded although a watched key changed")
    except redis.exceptions.WatchError:
        pass
assert r.get("tx:a") == "changed"

# scan_iter visits every key once, across shards.
keys = set(r.scan_iter(match="pl:*", count=17))
assert keys == {f"pl:{i}" for i in range(300)}, f"scan_iter found {len(keys)}"
assert sorted(r.scan_iter(_type="list")) == ["tx:l"]

# Hashes.
assert r.hset("h", mapping={"a": "1", "b": "2", "c": "3"}) == 3
assert r.hgetall("h") == {"a": "1", "b": "2", "c": "3"}
assert r.hincrby("h", "a", 10) == 11
assert r.hmget("h", ["a", "zz"]) == ["11", None]

# Sorted sets.
assert r.zadd("z", {"one": 1, "two": 2, "three": 3.5}) == 3
assert r.zrange("z", 0, -1, withscores=True) == [("one", 1.0), ("two", 2.0), ("three", 3.5)]
assert r.zrange("z", 2, 3, byscore=True) == ["two"]
assert r.zrangebyscore("z", "(1", "+inf", withscores=True) == [("two", 2.0), ("three", 3.5)]
assert r.zscore("z", "three") == 3.5
assert r.zincrby("z", 1, "one") == 2.0

# Strings with expiry.
assert r.set("e", "v", ex=100) is True
assert 99 <= r.ttl("e") <= 100
assert r.set("e", "w", nx=True) is None
assert r.mget(["e", "nope"]) == ["v", None]

# Errors come back as ResponseError with Redis's text.
try:
    r.lpush("h", "x")
    raise AssertionError("LPUSH on a hash succeeded")
except redis.exceptions.ResponseError as e:
    assert str(e).startswith("WRONGTYPE Operation against a key holding the wrong kind of value"), str(e)
try:
    r.incr("e")
    raise AssertionError("INCR on a non-number succeeded")
except redis.exceptions.ResponseError as e:
    assert str(e) == "value is not an integer or out of range", str(e)
try:
    r.execute_command("NOSUCHCOMMAND", "a")
    raise AssertionError("an unknown command succeeded")
except redis.exceptions.ResponseError as e:
    assert "unknown command" in str(e), str(e)
# Errors inside a transaction are returned in place when asked.
with r.pipeline(transaction=True) as p:
    p.set("t2", "x").incr("t2").get("t2")
    res = p.execute(raise_on_error=False)
    assert res[0] is True and isinstance(res[1], redis.exceptions.ResponseError) and res[2] == "x", res

# RESP3.
r3 = redis.Redis(host="127.0.0.1", port=port, protocol=3, decode_responses=True)
assert r3.ping() is True
assert r3.hgetall("h") == {"a": "11", "b": "2", "c": "3"}
assert r3.zscore("z", "three") == 3.5
# Ties on the score order by member: "one" (now 2) before "two".
assert [list(x) for x in r3.zrange("z", 0, 0, withscores=True)] == [["one", 2.0]]
assert r3.smembers("nope") == set()
assert r3.sadd("s", "a", "b") == 2
assert r3.smembers("s") == {"a", "b"}
info = r3.execute_command("HELLO", "3")
assert info["proto"] == 3, info
assert r3.get("nope") is None
print("redis-py: ok")
"#;

#[test]
fn redis_py_client_works() {
    let s = LumaServer::start(ServerOptions::default().shards(2));
    s.run_python(SCRIPT, "redis-py: ok");
}

/// redis-py's scan iterators over collections while another connection
/// deletes what was already returned and changes scores: every element
/// present throughout comes back (Redis's SCAN guarantee).
const SCAN_SCRIPT: &str = r#"
import sys, redis
port = int(sys.argv[1])
r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
w = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
n = 3000
r.hset("sh", mapping={f"f{i:05}": i for i in range(n)})
r.sadd("ss", *[f"m{i:05}" for i in range(n)])
r.zadd("sz", {f"m{i:05}": i for i in range(n)})
seen = set()
for field, _ in r.hscan_iter("sh", count=50):
    seen.add(field)
    if len(seen) % 3 == 0:
        w.hdel("sh", field)
assert len(seen) == n, len(seen)
seen = set()
for member in r.sscan_iter("ss", count=50):
    seen.add(member)
    if len(seen) % 3 == 0:
        w.srem("ss", member)
assert len(seen) == n, len(seen)
seen = {}
for member, score in r.zscan_iter("sz", count=50):
    seen[member] = score
    if len(seen) % 3 == 0:
        w.zrem("sz", member)
    # Scores of members not yet returned change: they still come back once.
    w.zadd("sz", {f"m{(len(seen) * 7) % n:05}": -1})
assert len(seen) == n, len(seen)
try:
    r.hscan("sh", cursor=123456789)
    raise AssertionError("a made-up cursor was accepted")
except redis.exceptions.ResponseError as e:
    assert "invalid cursor" in str(e), str(e)
print("scan: ok")
"#;

#[test]
fn redis_py_collection_scans_return_every_element_despite_deletions() {
    let s = LumaServer::start(ServerOptions::default().shards(2));
    s.run_python(SCAN_SCRIPT, "scan: ok");
}
