"""Small helpers over Relax IR shared by canonicalization, passes, reports and backends."""
from __future__ import annotations

import collections

import numpy as np
import tvm
from tvm import relax


def const_value(expr) -> np.ndarray | None:
    """The numpy value of a Relax constant, else None."""
    if isinstance(expr, tvm.ir.GenericConst):
        return expr.value.numpy()
    return None


def shape_of(expr) -> tuple | None:
    """Static shape of a tensor-typed expression as ints (symbolic dims kept as PrimExpr), or None."""
    ty = getattr(expr, "ty", None)
    shape = getattr(ty, "shape", None)
    if shape is None or not isinstance(ty, relax.TensorType):
        return None
    try:
        return tuple(int(d) if isinstance(d, tvm.tirx.IntImm) else d for d in shape)
    except TypeError:
        return None


def op_histogram(mod) -> dict[str, int]:
    """Count Relax ops (and composite calls, as ``composite:<name>``) in every Relax function
    of the module, composites' bodies excluded. Sorted by name for determinism."""
    counts: collections.Counter = collections.Counter()
    comps = {gv.name_hint: (f.attrs or {}).get("Composite") for gv, f in mod.functions.items()
             if isinstance(f, relax.Function)}

    def visit(e):
        if isinstance(e, relax.Call):
            if isinstance(e.op, tvm.ir.Op):
                counts[e.op.name.removeprefix("relax.")] += 1
            elif isinstance(e.op, relax.GlobalVar):
                c = comps.get(e.op.name_hint)
                counts[f"composite:{c}" if c else f"call:{e.op.name_hint}"] += 1

    for gv, f in mod.functions.items():
        if isinstance(f, relax.Function) and not (f.attrs or {}).get("Composite"):
            relax.analysis.post_order_visit(f.body, visit)
    return dict(sorted(counts.items()))


def composites(mod, name: str | None = None) -> list[tuple[str, relax.Function]]:
    """``(global name, function)`` of every composite function, optionally only ``name``."""
    out = []
    for gv, f in mod.functions.items():
        c = (f.attrs or {}).get("Composite") if isinstance(f, relax.Function) else None
        if c is not None and (name is None or str(c) == name):
            out.append((gv.name_hint, f))
    return sorted(out, key=lambda t: t[0])


def script(mod) -> str:
    """Deterministic TVMScript text of a module (weights as ``metadata[...]`` references)."""
    return mod.script(show_meta=False)
