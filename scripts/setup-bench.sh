#!/usr/bin/env bash
# Installs what benchmarks/models.py needs beyond the test suite (IREE's compiler and runtime as a
# competitor) into the .venv that scripts/setup.sh makes; torch, torchvision and transformers for
# the exports come from scripts/setup-torch.sh, as for the tests. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

PIP_PACKAGES=(iree-base-compiler==3.13.0 iree-base-runtime==3.13.0)

if [ ! -x .venv/bin/python ]; then
  echo "setup-bench: no .venv; run bash scripts/setup.sh first" >&2
  exit 1
fi
bash scripts/setup-torch.sh
stamp=.venv/.kiln-bench-pins
want=$(printf '%s\n' "${PIP_PACKAGES[@]}")
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== kiln setup-bench: pip install ${PIP_PACKAGES[*]}"
  # Hold what setup.sh pinned (and what onnx/onnxruntime build on): pip fails rather than
  # moving them.
  constraints=$(mktemp)
  trap 'rm -f "$constraints"' EXIT
  .venv/bin/python -m pip freeze --disable-pip-version-check |
    grep -iE '^(numpy|onnx|onnxruntime|protobuf|ml[-_]dtypes)==' >"$constraints" || true
  .venv/bin/python -m pip install -q --disable-pip-version-check -c "$constraints" "${PIP_PACKAGES[@]}"
  printf '%s\n' "$want" >"$stamp"
fi
command -v clang-22 >/dev/null || [ -x /usr/lib/llvm-22/bin/clang ] ||
  echo "setup-bench: clang-22 missing (scripts/setup.sh installs it); the FMA peak needs it" >&2
echo "== kiln setup-bench: done; run .venv/bin/python benchmarks/models.py -v"
