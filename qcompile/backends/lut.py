"""Elementwise functions of an int8 tensor, tabulated: a 256-entry lookup at compile time.

An int8 tensor takes 256 values, so any chain of elementwise integer ops that depends on
one int8 tensor ``x`` and on scalar constants only is a function ``f: int8 -> T`` with 256
points. This pass finds such chains in ``main`` (analysis: :func:`find_regions`),
evaluates each on ``[-128, 127]`` with the NumPy integer interpreter
(:mod:`qcompile.passes.int_only.intref`, the same oracle the artifacts are verified against) and replaces
the chain's result by ``table[x + 128]`` (rewrite: :func:`tabulate`).

It is exact by construction: the table holds the chain's own integer results. What it
removes is the cost of evaluating the chain per element. The chain that matters is
ShiftGELU (``int-only``): the requantization of ``x`` to ``t = 1.702 x``, the shift
exponent, the int64 division of the sigmoid (scalar ``idiv`` on AVX2, which has no vector
integer division) and, when its scale is per tensor, the requantization of the result to
the next layer's int8. Only chains that contain an elementwise ``int-only`` kernel are
tabulated; a chain of a few shifts and adds is cheaper to compute than to look up.

The lookup is a ``call_te`` kernel that FuseOps must see as elementwise (``op_pattern``
0), so that it goes into the epilogue of the matmul that produces ``x``, with the
requantization after it. TVM 0.27's ``AnnotateTIROpPattern`` cannot be told so: it takes
an ``op_pattern`` of 0 for "unset" and derives "opaque" from the data-dependent table
index. So the lookup carries ``qcompile.elementwise`` and :func:`mark_elementwise`, run by
the llvm pipeline between ``AnnotateTIROpPattern`` and ``FuseOps``, sets its pattern to 0.
"""
from __future__ import annotations

import numpy as np
import tvm
from tvm import relax, te

from qcompile.passes.int_only import intops
from qcompile.passes.int_only import intref
from qcompile.ir import call_tir_inputs, const_value, shape_of
from qcompile.rewrite import rebuild_main

# Relax ops that act elementwise (with scalar constants) and whose NumPy rule is in intref.
ELEMENTWISE = {"add", "subtract", "multiply", "right_shift", "left_shift", "maximum", "minimum",
               "floor_divide", "clip", "astype"}
# int-only kernels that are elementwise (read by their qcompile.kernel attribute).
ELEMENTWISE_KERNELS = {"shiftgelu", "shiftsigmoid"}
SOURCE_DTYPES = {"int8": -128, "uint8": 0}  # dtype -> the table's first index value
ELEMENTWISE_ATTR = "qcompile.elementwise"  # see mark_elementwise


def _tensor_type(v):
    t = v.ty
    return t if isinstance(t, relax.TensorType) and t.shape is not None else None


def _is_scalar_const(a) -> bool:
    v = const_value(a)
    return (v is not None and v.size == 1) or isinstance(a, tvm.tirx.IntImm)


def _step(mod, call, region) -> str | None:
    """How ``call`` extends a region: ``"op"`` (elementwise), ``"kernel"``, ``"reshape"``, or
    ``None`` (it does not: another kind of op, or an input from outside the region)."""
    if not isinstance(call, relax.Call) or not isinstance(call.op, tvm.ir.Op):
        return None
    name = call.op.name.removeprefix("relax.")
    if name == "call_tir":
        if (intops.kernel_spec(mod, call) or {}).get("op") not in ELEMENTWISE_KERNELS:
            return None
        ins = call_tir_inputs(call)
        return "kernel" if all(isinstance(a, relax.Var) and a in region for a in ins) else None
    if name == "reshape":
        return "reshape" if isinstance(call.args[0], relax.Var) and call.args[0] in region else None
    if name not in ELEMENTWISE:
        return None
    tensors = [a for a in call.args if not _is_scalar_const(a)]
    if not tensors or not all(isinstance(a, relax.Var) and a in region for a in tensors):
        return None
    return "op"


def find_regions(mod) -> list[tuple]:
    """The tabulable chains of ``main``: ``(x, bindings, exits)`` with ``x`` the int8 source,
    ``bindings`` the chain in order and ``exits`` the chain's values used outside it that
    depend on an elementwise kernel. Chains do not overlap (each starts at the first int8
    value it depends on)."""
    main = mod["main"]
    bindings = [b for blk in main.body.blocks for b in blk.bindings]
    users: dict = {}
    for i, b in enumerate(bindings):
        for v in relax.analysis.free_vars(b.value):
            users.setdefault(v, []).append(i)
    outputs = set(relax.analysis.free_vars(main.body.body))
    covered, regions = set(), []
    starts = [(p, 0) for p in main.params] + [(b.var, i + 1) for i, b in enumerate(bindings)]
    for src, after in starts:
        t = _tensor_type(src)
        if t is None or str(t.dtype) not in SOURCE_DTYPES or src in covered:
            continue
        region, chain, costly = {src}, [], set()
        for nb in bindings[after:]:
            kind = _step(mod, nb.value, region)
            if kind is None or _tensor_type(nb.var) is None:
                continue
            region.add(nb.var)
            chain.append(nb)
            ins = set(relax.analysis.free_vars(nb.value))
            if kind == "kernel" or ins & costly:
                costly.add(nb.var)
        members = {c.var for c in chain}
        by_var = {c.var: c for c in chain}
        exits = {}
        for c in chain:
            if c.var in costly and (c.var in outputs or any(bindings[u].var not in members
                                                            for u in users.get(c.var, []))):
                c = _narrowest(c, by_var, costly)
                exits[c.var] = c
        exits = list(exits.values())
        if exits:
            covered |= region
            regions.append((src, chain, exits))
    return regions


def _narrowest(b, by_var, costly):
    """Back through widening casts and reshapes: the table holds the narrowest form of a
    value (the int32 ShiftGELU result, not its int64 widening for the next requantization);
    the cast and the reshape stay as bindings after the lookup."""
    while isinstance(b.value, relax.Call) and b.value.op.name in ("relax.astype", "relax.reshape"):
        src = b.value.args[0]
        if src not in by_var or src not in costly:
            break
        if b.value.op.name == "relax.astype":
            a, w = np.dtype(str(src.ty.dtype)), np.dtype(str(b.var.ty.dtype))
            if not (np.can_cast(a, w, "safe")):
                break
        b = by_var[src]
    return b


def table(mod, x, chain, exit_var) -> np.ndarray:
    """``exit_var`` as a function of every value of ``x``: evaluated over the chain with the
    NumPy integer interpreter (reshapes are identities on the flat table)."""
    lo = SOURCE_DTYPES[str(x.ty.dtype)]
    env = {x: np.arange(lo, lo + 256).astype(str(x.ty.dtype))}
    interp = intref._Interp(mod)
    with np.errstate(over="ignore"):
        for b in chain:
            if b.value.op.name == "relax.reshape":
                env[b.var] = env[b.value.args[0]]
            else:
                env[b.var] = np.asarray(interp.call(b.var, b.value, env)).reshape(-1)
            if b.var is exit_var:
                break
    out = env[exit_var]
    assert out.shape == (256,), out.shape
    return out.astype(str(exit_var.ty.dtype))


def lookup_te(x, tab):
    lo = SOURCE_DTYPES[str(x.dtype)]
    return te.compute(x.shape, lambda *i: tab[x(*i).astype("int32") - lo], name="lut")


def tabulate(mod) -> tuple[tvm.IRModule, int]:
    """Replace every tabulable chain's exits by table lookups; returns the module and how
    many lookups it holds. The chain's other bindings are left to dead-code elimination."""
    if not any(gv.name_hint == "main" for gv in mod.get_global_vars()):
        return mod, 0
    regions = find_regions(mod)
    if not regions:
        return mod, 0
    plan = {e.var: (x, table(mod, x, chain, e.var)) for x, chain, exits in regions for e in exits}
    env: dict = {}

    def on_binding(bb, var, value):
        if var not in plan:
            return None
        x, tab = plan[var]
        out = bb.call_te(lookup_te, env[x], relax.const(tab, str(tab.dtype)), primfunc_name_hint="lut",
                         primfunc_attrs={"op_pattern": 1, ELEMENTWISE_ATTR: 1})
        if shape_of(var) == shape_of(x):
            return out
        return relax.op.reshape(bb.emit(out), _tensor_type(var).shape)

    out = rebuild_main(mod, on_binding, env=env)
    out = relax.transform.DeadCodeElimination(["main"])(out)
    return out, len(plan)


@tvm.transform.module_pass(opt_level=0, name="qcompile.MarkElementwise")
def mark_elementwise(mod, _ctx):
    """``op_pattern`` 0 (elementwise) for the PrimFuncs marked ``qcompile.elementwise``: run
    after ``AnnotateTIROpPattern`` (which would take 0 for unset) and before ``FuseOps``."""
    out = {}
    for gv, f in mod.functions.items():
        if isinstance(f, tvm.tirx.PrimFunc) and (f.attrs or {}).get(ELEMENTWISE_ATTR):
            f = f.with_attr("op_pattern", 0)
        out[gv] = f
    return tvm.IRModule(out, attrs=mod.attrs)
