"""Arithmetic per binding: how much of a model's work each op is (the share of the FLOPs
that a float island of ``int-only`` keeps in float).

A matmul counts ``2 M N K``, a convolution ``2 · out · C_in/groups · kh · kw``, a composite
(attention) the sum of its body, any other op one per element of its largest tensor
(operand or output: a reduction counts its input). A symbolic dim
counts as ``fill`` (the same for every symbolic dim, so shares stay meaningful)."""
from __future__ import annotations

import math

import tvm
from tvm import relax

from qcompile.ir import shape_of


def _numel(expr, fill: int) -> int:
    shape = shape_of(expr)
    if shape is None:
        return 0
    return math.prod(d if isinstance(d, int) else fill for d in shape)


def _call_flops(mod, call, out, fill: int) -> int:
    if isinstance(call.op, relax.GlobalVar):
        f = mod[call.op]
        return sum(binding_flops(mod, f, fill).values()) if isinstance(f, relax.Function) else 0
    name = call.op.name.removeprefix("relax.")
    if name == "matmul" and shape_of(call.args[0]):
        k = shape_of(call.args[0])[-1]
        return 2 * _numel(out, fill) * (k if isinstance(k, int) else fill)
    if name.startswith("nn.conv") and shape_of(call.args[1]):
        w = shape_of(call.args[1])
        per = math.prod(d if isinstance(d, int) else fill for d in w[1:])
        return 2 * _numel(out, fill) * per
    return max([_numel(out, fill)] + [_numel(a, fill) for a in call.args if isinstance(a, relax.Expr)])


def binding_flops(mod, func, fill: int = 1) -> dict[str, int]:
    """FLOPs of each call binding of ``func``, by binding name (graph order)."""
    out = {}
    for blk in func.body.blocks:
        for b in blk.bindings:
            if isinstance(b.value, relax.Call) and isinstance(b.value.op, (tvm.ir.Op, relax.GlobalVar)):
                out[b.var.name] = _call_flops(mod, b.value, b.var, fill)
    return out
