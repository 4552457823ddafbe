"""Compare a compiled artifact against the float reference on held-out data.

The reference is onnxruntime on the original ONNX file (or torch for a module). Metrics
per output: max |err|, cosine similarity (flattened), and for logits-shaped outputs the
top-1 agreement (argmax over the last axis). When the data file also holds an integer
``labels`` array (one per sample), logits outputs get top-1 accuracy for the artifact and
for the reference.
"""
from __future__ import annotations

import numpy as np
from qcompile.progress import iterate

from qcompile.errors import QCompileError
from qcompile.samples import batches, check_array
from qcompile.loader import Model


def fixed_batch(model: Model) -> int | None:
    """The model's fixed leading (batch) dim, or None where it is symbolic."""
    fixed = [d for d in {s.shape[0] for s in model.inputs if s.shape} if isinstance(d, int) and d > 0]
    return fixed[0] if fixed else None


def batch_size_for(model: Model, requested: int) -> int:
    """Symbolic leading dim: the requested batch; fixed leading dim: that size."""
    return fixed_batch(model) or requested


class Reference:
    """The float oracle: onnxruntime (ONNX models) or torch (modules)."""

    def __init__(self, model: Model, module=None):
        self.model = model
        if model.source == "onnx":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            self.sess = ort.InferenceSession(str(model.path), opts, providers=["CPUExecutionProvider"])
            self.names = [i.name for i in self.sess.get_inputs()]
        elif module is None:
            raise QCompileError("a torch model needs its module as the reference")
        else:
            self.module = module

    def __call__(self, feed: dict) -> list[np.ndarray]:
        if self.model.source == "onnx":
            return self.sess.run(None, {n: feed[n] for n in self.names})
        import torch

        with torch.no_grad():
            out = self.module(*[torch.from_numpy(feed[s.name]) for s in self.model.inputs])
        out = out if isinstance(out, (tuple, list)) else [out]
        return [o.numpy() for o in out]


def check_inputs(model: Model, data: dict, what: str = "evaluation data", note=None) -> dict:
    """``data`` with every model input present and checked (:func:`check_array`; ``what``
    names the data's role and file in an error, ``note`` hears of each dtype cast)."""
    missing = [s.name for s in model.inputs if s.name not in data]
    if missing:
        raise QCompileError(f"{what} lacks model input(s) {', '.join(missing)}", hint=f"it has: {', '.join(data)}")
    return {**data, **{s.name: check_array(s.name, data[s.name], s.shape, s.dtype, what, note)
                       for s in model.inputs}}


def usable(model: Model, data: dict, batch: int, what: str = "evaluation data", note=None) -> tuple[dict, int, int]:
    """``data`` checked (:func:`check_inputs`) and cut to whole batches of the model's fixed
    batch where it has one: (data, batch, samples). The driver calls it once the model is
    loaded, before any pass runs, so that bad evaluation data stops the compile there."""
    data = check_inputs(model, data, what, note)
    data = {k: v for k, v in data.items() if k == "labels" or any(s.name == k for s in model.inputs)}  # others unused
    counts = {k: len(v) for k, v in data.items() if np.ndim(v)}
    if len(set(counts.values())) > 1:
        raise QCompileError(f"{what}: arrays disagree on the sample count: {counts}")
    labels = data.get("labels")
    if labels is not None and (labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer)):
        raise QCompileError(f"{what}: 'labels' must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    fixed = fixed_batch(model)
    n = next(iter(counts.values()), 0)
    if n == 0:
        raise QCompileError(f"{what} has 0 samples")
    usable_ = n - n % fixed if fixed else n
    if usable_ == 0:
        raise QCompileError(f"{what} has {n} sample(s), fewer than the model's fixed batch of {fixed}",
                            hint=f"give at least {fixed} samples")
    return {k: v[:usable_] for k, v in data.items()}, fixed or batch, usable_


def compare(artifact, model: Model, data: dict, reference: Reference, batch: int = 16,
            progress: bool = True) -> dict:
    """Run artifact and reference on ``data`` in batches; return metrics per output."""
    data, bs, usable_ = usable(model, data, batch)
    labels = data.get("labels")
    acc: dict[int, dict] = {}
    order = [s.name for s in model.inputs]
    for feed in iterate(batches(data, bs), -(-usable_ // bs), "evaluating", "batch", progress):
        got = artifact.run(*[feed[k] for k in order])
        lab = feed.get("labels")
        ref = reference(feed)
        for i, (g, r) in enumerate(zip(got, ref)):
            for who, arr in (("the artifact", g), ("the float reference", r)):
                arr = np.asarray(arr)
                if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                    name = model.outputs[i] if i < len(model.outputs) else f"output{i}"
                    raise QCompileError(f"{who} gives {int((~np.isfinite(arr)).sum())} NaN/Inf value(s) in output "
                                        f"'{name}' on the evaluation data: no figure is computed from them",
                                        hint="check the model's weights (an Inf weight makes every output NaN)")
            g64, r64 = g.astype(np.float64).ravel(), np.asarray(r, np.float64).ravel()
            a = acc.setdefault(i, {"max_abs_err": 0.0, "dot": 0.0, "gg": 0.0, "rr": 0.0, "agree": 0, "rows": 0,
                                   "correct": 0, "ref_correct": 0})
            a["max_abs_err"] = max(a["max_abs_err"], float(np.abs(g64 - r64).max()) if g64.size else 0.0)
            a["dot"] += float(g64 @ r64)
            a["gg"] += float(g64 @ g64)
            a["rr"] += float(r64 @ r64)
            if g.ndim == 2 and g.shape[-1] > 1 and np.issubdtype(g.dtype, np.floating):  # logits [N, C]
                a["agree"] += int((g.argmax(-1) == np.asarray(r).argmax(-1)).sum())
                a["rows"] += int(np.prod(g.shape[:-1]))
                if lab is not None:
                    a["correct"] += int((g.argmax(-1) == lab).sum())
                    a["ref_correct"] += int((np.asarray(r).argmax(-1) == lab).sum())
    out = {}
    names = model.outputs if len(model.outputs) == len(acc) else [f"output{i}" for i in acc]
    for i, a in acc.items():
        m = {"max_abs_err": a["max_abs_err"],
             "cosine": a["dot"] / max(np.sqrt(a["gg"] * a["rr"]), 1e-30)}
        if a["rows"]:
            m["top1_agreement"] = a["agree"] / a["rows"]
            if labels is not None:
                m["top1_accuracy"] = a["correct"] / a["rows"]
                m["reference_top1_accuracy"] = a["ref_correct"] / a["rows"]
        out[names[i]] = m
    return {"samples": usable_, "batch": bs, "outputs": out}


def compare_layers(probe, float_art, quant_art, model: Model, data: dict, batch: int = 16,
                   progress: bool = True) -> list[dict]:
    """Per-layer error: each probed block output of the quantized artifact against the same
    tensor of the float model (``probe``: a :class:`qcompile.passmanager.Probes`, both of its
    modules built), over the evaluation data. Per block: cosine similarity and relative error
    ``||q - f|| / ||f||`` (both over all samples, flattened)."""
    from qcompile.backends.common import host_quantize

    data, bs, usable_ = usable(model, data, batch)
    n = len(probe.bindings)
    acc = np.zeros((n, 4))  # q.f, q.q, f.f, |q - f|^2
    order = [s.name for s in model.inputs]
    for feed in iterate(batches(data, bs), -(-usable_ // bs), "per-layer error", "batch", progress):
        xs = [feed[k] for k in order]
        got = quant_art.run_raw(*(host_quantize({"inputs": probe.io}, xs) if probe.io else xs))[-n:]
        ref = float_art.run_raw(*xs)[-n:]
        for i, (q, f) in enumerate(zip(got, ref)):
            q64, f64 = np.asarray(q, np.float64).ravel(), np.asarray(f, np.float64).ravel()
            if not (np.isfinite(q64).all() and np.isfinite(f64).all()):
                raise QCompileError(f"per-layer error: NaN/Inf at binding '{probe.bindings[i]}' "
                                    f"({'the artifact' if not np.isfinite(q64).all() else 'the float model'})")
            d = q64 - f64
            acc[i] += (q64 @ f64, q64 @ q64, f64 @ f64, d @ d)
    out = []
    for i in range(n):
        qf, qq, ff, dd = acc[i]
        out.append({"label": probe.labels[i], "binding": probe.bindings[i],
                    "cosine": float(qf / max(np.sqrt(qq * ff), 1e-30)),
                    "relative_error": float(np.sqrt(dd / max(ff, 1e-30)))})
    return out
