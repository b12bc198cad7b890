#!/usr/bin/env bash
# Installs what building and testing LumaDB needs, beyond a Rust toolchain
# (rust-version in Cargo.toml). Idempotent: installs only what is missing,
# so it is cheap to run before every test run.
set -euo pipefail

# System packages the tests need (Debian/Ubuntu names). None yet; list
# them here when a test needs one (e.g. redis-tools for redis-cli).
SYSTEM_PACKAGES=()

log() { echo "setup: $*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
    log "cargo not found: install a Rust toolchain (see rust-version in Cargo.toml) and rerun"
    exit 1
fi

missing=()
for package in "${SYSTEM_PACKAGES[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]} > 0)); then
    sudo=()
    [[ $(id -u) -ne 0 ]] && sudo=(sudo)
    log "installing ${missing[*]}"
    "${sudo[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    log "installing cargo-nextest"
    cargo install --locked cargo-nextest
fi
