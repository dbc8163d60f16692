#!/usr/bin/env bash
# Installs everything Kiln needs on a fresh Debian 12 machine (root or sudo), then configures and
# builds. Idempotent: a second run only rebuilds what changed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

APT_PACKAGES=(
  cmake ninja-build g++ pkg-config python3-venv
  llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools clang-22 lld-22 libclang-rt-22-dev
  libprotobuf-dev protobuf-compiler libgtest-dev libfmt-dev
  zlib1g-dev libzstd-dev libedit-dev libcurl4-openssl-dev libxml2-dev libffi-dev
  libamdhip64-dev libze-dev libze1 rocm-device-libs spirv-tools
)
# scalesim: the reference for benchmarks/npu_gemm.py.
PIP_PACKAGES=(onnx==1.22.0 onnxruntime==1.22.1 numpy==2.2.6 pytest==8.4.2 scalesim==3.0.0 "ray[serve]==2.60.0")

sudo_=""
[ "$(id -u)" -eq 0 ] || sudo_="sudo"

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== kiln setup: installing ${missing[*]}"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python side (tests, demo, benchmarks only: compiling a model needs no Python).
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== kiln setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.kiln-pins
want=$(printf '%s\n' "${PIP_PACKAGES[@]}")
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== kiln setup: pip install ${PIP_PACKAGES[*]}"
  .venv/bin/python -m pip install -q --disable-pip-version-check "${PIP_PACKAGES[@]}"
  printf '%s\n' "$want" >"$stamp"
fi

if [ ! -f build/build.ninja ]; then
  echo "== kiln setup: configuring build/"
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$root/.venv/bin/python"
fi
echo "== kiln setup: building"
cmake --build build
