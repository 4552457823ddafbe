"""``qdq-sim``: **simulated** weight/activation quantization (quantize-dequantize in float).

A measuring instrument, not a deployment format: it shows what a bit width costs in
accuracy, e.g. with and without ``rotate`` (``benchmarks/rotate.py``). Every linear layer
``x @ W`` with a constant 2-D weight becomes ``qdq_a(x) @ qdq_w(W)``:

* weights: symmetric, one scale per output channel, ``s = max|W[:, j]| / (2^(b-1) - 1)``,
  round to nearest (``np.rint``: half to even), computed at compile time;
* activations: symmetric, one scale per token (row of the last axis), computed at run time
  in the graph, ``round`` then clip to ``[-(2^(b-1) - 1), 2^(b-1) - 1]``;
* ``w_bits`` / ``a_bits`` of 0 leave that side in float;
* ``w_clip="mse"``: each output channel's range is shrunk to the ratio ``p`` of its maximum
  (``p = 1, 0.99, ..., 0.21``) that minimizes ``sum |Q(w) - w|^2.4`` over the channel: the
  ``mse`` weight quantizer of GPTQ's code, which QuaRot ships for its round-to-nearest
  weights (grid 100, max shrink 0.8, norm 2.4). Default ``"none"``: the channel's maximum;
* ``w_gptq=True``: the weights are rounded onto the same levels by GPTQ
  (:func:`qcompile.weights.gptq`) instead of to nearest, from each layer's input Gram matrix
  on the calibration data (needs calibration; the float model's inputs, not those of the
  layers quantized before it).

Left in float (QuaRot keeps them too): the output head (a linear whose result is a model
output, directly or through its bias), convolutions (a ViT's patch embedding), and the
activation x activation matmuls inside attention (the KV cache is ``kv-prerope``'s job).
"""
from __future__ import annotations

import dataclasses

import numpy as np
from tvm import relax
from tvm.relax import op as O

from qcompile import progress
from qcompile.collectors import Gram
from qcompile.errors import QCompileError
from qcompile.weights import gptq, weight_scales
from qcompile.passmanager import Pass, mapped_probes
from qcompile.analysis.graph import Graph, head_linears, linear_at
from qcompile.rewrite import rebuild_main


@dataclasses.dataclass(frozen=True)
class QdqSimConfig:
    w_bits: int = 8
    a_bits: int = 8
    w_clip: str = "none"
    w_gptq: bool = False


def qdq_weight(w: np.ndarray, bits: int, clip: str = "none") -> np.ndarray:
    """Per-output-channel symmetric round-to-nearest (scales from :func:`weight_scales`), dequantized."""
    qmax = 2 ** (bits - 1) - 1
    s = weight_scales(w, bits, clip)
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

    @property
    def needs_calibration(self) -> bool:
        return bool(self.config.w_gptq) and self.config.w_bits != 0

    def _linears(self, mod) -> tuple[dict, int]:
        """``{matmul var: Linear}`` of the layers this pass quantizes, and how many output-head
        linears it leaves float."""
        g = Graph(mod)
        heads = head_linears(g)
        out = {}
        for var in g.order:
            lin = linear_at(g.defs, var, rank2=True, with_bias=False)
            if lin is not None and var not in heads and lin.weight.dtype.kind == "f":
                out[var] = lin
        return out, len(heads)

    def calibration_requests(self, mod):
        if not self.needs_calibration:
            return {}
        return {lin.x: [Gram()] for lin in self._linears(mod)[0].values() if isinstance(lin.x, relax.Var)}

    def transform(self, mod, ctx):
        cfg = self.config
        for b in (cfg.w_bits, cfg.a_bits):
            if b != 0 and not 2 <= b <= 16:
                raise QCompileError(f"qdq-sim: bit width {b} out of range (2..16, or 0 for float)")
        weight_scales(np.ones((1, 1)), 8, cfg.w_clip)  # an unknown w_clip fails before any work
        linears, n_heads = self._linears(mod)
        counts = {"linears_quantized": 0, "kept_float_head": n_heads}
        gptq_layers = []
        slow = bool(cfg.w_bits) and (cfg.w_gptq or cfg.w_clip != "none")  # ~0.5 s a layer of SmolLM2
        bar = progress.bar(len(linears), "rounding weights (GPTQ)" if cfg.w_gptq else "searching weight ranges",
                           "layer", enabled=slow)

        def on_binding(bb, var, val):
            lin = linears.get(var)
            if lin is None:
                return None
            w = lin.weight
            counts["linears_quantized"] += 1
            x = val.args[0]
            if cfg.a_bits:
                x = bb.emit(_qdq_act(bb, x, cfg.a_bits, str(w.dtype)))
            if cfg.w_bits and self.needs_calibration:
                gram = (ctx.stats.get(lin.x) or [None])[0]
                if gram is None or gram.xtx is None:
                    raise QCompileError(f"qdq-sim: no calibration inputs for the linear layer '{var.name}' (w_gptq)")
                w64 = w.astype(np.float64)
                w = gptq(w64, gram.xtx, gram.rows, weight_scales(w64, cfg.w_bits, cfg.w_clip), cfg.w_bits)
                w = w.astype(lin.weight.dtype)
                gptq_layers.append(var.name)
            elif cfg.w_bits:
                w = qdq_weight(w.astype(np.float64), cfg.w_bits, cfg.w_clip).astype(w.dtype)
            bar.update(1)
            return relax.Call(val.op, [x, relax.const(w)], val.attrs, val.ty_args)

        env: dict = {}
        try:
            out = rebuild_main(mod, on_binding, env=env)
        finally:
            bar.close()
        ctx.answer_probes(lambda: mapped_probes(mod, out, env))  # per-block error for the report
        ctx.notes["simulation"] = ("quantize-dequantize in float32: weights per output channel, activations "
                                   "per token, symmetric round-to-nearest"
                                   + (", weight ranges clipped (least 2.4-norm error)" if cfg.w_clip == "mse" else "")
                                   + (", weights rounded by GPTQ" if gptq_layers else ""))
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
