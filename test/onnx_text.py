"""Turns a .onnxtxt lit test into an .onnx file.

The test holds a model in ONNX's textual syntax (onnx.parser); lines starting
with // (RUN and CHECK lines) are dropped first.
usage: onnx_text.py TEST.onnxtxt OUT.onnx
"""
import sys

import onnx
import onnx.parser

text = "".join(l for l in open(sys.argv[1]) if not l.lstrip().startswith("//"))
model = onnx.parser.parse_model(text)
onnx.save(model, sys.argv[2])
