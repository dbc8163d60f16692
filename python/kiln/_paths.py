import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
REPO = PACKAGE.parents[1]


def build_dir():
    """Where bin/kiln-compile and lib/libkiln_runtime.so are: $KILN_BUILD_DIR
    if set, else the installed package itself (pip install), else <repo>/build."""
    if os.environ.get("KILN_BUILD_DIR"):
        return Path(os.environ["KILN_BUILD_DIR"])
    if (PACKAGE / "lib" / "libkiln_runtime.so").exists():
        return PACKAGE
    return REPO / "build"


def tool(name):
    return build_dir() / "bin" / name
