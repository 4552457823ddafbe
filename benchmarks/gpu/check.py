"""Run on the GPU machine (runtime-only TVM, see README.md): load the artifacts that
build_here.py wrote, check their outputs against the CPU references and time them.
Writes $OUT/gpu_check.json."""
import ctypes
import glob
import json
import os
import subprocess
import tempfile
import time

import numpy as np

os.environ["TVM_USE_RUNTIME_LIB"] = "1"
import tvm_ffi  # noqa: E402

for lib in glob.glob(os.path.dirname(tvm_ffi.__file__) + "/lib/libtvm_ffi.so"):
    ctypes.CDLL(lib, ctypes.RTLD_GLOBAL)
import tvm  # noqa: E402

ctypes.CDLL(os.path.dirname(tvm.__file__) + "/lib/libtvm_runtime_cuda.so", ctypes.RTLD_GLOBAL)
from tvm.runtime import vm as rvm  # noqa: E402

ART = os.environ.get("GPU_ART", ".gpu/art")


@tvm_ffi.register_global_func("tvm_callback_cuda_compile", override=True)
def _compile(code, *args):
    # runtime-only TVM here: compile the artifact's CUDA source with nvcc for this GPU
    with tempfile.TemporaryDirectory() as d:
        open(d + "/k.cu", "w").write(code)
        subprocess.run(["nvcc", "-fatbin", "-O3", "-arch=sm_90", "-o", d + "/k.fatbin", d + "/k.cu"], check=True)
        return bytearray(open(d + "/k.fatbin", "rb").read())


dev = tvm.cuda(0)
print("cuda exists", dev.exist, dev.device_name if dev.exist else "", flush=True)


def load(name, art=None):
    path = f"{art or ART}/{name}.so"
    if not os.path.exists(path) and os.path.exists(path + ".xz"):  # carried compressed (device carry limit)
        import lzma
        with lzma.open(path + ".xz") as src, open(path, "wb") as dst:
            dst.write(src.read())
    return rvm.VirtualMachine(tvm.runtime.load_module(path), dev)


def first(out):
    return (out[0] if not hasattr(out, "numpy") else out).numpy()


def timed(vm, x, n=50):
    for _ in range(10):
        vm["main"](x)
    dev.sync()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        vm["main"](x)
        dev.sync()
        ts.append(time.perf_counter() - t)
    return 1000 * float(np.median(ts))


def cosine(a, b):
    return float((a.ravel() @ b.ravel()) / np.linalg.norm(a) / np.linalg.norm(b))


def main():
    d = np.load(ART + "/data.npz")
    res = {"device": dev.device_name, "build": json.load(open(ART + "/build_info.json"))}
    labels = d["labels"]
    for batch in (32, 256):
        x = tvm.runtime.tensor(d[f"x{batch}"], device=dev)
        ref, lab = d[f"ort{batch}"], labels[:batch]
        r = res[f"vit_b{batch}"] = {}
        vm = load(f"vit_none_b{batch}")
        o = first(vm["main"](x))
        r["none"] = {"cosine_vs_ort": cosine(o, ref), "max_abs_err_vs_ort": float(np.abs(o - ref).max()),
                     "top1_accuracy": float((o.argmax(-1) == lab).mean()), "median_ms": timed(vm, x)}
        vm = load(f"vit_int_b{batch}")
        o = first(vm["main"](x))
        cpu = d[f"int_cpu{batch}"]
        r["int_only"] = {"equal_to_llvm_artifact": float((o == cpu).mean()), "max_abs_diff_vs_llvm": float(np.abs(o - cpu).max()),
                         "cosine_vs_ort": cosine(o, ref), "top1_accuracy": float((o.argmax(-1) == lab).mean()),
                         "top1_agreement_with_float": float((o.argmax(-1) == ref.argmax(-1)).mean()),
                         "median_ms": timed(vm, x)}
        r["int_over_none_time"] = r["int_only"]["median_ms"] / r["none"]["median_ms"]
        print(batch, json.dumps(r), flush=True)

    vm = load("vit_int_b256_intio")
    xq = tvm.runtime.tensor(d["xq256"], device=dev)
    o = first(vm["main"](xq))
    res["vit_int_b256_intio"] = {"bit_exact_vs_numpy_integer_graph": bool(np.array_equal(o, d["int_ref256"])),
                                 "dtype": str(o.dtype), "median_ms": timed(vm, xq)}
    vm2 = load("int_cuda")
    outs = vm2["main"](*[tvm.runtime.tensor(d[k], device=dev) for k in ("xi", "w", "b")])
    res["int_module_bit_exact"] = bool(np.array_equal(outs[0].numpy(), d["q"]) and np.array_equal(outs[1].numpy(), d["m"]))
    print(json.dumps(res, indent=1))
    json.dump(res, open(os.environ.get("OUT", ".") + "/gpu_check.json", "w"), indent=1)


if __name__ == "__main__":
    main()
