"""Checks that a target is one folder (docs/design.md, "Adding a backend").

1. The core that chooses between targets names none of them. Targets are the
   folders under backends/ and every name() their compilers return (a folder
   may register more than its own name). Comments may name them; code and
   strings may not.
2. Nothing outside a target's folder refers into it: no file outside
   backends/<name>/ spells the folder's path or the name of a file found only
   in that folder (its lit and unit tests, its expected-failure lists, its
   mocks), comments included. docs/ and README.md, which describe the
   targets, are exempt.

cpu is exempt from both: it is the default target and the reference the
others are checked against.

usage: check_target_names.py <source root>
"""

import collections
import glob
import os
import re
import subprocess
import sys

CORE = ["tools/kiln-compile", "tools/kiln-opt", "lib/Target", "include/kiln/Target",
        "lib/Pipeline", "test/conformance/run.py", "test/conformance/checks.py",
        "test/CMakeLists.txt", "test/lit.cfg.py", "test/unit/CMakeLists.txt"]
EXEMPT = {"cpu"}
DESCRIBE_TARGETS = ("docs/", "README.md")


def targets(root):
    names = set()
    for folder in glob.glob(os.path.join(root, "backends", "*", "")):
        names.add(os.path.basename(os.path.dirname(folder)))
        for f in glob.glob(os.path.join(folder, "compiler", "*.cpp")):
            names.update(re.findall(r'name\(\) const override \{ return "([\w-]+)"',
                                    open(f).read()))
    return names - EXEMPT


def code_lines(path):
    """(line number, text) of the lines that are not comments."""
    in_block = in_doc = in_str = False
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        s = line.strip()
        if path.endswith(".py"):
            # An odd number of triple quotes opens or closes one. A docstring
            # (the line starts with them) is a comment; any other
            # triple-quoted string is code, to its last line.
            odd = (s.count('"""') + s.count("'''")) % 2 == 1
            if in_doc:
                in_doc = not odd
                continue
            if in_str:
                in_str = not odd
                yield n, line
                continue
            if s.startswith(('"""', "'''")):
                in_doc = odd
                continue
            in_str = odd
            if s.startswith("#"):
                continue
            line = line.split("  #")[0]
        elif path.endswith((".txt", ".cmake")):
            if s.startswith("#"):
                continue
        else:
            if in_block:
                in_block = "*/" not in s
                continue
            if s.startswith("/*"):
                in_block = "*/" not in s
                continue
            if s.startswith("//"):
                continue
            line = line.split("//")[0] if '"' not in line.split("//")[0] else line
        yield n, line


def core_names_targets(root, names):
    word = re.compile(r"(?<![\w-])(%s)(?![\w-])" % "|".join(sorted(map(re.escape, names))))
    bad = []
    for entry in CORE:
        path = os.path.join(root, entry)
        files = [path] if os.path.isfile(path) else sorted(
            f for f in glob.glob(os.path.join(path, "**", "*"), recursive=True)
            if os.path.isfile(f))
        for f in files:
            for n, line in code_lines(f):
                m = word.search(line)
                if m:
                    bad.append("%s:%d: names target '%s': %s" % (
                        os.path.relpath(f, root), n, m.group(1), line.strip()))
    return bad


def source_files(root):
    """The repository's files, relative to root: what git tracks or would
    (so a new file counts before it is added), else a walk that skips hidden
    folders and build trees."""
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], capture_output=True, text=True,
                             check=True).stdout
        files = [f for f in out.split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for d, dirs, names in os.walk(root):
            dirs[:] = [x for x in dirs if not x.startswith(".") and
                       not os.path.exists(os.path.join(d, x, "CMakeCache.txt"))]
            files += [os.path.relpath(os.path.join(d, n), root) for n in names]
    return sorted(f for f in files if os.path.isfile(os.path.join(root, f)))


def references_into_folders(root, files):
    """Lines outside each non-exempt backends/<name>/ that point into it."""
    folders = sorted({f.split("/")[1] for f in files if f.startswith("backends/")
                      and f.count("/") >= 2} - EXEMPT)
    # A file name found in one folder only is that folder's file; a shared one
    # (CMakeLists.txt, kernels.onnxtxt) says nothing about where it points.
    seen = collections.Counter(os.path.basename(f) for f in files)
    pattern = {}
    for folder in folders:
        own = sorted({os.path.basename(f) for f in files
                      if f.startswith("backends/%s/" % folder) and seen[os.path.basename(f)] == 1})
        words = ["backends/" + folder] + own
        pattern[folder] = re.compile(r"(?<![\w.-])(%s)(?![\w-])" %
                                     "|".join(map(re.escape, words)))
    bad = []
    for f in files:
        if f.startswith(DESCRIBE_TARGETS):
            continue
        with open(os.path.join(root, f), "rb") as fh:
            data = fh.read()
        if b"\0" in data:
            continue
        for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            for folder, p in pattern.items():
                m = p.search(line)
                if m and not f.startswith("backends/%s/" % folder):
                    bad.append("%s:%d: refers into backends/%s ('%s'): %s" % (
                        f, n, folder, m.group(1), line.strip()))
    return folders, bad


def main(root):
    names = targets(root)
    if not names:
        print("no targets under %s/backends" % root)
        return 1
    core = core_names_targets(root, names)
    folders, refs = references_into_folders(root, source_files(root))
    print("targets: " + ", ".join(sorted(names)))
    print("folders: " + ", ".join(folders))
    for b in core + refs:
        print(b)
    print("%d lines of the core name a target" % len(core))
    print("%d lines outside a target's folder refer into it" % len(refs))
    return 1 if core or refs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
