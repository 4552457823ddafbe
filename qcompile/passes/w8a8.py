"""``w8a8``: linear layers **executed** in int8 x int8 -> int32, with activations quantized
per token at run time (the deployment form of ``qdq-sim``'s W8A8, as in QuaRot, SmoothQuant
and onnxruntime's dynamic quantization).

Every linear layer ``y = x @ W`` with a constant 2-D float32 weight becomes::

    s_x = max(max|x| over the last axis / qa, 1e-12)          # one scale per token, float32
    q_x = int8(clip(round(x / s_x), -qa, qa))                 # round half to even
    acc = matmul(q_x, Q_W, out_dtype=int32)                   # exact integer products and sums
    y   = (float32(acc) * s_x) * s_W

with ``Q_W`` int8 codes and ``s_W`` one float32 scale per output channel, both computed at
compile time (symmetric round-to-nearest, :func:`quantize_weight`; ``qa = 2^(a_bits-1) - 1``).
Layers reading the same activation (Q, K and V; gate and up) share one quantization of it.

This is ``qdq-sim`` with the same quantizers (``qcompile/passes/qdq_sim.py``), executed: the
products are summed exactly in int32 instead of in float, so the two agree to float round-off
(``tests/test_w8a8.py``). On llvm with AVX2 the int8 matmuls take the packed ``vpmaddwd``
kernel of ``int-only`` (:mod:`qcompile.backends.x86_packed`), and the dequantizing multiplies
fuse into its epilogue: the weights are read as int8, a quarter of their float bytes.

Left in float, as in ``qdq-sim`` (and QuaRot): the output head (a linear whose result is a
model output; ``head=true`` quantizes it too), convolutions, and attention's activation x
activation matmuls (the KV cache is ``kv-prerope``'s job: the two compose). A layer whose
int32 accumulator could overflow (``K * qa * qw >= 2^31``) stays float and is counted.

The pass runs after the cache passes (``k-sort`` folds a permutation into the float key and
value weights, so they must still be float then): their calibration sees float projections.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from tvm import relax
from tvm.relax import op as O

from qcompile.analysis.graph import Graph, head_linears, linear_at
from qcompile.errors import QCompileError
from qcompile.passmanager import Pass, mapped_probes
from qcompile.rewrite import rebuild_main

INT32_MAX = 2 ** 31 - 1


@dataclasses.dataclass(frozen=True)
class W8A8Config:
    w_bits: int = 8    # weight codes (2..8, stored as int8)
    a_bits: int = 8    # activation codes (2..8, int8)
    head: bool = False  # quantize the output head too


def quantize_weight(w: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``W [K, N]`` -> (int8 codes ``[K, N]``, float32 scales ``[N]``): symmetric, one scale per
    output channel, ``s = max|W[:, j]| / qw``, ``np.rint`` (half to even). The same levels as
    :func:`qcompile.passes.qdq_sim.qdq_weight`: ``codes * s`` is its result."""
    qmax = 2 ** (bits - 1) - 1
    w64 = w.astype(np.float64)
    s = np.abs(w64).max(axis=0) / qmax
    s = np.where(s == 0, 1.0, s)
    q = np.clip(np.rint(w64 / s), -qmax, qmax).astype(np.int8)
    return q, s.astype(np.float32)


def linear_ref(x: np.ndarray, q: np.ndarray, sw: np.ndarray, a_bits: int = 8) -> np.ndarray:
    """NumPy reference of one rewritten layer, in the graph's float32 operation order."""
    qa = np.float32(2 ** (a_bits - 1) - 1)
    x = x.astype(np.float32)
    s = np.maximum(np.abs(x).max(axis=-1, keepdims=True) / qa, np.float32(1e-12))
    qx = np.clip(np.round(x / s), -qa, qa).astype(np.int8)
    acc = np.matmul(qx.astype(np.int32), q.astype(np.int32))
    return (acc.astype(np.float32) * s) * sw


class W8A8(Pass):
    """Linear layers as int8 x int8 -> int32 matmuls, activations quantized per token."""

    name = "w8a8"
    Config = W8A8Config

    def transform(self, mod, ctx):
        cfg = self.config
        for b in (cfg.w_bits, cfg.a_bits):
            if not 2 <= b <= 8:
                raise QCompileError(f"w8a8: bit width {b} out of range (2..8: codes are int8)")
        qa, qw = 2 ** (cfg.a_bits - 1) - 1, 2 ** (cfg.w_bits - 1) - 1
        g = Graph(mod)
        heads = set() if cfg.head else head_linears(g)
        counts = {"linears_int8": 0, "activation_quantizations": 0, "kept_float_head": len(heads),
                  "kept_float_overflow": 0, "weight_bytes_float": 0, "weight_bytes_int8": 0}
        quantized: dict = {}  # activation (re-emitted var) -> (codes, scales)

        def quantize_act(bb, x):
            if x not in quantized:
                c = lambda v: relax.const(v, "float32")  # noqa: E731
                amax = bb.emit(O.max(O.abs(x), axis=-1, keepdims=True))
                s = bb.emit(O.maximum(O.divide(amax, c(float(qa))), c(1e-12)))
                q = bb.emit(O.astype(O.clip(O.round(O.divide(x, s)), -qa, qa), "int8"))
                quantized[x] = (q, s)
                counts["activation_quantizations"] += 1
            return quantized[x]

        def on_binding(bb, var, val):
            lin = linear_at(g.defs, var, rank2=True, with_bias=False)
            if lin is None or var in heads or lin.weight.dtype != np.float32:
                return None
            x = val.args[0]
            if str(x.ty.dtype) != "float32":
                return None
            k = lin.weight.shape[0]
            if k * qa * qw > INT32_MAX:
                counts["kept_float_overflow"] += 1
                return None
            q, sw = quantize_weight(lin.weight, cfg.w_bits)
            qx, sx = quantize_act(bb, x)
            acc = bb.emit(O.matmul(qx, relax.const(q), out_dtype="int32"))
            counts["linears_int8"] += 1
            counts["weight_bytes_float"] += lin.weight.nbytes
            counts["weight_bytes_int8"] += q.nbytes + sw.nbytes
            return O.multiply(O.multiply(O.astype(acc, "float32"), sx), relax.const(sw))

        env: dict = {}
        out = rebuild_main(mod, on_binding, env=env)
        ctx.answer_probes(lambda: mapped_probes(mod, out, env))  # per-block error for the report
        ctx.notes["execution"] = ("int8 x int8 -> int32 matmuls; weights per output channel, activations per "
                                  "token at run time, symmetric round-to-nearest")
        ctx.notes["w_bits"], ctx.notes["a_bits"] = cfg.w_bits, cfg.a_bits
        ctx.notes.update(counts)
        if not counts["linears_int8"]:
            ctx.notes["warning"] = "no float32 linear layer with a constant 2-D weight outside the head"
        return relax.transform.Normalize()(out)
