"""Build CUDA artifacts here (no GPU) for the device check: the bundled ViT (none pipeline)
and the all-integer test module, with inputs and CPU references."""
import sys, os, numpy as np, onnxruntime as ort
sys.path.insert(0, "tests")
import qcompile as qc
from qcompile.models import ASSETS, DEFAULT_MODEL
from test_backends import IntModule, numpy_reference
out = os.environ.get("GPU_ART", ".gpu/art")
os.makedirs(out, exist_ok=True)
model = qc.load(DEFAULT_MODEL, input_shapes={"pixels": (32, 1, 28, 28)})
mod = qc.PassManager(qc.pipeline("none")).run(model.mod)
art = qc.build(mod, "cuda")
art.executable.export_library(f"{out}/vit_cuda.so")
d = np.load(ASSETS / "fmnist_test256.npz")
x = d["pixels"][:32]
ref = ort.InferenceSession(str(DEFAULT_MODEL), providers=["CPUExecutionProvider"]).run(None, {"pixels": x})[0]
art2 = qc.build(IntModule, "cuda")
art2.executable.export_library(f"{out}/int_cuda.so")
rng = np.random.default_rng(0)
xi = rng.integers(-128, 128, (7, 32), dtype=np.int8); w = rng.integers(-128, 128, (32, 16), dtype=np.int8)
b = rng.integers(-2**20, 2**20, 16, dtype=np.int32)
q, m = numpy_reference(xi, w, b)
np.savez(f"{out}/data.npz", x=x, labels=d["labels"][:32], ort=ref, xi=xi, w=w, b=b, q=q, m=m)
print("built")
