"""The graph view every analysis reads: :class:`Graph` over the bindings of ``main``
(definitions, users, a networkx ``DiGraph``, outputs, composites), and static-shape helpers.

Analysis only: nothing here rewrites.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import zlib

import networkx as nx
import numpy as np
import tvm
from tvm import relax

from qcompile.analysis.moves import op_name
from qcompile.ir import const_value

NORMS = {"nn.rms_norm", "nn.layer_norm"}


class Graph:
    """The bindings of a module's ``main``: ``defs`` var -> value, ``users`` var -> [(user var,
    arg index)], the networkx view ``g``, ``main``'s output vars ``outputs`` and ``params``,
    and the module's other functions by name (``funcs``: composites)."""

    def __init__(self, mod):
        func = mod["main"]
        self.func = func
        self.funcs = {gv.name_hint: f for gv, f in mod.functions.items() if isinstance(f, relax.Function)}
        self.defs: dict = {}
        self.names: dict = {}
        self.order: list = []
        self.users: dict = {}
        self.g = nx.DiGraph()
        for blk in func.body.blocks:
            for b in blk.bindings:
                self.defs[b.var] = b.value
                self.order.append(b.var)
                self.g.add_node(b.var, name=b.var.name, op=op_name(b.value) or type(b.value).__name__)
                for i, a in enumerate(self.args(b.value)):
                    if isinstance(a, relax.Var):
                        self.users.setdefault(a, []).append((b.var, i))
                        self.g.add_edge(a, b.var)
        self.params = set(func.params)
        out = func.body.body
        while isinstance(out, relax.Var) and isinstance(self.defs.get(out), relax.Var):  # aliases
            out = self.defs[out]
        self.output_tuple = out if isinstance(out, relax.Var) and isinstance(self.defs.get(out), relax.Tuple) else None
        self.outputs = set(out.fields) if isinstance(out, relax.Tuple) else {out}
        if self.output_tuple is not None:
            self.outputs |= set(self.defs[out].fields)

    @staticmethod
    def args(value) -> list:
        """Flat argument list; a tuple argument (concat) contributes its fields in order."""
        if isinstance(value, relax.Call):
            out = []
            for a in value.args:
                out += list(a.fields) if isinstance(a, relax.Tuple) else [a]
            return out
        if isinstance(value, relax.Tuple):
            return list(value.fields)
        if isinstance(value, relax.TupleGetItem):
            return [value.tuple_value]
        return []

    def input_of(self, v):
        """The parameter ``v`` is, or is a cast of (a float16 model with float32 I/O, as
        onnxruntime's float16 converter writes it with ``keep_io_types``); else None."""
        if isinstance(v, relax.Var) and v in self.params:
            return v
        val = self.defs.get(v) if isinstance(v, relax.Var) else None
        if val is not None and op_name(val) == "astype" and isinstance(val.args[0], relax.Var) \
                and val.args[0] in self.params:
            return val.args[0]
        return None

    def shape_only(self) -> set:
        """The bindings that no input's *values* reach: computed from constants and the
        inputs' (symbolic) shapes alone, such as RoPE's cos/sin tables from ``arange(seq)`` or
        a relative position bias. With every shape fixed they fold into constants."""
        seen = set()
        for p in self.params:
            if p in self.g:
                seen |= nx.descendants(self.g, p) | {p}
        return {v for v in self.order if v not in seen}

    def composite(self, value) -> str | None:
        if isinstance(value, relax.Call) and isinstance(value.op, relax.GlobalVar):
            f = self.funcs.get(value.op.name_hint)
            return None if f is None else str((f.attrs or {}).get("Composite"))
        return None


# ----------------------------------------------------------------------------- shapes


def _dims(expr, subst=None) -> list:
    """Static dims of a tensor expr; symbolic dims become ``subst(var)`` (a stand-in prime by
    default, so products of dims compare like the symbols would)."""
    shape = expr.ty.shape
    out = []
    for d in shape:
        if isinstance(d, tvm.tirx.IntImm):
            out.append(int(d))
        else:
            out.append(subst(d) if subst else stand_in(str(d)))
    return out


@functools.lru_cache(maxsize=None)
def stand_in(name: str) -> int:
    """A prime standing in for the symbolic dim ``name``, derived from the name alone (no
    table that grows with use): distinct names get distinct primes above any real dim."""
    p = 1_000_003 + 2 * (zlib.crc32(name.encode()) % 50_000_000)
    while any(p % q == 0 for q in range(3, math.isqrt(p) + 1, 2)):
        p += 2
    return p


def _reshape_axis(src: list, dst: list, axis: int) -> int | None:
    """The axis of ``dst`` that is ``src[axis]`` after a reshape, or None if it is split/merged."""
    before = math.prod(src[:axis])
    acc = 1
    for k, d in enumerate(dst):
        if acc == before and d == src[axis]:
            return k
        acc *= d
        if acc > before:
            break
    # the same from the right: the element counts agree, so either side proves it, and a
    # symbolic dim cast to a static one on the left (the importer's broadcast refinement,
    # ``1 + h//8 * (w//8)`` -> 17) only shows as equal from the right
    after = math.prod(src[axis + 1:])
    acc = 1
    for k in range(len(dst) - 1, -1, -1):
        if acc == after and dst[k] == src[axis]:
            return k
        acc *= dst[k]
        if acc > after:
            return None
    return None


def _norm_axis(call) -> int | None:
    nd = len(call.args[0].ty.shape)
    axes = [int(a) % nd for a in call.attrs.axes]
    return axes[0] if len(axes) == 1 else None


# ----------------------------------------------------------------------------- linear layers


@dataclasses.dataclass(frozen=True)
class Linear:
    """A linear layer ``x @ W (+ b)``: ``matmul`` its matmul binding, ``bias`` the binding that
    adds a constant bias (None without one), ``out`` the layer's result (``bias`` or ``matmul``)."""

    matmul: relax.Var
    bias: relax.Var | None
    x: relax.Expr
    weight: np.ndarray

    @property
    def out(self) -> relax.Var:
        return self.bias if self.bias is not None else self.matmul


def linear_at(defs: dict, v, *, rank2: bool = False, with_bias: bool = True) -> Linear | None:
    """The linear layer whose result is ``v``: a ``matmul`` by a constant weight (2-D only
    with ``rank2``), or (``with_bias``) such a matmul plus a constant vector. ``defs`` maps
    vars to their values (:attr:`Graph.defs`). The one place that answers "is this a linear
    layer" for every pass."""
    val = defs.get(v) if isinstance(v, relax.Var) else None
    name = op_name(val)
    if name == "matmul":
        w = const_value(val.args[1])
        if w is None or (rank2 and w.ndim != 2):
            return None
        return Linear(v, None, val.args[0], w)
    if with_bias and name == "add" and const_value(val.args[1]) is not None and len(val.args[1].ty.shape) <= 1:
        inner = linear_at(defs, val.args[0], rank2=rank2, with_bias=False)
        if inner is not None:
            return Linear(inner.matmul, v, inner.x, inner.weight)
    return None


def head_linears(g: Graph) -> set:
    """Matmuls whose result (or result + bias) is a model output: the output head, which the
    weight/activation quantizers (``qdq-sim``, ``w8a8``) leave float unless asked."""
    out = set()
    for var in g.order:
        if op_name(g.defs[var]) != "matmul":
            continue
        if var in g.outputs:
            out.add(var)
        users = g.users.get(var, [])
        if len(users) == 1 and op_name(g.defs[users[0][0]]) == "add" and users[0][0] in g.outputs:
            out.add(var)
    return out
