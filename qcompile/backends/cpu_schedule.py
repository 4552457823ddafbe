"""A default CPU schedule that needs no tuning (first step; the speed issue refines it).

TVM 0.27 leaves llvm kernels unscheduled (one thread, no vectors) and dlight has no CPU
matmul rule. This pass schedules every fused PrimFunc after ``FuseTIR``:

* a **reduction block with a spatial last axis** (matmul, batched matmul; epilogues stay
  separate blocks): loop order ``[rows (parallel) / row tile, column tile, k, row in tile,
  column in tile (vectorized)]`` with the initialisation split off, so each weight
  vector loaded is reused by ``ROWS`` rows and the inner loop is a vector FMA;
* every other block: the outermost spatial loops are fused and run in parallel, and the
  innermost spatial loop is vectorized when its extent allows.

Schedules only reorder and annotate loops; integer results are unchanged (the tests check
bit-exactness on the scheduled build). A PrimFunc the rules cannot handle is left as it
was, never failed.
"""
from __future__ import annotations

import tvm
from tvm import s_tir, tirx

VEC = 16   # fp32 lanes per inner tile (two AVX2 registers)
ROWS = 4   # rows sharing one weight vector


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


def _schedule_reduction(sch, block) -> bool:
    loops = sch.get_loops(block)
    kinds = _iter_kinds(sch, block)
    if len(loops) != len(kinds) or kinds[-1] != "R" or "S" not in kinds:
        return False
    spatial = [lp for lp, k in zip(loops, kinds) if k == "S"]
    reduce_ = [lp for lp, k in zip(loops, kinds) if k == "R"]
    if "O" in kinds or len(spatial) < 2:
        return False
    col = spatial[-1]
    vec = _tile(_const(sch.get(col).extent), VEC)
    if vec is None:
        return False
    outer = sch.fuse(*spatial[:-1]) if len(spatial) > 2 else spatial[0]
    rows = _tile(_const(sch.get(outer).extent), ROWS)
    jo, ji = sch.split(col, [None, vec])
    if rows:
        ro, ri = sch.split(outer, [None, rows])
        sch.reorder(ro, jo, *reduce_, ri, ji)
    else:
        ro, ri = outer, None
        sch.reorder(ro, jo, *reduce_, ji)
    sch.parallel(ro)
    sch.vectorize(ji)
    sch.decompose_reduction(block, reduce_[0])
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
    if vec:
        _, vi = sch.split(inner, [None, vec])
        sch.vectorize(vi)
    return True


def schedule_func(func: tirx.PrimFunc) -> tirx.PrimFunc:
    base = func.with_attr("global_symbol", "f") if "global_symbol" not in (func.attrs or {}) else func
    sch = s_tir.Schedule(tvm.IRModule({"main": base}))
    done = False
    try:
        names = [sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))]
    except Exception:  # noqa: BLE001 - no root block (already lowered): leave it
        return func
    for name in names:
        try:
            block = sch.get_sblock(name)
        except Exception:  # noqa: BLE001 - not addressable by name
            continue
        kinds = _iter_kinds(sch, block)
        try:
            trial = sch.copy()
            ok = _schedule_reduction(trial, trial.get_sblock(name)) if "R" in kinds else \
                _schedule_elementwise(trial, trial.get_sblock(name))
        except Exception:  # noqa: BLE001 - rule does not apply: leave this block as it is
            continue
        if ok:
            sch = trial
            done = True
    if not done:
        return func
    out = sch.mod["main"]
    return out if "global_symbol" in (func.attrs or {}) else out.without_attr("global_symbol")


@tvm.transform.module_pass(opt_level=0, name="qcompile.DefaultCPUSchedule")
def default_cpu_schedule(mod, _ctx):
    out = {}
    for gv, f in mod.functions.items():
        if isinstance(f, tirx.PrimFunc) and not (f.attrs or {}).get("tirx.is_scheduled", False):
            f = schedule_func(f)
        out[gv] = f
    return tvm.IRModule(out, attrs=mod.attrs)
