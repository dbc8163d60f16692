"""GPU targets: every end-to-end model compiles for cuda, hip and levelzero
into one artifact with cpu, the binaries pass their vendors' checkers, and,
where a GPU is present, the models run on it and match onnxruntime. On a
machine without a GPU the device tests skip, saying why."""
import re
import shutil
import struct
import subprocess

import numpy as np
import pytest

import kiln
import models
from conftest import assert_outputs_close, ort_run, run_tool

INPUT_SHAPES = {"mlp": (8, 64), "convnet": (2, 3, 16, 16), "transformer": (1, 16, 32)}
GPU_TARGETS = ("cuda", "hip", "levelzero")
LLVM_BIN = "/usr/lib/llvm-22/bin"


def section_names(path):
    with open(path, "rb") as f:
        data = f.read()
    table, count = struct.unpack_from("<QI", data, 24)
    return [data[table + 48 * i:table + 48 * i + 32].rstrip(b"\0").decode()
            for i in range(count)]


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    """{name: (model, artifact for cuda, hip, levelzero and cpu)}."""
    d = tmp_path_factory.mktemp("gpu")
    return {name: (m, kiln.compile(m, d / f"{name}.kiln", target="cuda,hip,levelzero,cpu"))
            for name, m in ((n, models.build(n)) for n in models.MODELS)}


@pytest.mark.parametrize("name", list(models.MODELS))
def test_one_artifact_holds_every_target(multi, name):
    model, path = multi[name]
    sections = section_names(path)
    # Cubins (when ptxas exists) and PTX per arch, one code object per AMD
    # arch, one SPIR-V module, the host code.
    assert "exec.cuda" in sections and "exec.hip" in sections, sections
    assert "exec.levelzero" in sections and "exec.cpu" in sections, sections
    assert sum(s.startswith("exec.hip") for s in sections) == 3, sections
    # With no GPU here the runtime falls back to the cpu executable.
    x = np.random.default_rng(3).standard_normal(INPUT_SHAPES[name]).astype(np.float32)
    with kiln.Session(path, device="cpu", threads=1) as s:
        assert_outputs_close(s.run({"x": x}), ort_run(model, {"x": x}))


def _emit(model_path, target, kind, out):
    r = run_tool("kiln-compile", model_path, f"--target={target}", f"--emit={kind}", "-o", out)
    assert r.returncode == 0, r.stderr
    return sorted(out.iterdir())


@pytest.mark.parametrize("name", list(models.MODELS))
def test_ptx_passes_ptxas(tmp_path, name, ptxas=shutil.which("ptxas") or "/usr/local/cuda/bin/ptxas"):
    if not shutil.os.access(ptxas, shutil.os.X_OK):
        pytest.skip("ptxas not found (CUDA toolkit missing)")
    p = tmp_path / "m.onnx"
    p.write_bytes(models.build(name).SerializeToString())
    files = _emit(p, "cuda", "ptx", tmp_path / "ptx")
    assert [f.name for f in files] == ["m.ptx-sm_80.ptx", "m.ptx-sm_90.ptx"]
    for f in files:
        arch = re.search(r"ptx-(sm_\w+)\.ptx$", f.name).group(1)
        r = subprocess.run([ptxas, f"-arch={arch}", str(f), "-o", str(tmp_path / "x.cubin")],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name", list(models.MODELS))
def test_hsaco_lists_its_kernels(tmp_path, name):
    p = tmp_path / "m.onnx"
    p.write_bytes(models.build(name).SerializeToString())
    files = _emit(p, "hip", "hsaco", tmp_path / "co")
    assert len(files) == 3
    for f in files:
        notes = subprocess.run([f"{LLVM_BIN}/llvm-readobj", "--notes", str(f)],
                               capture_output=True, text=True, check=True).stdout
        kernels = re.findall(r"\.name:\s+(main_dispatch_\d+)", notes)
        assert kernels, notes[:2000]
        asm = subprocess.run([f"{LLVM_BIN}/llvm-objdump", "-d", str(f)],
                             capture_output=True, text=True, check=True).stdout
        for k in kernels:
            assert f"<{k}>:" in asm
        assert asm.count("s_endpgm") >= len(kernels)


@pytest.mark.parametrize("name", list(models.MODELS))
def test_spirv_validates(tmp_path, name):
    if not shutil.which("spirv-val"):
        pytest.skip("spirv-val not found (install spirv-tools)")
    p = tmp_path / "m.onnx"
    p.write_bytes(models.build(name).SerializeToString())
    (f,) = _emit(p, "levelzero", "spirv", tmp_path / "spv")
    r = subprocess.run(["spirv-val", "--target-env", "opencl1.2", str(f)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout


def _devices():
    r = run_tool("kiln-run", "--list-devices")
    assert r.returncode == 0, r.stderr
    return {m.group(1): m.group(2) for m in re.finditer(r"^(\S+)\s+(.*)$", r.stdout, re.M)}


@pytest.mark.parametrize("target", GPU_TARGETS)
@pytest.mark.parametrize("name", list(models.MODELS))
def test_model_on_gpu(multi, name, target):
    """Runs only where the GPU is present (the H100 machine for cuda)."""
    status = _devices().get(f"{target}:0", "not listed")
    if not status.startswith("available"):
        pytest.skip(f"no {target} device here ({status})")
    model, path = multi[name]
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal(INPUT_SHAPES[name]).astype(np.float32)
        with kiln.Session(path, device=target) as s:
            assert_outputs_close(s.run({"x": x}), ort_run(model, {"x": x}))
