import json, os, sys, time, numpy as np
os.environ["TVM_USE_RUNTIME_LIB"] = "1"
import ctypes, glob
import tvm_ffi
for lib in glob.glob(os.path.dirname(tvm_ffi.__file__) + "/lib/libtvm_ffi.so"):
    ctypes.CDLL(lib, ctypes.RTLD_GLOBAL)
import tvm
ctypes.CDLL(os.path.dirname(tvm.__file__) + "/lib/libtvm_runtime_cuda.so", ctypes.RTLD_GLOBAL)
from tvm.runtime import vm as rvm
import subprocess, tempfile


@tvm_ffi.register_global_func("tvm_callback_cuda_compile", override=True)
def _compile(code, *args):
    # runtime-only TVM here: compile the artifact's CUDA source with nvcc for this GPU
    with tempfile.TemporaryDirectory() as d:
        open(d + "/k.cu", "w").write(code)
        subprocess.run(["nvcc", "-fatbin", "-O3", "-arch=sm_90", "-o", d + "/k.fatbin", d + "/k.cu"], check=True)
        return bytearray(open(d + "/k.fatbin", "rb").read())
dev = tvm.cuda(0)
print("cuda exists", dev.exist, dev.device_name if dev.exist else "")
d = np.load(os.environ.get("GPU_ART", ".gpu/art") + "/data.npz")
res = {"device": dev.device_name}
def load(p):
    return rvm.VirtualMachine(tvm.runtime.load_module(p), dev)
vm = load(os.environ.get("GPU_ART", ".gpu/art") + "/vit_cuda.so")
x = tvm.runtime.tensor(d["x"], device=dev)
out = vm["main"](x)
o = (out[0] if not hasattr(out, "numpy") else out).numpy()
ref = d["ort"]
cos = float((o.ravel() @ ref.ravel()) / np.linalg.norm(o) / np.linalg.norm(ref))
res["vit"] = {"max_abs_err_vs_ort": float(np.abs(o - ref).max()), "cosine_vs_ort": cos,
              "top1_agreement": float((o.argmax(-1) == ref.argmax(-1)).mean()),
              "top1_accuracy": float((o.argmax(-1) == d["labels"]).mean())}
ts = []
for _ in range(5): vm["main"](x)
dev.sync()
for _ in range(30):
    t = time.perf_counter(); vm["main"](x); dev.sync(); ts.append(time.perf_counter() - t)
res["vit"]["median_ms_batch32"] = 1000 * float(np.median(ts))
vm2 = load(os.environ.get("GPU_ART", ".gpu/art") + "/int_cuda.so")
outs = vm2["main"](*[tvm.runtime.tensor(d[k], device=dev) for k in ("xi", "w", "b")])
q, m = outs[0].numpy(), outs[1].numpy()
res["int_module_bit_exact"] = bool(np.array_equal(q, d["q"]) and np.array_equal(m, d["m"]))
print(json.dumps(res, indent=1))
json.dump(res, open(os.environ.get("OUT", ".") + "/gpu_check.json", "w"), indent=1)
