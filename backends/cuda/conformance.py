"""cuda in test/conformance/run.py --compile-only: each arch's PTX
(kiln-compile --emit=ptx) must assemble with ptxas for that arch."""

import os
import re

from checks import binaries, tool_output


def validate_ptx(folder, deadline):
    ptxas = os.environ.get("KILN_PTXAS", "/usr/local/cuda/bin/ptxas")
    for f in binaries(folder, ".ptx"):
        arch = re.search(r"ptx-(sm_\w+)\.ptx$", f).group(1)
        tool_output([ptxas, "-arch=" + arch, f, "-o", os.devnull], deadline,
                    "ptxas -arch=" + arch)


COMPILE_ONLY = {"cuda": ("ptx", validate_ptx)}
