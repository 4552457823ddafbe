"""An example pass to copy: int8 weight-only quantization of linear layers.

Each linear layer ``x @ W`` with a float32 weight of at least ``min_in`` input channels
stores ``W`` as int8 codes ``q`` with one scale per output channel, ``s = max|W[:, j]| /
127``, and computes ``x @ (float(q) * s)``: the weights take a quarter of the bytes. It
shows the four parts every qcompile pass has: a typed config (unknown or ill-typed
options are refused), the graph question asked of :mod:`qcompile.analysis` (never a
hand-written walk), the rewrite as a ``relax.dpl`` pattern with
:func:`qcompile.rewrite.rewrite` (errors name the binding), and notes that land in
``report.json``. ``tests/test_architecture.py`` runs it.

    import qcompile as qc
    from examples.weight_only_pass import WeightOnly
    qc.register_pass(WeightOnly, after="qdq-sim")          # its place in the pass order
    qc.register("w8", [WeightOnly], "int8 weight-only linear layers")
    mod = qc.PassManager(qc.pipeline("w8")).run(qc.load("model.onnx").mod)
"""
from __future__ import annotations

import dataclasses

import numpy as np
from tvm import relax
from tvm.relax.dpl import is_const, is_op, wildcard

import qcompile as qc
from qcompile.analysis.graph import Graph, linear_at
from qcompile.rewrite import rewrite


@dataclasses.dataclass(frozen=True)
class WeightOnlyConfig:
    min_in: int = 16  # smaller layers stay float


class WeightOnly(qc.Pass):
    """``x @ W`` -> ``x @ (float(q) * s)``, ``q`` int8 per output channel."""

    name = "weight-only"
    Config = WeightOnlyConfig

    def transform(self, mod, ctx):
        g = Graph(mod)  # analysis: which weights belong to linear layers
        layers = [lin for v in g.order if (lin := linear_at(g.defs, v, rank2=True, with_bias=False)) is not None]
        chosen = [g.defs[lin.matmul].args[1] for lin in layers
                  if lin.weight.dtype == np.float32 and lin.weight.shape[0] >= self.config.min_in]
        x, w = wildcard(), is_const()
        stats = {"linear_layers": 0, "weight_bytes_before": 0, "weight_bytes_after": 0}

        def quantize(call, m):
            if not any(m[w].same_as(c) for c in chosen):
                return call
            wf = m[w].value.numpy()
            s = np.maximum(np.abs(wf).max(axis=0), 1e-12) / 127.0
            q = np.clip(np.rint(wf / s), -127, 127).astype(np.int8)
            stats["linear_layers"] += 1
            stats["weight_bytes_before"] += wf.nbytes
            stats["weight_bytes_after"] += q.nbytes + s.astype(np.float32).nbytes
            deq = relax.op.multiply(relax.op.astype(relax.const(q), "float32"), relax.const(s.astype(np.float32)))
            return relax.op.matmul(m[x], deq)

        mod = mod.clone() if hasattr(mod, "clone") else mod
        mod["main"] = rewrite(is_op("relax.matmul")(x, w), quantize, mod["main"])
        ctx.notes["weight_only"] = stats
        return relax.transform.Normalize()(mod)
