"""Local shapes as ``relax.dpl`` patterns, and the small predicates on constants that the
rewrite rules share (canonicalization, int-only's preparation). Analysis only."""
from __future__ import annotations

import math

from tvm.relax.dpl import is_op

from qcompile.ir import const_value


def op(name):
    """A pattern constructor for ``relax.<name>``."""
    return lambda *args: is_op(f"relax.{name}")(*args)


add, sub, mul, div = op("add"), op("subtract"), op("multiply"), op("divide")


def comm(f, a, b):
    """Both operand orders of a commutative op."""
    return f(a, b) | f(b, a)


def is_scalar(c, value, rtol=1e-3) -> bool:
    """``c`` is a one-element constant close to ``value``."""
    v = const_value(c)
    return v is not None and v.size == 1 and math.isclose(float(v.reshape(())), value, rel_tol=rtol)


def positive_scalar(c) -> bool:
    v = const_value(c)
    return v is not None and v.size == 1 and float(v.reshape(())) > 0


def scalar(c) -> float | None:
    """The value of a one-element float constant, else None."""
    v = const_value(c)
    return float(v.reshape(())) if v is not None and v.size == 1 and v.dtype.kind == "f" else None


def same(*exprs) -> bool:
    return all(e.same_as(exprs[0]) for e in exprs[1:])
