"""Where a model's blocks end: the tensors the report's per-layer error is measured on.

A **block output** is a residual add ``x + f(x)``: an ``add`` of two float activations
of one shape where one operand is an ancestor of the other and the path between them
passes a layer (a ``matmul``, a convolution or an attention). That is every transformer
block's two writes into the residual stream (after attention, after the MLP), pre-norm or
post-norm, and a ResNet-style CNN's skip connections; it is not a bias or positional
embedding (a constant operand), an attention mask (the two operands do not descend from
one another) or an elementwise formula such as ``x + 0.044715 x^3`` (no layer between).
A graph without residual adds (a plain CNN) is probed at its layers' outputs instead.

Analysis only: :mod:`qcompile.probes` builds the modules that return these tensors.
"""
from __future__ import annotations

import networkx as nx
from tvm import relax

from qcompile.analysis.graph import Graph
from qcompile.analysis.moves import op_name

#: ops that make a layer (a block's branch contains one)
LAYERS = frozenset({"matmul", "nn.conv1d", "nn.conv2d", "nn.attention"})


def _float_tensor(e) -> bool:
    ty = getattr(e, "ty", None)
    return isinstance(e, relax.Var) and isinstance(ty, relax.TensorType) and str(ty.dtype).startswith("float")


def _same_shape(a, b) -> bool:
    sa, sb = a.ty.shape, b.ty.shape
    if sa is None or sb is None or len(sa) != len(sb):
        return False
    return all(str(x) == str(y) for x, y in zip(sa, sb))


def _kind(g: Graph, v) -> str | None:
    """'attention', 'mlp' (a matmul), 'conv' or None: what a binding computes, for a
    block's label."""
    val = g.defs.get(v)
    comp = g.composite(val)
    name = op_name(val)
    if (comp and "attention" in comp) or name in ("nn.softmax", "nn.attention"):
        return "attention"
    if name == "matmul":
        return "mlp"
    if name in LAYERS:
        return "conv"
    return None


def block_outputs(mod, limit: int = 96) -> list[tuple[relax.Var, str]]:
    """``[(var, label)]`` in graph order: the residual adds of ``mod['main']`` (labels
    ``"3 attention"``, ``"4 mlp"``, ``"5 conv"``: the block's ordinal and what its branch
    computes), else the layer outputs (``"5 matmul"``, ``"6 conv2d"``). At most ``limit`` of them, evenly spread."""
    g = Graph(mod)
    kinds = {v: _kind(g, v) for v in g.order}
    out = []
    for v in g.order:
        val = g.defs[v]
        if op_name(val) != "add" or not _float_tensor(v):
            continue
        a, b = val.args
        if not (_float_tensor(a) and _float_tensor(b) and _same_shape(a, b) and _same_shape(a, v)):
            continue
        for skip, branch in ((a, b), (b, a)):
            if skip in g.g and branch in g.g and nx.has_path(g.g, skip, branch):
                between = (nx.descendants(g.g, skip) & nx.ancestors(g.g, branch)) | {branch}
                got = {kinds.get(u) for u in between}
                for what in ("attention", "mlp", "conv"):  # the block's label: its heaviest kind of layer
                    if what in got:
                        out.append((v, what))
                        break
                break
    if not out:
        out = [(v, op_name(g.defs[v]).removeprefix("nn.")) for v in g.order
               if kinds[v] in ("mlp", "conv") and _float_tensor(v)]
    if len(out) > limit:
        step = len(out) / limit
        out = [out[int(i * step)] for i in range(limit - 1)] + [out[-1]]
    return [(v, f"{i} {what}") for i, (v, what) in enumerate(out, start=1)]
