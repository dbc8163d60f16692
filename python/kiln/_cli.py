"""The kiln-compile and kiln-run commands of an installed package: pip puts
these wrappers on PATH; the binaries live inside the package."""
import os
import sys

from . import _paths


def _exec(name):
    path = _paths.tool(name)
    if not path.exists():
        sys.exit(f"{name}: not found at {path} (KILN_BUILD_DIR or the installed package)")
    os.execv(path, [name, *sys.argv[1:]])


def kiln_compile():
    _exec("kiln-compile")


def kiln_run():
    _exec("kiln-run")
