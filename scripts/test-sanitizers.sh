#!/usr/bin/env bash
# Builds the runtime and its unit tests (no compiler) twice, under
# ThreadSanitizer (build-tsan/) and under AddressSanitizer with
# UndefinedBehaviorSanitizer (build-asan/), and runs them through ctest; then
# the end-to-end suites that exercise the runtime most (bad artifacts and
# inputs, the Python binding, profiles, the e2e models) with the ASan+UBSan
# runtime and kiln-run and build/'s kiln-compile: docs/reliability.md,
# "Sanitizers". scripts/test.sh runs it after the main suites; it expects
# what scripts/setup.sh installs. Idempotent: a second run only rebuilds what
# changed.
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

# The runtime's half of the e2e suites under ASan+UBSan: a build tree made of
# the instrumented kiln-run and runtime library beside build/'s kiln-compile
# (an instrumented compiler takes 15 minutes to build; docs/reliability.md
# says how to run everything with one). Python is not instrumented, so the
# sanitizer runtimes are preloaded, and its own leaks are not reported.
if [ ! -x build/bin/kiln-compile ]; then
  echo "== kiln sanitizers: no build/bin/kiln-compile; e2e suites under ASan skipped"
  exit 0
fi
mixed=build-asan/e2e
mkdir -p "$mixed/bin" "$mixed/lib"
ln -sf "$root/build/bin/kiln-compile" "$mixed/bin/kiln-compile"
ln -sf "$root/build-asan/bin/kiln-run" "$mixed/bin/kiln-run"
ln -sf "$root/build-asan/lib/libkiln_runtime.so" "$mixed/lib/libkiln_runtime.so"
echo "== kiln sanitizers: e2e suites with the ASan+UBSan runtime"
KILN_BUILD_DIR="$root/$mixed" ASAN_OPTIONS=detect_leaks=0 \
  UBSAN_OPTIONS=print_stacktrace=1 \
  LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
  "$root/.venv/bin/python" -m pytest -q -p no:cacheprovider test/e2e/test_errors.py \
  test/e2e/test_python_io.py test/e2e/test_profile.py test/e2e/test_models.py
