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

bash scripts/pip-pins.sh torch "${TORCH_PINS[@]}"
