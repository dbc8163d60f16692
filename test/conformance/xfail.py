"""The expected-failure lists of ONNX's backend tests, one per target:
backends/<name>/test/conformance/<target>.xfail, one `test_name  # outcome:
reason` per line. Read by run.py and by the kiln.backend test
(test_onnx_backend.py), so both hold Kiln to the same list."""

import collections
import glob
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def xfail_lists():
    """target -> path of its expected-failure list. Lists live with their
    backend (backends/<name>/test/conformance/<target>.xfail), and a folder
    may register more targets than its own name (levelzero-cpu's list is
    levelzero's), so they are found rather than named."""
    pattern = os.path.join(REPO, "backends", "*", "test", "conformance", "*.xfail")
    return {os.path.basename(f)[:-len(".xfail")]: f for f in sorted(glob.glob(pattern))}


def xfail_path(target):
    """Where the list of `target` is, or goes when it has none yet: the
    folder named after the target."""
    return xfail_lists().get(target) or os.path.join(
        REPO, "backends", target, "test", "conformance", target + ".xfail")


def read_xfail(path):
    """test name -> "outcome: reason", in file order; empty if no file."""
    entries = collections.OrderedDict()
    if not path or not os.path.exists(path):
        return entries
    with open(path) as f:
        for line in f:
            body, _, comment = line.partition("#")
            name = body.strip()
            if name:
                entries[name] = comment.strip()
    return entries
