#!/usr/bin/env bash
# Builds the libFuzzer targets (KILN_FUZZ=ON: clang-22, ASan+UBSan, no
# compiler, the cpu backend only) in build-fuzz/ and runs each for SECONDS
# seconds (default 60): kiln-fuzz-artifact, kiln-fuzz-npy and
# kiln-fuzz-tensor-proto. Named alone, "import" builds the importer's target
# in build-fuzz-import/ instead, with the compiler (the importer and MLIR
# only: about 20 minutes on 2 cores). Seeds come from test/fuzz/seeds.py.
# With build/bin/kiln-compile (or $KILN_COMPILE), test/e2e's models compiled
# for the cpu seed the artifact target and are the kernels it may run; so do
# the artifacts kiln-runtime-tests leaves in $TMPDIR. Corpora grow in
# <build>/corpus/<target>, crashes land in <build>/crashes/.
# docs/reliability.md, "Fuzzing".
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(artifact npy tensor-proto)
llvm=/usr/lib/llvm-22/bin
build=build-fuzz compiler=OFF
if [ "${targets[*]}" = import ]; then build=build-fuzz-import compiler=ON; fi
if [ ! -f $build/build.ninja ]; then
  cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=$llvm/clang -DCMAKE_CXX_COMPILER=$llvm/clang++ \
    -DKILN_BUILD_COMPILER=$compiler -DKILN_BACKENDS=cpu -DKILN_BUILD_TESTS=OFF -DKILN_FUZZ=ON
fi
cmake --build $build --target "${targets[@]/#/kiln-fuzz-}"
seeds=$build/seeds
compile=()
kiln_compile=${KILN_COMPILE:-build/bin/kiln-compile}
if [ -x "$kiln_compile" ]; then compile=("$kiln_compile"); fi
"${PYTHON:-.venv/bin/python}" test/fuzz/seeds.py "$seeds" "${compile[@]}"
mkdir -p $build/crashes
# Buffers an artifact declares are allocated as it says: past 1 GiB the
# allocation fails (an error, as where memory runs out), rather than the run.
export ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=1024
export KILN_FUZZ_KERNELS=$root/$seeds/kernels
for t in "${targets[@]}"; do
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
  echo "== kiln fuzz: $t for ${seconds}s"
  "$build/bin/kiln-fuzz-$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix="$build/crashes/$t-" -print_final_stats=1 \
    "$build/corpus/$t" "${extra[@]}"
done
