#!/usr/bin/env bash
# Starts a LumaDB server on defaults: Redis on 127.0.0.1:6379, the admin
# HTTP API on 127.0.0.1:8080, data in ./lumadb-data, one shard per CPU.
# Installs what the build needs first (scripts/setup.sh), then builds and
# runs `lumadb start`; extra arguments go to `lumadb start`
# (e.g. ./scripts/start.sh --shards 2 --data-dir /var/lib/lumadb).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec cargo run --release --quiet -p lumadb-tools -- start "$@"
