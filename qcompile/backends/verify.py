"""Integer-only verification.

Walks the lowered TIR of every kernel (after TVM's TIR lowering pipeline) and the Relax
``main`` around them, and lists every floating-point value left: each offending kernel,
the Relax binding that calls it, and the float node kinds found (Cast, Mul, FloatImm,
buffers, ...). Note: in TVM 0.27 a PrimExpr's dtype is ``expr.ty.dtype``; walking
``.dtype`` silently finds nothing.
"""
from __future__ import annotations

import dataclasses

import tvm
import tvm_ffi
from tvm import relax


def _is_float(dt) -> bool:
    s = str(dt)
    return "float" in s or s.startswith("bf") or "e4m3" in s or "e5m2" in s


def float_nodes(func) -> list[str]:
    """Sorted distinct ``Kind:dtype`` of float nodes in one PrimFunc."""
    hits = set()

    def cb(obj):
        ty = getattr(obj, "ty", None)
        if isinstance(ty, tvm.ir.PrimType) and _is_float(ty.dtype):
            hits.add(f"{type(obj).__name__}:{ty.dtype}")
        elif isinstance(obj, tvm.tirx.BufferType) and _is_float(obj.dtype):
            hits.add(f"Buffer:{obj.dtype}")

    tvm_ffi.structural_walk(func, cb)
    return sorted(hits)


@dataclasses.dataclass
class Offence:
    kernel: str
    binding: str
    nodes: list[str]

    def __str__(self) -> str:
        return f"{self.kernel} (binding '{self.binding}'): {', '.join(self.nodes)}"


def _callers(main) -> dict[str, str]:
    out = {}
    for block in main.body.blocks:
        for b in block.bindings:
            v = b.value
            if isinstance(v, relax.Call) and isinstance(v.op, tvm.ir.Op) and v.op.name == "relax.call_tir":
                out.setdefault(v.args[0].name_hint, b.var.name)
    return out


def relax_float_vars(main) -> list[str]:
    """Names of Relax params/bindings in ``main`` with a float tensor type."""
    names = []
    for p in main.params:
        if isinstance(p.ty, relax.TensorType) and _is_float(p.ty.dtype):
            names.append(p.name)
    for block in main.body.blocks:
        for b in block.bindings:
            if isinstance(b.var.ty, relax.TensorType) and _is_float(b.var.ty.dtype):
                names.append(b.var.name)
    return names


def find_floats(legalized, target) -> list[Offence]:
    """Every kernel of ``legalized`` (Relax + fused PrimFuncs) that still computes in float,
    checked before and after TIR lowering; plus float tensors in Relax ``main``."""
    callers = _callers(legalized["main"])
    # private PrimFuncs fail TIR lowering ("must be called after MakePackedAPI"): name them
    tir = tvm.IRModule({g: (f if "global_symbol" in (f.attrs or {}) else f.with_attr("global_symbol", g.name_hint))
                        for g, f in legalized.functions.items() if isinstance(f, tvm.tirx.PrimFunc)})
    offences = []
    if len(tir.functions):
        with target:
            bound = tvm.tirx.transform.BindTarget(target.with_host(target))(tir)
            pipe, _, _ = tvm.tirx.get_default_tir_pipeline(target)
            lowered = pipe(bound)
        for gv, f in sorted(tir.functions.items(), key=lambda t: t[0].name_hint):
            low = [lf for lg, lf in lowered.functions.items() if lg.name_hint == gv.name_hint]
            nodes = sorted(set(float_nodes(f)) | (set(float_nodes(low[0])) if low else set()))
            if nodes:
                offences.append(Offence(gv.name_hint, callers.get(gv.name_hint, "?"), nodes))
    fvars = relax_float_vars(legalized["main"])
    if fvars:
        offences.append(Offence("main (Relax)", ", ".join(fvars[:8]) + (" ..." if len(fvars) > 8 else ""),
                                ["Tensor:float"]))
    return offences
