"""Hadamard matrices of order K·2^m (QuaRot's rotations), shared by the techniques that
rotate: ``rotate`` (the residual stream, :mod:`qcompile.passes.rotate`) and the KV-cache
passes' online rotation of cached head vectors (:mod:`qcompile.passes.kvcache.cache_rewrite`).

Constructions (entries ±1, ``H Hᵀ = n I``):

* **Sylvester**: ``H_{2n} = [[H, H], [H, -H]]``, every power of two;
* **Paley I**: ``q`` prime, ``q ≡ 3 (mod 4)``: order ``q + 1`` (4, 8, 12, 20, 24, 32, 44, ...);
* **Paley II**: ``q`` prime, ``q ≡ 1 (mod 4)``: order ``2 (q + 1)`` (12, 28, 36, 60, ...);
* **Kronecker products** of the above: ``576 = 12 · 12 · 4``, ``1536 = 12 · 128``.

:func:`hadamard` returns one of order ``n`` or ``None``; :func:`block_size` gives the
largest order that divides ``n`` when there is none (a block-diagonal rotation then).
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
