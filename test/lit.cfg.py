# lit configuration for Kiln's compiler tests: importer (.onnxtxt, ONNX's
# textual syntax turned into a model by onnx_text.py), passes and pipeline
# (.mlir through kiln-opt / kiln-compile).
import os
import lit.formats

config.name = "Kiln"
config.test_format = lit.formats.ShTest(execute_external=True)
config.suffixes = [".mlir", ".onnxtxt", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.kiln_obj_root, "test")
config.excludes = ["Inputs", "e2e", "unit", "conformance", "lit.cfg.py", "onnx_text.py"]

config.environment["PATH"] = os.pathsep.join(
    [config.kiln_tools_dir, config.llvm_tools_dir, config.environment.get("PATH", "")])
config.substitutions.append(("%python", config.python_executable))
config.substitutions.append(("%kiln_src", config.kiln_src_root))
config.substitutions.append(
    ("%onnx", config.python_executable + " " + os.path.join(config.test_source_root, "onnx_text.py")))

# GPU toolchain checkers, when the machine has them (setup installs them).
import shutil
ptxas = os.environ.get("KILN_PTXAS") or shutil.which("ptxas") or "/usr/local/cuda/bin/ptxas"
if os.access(ptxas, os.X_OK):
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", ptxas))
if shutil.which("spirv-val"):
    config.available_features.add("spirv-val")
# `REQUIRES: target-<name>` for tests of backends that are not always built.
import subprocess
try:
    _targets = subprocess.run([os.path.join(config.kiln_tools_dir, "kiln-compile"),
                               "--list-targets"], capture_output=True, text=True).stdout
except OSError:
    _targets = ""
for _line in _targets.splitlines():
    config.available_features.add("target-" + _line.split(":")[0].strip())
