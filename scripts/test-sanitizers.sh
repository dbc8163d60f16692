#!/usr/bin/env bash
# Builds the runtime and its unit tests (no compiler) twice, under
# ThreadSanitizer (build-tsan/) and under AddressSanitizer with
# UndefinedBehaviorSanitizer (build-asan/), and runs them through ctest:
# docs/reliability.md, "Sanitizers". scripts/test.sh runs it after the main
# suites; it expects what scripts/setup.sh installs. Idempotent: a second run
# only rebuilds what changed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
for build in thread:build-tsan address,undefined:build-asan; do
  sanitize=${build%%:*} dir=${build#*:}
  if [ ! -f "$dir/build.ninja" ]; then
    echo "== kiln sanitizers: configuring $dir/ (KILN_SANITIZE=$sanitize)"
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKILN_BUILD_COMPILER=OFF \
      -DKILN_SANITIZE="$sanitize" -DPython3_EXECUTABLE="$root/.venv/bin/python"
  fi
  echo "== kiln sanitizers: building $dir/"
  cmake --build "$dir"
  ctest --test-dir "$dir" --output-on-failure -j2
done
