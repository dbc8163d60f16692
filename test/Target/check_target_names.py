"""Checks that a target is one folder (docs/design.md, "Adding a backend"):
the core that chooses between targets names none of them.

Targets are the folders under backends/ and every name() their compilers
return (levelzero-cpu lives in backends/levelzero). Comments may name them;
code and strings may not. cpu is exempt: it is the default target and the
reference the others are checked against.

usage: check_target_names.py <source root>
"""

import glob
import os
import re
import sys

CORE = ["tools/kiln-compile", "tools/kiln-opt", "lib/Target", "include/kiln/Target",
        "lib/Pipeline", "test/conformance/run.py", "test/conformance/checks.py",
        "test/CMakeLists.txt"]
EXEMPT = {"cpu"}


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
    in_block = in_doc = False
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        s = line.strip()
        if path.endswith(".py"):
            if s.startswith(('"""', "'''")):
                in_doc = not in_doc if s.count('"""') + s.count("'''") == 1 else in_doc
                continue
            if in_doc or s.startswith("#"):
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


def main(root):
    names = targets(root)
    if not names:
        print("no targets under %s/backends" % root)
        return 1
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
    print("targets: " + ", ".join(sorted(names)))
    for b in bad:
        print(b)
    print("%d lines of the core name a target" % len(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
