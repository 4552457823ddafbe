"""Pattern rewriting with error context.

:func:`rewrite` is ``tvm.relax.dpl.rewrite_call`` plus one thing passes need: if the
rewriter raises, the error names the Relax binding being rewritten, so a failing pass says
``pass 'int-linear' failed at binding 'lv23': ...`` instead of a bare traceback.
"""
from __future__ import annotations

import tvm_ffi
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


def rewrite(pattern, rewriter, func, budget: int | None = None):
    """``rewrite_call(pattern, rewriter, func)`` that reports the failing binding.

    ``rewrite_call`` repeats until nothing matches, so a rewriter whose output matches its
    own pattern loops forever; after ``budget`` rewriter calls (default: 16 per binding,
    at least 4096) it stops with an error naming the binding rewritten most often."""
    names = binding_names(func)
    budget = budget or max(4096, 16 * len(names))
    calls = [0]
    failure: list = []
    counts: dict[str, int] = {}

    def name_of(call):
        if call in names:
            return names[call]
        for value, name in names.items():  # re-matches come back as new but equal objects
            if isinstance(value, type(call)) and tvm_ffi.structural_equal(call, value):
                return name
        return None

    def guarded(call, matches):
        try:
            calls[0] += 1
            if calls[0] > budget:
                worst = max(counts, key=counts.get) if counts else None
                raise RewriteError(worst, RuntimeError(
                    f"rewrite does not terminate ({budget} rewrites without reaching a fixed point; "
                    "does the replacement match the pattern again?)"))
            if calls[0] > len(names):  # only count once a loop is possible
                name = name_of(call)
                if name is not None:
                    counts[name] = counts.get(name, 0) + 1
            if not isinstance(call, relax.Call):
                # TVM 0.27's rewrite_call also offers the variable a ``match_cast`` binds
                # when its value matched; that binding is not this rewrite's to change
                return call
            return rewriter(call, matches)
        except Exception as e:  # noqa: BLE001 - re-raised below with context
            # Exceptions lose their type crossing the FFI boundary: keep the original here.
            failure.append(e if isinstance(e, RewriteError) else RewriteError(name_of(call), e))
            raise

    hidden = _hide_checks(func)
    try:
        out = rewrite_call(pattern, guarded, hidden)
    except Exception:
        if failure:
            raise failure[0] from failure[0].cause
        raise
    return func if out is hidden else _restore_checks(out)


#: the stand-in of a hidden ``match_cast`` (:func:`_hide_checks`); never built or run
_CHECK = "qcompile.match_cast"


def _hide_checks(func):
    """``func`` with each ``match_cast`` that only checks dims already defined (a run-time
    check the importer added: ``x`` cast to ``(b, h, w)`` where it has ``(b, h', w')``) as an
    opaque ``call_pure_packed`` of that type. TVM 0.27's ``rewrite_call`` crashes (SIGSEGV,
    no error) on a function where such a ``match_cast`` reads, directly or not, a binding it
    rewrites; a ``match_cast`` that defines new dims is left as it is (those it takes)."""
    body = func.body
    if not isinstance(body, relax.SeqExpr):
        return func
    blocks, changed = [], False
    seen: set = set()
    for p in func.params:
        seen.update(str(v) for v in relax.analysis.tir_vars_in_type(p.ty))
    for block in body.blocks:
        bindings = []
        for b in block.bindings:
            if isinstance(b, relax.MatchCast):
                dims = {str(v) for v in relax.analysis.tir_vars_in_type(b.ty)}
                if dims <= seen:
                    bindings.append(relax.VarBinding(b.var, relax.op.call_pure_packed(_CHECK, b.value, ty_args=b.ty)))
                    changed = True
                    continue
                seen |= dims
            bindings.append(b)
        blocks.append(type(block)(bindings))
    if not changed:
        return func
    return relax.Function(func.params, relax.SeqExpr(blocks, body.body), func.ret_ty, func.is_pure, func.attrs)


def _restore_checks(func):
    """:func:`_hide_checks` undone: each stand-in is the ``match_cast`` it was."""
    body = func.body
    if not isinstance(body, relax.SeqExpr):
        return func
    blocks, changed = [], False
    for block in body.blocks:
        bindings = []
        for b in block.bindings:
            v = b.value
            if isinstance(b, relax.VarBinding) and isinstance(v, relax.Call) and v.args \
                    and isinstance(v.args[0], relax.ExternFunc) and str(v.args[0].global_symbol) == _CHECK:
                bindings.append(relax.MatchCast(b.var, v.args[1], b.var.ty))
                changed = True
                continue
            bindings.append(b)
        blocks.append(type(block)(bindings))
    if not changed:
        return func
    return relax.Function(func.params, relax.SeqExpr(blocks, body.body), func.ret_ty, func.is_pure, func.attrs)


def is_function(f) -> bool:
    return isinstance(f, relax.Function)


def _sub(e, env: dict):
    if isinstance(e, relax.Var):
        return env.get(e, e)
    if isinstance(e, relax.Tuple):
        return relax.Tuple([_sub(f, env) for f in e.fields])
    return e


def emit_body(bb, func, env: dict, on_binding=None, blocks=None):
    """Re-emit ``func``'s bindings (or those of ``blocks``) through ``bb`` with vars mapped by
    ``env`` (filled as it goes); ``on_binding`` as in :func:`rebuild_main`. Returns the mapped
    body result."""
    for blk in func.body.blocks if blocks is None else blocks:
        for b in blk.bindings:
            v = b.value
            if isinstance(b, relax.MatchCast):  # a run-time shape check the importer added: keep it
                env[b.var] = bb.match_cast(_sub(v, env), b.ty, name_hint=b.var.name)
                continue
            if isinstance(v, relax.Call):
                v = relax.Call(v.op, [_sub(a, env) for a in v.args], v.attrs, v.ty_args)
            elif isinstance(v, relax.TupleGetItem):
                v = relax.TupleGetItem(_sub(v.tuple_value, env), v.index)
            else:
                v = _sub(v, env)
            new = on_binding(bb, b.var, v) if on_binding is not None else None
            env[b.var] = bb.emit(v if new is None else new, name_hint=b.var.name)
    return _sub(func.body.body, env)


def _emit_main(bb, main, params: list, env: dict, attrs, on_binding=None, extra: list | None = None):
    """``main`` re-emitted as a function of ``params``: its leading non-dataflow blocks (the
    run-time checks int-only puts first, impure) stay outside the dataflow block, the rest
    goes into one; purity is kept. With ``extra`` (vars of ``main``), their values are
    returned after ``main``'s own output(s)."""
    blocks = list(main.body.blocks)
    lead = 0
    while lead < len(blocks) - 1 and not isinstance(blocks[lead], relax.DataflowBlock):
        lead += 1
    with bb.function("main", params, attrs=attrs, pure=bool(main.is_pure)):
        emit_body(bb, main, env, on_binding, blocks[:lead])
        with bb.dataflow():
            body = emit_body(bb, main, env, on_binding, blocks[lead:])
            if extra:
                if isinstance(body, relax.Tuple):
                    fields = list(body.fields)
                elif isinstance(body.ty, relax.TupleType):
                    fields = [bb.emit(relax.TupleGetItem(body, i)) for i in range(len(body.ty.fields))]
                else:
                    fields = [body]
                body = relax.Tuple(fields + [env[v] for v in extra])
            gv = bb.emit_output(body)
        bb.emit_func_output(gv)


def rebuild_main(mod, on_binding, params: list | None = None, env: dict | None = None):
    """A new module whose ``main`` is re-emitted binding by binding into one dataflow block.

    ``on_binding(bb, var, value)`` sees each original binding with its variables already
    replaced by their re-emitted counterparts; it returns the expression to bind to
    ``var`` (``None``: keep ``value``) and may emit extra bindings first through ``bb``. Composite and other functions are kept; functions
    emitted through ``bb`` (``emit_te``) are added.

    ``params`` replaces ``main``'s parameters (an old parameter maps to the new one of the same
    name; one without a namesake must no longer be used). ``env``, if given, is filled with
    old var -> re-emitted var as the bindings go, for callbacks that need other bindings."""
    main = mod["main"]
    rest = mod.clone()
    del rest["main"]
    bb = relax.BlockBuilder(rest)
    env = {} if env is None else env
    if params is None:
        params = [relax.Var(p.name, p.ty) for p in main.params]
    by_name = {p.name: p for p in params}
    env.update((p, by_name[p.name]) for p in main.params if p.name in by_name)
    attrs = dict(main.attrs) if main.attrs else None
    if attrs and "num_input" in attrs and int(attrs["num_input"]) == len(main.params):
        attrs["num_input"] = len(params)
    _emit_main(bb, main, params, env, attrs, on_binding)
    return bb.get()


def retyped(func: relax.Function, types: list) -> relax.Function:
    """``func`` with its parameters retyped (``None``: kept) and its body re-emitted, so that
    every binding's type is inferred again (e.g. a composite whose broadcast operand gains a
    head axis). Attributes are kept."""
    params = [relax.Var(p.name, p.ty if t is None else t) for p, t in zip(func.params, types)]
    bb = relax.BlockBuilder()
    with bb.function("f", params, attrs=dict(func.attrs) if func.attrs else None, private=True):
        with bb.dataflow():
            out = bb.emit_output(emit_body(bb, func, dict(zip(func.params, params))))
        bb.emit_func_output(out)
    return bb.get()["f"]


def with_outputs(mod, extra: list):
    """``mod`` whose ``main`` returns, after its own output(s), the values of the bindings
    ``extra`` (vars of ``main``): the same computation, re-emitted, for probing inside it."""
    main = mod["main"]
    rest = mod.clone()
    del rest["main"]
    bb = relax.BlockBuilder(rest)
    params = [relax.Var(p.name, p.ty) for p in main.params]
    _emit_main(bb, main, params, dict(zip(main.params, params)), dict(main.attrs) if main.attrs else None,
               extra=extra)
    return bb.get()
