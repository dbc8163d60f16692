#!/usr/bin/env bash
# pip-installs pinned packages into .venv once per pin list, holding what setup.sh pinned (and
# what onnx/onnxruntime build on): pip fails rather than moving them. Used by setup-torch.sh and
# setup-bench.sh:  bash scripts/pip-pins.sh NAME PIN...  (NAME names the stamp and the messages)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
name=$1
shift
if [ ! -x .venv/bin/python ]; then
  echo "setup-$name: no .venv; run bash scripts/setup.sh first" >&2
  exit 1
fi
stamp=.venv/.kiln-$name-pins
want=$(printf '%s\n' "$@")
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== kiln setup-$name: pip install $*"
  constraints=$(mktemp)
  trap 'rm -f "$constraints"' EXIT
  .venv/bin/python -m pip freeze --disable-pip-version-check |
    grep -iE '^(numpy|onnx|onnxruntime|protobuf|ml[-_]dtypes)==' >"$constraints" || true
  .venv/bin/python -m pip install -q --disable-pip-version-check -c "$constraints" "$@"
  printf '%s\n' "$want" >"$stamp"
fi
