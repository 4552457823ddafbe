"""CPU target through LLVM. Default: this machine's CPU (``llvm_get_system_cpu``), all cores;
Relax's default pipeline (legalize, fuse). Kernels are unscheduled: correct, not yet fast."""
from __future__ import annotations

import os

import tvm
from tvm import relax

from .common import Artifact


def make_target(mcpu: str | None = None, **_):
    cpu = mcpu or tvm.target.codegen.llvm_get_system_cpu()
    return tvm.target.Target({"kind": "llvm", "mcpu": cpu, "num-cores": os.cpu_count() or 1})


def build(mod, mcpu: str | None = None, **_) -> Artifact:
    tgt = make_target(mcpu)
    ex = tvm.compile(mod, target=tgt, relax_pipeline=relax.get_default_pipeline(tgt))
    return Artifact("llvm", tgt, ex, info={"mcpu": str(tgt.attrs["mcpu"])})
