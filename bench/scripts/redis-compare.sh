#!/usr/bin/env bash
# Side-by-side: redis-benchmark against LumaDB and against redis-server, in
# one run, with each server's CPU time measured, so that ratios (not
# absolute numbers) can be compared on a noisy machine.
#
# Usage: bench/scripts/redis-compare.sh [LUMADB_BIN]
# Env:   REQUESTS (default 200000), CLIENTS (50), KEYSPACE (100000),
#        TESTS (get,set,incr,lpush,hset,zadd), PIPELINES ("1 16"),
#        SERVER_CPU (1), CLIENT_CPU (0), ROUNDS (1),
#        LUMADB_SHARDS (1; with 2+ the server is not pinned to SERVER_CPU),
#        LUMADB_SYNC (sync; "interval" matches Redis's appendfsync everysec;
#        a list such as "sync interval" runs LumaDB once per mode),
#        SKIP_REDIS (set to skip the redis-server half),
#        REDIS_FSYNC (everysec; a list such as "everysec always" runs
#        redis-server once per appendfsync setting: `always`, an fsync
#        before the replies of each event-loop pass, is the match for
#        LumaDB's `sync` mode),
#        WARM_MEMORY_GB (0; N touches N GiB once before the first server
#        starts: see below).
#
# A virtual machine whose host backs guest memory on first touch charges
# each page the guest has never used several microseconds (12 us per 4 KiB
# page was measured on the 2-core benchmark VM, against well under 1 us on
# bare metal). That cost lands on whichever server touches more new
# memory, and fades once the guest has used its memory. WARM_MEMORY_GB
# pays it up front, outside the measurement, so that runs agree.
#
# LumaDB runs with its default durability (sync: a write is answered after
# its WAL group is fdatasynced); redis-server runs with appendonly yes,
# appendfsync everysec (the closest Redis setting that keeps throughput).
# Each test starts from an empty database, except GET, which reads a key
# space filled by SET beforehand (3 x KEYSPACE random keys, about 95% of
# the key space), so that it measures hits.
# Output: one CSV line per server, test and pipeline depth:
#   server,test,pipeline,rps,p50_ms,p99_ms,server_cpu_s,rps_per_server_cpu_s
set -euo pipefail

LUMADB_BIN=${1:-target/release/lumadb}
REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-50}
KEYSPACE=${KEYSPACE:-100000}
TESTS=${TESTS:-get,set,incr,lpush,hset,zadd}
PIPELINES=${PIPELINES:-1 16}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
ROUNDS=${ROUNDS:-1}
LUMADB_SHARDS=${LUMADB_SHARDS:-1}
LUMADB_SYNC=${LUMADB_SYNC:-sync}
SKIP_REDIS=${SKIP_REDIS:-}
REDIS_FSYNC=${REDIS_FSYNC:-everysec}
WARM_MEMORY_GB=${WARM_MEMORY_GB:-0}
LUMA_PORT=${LUMA_PORT:-7501}
LUMA_HTTP=${LUMA_HTTP:-7502}
REDIS_PORT=${REDIS_PORT:-7503}

work=$(mktemp -d)
cleanup() {
    [[ -n ${luma_pid:-} ]] && kill "$luma_pid" 2>/dev/null || true
    [[ -n ${redis_pid:-} ]] && kill "$redis_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

if (( WARM_MEMORY_GB > 0 )); then
    python3 -c "b = bytearray(b'\\x01') * ($WARM_MEMORY_GB << 30)"
fi

# utime + stime of every thread of PID, in seconds.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ s += $14 + $15 } END { printf "%.2f", s / hz }' /proc/"$1"/task/*/stat
}

wait_port() {
    for _ in $(seq 1 200); do
        redis-cli -p "$1" ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "server on port $1 did not start" >&2
    exit 1
}

run_tests() { # name port pid
    local name=$1 port=$2 pid=$3
    for p in $PIPELINES; do
        for t in ${TESTS//,/ }; do
            redis-cli -p "$port" flushall >/dev/null
            if [[ $t == get ]]; then
                # GET reads keys that exist: fill the key space first
                # (outside the measurement), as a SET run would.
                taskset -c "$CLIENT_CPU" redis-benchmark -p "$port" -c "$CLIENTS" -n $((KEYSPACE * 3)) \
                    -r "$KEYSPACE" -P 16 -t set -q >/dev/null
            fi
            local before after
            before=$(cpu_seconds "$pid")
            local line
            line=$(taskset -c "$CLIENT_CPU" redis-benchmark -p "$port" -c "$CLIENTS" -n "$REQUESTS" \
                -r "$KEYSPACE" -P "$p" -t "$t" --csv | tail -1)
            after=$(cpu_seconds "$pid")
            local rps p50 p99 cpu
            rps=$(echo "$line" | cut -d, -f2 | tr -d '"')
            p50=$(echo "$line" | cut -d, -f5 | tr -d '"')
            p99=$(echo "$line" | cut -d, -f7 | tr -d '"')
            cpu=$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.2f", a - b }')
            local per_cpu
            per_cpu=$(awk -v n="$REQUESTS" -v c="$cpu" 'BEGIN { if (c > 0) printf "%d", n / c; else print 0 }')
            echo "$name,$t,$p,$rps,$p50,$p99,$cpu,$per_cpu"
        done
    done
}

echo "server,test,pipeline,rps,p50_ms,p99_ms,server_cpu_s,rps_per_server_cpu_s"
for _ in $(seq 1 "$ROUNDS"); do
    for mode in $LUMADB_SYNC; do
        rm -rf "$work/luma"
        if [[ $LUMADB_SHARDS == 1 ]]; then
            pin=(taskset -c "$SERVER_CPU")
            shard_args=(--shards 1 --cpuset "$SERVER_CPU")
        else
            pin=()
            shard_args=(--shards "$LUMADB_SHARDS")
        fi
        "${pin[@]}" "$LUMADB_BIN" start --data-dir "$work/luma" "${shard_args[@]}" \
            --sync-mode "$mode" --redis-port "$LUMA_PORT" --http-port "$LUMA_HTTP" >"$work/luma.log" 2>&1 &
        luma_pid=$!
        wait_port "$LUMA_PORT"
        run_tests "lumadb-${LUMADB_SHARDS}shard-$mode" "$LUMA_PORT" "$luma_pid"
        kill "$luma_pid"
        wait "$luma_pid" || true
        luma_pid=
    done

    [[ -n $SKIP_REDIS ]] && continue
    for fsync in $REDIS_FSYNC; do
        rm -rf "$work/redis" && mkdir -p "$work/redis"
        taskset -c "$SERVER_CPU" redis-server --port "$REDIS_PORT" --dir "$work/redis" --save '' \
            --appendonly yes --appendfsync "$fsync" --daemonize no >"$work/redis.log" 2>&1 &
        redis_pid=$!
        wait_port "$REDIS_PORT"
        run_tests "redis-aof-$fsync" "$REDIS_PORT" "$redis_pid"
        kill "$redis_pid"
        wait "$redis_pid" || true
        redis_pid=
    done
done
