"""What test/conformance/run.py and the backends' checks share.

A backend that is checked without running its code (a GPU without a GPU)
describes how in backends/<name>/conformance.py:

  COMPILE_ONLY = {"<target>": ("<--emit stage>", validate)}

run.py --target <target> --compile-only compiles each test with
`kiln-compile --emit=<stage> -o <folder>` and calls validate(folder,
deadline), which raises Failed (below) when a vendor checker rejects a file.
"""

import os
import subprocess
import time

# How a test ends.
PASSED = "passed"
UNSUPPORTED = "unsupported op"
COMPILE_ERROR = "compile error"
WRONG = "wrong result"
RUNTIME_ERROR = "runtime error"
CRASH = "crash"
TIMEOUT = "timeout"
OUTCOMES = (PASSED, UNSUPPORTED, COMPILE_ERROR, WRONG, RUNTIME_ERROR, CRASH,
            TIMEOUT)

LLVM_BIN = "/usr/lib/llvm-22/bin"


class Failed(Exception):
    def __init__(self, outcome, reason):
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


def one_line(text, limit=160):
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def tool_output(cmd, deadline, what):
    """Runs a validator; a failure is a compile error of the test."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise Failed(TIMEOUT, "%s timed out" % what)
    if r.returncode != 0:
        raise Failed(COMPILE_ERROR, one_line("%s rejected the output: %s" % (
            what, (r.stderr or r.stdout).strip())))
    return r.stdout


def binaries(folder, suffix):
    # None at all means the model has no kernels (kiln-compile says so).
    files = sorted(f for f in os.listdir(folder) if f.endswith(suffix))
    return [os.path.join(folder, f) for f in files]
