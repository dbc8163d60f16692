"""Turns a .onnxtxt lit test into an .onnx file.

The test holds a model in ONNX's textual syntax (onnx.parser); lines starting
with // (RUN and CHECK lines) are dropped first.
usage: onnx_text.py TEST.onnxtxt OUT.onnx
       onnx_text.py --each TEST.onnxtxt OUTDIR
With --each the test holds several models, each after a line "//--- NAME";
they are written to OUTDIR/001-NAME.onnx, OUTDIR/002-..., in file order.
"""
import os
import sys

import onnx
import onnx.parser


def parse(lines):
    return onnx.parser.parse_model("".join(l for l in lines if not l.lstrip().startswith("//")))


if sys.argv[1] == "--each":
    sections = []
    for line in open(sys.argv[2]):
        if line.startswith("//--- "):
            sections.append((line[len("//--- "):].strip(), []))
        elif sections:
            sections[-1][1].append(line)
    os.makedirs(sys.argv[3], exist_ok=True)
    for i, (name, lines) in enumerate(sections, 1):
        onnx.save(parse(lines), os.path.join(sys.argv[3], "%03d-%s.onnx" % (i, name)))
else:
    onnx.save(parse(open(sys.argv[1]).readlines()), sys.argv[2])
