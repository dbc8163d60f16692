"""torch tensors through kiln.Session without copies on the cpu: inputs read
in place, outputs written into torch tensors, results viewed by torch."""
import os
import sys
from pathlib import Path

import numpy as np
import torch
from onnx import TensorProto, helper

if not os.environ.get("KILN_TEST_INSTALLED"):  # test/package runs it on an installed kiln
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
import kiln  # noqa: E402


def test_torch_tensors_in_and_out(tmp_path):
    shape = [512, 64]
    g = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["y"])], "sig",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    art = kiln.compile(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "sig.kiln")
    x = torch.randn(shape)
    with kiln.Session(art, threads=1) as s:
        (y,) = s.run({"x": x})
        torch.testing.assert_close(torch.from_dlpack(y), torch.sigmoid(x), rtol=1e-5, atol=1e-6)
        # torch's allocations are 64-byte aligned: the session reads x itself.
        assert s._bound["x"].ctypes.data == x.data_ptr()
        out = torch.empty(shape)
        (got,) = s.run({"x": x}, out=[out])
        assert got is out
        torch.testing.assert_close(out, torch.sigmoid(x), rtol=1e-5, atol=1e-6)
    # torch takes a result without a copy.
    assert torch.from_dlpack(y).data_ptr() == y.ctypes.data
