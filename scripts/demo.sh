#!/usr/bin/env bash
# Sets up a fresh machine (idempotent), builds, compiles the bundled example
# model and runs it, comparing with onnxruntime.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup.sh"
exec "$root/.venv/bin/python" "$root/scripts/demo.py"
