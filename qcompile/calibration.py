"""Streaming calibration.

``Calibration(samples)`` takes input data as

* a dict ``{input name: array}`` whose arrays share a leading sample axis (an ``.npz``
  file has exactly this form),
* a path to such an ``.npz`` file,
* an iterable (list, generator, ...) of such dicts, each one batch.

:meth:`Calibration.collect` compiles the float module for llvm with the requested
intermediate tensors exposed as extra outputs, runs it batch by batch and feeds every
tensor to its collectors, which keep running statistics only (min/max, per-channel
absmax, histograms for percentiles). Activations are never accumulated.
"""
from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import tvm
from tvm import relax

from qcompile import progress as _progress
from qcompile.collectors import (AbsMaxPerChannel, ChannelHistogram, Collector, Histogram, MinMax,
                                 RowNormHistogram, Sample)
from qcompile.errors import QCompileError
from qcompile.samples import batches, check_array, check_finite, read_npz

# the collectors are defined in qcompile.collectors (passes import them from there) and
# re-exported here, where a user calibrating a model looks for them
__all__ = ["Calibration", "Collected", "FEW_SAMPLES", "tap", "AbsMaxPerChannel", "ChannelHistogram", "Collector",
           "Histogram", "MinMax", "RowNormHistogram", "Sample"]


class Calibration:
    """Calibration samples plus the machinery to stream statistics out of a float module."""

    def __init__(self, samples, batch: int = 16, limit: int | None = None, progress: bool = True,
                 window: int = 512):
        #: the data's role and file, as one-line errors name it
        self.what = f"calibration data {samples}" if isinstance(samples, (str, os.PathLike)) else "calibration data"
        if isinstance(samples, (str, os.PathLike)):
            samples = read_npz(samples)
        if isinstance(samples, dict):
            check_finite(samples, self.what)  # up front, before any compile work (not from inside a pass)
        self.tokens = None
        self._samples = None  # a dict of arrays, when given one (conform() checks it)
        self.shapes: dict = {}  # input name -> array shape (samples first), for dict samples
        self.float_names: set = set()  # the float arrays among them
        if isinstance(samples, dict) and "tokens" in samples and set(samples) <= {"tokens", "bos"}:
            # a decoder with a KV cache calibrates on a token stream (see qcompile.lm.decoder_feeds)
            tokens = np.asarray(samples["tokens"])
            if tokens.dtype.kind not in "iu":
                raise QCompileError(f"{self.what}: 'tokens' is {tokens.dtype}, token ids must be integers")
            self.tokens = tokens.reshape(-1).astype(np.int64)
            self.bos = int(samples["bos"]) if "bos" in samples else None
            self.window = int(window)
            self._source, self.num_batches = (lambda: iter(())), None
        elif isinstance(samples, dict):
            self.shapes = {k: np.shape(v) for k, v in samples.items()}
            self.float_names = {k for k, v in samples.items() if np.asarray(v).dtype.kind == "f"}
            if limit is not None:
                samples = {k: v[:limit] for k, v in samples.items()}
            self._samples = samples = dict(samples)  # conform() replaces arrays in it
            self._source = lambda: batches(samples, batch)
            self.num_batches = -(-len(next(iter(samples.values()))) // batch) if samples else 0
        elif isinstance(samples, Iterable):
            items = samples if isinstance(samples, (list, tuple)) else None
            if items is None:  # a one-shot iterator: it can be consumed once
                consumed = []

                def once():
                    if consumed:
                        raise QCompileError("calibration iterator already consumed",
                                            hint="pass a list or a dict of arrays to calibrate more than one pass")
                    consumed.append(True)
                    return iter(samples)

                self._source, self.num_batches = once, None
            else:
                self._source, self.num_batches = (lambda: iter(items)), len(items)
        else:
            raise QCompileError(f"calibration samples must be a dict of arrays, an .npz path or an iterable, "
                                f"not {type(samples).__name__}")
        self.progress = progress

    def __iter__(self):
        return self._source()

    def conform(self, inputs, note=None) -> None:
        """Check the data's arrays against the model's inputs (``InputSpec``: name, shape,
        dtype) once, up front (dtype cast by :func:`qcompile.samples.conform_dtype`'s rule,
        ``note`` hearing of each cast; finite; rank and fixed dims), so that bad calibration
        data stops a compile before any pass runs. Only for a dict of arrays (a file):
        batches from an iterable are checked as they come, in :meth:`collect`."""
        data = self._samples
        if data is None:
            return
        keys = {spec.name: spec.name if spec.name in data else next(
            (k for k in data if k.replace(".", "_") == spec.name.replace(".", "_")), None) for spec in inputs}
        missing = [name for name, key in keys.items() if key is None]
        if missing:
            raise QCompileError(f"{self.what} lacks input(s) {', '.join(missing)}",
                                hint=f"it has: {', '.join(data) or 'nothing'}")
        for spec in inputs:
            key = keys[spec.name]
            data[key] = check_array(spec.name, data[key], spec.shape, str(spec.dtype), self.what, note)
            if np.ndim(data[key]) and len(data[key]) == 0:
                raise QCompileError(f"{self.what} has 0 samples")

    def collect(self, mod, requests: dict) -> dict:
        """Run ``mod`` (float, llvm) on every batch; feed the requested bindings of ``main``
        (``{relax.Var: [Collector, ...]}``) into their collectors. Returns ``requests``."""
        if not requests:
            return requests
        from qcompile.build import build  # the scheduled llvm build: unscheduled kernels are ~100x slower

        try:
            vm = build(tap(mod, list(requests)), "llvm").vm()
        except QCompileError:
            raise
        except (RuntimeError, AssertionError, ValueError, TypeError) as e:  # TVM's assertion on a shape it cannot carry
            # (WavLM's position buckets over a symbolic length): one line, with the way around it
            first = (str(e).strip().splitlines() or [type(e).__name__])[-1]
            symbolic = any(not isinstance(d, tvm.tirx.IntImm) for p in mod["main"].params
                           for d in (getattr(getattr(p.ty, "shape", None), "values", None) or []))
            raise QCompileError(f"calibration: the model observed at {len(requests)} tensor(s) does not build "
                                f"for llvm: {type(e).__name__}: {first}",
                                hint="fix the symbolic input dims with --input-shape (tables computed from "
                                     "them then fold into constants)" if symbolic else None) from e
        params = [p.name for p in mod["main"].params]
        if self.tokens is not None:
            from qcompile.lm import decoder_feeds
            feeds, total = decoder_feeds(self.tokens, mod["main"], self.window, self.bos)
        else:
            feeds, total = iter(self), self.num_batches
        send = getattr(feeds, "send", None)  # a generator source gets each step's outputs back
        seen, samples, feed = 0, 0, next(feeds, None)
        bar = _progress.bar(total, "calibrating", "batch", self.progress)
        while feed is not None:
            by_param = param_feed(params, feed)
            missing = [p for p in params if p not in by_param]
            if missing:
                raise QCompileError(f"{self.what} lacks input(s) {', '.join(missing)}",
                                    hint=f"it has: {', '.join(feed) or 'nothing'}")
            for part in _model_batches(mod["main"], by_param, params, self.what):
                lead = [np.shape(part[p])[0] for p in params if np.ndim(part[p])]
                samples += lead[0] if lead else 1
                outs = vm["main"](*[tvm.runtime.tensor(np.asarray(part[p], order="C")) for p in params])
                for value, collectors in zip(list(outs)[1:], requests.values()):
                    arr = value.numpy()
                    for c in collectors:
                        c.update(arr)
            seen += 1
            bar.update()
            try:
                feed = send(outs[0]) if send else next(feeds, None)
            except StopIteration:
                feed = None
        bar.close()
        if seen == 0:
            raise QCompileError(f"{self.what} is empty")
        if self.tokens is None and samples < FEW_SAMPLES:
            import sys

            print(f"qcompile: warning: calibration on {samples} sample(s) only: activation ranges from so few "
                  f"are unreliable; "
                  f"{FEW_SAMPLES} or more are advised", file=sys.stderr)
        return requests


#: fewer calibration samples than this draw a warning (issue #30's measurement on the ViT)
FEW_SAMPLES = 16


def _model_batches(func, feed: dict, params: list, what: str = "calibration data"):
    """``feed`` checked against ``main``'s parameters (dtype cast where lossless, rank, static
    dims, finite values) and split into the model's fixed batch where it has one (samples
    are along the first axis, as for evaluation): a mismatch is one line, never TVM's
    ``match_cast`` error."""
    out, fixed = {}, None
    for p in func.params:
        if p.name not in feed or not isinstance(p.ty, relax.TensorType):
            continue
        dims = [int(d) if isinstance(d, tvm.tirx.IntImm) else None for d in p.ty.shape]
        out[p.name] = check_array(p.name, feed[p.name], dims, str(p.ty.dtype), what=what)
        if dims and dims[0] is not None and dims[0] > 0:
            fixed = dims[0]
    n = {len(v) for v in out.values() if np.ndim(v)}
    if fixed is None or n == {fixed} or not n:
        yield {**feed, **out}
        return
    total = n.pop()
    if total % fixed:
        raise QCompileError(f"{what}: a batch of {total} samples does not split into the model's fixed batch "
                            f"of {fixed}", hint=f"use a multiple of {fixed} samples (--batch {fixed})")
    for i in range(0, total, fixed):
        yield {**feed, **{k: v[i:i + fixed] for k, v in out.items()}}


class Collected:
    """Statistics already collected (``Calibration.collect``'s result) served again, so that
    several compiles of the same module (e.g. a sweep of bit widths) calibrate once.

    ``by_order``: serve the i-th request the i-th statistics, for the same model exported
    with another step length (a decode step next to the prefill step: other variables, the
    same layers in the same order)."""

    def __init__(self, stats: dict, by_order: bool = False):
        self.stats, self.by_order = stats, by_order

    def collect(self, mod, requests: dict) -> dict:
        if self.by_order:
            if len(requests) != len(self.stats):
                raise QCompileError(f"{len(requests)} statistics requested, {len(self.stats)} collected")
            return dict(zip(requests, self.stats.values()))
        missing = [v for v in requests if v not in self.stats]
        if missing:
            raise QCompileError(f"no collected statistics for '{missing[0].name}'",
                                hint="collect with the requests of every configuration first")
        return {v: self.stats[v] for v in requests}


def param_feed(params: list[str], feed: dict) -> dict:
    """``feed`` keyed by the Relax parameter names. TVM's ONNX importer renames inputs into
    identifiers (``past_key_values.0.key`` -> ``past_key_values_0_key``); data files keep
    the ONNX names, so either spelling is accepted."""
    alias = {k.replace(".", "_"): k for k in feed}
    return {p: feed[p] if p in feed else feed[alias[p]] for p in params if p in feed or p in alias}


def tap(mod, vars_: list) -> tvm.IRModule:
    """A copy of ``mod`` whose ``main`` returns ``(original output, *vars_)``."""
    func = mod["main"]
    where = []
    for v in vars_:
        params = [k for k, p in enumerate(func.params) if p.same_as(v)]
        pos = [(i, j) for i, blk in enumerate(func.body.blocks) for j, b in enumerate(blk.bindings) if b.var.same_as(v)]
        if not params and not pos:
            raise QCompileError(f"calibration request names '{getattr(v, 'name', v)}', which is not bound in main")
        where.append(("param", params[0]) if params else pos[0])
    plain = relax.transform.ToNonDataflow()(mod)
    f = plain["main"]
    outs = [f.params[j] if i == "param" else f.body.blocks[i].bindings[j].var for i, j in where]
    body = relax.SeqExpr(f.body.blocks, relax.Tuple([f.body.body, *outs]))
    ret = relax.TupleType([f.body.body.ty, *[o.ty for o in outs]])
    new = relax.Function(f.params, body, ret, attrs=f.attrs)
    out = plain.clone() if hasattr(plain, "clone") else plain
    out["main"] = new
    return relax.transform.Normalize()(out)
