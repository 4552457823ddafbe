"""The fast Walsh-Hadamard kernel of QuaRot's online rotation; the matrix constructions
live in :mod:`qcompile.hadamard` (shared with the KV-cache passes) and are re-exported here.

:func:`fwht_te` is the online kernel: ``y = x · (A ⊗ S) / sqrt(n)`` over the last axis,
``S`` the Sylvester matrix of order ``M = 2^m`` applied by ``m`` butterfly stages
(``O(n log n)``) and ``A`` the dense ``K × K`` factor (``O(n K)``, ``K`` small).
:func:`fwht_ref` is its NumPy reference.
"""
from __future__ import annotations

import math

import numpy as np

from qcompile.hadamard import (block_size, hadamard, paley1, paley2, random_orthogonal_hadamard,  # noqa: F401
                               recipe, sylvester)


# ----------------------------------------------------------------------------- online kernel


def split(n: int) -> tuple[int, int] | None:
    """``(K, M)`` with ``n = K · M``, ``M`` the largest power of two such that ``K`` has a
    Hadamard matrix; ``None`` if there is no such split."""
    m = n & -n
    while m >= 1:
        if recipe(n // m) is not None:
            return n // m, m
        m //= 2
    return None


def online_matrix(n: int) -> np.ndarray:
    """The orthogonal matrix the online kernel multiplies by: ``(A_K ⊗ S_M) / sqrt(n)``."""
    k, m = split(n)
    return np.kron(hadamard(k), sylvester(m)).astype(np.float64) / math.sqrt(n)


def fwht_ref(x: np.ndarray) -> np.ndarray:
    """NumPy reference of :func:`fwht_te`: ``x @ online_matrix(n)`` by butterflies, float64."""
    n = x.shape[-1]
    k, m = split(n)
    y = x.astype(np.float64).reshape(*x.shape[:-1], k, m)
    h = 1
    while h < m:
        y = y.reshape(*y.shape[:-1], m // (2 * h), 2, h)
        a, b = y[..., 0, :], y[..., 1, :]
        y = np.stack([a + b, a - b], axis=-2).reshape(*x.shape[:-1], k, m)
        h *= 2
    if k > 1:
        y = np.einsum("...ad,ac->...cd", y, hadamard(k).astype(np.float64))
    return (y / math.sqrt(n)).reshape(x.shape)


def fwht_te(x, a=None):
    """TE compute of ``x · (A ⊗ S_M) / sqrt(n)`` over the last axis of ``x``; ``a`` is the
    ``K × K`` factor as a tensor (``None`` when ``n`` is a power of two)."""
    from tvm import te, tirx

    n = int(x.shape[-1])
    k, m = split(n)
    if (a is None) != (k == 1):
        raise ValueError(f"order {n} = {k} x {m}: the K x K factor must be given exactly when K > 1")
    lead, dtype = list(x.shape[:-1]), x.dtype
    cur = te.compute(lead + [k, m], lambda *i: x(*i[:-2], i[-2] * m + i[-1]), name="fwht_in")
    h = 1
    while h < m:
        cur = te.compute(lead + [k, m], _butterfly(cur, int(math.log2(h)), m, dtype), name=f"fwht_stage{int(math.log2(h))}")
        h *= 2
    if k > 1:
        r = te.reduce_axis((0, k), name="r")
        prev = cur
        cur = te.compute(lead + [k, m], lambda *i: te.sum(a[r, i[-2]] * prev(*i[:-2], r, i[-1]), axis=r),
                         name="fwht_mix")
    scale = tirx.const(1.0 / math.sqrt(n), dtype)
    return te.compute(lead + [n], lambda *i: cur(*i[:-1], i[-1] // m, i[-1] % m) * scale, name="fwht")


def _butterfly(prev, bit: int, m: int, dtype: str):
    """One FWHT stage: ``y[j] = x[j & ~h] + (-1)^(bit of j) x[j | h]``, ``h = 2^bit`` (both
    reads in bounds, no branch)."""
    from tvm import tirx

    def stage(*i):
        j = i[-1]
        low = prev(*i[:-1], tirx.bitwise_and(j, m - 1 - (1 << bit)))
        high = prev(*i[:-1], tirx.bitwise_or(j, 1 << bit))
        sign = tirx.Cast(dtype, 1 - 2 * tirx.bitwise_and(tirx.shift_right(j, bit), 1))
        return low + sign * high

    return stage
