"""Integer-only accelerator target: TVM's C backend (portable C, compiled by the system C
compiler into ``model.so``; the C source is written as ``model.c``), guarded by the
integer-only verifier: a module with any floating-point value left is refused, and the
error lists each offending kernel and the Relax binding it came from."""
from __future__ import annotations

import tvm

from qcompile.errors import QCompileError
from qcompile.backends.common import Artifact, legalize_stage
from qcompile.backends.verify import find_floats


def make_target():
    return tvm.target.Target({"kind": "c"})


def build(mod) -> Artifact:
    tgt = make_target()
    offences = find_floats(legalize_stage(mod, tgt), tgt)
    if offences:
        listing = "; ".join(str(o) for o in offences[:3])
        more = f" (+{len(offences) - 3} more)" if len(offences) > 3 else ""
        err = QCompileError(f"int-accel refuses the build: {len(offences)} kernel(s) compute in floating point: "
                            f"{listing}{more}", hint="run an integer pipeline (--pipeline int-only --int-io)")
        err.offences = offences
        raise err
    from tvm.relax.backend.cpu_generic import pipeline as cpu_pipeline  # relax has none for "c"

    # TVM 0.27's C codegen prints a buffer merged by StorageRewrite over symbolic extents
    # (its size a nested max, SwinV2's fused pad and concat over a symbolic batch) with a
    # declaration inside the allocation call's argument: C that does not compile. Without the
    # merge each buffer keeps its own size.
    with tvm.transform.PassContext(config={"tirx.disable_storage_rewrite": True}):
        ex = tvm.compile(mod, target=tgt, relax_pipeline=cpu_pipeline.get_default_pipeline(tgt))
    src = ex.mod.imports[0].inspect_source("c") if ex.mod.imports else ""
    return Artifact("int-accel", tgt, ex, sources={"model.c": src}, info={"verified_integer_only": True})
