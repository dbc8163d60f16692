#!/usr/bin/env bash
# Sets up a fresh machine (idempotent), builds, and runs every test suite:
# lit (importer, passes, pipeline), GoogleTest (runtime) and pytest (end to
# end against onnxruntime), all through ctest; then the runtime's unit tests
# under TSan and ASan+UBSan (scripts/test-sanitizers.sh), and a 45 s run of
# every libFuzzer target (scripts/fuzz.sh: the importer, the artifact loader,
# the .npy, TensorProto and --input literal readers). Exits non-zero on any
# failure.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup.sh"
# torch, torchvision, transformers for test/torch only (the demo does without them).
bash "$root/scripts/setup-torch.sh"
cd "$root"
ctest --test-dir build --output-on-failure -j2 "$@"
bash "$root/scripts/test-sanitizers.sh"
bash "$root/scripts/fuzz.sh" 45
