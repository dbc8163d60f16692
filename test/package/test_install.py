"""`pip install <checkout>` into a clean venv gives a working package: from
another directory, `import kiln`, kiln-compile and kiln-run on PATH, the
runtime finding the compiler beside it, with no build tree and no
environment variable; and the installed kiln passes ONNX's backend node
tests (kiln.backend, against the conformance runner's cpu.xfail) and the
torch.compile and DLPack suites, its dynamo backend found through the
package's entry point. Those suites take onnx, pytest and torch from the
venv running this test (a .pth file after the clean venv's own
site-packages), not from a second download.

pip reuses the test build tree ($KILN_BUILD_DIR, -C build-dir) so that CI
does not compile everything a second time: CMake reconfigures it, finds
nothing to build, and installs. A from-scratch `pip install <checkout>` runs
the same CMake project in a temporary build tree. scikit-build-core sets CC
and CXX from Python's sysconfig unless they are set (g++ where CMake found
c++): the build's own compilers are passed, or every command line changes
and the whole tree rebuilds under the other tests.
"""
import os
import re
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("KILN_BUILD_DIR") or REPO / "build")


def cached(var):
    for line in (BUILD / "CMakeCache.txt").read_text().splitlines():
        if line.startswith(var + ":"):
            return line.split("=", 1)[1]
    raise AssertionError(f"{var} not in {BUILD / 'CMakeCache.txt'}")


def run(cmd, cwd, env, **kw):
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, **kw)
    assert p.returncode == 0, f"{cmd} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


def model(symbolic):
    """y = relu(x @ w) + 1 with w = arange; a symbolic batch when asked."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3], np.arange(12, dtype=np.float32) / 10)
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    batch = "n" if symbolic else 2
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["r"]),
         helper.make_node("Add", ["r", "one"], ["y"])], "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])], [w, one])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


CHECK = r"""
import sys, numpy as np, kiln
from pathlib import Path
pkg = Path(kiln.__file__).parent
assert "site-packages" in str(pkg) and kiln.build_dir() == pkg, (kiln.__file__, kiln.build_dir())
w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
for art, n in (("static.kiln", 2), ("dynamic.kiln", 5)):
    x = np.linspace(-1, 1, 4 * n, dtype=np.float32).reshape(n, 4)
    with kiln.Session(art, threads=1) as s:
        (y,) = s.run({"x": x})
    np.testing.assert_allclose(y, np.maximum(x @ w, 0) + 1, rtol=1e-5, atol=1e-6)
    print(art, "ok", y.shape)
"""


ENTRY_POINT = r"""
import sys, torch
model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()).eval()
x = torch.randn(2, 4)
with torch.no_grad():
    torch.testing.assert_close(torch.compile(model, backend="kiln")(x), model(x))
assert "kiln.dynamo" in sys.modules, "the kiln backend did not run"
"""


def test_pip_install_clean_venv(tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py, bin_dir = env_dir / "bin" / "python", env_dir / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KILN_", "PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{bin_dir}:/usr/bin:/bin"
    env["KILN_CACHE_DIR"] = str(tmp_path / "cache")  # the run-time compiles of dynamic.kiln
    env["CC"], env["CXX"] = cached("CMAKE_C_COMPILER"), cached("CMAKE_CXX_COMPILER")
    built = (BUILD / "bin" / "kiln-compile").stat().st_mtime_ns
    run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(REPO),
         "-C", f"build-dir={BUILD}"], tmp_path, env, timeout=1200)
    assert (BUILD / "bin" / "kiln-compile").stat().st_mtime_ns == built, "pip rebuilt the build tree"

    work = tmp_path / "elsewhere"
    work.mkdir()
    for name, symbolic in (("static", False), ("dynamic", True)):
        onnx.save(model(symbolic), work / f"{name}.onnx")
        # The command pip put on PATH, not the build tree's.
        run(["kiln-compile", f"{name}.onnx", "-o", f"{name}.kiln"], work, env)
    assert "--target" in run(["kiln-compile", "--help"], work, env).stdout
    out = run(["kiln-run", "static.kiln", "--input=x=2x4xf32=1,2,3,4,-1,-2,-3,-4"], work, env).stdout
    assert "y" in out, out
    print(run([py, "-c", CHECK], work, env).stdout)
    # The symbolic batch made the installed runtime start the installed compiler.
    assert any((tmp_path / "cache").rglob("*.kiln")), list((tmp_path / "cache").rglob("*"))

    # The suites, on the installed kiln (KILN_TEST_INSTALLED: no checkout on sys.path).
    site = run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], work,
               env).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "zz-test-deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    env["KILN_TEST_INSTALLED"] = "1"
    where = run([py, "-c", "import kiln, kiln.backend; print(kiln.__file__)"], work, env).stdout
    assert where.startswith(site), where
    # backend="kiln" with no import of kiln: torch finds it by the entry point.
    run([py, "-c", ENTRY_POINT], work, env)
    for suite, args in (("conformance/test_onnx_backend.py", ["-k", "OnnxBackendNodeModelTest"]),
                        ("torch", [])):
        out = run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(REPO / "test" / suite),
                   *args], work, env, timeout=1800).stdout
        summary = [line for line in out.splitlines() if re.match(r"\d+ passed", line)]
        print(suite, "on the installed kiln:", summary[-1] if summary else out[-500:])
