"""Optional tuning for llvm: MetaSchedule on the hot kernels, stored in a database that later
builds reuse. The default build never tunes; ``--tune N`` spends ``N`` measured trials on
the fused matmul kernels (the kernels whose name holds ``matmul``, where the time goes) and
``--tune-db DIR`` names the database (kept across builds: a later build with the same
kernels applies the best schedule found without tuning again). Kernels without a record keep
the default schedule (:mod:`qcompile.backends.cpu_schedule`).

TVM 0.27 needs workarounds for this (``TVM_NOTES.md``): the ffi pin (the JSON database), a
builder that gives the private tuning PrimFuncs a symbol (otherwise every trial fails to
build) and skips the slow ``tensor_intrin`` import, ``cloudpickle`` and ``psutil`` for the
worker pools (``pip install qcompile[tune]``), and the random cost model (the default one
needs xgboost). Integer kernels stay exact under any schedule MetaSchedule picks (schedules
reorder loops; the integer sums are associative), which the tests check on a tuned build."""
from __future__ import annotations

import os
from pathlib import Path

import tvm

from qcompile.errors import QCompileError

def _hot(task_name: str) -> bool:
    """The fused matmul kernels (with their epilogues), not attention's fused
    matmul-softmax-matmul, for which MetaSchedule 0.27's design spaces fail, and not the
    packed int8 kernels (:mod:`qcompile.backends.x86_packed`): MetaSchedule does not know
    their ``vpmaddwd`` intrinsic, so its schedules for them are slower than the default."""
    return "matmul" in task_name and "softmax" not in task_name and "pmaddwd" not in task_name


def _f_build(mod, target, _params):
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    funcs = {gv: (f.with_attr("global_symbol", gv.name_hint)
                  if isinstance(f, tvm.tirx.PrimFunc) and "global_symbol" not in (f.attrs or {}) else f)
             for gv, f in mod.functions.items()}
    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(tvm.IRModule(funcs, attrs=mod.attrs))
    return tvm.build(mod, target=target)


def _require():
    missing = [m for m in ("cloudpickle", "psutil") if not _importable(m)]
    if missing:
        raise QCompileError(f"tuning needs {' and '.join(missing)}", hint="pip install 'qcompile[tune]'")


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _import_tensor_intrin():
    """MetaSchedule's tune contexts import ``tvm.s_tir.tensor_intrin``, which parses every
    TVMScript intrinsic TVM has; the parser calls ``inspect.stack()`` per function, and reading
    each frame's source line (with torch loaded: thousands of modules to search) dominates
    the time. Import it once with frames but no source lines (``context=0``): the parser only
    reads a source line to spot functions declared inside ``@I.ir_module`` classes, and TVM's
    intrinsics are module-level functions."""
    import inspect
    import sys

    if "tvm.s_tir.tensor_intrin" in sys.modules:
        return
    stack = inspect.stack
    inspect.stack = lambda context=1: stack(0)
    try:
        import tvm.s_tir.tensor_intrin  # noqa: F401
    finally:
        inspect.stack = stack


def fused(mod, target):
    """The module at the level MetaSchedule extracts tasks from and applies records to."""
    from tvm.relax.backend.cpu_generic import pipeline as P

    from qcompile.backends.common import after_fuse_ops

    with target:
        return tvm.transform.Sequential(after_fuse_ops(P.library_dispatch_passes(target) + P.legalize_passes(target)))(mod)


def tune(mod, target, db_dir: str | Path, trials: int, progress: bool = True) -> dict:
    """Tune the matmul kernels of ``mod`` for ``target`` with ``trials`` measured trials in all,
    adding to the database in ``db_dir``. Returns what was tuned (tasks, trials, seconds)."""
    import time

    from tvm.s_tir import meta_schedule as ms

    _require()
    if trials < 1:
        raise QCompileError("--tune needs at least 1 trial")
    db_dir = Path(db_dir)
    db_dir.mkdir(parents=True, exist_ok=True)
    f = fused(mod, target)
    extracted = [t for t in ms.relax_integration.extract_tasks(f, target, params={}) if _hot(t.task_name)]
    _import_tensor_intrin()
    # the evolutionary search's defaults (a population of 512, 4 generations) cost about a
    # minute of candidate generation per task before the first measurement; a small budget
    # gets a population in proportion (the defaults from 64 trials up)
    population = max(16, min(512, 8 * trials))
    strategy = ms.search_strategy.EvolutionarySearch(
        population_size=population, init_min_unmeasured=min(50, population),
        genetic_num_iters=4 if trials >= 64 else 1)
    contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
        extracted_tasks=extracted, work_dir=str(db_dir), space="post-order-apply", strategy=strategy, seed=0)
    tasks = []
    for ctx, w in zip(contexts, weights):  # MetaSchedule 0.27 cannot generate a space for some fused kernels
        try:
            ctx.generate_design_space()
            tasks.append((ctx, w))
        except Exception:  # noqa: BLE001 - that kernel keeps its default schedule
            continue
    if not tasks:  # e.g. int-only on AVX2: every matmul is a packed int8 kernel (see _hot)
        ms.database.JSONDatabase(work_dir=str(db_dir))  # an empty database, so later builds can name it
        if progress:
            print(f"  no kernels to tune (the packed int8 matmuls keep their default schedule); "
                  f"empty database in {db_dir}", flush=True)
        return {"tasks": 0, "trials": 0, "seconds": 0.0, "database": str(db_dir)}
    t0 = time.perf_counter()
    workers = max(1, min(2, os.cpu_count() or 1))
    if progress:
        print(f"  tuning {len(tasks)} matmul kernels, {trials} trials -> {db_dir}", flush=True)
    ms.tune.tune_tasks(
        tasks=[c for c, _ in tasks], task_weights=[w for _, w in tasks], work_dir=str(db_dir),
        max_trials_global=trials, num_trials_per_iter=min(8, trials), cost_model="random",
        builder=ms.builder.LocalBuilder(f_build=_f_build, max_workers=workers),
        runner=ms.runner.LocalRunner(evaluator_config=ms.runner.EvaluatorConfig(number=3, repeat=1)))
    return {"tasks": len(tasks), "trials": trials, "seconds": round(time.perf_counter() - t0, 1),
            "database": str(db_dir)}


def check_options(trials: int, db_dir) -> None:
    """Refuse ``--tune``/``--tune-db`` combinations that cannot work, before any work is done:
    tuning without a database folder, or reusing a folder that holds no database."""
    if trials and not db_dir:
        raise QCompileError("--tune needs --tune-db DIR (where the tuning records are kept, for later builds)")
    if db_dir and not trials and not (Path(db_dir) / "database_workload.json").exists():
        raise QCompileError(f"no tuning database in {db_dir}", hint="create one with --tune N --tune-db DIR")


def database(db_dir: str | Path):
    from tvm.s_tir import meta_schedule as ms

    check_options(0, db_dir)
    return ms.database.JSONDatabase(work_dir=str(db_dir))


def applied(mod, target, db) -> list[str]:
    """The kernels of ``mod`` that take a schedule from ``db``."""
    from tvm import relax

    f = fused(mod, target)
    with target, db:
        f = relax.transform.MetaScheduleApplyDatabase()(f)
    return sorted(gv.name_hint for gv, fn in f.functions.items()
                  if isinstance(fn, tvm.tirx.PrimFunc) and (fn.attrs or {}).get("tirx.is_scheduled", False))
