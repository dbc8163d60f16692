# lit configuration for Kiln's compiler tests: importer (.onnxtxt, ONNX's
# textual syntax turned into a model by onnx_text.py), passes and pipeline
# (.mlir through kiln-opt / kiln-compile).
import glob
import os
import lit.discovery
import lit.formats
import lit.Test

config.name = "Kiln"
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


class _WithBackendTests(lit.formats.ShTest):
    """A target's lit tests live in its own folder, backends/<name>/test/
    (docs/design.md, "Adding a backend"), but lit walks only this directory.
    So the walk of its root goes on into each of those folders, through lit's
    own discovery (excludes and lit.local.cfg apply as here: a target's own
    tool checks sit in its folder), the tests named by their path from the
    source root. Naming a subdirectory of test/ still runs only that."""

    def getTestsInDirectory(self, suite, path_in_suite, lit_config, local_config):
        yield from super().getTestsInDirectory(suite, path_in_suite, lit_config, local_config)
        if path_in_suite or suite.source_root != config.test_source_root:
            return
        root = lit.Test.TestSuite(suite.name, config.kiln_src_root, config.kiln_obj_root,
                                  suite.config)
        for folder in sorted(glob.glob(os.path.join(config.kiln_src_root, "backends", "*", "test"))):
            path = tuple(os.path.relpath(folder, config.kiln_src_root).split(os.sep))
            yield from lit.discovery.getTestsInSuite(root, path, lit_config, {}, {})
        # What lit does to the suites it found once their tests are made.
        root.test_times = None

    def __reduce__(self):
        # lit's workers, which cannot import a class defined here, only run
        # tests: the plain format does that.
        return (lit.formats.ShTest, (self.execute_external,))


config.test_format = _WithBackendTests(execute_external=True)

# `REQUIRES: target-<name>` for tests of backends that are not always built.
import subprocess
try:
    _targets = subprocess.run([os.path.join(config.kiln_tools_dir, "kiln-compile"),
                               "--list-targets"], capture_output=True, text=True).stdout
except OSError:
    _targets = ""
for _line in _targets.splitlines():
    config.available_features.add("target-" + _line.split(":")[0].strip())
