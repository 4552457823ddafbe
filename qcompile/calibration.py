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
from tqdm import tqdm
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
    """Per-channel max |x| along ``axis`` (default: last axis)."""

    def __init__(self, axis: int = -1):
        self.axis, self.value = axis, None

    def update(self, x):
        axis = self.axis % x.ndim
        m = np.abs(x).max(axis=tuple(i for i in range(x.ndim) if i != axis))
        self.value = m if self.value is None else np.maximum(self.value, m)


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

    def __init__(self, samples, batch: int = 16, limit: int | None = None, progress: bool = True):
        if isinstance(samples, (str, os.PathLike)):
            samples = read_npz(samples)
        if isinstance(samples, dict):
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
        tapped = tap(mod, list(requests))
        ex = tvm.compile(tapped, target=tvm.target.Target({"kind": "llvm"}))
        vm = relax.VirtualMachine(ex, tvm.cpu())
        params = [p.name for p in mod["main"].params]
        seen = 0
        for feed in tqdm(self, total=self.num_batches, desc="calibrating", unit="batch", disable=not self.progress):
            missing = [p for p in params if p not in feed]
            if missing:
                raise QCompileError(f"calibration data lacks input(s) {', '.join(missing)}",
                                    hint=f"it has: {', '.join(feed) or 'nothing'}")
            outs = vm["main"](*[tvm.runtime.tensor(np.ascontiguousarray(feed[p])) for p in params])
            for value, collectors in zip(list(outs)[1:], requests.values()):
                arr = value.numpy()
                for c in collectors:
                    c.update(arr)
            seen += 1
        if seen == 0:
            raise QCompileError("calibration data is empty")
        return requests


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
