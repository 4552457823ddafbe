"""NVIDIA GPUs through CUDA. Builds without a GPU: the artifact keeps CUDA source
(compiled by NVRTC or nvcc when loaded on the GPU machine) and ``model.cu`` is written
next to ``model.so``. ``validate_with_nvcc`` compiles that source offline. Where a GPU is
present the artifact is runnable (and ``--eval-data`` evaluates it on the GPU).

Pipeline: TVM's CUDA default (legalize, fuse, dlight schedules), plus one fix: int8
matmuls are marked ``dlight.do_not_tensorize`` because dlight's int8 tensor-core path
fails in 0.27 (``GetWmmaFragmentSize``); they get SIMT schedules instead.
"""
from __future__ import annotations

import shutil

import tvm
import tvm_ffi

from ..errors import QCompileError
from .common import Artifact

DEFAULT_ARCH = "sm_80"


def make_target(arch: str | None = None, **_):
    arch = arch or DEFAULT_ARCH
    if not arch.startswith("sm_") or not arch[3:].isdigit():
        raise QCompileError(f"bad CUDA arch '{arch}'", hint="use sm_NN, e.g. sm_80 or sm_90")
    host = tvm.target.Target({"kind": "llvm"})
    return tvm.target.Target({"kind": "cuda", "arch": arch}, host=host)


def _has_int8_buffer(func) -> bool:
    found = []

    def cb(obj):
        if isinstance(obj, tvm.tirx.BufferType) and str(obj.dtype) in ("int8", "uint8"):
            found.append(obj)

    tvm_ffi.structural_walk(func, cb)
    return bool(found)


@tvm.ir.transform.module_pass(opt_level=0, name="qcompile.NoInt8Tensorize")
def no_int8_tensorize(mod, _ctx):
    out = {}
    for gv, f in mod.functions.items():
        if isinstance(f, tvm.tirx.PrimFunc) and _has_int8_buffer(f):
            f = f.with_attr("dlight.do_not_tensorize", True)
        out[gv] = f
    return tvm.IRModule(out, attrs=mod.attrs)


def pipeline(target):
    from tvm.relax.backend.cuda import pipeline as P

    legal = P.legalize_passes(target)
    passes = (P.library_dispatch_passes(target) + legal[:-1] + [no_int8_tensorize, legal[-1]]
              + P.dataflow_lower_passes(target) + P.finalize_passes(target))

    @tvm.transform.module_pass(opt_level=0, name="qcompile.cuda_pipeline")
    def run(mod, _ctx):
        with target:
            return tvm.transform.Sequential(passes)(mod)

    return run


def cuda_source(ex) -> str:
    host = ex.mod.imports[0]
    for m in host.imports:
        if m.kind == "cuda":
            return m.inspect_source("cuda")
    raise RuntimeError("no CUDA module in the executable")


def build(mod, arch: str | None = None, **_) -> Artifact:
    tgt = make_target(arch)
    ex = tvm.compile(mod, target=tgt, relax_pipeline=pipeline(tgt))
    src = cuda_source(ex)
    return Artifact("cuda", tgt, ex, sources={"model.cu": src},
                    info={"arch": str(tgt.attrs["arch"]), "kernels": src.count("__global__")},
                    runnable=gpu_present(), device="cuda")


def gpu_present() -> bool:
    try:
        return bool(tvm.cuda(0).exist)
    except Exception:  # noqa: BLE001 - no CUDA runtime at all
        return False


def validate_with_nvcc(art: Artifact) -> int:
    """Compile the CUDA source with nvcc (no GPU needed); returns the fatbin size."""
    if shutil.which("nvcc") is None:
        raise QCompileError("nvcc not found", hint="install the CUDA toolkit to validate CUDA source offline")
    import tvm.support.nvcc as nvcc

    with art.tvm_target:
        return len(nvcc.compile_cuda(art.sources["model.cu"], target_format="fatbin", compiler="nvcc"))
