#!/usr/bin/env bash
# All the tests: Rust (unit, integration, end-to-end on loopback, doc tests), the Python tests of
# the generated bindings against a real `fieldsync serve`, the dashboard in a real browser, then
# README's own commands.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"

cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc

python3 -m pytest --version >/dev/null 2>&1 || python3 -m pip install --quiet pytest
mobile-ffi/generate-bindings.sh debug "$target_dir/bindings"
cargo build -p fieldsync-server --bin fieldsync -p fieldsync-device --bin fieldsync-device
FIELDSYNC_BINDINGS="$target_dir/bindings/python" FIELDSYNC_BIN="$target_dir/debug/fieldsync" \
  python3 -m pytest -q mobile-ffi/tests/python

# The dashboard in a real browser: Debian's chromium driven by playwright-core (from the committed
# lockfile), against a seeded `fieldsync serve` and a device syncing; the screenshot stays in
# $target_dir/browser/dashboard.png.
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
FIELDSYNC_BIN="$target_dir/debug/fieldsync" FIELDSYNC_DEVICE_BIN="$target_dir/debug/fieldsync-device" \
  FIELDSYNC_ARTIFACTS="$target_dir/browser" node --test --test-concurrency=1 tests/browser/dashboard.test.mjs

# README's commands, as written, on a fresh data directory (needs jq and curl, as README does).
python3 scripts/readme_test.py "$target_dir/debug"
