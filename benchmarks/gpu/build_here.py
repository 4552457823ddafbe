"""Build CUDA artifacts here (no GPU needed) for the device check, with inputs and CPU
references:

* the bundled ViT through ``none`` (float32) and ``int-only`` (float I/O: the artifact
  quantizes its input and dequantizes its logits), at batch 32 and 256;
* the ``int-only`` ViT with ``--int-io`` (int8 in, int16 out) at batch 256, whose output
  must equal the NumPy interpreter of the integer graph (``qcompile.passes.int_only.intref``) bit for bit;
* the small all-integer test module of ``tests/test_backends.py``.

The build info (which matmuls became ``__dp4a`` kernels, which kernels hold floats) is
saved as ``build_info.json`` next to the artifacts."""
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort

sys.path.insert(0, "tests")
import qcompile as qc  # noqa: E402
from qcompile.passes.int_only import intref  # noqa: E402
from qcompile.calibration import Calibration  # noqa: E402
from qcompile.driver import host_io  # noqa: E402
from qcompile.passes.int_only.intops import quantize_ref  # noqa: E402
from qcompile.models import ASSETS, DEFAULT_MODEL  # noqa: E402
from test_backends import IntModule, numpy_reference  # noqa: E402

out = os.environ.get("GPU_ART", ".gpu/art")
os.makedirs(out, exist_ok=True)
test = np.load(ASSETS / "fmnist_test256.npz")
calib = np.load(ASSETS / "fmnist_calib256.npz")
data, info = {"labels": test["labels"]}, {}


def export(name, mod, batch):
    t = time.perf_counter()
    art = qc.build(mod, "cuda")
    art.executable.export_library(f"{out}/{name}.so")
    info[name] = {"batch": batch, "build_s": round(time.perf_counter() - t, 1),
                  "dp4a_matmuls": len(art.info["dp4a_matmuls"]), "float_kernels": art.info["float_kernels"],
                  "dp4a_calls_in_source": art.sources["model.cu"].count("__dp4a(")}
    print(name, info[name], flush=True)


for batch in (32, 256):
    model = qc.load(DEFAULT_MODEL, input_shapes={"pixels": (batch, 1, 28, 28)})
    x = test["pixels"][:batch]
    data[f"x{batch}"] = x
    data[f"ort{batch}"] = ort.InferenceSession(str(DEFAULT_MODEL)).run(None, {"pixels": x})[0]
    export(f"vit_none_b{batch}", qc.PassManager(qc.pipeline("none")).run(model.mod), batch)
    for int_io in ((False, True) if batch == 256 else (False,)):
        passes = qc.pipeline("int-only", target="cuda", int_io=int_io)
        pm = qc.PassManager(passes, calibration=Calibration({"pixels": calib["pixels"]}, batch=batch,
                                                            progress=False))
        mod = pm.run(model.mod)
        name = f"vit_int_b{batch}" + ("_intio" if int_io else "")
        export(name, mod, batch)
        if int_io:
            xq = quantize_ref(x, host_io(pm)["inputs"]["pixels"]["scale"], "int8")
            data["xq256"], data["int_ref256"] = xq, intref.run(mod, xq)[0]
            info[name]["io"] = host_io(pm)
        else:
            data[f"int_cpu{batch}"] = qc.build(mod, "llvm").run(x)[0]  # the llvm artifact, same module

art2 = qc.build(IntModule, "cuda")
art2.executable.export_library(f"{out}/int_cuda.so")
rng = np.random.default_rng(0)
xi = rng.integers(-128, 128, (7, 32), dtype=np.int8)
w = rng.integers(-128, 128, (32, 16), dtype=np.int8)
b = rng.integers(-2**20, 2**20, 16, dtype=np.int32)
q, m = numpy_reference(xi, w, b)
np.savez(f"{out}/data.npz", xi=xi, w=w, b=b, q=q, m=m, **data)
json.dump(info, open(f"{out}/build_info.json", "w"), indent=1)
print("built")
