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


#: the largest integer magnitude below which float32 holds every integer exactly (2^24)
FLOAT32_EXACT_INT = 2 ** 24


def conform_dtype(name: str, arr: np.ndarray, want: str, what: str = "data", note=None) -> np.ndarray:
    """``arr`` as the model input's dtype ``want``, by the one rule of the CLI's data files:

    * a float input takes float data of any width: a narrower one (float16) exactly; a
      wider one (float64) rounded to ``want``'s precision, said in the note (values out of
      ``want``'s range are refused);
    * a float input takes integer and bool data when every value is exact in ``want``:
      magnitudes up to 2^24 for float32 (2^11 for float16, 2^53 for float64); else refused;
    * an integer input takes integer data whose values all fit its range (bool: 0 and 1
      only); float data for an integer input is refused.

    ``note(text)``, where given, is called once for every cast made (the CLI prints it, one
    line); a refusal is a one-line :class:`QCompileError` naming ``what`` and the input."""
    want = np.dtype(want)
    have = arr.dtype
    if have == want:
        return arr

    def cast(how: str) -> np.ndarray:
        if note is not None:
            note(f"{what}: input '{name}' is {have}, cast to {want} ({how})")
        return arr.astype(want)

    if want.kind == "f" and have.kind == "f":
        if have.itemsize <= want.itemsize:
            return cast("exact")
        with np.errstate(over="ignore"):
            out = arr.astype(want)
        finite = np.isfinite(arr)
        if not np.isfinite(out[finite]).all():
            raise QCompileError(f"{what}: input '{name}' is {have} with values out of {want}'s range",
                                hint=f"scale it into {want}'s range")
        if np.array_equal(out[finite].astype(have), arr[finite]):
            return cast("exact")
        if note is not None:
            note(f"{what}: input '{name}' is {have}, cast to {want} (values rounded to {want}'s precision)")
        return out
    if want.kind == "f" and have.kind in "iub":
        limit = 2 ** (np.finfo(want).nmant + 1)
        if arr.size == 0 or have.kind == "b" or (int(arr.min()) >= -limit and int(arr.max()) <= limit):
            return cast("exact")
        bad = int(arr.max()) if int(arr.max()) > limit else int(arr.min())
        raise QCompileError(f"{what}: input '{name}' is {have} with values beyond {want}'s exact integers "
                            f"(|value| <= {limit:,}), e.g. {bad}: casting would change them",
                            hint=f"save it as {want} yourself if the rounding is intended")
    if want.kind in "iub" and have.kind in "iub":
        lo, hi = (0, 1) if want.kind == "b" else (np.iinfo(want).min, np.iinfo(want).max)
        if arr.size == 0 or (int(arr.min()) >= lo and int(arr.max()) <= hi):
            return cast("exact")
        raise QCompileError(f"{what}: input '{name}' is {have} with values outside {want}'s range "
                            f"[{lo}, {hi}]", hint=f"save it as {want}")
    raise QCompileError(f"{what}: input '{name}' is {have}, the model takes {want}",
                        hint="save the array with the model input's dtype")


def check_finite(data: dict, what: str) -> None:
    """Every float array of a data file finite: NaN or Inf anywhere is refused up front
    (one line naming ``what``, the file's role and path, and the array)."""
    for k, v in data.items():
        v = np.asarray(v)
        if v.dtype.kind in "fc" and not np.isfinite(v).all():
            raise QCompileError(f"{what}: array '{k}' has {int((~np.isfinite(v)).sum())} NaN/Inf value(s)")


def check_array(name: str, arr, shape, dtype: str, what: str = "data", note=None) -> np.ndarray:
    """One input array against the model's input ``shape`` (ints fixed; anything else, a
    symbolic dim) and ``dtype``, samples along the first axis: cast by :func:`conform_dtype`'s
    rule (``note`` hears of each cast), finite, same rank, fixed dims equal. The one check
    that evaluation data, calibration data and ``qcompile run`` inputs all go through;
    ``what`` names the data's role and file in the one-line error."""
    arr = conform_dtype(name, np.asarray(arr), dtype, what, note)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise QCompileError(f"{what}: input '{name}' has {int((~np.isfinite(arr)).sum())} NaN/Inf value(s)")
    if arr.ndim != len(shape):
        raise QCompileError(f"{what}: input '{name}' has shape {arr.shape}, the model takes rank {len(shape)} "
                            f"{list(shape)}")
    for d, (want, have) in enumerate(zip(shape[1:], arr.shape[1:]), start=1):
        if isinstance(want, int) and want > 0 and want != have:
            raise QCompileError(f"{what}: input '{name}' dim {d} is {have}, the model takes {want} "
                                f"(shape {list(shape)})")
    return arr
