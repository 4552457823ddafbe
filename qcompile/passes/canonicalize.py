"""The ``canonicalize`` pass: first in every pipeline (see :mod:`qcompile.canonicalize`)."""
from __future__ import annotations

from ..canonicalize import canonicalize
from ..passmanager import Pass, PassContext


class Canonicalize(Pass):
    """Bind weights, fold constants, recognize idioms as named composites/ops."""

    name = "canonicalize"

    def transform(self, mod, ctx: PassContext):
        return canonicalize(mod)
