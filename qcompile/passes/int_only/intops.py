"""Integer kernels of the ``int-only`` pipeline (I-ViT, Li & Gu, ICCV 2023), each twice:
the TE/Relax code the pass emits, and a NumPy reference with the same formula.

Fixed-point conventions (all arithmetic is integer; a real value is ``int * scale``):

* **Dyadic requantization** ``requant(x; M, s) = clip((int64(x) * M + 2^(s-1)) >> s)``
  with ``M < 2^31`` and one shift ``s`` per tensor (``M`` may be per channel): the real
  multiplier ``m`` is ``M * 2^-s``. Rounding: half up (add half, arithmetic shift).
* **Shiftmax** (row softmax). Input: int32 ``x`` in the natural-log domain at scale
  ``2^-K``. ``d = x - max``; ``t = d + (d >> 1) - (d >> 4)`` (x log2 e); clamp
  ``t >= -n 2^K``; ``q = (-t) >> K``, ``r = t + q 2^K`` in ``(-2^K, 0]``; ``2^r`` by the
  line ``r/2 + 1``: ``e = ((r >> 1) + 2^K) << (n - q)``; masked entries get ``e = 0``;
  ``S = sum e`` (int32: the pass proves ``L 2^(K+n) < 2^31``); ``f = (2^31-1) // max(S,1)``;
  ``p = min((e f + 2^(30-B)) >> (31-B), 2^B - 1)``, uint8 at scale ``2^-B``.
* **ShiftGELU**: ``x sigmoid(1.702 x)``. ``t = requant(x)`` is ``1.702 x`` at scale
  ``2^-K``; ``e = 2^{-|t| log2 e}`` by the Shiftmax exponent (``2^(K+n)`` is 1);
  sigmoid by one integer division: ``(2^(K+n) << B) // (2^(K+n) + e)`` for ``x >= 0``,
  ``(e << B) // (2^(K+n) + e)`` otherwise; output ``x * sig`` in int32 at scale
  ``s_x 2^-B``. (I-ViT subtracts the row maximum to keep the exponent <= 0; using
  ``-|t|`` and the sigmoid's symmetry does the same per element, with no reduction.)
* **Integer LayerNorm** (normalization only; the affine ``gamma, beta`` is folded into the
  consumers by the pass). ``mu = (sum x + C/2) // C``; ``y = x - mu``;
  ``V = (sum y^2 + E) << 2h`` (int64; ``E = round(C eps / s^2)`` is the epsilon, ``h``
  fraction bits for the root, :func:`layernorm_sqrt_bits`); ``sigma = isqrt(V)``, exact
  floor; ``f = (R << (31 + h)) // max(sigma, 1)`` with ``R = round(sqrt(C) 2^P)``;
  ``out = (y f + 2^30) >> 31`` in int16 at scale ``2^-P``. ``|y| 2^h <= sigma`` bounds
  ``|y f| <= R 2^31``, so int64 never overflows, and a zero variance gives ``out = 0``
  instead of a division by zero. **Integer RMSNorm** is the same with ``mu = 0``.
* **isqrt**: ``b = bit length of V`` (a sum of 63 comparisons), start at ``2^ceil(b/2) >=
  sqrt(V)``, then 6 Newton steps ``g = min(g, (g + V // g) >> 1)``: exact
  ``floor(sqrt(V))`` for every ``0 <= V < 2^63`` (I-ViT's 10 steps from ``2^16`` are wrong
  both for small variances and above ``2^32``).
"""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import tvm
from tvm import te, tirx

# ----------------------------------------------------------------------------- dyadic numbers


@dataclasses.dataclass(frozen=True)
class Dyadic:
    """``mult * 2^-shift`` approximating a real (per-channel: ``mult`` is an array)."""

    mult: np.ndarray  # int64, scalar or 1-D
    shift: int

    @property
    def value(self) -> np.ndarray:
        return self.mult.astype(np.float64) / float(2 ** self.shift)


def dyadic(m, max_shift: int = 62) -> Dyadic:
    """The dyadic ``M 2^-s`` nearest ``m`` (>= 0, not all 0) with ``M < 2^31``, ``s`` as large
    as allowed (at most ``max_shift``)."""
    m = np.asarray(m, np.float64)
    if not np.all(np.isfinite(m)) or np.any(m < 0) or not np.any(m > 0):
        raise ValueError(f"dyadic multiplier must be finite, >= 0 and not all 0, got {m}")
    top = float(m.max())
    shift = min(max_shift, 30 - math.floor(math.log2(top)))  # top * 2^shift in [2^30, 2^31)
    if shift < 1:
        raise ValueError(f"multiplier {top:g} too large for a dyadic requantization")
    mult = np.round(m * 2.0 ** shift).astype(np.int64)
    mult = np.minimum(mult, 2 ** 31 - 1)
    return Dyadic(mult, shift)


def requant_ref(x: np.ndarray, d: Dyadic, lo: int, hi: int, dtype) -> np.ndarray:
    wide = x.astype(np.int64) * d.mult + (np.int64(1) << np.int64(d.shift - 1))
    return np.clip(wide >> np.int64(d.shift), lo, hi).astype(dtype)


INT_RANGE = {"int8": (-127, 127), "uint8": (0, 255), "int16": (-32767, 32767), "int32": (-2 ** 31 + 1, 2 ** 31 - 1)}


def quantize_ref(x: np.ndarray, scale: float, dtype: str) -> np.ndarray:
    """Float -> int at ``scale``, round half up (``floor(x * (1/scale) + 0.5)``) in float32."""
    lo, hi = INT_RANGE[dtype]
    t = x.astype(np.float32) * np.float32(1.0 / scale)
    return np.clip(np.floor(t + np.float32(0.5)), lo, hi).astype(dtype)


# ----------------------------------------------------------------------------- parameters


@dataclasses.dataclass(frozen=True)
class ExpParams:
    """The shift-based exponent: ``K`` fraction bits of the log-domain input, ``n`` the
    clamp (``2^-n`` is the smallest power kept), ``B`` output bits."""

    K: int = 8
    n: int = 15
    B: int = 8


def resize_weights(n_in: int, n_out: int, method: str, mode: str, rounding: str = "", cubic_alpha: float = -0.75,
                   cubic_exclude: bool = False) -> np.ndarray:
    """The ``(n_out, n_in)`` matrix of a 1-D resize as TOPI computes it (``image.resize2d``
    is separable: the 2-D weights are products of two of these), float64: ``linear`` lerps
    the two pixels around ``in_x`` (indices clamped at the borders), ``nearest_neighbor``
    picks one, ``cubic`` weighs four with Keys' cubic convolution kernel of parameter
    ``cubic_alpha`` (``cubic_exclude``: taps outside the image get 0 and the rest are
    renormalized, with TOPI's bounds). ``mode`` is the coordinate transformation (half_pixel,
    pytorch_half_pixel, align_corners, asymmetric, tf_half_pixel_for_nn)."""
    x = np.arange(n_out, dtype=np.float64)
    scale = n_in / n_out
    if mode == "half_pixel" or (mode == "pytorch_half_pixel" and n_out > 1):
        src = (x + 0.5) * scale - 0.5
    elif mode == "pytorch_half_pixel":
        src = np.zeros_like(x)
    elif mode == "align_corners":
        src = x * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    elif mode == "asymmetric":
        src = x * scale
    elif mode == "tf_half_pixel_for_nn":
        src = (x + 0.5) * scale
    else:
        raise ValueError(f"coordinate transformation '{mode}'")
    a = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    if method == "linear":
        lo = np.floor(src)
        frac = src - lo
        lo = lo.astype(np.int64)
        np.add.at(a, (rows, np.clip(lo, 0, n_in - 1)), 1 - frac)
        np.add.at(a, (rows, np.clip(lo + 1, 0, n_in - 1)), frac)
    elif method == "cubic":
        lo = np.floor(src)
        t = src - lo
        lo = lo.astype(np.int64)
        al, t2, t3 = cubic_alpha, t * t, t * t * t
        w = [al * (t3 - 2 * t2 + t), (al + 2) * t3 - (3 + al) * t2 + 1,  # TOPI's _cubic_spline_weights
             -(al + 2) * t3 + (3 + 2 * al) * t2 - al * t, -al * t3 + al * t2]
        if cubic_exclude:
            w = [np.where((lo - 1 + i < 0) | (lo + i > n_in), 0.0, wi) for i, wi in enumerate(w)]
            total = sum(w)
            w = [wi / total for wi in w]
        for i, wi in enumerate(w):
            np.add.at(a, (rows, np.clip(lo - 1 + i, 0, n_in - 1)), wi)
    elif method == "nearest_neighbor":
        rounding = rounding or ("round" if mode == "align_corners" else "floor")
        pick = {"round": np.sign(src) * np.floor(np.abs(src) + 0.5),  # half away from zero, as llvm's round
                "round_prefer_floor": np.ceil(src - 0.5),
                "round_prefer_ceil": np.floor(src + 0.5), "floor": np.floor(src + 1e-5),
                "ceil": np.ceil(src - 1e-5)}[rounding]
        a[rows, np.clip(pick.astype(np.int64), 0, n_in - 1)] = 1.0
    else:
        raise ValueError(f"method '{method}'")
    return a


def integer_weights(a: np.ndarray, max_den: int = 64) -> tuple[np.ndarray, int] | None:
    """``(a * d, d)`` with ``d`` the smallest denominator up to ``max_den`` that makes every
    weight an integer (a bilinear upsampling by ``k`` with half-pixel centers: quarters for
    ``k = 2``), or None where there is none (an arbitrary ratio)."""
    for d in range(1, max_den + 1):
        w = a * d
        if np.all(np.abs(w - np.round(w)) < 1e-9):
            return np.round(w).astype(np.int64), d
    return None


#: kernels kept out of operator fusion (TVM's ``op_pattern`` kOpaque): the staged integer
#: square root, fused with its neighbours into one function of ~80 blocks over a symbolic
#: batch, stalled the cuda schedule's inlining (each Newton step reads the previous three times)
OPAQUE_KERNELS = frozenset({"isqrt"})


def kernel_attrs(op: str, **params) -> dict:
    """PrimFunc attributes naming the kernel and its parameters (read back by
    :func:`kernel_spec`: the NumPy reference interpreter, :mod:`qcompile.passes.int_only.intref`, and the llvm
    backend's rewrites)."""
    attrs = {"qcompile.kernel": json.dumps({"op": op, **params}, sort_keys=True)}
    return {**attrs, "op_pattern": 8} if op in OPAQUE_KERNELS else attrs


def kernel_spec(mod, call) -> dict | None:
    """``{"op": ..., **params}`` of a ``call_tir`` to a kernel made with :func:`kernel_attrs`,
    else None."""
    op = getattr(call, "op", None)
    if not (isinstance(op, tvm.ir.Op) and op.name == "relax.call_tir"):
        return None
    spec = (mod[call.args[0]].attrs or {}).get("qcompile.kernel")
    return json.loads(str(spec)) if spec is not None else None


# ----------------------------------------------------------------------------- NumPy references


def _exp2_shift_ref(t: np.ndarray, K: int, n: int) -> np.ndarray:
    """``t <= 0`` (int64, scale 2^-K, already x log2 e) -> ``e ~ 2^(K+n) 2^(t 2^-K)``."""
    t = np.maximum(t, -n * (1 << K))
    q = (-t) >> K
    r = t + (q << K)
    return ((r >> 1) + (1 << K)) << (n - q)


def _log2e_ref(d: np.ndarray) -> np.ndarray:
    return d + (d >> 1) - (d >> 4)


def shiftmax_ref(x: np.ndarray, mask: np.ndarray | None, p: ExpParams) -> np.ndarray:
    x = x.astype(np.int64)
    keep = np.ones_like(x, bool) if mask is None else np.broadcast_to(mask != 0, x.shape)
    m = np.where(keep, x, np.iinfo(np.int32).min).max(-1, keepdims=True)
    d = np.where(keep, x - m, -(p.n + 1) * (1 << p.K))
    e = np.where(keep, _exp2_shift_ref(_log2e_ref(d), p.K, p.n), 0)
    s = e.sum(-1, keepdims=True)
    f = (2 ** 31 - 1) // np.maximum(s, 1)
    out = (e * f + (1 << (30 - p.B))) >> (31 - p.B)
    return np.minimum(out, (1 << p.B) - 1).astype(np.uint8 if p.B <= 8 else np.int32)


def shiftgelu_ref(x: np.ndarray, t: np.ndarray, p: ExpParams) -> np.ndarray:
    """``x``: int8 input; ``t``: ``1.702 x`` at scale ``2^-K`` (int32). Output int32."""
    x, t = x.astype(np.int64), t.astype(np.int64)
    e = _exp2_shift_ref(_log2e_ref(-np.abs(t)), p.K, p.n)
    one = np.int64(1) << np.int64(p.K + p.n)
    num = np.where(x >= 0, one, e) << np.int64(p.B)
    sig = num // (one + e)
    return (x * sig).astype(np.int32)


def shiftsigmoid_ref(t: np.ndarray, p: ExpParams) -> np.ndarray:
    """``σ(x)`` at scale ``2^-B`` from ``t``, ``x`` at scale ``2^-K`` (int32): ShiftGELU's
    sigmoid on its own (a gate, a detection head's box). Output int32 in ``[0, 2^B]``."""
    t = t.astype(np.int64)
    e = _exp2_shift_ref(_log2e_ref(-np.abs(t)), p.K, p.n)
    one = np.int64(1) << np.int64(p.K + p.n)
    num = np.where(t >= 0, one, e) << np.int64(p.B)
    return (num // (one + e)).astype(np.int32)


def isqrt_ref(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.int64)
    bits = np.zeros_like(v)
    for i in range(63):
        bits += (v >> np.int64(i)) > 0
    g = np.int64(1) << ((bits + 1) >> 1)
    for _ in range(6):
        g = np.minimum(g, (g + v // np.maximum(g, 1)) >> 1)
    return g


def layernorm_ref(x: np.ndarray, eps_int: int, P: int, center: bool = True) -> np.ndarray:
    """``center=False``: the integer RMSNorm (``mu = 0``, the same root and factor)."""
    x = x.astype(np.int64)
    C = x.shape[-1]
    mu = (x.sum(-1, keepdims=True) + C // 2) // C if center else np.int64(0)
    y = x - mu
    h = layernorm_sqrt_bits(C)
    v = ((y * y).sum(-1, keepdims=True) + eps_int) << np.int64(2 * h)
    sigma = np.maximum(isqrt_ref(v), 1)
    R = round(math.sqrt(C) * 2 ** P)
    f = (np.int64(R) << np.int64(31 + h)) // sigma
    return np.clip((y * f + (1 << 30)) >> 31, -32767, 32767).astype(np.int16)


def layernorm_sqrt_bits(C: int) -> int:
    """``h``: the variance is shifted left by ``2h`` before the square root, so ``sigma``
    carries ``h`` fraction bits (a small integer variance keeps its precision), with
    ``C (2^16)^2 2^(2h) < 2^62`` and ``R 2^(31+h) < 2^62``."""
    return max(0, min(15, math.floor((61 - math.log2(C * (2.0 * 32767) ** 2)) / 2)))


def layernorm_out_bits(C: int) -> int:
    """Largest ``P`` with ``sqrt(C) 2^P <= 32767`` (the normalized value's int16 scale 2^-P)."""
    return math.floor(math.log2(32767 / math.sqrt(C)))


# ----------------------------------------------------------------------------- TE kernels


def _c(v, dt="int64"):
    return tirx.const(v, dt)


def _i64(x):
    return x.astype("int64")


def _exp2_shift_te(t, K: int, n: int, dt: str = "int64"):
    t = tirx.max(t, _c(-n * (1 << K), dt))
    q = (-t) >> _c(K, dt)
    r = t + (q << _c(K, dt))
    return ((r >> _c(1, dt)) + _c(1 << K, dt)) << (_c(n, dt) - q)


def _log2e_te(d, dt: str = "int64"):
    return d + (d >> _c(1, dt)) - (d >> _c(4, dt))


def _c32(v):
    return _c(v, "int32")


def shiftmax_te(x, mask, p: ExpParams):
    """x: int32 [..., L]; mask: None or an int tensor broadcastable to x (nonzero = keep).

    The same integers as :func:`shiftmax_ref`, computed in 32-bit lanes (8 per AVX2 vector,
    with 32-bit variable shifts; int64 lanes are 4, and AVX2 has no 64-bit arithmetic
    shift, min or max). Why each step fits:

    * ``d = max(x - max, -C)``, ``C = (n + 1) 2^K``: ``t = d + (d >> 1) - (d >> 4)`` is
      non-decreasing in ``d`` and ``t(-C) <= -1.4375 C + 1 < -n 2^K``, so every ``d < -C``
      reaches the clamp ``t >= -n 2^K`` exactly as ``-C`` does. It is taken as
      ``max(min(x, m), lo) - m`` with the row's floor ``lo = max(m - C, -2^31)`` (int64
      once per row): both operands are int32 and the difference lies in ``[-C, 0]``, also
      in masked lanes (whose results are discarded). The outer ``max(., -C)`` never binds;
      it keeps TVM's simplifier from reassociating ``d + (d >> 1)`` into
      ``min(x, m) + (d >> 1) - m``, whose partial sum can leave int32.
    * ``e <= 2^(K+n)`` and the row sum ``s`` fits int32 (the ``int-only`` pass chooses
      ``n`` so that ``L 2^(K+n) < 2^31``).
    * ``e <= s`` (every term is non-negative), so ``e f <= s floor((2^31 - 1) / s)
      <= 2^31 - 1``: the product is exact in int32, and the rounding add and shift are
      done unsigned (``< 2^32``)."""
    shape, nd = x.shape, len(x.shape)
    L = shape[-1]

    def keep(idx):
        if mask is None:
            return tirx.const(True, "bool")
        mi = [0 if _is_one(mask.shape[i]) else idx[i + nd - len(mask.shape)] for i in range(len(mask.shape))]
        return mask(*mi) != tirx.const(0, mask.dtype)

    k = te.reduce_axis((0, L), "k")
    mx = te.compute(shape[:-1], lambda *i: te.max(
        tirx.Select(keep((*i, k)), x(*i, k), _c32(-2 ** 31)), axis=k), name="row_max")
    clamp = (p.n + 1) << p.K
    lo = te.compute(shape[:-1], lambda *i: tirx.max(_i64(mx(*i)) - _c(clamp), _c(-2 ** 31)).astype("int32"),
                    name="row_floor")

    def exp_(*i):
        m = mx(*i[:-1])
        d = tirx.max(tirx.max(tirx.min(x(*i), m), lo(*i[:-1])) - m, _c32(-clamp))  # outer max: see below
        return tirx.Select(keep(i), _exp2_shift_te(_log2e_te(d, "int32"), p.K, p.n, "int32"), _c32(0))

    e = te.compute(shape, exp_, name="exp")
    k2 = te.reduce_axis((0, L), "k2")
    s = te.compute(shape[:-1], lambda *i: te.sum(e(*i, k2), axis=k2), name="row_sum")
    f = te.compute(shape[:-1], lambda *i: tirx.floordiv(_c32(2 ** 31 - 1), tirx.max(s(*i), _c32(1))), name="factor")
    odt = "uint8" if p.B <= 8 else "int32"

    def u32(v):
        return tirx.const(v, "uint32")

    def out(*i):
        v = ((e(*i) * f(*i[:-1])).astype("uint32") + u32(1 << (30 - p.B))) >> u32(31 - p.B)
        return tirx.min(v, u32((1 << p.B) - 1)).astype(odt)

    return te.compute(shape, out, name="shiftmax")


def _is_one(d) -> bool:
    """A broadcast (size-1) axis; a symbolic size is not one."""
    return isinstance(d, (int, tirx.IntImm)) and int(d) == 1


def shiftgelu_te(x, t, p: ExpParams):
    one = 1 << (p.K + p.n)

    def f(*i):
        xv, tv = _i64(x(*i)), _i64(t(*i))
        e = _exp2_shift_te(_log2e_te(-tirx.abs(tv)), p.K, p.n)
        num = tirx.Select(xv >= _c(0), _c(one), e) << _c(p.B)
        sig = tirx.floordiv(num, _c(one) + e)
        return (xv * sig).astype("int32")

    return te.compute(x.shape, f, name="shiftgelu")


def shiftsigmoid_te(t, p: ExpParams):
    one = 1 << (p.K + p.n)

    def f(*i):
        tv = _i64(t(*i))
        e = _exp2_shift_te(_log2e_te(-tirx.abs(tv)), p.K, p.n)
        num = tirx.Select(tv >= _c(0), _c(one), e) << _c(p.B)
        return tirx.floordiv(num, _c(one) + e).astype("int32")

    return te.compute(t.shape, f, name="shiftsigmoid")


def layernorm_te(x, eps_int: int, P: int, center: bool = True):
    """The integer LayerNorm; ``center=False`` is the integer RMSNorm (no mean)."""
    shape = x.shape
    C = int(shape[-1])
    R = round(math.sqrt(C) * 2 ** P)
    if center:
        k = te.reduce_axis((0, C), "k")
        sx = te.compute(shape[:-1], lambda *i: te.sum(_i64(x(*i, k)), axis=k), name="row_sum")
        mu = te.compute(shape[:-1], lambda *i: tirx.floordiv(sx(*i) + _c(C // 2), _c(C)), name="mean")
    else:
        mu = lambda *i: _c(0)  # noqa: E731 - no mean: the root of the mean square
    k2 = te.reduce_axis((0, C), "k2")
    v = te.compute(shape[:-1], lambda *i: te.sum((_i64(x(*i, k2)) - mu(*i)) * (_i64(x(*i, k2)) - mu(*i)), axis=k2),
                   name="sum_sq")
    h = layernorm_sqrt_bits(C)
    v = te.compute(shape[:-1], lambda *i: (v(*i) + _c(eps_int)) << _c(2 * h), name="var_eps")
    g = isqrt_te(v)
    f = te.compute(shape[:-1], lambda *i: tirx.floordiv(_c(R << (31 + h)), tirx.max(g(*i), _c(1))), name="factor")

    def out(*i):
        y = _i64(x(*i)) - mu(*i[:-1])
        return tirx.max(tirx.min((y * f(*i[:-1]) + _c(1 << 30)) >> _c(31), _c(32767)), _c(-32767)).astype("int16")

    return te.compute(shape, out, name="ilayernorm" if center else "irmsnorm")


def isqrt_te(v):
    k = te.reduce_axis((0, 63), "b")
    bits = te.compute(v.shape, lambda *i: te.sum(tirx.Select((v(*i) >> _i64(k)) > _c(0), _c(1), _c(0)), axis=k),
                      name="bit_length")
    g = te.compute(v.shape, lambda *i: _c(1) << ((bits(*i) + _c(1)) >> _c(1)), name="isqrt0")
    for step in range(6):
        g = _newton(v, g, step + 1)
    return g


def _newton(v, g, step: int):
    return te.compute(v.shape, lambda *i: tirx.min(
        g(*i), (g(*i) + tirx.floordiv(v(*i), tirx.max(g(*i), _c(1)))) >> _c(1)), name=f"isqrt{step}")
