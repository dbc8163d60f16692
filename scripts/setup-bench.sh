#!/usr/bin/env bash
# Installs what benchmarks/models.py needs beyond the test suite (IREE's compiler and runtime as a
# competitor) into the .venv that scripts/setup.sh makes; torch, torchvision and transformers for
# the exports come from scripts/setup-torch.sh, as for the tests. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

PIP_PACKAGES=(iree-base-compiler==3.13.0 iree-base-runtime==3.13.0)

bash scripts/setup-torch.sh
bash scripts/pip-pins.sh bench "${PIP_PACKAGES[@]}"
command -v clang-22 >/dev/null || [ -x /usr/lib/llvm-22/bin/clang ] ||
  echo "setup-bench: clang-22 missing (scripts/setup.sh installs it); the FMA peak needs it" >&2
echo "== kiln setup-bench: done; run .venv/bin/python benchmarks/models.py -v"
