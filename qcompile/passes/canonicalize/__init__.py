"""The ``canonicalize`` pass: first in every pipeline (see :mod:`qcompile.passes.canonicalize.rules`)."""
from __future__ import annotations

from qcompile.passes.canonicalize.rules import canonicalize
from qcompile.passmanager import Pass, PassContext


class Canonicalize(Pass):
    """Bind weights, fold constants, recognize idioms as named composites/ops."""

    name = "canonicalize"

    def transform(self, mod, ctx: PassContext):
        return canonicalize(mod)
