"""``qcompile.build``: lower a Relax module for a target into an :class:`Artifact`."""
from __future__ import annotations

import inspect

from qcompile.backends import TARGETS
from qcompile.backends.common import Artifact
from qcompile.errors import QCompileError


def target_options(target: str) -> list[str]:
    """The options a target's build takes (its ``build``'s keyword-only parameters)."""
    if target not in TARGETS:
        raise QCompileError(f"unknown target '{target}'", hint=f"known: {', '.join(TARGETS)}")
    params = inspect.signature(TARGETS[target].build).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def check_target_options(target: str, options: dict) -> None:
    """Refuse an option the target does not take (``--arch`` with ``--target llvm``), naming
    the targets that do take it."""
    known = target_options(target)
    for key in options:
        if key not in known:
            takers = [t for t in TARGETS if key in target_options(t)]
            raise QCompileError(f"--target {target} takes no option '{key}'"
                                + (f" (it is for --target {' / '.join(takers)})" if takers else ""),
                                hint=f"--target {target} options: {', '.join(known) or 'none'}")


def target_passes(target: str, options: dict) -> list:
    """The target's graph rewrites as passes (``[]`` for a target without any), built with
    the options of ``options`` that they take."""
    make = getattr(TARGETS[target], "graph_passes", None)
    if make is None:
        return []
    takes = inspect.signature(make).parameters
    return make(**{k: v for k, v in options.items() if k in takes})


def build(mod, target: str = "llvm", **options) -> Artifact:
    """Compile ``mod`` for ``target`` (``llvm``, ``cuda``, ``int-accel``).
    Options: ``mcpu``, ``tune_db``, ``tune_trials``, ``progress`` (llvm), ``arch`` (cuda,
    default sm_80); any other is refused."""
    check_target_options(target, options)
    return TARGETS[target].build(mod, **options)
