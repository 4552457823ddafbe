"""Calibration statistics: what a pass asks to be collected for one tensor
(``Pass.calibration_requests``). Each collector receives every batch of that tensor and
keeps running statistics only; :mod:`qcompile.calibration` runs the model and feeds them."""
from __future__ import annotations

import numpy as np

from qcompile.errors import QCompileError


#: magnitudes at or above this are a masked fill's sentinel (``finfo.min``, ``-inf``), not
#: values: ranges and histograms leave them out, or one masked logit would set a tensor's scale
SENTINEL = 1e30


def observed(x) -> np.ndarray:
    """``x`` with its sentinel entries (|x| >= :data:`SENTINEL`, NaN) replaced by 0."""
    x = np.asarray(x)
    if x.dtype.kind != "f" or not x.size:
        return x
    lo, hi = x.min(), x.max()  # the usual case, no sentinel: two reductions, no copy
    if -SENTINEL < lo and hi < SENTINEL:
        return x
    return np.where(np.abs(x) < SENTINEL, x, 0)


class Collector:
    """Receives every batch of one tensor; keeps running statistics only."""

    def update(self, x: np.ndarray) -> None:
        raise NotImplementedError


class MinMax(Collector):
    def __init__(self):
        self.min, self.max = np.inf, -np.inf

    def update(self, x):
        x = observed(x)
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
        m = np.abs(observed(x)).max(axis=tuple(i for i in range(x.ndim) if i not in keep))
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
        a = np.abs(observed(np.asarray(x, np.float64))).ravel()
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


class Gram(Collector):
    """``sum x x^T`` over the rows of the last axis (``[C, C]``, float64) and the row count:
    the Hessian of a linear layer's squared output error, ``2 X^T X / n`` (GPTQ)."""

    def __init__(self):
        self.xtx, self.rows = None, 0

    def update(self, x):
        r = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
        self.xtx = r.T @ r if self.xtx is None else self.xtx + r.T @ r
        self.rows += r.shape[0]
