#!/usr/bin/env bash
# Installs what building and testing LumaDB needs, beyond a Rust toolchain
# (rust-version in Cargo.toml). Idempotent: installs only what is missing,
# so it is cheap to run before every test run.
set -euo pipefail

# System packages the build and tests need (Debian/Ubuntu names).
# hwloc (topology discovery in lumadb-tuning) is found with pkg-config and
# linked with its static dependencies, hence libudev-dev. The end-to-end
# tests drive the server with redis-cli and compare it against a real
# redis-server (redis-tools, redis-server). gdb prints the thread stacks of
# a server that a test finds hung. The load generator's PostgreSQL driver is
# tested against a real PostgreSQL that the test starts in a temporary
# folder (postgresql: initdb, pg_ctl; run as user postgres under root).
SYSTEM_PACKAGES=(pkg-config libhwloc-dev libudev-dev redis-server redis-tools gdb postgresql)

log() { echo "setup: $*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
    log "cargo not found: install a Rust toolchain (see rust-version in Cargo.toml) and rerun"
    exit 1
fi

sudo=()
[[ $(id -u) -ne 0 ]] && sudo=(sudo)

missing=()
for package in "${SYSTEM_PACKAGES[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]} > 0)); then
    log "installing ${missing[*]}"
    "${sudo[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Installing redis-server starts a service on port 6379 on some systems. The
# tests start their own servers on free ports; a stray one only confuses
# whoever runs redis-cli by hand, so stop it and keep it from starting again.
if command -v service >/dev/null 2>&1 && service redis-server status >/dev/null 2>&1; then
    log "stopping the redis-server service (the tests start their own)"
    "${sudo[@]}" service redis-server stop || true
fi
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled redis-server >/dev/null 2>&1; then
    "${sudo[@]}" systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
# The same for the PostgreSQL cluster the package may create and start.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled postgresql >/dev/null 2>&1; then
    "${sudo[@]}" systemctl disable --now postgresql >/dev/null 2>&1 || true
fi

# redis-py, the Python client the end-to-end tests run against the server.
if ! python3 -c 'import redis' >/dev/null 2>&1; then
    log "installing the Python redis client (redis-py)"
    python3 -m pip install --quiet redis
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    log "installing cargo-nextest"
    cargo install --locked cargo-nextest
fi
