"""Hadamard matrices of order K·2^m and a fast Walsh-Hadamard kernel (QuaRot's rotations).

Constructions (entries ±1, ``H Hᵀ = n I``):

* **Sylvester**: ``H_{2n} = [[H, H], [H, -H]]``, every power of two;
* **Paley I**: ``q`` prime, ``q ≡ 3 (mod 4)``: order ``q + 1`` (4, 8, 12, 20, 24, 32, 44, ...);
* **Paley II**: ``q`` prime, ``q ≡ 1 (mod 4)``: order ``2 (q + 1)`` (12, 28, 36, 60, ...);
* **Kronecker products** of the above: ``576 = 12 · 12 · 4``, ``1536 = 12 · 128``.

:func:`hadamard` returns one of order ``n`` or ``None``; :func:`block_size` gives the
largest order that divides ``n`` when there is none (a block-diagonal rotation then).

:func:`fwht_te` is the online kernel: ``y = x · (A ⊗ S) / sqrt(n)`` over the last axis,
``S`` the Sylvester matrix of order ``M = 2^m`` applied by ``m`` butterfly stages
(``O(n log n)``) and ``A`` the dense ``K × K`` factor (``O(n K)``, ``K`` small).
:func:`fwht_ref` is its NumPy reference.
"""
from __future__ import annotations

import functools
import math

import numpy as np


def _is_prime(q: int) -> bool:
    return q >= 2 and all(q % p for p in range(2, math.isqrt(q) + 1))


def sylvester(n: int) -> np.ndarray:
    if n < 1 or n & (n - 1):
        raise ValueError(f"Sylvester Hadamard needs a power of two, got {n}")
    h = np.ones((1, 1), np.int64)
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h


def _jacobsthal(q: int) -> np.ndarray:
    """``Q[i, j] = χ(j - i)``, χ the quadratic character mod the prime ``q``."""
    chi = np.full(q, -1, np.int64)
    chi[0] = 0
    chi[[(x * x) % q for x in range(1, q)]] = 1
    i = np.arange(q)
    return chi[(i[None, :] - i[:, None]) % q]


def paley1(q: int) -> np.ndarray:
    """Order ``q + 1`` for a prime ``q ≡ 3 (mod 4)``."""
    if not (_is_prime(q) and q % 4 == 3):
        raise ValueError(f"Paley I needs a prime q = 3 mod 4, got {q}")
    s = np.zeros((q + 1, q + 1), np.int64)
    s[0, 1:], s[1:, 0] = 1, -1
    s[1:, 1:] = _jacobsthal(q)
    return s + np.eye(q + 1, dtype=np.int64)


def paley2(q: int) -> np.ndarray:
    """Order ``2 (q + 1)`` for a prime ``q ≡ 1 (mod 4)``."""
    if not (_is_prime(q) and q % 4 == 1):
        raise ValueError(f"Paley II needs a prime q = 1 mod 4, got {q}")
    c = np.zeros((q + 1, q + 1), np.int64)
    c[0, 1:], c[1:, 0] = 1, 1
    c[1:, 1:] = _jacobsthal(q)
    a = np.array([[1, -1], [-1, -1]], np.int64)
    b = np.array([[1, 1], [1, -1]], np.int64)
    return np.kron(c, a) + np.kron(np.eye(q + 1, dtype=np.int64), b)


@functools.cache
def _paley_orders(limit: int = 1024) -> dict[int, tuple[str, int]]:
    """Non-power-of-two orders with a direct Paley construction: ``{order: (kind, q)}``."""
    out: dict[int, tuple[str, int]] = {}
    for q in range(3, limit):
        if not _is_prime(q):
            continue
        n = q + 1 if q % 4 == 3 else 2 * (q + 1)
        if n <= limit and n & (n - 1) and n not in out:
            out[n] = ("paley1" if q % 4 == 3 else "paley2", q)
    return out


@functools.cache
def recipe(n: int) -> tuple[str, ...] | None:
    """Factors whose Kronecker product is a Hadamard matrix of order ``n``: names like
    ``'sylvester4'``, ``'paley1_11'``; ``None`` when no construction is known here."""
    if n < 1:
        return None
    if n & (n - 1) == 0:
        return (f"sylvester{n}",)
    for k, (kind, q) in sorted(_paley_orders().items()):
        if k > n:
            break
        if n % k == 0:
            rest = recipe(n // k)
            if rest is not None:
                return (f"{kind}_{q}",) + (rest if rest != ("sylvester1",) else ())
    return None


def _factor(name: str) -> np.ndarray:
    if name.startswith("sylvester"):
        return sylvester(int(name[len("sylvester"):]))
    kind, q = name.split("_")
    return paley1(int(q)) if kind == "paley1" else paley2(int(q))


def hadamard(n: int) -> np.ndarray | None:
    """A ±1 Hadamard matrix of order ``n`` (int64), or ``None`` if none is constructible."""
    r = recipe(n)
    if r is None:
        return None
    h = np.ones((1, 1), np.int64)
    for f in r:
        h = np.kron(h, _factor(f))
    return h


def block_size(n: int) -> int:
    """The largest order ``b`` dividing ``n`` that has a Hadamard matrix (1 at worst)."""
    return max(b for b in range(1, n + 1) if n % b == 0 and recipe(b) is not None)


def random_orthogonal_hadamard(n: int, seed: int) -> tuple[np.ndarray, str]:
    """``Q = diag(s) · H / sqrt(b)`` (``s`` seeded random signs), float64 and orthogonal,
    block-diagonal ``I ⊗ H_b`` when no order-``n`` Hadamard is known; with a description."""
    b = block_size(n)
    h = hadamard(b).astype(np.float64) / math.sqrt(b)
    q = np.kron(np.eye(n // b), h) if b != n else h
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=n)
    how = " x ".join(recipe(b))
    desc = f"random Hadamard {n} ({how})" if b == n else \
        f"block-diagonal random Hadamard: {n // b} blocks of {b} ({how}); no Hadamard of order {n} is known here"
    return signs[:, None] * q, desc


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
