"""ONNX's backend tests (onnx.backend.test.BackendTest) through kiln.backend
on cpu, held to the list run.py holds kiln-compile and kiln-run to,
backends/cpu/test/conformance/cpu.xfail: a listed test must fail and every
other must pass (strict xfail, as run.py fails on an unexpected pass).

BackendTest compares at each test's own tolerance, rtol 1e-3 and atol 1e-7
for all the suites run here, as run.py does.

  KILN_BUILD_DIR=build .venv/bin/python -m pytest -q test/conformance/test_onnx_backend.py
  KILN_BACKEND_TESTS=REGEX ... runs only the tests whose name matches.
  KILN_TEST_INSTALLED=1 ... uses the kiln on sys.path, not the checkout's (test/package).
"""
import os
import re
import sys

import numpy as np
import onnx.backend.test
import pytest
from onnx.backend.test.runner import Runner

HERE = os.path.dirname(os.path.abspath(__file__))
if not os.environ.get("KILN_TEST_INSTALLED"):  # test/package runs it on an installed kiln
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "python"))

import kiln.backend  # noqa: E402
from xfail import read_xfail, xfail_path  # noqa: E402

# run.py's suites; BackendTest's "real" one downloads its models.
SUITES = ("Node", "Simple", "PyTorchConverted", "PyTorchOperator")

XFAIL = read_xfail(xfail_path("cpu"))
ONLY = re.compile(os.environ.get("KILN_BACKEND_TESTS", ""))

# BackendTest compares a sequence output by recursing into its elements as if
# each were a list of outputs, taking len() of it: a 0-d element (a sequence
# of scalars, test_loop16_seq_none) raises TypeError whatever the backend
# returned. Such an element is compared as a list of one.
_compare = Runner.assert_similar_outputs.__func__


def _assert_similar_outputs(cls, ref_outputs, outputs, rtol, atol, model_dir=None):
    if isinstance(outputs, np.ndarray) and outputs.ndim == 0:
        ref_outputs, outputs = [ref_outputs], [outputs]
    _compare(cls, ref_outputs, outputs, rtol, atol, model_dir)


Runner.assert_similar_outputs = classmethod(_assert_similar_outputs)


def _test_cases():
    cases = {}
    for case_name, case in onnx.backend.test.BackendTest(kiln.backend, __name__).test_cases.items():
        if not any(case_name == f"OnnxBackend{s}ModelTest" for s in SUITES):
            continue
        for attr in [a for a in vars(case) if a.startswith("test_")]:
            test = attr[:-len("_cpu")]
            if not attr.endswith("_cpu") or not ONLY.search(test):
                delattr(case, attr)  # Other devices are not this test's.
            elif test in XFAIL:
                setattr(case, attr, pytest.mark.xfail(
                    strict=True, reason=XFAIL[test])(getattr(case, attr)))
        cases[case_name] = case
    return cases


@pytest.fixture(scope="module", autouse=True)
def _run_time_compile_cache(tmp_path_factory):
    # Artifacts the runtime compiles per shape or value go here, not ~/.cache.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KILN_CACHE_DIR", str(tmp_path_factory.mktemp("kiln-cache")))
        yield


globals().update(_test_cases())
