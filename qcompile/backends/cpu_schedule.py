"""The default CPU schedule: no tuning, applied to every fused PrimFunc after ``FuseTIR``.

TVM 0.27 leaves llvm kernels unscheduled (one thread, no vectors) and dlight has no CPU
matmul rule. Per block:

* **matmul** (``C[.., i, j] += A[.., i, k] * B[.., k, j]``, batched or not, float or
  int8 -> int32): a register-blocked micro-kernel. A ``ROWS x VEC`` tile of C is
  accumulated in registers (a local cache) while ``k`` runs, each B vector load reused by
  the tile's rows (broadcast multiply-adds); column tiles are outermost and parallel, so a
  core streams one weight panel past all rows. The elementwise epilogue (bias, residual
  add, dyadic requantization, ShiftGELU) is computed from the registers on write-back,
  except transcendental ones (erf/exp), which vectorize better as their own loop. The row
  tile divides one head's rows (see ``_schedule_matmul``). int8 matmuls with a constant
  weight are packed for ``vpmaddwd`` before fusion and tensorized here, float32 ones packed
  the same way and vectorized (:mod:`qcompile.backends.x86_packed`);
* **row-wise kernels** (softmax, LayerNorm, Shiftmax, integer LayerNorm with its
  requantization): one parallel loop over rows with every block (row statistics, per-row
  scalars such as the integer square root, the output) computed inside it, instead of one
  parallel pass per block. Other reductions: rows in parallel;
* **elementwise**: outer loops fused and parallel, the innermost loop vectorized. A fused
  function made only of spatial blocks (a requantization chain, a table lookup and its
  requantization, a transpose and a cast) first has every block but the last inlined, so it
  is one loop nest instead of one pass over memory per op.

Schedules only reorder, tile and annotate loops; integer results are unchanged (tests
check bit-exactness on scheduled builds). A PrimFunc the rules cannot handle is left as it
was, never failed; so is one over extents TVM's arithmetic mishandles (a floor division or
modulo by a negative constant, see ``_negative_divisor``). Measured by ``benchmarks/speed.py``.
"""
from __future__ import annotations

import tvm
import tvm_ffi
from tvm import s_tir, tirx
from tvm.s_tir.dlight.gpu.matmul import auto_inline_consumer_chain

from qcompile.backends import x86_packed

VEC = 16   # fp32 lanes per inner tile (two AVX2 registers)
ROWS = 6   # rows sharing one weight vector (6 x 2 accumulator vectors + 2 weight vectors + 1 broadcast: 15 of 16 AVX2 registers)


def _const(extent):
    return int(extent) if isinstance(extent, tirx.IntImm) else None


def _iter_kinds(sch, block) -> list[str]:
    return ["R" if int(iv.iter_type) == 2 else ("S" if int(iv.iter_type) == 0 else "O")
            for iv in sch.get(block).iter_vars]


def _tile(n: int | None, wanted: int) -> int | None:
    if n is None:
        return None
    for f in (wanted, 8, 4):
        if n % f == 0 and n >= f:
            return f
    return None


def _col_tile(n: int | None) -> int | None:
    if n is None:
        return None
    for f in (VEC, 8, 4):
        if n % f == 0:
            return f
    # no ragged tiles (see _schedule_matmul): the widest divisor up to two vectors
    return next((f for f in range(2 * VEC, 1, -1) if n % f == 0), None)


_TRANSCENDENTAL = {"tirx.erf", "tirx.exp", "tirx.tanh", "tirx.sigmoid", "tirx.log", "tirx.pow", "tirx.sqrt"}


def _count(stmt, pred) -> int:
    """The nodes of ``stmt`` that satisfy ``pred``, counted as lowering sees them (a shared
    subexpression once per use)."""
    found = [0]

    def cb(obj):
        if pred(obj):
            found[0] += 1

    tvm_ffi.structural_walk(stmt, cb)
    return found[0]


def _call_to(obj, names) -> bool:
    return isinstance(obj, tvm.ir.expr.Call) and getattr(obj.op, "name", "") in names


def _transcendental(stmt) -> bool:
    return _count(stmt, lambda o: _call_to(o, _TRANSCENDENTAL)) > 0


def _consumer_chain(sch, block) -> list:
    out, todo = [], list(sch.get_consumers(block))
    while todo:
        b = todo.pop()
        out.append(b)
        todo.extend(sch.get_consumers(b))
    return out


def _is_matmul(stmt) -> bool:
    """``C[..., i, j] += A[..., i, k] * B[..., k, j]`` with ``j`` the last index of C and of B
    (so the column tile is a contiguous vector load of B) and absent from A."""
    if len(stmt.reads) < 2 or len(stmt.writes) != 1:
        return False
    var_of = {iv.var.name: iv for iv in stmt.iter_vars}
    out = stmt.writes[0]
    j = out.region[-1].min
    if not isinstance(j, tvm.tirx.Var) or j.name not in var_of:
        return False
    reads = [r for r in stmt.reads if not r.source.same_as(out.source)]

    def uses(region, var):
        return any(var.same_as(v) for rg in region.region for v in tvm.tirx.analysis.undefined_vars(rg.min))

    with_j = [r for r in reads if isinstance(r.region[-1].min, tvm.tirx.Var) and r.region[-1].min.same_as(j)]
    without_j = [r for r in reads if not uses(r, j)]
    return len(with_j) == 1 and len(without_j) >= 1


def _row_tile(n_rows: int) -> int:
    return next(r for r in range(ROWS, 0, -1) if n_rows % r == 0)


def _pad(sch, block, pads: list[int]) -> None:
    """Extents the tiles do not divide (DeiT's 197 tokens is prime: 1-row tiles, and no
    column tile for ``Q·Kᵀ``) are padded up to a multiple of the tile: the operands are copied
    into zero-padded buffers, the matmul computes the padded rows/columns, and the write-back
    reads only the real ones. The copies are one pass over an operand; the padding costs at
    most a tile's worth of extra rows/columns. Results are unchanged (padded entries are
    never read)."""
    sch.pad_einsum(block, pads)
    for p in sch.get_producers(block):
        if sch.get(p).name_hint.endswith("_pad"):
            _schedule_elementwise(sch, p)
    for c in sch.get_consumers(block):
        if sch.get(c).name_hint.endswith("_pad"):  # the copy back into the unpadded buffer
            try:
                sch.compute_inline(c)  # into the epilogue, if there is one
            except s_tir.ScheduleError:  # the copy writes the output: it stays a loop of its own
                pass


def _schedule_matmul(sch, block) -> bool:
    """Register-blocked matmul: a ``ROWS x VEC`` accumulator tile held in registers (a local
    cache written back once, with the fused epilogue computed on the way out), the
    reduction loop outside the tile, one weight vector load reused by ``ROWS`` broadcast
    FMAs. Column tiles outermost and parallel, so each core streams its own weight panel
    (``K x VEC``, L1-sized) past all rows."""
    loops = sch.get_loops(block)
    kinds = _iter_kinds(sch, block)
    if len(loops) != len(kinds) or kinds[-1] != "R" or "S" not in kinds or "O" in kinds:
        return False
    spatial = [lp for lp, k in zip(loops, kinds) if k == "S"]
    reduce_ = [lp for lp, k in zip(loops, kinds) if k == "R"]
    if len(spatial) < 2 or kinds.index("R") < len(spatial):
        return False
    if not _is_matmul(sch.get(block)):
        return False
    col = spatial[-1]
    n_cols, n_rows = _const(sch.get(col).extent), _const(sch.get(spatial[-2]).extent)
    if n_cols is None or n_rows is None:
        return False
    pads = [1] * len(loops)
    if (_col_tile(n_cols) or 1) < 8 and n_cols > VEC:
        pads[len(spatial) - 1] = VEC
    if _row_tile(n_rows) < ROWS // 2 and n_rows > ROWS:
        pads[len(spatial) - 2] = ROWS
    if max(pads) > 1:
        _pad(sch, block, pads)
        loops = sch.get_loops(block)
        spatial, reduce_ = loops[:len(spatial)], loops[len(spatial):]
        col = spatial[-1]
        n_cols, n_rows = _const(sch.get(col).extent), _const(sch.get(spatial[-2]).extent)
    vec = _col_tile(n_cols)
    if vec is None:
        return False
    # the row tile divides the innermost row axis: a tile that is ragged or crosses into the
    # next batch/head computes wrong results in 0.27 (reverse_compute_at sizes the write-back
    # region as if the tile stayed inside one)
    mr = _row_tile(n_rows)
    rows = sch.fuse(*spatial[:-1]) if len(spatial) > 2 else spatial[0]
    ro, ri = sch.split(rows, [None, mr])
    jo, ji = sch.split(col, [None, vec])
    sch.reorder(jo, ro, *reduce_, ri, ji)
    outer = sch.fuse(jo, ro)
    sch.parallel(outer)
    acc = sch.cache_write(block, 0, "local")
    sch.reverse_compute_at(acc, outer, preserve_unit_loops=True)
    _epilogue(sch, acc)
    sch.unroll(ri)
    sch.vectorize(ji)
    sch.decompose_reduction(block, reduce_[0])
    sch.vectorize(sch.get_loops(acc)[-1])
    return True


def _epilogue(sch, acc) -> None:
    """Inline the fused elementwise consumers of a matmul's register tile into its write-back
    (bias, requantization: computed from registers), unless they are transcendental."""
    if not any(_transcendental(sch.get(c)) for c in _consumer_chain(sch, acc)):
        try:
            auto_inline_consumer_chain(sch, acc)
        except (AssertionError, s_tir.ScheduleError):  # what is left runs as its own loops
            pass
    for c in _consumer_chain(sch, acc):
        if sch.get(c).name_hint.endswith("_pad"):  # a padded copy not inlined: not in the caller's list
            _schedule_elementwise(sch, c)


def _schedule_row_reduction(sch, block) -> bool:
    """A reduction over the innermost axes (softmax max/sum, LayerNorm statistics, Shiftmax
    row sums): the rows run in parallel."""
    loops = sch.get_loops(block)
    kinds = _iter_kinds(sch, block)
    if len(loops) != len(kinds) or "O" in kinds or kinds[0] != "S":
        return False
    n_s = kinds.index("R")
    if any(k != "R" for k in kinds[n_s:]):
        return False
    sch.parallel(sch.fuse(*loops[:n_s]) if n_s > 1 else loops[0])
    return True


def _schedule_elementwise(sch, block) -> bool:
    loops = sch.get_loops(block)
    kinds = _iter_kinds(sch, block)
    if len(loops) != len(kinds) or any(k != "S" for k in kinds) or not loops:
        return False
    if len(loops) > 1:
        outer = sch.fuse(*loops[:-1])
        sch.parallel(outer)
    inner = loops[-1]
    vec = _tile(_const(sch.get(inner).extent), VEC)
    if vec and not _touches_bool(sch.get(block)):  # LLVM: bool vectors are i1, stored as i8
        _, vi = sch.split(inner, [None, vec])
        sch.vectorize(vi)
    return True


def _touches_bool(stmt) -> bool:
    return any(str(r.source.dtype) == "bool" for r in list(stmt.reads) + list(stmt.writes))




def _inline_spatial_chain(sch, names):
    """A fused function of spatial blocks only (a requantization chain, a table lookup and
    its requantization, a transpose and a cast): every block but the last is inlined, so
    the chain runs as one loop nest from registers instead of one pass over memory per op.
    Returns the new schedule, or ``None`` where this does not apply."""
    if len(names) < 2 or any(k != "S" for n in names for k in _iter_kinds(sch, sch.get_sblock(n))):
        return None
    trial = sch.copy()
    try:
        for n in names[:-1]:
            trial.compute_inline(trial.get_sblock(n))
    except (AssertionError, s_tir.ScheduleError):
        return None
    if _selects(trial.get(trial.get_sblock(names[-1]))) > INLINED_SELECTS:
        return None
    return trial


#: the most selects (``where``, ``if_then_else``) a chain inlined into one block may hold.
#: Inlining copies a producer's expression into every place its consumer reads it, and
#: TIR lowering reasons about each select's condition inside the others: LongT5's relative
#: position buckets (``where(isfinite(x), x, 0)`` six times in a row, 43 selects once
#: inlined, 1904 nodes) took 266 s to lower as one block and 0.1 s as separate loops in a
#: diagnosis run (not a benchmark). The
#: bundled ViT's int-only chains hold none. Past this, each block runs as its own loop.
INLINED_SELECTS = 8


def _selects(stmt) -> int:
    """The selects in ``stmt`` (:func:`_count`)."""
    return _count(stmt, lambda o: isinstance(o, tirx.Select) or _call_to(o, ("tirx.if_then_else",)))


def _fuse_rows(sch, names):
    """A row-wise kernel (softmax, LayerNorm, Shiftmax, integer LayerNorm, with the
    requantization fused after it): every block runs over the same leading row axes and is
    a reduction over the rest of the row, a per-row scalar (a mean, an integer square root
    step, a reciprocal), or elementwise over the row. One parallel loop over rows, with every
    block computed at it: a row's statistics and its output are computed by the same thread
    from cache, per-row scalars stay in registers, and the kernel is one parallel region
    instead of one per block (20 for integer LayerNorm, whose per-block thread launches
    cost more than its arithmetic at ViT sizes). Elementwise blocks with one consumer are
    inlined into it. Returns the new schedule, or ``None`` where this does not apply."""
    packed = (x86_packed.BLOCK, x86_packed.BLOCK_U8, x86_packed.BLOCK_F32)
    if len(names) < 2 or any(n.startswith(packed) for n in names):
        return None
    kinds = {n: _iter_kinds(sch, sch.get_sblock(n)) for n in names}
    rank = len(kinds[names[-1]])
    if rank < 2 or any(k != "S" for k in kinds[names[-1]]):
        return None
    lead = ["S"] * (rank - 1)

    def extents(n):
        return [_const(iv.dom.extent) for iv in sch.get(sch.get_sblock(n)).iter_vars]

    row_extents = extents(names[-1])[:-1]
    for n in names[:-1]:
        k = kinds[n]
        rest = k[rank - 1:]
        if k[:rank - 1] != lead or not (rest in ([], ["S"]) or (rest and set(rest) == {"R"})):
            return None  # a matmul (spatial and reduction axes after the rows), a transpose, ...
        if extents(n)[:rank - 1] != row_extents:
            return None  # other leading axes (a packed matmul's row panel, ...)
    if not any("R" in k for k in kinds.values()):
        return None
    trial = sch.copy()
    try:
        kept = []
        for n in names[:-1]:
            b = trial.get_sblock(n)
            if kinds[n] == ["S"] * rank and len(trial.get_consumers(b)) == 1:
                try:
                    trial.compute_inline(b)
                    continue
                except s_tir.ScheduleError:
                    pass
            kept.append(n)
        out = trial.get_sblock(names[-1])
        loops = trial.get_loops(out)
        rows = trial.fuse(*loops[:-1]) if rank > 2 else loops[0]
        for n in reversed(kept):
            trial.compute_at(trial.get_sblock(n), rows, preserve_unit_loops=True)
        trial.parallel(rows)
        inner = trial.get_loops(out)[-1]
        vec = _tile(_const(trial.get(inner).extent), VEC)
        if vec and not _touches_bool(trial.get(out)):
            _, vi = trial.split(inner, [None, vec])
            trial.vectorize(vi)
    except Exception:  # noqa: BLE001 - any failure (symbolic extents, ...): the per-block rules instead
        return None
    return trial


def _negative_divisor(func) -> bool:
    """A floor division or modulo by a negative constant in ``func``'s shapes or indices.
    TVM 0.27's simplifier writes a round-up to a multiple of ``k`` as ``n - n % -k`` (LongT5
    pads its tokens to whole blocks: ``(n - n % -3) // 3`` blocks); a schedule's fused and
    split loops over such extents made TIR lowering take minutes per kernel (154 s for one
    reshape) and gave wrong results (LongT5's block attention: garbage that changed from run
    to run, as from reading memory the kernel does not own; correct with this guard alone).
    Such a function keeps TVM's form."""
    return _count(func, lambda o: isinstance(o, (tirx.FloorMod, tirx.FloorDiv)) and isinstance(o.b, tirx.IntImm)
                  and int(o.b) < 0) > 0


def schedule_func(func: tirx.PrimFunc, validate: bool = False) -> tirx.PrimFunc:
    if _negative_divisor(func):
        return func
    base = func.with_attr("global_symbol", "f") if "global_symbol" not in (func.attrs or {}) else func
    sch = s_tir.Schedule(tvm.IRModule({"main": base}))
    done = False
    try:
        names = [sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))]
    except Exception:  # noqa: BLE001 - no root block (already lowered): leave it
        return func
    inlined = _inline_spatial_chain(sch, names)
    if inlined is not None:
        sch, names, done = inlined, names[-1:], True
    rows = _fuse_rows(sch, names) if inlined is None else None
    if rows is not None:
        return _finish(rows, func, validate)
    for name in names:
        try:
            block = sch.get_sblock(name)
        except Exception:  # noqa: BLE001 - not addressable by name
            continue
        kinds = _iter_kinds(sch, block)
        try:
            trial = sch.copy()
            blk = trial.get_sblock(name)
            if "R" not in kinds:
                ok = _schedule_elementwise(trial, blk)
            else:
                ok = (x86_packed.schedule(trial, blk, _epilogue) or _schedule_matmul(trial, blk)
                      or _schedule_row_reduction(trial, blk))
        except Exception:  # noqa: BLE001 - rule does not apply: leave this block as it is
            continue
        if ok:
            sch = trial
            done = True
    return _finish(sch, func, validate) if done else func


def _finish(sch, func, validate: bool = False):
    out = sch.mod["main"]
    out = out if "global_symbol" in (func.attrs or {}) else out.without_attr("global_symbol")
    if not validate or not _symbolic(func):
        return out
    return out if _lowers(out) or not _lowers(func) else func


def _symbolic(func) -> bool:
    """A parameter buffer with a symbolic dim (TVM 0.27: the parameters are the buffers)."""
    return any(not isinstance(d, tirx.IntImm) for p in func.params for d in (getattr(p, "shape", None) or []))


def _lowers(func) -> bool:
    """Whether TIR's buffer compaction takes ``func``. Over symbolic extents it can fail on a
    schedule of ours (a loop fused over ``batch * (h/8 * w/8 + 5) * 64`` and split by the
    vector width: ``The padding factor ... is not divisible``, YOLOS over a symbolic image
    size) at the end of the build; such a function keeps TVM's own (unscheduled) form."""
    from tvm import s_tir as S

    mod = tvm.IRModule({"main": func.with_attr("global_symbol", "main")})
    try:
        tvm.transform.Sequential([S.transform.LowerInitBlock(), S.transform.PlanAndUpdateBufferAllocationLocation(),
                                  S.transform.ConvertBlocksToOpaque(), S.transform.CompactBufferAllocation()])(mod)
    except Exception:  # noqa: BLE001 - any failure here is the build's failure later
        return False
    return True


def _schedule_all(mod, validate: bool):
    out = {}
    for gv, f in mod.functions.items():
        if isinstance(f, tirx.PrimFunc) and not (f.attrs or {}).get("tirx.is_scheduled", False):
            f = schedule_func(f, validate)
        out[gv] = f
    return tvm.IRModule(out, attrs=mod.attrs)


@tvm.transform.module_pass(opt_level=0, name="qcompile.DefaultCPUSchedule")
def default_cpu_schedule(mod, _ctx):
    return _schedule_all(mod, validate=False)


@tvm.transform.module_pass(opt_level=0, name="qcompile.DefaultCPUScheduleValidated")
def validated_cpu_schedule(mod, _ctx):
    """:func:`default_cpu_schedule`, keeping TVM's form of any kernel over symbolic extents
    whose schedule TIR's buffer compaction refuses (see :func:`_lowers`). The llvm build
    reruns with it when the plain one fails that way (each check costs a TIR lowering)."""
    return _schedule_all(mod, validate=True)
