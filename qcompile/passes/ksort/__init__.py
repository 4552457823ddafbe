"""``k-sort``: compile-time channel reordering of the KV heads for block formats
(Trukhanov & Soloveychik 2024), folded into the weights; the float model is unchanged.

Per layer (:func:`qcompile.passes.ksort.sort.attention_layers`) and KV head ``g``, with the signed
permutations ``P_g`` (keys, RoPE-commuting: rotary pairs move together, in-pair swaps
negate one member) and ``V_g`` (values) chosen by :func:`qcompile.passes.ksort.sort.sort_keys` /
:func:`~qcompile.passes.ksort.sort.sort_values`:

1. the columns of ``W_k`` of head ``g`` and of ``W_q`` of every query head reading ``g``
   (GQA) become ``P_g`` of themselves, biases likewise: ``q' · k' = q · k``;
2. each RoPE call of the layer gets per-head sine/cosine tables, the shared tables with
   their channels permuted by ``P_g`` (``take`` along the channel axis, concatenated over
   heads; the ``qcompile.rope`` composite is retyped for ``[B, H, T, D]`` tables), so RoPE
   still rotates each pair by its own frequency;
3. the columns of ``W_v`` of head ``g`` (and its bias) become ``V_g`` of themselves and the
   rows of ``W_o`` fed by every output head reading ``g`` likewise.

With ``mlp``, the input channels of every MLP down projection (rows of ``W_down``) are
sorted by row norm and the output columns of the linear layers feeding it elementwise
(SwiGLU's gate and up) follow, so BFP weight blocks along input channels are homogeneous
(:func:`qcompile.passes.ksort.sort.mlp_blocks`). The residual stream (the input of q/k/v/gate/up) is not
permuted.

The order comes from the weights alone (``source="weights"``: ``||γ ⊙ W[:, c]||``, no data)
or from calibration (``source="calibrated"``: per-channel absmax of the pre-RoPE keys and
of the values on the calibration text). Keys are sorted by their own magnitude
(``criterion="key"``, the paper) or by key over query magnitude (``"key/query"``, see
:mod:`qcompile.passes.ksort.sort`); values by their own magnitude (``value_criterion=
"value"``) or by their magnitude times the norm of the ``W_o`` row they feed
(``"value*out"``: :func:`qcompile.passes.ksort.sort.value_statistic`).
"""
from __future__ import annotations

import dataclasses

import numpy as np
from tvm import relax
from tvm.relax import op as O

from qcompile.passes.ksort import sort as ks
from qcompile.collectors import AbsMaxPerChannel
from qcompile.errors import QCompileError
from qcompile.ir import const_value
from qcompile.analysis.kvcache import decoder_layers
from qcompile.passmanager import Pass
from qcompile.analysis.graph import Graph
from qcompile.rewrite import rebuild_main, retyped


@dataclasses.dataclass(frozen=True)
class KSortConfig:
    source: str = "weights"    # "weights" (row norms, no data) or "calibrated" (per-channel absmax)
    keys: bool = True          # reorder W_q / W_k (and the RoPE tables)
    values: bool = True        # reorder W_v / W_o
    criterion: str = "key"     # keys sorted by "key" magnitude (the paper) or "key/query" (the score-error criterion)
    mlp: bool = False          # also sort the input channels of MLP down projections (for BFP weight blocks)
    value_criterion: str = "value"  # values sorted by "value" magnitude or "value*out" (times W_o's row norm)


def _key_stat_var(L):
    """The key the statistics are taken on: before RoPE, or as cached without RoPE."""
    return L.key.new if L.key.pre_rope is None else L.key.pre_rope


class KSort(Pass):
    name = "k-sort"
    Config = KSortConfig

    def __init__(self, **options):
        super().__init__(**options)
        if self.config.source not in ks.SOURCES:
            raise QCompileError(f"k-sort: source='{self.config.source}' is not one of {ks.SOURCES}")
        if self.config.criterion not in ks.CRITERIA:
            raise QCompileError(f"k-sort: criterion='{self.config.criterion}' is not one of {ks.CRITERIA}")
        if self.config.value_criterion not in ks.VALUE_CRITERIA:
            raise QCompileError(f"k-sort: value_criterion='{self.config.value_criterion}' is not one of "
                                f"{ks.VALUE_CRITERIA}")

    @property
    def needs_calibration(self) -> bool:
        return self.config.source == "calibrated"

    def calibration_requests(self, mod) -> dict:
        """Per (head, channel) absmax of the pre-RoPE keys, the values and (``key/query``)
        the pre-RoPE queries."""
        g, layers = decoder_layers(mod, "k-sort", need_rope=False)
        out = {}
        for L, A in zip(layers, ks.attention_layers(g, layers)):
            out[_key_stat_var(L)] = [AbsMaxPerChannel(axis=(1, 3))]
            out[L.value.new] = [AbsMaxPerChannel(axis=(1, 3))]
            if self.config.criterion == "key/query":
                if A.q_input is None:
                    raise QCompileError(f"k-sort: layer {L.index}: criterion 'key/query' needs the whole query "
                                        "head as one tensor; its rotary and pass-through parts are separate")
                out[A.q_input] = [AbsMaxPerChannel(axis=(1, 3))]
        return out

    def permutations(self, mod, stats: dict | None = None) -> tuple[list, list]:
        """``(analysis per layer, [(key perms, value perms)] per layer)``, one SignedPerm per KV head."""
        c = self.config
        g, layers = decoder_layers(mod, "k-sort", need_rope=False)
        att = ks.attention_layers(g, layers)
        out = []
        for L, A in zip(layers, att):
            q_var = A.q_input
            if c.source == "weights":
                nk = ks.weight_norms(A.k, const_value(g.defs[A.k.matmul].args[1]))
                nq = ks.weight_norms(A.q, const_value(g.defs[A.q.matmul].args[1]))
                w_v = const_value(g.defs[A.v_matmul].args[1]).astype(np.float64)
                nv = np.linalg.norm(w_v, axis=0)[A.v_columns]
            else:
                got = [(stats or {}).get(v) for v in (_key_stat_var(L), L.value.new)]
                if c.criterion == "key/query":
                    got.append((stats or {}).get(q_var))
                if not all(got):
                    raise QCompileError(f"k-sort: no calibration statistics for layer {L.index}")
                nk, nv = got[0][0].value, got[1][0].value
                nq = got[2][0].value if c.criterion == "key/query" else None
            if c.criterion == "key/query":  # a KV head's query magnitude: the largest over its query heads
                nq = np.stack([nq[A.q_group == h].max(0) for h in range(A.kv_heads)])
            else:
                nq = [None] * A.kv_heads
            if c.value_criterion == "value*out":
                nv = ks.value_statistic(nv, A, const_value(g.defs[A.o_matmul].args[1]))
            kp = [ks.sort_keys(ks.key_statistic(nk[h], nq[h], c.criterion), A.form, A.rotary) if c.keys
                  else ks.SignedPerm.identity(A.head_dim) for h in range(A.kv_heads)]
            vp = [ks.sort_values(nv[h]) if c.values else ks.SignedPerm.identity(A.head_dim)
                  for h in range(A.kv_heads)]
            out.append((kp, vp))
        return att, out

    def transform(self, mod, ctx):
        att, perms = self.permutations(mod, ctx.stats if self.needs_calibration else None)
        g = Graph(mod)
        mlps = ks.mlp_blocks(g) if self.config.mlp else []
        new = _Rewrite(g, att, perms, mlps).run(mod)
        moved = sum(int(np.sum(p.perm != np.arange(len(p.perm)))) for kp, vp in perms for p in kp + vp)
        ctx.notes["k_sort"] = {
            "source": self.config.source, "layers": len(att), "kv_heads": att[0].kv_heads,
            "head_dim": att[0].head_dim, "rope": att[0].form, "keys": self.config.keys, "values": self.config.values,
            "channels_moved": moved, "criterion": self.config.criterion,
            "value_criterion": self.config.value_criterion, "mlp_down_projections": len(mlps),
            "rope_handling": "rotary pairs kept together (in-pair swaps negate one member); sine/cosine tables "
                             "permuted per KV head"}
        return new


def _gain_columns(w, columns, heads):
    """A norm gain over the projection's columns after each head's signed permutation: the
    columns move, the signs stay with ``x``."""
    for cols, p in zip(columns, heads):
        sign = p.apply(np.ones_like(w[..., cols]), axis=-1)
        w[..., cols] = p.apply(w[..., cols], axis=-1) * sign
    return w


class _Rewrite:
    def __init__(self, g: Graph, att: list, perms: list, mlps: list):
        self.g, self.att, self.perms, self.mlps = g, att, perms, mlps
        self.consts: dict = {}     # (binding var, arg index) -> new constant
        self.rope: dict = {}       # rope call var -> (layer analysis, per-head perms)
        self.tables: dict = {}     # (table var, perm key) -> per-head table var
        self.retyped: dict = {}    # (composite name, heads) -> GlobalVar
        self.head_norms: dict = {} # per-head RMSNorm var -> (per-head perms, head axis)

    def _edit(self, var, arg: int, fn) -> None:
        key = (var, arg)
        if key not in self.consts:
            self.consts[key] = const_value(self.g.defs[var].args[arg]).copy()
        self.consts[key] = fn(self.consts[key])

    def run(self, mod):
        for A, (kp, vp) in zip(self.att, self.perms):
            q_perm = [kp[grp] for grp in A.q_group]
            for proj, heads in ((A.k, kp), (A.q, q_perm)):
                for norm, axis in proj.head_norms:
                    self.head_norms[norm] = (heads, axis)
                for norm in proj.full_norms:  # the gain moves with the columns, without their signs
                    self._edit(norm, 1, lambda w, cols=proj.columns, heads=heads: _gain_columns(w, cols, heads))
                self._columns(proj.matmul, 1, proj.columns, heads)
                if proj.bias is not None:
                    self._columns(proj.bias, 1, proj.columns, heads)
            self._columns(A.v_matmul, 1, A.v_columns, vp)
            if A.v_bias is not None:
                self._columns(A.v_bias, 1, A.v_columns, vp)
            for rows, grp in zip(A.o_rows, A.o_group):
                p = vp[grp]
                self._edit(A.o_matmul, 1, lambda w, rows=rows, p=p: _set_rows(w, rows, p))
            if A.rope_k is not None:  # the tables follow the rotary channels' order
                self.rope[A.rope_k] = ([p.leading(A.rotary) for p in kp], A.head_axis)
                self.rope[A.rope_q] = ([p.leading(A.rotary) for p in q_perm], A.head_axis)
        for m in self.mlps:  # rows of W_down by norm, descending; the producers' columns with them
            w = const_value(self.g.defs[m.down].args[1])
            p = ks.sort_values(np.linalg.norm(w.astype(np.float64), axis=1))
            self._edit(m.down, 1, lambda w, p=p: _set_rows(w, np.arange(len(p.perm)), p))
            for mm, bias in m.producers:
                self._columns(mm, 1, [np.arange(m.width)], [p])
                if bias is not None:
                    self._columns(bias, 1, [np.arange(m.width)], [p])
        new = relax.transform.Normalize()(rebuild_main(mod, self.on_binding))
        return relax.transform.DeadCodeElimination(["main"])(new)

    def _columns(self, var, arg: int, columns: np.ndarray, heads: list) -> None:
        def f(w):
            for cols, p in zip(columns, heads):
                w[..., cols] = p.apply(w[..., cols], axis=-1)
            return w
        self._edit(var, arg, f)

    def on_binding(self, bb, var, val):
        if not isinstance(val, relax.Call):
            return None
        args = [relax.const(self.consts[(var, i)]) if (var, i) in self.consts else a for i, a in enumerate(val.args)]
        if var in self.rope:
            return self._rope_call(bb, val, args, *self.rope[var])
        if var in self.head_norms:
            return self._head_norm(bb, var, val, args, *self.head_norms[var])
        if len(args) and any((var, i) in self.consts for i in range(len(args))):
            return relax.Call(val.op, args, val.attrs, val.ty_args)
        return None

    def _rope_call(self, bb, val, args, heads: list, axis: int = 1):
        x, *tabs = args
        new_tabs = [self._table(bb, t, heads, axis) for t in tabs]
        f = self.g.funcs[val.op.name_hint]
        key = (val.op.name_hint, len(heads), axis)
        if key not in self.retyped:
            # the composite's own symbolic dims (main's may not be defined in two functions),
            # with the head axis widened to one table per head
            types = [None] + [relax.TensorType([len(heads) if i == axis else d for i, d in enumerate(p.ty.shape)],
                                               p.ty.dtype) for p in f.params[1:]]
            # fresh symbolic vars too: the original composite stays for the calls left as they
            # were (a fused QKV's RoPE on the queries), and a dim var may not be defined in both
            self.retyped[key] = bb.add_func(relax.utils.copy_with_new_vars(retyped(f, types)),
                                            f"{val.op.name_hint}_heads{len(heads)}")
        return relax.Call(self.retyped[key], [x, *new_tabs])

    def _head_norm(self, bb, var, val, args, heads: list, axis: int):
        """A per-head RMSNorm (q/k norm): its statistic is invariant under each head's signed
        permutation, its shared gain is not; the gain becomes one per head,
        ``gain[p.perm]`` (no sign: the sign is carried by x), multiplied after a unit-gain norm."""
        w = const_value(val.args[1])
        gain, nd = w.astype(np.float64), len(var.ty.shape)
        per = np.stack([gain[p.perm] for p in heads])  # [H, D]
        shape = [1] * nd
        shape[axis], shape[-1] = len(heads), gain.shape[-1]
        normed = bb.emit(relax.Call(val.op, [args[0], relax.const(np.ones_like(w))], val.attrs, val.ty_args))
        return O.multiply(normed, relax.const(per.reshape(shape).astype(w.dtype)))

    def _table(self, bb, table, heads: list, axis: int = 1):
        """A table shared by the heads (size 1 on the heads' ``axis``: ``[B, 1, T, D]``, or
        GPT-J's ``[B, T, 1, D]``) -> one table per head on that axis, head ``h`` permuted by
        ``heads[h]``."""
        shape = table.ty.shape
        if len(shape) != 4 or int(shape[axis]) != 1:
            raise QCompileError(f"k-sort: a RoPE table of shape {[str(s) for s in shape]} is not shared by the heads "
                                f"(size 1 on axis {axis})")
        per = []
        for p in heads:
            key = (table, tuple(p.perm.tolist()))
            if key not in self.tables:
                self.tables[key] = bb.emit(O.take(table, relax.const(p.perm.astype("int64")), axis=3))
            per.append(self.tables[key])
        whole = (table, tuple(id(v) for v in per))
        if whole not in self.tables:
            self.tables[whole] = bb.emit(O.concat(per, axis=axis))
        return self.tables[whole]


def _set_rows(w: np.ndarray, rows: np.ndarray, p: ks.SignedPerm) -> np.ndarray:
    w[rows, :] = p.apply(w[rows, :], axis=0)
    return w
