#!/usr/bin/env bash
# Benchmark of the benchmark: `lumadb bench` and redis-benchmark against the
# same redis-server, same connections, pipeline depth, key space and value
# size, in one run, alternating which tool goes first each round. The
# server is pinned to SERVER_CPU, both load generators to CLIENT_CPU, so at
# pipeline 1 the load generator is the bottleneck and the throughput
# measures the generator. Each tool's CPU time (user + system, the whole
# process, start-up included) comes from getrusage of its process.
#
# Usage: bench/scripts/loadgen-vs-redis-benchmark.sh [LUMADB_BIN]
# Env:   REQUESTS (500000), CLIENTS (50), KEYSPACE (100000), VALUE_SIZE (3,
#        redis-benchmark's default), PIPELINES ("1 16"), TESTS ("set get"),
#        ROUNDS (2), SERVER_CPU (1), CLIENT_CPU (0), REDIS_PORT (a free port).
# Output: CSV lines
#   tool,test,pipeline,round,rps,p50_ms,p99_ms,client_cpu_s,client_us_per_req,server_cpu_s
set -euo pipefail

LUMADB_BIN=${1:-target/release/lumadb}
REQUESTS=${REQUESTS:-500000}
CLIENTS=${CLIENTS:-50}
KEYSPACE=${KEYSPACE:-100000}
VALUE_SIZE=${VALUE_SIZE:-3}
PIPELINES=${PIPELINES:-1 16}
TESTS=${TESTS:-set get}
ROUNDS=${ROUNDS:-2}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
REDIS_PORT=${REDIS_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}

work=$(mktemp -d)
cleanup() {
    [[ -n ${redis_pid:-} ]] && kill "$redis_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cpu_seconds() { # utime + stime of every thread of PID, in seconds
    awk -v hz="$(getconf CLK_TCK)" '{ s += $14 + $15 } END { printf "%.2f", s / hz }' /proc/"$1"/task/*/stat
}

# Runs a command; prints its CPU seconds (user + system, with children) on fd 3.
timed() {
    python3 - "$@" <<'PY' 3>&1 1>&2
import os, resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=sys.stderr)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
os.write(3, f"{r.ru_utime + r.ru_stime:.3f}\n".encode())
PY
}

taskset -c "$SERVER_CPU" redis-server --port "$REDIS_PORT" --save '' --appendonly no \
    --dir "$work" --logfile "$work/redis.log" &
redis_pid=$!
for _ in $(seq 1 200); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.05
done
if ! kill -0 "$redis_pid" 2>/dev/null; then
    echo "redis-server did not start on port $REDIS_PORT (in use?)" >&2
    exit 1
fi

echo "tool,test,pipeline,round,rps,p50_ms,p99_ms,client_cpu_s,client_us_per_req,server_cpu_s"

run_redis_benchmark() { # test pipeline round
    local before after cpu line
    before=$(cpu_seconds "$redis_pid")
    cpu=$(timed taskset -c "$CLIENT_CPU" redis-benchmark -p "$REDIS_PORT" -c "$CLIENTS" -n "$REQUESTS" \
        -r "$KEYSPACE" -d "$VALUE_SIZE" -P "$2" -t "$1" --csv 3>&1 2>"$work/rb.out")
    after=$(cpu_seconds "$redis_pid")
    line=$(grep -i "\"$1\"" "$work/rb.out" | tail -1)
    awk -F, -v t="$1" -v p="$2" -v r="$3" -v c="$cpu" -v n="$REQUESTS" -v s="$(awk -v a="$after" -v b="$before" 'BEGIN { print a - b }')" \
        '{ gsub(/"/, ""); printf "redis-benchmark,%s,%s,%s,%d,%s,%s,%s,%.2f,%.2f\n", t, p, r, $2, $5, $7, c, c * 1e6 / n, s }' <<<"$line"
}

run_lumadb_bench() { # test pipeline round
    local before after cpu
    before=$(cpu_seconds "$redis_pid")
    cpu=$(timed "$LUMADB_BIN" bench --target "127.0.0.1:$REDIS_PORT" --cpuset "$CLIENT_CPU" \
        --connections "$CLIENTS" --pipeline "$2" --requests "$REQUESTS" --keyspace "$KEYSPACE" \
        --value-size "$VALUE_SIZE" --mix "$1:100" --quiet --json "$work/lb.json" 3>&1 2>/dev/null)
    after=$(cpu_seconds "$redis_pid")
    python3 - "$work/lb.json" "$1" "$2" "$3" "$cpu" "$REQUESTS" "$(awk -v a="$after" -v b="$before" 'BEGIN { print a - b }')" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t, p, rnd, cpu, n, s = sys.argv[2:8]
l = r["latency_ms"]
print(f"lumadb-bench,{t},{p},{rnd},{r['throughput_ops']:.0f},{l['p50']:.3f},{l['p99']:.3f},{float(cpu):.3f},{float(cpu) * 1e6 / int(n):.2f},{float(s):.2f}")
PY
}

for round in $(seq 1 "$ROUNDS"); do
    for p in $PIPELINES; do
        for t in $TESTS; do
            if ((round % 2 == 1)); then
                run_redis_benchmark "$t" "$p" "$round"
                run_lumadb_bench "$t" "$p" "$round"
            else
                run_lumadb_bench "$t" "$p" "$round"
                run_redis_benchmark "$t" "$p" "$round"
            fi
        done
    done
done
