"""``rotate``: Hadamard rotation of the residual stream, fused into the weights
(QuaRot, Ashkboos et al. 2024; SpinQuant's R1/R2 with fixed random Hadamards).

For each residual-stream region found by :mod:`qcompile.analysis.residual`, with ``Q`` a seeded
random Hadamard matrix of the stream width ``d`` (``Qᵀ Q = I``), in float64:

1. **Norm folding.** RMSNorm: ``γ`` moves into the rows of every linear reading the norm
   (``x̂ · diag(γ) W``), the norm keeps ``γ = 1``. Pre-norm LayerNorm: every writer is
   centred (``W (I - 11ᵀ/d)``, the same for biases and constants), so the stream has zero
   mean, LayerNorm equals RMSNorm on it, and becomes a scale-free RMSNorm; ``γ`` folds as
   above and ``β`` into the readers' biases (``b + β W``).
2. **Rotation.** Writers (embeddings, positional and cls constants, the patch embedding,
   attention output and MLP down projections, their biases; an MoE's expert stacks before
   they are gathered per token): ``W ← W Q`` along the stream's channels. Readers:
   ``W ← Qᵀ W``. A scale-free norm commutes with ``Q``, so the float model is unchanged.
   (A LayerNorm's ``β`` cannot become a bias per gathered expert: such a norm keeps its
   output, un-rotated by one matmul. The experts' down projections get no online Hadamard.)
3. **Online Hadamard** before each down projection (its input comes out of GELU /
   SwiGLU, which a rotation cannot cross): ``x ← x H`` by the fast Walsh-Hadamard kernel
   (:func:`qcompile.passes.rotate.hadamard.fwht_te`), ``W_down ← Hᵀ W_down``.
4. **Head-wise V rotation**: the columns of each V head of the value projection get
   ``H_D``, the matching rows of the output projection ``H_Dᵀ``. Attention mixes
   tokens, not head dims, so this is exact; the value cache is then stored rotated.

Not done: online rotation of Q and K after RoPE (QuaRot's R3, for a quantized key cache);
the ``kv-prerope`` pipeline quantizes keys before RoPE instead.
"""
from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
from tvm import relax
from tvm.relax import op as O

from qcompile.passes.rotate import hadamard
from qcompile.errors import QCompileError
from qcompile.ir import const_value
from qcompile.passmanager import Pass
from qcompile.analysis.graph import Graph
from qcompile.analysis.residual import down_projections, regions, value_paths
from qcompile.rewrite import rebuild_main


@dataclasses.dataclass(frozen=True)
class RotateConfig:
    seed: int = 0                 # random signs of the residual rotation
    online_down: bool = True      # online Hadamard before MLP down projections
    rotate_v: bool = True         # head-wise Hadamard of V fused into the V and O projections


class _Edits:
    """Pending float64 edits of constant arguments, keyed by (binding var, argument index)."""

    def __init__(self, g: Graph):
        self.g = g
        self.values: dict = {}

    def get(self, var, arg: int) -> np.ndarray:
        key = (var, arg)
        if key not in self.values:
            v = const_value(Graph.args(self.g.defs[var])[arg])
            if v is None:
                raise QCompileError(f"rotate: argument {arg} of '{var.name}' is not a constant")
            self.values[key] = v.astype(np.float64)
        return self.values[key]

    def set(self, var, arg: int, value: np.ndarray) -> None:
        self.values[(var, arg)] = value

    def channels(self, var, arg: int, axis: int, m: np.ndarray) -> None:
        """Right-multiply the constant along ``axis`` by ``m``."""
        v = np.moveaxis(self.get(var, arg), axis, -1)
        if v.shape[-1] != m.shape[0]:
            raise QCompileError(f"rotate: constant {arg} of '{var.name}' has {v.shape[-1]} channels, "
                                f"the stream {m.shape[0]}")
        self.set(var, arg, np.moveaxis(v @ m, -1, axis))

    def rows(self, var, arg: int, m: np.ndarray) -> None:
        """Left-multiply a matmul weight ``[in, out]`` (or a stack ``[E, in, out]``) by ``m``."""
        self.set(var, arg, m @ self.get(var, arg))


class Rotate(Pass):
    """Fuse seeded random Hadamard rotations into the weights (the float model is unchanged)."""

    name = "rotate"
    Config = RotateConfig

    def transform(self, mod, ctx):
        cfg = self.config
        g = Graph(mod)
        regs = regions(g)
        if not regs:
            raise QCompileError("rotate: no residual stream found (no RMSNorm or LayerNorm over the last axis)")
        edits = _Edits(g)
        norms: dict = {}            # norm var -> replacement kind
        new_bias: dict = {}         # reader matmul var -> bias vector to add after it
        online: dict = {}           # down-projection matmul var -> its input width
        after: dict = {}            # embedding-norm var -> the rotation its output is multiplied by
        region_notes = []
        for i, r in enumerate(regs):
            q, desc = hadamard.random_orthogonal_hadamard(r.d, cfg.seed + i)
            m = (np.eye(r.d) - 1.0 / r.d) @ q if r.centered else q
            for w in r.writers:
                if w.kind == "norm":  # an embedding norm: its output times the rotation, one matmul
                    after[w.var] = m
                elif w.kind == "matmul":  # the output axis: last, also of batched (E, in, out) experts
                    edits.channels(w.var, 1, -1, m)
                else:
                    edits.channels(w.var, w.arg, w.axis, m)
            for n in r.norms:
                call = g.defs[n.var]
                gamma = const_value(call.args[1])
                beta = const_value(call.args[2]) if n.kind == "layer_norm" else None
                if gamma is None or (n.kind == "layer_norm" and beta is None):
                    raise QCompileError(f"rotate: norm '{n.var.name}' has a scale or shift that is not a constant")
                if n.unrotate:  # y = n(xR) Rᵀ diag(γ) + β, exactly the original output
                    norms[n.var] = (q.T @ np.diag(gamma.astype(np.float64)), beta)
                    continue
                norms[n.var] = n.kind
                for rd in n.readers:
                    if rd.gathered is not None:  # the experts' stack, along its input axis
                        edits.channels(rd.gathered, 0, rd.gathered_axis, np.diag(gamma.astype(np.float64)) @ q)
                        continue
                    w0 = edits.get(rd.matmul, 1).copy()
                    edits.rows(rd.matmul, 1, q.T @ np.diag(gamma.astype(np.float64)))
                    if beta is not None and np.any(beta != 0):
                        if w0.ndim != 2:
                            raise QCompileError(f"rotate: the LayerNorm shift of '{n.var.name}' would move into the "
                                                f"stacked weight of '{rd.matmul.name}' {w0.shape}: not supported")
                        shift = beta.astype(np.float64) @ w0
                        if rd.bias is not None:
                            edits.set(rd.bias, 1, edits.get(rd.bias, 1) + shift)
                        else:
                            new_bias[rd.matmul] = shift
            if cfg.online_down:
                for v in down_projections(g, r):
                    n_in = int(g.defs[v].args[1].ty.shape[-2])  # (in, out), or (E, in, out): GPT-OSS's experts
                    if hadamard.split(n_in) is None:
                        continue
                    online[v] = n_in
                    edits.rows(v, 1, hadamard.online_matrix(n_in).T)
            kinds = Counter(w.kind for w in r.writers)
            region_notes.append({
                "width": r.d, "rotation": desc, "centered": r.centered,
                "writers": dict(sorted(kinds.items())), "norms_folded": len(r.norms),
                "norm_kind": sorted({n.kind for n in r.norms}),
                "readers": sum(len(n.readers) for n in r.norms),
                "unrotated_norms": [n.var.name for n in r.norms if n.unrotate]})
        v_notes = {"applied": 0, "skipped": []}
        if cfg.rotate_v:
            paths, skipped = value_paths(g)
            v_notes["skipped"] = skipped
            for k, p in enumerate(paths):
                h, _ = hadamard.random_orthogonal_hadamard(p.head_dim, cfg.seed + 1000 + k)
                w = edits.get(p.producer, 1)
                for cols in p.v_columns:
                    w[:, cols] = w[:, cols] @ h
                for b in ([edits.get(p.bias, 1)] if p.bias is not None else []) + \
                        ([new_bias[p.producer]] if p.producer in new_bias else []):
                    for cols in p.v_columns:
                        b[..., cols] = b[..., cols] @ h
                wo = edits.get(p.consumer, 1)
                for rows in p.o_rows:
                    wo[rows, :] = h.T @ wo[rows, :]
                v_notes["applied"] += 1
            v_notes["head_dim"] = sorted({p.head_dim for p in paths})
            v_notes["value_cache_rotated"] = any(p.cache_is_output for p in paths)
        ctx.notes["regions"] = region_notes
        if getattr(g, "unrotated", None):
            ctx.notes["streams_left_unrotated"] = g.unrotated
        ctx.notes["online_hadamard"] = {
            "down_projections": len(online),
            "sizes": {str(n): " x ".join(f"{k}" for k in hadamard.split(n)) for n in sorted(set(online.values()))}}
        ctx.notes["value_rotation"] = v_notes
        ctx.notes["not_done"] = "online rotation of Q and K after RoPE (QuaRot R3)"
        assert not set(after) & set(norms), "a norm both opens a stream and reads one"
        return relax.transform.Normalize()(_rebuild(mod, g, edits, norms, new_bias, online, after))


def _rebuild(mod, g: Graph, edits: _Edits, norms: dict, new_bias: dict, online: dict, after: dict):
    """The module with ``main`` re-emitted, edits applied (a new module)."""
    consts = {key: relax.const(v.astype(str(Graph.args(g.defs[key[0]])[key[1]].ty.dtype)))
              for key, v in edits.values.items()}
    fwht_a: dict = {}

    def on_binding(bb, var, val):
        if not isinstance(val, relax.Call):
            return None
        flat, args = 0, []
        for a in val.args:
            if isinstance(a, relax.Tuple):
                args.append(relax.Tuple([consts.get((var, flat + j), f) for j, f in enumerate(a.fields)]))
                flat += len(a.fields)
            else:
                args.append(consts.get((var, flat), a))
                flat += 1
        if not isinstance(var.ty, relax.TensorType):  # shape_of and other non-tensor bindings
            return None
        dtype = str(var.ty.dtype)
        if var in norms:
            ones = relax.const(np.ones(int(var.ty.shape[-1]), dtype))
            normed = O.nn.rms_norm(args[0], ones, axes=[-1], epsilon=float(val.attrs.epsilon))
            if isinstance(norms[var], tuple):  # un-rotated: the norm's own output, for non-linear readers
                m, beta = norms[var]
                out = O.matmul(bb.emit(normed), relax.const(m.astype(dtype)))
                return out if beta is None or not np.any(beta != 0) else \
                    O.add(bb.emit(out), relax.const(beta.astype(dtype)))
            return normed
        if var in online:
            n = online[var]
            k, _ = hadamard.split(n)
            te_args = [args[0]]
            if k > 1:
                fwht_a.setdefault(k, relax.const(hadamard.hadamard(k).astype(dtype)))
                te_args.append(fwht_a[k])
            args[0] = bb.emit_te(hadamard.fwht_te, *te_args, primfunc_name_hint=f"fwht{n}")
        new = relax.Call(val.op, args, val.attrs, val.ty_args)
        if var in after:
            return O.matmul(bb.emit(new), relax.const(after[var].astype(dtype)))
        if var in new_bias:
            new = O.add(bb.emit(new), relax.const(new_bias[var].astype(dtype)))
        return new

    return rebuild_main(mod, on_binding)
