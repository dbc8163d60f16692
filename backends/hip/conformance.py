"""hip in test/conformance/run.py --compile-only: each arch's code object
(kiln-compile --emit=hsaco) must list its kernels in its notes and
disassemble to kernel code."""

import os

from checks import COMPILE_ERROR, LLVM_BIN, Failed, binaries, tool_output


def validate_hsaco(folder, deadline):
    for f in binaries(folder, ".hsaco"):
        notes = tool_output([os.path.join(LLVM_BIN, "llvm-readobj"), "--notes", f],
                            deadline, "llvm-readobj")
        if "amdhsa.kernels" not in notes or ".name:" not in notes:
            raise Failed(COMPILE_ERROR, "%s lists no kernels in its notes" %
                         os.path.basename(f))
        asm = tool_output([os.path.join(LLVM_BIN, "llvm-objdump"), "-d", f],
                          deadline, "llvm-objdump")
        if "s_endpgm" not in asm:
            raise Failed(COMPILE_ERROR, "%s disassembles to no kernel code" %
                         os.path.basename(f))


COMPILE_ONLY = {"hip": ("hsaco", validate_hsaco)}
