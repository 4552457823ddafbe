"""``qcompile.build``: lower a Relax module for a target into an :class:`Artifact`."""
from __future__ import annotations

from .backends import TARGETS
from .backends.common import Artifact
from .errors import QCompileError


def build(mod, target: str = "llvm", **options) -> Artifact:
    """Compile ``mod`` for ``target`` (``llvm``, ``cuda``, ``int-accel``).
    Options: ``mcpu`` (llvm), ``arch`` (cuda, default sm_80)."""
    if target not in TARGETS:
        raise QCompileError(f"unknown target '{target}'", hint=f"known: {', '.join(TARGETS)}")
    return TARGETS[target].build(mod, **options)
