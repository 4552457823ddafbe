"""One fused kernel per attention operand where a fused QKV projection is split by ``take``.

An exported ViT splits its fused QKV projection as ``reshape -> permute_dims -> take(0),
take(1), take(2)``. The permuted tensor has three readers, so ``FuseOps`` cannot fuse it into
any of them: the permutation is a kernel of its own (one pass over the activations), each
``take`` another copy, and the requantization of ``q``, ``k`` and ``v`` a third kernel each.
At the small ViT's sizes (50 tokens of 128) these kernels cost more in launches than in
work.

This rewrite (analysis: :func:`find_splits`) gives each ``take`` with a constant index its
own copy of the reshape and permutation, and states the ``take`` as a one-wide
``strided_slice`` and a ``squeeze`` (``AnnotateTIROpPattern`` calls a ``take`` opaque, as it
reads through a computed index), so that ``FuseOps`` fuses each copy, its slice and the
elementwise ops after it into one kernel per operand. Each copy is computed only
where its ``take`` reads it (the fused kernel reads the third of the input it needs), so
no work is repeated. Only data movement is rearranged: the results are identical.
"""
from __future__ import annotations

import tvm
from tvm import relax

from qcompile.ir import const_value, shape_of
from qcompile.rewrite import rebuild_main

LAYOUT = ("relax.reshape", "relax.permute_dims")


def _op(value) -> str:
    return getattr(getattr(value, "op", None), "name", "") if isinstance(value, relax.Call) else ""


def find_splits(func) -> dict:
    """``{take var: [(var, value) of the layout bindings, from the source outward]}`` for
    every ``take`` with a
    scalar constant index whose operand is a chain of reshapes and permutations with more
    than one reader."""
    values = {b.var: b.value for blk in func.body.blocks for b in blk.bindings}
    readers: dict = {}
    for blk in func.body.blocks:
        for b in blk.bindings:
            for v in relax.analysis.free_vars(b.value):
                readers[v] = readers.get(v, 0) + 1
    found = {}
    for var, value in values.items():
        if _op(value) != "relax.take":
            continue
        idx = const_value(value.args[1])
        src = value.args[0]
        if idx is None or idx.size != 1 or not isinstance(src, relax.Var) or readers.get(src, 0) < 2:
            continue
        if str(value.attrs.mode) != "clip" or shape_of(src) is None or not all(isinstance(d, int) for d in shape_of(src)):
            continue
        chain = []
        while isinstance(src, relax.Var) and _op(values.get(src)) in LAYOUT:
            chain.append((src, values[src]))
            src = values[src].args[0]
        if chain:
            found[var] = chain[::-1]
    return found


def split_heads(mod) -> tuple[tvm.IRModule, int]:
    """``mod`` with each ``take`` of :func:`find_splits` reading its own copy of the layout
    chain; returns it and how many were given one."""
    if not any(gv.name_hint == "main" for gv in mod.get_global_vars()):
        return mod, 0
    main = mod["main"]
    found = find_splits(main)
    if not found:
        return mod, 0
    env: dict = {}

    def on_binding(bb, var, value):
        if var not in found:
            return None
        chain = found[var]
        src = chain[0][1].args[0]
        src = env.get(src, src) if isinstance(src, relax.Var) else src
        for c, v in chain:
            src = bb.emit(relax.Call(v.op, [src, *v.args[1:]], v.attrs, v.ty_args), name_hint=c.name + "_own")
        axis = int(value.attrs.axis)
        axis = axis + len(shape_of(src)) if axis < 0 else axis
        dim = shape_of(src)[axis]
        idx = const_value(value.args[1])
        i = min(max(int(idx.reshape(-1)[0]), 0), dim - 1)  # mode="clip"
        part = bb.emit(relax.op.strided_slice(src, axes=[axis], begin=[i], end=[i + 1]))
        # a scalar index drops the axis; a one-element index (Falcon's key head) keeps it
        return relax.op.squeeze(part, axis=[axis]) if idx.ndim == 0 else part

    mod = rebuild_main(mod, on_binding, env=env)
    return relax.transform.DeadCodeElimination(["main"])(mod), len(found)
