#!/usr/bin/env bash
# Builds the libFuzzer targets (KILN_FUZZ=ON: clang-22, ASan+UBSan, the cpu
# backend only) in build-fuzz/ and runs each for SECONDS seconds (default
# 60), $KILN_FUZZ_JOBS at a time (default: the number of CPUs):
# kiln-fuzz-artifact, -npy, -tensor-proto, -literal and -import (this one
# builds the importer and links MLIR). Seeds come from test/fuzz/seeds.py.
# With build/bin/kiln-compile (or $KILN_COMPILE), test/e2e's models compiled
# for the cpu seed the artifact target and are the kernels it may run; so do
# the artifacts kiln-runtime-tests leaves in $TMPDIR. Corpora grow in
# build-fuzz/corpus/<target>, crashes land in build-fuzz/crashes/, each
# run's log in build-fuzz/logs/. Exits non-zero when any target finds a
# crash, a leak or a timeout. scripts/test.sh runs it for 45 s per target.
# docs/reliability.md, "Fuzzing".
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(import artifact npy tensor-proto literal)
jobs=${KILN_FUZZ_JOBS:-$(nproc)}
llvm=/usr/lib/llvm-22/bin
build=build-fuzz
if [ ! -f $build/build.ninja ]; then
  cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=$llvm/clang -DCMAKE_CXX_COMPILER=$llvm/clang++ \
    -DKILN_BACKENDS=cpu -DKILN_BUILD_TESTS=OFF -DKILN_FUZZ=ON
fi
cmake --build $build --target "${targets[@]/#/kiln-fuzz-}"
seeds=$build/seeds
compile=()
kiln_compile=${KILN_COMPILE:-build/bin/kiln-compile}
if [ -x "$kiln_compile" ]; then compile=("$kiln_compile"); fi
"${PYTHON:-.venv/bin/python}" test/fuzz/seeds.py "$seeds" "${compile[@]}"
mkdir -p $build/crashes $build/logs
# Buffers an artifact declares are allocated as it says: past 1 GiB the
# allocation fails (an error, as where memory runs out), rather than the run.
export ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=1024
export KILN_FUZZ_KERNELS=$root/$seeds/kernels

run() {
  local t=$1 extra
  mkdir -p "$build/corpus/$t"
  if [ "$t" = artifact ]; then
    # Also the artifacts kiln-runtime-tests leaves in $TMPDIR, if it ran:
    # GPU targets, data-dependent outputs, per-value compiles...
    mkdir -p "$seeds/artifact"
    cp "${TMPDIR:-/tmp}"/kiln_*.kiln "$seeds/artifact/" 2>/dev/null || true
    extra=("$seeds/kernels" "$seeds/artifact")
  else
    extra=("$seeds/$t")
  fi
  "$build/bin/kiln-fuzz-$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix="$build/crashes/$t-" -print_final_stats=1 \
    "$build/corpus/$t" "${extra[@]}" > "$build/logs/$t.log" 2>&1
}

# Each target in the background, at most $jobs at once; then one line each.
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  echo "== kiln fuzz: $t for ${seconds}s"
  rm -f "$build/logs/$t.status"
  { status=0; run "$t" || status=$?; echo $status > "$build/logs/$t.status"; } &
done
wait
failed=()
for t in "${targets[@]}"; do
  status=$(cat "$build/logs/$t.status")
  log=$build/logs/$t.log
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  corpus=$(find "$build/corpus/$t" -type f | wc -l)
  if [ "$status" -eq 0 ]; then
    echo "kiln fuzz: $t: ${runs:-?} runs in ${seconds}s, ${cov:-cov: ?}, corpus $corpus files, no crash"
  else
    echo "kiln fuzz: $t: FAILED (exit $status); the end of $log:"
    tail -40 "$log"
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "kiln fuzz: ${#failed[@]} of ${#targets[@]} targets failed: ${failed[*]} (inputs in $build/crashes/)"
  exit 1
fi
echo "kiln fuzz: ${#targets[@]} of ${#targets[@]} targets ran ${seconds}s each without a crash"
