"""Fold the tensors :mod:`qcompile.analysis.uniform` proves uniform into constants broadcast
over their symbolic axes.

A causal mask written into a broadcast of the padding mask per sample (BART, T5, M2M-100),
block ids from a cumsum over ones broadcast over the batch (LongT5), relative position
buckets of positions broadcast over the batch (LayoutLMv3), a count of observed values
(PatchTSMixer): with a symbolic batch none of them is a constant, and the integer pipeline
has no rule for the float ops that compute them. Proved uniform, each equals its value at
any one assignment of the symbolic dims: the uniform subgraph is extracted into a function
of the inputs' shapes, bound at every symbolic dim = 1 (2, 3 if an extent would be empty),
compiled for llvm and run once; the result, sliced to index 0 along the symbolic axes,
replaces the tensor as ``broadcast_to(constant, shape)``.
"""
from __future__ import annotations

import types

import numpy as np
import tvm
from tvm import relax

from qcompile.analysis.uniform import Uniform, _dims, _static, _var_args
from qcompile.rewrite import emit_body, rebuild_main


def fold_uniform(mod) -> tuple[tvm.IRModule, list[str]]:
    """``mod`` with every uniform frontier tensor of ``main`` folded, and their binding
    names. Unchanged (and nothing compiled) where there is none."""
    main = mod["main"]
    targets = Uniform(main).frontier()
    if not targets:
        return mod, []
    values = _evaluate(mod, targets)
    if values is None:
        return mod, []

    def on_binding(bb, var, value):
        if var not in values:
            return None
        dims = _dims(var)
        arr = values[var]
        for axis, d in enumerate(dims):
            if not _static(d):
                arr = np.take(arr, [0], axis=axis)
        const = relax.const(np.ascontiguousarray(arr), str(var.ty.dtype))
        if all(_static(d) for d in dims):
            return const
        return relax.op.broadcast_to(const, relax.ShapeExpr(dims))

    out = rebuild_main(mod, on_binding)
    out["main"] = relax.analysis.remove_all_unused(out["main"])
    return out, [v.name for v in targets]


def _evaluate(mod, targets) -> dict | None:
    """The values of ``targets`` (uniform tensors of ``main``) at small sizes of the symbolic
    dims, or None where the extracted subgraph does not compile or every try leaves an empty
    extent."""
    main = mod["main"]
    defs = {b.var: b for blk in main.body.blocks for b in blk.bindings}
    need, stack = set(), list(targets)
    while stack:
        v = stack.pop()
        if v in need or v not in defs:
            continue
        need.add(v)
        stack += _var_args(defs[v].value)
    bindings = [b for blk in main.body.blocks for b in blk.bindings if b.var in need]

    bb = relax.BlockBuilder()
    params = [relax.Var(p.name, p.ty) for p in main.params]
    env = dict(zip(main.params, params))
    with bb.function("main", params):
        with bb.dataflow():
            emit_body(bb, main, env, blocks=[types.SimpleNamespace(bindings=bindings)])
            result = bb.emit_output(relax.Tuple([env[v] for v in targets]))
        bb.emit_func_output(result)
    func = bb.get()["main"]
    symbolic = list(relax.analysis.defined_symbolic_vars(func))
    for size in (1, 2, 3):
        bound = func.bind_symbolic_vars({v: size for v in symbolic}) if symbolic else func
        try:
            ex = tvm.compile(tvm.IRModule({"main": bound}), target="llvm")
            vm = relax.VirtualMachine(ex, tvm.cpu())
            feeds = [tvm.runtime.tensor(np.zeros([int(d) for d in p.ty.shape], dtype=str(p.ty.dtype)))
                     for p in bound.params]
            outs = vm["main"](*feeds)
        except (RuntimeError, ValueError, TypeError):  # a form TVM does not compile alone
            return None
        arrays = [o.numpy() for o in outs]
        if all(a.size > 0 for a in arrays):
            return dict(zip(targets, arrays))
    return None
