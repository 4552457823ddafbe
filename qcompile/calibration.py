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
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import tvm
from . import progress as _progress
from tvm import relax

from .errors import QCompileError

# ----------------------------------------------------------------------------- collectors


class Collector:
    """Receives every batch of one tensor; keeps running statistics only."""

    def update(self, x: np.ndarray) -> None:
        raise NotImplementedError


class MinMax(Collector):
    def __init__(self):
        self.min, self.max = np.inf, -np.inf

    def update(self, x):
        self.min, self.max = min(self.min, float(x.min())), max(self.max, float(x.max()))

    @property
    def absmax(self) -> float:
        return max(abs(self.min), abs(self.max))


class AbsMaxPerChannel(Collector):
    """Per-channel max |x| along ``axis`` (default: last axis; a tuple: one value per
    combination, e.g. ``(1, 3)``: per head and channel of ``[B, H, T, D]``)."""

    def __init__(self, axis: int | tuple = -1):
        self.axis, self.value = axis, None

    def update(self, x):
        keep = {a % x.ndim for a in (self.axis if isinstance(self.axis, tuple) else (self.axis,))}
        m = np.abs(x).max(axis=tuple(i for i in range(x.ndim) if i not in keep))
        self.value = m if self.value is None else np.maximum(self.value, m)


class Sample(Collector):
    """The first ``updates`` tensors as they came (for error statistics on real data; keeps
    data, unlike the other collectors, so keep ``updates`` small)."""

    def __init__(self, updates: int = 8):
        self.updates, self.tensors = updates, []

    def update(self, x):
        if len(self.tensors) < self.updates:
            self.tensors.append(np.array(x, copy=True))


class Histogram(Collector):
    """Histogram of |x| over a range that grows by powers of two (re-binning exactly:
    doubling the range merges adjacent bin pairs), for streaming percentiles."""

    def __init__(self, bins: int = 2048):
        self.bins, self.counts, self.hi = bins, np.zeros(bins, np.int64), 0.0

    def update(self, x):
        a = np.abs(np.asarray(x, np.float64)).ravel()
        top = float(a.max()) if a.size else 0.0
        if self.hi == 0.0:
            self.hi = top if top > 0 else 1.0
        while top > self.hi:
            self.counts = self.counts.reshape(-1, 2).sum(1)
            self.counts = np.concatenate([self.counts, np.zeros(self.bins // 2, np.int64)])
            self.hi *= 2
        self.counts += np.histogram(a, bins=self.bins, range=(0.0, self.hi))[0]

    def percentile(self, p: float) -> float:
        """Upper edge of the bin holding the p-th percentile of |x| (0 < p <= 100)."""
        total = self.counts.sum()
        if total == 0:
            raise QCompileError("percentile of an empty histogram")
        idx = int(np.searchsorted(np.cumsum(self.counts), total * p / 100.0))
        return (min(idx, self.bins - 1) + 1) * self.hi / self.bins


class ChannelHistogram(Collector):
    """Per-channel histograms of signed values, for per-channel percentiles.

    Channels are the positions along ``axes`` (all other axes are samples). Channel ``c``
    bins ``[-hi_c, hi_c)`` into ``bins`` equal bins; when a value falls outside, that
    channel's range doubles and adjacent bin pairs merge (exact re-binning), so resolution
    follows each channel's own scale however different the channels are."""

    def __init__(self, axes: tuple[int, ...] = (-1,), bins: int = 1024):
        if bins % 4:
            raise ValueError("bins must be a multiple of 4")
        self.axes, self.bins = tuple(axes), bins
        self.counts = self.hi = self.shape = None

    def _rows(self, x):
        axes = tuple(a % x.ndim for a in self.axes)
        rest = tuple(i for i in range(x.ndim) if i not in axes)
        y = np.transpose(np.asarray(x, np.float64), rest + axes)
        return y.reshape(-1, int(np.prod([x.shape[a] for a in axes]))), tuple(x.shape[a] for a in axes)

    def update(self, x):
        rows, shape = self._rows(x)
        if rows.shape[0] == 0:
            return
        top = np.abs(rows).max(0)
        if self.counts is None:
            self.shape = shape
            self.counts = np.zeros((rows.shape[1], self.bins), np.int64)
            self.hi = np.where(top > 0, top * 1.0001, 1.0)
        for c in np.nonzero(top >= self.hi)[0]:
            while top[c] >= self.hi[c]:
                merged = self.counts[c].reshape(-1, 2).sum(1)
                pad = np.zeros(self.bins // 4, np.int64)
                self.counts[c] = np.concatenate([pad, merged, pad])
                self.hi[c] *= 2
        idx = np.floor((rows + self.hi) / (2 * self.hi) * self.bins).astype(np.int64)
        idx = np.clip(idx, 0, self.bins - 1) + np.arange(rows.shape[1]) * self.bins
        self.counts += np.bincount(idx.ravel(), minlength=self.counts.size).reshape(self.counts.shape)

    def range(self, clip: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel ``(lo, hi)``: the ``100 - clip`` and ``clip`` percentiles (bin edges
        taken outwards), shaped like the channel axes. ``clip = 100``: min and max bins."""
        if self.counts is None:
            raise QCompileError("per-channel percentile of an empty histogram")
        cum = np.cumsum(self.counts, 1)
        total = cum[:, -1:]
        q = (100.0 - clip) / 100.0
        lo_bin = (cum < np.maximum(total * q, 1)).sum(1)           # first bin reaching the lower quantile
        hi_bin = (cum < np.maximum(total * (1 - q), 1)).sum(1)     # bin holding the upper quantile
        if clip >= 100:
            lo_bin = (cum == 0).sum(1)
            hi_bin = (cum < total).sum(1)
        width = 2 * self.hi / self.bins
        lo = -self.hi + lo_bin * width
        hi = -self.hi + (hi_bin + 1) * width
        return lo.reshape(self.shape), hi.reshape(self.shape)


    def centres(self) -> np.ndarray:
        """``[channels, bins]`` bin centres (the counts are ``self.counts``)."""
        return -self.hi[:, None] + (np.arange(self.bins) + 0.5) * (2 * self.hi[:, None] / self.bins)

    def mse_range(self, bits: int, clips=(100, 99.99, 99.9, 99.5, 99, 98.5, 98, 97, 96, 95)):
        """Per-channel ``(lo, hi)`` among the percentile ranges ``clips`` that minimizes the
        expected squared error of uniform ``bits``-bit round-to-nearest on that channel's
        histogram (bin centres; clipped values count with their distance to the range)."""
        centres = self.centres()
        best_err, best = None, None
        for clip in clips:
            lo, hi = (a.reshape(-1) for a in self.range(clip))
            step = np.maximum(hi - lo, 1e-30) / (2 ** bits - 1)
            q = np.clip(np.rint((centres - lo[:, None]) / step[:, None]), 0, 2 ** bits - 1) * step[:, None] + lo[:, None]
            err = (self.counts * (centres - q) ** 2).sum(1)
            if best is None:
                best_err, best = err, (lo.copy(), hi.copy())
            else:
                take = err < best_err
                best_err = np.where(take, err, best_err)
                best[0][take], best[1][take] = lo[take], hi[take]
        return best[0].reshape(self.shape), best[1].reshape(self.shape)


class RowNormHistogram(Collector):
    """Histogram of ``(x - min) / (max - min)`` in ``[0, 1]``, min and max taken over the
    last axis (each row normalized as per-token quantization does): the distribution a
    per-token non-uniform datatype is fitted to."""

    def __init__(self, bins: int = 1024):
        self.bins, self.counts = bins, np.zeros(bins, np.int64)

    def update(self, x):
        x = np.asarray(x, np.float64)
        lo, hi = x.min(-1, keepdims=True), x.max(-1, keepdims=True)
        u = (x - lo) / np.where(hi > lo, hi - lo, 1)
        self.counts += np.histogram(u, bins=self.bins, range=(0.0, 1.0))[0]

    def centres(self) -> np.ndarray:
        return (np.arange(self.bins) + 0.5) / self.bins


# ----------------------------------------------------------------------------- data


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise QCompileError(f"data file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except Exception as e:  # noqa: BLE001
        raise QCompileError(f"cannot read {path} as .npz: {str(e).splitlines()[0]}") from None


def batches(data: dict[str, np.ndarray], batch: int) -> Iterator[dict[str, np.ndarray]]:
    """Split arrays that share a leading sample axis into batches."""
    n = {len(v) for v in data.values()}
    if len(n) != 1:
        raise QCompileError(f"data arrays disagree on the sample count: "
                            f"{ {k: len(v) for k, v in data.items()} }")
    total = n.pop()
    for i in range(0, total, batch):
        yield {k: v[i:i + batch] for k, v in data.items()}


class Calibration:
    """Calibration samples plus the machinery to stream statistics out of a float module."""

    def __init__(self, samples, batch: int = 16, limit: int | None = None, progress: bool = True,
                 window: int = 512):
        if isinstance(samples, (str, os.PathLike)):
            samples = read_npz(samples)
        self.tokens = None
        if isinstance(samples, dict) and "tokens" in samples and set(samples) <= {"tokens", "bos"}:
            # a decoder with a KV cache calibrates on a token stream (see qcompile.lm.decoder_feeds)
            self.tokens = np.asarray(samples["tokens"]).reshape(-1).astype(np.int64)
            self.bos = int(samples["bos"]) if "bos" in samples else None
            self.window = int(window)
            self._source, self.num_batches = (lambda: iter(())), None
        elif isinstance(samples, dict):
            if limit is not None:
                samples = {k: v[:limit] for k, v in samples.items()}
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

    def collect(self, mod, requests: dict) -> dict:
        """Run ``mod`` (float, llvm) on every batch; feed the requested bindings of ``main``
        (``{relax.Var: [Collector, ...]}``) into their collectors. Returns ``requests``."""
        if not requests:
            return requests
        from .build import build  # the scheduled llvm build: unscheduled kernels are ~100x slower

        vm = build(tap(mod, list(requests)), "llvm").vm()
        params = [p.name for p in mod["main"].params]
        if self.tokens is not None:
            from .lm import decoder_feeds
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
                raise QCompileError(f"calibration data lacks input(s) {', '.join(missing)}",
                                    hint=f"it has: {', '.join(feed) or 'nothing'}")
            for part in _model_batches(mod["main"], by_param, params):
                lead = [np.shape(part[p])[0] for p in params if np.ndim(part[p])]
                samples += lead[0] if lead else 1
                outs = vm["main"](*[tvm.runtime.tensor(np.ascontiguousarray(part[p])) for p in params])
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
            raise QCompileError("calibration data is empty")
        if self.tokens is None and samples < FEW_SAMPLES:
            import sys

            print(f"qcompile: warning: calibration on {samples} sample(s) only: activation ranges from so few "
                  f"are unreliable; "
                  f"{FEW_SAMPLES} or more are advised", file=sys.stderr)
        return requests


#: fewer calibration samples than this draw a warning (issue #30's measurement on the ViT)
FEW_SAMPLES = 16


def _model_batches(func, feed: dict, params: list):
    """``feed`` checked against ``main``'s parameters (dtype cast where lossless, rank, static
    dims, finite values) and split into the model's fixed batch where it has one (samples
    are along the first axis, as for evaluation): a mismatch is one line, never TVM's
    ``match_cast`` error."""
    from .evaluate import check_array

    out, fixed = {}, None
    for p in func.params:
        if p.name not in feed or not isinstance(p.ty, relax.TensorType):
            continue
        dims = [int(d) if isinstance(d, tvm.tirx.IntImm) else None for d in p.ty.shape]
        out[p.name] = check_array(p.name, feed[p.name], dims, str(p.ty.dtype), what="calibration")
        if dims and dims[0] is not None and dims[0] > 0:
            fixed = dims[0]
    n = {len(v) for v in out.values() if np.ndim(v)}
    if fixed is None or n == {fixed} or not n:
        yield {**feed, **out}
        return
    total = n.pop()
    if total % fixed:
        raise QCompileError(f"calibration batch of {total} samples does not split into the model's fixed batch "
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
