#!/usr/bin/env bash
# Installs what test/torch (torch.compile(backend="kiln"), python/kiln/dynamo.py) needs into the
# .venv that scripts/setup.sh makes; scripts/test.sh runs it, and so does setup-bench.sh, whose model
# exports use the same packages. Idempotent: a stamp skips pip when the pins are unchanged.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# PyPI's Linux torch wheels are the CUDA builds: with their nvidia-* dependencies about 5 GB in
# .venv (PyPI is the only index reachable here; the CPU-only wheels live on another). They run on
# the CPU as they are.
TORCH_PINS=(torch==2.15.0 torchvision==0.29.2 transformers==5.25.0)

if [ ! -x .venv/bin/python ]; then
  echo "setup-torch: no .venv; run bash scripts/setup.sh first" >&2
  exit 1
fi
stamp=.venv/.kiln-torch-pins
want=$(printf '%s\n' "${TORCH_PINS[@]}")
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== kiln setup-torch: pip install ${TORCH_PINS[*]}"
  # Hold what setup.sh pinned (and what onnx/onnxruntime build on): pip fails rather than
  # moving them.
  constraints=$(mktemp)
  trap 'rm -f "$constraints"' EXIT
  .venv/bin/python -m pip freeze --disable-pip-version-check |
    grep -iE '^(numpy|onnx|onnxruntime|protobuf|ml[-_]dtypes)==' >"$constraints" || true
  .venv/bin/python -m pip install -q --disable-pip-version-check -c "$constraints" "${TORCH_PINS[@]}"
  printf '%s\n' "$want" >"$stamp"
fi
