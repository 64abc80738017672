#!/usr/bin/env bash
# Generates the Kotlin, Swift and Python bindings of fieldsync-mobile in UniFFI library mode.
#   mobile-ffi/generate-bindings.sh [debug|release] [out-dir]
# Output: <out-dir>/{kotlin,swift,python}; Python is the package <out-dir>/python/fieldsync, with the
# shared library inside it (`from fieldsync import fieldsync_mobile`).
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-debug}"
target_dir="${CARGO_TARGET_DIR:-target}"
out="${2:-$target_dir/bindings}"
flag=""; [ "$profile" = "release" ] && flag="--release"
cargo build $flag -p fieldsync-mobile --lib
case "$(uname -s)" in
  Darwin) lib="$target_dir/$profile/libfieldsync_mobile.dylib" ;;
  *) lib="$target_dir/$profile/libfieldsync_mobile.so" ;;
esac
for language in kotlin swift python; do
  dir="$out/$language"
  # The Python modules import each other relatively: they form the package `fieldsync`.
  [ "$language" = python ] && dir="$out/python/fieldsync"
  mkdir -p "$dir"
  cargo run -q $flag -p fieldsync-bindgen -- generate --library "$lib" --language "$language" \
    --out-dir "$dir" --no-format
done
# The package init polishes the generated records and errors for Python (repr, type checks, messages).
cp mobile-ffi/python/__init__.py "$out/python/fieldsync/__init__.py"
cp "$lib" "$out/python/fieldsync/"
echo "bindings in $out (kotlin, swift, python)"
