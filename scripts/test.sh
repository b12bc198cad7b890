#!/usr/bin/env bash
# Runs LumaDB's whole test suite: unit tests, the end-to-end tests and the
# doc tests. This is the one command CI runs (.ci/run).
#
# Environment:
#   LUMADB_SOAK=1      enable long soak runs (tests that honour it run many
#                      more iterations, for minutes); off by default.
#   CI=true            use the nextest `ci` profile (.config/nextest.toml),
#                      which also ends hung tests.
#   CARGO_TARGET_DIR   respected as usual.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/setup.sh

# Formatting and lints are part of the suite.
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings

# Build everything once, so the test runs below compile nothing.
cargo build --workspace --all-targets

# The end-to-end tests run this binary rather than building their own.
target_dir=${CARGO_TARGET_DIR:-target}
export LUMADB_BIN="$(cd "$target_dir" && pwd)/debug/lumadb"

# Doc tests first (nextest does not run them), then every other test, so the
# log ends with nextest's summary. A failure in either still runs the other.
status=0
cargo test --workspace --doc || status=$?

profile=default
[[ -n ${CI:-} ]] && profile=ci
cargo nextest run --workspace --no-fail-fast --profile "$profile" || status=$?

exit "$status"
