"""What a sample is: input data as ``{input name: array}`` with the samples along the first
axis (an ``.npz`` file has exactly this form), read, checked against a model input and
split into batches, the same way for calibration, evaluation and ``qcompile run``."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from qcompile.errors import QCompileError


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


def conform_dtype(name: str, arr: np.ndarray, want: str, what: str = "data") -> np.ndarray:
    """``arr`` as the model input's dtype when the cast loses nothing (float64 data that is
    float32-exact is not required: any finite float data casts to a float input, with its
    rounding; integers cast where every value fits); else a one-line refusal."""
    want = np.dtype(want)
    if arr.dtype == want:
        return arr
    if want.kind == "f" and arr.dtype.kind in "fiub":
        out = arr.astype(want)
        if arr.dtype.kind == "f" and not np.isfinite(out[np.isfinite(arr)]).all():
            raise QCompileError(f"{what} input '{name}' ({arr.dtype}) has values out of {want}'s range")
        return out
    if want.kind in "iub" and arr.dtype.kind in "iub":
        info = np.iinfo(want) if want.kind != "b" else None
        if info is None or arr.size == 0 or (arr.min() >= info.min and arr.max() <= info.max):
            return arr.astype(want)
    raise QCompileError(f"{what} input '{name}' is {arr.dtype}, the model takes {want}",
                        hint="save the array with the model input's dtype")


def check_array(name: str, arr, shape, dtype: str, what: str = "data") -> np.ndarray:
    """One input array against the model's input ``shape`` (ints fixed; anything else, a
    symbolic dim) and ``dtype``, samples along the first axis: cast where lossless, finite,
    same rank, fixed dims equal. The one check that evaluation data, calibration data and
    ``qcompile run`` inputs all go through."""
    arr = conform_dtype(name, np.asarray(arr), dtype, what)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise QCompileError(f"{what} input '{name}' has {int((~np.isfinite(arr)).sum())} NaN/Inf value(s)")
    if arr.ndim != len(shape):
        raise QCompileError(f"{what} input '{name}' has shape {arr.shape}, the model takes rank {len(shape)} "
                            f"{list(shape)}")
    for d, (want, have) in enumerate(zip(shape[1:], arr.shape[1:]), start=1):
        if isinstance(want, int) and want > 0 and want != have:
            raise QCompileError(f"{what} input '{name}' dim {d} is {have}, the model takes {want} "
                                f"(shape {list(shape)})")
    return arr
