#!/usr/bin/env bash
# All the tests: Rust (unit, integration, end-to-end on loopback, doc tests), then the Python tests of
# the generated bindings against a real `fieldsync serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"

cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc

python3 -m pytest --version >/dev/null 2>&1 || python3 -m pip install --quiet pytest
mobile-ffi/generate-bindings.sh debug "$target_dir/bindings"
cargo build -p fieldsync-server --bin fieldsync
FIELDSYNC_BINDINGS="$target_dir/bindings/python" FIELDSYNC_BIN="$target_dir/debug/fieldsync" \
  python3 -m pytest -q mobile-ffi/tests/python
