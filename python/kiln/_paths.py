import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def build_dir():
    """KILN_BUILD_DIR if set, else <repo>/build."""
    return Path(os.environ.get("KILN_BUILD_DIR") or REPO / "build")


def tool(name):
    return build_dir() / "bin" / name
