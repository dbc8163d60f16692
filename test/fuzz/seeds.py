"""Writes seed corpora for the libFuzzer targets (scripts/fuzz.sh).

usage: seeds.py <out-dir> [<kiln-compile>]

<out-dir>/npy: .npy files of every dtype the reader takes, versions 1 to 3,
scalars, empty and Fortran-order arrays. <out-dir>/literal: kiln-run --input
literals of every dtype, named and not. <out-dir>/tensor-proto: a sample of
onnx's own backend test tensors (input_N.pb, output_N.pb). <out-dir>/import:
test/e2e's models and a sample of onnx's backend test models. With kiln-compile,
<out-dir>/kernels: test/e2e's models compiled for the cpu (the artifacts the
artifact target may run, $KILN_FUZZ_KERNELS), also its seeds.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import models  # noqa: E402

out = sys.argv[1]
for sub in ("npy", "literal", "tensor-proto", "import", "kernels"):
    os.makedirs(os.path.join(out, sub), exist_ok=True)

rng = np.random.default_rng(0)
dtypes = ["f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "?"]
for i, dt in enumerate(dtypes):
    for shape in [(), (0,), (3,), (2, 3), (1, 2, 1, 2)]:
        a = (rng.standard_normal(shape) * 10).astype(dt)
        name = f"{dt.replace('?', 'b')}_{'x'.join(map(str, shape)) or 'scalar'}"
        np.save(os.path.join(out, "npy", name + ".npy"), a)
        if shape == (2, 3):
            for version in (2, 3):
                with open(os.path.join(out, "npy", f"{name}.v{version}.npy"), "wb") as f:
                    np.lib.format.write_array(f, a, version=(version, 0))
            np.save(os.path.join(out, "npy", name + ".fortran.npy"), np.asfortranarray(a))
np.save(os.path.join(out, "npy", "big_endian.npy"), np.arange(6, dtype=">f4"))

literals = {
    "f32": "1.5,-0,inf,-inf,nan,1e-45,3.4028235e38", "f64": "0.1,-2.5e-308,1e308,2,3,4,5",
    "f16": "65504,-6e-8,0.5,1,2,3,4", "bf16": "1,-1,3.39e38,0,2,3,4",
    "f8e4m3fn": "448,-448,0.0019,nan,1,2,3", "f8e4m3fnuz": "240,-1,0,nan,1,2,3",
    "f8e5m2": "57344,-inf,1.5e-5,0,1,2,3", "f8e5m2fnuz": "57344,-1,0,nan,1,2,3",
    "f8e8m0": "1,2,0.5,1.7e38,4,8,16", "f4e2m1": "6,-6,0.5,0,1,2,3",
    "i8": "-128,127,0x10,-1,0,1,2", "u8": "255,0,0x7f,1,2,3,4",
    "i16": "-32768,32767,0,1,2,3,4", "u16": "65535,0,1,2,3,4,5",
    "i32": "-2147483648,2147483647,0,1,2,3,4", "u32": "4294967295,0,1,2,3,4,5",
    "i64": "-9223372036854775808,9223372036854775807,9007199254740993,0,1,2,3",
    "u64": "18446744073709551615,0,1,2,3,4,5", "i4": "-8,7,0,1,2,3,-1",
    "u4": "15,0,1,2,3,4,5", "i2": "-2,1,0,-1,1,0,1", "u2": "3,0,1,2,3,0,1",
    "bool": "true,false,1,0,True,False,1",
}
for dt, values in literals.items():
    seeds = {"7x" + dt: values, "1x7x1x" + dt: values, dt: values.split(",")[0],
             "0x3x" + dt: ""}
    for i, (spec, v) in enumerate(seeds.items()):
        for name in ("", "x="):
            with open(os.path.join(out, "literal", f"{dt}.{i}.{len(name)}"), "w") as f:
                f.write(f"{name}{spec}={v}")

data = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node")
tests = sorted(os.listdir(data))
for name in tests[:: max(1, len(tests) // 300)]:
    sets = os.path.join(data, name, "test_data_set_0")
    if not os.path.isdir(sets):
        continue
    model = os.path.join(data, name, "model.onnx")
    if os.path.getsize(model) <= 65536:
        with open(model, "rb") as f, open(os.path.join(out, "import", name + ".onnx"), "wb") as g:
            g.write(f.read())
    for pb in sorted(os.listdir(sets)):
        src = os.path.join(sets, pb)
        if os.path.getsize(src) <= 65536:
            with open(src, "rb") as f, open(os.path.join(out, "tensor-proto", f"{name}.{pb}"), "wb") as g:
                g.write(f.read())

for name in models.MODELS:
    onnx.save(models.build(name), os.path.join(out, "import", name + ".onnx"))

if len(sys.argv) > 2:
    with tempfile.TemporaryDirectory() as tmp:
        for name in models.MODELS:
            path = os.path.join(tmp, name + ".onnx")
            onnx.save(models.build(name), path)
            subprocess.run([sys.argv[2], path, "--target=cpu", "-o",
                            os.path.join(out, "kernels", name + ".kiln")], check=True)
