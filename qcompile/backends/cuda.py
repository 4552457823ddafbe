"""NVIDIA GPUs through CUDA. Builds without a GPU: the artifact keeps CUDA source
(compiled by NVRTC or nvcc when loaded on the GPU machine) and ``model.cu`` is written
next to ``model.so``. ``validate_with_nvcc`` compiles that source offline. Where a GPU is
present the artifact is runnable (and ``--eval-data`` evaluates it on the GPU).

Pipeline: TVM's CUDA default (legalize, fuse, dlight schedules) with two changes for
integer models: int8 matmuls (with their fused requantization epilogues) are scheduled by
:class:`~qcompile.backends.cuda_dp4a.Int8MatmulDP4A` as ``__dp4a`` dot products, tried
before dlight's rules; and any int8 function left over is marked
``dlight.do_not_tensorize``, because dlight's int8 tensor-core path fails in 0.27
(``GetWmmaFragmentSize``), so it gets a SIMT schedule instead of a crash.

Elementwise chains of an int8 tensor (ShiftGELU) are 256-entry table lookups, as on llvm
(:mod:`~qcompile.backends.lut`): one load per element instead of the chain, and a small
epilogue. Inlined into a dp4a matmul, ShiftGELU's expression (the requantized input
repeated at every use) made TVM's ``RemoveNoOp`` take 15 s per kernel.
"""
from __future__ import annotations

import shutil

import tvm
import tvm_ffi

from qcompile.errors import QCompileError
from qcompile.backends import lut
from qcompile.backends.common import Artifact, TargetRewrite, after_fuse_ops, guard_plan
from qcompile.backends.cuda_dp4a import uses_dp4a
from qcompile.backends.verify import float_nodes

DEFAULT_ARCH = "sm_80"


def make_target(arch: str | None = None):
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


def symbolic_spatial_rule():
    """A dlight rule for one spatial block over a symbolic extent (a decoder's cache concat,
    ``[B, H, past + T, D]``), tried before ``Fallback``: ``Fallback`` fuses every loop, and
    TVM 0.27's iterator analysis fails on the fused symbolic extent ("The padding factor ...
    is not divisible"). Here no symbolic loop is fused or split: the static loops after the
    symbolic one are the threads, the symbolic loop is ``blockIdx.x`` and the static loops
    before it ``blockIdx.y``. (Built on first use: dlight is imported lazily.)"""
    from tvm.s_tir.dlight import base
    from tvm.s_tir.dlight.analysis import normalize_prim_func
    from tvm.s_tir.dlight.base import try_inline
    from tvm.s_tir.dlight.gpu.base import GPUScheduleRule

    class SymbolicSpatial(GPUScheduleRule):
        def apply(self, func, target, _tunable):
            if not isinstance(func, tvm.tirx.PrimFunc) or not self.is_target_available(target):
                return None
            sch = tvm.s_tir.Schedule(func)
            infos = normalize_prim_func(sch)
            if infos is None:
                return None
            infos = try_inline(sch, infos)
            if len(infos) != 1 or set(infos[0].dom_kind()) != {"S"}:
                return None
            loops = sch.get_loops(infos[0].block_rv)
            dyn = [i for i, lp in enumerate(loops) if not isinstance(sch.get(lp).extent, tvm.tirx.IntImm)]
            if len(dyn) != 1 or dyn[0] == len(loops) - 1:
                return None
            p = dyn[0]
            threads = 1
            for lp in loops[p + 1:]:
                threads *= int(sch.get(lp).extent)
            if threads > base.max_threads_per_block(target):
                return None
            sch.bind(sch.fuse(*loops[p + 1:]) if len(loops) > p + 2 else loops[p + 1], "threadIdx.x")
            sch.bind(loops[p], "blockIdx.x")
            if p:
                sch.bind(sch.fuse(*loops[:p]) if p > 1 else loops[0], "blockIdx.y")
            return sch

    return SymbolicSpatial()


def tolerant(rule, seen: dict):
    """``rule`` (a dlight schedule rule) that declines a function it fails on instead of
    failing the build: dlight's rules assert on forms they were not written for (GEMV's
    ``normalize`` on an integer kernel without a reduction loop: LeViT, MobileViT; a
    cache-write stage with a consumer it cannot inline: CvT), and ``ApplyDefaultSchedule``
    lets the first exception end the build. The next rule is tried (``Fallback`` last, which
    schedules anything); ``seen["declined"]`` counts the functions per rule."""
    from tvm.s_tir.dlight.base import ScheduleRule

    class Tolerant(ScheduleRule):
        def apply(self, func, target, tunable):
            try:
                return rule.apply(func, target, tunable)
            except Exception:  # noqa: BLE001 - any failure of a rule means it does not apply
                name = type(rule).__name__
                seen.setdefault("declined", {})[name] = seen.setdefault("declined", {}).get(name, 0) + 1
                return None

        def is_target_available(self, target):
            return rule.is_target_available(target)

    return Tolerant()


def pipeline(target, seen: dict | None = None):
    """The relax pipeline; ``seen`` (optional) receives the scheduled module under "tir"."""
    from tvm.relax.backend.cuda import pipeline as P

    from tvm.s_tir import dlight as dl

    from qcompile.backends.cuda_dp4a import Int8MatmulDP4A

    seen = {} if seen is None else seen
    legal = []  # all but dlight's ApplyDefaultSchedule; table lookups fuse as elementwise
    for p in after_fuse_ops(P.legalize_passes(target)[:-1]):
        legal.append(p)
        if str(p.info.name) == "AnnotateTIROpPattern":
            legal.append(lut.mark_elementwise)
    rules = [Int8MatmulDP4A(), dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(), dl.gpu.GeneralReduction(),
             symbolic_spatial_rule()]
    schedule = dl.ApplyDefaultSchedule(*[tolerant(r, seen) for r in rules], dl.gpu.Fallback())
    front = P.library_dispatch_passes(target) + legal + [no_int8_tensorize, schedule]
    back = P.dataflow_lower_passes(target) + guard_plan(P.finalize_passes(target))

    @tvm.transform.module_pass(opt_level=0, name="qcompile.cuda_pipeline")
    def run(mod, _ctx):
        with target:
            mod = tvm.transform.Sequential(front)(mod)
            seen["tir"] = mod
            return tvm.transform.Sequential(back)(mod)

    return run


def cuda_source(ex) -> str:
    host = ex.mod.imports[0]
    for m in host.imports:
        if m.kind == "cuda":
            return m.inspect_source("cuda")
    raise RuntimeError("no CUDA module in the executable")


REWRITTEN = "qcompile.cuda_rewrites"  # module attribute: the graph rewrite ran


def graph_passes() -> list:
    """The cuda build's graph rewrite (int8 table lookups) as a pass: the driver runs it, so
    its IR is dumped to ``OUT/ir/`` like the llvm build's rewrites."""
    def step(m):
        m, n = lut.tabulate(m)
        return m, {"int8_luts": n}
    return [TargetRewrite("cuda.lut", step, mark=(REWRITTEN, 1))]


def build(mod, *, arch: str | None = None) -> Artifact:
    """``info`` lists the matmuls computed with ``__dp4a`` and every kernel that still has a
    floating-point value (for an ``int-only --int-io`` model: none)."""
    tgt = make_target(arch)
    seen = {}
    luts = None  # counted where the driver ran the rewrite as a pass (report.json's notes)
    if not (mod.attrs or {}).get(REWRITTEN):
        mod, luts = lut.tabulate(mod)
    ex = tvm.compile(mod, target=tgt, relax_pipeline=pipeline(tgt, seen))
    src = cuda_source(ex)
    kernels = {gv.name_hint: f for gv, f in seen["tir"].functions.items() if isinstance(f, tvm.tirx.PrimFunc)}
    return Artifact("cuda", tgt, ex, sources={"model.cu": src},
                    info={"arch": str(tgt.attrs["arch"]), "kernels": src.count("__global__"), "int8_luts": luts,
                          "dp4a_matmuls": sorted(n for n, f in kernels.items() if uses_dp4a(f)),
                          "float_kernels": sorted(n for n, f in kernels.items() if float_nodes(f)),
                          "schedule_rules_declined": dict(seen.get("declined", {}))},
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
