"""Checks the importer's op registrations against onnx's schema history.

Reads `kiln-compile --list-ops` ("domain op sinceVersion" lines) on stdin.
The registry picks an op's handler by the model's opset, so a registration
only means something at a version where ONNX defines a form of the op: each
sinceVersion must be one of that op's since_versions in
onnx.defs.get_all_schemas_with_history(). A registration at 1 for an op
that appeared at 13 would claim opsets the op does not exist in.

Exits 1, naming each bad registration and the versions onnx has, if any is
wrong or the listing is empty. Domains onnx has no schemas for (none today)
are skipped with a note, as their versions are Kiln's own.

usage: kiln-compile --list-ops | check_op_versions.py
"""

import collections
import sys

import onnx.defs

history = collections.defaultdict(set)
for schema in onnx.defs.get_all_schemas_with_history():
    history[(schema.domain or "ai.onnx", schema.name)].add(schema.since_version)
onnx_domains = {domain for domain, _ in history}

bad, checked, skipped = [], 0, set()
for line in sys.stdin:
    if not line.strip():
        continue
    domain, name, since = line.split()
    if domain not in onnx_domains:
        skipped.add(domain)
        continue
    versions = sorted(history.get((domain, name), ()))
    checked += 1
    if not versions:
        bad.append("%s %s %s: onnx has no such op" % (domain, name, since))
    elif int(since) not in versions:
        bad.append("%s %s %s: onnx defines it since %s" %
                   (domain, name, since, ", ".join(map(str, versions))))

for domain in sorted(skipped):
    print("skipped domain %s: onnx has no schemas for it" % domain)
for b in bad:
    print(b)
if bad or not checked:
    print("%d of %d registrations are not at an onnx since_version" % (len(bad), checked))
    sys.exit(1)
print("%d registrations are at onnx since_versions" % checked)
