"""Pattern rewriting with error context.

:func:`rewrite` is ``tvm.relax.dpl.rewrite_call`` plus one thing passes need: if the
rewriter raises, the error names the Relax binding being rewritten, so a failing pass says
``pass 'int-linear' failed at binding 'lv23': ...`` instead of a bare traceback.
"""
from __future__ import annotations

from tvm import relax
from tvm.relax.dpl import rewrite_call

class RewriteError(Exception):
    """Raised out of a rewriter callback; carries the binding name it failed on."""

    def __init__(self, binding: str | None, cause: BaseException):
        super().__init__(str(cause))
        self.binding, self.cause = binding, cause


def binding_names(func) -> dict:
    """Map every bound value in ``func`` to the name of the variable it is bound to."""
    names = {}
    body = func.body
    for block in getattr(body, "blocks", []):
        for b in block.bindings:
            names[b.value] = b.var.name
    return names


def rewrite(pattern, rewriter, func):
    """``rewrite_call(pattern, rewriter, func)`` that reports the failing binding."""
    names = binding_names(func)

    failure: list = []

    def guarded(call, matches):
        try:
            return rewriter(call, matches)
        except Exception as e:  # noqa: BLE001 - re-raised below with context
            # Exceptions lose their type crossing the FFI boundary: keep the original here.
            failure.append(e if isinstance(e, RewriteError) else RewriteError(names.get(call), e))
            raise

    try:
        return rewrite_call(pattern, guarded, func)
    except Exception:
        if failure:
            raise failure[0] from failure[0].cause
        raise


def is_function(f) -> bool:
    return isinstance(f, relax.Function)
