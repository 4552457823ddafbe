"""CPU target through LLVM. Default: this machine's CPU (``llvm_get_system_cpu``), all cores;
Relax's CPU pipeline (legalize, fuse) plus qcompile's default schedules
(:mod:`qcompile.backends.cpu_schedule`; TVM itself leaves CPU kernels unscheduled).

One change to TVM's pipeline: for modules with symbolic shapes (a decoder's past length)
``RewriteDataflowReshape`` is left out, because its iterator analysis fails in 0.27 on
kernels over extents like ``(past + 64) * 64 * 3`` ("padding factor ... is not divisible").
That pass only turns copy-free reshapes into views, so leaving it out costs a copy, not
correctness."""
from __future__ import annotations

import os

import tvm
from tvm import relax

from .common import Artifact
from .cpu_schedule import default_cpu_schedule


def make_target(mcpu: str | None = None, **_):
    cpu = mcpu or tvm.target.codegen.llvm_get_system_cpu()
    return tvm.target.Target({"kind": "llvm", "mcpu": cpu, "num-cores": os.cpu_count() or 1})


def has_symbolic_shapes(mod) -> bool:
    return any(len(relax.analysis.defined_symbolic_vars(f)) for f in mod.functions.values()
               if isinstance(f, relax.Function))


def pipeline(target, symbolic: bool):
    from tvm.relax.backend.cpu_generic import pipeline as P

    lower = [p for p in P.dataflow_lower_passes(target)
             if not (symbolic and "RewriteDataflowReshape" in str(p.info.name))]
    passes = (P.library_dispatch_passes(target) + P.legalize_passes(target) + [default_cpu_schedule] + lower
              + P.finalize_passes(target))

    @tvm.transform.module_pass(opt_level=0, name="qcompile.llvm_pipeline")
    def run(mod, _ctx):
        with target:
            return tvm.transform.Sequential(passes)(mod)

    return run


def build(mod, mcpu: str | None = None, **_) -> Artifact:
    tgt = make_target(mcpu)
    symbolic = has_symbolic_shapes(mod)
    ex = tvm.compile(mod, target=tgt, relax_pipeline=pipeline(tgt, symbolic))
    return Artifact("llvm", tgt, ex, info={"mcpu": str(tgt.attrs["mcpu"]), "symbolic_shapes": symbolic})
