"""Named pipelines: one table, one order.

:data:`ORDER` lists every pass in the one order passes run in. A pipeline names a set of
passes (:data:`PIPELINES`); ``a+b`` runs the union of their passes in :data:`ORDER`,
whatever order the user wrote them in. The order is a list, so it is total: two passes
cannot tie.

* ``rotate`` first: it changes the weights every later pass reads;
* ``qdq-sim`` (simulated weight/activation quantization) next, so that the calibrations
  of the passes after it see the activations that will run;
* the key/value cache formats: ``k-sort``'s channel permutation before ``bfp`` stores
  blocks of the sorted channels; ``kv-prerope``;
* ``w8a8`` after them: it turns the float linear layers (whose weights ``k-sort`` permutes)
  into int8 ones;
* ``int-only`` last: it consumes the whole float graph.

Options are set where the passes are built: ``pipeline("int-only", shiftmax_K=28)`` (an
option name the pipeline's passes know, given to the one pass that has it), or by pass
name, ``pipeline("bfp", {"bfp": {"block": 16}})``; choices that depend on the target are
made here too (:data:`TARGET_DEFAULTS`: an ``int-accel`` build wants integer model I/O).

A recipe file lists passes and options, and runs them in the order written::

    # my.toml
    [[pass]]
    name = "canonicalize"

    [[pass]]
    name = "some-pass"
    option = 3
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from qcompile.errors import QCompileError
from qcompile.passes.canonicalize import Canonicalize
from qcompile.passes.int_only import IntOnly, IntPrepare
from qcompile.passes.ksort import KSort
from qcompile.passes.kvcache import Bfp, KvPrerope
from qcompile.passes.qdq_sim import QdqSim
from qcompile.passes.rotate import Rotate
from qcompile.passes.w8a8 import W8A8
from qcompile.passmanager import Pass

#: every pass, in the one order passes run in (see the module docstring)
ORDER: list[type[Pass]] = [Canonicalize, Rotate, QdqSim, KSort, Bfp, KvPrerope, W8A8, IntPrepare, IntOnly]


@dataclass(frozen=True)
class PipelineDef:
    name: str
    passes: tuple[type[Pass], ...]  # without canonicalize, which every pipeline starts with
    description: str


PIPELINES: dict[str, PipelineDef] = {d.name: d for d in [
    PipelineDef("none", (), "canonicalize only: float model, idioms recognized, no quantization"),
    PipelineDef("rotate", (Rotate,),
                "QuaRot: norm folding + random Hadamard rotation fused into the weights, online Hadamard "
                "before down projections, head-wise V rotation (float model unchanged)"),
    PipelineDef("qdq-sim", (QdqSim,),
                "simulated W8A8 quantize-dequantize of the linear layers (a measuring instrument; other "
                "widths through a recipe or the API)"),
    PipelineDef("bfp", (KSort, Bfp),
                "block floating point KV cache (BFP12 keys, BFP16 values, blocks of 32) after K-sort channel "
                "reordering folded into the weights (float model unchanged); optional sinks, pre-RoPE keys, "
                "a float16 recent window, Hadamard-rotated caches, BFP weights and matmul inputs"),
    PipelineDef("kv-prerope", (KvPrerope,),
                "KVQuant: packed 2/3/4/8-bit KV cache, keys per channel before RoPE (RoPE applied after "
                "dequantization), values per token, float sinks, optional dense-and-sparse outliers, "
                "(Fisher-weighted) non-uniform levels, a float16 recent window"),
    PipelineDef("w8a8", (W8A8,),
                "linear layers executed as int8 x int8 -> int32 matmuls: weights per output channel, "
                "activations per token at run time (qdq-sim's W8A8, for real); output head float"),
    PipelineDef("int-only", (IntPrepare, IntOnly),
                "I-ViT integer-only: int8 matmuls, Shiftmax, ShiftGELU, integer LayerNorm, dyadic requant"),
]}

#: components that cannot be composed, and why
EXCLUSIVE: list[tuple[frozenset[str], str]] = [
    (frozenset({"bfp", "kv-prerope"}), "both store the key/value cache: choose one format"),
    (frozenset({"qdq-sim", "int-only"}), "qdq-sim simulates in float what int-only executes in integers"),
    (frozenset({"qdq-sim", "w8a8"}), "qdq-sim simulates in float what w8a8 executes in integers"),
    (frozenset({"w8a8", "int-only"}), "int-only already executes every linear layer in integers"),
]

#: target -> pass name -> options the target chooses, unless the user set them
TARGET_DEFAULTS: dict[str, dict[str, dict]] = {
    "int-accel": {"int-only": {"int_io": True}},  # an integer-only device cannot quantize its own float input
}

PASSES: dict[str, type[Pass]] = {cls.name: cls for cls in ORDER}


def register_pass(cls: type[Pass], after: str | None = None) -> type[Pass]:
    """Make a user's pass known to recipes and to :func:`register`: it runs right after the
    pass named ``after`` (default: last)."""
    if cls.name in PASSES and PASSES[cls.name] is not cls:
        raise ValueError(f"pass name '{cls.name}' registered twice")
    if cls not in ORDER:
        ORDER.insert(ORDER.index(PASSES[after]) + 1 if after else len(ORDER), cls)
    PASSES[cls.name] = cls
    return cls


def register(name: str, passes: Sequence[type[Pass]], description: str) -> None:
    """A named pipeline of registered passes (:func:`register_pass`)."""
    unknown = [p.__name__ for p in passes if p not in ORDER]
    if unknown:
        raise ValueError(f"pipeline '{name}': register_pass() these first: {', '.join(unknown)}")
    PIPELINES[name] = PipelineDef(name, tuple(passes), description)


def pipeline(spec: str, options: dict[str, dict] | None = None, *, target: str | None = None,
             **pass_options) -> list[Pass]:
    """Passes for ``spec``: a name, names joined by ``+``, or a path to a ``.toml`` recipe.

    ``options`` sets pass options by pass name (``pipeline("bfp", {"bfp": {"block": 16}})``);
    keyword options go to the one pass of the pipeline that has an option of that name
    (``pipeline("int-only", shiftmax_K=28)``). ``target`` applies :data:`TARGET_DEFAULTS`
    to options left unset. Naming a pass the pipeline does not run, or an option none of
    its passes has, is an error."""
    passes = load_recipe(Path(spec)) if spec.endswith(".toml") else _compose(spec)
    for name, opts in (options or {}).items():
        if not any(p.name == name for p in passes):
            raise QCompileError(f"options for pass '{name}', which pipeline '{spec}' does not run",
                                hint=f"its passes: {', '.join(p.name for p in passes)}")
        passes = [_with(p, opts) if p.name == name else p for p in passes]
    for key, value in pass_options.items():
        having = [p for p in passes if key in _fields(p)]
        if len(having) != 1:
            why = "none of its passes has" if not having else \
                f"{', '.join(p.name for p in having)} all have"
            raise QCompileError(f"option '{key}': {why} it (pipeline '{spec}')",
                                hint=("set it by pass name: options={'<pass>': {...}}" if having else
                                      f"options: {', '.join(sorted({f for p in passes for f in _fields(p)})) or 'none'}"))
        passes = [_with(p, {key: value}) if p is having[0] else p for p in passes]
    for name, opts in TARGET_DEFAULTS.get(target or "", {}).items():
        passes = [_with(p, {k: v for k, v in opts.items() if getattr(p.config, k) is None})
                  if p.name == name else p for p in passes]
    return passes


def _compose(spec: str) -> list[Pass]:
    names = [s.strip() for s in spec.split("+")]
    for n in names:
        if n not in PIPELINES:
            raise QCompileError(f"unknown pipeline '{n}'", hint=f"known: {', '.join(sorted(PIPELINES))}")
    if len(set(names)) != len(names):
        raise QCompileError(f"pipeline '{spec}' names a component twice")
    if "none" in names and len(names) > 1:
        raise QCompileError("'none' cannot be combined with other pipelines")
    for pair, why in EXCLUSIVE:
        if pair <= set(names):
            raise QCompileError(f"pipeline '{spec}': {' and '.join(sorted(pair))} cannot be combined: {why}")
    wanted = {cls for n in names for cls in PIPELINES[n].passes}
    return [cls() for cls in ORDER if cls in wanted or cls is Canonicalize]


def _fields(p: Pass) -> set[str]:
    return {f.name for f in dataclasses.fields(p.config)}


def _with(p: Pass, opts: dict) -> Pass:
    if not opts:
        return p
    own = {f.name: getattr(p.config, f.name) for f in dataclasses.fields(p.config)}
    return type(p)(**{**own, **opts})


def load_recipe(path: Path) -> list[Pass]:
    if not path.exists():
        raise QCompileError(f"recipe file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise QCompileError(f"recipe {path} is not valid TOML: {e}") from None
    entries = data.get("pass")
    if "pass" not in data or entries == []:
        others = f" (its keys: {', '.join(sorted(data))})" if data and "pass" not in data else ""
        raise QCompileError(f"recipe {path} lists no passes{others}", hint="add [[pass]] tables with a name")
    if not isinstance(entries, list):
        got = "a single [pass] table" if isinstance(entries, dict) else f"{type(entries).__name__} {entries!r}"
        raise QCompileError(f"recipe {path}: 'pass' must be an array of [[pass]] tables, got {got}"[:300],
                            hint="write each pass as a [[pass]] table with a name")
    passes = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise QCompileError(f"recipe {path}, pass #{i + 1}: expected a [[pass]] table, got {entry!r}")
        opts = dict(entry)
        name = opts.pop("name", None)
        if not isinstance(name, str) or name not in PASSES:
            raise QCompileError(f"recipe {path}, pass #{i + 1}: unknown pass '{name}'",
                                hint=f"known: {', '.join(sorted(PASSES))}")
        passes.append(PASSES[name](**opts))
    if passes[0].name != "canonicalize":
        passes.insert(0, Canonicalize())
    return passes


def describe() -> list[str]:
    """One line per pipeline, in the order of their first pass (``qcompile --list-pipelines``)."""
    def first(d):
        return min((ORDER.index(c) for c in d.passes), default=-1)

    defs = sorted(PIPELINES.values(), key=lambda d: (first(d), d.name))
    width = max(len(d.name) for d in defs)
    return [f"{d.name:<{width}}  {d.description}" for d in defs]
