#!/usr/bin/env python3
"""Generate net/src/resp/command_table.rs from a running redis-server 7.

Usage: gen_command_table.py [port]  (default 6399)

Asks the server for COMMAND INFO and COMMAND DOCS over RESP3 and writes the
answers as static Rust data, so LumaDB's COMMAND replies match Redis byte for
byte in both protocol versions. The structured fields of each CommandSpec
(arity, flags, key positions, ...) are taken from the same answers.
"""
import os
import socket
import sys

COMMANDS = """
GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX MGET MSET MSETNX INCR DECR INCRBY DECRBY INCRBYFLOAT APPEND STRLEN
GETRANGE SETRANGE DEL UNLINK EXISTS EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL PTTL PERSIST TYPE RENAME RENAMENX KEYS SCAN
DBSIZE FLUSHDB FLUSHALL RANDOMKEY COPY TOUCH EXPIRETIME PEXPIRETIME LCS
HSET HSETNX HGET HMSET HMGET HGETALL HDEL HEXISTS HLEN HKEYS HVALS HINCRBY HINCRBYFLOAT HSTRLEN HSCAN HRANDFIELD
LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LLEN LRANGE LINDEX LSET LREM LTRIM LINSERT LPOS LMOVE RPOPLPUSH BLPOP BRPOP
LMPOP BLMPOP BLMOVE BRPOPLPUSH
SADD SREM SMEMBERS SISMEMBER SMISMEMBER SCARD SPOP SRANDMEMBER SMOVE SINTER SUNION SDIFF SINTERSTORE SUNIONSTORE
SDIFFSTORE SSCAN SINTERCARD
ZADD ZREM ZSCORE ZMSCORE ZINCRBY ZCARD ZCOUNT ZLEXCOUNT ZRANGE ZRANGEBYSCORE ZREVRANGEBYSCORE ZRANGEBYLEX
ZREVRANGEBYLEX ZREVRANGE ZRANK ZREVRANK ZREMRANGEBYRANK ZREMRANGEBYSCORE ZREMRANGEBYLEX ZPOPMIN ZPOPMAX ZRANGESTORE
ZSCAN ZUNION ZINTER ZDIFF ZUNIONSTORE ZINTERSTORE ZDIFFSTORE ZINTERCARD ZRANDMEMBER
ZMPOP BZMPOP BZPOPMIN BZPOPMAX
PING ECHO SELECT QUIT RESET HELLO AUTH INFO CONFIG COMMAND CLIENT TIME MULTI EXEC DISCARD WATCH UNWATCH SHUTDOWN
PUBLISH SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE PUBSUB
""".split()


# The subcommands LumaDB answers, per container command: COMMAND INFO and
# COMMAND DOCS list only these (a listed command works, or it is not listed).
SUBCOMMANDS = {
    "client": {"getname", "id", "info", "list", "setname"},
    "command": {"count", "docs", "getkeys", "info", "list"},
    "config": {"get", "resetstat", "set"},
    "pubsub": {"channels", "help", "numpat", "numsub", "shardchannels", "shardnumsub"},
}


def keep_subcommands(name, info, doc):
    """Drops the subcommands LumaDB does not answer from a container's
    COMMAND INFO entry (field 9) and COMMAND DOCS map ("subcommands")."""
    keep = SUBCOMMANDS.get(name)
    if keep is None:
        return info, doc
    fields = list(info[1])
    subs = fields[9]
    assert subs[0] == "array", name
    kept = [e for e in subs[1] if e[1][0][1].split("|", 1)[1] in keep]
    assert len(kept) == len(keep), (name, sorted(keep), [e[1][0][1] for e in subs[1]])
    fields[9] = ("array", kept)
    entries = []
    for k, v in doc[1]:
        if k[1] == "subcommands":
            v = (v[0], [(sk, sv) for sk, sv in v[1] if sk[1].split("|", 1)[1] in keep])
        entries.append((k, v))
    return ("array", fields), (doc[0], entries)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def send(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        return self.read()

    def line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.s.recv(1 << 16)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n + 2:
            self.buf += self.s.recv(1 << 16)
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self.line()
        t, rest = chr(line[0]), line[1:]
        if t == "+":
            return ("simple", rest.decode())
        if t == "-":
            raise RuntimeError(rest.decode())
        if t == ":":
            return ("int", int(rest))
        if t == "$":
            return ("bulk", self.exact(int(rest)).decode())
        if t == "=":
            return ("bulk", self.exact(int(rest))[4:].decode())
        if t == "_":
            return ("null", None)
        if t in "*~":
            items = [self.read() for _ in range(int(rest))]
            return ("array" if t == "*" else "set", items)
        if t == "%":
            return ("map", [(self.read(), self.read()) for _ in range(int(rest))])
        raise RuntimeError("unexpected reply type " + t)


def lit(s):
    out = '"'
    for ch in s:
        if ch in '"\\':
            out += "\\" + ch
        elif 32 <= ord(ch) < 127:
            out += ch
        else:
            out += "\\u{%x}" % ord(ch)
    return out + '"'


def emit(v):
    kind, val = v
    if kind == "simple":
        return "S::Simple(%s)" % lit(val)
    if kind == "bulk":
        return "S::Bulk(%s)" % lit(val)
    if kind == "int":
        return "S::Int(%d)" % val
    if kind == "null":
        return "S::Null"
    if kind == "array":
        return "S::Array(&[%s])" % ", ".join(emit(x) for x in val)
    if kind == "set":
        return "S::Set(&[%s])" % ", ".join(emit(x) for x in val)
    if kind == "map":
        return "S::Map(&[%s])" % ", ".join("(%s, %s)" % (emit(k), emit(x)) for k, x in val)
    raise RuntimeError(kind)


def map_get(m, key):
    for k, v in m[1]:
        if k[1] == key:
            return v
    return None


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 6399
    c = Conn(port)
    c.send("HELLO", "3")
    version = c.send("INFO", "server")[1]
    version = [l for l in version.splitlines() if l.startswith("redis_version:")][0].split(":")[1]
    names = sorted(set(n.lower() for n in COMMANDS))
    infos = c.send("COMMAND", "INFO", *names)[1]
    docs = dict((k[1], v) for k, v in c.send("COMMAND", "DOCS", *names)[1])
    out = []
    out.append("// @generated by net/scripts/gen_command_table.py from redis-server %s. Do not edit." % version)
    out.append("//")
    out.append("// One entry per command, sorted by name: the structured fields, then the exact")
    out.append("// COMMAND INFO entry and COMMAND DOCS value Redis answers for it.")
    out.append("")
    out.append("use super::command::{CommandSpec, StaticReply as S};")
    out.append("")
    out.append("pub(crate) const REDIS_VERSION: &str = %s;" % lit(version))
    out.append("")
    out.append("pub(crate) static COMMANDS: &[CommandSpec] = &[")
    for name, info in zip(names, infos):
        assert info[0] == "array", name
        f = info[1]
        assert f[0][1] == name, (f[0], name)
        info, d = keep_subcommands(name, info, docs[name])
        f = info[1]
        summary = map_get(d, "summary")
        since = map_get(d, "since")
        group = map_get(d, "group")
        complexity = map_get(d, "complexity")
        out.append("    CommandSpec {")
        out.append("        name: %s," % lit(name))
        out.append("        arity: %d," % f[1][1])
        out.append("        flags: &[%s]," % ", ".join(lit(x[1]) for x in f[2][1]))
        out.append("        first_key: %d," % f[3][1])
        out.append("        last_key: %d," % f[4][1])
        out.append("        key_step: %d," % f[5][1])
        out.append("        acl_categories: &[%s]," % ", ".join(lit(x[1]) for x in f[6][1]))
        out.append("        group: %s," % lit(group[1] if group else ""))
        out.append("        summary: %s," % lit(summary[1] if summary else ""))
        out.append("        since: %s," % lit(since[1] if since else ""))
        out.append("        complexity: %s," % lit(complexity[1] if complexity else ""))
        out.append("        info: &%s," % emit(info))
        out.append("        docs: &%s," % emit(d))
        out.append("    },")
    out.append("];")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "resp", "command_table.rs")
    with open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")
    print("wrote %d commands to %s" % (len(names), path))


if __name__ == "__main__":
    main()
