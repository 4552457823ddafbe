"""``qdq-sim``: **simulated** weight/activation quantization (quantize-dequantize in float).

A measuring instrument, not a deployment format: it shows what a bit width costs in
accuracy, e.g. with and without ``rotate`` (``benchmarks/rotate.py``). Every linear layer
``x @ W`` with a constant 2-D weight becomes ``qdq_a(x) @ qdq_w(W)``:

* weights: symmetric, one scale per output channel, ``s = max|W[:, j]| / (2^(b-1) - 1)``,
  round to nearest (``np.rint``: half to even), computed at compile time;
* activations: symmetric, one scale per token (row of the last axis), computed at run time
  in the graph, ``round`` then clip to ``[-(2^(b-1) - 1), 2^(b-1) - 1]``;
* ``w_bits`` / ``a_bits`` of 0 leave that side in float.

Left in float (QuaRot keeps them too): the output head (a linear whose result is a model
output, directly or through its bias), convolutions (a ViT's patch embedding), and the
activation x activation matmuls inside attention (the KV cache is ``kv-prerope``'s job).
"""
from __future__ import annotations

import dataclasses

import numpy as np
from tvm import relax
from tvm.relax import op as O

from qcompile.errors import QCompileError
from qcompile.passmanager import Pass, mapped_probes
from qcompile.analysis.graph import Graph, head_linears, linear_at
from qcompile.rewrite import rebuild_main


@dataclasses.dataclass(frozen=True)
class QdqSimConfig:
    w_bits: int = 8
    a_bits: int = 8


def qdq_weight(w: np.ndarray, bits: int) -> np.ndarray:
    """Per-output-channel (columns of ``[in, out]``) symmetric round-to-nearest, dequantized."""
    qmax = 2 ** (bits - 1) - 1
    s = np.abs(w).max(axis=0, keepdims=True) / qmax
    s = np.where(s == 0, 1.0, s)
    return (np.clip(np.rint(w / s), -qmax, qmax) * s).astype(w.dtype)


def qdq_act_ref(x: np.ndarray, bits: int) -> np.ndarray:
    """NumPy reference of the in-graph per-token activation quantize-dequantize."""
    qmax = 2 ** (bits - 1) - 1
    s = np.maximum(np.abs(x).max(axis=-1, keepdims=True) / qmax, np.float32(1e-12))
    return np.clip(np.round(x / s), -qmax, qmax) * s


class QdqSim(Pass):
    """Simulated W/A quantization of the linear layers (labelled as a simulation in reports)."""

    name = "qdq-sim"
    Config = QdqSimConfig

    def transform(self, mod, ctx):
        cfg = self.config
        for b in (cfg.w_bits, cfg.a_bits):
            if b != 0 and not 2 <= b <= 16:
                raise QCompileError(f"qdq-sim: bit width {b} out of range (2..16, or 0 for float)")
        g = Graph(mod)
        heads = head_linears(g)
        counts = {"linears_quantized": 0, "kept_float_head": len(heads)}

        def on_binding(bb, var, val):
            lin = linear_at(g.defs, var, rank2=True, with_bias=False)
            if lin is None or var in heads or lin.weight.dtype.kind != "f":
                return None
            w = lin.weight
            counts["linears_quantized"] += 1
            x = val.args[0]
            if cfg.a_bits:
                x = bb.emit(_qdq_act(bb, x, cfg.a_bits, str(w.dtype)))
            if cfg.w_bits:
                w = qdq_weight(w.astype(np.float64), cfg.w_bits).astype(w.dtype)
            return relax.Call(val.op, [x, relax.const(w)], val.attrs, val.ty_args)

        env: dict = {}
        out = rebuild_main(mod, on_binding, env=env)
        ctx.answer_probes(lambda: mapped_probes(mod, out, env))  # per-block error for the report
        ctx.notes["simulation"] = ("quantize-dequantize in float32: weights per output channel, activations "
                                   "per token, symmetric round-to-nearest")
        ctx.notes["w_bits"], ctx.notes["a_bits"] = cfg.w_bits, cfg.a_bits
        ctx.notes.update(counts)
        return relax.transform.Normalize()(out)


def _qdq_act(bb, x, bits: int, dtype: str):
    qmax = float(2 ** (bits - 1) - 1)
    c = lambda v: relax.const(v, dtype)  # noqa: E731
    amax = bb.emit(O.max(O.abs(x), axis=-1, keepdims=True))
    s = bb.emit(O.maximum(O.divide(amax, c(qmax)), c(1e-12)))
    q = bb.emit(O.clip(O.round(O.divide(x, s)), -qmax, qmax))
    return O.multiply(q, s)
